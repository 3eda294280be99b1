//! The cost of the update check, counted by the fault server: a no-op check is exactly
//! one conditional request answered `304`, for 1, 100 and 1,000 installed plugins
//! alike; one new release costs timestamp, the root probe (every time the timestamp
//! changed), snapshot, that plugin's bin and its index doc. An updater kept open (a
//! host app's store) keeps the roles it loaded across a `304`: its next lookups read
//! nothing again, unless the chain moved or a kept role expired.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns panic on setup failure by design

use std::path::Path;
use std::sync::Arc;

use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::{MetadataOrder, UpdateCheck, Updater};
use trellis_schema::Sha256;
use trellis_tests::fault_server::{Fault, FaultServer, Hit};
use trellis_tests::registry::{TestRegistry, sha256_hex};

fn doc(plugin: usize, release: usize) -> Vec<u8> {
    format!("{{\"id\":\"acme.plugin-{plugin}\",\"versions\":[\"1.{release}.0\"]}}").into_bytes()
}

/// A registry of `plugins` plugins in 16 bins, served by a fresh server, and a
/// metadata dir that has done one full refresh against it and looked up every
/// installed plugin's index doc (as installing them did).
fn installed_world(plugins: usize) -> (TestRegistry, FaultServer, tempfile::TempDir, Vec<(String, Sha256)>) {
    let mut registry = TestRegistry::new(2, 4);
    for n in 0..plugins {
        registry.set_index_doc(&format!("acme.plugin-{n}"), &doc(n, 0));
    }
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    Updater::bootstrap(dir.path(), registry.root()).unwrap();
    let mut client = updater(dir.path(), &server);
    client.refresh().unwrap();
    let installed: Vec<(String, Sha256)> =
        (0..plugins).map(|n| (TestRegistry::index_path(&format!("acme.plugin-{n}")), Sha256::of(&doc(n, 0)))).collect();
    for (path, _) in &installed {
        client.target_info(path).unwrap().expect("listed");
    }
    (registry, server, dir, installed)
}

/// A new updater, as a freshly started host app would make.
fn updater(dir: &Path, server: &FaultServer) -> Updater {
    let mirrors = Mirrors::new(Arc::new(AnyTransport::new(HttpOptions::default())), vec![Mirror::site(&server.url())]);
    Updater::new(dir, mirrors).unwrap()
}

#[test]
fn noop_update_check_is_one_request_for_1_100_and_1000_installed_plugins() {
    for plugins in [1, 100, 1000] {
        let (_registry, server, dir, installed) = installed_world(plugins);
        server.reset_counters();
        let changed = updater(dir.path(), &server).changed_targets(&installed).unwrap();
        assert!(changed.is_empty(), "{plugins} plugins: nothing changed");
        assert_eq!(
            server.hits(),
            [Hit { path: "/metadata/timestamp.json".into(), status: 304 }],
            "{plugins} installed plugins"
        );
        assert!(server.bytes_sent() < 256, "a 304 is a few headers, got {} bytes", server.bytes_sent());
    }
}

#[test]
fn one_new_release_costs_timestamp_the_root_probe_snapshot_its_bin_and_its_index_doc() {
    let (mut registry, server, dir, installed) = installed_world(100);
    let new_doc = doc(7, 1);
    registry.set_index_doc("acme.plugin-7", &new_doc);
    registry.publish();
    registry.serve(&server, "");
    server.reset_counters();

    let mut client = updater(dir.path(), &server);
    let changed = client.changed_targets(&installed).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].path, "index/acme.plugin-7.json");
    assert_eq!(client.fetch_target(&changed[0]).unwrap(), new_doc);

    // The timestamp changed, so the root chain is probed before it is believed.
    let bin = registry.bin_of("index/acme.plugin-7.json");
    let expected: Vec<Hit> = [
        ("/metadata/timestamp.json", 200),
        ("/metadata/2.root.json", 404),
        ("/metadata/2.snapshot.json", 200),
        (format!("/metadata/2.{bin}.json").as_str(), 200),
        (format!("/targets/index/{}.acme.plugin-7.json", sha256_hex(&new_doc)).as_str(), 200),
    ]
    .into_iter()
    .map(|(path, status)| Hit { path: path.to_owned(), status })
    .collect();
    assert_eq!(server.hits(), expected);

    // And the next check is back to one request.
    server.reset_counters();
    assert_eq!(updater(dir.path(), &server).check_for_updates().unwrap(), UpdateCheck::NothingNew);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn update_check_probes_for_a_new_root_whenever_the_timestamp_changed() {
    let (mut registry, server, dir, installed) = installed_world(3);
    registry.set_index_doc("acme.plugin-1", &doc(1, 1));
    registry.publish();
    registry.serve(&server, "");
    server.reset_counters();

    // Right after the refresh that installed the plugins: no interval skips the probe.
    let mut client = updater(dir.path(), &server);
    assert_eq!(client.changed_targets(&installed).unwrap().len(), 1);
    let paths: Vec<String> = server.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(paths[..3], ["/metadata/timestamp.json", "/metadata/2.root.json", "/metadata/2.snapshot.json"]);
}

#[test]
fn cold_lookup_loads_only_the_bin_on_the_path_of_the_target() {
    let mut registry = TestRegistry::new(2, 4);
    for n in 0..50 {
        registry.set_index_doc(&format!("acme.plugin-{n}"), &doc(n, 0));
    }
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    Updater::bootstrap(dir.path(), registry.root()).unwrap();
    let mut client = updater(dir.path(), &server);
    let path = TestRegistry::index_path("acme.plugin-9");
    let info = client.target_info(&path).unwrap().expect("listed");
    assert_eq!(info.sha256(), Some(Sha256::of(&doc(9, 0))));
    assert_eq!(info.role, registry.bin_of(&path));
    let paths: Vec<String> = server.hits().into_iter().map(|h| h.path).collect();
    let bin = format!("/metadata/1.{}.json", registry.bin_of(&path));
    assert_eq!(
        paths,
        [
            "/metadata/2.root.json",
            "/metadata/timestamp.json",
            "/metadata/1.snapshot.json",
            "/metadata/1.targets.json",
            &bin
        ]
    );
}

#[test]
fn expired_cached_timestamp_forces_a_full_refresh() {
    let mut registry = TestRegistry::new(3, 2);
    registry.timestamp_expires = "2020-01-01T00:00:00Z".into();
    registry.set_index_doc("acme.old", b"{}");
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    Updater::bootstrap(dir.path(), registry.root()).unwrap();
    let past: jiff::Timestamp = "2019-06-01T00:00:00Z".parse().unwrap();
    updater(dir.path(), &server).with_reference_time(past).refresh().unwrap();
    server.reset_counters();
    // Today the trusted timestamp is expired: a 304 must not be taken as "nothing new".
    let err = updater(dir.path(), &server).check_for_updates().unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let paths: Vec<String> = server.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(paths, ["/metadata/2.root.json", "/metadata/timestamp.json"], "strict refresh, no conditional shortcut");
}

/// A power cut may keep the rename of the timestamp's validators and lose the
/// timestamp's own (or a backup may bring back an older metadata dir): validators
/// answered with `304` would then keep the older timestamp until the next publish.
/// They are bound to the timestamp bytes they were stored for, so the check is an
/// unconditional GET that brings the newer timestamp back.
#[test]
fn validators_whose_timestamp_was_lost_are_not_sent() {
    let (mut registry, server, dir, installed) = installed_world(3);
    let timestamp_file = dir.path().join("timestamp.json");
    let older = std::fs::read(&timestamp_file).unwrap();
    registry.set_index_doc("acme.plugin-1", &doc(1, 1));
    registry.publish();
    registry.serve(&server, "");
    assert_eq!(updater(dir.path(), &server).changed_targets(&installed).unwrap().len(), 1);
    let newer = std::fs::read(&timestamp_file).unwrap();
    assert_ne!(older, newer, "the refresh stored the new timestamp");

    // The timestamp's rename lost: its older bytes are back, the validators are not.
    std::fs::write(&timestamp_file, &older).unwrap();
    std::fs::remove_file(dir.path().join("timestamp.receipt")).ok();
    server.reset_counters();
    let mut client = updater(dir.path(), &server);
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::Refreshed);
    let timestamp_hits: Vec<Hit> = server.hits().into_iter().filter(|h| h.path == "/metadata/timestamp.json").collect();
    assert_eq!(timestamp_hits, [Hit { path: "/metadata/timestamp.json".into(), status: 200 }], "an unconditional GET");
    assert_eq!(std::fs::read(&timestamp_file).unwrap(), newer, "the newer timestamp is trusted again");

    // The validators now bind the newer timestamp again: the next check is one 304.
    server.reset_counters();
    assert_eq!(updater(dir.path(), &server).check_for_updates().unwrap(), UpdateCheck::NothingNew);
    assert_eq!(server.hits(), [Hit { path: "/metadata/timestamp.json".into(), status: 304 }]);
}

/// The timestamp, snapshot and top-level targets are flushed before their rename and
/// their directory is synced once at the end of the refresh: a power cut before that
/// sync may keep any subset of the three renames. Each mix of older and newer files
/// must leave a client that refreshes to the newer chain, and that refuses the older
/// chain whenever the newer timestamp or the newer snapshot survived: each is a
/// rollback reference on its own (a newer snapshot also beside an older timestamp, as
/// in python-tuf, which keeps a local snapshot the timestamp does not name as the
/// reference). The top-level targets is no rollback reference in TUF (the snapshot's
/// meta is): with both older ones back, the older chain is what the client trusted.
#[test]
fn any_mix_of_top_level_roles_a_power_cut_leaves_refreshes_and_keeps_its_rollback_reference() {
    let (mut registry, server, dir, installed) = installed_world(3);
    let roles = ["timestamp", "snapshot", "targets"];
    let read_all = || roles.map(|role| std::fs::read(dir.path().join(format!("{role}.json"))).unwrap());
    let older = read_all();
    registry.set_index_doc("acme.plugin-1", &doc(1, 1));
    registry.touch_targets();
    registry.publish();
    registry.serve(&server, "");
    assert_eq!(updater(dir.path(), &server).changed_targets(&installed).unwrap().len(), 1);
    let newer = read_all();
    let moved: Vec<usize> = (0..roles.len()).filter(|&i| older[i] != newer[i]).collect();
    assert_eq!(moved, [0, 1, 2], "the publish moved all three");
    let newer_timestamp = newer[0].clone();

    for mask in 1..(1u32 << moved.len()) {
        let lost: Vec<usize> = moved.iter().copied().filter(|&i| mask & (1 << i) != 0).collect();
        let names: Vec<&str> = lost.iter().map(|&i| roles[i]).collect();
        let restore = || {
            for (i, role) in roles.iter().enumerate() {
                let bytes = if lost.contains(&i) { &older[i] } else { &newer[i] };
                std::fs::write(dir.path().join(format!("{role}.json")), bytes).unwrap();
            }
        };

        // The repository rolled back to the older chain (a freeze or rollback attack).
        restore();
        server.put("/metadata/timestamp.json", older[0].clone());
        let rolled_back = updater(dir.path(), &server).refresh();
        if lost.contains(&0) && lost.contains(&1) {
            rolled_back.unwrap_or_else(|e| panic!("lost {names:?}: the durable chain is the older one: {e}"));
        } else {
            let err = rolled_back.expect_err(&format!("lost {names:?}: the older chain was accepted")).to_string();
            assert!(err.contains("older than the trusted version"), "lost {names:?}: {err}");
        }

        // The repository as it is: the newer chain is trusted again, whatever was lost.
        restore();
        server.put("/metadata/timestamp.json", newer_timestamp.clone());
        updater(dir.path(), &server).refresh().unwrap_or_else(|e| panic!("lost {names:?}: {e}"));
        assert_eq!(read_all(), newer, "lost {names:?}: the newer chain is stored again");
        let mut client = updater(dir.path(), &server);
        let info = client.target_info(&installed[1].0).unwrap().expect("listed");
        assert_eq!(info.sha256(), Some(Sha256::of(&doc(1, 1))), "lost {names:?}");
    }
}

/// The metadata files of the hash bins in `dir`, removed: a lookup that still finds its
/// target did not read its bin again.
fn remove_stored_bins(dir: &Path) -> usize {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("bin-") {
            std::fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    removed
}

#[test]
fn an_updater_kept_open_reuses_its_roles_after_a_304() {
    let (_registry, server, dir, installed) = installed_world(40);
    let mut client = updater(dir.path(), &server);
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew);
    for (path, _) in &installed {
        client.target_info(path).unwrap().expect("listed");
    }
    assert!(remove_stored_bins(dir.path()) > 0);
    server.reset_counters();
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew);
    for (path, sha256) in &installed {
        assert_eq!(client.target_info(path).unwrap().expect("listed").sha256().as_ref(), Some(sha256));
    }
    assert_eq!(
        server.hits(),
        [Hit { path: "/metadata/timestamp.json".into(), status: 304 }],
        "the bins verified under the same chain were kept in memory"
    );
}

#[test]
fn an_updater_kept_open_drops_its_roles_when_the_chain_moves() {
    let (mut registry, server, dir, installed) = installed_world(20);
    let mut client = updater(dir.path(), &server);
    client.check_for_updates().unwrap();
    for (path, _) in &installed {
        client.target_info(path).unwrap().expect("listed");
    }
    registry.set_index_doc("acme.plugin-7", &doc(7, 1));
    registry.publish();
    registry.serve(&server, "");
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::Refreshed);
    let path = TestRegistry::index_path("acme.plugin-7");
    assert_eq!(client.target_info(&path).unwrap().expect("listed").sha256(), Some(Sha256::of(&doc(7, 1))));
}

#[test]
fn an_updater_kept_open_drops_a_kept_role_once_it_expired() {
    let mut registry = TestRegistry::new(4, 2);
    registry.bins_expires = "2030-01-01T00:00:00Z".into();
    registry.set_index_doc("acme.kept", b"{}");
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    Updater::bootstrap(dir.path(), registry.root()).unwrap();
    let before: jiff::Timestamp = "2029-06-01T00:00:00Z".parse().unwrap();
    let mut client = updater(dir.path(), &server).with_reference_time(before);
    client.refresh().unwrap();
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew);
    let path = TestRegistry::index_path("acme.kept");
    client.target_info(&path).unwrap().expect("listed");

    // The same chain, a 304, but the bin it kept has expired since: it is not used.
    let after: jiff::Timestamp = "2030-06-01T00:00:00Z".parse().unwrap();
    let mut client = client.with_reference_time(after);
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew);
    let err = client.target_info(&path).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

/// Overwrites the stored snapshot and top-level targets with bytes that cannot parse.
fn spoil_stored_chain(dir: &Path) {
    for role in ["snapshot", "targets"] {
        std::fs::write(dir.join(format!("{role}.json")), b"{ not json").unwrap();
    }
}

#[test]
fn an_updater_kept_open_checks_from_the_chain_it_verified_without_reading_it_again() {
    let (_registry, server, dir, installed) = installed_world(20);
    let mut client = updater(dir.path(), &server).with_metadata_order(MetadataOrder::Speculative);
    client.refresh().unwrap();
    let snapshot = client.trusted().snapshot().unwrap().version();
    // Were the next checks to read the stored snapshot or targets again, they would fail.
    spoil_stored_chain(dir.path());
    server.reset_counters();
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew);
    assert_eq!(client.trusted().snapshot().unwrap().version(), snapshot);
    // The same with a hint (an install's first wave): the roles on its paths come from
    // the chain in memory and the store's bins, and nothing is asked for but the check.
    let paths: Vec<String> = installed.iter().map(|(path, _)| path.clone()).collect();
    assert_eq!(client.hint(paths), Some(Vec::new()), "every bin on the hinted paths is stored");
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew);
    for (path, sha256) in &installed {
        assert_eq!(client.target_info(path).unwrap().expect("listed").sha256().as_ref(), Some(sha256));
    }
    assert_eq!(server.hits(), vec![Hit { path: "/metadata/timestamp.json".into(), status: 304 }; 2]);

    // A new updater (a new process) has no verified chain in memory: it reads the store.
    let err = updater(dir.path(), &server).check_for_updates();
    assert!(err.is_err(), "the spoiled copies were read and refused: {err:?}");
}

#[test]
fn an_updater_reads_the_store_again_after_a_check_failed() {
    let (_registry, server, dir, _installed) = installed_world(3);
    let mut client = updater(dir.path(), &server);
    client.refresh().unwrap();
    // A check that fails leaves no chain in memory to start the next one from.
    server.fault("/metadata/timestamp.json", Fault::ServerError);
    client.check_for_updates().unwrap_err();
    server.clear_faults();
    spoil_stored_chain(dir.path());
    let err = client.check_for_updates();
    assert!(err.is_err(), "the spoiled copies were read and refused: {err:?}");
}
