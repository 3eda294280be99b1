//! Catalog documents: what discovery (search, browse, featured, new) reads, built by
//! `trellis-index build` and signed as TUF targets under the `catalog` role.
//!
//! Owns the document types ([`CatalogHead`], [`SearchShard`], [`TypoShard`],
//! [`ListingPage`], [`RecordBucket`]), the head's facts its catalog role entry
//! carries ([`HeadFacts`]), their bounds ([`CatalogLimits`]) and strict
//! parsing ([`parse_head`], [`parse_shard`], [`parse_typo`], [`parse_page`],
//! [`parse_records`]), and the text rules both sides must agree on: how text becomes
//! terms ([`terms`]), which shard a term lives in ([`shard_key`]) and which typo shard
//! lists it ([`typo_key`]), the field weights and the BM25 term-frequency part of a
//! posting's impact ([`impact`]), and the bounded edit distance typo tolerance uses
//! ([`edit_distance`]). Query evaluation is the client's (`trellis_client::catalog`);
//! choosing and writing documents is the builder's.
//!
//! ## Typos in a term's first two characters
//!
//! Search shards are keyed by a term's first characters, so a typo there (`xlock`,
//! `lcock`, `colck` for `clock`) sends the query to another shard, where the term is
//! not. The typo shards are a second, small family keyed by a term's *last* two
//! characters: each lists the vocabulary (terms of [`MIN_TYPO_TERM`] characters or
//! more, with their document frequency, no postings) ending in its key. An edit in
//! the first two characters of a term `t` leaves every character after them in
//! place, so the query ends with `t`'s last `|t| − 2` characters, and for the terms
//! with a typo budget (`|t| ≥ 3`) that includes `t`'s last two:
//!
//! - substitution (`xlock`), transposition of the first two (`lcock`) or of the
//!   second and third (`colck`), deletion (`lock` → `clock` is an insertion seen
//!   from the query) and insertion (`cxlock`) within the first two characters all
//!   keep the key; so does any edit before the last two characters;
//! - an edit in the last two characters changes the key (`clocj`): those are
//!   found in the term's own search shard, whose key is intact; a term with edits
//!   both in its first two and in its last two characters (two edits, 8+
//!   characters) is found by neither and is missed.
//!
//! A client reads a query term's typo shard only when its own search shard does
//! not match it well (no exact, prefix or one-edit match) or when it has none, then
//! the search shard of the best typo match (fewest edits, then most plugins, then by
//! term).
//! A typo shard over [`SHARD_BUDGET`] is split by one more character of suffix, the
//! terms at most two characters longer than the key staying in it, so a term sits
//! under a key no longer than `|t| − 2` characters and an edit in its first two
//! characters keeps it.
//!
//! ## Requests of a query
//!
//! A search reads no head: what ranking needs from it (the plugin count, the `N` of
//! idf) is in the head's entry of the catalog role ([`HeadFacts`]), which the client
//! holds verified after the TUF chain, and that role lists every document, so the
//! client knows which shard keys exist without asking. A query reads, per term, its
//! own search shard (the longest key the role lists), and, round trip by round trip:
//!
//! 1. its own shards, with the typo shards of the terms with a typo budget that have
//!    no shard at all (`xlock`: no term starts with `xl`);
//! 2. the typo shards of the terms their own shard does not match well (`colck`:
//!    `search-co` holds no term near it);
//! 3. the search shards of the best typo matches (`search-cl` for `clock`).
//!
//! So an exact or prefix term costs one request, a mistyped start two (three when
//! the mistyped start names a shard of its own), in as many round trips; terms are
//! read side by side. A site whose head entry carries no facts (built before) costs
//! the head too, in the first round trip.
//!
//! Layout (target paths, all under the `catalog` role):
//!
//! ```text
//! catalog/head.json                       counts, categories and tags with sizes, featured, trending, new, updated
//! catalog/search-<key>.json               terms starting with <key> (2–64 characters) → postings + result fields
//! catalog/typo-<key>.json                 terms ending with <key> (2–64 characters) → document frequency
//! catalog/category-<name>-<page>.json     one page of a category listing (most downloaded first)
//! catalog/tag-<name>-<page>.json          one page of a tag listing
//! catalog/records-<bucket>.json           every plugin's catalog record (the builder's incremental state)
//! catalog/reviews-<plugin>.json           a plugin's visible reviews, newest first (text as Markdown data)
//! ```
//!
//! Numbers are integers (canonical JSON has no floats): impacts are thousandths,
//! ratings tenths of a star.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::PluginId;
use crate::plugin::{Channel, HostRequirement, Platform, PricingModel};

/// Format number of every catalog document.
pub const CATALOG_FORMAT: u32 = 1;
/// Target path of the head document.
pub const HEAD_TARGET: &str = "catalog/head.json";
/// Plugins per listing page.
pub const PAGE_SIZE: usize = 100;
/// Postings kept per term (the best by impact and popularity).
pub const POSTINGS_PER_TERM: usize = 40;
/// Number of record buckets (`catalog/records-<bucket>.json`, by the id's SHA-256).
pub const RECORD_BUCKETS: u32 = 64;
/// How many plugins the head lists as new, updated, featured or trending.
pub const HEAD_LIST: usize = 12;

/// BM25 `k1`, in thousandths.
const K1: u64 = 1200;
/// BM25 `b`, in thousandths.
const B: u64 = 750;

/// Target path of search shard `key`.
pub fn shard_target(key: &str) -> String {
    format!("catalog/search-{key}.json")
}

/// Target path of typo shard `key`.
pub fn typo_target(key: &str) -> String {
    format!("catalog/typo-{key}.json")
}

/// Target path of page `page` (from 1) of a listing.
pub fn page_target(kind: ListingKind, name: &str, page: u32) -> String {
    format!("catalog/{}-{name}-{page}.json", kind.as_str())
}

/// Target path of record bucket `bucket`.
pub fn records_target(bucket: u32) -> String {
    format!("catalog/records-{bucket:02x}.json")
}

/// The record bucket of plugin `id`.
pub fn record_bucket(id: &PluginId) -> u32 {
    let digest = crate::Sha256::of(id.as_str().as_bytes());
    u32::from(digest.as_bytes()[0]) % RECORD_BUCKETS
}

/// Size bounds a client holds catalog documents to (refused before parsing when
/// larger). The builder keeps well under them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogLimits {
    /// Bytes of the head document (default 256 KiB).
    pub head_bytes: u64,
    /// Bytes of one search shard (default 512 KiB).
    pub shard_bytes: u64,
    /// Bytes of one listing page (default 256 KiB).
    pub page_bytes: u64,
    /// Bytes of one typo shard (default 256 KiB).
    pub typo_bytes: u64,
}

impl Default for CatalogLimits {
    fn default() -> Self {
        Self { head_bytes: 256 * 1024, shard_bytes: 512 * 1024, page_bytes: 256 * 1024, typo_bytes: 256 * 1024 }
    }
}

/// A catalog document that is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    /// Larger than the client's bound.
    #[error("{target} is {length} bytes, over the limit of {limit} for catalog documents of this kind")]
    TooLarge {
        /// Target path.
        target: String,
        /// Its length.
        length: u64,
        /// The bound.
        limit: u64,
    },
    /// Not a document of this kind.
    #[error("{target}: {reason}")]
    Invalid {
        /// Target path.
        target: String,
        /// What is wrong.
        reason: String,
    },
}

/// A plugin's star rating, from reviews (absent until the registry has reviews).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    /// Mean stars in tenths (10–50).
    pub tenths: u8,
    /// Number of reviews.
    pub count: u32,
    /// Reviews with 1, 2, 3, 4 and 5 stars (their sum is `count`).
    #[serde(default)]
    pub histogram: [u32; 5],
    /// Mean stars in tenths of the reviews of the last 90 days, when there are any:
    /// above `tenths` is rising.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_tenths: Option<u8>,
}

/// The fields a result list or a listing shows for one plugin (its newest release).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSummary {
    /// Plugin id.
    pub id: PluginId,
    /// Display name.
    pub name: String,
    /// Short description.
    pub summary: String,
    /// Publisher's display name.
    pub vendor: String,
    /// Newest release that is not yanked.
    pub version: semver::Version,
    /// Its channel.
    pub channel: Channel,
    /// Its host requirement.
    pub host: HostRequirement,
    /// Its platforms.
    pub platforms: Vec<Platform>,
    /// Pricing model.
    pub pricing: PricingModel,
    /// Permission types it requests (`network`, `filesystem`, …), sorted, once each.
    pub permissions: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Star rating, when reviews exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    /// Package and delta downloads counted so far (0 until download statistics exist).
    #[serde(default)]
    pub downloads: u64,
    /// Those of the last 30 days, up to the build's day (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recent_downloads: u64,
    /// When its newest release was first published (RFC 3339).
    pub updated: String,
    /// Its icon as the storefront serves it: `images/<sha256>.<png|jpg>`, the SHA-256
    /// of the image's bytes (so a reader can check what it fetched); absent when the
    /// package has no icon or the build did not read it.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "icon_path")]
    pub icon: Option<String>,
}

/// Whether `path` is an icon path a summary may carry: `images/` then 64 lowercase
/// hex digits then `.png` or `.jpg` (nothing a page could turn into another URL).
pub fn is_icon_path(path: &str) -> bool {
    let Some(name) = path.strip_prefix("images/") else { return false };
    let Some(digest) = name.strip_suffix(".png").or_else(|| name.strip_suffix(".jpg")) else { return false };
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn icon_path<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let path = Option::<String>::deserialize(deserializer)?;
    match path {
        Some(path) if !is_icon_path(&path) => {
            Err(serde::de::Error::custom(format!("icon {path:?} is not images/<sha256>.png or .jpg")))
        }
        path => Ok(path),
    }
}

/// A listing's name and size, as the head lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingSize {
    /// Category or tag.
    pub name: String,
    /// Plugins in it.
    pub plugins: u32,
    /// Pages of [`PAGE_SIZE`].
    pub pages: u32,
}

/// `catalog/head.json`: the small document every discovery screen starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogHead {
    /// [`CATALOG_FORMAT`].
    pub format: u32,
    /// When the catalog was built (RFC 3339).
    pub generated: String,
    /// Plugins in the catalog (the `N` of the relevance formula).
    pub plugins: u32,
    /// Releases indexed.
    pub releases: u32,
    /// Mean weighted document length, the builder's BM25 normalisation (thousandths).
    pub average_length: u64,
    /// Categories, largest first.
    pub categories: Vec<ListingSize>,
    /// Tags, largest first.
    pub tags: Vec<ListingSize>,
    /// Curated by the operator (`featured.json` of the registry source).
    pub featured: Vec<PluginSummary>,
    /// Growing fastest: downloads of the last 7 days against the 21 before, at least
    /// 5 in the window, ties by volume then id (empty until download statistics exist;
    /// `trellis_index::stats::figures` has the formula).
    pub trending: Vec<PluginSummary>,
    /// Newest plugins.
    pub new: Vec<PluginSummary>,
    /// Most recently updated plugins.
    pub updated: Vec<PluginSummary>,
}

/// What a search needs from the head, published in the head's entry of the catalog
/// role (its TUF `custom` member, signed with the entry's length and hash): a client
/// holding the verified role ranks a query without downloading the head, so a cold
/// query reads only its shards (see the module docs, "Requests of a query"). Equal to
/// the head's own fields ([`HeadFacts::of`]); the signing job refuses an entry whose
/// facts are not exactly those of the head it lists. A site built before this entry
/// carried them has none ([`HeadFacts::from_custom`] says `None`) and a client reads
/// the head for them, as before; a client that does not know them ignores them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadFacts {
    /// The head's `plugins`: the `N` of the relevance formula.
    pub plugins: u32,
    /// The head's `generated`.
    pub generated: String,
}

impl HeadFacts {
    /// The facts of `head`.
    pub fn of(head: &CatalogHead) -> Self {
        Self { plugins: head.plugins, generated: head.generated.clone() }
    }

    /// The `custom` member of the head's entry in the catalog role.
    pub fn to_custom(&self) -> serde_json::Value {
        serde_json::json!({ "plugins": self.plugins, "generated": self.generated })
    }

    /// The facts in the `custom` member of the head's entry; `None` when there is none
    /// or it does not hold them (a site built before they were published, or by a
    /// builder writing other facts): the caller reads the head instead.
    pub fn from_custom(custom: Option<&serde_json::Value>) -> Option<Self> {
        serde::Deserialize::deserialize(custom?).ok()
    }
}

/// The postings of one term in a shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermPostings {
    /// Plugins whose text holds the term (all of them, also when `postings` is cut).
    pub df: u32,
    /// `[doc, impact]`: an index into the shard's `docs` and the field-weighted BM25
    /// term-frequency part (thousandths); the best [`POSTINGS_PER_TERM`] only.
    pub postings: Vec<(u32, u32)>,
}

/// `catalog/search-<key>.json`: every term starting with `key` (but those of a longer
/// key's shard, when the catalog has one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchShard {
    /// [`CATALOG_FORMAT`].
    pub format: u32,
    /// The shard key (see [`shard_key`]).
    pub key: String,
    /// Terms and postings.
    pub terms: BTreeMap<String, TermPostings>,
    /// The plugins the postings point at.
    pub docs: Vec<PluginSummary>,
}

/// `catalog/typo-<key>.json`: the vocabulary ending with `key` (see the module docs,
/// "Typos in a term's first two characters").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypoShard {
    /// [`CATALOG_FORMAT`].
    pub format: u32,
    /// The key: the last characters of every term listed ([`typo_key_of`]).
    pub key: String,
    /// Term → plugins whose text holds it (its `df` in its search shard).
    pub terms: BTreeMap<String, u32>,
}

/// What a listing groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListingKind {
    /// A category.
    Category,
    /// A tag.
    Tag,
}

impl ListingKind {
    /// `category` or `tag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::Tag => "tag",
        }
    }
}

/// One page of a category or tag listing, most downloaded (then best rated, then id) first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingPage {
    /// [`CATALOG_FORMAT`].
    pub format: u32,
    /// Category or tag.
    pub kind: ListingKind,
    /// Its name.
    pub name: String,
    /// This page, from 1.
    pub page: u32,
    /// Pages in the listing.
    pub pages: u32,
    /// Plugins in the listing.
    pub total: u32,
    /// This page's plugins.
    pub plugins: Vec<PluginSummary>,
}

/// A plugin's catalog record: its summary and its weighted terms. The builder keeps
/// them (`catalog/records-<bucket>.json`) so an incremental build can redo the
/// catalog without loading every plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRecord {
    /// Result fields.
    pub summary: PluginSummary,
    /// When the plugin's first release was published (RFC 3339).
    pub created: String,
    /// Releases that are not yanked.
    pub releases: u32,
    /// Weighted document length (sum of field weights × term counts).
    pub length: u32,
    /// Term → weighted count.
    pub terms: BTreeMap<String, u32>,
}

/// `catalog/records-<bucket>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBucket {
    /// [`CATALOG_FORMAT`].
    pub format: u32,
    /// Records, by id.
    pub records: Vec<CatalogRecord>,
}

/// Target path of the visible reviews of plugin `id`.
pub fn reviews_target(id: &PluginId) -> String {
    format!("catalog/reviews-{id}.json")
}

/// Most reviews a reviews document holds (the newest).
pub const REVIEWS_PER_DOC: usize = 100;
/// Bytes a reviews document stays under (the newest reviews that fit, at most
/// [`REVIEWS_PER_DOC`]); a client holds it to [`CatalogLimits::page_bytes`].
pub const REVIEWS_BUDGET: usize = 192 * 1024;

/// One visible review as the catalog publishes it. `text` is the author's Markdown
/// as data (checked by the builder: no raw HTML, no images); a storefront escapes
/// it or renders it with a Markdown renderer that drops HTML, never inserts it as HTML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedReview {
    /// GitHub login of the author.
    pub author: String,
    /// 1 to 5.
    pub stars: u8,
    /// The version reviewed.
    pub version: semver::Version,
    /// When it was written (`YYYY-MM-DD`).
    pub date: String,
    /// Markdown text.
    pub text: String,
}

/// `catalog/reviews-<plugin>.json`: a plugin's visible reviews, newest first (then
/// by author).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginReviews {
    /// [`CATALOG_FORMAT`].
    pub format: u32,
    /// The plugin.
    pub plugin: PluginId,
    /// Visible reviews in all (also those left out of `reviews`).
    pub total: u32,
    /// The newest reviews.
    pub reviews: Vec<PublishedReview>,
}

/// Parses a reviews document strictly, within `limits` (the page bound).
pub fn parse_reviews(id: &PluginId, bytes: &[u8], limits: &CatalogLimits) -> Result<PluginReviews, CatalogError> {
    let target = reviews_target(id);
    let doc: PluginReviews = parse(&target, bytes, limits.page_bytes)?;
    check_format(&target, doc.format)?;
    if doc.plugin != *id {
        return Err(CatalogError::Invalid { target, reason: format!("document is about {}", doc.plugin) });
    }
    Ok(doc)
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn parse<T: serde::de::DeserializeOwned>(target: &str, bytes: &[u8], limit: u64) -> Result<T, CatalogError> {
    let length = bytes.len() as u64;
    if length > limit {
        return Err(CatalogError::TooLarge { target: target.to_owned(), length, limit });
    }
    crate::json::from_slice(bytes)
        .map_err(|e| CatalogError::Invalid { target: target.to_owned(), reason: e.to_string() })
}

fn check_format(target: &str, format: u32) -> Result<(), CatalogError> {
    if format == CATALOG_FORMAT {
        Ok(())
    } else {
        Err(CatalogError::Invalid {
            target: target.to_owned(),
            reason: format!("catalog format {format}; this client reads format {CATALOG_FORMAT} (update the client)"),
        })
    }
}

/// Parses the head document strictly, within `limits`.
pub fn parse_head(bytes: &[u8], limits: &CatalogLimits) -> Result<CatalogHead, CatalogError> {
    let head: CatalogHead = parse(HEAD_TARGET, bytes, limits.head_bytes)?;
    check_format(HEAD_TARGET, head.format)?;
    Ok(head)
}

/// Parses search shard `key` strictly, within `limits`: every term must start with
/// the key and every posting point at one of the shard's docs.
pub fn parse_shard(key: &str, bytes: &[u8], limits: &CatalogLimits) -> Result<SearchShard, CatalogError> {
    let target = shard_target(key);
    let shard: SearchShard = parse(&target, bytes, limits.shard_bytes)?;
    check_format(&target, shard.format)?;
    let invalid = |reason: String| CatalogError::Invalid { target: target.clone(), reason };
    if shard.key != key {
        return Err(invalid(format!("shard says it is {:?}", shard.key)));
    }
    for (term, postings) in &shard.terms {
        if !shard_key_of(term, key.chars().count()).eq(key) {
            return Err(invalid(format!("term {term:?} does not belong in this shard")));
        }
        if let Some((doc, _)) = postings.postings.iter().find(|(doc, _)| *doc as usize >= shard.docs.len()) {
            return Err(invalid(format!("term {term:?} points at doc {doc}; the shard has {}", shard.docs.len())));
        }
    }
    Ok(shard)
}

/// Parses typo shard `key` strictly, within `limits`: every term must end with the
/// key, be at least [`MIN_TYPO_TERM`] characters long and be in some plugin.
pub fn parse_typo(key: &str, bytes: &[u8], limits: &CatalogLimits) -> Result<TypoShard, CatalogError> {
    let target = typo_target(key);
    let shard: TypoShard = parse(&target, bytes, limits.typo_bytes)?;
    check_format(&target, shard.format)?;
    let invalid = |reason: String| CatalogError::Invalid { target: target.clone(), reason };
    if shard.key != key {
        return Err(invalid(format!("typo shard says it is {:?}", shard.key)));
    }
    let length = key.chars().count();
    if !(MIN_KEY..=MAX_KEY).contains(&length) {
        return Err(invalid(format!("a typo key has {MIN_KEY} to {MAX_KEY} characters, not {length}")));
    }
    for (term, df) in &shard.terms {
        if term.chars().count() < MIN_TYPO_TERM || typo_key_of(term, length) != key {
            return Err(invalid(format!("term {term:?} does not belong in this typo shard")));
        }
        if *df == 0 {
            return Err(invalid(format!("term {term:?} is in no plugin (df 0)")));
        }
    }
    Ok(shard)
}

/// Parses a listing page strictly, within `limits`.
pub fn parse_page(target: &str, bytes: &[u8], limits: &CatalogLimits) -> Result<ListingPage, CatalogError> {
    let page: ListingPage = parse(target, bytes, limits.page_bytes)?;
    check_format(target, page.format)?;
    Ok(page)
}

/// Parses a record bucket (the builder's own state; no size bound).
pub fn parse_records(target: &str, bytes: &[u8]) -> Result<RecordBucket, CatalogError> {
    let bucket: RecordBucket = parse(target, bytes, u64::MAX)?;
    check_format(target, bucket.format)?;
    Ok(bucket)
}

/// The fields of a plugin's text and their weights in relevance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The whole id and its segments.
    Id,
    /// Display name.
    Name,
    /// Tags.
    Tag,
    /// Categories.
    Category,
    /// Publisher's display name.
    Vendor,
    /// Short description.
    Summary,
    /// Full description.
    Description,
}

impl Field {
    /// Weight of one occurrence of a term in this field.
    pub fn weight(self) -> u32 {
        match self {
            Self::Id => 8,
            Self::Name => 6,
            Self::Tag => 4,
            Self::Category => 3,
            Self::Vendor => 2,
            Self::Summary => 2,
            Self::Description => 1,
        }
    }
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "its", "of", "on", "or",
    "that", "the", "this", "to", "with", "your", "you",
];

/// The terms of `text`: NFKC, lower case, split at anything not alphanumeric, terms of
/// one character and common English stop words dropped, at most 64 characters each.
pub fn terms(text: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    let normal: String = text.nfkc().flat_map(char::to_lowercase).collect();
    normal
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 2 && !STOP_WORDS.contains(t))
        .map(|t| t.chars().take(64).collect())
        .collect()
}

/// The shortest shard key: a term's first two characters (see [`shard_key_of`]).
pub fn shard_key(term: &str) -> String {
    shard_key_of(term, MIN_KEY)
}

/// Characters of the shortest shard key. A shard over [`SHARD_BUDGET`] is split by
/// one more character (terms no longer than its key stay in it), up to
/// [`MAX_KEY`]; a client reads, for each term, the shard of the longest key the
/// catalog role lists.
pub const MIN_KEY: usize = 2;
/// Characters of the longest shard key: as long as a term may be, so only a shard of
/// terms its key cannot tell apart (one term, or terms differing only past the
/// ASCII letters and digits a key keeps) ever keeps fewer postings. That keeps every
/// shard a function of the best postings it shows, which an incremental build
/// relies on to redo a shard from the published one.
pub const MAX_KEY: usize = 64;
/// Bytes a search shard should stay under: split past it, and past [`MAX_KEY`] its
/// terms keep fewer postings.
pub const SHARD_BUDGET: usize = 48 * 1024;

/// The shard key of `term` of `length` characters: its first `length` characters,
/// each kept when it is an ASCII letter or digit and `_` otherwise (so keys are safe
/// file names).
pub fn shard_key_of(term: &str, length: usize) -> String {
    term.chars().take(length).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Shortest term the typo shards list: a query term of 4 characters (the fewest
/// with a typo budget) is one edit from terms of 3 characters and more.
pub const MIN_TYPO_TERM: usize = 3;

/// The shortest typo key: a term's last two characters (see [`typo_key_of`]).
pub fn typo_key(term: &str) -> String {
    typo_key_of(term, MIN_KEY)
}

/// The typo key of `term` of `length` characters: its last `length` characters
/// (all of it when shorter), each kept when it is an ASCII letter or digit and `_`
/// otherwise, as [`shard_key_of`] keeps them.
pub fn typo_key_of(term: &str, length: usize) -> String {
    let count = term.chars().count();
    term.chars().skip(count.saturating_sub(length)).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// The typo keys `term` may be looked up under, longest first.
pub fn typo_candidate_keys(term: &str) -> Vec<String> {
    let length = term.chars().count().min(MAX_KEY);
    (MIN_KEY..=length.max(MIN_KEY)).rev().map(|n| typo_key_of(term, n)).collect()
}

/// The shard keys `term` may live in, longest first.
pub fn candidate_keys(term: &str) -> Vec<String> {
    let length = term.chars().count().min(MAX_KEY);
    (MIN_KEY..=length.max(MIN_KEY)).rev().map(|n| shard_key_of(term, n)).collect()
}

/// The BM25 term-frequency part for a term counted `weighted` times (field weights
/// applied) in a plugin of weighted length `length`, with the catalog's mean length
/// `average` (thousandths), as thousandths.
pub fn impact(weighted: u32, length: u32, average: u64) -> u32 {
    let tf = u64::from(weighted) * 1000;
    let average = average.max(1);
    let norm = K1 * (1000 - B + B * u64::from(length) * 1000 / average) / 1000;
    let value = tf * (K1 + 1000) / (tf + norm).max(1);
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Popularity factor of ranking, shared by the builder (which postings a term keeps)
/// and the client (final order): `1 + 0.15·log10(1 + downloads)`, times
/// `1 + 0.05·(stars − 3)` when the plugin has a rating.
pub fn popularity(summary: &PluginSummary) -> f64 {
    let downloads = 1.0 + 0.15 * (1.0 + summary.downloads as f64).log10();
    let rating = summary.rating.map_or(1.0, |r| 1.0 + 0.05 * (f64::from(r.tenths) / 10.0 - 3.0));
    downloads * rating
}

/// How many edits a query term of `length` characters may be away from a match: 0
/// below 4 characters, 1 from 4, 2 from 8.
pub fn typo_budget(length: usize) -> usize {
    match length {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Optimal-string-alignment distance between `a` and `b` (an adjacent swap is one
/// edit), or `None` when it is over `max`.
pub fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    let mut rows = vec![vec![0usize; width]; a.len() + 1];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i][0] = i;
        let mut best = rows[i][0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut value = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                value = value.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = value;
            best = best.min(value);
        }
        if best > max {
            return None;
        }
    }
    let distance = rows[a.len()][b.len()];
    (distance <= max).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_fold_case_split_ids_and_drop_stop_words() {
        assert_eq!(terms("The Acme.Clock for your DESK"), ["acme", "clock", "desk"]);
        assert_eq!(terms("Ｃａｌｅｎｄａｒ sync"), ["calendar", "sync"]);
    }

    #[test]
    fn shard_keys_are_safe_names() {
        assert_eq!(shard_key("clock"), "cl");
        assert_eq!(shard_key("été"), "_t");
        assert_eq!(shard_key("x9"), "x9");
        assert_eq!(candidate_keys("markdown"), ["markdown", "markdow", "markdo", "markd", "mark", "mar", "ma"]);
        assert_eq!(candidate_keys("go"), ["go"]);
    }

    #[test]
    fn typo_keys_are_the_last_characters_and_survive_edits_in_the_first_two() {
        assert_eq!(typo_key("clock"), "ck");
        assert_eq!(typo_key("café"), "f_");
        assert_eq!(typo_candidate_keys("clock"), ["clock", "lock", "ock", "ck"]);
        assert_eq!(typo_candidate_keys("go"), ["go"]);
        // Substitution, both transpositions, deletion and insertion in the first two
        // characters keep the key; an edit in the last two does not.
        for typo in ["xlock", "lcock", "colck", "lock", "cxlock"] {
            assert_eq!(typo_key(typo), typo_key("clock"), "{typo}");
        }
        assert_ne!(typo_key("clocj"), typo_key("clock"));
    }

    #[test]
    fn typo_shard_parse_refuses_a_term_of_another_key_a_short_term_and_df_zero() {
        let shard = |terms: &str| format!(r#"{{"format":1,"key":"ck","terms":{{{terms}}}}}"#);
        let limits = CatalogLimits::default();
        let parsed = parse_typo("ck", shard(r#""block":3,"clock":9"#).as_bytes(), &limits).unwrap();
        assert_eq!(parsed.terms, BTreeMap::from([("block".into(), 3), ("clock".into(), 9)]));
        for (bad, says) in [
            (r#""cloud":1"#, "does not belong"),
            (r#""ck":1"#, "does not belong"),
            (r#""clock":0"#, "df 0"),
            (r#""clock":1,"extra":[1]"#, "cannot|invalid|expected"),
        ] {
            let error = parse_typo("ck", shard(bad).as_bytes(), &limits).unwrap_err().to_string();
            assert!(says.split('|').any(|s| error.contains(s)) && error.contains("typo-ck"), "{bad}: {error}");
        }
        let error = parse_typo("ok", shard(r#""clock":1"#).as_bytes(), &limits).unwrap_err().to_string();
        assert!(error.contains("typo shard says it is"), "{error}");
        let error = parse_typo("ck", br#"{"format":1,"key":"ck","terms":{},"postings":[]}"#, &limits).unwrap_err();
        assert!(error.to_string().contains("postings"), "{error}");
        let small = CatalogLimits { typo_bytes: 10, ..CatalogLimits::default() };
        assert!(matches!(
            parse_typo("ck", shard(r#""clock":1"#).as_bytes(), &small),
            Err(CatalogError::TooLarge { .. })
        ));
    }

    #[test]
    fn head_facts_round_trip_through_the_custom_member_and_anything_else_is_none() {
        let facts = HeadFacts { plugins: 100_000, generated: "2026-12-01T00:00:00Z".into() };
        let custom = facts.to_custom();
        assert_eq!(
            crate::canonical::to_vec_of(&custom).unwrap(),
            br#"{"generated":"2026-12-01T00:00:00Z","plugins":100000}"#
        );
        assert_eq!(HeadFacts::from_custom(Some(&custom)), Some(facts));
        assert_eq!(HeadFacts::from_custom(None), None);
        for other in [
            serde_json::json!({"plugins": -1, "generated": ""}),
            serde_json::json!({"plugins": 3}),
            serde_json::json!({"plugins": "3", "generated": ""}),
            serde_json::json!("plugins"),
            serde_json::json!(null),
        ] {
            assert_eq!(HeadFacts::from_custom(Some(&other)), None, "{other}");
        }
    }

    #[test]
    fn edit_distance_counts_swaps_as_one_and_stops_at_max() {
        assert_eq!(edit_distance("clock", "clokc", 1), Some(1));
        assert_eq!(edit_distance("clock", "clok", 1), Some(1));
        assert_eq!(edit_distance("calendar", "calnedra", 2), Some(2));
        assert_eq!(edit_distance("clock", "block", 0), None);
        assert_eq!(edit_distance("clock", "cloud", 1), None);
    }

    #[test]
    fn typo_budget_follows_term_length() {
        assert_eq!(typo_budget(3), 0);
        assert_eq!(typo_budget(4), 1);
        assert_eq!(typo_budget(8), 2);
    }

    #[test]
    fn impact_grows_with_count_and_shrinks_with_length() {
        assert!(impact(8, 20, 20_000) > impact(1, 20, 20_000));
        assert!(impact(2, 10, 20_000) > impact(2, 80, 20_000));
    }

    #[test]
    fn shard_parse_refuses_postings_outside_the_shard_and_oversize() {
        let shard = SearchShard {
            format: CATALOG_FORMAT,
            key: "cl".into(),
            terms: BTreeMap::from([("clock".into(), TermPostings { df: 1, postings: vec![(3, 100)] })]),
            docs: vec![],
        };
        let bytes = serde_json::to_vec(&shard).unwrap();
        let error = parse_shard("cl", &bytes, &CatalogLimits::default()).unwrap_err();
        assert!(error.to_string().contains("points at doc 3"), "{error}");
        let small = CatalogLimits { shard_bytes: 10, ..CatalogLimits::default() };
        assert!(matches!(parse_shard("cl", &bytes, &small), Err(CatalogError::TooLarge { .. })));
        let error = parse_shard("ab", &bytes, &CatalogLimits::default()).unwrap_err();
        assert!(error.to_string().contains("shard says it is"), "{error}");
    }

    #[test]
    fn ratings_carry_their_histogram_and_trend_strictly_and_older_ratings_still_parse() {
        let doc = |rating: &str| {
            format!(
                r#"{{"format":1,"key":"cl","terms":{{"clock":{{"df":1,"postings":[[0,900]]}}}},"docs":[{{"id":"acme.clock","name":"Clock","summary":"","vendor":"Acme","version":"1.0.0","channel":"stable","host":{{"id":"demo-host","api_version_requirement":"^1"}},"platforms":["any"],"pricing":"free","permissions":[],"categories":[],"tags":[],"rating":{rating},"downloads":7,"recent_downloads":3,"updated":"2026-11-01T00:00:00Z"}}]}}"#
            )
        };
        let limits = CatalogLimits::default();
        let shard = parse_shard(
            "cl",
            doc(r#"{"tenths":45,"count":2,"histogram":[0,0,0,1,1],"recent_tenths":50}"#).as_bytes(),
            &limits,
        )
        .unwrap();
        let summary = &shard.docs[0];
        assert_eq!(
            summary.rating,
            Some(Rating { tenths: 45, count: 2, histogram: [0, 0, 0, 1, 1], recent_tenths: Some(50) })
        );
        assert_eq!((summary.downloads, summary.recent_downloads), (7, 3));
        let round = serde_json::to_vec(&shard).unwrap();
        assert_eq!(parse_shard("cl", &round, &limits).unwrap(), shard);

        let older = parse_shard("cl", doc(r#"{"tenths":45,"count":2}"#).as_bytes(), &limits).unwrap();
        assert_eq!(older.docs[0].rating, Some(Rating { tenths: 45, count: 2, histogram: [0; 5], recent_tenths: None }));
        let error =
            parse_shard("cl", doc(r#"{"tenths":45,"count":2,"histogram":[1,1]}"#).as_bytes(), &limits).unwrap_err();
        assert!(error.to_string().contains("cl"), "{error}");
        assert!(parse_shard("cl", doc(r#"{"tenths":45,"count":2,"stars":[]}"#).as_bytes(), &limits).is_err());
    }

    #[test]
    fn a_summary_carries_its_icon_path_and_refuses_one_that_is_not_a_content_addressed_image() {
        let doc = |icon: &str| {
            format!(
                r#"{{"format":1,"key":"cl","terms":{{}},"docs":[{{"id":"acme.clock","name":"Clock","summary":"","vendor":"Acme","version":"1.0.0","channel":"stable","host":{{"id":"demo-host","api_version_requirement":"^1"}},"platforms":["any"],"pricing":"free","permissions":[],"categories":[],"tags":[],"updated":"2026-11-01T00:00:00Z"{icon}}}]}}"#
            )
        };
        let limits = CatalogLimits::default();
        let png = format!("images/{}.png", "ab".repeat(32));
        let shard = parse_shard("cl", doc(&format!(r#","icon":"{png}""#)).as_bytes(), &limits).unwrap();
        assert_eq!(shard.docs[0].icon.as_deref(), Some(png.as_str()));
        let without = parse_shard("cl", doc("").as_bytes(), &limits).unwrap();
        assert_eq!(without.docs[0].icon, None);
        assert!(!String::from_utf8(serde_json::to_vec(&without).unwrap()).unwrap().contains("icon"));
        for bad in [
            "javascript:alert(1)",
            "https://tracker.example/i.png",
            "images/../index.html",
            "images/abc.png",
            &format!("images/{}.svg", "ab".repeat(32)),
            &format!("images/{}.png", "AB".repeat(32)),
        ] {
            let error = parse_shard("cl", doc(&format!(r#","icon":"{bad}""#)).as_bytes(), &limits).unwrap_err();
            assert!(error.to_string().contains("is not images/<sha256>"), "{bad}: {error}");
        }
    }
}
