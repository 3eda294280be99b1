//! `sign` and `lint` end to end: real trees, real packages, real Ed25519 keys, the real CLI.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use trellis_index::lint::{LintOptions, SignatureStatus, lint};
use trellis_index::pack::pack_dir;
use trellis_index::sign::{envelope_path, sign_package};
use trellis_schema::key::SigningKey;
use trellis_schema::publisher::{PublisherRecord, RevokedKey};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/plugins").join(name)
}

fn publisher(keys: &[&SigningKey], threshold: u32) -> PublisherRecord {
    PublisherRecord { threshold, ..trellis_index::fixture::publisher("acme", keys) }
}

fn packed_clock(dir: &Path) -> PathBuf {
    let out = dir.join("acme.clock-1.0.0.zip");
    pack_dir(&example("acme.clock-1.0.0"), &out).unwrap();
    out
}

fn lint_with(package: &Path, record: Option<PublisherRecord>) -> trellis_index::lint::LintReport {
    lint(package, &LintOptions { publisher: record, ..LintOptions::default() }).unwrap()
}

#[test]
fn signed_package_lints_clean_and_verifies_against_its_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let package = packed_clock(dir.path());
    let key = SigningKey::from_seed([1; 32]);
    let signed = sign_package(&package, &key).unwrap();
    assert_eq!(signed.envelope_path, dir.path().join("acme.clock-1.0.0.zip.dsse"));
    assert_eq!(signed.manifest.package.sha256, trellis_schema::Sha256::of(&fs::read(&package).unwrap()));
    assert!(signed.manifest.files.iter().any(|f| f.path == "bin/any/clock.sh"));

    let report = lint_with(&package, Some(publisher(&[&key], 1)));
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.signature, SignatureStatus::Verified { publisher: "acme".into() });
    assert_eq!(report.release.as_deref(), Some("acme.clock 1.0.0"));

    let unchecked = lint_with(&package, None);
    assert_eq!(unchecked.signature, SignatureStatus::Unchecked { signers: vec![key.key_id().clone()] });
}

#[test]
fn second_key_cosigns_for_a_threshold_of_two() {
    let dir = tempfile::tempdir().unwrap();
    let package = packed_clock(dir.path());
    let (a, b) = (SigningKey::from_seed([1; 32]), SigningKey::from_seed([2; 32]));
    assert!(!sign_package(&package, &a).unwrap().cosigned);
    let record = publisher(&[&a, &b], 2);
    let one = lint_with(&package, Some(record.clone()));
    assert_eq!(one.signature, SignatureStatus::Invalid);
    assert!(
        one.problems.iter().any(|p| p.message.contains("1 valid signature(s) from acme's keys, 2 required")),
        "{:#?}",
        one.problems
    );
    let second = sign_package(&package, &b).unwrap();
    assert!(second.cosigned);
    assert_eq!(second.envelope.signatures.len(), 2);
    assert_eq!(lint_with(&package, Some(record)).signature, SignatureStatus::Verified { publisher: "acme".into() });
}

#[test]
fn envelope_of_other_bytes_is_reported_and_replaced_on_resign() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    for entry in walkdir::WalkDir::new(example("acme.clock-1.0.0")).min_depth(1) {
        let entry = entry.unwrap();
        let target = tree.join(entry.path().strip_prefix(example("acme.clock-1.0.0")).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
    let package = dir.path().join("clock.zip");
    pack_dir(&tree, &package).unwrap();
    let key = SigningKey::from_seed([1; 32]);
    sign_package(&package, &key).unwrap();
    fs::write(tree.join("docs/README.md"), "changed\n").unwrap();
    pack_dir(&tree, &package).unwrap();

    let stale = lint_with(&package, Some(publisher(&[&key], 1)));
    assert_eq!(stale.signature, SignatureStatus::Invalid);
    let text: Vec<String> = stale.problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|t| t.contains("signs package sha256") && t.contains("sign the package again")),
        "{text:#?}"
    );

    let resigned = sign_package(&package, &key).unwrap();
    assert!(!resigned.cosigned, "an envelope for other bytes is replaced, not co-signed");
    assert!(lint_with(&package, Some(publisher(&[&key], 1))).is_clean());
}

#[test]
fn revoked_key_is_refused_with_the_date() {
    let dir = tempfile::tempdir().unwrap();
    let package = packed_clock(dir.path());
    let key = SigningKey::from_seed([1; 32]);
    sign_package(&package, &key).unwrap();
    let mut record = publisher(&[&key], 1);
    record.revoked.push(RevokedKey {
        keyid: key.key_id().clone(),
        revoked_at: "2026-10-01".into(),
        reason: String::new(),
        key: None,
    });
    let report = lint_with(&package, Some(record));
    assert!(!report.is_clean());
    assert!(report.problems.iter().any(|p| p.message.contains("revoked on 2026-10-01")), "{:#?}", report.problems);
}

#[test]
fn tampered_package_is_refused_by_the_hardened_opener() {
    let dir = tempfile::tempdir().unwrap();
    let package = packed_clock(dir.path());
    let mut bytes = fs::read(&package).unwrap();
    // The stored PNG icons are uncompressed: flip a byte inside the first one's data.
    let at = bytes.windows(4).position(|w| w == b"IHDR").unwrap() + 8;
    bytes[at] ^= 0xff;
    fs::write(&package, &bytes).unwrap();
    let report = lint_with(&package, None);
    assert!(!report.is_clean());
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
}

#[test]
fn unsigned_package_is_clean_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let package = packed_clock(dir.path());
    let report = lint_with(&package, None);
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.signature, SignatureStatus::Absent);
    assert!(report.problems.iter().any(|p| p.message.contains("no developer signature")));
    assert!(!envelope_path(&package).exists());
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-index")).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn cli_keygen_pack_sign_lint_round_trip_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev.key");
    let (code, out, _) = cli(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("key id:"), "{out}");
    let package = dir.path().join("ts.zip");
    let tree = example("acme.time-core-1.0.0");
    let (code, out, err) = cli(&["pack", tree.to_str().unwrap(), "--out", package.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("packed acme.time-core 1.0.0"), "{out}");
    let (code, _, err) = cli(&["sign", package.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(&["lint", package.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signature: matches this package"), "{out}");

    let (code, out, _) = cli(&["lint", tree.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["kind"], "directory");
    assert_eq!(json["release"], "acme.time-core 1.0.0");
}

#[test]
fn cli_lint_exits_one_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("bad");
    trellis_tests::trees::write_skeleton(&tree, "acme.bad", "1.0.0").unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(&fs::read(tree.join("plugin.json")).unwrap()).unwrap();
    meta["permissions"][0]["scope"] = "everything".into();
    meta["categories"] = serde_json::json!(["toys"]);
    fs::write(tree.join("plugin.json"), meta.to_string()).unwrap();
    fs::write(tree.join("resources/icon-32.png"), trellis_tests::trees::png(48, 48)).unwrap();
    fs::write(tree.join("docs.txt"), "stray").unwrap();
    let (code, out, _) = cli(&["lint", tree.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "plugin.json: permissions[0].scope: unknown scope \"everything\"",
        "plugin.json: categories[0]: unknown category \"toys\"",
        "docs.txt: unexpected top-level entry",
        "refused: 3 error(s)",
        "lint acme.bad 1.0.0",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

/// The example clock tree with `sbom` at `docs/sbom.cdx.json`, in `dir`.
fn clock_tree_with_sbom(dir: &Path, sbom: &[u8]) -> PathBuf {
    let tree = dir.join("tree");
    for entry in walkdir::WalkDir::new(example("acme.clock-1.0.0")) {
        let entry = entry.unwrap();
        let to = tree.join(entry.path().strip_prefix(example("acme.clock-1.0.0")).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&to).unwrap();
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
    fs::create_dir_all(tree.join("docs")).unwrap();
    fs::write(tree.join("docs/sbom.cdx.json"), sbom).unwrap();
    tree
}

#[test]
fn lint_reads_the_sbom_of_a_tree_and_a_package_and_reports_a_broken_or_oversized_one_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"lodash","version":"4.17.20","purl":"pkg:npm/lodash@4.17.20"}]}"#;
    let tree = clock_tree_with_sbom(dir.path(), sbom);
    let package = dir.path().join("clock.zip");
    pack_dir(&tree, &package).unwrap();
    for target in [&tree, &package] {
        let report = lint_with(target, None);
        assert!(report.is_clean(), "{:#?}", report.problems);
        assert_eq!(report.components.len(), 1, "{target:?}");
        assert_eq!(report.components[0].purl.as_deref(), Some("pkg:npm/lodash@4.17.20"));
    }

    // Components without a purl: a warning naming them (no advisory can match them).
    let unnamed = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"lodash","version":"4.17.20","purl":"pkg:npm/lodash@4.17.20"},{"type":"library","name":"vendored-zlib","version":"1.3"}]}"#;
    fs::write(tree.join("docs/sbom.cdx.json"), unnamed).unwrap();
    let report = lint_with(&tree, None);
    let warnings: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.severity == trellis_schema::validate::Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert!(
        warnings.iter().any(|w| w.starts_with("docs/sbom.cdx.json: 1 component(s) have no purl (vendored-zlib)")),
        "{warnings:?}"
    );
    assert_eq!(report.components.len(), 2, "both components are still listed");

    // Malformed: an error naming the file, through the CLI as the PR check runs it.
    fs::write(tree.join("docs/sbom.cdx.json"), br#"{"bomFormat":"CycloneDX","components":[{"version":"1"}]}"#).unwrap();
    let broken = dir.path().join("broken.zip");
    pack_dir(&tree, &broken).unwrap();
    let (code, out, _) = cli(&["lint", broken.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("docs/sbom.cdx.json: is not CycloneDX JSON: missing field `name`"), "{out}");

    // Over the limit (8 MiB): refused from the listed size, never parsed.
    // Incompressible filler (hex of a generator), so the package's ratio check passes.
    let mut big = b"{\"bomFormat\":\"CycloneDX\",\"components\":[],\"x\":\"".to_vec();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while big.len() < (9 << 20) - 2 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.push(b"0123456789abcdef"[(state & 15) as usize]);
    }
    big.extend_from_slice(b"\"}");
    fs::write(tree.join("docs/sbom.cdx.json"), &big).unwrap();
    let oversized = dir.path().join("oversized.zip");
    pack_dir(&tree, &oversized).unwrap();
    for target in [&tree, &oversized] {
        let report = lint_with(target, None);
        let problem = report
            .problems
            .iter()
            .find(|p| p.path == "docs/sbom.cdx.json")
            .unwrap_or_else(|| panic!("{target:?}: {:#?}", report.problems));
        assert_eq!(
            problem.message,
            "is 9437184 bytes; an SBOM may be at most 8388608 bytes: list only the bundled components"
        );
        assert!(!report.is_clean());
    }
}
