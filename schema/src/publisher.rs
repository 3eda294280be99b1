//! Publisher records, their signed version chain, and the check of a developer
//! signature against one.
//!
//! A publisher record names a publisher (`acme`), the Ed25519 keys allowed to sign its
//! releases, how many of them must sign, and the keys it revoked. Records are versioned
//! and chained ([`chain`]): version 1 is signed by a threshold of its own keys, every
//! later version by a threshold of the previous version's keys (or, for a publisher who
//! lost every key, by the registry's offline recovery signers) and of its own. The
//! registry publishes the whole chain as a target of the `publishers` role; the builder
//! refuses a chain that does not extend the published one, and the client pins the
//! highest version it verified, so the online `publishers` key can add vendors but not
//! change an existing vendor's keys. Release signatures are checked against the head
//! record ([`PublisherRecord::verify_release`]), counting keys by their decoded key
//! material, never by key-id strings.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dsse::{Envelope, EnvelopeError, RELEASE_PAYLOAD_TYPE};
use crate::id::VendorId;
use crate::key::{KeyId, PublicKey};
use crate::manifest::ReleaseManifest;

pub mod chain;

pub use chain::{
    ChainError, ChainLimits, PublisherChain, RecordSignature, RecoverySigners, SignedRecord, VerifiedChain,
};

/// A key the publisher no longer vouches for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct RevokedKey {
    /// The key.
    pub keyid: KeyId,
    /// When (RFC 3339 date or timestamp).
    pub revoked_at: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// The revoked key itself, so that it stays revoked under any other key id
    /// (`trellis-index publisher update --revoke` fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PublicKey>,
}

/// A publisher record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct PublisherRecord {
    /// Publisher id: the namespace of its plugin ids.
    pub id: VendorId,
    /// Version of the record: 1, 2, 3… ([`chain`]); absent means 1.
    #[serde(default = "first_version")]
    pub version: u64,
    /// Display name.
    pub name: String,
    /// Web site (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Contact e-mail for security reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Keys allowed to sign releases.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// How many distinct keys must sign a release.
    pub threshold: u32,
    /// Keys revoked; their signatures no longer count, on old releases too.
    #[serde(default)]
    pub revoked: Vec<RevokedKey>,
    /// Keys that sign license tokens only ([`crate::license`]), never releases nor
    /// record versions: the key a vendor's payment webhook holds. Revoking or removing
    /// one in a later version invalidates the tokens it signed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub license_keys: BTreeMap<KeyId, PublicKey>,
}

fn first_version() -> u64 {
    1
}

/// Why a release's developer signature is not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReleaseSignatureError {
    /// The envelope does not carry a release manifest.
    #[error("envelope has payload type {found:?}, expected {RELEASE_PAYLOAD_TYPE:?}")]
    PayloadType {
        /// What it carries.
        found: String,
    },
    /// Undecodable envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The payload is not a release manifest.
    #[error("envelope payload is not a release manifest: {0}")]
    Payload(String),
    /// The plugin is not in this publisher's namespace.
    #[error("{plugin} is not in publisher {publisher}'s namespace; its id must start with `{publisher}.`")]
    Namespace {
        /// Plugin id.
        plugin: String,
        /// Publisher id.
        publisher: String,
    },
    /// Too few valid signatures; says what each signature was.
    #[error(
        "{release} has {valid} valid signature(s) from {publisher}'s keys, {threshold} required{}",
        describe_rejections(rejected)
    )]
    Threshold {
        /// `id version`.
        release: String,
        /// Publisher id.
        publisher: String,
        /// Valid signatures from distinct keys.
        valid: u32,
        /// Required.
        threshold: u32,
        /// Why each other signature did not count.
        rejected: Vec<RejectedSignature>,
    },
}

/// A signature that did not count, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSignature {
    /// The signing key.
    pub keyid: KeyId,
    /// Why it did not count.
    pub reason: RejectionReason,
}

/// Why one signature did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectionReason {
    /// The key was revoked.
    Revoked {
        /// When.
        at: String,
        /// Why.
        reason: String,
    },
    /// The key is not in the record.
    UnknownKey,
    /// The signature does not verify.
    Invalid(String),
    /// A second signature by the same key (by key material, whatever its key id).
    Duplicate,
    /// The record lists the key under an id that is not the key's own.
    KeyIdMismatch,
}

fn describe_rejections(rejected: &[RejectedSignature]) -> String {
    let mut out = String::new();
    for r in rejected {
        let what = match &r.reason {
            RejectionReason::Revoked { at, reason } if reason.is_empty() => format!("was revoked on {at}"),
            RejectionReason::Revoked { at, reason } => format!("was revoked on {at} ({reason})"),
            RejectionReason::UnknownKey => "is not one of the publisher's keys".to_owned(),
            RejectionReason::Invalid(why) => format!("made an invalid signature: {why}"),
            RejectionReason::Duplicate => "signed twice; counted once".to_owned(),
            RejectionReason::KeyIdMismatch => "is listed under a key id that is not its own".to_owned(),
        };
        out.push_str(&format!("; key {}… {what}", r.keyid.short()));
    }
    if rejected.iter().any(|r| matches!(r.reason, RejectionReason::Revoked { .. })) {
        out.push_str("; ask the publisher for a release re-signed with a current key");
    }
    out
}

impl PublisherRecord {
    /// When `keyid` is revoked, its revocation entry.
    pub fn revocation(&self, keyid: &KeyId) -> Option<&RevokedKey> {
        self.revoked.iter().find(|r| &r.keyid == keyid)
    }

    /// The key material of every revoked key this record can name (the key stored in
    /// the revocation entry, or the listed key of that id), with its revocation.
    pub(crate) fn revoked_materials(&self) -> BTreeMap<String, &RevokedKey> {
        let mut out = BTreeMap::new();
        for revoked in &self.revoked {
            let key = revoked
                .key
                .as_ref()
                .or_else(|| self.keys.get(&revoked.keyid))
                .or_else(|| self.license_keys.get(&revoked.keyid));
            if let Some(material) = key.and_then(chain::key_material) {
                out.insert(material, revoked);
            }
        }
        out
    }

    /// Verifies a release envelope and returns the manifest it vouches for.
    ///
    /// Counts valid signatures by distinct key material of this record's keys (a key
    /// listed twice, or under an id that is not its own, counts once or not at all),
    /// skips revoked keys (by id and by material), and checks the plugin lives in this
    /// publisher's namespace.
    pub fn verify_release(&self, envelope: &Envelope) -> Result<ReleaseManifest, ReleaseSignatureError> {
        self.verify_release_counted(envelope).map(|(manifest, _)| manifest)
    }

    /// [`PublisherRecord::verify_release`], with the number of distinct keys whose
    /// valid signatures counted (a signal of the security level).
    pub fn verify_release_counted(&self, envelope: &Envelope) -> Result<(ReleaseManifest, u32), ReleaseSignatureError> {
        if envelope.payload_type != RELEASE_PAYLOAD_TYPE {
            return Err(ReleaseSignatureError::PayloadType { found: envelope.payload_type.clone() });
        }
        let payload = envelope.payload_bytes()?;
        let manifest: ReleaseManifest =
            crate::json::from_slice(&payload).map_err(|e| ReleaseSignatureError::Payload(e.to_string()))?;
        if !manifest.plugin_id.belongs_to(&self.id) {
            return Err(ReleaseSignatureError::Namespace {
                plugin: manifest.plugin_id.to_string(),
                publisher: self.id.to_string(),
            });
        }
        let message = envelope.signed_message()?;
        let revoked = self.revoked_materials();
        let mut counted = BTreeSet::new();
        let mut rejected = Vec::new();
        for signature in &envelope.signatures {
            let keyid = signature.keyid.clone();
            let key = self.keys.get(&keyid);
            let material = key.and_then(chain::key_material);
            let revocation =
                self.revocation(&keyid).or_else(|| material.as_ref().and_then(|m| revoked.get(m).copied()));
            let reason = if let Some(revoked) = revocation {
                RejectionReason::Revoked { at: revoked.revoked_at.clone(), reason: revoked.reason.clone() }
            } else if let (Some(key), Some(material)) = (key, material) {
                if !chain::id_is_bound(&keyid, key) {
                    RejectionReason::KeyIdMismatch
                } else if counted.contains(&material) {
                    RejectionReason::Duplicate
                } else {
                    let verified = Envelope::signature_bytes(signature)
                        .map_err(|e| e.to_string())
                        .and_then(|sig| key.verify(&message, &sig).map_err(|e| e.to_string()));
                    match verified {
                        Ok(()) => {
                            counted.insert(material);
                            continue;
                        }
                        Err(why) => RejectionReason::Invalid(why),
                    }
                }
            } else {
                RejectionReason::UnknownKey
            };
            rejected.push(RejectedSignature { keyid, reason });
        }
        let valid = u32::try_from(counted.len()).unwrap_or(u32::MAX);
        if valid < self.threshold.max(1) {
            return Err(ReleaseSignatureError::Threshold {
                release: manifest.release_name(),
                publisher: self.id.to_string(),
                valid,
                threshold: self.threshold.max(1),
                rejected,
            });
        }
        Ok((manifest, valid))
    }
}

impl ReleaseSignatureError {
    /// Whether the signature fails only because keys that signed it were revoked or
    /// are no longer listed (the release may be re-signed with a current key, and stays
    /// valid under an older record of the chain).
    pub fn is_revocation(&self) -> bool {
        match self {
            Self::Threshold { rejected, .. } => {
                rejected
                    .iter()
                    .any(|r| matches!(r.reason, RejectionReason::Revoked { .. } | RejectionReason::UnknownKey))
                    && rejected.iter().all(|r| {
                        matches!(
                            r.reason,
                            RejectionReason::Revoked { .. } | RejectionReason::UnknownKey | RejectionReason::Duplicate
                        )
                    })
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256;
    use crate::key::SigningKey;
    use crate::manifest::PackageDigest;
    use crate::plugin::{Channel, HostRequirement};

    fn manifest(id: &str) -> ReleaseManifest {
        ReleaseManifest {
            format: crate::manifest::ManifestFormat::CURRENT,
            plugin_id: id.parse().unwrap(),
            version: "1.2.0".parse().unwrap(),
            package: PackageDigest { sha256: Sha256::of(b"zip"), size: 3 },
            files: vec![],
            permissions: vec![],
            host: HostRequirement { id: "demo".into(), api_version_requirement: "^1".parse().unwrap() },
            platforms: vec![],
            channel: Channel::Stable,
            dependencies: vec![],
        }
    }

    fn record(keys: &[&SigningKey], threshold: u32) -> PublisherRecord {
        PublisherRecord {
            id: "acme".parse().unwrap(),
            version: 1,
            name: "Acme".into(),
            website: None,
            contact: None,
            keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
            threshold,
            revoked: vec![],
            license_keys: BTreeMap::new(),
        }
    }

    fn envelope(m: &ReleaseManifest, keys: &[&SigningKey]) -> Envelope {
        Envelope::sign(RELEASE_PAYLOAD_TYPE, &serde_json::to_vec(m).unwrap(), keys)
    }

    #[test]
    fn accepts_a_release_signed_by_a_publisher_key() {
        let key = SigningKey::from_seed([1; 32]);
        let m = manifest("acme.clock");
        assert_eq!(record(&[&key], 1).verify_release(&envelope(&m, &[&key])).unwrap(), m);
    }

    #[test]
    fn revoked_key_does_not_count_and_the_message_says_so() {
        let key = SigningKey::from_seed([1; 32]);
        let mut rec = record(&[&key], 1);
        rec.revoked.push(RevokedKey {
            keyid: key.key_id().clone(),
            revoked_at: "2026-10-01".into(),
            reason: "laptop stolen".into(),
            key: None,
        });
        let err = rec.verify_release(&envelope(&manifest("acme.clock"), &[&key])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("acme.clock 1.2.0 has 0 valid signature(s)"), "{text}");
        assert!(text.contains("revoked on 2026-10-01 (laptop stolen)"), "{text}");
        assert!(text.contains("re-signed"), "{text}");
    }

    #[test]
    fn threshold_counts_distinct_keys_only() {
        let a = SigningKey::from_seed([1; 32]);
        let b = SigningKey::from_seed([2; 32]);
        let rec = record(&[&a, &b], 2);
        let m = manifest("acme.clock");
        let mut twice = envelope(&m, &[&a]);
        twice.signatures.push(twice.signatures[0].clone());
        assert!(matches!(rec.verify_release(&twice), Err(ReleaseSignatureError::Threshold { valid: 1, .. })));
        rec.verify_release(&envelope(&m, &[&a, &b])).unwrap();
    }

    #[test]
    fn refuses_foreign_namespace_unknown_keys_and_tampered_payload() {
        let key = SigningKey::from_seed([1; 32]);
        let stranger = SigningKey::from_seed([9; 32]);
        let rec = record(&[&key], 1);
        assert!(matches!(
            rec.verify_release(&envelope(&manifest("evil.clock"), &[&key])),
            Err(ReleaseSignatureError::Namespace { .. })
        ));
        let err = rec.verify_release(&envelope(&manifest("acme.clock"), &[&stranger])).unwrap_err();
        assert!(err.to_string().contains("is not one of the publisher's keys"), "{err}");
        let mut tampered = envelope(&manifest("acme.clock"), &[&key]);
        let mut other = manifest("acme.clock");
        other.version = "9.9.9".parse().unwrap();
        tampered.payload = envelope(&other, &[]).payload;
        assert!(matches!(rec.verify_release(&tampered), Err(ReleaseSignatureError::Threshold { valid: 0, .. })));
    }

    #[test]
    fn one_key_under_two_ids_counts_once_and_a_foreign_id_not_at_all() {
        let a = SigningKey::from_seed([1; 32]);
        let mut rec = record(&[&a], 2);
        let upper = {
            let mut key = a.public().clone();
            let hex = key.public_str().unwrap().to_uppercase();
            key.keyval.insert("public".into(), serde_json::Value::String(hex));
            key
        };
        let upper_id = KeyId::of(&upper).unwrap();
        rec.keys.insert(upper_id.clone(), upper);
        let m = manifest("acme.clock");
        let mut env = envelope(&m, &[&a]);
        let mut second = env.signatures[0].clone();
        second.keyid = upper_id;
        env.signatures.push(second);
        let err = rec.verify_release(&env).unwrap_err();
        assert!(matches!(err, ReleaseSignatureError::Threshold { valid: 1, .. }), "{err}");

        let b = SigningKey::from_seed([2; 32]);
        let mut lying = record(&[&a], 1);
        lying.keys = BTreeMap::from([(KeyId("not-the-id".into()), a.public().clone())]);
        let mut env = envelope(&m, &[&a]);
        env.signatures[0].keyid = KeyId("not-the-id".into());
        assert!(lying.verify_release(&env).unwrap_err().to_string().contains("not its own"));
        let _ = b;
    }

    #[test]
    fn a_revoked_key_stays_revoked_under_a_second_id() {
        let a = SigningKey::from_seed([1; 32]);
        let mut rec = record(&[], 1);
        rec.revoked.push(RevokedKey {
            keyid: a.key_id().clone(),
            revoked_at: "2026-10-01".into(),
            reason: "leaked".into(),
            key: Some(a.public().clone()),
        });
        let mut upper = a.public().clone();
        let hex = upper.public_str().unwrap().to_uppercase();
        upper.keyval.insert("public".into(), serde_json::Value::String(hex));
        let upper_id = KeyId::of(&upper).unwrap();
        rec.keys.insert(upper_id.clone(), upper);
        let mut env = envelope(&manifest("acme.clock"), &[&a]);
        env.signatures[0].keyid = upper_id;
        let err = rec.verify_release(&env).unwrap_err();
        assert!(err.to_string().contains("revoked on 2026-10-01"), "{err}");
        assert!(err.is_revocation());
    }
}
