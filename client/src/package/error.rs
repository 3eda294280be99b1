//! Why a package was refused: one variant per refusal, each carrying the facts.

use std::io;
use std::path::PathBuf;

use trellis_schema::Sha256;
use trellis_schema::path::NameError;

use crate::fs::FsError;

/// A package refused, or an I/O failure while reading or extracting one.
///
/// Every refusal leaves the destination untouched and no staging directory behind.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The package file could not be read.
    #[error("reading package {}: {source}", path.display())]
    Read {
        /// The package file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The package file changed while it was being read: another process writes to it.
    #[error("package {} changed while it was being read: {reason}; is another process writing to it?", path.display())]
    Changed {
        /// The package file.
        path: PathBuf,
        /// What changed.
        reason: &'static str,
    },
    /// Staging or moving the extracted files failed.
    #[error(transparent)]
    Fs(#[from] FsError),

    // ---- the blob ----
    /// Larger than [`Limits::max_package_size`](super::Limits::max_package_size).
    #[error("package is {size} bytes; at most {max} are accepted")]
    PackageTooLarge {
        /// Actual size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The blob's size differs from the signed size.
    #[error(
        "package is {actual} bytes but the release manifest says {expected}; the download is corrupt or was tampered with"
    )]
    PackageSizeMismatch {
        /// Signed size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The blob's SHA-256 differs from the signed one.
    #[error(
        "package sha256 is {actual} but the release manifest says {expected}; the download is corrupt or was tampered with"
    )]
    PackageHashMismatch {
        /// Signed digest.
        expected: Sha256,
        /// Actual digest.
        actual: Sha256,
    },

    // ---- archive structure ----
    /// No end-of-central-directory record: not a ZIP archive, or cut short.
    #[error(
        "no ZIP end-of-central-directory record in the last {searched} bytes: the package is truncated or not a ZIP archive"
    )]
    NoEndOfCentralDirectory {
        /// How many trailing bytes were searched.
        searched: u64,
    },
    /// A record runs past the end of the archive.
    #[error("archive is truncated: the {record} at offset {offset} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Which record.
        record: &'static str,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the archive from `offset`.
        available: u64,
    },
    /// Bytes after the end-of-central-directory record.
    #[error("{bytes} bytes of unknown data follow the end of the ZIP archive")]
    TrailingData {
        /// How many.
        bytes: u64,
    },
    /// Bytes before the first local header (a prepended stub or junk).
    #[error("{bytes} bytes of unknown data precede the first ZIP entry")]
    PrependedData {
        /// How many.
        bytes: u64,
    },
    /// Bytes between entries, or between the last entry and the central directory,
    /// that no entry accounts for.
    #[error("{len} bytes at offset {offset} belong to no entry")]
    UnaccountedBytes {
        /// Where they start.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// The central directory or its end record is malformed.
    #[error("malformed ZIP central directory at offset {offset}: {reason}")]
    BadCentralDirectory {
        /// Offset of the offending record.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A ZIP feature packages never use (ZIP64, encryption, spanning, name overrides).
    #[error("{feature} is not supported in packages{}", entry.as_ref().map(|e| format!(" (entry {e:?})")).unwrap_or_default())]
    Unsupported {
        /// The feature.
        feature: &'static str,
        /// The entry that uses it, if it is an entry's feature.
        entry: Option<String>,
    },
    /// A central directory larger than [`Limits::max_entries`](super::Limits::max_entries)
    /// records of [`MAX_DIRECTORY_RECORD`](super::archive::MAX_DIRECTORY_RECORD) bytes.
    #[error("the ZIP central directory is {size} bytes; at most {max} are accepted")]
    DirectoryTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// More entries than [`Limits::max_entries`](super::Limits::max_entries).
    #[error("archive has {count} entries; at most {max} are accepted")]
    TooManyEntries {
        /// Entries declared.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A name that is not UTF-8, or non-ASCII without the ZIP UTF-8 flag.
    #[error("entry name {name:?} is not flagged UTF-8 text; names must be UTF-8 with the ZIP language-encoding flag")]
    NameNotUtf8 {
        /// The name, lossily decoded.
        name: String,
    },
    /// A name that breaks the portable name policy.
    #[error("entry name refused: {source}")]
    InvalidName {
        /// The rule broken.
        #[source]
        source: NameError,
    },
    /// Two names that collide (duplicate, differing only in case, file vs directory).
    #[error("entry names collide: {source}")]
    NameCollision {
        /// The collision.
        #[source]
        source: NameError,
    },
    /// A local header is missing where the central directory points.
    #[error("entry {name:?}: no local file header at offset {offset}")]
    MissingLocalHeader {
        /// The entry.
        name: String,
        /// Where the central directory points.
        offset: u64,
    },
    /// A local header disagrees with its central-directory record.
    #[error("entry {name:?}: local header {field} is {local} but the central directory says {central}")]
    LocalHeaderMismatch {
        /// The entry (central-directory name).
        name: String,
        /// Which field.
        field: &'static str,
        /// Central-directory value.
        central: String,
        /// Local-header value.
        local: String,
    },
    /// Two entries (or an entry and the central directory) share bytes.
    #[error("entries {first:?} and {second:?} overlap in the archive")]
    OverlappingEntries {
        /// The entry that starts first.
        first: String,
        /// The entry that starts inside it.
        second: String,
    },
    /// A symbolic link.
    #[error("entry {name:?} is a symbolic link; packages contain regular files and directories only")]
    Symlink {
        /// The entry.
        name: String,
    },
    /// A device, FIFO, socket, or an entry whose attributes contradict its name.
    #[error("entry {name:?} has file mode {mode:o}; packages contain regular files and directories only")]
    SpecialFile {
        /// The entry.
        name: String,
        /// The Unix mode (or DOS attributes) found.
        mode: u32,
    },
    /// A directory entry that carries data.
    #[error("directory entry {name:?} declares {size} bytes of content")]
    DirectoryWithData {
        /// The entry.
        name: String,
        /// Declared size.
        size: u64,
    },
    /// A compression method other than stored (0) and deflate (8).
    #[error("entry {name:?} uses compression method {method}; packages use stored (0) or deflate (8)")]
    UnsupportedCompression {
        /// The entry.
        name: String,
        /// The method number.
        method: u16,
    },

    // ---- limits and content ----
    /// A file larger than [`Limits::max_file_size`](super::Limits::max_file_size).
    #[error("entry {name:?} is {size} bytes; at most {max} are accepted per file")]
    FileTooLarge {
        /// The entry.
        name: String,
        /// Its (declared or inflated) size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// All files together larger than [`Limits::max_total_size`](super::Limits::max_total_size).
    #[error("package unpacks to more than {max} bytes (reached {total} at entry {name:?})")]
    TotalSizeTooLarge {
        /// The entry at which the limit was passed.
        name: String,
        /// Bytes reached.
        total: u64,
        /// The limit.
        max: u64,
    },
    /// An entry that inflates more than [`Limits::max_compression_ratio`](super::Limits::max_compression_ratio) times.
    #[error("entry {name:?} inflates {size} bytes from {compressed}, more than {max_ratio}:1")]
    CompressionRatioTooHigh {
        /// The entry.
        name: String,
        /// Inflated bytes.
        size: u64,
        /// Compressed bytes.
        compressed: u64,
        /// The limit.
        max_ratio: u64,
    },
    /// An entry that inflates past the size its headers declare.
    #[error("entry {name:?} inflates past its declared size of {declared} bytes")]
    InflatesPastDeclaredSize {
        /// The entry.
        name: String,
        /// Declared size.
        declared: u64,
    },
    /// An entry that inflates to fewer bytes than declared.
    #[error("entry {name:?} inflates to {actual} bytes but declares {declared}")]
    SizeMismatch {
        /// The entry.
        name: String,
        /// Declared size.
        declared: u64,
        /// Inflated size.
        actual: u64,
    },
    /// Compressed data that does not decode.
    #[error("entry {name:?} has corrupt data: {reason}")]
    CorruptEntry {
        /// The entry.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// CRC-32 of the inflated bytes differs from the header's.
    #[error("entry {name:?} has CRC-32 {actual:08x} but its header says {expected:08x}")]
    BadCrc {
        /// The entry.
        name: String,
        /// Header CRC.
        expected: u32,
        /// Computed CRC.
        actual: u32,
    },

    // ---- manifests ----
    /// No `trellis-manifest.json` in the package.
    #[error("the package has no trellis-manifest.json; build packages with `trellis-index pack`")]
    MissingContentManifest,
    /// `trellis-manifest.json` does not parse.
    #[error("trellis-manifest.json is invalid: {reason}")]
    InvalidContentManifest {
        /// The parse error.
        reason: String,
    },
    /// `trellis-manifest.json` says something else than the signed release manifest.
    #[error("trellis-manifest.json disagrees with the signed release manifest: {reason}")]
    ContentManifestMismatch {
        /// What differs.
        reason: String,
    },
    /// A manifest lists a path that breaks the name policy, or twice.
    #[error("manifest lists an invalid path: {source}")]
    InvalidManifestPath {
        /// The rule broken.
        #[source]
        source: NameError,
    },
    /// A file in the archive that the manifest does not list.
    #[error("entry {name:?} is not listed in the manifest")]
    UnexpectedFile {
        /// The entry.
        name: String,
    },
    /// A file the manifest lists that the archive does not contain.
    #[error("the manifest lists {name:?} but the archive does not contain it")]
    MissingFile {
        /// The path.
        name: String,
    },
    /// A file whose size differs from the manifest's.
    #[error("entry {name:?} is {actual} bytes but the manifest says {expected}")]
    FileSizeMismatch {
        /// The entry.
        name: String,
        /// Manifest size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A file whose SHA-256 differs from the manifest's.
    #[error("entry {name:?} has sha256 {actual} but the manifest says {expected}")]
    FileHashMismatch {
        /// The entry.
        name: String,
        /// Manifest digest.
        expected: Sha256,
        /// Actual digest.
        actual: Sha256,
    },

    // ---- destination ----
    /// The destination already exists.
    #[error("destination {} already exists; extraction never writes into an existing directory", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// The destination has no parent directory to stage in.
    #[error("destination {} has no parent directory", path.display())]
    NoParentDirectory {
        /// The destination.
        path: PathBuf,
    },
}
