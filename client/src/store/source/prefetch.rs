//! Speculative prefetch of a dependency closure, wave after wave, one round trip per
//! level of the dependency graph.
//!
//! Owns [`Remotes::prefetch_for`] (the start of an install or update) and the
//! resolver's hints ([`crate::resolve::IndexSource::prefetch`]): the hinted docs and,
//! wave after wave, the docs of the dependencies of their likely releases, with the
//! blocklist, the advisories and the publisher records of the vendors met. It does not
//! decide anything about what it fetched: a doc is memoized for the resolver only as
//! [`Remotes::doc`] would have memoized it, and a failure is dropped (the resolver asks
//! again through `doc`, which reports it with its context if it needs that doc).
//!
//! # One round trip per level
//!
//! A doc's URL carries its hash, which only its hash bin (a delegated role) gives: bin,
//! then doc, two round trips per level. So each wave asks, in the same round trip as
//! the bins of its docs, for each doc's *alias* (`targets/index/alias/<shard>/<id>.json`,
//! [`trellis_schema::target::index_alias_path`]): the same bytes at a path without the
//! hash, which no role signs. When the bins are in, an alias is kept only if its
//! length and SHA-256 are the ones the verified bin lists for the doc
//! ([`crate::trust::TargetFetcher::accept`], the only way to use those bytes); a
//! stale, missing, oversized or tampered alias costs the hashed path's round trip,
//! never trust. Every TUF check is kept: the bins are loaded by
//! [`crate::trust::Updater::prefetch_delegations`] as before, in the same order.
//!
//! # Two waves whatever the depth: prefetch hints
//!
//! Each index doc names the dependency closure of its likely release as the builder
//! saw it ([`IndexDoc::prefetch`], at most [`PREFETCH_MAX`], nearest first). When this
//! prefetch follows the release the hint was made from (the doc's
//! [`likely_release`] without requirements), the docs the hint names join the next
//! wave with the doc's direct dependencies: a graph of any depth arrives in two waves,
//! the requested docs, then the rest. The hint is signed by the bins role like the rest
//! of the doc, but it is trusted for nothing: it only moves requests earlier. Each
//! hinted doc is read under its own bin and followed by its own likely release, a
//! stale hint (a dependency's later release needs more) leaves the rest to the next
//! wave, and a hostile one costs at most [`PREFETCH_MAX`] doc requests per doc (and
//! each hinted doc's envelope), never a plugin the resolver did not choose. A wave's
//! docs are read in wave order (direct dependencies before the hinted ones below
//! them), so the requirements met on a hinted plugin are known when its doc is read.
//!
//! The other documents of a wave (blocklist, advisories, publisher records), whose
//! roles the wave loads too, and the developer envelope of each doc's likely release
//! (vouched for by the verified doc; what verifying that release reads first) are
//! downloaded with the *next* wave, or all together after the last one, so they add
//! one round trip to a cold install, not one per level.
//!
//! # Bounds
//!
//! An alias is requested from the preferred mirror only, capped at
//! [`ALIAS_MAX_BYTES`] while it streams, and all the aliases of one prefetch share
//! [`ALIAS_BUDGET`] bytes; the transport's minimum rate ends a drip-fed one. A wave
//! does not wait for a late alias: once its bins are in, it waits at most as long
//! again (at least [`ALIAS_GRACE`]) and then takes the hashed path; the late download
//! ends on its own within those bounds and is dropped. A registry whose wave of
//! aliases all answered "not found" (a mirror or an older site without them) is not
//! asked for aliases again during that prefetch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semver::VersionReq;
use trellis_schema::PluginId;
use trellis_schema::id::VendorId;
use trellis_schema::index::{IndexDoc, PREFETCH_MAX, likely_release};
use trellis_schema::target::index_alias_path;

use super::{
    ADVISORIES_TARGET, BLOCKLIST_TARGET, Network, PARALLEL_DOWNLOADS, Remotes, index_target, lock, parse_document,
    publisher_target,
};
use crate::resolve::Requirement;
use crate::state::RegistryName;
use crate::transport::{AttemptError, parallel};
use crate::trust::{TargetFetcher, TargetInfo, TrustError, Unverified};

/// Docs fetched speculatively for one prefetch hint at most (the hinted docs and the
/// dependency closure of their likely releases).
pub const SPECULATIVE_DOCS: usize = 256;

/// The largest index doc alias downloaded: a larger doc is fetched by its hashed path
/// (its bin gives the length). A doc lists every release of a plugin, typically a few
/// KB.
pub const ALIAS_MAX_BYTES: u64 = 1 << 20;

/// The alias bytes one prefetch downloads at most, whatever the mirror sends: each
/// request reserves its cap from it and gives back only what did not arrive.
pub const ALIAS_BUDGET: u64 = 32 << 20;

/// Background downloads of one wave at most: its aliases (and docs whose hash was
/// known) and what the previous wave located (records, envelopes), so that neither
/// waits for the other's round trip. The bins of the wave are loaded meanwhile with
/// [`PARALLEL_DOWNLOADS`] more.
pub const BACKGROUND_DOWNLOADS: usize = 2 * PARALLEL_DOWNLOADS;

/// Roles of one level of the delegation tree a wave loads at once: its docs' hash bins
/// and its vendors' publisher bins, a pair per plugin of the level at most. A level of
/// the 30-plugin graph on the 100k-plugin registry needs up to 17 (nine docs, eight
/// vendors); with [`PARALLEL_DOWNLOADS`] the seventeenth cost a round trip of its own.
pub const DELEGATION_DOWNLOADS: usize = 2 * PARALLEL_DOWNLOADS;

// Every connection a wave has open at once is kept for the next wave.
const _: () = assert!(BACKGROUND_DOWNLOADS + DELEGATION_DOWNLOADS <= crate::transport::KEPT_CONNECTIONS_PER_HOST);

/// The least time a wave waits for its aliases after its bins arrived.
pub const ALIAS_GRACE: Duration = Duration::from_millis(250);

impl Remotes {
    /// Starts an install or update of `requirements`: in every registry, the
    /// blocklist, the advisories, the docs of the required plugins and the dependency
    /// closure of their likely releases under those requirements, and the publisher
    /// records of the vendors met are fetched speculatively and together, by waves as
    /// for a resolver hint, so the resolution and the verification after it find them
    /// memoized or in the verified cache. Nothing fails here.
    pub fn prefetch_for(&self, requirements: &[Requirement]) {
        for registry in &self.order {
            let wanted: Vec<(PluginId, VersionReq)> = {
                let docs = lock(&self.docs);
                requirements
                    .iter()
                    .filter(|r| !docs.contains_key(&(registry.clone(), r.id.clone())))
                    .map(|r| (r.id.clone(), r.version.clone()))
                    .collect()
            };
            self.prefetch_closure(registry, wanted, vec![BLOCKLIST_TARGET.to_owned(), ADVISORIES_TARGET.to_owned()]);
        }
    }

    /// Speculatively fetches the docs of `ids` in `registry` and, wave after wave, the
    /// docs of the dependencies their likely releases name (at most
    /// [`SPECULATIVE_DOCS`] docs per hint), with the `extra` targets and the publisher
    /// records of the vendors met: the resolver then finds the whole graph memoized,
    /// and the round trips are the depth of the graph, not its size. Each id comes
    /// with the requirement it is wanted under (`*` for a resolver hint), which the
    /// likely release must meet, as must the requirements of the likely releases that
    /// depend on it.
    pub(super) fn prefetch_closure(
        &self,
        registry: &RegistryName,
        ids: Vec<(PluginId, VersionReq)>,
        mut extra: Vec<String>,
    ) {
        let mut closure = Closure {
            remotes: self,
            registry,
            budget: Arc::new(AtomicU64::new(ALIAS_BUDGET)),
            // Offline, only the verified cache answers: there is no alias to ask for.
            aliases: self.network == Network::Online,
            pending: Vec::new(),
        };
        // Every requirement met so far on a plugin of the closure (by the time its doc
        // arrives: those of the waves before it).
        let mut wanted: HashMap<PluginId, Vec<VersionReq>> = HashMap::new();
        let mut seen: HashSet<PluginId> = HashSet::new();
        let mut wave: Vec<PluginId> = Vec::with_capacity(ids.len());
        for (id, requirement) in ids {
            wanted.entry(id.clone()).or_default().push(requirement);
            if seen.insert(id.clone()) {
                wave.push(id);
            }
        }
        let mut vendors: HashSet<VendorId> = HashSet::new();
        let mut left = SPECULATIVE_DOCS;
        while (!wave.is_empty() || !extra.is_empty()) && left > 0 {
            wave.truncate(left);
            left -= wave.len();
            // The publisher records of the vendors met, with the docs: verifying the
            // releases needs them after resolution.
            for id in &wave {
                if vendors.insert(id.vendor_id()) {
                    extra.push(publisher_target(&id.vendor_id()));
                }
            }
            let position: HashMap<PluginId, usize> = wave.iter().enumerate().map(|(n, id)| (id.clone(), n)).collect();
            let mut fetched = closure.wave(wave, std::mem::take(&mut extra));
            // In wave order: a doc a hint brought comes after the docs whose likely
            // releases depend on it, whose requirements on it are then known.
            fetched.sort_by_key(|doc| position.get(&doc.id).copied().unwrap_or(usize::MAX));
            let docs = lock(&self.docs);
            let mut next = Vec::new();
            let mut hinted = Vec::new();
            for doc in &fetched {
                let Some(release) = likely_release(doc, wanted.get(&doc.id).map_or(&[], Vec::as_slice)) else {
                    continue;
                };
                // Its developer signature, which verifying the release needs first if
                // the resolver picks it: downloaded with the next wave.
                closure.pending.push(super::blob_info(&doc.id, &release.envelope));
                let unseen = |id: &PluginId, seen: &mut HashSet<PluginId>| {
                    !docs.contains_key(&(registry.clone(), id.clone())) && seen.insert(id.clone())
                };
                for dependency in &release.dependencies {
                    wanted.entry(dependency.id.clone()).or_default().push(dependency.version_requirement.clone());
                    if unseen(&dependency.id, &mut seen) {
                        next.push(dependency.id.clone());
                    }
                }
                // The builder's hint names the closure below this doc, made from the
                // release it follows without requirements: when this prefetch follows
                // that release too, the whole closure comes with the next wave instead
                // of a wave per level. Whatever the hint says, each doc is read under
                // its own bin, and only the resolver decides what is installed.
                if likely_release(doc, &[]).is_some_and(|r| r.version == release.version) {
                    for id in doc.prefetch.iter().take(PREFETCH_MAX) {
                        if unseen(id, &mut seen) {
                            hinted.push(id.clone());
                        }
                    }
                }
            }
            // The direct dependencies first: the hinted docs deeper down are read
            // after the docs that name them.
            next.extend(hinted);
            wave = next;
        }
        closure.finish();
    }
}

/// One prefetch of a registry in progress.
struct Closure<'a> {
    remotes: &'a Remotes,
    registry: &'a RegistryName,
    /// Alias bytes left to download ([`ALIAS_BUDGET`]).
    budget: Arc<AtomicU64>,
    /// Whether aliases are still asked for (not after a wave found none).
    aliases: bool,
    /// Targets whose signed entry a wave loaded, to download with the next one.
    pending: Vec<TargetInfo>,
}

/// What a background download is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The alias of the wave's `n`th doc whose bin was not loaded.
    Alias(usize),
    /// The wave's `n`th doc whose hash was known without the network.
    Doc(usize),
    /// A target of an earlier wave, for the verified cache.
    Extra,
}

enum Job {
    Alias(String),
    Target(TargetInfo),
}

enum Outcome {
    /// The alias bytes, or whether every mirror asked said "not found".
    Alias(Result<Unverified, bool>),
    Target(Result<Vec<u8>, TrustError>),
}

impl Closure<'_> {
    fn memoize(&self, id: PluginId, doc: Option<Arc<IndexDoc>>) {
        lock(&self.remotes.docs).insert((self.registry.clone(), id), doc);
    }

    /// The verified doc `bytes` of `id`, memoized; `None` when they do not parse.
    fn memoize_bytes(&self, id: PluginId, info: &TargetInfo, bytes: &[u8]) -> Option<Arc<IndexDoc>> {
        let doc = Arc::new(parse_document::<IndexDoc>(self.registry, &info.path, bytes).ok()?);
        self.memoize(id, Some(Arc::clone(&doc)));
        Some(doc)
    }

    /// Fetches and memoizes the docs of `ids` (their bins a level of the delegation
    /// tree at a time, their aliases and the targets pending from the last wave in the
    /// same round trip), loads the signed entries of the `extra` targets for the next
    /// wave to download; returns the docs it memoized.
    fn wave(&mut self, ids: Vec<PluginId>, extra: Vec<String>) -> Vec<Arc<IndexDoc>> {
        let mut memoized = Vec::new();
        let hints = || ids.iter().map(index_target).chain(extra.iter().cloned()).collect();
        // When this wave's refresh is still to come and the trusted store says which
        // docs need a bin it does not hold, their aliases are asked for with the update
        // check (and the roles its hint asks for), not after it.
        let mut early: Option<(Vec<PluginId>, Background)> = None;
        let (aliases_on, budget) = (self.aliases, Arc::clone(&self.budget));
        let before_check = |updater: &crate::trust::Updater, needs: Vec<String>| {
            let needed: Vec<PluginId> = ids.iter().filter(|id| needs.contains(&index_target(id))).cloned().collect();
            if aliases_on && !needed.is_empty() {
                let jobs = needed
                    .iter()
                    .enumerate()
                    .map(|(n, id)| (Slot::Alias(n), Job::Alias(index_alias_path(id))))
                    .collect();
                early = Some((needed, Background::start(&updater.fetcher(), jobs, budget)));
            }
        };
        let Ok(mut updater) = self.remotes.updater_hinted(self.registry, hints, before_check) else {
            return memoized;
        };
        let fetcher = updater.fetcher();
        // Where each doc stands without the network: cached (parsed inline: starting
        // download threads would cost more than reading them, the warm re-resolve),
        // its hash known (downloaded in the background), or its bin still to load.
        let mut known: Vec<(PluginId, TargetInfo)> = Vec::new();
        let mut unknown: Vec<PluginId> = Vec::new();
        for id in ids {
            match updater.local_target_info(&index_target(&id)) {
                Some(Ok(Some(info))) => match fetcher.cached(&info) {
                    Some(bytes) => memoized.extend(self.memoize_bytes(id, &info, &bytes)),
                    None => known.push((id, info)),
                },
                Some(Ok(None)) => self.memoize(id, None),
                Some(Err(_)) => {}
                None => unknown.push(id),
            }
        }
        let mut jobs: Vec<(Slot, Job)> = Vec::new();
        let (early_ids, early) = early.map_or((Vec::new(), None), |(ids, background)| (ids, Some(background)));
        if self.aliases {
            for (n, id) in unknown.iter().enumerate().filter(|(_, id)| !early_ids.contains(id)) {
                jobs.push((Slot::Alias(n), Job::Alias(index_alias_path(id))));
            }
        }
        jobs.extend(known.iter().enumerate().map(|(n, (_, info))| (Slot::Doc(n), Job::Target(info.clone()))));
        jobs.extend(self.pending.drain(..).map(|info| (Slot::Extra, Job::Target(info))));
        let asked_aliases = self.aliases && (!unknown.is_empty() || !early_ids.is_empty());
        let started = Instant::now();
        let background = Background::start(&fetcher, jobs, Arc::clone(&self.budget));

        let paths: Vec<String> = unknown.iter().map(index_target).chain(extra.iter().cloned()).collect();
        updater.prefetch_delegations(&paths, DELEGATION_DOWNLOADS);
        let alias_deadline = Instant::now() + started.elapsed().max(ALIAS_GRACE);
        for path in &extra {
            if let Some(Ok(Some(info))) = updater.local_target_info(path)
                && fetcher.cached(&info).is_none()
            {
                self.pending.push(info);
            }
        }
        let mut infos: Vec<Option<TargetInfo>> = Vec::with_capacity(unknown.len());
        for id in &unknown {
            match updater.local_target_info(&index_target(id)) {
                Some(Ok(Some(info))) => infos.push(Some(info)),
                Some(Ok(None)) => {
                    self.memoize(id.clone(), None);
                    infos.push(None);
                }
                // A bin that could not be loaded: `doc` reports it if it is needed.
                Some(Err(_)) | None => infos.push(None),
            }
        }
        drop(updater);

        let done = background.finish(alias_deadline);
        let mut aliases: Vec<Option<Unverified>> = unknown.iter().map(|_| None).collect();
        let mut found_alias = false;
        for (slot, outcome) in early.map(|b| b.finish(alias_deadline)).unwrap_or_default() {
            if let (Slot::Alias(n), Outcome::Alias(result)) = (slot, outcome) {
                found_alias |= !matches!(result, Err(true));
                let place = early_ids.get(n).and_then(|id| unknown.iter().position(|u| u == id));
                if let (Some(place), Ok(bytes)) = (place.and_then(|at| aliases.get_mut(at)), result) {
                    *place = Some(bytes);
                }
            }
        }
        for (slot, outcome) in done {
            match (slot, outcome) {
                (Slot::Alias(n), Outcome::Alias(result)) => {
                    found_alias |= !matches!(result, Err(true));
                    if let (Some(place), Ok(bytes)) = (aliases.get_mut(n), result) {
                        *place = Some(bytes);
                    }
                }
                (Slot::Doc(n), Outcome::Target(Ok(bytes))) => {
                    if let Some((id, info)) = known.get(n) {
                        memoized.extend(self.memoize_bytes(id.clone(), info, &bytes));
                    }
                }
                _ => {}
            }
        }
        if asked_aliases && !found_alias {
            tracing::debug!(registry = %self.registry, "no index doc aliases: not asking for them again");
            self.aliases = false;
        }
        // Each doc from its alias when that is the signed doc, else by its hashed path.
        let mut fallback: Vec<(PluginId, TargetInfo)> = Vec::new();
        for ((id, info), alias) in unknown.into_iter().zip(infos).zip(aliases) {
            let Some(info) = info else { continue };
            let accepted = alias.and_then(|alias| fetcher.accept(&info, alias));
            match accepted {
                Some(bytes) => memoized.extend(self.memoize_bytes(id, &info, &bytes)),
                None => fallback.push((id, info)),
            }
        }
        if !fallback.is_empty() {
            let results = parallel::map_bounded(&fallback, PARALLEL_DOWNLOADS, |(_, info)| fetcher.fetch(info));
            for ((id, info), result) in fallback.into_iter().zip(results) {
                if let Ok(bytes) = result {
                    memoized.extend(self.memoize_bytes(id, &info, &bytes));
                }
            }
        }
        memoized
    }

    /// Starts downloading what the last wave left pending into the verified cache,
    /// behind the resolution ([`Remotes::download_behind`]): verifying the releases
    /// waits for them, the packages' downloads need not.
    fn finish(self) {
        if !self.pending.is_empty() {
            self.remotes.download_behind(self.registry, self.pending);
        }
    }
}

/// Downloads running on their own threads while the updater loads roles: at most
/// [`BACKGROUND_DOWNLOADS`] at once. The threads are not joined: a wave stops waiting
/// for aliases at its deadline, and each download ends within the transport's bounds
/// on its own (its result is then dropped).
struct Background {
    results: mpsc::Receiver<(Slot, Outcome)>,
    queue: Arc<Mutex<VecDeque<(Slot, Job)>>>,
    aliases: usize,
    targets: usize,
}

impl Background {
    fn start(fetcher: &TargetFetcher, jobs: Vec<(Slot, Job)>, budget: Arc<AtomicU64>) -> Self {
        let aliases = jobs.iter().filter(|(_, job)| matches!(job, Job::Alias(_))).count();
        let targets = jobs.len() - aliases;
        let workers = jobs.len().min(BACKGROUND_DOWNLOADS);
        let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
        let (sender, results) = mpsc::channel();
        let mut started = 0;
        for _ in 0..workers {
            let work = Worker {
                fetcher: fetcher.clone(),
                queue: Arc::clone(&queue),
                budget: Arc::clone(&budget),
                sender: sender.clone(),
            };
            if std::thread::Builder::new().name("trellis-prefetch".into()).spawn(move || work.run()).is_ok() {
                started += 1;
            }
        }
        if started == 0 && workers > 0 {
            // No thread could be started: do the work here, before the bins.
            Worker { fetcher: fetcher.clone(), queue: Arc::clone(&queue), budget, sender }.run();
        }
        Self { results, queue, aliases, targets }
    }

    /// Every target download's outcome, and the aliases that arrived by
    /// `alias_deadline`; the aliases not started by then never are.
    fn finish(self, alias_deadline: Instant) -> Vec<(Slot, Outcome)> {
        let (mut aliases, mut targets) = (self.aliases, self.targets);
        let mut done = Vec::with_capacity(aliases + targets);
        while aliases + targets > 0 {
            let received = if targets > 0 {
                self.results.recv().ok()
            } else {
                self.results.recv_timeout(alias_deadline.saturating_duration_since(Instant::now())).ok()
            };
            let Some((slot, outcome)) = received else { break };
            match outcome {
                Outcome::Alias(_) => aliases -= 1,
                Outcome::Target(_) => targets -= 1,
            }
            done.push((slot, outcome));
        }
        lock(&self.queue).clear();
        done
    }
}

struct Worker {
    fetcher: TargetFetcher,
    queue: Arc<Mutex<VecDeque<(Slot, Job)>>>,
    budget: Arc<AtomicU64>,
    sender: mpsc::Sender<(Slot, Outcome)>,
}

impl Worker {
    fn run(self) {
        loop {
            let Some((slot, job)) = lock(&self.queue).pop_front() else { return };
            let outcome = match job {
                Job::Alias(path) => Outcome::Alias(self.alias(&path)),
                Job::Target(info) => Outcome::Target(self.fetcher.fetch(&info)),
            };
            if self.sender.send((slot, outcome)).is_err() {
                return;
            }
        }
    }

    /// The alias at `path` within the budget; `Err(true)` when the mirror does not
    /// have it.
    fn alias(&self, path: &str) -> Result<Unverified, bool> {
        let Ok(reserved) = self.budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            (left > 0).then(|| left - left.min(ALIAS_MAX_BYTES))
        }) else {
            return Err(false);
        };
        let cap = reserved.min(ALIAS_MAX_BYTES);
        match self.fetcher.fetch_unverified(path, cap) {
            Ok(bytes) => {
                self.budget.fetch_add(cap - (bytes.len() as u64).min(cap), Ordering::SeqCst);
                Ok(bytes)
            }
            Err(error) => {
                let missing = !error.attempts.is_empty()
                    && error
                        .attempts
                        .iter()
                        .all(|a| matches!(&a.error, AttemptError::Transport(e) if e.is_not_found()));
                if missing {
                    // Nothing was downloaded.
                    self.budget.fetch_add(cap, Ordering::SeqCst);
                }
                Err(missing)
            }
        }
    }
}
