//! Writing the storefront's files into the site: each file as it is rendered, none
//! visible before every file of the batch was rendered and written.
//!
//! Owns the staging directory (`.storefront-staging/`), deciding where each file of a
//! batch goes, the one durability barrier and moving the staged files into place.
//! Rendering is [`super::render`]'s; which files a build writes is [`super::publish`]'s.
//!
//! A [`Writer`] is planned from the paths of every file its batch may write (known
//! before anything is rendered), so each file can be written the moment its page is
//! rendered and dropped: memory holds the pages being rendered, not the site. Where a
//! file goes:
//!
//! - a directory the site does not have yet (all of them on a fresh site, a new
//!   plugin's on an incremental one): straight into the staging directory under the
//!   highest missing ancestor (a root), with no temp file, rename or comparison, the
//!   root renamed into place whole after the barrier;
//! - a directory the site has: compared with the file there (same bytes: nothing
//!   written) and otherwise written under `.storefront-staging/.replace/`, renamed over
//!   the site's file only once every file of the batch is written ([`Writer::finish`]).
//!
//! So a build stopped or refused while rendering (an operator template failing on one
//! plugin) leaves the site as it was and its leftovers in the staging directory, which
//! the next build clears first ([`clear_staging`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use trellis_client::fs::FsError;

/// Where new directories and replacements are written before they move into place.
pub(super) const STAGING_DIR: &str = ".storefront-staging";

/// The subdirectory of [`STAGING_DIR`] holding replacements of existing files (a name
/// no site directory has: the site's top-level names never start with a dot).
const REPLACE_DIR: &str = ".replace";

/// Above this many files, one `syncfs` of the whole file system beats a flush each
/// (on a shared disk `syncfs` also waits for other writers' dirty pages: ~1-3 s
/// measured under load, while a one-release build writes under ten files).
const SYNCFS_FROM: usize = 256;

/// One file [`Writer::write`] wrote.
#[derive(Debug)]
pub(super) struct Written {
    /// Its path in the site.
    path: String,
    /// Where it is until [`Writer::finish`].
    at: PathBuf,
    /// Whether it replaces (or adds) a file in a directory the site has: renamed there
    /// by [`Writer::finish`]. Otherwise it moves with its staged root.
    replaces: bool,
}

/// A batch of files written into the site as they come (see the module doc).
#[derive(Debug)]
pub(super) struct Writer {
    site_dir: PathBuf,
    staging: PathBuf,
    /// Directories (relative to the site) the site lacks: their files are staged.
    staged_dirs: HashSet<PathBuf>,
    /// The highest missing ancestor of each staged directory, relative to the site.
    roots: BTreeSet<String>,
    /// Names the next replacement file.
    next: AtomicUsize,
    /// Whether the files written were made durable where they are ([`Writer::flush`]).
    flushed: bool,
}

impl Writer {
    /// Plans a batch that writes at most the files `paths` (relative to `site_dir`):
    /// creates, in the staging directory, each directory the site lacks.
    pub(super) fn plan<'p>(site_dir: &Path, paths: impl IntoIterator<Item = &'p str>) -> Result<Self, FsError> {
        let staging = site_dir.join(STAGING_DIR);
        // Each directory once (a page per directory is the common case: one look-up
        // each instead of a `mkdir` per file).
        let dirs: BTreeSet<&Path> = paths
            .into_iter()
            .filter_map(|path| Path::new(path).parent())
            .filter(|dir| !dir.as_os_str().is_empty())
            .collect();
        let missing: Vec<&Path> = dirs.into_par_iter().filter(|dir| !site_dir.join(dir).is_dir()).collect();
        // The root of each missing directory: its highest ancestor the site lacks.
        let mut exists: HashMap<&Path, bool> = HashMap::new();
        let mut roots = BTreeSet::new();
        for dir in &missing {
            let mut ancestors: Vec<&Path> = dir.ancestors().filter(|a| !a.as_os_str().is_empty()).collect();
            ancestors.reverse();
            let root = ancestors
                .into_iter()
                .find(|a| !*exists.entry(a).or_insert_with(|| site_dir.join(a).is_dir()))
                .unwrap_or(dir);
            roots.insert(root.to_string_lossy().into_owned());
        }
        missing.par_iter().try_for_each(|dir| trellis_client::fs::create_dir_all(&staging.join(dir)))?;
        trellis_client::fs::create_dir_all(&staging.join(REPLACE_DIR))?;
        Ok(Self {
            site_dir: site_dir.to_owned(),
            staging,
            staged_dirs: missing.into_iter().map(Path::to_owned).collect(),
            roots,
            next: AtomicUsize::new(0),
            flushed: false,
        })
    }

    /// Writes `bytes` as the site's `path` (one of the planned paths) unless the site
    /// has exactly these bytes there; nothing a reader of the site sees changes before
    /// [`Writer::finish`]. Safe to call from many threads.
    pub(super) fn write(&self, path: &str, bytes: &[u8]) -> Result<Option<Written>, FsError> {
        let dir = Path::new(path).parent().unwrap_or(Path::new(""));
        if self.staged_dirs.contains(dir) {
            let at = self.staging.join(path);
            std::fs::write(&at, bytes).map_err(|e| FsError::new("writing", &at, e))?;
            return Ok(Some(Written { path: path.to_owned(), at, replaces: false }));
        }
        let full = self.site_dir.join(path);
        let same_length = std::fs::metadata(&full).is_ok_and(|m| m.len() == bytes.len() as u64);
        if same_length && std::fs::read(&full).is_ok_and(|existing| existing == bytes) {
            return Ok(None);
        }
        let at = self.staging.join(REPLACE_DIR).join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::write(&at, bytes).map_err(|e| FsError::new("writing", &at, e))?;
        Ok(Some(Written { path: path.to_owned(), at, replaces: true }))
    }

    /// Makes `written` (every file of the batch) durable where it was written, before
    /// anything moves: the files' bytes and the staging directories' entries. Nothing
    /// becomes visible; [`Writer::finish`] then renames and flushes only the
    /// directories the renames and removals change. For a batch that must wait before
    /// it is shown (the storefront waits for the build), the flushes are done while
    /// waiting.
    pub(super) fn flush(&mut self, written: &[Written]) -> Result<(), FsError> {
        let at: Vec<&Path> = written.iter().map(|w| w.at.as_path()).collect();
        make_durable(&self.site_dir, &at, &[])?;
        self.flushed = true;
        Ok(())
    }

    /// Once every file of the batch is written (`written`): renames the replacements
    /// into place (unflushed), makes them, the staged directories and the `removed`
    /// files durable with one barrier (after [`Writer::flush`], the directories the
    /// renames and removals changed only), then moves the staged roots into place
    /// (those under a directory of `first` before the others: images before the pages
    /// naming them) and flushes the directories that gained them. Returns the paths
    /// written, sorted.
    pub(super) fn finish(
        self,
        written: Vec<Written>,
        removed: &[String],
        first: &[&str],
    ) -> Result<Vec<String>, FsError> {
        let (replaced, staged): (Vec<Written>, Vec<Written>) = written.into_iter().partition(|w| w.replaces);
        let replaced: Vec<(String, PathBuf)> = replaced
            .into_par_iter()
            .map(|w| {
                let to = self.site_dir.join(&w.path);
                std::fs::rename(&w.at, &to).map_err(|e| FsError::new("renaming into place", &to, e))?;
                Ok((w.path, to))
            })
            .collect::<Result<_, FsError>>()?;
        if self.flushed {
            let renamed: Vec<&Path> = replaced.iter().map(|(_, at)| at.as_path()).collect();
            if renamed.len() < SYNCFS_FROM || !trellis_client::fs::sync_filesystem(&self.site_dir)? {
                sync_dirs(&self.site_dir, &renamed, removed)?;
            }
        } else {
            let flush: Vec<&Path> =
                replaced.iter().map(|(_, at)| at.as_path()).chain(staged.iter().map(|w| w.at.as_path())).collect();
            make_durable(&self.site_dir, &flush, removed)?;
        }
        let (early, late): (Vec<&String>, Vec<&String>) =
            self.roots.iter().partition(|root| first.iter().any(|f| Path::new(root.as_str()).starts_with(f)));
        promote(&self.site_dir, &self.staging, early.into_iter().chain(late))?;
        let mut paths: Vec<String> =
            replaced.into_iter().map(|(path, _)| path).chain(staged.into_iter().map(|w| w.path)).collect();
        paths.sort();
        Ok(paths)
    }
}

/// Renames the staged `roots` (made durable before) into place, in order, then
/// flushes the directories that gained them.
fn promote<'r>(site_dir: &Path, staging: &Path, roots: impl IntoIterator<Item = &'r String>) -> Result<(), FsError> {
    let mut parents = BTreeSet::new();
    for root in roots {
        let (from, to) = (staging.join(root), site_dir.join(root));
        std::fs::rename(&from, &to).map_err(|e| FsError::new("moving into place the staged directory", from, e))?;
        parents.extend(to.parent().map(Path::to_owned));
    }
    parents.par_iter().try_for_each(|d| trellis_client::fs::sync_dir(d))
}

/// Removes what a staging directory holds (left by a build that stopped or was
/// refused, or emptied by [`Writer::finish`]).
pub(super) fn clear_staging(site_dir: &Path) -> Result<(), FsError> {
    let staging = site_dir.join(STAGING_DIR);
    let removed = match std::fs::symlink_metadata(&staging) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&staging),
        Ok(_) => std::fs::remove_file(&staging),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    removed.map_err(|e| FsError::new("removing the staging directory", staging, e))
}

/// Makes the files just written (`written`, full paths) and removed durable before
/// anything names them: one `syncfs` of the site's file system on Linux for a large
/// batch, each file and directory otherwise.
fn make_durable(site_dir: &Path, written: &[&Path], removed: &[String]) -> Result<(), FsError> {
    if written.is_empty() && removed.is_empty() {
        return Ok(());
    }
    if written.len() >= SYNCFS_FROM && trellis_client::fs::sync_filesystem(site_dir)? {
        return Ok(());
    }
    written.par_iter().try_for_each(|path| {
        std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("syncing", path, e))
    })?;
    sync_dirs(site_dir, written, removed)
}

/// Flushes the directories holding `written` and those `removed` were removed from.
fn sync_dirs(site_dir: &Path, written: &[&Path], removed: &[String]) -> Result<(), FsError> {
    // A removed page's directory may have gone with it (left empty): the nearest
    // directory still there records both removals.
    let removed_from = removed.iter().filter_map(|p| {
        let mut dir = site_dir.join(p);
        dir.pop();
        while !dir.is_dir() {
            if !dir.pop() || !dir.starts_with(site_dir) {
                return None;
            }
        }
        Some(dir)
    });
    let dirs: BTreeSet<PathBuf> =
        written.iter().filter_map(|p| p.parent().map(Path::to_owned)).chain(removed_from).collect();
    dirs.par_iter().try_for_each(|d| trellis_client::fs::sync_dir(d))
}
