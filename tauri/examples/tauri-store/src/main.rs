//! An example Tauri app embedding the Trellis store through `tauri-plugin-trellis`.
//!
//! The webview (`ui/`) is a small store: search, a plugin page with its permissions,
//! the consent dialog, install with progress, updates with re-consent, rollback,
//! removal, and the installed plugins with their state. Installed plugins run as
//! sidecar processes (the plugin's default hooks); this app's hooks add a line to its
//! log for each step.
//!
//! Environment (all optional):
//! - `TRELLIS_STORE_DATA_DIR`: the store's data dir (default: the app's local data dir);
//! - `TRELLIS_STORE_REGISTRY_URL` and `TRELLIS_STORE_REGISTRY_ROOT` (a `1.root.json`
//!   file): a registry named `example` added on first start.
//!
//! Without the default `store` feature the app is the same window without the store,
//! to measure what the plugin adds to the binary.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[cfg(feature = "store")]
mod hooks {
    use tauri_plugin_trellis::{HookContext, HookError, Sidecars, StoreHooks};

    /// The app's hooks: plugins run as sidecars; every step is logged.
    pub(crate) struct AppHooks;

    impl StoreHooks for AppHooks {
        fn start(&self, sidecars: &Sidecars, ctx: HookContext<'_>) -> Result<(), HookError> {
            sidecars.start(ctx)?;
            eprintln!("[tauri-store] started {} {}", ctx.plugin, ctx.version);
            Ok(())
        }

        fn stop(&self, sidecars: &Sidecars, ctx: HookContext<'_>) -> Result<(), HookError> {
            sidecars.stop(ctx)?;
            eprintln!("[tauri-store] stopped {} {}", ctx.plugin, ctx.version);
            Ok(())
        }

        fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
            eprintln!("[tauri-store] registered {}", ctx.plugin);
            Ok(())
        }

        fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
            eprintln!("[tauri-store] unregistered {}", ctx.plugin);
            Ok(())
        }
    }
}

fn main() {
    let builder = tauri::Builder::default();
    #[cfg(feature = "store")]
    let builder = builder.plugin(store());
    if let Err(error) = builder.run(tauri::generate_context!()) {
        eprintln!("tauri-store: {error}");
        std::process::exit(1);
    }
}

#[cfg(feature = "store")]
fn store<R: tauri::Runtime>() -> tauri::plugin::TauriPlugin<R> {
    let mut store =
        tauri_plugin_trellis::Builder::new("trellis-demo-host", semver::Version::new(1, 0, 0)).hooks(hooks::AppHooks);
    if let Some(dir) = std::env::var_os("TRELLIS_STORE_DATA_DIR") {
        store = store.data_dir(dir);
    }
    if let (Some(url), Some(root)) =
        (std::env::var_os("TRELLIS_STORE_REGISTRY_URL"), std::env::var_os("TRELLIS_STORE_REGISTRY_ROOT"))
    {
        match std::fs::read(&root) {
            Ok(bytes) => store = store.registry("example", url.to_string_lossy(), bytes),
            Err(error) => eprintln!("tauri-store: TRELLIS_STORE_REGISTRY_ROOT {}: {error}", root.to_string_lossy()),
        }
    }
    store.build()
}
