//! The persisted trusted state: one file per role in a directory, written atomically,
//! holding the bytes exactly as the repository served them (so hashes in snapshot and
//! timestamp keep matching). File names are the URL-quoted role name plus `.json`
//! (`root.json`, `timestamp.json`, `%3F.json`), never a path a role name could steer.
//! Beside each verified document goes its [`Receipt`] (`<role>.receipt`), which lets
//! the next load skip re-checking signatures (see [`super::verify`]).

use std::path::{Path, PathBuf};

use super::verify::Receipt;
use crate::fs::{
    Flush, FsError, Rename, create_dir_all, replace_unsynced, sync_dir, write_atomic, write_atomic_flushing,
    write_atomic_unflushed,
};
use crate::transport::Validators;

/// The directory of trusted metadata.
#[derive(Clone, Debug)]
pub struct MetadataStore {
    dir: PathBuf,
}

/// HTTP validators of the trusted timestamp and the URL they came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimestampValidators {
    /// The URL the timestamp was fetched from.
    pub url: String,
    /// Its `ETag` / `Last-Modified`.
    #[serde(flatten)]
    pub validators: Validators,
}

impl MetadataStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `role`.
    pub fn path_of(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.json", quote(role)))
    }

    /// The trusted bytes of `role`, if present.
    pub fn load(&self, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path_of(role)).ok()
    }

    /// Replaces `role`'s bytes atomically. The root is written durably (the trust
    /// anchor: flushed, renamed, its directory synced). The timestamp, snapshot and
    /// top-level targets are flushed before their rename (never torn) and made durable
    /// together by [`sync`](Self::sync) at the end of the refresh that stores them:
    /// after a power loss before it, each holds its old or its new bytes, and a stored
    /// role that no longer matches the one above it is not used as current (loading
    /// checks each against the timestamp or snapshot, as for a delegated role) and is
    /// downloaded again. Whichever of the newer timestamp and snapshot survived stays a
    /// rollback reference, as in python-tuf; with both older ones back, the older chain
    /// is what was trusted, as if that refresh had not run (tested for every mix by
    /// `transport_update_check`). A delegated role is renamed into place without fsync, because every load
    /// verifies it against its delegator and the trusted snapshot and downloads it
    /// again when that fails.
    pub fn store(&self, role: &str, bytes: &[u8]) -> Result<(), FsError> {
        create_dir_all(&self.dir)?;
        match role {
            "root" => write_atomic(&self.path_of(role), bytes),
            "timestamp" | "snapshot" | "targets" => {
                write_atomic_flushing(&self.path_of(role), bytes, Flush::File, Rename::Lazy)
            }
            _ => replace_unsynced(&self.path_of(role), bytes),
        }
    }

    /// Makes the renames of the stored top-level roles durable (one sync of the
    /// directory). Nothing to do when the directory does not exist.
    pub fn sync(&self) -> Result<(), FsError> {
        if self.dir.is_dir() { sync_dir(&self.dir) } else { Ok(()) }
    }

    fn receipt_path(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.receipt", quote(role)))
    }

    /// The receipt of `role`'s stored bytes, if one is recorded and readable.
    pub fn load_receipt(&self, role: &str) -> Option<Receipt> {
        serde_json::from_slice(&std::fs::read(self.receipt_path(role)).ok()?).ok()
    }

    /// Records the receipt of `role`'s stored bytes. A receipt is a cache (losing it
    /// costs one signature check), so it is renamed into place without fsync: after a
    /// crash it may be missing or older than the document, and then it does not apply,
    /// because it names the SHA-256 of the bytes it vouches for.
    pub fn store_receipt(&self, role: &str, receipt: &Receipt) -> Result<(), FsError> {
        let bytes = serde_json::to_vec(receipt).unwrap_or_default();
        replace_unsynced(&self.receipt_path(role), &bytes)
    }

    /// Stores `role`'s verified bytes and their receipt.
    pub fn store_verified<T>(&self, role: &str, bytes: &[u8], doc: &super::Verified<T>) -> Result<(), FsError> {
        self.store(role, bytes)?;
        self.store_receipt(role, &Receipt::new(bytes, doc))
    }

    fn validators_path(&self) -> PathBuf {
        // Not `.json`: the directory holds metadata files only.
        self.dir.join("timestamp.validators")
    }

    /// Validators of the trusted timestamp, if recorded for the timestamp the store
    /// holds now. They are bound to that file's SHA-256: validators whose timestamp was
    /// lost (a power cut that kept the validators' rename but not the timestamp's, a
    /// file restored from a backup, an older client's file without the binding) load as
    /// none, so the next check is an unconditional GET instead of a `304` that would
    /// keep the older timestamp for good.
    pub fn load_validators(&self) -> Option<TimestampValidators> {
        let bytes = std::fs::read(self.validators_path()).ok()?;
        let stored: StoredValidators = serde_json::from_slice(&bytes).ok()?;
        let timestamp = self.load("timestamp")?;
        if stored.timestamp_sha256 != sha256_hex(&timestamp) {
            tracing::debug!(
                path = %self.validators_path().display(),
                "timestamp validators were stored for other timestamp bytes than the store holds; not used"
            );
            return None;
        }
        Some(stored.validators)
    }

    /// Records validators of the trusted timestamp (or forgets them with `None`),
    /// bound to the SHA-256 of the timestamp file as stored now (see
    /// [`load_validators`](Self::load_validators)); without a stored timestamp they
    /// are forgotten. Written without a barrier: an unreadable or lost copy loads as
    /// none (the next check is an unconditional GET). Stored after the timestamp they
    /// validate is durable ([`sync`](Self::sync)), and the binding makes a lost
    /// timestamp rename harmless in any order.
    pub fn store_validators(&self, validators: Option<&TimestampValidators>) -> Result<(), FsError> {
        let timestamp = self.load("timestamp");
        match (validators, timestamp) {
            (Some(v), Some(timestamp)) if !v.validators.is_empty() => {
                let stored = StoredValidators { timestamp_sha256: sha256_hex(&timestamp), validators: v.clone() };
                let bytes = serde_json::to_vec(&stored).unwrap_or_default();
                write_atomic_unflushed(&self.validators_path(), &bytes)
            }
            _ => match std::fs::remove_file(self.validators_path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(FsError::new("removing", self.validators_path(), e))
                }
                _ => Ok(()),
            },
        }
    }
}

/// The validators file: the validators and the SHA-256 of the timestamp bytes they
/// were stored beside.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredValidators {
    timestamp_sha256: String,
    #[serde(flatten)]
    validators: TimestampValidators,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Percent-encodes everything but `A-Z a-z 0-9 _ . - ~` (Python's `quote(s, safe="")`,
/// which TUF clients use for role names in URLs and file names).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_cannot_escape_the_directory() {
        assert_eq!(quote("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(quote("?"), "%3F");
        assert_eq!(quote("bin-0a"), "bin-0a");
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(dir.path().join("meta"));
        store.store("/etc/passwd", b"x").unwrap();
        assert_eq!(store.path_of("/etc/passwd").parent().unwrap(), dir.path().join("meta"));
        assert_eq!(store.load("/etc/passwd").unwrap(), b"x");
    }

    #[test]
    fn validators_load_only_beside_the_timestamp_they_were_stored_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(dir.path().join("meta"));
        let validators = TimestampValidators {
            url: "https://example.org/metadata/timestamp.json".into(),
            validators: Validators { etag: Some("\"v2\"".into()), last_modified: None },
        };
        // No timestamp stored: nothing to bind to, nothing recorded.
        store.store_validators(Some(&validators)).unwrap();
        assert_eq!(store.load_validators(), None);

        store.store("timestamp", b"{\"version\": 2}").unwrap();
        store.store_validators(Some(&validators)).unwrap();
        assert_eq!(store.load_validators().as_ref(), Some(&validators));

        // The timestamp's rename lost, the validators' kept: they are not used.
        store.store("timestamp", b"{\"version\": 1}").unwrap();
        assert_eq!(store.load_validators(), None);

        // A file without the binding (an older client's) is not used either.
        std::fs::write(store.dir().join("timestamp.validators"), serde_json::to_vec(&validators).unwrap()).unwrap();
        assert_eq!(store.load_validators(), None);

        store.store_validators(None).unwrap();
        assert!(!store.dir().join("timestamp.validators").exists());
    }
}
