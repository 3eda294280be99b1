//! The registries as the store sees them: verified targets and index docs over TUF.
//!
//! Owns [`Remotes`]: one [`Updater`] per configured registry (over its mirrors, see
//! [`super::mirrors`]; the mirror list it publishes is taken after each refresh),
//! refreshed with the cheap
//! update check (one conditional GET when nothing changed) on first use after
//! [`Remotes::start_operation`], which every lifecycle operation of the store calls (so a
//! host app that keeps its store open sees new releases and blocks, and expiry is judged
//! at the time of each operation); index docs memoized for a registry are dropped when
//! its trusted snapshot moved. Also owns the
//! target paths of a Trellis site (index docs, publisher records, the blocklist), the
//! download of blobs (packages, envelopes, deltas) by the [`BlobRef`] of a verified
//! index doc ([`Remotes::fetch_blob`], see [`super::fetch`] for why that is enough), and
//! the resolver's [`IndexSource`] over it: docs fetched lazily, memoized, and
//! prefetched speculatively when an operation starts ([`Remotes::prefetch_for`]) or the
//! resolver hints at the next ones: the hinted docs and, wave after wave, the docs of
//! the dependencies of their likely releases, with the blocklist and the publisher
//! records of the vendors met; each wave loads its bins a level of the delegation tree
//! at a time and downloads in parallel ([`PARALLEL_DOWNLOADS`]), so a cold install's
//! critical path is a few round trips per level of its dependency graph, not per
//! document. A speculative fetch that fails is dropped: only a doc the resolution asks
//! for reports an error. The catalog documents discovery reads (head, search shards,
//! listing pages) are each refused before download when its signed length is over
//! [`CatalogLimits`]. Every byte it hands
//! out was verified by [`crate::trust`] against the registry's signed metadata.
//!
//! Offline ([`super::Network`]): with `Offline`, no request is made; each registry's
//! persisted metadata is loaded as it is ([`Updater::load_offline`]: root and timestamp
//! unexpired) and targets and blobs come only from the verified download cache. Online,
//! a registry that cannot be reached at all (no mirror could be connected to; a slow or
//! wrong answer does not count) falls back to the same offline load when its persisted metadata is unexpired; either
//! way [`Remotes::offline_uses`] says which registries were used offline and when
//! their metadata was last checked online (`metadata/<name>/last-check`).
//!
//! It does not interpret packages or signatures of releases (that is
//! [`super::fetch`]) and does not decide anything (the lifecycle modules do).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use trellis_schema::PluginId;
use trellis_schema::advisory::Advisories;
use trellis_schema::blocklist::Blocklist;
use trellis_schema::catalog::{self, CatalogError, CatalogHead, CatalogLimits, ListingKind, ListingPage, SearchShard};
use trellis_schema::index::{BlobRef, IndexDoc};

use super::StoreError;
use super::mirrors;
use super::registries::Registries;
use crate::resolve::{DocRequest, IndexSource, SourceError};
use crate::state::{DataDir, RegistryName};
use crate::transport::{
    AnyTransport, AttemptError, DownloadCache, Fetched, HealthOptions, HttpOptions, MirrorHealth, Progress, Request,
    Transport, TransportError, parallel,
};
use crate::trust::{MetadataOrder, TargetInfo, TrustError, Updater};

use super::Network;

mod prefetch;

pub use prefetch::{
    ALIAS_BUDGET, ALIAS_GRACE, ALIAS_MAX_BYTES, BACKGROUND_DOWNLOADS, DELEGATION_DOWNLOADS, SPECULATIVE_DOCS,
};

/// The file under a registry's metadata dir recording when it was last checked online.
const LAST_CHECK_FILE: &str = "last-check";

/// A registry an operation used without reaching it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OfflineUse {
    /// The registry.
    pub registry: RegistryName,
    /// When its metadata was last checked online, if known.
    pub last_checked: Option<jiff::Timestamp>,
    /// When its timestamp metadata expires: after that it cannot be used offline.
    pub expires: Option<jiff::Timestamp>,
    /// Why it was used offline: `None` when offline was asked for, else what reaching
    /// it failed with.
    pub unreachable: Option<String>,
}

/// The transport of offline mode: every request fails, saying so.
#[derive(Debug)]
struct NoNetwork;

impl Transport for NoNetwork {
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        Err(TransportError::Connection {
            url: request.url.to_owned(),
            message: "offline: not in the local cache (run once online first)".into(),
        })
    }
}

/// Whether a refresh failed only because no mirror could be reached: no connection
/// (refused, reset, no route, no DNS) or no answer to connecting. A mirror that answers
/// slowly or wrongly is not "unreachable": that may be an attack (slow retrieval), and
/// its error is the command's.
fn unreachable(error: &TrustError) -> bool {
    let TrustError::Fetch(failure) = error else { return false };
    !failure.attempts.is_empty()
        && failure.attempts.iter().all(|a| match &a.error {
            AttemptError::Transport(TransportError::Connection { .. }) => true,
            AttemptError::Transport(TransportError::Timeout { what, .. }) => {
                what.contains("connect") || what.contains("resolve")
            }
            _ => false,
        })
}

/// Parallel downloads at most (index docs, envelopes and packages; a prefetch wave's
/// bins and publisher bins take [`DELEGATION_DOWNLOADS`]): a batch of a
/// 30-plugin graph takes two round trips, and the HTTP transport keeps as many
/// connections alive.
pub const PARALLEL_DOWNLOADS: usize = 16;

pub use trellis_schema::target::{ADVISORIES_TARGET, BLOCKLIST_TARGET, index_target, publisher_target};

/// Index docs fetched so far; `None` = the registry serves no such plugin.
type DocMemo = HashMap<(RegistryName, PluginId), Option<Arc<IndexDoc>>>;

struct Remote {
    updater: Mutex<Updater>,
    /// The registry's configuration (its URL and the user's mirrors).
    config: super::registries::RegistryConfig,
    /// The mirror list the registry published, as last verified.
    published: Mutex<Vec<String>>,
    /// Whether the updater was refreshed during the current operation.
    refreshed: Mutex<bool>,
    /// The version of the trusted snapshot the memoized docs were read under.
    snapshot: Mutex<Option<u64>>,
}

/// The configured registries, each behind its TUF updater.
pub struct Remotes {
    remotes: BTreeMap<RegistryName, Remote>,
    transport: Arc<dyn crate::transport::Transport>,
    health: Arc<MirrorHealth>,
    order: Vec<RegistryName>,
    docs: Mutex<DocMemo>,
    network: Network,
    offline: Mutex<BTreeMap<RegistryName, OfflineUse>>,
    behind: Arc<InFlight>,
}

/// Target paths being downloaded into the verified cache on other threads
/// ([`Remotes::download_behind`]): a fetch of one of them waits for it instead of
/// asking again, then reads the cache (or downloads it itself if it did not land).
#[derive(Debug, Default)]
struct InFlight {
    paths: Mutex<HashSet<String>>,
    landed: Condvar,
}

impl InFlight {
    /// Marks `infos` in flight; returns those that were not already.
    fn begin(&self, infos: Vec<TargetInfo>) -> Vec<TargetInfo> {
        let mut paths = lock(&self.paths);
        infos.into_iter().filter(|info| paths.insert(info.path.clone())).collect()
    }

    fn end(&self, path: &str) {
        lock(&self.paths).remove(path);
        self.landed.notify_all();
    }

    /// Waits until `path` is not in flight.
    fn wait(&self, path: &str) {
        let mut paths = lock(&self.paths);
        while paths.contains(path) {
            paths = self.landed.wait(paths).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes").field("order", &self.order).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Remotes {
    /// Updaters over the trusted metadata of every configured registry, sharing the
    /// blob cache of the data dir; nothing is fetched yet.
    pub fn new(
        dir: &DataDir,
        registries: &Registries,
        http: &HttpOptions,
        progress: Option<Arc<dyn Progress>>,
        reference_time: Option<jiff::Timestamp>,
        network: Network,
        metadata_order: MetadataOrder,
    ) -> Result<Self, StoreError> {
        let transport: Arc<dyn crate::transport::Transport> = match network {
            Network::Online => Arc::new(AnyTransport::new(http.clone())),
            Network::Offline => Arc::new(NoNetwork),
        };
        let health = Arc::new(MirrorHealth::load(mirrors::health_file(dir), HealthOptions::default()));
        let mut remotes = BTreeMap::new();
        for config in &registries.registries {
            let published = mirrors::published(&dir.metadata_dir(&config.name));
            let mirrors = mirrors::mirrors_of(&transport, &health, config, &published);
            let mut updater = Updater::new(dir.metadata_dir(&config.name), mirrors)
                .map_err(|source| StoreError::Trust { registry: config.name.clone(), source: Box::new(source) })?
                .with_cache(DownloadCache::new(dir.cache_dir()))
                .with_metadata_order(metadata_order);
            if let Some(progress) = &progress {
                updater = updater.with_progress(Arc::clone(progress));
            }
            if let Some(now) = reference_time {
                updater = updater.with_reference_time(now);
            }
            let remote = Remote {
                updater: Mutex::new(updater),
                config: config.clone(),
                published: Mutex::new(published),
                refreshed: Mutex::new(false),
                snapshot: Mutex::new(None),
            };
            remotes.insert(config.name.clone(), remote);
        }
        let order = registries.registries.iter().map(|r| r.name.clone()).collect();
        Ok(Self {
            remotes,
            transport,
            health,
            order,
            docs: Mutex::default(),
            network,
            offline: Mutex::default(),
            behind: Arc::default(),
        })
    }

    /// The registries this store used without reaching them (offline, or unreachable
    /// with unexpired metadata), since it was created.
    pub fn offline_uses(&self) -> Vec<OfflineUse> {
        lock(&self.offline).values().cloned().collect()
    }

    /// Refreshes `updater` as `network` allows; online, an unreachable registry with
    /// unexpired persisted metadata is used offline. Records either use.
    fn refresh(&self, registry: &RegistryName, updater: &mut Updater) -> Result<(), TrustError> {
        let dir = updater.store().dir().join(LAST_CHECK_FILE);
        let reason = match self.network {
            Network::Offline => None,
            Network::Online => match updater.check_for_updates() {
                Ok(_) => {
                    // Only ever shown (the age of metadata used offline): not worth two
                    // barriers per operation; a torn copy reads as "never checked".
                    let now = jiff::Timestamp::now().to_string();
                    if let Err(error) = crate::fs::replace_unsynced(&dir, now.as_bytes()) {
                        tracing::debug!(%error, "could not record the time of the check");
                    }
                    return Ok(());
                }
                Err(error) if unreachable(&error) => Some(error),
                Err(error) => return Err(error),
            },
        };
        if let Err(offline) = updater.load_offline() {
            return Err(reason.unwrap_or(offline));
        }
        let last_checked = std::fs::read_to_string(&dir).ok().and_then(|t| t.trim().parse().ok());
        let expires = updater.trusted().timestamp().map(|t| t.expires());
        lock(&self.offline).insert(
            registry.clone(),
            OfflineUse {
                registry: registry.clone(),
                last_checked,
                expires,
                unreachable: reason.map(|e| e.to_string()),
            },
        );
        Ok(())
    }

    /// The registries in priority order.
    pub fn order(&self) -> &[RegistryName] {
        &self.order
    }

    fn remote(&self, registry: &RegistryName) -> Result<&Remote, StoreError> {
        self.remotes.get(registry).ok_or_else(|| StoreError::UnknownRegistry { name: registry.clone() })
    }

    /// Starts an operation: every registry is refreshed again on its next use (the
    /// one-request check when nothing changed), with expiry judged at that time.
    pub fn start_operation(&self) {
        for remote in self.remotes.values() {
            *lock(&remote.refreshed) = false;
        }
    }

    /// The updater of `registry`, refreshed (once per operation) with the cheap check.
    /// When the trusted snapshot moved, the docs memoized for the registry are dropped.
    fn updater(&self, registry: &RegistryName) -> Result<MutexGuard<'_, Updater>, StoreError> {
        self.updater_hinted(registry, Vec::new, |_, _| {})
    }

    /// [`Remotes::updater`], naming the targets about to be looked up when the
    /// refresh is still to come ([`Updater::hint`]: their roles are asked for with
    /// it); `before_check` gets the hinted paths the trusted store cannot answer, when
    /// it knows them, before the update check is sent (to fetch what they need
    /// meanwhile).
    fn updater_hinted(
        &self,
        registry: &RegistryName,
        hints: impl FnOnce() -> Vec<String>,
        before_check: impl FnOnce(&Updater, Vec<String>),
    ) -> Result<MutexGuard<'_, Updater>, StoreError> {
        let remote = self.remote(registry)?;
        let mut updater = lock(&remote.updater);
        let mut refreshed = lock(&remote.refreshed);
        if !*refreshed {
            if self.network == Network::Online
                && let Some(needs) = updater.hint(hints())
            {
                before_check(&updater, needs);
            }
            self.refresh(registry, &mut updater)
                .map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })?;
            *refreshed = true;
            let mut published = lock(&remote.published);
            if let Some(list) = mirrors::refreshed_list(&updater, &published) {
                updater.set_mirrors(mirrors::mirrors_of(&self.transport, &self.health, &remote.config, &list));
                *published = list;
            }
            drop(published);
            let now = updater.trusted().snapshot().map(|s| s.version);
            let mut seen = lock(&remote.snapshot);
            if *seen != now {
                lock(&self.docs).retain(|(r, _), _| r != registry);
                *seen = now;
            }
        }
        Ok(updater)
    }

    /// The trusted metadata directory of `registry` (publisher pins live there too).
    pub fn metadata_dir(&self, registry: &RegistryName) -> Result<std::path::PathBuf, StoreError> {
        Ok(lock(&self.remote(registry)?.updater).store().dir().to_owned())
    }

    /// The versions of the trusted root and snapshot of `registry` after its refresh:
    /// every target (publisher records included) is fixed by them.
    pub fn trusted_versions(&self, registry: &RegistryName) -> Result<(u64, Option<u64>), StoreError> {
        let updater = self.updater(registry)?;
        let trusted = updater.trusted();
        Ok((trusted.root().version(), trusted.snapshot().map(|s| s.version())))
    }

    /// The recovery signers of publisher record chains in `registry`: the keys and
    /// threshold of the top-level `targets` role of its trusted root (offline keys).
    pub fn recovery_signers(
        &self,
        registry: &RegistryName,
    ) -> Result<(BTreeMap<trellis_schema::KeyId, trellis_schema::PublicKey>, u32), StoreError> {
        let updater = self.updater(registry)?;
        let root = updater.trusted().root();
        let Some(role) = root.roles.get(&trellis_schema::tuf::TopRole::Targets) else {
            return Ok((BTreeMap::new(), 1));
        };
        let keys = role.keyids.iter().filter_map(|id| Some((id.clone(), root.keys.get(id)?.clone()))).collect();
        Ok((keys, role.threshold))
    }

    /// Finds `path` in the signed metadata of `registry`; `None` when it is not a target.
    pub fn target_info(&self, registry: &RegistryName, path: &str) -> Result<Option<TargetInfo>, StoreError> {
        let mut updater = self.updater(registry)?;
        updater
            .target_info(path)
            .map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })
    }

    /// The verified bytes of target `path` of `registry`; `None` when it is not a target.
    pub fn fetch(&self, registry: &RegistryName, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut updater = self.updater(registry)?;
        let trust = |source: TrustError| StoreError::Trust { registry: registry.clone(), source: Box::new(source) };
        let Some(info) = updater.target_info(path).map_err(trust)? else { return Ok(None) };
        self.behind.wait(&info.path);
        updater.fetch_target(&info).map(Some).map_err(trust)
    }

    /// Starts downloading `infos` of `registry` into the verified cache on other
    /// threads (those not cached and not already on their way), and returns: each is
    /// checked as any target download is, and a later fetch of one of them waits for
    /// it (`InFlight`) instead of asking again. For what an operation is sure to
    /// fetch next but does not need yet (the last prefetch wave's envelopes and
    /// publisher records, packages while their signatures are checked). Nothing fails
    /// here: a download that fails is downloaded again, and reported, by the fetch
    /// that needs it.
    pub fn download_behind(&self, registry: &RegistryName, infos: Vec<TargetInfo>) {
        let Ok(updater) = self.updater(registry) else { return };
        let fetcher = updater.fetcher();
        drop(updater);
        let infos: Vec<TargetInfo> = infos.into_iter().filter(|info| fetcher.cached(info).is_none()).collect();
        let infos = self.behind.begin(infos);
        if infos.is_empty() {
            return;
        }
        let behind = Arc::clone(&self.behind);
        let paths: Vec<String> = infos.iter().map(|info| info.path.clone()).collect();
        // As wide as a wave's background downloads: a 30-plugin graph's packages in
        // one round trip, not two.
        let work = move || {
            parallel::map_bounded(&infos, BACKGROUND_DOWNLOADS, |info| {
                let _ = fetcher.fetch(info);
                behind.end(&info.path);
            });
        };
        if let Err(error) = std::thread::Builder::new().name("trellis-behind".into()).spawn(work) {
            tracing::debug!(%error, "could not start background downloads");
            for path in paths {
                self.behind.end(&path);
            }
        }
    }

    /// The bytes of `blob`, listed by the verified index doc of `plugin` in `registry`:
    /// downloaded like a target (cache, mirrors, capped at the listed length) and
    /// checked against the listed length and SHA-256.
    pub fn fetch_blob(
        &self,
        registry: &RegistryName,
        plugin: &PluginId,
        blob: &BlobRef,
    ) -> Result<Vec<u8>, StoreError> {
        let updater = self.updater(registry)?;
        self.behind.wait(&blob.path);
        updater
            .fetch_target(&blob_info(plugin, blob))
            .map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })
    }

    /// Fetches several targets of `registry` in parallel; each result in input order.
    pub fn fetch_many(
        &self,
        registry: &RegistryName,
        infos: &[TargetInfo],
    ) -> Result<Vec<Result<Vec<u8>, TrustError>>, StoreError> {
        let updater = self.updater(registry)?;
        let updater: &Updater = &updater;
        Ok(parallel::map_bounded(infos, PARALLEL_DOWNLOADS, |info| {
            self.behind.wait(&info.path);
            updater.fetch_target(info)
        }))
    }

    /// The verified bytes of catalog document `target` of `registry` within `limit`
    /// bytes (refused before downloading when its signed length is larger); `None`
    /// when the registry does not sign such a document.
    fn catalog_bytes(&self, registry: &RegistryName, target: &str, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(info) = self.target_info(registry, target)? else { return Ok(None) };
        if info.file.length > limit {
            let source = CatalogError::TooLarge { target: target.to_owned(), length: info.file.length, limit };
            return Err(StoreError::Catalog { registry: registry.clone(), source });
        }
        let updater = self.updater(registry)?;
        updater
            .fetch_target(&info)
            .map(Some)
            .map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })
    }

    /// The catalog head of `registry`; `None` when it publishes no catalog (a site
    /// built before catalogs existed).
    pub fn catalog_head(
        &self,
        registry: &RegistryName,
        limits: &CatalogLimits,
    ) -> Result<Option<CatalogHead>, StoreError> {
        let Some(bytes) = self.catalog_bytes(registry, catalog::HEAD_TARGET, limits.head_bytes)? else {
            return Ok(None);
        };
        let head = catalog::parse_head(&bytes, limits)
            .map_err(|source| StoreError::Catalog { registry: registry.clone(), source })?;
        Ok(Some(head))
    }

    /// The search shards `keys` of `registry` that exist (a key no term starts with
    /// has no shard), fetched in parallel.
    pub fn catalog_shards(
        &self,
        registry: &RegistryName,
        keys: &BTreeSet<String>,
        limits: &CatalogLimits,
    ) -> Result<BTreeMap<String, SearchShard>, StoreError> {
        let catalog_error = |source| StoreError::Catalog { registry: registry.clone(), source };
        let mut infos = Vec::new();
        for key in keys {
            let target = catalog::shard_target(key);
            let Some(info) = self.target_info(registry, &target)? else { continue };
            if info.file.length > limits.shard_bytes {
                return Err(catalog_error(CatalogError::TooLarge {
                    target,
                    length: info.file.length,
                    limit: limits.shard_bytes,
                }));
            }
            infos.push((key.clone(), info));
        }
        let only: Vec<TargetInfo> = infos.iter().map(|(_, info)| info.clone()).collect();
        let fetched = self.fetch_many(registry, &only)?;
        let mut shards = BTreeMap::new();
        for ((key, _), bytes) in infos.into_iter().zip(fetched) {
            let bytes =
                bytes.map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })?;
            shards.insert(key.clone(), catalog::parse_shard(&key, &bytes, limits).map_err(catalog_error)?);
        }
        Ok(shards)
    }

    /// Page `page` of a listing of `registry`; `None` when there is no such page.
    pub fn catalog_page(
        &self,
        registry: &RegistryName,
        kind: ListingKind,
        name: &str,
        page: u32,
        limits: &CatalogLimits,
    ) -> Result<Option<ListingPage>, StoreError> {
        let target = catalog::page_target(kind, name, page);
        let Some(bytes) = self.catalog_bytes(registry, &target, limits.page_bytes)? else { return Ok(None) };
        let page = catalog::parse_page(&target, &bytes, limits)
            .map_err(|source| StoreError::Catalog { registry: registry.clone(), source })?;
        Ok(Some(page))
    }

    /// The blocklists of every registry, merged (a release blocked by any registry is
    /// refused). A registry without a blocklist target contributes nothing.
    pub fn blocklist(&self) -> Result<Blocklist, StoreError> {
        let mut merged = Blocklist::default();
        for registry in &self.order {
            let Some(bytes) = self.fetch(registry, BLOCKLIST_TARGET)? else { continue };
            let list: Blocklist = parse_document(registry, BLOCKLIST_TARGET, &bytes)?;
            merged.entries.extend(list.entries);
        }
        Ok(merged)
    }

    /// The advisories each registry publishes (signed by its `security` role), by
    /// registry: an advisory is about the plugins of the registry that published it. A
    /// registry without an advisories target (built before they existed) has none.
    pub fn advisories(&self) -> Result<Vec<(RegistryName, Advisories)>, StoreError> {
        let mut out = Vec::new();
        for registry in &self.order {
            let Some(bytes) = self.fetch(registry, ADVISORIES_TARGET)? else { continue };
            let doc: Advisories = parse_document(registry, ADVISORIES_TARGET, &bytes)?;
            out.push((registry.clone(), doc));
        }
        Ok(out)
    }

    /// The security levels bucket `target` of `registry` (signed by its `security`
    /// role); `None` when the role does not list it.
    pub fn levels_bucket(
        &self,
        registry: &RegistryName,
        target: &str,
    ) -> Result<Option<trellis_schema::security_level::LevelsBucket>, StoreError> {
        let bad = |problem: String| StoreError::BadDocument {
            registry: registry.clone(),
            target: target.to_owned(),
            problem,
        };
        let Some(info) = self.target_info(registry, target)? else { return Ok(None) };
        let limit = super::levels::LEVELS_MAX_BYTES;
        if info.file.length > limit {
            return Err(bad(format!("{} bytes, over the {limit}-byte limit", info.file.length)));
        }
        let bytes = self
            .updater(registry)?
            .fetch_target(&info)
            .map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })?;
        parse_document(registry, target, &bytes).map(Some)
    }

    /// Every plugin `registry` serves, from its signed target lists (loads every bin:
    /// for search without catalog documents, not for resolution).
    pub fn plugin_ids(&self, registry: &RegistryName) -> Result<Vec<PluginId>, StoreError> {
        let mut updater = self.updater(registry)?;
        let targets = updater
            .list_targets("index/", 1 << 16)
            .map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })?;
        let mut ids: Vec<PluginId> =
            targets.iter().filter_map(|t| t.path.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The index doc of `id` in `registry`, memoized; `None` when it serves no such plugin.
    pub fn doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, StoreError> {
        if let Some(doc) = lock(&self.docs).get(&(registry.clone(), id.clone())) {
            return Ok(doc.clone());
        }
        let target = index_target(id);
        let doc = match self.fetch(registry, &target)? {
            Some(bytes) => Some(Arc::new(parse_document(registry, &target, &bytes)?)),
            None => None,
        };
        lock(&self.docs).insert((registry.clone(), id.clone()), doc.clone());
        Ok(doc)
    }
}

/// The download of `blob`, vouched for by the verified index doc of `plugin`.
pub fn blob_info(plugin: &PluginId, blob: &BlobRef) -> TargetInfo {
    TargetInfo::vouched_by(blob, format!("the index doc of {plugin}"))
}

/// A verified target of `registry` parsed as `T`; a document that does not parse is
/// [`StoreError::BadDocument`] naming the registry and the target.
fn parse_document<T: serde::de::DeserializeOwned>(
    registry: &RegistryName,
    target: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    trellis_schema::json::from_slice(bytes).map_err(|e| StoreError::BadDocument {
        registry: registry.clone(),
        target: target.to_owned(),
        problem: e.to_string(),
    })
}

impl IndexSource for Remotes {
    fn index_doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
        self.doc(registry, id).map_err(|e| Box::new(e) as SourceError)
    }

    fn prefetch(&self, requests: &[DocRequest]) {
        let mut by_registry: BTreeMap<RegistryName, Vec<PluginId>> = BTreeMap::new();
        {
            let docs = lock(&self.docs);
            for request in requests {
                if !docs.contains_key(&(request.registry.clone(), request.id.clone())) {
                    by_registry.entry(request.registry.clone()).or_default().push(request.id.clone());
                }
            }
        }
        for (registry, ids) in by_registry {
            let ids = ids.into_iter().map(|id| (id, semver::VersionReq::STAR)).collect();
            self.prefetch_closure(&registry, ids, Vec::new());
        }
    }
}
