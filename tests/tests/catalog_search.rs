//! Catalog search through the library against a site built by `trellis-index` and
//! served by the fault server: what a query costs after the TUF chain, in requests
//! and round trips, per query shape (and that it never reads the head nor an index
//! doc; a site without the head's facts in its catalog role costs the head), what a
//! repeated query costs, and the attacks on catalog
//! documents (bytes that do not match their signed hash, a shard over the client's
//! bound) refused with a message naming the document, leaving trusted state and the
//! installed set unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{Plugin, Site, host};
use serde_json::{Value, json};
use trellis_client::catalog::Query;
use trellis_client::store::{SearchResults, Store, StoreOptions};
use trellis_index::registry::{Registry, RoleKeyFiles};
use trellis_schema::catalog::{CatalogLimits, HEAD_TARGET, shard_key, shard_target, typo_key, typo_target};
use trellis_schema::{SigningKey, canonical};
use trellis_tests::fault_server::{FaultServer, ROUND_TRIP_LATENCY};

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

/// A cold search for `text` in a new data dir: its results, the catalog documents it
/// read after the TUF chain (`catalog/<name>`, sorted) and the round trips they took
/// on the client's critical path (each answer delayed, so requests sent together
/// overlap and count once).
fn cold(site: &Site, mirror: &FaultServer, text: &str) -> (SearchResults, Vec<String>, usize) {
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), mirror, site);
    mirror.reset_counters();
    mirror.set_latency(ROUND_TRIP_LATENCY);
    let results = store.search(&Query::new(text)).unwrap();
    mirror.set_latency(Duration::ZERO);
    let hits = mirror.hits();
    let chain: Vec<&str> = hits.iter().map(|h| h.path.as_str()).filter(|p| p.starts_with("/metadata/")).collect();
    assert!(!chain.iter().any(|p| p.contains(".bin-")), "no hash bin is read: {chain:?}");
    let mut documents: Vec<String> = hits
        .iter()
        .filter(|h| !h.path.starts_with("/metadata/"))
        .map(|h| {
            // Content-addressed: /targets/catalog/<sha256>.<name>.
            let (dir, name) = h.path.rsplit_once('/').unwrap();
            assert_eq!(dir, "/targets/catalog", "only catalog documents after the chain: {}", h.path);
            format!("catalog/{}", name.split_once('.').unwrap().1)
        })
        .collect();
    documents.sort();
    let round_trips = mirror.critical_chain().iter().filter(|p| p.starts_with("/targets/")).count();
    (results, documents, round_trips)
}

fn ids(results: &SearchResults) -> BTreeSet<String> {
    results.hits.iter().map(|h| h.id.to_string()).collect()
}

#[test]
fn a_cold_query_reads_only_its_shards_never_the_head_nor_an_index_doc_and_a_repeat_only_the_timestamp() {
    let (site, mirror) = world();
    let (results, documents, round_trips) = cold(&site, &mirror, "clock alarm");
    let found = ids(&results);
    assert!(
        found.iter().any(|id| id.contains(".clock-")) && found.iter().any(|id| id.contains(".alarm-")),
        "{found:?}"
    );
    assert!(results.hits.iter().all(|h| h.compatibility.runs()));
    assert!(results.catalog_generated.as_deref().is_some_and(|g| g.starts_with("20")), "{results:?}");
    assert_eq!(documents, [shard_target("al"), shard_target("cl")], "two words, two shards, no head");
    assert_eq!(round_trips, 1, "side by side");

    // The same query again: the update check, and every document from the cache.
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &mirror, &site);
    let first = store.search(&Query::new("clock alarm")).unwrap();
    assert_eq!(first.hits, results.hits);
    mirror.reset_counters();
    let again = store.search(&Query::new("clock alarm")).unwrap();
    assert_eq!(again, first);
    let paths: Vec<String> = mirror.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(paths, ["/metadata/timestamp.json"]);
}

#[test]
fn each_query_shape_costs_at_most_three_requests_and_round_trips_after_the_chain() {
    let (site, mirror) = world();
    let clock = [shard_target(&shard_key("clock")), typo_target(&typo_key("clock"))];
    // (query, documents read, round trips, a plugin every hit's id names)
    let shapes: [(&str, Vec<String>, usize, &str); 6] = [
        ("clock", vec![shard_target("cl")], 1, ".clock-"),
        // The last word as a prefix while typing (three characters: no typo budget).
        ("cal", vec![shard_target("ca")], 1, ".calendar-"),
        ("notes timer", vec![shard_target("no"), shard_target("ti")], 1, ""),
        // A mistyped start naming no shard: its typo shard, then the matched shard.
        ("xlock", clock.to_vec(), 2, ".clock-"),
        ("lcock", clock.to_vec(), 2, ".clock-"),
        // A mistyped start naming a shard of its own (`contoso`): that shard first.
        ("colck", vec![shard_target("cl"), shard_target("co"), typo_target("ck")], 3, ".clock-"),
    ];
    for (text, expected, trips, names) in shapes {
        let (results, documents, round_trips) = cold(&site, &mirror, text);
        assert_eq!(documents, expected, "{text}");
        assert_eq!(round_trips, trips, "{text}: round trips after the chain");
        assert!(
            !results.hits.is_empty() && results.hits.iter().all(|h| h.id.as_str().contains(names)),
            "{text}: {results:?}"
        );
    }
}

#[test]
fn a_site_whose_catalog_role_carries_no_head_facts_costs_the_head_in_the_first_round_trip_and_ranks_the_same() {
    let (site, mirror) = world();
    let (with_facts, _, _) = cold(&site, &mirror, "colck");
    // What a builder before the facts wrote: the same role without the head's custom
    // member (re-signed with the registry's online keys).
    resign_catalog_role_without_head_facts(&site, &mirror);
    let (without, documents, round_trips) = cold(&site, &mirror, "colck");
    assert_eq!(documents, [HEAD_TARGET.to_owned(), shard_target("cl"), shard_target("co"), typo_target("ck")]);
    assert_eq!(round_trips, 3, "the head is read beside the first shard");
    assert_eq!(without, with_facts, "the same plugin count, the same ranking and catalog date");
}

/// Re-signs the served catalog role without the `custom` member of the head's entry,
/// then snapshot and timestamp, with the registry's online keys.
fn resign_catalog_role_without_head_facts(site: &Site, mirror: &FaultServer) {
    let registry = Registry::open(site.registry.path()).unwrap();
    let key = |files: &RoleKeyFiles| trellis_index::keyfile::read(&registry.dir.join(&files.keys[0])).unwrap();
    let keys = &registry.config.keys;
    let sign = |signed: &Value, key: &SigningKey| {
        let message = canonical::to_vec(signed).unwrap();
        let signature = json!({"keyid": key.key_id(), "sig": hex::encode(key.sign(&message))});
        serde_json::to_vec(&json!({"signatures": [signature], "signed": signed})).unwrap()
    };
    let served = |path: &str| -> Value {
        serde_json::from_slice::<Value>(&std::fs::read(site.site.path().join(path)).unwrap()).unwrap()["signed"].clone()
    };
    let mut timestamp = served("metadata/timestamp.json");
    let snapshot_version = timestamp["meta"]["snapshot.json"]["version"].as_u64().unwrap();
    let mut snapshot = served(&format!("metadata/{snapshot_version}.snapshot.json"));
    let version = snapshot["meta"]["catalog.json"]["version"].as_u64().unwrap();
    let mut role = served(&format!("metadata/{version}.catalog.json"));
    let head = role["targets"][HEAD_TARGET].as_object_mut().unwrap();
    assert!(head.remove("custom").is_some(), "the builder publishes the head's facts");
    role["version"] = json!(version + 1);
    let role = sign(&role, &key(&keys.bins));
    mirror.put(&format!("/metadata/{}.catalog.json", version + 1), role);
    let sha256 = |bytes: &[u8]| trellis_schema::Sha256::of(bytes).to_hex();
    snapshot["meta"]["catalog.json"] = json!({"version": version + 1});
    snapshot["version"] = json!(snapshot_version + 1);
    let snapshot = sign(&snapshot, &key(&keys.snapshot));
    mirror.put(&format!("/metadata/{}.snapshot.json", snapshot_version + 1), snapshot.clone());
    timestamp["meta"]["snapshot.json"] =
        json!({"version": snapshot_version + 1, "length": snapshot.len(), "hashes": {"sha256": sha256(&snapshot)}});
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    mirror.put("/metadata/timestamp.json", sign(&timestamp, &key(&keys.timestamp)));
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
