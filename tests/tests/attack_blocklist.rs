//! Issue 10, items 4, 11 and two of 12, performed against a real site built by
//! `trellis-index` and served on 127.0.0.1:
//! - the blocklist must reach pre-releases (ranges), installed copies named by package
//!   hash, and blocked dependencies, reporting and disabling instead of failing the
//!   whole check;
//! - `install` never picks a pre-release unless asked;
//! - a blocked plugin is visible: `list`, `info`, `verify` and `update` (also with
//!   `--json`, and with stdout and stderr as pipes) show the mark and the warning;
//! - Windows device names are no plugin or vendor ids;
//! - a new dependency of an update the policy skips is not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Plugin, Site, clock, clock_site, store, trellis_bin};
use semver::Version;
use trellis_client::hooks::RecordingHooks;
use trellis_client::resolve::PreReleases;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreError, install::parse_requirement};
use trellis_index::operator;
use trellis_index::registry::Registry;
use trellis_schema::PluginId;
use trellis_schema::blocklist::{BlockEntry, Severity};
use trellis_schema::digest::Sha256;

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn entry(plugin: &str, versions: Option<&str>, sha256: Option<Sha256>, severity: Severity, reason: &str) -> BlockEntry {
    BlockEntry {
        id: id(plugin),
        versions: versions.map(|r| r.parse().unwrap()),
        sha256,
        reason: reason.into(),
        severity,
        advisory: Some("https://example.org/advisories/7".into()),
        added: "2026-11-30".into(),
    }
}

/// What `trellis-index block` does: a blocklist entry in the registry, then a build.
fn block(site: &Site, entry: BlockEntry) {
    let registry = Registry::open(site.registry.path()).unwrap();
    operator::block(&registry, entry).unwrap();
    site.build();
}

/// A site with `acme.time-core 1.0.0`, `acme.clock 1.0.0` and `acme.clock 1.2.0-rc.1`.
fn site_with_a_prerelease() -> Site {
    let site = clock_site();
    site.publish(&[clock("1.2.0-rc.1")]);
    site
}

fn installed(store: &Store) -> Vec<(String, String)> {
    store.state().installed_versions().into_iter().map(|(id, v)| (id.to_string(), v.to_string())).collect()
}

#[test]
fn install_never_picks_a_prerelease_unless_asked() {
    let site = site_with_a_prerelease();
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);

    let data = tempfile::tempdir().unwrap();
    let mut plain = store(data.path(), &site);
    let report = plain.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    assert!(report.installed.contains(&(id("acme.clock"), v("1.0.0"))), "{report:?}");

    let data = tempfile::tempdir().unwrap();
    let mut named = store(data.path(), &site);
    named.install(&[parse_requirement("acme.clock@1.2.0-rc.1").unwrap()], &session).unwrap();
    assert_eq!(named.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.2.0-rc.1"));

    let data = tempfile::tempdir().unwrap();
    let mut pre = store(data.path(), &site);
    pre.install_with(&[parse_requirement("acme.clock").unwrap()], PreReleases::Allow, &session).unwrap();
    assert_eq!(pre.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.2.0-rc.1"));
}

#[test]
fn a_range_block_reaches_prereleases() {
    for range in ["*", ">=1.0.0"] {
        let site = site_with_a_prerelease();
        let data = tempfile::tempdir().unwrap();
        let mut store = store(data.path(), &site);
        let hooks = RecordingHooks::new();
        let session = Session::new(&hooks, &AlwaysAgree);
        store.install(&[parse_requirement("acme.time-core").unwrap()], &session).unwrap();
        block(&site, entry("acme.clock", Some(range), None, Severity::Critical, "ships a keylogger"));
        let before = installed(&store);

        let error = store.install(&[parse_requirement("acme.clock@1.2.0-rc.1").unwrap()], &session).unwrap_err();
        assert!(matches!(error, StoreError::Resolve(_)), "{range}: {error}");
        let message = error.to_string();
        assert!(message.contains("1.2.0-rc.1 is blocked, severity critical: ships a keylogger"), "{range}: {message}");
        assert_eq!(installed(&store), before, "{range}: nothing was installed");
        assert!(!store.data_dir().release_dir(&id("acme.clock"), &v("1.2.0-rc.1")).exists());
    }
}

#[test]
fn a_range_block_disables_an_installed_prerelease() {
    let site = site_with_a_prerelease();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock@1.2.0-rc.1").unwrap()], &session).unwrap();
    let before = installed(&store);
    block(&site, entry("acme.clock", Some(">=1.0.0"), None, Severity::High, "crashes the host"));

    let check = store.check_updates(&[], &session).unwrap();
    let blocked: Vec<(String, String)> =
        check.blocked.iter().map(|b| (b.plugin.to_string(), b.version.to_string())).collect();
    assert_eq!(blocked, [("acme.clock".to_owned(), "1.2.0-rc.1".to_owned())]);
    assert_eq!(hooks.trace().last().unwrap(), "stop acme.clock 1.2.0-rc.1");
    let mark = store.state().plugin(&id("acme.clock")).unwrap().disabled.clone().unwrap();
    assert_eq!((mark.severity(), mark.reason.as_str()), (Some(Severity::High), "crashes the host"));
    assert_eq!(installed(&store), before);
}

#[test]
fn a_hash_block_disables_the_installed_copy_without_failing_the_update() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    let (_, doc) = store.info(&id("acme.clock")).unwrap();
    let digest = doc.release(&v("1.0.0")).unwrap().package.sha256;
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.package_sha256, Some(digest));
    let before = installed(&store);
    block(&site, entry("acme.clock", None, Some(digest), Severity::Critical, "this build was tampered with"));

    let check = store.check_updates(&[], &session).unwrap();
    assert_eq!(check.blocked.len(), 1, "{check:?}");
    assert_eq!(check.blocked[0].plugin, id("acme.clock"));
    assert_eq!(check.blocked[0].mark.reason, "this build was tampered with");
    assert_eq!(hooks.trace().last().unwrap(), "stop acme.clock 1.0.0");
    let report = store.update(&[], &session).unwrap();
    assert!(report.rolled_back.is_empty() && report.updated.is_empty(), "{report:?}");
    assert_eq!(report.blocked.len(), 1);
    assert_eq!(installed(&store), before);
    assert!(store.state().plugin(&id("acme.clock")).unwrap().disabled.is_some());
}

#[test]
fn a_hash_block_reaches_a_copy_recorded_by_an_older_client() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let digest = {
        let mut store = store(data.path(), &site);
        store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
        store.state().plugin(&id("acme.clock")).unwrap().active.package_sha256.unwrap()
    };
    // The state file as an older client wrote it: no package digests.
    let path = data.path().join("state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for (_, plugin) in state["plugins"].as_object_mut().unwrap() {
        plugin["active"].as_object_mut().unwrap().remove("package_sha256");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    block(&site, entry("acme.clock", None, Some(digest), Severity::Critical, "this build was tampered with"));

    let mut store = store(data.path(), &site);
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.package_sha256, None, "old state readable");
    let check = store.check_updates(&[], &session).unwrap();
    assert_eq!(check.blocked.len(), 1, "matched through the index doc's listing: {check:?}");
    assert!(store.state().plugin(&id("acme.clock")).unwrap().disabled.is_some());
}

#[test]
fn a_blocked_dependency_is_reported_and_disabled_and_the_check_goes_on() {
    let site = clock_site();
    site.publish(&[Plugin::new("contoso.weather", "1.0.0")]);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store
        .install(&[parse_requirement("acme.clock").unwrap(), parse_requirement("contoso.weather").unwrap()], &session)
        .unwrap();
    site.publish(&[Plugin::new("contoso.weather", "1.1.0")]);
    block(&site, entry("acme.time-core", None, None, Severity::Critical, "exfiltrates the clipboard"));

    let check = store.check_updates(&[], &session).unwrap();
    let blocked: Vec<&str> = check.blocked.iter().map(|b| b.plugin.as_str()).collect();
    assert_eq!(blocked, ["acme.time-core"]);
    let held: Vec<(&str, Vec<PluginId>)> =
        check.held_back.iter().map(|h| (h.plugin.as_str(), h.blocked_dependencies.clone())).collect();
    assert_eq!(held, [("acme.clock", vec![id("acme.time-core")])]);
    let updates: Vec<&str> = check.updates.iter().map(|u| u.plugin.as_str()).collect();
    assert_eq!(updates, ["contoso.weather"], "the other plugins still get their updates");
    assert!(hooks.trace().contains(&"stop acme.time-core 1.0.0".to_owned()));

    let report = store.update(&[], &session).unwrap();
    assert_eq!(report.updated, [(id("contoso.weather"), v("1.0.0"), v("1.1.0"))]);
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
    assert_eq!(store.state().plugin(&id("acme.time-core")).unwrap().active.version, v("1.0.0"));
    assert!(store.state().plugin(&id("acme.time-core")).unwrap().disabled.is_some());
    assert!(store.state().plugin(&id("acme.clock")).unwrap().disabled.is_none(), "only the blocked plugin is disabled");
}

#[test]
fn a_new_dependency_of_an_update_the_policy_skips_is_not_installed() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    let before = installed(&store);
    site.publish(&[Plugin::new("acme.tz", "1.0.0"), clock("1.1.0").depends_on("acme.tz", "^1")]);

    // The default policy is "notify": a scheduled update skips acme.clock 1.1.0.
    let report = store.scheduled_update(&session).unwrap().unwrap();
    let skipped: Vec<(&str, String)> = report.skipped.iter().map(|(id, v, _)| (id.as_str(), v.to_string())).collect();
    assert_eq!(skipped, [("acme.clock", "1.1.0".to_owned())]);
    assert!(report.installed.is_empty(), "acme.tz came in for a skipped update: {report:?}");
    assert!(store.state().plugin(&id("acme.tz")).is_none());
    assert!(!store.data_dir().release_dir(&id("acme.tz"), &v("1.0.0")).exists());
    assert_eq!(installed(&store), before);
    assert!(hooks.trace().iter().all(|call| !call.contains("acme.tz")), "{:?}", hooks.trace());

    // Applied, the update brings its new dependency with it.
    let report = store.update(&[id("acme.clock")], &session).unwrap();
    assert_eq!(report.installed, [(id("acme.tz"), v("1.0.0"))]);
}

#[test]
fn windows_device_names_are_no_plugin_or_vendor_ids() {
    let site = clock_site();
    let cli = Cli::new(&site);
    for wanted in ["nul.clock", "acme.con", "lpt1.clock", "acme.Aux"] {
        let out = cli.run(&["install", wanted]);
        assert_eq!(out.status.code(), Some(2), "{wanted}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("`{wanted}` is not a plugin id")), "{wanted}: {}", stderr(&out));
    }
    let out = cli.run(&["install", "nul.clock"]);
    assert!(stderr(&out).contains("Windows device name NUL"), "{}", stderr(&out));
    // A state file naming one (written elsewhere) is refused as damaged, not used.
    let state = cli.data.path().join("state.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    json["plugins"] = serde_json::json!({"con.clock": {"registry": "main", "active": {"version": "1.0.0"}}});
    std::fs::write(&state, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = cli.run(&["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Windows device name CON") && stderr(&out).contains("is damaged"),
        "{}",
        stderr(&out)
    );
}

struct Cli {
    bin: std::path::PathBuf,
    data: tempfile::TempDir,
}

impl Cli {
    /// A data dir with `site` added as registry `main`.
    fn new(site: &Site) -> Self {
        let cli = Self { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
        let root = cli.data.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        let out = cli.run(&["registry", "add", "main", &site.url(), "--root", root.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        cli
    }

    /// Runs `trellis` with stdout and stderr as pipes (not a terminal).
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).arg("--data-dir").arg(self.data.path()).args(args).output().unwrap()
    }

    /// `--json` output: exactly one JSON document on stdout.
    fn json(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let text = stdout(&out);
        let mut documents = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
        let first = documents.next().unwrap_or_else(|| panic!("no JSON from {args:?}: {text}")).unwrap();
        assert!(documents.next().is_none(), "more than one JSON document from {args:?}: {text}");
        (out.status.code(), first["result"].clone())
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn data_dir_has(dir: &Path, plugin: &str) -> bool {
    dir.join("plugins").join(plugin).exists()
}

#[test]
fn a_blocked_plugin_is_marked_in_every_listing_and_warned_about_without_a_terminal() {
    let site = clock_site();
    let cli = Cli::new(&site);
    let out = cli.run(&["--yes", "install", "acme.clock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    block(&site, entry("acme.clock", None, None, Severity::Critical, "uploads your documents"));

    // The update that finds the block: a warning on stderr (a pipe), the mark on stdout.
    let out = cli.run(&["update"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (text, warnings) = (stdout(&out), stderr(&out));
    assert!(
        warnings
            .contains("warning: acme.clock: acme.clock 1.0.0 is blocked (critical severity): uploads your documents"),
        "no warning on stderr: {warnings}"
    );
    assert!(warnings.contains("stopped and disabled"), "{warnings}");
    assert!(text.contains("acme.clock 1.0.0: BLOCKED (critical severity): uploads your documents"), "{text}");
    assert!(text.contains("advisory https://example.org/advisories/7"), "{text}");

    let list = stdout(&cli.run(&["list"]));
    assert!(
        list.contains("acme.clock 1.0.0") && list.contains("BLOCKED (critical severity): uploads your documents"),
        "{list}"
    );
    assert!(!list.lines().any(|l| l.starts_with("acme.time-core") && l.contains("BLOCKED")), "{list}");
    let info = stdout(&cli.run(&["info", "acme.clock"]));
    assert!(info.contains("BLOCKED (critical severity): uploads your documents; advisory"), "{info}");
    assert!(info.contains("1.0.0  [stable, BLOCKED (critical severity): uploads your documents]"), "{info}");
    let verify = cli.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(1), "a disabled plugin fails verify: {}", stdout(&verify));
    assert!(stdout(&verify).contains("acme.clock 1.0.0: BLOCKED (critical severity)"), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("acme.time-core 1.0.0: ok"), "{}", stdout(&verify));
    assert!(stderr(&verify).contains("are disabled"), "{}", stderr(&verify));

    // --json: one document each, with cause, severity, reason and since.
    let (code, list) = cli.json(&["list"]);
    assert_eq!(code, Some(0));
    let clock = list.as_array().unwrap().iter().find(|p| p["id"] == "acme.clock").unwrap();
    let mark = &clock["record"]["disabled"];
    assert_eq!(mark["cause"]["kind"], "blocked");
    assert_eq!(mark["cause"]["severity"], "critical");
    assert_eq!(mark["reason"], "uploads your documents");
    assert!(mark["since"].is_string(), "{mark}");
    let (_, info) = cli.json(&["info", "acme.clock"]);
    assert_eq!(info["installed"]["disabled"]["cause"]["severity"], "critical");
    assert_eq!(info["blocked_releases"][0]["severity"], "critical");
    let (code, verify) = cli.json(&["verify"]);
    assert_eq!(code, Some(1));
    let clock = verify.as_array().unwrap().iter().find(|r| r["plugin"] == "acme.clock").unwrap();
    assert_eq!(clock["disabled"]["cause"]["severity"], "critical");
    let (code, check) = cli.json(&["update", "--check"]);
    assert_eq!(code, Some(0));
    assert_eq!(check["blocked"][0]["plugin"], "acme.clock");
    assert_eq!(check["blocked"][0]["mark"]["cause"]["severity"], "critical");
    assert!(data_dir_has(cli.data.path(), "acme.clock"), "disabled, not removed");
}

#[test]
fn a_blocked_plugin_moves_to_a_fixed_release_and_is_enabled_again() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    block(&site, entry("acme.clock", Some("=1.0.0"), None, Severity::High, "corrupts calendars"));
    assert_eq!(store.check_updates(&[], &session).unwrap().blocked.len(), 1);
    assert!(store.state().plugin(&id("acme.clock")).unwrap().disabled.is_some());

    site.publish(&[clock("0.9.0"), clock("1.0.1")]);
    let check = store.check_updates(&[], &session).unwrap();
    let offered: Vec<(String, String)> =
        check.updates.iter().map(|u| (u.plugin.to_string(), u.to.to_string())).collect();
    assert_eq!(offered, [("acme.clock".to_owned(), "1.0.1".to_owned())], "the fix, never the older 0.9.0");
    let report = store.update(&[], &session).unwrap();
    assert_eq!(report.updated, [(id("acme.clock"), v("1.0.0"), v("1.0.1"))]);
    let record = store.state().plugin(&id("acme.clock")).unwrap();
    assert!(record.disabled.is_none(), "the fixed release is enabled: {record:?}");
    assert!(store.check_updates(&[], &session).unwrap().blocked.is_empty());
}
