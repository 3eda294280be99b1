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
//! Extraction checks the archive against the *signed* file list and takes each file's
//! mode ([`FileEntry::executable`]) from it, never from ZIP attributes or a delta
//! header; lint and the builder check that the content manifest says the same.
//!
//! The signed manifest is the only authority for everything a user consents to and
//! the resolver relies on: the index doc repeats permissions, dependencies, channel,
//! host requirement and platforms for resolution, and the client refuses a release
//! whose index entry disagrees with its signed manifest
//! ([`ReleaseManifest::index_disagreement`]).
//!
//! # Format
//!
//! Both documents carry `format` ([`ManifestFormat`], currently
//! [`MANIFEST_FORMAT`]). A manifest of any other format, or without the field (the
//! format before file modes were signed), is refused with a message that says to
//! re-pack and re-sign: there is no compatibility path.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::id::PluginId;
use crate::index::IndexRelease;
use crate::permission::Permission;
use crate::plugin::{Channel, Dependency, HostRequirement, Platform};

/// Path of the content manifest inside a package.
pub const CONTENT_MANIFEST_PATH: &str = "trellis-manifest.json";

/// The manifest format this crate reads and writes: 2 added each file's mode
/// ([`FileEntry::executable`]); 1 (no `format` field) had none.
pub const MANIFEST_FORMAT: u32 = 2;

/// The `format` of a content or release manifest: always [`MANIFEST_FORMAT`] once
/// parsed (any other value, or a missing field, does not deserialize).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "json-schema", schemars(with = "u32"))]
#[serde(try_from = "Option<u32>", into = "u32")]
pub struct ManifestFormat(u32);

impl ManifestFormat {
    /// The format this crate writes.
    pub const CURRENT: Self = Self(MANIFEST_FORMAT);

    /// The format number.
    pub fn number(self) -> u32 {
        self.0
    }
}

impl Default for ManifestFormat {
    fn default() -> Self {
        Self::CURRENT
    }
}

impl From<ManifestFormat> for u32 {
    fn from(format: ManifestFormat) -> Self {
        format.0
    }
}

/// A manifest of a format this crate does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestFormatError {
    /// No `format` field: written before file modes were signed.
    #[error(
        "manifest has no format field (format 1, before file modes were signed); this client reads format {MANIFEST_FORMAT}: re-pack and re-sign the plugin with a current trellis-index"
    )]
    Missing,
    /// Another format number.
    #[error(
        "manifest format {0} is not supported; this client reads format {MANIFEST_FORMAT}: re-pack and re-sign the plugin with a trellis-index that writes format {MANIFEST_FORMAT}"
    )]
    Unsupported(u32),
}

impl TryFrom<Option<u32>> for ManifestFormat {
    type Error = ManifestFormatError;

    fn try_from(value: Option<u32>) -> Result<Self, Self::Error> {
        match value {
            Some(MANIFEST_FORMAT) => Ok(Self::CURRENT),
            Some(other) => Err(ManifestFormatError::Unsupported(other)),
            None => Err(ManifestFormatError::Missing),
        }
    }
}

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
    /// Whether the file is installed executable (Unix mode 0755 rather than 0644;
    /// ignored on Windows). Extraction and delta application take the mode from here
    /// only. Always written; absent reads as `false` (never executable), so that a
    /// manifest of format 1 gets to the clear "re-pack" refusal of its missing `format`.
    #[serde(default)]
    pub executable: bool,
}

/// `trellis-manifest.json`: every file of the package except itself, sorted by path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ContentManifest {
    /// Manifest format ([`MANIFEST_FORMAT`]).
    pub format: ManifestFormat,
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
    /// Manifest format ([`MANIFEST_FORMAT`]).
    pub format: ManifestFormat,
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

    /// The first field on which an index doc's entry for this release says something
    /// else than the developer signed: permissions, dependencies, channel, host
    /// requirement or platforms (in that order). The version is not compared (the
    /// caller matched the entry by it); blobs are compared by the caller against the
    /// envelope and package digests.
    pub fn index_disagreement(&self, entry: &IndexRelease) -> Option<Disagreement> {
        fn list<T: Serialize>(items: &[T]) -> String {
            let words: Vec<String> = items.iter().map(|item| plain(item)).collect();
            format!("[{}]", words.join(", "))
        }
        fn plain<T: Serialize>(item: &T) -> String {
            match serde_json::to_value(item) {
                Ok(serde_json::Value::String(text)) => text,
                Ok(value) => value.to_string(),
                Err(_) => String::from("?"),
            }
        }
        let field = |field: &'static str, index: String, signed: String| Some(Disagreement { field, index, signed });
        if !same_set(&entry.permissions, &self.permissions) {
            let keys = |p: &[Permission]| format!("[{}]", p.iter().map(Permission::key).collect::<Vec<_>>().join(", "));
            return field("permissions", keys(&entry.permissions), keys(&self.permissions));
        }
        if !same_set(&entry.dependencies, &self.dependencies) {
            let deps = |d: &[Dependency]| {
                format!(
                    "[{}]",
                    d.iter().map(|d| format!("{} {}", d.id, d.version_requirement)).collect::<Vec<_>>().join(", ")
                )
            };
            return field("dependencies", deps(&entry.dependencies), deps(&self.dependencies));
        }
        if entry.channel != self.channel {
            return field("channel", plain(&entry.channel), plain(&self.channel));
        }
        if entry.host != self.host {
            let host = |h: &HostRequirement| format!("{} {}", h.id, h.api_version_requirement);
            return field("host requirement", host(&entry.host), host(&self.host));
        }
        if !same_set(&entry.platforms, &self.platforms) {
            return field("platforms", list(&entry.platforms), list(&self.platforms));
        }
        None
    }
}

/// Whether two lists hold the same items, in any order, and are as long (equal as sets;
/// a repeated item on one side and another on the other side is not told apart).
fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// A field on which an index doc's entry and the signed manifest disagree, with both
/// values in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// `permissions`, `dependencies`, `channel`, `host requirement` or `platforms`.
    pub field: &'static str,
    /// What the index doc lists.
    pub index: String,
    /// What the developer signed.
    pub signed: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ReleaseManifest {
        serde_json::from_value(serde_json::json!({
            "format": MANIFEST_FORMAT,
            "plugin_id": "acme.clock",
            "version": "1.1.0",
            "package": {"sha256": Sha256::of(b"p").to_hex(), "size": 1},
            "files": [{"path": "bin/any/clock", "size": 1, "sha256": Sha256::of(b"x").to_hex(), "executable": true}],
            "permissions": [{"type": "network", "scope": "internet", "reason": "sync"}],
            "host": {"id": "demo-host", "api_version_requirement": "^1"},
            "platforms": ["any"],
            "channel": "stable",
            "dependencies": [{"id": "acme.base", "version_requirement": "^1"}],
        }))
        .unwrap()
    }

    fn entry(manifest: &ReleaseManifest) -> IndexRelease {
        let blob = serde_json::json!({"path": "x", "sha256": Sha256::of(b"x").to_hex(), "length": 1});
        serde_json::from_value(serde_json::json!({
            "version": manifest.version,
            "channel": manifest.channel,
            "dependencies": manifest.dependencies,
            "host": manifest.host,
            "platforms": manifest.platforms,
            "permissions": manifest.permissions,
            "package": blob,
            "envelope": blob,
            "manifest_sha256": Sha256::of(b"m").to_hex(),
            "unpacked_size": 1,
        }))
        .unwrap()
    }

    #[test]
    fn refuses_a_manifest_without_format_or_of_another_format() {
        let mut value = serde_json::to_value(manifest()).unwrap();
        assert_eq!(value["format"], MANIFEST_FORMAT);
        value.as_object_mut().unwrap().remove("format");
        let error = serde_json::from_value::<ReleaseManifest>(value.clone()).unwrap_err().to_string();
        assert!(error.contains("no format field") && error.contains("re-pack"), "{error}");
        value["format"] = 3.into();
        let error = serde_json::from_value::<ReleaseManifest>(value).unwrap_err().to_string();
        assert!(error.contains("manifest format 3 is not supported") && error.contains("re-pack"), "{error}");
    }

    #[test]
    fn file_modes_are_part_of_the_signed_file_list() {
        let mut value = serde_json::to_value(manifest()).unwrap();
        assert_eq!(value["files"][0]["executable"], true);
        value["files"][0].as_object_mut().unwrap().remove("executable");
        let parsed: ReleaseManifest = serde_json::from_value(value).unwrap();
        assert!(!parsed.files[0].executable, "a missing mode is never executable");
    }

    #[test]
    fn a_format_1_manifest_in_field_order_is_refused_for_its_format() {
        // As `pack` wrote it before modes were signed: no `format`, no `executable`.
        let old = br#"{"plugin_id":"acme.clock","version":"1.0.0","files":[{"path":"LICENSE","size":1,"sha256":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}]}"#;
        let error = serde_json::from_slice::<ContentManifest>(old).unwrap_err().to_string();
        assert!(error.contains("no format field") && error.contains("re-pack"), "{error}");
    }

    #[test]
    fn an_entry_derived_from_the_manifest_agrees_with_it() {
        let signed = manifest();
        assert_eq!(signed.index_disagreement(&entry(&signed)), None);
    }

    #[test]
    fn names_the_field_and_both_values_of_a_disagreement() {
        let signed = manifest();
        type Case = (&'static str, fn(&mut IndexRelease), &'static str, &'static str);
        let cases: [Case; 5] = [
            ("permissions", |e| e.permissions.clear(), "[]", "[network:internet]"),
            ("dependencies", |e| e.dependencies.clear(), "[]", "[acme.base ^1]"),
            ("channel", |e| e.channel = Channel::Beta, "beta", "stable"),
            (
                "host requirement",
                |e| e.host.api_version_requirement = "^2".parse().unwrap(),
                "demo-host ^2",
                "demo-host ^1",
            ),
            ("platforms", |e| e.platforms = vec![Platform::LinuxX86_64], "[linux-x86_64]", "[any]"),
        ];
        for (field, change, index, signed_value) in cases {
            let mut changed = entry(&signed);
            change(&mut changed);
            let found = signed.index_disagreement(&changed).unwrap();
            assert_eq!((found.field, found.index.as_str(), found.signed.as_str()), (field, index, signed_value));
        }
    }
}
