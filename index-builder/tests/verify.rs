//! `verify` over built sites, from a directory and over loopback HTTP, and the
//! `trellis-index` binary end to end.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use trellis_index::build::{Scope, build_registry};
use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::serve::Server;
use trellis_index::verify::{self, Source};
use trellis_schema::tuf::{Envelope, TargetFile, Targets, sign};

fn now() -> jiff::Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn built_site() -> (tempfile::TempDir, tempfile::TempDir) {
    let registry = tempfile::tempdir().unwrap();
    let options = InitOptions {
        name: "Test".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 3,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now: now(),
    };
    operator::init(registry.path(), &options).unwrap();
    let key = fixture::key(1);
    fixture::add_publisher(registry.path(), "acme", &key).unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "1.0.0"), &key).unwrap();
    fixture::add_release(
        registry.path(),
        &ReleaseSpec::new("acme.alarm", "1.0.0").depends_on("acme.clock", "^1"),
        &key,
    )
    .unwrap();
    let site = tempfile::tempdir().unwrap();
    build_registry(&Registry::open(registry.path()).unwrap(), site.path(), Scope::Full, now()).unwrap();
    (registry, site)
}

fn dir(path: &Path) -> Source {
    Source::Dir(path.to_owned())
}

#[test]
fn a_fresh_build_verifies_without_problems() {
    let (_registry, site) = built_site();
    let report = verify::verify(&dir(site.path()), None, now());
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.releases, 2);
    // Two index docs, two publisher-side files (record, blocklist) at least; the four
    // blobs (two packages, two envelopes) are checked through the index docs.
    assert!(report.targets >= 4, "{report:?}");
    assert_eq!(report.blobs, 4, "{report:?}");
}

#[test]
fn an_alias_that_differs_from_its_signed_doc_or_is_missing_is_a_warning_not_a_problem() {
    let (registry, site) = built_site();
    let alias =
        |id: &str| site.path().join("targets").join(trellis_index::site::index_alias_path(&id.parse().unwrap()));
    let report = verify::verify(&dir(site.path()), None, now());
    assert_eq!((report.aliases, report.warnings.clone()), (2, Vec::new()), "{report:?}");

    // A stale copy (the doc of another plugin will do) and a missing one.
    std::fs::copy(alias("acme.alarm"), alias("acme.clock")).unwrap();
    std::fs::remove_file(alias("acme.alarm")).unwrap();
    let report = verify::verify(&dir(site.path()), None, now());
    assert_eq!(report.problems, Vec::<String>::new(), "clients survive both: not problems");
    assert_eq!(report.aliases, 0);
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    let clock = format!("targets/{}", trellis_index::site::index_alias_path(&"acme.clock".parse().unwrap()));
    assert!(report.warnings[0].starts_with(&format!("{clock}: ")), "{:?}", report.warnings);
    assert!(report.warnings[0].contains("stale"), "{:?}", report.warnings);
    assert!(report.warnings[1].starts_with("1 index doc(s) have no alias"), "{:?}", report.warnings);

    // The next build puts both back.
    build_registry(&Registry::open(registry.path()).unwrap(), site.path(), Scope::Full, now()).unwrap();
    let report = verify::verify(&dir(site.path()), None, now());
    assert_eq!((report.aliases, report.warnings), (2, Vec::new()));
}

#[test]
fn an_unversioned_snapshot_or_targets_that_is_stale_or_missing_is_a_warning_not_a_problem() {
    let (registry, site) = built_site();
    let metadata = site.path().join("metadata");
    // A stale snapshot copy (any other signed file will do) and no targets copy.
    std::fs::copy(metadata.join("1.targets.json"), metadata.join("snapshot.json")).unwrap();
    std::fs::remove_file(metadata.join("targets.json")).unwrap();
    let report = verify::verify(&dir(site.path()), None, now());
    assert_eq!(report.problems, Vec::<String>::new(), "clients survive both: not problems");
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0].starts_with("metadata/snapshot.json: "), "{:?}", report.warnings);
    assert!(report.warnings[0].contains("stale") && report.warnings[0].contains("1.snapshot.json"), "{:?}", report);
    assert!(report.warnings[1].starts_with("metadata/targets.json: missing"), "{:?}", report.warnings);

    // The next build puts both back, although nothing else changed.
    let rebuilt = build_registry(&Registry::open(registry.path()).unwrap(), site.path(), Scope::Full, now()).unwrap();
    assert_eq!(rebuilt.written, ["metadata/snapshot.json", "metadata/targets.json"]);
    let report = verify::verify(&dir(site.path()), None, now());
    assert_eq!(report.warnings, Vec::<String>::new());
}

#[test]
fn reports_a_blob_an_index_doc_lists_that_is_missing_or_altered() {
    let (_registry, site) = built_site();
    let mut envelopes = Vec::new();
    for entry in walkdir::WalkDir::new(site.path().join("targets/plugins")) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "dsse") {
            envelopes.push(entry.path().to_owned());
        }
    }
    envelopes.sort();
    assert_eq!(envelopes.len(), 2);
    std::fs::remove_file(&envelopes[0]).unwrap();
    let mut altered = std::fs::read(&envelopes[1]).unwrap();
    altered.push(b' ');
    std::fs::write(&envelopes[1], &altered).unwrap();
    let report = verify::verify(&dir(site.path()), None, now());
    let missing: Vec<&String> =
        report.problems.iter().filter(|p| p.contains(".dsse: missing (the index doc lists plugins/acme/")).collect();
    let changed: Vec<&String> =
        report.problems.iter().filter(|p| p.contains(&format!(".dsse: {} bytes with sha256", altered.len()))).collect();
    assert_eq!((missing.len(), changed.len()), (1, 1), "{:?}", report.problems);
    assert!(changed[0].contains("the index doc lists"), "{changed:?}");
    assert_eq!(report.releases, 0, "no release signature can be checked without its envelope");
}

#[test]
fn reports_a_bin_that_signs_a_blob_outside_the_bins_paths() {
    let (_registry, site) = built_site();
    let snapshot: serde_json::Value = {
        let timestamp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(site.path().join("metadata/timestamp.json")).unwrap()).unwrap();
        let version = timestamp["signed"]["meta"]["snapshot.json"]["version"].as_u64().unwrap();
        serde_json::from_slice(&std::fs::read(site.path().join(format!("metadata/{version}.snapshot.json"))).unwrap())
            .unwrap()
    };
    let blob = "plugins/acme/acme.clock/acme.clock-1.0.0.zip";
    let bin = trellis_index::site::bin_for_target(blob, 3, "bin");
    let version = snapshot["signed"]["meta"][format!("{bin}.json")]["version"].as_u64().unwrap();
    let path = site.path().join(format!("metadata/{version}.{bin}.json"));
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    value["signed"]["targets"][blob] = serde_json::json!({"length": 1, "hashes": {"sha256": "00"}});
    std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    let report = verify::verify(&dir(site.path()), None, now());
    assert!(
        report.problems.iter().any(|p| p.contains(&format!("signs {blob}, outside the paths delegated to {bin}"))),
        "{:?}",
        report.problems
    );
}

#[test]
fn lists_every_tampered_blob_and_expired_metadata() {
    let (_registry, site) = built_site();
    let mut tampered = 0;
    for entry in walkdir::WalkDir::new(site.path().join("targets/plugins")) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "zip") {
            std::fs::write(entry.path(), b"evil").unwrap();
            tampered += 1;
        }
    }
    assert_eq!(tampered, 2);
    let report = verify::verify(&dir(site.path()), None, now());
    let bad_blobs = report.problems.iter().filter(|p| p.contains(".zip: 4 bytes with sha256")).count();
    assert_eq!(bad_blobs, 2, "{:?}", report.problems);

    let later = "2026-11-05T00:00:00Z".parse().unwrap();
    let report = verify::verify(&dir(site.path()), None, later);
    assert!(report.problems.iter().any(|p| p.contains("metadata/timestamp.json: expired at")), "{:?}", report.problems);
}

#[test]
fn detects_a_role_signed_by_the_wrong_key() {
    let (_registry, site) = built_site();
    let path = site.path().join("metadata/1.bins.json");
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    value["signed"]["delegations"]["succinct_roles"]["bit_length"] = 4.into();
    std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    let report = verify::verify(&dir(site.path()), None, now());
    assert!(
        report.problems.iter().any(|p| p.contains("metadata/1.bins.json: 0 valid signature(s)")),
        "{:?}",
        report.problems
    );
}

#[test]
fn flags_a_publisher_bin_signing_a_path_outside_publishers() {
    let (registry, site) = built_site();
    // A target of the right bin number that the `publishers/*` delegation above the
    // bin does not cover: a client would never look for it there.
    let (target, bin) = (0..)
        .map(|n| format!("index/00/evil{n}.json"))
        .map(|t| {
            let bin = trellis_index::site::bin_for_target(&t, 8, "pub");
            (t, bin)
        })
        .find(|(_, bin)| site.path().join(format!("metadata/1.{bin}.json")).exists())
        .unwrap();
    let path = site.path().join(format!("metadata/1.{bin}.json"));
    let envelope: Envelope<Targets> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut doc = envelope.signed;
    let bytes = b"{}";
    doc.targets.insert(
        target.clone(),
        TargetFile {
            length: bytes.len() as u64,
            hashes: [("sha256".to_owned(), trellis_schema::Sha256::of(bytes).to_hex())].into(),
            custom: None,
            extra: serde_json::Map::new(),
        },
    );
    let opened = Registry::open(registry.path()).unwrap();
    let keys = opened.signing_keys(&opened.config.keys.publishers).unwrap().unwrap();
    let signed = sign(doc, &keys.iter().collect::<Vec<_>>()).unwrap();
    std::fs::write(&path, trellis_schema::canonical::to_vec_of(&signed).unwrap()).unwrap();

    let report = verify::verify(&dir(site.path()), None, now());
    let expected = format!("metadata/1.{bin}.json: signs {target}, outside the paths delegated to {bin}");
    assert!(report.problems.iter().any(|p| p == &expected), "{:?}", report.problems);
}

#[test]
fn verifies_a_deployed_site_over_loopback_http() {
    let (_registry, site) = built_site();
    let server = Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let report = verify::verify(&Source::parse(&server.url()), None, now());
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.releases, 2);
}

#[test]
fn cli_init_build_verify_round_trip() {
    let bin = env!("CARGO_BIN_EXE_trellis-index");
    let work = tempfile::tempdir().unwrap();
    let registry = work.path().join("registry");
    let site = work.path().join("site");
    let run = |args: &[&str]| {
        let output = Command::new(bin).args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let now = "--now=2026-11-01T00:00:00Z";
    let (code, out) = run(&["init", registry.to_str().unwrap(), "--bin-bits", "2", "--publisher-bin-bits", "3", now]);
    assert_eq!(code, Some(0), "{out}");
    fixture::add_publisher(&registry, "acme", &fixture::key(1)).unwrap();
    fixture::add_release(&registry, &ReleaseSpec::new("acme.clock", "1.0.0"), &fixture::key(1)).unwrap();
    let (code, out) = run(&["build", registry.to_str().unwrap(), "--out", site.to_str().unwrap(), now]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("indexed 1 plugin(s), 1 release(s)"), "{out}");
    let bins_named = |infix: &str| {
        std::fs::read_dir(site.join("metadata"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(infix))
            .count()
    };
    assert_eq!((bins_named(".bin-"), bins_named(".pub-")), (4, 8));
    let (code, out) = run(&["verify", site.to_str().unwrap(), now]);
    assert_eq!((code, out.contains("no problems")), (Some(0), true), "{out}");
    let (code, out) = run(&["yank", registry.to_str().unwrap(), "acme.clock@9.9.9"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("acme.clock 9.9.9 is not in this registry"), "{out}");
    let (code, out) = run(&["rollout", registry.to_str().unwrap(), "acme.clock@1.0.0", "30%"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("acme.clock 1.0.0 is offered as an update to 30% of installs (was 100%)"), "{out}");
    let (code, out) = run(&["rollout", registry.to_str().unwrap(), "acme.clock@1.0.0", "120"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("\"120\" is not a percentage from 0 to 100"), "{out}");
    let (code, out) = run(&["timestamp", registry.to_str().unwrap(), "--site", site.to_str().unwrap(), now]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("timestamp.json v2"), "{out}");
}
