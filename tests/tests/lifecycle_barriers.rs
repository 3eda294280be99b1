//! Durability barriers of an install, counted on the real `trellis` binary under
//! `strace`: a multi-plugin install is one transaction, so its `fsync`/`fdatasync`/
//! `syncfs` calls do not grow with the number of plugins it installs (the journal,
//! the switch and the cleanup are one state write each; the packages, envelopes and
//! publisher records are flushed together before the switch). What the barriers
//! protect is checked by `lifecycle_crash.rs` (SIGKILL at every step) and the
//! crash-point tests of `client/src/activate`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Plugin, Site, trellis_bin};
use trellis_client::state::State;
use trellis_client::store::verify::check_release_dir;

/// Plugins acme.p0 … acme.p{n-1}; each depends on the one before, so installing the
/// last brings in all `n`.
fn chain(n: usize) -> Vec<Plugin> {
    (0..n)
        .map(|i| {
            let plugin = Plugin::new(&format!("acme.p{i}"), "1.0.0")
                .permission("filesystem", "plugin_directory")
                .file("resources/data.txt", format!("data of plugin {i}\n").repeat(50))
                .file("docs/README.md", format!("# p{i}\n"));
            if i == 0 { plugin } else { plugin.depends_on(&format!("acme.p{}", i - 1), "^1") }
        })
        .collect()
}

/// The barrier calls of one `trellis` run, by call and by the file they flushed.
struct Barriers {
    calls: BTreeMap<String, usize>,
    log: String,
}

impl Barriers {
    fn total(&self) -> usize {
        self.calls.values().sum()
    }
}

fn traced(strace: &Path, data: &Path, args: &[&str]) -> Barriers {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(strace)
        .args(["-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,syncfs,sync,sync_file_range", "-o"])
        .arg(out_file.path())
        .arg(trellis_bin())
        .arg("--data-dir")
        .arg(data)
        .arg("--yes")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trellis {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(out_file.path()).unwrap();
    let mut calls = BTreeMap::new();
    for line in log.lines() {
        // "<pid> fsync(3</tmp/…/state.json>) = 0"
        let call = line.split_whitespace().nth(1).and_then(|c| c.split('(').next()).unwrap_or_default();
        if !call.is_empty() && !line.contains("resumed>") {
            *calls.entry(call.to_owned()).or_insert(0) += 1;
        }
    }
    Barriers { calls, log }
}

/// Publishes a chain of `n` plugins, adds the registry, installs the last plugin under
/// strace; checks the install is whole and returns its barriers.
fn install_barriers(strace: &Path, n: usize) -> Barriers {
    let site = Site::new();
    site.publish(&chain(n));
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let add = Command::new(trellis_bin())
        .arg("--data-dir")
        .arg(data.path())
        .args(["registry", "add", "main", &site.url(), "--root", root.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));

    let last = format!("acme.p{}", n - 1);
    let barriers = traced(strace, data.path(), &["install", &last]);

    let state: State = serde_json::from_slice(&std::fs::read(data.path().join("state.json")).unwrap()).unwrap();
    assert!(state.pending().is_empty(), "journal left behind: {:?}", state.pending());
    assert_eq!(state.plugins().len(), n);
    for (id, plugin) in state.plugins() {
        let dir = data.path().join("plugins").join(id.as_str()).join(plugin.active.version.to_string());
        assert!(check_release_dir(&dir).unwrap().is_empty(), "{id} is not whole");
    }
    barriers
}

#[test]
fn a_ten_plugin_install_makes_a_bounded_number_of_barriers_whatever_its_size() {
    let Some(strace) = trellis_tests::tools::require("strace") else { return };
    let ten = install_barriers(&strace, 10);
    let two = install_barriers(&strace, 2);
    eprintln!("barriers of a 10-plugin install: {:?}; of a 2-plugin install: {:?}", ten.calls, two.calls);
    // The activation is one transaction: journal (file + directory), one flush of every
    // release's files with the switch's state (syncfs + directory), one flush with the
    // cleared journal (syncfs + directory). The rest is the refresh's trusted metadata
    // and the consent write, which do not depend on the number of plugins either.
    // Before batching: 116 fsync + 20 syncfs (10 plugins), 28 + 4 (2 plugins).
    assert!(ten.total() <= 12, "a 10-plugin install made {} barriers:\n{}", ten.total(), ten.log);
    assert_eq!(
        ten.total(),
        two.total(),
        "barriers grow with the plugins installed:\n10 plugins:\n{}\n2 plugins:\n{}",
        ten.log,
        two.log
    );
    // Nothing of a plugin is flushed one by one: no fsync names a file under plugins/.
    let per_plugin: Vec<&str> = ten.log.lines().filter(|l| l.contains("/plugins/")).collect();
    assert!(per_plugin.len() <= 1, "per-plugin flushes: {per_plugin:#?}");
}
