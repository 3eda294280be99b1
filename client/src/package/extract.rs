//! Placing a checked package on disk: staging directory, fsync, one atomic rename.
//!
//! Owns the staging directory's whole life: it is created next to the destination
//! (same file system, so the final rename is atomic), every file is created with
//! `create_new` inside it, written while it is hashed, fsynced, and the directory is
//! renamed into place only after every entry passed every check. On any error the
//! staging directory is removed (also on unwinding: it is a [`tempfile::TempDir`]
//! until the rename) and the destination never appears. Each file's mode (executable
//! or not) comes from the expected file list (the signed manifest for an install),
//! never from the archive's attributes.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::archive::{Entry, EntryKind};
use super::error::PackageError;
use super::inflate::{self, Budget, Scratch};
use super::{Package, check_against_manifest};
use crate::fs::{FsError, set_executable, sync_dir, sync_filesystem};

/// How hard extraction works to make the extracted files survive a crash.
///
/// Both settings are atomic for readers: the destination appears complete, with one
/// rename, or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every file and directory is flushed to disk before the rename, so after a power
    /// loss the destination is either absent or complete: with one `syncfs` of the
    /// file system on Linux, elsewhere file by file in parallel after all files are
    /// written, which lets the file system batch them.
    #[default]
    Flushed,
    /// Nothing is flushed: after a power loss the destination may exist with files the
    /// disk never received. For caches and scratch extraction (as cargo and uv do).
    Unflushed,
}

/// Most threads flushing files at once.
const FLUSH_THREADS: usize = 16;

/// What an extraction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Where the files now are.
    pub destination: PathBuf,
    /// Number of files written (including `trellis-manifest.json`).
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Inflates and checks every entry, writing nothing.
pub(super) fn verify(package: &Package) -> Result<(), PackageError> {
    run(package, None, None).map(|_| ())
}

/// Bytes of each file a selector of [`Package::extract_selected`](super::Package::extract_selected) is shown (fewer when the file is shorter).
pub const SELECT_HEAD: usize = 256;

/// Chooses the files an extraction writes: given the path and the first
/// [`SELECT_HEAD`] bytes, `true` writes the file. Every entry is inflated and checked
/// either way.
pub(super) type Select<'a> = &'a dyn Fn(&str, &[u8]) -> bool;

/// Extracts into `destination` through a staging directory.
pub(super) fn extract(
    package: &Package,
    destination: &Path,
    durability: Durability,
    select: Option<Select<'_>>,
) -> Result<Extracted, PackageError> {
    if fs::symlink_metadata(destination).is_ok() {
        return Err(PackageError::DestinationExists { path: destination.to_owned() });
    }
    let parent = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        Some(_) => Path::new("."),
        None => return Err(PackageError::NoParentDirectory { path: destination.to_owned() }),
    };
    let staging = tempfile::Builder::new()
        .prefix(".trellis-staging-")
        .tempdir_in(parent)
        .map_err(|e| FsError::new("creating a staging directory in", parent, e))?;
    let (files, bytes, staged) = run(package, Some(staging.path()), select)?;
    // On Linux one `syncfs` flushes every staged file and directory; elsewhere each
    // is flushed (the files in parallel).
    if durability == Durability::Flushed && !sync_filesystem(staging.path())? {
        flush_all(&staged.files)?;
        for dir in staged.dirs.iter().rev() {
            sync_dir(&staging.path().join(dir))?;
        }
        sync_dir(staging.path())?;
    }
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, destination) {
        let _ = fs::remove_dir_all(&staged);
        return Err(FsError::new("moving the staged package to", destination, e).into());
    }
    if durability == Durability::Flushed
        && let Err(e) = sync_dir(parent)
    {
        let _ = fs::remove_dir_all(destination);
        return Err(e.into());
    }
    tracing::debug!(destination = %destination.display(), files, bytes, "extracted package");
    Ok(Extracted { destination: destination.to_owned(), files, bytes })
}

/// What was written into the staging directory.
#[derive(Default)]
struct Staged {
    /// Files, by full path.
    files: Vec<PathBuf>,
    /// Directories, relative, parents first.
    dirs: Vec<String>,
}

/// Flushes `files` to disk from a few threads at once.
fn flush_all(files: &[PathBuf]) -> Result<(), FsError> {
    let next = AtomicUsize::new(0);
    let threads = FLUSH_THREADS.min(files.len());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), FsError> {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(index) else { return Ok(()) };
                        OpenOptions::new()
                            .write(true)
                            .open(path)
                            .and_then(|file| file.sync_all())
                            .map_err(|e| FsError::new("syncing staged file", path.clone(), e))?;
                    }
                })
            })
            .collect();
        let mut result = Ok(());
        for worker in workers {
            let outcome = worker.join().unwrap_or_else(|_| {
                Err(FsError::new(
                    "syncing staged files",
                    PathBuf::new(),
                    std::io::Error::other("flush thread panicked"),
                ))
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

/// Streams every entry in archive order; writes under `root` when given (only the
/// files `select` keeps, when given). Returns the number of files, the bytes inflated
/// and what was staged.
fn run(
    package: &Package,
    root: Option<&Path>,
    select: Option<Select<'_>>,
) -> Result<(usize, u64, Staged), PackageError> {
    let expected = package.expected_by_path();
    let mut order: Vec<&Entry> = package.entries().iter().collect();
    order.sort_by_key(|e| e.data.start);
    let mut scratch = Scratch::new();
    let mut budget = Budget::default();
    let mut dirs = Directories::default();
    let mut files = 0usize;
    let mut bytes = 0u64;
    let mut staged = Staged::default();
    for entry in order {
        if entry.kind == EntryKind::Directory {
            if let Some(root) = root {
                dirs.create(root, entry.name())?;
            }
            continue;
        }
        let path = root.map(|root| root.join(entry.name()));
        // Without `select` the file is created before streaming; with it, once its
        // head is known (or the entry ended), and only when selected.
        let mut sink = match (root, select) {
            (None, _) => Sink::Discard,
            (Some(root), None) => Sink::File(create_staged(&mut dirs, root, entry.name())?),
            (Some(_), Some(_)) => Sink::Pending(Vec::with_capacity(SELECT_HEAD)),
        };
        let decide = |sink: &mut Sink, dirs: &mut Directories| -> Result<(), PackageError> {
            let (Some(root), Some(select)) = (root, select) else { return Ok(()) };
            if !matches!(sink, Sink::Pending(_)) {
                return Ok(());
            }
            let Sink::Pending(head) = std::mem::replace(sink, Sink::Discard) else { return Ok(()) };
            if select(entry.name(), &head[..head.len().min(SELECT_HEAD)]) {
                let mut file = create_staged(dirs, root, entry.name())?;
                file.write_all(&head).map_err(|e| write_error(root, entry.name(), e))?;
                *sink = Sink::File(file);
            }
            Ok(())
        };
        let mut deferred: Option<PackageError> = None;
        let inflated = inflate::stream_entry(
            package.source(),
            entry,
            package.limits(),
            &mut budget,
            &mut scratch,
            |chunk| {
                if let Sink::Pending(head) = &mut sink {
                    head.extend_from_slice(chunk);
                    if head.len() < SELECT_HEAD {
                        return Ok(());
                    }
                    if let Err(e) = decide(&mut sink, &mut dirs) {
                        deferred = Some(e);
                        return Err(std::io::Error::other("staging failed"));
                    }
                    return Ok(());
                }
                match &mut sink {
                    Sink::File(file) => file.write_all(chunk),
                    _ => Ok(()),
                }
            },
            |e| match &path {
                Some(path) => PackageError::from(FsError::new("writing staged file", path.clone(), e)),
                None => PackageError::CorruptEntry { name: entry.name().to_owned(), reason: e.to_string() },
            },
        );
        let inflated = match (inflated, deferred) {
            (_, Some(e)) => return Err(e),
            (result, None) => result?,
        };
        // Every file, `trellis-manifest.json` included, against what it must be: the
        // signed digests for an install. This is what keeps a package file rewritten
        // after it was opened from installing anything unsigned.
        let Some(listed) = expected.get(entry.name()) else {
            return Err(PackageError::UnexpectedFile { name: entry.name().to_owned() });
        };
        check_against_manifest(entry, listed, inflated)?;
        decide(&mut sink, &mut dirs)?;
        if let (Sink::File(file), Some(path)) = (sink, path) {
            // The mode is the signed manifest's, never the ZIP attributes'.
            set_executable(&file, listed.executable).map_err(|e| FsError::new("setting mode of", path.clone(), e))?;
            staged.files.push(path);
        }
        files += 1;
        bytes += inflated.size;
    }
    staged.dirs = dirs.created;
    Ok((files, bytes, staged))
}

/// Where an entry's bytes go.
enum Sink {
    /// Nowhere (verifying, or not selected).
    Discard,
    /// Held until [`SELECT_HEAD`] bytes decide.
    Pending(Vec<u8>),
    /// The staged file.
    File(File),
}

fn create_staged(dirs: &mut Directories, root: &Path, name: &str) -> Result<File, PackageError> {
    if let Some((parent, _)) = name.rsplit_once('/') {
        dirs.create(root, parent)?;
    }
    let path = root.join(name);
    File::create_new(&path).map_err(|e| FsError::new("creating staged file", path, e).into())
}

fn write_error(root: &Path, name: &str, e: std::io::Error) -> PackageError {
    FsError::new("writing staged file", root.join(name), e).into()
}

/// Directories created in the staging tree, so each is created (and synced) once.
#[derive(Default)]
struct Directories {
    seen: HashSet<String>,
    created: Vec<String>,
}

impl Directories {
    fn create(&mut self, root: &Path, dir: &str) -> Result<(), PackageError> {
        if self.seen.contains(dir) {
            return Ok(());
        }
        let mut end = 0;
        for segment in dir.split('/') {
            end += segment.len();
            let prefix = &dir[..end];
            if self.seen.insert(prefix.to_owned()) {
                let path = root.join(prefix);
                fs::create_dir(&path).map_err(|e| FsError::new("creating staged directory", path, e))?;
                self.created.push(prefix.to_owned());
            }
            end += 1;
        }
        Ok(())
    }
}
