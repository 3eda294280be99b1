//! The content-addressed download cache: `<dir>/sha256/<hex>`.
//!
//! A file is stored under the SHA-256 of its bytes and re-hashed on every read; a file
//! whose bytes no longer match its name (disk corruption, tampering) is deleted and
//! reported as a miss, so the caller downloads it again. What may be cached is the
//! caller's decision (the `trust` module stores only verified targets).

use std::path::{Path, PathBuf};

use trellis_schema::Sha256;

use crate::fs::{FsError, create_dir_all, replace_unsynced};

/// A cache write or read that failed for a reason other than "absent".
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Disk I/O.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The bytes to store do not have the digest they were stored under.
    #[error("refusing to cache bytes under sha256 {expected}: their sha256 is {actual}")]
    DigestMismatch {
        /// Claimed digest.
        expected: Sha256,
        /// Actual digest.
        actual: Sha256,
    },
}

/// A directory of blobs named by their SHA-256.
#[derive(Clone, Debug)]
pub struct DownloadCache {
    dir: PathBuf,
}

impl DownloadCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the blob with `digest` lives.
    pub fn path_of(&self, digest: &Sha256) -> PathBuf {
        self.dir.join("sha256").join(digest.to_hex())
    }

    /// The cached bytes of `digest`, verified; `None` when absent or corrupt.
    pub fn get(&self, digest: &Sha256) -> Option<Vec<u8>> {
        let path = self.path_of(digest);
        let bytes = std::fs::read(&path).ok()?;
        if Sha256::of(&bytes) == *digest {
            Some(bytes)
        } else {
            tracing::warn!(path = %path.display(), "cached blob does not match its digest; dropping it");
            let _ = std::fs::remove_file(&path);
            None
        }
    }

    /// Stores `bytes` under `digest`, refusing bytes that do not hash to it (renamed
    /// into place without fsync: see [`crate::fs::replace_unsynced`]).
    pub fn put(&self, digest: &Sha256, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        let actual = Sha256::of(bytes);
        if actual != *digest {
            return Err(CacheError::DigestMismatch { expected: *digest, actual });
        }
        let path = self.path_of(digest);
        create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        // Every read re-hashes the file, so it needs no fsync: after a power loss a
        // torn entry is a miss.
        replace_unsynced(&path, bytes)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_verified_bytes_and_drops_corrupted_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path());
        let digest = Sha256::of(b"blob");
        assert!(cache.get(&digest).is_none());
        let path = cache.put(&digest, b"blob").unwrap();
        assert_eq!(cache.get(&digest).unwrap(), b"blob");
        std::fs::write(&path, b"blob!").unwrap();
        assert!(cache.get(&digest).is_none(), "a corrupted entry is a miss");
        assert!(!path.exists(), "and is removed");
        assert!(matches!(cache.put(&digest, b"other"), Err(CacheError::DigestMismatch { .. })));
    }
}
