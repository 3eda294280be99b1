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
//! prefetched in parallel when the resolver hints at the next ones. Every byte it hands
//! out was verified by [`crate::trust`] against the registry's signed metadata.
//!
//! It does not interpret packages or signatures of releases (that is
//! [`super::fetch`]) and does not decide anything (the lifecycle modules do).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use trellis_schema::PluginId;
use trellis_schema::blocklist::Blocklist;
use trellis_schema::index::{BlobRef, IndexDoc};

use super::StoreError;
use super::mirrors;
use super::registries::Registries;
use crate::resolve::{DocRequest, IndexSource, SourceError};
use crate::state::{DataDir, RegistryName};
use crate::transport::{AnyTransport, DownloadCache, HealthOptions, HttpOptions, MirrorHealth, Progress, parallel};
use crate::trust::{TargetInfo, TrustError, Updater};

/// Parallel downloads at most (index docs and packages).
pub const PARALLEL_DOWNLOADS: usize = 8;

pub use trellis_schema::target::{BLOCKLIST_TARGET, index_target, publisher_target};

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
    ) -> Result<Self, StoreError> {
        let transport: Arc<dyn crate::transport::Transport> = Arc::new(AnyTransport::new(http.clone()));
        let health = Arc::new(MirrorHealth::load(mirrors::health_file(dir), HealthOptions::default()));
        let mut remotes = BTreeMap::new();
        for config in &registries.registries {
            let published = mirrors::published(&dir.metadata_dir(&config.name));
            let mirrors = mirrors::mirrors_of(&transport, &health, config, &published);
            let mut updater = Updater::new(dir.metadata_dir(&config.name), mirrors)
                .map_err(|source| StoreError::Trust { registry: config.name.clone(), source: Box::new(source) })?
                .with_cache(DownloadCache::new(dir.cache_dir()));
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
        Ok(Self { remotes, transport, health, order, docs: Mutex::default() })
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
        let remote = self.remote(registry)?;
        let mut updater = lock(&remote.updater);
        let mut refreshed = lock(&remote.refreshed);
        if !*refreshed {
            updater
                .check_for_updates()
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
        updater.fetch_target(&info).map(Some).map_err(trust)
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
        Ok(parallel::map_bounded(infos, PARALLEL_DOWNLOADS, |info| updater.fetch_target(info)))
    }

    /// The blocklists of every registry, merged (a release blocked by any registry is
    /// refused). A registry without a blocklist target contributes nothing.
    pub fn blocklist(&self) -> Result<Blocklist, StoreError> {
        let mut merged = Blocklist::default();
        for registry in &self.order {
            let Some(bytes) = self.fetch(registry, BLOCKLIST_TARGET)? else { continue };
            let list: Blocklist = trellis_schema::json::from_slice(&bytes).map_err(|e| StoreError::BadDocument {
                registry: registry.clone(),
                target: BLOCKLIST_TARGET.to_owned(),
                problem: e.to_string(),
            })?;
            merged.entries.extend(list.entries);
        }
        Ok(merged)
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
            Some(bytes) => Some(Arc::new(parse_doc(registry, &target, &bytes)?)),
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

fn parse_doc(registry: &RegistryName, target: &str, bytes: &[u8]) -> Result<IndexDoc, StoreError> {
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
            // The delegation walk needs the updater mutably (it loads bins); the
            // downloads then run in parallel. Failures are left for `index_doc`, which
            // reports them with their context.
            // Docs the blob cache holds are parsed inline: starting download threads
            // for them would cost more than reading them (the warm re-resolve).
            let mut found = Vec::new();
            if let Ok(mut updater) = self.updater(&registry) {
                for id in ids {
                    match updater.target_info(&index_target(&id)) {
                        Ok(Some(info)) => match updater.cached_target(&info) {
                            Some(bytes) => {
                                if let Ok(doc) = parse_doc(&registry, &info.path, &bytes) {
                                    lock(&self.docs).insert((registry.clone(), id), Some(Arc::new(doc)));
                                }
                            }
                            None => found.push((id, info)),
                        },
                        Ok(None) => {
                            lock(&self.docs).insert((registry.clone(), id), None);
                        }
                        Err(_) => {}
                    }
                }
            }
            if found.is_empty() {
                continue;
            }
            let infos: Vec<TargetInfo> = found.iter().map(|(_, info)| info.clone()).collect();
            let Ok(results) = self.fetch_many(&registry, &infos) else { continue };
            let mut docs = lock(&self.docs);
            for ((id, info), result) in found.into_iter().zip(results) {
                if let Ok(bytes) = result
                    && let Ok(doc) = parse_doc(&registry, &info.path, &bytes)
                {
                    docs.insert((registry.clone(), id), Some(Arc::new(doc)));
                }
            }
        }
    }
}
