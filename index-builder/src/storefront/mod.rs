//! The static storefront: HTML pages beside the signed site, rendered from minijinja
//! templates by `trellis-index build`.
//!
//! Owns the pages and their layout:
//!
//! ```text
//! index.html                          home: featured, trending, new, updated, categories
//! categories/index.html               every category and tag
//! categories/<name>/[<page>/]index.html   a category listing (100 a page, as the catalog)
//! tags/<name>/[<page>/]index.html     a tag listing
//! plugins/<id>/index.html             a plugin page
//! publishers/<vendor>/index.html      a publisher's plugins
//! publishers/<vendor>/insights/index.html   its downloads over time and version adoption
//!                                     (only a publisher with a download in the window)
//! search/index.html, search/catalog.json   the search page; where the catalog head and shards are
//!                                     (search shards by key, typo shards as `typo-<key>`)
//! assets/<sha256>.<name>              stylesheet, search script, generic icon (content-addressed)
//! images/<sha256>.<png|jpg>           icons and screenshots from the packages (content-addressed)
//! _storefront/                        the storefront's state for incremental builds (not linked)
//! .storefront-staging/                new directories while they are written (gone after a build)
//! ```
//!
//! Pages live at human-readable paths (stable URLs on GitHub Pages) and name only
//! content-addressed assets. Data: the catalog documents the build just signed (head,
//! record buckets, listing pages, reviews documents: ratings, the stars histogram,
//! reviews and downloads are shown when the catalog has them) and, per plugin, what
//! [`page`] reads from its newest release's package. The search page's
//! script reads the same signed catalog shards the client reads and ranks with the
//! client's rules (a port of `trellis_client::catalog::rank`).
//!
//! Two steps around the build: [`prepare`] (before anything is written: reads the
//! changed plugins' packages, refuses an image that does not decode) and [`publish`]
//! (renders the pages whose inputs changed and writes only those whose bytes differ,
//! images first, pages next, state last, each file atomically). A refused storefront
//! therefore leaves the site as it was.
//!
//! `trellis-index build` runs the second step beside the build ([`build_and_publish`]):
//! the build hands over the levels and catalog documents it is about to publish, in
//! memory, as soon as each is computed ([`crate::build::Handoff`]); the storefront
//! compares the levels while the build makes its catalog, then renders from both
//! while the build writes the index docs, blobs and metadata (each side alone keeps
//! about one of two cores busy: creating files serialises in the kernel on each
//! directory's lock). The ordering that keeps a reader from seeing a page ahead of
//! its metadata:
//!
//! 1. every page is written where no reader looks: a directory the site lacks into
//!    `.storefront-staging/`, a replacement into `.storefront-staging/.replace/`; a
//!    file whose bytes the site has is left alone (it shows nothing new);
//! 2. the storefront then waits for the build: only once the build returned `Ok`
//!    (its timestamp, naming the catalog the pages were rendered from, is in place)
//!    and the caller's state after it is written does anything move: removals,
//!    replacements renamed, one barrier, staged directories renamed in, then the
//!    storefront's state;
//! 3. a build that fails, before or after the handover, moves nothing: the staging is
//!    cleared and the storefront stays what it was, consistent with the metadata the
//!    site still serves (a failure after the timestamp leaves new metadata with the
//!    older pages, as a crash between the two steps always could: the next build
//!    renders what its state says changed).
//!
//! Writing is most of a full build's cost (a page per plugin; what each page shows
//! beyond its catalog record is kept in 4,096 groups, `_storefront/pages/<xxx>.json`,
//! not a file a plugin), so a
//! directory the site does not have yet (all of them on a fresh site, a new plugin's
//! on an incremental one) is written whole into `.storefront-staging/` without a temp
//! file, a rename or a comparison per file, and renamed into place once durable: a
//! reader sees it complete or not at all, as it sees each file replaced in place.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use trellis_client::fs::FsError;
use trellis_schema::catalog::{self, CatalogHead, PluginSummary};
use trellis_schema::{PluginId, Sha256};

use crate::build::{self, BuildError, BuildInput, BuildReport, HandedDocuments, Handoff, PreviousSite, Signing};
use crate::release::PluginInput;
use crate::site;
use crate::tuf::{CATALOG_ROLE, SECURITY_ROLE};

pub mod insight;
mod levels;
pub mod page;
mod render;
mod write;

pub use insight::Insights;
pub use page::{PageData, PageLimits};
pub use render::Theme;

/// Directory of the registry source tree whose files replace the built-in theme's.
pub const THEME_DIR: &str = "storefront";

/// Directory of the storefront's own state inside the site.
pub const STATE_DIR: &str = "_storefront";

/// Why the storefront was not written. Nothing of it was written when one is returned
/// (except [`StorefrontError::Io`] while writing: then only whole files).
#[derive(Debug, thiserror::Error)]
pub enum StorefrontError {
    /// A release's package cannot be read.
    #[error("storefront: {release}: {reason}")]
    Package {
        /// `id version`.
        release: String,
        /// What is wrong.
        reason: String,
    },
    /// An icon or screenshot is refused.
    #[error(
        "storefront: {release}: image {path:?} is refused: {reason}; fix the file in the plugin and publish a new version"
    )]
    Image {
        /// `id version`.
        release: String,
        /// Path in the package.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A template does not compile or render.
    #[error("storefront: template {name}: {reason}")]
    Template {
        /// Template name.
        name: String,
        /// minijinja's message (with the line).
        reason: String,
    },
    /// The site's catalog cannot be read.
    #[error("storefront: the site's catalog: {0}")]
    Catalog(String),
    /// A published catalog or levels document is not the one its signed role lists
    /// (the site was changed after it was signed): its bytes are never rendered, as
    /// the build's own reader refuses them ([`BuildError::CatalogAltered`]).
    #[error(
        "storefront: {} is not the document its signed role lists (its SHA-256 is {actual}, the role lists {listed}): the site was changed after it was signed; a full build replaces it",
        path.display()
    )]
    Altered {
        /// The file in the site.
        path: std::path::PathBuf,
        /// The SHA-256 of the bytes the site has.
        actual: Sha256,
        /// The SHA-256 the role lists.
        listed: Sha256,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] FsError),
}

/// What [`prepare`] read from the changed plugins.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Page data by plugin (`None`: every release yanked, the page goes).
    pub pages: BTreeMap<PluginId, Option<PageData>>,
    /// Images the pages name.
    pub images: Vec<page::Image>,
}

impl Prepared {
    /// The icon of each plugin that has one, as its catalog summary names it.
    pub fn icons(&self) -> BTreeMap<PluginId, String> {
        self.pages.iter().filter_map(|(id, page)| Some((id.clone(), page.as_ref()?.icon.clone()?))).collect()
    }
}

/// Reads what the pages of `plugins` need from their packages; refuses an image that
/// does not decode (nothing is written).
pub fn prepare(plugins: &[PluginInput], limits: &PageLimits) -> Result<Prepared, StorefrontError> {
    let done: Vec<(PluginId, Option<page::Prepared>)> = plugins
        .par_iter()
        .map(|p| Ok((p.id.clone(), page::prepare(p, limits)?)))
        .collect::<Result<_, StorefrontError>>()?;
    let mut prepared = Prepared::default();
    for (id, data) in done {
        match data {
            Some((data, images)) => {
                prepared.images.extend(images);
                prepared.pages.insert(id, Some(data));
            }
            None => {
                prepared.pages.insert(id, None);
            }
        }
    }
    Ok(prepared)
}

/// What [`publish`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorefrontReport {
    /// Files written (relative to the site root), sorted.
    pub written: Vec<String>,
    /// Files removed (pages of plugins no longer listed), sorted.
    pub removed: Vec<String>,
    /// Pages rendered (written or found unchanged).
    pub rendered: usize,
    /// Wall time of each phase, milliseconds: `catalog` (the signed catalog and
    /// security roles and the catalog head), `read` (the state, the changed documents
    /// and levels: what changed), `render` (each page rendered and, when its bytes
    /// differ, written to the staging directory, in parallel), `durable` (the
    /// replacements renamed, the barrier, the staged directories moved into place),
    /// `state`.
    pub phases: Vec<(&'static str, u64)>,
}

/// Milliseconds since `since`, and restarts it.
fn lap(since: &mut std::time::Instant) -> u64 {
    let now = std::time::Instant::now();
    let millis = u64::try_from(now.duration_since(*since).as_millis()).unwrap_or(u64::MAX);
    *since = now;
    millis
}

/// What the storefront last rendered from (`_storefront/state.json`): the SHA-256 of
/// each catalog document its pages come from, so a build reads and renders only what
/// a changed document shows. The plugins' own digests live per record bucket
/// (`_storefront/records-<xx>.json`), the members of each publisher in
/// `_storefront/publishers/<vendor>.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    theme: String,
    /// Record bucket target → SHA-256 of the document rendered from.
    #[serde(default)]
    buckets: BTreeMap<String, String>,
    /// Listing page target → SHA-256.
    #[serde(default)]
    listings: BTreeMap<String, String>,
    /// Plugin → SHA-256 of its reviews document.
    #[serde(default)]
    reviews: BTreeMap<PluginId, String>,
    /// Publisher → how many listed plugins it has.
    #[serde(default)]
    vendors: BTreeMap<String, u32>,
    /// Publisher → digest of the statistics its insight page shows (publishers
    /// without a download in the window are not listed).
    #[serde(default)]
    insights: BTreeMap<String, String>,
    /// Levels bucket target → SHA-256 of the document rendered from.
    #[serde(default)]
    levels: BTreeMap<String, String>,
}

fn state_path(site_dir: &Path) -> std::path::PathBuf {
    site_dir.join(STATE_DIR).join("state.json")
}

/// What the storefront of the site at `site_dir` last rendered from (none when its
/// state is missing or unreadable: everything is rendered).
fn read_state(site_dir: &Path) -> State {
    std::fs::read(state_path(site_dir)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

/// How many groups the plugins' kept page data is split into (`_storefront/pages/<xxx>.json`,
/// by the first 12 bits of the SHA-256 of the id): ~25 plugins and ~16 KB a group at
/// 100k plugins, so a full build writes 4,096 files instead of one per plugin and a
/// one-release build rewrites one small group.
const PAGE_GROUPS: u16 = 4096;

/// The page data group of `id`.
fn page_group(id: &PluginId) -> u16 {
    hash_group(id.as_str(), PAGE_GROUPS)
}

/// The group of `key` among `groups` (a power of two from 2 to 2^15): the first
/// log2(`groups`) bits of the SHA-256 of `key`.
fn hash_group(key: &str, groups: u16) -> u16 {
    debug_assert!(groups.is_power_of_two() && groups >= 2);
    let digest = Sha256::of(key.as_bytes());
    let bytes = digest.as_bytes();
    u16::from_be_bytes([bytes[0], bytes[1]]) >> (16 - groups.trailing_zeros())
}

fn group_path(group: u16) -> String {
    format!("{STATE_DIR}/pages/{group:03x}.json")
}

/// Where an older trellis-index kept each plugin's page data, one file a plugin: a
/// storefront that still has it is rendered whole once, then the directory goes.
const OLD_DATA_DIR: &str = "plugins";

/// The page data of the plugins of one group (`_storefront/pages/<xxx>.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PageGroup {
    pages: BTreeMap<PluginId, PageData>,
}

/// The kept page data group `group`: `None` when the site has none or it does not
/// parse (its plugins are then read from their packages).
fn read_group(site_dir: &Path, group: u16) -> Option<PageGroup> {
    let bytes = std::fs::read(site_dir.join(group_path(group))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn bucket_state_path(bucket: u32) -> String {
    format!("{STATE_DIR}/records-{bucket:02x}.json")
}

/// How many groups the publishers' kept members and card levels are split into
/// (`_storefront/publisher-groups/<xxx>.json`, by the first 10 bits of the SHA-256 of
/// the vendor): ~12 publishers and ~40 KB a group at 100k plugins (12,231 publishers),
/// so a full build writes 1,024 files instead of one a publisher and a one-release
/// build rewrites one group.
const PUBLISHER_GROUPS: u16 = 1024;

/// The publisher group of `vendor`.
fn publisher_group(vendor: &str) -> u16 {
    hash_group(vendor, PUBLISHER_GROUPS)
}

fn publisher_group_path(group: u16) -> String {
    format!("{STATE_DIR}/publisher-groups/{group:03x}.json")
}

/// Where an older trellis-index kept each publisher, one file a publisher
/// (`_storefront/publishers/<vendor>.json`): a storefront that still has it is
/// rendered whole once, into the groups, then the directory goes.
const OLD_PUBLISHERS_DIR: &str = "publishers";

/// The kept data of the publishers of one group (`_storefront/publisher-groups/<xxx>.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PublisherGroup {
    publishers: BTreeMap<String, KeptPublisher>,
}

/// The publisher groups read so far, each read once: `None` for one that cannot be
/// read or does not parse (a group the site lacks has no publisher).
struct KeptPublishers<'s> {
    site_dir: &'s Path,
    groups: BTreeMap<u16, Option<PublisherGroup>>,
}

impl<'s> KeptPublishers<'s> {
    fn new(site_dir: &'s Path) -> Self {
        Self { site_dir, groups: BTreeMap::new() }
    }

    /// `vendor`'s kept data: `Err(())` when its group cannot be read, `Ok(None)` when
    /// the group does not list it.
    fn get(&mut self, vendor: &str) -> Result<Option<&KeptPublisher>, ()> {
        let group = publisher_group(vendor);
        let path = self.site_dir.join(publisher_group_path(group));
        let kept = self.groups.entry(group).or_insert_with(|| match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(PublisherGroup::default()),
            Err(_) => None,
        });
        Ok(kept.as_ref().ok_or(())?.publishers.get(vendor))
    }
}

/// A publisher's kept data as written: its members and its page's card levels.
#[derive(Serialize)]
struct KeptPublisherOut<'a> {
    members: &'a [PluginSummary],
    cards: Cow<'a, levels::PageCards>,
}

/// A [`PublisherGroup`] as written.
#[derive(Serialize)]
struct PublisherGroupOut<'a> {
    publishers: BTreeMap<&'a str, KeptPublisherOut<'a>>,
}

/// One publisher of a group to write: kept as it was, or of a page redone now.
enum PublisherEntry<'a> {
    Kept(&'a KeptPublisher),
    Redone(&'a [PluginSummary]),
}

/// A catalog document the site serves: its file in the site (with its SHA-256), and its
/// bytes when the build handed them over in memory ([`crate::build::Handoff`]).
#[derive(Clone, Debug)]
struct Document {
    file: TargetFile,
    bytes: Option<Arc<[u8]>>,
}

/// Where a target's file is in the site (`targets/<dir>/<sha256>.<name>`), spelled out
/// only when used: the catalog role lists ~18k documents at 300k plugins, and a
/// one-release build reads a few of them and names the search shards once.
#[derive(Clone, Debug)]
struct TargetFile {
    target: String,
    sha256: Sha256,
}

impl std::fmt::Display for TargetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (dir, name) = match self.target.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => ("", self.target.as_str()),
        };
        f.write_str(site::TARGETS_DIR)?;
        f.write_str("/")?;
        if !dir.is_empty() {
            f.write_str(dir)?;
            f.write_str("/")?;
        }
        write!(f, "{}.{name}", self.sha256)
    }
}

impl Serialize for TargetFile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Document {
    /// Its bytes: those the build handed over, else the site's file, which must have
    /// the SHA-256 its signed role lists ([`StorefrontError::Altered`] otherwise: no
    /// page shows content nobody signed).
    fn read(&self, site_dir: &Path) -> Result<Cow<'_, [u8]>, StorefrontError> {
        if let Some(bytes) = &self.bytes {
            return Ok(Cow::Borrowed(bytes));
        }
        let path = self.file.to_string();
        let bytes = read_file(site_dir, &path)?;
        let actual = Sha256::of(&bytes);
        if actual != self.file.sha256 {
            return Err(StorefrontError::Altered { path: site_dir.join(path), actual, listed: self.file.sha256 });
        }
        Ok(Cow::Owned(bytes))
    }

    /// [`Self::read`], as bytes to keep.
    fn read_shared(&self, site_dir: &Path) -> Result<Arc<[u8]>, StorefrontError> {
        match &self.bytes {
            Some(bytes) => Ok(Arc::clone(bytes)),
            None => self.read(site_dir).map(|bytes| Arc::from(bytes.into_owned())),
        }
    }
}

/// The catalog the site at `site_dir` serves, as its signed catalog role lists it:
/// the head (read), the other documents by target (read only when needed).
struct SiteCatalog {
    head: CatalogHead,
    head_path: String,
    shards: BTreeMap<String, TargetFile>,
    buckets: BTreeMap<u32, (String, Document)>,
    listings: BTreeMap<String, Document>,
    reviews: BTreeMap<PluginId, Document>,
    /// The security levels buckets (`security/levels-<xx>.json`) the security role lists.
    levels: levels::SiteBuckets,
}

fn read_file(site_dir: &Path, path: &str) -> Result<Vec<u8>, StorefrontError> {
    let full = site_dir.join(path);
    std::fs::read(&full).map_err(|e| StorefrontError::Io(FsError::new("reading", full, e)))
}

fn read_catalog(site_dir: &Path) -> Result<SiteCatalog, StorefrontError> {
    let fail = |e: String| StorefrontError::Catalog(e);
    let previous = PreviousSite::open(site_dir)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail(format!("{} has no published site; build it first", site_dir.display())))?;
    // Scanned as the build's planner reads it (its entries' paths and SHA-256), not
    // parsed whole: at 100k plugins the role lists thousands of documents.
    let role = previous
        .published_role(CATALOG_ROLE)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("the site has no catalog role; rebuild it with this trellis-index".into()))?;
    let catalog =
        role.entries.iter().filter(|(target, _)| !role.invalid.contains(*target)).map(|(t, (sha, _))| (t, *sha));
    // The levels buckets: a site without them (an older trellis-index) shows no level.
    let mut levels = Vec::new();
    if let Some(security) = previous.role(SECURITY_ROLE).map_err(|e| fail(e.to_string()))? {
        for (target, file) in &security.signed.targets {
            let Some(sha256) = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()) else { continue };
            levels.push((target.clone(), sha256));
        }
    }
    let levels = site_levels(levels.iter().map(|(t, sha)| (t, *sha)), &BTreeMap::new());
    site_catalog(site_dir, catalog, &BTreeMap::new(), levels)
}

/// The levels buckets a build is publishing, from what it handed over: the buckets it
/// made in memory, the others (carried over) read from the site, where they are published.
fn handed_levels(levels: &HandedDocuments) -> levels::SiteBuckets {
    site_levels(levels.entries.iter().map(|(t, (sha, _))| (t, *sha)), &levels.bytes)
}

/// The catalog a build is publishing, from what it handed over (as [`handed_levels`]).
fn handed_catalog(
    site_dir: &Path,
    catalog: &HandedDocuments,
    levels: levels::SiteBuckets,
) -> Result<SiteCatalog, StorefrontError> {
    site_catalog(site_dir, catalog.entries.iter().map(|(t, (sha, _))| (t, *sha)), &catalog.bytes, levels)
}

/// The document of `target`, with its bytes when they are in `bytes`.
fn document(target: &str, sha256: Sha256, bytes: &BTreeMap<String, Arc<[u8]>>) -> Document {
    Document { file: TargetFile { target: target.to_owned(), sha256 }, bytes: bytes.get(target).cloned() }
}

/// The security role's levels buckets among `levels` (other targets skipped), with the
/// bytes of those in `bytes`.
fn site_levels<'t>(
    levels: impl Iterator<Item = (&'t String, Sha256)>,
    bytes: &BTreeMap<String, Arc<[u8]>>,
) -> levels::SiteBuckets {
    let mut by_number = levels::SiteBuckets::new();
    for (target, sha256) in levels {
        let Some(number) = target
            .strip_prefix("security/levels-")
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| u8::from_str_radix(n, 16).ok())
        else {
            continue;
        };
        by_number.insert(number, (target.clone(), document(target, sha256, bytes)));
    }
    by_number
}

/// The [`SiteCatalog`] of the catalog role's entries `catalog` (other targets skipped),
/// with the bytes of those in `bytes`, and the security role's `levels` buckets.
fn site_catalog<'t>(
    site_dir: &Path,
    catalog: impl Iterator<Item = (&'t String, Sha256)>,
    bytes: &BTreeMap<String, Arc<[u8]>>,
    levels: levels::SiteBuckets,
) -> Result<SiteCatalog, StorefrontError> {
    let fail = |e: String| StorefrontError::Catalog(e);
    let document = |target: &String, sha256: Sha256| document(target, sha256, bytes);
    let mut head = None;
    let mut shards = BTreeMap::new();
    let mut buckets = BTreeMap::new();
    let mut listings = BTreeMap::new();
    let mut reviews = BTreeMap::new();
    for (target, sha256) in catalog {
        let Some(name) = target.strip_prefix("catalog/").and_then(|n| n.strip_suffix(".json")) else { continue };
        if target == catalog::HEAD_TARGET {
            head = Some(document(target, sha256));
        } else if let Some(key) = name.strip_prefix("search-") {
            shards.insert(key.to_owned(), TargetFile { target: target.clone(), sha256 });
        } else if name.starts_with("typo-") {
            // Under its name: a typo key never collides with a search shard key,
            // which has no `-`.
            shards.insert(name.to_owned(), TargetFile { target: target.clone(), sha256 });
        } else if let Some(bucket) = name.strip_prefix("records-") {
            let bucket = u32::from_str_radix(bucket, 16).map_err(|e| fail(format!("{target}: {e}")))?;
            buckets.insert(bucket, (target.clone(), document(target, sha256)));
        } else if let Some(id) = name.strip_prefix("reviews-") {
            let id: PluginId = id.parse().map_err(|e| fail(format!("{target}: {e}")))?;
            reviews.insert(id, document(target, sha256));
        } else if name.starts_with("category-") || name.starts_with("tag-") {
            listings.insert(target.clone(), document(target, sha256));
        }
    }
    let head = head.ok_or_else(|| fail("the catalog role lists no head.json".into()))?;
    let head_path = head.file.to_string();
    let head = catalog::parse_head(&head.read(site_dir)?, &catalog::CatalogLimits::default())
        .map_err(|e| fail(e.to_string()))?;
    Ok(SiteCatalog { head, head_path, shards, buckets, listings, reviews, levels })
}

/// What a plugin page shows from the catalog: its summary as published and its
/// reviews document. A bucket splices unchanged records' bytes as they were, so an
/// unchanged summary keeps its digest; and the builder writes a summary as serde
/// serializes it, so this is the digest an older trellis-index kept, of the decoded
/// summary serialized again.
fn record_digest(summary: &RawValue, reviews: Option<&Sha256>) -> Sha256 {
    let mut hasher = trellis_schema::digest::Hasher::new();
    hasher.update(summary.get().as_bytes());
    if let Some(reviews) = reviews {
        hasher.update(reviews.to_hex().as_bytes());
    }
    hasher.finish()
}

/// The reviews document of `id` the site serves, when it has one.
fn read_reviews(
    site_dir: &Path,
    id: &PluginId,
    reviews: &BTreeMap<PluginId, Document>,
) -> Result<Option<catalog::PluginReviews>, StorefrontError> {
    let Some(document) = reviews.get(id) else { return Ok(None) };
    catalog::parse_reviews(id, &document.read(site_dir)?, &catalog::CatalogLimits::default())
        .map(Some)
        .map_err(|e| StorefrontError::Catalog(e.to_string()))
}

/// The key of a listing page's kept cards: its catalog document's name
/// (`category-<name>-<page>`, `tag-<name>-<page>`).
fn listing_key(kind: catalog::ListingKind, name: &str, page: u32) -> String {
    format!("{}-{name}-{page}", kind.as_str())
}

/// The key of a publisher page's kept cards.
fn publisher_key(vendor: &str) -> String {
    format!("publisher-{vendor}")
}

/// `catalog/<kind>-<name>-<page>.json` → its storefront page.
fn listing_page_path(target: &str) -> Option<String> {
    let name = target.strip_prefix("catalog/")?.strip_suffix(".json")?;
    let (kind, rest) = match name.split_once('-')? {
        ("category", rest) => (catalog::ListingKind::Category, rest),
        ("tag", rest) => (catalog::ListingKind::Tag, rest),
        _ => return None,
    };
    let (name, page) = rest.rsplit_once('-')?;
    Some(render::listing_path(kind, name, page.parse().ok()?))
}

/// The summaries of a record bucket the build just wrote (the signed catalog role
/// lists it), each as its published bytes: the records' terms (most of their bytes)
/// are skipped, and no summary is decoded here.
fn bucket_summaries<'b>(target: &str, bytes: &'b [u8]) -> Result<Vec<&'b RawValue>, StorefrontError> {
    #[derive(Deserialize)]
    struct Record<'b> {
        #[serde(borrow)]
        summary: &'b RawValue,
    }
    #[derive(Deserialize)]
    struct Bucket<'b> {
        format: u32,
        #[serde(borrow)]
        records: Vec<Record<'b>>,
    }
    let bucket: Bucket<'b> =
        serde_json::from_slice(bytes).map_err(|e| StorefrontError::Catalog(format!("{target}: {e}")))?;
    if bucket.format != catalog::CATALOG_FORMAT {
        return Err(StorefrontError::Catalog(format!(
            "{target}: format {} is not {}",
            bucket.format,
            catalog::CATALOG_FORMAT
        )));
    }
    Ok(bucket.records.into_iter().map(|r| r.summary).collect())
}

/// The plugin a summary (as published) is of, without decoding the rest of it: the
/// builder writes the id first, so it is read there, else (another layout) from the
/// whole summary. Checked as a plugin id where it is made one.
fn summary_id<'s>(target: &str, summary: &'s RawValue) -> Result<Cow<'s, str>, StorefrontError> {
    let first = (summary.get().strip_prefix("{\"id\":\""))
        .and_then(|rest| rest.split_once('"'))
        .map(|(id, _)| id)
        .filter(|id| !id.contains('\\'));
    if let Some(id) = first {
        return Ok(Cow::Borrowed(id));
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Id>(summary.get())
        .map(|s| Cow::Owned(s.id))
        .map_err(|e| StorefrontError::Catalog(format!("{target}: a record's summary: {e}")))
}

fn decode_summary(target: &str, summary: &RawValue) -> Result<PluginSummary, StorefrontError> {
    serde_json::from_str(summary.get())
        .map_err(|e| StorefrontError::Catalog(format!("{target}: a record's summary: {e}")))
}

/// A record bucket's kept state: each plugin's record digest, by id.
fn bucket_state_bytes(digests: &[(String, Sha256)]) -> Vec<u8> {
    struct State<'d>(&'d [(String, Sha256)]);
    impl Serialize for State<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(id, digest)| (id, digest)))
        }
    }
    serde_json::to_vec(&State(digests)).unwrap_or_default()
}

/// What [`changes`] found in one record bucket.
struct BucketChanges {
    bucket: u32,
    /// The decoded summaries: the plugins whose page may be redone.
    summaries: Vec<PluginSummary>,
    /// Plugins whose record differs from the kept one, or that the bucket lost.
    changed: Vec<PluginId>,
    /// The new digest of each of its records, in the bucket's order (its kept state).
    digests: Vec<(String, Sha256)>,
}

/// Which plugins changed since the storefront last rendered, read from the record
/// buckets whose document changed (all of them when `everything`).
struct Changes {
    /// Current summaries of the plugins of the buckets read whose page may be redone:
    /// those changed, loaded or whose levels moved (every one when `everything`).
    records: BTreeMap<PluginId, PluginSummary>,
    /// Plugins whose page must be redone (or removed when not in `records`).
    changed: BTreeSet<PluginId>,
    /// The new digests of the buckets read.
    bucket_states: BTreeMap<u32, Vec<(String, Sha256)>>,
}

fn changes(
    site_dir: &Path,
    site: &SiteCatalog,
    old: &State,
    loaded: &BTreeSet<PluginId>,
    levels_moved: &BTreeSet<PluginId>,
    everything: bool,
) -> Result<Changes, StorefrontError> {
    // Buckets to read: documents that changed, and those of plugins whose reviews
    // changed or that the build loaded.
    let mut wanted: BTreeSet<u32> = site
        .buckets
        .iter()
        .filter(|(_, (target, doc))| everything || old.buckets.get(target) != Some(&doc.file.sha256.to_hex()))
        .map(|(bucket, _)| *bucket)
        .collect();
    let reviews_now: BTreeMap<&PluginId, String> =
        site.reviews.iter().map(|(id, d)| (id, d.file.sha256.to_hex())).collect();
    let reviews_changed = reviews_now
        .iter()
        .filter(|(id, sha)| old.reviews.get(**id) != Some(*sha))
        .map(|(id, _)| *id)
        .chain(old.reviews.keys().filter(|id| !reviews_now.contains_key(id)));
    wanted.extend(reviews_changed.chain(loaded).chain(levels_moved).map(catalog::record_bucket));
    // Each bucket's summaries as published, digested as they are: only those of the
    // plugins whose page is redone are decoded (every one when `everything`).
    let also_redone: HashSet<&str> = loaded.iter().chain(levels_moved).map(PluginId::as_str).collect();
    let reviews_of: HashMap<&str, &Sha256> = site.reviews.iter().map(|(id, d)| (id.as_str(), &d.file.sha256)).collect();
    let read: Vec<BucketChanges> = wanted
        .par_iter()
        .map(|bucket| {
            // The digests kept for it, as written (ids and hex digits), borrowed.
            let kept_bytes = match everything {
                true => None,
                false => std::fs::read(site_dir.join(bucket_state_path(*bucket))).ok(),
            };
            let mut kept: HashMap<&str, &str> =
                kept_bytes.as_deref().and_then(|bytes| serde_json::from_slice(bytes).ok()).unwrap_or_default();
            let gone = |kept: HashMap<&str, &str>| -> Vec<PluginId> {
                kept.into_keys().filter_map(|id| id.parse().ok()).collect()
            };
            let Some((target, doc)) = site.buckets.get(bucket) else {
                return Ok(BucketChanges {
                    bucket: *bucket,
                    summaries: Vec::new(),
                    changed: gone(kept),
                    digests: Vec::new(),
                });
            };
            let bytes = doc.read(site_dir)?;
            let summaries = bucket_summaries(target, &bytes)?;
            let mut out = BucketChanges {
                bucket: *bucket,
                summaries: Vec::new(),
                changed: Vec::new(),
                digests: Vec::with_capacity(summaries.len()),
            };
            for raw in summaries {
                let id = summary_id(target, raw)?;
                let reviews = reviews_of.get(id.as_ref()).copied();
                let digest = record_digest(raw, reviews);
                let same = kept.remove(id.as_ref()).and_then(|hex| hex.parse::<Sha256>().ok()) == Some(digest);
                let redone = everything || !same || also_redone.contains(id.as_ref());
                if redone {
                    let id: PluginId = id
                        .parse()
                        .map_err(|e| StorefrontError::Catalog(format!("{target}: a record's summary: {id:?}: {e}")))?;
                    let summary = decode_summary(target, raw)?;
                    if summary.id != id {
                        return Err(StorefrontError::Catalog(format!(
                            "{target}: the summary of {id} names {}",
                            summary.id
                        )));
                    }
                    if !same {
                        out.changed.push(id);
                    }
                    out.summaries.push(summary);
                }
                out.digests.push((id.into_owned(), digest));
            }
            out.changed.extend(gone(kept));
            Ok(out)
        })
        .collect::<Result<_, StorefrontError>>()?;
    let mut out = Changes { records: BTreeMap::new(), changed: loaded.clone(), bucket_states: BTreeMap::new() };
    for BucketChanges { bucket, summaries, changed, digests } in read {
        out.changed.extend(changed);
        out.records.extend(summaries.into_iter().map(|s| (s.id.clone(), s)));
        out.bucket_states.insert(bucket, digests);
    }
    // A plugin whose levels moved: its page, publisher page and cards show them.
    out.changed.extend(levels_moved.iter().filter(|id| out.records.contains_key(*id)).cloned());
    Ok(out)
}

/// Renders the storefront of the site at `site_dir` from the catalog it serves and
/// writes what changed (see the module doc), as `job` says ([`StorefrontJob`]).
///
/// Only what a changed catalog document shows is read and rendered: the record
/// buckets whose SHA-256 differs from the one the storefront last rendered (and those
/// of plugins whose reviews changed or that the build loaded), the listing pages whose
/// document differs, the publishers of the changed plugins; home, categories and
/// search always (four small pages); the insight pages of the changed publishers and
/// of those whose figures in `insights` moved (a publisher with no download in the
/// window has none, nor a link to one: its page is redone when that changes). A site
/// whose storefront state is missing, of another theme or layout, or whose publisher
/// data is incomplete is rendered whole.
///
/// Pages are written as they are rendered, where no reader of the site looks (the
/// staging directory), and moved into place only once every page rendered: a page
/// that fails to render refuses the storefront with the site's pages as they were
/// (the staging directory cleared).
pub fn publish(site_dir: &Path, job: StorefrontJob<'_>) -> Result<StorefrontReport, StorefrontError> {
    publish_cleared(site_dir, job, read_state(site_dir), None, &mut || Ok(()))
}

/// Reads the page data of the plugins named (opening their packages): for a plugin
/// whose catalog record changed without a new release and whose kept data is lost.
pub type LoadPages<'a> = dyn Fn(&BTreeSet<PluginId>) -> Result<Prepared, StorefrontError> + Sync + 'a;

/// What a storefront renders with, besides the site: [`publish`] and
/// [`build_and_publish`] take it. Taken by value: `prepared`'s page data moves into
/// the pages (at 100k plugins a full build's whole catalog of it).
pub struct StorefrontJob<'a> {
    /// The plugins the build changed, as [`prepare`] read them.
    pub prepared: Prepared,
    /// The theme the pages are rendered with.
    pub theme: &'a Theme,
    /// The publishers' download figures (their insight pages).
    pub insights: &'a Insights,
    /// Page data of a plugin whose catalog record changed without a new release, when
    /// the data kept in `_storefront/` is lost.
    pub load: &'a LoadPages<'a>,
}

/// What [`build_and_publish`] did: the build's report and the storefront's outcome.
#[derive(Debug)]
pub struct Built {
    /// The site build's report.
    pub build: BuildReport,
    /// The storefront's report, or why it was refused (the site is published then, and
    /// the storefront's pages are as they were).
    pub storefront: Result<StorefrontReport, StorefrontError>,
}

/// Builds the site ([`build::build_handing_off`]) and its storefront at once: the
/// storefront renders, on a pool of its own, from the levels and catalog documents the
/// build hands over in memory ([`Handoff`]: no document read back from the disk the
/// build is writing), comparing the levels while the build makes the catalog, and
/// rendering while the build writes the index docs, blobs and metadata.
/// Each of the two keeps about one core busy (file creation serialises on the
/// directories' locks in the kernel), so on two cores they overlap.
///
/// Ordering: every page is written where no reader looks (new directories staged
/// under `.storefront-staging/`, replacements under its `.replace/`), and nothing is
/// moved into place, removed or recorded as rendered until the build returned `Ok`
/// **and** `after_build` (the caller's own state after the timestamp) succeeded: by
/// then the timestamp naming the catalog the pages show is published, so a reader
/// never sees a page ahead of its metadata. A build that fails after the handover
/// leaves the storefront as it was (its staging cleared) and returns the build's
/// error; a storefront that fails leaves the published site and returns in
/// [`Built::storefront`].
pub fn build_and_publish(
    input: BuildInput,
    site_dir: &Path,
    signing: Signing,
    job: StorefrontJob<'_>,
    after_build: impl FnOnce(&BuildReport) -> Result<(), BuildError>,
) -> Result<Built, BuildError> {
    let gave_up = || StorefrontError::Catalog("the build failed: no storefront page was published".into());
    std::thread::scope(|scope| {
        let (handoff_tx, handoff_rx) = std::sync::mpsc::channel::<Handoff>();
        let (published_tx, published_rx) = std::sync::mpsc::channel::<bool>();
        let storefront = std::thread::Builder::new()
            .name("storefront".into())
            .spawn_scoped(scope, move || -> Result<StorefrontReport, StorefrontError> {
                // What does not depend on the new catalog, while the build makes it:
                // the storefront's state (1.2 MB at 300k plugins, ~11 ms to parse; only
                // the storefront writes it) and its threads.
                let old = read_state(site_dir);
                // A pool of its own: the build's workers block in the kernel writing
                // files as the storefront's do, and neither side waits for the other's.
                let pool = rayon::ThreadPoolBuilder::new()
                    .thread_name(|i| format!("storefront-{i}"))
                    .build()
                    .map_err(|e| StorefrontError::Catalog(format!("starting the storefront's threads: {e}")))?;
                // The levels first: compared while the build makes the catalog.
                let Ok(Handoff::Levels(levels)) = handoff_rx.recv() else { return Err(gave_up()) };
                let levels = handed_levels(&levels);
                let whole = renders_whole(site_dir, &old, job.theme);
                let level_changes = (whole, pool.install(|| levels::changes(site_dir, &levels, &old.levels, whole)));
                let Ok(Handoff::Catalog(catalog)) = handoff_rx.recv() else { return Err(gave_up()) };
                let handed = Handed { catalog, levels, level_changes };
                let mut published = move || match published_rx.recv() {
                    Ok(true) => Ok(()),
                    _ => Err(gave_up()),
                };
                pool.install(|| publish_cleared(site_dir, job, old, Some(handed), &mut published))
            })
            .map_err(|e| FsError::new("starting the storefront's thread", site_dir, e))?;
        let built = build::build_handing_off(input, site_dir, signing, &mut |handoff| {
            // A storefront that already gave up has dropped its end: nothing to do.
            let _ = handoff_tx.send(handoff);
        });
        drop(handoff_tx);
        let built = built.and_then(|report| after_build(&report).map(|()| report));
        let _ = published_tx.send(built.is_ok());
        let storefront = storefront.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok(Built { build: built?, storefront })
    })
}

/// What the build handed over, and the levels' changes the storefront made from it
/// while the build made the catalog.
struct Handed {
    catalog: HandedDocuments,
    levels: levels::SiteBuckets,
    /// [`levels::changes`] of `levels`, rendering everything or not (the `bool`).
    level_changes: (bool, Result<levels::LevelChanges, StorefrontError>),
}

/// Whether the storefront is rendered whole from the start: its state is of another
/// theme, or it keeps page data one file a plugin (an older trellis-index: rendered
/// whole once, into the groups).
fn renders_whole(site_dir: &Path, old: &State, theme: &Theme) -> bool {
    old.theme != theme.digest()
        || site_dir.join(STATE_DIR).join(OLD_DATA_DIR).is_dir()
        || site_dir.join(STATE_DIR).join(OLD_PUBLISHERS_DIR).is_dir()
}

/// [`publish_staged`] then [`publish_staged_files`], clearing the staging directory
/// when either fails.
fn publish_cleared(
    site_dir: &Path,
    job: StorefrontJob<'_>,
    old: State,
    handoff: Option<Handed>,
    published: &mut dyn FnMut() -> Result<(), StorefrontError>,
) -> Result<StorefrontReport, StorefrontError> {
    let outcome = publish_staged(site_dir, job, old, handoff)
        .and_then(|staged| publish_staged_files(site_dir, staged, published));
    if outcome.is_err() {
        // What was staged: the next build would clear it first anyway.
        let _ = write::clear_staging(site_dir);
    }
    outcome
}

/// Renders and writes every page into the staging directory, from the site's catalog
/// or, with `handoff`, from the catalog the build is publishing, and `old`, the state
/// the site's storefront was rendered with ([`read_state`]); nothing becomes visible
/// before [`publish_staged_files`].
fn publish_staged(
    site_dir: &Path,
    job: StorefrontJob<'_>,
    old: State,
    handoff: Option<Handed>,
) -> Result<Staged, StorefrontError> {
    let StorefrontJob { prepared, theme, insights, load } = job;
    let mut clock = std::time::Instant::now();
    let mut phases = Vec::new();
    let (site, mut early_levels) = match handoff {
        Some(Handed { catalog, levels, level_changes }) => {
            (handed_catalog(site_dir, &catalog, levels)?, Some(level_changes))
        }
        None => (read_catalog(site_dir)?, None),
    };
    phases.push(("catalog", lap(&mut clock)));
    let loaded: BTreeSet<PluginId> = prepared.pages.keys().cloned().collect();
    // A storefront keeping page data one file a plugin (an older trellis-index) is
    // rendered whole once, into the groups.
    let mut everything = renders_whole(site_dir, &old, theme);
    let mut kept_publishers = KeptPublishers::new(site_dir);
    let (level_changes, changes, Publishers { members, cards: kept_cards }, vendors, insight_members) = loop {
        let level_changes = match early_levels.take() {
            Some((whole, changes)) if whole == everything => changes?,
            _ => levels::changes(site_dir, &site.levels, &old.levels, everything)?,
        };
        let changes = changes(site_dir, &site, &old, &loaded, &level_changes.changed, everything)?;
        // Listed publishers whose insight page appears or goes (a download in the
        // window now, or none any more): their page links it or not.
        let flipped: BTreeSet<&str> = old
            .insights
            .keys()
            .filter(|v| !insights.has_page(v))
            .chain(insights.publishers.keys().filter(|v| insights.has_page(v) && !old.insights.contains_key(*v)))
            .filter(|v| !everything && old.vendors.contains_key(*v))
            .map(String::as_str)
            .collect();
        // A publisher's kept members are missing (a storefront from an older
        // trellis-index, or removed by hand): render everything once.
        let Some(members) = publisher_members(&mut kept_publishers, &changes, &flipped, &old, everything) else {
            everything = true;
            continue;
        };
        let vendors = listed_vendors(&old, &members.members, everything);
        match insight_members(&mut kept_publishers, &members.members, &vendors, &old, insights, everything) {
            Some(insight) => break (level_changes, changes, members, vendors, insight),
            None => everything = true,
        }
    };
    let Changes { records, changed, bucket_states } = changes;

    // Page data of the changed plugins that are listed: what the build prepared, else
    // what their group kept. The groups of the changed plugins are read (a group is
    // rewritten whole, keeping its other plugins' data), when rendering everything
    // only those of plugins the build did not prepare.
    let Prepared { pages: mut data, mut images } = prepared;
    let wanted: Vec<&PluginId> =
        changed.iter().filter(|id| records.contains_key(*id) && !data.contains_key(*id)).collect();
    let to_read: BTreeSet<u16> = if everything {
        wanted.iter().map(|id| page_group(id)).collect()
    } else {
        changed.iter().map(page_group).collect()
    };
    let mut kept_groups: BTreeMap<u16, PageGroup> =
        to_read.into_par_iter().filter_map(|group| Some((group, read_group(site_dir, group)?))).collect();
    let mut missing = BTreeSet::new();
    for id in wanted {
        let kept = kept_groups.get_mut(&page_group(id)).and_then(|group| group.pages.remove(id));
        // The file an older trellis-index kept (read while moving into the groups).
        let kept = kept.or_else(|| {
            let old = site_dir.join(STATE_DIR).join(OLD_DATA_DIR).join(format!("{id}.json"));
            serde_json::from_slice(&std::fs::read(old).ok()?).ok()
        });
        match kept {
            Some(kept) => {
                data.insert(id.clone(), Some(kept));
            }
            None => {
                missing.insert(id.clone());
            }
        }
    }
    if !missing.is_empty() {
        let loaded = load(&missing)?;
        images.extend(loaded.images);
        data.extend(loaded.pages);
    }

    // The new state.
    let state = State {
        insights: vendors.keys().filter_map(|v| Some((v.clone(), insights.digest(v)?))).collect(),
        theme: theme.digest(),
        buckets: site.buckets.values().map(|(target, doc)| (target.clone(), doc.file.sha256.to_hex())).collect(),
        listings: site.listings.iter().map(|(target, doc)| (target.clone(), doc.file.sha256.to_hex())).collect(),
        reviews: site.reviews.iter().map(|(id, doc)| (id.clone(), doc.file.sha256.to_hex())).collect(),
        vendors,
        levels: site.levels.values().map(|(target, doc)| (target.clone(), doc.file.sha256.to_hex())).collect(),
    };

    phases.push(("read", lap(&mut clock)));
    // Listing pages whose document changed, and those showing a plugin whose level
    // moved without its catalog record changing. Rendering everything, each is read
    // by the job that renders it (never all at once); otherwise they are few, read
    // here to find the levels their cards show.
    let parse_listing = |target: &String, doc: &Document| {
        catalog::parse_page(target, &doc.read(site_dir)?, &catalog::CatalogLimits::default())
            .map_err(|e| StorefrontError::Catalog(e.to_string()))
    };
    let mut listings: Vec<catalog::ListingPage> = Vec::new();
    if !everything {
        listings = site
            .listings
            .par_iter()
            .filter(|(target, doc)| old.listings.get(*target) != Some(&doc.file.sha256.to_hex()))
            .map(|(target, doc)| parse_listing(target, doc))
            .collect::<Result<_, StorefrontError>>()?;
        let shown: BTreeSet<&PluginId> = listings.iter().flat_map(|l| l.plugins.iter().map(|s| &s.id)).collect();
        let moved: BTreeSet<&PluginId> = level_changes.changed.iter().filter(|id| !shown.contains(id)).collect();
        let prefixes: BTreeSet<String> = moved
            .iter()
            .filter_map(|id| records.get(*id))
            .flat_map(|r| {
                let categories = r.categories.iter().map(|c| format!("catalog/category-{c}-"));
                categories.chain(r.tags.iter().map(|t| format!("catalog/tag-{t}-"))).collect::<Vec<_>>()
            })
            .collect();
        let done: BTreeSet<(catalog::ListingKind, String, u32)> =
            listings.iter().map(|l| (l.kind, l.name.clone(), l.page)).collect();
        let more: Vec<catalog::ListingPage> = site
            .listings
            .par_iter()
            .filter(|(target, _)| {
                prefixes.iter().any(|p| target.strip_prefix(p.as_str()).is_some_and(|rest| !rest.contains('-')))
            })
            .map(|(target, doc)| parse_listing(target, doc))
            .collect::<Result<Vec<_>, StorefrontError>>()?;
        listings.extend(more.into_iter().filter(|l| {
            !done.contains(&(l.kind, l.name.clone(), l.page)) && l.plugins.iter().any(|s| moved.contains(&s.id))
        }));
    }
    // The levels the cards of the listing and publisher pages rendered show (the home
    // page, rendered every build, shows none: its cards would read a levels bucket each).
    // Rendering everything, every levels bucket was read: each card's level is there.
    let card_levels = if everything {
        levels::read_levels(&level_changes, records.values())
    } else {
        let card_pages: Vec<(levels::KeptCards<'_>, &[PluginSummary])> = listings
            .iter()
            .map(|l| (levels::KeptCards::File(listing_key(l.kind, &l.name, l.page)), l.plugins.as_slice()))
            .chain(
                members
                    .iter()
                    .filter(|(_, list)| !list.is_empty())
                    .map(|(v, list)| (levels::KeptCards::Given(kept_cards.get(v)), list.as_slice())),
            )
            .collect();
        levels::card_levels(site_dir, &level_changes, &card_pages)
    };
    let release_levels = levels::plugin_levels(
        site_dir,
        &site.levels,
        &level_changes,
        changed.iter().filter(|id| records.contains_key(*id)),
    )?;

    // Every page to render, each rendered and written by one job (in parallel on the
    // build's pool), its bytes dropped once written: memory holds the pages being
    // rendered, not the storefront.
    let mut jobs: Vec<Job<'_>> = Vec::new();
    if everything {
        jobs.extend(site.listings.iter().map(|(target, doc)| Job::ListingDocument(target, doc)));
    } else {
        jobs.extend(listings.iter().map(Job::Listing));
    }
    jobs.extend(members.iter().filter(|(_, list)| !list.is_empty()).map(|(vendor, list)| Job::Publisher(vendor, list)));
    jobs.extend(
        insight_members.iter().filter(|(vendor, _)| insights.has_page(vendor)).map(|(v, list)| Job::Insight(v, list)),
    );
    jobs.extend(changed.iter().filter_map(|id| Some(Job::Plugin(records.get(id)?))));
    // The page data groups of the changed plugins, rewritten whole: the kept data of
    // their other plugins (none when rendering everything: every listed plugin
    // changed) and the changed listed plugins' data.
    let mut groups: BTreeMap<u16, BTreeMap<&PluginId, &PageData>> =
        changed.iter().map(|id| (page_group(id), BTreeMap::new())).collect();
    if !everything {
        for (group, kept) in &kept_groups {
            let members = groups.entry(*group).or_default();
            members.extend(kept.pages.iter().filter(|(id, _)| !changed.contains(*id)));
        }
    }
    for id in changed.iter().filter(|id| records.contains_key(*id)) {
        if let Some(Some(page)) = data.get(id) {
            groups.entry(page_group(id)).or_default().insert(id, page);
        }
    }
    jobs.extend(
        groups.iter().filter(|(_, members)| !members.is_empty()).map(|(group, members)| Job::Group(*group, members)),
    );
    // The publisher groups of the publishers whose page is redone, rewritten whole:
    // the kept data of their other publishers (none when rendering everything: every
    // listed publisher is redone) and the redone publishers that still list a plugin.
    let mut publisher_groups: BTreeMap<u16, BTreeMap<&str, PublisherEntry<'_>>> =
        members.keys().map(|vendor| (publisher_group(vendor), BTreeMap::new())).collect();
    if !everything {
        for (group, entries) in &mut publisher_groups {
            if let Some(Some(kept)) = kept_publishers.groups.get(group) {
                let others = kept.publishers.iter().filter(|(vendor, _)| !members.contains_key(*vendor));
                entries.extend(others.map(|(vendor, kept)| (vendor.as_str(), PublisherEntry::Kept(kept))));
            }
        }
    }
    for (vendor, list) in members.iter().filter(|(_, list)| !list.is_empty()) {
        if let Some(entries) = publisher_groups.get_mut(&publisher_group(vendor)) {
            entries.insert(vendor.as_str(), PublisherEntry::Redone(list.as_slice()));
        }
    }
    jobs.extend(
        publisher_groups
            .iter()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(group, entries)| Job::PublisherGroup(*group, entries)),
    );
    // Where each job writes, known before anything is rendered.
    let mut paths: Vec<String> = Vec::new();
    for job in &jobs {
        match job {
            Job::ListingDocument(target, _) => {
                paths.extend(listing_page_path(target));
                paths.extend(
                    target.strip_prefix("catalog/").and_then(|t| t.strip_suffix(".json")).map(levels::cards_path),
                );
            }
            Job::Listing(l) => {
                paths.push(render::listing_path(l.kind, &l.name, l.page));
                paths.push(levels::cards_path(&listing_key(l.kind, &l.name, l.page)));
            }
            Job::Publisher(vendor, _) => paths.push(render::publisher_path(vendor)),
            Job::PublisherGroup(group, _) => paths.push(publisher_group_path(*group)),
            Job::Insight(vendor, _) => paths.push(render::insight_path(vendor)),
            Job::Plugin(s) => paths.push(render::plugin_path(&s.id)),
            Job::Group(group, _) => paths.push(group_path(*group)),
        }
    }
    let mut assets: Vec<(String, Vec<u8>)> = theme.assets().into_iter().map(|(p, b)| (p, b.to_vec())).collect();
    images.sort_by(|a, b| a.path.cmp(&b.path));
    images.dedup_by(|a, b| a.path == b.path);
    assets.extend(images.into_iter().map(|i| (i.path, i.bytes.to_vec())));
    let plain = render::Context::new(theme, &site.head, state.vendors.len(), &site.shards, &site.head_path);
    let fixed = plain.fixed_pages()?;
    paths.extend(assets.iter().chain(&fixed).map(|(path, _)| path.clone()));
    write::clear_staging(site_dir)?;
    let mut writer = write::Writer::plan(site_dir, paths.iter().map(String::as_str))?;
    let written: Vec<Option<write::Written>> = assets
        .par_iter()
        .chain(fixed.par_iter())
        .map(|(path, bytes)| writer.write(path, bytes))
        .collect::<Result<_, FsError>>()?;
    let mut written: Vec<write::Written> = written.into_iter().flatten().collect();
    drop((assets, fixed));
    let context = plain.with_levels(&card_levels);
    let rendered = AtomicUsize::new(4);
    let write = |path: String, bytes: Vec<u8>| -> Result<Option<write::Written>, StorefrontError> {
        rendered.fetch_add(1, Ordering::Relaxed);
        Ok(writer.write(&path, &bytes)?)
    };
    let keep = |path: String, bytes: Vec<u8>| -> Result<Option<write::Written>, StorefrontError> {
        Ok(writer.write(&path, &bytes)?)
    };
    let done: Vec<Vec<Option<write::Written>>> = jobs
        .par_iter()
        .map(|job| -> Result<Vec<Option<write::Written>>, StorefrontError> {
            match job {
                Job::ListingDocument(target, doc) => {
                    let page = parse_listing(target, doc)?;
                    let (path, bytes) = context.listing_page(&page)?;
                    let cards = levels::page_cards(&page.plugins, &card_levels);
                    let key = listing_key(page.kind, &page.name, page.page);
                    Ok(vec![
                        write(path, bytes)?,
                        keep(levels::cards_path(&key), serde_json::to_vec(&cards).unwrap_or_default())?,
                    ])
                }
                Job::Listing(page) => {
                    let (path, bytes) = context.listing_page(page)?;
                    let cards = levels::page_cards(&page.plugins, &card_levels);
                    let key = listing_key(page.kind, &page.name, page.page);
                    Ok(vec![
                        write(path, bytes)?,
                        keep(levels::cards_path(&key), serde_json::to_vec(&cards).unwrap_or_default())?,
                    ])
                }
                Job::Publisher(vendor, list) => {
                    let (path, bytes) = context.publisher_page(vendor, list, insights.has_page(vendor))?;
                    Ok(vec![write(path, bytes)?])
                }
                Job::PublisherGroup(group, entries) => {
                    let publishers = entries
                        .iter()
                        .map(|(vendor, entry)| {
                            let kept = match entry {
                                PublisherEntry::Kept(kept) => {
                                    KeptPublisherOut { members: &kept.members, cards: Cow::Borrowed(&kept.cards) }
                                }
                                PublisherEntry::Redone(list) => KeptPublisherOut {
                                    members: list,
                                    cards: Cow::Owned(levels::page_cards(list, &card_levels)),
                                },
                            };
                            (*vendor, kept)
                        })
                        .collect();
                    let bytes = serde_json::to_vec(&PublisherGroupOut { publishers }).unwrap_or_default();
                    Ok(vec![keep(publisher_group_path(*group), bytes)?])
                }
                Job::Insight(vendor, list) => {
                    let (path, bytes) = context.insight_page(vendor, list, insights)?;
                    Ok(vec![write(path, bytes)?])
                }
                Job::Plugin(record) => {
                    let page = data.get(&record.id).and_then(Option::as_ref);
                    let reviews = read_reviews(site_dir, &record.id, &site.reviews)?;
                    let (path, bytes) =
                        context.plugin_page(record, page, reviews.as_ref(), release_levels.get(&record.id))?;
                    Ok(vec![write(path, bytes)?])
                }
                Job::Group(group, members) => {
                    let bytes = serde_json::to_vec(&PageGroupOut { pages: members }).unwrap_or_default();
                    Ok(vec![keep(group_path(*group), bytes)?])
                }
            }
        })
        .collect::<Result<_, StorefrontError>>()?;
    written.extend(done.into_iter().flatten().flatten());
    let report = StorefrontReport { rendered: rendered.into_inner(), ..StorefrontReport::default() };
    phases.push(("render", lap(&mut clock)));
    // The state's bytes, written once the pages are in place (below): made while the
    // build may still be publishing (1.2 MB of `state.json` at 300k plugins).
    let states: Vec<(String, Vec<u8>)> = bucket_states
        .iter()
        .map(|(bucket, digests)| (bucket_state_path(*bucket), bucket_state_bytes(digests)))
        .chain(
            level_changes
                .kept
                .iter()
                .map(|(number, kept)| (levels::kept_path(*number), serde_json::to_vec(kept).unwrap_or_default())),
        )
        .chain([(format!("{STATE_DIR}/state.json"), serde_json::to_vec(&state).unwrap_or_default())])
        .collect();
    // What the site no longer lists: its pages and the storefront's files of it go,
    // once the metadata is published.
    let mut gone: Vec<String> = Vec::new();
    gone.extend(changed.iter().filter(|id| !records.contains_key(*id)).map(render::plugin_path));
    // A group left with no plugin; rendering everything, every group no plugin falls in.
    gone.extend(groups.iter().filter(|(_, members)| members.is_empty()).map(|(group, _)| group_path(*group)));
    if everything {
        gone.extend(
            (0..PAGE_GROUPS)
                .filter(|group| !groups.contains_key(group) && site_dir.join(group_path(*group)).is_file())
                .map(group_path),
        );
    }
    // A publisher group left with no publisher; rendering everything, every group no
    // listed publisher falls in.
    gone.extend(
        publisher_groups
            .iter()
            .filter(|(_, entries)| entries.is_empty())
            .map(|(group, _)| publisher_group_path(*group)),
    );
    if everything {
        gone.extend(
            (0..PUBLISHER_GROUPS)
                .filter(|group| {
                    !publisher_groups.contains_key(group) && site_dir.join(publisher_group_path(*group)).is_file()
                })
                .map(publisher_group_path),
        );
    }
    // The insight pages of publishers with no download in the window any more (when
    // rendering everything, of every such publisher: an older storefront had one each).
    gone.extend(insight_members.keys().filter(|vendor| !insights.has_page(vendor)).map(|v| render::insight_path(v)));
    for (vendor, list) in &members {
        if list.is_empty() {
            gone.extend([
                render::publisher_path(vendor),
                render::insight_path(vendor),
                // A publisher's kept cards before they moved into its members' file.
                levels::cards_path(&publisher_key(vendor)),
            ]);
        }
    }
    for target in old.listings.keys().filter(|t| !site.listings.contains_key(*t)) {
        gone.extend(listing_page_path(target));
        if let Some(key) = target.strip_prefix("catalog/").and_then(|t| t.strip_suffix(".json")) {
            gone.push(levels::cards_path(key));
        }
    }
    if everything {
        // Publisher pages' kept cards from before they moved in with the members.
        gone.extend(
            std::fs::read_dir(site_dir.join(STATE_DIR).join("cards"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name.starts_with("publisher-") && name.ends_with(".json"))
                .map(|name| format!("{STATE_DIR}/cards/{name}")),
        );
    }
    // Durable where they are staged while the build is still publishing: after it,
    // only renames and the directories they change are flushed.
    writer.flush(&written)?;
    Ok(Staged { writer, written, gone, states, report, phases, clock, everything })
}

/// What [`publish_staged`] rendered and staged, and what it leaves to
/// [`publish_staged_files`]. Everything else it read is dropped before the wait: at
/// 300k plugins freeing the catalog, the state and the pages read takes milliseconds,
/// which the storefront spends while the build is still publishing.
struct Staged {
    writer: write::Writer,
    written: Vec<write::Written>,
    /// The files to remove (paths in the site).
    gone: Vec<String>,
    /// The state files and their bytes.
    states: Vec<(String, Vec<u8>)>,
    report: StorefrontReport,
    phases: Vec<(&'static str, u64)>,
    clock: std::time::Instant,
    everything: bool,
}

/// Waits for `published` (the build's metadata is published: `Ok`), then makes what
/// [`publish_staged`] staged visible: the files of what the site no longer lists go,
/// then one durability barrier for everything, the replacements and staged
/// directories moved into place (images and assets before the pages naming them),
/// then the state that trusts it.
fn publish_staged_files(
    site_dir: &Path,
    staged: Staged,
    published: &mut dyn FnMut() -> Result<(), StorefrontError>,
) -> Result<StorefrontReport, StorefrontError> {
    let Staged { writer, written, gone, states, mut report, mut phases, mut clock, everything } = staged;
    // Nothing before is visible (pages staged, replacements under the staging
    // directory); nothing after may be before the metadata the pages show is.
    published()?;
    phases.push(("wait", lap(&mut clock)));

    for path in gone {
        let full = site_dir.join(&path);
        if std::fs::remove_file(&full).is_ok() {
            // A page's own directory goes with it when nothing else is in it (a full
            // build would not have it): `remove_dir` removes only an empty directory.
            if path.ends_with("/index.html") {
                let _ = full.parent().map(std::fs::remove_dir);
            }
            report.removed.push(path);
        }
    }
    report.written = writer.finish(written, &report.removed, &["images", "assets"])?;
    phases.push(("durable", lap(&mut clock)));
    // The state, once every page it describes is durable: the per-bucket states and
    // the state naming the documents in one batch, one barrier. Any of them lost or
    // old after a crash costs work, never a stale page: a document whose SHA-256 the
    // state lacks is read again and its plugins compared with the kept digests (an
    // old or lost per-bucket state redoes them, the pages are rewritten only if their
    // bytes differ), and a per-bucket state newer than the state names what the pages
    // already show.
    let writer = write::Writer::plan(site_dir, states.iter().map(|(path, _)| path.as_str()))?;
    let written: Vec<Option<write::Written>> =
        states.par_iter().map(|(path, bytes)| writer.write(path, bytes)).collect::<Result<_, FsError>>()?;
    report.written.extend(writer.finish(written.into_iter().flatten().collect(), &[], &[])?);
    write::clear_staging(site_dir)?;
    // Page data one file a plugin, publishers one file each (an older trellis-index):
    // the groups replaced them.
    for old_dir in [OLD_DATA_DIR, OLD_PUBLISHERS_DIR] {
        let old_data = site_dir.join(STATE_DIR).join(old_dir);
        if everything && old_data.is_dir() {
            std::fs::remove_dir_all(&old_data)
                .map_err(|e| FsError::new("removing the state an older trellis-index kept", &old_data, e))?;
            report.removed.push(format!("{STATE_DIR}/{old_dir}/"));
        }
    }
    phases.push(("state", lap(&mut clock)));
    report.phases = phases;
    report.written.sort();
    report.removed.sort();
    Ok(report)
}

/// One page [`publish`] renders and writes, with the state kept beside it.
enum Job<'a> {
    /// A listing page, from its catalog document (read by the job).
    ListingDocument(&'a String, &'a Document),
    /// A listing page, read before.
    Listing(&'a catalog::ListingPage),
    /// A publisher's page (none when it lists no plugin) and its kept members.
    Publisher(&'a String, &'a Vec<PluginSummary>),
    /// A publisher's insight page.
    Insight(&'a String, &'a Vec<PluginSummary>),
    /// A plugin's page.
    Plugin(&'a PluginSummary),
    /// A page data group (its plugins' data, by id).
    Group(u16, &'a BTreeMap<&'a PluginId, &'a PageData>),
    /// A publisher group (its publishers' kept data, by vendor).
    PublisherGroup(u16, &'a BTreeMap<&'a str, PublisherEntry<'a>>),
}

/// A [`PageGroup`] as written.
#[derive(Serialize)]
struct PageGroupOut<'a> {
    pages: &'a BTreeMap<&'a PluginId, &'a PageData>,
}

/// What the storefront keeps of a publisher (`_storefront/publishers/<vendor>.json`):
/// its plugins in listing order and the level each card of its page showed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KeptPublisher {
    members: Vec<PluginSummary>,
    cards: levels::PageCards,
}

/// The members of each publisher of a changed plugin and of each publisher in `more`
/// (whose page changes without its plugins), in listing order (empty: it lists none
/// any more): the kept members with the changed plugins' records put in
/// (when `everything`, every plugin changed: all come from the records). `None` when
/// the state counts members of a publisher whose kept members cannot be read.
fn publisher_members(
    kept_publishers: &mut KeptPublishers<'_>,
    changes: &Changes,
    more: &BTreeSet<&str>,
    old: &State,
    everything: bool,
) -> Option<Publishers> {
    // The changed plugins' current summaries by publisher (one pass over the records).
    let mut current: BTreeMap<&str, Vec<PluginSummary>> = changes
        .changed
        .iter()
        .map(|id| (id.vendor(), Vec::new()))
        .chain(more.iter().map(|v| (*v, Vec::new())))
        .collect();
    for id in &changes.changed {
        if let Some(record) = changes.records.get(id) {
            current.entry(id.vendor()).or_default().push(record.clone());
        }
    }
    let mut out = BTreeMap::new();
    let mut cards = BTreeMap::new();
    for (vendor, now) in current {
        let KeptPublisher { mut members, cards: kept } = if everything {
            KeptPublisher::default()
        } else {
            match kept_publishers.get(vendor).ok()? {
                Some(kept) => KeptPublisher { members: kept.members.clone(), cards: kept.cards.clone() },
                // A publisher new to the storefront has none kept.
                None if !old.vendors.contains_key(vendor) => KeptPublisher::default(),
                None => return None,
            }
        };
        members.retain(|s| !changes.changed.contains(&s.id));
        members.extend(now);
        members.sort_by(listing_order);
        out.insert(vendor.to_owned(), members);
        cards.insert(vendor.to_owned(), kept);
    }
    Some(Publishers { members: out, cards })
}

/// The publishers of the changed plugins: their members in listing order (empty: it
/// lists none any more) and the levels their pages' cards showed last.
struct Publishers {
    members: BTreeMap<String, Vec<PluginSummary>>,
    cards: BTreeMap<String, levels::PageCards>,
}

/// The publishers that list a plugin after this build, with how many: the state's
/// (none when `everything`) with the changed publishers' `members` put in.
fn listed_vendors(
    old: &State,
    members: &BTreeMap<String, Vec<PluginSummary>>,
    everything: bool,
) -> BTreeMap<String, u32> {
    let mut vendors = if everything { BTreeMap::new() } else { old.vendors.clone() };
    for (vendor, list) in members {
        if list.is_empty() {
            vendors.remove(vendor);
        } else {
            vendors.insert(vendor.clone(), u32::try_from(list.len()).unwrap_or(u32::MAX));
        }
    }
    vendors
}

/// The members of each listed publisher whose insight page must be redone: the
/// changed publishers (`members`), and those whose figures' digest differs from the
/// one the state kept (read from `_storefront/publishers/<vendor>.json`). `None` when
/// such a file cannot be read.
fn insight_members(
    kept_publishers: &mut KeptPublishers<'_>,
    members: &BTreeMap<String, Vec<PluginSummary>>,
    vendors: &BTreeMap<String, u32>,
    old: &State,
    insights: &Insights,
    everything: bool,
) -> Option<BTreeMap<String, Vec<PluginSummary>>> {
    let mut out = BTreeMap::new();
    for vendor in vendors.keys() {
        if let Some(list) = members.get(vendor) {
            out.insert(vendor.clone(), list.clone());
        } else if everything || old.insights.get(vendor) != insights.digest(vendor).as_ref() {
            let kept = kept_publishers.get(vendor).ok()??;
            out.insert(vendor.clone(), kept.members.clone());
        }
    }
    Some(out)
}

/// Listing members in the catalog's order: most downloaded, best rated, then id.
fn listing_order(a: &PluginSummary, b: &PluginSummary) -> std::cmp::Ordering {
    b.downloads
        .cmp(&a.downloads)
        .then_with(|| b.rating.map(|r| r.tenths).cmp(&a.rating.map(|r| r.tenths)))
        .then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summarys_id_is_read_where_the_builder_writes_it_and_from_the_whole_summary_otherwise() {
        let id = |json: &str| {
            let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
            summary_id("catalog/records-00.json", &raw).map(|id| (id.to_string(), matches!(id, Cow::Borrowed(_))))
        };
        assert_eq!(id(r#"{"id":"acme.clock","name":"Clock"}"#).unwrap(), ("acme.clock".into(), true));
        assert_eq!(id(r#"{"name":"Clock","id":"acme.clock"}"#).unwrap(), ("acme.clock".into(), false));
        assert_eq!(id(r#"{ "id": "acme.clock" }"#).unwrap(), ("acme.clock".into(), false));
        assert_eq!(id(r#"{"id":"acme\u002eclock"}"#).unwrap(), ("acme.clock".into(), false));
        let error = id(r#"{"name":"Clock"}"#).unwrap_err().to_string();
        assert!(error.contains("catalog/records-00.json") && error.contains("id"), "{error}");
    }

    #[test]
    fn a_key_falls_in_the_group_of_its_digests_leading_bits_as_kept_storefronts_were_written() {
        // The groups of the kept page data and publishers are on disk: the bits that
        // choose them must not move (a misplaced key is looked for in the wrong file).
        for n in 0..2_000 {
            let key = format!("vendor{n}.plugin-{}", n * 7);
            let digest = Sha256::of(key.as_bytes());
            let b = digest.as_bytes();
            let page = u16::from(b[0]) << 4 | u16::from(b[1]) >> 4;
            let publisher = u16::from(b[0]) << 2 | u16::from(b[1]) >> 6;
            assert_eq!(page_group(&key.parse().unwrap()), page, "{key}");
            assert_eq!(publisher_group(&key), publisher, "{key}");
            assert!(page < PAGE_GROUPS && publisher < PUBLISHER_GROUPS);
            assert_eq!(hash_group(&key, 2), u16::from(b[0] >> 7));
        }
    }
}
