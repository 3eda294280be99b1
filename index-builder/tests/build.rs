//! Building sites from real registry source trees: layout, reproducibility,
//! incrementality, and refusals that leave the previous site untouched.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use trellis_index::build::{self, BuildError, BuildReport, CatalogWork, Scope, build_registry};
use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions};
use trellis_index::publisher::RecordChange;
use trellis_index::registry::{Expiry, PublisherScope, Registry, RegistryError};
use trellis_index::release::ReleaseError;
use trellis_index::site;
use trellis_schema::index::IndexDoc;
use trellis_schema::publisher::{PublisherChain, SignedRecord};
use trellis_schema::tuf::{Envelope, Targets};

fn now() -> jiff::Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn init(dir: &Path) {
    let options = InitOptions {
        name: "Test Store".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 2,
        root_threshold: 2,
        bin_bits: 2,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now: now(),
    };
    operator::init(dir, &options).unwrap();
}

/// A registry with publisher acme (key 1) and two plugins, one depending on the other.
fn registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let key = fixture::key(1);
    fixture::add_publisher(dir.path(), "acme", &key).unwrap();
    fixture::add_release(dir.path(), &ReleaseSpec::new("acme.clock", "1.0.0"), &key).unwrap();
    fixture::add_release(dir.path(), &ReleaseSpec::new("acme.clock", "1.1.0"), &key).unwrap();
    let alarm = ReleaseSpec::new("acme.alarm", "0.1.0").depends_on("acme.clock", "^1");
    fixture::add_release(dir.path(), &alarm, &key).unwrap();
    dir
}

fn build(registry: &Path, site: &Path) -> Result<BuildReport, BuildError> {
    build_registry(&Registry::open(registry)?, site, Scope::Full, now())
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn role(site: &Path, name: &str, version: u64) -> Envelope<Targets> {
    serde_json::from_slice(&std::fs::read(site::metadata_file(site, name, version)).unwrap()).unwrap()
}

#[test]
fn builds_the_design_layout_with_an_index_doc_per_plugin() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    let report = build(registry.path(), out.path()).unwrap();
    assert_eq!((report.plugins, report.releases, report.snapshot_version), (2, 3, 1));
    let files = tree(out.path());
    for name in ["1.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json", "1.bins.json"] {
        assert!(files.contains_key(&format!("metadata/{name}")), "missing {name}");
    }
    for bin in ["bin-0", "bin-1", "bin-2", "bin-3"] {
        assert!(files.contains_key(&format!("metadata/1.{bin}.json")), "missing {bin}");
    }
    // The snapshot and the top-level targets under their unversioned names too (what a
    // client's first refresh asks for with the timestamp), byte for byte.
    assert_eq!(files["metadata/snapshot.json"], files["metadata/1.snapshot.json"]);
    assert_eq!(files["metadata/targets.json"], files["metadata/1.targets.json"]);
    let id = "acme.clock".parse().unwrap();
    let target = site::index_target(&id);
    let bin = role(out.path(), &site::bin_for_target(&target, 2, "bin"), 1);
    let entry = &bin.signed.targets[&target];
    let sha = entry.hashes["sha256"].parse().unwrap();
    let doc: IndexDoc =
        serde_json::from_slice(&files[&format!("targets/{}", site::hashed_target_path(&target, &sha))]).unwrap();
    assert_eq!(doc.releases.iter().map(|r| r.version.to_string()).collect::<Vec<_>>(), ["1.0.0", "1.1.0"]);
    let package = &doc.releases[1].package;
    let zip = &files[&format!("targets/{}", site::hashed_target_path(&package.path, &package.sha256))];
    assert_eq!(trellis_schema::Sha256::of(zip), package.sha256);
    assert_eq!(zip.len() as u64, package.length);
}

#[test]
fn publishers_role_delegates_records_to_succinct_publisher_bins() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let publishers = role(out.path(), "publishers", 1);
    assert!(publishers.signed.targets.is_empty(), "records live in the publisher bins");
    let delegations = publishers.signed.delegations.as_ref().unwrap();
    let succinct = delegations.succinct_roles.as_ref().unwrap();
    assert_eq!((succinct.name_prefix.as_str(), succinct.bit_length), ("pub", 8));
    let keys = Registry::open(registry.path()).unwrap();
    let publisher_keys = keys.signing_keys(&keys.config.keys.publishers).unwrap().unwrap();
    assert_eq!(succinct.keyids, [publisher_keys[0].key_id().clone()], "bins share the publishers keys");
    let top = role(out.path(), "targets", 1);
    let delegated = top.signed.delegations.unwrap().roles.unwrap();
    let entry = delegated.iter().find(|r| r.name == "publishers").unwrap();
    assert_eq!(entry.paths.as_deref(), Some(&["publishers/*".to_owned()][..]));

    let files = tree(out.path());
    let bins = files.keys().filter(|p| p.starts_with("metadata/1.pub-")).count();
    assert_eq!(bins, 256);
    let target = site::publisher_target(&"acme".parse().unwrap());
    let bin = role(out.path(), &site::bin_for_target(&target, 8, "pub"), 1);
    assert_eq!(bin.signed.targets.keys().collect::<Vec<_>>(), [&target]);
    let sha = bin.signed.targets[&target].hashes["sha256"].parse().unwrap();
    let chain: PublisherChain =
        serde_json::from_slice(&files[&format!("targets/{}", site::hashed_target_path(&target, &sha))]).unwrap();
    assert_eq!(chain.head().unwrap().signed.id.as_str(), "acme");
}

#[test]
fn adding_one_publisher_rewrites_its_record_one_publisher_bin_snapshot_and_timestamp() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let before = tree(out.path());
    fixture::add_publisher(registry.path(), "globex", &fixture::key(2)).unwrap();
    let report = build(registry.path(), out.path()).unwrap();
    let after = tree(out.path());
    let changed = changed_besides_storefront(&before, &after, &report);
    let target = site::publisher_target(&"globex".parse().unwrap());
    let bin = site::bin_for_target(&target, 8, "pub");
    let sha = role(out.path(), &bin, 2).signed.targets[&target].hashes["sha256"].parse().unwrap();
    let expected = BTreeSet::from([
        format!("targets/{}", site::hashed_target_path(&target, &sha)),
        format!("metadata/2.{bin}.json"),
        "metadata/2.snapshot.json".to_owned(),
        "metadata/timestamp.json".to_owned(),
        "metadata/snapshot.json".to_owned(),
    ]);
    assert_eq!(changed, expected);
    assert_eq!(report.written.iter().cloned().collect::<BTreeSet<_>>(), changed);
}

#[test]
fn refuses_publisher_bin_bits_out_of_range_naming_the_config() {
    let registry = registry();
    let path = registry.path().join("trellis-registry.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["publisher_bin_bits"] = 0.into();
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let error = Registry::open(registry.path()).unwrap_err().to_string();
    assert!(error.contains("trellis-registry.json") && error.contains("publisher_bin_bits is 0"), "{error}");
}

#[test]
fn of_several_bad_publisher_records_or_plugin_directories_the_first_by_name_is_named() {
    let registry = registry();
    let dir = registry.path();
    let publishers = dir.join("publishers");
    for vendor in ["bravo", "zulu"] {
        fixture::add_publisher(dir, vendor, &fixture::key(2)).unwrap();
    }
    let opened = Registry::open(dir).unwrap();
    let vendors: Vec<&str> = opened.publishers.keys().map(|v| v.as_str()).collect();
    assert_eq!(vendors, ["acme", "bravo", "zulu"]);
    let ids: Vec<String> = opened.plugin_ids().unwrap().iter().map(|id| id.to_string()).collect();
    assert_eq!(ids, ["acme.alarm", "acme.clock"]);

    // Records copied under other names: each names a publisher other than its file's.
    // Loaded in parallel, the error is still the first file by name.
    for vendor in ["mike", "delta", "yankee"] {
        std::fs::copy(publishers.join("acme.json"), publishers.join(format!("{vendor}.json"))).unwrap();
    }
    for _ in 0..4 {
        let error = Registry::open(dir).unwrap_err();
        assert!(matches!(&error, RegistryError::Publisher { path, .. } if path.ends_with("delta.json")), "{error}");
    }
    for vendor in ["mike", "delta", "yankee"] {
        std::fs::remove_file(publishers.join(format!("{vendor}.json"))).unwrap();
    }

    for name in ["zz no id", "Acme.Upper", "bad name"] {
        std::fs::create_dir_all(dir.join("releases").join(name)).unwrap();
    }
    let opened = Registry::open(dir).unwrap();
    for _ in 0..4 {
        let error = opened.plugin_ids().unwrap_err().to_string();
        assert!(error.contains("Acme.Upper") && error.contains("is not a plugin id"), "{error}");
    }
}

#[test]
fn another_publishers_signed_release_copied_under_a_plugin_is_refused_as_misplaced() {
    let registry = registry();
    let dir = registry.path();
    let out = tempfile::tempdir().unwrap();
    build(dir, out.path()).unwrap();
    // bravo's genuine release, its record in publishers/, copied in as acme.clock 9.0.0.
    fixture::add_publisher(dir, "bravo", &fixture::key(2)).unwrap();
    let package = fixture::add_release(dir, &ReleaseSpec::new("bravo.tool", "1.0.0"), &fixture::key(2)).unwrap();
    let target = dir.join("releases/acme.clock");
    std::fs::copy(&package, target.join("9.0.0.zip")).unwrap();
    let envelope = package.with_extension("zip.dsse");
    std::fs::copy(&envelope, target.join("9.0.0.zip.dsse")).unwrap();
    let before = tree(out.path());
    for scope in [Scope::Full, Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]))] {
        let err = build_registry(&Registry::open(dir).unwrap(), out.path(), scope, now()).unwrap_err().to_string();
        assert!(err.contains("9.0.0.zip.dsse") && err.contains("acme.clock 9.0.0"), "{err}");
        assert!(err.contains("bravo.tool 1.0.0") && !err.contains("no record"), "{err}");
    }
    assert_eq!(tree(out.path()), before);
}

#[test]
fn same_inputs_and_keys_give_byte_identical_sites() {
    let registry = registry();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(registry.path(), a.path()).unwrap();
    build(registry.path(), b.path()).unwrap();
    let (ta, tb) = (tree(a.path()), tree(b.path()));
    assert!(ta.len() > 10);
    assert_eq!(ta, tb);
}

#[test]
fn rebuilding_unchanged_registry_writes_nothing() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let before = tree(out.path());
    let report = build(registry.path(), out.path()).unwrap();
    assert_eq!(report.written, Vec::<String>::new());
    assert_eq!(tree(out.path()), before);
}

/// Replaces one byte of `file` with another, keeping its length (a same-length `sed`, a
/// mirror's rewrite): the byte right after the first match of `after`, else the middle
/// one. Returns the bytes it had.
fn alter_in_place(file: &Path, after: Option<&str>) -> Vec<u8> {
    let published = std::fs::read(file).unwrap();
    let at = match after {
        Some(after) => published.windows(after.len()).position(|w| w == after.as_bytes()).unwrap() + after.len(),
        None => published.len() / 2,
    };
    let mut altered = published.clone();
    altered[at] = if altered[at] == b'X' { b'Y' } else { b'X' };
    std::fs::write(file, &altered).unwrap();
    assert_eq!(std::fs::metadata(file).unwrap().len(), published.len() as u64);
    published
}

/// A published file edited in place without changing its length is not the file its
/// content address names: every build that writes that address serves the signed
/// bytes there again (a full build: a search shard, a record bucket, the head, a
/// package and an envelope; an incremental build: the catalog documents it redoes from
/// the records), instead of keeping the edited file because its length is right.
#[test]
fn a_published_file_altered_without_changing_its_length_is_written_again() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let catalog = trellis_index::build::PreviousSite::open(out.path()).unwrap().unwrap().role("catalog").unwrap();
    let targets: Vec<String> = catalog.unwrap().signed.targets.into_keys().collect();
    // The file of the first catalog document under `prefix` whose text `shows`.
    let find = |prefix: &str, shows: &dyn Fn(&str) -> bool| {
        let mut files = targets.iter().filter(|t| t.starts_with(prefix)).map(|t| catalog_file(out.path(), t));
        files.find(|file| shows(&std::fs::read_to_string(file).unwrap())).unwrap()
    };
    let (clock, alarm) = ("{\"id\":\"acme.clock\",\"name\":\"", "{\"id\":\"acme.alarm\",");
    let first = |prefix: &str| find(prefix, &|text| text.contains(clock));
    let doc = index_doc(out.path(), "acme.clock");
    let release = &doc.releases[0];
    let altered = [
        (first("catalog/search-"), Some(clock)),
        (first("catalog/records-"), Some(clock)),
        (catalog_file(out.path(), "catalog/head.json"), None),
        (site::target_file(out.path(), &release.package.path, &release.package.sha256), None),
        (site::target_file(out.path(), &release.envelope.path, &release.envelope.sha256), None),
    ];
    let signed: Vec<Vec<u8>> = altered.iter().map(|(file, after)| alter_in_place(file, *after)).collect();
    let report = build(registry.path(), out.path()).unwrap();
    for ((file, _), signed) in altered.iter().zip(&signed) {
        assert!(std::fs::read(file).unwrap() == *signed, "{}: the signed bytes again", file.display());
        let relative = file.strip_prefix(out.path()).unwrap().to_string_lossy().into_owned();
        assert!(report.written.contains(&relative), "{relative} written: {:?}", report.written);
    }

    // An incremental build of acme.alarm, with a shard it reads (showing both plugins)
    // and one it does not read (showing acme.clock alone) altered in place: the catalog
    // is redone from the records, and the second, whose address the redone catalog
    // lists again, holds its signed bytes again.
    let showing = |both: bool| find("catalog/search-", &|text| text.contains(clock) && text.contains(alarm) == both);
    let (read, unread) = (showing(true), showing(false));
    alter_in_place(&read, Some(clock));
    let signed = alter_in_place(&unread, Some(clock));
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), out.path(), scope, now()).unwrap();
    assert_eq!(report.catalog, CatalogWork::Full, "redone from the records");
    assert!(std::fs::read(&unread).unwrap() == signed, "{}: the signed bytes again", unread.display());
}

/// The one site file whose name ends with `suffix` under `dir` (`targets/…`).
fn site_file(out: &Path, dir: &str, suffix: &str) -> std::path::PathBuf {
    let files: Vec<_> = walkdir::WalkDir::new(out.join(dir))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn an_incremental_build_writes_again_only_its_publishers_records_changed_gone_or_cut_and_a_full_build_every_one() {
    let registry = registry();
    let dir = registry.path();
    fixture::add_publisher(dir, "bravo", &fixture::key(2)).unwrap();
    fixture::add_publisher(dir, "delta", &fixture::key(3)).unwrap();
    let out = tempfile::tempdir().unwrap();
    build(dir, out.path()).unwrap();
    let record = |vendor: &str| site_file(out.path(), "targets/publishers", &format!(".{vendor}.json"));
    let relative = |file: &Path| file.strip_prefix(out.path()).unwrap().to_string_lossy().into_owned();
    let (acme, bravo, delta) = (record("acme"), record("bravo"), record("delta"));
    let signed = |file: &Path| std::fs::read(file).unwrap();
    let (acme_bytes, bravo_bytes, delta_bytes) = (signed(&acme), signed(&bravo), signed(&delta));
    let key = fixture::key(1);
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    // As the CLI opens it: only acme's chain, found as published.
    let incremental = |version: &str| {
        fixture::add_release(dir, &ReleaseSpec::new("acme.alarm", version), &key).unwrap();
        let opened = build::open_registry(dir, out.path(), &scope).unwrap();
        assert_eq!(opened.publishers.keys().map(|v| v.as_str()).collect::<Vec<_>>(), ["acme"]);
        assert_eq!(opened.as_published.len(), 1);
        build_registry(&opened, out.path(), scope.clone(), now()).unwrap()
    };

    // Its publisher's record cut, another's gone, a third's cut: only its own is
    // written again; the others are carried as published, not looked at.
    std::fs::write(&acme, &acme_bytes[..acme_bytes.len() / 2]).unwrap();
    std::fs::remove_file(&bravo).unwrap();
    std::fs::write(&delta, &delta_bytes[..delta_bytes.len() / 2]).unwrap();
    let report = incremental("0.2.0");
    assert!(report.written.contains(&relative(&acme)), "{:?}", report.written);
    assert_eq!(signed(&acme), acme_bytes);
    assert!(!report.written.contains(&relative(&bravo)) && !bravo.exists(), "{:?}", report.written);
    assert!(!report.written.contains(&relative(&delta)), "{:?}", report.written);
    // Gone: written again. Altered in place with its length: not read back.
    std::fs::remove_file(&acme).unwrap();
    assert!(incremental("0.3.0").written.contains(&relative(&acme)));
    let before = alter_in_place(&acme, None);
    assert!(!incremental("0.4.0").written.contains(&relative(&acme)));
    assert_ne!(signed(&acme), before, "still altered");

    // A full build writes every record: the signed bytes again.
    let report = build(dir, out.path()).unwrap();
    for (file, bytes) in [(&acme, &acme_bytes), (&bravo, &bravo_bytes), (&delta, &delta_bytes)] {
        assert!(report.written.contains(&relative(file)), "{:?}", report.written);
        assert_eq!(&signed(file), bytes);
    }
}

#[test]
fn an_incremental_build_takes_the_published_plugins_from_the_builders_state_instead_of_listing_releases() {
    let registry = registry();
    let dir = registry.path();
    let out = tempfile::tempdir().unwrap();
    build(dir, out.path()).unwrap();
    let (ids_file, header_file) =
        (out.path().join("_catalog/plugins.txt"), out.path().join("_catalog/plugins-state.json"));
    // The header (format, snapshot, count, digest) and the ids.
    let state = || {
        let header = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&header_file).unwrap()).unwrap();
        let ids = std::fs::read_to_string(&ids_file).unwrap();
        (header, ids.lines().map(str::to_owned).collect::<Vec<_>>())
    };
    let write_state = |header: &serde_json::Value, ids: &[&str]| {
        let ids: String = ids.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(&header_file, header.to_string()).unwrap();
        std::fs::write(&ids_file, ids).unwrap();
    };
    assert_eq!(state().1, ["acme.alarm", "acme.clock"]);
    assert_eq!(state().0["plugins"], 2);
    assert_eq!(state().0["crc32"], crc32fast::hash(b"acme.alarm\nacme.clock\n"), "the CRC-32 of the ids' text");
    // A directory that is no plugin id: listing releases/ refuses it, naming it.
    std::fs::create_dir(dir.join("releases/Not-An-Id")).unwrap();
    let error = build(dir, out.path()).unwrap_err().to_string();
    assert!(error.contains("Not-An-Id"), "{error}");

    // An incremental build lists nothing: the published plugins and the one it names.
    let key = fixture::key(1);
    fixture::add_release(dir, &ReleaseSpec::new("acme.timer", "1.0.0").depends_on("acme.clock", "^1"), &key).unwrap();
    let only = |id: &str| Scope::Plugins(BTreeSet::from([id.parse().unwrap()]));
    let incremental = |id: &str| {
        let scope = only(id);
        build_registry(&build::open_registry(dir, out.path(), &scope)?, out.path(), scope, now())
    };
    let report = incremental("acme.timer").unwrap();
    assert_eq!(state().1, ["acme.alarm", "acme.clock", "acme.timer"]);
    assert_eq!(state().0["snapshot"], report.snapshot_version);
    // Named without a directory: refused, naming it.
    let error = incremental("acme.ghost").unwrap_err().to_string();
    assert!(error.contains("acme.ghost has no directory under releases/"), "{error}");
    // A dependency on a directory no build has named: unknown, as any unpublished plugin.
    fixture::add_release(dir, &ReleaseSpec::new("acme.extra", "1.0.0"), &key).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("acme.user", "1.0.0").depends_on("acme.extra", "^1"), &key).unwrap();
    let error = incremental("acme.user").unwrap_err();
    assert!(
        matches!(&error, BuildError::UnknownDependency { dependency, .. } if dependency.as_str() == "acme.extra"),
        "{error}"
    );

    // A state of this site whose ids are not the ones its header's CRC-32 was made of
    // (unsorted, repeated, a bad id, an id missing, cut short), or without that
    // checksum, or of the format before (a SHA-256 instead): listed.
    let (header, _) = state();
    let sorted = ["acme.alarm", "acme.clock", "acme.timer"];
    for ids in [
        &["acme.timer", "acme.clock", "acme.alarm"][..],
        &["acme.alarm", "acme.alarm", "acme.timer"],
        &["acme.alarm", "Bad Id", "acme.timer"],
    ] {
        write_state(&header, ids);
        let error = incremental("acme.timer").unwrap_err().to_string();
        assert!(error.contains("Not-An-Id"), "{ids:?}: {error}");
    }
    write_state(&header, &sorted[..2]);
    assert!(incremental("acme.timer").unwrap_err().to_string().contains("Not-An-Id"), "one id short of its count");
    std::fs::write(&ids_file, "acme.alarm\nacme.clock\nacme.tim").unwrap();
    assert!(incremental("acme.timer").unwrap_err().to_string().contains("Not-An-Id"), "cut short");
    let mut unchecked = header.clone();
    unchecked.as_object_mut().unwrap().remove("crc32");
    write_state(&unchecked, &sorted);
    assert!(incremental("acme.timer").unwrap_err().to_string().contains("Not-An-Id"), "no checksum");
    let mut format_2 = unchecked.clone();
    format_2["format"] = 2.into();
    let ids: String = sorted.iter().map(|id| format!("{id}\n")).collect();
    format_2["sha256"] = trellis_schema::digest::Sha256::of(ids.as_bytes()).to_hex().into();
    write_state(&format_2, &sorted);
    assert!(incremental("acme.timer").unwrap_err().to_string().contains("Not-An-Id"), "format 2");
    // The state of another site (an older snapshot), or none: releases/ is listed.
    let mut stale = header.clone();
    stale["snapshot"] = (report.snapshot_version - 1).into();
    write_state(&stale, &sorted);
    let error = incremental("acme.timer").unwrap_err().to_string();
    assert!(error.contains("Not-An-Id"), "{error}");
    // The state as written: taken (no listing, so the bad directory is not seen), and
    // with no plugin added only its header is written again.
    write_state(&header, &sorted);
    let ids_before = std::fs::read(&ids_file).unwrap();
    #[cfg(unix)]
    let inode = |path: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
    #[cfg(unix)]
    let (ids_inode, header_inode) = (inode(&ids_file), inode(&header_file));
    let report = incremental("acme.timer").unwrap();
    assert_eq!(state().0["snapshot"], report.snapshot_version);
    assert_eq!(std::fs::read(&ids_file).unwrap(), ids_before);
    #[cfg(unix)]
    {
        assert_eq!(inode(&ids_file), ids_inode, "the list is not written again");
        assert_ne!(inode(&header_file), header_inode, "its header is");
    }
    // Either file gone: listed.
    for file in [&ids_file, &header_file] {
        let kept = std::fs::read(file).unwrap();
        std::fs::remove_file(file).unwrap();
        let error = incremental("acme.timer").unwrap_err().to_string();
        assert!(error.contains("Not-An-Id"), "{}: {error}", file.display());
        std::fs::write(file, kept).unwrap();
    }
    // The list of the build before under this build's header (the list written, the
    // header not): the checksum tells.
    let (header, _) = state();
    write_state(&header, &sorted[..2]);
    let error = incremental("acme.timer").unwrap_err().to_string();
    assert!(error.contains("Not-An-Id"), "{error}");
    std::fs::remove_dir(dir.join("releases/Not-An-Id")).unwrap();
    // The list an older trellis-index kept (format 1, one JSON file): not read, and
    // removed by the build that writes this format.
    let legacy = out.path().join("_catalog/plugins.json");
    std::fs::write(&legacy, r#"{"format":1,"snapshot":1,"plugins":["acme.alarm"]}"#).unwrap();
    incremental("acme.user").unwrap();
    assert_eq!(state().1.len(), 5, "listed: every directory");
    assert_eq!(state().0["plugins"], 5);
    assert!(!legacy.exists(), "the format-1 list is removed");
}

/// `publishers/<vendor>.json` of `registry` with the first signature of its first
/// version changed (another valid hex signature: a forgery, not a parse error).
fn forge_record(registry: &Path, vendor: &str) -> PublisherChain {
    let path = registry.join("publishers").join(format!("{vendor}.json"));
    let mut chain: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let sig = chain["records"][0]["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    chain["records"][0]["signatures"][0]["sig"] = format!("{flipped}{}", &sig[1..]).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    serde_json::from_value(chain).unwrap()
}

#[test]
fn an_incremental_open_loads_only_its_publishers_and_trusts_only_the_chains_its_site_published_under_the_same_root() {
    let registry = registry();
    let dir = registry.path();
    fixture::add_publisher(dir, "bravo", &fixture::key(2)).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("bravo.tool", "1.0.0"), &fixture::key(2)).unwrap();
    let out = tempfile::tempdir().unwrap();
    assert!(build::published_chains(out.path()).unwrap().sha256.is_empty(), "no site yet");
    build(dir, out.path()).unwrap();
    let published = build::published_chains(out.path()).unwrap();
    let vendors: BTreeSet<&str> = published.sha256.keys().map(|v| v.as_str()).collect();
    assert_eq!(vendors, BTreeSet::from(["acme", "bravo"]));
    assert_eq!(published.root.as_deref(), Some(&std::fs::read(dir.join("root/1.root.json")).unwrap()[..]));
    let only = |id: &str| Scope::Plugins(BTreeSet::from([id.parse().unwrap()]));
    let opened = build::open_registry(dir, out.path(), &only("acme.clock")).unwrap();
    let acme: trellis_schema::VendorId = "acme".parse().unwrap();
    assert_eq!(opened.publishers.keys().collect::<Vec<_>>(), [&acme], "only the named plugins' publishers");
    assert_eq!(opened.publisher_scope, PublisherScope::Vendors(BTreeSet::from([acme.clone()])));
    assert_eq!(opened.as_published.len(), 1, "as published");
    let full = Registry::open(dir).unwrap();
    assert!(full.as_published.is_empty() && full.publishers.len() == 2, "a full open verifies every chain");
    let both: BTreeSet<trellis_schema::VendorId> = vendors.iter().map(|v| v.parse().unwrap()).collect();

    // The attack: a published record replaced in the source by a forged one. Its bytes
    // are not the published ones, so an incremental open that loads it verifies it,
    // and refuses it.
    let forged = forge_record(dir, "bravo");
    let refused = |result: Result<Registry, RegistryError>| {
        let error = result.unwrap_err();
        assert!(
            matches!(&error, RegistryError::Publisher { path, .. } if path.ends_with("publishers/bravo.json")),
            "{error}"
        );
    };
    refused(Registry::open_incremental(dir, &published, &both));
    let error = build::open_registry(dir, out.path(), &only("bravo.tool")).unwrap_err().to_string();
    assert!(error.contains("bravo.json"), "{error}");
    refused(Registry::open(dir));
    // A build of another publisher's plugin neither reads it nor publishes it: the
    // site keeps bravo's published chain; a release of bravo's checked on the way (a
    // plugin sharing a listing) reads the chain and refuses it.
    let opened = build::open_registry(dir, out.path(), &only("acme.clock")).unwrap();
    build_registry(&opened, out.path(), only("acme.clock"), now()).unwrap();
    assert_eq!(build::published_chains(out.path()).unwrap().sha256, published.sha256);
    let error = opened.load_plugin(&"bravo.tool".parse().unwrap()).unwrap_err();
    assert!(
        matches!(&error, RegistryError::Publisher { path, .. } if path.ends_with("publishers/bravo.json")),
        "{error}"
    );

    // What skipping looks like: the same forged bytes, had the site published them, are
    // taken as verified; but not under another root (its recovery signers may differ),
    // nor by a full open.
    let mut trusted = published.clone();
    let canonical = forged.to_canonical().unwrap();
    trusted.sha256.insert("bravo".parse().unwrap(), trellis_schema::Sha256::of(&canonical));
    let opened = Registry::open_incremental(dir, &trusted, &both).unwrap();
    let bravo = &opened.publishers[&"bravo".parse::<trellis_schema::VendorId>().unwrap()];
    assert_eq!(bravo.to_canonical().unwrap(), canonical, "the forged chain, as published");
    let rotated = trellis_index::registry::PublishedChains { root: Some(b"another root".to_vec()), ..trusted.clone() };
    refused(Registry::open_incremental(dir, &rotated, &both));
    let rootless = trellis_index::registry::PublishedChains { root: None, ..trusted };
    refused(Registry::open_incremental(dir, &rootless, &both));

    // A chain extended since (a key added): verified, and published anew by an `--only`
    // build of one of its publisher's plugins; one of another publisher's carries it.
    let path = dir.join("publishers/bravo.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&published_chain(out.path(), "bravo")).unwrap()).unwrap();
    let change = RecordChange { add: vec![fixture::key(4)], ..RecordChange::default() };
    let chain = trellis_index::publisher::update(&published_chain(out.path(), "bravo"), &[fixture::key(2)], change);
    let chain = chain.unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("acme.clock", "1.2.0"), &fixture::key(1)).unwrap();
    build_registry(
        &build::open_registry(dir, out.path(), &only("acme.clock")).unwrap(),
        out.path(),
        only("acme.clock"),
        now(),
    )
    .unwrap();
    assert_eq!(published_chain(out.path(), "bravo").records.len(), 1, "carried as published");
    fixture::add_release(dir, &ReleaseSpec::new("bravo.tool", "1.1.0"), &fixture::key(4)).unwrap();
    let opened = build::open_registry(dir, out.path(), &only("bravo.tool")).unwrap();
    assert!(opened.as_published.is_empty(), "bravo's chain changed: verified");
    build_registry(&opened, out.path(), only("bravo.tool"), now()).unwrap();
    let sha256 = build::published_chains(out.path()).unwrap().sha256[&"bravo".parse().unwrap()];
    assert_eq!(sha256, trellis_schema::Sha256::of(&chain.to_canonical().unwrap()));
    assert_eq!(published_chain(out.path(), "bravo").records.len(), 2);
}

/// The record chain of `vendor` the site at `out` publishes.
fn published_chain(out: &Path, vendor: &str) -> PublisherChain {
    let sha256 = build::published_chains(out).unwrap().sha256[&vendor.parse().unwrap()];
    let file = site::target_file(out, &format!("publishers/{vendor}.json"), &sha256);
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

/// Every build of `scopes` refuses with the error `expected` accepts, whose message
/// says `cause` and what to do, and writes nothing to the site `out`.
fn refused_naming(registry: &Path, out: &Path, scopes: &[Scope], cause: &str, expected: impl Fn(&BuildError) -> bool) {
    let before = tree(out);
    for scope in scopes {
        let err = build_registry(&Registry::open(registry).unwrap(), out, scope.clone(), now()).unwrap_err();
        assert!(expected(&err), "{scope:?}: {err}");
        let message = err.to_string();
        assert!(message.contains(cause) && message.contains("put the published file back"), "{message}");
        assert_eq!(tree(out), before, "{scope:?}: nothing written");
    }
}

/// What a build carries over from the published site, the releases an index doc pins
/// and a publisher's published chain, is only what the signed metadata vouches for,
/// so whoever can write the site but holds no key cannot launder an edit through the
/// online keys: an index doc whose pinned package digest was edited (the doc still
/// parses), and a publisher record replaced by an attacker's chain that the registry's
/// forged record "extends", each refuse every build, naming the file and what to do,
/// with the site left as it was.
#[test]
fn an_index_doc_or_publisher_record_edited_after_signing_refuses_the_build_naming_it() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let refused_altered = |file: &Path, scopes: &[Scope]| {
        refused_naming(
            registry.path(),
            out.path(),
            scopes,
            "changed after it was signed",
            |err| matches!(err, BuildError::SiteAltered { path, .. } if path == file),
        );
    };

    let doc = site_file(out.path(), "targets/index", ".acme.clock.json");
    let published = std::fs::read_to_string(&doc).unwrap();
    let at = published.find("\"sha256\":\"").unwrap() + "\"sha256\":\"".len();
    let digit = if published.as_bytes()[at] == b'0' { "1" } else { "0" };
    std::fs::write(&doc, format!("{}{digit}{}", &published[..at], &published[at + 1..])).unwrap();
    refused_altered(&doc, &[Scope::Full, Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]))]);
    std::fs::write(&doc, published).unwrap();

    // Someone who can write the registry source and the site, but holds no key of acme:
    // their own chain in publishers/acme.json and at the published record's address.
    let forged = serde_json::to_vec_pretty(&fixture::publisher_chain("acme", &[&fixture::key(9)])).unwrap();
    std::fs::write(registry.path().join("publishers/acme.json"), &forged).unwrap();
    let record = site_file(out.path(), "targets/publishers", ".acme.json");
    std::fs::write(&record, &forged).unwrap();
    refused_altered(&record, &[Scope::Full]);
}

/// A published file the site's metadata lists and the site no longer has: an index doc
/// deleted to shed the releases it pins (then a published version's bytes swapped in
/// the source) or a publisher record deleted to shed its chain. Every build refuses,
/// naming the file, and writes nothing; put back, the same build goes through and the
/// swapped release is refused as immutable.
#[test]
fn a_published_index_doc_or_publisher_record_gone_from_the_site_refuses_the_build_naming_it() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let refused_missing = |file: &Path, scopes: &[Scope]| {
        refused_naming(
            registry.path(),
            out.path(),
            scopes,
            "it is gone",
            |err| matches!(err, BuildError::SiteMissing { path } if path == file),
        );
    };

    let release: Vec<_> = ["zip", "zip.dsse"]
        .map(|ext| registry.path().join(format!("releases/acme.clock/1.0.0.{ext}")))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .into();
    let mut spec = ReleaseSpec::new("acme.clock", "1.0.0");
    spec.payload = b"different code".to_vec();
    std::fs::remove_file(&release[0].0).unwrap();
    fixture::add_release(registry.path(), &spec, &fixture::key(1)).unwrap();
    let doc = site_file(out.path(), "targets/index", ".acme.clock.json");
    let published = std::fs::read(&doc).unwrap();
    std::fs::remove_file(&doc).unwrap();
    refused_missing(&doc, &[Scope::Full, Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]))]);
    std::fs::write(&doc, published).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("acme.clock-1.0.0.zip") && message.contains("immutable"), "{message}");
    for (path, bytes) in &release {
        std::fs::write(path, bytes).unwrap();
    }

    // A chain of someone else's in publishers/acme.json, the published record deleted.
    let forged = serde_json::to_vec_pretty(&fixture::publisher_chain("acme", &[&fixture::key(9)])).unwrap();
    std::fs::write(registry.path().join("publishers/acme.json"), &forged).unwrap();
    let record = site_file(out.path(), "targets/publishers", ".acme.json");
    std::fs::remove_file(&record).unwrap();
    refused_missing(&record, &[Scope::Full]);
}

/// The head's facts in the published catalog role changed (a byte flipped inside the
/// `custom` value, the role still laid out as the builder writes it): a rebuild of the
/// unchanged registry, full or of one plugin, signs the role again with the head's own
/// facts instead of keeping the altered copy.
#[test]
fn a_catalog_role_whose_head_facts_were_altered_is_signed_again_with_the_heads_own() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let expected = tree(out.path());
    let role = catalog_role_file(out.path());
    let published = std::fs::read_to_string(&role).unwrap();
    let custom = published.find("\"custom\":{\"generated\":").expect("the head's facts, as the builder writes them");
    let at = custom + published[custom..].find("\"plugins\":2}").unwrap() + "\"plugins\":".len();
    let scopes = [Scope::Full, Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]))];
    for scope in scopes {
        // Reset to the published site, then alter the count: 2 → 9.
        for (path, bytes) in &expected {
            std::fs::write(out.path().join(path), bytes).unwrap();
        }
        let stale: Vec<_> = tree(out.path()).into_keys().filter(|p| !expected.contains_key(p)).collect();
        for path in stale {
            std::fs::remove_file(out.path().join(path)).unwrap();
        }
        std::fs::write(&role, format!("{}9{}", &published[..at], &published[at + 1..])).unwrap();
        let report =
            build_registry(&Registry::open(registry.path()).unwrap(), out.path(), scope.clone(), now()).unwrap();
        let signed = catalog_role_file(out.path());
        assert_ne!(signed, role, "{scope:?}: a new version of the role: {:?}", report.written);
        let text = std::fs::read_to_string(&signed).unwrap();
        assert!(text.contains("\"plugins\":2}") && !text.contains("\"plugins\":9}"), "{scope:?}: {text}");
        let envelope: Envelope<Targets> = serde_json::from_str(&text).unwrap();
        let unchanged = serde_json::from_str::<Envelope<Targets>>(&published).unwrap();
        assert_eq!(envelope.signed.targets, unchanged.signed.targets, "{scope:?}: the same documents");
    }
}

/// The files a build adding `id` `version` must write: the package and envelope blobs
/// (found through the index doc, which lists them), the index doc, its bin, the
/// snapshot and the timestamp.
fn expected_changes(out: &Path, id: &str, version: &str, snapshot: u64) -> BTreeSet<String> {
    let id = id.parse().unwrap();
    let version: semver::Version = version.parse().unwrap();
    let snapshot_doc: Envelope<trellis_schema::tuf::Snapshot> =
        serde_json::from_slice(&std::fs::read(site::metadata_file(out, "snapshot", snapshot)).unwrap()).unwrap();
    let target = site::index_target(&id);
    let bin = site::bin_for_target(&target, 2, "bin");
    let v = snapshot_doc.signed.meta[&format!("{bin}.json")].version;
    let sha = role(out, &bin, v).signed.targets[&target].hashes["sha256"].parse().unwrap();
    let doc_file = format!("targets/{}", site::hashed_target_path(&target, &sha));
    let doc: IndexDoc = serde_json::from_slice(&std::fs::read(out.join(&doc_file)).unwrap()).unwrap();
    let release = doc.release(&version).unwrap();
    let mut expected = BTreeSet::from([
        doc_file,
        format!("targets/{}", site::index_alias_path(&id)),
        format!("metadata/{v}.{bin}.json"),
        format!("metadata/{snapshot}.snapshot.json"),
        "metadata/timestamp.json".to_owned(),
        "metadata/snapshot.json".to_owned(),
    ]);
    for blob in [&release.package, &release.envelope] {
        expected.insert(format!("targets/{}", site::hashed_target_path(&blob.path, &blob.sha256)));
    }
    expected.extend(expected_catalog_changes(out, &id, &snapshot_doc.signed));
    // The security levels bucket of the plugin (its new release) and the security role.
    let v = snapshot_doc.signed.meta["security.json"].version;
    let levels = trellis_schema::security_level::levels_target(&id);
    let sha = role(out, "security", v).signed.targets[&levels].hashes["sha256"].parse().unwrap();
    expected.insert(format!("targets/{}", site::hashed_target_path(&levels, &sha)));
    expected.insert(format!("metadata/{v}.security.json"));
    expected
}

/// The catalog files a build changing plugin `id` must write, whatever the size of
/// the registry: the head, the plugin's record bucket, the search shard of each of
/// its terms, the listing pages that list it, and the catalog role.
fn expected_catalog_changes(
    out: &Path,
    id: &trellis_schema::PluginId,
    snapshot: &trellis_schema::tuf::Snapshot,
) -> BTreeSet<String> {
    use trellis_schema::catalog;
    let v = snapshot.meta["catalog.json"].version;
    let role = role(out, "catalog", v).signed;
    let file = |target: &str| {
        let sha = role.targets[target].hashes["sha256"].parse().unwrap();
        format!("targets/{}", site::hashed_target_path(target, &sha))
    };
    let bucket = catalog::records_target(catalog::record_bucket(id));
    let records: catalog::RecordBucket =
        serde_json::from_slice(&std::fs::read(out.join(file(&bucket))).unwrap()).unwrap();
    let record = records.records.iter().find(|r| &r.summary.id == id).unwrap();
    let mut targets = BTreeSet::from([catalog::HEAD_TARGET.to_owned(), bucket]);
    for term in record.terms.keys() {
        let key =
            catalog::candidate_keys(term).into_iter().find(|k| role.targets.contains_key(&catalog::shard_target(k)));
        targets.insert(catalog::shard_target(&key.unwrap()));
    }
    for (kind, names) in [
        (catalog::ListingKind::Category, &record.summary.categories),
        (catalog::ListingKind::Tag, &record.summary.tags),
    ] {
        for name in names {
            targets.insert(catalog::page_target(kind, name, 1));
        }
    }
    let mut expected: BTreeSet<String> = targets.iter().map(|t| file(t)).collect();
    expected.insert(format!("metadata/{v}.catalog.json"));
    expected
}

/// The files `after` adds or changes against `before`, leaving out the storefront's
/// (reported apart; tests/storefront.rs checks their set) and the builder's state.
fn changed_besides_storefront(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    report: &BuildReport,
) -> BTreeSet<String> {
    after
        .iter()
        .filter(|(path, bytes)| before.get(*path) != Some(*bytes) && !report.storefront.contains(*path))
        // The builder's state (`_catalog/`): no client reads it, the build does not list it.
        .filter(|(path, _)| !path.starts_with("_catalog/"))
        .map(|(p, _)| p.clone())
        .collect()
}

#[test]
fn adding_one_release_rewrites_only_its_blobs_index_doc_catalog_documents_bins_snapshot_and_timestamp() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let before = tree(out.path());
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "1.2.0"), &fixture::key(1)).unwrap();
    let report = build(registry.path(), out.path()).unwrap();
    let after = tree(out.path());
    let changed = changed_besides_storefront(&before, &after, &report);
    assert_eq!(changed, expected_changes(out.path(), "acme.clock", "1.2.0", 2));
    assert_eq!(report.written.iter().cloned().collect::<BTreeSet<_>>(), changed);
    assert!(before.keys().all(|p| after.contains_key(p)), "nothing is deleted");
}

#[test]
fn incremental_scope_gives_the_same_site_as_a_full_build() {
    let registry = registry();
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(registry.path(), full.path()).unwrap();
    build(registry.path(), partial.path()).unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    build(registry.path(), full.path()).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope, now()).unwrap();
    assert_eq!(report.plugins, 1);
    assert_eq!(report.catalog, CatalogWork::Incremental, "the catalog is redone from the published documents");
    assert_eq!(tree(full.path()), tree(partial.path()));

    // A plugin the catalog has never listed, with the search shard layout state torn:
    // the same site, the state written again.
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.brandnew", "1.0.0"), &fixture::key(1)).unwrap();
    build(registry.path(), full.path()).unwrap();
    std::fs::write(partial.path().join("_catalog/shards.json"), b"{\"format\":1,\"split\":{\"ac\":[1,").unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.brandnew".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope, now()).unwrap();
    assert_eq!(report.catalog, CatalogWork::Incremental);
    assert_eq!(tree(full.path()), tree(partial.path()));

    // The state lost.
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.3.0"), &fixture::key(1)).unwrap();
    build(registry.path(), full.path()).unwrap();
    std::fs::remove_file(partial.path().join("_catalog/shards.json")).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope, now()).unwrap();
    assert_eq!(report.catalog, CatalogWork::Incremental);
    assert_eq!(tree(full.path()), tree(partial.path()));
}

#[test]
fn an_incremental_build_of_one_release_writes_only_the_catalog_documents_listing_it() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let before = tree(out.path());
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "1.2.0"), &fixture::key(1)).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), out.path(), scope, now()).unwrap();
    assert_eq!(report.catalog, CatalogWork::Incremental);
    let after = tree(out.path());
    let changed = changed_besides_storefront(&before, &after, &report);
    assert_eq!(changed, expected_changes(out.path(), "acme.clock", "1.2.0", 2));
    assert_eq!(report.written.iter().cloned().collect::<BTreeSet<_>>(), changed);
}

#[test]
fn incremental_scope_refuses_to_start_a_site() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let error = build_registry(&Registry::open(registry.path()).unwrap(), out.path(), scope, now()).unwrap_err();
    assert!(error.to_string().contains("run a full build"), "{error}");
    assert!(tree(out.path()).is_empty());
}

#[test]
fn fetches_a_remote_package_checks_it_and_indexes_it() {
    let registry = registry();
    let hosted = tempfile::tempdir().unwrap();
    let local =
        fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "4.0.0"), &fixture::key(1)).unwrap();
    let bytes = std::fs::read(&local).unwrap();
    std::fs::rename(&local, hosted.path().join("clock-4.0.0.zip")).unwrap();
    let server = trellis_index::serve::Server::start(hosted.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let descriptor = registry.path().join("releases/acme.clock/4.0.0.remote.json");
    let write = |sha: String| {
        let text = format!(r#"{{"url":"{}clock-4.0.0.zip","sha256":"{sha}","size":{}}}"#, server.url(), bytes.len());
        std::fs::write(&descriptor, text).unwrap();
    };
    write(trellis_schema::Sha256::of(b"other").to_hex());
    let out = tempfile::tempdir().unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("4.0.0.remote.json") && message.contains("clock-4.0.0.zip"), "{message}");

    write(trellis_schema::Sha256::of(&bytes).to_hex());
    let message = refused(registry.path(), out.path());
    assert!(message.contains("only https URLs are fetched"), "{message}");
    let loopback =
        Registry::open(registry.path()).unwrap().with_remote_http(trellis_index::registry::RemoteHttp::AllowLoopback);
    let report = build_registry(&loopback, out.path(), Scope::Full, now()).unwrap();
    assert_eq!(report.releases, 4);
    let cached = registry.path().join(format!(".cache/packages/{}.zip", trellis_schema::Sha256::of(&bytes)));
    assert_eq!(std::fs::read(cached).unwrap(), bytes);
    let published =
        walkdir::WalkDir::new(out.path().join("targets/plugins")).into_iter().map(|e| e.unwrap()).any(|e| {
            e.file_name().to_string_lossy().ends_with("acme.clock-4.0.0.zip")
                && std::fs::read(e.path()).unwrap() == bytes
        });
    assert!(published, "the fetched package is published as a blob");
}

/// Runs a build expected to fail and checks the previous site is byte-for-byte intact.
fn refused(registry: &Path, out: &Path) -> String {
    let before = tree(out);
    let error = build(registry, out).unwrap_err();
    assert_eq!(tree(out), before, "a refused build must leave the site untouched");
    error.to_string()
}

#[test]
fn refuses_other_bytes_for_a_published_version() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let mut spec = ReleaseSpec::new("acme.clock", "1.0.0");
    spec.payload = b"different code".to_vec();
    std::fs::remove_file(registry.path().join("releases/acme.clock/1.0.0.zip")).unwrap();
    fixture::add_release(registry.path(), &spec, &fixture::key(1)).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("acme.clock-1.0.0.zip") && message.contains("immutable"), "{message}");
}

#[test]
fn refuses_a_removed_release() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    for ext in ["zip", "zip.dsse"] {
        std::fs::remove_file(registry.path().join(format!("releases/acme.clock/1.0.0.{ext}"))).unwrap();
    }
    let message = refused(registry.path(), out.path());
    assert!(message.contains("acme.clock-1.0.0") && message.contains("yanked"), "{message}");
}

#[test]
fn refuses_a_removed_plugin() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    std::fs::remove_dir_all(registry.path().join("releases/acme.alarm")).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("acme.alarm.json was published") && message.contains("yanked"), "{message}");
}

#[test]
fn bins_sign_index_docs_and_no_blob() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let mut signed = Vec::new();
    for bin in ["bin-0", "bin-1", "bin-2", "bin-3"] {
        signed.extend(role(out.path(), bin, 1).signed.targets.into_keys());
    }
    signed.sort();
    let mut expected: Vec<String> =
        ["acme.alarm", "acme.clock"].iter().map(|id| site::index_target(&id.parse().unwrap())).collect();
    expected.sort();
    assert_eq!(signed, expected);
    let bins = role(out.path(), "bins", 1);
    let top = role(out.path(), "targets", 1);
    let delegation = top.signed.delegations.unwrap().roles.unwrap().into_iter().find(|r| r.name == "bins").unwrap();
    assert_eq!(delegation.paths, Some(vec!["index/*/*".to_owned()]));
    assert!(bins.signed.targets.is_empty());
}

#[test]
fn refuses_a_dependency_on_an_unknown_plugin() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let spec = ReleaseSpec::new("acme.alarm", "0.3.0").depends_on("acme.ghost", "^1");
    fixture::add_release(registry.path(), &spec, &fixture::key(1)).unwrap();
    let message = refused(registry.path(), out.path());
    insta::assert_snapshot!(message, @"acme.alarm 0.3.0 depends on acme.ghost, which is not in this registry; publish acme.ghost first or drop the dependency");
}

#[test]
fn revoking_a_key_lists_every_release_it_alone_signed_until_each_is_resigned_yanked_or_blocked() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let (old, new) = (fixture::key(1), fixture::key(2));
    let path = registry.path().join("publishers/acme.json");
    let chain: PublisherChain = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let change = RecordChange {
        add: vec![new.clone()],
        revoke: vec![(old.key_id().clone(), "laptop stolen".into())],
        revoked_at: "2026-10-01".into(),
        ..RecordChange::default()
    };
    let chain = trellis_index::publisher::update(&chain, std::slice::from_ref(&old), change).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&chain).unwrap()).unwrap();

    let message = refused(registry.path(), out.path());
    assert!(message.contains("3 release(s) are signed only by revoked or removed keys"), "{message}");
    for release in ["acme.clock 1.0.0", "acme.clock 1.1.0", "acme.alarm 0.1.0"] {
        assert!(message.contains(release), "{release} not listed: {message}");
    }
    assert!(message.contains("revoked on 2026-10-01 (laptop stolen)") && message.contains("--resign"), "{message}");

    // Re-sign two, yank the third: the build goes through.
    let published = index_doc(out.path(), "acme.clock");
    for version in ["1.0.0", "1.1.0"] {
        let package = registry.path().join(format!("releases/acme.clock/{version}.zip"));
        trellis_index::sign::resign_package(&package, &new).unwrap();
    }
    let alarm = ("acme.alarm".parse().unwrap(), "0.1.0".parse().unwrap());
    operator::yank(&Registry::open(registry.path()).unwrap(), &alarm.0, &alarm.1, "signed by a leaked key").unwrap();
    build(registry.path(), out.path()).unwrap();
    let republished = index_doc(out.path(), "acme.clock");
    for (was, is) in published.releases.iter().zip(&republished.releases) {
        assert_eq!((&was.package, was.manifest_sha256), (&is.package, is.manifest_sha256), "content is pinned");
        assert_ne!(was.envelope.sha256, is.envelope.sha256, "the envelope was replaced");
    }
    assert!(index_doc(out.path(), "acme.alarm").releases[0].yanked, "the yanked release is kept, marked");
    let report = trellis_index::verify::verify(&trellis_index::verify::Source::Dir(out.path().to_owned()), None, now());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
}

#[test]
fn a_changed_envelope_over_another_manifest_is_still_immutable() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let envelope = registry.path().join("releases/acme.clock/1.0.0.zip.dsse");
    let mut dsse: trellis_schema::dsse::Envelope = serde_json::from_slice(&std::fs::read(&envelope).unwrap()).unwrap();
    let mut manifest: trellis_schema::manifest::ReleaseManifest =
        serde_json::from_slice(&dsse.payload_bytes().unwrap()).unwrap();
    manifest.permissions.clear();
    manifest.host.id = "other-host".into();
    dsse = trellis_schema::dsse::Envelope::sign(
        trellis_schema::dsse::RELEASE_PAYLOAD_TYPE,
        &trellis_index::sign::manifest_payload(&manifest).unwrap(),
        &[&fixture::key(1)],
    );
    std::fs::write(&envelope, serde_json::to_vec(&dsse).unwrap()).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("1.0.0"), "{message}");
}

#[test]
fn refuses_a_publisher_record_that_does_not_extend_the_published_chain() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    // Someone with the online keys only replaces acme's record with their own v1.
    let attacker = fixture::key(9);
    let path = registry.path().join("publishers/acme.json");
    let forged = fixture::publisher_chain("acme", &[&attacker]);
    std::fs::write(&path, serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(
        message.contains("publisher acme") && message.contains("does not keep the 1 published version"),
        "{message}"
    );
    // A caller making its own input (no `build_registry` checked it first): the site
    // build refuses it the same.
    let opened = Registry::open(registry.path()).unwrap();
    let known = opened.plugin_ids().unwrap();
    let input = trellis_index::build::BuildInput::for_registry(
        &opened,
        Vec::new(),
        std::sync::Arc::new(known.into()),
        Scope::Plugins(BTreeSet::new()),
        now(),
    );
    let error = build::build(input.unwrap(), out.path()).unwrap_err().to_string();
    assert!(error.contains("does not keep the 1 published version"), "{error}");
    // Appending a version signed by their key instead: refused when the registry is read.
    let mut chain = fixture::publisher_chain("acme", &[&fixture::key(1)]);
    let mut next = chain.records[0].signed.clone();
    next.version = 2;
    next.keys.insert(attacker.key_id().clone(), attacker.public().clone());
    chain.records.push(SignedRecord::sign(next, &[&attacker]).unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    let error = Registry::open(registry.path()).unwrap_err().to_string();
    assert!(
        error.contains("publishers/acme.json") && error.contains("version 2 is not signed by 1 of version 1's keys"),
        "{error}"
    );
    // Dropping the record is refused too.
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_dir_all(registry.path().join("releases")).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("never removed"), "{message}");
}

#[test]
fn a_recovery_version_signed_by_the_targets_key_extends_the_chain() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let path = registry.path().join("publishers/acme.json");
    let chain: PublisherChain = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let targets = trellis_index::keyfile::read(&registry.path().join("keys/targets.key")).unwrap();
    let new = fixture::key(3);
    let chain =
        trellis_index::publisher::recover(&chain, &[targets], std::slice::from_ref(&new), 1, "lost", "2026-11-01")
            .unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    // Every release signed by the lost key must now be re-signed by the new one.
    for (id, version) in [("acme.clock", "1.0.0"), ("acme.clock", "1.1.0"), ("acme.alarm", "0.1.0")] {
        let package = registry.path().join(format!("releases/{id}/{version}.zip"));
        trellis_index::sign::resign_package(&package, &new).unwrap();
    }
    build(registry.path(), out.path()).unwrap();
    // A "recovery" signed by any other key is refused.
    let mut chain: PublisherChain = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    chain.records.pop();
    let chain = trellis_index::publisher::recover(&chain, &[fixture::key(8)], &[new], 1, "lost", "2026-11-01").unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    let error = Registry::open(registry.path()).unwrap_err().to_string();
    assert!(error.contains("recovery signers (found 0)"), "{error}");
}

fn index_doc(site: &Path, id: &str) -> IndexDoc {
    let target = site::index_target(&id.parse().unwrap());
    let bins: Vec<_> = walkdir::WalkDir::new(site.join("targets"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(&format!(".{id}.json")))
        .collect();
    let _ = target;
    let newest = bins.into_iter().max_by_key(|e| e.metadata().unwrap().modified().unwrap()).unwrap();
    serde_json::from_slice(&std::fs::read(newest.path()).unwrap()).unwrap()
}

#[test]
fn refuses_a_plugin_of_an_unknown_publisher_naming_the_file() {
    let registry = registry();
    let spec = ReleaseSpec::new("evil.clock", "1.0.0");
    fixture::add_release(registry.path(), &spec, &fixture::key(9)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("evil.clock/1.0.0.zip.dsse") && message.contains("publishers/evil.json"), "{message}");
}

#[test]
fn refuses_a_package_that_is_not_the_signed_one() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let path =
        fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "2.0.0"), &fixture::key(1)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0);
    std::fs::write(&path, bytes).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(
        message.contains("acme.clock/2.0.0.zip") && message.contains("does not match the signed manifest"),
        "{message}"
    );
}

#[test]
fn refuses_a_package_that_fails_lint() {
    let registry = registry();
    let spec = ReleaseSpec::new("acme.clock", "3.0.0");
    let scratch = tempfile::tempdir().unwrap();
    let (_, mut manifest) = spec.pack(&scratch.path().join("p.zip")).unwrap();
    let zip = fixture::zip_files(&[("README".into(), b"no plugin.json".to_vec())]);
    manifest.package =
        trellis_schema::manifest::PackageDigest { sha256: trellis_schema::Sha256::of(&zip), size: zip.len() as u64 };
    let dir = registry.path().join("releases/acme.clock");
    std::fs::write(dir.join("3.0.0.zip"), &zip).unwrap();
    std::fs::write(dir.join("3.0.0.zip.dsse"), fixture::sign_manifest(&manifest, &[&fixture::key(1)])).unwrap();
    let out = tempfile::tempdir().unwrap();
    let error = build(registry.path(), out.path()).unwrap_err();
    assert!(
        matches!(&error, BuildError::Registry(e) if matches!(&**e, RegistryError::Release(r) if matches!(**r, ReleaseError::Lint { .. }))),
        "{error}"
    );
    assert!(error.to_string().contains("3.0.0.zip: package of acme.clock 3.0.0 fails lint"), "{error}");
}

#[test]
fn refuses_a_corrupt_key_naming_the_file() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    std::fs::write(registry.path().join("keys/bins.key"), "{ not a key").unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "1.3.0"), &fixture::key(1)).unwrap();
    let message = refused(registry.path(), out.path());
    assert!(message.contains("keys/bins.key"), "{message}");
}

#[test]
fn refuses_to_build_under_an_expiring_root() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let late = "2027-10-20T00:00:00Z".parse().unwrap();
    let before = tree(out.path());
    let error = build_registry(&Registry::open(registry.path()).unwrap(), out.path(), Scope::Full, late).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @"root version 1 expires at 2027-11-01T00:00:00Z, before the snapshot signed now would (2027-11-19T00:00:00Z); sign a new root first: trellis-index rotate REGISTRY root");
    assert_eq!(tree(out.path()), before);
}

#[test]
fn yank_republishes_only_the_plugin_index_doc_and_marks_the_release() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let reg = Registry::open(registry.path()).unwrap();
    operator::yank(&reg, &"acme.clock".parse().unwrap(), &"1.0.0".parse().unwrap(), "crashes on start").unwrap();
    let report = build(registry.path(), out.path()).unwrap();
    let alias = format!("targets/{}", site::index_alias_path(&"acme.clock".parse().unwrap()));
    let index_doc: Vec<&String> = report
        .written
        .iter()
        .filter(|p| p.starts_with("targets/") && !p.starts_with("targets/catalog/") && **p != alias)
        .collect();
    assert_eq!(index_doc.len(), 1, "{:?}", report.written);
    assert!(report.written.contains(&alias), "the alias follows its doc: {:?}", report.written);
    assert_eq!(std::fs::read(out.path().join(&alias)).unwrap(), std::fs::read(out.path().join(index_doc[0])).unwrap());
    let doc: IndexDoc = serde_json::from_slice(&std::fs::read(out.path().join(index_doc[0])).unwrap()).unwrap();
    assert_eq!(doc.releases.iter().map(|r| r.yanked).collect::<Vec<_>>(), [true, false]);
    let reg = Registry::open(registry.path()).unwrap();
    assert!(operator::yank(&reg, &"acme.clock".parse().unwrap(), &"1.0.0".parse().unwrap(), "").is_err());
    operator::unyank(&reg, &"acme.clock".parse().unwrap(), &"1.0.0".parse().unwrap()).unwrap();
}

#[test]
fn rollout_is_kept_in_rollouts_json_and_published_in_the_index_doc() {
    use trellis_schema::index::Percent;

    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    let (clock, newest) = ("acme.clock".parse().unwrap(), "1.1.0".parse().unwrap());
    let report = build(registry.path(), out.path()).unwrap();
    let doc_name = site::index_target(&clock).rsplit('/').next().unwrap().to_owned();
    let first_doc =
        report.written.iter().find(|p| p.starts_with("targets/") && p.ends_with(&doc_name)).unwrap().clone();
    let percent = |p| Percent::new(p).unwrap();
    let reg = Registry::open(registry.path()).unwrap();
    assert_eq!(operator::rollout(&reg, &clock, &newest, percent(10)).unwrap(), None);
    let reg = Registry::open(registry.path()).unwrap();
    assert_eq!(operator::rollout(&reg, &clock, &newest, percent(25)).unwrap(), Some(percent(10)));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.path().join("rollouts.json")).unwrap()).unwrap();
    assert_eq!(written, serde_json::json!({"rollouts": [{"id": "acme.clock", "version": "1.1.0", "percent": 25}]}));

    let report = build(registry.path(), out.path()).unwrap();
    let alias = format!("targets/{}", site::index_alias_path(&clock));
    let docs: Vec<&String> = report.written.iter().filter(|p| p.starts_with("targets/") && **p != alias).collect();
    assert_eq!(docs.len(), 1, "only the plugin's index doc (and its alias) changes: {:?}", report.written);
    let doc: IndexDoc = serde_json::from_slice(&std::fs::read(out.path().join(docs[0])).unwrap()).unwrap();
    assert_eq!(doc.releases.iter().map(|r| r.rollout).collect::<Vec<_>>(), [None, Some(percent(25))]);
    let raw = String::from_utf8(std::fs::read(out.path().join(docs[0])).unwrap()).unwrap();
    assert_eq!(raw.matches("\"rollout\"").count(), 1, "absent rollouts are not written: {raw}");

    // 100% ends the rollout: the entry goes and the index doc is the first one again.
    let reg = Registry::open(registry.path()).unwrap();
    assert_eq!(operator::rollout(&reg, &clock, &newest, Percent::ALL).unwrap(), Some(percent(25)));
    assert_eq!(Registry::open(registry.path()).unwrap().rollouts.rollouts, []);
    build(registry.path(), out.path()).unwrap();
    // The hash bin re-signed last lists the first index doc's hash again.
    let bins = tree(&out.path().join("metadata"));
    let newest_bin = bins
        .iter()
        .filter(|(name, _)| name.contains(".bin-"))
        .max_by_key(|(name, _)| name.split('.').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_default());
    let (_, bin) = newest_bin.unwrap();
    let first_hash = first_doc.rsplit('/').next().unwrap().split('.').next().unwrap();
    assert!(String::from_utf8_lossy(bin).contains(first_hash), "the published index doc is the one without rollout");

    let missing = operator::rollout(&reg, &clock, &"9.9.9".parse().unwrap(), percent(5)).unwrap_err();
    assert!(missing.to_string().contains("acme.clock 9.9.9 is not in this registry"), "{missing}");
}

#[test]
fn a_rollout_above_100_percent_in_rollouts_json_is_refused_naming_the_file() {
    let registry = registry();
    std::fs::write(
        registry.path().join("rollouts.json"),
        r#"{"rollouts": [{"id": "acme.clock", "version": "1.1.0", "percent": 150}]}"#,
    )
    .unwrap();
    let error = Registry::open(registry.path()).unwrap_err().to_string();
    assert!(error.contains("rollouts.json") && error.contains("percentage 150 is above 100"), "{error}");
}

#[test]
fn block_republishes_only_the_blocklist_and_the_security_role() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let entry = trellis_schema::blocklist::BlockEntry {
        id: "acme.clock".parse().unwrap(),
        versions: Some("<1.1".parse().unwrap()),
        sha256: None,
        reason: "exfiltrates files".into(),
        severity: trellis_schema::blocklist::Severity::Critical,
        advisory: None,
        added: "2026-11-01T00:00:00Z".into(),
    };
    operator::block(&Registry::open(registry.path()).unwrap(), entry.clone()).unwrap();
    assert!(operator::block(&Registry::open(registry.path()).unwrap(), entry).is_err(), "double block is refused");
    let report = build(registry.path(), out.path()).unwrap();
    let names: Vec<&str> = report.written.iter().map(|p| p.rsplit('/').next().unwrap()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".blocklist.json")), "{names:?}");
    assert!(
        names.contains(&"2.security.json") && names.contains(&"2.snapshot.json") && names.contains(&"timestamp.json")
    );
    assert!(names.contains(&"snapshot.json"), "the unversioned copy follows the snapshot: {names:?}");
    let file = report.written.iter().find(|p| p.ends_with(".blocklist.json")).unwrap();
    let list: trellis_schema::blocklist::Blocklist =
        serde_json::from_slice(&std::fs::read(out.path().join(file)).unwrap()).unwrap();
    assert!(list.find(&"acme.clock".parse().unwrap(), &"1.0.0".parse().unwrap(), None).is_some());
    let removed =
        operator::unblock(&Registry::open(registry.path()).unwrap(), &"acme.clock".parse().unwrap(), None).unwrap();
    assert_eq!(removed, 1);
}

#[test]
fn timestamp_command_resigns_only_the_timestamp() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let before = tree(out.path());
    let later = "2026-11-02T00:00:00Z".parse().unwrap();
    let version = operator::timestamp(&Registry::open(registry.path()).unwrap(), out.path(), later).unwrap();
    assert_eq!(version, 2);
    let after = tree(out.path());
    let changed: Vec<&String> = after.keys().filter(|p| before.get(*p) != after.get(*p)).collect();
    assert_eq!(changed, ["metadata/timestamp.json"]);
    let ts: Envelope<trellis_schema::tuf::Timestamp> =
        serde_json::from_slice(&after["metadata/timestamp.json"]).unwrap();
    assert_eq!(ts.signed.expires, "2026-11-04T00:00:00Z");
}

#[test]
fn rotating_the_bins_key_resigns_every_bin_and_the_targets_delegation() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let reg = Registry::open(registry.path()).unwrap();
    operator::rotate(&reg, operator::RotatedRole::Bins, now()).unwrap();
    let report = build(registry.path(), out.path()).unwrap();
    for name in ["2.targets.json", "2.bins.json", "2.bin-0.json", "2.bin-3.json"] {
        assert!(report.written.contains(&format!("metadata/{name}")), "{name} not in {:?}", report.written);
    }
    // The unversioned copies follow the new snapshot and top-level targets.
    let snapshot = format!("{}.snapshot.json", report.snapshot_version);
    for (copy, versioned) in [("targets.json", "2.targets.json"), ("snapshot.json", snapshot.as_str())] {
        assert!(report.written.contains(&format!("metadata/{copy}")), "{copy} not in {:?}", report.written);
        let read = |name: &str| std::fs::read(out.path().join("metadata").join(name)).unwrap();
        assert_eq!(read(copy), read(versioned), "{copy}");
    }
    assert!(registry.path().join("keys/retired/bins.key").exists());
}

#[test]
fn rotating_root_signs_root_two_with_old_and_new_keys() {
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let old: Envelope<trellis_schema::tuf::Root> =
        serde_json::from_slice(&std::fs::read(registry.path().join("root/1.root.json")).unwrap()).unwrap();
    let reg = Registry::open(registry.path()).unwrap();
    operator::rotate(&reg, operator::RotatedRole::Root, now()).unwrap();
    let reg = Registry::open(registry.path()).unwrap();
    let new = reg.root().unwrap();
    assert_eq!(new.signed.version, 2);
    let old_root_ids = &old.signed.roles[&trellis_schema::tuf::TopRole::Root].keyids;
    let signed_by: BTreeSet<_> = new.signatures.iter().map(|s| s.keyid.clone()).collect();
    assert_eq!(signed_by.len(), 4, "two old and two new root keys sign");
    assert!(old_root_ids.iter().all(|id| signed_by.contains(id)));
    let report = build(registry.path(), out.path()).unwrap();
    assert!(report.written.contains(&"metadata/2.root.json".to_owned()), "{:?}", report.written);
}

#[test]
fn featured_plugins_lead_the_catalog_head_and_an_unknown_one_is_refused_with_the_site_unchanged() {
    use trellis_schema::catalog;
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(registry.path().join("catalog")).unwrap();
    let featured = registry.path().join(trellis_index::registry::FEATURED_FILE);
    std::fs::write(&featured, r#"{"featured": ["acme.clock"]}"#).unwrap();
    build(registry.path(), out.path()).unwrap();
    let catalog_role = role(out.path(), "catalog", 1).signed;
    let sha = catalog_role.targets[catalog::HEAD_TARGET].hashes["sha256"].parse().unwrap();
    let bytes = std::fs::read(site::target_file(out.path(), catalog::HEAD_TARGET, &sha)).unwrap();
    let head = catalog::parse_head(&bytes, &catalog::CatalogLimits::default()).unwrap();
    assert_eq!(head.featured.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["acme.clock"]);
    assert!(head.trending.is_empty(), "trending waits for download statistics");
    assert_eq!(head.plugins as usize, head.new.len());

    let before = tree(out.path());
    std::fs::write(&featured, r#"{"featured": ["acme.clock", "acme.ghost"]}"#).unwrap();
    let error = build(registry.path(), out.path()).unwrap_err().to_string();
    assert!(error.contains("featured.json features acme.ghost, which this registry does not list"), "{error}");
    assert_eq!(tree(out.path()), before);
}

#[test]
fn visible_reviews_rate_a_plugin_in_the_catalog_and_a_refused_review_refuses_the_build() {
    use trellis_schema::catalog;
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    let write_review = |author: &str, stars: u32, state: &str| {
        let dir = registry.path().join("reviews/acme.clock");
        std::fs::create_dir_all(&dir).unwrap();
        let review = serde_json::json!({
            "stars": stars, "text": "Solid.", "version": "1.1.0", "date": "2026-10-20",
            "author": author, "state": state
        });
        std::fs::write(dir.join(format!("{author}.json")), review.to_string()).unwrap();
    };
    write_review("octocat", 5, "visible");
    write_review("hubot", 4, "visible");
    write_review("troll", 1, "hidden");
    build(registry.path(), out.path()).unwrap();
    let catalog_role = role(out.path(), "catalog", 1).signed;
    let sha = catalog_role.targets[catalog::HEAD_TARGET].hashes["sha256"].parse().unwrap();
    let bytes = std::fs::read(site::target_file(out.path(), catalog::HEAD_TARGET, &sha)).unwrap();
    let head = catalog::parse_head(&bytes, &catalog::CatalogLimits::default()).unwrap();
    let clock = head.new.iter().find(|s| s.id.as_str() == "acme.clock").unwrap();
    let rating = catalog::Rating { tenths: 45, count: 2, histogram: [0, 0, 0, 1, 1], recent_tenths: Some(45) };
    assert_eq!(clock.rating, Some(rating), "the hidden review is left out");
    let alarm = head.new.iter().find(|s| s.id.as_str() == "acme.alarm").unwrap();
    assert_eq!(alarm.rating, None);

    let before = tree(out.path());
    write_review("octocat", 6, "visible");
    let error = build(registry.path(), out.path()).unwrap_err().to_string();
    assert!(error.contains("octocat.json") && error.contains("stars is 6; give 1 to 5"), "{error}");
    assert_eq!(tree(out.path()), before, "nothing is written");
}

/// `stats/downloads.json` with `id` downloaded `n` times (version 1.0.0) on each day.
fn write_stats(registry: &Path, rows: &[(&str, &str, u64)]) {
    let mut downloads: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> = BTreeMap::new();
    for (id, day, n) in rows {
        *downloads
            .entry((*id).into())
            .or_default()
            .entry("1.0.0".into())
            .or_default()
            .entry((*day).into())
            .or_default() += n;
    }
    let counts = serde_json::json!({ "downloads": downloads, "deltas": {}, "update_checks": {} });
    std::fs::create_dir_all(registry.join("stats")).unwrap();
    std::fs::write(registry.join("stats/downloads.json"), counts.to_string()).unwrap();
}

fn head(site: &Path) -> trellis_schema::catalog::CatalogHead {
    use trellis_schema::catalog;
    let catalog_role = role_latest(site, "catalog").signed;
    let sha = catalog_role.targets[catalog::HEAD_TARGET].hashes["sha256"].parse().unwrap();
    let bytes = std::fs::read(site::target_file(site, catalog::HEAD_TARGET, &sha)).unwrap();
    catalog::parse_head(&bytes, &catalog::CatalogLimits::default()).unwrap()
}

/// The newest version of role `name` in `site`.
fn role_latest(site: &Path, name: &str) -> Envelope<Targets> {
    let version = (1..).take_while(|v| site::metadata_file(site, name, *v).exists()).last().unwrap();
    role(site, name, version)
}

/// `now()` and `n` days.
fn day(n: i64) -> jiff::Timestamp {
    now().checked_add(jiff::SignedDuration::from_hours(24 * n)).unwrap()
}

/// On day `n`, a full build into `full` and an incremental one of `only` into
/// `partial`, which must leave the same tree; the incremental build's report.
fn build_both_on(registry: &Path, full: &Path, partial: &Path, only: &[&str], n: i64) -> BuildReport {
    build_registry(&Registry::open(registry).unwrap(), full, Scope::Full, day(n)).unwrap();
    let scope = Scope::Plugins(only.iter().map(|id| id.parse().unwrap()).collect());
    let report = build_registry(&Registry::open(registry).unwrap(), partial, scope, day(n)).unwrap();
    assert_eq!(tree(full), tree(partial), "day {n}");
    report
}

#[test]
fn download_statistics_publish_totals_recent_downloads_and_trending_and_move_plugins_an_incremental_build_does_not_load()
 {
    let registry = registry();
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // now() is 2026-11-01: the trending window is 10-26..=11-01, its baseline 10-05..=10-25.
    write_stats(
        registry.path(),
        &[
            ("acme.clock", "2026-10-10", 300),
            ("acme.clock", "2026-10-30", 40),
            ("acme.alarm", "2026-10-31", 12),
            ("acme.alarm", "2026-09-01", 1000),
            ("acme.unlisted", "2026-10-31", 99),
        ],
    );
    build(registry.path(), full.path()).unwrap();
    build(registry.path(), partial.path()).unwrap();
    let head = head(full.path());
    let clock = head.new.iter().find(|s| s.id.as_str() == "acme.clock").unwrap();
    assert_eq!((clock.downloads, clock.recent_downloads), (340, 340));
    let alarm = head.new.iter().find(|s| s.id.as_str() == "acme.alarm").unwrap();
    assert_eq!((alarm.downloads, alarm.recent_downloads), (1012, 12), "September is outside the 30 days");
    // clock: 40 in the window against 300 before, shrinking; alarm: 12 against 0;
    // a plugin the catalog does not list never trends.
    let trending: Vec<&str> = head.trending.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(trending, ["acme.alarm"]);

    // Listings put the most downloaded first.
    let catalog_role = role_latest(full.path(), "catalog").signed;
    let page_target =
        trellis_schema::catalog::page_target(trellis_schema::catalog::ListingKind::Category, "utility", 1);
    let sha = catalog_role.targets[&page_target].hashes["sha256"].parse().unwrap();
    let bytes = std::fs::read(site::target_file(full.path(), &page_target, &sha)).unwrap();
    let page = trellis_schema::catalog::parse_page(&page_target, &bytes, &Default::default()).unwrap();
    let order: Vec<&str> = page.plugins.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["acme.alarm", "acme.clock"]);

    // New downloads and a release of one plugin: an incremental build of that plugin
    // also redoes the plugins whose figures moved, and matches a full one.
    write_stats(
        registry.path(),
        &[("acme.clock", "2026-10-10", 300), ("acme.clock", "2026-10-31", 500), ("acme.alarm", "2026-10-31", 12)],
    );
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    build(registry.path(), full.path()).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope, now()).unwrap();
    assert_eq!(report.catalog, CatalogWork::Incremental, "only acme.clock's figures moved");
    assert_eq!(tree(full.path()), tree(partial.path()));
    let head = self::head(partial.path());
    let clock = head.new.iter().find(|s| s.id.as_str() == "acme.clock").unwrap();
    assert_eq!(clock.downloads, 800, "acme.clock was not rebuilt, its figures still moved");
    let trending: Vec<&str> = head.trending.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(trending, ["acme.alarm", "acme.clock"], "growth 12·3/3 = 12 beats 500·3/303 ≈ 5");
}

#[test]
fn a_registry_with_download_statistics_built_incrementally_day_after_day_equals_full_builds() {
    let registry = registry();
    let key = fixture::key(1);
    for id in ["acme.timer", "acme.tide", "acme.world"] {
        fixture::add_release(registry.path(), &ReleaseSpec::new(id, "1.0.0"), &key).unwrap();
    }
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let build_both = |n: i64| build_both_on(registry.path(), full.path(), partial.path(), &["acme.world"], n);
    let figures = |id: &str| {
        let head = head(partial.path());
        let summary = head.new.iter().find(|s| s.id.as_str() == id).unwrap().clone();
        (summary.downloads, summary.recent_downloads)
    };
    let trending = || head(partial.path()).trending.iter().map(|s| s.id.as_str().to_owned()).collect::<Vec<_>>();
    // 11-01: clock's 50 of 10-03 are the oldest day of its 30; tide's are older.
    let mut rows = vec![
        ("acme.clock", "2026-10-03", 50),
        ("acme.alarm", "2026-10-20", 7),
        ("acme.timer", "2026-10-31", 9),
        ("acme.tide", "2026-09-20", 4),
    ];
    write_stats(registry.path(), &rows);
    build_registry(&Registry::open(registry.path()).unwrap(), full.path(), Scope::Full, day(0)).unwrap();
    build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), Scope::Full, day(0)).unwrap();
    assert!(partial.path().join("_catalog/figures.json").exists());
    assert_eq!(figures("acme.clock"), (50, 50));
    assert_eq!(trending(), ["acme.timer"], "alarm's 7 are in the baseline, not the last 7 days");

    // 11-02, no new log: 10-03 leaves clock's 30 days, nothing else moves.
    let report = build_both(1);
    assert_eq!(report.catalog, CatalogWork::Incremental);
    assert_eq!(figures("acme.clock"), (50, 0), "acme.world was built, acme.clock's window moved");

    // 11-03: a new log day (tide wakes up and trends, timer gets more) and a new
    // release of the plugin the build loads.
    rows.extend([("acme.tide", "2026-11-02", 30), ("acme.timer", "2026-11-02", 3)]);
    write_stats(registry.path(), &rows);
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.world", "1.1.0"), &key).unwrap();
    let report = build_both(2);
    assert_eq!(report.catalog, CatalogWork::Incremental);
    assert_eq!((figures("acme.tide"), figures("acme.timer")), ((34, 30), (12, 12)));
    assert_eq!(trending(), ["acme.tide", "acme.timer"], "30 against 0 grows faster than 12 against 0");

    // 11-04: the state is lost (an older builder, a copied site): the catalog is
    // redone from every record once, and the state with it.
    std::fs::remove_file(partial.path().join("_catalog/figures.json")).unwrap();
    rows.push(("acme.world", "2026-11-03", 6));
    write_stats(registry.path(), &rows);
    let report = build_both(3);
    assert_eq!(report.catalog, CatalogWork::Full);

    // 11-05..11-08: days pass and logs come in; the incremental path is back. By
    // 11-08 timer's 11-02 downloads are all it has in its last 7 days (3: not
    // trending) and alarm's 8 of 11-04 against its 7 of 10-20 make it trend.
    for n in 4..=7 {
        rows.push(("acme.alarm", "2026-11-04", 2));
        write_stats(registry.path(), &rows);
        assert_eq!(build_both(n).catalog, CatalogWork::Incremental, "day {n}");
    }
    assert_eq!(figures("acme.alarm"), (15, 15));
    // Growth 3w/(b+3): tide 90/3, world (6 of 11-03) 18/3, alarm 24/10.
    assert_eq!(trending(), ["acme.tide", "acme.world", "acme.alarm"]);
}

/// `reviews/<id>/<author>.json`, visible, of version `version`.
fn write_review(registry: &Path, id: &str, version: &str, author: &str, stars: u32, date: &str) {
    let dir = registry.join("reviews").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let review = serde_json::json!({
        "stars": stars, "text": "Fine.", "version": version, "date": date, "author": author, "state": "visible"
    });
    std::fs::write(dir.join(format!("{author}.json")), review.to_string()).unwrap();
}

#[test]
fn ratings_whose_recent_window_moves_are_redone_by_incremental_builds_of_other_plugins() {
    let registry = registry();
    let key = fixture::key(1);
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.world", "1.0.0"), &key).unwrap();
    // On 11-01 (`now`) the last 90 days are 08-04..=11-01: clock's 5 stars of 08-10
    // leave them on 11-08; alarm's review of 11-04 is dated ahead and enters then.
    write_review(registry.path(), "acme.clock", "1.0.0", "octocat", 5, "2026-08-10");
    write_review(registry.path(), "acme.clock", "1.1.0", "hubot", 3, "2026-10-20");
    write_review(registry.path(), "acme.alarm", "0.1.0", "octocat", 4, "2026-11-04");
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let build_both = |n: i64| build_both_on(registry.path(), full.path(), partial.path(), &["acme.world"], n);
    let recent = |id: &str| {
        let head = head(partial.path());
        let rating = head.new.iter().find(|s| s.id.as_str() == id).unwrap().rating;
        rating.map(|r| (r.tenths, r.recent_tenths))
    };
    build_registry(&Registry::open(registry.path()).unwrap(), full.path(), Scope::Full, day(0)).unwrap();
    build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), Scope::Full, day(0)).unwrap();
    assert!(partial.path().join("_catalog/ratings.json").exists());
    assert_eq!(recent("acme.clock"), Some((40, Some(40))));
    assert_eq!(recent("acme.alarm"), Some((40, None)), "counted, not yet in the last 90 days");

    // 11-02: nothing moves. 11-04: alarm's review reaches its day.
    build_both(1);
    assert_eq!(recent("acme.alarm"), Some((40, None)));
    build_both(3);
    assert_eq!(recent("acme.alarm"), Some((40, Some(40))), "acme.world was built; acme.alarm's window moved");

    // 11-09, the state lost: the 5 stars of 08-10 left on 11-08, a day no build ran;
    // every review is read once and acme.clock is redone.
    std::fs::remove_file(partial.path().join("_catalog/ratings.json")).unwrap();
    build_both(8);
    assert_eq!(recent("acme.clock"), Some((40, Some(30))));

    // A stale state (another site's snapshot) is not trusted either.
    write_review(registry.path(), "acme.clock", "1.1.0", "hubot", 1, "2026-10-20");
    std::fs::copy(full.path().join("_catalog/ratings.json"), partial.path().join("_catalog/ratings.json")).unwrap();
    let state = std::fs::read_to_string(partial.path().join("_catalog/ratings.json")).unwrap();
    let stale = state.replacen("\"snapshot\":", "\"snapshot\":1000", 1);
    std::fs::write(partial.path().join("_catalog/ratings.json"), stale).unwrap();
    // (hubot's new review is a change to acme.clock: both builds load it.)
    build_both_on(registry.path(), full.path(), partial.path(), &["acme.world", "acme.clock"], 9);
    assert_eq!(recent("acme.clock"), Some((30, Some(10))));
}

/// The test registry with a second publisher, `bravo` (key 2), and its `bravo.tool 1.0.0`;
/// with bravo's key.
fn registry_with_bravo() -> (tempfile::TempDir, trellis_schema::SigningKey) {
    let registry = registry();
    let bravo = fixture::key(2);
    fixture::add_publisher(registry.path(), "bravo", &bravo).unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new("bravo.tool", "1.0.0"), &bravo).unwrap();
    (registry, bravo)
}

/// A plugin an `--only` build loads without being named (its rating's window moved) is
/// published under its publisher's chain: that chain must extend the published one, as
/// in a full build. An attacker who can commit to the registry source replaces another
/// publisher's keys with their own (a fresh chain, valid from version 1) and adds a
/// release signed by them; a build of some other plugin must not publish it.
#[test]
fn an_only_build_checks_the_chain_of_a_plugin_it_loads_for_its_rating_against_the_published_one() {
    let (registry, bravo) = registry_with_bravo();
    let dir = registry.path();
    // Dated ahead: it enters the last 90 days on 11-04, so bravo.tool is loaded then.
    write_review(dir, "bravo.tool", "1.0.0", "octocat", 4, "2026-11-04");
    let site = tempfile::tempdir().unwrap();
    build_registry(&Registry::open(dir).unwrap(), site.path(), Scope::Full, day(0)).unwrap();

    // A version 1 of their own, trusting the publisher's key (its published releases
    // still verify) and theirs.
    let attacker = fixture::key(3);
    let forged = fixture::publisher_chain("bravo", &[&bravo, &attacker]);
    std::fs::write(dir.join("publishers/bravo.json"), serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("bravo.tool", "6.6.6"), &attacker).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("acme.clock", "1.2.0"), &fixture::key(1)).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]));
    let opened = build::open_registry(dir, site.path(), &scope).unwrap();
    let error = build_registry(&opened, site.path(), scope, day(3)).unwrap_err();
    assert!(matches!(&error, BuildError::PublisherChain { publisher, .. } if publisher == "bravo"), "{error}");
    let alias = format!("targets/{}", site::index_alias_path(&"bravo.tool".parse().unwrap()));
    let doc = std::fs::read_to_string(site.path().join(alias)).unwrap();
    assert!(!doc.contains("6.6.6"), "the attacker's release is not published");
}

/// The check above at the build's own depth: a build input whose registry holds some
/// publishers' chains is refused when it would republish every record (a full build)
/// or publish a plugin of a publisher whose chain it does not hold.
#[test]
fn a_build_from_a_registry_with_some_publishers_chains_refuses_a_full_scope_and_other_publishers_plugins() {
    let (registry, _) = registry_with_bravo();
    let dir = registry.path();
    let site = tempfile::tempdir().unwrap();
    build(dir, site.path()).unwrap();
    let acme = BTreeSet::from(["acme".parse().unwrap()]);
    let opened = Registry::open_incremental(dir, &build::published_chains(site.path()).unwrap(), &acme).unwrap();
    let known: BTreeSet<trellis_schema::PluginId> =
        ["acme.clock", "acme.alarm", "bravo.tool"].iter().map(|id| id.parse().unwrap()).collect();
    let input = |ids: &[&str], scope: Scope| {
        let plugins = ids.iter().map(|id| opened.load_plugin(&id.parse().unwrap()).unwrap()).collect();
        let known = std::sync::Arc::new(build::KnownPlugins::from(known.clone()));
        build::BuildInput::for_registry(&opened, plugins, known, scope, now()).unwrap()
    };
    let only = |ids: &[&str]| Scope::Plugins(ids.iter().map(|id| id.parse().unwrap()).collect());
    let before = tree(site.path());
    for (ids, scope) in
        [(&["acme.clock"][..], Scope::Full), (&["acme.clock", "bravo.tool"], only(&["acme.clock", "bravo.tool"]))]
    {
        let error = build::build(input(ids, scope.clone()), site.path()).unwrap_err();
        assert!(matches!(error, BuildError::Trust(_)), "{ids:?} {scope:?}: {error}");
    }
    assert_eq!(tree(site.path()), before, "nothing written");
    build::build(input(&["acme.clock"], only(&["acme.clock"])), site.path()).unwrap();
}

#[test]
fn visible_reviews_are_published_as_a_signed_catalog_document_and_hidden_ones_never() {
    use trellis_schema::catalog;
    let registry = registry();
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let write_review = |author: &str, stars: u32, state: &str, date: &str, text: &str| {
        let dir = registry.path().join("reviews/acme.clock");
        std::fs::create_dir_all(&dir).unwrap();
        let review = serde_json::json!({
            "stars": stars, "text": text, "version": "1.1.0", "date": date, "author": author, "state": state
        });
        std::fs::write(dir.join(format!("{author}.json")), review.to_string()).unwrap();
    };
    write_review("octocat", 5, "visible", "2026-10-20", "Keeps *time*. <3 & `code`");
    write_review("hubot", 4, "visible", "2026-10-25", "Fine.");
    write_review("troll", 1, "hidden", "2026-10-30", "SPAM SPAM");
    build(registry.path(), full.path()).unwrap();
    build(registry.path(), partial.path()).unwrap();
    let clock: trellis_schema::PluginId = "acme.clock".parse().unwrap();
    let target = catalog::reviews_target(&clock);
    let read = |site: &Path| {
        let role = role_latest(site, "catalog").signed;
        let sha = role.targets[&target].hashes["sha256"].parse().unwrap();
        let bytes = std::fs::read(site::target_file(site, &target, &sha)).unwrap();
        (role, bytes)
    };
    let (role, bytes) = read(full.path());
    let doc = catalog::parse_reviews(&clock, &bytes, &catalog::CatalogLimits::default()).unwrap();
    assert_eq!(doc.total, 2);
    let authors: Vec<&str> = doc.reviews.iter().map(|r| r.author.as_str()).collect();
    assert_eq!(authors, ["hubot", "octocat"], "newest first, the hidden review left out");
    assert_eq!(doc.reviews[1].text, "Keeps *time*. <3 & `code`", "the text is data, as written");
    assert!(!String::from_utf8_lossy(&bytes).contains("SPAM"));
    assert!(!role.targets.contains_key(&catalog::reviews_target(&"acme.alarm".parse().unwrap())));

    // An incremental build of another plugin keeps the document; one of the plugin
    // redoes it, and hiding every review removes it.
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    build(registry.path(), full.path()).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope, now()).unwrap();
    assert_eq!(tree(full.path()), tree(partial.path()));
    assert_eq!(read(partial.path()).1, bytes);
    write_review("octocat", 5, "hidden", "2026-10-20", "Keeps time.");
    write_review("hubot", 4, "hidden", "2026-10-25", "Fine.");
    build(registry.path(), full.path()).unwrap();
    let scope = Scope::Plugins(BTreeSet::from([clock.clone()]));
    build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope, now()).unwrap();
    assert_eq!(tree(full.path()), tree(partial.path()));
    assert!(!role_latest(partial.path(), "catalog").signed.targets.contains_key(&target));
}

/// The level and reasons the site at `out` publishes for release `version` of `id`.
fn published_level(
    out: &Path,
    id: &str,
    version: &str,
) -> (trellis_schema::security_level::Level, Vec<trellis_schema::security_level::Reason>) {
    let id: trellis_schema::PluginId = id.parse().unwrap();
    let site = trellis_index::build::PreviousSite::open(out).unwrap().unwrap();
    let security = site.role("security").unwrap().unwrap();
    let target = trellis_schema::security_level::levels_target(&id);
    let sha = security.signed.targets[&target].hashes["sha256"].parse().unwrap();
    let bucket: trellis_schema::security_level::LevelsBucket =
        serde_json::from_slice(&std::fs::read(site::target_file(out, &target, &sha)).unwrap()).unwrap();
    let (_, release) = bucket.release(&id, &version.parse().unwrap()).unwrap();
    (release.level, release.reasons.clone())
}

/// The file of the published levels bucket of `id` in the site `out`.
fn levels_file(out: &Path, id: &str) -> std::path::PathBuf {
    let id: trellis_schema::PluginId = id.parse().unwrap();
    let site = trellis_index::build::PreviousSite::open(out).unwrap().unwrap();
    let security = site.role("security").unwrap().unwrap();
    let target = trellis_schema::security_level::levels_target(&id);
    let sha = security.signed.targets[&target].hashes["sha256"].parse().unwrap();
    site::target_file(out, &target, &sha)
}

/// The file of the catalog role the site `out` serves.
fn catalog_role_file(out: &Path) -> std::path::PathBuf {
    let site = trellis_index::build::PreviousSite::open(out).unwrap().unwrap();
    site::metadata_file(out, "catalog", site.version("catalog").unwrap())
}

#[test]
fn an_incremental_build_splices_published_levels_and_catalog_role_only_when_they_are_the_builders_own() {
    use trellis_schema::security_level::levels_bucket;
    // A plugin sharing acme.alarm's levels bucket, whose entry a narrow build of
    // acme.alarm carries over as published.
    let registry = registry();
    let alarm: trellis_schema::PluginId = "acme.alarm".parse().unwrap();
    let neighbour = (0..)
        .map(|n| format!("acme.n{n}"))
        .find(|id| levels_bucket(&id.parse().unwrap()) == levels_bucket(&alarm))
        .unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new(&neighbour, "1.0.0"), &fixture::key(1)).unwrap();
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(registry.path(), full.path()).unwrap();
    build(registry.path(), partial.path()).unwrap();
    let only_alarm = || Scope::Plugins(BTreeSet::from([alarm.clone()]));
    let incremental =
        |site: &Path| build_registry(&Registry::open(registry.path()).unwrap(), site, only_alarm(), now());

    // The first publication day of the neighbour's release moved back in the published
    // bucket (valid JSON, the builder's layout, no longer the bytes the security role
    // signs): an older release reaches the age a level rewards. Carried over, the day
    // would be signed again; every build refuses it instead, naming the bucket, with the
    // site left as it was.
    let bucket = levels_file(partial.path(), "acme.alarm");
    let published = std::fs::read(&bucket).unwrap();
    let text = String::from_utf8(published.clone()).unwrap();
    let entry = text.find(&format!("\"{neighbour}\":")).unwrap();
    let day = entry + text[entry..].find("\"published\":\"").unwrap() + "\"published\":\"".len();
    std::fs::write(&bucket, format!("{}2001-01-01{}", &text[..day], &text[day + "2001-01-01".len()..])).unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    let before = tree(partial.path());
    for scope in [only_alarm(), Scope::Full] {
        let err = build_registry(&Registry::open(registry.path()).unwrap(), partial.path(), scope.clone(), now())
            .unwrap_err();
        assert!(matches!(&err, BuildError::SiteAltered { path, .. } if *path == bucket), "{scope:?}: {err}");
        assert_eq!(tree(partial.path()), before, "{scope:?}: nothing written");
    }
    std::fs::write(&bucket, &published).unwrap();
    build(registry.path(), full.path()).unwrap();
    let report = incremental(partial.path()).unwrap();
    assert!(report.written.iter().any(|p| p.contains(".levels-")), "{:?}", report.written);
    assert_eq!(tree(full.path()), tree(partial.path()));

    // The catalog role pretty-printed (the same document, not the builder's layout):
    // read by the strict parser, the same site.
    let role = catalog_role_file(partial.path());
    let canonical = std::fs::read(&role).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
    std::fs::write(&role, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.3.0"), &fixture::key(1)).unwrap();
    build(registry.path(), full.path()).unwrap();
    assert_eq!(incremental(partial.path()).unwrap().catalog, CatalogWork::Incremental);
    std::fs::write(&role, &canonical).unwrap();
    assert_eq!(tree(full.path()), tree(partial.path()));

    // Cut short, the levels bucket or the catalog role: refused, naming the file,
    // nothing written.
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.4.0"), &fixture::key(1)).unwrap();
    for file in [levels_file(partial.path(), "acme.alarm"), catalog_role_file(partial.path())] {
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        let before = tree(partial.path());
        let error = incremental(partial.path()).unwrap_err().to_string();
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert_eq!(tree(partial.path()), before, "nothing written");
        std::fs::write(&file, &bytes).unwrap();
    }
    build(registry.path(), full.path()).unwrap();
    incremental(partial.path()).unwrap();
    assert_eq!(tree(full.path()), tree(partial.path()));
}

/// The current hash bins of the site at `out`, with their files.
fn hash_bins(out: &Path) -> Vec<(std::path::PathBuf, String)> {
    let previous = trellis_index::build::PreviousSite::open(out).unwrap().unwrap();
    (0..4)
        .map(|n| format!("bin-{n}"))
        .filter_map(|name| Some(site::metadata_file(out, &name, previous.version(&name)?)))
        .map(|path| (path.clone(), std::fs::read_to_string(&path).unwrap()))
        .collect()
}

#[test]
fn an_incremental_build_refuses_to_carry_a_published_bin_entry_without_a_valid_digest() {
    // Every published bin entry but acme.alarm's with its SHA-256 in upper case: such a
    // digest parses as nothing, and a build that does not load the plugin would carry
    // the entry into the bin it signs with an all-zero digest in its place.
    let registry = registry();
    for n in 0..12 {
        fixture::add_release(registry.path(), &ReleaseSpec::new(&format!("acme.n{n}"), "1.0.0"), &fixture::key(1))
            .unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let marker = "\"sha256\":\"";
    let mut raised = 0;
    for (path, text) in hash_bins(out.path()) {
        let mut tampered = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(marker) {
            let (head, tail) = rest.split_at(at + marker.len());
            tampered.push_str(head);
            let entry = head.rfind("\"index/").unwrap();
            let digest = if head[entry..].contains(".acme.alarm.json") {
                tail[..64].to_owned()
            } else {
                tail[..64].to_uppercase()
            };
            raised += usize::from(digest != tail[..64]);
            tampered.push_str(&digest);
            rest = &tail[64..];
        }
        tampered.push_str(rest);
        std::fs::write(&path, tampered).unwrap();
    }
    assert!(raised >= 12, "every other plugin's entry raised: {raised}");

    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    let before = tree(out.path());
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let error = build_registry(&Registry::open(registry.path()).unwrap(), out.path(), scope, now()).unwrap_err();
    let message = error.to_string();
    let BuildError::Site { path, .. } = &error else { panic!("{error:?}") };
    assert!(hash_bins(out.path()).iter().any(|(bin, _)| bin == path), "names the bin: {message}");
    assert!(message.contains("without a valid SHA-256") && message.contains("acme.n"), "{message}");
    assert_eq!(tree(out.path()), before, "nothing written");

    // A full build lists every doc again from its bytes: the bins are whole again.
    build(registry.path(), out.path()).unwrap();
    for (bin, text) in hash_bins(out.path()) {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            assert!(!rest[..64].bytes().any(|b| b.is_ascii_uppercase()), "{}: {text}", bin.display());
        }
    }
}

/// The file of the catalog document `target` the site `out` serves.
fn catalog_file(out: &Path, target: &str) -> std::path::PathBuf {
    let site = trellis_index::build::PreviousSite::open(out).unwrap().unwrap();
    let role = site.role("catalog").unwrap().unwrap();
    let sha = role.signed.targets[target].hashes["sha256"].parse().unwrap();
    site::target_file(out, target, &sha)
}

#[test]
fn an_incremental_build_splices_a_published_record_bucket_only_when_it_is_the_one_the_catalog_role_lists() {
    use trellis_schema::catalog::{record_bucket, records_target};
    // A plugin sharing acme.alarm's record bucket, whose record a narrow build of
    // acme.alarm carries over.
    let registry = registry();
    let alarm: trellis_schema::PluginId = "acme.alarm".parse().unwrap();
    let neighbour = (0..)
        .map(|n| format!("acme.r{n}"))
        .find(|id| record_bucket(&id.parse().unwrap()) == record_bucket(&alarm))
        .unwrap();
    fixture::add_release(registry.path(), &ReleaseSpec::new(&neighbour, "1.0.0"), &fixture::key(1)).unwrap();
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(registry.path(), full.path()).unwrap();
    build(registry.path(), partial.path()).unwrap();
    let incremental = |site: &Path| {
        let scope = Scope::Plugins(BTreeSet::from([alarm.clone()]));
        build_registry(&Registry::open(registry.path()).unwrap(), site, scope, now())
    };
    let target = records_target(record_bucket(&alarm));

    // Not the bytes the catalog role lists: the neighbour's record re-spaced (the same
    // record, a layout the scan takes), or with a member named twice (a record the
    // strict parser refuses where the scan would take it). Refused, naming the
    // bucket, nothing written: its records are not carried into a signed bucket.
    let bucket = catalog_file(partial.path(), &target);
    let published = std::fs::read_to_string(&bucket).unwrap();
    let record = published.find(&format!("{{\"summary\":{{\"id\":\"{neighbour}\"")).unwrap();
    let terms = record + published[record..].find("\"terms\":").unwrap();
    let spaced = format!("{}\"terms\": {}", &published[..terms], &published[terms + "\"terms\":".len()..]);
    let doubled = format!("{}\"releases\":1,{}", &published[..terms], &published[terms..]);
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    for tampered in [spaced, doubled] {
        std::fs::write(&bucket, &tampered).unwrap();
        let before = tree(partial.path());
        let error = incremental(partial.path()).unwrap_err().to_string();
        assert!(error.contains(&target) && error.contains("not the document the catalog role lists"), "{error}");
        assert_eq!(tree(partial.path()), before, "nothing written");
    }

    // The published bucket as signed: spliced, the bucket the full build writes.
    std::fs::write(&bucket, published.as_bytes()).unwrap();
    build(registry.path(), full.path()).unwrap();
    assert_eq!(incremental(partial.path()).unwrap().catalog, CatalogWork::Incremental);
    assert_eq!(tree(full.path()), tree(partial.path()));
}

#[test]
fn age_and_advisories_move_levels_in_any_build_without_touching_an_index_doc() {
    use trellis_schema::security_level::{Level, Reason};
    let registry = registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    let (level, reasons) = published_level(out.path(), "acme.clock", "1.0.0");
    assert_eq!((level, reasons), (Level::Signed, vec![Reason::DeveloperSigned, Reason::RecentUnverified]));

    // 30 days later, a build for another plugin only: acme.clock's releases are now
    // established (their publication day was kept), and no index doc changed.
    let later = now() + jiff::SignedDuration::from_hours(24 * 30);
    let before = tree(out.path());
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), out.path(), scope, later).unwrap();
    let (level, reasons) = published_level(out.path(), "acme.clock", "1.0.0");
    assert_eq!(level, Level::Established, "{reasons:?}");
    assert_eq!(
        reasons,
        [Reason::DeveloperSigned, Reason::UnverifiedPublisher, Reason::SingleKey, Reason::NotScannedClean]
    );
    let new_index_docs: Vec<String> =
        tree(out.path()).into_keys().filter(|p| !before.contains_key(p) && p.starts_with("targets/index/")).collect();
    assert!(new_index_docs.is_empty(), "no index doc is rewritten: {new_index_docs:?}");
    assert!(report.written.iter().any(|p| p.contains(".levels-")), "{:?}", report.written);

    // An advisory of high severity flags the release in the next build.
    let dir = registry.path().join("advisories");
    std::fs::create_dir_all(&dir).unwrap();
    let osv = serde_json::json!({
        "id": "TRELLIS-2026-0200", "modified": "2026-11-30T00:00:00Z", "summary": "crashes the host",
        "affected": [{"package": {"ecosystem": "Trellis", "name": "acme.clock"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.1.0"}]}]}],
        "database_specific": {"severity": "CRITICAL"}
    });
    std::fs::write(dir.join("TRELLIS-2026-0200.json"), serde_json::to_vec(&osv).unwrap()).unwrap();
    build_registry(&Registry::open(registry.path()).unwrap(), out.path(), Scope::Full, later).unwrap();
    assert_eq!(published_level(out.path(), "acme.clock", "1.0.0"), (Level::Flagged, vec![Reason::SevereAdvisory]));
    assert_eq!(published_level(out.path(), "acme.clock", "1.1.0").0, Level::Established, "the fixed release");
}

#[test]
fn reanalyse_scans_published_releases_again_and_flags_a_finding_without_stopping_the_build() {
    use trellis_schema::analysis::Verdict;
    use trellis_schema::security_level::{Level, Reason};
    let registry = tempfile::tempdir().unwrap();
    init(registry.path());
    let key = fixture::key(1);
    fixture::add_publisher(registry.path(), "acme", &key).unwrap();
    let config_path = registry.path().join("trellis-registry.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["scanners"] = serde_json::json!({"known_bad": "known-bad.txt"});
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    std::fs::write(registry.path().join("known-bad.txt"), "# nothing known yet\n").unwrap();
    let clock = ReleaseSpec::new("acme.clock", "1.0.0");
    fixture::add_release(registry.path(), &clock, &key).unwrap();
    let out = tempfile::tempdir().unwrap();
    let build = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trellis-index"))
            .args(["build", registry.path().to_str().unwrap(), "--out", out.path().to_str().unwrap()])
            .args(["--now", "2026-11-01T00:00:00Z"])
            .args(extra)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };
    let scanned = |out: &Path| {
        let id: trellis_schema::PluginId = "acme.clock".parse().unwrap();
        let target = site::index_target(&id);
        let bins = role_latest(out, &site::bin_for_target(&target, 2, "bin"));
        let sha = bins.signed.targets[&target].hashes["sha256"].parse().unwrap();
        let doc: IndexDoc =
            serde_json::from_slice(&std::fs::read(site::target_file(out, &target, &sha)).unwrap()).unwrap();
        doc.releases[0].analysis.clone().unwrap().scanners
    };
    let (code, stdout, stderr) = build(&[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(scanned(out.path())[0].verdict, Verdict::Clean);

    // The entry point's digest becomes known bad after it was published: a plain build
    // carries the published (clean) analysis over.
    let digest = trellis_schema::Sha256::of(&clock.payload);
    std::fs::write(registry.path().join("known-bad.txt"), format!("{digest} Trellis.Test.Backdoor\n")).unwrap();
    let (code, stdout, stderr) = build(&[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("(0 analysed, the others as published)"), "{stdout}");
    assert_eq!(scanned(out.path())[0].verdict, Verdict::Clean);

    // `--reanalyse` scans it again: the build goes on, the analysis is republished with
    // the finding, the level drops to flagged, and the operator is told to block it.
    let (code, stdout, stderr) = build(&["--reanalyse"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("(1 analysed, the others as published)"), "{stdout}");
    assert!(stderr.contains("warning: acme.clock 1.0.0: "), "{stderr}");
    assert!(stderr.contains("Trellis.Test.Backdoor") && stderr.contains("`trellis-index block` it to act"), "{stderr}");
    let verdict = &scanned(out.path())[0];
    assert_eq!(verdict.verdict, Verdict::Found, "{verdict:?}");
    assert!(verdict.findings.iter().any(|f| f.contains("Trellis.Test.Backdoor")), "{verdict:?}");
    assert_eq!(published_level(out.path(), "acme.clock", "1.0.0"), (Level::Flagged, vec![Reason::ScanFailed]));

    // A new release with the same file is refused, reanalysis or not.
    let mut next = ReleaseSpec::new("acme.clock", "1.1.0");
    next.payload = clock.payload.clone();
    fixture::add_release(registry.path(), &next, &key).unwrap();
    let (code, stdout, stderr) = build(&["--reanalyse"]);
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("acme.clock 1.1.0") && stderr.contains("Trellis.Test.Backdoor"), "{stderr}");
}

#[test]
fn an_incremental_build_never_signs_again_a_published_shard_page_or_head_edited_after_signing() {
    // Catalog documents an incremental build of acme.alarm reads and redoes, which also
    // show acme.clock (carried over as published): one of them edited on the site is not
    // the document the catalog role lists, so the catalog is redone from the records
    // (the full path) and the edit is not signed again.
    let registry = registry();
    let alarm: trellis_schema::PluginId = "acme.alarm".parse().unwrap();
    let (full, partial) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(registry.path(), full.path()).unwrap();
    build(registry.path(), partial.path()).unwrap();
    let incremental = |site: &Path| {
        let scope = Scope::Plugins(BTreeSet::from([alarm.clone()]));
        build_registry(&Registry::open(registry.path()).unwrap(), site, scope, now())
    };
    let clock = "{\"id\":\"acme.clock\",\"name\":\"";
    let showing_both = |site: &Path, prefix: &str| {
        let catalog =
            trellis_index::build::PreviousSite::open(site).unwrap().unwrap().role("catalog").unwrap().unwrap();
        catalog
            .signed
            .targets
            .keys()
            .filter(|t| t.starts_with(prefix))
            .find(|target| {
                let text = std::fs::read_to_string(catalog_file(site, target)).unwrap();
                text.contains(clock) && text.contains("\"id\":\"acme.alarm\"")
            })
            .cloned()
    };
    // A new release of acme.alarm, 0.MINOR.0, and the full build of it to compare with.
    let release_alarm = |minor: usize| {
        let spec = ReleaseSpec::new("acme.alarm", &format!("0.{minor}.0"));
        fixture::add_release(registry.path(), &spec, &fixture::key(1)).unwrap();
        build(registry.path(), full.path()).unwrap();
    };
    let mut edited = Vec::new();
    for (n, prefix) in
        ["catalog/search-", "catalog/head.json", "catalog/category-", "catalog/tag-"].into_iter().enumerate()
    {
        let Some(target) = showing_both(partial.path(), prefix) else { continue };
        // A build that carries the document over as published first: incremental.
        release_alarm(2 * n + 2);
        assert_eq!(incremental(partial.path()).unwrap().catalog, CatalogWork::Incremental, "{target}");
        assert_eq!(tree(full.path()), tree(partial.path()), "{target}");

        let file = catalog_file(partial.path(), &target);
        let published = std::fs::read_to_string(&file).unwrap();
        let at = published.find(clock).unwrap() + clock.len();
        std::fs::write(&file, format!("{}EVIL {}", &published[..at], &published[at..])).unwrap();
        release_alarm(2 * n + 3);
        let report = incremental(partial.path()).unwrap();
        let signed = std::fs::read_to_string(catalog_file(partial.path(), &target)).unwrap();
        assert!(!signed.contains("EVIL"), "{target}: the edit is signed again");
        assert_eq!(signed, std::fs::read_to_string(catalog_file(full.path(), &target)).unwrap(), "{target}");
        assert_eq!(report.catalog, CatalogWork::Full, "{target}: redone from the records");
        // The edited file is the old version's, which the full build's site holds unedited.
        std::fs::write(&file, published.as_bytes()).unwrap();
        assert_eq!(tree(full.path()), tree(partial.path()), "{target}");
        edited.push(target);
    }
    assert!(edited.iter().any(|t| t.starts_with("catalog/search-")), "{edited:?}");
    assert!(edited.iter().any(|t| t == "catalog/head.json"), "{edited:?}");
}

#[test]
fn a_record_bucket_edited_after_signing_is_refused_by_an_incremental_build_and_skipped_by_a_full_one() {
    // A record bucket holds what search shows of each plugin (name, permissions, dates):
    // an incremental build carries the records of the plugins it does not load from
    // it. One changed on the published site is not the document the catalog role lists:
    // an incremental build refuses it, naming it, with the site left as it was; a full
    // build (every plugin loaded) skips it and signs records made from the packages.
    let registry = registry();
    let alarm: trellis_schema::PluginId = "acme.alarm".parse().unwrap();
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path()).unwrap();
    let catalog =
        trellis_index::build::PreviousSite::open(site.path()).unwrap().unwrap().role("catalog").unwrap().unwrap();
    let marker = "{\"summary\":{\"id\":\"acme.alarm\",\"name\":\"";
    let bucket = catalog
        .signed
        .targets
        .keys()
        .filter(|t| t.starts_with("catalog/records-"))
        .find(|t| std::fs::read_to_string(catalog_file(site.path(), t)).unwrap().contains(marker))
        .cloned()
        .expect("a bucket lists acme.alarm");
    let file = catalog_file(site.path(), &bucket);
    let published = std::fs::read_to_string(&file).unwrap();
    let at = published.find(marker).unwrap() + marker.len();
    std::fs::write(&file, format!("{}EVIL {}", &published[..at], &published[at..])).unwrap();
    let before = tree(site.path());

    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.alarm", "0.9.0"), &fixture::key(1)).unwrap();
    let scope = Scope::Plugins(BTreeSet::from([alarm]));
    let err = build_registry(&Registry::open(registry.path()).unwrap(), site.path(), scope, now()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&bucket) && message.contains("not the document the catalog role lists"), "{message}");
    assert!(message.contains("full build"), "says what to do: {message}");
    assert_eq!(tree(site.path()), before, "nothing written by the refused build");

    build(registry.path(), site.path()).unwrap();
    let catalog =
        trellis_index::build::PreviousSite::open(site.path()).unwrap().unwrap().role("catalog").unwrap().unwrap();
    for target in catalog.signed.targets.keys() {
        let signed = std::fs::read_to_string(catalog_file(site.path(), target)).unwrap();
        assert!(!signed.contains("EVIL"), "{target}: the edit is signed again");
    }
    assert!(
        catalog
            .signed
            .targets
            .keys()
            .any(|t| std::fs::read_to_string(catalog_file(site.path(), t)).unwrap().contains(marker)),
        "acme.alarm is listed again, from its package"
    );
}

/// The publisher standing the site at `out` publishes with the levels of `id`.
fn published_standing(out: &Path, id: &str) -> trellis_schema::security_level::PublisherStanding {
    let bucket: trellis_schema::security_level::LevelsBucket =
        serde_json::from_slice(&std::fs::read(levels_file(out, id)).unwrap()).unwrap();
    bucket.plugins[&id.parse::<trellis_schema::PluginId>().unwrap()].publisher.clone()
}

/// The levels head the site at `out` publishes.
fn levels_head(out: &Path) -> trellis_schema::security_level::LevelsHead {
    let site = trellis_index::build::PreviousSite::open(out).unwrap().unwrap();
    let security = site.role("security").unwrap().unwrap();
    let target = trellis_schema::security_level::LEVELS_HEAD_TARGET;
    let sha = security.signed.targets[target].hashes["sha256"].parse().unwrap();
    serde_json::from_slice(&std::fs::read(site::target_file(out, target, &sha)).unwrap()).unwrap()
}

/// An `--only` build loads its plugins' publishers only, so it judges only their
/// domain proofs: every other publisher's plugins keep the standing the site published
/// (and the levels head its digest) until a build loads them; one that judges a
/// standing other than the published one redoes every bucket, and its head's digest is
/// the one a build judging every publisher computes.
#[test]
fn an_incremental_build_judges_only_its_plugins_publishers_and_keeps_the_others_published_standings() {
    let registry = registry();
    let dir = registry.path();
    let bravo = fixture::key(2);
    let website = Some("https://bravo.example/".to_owned());
    let chain = trellis_index::publisher::init(
        "bravo".parse().unwrap(),
        "Bravo".into(),
        website,
        None,
        std::slice::from_ref(&bravo),
        1,
    );
    std::fs::write(dir.join("publishers/bravo.json"), serde_json::to_vec_pretty(&chain.unwrap()).unwrap()).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("bravo.tool", "1.0.0"), &bravo).unwrap();
    // The domain proof's result, cached and fresh: no request is made.
    let proof = |verified: bool| {
        let entry = serde_json::json!({"domain": "bravo.example", "keys": [bravo.key_id()],
            "checked": "2026-10-31T00:00:00Z", "verified": verified});
        let cache = serde_json::json!({ "bravo": entry });
        std::fs::write(dir.join(trellis_index::domain_proof::CACHE_FILE), serde_json::to_vec(&cache).unwrap()).unwrap();
    };
    proof(true);
    let out = tempfile::tempdir().unwrap();
    build(dir, out.path()).unwrap();
    assert!(published_standing(out.path(), "bravo.tool").verified);
    let acme = published_standing(out.path(), "acme.clock");
    assert!(acme.reason.as_deref().is_some_and(|r| r.contains("names no website")), "{acme:?}");
    let digest = levels_head(out.path()).publishers_sha256;
    let only = |id: &str| Scope::Plugins(BTreeSet::from([id.parse().unwrap()]));
    let incremental = |id: &str, version: &str, key: &trellis_schema::SigningKey| {
        fixture::add_release(dir, &ReleaseSpec::new(id, version), key).unwrap();
        let opened = build::open_registry(dir, out.path(), &only(id)).unwrap();
        build_registry(&opened, out.path(), only(id), now()).unwrap()
    };

    // The proof fails now, as a check would find. A build of acme's plugin does not
    // judge bravo: bravo.tool keeps its published standing and bucket, the head its
    // digest, the cache bravo's entry.
    proof(false);
    let bucket = levels_file(out.path(), "bravo.tool");
    incremental("acme.clock", "1.2.0", &fixture::key(1));
    let reasons = published_level(out.path(), "acme.clock", "1.2.0").1;
    assert!(reasons.contains(&trellis_schema::security_level::Reason::DeveloperSigned), "{reasons:?}");
    assert!(published_standing(out.path(), "bravo.tool").verified);
    assert_eq!(levels_file(out.path(), "bravo.tool"), bucket);
    assert_eq!(levels_head(out.path()).publishers_sha256, digest);
    let cache = trellis_index::domain_proof::read_cache(dir).unwrap();
    assert!(!cache[&"bravo".parse().unwrap()].verified, "kept");

    // Proved again: a new plugin of bravo's judges bravo as published (read from
    // bravo.tool's bucket): narrow, the digest unchanged.
    proof(true);
    incremental("bravo.extra", "1.0.0", &bravo);
    assert!(published_standing(out.path(), "bravo.extra").verified);
    assert_eq!(levels_head(out.path()).publishers_sha256, digest);

    // Failed again: a release of bravo's judges the failure, and every bucket of
    // bravo's plugins moves with it.
    proof(false);
    incremental("bravo.tool", "1.1.0", &bravo);
    for id in ["bravo.tool", "bravo.extra"] {
        assert!(!published_standing(out.path(), id).verified, "{id}");
    }
    assert_eq!(published_standing(out.path(), "acme.clock"), acme, "not judged: as published");
    let moved = levels_head(out.path()).publishers_sha256;
    assert_ne!(moved, digest);
    // A build judging every publisher computes the same levels: none is written again.
    let report = build(dir, out.path()).unwrap();
    assert!(!report.written.iter().any(|p| p.contains("levels")), "{:?}", report.written);
    assert_eq!(levels_head(out.path()).publishers_sha256, moved);
}

/// Advisories match every release: an `--only` build whose advisories changed since its
/// site indexes every plugin, and with every publisher's chain (the incremental open,
/// which loaded its plugins' publishers only, is widened), so a full build after it
/// has nothing left to write.
#[test]
fn an_incremental_build_whose_advisories_changed_indexes_every_plugin_with_every_publishers_chain() {
    use trellis_schema::security_level::Level;
    let registry = registry();
    let dir = registry.path();
    fixture::add_publisher(dir, "bravo", &fixture::key(2)).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("bravo.tool", "1.0.0"), &fixture::key(2)).unwrap();
    let out = tempfile::tempdir().unwrap();
    build(dir, out.path()).unwrap();
    let advisories = dir.join("advisories");
    std::fs::create_dir_all(&advisories).unwrap();
    let osv = serde_json::json!({
        "id": "TRELLIS-2026-0300", "modified": "2026-11-30T00:00:00Z", "summary": "leaks files",
        "affected": [{"package": {"ecosystem": "Trellis", "name": "bravo.tool"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}],
        "database_specific": {"severity": "CRITICAL"}
    });
    std::fs::write(advisories.join("TRELLIS-2026-0300.json"), serde_json::to_vec(&osv).unwrap()).unwrap();
    fixture::add_release(dir, &ReleaseSpec::new("acme.alarm", "0.2.0"), &fixture::key(1)).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.alarm".parse().unwrap()]));
    let opened = build::open_registry(dir, out.path(), &scope).unwrap();
    assert_eq!(opened.publishers.len(), 1, "acme's chain only");
    let report = build_registry(&opened, out.path(), scope, now()).unwrap();
    assert_eq!(report.plugins, 3, "every plugin indexed");
    assert_eq!(published_level(out.path(), "bravo.tool", "1.0.0").0, Level::Flagged);
    let before = tree(out.path());
    let report = build(dir, out.path()).unwrap();
    assert_eq!(report.written, Vec::<String>::new());
    assert_eq!(tree(out.path()), before);
}

/// A registry whose `acme.app` depends, level under level, on ui, gfx and tls.
fn chain_registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let key = fixture::key(1);
    fixture::add_publisher(dir.path(), "acme", &key).unwrap();
    for (plugin, dependency) in [("acme.tls", None), ("acme.gfx", Some("acme.tls")), ("acme.ui", Some("acme.gfx"))] {
        let spec = ReleaseSpec::new(plugin, "1.0.0");
        let spec = match dependency {
            Some(dependency) => spec.depends_on(dependency, "^1"),
            None => spec,
        };
        fixture::add_release(dir.path(), &spec, &key).unwrap();
    }
    fixture::add_release(dir.path(), &ReleaseSpec::new("acme.app", "1.0.0").depends_on("acme.ui", "^1"), &key).unwrap();
    dir
}

fn add_app_release(registry: &Path, out: &Path, version: &str) -> BuildReport {
    let spec = ReleaseSpec::new("acme.app", version).depends_on("acme.ui", "^1");
    fixture::add_release(registry, &spec, &fixture::key(1)).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.app".parse().unwrap()]));
    build_registry(&Registry::open(registry).unwrap(), out, scope, now()).unwrap()
}

fn names(ids: &[trellis_schema::PluginId]) -> Vec<&str> {
    ids.iter().map(|id| id.as_str()).collect()
}

#[test]
fn each_index_doc_names_its_dependency_closure_and_an_incremental_build_reads_it_from_the_published_docs() {
    let registry = chain_registry();
    let out = tempfile::tempdir().unwrap();
    let full = build(registry.path(), out.path()).unwrap();
    assert_eq!(full.hints.docs_read, 0, "a full build walks its own plugins");
    assert_eq!(names(&index_doc(out.path(), "acme.app").prefetch), ["acme.ui", "acme.gfx", "acme.tls"]);
    assert_eq!(names(&index_doc(out.path(), "acme.gfx").prefetch), ["acme.tls"]);
    assert!(index_doc(out.path(), "acme.tls").prefetch.is_empty());

    let report = add_app_release(registry.path(), out.path(), "1.1.0");
    assert_eq!(report.plugins, 1);
    assert_eq!(report.hints.docs_read, 3, "ui, gfx and tls, from the site");
    assert_eq!(names(&index_doc(out.path(), "acme.app").prefetch), ["acme.ui", "acme.gfx", "acme.tls"]);
}

#[test]
fn a_published_doc_a_hint_cannot_read_ends_the_hint_there_and_fails_nothing() {
    let registry = chain_registry();
    let out = tempfile::tempdir().unwrap();
    build(registry.path(), out.path()).unwrap();
    // gfx's doc altered after signing: the hint names gfx, not what lies beyond it.
    let gfx = site_file(out.path(), "targets/index", ".acme.gfx.json");
    alter_in_place(&gfx, None);
    let report = add_app_release(registry.path(), out.path(), "1.1.0");
    assert_eq!(report.hints.docs_read, 1, "ui only");
    assert_eq!(names(&index_doc(out.path(), "acme.app").prefetch), ["acme.ui", "acme.gfx"]);
    // Gone altogether: the same.
    std::fs::remove_file(&gfx).unwrap();
    add_app_release(registry.path(), out.path(), "1.2.0");
    assert_eq!(names(&index_doc(out.path(), "acme.app").prefetch), ["acme.ui", "acme.gfx"]);
}
