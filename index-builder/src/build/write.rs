//! Writing a build's files: content-addressed files first, durable in batches.
//!
//! Owns putting bytes on disk: a temp file renamed into place for every new file (no
//! reader ever sees half a file), one durability barrier per batch (`syncfs` on
//! Linux) so metadata never names a file that is not on disk. The order of batches is
//! [`super::build`]'s.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
#[cfg(not(target_os = "linux"))]
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use trellis_client::fs::FsError;
use trellis_schema::digest::Hasher;

use super::Durability;
use super::documents::{Content, TargetOut};
use crate::site;

/// Writes one content-addressed file: a temp file in the same directory renamed into
/// place, without an fsync; [`make_durable`] makes the whole batch durable before any
/// metadata names it.
pub(super) fn write_content(path: &Path, content: &Content) -> Result<(), FsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = trellis_client::fs::temp_builder(".trellis-tmp-")
        .tempfile_in(dir)
        .map_err(|e| FsError::new("creating a temp file in", dir, e))?;
    let written = match content {
        Content::Bytes(bytes) => io::Write::write_all(temp.as_file_mut(), bytes),
        Content::Copy(from) => {
            std::fs::File::open(from).and_then(|mut input| io::copy(&mut input, temp.as_file_mut()).map(|_| ()))
        }
    };
    written.map_err(|e| FsError::new("writing", temp.path(), e))?;
    temp.persist(path).map_err(|e| FsError::new("renaming into place", path, e.error))?;
    Ok(())
}

/// Makes the files just written (paths relative to `site_dir`) durable: one
/// `syncfs` of the site's file system on Linux, each file and directory elsewhere.
pub(super) fn make_durable(site_dir: &Path, written: &[String], durability: Durability) -> Result<(), FsError> {
    if durability == Durability::OsBuffered || written.is_empty() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        let _ = written;
        let dir = std::fs::File::open(site_dir).map_err(|e| FsError::new("opening", site_dir, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| FsError::new("syncing the file system of", site_dir, e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    sync_each(site_dir, written)
}

/// Flushes each file written by this build, and its directory, to disk.
#[cfg(not(target_os = "linux"))]
fn sync_each(site_dir: &Path, written: &[String]) -> Result<(), FsError> {
    let dirs: BTreeSet<PathBuf> =
        written.iter().filter_map(|p| site_dir.join(p).parent().map(Path::to_owned)).collect();
    written.par_iter().try_for_each(|p| {
        let path = site_dir.join(p);
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("syncing", path, e))
    })?;
    dirs.par_iter().try_for_each(|d| trellis_client::fs::sync_dir(d))
}

/// Writes the content files the site does not hold yet; returns their site paths.
///
/// A file already at a target's content address is kept only when it holds that
/// target's bytes ([`holds`]): one edited in place, torn or rewritten by a mirror is
/// written again, so any build, full or incremental, serves the signed bytes again at
/// every address it writes.
pub(super) fn write_targets(site_dir: &Path, contents: &[TargetOut]) -> Result<Vec<String>, FsError> {
    let missing: Vec<(String, &Content)> = contents
        .par_iter()
        .filter_map(|t| {
            let content = t.content.as_ref()?;
            let relative = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(&t.target, &t.sha256));
            (!holds(&site_dir.join(&relative), t, content)).then_some((relative, content))
        })
        .collect();
    // Each directory once (a plugin's blobs share one), not a `mkdir` per file; in
    // parallel, as the files (a full build at 100k creates ~100k of them).
    let dirs: BTreeSet<&Path> = missing.iter().filter_map(|(relative, _)| Path::new(relative).parent()).collect();
    dirs.par_iter().try_for_each(|dir| trellis_client::fs::create_dir_all(&site_dir.join(dir)))?;
    missing.par_iter().try_for_each(|(relative, content)| write_content(&site_dir.join(relative), content))?;
    Ok(missing.into_iter().map(|(relative, _)| relative).collect())
}

/// Whether the file at `path` holds `target`'s bytes. The length decides most cases for
/// free; a file of the right length is compared: a document's bytes (metadata-sized,
/// in memory), a copied blob's SHA-256 (streamed; only a loaded release's blobs get
/// here, and the build has just read and hashed their source anyway). A file that
/// exists with other bytes is logged as it is replaced; one that cannot be read is
/// written again.
fn holds(path: &Path, target: &TargetOut, content: &Content) -> bool {
    let same = match std::fs::metadata(path) {
        Err(_) => return false,
        Ok(meta) if meta.len() != target.length => false,
        Ok(_) => match content {
            Content::Bytes(bytes) => std::fs::read(path).is_ok_and(|existing| *existing == **bytes),
            Content::Copy(_) => std::fs::File::open(path)
                .and_then(Hasher::read_all)
                .is_ok_and(|hasher| hasher.len() == target.length && hasher.finish() == target.sha256),
        },
    };
    if !same {
        tracing::warn!(
            path = %path.display(),
            target = %target.target,
            "replacing a published file whose bytes are not the ones its content address names"
        );
    }
    same
}

/// Writes the alias of each index doc in `documents` (`targets/index/alias/<shard>/<id>.json`,
/// see [`trellis_schema::target::index_alias_path`]) when it does not hold the doc's
/// bytes already; returns the site paths written. Each alias replaces the older one by
/// a rename (a reader sees the old or the new bytes, never half of them), without a
/// barrier: clients accept an alias only when it matches the doc hash a verified bin
/// lists, so a lost or torn alias only costs them the hashed path's round trip.
pub(super) fn write_aliases(site_dir: &Path, documents: &[TargetOut]) -> Result<Vec<String>, FsError> {
    let written: Vec<Option<String>> = documents
        .par_iter()
        .map(|t| {
            let Some(Content::Bytes(bytes)) = &t.content else { return Ok(None) };
            let Some(alias) = site::index_alias_of(&t.target) else { return Ok(None) };
            let relative = format!("{}/{alias}", site::TARGETS_DIR);
            let path = site_dir.join(&relative);
            if std::fs::read(&path).is_ok_and(|existing| *existing == **bytes) {
                return Ok(None);
            }
            if let Some(parent) = path.parent() {
                trellis_client::fs::create_dir_all(parent)?;
            }
            write_content(&path, &Content::Bytes(Arc::clone(bytes)))?;
            Ok(Some(relative))
        })
        .collect::<Result<_, FsError>>()?;
    Ok(written.into_iter().flatten().collect())
}
