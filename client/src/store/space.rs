//! Free space on the file system of the data dir, checked before any download.
//!
//! Owns one question: how many bytes can still be written under a path. On Unix it
//! asks `statvfs` (through rustix, no unsafe code); elsewhere the answer is unknown and
//! the check is skipped with a log line, never guessed.

use std::path::Path;

use super::StoreError;

/// Bytes available to an unprivileged writer on the file system holding `path`;
/// `None` when the platform cannot say.
pub fn available(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        match rustix::fs::statvfs(path) {
            Ok(stat) => Some(stat.f_bavail.saturating_mul(stat.f_frsize)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not query free space");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        tracing::debug!(path = %path.display(), "free space is not checked on this platform");
        None
    }
}

/// Fails with [`StoreError::InsufficientSpace`] when fewer than `needed` bytes are
/// available under `path`.
pub fn check(path: &Path, needed: u64) -> Result<(), StoreError> {
    match available(path) {
        Some(available) if available < needed => {
            Err(StoreError::InsufficientSpace { path: path.to_owned(), needed, available })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn refuses_an_operation_larger_than_the_free_space_naming_both_figures() {
        let dir = tempfile::tempdir().unwrap();
        let available = available(dir.path()).unwrap();
        assert!(check(dir.path(), available / 2).is_ok());
        let error = check(dir.path(), u64::MAX).unwrap_err();
        let StoreError::InsufficientSpace { needed, available: reported, .. } = &error else { panic!("{error}") };
        assert_eq!(*needed, u64::MAX);
        assert!(*reported > 0);
        let message = error.to_string();
        assert!(message.contains(&u64::MAX.to_string()) && message.contains("free some space"), "{message}");
    }
}
