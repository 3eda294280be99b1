//! Sparse index documents: one per plugin, everything resolution needs.
//!
//! An index doc lists every release of one plugin with its version, channel,
//! dependencies, host requirement, platforms, yanked flag, permissions, the package
//! blob (path, SHA-256, length), the developer signature envelope, the digest of the
//! signed release manifest and the deltas that lead to it. Display data (long
//! descriptions, screenshots) lives in the package and in catalog docs, so the
//! documents a resolver downloads stay small.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::id::PluginId;
use crate::permission::Permission;
use crate::plugin::{Channel, Dependency, HostRequirement, Platform};

/// A file in the site, named by content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct BlobRef {
    /// Target path, relative to `targets/`.
    pub path: String,
    /// SHA-256 of the content.
    pub sha256: Sha256,
    /// Length in bytes.
    pub length: u64,
}

/// A delta package that turns release `from` into this release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct DeltaRef {
    /// The release the delta applies to.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub from: semver::Version,
    /// The delta blob.
    pub blob: BlobRef,
}

/// One release in an index doc.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct IndexRelease {
    /// Version.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// Channel.
    pub channel: Channel,
    /// Dependencies.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Host requirement.
    pub host: HostRequirement,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Withdrawn by its publisher or the operator: never chosen for a new install.
    #[serde(default)]
    pub yanked: bool,
    /// Permissions requested.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// The package.
    pub package: BlobRef,
    /// The developer's DSSE envelope.
    pub envelope: BlobRef,
    /// SHA-256 of the signed release manifest (the envelope's payload).
    pub manifest_sha256: Sha256,
    /// Total size of the files once extracted, for the free-space check.
    pub unpacked_size: u64,
    /// Deltas that lead to this release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaRef>,
    /// Oldest client that can install it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub min_client_version: Option<semver::Version>,
}

/// The index doc of one plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct IndexDoc {
    /// Plugin id.
    pub id: PluginId,
    /// Display name of the newest release.
    pub name: String,
    /// Releases, oldest first.
    pub releases: Vec<IndexRelease>,
}

impl IndexDoc {
    /// The release with exactly `version`.
    pub fn release(&self, version: &semver::Version) -> Option<&IndexRelease> {
        self.releases.iter().find(|r| &r.version == version)
    }
}
