//! Trust: the TUF 1.0 client workflow (specification §5). Nothing a registry or a
//! mirror serves is used before this module has verified it.
//!
//! What it owns, by step:
//! - [`verify`]: parsing a metadata file and counting signatures by distinct
//!   authorised keys over the canonical JSON of `signed` *as received*, so unknown
//!   fields are covered; [`Verified<T>`] can only be constructed here. Also the
//!   [`Receipt`] kept beside each stored document, which lets a load of our own
//!   trusted store skip re-checking signatures while the same keys are authorised
//!   (the module docs of [`verify`] say why that is sound), and [`verify::TrustedLeaf`],
//!   a hash bin read that way and searched per lookup instead of typed whole.
//! - [`trusted_set`]: the rules for replacing trusted root (rotation chain, signed by
//!   old and new keys), timestamp, snapshot and targets: rollback, freeze (expiry),
//!   mix-and-match (versions, lengths and hashes named by the referring document),
//!   wrong `_type`, thresholds. Pure, no I/O.
//! - [`delegation`]: which delegated roles are trusted for a path (globs, hash
//!   prefixes, succinct hash bins).
//! - [`store`]: the persisted trusted state (one file per role, atomic writes, bytes as
//!   received, and their receipts).
//! - [`updater`]: the workflow over mirrors: refresh, the lazy delegation walk,
//!   target download with length caps and hash checks, and the update check.
//! - [`fetcher`]: target downloads detached from the updater (other threads), and the
//!   one door for bytes fetched before their hash was known (an index doc alias):
//!   [`TargetFetcher::accept`] checks them against the signed length and SHA-256.
//! - [`speculation`]: metadata asked for ahead of the spec's order
//!   ([`MetadataOrder::Speculative`], the store's choice; the conformance client keeps
//!   [`MetadataOrder::Strict`]), each file verified when and as the strict workflow
//!   reaches it.
//!
//! It does not fetch bytes itself (that is [`crate::transport`]) and it does not
//! interpret targets (index docs, packages, publisher records belong to the modules
//! that consume [`TargetInfo`] and the verified bytes).
//!
//! # The one-request update check
//!
//! A full refresh always probes `N+1.root.json` before `timestamp.json`, i.e. two
//! requests even when nothing changed. [`Updater::check_for_updates`] instead sends
//! one conditional GET of `timestamp.json`; on `304`, with a cached timestamp that is
//! still unexpired (and an unexpired root), it reports "nothing new" after that one
//! request. On `200` it runs the full refresh with the timestamp just fetched: the
//! probe for a newer root first, then that timestamp, snapshot and targets. With an
//! expired or missing cache it runs the strict refresh. So a new release of one
//! installed plugin costs timestamp, the root probe, snapshot, that plugin's bin and
//! its index doc.
//!
//! This is safe. A network attacker gains nothing he did not have: he could always
//! answer the root probe with a 404 to hide a rotation, and a frozen `304` is bounded
//! by the cached timestamp's expiry, exactly like a replayed timestamp is. Whenever the
//! repository changed, the root probe runs before anything newer is believed, so a
//! root rotation that revoked a key is in force from the first changed check after it.
//!
//! # Bounds
//!
//! Every metadata file is capped in size as it streams ([`Limits`]), and so is the sum
//! of the metadata one refresh downloads ([`Limits::metadata_bytes`]); succinct hash-bin
//! delegations are refused above [`delegation::MAX_SUCCINCT_BIT_LENGTH`] bits; the
//! transport gives every metadata download a total deadline and every download a
//! minimum rate ([`crate::transport::HttpOptions`]). Metadata is parsed only by the
//! strict parser ([`trellis_schema::json`]), which refuses a member named twice.

pub mod delegation;
mod error;
pub mod fetcher;
pub mod speculation;
pub mod store;
pub mod trusted_set;
pub mod updater;
pub mod verify;

use trellis_schema::tuf::Targets;

pub use error::TrustError;
pub use fetcher::{TargetFetcher, Unverified};
pub use speculation::MetadataOrder;
pub use store::MetadataStore;
pub use trusted_set::{TimestampUpdate, TrustedSet};
pub use updater::{TargetInfo, UpdateCheck, Updater};
pub use verify::{RECEIPT_FORMAT, Receipt, Signer, Verified};

/// Size and count limits of the workflow. Defaults follow python-tuf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest root file accepted. Default 512 000 bytes.
    pub root: u64,
    /// Largest timestamp file. Default 16 384 bytes.
    pub timestamp: u64,
    /// Largest snapshot when the timestamp gives no length. Default 2 000 000 bytes.
    pub snapshot: u64,
    /// Largest targets role when snapshot gives no length. Default 5 000 000 bytes.
    pub targets: u64,
    /// Most root versions accepted in one refresh. Default 256.
    pub max_root_rotations: u32,
    /// Most roles visited when looking up one target. Default 32.
    pub max_delegations: usize,
    /// Whether every key id in root and in delegations must be the SHA-256 of its
    /// key's canonical JSON. Default [`KeyIds::Bound`].
    pub key_ids: KeyIds,
    /// Most metadata bytes downloaded from the start of one refresh (or update check)
    /// to the next: root chain, timestamp, snapshot, targets and every delegated role
    /// the lookups after it load, each capped as it streams. Default 128 MiB (a cold
    /// search over every hash bin of a 100k-plugin registry downloads about 30 MB).
    pub metadata_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
            max_root_rotations: 256,
            max_delegations: 32,
            metadata_bytes: 128 * 1024 * 1024,
            key_ids: KeyIds::Bound,
        }
    }
}

/// Which key ids a key table (root's `keys`, a delegation's `keys`) may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyIds {
    /// Each key id must be the SHA-256 of its key's canonical JSON (what TUF defines a
    /// key id to be, and what `trellis-index` writes): an id cannot name another key,
    /// and logs, receipts and revocations mean the key they say.
    #[default]
    Bound,
    /// Key ids are taken as listed, as python-tuf does: some TUF repositories (older
    /// sigstore and tuf-on-ci roots) use ids computed otherwise. The conformance client
    /// uses this. Thresholds still count decoded key material either way.
    AsListed,
}

/// Who delegates to a targets role: root (for top-level `targets`) or a targets role.
#[derive(Clone, Copy, Debug)]
pub enum Delegator<'a> {
    /// Top-level targets, whose keys are in root.
    Root,
    /// A delegated role, whose keys are in this document's `delegations`.
    Targets(&'a Targets),
}
