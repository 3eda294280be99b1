//! The registry source tree: what an operator keeps in git, and reading it.
//!
//! ```text
//! trellis-registry.json        configuration (RegistryConfig): name, base URL, mirrors,
//!                              expiry per role, hash-bin count, key files, thresholds,
//!                              deltas ({"sources", "max_percent", "max_patch_input"})
//! keys/                        private role keys (never committed; CI writes them from secrets)
//! root/N.root.json             every signed root, N = 1, 2, … (written by init and rotate)
//! publishers/<vendor>.json     publisher record chains (PublisherChain: every version of
//!                              the record, each signed by the previous version's keys;
//!                              written with `trellis-index publisher`)
//! releases/<plugin-id>/<version>.zip        the package
//! releases/<plugin-id>/<version>.zip.dsse   the developer's DSSE envelope (`trellis-index sign`)
//! releases/<plugin-id>/<version>.remote.json instead of the .zip: {"url", "sha256", "size"}
//!                              of a package hosted elsewhere (https only; loopback http
//!                              behind [`RemoteHttp::AllowLoopback`], for tests); fetched
//!                              once into .cache/packages/<sha256>.zip (git-ignored) and checked
//! yanks.json                   {"yanked": [{"id", "version", "reason"}]}
//! rollouts.json                {"rollouts": [{"id", "version", "percent"}]}: staged rollouts
//!                              (`trellis-index rollout`); a release not listed goes to everyone
//! blocklist.json               the blocklist (Blocklist)
//! catalog/featured.json        {"featured": ["acme.clock", …]}: the operator's picks, in order,
//!                              shown first by the catalog head (every id must be listed)
//! catalog/                     optional inputs of later catalog features (ratings, stats)
//! ```
//!
//! Owns parsing the configuration and loading the tree into checked values
//! ([`Registry`], [`PluginInput`]), naming the file of every problem. Every publisher
//! chain is verified from version 1 on open (continuity, or the recovery signers of the
//! newest root's `targets` role), but, for an incremental build
//! ([`Registry::open_incremental`]), one whose canonical bytes are the ones its site
//! published under the same newest root; that it extends the published chain is
//! [`crate::build`]'s check. An incremental open loads only the chains of the
//! publishers it is given ([`PublisherScope`]); another's is read when a release of
//! theirs is checked ([`Registry::chain`]). Releases signed only by keys the publisher has since
//! revoked are all listed at once ([`RegistryError::RevokedReleases`]) unless yanked or
//! blocked (then they are kept, checked under the chain version that signed them). Per-release checks
//! are [`crate::release`]'s; turning the values into a site is [`crate::build`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_schema::blocklist::Blocklist;
use trellis_schema::index::Percent;
use trellis_schema::publisher::{ChainLimits, PublisherChain, PublisherRecord, RecoverySigners};
use trellis_schema::tuf::{Envelope, Root, TopRole};
use trellis_schema::{PluginId, Sha256, SigningKey, VendorId};

use crate::analysis::AnalysisOptions;
use crate::analysis::scanners::ScannerConfig;
use crate::delta::DeltaPolicy;
use crate::keyfile;
use crate::release::{self, PluginInput, PublishedRelease, ReleaseError, ReleaseInput};

/// File name of the configuration at the registry root.
pub const CONFIG_FILE: &str = "trellis-registry.json";
/// File name of the yank list.
pub const YANKS_FILE: &str = "yanks.json";
/// File name of the staged rollout list.
pub const ROLLOUTS_FILE: &str = "rollouts.json";
/// File name of the blocklist.
pub const BLOCKLIST_FILE: &str = "blocklist.json";

/// File of the operator's featured plugins, relative to the registry root.
pub const FEATURED_FILE: &str = "catalog/featured.json";

/// `catalog/featured.json`: plugins the operator features, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Featured {
    /// Plugin ids.
    #[serde(default)]
    pub featured: Vec<PluginId>,
}

/// Expiry of each role's metadata, in days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expiry {
    /// Root (offline keys; re-signed by `rotate`).
    pub root: u32,
    /// Top-level targets.
    pub targets: u32,
    /// Delegated roles: security, publishers, bins and every hash bin.
    pub delegations: u32,
    /// Snapshot.
    pub snapshot: u32,
    /// Timestamp: re-signed by the scheduled `timestamp` job well before this.
    pub timestamp: u32,
}

impl Default for Expiry {
    /// root 365 days, targets 180, delegations 90, snapshot 30, timestamp 2.
    fn default() -> Self {
        Self { root: 365, targets: 180, delegations: 90, snapshot: 30, timestamp: 2 }
    }
}

/// Key files (relative to the registry root) and thresholds of one role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleKeyFiles {
    /// Private key files; the first `threshold` that exist are used to sign.
    pub keys: Vec<PathBuf>,
    /// Signatures required.
    pub threshold: u32,
}

/// The key files of every role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Root (offline; used by `init` and `rotate` only).
    pub root: RoleKeyFiles,
    /// Top-level targets.
    pub targets: RoleKeyFiles,
    /// Snapshot (online).
    pub snapshot: RoleKeyFiles,
    /// Timestamp (online).
    pub timestamp: RoleKeyFiles,
    /// The `security` delegation (blocklist).
    pub security: RoleKeyFiles,
    /// The `publishers` delegation.
    pub publishers: RoleKeyFiles,
    /// The `bins` delegation and every hash bin under it (online).
    pub bins: RoleKeyFiles,
}

/// Default number of publisher bins as a power of two: 256 bins keep each bin under
/// ~6 KB at 12k vendors and ~50 KB at 100k.
pub const DEFAULT_PUBLISHER_BIN_BITS: u32 = 8;

fn default_publisher_bin_bits() -> u32 {
    DEFAULT_PUBLISHER_BIN_BITS
}

/// `trellis-registry.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Display name of the store.
    pub name: String,
    /// Where the site is served (`https://…/`), for docs and the storefront.
    pub base_url: String,
    /// Mirrors serving copies of the site (`https://` or `http://` base URLs), in order of
    /// preference. Published as the signed target `mirrors.json` of the top-level
    /// `targets` role (so changing the list needs the offline targets keys); clients
    /// use them as further locations of the same TUF-verified files.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Expiry per role.
    #[serde(default)]
    pub expiry_days: Expiry,
    /// Number of hash bins as a power of two (`2^bin_bits` bins; 1–16).
    pub bin_bits: u32,
    /// Number of publisher bins as a power of two (`2^publisher_bin_bits` bins; 1–16;
    /// default [`DEFAULT_PUBLISHER_BIN_BITS`]).
    #[serde(default = "default_publisher_bin_bits")]
    pub publisher_bin_bits: u32,
    /// Key files and thresholds.
    pub keys: KeyConfig,
    /// Which deltas builds publish (default: from the 2 previous releases, when
    /// under 60 % of the package).
    #[serde(default, skip_serializing_if = "DeltaPolicy::is_default")]
    pub deltas: DeltaPolicy,
    /// Malware scanners every release is checked with (ClamAV, YARA, a known-bad hash
    /// list; paths relative to the registry root). A match refuses the release.
    #[serde(default, skip_serializing_if = "ScannerConfig::is_empty")]
    pub scanners: ScannerConfig,
    /// Run every release's Linux entry point in the sandbox when it is checked (the
    /// profile is published in its index entry); absent: only `lint --sandbox` runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSettings>,
    /// How builds check publishers' domain proofs ([`crate::domain_proof`]: where
    /// from, time and size bounds, how long a result is cached).
    #[serde(default, skip_serializing_if = "crate::domain_proof::DomainProofSettings::is_default")]
    pub domain_proofs: crate::domain_proof::DomainProofSettings,
}

/// The `"sandbox"` member of `trellis-registry.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Seconds a run may take before it is stopped (default 10).
    #[serde(default = "default_sandbox_seconds")]
    pub timeout_seconds: u64,
}

fn default_sandbox_seconds() -> u64 {
    10
}

/// A registry problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("{}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A name in the tree is not what it must be.
    #[error("{}: {reason}", path.display())]
    Layout {
        /// The offending file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A release is refused.
    #[error(transparent)]
    Release(Box<ReleaseError>),
    /// A remote package could not be fetched or is not the one described.
    #[error("{}: {url}: {reason}", path.display())]
    Remote {
        /// The descriptor file.
        path: PathBuf,
        /// Its URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A key file could not be read.
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileIoError),
    /// A publisher chain is refused.
    #[error("{}: {chain}", path.display())]
    Publisher {
        /// The record file.
        path: PathBuf,
        /// Why.
        chain: trellis_schema::publisher::ChainError,
    },
    /// Published releases whose signatures are valid only thanks to keys their
    /// publisher has revoked: each must be re-signed, yanked or blocked.
    #[error("{}", describe_revoked(releases))]
    RevokedReleases {
        /// Every such release.
        releases: Vec<RevokedRelease>,
    },
}

/// A release signed only by keys its publisher revoked (or removed).
#[derive(Debug, Clone, PartialEq)]
pub struct RevokedRelease {
    /// `id version`.
    pub release: String,
    /// Its envelope file.
    pub envelope: PathBuf,
    /// Why its signature no longer counts.
    pub reason: String,
}

fn describe_revoked(releases: &[RevokedRelease]) -> String {
    let mut out = format!(
        "{} release(s) are signed only by revoked or removed keys; re-sign each with a current key \
         (trellis-index sign --resign PACKAGE --key KEY), yank it (trellis-index yank) or block it (trellis-index block):",
        releases.len()
    );
    for r in releases {
        out.push_str(&format!("\n  {} ({}): {}", r.release, r.envelope.display(), r.reason));
    }
    out
}

impl From<Box<ReleaseError>> for RegistryError {
    fn from(source: Box<ReleaseError>) -> Self {
        Self::Release(source)
    }
}

/// Suffix of a remote package descriptor in `releases/<id>/`.
pub const REMOTE_SUFFIX: &str = ".remote.json";
/// Largest remote package the builder downloads.
pub const MAX_REMOTE_PACKAGE: u64 = 1 << 30;

/// Largest package kept in the registry tree itself: GitHub refuses to store a file
/// over 100 MiB in a repository (and keeps every file ever pushed in its history), so
/// a larger package is published elsewhere and named by a `.remote.json` descriptor.
pub const MAX_LOCAL_PACKAGE: u64 = 100 * 1024 * 1024;

/// The message for a package over [`MAX_LOCAL_PACKAGE`]: what to do instead.
pub fn local_package_too_large(size: u64) -> String {
    format!(
        "{size} bytes is over the {MAX_LOCAL_PACKAGE}-byte limit of a file in a GitHub repository; \
         publish the package elsewhere over https (a release asset, object storage) and commit \
         <version>{REMOTE_SUFFIX} = {{\"url\", \"sha256\", \"size\"}} instead of the .zip"
    )
}

/// Whether the builder fetches `.remote.json` packages over plain http.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemoteHttp {
    /// https only (the default: descriptors come from untrusted pull requests).
    #[default]
    HttpsOnly,
    /// Also `http://` on a loopback host (127.0.0.1, localhost, `[::1]`): tests and local
    /// previews only (`trellis-index build --allow-loopback-http`).
    AllowLoopback,
}

/// Whether `url` is `http://` to a loopback host with no user info.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]")
}

/// `releases/<id>/<version>.remote.json`: a package hosted elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePackage {
    /// Where to download it (https).
    pub url: String,
    /// Its SHA-256.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
}

/// One entry of `yanks.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Yank {
    /// Plugin.
    pub id: PluginId,
    /// Version.
    pub version: semver::Version,
    /// Why, for the record.
    #[serde(default)]
    pub reason: String,
}

/// `yanks.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Yanks {
    /// Yanked releases.
    pub yanked: Vec<Yank>,
}

impl Yanks {
    /// Whether `id version` is yanked.
    pub fn contains(&self, id: &PluginId, version: &semver::Version) -> bool {
        self.yanked.iter().any(|y| &y.id == id && &y.version == version)
    }
}

/// One entry of `rollouts.json`: the share of installs offered `id version` as an update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Plugin.
    pub id: PluginId,
    /// Version.
    pub version: semver::Version,
    /// Share of installs, 0 to 100.
    pub percent: Percent,
}

/// `rollouts.json`: releases in a staged rollout. A release not listed is offered to
/// every install.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollouts {
    /// Releases in a staged rollout.
    pub rollouts: Vec<Rollout>,
}

impl Rollouts {
    /// The staged rollout of `id version`; `None` when it goes to everyone.
    pub fn percent(&self, id: &PluginId, version: &semver::Version) -> Option<Percent> {
        self.rollouts.iter().find(|r| &r.id == id && &r.version == version).map(|r| r.percent)
    }
}

/// The releases a published site lists, by plugin and version: what
/// [`Registry::load_plugins_published`] carries the analysis over from.
pub type PublishedReleases = BTreeMap<(PluginId, semver::Version), PublishedRelease>;

/// What a published site holds of the publisher chains, for
/// [`Registry::open_incremental`] ([`crate::build::published_chains`] reads it).
#[derive(Clone, Debug, Default)]
pub struct PublishedChains {
    /// The bytes of the newest root the site publishes (`None`: no site yet).
    pub root: Option<Vec<u8>>,
    /// The SHA-256 of each publisher's published record target (its chain's canonical
    /// bytes), as the site's publisher bins list it.
    pub sha256: HashMap<VendorId, Sha256>,
}

/// The publisher chains a [`Registry`] loaded when it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PublisherScope {
    /// Every chain under `publishers/` ([`Registry::open`]).
    #[default]
    All,
    /// Only these publishers' chains (those present), for an incremental build
    /// ([`Registry::open_incremental`]). Another publisher's chain is read and verified
    /// when a release of theirs is checked ([`Registry::load_plugins`]); a build
    /// carries the records the site publishes for every publisher not listed.
    Vendors(BTreeSet<VendorId>),
}

impl PublisherScope {
    /// Whether `vendor`'s chain was loaded (or looked for, and is absent).
    pub fn covers(&self, vendor: &VendorId) -> bool {
        match self {
            Self::All => true,
            Self::Vendors(vendors) => vendors.contains(vendor),
        }
    }
}

/// An opened registry source tree: configuration, publishers, yanks, blocklist and the
/// root history, all parsed. Releases are loaded on demand ([`Registry::load_plugins`]).
#[derive(Debug)]
pub struct Registry {
    /// The registry root.
    pub dir: PathBuf,
    /// `trellis-registry.json`.
    pub config: RegistryConfig,
    /// Publisher record chains by id, each verified from version 1 (by this open, or,
    /// for [`Registry::open_incremental`], by the build that published it).
    pub publishers: Arc<BTreeMap<VendorId, PublisherChain>>,
    /// Which chains `publishers` holds: every one, or only some publishers' (an
    /// incremental build's).
    pub publisher_scope: PublisherScope,
    /// The chains of `publishers` that [`Registry::open_incremental`] found as the site
    /// published them: the SHA-256 of their canonical bytes (a build takes their
    /// published record targets as they are instead of writing them again). Empty for
    /// [`Registry::open`]. Whoever changes a chain in `publishers` removes it here.
    pub as_published: Arc<HashMap<VendorId, Sha256>>,
    /// `yanks.json`.
    pub yanks: Yanks,
    /// `rollouts.json`.
    pub rollouts: Rollouts,
    /// `blocklist.json`.
    pub blocklist: Blocklist,
    /// `advisories/*.json` (OSV).
    pub advisories: crate::advisories::AdvisorySource,
    /// `catalog/featured.json`.
    pub featured: Featured,
    /// Every signed root, oldest first.
    pub roots: Vec<SignedRoot>,
    /// Whether `.remote.json` packages may come over loopback http.
    pub remote_http: RemoteHttp,
    /// Whether published releases are analysed again (`build --reanalyse`; see
    /// [`AnalysisOptions::reanalyse`]).
    pub reanalyse: bool,
}

/// A signed root of the registry's history.
#[derive(Clone, Debug)]
pub struct SignedRoot {
    /// The parsed document.
    pub envelope: Envelope<Root>,
    /// The exact bytes to publish.
    pub bytes: Vec<u8>,
}

/// Reads and parses a JSON file, naming it in every error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RegistryError> {
    let bytes = std::fs::read(path).map_err(|source| RegistryError::Io { path: path.to_owned(), source })?;
    trellis_schema::json::from_slice(&bytes)
        .map_err(|e| RegistryError::Parse { path: path.to_owned(), reason: e.to_string() })
}

fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, RegistryError> {
    if path.exists() { read_json(path) } else { Ok(T::default()) }
}

impl Registry {
    /// Opens the registry at `dir`: parses the configuration, publishers, yanks,
    /// rollouts, blocklist and root history, and verifies every publisher chain.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        Self::open_with(dir, None, PublisherScope::All)
    }

    /// [`Registry::open`] for an incremental build of a site that published `published`:
    /// a publisher chain whose canonical bytes have the SHA-256 the site published for
    /// it, while the registry's newest root is the site's, is parsed but not verified
    /// again. The build that published those bytes verified them from version 1 under
    /// that root (the only input of a chain's verification besides its own bytes: its
    /// recovery signers), and a build trusts its previous site as its own output
    /// ([`crate::build::PreviousSite`]). Any other chain (new, changed, or a root
    /// rotated since) is verified. At 100k plugins this skips ~12k chains' signature
    /// checks (ed25519: ~45% of an `--only` build's CPU); a full build verifies every
    /// chain, and so does the signer of a split build (`sign-prepared` opens with
    /// [`Registry::open`]: it takes nothing from a builder on trust). What it gives up:
    /// whoever can write the site and get a record into `publishers/` could have a local
    /// signed `--only` build publish a chain no build verified (the publisher bin listing
    /// it edited, which the builder does not check). Clients verify every chain from
    /// their pin or from version 1, so such a record is refused by them; it denies the
    /// vendor's releases, as deleting the site's files would.
    ///
    /// Only the chains of `vendors` are read ([`PublisherScope::Vendors`]): at 100k
    /// plugins an incremental build reads a handful of the ~12k records, not all of
    /// them. Another publisher's chain is read (and verified from version 1) only if a
    /// release of theirs is checked.
    pub fn open_incremental(
        dir: &Path,
        published: &PublishedChains,
        vendors: &BTreeSet<VendorId>,
    ) -> Result<Self, RegistryError> {
        Self::open_with(dir, Some(published), PublisherScope::Vendors(vendors.clone()))
    }

    fn open_with(
        dir: &Path,
        published: Option<&PublishedChains>,
        publisher_scope: PublisherScope,
    ) -> Result<Self, RegistryError> {
        let config_path = dir.join(CONFIG_FILE);
        let config: RegistryConfig = read_json(&config_path)?;
        if !(1..=16).contains(&config.bin_bits) {
            return Err(RegistryError::Config {
                path: config_path,
                reason: format!("bin_bits is {}; it must be between 1 and 16", config.bin_bits),
            });
        }
        if !(1..=16).contains(&config.publisher_bin_bits) {
            return Err(RegistryError::Config {
                path: config_path,
                reason: format!("publisher_bin_bits is {}; it must be between 1 and 16", config.publisher_bin_bits),
            });
        }
        if let Err(e) = trellis_schema::mirrors::MirrorList::from_urls(config.mirrors.iter().map(String::as_str)) {
            return Err(RegistryError::Config { path: config_path, reason: format!("mirrors: {e}") });
        }
        let roots = load_roots(&dir.join("root"))?;
        // Published chains count as verified only under the root they were verified under.
        let published =
            published.filter(|p| p.root.is_some() && p.root.as_deref() == roots.last().map(|r| &r.bytes[..]));
        let LoadedPublishers { chains: publishers, as_published } = load_publishers(
            &dir.join("publishers"),
            &publisher_scope,
            roots.last().map(|r| &r.envelope.signed),
            published.map(|p| &p.sha256),
        )?;
        let yanks = read_json_or_default(&dir.join(YANKS_FILE))?;
        let rollouts = read_json_or_default(&dir.join(ROLLOUTS_FILE))?;
        let blocklist = read_json_or_default(&dir.join(BLOCKLIST_FILE))?;
        let featured = read_json_or_default(&dir.join(FEATURED_FILE))?;
        let advisories = crate::advisories::load(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            publishers: Arc::new(publishers),
            publisher_scope,
            as_published: Arc::new(as_published),
            yanks,
            rollouts,
            blocklist,
            advisories,
            featured,
            roots,
            remote_http: RemoteHttp::HttpsOnly,
            reanalyse: false,
        })
    }

    /// The same registry, analysing published releases again when loaded
    /// ([`AnalysisOptions::reanalyse`]).
    #[must_use]
    pub fn with_reanalysis(mut self) -> Self {
        self.reanalyse = true;
        self
    }

    /// The same registry, fetching `.remote.json` packages under `policy`.
    #[must_use]
    pub fn with_remote_http(mut self, policy: RemoteHttp) -> Self {
        self.remote_http = policy;
        self
    }

    /// The newest record of every publisher the registry loaded (every one, unless it
    /// was opened for an incremental build): what releases are checked against.
    pub fn publisher_records(&self) -> BTreeMap<VendorId, &PublisherRecord> {
        self.publishers.iter().filter_map(|(id, chain)| Some((id.clone(), &chain.head()?.signed))).collect()
    }

    /// The newest record of the publishers of `ids`: what their releases are checked
    /// against (not every publisher's: ~37k records at 300k plugins). A publisher
    /// without a record is left out.
    pub fn records_of<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a PluginId>,
    ) -> Result<BTreeMap<VendorId, PublisherRecord>, RegistryError> {
        let vendors: BTreeSet<VendorId> = ids.into_iter().map(PluginId::vendor_id).collect();
        let mut records = BTreeMap::new();
        for vendor in vendors {
            if let Some(record) = self.chain(&vendor)?.and_then(|chain| Some(chain.head()?.signed.clone())) {
                records.insert(vendor, record);
            }
        }
        Ok(records)
    }

    /// The chain of `vendor`: as loaded, or, for a publisher an incremental open did not
    /// load, read and verified from version 1 now. `None` when it has no record.
    pub fn chain(&self, vendor: &VendorId) -> Result<Option<std::borrow::Cow<'_, PublisherChain>>, RegistryError> {
        if let Some(chain) = self.publishers.get(vendor) {
            return Ok(Some(std::borrow::Cow::Borrowed(chain)));
        }
        if self.publisher_scope.covers(vendor) {
            return Ok(None);
        }
        let path = self.dir.join("publishers").join(format!("{vendor}.json"));
        let root = self.root().map(|root| &root.signed);
        Ok(load_chain(&path, vendor, root, None)?.map(|(chain, _)| std::borrow::Cow::Owned(chain)))
    }

    /// The newest root.
    pub fn root(&self) -> Option<&Envelope<Root>> {
        self.roots.last().map(|root| &root.envelope)
    }

    /// Whether plugin `id` has a directory under `releases/`.
    pub fn has_plugin(&self, id: &PluginId) -> bool {
        self.dir.join("releases").join(id.as_str()).is_dir()
    }

    /// Ids of every plugin with a directory under `releases/`.
    pub fn plugin_ids(&self) -> Result<BTreeSet<PluginId>, RegistryError> {
        let releases = self.dir.join("releases");
        if !releases.exists() {
            return Ok(BTreeSet::new());
        }
        let io = |source| RegistryError::Io { path: releases.clone(), source };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&releases).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            if !name.as_encoded_bytes().starts_with(b".") {
                names.push(name);
            }
        }
        // Parsed in parallel and sorted before the set is made (built in one pass from
        // sorted ids): inserting 300k ids one by one in the directory's hash order cost
        // ~0.4 s; of several bad names the first in name order is reported.
        names.par_sort_unstable();
        let ids: Vec<Result<PluginId, RegistryError>> = names
            .par_iter()
            .map(|name| {
                name.to_string_lossy().parse().map_err(|e| RegistryError::Layout {
                    path: releases.join(name),
                    reason: format!("directory name is not a plugin id: {e}"),
                })
            })
            .collect();
        ids.into_iter().collect()
    }

    /// Loads and checks every release of `ids`, in parallel. Fails on the first
    /// plugin (in id order) with a refused release, except that releases signed only by
    /// revoked keys are listed together, across plugins.
    pub fn load_plugins(&self, ids: &BTreeSet<PluginId>) -> Result<Vec<PluginInput>, RegistryError> {
        self.load_plugins_published(ids, &PublishedReleases::new())
    }

    /// [`Registry::load_plugins`], carrying over the analysis of the releases
    /// `published` lists with the same package instead of analysing them again.
    pub fn load_plugins_published(
        &self,
        ids: &BTreeSet<PluginId>,
        published: &PublishedReleases,
    ) -> Result<Vec<PluginInput>, RegistryError> {
        let records = self.records_of(ids)?;
        let ids: Vec<&PluginId> = ids.iter().collect();
        let loaded: Vec<Result<PluginInput, RegistryError>> =
            ids.par_iter().map(|id| self.load_plugin_with(id, &records, published)).collect();
        let mut plugins = Vec::with_capacity(loaded.len());
        let mut revoked = Vec::new();
        for result in loaded {
            match result {
                Ok(plugin) => plugins.push(plugin),
                Err(RegistryError::RevokedReleases { releases }) => revoked.extend(releases),
                Err(other) => return Err(other),
            }
        }
        if !revoked.is_empty() {
            return Err(RegistryError::RevokedReleases { releases: revoked });
        }
        Ok(plugins)
    }

    /// Loads and checks every release of one plugin.
    pub fn load_plugin(&self, id: &PluginId) -> Result<PluginInput, RegistryError> {
        self.load_plugin_with(id, &self.records_of([id])?, &PublishedReleases::new())
    }

    fn load_plugin_with(
        &self,
        id: &PluginId,
        records: &BTreeMap<VendorId, PublisherRecord>,
        published: &PublishedReleases,
    ) -> Result<PluginInput, RegistryError> {
        let dir = self.dir.join("releases").join(id.as_str());
        let io = |source| RegistryError::Io { path: dir.clone(), source };
        let mut versions = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name
                .strip_suffix(".zip.dsse")
                .or_else(|| name.strip_suffix(".zip"))
                .or_else(|| name.strip_suffix(REMOTE_SUFFIX));
            let Some(version) = version else {
                return Err(RegistryError::Layout {
                    path: entry.path(),
                    reason: format!("expected <version>.zip (or <version>{REMOTE_SUFFIX}) and <version>.zip.dsse only"),
                });
            };
            let parsed: semver::Version = version.parse().map_err(|e| RegistryError::Layout {
                path: entry.path(),
                reason: format!("{version:?} is not a semantic version: {e}"),
            })?;
            versions.insert(parsed, version.to_owned());
        }
        // Each release checked on its own (in parallel: a plugin with a long history
        // is dozens of packages opened and signatures verified), then taken in order.
        enum Checked {
            Release(Box<ReleaseInput>),
            Revoked(RevokedRelease),
        }
        let check = |(version, stem): (semver::Version, String)| -> Result<Checked, RegistryError> {
            let local = dir.join(format!("{stem}.zip"));
            let envelope_path = crate::sign::envelope_path(&local);
            let remote = dir.join(format!("{stem}{REMOTE_SUFFIX}"));
            let package_path = match (local.exists(), remote.exists()) {
                (true, true) => {
                    return Err(RegistryError::Layout {
                        path: remote,
                        reason: format!("{stem}.zip exists too; a release has one package"),
                    });
                }
                (false, true) => self.fetch_remote(&remote)?,
                _ => {
                    if let Ok(meta) = std::fs::metadata(&local)
                        && meta.len() > MAX_LOCAL_PACKAGE
                    {
                        return Err(RegistryError::Layout { path: local, reason: local_package_too_large(meta.len()) });
                    }
                    local
                }
            };
            for path in [&package_path, &envelope_path] {
                if !path.exists() {
                    return Err(RegistryError::Layout {
                        path: path.clone(),
                        reason: format!("missing; every release needs {stem}.zip and {stem}.zip.dsse"),
                    });
                }
            }
            let read =
                |path: &PathBuf| std::fs::read(path).map_err(|source| RegistryError::Io { path: path.clone(), source });
            let package = read(&package_path)?;
            let envelope = read(&envelope_path)?;
            let published = published.get(&(id.clone(), version.clone()));
            let checked = release::check_release(
                (id, &version),
                envelope_path.clone(),
                envelope.clone(),
                package_path.clone(),
                &package,
                records,
                &self.analysis_options(),
                published,
            );
            let mut input = match checked {
                Ok(input) => input,
                Err(error) => match revocation_of(&error) {
                    Some(reason) if self.signed_under_older_record(id, &envelope) => {
                        match self.check_kept_release(
                            (id, &version),
                            &envelope_path,
                            &envelope,
                            &package_path,
                            &package,
                            published,
                        ) {
                            Some(input) => input,
                            None => {
                                return Ok(Checked::Revoked(RevokedRelease {
                                    release: format!("{id} {version}"),
                                    envelope: envelope_path,
                                    reason,
                                }));
                            }
                        }
                    }
                    _ => return Err(error.into()),
                },
            };
            input.yanked = self.yanks.contains(id, &version);
            input.rollout = self.rollouts.percent(id, &version);
            Ok(Checked::Release(Box::new(input)))
        };
        let checked: Vec<Result<Checked, RegistryError>> = versions.into_par_iter().map(check).collect();
        let mut releases = Vec::with_capacity(checked.len());
        let mut revoked = Vec::new();
        for checked in checked {
            match checked? {
                Checked::Release(input) => releases.push(*input),
                Checked::Revoked(release) => revoked.push(release),
            }
        }
        if !revoked.is_empty() {
            return Err(RegistryError::RevokedReleases { releases: revoked });
        }
        Ok(PluginInput { id: id.clone(), releases })
    }

    /// What `lint` runs on each release besides the static analysis: the configured
    /// scanners, their paths taken from the registry root, and the sandbox when asked.
    pub fn analysis_options(&self) -> AnalysisOptions {
        let sandbox = self.config.sandbox.as_ref().map(|s| crate::analysis::sandbox::SandboxOptions {
            timeout: std::time::Duration::from_secs(s.timeout_seconds),
            ..Default::default()
        });
        AnalysisOptions {
            scanners: self.config.scanners.clone().resolved(&self.dir),
            sandbox,
            reanalyse: self.reanalyse,
        }
    }

    /// Whether `envelope` (a release of `id`) verifies under an older version of its
    /// publisher's chain: it was validly signed once, by keys revoked or removed since.
    fn signed_under_older_record(&self, id: &PluginId, envelope: &[u8]) -> bool {
        let Ok(envelope) = serde_json::from_slice::<trellis_schema::dsse::Envelope>(envelope) else { return false };
        let Ok(Some(chain)) = self.chain(&id.vendor_id()) else { return false };
        chain.records.iter().rev().skip(1).any(|r| r.signed.verify_release(&envelope).is_ok())
    }

    /// A yanked or blocked release whose signature counts only under an older version
    /// of its publisher's chain: kept (and stays marked), checked under the newest
    /// version it verifies under. `None` when it is neither yanked nor blocked, or
    /// verifies under no version.
    fn check_kept_release(
        &self,
        (id, version): (&PluginId, &semver::Version),
        envelope_path: &Path,
        envelope: &[u8],
        package_path: &Path,
        package: &[u8],
        published: Option<&PublishedRelease>,
    ) -> Option<ReleaseInput> {
        let blocked = self.blocklist.find(id, version, Some(&Sha256::of(package))).is_some();
        if !blocked && !self.yanks.contains(id, version) {
            return None;
        }
        let vendor = id.vendor_id();
        let chain = self.chain(&vendor).ok()??;
        chain.records.iter().rev().skip(1).find_map(|older| {
            let records = BTreeMap::from([(vendor.clone(), older.signed.clone())]);
            release::check_release(
                (id, version),
                envelope_path.to_owned(),
                envelope.to_vec(),
                package_path.to_owned(),
                package,
                &records,
                &self.analysis_options(),
                published,
            )
            .ok()
        })
    }

    /// The local copy of a remote package: fetched once into
    /// `.cache/packages/<sha256>.zip`, its size and SHA-256 checked against the
    /// descriptor (the developer signature is checked later, like any package).
    pub fn fetch_remote(&self, descriptor: &Path) -> Result<PathBuf, RegistryError> {
        let remote: RemotePackage = read_json(descriptor)?;
        let refuse =
            |reason: String| RegistryError::Remote { path: descriptor.to_owned(), url: remote.url.clone(), reason };
        let loopback = self.remote_http == RemoteHttp::AllowLoopback && is_loopback_http(&remote.url);
        if !(remote.url.starts_with("https://") || loopback) {
            return Err(refuse(
                "only https URLs are fetched (descriptors come from pull requests; plain http would let anyone on the path choose the bytes the builder checks)".into(),
            ));
        }
        if remote.size > MAX_REMOTE_PACKAGE {
            return Err(refuse(format!("size {} is over the {MAX_REMOTE_PACKAGE}-byte limit", remote.size)));
        }
        let cache = self.dir.join(".cache/packages").join(format!("{}.zip", remote.sha256));
        if let Ok(bytes) = std::fs::read(&cache)
            && Sha256::of(&bytes) == remote.sha256
        {
            return Ok(cache);
        }
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .https_only(!loopback)
                .max_redirects(if loopback { 0 } else { 10 })
                .timeout_global(Some(std::time::Duration::from_secs(300)))
                .build(),
        );
        let mut response = agent.get(&remote.url).call().map_err(|e| refuse(e.to_string()))?;
        if response.status().as_u16() != 200 {
            return Err(refuse(format!("HTTP {}", response.status().as_u16())));
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(remote.size + 1)
            .read_to_vec()
            .map_err(|e| refuse(e.to_string()))?;
        let actual = Sha256::of(&bytes);
        if bytes.len() as u64 != remote.size || actual != remote.sha256 {
            return Err(refuse(format!(
                "got {} bytes with sha256 {actual}, the descriptor says {} bytes with {}",
                bytes.len(),
                remote.size,
                remote.sha256
            )));
        }
        let io = |e: trellis_client::fs::FsError| RegistryError::Io { path: cache.clone(), source: e.source };
        if let Some(parent) = cache.parent() {
            trellis_client::fs::create_dir_all(parent).map_err(io)?;
        }
        trellis_client::fs::write_atomic(&cache, &bytes).map_err(io)?;
        Ok(cache)
    }

    /// Reads the signing keys of a role from the configured files, resolving paths
    /// against the registry root. Missing files are skipped; `None` when fewer than the
    /// threshold could be read (the role's key is offline).
    pub fn signing_keys(&self, role: &RoleKeyFiles) -> Result<Option<Vec<SigningKey>>, RegistryError> {
        let mut keys = Vec::new();
        for path in &role.keys {
            let path = self.dir.join(path);
            if path.exists() {
                keys.push(keyfile::read(&path)?);
            }
        }
        Ok((keys.len() >= role.threshold.max(1) as usize).then_some(keys))
    }
}

/// The recovery signers of `root`: its top-level `targets` role.
pub fn recovery_keys(root: &Root) -> (BTreeMap<trellis_schema::KeyId, trellis_schema::PublicKey>, u32) {
    let Some(role) = root.roles.get(&TopRole::Targets) else { return (BTreeMap::new(), 1) };
    let keys = role.keyids.iter().filter_map(|id| Some((id.clone(), root.keys.get(id)?.clone()))).collect();
    (keys, role.threshold)
}

/// The publisher chains under `dir` (of `scope`'s publishers), each verified from
/// version 1 under `root`'s recovery signers unless its canonical bytes have the SHA-256
/// `verified` lists for it; and the SHA-256 of those that have it.
fn load_publishers(
    dir: &Path,
    scope: &PublisherScope,
    root: Option<&Root>,
    verified: Option<&HashMap<VendorId, Sha256>>,
) -> Result<LoadedPublishers, RegistryError> {
    if !dir.exists() {
        return Ok(Default::default());
    }
    let (recovery_keys, recovery_threshold) = root.map(recovery_keys).unwrap_or_default();
    let recovery = root.map(|_| RecoverySigners { keys: &recovery_keys, threshold: recovery_threshold });
    let io = |source| RegistryError::Io { path: dir.to_owned(), source };
    let mut paths = Vec::new();
    match scope {
        PublisherScope::All => {
            for entry in std::fs::read_dir(dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    paths.push(path);
                }
            }
        }
        PublisherScope::Vendors(vendors) => paths.extend(vendors.iter().map(|v| dir.join(format!("{v}.json")))),
    }
    // In name order, so that of several bad records the first one named is always the
    // same; read and verified in parallel (one signature check per record and more
    // per key change: at 300k plugins, ~37k records took 3.4 s on one core).
    // By file name: one directory, the same order as by path without its component walk.
    paths.sort_unstable_by(|a, b| a.file_name().cmp(&b.file_name()));
    let load = |path: &PathBuf| -> Result<Option<(VendorId, PublisherChain, Option<Sha256>)>, RegistryError> {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let vendor: VendorId = stem.parse().map_err(|e| RegistryError::Layout {
            path: path.clone(),
            reason: format!("a publisher record is named <publisher id>.json: {e}"),
        })?;
        let published = verified.and_then(|verified| verified.get(&vendor));
        let loaded = load_chain_with(path, &vendor, recovery, published)?;
        Ok(loaded.map(|(chain, sha256)| (vendor, chain, sha256)))
    };
    let loaded: Vec<Result<_, RegistryError>> = paths.par_iter().map(load).collect();
    let mut out = LoadedPublishers::default();
    for loaded in loaded {
        let Some((vendor, chain, sha256)) = loaded? else { continue };
        if let Some(sha256) = sha256 {
            out.as_published.insert(vendor.clone(), sha256);
        }
        out.chains.insert(vendor, chain);
    }
    Ok(out)
}

/// The chain of `vendor` in the file `path` (`None` when there is no such file),
/// verified from version 1 under `root`'s recovery signers unless its canonical bytes
/// have the SHA-256 `published`; and that SHA-256 when they have it.
fn load_chain(
    path: &Path,
    vendor: &VendorId,
    root: Option<&Root>,
    published: Option<&Sha256>,
) -> Result<Option<(PublisherChain, Option<Sha256>)>, RegistryError> {
    let (keys, threshold) = root.map(recovery_keys).unwrap_or_default();
    let recovery = root.map(|_| RecoverySigners { keys: &keys, threshold });
    load_chain_with(path, vendor, recovery, published)
}

/// [`load_chain`] under recovery signers already gathered.
fn load_chain_with(
    path: &Path,
    vendor: &VendorId,
    recovery: Option<RecoverySigners<'_>>,
    published: Option<&Sha256>,
) -> Result<Option<(PublisherChain, Option<Sha256>)>, RegistryError> {
    let limits = ChainLimits::default();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RegistryError::Io { path: path.to_owned(), source }),
    };
    let refused = |chain| RegistryError::Publisher { path: path.to_owned(), chain };
    let chain = PublisherChain::from_slice(vendor, &bytes, &limits).map_err(refused)?;
    // A chain without canonical bytes is verified, and refused for that.
    let as_published =
        published.copied().filter(|sha256| chain.to_canonical().is_ok_and(|bytes| Sha256::of(&bytes) == *sha256));
    if as_published.is_none() {
        chain.verify(vendor, None, recovery, &limits).map_err(refused)?;
    }
    Ok(Some((chain, as_published)))
}

/// What [`load_publishers`] found.
#[derive(Default)]
struct LoadedPublishers {
    chains: BTreeMap<VendorId, PublisherChain>,
    /// The chains found as published, by the SHA-256 of their canonical bytes.
    as_published: HashMap<VendorId, Sha256>,
}

/// The revocation message of a release refused only because its signing keys were
/// revoked or removed.
fn revocation_of(error: &ReleaseError) -> Option<String> {
    match error {
        ReleaseError::Signature { source, .. } if source.is_revocation() => Some(source.to_string()),
        _ => None,
    }
}

fn load_roots(dir: &Path) -> Result<Vec<SignedRoot>, RegistryError> {
    let mut roots = Vec::new();
    for version in 1u64.. {
        let path = dir.join(format!("{version}.root.json"));
        if !path.exists() {
            break;
        }
        let bytes = std::fs::read(&path).map_err(|source| RegistryError::Io { path: path.clone(), source })?;
        let envelope: Envelope<Root> = trellis_schema::json::from_slice(&bytes)
            .map_err(|e| RegistryError::Parse { path: path.clone(), reason: e.to_string() })?;
        if envelope.signed.version != version {
            return Err(RegistryError::Layout {
                path,
                reason: format!("holds root version {}, expected {version}", envelope.signed.version),
            });
        }
        roots.push(SignedRoot { envelope, bytes });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::is_loopback_http;

    #[test]
    fn only_plain_loopback_hosts_count_as_loopback_http() {
        for url in ["http://127.0.0.1:8080/p.zip", "http://localhost/p.zip", "http://[::1]:9/p.zip"] {
            assert!(is_loopback_http(url), "{url}");
        }
        for url in [
            "https://127.0.0.1/p.zip",
            "http://127.0.0.1@evil.example/p.zip",
            "http://127.0.0.1.evil.example/p.zip",
            "http://evil.example/127.0.0.1",
            "http://localhost.evil.example:80/",
        ] {
            assert!(!is_loopback_http(url), "{url}");
        }
    }
}
