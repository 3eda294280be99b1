//! Fixtures for tests, examples and benchmarks: real packages signed with real keys.
//!
//! Owns making a small but genuine release (a plugin source tree with `plugin.json`,
//! a `LICENSE` and an entry point, packed by [`crate::pack`] and signed by
//! [`crate::sign`], exactly as a developer would) and dropping it into a registry
//! source tree, plus deterministic keys from a seed. [`zip_files`] is a raw ZIP writer
//! for tests that need a package the real packer would refuse. Nothing here is used
//! by a real build.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Map;
use trellis_client::fs::{FsError, write_atomic};

use crate::{pack, sign};
use trellis_schema::dsse::{Envelope, RELEASE_PAYLOAD_TYPE};
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::plugin::{
    Channel, Dependency, Description, HostRequirement, METADATA_PATH, Platform, PluginMetadata, Vendor,
};
use trellis_schema::publisher::{PublisherChain, PublisherRecord};
use trellis_schema::{PluginId, SigningKey, VendorId};

/// A deterministic key from a small number (tests and synthetic registries).
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

/// A publisher record trusting `keys` with threshold 1.
pub fn publisher(vendor: &str, keys: &[&SigningKey]) -> PublisherRecord {
    PublisherRecord {
        id: vendor.parse().unwrap_or_else(|_| fallback_vendor()),
        version: 1,
        name: vendor.to_uppercase(),
        website: None,
        contact: None,
        keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
        threshold: 1,
        revoked: Vec::new(),
        license_keys: std::collections::BTreeMap::new(),
    }
}

/// The one-version chain of [`publisher`], signed by `keys`.
pub fn publisher_chain(vendor: &str, keys: &[&SigningKey]) -> PublisherChain {
    let record = publisher(vendor, keys);
    PublisherChain::first(record.clone(), keys).unwrap_or_else(|_| PublisherChain {
        records: vec![trellis_schema::publisher::SignedRecord { signatures: vec![], signed: record }],
    })
}

fn fallback_vendor() -> VendorId {
    #[allow(clippy::expect_used)]
    "invalid".parse().expect("a constant vendor id")
}

/// What a fixture release looks like.
#[derive(Clone, Debug)]
pub struct ReleaseSpec {
    /// Plugin id.
    pub id: PluginId,
    /// Version.
    pub version: semver::Version,
    /// Dependencies.
    pub dependencies: Vec<Dependency>,
    /// Channel.
    pub channel: Channel,
    /// Content of the entry point `bin/any/main.sh`: vary it to vary the package bytes.
    pub payload: Vec<u8>,
    /// Display name and catalog text (`None`: `<id> plugin`, a fixture description,
    /// category `utility`).
    pub display: Option<(String, crate::release::ReleaseDisplay)>,
    /// Host requirement (`None`: [`host`]).
    pub host: Option<HostRequirement>,
    /// More files of the tree (icons, screenshots, `docs/README.md`), path → bytes.
    pub files: Vec<(String, Vec<u8>)>,
    /// Top-level members of `plugin.json` replaced by these (`permissions`,
    /// `screenshots`, `icons`, …).
    pub patch: serde_json::Map<String, serde_json::Value>,
}

impl ReleaseSpec {
    /// A stable release of `id version` without dependencies. Panics on a malformed
    /// id or version: fixtures are written by tests.
    #[allow(clippy::expect_used)]
    pub fn new(id: &str, version: &str) -> Self {
        Self {
            id: id.parse().expect("fixture plugin id"),
            version: version.parse().expect("fixture version"),
            dependencies: Vec::new(),
            channel: Channel::Stable,
            payload: format!("#!/bin/sh\necho {id} {version}\n").into_bytes(),
            display: None,
            host: None,
            files: Vec::new(),
            patch: Map::new(),
        }
    }

    /// The same release with `path` (in the tree) holding `bytes`.
    #[must_use]
    pub fn with_file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_owned(), bytes.into()));
        self
    }

    /// The same release with member `name` of `plugin.json` set to `value`.
    #[must_use]
    pub fn with_member(mut self, name: &str, value: serde_json::Value) -> Self {
        self.patch.insert(name.to_owned(), value);
        self
    }

    /// The same release with display name `name` and catalog text `display`.
    #[must_use]
    pub fn with_display(mut self, name: &str, display: crate::release::ReleaseDisplay) -> Self {
        self.display = Some((name.to_owned(), display));
        self
    }

    /// The same release requiring `host`.
    #[must_use]
    pub fn with_host(mut self, host: HostRequirement) -> Self {
        self.host = Some(host);
        self
    }

    /// Adds a dependency on `id` matching `requirement`.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn depends_on(mut self, id: &str, requirement: &str) -> Self {
        self.dependencies.push(Dependency {
            id: id.parse().expect("fixture dependency id"),
            version_requirement: requirement.parse().expect("fixture requirement"),
        });
        self
    }

    /// The `plugin.json` of this release.
    #[allow(clippy::expect_used)]
    pub fn metadata(&self) -> PluginMetadata {
        PluginMetadata {
            id: self.id.clone(),
            name: self.display.as_ref().map_or_else(|| format!("{} plugin", self.id), |(name, _)| name.clone()),
            version: self.version.clone(),
            vendor: Vendor {
                name: self
                    .display
                    .as_ref()
                    .map(|(_, d)| d.vendor.clone())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| self.id.vendor().to_uppercase()),
                id: self.id.vendor().parse().expect("vendor of a valid id"),
                website: None,
            },
            description: match &self.display {
                Some((_, d)) => Description { short: d.summary.clone(), full: d.description.clone() },
                None => Description { short: format!("Fixture plugin {}", self.id), full: String::new() },
            },
            categories: self
                .display
                .as_ref()
                .map(|(_, d)| d.categories.clone())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| vec!["utility".into()]),
            tags: self.display.as_ref().map(|(_, d)| d.tags.clone()).unwrap_or_default(),
            icons: None,
            screenshots: Vec::new(),
            permissions: Vec::new(),
            dependencies: self.dependencies.clone(),
            pricing: self.display.as_ref().map(|(_, d)| d.pricing.clone()).unwrap_or_default(),
            release_notes: None,
            channel: self.channel,
            host: self.host.clone().unwrap_or_else(host),
            platforms: vec![Platform::Any],
            entry: BTreeMap::from([(Platform::Any, ENTRY.to_owned())]),
            license: "MIT".into(),
            repository: None,
            min_client_version: None,
            extra: Map::new(),
        }
    }

    /// Writes the plugin source tree of this release into `dir`.
    pub fn write_tree(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("bin/any"))?;
        let mut metadata = serde_json::to_value(self.metadata()).map_err(std::io::Error::other)?;
        if let Some(object) = metadata.as_object_mut() {
            object.extend(self.patch.clone());
        }
        let metadata = serde_json::to_vec_pretty(&metadata).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(METADATA_PATH), metadata)?;
        for (path, bytes) in &self.files {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, bytes)?;
        }
        std::fs::write(dir.join("LICENSE"), "MIT License (fixture)\n")?;
        std::fs::write(dir.join(ENTRY), &self.payload)
    }

    /// Packs the release with [`crate::pack`] into `out` and returns the package bytes
    /// and the release manifest a developer would sign.
    pub fn pack(&self, out: &Path) -> Result<(Vec<u8>, ReleaseManifest), FixtureError> {
        let tree = tempfile::tempdir().map_err(|e| FixtureError::Io(e.to_string()))?;
        self.write_tree(tree.path()).map_err(|e| FixtureError::Io(e.to_string()))?;
        let packed = pack::pack_dir(tree.path(), out).map_err(|e| FixtureError::Pack(e.to_string()))?;
        let bytes = std::fs::read(out).map_err(|e| FixtureError::Io(e.to_string()))?;
        Ok((bytes, sign::release_manifest(&packed.metadata, &packed.manifest, packed.digest)))
    }
}

impl From<FsError> for FixtureError {
    fn from(error: FsError) -> Self {
        Self::Io(error.to_string())
    }
}

/// Entry point of every fixture plugin.
const ENTRY: &str = "bin/any/main.sh";

/// A fixture that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// Writing the tree or reading the package failed.
    #[error("fixture I/O: {0}")]
    Io(String),
    /// `pack` refused the tree.
    #[error("fixture pack: {0}")]
    Pack(String),
    /// `sign` refused the package.
    #[error("fixture sign: {0}")]
    Sign(String),
}

/// The host requirement of every fixture.
#[allow(clippy::expect_used)]
pub fn host() -> HostRequirement {
    HostRequirement { id: "demo-host".into(), api_version_requirement: "^1".parse().expect("constant requirement") }
}

/// A deterministic ZIP (stored entries, fixed times) of `files` in order.
pub fn zip_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, bytes) in files {
        if out.start_file(name.as_str(), options).is_err() || out.write_all(bytes).is_err() {
            return Vec::new();
        }
    }
    out.finish().map(|c| c.into_inner()).unwrap_or_default()
}

/// Signs `manifest` with `keys` as a DSSE envelope and returns its JSON bytes.
pub fn sign_manifest(manifest: &ReleaseManifest, keys: &[&SigningKey]) -> Vec<u8> {
    let payload = sign::manifest_payload(manifest).unwrap_or_default();
    serde_json::to_vec_pretty(&Envelope::sign(RELEASE_PAYLOAD_TYPE, &payload, keys)).unwrap_or_default()
}

/// Packs `spec`, signs it with `key` and writes it into the registry at `registry`
/// (`releases/<id>/<version>.zip` and `<version>.zip.dsse`). Returns the package path.
pub fn add_release(registry: &Path, spec: &ReleaseSpec, key: &SigningKey) -> Result<PathBuf, FixtureError> {
    let dir = registry.join("releases").join(spec.id.as_str());
    std::fs::create_dir_all(&dir).map_err(|e| FixtureError::Io(e.to_string()))?;
    let package = dir.join(format!("{}.zip", spec.version));
    spec.pack(&package)?;
    sign::sign_package(&package, key).map_err(|e| FixtureError::Sign(e.to_string()))?;
    Ok(package)
}

/// Writes the publisher record of `vendor` trusting `key` into the registry.
pub fn add_publisher(registry: &Path, vendor: &str, key: &SigningKey) -> Result<(), FsError> {
    let bytes = serde_json::to_vec_pretty(&publisher_chain(vendor, &[key])).unwrap_or_default();
    trellis_client::fs::create_dir_all(&registry.join("publishers"))?;
    write_atomic(&registry.join("publishers").join(format!("{vendor}.json")), &bytes)
}
