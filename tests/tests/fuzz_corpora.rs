//! The fuzz corpora, replayed on stable: every file of `fuzz/corpus/<target>/` goes
//! through the same function the cargo-fuzz target `<target>` runs
//! (`trellis_fuzz::<target>::run`), so CI checks every seed and every input the fuzzers
//! found interesting (including past crashes) without a nightly toolchain.
//!
//! The generated seeds (`seed-*` files: genuine signed metadata, records, envelopes,
//! a real package, a real delta) are drift-tested against the code that makes them;
//! `TRELLIS_UPDATE_FUZZ_SEEDS=1 cargo test -p trellis-tests --test fuzz_corpora`
//! rewrites them after a format change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed setup is a failed test

use std::fs;
use std::path::{Path, PathBuf};

use trellis_client::delta::{Base, Target};
use trellis_client::package::{Limits, Package};
use trellis_client::trust::{Delegator, TrustedSet};
use trellis_fuzz::fixture;
use trellis_fuzz::seeds::{self, Seed};
use trellis_schema::delta::DeltaLimits;
use trellis_schema::digest::Sha256;
use trellis_schema::dsse::Envelope;
use trellis_schema::tuf::Targets;
use trellis_tests::hostile::{self, RawEntry, RawZip};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Seeds made by the builder's own `pack` and the hostile ZIP writer (the fuzz crate
/// depends on neither).
fn package_seeds() -> Vec<Seed> {
    let out = tempfile::tempdir().unwrap();
    let spec = trellis_index::fixture::ReleaseSpec::new("acme.clock", "1.0.0");
    let (packed, _) = spec.pack(&out.path().join("p.zip")).unwrap();
    let files = [("plugin.json", &b"{\"id\":\"acme.clock\"}"[..]), ("bin/run", &b"#!/bin/sh\n"[..])];
    let mut with_dir = hostile::package(&files, &files);
    with_dir.entries.insert(0, RawEntry::dir("bin/"));
    let stored = RawZip::new(
        files
            .iter()
            .map(|(p, c)| RawEntry::stored(p, c.to_vec()))
            .chain([RawEntry::stored("trellis-manifest.json", hostile::manifest_json(&files))])
            .collect(),
    );
    let escape = hostile::package(&[("../escape.txt", &b"x"[..])], &[("../escape.txt", &b"x"[..])]);
    let link = RawZip::new(vec![
        RawEntry::symlink("link", "/etc/passwd"),
        RawEntry::file("trellis-manifest.json", hostile::manifest_json(&[])),
    ]);
    let seed = |name: &str, bytes: Vec<u8>| Seed { target: "package_zip", name: name.into(), bytes };
    vec![
        seed("packed", packed),
        seed("directory-entry", with_dir.to_bytes()),
        seed("stored", stored.to_bytes()),
        seed("escape", escape.to_bytes()),
        seed("symlink", link.to_bytes()),
    ]
}

fn all_seeds() -> Vec<Seed> {
    let mut out = seeds::all();
    out.extend(package_seeds());
    out
}

#[test]
fn every_corpus_file_replays_through_its_target() {
    for (target, run) in trellis_fuzz::TARGETS {
        let dir = corpus_dir().join(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for file in files {
            let bytes = fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panics", file.display());
        }
    }
}

#[test]
fn generated_seeds_are_committed_as_generated() {
    let update = std::env::var_os("TRELLIS_UPDATE_FUZZ_SEEDS").is_some();
    for seed in all_seeds() {
        let path = corpus_dir().join(seed.target).join(format!("seed-{}", seed.name));
        if update {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &seed.bytes).unwrap();
            continue;
        }
        let committed = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run TRELLIS_UPDATE_FUZZ_SEEDS=1 cargo test -p trellis-tests --test fuzz_corpora",
                path.display()
            )
        });
        assert!(committed == seed.bytes, "{} differs from what the seed writer makes now", path.display());
    }
}

/// The seeds are only worth fuzzing from if they get past the checks: the genuine
/// documents verify, the genuine delta applies, the genuine envelope verifies.
#[test]
fn genuine_fixture_documents_are_accepted() {
    let mut set = TrustedSet::new(&fixture::root(), fixture::now()).unwrap();
    set.update_timestamp(&fixture::timestamp()).unwrap();
    set.update_snapshot(&fixture::snapshot()).unwrap();
    let targets = set.update_targets(&fixture::targets()).unwrap();
    let targets: &Targets = &targets;
    let bins = set.verify_targets("bins", Delegator::Targets(targets), &fixture::bins()).unwrap();
    let bin = set.verify_targets(&fixture::bin_name(), Delegator::Targets(&bins), &fixture::bin()).unwrap();
    assert!(bin.targets.contains_key(fixture::INDEX_PATH));
    let mut fresh = TrustedSet::new(&fixture::root(), fixture::now()).unwrap();
    let root_v2 = fixture::sign_metadata(&fixture::root_signed(2), &[&fixture::key(fixture::seed::ROOT)]).unwrap();
    fresh.update_root(&root_v2).unwrap();

    let record = fixture::publisher_record().unwrap();
    let envelope: Envelope = serde_json::from_slice(&fixture::release_envelope(&fixture::target_manifest())).unwrap();
    assert_eq!(record.verify_release(&envelope).unwrap(), fixture::target_manifest());

    let _: trellis_schema::index::IndexDoc = serde_json::from_slice(&fixture::index_doc()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("base");
    for (path, bytes, _) in fixture::base_files() {
        fs::create_dir_all(base_dir.join(path).parent().unwrap()).unwrap();
        fs::write(base_dir.join(path), bytes).unwrap();
    }
    let (base, target) = (fixture::base_manifest(), fixture::target_manifest());
    let staged = trellis_client::delta::apply(
        &seeds::genuine_delta(),
        Base { dir: &base_dir, manifest: &base, manifest_sha256: Sha256::of(&fixture::manifest_payload(&base)) },
        Target { manifest: &target, manifest_sha256: Sha256::of(&fixture::manifest_payload(&target)) },
        dir.path(),
        &DeltaLimits::default(),
    )
    .unwrap();
    assert_eq!((staged.ops.copied, staged.ops.patched, staged.ops.literal), (1, 1, 3));

    for seed in package_seeds().iter().filter(|s| ["packed", "directory-entry", "stored"].contains(&s.name.as_str())) {
        let package = Package::from_bytes_unsigned(seed.bytes.clone(), &Limits::default());
        let package = package.unwrap_or_else(|e| panic!("seed {}: {e}", seed.name));
        package.verify().unwrap();
    }
}
