//! Deltas: the parser (`trellis_schema::delta`), the bounded patcher and the applier
//! (`trellis_client::delta`).
//!
//! The first byte chooses the mode (its value modulo 3):
//!
//! | mode | the rest is |
//! |---|---|
//! | 0 | a delta blob, parsed (`DeltaBlob::parse`, default limits) |
//! | 1 | a delta blob, applied to the fixture's installed `acme.clock 1.0.0` for `1.1.0` |
//! | 2 | `size: u16 LE`, `old length: u16 LE`, the old file, then a bsdiff patch (`bspatch`) |
//!
//! Properties: nothing panics; a parsed delta's ranges tile its data section, every
//! path passes the name policy, and `encode` of its header and data parses back to the
//! same header and data; an applied delta yields exactly the signed files of 1.1.0
//! (sizes and SHA-256 of the signed manifest) plus the content manifest,
//! inside its staging directory, and a refused one leaves nothing behind; the installed
//! base is never modified; a patch produces exactly `size` bytes or an error.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use trellis_client::delta::{self as apply, Base, Target};
use trellis_schema::delta::{self as format, DeltaBlob, DeltaLimits};
use trellis_schema::digest::Sha256;
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::path::PackagePath;

use crate::fixture;

/// The target body.
pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    match first % 3 {
        0 => parse(rest),
        1 => apply_to_fixture(rest),
        _ => patch(rest),
    }
}

fn parse(bytes: &[u8]) {
    let Ok(blob) = DeltaBlob::parse(bytes, &DeltaLimits::default()) else { return };
    let mut data = Vec::new();
    let mut end = 0u64;
    for file in &blob.header.files {
        assert!(PackagePath::new(&file.path).is_ok(), "parsed a delta with path {:?}", file.path);
        if let Some(source) = file.op.source() {
            assert!(PackagePath::new(source).is_ok(), "parsed a delta with source {source:?}");
        }
        if let Some(range) = file.op.data() {
            assert_eq!(range.offset, end, "ranges do not tile the data section");
            end = range.offset + range.length;
            data.extend_from_slice(blob.data(range));
        }
    }
    assert_eq!(end, blob.data_len(), "ranges do not cover the data section");
    let encoded = format::encode(&blob.header, &data).expect("a parsed header encodes");
    let again = match DeltaBlob::parse(&encoded, &DeltaLimits::default()) {
        Ok(again) => again,
        Err(e) => panic!("an encoded delta does not parse back: {e}"),
    };
    assert_eq!(again.header, blob.header, "a delta header changed in an encode/parse round trip");
    assert_eq!(again.data_len(), blob.data_len());
}

/// The installed base release and the manifests, made once.
struct Installed {
    _dir: tempfile::TempDir,
    base_dir: PathBuf,
    base: ReleaseManifest,
    target: ReleaseManifest,
    staging_parent: PathBuf,
}

#[allow(clippy::expect_used)]
fn installed() -> &'static Installed {
    static CELL: OnceLock<Installed> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let base_dir = dir.path().join("plugins/acme.clock/1.0.0");
        for (path, bytes, _) in fixture::base_files() {
            let full = base_dir.join(path);
            fs::create_dir_all(full.parent().expect("a file has a parent")).expect("creating the base");
            fs::write(&full, bytes).expect("writing the base");
        }
        let staging_parent = dir.path().join("staging");
        fs::create_dir_all(&staging_parent).expect("creating the staging parent");
        Installed {
            base_dir,
            staging_parent,
            base: fixture::base_manifest(),
            target: fixture::target_manifest(),
            _dir: dir,
        }
    })
}

fn apply_to_fixture(bytes: &[u8]) {
    let fixture = installed();
    let base = Base {
        dir: &fixture.base_dir,
        manifest: &fixture.base,
        manifest_sha256: Sha256::of(&fixture::manifest_payload(&fixture.base)),
    };
    let target =
        Target { manifest: &fixture.target, manifest_sha256: Sha256::of(&fixture::manifest_payload(&fixture.target)) };
    let result = apply::apply(bytes, base, target, &fixture.staging_parent, &DeltaLimits::default());
    match result {
        Err(_) => {
            let left = fs::read_dir(&fixture.staging_parent).map(|d| d.count()).unwrap_or(0);
            assert_eq!(left, 0, "a refused delta left files in the staging directory");
        }
        Ok(staged) => {
            check_staged(staged.path(), &fixture.target);
            drop(staged);
        }
    }
    for (path, bytes, _) in fixture::base_files() {
        let now = fs::read(fixture.base_dir.join(path)).unwrap_or_default();
        assert!(now == bytes, "applying a delta changed the installed {path}");
    }
}

fn check_staged(dir: &Path, target: &ReleaseManifest) {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).expect("a staged file has metadata");
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            assert!(meta.is_file(), "a delta staged a special file {path:?}");
            let relative = path.strip_prefix(dir).expect("staged inside the staging directory");
            let name = relative.to_string_lossy().replace('\\', "/");
            let bytes = fs::read(&path).expect("a staged file reads");
            found.push((name, bytes.len() as u64, Sha256::of(&bytes)));
        }
    }
    found.sort();
    let mut expected: Vec<(String, u64, Sha256)> =
        target.files.iter().map(|f| (f.path.clone(), f.size, f.sha256)).collect();
    let content = found.iter().position(|(name, _, _)| name == fixture::CONTENT_MANIFEST);
    assert!(content.is_some(), "an applied delta staged no content manifest");
    if let Some(at) = content {
        found.remove(at);
    }
    expected.sort();
    assert_eq!(found, expected, "an applied delta staged other files than the signed release's");
}

fn patch(bytes: &[u8]) {
    if bytes.len() < 4 {
        return;
    }
    let size = u64::from(u16::from_le_bytes([bytes[0], bytes[1]]));
    let old_len = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
    let rest = &bytes[4..];
    let Some(old) = rest.get(..old_len) else { return };
    let mut patch = &rest[old_len..];
    if let Ok(out) = apply::bspatch(old, &mut patch, size) {
        assert_eq!(out.len() as u64, size, "bspatch produced {} bytes, not the {size} asked", out.len());
    }
}
