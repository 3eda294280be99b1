//! Searching and browsing a registry's catalog: pure functions over verified catalog
//! documents.
//!
//! Owns the query side of `trellis_schema::catalog`: which shards a query needs,
//! round trip by round trip ([`Query::next_reads`]),
//! ranking ([`rank`]: field-weighted BM25 over the shards' postings, idf from the
//! head's plugin count, times popularity; exact terms, prefix matches for the last
//! term, one edit for terms of 4+ characters and two for 8+), filters ([`Filters`])
//! and whether this host can run a plugin ([`compatibility`]).
//!
//! It does not fetch anything: [`crate::store::Store::search`] reads the shards
//! through [`crate::store::source`] (the TUF chain, the verified cache), takes the
//! plugin count from the head's entry in the catalog role
//! (`trellis_schema::catalog::HeadFacts`) and calls [`rank`]. A term is matched
//! within its own search shard first (keyed by its first characters). Only a term
//! with a typo budget that its shard does not match well (no exact, prefix or
//! one-edit match: its first two characters may be mistyped), or that has no shard,
//! reads its typo shard (the vocabulary keyed by its last two characters, why in
//! `trellis_schema::catalog`), and then the search shard of its best typo match,
//! which is scanned like its own: one more request for the typo shard, one for that
//! shard. Typos in both the first two and the last two characters of a term are
//! not found.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use trellis_schema::PluginId;
use trellis_schema::catalog::{self, PluginSummary, SearchShard, TypoShard};
use trellis_schema::plugin::{Channel, HostRequirement, Platform, PricingModel};

use crate::resolve::HostApp;

/// Filters of a search or a listing; every field set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// In this category.
    pub category: Option<String>,
    /// With this tag.
    pub tag: Option<String>,
    /// With one of these pricing models (empty: any).
    pub pricing: Vec<PricingModel>,
    /// Only plugins this host and platform can run.
    pub compatible: bool,
    /// Whose newest release runs on this platform.
    pub platform: Option<Platform>,
    /// Requesting none of these permission types (`network`, …).
    pub without_permissions: Vec<String>,
    /// On this channel.
    pub channel: Option<Channel>,
}

/// A search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// What the user typed.
    pub text: String,
    /// Filters.
    pub filters: Filters,
    /// Most results returned.
    pub limit: usize,
}

impl Query {
    /// A query for `text` without filters, returning at most 20 results.
    pub fn new(text: &str) -> Self {
        Self { text: text.to_owned(), filters: Filters::default(), limit: 20 }
    }

    /// The same query with `filters`.
    #[must_use]
    pub fn with_filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }

    /// The terms searched for (an id is searched by its segments).
    pub fn terms(&self) -> Vec<String> {
        catalog::terms(&self.text)
    }

    /// What the query reads next, once it has read `shards` and `typos` (start with
    /// none); empty when it has read all it needs. `shard_exists` and `typo_exists`
    /// say whether the catalog role lists a search or typo shard of a key. Per term,
    /// in order: its own shard (the longest of its candidate keys that exists); when
    /// it has a typo budget and that shard does not match it well (or it has none),
    /// its typo shard (the longest of its typo keys that exists); then the shard of
    /// its best typo match (fewest edits, then most plugins, then by term). Each
    /// call asks for the next step of every term at once, so a query takes at most
    /// three rounds, one request per document: one for an exact or prefix term, two
    /// for a mistyped start, three when the mistyped start names a shard of its own.
    pub fn next_reads(
        &self,
        shards: &BTreeMap<String, SearchShard>,
        typos: &BTreeMap<String, TypoShard>,
        shard_exists: impl Fn(&str) -> bool,
        typo_exists: impl Fn(&str) -> bool,
    ) -> Reads {
        let terms = self.terms();
        let mut next = Reads::default();
        for (position, term) in terms.iter().enumerate() {
            let own = catalog::candidate_keys(term).into_iter().find(|k| shard_exists(k));
            if let Some(key) = own.as_ref().filter(|k| !shards.contains_key(*k)) {
                next.shards.insert(key.clone());
                continue;
            }
            if !needs_typos(term, own_shard(term, shards), position + 1 == terms.len()) {
                continue;
            }
            let Some(typo) = catalog::typo_candidate_keys(term).into_iter().find(|k| typo_exists(k)) else { continue };
            if !typos.contains_key(&typo) {
                next.typos.insert(typo);
                continue;
            }
            let matched =
                best_typo(term, typos).and_then(|m| catalog::candidate_keys(m).into_iter().find(|k| shard_exists(k)));
            next.shards.extend(matched.filter(|k| !shards.contains_key(k)));
        }
        next
    }
}

/// The documents a query reads in one round trip ([`Query::next_reads`]), by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// Search shards (`catalog::shard_target`).
    pub shards: BTreeSet<String>,
    /// Typo shards (`catalog::typo_target`).
    pub typos: BTreeSet<String>,
}

impl Reads {
    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty() && self.typos.is_empty()
    }

    /// How many documents (requests).
    pub fn len(&self) -> usize {
        self.shards.len() + self.typos.len()
    }
}

/// The shard a term is matched in: the longest of its keys among `shards`, with it.
fn own_shard<'s>(term: &str, shards: &'s BTreeMap<String, SearchShard>) -> Option<(&'s str, &'s SearchShard)> {
    catalog::candidate_keys(term).into_iter().find_map(|k| shards.get_key_value(&k)).map(|(k, s)| (k.as_str(), s))
}

/// Whether query term `term` reads the typo shards: it has a typo budget and its own
/// shard (when it has one) matches it neither exactly, nor as a prefix (`last`), nor
/// within one edit.
fn needs_typos(term: &str, own: Option<(&str, &SearchShard)>, last: bool) -> bool {
    catalog::typo_budget(term.chars().count()) > 0
        && !own.is_some_and(|(_, shard)| {
            shard.terms.keys().any(|t| match_weight(term, t, last).is_some_and(|w| w >= ONE_EDIT))
        })
}

/// The best typo match of `term` in its typo shard among `typos` (the longest of its
/// typo keys present): within its typo budget, fewest edits, then the most plugins,
/// then by term.
fn best_typo<'t>(term: &str, typos: &'t BTreeMap<String, TypoShard>) -> Option<&'t str> {
    let shard = catalog::typo_candidate_keys(term).iter().find_map(|k| typos.get(k))?;
    let budget = catalog::typo_budget(term.chars().count());
    (shard.terms.iter())
        .filter_map(|(t, df)| Some((catalog::edit_distance(term, t, budget)?, Reverse(*df), t.as_str())))
        .min()
        .map(|(_, _, t)| t)
}

/// Whether this host can run a plugin's newest release.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Compatibility {
    /// It runs here.
    Runs,
    /// It does not, and why.
    Incompatible {
        /// A sentence: what it needs and what this host has.
        reason: String,
    },
}

impl Compatibility {
    /// Whether it runs here.
    pub fn runs(&self) -> bool {
        matches!(self, Self::Runs)
    }
}

/// Whether `host` on `platform` can run the release `summary` lists.
pub fn compatibility(summary: &PluginSummary, host: &HostApp, platform: Platform) -> Compatibility {
    release_compatibility(&summary.host, &summary.platforms, host, platform)
}

/// Whether `host` on `platform` can run a release requiring `needs` and built for
/// `platforms`.
pub fn release_compatibility(
    needs: &HostRequirement,
    platforms: &[Platform],
    host: &HostApp,
    platform: Platform,
) -> Compatibility {
    if needs.id != host.id {
        return Compatibility::Incompatible { reason: format!("made for host app {}, this is {}", needs.id, host.id) };
    }
    if !needs.api_version_requirement.matches(&host.api_version) {
        return Compatibility::Incompatible {
            reason: format!(
                "needs plugin API {}, this host provides {}",
                needs.api_version_requirement, host.api_version
            ),
        };
    }
    if !platforms.iter().any(|p| p.runs_on(platform)) {
        let built: Vec<&str> = platforms.iter().map(|p| p.as_str()).collect();
        return Compatibility::Incompatible { reason: format!("built for {}, not for {platform}", built.join(", ")) };
    }
    Compatibility::Runs
}

/// Whether `summary` passes `filters` for `host` on `platform`.
pub fn passes(summary: &PluginSummary, filters: &Filters, host: &HostApp, platform: Platform) -> bool {
    filters.category.as_ref().is_none_or(|c| summary.categories.contains(c))
        && filters.tag.as_ref().is_none_or(|t| summary.tags.contains(t))
        && (filters.pricing.is_empty() || filters.pricing.contains(&summary.pricing))
        && filters.platform.is_none_or(|p| summary.platforms.iter().any(|q| q.runs_on(p)))
        && filters.channel.is_none_or(|c| summary.channel == c)
        && !summary.permissions.iter().any(|p| filters.without_permissions.contains(p))
        && (!filters.compatible || compatibility(summary, host, platform).runs())
}

/// A ranked result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// The plugin's result fields.
    pub summary: PluginSummary,
    /// Relevance × popularity (higher first).
    pub score: f64,
}

/// Weight of an exact match.
const EXACT: f64 = 1.0;
/// Weight of the last query term matching as a prefix.
const PREFIX: f64 = 0.8;
/// Weight of a match one edit away.
const ONE_EDIT: f64 = 0.6;
/// Weight of a match two edits away.
const TWO_EDITS: f64 = 0.4;

/// How a query term matched an indexed term.
fn match_weight(query: &str, term: &str, last: bool) -> Option<f64> {
    if query == term {
        return Some(EXACT);
    }
    let length = query.chars().count();
    if last && length >= 2 && term.starts_with(query) {
        return Some(PREFIX);
    }
    match catalog::edit_distance(query, term, catalog::typo_budget(length))? {
        0 => Some(EXACT),
        1 => Some(ONE_EDIT),
        _ => Some(TWO_EDITS),
    }
}

/// Ranks the plugins of `shards` for `query` in a catalog of `plugins` plugins:
/// per query term the best match of each plugin (weight × idf × impact) in its own
/// shard and, when it needs typos, in the shard of its best match in `typos` (see
/// [`Query::next_reads`]), summed, scaled by the share of query terms matched
/// and by [`catalog::popularity`]; ties by id. Filters apply; at most `query.limit`
/// results.
pub fn rank(
    plugins: u32,
    query: &Query,
    shards: &BTreeMap<String, SearchShard>,
    typos: &BTreeMap<String, TypoShard>,
    host: &HostApp,
    platform: Platform,
) -> Vec<Ranked> {
    let terms = query.terms();
    let n = f64::from(plugins.max(1));
    let mut scores: HashMap<&PluginId, (f64, usize, &PluginSummary)> = HashMap::new();
    for (position, query_term) in terms.iter().enumerate() {
        let last = position + 1 == terms.len();
        let own = own_shard(query_term, shards);
        let mut scanned: Vec<(&str, &SearchShard)> = own.into_iter().collect();
        if needs_typos(query_term, own, last) {
            let typo = best_typo(query_term, typos).and_then(|matched| own_shard(matched, shards));
            scanned.extend(typo.filter(|(key, _)| own.is_none_or(|(own, _)| own != *key)));
        }
        let mut best: HashMap<&PluginId, (f64, &PluginSummary)> = HashMap::new();
        for (term, postings, shard) in scanned.iter().flat_map(|(_, s)| s.terms.iter().map(move |(t, p)| (t, p, *s))) {
            let Some(weight) = match_weight(query_term, term, last) else { continue };
            let df = f64::from(postings.df);
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln().max(0.01);
            for (slot, impact) in &postings.postings {
                let Some(summary) = shard.docs.get(*slot as usize) else { continue };
                let value = weight * idf * f64::from(*impact) / 1000.0;
                let entry = best.entry(&summary.id).or_insert((0.0, summary));
                if value > entry.0 {
                    *entry = (value, summary);
                }
            }
        }
        for (id, (value, summary)) in best {
            let entry = scores.entry(id).or_insert((0.0, 0, summary));
            entry.0 += value;
            entry.1 += 1;
        }
    }
    let total = terms.len().max(1) as f64;
    let mut ranked: Vec<Ranked> = scores
        .into_values()
        .filter(|(_, _, summary)| passes(summary, &query.filters, host, platform))
        .map(|(score, matched, summary)| Ranked {
            score: score * (matched as f64 / total).powi(2) * catalog::popularity(summary),
            summary: summary.clone(),
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.summary.id.cmp(&b.summary.id)));
    ranked.truncate(query.limit);
    ranked
}

/// Ids among `candidates` close to the mistyped `text` (by edit distance on the whole
/// id, at most a third of its length), closest first.
pub fn closest_ids<'a>(text: &str, candidates: impl IntoIterator<Item = &'a PluginId>) -> Vec<PluginId> {
    let text = text.trim().to_lowercase();
    let budget = (text.chars().count() / 3).max(1);
    let mut found: Vec<(usize, &PluginId)> = candidates
        .into_iter()
        .filter_map(|id| Some((catalog::edit_distance(&text, id.as_str(), budget)?, id)))
        .collect();
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    found.into_iter().map(|(_, id)| id.clone()).collect()
}
