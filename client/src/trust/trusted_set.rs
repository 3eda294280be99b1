//! The in-memory set of trusted top-level metadata and the rules for replacing it
//! (spec §5.3–5.6). Pure: bytes in, decisions out; fetching and persisting belong to
//! [`super::Updater`].
//!
//! Every `update_*` method is transactional: it either replaces the trusted document
//! with a fully checked new one or returns an error and changes nothing. The
//! `load_local_*` methods accept documents read back from our own store: they are
//! verified against the *current* root (so a key rotation in root invalidates them,
//! which is the spec's fast-forward recovery, §5.3.11) but their expiry is not
//! checked, because an expired trusted document is still the reference for rollback
//! checks of its successor.

use std::sync::Arc;

use trellis_schema::tuf::{Root, Snapshot, TargetFile, Targets, Timestamp, TopRole};

use super::delegation;
use super::verify::{
    Authorised, Receipt, Signed, TrustedLeaf, Unverified, Verified, check_length_and_hashes, from_receipt, verify_leaf,
};
use super::{Delegator, KeyIds, TrustError};

/// What [`TrustedSet::update_timestamp`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// A newer timestamp is now trusted (persist it).
    Updated,
    /// The repository serves the version we already trust: keep ours.
    Unchanged,
}

/// Trusted top-level metadata, checked against one reference time. A clone shares
/// the snapshot and the top-level targets (the large documents) with the original.
#[derive(Clone, Debug)]
pub struct TrustedSet {
    now: jiff::Timestamp,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Arc<Verified<Snapshot>>>,
    targets: Option<Arc<Verified<Targets>>>,
    key_ids: KeyIds,
}

fn validate_root(root: &Root, key_ids: KeyIds) -> Result<(), TrustError> {
    delegation::check_key_ids("root", &root.keys, key_ids)?;
    if root.roles.len() != 4 {
        return Err(TrustError::malformed("root", "roles must name exactly root, timestamp, snapshot and targets"));
    }
    for (role, keys) in &root.roles {
        let mut unique = std::collections::HashSet::new();
        if !keys.keyids.iter().all(|k| unique.insert(k)) {
            return Err(TrustError::malformed("root", format!("role {} lists a key id twice", role.as_str())));
        }
        if keys.threshold == 0 {
            return Err(TrustError::malformed("root", format!("role {} has threshold 0", role.as_str())));
        }
    }
    Ok(())
}

impl TrustedSet {
    /// Starts from a trusted root (shipped with the app or persisted): it must be
    /// signed by a threshold of its own root keys. Its expiry is not checked here
    /// (an expired local root may still be rotated forward).
    pub fn new(root_bytes: &[u8], now: jiff::Timestamp) -> Result<Self, TrustError> {
        Self::with_key_ids(root_bytes, now, KeyIds::Bound)
    }

    /// [`TrustedSet::new`] with the given rule for key ids (applied to every root of the
    /// chain and every delegation).
    pub fn with_key_ids(root_bytes: &[u8], now: jiff::Timestamp, key_ids: KeyIds) -> Result<Self, TrustError> {
        let mut unverified = Unverified::parse(root_bytes, "root", "root")?;
        let root: Root = unverified.peek()?;
        validate_root(&root, key_ids)?;
        check_role(&mut unverified, &root, TopRole::Root)?;
        let root = unverified.into_verified(root);
        Ok(Self { now, root, timestamp: None, snapshot: None, targets: None, key_ids })
    }

    /// Applies `key_ids` to the roots and delegations verified from here on.
    pub(crate) fn set_key_ids(&mut self, key_ids: KeyIds) {
        self.key_ids = key_ids;
    }

    /// Judges expiry at `now` from here on (signature checks do not depend on time).
    pub(crate) fn set_now(&mut self, now: jiff::Timestamp) {
        self.now = now;
    }

    /// The reference time.
    pub fn now(&self) -> jiff::Timestamp {
        self.now
    }

    /// The trusted root.
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }

    /// The trusted timestamp, if any.
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if any.
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_deref()
    }

    /// The trusted top-level targets, if loaded.
    pub fn targets(&self) -> Option<&Arc<Verified<Targets>>> {
        self.targets.as_ref()
    }

    /// §5.3: accepts root version N+1, signed by a threshold of the trusted root's
    /// root keys *and* of its own.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TrustError> {
        if self.timestamp.is_some() {
            return Err(TrustError::malformed("root", "root cannot change after timestamp was loaded"));
        }
        let mut unverified = Unverified::parse(bytes, "root", "root")?;
        check_role(&mut unverified, &self.root, TopRole::Root)?;
        let expected = self.root.version() + 1;
        if unverified.version() != expected {
            return Err(TrustError::VersionMismatch { role: "root".into(), expected, actual: unverified.version() });
        }
        let new: Root = unverified.peek()?;
        validate_root(&new, self.key_ids)?;
        check_role(&mut unverified, &new, TopRole::Root)?;
        self.root = unverified.into_verified(new);
        Ok(())
    }

    /// §5.3.10: the final root must not be expired.
    pub fn check_root_fresh(&self) -> Result<(), TrustError> {
        fresh("root", &self.root, self.now)
    }

    /// Adopts our persisted timestamp as the rollback reference (no expiry check).
    /// With a [`Receipt`] that still applies, its signatures are not checked again
    /// (see [`super::verify`]).
    pub fn load_local_timestamp(&mut self, bytes: &[u8], receipt: Option<&Receipt>) -> Result<(), TrustError> {
        let timestamp = self.verify_timestamp(bytes, receipt)?;
        self.timestamp = Some(timestamp);
        Ok(())
    }

    fn top_keys(&self, role: TopRole) -> Result<Authorised<'_>, TrustError> {
        let keys = self.root.roles.get(&role).ok_or(TrustError::NotLoaded("role keys"))?;
        Ok((&self.root.keys, &keys.keyids, keys.threshold))
    }

    /// Verifies the document of the top-level `role` (named `name`) under the trusted
    /// root, or types it under a [`Receipt`] that still applies (see [`super::verify`]).
    fn verify_top<T: Signed>(
        &self,
        bytes: &[u8],
        role: TopRole,
        name: &str,
        receipt: Option<&Receipt>,
    ) -> Result<Verified<T>, TrustError> {
        if let Some(doc) = from_receipt(bytes, name, name, receipt, self.top_keys(role)?) {
            return doc;
        }
        let mut unverified = Unverified::parse(bytes, name, name)?;
        check_role(&mut unverified, &self.root, role)?;
        unverified.into_typed()
    }

    fn verify_timestamp(&self, bytes: &[u8], receipt: Option<&Receipt>) -> Result<Verified<Timestamp>, TrustError> {
        let timestamp: Verified<Timestamp> = self.verify_top(bytes, TopRole::Timestamp, "timestamp", receipt)?;
        if timestamp.meta.len() != 1 || !timestamp.meta.contains_key("snapshot.json") {
            return Err(TrustError::malformed("timestamp", "meta must hold exactly snapshot.json"));
        }
        Ok(timestamp)
    }

    /// §5.4: a new timestamp. Refuses rollback of its version or of the snapshot
    /// version it names, and expiry; an equal version leaves ours in place.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate, TrustError> {
        if self.snapshot.is_some() {
            return Err(TrustError::malformed("timestamp", "timestamp cannot change after snapshot was loaded"));
        }
        self.check_root_fresh()?;
        let new = self.verify_timestamp(bytes, None)?;
        if let Some(old) = &self.timestamp {
            if new.version() < old.version() {
                return Err(TrustError::Rollback {
                    role: "timestamp".into(),
                    trusted: old.version(),
                    new: new.version(),
                });
            }
            if new.version() == old.version() {
                return Ok(TimestampUpdate::Unchanged);
            }
            let (old_snapshot, new_snapshot) = (snapshot_meta(old).version, snapshot_meta(&new).version);
            if new_snapshot < old_snapshot {
                return Err(TrustError::Rollback { role: "snapshot".into(), trusted: old_snapshot, new: new_snapshot });
            }
        }
        fresh("timestamp", &new, self.now)?;
        self.timestamp = Some(new);
        Ok(TimestampUpdate::Updated)
    }

    /// Whether this set is a whole chain usable as it is at its reference time: root
    /// and timestamp unexpired, the snapshot the timestamp names, unexpired, and the
    /// top-level targets, unexpired (what a refresh ends with, and what a `304` on the
    /// timestamp confirms).
    pub(crate) fn holds_final_chain(&self) -> bool {
        let Ok(timestamp) = self.final_timestamp() else { return false };
        self.check_root_fresh().is_ok()
            && self
                .snapshot
                .as_ref()
                .is_some_and(|s| s.version() == snapshot_meta(timestamp).version && !s.is_expired(self.now))
            && self.targets.as_ref().is_some_and(|t| !t.is_expired(self.now))
    }

    /// §5.4.4 for the timestamp we keep: the final timestamp must not be expired.
    pub fn check_timestamp_fresh(&self) -> Result<(), TrustError> {
        self.final_timestamp().map(|_| ())
    }

    fn final_timestamp(&self) -> Result<&Verified<Timestamp>, TrustError> {
        let timestamp = self.timestamp.as_ref().ok_or(TrustError::NotLoaded("timestamp"))?;
        fresh("timestamp", timestamp, self.now)?;
        Ok(timestamp)
    }

    /// Adopts our persisted snapshot as the rollback reference. Returns whether it is
    /// also the final snapshot (the version the timestamp names, unexpired), in which
    /// case nothing needs downloading. With a [`Receipt`] that still applies, its
    /// signatures are not checked again (see [`super::verify`]).
    pub fn load_local_snapshot(&mut self, bytes: &[u8], receipt: Option<&Receipt>) -> Result<bool, TrustError> {
        let timestamp = self.final_timestamp()?;
        let expected = snapshot_meta(timestamp).version;
        let snapshot: Verified<Snapshot> = self.verify_top(bytes, TopRole::Snapshot, "snapshot", receipt)?;
        let is_final = snapshot.version() == expected && !snapshot.is_expired(self.now);
        self.snapshot = Some(Arc::new(snapshot));
        Ok(is_final)
    }

    /// §5.5: a new snapshot, matching the timestamp's length/hashes and version, not
    /// dropping or rolling back any role the trusted snapshot lists, unexpired.
    pub fn update_snapshot(&mut self, bytes: &[u8]) -> Result<(), TrustError> {
        let timestamp = self.final_timestamp()?;
        let meta = snapshot_meta(timestamp);
        check_length_and_hashes("snapshot.json", bytes, meta.length, meta.hashes.as_ref())?;
        let expected = meta.version;
        let mut unverified = Unverified::parse(bytes, "snapshot", "snapshot")?;
        check_role(&mut unverified, &self.root, TopRole::Snapshot)?;
        let new: Verified<Snapshot> = unverified.into_typed()?;
        if let Some(old) = &self.snapshot {
            for (file, old_meta) in &old.meta {
                let new_meta = new
                    .meta
                    .get(file)
                    .ok_or_else(|| TrustError::RoleRemoved { version: new.version(), file: file.clone() })?;
                if new_meta.version < old_meta.version {
                    return Err(TrustError::Rollback {
                        role: file.trim_end_matches(".json").to_owned(),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        if new.version() != expected {
            return Err(TrustError::VersionMismatch { role: "snapshot".into(), expected, actual: new.version() });
        }
        fresh("snapshot", &new, self.now)?;
        self.snapshot = Some(Arc::new(new));
        Ok(())
    }

    fn final_snapshot(&self) -> Result<&Verified<Snapshot>, TrustError> {
        let timestamp = self.final_timestamp()?;
        let snapshot = self.snapshot.as_ref().ok_or(TrustError::NotLoaded("snapshot"))?;
        let expected = snapshot_meta(timestamp).version;
        if snapshot.version() != expected {
            return Err(TrustError::VersionMismatch { role: "snapshot".into(), expected, actual: snapshot.version() });
        }
        fresh("snapshot", snapshot, self.now)?;
        Ok(snapshot)
    }

    /// The version snapshot gives `role` (for consistent-snapshot URLs) and whether it
    /// is listed at all.
    pub fn snapshot_version_of(&self, role: &str) -> Result<u64, TrustError> {
        let snapshot = self.final_snapshot()?;
        snapshot
            .meta
            .get(&format!("{role}.json"))
            .map(|m| m.version)
            .ok_or_else(|| TrustError::NotInSnapshot { role: role.to_owned() })
    }

    /// §5.6/§5.7: verifies targets metadata of `role` as delegated by `delegator`:
    /// snapshot's length/hashes and version, the delegator's keys and threshold,
    /// expiry. Does not store it.
    pub fn verify_targets(
        &self,
        role: &str,
        delegator: Delegator<'_>,
        bytes: &[u8],
    ) -> Result<Verified<Targets>, TrustError> {
        self.verify_local_targets(role, delegator, bytes, None)
    }

    /// [`TrustedSet::verify_targets`] for a copy from our own store: with a
    /// [`Receipt`] that still applies to the delegator's current keys, signatures are
    /// not checked again (see [`super::verify`]); every other check runs.
    pub fn verify_local_targets(
        &self,
        role: &str,
        delegator: Delegator<'_>,
        bytes: &[u8],
        receipt: Option<&Receipt>,
    ) -> Result<Verified<Targets>, TrustError> {
        let (expected, authorised) = self.targets_preconditions(role, delegator, bytes)?;
        let targets: Verified<Targets> = match from_receipt(bytes, role, "targets", receipt, authorised) {
            Some(targets) => targets?,
            None => {
                let (keys, keyids, threshold) = authorised;
                Unverified::parse(bytes, role, "targets")?.verify(keys, keyids, threshold)?
            }
        };
        check_version_and_expiry(role, expected, targets.version(), targets.expires(), self.now)?;
        delegation::validate(role, &targets, self.key_ids)?;
        Ok(targets)
    }

    /// A delegated role from our store as a [`TrustedLeaf`] (bytes searched per
    /// lookup) when its [`Receipt`] applies and it delegates nothing, with the entry of
    /// `path` read in the same pass; `None` when it must be loaded in full
    /// ([`TrustedSet::verify_local_targets`]). The snapshot's version, length and
    /// hashes and the expiry are checked as for a full load.
    pub fn verify_local_leaf(
        &self,
        role: &str,
        delegator: Delegator<'_>,
        bytes: Vec<u8>,
        receipt: Option<&Receipt>,
        path: &str,
    ) -> Option<Result<(TrustedLeaf, Option<TargetFile>), TrustError>> {
        let (expected, authorised) = match self.targets_preconditions(role, delegator, &bytes) {
            Ok(checked) => checked,
            Err(e) => return Some(Err(e)),
        };
        let leaf = verify_leaf(bytes, role, receipt, authorised, path)?;
        Some(leaf.and_then(|(leaf, found)| {
            check_version_and_expiry(role, expected, leaf.version(), leaf.expires(), self.now).map(|()| (leaf, found))
        }))
    }

    /// The checks of a targets role that need no signature: listed in the final
    /// snapshot with matching length and hashes, delegated by `delegator`. Returns the
    /// version snapshot names and the keys authorised to sign the role.
    fn targets_preconditions<'a>(
        &'a self,
        role: &str,
        delegator: Delegator<'a>,
        bytes: &[u8],
    ) -> Result<(u64, Authorised<'a>), TrustError> {
        let snapshot = self.final_snapshot()?;
        let file = format!("{role}.json");
        let meta = snapshot.meta.get(&file).ok_or_else(|| TrustError::NotInSnapshot { role: role.to_owned() })?;
        check_length_and_hashes(&file, bytes, meta.length, meta.hashes.as_ref())?;
        let authorised = match delegator {
            Delegator::Root => {
                let keys = self.root.roles.get(&TopRole::Targets).ok_or(TrustError::NotLoaded("targets role"))?;
                (&self.root.keys, keys.keyids.as_slice(), keys.threshold)
            }
            Delegator::Targets(parent) => {
                let delegations =
                    parent.delegations.as_ref().ok_or_else(|| TrustError::NotInSnapshot { role: role.to_owned() })?;
                let (keyids, threshold) = delegation::role_keys(delegations, role)
                    .ok_or_else(|| TrustError::malformed(role, "the delegating role does not delegate to it"))?;
                (&delegations.keys, keyids, threshold)
            }
        };
        Ok((meta.version, authorised))
    }

    /// Verifies and adopts top-level `targets.json`.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<Arc<Verified<Targets>>, TrustError> {
        self.load_local_targets(bytes, None)
    }

    /// [`TrustedSet::update_targets`] for our stored copy, with its [`Receipt`].
    pub fn load_local_targets(
        &mut self,
        bytes: &[u8],
        receipt: Option<&Receipt>,
    ) -> Result<Arc<Verified<Targets>>, TrustError> {
        let targets = Arc::new(self.verify_local_targets("targets", Delegator::Root, bytes, receipt)?);
        self.targets = Some(Arc::clone(&targets));
        Ok(targets)
    }
}

fn snapshot_meta(timestamp: &Timestamp) -> &trellis_schema::tuf::MetaFile {
    // verify_timestamp guarantees the entry exists.
    &timestamp.meta["snapshot.json"]
}

fn check_role(unverified: &mut Unverified, root: &Root, role: TopRole) -> Result<(), TrustError> {
    let keys = root.roles.get(&role).ok_or(TrustError::NotLoaded("role keys"))?;
    unverified.check_signatures(&root.keys, &keys.keyids, keys.threshold)
}

fn check_version_and_expiry(
    role: &str,
    expected: u64,
    actual: u64,
    expires: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Result<(), TrustError> {
    if actual != expected {
        return Err(TrustError::VersionMismatch { role: role.to_owned(), expected, actual });
    }
    if expires <= now {
        return Err(TrustError::Expired {
            role: role.to_owned(),
            version: actual,
            expires: expires.to_string(),
            now: now.to_string(),
        });
    }
    Ok(())
}

fn fresh<T>(role: &str, doc: &Verified<T>, now: jiff::Timestamp) -> Result<(), TrustError> {
    if doc.is_expired(now) {
        return Err(TrustError::Expired {
            role: role.to_owned(),
            version: doc.version(),
            expires: doc.expires().to_string(),
            now: now.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use trellis_schema::SigningKey;
    use trellis_schema::canonical;

    const FUTURE: &str = "2099-01-01T00:00:00Z";

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32])
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn sign(value: &Value, keys: &[&SigningKey]) -> Vec<u8> {
        let bytes = canonical::to_vec(value).unwrap();
        let sigs: Vec<Value> =
            keys.iter().map(|k| json!({"keyid": k.key_id(), "sig": hex::encode(k.sign(&bytes))})).collect();
        serde_json::to_vec(&json!({"signed": value, "signatures": sigs})).unwrap()
    }

    /// Root `version` where root is signed by `root_keys` (threshold `root_threshold`)
    /// and every other role by key 9.
    fn root(version: u64, root_keys: &[&SigningKey], root_threshold: u32) -> Value {
        let other = key(9);
        let mut keys = serde_json::Map::new();
        for k in root_keys.iter().copied().chain([&other]) {
            keys.insert(k.key_id().to_string(), serde_json::to_value(k.public()).unwrap());
        }
        let ids = |ks: &[&SigningKey]| ks.iter().map(|k| k.key_id().to_string()).collect::<Vec<_>>();
        json!({
            "_type": "root", "spec_version": "1.0.31", "consistent_snapshot": true, "version": version,
            "expires": FUTURE, "keys": keys,
            "roles": {
                "root": {"keyids": ids(root_keys), "threshold": root_threshold},
                "timestamp": {"keyids": ids(&[&other]), "threshold": 1},
                "snapshot": {"keyids": ids(&[&other]), "threshold": 1},
                "targets": {"keyids": ids(&[&other]), "threshold": 1},
            }
        })
    }

    fn timestamp(version: u64, snapshot_version: u64, expires: &str) -> Value {
        json!({"_type": "timestamp", "spec_version": "1.0.31", "version": version, "expires": expires,
               "meta": {"snapshot.json": {"version": snapshot_version}}})
    }

    fn snapshot(version: u64, meta: &[(&str, u64)]) -> Value {
        let meta: serde_json::Map<String, Value> =
            meta.iter().map(|(file, v)| ((*file).to_owned(), json!({"version": v}))).collect();
        json!({"_type": "snapshot", "spec_version": "1.0.31", "version": version, "expires": FUTURE, "meta": meta})
    }

    fn trusted() -> TrustedSet {
        TrustedSet::new(&sign(&root(1, &[&key(1)], 1), &[&key(1)]), now()).unwrap()
    }

    #[test]
    fn root_rotation_needs_the_old_and_the_new_threshold() {
        let (old, new) = (key(1), key(2));
        let v2 = root(2, &[&new], 1);
        let mut set = trusted();
        assert!(matches!(set.update_root(&sign(&v2, &[&old])), Err(TrustError::Threshold { .. })));
        assert!(matches!(set.update_root(&sign(&v2, &[&new])), Err(TrustError::Threshold { .. })));
        assert_eq!(set.root().version(), 1, "refusals leave the trusted root");
        let v3 = root(3, &[&new], 1);
        assert!(matches!(set.update_root(&sign(&v3, &[&old, &new])), Err(TrustError::VersionMismatch { .. })));
        set.update_root(&sign(&v2, &[&old, &new])).unwrap();
        assert_eq!(set.root().version(), 2);
    }

    #[test]
    fn signatures_cover_fields_this_version_does_not_know() {
        let mut with_extra = timestamp(1, 1, FUTURE);
        with_extra["x-trellis-note"] = json!({"any": ["thing"]});
        let mut set = trusted();
        set.update_timestamp(&sign(&with_extra, &[&key(9)])).unwrap();

        let mut tampered: Value = serde_json::from_slice(&sign(&timestamp(2, 1, FUTURE), &[&key(9)])).unwrap();
        tampered["signed"]["x-added-later"] = json!(1);
        let err = trusted().update_timestamp(&serde_json::to_vec(&tampered).unwrap()).unwrap_err();
        assert!(matches!(err, TrustError::Threshold { valid: 0, threshold: 1, .. }), "{err}");
    }

    #[test]
    fn a_key_listed_twice_or_signing_twice_does_not_count_twice() {
        let a = key(1);
        let mut doubled = root(1, &[&a], 2);
        doubled["roles"]["root"]["keyids"] = json!([a.key_id(), a.key_id()]);
        let err = TrustedSet::new(&sign(&doubled, &[&a]), now()).unwrap_err();
        assert!(err.to_string().contains("lists a key id twice"), "{err}");

        let two_of_two = root(1, &[&a, &key(2)], 2);
        let mut twice: Value = serde_json::from_slice(&sign(&two_of_two, &[&a])).unwrap();
        let first = twice["signatures"][0].clone();
        twice["signatures"].as_array_mut().unwrap().push(first);
        let err = TrustedSet::new(&serde_json::to_vec(&twice).unwrap(), now()).unwrap_err();
        assert!(err.to_string().contains("two signatures by key"), "{err}");
    }

    #[test]
    fn timestamp_rollback_is_refused_and_an_equal_version_keeps_ours() {
        let signer = key(9);
        let mut set = trusted();
        assert_eq!(
            set.update_timestamp(&sign(&timestamp(3, 5, FUTURE), &[&signer])).unwrap(),
            TimestampUpdate::Updated
        );
        let mut set2 = trusted();
        set2.load_local_timestamp(&sign(&timestamp(3, 5, FUTURE), &[&signer]), None).unwrap();
        let err = set2.update_timestamp(&sign(&timestamp(2, 5, FUTURE), &[&signer])).unwrap_err();
        assert!(matches!(err, TrustError::Rollback { trusted: 3, new: 2, .. }), "{err}");
        let err = set2.update_timestamp(&sign(&timestamp(4, 4, FUTURE), &[&signer])).unwrap_err();
        assert!(matches!(err, TrustError::Rollback { trusted: 5, new: 4, .. }), "snapshot rollback: {err}");
        let same = set2.update_timestamp(&sign(&timestamp(3, 9, FUTURE), &[&signer])).unwrap();
        assert_eq!(same, TimestampUpdate::Unchanged);
        assert_eq!(set2.timestamp().unwrap().meta["snapshot.json"].version, 5, "ours is kept");
        assert_eq!(set.timestamp().unwrap().version(), 3);
    }

    #[test]
    fn expired_timestamp_is_refused_and_not_adopted() {
        let mut set = trusted();
        let err = set.update_timestamp(&sign(&timestamp(1, 1, "2025-12-31T23:59:59Z"), &[&key(9)])).unwrap_err();
        assert!(matches!(err, TrustError::Expired { .. }), "{err}");
        assert!(set.timestamp().is_none());
    }

    #[test]
    fn snapshot_that_drops_or_rolls_back_a_role_is_refused() {
        let signer = key(9);
        let mut set = trusted();
        set.update_timestamp(&sign(&timestamp(2, 2, FUTURE), &[&signer])).unwrap();
        let local = sign(&snapshot(1, &[("targets.json", 3), ("bin-0.json", 2)]), &[&signer]);
        assert!(!set.load_local_snapshot(&local, None).unwrap(), "v1 is not the final snapshot v2");
        let dropped = sign(&snapshot(2, &[("targets.json", 3)]), &[&signer]);
        assert!(matches!(set.update_snapshot(&dropped), Err(TrustError::RoleRemoved { .. })));
        let rolled = sign(&snapshot(2, &[("targets.json", 2), ("bin-0.json", 2)]), &[&signer]);
        assert!(matches!(set.update_snapshot(&rolled), Err(TrustError::Rollback { .. })));
        let good = sign(&snapshot(2, &[("targets.json", 3), ("bin-0.json", 3)]), &[&signer]);
        set.update_snapshot(&good).unwrap();
        assert_eq!(set.snapshot().unwrap().version(), 2);
    }

    #[test]
    fn one_key_under_two_key_ids_counts_once() {
        let a = key(1);
        let mut doc = root(1, &[&a], 2);
        let alias = format!("{}-alias", a.key_id());
        doc["keys"][&alias] = serde_json::to_value(a.public()).unwrap();
        doc["roles"]["root"]["keyids"] = json!([a.key_id(), alias]);
        let bytes = canonical::to_vec(&doc).unwrap();
        let sig = hex::encode(a.sign(&bytes));
        let envelope =
            json!({"signed": doc, "signatures": [{"keyid": a.key_id(), "sig": sig}, {"keyid": alias, "sig": sig}]});
        let bytes = serde_json::to_vec(&envelope).unwrap();
        let err = TrustedSet::with_key_ids(&bytes, now(), KeyIds::AsListed).unwrap_err();
        assert!(matches!(err, TrustError::Threshold { valid: 1, threshold: 2, .. }), "{err}");
        // Where key ids must be bound, the alias is refused before any counting.
        let err = TrustedSet::new(&bytes, now()).unwrap_err();
        assert!(err.to_string().contains(&format!("key id {alias} is not the SHA-256 of its key")), "{err}");
    }

    /// Root v1 whose root role lists key 1 twice, under its own id (lower-case hex)
    /// and under an id of the same key in upper-case hex, threshold 2; signed by both ids.
    fn root_listing_one_key_in_two_cases() -> (Value, Vec<u8>) {
        let a = key(1);
        let mut doc = root(1, &[&a], 2);
        let mut upper = serde_json::to_value(a.public()).unwrap();
        upper["keyval"]["public"] = json!(a.public().public_str().unwrap().to_uppercase());
        let upper_id = trellis_schema::KeyId::of(&serde_json::from_value(upper.clone()).unwrap()).unwrap();
        doc["keys"][upper_id.as_str()] = upper;
        doc["roles"]["root"]["keyids"] = json!([a.key_id(), upper_id]);
        let bytes = canonical::to_vec(&doc).unwrap();
        let sig = hex::encode(a.sign(&bytes));
        let envelope =
            json!({"signed": doc, "signatures": [{"keyid": a.key_id(), "sig": sig}, {"keyid": upper_id, "sig": sig}]});
        (doc, serde_json::to_vec(&envelope).unwrap())
    }

    #[test]
    fn one_key_in_upper_and_lower_case_hex_counts_once() {
        let (_, bytes) = root_listing_one_key_in_two_cases();
        let err = TrustedSet::new(&bytes, now()).unwrap_err();
        assert!(matches!(err, TrustError::Threshold { valid: 1, threshold: 2, .. }), "{err}");
    }

    #[test]
    fn a_receipt_counts_signers_by_key_material_too() {
        // Timestamp role: key 9 under its id and under an upper-case alias, threshold 2.
        let signer = key(9);
        let mut doc = root(1, &[&key(1)], 1);
        let mut upper = serde_json::to_value(signer.public()).unwrap();
        upper["keyval"]["public"] = json!(signer.public().public_str().unwrap().to_uppercase());
        let upper_key: trellis_schema::PublicKey = serde_json::from_value(upper.clone()).unwrap();
        let upper_id = trellis_schema::KeyId::of(&upper_key).unwrap();
        doc["keys"][upper_id.as_str()] = upper;
        doc["roles"]["timestamp"] = json!({"keyids": [signer.key_id(), upper_id], "threshold": 2});
        let mut set = TrustedSet::new(&sign(&doc, &[&key(1)]), now()).unwrap();
        let bytes = sign(&timestamp(1, 1, FUTURE), &[&signer]);
        let receipt = Receipt {
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            signers: vec![
                super::super::Signer { keyid: signer.key_id().clone(), fingerprint: signer.key_id().clone() },
                super::super::Signer { keyid: upper_id.clone(), fingerprint: upper_id },
            ],
            format: super::super::RECEIPT_FORMAT,
        };
        let err = set.load_local_timestamp(&bytes, Some(&receipt)).unwrap_err();
        assert!(matches!(err, TrustError::Threshold { valid: 1, threshold: 2, .. }), "{err}");
    }

    #[test]
    fn a_duplicate_member_is_refused_with_or_without_a_receipt() {
        let signer = key(9);
        let good = sign(&timestamp(3, 3, FUTURE), &[&signer]);
        // The signature covers the canonical form, where the last "version" (3) wins;
        // the bytes carry a second, earlier "version".
        let text = String::from_utf8(good.clone()).unwrap().replacen(
            r#""spec_version":"1.0.31","version":3"#,
            r#""version":9,"spec_version":"1.0.31","version":3"#,
            1,
        );
        let duplicated = text.into_bytes();
        let err = trusted().update_timestamp(&duplicated).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(r#"timestamp: malformed metadata: duplicate member "version" in $.signed at line 1"#),
            "{message}"
        );
        // A receipt for those bytes (say, written by an older client) changes nothing:
        // the receipt path refuses what full verification refuses.
        let mut set = trusted();
        set.load_local_timestamp(&good, None).unwrap();
        let mut receipt = Receipt::new(&duplicated, set.timestamp().unwrap());
        for format in [0, super::super::RECEIPT_FORMAT] {
            receipt.format = format;
            let err = trusted().load_local_timestamp(&duplicated, Some(&receipt)).unwrap_err();
            assert!(err.to_string().contains(r#"duplicate member "version""#), "{err}");
        }
    }

    #[test]
    fn a_receipt_of_an_older_format_falls_back_to_full_verification() {
        let bytes = sign(&timestamp(3, 5, FUTURE), &[&key(9)]);
        let mut set = trusted();
        set.load_local_timestamp(&bytes, None).unwrap();
        let mut receipt = Receipt::new(&bytes, set.timestamp().unwrap());
        receipt.format = 1;
        let mut set = trusted();
        set.load_local_timestamp(&bytes, Some(&receipt)).unwrap();
        assert!(!set.timestamp().unwrap().by_receipt(), "verified in full");
        let err = set.update_timestamp(&sign(&timestamp(2, 5, FUTURE), &[&key(9)])).unwrap_err();
        assert!(matches!(err, TrustError::Rollback { trusted: 3, new: 2, .. }), "the floor is kept: {err}");
    }

    #[test]
    fn keys_of_an_unknown_type_never_count() {
        let mut doc = root(1, &[&key(1)], 1);
        let id = key(9).key_id().to_string();
        doc["keys"][&id]["keytype"] = json!("ed448");
        doc["keys"][&id]["scheme"] = json!("ed448");
        let mut set = TrustedSet::with_key_ids(&sign(&doc, &[&key(1)]), now(), KeyIds::AsListed).unwrap();
        let err = set.update_timestamp(&sign(&timestamp(1, 1, FUTURE), &[&key(9)])).unwrap_err();
        assert!(matches!(err, TrustError::Threshold { valid: 0, .. }), "{err}");
    }

    #[test]
    fn receipt_stands_in_for_signatures_only_for_the_same_bytes_and_still_authorised_keys() {
        let trusted = || TrustedSet::new(&sign(&root(1, &[&key(1)], 1), &[&key(1)]), now()).unwrap();
        let bytes = sign(&timestamp(3, 5, FUTURE), &[&key(9)]);
        let mut set = trusted();
        set.load_local_timestamp(&bytes, None).unwrap();
        let loaded = set.timestamp().unwrap();
        assert!(!loaded.by_receipt());
        let receipt = Receipt::new(&bytes, loaded);
        assert_eq!(receipt.signers.len(), 1);

        let mut set = trusted();
        set.load_local_timestamp(&bytes, Some(&receipt)).unwrap();
        assert!(set.timestamp().unwrap().by_receipt());
        assert_eq!(set.timestamp().unwrap().version(), 3);

        // Other bytes: the receipt does not apply, the signatures are checked.
        let other = sign(&timestamp(4, 5, FUTURE), &[&key(9)]);
        let mut set = trusted();
        set.load_local_timestamp(&other, Some(&receipt)).unwrap();
        assert!(!set.timestamp().unwrap().by_receipt());
        let forged = sign(&timestamp(4, 5, FUTURE), &[&key(7)]);
        let mut forged_receipt = receipt.clone();
        forged_receipt.sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&other));
        assert!(trusted().load_local_timestamp(&forged, Some(&forged_receipt)).is_err());

        // Root rotated the timestamp key: the receipt by the old key no longer applies.
        let mut rotated = root(2, &[&key(1)], 1);
        rotated["keys"][key(8).key_id().to_string()] = serde_json::to_value(key(8).public()).unwrap();
        rotated["roles"]["timestamp"]["keyids"] = json!([key(8).key_id().to_string()]);
        let mut set = TrustedSet::new(&sign(&rotated, &[&key(1)]), now()).unwrap();
        let err = set.load_local_timestamp(&bytes, Some(&receipt)).unwrap_err();
        assert!(matches!(err, TrustError::Threshold { valid: 0, .. }), "{err}");

        // A raised threshold is not met by the one recorded signer.
        let mut raised = root(2, &[&key(1)], 1);
        raised["keys"][key(8).key_id().to_string()] = serde_json::to_value(key(8).public()).unwrap();
        raised["roles"]["timestamp"] =
            json!({"keyids": [key(9).key_id().to_string(), key(8).key_id().to_string()], "threshold": 2});
        let mut set = TrustedSet::new(&sign(&raised, &[&key(1)]), now()).unwrap();
        assert!(set.load_local_timestamp(&bytes, Some(&receipt)).is_err());
    }
}
