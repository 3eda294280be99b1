//! Issue 15 §4: OSV advisories in the registry source, matched by `trellis-index build`
//! against plugin versions and the components of each release's SBOM, published in the
//! signed `security` role; the client warns at install and on update checks, and
//! `trellis audit` lists the findings. Against real sites built by `trellis-index` and
//! served on 127.0.0.1, through the library and through the `trellis` binary with pipes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::{Plugin, Site, clock, clock_site, store, trellis_bin};
use trellis_client::events::{Event, Reporter};
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{AlwaysAgree, Session, install::parse_requirement};
use trellis_schema::advisory::Advisories;

/// Writes `advisories/<id>.json` into the registry source tree.
fn add_advisory(site: &Site, id: &str, osv: &serde_json::Value) {
    let dir = site.registry.path().join("advisories");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec_pretty(osv).unwrap()).unwrap();
}

/// An OSV advisory about plugin `plugin`, fixed in `fixed`.
fn plugin_advisory(id: &str, plugin: &str, fixed: &str, severity: &str) -> serde_json::Value {
    serde_json::json!({
        "schema_version": "1.6.0",
        "id": id, "modified": "2026-11-30T12:00:00Z", "published": "2026-11-30T12:00:00Z",
        "aliases": ["CVE-2026-12345"],
        "summary": "alarm sounds leak the calendar",
        "details": "The alarm sound request carries the calendar in its query string.",
        "affected": [{
            "package": {"ecosystem": "Trellis", "name": plugin},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
        }],
        "references": [{"type": "ADVISORY", "url": format!("https://example.org/advisories/{id}")}],
        "database_specific": {"severity": severity}
    })
}

/// An OSV advisory about npm's lodash below 4.17.21 (GitHub's format).
fn lodash_advisory() -> serde_json::Value {
    serde_json::json!({
        "id": "GHSA-35jh-r3h4-6jhm", "modified": "2026-11-02T00:00:00Z",
        "aliases": ["CVE-2021-23337"],
        "summary": "Command injection in lodash",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{
            "package": {"ecosystem": "npm", "name": "lodash"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}],
            "database_specific": {"severity": "HIGH"}
        }],
        "references": [{"type": "WEB", "url": "https://github.com/advisories/GHSA-35jh-r3h4-6jhm"}]
    })
}

fn cyclonedx(components: &[(&str, &str)]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = components
        .iter()
        .map(|(name, version)| {
            serde_json::json!({"type": "library", "name": name, "version": version, "purl": format!("pkg:npm/{name}@{version}")})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": list}))
        .unwrap()
}

/// `acme.viewer` bundling lodash `lodash`.
fn viewer(version: &str, lodash: &str) -> Plugin {
    Plugin::new("acme.viewer", version)
        .file("docs/sbom.cdx.json", cyclonedx(&[("lodash", lodash), ("marked", "4.0.0")]))
}

/// The published advisories document of the site.
fn published(site: &Site) -> Advisories {
    let file = site
        .blob_files(".advisories.json")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    serde_json::from_slice(&std::fs::read(file.expect("no advisories target")).unwrap()).unwrap()
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl Reporter for Events {
    fn report(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    fn advisories(&self) -> Vec<(String, String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Advisory { plugin, version, id, .. } => {
                    Some((plugin.to_string(), version.to_string(), id.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_component_advisory_reaches_the_releases_whose_sbom_bundles_it_until_a_fixed_release_is_installed() {
    let site = Site::new();
    site.publish(&[viewer("1.0.0", "4.17.20"), viewer("1.1.0", "4.17.20")]);
    add_advisory(&site, "GHSA-35jh-r3h4-6jhm", &lodash_advisory());
    site.build();

    let doc = published(&site);
    assert_eq!(doc.advisories.len(), 1, "{doc:?}");
    let advisory = &doc.advisories[0];
    assert_eq!(advisory.severity, Some(trellis_schema::advisory::Severity::High));
    let affected = &advisory.affected[0];
    assert_eq!(affected.plugin.as_str(), "acme.viewer");
    assert_eq!(affected.releases, [semver::Version::new(1, 0, 0), semver::Version::new(1, 1, 0)]);
    assert_eq!(affected.ranges, ["<4.17.21"]);
    let component = affected.component.as_ref().unwrap();
    assert_eq!((component.name.as_str(), component.purl.as_deref()), ("lodash", Some("pkg:npm/lodash")));
    assert_eq!(component.versions, ["4.17.20"]);
    assert_eq!(affected.fixed, None, "no release without the vulnerable lodash yet");

    // The install of an affected release warns (an event) and reports it.
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let events = Arc::new(Events::default());
    let session = Session::new(&hooks, &AlwaysAgree).with_reporter(events.clone());
    let report = store.install(&[parse_requirement("acme.viewer@1.0.0").unwrap()], &session).unwrap();
    assert_eq!(report.installed, [("acme.viewer".parse().unwrap(), semver::Version::new(1, 0, 0))]);
    assert_eq!(report.advisories.len(), 1);
    assert!(
        report.advisories[0].message.contains("in bundled component lodash 4.17.20; no fixed release yet"),
        "{}",
        report.advisories[0].message
    );
    assert_eq!(events.advisories(), [("acme.viewer".into(), "1.0.0".into(), "GHSA-35jh-r3h4-6jhm".into())]);

    // A release bundling the fixed lodash: the check names it as the fix.
    site.publish(&[viewer("1.2.0", "4.17.21")]);
    let check = store.check_updates(&[], &session).unwrap();
    assert_eq!(check.advisories.len(), 1);
    assert_eq!(check.advisories[0].fixed, Some(semver::Version::new(1, 2, 0)));
    assert!(published(&site).advisories[0].affected[0].releases.len() == 2, "1.2.0 is not affected");
    store.update(&[], &session).unwrap();
    assert_eq!(
        store.state().plugin(&"acme.viewer".parse().unwrap()).unwrap().active.version,
        semver::Version::new(1, 2, 0)
    );
    assert!(store.audit().unwrap().is_empty(), "the fixed release is installed: no finding");
    assert!(store.check_updates(&[], &session).unwrap().advisories.is_empty());
}

struct Cli {
    data: tempfile::TempDir,
}

impl Cli {
    fn new(site: &Site) -> Self {
        let cli = Self { data: tempfile::tempdir().unwrap() };
        let root = cli.data.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        let out = cli.run(&["registry", "add", "main", &site.url(), "--root", root.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        cli
    }

    /// `trellis` with stdout and stderr as pipes.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(trellis_bin()).arg("--data-dir").arg(self.data.path()).args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let out = self.run(&[&["--json"], args].concat());
        let document: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
        (out.status.code(), document["result"].clone())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_advisory_added_and_built_is_warned_about_by_the_update_check_and_listed_by_audit_until_fixed() {
    let site = clock_site();
    let cli = Cli::new(&site);
    let out = cli.run(&["--yes", "install", "acme.clock"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let audit = cli.run(&["audit"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
    assert!(text(&audit.stdout).contains("no installed plugin is named by a security advisory"));

    add_advisory(&site, "TRELLIS-2026-0001", &plugin_advisory("TRELLIS-2026-0001", "acme.clock", "1.0.1", "HIGH"));
    site.build();

    // The update check warns on stderr (a pipe), and does not fail.
    let check = cli.run(&["update", "--check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let warnings = text(&check.stderr);
    assert!(
        warnings.contains(
            "warning: acme.clock: acme.clock 1.0.0 is affected by TRELLIS-2026-0001 (high severity): alarm sounds leak the calendar; no fixed release yet"
        ),
        "{warnings}"
    );
    // `audit`: a line per finding on stdout, exit code 1.
    let audit = cli.run(&["audit"]);
    assert_eq!(audit.status.code(), Some(1));
    let listed = text(&audit.stdout);
    assert!(listed.contains("acme.clock 1.0.0: TRELLIS-2026-0001 (high) alarm sounds leak the calendar; affected <1.0.1; no fixed release yet; https://example.org/advisories/TRELLIS-2026-0001"), "{listed}");
    assert!(
        text(&audit.stderr).contains("1 installed release(s) are named by security advisories"),
        "{}",
        text(&audit.stderr)
    );
    let (code, result) = cli.json(&["audit"]);
    assert_eq!(code, Some(1));
    assert_eq!(result[0]["id"], "TRELLIS-2026-0001");
    assert_eq!(result[0]["severity"], "high");
    assert_eq!(result[0]["aliases"][0], "CVE-2026-12345");
    assert_eq!(result[0]["plugin"], "acme.clock");
    let (code, _) = cli.json(&["audit", "--severity", "critical"]);
    assert_eq!(code, Some(0), "a high finding does not fail --severity critical");
    let (_, check) = cli.json(&["update", "--check"]);
    assert_eq!(check["advisories"][0]["id"], "TRELLIS-2026-0001");

    // The fixed release published and installed: the finding is gone.
    site.publish(&[clock("1.0.1")]);
    let (_, result) = cli.json(&["audit"]);
    assert_eq!(result[0]["fixed"], "1.0.1");
    let out = cli.run(&["update"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let audit = cli.run(&["audit"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stdout));
    let check = cli.run(&["update", "--check"]);
    assert!(!text(&check.stderr).contains("TRELLIS-2026-0001"), "{}", text(&check.stderr));
}

#[test]
fn a_tampered_advisories_document_is_refused_by_tuf() {
    let site = clock_site();
    add_advisory(&site, "TRELLIS-2026-0002", &plugin_advisory("TRELLIS-2026-0002", "acme.clock", "2.0.0", "CRITICAL"));
    site.build();
    let cli = Cli::new(&site);
    let out = cli.run(&["--yes", "install", "acme.time-core"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Someone with write access to the host (not the security keys) hides the advisory.
    let file = site.blob_files(".advisories.json").pop().unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["advisories"] = serde_json::json!([]);
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();

    let fresh = Cli::new(&site);
    let audit = fresh.run(&["audit"]);
    assert_eq!(audit.status.code(), Some(1));
    let error = text(&audit.stderr);
    assert!(error.contains("security/advisories.json"), "the refusal names the target: {error}");
    assert!(!text(&audit.stdout).contains("no installed plugin"), "no clean bill of health from a forged list");
    let install = fresh.run(&["--yes", "install", "acme.clock"]);
    assert_eq!(install.status.code(), Some(1), "an install does not go on without the advisories");
    assert!(!fresh.data.path().join("plugins/acme.clock").exists());
}

#[test]
fn a_withdrawn_advisory_and_a_plugin_without_sbom_publish_nothing() {
    let site = Site::new();
    site.publish(&[Plugin::new("acme.plain", "1.0.0"), viewer("1.0.0", "4.17.21")]);
    let mut withdrawn = plugin_advisory("TRELLIS-2026-0003", "acme.plain", "2.0.0", "LOW");
    withdrawn["withdrawn"] = serde_json::json!("2026-11-30T13:00:00Z");
    add_advisory(&site, "TRELLIS-2026-0003", &withdrawn);
    add_advisory(&site, "GHSA-35jh-r3h4-6jhm", &lodash_advisory());
    site.build();
    assert!(published(&site).advisories.is_empty(), "{:?}", published(&site));
}

#[test]
fn a_misnamed_or_malformed_advisory_fails_the_build_naming_the_file() {
    let site = clock_site();
    add_advisory(&site, "WRONG-NAME", &plugin_advisory("TRELLIS-2026-0004", "acme.clock", "2.0.0", "LOW"));
    let error = trellis_index::registry::Registry::open(site.registry.path()).unwrap_err().to_string();
    assert!(error.contains("WRONG-NAME.json") && error.contains("name the file TRELLIS-2026-0004.json"), "{error}");
    std::fs::remove_file(site.registry.path().join("advisories/WRONG-NAME.json")).unwrap();
    add_advisory(&site, "TRELLIS-2026-0005", &plugin_advisory("TRELLIS-2026-0005", "not an id", "2.0.0", "LOW"));
    let error = trellis_index::registry::Registry::open(site.registry.path()).unwrap_err().to_string();
    assert!(error.contains("TRELLIS-2026-0005.json") && error.contains("is not a plugin id"), "{error}");
}
