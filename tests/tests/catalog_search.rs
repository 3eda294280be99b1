//! Catalog search through the library against a site built by `trellis-index` and
//! served by the fault server: what a query costs after the TUF chain (and that it
//! never reads index docs), what a repeated query costs, and the attacks on catalog
//! documents (bytes that do not match their signed hash, a shard over the client's
//! bound) refused with a message naming the document, leaving trusted state and the
//! installed set unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{Plugin, Site, host};
use serde_json::json;
use trellis_client::catalog::Query;
use trellis_client::store::{Store, StoreOptions};
use trellis_schema::catalog::{CatalogLimits, shard_key, shard_target, typo_key, typo_target};
use trellis_tests::fault_server::FaultServer;

const TOPICS: [(&str, &str); 6] = [
    ("clock", "Shows the time in the status bar"),
    ("alarm", "Rings an alarm at a set time"),
    ("calendar", "Syncs your calendar"),
    ("weather", "Forecasts for your location"),
    ("notes", "Quick notes and checklists"),
    ("timer", "A focus timer with breaks"),
];

/// A site with 36 plugins of two publishers over six topics, served by a fault
/// server (so requests are counted).
fn world() -> (Site, FaultServer) {
    let site = Site::new();
    let mut plugins = Vec::new();
    for index in 0..36 {
        let vendor = if index % 2 == 0 { "acme" } else { "contoso" };
        let (topic, summary) = TOPICS[index % TOPICS.len()];
        plugins.push(
            Plugin::new(&format!("{vendor}.{topic}-{index}"), "1.0.0")
                .with("name", json!(format!("{} {index}", topic.to_uppercase())))
                .with("description", json!({"short": summary, "full": format!("{summary}. Plugin number {index}.")}))
                .with("tags", json!([topic])),
        );
    }
    site.publish(&plugins);
    let mirror = FaultServer::start().unwrap();
    serve(&mirror, &site);
    (site, mirror)
}

fn serve(server: &FaultServer, site: &Site) {
    for path in common::walk(site.site.path()) {
        let relative = path.strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(&path).unwrap());
    }
}

fn store(data: &Path, mirror: &FaultServer, site: &Site) -> Store {
    let mut store = Store::open(data, StoreOptions::new(host())).unwrap();
    if store.registries().registries.is_empty() {
        store.add_registry("main", &mirror.url(), &site.root()).unwrap();
    }
    store
}

fn trusted(data: &Path) -> BTreeMap<String, Vec<u8>> {
    common::walk(&data.join("metadata/main"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// The site file of catalog target `target`.
fn catalog_file(site: &Site, target: &str) -> String {
    let name = target.rsplit('/').next().unwrap();
    let found: Vec<_> = common::walk(&site.site.path().join("targets/catalog"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(&format!(".{name}")))
        .collect();
    assert_eq!(found.len(), 1, "{target}: {found:?}");
    format!("/{}", found[0].strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/"))
}

#[test]
fn a_cold_query_reads_the_head_and_its_shards_only_and_never_an_index_doc() {
    let (site, mirror) = world();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &mirror, &site);
    mirror.reset_counters();
    let results = store.search(&Query::new("clock alarm")).unwrap();
    let ids: BTreeSet<String> = results.hits.iter().map(|h| h.id.to_string()).collect();
    assert!(ids.iter().any(|id| id.contains(".clock-")) && ids.iter().any(|id| id.contains(".alarm-")), "{ids:?}");
    assert!(results.hits.iter().all(|h| h.compatibility.runs()));
    let hits = mirror.hits();
    let documents: Vec<&str> = hits.iter().map(|h| h.path.as_str()).filter(|p| p.starts_with("/targets/")).collect();
    let chain: Vec<&str> = hits.iter().map(|h| h.path.as_str()).filter(|p| p.starts_with("/metadata/")).collect();
    assert!(documents.len() <= 3, "after the TUF chain {chain:?}: {documents:?}");
    assert!(documents.iter().all(|p| p.starts_with("/targets/catalog/")), "{documents:?}");
    assert!(chain.iter().any(|p| p.ends_with(".catalog.json")), "the catalog role is part of the chain: {chain:?}");
    assert!(!chain.iter().any(|p| p.contains(".bin-")), "no hash bin is read: {chain:?}");

    // The same query again: the update check, and every document from the cache.
    mirror.reset_counters();
    let again = store.search(&Query::new("clock alarm")).unwrap();
    assert_eq!(again, results);
    let paths: Vec<String> = mirror.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(paths, ["/metadata/timestamp.json"]);
}

#[test]
fn a_typo_in_a_words_first_two_characters_reads_its_typo_shard_and_the_matched_shard_only() {
    let (site, mirror) = world();
    for (typo, own_shard) in [("xlock", None), ("lcock", None), ("colck", Some("/targets/catalog/search-co.json"))] {
        let data = tempfile::tempdir().unwrap();
        let mut store = store(data.path(), &mirror, &site);
        mirror.reset_counters();
        let results = store.search(&Query::new(typo)).unwrap();
        assert_eq!(results.hits.len(), 6, "{typo}: {results:?}");
        assert!(results.hits.iter().all(|h| h.id.as_str().contains(".clock-")), "{typo}: {results:?}");
        let hits = mirror.hits();
        let mut documents: Vec<String> = hits
            .iter()
            .filter(|h| h.path.starts_with("/targets/"))
            .map(|h| {
                // Content-addressed: /targets/catalog/<sha256>.<name>.
                let name = h.path.rsplit('/').next().unwrap();
                format!("/targets/catalog/{}", name.split_once('.').unwrap().1)
            })
            .collect();
        documents.sort();
        let mut expected = vec![
            "/targets/catalog/head.json".to_owned(),
            format!("/targets/{}", shard_target(&shard_key("clock"))),
            format!("/targets/{}", typo_target(&typo_key("clock"))),
        ];
        expected.extend(own_shard.map(str::to_owned));
        expected.sort();
        // Three after the TUF chain; four when the mistyped start names a shard of
        // its own, which is read first.
        assert_eq!(documents, expected, "{typo}");
    }
}

#[test]
fn a_typo_shard_whose_bytes_do_not_match_its_signed_hash_is_refused_naming_it() {
    let (site, mirror) = world();
    let data = tempfile::tempdir().unwrap();
    store(data.path(), &mirror, &site).search(&Query::new("clock")).unwrap();
    let before = trusted(data.path());
    let file = catalog_file(&site, &typo_target(&typo_key("clock")));
    let mut bytes = std::fs::read(site.site.path().join(&file[1..])).unwrap();
    // One more plugin for "clock": valid JSON, a plausible document, not the signed one.
    let text = String::from_utf8(bytes.clone()).unwrap().replace("\"clock\":6", "\"clock\":7");
    assert_ne!(text.as_bytes(), bytes.as_slice(), "the document lists clock in 6 plugins");
    bytes = text.into_bytes();
    mirror.put(&file, bytes);
    let mut store = store(data.path(), &mirror, &site);
    let error = store.search(&Query::new("xlock")).unwrap_err();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    assert!(text.contains("catalog/typo-ck.json"), "{text}");
    assert!(text.to_lowercase().contains("hash") || text.contains("sha256"), "{text}");
    // A query that needs no typo shard is unaffected.
    assert!(!store.search(&Query::new("clock")).unwrap().hits.is_empty());
    drop(store);
    assert_eq!(trusted(data.path()), before);
    let cache = data.path().join("cache");
    let cached: Vec<_> = if cache.exists() { common::walk(&cache) } else { Vec::new() };
    assert!(!cached.iter().any(|p| p.to_string_lossy().contains("typo-ck")), "{cached:?}");
}

#[test]
fn a_shard_whose_bytes_do_not_match_its_signed_hash_is_refused_naming_it() {
    let (site, mirror) = world();
    let data = tempfile::tempdir().unwrap();
    store(data.path(), &mirror, &site).search(&Query::new("clock")).unwrap();
    let before = trusted(data.path());
    let file = catalog_file(&site, &shard_target(&shard_key("weather")));
    let mut bytes = std::fs::read(site.site.path().join(&file[1..])).unwrap();
    let at = bytes.iter().position(|b| *b == b'W').unwrap();
    bytes[at] = b'X';
    mirror.put(&file, bytes);
    let mut store = store(data.path(), &mirror, &site);
    let error = store.search(&Query::new("weather")).unwrap_err();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    assert!(text.contains("catalog/search-we.json"), "{text}");
    assert!(text.to_lowercase().contains("hash") || text.contains("sha256"), "{text}");
    assert!(store.state().installed_versions().is_empty());
    // Trusted metadata is unchanged and the forged shard is not cached.
    drop(store);
    assert_eq!(trusted(data.path()), before);
    let cache = data.path().join("cache");
    let cached: Vec<_> = if cache.exists() { common::walk(&cache) } else { Vec::new() };
    assert!(!cached.iter().any(|p| p.to_string_lossy().contains("search-we")), "{cached:?}");
}

#[test]
fn a_shard_over_the_client_bound_is_refused_before_it_is_downloaded() {
    let (site, mirror) = world();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &mirror, &site);
    let remotes = store.remotes().unwrap();
    let registry = remotes.order()[0].clone();
    mirror.reset_counters();
    let limits = CatalogLimits { shard_bytes: 64, ..CatalogLimits::default() };
    let keys = BTreeSet::from([shard_key("clock")]);
    let error = remotes.catalog_shards(&registry, &keys, &limits).unwrap_err().to_string();
    assert!(error.contains("catalog/search-cl.json") && error.contains("over the limit of 64"), "{error}");
    assert!(
        !mirror.hits().iter().any(|h| h.path.contains("search-cl")),
        "the shard was not downloaded: {:?}",
        mirror.hits()
    );
}

#[test]
fn browse_pages_a_category_and_did_you_mean_finds_a_mistyped_id() {
    let (site, mirror) = world();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &mirror, &site);
    let home = store.browse(None, 1).unwrap();
    let trellis_client::store::Browse::Home(head) = &home.values().next().unwrap() else { panic!("{home:?}") };
    assert_eq!(head.plugins, 36);
    assert_eq!(head.categories[0].name, "utility");
    assert_eq!(head.categories[0].plugins, 36);
    let tag = store.browse(Some("weather"), 1).unwrap();
    let trellis_client::store::Browse::Listing(page) = &tag.values().next().unwrap() else { panic!("{tag:?}") };
    assert_eq!((page.total, page.plugins.len()), (6, 6));
    assert_eq!(
        store.did_you_mean("acme.clokc-0").unwrap().first().map(ToString::to_string).as_deref(),
        Some("acme.clock-0")
    );
}
