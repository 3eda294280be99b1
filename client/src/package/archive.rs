//! The ZIP structure of a package: end record, central directory, local headers and
//! the layout of the bytes between them.
//!
//! A strict reader for the subset of ZIP that `trellis-index pack` writes (and that
//! every mainstream zipper writes for small archives): one disk, no ZIP64, no
//! encryption, stored or deflate entries, optional data descriptors. Every byte of the
//! archive must belong to exactly one record: no prepended stub, no gaps, no overlaps,
//! no trailing data. Each local header must agree with its central-directory record.
//! Names go through the portable policy and the collision set here, before any byte
//! is inflated.
//!
//! The end record and the central directory are parsed from the archive's tail as it
//! was read by the digest pass (`source::Tail`), so the directory parsed is the directory
//! hashed; local headers are read where the directory points, one positional read each.
//! Memory stays bounded by the directory's size, itself bounded by
//! [`Limits::max_entries`] × [`MAX_DIRECTORY_RECORD`].
//!
//! It does not inflate anything (that is `inflate`), does not read files itself (that
//! is `super::source`) and knows nothing about manifests (that is [`super::Package`]).

use std::ops::Range;

use trellis_schema::path::{NameSet, PackagePath};

use super::error::PackageError;
use super::limits::Limits;
use super::source::Source;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
const MAX_COMMENT_LEN: usize = 0xFFFF;

/// Largest central-directory record budgeted per entry, in bytes: the fixed part, a
/// name of the longest accepted path, and room for extra fields and a comment. A
/// directory larger than [`Limits::max_entries`] such records is refused before it is
/// kept in memory.
pub const MAX_DIRECTORY_RECORD: u64 = 1024;

const FLAG_ENCRYPTED: u16 = 1 << 0;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
const FLAG_UTF8: u16 = 1 << 11;

const EXTRA_ZIP64: u16 = 0x0001;
const EXTRA_UNICODE_PATH: u16 = 0x7075;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const DOS_DIRECTORY: u32 = 0x10;
const DOS_REPARSE_POINT: u32 = 0x400;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Stored as is (method 0).
    Stored,
    /// Raw deflate (method 8).
    Deflated,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (name ends in `/`).
    Directory,
}

/// One entry of a package, checked: its name passed the policy, its local header
/// agrees with the central directory, and its bytes lie inside the archive without
/// overlapping another entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path, without the trailing `/` of a directory entry.
    pub path: PackagePath,
    /// File or directory.
    pub kind: EntryKind,
    /// Compression method.
    pub method: Method,
    /// CRC-32 of the content, as declared.
    pub crc32: u32,
    /// Compressed size in bytes, as declared.
    pub compressed_size: u64,
    /// Size in bytes, as declared. Inflation is held to it.
    pub size: u64,
    /// Whether the entry's Unix mode marks the file executable, as the archive says.
    /// Informational only (lint): extraction takes each file's mode from the signed
    /// manifest ([`trellis_schema::manifest::FileEntry::executable`]), never from here.
    pub executable: bool,
    /// Byte range of the compressed data in the archive.
    pub(crate) data: Range<u64>,
    /// Byte range of the whole entry: local header, data and data descriptor.
    extent: Range<u64>,
}

impl Entry {
    /// The entry's path as a string.
    pub fn name(&self) -> &str {
        self.path.as_str()
    }

    /// An entry over `data` as if a central directory declared it, bypassing every
    /// structural check: for testing the streaming limits on their own.
    #[cfg(test)]
    pub(crate) fn unchecked(name: &str, method: Method, data: Range<u64>, size: u64, crc32: u32) -> Self {
        Self {
            path: PackagePath::new(name).expect("a valid test name"),
            kind: EntryKind::File,
            method,
            crc32,
            compressed_size: data.end - data.start,
            size,
            executable: false,
            extent: data.clone(),
            data,
        }
    }
}

/// The end of the archive, kept by the digest pass: from [`tail_start`] to the end.
#[derive(Debug)]
pub(crate) struct Tail {
    /// Offset of `bytes[0]` in the archive.
    pub start: u64,
    /// The bytes, as hashed.
    pub bytes: Vec<u8>,
}

impl Tail {
    fn u16_at(&self, at: u64) -> Option<u16> {
        u16_at(&self.bytes, usize::try_from(at.checked_sub(self.start)?).ok()?)
    }

    fn u32_at(&self, at: u64) -> Option<u32> {
        u32_at(&self.bytes, usize::try_from(at.checked_sub(self.start)?).ok()?)
    }
}

/// Largest central directory kept in memory.
fn max_directory_size(limits: &Limits) -> u64 {
    (limits.max_entries as u64).saturating_mul(MAX_DIRECTORY_RECORD)
}

/// Where the digest pass should start keeping bytes: the lowest of the end record's
/// search window and the directory start the current end record declares, but never
/// more than the directory limit before the window. Reads only the search window;
/// nothing read here is trusted (the end record is found again in the kept tail).
pub(crate) fn tail_start(source: &Source, limits: &Limits) -> Result<u64, PackageError> {
    let len = source.len();
    let window = len.saturating_sub((EOCD_LEN + MAX_COMMENT_LEN) as u64);
    let mut bytes = vec![0u8; usize::try_from(len - window).unwrap_or(0)];
    source.read_exact_at(window, &mut bytes)?;
    let tail = Tail { start: window, bytes };
    let Some(pos) = last_end_signature(&tail, len) else {
        return Ok(window);
    };
    let size = u64::from(tail.u32_at(pos + 12).unwrap_or(0));
    let offset = u64::from(tail.u32_at(pos + 16).unwrap_or(u32::MAX));
    let declared = offset.min(pos.saturating_sub(size)).min(pos.saturating_sub(20));
    Ok(declared.max(window.saturating_sub(max_directory_size(limits))).min(window))
}

/// The last end-record signature in the search window.
fn last_end_signature(tail: &Tail, len: u64) -> Option<u64> {
    let lowest = len.saturating_sub((EOCD_LEN + MAX_COMMENT_LEN) as u64).max(tail.start);
    (lowest..len.saturating_sub(3)).rev().find(|&p| tail.u32_at(p) == Some(EOCD_SIGNATURE))
}

/// Reads and checks the archive structure; returns the entries in central-directory
/// order. The end record and central directory come from `tail`, the local headers
/// from `source`.
pub(crate) fn read_entries(source: &Source, tail: &Tail, limits: &Limits) -> Result<Vec<Entry>, PackageError> {
    let end = find_end_record(source, tail, limits)?;
    let count = u64::from(end.entries);
    if count > limits.max_entries as u64 {
        return Err(PackageError::TooManyEntries { count, max: limits.max_entries });
    }
    let mut entries = Vec::with_capacity(end.entries.into());
    let mut names = NameSet::new();
    let mut declared_total = 0u64;
    // `find_end_record` checked that the directory lies inside the tail.
    let relative = |at: u64| usize::try_from(at - tail.start).unwrap_or(usize::MAX);
    let directory = &tail.bytes[..relative(end.directory.end).min(tail.bytes.len())];
    let mut pos = relative(end.directory.start);
    for _ in 0..end.entries {
        let (record, next) = read_central_record(directory, pos, tail.start)?;
        let entry = check_record(source, &record, limits)?;
        match entry.kind {
            EntryKind::File => names.insert_file(&entry.path),
            EntryKind::Directory => names.insert_dir(&entry.path),
        }
        .map_err(|source| PackageError::NameCollision { source })?;
        declared_total = declared_total.saturating_add(entry.size);
        if declared_total > limits.max_total_size {
            return Err(PackageError::TotalSizeTooLarge {
                name: entry.name().to_owned(),
                total: declared_total,
                max: limits.max_total_size,
            });
        }
        entries.push(entry);
        pos = next;
    }
    if pos != directory.len() {
        return Err(PackageError::BadCentralDirectory {
            offset: tail.start + pos as u64,
            reason: "the central directory is larger than its records",
        });
    }
    check_layout(&entries, end.directory.start)?;
    Ok(entries)
}

struct EndRecord {
    entries: u16,
    directory: Range<u64>,
}

fn find_end_record(source: &Source, tail: &Tail, limits: &Limits) -> Result<EndRecord, PackageError> {
    let len = source.len();
    // The last signature in the file wins, as in every reader; it must end the file exactly.
    let Some(pos) = last_end_signature(tail, len) else {
        let lowest = len.saturating_sub((EOCD_LEN + MAX_COMMENT_LEN) as u64);
        return Err(PackageError::NoEndOfCentralDirectory { searched: len - lowest });
    };
    if len - pos < EOCD_LEN as u64 {
        return Err(truncated("end-of-central-directory record", pos, EOCD_LEN as u64, len));
    }
    let field = |at: u64| tail.u16_at(pos + at).unwrap_or(0);
    let record_end = pos + EOCD_LEN as u64 + u64::from(field(20));
    if record_end > len {
        return Err(truncated("end-of-central-directory comment", pos, record_end - pos, len));
    }
    if record_end < len {
        return Err(PackageError::TrailingData { bytes: len - record_end });
    }
    let (disk, directory_disk, on_disk, entries) = (field(4), field(6), field(8), field(10));
    let size = tail.u32_at(pos + 12).unwrap_or(0);
    let offset = tail.u32_at(pos + 16).unwrap_or(0);
    if entries == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        return Err(PackageError::Unsupported { feature: "ZIP64", entry: None });
    }
    if disk != 0 || directory_disk != 0 || on_disk != entries {
        return Err(PackageError::Unsupported { feature: "a multi-disk (spanned) archive", entry: None });
    }
    let (size, offset) = (u64::from(size), u64::from(offset));
    let directory_end = offset + size;
    if directory_end > pos {
        return Err(bad_directory(pos, "the central directory would overlap its end record"));
    }
    if directory_end < pos {
        if pos >= 20 && tail.u32_at(pos - 20) == Some(ZIP64_LOCATOR_SIGNATURE) {
            return Err(PackageError::Unsupported { feature: "ZIP64", entry: None });
        }
        // `cat stub.bin package.zip`: every offset is off by the stub's length.
        if let Some(real_start) = pos.checked_sub(size)
            && tail.u32_at(real_start) == Some(CENTRAL_SIGNATURE)
        {
            return Err(PackageError::PrependedData { bytes: real_start - offset });
        }
        return Err(PackageError::UnaccountedBytes { offset: directory_end, len: pos - directory_end });
    }
    let max = max_directory_size(limits);
    if size > max {
        return Err(PackageError::DirectoryTooLarge { size, max });
    }
    if offset < tail.start {
        // The end record read before the digest pass pointed elsewhere.
        return Err(match source {
            Source::File { path, .. } => {
                PackageError::Changed { path: path.clone(), reason: "its central directory moved while it was hashed" }
            }
            Source::Memory(_) => bad_directory(offset, "the central directory lies outside the archive's tail"),
        });
    }
    Ok(EndRecord { entries, directory: offset..directory_end })
}

/// The raw fields of one central-directory record.
struct CentralRecord<'a> {
    made_by: u16,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u32,
    size: u32,
    name: &'a [u8],
    extra: &'a [u8],
    disk: u16,
    external: u32,
    local_offset: u32,
}

/// Reads the record at `pos` of `directory` (which starts at offset `base` of the
/// archive); returns it and the position of the next.
fn read_central_record(directory: &[u8], pos: usize, base: u64) -> Result<(CentralRecord<'_>, usize), PackageError> {
    let limit = directory.len();
    let bad_directory = |pos: usize, reason| bad_directory(base + pos as u64, reason);
    if limit - pos < CENTRAL_LEN {
        return Err(bad_directory(pos, "a central-directory record runs past the end of the directory"));
    }
    if u32_at(directory, pos) != Some(CENTRAL_SIGNATURE) {
        return Err(bad_directory(pos, "missing central-directory record signature"));
    }
    let h = |at: usize| u16_at(directory, pos + at).unwrap_or(0);
    let w = |at: usize| u32_at(directory, pos + at).unwrap_or(0);
    let (name_len, extra_len, comment_len) = (usize::from(h(28)), usize::from(h(30)), usize::from(h(32)));
    let name_start = pos + CENTRAL_LEN;
    let next = name_start + name_len + extra_len + comment_len;
    if next > limit {
        return Err(bad_directory(pos, "a central-directory record's name or extra field runs past the directory"));
    }
    let record = CentralRecord {
        made_by: h(4),
        flags: h(8),
        method: h(10),
        crc32: w(16),
        compressed_size: w(20),
        size: w(24),
        name: &directory[name_start..name_start + name_len],
        extra: &directory[name_start + name_len..name_start + name_len + extra_len],
        disk: h(34),
        external: w(38),
        local_offset: w(42),
    };
    Ok((record, next))
}

fn check_record(source: &Source, record: &CentralRecord<'_>, limits: &Limits) -> Result<Entry, PackageError> {
    let raw_name = decode_name(record.name, record.flags)?;
    let name = || raw_name.to_owned();
    if record.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 {
        return Err(PackageError::Unsupported { feature: "encryption", entry: Some(name()) });
    }
    if record.disk != 0 {
        return Err(PackageError::Unsupported { feature: "a multi-disk (spanned) archive", entry: Some(name()) });
    }
    check_extra(record.extra, &raw_name)?;
    let (kind, path_str) = match raw_name.strip_suffix('/') {
        Some(dir) => (EntryKind::Directory, dir),
        None => (EntryKind::File, raw_name.as_str()),
    };
    let path = PackagePath::new(path_str).map_err(|source| PackageError::InvalidName { source })?;
    let executable = check_mode(record, kind, &raw_name)?;
    let method = match record.method {
        0 => Method::Stored,
        8 => Method::Deflated,
        method => return Err(PackageError::UnsupportedCompression { name: name(), method }),
    };
    let (size, compressed_size) = (u64::from(record.size), u64::from(record.compressed_size));
    if kind == EntryKind::Directory && size != 0 {
        return Err(PackageError::DirectoryWithData { name: name(), size });
    }
    if method == Method::Stored && size != compressed_size {
        return Err(PackageError::CorruptEntry {
            name: name(),
            reason: format!("stored entry declares {size} bytes but {compressed_size} compressed bytes"),
        });
    }
    if size > limits.max_file_size {
        return Err(PackageError::FileTooLarge { name: name(), size, max: limits.max_file_size });
    }
    if exceeds_ratio(size, compressed_size, limits) {
        return Err(PackageError::CompressionRatioTooHigh {
            name: name(),
            size,
            compressed: compressed_size,
            max_ratio: limits.max_compression_ratio,
        });
    }
    let (data, extent) = check_local_header(source, record, &raw_name)?;
    Ok(Entry { path, kind, method, crc32: record.crc32, compressed_size, size, executable, data, extent })
}

/// Whether `size` inflated bytes from `compressed` bytes break the ratio limit.
pub(crate) fn exceeds_ratio(size: u64, compressed: u64, limits: &Limits) -> bool {
    size > limits.ratio_check_floor && size > compressed.saturating_mul(limits.max_compression_ratio)
}

fn decode_name(raw: &[u8], flags: u16) -> Result<String, PackageError> {
    let lossy = || PackageError::NameNotUtf8 { name: String::from_utf8_lossy(raw).into_owned() };
    let name = std::str::from_utf8(raw).map_err(|_| lossy())?;
    if !name.is_ascii() && flags & FLAG_UTF8 == 0 {
        return Err(lossy());
    }
    Ok(name.to_owned())
}

fn check_extra(mut extra: &[u8], name: &str) -> Result<(), PackageError> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let unsupported = |feature| PackageError::Unsupported { feature, entry: Some(name.to_owned()) };
        match id {
            EXTRA_ZIP64 => return Err(unsupported("ZIP64")),
            EXTRA_UNICODE_PATH => return Err(unsupported("an Info-ZIP Unicode Path field (a second name)")),
            _ => {}
        }
        extra = extra.get(4 + len..).unwrap_or_default();
    }
    Ok(())
}

/// Refuses symlinks and special files; returns whether the entry is executable.
fn check_mode(record: &CentralRecord<'_>, kind: EntryKind, name: &str) -> Result<bool, PackageError> {
    let host = record.made_by >> 8;
    let dos = record.external & 0xFFFF;
    if dos & DOS_REPARSE_POINT != 0 {
        return Err(PackageError::Symlink { name: name.to_owned() });
    }
    if kind == EntryKind::File && dos & DOS_DIRECTORY != 0 {
        return Err(PackageError::SpecialFile { name: name.to_owned(), mode: dos });
    }
    // Unix (3) and OS X (19) keep the st_mode in the high half.
    if host != 3 && host != 19 {
        return Ok(false);
    }
    let mode = record.external >> 16;
    let file_type = mode & S_IFMT;
    match (file_type, kind) {
        (S_IFLNK, _) => Err(PackageError::Symlink { name: name.to_owned() }),
        (0 | S_IFREG, EntryKind::File) => Ok(mode & 0o111 != 0),
        (0 | S_IFDIR, EntryKind::Directory) => Ok(false),
        _ => Err(PackageError::SpecialFile { name: name.to_owned(), mode }),
    }
}

/// Checks the local header against the central record; returns the data range and
/// the entry's whole extent.
fn check_local_header(
    source: &Source,
    record: &CentralRecord<'_>,
    name: &str,
) -> Result<(Range<u64>, Range<u64>), PackageError> {
    let len = source.len();
    let start = u64::from(record.local_offset);
    if len.saturating_sub(start) < LOCAL_LEN as u64 {
        return Err(truncated("local file header", start, LOCAL_LEN as u64, len));
    }
    let mut header = [0u8; LOCAL_LEN];
    source.read_exact_at(start, &mut header)?;
    if u32_at(&header, 0) != Some(LOCAL_SIGNATURE) {
        return Err(PackageError::MissingLocalHeader { name: name.to_owned(), offset: start });
    }
    let h = |at: usize| u16_at(&header, at).unwrap_or(0);
    let w = |at: usize| u32_at(&header, at).unwrap_or(0);
    let (name_len, extra_len) = (usize::from(h(26)), usize::from(h(28)));
    let data_start = start + (LOCAL_LEN + name_len + extra_len) as u64;
    let data_end = data_start + u64::from(record.compressed_size);
    if data_end > len {
        return Err(truncated("entry", start, data_end - start, len));
    }
    let mut variable = vec![0u8; name_len + extra_len];
    source.read_exact_at(start + LOCAL_LEN as u64, &mut variable)?;
    let (local_name, local_extra) = variable.split_at(name_len);
    let mismatch = |field: &'static str, central: String, local: String| PackageError::LocalHeaderMismatch {
        name: name.to_owned(),
        field,
        central,
        local,
    };
    if local_name != record.name {
        return Err(mismatch("name", format!("{name:?}"), format!("{:?}", String::from_utf8_lossy(local_name))));
    }
    check_extra(local_extra, name)?;
    let (flags, method) = (h(6), h(8));
    if flags != record.flags {
        return Err(mismatch("flags", format!("{:#06x}", record.flags), format!("{flags:#06x}")));
    }
    if method != record.method {
        return Err(mismatch("compression method", record.method.to_string(), method.to_string()));
    }
    let local = [
        ("CRC-32", w(14), record.crc32),
        ("compressed size", w(18), record.compressed_size),
        ("size", w(22), record.size),
    ];
    let mut end = data_end;
    if flags & FLAG_DATA_DESCRIPTOR == 0 {
        for (field, local, central) in local {
            if local != central {
                return Err(mismatch(field, central.to_string(), local.to_string()));
            }
        }
    } else {
        // Streamed entry: the local header may hold zeros; the descriptor after the
        // data holds the real values, which must agree with the central directory.
        for (field, local, central) in local {
            if local != 0 && local != central {
                return Err(mismatch(field, central.to_string(), local.to_string()));
            }
        }
        let mut descriptor = [0u8; 16];
        let available = usize::try_from(len - data_end).unwrap_or(usize::MAX).min(descriptor.len());
        source.read_exact_at(data_end, &mut descriptor[..available])?;
        let descriptor = &descriptor[..available];
        let fields_at = if u32_at(descriptor, 0) == Some(DESCRIPTOR_SIGNATURE) { 4 } else { 0 };
        if available < fields_at + 12 {
            return Err(truncated("data descriptor", data_end, fields_at as u64 + 12, len));
        }
        let described = [
            ("descriptor CRC-32", u32_at(descriptor, fields_at).unwrap_or(0), record.crc32),
            ("descriptor compressed size", u32_at(descriptor, fields_at + 4).unwrap_or(0), record.compressed_size),
            ("descriptor size", u32_at(descriptor, fields_at + 8).unwrap_or(0), record.size),
        ];
        for (field, local, central) in described {
            if local != central {
                return Err(mismatch(field, central.to_string(), local.to_string()));
            }
        }
        end = data_end + fields_at as u64 + 12;
    }
    Ok((data_start..data_end, start..end))
}

/// Every byte before the central directory belongs to exactly one entry, in order.
fn check_layout(entries: &[Entry], directory_start: u64) -> Result<(), PackageError> {
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_key(|e| (e.extent.start, e.extent.end));
    let mut expected_start = 0u64;
    let mut previous: Option<&Entry> = None;
    for entry in order {
        if entry.extent.start > expected_start {
            return Err(match previous {
                None => PackageError::PrependedData { bytes: entry.extent.start },
                Some(_) => {
                    PackageError::UnaccountedBytes { offset: expected_start, len: entry.extent.start - expected_start }
                }
            });
        }
        if let Some(previous) = previous
            && entry.extent.start < expected_start
        {
            return Err(PackageError::OverlappingEntries {
                first: previous.name().to_owned(),
                second: entry.name().to_owned(),
            });
        }
        expected_start = entry.extent.end;
        previous = Some(entry);
    }
    match (previous, expected_start.cmp(&directory_start)) {
        (_, std::cmp::Ordering::Equal) => Ok(()),
        (None, _) => Err(PackageError::PrependedData { bytes: directory_start }),
        (Some(_), std::cmp::Ordering::Less) => {
            Err(PackageError::UnaccountedBytes { offset: expected_start, len: directory_start - expected_start })
        }
        (Some(last), std::cmp::Ordering::Greater) => Err(PackageError::OverlappingEntries {
            first: last.name().to_owned(),
            second: "(central directory)".to_owned(),
        }),
    }
}

fn truncated(record: &'static str, offset: u64, needed: u64, len: u64) -> PackageError {
    PackageError::Truncated { record, offset, needed, available: len.saturating_sub(offset) }
}

fn bad_directory(offset: u64, reason: &'static str) -> PackageError {
    PackageError::BadCentralDirectory { offset, reason }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
