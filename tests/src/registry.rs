//! A small signed TUF registry generator for client tests: Ed25519 keys, consistent
//! snapshots, top-level targets delegating every index doc to succinct hash bins
//! (TAP 15), like a Trellis site. Written independently of the builder so the client
//! is tested against a second implementation of the layout.
//!
//! [`TestRegistry::publish`] re-signs only what changed: the bins of changed index
//! docs, then snapshot, then timestamp (targets.json only on the first publish).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Map;
use trellis_schema::SigningKey;
use trellis_schema::tuf::{
    Delegations, Envelope, MetaFile, RoleKeys, Root, SPEC_VERSION, Snapshot, SuccinctRoles, TargetFile, Targets,
    Timestamp, TopRole, sign,
};

/// Expiry used unless a test sets another.
pub const FAR_FUTURE: &str = "2099-01-01T00:00:00Z";

/// A registry being built in memory; files are keyed by their path on a site
/// (`metadata/…`, `targets/…`).
pub struct TestRegistry {
    root_key: SigningKey,
    timestamp_key: SigningKey,
    snapshot_key: SigningKey,
    targets_key: SigningKey,
    bins_key: SigningKey,
    bit_length: u32,
    /// Expiry written into the next timestamp.
    pub timestamp_expires: String,
    /// Expiry written into the hash bins published next.
    pub bins_expires: String,
    timestamp_version: u64,
    snapshot_version: u64,
    targets_version: u64,
    targets_dirty: bool,
    bin_versions: BTreeMap<String, u64>,
    bin_targets: BTreeMap<String, BTreeMap<String, TargetFile>>,
    dirty: BTreeSet<String>,
    files: BTreeMap<String, Vec<u8>>,
    root_bytes: Vec<u8>,
}

fn to_bytes<T: serde::Serialize>(envelope: &Envelope<T>) -> Vec<u8> {
    // Compact JSON, like most generators; the client must not care.
    serde_json::to_vec(envelope).unwrap_or_default()
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

impl TestRegistry {
    /// A registry whose index docs are spread over `2^bit_length` bins. Keys are
    /// derived from `seed` so runs are reproducible.
    pub fn new(seed: u8, bit_length: u32) -> Self {
        let key = |n: u8| SigningKey::from_seed([seed.wrapping_mul(31).wrapping_add(n); 32]);
        let mut registry = Self {
            root_key: key(1),
            timestamp_key: key(2),
            snapshot_key: key(3),
            targets_key: key(4),
            bins_key: key(5),
            bit_length,
            timestamp_expires: FAR_FUTURE.into(),
            bins_expires: FAR_FUTURE.into(),
            timestamp_version: 0,
            snapshot_version: 0,
            targets_version: 0,
            targets_dirty: false,
            bin_versions: BTreeMap::new(),
            bin_targets: BTreeMap::new(),
            dirty: BTreeSet::new(),
            files: BTreeMap::new(),
            root_bytes: Vec::new(),
        };
        for bin in 0..(1u64 << bit_length) {
            let name = registry.bin_name(bin);
            registry.bin_targets.insert(name.clone(), BTreeMap::new());
            registry.dirty.insert(name);
        }
        registry.write_root();
        registry
    }

    fn bin_name(&self, bin: u64) -> String {
        let width = format!("{:x}", (1u64 << self.bit_length) - 1).len();
        format!("bin-{bin:0width$x}")
    }

    /// The bin a target path belongs to.
    pub fn bin_of(&self, path: &str) -> String {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(path.as_bytes());
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        self.bin_name(u64::from(first) >> (32 - self.bit_length))
    }

    fn write_root(&mut self) {
        let keys = [&self.root_key, &self.timestamp_key, &self.snapshot_key, &self.targets_key];
        let role = |key: &SigningKey| RoleKeys { keyids: vec![key.key_id().clone()], threshold: 1 };
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: true,
            version: 1,
            expires: FAR_FUTURE.into(),
            keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
            roles: BTreeMap::from([
                (TopRole::Root, role(&self.root_key)),
                (TopRole::Timestamp, role(&self.timestamp_key)),
                (TopRole::Snapshot, role(&self.snapshot_key)),
                (TopRole::Targets, role(&self.targets_key)),
            ]),
            extra: Map::new(),
        };
        let bytes = to_bytes(&sign(root, &[&self.root_key]).unwrap_or_else(|e| panic!("signing root: {e}")));
        self.files.insert("metadata/1.root.json".into(), bytes.clone());
        self.root_bytes = bytes;
    }

    /// The root to pin in a client.
    pub fn root(&self) -> &[u8] {
        &self.root_bytes
    }

    /// The target path of a plugin's index doc.
    pub fn index_path(plugin: &str) -> String {
        format!("index/{plugin}.json")
    }

    /// Adds or replaces the index doc of `plugin` (published on the next `publish`).
    pub fn set_index_doc(&mut self, plugin: &str, doc: &[u8]) {
        let path = Self::index_path(plugin);
        let hash = sha256_hex(doc);
        let file = TargetFile {
            length: doc.len() as u64,
            hashes: BTreeMap::from([("sha256".to_owned(), hash.clone())]),
            custom: None,
            extra: Map::new(),
        };
        let bin = self.bin_of(&path);
        self.bin_targets.entry(bin.clone()).or_default().insert(path, file);
        self.dirty.insert(bin);
        self.files.insert(format!("targets/index/{hash}.{plugin}.json"), doc.to_vec());
    }

    fn metafile(version: u64) -> MetaFile {
        MetaFile { version, length: None, hashes: None, extra: Map::new() }
    }

    /// Signs and writes everything that changed since the last publish: dirty bins,
    /// targets (first time), snapshot, timestamp.
    pub fn publish(&mut self) {
        for bin in std::mem::take(&mut self.dirty) {
            let version = self.bin_versions.get(&bin).copied().unwrap_or(0) + 1;
            self.bin_versions.insert(bin.clone(), version);
            let targets = Targets {
                type_: "targets".into(),
                spec_version: SPEC_VERSION.into(),
                version,
                expires: self.bins_expires.clone(),
                targets: self.bin_targets.get(&bin).cloned().unwrap_or_default(),
                delegations: None,
                extra: Map::new(),
            };
            let bytes = to_bytes(&sign(targets, &[&self.bins_key]).unwrap_or_else(|e| panic!("signing {bin}: {e}")));
            self.files.insert(format!("metadata/{version}.{bin}.json"), bytes);
        }
        if self.targets_version == 0 || std::mem::take(&mut self.targets_dirty) {
            self.targets_version += 1;
            let targets = Targets {
                type_: "targets".into(),
                spec_version: SPEC_VERSION.into(),
                version: self.targets_version,
                expires: FAR_FUTURE.into(),
                targets: BTreeMap::new(),
                delegations: Some(Delegations {
                    keys: BTreeMap::from([(self.bins_key.key_id().clone(), self.bins_key.public().clone())]),
                    roles: None,
                    succinct_roles: Some(SuccinctRoles {
                        keyids: vec![self.bins_key.key_id().clone()],
                        threshold: 1,
                        bit_length: self.bit_length,
                        name_prefix: "bin".into(),
                        extra: Map::new(),
                    }),
                    extra: Map::new(),
                }),
                extra: Map::new(),
            };
            let bytes = to_bytes(&sign(targets, &[&self.targets_key]).unwrap_or_else(|e| panic!("signing: {e}")));
            self.files.insert(format!("metadata/{}.targets.json", self.targets_version), bytes);
        }
        self.snapshot_version += 1;
        let mut meta: BTreeMap<String, MetaFile> =
            self.bin_versions.iter().map(|(bin, v)| (format!("{bin}.json"), Self::metafile(*v))).collect();
        meta.insert("targets.json".into(), Self::metafile(self.targets_version));
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version: self.snapshot_version,
            expires: FAR_FUTURE.into(),
            meta,
            extra: Map::new(),
        };
        let bytes = to_bytes(&sign(snapshot, &[&self.snapshot_key]).unwrap_or_else(|e| panic!("signing: {e}")));
        let snapshot_meta = MetaFile {
            version: self.snapshot_version,
            length: Some(bytes.len() as u64),
            hashes: Some(BTreeMap::from([("sha256".to_owned(), sha256_hex(&bytes))])),
            extra: Map::new(),
        };
        self.files.insert(format!("metadata/{}.snapshot.json", self.snapshot_version), bytes);
        self.timestamp_version += 1;
        let timestamp = Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: self.timestamp_version,
            expires: self.timestamp_expires.clone(),
            meta: BTreeMap::from([("snapshot.json".to_owned(), snapshot_meta)]),
            extra: Map::new(),
        };
        let bytes = to_bytes(&sign(timestamp, &[&self.timestamp_key]).unwrap_or_else(|e| panic!("signing: {e}")));
        self.files.insert("metadata/timestamp.json".into(), bytes);
    }

    /// Signs the top-level targets again, one version up, at the next
    /// [`publish`](Self::publish) (as a rotation of the bins' key would).
    pub fn touch_targets(&mut self) {
        self.targets_dirty = true;
    }

    /// Every file of the site, by path.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// The bytes of one site file.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Serves the site from `server` under `/<prefix>` (empty prefix: the root).
    pub fn serve(&self, server: &crate::fault_server::FaultServer, prefix: &str) {
        for (path, bytes) in &self.files {
            server.put(&format!("{prefix}/{path}"), bytes.clone());
        }
    }

    /// Writes the site under `dir` (a `file://` mirror).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for (path, bytes) in &self.files {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, bytes)?;
        }
        Ok(())
    }
}
