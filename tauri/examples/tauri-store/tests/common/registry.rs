//! The example registry (`registry-template/plugins`), built and signed with the real
//! `trellis-index` and served on 127.0.0.1 — what `scripts/demo` does as an operator.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize().expect("repository root")
}

/// `trellis-index`: `TRELLIS_INDEX_BIN`, or built from the main workspace.
fn trellis_index() -> PathBuf {
    if let Some(bin) = std::env::var_os("TRELLIS_INDEX_BIN") {
        return bin.into();
    }
    let repo = repo();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "trellis-index"])
        .current_dir(&repo)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo build -p trellis-index");
    assert!(status.success(), "building trellis-index failed");
    repo.join("target/debug").join(format!("trellis-index{}", std::env::consts::EXE_SUFFIX))
}

/// A signed registry of the example plugins, served on loopback until dropped.
pub(crate) struct Registry {
    bin: PathBuf,
    pub(crate) work: tempfile::TempDir,
    server: Child,
    pub(crate) url: String,
}

impl Registry {
    fn run(&self, args: &[&str]) {
        run(&self.bin, args);
    }

    fn path(&self, rest: &str) -> String {
        self.work.path().join(rest).to_string_lossy().into_owned()
    }

    /// The trusted root to give the client.
    pub(crate) fn root(&self) -> PathBuf {
        self.work.path().join("registry/root/1.root.json")
    }

    /// Builds the registry with `releases` (`acme.clock-1.0.0`, directories of
    /// `registry-template/plugins`) and serves it.
    pub(crate) fn new(releases: &[&str]) -> Self {
        let bin = trellis_index();
        let work = tempfile::tempdir().expect("temp dir");
        let w = |rest: &str| work.path().join(rest).to_string_lossy().into_owned();
        std::fs::create_dir_all(work.path().join("publishers")).expect("mkdir");
        for vendor in ["acme", "contoso"] {
            run(&bin, &["keygen", "--out", &w(&format!("{vendor}.key"))]);
            run(
                &bin,
                &[
                    "publisher",
                    "init",
                    "--id",
                    vendor,
                    "--name",
                    vendor,
                    "--key",
                    &w(&format!("{vendor}.key")),
                    "--out",
                    &w(&format!("publishers/{vendor}.json")),
                ],
            );
        }
        run(&bin, &["init", &w("registry"), "--name", "Trellis example store", "--base-url", "http://127.0.0.1/"]);
        std::fs::create_dir_all(work.path().join("registry/publishers")).expect("mkdir");
        for vendor in ["acme", "contoso"] {
            std::fs::copy(
                work.path().join(format!("publishers/{vendor}.json")),
                work.path().join(format!("registry/publishers/{vendor}.json")),
            )
            .expect("copy publisher");
        }
        let mut registry = Self { bin, work, server: Command::new("true").spawn().expect("true"), url: String::new() };
        for release in releases {
            registry.add(release);
        }
        registry.build();
        let site = registry.path("site");
        let mut server = Command::new(&registry.bin)
            .args(["serve", &site, "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("trellis-index serve");
        let mut line = String::new();
        BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("serve prints its url");
        registry.url = line.trim().rsplit(" at ").next().expect("url").trim_end_matches('/').to_owned() + "/";
        registry.server = server;
        registry
    }

    fn add(&self, release: &str) {
        let tree = repo().join("registry-template/plugins").join(release);
        let vendor = release.split('.').next().expect("vendor");
        let (id, version) = release.rsplit_once('-').expect("id-version");
        let package = self.path(&format!("{release}.zip"));
        self.run(&["pack", &tree.to_string_lossy(), "--out", &package]);
        self.run(&["sign", &package, "--key", &self.path(&format!("{vendor}.key"))]);
        let releases = self.work.path().join("registry/releases").join(id);
        std::fs::create_dir_all(&releases).expect("mkdir releases");
        std::fs::copy(&package, releases.join(format!("{version}.zip"))).expect("copy package");
        std::fs::copy(format!("{package}.dsse"), releases.join(format!("{version}.zip.dsse"))).expect("copy envelope");
    }

    fn build(&self) {
        self.run(&["build", &self.path("registry"), "--out", &self.path("site")]);
    }

    /// Publishes `release` (a directory of `registry-template/plugins`): the site is
    /// rebuilt in place while it is served.
    pub(crate) fn publish(&self, release: &str) {
        self.add(release);
        self.build();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn run(bin: &Path, args: &[&str]) {
    let out = Command::new(bin).args(args).output().expect("run trellis-index");
    assert!(
        out.status.success(),
        "trellis-index {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
