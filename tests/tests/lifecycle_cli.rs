//! The `trellis` binary end to end against a real served registry: every command group,
//! `--json`, `--yes`, and the documented exit codes (0 ok, 1 failed, 2 usage/config).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Site, clock, clock_site, trellis_bin};

struct Cli {
    bin: PathBuf,
    data: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self { bin: trellis_bin(), data: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).arg("--data-dir").arg(self.data.path()).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "trellis {args:?} failed: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    /// The `result` of the one `--json` document.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let document: serde_json::Value = serde_json::from_str(&self.ok(&all)).unwrap();
        assert_eq!(document["schema_version"], 1, "{document}");
        document["result"].clone()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn site_with_clock() -> (Site, tempfile::NamedTempFile) {
    let site = clock_site();
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();
    (site, root)
}

#[test]
fn cli_walks_install_update_rollback_remove_with_json_and_text_output() {
    let (site, root) = site_with_clock();
    let cli = Cli::new();
    let url = site.url();
    let root = root.path().to_str().unwrap();

    assert!(cli.ok(&["registry", "add", "main", &url, "--root", root]).contains("added registry main"));
    let list = cli.json(&["registry", "list"]);
    assert_eq!(list["registries"][0]["name"], "main");

    let found = cli.ok(&["search", "clock"]);
    assert!(found.contains("acme.clock  1.0.0"), "{found}");
    assert!(!found.contains("time-core"), "{found}");
    let info = cli.ok(&["info", "acme.clock"]);
    assert!(info.contains("needs acme.time-core ^1") && info.contains("show desktop notifications"), "{info}");

    // Without --yes and without a terminal, consent is refused: exit 1, nothing installed.
    let refused = cli.run(&["install", "acme.clock"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("notifications"), "permissions were shown: {}", stderr(&refused));
    assert_eq!(cli.json(&["list"]), serde_json::json!([]));

    let installed = cli.ok(&["--yes", "install", "acme.clock"]);
    assert!(installed.contains("installed acme.time-core 1.0.0"), "{installed}");
    assert!(installed.contains("installed acme.clock 1.0.0"), "{installed}");
    assert!(installed.contains("show desktop notifications"), "permissions shown: {installed}");
    assert!(cli.ok(&["verify"]).contains("acme.clock 1.0.0: ok"));

    site.publish(&[clock("1.1.0")]);
    let check = cli.json(&["update", "--check"]);
    assert_eq!(check["updates"][0]["plugin"], "acme.clock");
    assert_eq!(check["updates"][0]["to"], "1.1.0");
    assert_eq!(check["updates"][0]["decision"]["action"], "notify");
    let updated = cli.json(&["--yes", "update"]);
    assert_eq!(updated["updated"][0], serde_json::json!(["acme.clock", "1.0.0", "1.1.0"]));

    assert!(cli.ok(&["rollback", "acme.clock"]).contains("rolled back acme.clock to 1.0.0"));
    let listed = cli.ok(&["list"]);
    assert!(listed.contains("acme.clock 1.0.0  [main]  (previous 1.1.0)  pinned at 1.0.0"), "{listed}");

    let pinned = cli.ok(&["pin", "acme.clock"]);
    assert!(pinned.contains("pinned acme.clock at 1.0.0"));
    let skipped = cli.ok(&["--yes", "update"]);
    assert!(skipped.contains("skipped acme.clock 1.1.0: pinned to 1.0.0"), "{skipped}");
    cli.ok(&["unpin", "acme.clock"]);
    let policy = cli.json(&["policy", "--plugin", "acme.clock", "--mode", "manual"]);
    assert_eq!(policy["plugins"]["acme.clock"]["mode"], "manual");

    let refused = cli.run(&["remove", "acme.time-core"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("needed by acme.clock") && stderr(&refused).contains("--cascade"),
        "{}",
        stderr(&refused)
    );
    let removed = cli.json(&["remove", "acme.time-core", "--cascade"]);
    assert_eq!(removed["removed"], serde_json::json!(["acme.clock", "acme.time-core"]));
    assert!(cli.ok(&["list"]).contains("no plugins installed"));
}

#[test]
fn cli_exit_codes_separate_usage_and_configuration_from_failures() {
    let (site, root) = site_with_clock();
    let cli = Cli::new();
    // Usage: clap's own errors.
    assert_eq!(cli.run(&["install"]).status.code(), Some(2));
    assert_eq!(cli.run(&["frobnicate"]).status.code(), Some(2));
    // Configuration: no registry yet.
    let none = cli.run(&["install", "acme.clock"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("trellis registry add"), "{}", stderr(&none));
    // Configuration: a root file that is not a root.
    let bogus = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bogus.path(), b"{}").unwrap();
    let bad_root = cli.run(&["registry", "add", "main", &site.url(), "--root", bogus.path().to_str().unwrap()]);
    assert_eq!(bad_root.status.code(), Some(2), "{}", stderr(&bad_root));
    assert!(stderr(&bad_root).contains("1.root.json"), "{}", stderr(&bad_root));
    cli.ok(&["registry", "add", "main", &site.url(), "--root", root.path().to_str().unwrap()]);
    // Failure: a plugin no registry serves, explained.
    let missing = cli.run(&["--yes", "install", "acme.nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("acme.nothing"), "{}", stderr(&missing));
    let unknown = cli.run(&["info", "acme.nothing"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no configured registry serves acme.nothing"), "{}", stderr(&unknown));
    // Failure: tampered files found by verify.
    cli.ok(&["--yes", "install", "acme.time-core"]);
    let file = cli.data.path().join("plugins/acme.time-core/1.0.0/bin/any/run.sh");
    std::fs::write(file, "#!/bin/sh\nrm -rf ~\n").unwrap();
    let verify = cli.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(stdout(&verify).contains("bin/any/run.sh: was changed"), "{}", stdout(&verify));
    // --json errors are JSON too.
    let json = cli.run(&["--json", "rollback", "acme.time-core"]);
    assert_eq!(json.status.code(), Some(1));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["ok"], false);
    assert_eq!(document["error"]["exit_code"], 1);
    assert!(document["error"]["message"].as_str().unwrap().contains("no previous release"), "{document}");
}
