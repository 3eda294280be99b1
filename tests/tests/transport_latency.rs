//! The client at a distance: a cold install through the fault server with latency
//! added to every answer. Speculative prefetch keeps the critical path to the depth of
//! the dependency graph, one round trip per level (bins loaded a level of the
//! delegation tree at a time, each doc's alias asked for beside its bin), and it
//! changes nothing about what is verified: a doc tampered with on the mirror (its
//! alias and its hashed path) that the resolution needs still fails the install naming
//! it, and one it only prefetched speculatively does not fail the install at all. The
//! attacks on the aliases alone are in `transport_alias.rs`.

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

mod common;

use common::{Plugin, Site, alias_path, doc_path, host, served};
use trellis_client::hooks::NoHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_tests::fault_server::{Fault, FaultServer, ROUND_TRIP_LATENCY};

fn store(data: &std::path::Path, server: &FaultServer, site: &Site) -> Store {
    let mut store = Store::open(data, StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    store
}

/// `acme.app` 1.0.0 needs `acme.lib`; the newest, 2.0.0, needs `acme.old` and a host
/// API (`^2`) the test host (1.2.0) does not offer. The prefetch follows the newest
/// release the requirements allow (it does not know the host), so it asks for
/// `acme.old`'s doc speculatively, although the resolver rules 2.0.0 out and never
/// needs it.
fn site_with_an_old_dependency() -> Site {
    let site = Site::new();
    site.publish(&[
        Plugin::new("acme.old", "1.0.0"),
        Plugin::new("acme.lib", "1.0.0"),
        Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1"),
        Plugin::new("acme.app", "2.0.0")
            .depends_on("acme.old", "^1")
            .with("host", serde_json::json!({"id": "trellis-demo-host", "api_version_requirement": "^2"})),
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
    server.fault(&alias_path("acme.old"), Fault::FlipByte);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    assert_eq!(install(&mut store, "acme.app").unwrap(), ["acme.lib 1.0.0", "acme.app 1.0.0"]);
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
    server.fault(&alias_path("acme.lib"), Fault::FlipByte);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    let err = install(&mut store, "acme.app@^1").unwrap_err().to_string();
    assert!(err.contains("acme.lib"), "{err}");
    assert!(store.state().plugins().is_empty(), "nothing is installed after a failed install");
}

/// A wide graph over many bins: `acme.app` needs eight plugins, each needs
/// `acme.base`. One doc after another that is 2 round trips per plugin (its bin, its
/// doc); by levels with each doc's alias fetched beside its bin, it is 1 per level of
/// the graph. The same install from a mirror without aliases (the same site, the
/// alias files not served) falls back to bin then doc: 2 per level.
#[test]
fn a_cold_install_takes_one_round_trip_per_level_of_its_graph() {
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
    let cold_install = |aliases: bool| {
        let server = served(&site);
        if !aliases {
            for path in server.paths() {
                if path.starts_with("/targets/index/alias/") {
                    server.remove(&path);
                }
            }
        }
        // Latency makes requests sent together overlap in the server's count.
        server.set_latency(ROUND_TRIP_LATENCY);
        let data = tempfile::tempdir().unwrap();
        let mut store = store(data.path(), &server, &site);
        server.reset_counters();
        assert_eq!(install(&mut store, "acme.app").unwrap().len(), 10);
        let hits = server.hits();
        let alias_hits = hits.iter().filter(|h| h.path.starts_with("/targets/index/alias/")).count();
        (server.request_count(), server.critical_chain(), alias_hits)
    };
    let (requests, chain, alias_hits) = cold_install(true);
    let (requests_without, chain_without, missing_aliases) = cold_install(false);
    let (critical, critical_without) = (chain.len(), chain_without.len());
    eprintln!(
        "cold install of 10 plugins: {requests} requests, {critical} round trips of critical path; \
         without aliases: {requests_without} requests, {critical_without} round trips"
    );
    // The update check (one conditional request: `add_registry` refreshed) with, asked
    // for together with it, the roles on the app's delegation paths (bins, its bin,
    // security, publishers, its publisher bin, as the stored snapshot names them) and
    // its alias; the two levels below it (1 each: bins and aliases, with the
    // blocklist, advisories, publisher record and envelopes the level above located);
    // the packages, with the last level's envelopes. (The check, then bins, then bin
    // and alias: 7; before aliases: 15; bin then doc: 20.)
    assert!(critical <= 4, "{critical} round trips on the critical path ({requests} requests): {chain:#?}");
    assert_eq!(alias_hits, 10, "one alias per doc");
    // Without aliases: one more round trip per level (the doc after its bin); a wave
    // of aliases not found stops the client asking for the rest of the closure.
    assert!(
        critical_without >= critical + 3,
        "{critical_without} round trips without aliases, {critical} with: {chain_without:#?}"
    );
    assert_eq!(missing_aliases, 1, "aliases asked for after a wave found none");
}

/// The shape of the `uv_compare` graphs: every plugin's 1.x releases need the next
/// level at `^1` and its newest release, 2.0.0, needs nothing, and the user asks for
/// `acme.app@^1`. Four levels, two plugins below the app on each. The closure is
/// followed through the releases the requirements allow (1.x), so it is fetched one
/// level per round trip before the resolution starts, with the envelopes of the
/// releases picked; following the newest releases (which need nothing) left the
/// resolver looking up each dependency on its own, a round trip or two each.
#[test]
fn a_cold_install_follows_the_releases_its_requirements_allow() {
    let site = Site::with_bin_bits(8);
    let mut plugins = Vec::new();
    let level = |n: usize| -> Vec<String> { (0..2).map(|i| format!("acme.l{n}x{i}")).collect() };
    for n in 1..=3 {
        for id in level(n) {
            let mut one = Plugin::new(&id, "1.0.0");
            if n < 3 {
                for below in level(n + 1) {
                    one = one.depends_on(&below, "^1");
                }
            }
            plugins.push(one);
            plugins.push(Plugin::new(&id, "2.0.0"));
        }
    }
    let mut app = Plugin::new("acme.app", "1.0.0");
    for below in level(1) {
        app = app.depends_on(&below, "^1");
    }
    plugins.push(app);
    plugins.push(Plugin::new("acme.app", "2.0.0"));
    site.publish(&plugins);

    let server = served(&site);
    server.set_latency(ROUND_TRIP_LATENCY);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    server.reset_counters();
    let installed = install(&mut store, "acme.app@^1").unwrap();
    assert_eq!(installed.len(), 7, "{installed:?}");
    assert!(installed.iter().all(|r| r.ends_with(" 1.0.0")), "{installed:?}");
    let (requests, chain) = (server.request_count(), server.critical_chain());
    eprintln!("cold install of 7 plugins over 4 levels: {requests} requests, {} round trips", chain.len());
    // The check with the app's level, one per level below it, the packages with the
    // last level's envelopes: 5. (Following the 2.0.0 releases fetched only the app's
    // doc ahead; each dependency then cost the resolver its own bin and doc.)
    assert!(chain.len() <= 5, "{} round trips on the critical path ({requests} requests): {chain:#?}", chain.len());
    // Only the envelopes of the releases installed are downloaded, each once.
    let envelopes: Vec<String> =
        server.hits().into_iter().filter(|h| h.path.ends_with(".dsse")).map(|h| h.path).collect();
    assert_eq!(envelopes.len(), 7, "{envelopes:#?}");
    assert!(envelopes.iter().all(|p| p.contains("-1.0.0.")), "{envelopes:#?}");
}
