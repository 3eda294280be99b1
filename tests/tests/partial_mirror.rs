//! Partial mirrors and offline installs (issue 12 §3): `trellis-index mirror SOURCE DEST
//! --only ID [--with-dependencies]` copies all metadata and only the chosen plugins'
//! blobs (and their dependency closure from the signed index docs); `verify` accepts the
//! copy as a partial mirror without weakening `--full`; the `trellis` binary pointed at
//! the folder (`file://`, no network) installs those plugins with the same verification
//! and says clearly when a plugin's files are not in the mirror. Both binaries run as a
//! user would run them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Plugin, Site, clock, trellis_bin, trellis_index_bin};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn index(args: &[&str]) -> Output {
    Command::new(trellis_index_bin()).args(args).output().unwrap()
}

/// `acme.time-core`, `acme.clock` (needs time-core) and the unrelated `acme.timer`.
fn site() -> Site {
    let site = Site::new();
    site.publish(&[Plugin::new("acme.time-core", "1.0.0"), clock("1.0.0"), Plugin::new("acme.timer", "1.0.0")]);
    site
}

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// The blob files under `dir` (packages and envelopes), by file name ending.
fn blobs(dir: &Path) -> Vec<String> {
    common::files(&dir.join("targets"))
        .into_iter()
        .filter(|f| f.ends_with(".zip") || f.ends_with(".dsse"))
        .map(|f| f.rsplit('/').next().unwrap().split_once('.').unwrap().1.to_owned())
        .collect()
}

/// The `trellis` binary on its own data dir, with the mirror at `dest` as registry `usb`.
struct Offline {
    bin: PathBuf,
    data: tempfile::TempDir,
}

impl Offline {
    fn new(pinned_root: &[u8], dest: &Path) -> Self {
        let this = Self { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
        let root = this.data.path().join("pinned-root.json");
        std::fs::write(&root, pinned_root).unwrap();
        let out = this.run(&["registry", "add", "usb", &file_url(dest), "--root", root.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        this
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).arg("--data-dir").arg(self.data.path()).args(args).output().unwrap()
    }

    fn installed(&self) -> serde_json::Value {
        let envelope: serde_json::Value = serde_json::from_slice(&self.run(&["--json", "list"]).stdout).unwrap();
        envelope["result"].clone()
    }
}

#[test]
fn a_partial_mirror_with_dependencies_verifies_and_installs_offline() {
    let site = site();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("usb site");
    // SOURCE as the deployed URL.
    let out = index(&["mirror", &site.url(), dest.to_str().unwrap(), "--only", "acme.clock", "--with-dependencies"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("partial mirror: blobs of acme.clock, acme.time-core only (1 other plugin(s) left out)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("verified:"), "{}", text(&out));
    let mut copied = blobs(&dest);
    copied.sort();
    assert_eq!(
        copied,
        ["acme.clock-1.0.0.dsse", "acme.clock-1.0.0.zip", "acme.time-core-1.0.0.dsse", "acme.time-core-1.0.0.zip"]
    );
    // Every piece of metadata is there: the index doc of the left-out plugin too.
    let docs: Vec<String> = common::files(&dest.join("targets/index")).into_iter().collect();
    assert!(docs.iter().any(|d| d.ends_with(".acme.timer.json")), "{docs:?}");
    // And each index doc's alias, made from the doc the mirror checked.
    for id in ["acme.clock", "acme.time-core", "acme.timer"] {
        let alias = std::fs::read(dest.join(common::alias_path(id).trim_start_matches('/'))).unwrap();
        let doc = std::fs::read(site.site.path().join(common::doc_path(&site, id).trim_start_matches('/'))).unwrap();
        assert_eq!(alias, doc, "{id}");
    }

    let verified = index(&["verify", dest.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains(", 3 index doc alias(es)"), "{}", text(&verified));
    assert!(!text(&verified).contains("no alias") && !text(&verified).contains("stale"), "{}", text(&verified));
    assert!(text(&verified).contains("partial mirror: holds the blobs of acme.clock, acme.time-core only; 2 blob(s) of other plugins are absent by design"), "{}", text(&verified));
    let full = index(&["verify", "--full", dest.to_str().unwrap()]);
    assert_eq!(full.status.code(), Some(1), "{}", text(&full));
    assert!(text(&full).contains("acme.timer 1.0.0: targets/plugins/acme/acme.timer/"), "{}", text(&full));

    // No network from here: the client only knows the folder (and its pinned root).
    let pinned = site.root();
    drop(site.server);
    let client = Offline::new(&pinned, &dest);
    let out = client.run(&["--yes", "install", "acme.clock"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = client.installed();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme.clock", "acme.time-core"]);

    // A plugin whose files the mirror does not have: a clear refusal, nothing changes.
    let out = client.run(&["--yes", "install", "acme.timer"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the files of acme.timer are not in this mirror"), "{}", text(&out));
    assert!(text(&out).contains("--only acme.timer"), "{}", text(&out));
    assert_eq!(client.installed(), listed);
}

#[test]
fn without_dependencies_the_missing_dependency_is_named() {
    let site = site();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("mirror");
    // SOURCE as a site directory.
    let out = index(&["mirror", site.site.path().to_str().unwrap(), dest.to_str().unwrap(), "--only", "acme.clock"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(index(&["verify", dest.to_str().unwrap()]).status.success());
    let client = Offline::new(&site.root(), &dest);
    let out = client.run(&["--yes", "install", "acme.clock"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the files of acme.time-core are not in this mirror"), "{}", text(&out));
    assert_eq!(client.installed(), serde_json::json!([]));
}

#[test]
fn a_tampered_copy_is_refused_by_verify_and_by_the_client() {
    let site = site();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("mirror");
    let out = index(&["mirror", site.site.path().to_str().unwrap(), dest.to_str().unwrap(), "--only", "acme.timer"]);
    assert!(out.status.success(), "{}", text(&out));
    // Someone swaps bytes in the copied package.
    let package =
        common::walk(&dest.join("targets")).into_iter().find(|p| p.to_string_lossy().ends_with(".zip")).unwrap();
    let mut bytes = std::fs::read(&package).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&package, &bytes).unwrap();
    let verified = index(&["verify", dest.to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(1), "a listed plugin's blobs are still checked: {}", text(&verified));
    assert!(text(&verified).contains("acme.timer 1.0.0"), "{}", text(&verified));
    let client = Offline::new(&site.root(), &dest);
    let out = client.run(&["--yes", "install", "acme.timer"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("acme.timer 1.0.0: downloading the package"), "{}", text(&out));
    assert_eq!(client.installed(), serde_json::json!([]));
    // Mirroring the tampered copy again refuses it, naming the file and what lists it.
    let again = work.path().join("again");
    let out = index(&["mirror", dest.to_str().unwrap(), again.to_str().unwrap(), "--only", "acme.timer"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the index doc of acme.timer lists"), "{}", text(&out));
    assert!(text(&out).contains("damaged or tampered"), "{}", text(&out));
    assert!(!again.join("metadata/timestamp.json").exists(), "nothing published");
}

#[test]
fn a_marker_in_a_full_site_does_not_hide_missing_blobs_from_verify_full_and_unknown_ids_are_refused() {
    let site = site();
    let out =
        index(&["mirror", site.site.path().to_str().unwrap(), "/nonexistent-never-written", "--only", "acme.clok"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--only acme.clok: the registry serves no such plugin (did you mean acme.clock?)"),
        "{}",
        text(&out)
    );

    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("full");
    let out = index(&["mirror", site.site.path().to_str().unwrap(), dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(blobs(&dest).len(), 6, "a full mirror holds every blob");
    assert!(!dest.join("trellis-partial-mirror.json").exists());
    // A marker dropped into a site that lost a blob: `--full` still finds it.
    std::fs::write(dest.join("trellis-partial-mirror.json"), br#"{"plugins":["acme.clock"]}"#).unwrap();
    let timer = common::walk(&dest.join("targets"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("acme.timer-1.0.0.zip"))
        .unwrap();
    std::fs::remove_file(timer).unwrap();
    let full = index(&["verify", "--full", dest.to_str().unwrap()]);
    assert_eq!(full.status.code(), Some(1), "{}", text(&full));
    assert!(text(&full).contains("acme.timer 1.0.0") && text(&full).contains("missing"), "{}", text(&full));
    // A damaged marker is a problem, not a way around the check.
    std::fs::write(dest.join("trellis-partial-mirror.json"), b"{}").unwrap();
    let out = index(&["verify", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("trellis-partial-mirror.json: not a partial mirror marker"), "{}", text(&out));
}
