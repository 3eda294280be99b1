//! The blocklist: the rapid-response kill list, signed by the `security` role.
//!
//! An entry names a plugin id and optionally a version range or a package hash, with a
//! reason and a severity. Clients refuse to install what it names, and disable
//! installed copies through the host's hooks.

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
    pub fn covers(&self, id: &PluginId, version: &semver::Version, sha256: Option<&Sha256>) -> bool {
        &self.id == id
            && self.versions.as_ref().is_none_or(|req| req.matches(version))
            && self.sha256.as_ref().is_none_or(|blocked| sha256 == Some(blocked))
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
}
