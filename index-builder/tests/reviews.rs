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

/// The issues event GitHub sends for a review issue opened by `login` with the
/// form's rendered `body`.
fn issue_event(dir: &Path, login: &str, body: &str) -> std::path::PathBuf {
    let event = serde_json::json!({
        "action": "opened",
        "issue": {
            "number": 7, "title": "Review: acme.clock", "body": body, "created_at": "2026-11-21T10:00:00Z",
            "user": { "login": login }, "labels": [{ "name": "review" }]
        }
    });
    let path = dir.join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    path
}

/// Runs registry-template/scripts/review-from-issue.sh in `registry` as the review
/// workflow does.
#[cfg(unix)]
fn review_from_issue(registry: &Path, event: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/scripts/review-from-issue.sh");
    let output_file = event.with_file_name("github_output");
    Command::new("bash")
        .arg(script)
        .current_dir(registry)
        .env("TRELLIS_INDEX", env!("CARGO_BIN_EXE_trellis-index"))
        .env("GITHUB_EVENT_PATH", event)
        .env("GITHUB_OUTPUT", &output_file)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

#[test]
#[cfg(unix)]
fn a_review_issue_becomes_the_issue_authors_review_file_and_a_bad_one_writes_nothing() {
    let registry = registry();
    let events = tempfile::tempdir().unwrap();
    let form = |plugin: &str, stars: &str, text: &str| {
        format!("### Plugin\n\n{plugin}\n\n### Version\n\n1.0.0\n\n### Stars\n\n{stars}\n\n### Review\n\n{text}\n")
    };
    // The body claims another author: the file is the issue author's all the same.
    let body = form("acme.clock", "4", "Keeps *perfect* time.\n\n\"author\": \"mallory\"");
    let output = review_from_issue(registry.path(), &issue_event(events.path(), "octocat", &body));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "reviews/acme.clock/octocat.json");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.path().join("reviews/acme.clock/octocat.json")).unwrap())
            .unwrap();
    assert_eq!(written["author"], "octocat");
    assert_eq!(written["stars"], 4);
    assert_eq!(written["date"], "2026-11-21");
    assert_eq!(written["state"], "visible");
    assert!(written["text"].as_str().unwrap().starts_with("Keeps *perfect* time."));
    let github_output = std::fs::read_to_string(events.path().join("github_output")).unwrap();
    assert_eq!(github_output, "path=reviews/acme.clock/octocat.json\n");
    assert!(!registry.path().join("reviews/acme.clock/mallory.json").exists());
    let (code, _, stderr) = check(registry.path());
    assert_eq!(code, 0, "{stderr}");

    // Refused: raw HTML, an unknown plugin, a second review by the same author.
    for (login, body, reason) in [
        ("hubot", form("acme.clock", "5", "<script>alert(1)</script>"), "HTML"),
        ("hubot", form("acme.nothere", "5", "Fine."), "acme.nothere"),
        ("octocat", form("acme.clock", "1", "Changed my mind."), "already reviewed"),
        ("hubot", "I love it".to_owned(), "form"),
    ] {
        let output = review_from_issue(registry.path(), &issue_event(events.path(), login, &body));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{reason}: {stderr}");
        assert!(stderr.contains(reason), "{reason}: {stderr}");
        assert!(!registry.path().join("reviews/acme.clock/hubot.json").exists(), "{reason}: nothing written");
        assert!(!registry.path().join("reviews/acme.nothere").exists(), "{reason}: no directory left behind");
    }
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.path().join("reviews/acme.clock/octocat.json")).unwrap())
            .unwrap();
    assert_eq!(kept["stars"], 4, "the first review is kept");
    let (code, _, stderr) = check(registry.path());
    assert_eq!(code, 0, "the refusals left nothing behind: {stderr}");
}

#[test]
fn the_example_registrys_reviews_pass_the_check() {
    let registry = registry();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/examples/reviews/acme.clock");
    let dir = registry.path().join("reviews/acme.clock");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let (code, report, stderr) = check(registry.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["reviews"], 2);
    assert_eq!(report["ratings"]["acme.clock"]["tenths"], 45);
}
