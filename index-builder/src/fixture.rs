//! Fixtures for tests, examples and benchmarks: real packages signed with real keys.
//!
//! Owns making a small but genuine release (a deterministic ZIP with `plugin.json`,
//! `trellis-manifest.json`, a `LICENSE` and a binary; the signed release manifest as a
//! DSSE envelope) and dropping it into a registry source tree, plus deterministic
//! keys from a seed. It packs with a minimal local packer: the developer-side `pack`
//! and `sign` are the product; this module only has to produce valid inputs for the
//! builder, the verifier and the oracle. Nothing here is used by a real build.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Map;
use trellis_client::fs::{FsError, write_atomic};
use trellis_schema::dsse::{Envelope, RELEASE_PAYLOAD_TYPE};
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, PackageDigest, ReleaseManifest};
use trellis_schema::plugin::{
    Channel, Dependency, Description, HostRequirement, METADATA_PATH, Platform, PluginMetadata, Pricing, Vendor,
};
use trellis_schema::publisher::PublisherRecord;
use trellis_schema::{PluginId, Sha256, SigningKey, VendorId};

/// A deterministic key from a small number (tests and synthetic registries).
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

/// A publisher record trusting `keys` with threshold 1.
pub fn publisher(vendor: &str, keys: &[&SigningKey]) -> PublisherRecord {
    PublisherRecord {
        id: vendor.parse().unwrap_or_else(|_| fallback_vendor()),
        name: vendor.to_uppercase(),
        website: None,
        contact: None,
        keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
        threshold: 1,
        revoked: Vec::new(),
    }
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
    /// Content of `bin/any/plugin.wasm`: vary it to vary the package bytes.
    pub payload: Vec<u8>,
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
            payload: format!("wasm of {id} {version}").into_bytes(),
        }
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
            name: format!("{} plugin", self.id),
            version: self.version.clone(),
            vendor: Vendor {
                name: self.id.vendor().to_uppercase(),
                id: self.id.vendor().parse().expect("vendor of a valid id"),
                website: None,
            },
            description: Description { short: format!("Fixture plugin {}", self.id), full: String::new() },
            categories: vec!["tools".into()],
            tags: Vec::new(),
            icons: None,
            screenshots: Vec::new(),
            permissions: Vec::new(),
            dependencies: self.dependencies.clone(),
            pricing: Pricing::default(),
            release_notes: None,
            channel: self.channel,
            host: host(),
            platforms: vec![Platform::Any],
            entry: BTreeMap::from([(Platform::Any, "bin/any/plugin.wasm".to_owned())]),
            license: "MIT".into(),
            repository: None,
            min_client_version: None,
            extra: Map::new(),
        }
    }

    /// Packs the release: the ZIP bytes and the release manifest to sign.
    pub fn pack(&self) -> (Vec<u8>, ReleaseManifest) {
        let metadata = serde_json::to_vec_pretty(&self.metadata()).unwrap_or_default();
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("LICENSE".into(), b"MIT License (fixture)\n".to_vec()),
            ("bin/any/plugin.wasm".into(), self.payload.clone()),
            (METADATA_PATH.into(), metadata),
        ];
        files.sort();
        let entries: Vec<FileEntry> = files
            .iter()
            .map(|(path, bytes)| FileEntry { path: path.clone(), size: bytes.len() as u64, sha256: Sha256::of(bytes) })
            .collect();
        let content =
            ContentManifest { plugin_id: self.id.clone(), version: self.version.clone(), files: entries.clone() };
        files.push((CONTENT_MANIFEST_PATH.into(), serde_json::to_vec_pretty(&content).unwrap_or_default()));
        let zip = zip_files(&files);
        let meta = self.metadata();
        let manifest = ReleaseManifest {
            plugin_id: self.id.clone(),
            version: self.version.clone(),
            package: PackageDigest { sha256: Sha256::of(&zip), size: zip.len() as u64 },
            files: entries,
            permissions: meta.permissions,
            host: meta.host,
            platforms: meta.platforms,
            channel: meta.channel,
            dependencies: meta.dependencies,
        };
        (zip, manifest)
    }
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
pub fn sign(manifest: &ReleaseManifest, keys: &[&SigningKey]) -> Vec<u8> {
    let payload = serde_json::to_vec(manifest).unwrap_or_default();
    serde_json::to_vec_pretty(&Envelope::sign(RELEASE_PAYLOAD_TYPE, &payload, keys)).unwrap_or_default()
}

/// Writes `spec` signed by `key` into the registry at `registry`
/// (`releases/<id>/<version>.zip` and `.zip.dsse`). Returns the package path.
pub fn add_release(registry: &Path, spec: &ReleaseSpec, key: &SigningKey) -> Result<PathBuf, FsError> {
    let (zip, manifest) = spec.pack();
    let dir = registry.join("releases").join(spec.id.as_str());
    trellis_client::fs::create_dir_all(&dir)?;
    let package = dir.join(format!("{}.zip", spec.version));
    write_atomic(&package, &zip)?;
    write_atomic(&dir.join(format!("{}.zip.dsse", spec.version)), &sign(&manifest, &[key]))?;
    Ok(package)
}

/// Writes the publisher record of `vendor` trusting `key` into the registry.
pub fn add_publisher(registry: &Path, vendor: &str, key: &SigningKey) -> Result<(), FsError> {
    let record = publisher(vendor, &[key]);
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    trellis_client::fs::create_dir_all(&registry.join("publishers"))?;
    write_atomic(&registry.join("publishers").join(format!("{vendor}.json")), &bytes)
}
