//! The TUF client workflow (spec §5) over a [`Mirrors`] set and a [`MetadataStore`]:
//! refresh (root chain, timestamp, snapshot, top-level targets), the lazy
//! delegation walk to one target, target download, and the cheap update check.
//!
//! Each document is persisted as soon as it is verified, exactly as received; refused
//! bytes are never written. So a refresh that fails part-way leaves every trusted file
//! either as it was or replaced by a newer fully verified one (what §5 prescribes: a
//! newer verified timestamp stays trusted even if the snapshot it names is missing).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_schema::tuf::{TargetFile, Targets};

use super::delegation;
use super::fetcher::{self, TargetFetcher};
use super::speculation::{self, MetadataOrder, Speculated};
use super::store::{MetadataStore, TimestampValidators, quote};
use super::trusted_set::{TimestampUpdate, TrustedSet};
use super::verify::{TrustedLeaf, Verified, check_length_and_hashes};
use super::{Delegator, Limits, TrustError};
use crate::fs::write_atomic;
use crate::transport::{DownloadCache, FetchSpec, Fetched, MirrorKind, Mirrors, Progress};

/// The answer of [`Updater::check_for_updates`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateCheck {
    /// `timestamp.json` answered `304` and the trusted one is unexpired: nothing is
    /// new. One request.
    NothingNew,
    /// The repository changed; a full refresh ran and the trusted state is current.
    Refreshed,
}

/// A file to download and the length and hashes it must have: a target found by the
/// delegation walk, or a blob vouched for by a verified target ([`TargetInfo::vouched_by`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// The target path.
    pub path: String,
    /// Length and hashes, as signed by the role that lists it (or as listed by the
    /// verified document that vouches for the blob).
    pub file: TargetFile,
    /// The role that lists it, or what vouches for the blob (`the index doc of acme.clock`).
    pub role: String,
}

impl TargetInfo {
    /// A blob whose path, length and SHA-256 a verified target lists (the
    /// [`BlobRef`](trellis_schema::index::BlobRef) of a package, envelope or delta in
    /// an index doc the bins signed). Downloading it through
    /// [`Updater::fetch_target`] checks exactly what a TUF target download checks
    /// (length cap while streaming, then length and SHA-256), so the blob carries the
    /// assurance of the target that vouches for it. `voucher` names that target for
    /// errors and logs.
    pub fn vouched_by(blob: &trellis_schema::index::BlobRef, voucher: impl Into<String>) -> Self {
        Self {
            path: blob.path.clone(),
            file: TargetFile {
                length: blob.length,
                hashes: std::collections::BTreeMap::from([("sha256".to_owned(), blob.sha256.to_hex())]),
                custom: None,
                extra: serde_json::Map::new(),
            },
            role: voucher.into(),
        }
    }

    /// The SHA-256 the target is signed with, if any.
    pub fn sha256(&self) -> Option<trellis_schema::Sha256> {
        self.file.hashes.get("sha256").and_then(|h| h.parse().ok())
    }
}

/// Metadata bytes received since the last refresh began, against
/// [`Limits::metadata_bytes`].
#[derive(Clone, Copy, Debug)]
struct MetadataBudget {
    limit: u64,
    received: u64,
}

impl MetadataBudget {
    fn new(limit: u64) -> Self {
        Self { limit, received: 0 }
    }
}

/// Where a walk of the delegations to one target ended.
enum Walk {
    Found(TargetInfo),
    NotFound,
    /// A local-only walk reached `role` (delegated by `parent`), which is not loaded.
    Needs {
        role: String,
        parent_name: String,
        parent: Arc<Verified<Targets>>,
    },
}

/// The TUF client: trusted state in a directory, metadata and targets from mirrors.
pub struct Updater {
    store: MetadataStore,
    mirrors: Mirrors,
    limits: Limits,
    trusted: TrustedSet,
    delegated: HashMap<(String, String), Arc<Verified<Targets>>>,
    /// Delegated roles without delegations read back under a receipt, kept as bytes.
    leaves: HashMap<(String, String), Arc<TrustedLeaf>>,
    cache: Option<DownloadCache>,
    progress: Option<Arc<dyn Progress>>,
    reference_time: Option<jiff::Timestamp>,
    budget: MetadataBudget,
    order: MetadataOrder,
    /// Target paths the next refresh or update check speculates the delegation path of.
    hints: Vec<String>,
    speculated: Speculated,
    /// The trusted set [`Updater::hint`] prepared for the next update check (stored
    /// root and timestamp, usable), when it started speculation for it.
    prepared: Option<TrustedSet>,
    /// Whether `trusted` is the whole chain as this updater's last refresh, update
    /// check or offline load verified it and left it in the store (none of them
    /// failed since): the next check starts from it ([`Updater::current_chain`])
    /// instead of reading and parsing the stored copies again.
    current: bool,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater").field("store", &self.store).field("mirrors", &self.mirrors).finish_non_exhaustive()
    }
}

impl Updater {
    /// Writes the root shipped with the application into `metadata_dir` unless a
    /// trusted root is already there (a later one from a rotation must not be
    /// replaced by the older pinned one). No network.
    pub fn bootstrap(metadata_dir: &Path, pinned_root: &[u8]) -> Result<(), TrustError> {
        let store = MetadataStore::new(metadata_dir);
        if store.load("root").is_none() {
            store.store("root", pinned_root)?;
        }
        Ok(())
    }

    /// An updater over the trusted state in `metadata_dir` (which must hold a root,
    /// see [`Updater::bootstrap`]).
    pub fn new(metadata_dir: impl Into<PathBuf>, mirrors: Mirrors) -> Result<Self, TrustError> {
        Self::new_with_limits(metadata_dir, mirrors, Limits::default())
    }

    /// [`Updater::new`] with `limits` from the start (needed for
    /// [`KeyIds::AsListed`](super::KeyIds::AsListed): the trusted root is read here).
    pub fn new_with_limits(
        metadata_dir: impl Into<PathBuf>,
        mirrors: Mirrors,
        limits: Limits,
    ) -> Result<Self, TrustError> {
        let store = MetadataStore::new(metadata_dir);
        let trusted = Self::trusted_from(&store, None, limits.key_ids)?;
        Ok(Self {
            store,
            mirrors,
            budget: MetadataBudget::new(limits.metadata_bytes),
            limits,
            trusted,
            delegated: HashMap::new(),
            leaves: HashMap::new(),
            cache: None,
            progress: None,
            reference_time: None,
            order: MetadataOrder::Strict,
            hints: Vec::new(),
            speculated: Speculated::default(),
            prepared: None,
            current: false,
        })
    }

    /// Downloads metadata in `order` ([`MetadataOrder::Strict`] unless told).
    #[must_use]
    pub fn with_metadata_order(mut self, order: MetadataOrder) -> Self {
        self.order = order;
        self
    }

    /// Names the targets the caller is about to look up, so that with
    /// [`MetadataOrder::Speculative`] the next refresh or update check asks for the
    /// roles on their delegation paths together with its own requests (see
    /// [`super::speculation`]). Used once; nothing is trusted because of a hint.
    ///
    /// When the next update check will be the one conditional request (a stored
    /// timestamp, unexpired, and its validators), the roles the stored snapshot names
    /// are asked for now, and the answer is the hinted paths whose walk needs a role
    /// the store does not hold (what the caller may fetch by other means meanwhile);
    /// `None` when there is no such local answer. The trusted state is left as it was.
    pub fn hint(&mut self, paths: impl IntoIterator<Item = String>) -> Option<Vec<String>> {
        self.speculated.clear();
        self.prepared = None;
        if self.order != MetadataOrder::Speculative {
            return None;
        }
        self.hints = paths.into_iter().collect();
        if self.hints.is_empty() || self.store.load_validators().is_none() {
            return None;
        }
        let current = self.current_chain();
        let in_memory = current.is_some();
        let fresh = match current {
            Some(chain) => chain,
            None => Self::trusted_from(&self.store, self.reference_time, self.limits.key_ids).ok()?,
        };
        let trusted = std::mem::replace(&mut self.trusted, fresh);
        let kept = (std::mem::take(&mut self.delegated), std::mem::take(&mut self.leaves));
        let needs = if in_memory {
            Some(self.speculate_paths())
        } else if self.local_timestamp_usable() {
            self.speculate_local()
        } else {
            None
        };
        // The check then sends its request at once: what it would load first is here.
        let prepared = std::mem::replace(&mut self.trusted, trusted);
        (self.delegated, self.leaves) = kept;
        if needs.is_some() {
            self.prepared = Some(prepared);
        }
        needs
    }

    /// Uses `limits` instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.budget = MetadataBudget::new(limits.metadata_bytes);
        self.trusted.set_key_ids(limits.key_ids);
        self.limits = limits;
        self.current = false;
        self
    }

    /// Caches downloaded targets in `cache` (content-addressed, verified on read).
    #[must_use]
    pub fn with_cache(mut self, cache: DownloadCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Reports download progress of targets to `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Judges expiry at `now` instead of the system clock (tests, reproducible runs).
    #[must_use]
    pub fn with_reference_time(mut self, now: jiff::Timestamp) -> Self {
        self.reference_time = Some(now);
        self.trusted.set_now(now);
        self
    }

    /// The chain this updater verified last, judged again at the reference time (now,
    /// unless told): a copy of `trusted` when it is [`current`](Self::current) and
    /// still a usable chain ([`TrustedSet::holds_final_chain`]); `None` otherwise,
    /// and the caller reads the store. The stored copies are the bytes this chain was
    /// verified from, and only this updater writes them while the data-dir lock is
    /// held, so starting from memory trusts nothing the store would not give; it only
    /// skips parsing the snapshot and the top-level targets again (the largest
    /// documents of a refresh: ~90 KB each at 100k plugins).
    fn current_chain(&self) -> Option<TrustedSet> {
        if !self.current {
            return None;
        }
        let mut chain = self.trusted.clone();
        chain.set_now(self.reference_time.unwrap_or_else(jiff::Timestamp::now));
        chain.holds_final_chain().then_some(chain)
    }

    fn trusted_from(
        store: &MetadataStore,
        now: Option<jiff::Timestamp>,
        key_ids: super::KeyIds,
    ) -> Result<TrustedSet, TrustError> {
        let root = store
            .load("root")
            .ok_or_else(|| TrustError::NoTrustedRoot { path: store.path_of("root").display().to_string() })?;
        TrustedSet::with_key_ids(&root, now.unwrap_or_else(jiff::Timestamp::now), key_ids)
    }

    /// The trusted metadata (after a refresh: current).
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The mirrors files are fetched from.
    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    /// Fetches from `mirrors` from now on (a registry published another mirror list).
    /// Mirrors are only locations: everything is verified as before.
    pub fn set_mirrors(&mut self, mirrors: Mirrors) {
        self.mirrors = mirrors;
    }

    /// The trusted-state store.
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    /// Fetches metadata `file` (already quoted) from the mirrors, handing the bytes
    /// to `accept` (which verifies them against `trusted`). Returns its result, the
    /// bytes and where they came from.
    fn fetch_metadata<T>(
        mirrors: &Mirrors,
        budget: &mut MetadataBudget,
        file: &str,
        max_length: u64,
        validators: Option<(&str, &crate::transport::Validators)>,
        mut accept: impl FnMut(&[u8]) -> Result<T, TrustError>,
    ) -> Result<Option<(T, Vec<u8>, TimestampValidators)>, TrustError> {
        let remaining = budget.limit.saturating_sub(budget.received);
        let exceeded = || TrustError::MetadataBudget { limit: budget.limit, file: file.to_owned() };
        if remaining == 0 {
            return Err(exceeded());
        }
        // The budget caps the stream too: a mirror cannot spend more than is left.
        let spec =
            FetchSpec { kind: MirrorKind::Metadata, path: file, max_length: max_length.min(remaining), validators };
        let mut received = 0u64;
        let result = mirrors
            .fetch_with(spec, None, |url, fetched| match fetched {
                Fetched::NotModified => Ok(None),
                Fetched::Body { bytes, validators } => {
                    received += bytes.len() as u64;
                    if received > remaining {
                        return Err(exceeded());
                    }
                    let value = accept(&bytes)?;
                    Ok(Some((value, bytes, TimestampValidators { url: url.to_owned(), validators })))
                }
            })
            .map_err(|e| TrustError::Fetch(Box::new(e)));
        budget.received = budget.received.saturating_add(received);
        match result {
            Err(TrustError::Fetch(e)) if remaining < max_length && e.attempts.iter().any(|a| a.is_too_large()) => {
                budget.received = budget.limit;
                Err(exceeded())
            }
            other => other,
        }
    }

    /// The strict spec §5 refresh: root chain (probing N+1.root.json until it is
    /// absent), timestamp, snapshot, top-level targets. Delegated roles are loaded
    /// later, lazily, by [`Updater::target_info`]. With
    /// [`MetadataOrder::Speculative`], files are asked for ahead of that order and
    /// verified in it ([`super::speculation`]).
    pub fn refresh(&mut self) -> Result<(), TrustError> {
        self.refresh_with_timestamp(None)
    }

    fn refresh_with_timestamp(&mut self, prefetched: Option<(Vec<u8>, TimestampValidators)>) -> Result<(), TrustError> {
        self.current = false;
        let early_timestamp = prefetched.is_none() && self.order == MetadataOrder::Speculative;
        if prefetched.is_none() {
            // An update check started the budget with the timestamp it fetched (and
            // its speculation, which this refresh may still take).
            self.budget = MetadataBudget::new(self.limits.metadata_bytes);
            self.speculated.clear();
        }
        self.trusted = Self::trusted_from(&self.store, self.reference_time, self.limits.key_ids)?;
        self.delegated.clear();
        self.leaves.clear();
        if early_timestamp {
            self.speculated.start(&self.mirrors, "timestamp.json".to_owned(), self.limits.timestamp);
        }
        self.speculate_top_level(prefetched.as_ref().map(|(bytes, _)| bytes.as_slice()));
        let root_before = self.trusted.root().version();
        // Every refresh probes for a newer root first, also the one an update check
        // runs after a changed timestamp (a 200): a rotation that revoked a key must
        // be known before metadata signed by that key is believed. Only a 304 skips it.
        self.update_root()?;
        // What was asked for with the root probe is taken only under the root it was
        // asked under: after a rotation it is all fetched again.
        let root_settled = self.trusted.root().version() == root_before;
        if !root_settled {
            self.speculated.clear();
        }
        let mut validators = None;
        let result = self
            .update_timestamp(prefetched, root_settled, &mut validators)
            .and_then(|()| self.update_snapshot())
            .and_then(|()| {
                // With the top-level targets on its way since the timestamp's request,
                // the hinted paths are guessed from it rather than from a stored copy.
                if self.speculated.is_pending(speculation::TOP_TARGETS_FILE) {
                    self.update_top_targets()?;
                    self.speculate_paths();
                    Ok(())
                } else {
                    self.speculate_paths();
                    self.update_top_targets()
                }
            });
        self.prepared = None;
        self.hints.clear();
        // The top-level roles stored above were flushed and renamed: one sync of their
        // directory makes them durable together; then the timestamp's validators.
        self.store.sync()?;
        if let Some(validators) = validators {
            self.store.store_validators(Some(&validators))?;
        }
        self.current = result.is_ok();
        result
    }

    /// The speculated bytes of metadata `file`, if they were asked for, arrived within
    /// the budget and pass `accept` (the check a download at this point of the
    /// workflow gets); `None` otherwise, and the caller downloads `file` the strict way.
    fn take_speculated<T>(
        speculated: &mut Speculated,
        budget: &mut MetadataBudget,
        file: &str,
        accept: impl FnOnce(&[u8]) -> Result<T, TrustError>,
    ) -> Option<(T, Vec<u8>, TimestampValidators)> {
        let (bytes, validators) = speculated.take(file)?;
        let received = budget.received.saturating_add(bytes.len() as u64);
        if received > budget.limit {
            return None;
        }
        budget.received = received;
        match accept(&bytes) {
            Ok(value) => Some((value, bytes, validators)),
            Err(error) => {
                tracing::debug!(file, %error, "speculated metadata refused: downloading it again");
                None
            }
        }
    }

    /// [`Updater::take_speculated`] for the first of `files` (names of the same
    /// document) that was asked for and passes `accept`; each one asked for is taken
    /// (and dropped when refused).
    fn take_speculated_any<T>(
        speculated: &mut Speculated,
        budget: &mut MetadataBudget,
        files: &[&str],
        mut accept: impl FnMut(&[u8]) -> Result<T, TrustError>,
    ) -> Option<(T, Vec<u8>, TimestampValidators)> {
        files.iter().find_map(|file| Self::take_speculated(speculated, budget, file, &mut accept))
    }

    /// With [`MetadataOrder::Speculative`], asks for the snapshot ahead of the
    /// timestamp's verification (and, when the store holds no top-level targets, that
    /// role too): under their unversioned names in a full refresh (`timestamp` `None`:
    /// their versions are not known yet), the version `timestamp` names (the update
    /// check's changed timestamp, not verified yet: only a guess) otherwise, unless the
    /// stored timestamp names the same one (a timestamp re-signed without a build).
    /// Each is taken only where the strict order reaches it (see [`super::speculation`]).
    fn speculate_top_level(&mut self, timestamp: Option<&[u8]>) {
        if self.order != MetadataOrder::Speculative {
            return;
        }
        let snapshot = match timestamp {
            None => Some(speculation::SNAPSHOT_FILE.to_owned()),
            Some(bytes) => speculation::unverified_snapshot_version(bytes)
                .filter(|version| {
                    let stored = self.store.load("timestamp");
                    stored.as_deref().and_then(speculation::unverified_snapshot_version) != Some(*version)
                })
                .map(|version| {
                    if self.trusted.root().consistent_snapshot {
                        format!("{version}.{}", speculation::SNAPSHOT_FILE)
                    } else {
                        speculation::SNAPSHOT_FILE.to_owned()
                    }
                }),
        };
        let remaining = self.budget.limit.saturating_sub(self.budget.received);
        if let Some(file) = snapshot {
            self.speculated.start(&self.mirrors, file, self.limits.snapshot.min(remaining));
        }
        if timestamp.is_none() && self.store.load("targets").is_none() {
            let file = speculation::TOP_TARGETS_FILE.to_owned();
            self.speculated.start(&self.mirrors, file, self.limits.targets.min(remaining));
        }
    }

    /// With [`MetadataOrder::Speculative`] and hints ([`Updater::hint`]), starts
    /// downloading the roles on the delegation path of each hinted target that the
    /// trusted store does not hold: the first role its walk lacks, at the version the
    /// trusted snapshot names, and the bin below it the target falls in
    /// ([`speculation::guess_bins`]). The top-level targets is walked when loaded;
    /// before it is, its stored copy (if any) guesses the first role, and the file
    /// itself is asked for when the snapshot names another version.
    /// Returns the hinted paths whose walk needs a download.
    fn speculate_paths(&mut self) -> Vec<String> {
        if self.order != MetadataOrder::Speculative || self.hints.is_empty() {
            return Vec::new();
        }
        let Some(snapshot) = self.trusted.snapshot().map(|s| (**s).clone()) else { return Vec::new() };
        let mut roles: Vec<(String, String)> = Vec::new();
        let hints = std::mem::take(&mut self.hints);
        let stored_top = if self.trusted.targets().is_none() {
            let stored = self.store.load("targets").and_then(|bytes| speculation::unverified_targets(&bytes));
            let version = snapshot.meta.get("targets.json").map(|m| m.version);
            if stored.as_ref().map(|t| t.version) != version {
                roles.push(("targets".to_owned(), String::new()));
            }
            Some(stored)
        } else {
            None
        };
        for path in &hints {
            let needed = match &stored_top {
                None => match self.walk(path, true) {
                    Ok(Walk::Needs { role, .. }) => Some(role),
                    _ => None,
                },
                Some(stored) => stored
                    .as_ref()
                    .and_then(|t| t.delegations.as_ref())
                    .and_then(|d| delegation::roles_for_target(d, path).into_iter().next())
                    .map(|(role, _)| role),
            };
            if let Some(role) = needed {
                roles.push((role, path.clone()));
            }
        }
        self.hints = hints;
        let needs: Vec<String> = roles.iter().filter(|(_, path)| !path.is_empty()).map(|(_, p)| p.clone()).collect();
        let mut files = Vec::new();
        for (role, path) in roles {
            let stored = self.store.load(&role);
            let below = if path.is_empty() {
                Vec::new()
            } else {
                speculation::guess_bins(&role, stored.as_deref(), &snapshot, &path)
            };
            for name in std::iter::once(role.clone()).chain(below.into_iter().filter(|b| *b != role)) {
                if let Ok(file) = self.role_file(&name) {
                    files.push(file);
                }
            }
        }
        let remaining = self.budget.limit.saturating_sub(self.budget.received);
        for (file, max) in files {
            self.speculated.start(&self.mirrors, file, max.min(remaining));
        }
        needs
    }

    /// Before the update check's request (from [`Updater::hint`], on the stored root
    /// and timestamp): the roles on the hinted targets' delegation paths, as the stored
    /// snapshot names them, asked for ahead of it. A `304` confirms that snapshot, so
    /// they are the roles the walk loads next; after a `200`, those whose version the
    /// new snapshot still names are. `None` when the stored chain does not answer.
    fn speculate_local(&mut self) -> Option<Vec<String>> {
        let loaded = self.store.load("snapshot").is_some_and(|bytes| {
            let receipt = self.store.load_receipt("snapshot");
            matches!(self.trusted.load_local_snapshot(&bytes, receipt.as_ref()), Ok(true))
        }) && self.store.load("targets").is_some_and(|bytes| {
            let receipt = self.store.load_receipt("targets");
            self.trusted.load_local_targets(&bytes, receipt.as_ref()).is_ok()
        });
        loaded.then(|| self.speculate_paths())
    }

    /// Loads the stored timestamp under the trusted root: whether both are unexpired
    /// (what the one-request update check needs).
    fn local_timestamp_usable(&mut self) -> bool {
        self.trusted.check_root_fresh().is_ok()
            && self.store.load("timestamp").is_some_and(|bytes| {
                let loaded = self.trusted.load_local_timestamp(&bytes, self.store.load_receipt("timestamp").as_ref());
                if loaded.is_ok() {
                    self.remember("timestamp", &bytes, self.trusted.timestamp());
                }
                loaded.is_ok()
            })
            && self.trusted.timestamp().is_some_and(|t| !t.is_expired(self.trusted.now()))
    }

    /// Records a receipt for `role`'s stored bytes when this load verified their
    /// signatures (no receipt yet, or one that no longer applied). Best effort: without
    /// a receipt the next load just verifies again.
    fn remember<T>(&self, role: &str, bytes: &[u8], doc: Option<&Verified<T>>) {
        if let Some(doc) = doc
            && !doc.by_receipt()
            && let Err(e) = self.store.store_receipt(role, &super::Receipt::new(bytes, doc))
        {
            tracing::debug!(role, error = %e, "could not record a receipt");
        }
    }

    fn update_root(&mut self) -> Result<(), TrustError> {
        let first = self.trusted.root().version() + 1;
        let mut rotations = 0;
        loop {
            if rotations >= self.limits.max_root_rotations {
                return Err(TrustError::TooManyRootRotations { limit: self.limits.max_root_rotations });
            }
            let version = first + u64::from(rotations);
            let file = format!("{version}.root.json");
            let trusted = &mut self.trusted;
            match Self::fetch_metadata(&self.mirrors, &mut self.budget, &file, self.limits.root, None, |bytes| {
                trusted.update_root(bytes)
            }) {
                Ok(Some((_, bytes, _))) => self.store.store("root", &bytes)?,
                Ok(None) => break,
                Err(TrustError::Fetch(e)) if e.is_not_found() => break,
                Err(e) => return Err(e),
            }
            rotations += 1;
        }
        self.trusted.check_root_fresh()
    }

    /// Brings the timestamp up to date; `validators` gets the validators of the
    /// response it came from, which the refresh stores once the timestamp is durable.
    fn update_timestamp(
        &mut self,
        prefetched: Option<(Vec<u8>, TimestampValidators)>,
        take_speculated: bool,
        stored_validators: &mut Option<TimestampValidators>,
    ) -> Result<(), TrustError> {
        if let Some(local) = self.store.load("timestamp") {
            match self.trusted.load_local_timestamp(&local, self.store.load_receipt("timestamp").as_ref()) {
                Ok(()) => self.remember("timestamp", &local, self.trusted.timestamp()),
                Err(e) => tracing::debug!(error = %e, "local timestamp is not usable as a rollback reference"),
            }
        }
        // A timestamp fetched by the update check is used when it verifies; when it
        // does not, the mirrors are asked in order like in any refresh (failover).
        let prefetched = prefetched.and_then(|(bytes, validators)| match self.trusted.update_timestamp(&bytes) {
            Ok(outcome) => Some((outcome, bytes, validators)),
            Err(e) => {
                tracing::warn!(url = %validators.url, error = %e, "timestamp from the update check rejected");
                None
            }
        });
        let speculated = match (&prefetched, take_speculated) {
            (None, true) => {
                let trusted = &mut self.trusted;
                Self::take_speculated(&mut self.speculated, &mut self.budget, "timestamp.json", |bytes| {
                    trusted.update_timestamp(bytes)
                })
            }
            _ => None,
        };
        let (outcome, bytes, validators) = match prefetched.or(speculated) {
            Some(verified) => verified,
            None => {
                let trusted = &mut self.trusted;
                Self::fetch_metadata(
                    &self.mirrors,
                    &mut self.budget,
                    "timestamp.json",
                    self.limits.timestamp,
                    None,
                    |bytes| trusted.update_timestamp(bytes),
                )?
                .ok_or(TrustError::NotLoaded("timestamp"))?
            }
        };
        if outcome == TimestampUpdate::Updated {
            let timestamp = self.trusted.timestamp().ok_or(TrustError::NotLoaded("timestamp"))?;
            self.store.store_verified("timestamp", &bytes, timestamp)?;
        }
        *stored_validators = Some(validators);
        self.trusted.check_timestamp_fresh()
    }

    fn update_snapshot(&mut self) -> Result<(), TrustError> {
        if let Some(local) = self.store.load("snapshot") {
            let loaded = self.trusted.load_local_snapshot(&local, self.store.load_receipt("snapshot").as_ref());
            if loaded.is_ok() {
                self.remember("snapshot", &local, self.trusted.snapshot());
            }
            match loaded {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "local snapshot is not usable"),
            }
        }
        let timestamp = self.trusted.timestamp().ok_or(TrustError::NotLoaded("timestamp"))?;
        let meta = &timestamp.meta["snapshot.json"];
        let file = if self.trusted.root().consistent_snapshot {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".to_owned()
        };
        let max = meta.length.unwrap_or(self.limits.snapshot);
        // Asked for ahead under its version (after a changed timestamp) or its
        // unversioned name (a full refresh): checked here as a download would be.
        let names: &[&str] = if file == speculation::SNAPSHOT_FILE {
            &[speculation::SNAPSHOT_FILE]
        } else {
            &[&file, speculation::SNAPSHOT_FILE]
        };
        let trusted = &mut self.trusted;
        let speculated = Self::take_speculated_any(&mut self.speculated, &mut self.budget, names, |bytes| {
            trusted.update_snapshot(bytes)
        });
        let bytes = match speculated {
            Some(((), bytes, _)) => bytes,
            None => {
                let trusted = &mut self.trusted;
                let (_, bytes, _) = Self::fetch_metadata(&self.mirrors, &mut self.budget, &file, max, None, |bytes| {
                    trusted.update_snapshot(bytes)
                })?
                .ok_or(TrustError::NotLoaded("snapshot"))?;
                bytes
            }
        };
        let snapshot = self.trusted.snapshot().ok_or(TrustError::NotLoaded("snapshot"))?;
        self.store.store_verified("snapshot", &bytes, snapshot)?;
        Ok(())
    }

    fn update_top_targets(&mut self) -> Result<(), TrustError> {
        if let Some(local) = self.store.load("targets") {
            match self.trusted.load_local_targets(&local, self.store.load_receipt("targets").as_ref()) {
                Ok(targets) => {
                    self.remember("targets", &local, Some(&*targets));
                    return Ok(());
                }
                Err(e) => tracing::debug!(error = %e, "local targets is not the current one"),
            }
        }
        let (targets, bytes) = self.download_role("targets", Delegator::Root)?;
        self.store.store_verified("targets", &bytes, &targets)?;
        Ok(())
    }

    fn role_file(&self, role: &str) -> Result<(String, u64), TrustError> {
        let version = self.trusted.snapshot_version_of(role)?;
        let file = if self.trusted.root().consistent_snapshot {
            format!("{version}.{}.json", quote(role))
        } else {
            format!("{}.json", quote(role))
        };
        let max = self
            .trusted
            .snapshot()
            .and_then(|s| s.meta.get(&format!("{role}.json")))
            .and_then(|m| m.length)
            .unwrap_or(self.limits.targets);
        Ok((file, max))
    }

    fn download_role(
        &mut self,
        role: &str,
        delegator: Delegator<'_>,
    ) -> Result<(Arc<Verified<Targets>>, Vec<u8>), TrustError> {
        let (file, max) = self.role_file(role)?;
        // The top-level targets may have been asked for under its unversioned name too,
        // before the snapshot gave its version.
        let names: &[&str] = match delegator {
            Delegator::Root if file != speculation::TOP_TARGETS_FILE => &[&file, speculation::TOP_TARGETS_FILE],
            _ => &[&file],
        };
        let trusted = &mut self.trusted;
        if let Some((targets, bytes, _)) =
            Self::take_speculated_any(&mut self.speculated, &mut self.budget, names, |bytes| match delegator {
                Delegator::Root => trusted.update_targets(bytes),
                Delegator::Targets(parent) => verify_delegated_role(trusted, role, parent, bytes).map(Arc::new),
            })
        {
            return Ok((targets, bytes));
        }
        let trusted = &mut self.trusted;
        let (targets, bytes, _) =
            Self::fetch_metadata(&self.mirrors, &mut self.budget, &file, max, None, |bytes| match delegator {
                Delegator::Root => trusted.update_targets(bytes),
                Delegator::Targets(parent) => verify_delegated_role(trusted, role, parent, bytes).map(Arc::new),
            })?
            .ok_or(TrustError::NotLoaded("targets"))?;
        Ok((targets, bytes))
    }

    /// Loads delegated `role` as delegated by `parent` (named `parent_name`): from
    /// memory or our store when it still verifies against *this* delegator, else from
    /// the mirrors.
    fn load_delegated(
        &mut self,
        role: &str,
        parent_name: &str,
        parent: &Arc<Verified<Targets>>,
    ) -> Result<Arc<Verified<Targets>>, TrustError> {
        if let Some(found) = self.load_delegated_locally(role, parent_name, parent) {
            return Ok(found);
        }
        let (targets, bytes) = self.download_role(role, Delegator::Targets(parent))?;
        self.store.store_verified(role, &bytes, &targets)?;
        self.delegated.insert((role.to_owned(), parent_name.to_owned()), Arc::clone(&targets));
        Ok(targets)
    }

    /// [`Updater::load_delegated`] without the network: `None` when `role` has to be
    /// downloaded.
    fn load_delegated_locally(
        &mut self,
        role: &str,
        parent_name: &str,
        parent: &Arc<Verified<Targets>>,
    ) -> Option<Arc<Verified<Targets>>> {
        let key = (role.to_owned(), parent_name.to_owned());
        if let Some(found) = self.delegated.get(&key) {
            return Some(Arc::clone(found));
        }
        let delegator = Delegator::Targets(parent);
        let local = self.store.load(role)?;
        let receipt = self.store.load_receipt(role);
        // The copy may have been stored by a client that did not check that a bin lists
        // only its own targets: another bin kept under this bin's name would hide them.
        // (The leaf path relies on its receipt for that: `RECEIPT_FORMAT` 3.)
        let loaded = self
            .trusted
            .verify_local_targets(role, delegator, &local, receipt.as_ref())
            .and_then(|targets| own_targets_only(role, parent, targets));
        match loaded {
            Ok(targets) => {
                self.remember(role, &local, Some(&targets));
                let targets = Arc::new(targets);
                self.delegated.insert(key, Arc::clone(&targets));
                Some(targets)
            }
            Err(e) => {
                tracing::debug!(role, error = %e, "local copy is not the current one");
                None
            }
        }
    }

    /// Loads the delegated roles the walks to `paths` need, downloading those of one
    /// level of the delegation tree in parallel (at most `workers` at once) instead of
    /// one after another: the round trips of a walk to many targets are the depth of
    /// the tree, not the number of bins. Each role is verified exactly as
    /// [`Updater::target_info`] verifies it (against its delegator, the snapshot's
    /// version and length, the metadata budget) before it is stored and used.
    /// Failures are not reported here: a role that could not be loaded is loaded (and
    /// its error reported) by the [`Updater::target_info`] that needs it.
    pub fn prefetch_delegations(&mut self, paths: &[String], workers: usize) {
        if self.trusted.targets().is_none() && self.refresh().is_err() {
            return;
        }
        let mut tried: HashSet<String> = HashSet::new();
        for _level in 0..self.limits.max_delegations {
            let mut needed: Vec<(String, String, Arc<Verified<Targets>>)> = Vec::new();
            for path in paths {
                if let Ok(Walk::Needs { role, parent_name, parent }) = self.walk(path, true)
                    && !tried.contains(&role)
                    && !needed.iter().any(|(r, _, _)| *r == role)
                {
                    needed.push((role, parent_name, parent));
                }
            }
            if needed.is_empty() {
                return;
            }
            let mut files = Vec::with_capacity(needed.len());
            for (role, _, _) in &needed {
                tried.insert(role.clone());
                match self.role_file(role) {
                    Ok(file) => files.push(file),
                    Err(_) => return,
                }
            }
            // Roles asked for ahead ([`MetadataOrder::Speculative`]) are taken first,
            // each verified here as a download would be; the rest (and any refused)
            // are downloaded together.
            let mut rest = Vec::with_capacity(needed.len());
            let mut rest_files = Vec::with_capacity(needed.len());
            for ((role, parent_name, parent), (file, max)) in needed.into_iter().zip(files) {
                let trusted = &mut self.trusted;
                match Self::take_speculated(&mut self.speculated, &mut self.budget, &file, |bytes| {
                    verify_delegated_role(trusted, &role, &parent, bytes)
                }) {
                    Some((targets, bytes, _)) => {
                        let targets = Arc::new(targets);
                        if self.store.store_verified(&role, &bytes, &targets).is_ok() {
                            self.delegated.insert((role, parent_name), targets);
                        }
                    }
                    None => {
                        rest.push((role, parent_name, parent));
                        rest_files.push((file, max));
                    }
                }
            }
            let (needed, files) = (rest, rest_files);
            if needed.is_empty() {
                continue;
            }
            let remaining = self.budget.limit.saturating_sub(self.budget.received);
            let (mirrors, trusted) = (&self.mirrors, &self.trusted);
            let jobs: Vec<_> = needed.iter().zip(&files).collect();
            // Each role is verified by the thread that downloaded it, as soon as it
            // arrives: the others' answers are still coming in, and the wave's next
            // round trip does not wait for the checks one after another. Nothing is
            // kept before the batch is within the metadata budget.
            let fetched =
                crate::transport::parallel::map_bounded(&jobs, workers, |((role, _, parent), (file, max))| {
                    let spec = FetchSpec {
                        kind: MirrorKind::Metadata,
                        path: file,
                        max_length: (*max).min(remaining),
                        validators: None,
                    };
                    let bytes = mirrors
                        .fetch_with(spec, None, |_, fetched| {
                            fetched.into_bytes().ok_or("a not-modified answer to an unconditional request")
                        })
                        .ok()?;
                    let verified = verify_delegated_role(trusted, role, parent, &bytes);
                    Some((bytes, verified))
                });
            let received: u64 = fetched.iter().flatten().map(|(b, _)| b.len() as u64).sum();
            self.budget.received = self.budget.received.saturating_add(received);
            if self.budget.received > self.budget.limit {
                return;
            }
            for ((role, parent_name, _), fetched) in needed.into_iter().zip(fetched) {
                let Some((bytes, Ok(targets))) = fetched else { continue };
                let targets = Arc::new(targets);
                if self.store.store_verified(&role, &bytes, &targets).is_ok() {
                    self.delegated.insert((role, parent_name), targets);
                }
            }
        }
    }

    /// The entry of `path` in delegated `role`, read from our store as a
    /// [`TrustedLeaf`] when its receipt applies and it delegates nothing (the cheap way
    /// to look up one target in a hash bin); `None` when the role has to be loaded in
    /// full by [`Updater::load_delegated`].
    fn leaf_lookup(
        &mut self,
        role: &str,
        parent_name: &str,
        parent: &Arc<Verified<Targets>>,
        path: &str,
    ) -> Option<Result<Option<TargetFile>, TrustError>> {
        let key = (role.to_owned(), parent_name.to_owned());
        if self.delegated.contains_key(&key) {
            return None;
        }
        if let Some(found) = self.leaves.get(&key) {
            return Some(found.target(path));
        }
        let local = self.store.load(role)?;
        let receipt = self.store.load_receipt(role);
        match self.trusted.verify_local_leaf(role, Delegator::Targets(parent), local, receipt.as_ref(), path)? {
            Ok((leaf, found)) => {
                self.leaves.insert(key, Arc::new(leaf));
                Some(Ok(found))
            }
            Err(e) => {
                tracing::debug!(role, error = %e, "local copy is not the current one");
                None
            }
        }
    }

    /// Finds `path` by a pre-order depth-first walk of the delegations (§5.7.x):
    /// only roles whose paths match are loaded, in delegation order; a terminating
    /// delegation ends the search below it; cycles are cut; at most
    /// `limits.max_delegations` roles are visited. Refreshes first if needed.
    pub fn target_info(&mut self, path: &str) -> Result<Option<TargetInfo>, TrustError> {
        match self.walk(path, false)? {
            Walk::Found(info) => Ok(Some(info)),
            Walk::NotFound | Walk::Needs { .. } => Ok(None),
        }
    }

    /// [`Updater::target_info`] from the roles loaded or in the trusted store, without
    /// downloading any: `None` when the walk needs a role that has to be downloaded
    /// first (then [`Updater::prefetch_delegations`] or `target_info` loads it).
    pub fn local_target_info(&mut self, path: &str) -> Option<Result<Option<TargetInfo>, TrustError>> {
        match self.walk(path, true) {
            Ok(Walk::Found(info)) => Some(Ok(Some(info))),
            Ok(Walk::NotFound) => Some(Ok(None)),
            Ok(Walk::Needs { .. }) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// The walk of [`Updater::target_info`]; with `local_only` it stops at the first
    /// role it would have to download and names it.
    fn walk(&mut self, path: &str, local_only: bool) -> Result<Walk, TrustError> {
        let top = match self.trusted.targets() {
            Some(top) => Arc::clone(top),
            None => {
                self.refresh()?;
                Arc::clone(self.trusted.targets().ok_or(TrustError::NotLoaded("targets"))?)
            }
        };
        let mut stack: Vec<(String, String, Arc<Verified<Targets>>)> = vec![("targets".into(), "root".into(), top)];
        let mut visited: HashSet<String> = HashSet::new();
        while let Some((role, parent_name, parent)) = stack.pop() {
            if visited.len() >= self.limits.max_delegations {
                tracing::debug!(path, "delegation limit reached");
                break;
            }
            if visited.contains(&role) {
                continue;
            }
            if role != "targets"
                && let Some(found) = self.leaf_lookup(&role, &parent_name, &parent, path)
            {
                if let Some(file) = found? {
                    return Ok(Walk::Found(TargetInfo { path: path.to_owned(), file, role }));
                }
                visited.insert(role);
                continue;
            }
            let doc = if role == "targets" {
                parent
            } else if local_only {
                match self.load_delegated_locally(&role, &parent_name, &parent) {
                    Some(doc) => doc,
                    None => return Ok(Walk::Needs { role, parent_name, parent }),
                }
            } else {
                self.load_delegated(&role, &parent_name, &parent)?
            };
            if let Some(file) = doc.targets.get(path) {
                return Ok(Walk::Found(TargetInfo { path: path.to_owned(), file: file.clone(), role }));
            }
            visited.insert(role.clone());
            if let Some(delegations) = &doc.delegations {
                let mut children = Vec::new();
                for (child, terminating) in delegation::roles_for_target(delegations, path) {
                    children.push((child, role.clone(), Arc::clone(&doc)));
                    if terminating {
                        stack.clear();
                        break;
                    }
                }
                stack.extend(children.into_iter().rev());
            }
        }
        Ok(Walk::NotFound)
    }

    /// Every target whose path starts with `prefix`, loading every delegated role
    /// (all explicit delegations and all succinct bins; at most `limit_roles` roles).
    /// For listings such as a search without catalog documents; resolution uses the
    /// lazy [`Updater::target_info`]. Refreshes first if needed.
    pub fn list_targets(&mut self, prefix: &str, limit_roles: usize) -> Result<Vec<TargetInfo>, TrustError> {
        let top = match self.trusted.targets() {
            Some(top) => Arc::clone(top),
            None => {
                self.refresh()?;
                Arc::clone(self.trusted.targets().ok_or(TrustError::NotLoaded("targets"))?)
            }
        };
        let mut found = Vec::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut stack: Vec<(String, String, Arc<Verified<Targets>>)> = vec![("targets".into(), "root".into(), top)];
        while let Some((role, parent_name, parent)) = stack.pop() {
            if !visited.insert(role.clone()) || visited.len() > limit_roles {
                continue;
            }
            let doc = if role == "targets" { parent } else { self.load_delegated(&role, &parent_name, &parent)? };
            for (path, file) in &doc.targets {
                if path.starts_with(prefix) {
                    found.push(TargetInfo { path: path.clone(), file: file.clone(), role: role.clone() });
                }
            }
            if let Some(delegations) = &doc.delegations {
                let mut children: Vec<String> = delegations.roles.iter().flatten().map(|r| r.name.clone()).collect();
                if let Some(succinct) = &delegations.succinct_roles {
                    children.extend(delegation::all_bins(succinct));
                }
                for child in children.into_iter().rev() {
                    stack.push((child, role.clone(), Arc::clone(&doc)));
                }
            }
        }
        Ok(found)
    }

    /// The verified bytes of a target if the download cache holds them intact (no
    /// network): callers with many targets serve these inline before starting
    /// parallel downloads for the rest.
    pub fn cached_target(&self, info: &TargetInfo) -> Option<Vec<u8>> {
        fetcher::cached(self.cache.as_ref(), info)
    }

    /// The verified bytes of a target: from the download cache when present and
    /// intact, else from the first mirror whose bytes match the signed length and
    /// hashes (capped at the signed length while streaming).
    pub fn fetch_target(&self, info: &TargetInfo) -> Result<Vec<u8>, TrustError> {
        let consistent = self.trusted.root().consistent_snapshot;
        fetcher::fetch(&self.mirrors, self.cache.as_ref(), self.progress.as_deref(), consistent, info)
    }

    /// What downloading targets needs, detached from the updater: downloads on other
    /// threads while this updater loads delegated roles ([`TargetFetcher`]), checked
    /// exactly as [`Updater::fetch_target`] checks them.
    pub fn fetcher(&self) -> TargetFetcher {
        TargetFetcher::new(
            self.mirrors.clone(),
            self.cache.clone(),
            self.progress.clone(),
            self.trusted.root().consistent_snapshot,
        )
    }

    /// Fetches several targets with at most `workers` parallel downloads (std
    /// threads); results keep the order of `targets`. Each is verified like
    /// [`Updater::fetch_target`].
    pub fn fetch_targets(&self, targets: &[TargetInfo], workers: usize) -> Vec<Result<Vec<u8>, TrustError>> {
        crate::transport::parallel::map_bounded(targets, workers, |info| self.fetch_target(info))
    }

    /// Makes `dest` hold the verified target: nothing is fetched when `dest` already
    /// holds matching bytes; otherwise the target is fetched and written atomically.
    pub fn download_target(&self, info: &TargetInfo, dest: &Path) -> Result<(), TrustError> {
        if let Ok(existing) = std::fs::read(dest)
            && check_length_and_hashes(&info.path, &existing, Some(info.file.length), Some(&info.file.hashes)).is_ok()
        {
            return Ok(());
        }
        let bytes = self.fetch_target(info)?;
        write_atomic(dest, &bytes)?;
        Ok(())
    }

    /// The cheap "is anything new?" check.
    ///
    /// One conditional GET of `timestamp.json` (with the `ETag`/`Last-Modified` of the
    /// trusted one). On `304`, with the trusted root and timestamp both unexpired, the
    /// answer is [`UpdateCheck::NothingNew`] and the trusted snapshot and targets are
    /// loaded from disk for lookups. On `200`, or when there is no usable cached
    /// timestamp, the full spec refresh runs (root probe, then the timestamp already
    /// fetched, snapshot, targets). See the module docs of `trust` for why this is
    /// safe.
    ///
    /// Delegated roles loaded before are kept when the check proves the same chain
    /// current (a `304`, and the same root, timestamp, snapshot and top-level targets
    /// versions read back): they were verified against exactly that chain, and only
    /// their expiry, judged again now, can have changed. A store kept open then looks up
    /// its next targets without reading any role again.
    pub fn check_for_updates(&mut self) -> Result<UpdateCheck, TrustError> {
        let before = (self.chain(), std::mem::take(&mut self.delegated), std::mem::take(&mut self.leaves));
        self.budget = MetadataBudget::new(self.limits.metadata_bytes);
        let validators = self.store.load_validators();
        // What a hint prepared and asked for ahead of this check is kept for it,
        // anything older not.
        let usable = match self.prepared.take() {
            Some(prepared) => {
                self.trusted = prepared;
                true
            }
            None => {
                self.speculated.clear();
                match self.current_chain() {
                    Some(chain) => {
                        self.trusted = chain;
                        true
                    }
                    None => {
                        self.current = false;
                        self.trusted = Self::trusted_from(&self.store, self.reference_time, self.limits.key_ids)?;
                        self.local_timestamp_usable()
                    }
                }
            }
        };
        self.current = false;
        let (Some(validators), true) = (validators, usable) else {
            self.refresh()?;
            return Ok(UpdateCheck::Refreshed);
        };
        let fetched = Self::fetch_metadata(
            &self.mirrors,
            &mut self.budget,
            "timestamp.json",
            self.limits.timestamp,
            Some((validators.url.as_str(), &validators.validators)),
            |_| Ok(()),
        )?;
        match fetched {
            None => {
                // The chain this check started from: the one verified last (or a
                // hint's, read from the store), or only the stored timestamp.
                if !self.trusted.holds_final_chain() {
                    self.load_local_state()?;
                }
                self.current = true;
                let (chain, delegated, leaves) = before;
                if chain.is_some() && chain == self.chain() {
                    let now = self.trusted.now();
                    self.delegated = delegated.into_iter().filter(|(_, role)| !role.is_expired(now)).collect();
                    self.leaves = leaves.into_iter().filter(|(_, leaf)| leaf.expires() > now).collect();
                }
                Ok(UpdateCheck::NothingNew)
            }
            Some(((), bytes, validators)) => {
                self.refresh_with_timestamp(Some((bytes, validators)))?;
                Ok(UpdateCheck::Refreshed)
            }
        }
    }

    /// Loads the trusted metadata from disk without any request, for offline use: the
    /// persisted root, timestamp, snapshot and top-level targets must all verify (or
    /// hold their receipts) and the root and timestamp must be unexpired. This is the
    /// state a `304` would confirm, minus the confirmation: a freeze is bounded by the
    /// timestamp's (short) expiry. Delegated roles are read back from the store when
    /// their version is the one the snapshot names; anything else needs the network.
    pub fn load_offline(&mut self) -> Result<(), TrustError> {
        self.current = false;
        self.budget = MetadataBudget::new(self.limits.metadata_bytes);
        self.trusted = Self::trusted_from(&self.store, self.reference_time, self.limits.key_ids)?;
        self.delegated.clear();
        self.leaves.clear();
        self.trusted.check_root_fresh()?;
        let timestamp = self.store.load("timestamp").ok_or(TrustError::NotLoaded("timestamp"))?;
        self.trusted.load_local_timestamp(&timestamp, self.store.load_receipt("timestamp").as_ref())?;
        self.trusted.check_timestamp_fresh()?;
        self.remember("timestamp", &timestamp, self.trusted.timestamp());
        let snapshot = self.store.load("snapshot").ok_or(TrustError::NotLoaded("snapshot"))?;
        if !self.trusted.load_local_snapshot(&snapshot, self.store.load_receipt("snapshot").as_ref())? {
            return Err(TrustError::NotLoaded("the snapshot the timestamp names"));
        }
        self.remember("snapshot", &snapshot, self.trusted.snapshot());
        let targets = self.store.load("targets").ok_or(TrustError::NotLoaded("targets"))?;
        let loaded = self.trusted.load_local_targets(&targets, self.store.load_receipt("targets").as_ref())?;
        self.remember("targets", &targets, Some(&*loaded));
        self.current = true;
        Ok(())
    }

    /// "Is anything new for what I have?": `known` lists target paths (e.g. the index
    /// docs of installed plugins) with the SHA-256 of the bytes the caller has. Runs
    /// [`Updater::check_for_updates`]; when nothing is new that is the only request,
    /// whatever the length of `known`. Otherwise returns the targets whose signed
    /// SHA-256 differs, loading only the delegated roles (bins) on their paths; bins
    /// whose version did not move are read back from the trusted store.
    pub fn changed_targets(
        &mut self,
        known: &[(String, trellis_schema::Sha256)],
    ) -> Result<Vec<TargetInfo>, TrustError> {
        if self.check_for_updates()? == UpdateCheck::NothingNew {
            return Ok(Vec::new());
        }
        let mut changed = Vec::new();
        for (path, have) in known {
            if let Some(info) = self.target_info(path)?
                && info.sha256().as_ref() != Some(have)
            {
                changed.push(info);
            }
        }
        Ok(changed)
    }

    /// The versions of the trusted root, timestamp, snapshot and top-level targets:
    /// what every delegated role loaded under them was verified against.
    fn chain(&self) -> Option<(u64, u64, u64, u64)> {
        let trusted = &self.trusted;
        Some((
            trusted.root().version(),
            trusted.timestamp()?.version(),
            trusted.snapshot()?.version(),
            trusted.targets()?.version(),
        ))
    }

    /// Loads the trusted snapshot and top-level targets from disk (no network),
    /// after a `304` proved the trusted timestamp current.
    fn load_local_state(&mut self) -> Result<(), TrustError> {
        let snapshot = self.store.load("snapshot").ok_or(TrustError::NotLoaded("snapshot"))?;
        let is_final = self.trusted.load_local_snapshot(&snapshot, self.store.load_receipt("snapshot").as_ref())?;
        self.remember("snapshot", &snapshot, self.trusted.snapshot());
        if !is_final {
            // The trusted snapshot is not the one the timestamp names: fetch it.
            return self.refresh();
        }
        let targets = self.store.load("targets").ok_or(TrustError::NotLoaded("targets"))?;
        match self.trusted.load_local_targets(&targets, self.store.load_receipt("targets").as_ref()) {
            Ok(loaded) => self.remember("targets", &targets, Some(&*loaded)),
            Err(_) => return self.refresh(),
        }
        Ok(())
    }
}

/// Verifies `bytes` downloaded (or asked for ahead) as delegated `role` under
/// `parent`, and, when `parent` delegates by succinct bins, takes them only if every
/// target they list falls in `role`: all bins share one key set and the snapshot names
/// no hashes, so another bin served under `role`'s name would otherwise pass as `role`
/// and hide the targets `role` lists (a mirror denying them while every signature
/// holds).
fn verify_delegated_role(
    trusted: &TrustedSet,
    role: &str,
    parent: &Targets,
    bytes: &[u8],
) -> Result<Verified<Targets>, TrustError> {
    let targets = trusted.verify_targets(role, Delegator::Targets(parent), bytes)?;
    own_targets_only(role, parent, targets)
}

/// `targets`, verified as delegated `role`, if every target it lists falls in `role`
/// when `parent` delegates by succinct bins (see [`verify_delegated_role`]).
fn own_targets_only(role: &str, parent: &Targets, targets: Verified<Targets>) -> Result<Verified<Targets>, TrustError> {
    match speculation::foreign_target(parent, role, &targets) {
        Some((target, belongs_to)) => {
            Err(TrustError::ForeignTarget { role: role.to_owned(), target: target.to_owned(), belongs_to })
        }
        None => Ok(targets),
    }
}
