//! File-system primitives every writer in Trellis goes through.
//!
//! - [`write_atomic`]: a temp file in the destination's directory, fsync, rename, fsync
//!   of the directory. Readers see the old bytes or the new bytes, never a mix, and a
//!   crash leaves at worst a stray temp file. The rename is retried for a few seconds
//!   while another process holds the destination open (`retry_while_in_use`; on
//!   Windows a scanner or a reader without `FILE_SHARE_DELETE` refuses it for a moment).
//! - [`replace_unsynced`]: the same rename into place without any fsync, for files
//!   every read verifies (the content-addressed download cache, delegated TUF roles
//!   checked against their delegator and the snapshot on every load): after a power
//!   loss such a file may be empty or old, and the reader then treats it as absent.
//! - [`sync_filesystem`]: one `syncfs(2)` on Linux for a whole tree of new files (a
//!   staged package) instead of an fsync per file and directory.
//! - [`write_atomic_flushing`]: [`write_atomic`] with the barriers chosen by the caller
//!   ([`Flush`], [`Rename`]): a transaction's commit flushes every file it wrote
//!   unflushed *and* its own new bytes with one `syncfs` on Linux, then renames; a
//!   write whose loss after a power cut is harmless skips the directory sync.
//!   [`write_atomic_before_flush`] writes a file that such a flush will cover (renamed
//!   unflushed on Linux, written with [`write_atomic`] elsewhere).
//! - [`write_atomic_all`]: several [`write_atomic`]s sharing their barriers (all
//!   flushed with one `syncfs` before any rename, one sync per directory after).
//! - [`LockedFile`]: an exclusive advisory lock on a lock file, released on drop; the
//!   one way to take the data-dir lock.
//!
//! Nothing here knows about plugins or registries.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O failure, with the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FsError {
    /// What was being done ("writing", "locking", ...).
    pub action: &'static str,
    /// Where.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl FsError {
    /// Wraps `source` with the action and path.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self { action, path: path.into(), source }
    }
}

/// Writes `bytes` to `path` atomically: readers see either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes `bytes` to `path` atomically for running readers, without a durability
/// barrier: after a power loss the file may hold the old content, the new one, or
/// (on some file systems) nothing readable. Only for hints whose reader treats an
/// unreadable file as absent (the mirror health memory): a flush there would be a
/// barrier on every operation that changes it.
pub fn write_atomic_unflushed(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = parent_dir(path);
    let mut temp =
        temp_builder(".trellis-tmp-").tempfile_in(dir).map_err(|e| FsError::new("creating a temp file in", dir, e))?;
    temp.write_all(bytes).map_err(|e| FsError::new("writing", temp.path(), e))?;
    persist(temp, path)
}

/// Like [`write_atomic`], with the content produced by `write` into the temp file.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> Result<(), FsError> {
    let dir = parent_dir(path);
    let mut temp =
        temp_builder(".trellis-tmp-").tempfile_in(dir).map_err(|e| FsError::new("creating a temp file in", dir, e))?;
    write(temp.as_file_mut()).map_err(|e| FsError::new("writing", temp.path(), e))?;
    temp.as_file().sync_all().map_err(|e| FsError::new("syncing", temp.path(), e))?;
    persist(temp, path)?;
    sync_dir(dir)
}

/// What [`write_atomic_flushing`] makes durable before its rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// The new file only (`fsync` of the temp file).
    File,
    /// The new file and everything written before it on the same file system: one
    /// `syncfs(2)` on Linux. Where there is no `syncfs` only the new file is flushed, so
    /// callers there flush what they wrote themselves ([`syncfs_available`] says which).
    FileSystem,
}

/// Whether [`write_atomic_flushing`] makes its rename durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rename {
    /// The directory is synced after the rename: on return the new content survives a
    /// power loss.
    Durable,
    /// No directory sync: after a power loss the path may hold the old content (never
    /// a torn one: the new bytes were flushed before the rename). For writes a later
    /// durable write supersedes, or whose loss recovery repeats harmlessly.
    Lazy,
}

/// Whether this platform flushes a whole file system with one call (`syncfs(2)`,
/// Linux). Where it does not, writers flush file by file.
pub const fn syncfs_available() -> bool {
    cfg!(target_os = "linux")
}

/// [`write_atomic`] with the barriers chosen by the caller: `flush` before the rename
/// (the new bytes are always flushed, so the file is never torn), `rename` after it.
/// `write_atomic` is `(Flush::File, Rename::Durable)`.
pub fn write_atomic_flushing(path: &Path, bytes: &[u8], flush: Flush, rename: Rename) -> Result<(), FsError> {
    let dir = parent_dir(path);
    let mut temp =
        temp_builder(".trellis-tmp-").tempfile_in(dir).map_err(|e| FsError::new("creating a temp file in", dir, e))?;
    temp.write_all(bytes).map_err(|e| FsError::new("writing", temp.path(), e))?;
    let flushed_file_system = flush == Flush::FileSystem && sync_filesystem(dir)?;
    if !flushed_file_system {
        temp.as_file().sync_all().map_err(|e| FsError::new("syncing", temp.path(), e))?;
    }
    persist(temp, path)?;
    match rename {
        Rename::Durable => sync_dir(dir),
        Rename::Lazy => Ok(()),
    }
}

/// Writes a file that a coming [`Flush::FileSystem`] write covers: renamed into place
/// unflushed where `syncfs` exists (the flush makes it durable with everything else),
/// written with [`write_atomic`] elsewhere. Readers see the old or the new bytes.
pub fn write_atomic_before_flush(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    if syncfs_available() { replace_unsynced(path, bytes) } else { write_atomic(path, bytes) }
}

/// Renames `temp` over `path`, retrying while another process holds `path` open (on
/// Windows a virus scanner, an indexer or a reader without `FILE_SHARE_DELETE` makes
/// the replacing rename fail for a moment).
fn persist(temp: tempfile::NamedTempFile, path: &Path) -> Result<(), FsError> {
    let mut temp = Some(temp);
    retry_while_in_use(file_in_use, &IN_USE_BACKOFF, || {
        let file = temp.take().expect("a failed attempt gives the temp file back");
        file.persist(path).map(drop).map_err(|e| {
            temp = Some(e.file);
            e.error
        })
    })
    .map_err(|e| FsError::new("renaming into place", path, e))
}

/// Replaces `path` with `bytes` by a rename, without flushing anything: readers see
/// the old or the new bytes, and a process crash loses nothing, but after a power loss
/// the file may be empty, old or absent. Only for files whose every read is verified
/// (a mismatch reads as a miss).
pub fn replace_unsynced(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = parent_dir(path);
    let mut temp =
        temp_builder(".trellis-tmp-").tempfile_in(dir).map_err(|e| FsError::new("creating a temp file in", dir, e))?;
    temp.write_all(bytes).map_err(|e| FsError::new("writing", temp.path(), e))?;
    persist(temp, path)
}

/// Flushes every file and directory written under `dir` to disk with one `syncfs(2)`
/// of its file system (Linux). Returns `false`, having done nothing, where the
/// platform has no `syncfs`: the caller then flushes file by file.
pub fn sync_filesystem(dir: &Path) -> Result<bool, FsError> {
    #[cfg(target_os = "linux")]
    {
        let handle = File::open(dir).map_err(|e| FsError::new("opening", dir, e))?;
        rustix::fs::syncfs(&handle).map_err(|e| FsError::new("syncing the file system of", dir, e.into()))?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Ok(false)
    }
}

/// Whether `a` and `b` are on the same file system (same device); `true` where that
/// cannot be told (not Unix, or either is missing), as for one data dir.
pub fn same_file_system(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// Writes each `(path, bytes)` atomically and durably, as [`write_atomic`] does, with
/// the barriers shared: every temp file is written, then all are flushed together
/// (one `syncfs(2)` on Linux, an `fsync` each elsewhere), renamed into place in order,
/// and each distinct directory is synced once. Every file is flushed before its rename,
/// so none is ever torn; two barriers on Linux whatever the number of files (one
/// directory). On an error before the renames nothing is replaced; after, a prefix.
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> Result<(), FsError> {
    let temps = write_temps(files.iter())?;
    let Some(first) = temps.first() else { return Ok(()) };
    let first_dir = parent_dir(first.path());
    let flushed_file_system =
        files.iter().all(|(path, _)| same_file_system(parent_dir(path), first_dir)) && sync_filesystem(first_dir)?;
    if !flushed_file_system {
        for temp in &temps {
            temp.as_file().sync_all().map_err(|e| FsError::new("syncing", temp.path(), e))?;
        }
    }
    persist_all(temps, files)
}

/// Each `(path, bytes)` written into a temp file of its directory, unflushed.
fn write_temps<'a>(
    files: impl Iterator<Item = &'a (&'a Path, &'a [u8])>,
) -> Result<Vec<tempfile::NamedTempFile>, FsError> {
    files
        .map(|(path, bytes)| {
            let dir = parent_dir(path);
            let mut temp = temp_builder(".trellis-tmp-")
                .tempfile_in(dir)
                .map_err(|e| FsError::new("creating a temp file in", dir, e))?;
            temp.write_all(bytes).map_err(|e| FsError::new("writing", temp.path(), e))?;
            Ok(temp)
        })
        .collect()
}

/// Renames each flushed temp file of `temps` into place as its path in `files`, in
/// order, then syncs each distinct directory once.
fn persist_all(temps: Vec<tempfile::NamedTempFile>, files: &[(&Path, &[u8])]) -> Result<(), FsError> {
    let mut dirs: Vec<&Path> = Vec::new();
    for (temp, (path, _)) in temps.into_iter().zip(files) {
        persist(temp, path)?;
        let dir = parent_dir(path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.into_iter().try_for_each(sync_dir)
}

/// Writes `files`, then `commit` (the file whose rename is the commit point, such as
/// the state file), each atomically and durably with shared barriers, and makes durable
/// with them everything written unflushed before under `commit`'s file system: every
/// temp file is written, then one `syncfs(2)` of `commit`'s file system flushes them
/// and the earlier unflushed writes (a temp on another file system is flushed on its
/// own; where there is no `syncfs`, each temp is flushed); then `files` are renamed
/// into place and their directories synced, and only then `commit` is renamed and its
/// directory synced. So once `commit` is durable, so are `files`; none is ever torn.
/// Three barriers on Linux when `files` share one directory (two without `files`).
/// On an error before the renames nothing is replaced.
pub fn write_atomic_committing(files: &[(&Path, &[u8])], commit: (&Path, &[u8])) -> Result<(), FsError> {
    let mut temps = write_temps(files.iter().chain([&commit]))?;
    let commit_dir = parent_dir(commit.0);
    let flushed_file_system = sync_filesystem(commit_dir)?;
    for (temp, (path, _)) in temps.iter().zip(files.iter().chain([&commit])) {
        if !(flushed_file_system && same_file_system(parent_dir(path), commit_dir)) {
            temp.as_file().sync_all().map_err(|e| FsError::new("syncing", temp.path(), e))?;
        }
    }
    let commit_temp = temps.pop().expect("the commit file's temp file");
    persist_all(temps, files)?;
    persist(commit_temp, commit.0)?;
    sync_dir(commit_dir)
}

/// A temp-file builder for files that will be renamed into place: on Unix they get
/// mode 0644 like any file a user creates, not tempfile's private 0600.
pub fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    builder
}

/// Marks `file` executable (`0o755`) on Unix when `executable`, as a package entry's
/// Unix mode asks; a no-op elsewhere.
pub fn set_executable(file: &File, executable: bool) -> io::Result<()> {
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o755))?;
    }
    #[cfg(not(unix))]
    let _ = (file, executable);
    Ok(())
}

/// Waits between attempts to delete files another process still holds (about 3 s in
/// all): a plugin process the host just stopped releases its files (and, on Windows,
/// its executable image) shortly after it exits, and a virus scanner or search indexer
/// holds a new file for a moment.
pub(crate) const IN_USE_BACKOFF: [std::time::Duration; 6] = {
    use std::time::Duration;
    [
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_millis(400),
        Duration::from_millis(800),
        Duration::from_millis(1600),
    ]
};

/// Whether `error` means another process holds the file open. Windows refuses to
/// delete or rename a file in use (`ERROR_SHARING_VIOLATION`, `ERROR_LOCK_VIOLATION`,
/// and `ERROR_ACCESS_DENIED` for a file with a pending delete or a running image);
/// `ERROR_DIR_NOT_EMPTY` follows when a file inside was only marked for deletion.
/// Unix deletes files in use, so nothing there is retried.
pub(crate) fn file_in_use(error: &io::Error) -> bool {
    if cfg!(windows) { matches!(error.raw_os_error(), Some(5 | 32 | 33 | 145)) } else { false }
}

/// Runs `op`, again after each delay of `backoff` while it fails with an error
/// `transient` accepts; the last error when every attempt failed.
pub(crate) fn retry_while_in_use<T>(
    transient: impl Fn(&io::Error) -> bool,
    backoff: &[std::time::Duration],
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut delays = backoff.iter();
    loop {
        match op() {
            Err(error) if transient(&error) => match delays.next() {
                Some(delay) => std::thread::sleep(*delay),
                None => return Err(error),
            },
            result => return result,
        }
    }
}

/// Flushes a directory's entries (a rename inside it) to disk. A no-op where the
/// platform cannot open directories (Windows).
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| FsError::new("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates `dir` and its parents.
pub fn create_dir_all(dir: &Path) -> Result<(), FsError> {
    fs::create_dir_all(dir).map_err(|e| FsError::new("creating directory", dir, e))
}

/// An exclusively locked file; the lock is released when this is dropped.
#[derive(Debug)]
pub struct LockedFile {
    file: File,
    path: PathBuf,
}

impl LockedFile {
    /// Takes the lock on `path` (creating the file), waiting for other holders.
    pub fn acquire(path: &Path) -> Result<Self, FsError> {
        let file = Self::open(path)?;
        file.lock().map_err(|e| FsError::new("locking", path, e))?;
        Ok(Self { file, path: path.to_owned() })
    }

    /// Takes the lock on `path` if nobody holds it; `Ok(None)` when somebody does.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, FsError> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file, path: path.to_owned() })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(FsError::new("locking", path, e)),
        }
    }

    fn open(path: &Path) -> Result<File, FsError> {
        create_dir_all(parent_dir(path))?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| FsError::new("opening lock file", path, e))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_file_in_use_is_retried_with_backoff_until_it_is_released() {
        use std::cell::Cell;
        use std::time::Duration;
        // Stands for Windows' ERROR_SHARING_VIOLATION: the file is released after 3 tries.
        let in_use = |e: &io::Error| e.raw_os_error() == Some(32);
        let tries = Cell::new(0);
        let backoff = [Duration::from_millis(1); 4];
        let result = retry_while_in_use(in_use, &backoff, || {
            tries.set(tries.get() + 1);
            if tries.get() < 3 { Err(io::Error::from_raw_os_error(32)) } else { Ok("deleted") }
        });
        assert_eq!(result.unwrap(), "deleted");
        assert_eq!(tries.get(), 3);

        // Still held after every delay: the last error, after 1 + 4 attempts.
        tries.set(0);
        let result: io::Result<()> = retry_while_in_use(in_use, &backoff, || {
            tries.set(tries.get() + 1);
            Err(io::Error::from_raw_os_error(32))
        });
        assert_eq!(result.unwrap_err().raw_os_error(), Some(32));
        assert_eq!(tries.get(), 5);

        // Any other error is not retried.
        tries.set(0);
        let result: io::Result<()> = retry_while_in_use(in_use, &backoff, || {
            tries.set(tries.get() + 1);
            Err(io::Error::from(io::ErrorKind::NotFound))
        });
        assert!(result.is_err());
        assert_eq!(tries.get(), 1);
        // Unix deletes files in use: nothing is treated as in use there.
        assert_eq!(file_in_use(&io::Error::from_raw_os_error(32)), cfg!(windows));
    }

    #[test]
    fn the_batched_writers_replace_content_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("record.json"), dir.path().join("release.dsse"));
        replace_unsynced(&a, b"old").unwrap();
        replace_unsynced(&b, b"old").unwrap();
        // Every combination of barriers replaces the content the same way.
        for (flush, rename) in [
            (Flush::File, Rename::Durable),
            (Flush::File, Rename::Lazy),
            (Flush::FileSystem, Rename::Durable),
            (Flush::FileSystem, Rename::Lazy),
        ] {
            let content = format!("{flush:?} {rename:?}");
            write_atomic_before_flush(&b, content.as_bytes()).unwrap();
            write_atomic_flushing(&a, content.as_bytes(), flush, rename).unwrap();
            assert_eq!(fs::read(&a).unwrap(), content.as_bytes());
            assert_eq!(fs::read(&b).unwrap(), content.as_bytes());
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        assert!(same_file_system(dir.path(), &a));
        assert!(same_file_system(dir.path(), &dir.path().join("absent")), "unknown counts as the same");
        #[cfg(target_os = "linux")]
        {
            assert!(sync_filesystem(dir.path()).unwrap());
            assert!(sync_filesystem(&dir.path().join("absent")).is_err());
        }
    }

    #[test]
    fn write_atomic_all_replaces_every_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("pins");
        fs::create_dir(&sub).unwrap();
        let (a, b, c) = (sub.join("a.json"), sub.join("b.json"), dir.path().join("c.json"));
        write_atomic(&a, b"old").unwrap();
        write_atomic_all(&[(&a, b"new a"), (&b, b"new b"), (&c, b"new c")]).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert_eq!(fs::read(&c).unwrap(), b"new c");
        assert_eq!((fs::read_dir(&sub).unwrap().count(), fs::read_dir(dir.path()).unwrap().count()), (2, 2));
        write_atomic_all(&[]).unwrap();
        // A directory that is missing: nothing is replaced, no temp file is left.
        let err = write_atomic_all(&[(&a, b"newer"), (&dir.path().join("absent/x.json"), b"x")]).unwrap_err();
        assert_eq!(err.action, "creating a temp file in", "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 2);
    }

    #[test]
    fn write_atomic_committing_replaces_the_files_and_the_commit_file_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pins = dir.path().join("pins");
        fs::create_dir(&pins).unwrap();
        let (a, b, state) = (pins.join("a.json"), pins.join("b.json"), dir.path().join("state.json"));
        write_atomic(&a, b"old a").unwrap();
        write_atomic(&state, b"old state").unwrap();
        write_atomic_committing(&[(&a, b"new a"), (&b, b"new b")], (&state, b"new state")).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap(), fs::read(&state).unwrap()),
            (b"new a".to_vec(), b"new b".to_vec(), b"new state".to_vec())
        );
        // Only the files themselves: no temp file is left in either directory.
        assert_eq!((fs::read_dir(&pins).unwrap().count(), fs::read_dir(dir.path()).unwrap().count()), (2, 2));
        // Without files it is the commit file's atomic write.
        write_atomic_committing(&[], (&state, b"newer state")).unwrap();
        assert_eq!(fs::read(&state).unwrap(), b"newer state");
        // A file whose directory is missing: neither it, the others nor the commit file
        // is replaced, and no temp file is left.
        let missing = dir.path().join("absent/x.json");
        let err =
            write_atomic_committing(&[(&a, b"newest a"), (&missing, b"x")], (&state, b"newest state")).unwrap_err();
        assert_eq!(err.action, "creating a temp file in", "{err}");
        assert_eq!((fs::read(&a).unwrap(), fs::read(&state).unwrap()), (b"new a".to_vec(), b"newer state".to_vec()));
        assert_eq!((fs::read_dir(&pins).unwrap().count(), fs::read_dir(dir.path()).unwrap().count()), (2, 2));
    }

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[test]
    fn failed_write_keeps_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_refused_rename_names_the_destination_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go: the rename fails at once
        // (nothing there is "in use"), the temp file is removed, the directory kept.
        let path = dir.path().join("state.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();
        for result in [write_atomic(&path, b"new"), replace_unsynced(&path, b"new")] {
            let err = result.unwrap_err();
            assert_eq!((err.action, err.path.as_path()), ("renaming into place", path.as_path()), "{err}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(fs::read(path.join("keep")).unwrap(), b"x");
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = LockedFile::acquire(&path).unwrap();
        assert!(LockedFile::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(LockedFile::try_acquire(&path).unwrap().is_some());
    }
}
