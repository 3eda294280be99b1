//! The example host app (`client/examples/host.rs`) driven end to end: its hooks run
//! the installed plugins' entry points for real, so a plugin that fails to start makes
//! the update roll back.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Plugin, Site};

fn host_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "trellis-client", "--example", "host"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success());
    target.join("debug/examples").join(format!("host{}", std::env::consts::EXE_SUFFIX))
}

fn host(bin: &Path, data: &Path, args: &[&str]) -> String {
    let out = Command::new(bin).arg(data).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "host {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn host_hooks_run_plugin_entry_points_and_a_plugin_that_fails_to_start_is_rolled_back() {
    let site = Site::new();
    site.publish(&[
        Plugin::new("acme.time-core", "1.0.0"),
        Plugin::new("acme.clock", "1.0.0").depends_on("acme.time-core", "^1").permission("notifications", "show"),
    ]);
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let bin = host_bin();

    host(&bin, data.path(), &["registry", "main", &site.url(), root.path().to_str().unwrap()]);
    let out = host(&bin, data.path(), &["install", "acme.clock"]);
    assert!(out.contains("[host] started acme.time-core 1.0.0: acme.time-core 1.0.0 running"), "{out}");
    assert!(out.contains("[host] started acme.clock 1.0.0: acme.clock 1.0.0 running"), "{out}");
    // Consent comes first, naming the plugin, before anything is started.
    let asked = out.find("[host]   acme.clock 1.0.0 may show desktop notifications").expect(&out);
    assert!(asked < out.find("[host] started").unwrap(), "{out}");
    let menu: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("host-menu.json")).unwrap()).unwrap();
    assert_eq!(menu, serde_json::json!({"acme.clock": "1.0.0", "acme.time-core": "1.0.0"}));

    site.publish(&[Plugin::new("acme.clock", "1.1.0")
        .depends_on("acme.time-core", "^1")
        .permission("notifications", "show")
        .permission("network", "internet")]);
    let out = host(&bin, data.path(), &["update"]);
    assert!(out.contains("[host] stopped acme.clock 1.0.0"), "{out}");
    // The new permission is agreed to before the running release is stopped.
    let asked = out.find("[host] consent dialog: acme.clock 1.1.0").expect(&out);
    assert!(asked < out.find("[host] stopped acme.clock 1.0.0").unwrap(), "{out}");
    assert!(out.contains("[host] started acme.clock 1.1.0: acme.clock 1.1.0 running"), "{out}");

    let mut broken = Plugin::new("acme.clock", "1.2.0")
        .depends_on("acme.time-core", "^1")
        .permission("notifications", "show")
        .permission("network", "internet");
    broken.script = "#!/bin/sh\nexit 3\n".into();
    site.publish(&[broken]);
    let out = host(&bin, data.path(), &["update"]);
    assert!(out.contains("update of acme.clock to 1.2.0 failed, rolled back"), "{out}");
    assert!(out.contains("[host] started acme.clock 1.1.0: acme.clock 1.1.0 running"), "restarted: {out}");

    let out = host(&bin, data.path(), &["run"]);
    assert!(out.contains("[host] started acme.clock 1.1.0"), "{out}");
    let (dependency, dependent) =
        (out.find("started acme.time-core").unwrap(), out.find("started acme.clock").unwrap());
    assert!(dependency < dependent, "dependencies start first: {out}");
    let out = host(&bin, data.path(), &["remove", "acme.time-core"]);
    assert!(out.contains("[host] removed acme.clock from the plugin menu"), "{out}");
    assert!(out.contains("[store] removed acme.clock too: it needs acme.time-core (the removal cascades)"), "{out}");
    let menu: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("host-menu.json")).unwrap()).unwrap();
    assert_eq!(menu, serde_json::json!({}));
}

#[test]
fn the_host_gates_its_premium_feature_on_the_license_state_and_does_not_start_an_ended_trial() {
    let site = Site::new();
    site.publish(&[Plugin::new("acme.pro", "1.0.0").priced("paid", 14), Plugin::new("acme.free", "1.0.0")]);
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let bin = host_bin();
    host(&bin, data.path(), &["registry", "main", &site.url(), root.path().to_str().unwrap()]);
    let out = host(&bin, data.path(), &["install", "acme.pro"]);
    assert!(
        out.contains("[host] acme.pro license: trial, 14 day(s) left (ends ")
            && out.contains("; feature \"export\" unlocked"),
        "told through HostHooks::license at install: {out}"
    );
    host(&bin, data.path(), &["install", "acme.free"]);
    let out = host(&bin, data.path(), &["run"]);
    assert!(out.contains("[host] started acme.pro 1.0.0"), "{out}");

    // Fifteen days on, the trial is over: the host does not start the paid plugin, and
    // the free one still runs.
    let later = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(15 * 24)).unwrap().to_string();
    let out = Command::new(&bin).arg(data.path()).arg("run").env("TRELLIS_HOST_NOW", &later).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("[host] not starting acme.pro: trial ended"), "{text}");
    assert!(!text.contains("[host] started acme.pro"), "{text}");
    assert!(text.contains("[host] started acme.free 1.0.0"), "{text}");
}
