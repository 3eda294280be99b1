//! Mirror health memory: which mirrors failed lately and how fast the others answer.
//!
//! [`MirrorHealth`] orders the mirrors of each fetch ([`super::Mirrors::fetch_with`]):
//! mirrors that failed within [`HealthOptions::failure_memory`] go last (the one that
//! failed longest ago first), healthy ones by measured metadata latency on a
//! logarithmic scale (so only a clearly faster mirror overtakes; a mirror not measured
//! yet counts as fast, so a new mirror gets its chance), ties in configured order.
//! A failure is a transport error other than "not found" (a partial mirror lacks
//! files; a root probe expects 404) or bytes the caller rejected (tampered, stale).
//! A failed mirror is still asked, last, so a recovered one is noticed.
//!
//! The memory is a hint, never trusted state: it is persisted as JSON
//! ([`MirrorHealth::load`], written atomically when the ordering it implies changes),
//! bounded ([`HealthOptions::max_mirrors`], least recently seen dropped first) and
//! expiring (failures after `failure_memory`, latencies after `latency_memory`).
//! An unreadable or damaged file is ignored with a warning: it can only change which
//! mirror is asked first, and every byte from any mirror is verified by the caller.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Mirror;

/// How long health is remembered and how much of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthOptions {
    /// A failed mirror goes last for this long after its last failure (default 30 min).
    pub failure_memory: Duration,
    /// A measured latency is forgotten this long after the mirror was last used
    /// (default 7 days).
    pub latency_memory: Duration,
    /// At most this many mirrors are remembered (default 256).
    pub max_mirrors: usize,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            failure_memory: Duration::from_secs(30 * 60),
            latency_memory: Duration::from_secs(7 * 24 * 3600),
            max_mirrors: 256,
        }
    }
}

/// What is remembered of one mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRecord {
    /// When the mirror was last asked (Unix seconds).
    pub last_seen: i64,
    /// When it last failed (Unix seconds), if it did since it last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<i64>,
    /// What that failure was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Whether that failure was bytes the caller rejected (tampered or stale): such a
    /// failure is not cleared by a later success, only by time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub served_bad_bytes: bool,
    /// Smoothed time of a successful metadata request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// The persisted form: records by mirror (its metadata base URL).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct HealthFile {
    mirrors: BTreeMap<String, MirrorRecord>,
}

/// Health of mirrors, shared by every fetch of a process and persisted between runs.
#[derive(Debug)]
pub struct MirrorHealth {
    path: Option<PathBuf>,
    options: HealthOptions,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    file: HealthFile,
    /// Whether the ordering implied by the table changed since it was saved.
    dirty: bool,
}

/// Seconds since the Unix epoch.
fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn key(mirror: &Mirror) -> &str {
    &mirror.metadata_url
}

/// The latency class of `ms`: 0–63 ms is 0, then one class per doubling (64–191 ms is
/// 1, 192–447 ms 2, …). Mirrors that differ by less than a CDN round trip (a busy
/// machine's loopback, two nearby regions) keep their configured order.
fn latency_class(ms: u64) -> u32 {
    (ms / 64 + 1).ilog2()
}

impl MirrorHealth {
    /// Health kept in memory only.
    pub fn in_memory(options: HealthOptions) -> Self {
        Self { path: None, options, table: Mutex::default() }
    }

    /// Health remembered in the file at `path` (read now; a missing, unreadable or
    /// damaged file is an empty memory).
    pub fn load(path: impl Into<PathBuf>, options: HealthOptions) -> Self {
        let path = path.into();
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged mirror health file");
                HealthFile::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HealthFile::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the mirror health file");
                HealthFile::default()
            }
        };
        Self { path: Some(path), options, table: Mutex::new(Table { file, dirty: false }) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record of `mirror`, if any.
    pub fn record(&self, mirror: &Mirror) -> Option<MirrorRecord> {
        self.table().file.mirrors.get(key(mirror)).cloned()
    }

    /// The order in which to ask `mirrors` now: indexes into `mirrors`.
    pub fn order(&self, mirrors: &[Mirror]) -> Vec<usize> {
        self.order_at(mirrors, now_secs())
    }

    /// [`MirrorHealth::order`] at `now` (Unix seconds).
    pub fn order_at(&self, mirrors: &[Mirror], now: i64) -> Vec<usize> {
        let table = self.table();
        let failure_memory = self.options.failure_memory.as_secs() as i64;
        let latency_memory = self.options.latency_memory.as_secs() as i64;
        let rank = |mirror: &Mirror| -> (u8, i64, u32) {
            let Some(record) = table.file.mirrors.get(key(mirror)) else { return (0, 0, 0) };
            if let Some(failed) = record.failed_at
                && now.saturating_sub(failed) < failure_memory
            {
                return (1, failed, 0);
            }
            let fresh = now.saturating_sub(record.last_seen) < latency_memory;
            let class = record.latency_ms.filter(|_| fresh).map_or(0, latency_class);
            (0, 0, class)
        };
        let mut order: Vec<usize> = (0..mirrors.len()).collect();
        order.sort_by_key(|&i| rank(&mirrors[i]));
        order
    }

    /// `mirror` served a file; `elapsed` is the time of a metadata request (the
    /// latency measured), `None` for other files.
    pub fn record_success(&self, mirror: &Mirror, elapsed: Option<Duration>) {
        self.record_success_at(mirror, elapsed, now_secs());
    }

    fn record_success_at(&self, mirror: &Mirror, elapsed: Option<Duration>, now: i64) {
        let mut table = self.table();
        let max = self.options.max_mirrors;
        let table = &mut *table;
        let is_new = !table.file.mirrors.contains_key(key(mirror));
        let record = table.file.mirrors.entry(key(mirror).to_owned()).or_default();
        let failure_memory = self.options.failure_memory.as_secs() as i64;
        let suspect =
            record.served_bad_bytes && record.failed_at.is_some_and(|at| now.saturating_sub(at) < failure_memory);
        let mut changed = is_new || (record.failed_at.is_some() && !suspect);
        record.last_seen = now;
        if !suspect {
            record.failed_at = None;
            record.failure = None;
            record.served_bad_bytes = false;
        }
        if let Some(elapsed) = elapsed {
            let sample = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            let before = record.latency_ms;
            let smoothed = before.map_or(sample, |old| old.saturating_mul(3).saturating_add(sample) / 4);
            record.latency_ms = Some(smoothed);
            changed |= before.map(latency_class) != Some(latency_class(smoothed));
        }
        table.dirty |= changed;
        bound(&mut table.file, max);
    }

    /// `mirror` failed: `failure` says how (it names the URL); `bad_bytes` when it
    /// served bytes the caller rejected (then a success does not clear the failure
    /// before it expires: a mirror that tampers with one file is suspect for all).
    pub fn record_failure(&self, mirror: &Mirror, failure: String, bad_bytes: bool) {
        self.record_failure_at(mirror, failure, bad_bytes, now_secs());
    }

    fn record_failure_at(&self, mirror: &Mirror, failure: String, bad_bytes: bool, now: i64) {
        let mut table = self.table();
        let max = self.options.max_mirrors;
        let table = &mut *table;
        let record = table.file.mirrors.entry(key(mirror).to_owned()).or_default();
        record.last_seen = now;
        record.failed_at = Some(now);
        record.failure = Some(failure);
        record.served_bad_bytes |= bad_bytes;
        table.dirty = true;
        bound(&mut table.file, max);
    }

    /// Writes the memory to its file when the ordering it implies changed since the
    /// last save (a failure, a recovery, a new mirror, another latency class).
    /// A write error is logged, not returned, and nothing is flushed: the memory is
    /// only a hint (an unreadable file loads as none).
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut table = self.table();
        if !table.dirty {
            return;
        }
        let result = serde_json::to_vec_pretty(&table.file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| crate::fs::write_atomic_unflushed(path, &bytes).map_err(|e| e.to_string()));
        match result {
            Ok(()) => table.dirty = false,
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot save the mirror health file"),
        }
    }
}

/// Drops the least recently seen records beyond `max`.
fn bound(file: &mut HealthFile, max: usize) {
    while file.mirrors.len() > max {
        let Some(oldest) = file.mirrors.iter().min_by_key(|(_, r)| r.last_seen).map(|(k, _)| k.clone()) else {
            return;
        };
        file.mirrors.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors(n: usize) -> Vec<Mirror> {
        (0..n).map(|i| Mirror::site(&format!("https://m{i}.example"))).collect()
    }

    #[test]
    fn a_failed_mirror_goes_last_until_its_failure_expires() {
        let health = MirrorHealth::in_memory(HealthOptions::default());
        let m = mirrors(3);
        assert_eq!(health.order_at(&m, 1000), [0, 1, 2], "configured order without memory");
        health.record_failure_at(&m[0], "down".into(), false, 1000);
        assert_eq!(health.order_at(&m, 1001), [1, 2, 0]);
        health.record_failure_at(&m[1], "down".into(), false, 1002);
        assert_eq!(health.order_at(&m, 1003), [2, 0, 1], "the one that failed longest ago first");
        assert_eq!(health.order_at(&m, 1000 + 30 * 60), [0, 2, 1], "m0's failure expired");
        health.record_success_at(&m[1], None, 1004);
        assert_eq!(health.order_at(&m, 1005), [1, 2, 0], "a success clears the failure");
    }

    #[test]
    fn a_mirror_that_served_bad_bytes_stays_last_until_the_failure_expires() {
        let health = MirrorHealth::in_memory(HealthOptions::default());
        let m = mirrors(2);
        health.record_failure_at(&m[0], "rejected: hash mismatch".into(), true, 1000);
        health.record_success_at(&m[0], Some(Duration::from_millis(1)), 1001);
        assert_eq!(health.order_at(&m, 1002), [1, 0], "another good file does not clear it");
        health.record_success_at(&m[0], None, 1000 + 30 * 60);
        assert_eq!(health.order_at(&m, 1000 + 30 * 60 + 1), [0, 1], "expired, then cleared");
        assert!(!health.record(&m[0]).unwrap().served_bad_bytes);
    }

    #[test]
    fn only_a_clearly_faster_mirror_overtakes_and_latencies_expire() {
        let health = MirrorHealth::in_memory(HealthOptions::default());
        let m = mirrors(2);
        health.record_success_at(&m[0], Some(Duration::from_millis(12)), 0);
        health.record_success_at(&m[1], Some(Duration::from_millis(3)), 0);
        assert_eq!(health.order_at(&m, 1), [0, 1], "same latency class: configured order");
        health.record_success_at(&m[0], Some(Duration::from_millis(400)), 0);
        health.record_success_at(&m[0], Some(Duration::from_millis(400)), 0);
        assert_eq!(health.order_at(&m, 1), [1, 0], "m0 is now clearly slower");
        let week = 7 * 24 * 3600;
        assert_eq!(health.order_at(&m, week - 1), [1, 0], "still remembered");
        assert_eq!(health.order_at(&m, week), [0, 1], "both latencies forgotten");
    }

    #[test]
    fn memory_is_bounded_and_persisted_only_when_the_order_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health.json");
        let options = HealthOptions { max_mirrors: 2, ..HealthOptions::default() };
        let health = MirrorHealth::load(&path, options);
        let m = mirrors(3);
        for (i, mirror) in m.iter().enumerate() {
            health.record_success_at(mirror, Some(Duration::from_millis(5)), i as i64);
        }
        health.save();
        let saved: HealthFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let kept: Vec<&str> = saved.mirrors.keys().map(String::as_str).collect();
        assert_eq!(kept, ["https://m1.example/metadata/", "https://m2.example/metadata/"], "the oldest dropped");
        std::fs::remove_file(&path).unwrap();
        health.record_success_at(&m[2], Some(Duration::from_millis(6)), 9);
        health.save();
        assert!(!path.exists(), "same latency class: nothing to write");
        health.record_failure_at(&m[2], "https://m2.example/metadata/x: timed out".into(), false, 10);
        health.save();
        let again = MirrorHealth::load(&path, options);
        assert_eq!(again.order_at(&m[1..], 11), [0, 1]);
        assert_eq!(again.order_at(&[m[2].clone(), m[1].clone()], 11), [1, 0], "the failure survives a restart");
    }

    #[test]
    fn a_damaged_file_is_an_empty_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health.json");
        std::fs::write(&path, b"{not json").unwrap();
        let health = MirrorHealth::load(&path, HealthOptions::default());
        assert_eq!(health.order_at(&mirrors(2), 0), [0, 1]);
    }
}
