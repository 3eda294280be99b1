//! Attacks on parsing, key counting, caps, download pacing and the root probe
//! (issue 10, items 6, 7, 8, 10 and 12's root probe), each performed against a real
//! site built by `trellis-index` and served on 127.0.0.1 by the fault server. Every
//! test asserts the refusal, a message naming what and where, and that the installed
//! set and the trusted metadata are unchanged.
//!
//! The attacker here is a mirror without keys (items 6 and 10) or someone holding the
//! online keys a CI job holds (item 8), or an old key a rotation retired (root probe).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Plugin, Site, clock_site, host};
use serde_json::{Value, json};
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_client::transport::{AnyTransport, HttpOptions, MinRate, Mirror, Mirrors};
use trellis_client::trust::{Limits, Updater};
use trellis_index::operator::{self, RotatedRole};
use trellis_index::registry::{Registry, RoleKeyFiles};
use trellis_schema::{SigningKey, canonical};
use trellis_tests::fault_server::{Fault, FaultServer};

/// Serves every file of `site`'s built site from a fault server (replacing what it had).
fn serve(server: &FaultServer, site: &Site) {
    for path in common::walk(site.site.path()) {
        let relative = path.strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(&path).unwrap());
    }
}

/// A store in `data` with `url` as registry `main`, pinned to `site`'s first root.
fn store_at(data: &Path, url: &str, site: &Site, http: HttpOptions) -> Store {
    let mut options = StoreOptions::new(host());
    options.http = http;
    let mut store = Store::open(data, options).unwrap();
    if store.registries().registries.is_empty() {
        store.add_registry("main", url, &site.root()).unwrap();
    }
    store
}

/// `acme.clock 1.0.0` built into a site, served by a fault server, installed in a store.
struct World {
    site: Site,
    mirror: FaultServer,
    data: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let site = clock_site();
        let mirror = FaultServer::start().unwrap();
        serve(&mirror, &site);
        let data = tempfile::tempdir().unwrap();
        let mut store = store_at(data.path(), &mirror.url(), &site, HttpOptions::default());
        let hooks = RecordingHooks::new();
        store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
        drop(store);
        Self { site, mirror, data }
    }

    fn store(&self) -> Store {
        self.store_with(HttpOptions::default())
    }

    fn store_with(&self, http: HttpOptions) -> Store {
        store_at(self.data.path(), &self.mirror.url(), &self.site, http)
    }

    /// A scheduled update check, as a host app runs it; the error text when refused.
    fn check(&self) -> Result<usize, String> {
        let hooks = RecordingHooks::new();
        let mut store = self.store();
        store.check_updates(&[], &Session::new(&hooks, &AlwaysAgree)).map(|r| r.updates.len()).map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        })
    }

    fn metadata_dir(&self) -> std::path::PathBuf {
        self.data.path().join("metadata/main")
    }

    /// The trusted metadata documents (receipts and validators are caches).
    fn trusted(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.metadata_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect()
    }

    fn installed(&self) -> BTreeMap<trellis_schema::PluginId, semver::Version> {
        self.store().state().installed_versions()
    }

    fn served(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.site.site.path().join(path.trim_start_matches('/'))).unwrap()
    }

    /// Publishes another release and serves the rebuilt site (a genuine new timestamp).
    fn publish(&self, plugin: Plugin) {
        self.site.publish(&[plugin]);
        serve(&self.mirror, &self.site);
    }
}

/// The first key file of one role of the registry behind `site` (the operator's or CI's).
fn role_key(site: &Site, pick: impl Fn(&trellis_index::registry::KeyConfig) -> &RoleKeyFiles) -> SigningKey {
    let registry = Registry::open(site.registry.path()).unwrap();
    trellis_index::keyfile::read(&registry.dir.join(&pick(&registry.config.keys).keys[0])).unwrap()
}

/// Signs `signed` with `keys` (each under the given key id) into metadata bytes.
fn sign_as(signed: &Value, keys: &[(&SigningKey, String)]) -> Vec<u8> {
    let message = canonical::to_vec(signed).unwrap();
    let signatures: Vec<Value> =
        keys.iter().map(|(key, id)| json!({"keyid": id, "sig": hex::encode(key.sign(&message))})).collect();
    serde_json::to_vec(&json!({"signatures": signatures, "signed": signed})).unwrap()
}

fn signed_of(bytes: &[u8]) -> Value {
    serde_json::from_slice::<Value>(bytes).unwrap()["signed"].clone()
}

#[test]
fn a_genuine_timestamp_with_a_duplicated_member_is_refused_and_cannot_open_a_rollback() {
    let world = World::new();
    let older = world.served("metadata/timestamp.json");
    world.publish(Plugin::new("acme.timer", "1.0.0"));
    assert_eq!(world.check(), Ok(0), "the client trusts the newer genuine timestamp");
    world.publish(Plugin::new("acme.alarm", "1.0.0"));
    let genuine = String::from_utf8(world.served("metadata/timestamp.json")).unwrap();
    let trusted = world.trusted();
    let installed = world.installed();

    // A keyless mirror adds one member to the genuine next timestamp: a second
    // "version" before the real one. The signature still verifies over the last one.
    let duplicated = genuine.replacen("\"_type\"", "\"version\": 1, \"_type\"", 1);
    assert_ne!(duplicated, genuine);
    world.mirror.put("/metadata/timestamp.json", duplicated);
    let err = world.check().unwrap_err();
    assert!(err.contains(r#"timestamp: malformed metadata: duplicate member "version" in $.signed"#), "{err}");
    assert!(err.contains(&format!("{}/metadata/timestamp.json", world.mirror.url())), "names the URL: {err}");
    assert_eq!(world.trusted(), trusted, "nothing refused is stored");
    assert_eq!(world.installed(), installed);

    // Then the older genuine timestamp: refused as a rollback, the floor is still there,
    // also when the receipts were written by an older client (they no longer apply, the
    // documents are verified in full).
    for receipt in std::fs::read_dir(world.metadata_dir()).unwrap().map(|e| e.unwrap().path()) {
        if receipt.extension().is_some_and(|x| x == "receipt") {
            let mut value: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
            value.as_object_mut().unwrap().remove("format");
            std::fs::write(&receipt, serde_json::to_vec(&value).unwrap()).unwrap();
        }
    }
    world.mirror.put("/metadata/timestamp.json", older);
    let err = world.check().unwrap_err();
    assert!(err.contains("timestamp: version 2 is older than the trusted version 3"), "{err}");
    assert_eq!(world.trusted(), trusted);
    assert_eq!(world.installed(), installed);
}

#[test]
fn one_timestamp_key_listed_in_upper_and_lower_case_hex_does_not_meet_a_threshold_of_two() {
    let world = World::new();
    let root_key = role_key(&world.site, |k| &k.root);
    let timestamp_key = role_key(&world.site, |k| &k.timestamp);
    // The root says: two distinct timestamp keys must sign. It lists the one timestamp
    // key twice, its hex in lower case and in upper case (two key ids).
    let mut root = signed_of(&world.site.root());
    let mut upper = serde_json::to_value(timestamp_key.public()).unwrap();
    upper["keyval"]["public"] = json!(timestamp_key.public().public_str().unwrap().to_uppercase());
    let upper_id = trellis_schema::KeyId::of(&serde_json::from_value(upper.clone()).unwrap()).unwrap().to_string();
    root["keys"][&upper_id] = upper;
    root["roles"]["timestamp"] = json!({"keyids": [timestamp_key.key_id(), upper_id], "threshold": 2});
    root["version"] = json!(2);
    world.mirror.put("/metadata/2.root.json", sign_as(&root, &[(&root_key, root_key.key_id().to_string())]));
    let trusted = world.trusted();
    let installed = world.installed();

    // The one key signs a new timestamp under both ids.
    let mut timestamp = signed_of(&world.served("metadata/timestamp.json"));
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    let forged =
        sign_as(&timestamp, &[(&timestamp_key, timestamp_key.key_id().to_string()), (&timestamp_key, upper_id)]);
    world.mirror.put("/metadata/timestamp.json", forged);
    let err = world.check().unwrap_err();
    assert!(err.contains("timestamp: 1 valid signature(s) from distinct authorised keys, threshold is 2"), "{err}");
    let now = world.trusted();
    assert_eq!(now["timestamp.json"], trusted["timestamp.json"], "the trusted timestamp is unchanged");
    assert_eq!(now["snapshot.json"], trusted["snapshot.json"]);
    assert_eq!(world.installed(), installed);
}

/// Re-signs delegated role `role` of the served site with `key` after `change`, then
/// snapshot and timestamp with the online keys, as a compromised CI job could.
fn resign_online(world: &World, role: &str, key: &SigningKey, change: impl FnOnce(&mut Value)) {
    let snapshot_key = role_key(&world.site, |k| &k.snapshot);
    let timestamp_key = role_key(&world.site, |k| &k.timestamp);
    let mut timestamp = signed_of(&world.served("metadata/timestamp.json"));
    let snapshot_version = timestamp["meta"]["snapshot.json"]["version"].as_u64().unwrap();
    let mut snapshot = signed_of(&world.served(&format!("metadata/{snapshot_version}.snapshot.json")));
    let file = format!("{role}.json");
    let version = snapshot["meta"][&file]["version"].as_u64().unwrap();
    let mut doc = signed_of(&world.served(&format!("metadata/{version}.{role}.json")));
    change(&mut doc);
    doc["version"] = json!(version + 1);
    let bytes = sign_as(&doc, &[(key, key.key_id().to_string())]);
    world.mirror.put(&format!("/metadata/{}.{role}.json", version + 1), bytes.clone());
    snapshot["meta"][&file] = json!({"version": version + 1, "length": bytes.len(), "hashes": {"sha256": trellis_tests::registry::sha256_hex(&bytes)}});
    snapshot["version"] = json!(snapshot_version + 1);
    let snapshot_bytes = sign_as(&snapshot, &[(&snapshot_key, snapshot_key.key_id().to_string())]);
    world.mirror.put(&format!("/metadata/{}.snapshot.json", snapshot_version + 1), snapshot_bytes.clone());
    timestamp["meta"]["snapshot.json"] = json!({"version": snapshot_version + 1, "length": snapshot_bytes.len(),
        "hashes": {"sha256": trellis_tests::registry::sha256_hex(&snapshot_bytes)}});
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    world
        .mirror
        .put("/metadata/timestamp.json", sign_as(&timestamp, &[(&timestamp_key, timestamp_key.key_id().to_string())]));
}

#[test]
fn a_bins_delegation_of_32_bits_is_refused_instead_of_aborting_the_host() {
    let world = World::new();
    let bins_key = role_key(&world.site, |k| &k.bins);
    resign_online(&world, "bins", &bins_key, |doc| {
        doc["delegations"]["succinct_roles"]["bit_length"] = json!(32);
    });
    let installed = world.installed();
    let before = world.trusted();
    // A search lists every bin: with 2^32 of them it used to allocate ~96 GiB and abort.
    let err = world.store().scan("clock").unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    assert!(
        text.contains(
            "bins: malformed metadata: succinct_roles.bit_length 32 is not in 1..=16 (at most 65536 hash bins); refused"
        ),
        "{text}"
    );
    assert_eq!(world.installed(), installed);
    let after = world.trusted();
    assert!(!after.contains_key("bins.json") || after.get("bins.json") == before.get("bins.json"), "not stored");
}

#[test]
fn metadata_past_the_per_refresh_byte_budget_is_refused() {
    let world = World::new();
    world.publish(Plugin::new("acme.timer", "1.0.0"));
    let dir = tempfile::tempdir().unwrap();
    Updater::bootstrap(dir.path(), &world.site.root()).unwrap();
    let mirrors = Mirrors::new(Arc::new(AnyTransport::default()), vec![Mirror::site(&world.mirror.url())]);
    // Room for timestamp and snapshot, not for targets after them.
    let timestamp = world.served("metadata/timestamp.json");
    let snapshot_version = signed_of(&timestamp)["meta"]["snapshot.json"]["version"].as_u64().unwrap();
    let snapshot = world.served(&format!("metadata/{snapshot_version}.snapshot.json"));
    let limit = (timestamp.len() + snapshot.len() + 10) as u64;
    let limits = Limits { metadata_bytes: limit, ..Limits::default() };
    let err = Updater::new(dir.path(), mirrors).unwrap().with_limits(limits).refresh().unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&format!("metadata of one refresh exceeds the {limit}-byte limit")), "{text}");
    assert!(text.contains(".targets.json"), "names the file: {text}");
    let stored: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!stored.iter().any(|f| f == "targets.json"), "nothing past the budget is stored: {stored:?}");
}

/// Small limits for a test: a metadata file must arrive within 1 s, and after 200 ms at
/// least 200 bytes per 400 ms must arrive.
fn impatient() -> HttpOptions {
    HttpOptions {
        retries: 0,
        metadata_deadline: Some(Duration::from_secs(1)),
        min_rate: Some(MinRate { bytes: 200, window: Duration::from_millis(400), grace: Duration::from_millis(200) }),
        ..HttpOptions::default()
    }
}

#[test]
fn a_mirror_drip_feeding_the_timestamp_fails_clearly_and_changes_nothing() {
    let world = World::new();
    world.publish(Plugin::new("acme.timer", "1.0.0"));
    let trusted = world.trusted();
    let installed = world.installed();
    // One byte every 50 ms: the per-read timeout never fires.
    world.mirror.fault("/metadata/timestamp.json", Fault::Drip(Duration::from_millis(50)));
    let hooks = RecordingHooks::new();
    let err = world.store_with(impatient()).check_updates(&[], &Session::new(&hooks, &AlwaysAgree)).unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    let url = format!("{}/metadata/timestamp.json", world.mirror.url());
    assert!(text.contains(&format!("{url}: too slow: ")), "names the URL: {text}");
    assert!(text.contains(" bytes in ") && text.contains("the minimum is 200 bytes per 400ms"), "{text}");
    assert_eq!(world.trusted(), trusted);
    assert_eq!(world.installed(), installed);
}

#[test]
fn a_drip_fed_metadata_file_hits_the_total_deadline_and_the_next_mirror_serves_it() {
    let world = World::new();
    world.publish(Plugin::new("acme.timer", "1.0.0"));
    let slow = FaultServer::start().unwrap();
    serve(&slow, &world.site);
    // Fast enough for any minimum rate one would set, too slow for the deadline.
    slow.fault("/metadata/timestamp.json", Fault::Drip(Duration::from_millis(2)));
    let http = HttpOptions { min_rate: None, metadata_deadline: Some(Duration::from_millis(300)), ..impatient() };
    let dir = tempfile::tempdir().unwrap();
    Updater::bootstrap(dir.path(), &world.site.root()).unwrap();
    let one = Mirrors::new(Arc::new(AnyTransport::new(http.clone())), vec![Mirror::site(&slow.url())]);
    let err = Updater::new(dir.path(), one).unwrap().refresh().unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("{}/metadata/timestamp.json: too slow: ", slow.url())), "{text}");
    assert!(text.contains("the whole file must arrive within 300ms"), "{text}");
    assert!(!dir.path().join("timestamp.json").exists(), "nothing stored");

    let both = Mirrors::new(
        Arc::new(AnyTransport::new(http)),
        vec![Mirror::site(&slow.url()), Mirror::site(&world.mirror.url())],
    );
    Updater::new(dir.path(), both).unwrap().refresh().unwrap();
    assert_eq!(std::fs::read(dir.path().join("timestamp.json")).unwrap(), world.served("metadata/timestamp.json"));
}

#[test]
fn the_first_changed_check_after_a_key_rotation_uses_the_new_root_and_refuses_the_retired_key() {
    let world = World::new();
    let old_timestamp_key = role_key(&world.site, |k| &k.timestamp);
    assert_eq!(world.check(), Ok(0), "the client probed the root just now");
    // The operator rotates the timestamp key (root v2) and rebuilds.
    let registry = Registry::open(world.site.registry.path()).unwrap();
    operator::rotate(&registry, RotatedRole::Timestamp, jiff::Timestamp::now()).unwrap();
    world.publish(Plugin::new("acme.timer", "1.0.0"));
    let installed = world.installed();
    let trusted = world.trusted();

    // Whoever kept the retired key signs the next timestamp with it: the changed
    // timestamp makes the client probe first, find root v2, and refuse.
    let mut timestamp = signed_of(&world.served("metadata/timestamp.json"));
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    let forged = sign_as(&timestamp, &[(&old_timestamp_key, old_timestamp_key.key_id().to_string())]);
    world.mirror.put("/metadata/timestamp.json", forged);
    let err = world.check().unwrap_err();
    assert!(err.contains("timestamp: 0 valid signature(s) from distinct authorised keys, threshold is 1"), "{err}");
    let now = world.trusted();
    assert_eq!(signed_of(&now["root.json"])["version"], 2, "the new root was picked up by this check");
    assert_eq!(now["timestamp.json"], trusted["timestamp.json"]);
    assert_eq!(world.installed(), installed);

    // The genuine timestamp, signed with the new key, is accepted.
    serve(&world.mirror, &world.site);
    assert_eq!(world.check(), Ok(0));
    assert_eq!(signed_of(&world.trusted()["root.json"])["version"], 2);
}
