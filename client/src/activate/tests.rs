use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::hooks::{Hook, HookContext, HostHooks, RecordingHooks};
use crate::state::{InstallReason, InstalledRelease, StateError};

fn clock() -> PluginId {
    "acme.clock".parse().unwrap()
}

fn public() -> RegistryName {
    "public".parse().unwrap()
}

fn v(major: u64) -> Version {
    Version::new(major, 0, 0)
}

fn release(major: u64) -> InstalledRelease {
    InstalledRelease { version: v(major), dependencies: vec![], package_sha256: None }
}

/// The files of a release: their content names the plugin and the release, so a file
/// of another release, or a missing one, shows.
fn expected_files(plugin: &PluginId, version: &Version) -> BTreeMap<String, String> {
    ["plugin.json", "bin/any/main.js", "resources/icon.svg"]
        .into_iter()
        .map(|name| (name.to_owned(), format!("{plugin} {version} {name}")))
        .collect()
}

/// Writes a release's files one by one, with a crash point before each, as the worst
/// extraction could (the real one stages and renames).
fn write_release(tx: &mut Transaction<'_>) -> Result<(), ActivateError> {
    let dir = tx.target_dir().unwrap();
    let files = expected_files(&tx.operation().plugin, tx.operation().to.as_ref().unwrap());
    for (name, content) in files {
        tx.checkpoint()?;
        let path = dir.join(&name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    Ok(())
}

/// Files actually under `dir`, relative paths with `/`.
fn files_in(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
                found.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    found
}

fn open(dir: &DataDir) -> StateStore {
    StateStore::open(dir.clone()).unwrap()
}

fn install(store: &mut StateStore, plugin: &PluginId, major: u64) -> Result<(), ActivateError> {
    let mut tx = begin_install(store, plugin, release(major), public(), InstallReason::Requested)?;
    write_release(&mut tx)?;
    tx.staged()?;
    tx.switch()?;
    tx.finish()
}

fn update(store: &mut StateStore, plugin: &PluginId, major: u64) -> Result<(), ActivateError> {
    let mut tx = begin_update(store, plugin, release(major))?;
    if !tx.target_is_ready() {
        write_release(&mut tx)?;
        tx.staged()?;
    }
    tx.stopped()?;
    tx.switch()?;
    tx.finish()
}

/// An update whose new release fails to start: revert, then undo.
fn failed_update(store: &mut StateStore, plugin: &PluginId, major: u64) -> Result<(), ActivateError> {
    let mut tx = begin_update(store, plugin, release(major))?;
    if !tx.target_is_ready() {
        write_release(&mut tx)?;
        tx.staged()?;
    }
    tx.stopped()?;
    tx.switch()?;
    tx.revert()?;
    tx.abort()
}

fn rollback(store: &mut StateStore, plugin: &PluginId) -> Result<(), ActivateError> {
    let mut tx = begin_rollback(store, plugin)?;
    tx.stopped()?;
    tx.switch()?;
    tx.finish()
}

fn remove(store: &mut StateStore, plugin: &PluginId) -> Result<(), ActivateError> {
    let mut tx = begin_remove(store, plugin)?;
    fs::create_dir_all(tx.data_dir().config_dir(plugin)).unwrap();
    tx.stopped()?;
    tx.switch()?;
    tx.finish()
}

/// The invariant, checked on a freshly opened store: no journal, every installed
/// plugin's active (and kept previous) release complete, nothing unreferenced left in
/// its directory, the pointer in line with the state. Returns the active releases.
fn assert_whole(dir: &DataDir) -> BTreeMap<PluginId, Version> {
    let store = StateStore::open(dir.clone()).expect("the state file parses");
    assert_whole_store(&store)
}

/// [`assert_whole`] on an open store.
fn assert_whole_store(store: &StateStore) -> BTreeMap<PluginId, Version> {
    let dir = store.data_dir();
    assert!(store.state().pending().is_empty(), "journal left: {:?}", store.state().pending());
    let mut active = BTreeMap::new();
    for (plugin, record) in store.state().plugins() {
        let mut wanted = vec![record.active.version.to_string(), "current".to_owned()];
        for release in std::iter::once(&record.active).chain(&record.previous) {
            let path = dir.release_dir(plugin, &release.version);
            assert_eq!(files_in(&path), expected_files(plugin, &release.version), "{} is not whole", path.display());
        }
        wanted.extend(record.previous.as_ref().map(|p| p.version.to_string()));
        let mut present: Vec<String> = fs::read_dir(dir.plugin_dir(plugin))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        wanted.sort();
        assert_eq!(present, wanted, "unreferenced entries in the directory of {plugin}");
        let pointer: CurrentPointer = serde_json::from_slice(&fs::read(dir.current_pointer(plugin)).unwrap()).unwrap();
        assert_eq!(&pointer.record, record);
        active.insert(plugin.clone(), record.active.version.clone());
    }
    if let Ok(entries) = fs::read_dir(dir.plugins_dir()) {
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let id: PluginId = name.parse().unwrap();
            assert!(store.state().plugin(&id).is_some(), "directory of uninstalled {id} left behind");
        }
    }
    active
}

fn is_crash(error: &ActivateError) -> bool {
    matches!(error, ActivateError::State(StateError::InjectedCrash))
}

#[test]
fn install_update_rollback_remove_keep_one_previous_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    install(&mut store, &clock(), 1).unwrap();
    assert_eq!(assert_whole_store(&store)[&clock()], v(1));
    update(&mut store, &clock(), 2).unwrap();
    update(&mut store, &clock(), 3).unwrap();
    let record = store.state().plugin(&clock()).unwrap().clone();
    assert_eq!((record.active.version, record.previous.map(|p| p.version)), (v(3), Some(v(2))));
    assert!(!dir.release_dir(&clock(), &v(1)).exists(), "releases older than the previous one are deleted");
    assert_eq!(assert_whole_store(&store)[&clock()], v(3));

    rollback(&mut store, &clock()).unwrap();
    let record = store.state().plugin(&clock()).unwrap().clone();
    assert_eq!((record.active.version, record.previous.map(|p| p.version)), (v(2), Some(v(3))));
    assert_eq!(assert_whole_store(&store)[&clock()], v(2));

    store.update(|s| s.pins.insert(clock(), v(2))).unwrap();
    remove(&mut store, &clock()).unwrap();
    assert!(store.state().plugin(&clock()).is_none());
    assert!(store.state().pins.is_empty(), "pins of a removed plugin go with it");
    assert!(!dir.plugin_dir(&clock()).exists());
    assert!(!dir.config_dir(&clock()).exists());
    assert!(assert_whole_store(&store).is_empty());
}

#[test]
fn update_to_the_kept_previous_release_reuses_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    install(&mut store, &clock(), 1).unwrap();
    update(&mut store, &clock(), 2).unwrap();
    rollback(&mut store, &clock()).unwrap();
    let tx = begin_update(&mut store, &clock(), release(2)).unwrap();
    assert!(tx.target_is_ready());
    drop(tx);
    update(&mut store, &clock(), 2).unwrap();
    assert_eq!(assert_whole_store(&store)[&clock()], v(2));
}

#[test]
fn update_whose_start_fails_goes_back_to_the_running_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    install(&mut store, &clock(), 1).unwrap();
    let hooks = RecordingHooks::new();
    hooks.fail(Hook::Start, &clock(), Some(v(2)));

    // The update sequence a lifecycle runs, with the host's hooks between the steps.
    let mut tx = begin_update(&mut store, &clock(), release(2)).unwrap();
    write_release(&mut tx).unwrap();
    tx.staged().unwrap();
    let (old_path, new_path) = (dir.release_dir(&clock(), &v(1)), tx.target_dir().unwrap());
    let (plugin, old, new) = (clock(), v(1), v(2));
    let old_ctx = HookContext { plugin: &plugin, version: &old, path: &old_path };
    let new_ctx = HookContext { plugin: &plugin, version: &new, path: &new_path };
    hooks.stop(old_ctx).unwrap();
    tx.stopped().unwrap();
    tx.switch().unwrap();
    assert!(hooks.start(new_ctx).is_err());
    tx.revert().unwrap();
    hooks.start(old_ctx).unwrap();
    tx.abort().unwrap();

    assert_eq!(hooks.trace(), ["stop acme.clock 1.0.0", "start acme.clock 2.0.0", "start acme.clock 1.0.0"]);
    assert_eq!(assert_whole_store(&store)[&clock()], v(1));
    assert!(!new_path.exists(), "the failed release's files are gone");
}

#[test]
fn operations_are_refused_while_an_interrupted_one_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    store.crash_after = Some(1);
    let err = install(&mut store, &clock(), 1).unwrap_err();
    assert!(is_crash(&err), "{err}");
    drop(store);
    let mut store = open(&dir);
    let err = install(&mut store, &clock(), 1).unwrap_err();
    assert!(matches!(err, ActivateError::Pending { .. }), "{err}");
    assert!(err.to_string().contains("interrupted install of acme.clock 1.0.0"), "{err}");
    let recovery = recover(&mut store).unwrap().pop().unwrap();
    assert_eq!(recovery.outcome, Outcome::RolledBack);
    assert_eq!(recovery.to_string(), "an interrupted install of acme.clock was undone; acme.clock is not installed");
    install(&mut store, &clock(), 1).unwrap();
    assert!(recover(&mut store).unwrap().is_empty());
}

#[test]
fn plugin_of_a_vendor_bound_to_another_registry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(&DataDir::new(tmp.path()));
    install(&mut store, &clock(), 1).unwrap();
    let other: PluginId = "acme.calendar".parse().unwrap();
    let err =
        begin_install(&mut store, &other, release(1), "mirror".parse().unwrap(), InstallReason::Requested).unwrap_err();
    assert!(matches!(&err, ActivateError::VendorBoundElsewhere { bound, .. } if bound.as_str() == "public"), "{err}");
    assert!(err.to_string().contains("dependency-confusion"), "{err}");
    assert!(store.state().pending().is_empty(), "a refusal journals nothing");
}

#[test]
fn misuse_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(&DataDir::new(tmp.path()));
    assert!(matches!(begin_remove(&mut store, &clock()), Err(ActivateError::NotInstalled { .. })));
    install(&mut store, &clock(), 1).unwrap();
    assert!(matches!(begin_rollback(&mut store, &clock()), Err(ActivateError::NoPrevious { .. })));
    assert!(matches!(begin_update(&mut store, &clock(), release(1)), Err(ActivateError::SameRelease { .. })));
    let err = begin_install(&mut store, &clock(), release(2), public(), InstallReason::Requested).unwrap_err();
    assert!(err.to_string().contains("already installed (1.0.0 is active)"), "{err}");

    let mut tx = begin_update(&mut store, &clock(), release(2)).unwrap();
    let err = tx.staged().unwrap_err();
    assert!(matches!(err, ActivateError::ReleaseMissing { .. }), "{err}");
    let err = tx.switch().unwrap_err();
    assert!(err.to_string().contains("switch is not possible"), "{err}");
    tx.abort().unwrap();
    assert_eq!(assert_whole_store(&store)[&clock()], v(1));
}

#[test]
fn rollback_to_a_previous_release_deleted_by_hand_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    install(&mut store, &clock(), 1).unwrap();
    update(&mut store, &clock(), 2).unwrap();
    fs::remove_dir_all(dir.release_dir(&clock(), &v(1))).unwrap();
    let err = begin_rollback(&mut store, &clock()).unwrap_err();
    assert!(matches!(err, ActivateError::ReleaseMissing { .. }), "{err}");
    assert!(store.state().pending().is_empty(), "a refusal journals nothing");
    assert_eq!(store.state().plugin(&clock()).unwrap().active.version, v(2));
}

#[test]
fn dropping_an_unfinished_transaction_settles_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    install(&mut store, &clock(), 1).unwrap();
    {
        let mut tx = begin_update(&mut store, &clock(), release(2)).unwrap();
        write_release(&mut tx).unwrap();
        tx.staged().unwrap();
    }
    assert!(store.state().pending().is_empty());
    drop(store);
    assert_eq!(assert_whole(&dir)[&clock()], v(1));
}

#[test]
fn sweep_deletes_stray_files_of_installed_plugins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    install(&mut store, &clock(), 1).unwrap();
    let stray = dir.plugin_dir(&clock()).join(".trellis-tmp-x");
    fs::create_dir_all(stray.join("bin")).unwrap();
    fs::create_dir_all(dir.release_dir(&clock(), &v(9))).unwrap();
    let deleted = sweep(&mut store).unwrap();
    assert_eq!(deleted, [stray, dir.release_dir(&clock(), &v(9))]);
    drop(store);
    assert_whole(&dir);
}

type Scenario = fn(&mut StateStore) -> Result<(), ActivateError>;

/// Each operation, run from a data dir prepared by `setup`.
fn scenarios() -> Vec<(&'static str, Scenario, Scenario)> {
    fn nothing(_: &mut StateStore) -> Result<(), ActivateError> {
        Ok(())
    }
    fn one(store: &mut StateStore) -> Result<(), ActivateError> {
        install(store, &clock(), 1)
    }
    fn two(store: &mut StateStore) -> Result<(), ActivateError> {
        install(store, &clock(), 1)?;
        update(store, &clock(), 2)
    }
    vec![
        ("install", nothing, |s| install(s, &clock(), 1)),
        ("update", one, |s| update(s, &clock(), 2)),
        ("update past previous", two, |s| update(s, &clock(), 3)),
        ("update to previous", two, |s| {
            rollback(s, &clock())?;
            update(s, &clock(), 2)
        }),
        ("failed update", two, |s| failed_update(s, &clock(), 3)),
        ("rollback", two, |s| rollback(s, &clock())),
        ("remove", two, |s| remove(s, &clock())),
    ]
}

/// Runs `scenario` with a crash before effect number `crash_at` (counted from after
/// setup), then recovery with a crash before its effect `recovery_crash_at`, then
/// recovery again. Returns the active releases before and after, or `None` when the
/// scenario had fewer effects than `crash_at` (nothing crashed).
fn crash_and_recover(
    setup: Scenario,
    scenario: Scenario,
    crash_at: usize,
    recovery_crash_at: Option<usize>,
) -> Option<(Option<Version>, Option<Version>)> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    setup(&mut store).unwrap();
    let before = store.state().plugin(&clock()).map(|p| p.active.version.clone());
    store.crash_after = Some(crash_at);
    match scenario(&mut store) {
        Ok(()) => return None,
        Err(e) => assert!(is_crash(&e), "unexpected error {e}"),
    }
    drop(store);

    let mut store = open(&dir);
    store.crash_after = recovery_crash_at;
    if let Err(e) = recover(&mut store) {
        assert!(is_crash(&e), "unexpected error during recovery: {e}");
        drop(store);
        let mut store = open(&dir);
        recover(&mut store).unwrap();
    } else {
        drop(store);
    }
    let after = assert_whole(&dir).get(&clock()).cloned();
    Some((before, after))
}

#[test]
fn every_crash_point_of_every_operation_recovers_to_a_whole_active_release() {
    for (name, setup, scenario) in scenarios() {
        let mut outcomes = std::collections::BTreeSet::new();
        let mut crash_at = 0;
        while let Some((before, after)) = crash_and_recover(setup, scenario, crash_at, None) {
            outcomes.insert(after.clone());
            // Recovery lands on the release before or after the operation, never elsewhere.
            let possible: Vec<Option<Version>> = match name {
                "install" => vec![None, Some(v(1))],
                "update" => vec![Some(v(1)), Some(v(2))],
                "update past previous" | "failed update" => vec![Some(v(2)), Some(v(3))],
                "update to previous" => vec![Some(v(1)), Some(v(2))],
                "rollback" => vec![Some(v(2)), Some(v(1))],
                "remove" => vec![Some(v(2)), None],
                other => panic!("unknown scenario {other}"),
            };
            assert!(possible.contains(&after), "{name}, crash at {crash_at}: {before:?} -> {after:?}");
            crash_at += 1;
        }
        assert!(crash_at >= 3, "{name} has only {crash_at} crash points");
        if name != "failed update" {
            assert_eq!(outcomes.len(), 2, "{name}: crashes should both undo and complete, got {outcomes:?}");
        }
    }
}

#[test]
fn a_crash_during_recovery_is_recovered_by_the_next_start() {
    // Crash points spread over each operation's phases; recovery itself has at most a
    // pointer write, a few deletions and the journal write.
    for (_, setup, scenario) in scenarios() {
        for crash_at in [1, 4, 7, 10] {
            for recovery_crash_at in 0..3 {
                if crash_and_recover(setup, scenario, crash_at, Some(recovery_crash_at)).is_none() {
                    break;
                }
            }
        }
    }
}

#[test]
fn recovery_tells_the_host_what_it_still_owes() {
    // Crash right after the switch of an install: completed, register and start owed.
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    let mut tx = begin_install(&mut store, &clock(), release(1), public(), InstallReason::Requested).unwrap();
    write_release(&mut tx).unwrap();
    tx.staged().unwrap();
    tx.switch().unwrap();
    tx.store.crash_after = Some(0);
    drop(tx);
    drop(store);
    let mut store = open(&dir);
    let recovery = recover(&mut store).unwrap().pop().unwrap();
    assert_eq!((recovery.outcome, &recovery.host), (Outcome::Completed, &HostAction::RegisterAndStart(v(1))));

    // Crash after stopping the running release for an update: undone, start owed.
    let mut tx = begin_update(&mut store, &clock(), release(2)).unwrap();
    write_release(&mut tx).unwrap();
    tx.staged().unwrap();
    tx.stopped().unwrap();
    tx.store.crash_after = Some(0);
    drop(tx);
    drop(store);
    let mut store = open(&dir);
    let recovery = recover(&mut store).unwrap().pop().unwrap();
    assert_eq!((recovery.outcome, &recovery.host), (Outcome::RolledBack, &HostAction::Start(v(1))));
    assert_eq!(recovery.to_string(), "an interrupted update of acme.clock was undone; acme.clock 1.0.0 is active");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random sequences of operations, each possibly crashing at a random point and
    /// recovered on the next start, always leave every plugin whole.
    #[test]
    fn random_operations_with_random_crashes_keep_every_active_release_whole(
        steps in prop::collection::vec((0u8..5, 1u64..6, proptest::option::of(0usize..14)), 1..8)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        for (op, major, crash) in steps {
            let mut store = open(&dir);
            recover(&mut store).unwrap();
            store.crash_after = crash;
            let result = match op {
                0 => install(&mut store, &clock(), major),
                1 => update(&mut store, &clock(), major),
                2 => rollback(&mut store, &clock()),
                3 => remove(&mut store, &clock()),
                _ => failed_update(&mut store, &clock(), major),
            };
            if let Err(e) = result {
                let refused = matches!(e, ActivateError::NotInstalled { .. } | ActivateError::AlreadyInstalled { .. }
                    | ActivateError::SameRelease { .. } | ActivateError::NoPrevious { .. });
                prop_assert!(is_crash(&e) || refused, "unexpected error {}", e);
            }
            drop(store);
            let mut store = open(&dir);
            recover(&mut store).unwrap();
            drop(store);
            assert_whole(&dir);
        }
    }
}

#[test]
fn errors_say_what_failed_and_what_to_do() {
    let journal = Operation {
        kind: OperationKind::Update,
        plugin: clock(),
        from: Some(v(1)),
        to: Some(v(2)),
        phase: Phase::Stopped,
        before: None,
    };
    let errors: Vec<String> = [
        ActivateError::Pending { operation: Box::new(journal.clone()) },
        ActivateError::NotInstalled { plugin: clock() },
        ActivateError::AlreadyInstalled { plugin: clock(), version: v(1) },
        ActivateError::SameRelease { plugin: clock(), version: v(1) },
        ActivateError::NoPrevious { plugin: clock() },
        ActivateError::VendorBoundElsewhere {
            plugin: clock(),
            vendor: "acme".into(),
            bound: public(),
            offered: "mirror".parse().unwrap(),
        },
        ActivateError::ReleaseMissing { plugin: clock(), version: v(2), path: "/data/plugins/acme.clock/2.0.0".into() },
        ActivateError::WrongPhase { step: "finish", operation: Box::new(journal) },
        ActivateError::State(StateError::Corrupt {
            path: "/data/state.json".into(),
            problem: "EOF while parsing an object at line 3 column 0".into(),
        }),
        ActivateError::State(StateError::NewerSchema { path: "/data/state.json".into(), found: 2, supported: 1 }),
        ActivateError::State(StateError::Busy { path: "/data/state.lock".into() }),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    insta::assert_snapshot!(errors.join("\n"));
}

fn batch_plugins() -> Vec<PluginId> {
    ["acme.base", "acme.lib", "acme.app"].iter().map(|id| id.parse().unwrap()).collect()
}

/// Installs `plugins` at `major` as one batch, writing each release's files with a
/// crash point before each file.
/// The requested new installs of `plugins` at release `major`, as a batch journals them.
fn new_installs(plugins: &[PluginId], major: u64) -> Vec<NewInstall> {
    plugins
        .iter()
        .map(|plugin| NewInstall {
            plugin: plugin.clone(),
            release: release(major),
            registry: public(),
            reason: InstallReason::Requested,
        })
        .collect()
}

fn install_batch(store: &mut StateStore, plugins: &[PluginId], major: u64) -> Result<(), ActivateError> {
    let mut batch = begin_installs(store, new_installs(plugins, major))?;
    for (index, plugin) in plugins.iter().enumerate() {
        let dir = batch.target_dir(index).unwrap();
        for (name, content) in expected_files(plugin, &v(major)) {
            batch.checkpoint()?;
            let path = dir.join(&name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
    }
    batch.commit(&mut || {}, |_| {})
}

#[test]
fn every_crash_point_of_a_batch_install_recovers_to_none_or_all_of_it() {
    let plugins = batch_plugins();
    let mut outcomes = std::collections::BTreeSet::new();
    let mut crash_at = 0;
    loop {
        for recovery_crash_at in [None, Some(0), Some(1), Some(3)] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = DataDir::new(tmp.path());
            let mut store = open(&dir);
            install(&mut store, &clock(), 1).unwrap();
            store.crash_after = Some(crash_at);
            match install_batch(&mut store, &plugins, 1) {
                Ok(()) => {
                    assert!(crash_at >= 12, "only {crash_at} crash points in a 3-plugin batch");
                    // The commit is one write (records, cleared journal): a crash is
                    // before it and undoes the batch, or after it and finds it done.
                    assert_eq!(outcomes, [false].into(), "a crash completed part of a batch: {outcomes:?}");
                    drop(store);
                    let active = assert_whole(&dir);
                    assert!(plugins.iter().all(|p| active.get(p) == Some(&v(1))), "{active:?}");
                    return;
                }
                Err(e) => assert!(is_crash(&e), "crash at {crash_at}: unexpected error {e}"),
            }
            drop(store);
            let mut store = open(&dir);
            store.crash_after = recovery_crash_at;
            match recover(&mut store) {
                Ok(recoveries) => {
                    // Nothing journalled yet (a crash before the first write), or one
                    // recovery per operation, all settled the same way.
                    assert!(recoveries.is_empty() || recoveries.len() == 3, "crash at {crash_at}: {recoveries:?}");
                    let same = recoveries.windows(2).all(|w| w[0].outcome == w[1].outcome);
                    assert!(same, "crash at {crash_at}: {recoveries:?}");
                    drop(store);
                }
                Err(e) => {
                    assert!(is_crash(&e), "unexpected error during recovery: {e}");
                    drop(store);
                    recover(&mut open(&dir)).unwrap();
                }
            }
            let active = assert_whole(&dir);
            assert_eq!(active.get(&clock()), Some(&v(1)), "crash at {crash_at}: the plugin installed before moved");
            let batch: Vec<bool> = plugins.iter().map(|p| active.get(p) == Some(&v(1))).collect();
            assert!(
                batch.iter().all(|b| *b) || batch.iter().all(|b| !*b),
                "crash at {crash_at}, recovery crash at {recovery_crash_at:?}: part of the batch installed: {batch:?}"
            );
            outcomes.insert(batch[0]);
        }
        crash_at += 1;
    }
}

#[test]
fn a_switched_batch_journalled_by_an_older_client_is_completed() {
    // Older clients switched a batch and cleaned up in a second write: a crash between
    // them left the journal in phase `Switched`, which recovery still completes.
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    let plugins = batch_plugins();
    let mut journal = Vec::new();
    for plugin in &plugins {
        let target = dir.release_dir(plugin, &v(1));
        for (name, content) in expected_files(plugin, &v(1)) {
            fs::create_dir_all(target.join(&name).parent().unwrap()).unwrap();
            fs::write(target.join(&name), content).unwrap();
        }
        // A stray staging directory the older client had not cleaned up yet.
        fs::create_dir_all(dir.plugin_dir(plugin).join(".trellis-staging-x")).unwrap();
        journal.push(Operation {
            kind: OperationKind::Install,
            plugin: plugin.clone(),
            from: None,
            to: Some(v(1)),
            phase: Phase::Switched,
            before: None,
        });
    }
    store
        .update(|state| {
            for plugin in &plugins {
                let record = InstalledPlugin {
                    registry: public(),
                    active: release(1),
                    previous: None,
                    reason: InstallReason::Requested,
                    disabled: None,
                };
                state.plugins_mut().insert(plugin.clone(), record);
            }
            state.set_pending(journal);
        })
        .unwrap();
    let recoveries = recover(&mut store).unwrap();
    assert_eq!(recoveries.len(), 3);
    assert!(recoveries.iter().all(|r| r.outcome == Outcome::Completed && r.host == HostAction::RegisterAndStart(v(1))));
    drop(store);
    let active = assert_whole(&dir);
    assert!(plugins.iter().all(|p| active.get(p) == Some(&v(1))), "{active:?}");
}

#[test]
fn a_committed_batch_leaves_no_journal_and_writes_its_pointers_and_bindings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    let plugins = batch_plugins();
    let installs = new_installs(&plugins, 1);
    let batch = begin_installs_with(&mut store, installs, |state| {
        state.pins.insert(clock(), v(7));
    })
    .unwrap();
    // What `also` changed went into the journal's write.
    let on_disk: State = serde_json::from_slice(&fs::read(dir.state_file()).unwrap()).unwrap();
    assert_eq!((on_disk.pending().len(), on_disk.pins.get(&clock())), (3, Some(&v(7))));
    for (index, plugin) in plugins.iter().enumerate() {
        let target = batch.target_dir(index).unwrap();
        for (name, content) in expected_files(plugin, &v(1)) {
            fs::create_dir_all(target.join(&name).parent().unwrap()).unwrap();
            fs::write(target.join(&name), content).unwrap();
        }
    }
    let other: VendorId = "other".parse().unwrap();
    let mut steps = 0;
    batch
        .commit(&mut || steps += 1, |state| {
            state.bind_vendor(other.clone(), public());
        })
        .unwrap();
    assert_eq!(steps, 3, "one crash point per pointer");
    let on_disk: State = serde_json::from_slice(&fs::read(dir.state_file()).unwrap()).unwrap();
    assert!(on_disk.pending().is_empty(), "the commit clears the journal: {:?}", on_disk.pending());
    assert_eq!(on_disk.vendor_registry(&other), Some(&public()), "the commit's `also` was written");
    assert_eq!(on_disk.plugins().len(), 3);
    drop(store);
    // Whole, with each pointer naming its record and nothing unreferenced.
    assert_eq!(assert_whole(&dir).len(), 3);
}

#[test]
fn an_aborted_batch_installs_nothing_and_a_refused_one_journals_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    let plugins = batch_plugins();
    let installs = new_installs(&plugins, 1);
    let batch = begin_installs(&mut store, installs.clone()).unwrap();
    let dir0 = batch.target_dir(0).unwrap();
    fs::create_dir_all(&dir0).unwrap();
    fs::write(dir0.join("plugin.json"), "{}").unwrap();
    // The second release was never written: the commit refuses, naming it, and the
    // dropped batch is undone.
    let err = batch.commit(&mut || {}, |_| {}).unwrap_err();
    assert!(matches!(&err, ActivateError::ReleaseMissing { plugin, .. } if plugin == &plugins[1]), "{err}");
    assert!(store.state().pending().is_empty(), "the refused batch was settled");
    assert!(!dir.plugin_dir(&plugins[0]).exists(), "the refused batch's files are deleted");
    // An explicit abort, after files were written.
    let batch = begin_installs(&mut store, installs.clone()).unwrap();
    let dir0 = batch.target_dir(0).unwrap();
    fs::create_dir_all(&dir0).unwrap();
    fs::write(dir0.join("plugin.json"), "{}").unwrap();
    batch.abort().unwrap();
    assert!(store.state().pending().is_empty());
    drop(store);
    assert!(assert_whole(&dir).is_empty());
    assert!(!dir.plugin_dir(&plugins[0]).exists(), "the aborted batch's files are deleted");

    // Two plugins of one vendor from two registries in one batch: refused up front.
    let mut store = open(&dir);
    let mut mixed = installs;
    mixed[2].registry = "mirror".parse().unwrap();
    let err = begin_installs(&mut store, mixed).unwrap_err();
    assert!(matches!(err, ActivateError::VendorBoundElsewhere { .. }), "{err}");
    assert!(store.state().pending().is_empty(), "a refusal journals nothing");
}

#[test]
fn a_batch_journal_is_a_list_and_a_single_operation_keeps_the_old_form() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = open(&dir);
    store.crash_after = Some(1);
    let err = install_batch(&mut store, &batch_plugins(), 1).unwrap_err();
    assert!(is_crash(&err), "{err}");
    drop(store);
    let written: serde_json::Value = serde_json::from_slice(&fs::read(dir.state_file()).unwrap()).unwrap();
    let journal = written["pending"].as_array().expect("a batch journals a list");
    assert_eq!(journal.len(), 3);
    assert_eq!(journal[2]["plugin"], "acme.app");
    assert_eq!(StateStore::open(dir.clone()).unwrap().state().pending().len(), 3);
    recover(&mut open(&dir)).unwrap();

    let mut store = open(&dir);
    store.crash_after = Some(1);
    assert!(is_crash(&install(&mut store, &clock(), 1).unwrap_err()));
    drop(store);
    let written: serde_json::Value = serde_json::from_slice(&fs::read(dir.state_file()).unwrap()).unwrap();
    assert_eq!(written["pending"]["plugin"], "acme.clock", "one operation is journalled as an object: {written}");
}
