//! The store: the lifecycle processes a host app (or the `trellis` CLI) drives.
//!
//! Owns the orchestration of the product spec's processes over the lower layers:
//! - registry management ([`registries`]): named registries with a pinned root;
//! - the mirrors of each registry ([`mirrors`]): the user's, the registry's URL and those
//!   it publishes in its signed metadata, ordered by a persisted health memory;
//! - the registries as verified sources ([`source`]): TUF refresh at the start of every
//!   operation, index docs for the resolver (lazy, memoized per snapshot, parallel
//!   prefetch), publisher records, the blocklist;
//! - the blocklist against the installed set ([`blocked`]): blocked copies stopped,
//!   marked disabled and reported, their dependents held back;
//! - download and verification of releases ([`fetch`]), with a delta from the
//!   installed release when the registry has one ([`delta`]);
//! - install ([`install`]): resolve → free-space check → permission disclosure and
//!   consent → download + verify → hardened extraction into staging → `before_install`
//!   → atomic activation → `register`, `start`;
//! - update ([`update`]): policy → permission diff and re-consent → download + verify →
//!   `stop` → swap → verify → `start`, rolling back automatically on any failure;
//! - remove and rollback ([`remove`]);
//! - verification of installed files against their signed manifests ([`verify`]);
//! - discovery ([`discover`]): search, browse and "did you mean" over the signed catalog.
//! - licenses and trials ([`license`]): tokens verified offline under the pinned
//!   vendor record, the trial started at the first install, the host told.
//!
//! It holds the data-dir lock for its whole life (through [`StateStore`]) and settles an
//! interrupted operation when opened. Files move only through [`crate::activate`];
//! packages are read only by [`crate::package`]; bytes are trusted only through
//! [`crate::trust`]. Drawing progress and asking the user are the caller's: events go to
//! a [`Reporter`], consent questions to a [`Consent`].

mod admin;
pub mod advisories;
pub mod blocked;
pub mod delta;
pub mod discover;
pub mod fetch;
pub mod install;
pub mod levels;
pub mod license;
pub mod mirrors;
pub mod publishers;
pub mod registries;
pub mod remove;
pub mod source;
pub mod space;
mod telemetry;
pub mod update;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use semver::Version;
use trellis_schema::PluginId;
use trellis_schema::plugin::Platform;

use crate::activate::{self, ActivateError, HostAction, Recovery};
use crate::consent::Disclosure;
use crate::events::{Event, NoReporter, Reporter};
use crate::hooks::{Hook, HookContext, HookError, HostHooks, call_hook};
use crate::resolve::{self, HostApp, Request, ResolveError};
use crate::state::{DataDir, RegistryName, StateError, StateStore};
use crate::transport::HttpOptions;
use crate::trust::{MetadataOrder, TrustError};

pub use advisories::AdvisoryFinding;
pub use blocked::{DisabledRelease, HeldBack};
pub use discover::{Browse, SearchHit, SearchResults};
pub use fetch::{PUBLISHER_RECORD_FILE, RELEASE_ENVELOPE_FILE};
pub use install::InstallReport;
pub use license::LicenseEntry;
pub use registries::{Registries, RegistryConfig};
pub use update::{UpdateCheckReport, UpdateReport};
pub use verify::{FileProblem, VerifyReport};

/// What to do about a failed download of a release's blob: when every mirror answered
/// "not found", the registry's site (typically a partial mirror, a copied folder) does
/// not hold the plugin's files.
fn download_hint(source: &TrustError, plugin: &PluginId) -> String {
    match source {
        TrustError::Fetch(e) if e.is_not_found() => format!(
            "the files of {plugin} are not in this mirror (a partial mirror holds only the plugins copied into it: \
             copy it again with `trellis-index mirror SOURCE DEST --only {plugin} --with-dependencies`, or add a \
             mirror that has them with `trellis registry mirror add`)"
        ),
        _ => "check the connection and try again".to_owned(),
    }
}

/// A failed store operation. Every variant names what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// State file or data dir.
    #[error(transparent)]
    State(#[from] StateError),
    /// A step of activation.
    #[error(transparent)]
    Activate(#[from] ActivateError),
    /// A file operation.
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
    /// The administrator policy does not allow it (names the file and the rule).
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminRefusal),
    /// Resolution failed (a conflict is explained in sentences).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The registries configuration is unreadable.
    #[error("registry configuration {} is damaged: {problem}; fix or delete it and add the registries again", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `registry add` of a name in use.
    #[error("a registry named `{name}` is configured already; remove it first or choose another name")]
    RegistryExists {
        /// The name.
        name: RegistryName,
    },
    /// A registry name that is not configured.
    #[error("no registry named `{name}` is configured; `trellis registry list` shows the configured ones")]
    UnknownRegistry {
        /// The name.
        name: RegistryName,
    },
    /// `registry remove` of a registry installed plugins came from.
    #[error("registry `{name}` provides the installed plugin {plugin}; remove its plugins first")]
    RegistryInUse {
        /// The registry.
        name: RegistryName,
        /// One plugin installed from it.
        plugin: PluginId,
    },
    /// A registry name that is not a valid local name.
    #[error("`{name}` is not a valid registry name (lowercase letters, digits and `-`)")]
    BadRegistryName {
        /// The name.
        name: String,
    },
    /// A URL the client cannot fetch from.
    #[error(
        "registry URL `{url}` must start with http://, https:// or file:// (a folder: file:///absolute/path/to/site)"
    )]
    BadRegistryUrl {
        /// The URL.
        url: String,
    },
    /// A `file://` URL whose path is not absolute.
    #[error(
        "`{url}` is not an absolute file URL: write file:// followed by the absolute path, e.g. file:///media/usb/registry (three slashes)"
    )]
    RelativeFileUrl {
        /// The URL.
        url: String,
    },
    /// `registry add` of a registry configured already under another name.
    #[error(
        "registry `{existing}` has the same {what} already; `{name}` was not added (the same registry twice would only shadow it)"
    )]
    SameRegistry {
        /// The name asked for.
        name: RegistryName,
        /// The registry configured already.
        existing: RegistryName,
        /// What they share (`URL …`, `root metadata`).
        what: String,
    },
    /// The first refresh of a registry being added failed; it was not added.
    #[error("registry `{name}` was not added: {problem}")]
    AddFailed {
        /// The name asked for.
        name: RegistryName,
        /// What the refresh found, explained.
        problem: Box<registries::AddProblem>,
    },
    /// A mirror URL the client cannot use.
    #[error(
        "mirror URL `{url}` must be an https:// or http:// URL with a host, or an absolute file:/// path (a copied site)"
    )]
    BadMirrorUrl {
        /// The URL.
        url: String,
    },
    /// `registry mirror add` of a mirror the registry has already.
    #[error("registry `{registry}` has the mirror {url} already")]
    MirrorExists {
        /// The registry.
        registry: RegistryName,
        /// The mirror.
        url: String,
    },
    /// `registry mirror remove` of a mirror the user did not add.
    #[error("`{url}` is not one of your mirrors of registry `{registry}` (yours: {}); the registry's own URL and the mirrors it publishes cannot be removed", if user_mirrors.is_empty() { "none".to_owned() } else { user_mirrors.join(", ") })]
    UnknownMirror {
        /// The registry.
        registry: RegistryName,
        /// The URL asked for.
        url: String,
        /// The user's mirrors of the registry.
        user_mirrors: Vec<String>,
    },
    /// The pinned root does not verify.
    #[error(
        "the root metadata given for registry `{name}` is not a valid, self-signed, unexpired TUF root: {source}; get the registry's 1.root.json from its operator"
    )]
    BadRoot {
        /// The registry.
        name: RegistryName,
        /// Why.
        source: Box<TrustError>,
    },
    /// No registry is configured.
    #[error("no registry is configured; add one with `trellis registry add NAME URL --root ROOT.json`")]
    NoRegistry,
    /// Trust failed for a registry (refresh, delegation walk, target hash).
    #[error("registry `{registry}`: {source}")]
    Trust {
        /// The registry.
        registry: RegistryName,
        /// Why.
        source: Box<TrustError>,
    },
    /// A signed document does not parse.
    #[error("registry `{registry}` serves a malformed {target}: {problem}; report it to the registry's operator")]
    BadDocument {
        /// The registry.
        registry: RegistryName,
        /// The target path.
        target: String,
        /// The parse error.
        problem: String,
    },
    /// A catalog document is refused (too large, malformed).
    #[error("registry `{registry}`: {source}")]
    Catalog {
        /// The registry.
        registry: RegistryName,
        /// What is wrong.
        #[source]
        source: trellis_schema::catalog::CatalogError,
    },
    /// A target the index doc refers to is not signed by the registry.
    #[error(
        "registry `{registry}` does not sign the {what} {target}; the registry is inconsistent, report it to its operator"
    )]
    MissingTarget {
        /// The registry.
        registry: RegistryName,
        /// The target path.
        target: String,
        /// What it should have been.
        what: String,
    },
    /// Two signed facts about a release disagree.
    #[error(
        "{plugin} {version}: {what} do not match; the release was not installed (report it to the registry's operator)"
    )]
    Mismatch {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// What disagrees.
        what: String,
    },
    /// A publisher's record chain is refused: not a valid successor of the version
    /// pinned here, a rollback, a fork, or malformed.
    #[error("registry `{registry}`: {chain}; nothing was installed or changed")]
    Publisher {
        /// The registry.
        registry: RegistryName,
        /// Why.
        chain: Box<trellis_schema::publisher::ChainError>,
    },
    /// The index doc's entry for a release says something else than the manifest the
    /// developer signed (permissions, dependencies, channel, host requirement or
    /// platforms): only the registry's online keys vouch for the index doc.
    #[error(
        "{plugin} {version}: the index doc of registry `{registry}` lists {} {} but the developer signed {}; the registry may be compromised, so the release was refused (report it to the registry's operator)",
        disagreement.field, disagreement.index, disagreement.signed
    )]
    IndexDisagrees {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The registry whose index doc disagrees.
        registry: RegistryName,
        /// The field and both values.
        disagreement: Box<trellis_schema::manifest::Disagreement>,
    },
    /// The developer's signed envelope of a release could not be downloaded.
    #[error(
        "{plugin} {version}: downloading its signed envelope from registry `{registry}` failed: {source}; {}",
        download_hint(source, plugin)
    )]
    EnvelopeDownload {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The registry it was downloaded from.
        registry: RegistryName,
        /// Why.
        source: Box<TrustError>,
    },
    /// The developer signature does not verify.
    #[error("{plugin} {version}: the developer signature is not valid: {problem}; the release was not installed")]
    Signature {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// Why.
        problem: String,
    },
    /// A package could not be downloaded, or its bytes are not the ones its index doc
    /// lists.
    #[error(
        "{plugin} {version}: downloading the package from registry `{registry}` failed: {source}; {}",
        download_hint(source, plugin)
    )]
    Download {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The registry it was downloaded from.
        registry: RegistryName,
        /// Why (a hash mismatch names the blob, what vouched for it, expected and actual).
        source: Box<TrustError>,
    },
    /// Files rebuilt from a delta could not be moved into place.
    #[error("{plugin} {version}: placing the files rebuilt from a delta failed: {problem}")]
    Delta {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// What went wrong.
        problem: String,
    },
    /// A package was refused by the hardened reader.
    #[error("{plugin} {version}: the package was refused: {source}")]
    Package {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// Why.
        source: Box<crate::package::PackageError>,
    },
    /// Not enough free space, found before any download.
    #[error(
        "not enough free space in {}: the operation needs {needed} bytes (downloads and unpacked files), {available} are available; free some space and try again",
        path.display()
    )]
    InsufficientSpace {
        /// The data dir.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The user did not agree to the permissions.
    #[error("{plugin} {version} was not installed: the permissions it asks for ({}) were not agreed to; run again and agree, or pass --yes", permissions.join(", "))]
    ConsentRefused {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The permissions asked for.
        permissions: Vec<String>,
    },
    /// A blocklisted release was requested.
    #[error("{plugin} {version} is blocklisted by the registry ({reason}); it cannot be installed")]
    Blocked {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The blocklist's reason.
        reason: String,
    },
    /// A host hook refused or failed; the operation was undone.
    #[error("the host app's {hook} hook failed for {plugin} {version}: {source}; {undone}")]
    Hook {
        /// The hook.
        hook: Hook,
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// What the host said.
        source: Box<HookError>,
        /// What was done about it.
        undone: String,
    },
    /// No configured registry serves the plugin.
    #[error(
        "no configured registry serves {plugin}; check the id (`trellis search`) or add the registry that publishes it"
    )]
    NotServed {
        /// The plugin.
        plugin: PluginId,
    },
    /// The plugin is not installed.
    #[error("{plugin} is not installed; `trellis list` shows what is")]
    NotInstalled {
        /// The plugin.
        plugin: PluginId,
    },
    /// Removal refused because other installed plugins need the plugin.
    #[error("{plugin} is needed by {}; remove those first, or pass --cascade to remove them too", dependents.iter().map(PluginId::to_string).collect::<Vec<_>>().join(", "))]
    HasDependents {
        /// The plugin.
        plugin: PluginId,
        /// Installed plugins that depend on it.
        dependents: Vec<PluginId>,
    },
    /// A rollback was refused: the kept previous release is not signed by a key its
    /// publisher's newest record (pinned here) still vouches for.
    #[error(
        "{plugin}: cannot roll back to {version}: its signature {problem}; {active} stays active (ask the publisher for a re-signed release)"
    )]
    RollbackRevoked {
        /// The plugin.
        plugin: PluginId,
        /// The kept previous release.
        version: Version,
        /// The active release, left as it is (boxed: keeps `StoreError` small).
        active: Box<Version>,
        /// Why the signature no longer counts.
        problem: String,
    },
    /// A license token was refused (malformed, forged, edited, for a key the vendor
    /// revoked or does not list, or expired); nothing was changed.
    #[error("{source}")]
    License {
        /// Why.
        source: Box<trellis_schema::license::LicenseError>,
    },
    /// The licenses file is unreadable or could not be written.
    #[error(transparent)]
    Licenses(#[from] crate::license::LicensesFileError),
    /// `license remove` of a plugin without a token.
    #[error("no license token was added for {plugin}; `trellis license list` shows the ones that were")]
    NoLicense {
        /// The plugin.
        plugin: PluginId,
    },
    /// No configured registry has a record of the token's vendor to verify it under.
    #[error(
        "no configured registry has a publisher record of {}, so the license token for {plugin} cannot be verified; add the registry that publishes {plugin} first",
        plugin.vendor_id()
    )]
    NoPublisherRecord {
        /// The plugin the token is for.
        plugin: PluginId,
    },
    /// A rollback would move to a newer release than the active one: the plugin was
    /// rolled back already and is held there.
    #[error(
        "{plugin} is at {active}, held there by the last rollback; its kept release {previous} is newer, so rolling back again would undo the rollback. To move on, `trellis unpin {plugin}` then `trellis update {plugin}`"
    )]
    RollbackForward {
        /// The plugin.
        plugin: PluginId,
        /// The active release.
        active: Version,
        /// The newer kept release (boxed: keeps `StoreError` small).
        previous: Box<Version>,
    },
    /// An update or rollback switched to a release whose files do not verify; the
    /// switch was undone.
    #[error("{plugin} {version}: installed files do not match the signed manifest ({problem}); {undone}")]
    Corrupt {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The first problem.
        problem: String,
        /// What was done about it.
        undone: String,
    },
}

/// Asks the user to agree to permissions. The CLI prompts (or `--yes` agrees); a host
/// app shows its own dialog.
pub trait Consent {
    /// Whether the user agrees to the permissions of `disclosure` that need consent.
    fn agree(&self, disclosure: &Disclosure) -> bool;

    /// What the operation is about to do, given once before any [`Consent::agree`]
    /// question of the operation (only when at least one is coming): every release it
    /// installs or updates to, with its download size, and every disclosure it will ask
    /// about. A dialog can show the whole plan and ask once. Does nothing by default.
    fn plan(&self, _plan: &Plan) {}

    /// Whether every question would be answered "yes" without asking anyone (`--yes`,
    /// a host app's policy). Then an install starts downloading the packages of new
    /// plugins (into the verified cache, nothing opened) while their signatures are
    /// checked, before the questions; otherwise nothing is downloaded before consent.
    /// `false` by default.
    fn agrees_in_advance(&self) -> bool {
        false
    }
}

/// One release an operation installs, or updates a plugin to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlannedRelease {
    /// The plugin.
    pub plugin: PluginId,
    /// The release.
    pub version: Version,
    /// The installed release it replaces, for an update.
    pub from: Option<Version>,
    /// Whether the user named it (otherwise another plugin needs it).
    pub requested: bool,
    /// Bytes of its package (the most that is downloaded; a delta may be less).
    pub download_bytes: u64,
    /// Bytes of its files once unpacked.
    pub unpacked_bytes: u64,
}

/// What an operation is about to do, shown before consent is asked
/// ([`Consent::plan`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// Every release installed or updated to, dependencies before the plugins that need them.
    pub releases: Vec<PlannedRelease>,
    /// The disclosures that will be asked about, in order.
    pub questions: Vec<Disclosure>,
}

/// Agrees to everything (`--yes`, scripted installs).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAgree;

impl Consent for AlwaysAgree {
    fn agree(&self, _disclosure: &Disclosure) -> bool {
        true
    }

    fn agrees_in_advance(&self) -> bool {
        true
    }
}

/// Agrees to nothing (non-interactive without `--yes`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverAgree;

impl Consent for NeverAgree {
    fn agree(&self, _disclosure: &Disclosure) -> bool {
        false
    }
}

/// Whether a store may use the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// Refresh every registry; one that cannot be reached is used offline when its
    /// persisted metadata is unexpired (see [`source::Remotes::offline_uses`]).
    #[default]
    Online,
    /// No request at all: persisted metadata (unexpired) and cached downloads only.
    Offline,
}

/// How a store is set up: which host app it serves and how it reaches registries.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The host app (its id and plugin API version).
    pub host: HostApp,
    /// The platform plugins must run on.
    pub platform: Platform,
    /// HTTP settings.
    pub http: HttpOptions,
    /// Whether the network may be used.
    pub network: Network,
    /// Judge metadata expiry at this time instead of the clock (tests).
    pub reference_time: Option<jiff::Timestamp>,
    /// Test hook for the crash-safety test: abort the process at the Nth step of an
    /// operation. `None` in normal use.
    pub crash_at: Option<u64>,
    /// The administrator policy to enforce ([`crate::admin`]); `None`: no policy.
    pub admin_policy: Option<Arc<crate::admin::AdminPolicy>>,
    /// Whether outcomes go to [`HostHooks::telemetry`]
    /// (default off; see [`crate::telemetry`]).
    pub telemetry: crate::telemetry::Telemetry,
    /// When TUF metadata is downloaded: [`MetadataOrder::Speculative`] (the default)
    /// asks for what an operation's first lookups need together with the update
    /// check, each file verified when and as the spec's order reaches it
    /// ([`crate::trust::speculation`]); [`MetadataOrder::Strict`] asks for each file
    /// when that order reaches it (one more round trip per delegation level), and then
    /// no index doc alias is asked for with the check either.
    pub metadata_order: MetadataOrder,
}

impl StoreOptions {
    /// Options for `host` on the current platform (`any` where it is not one of ours).
    pub fn new(host: HostApp) -> Self {
        Self {
            host,
            platform: Platform::current().unwrap_or(Platform::Any),
            http: HttpOptions::default(),
            network: Network::Online,
            reference_time: None,
            crash_at: None,
            telemetry: crate::telemetry::Telemetry::Off,
            admin_policy: None,
            metadata_order: MetadataOrder::Speculative,
        }
    }
}

/// What the embedding app lends an operation: its hooks, a reporter and consent.
#[derive(Clone)]
pub struct Session<'a> {
    /// The host app's hooks.
    pub hooks: &'a dyn HostHooks,
    /// Where progress goes.
    pub reporter: Arc<dyn Reporter>,
    /// Who agrees to permissions.
    pub consent: &'a dyn Consent,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl<'a> Session<'a> {
    /// A session with no reporter.
    pub fn new(hooks: &'a dyn HostHooks, consent: &'a dyn Consent) -> Self {
        Self { hooks, reporter: Arc::new(NoReporter), consent }
    }

    /// Reports to `reporter`.
    #[must_use]
    pub fn with_reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    pub(crate) fn hook(
        &self,
        hook: Hook,
        ctx: HookContext<'_>,
        from: Option<HookContext<'_>>,
    ) -> Result<(), HookError> {
        call_hook(self.hooks, &*self.reporter, hook, ctx, from)
    }
}

/// An open store: the data dir (locked), the registries, the options.
pub struct Store {
    state: StateStore,
    registries: Registries,
    options: StoreOptions,
    remotes: Option<Arc<source::Remotes>>,
    relay: Arc<fetch::ProgressRelay>,
    recovery: Vec<Recovery>,
    crash: CrashPoints,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("data_dir", self.state.data_dir()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the data dir at `dir`, waiting for the lock, and settles an operation a
    /// crash interrupted (see [`Store::recovery`] and [`Store::finish_recovery`]).
    pub fn open(dir: impl Into<PathBuf>, options: StoreOptions) -> Result<Self, StoreError> {
        Self::open_with(dir.into(), options, true)
    }

    /// Like [`Store::open`], but fails with [`StateError::Busy`] (inside
    /// [`StoreError::State`]) instead of waiting while another process holds the data
    /// dir, so a caller can say it is waiting before calling [`Store::open`].
    pub fn try_open(dir: impl Into<PathBuf>, options: StoreOptions) -> Result<Self, StoreError> {
        Self::open_with(dir.into(), options, false)
    }

    fn open_with(dir: PathBuf, options: StoreOptions, wait: bool) -> Result<Self, StoreError> {
        let dir = DataDir::new(dir);
        crate::fs::create_dir_all(dir.root())?;
        let opened = if wait { StateStore::open(dir.clone()) } else { StateStore::try_open(dir.clone()) };
        let mut state = match opened {
            Ok(state) => state,
            // A data dir this process cannot write is still readable: list and verify
            // work; anything that would change it fails with `StateError::ReadOnly`.
            Err(StateError::Fs(error))
                if matches!(
                    error.source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                StateStore::open_read_only(dir.clone())?
            }
            Err(error) => return Err(error.into()),
        };
        let recovery = activate::recover(&mut state)?;
        let registries = Registries::load(&dir)?;
        Ok(Self {
            state,
            registries,
            remotes: None,
            relay: Arc::default(),
            crash: CrashPoints { at: options.crash_at, steps: 0 },
            recovery,
            options,
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &DataDir {
        self.state.data_dir()
    }

    /// The state (installed set, consents, pins, policies).
    pub fn state(&self) -> &crate::state::State {
        self.state.state()
    }

    /// Changes the state (pins, policies, bindings) in one atomic write.
    pub fn update_state<R>(&mut self, change: impl FnOnce(&mut crate::state::State) -> R) -> Result<R, StoreError> {
        Ok(self.state.update(change)?)
    }

    /// The options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// What opening the store settled, one entry per operation of the interrupted
    /// transaction (empty when nothing had been interrupted).
    pub fn recovery(&self) -> &[Recovery] {
        &self.recovery
    }

    /// Tells the host what recovery owes it (start, register, unregister), operation by
    /// operation in the order they were journalled (dependencies first).
    pub fn finish_recovery(&mut self, session: &Session<'_>) -> Result<(), StoreError> {
        for recovery in std::mem::take(&mut self.recovery) {
            self.tell_host_recovered(recovery, session);
        }
        Ok(())
    }

    fn tell_host_recovered(&self, recovery: Recovery, session: &Session<'_>) {
        let plugin = recovery.operation.plugin.clone();
        session.reporter.report(Event::Warning { plugin: Some(plugin.clone()), message: recovery.to_string() });
        let path_of = |v: &Version| self.data_dir().release_dir(&plugin, v);
        let result = match &recovery.host {
            HostAction::None => Ok(()),
            HostAction::Start(v) => {
                let path = path_of(v);
                session.hook(Hook::Start, HookContext { plugin: &plugin, version: v, path: &path }, None)
            }
            HostAction::RegisterAndStart(v) => {
                let path = path_of(v);
                let ctx = HookContext { plugin: &plugin, version: v, path: &path };
                session.hook(Hook::Register, ctx, None).and_then(|()| session.hook(Hook::Start, ctx, None))
            }
            HostAction::Unregister => {
                let version = recovery.operation.from.clone().unwrap_or_else(|| Version::new(0, 0, 0));
                let path = path_of(&version);
                session.hook(Hook::Unregister, HookContext { plugin: &plugin, version: &version, path: &path }, None)
            }
        };
        if let Err(error) = result {
            session.reporter.report(Event::Warning {
                plugin: Some(plugin),
                message: format!("the host could not be told about the recovered state: {error}"),
            });
        }
    }

    /// The configured registries.
    pub fn registries(&self) -> &Registries {
        &self.registries
    }

    /// Adds registry `name` at `url`, trusting `root` (its root metadata bytes), and
    /// refreshes it once: when the site cannot be reached, is not at that URL or is not
    /// signed by that root, the registry is not added ([`StoreError::AddFailed`] says
    /// which). Returns the versions of its trusted root and snapshot.
    pub fn add_registry(&mut self, name: &str, url: &str, root: &[u8]) -> Result<(u64, Option<u64>), StoreError> {
        let name: RegistryName = name.parse().map_err(|_| StoreError::BadRegistryName { name: name.to_owned() })?;
        if let Some(admin) = &self.options.admin_policy {
            admin.check_registry(url)?;
        }
        self.registries = Registries::add(self.state.data_dir(), name.clone(), url, root)?;
        self.remotes = None;
        let checked = self.remotes().and_then(|remotes| remotes.trusted_versions(&name));
        match checked {
            Ok(versions) => Ok(versions),
            Err(error) => {
                self.registries = Registries::remove(self.state.data_dir(), &name)?;
                self.remotes = None;
                Err(match error {
                    StoreError::Trust { source, .. } => {
                        StoreError::AddFailed { name, problem: Box::new(registries::AddProblem::explain(url, &source)) }
                    }
                    other => other,
                })
            }
        }
    }

    /// Adds `url` as the user's mirror of registry `name` (asked before the registry's
    /// own URL; every file from it is verified like any other).
    pub fn add_mirror(&mut self, name: &str, url: &str) -> Result<(), StoreError> {
        let name: RegistryName = name.parse().map_err(|_| StoreError::BadRegistryName { name: name.to_owned() })?;
        self.registries = Registries::add_mirror(self.state.data_dir(), &name, url)?;
        self.remotes = None;
        Ok(())
    }

    /// Removes the user's mirror `url` of registry `name`.
    pub fn remove_mirror(&mut self, name: &str, url: &str) -> Result<(), StoreError> {
        let name: RegistryName = name.parse().map_err(|_| StoreError::BadRegistryName { name: name.to_owned() })?;
        self.registries = Registries::remove_mirror(self.state.data_dir(), &name, url)?;
        self.remotes = None;
        Ok(())
    }

    /// The mirrors of registry `name` in order of preference (the user's, the
    /// registry's URL, those it published as of its last refresh) with what the
    /// health memory knows of each. No network.
    pub fn mirrors(&self, name: &str) -> Result<Vec<mirrors::MirrorStatus>, StoreError> {
        let name: RegistryName = name.parse().map_err(|_| StoreError::BadRegistryName { name: name.to_owned() })?;
        let config = self.registries.get(&name).ok_or_else(|| StoreError::UnknownRegistry { name: name.clone() })?;
        let dir = self.state.data_dir();
        let published = mirrors::published(&dir.metadata_dir(&name));
        let health =
            crate::transport::MirrorHealth::load(mirrors::health_file(dir), crate::transport::HealthOptions::default());
        Ok(mirrors::statuses(config, &published, Some(&health)))
    }

    /// Removes registry `name`; refused while installed plugins came from it.
    pub fn remove_registry(&mut self, name: &str) -> Result<(), StoreError> {
        let name: RegistryName = name.parse().map_err(|_| StoreError::BadRegistryName { name: name.to_owned() })?;
        if let Some((plugin, _)) = self.state().plugins().iter().find(|(_, p)| p.registry == name) {
            return Err(StoreError::RegistryInUse { name, plugin: plugin.clone() });
        }
        self.registries = Registries::remove(self.state.data_dir(), &name)?;
        self.state.update(|s| s.vendors.retain(|_, r| r != &name))?;
        self.remotes = None;
        Ok(())
    }

    /// The registries as verified sources, for a new operation: each registry is
    /// refreshed on its next use (see [`source::Remotes::start_operation`]).
    pub(crate) fn fresh_remotes(&mut self) -> Result<Arc<source::Remotes>, StoreError> {
        let remotes = self.remotes()?;
        remotes.start_operation();
        Ok(remotes)
    }

    /// The registries as verified sources (created on first use). They are refreshed
    /// when first used and at the start of every lifecycle operation (install, update,
    /// update check, scheduled update, info, search), not on each call of this.
    pub fn remotes(&mut self) -> Result<Arc<source::Remotes>, StoreError> {
        if self.registries.registries.is_empty() {
            return Err(StoreError::NoRegistry);
        }
        if self.remotes.is_none() {
            let progress: Arc<dyn crate::transport::Progress> = self.relay.clone();
            self.remotes = Some(Arc::new(source::Remotes::new(
                self.state.data_dir(),
                &self.registries,
                &self.options.http,
                Some(progress),
                self.options.reference_time,
                self.options.network,
                self.options.metadata_order,
            )?));
        }
        self.remotes.clone().ok_or(StoreError::NoRegistry)
    }

    /// A resolution request reflecting the state: installed set, pins, channels,
    /// vendor bindings, registries in priority order.
    pub(crate) fn request(&self) -> Request {
        let state = self.state();
        let mut registries = resolve::Registries::new(self.registries.registries.iter().map(|r| r.name.clone()));
        for (vendor, registry) in &state.vendors {
            registries = registries.with_binding(vendor.clone(), registry.clone());
        }
        let mut request = Request::new(self.options.host.clone(), self.options.platform, registries);
        request.channel = state.policies.global.channel;
        request.channels = state.policies.channels();
        request.pins = state.pins.clone();
        request.installed = state.installed_versions();
        request
    }

    /// The index doc of an installed or available plugin, from the first registry
    /// that serves it (or the one its vendor is bound to).
    pub fn info(
        &mut self,
        plugin: &PluginId,
    ) -> Result<(RegistryName, Arc<trellis_schema::index::IndexDoc>), StoreError> {
        let bound = self.state().vendor_registry(&plugin.vendor_id()).cloned();
        let order: Vec<RegistryName> = match bound {
            Some(bound) => vec![bound],
            None => self.registries.registries.iter().map(|r| r.name.clone()).collect(),
        };
        let remotes = self.fresh_remotes()?;
        for registry in order {
            if let Some(doc) = remotes.doc(&registry, plugin)? {
                return Ok((registry, doc));
            }
        }
        Err(StoreError::NotServed { plugin: plugin.clone() })
    }

    /// The registries used without reaching them since the store was opened (offline
    /// mode, or unreachable with unexpired metadata), with how old their metadata is.
    pub fn offline_uses(&self) -> Vec<source::OfflineUse> {
        self.remotes.as_ref().map(|r| r.offline_uses()).unwrap_or_default()
    }

    /// The merged blocklist of every registry, as last refreshed (for listings that mark
    /// blocked releases; operations check it themselves).
    pub fn blocklist(&mut self) -> Result<trellis_schema::blocklist::Blocklist, StoreError> {
        self.remotes()?.blocklist()
    }

    /// Sends download progress of this session's operations to its reporter.
    pub(crate) fn relay_progress(&self, session: &Session<'_>) {
        self.relay.set_reporter(Arc::clone(&session.reporter));
    }

    pub(crate) fn relay(&self) -> &fetch::ProgressRelay {
        &self.relay
    }
}

/// Test hook: counts the steps of operations and aborts the process at the configured
/// one, so the crash-safety test can kill the CLI at every step in turn.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CrashPoints {
    at: Option<u64>,
    steps: u64,
}

impl CrashPoints {
    pub(crate) fn step(&mut self) {
        self.steps += 1;
        if self.at == Some(self.steps) {
            std::process::abort();
        }
    }
}
