//! Crash safety: the `trellis` CLI is killed at every step of an install and of an
//! update in turn (the hidden `--crash-at N` aborts the process at its Nth step, with
//! no unwinding, no destructors and no buffered writes: what SIGKILL does). After each
//! kill: the state file parses, every active release is whole (its files match the
//! signed manifest), and the next command recovers and completes the operation.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Plugin, Site, trellis_bin};
use trellis_client::state::State;
use trellis_client::store::verify::check_release_dir;

fn run(bin: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(bin).arg("--data-dir").arg(data).arg("--yes").args(args).output().unwrap()
}

fn ok(bin: &Path, data: &Path, args: &[&str]) {
    let out = run(bin, data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A chain acme.p0 <- acme.p1 <- … <- acme.p5 at `version`.
fn chain(version: &str) -> Vec<Plugin> {
    (0..6)
        .map(|i| {
            let plugin = Plugin::new(&format!("acme.p{i}"), version).permission("filesystem", "plugin_directory");
            if i == 0 { plugin } else { plugin.depends_on(&format!("acme.p{}", i - 1), "^1") }
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What must hold right after a kill, before anything recovers.
fn assert_consistent(data: &Path, point: u64) {
    let bytes = std::fs::read(data.join("state.json")).unwrap();
    let state: State = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("kill point {point}: the state file does not parse: {e}"));
    for (id, plugin) in state.plugins() {
        let dir = data.join("plugins").join(id.as_str()).join(plugin.active.version.to_string());
        let problems = check_release_dir(&dir).unwrap();
        assert!(
            problems.is_empty(),
            "kill point {point}: active {id} {} is not whole: {problems:?}",
            plugin.active.version
        );
    }
}

/// Kills `args` at step 1, 2, … until a run completes; returns the number of kill points.
fn sweep(bin: &Path, template: &Path, args: &[&str], expect_version: &str) -> u64 {
    let mut point = 0;
    loop {
        point += 1;
        let data = tempfile::tempdir().unwrap();
        copy_dir(template, data.path());
        let crash = point.to_string();
        let mut with_crash = vec!["--crash-at", crash.as_str()];
        with_crash.extend_from_slice(args);
        let out = run(bin, data.path(), &with_crash);
        if out.status.success() {
            return point - 1;
        }
        assert!(
            out.status.code().is_none() || out.status.code() == Some(134),
            "point {point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_consistent(data.path(), point);
        // The next command recovers (settling the journal) and the operation completes.
        ok(bin, data.path(), args);
        ok(bin, data.path(), &["verify"]);
        let state: State = serde_json::from_slice(&std::fs::read(data.path().join("state.json")).unwrap()).unwrap();
        assert!(state.pending().is_empty(), "point {point}: journal left behind");
        assert_eq!(state.plugins().len(), 6, "point {point}");
        for plugin in state.plugins().values() {
            assert_eq!(plugin.active.version.to_string(), expect_version, "point {point}");
        }
        let stray: Vec<_> = common::walk(&data.path().join("plugins"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".trellis-staging"))
            .collect();
        assert!(stray.is_empty(), "point {point}: staging leftovers {stray:?}");
    }
}

#[test]
fn killing_install_and_update_at_every_step_leaves_a_consistent_recoverable_data_dir() {
    let site = Site::new();
    site.publish(&chain("1.0.0"));
    let bin = trellis_bin();
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();

    let empty = tempfile::tempdir().unwrap();
    ok(&bin, empty.path(), &["registry", "add", "main", &site.url(), "--root", root.path().to_str().unwrap()]);
    let install_points = sweep(&bin, empty.path(), &["install", "acme.p5"], "1.0.0");

    let installed = tempfile::tempdir().unwrap();
    copy_dir(empty.path(), installed.path());
    ok(&bin, installed.path(), &["install", "acme.p5"]);
    site.publish(&chain("1.1.0"));
    let update_points = sweep(&bin, installed.path(), &["update"], "1.1.0");

    eprintln!("kill points: install {install_points}, update {update_points}");
    // The install of the six new plugins is one transaction: the journal, the download,
    // one kill point per extracted release and per pointer, the commit (2 × 6 + 3);
    // each update is its own transaction (about five kill points each).
    assert!(install_points >= 15, "install has {install_points} kill points");
    assert!(update_points >= 25, "update has {update_points} kill points");
    assert!(install_points + update_points >= 40, "{install_points} + {update_points} kill points");
}
