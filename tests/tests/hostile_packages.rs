//! The adversarial corpus: every hostile package is refused with its own error, and
//! the directory it was to be extracted into is byte-for-byte unchanged afterwards,
//! with no staging directory left behind.

#![allow(clippy::unwrap_used)] // test helpers: a failure to set up the fixture is a test failure

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use trellis_client::package::{Limits, Package, PackageError};
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};
use trellis_schema::path::NameError;
use trellis_tests::hostile::{self, LocalOffset, Method, RawEntry, RawZip, local_record, release_for};

/// A data dir with an installed older version next to where the new one goes.
struct Site {
    root: tempfile::TempDir,
    downloads: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let installed = root.path().join("plugins/acme.clock/0.9.0");
        fs::create_dir_all(installed.join("bin")).unwrap();
        fs::write(installed.join("plugin.json"), b"{\"version\":\"0.9.0\"}").unwrap();
        fs::write(installed.join("bin/clock"), vec![7u8; 3000]).unwrap();
        fs::write(root.path().join("plugins/state.json"), b"{}").unwrap();
        Self { root, downloads: tempfile::tempdir().unwrap() }
    }

    fn destination(&self) -> PathBuf {
        self.root.path().join("plugins/acme.clock/1.0.0")
    }

    fn snapshot(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        snapshot_into(self.root.path(), self.root.path(), &mut out);
        out
    }

    fn save(&self, bytes: &[u8]) -> PathBuf {
        let path = self.downloads.path().join("package.zip");
        fs::write(&path, bytes).unwrap();
        path
    }
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_owned();
        if path.is_dir() {
            out.insert(relative, None);
            snapshot_into(root, &path, out);
        } else {
            out.insert(relative, Some(fs::read(&path).unwrap()));
        }
    }
}

/// Opens `bytes` against `release` and extracts; asserts the refusal left the site
/// exactly as it was, and returns the error.
fn refused_with(bytes: &[u8], release: &ReleaseManifest, limits: &Limits) -> PackageError {
    let site = Site::new();
    let before = site.snapshot();
    let package = site.save(bytes);
    let result = Package::open(&package, release, limits).and_then(|p| p.extract(&site.destination()));
    let error = result.expect_err("a hostile package must be refused");
    assert_eq!(site.snapshot(), before, "the site changed after refusing: {error}");
    assert!(!site.destination().exists());
    // The unsigned path (lint) refuses it too, and never panics.
    let signed_only = matches!(
        error,
        PackageError::PackageHashMismatch { .. }
            | PackageError::PackageSizeMismatch { .. }
            | PackageError::ContentManifestMismatch { .. }
    );
    if !signed_only {
        assert!(Package::from_bytes_unsigned(bytes.to_vec(), limits).and_then(|p| p.verify()).is_err());
    }
    error
}

/// Refusal of a package whose release manifest vouches for exactly these bytes, so
/// that only the archive itself is at fault.
fn refused(zip: &RawZip, listed: &[(&str, &[u8])]) -> PackageError {
    refused_limited(zip, listed, &Limits::default())
}

fn refused_limited(zip: &RawZip, listed: &[(&str, &[u8])], limits: &Limits) -> PackageError {
    let bytes = zip.to_bytes();
    refused_with(&bytes, &release_for(&bytes, listed), limits)
}

fn one_file(name: &str) -> PackageError {
    let content = b"payload".as_slice();
    refused(&hostile::package(&[(name, content)], &[(name, content)]), &[(name, content)])
}

fn invalid_name(name: &str) -> NameError {
    match one_file(name) {
        PackageError::InvalidName { source } => source,
        other => panic!("{name:?}: expected InvalidName, got {other:?}"),
    }
}

fn standard() -> Vec<(String, Vec<u8>)> {
    hostile::standard_files()
}

fn borrowed(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect()
}

#[test]
fn extracts_a_well_formed_package_and_its_manifest() {
    let files = standard();
    let files = borrowed(&files);
    let bytes = hostile::package(&files, &files).to_bytes();
    let site = Site::new();
    let package = site.save(&bytes);
    let release = release_for(&bytes, &files);
    let extracted =
        Package::open(&package, &release, &Limits::default()).unwrap().extract(&site.destination()).unwrap();
    assert_eq!(extracted.files, files.len() + 1);
    for (path, content) in &files {
        assert_eq!(fs::read(site.destination().join(path)).unwrap(), *content, "{path}");
    }
    assert!(site.destination().join(CONTENT_MANIFEST_PATH).is_file());
    let leftovers: Vec<_> = fs::read_dir(site.destination().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".trellis"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn refuses_parent_traversal() {
    assert!(matches!(invalid_name("../x"), NameError::DotSegment { .. }));
}

#[test]
fn refuses_traversal_after_a_directory() {
    assert!(matches!(invalid_name("a/../../x"), NameError::DotSegment { .. }));
}

#[test]
fn refuses_backslash_traversal() {
    assert!(matches!(invalid_name("..\\x"), NameError::Backslash { .. }));
}

#[test]
fn refuses_absolute_path() {
    assert!(matches!(invalid_name("/abs"), NameError::Absolute { .. }));
}

#[test]
fn refuses_drive_absolute_path() {
    assert!(matches!(invalid_name("C:\\x"), NameError::DriveLetter { .. }));
}

#[test]
fn refuses_drive_relative_path() {
    assert!(matches!(invalid_name("C:x"), NameError::DriveLetter { .. }));
}

#[test]
fn refuses_unc_path() {
    assert!(matches!(invalid_name("\\\\host\\share\\x"), NameError::Unc { .. }));
}

#[test]
fn refuses_device_name_con() {
    assert!(matches!(invalid_name("CON"), NameError::DeviceName { device, .. } if device == "CON"));
}

#[test]
fn refuses_device_name_with_extension() {
    assert!(matches!(invalid_name("aux.json"), NameError::DeviceName { device, .. } if device == "AUX"));
}

#[test]
fn refuses_numbered_device_name() {
    assert!(matches!(invalid_name("COM1.txt"), NameError::DeviceName { device, .. } if device == "COM1"));
}

#[test]
fn refuses_alternate_data_stream() {
    assert!(matches!(invalid_name("notes.txt:stream"), NameError::Colon { .. }));
    // With a one-letter name Windows reads `a:stream` as a path on drive A:.
    assert!(matches!(invalid_name("a:stream"), NameError::DriveLetter { .. }));
}

#[test]
fn refuses_trailing_dot() {
    assert!(matches!(invalid_name("docs/readme."), NameError::TrailingDotOrSpace { .. }));
}

#[test]
fn refuses_trailing_space() {
    assert!(matches!(invalid_name("docs/readme "), NameError::TrailingDotOrSpace { .. }));
}

#[test]
fn refuses_nul_in_name() {
    assert!(matches!(invalid_name("a\0.dll"), NameError::ControlCharacter { ch: '\0', .. }));
}

#[test]
fn refuses_names_differing_only_in_case() {
    let files: &[(&str, &[u8])] = &[("A.dll", b"upper"), ("a.dll", b"lower")];
    match refused(&hostile::package(files, files), files) {
        PackageError::NameCollision { source: NameError::CaseCollision { path, other } } => {
            assert_eq!((path.as_str(), other.as_str()), ("a.dll", "A.dll"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_names_differing_only_in_unicode_normalization() {
    // `é` precomposed (NFC) and as `e` + combining acute (NFD): one file on macOS.
    let files: &[(&str, &[u8])] = &[("caf\u{e9}.dll", b"nfc"), ("cafe\u{301}.dll", b"nfd")];
    match refused(&hostile::package(files, files), files) {
        PackageError::NameCollision { source: NameError::NormalizationCollision { path, other } } => {
            assert_eq!((path.as_str(), other.as_str()), ("cafe\u{301}.dll", "caf\u{e9}.dll"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_duplicate_names() {
    let files: &[(&str, &[u8])] = &[("plugin.json", b"{}"), ("plugin.json", b"{\"evil\":1}")];
    let error = refused(&hostile::package(files, &files[..1]), &files[..1]);
    assert!(matches!(error, PackageError::NameCollision { source: NameError::Duplicate { .. } }), "{error:?}");
}

#[test]
fn refuses_local_header_that_disagrees_with_central_directory() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    zip.entries[1].local_name = Some(b"../../evil.dll".to_vec());
    let error = refused(&zip, &files);
    assert!(
        matches!(&error, PackageError::LocalHeaderMismatch { name, field: "name", .. } if name == "LICENSE"),
        "{error:?}"
    );

    let mut zip = hostile::package(&files, &files);
    zip.entries[2].local_method = Some(0);
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::LocalHeaderMismatch { field: "compression method", .. }), "{error:?}");
}

#[test]
fn refuses_overlapping_entries() {
    // "hidden.txt" has no local header of its own: its record points into the stored
    // data of "carrier.bin", which holds a complete local header and data for it.
    let hidden = RawEntry::stored("hidden.txt", b"hidden".to_vec());
    let carrier_content = local_record(&hidden);
    let files: &[(&str, &[u8])] = &[("carrier.bin", &carrier_content), ("hidden.txt", b"hidden")];
    let mut zip = hostile::package(&files[..1], files);
    zip.entries[0].method = Method::Stored;
    zip.entries.push(RawEntry { local_offset: LocalOffset::DataOf(0), ..hidden });
    let error = refused(&zip, files);
    assert!(
        matches!(&error, PackageError::OverlappingEntries { first, second } if first == "carrier.bin" && second == "hidden.txt"),
        "{error:?}"
    );
}

#[test]
fn refuses_symlink() {
    let files: &[(&str, &[u8])] = &[("link", b"/etc/passwd")];
    let mut zip = hostile::package(&[], files);
    zip.entries.insert(0, RawEntry::symlink("link", "/etc/passwd"));
    let error = refused(&zip, files);
    assert!(matches!(&error, PackageError::Symlink { name } if name == "link"), "{error:?}");
}

#[test]
fn refuses_special_file() {
    let files: &[(&str, &[u8])] = &[("fifo", b"")];
    let mut zip = hostile::package(files, files);
    zip.entries[0].external_attributes = 0o010_644 << 16;
    let error = refused(&zip, files);
    assert!(matches!(&error, PackageError::SpecialFile { mode: 0o010_644, .. }), "{error:?}");
}

#[test]
fn refuses_entry_that_inflates_past_its_declared_size() {
    let content = b"0123456789".repeat(1000);
    let listed: &[(&str, &[u8])] = &[("data.bin", &content[..100])];
    let mut zip = hostile::package(&[("data.bin", &content)], listed);
    zip.entries[0].declared_size = Some(100);
    zip.entries[0].crc32 = Some(crc32fast::hash(&content[..100]));
    let error = refused(&zip, listed);
    assert!(matches!(&error, PackageError::InflatesPastDeclaredSize { declared: 100, .. }), "{error:?}");
}

#[test]
fn refuses_high_ratio_bomb() {
    let zeros = vec![0u8; 4 << 20];
    let files: &[(&str, &[u8])] = &[("bomb.bin", &zeros)];
    let error = refused(&hostile::package(files, files), files);
    assert!(
        matches!(&error, PackageError::CompressionRatioTooHigh { size, max_ratio: 250, .. } if *size == 4 << 20),
        "{error:?}"
    );
}

#[test]
fn refuses_total_size_bomb() {
    let chunk: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 31 % 253) as u8).collect();
    let names: Vec<String> = (0..6).map(|i| format!("part{i}.bin")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), chunk.as_slice())).collect();
    let limits = Limits::default().with_max_total_size(5 * 64 * 1024);
    let error = refused_limited(&hostile::package(&files, &files), &files, &limits);
    assert!(matches!(&error, PackageError::TotalSizeTooLarge { max, .. } if *max == 5 * 64 * 1024), "{error:?}");
}

#[test]
fn refuses_too_many_entries() {
    let names: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), b"x".as_slice())).collect();
    let limits = Limits::default().with_max_entries(10);
    let error = refused_limited(&hostile::package(&files, &files), &files, &limits);
    assert!(matches!(&error, PackageError::TooManyEntries { count: 13, max: 10 }), "{error:?}");
}

#[test]
fn refuses_file_missing_from_the_manifest() {
    let files = standard();
    let files = borrowed(&files);
    let error = refused(&hostile::package(&files, &files[1..]), &files[1..]);
    assert!(matches!(&error, PackageError::UnexpectedFile { name } if name == "plugin.json"), "{error:?}");
}

#[test]
fn refuses_manifest_entry_missing_from_the_archive() {
    let files = standard();
    let files = borrowed(&files);
    let error = refused(&hostile::package(&files[..3], &files), &files);
    assert!(matches!(&error, PackageError::MissingFile { name } if name == "docs/README.md"), "{error:?}");
}

#[test]
fn refuses_junk_prepended() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    zip.prepend = b"MZ\x90\x00 a self-extractor stub".to_vec();
    let stub = zip.prepend.len() as u64;
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::PrependedData { bytes } if *bytes == stub), "{error:?}");

    zip.offsets_include_prepended = true;
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::PrependedData { bytes } if *bytes == stub), "{error:?}");
}

#[test]
fn refuses_junk_appended() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    zip.append = b"trailing".to_vec();
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::TrailingData { bytes: 8 }), "{error:?}");
}

#[test]
fn refuses_truncated_archive() {
    let files = standard();
    let files = borrowed(&files);
    let bytes = hostile::package(&files, &files).to_bytes();
    let cut = &bytes[..bytes.len() - 10];
    let error = refused_with(cut, &release_for(cut, &files), &Limits::default());
    assert!(matches!(&error, PackageError::Truncated { .. }), "{error:?}");

    let half = &bytes[..bytes.len() / 2];
    let error = refused_with(half, &release_for(half, &files), &Limits::default());
    assert!(matches!(&error, PackageError::NoEndOfCentralDirectory { .. }), "{error:?}");
}

#[test]
fn refuses_bad_crc_after_staging_earlier_files() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    // The manifest entry comes last: every other file is already staged when it fails.
    let last = zip.entries.len() - 1;
    zip.entries[last].crc32 = Some(0xDEAD_BEEF);
    let error = refused(&zip, &files);
    assert!(
        matches!(&error, PackageError::BadCrc { name, expected: 0xDEAD_BEEF, .. } if name == CONTENT_MANIFEST_PATH),
        "{error:?}"
    );

    let mut zip = hostile::package(&files, &files);
    zip.entries[3].crc32 = Some(0x1234_5678);
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::BadCrc { name, .. } if name == "docs/README.md"), "{error:?}");
}

#[test]
fn refuses_file_whose_content_differs_from_the_manifest() {
    let files = standard();
    let files = borrowed(&files);
    let mut tampered = files.clone();
    let evil = b"MIT Licensf\n".repeat(20);
    tampered[1].1 = &evil;
    let error = refused(&hostile::package(&tampered, &files), &files);
    assert!(matches!(&error, PackageError::FileHashMismatch { name, .. } if name == "LICENSE"), "{error:?}");
}

#[test]
fn refuses_package_whose_hash_differs_from_the_signed_one() {
    let files = standard();
    let files = borrowed(&files);
    let bytes = hostile::package(&files, &files).to_bytes();
    let release = release_for(&bytes, &files);
    let mut tampered = bytes.clone();
    let at = tampered.len() / 3;
    tampered[at] ^= 1;
    let error = refused_with(&tampered, &release, &Limits::default());
    assert!(matches!(&error, PackageError::PackageHashMismatch { .. }), "{error:?}");

    let error = refused_with(&bytes[1..], &release, &Limits::default());
    assert!(matches!(&error, PackageError::PackageSizeMismatch { .. }), "{error:?}");
}

#[test]
fn refuses_content_manifest_that_disagrees_with_the_signed_one() {
    let files = standard();
    let files = borrowed(&files);
    let bytes = hostile::package(&files, &files).to_bytes();
    let mut release = release_for(&bytes, &files);
    release.files.pop();
    let error = refused_with(&bytes, &release, &Limits::default());
    assert!(matches!(&error, PackageError::ContentManifestMismatch { .. }), "{error:?}");
}

#[test]
fn refuses_unknown_compression_method() {
    let files: &[(&str, &[u8])] = &[("a.bin", b"abc")];
    let mut zip = hostile::package(files, files);
    zip.entries[0].method = Method::Stored;
    zip.entries[0].method_number = Some(12); // bzip2
    let error = refused(&zip, files);
    assert!(matches!(&error, PackageError::UnsupportedCompression { method: 12, .. }), "{error:?}");
}

#[test]
fn refuses_to_extract_over_an_existing_destination() {
    let files = standard();
    let files = borrowed(&files);
    let bytes = hostile::package(&files, &files).to_bytes();
    let site = Site::new();
    fs::create_dir_all(site.destination()).unwrap();
    fs::write(site.destination().join("keep.txt"), b"mine").unwrap();
    let before = site.snapshot();
    let package = Package::from_bytes(bytes.clone(), &release_for(&bytes, &files), &Limits::default()).unwrap();
    let error = package.extract(&site.destination()).unwrap_err();
    assert!(matches!(error, PackageError::DestinationExists { .. }), "{error:?}");
    assert_eq!(site.snapshot(), before);
}

#[test]
fn lint_reads_plugin_json_and_content_manifest_without_a_signature() {
    let files = standard();
    let files = borrowed(&files);
    let bytes = hostile::package(&files, &files).to_bytes();
    let package = Package::from_bytes_unsigned(bytes, &Limits::default()).unwrap();
    assert_eq!(package.plugin_json().unwrap(), files[0].1);
    assert_eq!(package.content_manifest().files.len(), files.len());
    package.verify().unwrap();
}

#[test]
fn accepts_packages_written_by_the_zip_crate() {
    use std::io::Write as _;
    let files = standard();
    let files = borrowed(&files);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    writer.add_directory("bin/", options).unwrap();
    for (path, content) in
        files.iter().copied().chain([(CONTENT_MANIFEST_PATH, hostile::manifest_json(&files).as_slice())])
    {
        writer.start_file(path, options).unwrap();
        writer.write_all(content).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    let site = Site::new();
    let release = release_for(&bytes, &files);
    let package = Package::from_bytes(bytes, &release, &Limits::default()).unwrap();
    package.extract(&site.destination()).unwrap();
    assert_eq!(fs::read(site.destination().join("LICENSE")).unwrap(), files[1].1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(site.destination().join("bin/linux-x86_64/clock")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111);
    }
}

#[test]
fn accepts_streamed_packages_with_data_descriptors() {
    use std::io::Write as _;
    let files = standard();
    let files = borrowed(&files);
    let mut writer = zip::ZipWriter::new_stream(Vec::new());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (path, content) in
        files.iter().copied().chain([(CONTENT_MANIFEST_PATH, hostile::manifest_json(&files).as_slice())])
    {
        writer.start_file(path, options).unwrap();
        writer.write_all(content).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    // The streaming writer sets the data-descriptor flag (bit 3) on every entry.
    assert_eq!(bytes[6] & 0x08, 0x08, "expected a streamed entry");
    let release = release_for(&bytes, &files);
    let package = Package::from_bytes(bytes.clone(), &release, &Limits::default()).unwrap();
    package.verify().unwrap();

    // A descriptor that disagrees with the central directory is refused.
    let mut tampered = bytes;
    let descriptor = tampered.windows(4).position(|w| w == [0x50, 0x4b, 0x07, 0x08]).unwrap();
    tampered[descriptor + 4] ^= 0xFF;
    let error = refused_with(&tampered, &release_for(&tampered, &files), &Limits::default());
    assert!(matches!(&error, PackageError::LocalHeaderMismatch { field: "descriptor CRC-32", .. }), "{error:?}");
}

#[test]
fn refuses_encrypted_entry() {
    let files: &[(&str, &[u8])] = &[("secret.bin", b"ciphertext")];
    let mut zip = hostile::package(files, files);
    zip.entries[0].flags |= 1;
    let error = refused(&zip, files);
    assert!(matches!(&error, PackageError::Unsupported { feature: "encryption", entry: Some(_) }), "{error:?}");
}

#[test]
fn refuses_name_that_is_not_utf8() {
    let mut zip = hostile::package(&[], &[]);
    zip.entries.insert(0, RawEntry::file([0xFF, b'a', b'.', b'd', b'l', b'l'], b"x".to_vec()));
    let error = refused(&zip, &[]);
    assert!(matches!(&error, PackageError::NameNotUtf8 { .. }), "{error:?}");
}

#[test]
fn refuses_directory_entry_with_data() {
    let mut zip = hostile::package(&[], &[]);
    zip.entries.insert(0, RawEntry { content: b"hidden".to_vec(), ..RawEntry::dir("docs/") });
    let error = refused(&zip, &[]);
    assert!(matches!(&error, PackageError::DirectoryWithData { size: 6, .. }), "{error:?}");
}

#[test]
fn refuses_package_without_content_manifest() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    zip.entries.pop();
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::MissingContentManifest), "{error:?}");
}

#[test]
fn refuses_content_manifest_that_does_not_parse() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    zip.entries.last_mut().unwrap().content = b"{\"plugin_id\": 42}".to_vec();
    let error = refused(&zip, &files);
    assert!(matches!(&error, PackageError::InvalidContentManifest { .. }), "{error:?}");
}

#[test]
fn extracts_explicit_directory_entries() {
    let files = standard();
    let files = borrowed(&files);
    let mut zip = hostile::package(&files, &files);
    zip.entries.insert(0, RawEntry::dir("docs/"));
    zip.entries.insert(0, RawEntry::dir("resources/empty/"));
    let bytes = zip.to_bytes();
    let site = Site::new();
    let package = Package::from_bytes(bytes.clone(), &release_for(&bytes, &files), &Limits::default()).unwrap();
    package.extract(&site.destination()).unwrap();
    assert!(site.destination().join("resources/empty").is_dir());
    assert!(site.destination().join("docs/README.md").is_file());
}

#[test]
fn refuses_directory_entry_where_the_manifest_lists_a_file() {
    let files: &[(&str, &[u8])] = &[("docs", b"")];
    let mut zip = hostile::package(&[], files);
    zip.entries.insert(0, RawEntry::dir("docs/"));
    let error = refused(&zip, files);
    assert!(matches!(&error, PackageError::MissingFile { name } if name == "docs"), "{error:?}");
}
