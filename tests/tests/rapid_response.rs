//! Issue 15 §6: `trellis-index block` → build → a client's scheduled check disables the
//! installed copy through the host's hooks; the whole path measured on loopback (steps,
//! time and requests printed as data, never asserted), and the same path through the
//! `trellis` binary (`update --scheduled`, pipes).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{clock_site, trellis_bin, trellis_index_bin};

#[test]
fn a_block_reaches_a_scheduled_check_and_stops_the_installed_copy_measured() {
    let measured = common::rapid_response::measure();
    println!("rapid_response: {}", serde_json::to_string(&measured).unwrap());
    assert!(measured.disabled, "{measured:?}");
    assert_eq!(measured.hooks, ["stop acme.clock 1.0.0"], "the host was told to stop it, nothing else");
    let names: Vec<&str> = measured.steps.iter().map(|s| s.step).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(measured.steps[0].requests + measured.steps[1].requests, 0, "the operator side needs no client");
    assert!(measured.steps[2].requests >= 1, "the check fetched the new timestamp");
    assert_eq!(measured.worst_case_hours, 48 + 24, "documented in registry-template/docs/RAPID-RESPONSE.md");
}

#[test]
fn the_cli_scheduled_check_disables_a_blocked_plugin_and_says_so_on_stderr() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let trellis =
        |args: &[&str]| Command::new(trellis_bin()).arg("--data-dir").arg(data.path()).args(args).output().unwrap();
    let root = data.path().join("root.json");
    std::fs::write(&root, site.root()).unwrap();
    assert!(trellis(&["registry", "add", "main", &site.url(), "--root", root.to_str().unwrap()]).status.success());
    assert!(trellis(&["--yes", "install", "acme.clock"]).status.success());
    // The check interval the docs tell operators to shorten.
    let policy = trellis(&["policy", "--check-interval", "1h"]);
    assert!(String::from_utf8_lossy(&policy.stdout).contains("checked every 1h"), "{policy:?}");
    let refused = trellis(&["policy", "--check-interval", "10s"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("shorter than the shortest check interval, 1m"));

    let registry = site.registry.path().to_str().unwrap();
    let index = |args: &[&str]| {
        let out = Command::new(trellis_index_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    index(&["block", registry, "acme.clock", "--reason", "exfiltrates calendars", "--severity", "critical"]);
    index(&["build", registry, "--out", site.site.path().to_str().unwrap()]);

    let out = trellis(&["--json", "update", "--scheduled"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("acme.clock 1.0.0 is blocked (critical severity): exfiltrates calendars"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["result"]["due"], true, "{json}");
    assert_eq!(json["result"]["report"]["blocked"][0]["plugin"], "acme.clock", "{json}");
    let list = String::from_utf8_lossy(&trellis(&["list"]).stdout).into_owned();
    assert!(list.contains("BLOCKED (critical severity): exfiltrates calendars"), "{list}");
}
