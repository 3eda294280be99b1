//! TUF roles of a Trellis site: their shape, their versions, their signatures.
//!
//! Owns the delegation tree and the rule that decides when a role gets a new version:
//!
//! ```text
//! root ─┬─ timestamp ── snapshot
//!       └─ targets ─┬─ security    paths security/*        (blocklist, advisories)
//!                   ├─ publishers  paths publishers/*      (publisher records)
//!                   │    └─ succinct_roles (TAP 15): pub-00 … pub-ff
//!                   ├─ bins        paths index/*/*                 (index docs)
//!                   │    └─ succinct_roles (TAP 15): bin-000 … bin-fff
//!                   └─ catalog     paths catalog/*   (head, search shards, listings; bins keys)
//! ```
//!
//! **Why the catalog is its own role, signed with the bins keys.** A search reads the
//! head and the shards of its terms; were they binned with the index docs, each would
//! need its own hash bin first (three more requests on a cold query). One `catalog`
//! role lists every catalog document, so after the TUF chain a query costs exactly the
//! documents it reads. The catalog is derived from the same inputs by the same build
//! as the index docs, so it is signed with the same online keys (no new key to
//! configure); it is terminating and delegated only `catalog/*`, so its key can never
//! vouch for an index doc, a record or the blocklist, and a client never trusts it for
//! more than what to show: installing still goes through the index doc and the
//! developer signature. The cost is that the role document grows with the number of
//! catalog documents (see ARCHITECTURE.md for the figures).
//!
//! **Why the bins sign index docs and not blobs.** Packages, release envelopes and
//! deltas are content-addressed blobs (`plugins/…`, `deltas/…`) whose path, SHA-256
//! and length the index doc of their plugin lists ([`trellis_schema::index::BlobRef`]).
//! The index doc is itself a TUF target, verified by length and hash under the bins
//! role. A client verifies a blob against the `BlobRef` of an index doc it has just
//! verified, so the blob has exactly the assurance of a TUF target: TUF's own
//! guarantee (a hash signed by a delegated role, under a fresh snapshot and
//! timestamp) carried one signed hash further, as PEP 458 does for distributions
//! through the simple index. Listing the blobs in the bins as well would add no
//! assurance but makes every bin ~20 times larger: at 10 releases a plugin, a bin
//! carried one doc and twenty blob entries per plugin, and a cold install fetched
//! mostly bin bytes. Freshness and rollback protection are the index doc's: an older
//! doc cannot be served once the bin names the newer hash. Blobs stay immutable
//! (a published release is never changed, see [`crate::build`]), and
//! `trellis-index verify` checks each listed blob's length and hash.
//!
//! **Why TAP 15 succinct bins under a `bins` role.** Classic hash-prefix bins list every
//! bin with its key ids and prefixes in the delegating document: 4096 bins make a
//! ~600 KB `targets.json` that must be re-signed with the offline targets key whenever a
//! bin key rotates. Succinct roles describe all bins in one ~300-byte object, so the
//! bin count is one number in the config and rotating the online bins key touches one
//! small document. TUF allows `roles` *or* `succinct_roles` in one delegation, hence the
//! intermediate `bins` role; it costs one extra request on a cold start and is cached
//! forever after (it only changes on key rotation). python-tuf 7, go-tuf and our client
//! all implement TAP 15.
//!
//! **Publisher records are binned the same way.** One `publishers` document listing
//! every record is ~130 bytes per vendor (1.5 MB at 12k vendors), fetched on every
//! cold install and again whenever any publisher changes. So `publishers` lists no
//! targets itself: it delegates `publishers/*` to `2^publisher_bin_bits` succinct bins
//! `pub-…`, signed with the publishers keys (succinct roles share one key set), and a
//! client fetches only the bins of the vendors it installs from. Adding a publisher
//! rewrites one publisher bin, the snapshot and the timestamp.
//!
//! A role keeps its version (and its file) when its content is unchanged and it does
//! not expire within half its lifetime; otherwise it gets version + 1 and a new expiry
//! computed from the build's `now`. That rule is what makes builds reproducible and
//! incremental. Reading the previous site is [`crate::build`]'s; paths are
//! [`crate::site`]'s.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Map;
use trellis_schema::canonical;
use trellis_schema::key::{KeyId, PublicKey, SigningKey};
use trellis_schema::tuf::{self as schema, DelegatedRole, Delegations, Envelope, SuccinctRoles, TargetFile, Targets};

/// Name of the delegation signing the blocklist.
pub const SECURITY_ROLE: &str = "security";
/// Name of the delegation signing publisher records.
pub const PUBLISHERS_ROLE: &str = "publishers";
/// Name of the delegation signing the catalog documents (`catalog/*`), with the
/// bins keys.
pub const CATALOG_ROLE: &str = "catalog";
/// The target paths delegated to [`CATALOG_ROLE`].
pub const CATALOG_PATH: &str = "catalog/*";
/// Name of the delegation whose succinct hash bins sign the index docs.
pub const BINS_ROLE: &str = "bins";
/// The target paths delegated to [`BINS_ROLE`]: index docs only (blobs are vouched
/// for by the index doc that lists them, see the module docs).
pub const BINS_PATH: &str = "index/*/*";
/// Name prefix of the hash bins.
pub const BIN_PREFIX: &str = "bin";
/// Name prefix of the publisher bins, delegated to by [`PUBLISHERS_ROLE`].
pub const PUBLISHER_BIN_PREFIX: &str = "pub";

/// A role document that could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The role must change but its keys are not available.
    #[error("{role} metadata must be re-signed but its key is not available ({hint})")]
    MissingKey {
        /// The role.
        role: String,
        /// Where the key was looked for.
        hint: String,
    },
    /// Canonicalisation failed (a float in custom data).
    #[error("{role}: {source}")]
    Canonical {
        /// The role.
        role: String,
        /// Why.
        #[source]
        source: canonical::CanonicalError,
    },
}

/// The keys and threshold a delegation trusts, as written into the delegating role.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleKeys {
    /// Public keys by id.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// Signatures required.
    pub threshold: u32,
}

impl RoleKeys {
    /// The public halves of `signers`.
    pub fn of(signers: &[SigningKey], threshold: u32) -> Self {
        Self { keys: signers.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect(), threshold }
    }

    fn keyids(&self) -> Vec<KeyId> {
        self.keys.keys().cloned().collect()
    }
}

/// An RFC 3339 expiry in TUF's format (`2030-01-01T00:00:00Z`, whole seconds).
pub fn expiry(now: jiff::Timestamp, days: u32) -> String {
    let seconds = i64::from(days) * 86_400;
    let at = now.as_second().saturating_add(seconds);
    let at = jiff::Timestamp::from_second(at).unwrap_or(jiff::Timestamp::MAX);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether a document expiring at `expires` must be refreshed at `now` for a role
/// whose lifetime is `days`: when less than half the lifetime is left, or when
/// `expires` does not parse.
pub fn needs_refresh(expires: &str, now: jiff::Timestamp, days: u32) -> bool {
    match expires.parse::<jiff::Timestamp>() {
        Ok(at) => at.as_second() - now.as_second() < i64::from(days) * 86_400 / 2,
        Err(_) => true,
    }
}

/// Whether a document whose keys are offline must be re-signed at `now`: only once it
/// has expired (or `expires` does not parse). Re-signing at half-life, as
/// [`needs_refresh`] does for online roles, would make every CI build fail from the
/// middle of the top-level targets' lifetime on, with nothing gained: the published
/// document stays valid until it expires.
pub fn needs_offline_refresh(expires: &str, now: jiff::Timestamp) -> bool {
    match expires.parse::<jiff::Timestamp>() {
        Ok(at) => at <= now,
        Err(_) => true,
    }
}

/// A targets document, before it has a version and an expiry.
pub fn targets_doc(targets: BTreeMap<String, TargetFile>, delegations: Option<Delegations>) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: schema::SPEC_VERSION.into(),
        version: 0,
        expires: String::new(),
        targets,
        delegations,
        extra: Map::new(),
    }
}

/// The delegations of the top-level targets role.
pub fn top_delegations(security: &RoleKeys, publishers: &RoleKeys, bins: &RoleKeys) -> Delegations {
    let role = |name: &str, keys: &RoleKeys, paths: &[&str]| DelegatedRole {
        name: name.into(),
        keyids: keys.keyids(),
        threshold: keys.threshold,
        terminating: true,
        paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
        path_hash_prefixes: None,
        extra: Map::new(),
    };
    let mut keys = BTreeMap::new();
    for set in [security, publishers, bins] {
        keys.extend(set.keys.clone());
    }
    Delegations {
        keys,
        roles: Some(vec![
            role(SECURITY_ROLE, security, &["security/*"]),
            role(PUBLISHERS_ROLE, publishers, &["publishers/*"]),
            role(BINS_ROLE, bins, &[BINS_PATH]),
            role(CATALOG_ROLE, bins, &[CATALOG_PATH]),
        ]),
        succinct_roles: None,
        extra: Map::new(),
    }
}

/// The delegations of the `bins` role: `2^bit_length` succinct hash bins.
pub fn bin_delegations(bins: &RoleKeys, bit_length: u32) -> Delegations {
    Delegations {
        keys: bins.keys.clone(),
        roles: None,
        succinct_roles: Some(SuccinctRoles {
            keyids: bins.keyids(),
            threshold: bins.threshold,
            bit_length,
            name_prefix: BIN_PREFIX.into(),
            extra: Map::new(),
        }),
        extra: Map::new(),
    }
}

/// The delegations of the `publishers` role: `2^bit_length` succinct bins
/// (`pub-…`) signed with the publishers keys.
pub fn publisher_bin_delegations(publishers: &RoleKeys, bit_length: u32) -> Delegations {
    Delegations {
        keys: publishers.keys.clone(),
        roles: None,
        succinct_roles: Some(SuccinctRoles {
            keyids: publishers.keyids(),
            threshold: publishers.threshold,
            bit_length,
            name_prefix: PUBLISHER_BIN_PREFIX.into(),
            extra: Map::new(),
        }),
        extra: Map::new(),
    }
}

/// Whether two targets documents say the same thing, ignoring version and expiry.
pub fn same_content(a: &Targets, b: &Targets) -> bool {
    a.type_ == b.type_
        && a.spec_version == b.spec_version
        && a.targets == b.targets
        && a.delegations == b.delegations
        && a.extra == b.extra
}

/// The outcome of [`settle`]: keep the published version, or publish a new one.
#[derive(Debug)]
pub enum Settled<T> {
    /// Unchanged and fresh: the published file stays.
    Keep {
        /// Its version.
        version: u64,
    },
    /// A new version to sign and write.
    New(T),
}

impl<T> Settled<T> {
    /// Version the snapshot must name.
    pub fn version(&self, new_version: impl Fn(&T) -> u64) -> u64 {
        match self {
            Self::Keep { version } => *version,
            Self::New(doc) => new_version(doc),
        }
    }
}

/// Decides the version of a targets role: keeps `previous` when `doc` has the same
/// content, `previous` is fresh enough and was signed by exactly the keys that would
/// sign now (`signers`; `None` when they are offline), else gives `doc` version
/// `previous + 1` (or 1) and an expiry `days` after `now`.
pub fn settle(
    previous: Option<&Envelope<Targets>>,
    signers: Option<&[SigningKey]>,
    mut doc: Targets,
    now: jiff::Timestamp,
    days: u32,
) -> Settled<Targets> {
    let previous_signed = previous.map(|p| &p.signed);
    if let Some(previous) = previous
        && signed_by_same_keys(previous, signers)
        && same_content(&previous.signed, &doc)
        && !needs_refresh(&previous.signed.expires, now, days)
    {
        return Settled::Keep { version: previous.signed.version };
    }
    doc.version = previous_signed.map_or(1, |p| p.version + 1);
    doc.expires = expiry(now, days);
    Settled::New(doc)
}

/// Whether `envelope` carries signatures by exactly the key ids of `signers`
/// (always true when the signers are offline: nothing to compare with).
pub fn signed_by_same_keys<T>(envelope: &Envelope<T>, signers: Option<&[SigningKey]>) -> bool {
    let Some(signers) = signers else { return true };
    let signed: std::collections::BTreeSet<&KeyId> = envelope.signatures.iter().map(|s| &s.keyid).collect();
    let current: std::collections::BTreeSet<&KeyId> = signers.iter().map(SigningKey::key_id).collect();
    signed == current
}

/// Signs a role document with `keys` and returns the envelope and the exact bytes
/// to publish (canonical JSON of the whole envelope).
pub fn sign_role<T: Serialize>(
    role: &str,
    doc: T,
    keys: Option<&[SigningKey]>,
    hint: &str,
) -> Result<Vec<u8>, SignError> {
    let keys = keys.ok_or_else(|| SignError::MissingKey { role: role.to_owned(), hint: hint.to_owned() })?;
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let envelope: Envelope<T> =
        schema::sign(doc, &refs).map_err(|source| SignError::Canonical { role: role.to_owned(), source })?;
    canonical::to_vec_of(&envelope).map_err(|source| SignError::Canonical { role: role.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn expiry_is_whole_seconds_in_tuf_format() {
        assert_eq!(expiry(now(), 2), "2026-11-03T00:00:00Z");
    }

    #[test]
    fn unchanged_fresh_role_keeps_its_version_and_changed_role_gets_the_next() {
        let key = SigningKey::from_seed([1; 32]);
        let mut doc = targets_doc(BTreeMap::new(), None);
        doc.version = 4;
        doc.expires = expiry(now(), 90);
        let published = schema::sign(doc, &[&key]).unwrap();
        let same = targets_doc(BTreeMap::new(), None);
        let keys = [key.clone()];
        assert!(matches!(settle(Some(&published), Some(&keys), same.clone(), now(), 90), Settled::Keep { version: 4 }));
        let other = [SigningKey::from_seed([2; 32])];
        assert!(
            matches!(
                settle(Some(&published), Some(&other), same.clone(), now(), 90),
                Settled::New(Targets { version: 5, .. })
            ),
            "a role signed by a rotated-out key must be re-signed"
        );

        let mut changed = same.clone();
        changed.targets.insert(
            "index/00/a.b.json".into(),
            TargetFile { length: 1, hashes: BTreeMap::new(), custom: None, extra: Map::new() },
        );
        match settle(Some(&published), Some(&keys), changed, now(), 90) {
            Settled::New(doc) => assert_eq!((doc.version, doc.expires.as_str()), (5, "2027-01-30T00:00:00Z")),
            Settled::Keep { .. } => panic!("changed content must get a new version"),
        }
    }

    #[test]
    fn role_close_to_expiry_is_refreshed_even_when_unchanged() {
        let mut doc = targets_doc(BTreeMap::new(), None);
        doc.version = 2;
        doc.expires = expiry(now(), 40);
        let published = schema::sign(doc, &[]).unwrap();
        assert!(matches!(
            settle(Some(&published), None, targets_doc(BTreeMap::new(), None), now(), 90),
            Settled::New(Targets { version: 3, .. })
        ));
    }
}
