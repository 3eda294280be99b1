//! The catalog: discovery documents derived from the plugins' newest releases.
//!
//! Owns turning plugins into [`CatalogRecord`]s ([`record`]: the result fields and the
//! weighted terms of the newest release that is not yanked, with the dates it was
//! first and last published carried over from the previous site) and records into
//! the documents of `trellis_schema::catalog` ([`documents`]): the head, the search
//! shards (the best [`POSTINGS_PER_TERM`] postings of each term, with the result
//! fields of the plugins they point at; a shard over the budget split by longer
//! term prefixes), the typo shards (the vocabulary with document frequencies, by a
//! term's last characters: `typo_shards`, why in `trellis_schema::catalog`), the
//! category and tag listings
//! ([`PAGE_SIZE`] a page) and the record buckets that let an incremental build redo
//! the catalog without loading every plugin.
//!
//! Every document depends only on the records it lists (impacts use a fixed
//! reference length, not the corpus mean), so adding one release changes the head,
//! the shards of the plugin's terms, the typo shards of the terms whose document
//! frequency it moves (none for a new release of the same text), its listings'
//! pages and one record bucket; the
//! writer skips files already in the site. An incremental build computes only
//! those, from the published documents (`incremental`; the search shards with the
//! sizes of the split keys kept beside the site, `shards`); [`documents`] computes
//! every document from every record. The documents are targets of the
//! `catalog` role ([`crate::tuf`] explains why); [`super::build`] plans that role.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use trellis_schema::PluginId;
use trellis_schema::catalog::{
    self, CATALOG_FORMAT, CatalogHead, CatalogRecord, Field, HEAD_LIST, HEAD_TARGET, ListingKind, ListingPage,
    ListingSize, PAGE_SIZE, POSTINGS_PER_TERM, PluginSummary, RECORD_BUCKETS, Rating, RecordBucket, SearchShard,
    TermPostings,
};

pub(super) mod figures;
mod incremental;
pub(super) mod shards;

pub(super) use incremental::SiteCatalog;
pub use incremental::{CatalogUpdate, Incremental, PublishedCatalog};
pub use shards::ShardLayout;

use super::BuildError;
use super::documents::{Content, TargetOut};
use super::plan::{Custom, PublishedRole};
use super::previous::PreviousSite;
use crate::release::PluginInput;
use crate::tuf::CATALOG_ROLE;

/// (plugin, impact, impact × popularity) of one term.
type Posting<'a> = (&'a PluginSummary, u32, f64);

/// A term's document frequency and its postings (best first once sorted; all of
/// them in a full build, the best [`POSTINGS_PER_TERM`] or more in an incremental one).
#[derive(Default)]
struct TermList<'a> {
    df: u32,
    postings: Vec<Posting<'a>>,
}

/// Term → postings, of one shard.
type ShardPostings<'a> = BTreeMap<&'a str, TermList<'a>>;

/// The weighted length BM25 normalises against (thousandths): a fixed reference,
/// so a plugin's impacts never change because other plugins were added.
pub const REFERENCE_LENGTH: u64 = 60_000;

/// The catalog record of `plugin`: its newest stable release that is not yanked (or
/// newest not yanked when it has no stable one); `None` when every release is yanked.
/// `previous` (the record the site published) gives the dates: `created` is kept,
/// `updated` is kept while the listed version is the same, else `now`. `rating` is
/// the plugin's, from its visible reviews.
pub fn record(
    plugin: &PluginInput,
    previous: Option<&CatalogRecord>,
    now: &str,
    rating: Option<Rating>,
) -> Option<CatalogRecord> {
    let live = plugin.releases.iter().filter(|r| !r.yanked);
    let newest = live
        .clone()
        .filter(|r| r.manifest.version.pre.is_empty())
        .max_by(|a, b| a.manifest.version.cmp(&b.manifest.version))
        .or_else(|| live.max_by(|a, b| a.manifest.version.cmp(&b.manifest.version)))?;
    let display = &newest.display;
    let version = newest.manifest.version.clone();
    let mut permissions: Vec<String> = newest.manifest.permissions.iter().map(|p| p.kind.to_string()).collect();
    permissions.sort();
    permissions.dedup();
    let slugs = |names: &[String]| -> Vec<String> {
        let mut out: Vec<String> = names.iter().filter(|n| is_slug(n)).cloned().collect();
        out.sort();
        out.dedup();
        out
    };
    let updated = match previous {
        Some(p) if p.summary.version == version => p.summary.updated.clone(),
        _ => now.to_owned(),
    };
    let summary = PluginSummary {
        id: plugin.id.clone(),
        name: newest.name.clone(),
        summary: display.summary.clone(),
        vendor: display.vendor.clone(),
        version,
        channel: newest.manifest.channel,
        host: newest.manifest.host.clone(),
        platforms: newest.manifest.platforms.clone(),
        pricing: display.pricing.model,
        permissions,
        categories: slugs(&display.categories),
        tags: slugs(&display.tags),
        rating,
        downloads: previous.map_or(0, |p| p.summary.downloads),
        recent_downloads: previous.map_or(0, |p| p.summary.recent_downloads),
        updated,
        icon: None,
    };
    let created = previous.map_or_else(|| now.to_owned(), |p| p.created.clone());
    let releases = plugin.releases.iter().filter(|r| !r.yanked).count() as u32;
    Some(record_of(summary, &display.description, created, releases))
}

/// The record of a plugin listed as `summary`, whose full description is
/// `description`: its weighted terms (id whole and split, name, tags, categories,
/// publisher, short and full description, each with its [`Field`] weight).
pub fn record_of(summary: PluginSummary, description: &str, created: String, releases: u32) -> CatalogRecord {
    let id = summary.id.as_str().to_owned();
    let mut terms: BTreeMap<String, u32> = BTreeMap::new();
    let mut length = 0u32;
    let mut add = |text: &str, field: Field| {
        for term in catalog::terms(text) {
            *terms.entry(term).or_default() += field.weight();
            length += field.weight();
        }
    };
    add(&id, Field::Id);
    add(&summary.name, Field::Name);
    for tag in &summary.tags {
        add(tag, Field::Tag);
    }
    for category in &summary.categories {
        add(category, Field::Category);
    }
    add(&summary.vendor, Field::Vendor);
    add(&summary.summary, Field::Summary);
    add(description, Field::Description);
    CatalogRecord { summary, created, releases, length, terms }
}

fn is_slug(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The records the previous site published (none for a first build), from the record
/// buckets whose bytes the catalog role signed ([`PublishedCatalog::read`]). A bucket
/// changed after signing is refused ([`BuildError::CatalogAltered`]) unless `full`: a
/// full build loads every plugin and carries only dates and download counts over, so
/// it skips that bucket (logged) and its plugins' dates start again.
pub(super) fn previous_records(
    previous: Option<&PreviousSite>,
    full: bool,
) -> Result<BTreeMap<PluginId, CatalogRecord>, BuildError> {
    let Some(previous) = previous else { return Ok(BTreeMap::new()) };
    let Some(role) = previous.published_role(CATALOG_ROLE)? else { return Ok(BTreeMap::new()) };
    let published = SiteCatalog::listing(previous, &role.entries);
    let buckets: Vec<&String> = role
        .entries
        .keys()
        .filter(|path| path.starts_with("catalog/records-") && !role.invalid.contains(*path))
        .collect();
    let parsed: Vec<Option<RecordBucket>> = buckets
        .par_iter()
        .map(|target| {
            let bytes = match published.read(target) {
                Ok(bytes) => bytes,
                Err(BuildError::CatalogAltered { target, actual, listed }) if full => {
                    tracing::warn!(
                        document = %target,
                        %actual,
                        %listed,
                        "published record bucket changed after it was signed; its records are not carried"
                    );
                    return Ok(None);
                }
                Err(error) => return Err(error),
            };
            catalog::parse_records(target, &bytes).map(Some).map_err(|e| BuildError::Site {
                path: crate::site::target_file(previous.dir(), target, &role.entries[*target].0),
                reason: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(parsed.into_iter().flatten().flat_map(|b| b.records).map(|r| (r.summary.id.clone(), r)).collect())
}

/// The `custom` members of the catalog role's entries: the head's facts
/// ([`catalog::HeadFacts`], what a search needs from the head, so a client need not
/// download it), from the head among `documents` (every build writes it), else as
/// the `published` role carries them.
pub(super) fn head_custom(documents: &[TargetOut], published: Option<&PublishedRole>) -> Result<Custom, BuildError> {
    let written = documents.iter().find(|d| d.target == HEAD_TARGET).and_then(|d| match &d.content {
        Some(Content::Bytes(bytes)) => Some(bytes),
        _ => None,
    });
    let custom = match written {
        Some(bytes) => {
            let head = catalog::parse_head(bytes, &incremental::generous())
                .map_err(|e| BuildError::Catalog(format!("the catalog head this build wrote cannot be read: {e}")))?;
            Some(catalog::HeadFacts::of(&head).to_custom())
        }
        None => published.and_then(|role| role.custom.get(HEAD_TARGET).cloned()),
    };
    Ok(custom.map(|custom| Custom::from([(HEAD_TARGET.to_owned(), custom)])).unwrap_or_default())
}

/// Refuses a featured id the catalog does not list.
pub(super) fn check_featured(
    featured: &[PluginId],
    records: &BTreeMap<PluginId, CatalogRecord>,
) -> Result<(), BuildError> {
    match featured.iter().find(|id| !records.contains_key(*id)) {
        Some(id) => Err(unknown_featured(id)),
        None => Ok(()),
    }
}

/// The error for a featured plugin the catalog does not list.
fn unknown_featured(id: &PluginId) -> BuildError {
    BuildError::Catalog(format!(
        "featured.json features {id}, which this registry does not list (no release, or every release yanked); \
         remove it from featured.json"
    ))
}

/// The order postings are kept in: impact × popularity, best first, then by id.
fn posting_order(a: &Posting<'_>, b: &Posting<'_>) -> Ordering {
    b.2.total_cmp(&a.2).then_with(|| a.0.id.cmp(&b.0.id))
}

/// The posting of a term counted `weighted` times in the record `summary` of weighted
/// length `length`.
fn posting(summary: &PluginSummary, weighted: u32, length: u32) -> Posting<'_> {
    let impact = catalog::impact(weighted, length, REFERENCE_LENGTH);
    (summary, impact, f64::from(impact) * catalog::popularity(summary))
}

/// The shard `key` of `terms` (each term's postings sorted best first), keeping at
/// most `keep` postings a term.
fn shard_bytes(key: &str, terms: &ShardPostings<'_>, keep: usize) -> Vec<u8> {
    shard_bytes_refs(key, terms, keep).0
}

/// [`shard_bytes`] and the most postings of the shard pointing at one plugin (what
/// [`shards::NodeSize::refs`] records of a split key).
fn shard_bytes_refs(key: &str, terms: &ShardPostings<'_>, keep: usize) -> (Vec<u8>, u32) {
    let mut docs: Vec<PluginSummary> = Vec::new();
    let mut refs: Vec<u32> = Vec::new();
    let mut slots: HashMap<&PluginId, u32> = HashMap::new();
    let mut shard_terms = BTreeMap::new();
    for (term, list) in terms {
        let kept = list
            .postings
            .iter()
            .take(keep)
            .map(|(summary, impact, _)| {
                let slot = *slots.entry(&summary.id).or_insert_with(|| {
                    docs.push((*summary).clone());
                    refs.push(0);
                    docs.len() as u32 - 1
                });
                refs[slot as usize] += 1;
                (slot, *impact)
            })
            .collect();
        shard_terms.insert((*term).to_owned(), TermPostings { df: list.df, postings: kept });
    }
    let bytes = serialize(&SearchShard { format: CATALOG_FORMAT, key: key.to_owned(), terms: shard_terms, docs });
    (bytes, refs.into_iter().max().unwrap_or(0))
}

/// Every shard of the terms whose shortest key is `root` (postings sorted best
/// first): see [`split_shard`]; the keys it split, with their sizes, go to `split`.
fn root_shards(
    root: String,
    terms: ShardPostings<'_>,
    split: &mut Vec<(String, shards::NodeSize)>,
) -> Vec<(String, Vec<u8>)> {
    split_shard(root, catalog::MIN_KEY, terms, split)
}

/// The shards of the terms under `key` (`length` characters): one shard when it fits
/// [`catalog::SHARD_BUDGET`]; else the terms longer than the key move to shards of
/// one more character, recursively up to [`catalog::MAX_KEY`]; a shard that still
/// does not fit keeps fewer postings a term (halved until it fits, at least one).
/// Each key split this way is pushed to `split` with the size of the one shard it
/// did not fit in (the incremental build's [`shards`] state).
fn split_shard(
    key: String,
    length: usize,
    terms: ShardPostings<'_>,
    split: &mut Vec<(String, shards::NodeSize)>,
) -> Vec<(String, Vec<u8>)> {
    let (bytes, refs) = shard_bytes_refs(&key, &terms, POSTINGS_PER_TERM);
    if bytes.len() <= catalog::SHARD_BUDGET {
        return vec![(catalog::shard_target(&key), bytes)];
    }
    if length < catalog::MAX_KEY {
        let (stay, deeper): (ShardPostings<'_>, ShardPostings<'_>) =
            terms.into_iter().partition(|(term, _)| term.chars().count() <= length);
        if !deeper.is_empty() {
            split.push((key.clone(), shards::NodeSize::exact(bytes.len() as u64, refs)));
        }
        let mut groups: BTreeMap<String, ShardPostings<'_>> = BTreeMap::new();
        for (term, list) in deeper {
            groups.entry(catalog::shard_key_of(term, length + 1)).or_default().insert(term, list);
        }
        let mut out = Vec::new();
        if !stay.is_empty() {
            out.push((catalog::shard_target(&key), fit(&key, &stay)));
        }
        for (child, group) in groups {
            out.extend(split_shard(child, length + 1, group, split));
        }
        return out;
    }
    vec![(catalog::shard_target(&key), fit(&key, &terms))]
}

/// Shard `key` of `terms` within the budget by keeping fewer postings a term.
fn fit(key: &str, terms: &ShardPostings<'_>) -> Vec<u8> {
    let mut keep = POSTINGS_PER_TERM;
    loop {
        let bytes = shard_bytes(key, terms, keep);
        if bytes.len() <= catalog::SHARD_BUDGET || keep == 1 {
            return bytes;
        }
        keep /= 2;
    }
}

/// Term → document frequency, of one typo shard.
type TypoTerms<'a> = BTreeMap<&'a str, u32>;

/// The typo shards of `vocabulary` (term → plugins whose text holds it, every term
/// of the catalog): the terms of [`catalog::MIN_TYPO_TERM`] characters or more,
/// grouped by their last two characters ([`catalog::typo_key`]) and split as
/// [`typo_root_shards`] says.
fn typo_shards<'a>(vocabulary: impl IntoIterator<Item = (&'a str, u32)>) -> Vec<(String, Vec<u8>)> {
    let mut roots: BTreeMap<String, TypoTerms<'a>> = BTreeMap::new();
    for (term, df) in vocabulary {
        if term.chars().count() >= catalog::MIN_TYPO_TERM {
            roots.entry(catalog::typo_key(term)).or_default().insert(term, df);
        }
    }
    roots.into_par_iter().flat_map_iter(|(root, terms)| typo_root_shards(root, terms)).collect()
}

/// Every typo shard of the terms whose shortest typo key is `root`: one shard when
/// it fits [`catalog::SHARD_BUDGET`]; else the terms more than two characters longer
/// than the key move to shards of one more character of suffix, recursively up to
/// [`catalog::MAX_KEY`]. A term so stays under a key of at most its length − 2
/// characters, which an edit in its first two characters leaves intact; the terms
/// that stay are at most 36² a key, so a shard that cannot split stays bounded.
fn typo_root_shards(root: String, terms: TypoTerms<'_>) -> Vec<(String, Vec<u8>)> {
    split_typo(root, catalog::MIN_KEY, terms)
}

fn split_typo(key: String, length: usize, terms: TypoTerms<'_>) -> Vec<(String, Vec<u8>)> {
    let bytes = typo_bytes(&key, &terms);
    if bytes.len() <= catalog::SHARD_BUDGET || length >= catalog::MAX_KEY {
        return vec![(catalog::typo_target(&key), bytes)];
    }
    let (stay, deeper): (TypoTerms<'_>, TypoTerms<'_>) =
        terms.into_iter().partition(|(term, _)| term.chars().count() <= length + 2);
    if deeper.is_empty() {
        return vec![(catalog::typo_target(&key), bytes)];
    }
    let mut groups: BTreeMap<String, TypoTerms<'_>> = BTreeMap::new();
    for (term, df) in deeper {
        groups.entry(catalog::typo_key_of(term, length + 1)).or_default().insert(term, df);
    }
    let mut out = Vec::new();
    if !stay.is_empty() {
        out.push((catalog::typo_target(&key), typo_bytes(&key, &stay)));
    }
    for (child, group) in groups {
        out.extend(split_typo(child, length + 1, group));
    }
    out
}

fn typo_bytes(key: &str, terms: &TypoTerms<'_>) -> Vec<u8> {
    let terms = terms.iter().map(|(term, df)| ((*term).to_owned(), *df)).collect();
    serialize(&catalog::TypoShard { format: CATALOG_FORMAT, key: key.to_owned(), terms })
}

fn serialize<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Catalog documents hold only strings, integers, lists and maps: serialisation
    // cannot fail, and serde_json writes struct fields and BTreeMaps in a fixed order.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The order of a listing: most downloaded first, then best rated, then by id.
fn listing_order(a: &PluginSummary, b: &PluginSummary) -> Ordering {
    b.downloads
        .cmp(&a.downloads)
        .then_with(|| b.rating.map(|r| r.tenths).cmp(&a.rating.map(|r| r.tenths)))
        .then_with(|| a.id.cmp(&b.id))
}

/// The pages of listing `kind` `name` of `members` (any order), pushed to `out`, and
/// its size as the head lists it.
fn listing_pages(
    kind: ListingKind,
    name: &str,
    mut members: Vec<&PluginSummary>,
    out: &mut Vec<(String, Vec<u8>)>,
) -> ListingSize {
    members.sort_by(|a, b| listing_order(a, b));
    let pages = members.len().div_ceil(PAGE_SIZE) as u32;
    for (index, chunk) in members.chunks(PAGE_SIZE).enumerate() {
        out.push(page_bytes(kind, name, index as u32 + 1, pages, members.len() as u32, chunk));
    }
    ListingSize { name: name.to_owned(), plugins: members.len() as u32, pages }
}

/// Page `page` of `pages` of listing `kind` `name` of `total` plugins, listing
/// `plugins` (sorted by [`listing_order`]).
fn page_bytes(
    kind: ListingKind,
    name: &str,
    page: u32,
    pages: u32,
    total: u32,
    plugins: &[&PluginSummary],
) -> (String, Vec<u8>) {
    let doc = ListingPage {
        format: CATALOG_FORMAT,
        kind,
        name: name.to_owned(),
        page,
        pages,
        total,
        plugins: plugins.iter().map(|s| (*s).clone()).collect(),
    };
    (catalog::page_target(kind, name, page), serialize(&doc))
}

/// Listing sizes as the head lists them: largest first, then by name.
fn sort_sizes(sizes: &mut [ListingSize]) {
    sizes.sort_by(|a, b| b.plugins.cmp(&a.plugins).then_with(|| a.name.cmp(&b.name)));
}

/// The [`HEAD_LIST`] best of `candidates` by `key`, latest first, then by id.
fn top<'a>(mut candidates: Vec<(&'a str, &'a PluginSummary)>) -> Vec<PluginSummary> {
    candidates.sort_by(|a, b| b.0.cmp(a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    candidates.into_iter().take(HEAD_LIST).map(|(_, s)| s.clone()).collect()
}

/// The head document; `generated` is the newest `updated` date (the first of
/// `updated`).
#[allow(clippy::too_many_arguments)]
fn head_bytes(
    plugins: u32,
    releases: u32,
    categories: Vec<ListingSize>,
    tags: Vec<ListingSize>,
    featured: Vec<PluginSummary>,
    trending: Vec<PluginSummary>,
    new: Vec<PluginSummary>,
    updated: Vec<PluginSummary>,
) -> Vec<u8> {
    let head = CatalogHead {
        format: CATALOG_FORMAT,
        generated: updated.first().map(|s| s.updated.clone()).unwrap_or_default(),
        plugins,
        releases,
        average_length: REFERENCE_LENGTH,
        categories,
        tags,
        featured,
        trending,
        new,
        updated,
    };
    serialize(&head)
}

/// Record bucket `bucket` of `records` (sorted by id).
fn bucket_bytes(bucket: u32, records: Vec<CatalogRecord>) -> (String, Vec<u8>) {
    (catalog::records_target(bucket), serialize(&RecordBucket { format: CATALOG_FORMAT, records }))
}

/// Every catalog document of `records` as (target path, bytes), sorted by path: the
/// head, the search and typo shards, the listings and the record buckets. `featured` is the
/// operator's list (checked by the caller).
pub fn documents(records: &BTreeMap<PluginId, CatalogRecord>, featured: &[PluginId]) -> Vec<(String, Vec<u8>)> {
    documents_with(records, featured, &[])
}

/// Sets every record's downloads from `figures` (0 for a plugin without any) and
/// returns the trending plugins the catalog lists, fastest growing first.
pub fn apply_downloads(
    records: &mut BTreeMap<PluginId, CatalogRecord>,
    figures: &crate::stats::CatalogFigures,
) -> Vec<PluginId> {
    for (id, record) in records.iter_mut() {
        let downloads = figures.of(id);
        record.summary.downloads = downloads.total;
        record.summary.recent_downloads = downloads.recent;
    }
    figures.trending.iter().filter(|id| records.contains_key(*id)).take(HEAD_LIST).cloned().collect()
}

/// [`documents`] with the head's `trending` list (ids of `records`, in order).
pub fn documents_with(
    records: &BTreeMap<PluginId, CatalogRecord>,
    featured: &[PluginId],
    trending: &[PluginId],
) -> Vec<(String, Vec<u8>)> {
    documents_and_layout(records, featured, trending).0
}

/// [`documents_with`] and the layout of its search shards: the size of every split
/// key's shard, which an incremental build needs to redo a split without reading
/// every shard under the key ([`ShardLayout`]).
pub fn documents_and_layout(
    records: &BTreeMap<PluginId, CatalogRecord>,
    featured: &[PluginId],
    trending: &[PluginId],
) -> (Vec<(String, Vec<u8>)>, ShardLayout) {
    let list: Vec<&CatalogRecord> = records.values().collect();
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();

    // Listings.
    let mut listings: BTreeMap<(ListingKind, &str), Vec<&PluginSummary>> = BTreeMap::new();
    for record in &list {
        for category in &record.summary.categories {
            listings.entry((ListingKind::Category, category)).or_default().push(&record.summary);
        }
        for tag in &record.summary.tags {
            listings.entry((ListingKind::Tag, tag)).or_default().push(&record.summary);
        }
    }
    // Each listing's pages on its own (thousands of listings, ~2,700 at 100k plugins).
    type Listed = (ListingKind, ListingSize, Vec<(String, Vec<u8>)>);
    let listed: Vec<Listed> = listings
        .into_par_iter()
        .map(|((kind, name), members)| {
            let mut pages = Vec::new();
            let size = listing_pages(kind, name, members, &mut pages);
            (kind, size, pages)
        })
        .collect();
    let mut sizes: BTreeMap<ListingKind, Vec<ListingSize>> = BTreeMap::new();
    for (kind, size, pages) in listed {
        out.extend(pages);
        sizes.entry(kind).or_default().push(size);
    }
    for sized in sizes.values_mut() {
        sort_sizes(sized);
    }

    // Head.
    out.push((
        HEAD_TARGET.to_owned(),
        head_bytes(
            list.len() as u32,
            list.iter().map(|r| r.releases).sum(),
            sizes.remove(&ListingKind::Category).unwrap_or_default(),
            sizes.remove(&ListingKind::Tag).unwrap_or_default(),
            featured.iter().filter_map(|id| records.get(id)).take(HEAD_LIST).map(|r| r.summary.clone()).collect(),
            trending.iter().filter_map(|id| records.get(id)).take(HEAD_LIST).map(|r| r.summary.clone()).collect(),
            top(list.iter().map(|r| (r.created.as_str(), &r.summary)).collect()),
            top(list.iter().map(|r| (r.summary.updated.as_str(), &r.summary)).collect()),
        ),
    ));

    // Search shards: term → every posting, grouped by the shortest key and split
    // further where a shard would be over the budget.
    let mut postings: HashMap<String, ShardPostings<'_>> = HashMap::new();
    for record in &list {
        for (term, weighted) in &record.terms {
            let list = postings.entry(catalog::shard_key(term)).or_default().entry(term).or_default();
            list.df += 1;
            list.postings.push(posting(&record.summary, *weighted, record.length));
        }
    }
    let vocabulary: Vec<(&str, u32)> =
        postings.values().flat_map(|terms| terms.iter().map(|(term, list)| (*term, list.df))).collect();
    out.extend(typo_shards(vocabulary));
    type RootShards = (Vec<(String, Vec<u8>)>, Vec<(String, shards::NodeSize)>);
    let shards: Vec<RootShards> = postings
        .into_par_iter()
        .map(|(root, mut terms)| {
            for list in terms.values_mut() {
                list.postings.sort_by(posting_order);
            }
            let mut split = Vec::new();
            (root_shards(root, terms, &mut split), split)
        })
        .collect();
    let mut split = Vec::new();
    for (documents, nodes) in shards {
        out.extend(documents);
        split.extend(nodes);
    }

    // Record buckets.
    let mut buckets: BTreeMap<u32, Vec<&CatalogRecord>> = (0..RECORD_BUCKETS).map(|b| (b, Vec::new())).collect();
    for record in list {
        buckets.entry(catalog::record_bucket(&record.summary.id)).or_default().push(record);
    }
    let buckets: Vec<(String, Vec<u8>)> = buckets
        .into_par_iter()
        .map(|(bucket, records)| bucket_bytes(bucket, records.into_iter().cloned().collect()))
        .collect();
    out.extend(buckets);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (out, ShardLayout::exact(split))
}

/// The reviews documents of `reviews` (each plugin's visible reviews): newest first,
/// then by author; the newest [`catalog::REVIEWS_PER_DOC`] that keep the document
/// under [`catalog::REVIEWS_BUDGET`] bytes.
pub fn reviews_documents(reviews: &BTreeMap<PluginId, Vec<catalog::PublishedReview>>) -> Vec<(String, Vec<u8>)> {
    reviews
        .iter()
        .map(|(id, list)| {
            let mut list = list.clone();
            list.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.author.cmp(&b.author)));
            let mut doc = catalog::PluginReviews {
                format: CATALOG_FORMAT,
                plugin: id.clone(),
                total: list.len() as u32,
                reviews: Vec::new(),
            };
            let mut size = serialize(&doc).len();
            for review in list.into_iter().take(catalog::REVIEWS_PER_DOC) {
                let more = serialize(&review).len() + 1;
                if size + more > catalog::REVIEWS_BUDGET {
                    break;
                }
                size += more;
                doc.reviews.push(review);
            }
            (catalog::reviews_target(id), serialize(&doc))
        })
        .collect()
}
