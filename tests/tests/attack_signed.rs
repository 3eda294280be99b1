//! Issue 10, items 2 and 9: the developer-signed manifest is the only authority.
//!
//! Each test performs the attack against a real site built by `trellis-index`, served
//! on 127.0.0.1 by the counting fault server: an attacker holding only the registry's
//! online keys (bins, snapshot, timestamp; what a compromised CI job has) rewrites an
//! index doc or a delta and signs the result into the TUF chain
//! ([`Served::compromise_index_doc`]). The developer's envelope cannot be forged, so
//! the client must trust it and nothing else for permissions, dependencies, channel,
//! host requirement, platforms and file modes: it refuses the release, naming the field
//! and both values, before asking for consent and before downloading any package, and
//! the installed set and consents stay as they were.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use common::{Plugin, Site};
use semver::Version;
use trellis_client::consent::Disclosure;
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{
    AlwaysAgree, Consent, Session, Store, StoreError, StoreOptions, install::parse_requirement,
};
use trellis_index::build::{PreviousSite, timestamp_doc};
use trellis_index::registry::{Registry, RoleKeyFiles};
use trellis_index::{site, tuf};
use trellis_schema::index::IndexDoc;
use trellis_schema::tuf::TargetFile;
use trellis_schema::{PluginId, SigningKey};
use trellis_tests::fault_server::FaultServer;

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// A site's files served from memory by the fault server, which records requests.
struct Served {
    site: Site,
    server: FaultServer,
}

impl Served {
    fn new(plugins: &[Plugin]) -> Self {
        let site = Site::new();
        site.publish(plugins);
        let this = Self { site, server: FaultServer::start().unwrap() };
        this.sync();
        this
    }

    fn sync(&self) {
        for file in common::walk(self.site.site.path()) {
            let relative = file.strip_prefix(self.site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
            self.server.put(&format!("/{relative}"), std::fs::read(&file).unwrap());
        }
    }

    /// The developer publishes (the registry's normal build, every key present).
    fn publish(&self, plugins: &[Plugin]) {
        self.site.publish(plugins);
        self.sync();
    }

    /// A store in `data` (opened anew: a store reads the registry once per life).
    fn store(&self, data: &Path) -> Store {
        let mut store = Store::open(data, StoreOptions::new(common::host())).unwrap();
        if store.registries().registries.is_empty() {
            store.add_registry("main", &self.server.url(), &self.site.root()).unwrap();
        }
        store
    }

    /// Successful requests of files whose path ends with `suffix`.
    fn hits(&self, suffix: &str) -> usize {
        self.server.hits().iter().filter(|h| h.path.ends_with(suffix) && h.status == 200).count()
    }

    /// What an attacker holding only the online keys can publish: the index doc of
    /// `plugin`, changed by `change`, signed into its hash bin (new version, bins key),
    /// a new snapshot (snapshot key) and a new timestamp (timestamp key). No root,
    /// targets, publishers or developer key is used.
    fn compromise_index_doc(&self, plugin: &str, change: impl FnOnce(&mut IndexDoc)) {
        let dir = self.site.site.path();
        let registry = Registry::open(self.site.registry.path()).unwrap();
        let keys = |role: &RoleKeyFiles| -> Vec<SigningKey> { registry.signing_keys(role).unwrap().unwrap() };
        let previous = PreviousSite::open(dir).unwrap().unwrap();
        let target = site::index_target(&id(plugin));
        let bin = site::bin_for_target(&target, registry.config.bin_bits, tuf::BIN_PREFIX);
        let mut role = previous.role(&bin).unwrap().unwrap().signed;
        let sha: trellis_schema::Sha256 = role.targets[&target].hashes["sha256"].parse().unwrap();
        let mut doc: IndexDoc =
            serde_json::from_slice(&std::fs::read(site::target_file(dir, &target, &sha)).unwrap()).unwrap();
        change(&mut doc);
        let bytes = serde_json::to_vec(&doc).unwrap();
        let sha = trellis_schema::Sha256::of(&bytes);
        let file = site::target_file(dir, &target, &sha);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &bytes).unwrap();
        role.targets.insert(
            target,
            TargetFile {
                length: bytes.len() as u64,
                hashes: BTreeMap::from([("sha256".to_owned(), sha.to_hex())]),
                custom: None,
                extra: serde_json::Map::new(),
            },
        );
        role.version += 1;
        let role_version = role.version;
        let role_bytes = tuf::sign_role(&bin, role, Some(&keys(&registry.config.keys.bins)), "bins").unwrap();
        std::fs::write(site::metadata_file(dir, &bin, role_version), &role_bytes).unwrap();

        let mut snapshot = previous.snapshot.signed.clone();
        let meta = snapshot.meta.get_mut(&format!("{bin}.json")).unwrap();
        meta.version = role_version;
        if meta.length.is_some() {
            meta.length = Some(role_bytes.len() as u64);
        }
        if meta.hashes.is_some() {
            meta.hashes =
                Some(BTreeMap::from([("sha256".to_owned(), trellis_schema::Sha256::of(&role_bytes).to_hex())]));
        }
        snapshot.version += 1;
        let snapshot_version = snapshot.version;
        let snapshot_bytes =
            tuf::sign_role("snapshot", snapshot, Some(&keys(&registry.config.keys.snapshot)), "snapshot").unwrap();
        std::fs::write(site::metadata_file(dir, "snapshot", snapshot_version), &snapshot_bytes).unwrap();
        let timestamp = timestamp_doc(
            previous.timestamp.signed.version + 1,
            snapshot_version,
            &snapshot_bytes,
            jiff::Timestamp::now(),
            1,
        );
        let timestamp_bytes =
            tuf::sign_role("timestamp", timestamp, Some(&keys(&registry.config.keys.timestamp)), "timestamp").unwrap();
        std::fs::write(site::timestamp_file(dir), timestamp_bytes).unwrap();
        self.sync();
    }
}

/// Answers "no" to every consent question, and records that it was asked.
#[derive(Default)]
struct Refuses(Mutex<Vec<String>>);

impl Consent for Refuses {
    fn agree(&self, disclosure: &Disclosure) -> bool {
        self.0.lock().unwrap().push(format!("{} {}", disclosure.plugin, disclosure.version));
        false
    }
}

impl Refuses {
    fn asked(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// The installed set, consents and policies of a store, to compare before and after.
fn trusted_state(store: &Store) -> String {
    let state = store.state();
    format!("{:?}\n{:?}", state.plugins(), state.consents)
}

/// Installs `requirement` into `data`, agreeing to everything.
fn install(served: &Served, data: &Path, requirement: &str) {
    let mut store = served.store(data);
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement(requirement).unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
}

/// `acme.clock 1.1.0` as the developer signs it: it asks for `network:internet`.
fn networked_clock() -> Plugin {
    Plugin::new("acme.clock", "1.1.0").permission("network", "internet")
}

/// The attack of item 2 on the site: the 1.1.0 entry no longer lists the permission.
fn drop_permissions(served: &Served) {
    served.compromise_index_doc("acme.clock", |doc| {
        doc.releases.iter_mut().find(|r| r.version == v("1.1.0")).unwrap().permissions.clear();
    });
}

/// The refusal every attack here must end in: the field and both values, and that
/// no package (or delta) of 1.1.0 was downloaded.
fn assert_refused(error: &StoreError, served: &Served, field_and_values: &str) {
    assert!(matches!(error, StoreError::IndexDisagrees { .. }), "{error:?}");
    let message = error.to_string();
    let expected = format!("acme.clock 1.1.0: the index doc of registry `main` lists {field_and_values}");
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("the registry may be compromised"), "{message}");
    assert_eq!(served.hits("acme.clock-1.1.0.zip"), 0);
    assert_eq!(served.hits(".delta"), 0);
}

#[test]
fn update_whose_index_doc_hides_a_signed_permission_is_refused_before_consent_and_download() {
    let served = Served::new(&[Plugin::new("acme.clock", "1.0.0")]);
    let data = tempfile::tempdir().unwrap();
    install(&served, data.path(), "acme.clock");
    served.publish(&[networked_clock()]);
    drop_permissions(&served);

    let mut store = served.store(data.path());
    let before = trusted_state(&store);
    let hooks = RecordingHooks::new();
    let refuses = Refuses::default();
    served.server.reset_counters();
    for plugins in [vec![], vec![id("acme.clock")]] {
        let error = store.update(&plugins, &Session::new(&hooks, &refuses)).unwrap_err();
        assert_refused(&error, &served, "permissions [] but the developer signed [network:internet]");
    }
    // A fresh install of the release is refused the same way.
    let other = tempfile::tempdir().unwrap();
    let mut fresh = served.store(other.path());
    let error =
        fresh.install(&[parse_requirement("acme.clock@1.1.0").unwrap()], &Session::new(&hooks, &refuses)).unwrap_err();
    assert_refused(&error, &served, "permissions [] but the developer signed [network:internet]");
    assert!(fresh.state().plugins().is_empty());

    assert_eq!(refuses.asked(), Vec::<String>::new(), "nobody may be asked about what the index doc says");
    assert!(hooks.calls().is_empty(), "{:?}", hooks.calls());
    assert_eq!(trusted_state(&store), before);
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
    assert!(!store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0")).exists());
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
}

/// A cold install with consent given in advance journals its batch from the index
/// entries while the envelopes are verified: an entry naming another package than the
/// developer signed (1.0.0's, whose bytes do match the entry) is refused by that
/// verification and the journalled batch is undone: no plugin, no journal, no
/// directory. Asked interactively, it is refused before anyone is asked, and before
/// anything is journalled or downloaded.
#[test]
fn a_cold_install_whose_index_entry_names_another_package_is_refused_and_leaves_nothing() {
    let served = Served::new(&[Plugin::new("acme.clock", "1.0.0")]);
    served.publish(&[Plugin::new("acme.clock", "1.1.0")]);
    served.compromise_index_doc("acme.clock", |doc| {
        let old = doc.releases.iter().find(|r| r.version == v("1.0.0")).unwrap().package.clone();
        doc.releases.iter_mut().find(|r| r.version == v("1.1.0")).unwrap().package = old;
    });
    let refuses = Refuses::default();
    let consents: [(&str, &dyn Consent); 2] = [("in advance", &AlwaysAgree), ("asked", &refuses)];
    for (how, consent) in consents {
        let data = tempfile::tempdir().unwrap();
        let mut store = served.store(data.path());
        let hooks = RecordingHooks::new();
        served.server.reset_counters();
        let requirement = parse_requirement("acme.clock@1.1.0").unwrap();
        let error = store.install(&[requirement], &Session::new(&hooks, consent)).unwrap_err();
        let StoreError::Mismatch { what, .. } = &error else { panic!("{how}: {error:?}") };
        assert_eq!(what, "the package digest in the signed manifest and the package blob", "{how}");
        assert!(hooks.calls().is_empty(), "{how}: {:?}", hooks.calls());
        assert!(store.state().plugins().is_empty(), "{how}");
        assert!(store.state().pending().is_empty(), "{how}: the batch is undone: {:?}", store.state().pending());
        assert!(!store.data_dir().plugin_dir(&id("acme.clock")).exists(), "{how}: no directory left");
    }
    assert_eq!(refuses.asked(), Vec::<String>::new(), "nobody asked about a release the developer did not sign");
    assert_eq!(served.hits(".zip"), 0, "asked interactively: no package downloaded");
}

#[test]
fn without_the_attack_the_signed_permission_is_asked_for() {
    // The control: the same update, with an honest index doc, asks for consent (and a
    // "no" keeps 1.0.0). This is what the attack above tried to skip.
    let served = Served::new(&[Plugin::new("acme.clock", "1.0.0")]);
    let data = tempfile::tempdir().unwrap();
    install(&served, data.path(), "acme.clock");
    served.publish(&[networked_clock()]);
    let mut store = served.store(data.path());
    let hooks = RecordingHooks::new();
    let refuses = Refuses::default();
    let error = store.update(&[], &Session::new(&hooks, &refuses)).unwrap_err();
    assert!(matches!(error, StoreError::ConsentRefused { .. }), "{error:?}");
    assert!(error.to_string().contains("network:internet"), "{error}");
    assert_eq!(refuses.asked(), ["acme.clock 1.1.0"]);
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
}

#[test]
fn scheduled_update_never_applies_an_update_whose_index_doc_hides_a_permission() {
    use trellis_client::policy::{PolicyOverride, UpdateMode};

    let served = Served::new(&[Plugin::new("acme.clock", "1.0.0")]);
    let data = tempfile::tempdir().unwrap();
    install(&served, data.path(), "acme.clock");
    served.publish(&[networked_clock()]);
    drop_permissions(&served);

    let mut store = served.store(data.path());
    store
        .update_state(|s| {
            s.policies
                .plugins
                .insert(id("acme.clock"), PolicyOverride { mode: Some(UpdateMode::Auto), ..Default::default() });
            s.last_update_check = None;
        })
        .unwrap();
    let before = trusted_state(&store);
    let hooks = RecordingHooks::new();
    let refuses = Refuses::default();
    served.server.reset_counters();

    // The update check sees the disagreement, so no policy can decide on the index doc's word.
    let error = store.check_updates(&[], &Session::new(&hooks, &refuses)).unwrap_err();
    assert_refused(&error, &served, "permissions [] but the developer signed [network:internet]");
    let error = store.scheduled_update(&Session::new(&hooks, &refuses)).unwrap_err();
    assert_refused(&error, &served, "permissions [] but the developer signed [network:internet]");

    assert!(refuses.asked().is_empty());
    assert!(hooks.calls().is_empty(), "{:?}", hooks.calls());
    assert_eq!(trusted_state(&store), before);
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
    assert!(!store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0")).exists());
}

#[test]
fn index_doc_disagreeing_with_the_signed_manifest_on_any_field_is_refused() {
    type Change = fn(&mut trellis_schema::index::IndexRelease);
    let cases: [(&str, Plugin, Change, &str); 4] = [
        (
            "dependencies",
            Plugin::new("acme.clock", "1.1.0").depends_on("acme.time-core", "^1"),
            |r| r.dependencies.clear(),
            "dependencies [] but the developer signed [acme.time-core ^1]",
        ),
        (
            "channel",
            Plugin::new("acme.clock", "1.1.0").channel("beta"),
            |r| r.channel = trellis_schema::plugin::Channel::Stable,
            "channel stable but the developer signed beta",
        ),
        (
            "host requirement",
            Plugin::new("acme.clock", "1.1.0"),
            |r| r.host.api_version_requirement = semver::VersionReq::STAR,
            "host requirement trellis-demo-host * but the developer signed trellis-demo-host ^1",
        ),
        (
            "platforms",
            Plugin::new("acme.clock", "1.1.0"),
            |r| r.platforms.push(trellis_schema::plugin::Platform::LinuxX86_64),
            "platforms [any, linux-x86_64] but the developer signed [any]",
        ),
    ];
    for (field, release, change, message) in cases {
        let served = Served::new(&[Plugin::new("acme.time-core", "1.0.0"), Plugin::new("acme.clock", "1.0.0")]);
        let data = tempfile::tempdir().unwrap();
        install(&served, data.path(), "acme.clock");
        served.publish(&[release]);
        served.compromise_index_doc("acme.clock", |doc| {
            change(doc.releases.iter_mut().find(|r| r.version == v("1.1.0")).unwrap());
        });

        let mut store = served.store(data.path());
        let before = trusted_state(&store);
        let hooks = RecordingHooks::new();
        served.server.reset_counters();
        let error = store.update(&[], &Session::new(&hooks, &AlwaysAgree)).unwrap_err();
        assert_refused(&error, &served, message);
        assert!(hooks.calls().is_empty(), "{field}: {:?}", hooks.calls());
        assert_eq!(trusted_state(&store), before, "{field}");
        assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"), "{field}");

        // The operator's audit of the site reports it too.
        let source = trellis_index::verify::Source::Dir(served.site.site.path().to_owned());
        let audit = trellis_index::verify::verify(&source, None, jiff::Timestamp::now());
        let expected = format!("acme.clock 1.1.0: the index doc lists {message}; clients refuse the release");
        assert_eq!(audit.problems, [expected], "{field}");
    }
}

/// A plugin whose entry point is ~200 KB of text, so the builder makes a delta.
fn big(version: &str, edited: bool) -> Plugin {
    let mut script = String::from("#!/bin/sh\n");
    for line in 0..4_000u32 {
        let word = line.wrapping_mul(2_654_435_761).rotate_left(line % 32);
        let text = if edited && line % 1_000 == 7 { "changed in 1.1.0".to_owned() } else { format!("{word:08x}") };
        script.push_str(&format!("# line {line}: {text} {}\n", word ^ 0x5a5a_5a5a));
    }
    Plugin { script, ..Plugin::new("acme.clock", version) }
}

/// `bytes` (a delta) with its header re-written by `change` (the framing recomputed).
fn rewrite_delta_header(bytes: &[u8], version: u32, change: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let prefix = trellis_schema::delta::PREFIX_LEN;
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[prefix..prefix + header_len]).unwrap();
    change(&mut header);
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[prefix + header_len..]);
    out
}

#[cfg(unix)]
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0
}

#[cfg(unix)]
#[test]
fn file_modes_of_a_release_rebuilt_from_a_delta_come_from_the_signed_manifest() {
    // The attacker swaps in a delta (signed into the index doc with the online keys)
    // whose header marks LICENSE executable and the entry point not. Format 1 carried
    // such flags and is refused now; format 2 has no modes, so the flags are unknown
    // fields and the header is refused. Either way the package is installed instead,
    // and the builder's own delta (no flags) is applied: modes come from the signed
    // manifest in every case.
    let current = trellis_schema::delta::FORMAT_VERSION;
    for (format, flags, by_delta) in [(current, false, true), (current, true, false), (1, true, false)] {
        let case = format!("format {format}, flags in the header: {flags}");
        let served = Served::new(&[big("1.0.0", false)]);
        let data = tempfile::tempdir().unwrap();
        install(&served, data.path(), "acme.clock");
        served.publish(&[big("1.1.0", true)]);
        if flags {
            let made = served.site.blob_files("1.0.0_1.1.0.delta");
            let evil = rewrite_delta_header(&std::fs::read(&made[0]).unwrap(), format, |header| {
                for file in header["files"].as_array_mut().unwrap() {
                    let path = file["path"].as_str().unwrap().to_owned();
                    file["executable"] = (path == "LICENSE").into();
                }
            });
            let sha = trellis_schema::Sha256::of(&evil);
            let target = "deltas/acme.clock/1.0.0_1.1.0.delta";
            std::fs::write(site::target_file(served.site.site.path(), target, &sha), &evil).unwrap();
            served.compromise_index_doc("acme.clock", |doc| {
                let release = doc.releases.iter_mut().find(|r| r.version == v("1.1.0")).unwrap();
                release.deltas[0].blob.sha256 = sha;
                release.deltas[0].blob.length = evil.len() as u64;
            });
        }

        let mut store = served.store(data.path());
        let hooks = RecordingHooks::new();
        let report = store.update(&[], &Session::new(&hooks, &AlwaysAgree)).unwrap();
        assert_eq!(report.updated, [(id("acme.clock"), v("1.0.0"), v("1.1.0"))], "{case}");
        assert_eq!(report.transfers[0].delta_from.is_some(), by_delta, "{case}: {report:?}");
        let dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0"));
        assert!(executable(&dir.join("bin/any/run.sh")), "{case}: the signed manifest says executable");
        assert!(!executable(&dir.join("LICENSE")), "{case}: the signed manifest says not executable");
        assert!(!executable(&dir.join("trellis-manifest.json")), "{case}");
        assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()), "{case}");
    }
}

#[cfg(unix)]
#[test]
fn file_modes_of_an_extracted_package_come_from_the_signed_manifest_not_the_zip() {
    use trellis_client::package::{Limits, Package};
    use trellis_tests::hostile::{MODE_FILE, RawEntry, RawZip, manifest_json, release_for};

    // ZIP attributes that contradict the signed manifest both ways: the binary is
    // 0644 in the archive, the licence 0755.
    let files: Vec<(&str, &[u8])> = vec![("LICENSE", b"MIT License\n"), ("bin/linux-x86_64/clock", b"\x7fELF clock")];
    let mut entries: Vec<RawEntry> = files.iter().map(|(p, c)| RawEntry::file(p, c.to_vec())).collect();
    entries[0].external_attributes = 0o100_755 << 16;
    entries[1].external_attributes = MODE_FILE << 16;
    entries.push(RawEntry::file("trellis-manifest.json", manifest_json(&files)));
    let bytes = RawZip::new(entries).to_bytes();
    let manifest = release_for(&bytes, &files);
    assert_eq!(manifest.files.iter().map(|f| f.executable).collect::<Vec<_>>(), [false, true]);

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("acme.clock");
    let package = Package::from_bytes(bytes, &manifest, &Limits::default()).unwrap();
    assert!(package.entries()[0].executable && !package.entries()[1].executable, "the ZIP says the opposite");
    package.extract(&dest).unwrap();
    assert!(executable(&dest.join("bin/linux-x86_64/clock")));
    assert!(!executable(&dest.join("LICENSE")));
}

#[test]
fn a_package_of_the_format_before_signed_modes_is_refused_with_a_message_to_repack() {
    use trellis_client::package::{Limits, Package};
    use trellis_tests::hostile::{RawEntry, RawZip, content_manifest};

    let files: Vec<(&str, &[u8])> = vec![("LICENSE", b"MIT License\n")];
    for format in [None, Some(1), Some(3)] {
        let mut manifest = serde_json::to_value(content_manifest(&files)).unwrap();
        let object = manifest.as_object_mut().unwrap();
        object.remove("format");
        for file in object["files"].as_array_mut().unwrap() {
            file.as_object_mut().unwrap().remove("executable");
        }
        if let Some(format) = format {
            object.insert("format".into(), format.into());
        }
        let entries = vec![
            RawEntry::file("LICENSE", b"MIT License\n".to_vec()),
            RawEntry::file("trellis-manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ];
        let error = Package::from_bytes_unsigned(RawZip::new(entries).to_bytes(), &Limits::default()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("re-pack and re-sign the plugin"), "{format:?}: {message}");
    }
}

/// The prefetch hint is in the index doc, which the online bins key signs: an attacker
/// holding it can name any plugins there (a plugin the app does not need, the app
/// itself, a hundred that do not exist). That changes which docs a client asks for
/// ahead, at most [`PREFETCH_MAX`] of them, never what it installs: the resolver
/// reads the dependencies of the signed releases, and of a plugin only hinted at
/// nothing is downloaded besides its doc and the small developer envelope its doc
/// vouches for (what verifying it would read first, as for any dependency fetched
/// ahead): no package.
#[test]
fn a_prefetch_hint_signed_by_the_online_keys_changes_what_is_fetched_not_what_is_installed() {
    use trellis_schema::index::PREFETCH_MAX;
    let served = Served::new(&[
        Plugin::new("acme.lib", "1.0.0"),
        Plugin::new("acme.evil", "1.0.0"),
        Plugin::new("acme.app", "1.0.0").depends_on("acme.lib", "^1"),
    ]);
    served.compromise_index_doc("acme.app", |doc| {
        assert_eq!(doc.prefetch, [id("acme.lib")], "the hint the build made");
        let ghosts = (0..100).map(|n| id(&format!("acme.ghost{n}")));
        doc.prefetch = [id("acme.evil"), id("acme.app")].into_iter().chain(ghosts).collect();
    });
    let data = tempfile::tempdir().unwrap();
    let mut store = served.store(data.path());
    served.server.reset_counters();
    let hooks = RecordingHooks::new();
    let report = store.install(&[parse_requirement("acme.app").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
    let installed: Vec<String> = report.installed.iter().map(|(id, v)| format!("{id} {v}")).collect();
    assert_eq!(installed, ["acme.lib 1.0.0", "acme.app 1.0.0"]);

    let hits = served.server.hits();
    let asked = |what: &str| hits.iter().filter(|h| h.path.contains(what)).map(|h| h.path.clone()).collect::<Vec<_>>();
    // The hint was followed: evil's doc came with the wave after the app's...
    assert!(asked("acme.evil").iter().any(|p| p.starts_with("/targets/index/")), "{:#?}", asked("acme.evil"));
    // ...and nothing else of it but its envelope.
    let other = |p: &&String| !p.starts_with("/targets/index/") && !p.ends_with(".dsse");
    assert_eq!(asked("acme.evil").iter().filter(other).count(), 0, "{:#?}", asked("acme.evil"));
    // At most PREFETCH_MAX names of the hint were asked for, the app and evil among them.
    let ghosts: BTreeMap<String, usize> = asked("acme.ghost").into_iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p.rsplit('/').next().unwrap().to_owned()).or_default() += 1;
        m
    });
    assert!(!ghosts.is_empty() && ghosts.len() <= PREFETCH_MAX - 2, "{} ghosts asked for", ghosts.len());
    assert_eq!(trusted_state(&store).matches("acme.evil").count(), 0);
}
