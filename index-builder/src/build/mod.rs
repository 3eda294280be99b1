//! Building a site: from checked registry values to signed files on disk.
//!
//! Owns planning (index docs, target entries, which roles change), the cross-release
//! checks (dependencies exist, published releases are immutable and never removed,
//! published publisher chains only grow by valid successors) and
//! writing in the safe order: blobs first, then the documents listing them (all new,
//! content-addressed names), then delegated roles, targets, snapshot, all made durable
//! by one barrier, and `timestamp.json` last. Every check runs
//! before the first write, so a refused build leaves the previous site as it was; a
//! build interrupted while writing leaves only unreferenced new files behind.
//!
//! A build reads the previous site in `SITE_DIR` and gives a role a new version only
//! when its content changed (see [`crate::tuf::settle`]), so the same inputs, keys and
//! `now` give the same bytes, and adding one release rewrites its blobs, its index doc,
//! the bins that sign them, the catalog documents that list the plugin (head, the
//! shards of its terms, its listing pages, its record bucket) and the `catalog` role,
//! the snapshot and the timestamp. [`Scope::Plugins`] does the
//! same work for a few plugins without reading the rest of the registry or site.
//!
//! Inside: `catalog` (discovery documents), `documents` (index docs, target entries), `deltas` (which deltas each
//! release gets, made once), `plan` (roles, versions, signed bytes), `previous` (the
//! published state), `publishers` (record chains against the published ones) and
//! `write` (files and durability).
//! Loading the registry is [`crate::registry`]'s job; the role rules are
//! [`crate::tuf`]'s; paths are [`crate::site`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Map;
use trellis_client::fs::{FsError, write_atomic};
use trellis_schema::blocklist::Blocklist;
use trellis_schema::canonical;
use trellis_schema::catalog::{PublishedReview, Rating};
use trellis_schema::mirrors::MirrorList;
use trellis_schema::publisher::PublisherChain;
use trellis_schema::security_level::PublisherStanding;
use trellis_schema::tuf::{Envelope, MetaFile, Root, Snapshot, Targets, Timestamp, TopRole};
use trellis_schema::{PluginId, Sha256, SigningKey, VendorId};

use crate::advisories::{self, Advisories, AdvisorySource};
use crate::delta::{DeltaBuildError, DeltaPolicy};
use crate::domain_proof;
use crate::registry::{Expiry, PublishedChains, PublisherScope, Registry, RegistryError};
use crate::release::PluginInput;
use crate::site;
use crate::storefront;
use crate::tuf::{self, BINS_ROLE, CATALOG_ROLE, PUBLISHERS_ROLE, RoleKeys, SECURITY_ROLE, SignError};

pub mod catalog;
mod deltas;
mod documents;
mod hints;
mod known;
mod levels;
mod plan;
pub mod prepared;
mod previous;
mod publishers;
mod ratings;
mod state;
mod write;

pub use documents::index_doc;
use documents::{Content, PluginFiles, TargetOut, bytes_target, hashed_target, plugin_files};
pub use hints::HintsWork;
pub use known::KnownPlugins;
use plan::{Decision, Entries, RolePlan, merge_bin};
pub use previous::{PreviousSite, PublishedRecord};
use write::{make_durable, write_aliases, write_content, write_targets};

/// With download statistics, an incremental build redoes the catalog from every
/// record when the figures of more than one plugin in this many moved since the
/// catalog was published: each costs its bucket, the shards under its terms' keys
/// and pages of its listings, and at 100k plugins ~1,200 moved plugins took 50 s
/// incrementally against 16 s from every record (`registry_build` bench,
/// `TRELLIS_BENCH_STATS`), so the break-even is a few hundred.
const MOVED_FIGURES_DIVISOR: usize = 400;

/// Up to this many plugins whose figures moved are always redone incrementally.
const MOVED_FIGURES_FLOOR: usize = 16;

/// Whether a build signs what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Sign every changed role with the keys of [`BuildInput::signers`] (refusing a
    /// changed role whose keys are absent).
    Signed,
    /// The no-secrets half of a split build (the registry template's `build` job):
    /// ignore every key, decide every online role as if its keys were here and write
    /// its new version, the snapshot and the timestamp *without signatures*, for
    /// [`prepared::sign_prepared`] to check and sign elsewhere. The top-level
    /// `targets` role stays offline: if it must change, the build is refused as usual.
    Unsigned,
}

/// Which part of the registry a build looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: every plugin is loaded and checked, every role compared with the
    /// previous site.
    Full,
    /// Only these plugins changed (e.g. from `git diff` in CI): only they are loaded,
    /// only the bins signing their targets are touched.
    Plugins(BTreeSet<PluginId>),
}

/// Signing keys available to a build, per role. `None` means offline: fine as long
/// as the role does not change.
#[derive(Clone, Debug, Default)]
pub struct Signers {
    /// Top-level targets.
    pub targets: Option<Vec<SigningKey>>,
    /// Snapshot.
    pub snapshot: Option<Vec<SigningKey>>,
    /// Timestamp.
    pub timestamp: Option<Vec<SigningKey>>,
    /// `security` delegation.
    pub security: Option<Vec<SigningKey>>,
    /// `publishers` delegation and every publisher bin under it.
    pub publishers: Option<Vec<SigningKey>>,
    /// `bins` and every hash bin.
    pub bins: Option<Vec<SigningKey>>,
}

/// Thresholds of the delegated roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelegationThresholds {
    /// `security`.
    pub security: u32,
    /// `publishers` and its publisher bins.
    pub publishers: u32,
    /// `bins` and its hash bins.
    pub bins: u32,
}

/// Everything a build needs, as values. [`build_registry`] makes one from a registry
/// source tree; benchmarks make one from a synthetic registry.
#[derive(Debug)]
pub struct BuildInput {
    /// Expiry per role.
    pub expiry: Expiry,
    /// `2^bin_bits` hash bins.
    pub bin_bits: u32,
    /// `2^publisher_bin_bits` publisher bins.
    pub publisher_bin_bits: u32,
    /// Thresholds of the delegations.
    pub thresholds: DelegationThresholds,
    /// Every signed root, oldest first, as the bytes to publish.
    pub roots: Vec<Vec<u8>>,
    /// Publisher record chains (shared with the [`Registry`] they were loaded from:
    /// tens of thousands at 300k plugins).
    pub publishers: Arc<BTreeMap<VendorId, PublisherChain>>,
    /// Which publishers' chains `publishers` holds ([`Registry::publisher_scope`]): with
    /// only some, the build republishes only their records and carries every other
    /// record as the previous site published it.
    pub publisher_scope: PublisherScope,
    /// The chains of `publishers` as the previous site published them, by the SHA-256
    /// of their canonical bytes ([`Registry::as_published`]): an incremental build takes
    /// their published record targets without making their bytes again. Whoever
    /// changes a chain in `publishers` removes it here.
    pub as_published: Arc<std::collections::HashMap<VendorId, Sha256>>,
    /// Whether [`build_registry_with`] checked `publishers` against the site's
    /// published chains already (before loading any plugin): the site build then does
    /// not check them again. Only this crate sets it.
    pub(crate) chains_checked: bool,
    /// The blocklist.
    pub blocklist: Blocklist,
    /// The registry's OSV advisories, matched against the releases into the
    /// `security/advisories.json` target.
    pub advisories: AdvisorySource,
    /// Plugins to index: all of them ([`Scope::Full`]) or the changed ones.
    pub plugins: Vec<PluginInput>,
    /// Ids of every plugin of the registry, for the dependency check (shared with
    /// [`build_registry`], which keeps them for the next build: 300k ids at 300k plugins).
    pub known_plugins: Arc<KnownPlugins>,
    /// What changed.
    pub scope: Scope,
    /// Keys.
    pub signers: Signers,
    /// The build's notion of now: expiry dates are computed from it, nothing else.
    pub now: jiff::Timestamp,
    /// Whether content files are flushed to disk before metadata names them.
    pub durability: Durability,
    /// Which deltas to publish for new releases.
    pub deltas: DeltaPolicy,
    /// Plugins the operator features in the catalog head, in order.
    pub featured: Vec<PluginId>,
    /// Star ratings of the loaded plugins, from their visible reviews (a loaded
    /// plugin missing here has none).
    pub ratings: BTreeMap<PluginId, Rating>,
    /// Visible reviews of the loaded plugins (those with none missing), published as
    /// `catalog/reviews-<plugin>.json`.
    pub reviews: BTreeMap<PluginId, Vec<PublishedReview>>,
    /// Icons of the loaded plugins as the storefront serves them
    /// (`images/<sha256>.<png|jpg>`), published in their catalog summaries;
    /// [`build_registry`] fills it from the storefront's `prepare` (a loaded plugin
    /// missing here has no icon).
    pub icons: BTreeMap<PluginId, String>,
    /// Downloads and trending from the registry's `stats/` as of the build's day;
    /// `None` when it has none. With figures the catalog is always redone from every
    /// record: the windows move every day, so every plugin's figures may change.
    pub downloads: Option<crate::stats::CatalogFigures>,
    /// The mirrors to publish (target `mirrors.json` of the top-level `targets` role);
    /// none: no such target.
    pub mirrors: MirrorList,
    /// Each publisher's domain proof outcome ([`crate::domain_proof`]), for the
    /// security levels; a publisher missing here is unverified, unless `every_standing`
    /// is false.
    pub publisher_standings: BTreeMap<VendorId, PublisherStanding>,
    /// Whether `publisher_standings` judged every publisher. When not (an incremental
    /// build judges the publishers of the plugins it loads), a plugin whose publisher is
    /// missing there keeps the standing its levels were published with.
    pub every_standing: bool,
}

/// Whether a build flushes the content files it wrote before publishing metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync every new content file and directory before writing metadata (the
    /// default: a crash never leaves metadata naming a file that is not on disk).
    Fsync,
    /// Leave flushing to the OS: for throwaway sites (benchmarks, previews) where a
    /// crash means rebuilding anyway. Metadata files are always written atomically.
    OsBuffered,
}

impl BuildInput {
    /// The input for building `plugins` of `registry` (configuration, roots,
    /// publishers, blocklist and the signing keys found in its key files), with
    /// [`Durability::Fsync`].
    pub fn for_registry(
        registry: &Registry,
        plugins: Vec<PluginInput>,
        known_plugins: Arc<KnownPlugins>,
        scope: Scope,
        now: jiff::Timestamp,
    ) -> Result<Self, RegistryError> {
        let keys = &registry.config.keys;
        let signers = Signers {
            targets: registry.signing_keys(&keys.targets)?,
            snapshot: registry.signing_keys(&keys.snapshot)?,
            timestamp: registry.signing_keys(&keys.timestamp)?,
            security: registry.signing_keys(&keys.security)?,
            publishers: registry.signing_keys(&keys.publishers)?,
            bins: registry.signing_keys(&keys.bins)?,
        };
        let (ratings, reviews) = ratings::of_loaded(registry, &plugins, &scope, now)?;
        let counts_path = registry.dir.join(crate::stats::COUNTS_FILE);
        let invalid = |reason: String| RegistryError::Layout { path: counts_path.clone(), reason };
        let downloads = match crate::stats::read_counts(&registry.dir).map_err(|e| invalid(e.to_string()))? {
            Some(counts) => {
                let today =
                    now.strftime("%Y-%m-%d").to_string().parse().map_err(|e| invalid(format!("build date: {e}")))?;
                Some(crate::stats::figures(&counts, today))
            }
            None => None,
        };
        Ok(Self {
            expiry: registry.config.expiry_days.clone(),
            bin_bits: registry.config.bin_bits,
            publisher_bin_bits: registry.config.publisher_bin_bits,
            thresholds: DelegationThresholds {
                security: keys.security.threshold,
                publishers: keys.publishers.threshold,
                bins: keys.bins.threshold,
            },
            roots: registry.roots.iter().map(|root| root.bytes.clone()).collect(),
            publishers: Arc::clone(&registry.publishers),
            publisher_scope: registry.publisher_scope.clone(),
            as_published: Arc::clone(&registry.as_published),
            chains_checked: false,
            blocklist: registry.blocklist.clone(),
            advisories: registry.advisories.clone(),
            plugins,
            known_plugins,
            scope,
            signers,
            now,
            durability: Durability::Fsync,
            deltas: registry.config.deltas,
            featured: registry.featured.featured.clone(),
            ratings,
            reviews,
            icons: BTreeMap::new(),
            downloads,
            mirrors: MirrorList::from_urls(registry.config.mirrors.iter().map(String::as_str)).map_err(|e| {
                RegistryError::Config {
                    path: registry.dir.join(crate::registry::CONFIG_FILE),
                    reason: format!("mirrors: {e}"),
                }
            })?,
            publisher_standings: BTreeMap::new(),
            every_standing: true,
        })
    }

    /// The same input with another durability.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}

/// What a build did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Files written, relative to the site root, sorted.
    pub written: Vec<String>,
    /// Version of the snapshot the site now serves.
    pub snapshot_version: u64,
    /// Version of `timestamp.json`.
    pub timestamp_version: u64,
    /// Number of plugins indexed by this build.
    pub plugins: usize,
    /// Number of releases indexed by this build.
    pub releases: usize,
    /// Storefront files written ([`build_registry`] only; see [`crate::storefront`]), sorted.
    pub storefront: Vec<String>,
    /// Of those, the releases this build analysed (new ones); the others carry the
    /// analysis the site published.
    pub analysed: usize,
    /// How the catalog was computed.
    pub catalog: CatalogWork,
    /// Wall time of the catalog's computation (records, documents, reviews documents),
    /// milliseconds (for benchmarks and logs).
    pub catalog_millis: u64,
    /// The security levels work.
    pub levels: LevelsWork,
    /// The prefetch hints' work.
    pub hints: HintsWork,
}

/// What computing the security levels took (for benchmarks and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelsWork {
    /// Releases assessed (in the buckets this build redid).
    pub releases: usize,
    /// Bytes of the buckets this build redid.
    pub bytes: u64,
    /// Wall time, milliseconds.
    pub millis: u64,
}

/// How a build computed the catalog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CatalogWork {
    /// From every record: a full build, or an incremental one the published
    /// documents could not decide (a plugin leaving a list the site shows only the
    /// best of).
    #[default]
    Full,
    /// From the published documents listing the changed plugins only.
    Incremental,
}

/// Why a build was refused. Nothing was written when one of these is returned,
/// except [`BuildError::Io`] during the write phase (then only unreferenced new files).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The registry source tree has a problem.
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// A role could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Reading or writing the site failed.
    #[error(transparent)]
    Io(#[from] FsError),
    /// The previous site cannot be read.
    #[error("previous site: {}: {reason}", path.display())]
    Site {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A published file is not the one the site's metadata lists (its SHA-256 differs):
    /// the site was changed after it was signed. A build refuses to take anything from
    /// it (the published releases an index doc pins, a publisher's published chain).
    #[error(
        "previous site: {}: its SHA-256 is {actual}, the site's metadata lists {listed}: the file was changed after it was signed; put the published file back (from a copy of the site: a mirror, the published branch's history)",
        path.display()
    )]
    SiteAltered {
        /// The file.
        path: PathBuf,
        /// The SHA-256 of the bytes the site has.
        actual: trellis_schema::Sha256,
        /// The SHA-256 the site's metadata lists.
        listed: trellis_schema::Sha256,
    },
    /// A published file the site's metadata lists is gone from the site. A build
    /// refuses rather than go on without it: what it carries over from the site (the
    /// releases an index doc pins, a publisher's published chain, first publication
    /// days) would silently be lost, and a release it pins could then be changed.
    #[error(
        "previous site: {}: the site's metadata lists this file and it is gone; put the published file back (from a copy of the site: a mirror, the published branch's history)",
        path.display()
    )]
    SiteMissing {
        /// The file.
        path: PathBuf,
    },
    /// A release depends on a plugin the registry does not have.
    #[error(
        "{release} depends on {dependency}, which is not in this registry; publish {dependency} first or drop the dependency"
    )]
    UnknownDependency {
        /// `id version`.
        release: String,
        /// The missing plugin.
        dependency: PluginId,
    },
    /// A published release changed.
    #[error(
        "{target} was published with sha256 {published}, the registry now has {new}; a published version is immutable: publish a new version instead"
    )]
    Immutable {
        /// Target path.
        target: String,
        /// Published digest.
        published: String,
        /// New digest.
        new: String,
    },
    /// A published release disappeared from the registry.
    #[error(
        "{target} was published but is missing from the registry; releases are yanked (trellis-index yank), never deleted"
    )]
    Removed {
        /// Target path.
        target: String,
    },
    /// The registry's root history and the site's disagree.
    #[error("{}: differs from root/{name} of the registry; a published root is never replaced", path.display())]
    RootMismatch {
        /// The site file.
        path: PathBuf,
        /// File name.
        name: String,
    },
    /// A delta could not be made.
    #[error(transparent)]
    Delta(#[from] DeltaBuildError),
    /// Trust configuration problem (no root, keys not in root, root expiring).
    #[error("{0}")]
    Trust(String),
    /// The catalog cannot be built (a featured plugin the registry does not list).
    #[error("catalog: {0}")]
    Catalog(String),
    /// A published catalog document is not the one the catalog role signed (its
    /// SHA-256 differs): the site was changed after it was published. An incremental
    /// build redoes the catalog from the records instead of reading it, or, for a
    /// record bucket (the only copy of the records of the plugins it does not load),
    /// refuses; a full build skips the bucket.
    #[error(
        "catalog: the published {target} is not the document the catalog role lists (its SHA-256 is {actual}, the role lists {listed}): the site was changed after it was signed; a full build (without --only) replaces it"
    )]
    CatalogAltered {
        /// The catalog target.
        target: String,
        /// The SHA-256 of the bytes the site has.
        actual: trellis_schema::Sha256,
        /// The SHA-256 the catalog role lists.
        listed: trellis_schema::Sha256,
    },
    /// The storefront cannot be rendered (checked before the site is written).
    #[error(transparent)]
    Storefront(#[from] crate::storefront::StorefrontError),
    /// A publisher record chain does not validly extend the published one.
    #[error("publisher {publisher}: {problem}")]
    PublisherChain {
        /// The publisher.
        publisher: String,
        /// What is wrong.
        problem: String,
    },
    /// A build prepared without keys was refused by the signer.
    #[error("prepared build: {what}: {problem}; nothing was signed")]
    Prepared {
        /// The file (or target) at fault.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An index doc entry would say something else than the release's signed manifest
    /// (clients refuse such a release).
    #[error("{release}: the index doc would list {field} {index} but the developer signed {signed}; not written")]
    IndexDisagrees {
        /// `id version`.
        release: String,
        /// The field.
        field: &'static str,
        /// What the entry would list.
        index: String,
        /// What the developer signed.
        signed: String,
    },
}

impl From<RegistryError> for BuildError {
    fn from(source: RegistryError) -> Self {
        Self::Registry(Box::new(source))
    }
}

impl From<canonical::CanonicalError> for BuildError {
    fn from(source: canonical::CanonicalError) -> Self {
        Self::Sign(SignError::Canonical { role: "document".into(), source })
    }
}

/// What the site at `site` publishes of the publisher chains: its newest root and each
/// record target's SHA-256 ([`PublishedChains`]; empty when there is no site yet).
pub fn published_chains(site: &Path) -> Result<PublishedChains, BuildError> {
    let Some(previous) = PreviousSite::open(site)? else { return Ok(PublishedChains::default()) };
    chains_of(site, previous.published_publisher_targets()?)
}

/// The [`PublishedChains`] of the record targets `published` of the site at `site`.
fn chains_of(site: &Path, published: Vec<PublishedRecord>) -> Result<PublishedChains, BuildError> {
    let mut root = None;
    for version in 1u64.. {
        let path = site::metadata_file(site, "root", version);
        match std::fs::read(&path) {
            Ok(bytes) => root = Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(FsError::new("reading", &path, e).into()),
        }
    }
    let sha256 = published
        .into_iter()
        .filter_map(|(target, sha256, _)| Some((publishers::vendor_of(&target)?, sha256)))
        .collect();
    Ok(PublishedChains { root, sha256 })
}

/// Opens the registry at `registry` for a build of `scope` into `site`. An incremental
/// build loads only the publisher chains of the plugins it names, and does not verify
/// again one the site published under the same root ([`Registry::open_incremental`]);
/// its build republishes only those publishers' records, carrying every other as
/// published. A full build, or one whose site has other publisher bins than the
/// registry configures, loads and verifies every chain.
pub fn open_registry(registry: &Path, site: &Path, scope: &Scope) -> Result<Registry, BuildError> {
    let (Scope::Plugins(ids), Some(previous)) = (scope, PreviousSite::open(site)?) else {
        return Ok(Registry::open(registry)?);
    };
    open_for_vendors(registry, &previous, &ids.iter().map(PluginId::vendor_id).collect())
}

/// The registry at `registry` with the chains of `vendors` ([`Registry::open_incremental`]
/// against what `previous` publishes), or every chain when `previous` has other
/// publisher bins than the registry configures.
fn open_for_vendors(
    registry: &Path,
    previous: &PreviousSite,
    vendors: &BTreeSet<VendorId>,
) -> Result<Registry, BuildError> {
    let config: crate::registry::RegistryConfig =
        crate::registry::read_json(&registry.join(crate::registry::CONFIG_FILE))?;
    Ok(match previous.published_publisher_targets_of(vendors, config.publisher_bin_bits)? {
        Some(published) => Registry::open_incremental(registry, &chains_of(previous.dir(), published)?, vendors)?,
        None => Registry::open(registry)?,
    })
}

/// `registry` opened again, with its caller's settings, when it lacks a chain the build
/// needs; `None` when it has them. A build widened to `every` plugin needs every chain;
/// else the chains of the publishers of every plugin it loads (`load`): a plugin loaded
/// without being named (its rating moved) is published under its publisher's chain,
/// which must be checked against the published one as the named plugins' are.
fn reopened_for(
    registry: &Registry,
    previous: Option<&PreviousSite>,
    every: bool,
    load: &BTreeSet<PluginId>,
) -> Result<Option<Registry>, BuildError> {
    let PublisherScope::Vendors(loaded) = &registry.publisher_scope else { return Ok(None) };
    let needed: BTreeSet<VendorId> = load.iter().map(PluginId::vendor_id).chain(loaded.iter().cloned()).collect();
    if !every && needed.len() == loaded.len() {
        return Ok(None);
    }
    let opened = match previous {
        Some(previous) if !every => {
            let more = needed.len() - loaded.len();
            tracing::info!(publishers = more, "plugins loaded for their ratings: loading their publishers' chains");
            open_for_vendors(&registry.dir, previous, &needed)?
        }
        _ => Registry::open(&registry.dir)?,
    };
    let mut opened = opened.with_remote_http(registry.remote_http);
    opened.reanalyse = registry.reanalyse;
    Ok(Some(opened))
}

/// Builds the site of the registry at `registry` into `site` (see [`build`]), then its
/// storefront ([`crate::storefront`]: the changed plugins' packages are read and their
/// images checked before anything is written; pages are written after the site).
pub fn build_registry(
    registry: &Registry,
    site: &Path,
    scope: Scope,
    now: jiff::Timestamp,
) -> Result<BuildReport, BuildError> {
    build_registry_with(registry, site, scope, now, Signing::Signed)
}

/// [`build_registry`], signed or [`Signing::Unsigned`].
pub fn build_registry_with(
    registry: &Registry,
    site: &Path,
    scope: Scope,
    now: jiff::Timestamp,
    signing: Signing,
) -> Result<BuildReport, BuildError> {
    let previous = PreviousSite::open(site)?;
    // Advisories match every release: when they changed since the published site, the
    // build looks at every plugin, with every publisher's chain.
    let widened = match (&scope, &previous) {
        (Scope::Plugins(_), Some(previous)) => {
            previous_advisories(previous)?.source_sha256 != Some(registry.advisories.digest)
        }
        _ => false,
    };
    let mut scope = scope;
    if widened {
        tracing::info!("advisories/ changed since the published site: indexing every plugin");
        scope = Scope::Full;
    }
    // The registry's plugins: an incremental build takes the ones its site publishes
    // from the builder's state, with those it builds; else every directory of releases/.
    let published_plugins = match (&scope, &previous) {
        (Scope::Plugins(_), Some(previous)) => known::read(previous),
        _ => None,
    };
    let (mut known_plugins, mut load) = match published_plugins {
        Some(known) => (known, BTreeSet::new()),
        None => {
            let listed = registry.plugin_ids()?;
            let load = if scope == Scope::Full { listed.clone() } else { BTreeSet::new() };
            (KnownPlugins::from(listed), load)
        }
    };
    match &scope {
        Scope::Full => {}
        Scope::Plugins(ids) => {
            for id in ids {
                if !known_plugins.contains(id) {
                    if !registry.has_plugin(id) {
                        return Err(BuildError::Trust(format!("{id} has no directory under releases/")));
                    }
                    known_plugins.insert(id.clone());
                }
            }
            load.clone_from(ids);
        }
    }
    // Ratings move as reviews enter and leave their recent window: the plugins whose
    // rating moved since the published site are loaded like changed ones.
    let today = ratings::day(now);
    let rating_days = match (&mut scope, &previous) {
        (Scope::Plugins(ids), Some(previous)) => {
            let (due, days) = ratings::due(registry, previous, today);
            let due: BTreeSet<PluginId> = due.into_iter().filter(|id| known_plugins.contains(id)).collect();
            if !due.is_empty() {
                tracing::info!(plugins = due.len(), "ratings whose recent window moved: loading those plugins");
            }
            ids.extend(due.iter().cloned());
            load.extend(due);
            days
        }
        _ => ratings::RatingDays::default(),
    };
    let reopened = reopened_for(registry, previous.as_ref(), widened, &load)?;
    let registry = reopened.as_ref().unwrap_or(registry);
    // Publisher chains first: a record that does not extend the published one is the
    // cause of any release refusal it would lead to.
    if let Some(previous) = &previous {
        let scope = &registry.publisher_scope;
        let roots: Vec<Vec<u8>> = registry.roots.iter().map(|root| root.bytes.clone()).collect();
        let sha256 = (registry.publishers.par_iter())
            .map(|(vendor, chain)| {
                let sha256 = match registry.as_published.get(vendor) {
                    Some(sha256) => *sha256,
                    None => Sha256::of(&chain.to_canonical()?),
                };
                Ok((vendor.clone(), sha256))
            })
            .collect::<Result<BTreeMap<_, _>, canonical::CanonicalError>>()?;
        let published = publishers::published_records(previous, scope, registry.config.publisher_bin_bits)?.records;
        let root = publishers::newest_root(&roots);
        publishers::check_chains(previous, &published, &registry.publishers, scope, &sha256, root.as_ref())?;
    }
    // A release is analysed once, when first published: the ones the site lists keep
    // their published analysis (their packages are pinned), only new ones are
    // extracted, analysed, scanned and sandboxed.
    let published = match &previous {
        Some(previous) => previous.published_releases(&load, registry.config.bin_bits)?,
        None => Default::default(),
    };
    drop(previous);
    let plugins = registry.load_plugins_published(&load, &published)?;
    drop(published);
    let limits = storefront::PageLimits::default();
    let theme = storefront::Theme::load(&registry.config.name, &registry.dir.join(storefront::THEME_DIR))?;
    let prepared = storefront::prepare(&plugins, &limits)?;
    // The publishers' insight pages: the download counts as of the build's day, of the
    // plugins the registry has (read before anything is written).
    let counts_path = registry.dir.join(crate::stats::COUNTS_FILE);
    let invalid = |reason: String| RegistryError::Layout { path: counts_path.clone(), reason };
    let counts = crate::stats::read_counts(&registry.dir).map_err(|e| invalid(e.to_string()))?;
    let mut insights = storefront::Insights::new(counts.as_ref(), today);
    drop(counts);
    insights.retain_plugins(|id| known_plugins.contains(id));
    let known_plugins = Arc::new(known_plugins);
    let known_for_state = Arc::clone(&known_plugins);
    let mut input = BuildInput::for_registry(registry, plugins, known_plugins, scope, now)?;
    input.chains_checked = true;
    input.icons = prepared.icons();
    // Domain proofs: from the cache in the registry source while fresh, else fetched
    // (never a build failure: an unproved publisher is unverified, with the reason).
    let cache_error = |e: domain_proof::ProofCacheError| RegistryError::Layout { path: e.path, reason: e.reason };
    let cache = domain_proof::read_cache(&registry.dir).map_err(cache_error)?;
    let settings = &registry.config.domain_proofs;
    let fetcher = |url: &str| domain_proof::fetch(settings, url);
    // With some publishers' chains (an incremental open), the publishers of the loaded
    // plugins are judged; every other keeps the standing its levels were published with
    // (`levels::documents`) and its cache entry.
    let (standings, checked) = match &registry.publisher_scope {
        PublisherScope::All => domain_proof::standings(&registry.publisher_records(), &cache, settings, now, &fetcher),
        PublisherScope::Vendors(_) => {
            let records = registry.records_of(input.plugins.iter().map(|p| &p.id))?;
            let (standings, checked) = domain_proof::standings(&records, &cache, settings, now, &fetcher);
            let mut kept = cache.clone();
            kept.extend(checked);
            (standings, kept)
        }
    };
    input.publisher_standings = standings;
    input.every_standing = registry.publisher_scope == PublisherScope::All;
    let rating_days = rating_days.with_loaded(&input.plugins, &input.reviews, today);
    // Plugins whose pages change without being in scope (a listing they share): their
    // releases were published before this build (only the loaded plugins' change), so
    // their analysis is carried over, never redone.
    let load_more = |ids: &BTreeSet<PluginId>| {
        let failed = |reason: String| storefront::StorefrontError::Package {
            release: ids.iter().map(PluginId::as_str).collect::<Vec<_>>().join(", "),
            reason,
        };
        let published = match PreviousSite::open(site).map_err(|e| failed(e.to_string()))? {
            Some(site) => site.published_releases(ids, registry.config.bin_bits).map_err(|e| failed(e.to_string()))?,
            None => Default::default(),
        };
        let plugins = registry.load_plugins_published(ids, &published).map_err(|e| failed(e.to_string()))?;
        storefront::prepare(&plugins, &limits)
    };
    // The site and the storefront at once (the storefront's pages made visible only
    // once the build published the metadata they show: `storefront::build_and_publish`).
    let after_build = |report: &BuildReport| -> Result<(), BuildError> {
        rating_days.write(site, report.snapshot_version)?;
        known::write(site, report.snapshot_version, &known_for_state)?;
        domain_proof::write_cache(&registry.dir, &cache, &checked).map_err(cache_error)?;
        Ok(())
    };
    let job = storefront::StorefrontJob { prepared, theme: &theme, insights: &insights, load: &load_more };
    let built = storefront::build_and_publish(input, site, signing, job, after_build)?;
    let mut report = built.build;
    report.storefront = built.storefront?.written;
    Ok(report)
}

/// The target `target` of the published site, whose SHA-256 the site's metadata gives
/// (other bytes: [`BuildError::SiteAltered`]), parsed.
fn read_site_target<T: serde::de::DeserializeOwned>(
    previous: &PreviousSite,
    target: &str,
    sha256: &Sha256,
) -> Result<T, BuildError> {
    let bytes = previous.read_target(target, sha256)?;
    trellis_schema::json::from_slice(&bytes).map_err(|e| BuildError::Site {
        path: site::target_file(previous.dir(), target, sha256),
        reason: e.to_string(),
    })
}

/// The advisories document of the published site (empty when it has none).
fn previous_advisories(previous: &PreviousSite) -> Result<Advisories, BuildError> {
    let Some(role) = previous.role(SECURITY_ROLE)? else { return Ok(Advisories::default()) };
    let Some(sha256) = role.signed.targets.get(site::ADVISORIES_TARGET).and_then(|f| f.hashes.get("sha256")) else {
        return Ok(Advisories::default());
    };
    let sha256: Sha256 = sha256.parse().map_err(|_| BuildError::Site {
        path: previous.dir().to_owned(),
        reason: format!("{} has a malformed sha256 in the security role", site::ADVISORIES_TARGET),
    })?;
    read_site_target(previous, site::ADVISORIES_TARGET, &sha256)
}

/// The advisories to publish: the matches of the loaded plugins' releases, over the
/// published matches of the others (a [`Scope::Plugins`] build; [`build_registry`]
/// widens the scope when the advisories changed, so those are still current).
fn advisories_document(
    input: &BuildInput,
    previous: Option<&PreviousSite>,
    plugins: &[PluginInput],
) -> Result<Advisories, BuildError> {
    let (fresh, warnings) = advisories::match_plugins(&input.advisories, plugins);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let published = match (previous, &input.scope) {
        (Some(previous), Scope::Plugins(_)) => previous_advisories(previous)?,
        _ => Advisories::default(),
    };
    let loaded: Vec<PluginId> = plugins.iter().map(|p| p.id.clone()).collect();
    let mut doc = advisories::merge(published, fresh, &loaded);
    doc.source_sha256 = Some(input.advisories.digest);
    Ok(doc)
}

/// Builds `input` into the site directory `site`, reading its previous state.
pub fn build(input: BuildInput, site_dir: &Path) -> Result<BuildReport, BuildError> {
    build_with(input, site_dir, Signing::Signed)
}

/// [`build`], signed or [`Signing::Unsigned`].
pub fn build_with(input: BuildInput, site_dir: &Path, signing: Signing) -> Result<BuildReport, BuildError> {
    build_handing_off(input, site_dir, signing, &mut |_| {})
}

/// Documents a build is about to publish, handed in memory to whoever renders from them
/// (the storefront) while the build goes on: the entries their role will list and the
/// bytes of every one of those documents this build made (the others are the published
/// files, which the build carries over unchanged). Nothing in it is published yet: a
/// reader must not make anything it derives visible before the build returned `Ok`.
#[derive(Debug, Default)]
pub struct HandedDocuments {
    /// Every target of the kind handed over that its role will list: path, SHA-256, length.
    pub entries: BTreeMap<String, (Sha256, u64)>,
    /// The bytes of those this build made, by target.
    pub bytes: BTreeMap<String, std::sync::Arc<[u8]>>,
}

/// What [`build_handing_off`] hands over, in this order.
#[derive(Debug)]
pub enum Handoff {
    /// The `security/levels-<xx>.json` buckets the `security` role will list, as soon as
    /// they are made (before the catalog, which takes longer).
    Levels(HandedDocuments),
    /// The documents the `catalog` role will list, as soon as they are made (before the
    /// index docs, blobs and metadata are written).
    Catalog(HandedDocuments),
}

/// [`build_with`], calling `handoff` with the documents the storefront renders from
/// ([`Handoff`]: the levels buckets, then the catalog) as soon as each is computed (not
/// at all when the build fails before them).
pub fn build_handing_off(
    mut input: BuildInput,
    site_dir: &Path,
    signing: Signing,
    handoff: &mut dyn FnMut(Handoff),
) -> Result<BuildReport, BuildError> {
    let unsigned = signing == Signing::Unsigned;
    if unsigned {
        input.signers = Signers::default();
    }
    fn online(unsigned: bool, keys: Option<&[SigningKey]>) -> Option<&[SigningKey]> {
        if unsigned { Some(&[]) } else { keys }
    }
    let previous = PreviousSite::open(site_dir)?;
    if previous.is_none() && input.scope != Scope::Full {
        return Err(BuildError::Trust(format!(
            "{} has no published site to update; run a full build (without --only) first",
            site_dir.display()
        )));
    }
    if input.publisher_scope != PublisherScope::All && input.scope == Scope::Full {
        return Err(BuildError::Trust(
            "a full build republishes every publisher record: open the registry with every chain (Registry::open)"
                .into(),
        ));
    }
    // A plugin is published under its publisher's chain, which the build checks against
    // the published one only for the publishers whose chains it holds.
    if let Some(plugin) = input.plugins.iter().find(|p| !input.publisher_scope.covers(&p.id.vendor_id())) {
        return Err(BuildError::Trust(format!(
            "{}: the registry was opened without its publisher's chain, which the build must check \
             (Registry::open_incremental with {})",
            plugin.id,
            plugin.id.vendor_id()
        )));
    }
    let now = input.now;
    check_root(&input)?;
    check_dependencies(&input)?;

    // Targets of the changed plugins, grouped by bin. The inputs are dropped as soon
    // as their index docs exist: at 10^6 releases they are the largest thing held.
    let plugins = std::mem::take(&mut input.plugins);
    let releases = plugins.iter().map(|p| p.releases.len()).sum();
    let analysed = plugins.iter().flat_map(|p| &p.releases).filter(|r| r.analysed).count();
    let plugin_count = plugins.len();
    let changed_ids: BTreeSet<String> = plugins.iter().map(|p| p.id.as_str().to_owned()).collect();
    let advisories_doc = advisories_document(&input, previous.as_ref(), &plugins)?;
    let levels_started = std::time::Instant::now();
    let level_documents = levels::documents(
        previous.as_ref(),
        &input.scope,
        &plugins,
        &levels::LevelContext {
            standings: &input.publisher_standings,
            every_standing: input.every_standing,
            advisories: &advisories_doc,
            today: jiff::tz::Offset::UTC.to_datetime(now).date(),
            known_plugins: input.known_plugins.as_ref(),
        },
    )?;
    let levels_work = LevelsWork {
        releases: level_documents.buckets.iter().map(|d| d.releases).sum(),
        bytes: level_documents.buckets.iter().map(|d| d.target.length).sum(),
        millis: u64::try_from(levels_started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let levels_carried = level_documents.carried;
    let level_documents: Vec<TargetOut> =
        level_documents.buckets.into_iter().map(|d| d.target).chain(std::iter::once(level_documents.head)).collect();
    // The storefront compares the levels while the catalog is made.
    let is_levels_bucket = |target: &str| target.starts_with("security/levels-");
    handoff(Handoff::Levels(HandedDocuments {
        entries: level_documents
            .iter()
            .map(|t| (t.target.clone(), (t.sha256, t.length)))
            .chain(levels_carried.iter().map(|(t, e)| (t.clone(), *e)))
            .filter(|(target, _)| is_levels_bucket(target))
            .collect(),
        bytes: handed_bytes(level_documents.iter().filter(|t| is_levels_bucket(&t.target))),
    }));
    // The index doc each changed plugin published last: its releases must be
    // unchanged, and its deltas are carried over. Read one plugin at a time, in
    // parallel, and dropped once its files are planned.
    let published_docs = match &previous {
        Some(prev) => prev.published_docs(&plugins, input.bin_bits)?,
        None => BTreeMap::new(),
    };
    // The catalog: an incremental build redoes only the documents listing the
    // changed plugins, from the published documents; a full build (or an update
    // the published documents cannot decide) redoes it from every record: the
    // published ones, with the changed plugins' redone (a full build keeps only the
    // plugins it loaded).
    let catalog_started = std::time::Instant::now();
    let build_time = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let record = |p: &PluginInput, previous: Option<&trellis_schema::catalog::CatalogRecord>| {
        let mut record = catalog::record(p, previous, &build_time, input.ratings.get(&p.id).copied())?;
        record.summary.icon = input.icons.get(&p.id).cloned();
        Some(record)
    };
    // The published catalog role, read once: its entries decide the incremental
    // catalog and carry reviews over, and its plan compares with it.
    let published_catalog_role = match &previous {
        Some(prev) => prev.published_role(CATALOG_ROLE)?,
        None => None,
    };
    let published_catalog = match (&input.scope, &previous) {
        (Scope::Plugins(_), Some(prev)) => catalog::SiteCatalog::of_role(prev, published_catalog_role.as_deref())?,
        _ => None,
    };
    // With download statistics, the plugins whose figures moved since the catalog
    // was published (new counts, days leaving the windows) are changed too; without
    // the figures it was published with, or when too many moved, every record. The
    // state keeps every counted plugin's figures, listed or not, so a plugin the
    // catalog does not list is not looked for again until its counts move.
    let published_figures = match (&published_catalog, &input.downloads) {
        (Some(published), Some(figures)) => {
            catalog::figures::read(site_dir, catalog::PublishedCatalog::entries(published)).and_then(|state| {
                let loaded: BTreeSet<&PluginId> = plugins.iter().map(|p| &p.id).collect();
                let moved: BTreeSet<PluginId> =
                    catalog::figures::moved(&state, figures).into_iter().filter(|id| !loaded.contains(id)).collect();
                if moved.len() > (input.known_plugins.len() / MOVED_FIGURES_DIVISOR).max(MOVED_FIGURES_FLOOR) {
                    tracing::info!(moved = moved.len(), "download figures moved for many plugins; redoing the catalog");
                    return None;
                }
                Some((state, moved))
            })
        }
        _ => None,
    };
    let with_figures = |mut record: trellis_schema::catalog::CatalogRecord| {
        if let Some(figures) = &input.downloads {
            let downloads = figures.of(&record.summary.id);
            record.summary.downloads = downloads.total;
            record.summary.recent_downloads = downloads.recent;
        }
        record
    };
    let update = match &published_catalog {
        Some(published) if input.downloads.is_none() || published_figures.is_some() => {
            let layout = catalog::ShardLayout::read(site_dir);
            let mut incremental = catalog::Incremental::new(published).with_layout(layout);
            let moved = published_figures.as_ref().map(|(_, moved)| moved);
            incremental.load(plugins.iter().map(|p| &p.id).chain(moved.into_iter().flatten()))?;
            let mut changes: BTreeMap<PluginId, Option<trellis_schema::catalog::CatalogRecord>> = plugins
                .par_iter()
                .map(|p| (p.id.clone(), record(p, incremental.previous(&p.id)).map(with_figures)))
                .collect();
            for id in moved.into_iter().flatten() {
                if let Some(previous) = incremental.previous(id) {
                    changes.insert(id.clone(), Some(with_figures(previous.clone())));
                }
            }
            let trending = input.downloads.as_ref().map_or(&[][..], |f| &f.trending[..]);
            let update = incremental.update(&changes, &input.featured, trending)?;
            update.map(|update| (update, input.downloads.as_ref().map(|f| &f.downloads)))
        }
        _ => None,
    };
    let catalog_work = if update.is_some() { CatalogWork::Incremental } else { CatalogWork::Full };
    if published_catalog.is_some() && update.is_none() {
        tracing::info!("the published catalog cannot decide this update; redoing the catalog from every record");
    }
    let (catalog_documents, catalog_entries, catalog_figures, shard_layout): (Vec<TargetOut>, Entries, _, _) =
        match update {
            Some((catalog::CatalogUpdate { documents, entries, layout }, figures)) => (
                // Hashed once, where the update listed them.
                documents
                    .into_iter()
                    .map(|(target, bytes)| match entries.get(&target) {
                        Some((sha256, _)) => hashed_target(target, bytes, *sha256),
                        None => bytes_target(target, bytes),
                    })
                    .collect(),
                entries,
                figures,
                layout,
            ),
            None => {
                let mut records = catalog::previous_records(previous.as_ref(), input.scope == Scope::Full)?;
                if input.scope == Scope::Full {
                    let loaded: BTreeSet<&PluginId> = plugins.iter().map(|p| &p.id).collect();
                    records.retain(|id, _| loaded.contains(id));
                }
                let redone: Vec<(PluginId, Option<trellis_schema::catalog::CatalogRecord>)> =
                    plugins.par_iter().map(|p| (p.id.clone(), record(p, records.get(&p.id)))).collect();
                for (id, record) in redone {
                    match record {
                        Some(record) => records.insert(id, record),
                        None => records.remove(&id),
                    };
                }
                let trending = match &input.downloads {
                    Some(figures) => catalog::apply_downloads(&mut records, figures),
                    None => Vec::new(),
                };
                catalog::check_featured(&input.featured, &records)?;
                let (documents, layout) = catalog::documents_and_layout(&records, &input.featured, &trending);
                let documents: Vec<TargetOut> =
                    documents.into_iter().map(|(target, bytes)| bytes_target(target, bytes)).collect();
                let entries = documents.iter().map(|t| (t.target.clone(), (t.sha256, t.length))).collect();
                (documents, entries, input.downloads.as_ref().map(|f| &f.downloads), layout)
            }
        };
    // Reviews documents: redone for the loaded plugins; those of the others (an
    // incremental build) carried over from the published catalog role.
    let (catalog_documents, catalog_entries) = {
        let mut documents = catalog_documents;
        let mut entries = catalog_entries;
        let loaded: BTreeSet<String> = plugins.iter().map(|p| trellis_schema::catalog::reviews_target(&p.id)).collect();
        let is_reviews = |target: &str| target.starts_with("catalog/reviews-");
        entries.retain(|target, _| !is_reviews(target));
        if let Some(published) = &published_catalog {
            let published = catalog::PublishedCatalog::entries(published);
            let reviews = published.range("catalog/reviews-".to_owned()..).take_while(|(target, _)| is_reviews(target));
            entries.extend(reviews.filter(|(target, _)| !loaded.contains(*target)).map(|(t, e)| (t.clone(), *e)));
        }
        for (target, bytes) in catalog::reviews_documents(&input.reviews) {
            let out = bytes_target(target, bytes);
            entries.insert(out.target.clone(), (out.sha256, out.length));
            documents.push(out);
        }
        (documents, entries)
    };

    let catalog_custom = catalog::head_custom(&catalog_documents, published_catalog_role.as_deref())?;
    let catalog_millis = u64::try_from(catalog_started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // The storefront renders from these while the rest of the site is written.
    handoff(Handoff::Catalog(HandedDocuments {
        entries: catalog_entries.clone(),
        // Not the search and typo shards (most of the bytes): the storefront names them only.
        bytes: handed_bytes(
            catalog_documents
                .iter()
                .filter(|t| !t.target.starts_with("catalog/search-") && !t.target.starts_with("catalog/typo-")),
        ),
    }));

    // Each doc's prefetch hint: through this build's plugins and, for an incremental
    // build, the docs the site publishes for the others.
    let incremental = previous.as_ref().filter(|_| input.scope != Scope::Full);
    let hints = hints::compute(&plugins, incremental, input.bin_bits);
    let policy = input.deltas;
    let per_plugin: Vec<PluginFiles> = plugins
        .into_par_iter()
        .map(|p| {
            let published = match (&previous, published_docs.get(&p.id)) {
                (Some(prev), Some(sha)) => Some(prev.index_doc(&p.id, sha)?),
                _ => None,
            };
            if let Some(published) = &published {
                previous::check_published_releases(published, &p)?;
            }
            let deltas = deltas::plugin_deltas(&p, published.as_ref(), &policy)?;
            plugin_files(&p, &deltas, hints.of(&p.id))
        })
        .collect::<Result<_, _>>()?;
    drop(published_docs);
    let hints_work = hints.work;
    let bits = input.bin_bits;
    let mut bin_entries: BTreeMap<String, Entries> = BTreeMap::new();
    if input.scope == Scope::Full {
        for number in 0..(1u32 << bits) {
            bin_entries.insert(site::bin_name(number, bits, tuf::BIN_PREFIX), BTreeMap::new());
        }
    }
    // Blobs first, then index docs: each batch is written in parallel.
    let mut blobs: Vec<TargetOut> = Vec::new();
    let mut documents: Vec<TargetOut> = Vec::with_capacity(per_plugin.len());
    for PluginFiles { doc, blobs: listed } in per_plugin {
        let bin = site::bin_for_target(&doc.target, bits, tuf::BIN_PREFIX);
        bin_entries.entry(bin).or_default().insert(doc.target.clone(), (doc.sha256, doc.length));
        blobs.extend(listed.into_iter().filter(|b| b.content.is_some()));
        documents.push(doc);
    }

    // Publishers (grouped by publisher bin) and the blocklist. With every chain loaded,
    // every bin is made from the registry's records; with some publishers' (an
    // incremental open), only the bins of theirs, whose other records are carried as
    // the site published them.
    let publisher_bits = input.publisher_bin_bits;
    // The records the site publishes there, read once: the chain check and the writes below.
    let publishers::PublishedRecords { records: published_records, bins: partial_bins } = match &previous {
        Some(prev) => publishers::published_records(prev, &input.publisher_scope, publisher_bits)?,
        None => publishers::PublishedRecords { records: Vec::new(), bins: None },
    };
    let mut publisher_bins: BTreeMap<String, Entries> = match &partial_bins {
        None => (0..(1u32 << publisher_bits))
            .map(|number| (site::bin_name(number, publisher_bits, tuf::PUBLISHER_BIN_PREFIX), BTreeMap::new()))
            .collect(),
        Some(bins) => {
            let mut planned: BTreeMap<String, Entries> = bins.iter().map(|bin| (bin.clone(), Entries::new())).collect();
            let others = (published_records.iter()).filter(|(target, _, _)| {
                publishers::vendor_of(target).is_none_or(|v| !input.publisher_scope.covers(&v))
            });
            for (target, sha256, length) in others {
                let bin = site::bin_for_target(target, publisher_bits, tuf::PUBLISHER_BIN_PREFIX);
                planned.entry(bin).or_default().insert(target.clone(), (*sha256, *length));
            }
            planned
        }
    };
    let mut publisher_sha256 = BTreeMap::new();
    // An incremental build writes the records that changed, and of the others only one
    // whose file is gone or has another length; like the other plugins' index docs, it
    // does not read them back (~37k files at 300k plugins). A full build writes every
    // record, so one altered in place is the signed bytes again after it.
    let unchanged: BTreeMap<&str, (Sha256, u64)> = match input.scope {
        Scope::Plugins(_) => {
            (published_records.iter()).map(|(target, sha256, length)| (target.as_str(), (*sha256, *length))).collect()
        }
        Scope::Full => BTreeMap::new(),
    };
    // Made in parallel. A record the registry found as published keeps its published
    // entry (its bytes are not made again: at 100k plugins ~12k records, ~70 ms);
    // any other is written canonically and hashed (~8 µs each).
    let publisher_targets = (input.publishers.par_iter())
        .map(|(vendor, chain)| {
            let target = site::publisher_target(vendor);
            let on_disk = |sha256: &Sha256, length: u64| {
                std::fs::metadata(site::target_file(site_dir, &target, sha256)).is_ok_and(|meta| meta.len() == length)
            };
            let published = unchanged.get(target.as_str()).copied();
            if let (Some(sha256), Some((published_sha256, length))) = (input.as_published.get(vendor), published)
                && *sha256 == published_sha256
                && on_disk(sha256, length)
            {
                return Ok((vendor, target, (*sha256, length), None));
            }
            let t = bytes_target(target.clone(), chain.to_canonical()?);
            let kept = published == Some((t.sha256, t.length)) && on_disk(&t.sha256, t.length);
            Ok((vendor, target, (t.sha256, t.length), (!kept).then_some(t)))
        })
        .collect::<Result<Vec<_>, canonical::CanonicalError>>()?;
    for (vendor, target, (sha256, length), write) in publisher_targets {
        let bin = site::bin_for_target(&target, publisher_bits, tuf::PUBLISHER_BIN_PREFIX);
        publisher_bins.entry(bin).or_default().insert(target, (sha256, length));
        publisher_sha256.insert(vendor.clone(), sha256);
        documents.extend(write);
    }
    if let Some(prev) = previous.as_ref().filter(|_| !input.chains_checked) {
        let root = publishers::newest_root(&input.roots);
        let scope = &input.publisher_scope;
        publishers::check_chains(prev, &published_records, &input.publishers, scope, &publisher_sha256, root.as_ref())?;
    }
    let blocklist = bytes_target(site::BLOCKLIST_TARGET.to_owned(), canonical::to_vec_of(&input.blocklist)?);
    let advisories = bytes_target(site::ADVISORIES_TARGET.to_owned(), canonical::to_vec_of(&advisories_doc)?);
    let mut security_entries = BTreeMap::from([
        (blocklist.target.clone(), (blocklist.sha256, blocklist.length)),
        (advisories.target.clone(), (advisories.sha256, advisories.length)),
    ]);
    security_entries.extend(level_documents.iter().map(|t| (t.target.clone(), (t.sha256, t.length))));
    security_entries.extend(levels_carried);
    documents.push(blocklist);
    documents.push(advisories);
    documents.extend(level_documents);
    documents.extend(catalog_documents);
    // The mirror list, signed by the top-level targets role (offline keys): only when
    // there is one, so a registry without mirrors keeps its targets role unchanged.
    let mut top_entries = Entries::new();
    if !input.mirrors.mirrors.is_empty() {
        let mirrors = bytes_target(site::MIRRORS_TARGET.to_owned(), canonical::to_vec_of(&input.mirrors)?);
        top_entries.insert(mirrors.target.clone(), (mirrors.sha256, mirrors.length));
        documents.push(mirrors);
    }

    // The search shards the catalog role will list, which the shard layout is bound to.
    let search_entries: Entries = catalog_entries
        .range("catalog/search-".to_owned()..)
        .take_while(|(target, _)| target.starts_with("catalog/search-"))
        .map(|(t, e)| (t.clone(), *e))
        .collect();
    // The record buckets the catalog role will list, which the figures state is bound to.
    let catalog_role_entries: Entries = match &catalog_figures {
        Some(_) => catalog_entries
            .iter()
            .filter(|(t, _)| t.starts_with("catalog/records-"))
            .map(|(t, e)| (t.clone(), *e))
            .collect(),
        None => Entries::new(),
    };

    // Role keys: from the signers, else as published.
    let previous_targets = match &previous {
        Some(prev) => prev.role("targets")?,
        None => None,
    };
    let thresholds = input.thresholds;
    let role_keys = |role: &str, signers: &Option<Vec<SigningKey>>, threshold: u32| {
        delegation_keys(role, signers.as_deref(), threshold, previous_targets.as_ref().map(|t| &t.signed))
    };
    let security_keys = role_keys(SECURITY_ROLE, &input.signers.security, thresholds.security)?;
    let publishers_keys = role_keys(PUBLISHERS_ROLE, &input.signers.publishers, thresholds.publishers)?;
    let bins_keys = role_keys(BINS_ROLE, &input.signers.bins, thresholds.bins)?;

    // Plan every targets role, then decide its version against the published one.
    let expiry = &input.expiry;
    let signers = &input.signers;
    let mut plans = vec![
        RolePlan::new(
            "targets",
            top_entries,
            Some(tuf::top_delegations(&security_keys, &publishers_keys, &bins_keys)),
            signers.targets.as_deref(),
            expiry.targets,
        ),
        RolePlan::new(
            BINS_ROLE,
            BTreeMap::new(),
            Some(tuf::bin_delegations(&bins_keys, bits)),
            signers.bins.as_deref(),
            expiry.delegations,
        ),
        RolePlan::new(SECURITY_ROLE, security_entries, None, signers.security.as_deref(), expiry.delegations),
        RolePlan::new(CATALOG_ROLE, catalog_entries, None, signers.bins.as_deref(), expiry.delegations)
            .with_custom(catalog_custom),
        RolePlan::new(
            PUBLISHERS_ROLE,
            BTreeMap::new(),
            Some(tuf::publisher_bin_delegations(&publishers_keys, publisher_bits)),
            signers.publishers.as_deref(),
            expiry.delegations,
        ),
    ];
    for (name, entries) in publisher_bins {
        plans.push(RolePlan::new(&name, entries, None, signers.publishers.as_deref(), expiry.delegations));
    }
    for (name, entries) in bin_entries {
        plans.push(RolePlan::new(&name, entries, None, signers.bins.as_deref(), expiry.delegations));
    }
    for plan in &mut plans {
        plan.unsigned = unsigned && plan.name != "targets";
    }
    let full = input.scope == Scope::Full;
    let published_targets = previous_targets.as_ref().map(plan::PublishedRole::of);
    plans.par_iter_mut().try_for_each(|plan| {
        // The roles already read are compared in place (the catalog role lists every
        // catalog document: a copy of it is a copy of O(plugins) entries).
        let read;
        let published = match &previous {
            Some(_) if plan.name == "targets" => published_targets.as_ref(),
            Some(_) if plan.name == CATALOG_ROLE => published_catalog_role.as_deref(),
            Some(prev) => {
                read = prev.published_role(&plan.name)?;
                read.as_deref()
            }
            None => None,
        };
        if plan.name.starts_with(&format!("{}-", tuf::BIN_PREFIX))
            && let (Some(prev), Some(published)) = (&previous, published)
        {
            let version = prev.version(&plan.name).unwrap_or(published.version);
            let path = site::metadata_file(prev.dir(), &plan.name, version);
            merge_bin(&mut plan.entries, published, &path, full, &changed_ids)?;
        }
        plan.decision = plan.decide(published, now);
        Ok::<(), BuildError>(())
    })?;

    // Every role that changes must have its keys here, before anything is written;
    // the documents themselves are signed while writing, one at a time.
    if let Some(plan) =
        plans.iter().find(|p| matches!(p.decision, Decision::New { .. }) && p.keys.is_none() && !p.unsigned)
    {
        return Err(SignError::MissingKey {
            role: plan.name.clone(),
            hint: "it changed or expired, and its key files listed in trellis-registry.json are not here; \
                   build where they are (the offline targets key: on the operator's machine, \
                   scripts/publish-offline.sh of the registry template)"
                .into(),
        }
        .into());
    }

    // Snapshot and timestamp.
    let mut meta: BTreeMap<String, MetaFile> = match (&previous, &input.scope) {
        (Some(prev), Scope::Plugins(_)) => prev.snapshot.signed.meta.clone(),
        _ => BTreeMap::new(),
    };
    // With every chain loaded every publisher bin is planned: drop the published ones,
    // so a changed `publisher_bin_bits` leaves no stale bin in the snapshot.
    if partial_bins.is_none() {
        let publisher_bin = format!("{}-", tuf::PUBLISHER_BIN_PREFIX);
        meta.retain(|name, _| !name.starts_with(&publisher_bin));
    }
    for plan in &plans {
        let version = match &plan.decision {
            Decision::Keep(version) | Decision::New { version, .. } => *version,
        };
        meta.insert(format!("{}.json", plan.name), MetaFile { version, length: None, hashes: None, extra: Map::new() });
    }
    let prev_snapshot = previous.as_ref().map(|p| &p.snapshot.signed);
    let snapshot_unchanged = previous.as_ref().is_some_and(|p| {
        p.snapshot.signed.meta == meta
            && !tuf::needs_refresh(&p.snapshot.signed.expires, now, expiry.snapshot)
            && tuf::signed_by_same_keys(&p.snapshot, input.signers.snapshot.as_deref())
            && tuf::signed_by_same_keys(&p.timestamp, input.signers.timestamp.as_deref())
    });
    let mut report = BuildReport {
        plugins: plugin_count,
        releases,
        analysed,
        catalog: catalog_work,
        catalog_millis,
        levels: levels_work,
        hints: hints_work,
        ..BuildReport::default()
    };
    let (snapshot_out, timestamp_out) = if snapshot_unchanged
        && let Some(prev) = &previous
        && !tuf::needs_refresh(&prev.timestamp.signed.expires, now, expiry.timestamp)
    {
        report.snapshot_version = prev.snapshot.signed.version;
        report.timestamp_version = prev.timestamp.signed.version;
        (None, None)
    } else {
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: trellis_schema::tuf::SPEC_VERSION.into(),
            version: prev_snapshot.map_or(1, |p| p.version + 1),
            expires: tuf::expiry(now, expiry.snapshot),
            meta,
            extra: Map::new(),
        };
        let version = snapshot.version;
        let bytes =
            tuf::sign_role("snapshot", snapshot, online(unsigned, input.signers.snapshot.as_deref()), "keys.snapshot")?;
        let timestamp = timestamp_doc(
            previous.as_ref().map_or(0, |p| p.timestamp.signed.version) + 1,
            version,
            &bytes,
            now,
            expiry.timestamp,
        );
        report.snapshot_version = version;
        report.timestamp_version = timestamp.version;
        let ts_bytes = tuf::sign_role(
            "timestamp",
            timestamp,
            online(unsigned, input.signers.timestamp.as_deref()),
            "keys.timestamp",
        )?;
        (Some((version, bytes)), Some(ts_bytes))
    };

    // Roots: published ones must match the registry's.
    let mut root_writes = Vec::new();
    for (index, bytes) in input.roots.iter().enumerate() {
        let name = site::metadata_name("root", index as u64 + 1);
        let path = site_dir.join(site::METADATA_DIR).join(&name);
        match std::fs::read(&path) {
            Ok(existing) if &existing == bytes => {}
            Ok(_) => return Err(BuildError::RootMismatch { path, name }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => root_writes.push((name, bytes.clone())),
            Err(e) => return Err(FsError::new("reading", path, e).into()),
        }
    }

    // Write: blobs, then the documents listing them (index docs, publisher records,
    // the blocklist), then every targets role, then snapshot and roots. None of them
    // is reachable before timestamp.json names the new snapshot, so one barrier makes
    // them all durable before it (one `syncfs` on Linux, not one per batch); a crash
    // before it leaves unreferenced files, which the next build writes again where
    // they do not hold its bytes (`write::holds`). timestamp.json last, atomically.
    let durability = input.durability;
    let mut written = write_targets(site_dir, &blobs)?;
    drop(blobs);
    written.extend(write_targets(site_dir, &documents)?);
    trellis_client::fs::create_dir_all(&site_dir.join(site::METADATA_DIR))?;
    let write_metadata = |name: String, bytes: &[u8]| -> Result<String, FsError> {
        write_content(&site_dir.join(site::METADATA_DIR).join(&name), &Content::Bytes(bytes.into()))?;
        Ok(format!("{}/{name}", site::METADATA_DIR))
    };
    let role_files: Vec<String> = plans
        .into_par_iter()
        .filter_map(|plan| match &plan.decision {
            Decision::Keep(_) => None,
            Decision::New { version, expires } => Some(
                plan.sign(*version, expires)
                    .and_then(|bytes| Ok(write_metadata(site::metadata_name(&plan.name, *version), &bytes)?)),
            ),
        })
        .collect::<Result<_, BuildError>>()?;
    written.extend(role_files);
    let mut last = Vec::new();
    if let Some((version, bytes)) = &snapshot_out {
        last.push(write_metadata(site::metadata_name("snapshot", *version), bytes)?);
    }
    for (name, bytes) in root_writes {
        last.push(write_metadata(name, &bytes)?);
    }
    written.extend(last);
    make_durable(site_dir, &written, durability)?;
    if let Some(bytes) = timestamp_out {
        write_atomic(&site::timestamp_file(site_dir), &bytes)?;
        written.push(format!("{}/timestamp.json", site::METADATA_DIR));
    }
    // The unversioned copies of the snapshot and the top-level targets, after the
    // timestamp; an unsigned build leaves them to its signer (`crate::unversioned`).
    if !unsigned {
        let snapshot = snapshot_out.as_ref().map(|(_, bytes)| bytes.as_slice());
        written.extend(crate::unversioned::refresh(site_dir, snapshot)?);
    }
    // The index doc aliases last: each names a doc the signed chain now lists.
    written.extend(write_aliases(site_dir, &documents)?);
    // The figures the catalog now publishes, for the next incremental build (bound
    // to the record buckets the catalog role lists).
    if let Some(figures) = &catalog_figures {
        catalog::figures::write(site_dir, &catalog_role_entries, figures)?;
    }
    // The layout of the search shards now published, for the next incremental build
    // (each split key bound to the shards listed under it).
    shard_layout.write(site_dir, &search_entries)?;
    written.sort();
    report.written = written;
    Ok(report)
}

/// The bytes of `documents` made in memory, by target, to hand over.
fn handed_bytes<'t>(documents: impl Iterator<Item = &'t TargetOut>) -> BTreeMap<String, std::sync::Arc<[u8]>> {
    documents
        .filter_map(|t| match &t.content {
            Some(Content::Bytes(bytes)) => Some((t.target.clone(), bytes.clone())),
            _ => None,
        })
        .collect()
}

/// A timestamp document naming `snapshot_bytes` as version `snapshot_version`.
pub fn timestamp_doc(
    version: u64,
    snapshot_version: u64,
    snapshot_bytes: &[u8],
    now: jiff::Timestamp,
    days: u32,
) -> Timestamp {
    let meta = MetaFile {
        version: snapshot_version,
        length: Some(snapshot_bytes.len() as u64),
        hashes: Some(BTreeMap::from([("sha256".to_owned(), Sha256::of(snapshot_bytes).to_hex())])),
        extra: Map::new(),
    };
    Timestamp {
        type_: "timestamp".into(),
        spec_version: trellis_schema::tuf::SPEC_VERSION.into(),
        version,
        expires: tuf::expiry(now, days),
        meta: BTreeMap::from([("snapshot.json".to_owned(), meta)]),
        extra: Map::new(),
    }
}

fn delegation_keys(
    role: &str,
    signers: Option<&[SigningKey]>,
    threshold: u32,
    published: Option<&Targets>,
) -> Result<RoleKeys, BuildError> {
    if let Some(signers) = signers {
        return Ok(RoleKeys::of(signers, threshold));
    }
    let delegations = published.and_then(|t| t.delegations.as_ref());
    let found = delegations.and_then(|d| {
        let entry = d.roles.as_ref()?.iter().find(|r| r.name == role)?;
        let keys = entry.keyids.iter().filter_map(|id| Some((id.clone(), d.keys.get(id)?.clone()))).collect();
        Some(RoleKeys { keys, threshold: entry.threshold })
    });
    found.ok_or_else(|| {
        BuildError::Sign(SignError::MissingKey {
            role: role.to_owned(),
            hint: "no key file configured and no published delegation to reuse".into(),
        })
    })
}

fn check_root(input: &BuildInput) -> Result<(), BuildError> {
    let Some(bytes) = input.roots.last() else {
        return Err(BuildError::Trust("the registry has no root/1.root.json; run trellis-index init".into()));
    };
    let root: Envelope<Root> = trellis_schema::json::from_slice(bytes)
        .map_err(|e| BuildError::Trust(format!("newest root does not parse: {e}")))?;
    let root = root.signed;
    let snapshot_expires = tuf::expiry(input.now, input.expiry.snapshot);
    let expires: jiff::Timestamp = root
        .expires
        .parse()
        .map_err(|e| BuildError::Trust(format!("root version {}: expires {:?}: {e}", root.version, root.expires)))?;
    if expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string() < snapshot_expires {
        return Err(BuildError::Trust(format!(
            "root version {} expires at {}, before the snapshot signed now would ({snapshot_expires}); \
             sign a new root first: trellis-index rotate REGISTRY root",
            root.version, root.expires
        )));
    }
    for (role, signers) in [
        (TopRole::Targets, &input.signers.targets),
        (TopRole::Snapshot, &input.signers.snapshot),
        (TopRole::Timestamp, &input.signers.timestamp),
    ] {
        let Some(signers) = signers else { continue };
        let allowed = root.roles.get(&role).map(|r| r.keyids.clone()).unwrap_or_default();
        for key in signers {
            if !allowed.contains(key.key_id()) {
                return Err(BuildError::Trust(format!(
                    "the configured {} key {} is not a {} key of root version {}; fix keys.{} in trellis-registry.json or rotate",
                    role.as_str(),
                    key.key_id().short(),
                    role.as_str(),
                    root.version,
                    role.as_str()
                )));
            }
        }
    }
    Ok(())
}

fn check_dependencies(input: &BuildInput) -> Result<(), BuildError> {
    for plugin in &input.plugins {
        for release in &plugin.releases {
            for dependency in &release.manifest.dependencies {
                if !input.known_plugins.contains(&dependency.id) {
                    return Err(BuildError::UnknownDependency {
                        release: release.manifest.release_name(),
                        dependency: dependency.id.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}
