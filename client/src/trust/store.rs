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
    /// role that no longer matches the one above it is not used (loading checks each
    /// against the timestamp or snapshot, as for a delegated role) and is downloaded
    /// again; the rollback reference is then the older copy, as if that refresh had not
    /// run. A delegated role is renamed into place without fsync, because every load
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

    /// Validators of the trusted timestamp, if recorded.
    pub fn load_validators(&self) -> Option<TimestampValidators> {
        let bytes = std::fs::read(self.validators_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records validators of the trusted timestamp (or forgets them with `None`).
    /// Written without a barrier: an unreadable or lost copy loads as none (the next
    /// check is an unconditional GET). Store them only after the timestamp they
    /// validate is durable ([`sync`](Self::sync)): validators newer than the stored
    /// timestamp would answer a check with `304` and keep the older one.
    pub fn store_validators(&self, validators: Option<&TimestampValidators>) -> Result<(), FsError> {
        match validators {
            Some(v) if !v.validators.is_empty() => {
                create_dir_all(&self.dir)?;
                let bytes = serde_json::to_vec(v).unwrap_or_default();
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
}
