//! Opt-in telemetry (issue 12 §5): off by default (no events, no file); when the host
//! turns it on, every install, update, rollback and removal outcome reaches its
//! `HostHooks::telemetry`, here written to a local JSON-lines file: one line per
//! outcome, failures with their class, removals with the user's reason, and nothing
//! that names the machine (no URL, no path, no error text).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{clock_site, host};
use trellis_client::hooks::HostHooks;
use trellis_client::store::{AlwaysAgree, NeverAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_client::telemetry::{JsonLinesSink, Telemetry, TelemetryEvent};
use trellis_tests::fault_server::FaultServer;

/// A host that keeps telemetry events in a local file.
struct FileHost(JsonLinesSink);

impl HostHooks for FileHost {
    fn telemetry(&self, event: &TelemetryEvent) {
        self.0.append(event).unwrap();
    }
}

fn store(data: &Path, url: &str, root: &[u8], telemetry: Telemetry) -> Store {
    let mut options = StoreOptions::new(host());
    options.telemetry = telemetry;
    options.http.retries = 0;
    let mut store = Store::open(data, options).unwrap();
    if store.registries().registries.is_empty() {
        store.add_registry("main", url, root).unwrap();
    }
    store
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `(operation, outcome, plugin, failure_class)` of each line.
fn summary(lines: &[serde_json::Value]) -> Vec<(String, String, String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    lines
        .iter()
        .map(|l| (text(&l["operation"]), text(&l["outcome"]), text(&l["plugin"]), text(&l["failure_class"])))
        .collect()
}

fn tuple(operation: &str, outcome: &str, plugin: &str, class: &str) -> (String, String, String, String) {
    (operation.into(), outcome.into(), plugin.into(), class.into())
}

#[test]
fn telemetry_is_off_by_default_and_writes_nothing() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("telemetry.jsonl");
    let host = FileHost(JsonLinesSink::new(&file));
    let mut store = store(data.path(), &site.url(), &site.root(), StoreOptions::new(common::host()).telemetry);
    store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&host, &AlwaysAgree)).unwrap();
    store.remove(&"acme.clock".parse().unwrap(), false, &Session::new(&host, &AlwaysAgree)).unwrap();
    assert!(!file.exists(), "no event was emitted");
}

#[test]
fn with_telemetry_on_each_outcome_is_one_line_with_its_failure_class() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("telemetry.jsonl");
    let host = FileHost(JsonLinesSink::new(&file));
    let agree = Session::new(&host, &AlwaysAgree);
    let mut store = store(data.path(), &site.url(), &site.root(), Telemetry::On);

    store.install(&[parse_requirement("acme.clock").unwrap()], &agree).unwrap();
    site.publish(&[common::clock("1.1.0").permission("network", "internet")]);
    // Refused consent to the new permission: the update fails, classed as such.
    store.update(&["acme.clock".parse().unwrap()], &Session::new(&host, &NeverAgree)).unwrap_err();
    store.update(&["acme.clock".parse().unwrap()], &agree).unwrap();
    store.rollback(&"acme.clock".parse().unwrap(), &agree).unwrap();
    store.install(&[parse_requirement("acme.nothing").unwrap()], &agree).unwrap_err();
    store.remove(&"acme.time-core".parse().unwrap(), false, &agree).unwrap_err();
    store.remove_with_reason(&"acme.clock".parse().unwrap(), false, Some("  too noisy "), &agree).unwrap();
    drop(store);

    let events = lines(&file);
    assert_eq!(
        summary(&events),
        [
            tuple("install", "success", "acme.time-core", "-"),
            tuple("install", "success", "acme.clock", "-"),
            tuple("update", "failure", "acme.clock", "consent_refused"),
            tuple("update", "success", "acme.clock", "-"),
            tuple("rollback", "success", "acme.clock", "-"),
            tuple("install", "failure", "acme.nothing", "resolution"),
            tuple("remove", "failure", "acme.time-core", "usage"),
            tuple("remove", "success", "acme.clock", "-"),
        ]
    );
    assert_eq!((events[3]["from_version"].as_str(), events[3]["version"].as_str()), (Some("1.0.0"), Some("1.1.0")));
    assert_eq!((events[4]["from_version"].as_str(), events[4]["version"].as_str()), (Some("1.1.0"), Some("1.0.0")));
    assert_eq!(events[7]["uninstall_reason"], "too noisy");
    assert!(events.iter().all(|e| e["schema_version"] == 1 && e["time"].as_str().unwrap().ends_with('Z')));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("127.0.0.1") && !text.contains(&data.path().display().to_string()), "{text}");
}

#[test]
fn an_unreachable_registry_is_a_network_failure() {
    // The registry is added while it answers, then its only server goes away: the
    // trusted metadata is usable offline, but the index docs were never fetched.
    let site = clock_site();
    let server = FaultServer::start().unwrap();
    for path in common::walk(site.site.path()) {
        let relative = path.strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(&path).unwrap());
    }
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("telemetry.jsonl");
    let host = FileHost(JsonLinesSink::new(&file));
    let mut store = store(data.path(), &server.url(), &site.root(), Telemetry::On);
    drop(server);
    let requirements = [parse_requirement("acme.clock").unwrap(), parse_requirement("acme.timer").unwrap()];
    store.install(&requirements, &Session::new(&host, &AlwaysAgree)).unwrap_err();
    assert_eq!(
        summary(&lines(&file)),
        [tuple("install", "failure", "acme.clock", "network"), tuple("install", "failure", "acme.timer", "network")]
    );
}
