//! The security level of each release on the storefront, read from the levels buckets
//! the site serves (`security/levels-<xx>.json`, signed by the `security` role).
//!
//! Owns which plugins' levels changed since the storefront last rendered (only the
//! buckets whose SHA-256 moved are read: ages and advisories move levels without any
//! catalog document changing, and the catalog summaries stay free of levels so they
//! are not rewritten daily; per bucket, `_storefront/levels-<xx>.json` keeps the
//! SHA-256 of each plugin's entry as published and its releases' levels, so a bucket
//! read is split into entries and only those whose digest moved are parsed), the
//! levels a card shows (each listing page keeps the level of each card it rendered in
//! `_storefront/cards/<page>.json`, a publisher page with its members in
//! `_storefront/publishers/<vendor>.json`, so redoing a page reads that one small file
//! rather than the kept levels of every bucket its hundred cards fall in), and the
//! lines the plugin page shows (each release's level with its reasons, the
//! publisher's domain proof). [`super::publish`] reads and writes the files.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use trellis_schema::catalog::PluginSummary;
use trellis_schema::security_level::{Level, PluginLevels};
use trellis_schema::{PluginId, Sha256};

use super::{Document, STATE_DIR, StorefrontError};

/// The levels buckets the site serves, by bucket number.
pub(super) type SiteBuckets = BTreeMap<u8, (String, Document)>;

/// What the storefront keeps of one plugin's levels: the digest of its entry in the
/// bucket and the level of each release (what a card needs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Kept {
    /// The SHA-256 of the plugin's entry in the bucket, as published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
    /// What an older trellis-index kept instead: the SHA-256 of the entry parsed and
    /// serialized again (compared once, then replaced by `entry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    levels: BTreeMap<String, Level>,
}

impl Kept {
    fn new(entry: String, levels: &PluginLevels) -> Self {
        let levels = levels.releases.iter().map(|r| (r.version.to_string(), r.level)).collect();
        Self { entry: Some(entry), digest: None, levels }
    }
}

/// The kept levels of one bucket, by plugin.
pub(super) type KeptBucket = BTreeMap<PluginId, Kept>;

pub(super) fn kept_path(bucket: u8) -> String {
    format!("{STATE_DIR}/levels-{bucket:02x}.json")
}

/// A levels bucket as published, split into its plugins' entries, unparsed: at 300k
/// plugins a bucket holds ~1,200 plugins (~1 MB), and a build that changes one of them
/// parses that one's entry (and those of the pages it redoes), digesting the others'
/// bytes to tell they did not change.
pub(super) struct RawBucket {
    target: String,
    bytes: Arc<[u8]>,
    /// Each plugin's entry (the bytes of its `PluginLevels` object), by id.
    entries: Vec<(PluginId, Range<usize>)>,
}

impl RawBucket {
    /// Reads `document` ([`Document::read_shared`]: the bytes its signed role lists)
    /// and splits it: a [`trellis_schema::security_level::LevelsBucket`] object whose
    /// plugins are distinct plugin ids.
    fn read(site_dir: &Path, target: &str, document: &Document) -> Result<Self, StorefrontError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Split<'a> {
            #[serde(rename = "format")]
            _format: u32,
            #[serde(borrow)]
            plugins: Entries<'a>,
        }
        let invalid = |reason: String| StorefrontError::Catalog(format!("{target}: {reason}"));
        let bytes = document.read_shared(site_dir)?;
        let split: Split<'_> = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let base = bytes.as_ptr() as usize;
        let mut entries = split
            .plugins
            .0
            .into_iter()
            .map(|(id, raw)| {
                let id: PluginId = id.parse().map_err(|e| invalid(format!("{id:?}: {e}")))?;
                // A borrowed raw value is a slice of the bytes parsed.
                let start = (raw.get().as_ptr() as usize).wrapping_sub(base);
                let range = start..start + raw.get().len();
                match bytes.get(range.clone()) {
                    Some(entry) if entry == raw.get().as_bytes() => Ok((id, range)),
                    _ => Err(invalid(format!("the entry of {id} is not where it was read"))),
                }
            })
            .collect::<Result<Vec<_>, StorefrontError>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(invalid(format!("{} is listed twice", pair[0].0)));
        }
        Ok(Self { target: target.to_owned(), bytes, entries })
    }

    /// Each plugin and the bytes of its entry, in id order.
    fn entries(&self) -> impl Iterator<Item = (&PluginId, &[u8])> {
        self.entries.iter().map(|(id, range)| (id, &self.bytes[range.clone()]))
    }

    /// `id`'s levels, parsed strictly; `None` when the bucket has no entry for it.
    fn levels(&self, id: &PluginId) -> Result<Option<PluginLevels>, StorefrontError> {
        match self.entries.binary_search_by(|(listed, _)| listed.cmp(id)) {
            Ok(index) => self.parse(id, &self.bytes[self.entries[index].1.clone()]).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn parse(&self, id: &PluginId, entry: &[u8]) -> Result<PluginLevels, StorefrontError> {
        trellis_schema::json::from_slice(entry)
            .map_err(|e| StorefrontError::Catalog(format!("{}: the entry of {id}: {e}", self.target)))
    }
}

/// The members of a JSON object in the order written, its values unparsed.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of plugin ids")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// What changed in the levels since the storefront last rendered.
#[derive(Default)]
pub(super) struct LevelChanges {
    /// The buckets read (those whose document changed), split.
    pub read: BTreeMap<u8, RawBucket>,
    /// The new kept levels of those buckets.
    pub kept: BTreeMap<u8, KeptBucket>,
    /// Plugins whose levels changed (pages to redo).
    pub changed: BTreeSet<PluginId>,
}

/// Reads the buckets whose SHA-256 differs from `old` (every bucket when
/// `everything`) and compares each plugin's entry with the kept digest of it: only
/// the entries that changed (or that nothing was kept of) are parsed.
pub(super) fn changes(
    site_dir: &Path,
    buckets: &SiteBuckets,
    old: &BTreeMap<String, String>,
    everything: bool,
) -> Result<LevelChanges, StorefrontError> {
    let read: Vec<(u8, RawBucket, KeptBucket, Vec<PluginId>)> = buckets
        .par_iter()
        .filter(|(_, (target, doc))| everything || old.get(target) != Some(&doc.file.sha256.to_hex()))
        .map(|(number, (target, doc))| {
            let bucket = RawBucket::read(site_dir, target, doc)?;
            let mut before = if everything { KeptBucket::new() } else { read_kept(site_dir, *number) };
            let mut kept = KeptBucket::new();
            let mut changed = Vec::new();
            for (id, entry) in bucket.entries() {
                let digest = Sha256::of(entry).to_hex();
                let (same, now) = match before.remove(id) {
                    Some(k) if k.entry.as_ref() == Some(&digest) => (true, k),
                    // Kept by an older trellis-index: its digest of the entry parsed and
                    // serialized again.
                    Some(Kept { entry: None, digest: Some(old), .. }) => {
                        let levels = bucket.parse(id, entry)?;
                        let same = Sha256::of(&serde_json::to_vec(&levels).unwrap_or_default()).to_hex() == old;
                        (same, Kept::new(digest, &levels))
                    }
                    _ => (false, Kept::new(digest, &bucket.parse(id, entry)?)),
                };
                if !same {
                    changed.push(id.clone());
                }
                kept.insert(id.clone(), now);
            }
            // Plugins the bucket no longer lists.
            changed.extend(before.into_keys());
            Ok((*number, bucket, kept, changed))
        })
        .collect::<Result<_, StorefrontError>>()?;
    let mut out = LevelChanges::default();
    for (number, bucket, kept, changed) in read {
        out.changed.extend(changed);
        out.read.insert(number, bucket);
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
            let bucket = match (changes.read.get(number), buckets.get(number)) {
                (Some(bucket), _) => bucket,
                (None, Some((target, doc))) => {
                    read = RawBucket::read(site_dir, target, doc)?;
                    &read
                }
                (None, None) => return Ok(Vec::new()),
            };
            let mut found = Vec::new();
            for id in ids {
                if let Some(levels) = bucket.levels(id)? {
                    found.push(((*id).clone(), levels));
                }
            }
            Ok(found)
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

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_schema::canonical;
    use trellis_schema::security_level::{LEVELS_FORMAT, LevelsBucket, PublisherStanding, ReleaseLevel, ScanOutcome};

    /// Levels whose strings hold what a split must step over: quotes, escapes, brackets.
    fn levels(n: u64, reason: &str) -> PluginLevels {
        PluginLevels {
            publisher: PublisherStanding {
                verified: false,
                domain: None,
                reason: Some(reason.to_owned()),
                checked: None,
            },
            releases: (0..=n)
                .map(|minor| ReleaseLevel {
                    version: semver::Version::new(1, minor, 0),
                    published: "2026-10-01".to_owned(),
                    signing_keys: 1,
                    max_permission_risk: None,
                    scan: ScanOutcome::NotRun,
                    advisory: None,
                    level: Level::Signed,
                    reasons: Vec::new(),
                })
                .collect(),
        }
    }

    fn document(bytes: Vec<u8>) -> Document {
        let file = super::super::TargetFile { target: "security/levels-00.json".into(), sha256: Sha256::of(&bytes) };
        Document { file, bytes: Some(Arc::from(bytes)) }
    }

    fn split(bytes: &[u8]) -> Result<RawBucket, StorefrontError> {
        RawBucket::read(Path::new("/nonexistent"), "security/levels-00.json", &document(bytes.to_vec()))
    }

    #[test]
    fn a_bucket_splits_into_each_plugins_entry_as_published() {
        let reasons = ["plain", "a \"quoted\" } ] { [", "back\\slash \\\" }"];
        let bucket = LevelsBucket {
            format: LEVELS_FORMAT,
            plugins: (0..3u64)
                .map(|n| (format!("v{n}.plugin").parse().unwrap(), levels(n, reasons[n as usize])))
                .collect(),
        };
        let raw = split(&canonical::to_vec_of(&bucket).unwrap()).unwrap();
        let entries: Vec<(&PluginId, &[u8])> = raw.entries().collect();
        assert_eq!(entries.len(), 3);
        for ((id, entry), (expected_id, levels)) in entries.into_iter().zip(&bucket.plugins) {
            assert_eq!(id, expected_id);
            assert_eq!(entry, canonical::to_vec_of(levels).unwrap().as_slice(), "{id}");
            assert_eq!(raw.levels(id).unwrap().as_ref(), Some(levels));
        }
        assert_eq!(raw.levels(&"v9.absent".parse().unwrap()).unwrap(), None);
    }

    #[test]
    fn a_bucket_that_repeats_a_plugin_or_is_not_a_levels_bucket_is_refused_naming_it() {
        let entry = String::from_utf8(canonical::to_vec_of(&levels(0, "r")).unwrap()).unwrap();
        let cases = [
            (format!("{{\"format\":1,\"plugins\":{{\"a.one\":{entry},\"a.one\":{entry}}}}}"), "a.one is listed twice"),
            (format!("{{\"format\":1,\"plugins\":{{\"NOT AN ID\":{entry}}}}}"), "NOT AN ID"),
            ("{\"format\":1,\"plugins\":{},\"more\":1}".to_owned(), "more"),
            ("{\"plugins\":{}}".to_owned(), "format"),
            ("{\"format\":1,\"plugins\":[]}".to_owned(), "an object of plugin ids"),
        ];
        for (bytes, named) in cases {
            let error = split(bytes.as_bytes()).err().unwrap_or_else(|| panic!("{bytes} was taken")).to_string();
            assert!(error.contains("security/levels-00.json") && error.contains(named), "{bytes}: {error}");
        }
        // An entry is parsed strictly when asked for: a repeated member is refused.
        let bytes = "{\"format\":1,\"plugins\":{\"a.one\":{\"publisher\":{},\"publisher\":{}}}}";
        let raw = split(bytes.as_bytes()).unwrap();
        let error = raw.levels(&"a.one".parse().unwrap()).unwrap_err().to_string();
        assert!(error.contains("the entry of a.one"), "{error}");
    }
}
