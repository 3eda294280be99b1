//! The app's side of the lifecycle: [`StoreHooks`], the trait a Tauri app implements,
//! and [`Sidecars`], the default that runs each plugin's entry point as a child process.
//!
//! The store calls `trellis_client::hooks::HostHooks`; the plugin forwards every call to
//! the app's [`StoreHooks`] through [`Forward`], handing it the [`Sidecars`] so an app
//! that overrides `start` can still use the default for some plugins. `start` and `stop`
//! default to [`Sidecars::start`] and [`Sidecars::stop`]; every other hook succeeds.
//!
//! A sidecar's lines on stdout after its greeting are streamed to the webview
//! (`trellis://sidecar`), so the store UI can show what a plugin says.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use trellis_client::hooks::{HookContext, HookError, HostHooks};
use trellis_client::license::LicenseState;
use trellis_client::telemetry::TelemetryEvent;
use trellis_schema::PluginId;
use trellis_schema::plugin::{Platform, PluginMetadata};

use crate::Emit;

/// The hooks a Tauri app implements to run, stop, register and veto plugins. Every
/// method has a default: `start`/`stop` run the plugin's entry point as a sidecar
/// process ([`Sidecars`]), the others succeed and do nothing. Methods are called on a
/// worker thread, never on the main (UI) thread.
///
/// ```no_run
/// use tauri_plugin_trellis::{HookContext, HookError, Sidecars, StoreHooks};
///
/// struct MyHooks;
/// impl StoreHooks for MyHooks {
///     fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
///         println!("add {} to the plugins menu", ctx.plugin);
///         Ok(())
///     }
///     fn start(&self, sidecars: &Sidecars, ctx: HookContext<'_>) -> Result<(), HookError> {
///         // In-process plugins would be loaded here; everything else runs as a sidecar.
///         sidecars.start(ctx)
///     }
/// }
/// ```
pub trait StoreHooks: Send + Sync + 'static {
    /// Start the plugin from `ctx.path`. Default: [`Sidecars::start`].
    fn start(&self, sidecars: &Sidecars, ctx: HookContext<'_>) -> Result<(), HookError> {
        sidecars.start(ctx)
    }

    /// Stop the running plugin; its files are about to change or go away, so every
    /// handle on them must be closed when this returns (Windows refuses to replace a
    /// file in use). Default: [`Sidecars::stop`].
    fn stop(&self, sidecars: &Sidecars, ctx: HookContext<'_>) -> Result<(), HookError> {
        sidecars.stop(ctx)
    }

    /// Make a newly installed plugin known to the app (menus, commands).
    fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// Forget a removed plugin.
    fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// A release is staged; an error refuses the install.
    fn before_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// The install completed.
    fn after_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// `to` is about to replace `from`; an error refuses the update.
    fn before_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        let _ = (from, to);
        Ok(())
    }

    /// The update completed and `to` runs.
    fn after_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        let _ = (from, to);
        Ok(())
    }

    /// The plugin is about to be removed; an error refuses the removal.
    fn before_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// The plugin was removed.
    fn after_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// What the plugin's license allows now (see `HostHooks::license`).
    fn license(&self, ctx: HookContext<'_>, state: &LicenseState) {
        let _ = (ctx, state);
    }

    /// An outcome for telemetry, only when the app turned telemetry on.
    fn telemetry(&self, event: &TelemetryEvent) {
        let _ = event;
    }
}

/// The default hooks: every plugin runs as a sidecar process.
#[derive(Clone, Copy, Debug, Default)]
pub struct SidecarHooks;

impl StoreHooks for SidecarHooks {}

/// Forwards the store's `HostHooks` calls to the app's [`StoreHooks`].
pub(crate) struct Forward<'a> {
    pub(crate) hooks: &'a dyn StoreHooks,
    pub(crate) sidecars: &'a Sidecars,
}

impl HostHooks for Forward<'_> {
    fn stop(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.stop(self.sidecars, ctx)
    }
    fn start(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.start(self.sidecars, ctx)
    }
    fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.register(ctx)
    }
    fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.unregister(ctx)
    }
    fn before_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.before_install(ctx)
    }
    fn after_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.after_install(ctx)
    }
    fn before_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.before_update(from, to)
    }
    fn after_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.after_update(from, to)
    }
    fn before_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.before_remove(ctx)
    }
    fn after_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.hooks.after_remove(ctx)
    }
    fn license(&self, ctx: HookContext<'_>, state: &LicenseState) {
        self.hooks.license(ctx, state);
    }
    fn telemetry(&self, event: &TelemetryEvent) {
        self.hooks.telemetry(event);
    }
}

/// How much of a sidecar's stderr is kept for the error of a failed start.
const STDERR_KEPT: usize = 4096;

/// How long a sidecar may take to print its greeting line before `start` fails.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// What a sidecar did, as the webview sees it (`trellis://sidecar`, and
/// [`Sidecars::list`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SidecarState {
    /// The process runs.
    Running {
        /// Its process id.
        pid: u32,
    },
    /// It exited by itself, with this code (`None`: ended by a signal).
    Exited {
        /// The exit code.
        code: Option<i32>,
    },
    /// The store stopped it (before an update, a rollback or a removal, or at exit).
    Stopped,
}

/// One started plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SidecarInfo {
    /// The plugin.
    pub plugin: PluginId,
    /// The release that was started.
    pub version: String,
    /// The first line it printed.
    pub greeting: String,
    /// Milliseconds since the Unix epoch when it was started.
    pub started_at_ms: u64,
    /// What it is doing now.
    #[serde(flatten)]
    pub state: SidecarState,
}

struct Running {
    child: Child,
    info: SidecarInfo,
}

/// Runs plugins' entry points as child processes, one per plugin, and stops them.
///
/// The entry point is the release's `plugin.json` `entry` for this platform (or `any`);
/// `.sh` scripts run with `sh`, `.cmd`/`.bat` with `cmd /C`, `.ps1` with PowerShell,
/// anything else directly. The process starts in the release directory with
/// `TRELLIS_PLUGIN_ID`, `TRELLIS_PLUGIN_VERSION` and `TRELLIS_PLUGIN_DIR` (the release
/// directory) set, and must print one line when it is up: `start` returns then (or
/// fails when it exits unsuccessfully first). On Windows a release directory longer
/// than a process's working directory may be (`MAX_PATH`, even with long paths
/// enabled) starts it in the nearest ancestor that fits: plugins find their files
/// through `TRELLIS_PLUGIN_DIR`, never through the working directory.
pub struct Sidecars {
    running: Mutex<BTreeMap<PluginId, Running>>,
    emit: Emit,
    greeting_timeout: Duration,
}

impl std::fmt::Debug for Sidecars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecars").field("running", &lock(&self.running).keys().collect::<Vec<_>>()).finish()
    }
}

impl Sidecars {
    pub(crate) fn new(emit: Emit) -> Self {
        Self { running: Mutex::default(), emit, greeting_timeout: GREETING_TIMEOUT }
    }

    /// Starts the entry point of the release at `ctx.path` and waits for its first line.
    pub fn start(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let entry = entry_point(ctx.plugin, ctx.path)?;
        let mut child = command_for(&entry)
            .current_dir(working_dir(ctx.path, MAX_WORKING_DIR))
            .env("TRELLIS_PLUGIN_DIR", ctx.path)
            .env("TRELLIS_PLUGIN_ID", ctx.plugin.as_str())
            .env("TRELLIS_PLUGIN_VERSION", ctx.version.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HookError::msg(format!("cannot run {} of {}: {e}", entry.display(), ctx.plugin)))?;
        let started_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // The greeting is read on a thread so a silent plugin cannot hang the store;
        // both pipes are drained for the process's life (a full pipe would block it)
        // and their lines streamed to the webview.
        let (tx, rx) = std::sync::mpsc::channel();
        let emit = Arc::clone(&self.emit);
        let plugin = ctx.plugin.clone();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for line in lines.map_while(Result::ok) {
                emit("trellis://sidecar", serde_json::json!({"plugin": plugin, "stream": "stdout", "line": line}));
            }
        });
        let said = Arc::new(Mutex::new(String::new()));
        let stderr_reader = stderr.map(|stderr| {
            let (emit, plugin, said) = (Arc::clone(&self.emit), ctx.plugin.clone(), Arc::clone(&said));
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut kept = lock(&said);
                    if kept.len() < STDERR_KEPT {
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                    drop(kept);
                    emit("trellis://sidecar", serde_json::json!({"plugin": plugin, "stream": "stderr", "line": line}));
                }
            })
        });
        let greeting = match rx.recv_timeout(self.greeting_timeout) {
            Ok(line) => line.unwrap_or_default(),
            Err(_) => {
                end(&mut child);
                return Err(HookError::msg(format!(
                    "{} {} printed nothing within {:.1}s of starting {}",
                    ctx.plugin,
                    ctx.version,
                    self.greeting_timeout.as_secs_f32(),
                    entry.display()
                )));
            }
        };
        // No greeting means stdout closed: the plugin is exiting; see how it ended.
        let ended = if greeting.is_empty() { child.wait().ok() } else { child.try_wait().ok().flatten() };
        if let Some(status) = ended
            && !status.success()
        {
            // What it said on stderr before it exited (the reader ends with the pipe).
            if let Some(reader) = stderr_reader {
                let deadline = Instant::now() + Duration::from_secs(1);
                while !reader.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let said = lock(&said).trim().to_owned();
            return Err(HookError::msg(format!(
                "{} {} exited with {status} at start ({}): {}",
                ctx.plugin,
                ctx.version,
                entry.display(),
                if said.is_empty() { greeting.trim() } else { &said }
            )));
        }
        let info = SidecarInfo {
            plugin: ctx.plugin.clone(),
            version: ctx.version.to_string(),
            greeting: greeting.trim().to_owned(),
            started_at_ms,
            state: SidecarState::Running { pid: child.id() },
        };
        (self.emit)("trellis://sidecar", serde_json::to_value(&info).unwrap_or_default());
        let previous = lock(&self.running).insert(ctx.plugin.clone(), Running { child, info });
        if let Some(mut previous) = previous {
            end(&mut previous.child);
        }
        Ok(())
    }

    /// Stops the plugin's process, if it still runs, and waits until it has exited, so
    /// no handle on its files is left open.
    pub fn stop(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let running = lock(&self.running).remove(ctx.plugin);
        if let Some(mut running) = running {
            end(&mut running.child);
            running.info.state = SidecarState::Stopped;
            (self.emit)("trellis://sidecar", serde_json::to_value(&running.info).unwrap_or_default());
        }
        Ok(())
    }

    /// Stops every sidecar (the app is exiting), dependents first (reverse start order
    /// is not known here; they are independent processes).
    pub fn stop_all(&self) {
        let all = std::mem::take(&mut *lock(&self.running));
        for (_, mut running) in all {
            end(&mut running.child);
        }
    }

    /// The plugins started since the app started, with their state now.
    pub fn list(&self) -> Vec<SidecarInfo> {
        let mut running = lock(&self.running);
        running
            .values_mut()
            .map(|r| {
                if let SidecarState::Running { .. } = r.info.state
                    && let Ok(Some(status)) = r.child.try_wait()
                {
                    r.info.state = SidecarState::Exited { code: status.code() };
                }
                r.info.clone()
            })
            .collect()
    }
}

impl Drop for Sidecars {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Ends `child` if it still runs and reaps it (on Windows, until it is reaped its
/// image file stays locked).
fn end(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.wait();
}

/// The entry point of the release in `dir` for this platform.
pub(crate) fn entry_point(plugin: &PluginId, dir: &Path) -> Result<PathBuf, HookError> {
    let manifest = dir.join("plugin.json");
    let json = std::fs::read(&manifest).map_err(|e| HookError::msg(format!("{}: {e}", manifest.display())))?;
    let metadata: PluginMetadata =
        serde_json::from_slice(&json).map_err(|e| HookError::msg(format!("{}: {e}", manifest.display())))?;
    let platform = Platform::current().unwrap_or(Platform::Any);
    let entry = metadata
        .entry
        .get(&platform)
        .or_else(|| metadata.entry.get(&Platform::Any))
        .ok_or_else(|| HookError::msg(format!("{plugin} has no entry point for {}", platform.as_str())))?;
    Ok(dir.join(entry))
}

fn command_for(entry: &Path) -> Command {
    let extension = entry.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("sh") => {
            let mut c = Command::new("sh");
            c.arg(entry);
            c
        }
        Some("cmd" | "bat") => {
            let mut c = Command::new("cmd");
            c.arg("/C").arg(entry);
            c
        }
        Some("ps1") => {
            let mut c = Command::new("powershell");
            c.args(["-NoProfile", "-ExecutionPolicy", "Bypass", "-File"]).arg(entry);
            c
        }
        _ => Command::new(entry),
    }
}

/// The longest working directory `CreateProcessW` accepts, in UTF-16 units:
/// `MAX_PATH` less the trailing backslash and the NUL, long paths enabled or not.
#[cfg(windows)]
const MAX_WORKING_DIR: usize = 258;
#[cfg(not(windows))]
const MAX_WORKING_DIR: usize = usize::MAX;

/// Where a sidecar of the release at `release` starts: the release directory, or the
/// nearest ancestor of it no longer than `limit` (the root when none is).
fn working_dir(release: &Path, limit: usize) -> &Path {
    let length = |dir: &Path| {
        #[cfg(windows)]
        {
            use std::os::windows::ffi::OsStrExt as _;
            dir.as_os_str().encode_wide().count()
        }
        #[cfg(not(windows))]
        {
            dir.as_os_str().len()
        }
    };
    release.ancestors().find(|dir| length(dir) <= limit).unwrap_or(release)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use semver::Version;

    /// A copy of the example plugin acme.clock 1.0.0 (its real `plugin.json`) whose
    /// entry point is `script`.
    fn release(script: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../registry-template/plugins/acme.clock-1.0.0");
        std::fs::copy(example.join("plugin.json"), dir.path().join("plugin.json")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin/any")).unwrap();
        std::fs::write(dir.path().join("bin/any/clock.sh"), script).unwrap();
        dir
    }

    fn recorder() -> (Emit, Arc<Mutex<Vec<serde_json::Value>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        (Arc::new(move |_: &'static str, v: serde_json::Value| lock(&sink).push(v)), seen)
    }

    #[test]
    fn a_release_directory_too_long_for_a_working_directory_starts_in_its_nearest_ancestor_that_fits() {
        let release = Path::new("/data/trellis/plugins/acme.clock/1.0.0");
        assert_eq!(working_dir(release, usize::MAX), release);
        assert_eq!(working_dir(release, release.as_os_str().len()), release);
        let parent = Path::new("/data/trellis/plugins/acme.clock");
        assert_eq!(working_dir(release, parent.as_os_str().len()), parent);
        assert_eq!(working_dir(release, parent.as_os_str().len() - 1), Path::new("/data/trellis/plugins"));
        assert_eq!(working_dir(release, 1), Path::new("/"));
    }

    #[test]
    fn a_sidecar_greets_runs_and_is_stopped_with_its_process_reaped() {
        let dir =
            release("echo \"clock $TRELLIS_PLUGIN_VERSION up\"\necho \"tick in $TRELLIS_PLUGIN_DIR\"\nexec sleep 30\n");
        let (emit, seen) = recorder();
        let sidecars = Sidecars::new(emit);
        let plugin: PluginId = "acme.clock".parse().unwrap();
        let version = Version::new(1, 0, 0);
        let ctx = HookContext { plugin: &plugin, version: &version, path: dir.path() };
        sidecars.start(ctx).unwrap();
        let listed = sidecars.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].greeting, "clock 1.0.0 up");
        let SidecarState::Running { pid } = listed[0].state else { panic!("{listed:?}") };
        assert!(Path::new(&format!("/proc/{pid}")).exists() || cfg!(not(target_os = "linux")));
        // The line after the greeting is streamed to the webview; the plugin knows its
        // directory from the environment.
        let tick = format!("tick in {}", dir.path().display());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !lock(&seen).iter().any(|v| v["line"] == tick.as_str()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(lock(&seen).iter().any(|v| v["line"] == tick.as_str()), "{:?}", lock(&seen));
        sidecars.stop(ctx).unwrap();
        assert!(sidecars.list().is_empty());
        #[cfg(target_os = "linux")]
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the stopped sidecar was reaped");
        assert!(lock(&seen).iter().any(|v| v["state"] == "stopped"));
    }

    #[test]
    fn a_sidecar_that_fails_at_start_fails_the_hook_with_what_it_said() {
        let dir = release("echo 'no config found' >&2\nexit 3\n");
        let (emit, _) = recorder();
        let sidecars = Sidecars::new(emit);
        let plugin: PluginId = "acme.clock".parse().unwrap();
        let version = Version::new(1, 0, 0);
        let error = sidecars.start(HookContext { plugin: &plugin, version: &version, path: dir.path() }).unwrap_err();
        assert!(error.message().contains("acme.clock 1.0.0 exited with"), "{error}");
        assert!(error.message().contains("no config found"), "{error}");
        assert!(sidecars.list().is_empty());
    }

    #[test]
    fn a_silent_sidecar_times_out_and_is_killed() {
        let dir = release("exec sleep 30\n");
        let (emit, _) = recorder();
        let mut sidecars = Sidecars::new(emit);
        sidecars.greeting_timeout = Duration::from_millis(300);
        let plugin: PluginId = "acme.clock".parse().unwrap();
        let version = Version::new(1, 0, 0);
        let started = Instant::now();
        let error = sidecars.start(HookContext { plugin: &plugin, version: &version, path: dir.path() }).unwrap_err();
        assert!(error.message().contains("printed nothing within"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10), "killed, not waited for");
    }

    #[test]
    fn a_release_without_an_entry_for_this_platform_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../registry-template/plugins/contoso.imagetools-2.1.0/plugin.json");
        let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(example).unwrap()).unwrap();
        manifest["entry"] = serde_json::json!({"windows-x86_64": "bin/windows-x86_64/imagetools.cmd"});
        std::fs::write(dir.path().join("plugin.json"), manifest.to_string()).unwrap();
        let plugin: PluginId = "contoso.imagetools".parse().unwrap();
        let error = entry_point(&plugin, dir.path());
        if cfg!(windows) {
            assert!(error.is_ok());
        } else {
            assert!(error.unwrap_err().message().contains("contoso.imagetools has no entry point for"));
        }
    }
}
