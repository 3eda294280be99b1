//! Delta packages: the file-level difference between two releases of one plugin.
//!
//! A delta turns the *installed tree* of release `from` into the tree of release `to`.
//! It is not a diff of ZIP bytes: clients do not keep old packages, and deflate output
//! is not stable enough to rebuild a package bit for bit. Every file of the new
//! release (the signed [`ReleaseManifest`] list, plus the content manifest
//! `trellis-manifest.json`) gets one operation:
//!
//! - `copy`: the same bytes exist in the old release, at `source`;
//! - `patch`: a bsdiff patch (raw-deflate compressed) against the old file `source`;
//! - `literal`: the new bytes, raw-deflate compressed.
//!
//! # Format (version 2)
//!
//! ```text
//! offset  size  field
//! 0       8     magic  "TRLDELTA"
//! 8       4     format version, u32 little-endian (2)
//! 12      4     header length H, u32 little-endian (at most DeltaLimits::max_header_size)
//! 16      H     header: canonical JSON of DeltaHeader
//! 16+H    ...   data: the byte ranges the operations name, in operation order,
//!               back to back, nothing before, between or after them
//! ```
//!
//! The patch format is bsdiff's as the `bsdiff` crate writes it, without its own
//! compression: repeated control triples (`mix`, `copy`: u64 LE; `seek`: i64
//! sign-magnitude LE), each followed by `mix` bytes added bytewise to the old file at
//! the current position and `copy` new bytes. Every control must produce at least one
//! byte (a producer folds empty ones into the next seek).
//!
//! Version 2 dropped the per-file `executable` flag of version 1: a file's mode is
//! part of the developer-signed manifest ([`crate::manifest::FileEntry::executable`]),
//! which is the only place the applier takes it from. A version 1 delta is refused
//! (the client then downloads the package).
//!
//! # Trust
//!
//! A delta is a blob whose hash and length the release's entry in its index doc lists
//! (the index doc being a TUF target signed by a hash bin), and nothing it produces is
//! trusted on its own: the client checks every file it writes
//! against the size and SHA-256 in the developer-signed release manifest, and the
//! content manifest against that manifest's file list. A delta can only save bytes; it
//! can never make a client install something the developer did not sign.
//!
//! This module owns the document and its framing ([`DeltaBlob::parse`],
//! [`encode`]), with [`DeltaLimits`]. Making deltas is the builder's job
//! (`trellis-index`), applying them the client's (`trellis_client::delta`).

use serde::{Deserialize, Serialize};

use crate::canonical::{self, CanonicalError};
use crate::digest::Sha256;
use crate::id::PluginId;
use crate::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};
use crate::path::{NameError, NameSet, PackagePath};

/// First bytes of every delta.
pub const MAGIC: [u8; 8] = *b"TRLDELTA";
/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes before the header: magic, version, header length.
pub const PREFIX_LEN: usize = 16;

/// How the data of `patch` and `literal` operations is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Raw deflate (RFC 1951), one stream per operation.
    Deflate,
}

/// A byte range of the data section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DataRange {
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// How one file of the new release is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeltaOp {
    /// The old release has the file's bytes at `source`.
    Copy {
        /// Path of the old file.
        source: String,
    },
    /// A bsdiff patch against the old file at `source`.
    Patch {
        /// Path of the old file.
        source: String,
        /// The compressed patch.
        data: DataRange,
    },
    /// The file's bytes, compressed.
    Literal {
        /// The compressed bytes.
        data: DataRange,
    },
}

impl DeltaOp {
    /// The old file this operation reads, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            Self::Copy { source } | Self::Patch { source, .. } => Some(source),
            Self::Literal { .. } => None,
        }
    }

    /// The data range this operation reads, if any.
    pub fn data(&self) -> Option<DataRange> {
        match self {
            Self::Patch { data, .. } | Self::Literal { data } => Some(*data),
            Self::Copy { .. } => None,
        }
    }

    /// `copy`, `patch` or `literal`, for messages and statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Copy { .. } => "copy",
            Self::Patch { .. } => "patch",
            Self::Literal { .. } => "literal",
        }
    }
}

/// One file of the new release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct DeltaFile {
    /// Path in the new release.
    pub path: String,
    /// How it is made. (Its mode is not here: the signed manifest gives it.)
    #[serde(flatten)]
    pub op: DeltaOp,
}

/// The header of a delta: which releases it joins and one operation per file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeltaHeader {
    /// The plugin.
    pub plugin_id: PluginId,
    /// The release the delta applies to.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub from: semver::Version,
    /// The release it produces.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub to: semver::Version,
    /// SHA-256 of the signed release manifest of `from` (its envelope's payload).
    pub from_manifest_sha256: Sha256,
    /// SHA-256 of the signed release manifest of `to`.
    pub to_manifest_sha256: Sha256,
    /// Compression of the data ranges.
    pub compression: Compression,
    /// One entry per file of `to`, sorted by path: the signed files and
    /// `trellis-manifest.json`.
    pub files: Vec<DeltaFile>,
}

/// Bounds on what a delta may ask of its reader. Output sizes need no limit of their
/// own: every file a delta produces must have the size the signed manifest gives.
///
/// | limit | default |
/// |---|---|
/// | [`max_header_size`](Self::max_header_size) | 8 MiB |
/// | [`max_files`](Self::max_files) | 10 000 (as many as a package may hold) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeltaLimits {
    /// Largest header, in bytes.
    pub max_header_size: u32,
    /// Most operations (files) in one delta.
    pub max_files: usize,
}

impl Default for DeltaLimits {
    fn default() -> Self {
        Self { max_header_size: 8 << 20, max_files: 10_000 }
    }
}

/// Why bytes are not a well-formed delta.
#[derive(Debug, thiserror::Error)]
pub enum DeltaFormatError {
    /// Shorter than its fixed prefix or its declared header.
    #[error("delta is truncated: {needed} bytes needed, {actual} present")]
    Truncated {
        /// Bytes the prefix or header needs.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Does not start with [`MAGIC`].
    #[error("not a Trellis delta (bad magic)")]
    BadMagic,
    /// A format version this reader does not know.
    #[error("delta format version {found} is not supported (this client reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The header is larger than [`DeltaLimits::max_header_size`].
    #[error("delta header of {size} bytes is over the {max}-byte limit")]
    HeaderTooLarge {
        /// Declared size.
        size: u32,
        /// Limit.
        max: u32,
    },
    /// The header is not a delta header.
    #[error("delta header does not parse: {reason}")]
    Header {
        /// Parser message.
        reason: String,
    },
    /// More operations than [`DeltaLimits::max_files`].
    #[error("delta has {count} files, over the limit of {max}")]
    TooManyFiles {
        /// Files in the header.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A path breaks the portable name policy or repeats.
    #[error("delta path {path:?}: {source}")]
    BadPath {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: NameError,
    },
    /// The data ranges do not tile the data section exactly.
    #[error("delta data of {path}: {reason}")]
    BadRange {
        /// The file whose range is wrong.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed delta: its header and data section, borrowed from the blob.
#[derive(Debug)]
pub struct DeltaBlob<'a> {
    /// The header.
    pub header: DeltaHeader,
    data: &'a [u8],
}

impl<'a> DeltaBlob<'a> {
    /// Parses and checks the framing of `bytes`: magic, version, header size and
    /// syntax, file count, every path (portable name policy, no duplicates or
    /// collisions), and data ranges that tile the data section in operation order.
    /// Whether the delta fits a release is the applier's question.
    pub fn parse(bytes: &'a [u8], limits: &DeltaLimits) -> Result<Self, DeltaFormatError> {
        let actual = bytes.len() as u64;
        if bytes.len() < PREFIX_LEN {
            return Err(DeltaFormatError::Truncated { needed: PREFIX_LEN as u64, actual });
        }
        if bytes[..8] != MAGIC {
            return Err(DeltaFormatError::BadMagic);
        }
        let found = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if found != FORMAT_VERSION {
            return Err(DeltaFormatError::UnsupportedVersion { found });
        }
        let header_len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if header_len > limits.max_header_size {
            return Err(DeltaFormatError::HeaderTooLarge { size: header_len, max: limits.max_header_size });
        }
        let header_end = PREFIX_LEN + header_len as usize;
        let Some(header_bytes) = bytes.get(PREFIX_LEN..header_end) else {
            return Err(DeltaFormatError::Truncated { needed: header_end as u64, actual });
        };
        let header: DeltaHeader =
            crate::json::from_slice(header_bytes).map_err(|e| DeltaFormatError::Header { reason: e.to_string() })?;
        if header.files.len() > limits.max_files {
            return Err(DeltaFormatError::TooManyFiles { count: header.files.len(), max: limits.max_files });
        }
        let data = &bytes[header_end..];
        check_files(&header, data.len() as u64)?;
        Ok(Self { header, data })
    }

    /// The bytes of `range` (checked to be inside the data section by [`parse`](Self::parse)).
    pub fn data(&self, range: DataRange) -> &'a [u8] {
        let start = usize::try_from(range.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(range.length).unwrap_or(usize::MAX));
        self.data.get(start..end).unwrap_or_default()
    }

    /// Length of the data section.
    pub fn data_len(&self) -> u64 {
        self.data.len() as u64
    }
}

fn check_files(header: &DeltaHeader, data_len: u64) -> Result<(), DeltaFormatError> {
    let mut names = NameSet::new();
    let mut next = 0u64;
    for file in &header.files {
        let bad_path = |path: &str, source| DeltaFormatError::BadPath { path: path.to_owned(), source };
        let path = PackagePath::new(&file.path).map_err(|e| bad_path(&file.path, e))?;
        names.insert_file(&path).map_err(|e| bad_path(&file.path, e))?;
        if let Some(source) = file.op.source() {
            PackagePath::new(source).map_err(|e| bad_path(source, e))?;
        }
        if let Some(range) = file.op.data() {
            let bad_range = |reason: String| DeltaFormatError::BadRange { path: file.path.clone(), reason };
            if range.offset != next {
                return Err(bad_range(format!("starts at {}, the previous range ends at {next}", range.offset)));
            }
            next = range.offset.checked_add(range.length).filter(|end| *end <= data_len).ok_or_else(|| {
                bad_range(format!("{} bytes at {} run past the data section ({data_len} bytes)", range.length, next))
            })?;
        }
    }
    if next != data_len {
        return Err(DeltaFormatError::BadRange {
            path: "(end)".into(),
            reason: format!("{} bytes after the last range", data_len - next),
        });
    }
    Ok(())
}

/// The bytes of a delta: prefix, canonical JSON of `header`, then `data` (which must
/// be the ranges the header names, back to back).
pub fn encode(header: &DeltaHeader, data: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let json = canonical::to_vec_of(header)?;
    let mut out = Vec::with_capacity(PREFIX_LEN + json.len() + data.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    Ok(out)
}

/// Whether the header's file set is exactly the release's: every signed file plus the
/// content manifest, nothing else. Returns the first path that is missing or extra.
pub fn file_set_mismatch(header: &DeltaHeader, release: &ReleaseManifest) -> Option<String> {
    let mut expected: std::collections::BTreeSet<&str> = release.files.iter().map(|f| f.path.as_str()).collect();
    expected.insert(CONTENT_MANIFEST_PATH);
    for file in &header.files {
        if !expected.remove(file.path.as_str()) {
            return Some(format!("{} is not a file of {}", file.path, release.release_name()));
        }
    }
    expected.into_iter().next().map(|missing| format!("{missing} of {} has no operation", release.release_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(files: Vec<DeltaFile>) -> DeltaHeader {
        DeltaHeader {
            plugin_id: "acme.clock".parse().unwrap(),
            from: semver::Version::new(1, 0, 0),
            to: semver::Version::new(1, 1, 0),
            from_manifest_sha256: Sha256::of(b"from"),
            to_manifest_sha256: Sha256::of(b"to"),
            compression: Compression::Deflate,
            files,
        }
    }

    fn literal(path: &str, offset: u64, length: u64) -> DeltaFile {
        DeltaFile { path: path.into(), op: DeltaOp::Literal { data: DataRange { offset, length } } }
    }

    fn copy(path: &str, source: &str) -> DeltaFile {
        DeltaFile { path: path.into(), op: DeltaOp::Copy { source: source.into() } }
    }

    #[test]
    fn encoded_delta_parses_back_to_the_same_header_and_data() {
        let h = header(vec![copy("LICENSE", "LICENSE"), literal("a.bin", 0, 3), literal("b.bin", 3, 2)]);
        let bytes = encode(&h, b"abcde").unwrap();
        let blob = DeltaBlob::parse(&bytes, &DeltaLimits::default()).unwrap();
        assert_eq!(blob.header, h);
        assert_eq!(blob.data(DataRange { offset: 3, length: 2 }), b"de");
        assert_eq!(blob.data_len(), 5);
        // The header is canonical JSON, so the same delta always has the same bytes.
        assert_eq!(encode(&blob.header, b"abcde").unwrap(), bytes);
    }

    #[test]
    fn refuses_truncated_input_at_every_length() {
        let bytes = encode(&header(vec![literal("a.bin", 0, 4)]), b"data").unwrap();
        for len in 0..bytes.len() {
            let error = DeltaBlob::parse(&bytes[..len], &DeltaLimits::default()).unwrap_err();
            assert!(
                matches!(error, DeltaFormatError::Truncated { .. } | DeltaFormatError::BadRange { .. }),
                "{len}: {error}"
            );
        }
    }

    #[test]
    fn refuses_bad_magic_version_and_oversized_header() {
        let mut bytes = encode(&header(vec![]), b"").unwrap();
        let limits = DeltaLimits::default();
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(matches!(DeltaBlob::parse(&wrong, &limits), Err(DeltaFormatError::BadMagic)));
        let mut wrong = bytes.clone();
        wrong[8] = 1;
        let error = DeltaBlob::parse(&wrong, &limits).unwrap_err();
        assert_eq!(error.to_string(), "delta format version 1 is not supported (this client reads version 2)");
        bytes[12..16].copy_from_slice(&(9u32 << 20).to_le_bytes());
        assert!(matches!(DeltaBlob::parse(&bytes, &limits), Err(DeltaFormatError::HeaderTooLarge { .. })));
    }

    #[test]
    fn refuses_more_files_than_the_limit() {
        let files = (0..5).map(|i| copy(&format!("f{i}"), "x")).collect();
        let bytes = encode(&header(files), b"").unwrap();
        let limits = DeltaLimits { max_files: 4, ..DeltaLimits::default() };
        let error = DeltaBlob::parse(&bytes, &limits).unwrap_err();
        assert!(matches!(error, DeltaFormatError::TooManyFiles { count: 5, max: 4 }), "{error}");
    }

    #[test]
    fn refuses_unsafe_or_colliding_paths() {
        for files in [
            vec![copy("../evil.dll", "LICENSE")],
            vec![copy("LICENSE", "/etc/passwd")],
            vec![copy("a.dll", "x"), copy("A.dll", "x")],
            vec![copy("a", "x"), copy("a", "x")],
        ] {
            let bytes = encode(&header(files.clone()), b"").unwrap();
            let error = DeltaBlob::parse(&bytes, &DeltaLimits::default()).unwrap_err();
            assert!(matches!(error, DeltaFormatError::BadPath { .. }), "{files:?}: {error}");
        }
    }

    #[test]
    fn refuses_ranges_that_overlap_leave_gaps_or_run_past_the_data() {
        for (files, data) in [
            (vec![literal("a", 0, 3), literal("b", 2, 2)], &b"abcd"[..]),
            (vec![literal("a", 0, 2), literal("b", 3, 1)], b"abcd"),
            (vec![literal("a", 0, 5)], b"abcd"),
            (vec![literal("a", 0, 3)], b"abcd"),
            (vec![literal("a", 0, u64::MAX)], b"abcd"),
        ] {
            let bytes = encode(&header(files.clone()), data).unwrap();
            let error = DeltaBlob::parse(&bytes, &DeltaLimits::default()).unwrap_err();
            assert!(matches!(error, DeltaFormatError::BadRange { .. }), "{files:?}: {error}");
        }
    }

    #[test]
    fn refuses_unknown_operations_and_fields() {
        let mut value = serde_json::to_value(header(vec![copy("a", "b")])).unwrap();
        value["files"][0]["op"] = "link".into();
        let json = serde_json::to_vec(&value).unwrap();
        let mut bytes = encode(&header(vec![]), b"").unwrap();
        bytes.truncate(PREFIX_LEN);
        bytes[12..16].copy_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        let error = DeltaBlob::parse(&bytes, &DeltaLimits::default()).unwrap_err();
        assert!(matches!(error, DeltaFormatError::Header { .. }), "{error}");
    }

    #[test]
    fn file_set_must_be_the_signed_files_and_the_content_manifest() {
        let entry = |path: &str| crate::manifest::FileEntry {
            path: path.into(),
            size: 1,
            sha256: Sha256::of(b"x"),
            executable: false,
        };
        let release = ReleaseManifest {
            format: crate::manifest::ManifestFormat::CURRENT,
            plugin_id: "acme.clock".parse().unwrap(),
            version: semver::Version::new(1, 1, 0),
            package: crate::manifest::PackageDigest { sha256: Sha256::of(b"p"), size: 1 },
            files: vec![entry("LICENSE"), entry("plugin.json")],
            permissions: vec![],
            host: serde_json::from_value(serde_json::json!({"id": "h", "api_version_requirement": "^1"})).unwrap(),
            platforms: vec![],
            channel: crate::plugin::Channel::Stable,
            dependencies: vec![],
        };
        let exact = header(vec![copy("LICENSE", "x"), copy("plugin.json", "x"), copy(CONTENT_MANIFEST_PATH, "x")]);
        assert_eq!(file_set_mismatch(&exact, &release), None);
        let missing = header(vec![copy("LICENSE", "x"), copy(CONTENT_MANIFEST_PATH, "x")]);
        assert_eq!(file_set_mismatch(&missing, &release).unwrap(), "plugin.json of acme.clock 1.1.0 has no operation");
        let extra = header(vec![copy("LICENSE", "x"), copy("plugin.json", "x"), copy("evil.dll", "x")]);
        assert_eq!(file_set_mismatch(&extra, &release).unwrap(), "evil.dll is not a file of acme.clock 1.1.0");
    }
}
