//! A package opened from a file is read from that file, not from a copy in memory:
//! what happens when the file changes between the digest check at `open` and the
//! extraction, or was cut short to begin with. Every refusal leaves nothing behind.

#![allow(clippy::unwrap_used)] // test helpers: a failure to set up the fixture is a test failure

use std::fs;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use trellis_client::package::{Durability, Limits, Package, PackageError, SELECT_HEAD};
use trellis_schema::Sha256;
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};
use trellis_tests::hostile::{self, RawEntry, RawZip, release_for};

const DATA: &str = "bin/data.bin";

fn data() -> Vec<u8> {
    (0..65_536u32).map(|i| (i * 13 % 241) as u8).collect()
}

/// A package with `bin/data.bin` and the manifest stored (so their bytes sit in the
/// file as is), saved under a fresh directory.
struct Fixture {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    release: ReleaseManifest,
}

impl Fixture {
    fn new() -> Self {
        let files = [("plugin.json", br#"{"id":"acme.clock"}"#.to_vec()), (DATA, data())];
        let listed: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
        let zip = RawZip::new(vec![
            RawEntry::file(files[0].0, files[0].1.clone()),
            RawEntry::stored(DATA, data()),
            RawEntry::stored(CONTENT_MANIFEST_PATH, hostile::manifest_json(&listed)),
        ]);
        let bytes = zip.to_bytes();
        let release = release_for(&bytes, &listed);
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("plugins")).unwrap();
        fs::write(dir.path().join("package.zip"), &bytes).unwrap();
        Self { dir, bytes, release }
    }

    fn package(&self) -> PathBuf {
        self.dir.path().join("package.zip")
    }

    fn destination(&self) -> PathBuf {
        self.dir.path().join("plugins/acme.clock")
    }

    /// Where `content` starts in the package file.
    fn offset_of(&self, content: &[u8]) -> u64 {
        self.bytes.windows(content.len()).position(|w| w == content).unwrap() as u64
    }

    /// Overwrites bytes of the package file in place, as another process would.
    fn rewrite(&self, offset: u64, bytes: &[u8]) {
        let mut file = fs::OpenOptions::new().write(true).open(self.package()).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(bytes).unwrap();
        file.sync_all().unwrap();
    }

    /// Asserts that `plugins/` is still empty: no destination, no staging directory.
    fn assert_nothing_left(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path().join("plugins")).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// `content` with its last four bytes replaced so that its CRC-32 equals `target`.
fn with_crc(mut content: Vec<u8>, target: u32) -> Vec<u8> {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *entry = c;
    }
    let by_top_byte = |top: u32| table.iter().position(|t| t >> 24 == top).unwrap() as u32;
    let n = content.len() - 4;
    // Register after the prefix, and the register the four bytes must lead to.
    let mut register = !crc32fast::hash(&content[..n]);
    let mut wanted = !target;
    let mut indices = [0u32; 4];
    for i in (0..4).rev() {
        let index = by_top_byte(wanted >> 24);
        indices[i] = index;
        wanted = (wanted ^ table[index as usize]) << 8;
    }
    for (i, index) in indices.into_iter().enumerate() {
        content[n + i] = ((register ^ index) & 0xFF) as u8;
        register = (register >> 8) ^ table[index as usize];
    }
    assert_eq!(crc32fast::hash(&content), target, "CRC forging is broken");
    content
}

#[test]
fn an_entry_rewritten_after_open_is_refused_at_extraction_and_nothing_is_left() {
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let offset = fixture.offset_of(&data());
    fixture.rewrite(offset + 1000, b"not what the publisher signed");

    let error = package.extract(&fixture.destination()).unwrap_err();
    assert!(matches!(&error, PackageError::BadCrc { name, .. } if name == DATA), "{error:?}");
    fixture.assert_nothing_left();
}

#[test]
fn a_rewrite_that_keeps_the_crc_is_caught_by_the_signed_sha256() {
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let original = data();
    let mut forged = original.clone();
    forged[..12].copy_from_slice(b"evil payload");
    let forged = with_crc(forged, crc32fast::hash(&original));
    fixture.rewrite(fixture.offset_of(&original), &forged);

    let error = package.extract(&fixture.destination()).unwrap_err();
    match &error {
        PackageError::FileHashMismatch { name, expected, actual } => {
            assert_eq!(name, DATA);
            assert_eq!(*expected, Sha256::of(&original), "the signed digest");
            assert_eq!(*actual, Sha256::of(&forged), "the digest of the bytes read");
        }
        other => panic!("expected FileHashMismatch, got {other:?}"),
    }
    fixture.assert_nothing_left();
    // `verify` (lint, `read_small`) reads the same way and refuses the same way.
    assert!(matches!(package.verify(), Err(PackageError::FileHashMismatch { .. })));
}

#[test]
fn a_content_manifest_rewritten_after_open_is_caught_against_the_copy_that_was_checked() {
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let content = data();
    let listed = [("plugin.json", br#"{"id":"acme.clock"}"#.as_slice()), (DATA, content.as_slice())];
    let original = hostile::manifest_json(&listed);
    let mut forged = original.clone();
    forged[1..5].copy_from_slice(b"    ");
    let forged = with_crc(forged, crc32fast::hash(&original));
    fixture.rewrite(fixture.offset_of(&original), &forged);

    let error = package.extract(&fixture.destination()).unwrap_err();
    assert!(
        matches!(&error, PackageError::FileHashMismatch { name, .. } if name == CONTENT_MANIFEST_PATH),
        "{error:?}"
    );
    fixture.assert_nothing_left();
    assert!(matches!(package.read_small(CONTENT_MANIFEST_PATH), Err(PackageError::FileHashMismatch { .. })));
}

#[test]
fn a_package_file_truncated_after_open_is_refused_as_changed() {
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let file = fs::OpenOptions::new().write(true).open(fixture.package()).unwrap();
    file.set_len(fixture.offset_of(&data()) + 100).unwrap();

    let error = package.extract(&fixture.destination()).unwrap_err();
    assert!(matches!(&error, PackageError::Changed { path, .. } if path == &fixture.package()), "{error:?}");
    assert!(error.to_string().contains("changed while it was being read"), "{error}");
    fixture.assert_nothing_left();
}

#[test]
fn a_truncated_package_file_is_refused_when_opened() {
    let fixture = Fixture::new();
    let len = fixture.bytes.len() as u64;
    let entry_start = fixture.offset_of(&data());
    for cut in [len - 1, len - 22, len - 60, entry_start + 10, 30, 0] {
        let path = fixture.dir.path().join(format!("cut-{cut}.zip"));
        fs::write(&path, &fixture.bytes[..cut as usize]).unwrap();
        let signed = Package::open(&path, &fixture.release, &Limits::default()).unwrap_err();
        assert!(
            matches!(signed, PackageError::PackageSizeMismatch { expected, actual } if expected == len && actual == cut),
            "cut at {cut}: {signed:?}"
        );
        let unsigned = Package::open_unsigned(&path, &Limits::default()).unwrap_err();
        assert!(
            matches!(
                unsigned,
                PackageError::NoEndOfCentralDirectory { .. }
                    | PackageError::Truncated { .. }
                    | PackageError::BadCentralDirectory { .. }
                    | PackageError::UnaccountedBytes { .. }
                    | PackageError::PrependedData { .. }
            ),
            "cut at {cut}: {unsigned:?}"
        );
    }
    fixture.assert_nothing_left();
}

#[test]
fn a_central_directory_larger_than_its_memory_budget_is_refused() {
    // Three entries may have 3 KiB of directory; twenty long names need more.
    let files: Vec<(String, Vec<u8>)> =
        (0..20).map(|i| (format!("{}/{}/{i:02}.txt", "d".repeat(90), "e".repeat(50)), vec![b'x'; 10])).collect();
    let listed: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect();
    let bytes = hostile::package(&listed, &listed).to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("package.zip");
    fs::write(&path, &bytes).unwrap();

    let error =
        Package::open(&path, &release_for(&bytes, &listed), &Limits::default().with_max_entries(3)).unwrap_err();
    assert!(matches!(error, PackageError::DirectoryTooLarge { max: 3072, size } if size > 3072), "{error:?}");
    // Within the default budget the same package opens, from the file and from memory.
    let release = release_for(&bytes, &listed);
    assert_eq!(Package::open(&path, &release, &Limits::default()).unwrap().entries().len(), 21);
    assert_eq!(Package::from_bytes(bytes, &release, &Limits::default()).unwrap().entries().len(), 21);
}

#[cfg(unix)] // Windows refuses to rename over an open file.
#[test]
fn a_package_opened_from_a_file_holds_the_open_file_not_its_path() {
    // Replacing the file by rename after `open` changes nothing: the open handle still
    // reads the bytes that were hashed.
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let other = fixture.dir.path().join("other.zip");
    fs::write(&other, b"something else entirely").unwrap();
    fs::rename(&other, fixture.package()).unwrap();

    let extracted = package.extract(&fixture.destination()).unwrap();
    assert_eq!(extracted.files, 3);
    assert_eq!(fs::read(fixture.destination().join(DATA)).unwrap(), data());
    assert!(Path::new(&fixture.destination().join(CONTENT_MANIFEST_PATH)).is_file());
}

#[test]
fn a_selected_extraction_writes_only_the_chosen_files_and_shows_their_heads() {
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let select = |name: &str, head: &[u8]| {
        seen.borrow_mut().push((name.to_owned(), head.to_vec()));
        name == DATA
    };
    let destination = fixture.destination();
    package.extract_selected(&destination, Durability::Unflushed, &select).unwrap();
    assert_eq!(fs::read(destination.join(DATA)).unwrap(), data());
    assert!(!destination.join("plugin.json").exists());
    let seen = seen.into_inner();
    let head = |name: &str| seen.iter().find(|(n, _)| n == name).map(|(_, h)| h.clone()).unwrap();
    assert_eq!(head(DATA), data()[..SELECT_HEAD]);
    assert_eq!(head("plugin.json"), br#"{"id":"acme.clock"}"#);
}

#[test]
fn a_file_left_out_of_a_selected_extraction_is_still_checked() {
    let fixture = Fixture::new();
    let package = Package::open(&fixture.package(), &fixture.release, &Limits::default()).unwrap();
    let offset = fixture.offset_of(&data());
    fixture.rewrite(offset + 1000, b"not what the publisher signed");

    let error = package.extract_selected(&fixture.destination(), Durability::Unflushed, &|_, _| false).unwrap_err();
    assert!(matches!(&error, PackageError::BadCrc { name, .. } if name == DATA), "{error:?}");
    fixture.assert_nothing_left();
}
