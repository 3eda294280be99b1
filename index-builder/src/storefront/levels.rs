//! The security level of each release on the storefront, read from the levels buckets
//! the site serves (`security/levels-<xx>.json`, signed by the `security` role).
//!
//! Owns which plugins' levels changed since the storefront last rendered (only the
//! buckets whose SHA-256 moved are read: ages and advisories move levels without any
//! catalog document changing, and the catalog summaries stay free of levels so they
//! are not rewritten daily), the levels a card shows (the level of the release a
//! listing shows, kept compact per bucket in `_storefront/levels-<xx>.json`), and the
//! lines the plugin page shows (each release's level with its reasons, the
//! publisher's domain proof). [`super::publish`] reads and writes the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_schema::security_level::{Level, LevelsBucket, PluginLevels};
use trellis_schema::{PluginId, Sha256};

use super::{Document, STATE_DIR, StorefrontError, read_file};

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
    trellis_schema::json::from_slice(&read_file(site_dir, &document.path)?)
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

/// The levels of `ids`' releases, for their cards: from `changes` for the buckets it
/// read, from the kept files for the others (one read per bucket `ids` fall in).
pub(super) fn card_levels<'a>(
    site_dir: &Path,
    changes: &LevelChanges,
    ids: impl IntoIterator<Item = &'a PluginId>,
) -> BTreeMap<PluginId, BTreeMap<String, Level>> {
    let wanted: BTreeMap<u8, BTreeSet<&PluginId>> = ids.into_iter().fold(BTreeMap::new(), |mut map, id| {
        map.entry(trellis_schema::security_level::levels_bucket(id)).or_default().insert(id);
        map
    });
    let found: Vec<Vec<(PluginId, BTreeMap<String, Level>)>> = wanted
        .into_par_iter()
        .map(|(n, ids)| {
            let pick = |bucket: &KeptBucket| -> Vec<(PluginId, BTreeMap<String, Level>)> {
                ids.iter().filter_map(|id| Some(((*id).clone(), bucket.get(*id)?.levels.clone()))).collect()
            };
            match changes.kept.get(&n) {
                Some(bucket) => pick(bucket),
                None => pick(&read_kept(site_dir, n)),
            }
        })
        .collect();
    found.into_iter().flatten().collect()
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
