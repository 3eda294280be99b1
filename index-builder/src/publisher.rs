//! Publisher record chains as a developer (or, for recovery, the registry's offline
//! key holders) writes them: `trellis-index publisher init | update | recover`.
//!
//! Owns producing the next version of a record: version 1 signed by its own keys;
//! version N+1 with keys added, removed or revoked and a new threshold, signed by the
//! current keys (continuity) and by every key it lists that is at hand (proof of
//! possession); and the recovery version for a publisher who lost every key, signed by
//! the registry's `targets` keys and the new keys. Every result is verified like the
//! builder and clients will ([`PublisherChain::verify`]) before it is returned, so a
//! developer learns of a missing signature here, not at build. Reading and writing the
//! files is the binary's job; the rules are [`trellis_schema::publisher::chain`]'s.

use std::collections::{BTreeMap, BTreeSet};

use trellis_schema::publisher::{
    ChainError, ChainLimits, PublisherChain, PublisherRecord, RecoverySigners, RevokedKey, SignedRecord,
};
use trellis_schema::{KeyId, PublicKey, SigningKey, VendorId, canonical};

/// Why a record version could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PublisherToolError {
    /// The chain that would result does not verify.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The record has no canonical form.
    #[error(transparent)]
    Canonical(#[from] canonical::CanonicalError),
    /// The chain to extend is empty.
    #[error("the record chain holds no version")]
    Empty,
    /// A license key to add has no key id.
    #[error("the license key to add has no key id: {0}")]
    BadLicenseKey(String),
    /// A key to remove or revoke is not in the record.
    #[error("key {keyid} is not a current key of publisher {publisher}")]
    UnknownKey {
        /// The publisher.
        publisher: String,
        /// The key id given.
        keyid: String,
    },
}

/// What a new version of a record changes.
#[derive(Debug, Default)]
pub struct RecordChange {
    /// Keys to add (they sign the new version: proof of possession).
    pub add: Vec<SigningKey>,
    /// Keys to drop without revoking them (their old signatures stay valid under old
    /// versions only; releases must be re-signed to verify under the new head).
    pub remove: Vec<KeyId>,
    /// Keys to revoke (release or license keys), with the reason.
    pub revoke: Vec<(KeyId, String)>,
    /// License keys to add: they sign license tokens only, so they need not sign the
    /// record (the publisher's current keys vouch for them).
    pub add_license: Vec<PublicKey>,
    /// The new threshold (default: unchanged, capped at the number of keys).
    pub threshold: Option<u32>,
    /// When the revocations take effect (RFC 3339 date).
    pub revoked_at: String,
}

/// Version 1 of a record for `id`, listing `keys` with `threshold`, signed by them.
pub fn init(
    id: VendorId,
    name: String,
    website: Option<String>,
    contact: Option<String>,
    keys: &[SigningKey],
    threshold: u32,
) -> Result<PublisherChain, PublisherToolError> {
    let record = PublisherRecord {
        id: id.clone(),
        version: 1,
        name,
        website,
        contact,
        keys: keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(),
        threshold,
        revoked: Vec::new(),
        license_keys: std::collections::BTreeMap::new(),
    };
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let chain = PublisherChain::first(record, &refs)?;
    chain.verify(&id, None, None, &ChainLimits::default())?;
    Ok(chain)
}

/// `chain` with one more version applying `change`, signed by `signers` (current keys
/// of the head) and the added keys.
pub fn update(
    chain: &PublisherChain,
    signers: &[SigningKey],
    change: RecordChange,
) -> Result<PublisherChain, PublisherToolError> {
    let head = chain.head().ok_or(PublisherToolError::Empty)?.signed.clone();
    let vendor = head.id.clone();
    let mut next = head.clone();
    next.version = head.version + 1;
    for key in &change.add {
        next.keys.insert(key.key_id().clone(), key.public().clone());
    }
    for key in &change.add_license {
        let keyid = KeyId::of(key).map_err(|e| PublisherToolError::BadLicenseKey(e.to_string()))?;
        next.license_keys.insert(keyid, key.clone());
    }
    for keyid in &change.remove {
        if next.keys.remove(keyid).is_none() && next.license_keys.remove(keyid).is_none() {
            return Err(PublisherToolError::UnknownKey { publisher: vendor.to_string(), keyid: keyid.to_string() });
        }
    }
    for (keyid, reason) in &change.revoke {
        let Some(key) = next.keys.remove(keyid).or_else(|| next.license_keys.remove(keyid)) else {
            return Err(PublisherToolError::UnknownKey { publisher: vendor.to_string(), keyid: keyid.to_string() });
        };
        next.revoked.push(RevokedKey {
            keyid: keyid.clone(),
            revoked_at: change.revoked_at.clone(),
            reason: reason.clone(),
            key: Some(key),
        });
    }
    let listed = u32::try_from(next.keys.len()).unwrap_or(u32::MAX);
    next.threshold = change.threshold.unwrap_or(head.threshold).min(listed.max(1));
    let mut all: Vec<&SigningKey> = signers.iter().collect();
    all.extend(change.add.iter());
    let mut seen = BTreeSet::new();
    all.retain(|k| seen.insert(k.key_id().clone()));
    let mut out = chain.clone();
    out.records.push(SignedRecord::sign(next, &all)?);
    out.verify(&vendor, chain.head(), None, &ChainLimits::default())?;
    Ok(out)
}

/// `chain` with a recovery version: every current key revoked (`reason`), `new_keys`
/// listed with `threshold`, signed by the registry's `recovery` keys (its top-level
/// `targets` keys) and the new keys. The build checks the recovery signatures against
/// the registry's root.
pub fn recover(
    chain: &PublisherChain,
    recovery: &[SigningKey],
    new_keys: &[SigningKey],
    threshold: u32,
    reason: &str,
    revoked_at: &str,
) -> Result<PublisherChain, PublisherToolError> {
    let head = chain.head().ok_or(PublisherToolError::Empty)?.signed.clone();
    let vendor = head.id.clone();
    let mut next = head.clone();
    next.version = head.version + 1;
    for (keyid, key) in std::mem::take(&mut next.keys) {
        next.revoked.push(RevokedKey {
            keyid,
            revoked_at: revoked_at.to_owned(),
            reason: reason.to_owned(),
            key: Some(key),
        });
    }
    next.keys = new_keys.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect();
    next.threshold = threshold;
    let signers: Vec<&SigningKey> = recovery.iter().chain(new_keys).collect();
    let mut out = chain.clone();
    out.records.push(SignedRecord::sign(next, &signers)?);
    let recovery_keys: BTreeMap<KeyId, _> = recovery.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect();
    let signers =
        RecoverySigners { keys: &recovery_keys, threshold: u32::try_from(recovery.len()).unwrap_or(u32::MAX).max(1) };
    out.verify(&vendor, chain.head(), Some(signers), &ChainLimits::default())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn init_update_and_recover_give_chains_that_verify() {
        let (a, b, targets) = (fixture::key(1), fixture::key(2), fixture::key(7));
        let chain = init("acme".parse().unwrap(), "Acme".into(), None, None, std::slice::from_ref(&a), 1).unwrap();
        let change = RecordChange {
            add: vec![b.clone()],
            revoke: vec![(a.key_id().clone(), "laptop stolen".into())],
            revoked_at: "2026-12-01".into(),
            ..RecordChange::default()
        };
        let chain = update(&chain, std::slice::from_ref(&a), change).unwrap();
        let head = &chain.head().unwrap().signed;
        assert_eq!((head.version, head.keys.len(), head.revoked.len()), (2, 1, 1));
        // Without the current key, no update.
        let stranger = fixture::key(9);
        let change = RecordChange { add: vec![stranger.clone()], ..RecordChange::default() };
        let err = update(&chain, std::slice::from_ref(&stranger), change).unwrap_err();
        assert!(err.to_string().contains("is not signed by 1 of version 2's keys"), "{err}");
        let c = fixture::key(3);
        let recovered = recover(&chain, &[targets], std::slice::from_ref(&c), 1, "lost", "2026-12-02").unwrap();
        assert_eq!(recovered.head().unwrap().signed.keys.keys().collect::<Vec<_>>(), vec![c.key_id()]);
    }
}
