//! Applying a delta: rebuilding a release's files from the installed tree of an older
//! release and a delta blob ([`trellis_schema::delta`]), into a staging directory.
//!
//! Owns the apply side of the format: matching the delta to the two releases (plugin,
//! versions, manifest digests, file set), reading old files (each checked against the
//! installed release's manifest before use), inflating literals, a bounded bsdiff
//! patcher (every control must produce bytes, nothing past the signed size), and
//! checking **every** file written against the size and SHA-256 of the
//! developer-signed release manifest, whose file list also gives each file's mode
//! (the delta carries none); the content manifest must say what the signed manifest
//! says. Files are staged in a temporary directory, flushed, and moved into
//! place with one rename ([`Staged::persist`]); on any error nothing is left behind.
//!
//! It does not decide whether to use a delta or download one (the store's
//! `fetch` does, and falls back to the full package on any [`DeltaError`]), and it
//! verifies no signatures: callers pass manifests the trust module verified.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::DeflateDecoder;
use trellis_schema::delta::{DataRange, DeltaBlob, DeltaFormatError, DeltaLimits, DeltaOp, file_set_mismatch};
use trellis_schema::digest::Sha256;
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, ReleaseManifest};

use crate::fs::{FsError, set_executable, sync_dir};

/// Largest content manifest a delta may produce (as [`crate::package::Limits`]).
const MAX_CONTENT_MANIFEST: u64 = 8 << 20;

/// The installed release a delta starts from.
#[derive(Clone, Copy, Debug)]
pub struct Base<'a> {
    /// Its directory (`plugins/<id>/<version>/`).
    pub dir: &'a Path,
    /// The release manifest kept there.
    pub manifest: &'a ReleaseManifest,
    /// SHA-256 of that manifest as signed (the envelope's payload).
    pub manifest_sha256: Sha256,
}

/// The release a delta must produce.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Its developer-signed manifest (verified by the caller).
    pub manifest: &'a ReleaseManifest,
    /// SHA-256 of that manifest as signed.
    pub manifest_sha256: Sha256,
}

/// Operations of a delta, counted by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpCounts {
    /// Files copied from the old release.
    pub copied: usize,
    /// Files patched from an old file.
    pub patched: usize,
    /// Files carried whole in the delta.
    pub literal: usize,
}

/// A release rebuilt from a delta, verified, waiting in a staging directory.
#[derive(Debug)]
pub struct Staged {
    dir: tempfile::TempDir,
    /// Files written (including `trellis-manifest.json`).
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// What the delta did.
    pub ops: OpCounts,
}

impl Staged {
    /// The staging directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the staged files to `destination` with one rename. `destination` must
    /// not exist and must be on the file system of the staging directory.
    pub fn persist(self, destination: &Path) -> Result<(), DeltaError> {
        if std::fs::symlink_metadata(destination).is_ok() {
            return Err(DeltaError::DestinationExists { path: destination.to_owned() });
        }
        let staged = self.dir.keep();
        if let Err(e) = std::fs::rename(&staged, destination) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(FsError::new("moving the staged release to", destination, e).into());
        }
        if let Some(parent) = destination.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

/// Why a delta could not be applied. The caller downloads the full package instead.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The blob is not a well-formed delta.
    #[error(transparent)]
    Format(#[from] DeltaFormatError),
    /// The delta joins other releases than the ones at hand.
    #[error("the delta is for {found}, not {expected}")]
    WrongRelease {
        /// What the update needs.
        expected: String,
        /// What the delta names.
        found: String,
    },
    /// The delta's files are not the signed release's.
    #[error("the delta's file list does not match the signed manifest: {reason}")]
    FileSet {
        /// The first difference.
        reason: String,
    },
    /// An operation reads a file the installed release does not have.
    #[error("{path}: the delta reads {source_path}, which the installed release does not list")]
    UnknownSource {
        /// The file being made.
        path: String,
        /// The old file named.
        source_path: String,
    },
    /// An old file is missing, unreadable or not what the installed release's manifest says.
    #[error("{}: the installed file was changed or removed ({reason})", path.display())]
    BaseChanged {
        /// The installed file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The compressed data or the patch of a file is corrupt.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file being made.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file made by the delta is not the one the developer signed.
    #[error(
        "{path}: the delta produced {actual_size} bytes with SHA-256 {actual_sha256}; the signed manifest says {expected_size} bytes with {expected_sha256}"
    )]
    OutputMismatch {
        /// The file.
        path: String,
        /// Signed size.
        expected_size: u64,
        /// Signed digest.
        expected_sha256: Sha256,
        /// Size produced.
        actual_size: u64,
        /// Digest produced.
        actual_sha256: Sha256,
    },
    /// The content manifest the delta produced disagrees with the signed manifest.
    #[error("{CONTENT_MANIFEST_PATH}: {reason}")]
    ContentManifest {
        /// What is wrong.
        reason: String,
    },
    /// The destination exists already.
    #[error("{} exists already", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// Writing the staged files failed.
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Applies the delta `bytes` to the installed release `base`, producing the files of
/// `target` in a new staging directory inside `staging_parent`. Every produced file is
/// checked against `target.manifest` before the staging directory is flushed; on any
/// error the staging directory is gone.
pub fn apply(
    bytes: &[u8],
    base: Base<'_>,
    target: Target<'_>,
    staging_parent: &Path,
    limits: &DeltaLimits,
) -> Result<Staged, DeltaError> {
    let blob = DeltaBlob::parse(bytes, limits)?;
    let header = &blob.header;
    let (to, from) = (target.manifest, base.manifest);
    let expected = format!("{} {} → {}", to.plugin_id, from.version, to.version);
    let found = format!("{} {} → {}", header.plugin_id, header.from, header.to);
    if header.plugin_id != to.plugin_id
        || from.plugin_id != to.plugin_id
        || header.from != from.version
        || header.to != to.version
    {
        return Err(DeltaError::WrongRelease { expected, found });
    }
    if header.from_manifest_sha256 != base.manifest_sha256 || header.to_manifest_sha256 != target.manifest_sha256 {
        return Err(DeltaError::WrongRelease {
            expected: format!("{expected} (manifests {} → {})", base.manifest_sha256, target.manifest_sha256),
            found: format!("{found} (manifests {} → {})", header.from_manifest_sha256, header.to_manifest_sha256),
        });
    }
    if let Some(reason) = file_set_mismatch(header, to) {
        return Err(DeltaError::FileSet { reason });
    }

    let staging = tempfile::Builder::new()
        .prefix(".trellis-delta-")
        .tempdir_in(staging_parent)
        .map_err(|e| FsError::new("creating a staging directory in", staging_parent, e))?;
    let signed: std::collections::HashMap<&str, &FileEntry> = to.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let old: std::collections::HashMap<&str, &FileEntry> = from.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut written = Vec::with_capacity(header.files.len());
    let mut staged = Staged { dir: staging, files: 0, bytes: 0, ops: OpCounts::default() };
    for file in &header.files {
        let entry = signed.get(file.path.as_str()).copied();
        let max = entry.map_or(MAX_CONTENT_MANIFEST, |e| e.size);
        let source = match file.op.source() {
            Some(source) => {
                let Some(old_entry) = old.get(source) else {
                    return Err(DeltaError::UnknownSource { path: file.path.clone(), source_path: source.to_owned() });
                };
                Some(read_base(base.dir, old_entry)?)
            }
            None => None,
        };
        let corrupt = |reason: String| DeltaError::Corrupt { path: file.path.clone(), reason };
        let output = match &file.op {
            DeltaOp::Copy { .. } => {
                staged.ops.copied += 1;
                source.unwrap_or_default()
            }
            DeltaOp::Literal { data } => {
                staged.ops.literal += 1;
                inflate_exact(blob.data(*data), *data, max, |d| {
                    let mut out = Vec::new();
                    d.take(max.saturating_add(1)).read_to_end(&mut out)?;
                    Ok(out)
                })
                .map_err(corrupt)?
            }
            DeltaOp::Patch { .. } if entry.is_none() => {
                return Err(corrupt("the content manifest must be a literal".into()));
            }
            DeltaOp::Patch { data, .. } => {
                staged.ops.patched += 1;
                let old_bytes = source.unwrap_or_default();
                inflate_exact(blob.data(*data), *data, max, |d| bspatch(&old_bytes, d, max)).map_err(corrupt)?
            }
        };
        match entry {
            Some(entry) => check_output(&file.path, &output, entry)?,
            None => check_content_manifest(&output, to)?,
        }
        // The mode is the signed manifest's (the delta header carries none).
        let executable = entry.is_some_and(|e| e.executable);
        written.push(write_file(staged.path(), &file.path, &output, executable)?);
        staged.files += 1;
        staged.bytes += output.len() as u64;
    }
    for path in &written {
        File::open(path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("flushing", path, e))?;
    }
    let mut dirs: Vec<PathBuf> = written.iter().filter_map(|p| p.parent().map(Path::to_owned)).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs.iter().rev() {
        sync_dir(dir)?;
    }
    Ok(staged)
}

/// Reads an installed file, refusing it unless its size and SHA-256 are the installed
/// release's.
fn read_base(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>, DeltaError> {
    let path = dir.join(&entry.path);
    let changed = |reason: String| DeltaError::BaseChanged { path: path.clone(), reason };
    let file = File::open(&path).map_err(|e| changed(e.to_string()))?;
    let size = file.metadata().map_err(|e| changed(e.to_string()))?.len();
    if size != entry.size {
        return Err(changed(format!("{size} bytes, installed with {}", entry.size)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(size.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| changed(e.to_string()))?;
    let actual = Sha256::of(&bytes);
    if bytes.len() as u64 != entry.size || actual != entry.sha256 {
        return Err(changed(format!("SHA-256 {actual}, installed with {}", entry.sha256)));
    }
    Ok(bytes)
}

/// Runs `read` over the raw-deflate stream `compressed`, then checks that the stream
/// ended exactly at the end of its range.
fn inflate_exact(
    compressed: &[u8],
    range: DataRange,
    max: u64,
    read: impl FnOnce(&mut DeflateDecoder<&[u8]>) -> io::Result<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let mut decoder = DeflateDecoder::new(compressed);
    let out = read(&mut decoder).map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!("produces more than the {max} bytes signed"));
    }
    // Nothing may follow the stream inside its range.
    let mut probe = [0u8; 1];
    if decoder.read(&mut probe).map_err(|e| e.to_string())? != 0 || decoder.total_in() != range.length {
        return Err(format!("the compressed data ends after {} of its {} bytes", decoder.total_in(), range.length));
    }
    Ok(out)
}

/// Applies a bsdiff patch (see [`trellis_schema::delta`]) to `old`, producing exactly
/// `size` bytes: a control that produces nothing, reads outside `old` or produces
/// more than `size` bytes is refused before any of its bytes are read.
pub fn bspatch(old: &[u8], patch: &mut impl Read, size: u64) -> io::Result<Vec<u8>> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let mut out = Vec::with_capacity(usize::try_from(size.min(1 << 30)).unwrap_or(0));
    let mut old_pos: u64 = 0;
    let mut control = [0u8; 24];
    while read_control(patch, &mut control)? {
        let [mix, copy, seek] = [0, 8, 16].map(|at| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&control[at..at + 8]);
            u64::from_le_bytes(word)
        });
        let produced = out.len() as u64;
        if mix == 0 && copy == 0 {
            return Err(invalid(format!("patch control at output byte {produced} produces nothing")));
        }
        if mix.checked_add(copy).is_none_or(|n| n > size - produced) {
            return Err(invalid(format!("patch produces more than the {size} bytes signed")));
        }
        let old_end = old_pos.checked_add(mix).filter(|end| *end <= old.len() as u64).ok_or_else(|| {
            invalid(format!("patch reads {mix} old bytes at {old_pos}, past the old file ({} bytes)", old.len()))
        })?;
        let start = out.len();
        let read = patch.take(mix).read_to_end(&mut out)?;
        if read as u64 != mix {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "patch ends inside the bytes of a control"));
        }
        let old_slice = &old[old_pos as usize..old_end as usize];
        for (new, old) in out[start..].iter_mut().zip(old_slice) {
            *new = new.wrapping_add(*old);
        }
        let read = patch.take(copy).read_to_end(&mut out)?;
        if read as u64 != copy {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "patch ends inside the bytes of a control"));
        }
        // Seek: sign-magnitude; the position may leave the old file, reads may not.
        let magnitude = seek & !(1 << 63);
        old_pos = if seek >> 63 == 0 { old_end.checked_add(magnitude) } else { old_end.checked_sub(magnitude) }
            .ok_or_else(|| invalid(format!("patch seeks to before the start of the old file at {old_end}")))?;
    }
    if out.len() as u64 != size {
        return Err(invalid(format!("patch produces {} bytes, the signed size is {size}", out.len())));
    }
    Ok(out)
}

/// Reads one 24-byte control; `false` at a clean end of the patch.
fn read_control(patch: &mut impl Read, control: &mut [u8; 24]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < control.len() {
        match patch.read(&mut control[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "patch ends inside a control")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn check_output(path: &str, output: &[u8], entry: &FileEntry) -> Result<(), DeltaError> {
    let actual = Sha256::of(output);
    if output.len() as u64 != entry.size || actual != entry.sha256 {
        return Err(DeltaError::OutputMismatch {
            path: path.to_owned(),
            expected_size: entry.size,
            expected_sha256: entry.sha256,
            actual_size: output.len() as u64,
            actual_sha256: actual,
        });
    }
    Ok(())
}

fn check_content_manifest(output: &[u8], signed: &ReleaseManifest) -> Result<(), DeltaError> {
    let content: ContentManifest = trellis_schema::json::from_slice(output)
        .map_err(|e| DeltaError::ContentManifest { reason: format!("does not parse: {e}") })?;
    if content.plugin_id != signed.plugin_id || content.version != signed.version || content.files != signed.files {
        return Err(DeltaError::ContentManifest {
            reason: format!("does not describe the files of the signed {}", signed.release_name()),
        });
    }
    Ok(())
}

/// Writes one new file inside the staging directory (`path` passed the name policy
/// when the delta was parsed).
fn write_file(root: &Path, path: &str, bytes: &[u8], executable: bool) -> Result<PathBuf, FsError> {
    let full = root.join(path);
    if let Some(parent) = full.parent() {
        crate::fs::create_dir_all(parent)?;
    }
    let mut file =
        OpenOptions::new().write(true).create_new(true).open(&full).map_err(|e| FsError::new("creating", &full, e))?;
    file.write_all(bytes).map_err(|e| FsError::new("writing", &full, e))?;
    set_executable(&file, executable).map_err(|e| FsError::new("setting the mode of", &full, e))?;
    Ok(full)
}

#[cfg(test)]
mod tests;
