//! Where a package's bytes come from: a file read with positional reads, or a buffer.
//!
//! Owns reading, and nothing else: [`Source`] answers "these bytes at that offset" for
//! the one parser in [`super::archive`] and the streaming in `inflate`, whether the
//! package is a file on disk ([`super::Package::open`]) or bytes already in memory
//! ([`super::Package::from_bytes`]). A file is never read whole and never mapped (a
//! file truncated under a mapping is `SIGBUS`, and mapped pages count in RSS anyway):
//! the digest pass reads it in chunks and everything after reads only what it needs.
//!
//! A file is read through the handle opened once, so a rename over its path changes
//! nothing; a file rewritten in place by another process is what the callers guard
//! against (see the soundness notes in [`super`]). A file that shrank under us is
//! reported as [`PackageError::Changed`], never as a short read.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use trellis_schema::digest::Hasher;
use trellis_schema::manifest::PackageDigest;

use super::error::PackageError;

/// Size of the chunks the digest pass reads.
const HASH_CHUNK: usize = 1 << 20;

/// The bytes of one package.
#[derive(Debug)]
pub(crate) enum Source {
    /// Bytes already in memory.
    Memory(Vec<u8>),
    /// An open file, whose length was fixed when it was opened.
    File {
        /// The open handle every read goes through.
        file: File,
        /// Its path, for messages.
        path: PathBuf,
        /// Its length when opened.
        len: u64,
    },
}

impl Source {
    /// Opens the file at `path` (reading nothing yet).
    pub(crate) fn open(path: &Path) -> Result<Self, PackageError> {
        let read_error = |source| PackageError::Read { path: PathBuf::from(path), source };
        let file = File::open(path).map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        Ok(Self::File { file, path: path.to_owned(), len })
    }

    /// The package's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Memory(bytes) => bytes.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// Fills `buf` with the bytes at `offset`. Callers check their ranges against
    /// [`Source::len`] first, so a short read means the file shrank after it was opened.
    pub(crate) fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), PackageError> {
        match self {
            Self::Memory(bytes) => {
                let range = usize::try_from(offset)
                    .ok()
                    .and_then(|start| Some(start..start.checked_add(buf.len())?))
                    .and_then(|range| bytes.get(range));
                let Some(slice) = range else {
                    return Err(PackageError::Truncated {
                        record: "read",
                        offset,
                        needed: buf.len() as u64,
                        available: (bytes.len() as u64).saturating_sub(offset),
                    });
                };
                buf.copy_from_slice(slice);
                Ok(())
            }
            Self::File { file, path, .. } => read_exact_at(file, offset, buf).map_err(|source| {
                if source.kind() == io::ErrorKind::UnexpectedEof {
                    PackageError::Changed { path: path.clone(), reason: "it is shorter than when it was opened" }
                } else {
                    PackageError::Read { path: path.clone(), source }
                }
            }),
        }
    }

    /// Reads every byte once, in order: returns the digest and a copy of the bytes
    /// from `keep_from` to the end (the tail the structure is parsed from, so that the
    /// directory parsed is the directory hashed).
    pub(crate) fn digest_keeping_tail(&self, keep_from: u64) -> Result<(PackageDigest, Vec<u8>), PackageError> {
        let len = self.len();
        let keep_from = keep_from.min(len);
        let mut hasher = Hasher::new();
        let mut tail = Vec::with_capacity(usize::try_from(len - keep_from).unwrap_or(0));
        let mut keep = |offset: u64, chunk: &[u8]| {
            let end = offset + chunk.len() as u64;
            if end > keep_from {
                let skip = usize::try_from(keep_from.saturating_sub(offset)).unwrap_or(chunk.len());
                tail.extend_from_slice(&chunk[skip.min(chunk.len())..]);
            }
        };
        match self {
            Self::Memory(bytes) => {
                hasher.update(bytes);
                keep(0, bytes);
            }
            Self::File { file, path, .. } => {
                let mut buffer = vec![0u8; HASH_CHUNK];
                let mut offset = 0u64;
                while offset < len {
                    let n = usize::try_from(len - offset).unwrap_or(usize::MAX).min(HASH_CHUNK);
                    self.read_exact_at(offset, &mut buffer[..n])?;
                    hasher.update(&buffer[..n]);
                    keep(offset, &buffer[..n]);
                    offset += n as u64;
                }
                let now = file.metadata().map_err(|source| PackageError::Read { path: path.clone(), source })?.len();
                if now != len {
                    return Err(PackageError::Changed {
                        path: path.clone(),
                        reason: "its length changed while it was hashed",
                    });
                }
            }
        }
        Ok((PackageDigest { sha256: hasher.finish(), size: len }, tail))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    // `seek_read` moves the handle's cursor, which nothing else here uses.
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("package.zip");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn file_and_memory_sources_read_and_hash_the_same_bytes() {
        let bytes: Vec<u8> = (0..3 * HASH_CHUNK as u32 + 17).map(|i| (i * 31 % 251) as u8).collect();
        let (_dir, path) = file_with(&bytes);
        let file = Source::open(&path).unwrap();
        let memory = Source::Memory(bytes.clone());
        let keep_from = bytes.len() as u64 - 70_000;
        let (file_digest, file_tail) = file.digest_keeping_tail(keep_from).unwrap();
        let (memory_digest, memory_tail) = memory.digest_keeping_tail(keep_from).unwrap();
        assert_eq!(file_digest, memory_digest);
        assert_eq!(file_digest.sha256, trellis_schema::Sha256::of(&bytes));
        assert_eq!(file_tail, &bytes[bytes.len() - 70_000..]);
        assert_eq!(memory_tail, file_tail);
        for source in [&file, &memory] {
            let mut buf = [0u8; 9];
            source.read_exact_at(HASH_CHUNK as u64 - 4, &mut buf).unwrap();
            assert_eq!(buf, bytes[HASH_CHUNK - 4..HASH_CHUNK + 5]);
        }
    }

    #[test]
    fn a_file_that_shrinks_after_opening_is_reported_as_changed() {
        let (_dir, path) = file_with(&[5u8; 4096]);
        let source = Source::open(&path).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1000).unwrap();
        let mut buf = [0u8; 100];
        let error = source.read_exact_at(2000, &mut buf).unwrap_err();
        assert!(matches!(error, PackageError::Changed { .. }), "{error:?}");
        let error = source.digest_keeping_tail(0).unwrap_err();
        assert!(matches!(error, PackageError::Changed { .. }), "{error:?}");
    }

    #[test]
    fn a_read_past_the_end_of_memory_is_refused() {
        let source = Source::Memory(vec![1, 2, 3]);
        let mut buf = [0u8; 2];
        assert!(matches!(
            source.read_exact_at(2, &mut buf),
            Err(PackageError::Truncated { needed: 2, available: 1, .. })
        ));
        assert!(source.read_exact_at(u64::MAX, &mut buf).is_err());
    }
}
