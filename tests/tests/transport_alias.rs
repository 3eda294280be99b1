//! The index doc aliases under attack (`targets/index/alias/<shard>/<id>.json`: the
//! doc's bytes at a path without its hash, which no role signs). A client fetches a
//! dependency's alias beside its bin and keeps it only when its length and SHA-256 are
//! the ones the verified bin lists; anything else costs the hashed path's round trip,
//! never trust. Each attack below is served by the fault server on 127.0.0.1 from a
//! site built by `trellis-index build`, and each install must end with exactly the
//! signed releases.

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

mod common;

use std::time::{Duration, Instant};

use common::{Plugin, Site, alias_path, doc_path, host, served};
use trellis_client::hooks::NoHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreError, StoreOptions, install::parse_requirement};
use trellis_tests::fault_server::{Fault, FaultServer};

fn store(data: &std::path::Path, server: &FaultServer, site: &Site) -> Store {
    let mut store = Store::open(data, StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    store
}

fn install(store: &mut Store, id: &str) -> Result<Vec<String>, StoreError> {
    let report = store.install(&[parse_requirement(id).unwrap()], &Session::new(&NoHooks, &AlwaysAgree))?;
    Ok(report.installed.iter().map(|(id, v)| format!("{id} {v}")).collect())
}

/// `acme.app` needs `acme.lib`, which needs `acme.base`: three levels.
fn three_levels(site: &Site) {
    site.publish(&[
        Plugin::new("acme.base", "1.0.0"),
        Plugin::new("acme.lib", "1.0.0").depends_on("acme.base", "^1"),
        Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1"),
    ]);
}

fn requested(server: &FaultServer, path: &str) -> usize {
    server.hits().iter().filter(|h| h.path == path).count()
}

#[test]
fn the_build_publishes_each_index_doc_at_its_alias() {
    let site = Site::new();
    three_levels(&site);
    for id in ["acme.base", "acme.lib", "acme.app"] {
        let doc = std::fs::read(site.site.path().join(doc_path(&site, id).trim_start_matches('/'))).unwrap();
        let alias = std::fs::read(site.site.path().join(alias_path(id).trim_start_matches('/'))).unwrap();
        assert_eq!(alias, doc, "the alias of {id} is its signed doc");
    }
}

/// A doc forged at the alias (parseable, the right plugin, a dependency that does
/// not exist): if the client believed it, the resolution would need `acme.ghost`.
#[test]
fn a_forged_alias_is_never_used_and_the_install_takes_the_signed_doc() {
    let site = Site::new();
    three_levels(&site);
    let server = served(&site);
    let lib = alias_path("acme.lib");
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.site.path().join(lib.trim_start_matches('/'))).unwrap()).unwrap();
    forged["releases"][0]["dependencies"][0]["id"] = "acme.ghost".into();
    server.put(&lib, serde_json::to_vec(&forged).unwrap());
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    assert_eq!(install(&mut store, "acme.app").unwrap(), ["acme.base 1.0.0", "acme.lib 1.0.0", "acme.app 1.0.0"]);
    assert_eq!(requested(&server, &lib), 1, "the alias was asked for");
    assert_eq!(requested(&server, &doc_path(&site, "acme.lib")), 1, "then the signed doc, by its hashed path");
    assert!(!server.hits().iter().any(|h| h.path.contains("ghost")), "nothing the forged doc names was fetched");
    // The signed docs of the other levels came from their aliases.
    for id in ["acme.base", "acme.app"] {
        assert_eq!(requested(&server, &doc_path(&site, id)), 0, "{id}: its alias was the signed doc");
    }
}

#[test]
fn a_tampered_alias_costs_the_hashed_path_not_the_install() {
    let site = Site::new();
    three_levels(&site);
    let server = served(&site);
    server.fault(&alias_path("acme.base"), Fault::FlipByte);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    assert_eq!(install(&mut store, "acme.app").unwrap().len(), 3);
    assert_eq!(requested(&server, &alias_path("acme.base")), 1);
    assert_eq!(requested(&server, &doc_path(&site, "acme.base")), 1);
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()), "what was installed is intact");
}

/// A CDN serving the alias of the previous build: the older doc, which does not list
/// the new release. The client must install the release the signed bin vouches for.
#[test]
fn a_stale_alias_does_not_hide_a_new_release() {
    let site = Site::new();
    three_levels(&site);
    let old = std::fs::read(site.site.path().join(alias_path("acme.lib").trim_start_matches('/'))).unwrap();
    site.publish(&[Plugin::new("acme.lib", "1.1.0").depends_on("acme.base", "^1")]);
    let server = served(&site);
    server.fault(&alias_path("acme.lib"), Fault::Stale(old));
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    let installed = install(&mut store, "acme.app").unwrap();
    assert!(installed.contains(&"acme.lib 1.1.0".to_owned()), "{installed:?}");
    assert_eq!(requested(&server, &alias_path("acme.lib")), 1);
    assert_eq!(requested(&server, &doc_path(&site, "acme.lib")), 1, "the current doc, by its hashed path");
}

/// An alias that never ends is cut at its cap (the client's `ALIAS_MAX_BYTES`), like
/// any download at its signed length, and the doc comes by its hashed path.
#[test]
fn an_endless_alias_is_cut_at_its_cap() {
    let site = Site::new();
    three_levels(&site);
    let server = served(&site);
    server.fault(&alias_path("acme.lib"), Fault::Endless);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    assert_eq!(install(&mut store, "acme.app").unwrap().len(), 3);
    assert_eq!(requested(&server, &alias_path("acme.lib")), 1);
    assert_eq!(requested(&server, &doc_path(&site, "acme.lib")), 1);
    let cap = trellis_client::store::source::ALIAS_MAX_BYTES;
    // What the client read plus what the loopback socket buffers held when it hung up.
    let sent = server.bytes_sent();
    assert!(sent < cap + (16 << 20), "{sent} bytes sent for a {cap}-byte cap");
}

/// Many large aliases: each is cut at its cap, and the cap is taken from the budget
/// of the prefetch (`ALIAS_BUDGET`), so once that is spent no alias is asked for at
/// all; every doc then comes by its hashed path and the install completes. Without the
/// budget every one of the 41 aliases would be asked for (and cost its cap).
#[test]
fn the_alias_budget_stops_the_asking_and_the_install_completes_by_hashed_paths() {
    use trellis_client::store::source::{ALIAS_BUDGET, ALIAS_MAX_BYTES};
    let room = usize::try_from(ALIAS_BUDGET / ALIAS_MAX_BYTES).unwrap();
    let libs = room + 8;
    let site = Site::new();
    let mut plugins = Vec::new();
    let mut app = Plugin::new("acme.app", "1.0.0");
    for i in 0..libs {
        let id = format!("acme.lib{i}");
        plugins.push(Plugin::new(&id, "1.0.0"));
        app = app.depends_on(&id, "^1");
    }
    plugins.push(app);
    site.publish(&plugins);
    let server = served(&site);
    for path in server.paths().into_iter().filter(|p| p.starts_with("/targets/index/alias/")) {
        server.fault(&path, Fault::Endless);
    }
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    server.reset_counters();
    assert_eq!(install(&mut store, "acme.app").unwrap().len(), libs + 1);
    let hits = server.hits();
    let aliases = hits.iter().filter(|h| h.path.starts_with("/targets/index/alias/")).count();
    assert_eq!(aliases, room, "{room} aliases fit the {ALIAS_BUDGET}-byte budget, {libs} + 1 were wanted");
    let docs = hits.iter().filter(|h| h.path.starts_with("/targets/index/") && !h.path.contains("/alias/")).count();
    assert_eq!(docs, libs + 1, "every doc by its hashed path");
    // What the client read (at most the budget) plus what the loopback sockets held
    // when it hung up on each endless answer.
    let sent = server.bytes_sent();
    assert!(sent < ALIAS_BUDGET + (room as u64) * (8 << 20), "{sent} bytes sent for a {ALIAS_BUDGET}-byte budget");
}

/// A drip-fed alias (one byte per 50 ms, slow retrieval) does not hold the install:
/// once its bin is in, the wave waits for the alias at most as long again and takes
/// the hashed path. The transport's minimum rate (1 KiB per 10 s after a 10 s grace)
/// would end the download after 20 s; the install does not wait for that.
#[test]
fn a_drip_fed_alias_does_not_hold_the_install() {
    let site = Site::new();
    three_levels(&site);
    let server = served(&site);
    server.fault(&alias_path("acme.lib"), Fault::Drip(Duration::from_millis(50)));
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    let started = Instant::now();
    assert_eq!(install(&mut store, "acme.app").unwrap().len(), 3);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "the install waited {took:?} for a drip-fed alias");
    assert_eq!(requested(&server, &alias_path("acme.lib")), 1);
    assert_eq!(requested(&server, &doc_path(&site, "acme.lib")), 1);
}

/// A mirror that does not carry the aliases (an older copy, a plain file copy of the
/// signed files) works as before: one wave of "not found", then the hashed paths
/// only.
#[test]
fn a_mirror_without_aliases_works_by_hashed_paths() {
    let site = Site::new();
    three_levels(&site);
    let server = served(&site);
    for path in server.paths() {
        if path.starts_with("/targets/index/alias/") {
            server.remove(&path);
        }
    }
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &server, &site);
    assert_eq!(install(&mut store, "acme.app").unwrap().len(), 3);
    let aliases: Vec<_> = server.hits().into_iter().filter(|h| h.path.starts_with("/targets/index/alias/")).collect();
    assert_eq!(aliases.len(), 1, "{aliases:?}");
    assert_eq!(aliases[0].status, 404);
    for id in ["acme.base", "acme.lib", "acme.app"] {
        assert_eq!(requested(&server, &doc_path(&site, id)), 1, "{id}");
    }
}
