//! The catalog of an incremental build, computed from the documents the site
//! already publishes instead of from every record.
//!
//! Owns [`Incremental`]: given the plugins a build changed (their published records,
//! from their record buckets, and their new ones), it reads only the documents that
//! list them — the head, the published shards of their terms' shortest keys, their
//! listings' pages, their buckets, the typo shards of the terms whose document
//! frequency moves — and redoes exactly those, byte for byte as
//! [`super::documents`] would over every record. Listings and buckets are complete
//! in the site; a shard keeps only the best postings of a term and the head only the
//! best [`HEAD_LIST`] plugins of a list, so each of those is redone when what the
//! site keeps is enough to know the new best ones (every plugin the site does not
//! show ranks below the last one it shows), and the whole update is given up
//! (`Ok(None)`: the caller falls back to every record) when it is not, e.g. when a
//! plugin leaves a full list. The documents are read through [`PublishedCatalog`],
//! so the unit tests run it over documents in memory.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;

use rayon::prelude::*;
use trellis_schema::catalog::{self, CatalogLimits, CatalogRecord, HEAD_LIST, HEAD_TARGET, ListingKind, PluginSummary};
use trellis_schema::{PluginId, Sha256};

use super::super::BuildError;
use super::super::plan::PublishedRole;
use super::super::previous::PreviousSite;
use super::ShardLayout;

/// How every record bucket's target starts ([`catalog::records_target`]).
const RECORDS_PREFIX: &str = "catalog/records-";

/// The catalog documents a site publishes.
pub trait PublishedCatalog: Sync {
    /// Every catalog target it lists, with its SHA-256 and length.
    fn entries(&self) -> &BTreeMap<String, (Sha256, u64)>;
    /// The bytes stored for listed target `target`, as they are: not checked against
    /// the role (every reader goes through [`Self::read`], which checks them).
    fn stored(&self, target: &str) -> Result<Vec<u8>, BuildError>;
    /// The bytes of listed target `target`, which must be the document the catalog
    /// role lists (its SHA-256): bytes that differ (the site was changed after it was
    /// signed) are [`BuildError::CatalogAltered`], never handed on, so content nobody
    /// signed is never parsed into a signed document. What the caller does with that
    /// error is its own: an update redoes the catalog from the records
    /// ([`Incremental::update`]), an incremental build refuses an altered record
    /// bucket (the only source of the records of the plugins it does not load), a
    /// full build skips it.
    fn read(&self, target: &str) -> Result<Vec<u8>, BuildError> {
        let (listed, _) = self
            .entries()
            .get(target)
            .ok_or_else(|| BuildError::Catalog(format!("the published catalog role does not list {target}")))?;
        let bytes = self.stored(target)?;
        let actual = Sha256::of(&bytes);
        if actual != *listed {
            return Err(BuildError::CatalogAltered { target: target.to_owned(), actual, listed: *listed });
        }
        Ok(bytes)
    }
}

/// The catalog of a previous site on disk (`None` when it has no catalog role).
pub(in crate::build) struct SiteCatalog<'a> {
    site: &'a PreviousSite,
    entries: &'a BTreeMap<String, (Sha256, u64)>,
}

impl<'a> SiteCatalog<'a> {
    /// The catalog `site` publishes, whose signed role (as
    /// [`PreviousSite::published_role`] reads it) is `role`; `None` without one.
    pub(in crate::build) fn of_role(
        site: &'a PreviousSite,
        role: Option<&'a PublishedRole>,
    ) -> Result<Option<Self>, BuildError> {
        let Some(role) = role else { return Ok(None) };
        if let Some(target) = role.invalid.first() {
            return Err(BuildError::Catalog(format!(
                "the published catalog role lists {target} without a valid sha256"
            )));
        }
        Ok(Some(Self::listing(site, &role.entries)))
    }

    /// The catalog `site` publishes as a role listing `entries` (a target listed
    /// without a valid SHA-256 reads as altered).
    pub(in crate::build) fn listing(site: &'a PreviousSite, entries: &'a BTreeMap<String, (Sha256, u64)>) -> Self {
        Self { site, entries }
    }
}

impl PublishedCatalog for SiteCatalog<'_> {
    fn entries(&self) -> &BTreeMap<String, (Sha256, u64)> {
        self.entries
    }

    fn stored(&self, target: &str) -> Result<Vec<u8>, BuildError> {
        let (sha256, _) = self
            .entries
            .get(target)
            .ok_or_else(|| BuildError::Catalog(format!("the published catalog role does not list {target}")))?;
        let path = crate::site::target_file(self.site.dir(), target, sha256);
        std::fs::read(&path).map_err(|e| BuildError::Site { path, reason: e.to_string() })
    }
}

/// What an incremental build changes in the catalog.
#[derive(Debug)]
pub struct CatalogUpdate {
    /// The documents redone (target path, bytes), sorted by path; some may be
    /// byte-identical to the published ones.
    pub documents: Vec<(String, Vec<u8>)>,
    /// Every target of the new catalog role: the published ones, those redone
    /// replaced (a shard or a page no longer produced is gone).
    pub entries: BTreeMap<String, (Sha256, u64)>,
    /// The search shard layout after the update, which the build keeps beside the
    /// site for the next one.
    pub layout: ShardLayout,
}

/// The catalog update of one incremental build (see the module docs).
pub struct Incremental<'p> {
    published: &'p dyn PublishedCatalog,
    /// Record buckets read so far.
    buckets: BTreeMap<u32, Bucket>,
    /// What is known of the published shards' splits.
    layout: ShardLayout,
}

impl<'p> Incremental<'p> {
    /// An update of `published`, nothing read yet, knowing nothing of its shard
    /// layout (every split key above a changed term is redone from all its shards).
    pub fn new(published: &'p dyn PublishedCatalog) -> Self {
        Self { published, buckets: BTreeMap::new(), layout: ShardLayout::default() }
    }

    /// The same update knowing the published shards' `layout` (as kept beside the
    /// site): only the shards holding changed terms are read and redone, and split
    /// keys are measured again only when their split is in doubt.
    #[must_use]
    pub fn with_layout(mut self, layout: ShardLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Reads the record buckets of `ids` not read yet (in parallel), and parses the
    /// records of `ids` in them (a bucket's other records are kept as published bytes).
    /// A bucket that is not the one the catalog role lists is refused
    /// ([`BuildError::CatalogAltered`]): the records of the plugins this build does not
    /// load come only from it, and content nobody signed must not be signed again.
    pub fn load<'i>(&mut self, ids: impl IntoIterator<Item = &'i PluginId>) -> Result<(), BuildError> {
        let ids: Vec<&PluginId> = ids.into_iter().collect();
        let wanted: BTreeSet<u32> =
            ids.iter().map(|id| catalog::record_bucket(id)).filter(|b| !self.buckets.contains_key(b)).collect();
        let read: Vec<(u32, Bucket)> = wanted
            .into_par_iter()
            .map(|bucket| {
                let target = catalog::records_target(bucket);
                if !self.published.entries().contains_key(&target) {
                    return Ok((bucket, Bucket::default()));
                }
                Ok((bucket, Bucket::read(&target, self.published.read(&target)?)?))
            })
            .collect::<Result<_, BuildError>>()?;
        self.buckets.extend(read);
        for id in ids {
            if let Some(bucket) = self.buckets.get_mut(&catalog::record_bucket(id)) {
                bucket.parse(id)?;
            }
        }
        Ok(())
    }

    /// The published record of `id`, once loaded ([`Self::load`]).
    pub fn previous(&self, id: &PluginId) -> Option<&CatalogRecord> {
        self.buckets.get(&catalog::record_bucket(id))?.parsed.get(id)
    }

    /// The catalog after replacing the records of the changed plugins by `changes`
    /// (`None`: no longer listed); `featured` is the operator's list and `trending`
    /// the trending plugins, fastest growing first (every one that qualifies, listed
    /// or not: the head shows the first [`HEAD_LIST`] the catalog lists, as
    /// `apply_downloads` picks them; empty without download statistics). `Ok(None)`
    /// when the published documents are not enough to know the result (redo it from
    /// every record). A featured plugin the catalog does not list is refused as
    /// `check_featured` does.
    ///
    /// Every published document the update reads is checked against the catalog role
    /// ([`PublishedCatalog::read`]): an altered head, shard, typo shard or listing page
    /// (the site changed after it was signed) gives the update up (`Ok(None)`, logged),
    /// so the catalog is redone from the records and the altered document replaced by
    /// what the records make of it, never re-signed with its edits. An altered record
    /// bucket stays an error (see [`Self::load`]).
    pub fn update(
        self,
        changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
        featured: &[PluginId],
        trending: &[PluginId],
    ) -> Result<Option<CatalogUpdate>, BuildError> {
        match self.update_from(changes, featured, trending) {
            Err(BuildError::CatalogAltered { target, actual, listed }) if !target.starts_with(RECORDS_PREFIX) => {
                tracing::warn!(
                    document = %target,
                    %actual,
                    %listed,
                    "a published catalog document differs from what the catalog role lists; redoing the catalog from every record"
                );
                Ok(None)
            }
            update => update,
        }
    }

    /// [`Self::update`], an altered document an error.
    fn update_from(
        mut self,
        changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
        featured: &[PluginId],
        trending: &[PluginId],
    ) -> Result<Option<CatalogUpdate>, BuildError> {
        let published = self.published;
        if !published.entries().contains_key(HEAD_TARGET) {
            return Ok(None);
        }
        let head_bytes = published.read(HEAD_TARGET)?;
        let head = catalog::parse_head(&head_bytes, &generous()).map_err(published_error)?;
        self.load(changes.keys())?;
        let brand_new = changes.iter().any(|(id, new)| new.is_some() && self.previous(id).is_none());
        if brand_new {
            self.load(head.new.iter().map(|s| &s.id))?;
        }
        let shown: HashSet<&PluginId> = head.featured.iter().map(|s| &s.id).collect();
        self.load(featured.iter().filter(|id| !changes.contains_key(*id) && !shown.contains(id)))?;
        // Trending: the first listed ones, a changed plugin by its new record, one the
        // head shows as it shows it (unchanged, so still listed), any other from its
        // bucket (absent there: not listed, skipped), loaded as the list is walked.
        let mut trending_summaries: Vec<PluginSummary> = Vec::new();
        for id in trending {
            if trending_summaries.len() == HEAD_LIST {
                break;
            }
            let summary = match changes.get(id) {
                Some(change) => change.as_ref().map(|r| r.summary.clone()),
                None => match head.trending.iter().find(|s| &s.id == id) {
                    Some(shown) => Some(shown.clone()),
                    None => {
                        self.load([id])?;
                        self.previous(id).map(|r| r.summary.clone())
                    }
                },
            };
            trending_summaries.extend(summary);
        }

        let this = &self;
        let old: BTreeMap<&PluginId, &CatalogRecord> =
            changes.keys().filter_map(|id| Some((id, this.previous(id)?))).collect();
        let new: BTreeMap<&PluginId, &CatalogRecord> =
            changes.iter().filter_map(|(id, r)| Some((id, r.as_ref()?))).collect();
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let mut removed: BTreeSet<String> = BTreeSet::from([HEAD_TARGET.to_owned()]);

        // Featured: the new record, else as the head shows it, else from its bucket.
        let mut featured_summaries = Vec::new();
        for id in featured {
            let summary = match changes.get(id) {
                Some(change) => change.as_ref().map(|r| &r.summary),
                None => head.featured.iter().find(|s| &s.id == id).or_else(|| this.previous(id).map(|r| &r.summary)),
            };
            match summary {
                Some(summary) => featured_summaries.push(summary.clone()),
                None => return Err(super::unknown_featured(id)),
            }
        }
        featured_summaries.truncate(HEAD_LIST);

        // Listings of the changed plugins' categories and tags, before and after.
        let mut touched: BTreeSet<(ListingKind, &str)> = BTreeSet::new();
        for record in old.values().chain(new.values()) {
            touched.extend(record.summary.categories.iter().map(|c| (ListingKind::Category, c.as_str())));
            touched.extend(record.summary.tags.iter().map(|t| (ListingKind::Tag, t.as_str())));
        }
        let sizes_of = |kind| if kind == ListingKind::Category { &head.categories } else { &head.tags };
        // A listing every changed plugin stays in (or stays out of) keeps its size:
        // only the pages between each one's old and new rank change, found by binary
        // search over its pages. Any other is redone from all of its pages.
        let mut whole: BTreeSet<(ListingKind, &str)> = BTreeSet::new();
        for (kind, name) in &touched {
            let in_listing = |summary: &PluginSummary| match kind {
                ListingKind::Category => summary.categories.iter().any(|c| c == name),
                ListingKind::Tag => summary.tags.iter().any(|t| t == name),
            };
            let mut moved = Vec::new();
            let mut stable = true;
            for id in changes.keys() {
                match (old.get(id).map(|r| &r.summary), new.get(id).map(|r| &r.summary)) {
                    (Some(was), Some(is)) if in_listing(was) && in_listing(is) => moved.push((was, is)),
                    (was, is) => stable &= !was.is_some_and(in_listing) && !is.is_some_and(in_listing),
                }
            }
            let size = sizes_of(*kind).iter().find(|s| s.name == *name);
            let redone = match (stable, size) {
                (true, Some(size)) => {
                    let mut pages = ListingPages::new(published, *kind, name, size);
                    pages.redo(&moved, changes, &mut out)?
                }
                _ => None,
            };
            match redone {
                Some(targets) => removed.extend(targets),
                None => {
                    whole.insert((*kind, *name));
                }
            }
        }
        let touched = whole;
        let pages: Vec<String> = touched
            .iter()
            .flat_map(|(kind, name)| {
                let pages = sizes_of(*kind).iter().find(|s| s.name == *name).map_or(0, |s| s.pages);
                (1..=pages).map(|page| catalog::page_target(*kind, name, page))
            })
            .collect();
        let read_pages: Vec<catalog::ListingPage> = pages
            .par_iter()
            .map(|target| {
                let bytes = published.read(target)?;
                catalog::parse_page(target, &bytes, &generous()).map_err(published_error)
            })
            .collect::<Result<_, BuildError>>()?;
        removed.extend(pages);
        let mut members: BTreeMap<(ListingKind, &str), Vec<&PluginSummary>> =
            touched.iter().map(|key| (*key, Vec::new())).collect();
        for page in &read_pages {
            let list = members.entry((page.kind, page.name.as_str())).or_default();
            list.extend(page.plugins.iter().filter(|s| !changes.contains_key(&s.id)));
        }
        for record in new.values() {
            let listings = (record.summary.categories.iter().map(|c| (ListingKind::Category, c.as_str())))
                .chain(record.summary.tags.iter().map(|t| (ListingKind::Tag, t.as_str())));
            for listing in listings {
                if let Some(list) = members.get_mut(&listing) {
                    list.push(&record.summary);
                }
            }
        }
        let (mut categories, mut tags) = (head.categories.clone(), head.tags.clone());
        for ((kind, name), list) in members {
            let sizes = if kind == ListingKind::Category { &mut categories } else { &mut tags };
            sizes.retain(|s| s.name != name);
            if !list.is_empty() {
                sizes.push(super::listing_pages(kind, name, list, &mut out));
            }
        }
        super::sort_sizes(&mut categories);
        super::sort_sizes(&mut tags);

        // Head lists.
        let changed_summaries: Vec<&PluginSummary> = new.values().map(|r| &r.summary).collect();
        let unchanged = (head.plugins as usize).saturating_sub(old.len());
        let updated = {
            let mut candidates: Vec<&PluginSummary> =
                head.updated.iter().filter(|s| !changes.contains_key(&s.id)).collect();
            let unseen = unchanged.saturating_sub(candidates.len());
            candidates.extend(changed_summaries);
            let order =
                |a: &&PluginSummary, b: &&PluginSummary| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id));
            match best(candidates, head.updated.last().as_ref(), unseen, HEAD_LIST, order) {
                Some(list) => list.into_iter().cloned().collect::<Vec<_>>(),
                None => return Ok(None),
            }
        };
        let newest = if brand_new {
            // Brand-new plugins are placed by their creation date, which only the
            // records carry.
            let mut shown = Vec::new();
            for summary in &head.new {
                match this.previous(&summary.id) {
                    Some(record) => shown.push((record.created.as_str(), summary)),
                    None => return Ok(None),
                }
            }
            let mut candidates: Vec<(&str, &PluginSummary)> =
                shown.iter().filter(|(_, s)| !changes.contains_key(&s.id)).copied().collect();
            let unseen = unchanged.saturating_sub(candidates.len());
            candidates.extend(new.values().map(|r| (r.created.as_str(), &r.summary)));
            let order =
                |a: &(&str, &PluginSummary), b: &(&str, &PluginSummary)| b.0.cmp(a.0).then_with(|| a.1.id.cmp(&b.1.id));
            match best(candidates, shown.last(), unseen, HEAD_LIST, order) {
                Some(list) => list.into_iter().map(|(_, s)| s.clone()).collect(),
                None => return Ok(None),
            }
        } else {
            // Creation dates are kept: the order is the published one, the changed
            // plugins in their places.
            let mut list = Vec::new();
            for summary in &head.new {
                match changes.get(&summary.id) {
                    None => list.push(summary.clone()),
                    Some(Some(record)) => list.push(record.summary.clone()),
                    Some(None) if head.new.len() < HEAD_LIST => {}
                    Some(None) => return Ok(None),
                }
            }
            list
        };
        let plugins = head.plugins as usize - old.len() + new.len();
        let releases = head.releases - old.values().map(|r| r.releases).sum::<u32>()
            + new.values().map(|r| r.releases).sum::<u32>();
        out.push((
            HEAD_TARGET.to_owned(),
            super::head_bytes(
                plugins as u32,
                releases,
                categories,
                tags,
                featured_summaries,
                trending_summaries,
                newest,
                updated,
            ),
        ));

        // Search shards holding the changed plugins' terms, and their splits.
        let docs = u64::from(head.plugins) + new.len() as u64;
        let Some(redone) = super::shards::redo(published, &self.layout, &old, &new, changes, docs)? else {
            return Ok(None);
        };
        out.extend(redone.documents);
        removed.extend(redone.removed);

        // Typo shards under the last two characters of the terms whose document
        // frequency moves (a plugin gaining or losing the term): a new release of
        // the same text moves none.
        let typo_published = published.entries().keys().any(|t| t.starts_with("catalog/typo-"));
        let mut moved: BTreeMap<&str, i64> = BTreeMap::new();
        for record in old.values() {
            for term in record.terms.keys() {
                *moved.entry(term).or_default() -= 1;
            }
        }
        for record in new.values() {
            for term in record.terms.keys() {
                *moved.entry(term).or_default() += 1;
            }
        }
        moved.retain(|term, by| *by != 0 && term.chars().count() >= catalog::MIN_TYPO_TERM);
        if !moved.is_empty() && !typo_published {
            // A site built before typo shards: only a full build writes all of them.
            return Ok(None);
        }
        let typo_roots: BTreeSet<String> = moved.keys().map(|t| catalog::typo_key(t)).collect();
        let typo_targets: Vec<(String, String)> = published
            .entries()
            .keys()
            .filter_map(|target| {
                let key = target.strip_prefix("catalog/typo-")?.strip_suffix(".json")?;
                typo_roots
                    .contains(&catalog::typo_key_of(key, catalog::MIN_KEY))
                    .then(|| (target.clone(), key.to_owned()))
            })
            .collect();
        let typo_read: Vec<catalog::TypoShard> = typo_targets
            .par_iter()
            .map(|(target, key)| {
                let bytes = published.read(target)?;
                catalog::parse_typo(key, &bytes, &generous()).map_err(published_error)
            })
            .collect::<Result<_, BuildError>>()?;
        removed.extend(typo_targets.into_iter().map(|(target, _)| target));
        let mut vocabulary: BTreeMap<&str, i64> =
            typo_read.iter().flat_map(|s| s.terms.iter().map(|(t, df)| (t.as_str(), i64::from(*df)))).collect();
        for (term, by) in &moved {
            let df = vocabulary.entry(term).or_default();
            *df += by;
            if *df < 0 {
                return Err(published_error(catalog::CatalogError::Invalid {
                    target: catalog::typo_target(&catalog::typo_key(term)),
                    reason: format!("lists {term} in fewer plugins than the published records hold it"),
                }));
            }
        }
        let vocabulary =
            vocabulary.into_iter().filter_map(|(t, df)| Some((t, u32::try_from(df).ok().filter(|d| *d > 0)?)));
        out.extend(super::typo_shards(vocabulary));

        // Record buckets of the changed plugins: the published bytes of every other
        // record, the changed ones serialised in their places.
        let buckets: BTreeSet<u32> = changes.keys().map(catalog::record_bucket).collect();
        for bucket in buckets {
            let target = catalog::records_target(bucket);
            let changed: BTreeMap<&PluginId, Option<&CatalogRecord>> = changes
                .iter()
                .filter(|(id, _)| catalog::record_bucket(id) == bucket)
                .map(|(id, change)| (id, change.as_ref()))
                .collect();
            removed.insert(target.clone());
            let spliced = match self.buckets.get(&bucket) {
                Some(published) => published.splice(&changed),
                None => Bucket::default().splice(&changed),
            };
            out.push((target, spliced));
        }

        out.sort_by(|a, b| a.0.cmp(&b.0));
        let mut entries = published.entries().clone();
        entries.retain(|target, _| !removed.contains(target));
        let hashed: Vec<(Sha256, u64)> =
            out.par_iter().map(|(_, bytes)| (Sha256::of(bytes), bytes.len() as u64)).collect();
        entries.extend(out.iter().map(|(target, _)| target.clone()).zip(hashed));
        Ok(Some(CatalogUpdate { documents: out, entries, layout: redone.layout }))
    }
}

/// A published record bucket: each record's bytes as published, found by a scan
/// of the document (the builder wrote it: `{"format":…,"records":[{"summary":{"id":…`),
/// parsed only for the plugins a build asks for, so an update costs a scan of the
/// bucket instead of parsing and serialising every record in it. The records stay in
/// the one buffer read (at 300k plugins a bucket is ~3.4 MB of ~4,700 records).
#[derive(Default)]
struct Bucket {
    /// The records' bytes, one after another (as published, or written again).
    bytes: Vec<u8>,
    /// Id → where its record is in `bytes`, by id.
    records: Vec<(PluginId, Range<usize>)>,
    /// The records parsed so far.
    parsed: BTreeMap<PluginId, CatalogRecord>,
}

impl Bucket {
    /// The bucket `target` published as `bytes` (the ones the catalog role lists, as
    /// [`PublishedCatalog::read`] checks). Its records' bytes are kept as published (and
    /// spliced into the next bucket) when laid out as this builder writes buckets;
    /// otherwise (an older builder's layout) the bucket is parsed whole, strictly
    /// (refused, naming the file, when invalid), and every record is written again from
    /// what was parsed.
    fn read(target: &str, bytes: Vec<u8>) -> Result<Self, BuildError> {
        if let Some(records) = split_records(&bytes) {
            return Ok(Self { bytes, records, parsed: BTreeMap::new() });
        }
        // Not as this builder writes buckets: parsed whole (and refused when invalid).
        let parsed = catalog::parse_records(target, &bytes).map_err(published_error)?;
        let mut sorted: Vec<&CatalogRecord> = parsed.records.iter().collect();
        sorted.sort_by(|a, b| a.summary.id.cmp(&b.summary.id));
        let (mut bytes, mut records) = (Vec::new(), Vec::with_capacity(sorted.len()));
        for record in sorted {
            let start = bytes.len();
            bytes.extend_from_slice(&super::serialize(record));
            records.push((record.summary.id.clone(), start..bytes.len()));
        }
        let parsed = parsed.records.into_iter().map(|r| (r.summary.id.clone(), r)).collect();
        Ok(Self { bytes, records, parsed })
    }

    /// Parses the record of `id`, when the bucket has one.
    fn parse(&mut self, id: &PluginId) -> Result<(), BuildError> {
        if self.parsed.contains_key(id) {
            return Ok(());
        }
        let Ok(index) = self.records.binary_search_by(|(listed, _)| listed.cmp(id)) else { return Ok(()) };
        let bytes = &self.bytes[self.records[index].1.clone()];
        let record: CatalogRecord = trellis_schema::json::from_slice(bytes).map_err(|e| {
            BuildError::Catalog(format!("the published catalog cannot be read: the record of {id}: {e}"))
        })?;
        if record.summary.id != *id {
            return Err(BuildError::Catalog(format!(
                "the published catalog cannot be read: the record listed as {id} is {}'s",
                record.summary.id
            )));
        }
        self.parsed.insert(id.clone(), record);
        Ok(())
    }

    /// This bucket with the records of `changed` replaced (`None`: removed), as
    /// [`super::bucket_bytes`] writes it.
    fn splice(&self, changed: &BTreeMap<&PluginId, Option<&CatalogRecord>>) -> Vec<u8> {
        let empty = super::serialize(&catalog::RecordBucket { format: catalog::CATALOG_FORMAT, records: Vec::new() });
        let (head, tail) = empty.split_at(empty.len().saturating_sub(2));
        let written: Vec<(&PluginId, Option<Vec<u8>>)> =
            changed.iter().map(|(id, record)| (*id, record.map(super::serialize))).collect();
        let more: usize = written.iter().filter_map(|(_, bytes)| bytes.as_ref().map(|b| b.len() + 1)).sum();
        let mut out = Vec::with_capacity(head.len() + self.bytes.len() + self.records.len() + more + tail.len());
        out.extend_from_slice(head);
        let mut first = true;
        let mut push = |bytes: &[u8]| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(bytes);
        };
        let mut written = written.iter().peekable();
        for (id, range) in &self.records {
            while let Some((_, record)) = written.next_if(|(new_id, _)| *new_id < id) {
                if let Some(record) = record {
                    push(record);
                }
            }
            match written.next_if(|(new_id, _)| *new_id == id) {
                Some((_, Some(record))) => push(record),
                Some((_, None)) => {}
                None => push(&self.bytes[range.clone()]),
            }
        }
        for (_, record) in written {
            if let Some(record) = record {
                push(record);
            }
        }
        out.extend_from_slice(tail);
        out
    }
}

/// The records of a bucket as this builder writes it, each with its id and where its
/// bytes are in `bytes`, in order; `None` when the document is not laid out that way
/// (or not sorted by id).
fn split_records(bytes: &[u8]) -> Option<Vec<(PluginId, Range<usize>)>> {
    let empty = super::serialize(&catalog::RecordBucket { format: catalog::CATALOG_FORMAT, records: Vec::new() });
    let (head, tail) = empty.split_at(empty.len().checked_sub(2)?);
    let body = bytes.strip_prefix(head)?.strip_suffix(tail)?;
    let offset = head.len();
    let mut out: Vec<(PluginId, Range<usize>)> = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start, mut expect_record) = (0usize, false, false, 0, true);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if in_string {
            if escaped {
                escaped = false;
                i += 1;
                continue;
            }
            // Most of a bucket is text: straight to the next quote or backslash (SIMD).
            let Some(at) = memchr::memchr2(b'"', b'\\', &body[i..]) else { break };
            i += at;
            match body[i] {
                b'"' => in_string = false,
                _ => escaped = true,
            }
            i += 1;
            continue;
        }
        match (b, depth) {
            (b'"', 0) => return None,
            (b'"', _) => in_string = true,
            (b'{', 0) if expect_record => {
                start = i;
                depth = 1;
                expect_record = false;
            }
            (b'{' | b'[', 0) => return None,
            (b'{' | b'[', _) => depth += 1,
            (b'}' | b']', 0) => return None,
            (b'}' | b']', _) => {
                depth -= 1;
                if depth == 0 {
                    let record = &body[start..=i];
                    let rest = record.strip_prefix(b"{\"summary\":{\"id\":\"")?;
                    let end = rest.iter().position(|&b| b == b'"')?;
                    let id: PluginId = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
                    if out.last().is_some_and(|(last, _)| *last >= id) {
                        return None;
                    }
                    out.push((id, offset + start..offset + i + 1));
                }
            }
            (b',', 0) if !expect_record && !out.is_empty() => expect_record = true,
            (_, 0) => return None,
            _ => {}
        }
        i += 1;
    }
    (depth == 0 && !in_string && (out.is_empty() || !expect_record)).then_some(out)
}

/// The published pages of one listing, each read once, on demand: probed for its
/// members' order (a binary search over the pages) or parsed whole (a page redone).
struct ListingPages<'p> {
    published: &'p dyn PublishedCatalog,
    kind: ListingKind,
    name: &'p str,
    size: &'p catalog::ListingSize,
    read: BTreeMap<u32, catalog::ListingPage>,
    probed: BTreeMap<u32, Probe>,
}

/// What ranking within a listing needs of a published page: its page count and its
/// members' order keys ([`super::listing_order`]), deserialised without their
/// summaries (the bytes are the ones the catalog role lists; a page redone is
/// parsed whole, strictly).
#[derive(serde::Deserialize)]
struct Probe {
    pages: u32,
    plugins: Vec<ProbeMember>,
}

#[derive(serde::Deserialize)]
struct ProbeMember {
    id: PluginId,
    downloads: u64,
    rating: Option<ProbeRating>,
}

#[derive(serde::Deserialize)]
struct ProbeRating {
    tenths: u8,
}

impl ProbeMember {
    /// Whether this member ranks before `key` in its listing: as
    /// [`super::listing_order`] orders summaries (downloads, then rating, most first;
    /// then id).
    fn before(&self, key: &PluginSummary) -> bool {
        key.downloads
            .cmp(&self.downloads)
            .then_with(|| key.rating.map(|r| r.tenths).cmp(&self.rating.as_ref().map(|r| r.tenths)))
            .then_with(|| self.id.cmp(&key.id))
            == Ordering::Less
    }
}

impl<'p> ListingPages<'p> {
    fn new(
        published: &'p dyn PublishedCatalog,
        kind: ListingKind,
        name: &'p str,
        size: &'p catalog::ListingSize,
    ) -> Self {
        Self { published, kind, name, size, read: BTreeMap::new(), probed: BTreeMap::new() }
    }

    /// Page `number` probed ([`Probe`]); `None` when it is not a full page though not
    /// the last, or its page count is not the head's.
    fn probe(&mut self, number: u32) -> Result<Option<&Probe>, BuildError> {
        if !self.probed.contains_key(&number) {
            let target = catalog::page_target(self.kind, self.name, number);
            let bytes = self.published.read(&target)?;
            let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| {
                published_error(catalog::CatalogError::Invalid { target: target.clone(), reason: e.to_string() })
            })?;
            self.probed.insert(number, probe);
        }
        let probe = &self.probed[&number];
        let full = number == self.size.pages || probe.plugins.len() == catalog::PAGE_SIZE;
        Ok((full && probe.pages == self.size.pages).then_some(probe))
    }

    /// Page `number` (from 1); `None` when it is not a full page though not the last.
    fn page(&mut self, number: u32) -> Result<Option<&catalog::ListingPage>, BuildError> {
        if !self.read.contains_key(&number) {
            let target = catalog::page_target(self.kind, self.name, number);
            let bytes = self.published.read(&target)?;
            let page = catalog::parse_page(&target, &bytes, &generous()).map_err(published_error)?;
            self.read.insert(number, page);
        }
        let page = &self.read[&number];
        let full = number == self.size.pages || page.plugins.len() == catalog::PAGE_SIZE;
        Ok((full && page.pages == self.size.pages).then_some(page))
    }

    /// How many published members rank before `key` (`None`: the pages are not as
    /// the head says).
    fn rank(&mut self, key: &PluginSummary) -> Result<Option<usize>, BuildError> {
        // The first page whose last member does not rank before `key`.
        let (mut low, mut high) = (1, self.size.pages + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            let Some(page) = self.probe(middle)? else { return Ok(None) };
            match page.plugins.last() {
                Some(last) if last.before(key) => low = middle + 1,
                _ => high = middle,
            }
        }
        if low > self.size.pages {
            return Ok(Some(self.size.plugins as usize));
        }
        let Some(page) = self.probe(low)? else { return Ok(None) };
        Ok(Some((low as usize - 1) * catalog::PAGE_SIZE + page.plugins.iter().filter(|s| s.before(key)).count()))
    }

    /// Redoes the pages between the old and the new rank of each of `moved` (old
    /// and new summaries of the changed plugins the listing keeps; the listing's
    /// size is unchanged) into `out`, returning their targets; `None` when the pages
    /// are not as expected (the caller redoes the whole listing).
    fn redo(
        &mut self,
        moved: &[(&PluginSummary, &PluginSummary)],
        changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<Option<Vec<String>>, BuildError> {
        let order = super::listing_order;
        let (mut first, mut last) = (usize::MAX, 0);
        for (was, is) in moved {
            let Some(old_rank) = self.rank(was)? else { return Ok(None) };
            // Its page must show it there.
            let number = (old_rank / catalog::PAGE_SIZE) as u32 + 1;
            let shown = self.page(number)?.and_then(|p| p.plugins.get(old_rank % catalog::PAGE_SIZE));
            if shown.is_none_or(|s| s.id != was.id) {
                return Ok(None);
            }
            // Its new rank among the unchanged members and the other changed ones.
            let Some(rank) = self.rank(is)? else { return Ok(None) };
            let new_rank = rank - moved.iter().filter(|(w, _)| order(w, is) == Ordering::Less).count()
                + moved.iter().filter(|(_, i)| order(i, is) == Ordering::Less).count();
            first = first.min(old_rank.min(new_rank) / catalog::PAGE_SIZE);
            last = last.max(old_rank.max(new_rank) / catalog::PAGE_SIZE);
        }
        if moved.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut members: Vec<&PluginSummary> = moved.iter().map(|(_, is)| *is).collect();
        let mut shown = 0;
        for number in first as u32 + 1..=last as u32 + 1 {
            let Some(page) = self.page(number)? else { return Ok(None) };
            shown += page.plugins.len();
        }
        for number in first as u32 + 1..=last as u32 + 1 {
            members.extend(self.read[&number].plugins.iter().filter(|s| !changes.contains_key(&s.id)));
        }
        if members.len() != shown {
            return Ok(None);
        }
        members.sort_by(|a, b| order(a, b));
        let mut targets = Vec::new();
        for (index, chunk) in members.chunks(catalog::PAGE_SIZE).enumerate() {
            let number = first as u32 + 1 + index as u32;
            let page = super::page_bytes(self.kind, self.name, number, self.size.pages, self.size.plugins, chunk);
            targets.push(page.0.clone());
            out.push(page);
        }
        Ok(Some(targets))
    }
}

/// The best `limit` of `candidates` (the unchanged entries the site shows and the
/// changed ones) in `order`, when certain: `unseen` more unchanged entries exist,
/// each ranked below `last_shown` (the last entry the site showed), so the answer
/// is certain when there are none or the best `limit` candidates all rank at or above it.
pub(super) fn best<T>(
    mut candidates: Vec<T>,
    last_shown: Option<&T>,
    unseen: usize,
    limit: usize,
    order: impl Fn(&T, &T) -> Ordering,
) -> Option<Vec<T>> {
    candidates.sort_by(&order);
    if unseen > 0 {
        let last_shown = last_shown?;
        let certain = candidates.iter().take_while(|c| order(c, last_shown) != Ordering::Greater).count();
        if certain < limit {
            return None;
        }
    }
    candidates.truncate(limit);
    Some(candidates)
}

/// Limits for reading the builder's own published documents: the client's bounds
/// guard a client, not the builder (which wrote them).
pub(super) fn generous() -> CatalogLimits {
    CatalogLimits { head_bytes: u64::MAX, shard_bytes: u64::MAX, page_bytes: u64::MAX, typo_bytes: u64::MAX }
}

pub(super) fn published_error(error: catalog::CatalogError) -> BuildError {
    BuildError::Catalog(format!("the published catalog cannot be read: {error}"))
}

#[cfg(test)]
mod tests {
    use trellis_schema::catalog::Rating;
    use trellis_schema::plugin::{Channel, HostRequirement, Platform, PricingModel};

    use super::*;

    /// Published documents in memory.
    struct Memory {
        entries: BTreeMap<String, (Sha256, u64)>,
        bytes: BTreeMap<String, Vec<u8>>,
    }

    impl Memory {
        fn of(documents: Vec<(String, Vec<u8>)>) -> Self {
            let entries = documents.iter().map(|(t, b)| (t.clone(), (Sha256::of(b), b.len() as u64))).collect();
            Self { entries, bytes: documents.into_iter().collect() }
        }
    }

    impl PublishedCatalog for Memory {
        fn entries(&self) -> &BTreeMap<String, (Sha256, u64)> {
            &self.entries
        }
        fn stored(&self, target: &str) -> Result<Vec<u8>, BuildError> {
            self.bytes.get(target).cloned().ok_or_else(|| BuildError::Catalog(format!("no {target}")))
        }
    }

    /// A deterministic generator (xorshift), so a failure reproduces.
    struct Dice(u64);

    impl Dice {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
        /// Skewed towards 0, so a few words are in many plugins (terms with more
        /// postings than a shard keeps, shards over the budget).
        fn skewed(&mut self, below: u64) -> u64 {
            let a = self.next(below);
            a * self.next(below) / below
        }
    }

    const SYLLABLES: [&str; 8] = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi"];

    fn word(n: u64) -> String {
        let s = |i: u64| SYLLABLES[(i % 8) as usize];
        format!("{}{}{}", s(n), s(n / 8), s(n / 64))
    }

    fn record(dice: &mut Dice, n: u64, version: &str, updated: &str) -> CatalogRecord {
        let words =
            |dice: &mut Dice, count: usize| -> Vec<String> { (0..count).map(|_| word(dice.skewed(400))).collect() };
        let name = words(dice, 2).join(" ");
        let summary = PluginSummary {
            id: format!("vendor{}.plugin{n}", n % 40).parse().unwrap(),
            name,
            summary: words(dice, 6).join(" "),
            vendor: format!("Vendor {}", n % 40),
            version: version.parse().unwrap(),
            channel: Channel::Stable,
            host: HostRequirement { id: "demo-host".into(), api_version_requirement: "^1".parse().unwrap() },
            platforms: vec![Platform::Any],
            pricing: PricingModel::Free,
            permissions: Vec::new(),
            categories: vec![format!("category-{}", dice.skewed(5))],
            tags: {
                let mut tags = vec![format!("tag-{}", dice.skewed(30)), format!("tag-{}", dice.skewed(30))];
                tags.sort();
                tags.dedup();
                tags
            },
            rating: (dice.next(3) == 0).then(|| Rating {
                tenths: 10 + dice.next(41) as u8,
                count: 1 + dice.next(50) as u32,
                histogram: [0; 5],
                recent_tenths: None,
            }),
            downloads: dice.skewed(100_000),
            recent_downloads: 0,
            updated: updated.to_owned(),
            icon: None,
        };
        let created = format!("2026-{:02}-{:02}T00:00:00Z", 1 + dice.next(10), 1 + dice.next(28));
        let description = words(dice, 20).join(" ");
        super::super::record_of(summary, &description, created, 1 + dice.next(5) as u32)
    }

    fn registry(dice: &mut Dice, plugins: u64) -> BTreeMap<PluginId, CatalogRecord> {
        (0..plugins)
            .map(|n| {
                let updated = format!("2026-{:02}-{:02}T00:00:00Z", 1 + dice.next(10), 1 + dice.next(28));
                let r = record(dice, n, "1.0.0", &updated);
                (r.summary.id.clone(), r)
            })
            .collect()
    }

    /// Applies `changes` both ways and checks the update (when it decides) gives the
    /// full build's documents: the same target list and the same bytes for every
    /// document it wrote, and it wrote every document that differs.
    fn check(
        before: &BTreeMap<PluginId, CatalogRecord>,
        changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
        featured: &[PluginId],
    ) -> Option<usize> {
        let published = Memory::of(super::super::documents(before, featured));
        let full = Memory::of(super::super::documents(&applied(before, changes), featured));
        let update = Incremental::new(&published).update(changes, featured, &[]).unwrap()?;
        assert_same_catalog(&update, &published, &full);
        Some(update.documents.len())
    }

    /// `before` with `changes` made.
    fn applied(
        before: &BTreeMap<PluginId, CatalogRecord>,
        changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
    ) -> BTreeMap<PluginId, CatalogRecord> {
        let mut after = before.clone();
        for (id, change) in changes {
            match change {
                Some(record) => after.insert(id.clone(), record.clone()),
                None => after.remove(id),
            };
        }
        after
    }

    /// Checks `update` of the catalog `published` against `full`, the full build of
    /// the same records: its role lists exactly what the full build's lists, every
    /// document that changed is written, and each one written is the full build's.
    fn assert_same_catalog(update: &CatalogUpdate, published: &Memory, full: &Memory) {
        let differing: Vec<&String> = update
            .entries
            .keys()
            .chain(full.entries.keys())
            .filter(|t| update.entries.get(*t) != full.entries.get(*t))
            .collect();
        assert!(differing.is_empty(), "the new catalog role lists what a full build lists, not {differing:?}");
        let written: BTreeMap<&String, &Vec<u8>> = update.documents.iter().map(|(t, b)| (t, b)).collect();
        for (target, bytes) in &full.bytes {
            if published.bytes.get(target) != Some(bytes) {
                assert!(written.contains_key(target), "{target} changed but was not written");
            }
        }
        for (target, bytes) in written {
            assert_eq!(Some(bytes), full.bytes.get(target), "{target} differs from the full build's");
        }
    }

    fn bumped(record: &CatalogRecord, version: &str, now: &str) -> CatalogRecord {
        let mut record = record.clone();
        record.summary.version = version.parse().unwrap();
        record.summary.updated = now.to_owned();
        record.releases += 1;
        record
    }

    const NOW: &str = "2026-12-01T00:00:00Z";

    #[test]
    fn a_new_release_redoes_only_the_documents_listing_it_as_a_full_build_would() {
        let mut dice = Dice(0x5eed);
        let before = registry(&mut dice, 400);
        let documents = super::super::documents(&before, &[]);
        assert!(
            documents.iter().any(|(t, _)| t.starts_with("catalog/search-") && t.len() > "catalog/search-xx.json".len()),
            "the registry is large enough for split shards"
        );
        for pick in [0u64, 7, 300, 399] {
            let id: PluginId = format!("vendor{}.plugin{pick}", pick % 40).parse().unwrap();
            let changes = BTreeMap::from([(id.clone(), Some(bumped(&before[&id], "1.1.0", NOW)))]);
            let written = check(&before, &changes, &[]).expect("a new release is decided from the published documents");
            assert!(written < documents.len(), "{written} of {} documents redone", documents.len());
        }
    }

    /// A published catalog that records which targets were read.
    struct Counting<'a>(&'a Memory, std::sync::Mutex<BTreeSet<String>>);

    impl PublishedCatalog for Counting<'_> {
        fn entries(&self) -> &BTreeMap<String, (Sha256, u64)> {
            &self.0.entries
        }
        fn stored(&self, target: &str) -> Result<Vec<u8>, BuildError> {
            self.1.lock().unwrap().insert(target.to_owned());
            self.0.stored(target)
        }
    }

    #[test]
    fn downloads_moving_plugins_within_a_listing_redo_the_pages_between_their_ranks_only() {
        let mut dice = Dice(0xd0d0);
        let before = registry(&mut dice, 700);
        let in_listing = |r: &&CatalogRecord| r.summary.categories.iter().any(|c| c == "category-0");
        let mut members: Vec<&CatalogRecord> = before.values().filter(in_listing).collect();
        members.sort_by(|a, b| super::super::listing_order(&a.summary, &b.summary));
        let pages = members.len().div_ceil(catalog::PAGE_SIZE);
        assert!(pages >= 5, "{pages} pages");
        let with_downloads = |r: &CatalogRecord, downloads: u64| {
            let mut r = r.clone();
            r.summary.downloads = downloads;
            r
        };
        // Totals only grow: one plugin a little more downloaded, staying on its
        // page; one climbing from the last page to the second; two climbing a page
        // each, from the fourth to the third and from the fifth to the fourth.
        let above = |rank: usize| members[rank].summary.downloads + 1;
        let stays = members[2 * catalog::PAGE_SIZE + 50];
        let climbs = members[members.len() - 1];
        let cases = [
            (vec![(stays, stays.summary.downloads + 1)], vec![3]),
            (vec![(climbs, above(catalog::PAGE_SIZE + 5))], (2..=pages).collect()),
            (
                vec![
                    (members[3 * catalog::PAGE_SIZE + 10], above(2 * catalog::PAGE_SIZE + 90)),
                    (members[4 * catalog::PAGE_SIZE + 10], above(3 * catalog::PAGE_SIZE + 90)),
                ],
                vec![3, 4, 5],
            ),
        ];
        let published = Memory::of(super::super::documents(&before, &[]));
        for (case, (moved, expected_pages)) in cases.into_iter().enumerate() {
            let changes: BTreeMap<PluginId, Option<CatalogRecord>> =
                moved.iter().map(|(r, d)| (r.summary.id.clone(), Some(with_downloads(r, *d)))).collect();
            assert!(check(&before, &changes, &[]).is_some(), "case {case}: decided from the published documents");
            let counting = Counting(&published, Default::default());
            let update = Incremental::new(&counting).update(&changes, &[], &[]).unwrap().unwrap();
            let written: Vec<usize> = update
                .documents
                .iter()
                .filter_map(|(t, _)| {
                    t.strip_prefix("catalog/category-category-0-")?.strip_suffix(".json")?.parse().ok()
                })
                .collect();
            assert_eq!(written, expected_pages, "case {case}: pages of category-0 redone");
            let read =
                counting.1.lock().unwrap().iter().filter(|t| t.starts_with("catalog/category-category-0-")).count();
            assert!(
                read <= expected_pages.len() + 2 * (pages.ilog2() as usize + 1),
                "case {case}: {read} of {pages} pages read"
            );
        }
    }

    #[test]
    fn new_changed_and_removed_plugins_give_the_full_build_or_fall_back() {
        let mut dice = Dice(42);
        let before = registry(&mut dice, 300);
        let ids: Vec<PluginId> = before.keys().cloned().collect();
        let featured = vec![ids[3].clone(), ids[200].clone()];
        let (mut decided, mut fell_back) = (0, 0);
        for round in 0..10u64 {
            let mut changes = BTreeMap::new();
            let mut decidable = true;
            for _ in 0..1 + dice.next(3) {
                let id = &ids[dice.next(ids.len() as u64) as usize];
                let change = match dice.next(4) {
                    // New text and popularity: its postings move, maybe down from
                    // where the site shows them (then it cannot be decided).
                    0 => {
                        decidable = false;
                        let mut r = record(&mut dice, 5000 + round, "2.0.0", NOW);
                        r.summary.id = id.clone();
                        Some(super::super::record_of(r.summary, "kalomi newtext", before[id].created.clone(), 2))
                    }
                    1 if !featured.contains(id) => {
                        decidable = false;
                        None
                    }
                    _ => Some(bumped(&before[id], "1.0.1", NOW)),
                };
                changes.insert(id.clone(), change);
            }
            if dice.next(2) == 0 {
                let fresh = record(&mut dice, 10_000 + round, "0.1.0", NOW);
                changes.insert(fresh.summary.id.clone(), Some(fresh));
            }
            match check(&before, &changes, &featured) {
                Some(_) => decided += 1,
                None => {
                    assert!(!decidable, "round {round}: new releases and new plugins are always decided");
                    fell_back += 1;
                }
            }
        }
        assert!(decided > 0 && fell_back > 0, "{decided} decided, {fell_back} fell back: both paths are exercised");
    }

    #[test]
    fn a_plugin_leaving_a_full_head_list_falls_back() {
        let mut dice = Dice(7);
        let before = registry(&mut dice, 300);
        let published = Memory::of(super::super::documents(&before, &[]));
        let head = catalog::parse_head(&published.bytes[HEAD_TARGET], &generous()).unwrap();
        let leaving = head.updated[0].id.clone();
        let changes = BTreeMap::from([(leaving, None)]);
        assert!(Incremental::new(&published).update(&changes, &[], &[]).unwrap().is_none());
    }

    #[test]
    fn refuses_a_featured_plugin_the_catalog_does_not_list() {
        let mut dice = Dice(9);
        let before = registry(&mut dice, 50);
        let id = before.keys().next().unwrap().clone();
        let published = Memory::of(super::super::documents(&before, std::slice::from_ref(&id)));
        let changes = BTreeMap::from([(id.clone(), None)]);
        let error = Incremental::new(&published).update(&changes, &[id], &[]).unwrap_err().to_string();
        assert!(error.contains("featured.json features vendor") && error.contains("remove it"), "{error}");
    }

    /// The search shard layout of `records`' catalog, bound to it.
    fn layout_of(records: &BTreeMap<PluginId, CatalogRecord>, published: &Memory) -> ShardLayout {
        super::super::documents_and_layout(records, &[], &[]).1.bound_to(&published.entries)
    }

    /// Applies `changes` to `before` with the published shard `layout` and checks the
    /// update gives the full build's documents, and a layout that knows every key the
    /// full build splits with its exact size within the interval it keeps; returns the
    /// new layout (bound to the new catalog), the catalog after and how many search
    /// shards the update read.
    fn check_with_layout(
        before: &BTreeMap<PluginId, CatalogRecord>,
        changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
        layout: ShardLayout,
    ) -> Option<(ShardLayout, BTreeMap<PluginId, CatalogRecord>, usize)> {
        let published = Memory::of(super::super::documents(before, &[]));
        let after = applied(before, changes);
        let (full_documents, full_layout) = super::super::documents_and_layout(&after, &[], &[]);
        let full = Memory::of(full_documents);
        let counting = Counting(&published, Default::default());
        let update = Incremental::new(&counting).with_layout(layout).update(changes, &[], &[]).unwrap()?;
        assert_same_catalog(&update, &published, &full);
        let layout = update.layout.bound_to(&update.entries);
        if let Err(problem) = layout.covers(&full_layout) {
            panic!("the layout kept is not the full build's: {problem}");
        }
        let reads = counting.1.lock().unwrap().iter().filter(|t| t.starts_with("catalog/search-")).count();
        Some((layout, after, reads))
    }

    #[test]
    fn with_the_shard_layout_a_new_release_reads_only_the_shards_holding_its_terms() {
        let mut dice = Dice(0x5eed);
        let before = registry(&mut dice, 400);
        let published = Memory::of(super::super::documents(&before, &[]));
        let layout = layout_of(&before, &published);
        assert!(layout.len() > 0, "the registry is large enough for split shards");
        for pick in [0u64, 7, 300, 399] {
            let id: PluginId = format!("vendor{}.plugin{pick}", pick % 40).parse().unwrap();
            let changes = BTreeMap::from([(id.clone(), Some(bumped(&before[&id], "1.1.0", NOW)))]);
            let counting = Counting(&published, Default::default());
            Incremental::new(&counting).update(&changes, &[], &[]).unwrap().unwrap();
            let without = counting.1.lock().unwrap().iter().filter(|t| t.starts_with("catalog/search-")).count();
            let (_, _, with) = check_with_layout(&before, &changes, layout_of(&before, &published))
                .expect("a new release is decided from the published documents");
            let terms: BTreeSet<String> = before[&id].terms.keys().map(|t| catalog::shard_key(t)).collect();
            assert!(with < without, "{pick}: {with} shards read with the layout, {without} without");
            assert!(with <= before[&id].terms.len(), "{pick}: {with} shards read for {} terms", terms.len());
        }
    }

    #[test]
    fn a_new_release_carries_the_shards_not_showing_it_unparsed_and_only_compact_ones() {
        let mut dice = Dice(0x5eed);
        let before = registry(&mut dice, 400);
        let documents = super::super::documents(&before, &[]);
        let shows =
            |bytes: &[u8], id: &PluginId| String::from_utf8_lossy(bytes).contains(&format!("{{\"id\":\"{id}\""));
        for pick in [0u64, 7, 300, 399] {
            let id: PluginId = format!("vendor{}.plugin{pick}", pick % 40).parse().unwrap();
            let changes = BTreeMap::from([(id.clone(), Some(bumped(&before[&id], "1.1.0", NOW)))]);
            let published = Memory::of(documents.clone());
            let full = Memory::of(super::super::documents(&applied(&before, &changes), &[]));
            let counting = Counting(&published, Default::default());
            let layout = layout_of(&before, &published);
            let update = Incremental::new(&counting).with_layout(layout).update(&changes, &[], &[]).unwrap().unwrap();
            assert_same_catalog(&update, &published, &full);
            // With the layout (no split key in doubt), every shard read that does not show the plugin is carried (neither
            // redone nor dropped); those showing it are redone.
            let read: Vec<String> =
                counting.1.lock().unwrap().iter().filter(|t| t.starts_with("catalog/search-")).cloned().collect();
            let (showing, carried): (Vec<&String>, Vec<&String>) =
                read.iter().partition(|t| shows(&published.bytes[*t], &id));
            let written: BTreeSet<&String> = update.documents.iter().map(|(t, _)| t).collect();
            assert!(!showing.is_empty() && !carried.is_empty(), "{pick}: {showing:?} {carried:?}");
            assert!(showing.iter().all(|t| written.contains(t)), "{pick}: {showing:?} redone");
            assert!(carried.iter().all(|t| !written.contains(t)), "{pick}: {carried:?} carried");

            // The same shards re-spaced (and signed so): the plugin's summary is no
            // longer a compact `"id":"…"` member, so every shard read is parsed, and
            // the update is the full build's (compact shards, the new summary).
            let spaced: Vec<(String, Vec<u8>)> = documents
                .iter()
                .map(|(target, bytes)| match read.contains(target) {
                    true => {
                        let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                        (target.clone(), serde_json::to_vec_pretty(&value).unwrap())
                    }
                    false => (target.clone(), bytes.clone()),
                })
                .collect();
            let spaced = Memory::of(spaced);
            let layout = layout_of(&before, &spaced);
            let update = Incremental::new(&spaced).with_layout(layout).update(&changes, &[], &[]).unwrap().unwrap();
            assert_same_catalog(&update, &spaced, &full);
            let written: BTreeSet<&String> = update.documents.iter().map(|(t, _)| t).collect();
            assert!(read.iter().all(|t| written.contains(t)), "{pick}: every re-spaced shard redone");
        }
    }

    #[test]
    fn only_a_compact_id_member_outside_strings_shows_a_plugin() {
        let needles = [b"\"id\":\"acme.alarm\"".to_vec()];
        let none = |text: &str| super::super::shards::shows_none(text.as_bytes(), &needles);
        assert!(!none(r#"{"docs":[{"id":"acme.alarm","name":"Alarm"}]}"#));
        assert!(none(r#"{"docs":[{"id":"acme.alarms","name":"Alarm"}]}"#));
        assert!(none(r#"{"docs":[{"id":"acme.clock","summary":"\"id\":\"acme.alarm\" in text"}]}"#));
        assert!(none(r#"{"docs":[{"id":"acme.clock","summary":"quoted \\"},{"id":"x"}]}"#));
        assert!(!none(r#"{"docs": [{"id":"acme.clock"}]}"#), "whitespace between tokens: not compact");
        assert!(!none(r#"{"docs":[{"id": "acme.alarm"}]}"#));
        assert!(!none(r#"{"docs":[{"id":"acme.clock","name":"unterminated}]}"#));
    }

    #[test]
    fn a_layout_carried_over_many_builds_keeps_giving_the_full_build() {
        let mut dice = Dice(0xcafe);
        let mut catalog = registry(&mut dice, 500);
        let published = Memory::of(super::super::documents(&catalog, &[]));
        let mut layout = layout_of(&catalog, &published);
        let ids: Vec<PluginId> = catalog.keys().cloned().collect();
        let mut decided = 0;
        // 25 builds (each compared with a full build: ~2 s apiece in a debug build).
        for round in 0..25u64 {
            let mut changes = BTreeMap::new();
            for _ in 0..1 + dice.next(3) {
                let id = &ids[dice.next(ids.len() as u64) as usize];
                let Some(record) = catalog.get(id) else { continue };
                let mut record = bumped(record, &format!("1.{round}.1"), NOW);
                // Popularity moves postings up (and others out of a term's best 40).
                record.summary.downloads += dice.skewed(200_000);
                changes.insert(id.clone(), Some(record));
            }
            if dice.next(3) == 0 {
                let fresh = record(&mut dice, 20_000 + round, "0.1.0", NOW);
                changes.insert(fresh.summary.id.clone(), Some(fresh));
            }
            match check_with_layout(&catalog, &changes, layout) {
                Some((next, after, _)) => {
                    decided += 1;
                    layout = next;
                    catalog = after;
                }
                None => {
                    // Undecidable from the published shards: a full build, which
                    // measures every split key again.
                    for (id, change) in &changes {
                        if let Some(record) = change {
                            catalog.insert(id.clone(), record.clone());
                        }
                    }
                    let published = Memory::of(super::super::documents(&catalog, &[]));
                    layout = layout_of(&catalog, &published);
                }
            }
        }
        assert!(decided > 12, "{decided} of 25 rounds decided incrementally");
    }

    #[test]
    fn a_lost_stale_or_foreign_layout_costs_reads_never_a_wrong_shard() {
        let mut dice = Dice(0xbead);
        let before = registry(&mut dice, 400);
        let published = Memory::of(super::super::documents(&before, &[]));
        let id: PluginId = "vendor7.plugin7".parse().unwrap();
        let changes = BTreeMap::from([(id.clone(), Some(bumped(&before[&id], "1.1.0", NOW)))]);
        let (_, _, exact_reads) = check_with_layout(&before, &changes, layout_of(&before, &published)).unwrap();
        // Lost: every split key above a changed term is redone from all its shards.
        let (_, _, lost_reads) = check_with_layout(&before, &changes, ShardLayout::default()).unwrap();
        assert!(lost_reads > exact_reads, "{lost_reads} reads without a layout, {exact_reads} with");
        // Stale: the layout of the catalog before other changes (bound to shards the
        // site no longer lists) is not used where it differs.
        let mut older = before.clone();
        for other in older.values_mut().take(200) {
            other.summary.downloads += 1_000_000;
        }
        let older_published = Memory::of(super::super::documents(&older, &[]));
        let stale = layout_of(&older, &older_published);
        check_with_layout(&before, &changes, stale).unwrap();
        // Foreign or tampered: sizes that would keep every key split (or merge every
        // one) are bound to shards this site does not list.
        let dir = tempfile::tempdir().unwrap();
        layout_of(&before, &published).write(dir.path(), &older_published.entries).unwrap();
        let read = ShardLayout::read(dir.path());
        assert!(read.len() > 0);
        check_with_layout(&before, &changes, read).unwrap();
    }

    #[test]
    fn a_bucket_is_split_into_its_records_as_published_and_spliced_back_byte_for_byte() {
        let mut dice = Dice(0xb0b);
        let mut records = registry(&mut dice, 30);
        // A record whose text needs escapes (quotes, backslashes, braces in strings).
        let tricky = records.keys().nth(4).unwrap().clone();
        records.get_mut(&tricky).unwrap().summary.summary = r#"a "quoted" {brace} [x] back\slash"#.into();
        // Long text with quotes and escapes at every offset from a 16- or 32-byte
        // boundary (the scan jumps through text by SIMD search for `"` and `\`).
        let long = records.keys().nth(9).unwrap().clone();
        records.get_mut(&long).unwrap().summary.summary =
            (0..40).map(|n| format!("{}\"}}{}\\]", "t".repeat(n), "u".repeat(n % 17))).collect();
        let all: Vec<CatalogRecord> = records.values().cloned().collect();
        let (_, bytes) = super::super::bucket_bytes(3, all.clone());
        let split = split_records(&bytes).expect("a bucket as the builder writes it");
        assert_eq!(split.len(), all.len());
        for ((id, range), record) in split.iter().zip(&all) {
            assert_eq!((id, &bytes[range.clone()]), (&record.summary.id, super::super::serialize(record).as_slice()));
        }
        let published = Bucket::read("catalog/records-03.json", bytes.clone()).unwrap();
        assert!(published.parsed.is_empty(), "the builder's own bucket: scanned, not parsed");
        assert_eq!(published.splice(&BTreeMap::new()), bytes, "nothing changed: the same bytes");
        // One changed, one removed, one new (sorting between two published ones).
        let ids: Vec<PluginId> = records.keys().cloned().collect();
        let changed = bumped(&records[&ids[2]], "9.0.0", NOW);
        let mut fresh = record(&mut dice, 77, "0.1.0", NOW);
        fresh.summary.id = format!("{}a", ids[10]).parse().unwrap();
        let changes: BTreeMap<&PluginId, Option<&CatalogRecord>> =
            BTreeMap::from([(&ids[2], Some(&changed)), (&ids[7], None), (&fresh.summary.id, Some(&fresh))]);
        let mut after = records.clone();
        after.insert(ids[2].clone(), changed.clone());
        after.remove(&ids[7]);
        after.insert(fresh.summary.id.clone(), fresh.clone());
        let (_, expected) = super::super::bucket_bytes(3, after.into_values().collect());
        assert_eq!(published.splice(&changes), expected);
        assert_eq!(Bucket::default().splice(&BTreeMap::from([(&fresh.summary.id, Some(&fresh))])), {
            super::super::bucket_bytes(3, vec![fresh.clone()]).1
        });
        // A document not laid out as the builder writes it is parsed whole instead.
        for other in [&bytes[1..], b"{\"format\":1,\"records\":[{},]}".as_slice(), b"{}".as_slice()] {
            assert!(split_records(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
        let (first, second) = (&bytes[split[0].1.clone()], &bytes[split[1].1.clone()]);
        let swapped = [&bytes[..split[0].1.start], second, b",", first, &bytes[split[1].1.end..]].concat();
        assert!(split_records(&swapped).is_none(), "records out of order");
        let bucket = Bucket::read("catalog/records-03.json", swapped).unwrap();
        assert_eq!(bucket.parsed.len(), all.len(), "parsed whole");
        assert_eq!(bucket.splice(&BTreeMap::new()), bytes, "written again in order");
        // Not the bytes the role lists, even laid out as the builder writes buckets and
        // holding the same records (re-spaced), or with a record's summary edited:
        // refused by the reader, naming the bucket, never handed to `Bucket::read`.
        let spaced = String::from_utf8(bytes.clone()).unwrap().replacen("\"terms\":", "\"terms\": ", 3);
        assert!(split_records(spaced.as_bytes()).is_some(), "a layout the scan takes");
        let edited =
            String::from_utf8(bytes.clone()).unwrap().replacen("\"permissions\":[", "\"permissions\":[\"\",", 1);
        let target = "catalog/records-03.json";
        for altered in [spaced, edited] {
            let published = Memory {
                entries: BTreeMap::from([(target.to_owned(), (Sha256::of(&bytes), bytes.len() as u64))]),
                bytes: BTreeMap::from([(target.to_owned(), altered.clone().into_bytes())]),
            };
            let error = published.read(target).unwrap_err();
            let BuildError::CatalogAltered { target: named, actual, listed } = &error else { panic!("{error}") };
            assert_eq!(
                (named.as_str(), actual, listed),
                (target, &Sha256::of(altered.as_bytes()), &Sha256::of(&bytes))
            );
            assert!(error.to_string().contains("catalog/records-03.json is not the document the catalog role"));
        }
        // Refused, naming the bucket, when the strict parser refuses it.
        let doubled =
            String::from_utf8(bytes.clone()).unwrap().replacen("{\"summary\":", "{\"summary\":{},\"summary\":", 1);
        let error = Bucket::read("catalog/records-03.json", doubled.into_bytes()).err().unwrap();
        assert!(error.to_string().contains("records-03"), "{error}");
    }

    #[test]
    fn typo_shards_are_rewritten_only_where_a_terms_document_frequency_moves() {
        let mut dice = Dice(0x7e70);
        let before = registry(&mut dice, 300);
        let published = Memory::of(super::super::documents(&before, &[]));
        let typo_roots = |documents: &[(String, Vec<u8>)]| -> BTreeSet<String> {
            documents
                .iter()
                .filter_map(|(t, _)| t.strip_prefix("catalog/typo-")?.strip_suffix(".json"))
                .map(|key| catalog::typo_key_of(key, catalog::MIN_KEY))
                .collect()
        };
        // A new release of the same text moves no document frequency.
        let id = before.keys().nth(5).unwrap().clone();
        let same = BTreeMap::from([(id.clone(), Some(bumped(&before[&id], "1.1.0", NOW)))]);
        check(&before, &same, &[]).expect("decided");
        let update = Incremental::new(&published).update(&same, &[], &[]).unwrap().unwrap();
        assert!(typo_roots(&update.documents).is_empty(), "{:?}", typo_roots(&update.documents));

        // A brand-new plugin with a word no plugin has: the typo shards under the last
        // two characters of each of its terms, the new word listed once.
        let fresh = record(&mut dice, 9999, "0.1.0", NOW);
        let created = fresh.created.clone();
        let fresh = super::super::record_of(fresh.summary, "zyxwvut", created, 1);
        let changes = BTreeMap::from([(fresh.summary.id.clone(), Some(fresh.clone()))]);
        check(&before, &changes, &[]).expect("decided");
        let update = Incremental::new(&published).update(&changes, &[], &[]).unwrap().unwrap();
        let expected: BTreeSet<String> = fresh
            .terms
            .keys()
            .filter(|t| t.chars().count() >= catalog::MIN_TYPO_TERM)
            .map(|t| catalog::typo_key(t))
            .collect();
        assert_eq!(typo_roots(&update.documents), expected);
        let (_, bytes) = update.documents.iter().find(|(t, _)| t == "catalog/typo-ut.json").unwrap();
        let shard = catalog::parse_typo("ut", bytes, &CatalogLimits::default()).unwrap();
        assert_eq!(shard.terms.get("zyxwvut"), Some(&1));

        // Removing it again takes the word out (and the shard, when it was alone).
        let mut after = before.clone();
        after.insert(fresh.summary.id.clone(), fresh.clone());
        let published = Memory::of(super::super::documents(&after, &[]));
        let gone = BTreeMap::from([(fresh.summary.id.clone(), None)]);
        if let Some(update) = Incremental::new(&published).update(&gone, &[], &[]).unwrap() {
            let listed = update.entries.keys().filter(|t| t.starts_with("catalog/typo-")).count();
            let full = super::super::documents(&before, &[]);
            assert_eq!(listed, full.iter().filter(|(t, _)| t.starts_with("catalog/typo-")).count());
            assert!(!update.documents.iter().any(|(_, b)| String::from_utf8_lossy(b).contains("zyxwvut")));
        }
    }

    #[test]
    fn a_typo_shard_over_the_budget_splits_by_longer_suffixes_keeping_each_term_under_an_intact_key() {
        // 8,000 terms ending in "ck", of 4 to 9 characters.
        let letters = |mut n: usize, len: usize| -> String {
            let mut w: String = (0..len)
                .map(|_| {
                    let c = (b'a' + (n % 26) as u8) as char;
                    n /= 26;
                    c
                })
                .collect();
            w.push_str("ck");
            w
        };
        let words: Vec<String> = (0..8000).map(|n| letters(n * 7919, 2 + n % 6)).collect();
        let vocabulary: BTreeMap<&str, u32> = words.iter().map(|w| (w.as_str(), 1 + (w.len() as u32 % 5))).collect();
        let shards = super::super::typo_shards(vocabulary.iter().map(|(t, df)| (*t, *df)));
        assert!(shards.len() > 1, "split");
        let mut seen = BTreeMap::new();
        for (target, bytes) in &shards {
            let key = target.strip_prefix("catalog/typo-").unwrap().strip_suffix(".json").unwrap();
            let shard = catalog::parse_typo(key, bytes, &CatalogLimits::default()).unwrap();
            let length = key.chars().count();
            assert!(
                bytes.len() <= catalog::SHARD_BUDGET || shard.terms.keys().all(|t| t.chars().count() <= length + 2),
                "{target}: {} bytes, and splittable",
                bytes.len()
            );
            for (term, df) in shard.terms {
                // An edit in the first two characters keeps the last |t| − 2.
                assert!(length == catalog::MIN_KEY || length + 2 <= term.chars().count(), "{term} under {key}");
                assert!(seen.insert(term, df).is_none(), "each term in one typo shard");
            }
        }
        assert_eq!(seen.len(), vocabulary.len());
    }

    #[test]
    fn best_is_certain_only_when_unseen_entries_cannot_enter() {
        let order = |a: &u32, b: &u32| a.cmp(b);
        assert_eq!(best(vec![1, 3, 5, 2], Some(&5), 10, 3, order), Some(vec![1, 2, 3]));
        assert_eq!(best(vec![1, 3, 9], Some(&5), 10, 3, order), None, "an unseen entry could beat 9");
        assert_eq!(best(vec![1, 3, 5], Some(&5), 10, 3, order), Some(vec![1, 3, 5]), "5 itself was shown");
        assert_eq!(best(vec![1, 3, 9], Some(&5), 0, 3, order), Some(vec![1, 3, 9]));
        assert_eq!(best(vec![4], None, 2, 1, order), None);
    }

    #[test]
    fn an_altered_document_redoes_the_catalog_from_the_records_but_an_altered_record_bucket_is_refused() {
        // Each document an update reads, changed after signing (one byte more), is not
        // what the role lists: a head, shard or page is redone from the records
        // (`Ok(None)`); the changed plugin's record bucket, the only copy of its
        // neighbours' records, is refused naming it, whether read before the update
        // (`load`) or by it.
        let mut dice = Dice(0xa17e);
        let before = registry(&mut dice, 200);
        let documents = super::super::documents(&before, &[]);
        let id = before.keys().nth(17).unwrap().clone();
        let changes = BTreeMap::from([(id.clone(), Some(bumped(&before[&id], "9.9.9", NOW)))]);
        let clean = Memory::of(documents.clone());
        let counting = Counting(&clean, std::sync::Mutex::new(BTreeSet::new()));
        assert!(Incremental::new(&counting).update(&changes, &[], &[]).unwrap().is_some(), "decided incrementally");
        let read = counting.1.into_inner().unwrap();
        let bucket = catalog::records_target(catalog::record_bucket(&id));
        assert!(read.contains(&bucket) && read.contains(HEAD_TARGET), "{read:?}");
        let altered = |target: &str| {
            let mut published = Memory::of(documents.clone());
            published.bytes.get_mut(target).unwrap().push(b' ');
            published
        };
        let first = |prefix: &str| read.iter().find(|t| t.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}"));
        for target in [HEAD_TARGET, first("catalog/search-"), first("catalog/category-")] {
            let published = altered(target);
            assert!(Incremental::new(&published).update(&changes, &[], &[]).unwrap().is_none(), "{target}");
        }
        let published = altered(&bucket);
        let error = Incremental::new(&published).update(&changes, &[], &[]).unwrap_err();
        assert!(matches!(&error, BuildError::CatalogAltered { target, .. } if *target == bucket), "{error}");
        let error = Incremental::new(&published).load([&id]).unwrap_err();
        assert!(matches!(&error, BuildError::CatalogAltered { target, .. } if *target == bucket), "{error}");
    }
}
