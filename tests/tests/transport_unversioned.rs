//! Attacks on the unversioned copies of the top-level metadata. A site built by
//! `trellis-index` also publishes `metadata/snapshot.json` and `metadata/targets.json`
//! (`trellis_index::unversioned`), and a client's first refresh asks for them together
//! with `timestamp.json` and the root probe (one round trip instead of four), taking
//! each only where the strict order reaches it and under exactly its checks. A copy
//! that a CDN keeps from the previous build, a tampered one, one holding the other
//! role's file, or none at all (a site built before the copies) costs a wasted request
//! and the versioned file: the install ends with what the signed metadata says, and the
//! trusted store holds the versioned bytes. After a changed timestamp, the snapshot it
//! names is asked for with the root probe. Real site, real signatures, the fault server
//! on 127.0.0.1.

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

mod common;

use common::{Plugin, Site, host, served};
use trellis_client::hooks::NoHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_index::operator::{self, RotatedRole};
use trellis_index::registry::Registry;
use trellis_tests::fault_server::{Fault, FaultServer, ROUND_TRIP_LATENCY};

const SNAPSHOT: &str = "/metadata/snapshot.json";
const TARGETS: &str = "/metadata/targets.json";

/// Two builds with the bins key rotated between them: the second moved both the
/// snapshot and the top-level targets (which delegates to the new key), so the first
/// build's files are what a stale copy holds.
fn site() -> Site {
    let site = Site::new();
    site.publish(&[Plugin::new("acme.lib", "1.0.0"), Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1")]);
    operator::rotate(&Registry::open(site.registry.path()).unwrap(), RotatedRole::Bins, jiff::Timestamp::now())
        .unwrap();
    site.publish(&[Plugin::new("acme.app", "1.1.0").depends_on("acme.lib", "^1")]);
    site
}

fn metadata(site: &Site, file: &str) -> Vec<u8> {
    std::fs::read(site.site.path().join("metadata").join(file)).unwrap()
}

/// The newest `V.<role>.json` of the site, by version.
fn newest(site: &Site, role: &str) -> (u64, String) {
    let version = std::fs::read_dir(site.site.path().join("metadata"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap().file_name().into_string().unwrap().strip_suffix(&format!(".{role}.json"))?.parse().ok()
        })
        .max()
        .unwrap();
    (version, format!("{version}.{role}.json"))
}

fn install(store: &mut Store, id: &str) -> Vec<String> {
    let report = store.install(&[parse_requirement(id).unwrap()], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    report.installed.iter().map(|(id, v)| format!("{id} {v}")).collect()
}

fn asked(server: &FaultServer, path: &str) -> usize {
    server.hits().iter().filter(|h| h.path == path).count()
}

/// A cold store over `server` (its data dir beside it): the registry added, `acme.app`
/// installed.
fn cold_install(server: &FaultServer, site: &Site) -> (Store, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut store = Store::open(data.path(), StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    assert_eq!(install(&mut store, "acme.app"), ["acme.lib 1.0.0", "acme.app 1.1.0"]);
    (store, data)
}

/// The trusted copy of `role` in `store`.
fn trusted(store: &Store, role: &str) -> Vec<u8> {
    std::fs::read(store.data_dir().metadata_dir(&"main".parse().unwrap()).join(format!("{role}.json"))).unwrap()
}

#[test]
fn the_copies_are_taken_in_the_first_round_trip_and_the_versioned_files_never_asked_for() {
    let site = site();
    let (_, snapshot) = newest(&site, "snapshot");
    let (_, targets) = newest(&site, "targets");
    assert_eq!(metadata(&site, "snapshot.json"), metadata(&site, &snapshot), "the build wrote the copy");
    assert_eq!(metadata(&site, "targets.json"), metadata(&site, &targets), "the build wrote the copy");
    let server = served(&site);
    server.set_latency(ROUND_TRIP_LATENCY);
    let (store, _data) = cold_install(&server, &site);
    for (copy, versioned) in [(SNAPSHOT, &snapshot), (TARGETS, &targets)] {
        assert_eq!(asked(&server, copy), 1, "{copy}");
        assert_eq!(asked(&server, &format!("/metadata/{versioned}")), 0, "{versioned} never needed");
    }
    assert_eq!(trusted(&store, "snapshot"), metadata(&site, &snapshot));
    assert_eq!(trusted(&store, "targets"), metadata(&site, &targets));
}

/// Each copy served wrong, once: the previous build's file (a CDN's stale copy), a
/// flipped byte, the other role's current file. Each is refused where the strict order
/// reaches it (the snapshot by the length and hashes the timestamp signs, the targets
/// by its version, signatures and `_type`), the versioned file is read instead, and the
/// install ends as it would have.
#[test]
fn a_stale_tampered_or_misplaced_copy_is_refused_and_the_versioned_file_read() {
    let site = site();
    let (snapshot_version, snapshot) = newest(&site, "snapshot");
    let (targets_version, targets) = newest(&site, "targets");
    assert!(snapshot_version >= 2 && targets_version == 2, "both moved: {snapshot}, {targets}");
    let attacks = [
        ("stale snapshot", SNAPSHOT, Fault::Stale(metadata(&site, "1.snapshot.json"))),
        ("tampered snapshot", SNAPSHOT, Fault::FlipByte),
        ("targets under the snapshot's name", SNAPSHOT, Fault::Stale(metadata(&site, &targets))),
        ("stale targets", TARGETS, Fault::Stale(metadata(&site, "1.targets.json"))),
        ("tampered targets", TARGETS, Fault::FlipByte),
        ("snapshot under the targets' name", TARGETS, Fault::Stale(metadata(&site, &snapshot))),
    ];
    for (attack, copy, fault) in attacks {
        let server = served(&site);
        server.fault(copy, fault);
        let (store, _data) = cold_install(&server, &site);
        let versioned = if copy == SNAPSHOT { &snapshot } else { &targets };
        assert_eq!(asked(&server, copy), 1, "{attack}: asked for once, with the timestamp");
        assert_eq!(asked(&server, &format!("/metadata/{versioned}")), 1, "{attack}: then {versioned}");
        assert_eq!(trusted(&store, "snapshot"), metadata(&site, &snapshot), "{attack}");
        assert_eq!(trusted(&store, "targets"), metadata(&site, &targets), "{attack}");
    }
}

/// A site built before the copies (or a mirror of one): each copy is one request
/// answered `404`, never asked again, and the first refresh takes the strict order's
/// round trips less the timestamp's, which still shares the root probe's.
#[test]
fn a_site_without_the_copies_costs_one_wasted_request_each() {
    let site = site();
    let server = served(&site);
    server.remove(SNAPSHOT);
    server.remove(TARGETS);
    server.set_latency(ROUND_TRIP_LATENCY);
    let data = tempfile::tempdir().unwrap();
    let mut store = Store::open(data.path(), StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    let chain = server.critical_chain();
    assert_eq!(chain.len(), 3, "root probe and timestamp (copies not found), snapshot, targets: {chain:#?}");
    assert_eq!(install(&mut store, "acme.app"), ["acme.lib 1.0.0", "acme.app 1.1.0"]);
    for copy in [SNAPSHOT, TARGETS] {
        let statuses: Vec<u16> = server.hits().iter().filter(|h| h.path == copy).map(|h| h.status).collect();
        assert_eq!(statuses, [404], "{copy}");
    }
}

/// After a new build, the update check's changed timestamp names a new snapshot; the
/// refresh asks for it (by the version read from the timestamp's bytes, checked once
/// the timestamp verifies) together with the root probe, not after it. A timestamp
/// naming the snapshot already trusted (re-signed without a build) asks for nothing.
#[test]
fn a_changed_timestamp_asks_for_the_snapshot_it_names_with_the_root_probe() {
    let site = site();
    let server = served(&site);
    let data = tempfile::tempdir().unwrap();
    let mut store = Store::open(data.path(), StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();

    site.publish(&[Plugin::new("acme.timer", "1.0.0")]);
    let reserved = served(&site);
    for path in reserved.paths() {
        server.put(&path, std::fs::read(site.site.path().join(path.trim_start_matches('/'))).unwrap());
    }
    let (_, snapshot) = newest(&site, "snapshot");
    let root_probe = "/metadata/2.root.json";
    server.set_latency(ROUND_TRIP_LATENCY);
    server.reset_counters();
    assert_eq!(install(&mut store, "acme.timer"), ["acme.timer 1.0.0"]);
    let timeline = server.timeline();
    let span =
        |path: &str| timeline.iter().find(|(_, _, p)| p == path).unwrap_or_else(|| panic!("{path} not asked for"));
    let (probe, snapshot_span) = (span(root_probe), span(&format!("/metadata/{snapshot}")));
    assert!(snapshot_span.0 < probe.1, "the snapshot was asked for after the root probe's answer: {timeline:#?}");
    assert_eq!(asked(&server, &format!("/metadata/{snapshot}")), 1);
    assert_eq!(asked(&server, SNAPSHOT), 0, "the version is known: no copy needed");
    assert_eq!(trusted(&store, "snapshot"), metadata(&site, &snapshot));

    // The timestamp alone re-signed: the same snapshot, nothing asked for but the check.
    operator::timestamp(&Registry::open(site.registry.path()).unwrap(), site.site.path(), jiff::Timestamp::now())
        .unwrap();
    server.put("/metadata/timestamp.json", metadata(&site, "timestamp.json"));
    server.reset_counters();
    store.check_updates(&[], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    let metadata_hits: Vec<String> =
        server.hits().into_iter().map(|h| h.path).filter(|p| p.contains(".snapshot.json")).collect();
    assert_eq!(metadata_hits, Vec::<String>::new(), "the trusted snapshot is current");
}
