//! The GitHub Actions workflows this repository ships (the registry template's, and the
//! project's own), read as GitHub reads them: YAML 1.2 (`on` is a key, not `true`), a
//! mapping with `name`, `on` and `jobs`, every job with a runner and steps, every step
//! one `run` or one `uses`, every `scripts/…` a step runs present and executable, and
//! every workflow a script or workflow starts by name able to be started by hand.
//!
//! The scripts' behaviour is tested in `pipeline_scripts.rs`; this catches the file a
//! person edits around them (a publish.yml that lost its `name:`/`on:`/`jobs:` lines
//! passed every script test and would never have run on GitHub).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn workflows(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

fn key<'a>(map: &'a Yaml, name: &str) -> &'a Yaml {
    &map[name]
}

/// Problems of one workflow file; `root` is where its `scripts/` live.
fn check(path: &Path, root: &Path) -> Vec<String> {
    let name = path.strip_prefix(repo()).unwrap_or(path).display().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let docs = match YamlLoader::load_from_str(&text) {
        Ok(docs) => docs,
        Err(e) => return vec![format!("{name}: not YAML: {e}")],
    };
    let [doc] = docs.as_slice() else { return vec![format!("{name}: {} YAML documents, not one", docs.len())] };
    let mut problems = Vec::new();
    if doc.as_hash().is_none() {
        return vec![format!("{name}: not a mapping")];
    }
    if key(doc, "name").as_str().is_none() {
        problems.push(format!("{name}: no `name:`"));
    }
    if key(doc, "on").is_badvalue() {
        problems.push(format!("{name}: no `on:` (nothing would ever start it)"));
    }
    let Some(jobs) = key(doc, "jobs").as_hash().filter(|j| !j.is_empty()) else {
        problems.push(format!("{name}: no `jobs:`"));
        return problems;
    };
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap_or("?");
        if !key(job, "uses").is_badvalue() {
            continue; // a reusable workflow call
        }
        if key(job, "runs-on").is_badvalue() {
            problems.push(format!("{name}: job {job_name} has no `runs-on:`"));
        }
        let Some(steps) = key(job, "steps").as_vec().filter(|s| !s.is_empty()) else {
            problems.push(format!("{name}: job {job_name} has no steps"));
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            let (run, uses) = (key(step, "run"), key(step, "uses"));
            if run.is_badvalue() == uses.is_badvalue() {
                problems.push(format!("{name}: job {job_name} step {i} needs exactly one of `run:` or `uses:`"));
            }
            for script in run.as_str().map(scripts_named).unwrap_or_default() {
                let file = root.join(&script);
                if !is_executable(&file) {
                    problems.push(format!("{name}: job {job_name} runs {script}, which is missing or not executable"));
                }
            }
        }
    }
    problems
}

/// `scripts/…` paths a `run:` block invokes.
fn scripts_named(run: &str) -> Vec<String> {
    run.split(|c: char| c.is_whitespace() || c == ';' || c == '"' || c == '\'' || c == '(' || c == ')')
        .map(|w| w.trim_start_matches("./"))
        .filter(|w| w.starts_with("scripts/") && w.len() > "scripts/".len())
        .map(str::to_owned)
        .collect()
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    meta.is_file()
}

/// Workflows a script or a workflow starts by file name (`gh workflow run X.yml`).
fn started_by_name(dir: &Path) -> Vec<(String, String)> {
    let mut started = Vec::new();
    let mut files = workflows(&dir.join(".github/workflows"));
    if let Ok(scripts) = std::fs::read_dir(dir.join("scripts")) {
        files.extend(scripts.map(|e| e.unwrap().path()));
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (_, rest) in text.match_indices("gh workflow run ").map(|(i, _)| ((), &text[i + 16..])) {
            if let Some(target) = rest.split_whitespace().next() {
                started.push((file.display().to_string(), target.trim_matches(['"', '\'']).to_owned()));
            }
        }
    }
    started
}

#[test]
fn every_shipped_workflow_is_one_github_would_run() {
    let repo = repo();
    let template = repo.join("registry-template");
    let mut checked = 0;
    let mut problems = Vec::new();
    for (dir, root) in
        [(template.join(".github/workflows"), template.clone()), (repo.join(".github/workflows"), repo.clone())]
    {
        for file in workflows(&dir) {
            problems.extend(check(&file, &root));
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} workflows found");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_workflow_started_by_name_can_be_started_by_hand() {
    let template = repo().join("registry-template");
    for (from, target) in started_by_name(&template) {
        let path = template.join(".github/workflows").join(&target);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{from} starts {target}, which does not exist"));
        let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
        let on = key(doc, "on");
        let dispatchable = on.as_str() == Some("workflow_dispatch")
            || on.as_vec().is_some_and(|v| v.iter().any(|e| e.as_str() == Some("workflow_dispatch")))
            || on.as_hash().is_some_and(|h| h.contains_key(&Yaml::String("workflow_dispatch".into())));
        assert!(dispatchable, "{from} starts {target}, which has no `workflow_dispatch` trigger");
    }
}

/// The check itself: a workflow that lost its head (the publish.yml of a4bd6b2) and
/// one whose step runs a script that is not there are both reported.
#[test]
fn a_headless_workflow_and_a_missing_script_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let headless = dir.path().join("headless.yml");
    std::fs::write(&headless, "  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n").unwrap();
    let problems = check(&headless, dir.path());
    assert!(
        problems.iter().any(|p| p.contains("no `name:`")) || problems.iter().any(|p| p.contains("not YAML")),
        "{problems:?}"
    );
    let missing = dir.path().join("missing.yml");
    std::fs::write(
        &missing,
        "name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: scripts/absent.sh \"$RUNNER_TEMP\"\n      - uses: actions/checkout@v4\n        run: both\n",
    )
    .unwrap();
    let problems = check(&missing, dir.path());
    assert!(problems.iter().any(|p| p.contains("runs scripts/absent.sh, which is missing")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("exactly one of")), "{problems:?}");
}
