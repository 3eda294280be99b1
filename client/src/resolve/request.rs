//! What the caller asks the resolver for: a [`Request`].
//!
//! Owns the plain values that describe one resolution: root requirements, the host app,
//! the platform, channels, pins, the installed set, the blocklist, the registries and
//! their namespace bindings, and which installed plugins may move. It holds no I/O and no
//! policy beyond defaults; the lifecycle builds a request from its state file and hands
//! it to [`super::resolve`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use semver::{Version, VersionReq};
use trellis_schema::blocklist::Blocklist;
use trellis_schema::id::{PluginId, VendorId};
use trellis_schema::plugin::{Channel, Platform};

use crate::registry_name::RegistryName;

/// The host application the plugins run in: it is the virtual `host` package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostApp {
    /// Host application id, compared with each release's `host.id`.
    pub id: String,
    /// The plugin API version this build of the host provides.
    pub api_version: Version,
}

/// A root requirement: "I want this plugin, in this range".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The plugin.
    pub id: PluginId,
    /// Acceptable versions; `*` for any.
    pub version: VersionReq,
}

impl Requirement {
    /// A requirement on any version of `id`.
    pub fn any(id: PluginId) -> Self {
        Self { id, version: VersionReq::STAR }
    }
}

/// The registries to resolve against and which one serves each vendor namespace.
///
/// A namespace (`acme` in `acme.clock`) is served by exactly one registry. An explicit
/// binding wins; otherwise the first registry in priority order that serves a plugin of
/// that namespace gets it, and [`super::Resolution::inferred_bindings`] reports the choice
/// so the caller records it. A plugin of a bound namespace is never taken from another
/// registry, whatever versions that registry offers (dependency confusion).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registries {
    /// Registries in priority order, highest first.
    pub priority: Vec<RegistryName>,
    /// Namespaces already bound to a registry (from state or configuration).
    pub bindings: BTreeMap<VendorId, RegistryName>,
}

impl Registries {
    /// Registries in priority order, with no binding yet.
    pub fn new(priority: impl IntoIterator<Item = RegistryName>) -> Self {
        Self { priority: priority.into_iter().collect(), bindings: BTreeMap::new() }
    }

    /// Binds `vendor`'s namespace to `registry`.
    #[must_use]
    pub fn with_binding(mut self, vendor: VendorId, registry: RegistryName) -> Self {
        self.bindings.insert(vendor, registry);
        self
    }
}

/// Which installed plugins may move to another version.
///
/// Like `cargo update -p` and uv's `--upgrade-package`: installing a new plugin keeps
/// every installed plugin at its version when that still works ([`Upgrade::Nothing`]);
/// `update` moves everything ([`Upgrade::All`]); `update ID…` moves only those
/// ([`Upgrade::Only`]). Keeping is a preference, not a constraint: when a new plugin needs
/// a newer dependency than the installed one, the dependency moves. Re-installing a
/// plugin that is already installed is `Only` that plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Upgrade {
    /// Prefer the installed version of every installed plugin.
    #[default]
    Nothing,
    /// Prefer the newest allowed version of every plugin.
    All,
    /// Prefer the newest version of these plugins, the installed version of the others.
    Only(BTreeSet<PluginId>),
}

impl Upgrade {
    /// Whether the installed version of `id` is preferred over newer ones.
    pub fn keeps(&self, id: &PluginId) -> bool {
        match self {
            Self::Nothing => true,
            Self::All => false,
            Self::Only(ids) => !ids.contains(id),
        }
    }
}

/// Whether pre-releases (`1.2.0-rc.1`) may be chosen.
///
/// Like cargo and uv, a plain request never picks a pre-release: `acme.clock` gets the
/// newest release, even when `1.3.0-rc.1` is newer. A pre-release of a plugin is a
/// candidate only when it is asked for: a requirement on the plugin names a pre-release
/// (`acme.clock@1.3.0-rc.1`, `>=1.3.0-beta.1`, also in a dependency), the plugin follows
/// a channel other than stable, its installed release is a pre-release of the same
/// `major.minor.patch` (the installed one itself always stays a candidate), or the
/// request says [`PreReleases::Allow`] (`--pre`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PreReleases {
    /// Only where asked for, as above.
    #[default]
    IfRequested,
    /// Pre-releases are ordinary candidates for every plugin.
    Allow,
}

/// Whether a requirement names a pre-release in one of its comparators.
pub(crate) fn names_prerelease(req: &VersionReq) -> bool {
    req.comparators.iter().any(|c| !c.pre.is_empty())
}

/// Everything one resolution depends on besides the index docs.
#[derive(Clone, Debug)]
pub struct Request {
    /// Plugins that must be present, with acceptable versions. For an install, the caller
    /// passes the installed plugins the user asked for as well as the new one.
    pub requirements: Vec<Requirement>,
    /// The host application and the plugin API version it provides.
    pub host: HostApp,
    /// The platform plugins must run on.
    pub platform: Platform,
    /// The channel followed by default.
    pub channel: Channel,
    /// Per-plugin channel overrides.
    pub channels: BTreeMap<PluginId, Channel>,
    /// Exact versions the user pinned.
    pub pins: BTreeMap<PluginId, Version>,
    /// Installed plugins and their active versions.
    pub installed: BTreeMap<PluginId, Version>,
    /// Which installed plugins may move.
    pub upgrade: Upgrade,
    /// The blocklist from the registry's `security` role.
    pub blocklist: Arc<Blocklist>,
    /// Registries and namespace bindings.
    pub registries: Registries,
    /// This client's version, compared with each release's `min_client_version`.
    pub client_version: Version,
    /// Whether pre-releases may be chosen where nobody asked for them.
    pub prereleases: PreReleases,
}

impl Request {
    /// A request with no requirement yet, the stable channel, no pins, nothing installed
    /// and an empty blocklist.
    pub fn new(host: HostApp, platform: Platform, registries: Registries) -> Self {
        Self {
            requirements: Vec::new(),
            host,
            platform,
            channel: Channel::Stable,
            channels: BTreeMap::new(),
            pins: BTreeMap::new(),
            installed: BTreeMap::new(),
            upgrade: Upgrade::Nothing,
            blocklist: Arc::new(Blocklist::default()),
            registries,
            client_version: crate_version(),
            prereleases: PreReleases::IfRequested,
        }
    }

    /// Adds a root requirement.
    #[must_use]
    pub fn require(mut self, id: PluginId, version: VersionReq) -> Self {
        self.requirements.push(Requirement { id, version });
        self
    }

    /// Sets the default channel.
    #[must_use]
    pub fn with_channel(mut self, channel: Channel) -> Self {
        self.channel = channel;
        self
    }

    /// Overrides the channel of one plugin.
    #[must_use]
    pub fn with_plugin_channel(mut self, id: PluginId, channel: Channel) -> Self {
        self.channels.insert(id, channel);
        self
    }

    /// Pins a plugin to one version.
    #[must_use]
    pub fn with_pin(mut self, id: PluginId, version: Version) -> Self {
        self.pins.insert(id, version);
        self
    }

    /// Records an installed plugin.
    #[must_use]
    pub fn with_installed(mut self, id: PluginId, version: Version) -> Self {
        self.installed.insert(id, version);
        self
    }

    /// Sets which installed plugins may move.
    #[must_use]
    pub fn with_upgrade(mut self, upgrade: Upgrade) -> Self {
        self.upgrade = upgrade;
        self
    }

    /// Sets the blocklist.
    #[must_use]
    pub fn with_blocklist(mut self, blocklist: Arc<Blocklist>) -> Self {
        self.blocklist = blocklist;
        self
    }

    /// Sets this client's version (defaults to the crate's version).
    #[must_use]
    pub fn with_client_version(mut self, version: Version) -> Self {
        self.client_version = version;
        self
    }

    /// Sets whether pre-releases may be chosen where nobody asked for them.
    #[must_use]
    pub fn with_prereleases(mut self, prereleases: PreReleases) -> Self {
        self.prereleases = prereleases;
        self
    }

    /// Whether the pre-release `version` of `id` may be chosen (see [`PreReleases`]);
    /// a dependency naming a pre-release is the resolver's to add.
    pub fn admits_prerelease(&self, id: &PluginId, version: &Version) -> bool {
        let installed = self.installed.get(id);
        self.prereleases == PreReleases::Allow
            || self.channel_of(id) != Channel::Stable
            || self.requirements.iter().any(|r| &r.id == id && names_prerelease(&r.version))
            || installed.is_some_and(|i| {
                i == version
                    || (!i.pre.is_empty()
                        && (i.major, i.minor, i.patch) == (version.major, version.minor, version.patch))
            })
    }

    /// The channel `id` follows.
    pub fn channel_of(&self, id: &PluginId) -> Channel {
        self.channels.get(id).copied().unwrap_or(self.channel)
    }
}

fn crate_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0))
}
