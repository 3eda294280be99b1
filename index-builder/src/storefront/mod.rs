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
//! (after the build: renders the pages whose inputs changed and writes only those whose
//! bytes differ, images first, pages next, state last, each file atomically). A
//! refused storefront therefore leaves the site as it was.
//!
//! Writing is most of a full build's cost (a page and a data file per plugin), so a
//! directory the site does not have yet (all of them on a fresh site, a new plugin's
//! on an incremental one) is written whole into `.storefront-staging/` without a temp
//! file, a rename or a comparison per file, and renamed into place once durable: a
//! reader sees it complete or not at all, as it sees each file replaced in place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, replace_unsynced, write_atomic};
use trellis_schema::catalog::{self, CatalogHead, PluginSummary};
use trellis_schema::{PluginId, Sha256};

use crate::build::PreviousSite;
use crate::release::PluginInput;
use crate::site;
use crate::tuf::{CATALOG_ROLE, SECURITY_ROLE};

pub mod insight;
mod levels;
pub mod page;
mod render;

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
    /// and levels: what changed), `render`, `write` (the files whose bytes differ),
    /// `durable` (the barrier, the staged directories moved into place), `state`.
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

fn data_path(id: &PluginId) -> String {
    format!("{STATE_DIR}/plugins/{id}.json")
}

fn bucket_state_path(bucket: u32) -> String {
    format!("{STATE_DIR}/records-{bucket:02x}.json")
}

fn vendor_path(vendor: &str) -> String {
    format!("{STATE_DIR}/publishers/{vendor}.json")
}

/// A catalog document the site serves: its path in the site and its SHA-256.
#[derive(Clone, Debug)]
struct Document {
    path: String,
    sha256: Sha256,
}

/// The catalog the site at `site_dir` serves, as its signed catalog role lists it:
/// the head (read), the other documents by target (read only when needed).
struct SiteCatalog {
    head: CatalogHead,
    head_path: String,
    shards: BTreeMap<String, String>,
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
    let role = previous
        .role(CATALOG_ROLE)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("the site has no catalog role; rebuild it with this trellis-index".into()))?;
    let mut head = None;
    let mut shards = BTreeMap::new();
    let mut buckets = BTreeMap::new();
    let mut listings = BTreeMap::new();
    let mut reviews = BTreeMap::new();
    for (target, file) in &role.signed.targets {
        let Some(sha256) = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()) else { continue };
        let path = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(target, &sha256));
        let Some(name) = target.strip_prefix("catalog/").and_then(|n| n.strip_suffix(".json")) else { continue };
        if target == catalog::HEAD_TARGET {
            head = Some(path);
        } else if let Some(key) = name.strip_prefix("search-") {
            shards.insert(key.to_owned(), path);
        } else if name.starts_with("typo-") {
            // Under its name: a typo key never collides with a search shard key,
            // which has no `-`.
            shards.insert(name.to_owned(), path);
        } else if let Some(bucket) = name.strip_prefix("records-") {
            let bucket = u32::from_str_radix(bucket, 16).map_err(|e| fail(format!("{target}: {e}")))?;
            buckets.insert(bucket, (target.clone(), Document { path, sha256 }));
        } else if let Some(id) = name.strip_prefix("reviews-") {
            let id: PluginId = id.parse().map_err(|e| fail(format!("{target}: {e}")))?;
            reviews.insert(id, Document { path, sha256 });
        } else if name.starts_with("category-") || name.starts_with("tag-") {
            listings.insert(target.clone(), Document { path, sha256 });
        }
    }
    let head_path = head.ok_or_else(|| fail("the catalog role lists no head.json".into()))?;
    let head = catalog::parse_head(&read_file(site_dir, &head_path)?, &catalog::CatalogLimits::default())
        .map_err(|e| fail(e.to_string()))?;
    // The levels buckets: a site without them (an older trellis-index) shows no level.
    let mut levels = levels::SiteBuckets::new();
    if let Some(security) = previous.role(SECURITY_ROLE).map_err(|e| fail(e.to_string()))? {
        for (target, file) in &security.signed.targets {
            let Some(number) = target
                .strip_prefix("security/levels-")
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| u8::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            let Some(sha256) = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()) else { continue };
            let path = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(target, &sha256));
            levels.insert(number, (target.clone(), Document { path, sha256 }));
        }
    }
    Ok(SiteCatalog { head, head_path, shards, buckets, listings, reviews, levels })
}

/// What a plugin page shows from the catalog: its summary and its reviews document.
fn record_digest(summary: &PluginSummary, reviews: Option<&Sha256>) -> String {
    let mut bytes = serde_json::to_vec(summary).unwrap_or_default();
    if let Some(reviews) = reviews {
        bytes.extend_from_slice(reviews.to_hex().as_bytes());
    }
    Sha256::of(&bytes).to_hex()
}

/// The reviews document of `id` the site serves, when it has one.
fn read_reviews(
    site_dir: &Path,
    id: &PluginId,
    reviews: &BTreeMap<PluginId, Document>,
) -> Result<Option<catalog::PluginReviews>, StorefrontError> {
    let Some(document) = reviews.get(id) else { return Ok(None) };
    catalog::parse_reviews(id, &read_file(site_dir, &document.path)?, &catalog::CatalogLimits::default())
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
/// lists it): only what pages show is decoded, the records' terms (most of their
/// bytes) are skipped.
fn summaries_of(target: &str, bytes: &[u8]) -> Result<Vec<PluginSummary>, StorefrontError> {
    #[derive(Deserialize)]
    struct Record {
        summary: PluginSummary,
    }
    #[derive(Deserialize)]
    struct Bucket {
        format: u32,
        records: Vec<Record>,
    }
    let bucket: Bucket =
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

/// Which plugins changed since the storefront last rendered, read from the record
/// buckets whose document changed (all of them when `everything`).
struct Changes {
    /// Current summaries of the plugins of the buckets read.
    records: BTreeMap<PluginId, PluginSummary>,
    /// Plugins whose page must be redone (or removed when not in `records`).
    changed: BTreeSet<PluginId>,
    /// The new digests of the buckets read.
    bucket_states: BTreeMap<u32, BTreeMap<PluginId, String>>,
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
        .filter(|(_, (target, doc))| everything || old.buckets.get(target) != Some(&doc.sha256.to_hex()))
        .map(|(bucket, _)| *bucket)
        .collect();
    let reviews_now: BTreeMap<&PluginId, String> = site.reviews.iter().map(|(id, d)| (id, d.sha256.to_hex())).collect();
    let reviews_changed = reviews_now
        .iter()
        .filter(|(id, sha)| old.reviews.get(**id) != Some(*sha))
        .map(|(id, _)| *id)
        .chain(old.reviews.keys().filter(|id| !reviews_now.contains_key(id)));
    wanted.extend(reviews_changed.chain(loaded).chain(levels_moved).map(catalog::record_bucket));
    let read: Vec<(u32, Vec<PluginSummary>, BTreeMap<PluginId, String>)> = wanted
        .par_iter()
        .map(|bucket| {
            let records = match site.buckets.get(bucket) {
                Some((target, doc)) => summaries_of(target, &read_file(site_dir, &doc.path)?)?,
                None => Vec::new(),
            };
            let kept: BTreeMap<PluginId, String> = if everything {
                BTreeMap::new()
            } else {
                std::fs::read(site_dir.join(bucket_state_path(*bucket)))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_default()
            };
            Ok((*bucket, records, kept))
        })
        .collect::<Result<_, StorefrontError>>()?;
    let mut out = Changes { records: BTreeMap::new(), changed: loaded.clone(), bucket_states: BTreeMap::new() };
    for (bucket, records, kept) in read {
        let mut digests = BTreeMap::new();
        for summary in records {
            let id = summary.id.clone();
            let digest = record_digest(&summary, site.reviews.get(&id).map(|d| &d.sha256));
            if kept.get(&id) != Some(&digest) {
                out.changed.insert(id.clone());
            }
            digests.insert(id.clone(), digest);
            out.records.insert(id, summary);
        }
        out.changed.extend(kept.into_keys().filter(|id| !digests.contains_key(id)));
        out.bucket_states.insert(bucket, digests);
    }
    // A plugin whose levels moved: its page, publisher page and cards show them.
    out.changed.extend(levels_moved.iter().filter(|id| out.records.contains_key(*id)).cloned());
    Ok(out)
}

/// Renders the storefront of the site at `site_dir` from the catalog it serves and
/// writes what changed (see the module doc). `prepared` holds the plugins the build
/// changed; a plugin whose catalog record changed without a new release gets its page
/// from the data kept in `_storefront/`, or from `load` (opening its package) when
/// there is none.
///
/// Only what a changed catalog document shows is read and rendered: the record
/// buckets whose SHA-256 differs from the one the storefront last rendered (and those
/// of plugins whose reviews changed or that the build loaded), the listing pages whose
/// document differs, the publishers of the changed plugins; home, categories and
/// search always (four small pages); the insight pages of the changed publishers and
/// of those whose figures in `insights` moved. A site whose storefront state is
/// missing, of another theme, or whose publisher data is incomplete is rendered whole.
pub fn publish(
    prepared: Prepared,
    site_dir: &Path,
    theme: &Theme,
    insights: &Insights,
    load: &(dyn Fn(&BTreeSet<PluginId>) -> Result<Prepared, StorefrontError> + Sync),
) -> Result<StorefrontReport, StorefrontError> {
    let mut clock = std::time::Instant::now();
    let mut phases = Vec::new();
    let site = read_catalog(site_dir)?;
    phases.push(("catalog", lap(&mut clock)));
    let old: State = std::fs::read(state_path(site_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let loaded: BTreeSet<PluginId> = prepared.pages.keys().cloned().collect();
    let mut everything = old.theme != theme.digest();
    let (level_changes, changes, members, vendors, insight_members) = loop {
        let level_changes = levels::changes(site_dir, &site.levels, &old.levels, everything)?;
        let changes = changes(site_dir, &site, &old, &loaded, &level_changes.changed, everything)?;
        // A publisher's kept members are missing (a storefront from an older
        // trellis-index, or removed by hand): render everything once.
        let Some(members) = publisher_members(site_dir, &changes, &old, everything) else {
            everything = true;
            continue;
        };
        let vendors = listed_vendors(&old, &members, everything);
        match insight_members(site_dir, &members, &vendors, &old, insights, everything) {
            Some(insight) => break (level_changes, changes, members, vendors, insight),
            None => everything = true,
        }
    };
    let Changes { records, changed, bucket_states } = changes;

    // Page data of the changed plugins that are listed.
    let Prepared { pages: mut data, mut images } = prepared;
    let mut missing = BTreeSet::new();
    let wanted: Vec<&PluginId> =
        changed.iter().filter(|id| records.contains_key(*id) && !data.contains_key(*id)).collect();
    for id in wanted {
        match std::fs::read(site_dir.join(data_path(id))).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
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
        buckets: site.buckets.values().map(|(target, doc)| (target.clone(), doc.sha256.to_hex())).collect(),
        listings: site.listings.iter().map(|(target, doc)| (target.clone(), doc.sha256.to_hex())).collect(),
        reviews: site.reviews.iter().map(|(id, doc)| (id.clone(), doc.sha256.to_hex())).collect(),
        vendors,
        levels: site.levels.values().map(|(target, doc)| (target.clone(), doc.sha256.to_hex())).collect(),
    };

    phases.push(("read", lap(&mut clock)));
    // Listing pages whose document changed, and those showing a plugin whose level
    // moved without its catalog record changing.
    let parse_listing = |target: &String, doc: &Document| {
        catalog::parse_page(target, &read_file(site_dir, &doc.path)?, &catalog::CatalogLimits::default())
            .map_err(|e| StorefrontError::Catalog(e.to_string()))
    };
    let mut listings: Vec<catalog::ListingPage> = site
        .listings
        .par_iter()
        .filter(|(target, doc)| everything || old.listings.get(*target) != Some(&doc.sha256.to_hex()))
        .map(|(target, doc)| parse_listing(target, doc))
        .collect::<Result<_, StorefrontError>>()?;
    if !everything {
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
    let card_pages: Vec<(String, &[PluginSummary])> = listings
        .iter()
        .map(|l| (listing_key(l.kind, &l.name, l.page), l.plugins.as_slice()))
        .chain(members.iter().filter(|(_, list)| !list.is_empty()).map(|(v, list)| (publisher_key(v), list.as_slice())))
        .collect();
    let card_levels = levels::card_levels(site_dir, &level_changes, &card_pages);
    let plain = render::Context::new(theme, &site.head, state.vendors.len(), &site.shards, &site.head_path);
    let mut pages: Vec<(String, Vec<u8>)> = Vec::new();
    pages.extend(plain.fixed_pages()?);
    let context = plain.with_levels(&card_levels);
    let listing_pages: Vec<(String, Vec<u8>)> =
        listings.par_iter().map(|page| context.listing_page(page)).collect::<Result<_, StorefrontError>>()?;
    pages.extend(listing_pages);
    for (vendor, list) in &members {
        if !list.is_empty() {
            pages.push(context.publisher_page(vendor, list)?);
        }
        pages.push((vendor_path(vendor), serde_json::to_vec(list).unwrap_or_default()));
    }
    let insight_pages: Vec<(String, Vec<u8>)> = insight_members
        .par_iter()
        .map(|(vendor, list)| context.insight_page(vendor, list, insights))
        .collect::<Result<_, StorefrontError>>()?;
    pages.extend(insight_pages);
    let release_levels = levels::plugin_levels(
        site_dir,
        &site.levels,
        &level_changes,
        changed.iter().filter(|id| records.contains_key(*id)),
    )?;
    let plugin_pages: Vec<Vec<(String, Vec<u8>)>> = changed
        .par_iter()
        .filter_map(|id| Some((records.get(id)?, id)))
        .map(|(record, id)| {
            let page = data.get(id).and_then(Option::as_ref);
            let reviews = read_reviews(site_dir, id, &site.reviews)?;
            let mut out = vec![context.plugin_page(record, page, reviews.as_ref(), release_levels.get(id))?];
            if let Some(page) = page {
                out.push((data_path(id), serde_json::to_vec(page).unwrap_or_default()));
            }
            Ok(out)
        })
        .collect::<Result<_, StorefrontError>>()?;
    pages.extend(plugin_pages.into_iter().flatten());
    let rendered = pages.len();
    phases.push(("render", lap(&mut clock)));

    // Write: images and assets (content-addressed), pages, removals, state last.
    let mut report = StorefrontReport { rendered, ..StorefrontReport::default() };
    let mut assets: Vec<(String, Vec<u8>)> = theme.assets().into_iter().map(|(p, b)| (p, b.to_vec())).collect();
    images.sort_by(|a, b| a.path.cmp(&b.path));
    images.dedup_by(|a, b| a.path == b.path);
    assets.extend(images.into_iter().map(|i| (i.path, i.bytes.to_vec())));
    clear_staging(site_dir)?;
    let images_batch = write_changed(site_dir, &assets)?;
    let pages_batch = write_changed(site_dir, &pages)?;
    let mut gone: Vec<String> = Vec::new();
    for id in changed.iter().filter(|id| !records.contains_key(*id)) {
        gone.extend([format!("plugins/{id}/index.html"), data_path(id)]);
    }
    for (vendor, list) in &members {
        if list.is_empty() {
            gone.extend([
                format!("publishers/{vendor}/index.html"),
                render::insight_path(vendor),
                vendor_path(vendor),
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
    for path in gone {
        if std::fs::remove_file(site_dir.join(&path)).is_ok() {
            report.removed.push(path);
        }
    }
    // One durability barrier for everything above; then the staged directories move
    // into place (images before the pages naming them), then the state that trusts
    // it: the buckets' digests, then the state naming the documents rendered from.
    phases.push(("write", lap(&mut clock)));
    let flush: Vec<PathBuf> = images_batch.flush.iter().chain(&pages_batch.flush).cloned().collect();
    make_durable(site_dir, &flush, &report.removed)?;
    promote(site_dir, &images_batch.roots)?;
    let pages_roots: Vec<String> =
        pages_batch.roots.iter().filter(|r| !images_batch.roots.contains(r)).cloned().collect();
    promote(site_dir, &pages_roots)?;
    report.written.extend(images_batch.written);
    report.written.extend(pages_batch.written);
    phases.push(("durable", lap(&mut clock)));
    let mut states: Vec<(String, Vec<u8>)> = bucket_states
        .iter()
        .map(|(bucket, digests)| (bucket_state_path(*bucket), serde_json::to_vec(digests).unwrap_or_default()))
        .collect();
    states.extend(
        level_changes
            .kept
            .iter()
            .map(|(number, kept)| (levels::kept_path(*number), serde_json::to_vec(kept).unwrap_or_default())),
    );
    states.extend(card_pages.iter().map(|(key, members)| {
        let cards = levels::page_cards(members, &card_levels);
        (levels::cards_path(key), serde_json::to_vec(&cards).unwrap_or_default())
    }));
    // The per-bucket states together, one barrier, then the state naming the documents
    // (a per-bucket state lost in a crash reads as empty: its plugins are redone).
    let written = write_changed(site_dir, &states)?;
    make_durable(site_dir, &written.flush, &[])?;
    promote(site_dir, &written.roots)?;
    clear_staging(site_dir)?;
    report.written.extend(written.written);
    let (path, bytes) = (format!("{STATE_DIR}/state.json"), serde_json::to_vec(&state).unwrap_or_default());
    let file = site_dir.join(&path);
    if !std::fs::read(&file).is_ok_and(|existing| existing == bytes) {
        trellis_client::fs::create_dir_all(file.parent().unwrap_or(site_dir))?;
        write_atomic(&file, &bytes)?;
        report.written.push(path);
    }
    phases.push(("state", lap(&mut clock)));
    report.phases = phases;
    report.written.sort();
    report.removed.sort();
    Ok(report)
}

/// The members of each publisher of a changed plugin, in listing order (empty: it
/// lists none any more): the kept members with the changed plugins' records put in
/// (when `everything`, every plugin changed: all come from the records). `None` when
/// the state counts members of a publisher whose kept members cannot be read.
fn publisher_members(
    site_dir: &Path,
    changes: &Changes,
    old: &State,
    everything: bool,
) -> Option<BTreeMap<String, Vec<PluginSummary>>> {
    // The changed plugins' current summaries by publisher (one pass over the records).
    let mut current: BTreeMap<&str, Vec<PluginSummary>> =
        changes.changed.iter().map(|id| (id.vendor(), Vec::new())).collect();
    for id in &changes.changed {
        if let Some(record) = changes.records.get(id) {
            current.entry(id.vendor()).or_default().push(record.clone());
        }
    }
    let mut out = BTreeMap::new();
    for (vendor, now) in current {
        let mut members: Vec<PluginSummary> = if everything {
            Vec::new()
        } else {
            match std::fs::read(site_dir.join(vendor_path(vendor))) {
                Ok(bytes) => serde_json::from_slice(&bytes).ok()?,
                // A publisher new to the storefront has none kept.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !old.vendors.contains_key(vendor) => Vec::new(),
                Err(_) => return None,
            }
        };
        members.retain(|s| !changes.changed.contains(&s.id));
        members.extend(now);
        members.sort_by(listing_order);
        out.insert(vendor.to_owned(), members);
    }
    Some(out)
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
    site_dir: &Path,
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
            let bytes = std::fs::read(site_dir.join(vendor_path(vendor))).ok()?;
            out.insert(vendor.clone(), serde_json::from_slice(&bytes).ok()?);
        }
    }
    Some(out)
}

/// Where [`write_changed`] writes the files of directories new to the site, each such
/// directory renamed into place whole once its files are durable ([`promote`]): a
/// fresh site (or a new plugin's directory) needs neither a comparison nor a temp file
/// and a rename per file, and a reader never sees a half-written page in it.
const STAGING_DIR: &str = ".storefront-staging";

/// What one [`write_changed`] batch wrote.
#[derive(Debug, Default)]
struct Batch {
    /// Files written, relative to the site root (in place or staged).
    written: Vec<String>,
    /// The same files where they are now (in place, or in the staging directory): what
    /// [`make_durable`] flushes.
    flush: Vec<PathBuf>,
    /// Directories new to the site, whole in the staging directory, relative to both.
    roots: Vec<String>,
}

/// Writes each file whose bytes differ from what the site has; returns what it wrote.
///
/// A file in a directory the site already has is compared with what is there and,
/// when it differs, renamed into place whole (not flushed: [`make_durable`] flushes
/// the batch). A file of a directory the site does not have yet is written straight
/// into the staging directory under the highest missing ancestor (a root of the
/// batch), which [`promote`] renames into place after the barrier.
fn write_changed(site_dir: &Path, files: &[(String, Vec<u8>)]) -> Result<Batch, FsError> {
    let staging = site_dir.join(STAGING_DIR);
    // Each directory once (a page per directory is the common case: one look-up each
    // instead of a `mkdir` per file).
    let dirs: BTreeSet<&Path> = files
        .iter()
        .filter_map(|(path, _)| Path::new(path).parent())
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect();
    let missing: Vec<&Path> = dirs.into_par_iter().filter(|dir| !site_dir.join(dir).is_dir()).collect();
    // The root of each missing directory: its highest ancestor the site lacks.
    let mut exists: HashMap<&Path, bool> = HashMap::new();
    let mut root_of: HashMap<&Path, &Path> = HashMap::with_capacity(missing.len());
    for dir in &missing {
        let mut ancestors: Vec<&Path> = dir.ancestors().filter(|a| !a.as_os_str().is_empty()).collect();
        ancestors.reverse();
        let root = ancestors
            .into_iter()
            .find(|a| !*exists.entry(a).or_insert_with(|| site_dir.join(a).is_dir()))
            .unwrap_or(dir);
        root_of.insert(dir, root);
    }
    missing.par_iter().try_for_each(|dir| trellis_client::fs::create_dir_all(&staging.join(dir)))?;
    let written: Vec<Option<(String, PathBuf)>> = files
        .par_iter()
        .map(|(path, bytes)| {
            if Path::new(path).parent().is_some_and(|dir| root_of.contains_key(dir)) {
                let staged = staging.join(path);
                std::fs::write(&staged, bytes).map_err(|e| FsError::new("writing", &staged, e))?;
                return Ok(Some((path.clone(), staged)));
            }
            let full = site_dir.join(path);
            let same_length = std::fs::metadata(&full).is_ok_and(|m| m.len() == bytes.len() as u64);
            if same_length && std::fs::read(&full).is_ok_and(|existing| &existing == bytes) {
                return Ok(None);
            }
            replace_unsynced(&full, bytes)?;
            Ok(Some((path.clone(), full)))
        })
        .collect::<Result<_, FsError>>()?;
    let (written, flush) = written.into_iter().flatten().unzip();
    let roots: BTreeSet<&Path> = root_of.into_values().collect();
    let roots = roots.into_iter().map(|r| r.to_string_lossy().into_owned()).collect();
    Ok(Batch { written, flush, roots })
}

/// Renames the staged `roots` (made durable before) into place, then flushes the
/// directories that gained them.
fn promote(site_dir: &Path, roots: &[String]) -> Result<(), FsError> {
    let staging = site_dir.join(STAGING_DIR);
    for root in roots {
        let (from, to) = (staging.join(root), site_dir.join(root));
        std::fs::rename(&from, &to).map_err(|e| FsError::new("moving into place the staged directory", from, e))?;
    }
    let parents: BTreeSet<PathBuf> =
        roots.iter().filter_map(|r| site_dir.join(r).parent().map(Path::to_owned)).collect();
    parents.par_iter().try_for_each(|d| trellis_client::fs::sync_dir(d))
}

/// Removes what a staging directory holds (left by a build that stopped, or emptied
/// by [`promote`]).
fn clear_staging(site_dir: &Path) -> Result<(), FsError> {
    let staging = site_dir.join(STAGING_DIR);
    let removed = match std::fs::symlink_metadata(&staging) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&staging),
        Ok(_) => std::fs::remove_file(&staging),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    removed.map_err(|e| FsError::new("removing the staging directory", staging, e))
}

/// Above this many files, one `syncfs` of the whole file system beats a flush each
/// (on a shared disk `syncfs` also waits for other writers' dirty pages: ~1-3 s
/// measured under load, while a one-release build writes under ten files).
const SYNCFS_FROM: usize = 256;

/// Makes the files just written (`written`, full paths) and removed durable before
/// anything names them: one `syncfs` of the site's file system on Linux for a large
/// batch, each file and directory otherwise.
fn make_durable(site_dir: &Path, written: &[PathBuf], removed: &[String]) -> Result<(), FsError> {
    if written.is_empty() && removed.is_empty() {
        return Ok(());
    }
    if written.len() >= SYNCFS_FROM && trellis_client::fs::sync_filesystem(site_dir)? {
        return Ok(());
    }
    let dirs: BTreeSet<PathBuf> = written
        .iter()
        .cloned()
        .chain(removed.iter().map(|p| site_dir.join(p)))
        .filter_map(|p| p.parent().map(Path::to_owned))
        .collect();
    written.par_iter().try_for_each(|path| {
        std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("syncing", path, e))
    })?;
    dirs.par_iter().try_for_each(|d| trellis_client::fs::sync_dir(d))
}

/// Listing members in the catalog's order: most downloaded, best rated, then id.
fn listing_order(a: &PluginSummary, b: &PluginSummary) -> std::cmp::Ordering {
    b.downloads
        .cmp(&a.downloads)
        .then_with(|| b.rating.map(|r| r.tenths).cmp(&a.rating.map(|r| r.tenths)))
        .then_with(|| a.id.cmp(&b.id))
}
