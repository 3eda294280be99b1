//! Security advisories: the registry's OSV documents (`advisories/<ID>.json`) matched
//! against its releases, giving the signed [`Advisories`] document of the `security`
//! role.
//!
//! An advisory's `affected` entries are about a **plugin** (package ecosystem
//! [`PLUGIN_ECOSYSTEM`], name = the plugin id; ranges over plugin versions) or about a
//! **component** a plugin bundles (any other ecosystem, or a `purl`), matched against
//! the components of each release's SBOM ([`crate::sbom`]) by package URL without its
//! version (`pkg:npm/lodash`), and against the component's version. Ranges follow the
//! OSV schema: `SEMVER` and `ECOSYSTEM` events (`introduced`, `fixed`,
//! `last_affected`) evaluated in version order, plus explicit `versions`. `GIT` ranges
//! name commits, which a package does not record: they are skipped with a warning.
//!
//! Versions of components are compared by [`compare_versions`]: semver when both parse,
//! otherwise segment by segment (numbers numerically, the rest as text), which orders
//! the versions of npm, crates.io, PyPI (without epochs), Go, NuGet and most C
//! libraries correctly.
//!
//! Severity comes from `database_specific.severity` (GitHub's `LOW`, `MODERATE`,
//! `HIGH`, `CRITICAL`) of the advisory or of an affected entry, else from the highest
//! of its `severity[]` scores: a number, or a CVSS v2, v3.0/v3.1 or v4.0 vector scored
//! by the [`cvss`] crate (FIRST's rating bands: 9.0 critical, 7.0 high, 4.0 medium). A
//! vector that does not parse is a build warning and leaves the advisory unrated
//! unless another entry rates it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use trellis_schema::advisory::{Advisories, Advisory};
use trellis_schema::advisory::{AffectedPlugin, Component, Severity};
use trellis_schema::{PluginId, Sha256};

use crate::registry::RegistryError;
use crate::release::PluginInput;
use crate::sbom::SbomComponent;

/// The OSV ecosystem naming plugins of a Trellis registry.
pub const PLUGIN_ECOSYSTEM: &str = "Trellis";

/// The directory of the registry source tree holding OSV advisories.
pub const ADVISORIES_DIR: &str = "advisories";

/// Largest advisory file read (1 MiB).
pub const MAX_ADVISORY_BYTES: u64 = 1 << 20;

/// One OSV advisory, the members the builder uses (others are ignored, as the OSV
/// schema allows).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Osv {
    /// The id, equal to the file name without `.json`.
    pub id: String,
    /// When it was last modified.
    pub modified: String,
    /// When it was withdrawn: then it is not published.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line.
    #[serde(default)]
    pub summary: Option<String>,
    /// Longer text (the first line stands in for a missing summary).
    #[serde(default)]
    pub details: Option<String>,
    /// CVSS scores.
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// What it affects.
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    /// Links.
    #[serde(default)]
    pub references: Vec<OsvReference>,
    /// Database-specific data (`severity`).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A `severity` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct OsvSeverity {
    /// `CVSS_V3`, `CVSS_V4`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// A vector or a number.
    pub score: String,
}

/// An `affected` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct OsvAffected {
    /// The package.
    pub package: OsvPackage,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    /// Versions listed one by one.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Database-specific data (`severity`).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A package.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct OsvPackage {
    /// `Trellis` for a plugin; `npm`, `crates.io`, `PyPI`, ... for a component.
    #[serde(default)]
    pub ecosystem: String,
    /// The plugin id or the component's name.
    #[serde(default)]
    pub name: String,
    /// The component's package URL.
    #[serde(default)]
    pub purl: Option<String>,
}

/// A range.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct OsvRange {
    /// `SEMVER`, `ECOSYSTEM` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Events, each an object with one of `introduced`, `fixed`, `last_affected`,
    /// `limit`.
    pub events: Vec<BTreeMap<String, String>>,
}

/// A reference.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct OsvReference {
    /// `ADVISORY`, `WEB`, `REPORT`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The link.
    pub url: String,
}

/// The registry's advisories, as read from `advisories/`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdvisorySource {
    /// Every advisory, by id.
    pub advisories: Vec<Osv>,
    /// SHA-256 over the files (names and bytes, in name order): a build that indexes
    /// only some plugins uses it to see whether the advisories changed.
    pub digest: Sha256,
}

impl Default for AdvisorySource {
    /// No advisories (the digest [`load`] gives an empty directory).
    fn default() -> Self {
        Self { advisories: Vec::new(), digest: trellis_schema::digest::Hasher::new().finish() }
    }
}

/// Reads every `advisories/*.json` of the registry at `dir` (none: an empty source).
pub fn load(dir: &Path) -> Result<AdvisorySource, RegistryError> {
    let folder = dir.join(ADVISORIES_DIR);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(|source| RegistryError::Io { path: folder.clone(), source }))
            .collect::<Result<_, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(RegistryError::Io { path: folder, source }),
    };
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let mut hasher = trellis_schema::digest::Hasher::new();
    let mut advisories = Vec::with_capacity(files.len());
    for path in files {
        let parse_error = |reason: String| RegistryError::Parse { path: path.clone(), reason };
        let size = std::fs::metadata(&path).map_err(|source| RegistryError::Io { path: path.clone(), source })?.len();
        if size > MAX_ADVISORY_BYTES {
            return Err(parse_error(format!("{size} bytes; an advisory may be at most {MAX_ADVISORY_BYTES} bytes")));
        }
        let bytes = std::fs::read(&path).map_err(|source| RegistryError::Io { path: path.clone(), source })?;
        let osv: Osv =
            trellis_schema::json::from_slice(&bytes).map_err(|e| parse_error(format!("not an OSV advisory: {e}")))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if osv.id != stem {
            return Err(parse_error(format!("the advisory's id is {:?}; name the file {}.json", osv.id, osv.id)));
        }
        for affected in &osv.affected {
            if affected.package.ecosystem == PLUGIN_ECOSYSTEM {
                affected.package.name.parse::<PluginId>().map_err(|e| {
                    parse_error(format!("affected package {:?} is not a plugin id: {e}", affected.package.name))
                })?;
            } else if affected.package.purl.is_none() && purl_type(&affected.package.ecosystem).is_none() {
                return Err(parse_error(format!(
                    "affected package {:?}: ecosystem {:?} is neither {PLUGIN_ECOSYSTEM:?} nor one with a package URL type; give a purl",
                    affected.package.name, affected.package.ecosystem
                )));
            }
        }
        hasher.update(stem.as_bytes());
        hasher.update(&[0]);
        hasher.update(&bytes);
        advisories.push(osv);
    }
    Ok(AdvisorySource { advisories, digest: hasher.finish() })
}

/// The purl type of an OSV ecosystem.
fn purl_type(ecosystem: &str) -> Option<&'static str> {
    Some(match ecosystem {
        "npm" => "npm",
        "crates.io" => "cargo",
        "PyPI" => "pypi",
        "Go" => "golang",
        "Maven" => "maven",
        "NuGet" => "nuget",
        "RubyGems" => "gem",
        "Packagist" => "composer",
        "Pub" => "pub",
        "Hex" => "hex",
        "SwiftURL" => "swift",
        "GitHub Actions" => "github",
        _ => return None,
    })
}

/// `type/namespace/name` of a purl, without version, qualifiers or subpath, percent-
/// decoded and lower-cased: what two descriptions of one package share.
pub fn purl_key(purl: &str) -> Option<String> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    // The version follows the last `@` of the last segment (a namespace `@scope` is
    // percent-encoded, but be lenient with a literal one).
    let (path, last) = rest.rsplit_once('/')?;
    let name = last.split('@').next().unwrap_or(last);
    let key = format!("{path}/{name}").replace("%40", "@").replace("%2F", "/").replace("%2f", "/");
    Some(key.trim_matches('/').to_lowercase())
}

/// The purl key of an OSV package: its purl, or its ecosystem's purl type + name.
fn package_key(package: &OsvPackage) -> Option<String> {
    if let Some(purl) = &package.purl {
        return purl_key(purl);
    }
    let kind = purl_type(&package.ecosystem)?;
    let name = match kind {
        "maven" => package.name.replace(':', "/"),
        "pypi" => package.name.replace('_', "-"),
        _ => package.name.clone(),
    };
    Some(format!("{kind}/{name}").to_lowercase())
}

/// Compares two versions: by semver when both parse, otherwise segment by segment
/// (runs of digits numerically, other runs as text; a missing segment is lowest).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    if let (Ok(a), Ok(b)) = (semver::Version::parse(a), semver::Version::parse(b)) {
        return a.cmp_precedence(&b);
    }
    let segments = |s: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut current = String::new();
        for c in s.trim_start_matches('v').chars() {
            if c.is_ascii_alphanumeric() {
                if current.chars().next().is_some_and(|p| p.is_ascii_digit() != c.is_ascii_digit()) {
                    out.push(std::mem::take(&mut current));
                }
                current.push(c);
            } else if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    };
    let (a, b) = (segments(a), segments(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.parse::<u128>(), y.parse::<u128>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether `version` is in the OSV range (events evaluated in version order).
fn in_range(range: &OsvRange, version: &str) -> bool {
    let mut events: Vec<(&str, &str)> =
        range.events.iter().flat_map(|e| e.iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect();
    fn order(v: &str) -> Option<&str> {
        if v == "0" { None } else { Some(v) }
    }
    events.sort_by(|a, b| match (order(a.1), order(b.1)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_versions(x, y),
    });
    let mut affected = false;
    for (kind, at) in events {
        let cmp = if at == "0" { Ordering::Greater } else { compare_versions(version, at) };
        match (kind, cmp) {
            ("introduced", Ordering::Greater | Ordering::Equal) => affected = true,
            ("fixed" | "limit", Ordering::Greater | Ordering::Equal) => affected = false,
            ("last_affected", Ordering::Greater) => affected = false,
            _ => {}
        }
    }
    affected
}

/// The intervals of each range of `affected` (`>=1.0.0, <1.2.3`: each `introduced`
/// starts one), and the listed versions (`=1.0.1`).
fn range_texts(affected: &OsvAffected) -> Vec<String> {
    // `*` stands for `introduced: 0` only when nothing bounds the interval.
    fn finish(interval: &mut Vec<String>, out: &mut Vec<String>) {
        if interval.len() > 1 && interval[0] == "*" {
            interval.remove(0);
        }
        if !interval.is_empty() {
            out.push(interval.join(", "));
        }
        interval.clear();
    }
    let mut out = Vec::new();
    for range in affected.ranges.iter().filter(|r| r.kind != "GIT") {
        let mut interval: Vec<String> = Vec::new();
        for event in &range.events {
            for (kind, at) in event {
                match kind.as_str() {
                    "introduced" => {
                        finish(&mut interval, &mut out);
                        interval.push(if at == "0" { "*".to_owned() } else { format!(">={at}") });
                    }
                    "fixed" | "limit" => interval.push(format!("<{at}")),
                    "last_affected" => interval.push(format!("<={at}")),
                    _ => {}
                }
            }
        }
        finish(&mut interval, &mut out);
    }
    out.extend(affected.versions.iter().map(|v| format!("={v}")));
    out
}

fn version_affected(affected: &OsvAffected, version: &str) -> bool {
    affected.versions.iter().any(|v| v == version)
        || affected.ranges.iter().filter(|r| r.kind != "GIT").any(|r| in_range(r, version))
}

fn severity_of(osv: &Osv, warnings: &mut Warnings) -> Option<Severity> {
    let word = |value: &Option<serde_json::Value>| -> Option<Severity> {
        let text = value.as_ref()?.get("severity")?.as_str()?.to_ascii_uppercase();
        Some(match text.as_str() {
            "LOW" => Severity::Low,
            "MODERATE" | "MEDIUM" => Severity::Medium,
            "HIGH" => Severity::High,
            "CRITICAL" => Severity::Critical,
            _ => return None,
        })
    };
    let stated =
        word(&osv.database_specific).or_else(|| osv.affected.iter().filter_map(|a| word(&a.database_specific)).max());
    if stated.is_some() {
        return stated;
    }
    let mut scored = None;
    for entry in &osv.severity {
        match score_of(entry) {
            Ok(score) => scored = scored.max(Some(band(score))),
            Err(why) => warnings.push(format!("advisory {}: {why}; not rated by it", osv.id)),
        }
    }
    scored
}

/// The base score of one OSV `severity` entry: a number, or a CVSS vector of its type.
fn score_of(entry: &OsvSeverity) -> Result<f64, String> {
    use std::str::FromStr as _;
    let text = entry.score.trim();
    if let Ok(number) = text.parse::<f64>() {
        return match number {
            n if (0.0..=10.0).contains(&n) => Ok(n),
            n => Err(format!("{} score {n} is not between 0 and 10", entry.kind)),
        };
    }
    let scored = match entry.kind.as_str() {
        // OSV's CVSS v2 vectors carry no `CVSS:2.0/` prefix.
        "CVSS_V2" => cvss::v2::Vector::from_str(text).map(|v| v.score().value()),
        _ => cvss::Cvss::from_str(text).map(|v| v.score()),
    };
    scored.map_err(|e| format!("{} vector {text:?} does not parse: {e}", entry.kind))
}

/// FIRST's qualitative rating of a CVSS base score (v3 and v4 share it); a score of
/// 0.0 ("none") still names an advisory, rated low.
fn band(score: f64) -> Severity {
    match score {
        s if s >= 9.0 => Severity::Critical,
        s if s >= 7.0 => Severity::High,
        s if s >= 4.0 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// What [`match_plugins`] could not evaluate: shown by `build` as warnings.
pub type Warnings = Vec<String>;

/// The advisories of `source` that affect releases of `plugins`, each with only its
/// entries for those plugins; advisories affecting none are left out.
pub fn match_plugins(source: &AdvisorySource, plugins: &[PluginInput]) -> (Vec<Advisory>, Warnings) {
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    for osv in source.advisories.iter().filter(|o| o.withdrawn.is_none()) {
        if osv.affected.iter().flat_map(|a| &a.ranges).any(|r| r.kind == "GIT") {
            warnings
                .push(format!("advisory {}: GIT ranges name commits, which packages do not record; skipped", osv.id));
        }
        let mut affected = Vec::new();
        for entry in &osv.affected {
            if entry.package.ecosystem == PLUGIN_ECOSYSTEM {
                let Some(plugin) = plugins.iter().find(|p| p.id.as_str() == entry.package.name) else { continue };
                let releases: Vec<semver::Version> = plugin
                    .releases
                    .iter()
                    .map(|r| &r.manifest.version)
                    .filter(|v| version_affected(entry, &v.to_string()))
                    .cloned()
                    .collect();
                if !releases.is_empty() {
                    affected.push(affected_plugin(plugin, None, range_texts(entry), releases));
                }
                continue;
            }
            let Some(key) = package_key(&entry.package) else { continue };
            for plugin in plugins {
                let mut releases = Vec::new();
                let mut versions = Vec::new();
                let mut purl = None;
                let mut name = None;
                for release in &plugin.releases {
                    let hit = release.components.iter().find(|c: &&SbomComponent| {
                        c.purl.as_deref().and_then(purl_key).as_deref() == Some(key.as_str())
                            && c.version.as_deref().is_some_and(|v| version_affected(entry, v))
                    });
                    if let Some(c) = hit {
                        releases.push(release.manifest.version.clone());
                        versions.extend(c.version.clone());
                        purl = c.purl.as_deref().and_then(|p| p.split('@').next()).map(str::to_owned);
                        name = Some(c.name.clone());
                    }
                }
                if let Some(name) = name {
                    versions.sort_by(|a, b| compare_versions(a, b));
                    versions.dedup();
                    let component = Component { name, purl, versions };
                    affected.push(affected_plugin(plugin, Some(component), range_texts(entry), releases));
                }
            }
        }
        if affected.is_empty() {
            continue;
        }
        let summary = osv
            .summary
            .clone()
            .or_else(|| osv.details.as_deref().and_then(|d| d.lines().next()).map(str::to_owned))
            .unwrap_or_else(|| osv.id.clone());
        let url = ["ADVISORY", "WEB"]
            .iter()
            .find_map(|kind| osv.references.iter().find(|r| r.kind == *kind))
            .map(|r| r.url.clone());
        out.push(Advisory {
            id: osv.id.clone(),
            aliases: osv.aliases.clone(),
            summary,
            severity: severity_of(osv, &mut warnings),
            url,
            modified: osv.modified.clone(),
            affected,
        });
    }
    (out, warnings)
}

fn affected_plugin(
    plugin: &PluginInput,
    component: Option<Component>,
    ranges: Vec<String>,
    mut releases: Vec<semver::Version>,
) -> AffectedPlugin {
    releases.sort();
    let newest_affected = releases.last().cloned();
    let above: Vec<&semver::Version> = plugin
        .releases
        .iter()
        .map(|r| &r.manifest.version)
        .filter(|v| newest_affected.as_ref().is_some_and(|n| *v > n) && !releases.contains(v))
        .collect();
    let fixed = above.iter().filter(|v| v.pre.is_empty()).min().or_else(|| above.iter().min()).map(|v| (*v).clone());
    AffectedPlugin { plugin: plugin.id.clone(), component, ranges, releases, fixed }
}

/// The document to publish: `fresh` (the matches for the plugins a build loaded) over
/// `previous` (the published document) for every other plugin.
pub fn merge(previous: Advisories, fresh: Vec<Advisory>, loaded: &[PluginId]) -> Advisories {
    let mut by_id: BTreeMap<String, Advisory> = BTreeMap::new();
    for mut advisory in previous.advisories {
        advisory.affected.retain(|a| !loaded.contains(&a.plugin));
        if !advisory.affected.is_empty() {
            by_id.insert(advisory.id.clone(), advisory);
        }
    }
    for advisory in fresh {
        match by_id.get_mut(&advisory.id) {
            Some(kept) => {
                kept.affected.extend(advisory.affected);
                kept.affected.sort_by(|a, b| a.plugin.cmp(&b.plugin).then(a.component.cmp(&b.component)));
            }
            None => {
                by_id.insert(advisory.id.clone(), advisory);
            }
        }
    }
    Advisories { advisories: by_id.into_values().collect(), source_sha256: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The severity of an advisory whose only rating is `severity` (OSV entries), and
    /// the warnings it gave.
    fn rated(severity: serde_json::Value) -> (Option<Severity>, Warnings) {
        let osv: Osv = serde_json::from_value(serde_json::json!({
            "id": "GHSA-test", "modified": "2026-12-01T00:00:00Z", "severity": severity, "affected": []
        }))
        .unwrap();
        let mut warnings = Vec::new();
        (severity_of(&osv, &mut warnings), warnings)
    }

    #[test]
    fn cvss_vectors_of_each_version_are_scored_into_firsts_bands() {
        for (kind, vector, expected) in [
            // 9.8: the classic unauthenticated remote code execution.
            ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Severity::Critical),
            // 6.1: reflected XSS.
            ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", Severity::Medium),
            ("CVSS_V3", "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", Severity::Low),
            // OSV's v2 vectors have no prefix; 7.5.
            ("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P", Severity::High),
            // 9.3.
            ("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Severity::Critical),
            ("CVSS_V3", "7.2", Severity::High),
        ] {
            let (severity, warnings) = rated(serde_json::json!([{"type": kind, "score": vector}]));
            assert_eq!(severity, Some(expected), "{vector}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        // The highest entry counts; one that does not parse is a warning, not a rating.
        let (severity, warnings) = rated(serde_json::json!([
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:X/AC:L"},
            {"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
            {"type": "CVSS_V3", "score": "11"}
        ]));
        assert_eq!(severity, Some(Severity::High));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("advisory GHSA-test: CVSS_V3 vector \"CVSS:3.1/AV:X/AC:L\" does not parse"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("CVSS_V3 score 11 is not between 0 and 10"), "{warnings:?}");
        assert_eq!(rated(serde_json::json!([{"type": "CVSS_V3", "score": "garbage"}])).0, None);
    }

    #[test]
    fn a_stated_severity_wins_over_a_vector() {
        let osv: Osv = serde_json::from_value(serde_json::json!({
            "id": "GHSA-test", "modified": "2026-12-01T00:00:00Z", "affected": [],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "database_specific": {"severity": "MODERATE"}
        }))
        .unwrap();
        assert_eq!(severity_of(&osv, &mut Vec::new()), Some(Severity::Medium));
    }

    fn range(events: &[(&str, &str)]) -> OsvRange {
        OsvRange {
            kind: "SEMVER".into(),
            events: events.iter().map(|(k, v)| BTreeMap::from([((*k).to_owned(), (*v).to_owned())])).collect(),
        }
    }

    #[test]
    fn osv_ranges_follow_event_order() {
        let r = range(&[("introduced", "0"), ("fixed", "1.2.0"), ("introduced", "2.0.0"), ("last_affected", "2.1.0")]);
        for (version, expected) in [
            ("0.1.0", true),
            ("1.1.9", true),
            ("1.2.0", false),
            ("1.9.0", false),
            ("2.0.0", true),
            ("2.1.0", true),
            ("2.1.1", false),
        ] {
            assert_eq!(in_range(&r, version), expected, "{version}");
        }
        let affected = OsvAffected {
            package: OsvPackage { ecosystem: "npm".into(), name: "x".into(), purl: None },
            ranges: vec![r],
            versions: vec!["3.0.0".into()],
            database_specific: None,
        };
        assert_eq!(range_texts(&affected), ["<1.2.0", ">=2.0.0, <=2.1.0", "=3.0.0"]);
    }

    #[test]
    fn versions_compare_across_ecosystems() {
        assert_eq!(compare_versions("1.2.10", "1.2.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.2.11", "1.2.11"), Ordering::Equal);
        assert_eq!(compare_versions("1.0.0-rc.1", "1.0.0"), Ordering::Less);
        assert_eq!(compare_versions("2.0", "10.0"), Ordering::Less);
        assert_eq!(compare_versions("1.1.1k", "1.1.1w"), Ordering::Less);
        assert_eq!(compare_versions("v1.4", "1.4.1"), Ordering::Less);
    }

    #[test]
    fn purls_compare_without_version_and_encoding() {
        assert_eq!(purl_key("pkg:npm/%40angular/core@16.0.0?x=y").as_deref(), Some("npm/@angular/core"));
        assert_eq!(purl_key("pkg:npm/lodash@4.17.20").as_deref(), Some("npm/lodash"));
        let package = OsvPackage { ecosystem: "npm".into(), name: "@angular/core".into(), purl: None };
        assert_eq!(package_key(&package).as_deref(), Some("npm/@angular/core"));
        let maven = OsvPackage { ecosystem: "Maven".into(), name: "org.x:lib".into(), purl: None };
        assert_eq!(package_key(&maven), purl_key("pkg:maven/org.x/lib@1.0"));
        assert_eq!(purl_key("not a purl"), None);
    }
}
