// tauri-plugin-trellis-api: the JavaScript API of tauri-plugin-trellis.
//
// A plain ES module: no bundler, no dependency. It uses the Tauri API the app exposes
// as `window.__TAURI__` (`"withGlobalTauri": true` in tauri.conf.json). An app that
// bundles `@tauri-apps/api` instead passes its modules once:
//   import * as core from "@tauri-apps/api/core";
//   import * as event from "@tauri-apps/api/event";
//   useTauri({ core, event });
//
// Every function returns a Promise; a refused or failed operation rejects with
// `{ kind, message }` (see index.d.ts). Long operations (install, update, remove,
// rollback) stream progress to `onEvent` and ask `onConsent` before installing what
// the user has not agreed to: nothing is installed unless `onConsent` resolves to
// `true` (without `onConsent`, every consent question is refused).

let tauri = null;

/** Uses these Tauri API modules instead of `window.__TAURI__`. */
export function useTauri(api) {
  tauri = api;
}

function api() {
  const found = tauri ?? globalThis.__TAURI__;
  if (!found || !found.core || !found.event) {
    throw new Error(
      "tauri-plugin-trellis-api: no Tauri API found; set \"withGlobalTauri\": true in tauri.conf.json " +
        "or call useTauri({ core, event }) with the @tauri-apps/api modules",
    );
  }
  return found;
}

function call(command, args) {
  return api().core.invoke(`plugin:trellis|${command}`, args ?? {});
}

function list(plugins) {
  if (plugins === undefined || plugins === null) return [];
  return Array.isArray(plugins) ? plugins : [plugins];
}

// The channel of one operation: events go to onEvent; consent questions to onConsent,
// whose answer (false when it throws or is absent) goes back to the store.
function operation(options) {
  const { onEvent, onConsent } = options ?? {};
  const channel = new (api().core.Channel)();
  channel.onmessage = async (message) => {
    if (message.kind === "consent") {
      let agree = false;
      try {
        agree = onConsent ? (await onConsent(message.disclosure, message.id)) === true : false;
      } catch (error) {
        console.error("tauri-plugin-trellis-api: onConsent failed; the question is refused", error);
      }
      await call("answer_consent", { id: message.id, agree });
    } else if (onEvent) {
      onEvent(message);
    }
  };
  return channel;
}

/** Where the store lives, whether it opened and how long that took. */
export const status = () => call("status");
/** The configured registries, first = highest priority. */
export const registries = () => call("registries");
/** Adds a registry, trusting `root` (the text of its 1.root.json). */
export const addRegistry = (name, url, root) => call("add_registry", { name, url, root });
/** Removes a registry (refused while installed plugins come from it). */
export const removeRegistry = (name) => call("remove_registry", { name });
/** Searches the registries' catalogs; an empty query lists everything. */
export const search = (query) => call("search", { query: query ?? "" });
/** The catalog home of each registry, or one page of a listing (`category/<name>`). */
export const browse = (listing, page) => call("browse", { listing: listing ?? null, page: page ?? null });
/** A plugin's releases, its newest release and that release's permissions in plain words. */
export const info = (plugin) => call("info", { plugin });
/** Installs plugins (`"acme.clock"`, `"acme.clock@^1.2"`) with their dependencies. */
export const install = (plugins, options) =>
  call("install", { plugins: list(plugins), onEvent: operation(options) });
/** The available updates and what the update policy would do with each. */
export const checkUpdates = (plugins) => call("check_updates", { plugins: list(plugins) });
/** Updates the plugins named (all installed ones when none); new permissions need consent. */
export const update = (plugins, options) =>
  call("update", { plugins: list(plugins), onEvent: operation(options) });
/** The scheduled check: applies what the policies allow when a check is due (`null` when not). */
export const scheduledUpdate = (options) => call("scheduled_update", { onEvent: operation(options) });
/** Removes a plugin; with `cascade`, the plugins that need it too. Resolves to the removed ids. */
export const remove = (plugin, options) =>
  call("remove", { plugin, cascade: options?.cascade ?? false, onEvent: operation(options) });
/** Rolls a plugin back to its kept previous release; resolves to the version now active. */
export const rollback = (plugin, options) => call("rollback", { plugin, onEvent: operation(options) });
/** The installed plugins with their state and sidecar process. */
export const installed = () => call("list");
/** Checks installed files against their signed manifests (all plugins when none named). */
export const verify = (plugins) => call("verify", { plugins: list(plugins) });
/** The pins: plugin id → version. */
export const pins = () => call("pins");
/** Pins a plugin at `version` (its active release when omitted). */
export const pin = (plugin, version) => call("pin", { plugin, version: version ?? null });
/** Unpins a plugin; resolves to the version it was pinned at, or null. */
export const unpin = (plugin) => call("unpin", { plugin });
/** The update policies. */
export const policies = () => call("policies");
/** Changes the global policy, or one plugin's: `{ plugin, mode, channel, reset }`. */
export const setPolicy = (change) =>
  call("set_policy", {
    plugin: change?.plugin ?? null,
    mode: change?.mode ?? null,
    channel: change?.channel ?? null,
    reset: change?.reset ?? false,
  });
/** Answers a consent question asked outside an operation's channel (`onConsentRequest`). */
export const answerConsent = (id, agree) => call("answer_consent", { id, agree: agree === true });
/** The plugins started as sidecar processes, with their state. */
export const sidecars = () => call("sidecars");

function listen(name, handler) {
  return api().event.listen(name, (event) => handler(event.payload));
}

/** Every store event in any window (progress, hooks, done, warnings); resolves to an unlisten function. */
export const onEvent = (handler) => listen("trellis://event", handler);
/** A sidecar started, stopped, or printed a line. */
export const onSidecar = (handler) => listen("trellis://sidecar", handler);
/** The store opened (or failed to); the payload is the status. */
export const onReady = (handler) => listen("trellis://ready", handler);
/** A scheduled update check ran (`{ report }` or `{ error }`). */
export const onScheduledUpdate = (handler) => listen("trellis://scheduled-update", handler);
/** Consent asked by an operation started from Rust (no channel): answer with answerConsent. */
export const onConsentRequest = (handler) => listen("trellis://consent", handler);
