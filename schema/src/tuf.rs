//! TUF 1.0 metadata documents (root, timestamp, snapshot, targets with delegations).
//!
//! Plain serde types, nothing more: deciding whether a document is trusted is the
//! client's `trust` module, producing and signing them is the builder's job. Every
//! type keeps the fields it does not know in `extra`, because signatures cover the
//! document as received (see [`crate::canonical`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::{self, CanonicalError};
use crate::key::{KeyId, PublicKey, SigningKey};

/// The TUF specification version Trellis writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// A signed metadata file: `{"signed": …, "signatures": […]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
    /// The document.
    pub signed: T,
}

/// One signature of a metadata file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Which key made it.
    pub keyid: KeyId,
    /// The signature bytes, hex.
    pub sig: String,
}

/// The four top-level roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopRole {
    /// Root of trust: keys and thresholds of the top-level roles.
    Root,
    /// Freshness: names the current snapshot.
    Timestamp,
    /// Consistency: names the version of every targets role.
    Snapshot,
    /// Content: target files and delegations.
    Targets,
}

impl TopRole {
    /// The role name as used in file names and `_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Timestamp => "timestamp",
            Self::Snapshot => "snapshot",
            Self::Targets => "targets",
        }
    }
}

/// Keys and threshold of one role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Key ids allowed to sign for the role.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
}

/// `root.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Always `"root"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Whether metadata and targets are published under version/hash-prefixed names.
    pub consistent_snapshot: bool,
    /// Monotonic version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// All keys of the top-level roles.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// Keys and threshold per top-level role.
    pub roles: BTreeMap<TopRole, RoleKeys>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An entry of `meta` in timestamp and snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaFile {
    /// Version of the named metadata file.
    pub version: u64,
    /// Its length in bytes, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes, when given (`sha256` → hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `timestamp.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `"timestamp"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Monotonic version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// Exactly one entry: `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `snapshot.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `"snapshot"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Monotonic version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// `targets.json` and every delegated role's file.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A target file entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes (`sha256` → hex).
    pub hashes: BTreeMap<String, String>,
    /// Application data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A delegated role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Role name; its metadata file is `<version>.<name>.json`.
    pub name: String,
    /// Key ids allowed to sign for it.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
    /// Whether the search stops here when the role's paths match.
    #[serde(default)]
    pub terminating: bool,
    /// Glob patterns of target paths the role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of SHA-256(target path) the role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// TAP 15 succinct hash-bin delegation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Key ids of every bin.
    pub keyids: Vec<KeyId>,
    /// Threshold of every bin.
    pub threshold: u32,
    /// Number of leading bits of SHA-256(target path) that select the bin.
    pub bit_length: u32,
    /// Bin names are `<name_prefix>-<hex bin number>`.
    pub name_prefix: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `delegations` of a targets role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// Ordered delegations (first match wins unless not terminating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Succinct hash bins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `targets.json` or a delegated targets role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `"targets"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Monotonic version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// Target files this role signs for.
    pub targets: BTreeMap<String, TargetFile>,
    /// Further delegations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Signs `signed` with each of `keys`, in order.
pub fn sign<T: Serialize>(signed: T, keys: &[&SigningKey]) -> Result<Envelope<T>, CanonicalError> {
    let bytes = canonical::to_vec_of(&signed)?;
    let signatures =
        keys.iter().map(|key| Signature { keyid: key.key_id().clone(), sig: hex::encode(key.sign(&bytes)) }).collect();
    Ok(Envelope { signatures, signed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_python_tuf_style_root_and_keeps_unknown_fields() {
        let text = r#"{"signatures":[{"keyid":"ab","sig":"00"}],"signed":{"_type":"root","spec_version":"1.0.31",
          "consistent_snapshot":true,"version":1,"expires":"2030-01-01T00:00:00Z","x-custom":{"a":1},
          "keys":{"ab":{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"00"}}},
          "roles":{"root":{"keyids":["ab"],"threshold":1},"timestamp":{"keyids":["ab"],"threshold":1},
                   "snapshot":{"keyids":["ab"],"threshold":1},"targets":{"keyids":["ab"],"threshold":1}}}}"#;
        let root: Envelope<Root> = serde_json::from_str(text).unwrap();
        assert_eq!(root.signed.roles[&TopRole::Snapshot].threshold, 1);
        assert_eq!(root.signed.extra["x-custom"]["a"], 1);
        let back = serde_json::to_value(&root).unwrap();
        assert_eq!(back["signed"]["x-custom"]["a"], 1);
    }

    #[test]
    fn signature_covers_canonical_signed_part() {
        let key = SigningKey::from_seed([9; 32]);
        let ts = Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: 3,
            expires: "2030-01-01T00:00:00Z".into(),
            meta: BTreeMap::from([(
                "snapshot.json".into(),
                MetaFile { version: 2, length: None, hashes: None, extra: Map::new() },
            )]),
            extra: Map::new(),
        };
        let env = sign(ts, &[&key]).unwrap();
        let sig = hex::decode(&env.signatures[0].sig).unwrap();
        let bytes = canonical::to_vec_of(&env.signed).unwrap();
        key.public().verify(&bytes, &sig).unwrap();
        assert!(key.public().verify(&[bytes.as_slice(), b" "].concat(), &sig).is_err());
    }
}
