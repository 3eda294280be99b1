//! Errors of the TUF client workflow: one enum, [`TrustError`], whose variants carry the
//! role, versions, hashes and URLs involved. Transport failures arrive wrapped in
//! [`TrustError::Fetch`] with what every mirror did.

use crate::fs::FsError;
use crate::transport::MirrorsError;

/// Why metadata or a target was refused, or a refresh could not finish. Every
/// variant names the role (or target path) it is about.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Not JSON, or not the shape of TUF metadata.
    #[error("{role}: malformed metadata: {reason}")]
    Malformed {
        /// Role name.
        role: String,
        /// What is wrong.
        reason: String,
    },
    /// `_type` is not the role that was asked for.
    #[error("{role}: metadata has _type {actual:?}, expected {expected:?}")]
    WrongType {
        /// Role name.
        role: String,
        /// Expected `_type`.
        expected: String,
        /// Found `_type`.
        actual: String,
    },
    /// Fewer distinct valid signatures than the threshold.
    #[error("{role}: {valid} valid signature(s) from distinct authorised keys, threshold is {threshold}")]
    Threshold {
        /// Role name.
        role: String,
        /// Distinct keys that signed validly.
        valid: u32,
        /// Required.
        threshold: u32,
    },
    /// Expired (freeze attack, or an operator who forgot to re-sign).
    #[error("{role} v{version} expired at {expires} (now {now})")]
    Expired {
        /// Role name.
        role: String,
        /// Its version.
        version: u64,
        /// Its expiry.
        expires: String,
        /// The reference time.
        now: String,
    },
    /// Version went backwards (rollback attack).
    #[error("{role}: version {new} is older than the trusted version {trusted}")]
    Rollback {
        /// Role name.
        role: String,
        /// Trusted version.
        trusted: u64,
        /// Offered version.
        new: u64,
    },
    /// The version is not the one the referring metadata (or the URL) names.
    #[error("{role}: expected version {expected}, got {actual}")]
    VersionMismatch {
        /// Role name.
        role: String,
        /// Expected version.
        expected: u64,
        /// Version in the file.
        actual: u64,
    },
    /// Snapshot no longer lists a role the trusted snapshot listed.
    #[error("snapshot v{version} drops {file}, which the trusted snapshot lists")]
    RoleRemoved {
        /// New snapshot version.
        version: u64,
        /// The missing meta entry.
        file: String,
    },
    /// Length or hashes differ from what the referring metadata says.
    #[error("{what}: {reason}")]
    HashMismatch {
        /// The file (role or target path).
        what: String,
        /// Expected vs actual.
        reason: String,
    },
    /// A hash bin lists a target that falls in another bin of its delegation: the file
    /// served under the bin's name is another bin (all bins share one key set and the
    /// snapshot names their versions without hashes, so only this tells them apart).
    #[error("{role} lists {target}, which falls in {belongs_to}: another bin's file was served under its name")]
    ForeignTarget {
        /// The bin asked for.
        role: String,
        /// A target it lists that is not its own.
        target: String,
        /// The bin that target falls in.
        belongs_to: String,
    },
    /// A delegated role was reached but snapshot does not list it.
    #[error("role {role} is delegated but snapshot does not list it")]
    NotInSnapshot {
        /// Role name.
        role: String,
    },
    /// More root versions than the limit in one refresh.
    #[error("more than {limit} root rotations in one refresh")]
    TooManyRootRotations {
        /// The limit.
        limit: u32,
    },
    /// The metadata downloaded since the refresh began passed
    /// [`Limits::metadata_bytes`](super::Limits::metadata_bytes).
    #[error("metadata of one refresh exceeds the {limit}-byte limit (reached while fetching {file}); refused")]
    MetadataBudget {
        /// The limit.
        limit: u64,
        /// The file being fetched when it was reached.
        file: String,
    },
    /// The client has no trusted root yet.
    #[error("no trusted root at {path}: initialise the client with the root shipped with the application")]
    NoTrustedRoot {
        /// Where it was looked for.
        path: String,
    },
    /// An operation needs a refresh first.
    #[error("{0} is not loaded; refresh first")]
    NotLoaded(&'static str),
    /// Fetching failed at every mirror.
    #[error(transparent)]
    Fetch(#[from] Box<MirrorsError<TrustError>>),
    /// Disk I/O of the trusted state or of a target.
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl TrustError {
    pub(crate) fn malformed(role: &str, reason: impl Into<String>) -> Self {
        Self::Malformed { role: role.to_owned(), reason: reason.into() }
    }
}
