//! The package reader (`trellis_client::package`): open, verify and extract into a
//! temporary directory with the default limits.
//!
//! The input is the package bytes, opened with `Package::from_bytes_unsigned` (checked
//! against its own content manifest, as `lint` opens a submission): a signed
//! manifest would pin the package's SHA-256 and refuse every mutation before the ZIP
//! parser runs.
//!
//! Properties: nothing panics; every entry of an opened package has a name the
//! portable policy accepts; an extraction that succeeds writes, inside the
//! destination only, exactly the files the content manifest lists (with their sizes
//! and SHA-256) plus `trellis-manifest.json`, regular files and directories only,
//! within the limits; a refused extraction leaves nothing behind; nothing is ever
//! written outside the destination.

use std::fs;
use std::path::{Path, PathBuf};

use trellis_client::package::{Durability, EntryKind, Limits, Package};
use trellis_schema::digest::Sha256;
use trellis_schema::manifest::CONTENT_MANIFEST_PATH;
use trellis_schema::path::PackagePath;

/// The target body.
pub fn run(data: &[u8]) {
    let limits = Limits::default();
    let Ok(package) = Package::from_bytes_unsigned(data.to_vec(), &limits) else { return };
    for entry in package.entries() {
        let name = entry.path.as_str();
        assert!(PackagePath::new(name).is_ok(), "opened a package with entry {name:?}");
    }
    let verified = package.verify();
    let Ok(parent) = tempfile::tempdir() else { return };
    let destination = parent.path().join("installed");
    let extracted = package.extract_with(&destination, Durability::Unflushed);
    let written = walk(parent.path());
    match extracted {
        Err(_) => assert!(written.is_empty(), "a refused extraction left {written:?} behind"),
        Ok(extracted) => {
            assert!(verified.is_ok(), "extraction succeeded where verify failed: {verified:?}");
            assert_eq!(extracted.destination, destination);
            check_tree(&package, &destination, &written, &limits);
        }
    }
}

/// Every path under `dir` (not following symlinks), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = fs::read_dir(&next) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

fn check_tree(package: &Package, destination: &Path, written: &[PathBuf], limits: &Limits) {
    let manifest = package.content_manifest();
    let mut expected: Vec<(String, u64, Sha256)> =
        manifest.files.iter().map(|f| (f.path.clone(), f.size, f.sha256)).collect();
    let mut files = Vec::new();
    let mut total = 0u64;
    for path in written {
        let relative = match path.strip_prefix(destination) {
            Ok(relative) => relative,
            Err(_) => panic!("extraction wrote {path:?} outside {destination:?}"),
        };
        let meta = fs::symlink_metadata(path).expect("a file just walked has metadata");
        assert!(meta.is_file() || meta.is_dir(), "extraction wrote a special file or symlink {path:?}");
        if meta.is_file() {
            assert!(meta.len() <= limits.max_file_size, "{path:?} is over the file size limit");
            total += meta.len();
            let bytes = fs::read(path).expect("a file just written reads");
            let name = relative.to_string_lossy().replace('\\', "/");
            files.push((name, bytes.len() as u64, Sha256::of(&bytes)));
        }
    }
    assert!(total <= limits.max_total_size, "extraction wrote {total} bytes, over the total limit");
    files.retain(|(name, _, _)| name != CONTENT_MANIFEST_PATH);
    files.sort();
    expected.sort();
    assert_eq!(files, expected, "extracted files differ from the content manifest");
    for entry in package.entries().iter().filter(|e| e.kind == EntryKind::Directory) {
        assert!(destination.join(entry.path.as_str()).is_dir(), "directory entry {} was not created", entry.path);
    }
}
