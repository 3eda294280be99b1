//! Streaming one entry's bytes out of the archive, with every limit counted on the
//! bytes actually produced.
//!
//! Owns: reading the entry's compressed bytes from the [`Source`] in chunks, inflating
//! (or copying stored data), CRC-32 and SHA-256 while streaming, the declared-size,
//! per-file, total-size and ratio limits on actual output. Hands each chunk to a
//! caller-supplied sink ([`super::extract`] writes it to the staging directory;
//! verification and in-memory reads keep or drop it). Memory is the two buffers of a
//! [`Scratch`], whatever the entry's size.

use std::io;

use flate2::{Decompress, FlushDecompress, Status};
use trellis_schema::Sha256;
use trellis_schema::digest::Hasher;

use super::archive::{Entry, Method, exceeds_ratio};
use super::error::PackageError;
use super::limits::Limits;
use super::source::Source;

/// Size of each reusable buffer.
pub(crate) const BUFFER_SIZE: usize = 256 * 1024;

/// The reusable buffers of [`stream_entry`]: compressed bytes in, content out.
pub(crate) struct Scratch {
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Scratch {
    /// Buffers of [`BUFFER_SIZE`] bytes each.
    pub(crate) fn new() -> Self {
        Self::with_sizes(BUFFER_SIZE, BUFFER_SIZE)
    }

    /// Buffers of the given sizes (at least one byte each).
    pub(crate) fn with_sizes(input: usize, output: usize) -> Self {
        Self { input: vec![0; input.max(1)], output: vec![0; output.max(1)] }
    }
}

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

/// Streams `entry`'s content from `source` through `sink` in chunks of at most the
/// scratch output size. Fails as soon as a limit is passed; the sink never sees a byte
/// past the entry's declared size.
pub(crate) fn stream_entry(
    source: &Source,
    entry: &Entry,
    limits: &Limits,
    budget: &mut Budget,
    scratch: &mut Scratch,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    sink_error: impl Fn(io::Error) -> PackageError,
) -> Result<Inflated, PackageError> {
    let name = || entry.name().to_owned();
    if entry.data.end < entry.data.start || entry.data.end > source.len() {
        return Err(PackageError::CorruptEntry {
            name: name(),
            reason: "data range lies outside the archive".to_owned(),
        });
    }
    let compressed = entry.data.end - entry.data.start;
    // The next compressed byte to read, and how many are left to read.
    let (mut next, mut unread) = (entry.data.start, compressed);
    let Scratch { input, output } = scratch;
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
            while unread > 0 {
                let n = output.len().min(usize::try_from(unread).unwrap_or(usize::MAX));
                source.read_exact_at(next, &mut output[..n])?;
                (next, unread) = (next + n as u64, unread - n as u64);
                take(&output[..n], &mut produced)?;
            }
        }
        Method::Deflated => {
            let mut inflater = Decompress::new(false);
            // input[consumed..filled] is read but not yet inflated.
            let (mut consumed, mut filled) = (0usize, 0usize);
            loop {
                if consumed == filled && unread > 0 {
                    let n = input.len().min(usize::try_from(unread).unwrap_or(usize::MAX));
                    source.read_exact_at(next, &mut input[..n])?;
                    (next, unread) = (next + n as u64, unread - n as u64);
                    (consumed, filled) = (0, n);
                }
                // Never ask for more than one byte past the declared size.
                let room = entry.size.saturating_sub(produced).saturating_add(1);
                let window = output.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
                let status = inflater
                    .decompress(&input[consumed..filled], &mut output[..window], FlushDecompress::None)
                    .map_err(|e| PackageError::CorruptEntry { name: name(), reason: format!("deflate: {e}") })?;
                let used = usize::try_from(inflater.total_in() - in_before).unwrap_or(usize::MAX);
                consumed = consumed.saturating_add(used).min(filled);
                let out = usize::try_from(inflater.total_out() - out_before).unwrap_or(usize::MAX).min(window);
                take(&output[..out], &mut produced)?;
                match status {
                    Status::StreamEnd => break,
                    // No progress with input pending, or none left: the stream is cut short.
                    Status::Ok | Status::BufError if out == 0 && used == 0 => {
                        return Err(PackageError::CorruptEntry {
                            name: name(),
                            reason: "deflate stream ends before its final block".to_owned(),
                        });
                    }
                    Status::Ok | Status::BufError => {}
                }
            }
            let consumed = inflater.total_in();
            if consumed != compressed {
                return Err(PackageError::CorruptEntry {
                    name: name(),
                    reason: format!("deflate stream ends after {consumed} of {compressed} compressed bytes"),
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn deflate(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Streams `entry`, returning the result and how many bytes reached the sink.
    fn stream(
        archive: &[u8],
        entry: &Entry,
        limits: &Limits,
        budget: &mut Budget,
    ) -> (Result<Inflated, PackageError>, u64) {
        let mut seen = 0u64;
        // Small input chunks so that every stream spans many reads.
        let mut scratch = Scratch::with_sizes(1000, 4096);
        let result = stream_entry(
            &Source::Memory(archive.to_vec()),
            entry,
            limits,
            budget,
            &mut scratch,
            |chunk| {
                seen += chunk.len() as u64;
                Ok(())
            },
            |e| PackageError::CorruptEntry { name: String::new(), reason: e.to_string() },
        );
        (result, seen)
    }

    #[test]
    fn per_file_limit_holds_on_inflated_bytes_even_when_the_declared_size_allows_more() {
        let zeros = vec![0u8; 1 << 20];
        let archive = deflate(&zeros);
        let entry =
            Entry::unchecked("bomb", Method::Deflated, 0..archive.len() as u64, 1 << 20, crc32fast::hash(&zeros));
        let limits = Limits::default().with_max_file_size(100_000);
        let (result, seen) = stream(&archive, &entry, &limits, &mut Budget::default());
        assert!(matches!(result, Err(PackageError::FileTooLarge { max: 100_000, size, .. }) if size <= 100_000 + 4096));
        assert!(seen <= 100_000, "the sink saw {seen} bytes");
    }

    #[test]
    fn ratio_limit_holds_on_inflated_bytes() {
        let zeros = vec![0u8; 1 << 20];
        let archive = deflate(&zeros);
        let entry =
            Entry::unchecked("bomb", Method::Deflated, 0..archive.len() as u64, 1 << 20, crc32fast::hash(&zeros));
        let limits = Limits::default().with_ratio_check_floor(64 * 1024);
        let (result, seen) = stream(&archive, &entry, &limits, &mut Budget::default());
        assert!(matches!(result, Err(PackageError::CompressionRatioTooHigh { max_ratio: 250, .. })), "{result:?}");
        assert!(seen < 1 << 20);
    }

    #[test]
    fn total_limit_counts_across_entries() {
        let content: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        let entry =
            Entry::unchecked("part", Method::Stored, 0..content.len() as u64, 30_000, crc32fast::hash(&content));
        let limits = Limits::default().with_max_total_size(50_000);
        let mut budget = Budget::default();
        assert!(stream(&content, &entry, &limits, &mut budget).0.is_ok());
        let (result, seen) = stream(&content, &entry, &limits, &mut budget);
        assert!(matches!(result, Err(PackageError::TotalSizeTooLarge { max: 50_000, .. })), "{result:?}");
        assert!(seen <= 20_000 + 4096);
    }

    #[test]
    fn inflation_stops_one_byte_past_the_declared_size() {
        let content = vec![7u8; 50_000];
        let archive = deflate(&content);
        let entry =
            Entry::unchecked("liar", Method::Deflated, 0..archive.len() as u64, 1000, crc32fast::hash(&content));
        let (result, seen) = stream(&archive, &entry, &Limits::default(), &mut Budget::default());
        assert!(matches!(result, Err(PackageError::InflatesPastDeclaredSize { declared: 1000, .. })), "{result:?}");
        assert!(seen <= 1000, "the sink saw {seen} bytes");
    }

    #[test]
    fn refuses_truncated_and_overlong_deflate_streams() {
        let content: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 256) as u8).collect();
        let mut archive = deflate(&content);
        let crc = crc32fast::hash(&content);
        let cut = Entry::unchecked("cut", Method::Deflated, 0..archive.len() as u64 / 2, 20_000, crc);
        let (result, _) = stream(&archive, &cut, &Limits::default(), &mut Budget::default());
        assert!(matches!(result, Err(PackageError::CorruptEntry { .. })), "{result:?}");

        archive.extend_from_slice(b"extra");
        let padded = Entry::unchecked("padded", Method::Deflated, 0..archive.len() as u64, 20_000, crc);
        let (result, _) = stream(&archive, &padded, &Limits::default(), &mut Budget::default());
        assert!(matches!(result, Err(PackageError::CorruptEntry { reason, .. }) if reason.contains("ends after")));
    }

    #[test]
    fn hashes_what_it_streams() {
        let content = b"hello, package".repeat(1000);
        let archive = deflate(&content);
        let entry = Entry::unchecked(
            "ok",
            Method::Deflated,
            0..archive.len() as u64,
            content.len() as u64,
            crc32fast::hash(&content),
        );
        let (result, seen) = stream(&archive, &entry, &Limits::default(), &mut Budget::default());
        assert_eq!(result.unwrap(), Inflated { size: content.len() as u64, sha256: Sha256::of(&content) });
        assert_eq!(seen, content.len() as u64);
    }
}
