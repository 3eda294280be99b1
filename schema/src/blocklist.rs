//! The blocklist: the rapid-response kill list, signed by the `security` role.
//!
//! An entry names a plugin id and optionally a version range or a package hash, with a
//! reason and a severity. Clients refuse to install what it names, and disable
//! installed copies through the host's hooks.
//!
//! **Version ranges match pre-releases.** `semver::VersionReq::matches` leaves
//! pre-releases out unless a comparator names one of the same `major.minor.patch`
//! (cargo's rule for choosing versions); for a kill list that would let
//! `--versions '*'` or `'>=1.0.0'` miss `1.2.0-rc.1`. Here every comparator is an
//! interval of the semver order ([`versions_cover`]): a full version is a point of the
//! order (`>=1.0.0` starts at `1.0.0`, so `1.0.0-rc.1` is below it; `<2.0.0` ends at
//! `2.0.0`, so `2.0.0-rc.1` is inside), `=1.2` and `1.2.*` stand for their whole line
//! with its pre-releases (`1.2.0-0` up to `1.3.0-0`), and `^` (also the bare `1.2`),
//! `~` and wildcards end before the pre-releases of the next line (`^1.2.3`: up to
//! `2.0.0-0`).

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::id::PluginId;

/// How bad the blocked release is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational: warn, still refuse new installs.
    Low,
    /// Serious bug or policy violation.
    Medium,
    /// Security vulnerability.
    High,
    /// Malware: disable everywhere now.
    Critical,
}

/// One blocklist entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct BlockEntry {
    /// The plugin.
    pub id: PluginId,
    /// Versions blocked; absent means every version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub versions: Option<semver::VersionReq>,
    /// A specific package hash, when only one build is bad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    /// Why, shown to users.
    pub reason: String,
    /// Severity.
    pub severity: Severity,
    /// Link to an advisory (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
    /// When the entry was added (RFC 3339).
    pub added: String,
}

/// The blocklist document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Blocklist {
    /// Entries.
    pub entries: Vec<BlockEntry>,
}

impl BlockEntry {
    /// Whether this entry covers the release `id version` with package `sha256`.
    ///
    /// An entry with a hash covers only a release whose package digest is known and
    /// equal; callers pass the digest they have (the index doc's, or the one recorded
    /// when the release was installed).
    pub fn covers(&self, id: &PluginId, version: &semver::Version, sha256: Option<&Sha256>) -> bool {
        &self.id == id
            && self.versions.as_ref().is_none_or(|req| versions_cover(req, version))
            && self.sha256.as_ref().is_none_or(|blocked| sha256 == Some(blocked))
    }
}

/// Whether `version` lies in every comparator of `req`, each read as an interval of
/// the semver order, pre-releases included (see the module docs).
pub fn versions_cover(req: &semver::VersionReq, version: &semver::Version) -> bool {
    req.comparators.iter().all(|c| comparator_covers(c, version))
}

/// `major.minor.patch-0`: the first version of a line.
fn floor(major: u64, minor: u64, patch: u64) -> semver::Version {
    let mut v = semver::Version::new(major, minor, patch);
    v.pre = semver::Prerelease::new("0").unwrap_or(semver::Prerelease::EMPTY);
    v
}

fn comparator_covers(c: &semver::Comparator, version: &semver::Version) -> bool {
    use semver::Op;
    use std::cmp::Ordering;
    let major = c.major;
    let minor = c.minor.unwrap_or(0);
    let patch = c.patch.unwrap_or(0);
    let point = || {
        let mut v = semver::Version::new(major, minor, patch);
        v.pre = c.pre.clone();
        v
    };
    // The first version after the line the comparator names at its own precision.
    let next_line = || match (c.minor, c.patch) {
        (Some(minor), Some(patch)) => floor(major, minor, patch.saturating_add(1)),
        (Some(minor), None) => floor(major, minor.saturating_add(1), 0),
        _ => floor(major.saturating_add(1), 0, 0),
    };
    // Compared without build metadata, as semver precedence says.
    let cmp = |other: &semver::Version| -> Ordering {
        (version.major, version.minor, version.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| version.pre.cmp(&other.pre))
    };
    let in_line = || cmp(&floor(major, minor, patch)) != Ordering::Less && cmp(&next_line()) == Ordering::Less;
    match c.op {
        Op::Exact | Op::Wildcard if c.patch.is_some() => cmp(&point()) == Ordering::Equal,
        Op::Exact | Op::Wildcard => in_line(),
        Op::Greater if c.patch.is_some() => cmp(&point()) == Ordering::Greater,
        Op::Greater => cmp(&next_line()) != Ordering::Less,
        Op::GreaterEq if c.patch.is_some() => cmp(&point()) != Ordering::Less,
        Op::GreaterEq => cmp(&floor(major, minor, patch)) != Ordering::Less,
        Op::Less if c.patch.is_some() => cmp(&point()) == Ordering::Less,
        Op::Less => cmp(&floor(major, minor, patch)) == Ordering::Less,
        Op::LessEq if c.patch.is_some() => cmp(&point()) != Ordering::Greater,
        Op::LessEq => cmp(&next_line()) == Ordering::Less,
        Op::Tilde => {
            let end = if c.minor.is_some() {
                floor(major, minor.saturating_add(1), 0)
            } else {
                floor(major.saturating_add(1), 0, 0)
            };
            cmp(&point()) != Ordering::Less && cmp(&end) == Ordering::Less
        }
        Op::Caret => {
            let end = match (major, c.minor, c.patch) {
                (0, Some(0), Some(patch)) => floor(0, 0, patch.saturating_add(1)),
                (0, Some(minor), _) => floor(0, minor.saturating_add(1), 0),
                (major, _, _) => floor(major.saturating_add(1), 0, 0),
            };
            cmp(&point()) != Ordering::Less && cmp(&end) == Ordering::Less
        }
        // `semver` may grow operators; for a kill list an unknown one covers everything
        // the id names rather than nothing.
        _ => true,
    }
}

impl Blocklist {
    /// The most severe entry covering the release, if any.
    pub fn find(&self, id: &PluginId, version: &semver::Version, sha256: Option<&Sha256>) -> Option<&BlockEntry> {
        self.entries.iter().filter(|e| e.covers(id, version, sha256)).max_by_key(|e| e.severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(versions: Option<&str>, sha: Option<Sha256>, severity: Severity) -> BlockEntry {
        BlockEntry {
            id: "acme.clock".parse().unwrap(),
            versions: versions.map(|v| v.parse().unwrap()),
            sha256: sha,
            reason: "r".into(),
            severity,
            advisory: None,
            added: "2026-11-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn matches_by_id_range_and_hash() {
        let id: PluginId = "acme.clock".parse().unwrap();
        let v1: semver::Version = "1.0.0".parse().unwrap();
        let v2: semver::Version = "2.0.0".parse().unwrap();
        let bad = Sha256::of(b"bad");
        let list = Blocklist {
            entries: vec![entry(Some("<2"), None, Severity::Medium), entry(None, Some(bad), Severity::Critical)],
        };
        assert_eq!(list.find(&id, &v1, None).map(|e| e.severity), Some(Severity::Medium));
        assert!(list.find(&id, &v2, Some(&Sha256::of(b"good"))).is_none());
        assert_eq!(list.find(&id, &v1, Some(&bad)).map(|e| e.severity), Some(Severity::Critical));
        assert!(list.find(&"acme.other".parse().unwrap(), &v1, Some(&bad)).is_none());
    }

    fn covers(req: &str, version: &str) -> bool {
        versions_cover(&req.parse().unwrap(), &version.parse().unwrap())
    }

    #[test]
    fn ranges_cover_prereleases_by_semver_order() {
        for (req, version, expected) in [
            ("*", "1.2.0-rc.1", true),
            (">=1.0.0", "1.2.0-rc.1", true),
            (">=1.0.0", "1.0.0-rc.1", false),
            ("<2.0.0", "2.0.0-rc.1", true),
            ("<2.0.0", "2.0.0", false),
            ("^1.2", "1.5.0-beta.1", true),
            ("^1.2", "2.0.0-beta.1", false),
            ("^1.2.3", "1.2.3-rc.1", false),
            ("=1.2", "1.2.0-rc.1", true),
            ("1.2", "1.2.0-rc.1", false),
            ("1.2.*", "1.3.0-rc.1", false),
            ("=1.2.0-rc.1", "1.2.0-rc.1", true),
            ("=1.2.0", "1.2.0-rc.1", false),
            ("~1.2.3", "1.2.9-alpha", true),
            (">1.2", "1.3.0-alpha", true),
            ("<=1.2", "1.2.9-alpha", true),
            ("<=1.2", "1.3.0-alpha", false),
            (">=1.0.0, <1.5.0", "1.4.0-rc.1+build.7", true),
        ] {
            assert_eq!(covers(req, version), expected, "{req} vs {version}");
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_semver_on_release_versions(
            op in proptest::sample::select(vec!["", "=", ">", ">=", "<", "<=", "~", "^"]),
            major in 0u64..4, minor in proptest::option::of(0u64..4), patch in proptest::option::of(0u64..4),
            wildcard in proptest::bool::ANY,
            (a, b, c) in (0u64..5, 0u64..5, 0u64..5),
        ) {
            let req = match (minor, patch) {
                (Some(minor), Some(patch)) => format!("{op}{major}.{minor}.{patch}"),
                (Some(minor), None) if wildcard && op.is_empty() => format!("{major}.{minor}.*"),
                (Some(minor), None) => format!("{op}{major}.{minor}"),
                (None, _) if wildcard && op.is_empty() => format!("{major}.*"),
                (None, _) => format!("{op}{major}"),
            };
            let parsed: semver::VersionReq = req.parse().unwrap();
            let version = semver::Version::new(a, b, c);
            proptest::prop_assert_eq!(versions_cover(&parsed, &version), parsed.matches(&version), "{} vs {}", req, version);
        }

        #[test]
        fn covers_every_prerelease_semver_matches(
            req in proptest::sample::select(vec!["*", ">=1.0.0", "^1.2", "~1.2.3", "<2.0.0", "=1.2.0-rc.1", ">=1.2.0-beta.1"]),
            (a, b, c) in (0u64..3, 0u64..4, 0u64..4),
            pre in proptest::sample::select(vec!["alpha", "beta.1", "rc.1", "0"]),
        ) {
            let parsed: semver::VersionReq = req.parse().unwrap();
            let mut version = semver::Version::new(a, b, c);
            version.pre = semver::Prerelease::new(pre).unwrap();
            if parsed.matches(&version) {
                proptest::prop_assert!(versions_cover(&parsed, &version), "{} vs {}", req, version);
            }
        }
    }
}
