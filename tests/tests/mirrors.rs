//! Mirrors end to end (issue 12 §2): a registry publishes its mirrors in signed
//! metadata, users add their own, and the store fails over in order with a persisted
//! health memory. Real sites built by `trellis-index`, served on 127.0.0.1 by fault
//! servers: a first mirror that tampers, stalls or is down is skipped, the install comes
//! from the next one, the bad one is remembered (the next run does not ask it first),
//! and when every mirror is bad the error names each one and nothing changes.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Plugin, Site, clock_site, host, trellis_bin};
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::mirrors::MirrorOrigin;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreError, StoreOptions, install::parse_requirement};
use trellis_client::transport::HttpOptions;
use trellis_schema::PluginId;
use trellis_tests::fault_server::{Fault, FaultServer};

/// Serves every file of `site`'s built site from a fault server (replacing what it had).
fn serve(server: &FaultServer, site: &Site) {
    for path in common::walk(site.site.path()) {
        server.put(&format!("/{}", relative(site, &path)), std::fs::read(&path).unwrap());
    }
}

fn relative(site: &Site, path: &Path) -> String {
    path.strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/")
}

/// Fails fast: no retries, short timeouts (a stalled mirror costs 300 ms).
fn impatient() -> HttpOptions {
    HttpOptions {
        retries: 0,
        read_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..HttpOptions::default()
    }
}

/// A URL where nothing listens.
fn down_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn open(data: &Path) -> Store {
    let mut options = StoreOptions::new(host());
    options.http = impatient();
    Store::open(data, options).unwrap()
}

/// A store in `data` with registry `main` at `url`, pinned to `site`'s root.
fn store_at(data: &Path, url: &str, site: &Site) -> Store {
    let mut store = open(data);
    if store.registries().registries.is_empty() {
        store.add_registry("main", url, &site.root()).unwrap();
    }
    store
}

fn install(store: &mut Store, id: &str) -> Result<(), StoreError> {
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement(id).unwrap()], &Session::new(&hooks, &AlwaysAgree)).map(|_| ())
}

fn check(store: &mut Store) -> Result<usize, StoreError> {
    let hooks = RecordingHooks::new();
    store.check_updates(&[], &Session::new(&hooks, &AlwaysAgree)).map(|r| r.updates.len())
}

fn installed(data: &Path) -> BTreeMap<PluginId, semver::Version> {
    open(data).state().installed_versions()
}

/// The error and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

fn health(data: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data.join("mirror-health.json")).unwrap()).unwrap()
}

fn record<'a>(health: &'a serde_json::Value, url: &str) -> &'a serde_json::Value {
    &health["mirrors"][format!("{url}/metadata/")]
}

/// `clock_site` served by a good fault server; the store's registry URL is the good
/// one, and the user's mirror `bad` (asked first) is set up by each test.
struct Failover {
    site: Site,
    good: FaultServer,
    data: tempfile::TempDir,
}

impl Failover {
    fn new() -> Self {
        let site = clock_site();
        let good = FaultServer::start().unwrap();
        serve(&good, &site);
        Self { site, good, data: tempfile::tempdir().unwrap() }
    }

    /// A store whose first mirror is `bad_url`, then the good registry URL.
    fn store(&self, bad_url: &str) -> Store {
        let mut store = store_at(self.data.path(), &self.good.url(), &self.site);
        if store.registries().registries[0].mirrors.is_empty() {
            store.add_mirror("main", bad_url).unwrap();
        }
        store
    }

    /// Installs from the good mirror despite the bad one, then checks the bad one is
    /// remembered: the next run asks the good mirror first and never reaches the bad.
    fn installs_and_remembers(&self, bad_url: &str, bad: Option<&FaultServer>) {
        let mut store = self.store(bad_url);
        install(&mut store, "acme.clock").unwrap();
        drop(store);
        let versions: Vec<String> = installed(self.data.path()).keys().map(|id| id.to_string()).collect();
        assert_eq!(versions, ["acme.clock", "acme.time-core"]);
        let memory = health(self.data.path());
        let failure = record(&memory, bad_url)["failure"].as_str().unwrap_or_else(|| panic!("{memory}"));
        assert!(failure.contains(bad_url), "the failure names the mirror: {failure}");
        assert!(record(&memory, &self.good.url())["failed_at"].is_null(), "{memory}");

        // The next run: the bad mirror is not asked at all, the good one serves.
        self.good.reset_counters();
        if let Some(bad) = bad {
            bad.reset_counters();
        }
        self.site.publish(&[Plugin::new("acme.timer", "1.0.0")]);
        serve(&self.good, &self.site);
        if let Some(bad) = bad {
            serve(bad, &self.site);
        }
        let mut store = self.store(bad_url);
        install(&mut store, "acme.timer").unwrap();
        assert!(self.good.request_count() > 0);
        if let Some(bad) = bad {
            // Asked last, it gets only the probe for a next root (which every mirror is
            // asked for: one may be behind), answered "not found" by the good one too.
            let hits = bad.hits();
            assert!(hits.iter().all(|h| h.path.ends_with(".root.json")), "the bad mirror served nothing: {hits:?}");
        }
    }
}

#[test]
fn a_first_mirror_serving_tampered_packages_is_skipped_and_remembered() {
    let world = Failover::new();
    let bad = FaultServer::start().unwrap();
    serve(&bad, &world.site);
    for package in world.site.blob_files(".zip") {
        bad.fault(&format!("/{}", relative(&world.site, &package)), Fault::FlipByte);
    }
    world.installs_and_remembers(&bad.url(), Some(&bad));
    let memory = health(world.data.path());
    assert_eq!(record(&memory, &bad.url())["served_bad_bytes"], true, "{memory}");
    assert!(record(&memory, &bad.url())["failure"].as_str().unwrap().contains("rejected"), "{memory}");
}

#[test]
fn a_first_mirror_serving_tampered_metadata_is_skipped_and_remembered() {
    let world = Failover::new();
    let bad = FaultServer::start().unwrap();
    serve(&bad, &world.site);
    bad.fault("/metadata/timestamp.json", Fault::FlipByte);
    world.installs_and_remembers(&bad.url(), Some(&bad));
    let memory = health(world.data.path());
    assert_eq!(record(&memory, &bad.url())["served_bad_bytes"], true, "{memory}");
}

#[test]
fn a_first_mirror_that_stalls_is_skipped_and_remembered() {
    let world = Failover::new();
    let bad = FaultServer::start().unwrap();
    serve(&bad, &world.site);
    bad.fault("/metadata/timestamp.json", Fault::Stall(Duration::from_secs(5)));
    world.installs_and_remembers(&bad.url(), Some(&bad));
    let memory = health(world.data.path());
    assert!(record(&memory, &bad.url())["failure"].as_str().unwrap().contains("timed out"), "{memory}");
}

#[test]
fn a_first_mirror_that_is_down_is_skipped_and_remembered() {
    let world = Failover::new();
    world.installs_and_remembers(&down_url(), None);
}

/// The health file is written without a barrier (it is a hint), so a crash can leave
/// it empty or cut short. Such a file is no memory: the next run asks the mirrors in
/// their configured order, succeeds, and writes a whole file again.
#[test]
fn a_health_file_cut_short_by_a_crash_is_no_memory_and_is_written_again() {
    let world = Failover::new();
    let bad = down_url();
    let mut store = world.store(&bad);
    install(&mut store, "acme.clock").unwrap();
    drop(store);
    let path = world.data.path().join("mirror-health.json");
    let whole = std::fs::read(&path).unwrap();
    for cut in [0, whole.len() / 2, whole.len() - 1] {
        std::fs::write(&path, &whole[..cut]).unwrap();
        let mut store = world.store(&bad);
        assert_eq!(check(&mut store).unwrap(), 0, "cut at {cut}");
        drop(store);
        let memory = health(world.data.path());
        assert!(
            record(&memory, &bad)["failure"].as_str().is_some(),
            "cut at {cut}: the failure is remembered again: {memory}"
        );
    }
}

#[test]
fn when_every_mirror_fails_the_error_names_each_and_nothing_changes() {
    let world = Failover::new();
    let down = down_url();
    let mut store = world.store(&down);
    install(&mut store, "acme.time-core").unwrap();
    drop(store);
    let before = installed(world.data.path());
    let trusted = std::fs::read(world.data.path().join("metadata/main/timestamp.json")).unwrap();
    // The registry's own server now answers 500 for the timestamp, the mirror is down.
    world.site.publish(&[Plugin::new("acme.timer", "1.0.0")]);
    serve(&world.good, &world.site);
    world.good.fault("/metadata/timestamp.json", Fault::ServerError);
    let mut store = world.store(&down);
    let error = install(&mut store, "acme.timer").unwrap_err();
    let text = chain(&error);
    assert!(text.contains(&format!("{down}/metadata/timestamp.json")), "names the mirror that is down: {text}");
    assert!(
        text.contains(&format!("{}/metadata/timestamp.json: HTTP status 500", world.good.url())),
        "names the registry URL and what it did: {text}"
    );
    assert!(text.contains("every mirror failed"), "{text}");
    drop(store);
    assert_eq!(installed(world.data.path()), before);
    assert_eq!(std::fs::read(world.data.path().join("metadata/main/timestamp.json")).unwrap(), trusted);
}

/// A site whose registry publishes `mirrors` (its `trellis-registry.json` lists them).
fn site_publishing(mirrors: &[String]) -> Site {
    let site = Site::new();
    let config_path = site.registry.path().join("trellis-registry.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["mirrors"] = serde_json::json!(mirrors);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    site.publish(&[Plugin::new("acme.time-core", "1.0.0"), common::clock("1.0.0")]);
    site
}

#[test]
fn the_registry_publishes_its_mirrors_signed_and_the_client_fails_over_to_them() {
    let mirror = FaultServer::start().unwrap();
    let site = site_publishing(&[format!("{}/", mirror.url())]);
    let primary = FaultServer::start().unwrap();
    serve(&primary, &site);
    serve(&mirror, &site);
    // The list is a target of the top-level targets role, and verify accepts it.
    let newest = common::walk(&site.site.path().join("metadata"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".targets.json"))
        .max_by_key(|p| p.file_name().unwrap().to_string_lossy().split('.').next().unwrap().parse::<u64>().unwrap())
        .unwrap();
    let top: serde_json::Value = serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    assert!(top["signed"]["targets"]["mirrors.json"].is_object(), "{top}");
    let report = trellis_index::verify::verify(
        &trellis_index::verify::Source::Dir(site.site.path().to_owned()),
        Some(&site.root()),
        jiff::Timestamp::now(),
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let data = tempfile::tempdir().unwrap();
    let mut store = store_at(data.path(), &primary.url(), &site);
    install(&mut store, "acme.time-core").unwrap();
    let listed: Vec<(String, MirrorOrigin)> =
        store.mirrors("main").unwrap().into_iter().map(|m| (m.url, m.origin)).collect();
    assert_eq!(listed, [(primary.url(), MirrorOrigin::Registry), (mirror.url(), MirrorOrigin::Published)]);
    drop(store);
    // The primary is asked first; a mirror not measured yet may get its chance once the
    // primary is measured slower (on a loaded machine a loopback request can take
    // 16 ms), so the published mirror's share is not asserted here, only that nothing
    // it answered was an error.
    assert!(primary.request_count() > 0, "the primary is asked first");
    assert!(mirror.hits().iter().all(|h| h.status < 500), "{:?}", mirror.hits());

    // The primary goes down: the next run installs from the published mirror.
    drop(primary);
    let mut store = open(data.path());
    install(&mut store, "acme.clock").unwrap();
    assert!(store.state().installed_versions().contains_key(&"acme.clock".parse().unwrap()));
    assert!(mirror.hits().iter().any(|h| h.path.ends_with(".zip") && h.status == 200), "{:?}", mirror.hits());
}

#[test]
fn a_mirror_list_that_is_not_the_signed_one_adds_no_mirror() {
    let evil = FaultServer::start().unwrap();
    let honest = FaultServer::start().unwrap();
    let site = site_publishing(&[honest.url()]);
    let primary = FaultServer::start().unwrap();
    serve(&primary, &site);
    // The primary (a mirror without keys) swaps the list for one naming its accomplice.
    let list = site.blob_files("mirrors.json");
    assert_eq!(list.len(), 1, "{list:?}");
    let forged = serde_json::to_vec(&serde_json::json!({"mirrors": [{"url": evil.url()}]})).unwrap();
    primary.put(&format!("/{}", relative(&site, &list[0])), forged);
    // An unlisted list at the plain path is never asked for either.
    primary.put(
        "/targets/mirrors.json",
        serde_json::to_vec(&serde_json::json!({"mirrors": [{"url": evil.url()}]})).unwrap(),
    );

    let data = tempfile::tempdir().unwrap();
    let mut store = store_at(data.path(), &primary.url(), &site);
    install(&mut store, "acme.clock").unwrap();
    let urls: Vec<String> = store.mirrors("main").unwrap().into_iter().map(|m| m.url).collect();
    assert_eq!(urls, [primary.url()], "the forged list was refused, no mirror was added");
    drop(store);
    assert!(!data.path().join("metadata/main/published.mirrors").exists());
    // Even with the primary down, the accomplice is never contacted: the check runs
    // offline on the unexpired metadata, from no mirror but the primary.
    drop(primary);
    let mut store = open(data.path());
    check(&mut store).unwrap();
    assert_eq!(store.offline_uses().len(), 1, "the registry was used offline");
    assert_eq!(evil.hits(), []);
}

#[test]
fn a_registry_with_an_invalid_mirror_url_does_not_build() {
    let site = Site::new();
    let config_path = site.registry.path().join("trellis-registry.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["mirrors"] = serde_json::json!(["file:///srv/site"]);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let error = trellis_index::registry::Registry::open(site.registry.path()).unwrap_err().to_string();
    assert!(
        error.contains("trellis-registry.json") && error.contains("mirrors: mirror URL `file:///srv/site`"),
        "{error}"
    );
}

#[test]
fn cli_adds_lists_and_removes_mirrors_and_shows_their_health() {
    let world = Failover::new();
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), world.site.root()).unwrap();
    let bin = trellis_bin();
    let run = |args: &[&str]| Command::new(&bin).arg("--data-dir").arg(world.data.path()).args(args).output().unwrap();
    let text = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let good = world.good.url();
    let out = run(&["registry", "add", "main", &good, "--root", root.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let down = down_url();

    let out = run(&["registry", "mirror", "add", "main", &format!("{down}/")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("added mirror {down}/ to registry main")), "{}", text(&out));
    // Refusals: exit 2, naming what and why; the configuration is unchanged.
    for (args, expected) in [
        (vec!["registry", "mirror", "add", "main", &down], format!("registry `main` has the mirror {down} already")),
        (vec!["registry", "mirror", "add", "main", &good], format!("registry `main` has the mirror {good} already")),
        (
            vec!["registry", "mirror", "add", "main", "file://relative/dir"],
            "mirror URL `file://relative/dir` must be".into(),
        ),
        (vec!["registry", "mirror", "add", "nope", "https://m.example"], "no registry named `nope`".into()),
        (
            vec!["registry", "mirror", "remove", "main", &good],
            format!("`{good}` is not one of your mirrors of registry `main` (yours: {down})"),
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(&expected), "{args:?}: {}", text(&out));
    }

    // An install through the binary fails over; `list` shows the failure it remembers.
    let out = run(&["--yes", "install", "acme.clock"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["registry", "mirror", "list", "main"]);
    let listing = text(&out);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with(&format!("{down}  (yours)  failed ")) && lines[0].contains(&down), "{listing}");
    assert!(lines[1].starts_with(&format!("{good}  (registry)  healthy")), "{listing}");
    let out = run(&["--json", "registry", "mirror", "list", "main"]);
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let json = &envelope["result"];
    assert_eq!(json["mirrors"][0]["origin"], "user");
    assert!(json["mirrors"][0]["health"]["failed_at"].is_i64(), "{json}");
    assert_eq!(json["mirrors"][1]["origin"], "registry");

    let out = run(&["registry", "mirror", "remove", "main", &down]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["--json", "registry", "mirror", "list", "main"]);
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["result"]["mirrors"].as_array().unwrap().len(), 1, "{envelope}");
}
