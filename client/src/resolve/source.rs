//! Where the resolver gets index docs from: the [`IndexSource`] trait.
//!
//! Owns the boundary between the pure resolver and everything that downloads, verifies
//! and caches. The resolver asks for one doc at a time, only for plugins it reaches, and
//! tells the source which docs it will probably ask for next so that an implementation
//! can download them in parallel ([`IndexSource::prefetch`]). Trust and transport live
//! behind the trait, in the lifecycle's implementation; [`MemorySource`] serves docs
//! already in memory (tests, benchmarks, a warm cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use trellis_schema::id::PluginId;
use trellis_schema::index::IndexDoc;

use crate::registry_name::RegistryName;

/// A failure to get an index doc that must stop resolution (network, verification).
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One doc the resolver will probably need soon.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DocRequest {
    /// The registry to ask.
    pub registry: RegistryName,
    /// The plugin whose doc is wanted.
    pub id: PluginId,
}

/// Verified index docs, by registry and plugin.
///
/// `Ok(None)` is the typed answer "this registry does not serve this plugin": resolution
/// goes on and explains it if it matters. `Err` is fatal: resolution stops and reports
/// which doc could not be read. An implementation must only return docs it verified
/// through the registry's TUF metadata.
pub trait IndexSource {
    /// The index doc of `id` in `registry`.
    fn index_doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError>;

    /// A hint: these docs will probably be asked for next. An implementation may start
    /// downloading them in parallel; the default does nothing.
    fn prefetch(&self, requests: &[DocRequest]) {
        let _ = requests;
    }
}

impl<S: IndexSource + ?Sized> IndexSource for &S {
    fn index_doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
        (**self).index_doc(registry, id)
    }

    fn prefetch(&self, requests: &[DocRequest]) {
        (**self).prefetch(requests);
    }
}

/// Index docs held in memory, keyed by registry and plugin id.
///
/// Made [`MemorySource::recording`], it records every doc asked for and every prefetch
/// hint, so tests can check that resolution stays lazy.
#[derive(Debug, Default)]
pub struct MemorySource {
    docs: HashMap<(RegistryName, PluginId), Arc<IndexDoc>>,
    log: Option<Mutex<SourceLog>>,
}

/// What a [`MemorySource`] was asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceLog {
    /// Every `index_doc` call, in order.
    pub fetched: Vec<DocRequest>,
    /// Every prefetch hint, in order.
    pub prefetched: Vec<DocRequest>,
}

impl MemorySource {
    /// An empty source that keeps no log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty source that logs what it is asked (see [`MemorySource::log`]).
    pub fn recording() -> Self {
        Self { docs: HashMap::new(), log: Some(Mutex::default()) }
    }

    /// Adds (or replaces) the doc of `doc.id` in `registry`.
    pub fn insert(&mut self, registry: RegistryName, doc: IndexDoc) {
        self.docs.insert((registry, doc.id.clone()), Arc::new(doc));
    }

    /// What the source was asked so far; empty unless made [`MemorySource::recording`].
    pub fn log(&self) -> SourceLog {
        self.log.as_ref().and_then(|log| log.lock().ok()).map(|log| log.clone()).unwrap_or_default()
    }

    fn record(&self, add: impl FnOnce(&mut SourceLog)) {
        if let Some(Ok(mut log)) = self.log.as_ref().map(|log| log.lock()) {
            add(&mut log);
        }
    }
}

impl IndexSource for MemorySource {
    fn index_doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
        self.record(|log| log.fetched.push(DocRequest { registry: registry.clone(), id: id.clone() }));
        Ok(self.docs.get(&(registry.clone(), id.clone())).cloned())
    }

    fn prefetch(&self, requests: &[DocRequest]) {
        self.record(|log| log.prefetched.extend_from_slice(requests));
    }
}
