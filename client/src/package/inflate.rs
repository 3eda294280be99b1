//! Streaming one entry's bytes out of the archive, with every limit counted on the
//! bytes actually produced.
//!
//! Owns: inflating (or copying stored data), CRC-32 and SHA-256 while streaming, the
//! declared-size, per-file, total-size and ratio limits on actual output. Hands each
//! chunk to a caller-supplied sink ([`super::extract`] writes it to the staging
//! directory; verification and in-memory reads keep or drop it).

use std::io;

use flate2::{Decompress, FlushDecompress, Status};
use trellis_schema::Sha256;
use trellis_schema::digest::Hasher;

use super::archive::{Entry, Method, exceeds_ratio};
use super::error::PackageError;
use super::limits::Limits;

/// Size of the reusable output buffer.
pub(crate) const BUFFER_SIZE: usize = 256 * 1024;

/// What one entry inflated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inflated {
    /// Bytes produced.
    pub size: u64,
    /// SHA-256 of those bytes.
    pub sha256: Sha256,
}

/// A running count of bytes inflated across the whole package.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    total: u64,
}

/// Streams `entry`'s content from `archive` through `sink` in chunks of at most
/// `buffer.len()` bytes. Fails as soon as a limit is passed; the sink never sees a
/// byte past the entry's declared size.
pub(crate) fn stream_entry(
    archive: &[u8],
    entry: &Entry,
    limits: &Limits,
    budget: &mut Budget,
    buffer: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    sink_error: impl Fn(io::Error) -> PackageError,
) -> Result<Inflated, PackageError> {
    let name = || entry.name().to_owned();
    let input = archive.get(entry.data.clone()).ok_or_else(|| PackageError::CorruptEntry {
        name: name(),
        reason: "data range lies outside the archive".to_owned(),
    })?;
    let mut sha256 = Hasher::new();
    let mut crc = crc32fast::Hasher::new();
    let mut produced = 0u64;
    let mut take = |chunk: &[u8], produced: &mut u64| -> Result<(), PackageError> {
        *produced += chunk.len() as u64;
        budget.total += chunk.len() as u64;
        if *produced > entry.size {
            return Err(PackageError::InflatesPastDeclaredSize { name: name(), declared: entry.size });
        }
        if *produced > limits.max_file_size {
            return Err(PackageError::FileTooLarge { name: name(), size: *produced, max: limits.max_file_size });
        }
        if budget.total > limits.max_total_size {
            return Err(PackageError::TotalSizeTooLarge {
                name: name(),
                total: budget.total,
                max: limits.max_total_size,
            });
        }
        if exceeds_ratio(*produced, entry.compressed_size, limits) {
            return Err(PackageError::CompressionRatioTooHigh {
                name: name(),
                size: *produced,
                compressed: entry.compressed_size,
                max_ratio: limits.max_compression_ratio,
            });
        }
        crc.update(chunk);
        sha256.update(chunk);
        sink(chunk).map_err(&sink_error)
    };
    match entry.method {
        Method::Stored => {
            for chunk in input.chunks(buffer.len().max(1)) {
                take(chunk, &mut produced)?;
            }
        }
        Method::Deflated => {
            let mut inflater = Decompress::new(false);
            loop {
                // Never ask for more than one byte past the declared size.
                let room = entry.size.saturating_sub(produced).saturating_add(1);
                let window = buffer.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
                let consumed_so_far = usize::try_from(in_before).unwrap_or(usize::MAX).min(input.len());
                let status = inflater
                    .decompress(&input[consumed_so_far..], &mut buffer[..window], FlushDecompress::Finish)
                    .map_err(|e| PackageError::CorruptEntry { name: name(), reason: format!("deflate: {e}") })?;
                let out = usize::try_from(inflater.total_out() - out_before).unwrap_or(usize::MAX).min(window);
                take(&buffer[..out], &mut produced)?;
                match status {
                    Status::StreamEnd => break,
                    Status::Ok | Status::BufError if out == 0 && inflater.total_in() == in_before => {
                        return Err(PackageError::CorruptEntry {
                            name: name(),
                            reason: "deflate stream ends before its final block".to_owned(),
                        });
                    }
                    Status::Ok | Status::BufError => {}
                }
            }
            let consumed = inflater.total_in();
            if consumed != input.len() as u64 {
                return Err(PackageError::CorruptEntry {
                    name: name(),
                    reason: format!("deflate stream ends after {consumed} of {} compressed bytes", input.len()),
                });
            }
        }
    }
    if produced != entry.size {
        return Err(PackageError::SizeMismatch { name: name(), declared: entry.size, actual: produced });
    }
    let actual = crc.finalize();
    if actual != entry.crc32 {
        return Err(PackageError::BadCrc { name: name(), expected: entry.crc32, actual });
    }
    Ok(Inflated { size: produced, sha256: sha256.finish() })
}
