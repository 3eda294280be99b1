//! Attacks on speculation: the store asks for TUF metadata ahead of the spec's order
//! (`MetadataOrder::Speculative`: the timestamp with the root probe, the roles on the
//! first lookups' delegation paths with the update check, the bin a target falls in
//! guessed from the snapshot's role names), and every byte must still be verified
//! when, and as, the strict order reaches it. A mirror that answers the speculative
//! request with a stale role, a tampered one, another bin under the guessed name, or a
//! timestamp signed under the root the client held before a rotation gets nothing in:
//! the file is downloaded again the strict way and the install ends as it would have.
//! Real site, real signatures, the fault server on 127.0.0.1.

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

mod common;

use common::{Plugin, Site, host, served};
use trellis_client::hooks::NoHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_client::trust::MetadataOrder;
use trellis_index::operator::{self, RotatedRole};
use trellis_index::registry::Registry;
use trellis_tests::fault_server::{Fault, FaultServer, ROUND_TRIP_LATENCY};

fn store(data: &std::path::Path, server: &FaultServer, site: &Site) -> Store {
    let mut store = Store::open(data, StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    store
}

fn install(store: &mut Store, id: &str) -> Vec<String> {
    let report = store.install(&[parse_requirement(id).unwrap()], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    report.installed.iter().map(|(id, v)| format!("{id} {v}")).collect()
}

/// The hash bin (`bin-xx` of 256) the index doc of `id` falls in.
fn bin_of(id: &str) -> String {
    let target = trellis_schema::target::index_target(&id.parse().unwrap());
    format!("bin-{}", &trellis_schema::Sha256::of(target.as_bytes()).to_hex()[..2])
}

/// The versions of `role` the site holds (`metadata/<version>.<role>.json`), oldest first.
fn versions_of(site: &Site, role: &str) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(site.site.path().join("metadata"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(&format!(".{role}.json"))?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

fn metadata(site: &Site, file: &str) -> Vec<u8> {
    std::fs::read(site.site.path().join("metadata").join(file)).unwrap()
}

/// Plugins of other bins, released together with `acme.app` 1.1.0.
const OTHERS: [&str; 4] = ["contoso.other", "contoso.more", "contoso.extra", "contoso.spare"];

/// `acme.app` 1.0.0 and 1.1.0 (two builds: its bin has an older version) needing
/// `acme.lib`, and [`OTHERS`] released in both builds (bins of the same version).
fn site() -> Site {
    let site = Site::with_bin_bits(8);
    let mut first =
        vec![Plugin::new("acme.lib", "1.0.0"), Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1")];
    first.extend(OTHERS.iter().map(|id| Plugin::new(id, "1.0.0")));
    site.publish(&first);
    let mut second = vec![Plugin::new("acme.app", "1.1.0").depends_on("acme.lib", "^1")];
    second.extend(OTHERS.iter().map(|id| Plugin::new(id, "1.1.0")));
    site.publish(&second);
    site
}

#[test]
fn a_speculated_bin_that_is_stale_tampered_or_another_bin_is_refused_and_downloaded_again() {
    let site = site();
    let bin = bin_of("acme.app");
    let versions = versions_of(&site, &bin);
    let (old, current) = (versions[0], *versions.last().unwrap());
    assert!(old < current, "the second build moved {bin}: {versions:?}");
    // Another bin the same online key signed at the same version, listing other
    // plugins: signatures and the snapshot's version cannot tell it from `bin`.
    let other = OTHERS
        .iter()
        .map(|id| bin_of(id))
        .find(|b| *b != bin && versions_of(&site, b).contains(&current))
        .unwrap_or_else(|| panic!("no other bin at version {current}"));
    let path = format!("/metadata/{current}.{bin}.json");
    let attacks = [
        ("stale", Fault::Stale(metadata(&site, &format!("{old}.{bin}.json")))),
        ("tampered", Fault::FlipByte),
        ("another bin", Fault::Stale(metadata(&site, &format!("{current}.{other}.json")))),
    ];
    for (attack, fault) in attacks {
        let server = served(&site);
        let data = tempfile::tempdir().unwrap();
        let mut store = store(data.path(), &server, &site);
        server.reset_counters();
        // The first request of the bin is the speculative one, sent with the update
        // check (the bin's name guessed from the snapshot's role names).
        server.fault_times(&path, fault, 1);
        assert_eq!(install(&mut store, "acme.app"), ["acme.lib 1.0.0", "acme.app 1.1.0"], "{attack}");
        let asked = server.hits().iter().filter(|h| h.path == path).count();
        assert_eq!(asked, 2, "{attack}: {path} speculated, refused, downloaded again");
        let trusted = store.data_dir().metadata_dir(&"main".parse().unwrap()).join(format!("{bin}.json"));
        assert_eq!(std::fs::read(trusted).unwrap(), metadata(&site, &format!("{current}.{bin}.json")), "{attack}");
    }
}

#[test]
fn a_speculated_bin_that_verifies_is_used_without_a_second_request() {
    let site = site();
    let server = served(&site);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    server.reset_counters();
    assert_eq!(install(&mut store, "acme.app"), ["acme.lib 1.0.0", "acme.app 1.1.0"]);
    let hits = server.hits();
    let bin = bin_of("acme.app");
    let version = versions_of(&site, &bin).last().copied().unwrap();
    assert_eq!(hits.iter().filter(|h| h.path == format!("/metadata/{version}.{bin}.json")).count(), 1);
    // No role is asked for twice, and no role is wasted on a guess of another family
    // below `bins` (the publishers' bins are guessed for the publisher record only).
    let mut roles: Vec<&str> = hits.iter().map(|h| h.path.as_str()).filter(|p| p.starts_with("/metadata/")).collect();
    let all = roles.len();
    roles.sort_unstable();
    roles.dedup();
    assert_eq!(roles.len(), all, "a role asked for twice: {roles:?}");
}

/// The first refresh (`add_registry`: no trusted timestamp yet) asks for the
/// timestamp, and the snapshot and top-level targets under their unversioned names,
/// together with the probe for a newer root: one round trip where the strict order,
/// which the conformance client keeps, takes four. (`transport_unversioned.rs` attacks
/// the copies.)
#[test]
fn a_first_refresh_asks_for_the_timestamp_snapshot_and_targets_with_the_root_probe() {
    let site = site();
    let mut chains = Vec::new();
    for order in [MetadataOrder::Speculative, MetadataOrder::Strict] {
        let server = served(&site);
        server.set_latency(ROUND_TRIP_LATENCY);
        let data = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(data.path(), StoreOptions { metadata_order: order, ..StoreOptions::new(host()) }).unwrap();
        store.add_registry("main", &server.url(), &site.root()).unwrap();
        chains.push(server.critical_chain());
    }
    assert_eq!(chains[0].len(), 1, "root probe with the timestamp, snapshot and targets: {:#?}", chains[0]);
    assert_eq!(chains[1].len(), 4, "root probe, timestamp, snapshot, targets: {:#?}", chains[1]);
}

/// Another bin of the same version, served under a bin's name, passes every signature
/// and version check (one key set signs all bins, the snapshot names no hashes). Taken,
/// it hid the plugins of the bin asked for ("no registry publishes acme.app") whatever
/// the other mirrors held. In either order a bin is now taken only if every target it
/// lists falls in it: refused, naming the bin, the bin its target falls in and the
/// mirror; and with a good mirror after the lying one, the install fails over to it.
#[test]
fn another_bin_served_under_a_bins_name_is_refused_in_either_order() {
    let site = site();
    let bin = bin_of("acme.app");
    let current = *versions_of(&site, &bin).last().unwrap();
    let other = OTHERS
        .iter()
        .map(|id| bin_of(id))
        .find(|b| *b != bin && versions_of(&site, b).contains(&current))
        .unwrap_or_else(|| panic!("no other bin at version {current}"));
    let path = format!("/metadata/{current}.{bin}.json");
    let swapped = metadata(&site, &format!("{current}.{other}.json"));
    for order in [MetadataOrder::Strict, MetadataOrder::Speculative] {
        let options = || StoreOptions { metadata_order: order, ..StoreOptions::new(host()) };
        let liar = served(&site);
        liar.fault(&path, Fault::Stale(swapped.clone()));
        let data = tempfile::tempdir().unwrap();
        let mut store = Store::open(data.path(), options()).unwrap();
        store.add_registry("main", &liar.url(), &site.root()).unwrap();
        let session = Session::new(&NoHooks, &AlwaysAgree);
        let err = store.install(&[parse_requirement("acme.app").unwrap()], &session).unwrap_err().to_string();
        assert!(!err.contains("no registry publishes"), "{order:?}: {err}");
        assert!(
            err.contains(&format!("{bin} lists ")) && err.contains(&format!("falls in {other}")),
            "{order:?}: {err}"
        );
        assert!(err.contains(&format!("{}{path}", liar.url())), "{order:?}: names the mirror: {err}");
        assert!(store.state().plugins().is_empty(), "{order:?}");
        let trusted = store.data_dir().metadata_dir(&"main".parse().unwrap()).join(format!("{bin}.json"));
        assert!(!trusted.exists(), "{order:?}: the other bin is not stored as {bin}");

        // The user's mirror lies, the registry's own site does not.
        let genuine = served(&site);
        let data = tempfile::tempdir().unwrap();
        let mut store = Store::open(data.path(), options()).unwrap();
        store.add_registry("main", &genuine.url(), &site.root()).unwrap();
        store.add_mirror("main", &liar.url()).unwrap();
        liar.reset_counters();
        assert_eq!(install(&mut store, "acme.app"), ["acme.lib 1.0.0", "acme.app 1.1.0"], "{order:?}");
        assert!(liar.hits().iter().any(|h| h.path == path), "{order:?}: the lying mirror was asked first");
        let trusted = store.data_dir().metadata_dir(&"main".parse().unwrap()).join(format!("{bin}.json"));
        assert_eq!(std::fs::read(trusted).unwrap(), metadata(&site, &format!("{current}.{bin}.json")), "{order:?}");
    }
}

/// The operator rotated the timestamp key (root v2). A client that pinned root v1
/// asks for the timestamp with its root probe; the mirror answers that early request
/// with the last timestamp signed by the retired key, which root v1 would accept. The
/// client verifies a timestamp only once its root chain is settled, so it finds root
/// v2, asks for the timestamp again and trusts only the one the new key signed.
#[test]
fn a_timestamp_asked_for_before_a_root_rotation_is_checked_under_the_new_root() {
    let site = site();
    let retired = std::fs::read(site.site.path().join("metadata/timestamp.json")).unwrap();
    let registry = Registry::open(site.registry.path()).unwrap();
    operator::rotate(&registry, RotatedRole::Timestamp, jiff::Timestamp::now()).unwrap();
    site.publish(&[Plugin::new("acme.timer", "1.0.0")]);
    let genuine = std::fs::read(site.site.path().join("metadata/timestamp.json")).unwrap();
    assert_ne!(retired, genuine);

    let server = served(&site);
    server.fault_times("/metadata/timestamp.json", Fault::Stale(retired), 1);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    let dir = store.data_dir().metadata_dir(&"main".parse().unwrap());
    assert_eq!(std::fs::read(dir.join("timestamp.json")).unwrap(), genuine, "the new key's timestamp is trusted");
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 2);
    let asked = server.hits().iter().filter(|h| h.path == "/metadata/timestamp.json").count();
    assert_eq!(asked, 2, "asked for with the root probe, then again under root v2");
    assert_eq!(install(&mut store, "acme.timer"), ["acme.timer 1.0.0"]);
}

/// A client from before the bin check stored whatever verified, so its store may
/// hold another bin under a bin's name (same key, same version). Read back by this
/// client, with the older client's receipt or none, that copy is refused as a download
/// would be and the bin is downloaded again: the plugin it hid is found.
#[test]
fn another_bin_kept_in_the_store_under_a_bins_name_is_refused_when_read_back() {
    let site = site();
    let bin = bin_of("acme.app");
    let current = *versions_of(&site, &bin).last().unwrap();
    let (other_id, other) = OTHERS
        .iter()
        .map(|id| (*id, bin_of(id)))
        .find(|(_, b)| *b != bin && versions_of(&site, b).contains(&current))
        .unwrap_or_else(|| panic!("no other bin at version {current}"));
    for older_receipt in [false, true] {
        let server = served(&site);
        let data = tempfile::tempdir().unwrap();
        let dir = {
            let mut store = store(data.path(), &server, &site);
            assert_eq!(install(&mut store, other_id), [format!("{other_id} 1.1.0")]);
            store.data_dir().metadata_dir(&"main".parse().unwrap())
        };
        // The older client's store: `other` kept as `bin`, with the receipt it wrote
        // (format 2: before the bin check) or none.
        std::fs::copy(dir.join(format!("{other}.json")), dir.join(format!("{bin}.json"))).unwrap();
        let receipt = dir.join(format!("{bin}.receipt"));
        if older_receipt {
            let mut value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join(format!("{other}.receipt"))).unwrap()).unwrap();
            value["format"] = 2.into();
            std::fs::write(&receipt, serde_json::to_vec(&value).unwrap()).unwrap();
        } else {
            let _ = std::fs::remove_file(&receipt);
        }

        let mut store = Store::open(data.path(), StoreOptions::new(host())).unwrap();
        server.reset_counters();
        assert_eq!(install(&mut store, "acme.app"), ["acme.lib 1.0.0", "acme.app 1.1.0"], "receipt {older_receipt}");
        let path = format!("/metadata/{current}.{bin}.json");
        assert!(server.hits().iter().any(|h| h.path == path), "receipt {older_receipt}: {bin} downloaded again");
        let genuine = metadata(&site, &format!("{current}.{bin}.json"));
        assert_eq!(std::fs::read(dir.join(format!("{bin}.json"))).unwrap(), genuine, "receipt {older_receipt}");
    }
}
