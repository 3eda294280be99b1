//! `pack` → extract round trip: whatever portable tree a developer packs, the client
//! extracts exactly that tree (plus the content manifest), byte for byte.

#![allow(clippy::unwrap_used)] // test helpers: a failure to set up the fixture is a test failure

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use trellis_client::package::{Durability, Limits, Package};
use trellis_index::pack::pack_dir;
use trellis_index::sign::release_manifest;
use trellis_schema::manifest::CONTENT_MANIFEST_PATH;
use trellis_schema::path::{NameSet, PackagePath};

fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let relative = e.path().strip_prefix(dir).unwrap().to_str().unwrap().replace('\\', "/");
            (relative, fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Extra files under `docs/` and `resources/extra/`, free of collisions with each
/// other and with the skeleton.
fn extras() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let segment = "[a-zA-Z0-9_-]{1,10}(\\.[a-z]{1,4})?";
    let path = (prop_oneof![Just("docs"), Just("resources/extra")], proptest::collection::vec(segment, 1..3))
        .prop_map(|(base, segments)| format!("{base}/{}", segments.join("/")));
    let content = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..4000),
        ("[a-z ]{1,40}", 1..500usize).prop_map(|(text, n)| text.repeat(n).into_bytes()),
    ];
    proptest::collection::vec((path, content), 0..10).prop_map(|files| {
        let mut names = NameSet::new();
        for skeleton in ["plugin.json", "LICENSE", "bin/any/main.sh", "resources/icon-16.png"] {
            names.insert_file(&PackagePath::new(skeleton).unwrap()).unwrap();
        }
        let mut tree = BTreeMap::new();
        for (path, content) in files {
            if let Ok(checked) = PackagePath::new(&path)
                && names.insert_file(&checked).is_ok()
            {
                tree.insert(path, content);
            }
        }
        tree
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn packed_trees_extract_to_the_same_tree(extra in extras()) {
        let work = tempfile::tempdir().unwrap();
        let source = work.path().join("src");
        trellis_tests::trees::write_skeleton(&source, "acme.roundtrip", "1.2.3").unwrap();
        for (path, content) in &extra {
            let target = source.join(path);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(target, content).unwrap();
        }
        let packed = pack_dir(&source, &work.path().join("out/acme.roundtrip-1.2.3.zip")).unwrap();
        let release = release_manifest(&packed.metadata, &packed.manifest, packed.digest);

        let package = Package::open(&packed.path, &release, &Limits::default()).unwrap();
        let destination = work.path().join("installed");
        package.extract_with(&destination, Durability::Unflushed).unwrap();

        let mut extracted = read_tree(&destination);
        let manifest = extracted.remove(CONTENT_MANIFEST_PATH).unwrap();
        prop_assert_eq!(manifest, trellis_index::pack::content_manifest_bytes(&packed.manifest));
        prop_assert_eq!(extracted, read_tree(&source));
    }
}
