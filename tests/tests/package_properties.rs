//! Property tests of package extraction: it never panics, a refusal leaves nothing
//! behind, and well-formed packages of arbitrary trees round-trip exactly.

#![allow(clippy::unwrap_used)] // test helpers: a failure to set up the fixture is a test failure

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use trellis_client::package::{Durability, Limits, Package};
use trellis_schema::manifest::CONTENT_MANIFEST_PATH;
use trellis_schema::path::{NameSet, PackagePath};
use trellis_tests::hostile::{self, Method, release_for};

/// Every file under `dir`, by `/`-separated relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_str().unwrap().replace('\\', "/");
                out.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Opens `bytes` both ways and extracts; on refusal, nothing may be left in `parent`.
fn open_and_extract_or_leave_nothing(bytes: &[u8]) {
    let parent = tempfile::tempdir().unwrap();
    let destination = parent.path().join("out");
    let limits = Limits::default();
    let _ = Package::from_bytes_unsigned(bytes.to_vec(), &limits).and_then(|p| p.verify());
    let files = [("plugin.json", b"{}".as_slice())];
    let result = Package::from_bytes(bytes.to_vec(), &release_for(bytes, &files), &limits)
        .and_then(|p| p.extract_with(&destination, Durability::Unflushed));
    if result.is_err() {
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0, "a refused package left files behind");
    }
}

/// Arbitrary portable trees: up to 12 files, paths of 1-3 segments, no collisions.
fn trees() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let segment = "[a-zA-Z0-9_-]{1,8}(\\.[a-z]{1,3})?";
    let path = proptest::collection::vec(segment, 1..4).prop_map(|s| s.join("/"));
    let content = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (any::<u8>(), 0..20_000usize).prop_map(|(b, n)| vec![b; n]),
    ];
    proptest::collection::vec((path, content), 1..12).prop_map(|files| {
        let mut names = NameSet::new();
        let mut tree = BTreeMap::new();
        for (path, content) in files {
            let Ok(checked) = PackagePath::new(&path) else { continue };
            if path != CONTENT_MANIFEST_PATH && names.insert_file(&checked).is_ok() {
                tree.insert(path, content);
            }
        }
        tree
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn extraction_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        open_and_extract_or_leave_nothing(&bytes);
    }

    #[test]
    fn extraction_never_panics_on_mutated_packages(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let files = hostile::standard_files();
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect();
        let mut bytes = hostile::package(&files, &files).to_bytes();
        for (index, value) in mutations {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        open_and_extract_or_leave_nothing(&bytes);
    }

    #[test]
    fn well_formed_packages_round_trip(tree in trees(), stored in any::<bool>(), zip_crate in any::<bool>()) {
        let files: Vec<(&str, &[u8])> = tree.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect();
        let bytes = if zip_crate {
            use std::io::Write as _;
            let method = if stored { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (path, content) in files.iter().copied().chain([(CONTENT_MANIFEST_PATH, hostile::manifest_json(&files).as_slice())]) {
                writer.start_file(path, options).unwrap();
                writer.write_all(content).unwrap();
            }
            writer.finish().unwrap().into_inner()
        } else {
            let mut zip = hostile::package(&files, &files);
            if stored {
                for entry in &mut zip.entries {
                    entry.method = Method::Stored;
                }
            }
            zip.to_bytes()
        };
        let parent = tempfile::tempdir().unwrap();
        let destination = parent.path().join("out");
        let package = Package::from_bytes(bytes.clone(), &release_for(&bytes, &files), &Limits::default()).unwrap();
        package.extract_with(&destination, Durability::Unflushed).unwrap();
        let mut extracted = read_tree(&destination);
        let manifest = extracted.remove(CONTENT_MANIFEST_PATH).unwrap();
        prop_assert_eq!(manifest, hostile::manifest_json(&files));
        prop_assert_eq!(extracted, tree);
        prop_assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 1);
    }
}
