//! `pack`: determinism, the content manifest, and refusal of trees extraction would refuse.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use trellis_index::pack::{PackError, pack_dir};
use trellis_schema::digest::Sha256;
use trellis_schema::manifest::ContentManifest;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/plugins").join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn clock_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("src");
    copy_tree(&example("acme.clock-1.0.0"), &tree);
    (dir, tree)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn same_tree_gives_the_same_bytes_whatever_the_file_times_and_modes() {
    let (dir, tree) = clock_tree();
    let first = pack_dir(&tree, &dir.path().join("a.zip")).unwrap();
    // Another copy of the tree, with other timestamps and permissions.
    let other = dir.path().join("copy");
    std::thread::sleep(std::time::Duration::from_millis(20));
    copy_tree(&tree, &other);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(other.join("docs/README.md"), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let second = pack_dir(&other, &dir.path().join("b.zip")).unwrap();
    assert_eq!(first.digest, second.digest);
    assert_eq!(fs::read(dir.path().join("a.zip")).unwrap(), fs::read(dir.path().join("b.zip")).unwrap());
    assert_eq!(first.digest.sha256, Sha256::of(&fs::read(dir.path().join("a.zip")).unwrap()));
}

#[test]
fn content_manifest_lists_every_file_with_size_and_hash() {
    let (dir, tree) = clock_tree();
    let out = dir.path().join("clock.zip");
    let packed = pack_dir(&tree, &out).unwrap();
    let mut archive = zip::ZipArchive::new(fs::File::open(&out).unwrap()).unwrap();
    let names: Vec<String> =
        (0..archive.len()).map(|i| archive.by_index_raw(i).unwrap().name().unwrap().into_owned()).collect();
    assert_eq!(names.last().map(String::as_str), Some("trellis-manifest.json"));
    let inner: ContentManifest = serde_json::from_reader(archive.by_name("trellis-manifest.json").unwrap()).unwrap();
    assert_eq!(inner, packed.manifest);
    let listed: Vec<&str> = inner.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(listed, names[..names.len() - 1].iter().map(String::as_str).collect::<Vec<_>>());
    for file in &inner.files {
        let bytes = fs::read(tree.join(&file.path)).unwrap();
        assert_eq!((file.size, file.sha256), (bytes.len() as u64, Sha256::of(&bytes)), "{}", file.path);
    }
}

fn assert_refused(tree: &Path, out_dir: &Path, expect: &[&str]) {
    let out = out_dir.join("refused.zip");
    let before = dir_entries(out_dir);
    let err = pack_dir(tree, &out).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PackError::Problems { .. }), "{text}");
    for needle in expect {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
    assert_eq!(dir_entries(out_dir), before, "a refused tree must leave nothing behind");
}

#[test]
fn refuses_names_that_extraction_would_refuse_listing_them_all() {
    let (dir, tree) = clock_tree();
    fs::write(tree.join("docs/aux.json"), "{}").unwrap();
    fs::write(tree.join("docs/Readme.MD"), "dup").unwrap();
    fs::write(tree.join("docs/readme.md"), "dup").unwrap();
    fs::write(tree.join("docs/trailing."), "x").unwrap();
    fs::write(tree.join("trellis-manifest.json"), "{}").unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    assert_refused(
        &tree,
        &out_dir,
        &["docs/aux.json", "docs/trailing.", "docs/readme.md", "trellis-manifest.json: this name is reserved"],
    );
}

#[cfg(unix)]
#[test]
fn refuses_symlinks() {
    let (dir, tree) = clock_tree();
    std::os::unix::fs::symlink("/etc/passwd", tree.join("docs/passwd")).unwrap();
    assert_refused(&tree, dir.path(), &["docs/passwd: symbolic links cannot be packaged"]);
}

#[test]
fn refuses_invalid_metadata_and_missing_license_without_touching_an_existing_package() {
    let (dir, tree) = clock_tree();
    let out = dir.path().join("clock.zip");
    pack_dir(&tree, &out).unwrap();
    let good = fs::read(&out).unwrap();

    let mut meta: serde_json::Value = serde_json::from_slice(&fs::read(tree.join("plugin.json")).unwrap()).unwrap();
    meta["permissions"][0]["scope"] = "everything".into();
    meta["version"] = "one".into();
    fs::write(tree.join("plugin.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    let err = pack_dir(&tree, &out).unwrap_err().to_string();
    assert!(err.contains("plugin.json: permissions[0].scope: unknown scope \"everything\""), "{err}");
    assert!(err.contains("plugin.json: version: \"one\" is not a semantic version"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), good, "the previous package must be untouched");

    let (dir2, tree2) = clock_tree();
    fs::remove_file(tree2.join("LICENSE")).unwrap();
    assert_refused(&tree2, dir2.path(), &["LICENSE: the package has no license file"]);
}

#[test]
fn refuses_a_missing_source_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = pack_dir(&dir.path().join("nope"), &dir.path().join("x.zip")).unwrap_err();
    assert!(matches!(err, PackError::NotADirectory(_)), "{err}");
}

#[test]
fn refuses_trees_over_the_limits_the_client_enforces() {
    let (dir, tree) = clock_tree();
    let mut limits = trellis_client::package::Limits::default();
    limits.max_entries = 4;
    limits.max_file_size = 600;
    let out = dir.path().join("clock.zip");
    let err = trellis_index::pack::pack_dir_with_limits(&tree, &out, &limits).unwrap_err().to_string();
    assert!(err.contains("8 files; a package may hold at most 3"), "{err}");
    assert!(err.contains("LICENSE: 670 bytes") && err.contains("a file may have at most 600 bytes"), "{err}");
    assert!(!out.exists());
}

#[test]
fn stores_incompressible_files_and_deflates_the_rest() {
    let (dir, tree) = clock_tree();
    let mut random = vec![0u8; 300_000];
    trellis_tests::trees::Rng::new(3).fill(&mut random);
    fs::write(tree.join("bin/any/blob.bin"), &random).unwrap();
    fs::write(tree.join("docs/long.md"), "plugin store ".repeat(50_000)).unwrap();
    let out = dir.path().join("clock.zip");
    pack_dir(&tree, &out).unwrap();
    let mut archive = zip::ZipArchive::new(fs::File::open(&out).unwrap()).unwrap();
    let method = |archive: &mut zip::ZipArchive<fs::File>, name: &str| archive.by_name(name).unwrap().compression();
    assert_eq!(method(&mut archive, "bin/any/blob.bin"), zip::CompressionMethod::Stored);
    assert_eq!(method(&mut archive, "resources/icon-16.png"), zip::CompressionMethod::Stored);
    assert_eq!(method(&mut archive, "docs/long.md"), zip::CompressionMethod::Deflated);
    assert_eq!(method(&mut archive, "plugin.json"), zip::CompressionMethod::Deflated);
}
