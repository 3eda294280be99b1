//! The developer journey through the `trellis-index` binary (issue 11 §3): `new` → `lint`
//! → `pack` → `keygen` → `publisher init` → `sign` → `submit --run` into a clone of a
//! registry repository (a local bare repository stands in for GitHub), the operator
//! merges the branch and the registry builds with the release. Plus the refusals: a
//! project over an existing directory, a bad id, an unsigned package, a release that
//! changed after it was submitted, a record that does not extend the registry's, each
//! leaving the checkout as it was.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn trellis_index(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-index")).current_dir(dir).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, text) = trellis_index(dir, args);
    assert!(success, "trellis-index {args:?} failed: {text}");
    text
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let (success, text) = trellis_index(dir, args);
    assert!(!success, "trellis-index {args:?} succeeded: {text}");
    text
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "git {args:?} failed: {text}");
    text
}

/// Every file of `dir` (but `.git`) with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push((path.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// An operator's registry (`init`, committed and pushed to a bare `origin`), and a
/// developer's clone of it.
struct World {
    root: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        git(dir, &["init", "--quiet", "--bare", "--initial-branch=main", "origin.git"]);
        ok(dir, &["init", "operator", "--name", "Test Store", "--bin-bits", "2"]);
        let operator = dir.join("operator");
        git(&operator, &["init", "--quiet", "--initial-branch=main"]);
        git(&operator, &["add", "-A"]);
        git(&operator, &["commit", "--quiet", "-m", "init"]);
        git(&operator, &["remote", "add", "origin", dir.join("origin.git").to_str().unwrap()]);
        git(&operator, &["push", "--quiet", "-u", "origin", "main"]);
        git(dir, &["clone", "--quiet", "origin.git", "registry"]);
        git(&dir.join("registry"), &["config", "user.name", "Dev"]);
        git(&dir.join("registry"), &["config", "user.email", "dev@example.com"]);
        Self { root }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.root.path().join(name)
    }

    /// A signed package of `id` (project created by `new` in `<name>/`).
    fn developer_release(&self, id: &str, key: &str) -> std::path::PathBuf {
        let dir = self.root.path();
        let name = id.replace('.', "-");
        ok(dir, &["new", id, "--dir", &name]);
        let plugin = self.path(&name).join("plugin");
        ok(dir, &["lint", plugin.to_str().unwrap()]);
        let package = self.path(&format!("{name}.zip"));
        ok(dir, &["pack", plugin.to_str().unwrap(), "--out", package.to_str().unwrap()]);
        ok(dir, &["sign", package.to_str().unwrap(), "--key", key]);
        package
    }
}

#[test]
fn new_lint_pack_sign_submit_and_the_registry_builds_with_it() {
    let world = World::new();
    let dir = world.root.path();
    let created = ok(dir, &["new", "acme.clock"]);
    assert!(created.contains("created plugin project acme.clock"), "{created}");
    for file in ["README.md", ".gitignore", ".github/workflows/plugin.yml", "plugin/plugin.json", "plugin/LICENSE"] {
        assert!(dir.join("acme.clock").join(file).is_file(), "{file} missing");
    }
    assert!(dir.join("acme.clock/plugin/bin/any/clock.sh").is_file());
    assert!(dir.join("acme.clock/plugin/docs/README.md").is_file());
    let workflow = std::fs::read_to_string(dir.join("acme.clock/.github/workflows/plugin.yml")).unwrap();
    assert!(workflow.contains("trellis-index lint plugin/") && workflow.contains("trellis-index pack plugin/"));
    let lint = ok(dir, &["lint", "acme.clock/plugin"]);
    assert!(lint.contains("ok: 0 error(s)"), "{lint}");
    ok(dir, &["pack", "acme.clock/plugin", "--out", "acme.clock-0.1.0.zip"]);
    ok(dir, &["keygen", "--out", "acme.key"]);
    ok(dir, &["publisher", "init", "--id", "acme", "--name", "Acme", "--key", "acme.key", "--out", "acme.json"]);
    ok(dir, &["sign", "acme.clock-0.1.0.zip", "--key", "acme.key"]);

    // Without --run: the files and the commands.
    let registry = world.path("registry");
    let printed = ok(
        dir,
        &["submit", "acme.clock-0.1.0.zip", "--registry", registry.to_str().unwrap(), "--publisher", "acme.json"],
    );
    assert!(printed.contains("prepared acme.clock 0.1.0") && printed.contains("first submission"), "{printed}");
    assert!(printed.contains("checkout -b submit/acme.clock-0.1.0"), "{printed}");
    assert!(printed.contains("gh pr create --head submit/acme.clock-0.1.0"), "{printed}");
    for file in ["publishers/acme.json", "releases/acme.clock/0.1.0.zip", "releases/acme.clock/0.1.0.zip.dsse"] {
        assert!(registry.join(file).is_file(), "{file} not written");
    }
    // With --run (again: the same bytes are a no-op): branch, commit, push.
    let ran = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .current_dir(dir)
        .args(["submit", "acme.clock-0.1.0.zip", "--registry", registry.to_str().unwrap(), "--publisher", "acme.json"])
        .arg("--run")
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    assert!(ran.status.success(), "{text}");
    let branches = git(&world.path("origin.git"), &["branch", "--list"]);
    assert!(branches.contains("submit/acme.clock-0.1.0"), "{branches}");

    // The operator merges the pull request and builds.
    let operator = world.path("operator");
    git(&operator, &["pull", "--quiet", "origin", "submit/acme.clock-0.1.0"]);
    let site = world.path("site");
    let built = ok(dir, &["build", operator.to_str().unwrap(), "--out", site.to_str().unwrap()]);
    assert!(built.contains("indexed 1 plugin(s), 1 release(s)"), "{built}");
    ok(dir, &["verify", site.to_str().unwrap()]);
    let docs: Vec<_> = walkdir::WalkDir::new(site.join("targets/index"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".acme.clock.json"))
        .collect();
    assert_eq!(docs.len(), 1, "the index doc of acme.clock is published");
}

#[test]
fn new_refuses_an_existing_directory_and_a_bad_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("acme.clock")).unwrap();
    std::fs::write(dir.path().join("acme.clock/notes.txt"), "mine").unwrap();
    let err = fails(dir.path(), &["new", "acme.clock"]);
    assert!(err.contains("already exists; refusing to write into it"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path().join("acme.clock")).unwrap().count(), 1);
    for bad in ["clock", "Acme.Clock", "acme..clock", "acme.nul"] {
        let err = fails(dir.path(), &["new", bad]);
        assert!(err.contains("is not a plugin id"), "{bad}: {err}");
        assert!(!dir.path().join(bad).exists(), "{bad} was created");
    }
}

#[test]
fn submit_refuses_unsigned_changed_and_foreign_record_submissions_and_leaves_the_checkout() {
    let world = World::new();
    let dir = world.root.path();
    ok(dir, &["keygen", "--out", "acme.key"]);
    ok(dir, &["publisher", "init", "--id", "acme", "--name", "Acme", "--key", "acme.key", "--out", "acme.json"]);
    let registry = world.path("registry");
    let reg = registry.to_str().unwrap();

    // Not a registry checkout.
    let package = world.developer_release("acme.clock", "acme.key");
    let pkg = package.to_str().unwrap();
    let err = fails(dir, &["submit", pkg, "--registry", dir.to_str().unwrap(), "--publisher", "acme.json"]);
    assert!(err.contains("is not a registry checkout"), "{err}");
    // First submission without a record.
    let before = snapshot(&registry);
    let err = fails(dir, &["submit", pkg, "--registry", reg]);
    assert!(err.contains("the registry has no record of publisher acme: pass your record with --publisher"), "{err}");
    assert_eq!(snapshot(&registry), before);
    // Unsigned.
    std::fs::rename(format!("{pkg}.dsse"), format!("{pkg}.dsse.bak")).unwrap();
    let err = fails(dir, &["submit", pkg, "--registry", reg, "--publisher", "acme.json"]);
    assert!(err.contains("is not signed") && err.contains("trellis-index sign"), "{err}");
    std::fs::rename(format!("{pkg}.dsse.bak"), format!("{pkg}.dsse")).unwrap();
    // Signed by a key the record does not list.
    ok(dir, &["keygen", "--out", "other.key"]);
    let other = world.developer_release("acme.other", "other.key");
    let err = fails(dir, &["submit", other.to_str().unwrap(), "--registry", reg, "--publisher", "acme.json"]);
    assert!(err.contains("acme.other 0.1.0 would be refused by the registry"), "{err}");
    assert_eq!(snapshot(&registry), before);

    // A good first submission, then the same version with other bytes.
    ok(dir, &["submit", pkg, "--registry", reg, "--publisher", "acme.json"]);
    let submitted = snapshot(&registry);
    let tree = world.path("acme-clock/plugin");
    std::fs::write(tree.join("docs/README.md"), "changed after submission\n").unwrap();
    ok(dir, &["pack", tree.to_str().unwrap(), "--out", pkg]);
    std::fs::remove_file(format!("{pkg}.dsse")).unwrap();
    ok(dir, &["sign", pkg, "--key", "acme.key"]);
    let err = fails(dir, &["submit", pkg, "--registry", reg]);
    assert!(err.contains("exists with other content: a published release never changes"), "{err}");
    assert_eq!(snapshot(&registry), submitted);

    // Someone else's version 1 of acme's record: not an extension of the registry's.
    ok(
        dir,
        &[
            "publisher",
            "init",
            "--id",
            "acme",
            "--name",
            "Not Acme",
            "--key",
            "other.key",
            "--out",
            "mallory/acme.json",
        ],
    );
    let err = fails(dir, &["submit", other.to_str().unwrap(), "--registry", reg, "--publisher", "mallory/acme.json"]);
    assert!(err.contains("acme.json"), "{err}");
    assert_eq!(snapshot(&registry), submitted);
}
