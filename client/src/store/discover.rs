//! Discovery: search, browse and "did you mean" over each registry's signed catalog.
//!
//! Owns the store's discovery calls: [`Store::search`] reads each registry's search
//! shards of the query's terms only (verified through [`super::source`], cached by
//! content address, so a repeated query costs the update check only), for a term its
//! shard does not match well its typo shard and the shard of its best typo match
//! ([`crate::catalog`] says when), with the plugin count from the head's entry in the
//! verified catalog role, and ranks them with [`crate::catalog::rank`]; [`Store::browse`] reads
//! the head (featured, trending, new, updated, categories) or a page of a category
//! or tag listing; [`Store::did_you_mean`] suggests ids close to a mistyped one.
//! A registry whose site has no catalog (built before catalogs existed) is searched
//! the old way, by reading every index doc ([`Store::scan`]).
//!
//! A hit is a suggestion: the catalog is signed by the registry, but installing still
//! reads the plugin's index doc and its developer-signed manifest, so a catalog entry
//! naming a plugin the index lacks only leads to "not served" (with suggestions).

use std::collections::BTreeMap;

use semver::Version;
use trellis_schema::PluginId;
use trellis_schema::catalog::{
    self as schema_catalog, CatalogError, CatalogHead, CatalogLimits, HeadFacts, ListingKind, ListingPage,
    PluginSummary, Rating, SearchShard, TypoShard,
};
use trellis_schema::index::IndexRelease;

use super::{Store, StoreError};
use crate::catalog::{self, Compatibility, Query, Reads};
use crate::resolve;
use crate::state::RegistryName;

/// A plugin found by [`Store::search`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// The plugin.
    pub id: PluginId,
    /// Its display name.
    pub name: String,
    /// Its short description (empty from a registry without a catalog).
    pub summary: String,
    /// The registry serving it.
    pub registry: RegistryName,
    /// Its newest release that is not yanked.
    pub latest: Option<Version>,
    /// The installed release, if any.
    pub installed: Option<Version>,
    /// Star rating, when the registry has reviews.
    pub rating: Option<Rating>,
    /// Downloads (0 until the registry publishes statistics).
    pub downloads: u64,
    /// Whether this host and platform can run its newest release.
    pub compatibility: Compatibility,
    /// Relevance × popularity (0 from a registry without a catalog).
    pub score: f64,
}

/// What [`Store::search`] found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SearchResults {
    /// Hits, best first.
    pub hits: Vec<SearchHit>,
    /// When the newest catalog read was built (RFC 3339), if any registry has one.
    pub catalog_generated: Option<String>,
}

/// What [`Store::browse`] shows for one registry.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Browse {
    /// The catalog head: featured, trending, new, updated, categories and tags.
    Home(Box<CatalogHead>),
    /// One page of a category or tag listing.
    Listing(Box<ListingPage>),
}

impl Store {
    fn host_hit(&self, registry: &RegistryName, summary: &PluginSummary, score: f64) -> SearchHit {
        SearchHit {
            id: summary.id.clone(),
            name: summary.name.clone(),
            summary: summary.summary.clone(),
            registry: registry.clone(),
            latest: Some(summary.version.clone()),
            installed: self.state().plugin(&summary.id).map(|p| p.active.version.clone()),
            rating: summary.rating,
            downloads: summary.downloads,
            compatibility: self.compatibility(summary),
            score,
        }
    }

    /// Whether this store's host and platform can run the release `summary` lists.
    pub fn compatibility(&self, summary: &PluginSummary) -> Compatibility {
        catalog::compatibility(summary, &self.options.host, self.options.platform)
    }

    /// Whether this store's host and platform can run `release` (from an index doc).
    pub fn release_compatibility(&self, release: &IndexRelease) -> Compatibility {
        catalog::release_compatibility(&release.host, &release.platforms, &self.options.host, self.options.platform)
    }

    /// Searches every registry's catalog for `query`: per registry only the shards
    /// of the query's terms (for a term they do not match well, or that has none, its
    /// typo shard and the shard of its best typo match), nothing else after the TUF
    /// chain, the documents of each step side by side ([`Query::next_reads`]). The
    /// plugin count ranking needs is the one the head's entry in the catalog role
    /// carries ([`HeadFacts`]); a site whose entry carries none costs the head too,
    /// in the first round trip. Hits from all registries, best first, at most
    /// `query.limit`.
    pub fn search(&mut self, query: &Query) -> Result<SearchResults, StoreError> {
        let remotes = self.fresh_remotes()?;
        let limits = CatalogLimits::default();
        let mut hits = Vec::new();
        let mut generated: Option<String> = None;
        for registry in remotes.order().to_vec() {
            let Some(head_info) = remotes.target_info(&registry, schema_catalog::HEAD_TARGET)? else {
                hits.extend(self.scan_registry(&remotes, &registry, &query.text)?);
                continue;
            };
            let exists = |target: String| matches!(remotes.target_info(&registry, &target), Ok(Some(_)));
            let shard_exists = |key: &str| exists(schema_catalog::shard_target(key));
            let typo_exists = |key: &str| exists(schema_catalog::typo_target(key));
            let mut read = CatalogRead::default();
            let mut facts = HeadFacts::from_custom(head_info.file.custom.as_ref());
            let mut head = facts.is_none();
            loop {
                let next = query.next_reads(&read.shards, &read.typos, shard_exists, typo_exists);
                let before = read.shards.len() + read.typos.len();
                if next.is_empty() && !head {
                    break;
                }
                read.fetch(&remotes, &registry, head, &next, &limits)?;
                if !next.is_empty() && read.shards.len() + read.typos.len() == before {
                    break; // Listed but not found on a second look: nothing more to learn.
                }
                head = false;
            }
            if let Some(head) = &read.head {
                facts = Some(HeadFacts::of(head));
            }
            let Some(facts) = facts else { continue };
            if generated.as_ref().is_none_or(|g| g < &facts.generated) {
                generated = Some(facts.generated.clone());
            }
            let ranked = catalog::rank(
                facts.plugins,
                query,
                &read.shards,
                &read.typos,
                &self.options.host,
                self.options.platform,
            );
            hits.extend(ranked.iter().map(|r| self.host_hit(&registry, &r.summary, r.score)));
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(query.limit);
        Ok(SearchResults { hits, catalog_generated: generated })
    }

    /// The catalog home of each registry (`listing` `None`) or page `page` (from 1)
    /// of the category or tag `listing` (a category when both exist), by registry.
    /// Registries without a catalog, or without that listing, are left out.
    pub fn browse(&mut self, listing: Option<&str>, page: u32) -> Result<BTreeMap<RegistryName, Browse>, StoreError> {
        let remotes = self.fresh_remotes()?;
        let limits = CatalogLimits::default();
        let mut out = BTreeMap::new();
        for registry in remotes.order().to_vec() {
            let Some(head) = remotes.catalog_head(&registry, &limits)? else { continue };
            let Some(name) = listing else {
                out.insert(registry, Browse::Home(Box::new(head)));
                continue;
            };
            let kind = if head.categories.iter().any(|c| c.name == name) {
                ListingKind::Category
            } else if head.tags.iter().any(|t| t.name == name) {
                ListingKind::Tag
            } else {
                continue;
            };
            if let Some(found) = remotes.catalog_page(&registry, kind, name, page.max(1), &limits)? {
                out.insert(registry, Browse::Listing(Box::new(found)));
            }
        }
        Ok(out)
    }

    /// Plugin ids close to the mistyped `text`, closest first (at most 3): from the
    /// catalog shards of its terms, so this reads what a search for it would.
    pub fn did_you_mean(&mut self, text: &str) -> Result<Vec<PluginId>, StoreError> {
        let query = Query { limit: 50, ..Query::new(&text.replace(['.', '-', '_'], " ")) };
        let mut whole = Query::new(text);
        whole.limit = 50;
        let mut candidates: Vec<PluginId> = Vec::new();
        for q in [whole, query] {
            candidates.extend(self.search(&q)?.hits.into_iter().map(|h| h.id));
        }
        let mut close = catalog::closest_ids(text, &candidates);
        if close.is_empty() {
            // No id is close: the best text matches of its words.
            candidates.dedup();
            close = candidates;
        }
        close.retain(|id| id.as_str() != text);
        close.truncate(3);
        Ok(close)
    }

    /// Plugins whose id or name contains `text` (case-insensitive), from every
    /// registry, by reading every index doc: what [`Store::search`] falls back to for a
    /// registry without a catalog. Costs a request per plugin on a cold cache.
    pub fn scan(&mut self, text: &str) -> Result<Vec<SearchHit>, StoreError> {
        let remotes = self.fresh_remotes()?;
        let mut hits = Vec::new();
        for registry in remotes.order().to_vec() {
            hits.extend(self.scan_registry(&remotes, &registry, text)?);
        }
        Ok(hits)
    }

    fn scan_registry(
        &self,
        remotes: &super::source::Remotes,
        registry: &RegistryName,
        text: &str,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let needle = text.to_lowercase();
        let ids = remotes.plugin_ids(registry)?;
        let requests: Vec<resolve::DocRequest> =
            ids.iter().map(|id| resolve::DocRequest { registry: registry.clone(), id: id.clone() }).collect();
        resolve::IndexSource::prefetch(remotes, &requests);
        let mut hits = Vec::new();
        for id in ids {
            let Some(doc) = remotes.doc(registry, &id)? else { continue };
            if !id.as_str().to_lowercase().contains(&needle) && !doc.name.to_lowercase().contains(&needle) {
                continue;
            }
            let newest = doc.releases.iter().filter(|r| !r.yanked).max_by(|a, b| a.version.cmp(&b.version));
            let compatibility = match newest {
                Some(release) => self.release_compatibility(release),
                None => Compatibility::Incompatible { reason: "every release is yanked".into() },
            };
            hits.push(SearchHit {
                latest: newest.map(|r| r.version.clone()),
                installed: self.state().plugin(&id).map(|p| p.active.version.clone()),
                name: doc.name.clone(),
                summary: String::new(),
                id,
                registry: registry.clone(),
                rating: None,
                downloads: 0,
                compatibility,
                score: 0.0,
            });
        }
        Ok(hits)
    }
}

/// The catalog documents a search has read from one registry.
#[derive(Default)]
struct CatalogRead {
    head: Option<CatalogHead>,
    shards: BTreeMap<String, SearchShard>,
    typos: BTreeMap<String, TypoShard>,
}

/// One catalog document a search asks for.
enum Wanted<'k> {
    Head,
    Shard(&'k str),
    Typo(&'k str),
}

impl CatalogRead {
    /// Fetches `reads` of `registry` (and the head when `head`) in parallel, each
    /// held to `limits` (refused before downloading when its signed length is
    /// larger) and parsed as the kind its path names.
    fn fetch(
        &mut self,
        remotes: &super::source::Remotes,
        registry: &RegistryName,
        head: bool,
        reads: &Reads,
        limits: &CatalogLimits,
    ) -> Result<(), StoreError> {
        let catalog_error = |source| StoreError::Catalog { registry: registry.clone(), source };
        let wanted = (head.then_some(Wanted::Head).into_iter())
            .chain(reads.shards.iter().map(|k| Wanted::Shard(k)))
            .chain(reads.typos.iter().map(|k| Wanted::Typo(k)));
        let mut infos = Vec::new();
        for want in wanted {
            let (target, limit) = match want {
                Wanted::Head => (schema_catalog::HEAD_TARGET.to_owned(), limits.head_bytes),
                Wanted::Shard(key) => (schema_catalog::shard_target(key), limits.shard_bytes),
                Wanted::Typo(key) => (schema_catalog::typo_target(key), limits.typo_bytes),
            };
            let Some(info) = remotes.target_info(registry, &target)? else { continue };
            if info.file.length > limit {
                return Err(catalog_error(CatalogError::TooLarge { target, length: info.file.length, limit }));
            }
            infos.push((want, info));
        }
        let only: Vec<_> = infos.iter().map(|(_, info)| info.clone()).collect();
        let fetched = remotes.fetch_many(registry, &only)?;
        for ((want, _), bytes) in infos.into_iter().zip(fetched) {
            let bytes =
                bytes.map_err(|source| StoreError::Trust { registry: registry.clone(), source: Box::new(source) })?;
            match want {
                Wanted::Head => self.head = Some(schema_catalog::parse_head(&bytes, limits).map_err(catalog_error)?),
                Wanted::Shard(key) => {
                    let shard = schema_catalog::parse_shard(key, &bytes, limits).map_err(catalog_error)?;
                    self.shards.insert(key.to_owned(), shard);
                }
                Wanted::Typo(key) => {
                    let typo = schema_catalog::parse_typo(key, &bytes, limits).map_err(catalog_error)?;
                    self.typos.insert(key.to_owned(), typo);
                }
            }
        }
        Ok(())
    }
}
