//! Durability barriers of an install, counted and ordered on the real `trellis` binary
//! under `strace`: a multi-plugin install is one transaction, so its `fsync`/
//! `fdatasync`/`syncfs` calls do not grow with the number of plugins it installs (the
//! journal and the commit are one state write each; the packages, envelopes, publisher
//! records and pointers are flushed together before the commit; the publishers' pins
//! share one flush), and the journal is durable before the first file, every file
//! before the commit; an update flushes the envelope and publisher record it keeps
//! before renaming them into place. What the barriers
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

/// The system calls traced: the barriers, and the calls that create and publish files.
const TRACED: &str = "trace=fsync,fdatasync,syncfs,sync,sync_file_range,rename,renameat,renameat2,mkdir,mkdirat,openat";
const BARRIER_CALLS: [&str; 5] = ["fsync", "fdatasync", "syncfs", "sync", "sync_file_range"];

fn traced(strace: &Path, data: &Path, args: &[&str]) -> Barriers {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(strace)
        .args(["-f", "-qq", "-y", "-e", TRACED, "-o"])
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
        if BARRIER_CALLS.contains(&call) && !line.contains("resumed>") {
            *calls.entry(call.to_owned()).or_insert(0) += 1;
        }
    }
    Barriers { calls, log }
}

/// Publishes a chain of `n` plugins, adds the registry, installs the last plugin under
/// strace; checks the install is whole and returns its barriers.
fn install_barriers(strace: &Path, n: usize) -> Barriers {
    install_traced(strace, n).0
}

/// [`install_barriers`], with the data dir.
fn install_traced(strace: &Path, n: usize) -> (Barriers, tempfile::TempDir) {
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
    (barriers, data)
}

/// One traced call of the log: its name and the text of its arguments and result.
struct Call<'a> {
    name: &'a str,
    line: &'a str,
}

impl Call<'_> {
    /// Whether it creates or publishes something under `plugins/` (a directory, a
    /// file opened for creation, a rename into it).
    fn writes_plugins(&self) -> bool {
        self.line.contains("/plugins/")
            && match self.name {
                "mkdir" | "mkdirat" => true,
                "openat" => self.line.contains("O_CREAT"),
                "rename" | "renameat" | "renameat2" => true,
                _ => false,
            }
    }

    /// Whether it renames a file over `state.json`.
    fn renames_state(&self) -> bool {
        self.name.starts_with("rename") && self.line.contains("/state.json\"")
    }

    fn is_barrier(&self) -> bool {
        BARRIER_CALLS.contains(&self.name)
    }

    /// Whether it is a flush of the data dir's own directory (`fsync(3</…/data>)`, or
    /// `fsync(3</…/data> <unfinished ...>` while another thread made a call: a cold
    /// install journals while it verifies the envelopes on another thread).
    fn syncs_dir(&self, dir: &Path) -> bool {
        let fd = format!("<{}>", dir.display());
        self.is_barrier() && (self.line.contains(&format!("{fd})")) || self.line.contains(&format!("{fd} <unfinished")))
    }
}

fn calls(log: &str) -> Vec<Call<'_>> {
    log.lines()
        .filter(|line| !line.contains("resumed>"))
        .filter_map(|line| {
            let name = line.split_whitespace().nth(1)?.split('(').next()?;
            Some(Call { name, line })
        })
        .collect()
}

#[test]
fn a_ten_plugin_install_makes_a_bounded_number_of_barriers_whatever_its_size() {
    let Some(strace) = trellis_tests::tools::require("strace") else { return };
    let ten = install_barriers(&strace, 10);
    let two = install_barriers(&strace, 2);
    eprintln!("barriers of a 10-plugin install: {:?}; of a 2-plugin install: {:?}", ten.calls, two.calls);
    // The activation is one transaction: the journal (file + directory, written
    // while the envelopes are verified), one flush of every release's files and pointers and the publishers'
    // pins with the commit, which clears the journal and records the consents and the vendor bindings
    // (syncfs + the pins' directory + the data dir). Nothing after it: a batch of new
    // plugins has no cleanup. Before batching: 116 fsync + 20 syncfs (10 plugins), 28 +
    // 4 (2 plugins); before the one-write commit: 12 (a pin, the consents, the journal,
    // the switch, the cleanup and the bindings, two each); before the pins went with
    // the commit: 6 (their own syncfs + directory).
    assert!(ten.total() <= 5, "a 10-plugin install made {} barriers:\n{}", ten.total(), ten.log);
    assert_eq!(ten.calls.get("syncfs"), Some(&1), "one syncfs (the commit's):\n{}", ten.log);
    assert_eq!(
        ten.total(),
        two.total(),
        "barriers grow with the plugins installed:\n10 plugins:\n{}\n2 plugins:\n{}",
        ten.log,
        two.log
    );
    // Nothing of a plugin is flushed one by one: no fsync names a file under plugins/.
    let per_plugin: Vec<&str> =
        calls(&ten.log).iter().filter(|c| c.is_barrier() && c.line.contains("/plugins/")).map(|c| c.line).collect();
    assert!(per_plugin.len() <= 1, "per-plugin flushes: {per_plugin:#?}");
}

#[test]
fn an_install_journals_before_its_files_and_commits_them_in_one_durable_write() {
    let Some(strace) = trellis_tests::tools::require("strace") else { return };
    let (barriers, data) = install_traced(&strace, 4);
    let root = data.path().canonicalize().unwrap();
    let calls = calls(&barriers.log);
    let first_file = calls.iter().position(Call::writes_plugins).expect("the install writes under plugins/");
    let last_file = calls.iter().rposition(Call::writes_plugins).unwrap();
    let commit = calls.iter().rposition(Call::renames_state).expect("the install writes the state");
    let log = &barriers.log;

    // Rule 1: the journal (the last state write before any plugin file) and its rename
    // are durable before the first file under plugins/.
    let journal = calls[..first_file].iter().rposition(Call::renames_state).expect("a journal before the files");
    assert!(
        calls[journal..first_file].iter().any(|c| c.syncs_dir(&root)),
        "the journal's rename is not made durable before the first file:\n{log}"
    );
    // Rule 2: every file of the batch is flushed (one syncfs) after the last is written
    // and before the commit's rename, which is then made durable.
    assert!(last_file < commit, "files written after the commit:\n{log}");
    assert!(
        calls[last_file..commit].iter().any(|c| c.name == "syncfs"),
        "no syncfs between the last file and the commit:\n{log}"
    );
    assert!(calls[commit..].iter().any(|c| c.syncs_dir(&root)), "the commit's rename is not made durable:\n{log}");
    // The commit is the install's last state write and nothing is flushed after it: a
    // batch of new plugins has no cleanup, and the vendor bindings and consents are
    // written with the commit.
    let after: Vec<&str> =
        calls[commit + 1..].iter().filter(|c| c.is_barrier() && !c.syncs_dir(&root)).map(|c| c.line).collect();
    assert!(after.is_empty(), "barriers or state writes after the commit: {after:#?}");
    // Between the journal and the commit: no state write (the consents go with the
    // commit) and no barrier but the commit's syncfs and the sync of the pins'
    // directory.
    let pins = root.join("metadata/main/publisher-pins");
    let between: Vec<&str> = calls[journal + 1..commit]
        .iter()
        .filter(|c| {
            c.renames_state() || (c.is_barrier() && c.name != "syncfs" && !c.syncs_dir(&root) && !c.syncs_dir(&pins))
        })
        .map(|c| c.line)
        .collect();
    assert!(between.is_empty(), "state writes or per-file flushes inside the transaction: {between:#?}");
    // The publishers' pins go with the commit: renamed after the syncfs that follows
    // the last plugin file (flushed by it, never torn), their directory synced before
    // the commit's rename (so a durable commit has its pins); nothing flushes them
    // before the journal.
    let syncfs = last_file + calls[last_file..].iter().position(|c| c.name == "syncfs").unwrap();
    let pin_renames: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].name.starts_with("rename") && calls[i].line.contains("/publisher-pins/acme.json\""))
        .collect();
    assert_eq!(pin_renames.len(), 1, "the pin of acme is written once:\n{log}");
    assert!(syncfs < pin_renames[0] && pin_renames[0] < commit, "the pin is not renamed inside the commit:\n{log}");
    assert!(
        calls[pin_renames[0]..commit].iter().any(|c| c.syncs_dir(&pins)),
        "the pins' directory is not synced before the commit's rename:\n{log}"
    );
    assert!(
        !calls[..journal].iter().any(|c| c.name == "syncfs"),
        "a syncfs before the journal (the pins' own flush):\n{log}"
    );
}

#[test]
fn an_update_flushes_the_kept_envelope_and_publisher_record_before_renaming_them() {
    let Some(strace) = trellis_tests::tools::require("strace") else { return };
    let site = Site::new();
    site.publish(&chain(1));
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let trellis = |args: &[&str]| {
        let out =
            Command::new(trellis_bin()).arg("--data-dir").arg(data.path()).arg("--yes").args(args).output().unwrap();
        assert!(out.status.success(), "trellis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    trellis(&["registry", "add", "main", &site.url(), "--root", root.path().to_str().unwrap()]);
    trellis(&["install", "acme.p0"]);
    site.publish(&[Plugin::new("acme.p0", "1.1.0").file("resources/data.txt", "new data\n")]);
    let barriers = traced(&strace, data.path(), &["update"]);
    let state: State = serde_json::from_slice(&std::fs::read(data.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state.plugin(&"acme.p0".parse().unwrap()).map(|p| p.active.version.to_string()), Some("1.1.0".into()));

    // Each of the two files the release keeps beside its package files is written to a
    // temp file, flushed, and only then renamed into place (a rename before the flush
    // could leave an empty file there after a power loss), the record before the
    // envelope (a directory with an envelope has its record).
    let calls = calls(&barriers.log);
    let log = &barriers.log;
    let mut renamed = Vec::new();
    for name in
        [trellis_client::store::fetch::PUBLISHER_RECORD_FILE, trellis_client::store::fetch::RELEASE_ENVELOPE_FILE]
    {
        let destination = format!("/1.1.0/{name}\"");
        let rename = calls
            .iter()
            .position(|c| c.name.starts_with("rename") && c.line.contains(&destination))
            .unwrap_or_else(|| panic!("no rename onto {name}:\n{log}"));
        // The temp file is the rename's first quoted path.
        let temp = calls[rename].line.split('"').nth(1).unwrap();
        let created = calls[..rename]
            .iter()
            .rposition(|c| c.name == "openat" && c.line.contains(&format!("\"{temp}\"")) && c.line.contains("O_CREAT"))
            .unwrap_or_else(|| panic!("{temp} not created before its rename:\n{log}"));
        assert!(
            calls[created..rename].iter().any(Call::is_barrier),
            "{name} renamed into place without a flush after its temp file was written:\n{log}"
        );
        renamed.push(rename);
    }
    assert!(renamed[0] < renamed[1], "the envelope renamed before the publisher record:\n{log}");
}
