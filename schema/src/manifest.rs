//! Release manifests: what a package contains, and the signed statement about it.
//!
//! Two documents:
//! - the **content manifest** (`trellis-manifest.json` at the root of the package),
//!   written by `pack`: the plugin id, version and every other file's path, size and
//!   SHA-256;
//! - the **release manifest**, the payload of the developer's DSSE envelope: the same
//!   file list plus the package's own SHA-256 and size, the permissions and the host
//!   requirement. It cannot live inside the package (it names the package's hash), so
//!   it travels beside it as `<package>.dsse`.
//!
//! Extraction checks the archive against the *signed* file list; lint and the builder
//! check that the content manifest says the same.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::id::PluginId;
use crate::permission::Permission;
use crate::plugin::{Channel, Dependency, HostRequirement, Platform};

/// Path of the content manifest inside a package.
pub const CONTENT_MANIFEST_PATH: &str = "trellis-manifest.json";

/// One file of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct FileEntry {
    /// Path inside the package, `/`-separated, passing the portable name policy.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Sha256,
}

/// `trellis-manifest.json`: every file of the package except itself, sorted by path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ContentManifest {
    /// Plugin id.
    pub plugin_id: PluginId,
    /// Version.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// Files, sorted by path.
    pub files: Vec<FileEntry>,
}

/// A package's identity: its SHA-256 and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct PackageDigest {
    /// SHA-256 of the ZIP.
    pub sha256: Sha256,
    /// Size of the ZIP in bytes.
    pub size: u64,
}

/// The payload of a developer signature: everything the client must be able to trust
/// about a release even if the registry's online keys are compromised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ReleaseManifest {
    /// Plugin id.
    pub plugin_id: PluginId,
    /// Version.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// The package this manifest vouches for.
    pub package: PackageDigest,
    /// Every file of the package except the content manifest, sorted by path.
    pub files: Vec<FileEntry>,
    /// Permissions requested.
    pub permissions: Vec<Permission>,
    /// Host requirement.
    pub host: HostRequirement,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Channel.
    pub channel: Channel,
    /// Dependencies.
    pub dependencies: Vec<Dependency>,
}

impl ReleaseManifest {
    /// Total size of the files once extracted.
    pub fn unpacked_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// `id version`, for messages.
    pub fn release_name(&self) -> String {
        format!("{} {}", self.plugin_id, self.version)
    }
}
