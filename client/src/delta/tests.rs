#![allow(clippy::unwrap_used)]

use std::io::Write;

use flate2::write::DeflateEncoder;
use trellis_schema::delta::{Compression, DeltaFile, DeltaHeader, encode};
use trellis_schema::manifest::PackageDigest;
use trellis_schema::plugin::Channel;

use super::*;

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn entry(path: &str, bytes: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        size: bytes.len() as u64,
        sha256: Sha256::of(bytes),
        executable: path.starts_with("bin/"),
    }
}

fn manifest(version: &str, files: &[(&str, &[u8])]) -> ReleaseManifest {
    ReleaseManifest {
        format: trellis_schema::manifest::ManifestFormat::CURRENT,
        plugin_id: "acme.clock".parse().unwrap(),
        version: version.parse().unwrap(),
        package: PackageDigest { sha256: Sha256::of(version.as_bytes()), size: 1 },
        files: files.iter().map(|(p, b)| entry(p, b)).collect(),
        permissions: vec![],
        host: serde_json::from_value(serde_json::json!({"id": "h", "api_version_requirement": "^1"})).unwrap(),
        platforms: vec![],
        channel: Channel::Stable,
        dependencies: vec![],
    }
}

fn content_manifest(release: &ReleaseManifest) -> Vec<u8> {
    serde_json::to_vec(&ContentManifest {
        format: trellis_schema::manifest::ManifestFormat::CURRENT,
        plugin_id: release.plugin_id.clone(),
        version: release.version.clone(),
        files: release.files.clone(),
    })
    .unwrap()
}

/// A delta under construction: ops are appended with their data.
struct Builder {
    files: Vec<DeltaFile>,
    data: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Self { files: vec![], data: vec![] }
    }
    fn range(&mut self, bytes: &[u8]) -> DataRange {
        let range = DataRange { offset: self.data.len() as u64, length: bytes.len() as u64 };
        self.data.extend_from_slice(bytes);
        range
    }
    fn copy(mut self, path: &str, source: &str) -> Self {
        self.files.push(DeltaFile { path: path.into(), op: DeltaOp::Copy { source: source.into() } });
        self
    }
    fn literal(mut self, path: &str, bytes: &[u8]) -> Self {
        let data = self.range(&deflate(bytes));
        self.files.push(DeltaFile { path: path.into(), op: DeltaOp::Literal { data } });
        self
    }
    fn patch(mut self, path: &str, source: &str, old: &[u8], new: &[u8]) -> Self {
        let mut patch = Vec::new();
        bsdiff::diff(old, new, &mut patch).unwrap();
        let data = self.range(&deflate(&patch));
        self.files.push(DeltaFile { path: path.into(), op: DeltaOp::Patch { source: source.into(), data } });
        self
    }
    fn encode(self, from: (&ReleaseManifest, Sha256), to: (&ReleaseManifest, Sha256)) -> Vec<u8> {
        let header = DeltaHeader {
            plugin_id: to.0.plugin_id.clone(),
            from: from.0.version.clone(),
            to: to.0.version.clone(),
            from_manifest_sha256: from.1,
            to_manifest_sha256: to.1,
            compression: Compression::Deflate,
            files: self.files,
        };
        encode(&header, &self.data).unwrap()
    }
}

struct Fixture {
    _root: tempfile::TempDir,
    plugin_dir: PathBuf,
    base_dir: PathBuf,
    old: ReleaseManifest,
    new: ReleaseManifest,
    old_binary: Vec<u8>,
    new_binary: Vec<u8>,
}

const LICENSE: &[u8] = b"MIT License\n";

fn binary(seed: u8, change: bool) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect();
    if change {
        bytes[20_000..20_100].fill(7);
        bytes.extend_from_slice(b"new tail");
    }
    bytes
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let plugin_dir = root.path().join("acme.clock");
    let base_dir = plugin_dir.join("1.0.0");
    std::fs::create_dir_all(base_dir.join("bin/any")).unwrap();
    let (old_binary, new_binary) = (binary(1, false), binary(1, true));
    std::fs::write(base_dir.join("LICENSE"), LICENSE).unwrap();
    std::fs::write(base_dir.join("bin/any/run"), &old_binary).unwrap();
    std::fs::write(base_dir.join("plugin.json"), b"{\"version\":\"1.0.0\"}").unwrap();
    let old = manifest(
        "1.0.0",
        &[("LICENSE", LICENSE), ("bin/any/run", &old_binary), ("plugin.json", b"{\"version\":\"1.0.0\"}")],
    );
    let new = manifest(
        "1.1.0",
        &[
            ("LICENSE", LICENSE),
            ("bin/any/run", &new_binary),
            ("docs/NEW.md", b"# new\n"),
            ("plugin.json", b"{\"version\":\"1.1.0\"}"),
        ],
    );
    Fixture { _root: root, plugin_dir, base_dir, old, new, old_binary, new_binary }
}

impl Fixture {
    fn good_delta(&self) -> Builder {
        Builder::new()
            .copy("LICENSE", "LICENSE")
            .patch("bin/any/run", "bin/any/run", &self.old_binary, &self.new_binary)
            .literal("docs/NEW.md", b"# new\n")
            .literal("plugin.json", b"{\"version\":\"1.1.0\"}")
            .literal(CONTENT_MANIFEST_PATH, &content_manifest(&self.new))
    }
    fn digests(&self) -> (Sha256, Sha256) {
        (Sha256::of(b"old manifest"), Sha256::of(b"new manifest"))
    }
    fn encode(&self, builder: Builder) -> Vec<u8> {
        let (old, new) = self.digests();
        builder.encode((&self.old, old), (&self.new, new))
    }
    fn apply(&self, bytes: &[u8]) -> Result<Staged, DeltaError> {
        let (old, new) = self.digests();
        apply(
            bytes,
            Base { dir: &self.base_dir, manifest: &self.old, manifest_sha256: old },
            Target { manifest: &self.new, manifest_sha256: new },
            &self.plugin_dir,
            &DeltaLimits::default(),
        )
    }
    /// Entries of the plugin directory other than the base release.
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.plugin_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "1.0.0")
            .collect()
    }
}

#[test]
fn rebuilds_the_new_release_from_copies_patches_and_literals() {
    let f = fixture();
    let bytes = f.encode(f.good_delta());
    let staged = f.apply(&bytes).unwrap();
    assert_eq!(staged.ops, OpCounts { copied: 1, patched: 1, literal: 3 });
    assert_eq!(staged.files, 5);
    let destination = f.plugin_dir.join("1.1.0");
    staged.persist(&destination).unwrap();
    assert_eq!(std::fs::read(destination.join("bin/any/run")).unwrap(), f.new_binary);
    assert_eq!(std::fs::read(destination.join("LICENSE")).unwrap(), LICENSE);
    assert_eq!(std::fs::read(destination.join("docs/NEW.md")).unwrap(), b"# new\n");
    let content: ContentManifest =
        serde_json::from_slice(&std::fs::read(destination.join(CONTENT_MANIFEST_PATH)).unwrap()).unwrap();
    assert_eq!(content.files, f.new.files);
    // The patch is far smaller than the file it rebuilds.
    assert!(bytes.len() < f.new_binary.len() / 5, "{} bytes", bytes.len());
    assert_eq!(f.leftovers(), ["1.1.0"]);
}

#[cfg(unix)]
#[test]
fn file_modes_come_from_the_signed_manifest() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for flip in [false, true] {
        let mut f = fixture();
        if flip {
            // The developer signed the binary as not executable and the docs as executable.
            for file in &mut f.new.files {
                file.executable = file.path == "docs/NEW.md";
            }
        }
        let bytes = f.encode(f.good_delta());
        let destination = f.plugin_dir.join("1.1.0");
        f.apply(&bytes).unwrap().persist(&destination).unwrap();
        let (binary, docs) = (mode(&destination.join("bin/any/run")), mode(&destination.join("docs/NEW.md")));
        assert_eq!((binary & 0o111 != 0, docs & 0o111 != 0), (!flip, flip), "{binary:o} {docs:o}");
        assert_eq!(mode(&destination.join(CONTENT_MANIFEST_PATH)) & 0o111, 0);
    }
}

#[test]
fn refuses_a_modified_installed_file_and_leaves_nothing_behind() {
    let f = fixture();
    let bytes = f.encode(f.good_delta());
    let mut tampered = f.old_binary.clone();
    tampered[10] ^= 1;
    std::fs::write(f.base_dir.join("bin/any/run"), &tampered).unwrap();
    let error = f.apply(&bytes).unwrap_err();
    assert!(matches!(&error, DeltaError::BaseChanged { path, .. } if path.ends_with("bin/any/run")), "{error}");
    assert!(error.to_string().contains("the installed file was changed or removed"), "{error}");
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn refuses_a_missing_installed_file() {
    let f = fixture();
    std::fs::remove_file(f.base_dir.join("LICENSE")).unwrap();
    let error = f.apply(&f.encode(f.good_delta())).unwrap_err();
    assert!(matches!(&error, DeltaError::BaseChanged { path, .. } if path.ends_with("LICENSE")), "{error}");
    assert!(f.leftovers().is_empty());
}

#[test]
fn refuses_a_literal_whose_bytes_were_not_signed() {
    let f = fixture();
    let evil = Builder::new()
        .copy("LICENSE", "LICENSE")
        .literal("bin/any/run", b"malware")
        .literal("docs/NEW.md", b"# new\n")
        .literal("plugin.json", b"{\"version\":\"1.1.0\"}")
        .literal(CONTENT_MANIFEST_PATH, &content_manifest(&f.new));
    let error = f.apply(&f.encode(evil)).unwrap_err();
    assert!(
        matches!(&error, DeltaError::OutputMismatch { path, actual_size: 7, .. } if path == "bin/any/run"),
        "{error}"
    );
    assert!(f.leftovers().is_empty());
}

#[test]
fn refuses_a_copy_of_the_wrong_old_file() {
    let f = fixture();
    let evil = Builder::new()
        .copy("LICENSE", "plugin.json")
        .patch("bin/any/run", "bin/any/run", &f.old_binary, &f.new_binary)
        .literal("docs/NEW.md", b"# new\n")
        .literal("plugin.json", b"{\"version\":\"1.1.0\"}")
        .literal(CONTENT_MANIFEST_PATH, &content_manifest(&f.new));
    let error = f.apply(&f.encode(evil)).unwrap_err();
    assert!(matches!(&error, DeltaError::OutputMismatch { path, .. } if path == "LICENSE"), "{error}");
}

#[test]
fn refuses_a_file_the_signed_manifest_does_not_list() {
    let f = fixture();
    let evil = f.good_delta().literal("bin/any/evil.dll", b"MZ");
    let error = f.apply(&f.encode(evil)).unwrap_err();
    assert!(matches!(&error, DeltaError::FileSet { reason } if reason.contains("bin/any/evil.dll")), "{error}");
    // Refused before a staging directory existed.
    assert!(f.leftovers().is_empty());
}

#[test]
fn refuses_a_content_manifest_that_disagrees_with_the_signed_one() {
    let f = fixture();
    let mut lying = f.new.clone();
    lying.files.pop();
    let evil = Builder::new()
        .copy("LICENSE", "LICENSE")
        .patch("bin/any/run", "bin/any/run", &f.old_binary, &f.new_binary)
        .literal("docs/NEW.md", b"# new\n")
        .literal("plugin.json", b"{\"version\":\"1.1.0\"}")
        .literal(CONTENT_MANIFEST_PATH, &content_manifest(&lying));
    let error = f.apply(&f.encode(evil)).unwrap_err();
    assert!(matches!(error, DeltaError::ContentManifest { .. }), "{error}");
    assert!(f.leftovers().is_empty());
}

#[test]
fn refuses_a_delta_for_other_releases() {
    let f = fixture();
    let (old, new) = f.digests();
    let other = f.good_delta().encode((&f.old, Sha256::of(b"another 1.0.0")), (&f.new, new));
    assert!(matches!(f.apply(&other).unwrap_err(), DeltaError::WrongRelease { .. }));
    let mut later = f.new.clone();
    later.version = "1.2.0".parse().unwrap();
    let other = f.good_delta().encode((&f.old, old), (&later, new));
    let error = f.apply(&other).unwrap_err();
    assert_eq!(error.to_string(), "the delta is for acme.clock 1.0.0 → 1.2.0, not acme.clock 1.0.0 → 1.1.0");
}

#[test]
fn refuses_compressed_data_with_trailing_bytes_in_its_range() {
    let f = fixture();
    let mut padded = deflate(b"# new\n");
    padded.extend_from_slice(b"junk");
    let rebuilt = Builder::new()
        .copy("LICENSE", "LICENSE")
        .patch("bin/any/run", "bin/any/run", &f.old_binary, &f.new_binary)
        .literal("plugin.json", b"{\"version\":\"1.1.0\"}")
        .literal(CONTENT_MANIFEST_PATH, &content_manifest(&f.new));
    let mut rebuilt = rebuilt;
    let data = rebuilt.range(&padded);
    rebuilt.files.push(DeltaFile { path: "docs/NEW.md".into(), op: DeltaOp::Literal { data } });
    let error = f.apply(&f.encode(rebuilt)).unwrap_err();
    assert!(
        matches!(&error, DeltaError::Corrupt { path, reason } if path == "docs/NEW.md" && reason.contains("ends after")),
        "{error}"
    );
}

fn control(mix: u64, copy: u64, seek: i64) -> Vec<u8> {
    let seek = if seek < 0 { (seek.unsigned_abs()) | (1 << 63) } else { seek as u64 };
    [mix.to_le_bytes(), copy.to_le_bytes(), seek.to_le_bytes()].concat()
}

#[test]
fn bspatch_matches_the_bsdiff_crate_on_varied_inputs() {
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (vec![], b"brand new".to_vec()),
        (b"old".to_vec(), vec![]),
        (binary(3, false), binary(3, true)),
        (binary(3, false), binary(9, false)),
        (b"abcabcabcabc".repeat(1000), b"abcabcXbcabc".repeat(1000)),
    ];
    for (old, new) in cases {
        let mut patch = Vec::new();
        bsdiff::diff(&old, &new, &mut patch).unwrap();
        let mut reference = Vec::new();
        bsdiff::patch(&old, &mut patch.as_slice(), &mut reference).unwrap();
        match bspatch(&old, &mut patch.as_slice(), new.len() as u64) {
            Ok(ours) => assert_eq!(ours, new),
            // The crate may write controls that produce nothing; the builder folds them.
            Err(e) => assert!(e.to_string().contains("produces nothing"), "{e}"),
        }
        assert_eq!(reference, new);
    }
}

#[test]
fn bspatch_refuses_controls_that_overrun_stall_or_leave_the_old_file() {
    let old = b"0123456789";
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        ([control(0, 4, 0), b"abcd".to_vec()].concat(), 3, "more than the 3 bytes signed"),
        (control(0, 0, 5), 3, "produces nothing"),
        ([control(11, 0, 0), vec![0; 11]].concat(), 11, "past the old file"),
        ([control(2, 0, -3), vec![0; 2], control(1, 0, 0), vec![0]].concat(), 3, "before the start"),
        ([control(0, 4, 0), b"ab".to_vec()].concat(), 4, "ends inside the bytes"),
        (control(0, 4, 0)[..10].to_vec(), 4, "inside a control"),
        ([control(0, 2, 0), b"ab".to_vec()].concat(), 4, "produces 2 bytes, the signed size is 4"),
    ];
    for (patch, size, expected) in cases {
        let error = bspatch(old, &mut patch.as_slice(), size).unwrap_err();
        assert!(error.to_string().to_lowercase().contains(expected), "{expected}: {error}");
    }
    // A well-formed patch: add 1 to two old bytes, then two new bytes, then seek back.
    let patch = [control(2, 2, -2), vec![1, 1], b"xy".to_vec(), control(1, 0, 0), vec![0]].concat();
    assert_eq!(bspatch(old, &mut patch.as_slice(), 5).unwrap(), b"12xy0");
}
