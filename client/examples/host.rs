//! A small host app embedding `trellis-client`: its hooks really run the installed
//! plugins' entry points.
//!
//! ```text
//! cargo run -p trellis-client --example host -- DATA_DIR registry NAME URL ROOT.json
//! cargo run -p trellis-client --example host -- DATA_DIR install ID[@REQ]
//! cargo run -p trellis-client --example host -- DATA_DIR update | rollback ID | remove ID
//! cargo run -p trellis-client --example host -- DATA_DIR run
//! ```
//!
//! `start` reads the release's `plugin.json`, runs its entry point for this platform
//! (`sh` for `.sh` scripts) as a child process and shows what it printed; `stop` ends a
//! plugin still running; `register`/`unregister` keep the host's plugin menu in
//! `DATA_DIR/host-menu.json`. `run` starts every installed plugin, dependencies before
//! the plugins that need them, then stops them in the reverse order: what a host does
//! at launch and exit. The host's consent dialog ([`Dialog`]) shows the permissions
//! before anything is downloaded or started, for an install and for an update that asks
//! for more; this demo's user agrees. Every line names its plugin.
//!
//! Licensing: the store tells the host each paid plugin's license state through
//! [`HostHooks::license`] (at install, update and when a token is added or removed); the
//! host gates its premium feature ([`PREMIUM_FEATURE`]) on it, and `run` does not start
//! a paid plugin whose trial ended or whose license expired (asking
//! [`Store::license_state`], which works offline). `TRELLIS_HOST_NOW` (RFC 3339) judges
//! licenses and trials at another time, for the tests.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use trellis_client::consent::Disclosure;
use trellis_client::events::{Event, Reporter};
use trellis_client::hooks::{HookContext, HookError, HostHooks};
use trellis_client::license::LicenseState;
use trellis_client::resolve::HostApp;
use trellis_client::store::{Consent, Session, Store, StoreOptions, install::parse_requirement};
use trellis_schema::PluginId;
use trellis_schema::plugin::{Platform, PluginMetadata};

/// The feature this host unlocks only for licensed (or trial) paid plugins: the name a
/// vendor lists in a token's `features` (a token without features unlocks them all).
const PREMIUM_FEATURE: &str = "export";

/// Whether the host's premium feature is open to a plugin in `state`, in words.
fn gate(state: &LicenseState) -> &'static str {
    if state.allows_feature(PREMIUM_FEATURE) { "unlocked" } else { "locked (buy a license: trellis license add)" }
}

/// Runs plugins as child processes.
struct ProcessHooks {
    menu: PathBuf,
    running: Mutex<HashMap<PluginId, Child>>,
}

impl ProcessHooks {
    fn new(data_dir: &Path) -> Self {
        Self { menu: data_dir.join("host-menu.json"), running: Mutex::default() }
    }

    fn menu(&self) -> BTreeMap<String, String> {
        std::fs::read(&self.menu).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn save_menu(&self, menu: &BTreeMap<String, String>) -> Result<(), HookError> {
        let bytes = serde_json::to_vec_pretty(menu).map_err(HookError::new)?;
        trellis_client::fs::write_atomic(&self.menu, &bytes).map_err(HookError::new)
    }

    fn entry_point(ctx: &HookContext<'_>) -> Result<PathBuf, HookError> {
        let json = std::fs::read(ctx.path.join("plugin.json")).map_err(HookError::new)?;
        let metadata: PluginMetadata = serde_json::from_slice(&json).map_err(HookError::new)?;
        let platform = Platform::current().unwrap_or(Platform::Any);
        let entry =
            metadata.entry.get(&platform).or_else(|| metadata.entry.get(&Platform::Any)).ok_or_else(|| {
                HookError::msg(format!("{} has no entry point for {}", ctx.plugin, platform.as_str()))
            })?;
        Ok(ctx.path.join(entry))
    }
}

impl HostHooks for ProcessHooks {
    fn start(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let entry = Self::entry_point(&ctx)?;
        let mut command = if entry.extension().is_some_and(|e| e == "sh") {
            let mut c = Command::new("sh");
            c.arg(&entry);
            c
        } else {
            Command::new(&entry)
        };
        let mut child = command
            .current_dir(ctx.path)
            .env("TRELLIS_PLUGIN_ID", ctx.plugin.as_str())
            .env("TRELLIS_PLUGIN_VERSION", ctx.version.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| HookError::msg(format!("cannot run {}: {e}", entry.display())))?;
        // A plugin greets the host with one line when it is up; it may then keep running.
        let mut greeting = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut greeting).map_err(HookError::new)?;
        }
        // No greeting means stdout closed: the plugin is exiting; see how it ended.
        let ended = if greeting.is_empty() { child.wait().ok() } else { child.try_wait().ok().flatten() };
        if let Some(status) = ended
            && !status.success()
        {
            return Err(HookError::msg(format!("{} exited with {status}: {}", entry.display(), greeting.trim())));
        }
        println!("[host] started {} {}: {}", ctx.plugin, ctx.version, greeting.trim());
        self.running.lock().map_err(|_| HookError::msg("poisoned"))?.insert(ctx.plugin.clone(), child);
        Ok(())
    }

    fn stop(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let mut running = self.running.lock().map_err(|_| HookError::msg("poisoned"))?;
        if let Some(mut child) = running.remove(ctx.plugin) {
            // Entry points that finished on their own have exited already.
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        println!("[host] stopped {} {}", ctx.plugin, ctx.version);
        Ok(())
    }

    fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let mut menu = self.menu();
        menu.insert(ctx.plugin.to_string(), ctx.version.to_string());
        self.save_menu(&menu)?;
        println!("[host] added {} to the plugin menu", ctx.plugin);
        Ok(())
    }

    fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let mut menu = self.menu();
        menu.remove(ctx.plugin.as_str());
        self.save_menu(&menu)?;
        println!("[host] removed {} from the plugin menu", ctx.plugin);
        Ok(())
    }

    fn license(&self, ctx: HookContext<'_>, state: &LicenseState) {
        println!("[host] {} license: {state}; feature \"{PREMIUM_FEATURE}\" {}", ctx.plugin, gate(state));
    }
}

/// The host's consent dialog: shows what a release may do, before it is downloaded
/// or started, and answers as the user would (this demo's user agrees).
struct Dialog;

impl Consent for Dialog {
    fn agree(&self, disclosure: &Disclosure) -> bool {
        println!("[host] consent dialog: {} {} asks to:", disclosure.plugin, disclosure.version);
        for permission in disclosure.unconsented() {
            println!("[host]   {} {} may {permission}", disclosure.plugin, disclosure.version);
        }
        println!("[host] the user agrees to {} {}", disclosure.plugin, disclosure.version);
        true
    }
}

#[derive(Default)]
struct Print {
    downloaded: Mutex<std::collections::HashSet<String>>,
}

impl Reporter for Print {
    fn report(&self, event: Event) {
        match event {
            Event::Downloading { plugin, version, bytes_done, bytes_total: Some(total) } if bytes_done == total => {
                let first = self.downloaded.lock().is_ok_and(|mut seen| seen.insert(format!("{plugin} {version}")));
                if first {
                    println!("[store] downloaded {plugin} {version} ({total} bytes)");
                }
            }
            Event::Warning { plugin: Some(plugin), message } | Event::Disabled { plugin, message, .. } => {
                println!("[store] warning: {plugin}: {message}")
            }
            Event::Warning { plugin: None, message } => println!("[store] warning: {message}"),
            _ => {}
        }
    }
}

/// The enabled installed plugins, each after the plugins it depends on.
fn start_order(state: &trellis_client::state::State) -> Vec<(PluginId, semver::Version)> {
    let mut order: Vec<(PluginId, semver::Version)> = Vec::new();
    let mut left: Vec<_> = state.plugins().iter().filter(|(_, p)| p.disabled.is_none()).collect();
    while !left.is_empty() {
        let placed = |id: &PluginId| order.iter().any(|(o, _)| o == id) || state.plugin(id).is_none();
        let ready = left.iter().position(|(_, p)| p.active.dependencies.iter().all(&placed)).unwrap_or(0);
        let (id, plugin) = left.remove(ready);
        order.push((id.clone(), plugin.active.version.clone()));
    }
    order
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("host: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let [data_dir, command, rest @ ..] = args else {
        return Err(
            "usage: host DATA_DIR (registry NAME URL ROOT | search TEXT | install ID | update | rollback ID | remove ID | run)"
                .into(),
        );
    };
    let data_dir = PathBuf::from(data_dir);
    let host = HostApp { id: "trellis-demo-host".into(), api_version: semver::Version::new(1, 0, 0) };
    let mut options = StoreOptions::new(host);
    if let Ok(now) = std::env::var("TRELLIS_HOST_NOW") {
        options.reference_time = Some(now.parse().map_err(|e| format!("TRELLIS_HOST_NOW: {e}"))?);
    }
    let mut store = Store::open(&data_dir, options).map_err(|e| e.to_string())?;
    let hooks = ProcessHooks::new(&data_dir);
    let session = Session::new(&hooks, &Dialog).with_reporter(Arc::new(Print::default()));
    store.finish_recovery(&session).map_err(|e| e.to_string())?;
    let id = |i: usize| -> Result<PluginId, String> {
        rest.get(i).ok_or("missing plugin id")?.parse().map_err(|e| format!("{e}"))
    };
    match command.as_str() {
        "registry" => {
            let [name, url, root] = rest else { return Err("usage: registry NAME URL ROOT.json".into()) };
            let root = std::fs::read(root).map_err(|e| format!("{root}: {e}"))?;
            store.add_registry(name, url, &root).map_err(|e| e.to_string())?;
        }
        "search" => {
            // The same catalog search as `trellis search`: the head and the shards of
            // the query's terms, verified through the registry's TUF chain.
            let text = rest.join(" ");
            let query = trellis_client::catalog::Query::new(&text);
            let results = store.search(&query).map_err(|e| e.to_string())?;
            for hit in &results.hits {
                let mark = match &hit.compatibility {
                    trellis_client::catalog::Compatibility::Runs => String::new(),
                    trellis_client::catalog::Compatibility::Incompatible { reason } => {
                        format!(" (cannot run: {reason})")
                    }
                };
                let version = hit.latest.as_ref().map(ToString::to_string).unwrap_or_default();
                println!("[store] found {} {version}: {}{mark}", hit.id, hit.name);
            }
        }
        "install" => {
            let requirement = parse_requirement(rest.first().ok_or("missing plugin id")?)?;
            let report = store.install(&[requirement], &session).map_err(|e| e.to_string())?;
            for (plugin, version) in &report.installed {
                println!("[store] installed {plugin} {version}");
            }
        }
        "update" => {
            let report = store.update(&[], &session).map_err(|e| e.to_string())?;
            for (plugin, from, to) in report.updated {
                println!("[store] updated {plugin} {from} -> {to}");
            }
            for (plugin, to, why) in &report.rolled_back {
                println!("[store] update of {plugin} to {to} failed, rolled back: {why}");
            }
        }
        "rollback" => {
            let plugin = id(0)?;
            let version = store.rollback(&plugin, &session).map_err(|e| e.to_string())?;
            println!("[store] rolled back {plugin} to {version}; it stays there until it is unpinned");
        }
        "remove" => {
            let plugin = id(0)?;
            for removed in store.remove(&plugin, true, &session).map_err(|e| e.to_string())? {
                if removed == plugin {
                    println!("[store] removed {removed}");
                } else {
                    println!("[store] removed {removed} too: it needs {plugin} (the removal cascades)");
                }
            }
        }
        "run" => {
            let mut installed = start_order(store.state());
            // A paid plugin whose trial ended (or license expired) is not started.
            let mut refused = Vec::new();
            for (plugin, _) in &installed {
                let state = store.license_state(plugin).map_err(|e| e.to_string())?;
                if !state.allows_use() {
                    println!("[host] not starting {plugin}: {state}");
                    refused.push(plugin.clone());
                } else if state != LicenseState::Free {
                    println!("[host] {plugin}: {state}; feature \"{PREMIUM_FEATURE}\" {}", gate(&state));
                }
            }
            installed.retain(|(plugin, _)| !refused.contains(plugin));
            for (plugin, version) in &installed {
                let path = store.data_dir().release_dir(plugin, version);
                hooks.start(HookContext { plugin, version, path: &path }).map_err(|e| e.to_string())?;
            }
            for (plugin, version) in installed.iter().rev() {
                let path = store.data_dir().release_dir(plugin, version);
                hooks.stop(HookContext { plugin, version, path: &path }).map_err(|e| e.to_string())?;
            }
        }
        other => return Err(format!("unknown command {other}")),
    }
    Ok(())
}
