//! The client at a distance: a cold install through the fault server with latency
//! added to every answer. Speculative prefetch keeps the critical path to the depth of
//! the dependency graph (bins loaded a level of the delegation tree at a time, docs in
//! parallel), and it changes nothing about what is verified: a tampered doc the
//! resolution needs still fails the install naming it, and one it only prefetched
//! speculatively does not fail the install at all.

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

mod common;

use std::time::Duration;

use common::{Plugin, Site, host, walk};
use trellis_client::hooks::NoHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_tests::fault_server::{Fault, FaultServer};

/// The built site of `site`, served by a fault server.
fn served(site: &Site) -> FaultServer {
    let server = FaultServer::start().unwrap();
    for path in walk(site.site.path()) {
        let relative = path.strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(&path).unwrap());
    }
    server
}

fn store(data: &std::path::Path, server: &FaultServer, site: &Site) -> Store {
    let mut store = Store::open(data, StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    store
}

/// The URL path of the index doc of `id`.
fn doc_path(site: &Site, id: &str) -> String {
    let suffix = format!(".{id}.json");
    let found: Vec<_> = walk(&site.site.path().join("targets/index"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(&suffix))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    format!("/{}", found[0].strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/"))
}

/// `acme.app` 1.0.0 needs `acme.lib`; the newest, 2.0.0, needs `acme.old`, whose doc
/// the client prefetches speculatively (the newest stable release is the likely pick),
/// although a user who asks for `acme.app@^1` does not need it.
fn site_with_an_old_dependency() -> Site {
    let site = Site::new();
    site.publish(&[
        Plugin::new("acme.old", "1.0.0"),
        Plugin::new("acme.lib", "1.0.0"),
        Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1"),
        Plugin::new("acme.app", "2.0.0").depends_on("acme.old", "^1"),
    ]);
    site
}

fn install(store: &mut Store, id: &str) -> Result<Vec<String>, trellis_client::store::StoreError> {
    let report = store.install(&[parse_requirement(id).unwrap()], &Session::new(&NoHooks, &AlwaysAgree))?;
    Ok(report.installed.iter().map(|(id, v)| format!("{id} {v}")).collect())
}

#[test]
fn a_tampered_doc_only_prefetched_does_not_fail_the_install() {
    let site = site_with_an_old_dependency();
    let server = served(&site);
    let old = doc_path(&site, "acme.old");
    server.fault(&old, Fault::FlipByte);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    assert_eq!(install(&mut store, "acme.app@^1").unwrap(), ["acme.lib 1.0.0", "acme.app 1.0.0"]);
    // The doc was fetched (speculatively), refused, and never used.
    assert!(server.hits().iter().any(|h| h.path == old), "acme.old's doc was not prefetched");
    // Asked for on its own, the same doc fails as it always did, naming it.
    let err = install(&mut store, "acme.old").unwrap_err().to_string();
    assert!(err.contains("acme.old"), "{err}");
}

#[test]
fn a_tampered_doc_the_resolution_needs_fails_the_install_naming_it() {
    let site = site_with_an_old_dependency();
    let server = served(&site);
    server.fault(&doc_path(&site, "acme.lib"), Fault::FlipByte);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    let err = install(&mut store, "acme.app@^1").unwrap_err().to_string();
    assert!(err.contains("acme.lib"), "{err}");
    assert!(store.state().plugins().is_empty(), "nothing is installed after a failed install");
}

/// A wide graph over many bins: `acme.app` needs eight plugins, each needs
/// `acme.base`. One doc after another that is 2 round trips per plugin (its bin, its
/// doc); by levels it is 2 per level of the graph.
#[test]
fn a_cold_install_takes_round_trips_by_graph_depth_not_graph_size() {
    let site = Site::with_bin_bits(8);
    let mut plugins = vec![Plugin::new("acme.base", "1.0.0")];
    let mut app = Plugin::new("acme.app", "1.0.0");
    for i in 0..8 {
        let id = format!("acme.lib{i}");
        plugins.push(Plugin::new(&id, "1.0.0").depends_on("acme.base", "^1"));
        app = app.depends_on(&id, "^1");
    }
    plugins.push(app);
    site.publish(&plugins);
    let server = served(&site);
    // Latency makes requests sent together overlap in the server's count.
    server.set_latency(Duration::from_millis(40));
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    server.reset_counters();
    assert_eq!(install(&mut store, "acme.app").unwrap().len(), 10);
    let (requests, critical) = (server.request_count(), server.critical_path());
    eprintln!("cold install of 10 plugins: {requests} requests, {critical} round trips of critical path");
    // Refresh (4), the blocklist, 3 levels of docs (2 each), publisher records,
    // envelopes, packages: far fewer than the 2 × 10 of docs one at a time.
    assert!(critical <= 16, "{critical} round trips on the critical path ({requests} requests)");
}
