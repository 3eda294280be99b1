//! The conventions users bring from cargo and uv, through the real `trellis` binary
//! against a served registry (issue 12 §1): one `--json` document per command with a
//! `schema_version` and its error inside; a quiet exit on a closed pipe; `--version`,
//! completions and man pages; `--color`; the config file and environment variables;
//! lock waits announced; validated pins and policies with a reset; exit codes; orphaned
//! dependencies; rollback holding its release; `repair` keeping what it can.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{clock, clock_site, trellis_bin};

struct Cli {
    bin: PathBuf,
    data: tempfile::TempDir,
}

impl Cli {
    /// A data dir with the clock site added as registry `main`.
    fn with_registry(site: &common::Site) -> Self {
        let cli = Self { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
        let root = cli.data.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        cli.ok(&["registry", "add", "main", &site.url(), "--root", root.to_str().unwrap()]);
        cli
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("--data-dir").arg(self.data.path()).env_remove("TRELLIS_CONFIG").env_remove("NO_COLOR");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "trellis {args:?} failed: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    /// Runs with `--json`: asserts stdout holds exactly one document, with the
    /// envelope's fields, and that stderr holds only JSON lines.
    fn json(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        (out.status.code(), one_document(&out, args))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.data.path().join("state.json")).unwrap()).unwrap()
    }
}

fn one_document(out: &Output, args: &[&str]) -> serde_json::Value {
    let text = stdout(out);
    let mut documents = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let first = documents.next().unwrap_or_else(|| panic!("no JSON from {args:?}: {text}")).unwrap();
    assert!(documents.next().is_none(), "more than one JSON document from {args:?}: {text}");
    assert_eq!(first["schema_version"], 1, "{first}");
    assert!(first["ok"].is_boolean() && first.get("result").is_some() && first.get("error").is_some(), "{first}");
    for line in stderr(out).lines() {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "text on stderr with --json {args:?}: {line}");
    }
    first
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_json_command_prints_one_document_with_its_error_inside() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);

    // install without --yes: no prompt text mixed into the event stream, the refusal
    // is the document's error, nothing is installed.
    let (code, refused) = cli.json(&["install", "acme.clock"]);
    assert_eq!(code, Some(1));
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["command"], "install");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("--yes") && message.contains("notifications"), "{message}");
    assert_eq!(refused["error"]["exit_code"], 1);
    assert_eq!(cli.json(&["list"]).1["result"], serde_json::json!([]));

    let (code, installed) = cli.json(&["--yes", "install", "acme.clock"]);
    assert_eq!(code, Some(0));
    assert_eq!(installed["ok"], true);
    assert_eq!(installed["error"], serde_json::Value::Null);

    // verify with problems: the reports and the error in one document.
    let file = cli.data.path().join("plugins/acme.time-core/1.0.0/bin/any/run.sh");
    std::fs::write(&file, "#!/bin/sh\nrm -rf ~\n").unwrap();
    let (code, verify) = cli.json(&["verify"]);
    assert_eq!(code, Some(1));
    assert_eq!(verify["ok"], false);
    let reports = verify["result"].as_array().unwrap();
    assert!(reports.iter().any(|r| r["plugin"] == "acme.time-core" && !r["problems"].as_array().unwrap().is_empty()));
    assert!(verify["error"]["message"].as_str().unwrap().contains("reinstall"), "{verify}");

    // update --scheduled: a document whether or not a check was due.
    let (code, scheduled) = cli.json(&["--yes", "update", "--scheduled"]);
    assert_eq!(code, Some(0), "{scheduled}");
    assert_eq!(scheduled["result"]["due"], true, "{scheduled}");
    let (code, again) = cli.json(&["--yes", "update", "--scheduled"]);
    assert_eq!(code, Some(0));
    assert_eq!(again["result"], serde_json::json!({"due": false, "report": null}));

    // repair: a document, not text.
    let (_, fine) = cli.json(&["repair"]);
    assert_eq!(fine["result"]["repaired"], false);
    std::fs::write(cli.data.path().join("state.json"), "{\"schema_version\": 1, \"plug").unwrap();
    let (code, repaired) = cli.json(&["repair"]);
    assert_eq!(code, Some(0), "{repaired}");
    assert_eq!(repaired["result"]["repaired"], true);
    assert_eq!(repaired["result"]["recovered"].as_array().unwrap().len(), 2, "{repaired}");

    // Usage errors, clap's own included, are documents too (exit 2).
    let (code, usage) = cli.json(&["install"]);
    assert_eq!(code, Some(2));
    assert!(usage["error"]["message"].as_str().unwrap().contains("PLUGINS"), "{usage}");
    let (code, bad_id) = cli.json(&["info", "Not An Id"]);
    assert_eq!(code, Some(2));
    assert_eq!(bad_id["command"], "info");
}

#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    // The reader is gone before the command writes: every write gets EPIPE, as in
    // `trellis search "" | head -1` once head has its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cli.command().args(["search", ""]).stdout(writer).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn version_completions_and_man_page_name_trellis() {
    let cli = Cli { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
    assert_eq!(cli.ok(&["--version"]), format!("trellis {}\n", env!("CARGO_PKG_VERSION")));
    let bash = cli.ok(&["completions", "bash"]);
    assert!(bash.contains("_trellis()") && bash.contains("rollback"), "{bash}");
    let fish = cli.ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c trellis"), "{fish}");
    let powershell = cli.ok(&["completions", "powershell"]);
    assert!(powershell.contains("Register-ArgumentCompleter"), "{powershell}");
    let man = cli.ok(&["man"]);
    assert!(man.contains(".TH trellis 1") && man.contains("completions"), "{man}");
    assert!(!cli.data.path().join("state.json").exists(), "completions and man need no data dir");
    let bad = cli.run(&["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn errors_are_coloured_only_when_asked_or_on_a_terminal() {
    let cli = Cli { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
    let plain = cli.run(&["info", "acme.clock"]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(stderr(&plain).starts_with("error: no registry is configured"), "{}", stderr(&plain));
    let coloured = cli.run(&["--color", "always", "info", "acme.clock"]);
    assert!(stderr(&coloured).starts_with("\x1b[1;31merror:\x1b[0m no registry"), "{:?}", stderr(&coloured));
    let env = cli.command().env("TRELLIS_COLOR", "always").args(["info", "acme.clock"]).output().unwrap();
    assert!(stderr(&env).starts_with("\x1b[1;31merror:"), "{:?}", stderr(&env));
    let never = cli.command().env("TRELLIS_COLOR", "always").args(["--color", "never", "info", "x.y"]).output();
    assert!(stderr(&never.unwrap()).starts_with("error:"), "the flag wins over the variable");
}

#[test]
fn the_config_file_and_environment_set_the_data_dir_and_host() {
    let site = clock_site();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("from-config");
    let config = home.path().join("config.toml");
    std::fs::write(&config, format!("data_dir = {:?}\nhost_id = \"other-host\"\n", data.to_str().unwrap())).unwrap();
    let root = home.path().join("root.json");
    std::fs::write(&root, site.root()).unwrap();
    let trellis = || {
        let mut command = Command::new(trellis_bin());
        command.env_remove("TRELLIS_DATA_DIR").env("TRELLIS_CONFIG", &config).env("HOME", home.path());
        command
    };
    let out = trellis().args(["registry", "add", "main", &site.url(), "--root"]).arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(data.join("registries.json").exists(), "the config file's data_dir is used");
    // The host id comes from the config file: the clock site's plugins are for another host.
    let out = trellis().args(["--yes", "install", "acme.time-core"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("other-host"), "{}", stderr(&out));
    // The variable wins over the file; the flag over both.
    let out =
        trellis().env("TRELLIS_HOST_ID", "trellis-demo-host").args(["--yes", "install", "acme.time-core"]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let elsewhere = home.path().join("from-env");
    let out = trellis().env("TRELLIS_DATA_DIR", &elsewhere).args(["registry", "list"]).output().unwrap();
    assert!(out.status.success() && elsewhere.join("state.json").exists(), "{}", stderr(&out));

    // A bad file: exit 2 naming the file and the key; a named file that is missing too.
    std::fs::write(&config, "data-dir = \"/tmp\"\n").unwrap();
    let out = trellis().args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(config.to_str().unwrap()) && stderr(&out).contains("data-dir"), "{}", stderr(&out));
    let out = trellis().env("TRELLIS_CONFIG", home.path().join("missing.toml")).args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));

    // No data dir anywhere: the platform's local data dir under HOME, never `./.trellis`.
    std::fs::remove_file(&config).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = trellis()
        .env_remove("TRELLIS_CONFIG")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(cwd.path())
        .args(["list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cwd.path().join(".trellis").exists());
    if cfg!(target_os = "linux") {
        assert!(home.path().join(".local/share/trellis/state.json").exists());
    }
}

#[test]
fn waiting_for_another_process_is_announced() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    let lock = trellis_client::fs::LockedFile::acquire(&cli.data.path().join("state.lock")).unwrap();
    let mut child = cli.command().args(["list"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("waiting for another trellis process"), "{first}");
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("no plugins installed"));
}

#[test]
fn pins_and_policies_are_validated_and_can_be_reset() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    let out = cli.run(&["pin", "acme.clock@9.9.9"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("acme.clock has no release 9.9.9") && stderr(&out).contains("1.0.0"));
    assert!(cli.state()["pins"].as_object().is_none_or(serde_json::Map::is_empty));
    assert!(cli.ok(&["pin", "acme.clock@1.0.0"]).contains("pinned acme.clock at 1.0.0"));

    let out = cli.run(&["policy", "--plugin", "acme.nothing", "--mode", "manual"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no configured registry serves acme.nothing"), "{}", stderr(&out));
    assert!(cli.state()["policies"]["plugins"].get("acme.nothing").is_none());

    cli.ok(&["policy", "--plugin", "acme.clock", "--mode", "manual"]);
    cli.ok(&["policy", "--mode", "auto", "--channel", "beta"]);
    let (_, reset) = cli.json(&["policy", "--plugin", "acme.clock", "--reset"]);
    assert!(reset["result"]["plugins"].get("acme.clock").is_none(), "{reset}");
    assert_eq!(reset["result"]["global"]["mode"], "auto");
    let (_, reset) = cli.json(&["policy", "--reset"]);
    assert_eq!(reset["result"]["global"]["mode"], "notify");
    assert_eq!(reset["result"]["global"]["channel"], "stable");
}

#[test]
fn update_check_can_exit_with_a_code_when_updates_are_available() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    cli.ok(&["--yes", "install", "acme.clock"]);
    assert_eq!(cli.run(&["update", "--check", "--exit-code"]).status.code(), Some(0));
    site.publish(&[clock("1.1.0")]);
    let out = cli.run(&["update", "--check", "--exit-code"]);
    assert_eq!(out.status.code(), Some(100), "{}", stderr(&out));
    assert!(stdout(&out).contains("acme.clock 1.0.0 -> 1.1.0"));
    assert!(stderr(&out).is_empty(), "updates available is not an error: {}", stderr(&out));
    let (code, json) = cli.json(&["update", "--check", "--exit-code"]);
    assert_eq!((code, &json["ok"]), (Some(100), &serde_json::json!(true)));
    assert_eq!(cli.run(&["update", "--check"]).status.code(), Some(0), "only with --exit-code");
}

#[test]
fn a_disabled_mark_of_a_newer_client_keeps_the_state_readable_the_plugin_disabled_and_survives_a_rewrite() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    cli.ok(&["--yes", "install", "acme.clock"]);
    // What a newer client writes: a cause this one has never heard of.
    let mark = serde_json::json!({
        "cause": {"kind": "quarantined", "scanner": "acme-av", "verdict": {"family": "Trojan.X"}},
        "reason": "quarantined by the host's scanner",
        "since": "2027-03-01T00:00:00Z"
    });
    let mut state = cli.state();
    state["plugins"]["acme.clock"]["disabled"] = mark.clone();
    std::fs::write(cli.data.path().join("state.json"), serde_json::to_vec_pretty(&state).unwrap()).unwrap();

    let list = cli.ok(&["list"]);
    assert!(
        list.contains("acme.clock 1.0.0")
            && list.contains("DISABLED (quarantined, recorded by a newer client): quarantined by the host's scanner"),
        "{list}"
    );
    let (code, listed) = cli.json(&["list"]);
    assert_eq!(code, Some(0), "{listed}");
    assert_eq!(listed["result"][0]["record"]["disabled"], mark, "{listed}");

    // A command that rewrites the state keeps the mark as the newer client wrote it.
    cli.ok(&["pin", "acme.clock@1.0.0"]);
    assert_eq!(cli.state()["pins"]["acme.clock"], "1.0.0");
    assert_eq!(cli.state()["plugins"]["acme.clock"]["disabled"], mark);
}

#[test]
fn rollback_holds_the_release_until_unpinned_and_never_rolls_forward() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    cli.ok(&["--yes", "install", "acme.clock"]);
    site.publish(&[clock("1.1.0")]);
    cli.ok(&["--yes", "update"]);
    assert!(cli.ok(&["rollback", "acme.clock"]).contains("until `trellis unpin acme.clock`"));
    assert_eq!(cli.state()["pins"]["acme.clock"], "1.0.0");

    let update = cli.ok(&["--yes", "update"]);
    assert!(update.contains("skipped acme.clock 1.1.0: pinned to 1.0.0"), "{update}");
    let again = cli.run(&["rollback", "acme.clock"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("undo the rollback") && stderr(&again).contains("trellis unpin"));
    assert!(cli.ok(&["list"]).contains("acme.clock 1.0.0"), "still at the rolled-back release");

    cli.ok(&["unpin", "acme.clock"]);
    assert!(cli.ok(&["--yes", "update"]).contains("updated acme.clock 1.0.0 -> 1.1.0"));
}

#[test]
fn remove_names_orphaned_dependencies_and_autoremove_removes_them() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    cli.ok(&["--yes", "install", "acme.clock"]);
    let removed = cli.ok(&["remove", "acme.clock"]);
    assert!(removed.contains("no installed plugin needs acme.time-core any more"), "{removed}");
    assert!(cli.ok(&["list"]).contains("acme.time-core 1.0.0"), "kept without --autoremove");

    cli.ok(&["--yes", "install", "acme.clock"]);
    let (code, removed) = cli.json(&["remove", "acme.clock", "--autoremove"]);
    assert_eq!(code, Some(0));
    assert_eq!(removed["result"]["removed"], serde_json::json!(["acme.clock"]));
    assert_eq!(removed["result"]["autoremoved"], serde_json::json!(["acme.time-core"]));
    assert!(cli.ok(&["list"]).contains("no plugins installed"));
    assert!(!cli.data.path().join("plugins/acme.time-core").exists());

    // A plugin the user asked for is never an orphan.
    cli.ok(&["--yes", "install", "acme.time-core", "acme.clock"]);
    cli.ok(&["remove", "acme.clock", "--autoremove"]);
    assert!(cli.ok(&["list"]).contains("acme.time-core 1.0.0"));
}

#[test]
fn repair_keeps_pins_policies_bindings_consents_and_the_install_id() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    cli.ok(&["--yes", "install", "acme.clock"]);
    cli.ok(&["pin", "acme.clock"]);
    cli.ok(&["policy", "--plugin", "acme.clock", "--mode", "manual"]);
    let before = cli.state();
    // Damage: the installed set no longer parses, and one pin is garbage.
    let mut damaged = before.clone();
    damaged["plugins"] = serde_json::json!(3);
    damaged["pins"]["acme.other"] = serde_json::json!("not a version");
    std::fs::write(cli.data.path().join("state.json"), serde_json::to_vec(&damaged).unwrap()).unwrap();
    assert_eq!(cli.run(&["list"]).status.code(), Some(1), "a damaged file is an error until repaired");

    let repaired = cli.ok(&["repair"]);
    assert!(repaired.contains("recovered acme.clock 1.0.0"), "{repaired}");
    assert!(repaired.contains("kept from the damaged file: the install id"), "{repaired}");
    assert!(repaired.contains("could not keep pin of `acme.other`"), "{repaired}");
    let after = cli.state();
    assert_eq!(after["install_id"], before["install_id"]);
    assert_eq!(after["pins"], before["pins"]);
    assert_eq!(after["policies"], before["policies"]);
    assert_eq!(after["vendors"], before["vendors"]);
    assert_eq!(after["consents"], before["consents"]);
    assert!(cli.ok(&["list"]).contains("acme.clock 1.0.0  [main]  pinned at 1.0.0"));
}

#[test]
fn registry_add_verifies_the_site_once_and_explains_what_is_wrong() {
    let site = clock_site();
    let other = common::Site::new();
    let cli = Cli { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
    let root = cli.data.path().join("root.json");
    std::fs::write(&root, site.root()).unwrap();
    let other_root = cli.data.path().join("other-root.json");
    std::fs::write(&other_root, other.root()).unwrap();
    let (root, other_root) = (root.to_str().unwrap(), other_root.to_str().unwrap());
    let add = |name: &str, url: &str, root: &str| cli.run(&["registry", "add", name, url, "--root", root]);
    let nothing_added = |what: &str| {
        let (_, list) = cli.json(&["registry", "list"]);
        assert_eq!(list["result"]["registries"], serde_json::json!([]), "{what}: {list}");
        assert!(!cli.data.path().join("metadata/main").exists(), "{what}: trusted metadata left behind");
    };

    // Nobody listens there.
    let out = add("main", "http://127.0.0.1:1/", root);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registry `main` was not added: cannot reach http://127.0.0.1:1/"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("retrying"), "retries only with -v: {}", stderr(&out));
    nothing_added("unreachable");
    let out = cli.run(&["-v", "registry", "add", "main", "http://127.0.0.1:1/", "--root", root]);
    assert!(stderr(&out).contains("info: retrying url=http://127.0.0.1:1/"), "-v shows retries: {}", stderr(&out));
    nothing_added("unreachable, verbose");
    // A path under the site that is not the site's base.
    let out = add("main", &format!("{}/docs", site.url().trim_end_matches('/')), root);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no metadata/timestamp.json") && stderr(&out).contains("site's base"));
    nothing_added("404");
    // The root of another registry.
    let out = add("main", &site.url(), other_root);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is --root this registry's own 1.root.json?"), "{}", stderr(&out));
    nothing_added("wrong root");
    // A relative file:// path.
    let out = add("main", "file://site", root);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not an absolute file URL") && stderr(&out).contains("file:///"));
    nothing_added("relative file URL");

    // Right: added and verified once; an absolute file:// URL of the same files works too.
    let out = cli.ok(&["registry", "add", "main", &site.url(), "--root", root]);
    assert!(out.contains("added registry main") && out.contains("verified"), "{out}");
    // The same registry again, under another name: by URL, then by root.
    let out = add("again", &format!("{}/", site.url().trim_end_matches('/')), root);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("registry `main` has the same URL"), "{}", stderr(&out));
    let file_url = format!("file://{}", site.site.path().display());
    let out = add("usb", &file_url, root);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("registry `main` has the same root metadata"), "{}", stderr(&out));
    let other_cli = Cli { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
    other_cli.ok(&["registry", "add", "usb", &file_url, "--root", root]);
    assert!(other_cli.ok(&["search", "clock"]).contains("acme.clock"));
}

#[cfg(unix)]
#[test]
fn on_a_terminal_the_prompt_shows_the_whole_plan_once_before_asking() {
    use trellis_tests::pty::PtyChild;
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    let mut command = cli.command();
    command.args(["install", "acme.clock"]);
    let mut terminal = PtyChild::spawn(command).unwrap();
    let asked = terminal.expect("[y/N]").unwrap();
    // The plan: the dependency too, with human sizes, then the permissions, then one question.
    assert!(asked.contains("install acme.time-core 1.0.0"), "{asked}");
    assert!(asked.contains("(a dependency)"), "{asked}");
    assert!(asked.contains("install acme.clock 1.0.0"), "{asked}");
    assert!(asked.contains("1.1 KB download"), "human sizes: {asked}");
    assert!(asked.contains("in all: "), "{asked}");
    assert!(asked.contains("* show desktop notifications"), "{asked}");
    assert!(!cli.data.path().join("plugins/acme.time-core").exists(), "nothing before the answer");
    terminal.send("y\n").unwrap();
    let (code, all) = terminal.finish().unwrap();
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("installed acme.clock 1.0.0"), "{all}");
    assert_eq!(all.matches("acme.clock 1.0.0 asks for these permissions").count(), 1, "shown once: {all}");
    assert_eq!(all.matches("[y/N]").count(), 1, "asked once: {all}");
}

#[cfg(unix)]
#[test]
fn on_a_terminal_errors_are_coloured_unless_no_color_is_set() {
    use trellis_tests::pty::PtyChild;
    let cli = Cli { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
    let mut command = cli.command();
    command.args(["info", "acme.clock"]);
    let (code, out) = PtyChild::spawn(command).unwrap().finish().unwrap();
    assert_eq!(code, Some(2));
    assert!(out.starts_with("\x1b[1;31merror:\x1b[0m no registry is configured"), "{out:?}");
    let mut command = cli.command();
    command.env("NO_COLOR", "1").args(["info", "acme.clock"]);
    let (_, out) = PtyChild::spawn(command).unwrap().finish().unwrap();
    assert!(out.starts_with("error: no registry is configured"), "{out:?}");
}

#[test]
fn offline_uses_unexpired_verified_metadata_and_cached_downloads_and_says_how_old() {
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    // Nothing downloaded yet: offline cannot install, and says why.
    let out = cli.run(&["--offline", "--yes", "install", "acme.clock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("offline: not in the local cache"), "{}", stderr(&out));
    assert!(cli.ok(&["list"]).contains("no plugins installed"));

    cli.ok(&["--yes", "install", "acme.clock"]);
    cli.ok(&["remove", "acme.clock", "--autoremove"]);
    let served = site.server.requests();

    // --offline: not one request; info and a re-install from the cache work.
    let out = cli.run(&["--offline", "info", "acme.clock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("acme.clock (Plugin acme.clock) from registry main"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("note: offline: registry `main` as last verified (checked online "),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("seconds ago, usable offline until "), "{}", stderr(&out));
    let quiet = cli.run(&["-q", "--offline", "info", "acme.clock"]);
    assert!(quiet.status.success() && stderr(&quiet).is_empty(), "-q drops notes: {}", stderr(&quiet));
    let installed = cli.ok(&["--offline", "--yes", "install", "acme.clock"]);
    assert!(installed.contains("installed acme.clock 1.0.0"), "{installed}");
    assert_eq!(site.server.requests(), served, "offline made requests");
    let (_, json) = cli.json(&["--offline", "info", "acme.clock"]);
    assert_eq!(json["offline"][0]["registry"], "main", "{json}");
    assert_eq!(json["offline"][0]["unreachable"], serde_json::Value::Null);

    // The registry's host goes away: used offline automatically, with a warning.
    let config = cli.data.path().join("registries.json");
    let text =
        std::fs::read_to_string(&config).unwrap().replace(site.url().trim_end_matches('/'), "http://127.0.0.1:1");
    std::fs::write(&config, text).unwrap();
    let out = cli.run(&["info", "acme.clock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: registry `main` cannot be reached (")
            && stderr(&out).contains("as last verified"),
        "{}",
        stderr(&out)
    );
    let out = cli.run(&["update", "--check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be reached"), "an update check says it did not reach the registry");
}

#[cfg(unix)]
#[test]
fn read_only_commands_work_on_a_data_dir_this_user_cannot_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let site = clock_site();
    let cli = Cli::with_registry(&site);
    cli.ok(&["--yes", "install", "acme.clock"]);
    // Everything readable, nothing writable (for anyone but root).
    let mut paths = vec![cli.data.path().to_owned()];
    paths.extend(common::walk(cli.data.path()));
    for path in paths.iter().rev() {
        let mode = if path.is_dir() { 0o555 } else { 0o444 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // Root may write anyway, so as root the commands run as `nobody`.
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = home.path().join("trellis");
    std::fs::copy(&cli.bin, &bin).unwrap();
    let root = std::fs::metadata(home.path()).unwrap().uid() == 0;
    let run = |args: &[&str]| {
        let mut command = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        command.env("HOME", home.path()).env_remove("TRELLIS_CONFIG").env_remove("XDG_CONFIG_HOME");
        command.arg("--data-dir").arg(cli.data.path()).args(args).output().unwrap()
    };
    if root && run(&["--version"]).status.code() != Some(0) {
        eprintln!("setpriv cannot run the binary as nobody here; skipped");
        return;
    }
    let list = run(&["list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(stdout(&list).contains("acme.clock 1.0.0  [main]"), "{}", stdout(&list));
    let verify = run(&["verify"]);
    assert!(verify.status.success(), "{}{}", stdout(&verify), stderr(&verify));
    assert!(stdout(&verify).contains("acme.clock 1.0.0: ok"));
    let pin = run(&["pin", "acme.clock"]);
    assert_eq!(pin.status.code(), Some(1), "{}", stderr(&pin));
    assert!(stderr(&pin).contains("cannot be written"), "{}", stderr(&pin));
    for path in paths {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(cli.state()["pins"].as_object().is_none_or(serde_json::Map::is_empty), "nothing was written");
}

#[test]
fn no_home_and_no_data_dir_is_a_clear_error_never_a_dot_trellis_in_the_current_directory() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    // Without HOME, `dirs` asks the password database; a user it does not know has no
    // home at all. Only root can become such a user here (setpriv).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    if std::fs::metadata(dir.path()).unwrap().uid() != 0 {
        eprintln!("not root: cannot run as a user without a passwd entry; skipped");
        return;
    }
    trellis_tests::tools::require("setpriv");
    let bin = dir.path().join("trellis");
    std::fs::copy(trellis_bin(), &bin).unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::set_permissions(&cwd, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=54321", "--regid=54321", "--clear-groups"])
        .arg(&bin)
        .args(["--json", "list"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = envelope["error"].to_string();
    assert!(error.contains("no home or local data directory") && error.contains("TRELLIS_DATA_DIR"), "{envelope}");
    assert!(!cwd.join(".trellis").exists() && std::fs::read_dir(&cwd).unwrap().next().is_none(), "nothing written");
}
