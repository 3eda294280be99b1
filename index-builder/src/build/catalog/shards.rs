//! The search shards of an incremental build, and the shard layout kept beside the
//! site so it can redo them without reading every shard under a changed term's key.
//!
//! A shard over [`catalog::SHARD_BUDGET`] is split by longer key prefixes
//! (`split_shard` in the parent module): whether key K is split depends on the size
//! S(K) its *unsplit* shard would have (every term under K with its best postings and
//! the summaries they point at). Without S(K), an incremental build had to read every
//! shard under the two-character key of each term of a changed plugin to redo those
//! splits: ~265 documents, 9 MB, for one release at 100k plugins.
//!
//! [`ShardLayout`] keeps, for every split key, what is known of S(K) (an interval: a
//! build that does not recompute it widens it by a bound on how much its changes can
//! move it, [`Change::bound`]) and the most postings under K pointing at one plugin,
//! in `_catalog/shards.json` of the site (builder state, not a TUF target, never
//! served). Each entry is bound to the SHA-256 of the list of shards published under
//! its key (targets and their SHA-256), so it is used only for exactly the shards it
//! describes: a lost, torn, foreign or stale entry (an older builder, a build that
//! crashed after publishing, an edited site) makes that key "unknown", and a key
//! whose split is unknown or uncertain (its interval reaches the budget) is redone
//! from every shard under it, as before this state existed, which also measures it
//! again. So a bad state costs time, never a wrong document.
//!
//! With the layout, each changed term is redone in the one shard that holds it (the
//! shard of its key under the split keys, or the "stay" shard of a split key as long
//! as the term), plus, for a shard that no longer fits, its new split; split keys
//! above are kept split while their interval stays above the budget.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_client::fs::FsError;
use trellis_schema::catalog::{self, CatalogRecord, POSTINGS_PER_TERM, PluginSummary, SearchShard, TermPostings};
use trellis_schema::{PluginId, Sha256};

use super::super::{BuildError, state};
use super::incremental::{PublishedCatalog, best, generous, published_error};
use super::{Posting, ShardPostings, TermList};

/// The state file, relative to the site directory.
pub(crate) const SHARDS_STATE: &str = "_catalog/shards.json";

/// Format of [`SHARDS_STATE`]; another one is not read.
const FORMAT: u32 = 1;

/// Prefix of every search shard target.
const SEARCH_PREFIX: &str = "catalog/search-";

/// What is known of a split key: its unsplit shard is `lo..=hi` bytes, and at most
/// `refs` of its postings point at any one plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::build) struct NodeSize {
    lo: u64,
    hi: u64,
    refs: u32,
}

impl NodeSize {
    /// A key whose unsplit shard is exactly `size` bytes, at most `refs` postings a plugin.
    pub(in crate::build) fn exact(size: u64, refs: u32) -> Self {
        Self { lo: size, hi: size, refs }
    }
}

/// The file: key → `[lo, hi, refs, sha256 of the shards listed under the key]`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    split: BTreeMap<String, (u64, u64, u32, String)>,
}

/// The split keys of a catalog's search shards and what is known of their sizes (see
/// the module docs). Read from the site by an incremental build, updated by it (or
/// made by a build from every record), written after the catalog is published.
#[derive(Debug, Default)]
pub struct ShardLayout {
    /// Key → size, and the digest of the shards under the key it describes (`None`:
    /// the ones the catalog being written lists, computed when written).
    split: BTreeMap<String, (NodeSize, Option<Sha256>)>,
}

impl ShardLayout {
    /// The layout a build computed from every record.
    pub(in crate::build) fn exact(split: Vec<(String, NodeSize)>) -> Self {
        Self { split: split.into_iter().map(|(key, size)| (key, (size, None))).collect() }
    }

    /// The layout kept in `site` (empty, with the reason logged, when missing or
    /// unreadable: every split key unknown).
    pub(in crate::build) fn read(site: &Path) -> Self {
        let redo = "shards are redone from their keys";
        let Some(state) = state::read::<State>(site, SHARDS_STATE, "search shard layout", redo) else {
            return Self::default();
        };
        if state.format != FORMAT {
            tracing::info!(path = %site.join(SHARDS_STATE).display(), format = state.format, "search shard layout of another format; {redo}");
            return Self::default();
        }
        let split = state
            .split
            .into_iter()
            .filter_map(|(key, (lo, hi, refs, sha256))| {
                let valid = lo <= hi && key.len() >= catalog::MIN_KEY && key.len() < catalog::MAX_KEY;
                Some((key, (NodeSize { lo, hi, refs }, Some(sha256.parse().ok().filter(|_| valid)?))))
            })
            .collect();
        Self { split }
    }

    /// What is known of split key `key` of the catalog listing `entries`: `None` when
    /// this layout has nothing on it, or describes other shards under it.
    fn known(&self, key: &str, entries: &BTreeMap<String, (Sha256, u64)>) -> Option<NodeSize> {
        match self.split.get(key)? {
            (size, Some(sha256)) if *sha256 == under_digest(entries, key) => Some(*size),
            _ => None,
        }
    }

    /// The layout bound to the catalog whose role lists `entries`: only keys split in
    /// it, each bound to the shards listed under it (those computed by this build) or
    /// as it was read.
    pub(in crate::build) fn bound_to(self, entries: &BTreeMap<String, (Sha256, u64)>) -> Self {
        let split = self
            .split
            .into_par_iter()
            .filter(|(key, _)| is_split(entries, key))
            .map(|(key, (size, sha256))| {
                let sha256 = sha256.unwrap_or_else(|| under_digest(entries, &key));
                (key, (size, Some(sha256)))
            })
            .collect();
        Self { split }
    }

    /// Writes the layout of the catalog whose role lists `entries` into `site`
    /// ([`Self::bound_to`] them).
    pub(in crate::build) fn write(self, site: &Path, entries: &BTreeMap<String, (Sha256, u64)>) -> Result<(), FsError> {
        let split: BTreeMap<String, (u64, u64, u32, String)> = self
            .bound_to(entries)
            .split
            .into_iter()
            .filter_map(|(key, (size, sha256))| Some((key, (size.lo, size.hi, size.refs, sha256?.to_hex()))))
            .collect();
        state::write(site, SHARDS_STATE, &State { format: FORMAT, split })
    }

    /// How many split keys it knows.
    #[cfg(test)]
    pub(in crate::build) fn len(&self) -> usize {
        self.split.len()
    }

    /// Checks this layout knows exactly the keys `exact` (a build's from every record)
    /// splits, each exact size within the interval kept and no more postings on one
    /// plugin than the bound kept.
    #[cfg(test)]
    pub(in crate::build) fn covers(&self, exact: &ShardLayout) -> Result<(), String> {
        let keys = |l: &ShardLayout| l.split.keys().cloned().collect::<Vec<_>>();
        if keys(self) != keys(exact) {
            return Err(format!("split keys {:?}, a full build splits {:?}", keys(self), keys(exact)));
        }
        for (key, (size, _)) in &exact.split {
            let (kept, _) = &self.split[key];
            if !(kept.lo <= size.lo && size.hi <= kept.hi && size.refs <= kept.refs) {
                return Err(format!("{key}: {size:?} is not within {kept:?}"));
            }
        }
        Ok(())
    }
}

/// The search shard targets listed under `key` (its own and every longer key's).
fn under<'e>(
    entries: &'e BTreeMap<String, (Sha256, u64)>,
    key: &str,
) -> impl Iterator<Item = (&'e String, &'e (Sha256, u64))> {
    let prefix = format!("{SEARCH_PREFIX}{key}");
    entries.range(prefix.clone()..).take_while(move |(target, _)| target.starts_with(&prefix))
}

/// The shard key of search shard target `target`.
fn key_of(target: &str) -> Option<&str> {
    target.strip_prefix(SEARCH_PREFIX)?.strip_suffix(".json")
}

/// Whether `key` is split in the catalog listing `entries`: a longer key under it is listed.
fn is_split(entries: &BTreeMap<String, (Sha256, u64)>, key: &str) -> bool {
    under(entries, key).any(|(target, _)| key_of(target).is_some_and(|k| k.len() > key.len()))
}

/// The SHA-256 of the shards listed under `key`: what a layout entry is bound to.
fn under_digest(entries: &BTreeMap<String, (Sha256, u64)>, key: &str) -> Sha256 {
    let mut listed = String::new();
    for (target, (sha256, length)) in under(entries, key) {
        listed.push_str(&format!("{target} {sha256} {length}\n"));
    }
    Sha256::of(listed.as_bytes())
}

/// Where a term's shard is redone: a shard whose key is not split (with every term
/// under the key), or the shard of a split key's own terms (as long as the key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Whole(String),
    Stay(String),
}

impl Unit {
    fn key(&self) -> &str {
        match self {
            Self::Whole(key) | Self::Stay(key) => key,
        }
    }
}

/// The split keys above `term` (shortest first) and the shard it is redone in.
fn place(entries: &BTreeMap<String, (Sha256, u64)>, term: &str) -> (Vec<String>, Unit) {
    let length = term.chars().count();
    let mut path = Vec::new();
    let mut key = catalog::shard_key(term);
    loop {
        if key.len() >= catalog::MAX_KEY || !is_split(entries, &key) {
            return (path, Unit::Whole(key));
        }
        path.push(key.clone());
        if length <= key.len() {
            return (path, Unit::Stay(key));
        }
        key = catalog::shard_key_of(term, key.len() + 1);
    }
}

/// What the search shards of an incremental build are.
pub(super) struct ShardsRedone {
    /// Shards redone (target, bytes).
    pub(super) documents: Vec<(String, Vec<u8>)>,
    /// Published shard targets they replace.
    pub(super) removed: BTreeSet<String>,
    /// The layout after the build.
    pub(super) layout: ShardLayout,
}

/// A term's postings before or after the build, for [`Change::bound`]: the bytes of
/// its entry with every doc slot written as one digit, and the plugins it lists.
struct Entry<'a> {
    bytes: u64,
    plugins: Vec<&'a PluginId>,
}

impl<'a> Entry<'a> {
    fn of(term: &str, df: u32, postings: impl Iterator<Item = (&'a PluginId, u32)>) -> Self {
        let (plugins, impacts): (Vec<&PluginId>, Vec<(u32, u32)>) = postings.map(|(id, i)| (id, (0, i))).unzip();
        let entry = TermPostings { df, postings: impacts };
        let bytes = super::serialize(&term).len() + 1 + super::serialize(&entry).len();
        Self { bytes: bytes as u64, plugins }
    }
}

/// The changes under one split key, and the bound on how far they move its unsplit size.
#[derive(Default)]
struct Change<'a> {
    /// Σ over changed terms of |new entry − old entry| + 1 (a separator).
    entries: u64,
    /// Plugins whose slot in the unsplit shard may move: changed plugins listed by a
    /// changed term, before or after, and any plugin entering or leaving one.
    moved: HashSet<&'a PluginId>,
    /// Of the plugins that are not changed, how many changed terms each entered.
    entered: HashMap<&'a PluginId, u32>,
    /// Of the changed plugins, how many changed terms list each after the build.
    listed: HashMap<&'a PluginId, u32>,
}

impl<'a> Change<'a> {
    fn add(
        &mut self,
        old: Option<&Entry<'a>>,
        new: Option<&Entry<'a>>,
        changed: &BTreeMap<PluginId, Option<CatalogRecord>>,
    ) {
        let bytes = |e: Option<&Entry<'a>>| e.map_or(0, |e| e.bytes);
        self.entries += bytes(old).abs_diff(bytes(new)) + 1;
        let before: HashSet<&PluginId> = old.map(|e| e.plugins.iter().copied().collect()).unwrap_or_default();
        let after: HashSet<&PluginId> = new.map(|e| e.plugins.iter().copied().collect()).unwrap_or_default();
        for id in before.symmetric_difference(&after) {
            self.moved.insert(id);
        }
        for id in before.iter().chain(&after).filter(|id| changed.contains_key(**id)) {
            self.moved.insert(id);
        }
        for id in after.iter().filter(|id| !before.contains(*id) && !changed.contains_key(**id)) {
            *self.entered.entry(id).or_default() += 1;
        }
        for id in after.iter().filter(|id| changed.contains_key(**id)) {
            *self.listed.entry(id).or_default() += 1;
        }
    }

    /// The most postings under the key pointing at one plugin after the build, from
    /// `refs` before it.
    fn refs(&self, refs: u32) -> u32 {
        let entered = self.entered.values().max().copied().unwrap_or(0);
        let listed = self.listed.values().max().copied().unwrap_or(0);
        (refs + entered).max(listed)
    }

    /// How many bytes the unsplit shard can grow or shrink by, when at most `refs`
    /// postings pointed at one plugin before, `docs` is the most plugins a shard can
    /// list and `summary` the size of a moved plugin's summary (the larger of before
    /// and after). The shard is the terms' entries (counted with one-digit slots in
    /// `entries`), the summaries of the plugins they list, once each, and the slots:
    ///
    /// - a moved plugin adds or drops its summary and a separator, and each of its
    ///   postings (at most `refs` before, [`Self::refs`] after) up to 6 more slot
    ///   digits than the one counted;
    /// - slots are given in order of first appearance, so each moved plugin shifts the
    ///   slots of the others by one, which changes the digits of only those crossing a
    ///   power of ten: at most 2 a moved plugin a power of ten below `docs`, each
    ///   pointed at by at most `refs` postings.
    fn bound(&self, refs: u32, docs: u64, summary: impl Fn(&PluginId) -> u64) -> u64 {
        let after = self.refs(refs);
        let most = u64::from(refs.max(after));
        let powers = u64::from(docs.max(1).ilog10() + 1);
        let moved = self.moved.len() as u64;
        let summaries: u64 = self.moved.iter().map(|id| summary(id) + 1).sum();
        self.entries + summaries + moved * 6 * u64::from(refs + after) + 2 * moved * powers * powers * most
    }
}

/// Reads and parses published shard `key`.
fn read_shard(published: &dyn PublishedCatalog, key: &str) -> Result<SearchShard, BuildError> {
    let bytes = published.read(&catalog::shard_target(key))?;
    catalog::parse_shard(key, &bytes, &generous()).map_err(published_error)
}

/// Per term of a unit: the document frequency, the candidates (the unchanged
/// postings the site shows, the changed plugins' new ones), the last posting the site
/// shows and how many unchanged postings it does not show.
type Pending<'a> = (u32, Vec<Posting<'a>>, Option<Posting<'a>>, usize);

/// Adds every term of `shard` to `pending` (see [`Pending`]); `old` are the changed
/// plugins' published records.
fn pending_of<'a>(
    shard: &'a SearchShard,
    old: &BTreeMap<&PluginId, &CatalogRecord>,
    changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
    pending: &mut BTreeMap<&'a str, Pending<'a>>,
) -> Result<(), BuildError> {
    for (term, postings) in &shard.terms {
        let mut known = Vec::with_capacity(postings.postings.len());
        let mut last_shown = None;
        for (slot, impact) in &postings.postings {
            let summary = shard.docs.get(*slot as usize).ok_or_else(|| {
                published_error(catalog::CatalogError::Invalid {
                    target: catalog::shard_target(&shard.key),
                    reason: format!("term {term} points at doc {slot}, past its docs"),
                })
            })?;
            let posting = (summary, *impact, f64::from(*impact) * catalog::popularity(summary));
            last_shown = Some(posting);
            if !changes.contains_key(&summary.id) {
                known.push(posting);
            }
        }
        let before = old.values().filter(|r| r.terms.contains_key(term)).count() as u32;
        let unchanged = postings.df.saturating_sub(before);
        let unseen = (unchanged as usize).saturating_sub(known.len());
        pending.insert(term.as_str(), (unchanged, known, last_shown, unseen));
    }
    Ok(())
}

/// The terms of a unit after the build, or `None` when what the site shows cannot
/// decide a term's best postings.
fn resolve<'a>(pending: BTreeMap<&'a str, Pending<'a>>) -> Option<ShardPostings<'a>> {
    let mut kept: ShardPostings<'a> = BTreeMap::new();
    for (term, (df, candidates, last_shown, unseen)) in pending {
        if df == 0 {
            continue;
        }
        let postings = best(candidates, last_shown.as_ref(), unseen, POSTINGS_PER_TERM, super::posting_order)?;
        kept.insert(term, TermList { df, postings });
    }
    Some(kept)
}

/// Redoes the search shards holding the terms of the changed plugins (`old`: their
/// published records, `new`: their records after the build) from the published
/// shards and `layout` (see the module docs). `docs` bounds how many plugins a shard
/// can list (the catalog's plugins). `Ok(None)` when the published shards cannot
/// decide a term's best postings (a term leaving a list the site shows only the best
/// of): the caller redoes the catalog from every record.
pub(super) fn redo(
    published: &dyn PublishedCatalog,
    layout: &ShardLayout,
    old: &BTreeMap<&PluginId, &CatalogRecord>,
    new: &BTreeMap<&PluginId, &CatalogRecord>,
    changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
    docs: u64,
) -> Result<Option<ShardsRedone>, BuildError> {
    let entries = published.entries();
    let listed = |key: &str| entries.contains_key(&catalog::shard_target(key));

    // Where each changed term is, assuming every split key stays split.
    let terms: BTreeSet<&str> =
        old.values().chain(new.values()).flat_map(|r| r.terms.keys()).map(String::as_str).collect();
    let places: BTreeMap<&str, (Vec<String>, Unit)> = terms.iter().map(|t| (*t, place(entries, t))).collect();
    let units: BTreeSet<&Unit> = places.values().map(|(_, unit)| unit).collect();
    // When no changed plugin's postings move (a new release of the same text and
    // popularity), a shard that does not show one of them is the full build's as
    // published: carried over, not parsed (see `shows_none`).
    let needles: Option<Vec<Vec<u8>>> = same_postings(old, new, changes)
        .then(|| changes.keys().map(|id| [&b"\"id\":"[..], &super::serialize(&id.as_str())].concat()).collect());
    let read: Vec<(Unit, Option<SearchShard>)> = units
        .par_iter()
        .filter(|unit| listed(unit.key()))
        .map(|unit| {
            let bytes = published.read(&catalog::shard_target(unit.key()))?;
            if let Some(needles) = &needles
                && shows_none(&bytes, needles)
            {
                return Ok(((*unit).clone(), None));
            }
            let shard = catalog::parse_shard(unit.key(), &bytes, &generous()).map_err(published_error)?;
            Ok(((*unit).clone(), Some(shard)))
        })
        .collect::<Result<_, BuildError>>()?;
    let mut shards: BTreeMap<Unit, SearchShard> = BTreeMap::new();
    let mut carried: BTreeSet<Unit> = BTreeSet::new();
    for (unit, shard) in read {
        match shard {
            Some(shard) => {
                shards.insert(unit, shard);
            }
            None => {
                carried.insert(unit);
            }
        }
    }

    // Each changed term's entry before and after (its unit's terms resolved); a
    // carried unit's terms are as published, neither listing a changed plugin.
    let mut resolved: BTreeMap<&Unit, ShardPostings<'_>> = BTreeMap::new();
    for unit in &units {
        if carried.contains(*unit) {
            continue;
        }
        let mut pending = BTreeMap::new();
        if let Some(shard) = shards.get(*unit) {
            pending_of(shard, old, changes, &mut pending)?;
        }
        add_new(&mut pending, new, |term| places.get(term).is_some_and(|(_, u)| u == *unit));
        let Some(terms) = resolve(pending) else { return Ok(None) };
        resolved.insert(*unit, terms);
    }

    // Every split key above a changed term: kept split while certain, else redone
    // whole, from every shard under it.
    let mut changes_under: BTreeMap<&str, Change<'_>> = BTreeMap::new();
    let mut summaries: HashMap<&PluginId, u64> = HashMap::new();
    for (term, (path, unit)) in &places {
        if path.is_empty() {
            continue;
        }
        let before = shards.get(unit).and_then(|shard| {
            let postings = shard.terms.get(*term)?;
            let listed = postings.postings.iter().filter_map(|(slot, impact)| {
                let summary = shard.docs.get(*slot as usize)?;
                summaries
                    .entry(&summary.id)
                    .and_modify(|s| *s = (*s).max(summary_bytes(summary)))
                    .or_insert_with(|| summary_bytes(summary));
                Some((&summary.id, *impact))
            });
            Some(Entry::of(term, postings.df, listed))
        });
        let after = resolved.get(unit).and_then(|terms| {
            let list = terms.get(term)?;
            let listed = list.postings.iter().take(POSTINGS_PER_TERM).map(|(summary, impact, _)| {
                summaries
                    .entry(&summary.id)
                    .and_modify(|s| *s = (*s).max(summary_bytes(summary)))
                    .or_insert_with(|| summary_bytes(summary));
                (&summary.id, *impact)
            });
            Some(Entry::of(term, list.df, listed))
        });
        for key in path {
            changes_under.entry(key.as_str()).or_default().add(before.as_ref(), after.as_ref(), changes);
        }
    }
    let mut sizes: BTreeMap<&str, NodeSize> = BTreeMap::new();
    let mut redone_whole: BTreeSet<&str> = BTreeSet::new();
    for (key, change) in &changes_under {
        if redone_whole.iter().any(|above| key.starts_with(above)) {
            continue;
        }
        let certain = layout.known(key, entries).and_then(|size| {
            let bound = change.bound(size.refs, docs, |id| summaries.get(id).copied().unwrap_or(0));
            let lo = size.lo.saturating_sub(bound);
            (lo > catalog::SHARD_BUDGET as u64).then(|| NodeSize {
                lo,
                hi: size.hi + bound,
                refs: change.refs(size.refs),
            })
        });
        match certain {
            Some(size) => {
                sizes.insert(key, size);
            }
            None => {
                redone_whole.insert(key);
            }
        }
    }
    sizes.retain(|key, _| !redone_whole.iter().any(|above| key.starts_with(above) && key != above));

    // The units redone: those under no key redone whole, and the keys redone whole.
    let mut final_units: BTreeSet<Unit> = BTreeSet::new();
    for (path, unit) in places.values() {
        match path.iter().find(|key| redone_whole.contains(key.as_str())) {
            Some(key) => final_units.insert(Unit::Whole(key.clone())),
            None => final_units.insert(unit.clone()),
        };
    }
    let whole_keys: Vec<&str> = redone_whole.iter().copied().collect();
    let more: Vec<(String, SearchShard)> = whole_keys
        .iter()
        .flat_map(|key| under(entries, key).filter_map(|(target, _)| key_of(target)))
        .filter(|key| !shards.keys().any(|unit| unit.key() == *key))
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|key| Ok((key.to_owned(), read_shard(published, key)?)))
        .collect::<Result<_, BuildError>>()?;
    let more: BTreeMap<String, SearchShard> = more.into_iter().collect();

    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut split: Vec<(String, NodeSize)> = Vec::new();
    let mut redone_keys: Vec<String> = Vec::new();
    for unit in &final_units {
        let mut pending = BTreeMap::new();
        match unit {
            Unit::Whole(key) if redone_whole.contains(key.as_str()) => {
                for (target, _) in under(entries, key) {
                    let Some(shard_key) = key_of(target) else { continue };
                    let shard = shards
                        .iter()
                        .find(|(u, _)| u.key() == shard_key)
                        .map(|(_, s)| s)
                        .or_else(|| more.get(shard_key));
                    if let Some(shard) = shard {
                        pending_of(shard, old, changes, &mut pending)?;
                    }
                    removed.insert(target.clone());
                }
                add_new(&mut pending, new, |term| {
                    places.get(term).is_some_and(|(path, _)| path.iter().any(|k| k == key))
                });
            }
            _ if carried.contains(unit) => continue,
            _ => {
                if let Some(shard) = shards.get(unit) {
                    pending_of(shard, old, changes, &mut pending)?;
                }
                if listed(unit.key()) {
                    removed.insert(catalog::shard_target(unit.key()));
                }
                add_new(&mut pending, new, |term| places.get(term).is_some_and(|(_, u)| u == unit));
            }
        }
        let Some(terms) = resolve(pending) else { return Ok(None) };
        match unit {
            Unit::Whole(key) => {
                redone_keys.push(key.clone());
                if !terms.is_empty() {
                    out.extend(super::split_shard(key.clone(), key.len(), terms, &mut split));
                }
            }
            Unit::Stay(key) => {
                if !terms.is_empty() {
                    out.push((catalog::shard_target(key), super::fit(key, &terms)));
                }
            }
        }
    }

    // The layout: split keys redone whole (and under them) measured again, those
    // above kept with their widened intervals, the others as they were.
    let mut next: BTreeMap<String, (NodeSize, Option<Sha256>)> = layout
        .split
        .iter()
        .filter(|(key, _)| !redone_keys.iter().any(|redone| key.starts_with(redone.as_str())))
        .map(|(key, value)| (key.clone(), *value))
        .collect();
    for (key, size) in sizes {
        next.insert(key.to_owned(), (size, None));
    }
    for (key, size) in split {
        next.insert(key, (size, None));
    }
    Ok(Some(ShardsRedone { documents: out, removed, layout: ShardLayout { split: next } }))
}

/// Whether no changed plugin's postings move: each one was listed and stays listed
/// with the same terms, weighted length and popularity, so its posting in every term
/// keeps its impact and score (only its summary changes, shown where it is listed).
fn same_postings(
    old: &BTreeMap<&PluginId, &CatalogRecord>,
    new: &BTreeMap<&PluginId, &CatalogRecord>,
    changes: &BTreeMap<PluginId, Option<CatalogRecord>>,
) -> bool {
    changes.keys().all(|id| match (old.get(id), new.get(id)) {
        (Some(was), Some(is)) => {
            was.terms == is.terms
                && was.length == is.length
                && catalog::popularity(&was.summary).to_bits() == catalog::popularity(&is.summary).to_bits()
        }
        _ => false,
    })
}

/// Whether the published shard `bytes` shows none of the plugins whose `"id":"…"`
/// members are `needles`: `false` (parse it) unless the bytes are compact JSON, as
/// the builder writes shards (no whitespace between tokens, every string closed), in
/// which a summary's id is exactly such a member, and none is one. Only a string
/// token outside a string is compared, so text quoting an id does not count. The
/// bytes are those the catalog role lists (checked by the caller's reads): when
/// they show no changed plugin and its postings do not move, the full build writes
/// them again as they are.
pub(super) fn shows_none(bytes: &[u8], needles: &[Vec<u8>]) -> bool {
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => {
                if needles.iter().any(|needle| bytes[i..].starts_with(needle)) {
                    return false;
                }
                i += 1;
                loop {
                    match bytes.get(i) {
                        Some(b'"') => break,
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                        None => return false,
                    }
                }
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => return false,
            _ => i += 1,
        }
    }
    true
}

/// The bytes of `summary` in a shard's docs.
fn summary_bytes(summary: &PluginSummary) -> u64 {
    super::serialize(summary).len() as u64
}

/// Adds the postings of the changed plugins' new records for every term `here` says
/// is redone in this unit.
fn add_new<'a>(
    pending: &mut BTreeMap<&'a str, Pending<'a>>,
    new: &BTreeMap<&PluginId, &'a CatalogRecord>,
    here: impl Fn(&str) -> bool,
) {
    for record in new.values() {
        for (term, weighted) in &record.terms {
            if here(term) {
                let entry = pending.entry(term.as_str()).or_default();
                entry.0 += 1;
                entry.1.push(super::posting(&record.summary, *weighted, record.length));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(listed: &[(&str, &[u8])]) -> BTreeMap<String, (Sha256, u64)> {
        listed
            .iter()
            .map(|(key, bytes)| (catalog::shard_target(key), (Sha256::of(bytes), bytes.len() as u64)))
            .collect()
    }

    #[test]
    fn split_keys_are_the_listed_keys_prefixes_and_terms_find_their_shard() {
        let listed =
            entries(&[("co", b"1"), ("con", b"2"), ("cona", b"3"), ("conb", b"4"), ("cox", b"5"), ("da", b"6")]);
        assert!(is_split(&listed, "co") && is_split(&listed, "con"));
        assert!(!is_split(&listed, "cox") && !is_split(&listed, "da") && !is_split(&listed, "cona"));
        assert_eq!(place(&listed, "co"), (vec!["co".to_owned()], Unit::Stay("co".into())));
        assert_eq!(place(&listed, "con"), (vec!["co".to_owned(), "con".to_owned()], Unit::Stay("con".into())));
        assert_eq!(place(&listed, "conbox"), (vec!["co".to_owned(), "con".to_owned()], Unit::Whole("conb".into())));
        assert_eq!(place(&listed, "conx"), (vec!["co".to_owned(), "con".to_owned()], Unit::Whole("conx".into())));
        assert_eq!(place(&listed, "coy"), (vec!["co".to_owned()], Unit::Whole("coy".into())));
        assert_eq!(place(&listed, "data"), (vec![], Unit::Whole("da".into())));
        assert_eq!(place(&listed, "ze"), (vec![], Unit::Whole("ze".into())));
    }

    #[test]
    fn the_state_is_used_only_for_the_shards_it_was_written_with() {
        let site = tempfile::tempdir().unwrap();
        let listed = entries(&[("co", b"1"), ("con", b"2"), ("da", b"3"), ("dab", b"4")]);
        let layout = ShardLayout::exact(vec![
            ("co".into(), NodeSize::exact(60_000, 3)),
            ("da".into(), NodeSize::exact(70_000, 2)),
            ("ze".into(), NodeSize::exact(80_000, 1)),
        ]);
        assert_eq!(ShardLayout::read(site.path()).len(), 0, "no file yet");
        layout.write(site.path(), &listed).unwrap();
        let read = ShardLayout::read(site.path());
        assert_eq!(read.len(), 2, "a key the catalog does not split is not kept");
        assert_eq!(read.known("co", &listed), Some(NodeSize::exact(60_000, 3)));
        // Another shard under "da": its entry describes other shards; "co"'s still holds.
        let mut moved = listed.clone();
        moved.insert(catalog::shard_target("dab"), (Sha256::of(b"other"), 5));
        assert_eq!(read.known("da", &moved), None);
        assert_eq!(read.known("co", &moved), Some(NodeSize::exact(60_000, 3)));

        let file = site.path().join(SHARDS_STATE);
        let text = std::fs::read_to_string(&file).unwrap();
        for (what, bytes) in [
            ("torn", text[..text.len() / 2].to_owned()),
            ("another format", text.replace("\"format\":1", "\"format\":2")),
            ("unknown member", text.replacen('{', "{\"extra\":0,", 1)),
            ("not JSON", "\u{0}garbage".to_owned()),
        ] {
            std::fs::write(&file, bytes).unwrap();
            assert_eq!(ShardLayout::read(site.path()).len(), 0, "{what}");
        }
        // An interval upside down or a digest that is not one: that key is unknown.
        let tampered = text.replace("[60000,60000,3,", "[60001,60000,3,");
        std::fs::write(&file, tampered).unwrap();
        let read = ShardLayout::read(site.path());
        assert_eq!((read.known("co", &listed), read.known("da", &listed)), (None, Some(NodeSize::exact(70_000, 2))));
    }

    #[test]
    fn the_bound_covers_a_moved_plugin_and_the_slots_it_shifts() {
        let id = |s: &str| -> PluginId { s.parse().unwrap() };
        let (p, x, y) = (id("a.changed"), id("b.entering"), id("c.leaving"));
        let changed: BTreeMap<PluginId, Option<CatalogRecord>> = BTreeMap::from([(p.clone(), None)]);
        let old = Entry { bytes: 100, plugins: vec![&p, &y] };
        let new = Entry { bytes: 120, plugins: vec![&x, &p] };
        let mut change = Change::default();
        change.add(Some(&old), Some(&new), &changed);
        assert_eq!(change.entries, 21);
        assert_eq!(change.moved.len(), 3, "the changed plugin, one entering, one leaving");
        assert_eq!(change.refs(4), 5, "the one entering may now have one more posting");
        // 21 + 3 × (200 + 1) + 3 × 6 × (4 + 5) + 2 × 3 × 3 × 3 × 5 (999 docs: 3 powers of ten).
        assert_eq!(change.bound(4, 999, |_| 200), 21 + 603 + 162 + 270);
    }
}
