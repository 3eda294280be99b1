//! The administrator policy (issue 12 §4): a machine-wide file the client enforces and
//! names in every refusal. Through the real `trellis` binary (the file found through
//! `TRELLIS_ADMIN_POLICY`): a broken file refuses every command (fail closed), denied
//! and not-allowed plugins, vendors and registries are refused naming the file and the
//! rule with nothing installed, a release asking for a riskier permission than allowed
//! is refused, forced plugins cannot be removed, `policy --show-effective` shows it all.
//! Through the library: the administrator's update window and staged-rollout opt-out
//! hold back scheduled and "update all" updates, not a named one.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::{Plugin, Site, clock, clock_site, host, trellis_bin};
use trellis_client::admin::AdminPolicy;
use trellis_client::hooks::RecordingHooks;
use trellis_client::policy::{Action, Percent, UpdateMode};
use trellis_client::state::InstallId;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_index::operator;
use trellis_index::registry::Registry;

struct Machine {
    bin: PathBuf,
    data: tempfile::TempDir,
    policy: PathBuf,
    root: PathBuf,
}

impl Machine {
    fn new(site: &Site, policy: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let policy_path = data.path().join("etc-trellis-policy.json");
        std::fs::write(&policy_path, policy).unwrap();
        let root = data.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        Self { bin: trellis_bin(), data, policy: policy_path, root }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .env("TRELLIS_ADMIN_POLICY", &self.policy)
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .args(args)
            .output()
            .unwrap()
    }

    fn add_registry(&self, site: &Site) -> Output {
        self.run(&["registry", "add", "main", &site.url(), "--root", self.root.to_str().unwrap()])
    }

    fn installed(&self) -> Vec<String> {
        let envelope: serde_json::Value = serde_json::from_slice(&self.run(&["--json", "list"]).stdout).unwrap();
        envelope["result"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn refused(out: &Output, code: i32, expected: &[&str]) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    for e in expected {
        assert!(text(out).contains(e), "missing {e:?} in: {}", text(out));
    }
}

#[test]
fn a_broken_policy_file_refuses_every_command_naming_the_file() {
    let site = clock_site();
    let machine = Machine::new(&site, "{}");
    assert!(machine.add_registry(&site).status.success());
    assert!(machine.run(&["--yes", "install", "acme.time-core"]).status.success());
    let path = machine.policy.display().to_string();
    for (broken, why) in [
        (r#"{"denied_plugins": ["acme.clock"], "alowed_vendors": ["acme"]}"#, "unknown field `alowed_vendors`"),
        (r#"{"max_permission_risk": "medium""#, "EOF"),
        (r#"{"update_window": "2am-5am"}"#, "update_window"),
    ] {
        std::fs::write(&machine.policy, broken).unwrap();
        for args in [
            &["list"][..],
            &["--yes", "install", "acme.clock"],
            &["remove", "acme.time-core"],
            &["policy", "--show-effective"],
        ] {
            let out = machine.run(args);
            refused(&out, 2, &[&format!("the administrator policy {path} is invalid"), why]);
        }
    }
    std::fs::write(&machine.policy, "{}").unwrap();
    assert_eq!(machine.installed(), ["acme.time-core"], "nothing changed");
}

#[test]
fn denied_or_not_allowed_plugins_vendors_and_registries_are_refused_naming_the_rule() {
    let site = clock_site();
    site.publish(&[
        Plugin::new("contoso.notes", "1.0.0"),
        Plugin::new("acme.shell", "1.0.0").permission("process", "any"),
    ]);
    let machine = Machine::new(&site, r#"{"allowed_registries": ["https://plugins.example.com"]}"#);
    let path = machine.policy.display().to_string();
    refused(
        &machine.add_registry(&site),
        1,
        &[&format!(
            "refused by the administrator policy {path}: registry {} is not in allowed_registries (https://plugins.example.com)",
            site.url().trim_end_matches('/')
        )],
    );
    std::fs::write(
        &machine.policy,
        format!(
            r#"{{"allowed_registries": ["{}"], "allowed_vendors": ["acme"], "denied_plugins": ["acme.time-core"], "max_permission_risk": "medium"}}"#,
            site.url()
        ),
    )
    .unwrap();
    assert!(machine.add_registry(&site).status.success(), "an allowed registry is added");
    // A denied dependency refuses the plugin that needs it.
    refused(
        &machine.run(&["--yes", "install", "acme.clock"]),
        1,
        &[&format!("refused by the administrator policy {path}: acme.time-core is in denied_plugins")],
    );
    refused(
        &machine.run(&["--yes", "install", "contoso.notes"]),
        1,
        &["contoso.notes: vendor contoso is not in allowed_vendors"],
    );
    refused(
        &machine.run(&["--yes", "install", "acme.shell"]),
        1,
        &["acme.shell 1.0.0 asks for process:any (high risk), above max_permission_risk medium"],
    );
    assert_eq!(machine.installed(), Vec::<String>::new(), "nothing was installed");
}

#[test]
fn forced_plugins_cannot_be_removed_and_show_effective_shows_the_rules() {
    let site = clock_site();
    let machine = Machine::new(
        &site,
        r#"{"forced_plugins": ["acme.clock"], "update_window": "02:00-05:00", "staged_rollouts": false}"#,
    );
    assert!(machine.add_registry(&site).status.success());
    let shown = machine.run(&["policy", "--show-effective"]);
    assert!(shown.status.success(), "{}", text(&shown));
    let shown = text(&shown);
    for expected in [
        format!("administrator policy: {}", machine.policy.display()),
        "forced plugins: acme.clock".into(),
        "forced acme.clock: not installed yet".into(),
        "update window: 02:00-05:00".into(),
        "staged rollouts: opted out".into(),
        "your policy: updates".into(),
    ] {
        assert!(shown.contains(&expected), "missing {expected:?}: {shown}");
    }
    // `policy --apply` installs what the policy forces (with its dependency), once.
    let applied = machine.run(&["--yes", "policy", "--apply"]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(
        text(&applied).contains("installed acme.clock 1.0.0 (forced by the administrator policy)"),
        "{}",
        text(&applied)
    );
    assert_eq!(machine.installed(), ["acme.clock", "acme.time-core"]);
    let again: serde_json::Value =
        serde_json::from_slice(&machine.run(&["--json", "--yes", "policy", "--apply"]).stdout).unwrap();
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["result"]["installed"], serde_json::json!([]), "{again}");
    refused(
        &machine.run(&["--yes", "remove", "acme.clock"]),
        1,
        &[&format!(
            "refused by the administrator policy {}: acme.clock is in forced_plugins and cannot be removed",
            machine.policy.display()
        )],
    );
    // A cascade that would take the forced plugin with it is refused too.
    refused(&machine.run(&["--yes", "remove", "--cascade", "acme.time-core"]), 1, &["acme.clock is in forced_plugins"]);
    assert_eq!(machine.installed(), ["acme.clock", "acme.time-core"]);
    let envelope: serde_json::Value =
        serde_json::from_slice(&machine.run(&["--json", "policy", "--show-effective"]).stdout).unwrap();
    let json = &envelope["result"];
    assert_eq!(json["admin_policy"]["rules"]["forced_plugins"], serde_json::json!(["acme.clock"]));
    assert_eq!(json["forced_installed"][0]["installed"], true);
}

fn store_with(data: &Path, site: &Site, policy: &str) -> Store {
    let path = data.join("policy.json");
    let mut options = StoreOptions::new(host());
    options.admin_policy = Some(Arc::new(AdminPolicy::parse(&path, policy.as_bytes()).unwrap()));
    let mut store = Store::open(data.join("data"), options).unwrap();
    if store.registries().registries.is_empty() {
        store.add_registry("main", &site.url(), &site.root()).unwrap();
        store.update_state(|s| s.policies.global.mode = UpdateMode::Auto).unwrap();
        // Bucket 63 (see tests/rollout.rs).
        store
            .update_state(|s| s.install_id = InstallId::from_hex("00112233445566778899aabbccddeeff").unwrap())
            .unwrap();
    }
    store
}

/// A window that is closed now (local time): from two to three hours from now.
fn closed_window() -> String {
    let now = jiff::ZonedDateTime::now();
    let at = |hours: i64| now.checked_add(jiff::SignedDuration::from_hours(hours)).unwrap().time();
    format!("{:02}:{:02}-{:02}:{:02}", at(2).hour(), at(2).minute(), at(3).hour(), at(3).minute())
}

#[test]
fn the_administrators_window_and_rollout_opt_out_hold_back_scheduled_and_update_all_but_not_named_updates() {
    let site = clock_site();
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let clock_id: trellis_schema::PluginId = "acme.clock".parse().unwrap();
    // Publish 1.1.0 rolled out to 90% (this install's bucket, 63, is in).
    site.add(&clock("1.1.0"));
    let registry = Registry::open(site.registry.path()).unwrap();
    operator::rollout(&registry, &clock_id, &"1.1.0".parse().unwrap(), Percent::new(90).unwrap()).unwrap();
    site.build();
    for (policy, reason) in [
        (format!(r#"{{"update_window": "{}"}}"#, closed_window()), "waits for the update window"),
        (r#"{"staged_rollouts": false}"#.to_owned(), "still in a staged rollout (90%), which the administrator policy"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with(dir.path(), &site, &policy);
        store.install(&[parse_requirement("acme.clock@=1.0.0").unwrap()], &session).unwrap();
        let check = store.check_updates(&[], &session).unwrap();
        let planned = &check.updates[0];
        assert_eq!(planned.decision.action, Action::Skip, "{policy}");
        let why = planned.decision.reason.to_string();
        assert!(why.contains(reason) && why.contains(&dir.path().join("policy.json").display().to_string()), "{why}");
        let all = store.update(&[], &session).unwrap();
        assert!(all.updated.is_empty() && all.skipped.len() == 1, "{all:?}");
        let named = store.update(std::slice::from_ref(&clock_id), &session).unwrap();
        assert_eq!(named.updated.len(), 1, "a named update goes ahead: {named:?}");
    }
}

#[test]
fn forced_plugins_are_installed_by_install_forced_and_only_once() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let mut store = store_with(data.path(), &site, r#"{"forced_plugins": ["acme.clock"]}"#);
    let report = store.install_forced(&session).unwrap();
    let installed: Vec<String> = report.installed.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(installed, ["acme.time-core", "acme.clock"]);
    assert_eq!(store.install_forced(&session).unwrap().installed, [], "nothing is missing any more");
    // A forced plugin denied by the same file is a broken policy, not a silent choice.
    let error =
        AdminPolicy::parse(Path::new("p.json"), br#"{"forced_plugins":["acme.a"],"denied_plugins":["acme.a"]}"#)
            .unwrap_err()
            .to_string();
    assert!(error.contains("p.json is invalid: acme.a is both forced and denied"), "{error}");
}

#[test]
fn a_plugin_the_policy_denies_after_it_was_installed_is_disabled_at_the_next_refresh_and_enabled_when_allowed() {
    let site = clock_site();
    let machine = Machine::new(&site, "{}");
    assert!(machine.add_registry(&site).status.success());
    assert!(machine.run(&["--yes", "install", "acme.clock"]).status.success());
    // The administrator denies it afterwards: the next refresh stops and disables it,
    // naming the file and the rule, like a blocked plugin.
    std::fs::write(&machine.policy, r#"{"denied_plugins": ["acme.clock"]}"#).unwrap();
    let out = machine.run(&["--yes", "update"]);
    assert!(out.status.success(), "{}", text(&out));
    let expected =
        format!("acme.clock 1.0.0 is denied: refused by the administrator policy {}", machine.policy.display());
    assert!(text(&out).contains(&expected) && text(&out).contains("acme.clock is in denied_plugins"), "{}", text(&out));
    assert!(text(&out).contains("it was stopped and disabled"), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&machine.run(&["--json", "list"]).stdout).unwrap();
    let clock = list["result"].as_array().unwrap().iter().find(|p| p["id"] == "acme.clock").unwrap().clone();
    assert_eq!(clock["record"]["disabled"]["cause"]["kind"], "admin_policy", "{clock}");
    let core = list["result"].as_array().unwrap().iter().find(|p| p["id"] == "acme.time-core").unwrap().clone();
    assert!(core["record"]["disabled"].is_null(), "only the denied plugin: {core}");
    // A second refresh does not disable (or warn) again.
    let out = machine.run(&["--yes", "update"]);
    assert!(!text(&out).contains("is denied"), "{}", text(&out));
    // Allowed again: enabled at the next refresh.
    std::fs::write(&machine.policy, "{}").unwrap();
    let out = machine.run(&["--yes", "update"]);
    assert!(
        text(&out).contains("acme.clock 1.0.0 is allowed by the administrator policy again: enabled"),
        "{}",
        text(&out)
    );
    let list: serde_json::Value = serde_json::from_slice(&machine.run(&["--json", "list"]).stdout).unwrap();
    let clock = list["result"].as_array().unwrap().iter().find(|p| p["id"] == "acme.clock").unwrap().clone();
    assert!(clock["record"]["disabled"].is_null(), "{clock}");
}

#[test]
fn an_installed_plugin_above_a_lowered_risk_ceiling_is_disabled_naming_the_permission() {
    let site = clock_site();
    site.publish(&[Plugin::new("acme.shell", "1.0.0").permission("process", "any")]);
    let machine = Machine::new(&site, "{}");
    assert!(machine.add_registry(&site).status.success());
    assert!(machine.run(&["--yes", "install", "acme.shell", "acme.clock"]).status.success());
    // The administrator lowers the ceiling: the installed high-risk plugin is stopped
    // and disabled at the next refresh; the low-risk ones keep running.
    std::fs::write(&machine.policy, r#"{"max_permission_risk": "medium"}"#).unwrap();
    let out = machine.run(&["--yes", "update"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("acme.shell 1.0.0 asks for process:any (high risk), above max_permission_risk medium")
            && text(&out).contains("it was stopped and disabled"),
        "{}",
        text(&out)
    );
    let list: serde_json::Value = serde_json::from_slice(&machine.run(&["--json", "list"]).stdout).unwrap();
    let disabled: Vec<&str> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["record"]["disabled"]["cause"]["kind"] == "admin_policy")
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(disabled, ["acme.shell"], "{list}");
    // Raised again: enabled at the next refresh.
    std::fs::write(&machine.policy, r#"{"max_permission_risk": "high"}"#).unwrap();
    let out = machine.run(&["--yes", "update"]);
    assert!(
        text(&out).contains("acme.shell 1.0.0 is allowed by the administrator policy again: enabled"),
        "{}",
        text(&out)
    );
}
