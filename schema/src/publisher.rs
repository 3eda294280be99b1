//! Publisher records, and the check of a developer signature against one.
//!
//! A publisher record names a publisher (`acme`), the Ed25519 keys allowed to sign its
//! releases, how many of them must sign, and the keys it revoked. The registry
//! publishes records as targets of the `publishers` role; the builder checks every
//! release against the record before indexing it, and the client checks again before
//! installing, so a compromised registry key alone cannot forge plugin content.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dsse::{Envelope, EnvelopeError, RELEASE_PAYLOAD_TYPE};
use crate::id::VendorId;
use crate::key::{KeyId, PublicKey};
use crate::manifest::ReleaseManifest;

/// A key the publisher no longer vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct RevokedKey {
    /// The key.
    pub keyid: KeyId,
    /// When (RFC 3339 date or timestamp).
    pub revoked_at: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// A publisher record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct PublisherRecord {
    /// Publisher id: the namespace of its plugin ids.
    pub id: VendorId,
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
    /// A second signature by the same key.
    Duplicate,
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

    /// Verifies a release envelope and returns the manifest it vouches for.
    ///
    /// Counts valid signatures by distinct, non-revoked keys of this record, and
    /// checks the plugin lives in this publisher's namespace.
    pub fn verify_release(&self, envelope: &Envelope) -> Result<ReleaseManifest, ReleaseSignatureError> {
        if envelope.payload_type != RELEASE_PAYLOAD_TYPE {
            return Err(ReleaseSignatureError::PayloadType { found: envelope.payload_type.clone() });
        }
        let payload = envelope.payload_bytes()?;
        let manifest: ReleaseManifest =
            serde_json::from_slice(&payload).map_err(|e| ReleaseSignatureError::Payload(e.to_string()))?;
        if !manifest.plugin_id.belongs_to(&self.id) {
            return Err(ReleaseSignatureError::Namespace {
                plugin: manifest.plugin_id.to_string(),
                publisher: self.id.to_string(),
            });
        }
        let message = envelope.signed_message()?;
        let mut counted = BTreeSet::new();
        let mut rejected = Vec::new();
        for signature in &envelope.signatures {
            let keyid = signature.keyid.clone();
            let reason = if let Some(revoked) = self.revocation(&keyid) {
                RejectionReason::Revoked { at: revoked.revoked_at.clone(), reason: revoked.reason.clone() }
            } else if let Some(key) = self.keys.get(&keyid) {
                if counted.contains(&keyid) {
                    RejectionReason::Duplicate
                } else {
                    let verified = Envelope::signature_bytes(signature)
                        .map_err(|e| e.to_string())
                        .and_then(|sig| key.verify(&message, &sig).map_err(|e| e.to_string()));
                    match verified {
                        Ok(()) => {
                            counted.insert(keyid);
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
        Ok(manifest)
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
            name: "Acme".into(),
            website: None,
            contact: None,
            keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
            threshold,
            revoked: vec![],
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
}
