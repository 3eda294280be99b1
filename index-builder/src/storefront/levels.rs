//! The security level of each release on the storefront, read from the levels buckets
//! the site serves (`security/levels-<xx>.json`, signed by the `security` role).
//!
//! Owns which plugins' levels changed since the storefront last rendered (only the
//! buckets whose SHA-256 moved are read: ages and advisories move levels without any
//! catalog document changing, and the catalog summaries stay free of levels so they
//! are not rewritten daily; each plugin's levels kept compact per bucket in
//! `_storefront/levels-<xx>.json` to tell what moved), the levels a card shows (each
//! listing page keeps the level of each card it rendered in
//! `_storefront/cards/<page>.json`, a publisher page with its members in
//! `_storefront/publishers/<vendor>.json`, so redoing a page reads that one small file
//! rather than the kept levels of every bucket its hundred cards fall in), and the
//! lines the plugin page shows (each release's level with its reasons, the
//! publisher's domain proof). [`super::publish`] reads and writes the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_schema::catalog::PluginSummary;
use trellis_schema::security_level::{Level, LevelsBucket, PluginLevels};
use trellis_schema::{PluginId, Sha256};

use super::{Document, STATE_DIR, StorefrontError};

/// The levels buckets the site serves, by bucket number.
pub(super) type SiteBuckets = BTreeMap<u8, (String, Document)>;

/// What the storefront keeps of one plugin's levels: their digest and the level of
/// each release (what a card needs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Kept {
    digest: String,
    levels: BTreeMap<String, Level>,
}

/// The kept levels of one bucket, by plugin.
pub(super) type KeptBucket = BTreeMap<PluginId, Kept>;

pub(super) fn kept_path(bucket: u8) -> String {
    format!("{STATE_DIR}/levels-{bucket:02x}.json")
}

fn parse_bucket(site_dir: &Path, target: &str, document: &Document) -> Result<LevelsBucket, StorefrontError> {
    trellis_schema::json::from_slice(&document.read(site_dir)?)
        .map_err(|e| StorefrontError::Catalog(format!("{target}: {e}")))
}

fn kept_of(levels: &PluginLevels) -> Kept {
    Kept {
        digest: Sha256::of(&serde_json::to_vec(levels).unwrap_or_default()).to_hex(),
        levels: levels.releases.iter().map(|r| (r.version.to_string(), r.level)).collect(),
    }
}

/// What changed in the levels since the storefront last rendered.
#[derive(Debug, Default)]
pub(super) struct LevelChanges {
    /// The buckets read (those whose document changed), parsed.
    pub parsed: BTreeMap<u8, LevelsBucket>,
    /// The new kept levels of those buckets.
    pub kept: BTreeMap<u8, KeptBucket>,
    /// Plugins whose levels changed (pages to redo).
    pub changed: BTreeSet<PluginId>,
}

/// Reads the buckets whose SHA-256 differs from `old` (every bucket when
/// `everything`) and compares each plugin's levels with the kept ones.
pub(super) fn changes(
    site_dir: &Path,
    buckets: &SiteBuckets,
    old: &BTreeMap<String, String>,
    everything: bool,
) -> Result<LevelChanges, StorefrontError> {
    let read: Vec<(u8, LevelsBucket, KeptBucket, KeptBucket)> = buckets
        .par_iter()
        .filter(|(_, (target, doc))| everything || old.get(target) != Some(&doc.sha256.to_hex()))
        .map(|(number, (target, doc))| {
            let bucket = parse_bucket(site_dir, target, doc)?;
            let kept: KeptBucket = bucket.plugins.iter().map(|(id, levels)| (id.clone(), kept_of(levels))).collect();
            let before = if everything { KeptBucket::new() } else { read_kept(site_dir, *number) };
            Ok((*number, bucket, kept, before))
        })
        .collect::<Result<_, StorefrontError>>()?;
    let mut out = LevelChanges::default();
    for (number, bucket, kept, before) in read {
        out.changed.extend(kept.iter().filter(|(id, k)| before.get(*id) != Some(*k)).map(|(id, _)| id.clone()));
        out.changed.extend(before.keys().filter(|id| !kept.contains_key(*id)).cloned());
        out.parsed.insert(number, bucket);
        out.kept.insert(number, kept);
    }
    Ok(out)
}

/// The kept levels of bucket `number` (none when it cannot be read: its plugins'
/// cards then show no level until the bucket changes or a full render).
fn read_kept(site_dir: &Path, number: u8) -> KeptBucket {
    std::fs::read(site_dir.join(kept_path(number)))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The level of each card one page shows, as it rendered them
/// (`_storefront/cards/<page>.json` for a listing page, with the members for a
/// publisher's): plugin → (version shown, its level, `None` when the site names none).
pub(super) type PageCards = BTreeMap<PluginId, (String, Option<Level>)>;

/// The kept cards of the listing page `key` (`category-<name>-<page>`, `tag-…`; a
/// publisher page's were kept as `publisher-<vendor>` before they moved in with its
/// members).
pub(super) fn cards_path(key: &str) -> String {
    format!("{STATE_DIR}/cards/{key}.json")
}

/// Where the levels a page's cards showed when it was last rendered are kept.
pub(super) enum KeptCards<'a> {
    /// In the page's own file (a listing page: the key of [`cards_path`]).
    File(String),
    /// Read already (a publisher page: with its members); `None`: none kept.
    Given(Option<&'a PageCards>),
}

/// The level of the version each of `summaries` shows, from the levels buckets
/// `changes` read (every bucket when rendering everything). A plugin in a bucket
/// `changes` did not read has none here.
pub(super) fn read_levels<'a>(
    changes: &LevelChanges,
    summaries: impl IntoIterator<Item = &'a PluginSummary>,
) -> BTreeMap<PluginId, Level> {
    summaries
        .into_iter()
        .filter_map(|summary| {
            let bucket = changes.kept.get(&trellis_schema::security_level::levels_bucket(&summary.id))?;
            Some((summary.id.clone(), *bucket.get(&summary.id)?.levels.get(&summary.version.to_string())?))
        })
        .collect()
}

/// The levels of the cards of `pages` (where each keeps the levels its cards showed,
/// and the plugins it shows), by plugin: the level of the version shown (absent: none).
///
/// A card's level is taken, in order, from the levels buckets `changes` read (they
/// are current), from the page's own kept cards when they name the same version (a
/// plugin's level moves only with its levels bucket, and then `changes` redoes every
/// page showing it, rewriting those files), and only for what is left from the
/// kept levels of the plugin's bucket. A one-release build thus reads the few pages'
/// small files it renders, not the state of every bucket their cards fall in.
pub(super) fn card_levels(
    site_dir: &Path,
    changes: &LevelChanges,
    pages: &[(KeptCards<'_>, &[PluginSummary])],
) -> BTreeMap<PluginId, Level> {
    let mut out = BTreeMap::new();
    let mut settled: BTreeSet<&PluginId> = BTreeSet::new();
    let from_bucket = |summary: &PluginSummary, out: &mut BTreeMap<PluginId, Level>| -> bool {
        let number = trellis_schema::security_level::levels_bucket(&summary.id);
        let Some(bucket) = changes.kept.get(&number) else { return false };
        let level = bucket.get(&summary.id).and_then(|k| k.levels.get(&summary.version.to_string()));
        if let Some(level) = level {
            out.insert(summary.id.clone(), *level);
        }
        true
    };
    let mut open: Vec<(&KeptCards<'_>, Vec<&PluginSummary>)> = Vec::new();
    for (key, members) in pages {
        let mut left = Vec::new();
        for summary in *members {
            if settled.contains(&summary.id) {
                continue;
            }
            if from_bucket(summary, &mut out) {
                settled.insert(&summary.id);
            } else {
                left.push(summary);
            }
        }
        if !left.is_empty() {
            open.push((key, left));
        }
    }
    // The pages' own kept cards, read in parallel.
    let kept: Vec<(Vec<&PluginSummary>, std::borrow::Cow<'_, PageCards>)> = open
        .into_par_iter()
        .map(|(kept, left)| {
            let cards = match kept {
                KeptCards::File(key) => std::borrow::Cow::Owned(
                    std::fs::read(site_dir.join(cards_path(key)))
                        .ok()
                        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                        .unwrap_or_default(),
                ),
                KeptCards::Given(Some(cards)) => std::borrow::Cow::Borrowed(*cards),
                KeptCards::Given(None) => std::borrow::Cow::Owned(PageCards::new()),
            };
            (left, cards)
        })
        .collect();
    let mut rest: BTreeMap<u8, Vec<&PluginSummary>> = BTreeMap::new();
    for (left, cards) in kept {
        for summary in left {
            if settled.contains(&summary.id) {
                continue;
            }
            match cards.get(&summary.id) {
                Some((version, level)) if *version == summary.version.to_string() => {
                    if let Some(level) = level {
                        out.insert(summary.id.clone(), *level);
                    }
                    settled.insert(&summary.id);
                }
                _ => {
                    let number = trellis_schema::security_level::levels_bucket(&summary.id);
                    rest.entry(number).or_default().push(summary);
                }
            }
        }
    }
    // What no page kept (a plugin new to the page, a state from an older
    // trellis-index): the kept levels of its bucket.
    let found: Vec<Vec<(PluginId, Level)>> = rest
        .into_par_iter()
        .map(|(number, summaries)| {
            let bucket = read_kept(site_dir, number);
            summaries
                .into_iter()
                .filter(|s| !settled.contains(&s.id))
                .filter_map(|s| Some((s.id.clone(), *bucket.get(&s.id)?.levels.get(&s.version.to_string())?)))
                .collect()
        })
        .collect();
    out.extend(found.into_iter().flatten());
    out
}

/// The kept cards of a page showing `members` with `levels` (from [`card_levels`]).
pub(super) fn page_cards(members: &[PluginSummary], levels: &BTreeMap<PluginId, Level>) -> PageCards {
    members.iter().map(|s| (s.id.clone(), (s.version.to_string(), levels.get(&s.id).copied()))).collect()
}

/// The full levels of `ids` (their plugin pages' lines): from `changes` for the
/// buckets it read, the others read now.
pub(super) fn plugin_levels<'a>(
    site_dir: &Path,
    buckets: &SiteBuckets,
    changes: &LevelChanges,
    ids: impl IntoIterator<Item = &'a PluginId>,
) -> Result<BTreeMap<PluginId, PluginLevels>, StorefrontError> {
    let wanted: BTreeMap<u8, Vec<&PluginId>> = ids.into_iter().fold(BTreeMap::new(), |mut map, id| {
        map.entry(trellis_schema::security_level::levels_bucket(id)).or_default().push(id);
        map
    });
    let found: Vec<Vec<(PluginId, PluginLevels)>> = wanted
        .par_iter()
        .map(|(number, ids)| {
            let read;
            let bucket = match (changes.parsed.get(number), buckets.get(number)) {
                (Some(bucket), _) => bucket,
                (None, Some((target, doc))) => {
                    read = parse_bucket(site_dir, target, doc)?;
                    &read
                }
                (None, None) => return Ok(Vec::new()),
            };
            Ok(ids.iter().filter_map(|id| Some(((*id).clone(), bucket.plugins.get(*id)?.clone()))).collect())
        })
        .collect::<Result<_, StorefrontError>>()?;
    Ok(found.into_iter().flatten().collect())
}

/// What a level means, in a sentence a card's tooltip and the plugin page show.
pub(super) fn meaning(level: Level) -> &'static str {
    match level {
        Level::Flagged => "something is known to be wrong with this release",
        Level::Signed => "signed by its developer; nothing more is known yet",
        Level::Established => {
            "signed, modest permissions, no open advisory, and time or a verified publisher behind it"
        }
        Level::Verified => "established, from a verified publisher, signed by two or more keys and scanned clean",
    }
}
