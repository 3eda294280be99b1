//! The client at a distance: a cold install through the fault server with latency
//! added to every answer. Speculative prefetch keeps the critical path short whatever
//! the depth of the dependency graph: one round trip for the requested plugin's doc
//! and one for the closure its doc names (its prefetch hint; a level per round trip
//! past what a stale hint names), with bins loaded a level of the delegation tree at a
//! time and each doc's alias asked for beside its bin. It changes nothing about what
//! is verified: a doc tampered with on the mirror (its alias and its hashed path) that
//! the resolution needs still fails the install naming it, and one it only prefetched
//! speculatively does not fail the install at all. The attacks on the aliases alone
//! are in `transport_alias.rs`.

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
/// doc); by waves with each doc's alias fetched beside its bin, it is 1 per wave of
/// docs: the app's, then the rest of the graph, which the app's doc names (its
/// prefetch hint). The same install from a mirror without aliases (the same site, the
/// alias files not served) falls back to bin then doc: 2 per wave.
#[test]
fn aliases_save_the_bins_round_trip_before_each_wave_of_docs() {
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
    // its alias; the two levels below it, which its hint names (bins and aliases, with
    // the blocklist, advisories, publisher record and envelopes the app's doc
    // located); the packages, with the last envelopes. (A wave per level: 4; the
    // check, then bins, then bin and alias: 7; before aliases: 15; bin then doc: 20.)
    assert!(critical <= 3, "{critical} round trips on the critical path ({requests} requests): {chain:#?}");
    assert_eq!(alias_hits, 10, "one alias per doc");
    // Without aliases: one more round trip per wave (the docs after their bins); a
    // wave of aliases not found stops the client asking for the rest of the closure.
    assert!(
        critical_without >= critical + 2,
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

/// A cold install of `requirement` from `site` served with latency: what it
/// installed and the round trips of its critical path.
fn cold_install_at_latency(site: &Site, requirement: &str) -> (Vec<String>, usize) {
    let server = served(site);
    server.set_latency(ROUND_TRIP_LATENCY);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, site);
    server.reset_counters();
    let installed = install(&mut store, requirement).unwrap();
    (installed, server.critical_chain().len())
}

/// `acme.app` on a chain six plugins deep (`acme.d1` needs `acme.d2`, … `acme.d6`),
/// and `acme.wide` on six plugins side by side. Each index doc names the closure
/// below it (its prefetch hint), so the chain comes with the wave after the app's
/// doc: a level per round trip would be seven.
#[test]
fn a_deep_graph_costs_the_round_trips_of_a_shallow_one() {
    let site = Site::with_bin_bits(8);
    let mut plugins = Vec::new();
    let mut wide = Plugin::new("acme.wide", "1.0.0");
    for n in 1..=6 {
        let below = format!("acme.d{}", n + 1);
        let chained = Plugin::new(&format!("acme.d{n}"), "1.0.0");
        plugins.push(if n < 6 { chained.depends_on(&below, "^1") } else { chained });
        plugins.push(Plugin::new(&format!("acme.s{n}"), "1.0.0"));
        wide = wide.depends_on(&format!("acme.s{n}"), "^1");
    }
    plugins.push(Plugin::new("acme.app", "1.0.0").depends_on("acme.d1", "^1"));
    plugins.push(wide);
    site.publish(&plugins);

    let (deep, deep_trips) = cold_install_at_latency(&site, "acme.app");
    let (shallow, shallow_trips) = cold_install_at_latency(&site, "acme.wide");
    eprintln!("7 plugins, 7 levels deep: {deep_trips} round trips; 2 levels: {shallow_trips}");
    assert_eq!((deep.len(), shallow.len()), (7, 7), "{deep:?} {shallow:?}");
    // The check with the app's doc, the whole chain, the packages with the last
    // envelopes.
    assert!(deep_trips <= shallow_trips && deep_trips <= 4, "{deep_trips} round trips deep, {shallow_trips} shallow");
}

/// `acme.app`'s doc was written when `acme.lib` needed only `acme.base`; lib's new
/// release, published alone (`build --only`), also needs `acme.extra`. The app's hint
/// no longer names all of the closure: the install still resolves it whole (hints
/// decide what is fetched early, never what is needed) and pays one round trip for
/// what the hint missed, which a rebuild of the app's doc takes back.
#[test]
fn a_stale_hint_costs_a_round_trip_not_a_dependency() {
    let site = Site::with_bin_bits(8);
    site.publish(&[
        Plugin::new("acme.base", "1.0.0"),
        Plugin::new("acme.lib", "1.0.0").depends_on("acme.base", "^1"),
        Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1"),
    ]);
    site.publish_only(&[
        Plugin::new("acme.extra", "1.0.0"),
        Plugin::new("acme.lib", "1.1.0").depends_on("acme.base", "^1").depends_on("acme.extra", "^1"),
    ]);
    let hint = |id: &str| -> Vec<String> {
        let path = site.site.path().join(alias_path(id).trim_start_matches('/'));
        let doc: trellis_schema::index::IndexDoc = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        doc.prefetch.iter().map(ToString::to_string).collect()
    };
    assert_eq!(hint("acme.app"), ["acme.lib", "acme.base"], "the app's doc is as it was published");
    let expected = ["acme.base 1.0.0", "acme.extra 1.0.0", "acme.lib 1.1.0", "acme.app 1.0.0"];
    let (mut stale, stale_trips) = cold_install_at_latency(&site, "acme.app");
    stale.sort();
    let mut sorted = expected.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(stale, sorted);

    site.build();
    assert_eq!(hint("acme.app"), ["acme.lib", "acme.base", "acme.extra"]);
    let (mut fresh, fresh_trips) = cold_install_at_latency(&site, "acme.app");
    fresh.sort();
    assert_eq!(fresh, sorted);
    eprintln!("stale hint: {stale_trips} round trips; rebuilt: {fresh_trips}");
    assert_eq!(stale_trips, fresh_trips + 1);
}
