//! Download statistics: access logs of the site's host turned into daily counts.
//!
//! Owns reading access logs ([`parse_log`]: the format detected from the lines —
//! combined log format as nginx and Apache write it, CloudFront standard logs,
//! Cloudflare Logpush JSON lines — malformed lines reported with their number and
//! skipped) and counting what they show ([`Counts`]): package and delta downloads
//! per plugin, version and day (successful GETs of `targets/plugins/…/<H>.<id>-<ver>.zip`
//! and `targets/deltas/<id>/<H>.<from>_<to>.delta`, counted for the version they
//! bring) and update checks per day (GETs of `metadata/timestamp.json`, 200 or 304).
//! Paths may sit under a prefix (a GitHub Pages project site). [`ingest`] keeps the
//! counts in the registry source (`stats/downloads.json`) and the SHA-256 of every
//! log it added (`stats/ingested.json`), so ingesting a log twice counts it once.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use trellis_schema::PluginId;

/// The log formats [`parse_log`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// `host ident user [10/Oct/2026:13:55:36 +0000] "GET /path HTTP/1.1" 200 2326 "referer" "agent"`.
    Combined,
    /// Tab-separated, `#Version`/`#Fields` headers (`date time … cs-uri-stem sc-status …`).
    CloudFront,
    /// One JSON object a line (`ClientRequestPath`/`ClientRequestURI`,
    /// `ClientRequestMethod`, `EdgeResponseStatus`, `EdgeStartTimestamp`).
    CloudflareJson,
    /// The client's opt-in telemetry, JSON lines of event schema version 1
    /// (`trellis_client::telemetry`): install, update, remove and rollback outcomes.
    Telemetry,
}

/// One line read.
enum Entry {
    Request(Request),
    Event(Box<trellis_client::telemetry::TelemetryEvent>),
}

/// A telemetry event line (schema version 1 only).
fn telemetry(line: &str) -> Result<Box<trellis_client::telemetry::TelemetryEvent>, String> {
    use trellis_client::telemetry::{SCHEMA_VERSION, TelemetryEvent};
    let event: TelemetryEvent = serde_json::from_str(line).map_err(|e| format!("not a telemetry event: {e}"))?;
    if event.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "telemetry schema version {}; this builder reads version {SCHEMA_VERSION}",
            event.schema_version
        ));
    }
    event_day(&event)?;
    Ok(Box::new(event))
}

/// The UTC day of a telemetry event.
fn event_day(event: &trellis_client::telemetry::TelemetryEvent) -> Result<Date, String> {
    let time: jiff::Timestamp = event.time.parse().map_err(|e| format!("time {:?}: {e}", event.time))?;
    time.strftime("%Y-%m-%d").to_string().parse().map_err(|e| format!("time {:?}: {e}", event.time))
}

/// Counts a telemetry event under its plugin as `<operation>:<outcome>` (events
/// naming no plugin are read, not counted).
fn count_event(counts: &mut Counts, event: &trellis_client::telemetry::TelemetryEvent) {
    let (Some(plugin), Ok(day)) = (&event.plugin, event_day(event)) else { return };
    let key = format!("{}:{}", serde_name(&event.operation), serde_name(&event.outcome));
    *counts.outcomes.entry(plugin.clone()).or_default().entry(key).or_default().entry(day).or_default() += 1;
}

/// The serde name of a unit enum value (`install`, `rolled_back`).
fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// One request the counts care about, whatever the format.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    date: Date,
    method: String,
    path: String,
    status: u16,
}

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// Line number, from 1.
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// Counts from one or more logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// plugin → version → day → package downloads.
    pub downloads: BTreeMap<PluginId, BTreeMap<String, BTreeMap<Date, u64>>>,
    /// plugin → version (the one a delta brings) → day → delta downloads.
    pub deltas: BTreeMap<PluginId, BTreeMap<String, BTreeMap<Date, u64>>>,
    /// day → update checks (timestamp fetches).
    pub update_checks: BTreeMap<Date, u64>,
    /// From client telemetry: plugin → `<operation>:<outcome>` (`install:success`,
    /// `update:failure`, `update:rolled_back`, `remove:success`, …) → day → events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<PluginId, BTreeMap<String, BTreeMap<Date, u64>>>,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        for (mine, theirs) in [(&mut self.downloads, &other.downloads), (&mut self.deltas, &other.deltas)] {
            for (id, versions) in theirs {
                for (version, days) in versions {
                    for (day, n) in days {
                        *mine
                            .entry(id.clone())
                            .or_default()
                            .entry(version.clone())
                            .or_default()
                            .entry(*day)
                            .or_default() += n;
                    }
                }
            }
        }
        for (day, n) in &other.update_checks {
            *self.update_checks.entry(*day).or_default() += n;
        }
        for (id, outcomes) in &other.outcomes {
            for (outcome, days) in outcomes {
                for (day, n) in days {
                    *self
                        .outcomes
                        .entry(id.clone())
                        .or_default()
                        .entry(outcome.clone())
                        .or_default()
                        .entry(*day)
                        .or_default() += n;
                }
            }
        }
    }

    /// Package downloads of `id`, all versions, on days in `from..=to` (all days
    /// when `None`).
    pub fn total(&self, id: &PluginId, window: Option<(Date, Date)>) -> u64 {
        self.downloads.get(id).map_or(0, |versions| {
            versions
                .values()
                .flat_map(|days| days.iter())
                .filter(|(day, _)| window.is_none_or(|(from, to)| **day >= from && **day <= to))
                .map(|(_, n)| n)
                .sum()
        })
    }
}

/// Days the catalog's recent downloads cover, today included.
pub const RECENT_DAYS: i64 = 30;
/// Days of the trending window, today included.
pub const TRENDING_DAYS: i64 = 7;
/// Days of the baseline trending compares against: the ones just before the window.
pub const BASELINE_DAYS: i64 = 21;
/// Downloads a plugin needs in the trending window to be trending at all (so one or
/// two downloads of an unknown plugin are not "growth").
pub const TRENDING_MIN: u64 = 5;

/// The downloads the catalog publishes for one plugin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Downloads {
    /// Every package and delta download counted.
    pub total: u64,
    /// Those of the last [`RECENT_DAYS`] days.
    pub recent: u64,
}

/// What the catalog publishes from the counts, as of one day: see [`figures`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogFigures {
    /// Downloads of every plugin counted.
    pub downloads: BTreeMap<PluginId, Downloads>,
    /// Trending plugins, fastest growing first (every one that qualifies; the
    /// catalog head shows the first it lists).
    pub trending: Vec<PluginId>,
}

impl CatalogFigures {
    /// The downloads of `id` (zero when none were counted).
    pub fn of(&self, id: &PluginId) -> Downloads {
        self.downloads.get(id).copied().unwrap_or_default()
    }
}

/// The catalog figures of `counts` as of `today`. A download is a package or a
/// delta download (a delta counts for the version it brings).
///
/// Trending compares the daily rate of the last [`TRENDING_DAYS`] days (`w`
/// downloads) with the daily rate of the [`BASELINE_DAYS`] before (`b`): growth is
/// `(w / 7) / ((b + 3) / 21)`, the baseline smoothed by one download a week so a
/// new plugin's growth stays finite. A plugin trends when `w ≥` [`TRENDING_MIN`]
/// and growth is over 1; the order is growth (compared exactly, as fractions), then
/// `w`, then id, so equal figures never change places between builds. Days after
/// `today` are counted in totals only.
pub fn figures(counts: &Counts, today: Date) -> CatalogFigures {
    let since = |days: i64| today.checked_sub(jiff::Span::new().days(days - 1)).unwrap_or(Date::MIN);
    let recent_from = since(RECENT_DAYS);
    let window_from = since(TRENDING_DAYS);
    let baseline_from = since(TRENDING_DAYS + BASELINE_DAYS);
    let smoothing = (BASELINE_DAYS / TRENDING_DAYS) as u64;
    let mut downloads: BTreeMap<PluginId, Downloads> = BTreeMap::new();
    let mut windows: BTreeMap<&PluginId, (u64, u64)> = BTreeMap::new();
    for map in [&counts.downloads, &counts.deltas] {
        for (id, versions) in map {
            let entry = downloads.entry(id.clone()).or_default();
            let window = windows.entry(id).or_default();
            for (day, n) in versions.values().flat_map(|days| days.iter()) {
                entry.total += n;
                if *day > today {
                    continue;
                }
                if *day >= recent_from {
                    entry.recent += n;
                }
                if *day >= window_from {
                    window.0 += n;
                } else if *day >= baseline_from {
                    window.1 += n;
                }
            }
        }
    }
    // growth_a > growth_b ⇔ w_a · (b_b + s) > w_b · (b_a + s); over 1 ⇔ w · (21/7) > b + s.
    let mut trending: Vec<(&PluginId, u64, u64)> = windows
        .into_iter()
        .filter(|(_, (w, b))| *w >= TRENDING_MIN && u128::from(*w) * u128::from(smoothing) > u128::from(*b + smoothing))
        .map(|(id, (w, b))| (id, w, b))
        .collect();
    trending.sort_by(|a, b| {
        let left = u128::from(a.1) * u128::from(b.2 + smoothing);
        let right = u128::from(b.1) * u128::from(a.2 + smoothing);
        right.cmp(&left).then_with(|| b.1.cmp(&a.1)).then_with(|| a.0.cmp(b.0))
    });
    let trending = trending.into_iter().map(|(id, _, _)| id.clone()).collect();
    CatalogFigures { downloads, trending }
}

/// The counts of the registry at `registry` (`stats/downloads.json`), `None` when it
/// has none.
pub fn read_counts(registry: &std::path::Path) -> Result<Option<Counts>, StatsError> {
    let path = registry.join(COUNTS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_or_default(&path).map(Some)
}

/// What [`parse_log`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLog {
    /// The detected format (`None`: no line could be read).
    pub format: Option<LogFormat>,
    /// The counts.
    pub counts: Counts,
    /// Lines that could not be read.
    pub malformed: Vec<Malformed>,
    /// Requests read (counted or not).
    pub requests: usize,
}

/// Reads one access log: the format is the first one that reads its first
/// non-header line; every other line must be in it.
pub fn parse_log(text: &str) -> ParsedLog {
    let mut format = None;
    let mut fields: Option<Vec<String>> = None;
    let mut parsed = ParsedLog { format: None, counts: Counts::default(), malformed: Vec::new(), requests: 0 };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix("#Fields:") {
            fields = Some(header.split_whitespace().map(str::to_owned).collect());
            format = Some(LogFormat::CloudFront);
            continue;
        }
        if line.starts_with("#Version") || line.starts_with('#') {
            continue;
        }
        let result = match format {
            Some(LogFormat::Combined) => combined(line).map(Entry::Request),
            Some(LogFormat::CloudFront) => cloudfront(line, fields.as_deref()).map(Entry::Request),
            Some(LogFormat::CloudflareJson) => cloudflare(line).map(Entry::Request),
            Some(LogFormat::Telemetry) => telemetry(line).map(Entry::Event),
            None => {
                let detected = [
                    (LogFormat::Telemetry, telemetry(line).map(Entry::Event)),
                    (LogFormat::CloudflareJson, cloudflare(line).map(Entry::Request)),
                    (LogFormat::Combined, combined(line).map(Entry::Request)),
                    (LogFormat::CloudFront, cloudfront(line, None).map(Entry::Request)),
                ]
                .into_iter()
                .find(|(_, r)| r.is_ok());
                match detected {
                    Some((found, request)) => {
                        format = Some(found);
                        request
                    }
                    None => {
                        Err("not a combined log, CloudFront, Cloudflare Logpush JSON or Trellis telemetry line"
                            .to_owned())
                    }
                }
            }
        };
        match result {
            Ok(Entry::Request(request)) => {
                parsed.requests += 1;
                count(&mut parsed.counts, &request);
            }
            Ok(Entry::Event(event)) => {
                parsed.requests += 1;
                count_event(&mut parsed.counts, &event);
            }
            Err(reason) => parsed.malformed.push(Malformed { line: number, reason }),
        }
    }
    parsed.format = format;
    parsed
}

fn count(counts: &mut Counts, request: &Request) {
    if request.method != "GET" {
        return;
    }
    let path = request.path.split(['?', '#']).next().unwrap_or_default();
    if path.ends_with("/metadata/timestamp.json") || path == "metadata/timestamp.json" {
        if matches!(request.status, 200 | 304) {
            *counts.update_checks.entry(request.date).or_default() += 1;
        }
        return;
    }
    if request.status != 200 {
        return;
    }
    let segments: Vec<&str> = path.split('/').collect();
    let Some(at) = segments.iter().rposition(|s| *s == "targets") else { return };
    match &segments[at + 1..] {
        ["plugins", _vendor, id, file] => {
            let Ok(plugin) = id.parse::<PluginId>() else { return };
            let Some(version) =
                strip_hash(file).and_then(|rest| rest.strip_prefix(*id)?.strip_prefix('-')?.strip_suffix(".zip"))
            else {
                return;
            };
            if semver::Version::parse(version).is_ok() {
                bump(&mut counts.downloads, plugin, version, request.date);
            }
        }
        ["deltas", id, file] => {
            let Ok(plugin) = id.parse::<PluginId>() else { return };
            let Some(to) =
                strip_hash(file).and_then(|rest| rest.strip_suffix(".delta")?.split_once('_')).map(|(_, to)| to)
            else {
                return;
            };
            if semver::Version::parse(to).is_ok() {
                bump(&mut counts.deltas, plugin, to, request.date);
            }
        }
        _ => {}
    }
}

fn bump(map: &mut BTreeMap<PluginId, BTreeMap<String, BTreeMap<Date, u64>>>, id: PluginId, version: &str, day: Date) {
    *map.entry(id).or_default().entry(version.to_owned()).or_default().entry(day).or_default() += 1;
}

/// `rest` of a content-addressed name `<64 hex>.<rest>`.
fn strip_hash(file: &str) -> Option<&str> {
    let (hash, rest) = file.split_once('.')?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(rest)
}

/// A combined-log-format line.
fn combined(line: &str) -> Result<Request, String> {
    let open = line.find('[').ok_or("no [date]")?;
    let close = open + line[open..].find(']').ok_or("no ] after the date")?;
    let stamp = &line[open + 1..close];
    let date = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", stamp)
        .and_then(|t| t.to_timestamp())
        .map_err(|e| format!("date {stamp:?}: {e}"))?
        .strftime("%Y-%m-%d")
        .to_string()
        .parse::<Date>()
        .map_err(|e| e.to_string())?;
    let rest = line[close + 1..].trim_start();
    let rest = rest.strip_prefix('"').ok_or("no quoted request after the date")?;
    let end = rest.find('"').ok_or("the request is not closed by a quote")?;
    let mut request = rest[..end].split(' ');
    let method = request.next().unwrap_or_default().to_owned();
    let path = request.next().ok_or("no path in the request")?.to_owned();
    let status =
        rest[end + 1..].split_whitespace().next().and_then(|s| s.parse().ok()).ok_or("no status after the request")?;
    Ok(Request { date, method, path, status })
}

/// A CloudFront standard log line (tab-separated, columns from `#Fields`).
fn cloudfront(line: &str, fields: Option<&[String]>) -> Result<Request, String> {
    let columns: Vec<&str> = line.split('\t').collect();
    let at = |name: &str, default: usize| -> usize {
        fields.and_then(|f| f.iter().position(|n| n == name)).unwrap_or(default)
    };
    let get =
        |name: &str, default: usize| columns.get(at(name, default)).copied().ok_or_else(|| format!("no {name} column"));
    if columns.len() < 9 {
        return Err(format!("{} tab-separated columns; a CloudFront log line has at least 9", columns.len()));
    }
    let date: Date = get("date", 0)?.parse().map_err(|e| format!("date: {e}"))?;
    let method = get("cs-method", 5)?.to_owned();
    let path = get("cs-uri-stem", 7)?.to_owned();
    let status = get("sc-status", 8)?.parse().map_err(|_| "sc-status is not a number".to_owned())?;
    Ok(Request { date, method, path, status })
}

/// A Cloudflare Logpush JSON line.
fn cloudflare(line: &str) -> Result<Request, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Line {
        client_request_path: Option<String>,
        #[serde(rename = "ClientRequestURI")]
        client_request_uri: Option<String>,
        client_request_method: String,
        edge_response_status: u16,
        edge_start_timestamp: serde_json::Value,
    }
    let parsed: Line = serde_json::from_str(line).map_err(|e| format!("not Logpush JSON: {e}"))?;
    let path = parsed.client_request_path.or(parsed.client_request_uri).ok_or("no ClientRequestPath")?;
    let timestamp: jiff::Timestamp = match &parsed.edge_start_timestamp {
        serde_json::Value::String(text) => text.parse().map_err(|e| format!("EdgeStartTimestamp: {e}"))?,
        serde_json::Value::Number(n) => {
            let n = n.as_i64().ok_or("EdgeStartTimestamp is not an integer")?;
            // Logpush writes Unix seconds, milliseconds or nanoseconds.
            let result = if n > 10_000_000_000_000_000 {
                jiff::Timestamp::from_nanosecond(i128::from(n))
            } else if n > 10_000_000_000 {
                jiff::Timestamp::from_millisecond(n)
            } else {
                jiff::Timestamp::from_second(n)
            };
            result.map_err(|e| format!("EdgeStartTimestamp: {e}"))?
        }
        _ => return Err("EdgeStartTimestamp is neither a string nor a number".to_owned()),
    };
    let date = timestamp.strftime("%Y-%m-%d").to_string().parse::<Date>().map_err(|e| e.to_string())?;
    Ok(Request { date, method: parsed.client_request_method, path, status: parsed.edge_response_status })
}

/// Counts file, relative to the registry root.
pub const COUNTS_FILE: &str = "stats/downloads.json";
/// Ingested logs file, relative to the registry root.
pub const INGESTED_FILE: &str = "stats/ingested.json";

/// One log [`ingest`] added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestedLog {
    /// SHA-256 of the log's bytes.
    pub sha256: trellis_schema::Sha256,
    /// Its file name when ingested.
    pub name: String,
    /// Requests read from it.
    pub requests: usize,
    /// Lines skipped as malformed.
    pub malformed: usize,
}

/// `stats/ingested.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingested {
    /// Every log added, in order.
    pub logs: Vec<IngestedLog>,
}

/// What [`ingest`] did with one log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogReport {
    /// The log.
    pub path: std::path::PathBuf,
    /// Its format (`None`: nothing readable).
    pub format: Option<LogFormat>,
    /// Already ingested (same bytes): nothing added.
    pub already_ingested: bool,
    /// Requests read.
    pub requests: usize,
    /// Lines skipped.
    pub malformed: Vec<Malformed>,
}

/// Why [`ingest`] failed (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stats file of the registry is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing the stats failed.
    #[error(transparent)]
    Write(#[from] trellis_client::fs::FsError),
}

/// Bytes of a log once decompressed: CloudFront standard logs and Cloudflare Logpush
/// files are gzip (`.gz`, detected by content, concatenated members read).
pub const MAX_LOG_BYTES: u64 = 4 << 30;

/// A log's text bytes: gzip (by its magic bytes) decompressed, at most
/// [`MAX_LOG_BYTES`]. A log counts once by the SHA-256 of these bytes, compressed or not.
fn read_log(path: &std::path::Path) -> Result<Vec<u8>, StatsError> {
    use std::io::Read;
    let read = |source| StatsError::Read { path: path.to_owned(), source };
    let raw = std::fs::read(path).map_err(read)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .take(MAX_LOG_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| StatsError::Invalid { path: path.to_owned(), reason: format!("not a readable gzip file: {e}") })?;
    if text.len() as u64 > MAX_LOG_BYTES {
        return Err(StatsError::Invalid {
            path: path.to_owned(),
            reason: format!("over {MAX_LOG_BYTES} bytes once decompressed; split the log"),
        });
    }
    Ok(text)
}

/// Adds the counts of `logs` to the registry's `stats/`, skipping logs already
/// ingested (by content) and, within a log, malformed lines (reported).
pub fn ingest(registry: &std::path::Path, logs: &[std::path::PathBuf]) -> Result<Vec<LogReport>, StatsError> {
    let counts_path = registry.join(COUNTS_FILE);
    let ingested_path = registry.join(INGESTED_FILE);
    let mut counts: Counts = read_or_default(&counts_path)?;
    let mut ingested: Ingested = read_or_default(&ingested_path)?;
    let mut reports = Vec::new();
    for path in logs {
        let bytes = read_log(path)?;
        let sha256 = trellis_schema::Sha256::of(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        if ingested.logs.iter().any(|l| l.sha256 == sha256) {
            reports.push(LogReport {
                path: path.clone(),
                format: None,
                already_ingested: true,
                requests: 0,
                malformed: Vec::new(),
            });
            continue;
        }
        let parsed = parse_log(&text);
        counts.add(&parsed.counts);
        ingested.logs.push(IngestedLog {
            sha256,
            name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            requests: parsed.requests,
            malformed: parsed.malformed.len(),
        });
        reports.push(LogReport {
            path: path.clone(),
            format: parsed.format,
            already_ingested: false,
            requests: parsed.requests,
            malformed: parsed.malformed,
        });
    }
    if let Some(dir) = counts_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| StatsError::Read { path: dir.to_owned(), source })?;
    }
    trellis_client::fs::write_atomic(&counts_path, &pretty(&counts))?;
    trellis_client::fs::write_atomic(&ingested_path, &pretty(&ingested))?;
    Ok(reports)
}

/// Pretty JSON of a stats file (maps, strings and integers: cannot fail).
fn pretty<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn read_or_default<T: serde::de::DeserializeOwned + Default>(path: &std::path::Path) -> Result<T, StatsError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StatsError::Invalid { path: path.to_owned(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(StatsError::Read { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "58a651fcd3c2d81213fff18cd421d16192211297d5b8f331bcfa1277382c0c08";

    fn clock() -> PluginId {
        "acme.clock".parse().unwrap()
    }

    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn counts_packages_deltas_and_update_checks_from_a_combined_log_and_reports_garbage() {
        let log = format!(
            "1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /store/targets/plugins/acme/acme.clock/{HASH}.acme.clock-1.2.0.zip HTTP/1.1\" 200 2326 \"-\" \"trellis\"\n\
             1.2.3.4 - - [10/Oct/2026:23:59:59 -0100] \"GET /targets/plugins/acme/acme.clock/{HASH}.acme.clock-1.2.0.zip HTTP/1.1\" 200 2326 \"-\" \"trellis\"\n\
             1.2.3.4 - - [10/Oct/2026:13:55:37 +0000] \"GET /targets/deltas/acme.clock/{HASH}.1.1.0_1.2.0-beta.1.delta HTTP/1.1\" 200 99 \"-\" \"trellis\"\n\
             1.2.3.4 - - [10/Oct/2026:13:55:38 +0000] \"GET /metadata/timestamp.json HTTP/1.1\" 304 0 \"-\" \"trellis\"\n\
             1.2.3.4 - - [10/Oct/2026:13:55:39 +0000] \"GET /targets/plugins/acme/acme.clock/{HASH}.acme.clock-1.2.0.zip HTTP/1.1\" 404 0 \"-\" \"trellis\"\n\
             \u{0}\u{1}garbage line\n"
        );
        let parsed = parse_log(&log);
        assert_eq!(parsed.format, Some(LogFormat::Combined));
        assert_eq!(parsed.requests, 5);
        assert_eq!(parsed.malformed.len(), 1);
        assert_eq!(parsed.malformed[0].line, 6);
        let versions = &parsed.counts.downloads[&clock()];
        assert_eq!(versions["1.2.0"][&day("2026-10-10")], 1, "the 404 is not a download");
        assert_eq!(versions["1.2.0"][&day("2026-10-11")], 1, "23:59 at -0100 is the next day in UTC");
        assert_eq!(parsed.counts.deltas[&clock()]["1.2.0-beta.1"][&day("2026-10-10")], 1);
        assert_eq!(parsed.counts.update_checks[&day("2026-10-10")], 1, "a 304 is an update check");
        assert_eq!(parsed.counts.total(&clock(), None), 2);
    }

    #[test]
    fn reads_cloudfront_logs_by_their_fields_header() {
        let log = format!(
            "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status\n\
             2026-10-12\t01:02:03\tFRA2\t100\t1.2.3.4\tGET\td1.cloudfront.net\t/targets/plugins/acme/acme.clock/{HASH}.acme.clock-1.0.0.zip\t200\n\
             2026-10-12\t01:02:04\tFRA2\t100\t1.2.3.4\tGET\td1.cloudfront.net\t/metadata/timestamp.json\t200\n\
             2026-10-12\tbroken\n"
        );
        let parsed = parse_log(&log);
        assert_eq!(parsed.format, Some(LogFormat::CloudFront));
        assert_eq!(parsed.counts.downloads[&clock()]["1.0.0"][&day("2026-10-12")], 1);
        assert_eq!(parsed.counts.update_checks[&day("2026-10-12")], 1);
        assert_eq!(parsed.malformed.iter().map(|m| m.line).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn reads_cloudflare_logpush_json_with_any_timestamp_unit() {
        let path = format!("/targets/plugins/acme/acme.clock/{HASH}.acme.clock-1.0.0.zip");
        let log = [
            serde_json::json!({"ClientRequestPath": path, "ClientRequestMethod": "GET", "EdgeResponseStatus": 200, "EdgeStartTimestamp": "2026-10-13T10:00:00Z"}),
            serde_json::json!({"ClientRequestURI": path, "ClientRequestMethod": "GET", "EdgeResponseStatus": 200, "EdgeStartTimestamp": 1_791_900_000_000_000_000_i64}),
            serde_json::json!({"ClientRequestPath": path, "ClientRequestMethod": "HEAD", "EdgeResponseStatus": 200, "EdgeStartTimestamp": 1_791_900_000}),
        ]
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("\n")
            + "\n{\"half\": ";
        let parsed = parse_log(&log);
        assert_eq!(parsed.format, Some(LogFormat::CloudflareJson));
        assert_eq!(parsed.requests, 3);
        assert_eq!(parsed.counts.total(&clock(), None), 2, "a HEAD is not a download");
        assert_eq!(parsed.malformed.len(), 1);
    }

    #[test]
    fn a_log_of_garbage_is_all_reported_and_counts_nothing() {
        let parsed = parse_log("hello\nworld\n");
        assert_eq!(parsed.format, None);
        assert_eq!(parsed.malformed.len(), 2);
        assert_eq!(parsed.counts, Counts::default());
    }

    #[test]
    fn ingesting_a_log_twice_counts_it_once() {
        let registry = tempfile::tempdir().unwrap();
        let log = registry.path().join("access.log");
        std::fs::write(
            &log,
            format!(
                "1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /targets/plugins/acme/acme.clock/{HASH}.acme.clock-1.2.0.zip HTTP/1.1\" 200 1 \"-\" \"t\"\nnot a log line\n"
            ),
        )
        .unwrap();
        let first = ingest(registry.path(), std::slice::from_ref(&log)).unwrap();
        assert_eq!((first[0].requests, first[0].malformed.len(), first[0].already_ingested), (1, 1, false));
        let second = ingest(registry.path(), &[log]).unwrap();
        assert!(second[0].already_ingested);
        let counts: Counts =
            serde_json::from_slice(&std::fs::read(registry.path().join(COUNTS_FILE)).unwrap()).unwrap();
        assert_eq!(counts.total(&clock(), None), 1);
        let ingested: Ingested =
            serde_json::from_slice(&std::fs::read(registry.path().join(INGESTED_FILE)).unwrap()).unwrap();
        assert_eq!(ingested.logs.len(), 1);
    }

    fn counts_of(days: &[(&str, &str, u64)], deltas: &[(&str, &str, u64)]) -> Counts {
        let mut counts = Counts::default();
        for (map, rows) in [(&mut counts.downloads, days), (&mut counts.deltas, deltas)] {
            for (id, date, n) in rows {
                *map.entry(id.parse().unwrap())
                    .or_default()
                    .entry("1.0.0".into())
                    .or_default()
                    .entry(day(date))
                    .or_default() += n;
            }
        }
        counts
    }

    #[test]
    fn figures_count_totals_recent_days_and_rank_trending_by_growth_then_volume_then_id() {
        let today = day("2026-11-30");
        let counts = counts_of(
            &[
                // steady: 21 a week before and in the window, no growth.
                ("acme.steady", "2026-11-10", 63),
                ("acme.steady", "2026-11-28", 21),
                // old: outside every window.
                ("acme.old", "2026-01-01", 1000),
                // new and equal: same growth and volume, ordered by id.
                ("acme.zeta", "2026-11-29", 10),
                ("acme.beta", "2026-11-29", 10),
                // bigger: same growth as 2× the volume ranks first among equals.
                ("acme.bigger", "2026-11-29", 20),
                ("acme.bigger", "2026-11-10", 3),
                // too few to trend.
                ("acme.tiny", "2026-11-30", 4),
                // future days count in the total only.
                ("acme.future", "2026-12-05", 50),
            ],
            &[("acme.zeta", "2026-11-01", 7), ("acme.beta", "2026-10-31", 7)],
        );
        let figures = figures(&counts, today);
        let id = |s: &str| -> PluginId { s.parse().unwrap() };
        assert_eq!(figures.of(&id("acme.steady")), Downloads { total: 84, recent: 84 });
        assert_eq!(figures.of(&id("acme.old")), Downloads { total: 1000, recent: 0 });
        // 2026-11-01 is the 30th day back (today included); 2026-10-31 is not.
        assert_eq!(figures.of(&id("acme.zeta")), Downloads { total: 17, recent: 17 });
        assert_eq!(figures.of(&id("acme.beta")), Downloads { total: 17, recent: 10 });
        assert_eq!(figures.of(&id("acme.future")), Downloads { total: 50, recent: 0 });
        assert_eq!(figures.of(&id("acme.none")), Downloads::default());
        // zeta's delta on 11-01 and beta's on 10-31 are in neither window (baseline
        // starts 2026-11-03), so they tie: growth 10·3/3 = 10. bigger: 20·3/6 = 10
        // too, with more downloads.
        assert_eq!(figures.trending, [id("acme.bigger"), id("acme.beta"), id("acme.zeta")]);
    }

    #[test]
    fn reads_client_telemetry_into_outcome_counts_and_reports_other_schema_versions() {
        let text = concat!(
            r#"{"schema_version":1,"time":"2026-12-01T18:00:00Z","client_version":"0.1.0","operation":"install","outcome":"success","plugin":"acme.clock","version":"1.0.0"}"#,
            "\n",
            r#"{"schema_version":1,"time":"2026-12-01T19:00:00Z","client_version":"0.1.0","operation":"install","outcome":"success","plugin":"acme.clock","version":"1.0.0"}"#,
            "\n",
            r#"{"schema_version":1,"time":"2026-12-02T00:30:00Z","client_version":"0.1.0","operation":"update","outcome":"rolled_back","plugin":"acme.clock","version":"1.1.0","from_version":"1.0.0"}"#,
            "\n",
            r#"{"schema_version":1,"time":"2026-12-02T00:31:00Z","client_version":"0.1.0","operation":"update","outcome":"failure","failure_class":"network"}"#,
            "\n",
            r#"{"schema_version":2,"time":"2026-12-02T00:31:00Z","client_version":"9.0.0","operation":"install","outcome":"success","plugin":"acme.clock"}"#,
            "\n",
            "GET /garbage\n",
        );
        let parsed = parse_log(text);
        assert_eq!(parsed.format, Some(LogFormat::Telemetry));
        assert_eq!(parsed.requests, 4);
        let lines: Vec<usize> = parsed.malformed.iter().map(|m| m.line).collect();
        assert_eq!(lines, [5, 6]);
        assert!(parsed.malformed[0].reason.contains("schema version 2"), "{:?}", parsed.malformed);
        let outcomes = &parsed.counts.outcomes[&clock()];
        assert_eq!(outcomes["install:success"], BTreeMap::from([(day("2026-12-01"), 2)]));
        assert_eq!(outcomes["update:rolled_back"], BTreeMap::from([(day("2026-12-02"), 1)]));
        assert_eq!(outcomes.len(), 2, "the failure naming no plugin is read, not counted");
        assert!(parsed.counts.downloads.is_empty());
        let mut twice = parsed.counts.clone();
        twice.add(&parsed.counts);
        assert_eq!(twice.outcomes[&clock()]["install:success"][&day("2026-12-01")], 4);
    }
}
