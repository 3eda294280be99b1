//! The example store app driven for real: the app under Xvfb (WebKitGTK), a WebDriver
//! session through `tauri-driver` and Debian's `WebKitWebDriver`, the example registry
//! signed by `trellis-index` and served on 127.0.0.1. Search → plugin page → consent
//! refused (nothing installed) → consent given → install with the plugin started as a
//! sidecar → a new release asking for a new permission → update with re-consent →
//! rollback → remove; screenshots of each screen and the timings in
//! `$CARGO_TARGET_TMPDIR/store-ui/` (or `TRELLIS_SCREENSHOTS`).
//!
//! Needs `Xvfb`, `tauri-driver` and `WebKitWebDriver` (`scripts/test-tauri` installs
//! them): skipped when one is missing, failed under CI.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::webdriver::Session;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Kills a child process, and the process group it leads, when dropped (tauri-driver
/// starts WebKitWebDriver, which starts the app).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(command: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(command).is_file()))
}

/// Whether every tool is there; a missing one skips the test, or fails it under CI.
fn tools_present() -> bool {
    let missing: Vec<&str> =
        ["Xvfb", "tauri-driver", "WebKitWebDriver", "import"].into_iter().filter(|c| !have(c)).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("missing {}: run scripts/test-tauri (it installs them)", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts Xvfb on a free display; returns it and the `:N` name.
fn xvfb() -> (Guard, String) {
    let mut child = Command::new("Xvfb")
        // The screen is the app window's size: a screenshot of the root window is the app.
        .args(["-displayfd", "1", "-screen", "0", "1000x700x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let display = format!(":{}", line.trim());
    (Guard(child), display)
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("TRELLIS_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-ui"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the X display (WebKitWebDriver's own screenshot command hangs under
/// Xvfb without compositing), taken once the page has painted.
fn shot(session: &Session, display: &str, dir: &Path, name: &str) {
    session.execute("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", json!([])).ok();
    let path = dir.join(format!("{name}.png"));
    let status = Command::new("import").args(["-window", "root"]).arg(&path).env("DISPLAY", display).status().unwrap();
    assert!(status.success(), "import {name}");
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: not a screenshot");
}

/// The number of consent dialogs answered before `until` holds.
fn answer_dialogs(session: &Session, agree: bool, until: &str) -> usize {
    let button = if agree { "#consent-agree" } else { "#consent-refuse" };
    let deadline = Instant::now() + WAIT;
    let mut answered = 0;
    while Instant::now() < deadline {
        let open = session.execute("return document.querySelector('#consent-dialog').open", json!([])).unwrap();
        if open == json!(true) {
            session.click(button).unwrap();
            answered += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if session.execute(until, json!([])).unwrap() == json!(true) {
            return answered;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out: {until}; the page says: {}", session.text("#message").unwrap_or_default());
}

fn row(plugin: &str) -> String {
    format!("#installed tr[data-plugin=\"{plugin}\"]")
}

#[test]
fn the_store_ui_searches_asks_consent_installs_updates_rolls_back_and_removes() {
    if !tools_present() {
        return;
    }
    let registry = Registry::new(&["acme.time-core-1.0.0", "acme.clock-1.0.0", "contoso.imagetools-2.1.0"]);
    let data = tempfile::tempdir().unwrap();
    let (_xvfb, display) = xvfb();
    let (port, native) = (free_port(), free_port());
    let _driver = Guard(
        Command::new("tauri-driver")
            .process_group(0)
            .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .env("DISPLAY", &display)
            .env("TRELLIS_STORE_DATA_DIR", data.path())
            .env("TRELLIS_STORE_REGISTRY_URL", &registry.url)
            .env("TRELLIS_STORE_REGISTRY_ROOT", registry.root())
            // Xvfb has no GPU: WebKitGTK renders in software.
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tauri-driver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = screenshots();
    let launched = Instant::now();
    let session = Session::start(&format!("http://127.0.0.1:{port}"), env!("CARGO_BIN_EXE_tauri-store")).unwrap();
    let opened_in_ms = session
        .wait_for("the store to open", "let s = document.querySelector('#status'); return s.dataset.ready === 'true' && Number(s.dataset.openedInMs)", WAIT)
        .unwrap();
    let launch_to_ready = launched.elapsed();

    // Search: the example plugins are found through the signed registry.
    session.type_into("#search", "clock").unwrap();
    session.click("#search-button").unwrap();
    session
        .wait_for(
            "the clock in the results",
            "return document.querySelector('#results li[data-plugin=\"acme.clock\"]') !== null",
            WAIT,
        )
        .unwrap();
    let results = session.text("#results").unwrap();
    assert!(results.contains("Clock"), "{results}");
    assert!(!results.contains("imagetools"), "the search narrows: {results}");

    // The plugin page shows its permissions in plain words before anything is asked.
    session.click("#results li[data-plugin=\"acme.clock\"]").unwrap();
    session.wait_for("the plugin page", "return document.querySelector('#plugin').dataset.plugin === 'acme.clock' && document.querySelectorAll('#plugin-permissions li').length", WAIT).unwrap();
    let permissions = session.text("#plugin-permissions").unwrap();
    assert!(permissions.contains("Ring alarms when the app is in the background"), "{permissions}");
    assert_eq!(
        session
            .execute(
                "return [...document.querySelectorAll('#plugin-permissions li')].map(l => l.dataset.key).sort()",
                json!([])
            )
            .unwrap(),
        json!(["filesystem:plugin_directory", "notifications:show"])
    );
    // Its security level with the reasons, from the registry's signed levels.
    let level = session.text("#plugin-level").unwrap();
    assert!(level.starts_with("Security level: ") && level.contains("signed by its developer"), "{level}");
    shot(&session, &display, &dir, "1-plugin-page");

    // Refused consent installs nothing: no files, no state, no process.
    session.click("#install-button").unwrap();
    session.wait_for("the consent dialog", "return document.querySelector('#consent-dialog').open", WAIT).unwrap();
    assert_eq!(session.text("#consent-title").unwrap(), "acme.clock 1.0.0");
    shot(&session, &display, &dir, "2-consent");
    let refused =
        answer_dialogs(&session, false, "return document.querySelector('#message').classList.contains('error')");
    assert_eq!(refused, 1);
    let message = session.text("#message").unwrap();
    assert!(message.contains("Installing acme.clock failed"), "{message}");
    assert!(
        session
            .execute(&format!("return document.querySelector('{}') === null", row("acme.clock")), json!([]))
            .unwrap()
            == json!(true)
    );
    assert!(!data.path().join("plugins/acme.clock").exists(), "nothing of a refused plugin is on disk");

    // Consent given: installed with its dependency, and started as a sidecar.
    session.execute("document.querySelector('#install-button').disabled = false", json!([])).unwrap();
    session.click("#install-button").unwrap();
    let asked = answer_dialogs(
        &session,
        true,
        &format!(
            "let r = document.querySelector('{}'); return r !== null && r.textContent.includes('clock 1.0.0 ticking')",
            row("acme.clock")
        ),
    );
    assert_eq!(asked, 1, "one question: acme.time-core asks for nothing");
    let click_to_start_ms = session
        .wait_for("the click-to-start time", "return Number(document.body.dataset.clickToStartMs)", WAIT)
        .unwrap();
    let time_core = session.text(&row("acme.time-core")).unwrap();
    assert!(
        time_core.contains("dependency") && time_core.contains("time-core 1.0.0:") && time_core.contains("UTC"),
        "{time_core}"
    );
    assert!(data.path().join("plugins/acme.clock/1.0.0/plugin.json").is_file());
    shot(&session, &display, &dir, "3-installed");

    // A new release asks for a new permission: the update needs consent again.
    registry.publish("acme.clock-1.1.0");
    session.click("#check-updates").unwrap();
    session
        .wait_for(
            "the update",
            "return document.querySelector('#updates li[data-plugin=\"acme.clock\"][data-to=\"1.1.0\"]') !== null",
            WAIT,
        )
        .unwrap();
    let offered = session.text("#updates").unwrap();
    assert!(offered.contains("acme.clock 1.0.0 → 1.1.0") && offered.contains("network:internet"), "{offered}");
    session.click("#updates li[data-plugin=\"acme.clock\"] button.update").unwrap();
    session.wait_for("the re-consent dialog", "return document.querySelector('#consent-dialog').open", WAIT).unwrap();
    assert_eq!(
        session.execute("return [...document.querySelectorAll('#consent-permissions li[data-needs-consent=\"true\"]')].map(l => l.dataset.key)", json!([])).unwrap(),
        json!(["network:internet"]),
        "only the new permission is asked"
    );
    shot(&session, &display, &dir, "4-update-consent");
    answer_dialogs(
        &session,
        true,
        "let r = document.querySelector('#installed tr[data-plugin=\"acme.clock\"]'); return r !== null && r.dataset.version === '1.1.0' && r.textContent.includes('clock 1.1.0 ticking (synchronised)')",
    );
    assert!(session.text(&row("acme.clock")).unwrap().contains("previous 1.0.0"));
    shot(&session, &display, &dir, "5-updated");

    // Rollback: back to 1.0.0, pinned there, started again.
    session.click(&format!("{} button.rollback", row("acme.clock"))).unwrap();
    session.wait_for("the rollback", "let r = document.querySelector('#installed tr[data-plugin=\"acme.clock\"]'); return r !== null && r.dataset.version === '1.0.0' && r.textContent.includes('pinned 1.0.0') && r.textContent.includes('clock 1.0.0 ticking')", WAIT).unwrap();
    shot(&session, &display, &dir, "6-rolled-back");

    // Remove the clock, then its dependency: nothing left, in the UI or on disk.
    session.click(&format!("{} button.remove", row("acme.clock"))).unwrap();
    session.wait_for("the removal", "return document.querySelector('#installed tr[data-plugin=\"acme.clock\"]') === null && document.querySelector('#installed tr[data-plugin=\"acme.time-core\"]') !== null", WAIT).unwrap();
    session.click(&format!("{} button.remove", row("acme.time-core"))).unwrap();
    session
        .wait_for(
            "an empty list",
            "return document.querySelector('#installed tbody').textContent.includes('No plugin installed')",
            WAIT,
        )
        .unwrap();
    assert!(!data.path().join("plugins/acme.clock").exists() && !data.path().join("plugins/acme.time-core").exists());
    shot(&session, &display, &dir, "7-removed");
    session.end().unwrap();

    let metrics = json!({
        "store_opened_in_ms": opened_in_ms,
        "launch_to_store_ready_ms": launch_to_ready.as_secs_f64() * 1000.0,
        "click_to_started_plugin_ms": click_to_start_ms,
    });
    std::fs::write(dir.join("metrics.json"), serde_json::to_vec_pretty(&metrics).unwrap()).unwrap();
    eprintln!("store UI: screenshots and metrics in {}: {metrics}", dir.display());
}
