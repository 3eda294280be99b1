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
//! request. On `200` it runs the refresh with the timestamp just fetched: snapshot,
//! targets, and the probe for a newer root only when the last probe is older than the
//! probe interval (24 hours by default, [`Updater::with_root_probe_interval`]). With an
//! expired or missing cache it runs the strict refresh. So a new release of one
//! installed plugin costs timestamp, snapshot, that plugin's bin and its index doc.
//!
//! This is safe. A network attacker gains nothing he did not have: he could always
//! answer the root probe with a 404 to hide a rotation, and a frozen `304` is bounded
//! by the cached timestamp's expiry, exactly like a replayed timestamp is. What the
//! interval costs is latency: a client learns of a root rotation within a day of its
//! first update check after it, instead of at that check; root rotations are rare,
//! planned events, and a compromised online key still cannot forge plugin content
//! (developer signatures). The conformance client and [`Updater::refresh`] follow the
//! specification to the letter and probe every time.

pub mod delegation;
mod error;
pub mod store;
pub mod trusted_set;
pub mod updater;
pub mod verify;

use trellis_schema::tuf::Targets;

pub use error::TrustError;
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
        }
    }
}

/// Who delegates to a targets role: root (for top-level `targets`) or a targets role.
#[derive(Clone, Copy, Debug)]
pub enum Delegator<'a> {
    /// Top-level targets, whose keys are in root.
    Root,
    /// A delegated role, whose keys are in this document's `delegations`.
    Targets(&'a Targets),
}
