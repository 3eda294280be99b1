//! Real packages through the journalled activation: extraction writes into the
//! transaction's target directory, the state file records the switch, cleanup and
//! rollback work on what extraction produced, and a package refused halfway through an
//! update leaves the running release and the data dir as they were.

#![allow(clippy::unwrap_used)] // test helpers: a failure to set up the fixture is a test failure

use std::fs;
use std::path::Path;

use semver::Version;
use trellis_client::activate::{self, ActivateError};
use trellis_client::package::{Limits, Package, PackageError};
use trellis_client::state::{DataDir, InstallReason, InstalledRelease, StateStore};
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, PackageDigest, ReleaseManifest};
use trellis_schema::{PluginId, Sha256};
use trellis_tests::hostile::{RawEntry, RawZip, file_entry};

fn clock() -> PluginId {
    "acme.clock".parse().unwrap()
}

/// The files of release `version`; content differs per release.
fn files(version: &Version) -> Vec<(String, Vec<u8>)> {
    vec![
        ("plugin.json".into(), format!(r#"{{"id":"acme.clock","version":"{version}"}}"#).into_bytes()),
        ("LICENSE".into(), b"MIT License\n".repeat(10)),
        ("bin/linux-x86_64/clock".into(), format!("clock binary {version}\n").repeat(200).into_bytes()),
    ]
}

/// A real package of `version` and the release manifest a developer would sign for it.
fn package(version: &Version) -> (Vec<u8>, ReleaseManifest) {
    let files = files(version);
    let mut entries: Vec<_> = files.iter().map(|(p, c)| file_entry(p, c)).collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let content = ContentManifest {
        format: trellis_schema::manifest::ManifestFormat::CURRENT,
        plugin_id: clock(),
        version: version.clone(),
        files: entries.clone(),
    };
    let mut raw: Vec<RawEntry> = files.iter().map(|(p, c)| RawEntry::file(p, c.clone())).collect();
    raw.push(RawEntry::file(CONTENT_MANIFEST_PATH, serde_json::to_vec_pretty(&content).unwrap()));
    let bytes = RawZip::new(raw).to_bytes();
    let manifest = serde_json::from_value(serde_json::json!({
        "format": trellis_schema::manifest::MANIFEST_FORMAT,
        "plugin_id": "acme.clock",
        "version": version.to_string(),
        "package": PackageDigest { sha256: Sha256::of(&bytes), size: bytes.len() as u64 },
        "files": entries,
        "permissions": [],
        "host": {"id": "tauri-demo", "api_version_requirement": ">=1.0.0"},
        "platforms": ["linux-x86_64"],
        "channel": "stable",
        "dependencies": [],
    }))
    .unwrap();
    (bytes, manifest)
}

fn release(version: &Version) -> InstalledRelease {
    InstalledRelease { version: version.clone(), dependencies: vec![], package_sha256: None }
}

/// Every file of `version` is on disk under `dir` with its signed content.
fn assert_release_on_disk(dir: &Path, version: &Version) {
    for (path, content) in files(version) {
        assert_eq!(fs::read(dir.join(&path)).unwrap(), content, "{path} of {version}");
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn install_or_update(store: &mut StateStore, version: &Version) -> Result<(), ActivateError> {
    let (bytes, manifest) = package(version);
    let package = Package::from_bytes(bytes, &manifest, &Limits::default()).unwrap();
    let mut tx = if store.state().plugin(&clock()).is_some() {
        activate::begin_update(store, &clock(), release(version))?
    } else {
        activate::begin_install(store, &clock(), release(version), "public".parse().unwrap(), InstallReason::Requested)?
    };
    package.extract(&tx.target_dir().unwrap()).unwrap();
    tx.staged()?;
    if tx.operation().from.is_some() {
        tx.stopped()?;
    }
    tx.switch()?;
    tx.finish()
}

#[test]
fn real_packages_install_update_and_roll_back_through_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = StateStore::open(dir.clone()).unwrap();
    let (v1, v2, v3) = (Version::new(1, 0, 0), Version::new(1, 1, 0), Version::new(2, 0, 0));

    install_or_update(&mut store, &v1).unwrap();
    assert_release_on_disk(&dir.release_dir(&clock(), &v1), &v1);
    install_or_update(&mut store, &v2).unwrap();
    install_or_update(&mut store, &v3).unwrap();
    assert_release_on_disk(&dir.release_dir(&clock(), &v3), &v3);
    assert_release_on_disk(&dir.release_dir(&clock(), &v2), &v2);
    assert_eq!(entries(&dir.plugin_dir(&clock())), ["1.1.0", "2.0.0", "current"], "1.0.0 was collected");

    let mut tx = activate::begin_rollback(&mut store, &clock()).unwrap();
    assert!(tx.target_is_ready(), "a rollback downloads nothing");
    tx.stopped().unwrap();
    tx.switch().unwrap();
    tx.finish().unwrap();
    let record = store.state().plugin(&clock()).unwrap();
    assert_eq!(record.active.version, v2);
    assert_eq!(record.previous.as_ref().map(|p| &p.version), Some(&v3));
    assert_release_on_disk(&dir.release_dir(&clock(), &v2), &v2);
}

#[test]
fn package_refused_during_an_update_leaves_the_running_release_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = StateStore::open(dir.clone()).unwrap();
    let (v1, v2) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
    install_or_update(&mut store, &v1).unwrap();
    let before = fs::read(dir.state_file()).unwrap();

    // The bytes do not match the signed manifest of 2.0.0: a tampered download.
    let tx = activate::begin_update(&mut store, &clock(), release(&v2)).unwrap();
    let (_, manifest) = package(&v2);
    let (other_bytes, _) = package(&Version::new(2, 0, 1));
    let err = Package::from_bytes(other_bytes, &manifest, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, PackageError::PackageHashMismatch { .. } | PackageError::PackageSizeMismatch { .. }),
        "{err}"
    );
    tx.abort().unwrap();

    assert_eq!(store.state().plugin(&clock()).unwrap().active.version, v1);
    assert_release_on_disk(&dir.release_dir(&clock(), &v1), &v1);
    assert_eq!(entries(&dir.plugin_dir(&clock())), ["1.0.0", "current"]);
    assert_eq!(fs::read(dir.state_file()).unwrap(), before, "the state file is as it was");
}
