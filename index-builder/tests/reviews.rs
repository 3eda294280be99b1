//! `trellis-index reviews check` as CI runs it on a registry checkout.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::Expiry;

fn registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let options = InitOptions {
        name: "Test Store".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 2,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now: "2026-11-01T00:00:00Z".parse().unwrap(),
    };
    operator::init(dir.path(), &options).unwrap();
    let key = fixture::key(1);
    fixture::add_publisher(dir.path(), "acme", &key).unwrap();
    fixture::add_release(dir.path(), &ReleaseSpec::new("acme.clock", "1.0.0"), &key).unwrap();
    dir
}

fn review(registry: &Path, author: &str, stars: u32, state: &str) {
    let dir = registry.join("reviews/acme.clock");
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::json!({
        "stars": stars, "text": "Keeps *perfect* time.", "version": "1.0.0", "date": "2026-11-20",
        "author": author, "state": state
    });
    std::fs::write(dir.join(format!("{author}.json")), text.to_string()).unwrap();
}

fn check(registry: &Path) -> (i32, serde_json::Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["reviews", "check", "--json"])
        .arg(registry)
        .output()
        .unwrap();
    let stdout = serde_json::from_slice(&output.stdout).unwrap();
    (output.status.code().unwrap(), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn rates_from_visible_reviews_and_refuses_six_stars_naming_the_file() {
    let registry = registry();
    review(registry.path(), "octocat", 4, "visible");
    review(registry.path(), "hubot", 2, "visible");
    review(registry.path(), "spammer", 1, "hidden");
    let (code, report, stderr) = check(registry.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["reviews"], 3);
    let rating = &report["ratings"]["acme.clock"];
    assert_eq!(rating["count"], 2, "the hidden review is not counted: {report}");
    assert_eq!(rating["tenths"], 30);
    assert_eq!(rating["histogram"], serde_json::json!([0, 1, 0, 1, 0]));

    review(registry.path(), "octocat", 6, "visible");
    let (code, report, _) = check(registry.path());
    assert_eq!(code, 1);
    let problem = &report["problems"][0];
    assert!(problem["path"].as_str().unwrap().ends_with("reviews/acme.clock/octocat.json"), "{problem}");
    assert_eq!(problem["reason"], "stars is 6; give 1 to 5");
}

#[test]
fn a_registry_without_reviews_is_clean() {
    let registry = registry();
    let (code, report, stderr) = check(registry.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["reviews"], 0);
}

#[test]
fn lint_of_a_registry_runs_the_review_check() {
    let registry = registry();
    review(registry.path(), "octocat", 4, "visible");
    let lint = |registry: &Path| {
        Command::new(env!("CARGO_BIN_EXE_trellis-index")).args(["lint", "--json"]).arg(registry).output().unwrap()
    };
    let output = lint(registry.path());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["reviews"], 1);
    review(registry.path(), "octocat", 6, "visible");
    let output = lint(registry.path());
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reason = report["problems"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("stars is 6"), "{reason}");
}
