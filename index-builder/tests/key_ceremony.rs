//! KEY-CEREMONY.md's incident procedures, run as the commands the document gives,
//! through the `trellis-index` binary on a real registry: a leaked developer key
//! (revoke, re-sign, yank, block, build, verify) and a publisher who lost every key
//! (recovery by the offline targets key), plus the pull-request check against the base
//! branch's record.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::Expiry;

fn trellis_index(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-index")).current_dir(dir).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, text) = trellis_index(dir, args);
    assert!(success, "trellis-index {args:?} failed: {text}");
    text
}

/// A registry (run from its root, as the documents do) with acme's record written by
/// `publisher init`, three releases signed by `keys/acme-old.key`, built into `site/`.
fn registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let options = InitOptions {
        name: "Ceremony".into(),
        base_url: "https://plugins.example/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 2,
        publisher_bin_bits: 2,
        expiry: Expiry::default(),
        now: jiff::Timestamp::now(),
    };
    operator::init(dir.path(), &options).unwrap();
    let root = dir.path();
    ok(root, &["keygen", "--out", "dev/acme-old.key"]);
    ok(root, &["publisher", "init", "--id", "acme", "--name", "Acme", "--key", "dev/acme-old.key"]);
    let old = trellis_index::keyfile::read(&root.join("dev/acme-old.key")).unwrap();
    for (id, version) in [("acme.clock", "1.0.0"), ("acme.clock", "1.1.0"), ("acme.timer", "0.1.0")] {
        fixture::add_release(root, &ReleaseSpec::new(id, version), &old).unwrap();
    }
    ok(root, &["build", ".", "--out", "site"]);
    dir
}

fn key_id(root: &Path, key: &str) -> String {
    trellis_index::keyfile::read(&root.join(key)).unwrap().key_id().to_string()
}

#[test]
fn a_leaked_developer_key_is_revoked_with_the_documented_commands() {
    let dir = registry();
    let root = dir.path();
    let old = key_id(root, "dev/acme-old.key");
    ok(root, &["keygen", "--out", "dev/acme-new.key"]);
    ok(
        root,
        &[
            "publisher",
            "update",
            "publishers/acme.json",
            "--key",
            "dev/acme-old.key",
            "--add-key",
            "dev/acme-new.key",
            "--revoke",
            &old,
            "--reason",
            "laptop stolen",
            "--at",
            "2026-10-01",
        ],
    );
    let (success, text) = trellis_index(root, &["build", ".", "--out", "site"]);
    assert!(!success);
    assert!(text.contains("3 release(s) are signed only by revoked or removed keys"), "{text}");
    for release in ["acme.clock 1.0.0", "acme.clock 1.1.0", "acme.timer 0.1.0"] {
        assert!(text.contains(release), "{release}: {text}");
    }
    ok(root, &["sign", "--resign", "releases/acme.clock/1.0.0.zip", "--key", "dev/acme-new.key"]);
    ok(root, &["sign", "--resign", "releases/acme.clock/1.1.0.zip", "--key", "dev/acme-new.key"]);
    let (success, text) = trellis_index(root, &["build", ".", "--out", "site"]);
    assert!(!success && text.contains("1 release(s)") && text.contains("acme.timer 0.1.0"), "{text}");
    ok(
        root,
        &[
            "block",
            ".",
            "acme.timer",
            "--versions",
            "=0.1.0",
            "--reason",
            "signed by a stolen key",
            "--severity",
            "high",
        ],
    );
    ok(root, &["build", ".", "--out", "site"]);
    let text = ok(root, &["verify", "site", "--root", "root/1.root.json"]);
    assert!(text.contains("no problems"), "{text}");
}

#[test]
fn a_publisher_who_lost_every_key_is_recovered_and_a_pr_cannot_do_it_alone() {
    let dir = registry();
    let root = dir.path();
    // The PR check: a submission adding a key without the current key's signature.
    std::fs::create_dir_all(root.join("base")).unwrap();
    std::fs::copy(root.join("publishers/acme.json"), root.join("base/acme.json")).unwrap();
    ok(root, &["keygen", "--out", "dev/acme-new.key"]);
    let (success, text) = trellis_index(
        root,
        &["publisher", "update", "publishers/acme.json", "--key", "dev/acme-new.key", "--add-key", "dev/acme-new.key"],
    );
    assert!(!success && text.contains("is not signed by 1 of version 1's keys"), "{text}");

    ok(
        root,
        &[
            "publisher",
            "recover",
            "publishers/acme.json",
            "--recovery-key",
            "keys/targets.key",
            "--key",
            "dev/acme-new.key",
        ],
    );
    let package = "releases/acme.clock/1.0.0.zip";
    let pr_check = ["lint", package, "--publisher", "publishers/acme.json", "--trusted-publisher", "base/acme.json"];
    let (success, text) = trellis_index(root, &pr_check);
    assert!(
        !success && text.contains("is not signed by 1 of version 1's keys"),
        "without the root, a recovery is not accepted: {text}"
    );
    let mut with_root = pr_check.to_vec();
    with_root.extend(["--root", "root/1.root.json"]);
    // The release is still signed by the lost key: lint reports it, the record is accepted.
    let (_, text) = trellis_index(root, &with_root);
    assert!(text.contains("revoked on"), "{text}");
    for release in [package, "releases/acme.clock/1.1.0.zip", "releases/acme.timer/0.1.0.zip"] {
        ok(root, &["sign", "--resign", release, "--key", "dev/acme-new.key"]);
    }
    ok(root, &["build", ".", "--out", "site"]);
    ok(root, &["verify", "site", "--root", "root/1.root.json"]);
}
