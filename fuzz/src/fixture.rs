//! Deterministic keys and genuine documents the targets verify fuzzed input against.
//!
//! A small registry, signed with keys made from fixed seeds:
//!
//! ```text
//! root v1 (key 1) ── timestamp (key 2) ── snapshot (key 3) ── targets (key 4)
//!   targets ── delegates "index/*/*" to role "bins" (key 5)
//!   bins ── succinct hash bins, bit_length 4, prefix "bin" (key 6)
//!   the bin of INDEX_PATH ── lists INDEX_PATH
//! publisher record "acme" (keys 7 and 8, threshold 1) ── release acme.clock 1.0.0, 1.1.0
//! ```
//!
//! The timestamp and snapshot name versions only (no lengths or hashes), so a fuzzed
//! document reaches the checks after the snapshot's.

use serde_json::{Value, json};
use trellis_schema::canonical;
use trellis_schema::digest::Sha256;
use trellis_schema::dsse::{Envelope, RELEASE_PAYLOAD_TYPE};
use trellis_schema::key::{KeyId, SigningKey};
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, PackageDigest, ReleaseManifest};
use trellis_schema::publisher::PublisherRecord;

/// The reference time every target judges expiry at.
pub const NOW: &str = "2026-06-01T00:00:00Z";
/// When every genuine document expires.
pub const EXPIRES: &str = "2100-01-01T00:00:00Z";
/// The one target path the hash bin lists.
pub const INDEX_PATH: &str = "index/ac/acme.clock.json";
/// The bit length of the fixture's succinct delegation.
pub const BIT_LENGTH: u32 = 4;

/// Seeds of the fixture's keys.
pub mod seed {
    /// Root.
    pub const ROOT: u8 = 1;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 2;
    /// Snapshot.
    pub const SNAPSHOT: u8 = 3;
    /// Top-level targets.
    pub const TARGETS: u8 = 4;
    /// The delegated role `bins`.
    pub const BINS: u8 = 5;
    /// Every succinct hash bin.
    pub const BIN: u8 = 6;
    /// The publisher's first key.
    pub const PUBLISHER: u8 = 7;
    /// The publisher's second key.
    pub const PUBLISHER_2: u8 = 8;
}

/// The key made from `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

/// [`NOW`] as a timestamp.
pub fn now() -> jiff::Timestamp {
    NOW.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn key_json(key: &SigningKey) -> Value {
    serde_json::to_value(key.public()).unwrap_or(Value::Null)
}

/// TUF metadata: `{"signatures": […], "signed": signed}`, signed over the canonical
/// JSON of `signed` by `keys`. `None` when `signed` has no canonical form.
pub fn sign_metadata(signed: &Value, keys: &[&SigningKey]) -> Option<Vec<u8>> {
    let bytes = canonical::to_vec(signed).ok()?;
    let signatures: Vec<Value> =
        keys.iter().map(|k| json!({"keyid": k.key_id().as_str(), "sig": hex::encode(k.sign(&bytes))})).collect();
    serde_json::to_vec(&json!({"signatures": signatures, "signed": signed})).ok()
}

/// Like [`sign_metadata`], with `key`'s signature listed under its own id and under
/// every other id `ids` maps to the same key material (hex compared without regard to
/// case): what a repository that lists one key twice would serve.
pub fn sign_metadata_as_listed(
    signed: &Value,
    key: &SigningKey,
    ids: &serde_json::Map<String, Value>,
) -> Option<Vec<u8>> {
    let bytes = canonical::to_vec(signed).ok()?;
    let sig = hex::encode(key.sign(&bytes));
    let own = key.public().public_str().unwrap_or_default().to_ascii_lowercase();
    let mut signatures = vec![json!({"keyid": key.key_id().as_str(), "sig": sig})];
    for (id, listed) in ids {
        let public = listed.pointer("/keyval/public").and_then(Value::as_str).unwrap_or_default();
        if id != key.key_id().as_str() && public.to_ascii_lowercase() == own {
            signatures.push(json!({"keyid": id, "sig": sig}));
        }
    }
    serde_json::to_vec(&json!({"signatures": signatures, "signed": signed})).ok()
}

fn signed_or_empty(signed: &Value, keys: &[&SigningKey]) -> Vec<u8> {
    sign_metadata(signed, keys).unwrap_or_default()
}

/// The `signed` part of root `version` (keys 1–4).
pub fn root_signed(version: u64) -> Value {
    let (root, timestamp, snapshot, targets) =
        (key(seed::ROOT), key(seed::TIMESTAMP), key(seed::SNAPSHOT), key(seed::TARGETS));
    let role = |k: &SigningKey| json!({"keyids": [k.key_id().as_str()], "threshold": 1});
    json!({
        "_type": "root",
        "spec_version": "1.0.31",
        "consistent_snapshot": true,
        "version": version,
        "expires": EXPIRES,
        "keys": {
            root.key_id().as_str(): key_json(&root),
            timestamp.key_id().as_str(): key_json(&timestamp),
            snapshot.key_id().as_str(): key_json(&snapshot),
            targets.key_id().as_str(): key_json(&targets),
        },
        "roles": {
            "root": role(&root),
            "timestamp": role(&timestamp),
            "snapshot": role(&snapshot),
            "targets": role(&targets),
        },
    })
}

/// The trusted root, version 1.
pub fn root() -> Vec<u8> {
    signed_or_empty(&root_signed(1), &[&key(seed::ROOT)])
}

/// The `signed` part of the timestamp: snapshot version 1, no length or hashes.
pub fn timestamp_signed() -> Value {
    json!({
        "_type": "timestamp",
        "spec_version": "1.0.31",
        "version": 1,
        "expires": EXPIRES,
        "meta": {"snapshot.json": {"version": 1}},
    })
}

/// The genuine timestamp.
pub fn timestamp() -> Vec<u8> {
    signed_or_empty(&timestamp_signed(), &[&key(seed::TIMESTAMP)])
}

/// The name of the succinct bin [`INDEX_PATH`] falls into.
pub fn bin_name() -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(INDEX_PATH.as_bytes());
    format!("bin-{:x}", digest[0] >> (8 - BIT_LENGTH))
}

/// The `signed` part of the snapshot: targets, bins and the bin of [`INDEX_PATH`].
pub fn snapshot_signed() -> Value {
    let mut meta = serde_json::Map::new();
    for role in ["targets".to_owned(), "bins".to_owned(), bin_name()] {
        meta.insert(format!("{role}.json"), json!({"version": 1}));
    }
    json!({"_type": "snapshot", "spec_version": "1.0.31", "version": 1, "expires": EXPIRES, "meta": meta})
}

/// The genuine snapshot.
pub fn snapshot() -> Vec<u8> {
    signed_or_empty(&snapshot_signed(), &[&key(seed::SNAPSHOT)])
}

/// The `signed` part of top-level targets: no targets, `index/*/*` delegated to `bins`.
pub fn targets_signed() -> Value {
    let bins = key(seed::BINS);
    json!({
        "_type": "targets",
        "spec_version": "1.0.31",
        "version": 1,
        "expires": EXPIRES,
        "targets": {},
        "delegations": {
            "keys": {bins.key_id().as_str(): key_json(&bins)},
            "roles": [{
                "name": "bins",
                "keyids": [bins.key_id().as_str()],
                "threshold": 1,
                "terminating": true,
                "paths": ["index/*/*"],
            }],
        },
    })
}

/// The genuine top-level targets.
pub fn targets() -> Vec<u8> {
    signed_or_empty(&targets_signed(), &[&key(seed::TARGETS)])
}

/// The `signed` part of `bins`: succinct hash bins signed by key 6.
pub fn bins_signed() -> Value {
    let bin = key(seed::BIN);
    json!({
        "_type": "targets",
        "spec_version": "1.0.31",
        "version": 1,
        "expires": EXPIRES,
        "targets": {},
        "delegations": {
            "keys": {bin.key_id().as_str(): key_json(&bin)},
            "succinct_roles": {
                "keyids": [bin.key_id().as_str()],
                "threshold": 1,
                "bit_length": BIT_LENGTH,
                "name_prefix": "bin",
            },
        },
    })
}

/// The genuine `bins` role.
pub fn bins() -> Vec<u8> {
    signed_or_empty(&bins_signed(), &[&key(seed::BINS)])
}

/// The `signed` part of the bin of [`INDEX_PATH`], listing the index doc.
pub fn bin_signed() -> Value {
    let doc = index_doc();
    json!({
        "_type": "targets",
        "spec_version": "1.0.31",
        "version": 1,
        "expires": EXPIRES,
        "targets": {
            INDEX_PATH: {"length": doc.len(), "hashes": {"sha256": Sha256::of(&doc).to_string()}},
        },
    })
}

/// The genuine bin of [`INDEX_PATH`].
pub fn bin() -> Vec<u8> {
    signed_or_empty(&bin_signed(), &[&key(seed::BIN)])
}

/// A genuine index doc of `acme.clock` with two releases and a delta.
pub fn index_doc() -> Vec<u8> {
    let blob = |name: &str, bytes: &[u8]| json!({"path": format!("blobs/{name}"), "sha256": Sha256::of(bytes).to_string(), "length": bytes.len()});
    let release = |version: &str, manifest: &ReleaseManifest| {
        json!({
            "version": version,
            "channel": "stable",
            "host": {"id": "demo-host", "api_version_requirement": "^1"},
            "platforms": ["any"],
            "permissions": [],
            "dependencies": [],
            "package": blob(&format!("{version}.zip"), version.as_bytes()),
            "envelope": blob(&format!("{version}.dsse"), &release_envelope(manifest)),
            "manifest_sha256": Sha256::of(&manifest_payload(manifest)).to_string(),
            "unpacked_size": manifest.unpacked_size(),
        })
    };
    let (old, new) = (base_manifest(), target_manifest());
    let mut newer = release("1.1.0", &new);
    newer["deltas"] = json!([{"from": "1.0.0", "blob": blob("delta", b"delta")}]);
    serde_json::to_vec_pretty(&json!({
        "id": "acme.clock",
        "name": "Clock",
        "releases": [release("1.0.0", &old), newer],
    }))
    .unwrap_or_default()
}

/// The publisher record of `acme`: keys 7 and 8, threshold 1, nothing revoked.
pub fn publisher_record_json() -> Value {
    let (a, b) = (key(seed::PUBLISHER), key(seed::PUBLISHER_2));
    json!({
        "id": "acme",
        "name": "Acme",
        "keys": {a.key_id().as_str(): key_json(&a), b.key_id().as_str(): key_json(&b)},
        "threshold": 1,
        "revoked": [],
    })
}

/// [`publisher_record_json`] as a record.
pub fn publisher_record() -> Option<PublisherRecord> {
    serde_json::from_value(publisher_record_json()).ok()
}

/// The bytes of a DSSE envelope of the release manifest payload `payload`, signed by
/// `keys`.
pub fn envelope_bytes(payload: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    serde_json::to_vec_pretty(&Envelope::sign(RELEASE_PAYLOAD_TYPE, payload, keys)).unwrap_or_default()
}

/// The canonical payload of `manifest`.
pub fn manifest_payload(manifest: &ReleaseManifest) -> Vec<u8> {
    canonical::to_vec_of(manifest).unwrap_or_default()
}

/// The envelope of `manifest` signed by the publisher's first key.
pub fn release_envelope(manifest: &ReleaseManifest) -> Vec<u8> {
    envelope_bytes(&manifest_payload(manifest), &[&key(seed::PUBLISHER)])
}

/// The files of the installed release `acme.clock 1.0.0`, the base of the fixture's delta.
pub fn base_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("bin/run", b"#!/bin/sh\necho tick\n".to_vec(), true),
        ("lib/data.txt", b"the quick brown fox jumps over the lazy dog\n".repeat(8), false),
        ("plugin.json", br#"{"id":"acme.clock","version":"1.0.0"}"#.to_vec(), false),
    ]
}

/// The files of `acme.clock 1.1.0`, the release the delta produces.
pub fn target_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut data = b"the quick brown fox jumps over the lazy dog\n".repeat(8);
    data.extend_from_slice(b"and then it rests\n");
    data[4] = b'Q';
    vec![
        ("README.md", b"# Clock\n".to_vec(), false),
        ("bin/run", b"#!/bin/sh\necho tick\n".to_vec(), true),
        ("lib/data.txt", data, false),
        ("plugin.json", br#"{"id":"acme.clock","version":"1.1.0"}"#.to_vec(), false),
    ]
}

fn manifest(version: &str, files: &[(&'static str, Vec<u8>, bool)]) -> ReleaseManifest {
    let entries: Vec<FileEntry> = files
        .iter()
        .map(|(path, bytes, executable)| FileEntry {
            path: (*path).to_owned(),
            size: bytes.len() as u64,
            sha256: Sha256::of(bytes),
            executable: *executable,
        })
        .collect();
    let value = json!({
        "format": trellis_schema::manifest::MANIFEST_FORMAT,
        "plugin_id": "acme.clock",
        "version": version,
        "package": PackageDigest { sha256: Sha256::of(version.as_bytes()), size: version.len() as u64 },
        "files": entries,
        "permissions": [],
        "host": {"id": "demo-host", "api_version_requirement": "^1"},
        "platforms": ["any"],
        "channel": "stable",
        "dependencies": [],
    });
    #[allow(clippy::expect_used)]
    serde_json::from_value(value).expect("the fixture's release manifest is well formed")
}

/// The signed manifest of the base release.
pub fn base_manifest() -> ReleaseManifest {
    manifest("1.0.0", &base_files())
}

/// The signed manifest of the release the delta produces.
pub fn target_manifest() -> ReleaseManifest {
    manifest("1.1.0", &target_files())
}

/// The content manifest (`trellis-manifest.json`) of a release.
pub fn content_manifest(manifest: &ReleaseManifest) -> Vec<u8> {
    let content = ContentManifest {
        format: trellis_schema::manifest::ManifestFormat::CURRENT,
        plugin_id: manifest.plugin_id.clone(),
        version: manifest.version.clone(),
        files: manifest.files.clone(),
    };
    serde_json::to_vec_pretty(&content).unwrap_or_default()
}

/// The path of the content manifest, re-exported for seed writers.
pub const CONTENT_MANIFEST: &str = CONTENT_MANIFEST_PATH;

/// The key id of `seed`'s key.
pub fn key_id(seed: u8) -> KeyId {
    key(seed).key_id().clone()
}
