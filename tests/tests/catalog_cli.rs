//! `trellis search`, `trellis browse` and the discovery hints of `info`/`install`
//! through the real binary against a served site, as a user (or a pipe) runs them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Plugin, Site, trellis_bin};
use serde_json::json;

struct Cli {
    bin: PathBuf,
    data: tempfile::TempDir,
}

impl Cli {
    /// A data dir with `site` added as registry `main`.
    fn with(site: &Site) -> Self {
        let cli = Self { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
        let root = cli.data.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        cli.ok(&["registry", "add", "main", &site.url(), "--root", root.to_str().unwrap()]);
        cli
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.data.path())
            .args(["--host-id", "trellis-demo-host", "--host-api", "1.2.0"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "trellis {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A clock, an alarm that needs plugin API 2 (this host has 1.2.0), a paid weather
/// plugin in another category, and the clock's dependency.
fn site() -> Site {
    let site = Site::new();
    site.publish(&[
        Plugin::new("acme.time-core", "1.0.0"),
        Plugin::new("acme.clock", "1.0.0")
            .with("name", json!("Desk Clock"))
            .with("description", json!({"short": "A clock for the status bar", "full": "Shows the time."}))
            .with("tags", json!(["time"])),
        Plugin::new("acme.alarm", "1.0.0")
            .with("name", json!("Alarm Clock"))
            .with("description", json!({"short": "Rings at a set time", "full": "An alarm clock."}))
            .with("tags", json!(["time"]))
            .with("host", json!({"id": "trellis-demo-host", "api_version_requirement": "^2"})),
        Plugin::new("contoso.weather", "2.0.0")
            .with("name", json!("Weather"))
            .with("description", json!({"short": "Forecasts", "full": "Weather forecasts."}))
            .with("categories", json!(["productivity"]))
            .with("pricing", json!({"model": "paid", "trial_days": 0})),
    ]);
    site
}

#[test]
fn search_shows_version_rating_downloads_and_marks_what_this_host_cannot_run() {
    let site = site();
    let cli = Cli::with(&site);
    let found = cli.ok(&["search", "clock"]);
    let lines: Vec<&str> = found.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(lines.len(), 2, "{found}");
    let clock = lines.iter().find(|l| l.starts_with("acme.clock  1.0.0  Desk Clock")).unwrap();
    assert!(clock.contains("no rating") && clock.contains("0 downloads") && !clock.contains("cannot run"), "{clock}");
    let alarm = lines.iter().find(|l| l.starts_with("acme.alarm  1.0.0")).unwrap();
    assert!(alarm.contains("[cannot run here: needs plugin API ^2, this host provides 1.2.0]"), "{alarm}");
    assert!(found.contains("    A clock for the status bar"), "{found}");

    let compatible = cli.ok(&["search", "clock", "--compatible"]);
    assert!(compatible.contains("acme.clock") && !compatible.contains("acme.alarm"), "{compatible}");
    let typo = cli.ok(&["search", "clokc"]);
    assert!(typo.contains("acme.clock"), "{typo}");
    // A typo in the first two characters: found through the typo shard.
    for typo in ["xlock", "lcock", "colck"] {
        let found = cli.ok(&["search", typo]);
        assert!(found.starts_with("acme.clock  1.0.0  Desk Clock"), "{typo}: {found}");
    }
    let free = cli.ok(&["search", "weather", "--free"]);
    assert!(free.contains("no plugin matches `weather`"), "{free}");
    let category = cli.ok(&["search", "weather", "--category", "productivity"]);
    assert!(category.starts_with("contoso.weather  2.0.0"), "{category}");
    let tag = cli.ok(&["search", "clock", "--tag", "nothing"]);
    assert!(tag.contains("no plugin matches"), "{tag}");
}

#[test]
fn search_json_is_one_document_with_hits_and_the_catalog_age() {
    let site = site();
    let cli = Cli::with(&site);
    let out = cli.ok(&["--json", "search", "alarm"]);
    let envelope: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(envelope["command"], "search");
    let doc = &envelope["result"];
    assert!(doc["catalog_generated"].as_str().unwrap().ends_with('Z'), "{doc}");
    let hit = &doc["hits"][0];
    assert_eq!(hit["id"], "acme.alarm");
    assert_eq!(hit["compatibility"]["status"], "incompatible");
    assert_eq!(hit["downloads"], 0);
}

#[test]
fn browse_lists_categories_then_a_category_page_and_names_an_unknown_one() {
    let site = site();
    let cli = Cli::with(&site);
    let home = cli.ok(&["browse"]);
    assert!(home.contains("registry main: 4 plugins"), "{home}");
    assert!(home.contains("categories: utility (3), productivity (1)"), "{home}");
    assert!(home.contains("new:"), "{home}");
    let page = cli.ok(&["browse", "productivity"]);
    assert!(page.contains("category productivity: 1 plugins, page 1 of 1"), "{page}");
    assert!(page.contains("contoso.weather  2.0.0  Weather"), "{page}");
    let tag = cli.ok(&["browse", "time"]);
    assert!(tag.contains("tag time: 2 plugins") && tag.contains("cannot run here"), "{tag}");
    let unknown = cli.run(&["browse", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no registry has a category or tag `nope`"), "{}", text(&unknown.stderr));
}

#[test]
fn info_and_install_of_a_mistyped_id_suggest_the_right_one_and_install_nothing() {
    let site = site();
    let cli = Cli::with(&site);
    let info = cli.run(&["info", "acme.clokc"]);
    assert_eq!(info.status.code(), Some(1));
    assert!(text(&info.stderr).contains("did you mean acme.clock?"), "{}", text(&info.stderr));
    let install = cli.run(&["--yes", "install", "acme.clokc"]);
    assert_eq!(install.status.code(), Some(1));
    assert!(text(&install.stderr).contains("did you mean acme.clock?"), "{}", text(&install.stderr));
    let list: serde_json::Value = serde_json::from_str(&cli.ok(&["--json", "list"])).unwrap();
    assert_eq!(list["result"], serde_json::json!([]));
}

#[test]
fn info_marks_a_plugin_this_host_cannot_run() {
    let site = site();
    let cli = Cli::with(&site);
    let info = cli.ok(&["info", "acme.alarm"]);
    assert!(info.contains("cannot run here: 1.0.0 needs plugin API ^2, this host provides 1.2.0"), "{info}");
    let fine = cli.ok(&["info", "acme.clock"]);
    assert!(!fine.contains("cannot run here"), "{fine}");
}
