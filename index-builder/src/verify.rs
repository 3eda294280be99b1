//! Checking a built or deployed site the way a client would, listing every problem.
//!
//! Owns the operator's audit of a site (a directory or an `http(s)://` URL): the root
//! chain (each root signed by the thresholds of the previous and of itself), every
//! role's signatures against the keys and thresholds that delegate to it (unique key
//! ids only), versions and hashes named by timestamp and snapshot, expiry, every
//! target's length and SHA-256, that each target sits in the role trusted for its
//! path (delegation patterns of the role and of every role above it, TAP 15 bins),
//! that every blob an index doc lists (package, envelope, deltas) is in the site with
//! that length and SHA-256 (blobs are not TUF targets: the index doc vouches for them,
//! see [`crate::tuf`]), and every release's developer signature against the published
//! publisher record. A partial mirror ([`crate::mirror`], marked by
//! [`crate::mirror::PARTIAL_MARKER`]) may lack the blobs of plugins its marker does not
//! list: they are counted as absent, not reported ([`Blobs::AsMarked`], the default);
//! every blob of the plugins it lists is still required, and [`Blobs::All`]
//! (`verify --full`) ignores the marker. The alias of each index doc
//! ([`site::index_alias_path`]: not signed, a round trip saved for clients) is compared
//! with the signed doc: one that differs or is missing is a *warning*, never a problem
//! (a CDN may serve a stale copy for a while; a site built before aliases has none),
//! and so is an unversioned copy of the snapshot or the top-level targets
//! ([`crate::unversioned`]) that differs from the version the metadata names, or is
//! missing.
//! Unlike a client's `trust` module it does
//! not stop at the first failure: it reports all of them, which is what an operator
//! needs before deploying. Building is [`crate::build`]'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_schema::dsse::Envelope as Dsse;
use trellis_schema::index::{BlobRef, IndexDoc};
use trellis_schema::publisher::{ChainLimits, PublisherChain, RecoverySigners};
use trellis_schema::tuf::{Delegations, Root, Snapshot, TargetFile, Targets, Timestamp, TopRole};
use trellis_schema::{KeyId, PluginId, PublicKey, Sha256, VendorId, canonical};

use trellis_client::transport::{Fetched, HttpOptions, HttpTransport, Request, Transport as _, TransportError};

use crate::mirror::PartialMarker;
use crate::site;

/// Where the site is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A directory.
    Dir(PathBuf),
    /// A base URL (`http://…/`), fetched with timeouts and a minimum rate.
    Url(UrlSite),
}

/// A site served over HTTP(S): its base URL and the client's HTTP transport (connect
/// and read timeouts, a minimum transfer rate, retries of transient failures; see
/// [`HttpOptions`]), so a stalled or drip-feeding server fails the command within a
/// bounded time, naming the URL, instead of hanging it.
#[derive(Clone, Debug)]
pub struct UrlSite {
    /// The base URL, ending in `/`.
    pub base: String,
    http: Arc<HttpTransport>,
}

impl PartialEq for UrlSite {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
    }
}

impl Eq for UrlSite {}

/// The largest file a site source reads (a package is at most the client's limit).
const MAX_SITE_FILE: u64 = 1 << 30;

impl Source {
    /// A URL when `text` starts with `http://` or `https://`, else a directory.
    pub fn parse(text: &str) -> Self {
        Self::parse_with(text, HttpOptions::default())
    }

    /// [`Source::parse`], fetching URLs with `options` (timeouts, minimum rate).
    pub fn parse_with(text: &str, options: HttpOptions) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            let base = if text.ends_with('/') { text.to_owned() } else { format!("{text}/") };
            Self::Url(UrlSite { base, http: Arc::new(HttpTransport::new(options)) })
        } else {
            Self::Dir(PathBuf::from(text))
        }
    }

    /// Fetches a file by its path relative to the site root; `Ok(None)` when absent.
    pub fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Self::Dir(dir) => match std::fs::read(dir.join(path)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}: {e}", dir.join(path).display())),
            },
            Self::Url(site) => {
                let url = format!("{}{path}", site.base);
                match site.http.fetch(&Request::new(&url, MAX_SITE_FILE)) {
                    Ok(Fetched::Body { bytes, .. }) => Ok(Some(bytes)),
                    Ok(Fetched::NotModified) => Err(format!("{url}: unexpected 304 Not Modified")),
                    Err(TransportError::NotFound { status: 404, .. }) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem, each naming the file and what is wrong.
    pub problems: Vec<String>,
    /// Role files checked.
    pub roles: usize,
    /// Targets whose bytes were checked.
    pub targets: usize,
    /// Blobs listed by index docs whose bytes were checked.
    pub blobs: usize,
    /// Release envelopes checked against publisher records.
    pub releases: usize,
    /// For a partial mirror: the plugins whose blobs it holds.
    pub partial: Option<BTreeSet<PluginId>>,
    /// Blobs of plugins a partial mirror leaves out, absent as its marker says.
    pub absent_blobs: usize,
    /// Index doc aliases that hold their signed doc's bytes.
    pub aliases: usize,
    /// What clients survive but an operator should know (an alias that differs from
    /// its signed doc, missing aliases), each naming the file.
    pub warnings: Vec<String>,
}

/// Which blobs a site must hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Blobs {
    /// Every blob, except that a partial mirror may lack those of the plugins its
    /// marker does not list.
    #[default]
    AsMarked,
    /// Every blob every index doc lists, whatever a marker says.
    All,
}

struct Checker<'a> {
    source: &'a Source,
    now: jiff::Timestamp,
    problems: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    blobs: AtomicUsize,
    /// Aliases equal to their doc, and index docs without an alias.
    aliases: AtomicUsize,
    missing_aliases: AtomicUsize,
    /// The plugins a partial mirror holds the blobs of.
    partial: Option<BTreeSet<PluginId>>,
    absent: AtomicUsize,
}

impl Checker<'_> {
    fn problem(&self, text: String) {
        if let Ok(mut problems) = self.problems.lock() {
            problems.push(text);
        }
    }

    fn warning(&self, text: String) {
        if let Ok(mut warnings) = self.warnings.lock() {
            warnings.push(text);
        }
    }

    /// Compares the alias of index doc `target` with the doc's verified `bytes`.
    fn check_alias(&self, target: &str, bytes: &[u8]) {
        let Some(alias) = site::index_alias_of(target) else { return };
        let path = format!("{}/{alias}", site::TARGETS_DIR);
        match self.source.fetch(&path) {
            Ok(Some(found)) if found == bytes => {
                self.aliases.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(found)) => self.warning(format!(
                "{path}: {} bytes with sha256 {}, not the {} bytes of the signed {target} \
                 (a stale copy: clients fall back to the hashed path; the next build rewrites it)",
                found.len(),
                Sha256::of(&found),
                bytes.len()
            )),
            Ok(None) => {
                self.missing_aliases.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.warning(format!("{path}: {e}")),
        }
    }

    /// Compares the unversioned copy of top-level `role` ([`crate::unversioned`]) with
    /// the verified bytes of the version the metadata names, read from `versioned`.
    fn check_unversioned(&self, role: &str, versioned: &str, bytes: &[u8]) {
        let path = crate::unversioned::path(role);
        match self.source.fetch(&path) {
            Ok(Some(found)) if found == bytes => {}
            Ok(Some(found)) => self.warning(format!(
                "{path}: {} bytes with sha256 {}, not the {} bytes of {versioned} \
                 (a stale copy: clients read {versioned} after it; the next build rewrites it)",
                found.len(),
                Sha256::of(&found),
                bytes.len()
            )),
            Ok(None) => self.warning(format!(
                "{path}: missing (a site built before the unversioned copies: a client's first refresh \
                 takes a round trip more for it; the next build writes it)"
            )),
            Err(e) => self.warning(format!("{path}: {e}")),
        }
    }

    fn fetch(&self, path: &str) -> Option<Vec<u8>> {
        match self.source.fetch(path) {
            Ok(Some(bytes)) => Some(bytes),
            Ok(None) => {
                self.problem(format!("{path}: missing"));
                None
            }
            Err(e) => {
                self.problem(e);
                None
            }
        }
    }

    /// Parses a signed metadata file and checks its signatures; returns the document
    /// even when signatures fail (the problem is recorded) so later checks still run.
    fn signed<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: &[u8],
        keys: &BTreeMap<KeyId, PublicKey>,
        keyids: &[KeyId],
        threshold: u32,
    ) -> Option<T> {
        let value: Value = match trellis_schema::json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                self.problem(format!("{path}: not JSON: {e}"));
                return None;
            }
        };
        if let Err(why) = check_signatures(&value, keys, keyids, threshold) {
            self.problem(format!("{path}: {why}"));
        }
        let expires = value["signed"]["expires"].as_str().unwrap_or_default();
        match expires.parse::<jiff::Timestamp>() {
            Ok(at) if at <= self.now => self.problem(format!("{path}: expired at {expires}")),
            Ok(_) => {}
            Err(_) => self.problem(format!("{path}: expiry {expires:?} is not an RFC 3339 time")),
        }
        match serde_json::from_value(value["signed"].clone()) {
            Ok(doc) => Some(doc),
            Err(e) => {
                self.problem(format!("{path}: {e}"));
                None
            }
        }
    }
}

/// Counts valid signatures by distinct allowed keys over the canonical `signed` part.
fn check_signatures(
    value: &Value,
    keys: &BTreeMap<KeyId, PublicKey>,
    keyids: &[KeyId],
    threshold: u32,
) -> Result<(), String> {
    let message = canonical::to_vec(&value["signed"]).map_err(|e| e.to_string())?;
    let mut valid = std::collections::BTreeSet::new();
    for signature in value["signatures"].as_array().into_iter().flatten() {
        let keyid = KeyId(signature["keyid"].as_str().unwrap_or_default().to_owned());
        if !keyids.contains(&keyid) || valid.contains(&keyid) {
            continue;
        }
        let Some(key) = keys.get(&keyid) else { continue };
        let Ok(sig) = hex::decode(signature["sig"].as_str().unwrap_or_default()) else { continue };
        if key.verify(&message, &sig).is_ok() {
            valid.insert(keyid);
        }
    }
    if (valid.len() as u64) < u64::from(threshold.max(1)) {
        return Err(format!("{} valid signature(s), threshold {threshold}", valid.len()));
    }
    Ok(())
}

fn role_keys(root: &Root, role: TopRole) -> (Vec<KeyId>, u32) {
    root.roles.get(&role).map(|r| (r.keyids.clone(), r.threshold)).unwrap_or_default()
}

/// Checks the site at `source`. `trusted_root` is the root to start from (the bytes
/// of a root file); without it the site's `1.root.json` is trusted on first use.
pub fn verify(source: &Source, trusted_root: Option<&[u8]>, now: jiff::Timestamp) -> Report {
    verify_blobs(source, trusted_root, now, Blobs::AsMarked)
}

/// [`verify`], requiring the given `blobs`.
pub fn verify_blobs(source: &Source, trusted_root: Option<&[u8]>, now: jiff::Timestamp, blobs: Blobs) -> Report {
    let mut report = Report::default();
    let partial = match blobs {
        Blobs::All => None,
        Blobs::AsMarked => match PartialMarker::read(source) {
            Ok(marker) => marker.map(|m| m.plugins),
            Err(problem) => {
                report.problems.push(problem);
                return report;
            }
        },
    };
    let checker = Checker {
        source,
        now,
        problems: Mutex::new(Vec::new()),
        warnings: Mutex::new(Vec::new()),
        blobs: AtomicUsize::new(0),
        aliases: AtomicUsize::new(0),
        missing_aliases: AtomicUsize::new(0),
        partial: partial.clone(),
        absent: AtomicUsize::new(0),
    };
    report.partial = partial;
    let Some(root) = root_chain(&checker, trusted_root, &mut report) else {
        report.problems = checker.problems.into_inner().unwrap_or_default();
        return report;
    };
    check_roles(&checker, &root, &mut report);
    report.blobs = checker.blobs.load(Ordering::Relaxed);
    report.aliases = checker.aliases.load(Ordering::Relaxed);
    let missing = checker.missing_aliases.load(Ordering::Relaxed);
    report.warnings = checker.warnings.into_inner().unwrap_or_default();
    report.warnings.sort();
    if missing > 0 {
        report.warnings.push(format!(
            "{missing} index doc(s) have no alias under {}/{}/ (clients take one more round trip per level \
             of a dependency graph; `trellis-index build` writes them)",
            site::TARGETS_DIR,
            site::INDEX_ALIAS_DIR
        ));
    }
    report.absent_blobs = checker.absent.load(Ordering::Relaxed);
    report.problems = checker.problems.into_inner().unwrap_or_default();
    report
}

fn root_chain(checker: &Checker<'_>, trusted: Option<&[u8]>, report: &mut Report) -> Option<Root> {
    let first = match trusted {
        Some(bytes) => bytes.to_vec(),
        None => checker.fetch("metadata/1.root.json")?,
    };
    let value: Value = trellis_schema::json::from_slice(&first).ok()?;
    let mut root: Root = serde_json::from_value(value["signed"].clone()).ok()?;
    let (ids, threshold) = role_keys(&root, TopRole::Root);
    if let Err(why) = check_signatures(&value, &root.keys, &ids, threshold) {
        checker.problem(format!("metadata/{}.root.json: {why}", root.version));
    }
    report.roles += 1;
    loop {
        let path = format!("metadata/{}.root.json", root.version + 1);
        let Ok(Some(bytes)) = checker.source.fetch(&path) else { break };
        report.roles += 1;
        let Ok(value) = trellis_schema::json::from_slice::<Value>(&bytes) else {
            checker.problem(format!("{path}: not JSON"));
            break;
        };
        let Ok(next) = serde_json::from_value::<Root>(value["signed"].clone()) else {
            checker.problem(format!("{path}: not a root"));
            break;
        };
        let (old_ids, old_threshold) = role_keys(&root, TopRole::Root);
        if let Err(why) = check_signatures(&value, &root.keys, &old_ids, old_threshold) {
            checker.problem(format!("{path}: not signed by the previous root's keys: {why}"));
        }
        let (new_ids, new_threshold) = role_keys(&next, TopRole::Root);
        if let Err(why) = check_signatures(&value, &next.keys, &new_ids, new_threshold) {
            checker.problem(format!("{path}: not signed by its own root keys: {why}"));
        }
        if next.version != root.version + 1 {
            checker.problem(format!("{path}: holds version {}", next.version));
            break;
        }
        root = next;
    }
    match root.expires.parse::<jiff::Timestamp>() {
        Ok(at) if at <= checker.now => {
            checker.problem(format!("metadata/{}.root.json: expired at {}", root.version, root.expires))
        }
        Ok(_) => {}
        Err(_) => checker.problem(format!("metadata/{}.root.json: bad expiry {:?}", root.version, root.expires)),
    }
    Some(root)
}

/// Which target paths a role may sign.
type Allows = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A role to check: its name, the keys that may sign it, and which target paths it
/// may sign (its own delegation and every one above it: a client's walk only reaches
/// a role for paths every delegation on the way allows).
struct Delegated {
    name: String,
    keys: BTreeMap<KeyId, PublicKey>,
    keyids: Vec<KeyId>,
    threshold: u32,
    allows: Allows,
}

fn matches_pattern(target: &str, pattern: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (target.split('/').collect(), pattern.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| *p == "*" || t == p || glob_segment(t, p))
}

fn glob_segment(text: &str, pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => text == pattern,
        Some((prefix, rest)) => {
            text.starts_with(prefix)
                && (0..=text.len() - prefix.len())
                    .any(|i| text.get(prefix.len() + i..).is_some_and(|t| glob_segment(t, rest)))
        }
    }
}

/// The roles `delegations` delegates to, each allowed only the paths both its
/// delegation and `parent` (what the delegating role may sign) allow: a client
/// never looks below a role for a path outside it, so a bin of `publishers`
/// signing `index/…` is a problem.
fn delegated_roles(delegations: &Delegations, parent: &Allows) -> Vec<Delegated> {
    let mut out = Vec::new();
    for role in delegations.roles.iter().flatten() {
        let paths = role.paths.clone().unwrap_or_default();
        let prefixes = role.path_hash_prefixes.clone().unwrap_or_default();
        let parent = Arc::clone(parent);
        out.push(Delegated {
            name: role.name.clone(),
            keys: delegations.keys.clone(),
            keyids: role.keyids.clone(),
            threshold: role.threshold,
            allows: Arc::new(move |target: &str| {
                parent(target)
                    && (paths.iter().any(|p| matches_pattern(target, p))
                        || prefixes.iter().any(|p| Sha256::of(target.as_bytes()).to_hex().starts_with(p.as_str())))
            }),
        });
    }
    if let Some(succinct) = &delegations.succinct_roles {
        for number in 0..(1u32 << succinct.bit_length.min(20)) {
            let name = site::bin_name(number, succinct.bit_length, &succinct.name_prefix);
            let bits = succinct.bit_length;
            let parent = Arc::clone(parent);
            out.push(Delegated {
                name,
                keys: delegations.keys.clone(),
                keyids: succinct.keyids.clone(),
                threshold: succinct.threshold,
                allows: Arc::new(move |target: &str| parent(target) && site::bin_number(target, bits) == number),
            });
        }
    }
    out
}

/// The delegations found in one role file, and the targets it signs.
type RoleFindings = (Vec<Delegated>, Vec<(String, TargetFile)>);

fn check_roles(checker: &Checker<'_>, root: &Root, report: &mut Report) {
    let (ids, threshold) = role_keys(root, TopRole::Timestamp);
    let Some(bytes) = checker.fetch("metadata/timestamp.json") else { return };
    report.roles += 1;
    let Some(timestamp) = checker.signed::<Timestamp>("metadata/timestamp.json", &bytes, &root.keys, &ids, threshold)
    else {
        return;
    };
    let Some(meta) = timestamp.meta.get("snapshot.json") else {
        checker.problem("metadata/timestamp.json: names no snapshot.json".into());
        return;
    };
    let path = format!("metadata/{}.snapshot.json", meta.version);
    let Some(bytes) = checker.fetch(&path) else { return };
    report.roles += 1;
    check_meta_hashes(checker, &path, &bytes, meta.length, meta.hashes.as_ref());
    let (ids, threshold) = role_keys(root, TopRole::Snapshot);
    let Some(snapshot) = checker.signed::<Snapshot>(&path, &bytes, &root.keys, &ids, threshold) else { return };
    checker.check_unversioned("snapshot", &path, &bytes);
    let (ids, threshold) = role_keys(root, TopRole::Targets);
    let top = Delegated {
        name: "targets".into(),
        keys: root.keys.clone(),
        keyids: ids,
        threshold,
        allows: Arc::new(|_| true),
    };
    // Breadth-first over the delegation tree; targets of each role are collected.
    let mut queue = vec![top];
    let mut all_targets: Vec<(String, TargetFile)> = Vec::new();
    while !queue.is_empty() {
        let results: Vec<RoleFindings> = queue
            .par_iter()
            .map(|role| {
                let Some(meta) = snapshot.meta.get(&format!("{}.json", role.name)) else {
                    checker.problem(format!("{path}: does not list {}.json", role.name));
                    return (Vec::new(), Vec::new());
                };
                let file = format!("metadata/{}", site::metadata_name(&role.name, meta.version));
                let Some(bytes) = checker.fetch(&file) else { return (Vec::new(), Vec::new()) };
                check_meta_hashes(checker, &file, &bytes, meta.length, meta.hashes.as_ref());
                let Some(doc) = checker.signed::<Targets>(&file, &bytes, &role.keys, &role.keyids, role.threshold)
                else {
                    return (Vec::new(), Vec::new());
                };
                if doc.version != meta.version {
                    checker.problem(format!("{file}: holds version {}, snapshot says {}", doc.version, meta.version));
                }
                if role.name == "targets" {
                    checker.check_unversioned("targets", &file, &bytes);
                }
                for target in doc.targets.keys() {
                    if !(role.allows)(target) {
                        checker
                            .problem(format!("{file}: signs {target}, outside the paths delegated to {}", role.name));
                    }
                }
                let children = doc.delegations.as_ref().map(|d| delegated_roles(d, &role.allows)).unwrap_or_default();
                (children, doc.targets.into_iter().collect())
            })
            .collect();
        report.roles += queue.len();
        queue = Vec::new();
        for (children, targets) in results {
            queue.extend(children);
            all_targets.extend(targets);
        }
    }
    report.targets = all_targets.len();
    check_targets(checker, &all_targets, root, report);
}

fn check_meta_hashes(
    checker: &Checker<'_>,
    path: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) {
    if let Some(length) = length
        && length != bytes.len() as u64
    {
        checker.problem(format!("{path}: {} bytes, expected {length}", bytes.len()));
    }
    if let Some(expected) = hashes.and_then(|h| h.get("sha256"))
        && &Sha256::of(bytes).to_hex() != expected
    {
        checker.problem(format!("{path}: sha256 {} differs from the signed {expected}", Sha256::of(bytes)));
    }
}

fn target_bytes(checker: &Checker<'_>, target: &str, file: &TargetFile) -> Option<Vec<u8>> {
    let Some(sha) = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()) else {
        checker.problem(format!("target {target}: no sha256 hash"));
        return None;
    };
    let path = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(target, &sha));
    let bytes = checker.fetch(&path)?;
    if bytes.len() as u64 != file.length || Sha256::of(&bytes) != sha {
        checker.problem(format!(
            "{path}: {} bytes with sha256 {}, signed as {} bytes with {sha}",
            bytes.len(),
            Sha256::of(&bytes),
            file.length
        ));
        return None;
    }
    Some(bytes)
}

/// The bytes of a blob `release` lists, when the site has them with the listed
/// length and SHA-256 (each problem is recorded, naming the release and the file).
fn blob_bytes(checker: &Checker<'_>, id: &PluginId, release: &str, blob: &BlobRef) -> Option<Vec<u8>> {
    let path = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(&blob.path, &blob.sha256));
    let bytes = match checker.source.fetch(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) if checker.partial.as_ref().is_some_and(|held| !held.contains(id)) => {
            checker.absent.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Ok(None) => {
            checker.problem(format!("{release}: {path}: missing (the index doc lists {})", blob.path));
            return None;
        }
        Err(e) => {
            checker.problem(format!("{release}: {e}"));
            return None;
        }
    };
    checker.blobs.fetch_add(1, Ordering::Relaxed);
    let sha = Sha256::of(&bytes);
    if bytes.len() as u64 != blob.length || sha != blob.sha256 {
        checker.problem(format!(
            "{release}: {path}: {} bytes with sha256 {sha}, the index doc lists {} bytes with {}",
            bytes.len(),
            blob.length,
            blob.sha256
        ));
        return None;
    }
    Some(bytes)
}

fn check_targets(checker: &Checker<'_>, targets: &[(String, TargetFile)], root: &Root, report: &mut Report) {
    let (recovery_keys, recovery_threshold) = crate::registry::recovery_keys(root);
    let recovery = RecoverySigners { keys: &recovery_keys, threshold: recovery_threshold };
    let limits = ChainLimits::default();
    let publishers: BTreeMap<String, PublisherChain> = targets
        .iter()
        .filter(|(t, _)| t.starts_with("publishers/"))
        .filter_map(|(t, f)| {
            let bytes = target_bytes(checker, t, f)?;
            let vendor: VendorId = t.strip_prefix("publishers/")?.strip_suffix(".json")?.parse().ok()?;
            let chain = PublisherChain::from_slice(&vendor, &bytes, &limits)
                .and_then(|chain| chain.verify(&vendor, None, Some(recovery), &limits).map(|_| ()).map(|()| chain));
            match chain {
                Ok(chain) => Some((vendor.to_string(), chain)),
                Err(e) => {
                    checker.problem(format!("target {t}: {e}"));
                    None
                }
            }
        })
        .collect();
    let blocklist: trellis_schema::blocklist::Blocklist = targets
        .iter()
        .find(|(t, _)| t == site::BLOCKLIST_TARGET)
        .and_then(|(t, f)| serde_json::from_slice(&target_bytes(checker, t, f)?).ok())
        .unwrap_or_default();
    let releases: usize = targets
        .par_iter()
        .filter(|(t, _)| !t.starts_with("publishers/"))
        .map(|(target, file)| {
            let Some(bytes) = target_bytes(checker, target, file) else { return 0 };
            if target.starts_with("index/") {
                checker.check_alias(target, &bytes);
                check_index_doc(checker, target, &bytes, &publishers, &blocklist)
            } else if target == site::BLOCKLIST_TARGET {
                if let Err(e) = trellis_schema::json::from_slice::<trellis_schema::blocklist::Blocklist>(&bytes) {
                    checker.problem(format!("target {target}: not a blocklist: {e}"));
                }
                0
            } else if target == site::MIRRORS_TARGET {
                let list = trellis_schema::json::from_slice::<trellis_schema::mirrors::MirrorList>(&bytes);
                match list.map_err(|e| e.to_string()).and_then(|list| {
                    trellis_schema::mirrors::MirrorList::from_urls(list.mirrors.iter().map(|m| m.url.as_str()))
                        .map_err(|e| e.to_string())
                }) {
                    Ok(_) => {}
                    Err(e) => checker.problem(format!("target {target}: not a valid mirror list: {e}")),
                }
                0
            } else {
                0
            }
        })
        .sum();
    report.releases = releases;
}

fn check_index_doc(
    checker: &Checker<'_>,
    target: &str,
    bytes: &[u8],
    publishers: &BTreeMap<String, PublisherChain>,
    blocklist: &trellis_schema::blocklist::Blocklist,
) -> usize {
    let doc: IndexDoc = match trellis_schema::json::from_slice(bytes) {
        Ok(doc) => doc,
        Err(e) => {
            checker.problem(format!("target {target}: not an index doc: {e}"));
            return 0;
        }
    };
    if site::index_target(&doc.id) != target {
        checker.problem(format!("target {target}: holds the index doc of {}", doc.id));
    }
    let Some(chain) = publishers.get(doc.id.vendor()) else {
        checker.problem(format!("target {target}: no publisher record for {}", doc.id.vendor()));
        return 0;
    };
    let mut checked = 0;
    for release in &doc.releases {
        let name = format!("{} {}", doc.id, release.version);
        let package = blob_bytes(checker, &doc.id, &name, &release.package).is_some();
        for delta in &release.deltas {
            blob_bytes(checker, &doc.id, &name, &delta.blob);
        }
        let Some(bytes) = blob_bytes(checker, &doc.id, &name, &release.envelope) else { continue };
        if !package {
            continue;
        }
        let envelope: Dsse = match trellis_schema::json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                checker.problem(format!("{name}: envelope is not DSSE: {e}"));
                continue;
            }
        };
        checked += 1;
        let Some(record) = chain.head().map(|h| &h.signed) else { continue };
        // A yanked or blocked release signed only by keys revoked since is kept, and
        // checked under the newest version of the record it verifies under.
        let kept = release.yanked || blocklist.find(&doc.id, &release.version, Some(&release.package.sha256)).is_some();
        let verified = match record.verify_release(&envelope) {
            Err(e) if kept && e.is_revocation() => chain
                .records
                .iter()
                .rev()
                .skip(1)
                .find_map(|older| older.signed.verify_release(&envelope).ok())
                .ok_or(e),
            other => other,
        };
        match verified {
            Ok(manifest) => {
                if manifest.package.sha256 != release.package.sha256 || manifest.package.size != release.package.length
                {
                    checker.problem(format!("{name}: the signed manifest names another package than the index doc"));
                }
                let payload_sha = envelope.payload_bytes().map(|p| Sha256::of(&p)).ok();
                if payload_sha != Some(release.manifest_sha256) {
                    checker.problem(format!("{name}: manifest_sha256 does not match the envelope payload"));
                }
                if manifest.plugin_id != doc.id || manifest.version != release.version {
                    checker.problem(format!("{name}: envelope signs {}", manifest.release_name()));
                }
                if let Some(d) = manifest.index_disagreement(release) {
                    checker.problem(format!(
                        "{name}: the index doc lists {} {} but the developer signed {}; clients refuse the release",
                        d.field, d.index, d.signed
                    ));
                }
            }
            Err(e) => checker.problem(format!("{name}: developer signature: {e}")),
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_match_segment_by_segment_like_python_tuf() {
        assert!(matches_pattern("index/3f/acme.clock.json", "index/*/*"));
        assert!(!matches_pattern("index/3f/acme.clock.json", "index/*"));
        assert!(matches_pattern("plugins/acme/acme.clock/acme.clock-1.0.0.zip", "plugins/*/*/*"));
        assert!(matches_pattern("security/blocklist.json", "security/*.json"));
        assert!(!matches_pattern("security/blocklist.txt", "security/*.json"));
    }
}
