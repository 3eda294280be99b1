//! `tauri-plugin-trellis`: the Trellis plugin store inside a Tauri v2 app.
//!
//! One line in the app builder embeds the store; the webview drives it through the
//! `tauri-plugin-trellis-api` JavaScript package (`guest-js/`):
//!
//! ```ignore
//! fn main() {
//!     tauri::Builder::default()
//!         .plugin(tauri_plugin_trellis::Builder::new("my-app", semver::Version::new(1, 0, 0)).build())
//!         .run(tauri::generate_context!())
//!         .expect("error while running the app");
//! }
//! ```
//!
//! What the plugin does:
//! - opens one [`trellis_client::store::Store`] when the app starts (on a background
//!   thread; commands wait for it) in the app's local data dir (`%LOCALAPPDATA%\<app
//!   identifier>\trellis` on Windows), settles an operation a crash interrupted, starts
//!   the installed plugins, and keeps the store for the app's life (each operation
//!   refreshes the registries' trust metadata first);
//! - exposes commands for registries, search and browse, info, install, update (check,
//!   apply, scheduled), remove, rollback, list, verify, pins and policies
//!   ([`commands`]); long operations run on a worker thread and stream progress,
//!   lifecycle events and consent questions to the calling webview through a channel
//!   ([`Message`]), and every event to all windows as `trellis://event`;
//! - asks the webview for consent and waits for its answer: no answer within the
//!   consent timeout (default ten minutes) refuses, so nothing is ever installed
//!   without the user's agreement;
//! - forwards the store's host hooks to the app's [`StoreHooks`]; by default each
//!   plugin's entry point runs as a sidecar process ([`Sidecars`]), stopped before its
//!   files change and when the app exits.
//!
//! Permissions: `trellis:default` allows every command (see `permissions/default.toml`);
//! `trellis:read-only` allows only the commands that change nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use semver::Version;
use tauri::plugin::{Builder as PluginBuilder, TauriPlugin};
use tauri::{Emitter, Manager, RunEvent, Runtime};
use trellis_client::resolve::HostApp;
use trellis_client::store::StoreOptions;

pub mod commands;
mod core;
mod error;
mod hooks;

pub use crate::core::{Listed, Message, Sink, Status, Trellis};
pub use crate::error::{Error, Result};
pub use crate::hooks::{SidecarHooks, SidecarInfo, SidecarState, Sidecars, StoreHooks};
pub use trellis_client;
pub use trellis_client::hooks::{HookContext, HookError};

/// Sends one event to every window: `(event name, payload)`.
pub(crate) type Emit = Arc<dyn Fn(&'static str, serde_json::Value) + Send + Sync>;

/// How long an operation waits for the webview's consent answer before refusing.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(600);

/// A registry added when the store opens, unless one of that name is configured.
#[derive(Clone, Debug)]
struct SeedRegistry {
    name: String,
    url: String,
    root: Vec<u8>,
}

type Configure = Box<dyn FnOnce(&mut StoreOptions) + Send>;

/// Sets up the plugin: the host app's identity, where the store lives, the app's
/// hooks, and the store's options.
pub struct Builder {
    host: HostApp,
    data_dir: Option<PathBuf>,
    hooks: Arc<dyn StoreHooks>,
    consent_timeout: Duration,
    start_installed: bool,
    scheduled_updates: Option<Duration>,
    registries: Vec<SeedRegistry>,
    configure: Option<Configure>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("host", &self.host).field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl Builder {
    /// A store for the host app `host_id` providing plugin API `api_version` (what
    /// each release's `host` requirement is checked against).
    pub fn new(host_id: impl Into<String>, api_version: Version) -> Self {
        Self {
            host: HostApp { id: host_id.into(), api_version },
            data_dir: None,
            hooks: Arc::new(SidecarHooks),
            consent_timeout: DEFAULT_CONSENT_TIMEOUT,
            start_installed: true,
            scheduled_updates: None,
            registries: Vec::new(),
            configure: None,
        }
    }

    /// Keeps the store in `dir` instead of `<app local data dir>/trellis`.
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The app's hooks (default: [`SidecarHooks`]).
    #[must_use]
    pub fn hooks(mut self, hooks: impl StoreHooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    /// How long an operation waits for a consent answer before refusing (default
    /// [`DEFAULT_CONSENT_TIMEOUT`]).
    #[must_use]
    pub fn consent_timeout(mut self, timeout: Duration) -> Self {
        self.consent_timeout = timeout;
        self
    }

    /// Whether the enabled installed plugins are started when the store opens
    /// (default `true`).
    #[must_use]
    pub fn start_installed(mut self, start: bool) -> Self {
        self.start_installed = start;
        self
    }

    /// Runs the scheduled update check every `every` (the store applies only what the
    /// update policies allow on a schedule, never an update needing new consent, and
    /// only when the policy's check interval has passed). Reports go to every window
    /// as `trellis://scheduled-update`.
    #[must_use]
    pub fn scheduled_updates(mut self, every: Duration) -> Self {
        self.scheduled_updates = Some(every);
        self
    }

    /// Adds registry `name` at `url`, trusting `root` (its `1.root.json`), when the
    /// store opens and no registry of that name is configured.
    #[must_use]
    pub fn registry(mut self, name: impl Into<String>, url: impl Into<String>, root: Vec<u8>) -> Self {
        self.registries.push(SeedRegistry { name: name.into(), url: url.into(), root });
        self
    }

    /// Changes the store's options (HTTP settings, network, admin policy, telemetry).
    #[must_use]
    pub fn options(mut self, configure: impl FnOnce(&mut StoreOptions) + Send + 'static) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// The Tauri plugin, to pass to `tauri::Builder::plugin`.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let Self { host, data_dir, hooks, consent_timeout, start_installed, scheduled_updates, registries, configure } =
            self;
        PluginBuilder::new("trellis")
            .invoke_handler(tauri::generate_handler![
                commands::status,
                commands::registries,
                commands::add_registry,
                commands::remove_registry,
                commands::search,
                commands::browse,
                commands::info,
                commands::install,
                commands::check_updates,
                commands::update,
                commands::scheduled_update,
                commands::remove,
                commands::rollback,
                commands::list,
                commands::verify,
                commands::pins,
                commands::pin,
                commands::unpin,
                commands::policies,
                commands::set_policy,
                commands::answer_consent,
                commands::sidecars,
            ])
            .setup(move |app, _api| {
                let data_dir = match data_dir {
                    Some(dir) => dir,
                    None => app.path().app_local_data_dir()?.join("trellis"),
                };
                let handle = app.clone();
                let emit: Emit = Arc::new(move |event, payload| {
                    let _ = handle.emit(event, payload);
                });
                let trellis = Arc::new(Trellis::new(data_dir, hooks, emit, consent_timeout));
                app.manage(Arc::clone(&trellis));
                let mut options = StoreOptions::new(host);
                if let Some(configure) = configure {
                    configure(&mut options);
                }
                std::thread::Builder::new().name("trellis-open".into()).spawn(move || {
                    trellis.open(options, start_installed, &seeds(&registries));
                    if let Some(every) = scheduled_updates {
                        loop {
                            let report = trellis.run(None, |store, session| store.scheduled_update(session));
                            let payload = match report {
                                Ok(report) => serde_json::json!({"report": report}),
                                Err(error) => serde_json::json!({"error": error}),
                            };
                            trellis.emit("trellis://scheduled-update", payload);
                            std::thread::sleep(every);
                        }
                    }
                })?;
                Ok(())
            })
            .on_event(|app, event| {
                if let RunEvent::Exit = event
                    && let Some(trellis) = app.try_state::<Arc<Trellis>>()
                {
                    trellis.sidecars().stop_all();
                }
            })
            .build()
    }
}

fn seeds(registries: &[SeedRegistry]) -> Vec<(String, String, Vec<u8>)> {
    registries.iter().map(|r| (r.name.clone(), r.url.clone(), r.root.clone())).collect()
}

/// The store from anything that reaches the app (`app.trellis()`), for the app's own
/// Rust code.
pub trait TrellisExt<R: Runtime> {
    /// The plugin's store.
    fn trellis(&self) -> &Trellis;
}

impl<R: Runtime, T: Manager<R>> TrellisExt<R> for T {
    fn trellis(&self) -> &Trellis {
        self.state::<Arc<Trellis>>().inner()
    }
}
