// Type declarations of tauri-plugin-trellis-api (index.js).

/** A plugin id, `vendor.name`. */
export type PluginId = string;
/** A semantic version, `1.2.0`. */
export type Version = string;
export type Risk = "low" | "medium" | "high";

/** How a command failed: `kind` for code, `message` (with its causes) for people. */
export interface TrellisError {
  kind: "store" | "invalid" | "not_open" | "no_such_question" | "task";
  message: string;
}

export interface Status {
  data_dir: string;
  opened_in_ms: number | null;
  open: boolean;
  error: string | null;
}

export interface RegistryConfig {
  name: string;
  url: string;
  mirrors?: string[];
}

export interface SearchHit {
  id: PluginId;
  name: string;
  summary: string;
  registry: string;
  latest: Version | null;
  installed: Version | null;
  rating: { average: number; count: number } | null;
  downloads: number;
  compatibility: { compatibility: "runs" } | { compatibility: "incompatible"; reason: string } | Record<string, unknown>;
  score: number;
}

export interface SearchResults {
  hits: SearchHit[];
  catalog_generated: string | null;
}

export interface ShownPermission {
  key: string;
  plain: string;
  risk: Risk;
  reason: string;
}

export interface Info {
  registry: string;
  /** The signed index doc: `{ id, name, releases: [...] }`. */
  doc: { id: PluginId; name: string; releases: Array<Record<string, unknown> & { version: Version; yanked: boolean }> };
  latest: Version | null;
  permissions: ShownPermission[];
  /** Each release's security level, by version, from the registry's signed levels. */
  security_levels: Record<Version, SecurityLevel>;
}

/** A release's security level (`unknown` is below every level). */
export type SecurityLevel =
  | {
      status: "known";
      level: "flagged" | "signed" | "established" | "verified";
      /** One sentence per signal that held the level back or raised it. */
      reasons: string[];
      publisher: { verified: boolean; domain?: string; reason?: string; checked?: string };
      /** The day the release was first published (`YYYY-MM-DD`). */
      published: string;
      signing_keys: number;
    }
  | { status: "unknown"; reason: string };

/** One permission of a consent question. */
export interface DisclosedPermission {
  key: string;
  kind: string;
  scope: string;
  plain: string;
  risk: Risk;
  reason: string;
  change: "new" | "unchanged";
  needs_consent: boolean;
}

/** What a release may do; the permissions with `needs_consent` are asked. */
export interface Disclosure {
  plugin: PluginId;
  version: Version;
  permissions: DisclosedPermission[];
}

/** A store event (`event` names it): resolving, resolved, downloading, delta,
 * delta_fallback, verifying, extracting, activating, hook_called, done, disabled, warning. */
export type StoreEvent =
  | { event: "resolving"; requested: string[] }
  | { event: "resolved"; to_fetch: number }
  | { event: "downloading"; plugin: PluginId; version: Version; bytes_done: number; bytes_total: number | null }
  | { event: "verifying" | "activating"; plugin: PluginId; version: Version }
  | { event: "extracting"; plugin: PluginId; version: Version; files_done: number; files_total: number }
  | { event: "hook_called"; hook: string; plugin: PluginId; version: Version; ok: boolean }
  | { event: "done"; operation: string; plugin: PluginId; version: Version | null }
  | { event: "warning"; plugin: PluginId | null; message: string }
  | { event: string; [field: string]: unknown };

export interface Plan {
  releases: Array<{ plugin: PluginId; version: Version; from: Version | null; requested: boolean; download_bytes: number; unpacked_bytes: number }>;
  questions: Disclosure[];
}

/** A message of an operation's stream (consent questions go to `onConsent`). */
export type OperationMessage = { kind: "event"; event: StoreEvent } | { kind: "plan"; plan: Plan };

export interface OperationOptions {
  /** Progress and lifecycle events of this operation, in order. */
  onEvent?: (message: OperationMessage) => void;
  /** Ask the user; resolve to `true` to agree. Absent or throwing: refused. */
  onConsent?: (disclosure: Disclosure, id: number) => boolean | Promise<boolean>;
}

export interface InstallReport {
  installed: Array<[PluginId, Version]>;
  updated: Array<[PluginId, Version, Version]>;
  unchanged: Array<[PluginId, Version]>;
  disclosures: Disclosure[];
  blocked: unknown[];
  held_back: unknown[];
}

export interface UpdateReport {
  updated: Array<[PluginId, Version, Version]>;
  installed: Array<[PluginId, Version]>;
  skipped: Array<[PluginId, Version, string]>;
  rolled_back: Array<[PluginId, Version, string]>;
  [field: string]: unknown;
}

export interface UpdateCheckReport {
  updates: Array<{ plugin: PluginId; from: Version; to: Version; new_permissions: string[]; decision: unknown; [field: string]: unknown }>;
  blocked: unknown[];
  held_back: unknown[];
  revoked: unknown[];
}

export type SidecarState = { state: "running"; pid: number } | { state: "exited"; code: number | null } | { state: "stopped" };
export type SidecarInfo = { plugin: PluginId; version: Version; greeting: string; started_at_ms: number } & SidecarState;

export interface Installed {
  id: PluginId;
  registry: string;
  version: Version;
  previous: Version | null;
  reason: "requested" | "dependency";
  pinned: Version | null;
  disabled: { cause: string; reason: string; [field: string]: unknown } | null;
  sidecar: SidecarInfo | null;
}

export interface Policies {
  global: { mode: "auto" | "notify" | "manual"; check_interval: unknown; window: unknown; channel: string };
  plugins: Record<PluginId, { mode?: string; window?: unknown; channel?: string }>;
}

type Unlisten = () => void;

export function useTauri(api: { core: unknown; event: unknown }): void;
export function status(): Promise<Status>;
export function registries(): Promise<RegistryConfig[]>;
export function addRegistry(name: string, url: string, root: string): Promise<{ name: string; root_version: number; snapshot_version: number | null }>;
export function removeRegistry(name: string): Promise<void>;
export function search(query?: string): Promise<SearchResults>;
export function browse(listing?: string, page?: number): Promise<Record<string, unknown>>;
export function info(plugin: PluginId): Promise<Info>;
export function install(plugins: string | string[], options?: OperationOptions): Promise<InstallReport>;
export function checkUpdates(plugins?: PluginId | PluginId[]): Promise<UpdateCheckReport>;
export function update(plugins?: PluginId | PluginId[], options?: OperationOptions): Promise<UpdateReport>;
export function scheduledUpdate(options?: OperationOptions): Promise<UpdateReport | null>;
export function remove(plugin: PluginId, options?: OperationOptions & { cascade?: boolean }): Promise<PluginId[]>;
export function rollback(plugin: PluginId, options?: OperationOptions): Promise<Version>;
export function installed(): Promise<Installed[]>;
export function verify(plugins?: PluginId | PluginId[]): Promise<Array<Record<string, unknown>>>;
export function pins(): Promise<Record<PluginId, Version>>;
export function pin(plugin: PluginId, version?: Version): Promise<Version>;
export function unpin(plugin: PluginId): Promise<Version | null>;
export function policies(): Promise<Policies>;
export function setPolicy(change: { plugin?: PluginId; mode?: "auto" | "notify" | "manual"; channel?: "stable" | "beta" | "experimental"; reset?: boolean }): Promise<Policies>;
export function answerConsent(id: number, agree: boolean): Promise<void>;
export function sidecars(): Promise<SidecarInfo[]>;
export function onEvent(handler: (event: StoreEvent) => void): Promise<Unlisten>;
export function onSidecar(handler: (payload: SidecarInfo | { plugin: PluginId; line: string }) => void): Promise<Unlisten>;
export function onReady(handler: (status: Status) => void): Promise<Unlisten>;
export function onScheduledUpdate(handler: (payload: { report: UpdateReport | null } | { error: TrellisError }) => void): Promise<Unlisten>;
export function onConsentRequest(handler: (payload: { kind: "consent"; id: number; disclosure: Disclosure }) => void): Promise<Unlisten>;
