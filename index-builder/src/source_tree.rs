//! A plugin source tree on disk, as `pack` and `lint` see it.
//!
//! Walks the tree in a stable order (sorted by path bytes), refusing what a package may
//! not hold: symlinks, special files, names outside the portable name policy, names that
//! differ only by case, non-UTF-8 names and the reserved content-manifest name. The
//! result is the list of regular files with their `/`-separated package paths.

use std::path::{Path, PathBuf};

use trellis_client::package::Limits;
use trellis_schema::manifest::CONTENT_MANIFEST_PATH;
use trellis_schema::path::{NameSet, PackagePath};
use trellis_schema::validate::Problem;

/// A regular file of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// Package path (`/`-separated, relative to the tree root).
    pub package_path: String,
    /// Where it is on disk.
    pub disk_path: PathBuf,
    /// Size in bytes when scanned.
    pub size: u64,
}

/// Files of a tree, and every problem that stops it from being packed.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// Regular files, sorted by package path.
    pub files: Vec<TreeFile>,
    /// Problems found; packing refuses a tree with any.
    pub problems: Vec<Problem>,
}

impl Scan {
    /// Problems with the sizes extraction enforces: per file, total, and entry count
    /// (the content manifest takes one entry).
    pub fn limit_problems(&self, limits: &Limits) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut total = 0u64;
        for file in &self.files {
            total = total.saturating_add(file.size);
            if file.size > limits.max_file_size {
                problems.push(Problem::error(
                    &file.package_path,
                    format!("{} bytes; a file may have at most {} bytes", file.size, limits.max_file_size),
                ));
            }
        }
        if self.files.len() + 1 > limits.max_entries {
            problems.push(Problem::error(
                ".",
                format!("{} files; a package may hold at most {}", self.files.len(), limits.max_entries - 1),
            ));
        }
        if total > limits.max_total_size {
            problems
                .push(Problem::error(".", format!("{total} bytes in all; at most {} allowed", limits.max_total_size)));
        }
        problems
    }
}

/// A tree that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("reading plugin source tree {}: {source}", path.display())]
pub struct ScanError {
    /// Where.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Scans the tree rooted at `root`.
pub fn scan(root: &Path) -> Result<Scan, ScanError> {
    let mut scan = Scan::default();
    let mut problem = |path: String, message: String| scan.problems.push(Problem::error(path, message));
    let mut files = Vec::new();
    let mut names = NameSet::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().min_depth(1);
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_owned();
            ScanError { path, source: e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed")) }
        })?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let Some(package_path) = package_path(relative) else {
            problem(relative.display().to_string(), "file name is not valid UTF-8".into());
            continue;
        };
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            problem(package_path, "symbolic links cannot be packaged; copy the file instead".into());
            continue;
        }
        if file_type.is_dir() {
            if let Err(why) = trellis_schema::path::check(&package_path) {
                problem(package_path, why.to_string());
            }
            continue;
        }
        if !file_type.is_file() {
            problem(package_path, "not a regular file (device, socket or pipe)".into());
            continue;
        }
        if package_path == CONTENT_MANIFEST_PATH {
            problem(package_path, "this name is reserved: pack writes the content manifest itself".into());
            continue;
        }
        let checked = match PackagePath::new(&package_path) {
            Ok(checked) => checked,
            Err(why) => {
                problem(package_path, why.to_string());
                continue;
            }
        };
        if let Err(why) = names.insert_file(&checked) {
            problem(package_path, why.to_string());
            continue;
        }
        let size = entry.metadata().map_err(|e| ScanError {
            path: entry.path().to_owned(),
            source: e.into_io_error().unwrap_or_else(|| std::io::Error::other("metadata unavailable")),
        })?;
        files.push(TreeFile { package_path, disk_path: entry.path().to_owned(), size: size.len() });
    }
    files.sort_by(|a, b| a.package_path.cmp(&b.package_path));
    scan.files = files;
    Ok(scan)
}

fn package_path(relative: &Path) -> Option<String> {
    let mut out = String::new();
    for component in relative.components() {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(component.as_os_str().to_str()?);
    }
    Some(out)
}
