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
//! search/index.html, search/catalog.json   the search page; where the catalog head and shards are
//! assets/<sha256>.<name>              stylesheet, search script, generic icon (content-addressed)
//! images/<sha256>.<png|jpg>           icons and screenshots from the packages (content-addressed)
//! _storefront/                        the storefront's state for incremental builds (not linked)
//! ```
//!
//! Pages live at human-readable paths (stable URLs on GitHub Pages) and name only
//! content-addressed assets. Data: the catalog documents the build just signed (head,
//! record buckets: ratings and downloads are shown when the catalog has them) and, per
//! plugin, what [`page`] reads from its newest release's package. The search page's
//! script reads the same signed catalog shards the client reads and ranks with the
//! client's rules (a port of `trellis_client::catalog::rank`).
//!
//! Two steps around the build: [`prepare`] (before anything is written: reads the
//! changed plugins' packages, refuses an image that does not decode) and [`publish`]
//! (after the build: renders the pages whose inputs changed and writes only those whose
//! bytes differ, images first, pages next, state last, each file atomically). A
//! refused storefront therefore leaves the site as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, replace_unsynced, write_atomic};
use trellis_schema::catalog::{self, CatalogHead, CatalogRecord, PAGE_SIZE, PluginSummary};
use trellis_schema::{PluginId, Sha256};

use crate::build::PreviousSite;
use crate::release::PluginInput;
use crate::site;
use crate::tuf::CATALOG_ROLE;

pub mod page;
mod render;

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
}

/// Per plugin, what the storefront last rendered from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StateEntry {
    digest: String,
    categories: Vec<String>,
    tags: Vec<String>,
    icon: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    theme: String,
    plugins: BTreeMap<PluginId, StateEntry>,
}

fn state_path(site_dir: &Path) -> std::path::PathBuf {
    site_dir.join(STATE_DIR).join("state.json")
}

fn data_path(id: &PluginId) -> String {
    format!("{STATE_DIR}/plugins/{id}.json")
}

/// The catalog the site at `site_dir` serves: its head, every record, and the site
/// paths of the head and of each search shard (for the search page).
struct SiteCatalog {
    head: CatalogHead,
    records: BTreeMap<PluginId, CatalogRecord>,
    head_path: String,
    shards: BTreeMap<String, String>,
    /// Per plugin with visible reviews, its reviews document: site path and SHA-256.
    reviews: BTreeMap<PluginId, (String, Sha256)>,
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
    let mut buckets = Vec::new();
    let mut reviews = BTreeMap::new();
    for (target, file) in &role.signed.targets {
        let Some(sha256) = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()) else { continue };
        let path = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(target, &sha256));
        if target == catalog::HEAD_TARGET {
            head = Some((path, sha256));
        } else if let Some(key) = target.strip_prefix("catalog/search-").and_then(|k| k.strip_suffix(".json")) {
            shards.insert(key.to_owned(), path);
        } else if target.starts_with("catalog/records-") {
            buckets.push((target.clone(), path));
        } else if let Some(id) = target.strip_prefix("catalog/reviews-").and_then(|k| k.strip_suffix(".json")) {
            let id: PluginId = id.parse().map_err(|e| fail(format!("{target}: {e}")))?;
            reviews.insert(id, (path, sha256));
        }
    }
    let read = |path: &str| {
        let full = site_dir.join(path);
        std::fs::read(&full).map_err(|e| StorefrontError::Io(FsError::new("reading", full, e)))
    };
    let (head_path, _) = head.ok_or_else(|| fail("the catalog role lists no head.json".into()))?;
    let head =
        catalog::parse_head(&read(&head_path)?, &catalog::CatalogLimits::default()).map_err(|e| fail(e.to_string()))?;
    let parsed: Vec<Vec<CatalogRecord>> = buckets
        .par_iter()
        .map(|(target, path)| {
            catalog::parse_records(target, &read(path)?).map(|b| b.records).map_err(|e| fail(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let records = parsed.into_iter().flatten().map(|r| (r.summary.id.clone(), r)).collect();
    Ok(SiteCatalog { head, records, head_path, shards, reviews })
}

/// What a plugin page shows from the catalog: its summary and its reviews document.
fn record_digest(record: &CatalogRecord, reviews: Option<&Sha256>) -> String {
    let mut bytes = serde_json::to_vec(&record.summary).unwrap_or_default();
    if let Some(reviews) = reviews {
        bytes.extend_from_slice(reviews.to_hex().as_bytes());
    }
    Sha256::of(&bytes).to_hex()
}

/// The reviews document of `id` the site serves, when it has one.
fn read_reviews(
    site_dir: &Path,
    id: &PluginId,
    reviews: &BTreeMap<PluginId, (String, Sha256)>,
) -> Result<Option<catalog::PluginReviews>, StorefrontError> {
    let Some((path, _)) = reviews.get(id) else { return Ok(None) };
    let full = site_dir.join(path);
    let bytes = std::fs::read(&full).map_err(|e| StorefrontError::Io(FsError::new("reading", full, e)))?;
    catalog::parse_reviews(id, &bytes, &catalog::CatalogLimits::default())
        .map(Some)
        .map_err(|e| StorefrontError::Catalog(e.to_string()))
}

/// Renders the storefront of the site at `site_dir` from the catalog it serves and
/// writes what changed (see the module doc). `prepared` holds the plugins the build
/// changed; a plugin whose catalog record changed without a new release gets its page
/// from the data kept in `_storefront/`, or from `load` (opening its package) when
/// there is none.
pub fn publish(
    prepared: Prepared,
    site_dir: &Path,
    theme: &Theme,
    load: &(dyn Fn(&BTreeSet<PluginId>) -> Result<Prepared, StorefrontError> + Sync),
) -> Result<StorefrontReport, StorefrontError> {
    let SiteCatalog { head, records, head_path, shards, reviews } = read_catalog(site_dir)?;
    let old: State = std::fs::read(state_path(site_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let everything = old.theme != theme.digest();

    // Which plugins changed since the storefront last rendered.
    let digests: BTreeMap<&PluginId, String> =
        records.iter().map(|(id, r)| (id, record_digest(r, reviews.get(id).map(|(_, sha)| sha)))).collect();
    let mut changed: BTreeSet<PluginId> = prepared.pages.keys().cloned().collect();
    for (id, digest) in &digests {
        if everything || old.plugins.get(*id).is_none_or(|e| &e.digest != digest) {
            changed.insert((*id).clone());
        }
    }
    changed.extend(old.plugins.keys().filter(|id| !records.contains_key(*id)).cloned());

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

    // The new state: icons of unchanged plugins are kept.
    let mut state = State { theme: theme.digest(), plugins: BTreeMap::new() };
    for (id, record) in &records {
        let icon = match data.get(id) {
            Some(Some(page)) => page.icon.clone(),
            _ => old.plugins.get(id).and_then(|e| e.icon.clone()),
        };
        state.plugins.insert(
            id.clone(),
            StateEntry {
                digest: digests.get(id).cloned().unwrap_or_default(),
                categories: record.summary.categories.clone(),
                tags: record.summary.tags.clone(),
                icon,
            },
        );
    }

    // Which listings and publishers to redo: those of the changed plugins, before and after.
    let mut categories = BTreeSet::new();
    let mut tags = BTreeSet::new();
    let mut vendors = BTreeSet::new();
    for id in &changed {
        for entry in [old.plugins.get(id), state.plugins.get(id)].into_iter().flatten() {
            categories.extend(entry.categories.iter().cloned());
            tags.extend(entry.tags.iter().cloned());
        }
        vendors.insert(id.vendor().to_owned());
    }
    let icons = state_icons(&state);
    let context = render::Context::new(theme, &head, &records, &icons, &shards, &head_path);
    let mut pages: Vec<(String, Vec<u8>)> = Vec::new();
    pages.extend(context.fixed_pages()?);
    pages.extend(context.listings(catalog::ListingKind::Category, &categories)?);
    pages.extend(context.listings(catalog::ListingKind::Tag, &tags)?);
    pages.extend(context.publishers(&vendors)?);
    let plugin_pages: Vec<Vec<(String, Vec<u8>)>> = changed
        .par_iter()
        .filter_map(|id| Some((records.get(id)?, id)))
        .map(|(record, id)| {
            let page = data.get(id).and_then(Option::as_ref);
            let reviews = read_reviews(site_dir, id, &reviews)?;
            let mut out = vec![context.plugin_page(record, page, reviews.as_ref())?];
            if let Some(page) = page {
                out.push((data_path(id), serde_json::to_vec(page).unwrap_or_default()));
            }
            Ok(out)
        })
        .collect::<Result<_, StorefrontError>>()?;
    pages.extend(plugin_pages.into_iter().flatten());
    let rendered = pages.len();

    // Write: images and assets (content-addressed), pages, removals, state last.
    let mut report = StorefrontReport { rendered, ..StorefrontReport::default() };
    let mut assets: Vec<(String, Vec<u8>)> = theme.assets().into_iter().map(|(p, b)| (p, b.to_vec())).collect();
    images.sort_by(|a, b| a.path.cmp(&b.path));
    images.dedup_by(|a, b| a.path == b.path);
    assets.extend(images.into_iter().map(|i| (i.path, i.bytes.to_vec())));
    report.written.extend(write_changed(site_dir, &assets)?);
    report.written.extend(write_changed(site_dir, &pages)?);
    for id in changed.iter().filter(|id| !records.contains_key(*id)) {
        for path in [format!("plugins/{id}/index.html"), data_path(id)] {
            if std::fs::remove_file(site_dir.join(&path)).is_ok() {
                report.removed.push(path);
            }
        }
    }
    // One durability barrier for everything above, then the state that trusts it.
    make_durable(site_dir, &report.written, &report.removed)?;
    let state_bytes = serde_json::to_vec(&state).unwrap_or_default();
    let state_file = state_path(site_dir);
    if !std::fs::read(&state_file).is_ok_and(|existing| existing == state_bytes) {
        trellis_client::fs::create_dir_all(state_file.parent().unwrap_or(site_dir))?;
        write_atomic(&state_file, &state_bytes)?;
        report.written.push(format!("{STATE_DIR}/state.json"));
    }
    report.written.sort();
    report.removed.sort();
    Ok(report)
}

fn state_icons(state: &State) -> BTreeMap<PluginId, String> {
    state.plugins.iter().filter_map(|(id, e)| Some((id.clone(), e.icon.clone()?))).collect()
}

/// Writes each file whose bytes differ from what the site has (in parallel, each
/// renamed into place whole but not flushed: [`make_durable`] flushes the batch);
/// returns the paths written.
fn write_changed(site_dir: &Path, files: &[(String, Vec<u8>)]) -> Result<Vec<String>, FsError> {
    let written: Vec<Option<String>> = files
        .par_iter()
        .map(|(path, bytes)| {
            let full = site_dir.join(path);
            let same_length = std::fs::metadata(&full).is_ok_and(|m| m.len() == bytes.len() as u64);
            if same_length && std::fs::read(&full).is_ok_and(|existing| &existing == bytes) {
                return Ok(None);
            }
            if let Some(parent) = full.parent() {
                trellis_client::fs::create_dir_all(parent)?;
            }
            replace_unsynced(&full, bytes)?;
            Ok(Some(path.clone()))
        })
        .collect::<Result<_, FsError>>()?;
    Ok(written.into_iter().flatten().collect())
}

/// Above this many files, one `syncfs` of the whole file system beats a flush each
/// (on a shared disk `syncfs` also waits for other writers' dirty pages: ~1-3 s
/// measured under load, while a one-release build writes under ten files).
const SYNCFS_FROM: usize = 256;

/// Makes the files just written (relative to `site_dir`) and removed durable before
/// the state names them: one `syncfs` of the site's file system on Linux for a large
/// batch, each file and directory otherwise.
fn make_durable(site_dir: &Path, written: &[String], removed: &[String]) -> Result<(), FsError> {
    if written.is_empty() && removed.is_empty() {
        return Ok(());
    }
    if written.len() >= SYNCFS_FROM && trellis_client::fs::sync_filesystem(site_dir)? {
        return Ok(());
    }
    let dirs: BTreeSet<std::path::PathBuf> =
        written.iter().chain(removed).filter_map(|p| site_dir.join(p).parent().map(Path::to_owned)).collect();
    written.par_iter().try_for_each(|p| {
        let path = site_dir.join(p);
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("syncing", path, e))
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

/// Pages of a listing of `total` plugins.
fn pages_of(total: usize) -> usize {
    total.div_ceil(PAGE_SIZE).max(1)
}
