//! TUF metadata (`trellis_client::trust`): parse and verify against a trusted root.
//!
//! The first byte chooses the role the rest is offered as (its value modulo 7) and,
//! with its high bit set, has the harness re-sign the document with the role's
//! genuine key first (the rest is parsed as JSON; its `signed` member, or the whole
//! value, is signed; a new root is signed under every id it lists the root key
//! under), so mutations reach the checks behind the signatures:
//!
//! | mode | offered as | trusted before it |
//! |---|---|---|
//! | 0 | root version 2 | root v1 |
//! | 1 | timestamp | root |
//! | 2 | snapshot | root, timestamp |
//! | 3 | top-level targets | root, timestamp, snapshot |
//! | 4 | delegated role `bins` (path delegation) | … targets |
//! | 5 | a succinct hash bin | … bins |
//! | 6 | a hash bin read back from our store under a receipt | … bins |
//!
//! Properties: nothing panics; an accepted document was signed by a threshold of
//! distinct *keys* (by decoded key material, not key id) of its delegator; accepted
//! documents have the version the referring document names and are unexpired; an
//! accepted timestamp names `snapshot.json`; what the receipt path (a stored bin,
//! searched without a full parse) accepts, the full verification accepts too, with the
//! same version and the same entry for the path looked up.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use serde_json::Value;
use trellis_client::trust::{Delegator, Receipt, Signer, TrustedSet, Verified};
use trellis_schema::key::{KeyId, PublicKey};
use trellis_schema::tuf::{Targets, TopRole};

use crate::fixture::{self, seed};

/// The roles a document can be offered as, by mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Root version 2.
    Root,
    /// Timestamp.
    Timestamp,
    /// Snapshot.
    Snapshot,
    /// Top-level targets.
    Targets,
    /// The delegated role `bins`.
    Bins,
    /// A succinct hash bin.
    Bin,
    /// A hash bin from our own store, under a receipt.
    StoredBin,
}

impl Mode {
    /// Every mode, in the order of its number.
    pub const ALL: [Mode; 7] =
        [Mode::Root, Mode::Timestamp, Mode::Snapshot, Mode::Targets, Mode::Bins, Mode::Bin, Mode::StoredBin];

    /// The mode of a first byte.
    pub fn of(byte: u8) -> Self {
        Self::ALL[usize::from(byte & 0x7f) % Self::ALL.len()]
    }

    /// The first byte that selects this mode, with the re-sign bit if `resign`.
    pub fn byte(self, resign: bool) -> u8 {
        let index = Self::ALL.iter().position(|m| *m == self).unwrap_or(0) as u8;
        if resign { index | 0x80 } else { index }
    }

    /// The key that signs the role.
    fn key_seed(self) -> u8 {
        match self {
            Mode::Root => seed::ROOT,
            Mode::Timestamp => seed::TIMESTAMP,
            Mode::Snapshot => seed::SNAPSHOT,
            Mode::Targets => seed::TARGETS,
            Mode::Bins => seed::BINS,
            Mode::Bin | Mode::StoredBin => seed::BIN,
        }
    }
}

/// The genuine delegators, parsed once.
struct Delegators {
    targets: Targets,
    bins: Targets,
}

fn delegators() -> &'static Delegators {
    static CELL: OnceLock<Delegators> = OnceLock::new();
    CELL.get_or_init(|| {
        let parse = |signed: Value| -> Targets {
            #[allow(clippy::expect_used)]
            serde_json::from_value(signed).expect("the fixture's targets documents parse")
        };
        Delegators { targets: parse(fixture::targets_signed()), bins: parse(fixture::bins_signed()) }
    })
}

/// The target body.
pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let mode = Mode::of(first);
    let doc = if first & 0x80 != 0 {
        let Some(doc) = resign(mode, rest) else { return };
        doc
    } else {
        rest.to_vec()
    };
    check(mode, &doc);
}

/// Re-signs `doc` (its `signed` member, or the whole value) with the role's key.
fn resign(mode: Mode, doc: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(doc).ok()?;
    let signed = match value {
        Value::Object(mut map) if map.contains_key("signed") => map.remove("signed")?,
        other => other,
    };
    let key = fixture::key(mode.key_seed());
    // A new root lists its own keys: sign under every id it gives the root key, so a
    // key listed twice (say in upper- and lower-case hex) can be tried for a threshold.
    match signed.get("keys").and_then(Value::as_object) {
        Some(keys) if mode == Mode::Root => fixture::sign_metadata_as_listed(&signed, &key, keys),
        _ => fixture::sign_metadata(&signed, &[&key]),
    }
}

/// Offers `doc` as `mode`'s role to a trusted set holding the genuine documents before it.
#[allow(clippy::expect_used)]
pub fn check(mode: Mode, doc: &[u8]) {
    let mut set = TrustedSet::new(&fixture::root(), fixture::now()).expect("the fixture's root verifies");
    if mode == Mode::Root {
        if set.update_root(doc).is_ok() {
            let root = set.root();
            assert_eq!(root.version(), 2, "accepted root version {}", root.version());
            let keys = root.roles.get(&TopRole::Root).expect("an accepted root has a root role");
            assert_distinct_keys("root", root, &root.keys, keys.threshold);
        }
        return;
    }
    if mode == Mode::Timestamp {
        if set.update_timestamp(doc).is_ok() {
            let timestamp = set.timestamp().expect("an accepted timestamp is trusted");
            assert!(timestamp.meta.contains_key("snapshot.json"), "accepted a timestamp without snapshot.json");
            let keys = &set.root().roles[&TopRole::Timestamp];
            assert_distinct_keys("timestamp", timestamp, &set.root().keys, keys.threshold);
            // What follows must still be judged without panicking.
            let _ = set.update_snapshot(&fixture::snapshot());
        }
        return;
    }
    set.update_timestamp(&fixture::timestamp()).expect("the fixture's timestamp verifies");
    if mode == Mode::Snapshot {
        if set.update_snapshot(doc).is_ok() {
            let snapshot = set.snapshot().expect("an accepted snapshot is trusted");
            assert_eq!(snapshot.version(), 1, "accepted a snapshot the timestamp does not name");
            let keys = &set.root().roles[&TopRole::Snapshot];
            assert_distinct_keys("snapshot", snapshot, &set.root().keys, keys.threshold);
            let _ = set.snapshot_version_of("targets");
            let _ = set.update_targets(&fixture::targets());
        }
        return;
    }
    set.update_snapshot(&fixture::snapshot()).expect("the fixture's snapshot verifies");
    let genuine = delegators();
    let (role, delegator, keys, threshold) = match mode {
        Mode::Targets => {
            let threshold = set.root().roles[&TopRole::Targets].threshold;
            ("targets".to_owned(), Delegator::Root, set.root().keys.clone(), threshold)
        }
        Mode::Bins => {
            let delegations = genuine.targets.delegations.as_ref().expect("the fixture's targets delegate");
            ("bins".to_owned(), Delegator::Targets(&genuine.targets), delegations.keys.clone(), 1)
        }
        _ => {
            let delegations = genuine.bins.delegations.as_ref().expect("the fixture's bins delegate");
            (fixture::bin_name(), Delegator::Targets(&genuine.bins), delegations.keys.clone(), 1)
        }
    };
    if mode == Mode::StoredBin {
        check_stored(&set, &role, delegator, doc);
        return;
    }
    let verified = if mode == Mode::Targets {
        set.update_targets(doc).map(|t| (*t).clone())
    } else {
        set.verify_targets(&role, delegator, doc)
    };
    if let Ok(targets) = verified {
        assert_eq!(targets.version(), 1, "accepted {role} version {} the snapshot does not name", targets.version());
        assert!(!targets.is_expired(fixture::now()), "accepted an expired {role}");
        assert_distinct_keys(&role, &targets, &keys, threshold);
        if let Some(delegations) = &targets.delegations {
            assert!(
                delegations.roles.is_some() != delegations.succinct_roles.is_some(),
                "{role}: accepted delegations with both or neither of roles and succinct_roles"
            );
        }
    }
}

/// The receipt path against full verification, for a bin from our store.
fn check_stored(set: &TrustedSet, role: &str, delegator: Delegator<'_>, doc: &[u8]) {
    let bin = fixture::key(seed::BIN);
    let Ok(fingerprint) = KeyId::of(bin.public()) else { return };
    let receipt = Receipt {
        format: trellis_client::trust::RECEIPT_FORMAT,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(doc)),
        signers: vec![Signer { keyid: bin.key_id().clone(), fingerprint }],
    };
    let leaf = set.verify_local_leaf(role, delegator, doc.to_vec(), Some(&receipt), fixture::INDEX_PATH);
    let full = set.verify_local_targets(role, delegator, doc, Some(&receipt));
    let Some(Ok((leaf, found))) = leaf else { return };
    let full = match full {
        Ok(full) => full,
        Err(e) => panic!("a stored {role} read under its receipt is accepted, but full verification refuses it: {e}"),
    };
    assert_eq!(leaf.version(), full.version(), "the receipt path and full verification read different versions");
    assert_eq!(leaf.expires(), full.expires(), "the receipt path and full verification read different expiries");
    let entry = full.targets.get(fixture::INDEX_PATH);
    assert_eq!(found.as_ref(), entry, "the receipt path and full verification read different entries");
    match leaf.target(fixture::INDEX_PATH) {
        Ok(again) => assert_eq!(again.as_ref(), entry, "TrustedLeaf::target reads a different entry"),
        Err(e) => panic!("TrustedLeaf::target fails on a leaf it accepted: {e}"),
    }
}

/// An accepted document's verified signers must include `threshold` distinct keys by
/// decoded key material: one key listed under two ids (or in two spellings of its hex)
/// counts once.
fn assert_distinct_keys<T>(role: &str, doc: &Verified<T>, keys: &BTreeMap<KeyId, PublicKey>, threshold: u32) {
    let mut material = HashSet::new();
    for signer in doc.signers() {
        if let Some(key) = keys.get(&signer.keyid) {
            let public = key.public_str().unwrap_or_default();
            material.insert((key.keytype.to_ascii_lowercase(), decoded(public)));
        }
    }
    assert!(
        material.len() as u64 >= u64::from(threshold.max(1)),
        "{role} accepted with {} distinct signing keys for threshold {threshold} (signers: {:?})",
        material.len(),
        doc.signers()
    );
}

/// Key material with hex decoded (case does not make another key); other encodings
/// as written, whitespace removed.
fn decoded(public: &str) -> Vec<u8> {
    hex::decode(public.trim()).unwrap_or_else(|_| public.split_whitespace().collect::<String>().into_bytes())
}
