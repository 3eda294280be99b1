//! Verified publishers: the domain proof a build checks for each publisher record.
//!
//! A publisher record names a domain through its `website` (`https://acme.example/`:
//! the domain is its host). The domain vouches for the publisher by serving
//! `https://DOMAIN/.well-known/trellis-publisher.json` ([`PROOF_PATH`]):
//!
//! ```json
//! { "format": 1, "publisher": "acme", "keys": ["<key id>", "..."] }
//! ```
//!
//! The proof holds when it names this publisher and lists every release-signing key of
//! the record's newest version: a domain vouches for exactly the keys it lists, so a
//! key added to the record later (by whoever holds the developer's keys) is unverified
//! until the domain lists it too. Anything else (no website, an unreachable domain, an
//! HTTP error, a response over [`DomainProofSettings::max_bytes`] or slower than the
//! timeout, a document that does not parse, another publisher, a missing key) leaves
//! the publisher unverified *with the reason*; it never fails the build.
//!
//! Results are cached in the registry source ([`CACHE_FILE`], with the date of the
//! check, the domain and the key ids checked), so a build with a fresh cache makes no
//! request and gives the same bytes; an entry is checked again after
//! [`DomainProofSettings::recheck_days`], or at once when the record's domain or keys
//! changed. The outcome goes into the levels documents ([`crate::build`]) as a
//! [`PublisherStanding`]; computing levels is [`trellis_schema::security_level`]'s rule.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_schema::publisher::PublisherRecord;
use trellis_schema::security_level::PublisherStanding;
use trellis_schema::{KeyId, VendorId};

/// Where a domain serves its proof.
pub const PROOF_PATH: &str = "/.well-known/trellis-publisher.json";

/// The cache of proof results, relative to the registry root.
pub const CACHE_FILE: &str = "domain-proofs.json";

/// Format of the proof document.
pub const PROOF_FORMAT: u32 = 1;

/// The `"domain_proofs"` member of `trellis-registry.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainProofSettings {
    /// Where a domain's proof is fetched from: `{domain}` is replaced by the domain and
    /// [`PROOF_PATH`] appended (default `https://{domain}`; tests point it at a
    /// loopback server).
    #[serde(default = "default_url")]
    pub url: String,
    /// Seconds a fetch may take in all (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The largest proof accepted, bytes (default 64 KiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Days a cached result is used before the domain is checked again (default 7).
    #[serde(default = "default_recheck_days")]
    pub recheck_days: u32,
}

fn default_url() -> String {
    "https://{domain}".to_owned()
}

fn default_timeout() -> u64 {
    10
}

fn default_max_bytes() -> u64 {
    64 * 1024
}

fn default_recheck_days() -> u32 {
    7
}

impl Default for DomainProofSettings {
    fn default() -> Self {
        Self {
            url: default_url(),
            timeout_seconds: default_timeout(),
            max_bytes: default_max_bytes(),
            recheck_days: default_recheck_days(),
        }
    }
}

impl DomainProofSettings {
    /// Whether these are the defaults (not written back to the configuration).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The URL of `domain`'s proof.
    pub fn proof_url(&self, domain: &str) -> String {
        format!("{}{PROOF_PATH}", self.url.replace("{domain}", domain).trim_end_matches('/'))
    }
}

/// The document a domain serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainProof {
    /// [`PROOF_FORMAT`].
    pub format: u32,
    /// The publisher id the domain vouches for.
    pub publisher: VendorId,
    /// The key ids the domain vouches for.
    pub keys: BTreeSet<KeyId>,
}

/// One cached result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedProof {
    /// The domain checked.
    pub domain: String,
    /// The record's release-signing key ids when checked.
    pub keys: BTreeSet<KeyId>,
    /// When (RFC 3339).
    pub checked: String,
    /// Whether the proof held.
    pub verified: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The cache file: results by publisher.
pub type ProofCache = BTreeMap<VendorId, CachedProof>;

/// A problem with the cache file (the only way domain proofs fail a build: a cache
/// that cannot be read or written).
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ProofCacheError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// How a build gets a proof's bytes: the real fetcher ([`fetch`]) or a test's.
pub type Fetcher<'a> = &'a (dyn Fn(&str) -> Result<Vec<u8>, String> + Sync);

/// The domain a record names: the host of its `https://` website.
pub fn domain_of(record: &PublisherRecord) -> Result<String, String> {
    let Some(website) = &record.website else {
        return Err(format!(
            "the record of {} names no website (https://DOMAIN) whose domain could vouch for it",
            record.id
        ));
    };
    let rest =
        website.strip_prefix("https://").ok_or_else(|| format!("its website {website} is not an https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(format!("its website {website} does not name a plain domain"));
    }
    Ok(host)
}

/// Whether `bytes` (served by `domain`) prove `record`: `Err` says why not.
pub fn judge(record: &PublisherRecord, domain: &str, bytes: &[u8]) -> Result<(), String> {
    let proof: DomainProof = trellis_schema::json::from_slice(bytes)
        .map_err(|e| format!("https://{domain}{PROOF_PATH} is not a Trellis publisher proof: {e}"))?;
    if proof.format != PROOF_FORMAT {
        return Err(format!("https://{domain}{PROOF_PATH} has format {}, expected {PROOF_FORMAT}", proof.format));
    }
    if proof.publisher != record.id {
        return Err(format!("{domain} vouches for publisher {}, not {}", proof.publisher, record.id));
    }
    let missing: Vec<String> =
        record.keys.keys().filter(|k| !proof.keys.contains(*k)).map(|k| k.short().to_owned()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{domain} does not vouch for key(s) {} of {}'s record; list them in {PROOF_PATH}",
            missing.join(", "),
            record.id
        ));
    }
    Ok(())
}

/// Fetches `url` within the settings' time and size bounds.
pub fn fetch(settings: &DomainProofSettings, url: &str) -> Result<Vec<u8>, String> {
    let https = url.starts_with("https://");
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .https_only(https)
            .max_redirects(if https { 3 } else { 0 })
            .timeout_global(Some(Duration::from_secs(settings.timeout_seconds)))
            .build(),
    );
    let mut response = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("{url}: HTTP {status}"));
    }
    let bytes = response
        .body_mut()
        .with_config()
        .limit(settings.max_bytes + 1)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))?;
    if bytes.len() as u64 > settings.max_bytes {
        return Err(format!("{url}: the proof is larger than {} bytes", settings.max_bytes));
    }
    Ok(bytes)
}

/// Reads the cache of the registry at `dir` (empty when absent).
pub fn read_cache(dir: &Path) -> Result<ProofCache, ProofCacheError> {
    let path = dir.join(CACHE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => trellis_schema::json::from_slice(&bytes)
            .map_err(|e| ProofCacheError { path, reason: format!("{e}; delete it to check every domain again") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProofCache::new()),
        Err(e) => Err(ProofCacheError { path, reason: e.to_string() }),
    }
}

/// The standing of every publisher of `records` as of `now`, from `cache` where it is
/// fresh and from `fetcher` (in parallel) where not; returns the updated cache too.
pub fn standings<R: Borrow<PublisherRecord> + Sync>(
    records: &BTreeMap<VendorId, R>,
    cache: &ProofCache,
    settings: &DomainProofSettings,
    now: jiff::Timestamp,
    fetcher: Fetcher<'_>,
) -> (BTreeMap<VendorId, PublisherStanding>, ProofCache) {
    let recheck = jiff::SignedDuration::from_hours(24 * i64::from(settings.recheck_days));
    let checked_now = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let results: Vec<(VendorId, Option<CachedProof>, PublisherStanding)> = records
        .par_iter()
        .map(|(vendor, record)| {
            let record: &PublisherRecord = record.borrow();
            let domain = match domain_of(record) {
                Ok(domain) => domain,
                Err(reason) => {
                    let standing =
                        PublisherStanding { verified: false, domain: None, reason: Some(reason), checked: None };
                    return (vendor.clone(), None, standing);
                }
            };
            let keys: BTreeSet<KeyId> = record.keys.keys().cloned().collect();
            let fresh = cache.get(vendor).filter(|c| {
                c.domain == domain
                    && c.keys == keys
                    && c.checked.parse::<jiff::Timestamp>().is_ok_and(|t| t <= now && now.duration_since(t) < recheck)
            });
            let entry = match fresh {
                Some(entry) => entry.clone(),
                None => {
                    let outcome =
                        fetcher(&settings.proof_url(&domain)).and_then(|bytes| judge(record, &domain, &bytes));
                    if let Err(reason) = &outcome {
                        tracing::warn!("publisher {vendor} is not verified: {reason}");
                    }
                    CachedProof {
                        domain: domain.clone(),
                        keys,
                        checked: checked_now.clone(),
                        verified: outcome.is_ok(),
                        reason: outcome.err(),
                    }
                }
            };
            let standing = PublisherStanding {
                verified: entry.verified,
                domain: Some(domain),
                reason: entry.reason.clone(),
                checked: Some(entry.checked.clone()),
            };
            (vendor.clone(), Some(entry), standing)
        })
        .collect();
    let mut out = BTreeMap::new();
    let mut updated = ProofCache::new();
    for (vendor, entry, standing) in results {
        if let Some(entry) = entry {
            updated.insert(vendor.clone(), entry);
        }
        out.insert(vendor, standing);
    }
    (out, updated)
}

/// Writes `cache` to the registry at `dir` when it differs from `before`.
pub fn write_cache(dir: &Path, before: &ProofCache, cache: &ProofCache) -> Result<(), ProofCacheError> {
    if before == cache {
        return Ok(());
    }
    let path = dir.join(CACHE_FILE);
    let mut bytes =
        serde_json::to_vec_pretty(cache).map_err(|e| ProofCacheError { path: path.clone(), reason: e.to_string() })?;
    bytes.push(b'\n');
    trellis_client::fs::write_atomic(&path, &bytes).map_err(|e| ProofCacheError { path, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn record(website: Option<&str>) -> PublisherRecord {
        let mut record = crate::fixture::publisher("acme", &[&crate::fixture::key(7)]);
        record.website = website.map(str::to_owned);
        record
    }

    fn proof(publisher: &str, keys: &[&KeyId]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"format": 1, "publisher": publisher, "keys": keys})).unwrap()
    }

    #[test]
    fn a_proof_holds_only_for_this_publisher_and_every_key_it_lists() {
        let r = record(Some("https://Acme.example/about"));
        assert_eq!(domain_of(&r).unwrap(), "acme.example");
        let key = r.keys.keys().next().unwrap();
        assert_eq!(judge(&r, "acme.example", &proof("acme", &[key])), Ok(()));
        let other: KeyId = KeyId("ab".repeat(32));
        let err = judge(&r, "acme.example", &proof("acme", &[&other])).unwrap_err();
        assert!(err.contains("does not vouch for key(s)") && err.contains(key.short()), "{err}");
        let err = judge(&r, "acme.example", &proof("contoso", &[key])).unwrap_err();
        assert_eq!(err, "acme.example vouches for publisher contoso, not acme");
        let err = judge(&r, "acme.example", b"<html>hello</html>").unwrap_err();
        assert!(err.contains("is not a Trellis publisher proof"), "{err}");
        for (website, expected) in [
            (None, "names no website"),
            (Some("http://acme.example"), "not an https:// URL"),
            (Some("https://user@acme.example"), "does not name a plain domain"),
            (Some("https://acme.example:8443/"), "does not name a plain domain"),
        ] {
            let err = domain_of(&record(website)).unwrap_err();
            assert!(err.contains(expected), "{website:?}: {err}");
        }
    }

    #[test]
    fn a_fresh_cached_result_is_used_and_a_stale_or_changed_one_checked_again() {
        let r = record(Some("https://acme.example"));
        let key = r.keys.keys().next().unwrap().clone();
        let records = BTreeMap::from([(r.id.clone(), r)]);
        let calls = AtomicUsize::new(0);
        let body = proof("acme", &[&key]);
        let fetcher = |url: &str| {
            assert_eq!(url, "https://acme.example/.well-known/trellis-publisher.json");
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(body.clone())
        };
        let settings = DomainProofSettings::default();
        let day0: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let (standing, cache) = standings(&records, &ProofCache::new(), &settings, day0, &fetcher);
        assert!(standing[&"acme".parse::<VendorId>().unwrap()].verified);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let day3 = "2026-12-04T00:00:00Z".parse().unwrap();
        let (_, again) = standings(&records, &cache, &settings, day3, &fetcher);
        assert_eq!((calls.load(Ordering::SeqCst), &again), (1, &cache), "fresh: no request");
        let day8 = "2026-12-09T00:00:00Z".parse().unwrap();
        let (_, rechecked) = standings(&records, &cache, &settings, day8, &fetcher);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_ne!(rechecked, cache);
        let mut changed = cache.clone();
        changed.values_mut().for_each(|c| c.keys.clear());
        standings(&records, &changed, &settings, day3, &fetcher);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the record's keys changed since the check");
        let failing = |_: &str| Err("connection refused".to_owned());
        let (standing, cache) = standings(&records, &ProofCache::new(), &settings, day0, &failing);
        let acme = &standing[&"acme".parse::<VendorId>().unwrap()];
        assert!(!acme.verified && acme.reason.as_deref() == Some("connection refused"), "{acme:?}");
        assert!(!cache.values().next().unwrap().verified);
    }
}
