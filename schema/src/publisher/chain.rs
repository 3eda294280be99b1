//! The version chain of a publisher record: key continuity, like TUF's root chain.
//!
//! A published record target carries every version of the record, oldest first:
//! `{"records": [{"signed": <record v1>, "signatures": […]}, …]}`, each signature over
//! the canonical JSON of `signed`. The chain is valid when
//!
//! - versions run 1, 2, 3… without gaps, every record names the publisher, lists each
//!   key under the id computed from the key, no key material twice, no revoked key,
//!   and a threshold between 1 and its number of keys;
//! - every version is signed by a threshold of its **own** keys (proof of possession);
//! - every version after the first is signed by a threshold of the **previous**
//!   version's keys (continuity), or, for a publisher who lost every key, by a
//!   threshold of the registry's offline **recovery** signers (the top-level `targets`
//!   role of the trusted root: [`RecoverySigners`]); it never lists again a key the
//!   previous version revoked.
//!
//! Signatures are counted by decoded key material, never by key-id strings: one key
//! listed under two ids, or signing twice, counts once.
//!
//! A verifier that pinned version `P` ([`PublisherChain::verify`] with `pinned`) starts
//! from its pinned record: the served version `P` must be the pinned one (else a fork),
//! a served head below `P` is a rollback, and only versions above `P` are checked as
//! successors. Without a pin the chain is checked from version 1 (first use is vouched
//! for by the registry's `publishers` role). Sizes are bounded by [`ChainLimits`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::PublisherRecord;
use crate::canonical::{self, CanonicalError};
use crate::id::VendorId;
use crate::key::{KeyId, PublicKey, SigningKey};

/// Bounds on a publisher chain, checked before and while it is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainLimits {
    /// Bytes of the serialized chain.
    pub max_bytes: usize,
    /// Versions in the chain.
    pub max_versions: usize,
    /// Keys listed by one record.
    pub max_keys: usize,
}

impl Default for ChainLimits {
    /// 1 MiB, 256 versions, 64 keys per record: a publisher rotating keys every month
    /// for twenty years stays far below, and a client never parses more than 1 MiB.
    fn default() -> Self {
        Self { max_bytes: 1 << 20, max_versions: 256, max_keys: 64 }
    }
}

/// One signature over a record version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct RecordSignature {
    /// Which key made it.
    pub keyid: KeyId,
    /// The signature bytes, hex.
    pub sig: String,
}

/// One version of a publisher record with its signatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SignedRecord {
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<RecordSignature>,
    /// The record.
    pub signed: PublisherRecord,
}

impl SignedRecord {
    /// Signs `record` with `keys`.
    pub fn sign(record: PublisherRecord, keys: &[&SigningKey]) -> Result<Self, CanonicalError> {
        let mut out = Self { signatures: Vec::new(), signed: record };
        for key in keys {
            out.add_signature(key)?;
        }
        Ok(out)
    }

    /// Adds (or replaces) the signature of `key`.
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), CanonicalError> {
        let message = canonical::to_vec_of(&self.signed)?;
        self.signatures.retain(|s| &s.keyid != key.key_id());
        self.signatures.push(RecordSignature { keyid: key.key_id().clone(), sig: hex::encode(key.sign(&message)) });
        Ok(())
    }
}

/// Every version of one publisher's record, oldest first: what `publishers/<vendor>.json`
/// holds in a registry and what the `publishers` role signs on a site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PublisherChain {
    /// Version 1 first.
    pub records: Vec<SignedRecord>,
}

/// The offline signers that may authorise a new record version for a publisher who
/// lost every key: the registry's top-level `targets` role.
#[derive(Clone, Copy, Debug)]
pub struct RecoverySigners<'a> {
    /// Keys of the role.
    pub keys: &'a BTreeMap<KeyId, PublicKey>,
    /// Signatures required.
    pub threshold: u32,
}

/// Who authorised a record version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// Version 1: its own keys.
    FirstUse,
    /// A threshold of the previous version's keys.
    PreviousKeys,
    /// A threshold of the registry's recovery signers.
    Recovery,
}

/// A chain that verified, and what the verification found.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedChain<'a> {
    /// The newest version: the record releases are checked against.
    pub head: &'a SignedRecord,
    /// The versions checked as successors (above the pin), with who authorised each.
    pub checked: Vec<(u64, Authority)>,
}

/// Why a publisher chain is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("publisher {publisher}'s record chain: {problem}")]
pub struct ChainError {
    /// The publisher.
    pub publisher: String,
    /// What is wrong.
    pub problem: ChainProblem,
}

/// What is wrong with a publisher chain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainProblem {
    /// Over [`ChainLimits::max_bytes`].
    #[error("{bytes} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size.
        bytes: usize,
        /// Limit.
        limit: usize,
    },
    /// Over [`ChainLimits::max_versions`].
    #[error("{versions} versions, over the limit of {limit}")]
    TooManyVersions {
        /// Versions.
        versions: usize,
        /// Limit.
        limit: usize,
    },
    /// Not a chain document (a bare record of an older registry format, or garbage).
    #[error("not a publisher record chain ({0}); records are written by `trellis-index publisher`")]
    Parse(String),
    /// No versions at all.
    #[error("holds no record")]
    Empty,
    /// Versions do not run 1, 2, 3….
    #[error("entry {index} has version {found}, expected {expected}; versions run 1, 2, 3… without gaps")]
    VersionGap {
        /// Position in the chain (1-based).
        index: usize,
        /// Version found.
        found: u64,
        /// Version expected.
        expected: u64,
    },
    /// A record is malformed.
    #[error("version {version}: {problem}")]
    Record {
        /// Its version.
        version: u64,
        /// What is wrong.
        problem: String,
    },
    /// A version is not signed by a threshold of its own keys.
    #[error(
        "version {version} is signed by {valid} of its own keys, {threshold} required (every version proves possession of its keys)"
    )]
    OwnThreshold {
        /// Version.
        version: u64,
        /// Valid signatures by its keys.
        valid: u32,
        /// Its threshold.
        threshold: u32,
    },
    /// A version is not a valid successor of the one before.
    #[error(
        "version {version} is not signed by {threshold} of version {previous}'s keys (found {valid}){}; \
         only the publisher's current keys (or the registry's offline recovery signers) can change its keys",
        recovery.map(|(v, t)| format!(" nor by {t} of the registry's recovery signers (found {v})")).unwrap_or_default()
    )]
    NotSuccessor {
        /// Version refused.
        version: u64,
        /// The version before.
        previous: u64,
        /// Valid signatures by the previous keys.
        valid: u32,
        /// The previous threshold.
        threshold: u32,
        /// Valid recovery signatures and the recovery threshold, when recovery signers are known.
        recovery: Option<(u32, u32)>,
    },
    /// A version lists again a key the previous version revoked.
    #[error("version {version} lists key {keyid}…, which version {previous} revoked")]
    ReAddsRevoked {
        /// Version.
        version: u64,
        /// The previous version.
        previous: u64,
        /// The key (short id).
        keyid: String,
    },
    /// The served head is older than the pinned version.
    #[error("serves version {served}, older than version {pinned} already trusted here (rollback)")]
    Rollback {
        /// Pinned version.
        pinned: u64,
        /// Served head version.
        served: u64,
    },
    /// The served copy of the pinned version differs from the pinned record.
    #[error("serves a version {version} that differs from the version {version} already trusted here (forked history)")]
    Fork {
        /// The version.
        version: u64,
    },
}

/// The decoded key material of `key` ([`PublicKey::material`]'s identity: family and
/// bytes, however the hex or PEM is written), the one identity signatures are counted
/// by. `None` for a key without usable material (such a key never verifies anything).
pub(crate) fn key_material(key: &PublicKey) -> Option<String> {
    let material = key.material().ok()?;
    let (algorithm, bytes) = material.identity();
    Some(format!("{algorithm:?}:{}", hex::encode(bytes)))
}

/// Whether `keyid` is the id computed from `key`.
pub(crate) fn id_is_bound(keyid: &KeyId, key: &PublicKey) -> bool {
    KeyId::of(key).is_ok_and(|id| &id == keyid)
}

/// Valid signatures of `message` among `signatures` by distinct key material of `keys`,
/// not counting materials in `excluded`.
fn count(
    message: &[u8],
    signatures: &[RecordSignature],
    keys: &BTreeMap<KeyId, PublicKey>,
    excluded: &BTreeSet<String>,
) -> u32 {
    let mut counted = BTreeSet::new();
    for signature in signatures {
        let Some(key) = keys.get(&signature.keyid) else { continue };
        let Some(material) = key_material(key) else { continue };
        if excluded.contains(&material) || counted.contains(&material) {
            continue;
        }
        let Ok(sig) = hex::decode(&signature.sig) else { continue };
        if key.verify(message, &sig).is_ok() {
            counted.insert(material);
        }
    }
    u32::try_from(counted.len()).unwrap_or(u32::MAX)
}

impl PublisherRecord {
    /// The problems of this record on its own (vendor, bound key ids, distinct keys,
    /// no revoked key listed, a reachable threshold), as a sentence.
    pub fn check(&self, vendor: &VendorId, limits: &ChainLimits) -> Result<(), String> {
        if &self.id != vendor {
            return Err(format!("names publisher {}, expected {vendor}", self.id));
        }
        if self.keys.len() > limits.max_keys {
            return Err(format!("lists {} keys, over the limit of {}", self.keys.len(), limits.max_keys));
        }
        let mut materials: BTreeMap<String, &KeyId> = BTreeMap::new();
        for (keyid, key) in &self.keys {
            if !id_is_bound(keyid, key) {
                let computed = KeyId::of(key).map(|id| id.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(format!("lists a key under id {keyid}, but that key's id is {computed}"));
            }
            let material =
                key_material(key).ok_or_else(|| format!("key {}… has no usable public key", keyid.short()))?;
            if let Some(first) = materials.insert(material, keyid) {
                return Err(format!("lists one key twice, as {}… and {}…", first.short(), keyid.short()));
            }
            if self.revocation(keyid).is_some() {
                return Err(format!("lists key {}… as a current key and as revoked", keyid.short()));
            }
        }
        if self.keys.len() + self.license_keys.len() > limits.max_keys {
            return Err(format!(
                "lists {} release and {} license keys, over the limit of {}",
                self.keys.len(),
                self.license_keys.len(),
                limits.max_keys
            ));
        }
        for (keyid, key) in &self.license_keys {
            if !id_is_bound(keyid, key) {
                let computed = KeyId::of(key).map(|id| id.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(format!("lists a license key under id {keyid}, but that key's id is {computed}"));
            }
            let material =
                key_material(key).ok_or_else(|| format!("license key {}… has no usable public key", keyid.short()))?;
            if let Some(first) = materials.insert(material, keyid) {
                return Err(format!("lists one key twice, as {}… and {}…", first.short(), keyid.short()));
            }
            if self.revocation(keyid).is_some() {
                return Err(format!("lists key {}… as a current license key and as revoked", keyid.short()));
            }
        }
        let revoked = self.revoked_materials();
        if let Some((_, r)) = revoked.iter().find(|(m, _)| materials.contains_key(*m)) {
            return Err(format!("lists the key it revoked as {}… under another id", r.keyid.short()));
        }
        let keys = u32::try_from(materials.len() - self.license_keys.len()).unwrap_or(u32::MAX);
        if self.threshold == 0 || self.threshold > keys {
            return Err(format!(
                "threshold {} with {keys} key(s); it must be between 1 and the number of keys",
                self.threshold
            ));
        }
        Ok(())
    }
}

impl PublisherChain {
    /// Parses a chain from untrusted bytes, refusing more than `limits` allows.
    pub fn from_slice(vendor: &VendorId, bytes: &[u8], limits: &ChainLimits) -> Result<Self, ChainError> {
        let fail = |problem| ChainError { publisher: vendor.to_string(), problem };
        if bytes.len() > limits.max_bytes {
            return Err(fail(ChainProblem::TooLarge { bytes: bytes.len(), limit: limits.max_bytes }));
        }
        let chain: Self = crate::json::from_slice(bytes).map_err(|e| fail(ChainProblem::Parse(e.to_string())))?;
        if chain.records.len() > limits.max_versions {
            return Err(fail(ChainProblem::TooManyVersions {
                versions: chain.records.len(),
                limit: limits.max_versions,
            }));
        }
        Ok(chain)
    }

    /// A chain of one version, signed by `keys`.
    pub fn first(record: PublisherRecord, keys: &[&SigningKey]) -> Result<Self, CanonicalError> {
        Ok(Self { records: vec![SignedRecord::sign(record, keys)?] })
    }

    /// The newest version, if any.
    pub fn head(&self) -> Option<&SignedRecord> {
        self.records.last()
    }

    /// The publisher this chain is about (from its newest version).
    pub fn vendor(&self) -> Option<&VendorId> {
        self.head().map(|h| &h.signed.id)
    }

    /// Its canonical JSON: the bytes a site publishes.
    pub fn to_canonical(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::to_vec_of(self)
    }

    /// Verifies the chain for `vendor` (see the module docs): from `pinned` when the
    /// verifier trusts a version already, else from version 1. `recovery` are the
    /// registry's recovery signers, when known.
    pub fn verify(
        &self,
        vendor: &VendorId,
        pinned: Option<&SignedRecord>,
        recovery: Option<RecoverySigners<'_>>,
        limits: &ChainLimits,
    ) -> Result<VerifiedChain<'_>, ChainError> {
        let fail = |problem| ChainError { publisher: vendor.to_string(), problem };
        let Some(head) = self.head() else { return Err(fail(ChainProblem::Empty)) };
        if self.records.len() > limits.max_versions {
            return Err(fail(ChainProblem::TooManyVersions {
                versions: self.records.len(),
                limit: limits.max_versions,
            }));
        }
        let mut messages = Vec::with_capacity(self.records.len());
        for (index, entry) in self.records.iter().enumerate() {
            let expected = index as u64 + 1;
            let record = &entry.signed;
            if record.version != expected {
                return Err(fail(ChainProblem::VersionGap { index: index + 1, found: record.version, expected }));
            }
            record
                .check(vendor, limits)
                .map_err(|problem| fail(ChainProblem::Record { version: expected, problem }))?;
            let message = canonical::to_vec_of(record)
                .map_err(|e| fail(ChainProblem::Record { version: expected, problem: e.to_string() }))?;
            let valid = count(&message, &entry.signatures, &record.keys, &BTreeSet::new());
            if valid < record.threshold {
                return Err(fail(ChainProblem::OwnThreshold { version: expected, valid, threshold: record.threshold }));
            }
            messages.push(message);
        }
        let start = match pinned {
            None => 1,
            Some(pin) => {
                let pinned_version = pin.signed.version;
                if head.signed.version < pinned_version {
                    return Err(fail(ChainProblem::Rollback { pinned: pinned_version, served: head.signed.version }));
                }
                let served = usize::try_from(pinned_version).ok().and_then(|v| self.records.get(v.wrapping_sub(1)));
                if served.map(|s| &s.signed) != Some(&pin.signed) {
                    return Err(fail(ChainProblem::Fork { version: pinned_version }));
                }
                usize::try_from(pinned_version).unwrap_or(usize::MAX)
            }
        };
        let mut checked = Vec::new();
        if pinned.is_none() {
            checked.push((1, Authority::FirstUse));
        }
        for (index, (entry, message)) in self.records.iter().zip(&messages).enumerate().skip(start) {
            let previous = &self.records[index - 1].signed;
            let version = entry.signed.version;
            let excluded: BTreeSet<String> = previous.revoked_materials().into_keys().collect();
            if let Some((keyid, _)) = entry
                .signed
                .keys
                .iter()
                .chain(&entry.signed.license_keys)
                .find(|(_, key)| key_material(key).is_some_and(|m| excluded.contains(&m)))
            {
                return Err(fail(ChainProblem::ReAddsRevoked {
                    version,
                    previous: previous.version,
                    keyid: keyid.short().to_owned(),
                }));
            }
            let valid = count(message, &entry.signatures, &previous.keys, &excluded);
            if valid >= previous.threshold {
                checked.push((version, Authority::PreviousKeys));
                continue;
            }
            let recovered = recovery
                .map(|r| (count(&messages[index], &entry.signatures, r.keys, &BTreeSet::new()), r.threshold.max(1)));
            match recovered {
                Some((v, t)) if v >= t => checked.push((version, Authority::Recovery)),
                _ => {
                    return Err(fail(ChainProblem::NotSuccessor {
                        version,
                        previous: previous.version,
                        valid,
                        threshold: previous.threshold,
                        recovery: recovered,
                    }));
                }
            }
        }
        Ok(VerifiedChain { head, checked })
    }

    /// Whether `self` extends `published` (same versions first, then any new ones).
    pub fn extends(&self, published: &Self) -> bool {
        published.records.len() <= self.records.len()
            && published.records.iter().zip(&self.records).all(|(a, b)| a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::RevokedKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    fn vendor() -> VendorId {
        "acme".parse().unwrap()
    }

    fn record(version: u64, keys: &[&SigningKey], threshold: u32) -> PublisherRecord {
        PublisherRecord {
            id: vendor(),
            version,
            name: "Acme".into(),
            website: None,
            contact: None,
            keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
            threshold,
            revoked: vec![],
            license_keys: BTreeMap::new(),
        }
    }

    fn verify<'a>(chain: &'a PublisherChain, pinned: Option<&SignedRecord>) -> Result<VerifiedChain<'a>, ChainError> {
        chain.verify(&vendor(), pinned, None, &ChainLimits::default())
    }

    fn problem(result: Result<VerifiedChain<'_>, ChainError>) -> ChainProblem {
        result.unwrap_err().problem
    }

    #[test]
    fn continuity_accepts_a_rotation_signed_by_old_and_new_keys() {
        let (a, b) = (key(1), key(2));
        let mut chain = PublisherChain::first(record(1, &[&a], 1), &[&a]).unwrap();
        chain.records.push(SignedRecord::sign(record(2, &[&b], 1), &[&a, &b]).unwrap());
        let verified = verify(&chain, None).unwrap();
        assert_eq!(verified.head.signed.version, 2);
        assert_eq!(verified.checked, vec![(1, Authority::FirstUse), (2, Authority::PreviousKeys)]);
    }

    #[test]
    fn refuses_a_version_not_signed_by_the_previous_keys() {
        let (a, attacker) = (key(1), key(9));
        let mut chain = PublisherChain::first(record(1, &[&a], 1), &[&a]).unwrap();
        chain.records.push(SignedRecord::sign(record(2, &[&a, &attacker], 1), &[&attacker]).unwrap());
        let err = verify(&chain, None).unwrap_err();
        assert!(matches!(err.problem, ChainProblem::NotSuccessor { version: 2, valid: 0, threshold: 1, .. }), "{err}");
        assert!(err.to_string().contains("only the publisher's current keys"), "{err}");
    }

    #[test]
    fn every_version_proves_possession_of_its_own_keys() {
        let (a, b) = (key(1), key(2));
        let chain = PublisherChain::first(record(1, &[&a], 1), &[&b]).unwrap();
        assert!(matches!(problem(verify(&chain, None)), ChainProblem::OwnThreshold { version: 1, .. }));
        let mut chain = PublisherChain::first(record(1, &[&a], 1), &[&a]).unwrap();
        chain.records.push(SignedRecord::sign(record(2, &[&b], 1), &[&a]).unwrap());
        assert!(matches!(problem(verify(&chain, None)), ChainProblem::OwnThreshold { version: 2, .. }));
    }

    #[test]
    fn one_key_under_two_ids_is_refused_and_never_meets_a_threshold_of_two() {
        let a = key(1);
        let mut rec = record(1, &[&a], 2);
        let mut upper = a.public().clone();
        let hex = upper.public_str().unwrap().to_uppercase();
        upper.keyval.insert("public".into(), serde_json::Value::String(hex));
        let upper_id = KeyId::of(&upper).unwrap();
        rec.keys.insert(upper_id.clone(), upper);
        let mut signed = SignedRecord::sign(rec.clone(), &[&a]).unwrap();
        let mut twice = signed.signatures[0].clone();
        twice.keyid = upper_id;
        signed.signatures.push(twice);
        let chain = PublisherChain { records: vec![signed] };
        let err = verify(&chain, None).unwrap_err();
        assert!(err.to_string().contains("lists one key twice"), "{err}");
        // A key listed under an id that is not its own.
        let mut lying = record(1, &[], 1);
        lying.keys.insert(key(2).key_id().clone(), a.public().clone());
        let chain = PublisherChain::first(lying, &[&a]).unwrap();
        assert!(verify(&chain, None).unwrap_err().to_string().contains("but that key's id is"));
    }

    #[test]
    fn recovery_signers_replace_lost_keys_and_nothing_else_does() {
        let (lost, new, targets) = (key(1), key(2), key(7));
        let mut chain = PublisherChain::first(record(1, &[&lost], 1), &[&lost]).unwrap();
        chain.records.push(SignedRecord::sign(record(2, &[&new], 1), &[&new, &targets]).unwrap());
        let recovery_keys = BTreeMap::from([(targets.key_id().clone(), targets.public().clone())]);
        let recovery = RecoverySigners { keys: &recovery_keys, threshold: 1 };
        let verified = chain.verify(&vendor(), None, Some(recovery), &ChainLimits::default()).unwrap();
        assert_eq!(verified.checked.last(), Some(&(2, Authority::Recovery)));
        let err = chain
            .verify(
                &vendor(),
                None,
                Some(RecoverySigners { keys: &recovery_keys, threshold: 2 }),
                &ChainLimits::default(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("nor by 2 of the registry's recovery signers (found 1)"), "{err}");
    }

    #[test]
    fn a_pin_refuses_rollback_and_forks_and_checks_only_newer_versions() {
        let (a, b) = (key(1), key(2));
        let mut chain = PublisherChain::first(record(1, &[&a], 1), &[&a]).unwrap();
        chain.records.push(SignedRecord::sign(record(2, &[&b], 1), &[&a, &b]).unwrap());
        let pin = chain.records[1].clone();
        let old = PublisherChain { records: vec![chain.records[0].clone()] };
        assert_eq!(problem(verify(&old, Some(&pin))), ChainProblem::Rollback { pinned: 2, served: 1 });
        let mut forked = chain.clone();
        forked.records[1] = SignedRecord::sign(record(2, &[&a, &b], 1), &[&a, &b]).unwrap();
        assert_eq!(problem(verify(&forked, Some(&pin))), ChainProblem::Fork { version: 2 });
        let verified = verify(&chain, Some(&pin)).unwrap();
        assert!(verified.checked.is_empty());
        chain.records.push(SignedRecord::sign(record(3, &[&a], 1), &[&b, &a]).unwrap());
        assert_eq!(verify(&chain, Some(&pin)).unwrap().checked, vec![(3, Authority::PreviousKeys)]);
    }

    #[test]
    fn a_revoked_key_cannot_sign_the_successor_nor_come_back() {
        let (a, b) = (key(1), key(2));
        let mut v1 = record(1, &[&b], 1);
        v1.revoked.push(RevokedKey {
            keyid: a.key_id().clone(),
            revoked_at: "2026-10-01".into(),
            reason: "leaked".into(),
            key: Some(a.public().clone()),
        });
        let mut chain = PublisherChain::first(v1, &[&b]).unwrap();
        chain.records.push(SignedRecord::sign(record(2, &[&a], 1), &[&a, &b]).unwrap());
        assert!(matches!(problem(verify(&chain, None)), ChainProblem::ReAddsRevoked { version: 2, .. }));
    }

    #[test]
    fn license_keys_are_bound_distinct_out_of_the_threshold_and_stay_revoked() {
        let (a, l, other) = (key(1), key(5), key(6));
        let record_problem =
            |record: PublisherRecord| match problem(verify(&PublisherChain::first(record, &[&a]).unwrap(), None)) {
                ChainProblem::Record { problem, .. } => problem,
                other => panic!("{other:?}"),
            };
        let mut lying = record(1, &[&a], 1);
        lying.license_keys.insert(l.key_id().clone(), other.public().clone());
        assert!(record_problem(lying).contains("lists a license key under id"));
        let mut twice = record(1, &[&a], 1);
        twice.license_keys.insert(a.key_id().clone(), a.public().clone());
        assert!(record_problem(twice).contains("lists one key twice"));
        let mut threshold = record(1, &[&a], 2);
        threshold.license_keys.insert(l.key_id().clone(), l.public().clone());
        assert!(record_problem(threshold).contains("threshold 2 with 1 key(s)"));
        // A license key the publisher revoked cannot come back as a license key.
        let mut v1 = record(1, &[&a], 1);
        v1.license_keys.insert(l.key_id().clone(), l.public().clone());
        let mut chain = PublisherChain::first(v1, &[&a]).unwrap();
        let mut v2 = record(2, &[&a], 1);
        v2.revoked.push(RevokedKey {
            keyid: l.key_id().clone(),
            revoked_at: "2026-12-24".into(),
            reason: "webhook leaked".into(),
            key: Some(l.public().clone()),
        });
        chain.records.push(SignedRecord::sign(v2, &[&a]).unwrap());
        verify(&chain, None).unwrap();
        // Version 3 drops the revocation and lists the key again.
        let mut v3 = record(3, &[&a], 1);
        v3.license_keys.insert(l.key_id().clone(), l.public().clone());
        chain.records.push(SignedRecord::sign(v3, &[&a]).unwrap());
        assert!(matches!(problem(verify(&chain, None)), ChainProblem::ReAddsRevoked { version: 3, .. }));
    }

    #[test]
    fn versions_must_run_without_gaps_and_limits_hold() {
        let a = key(1);
        let chain = PublisherChain::first(record(2, &[&a], 1), &[&a]).unwrap();
        assert!(matches!(problem(verify(&chain, None)), ChainProblem::VersionGap { found: 2, expected: 1, .. }));
        let bytes = serde_json::to_vec(&PublisherChain::first(record(1, &[&a], 1), &[&a]).unwrap()).unwrap();
        let tight = ChainLimits { max_bytes: 10, ..ChainLimits::default() };
        assert!(matches!(
            PublisherChain::from_slice(&vendor(), &bytes, &tight).unwrap_err().problem,
            ChainProblem::TooLarge { .. }
        ));
        PublisherChain::from_slice(&vendor(), &bytes, &ChainLimits::default()).unwrap();
    }
}
