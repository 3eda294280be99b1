//! Publisher records behind TAP 15 succinct bins: a store installing from two vendors
//! of a site built by `trellis-index` finds each record through targets → publishers
//! → its `pub-…` bin, and fetches only those two bins of the 256, counted by the fault
//! server.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{Plugin, Site};
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_index::site;
use trellis_tests::fault_server::FaultServer;

/// The publisher bin of `vendor` on a site built with the default 8 publisher bits.
fn publisher_bin(vendor: &str) -> String {
    site::bin_for_target(&site::publisher_target(&vendor.parse().unwrap()), 8, "pub")
}

#[test]
fn installing_from_two_vendors_fetches_only_their_two_publisher_bins() {
    let site = Site::new();
    // A third publisher whose bin no install needs.
    trellis_index::fixture::add_publisher(site.registry.path(), "globex", &trellis_index::fixture::key(3)).unwrap();
    site.publish(&[Plugin::new("acme.clock", "1.0.0"), Plugin::new("contoso.notes", "2.0.0")]);
    let (acme, contoso, globex) = (publisher_bin("acme"), publisher_bin("contoso"), publisher_bin("globex"));
    assert!(acme != contoso && globex != acme && globex != contoso, "the vendors must sit in different bins");
    let bins_on_site: BTreeSet<String> = common::files(site.site.path())
        .iter()
        .filter(|p| p.contains(".pub-"))
        .map(|p| p.rsplit('.').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(bins_on_site.len(), 256);

    let server = FaultServer::start().unwrap();
    for file in common::files(site.site.path()) {
        server.put(&format!("/{}", file.replace('\\', "/")), std::fs::read(site.site.path().join(&file)).unwrap());
    }
    let data = tempfile::tempdir().unwrap();
    let mut store = Store::open(data.path(), StoreOptions::new(common::host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let requirements = [parse_requirement("acme.clock").unwrap(), parse_requirement("contoso.notes").unwrap()];
    let report = store.install(&requirements, &session).unwrap();
    assert_eq!(report.installed.len(), 2, "{:?}", report.installed);

    let hits = server.hits();
    let fetched_bins: BTreeSet<String> = hits
        .iter()
        .filter(|hit| hit.path.contains(".pub-"))
        .map(|hit| hit.path.rsplit('.').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(fetched_bins, BTreeSet::from([acme, contoso]), "{hits:?}");
    let publisher_bin_requests = hits.iter().filter(|hit| hit.path.contains(".pub-")).count();
    assert_eq!(publisher_bin_requests, 2, "each bin is fetched once: {hits:?}");
    let records: Vec<&str> =
        hits.iter().filter(|hit| hit.path.starts_with("/targets/publishers/")).map(|hit| hit.path.as_str()).collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(!records.iter().any(|p| p.ends_with(".globex.json")), "{records:?}");
}
