//! Issue 13 §2 for the builder: `trellis-index build` makes every file of a new site
//! version durable with one barrier before `timestamp.json` names it, run under
//! `strace`. Nothing a client can reach (the timestamp names the snapshot, which names
//! the roles, which name the documents and blobs) is published before it is on disk;
//! the files written before the timestamp are unreachable until then, so they need
//! no barrier of their own.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Plugin, Site};

/// The calls traced: the barriers, and the calls that create and publish files.
const TRACED: &str = "trace=fsync,fdatasync,syncfs,sync,sync_file_range,rename,renameat,renameat2,openat";

/// One traced call: its name and its line.
struct Call<'a> {
    name: &'a str,
    line: &'a str,
}

impl Call<'_> {
    fn is_barrier(&self) -> bool {
        matches!(self.name, "fsync" | "fdatasync" | "syncfs" | "sync" | "sync_file_range")
    }

    /// Whether it creates a file of the signed site (under `targets/` or `metadata/`).
    fn creates_site_file(&self, site: &str) -> bool {
        self.name == "openat"
            && self.line.contains("O_CREAT")
            && (self.line.contains(&format!("{site}/targets/")) || self.line.contains(&format!("{site}/metadata/")))
    }

    /// Whether it renames a file over the site's `timestamp.json`.
    fn publishes_timestamp(&self, site: &str) -> bool {
        self.name.starts_with("rename") && self.line.contains(&format!("{site}/metadata/timestamp.json\""))
    }
}

#[test]
fn a_build_makes_every_new_file_durable_with_one_barrier_before_the_timestamp_names_it() {
    let Some(strace) = trellis_tests::tools::require("strace") else { return };
    let site = Site::new();
    site.publish(&[Plugin::new("acme.clock", "1.0.0"), Plugin::new("contoso.images", "1.0.0")]);
    site.add(&Plugin::new("acme.clock", "1.1.0"));
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(&strace)
        .args(["-f", "-qq", "-y", "-e", TRACED, "-o"])
        .arg(log_file.path())
        .arg(common::trellis_index_bin())
        .arg("build")
        .arg(site.registry.path())
        .arg("--out")
        .arg(site.site.path())
        .args(["--only", "acme.clock"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(log_file.path()).unwrap();
    let root = site.site.path().canonicalize().unwrap();
    let root = root.to_str().unwrap();
    let calls: Vec<Call<'_>> = log
        .lines()
        .filter(|line| !line.contains("resumed>"))
        .filter_map(|line| Some(Call { name: line.split_whitespace().nth(1)?.split('(').next()?, line }))
        .collect();

    let timestamp = calls.iter().position(|c| c.publishes_timestamp(root)).expect("the build renames timestamp.json");
    // The timestamp's temporary file (the rename's source), flushed on its own.
    let temporary = calls[timestamp].line.split('"').nth(1).unwrap().to_owned();
    let is_new_file = |c: &Call<'_>| c.creates_site_file(root) && !c.line.contains(&format!("\"{temporary}\""));
    let first = calls.iter().position(|c| c.creates_site_file(root)).expect("the build writes site files");
    let last = calls[..timestamp].iter().rposition(|c| c.creates_site_file(root)).unwrap();
    let created: Vec<&str> = calls[first..timestamp].iter().filter(|c| is_new_file(c)).map(|c| c.line).collect();
    assert!(created.len() >= 5, "a new release writes its blobs, doc, bin, snapshot, ...: {created:#?}");
    // Every file of the new version is flushed after the last is created and before
    // the timestamp names them: by one syncfs (the timestamp's own temp file aside).
    let syncs: Vec<usize> = (first..timestamp).filter(|i| calls[*i].name == "syncfs").collect();
    assert_eq!(syncs.len(), 1, "one syncfs between the first site file and the timestamp:\n{log}");
    let last_new_file = calls[..syncs[0]].iter().rposition(|c| c.creates_site_file(root)).unwrap();
    let after_sync: Vec<&str> = calls[syncs[0]..timestamp].iter().filter(|c| is_new_file(c)).map(|c| c.line).collect();
    assert!(after_sync.is_empty(), "site files created after the barrier, before the timestamp: {after_sync:#?}");
    assert!(last_new_file <= last && first < syncs[0], "{log}");
    // The per-file flushes of the site's files are gone: no fsync names a target.
    let per_file: Vec<&str> = calls[first..timestamp]
        .iter()
        .filter(|c| c.is_barrier() && c.line.contains(&format!("{root}/targets/")))
        .map(|c| c.line)
        .collect();
    assert!(per_file.is_empty(), "per-file flushes: {per_file:#?}");
    assert!(Path::new(&format!("{root}/metadata/timestamp.json")).exists());

    // The storefront's pages are flushed where they are staged, while the build
    // publishes: once the first page moves into place, no page is flushed (only the
    // directories its rename changed, and the storefront's state).
    let placed = calls
        .iter()
        .position(|c| {
            c.name.starts_with("rename")
                && c.line
                    .split('"')
                    .nth(3)
                    .is_some_and(|to| to.ends_with(".html") && !to.contains("/.storefront-staging/"))
        })
        .expect("the build's storefront moves a page into place");
    let staged = calls[..placed].iter().filter(|c| c.is_barrier() && c.line.contains("/.storefront-staging/")).count();
    assert!(staged > 0, "no staged page flushed before the pages moved:\n{log}");
    let late: Vec<&str> =
        calls[placed..].iter().filter(|c| c.is_barrier() && c.line.contains(".html>")).map(|c| c.line).collect();
    assert!(late.is_empty(), "pages flushed after they moved into place: {late:#?}");
}
