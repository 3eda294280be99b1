//! Opening, verifying and extracting packages: the only code in Trellis that reads a ZIP.
//!
//! Owns the whole path from package bytes to an installed directory:
//!
//! 1. **blob**: the package's size and SHA-256 are checked against the signed
//!    [`PackageDigest`] before a single ZIP structure is parsed ([`Package::open`]);
//!    the digest pass reads the file once in chunks and keeps only its tail (end
//!    record and central directory);
//! 2. **structure** ([`archive`]): a strict reader checks the end record, every
//!    central-directory record against its local header, the layout of the bytes
//!    (nothing prepended, between, overlapping or after), the portable name policy of
//!    [`trellis_schema::path`] and name collisions, refuses symlinks, special files,
//!    ZIP64, encryption and unknown compression, and holds declared sizes to
//!    [`Limits`];
//! 3. **manifest**: the entry set must equal the expected file list plus
//!    `trellis-manifest.json` — the *signed* [`ReleaseManifest`]'s list for installs,
//!    the package's own content manifest for `lint` ([`Package::open_unsigned`]);
//! 4. **content** (`inflate`): every entry is streamed with per-file, total and
//!    ratio limits counted on the bytes actually produced, its CRC-32 checked and its
//!    SHA-256 compared with the manifest;
//! 5. **placement** (`extract`): files are written into a staging directory next to
//!    the destination with the mode the manifest gives (never the ZIP's attributes),
//!    fsynced, and the staging directory is renamed into place. A refused package
//!    leaves nothing behind.
//!
//! # Memory
//!
//! A package opened from a file ([`Package::open`], [`Package::open_unsigned`]) is
//! never held in memory: `source` reads it with positional reads (no mmap), so
//! opening and extracting costs the central directory (at most
//! [`Limits::max_entries`] × [`archive::MAX_DIRECTORY_RECORD`] bytes), the entry list,
//! the manifests and two 256 KiB buffers, whatever the package's size.
//! [`Package::from_bytes`] runs the same parser over bytes already in memory.
//!
//! # Soundness: the file may change after it was hashed
//!
//! The digest pass and the reads after it are separate reads of a file another
//! process could rewrite in between. What is installed stays what was signed, because
//! nothing that decides what gets written comes from an unhashed byte unchecked:
//!
//! - the end record and the central directory (names, kinds, modes, sizes, CRCs, where
//!   each entry lies) are parsed from the copy the digest pass kept, that is from the
//!   hashed bytes; a directory that moved in between is [`PackageError::Changed`];
//! - local headers are re-read, but must agree with that directory field by field;
//! - every file's content, as written to the staging directory, is hashed while it is
//!   written and compared with the *signed* per-file SHA-256 and size of the release
//!   manifest (`check_against_manifest`) before anything is renamed into place;
//!   `trellis-manifest.json` is compared with the digest of the copy that was parsed
//!   and checked against the signed manifest when the package was opened;
//! - a file that shrank is [`PackageError::Changed`]; a refusal at any point leaves
//!   nothing behind.
//!
//! So a concurrent rewrite can make an install fail, never install a byte the
//! publisher did not sign. (An unsigned package opened for `lint` is checked against
//! its own content manifest: nothing vouches for it either way.)
//!
//! It does not decide *whether* to install (trust, consent, resolution) nor where
//! (the install module chooses the destination), and it does not verify DSSE
//! signatures: callers pass a [`ReleaseManifest`] that the trust module verified.

pub mod archive;
mod error;
mod extract;
mod inflate;
mod limits;
mod source;

use std::collections::HashMap;
use std::path::Path;

use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, PackageDigest, ReleaseManifest};
use trellis_schema::path::{NameError, NameSet, PackagePath};

pub use archive::{Entry, EntryKind, Method};
pub use error::PackageError;
pub use extract::{Durability, Extracted, SELECT_HEAD};
pub use limits::Limits;

use inflate::{Budget, Scratch};
use source::Source;

/// Path of the plugin metadata inside a package.
pub const PLUGIN_JSON_PATH: &str = "plugin.json";

/// Which list the package's files are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestSource {
    /// The developer-signed release manifest (installs).
    Signed,
    /// Only the content manifest inside the package (`lint` of an unsigned package).
    ContentOnly,
}

/// A package whose bytes and structure have been checked, ready to verify or extract.
///
/// Opened from a file, it keeps the file open and reads entries from it when asked
/// (see the module docs for why a rewrite of the file in between cannot install
/// unsigned bytes); on Windows the open handle keeps the file from being deleted until
/// the package is dropped. Built from bytes, it holds them.
pub struct Package {
    source: Source,
    digest: PackageDigest,
    entries: Vec<Entry>,
    /// Boxed: a `Package` travels by value in the store's enums.
    content: Box<Contents>,
    expected: Vec<FileEntry>,
    source_kind: ManifestSource,
    limits: Limits,
}

/// `trellis-manifest.json` as it was parsed when the package was opened.
struct Contents {
    manifest: ContentManifest,
    /// Size and SHA-256 of the bytes that were parsed: extraction must write these.
    file: FileEntry,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("digest", &self.digest)
            .field("entries", &self.entries.len())
            .field("release", &format_args!("{} {}", self.content.manifest.plugin_id, self.content.manifest.version))
            .field("source", &self.source_kind)
            .finish_non_exhaustive()
    }
}

impl Package {
    /// Opens the package file at `path` for installing the release `manifest`
    /// describes (a manifest whose DSSE signature the caller verified). Checks the
    /// blob's size and SHA-256 against `manifest.package` first, then the structure,
    /// then that the entry set matches `manifest.files`. Reads the file in chunks and
    /// keeps only its central directory in memory.
    pub fn open(path: &Path, manifest: &ReleaseManifest, limits: &Limits) -> Result<Self, PackageError> {
        Self::from_source(Source::open(path)?, Some(manifest), limits)
    }

    /// Like [`Package::open`], for package bytes already in memory.
    pub fn from_bytes(bytes: Vec<u8>, manifest: &ReleaseManifest, limits: &Limits) -> Result<Self, PackageError> {
        Self::from_source(Source::Memory(bytes), Some(manifest), limits)
    }

    /// Opens a package without a signed manifest, as `lint` does: its files are
    /// checked against the content manifest inside it. Nothing vouches for such a
    /// package; never install from it.
    pub fn open_unsigned(path: &Path, limits: &Limits) -> Result<Self, PackageError> {
        Self::from_source(Source::open(path)?, None, limits)
    }

    /// Like [`Package::open_unsigned`], for package bytes already in memory.
    pub fn from_bytes_unsigned(bytes: Vec<u8>, limits: &Limits) -> Result<Self, PackageError> {
        Self::from_source(Source::Memory(bytes), None, limits)
    }

    /// The one way in: blob, structure, manifests, entry set.
    fn from_source(source: Source, manifest: Option<&ReleaseManifest>, limits: &Limits) -> Result<Self, PackageError> {
        let size = source.len();
        if size > limits.max_package_size {
            return Err(PackageError::PackageTooLarge { size, max: limits.max_package_size });
        }
        if let Some(manifest) = manifest
            && size != manifest.package.size
        {
            return Err(PackageError::PackageSizeMismatch { expected: manifest.package.size, actual: size });
        }
        let tail_start = archive::tail_start(&source, limits)?;
        let (digest, tail) = source.digest_keeping_tail(tail_start)?;
        if let Some(manifest) = manifest
            && digest.sha256 != manifest.package.sha256
        {
            return Err(PackageError::PackageHashMismatch { expected: manifest.package.sha256, actual: digest.sha256 });
        }
        let tail = archive::Tail { start: tail_start, bytes: tail };
        let mut package = Self::parse(source, &tail, digest, limits)?;
        if let Some(manifest) = manifest {
            check_release_against_content(manifest, &package.content.manifest)?;
            package.expected = manifest.files.clone();
            package.source_kind = ManifestSource::Signed;
        }
        package.check_entry_set()?;
        Ok(package)
    }

    fn parse(
        source: Source,
        tail: &archive::Tail,
        digest: PackageDigest,
        limits: &Limits,
    ) -> Result<Self, PackageError> {
        let entries = archive::read_entries(&source, tail, limits)?;
        let (raw, (_, inflated)) =
            read_small_entry(&source, &entries, limits, CONTENT_MANIFEST_PATH).map_err(|e| match e {
                PackageError::MissingFile { .. } => PackageError::MissingContentManifest,
                other => other,
            })?;
        let content_manifest: ContentManifest = trellis_schema::json::from_slice(&raw)
            .map_err(|e| PackageError::InvalidContentManifest { reason: e.to_string() })?;
        Ok(Self {
            source,
            digest,
            entries,
            expected: content_manifest.files.clone(),
            content: Box::new(Contents {
                manifest: content_manifest,
                file: FileEntry {
                    path: CONTENT_MANIFEST_PATH.to_owned(),
                    size: inflated.size,
                    sha256: inflated.sha256,
                    executable: false,
                },
            }),
            source_kind: ManifestSource::ContentOnly,
            limits: *limits,
        })
    }

    /// Checks names only: archive files == expected files + the content manifest.
    fn check_entry_set(&self) -> Result<(), PackageError> {
        let mut set = NameSet::new();
        let mut expected: HashMap<&str, &FileEntry> = HashMap::with_capacity(self.expected.len());
        for file in &self.expected {
            let path = PackagePath::new(&file.path).map_err(|source| PackageError::InvalidManifestPath { source })?;
            if path.as_str() == CONTENT_MANIFEST_PATH {
                return Err(PackageError::InvalidManifestPath {
                    source: NameError::Duplicate { path: CONTENT_MANIFEST_PATH.to_owned() },
                });
            }
            set.insert_file(&path).map_err(|source| PackageError::InvalidManifestPath { source })?;
            expected.insert(&file.path, file);
        }
        let mut seen = 0usize;
        for entry in self.entries.iter().filter(|e| e.kind == EntryKind::File) {
            if entry.name() == CONTENT_MANIFEST_PATH {
                continue;
            }
            let Some(file) = expected.get(entry.name()) else {
                return Err(PackageError::UnexpectedFile { name: entry.name().to_owned() });
            };
            if file.size != entry.size {
                return Err(PackageError::FileSizeMismatch {
                    name: entry.name().to_owned(),
                    expected: file.size,
                    actual: entry.size,
                });
            }
            seen += 1;
        }
        if seen != self.expected.len() {
            let present: std::collections::HashSet<&str> =
                self.entries.iter().filter(|e| e.kind == EntryKind::File).map(Entry::name).collect();
            let missing = self.expected.iter().find(|f| !present.contains(f.path.as_str()));
            return Err(PackageError::MissingFile { name: missing.map(|f| f.path.clone()).unwrap_or_default() });
        }
        Ok(())
    }

    /// The package's size and SHA-256, as computed.
    pub fn digest(&self) -> PackageDigest {
        self.digest
    }

    /// Every entry, in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The content manifest inside the package (`trellis-manifest.json`).
    pub fn content_manifest(&self) -> &ContentManifest {
        &self.content.manifest
    }

    /// The file list the package is checked against.
    pub fn expected_files(&self) -> &[FileEntry] {
        &self.expected
    }

    /// Whether the file list came from a signed release manifest.
    pub fn manifest_source(&self) -> ManifestSource {
        self.source_kind
    }

    /// The raw bytes of `plugin.json`, checked against the manifest.
    pub fn plugin_json(&self) -> Result<Vec<u8>, PackageError> {
        self.read_small(PLUGIN_JSON_PATH)
    }

    /// Reads one file of at most [`Limits::max_manifest_size`] bytes into memory, with
    /// every check extraction does (CRC, limits, and the manifest's SHA-256 when the
    /// file is listed, or the digest checked at opening for `trellis-manifest.json`).
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>, PackageError> {
        let (bytes, (entry, inflated)) = read_small_entry(&self.source, &self.entries, &self.limits, path)?;
        if let Some(file) = self.expected_file(path) {
            check_against_manifest(entry, file, inflated)?;
        }
        Ok(bytes)
    }

    /// Inflates every entry and checks it (limits, CRC, size and SHA-256 against the
    /// manifest) without writing anything: what `lint` runs.
    pub fn verify(&self) -> Result<(), PackageError> {
        extract::verify(self)
    }

    /// Extracts the package into `destination`, which must not exist; its parent must.
    /// Files are staged in a temporary directory beside `destination`, checked,
    /// fsynced and moved into place with one rename. On any error nothing is left
    /// behind and `destination` does not exist.
    pub fn extract(&self, destination: &Path) -> Result<Extracted, PackageError> {
        extract::extract(self, destination, Durability::Flushed, None)
    }

    /// Like [`Package::extract`], choosing how much to flush to disk.
    pub fn extract_with(&self, destination: &Path, durability: Durability) -> Result<Extracted, PackageError> {
        extract::extract(self, destination, durability, None)
    }

    /// Like [`Package::extract_with`], writing only the files `select` keeps: it is
    /// given each file's path and first [`SELECT_HEAD`] bytes (all of a shorter file).
    /// Every entry is still inflated and checked as [`Package::verify`] does; a
    /// file not selected is never written. What `lint` uses to put on disk only the
    /// binaries and scripts its analysis reads.
    pub fn extract_selected(
        &self,
        destination: &Path,
        durability: Durability,
        select: &dyn Fn(&str, &[u8]) -> bool,
    ) -> Result<Extracted, PackageError> {
        extract::extract(self, destination, durability, Some(select))
    }

    /// What each file must inflate to, by path: the expected files and
    /// `trellis-manifest.json` as it was parsed.
    fn expected_by_path(&self) -> HashMap<&str, &FileEntry> {
        self.expected.iter().chain([&self.content.file]).map(|f| (f.path.as_str(), f)).collect()
    }

    fn expected_file(&self, path: &str) -> Option<&FileEntry> {
        if path == CONTENT_MANIFEST_PATH {
            return Some(&self.content.file);
        }
        self.expected.iter().find(|f| f.path == path)
    }

    fn source(&self) -> &Source {
        &self.source
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Inflates one small file into memory.
fn read_small_entry<'a>(
    source: &Source,
    entries: &'a [Entry],
    limits: &Limits,
    path: &str,
) -> Result<(Vec<u8>, (&'a Entry, inflate::Inflated)), PackageError> {
    let entry = entries
        .iter()
        .find(|e| e.kind == EntryKind::File && e.name() == path)
        .ok_or_else(|| PackageError::MissingFile { name: path.to_owned() })?;
    if entry.size > limits.max_manifest_size {
        return Err(PackageError::FileTooLarge {
            name: path.to_owned(),
            size: entry.size,
            max: limits.max_manifest_size,
        });
    }
    let mut out = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
    let inflated = inflate::stream_entry(
        source,
        entry,
        limits,
        &mut Budget::default(),
        &mut Scratch::with_sizes(64 * 1024, 64 * 1024),
        |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        },
        |e| PackageError::CorruptEntry { name: path.to_owned(), reason: e.to_string() },
    )?;
    Ok((out, (entry, inflated)))
}

fn check_against_manifest(entry: &Entry, file: &FileEntry, inflated: inflate::Inflated) -> Result<(), PackageError> {
    if inflated.size != file.size {
        return Err(PackageError::FileSizeMismatch {
            name: entry.name().to_owned(),
            expected: file.size,
            actual: inflated.size,
        });
    }
    if inflated.sha256 != file.sha256 {
        return Err(PackageError::FileHashMismatch {
            name: entry.name().to_owned(),
            expected: file.sha256,
            actual: inflated.sha256,
        });
    }
    Ok(())
}

fn check_release_against_content(release: &ReleaseManifest, content: &ContentManifest) -> Result<(), PackageError> {
    let mismatch = |reason: String| Err(PackageError::ContentManifestMismatch { reason });
    if release.plugin_id != content.plugin_id || release.version != content.version {
        return mismatch(format!(
            "it describes {} {} but the signature is for {}",
            content.plugin_id,
            content.version,
            release.release_name()
        ));
    }
    if release.files != content.files {
        return mismatch(format!(
            "it lists {} files, the signed manifest {}; they must be identical",
            content.files.len(),
            release.files.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use trellis_schema::Sha256;

    use super::*;

    #[test]
    fn refusal_messages_name_the_entry_and_the_facts() {
        let errors = [
            PackageError::PackageHashMismatch { expected: Sha256::of(b"signed"), actual: Sha256::of(b"served") },
            PackageError::InvalidName {
                source: NameError::DotSegment { path: "a/../../x".into(), segment: "..".into() },
            },
            PackageError::NameCollision {
                source: NameError::CaseCollision { path: "a.dll".into(), other: "A.dll".into() },
            },
            PackageError::LocalHeaderMismatch {
                name: "LICENSE".into(),
                field: "name",
                central: "\"LICENSE\"".into(),
                local: "\"../../evil.dll\"".into(),
            },
            PackageError::OverlappingEntries { first: "carrier.bin".into(), second: "hidden.txt".into() },
            PackageError::Symlink { name: "link".into() },
            PackageError::InflatesPastDeclaredSize { name: "data.bin".into(), declared: 100 },
            PackageError::CompressionRatioTooHigh {
                name: "bomb.bin".into(),
                size: 4 << 20,
                compressed: 4100,
                max_ratio: 250,
            },
            PackageError::PrependedData { bytes: 26 },
            PackageError::BadCrc { name: "docs/README.md".into(), expected: 0x1234_5678, actual: 0x9abc_def0 },
            PackageError::UnexpectedFile { name: "plugin.json".into() },
            PackageError::MissingFile { name: "docs/README.md".into() },
            PackageError::Unsupported { feature: "encryption", entry: Some("secret.bin".into()) },
        ];
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
