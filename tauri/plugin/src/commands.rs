//! The commands the webview invokes (`plugin:trellis|<name>`). Each runs on a worker
//! thread (the store does blocking I/O); the long ones take an `onEvent` channel that
//! receives the operation's [`Message`]s: progress, lifecycle events, the plan and the
//! consent questions.
//!
//! Arguments are checked here and a bad one is refused with [`Error::Invalid`] naming
//! the argument and the value; everything else is the store's own error.

use std::collections::BTreeMap;
use std::sync::Arc;

use semver::Version;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime};
use trellis_client::catalog::Query;
use trellis_client::policy::{Policies, UpdateMode};
use trellis_client::resolve::Requirement;
use trellis_client::state::RegistryName;
use trellis_client::store::install::{InstallReport, parse_requirement};
use trellis_client::store::levels::SecurityLevel;
use trellis_client::store::registries::RegistryConfig;
use trellis_client::store::update::{UpdateCheckReport, UpdateReport};
use trellis_client::store::verify::VerifyReport;
use trellis_client::store::{Browse, SearchResults};
use trellis_schema::PluginId;
use trellis_schema::index::IndexDoc;
use trellis_schema::permission::Risk;
use trellis_schema::plugin::Channel as ReleaseChannel;

use crate::core::{Listed, Message, Sink, Status, Trellis};
use crate::error::{Error, Result};
use crate::hooks::SidecarInfo;

/// Runs `work` on a worker thread with the plugin's store.
async fn blocking<R: Runtime, T: Send + 'static>(
    app: &AppHandle<R>,
    work: impl FnOnce(&Trellis) -> Result<T> + Send + 'static,
) -> Result<T> {
    let trellis = Arc::clone(app.state::<Arc<Trellis>>().inner());
    tauri::async_runtime::spawn_blocking(move || work(&trellis)).await.map_err(|e| Error::Task(e.to_string()))?
}

fn sink(channel: Channel<Message>) -> Sink {
    // A closed webview must not fail the operation: its messages are dropped.
    Arc::new(move |message| {
        let _ = channel.send(message);
    })
}

/// Parses the `plugin` argument.
pub fn plugin_id(text: &str) -> Result<PluginId> {
    text.parse().map_err(|e| Error::Invalid(format!("`{text}` is not a plugin id: {e}")))
}

fn plugin_ids(texts: &[String]) -> Result<Vec<PluginId>> {
    texts.iter().map(|t| plugin_id(t)).collect()
}

fn requirements(texts: &[String]) -> Result<Vec<Requirement>> {
    if texts.is_empty() {
        return Err(Error::Invalid("install needs at least one plugin (`acme.clock` or `acme.clock@^1.2`)".into()));
    }
    texts.iter().map(|t| parse_requirement(t).map_err(Error::Invalid)).collect()
}

/// Where the store lives, whether it opened, and how long opening took.
#[tauri::command]
pub async fn status<R: Runtime>(app: AppHandle<R>) -> Result<Status> {
    blocking(&app, |t| Ok(t.status())).await
}

/// The configured registries, first = highest priority.
#[tauri::command]
pub async fn registries<R: Runtime>(app: AppHandle<R>) -> Result<Vec<RegistryConfig>> {
    blocking(&app, |t| t.run(None, |store, _| Ok(store.registries().registries.clone()))).await
}

/// What adding a registry trusted.
#[derive(Clone, Debug, Serialize)]
pub struct Added {
    /// The registry's name.
    pub name: String,
    /// The root version trusted after the root chain was followed.
    pub root_version: u64,
    /// The snapshot version seen, when the registry was reached.
    pub snapshot_version: Option<u64>,
}

/// Adds registry `name` at `url`, trusting `root` (the text of its `1.root.json`).
#[tauri::command]
pub async fn add_registry<R: Runtime>(app: AppHandle<R>, name: String, url: String, root: String) -> Result<Added> {
    blocking(&app, move |t| {
        let (root_version, snapshot_version) =
            t.run(None, |store, _| store.add_registry(&name, &url, root.as_bytes()))?;
        Ok(Added { name, root_version, snapshot_version })
    })
    .await
}

/// Removes registry `name` (refused while installed plugins come from it).
#[tauri::command]
pub async fn remove_registry<R: Runtime>(app: AppHandle<R>, name: String) -> Result<()> {
    blocking(&app, move |t| t.run(None, |store, _| store.remove_registry(&name))).await
}

/// Searches the registries' catalogs (every plugin when `query` is empty).
#[tauri::command]
pub async fn search<R: Runtime>(app: AppHandle<R>, query: String) -> Result<SearchResults> {
    blocking(&app, move |t| t.run(None, |store, _| store.search(&Query::new(&query)))).await
}

/// The catalog home of each registry, or page `page` of listing `listing`
/// (`category/<name>`, `tag/<name>`).
#[tauri::command]
pub async fn browse<R: Runtime>(
    app: AppHandle<R>,
    listing: Option<String>,
    page: Option<u32>,
) -> Result<BTreeMap<RegistryName, Browse>> {
    blocking(&app, move |t| t.run(None, |store, _| store.browse(listing.as_deref(), page.unwrap_or(1)))).await
}

/// A plugin's index doc (every release with its permissions) and its registry.
#[derive(Clone, Debug, Serialize)]
pub struct Info {
    /// The registry serving it.
    pub registry: RegistryName,
    /// The signed index doc.
    pub doc: IndexDoc,
    /// The newest release that is not yanked.
    pub latest: Option<Version>,
    /// Its permissions in plain words, riskiest first (what the plugin page shows
    /// before the consent dialog, which discloses from the signed manifest).
    pub permissions: Vec<ShownPermission>,
    /// Each release's security level with its reasons, by version, from the registry's
    /// signed levels (`{"status":"known","level":…,"reasons":[…],…}`, or
    /// `{"status":"unknown","reason":…}`: below every level).
    pub security_levels: BTreeMap<Version, SecurityLevel>,
}

/// One permission as a plugin page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ShownPermission {
    /// `type:scope`.
    pub key: String,
    /// Completes "This plugin can …"; the key itself for a scope this client does not know.
    pub plain: String,
    /// `low`, `medium` or `high` (`high` for an unknown scope: fail closed).
    pub risk: Risk,
    /// The developer's reason.
    pub reason: String,
}

fn shown(doc: &IndexDoc) -> (Option<Version>, Vec<ShownPermission>) {
    let Some(release) = doc.releases.iter().rev().find(|r| !r.yanked) else { return (None, Vec::new()) };
    let mut permissions: Vec<ShownPermission> = release
        .permissions
        .iter()
        .map(|p| {
            let info = p.info();
            ShownPermission {
                key: p.key(),
                plain: info.map_or_else(|| p.key(), |i| i.plain.to_owned()),
                risk: info.map_or(Risk::High, |i| i.risk),
                reason: p.reason.clone(),
            }
        })
        .collect();
    permissions.sort_by(|a, b| b.risk.cmp(&a.risk).then_with(|| a.key.cmp(&b.key)));
    (Some(release.version.clone()), permissions)
}

/// The plugin's releases, permissions and registry.
#[tauri::command]
pub async fn info<R: Runtime>(app: AppHandle<R>, plugin: String) -> Result<Info> {
    blocking(&app, move |t| {
        let id = plugin_id(&plugin)?;
        let (registry, doc, security_levels) = t.run(None, |store, _| {
            let (registry, doc) = store.info(&id)?;
            let versions: Vec<Version> = doc.releases.iter().map(|r| r.version.clone()).collect();
            let levels = store.security_levels(&registry, &id, &versions)?;
            Ok((registry, doc, levels))
        })?;
        let (latest, permissions) = shown(&doc);
        Ok(Info { registry, doc: IndexDoc::clone(&doc), latest, permissions, security_levels })
    })
    .await
}

/// Installs `plugins` (`id` or `id@requirement`) with their dependencies. Consent is
/// asked on `on_event`; nothing is installed without the answer.
#[tauri::command]
pub async fn install<R: Runtime>(
    app: AppHandle<R>,
    plugins: Vec<String>,
    on_event: Channel<Message>,
) -> Result<InstallReport> {
    blocking(&app, move |t| {
        let requirements = requirements(&plugins)?;
        t.run(Some(sink(on_event)), |store, session| store.install(&requirements, session))
    })
    .await
}

/// Which updates are available for `plugins` (every installed one when empty) and
/// what the update policy would do with each.
#[tauri::command]
pub async fn check_updates<R: Runtime>(app: AppHandle<R>, plugins: Vec<String>) -> Result<UpdateCheckReport> {
    blocking(&app, move |t| {
        let ids = plugin_ids(&plugins)?;
        t.run(None, |store, session| store.check_updates(&ids, session))
    })
    .await
}

/// Updates `plugins` (every installed one when empty); new permissions are asked on
/// `on_event`.
#[tauri::command]
pub async fn update<R: Runtime>(
    app: AppHandle<R>,
    plugins: Vec<String>,
    on_event: Channel<Message>,
) -> Result<UpdateReport> {
    blocking(&app, move |t| {
        let ids = plugin_ids(&plugins)?;
        t.run(Some(sink(on_event)), |store, session| store.update(&ids, session))
    })
    .await
}

/// The scheduled check: applies what the policies allow on a schedule when the check
/// interval has passed (`null` when no check was due).
#[tauri::command]
pub async fn scheduled_update<R: Runtime>(
    app: AppHandle<R>,
    on_event: Channel<Message>,
) -> Result<Option<UpdateReport>> {
    blocking(&app, move |t| t.run(Some(sink(on_event)), |store, session| store.scheduled_update(session))).await
}

/// Removes `plugin` (with the plugins that need it when `cascade`); the removed ids.
#[tauri::command]
pub async fn remove<R: Runtime>(
    app: AppHandle<R>,
    plugin: String,
    cascade: Option<bool>,
    on_event: Channel<Message>,
) -> Result<Vec<PluginId>> {
    blocking(&app, move |t| {
        let id = plugin_id(&plugin)?;
        t.run(Some(sink(on_event)), |store, session| store.remove(&id, cascade.unwrap_or(false), session))
    })
    .await
}

/// Rolls `plugin` back to its kept previous release (it stays there until unpinned);
/// the release now active.
#[tauri::command]
pub async fn rollback<R: Runtime>(app: AppHandle<R>, plugin: String, on_event: Channel<Message>) -> Result<Version> {
    blocking(&app, move |t| {
        let id = plugin_id(&plugin)?;
        t.run(Some(sink(on_event)), |store, session| store.rollback(&id, session))
    })
    .await
}

/// The installed plugins with their state and sidecar process.
#[tauri::command]
pub async fn list<R: Runtime>(app: AppHandle<R>) -> Result<Vec<Listed>> {
    blocking(&app, |t| t.list()).await
}

/// Checks installed files against their signed manifests (`plugins` empty: all).
#[tauri::command]
pub async fn verify<R: Runtime>(app: AppHandle<R>, plugins: Vec<String>) -> Result<Vec<VerifyReport>> {
    blocking(&app, move |t| {
        let ids = plugin_ids(&plugins)?;
        t.run(None, |store, _| store.verify(&ids))
    })
    .await
}

/// The pins: plugin → release it is held at.
#[tauri::command]
pub async fn pins<R: Runtime>(app: AppHandle<R>) -> Result<BTreeMap<PluginId, Version>> {
    blocking(&app, |t| t.pins()).await
}

/// Pins `plugin` at `version` (its active release when absent).
#[tauri::command]
pub async fn pin<R: Runtime>(app: AppHandle<R>, plugin: String, version: Option<String>) -> Result<Version> {
    blocking(&app, move |t| {
        let id = plugin_id(&plugin)?;
        let version = version
            .map(|v| v.parse::<Version>().map_err(|e| Error::Invalid(format!("`{v}` is not a version: {e}"))))
            .transpose()?;
        t.pin(&id, version)
    })
    .await
}

/// Unpins `plugin`; the release it was pinned at, if it was.
#[tauri::command]
pub async fn unpin<R: Runtime>(app: AppHandle<R>, plugin: String) -> Result<Option<Version>> {
    blocking(&app, move |t| t.unpin(&plugin_id(&plugin)?)).await
}

/// The update policies (global and per plugin).
#[tauri::command]
pub async fn policies<R: Runtime>(app: AppHandle<R>) -> Result<Policies> {
    blocking(&app, |t| t.policies()).await
}

/// Changes the global policy, or `plugin`'s override: `mode` (`auto`, `notify`,
/// `manual`), `channel` (`stable`, `beta`, `experimental`); `reset` first goes back to
/// the defaults.
#[tauri::command]
pub async fn set_policy<R: Runtime>(
    app: AppHandle<R>,
    plugin: Option<String>,
    mode: Option<String>,
    channel: Option<String>,
    reset: Option<bool>,
) -> Result<Policies> {
    blocking(&app, move |t| {
        let id = plugin.as_deref().map(plugin_id).transpose()?;
        let mode: Option<UpdateMode> =
            mode.as_deref().map(|m| m.parse().map_err(|e| Error::Invalid(format!("mode: {e}")))).transpose()?;
        let channel: Option<ReleaseChannel> =
            channel.as_deref().map(|c| c.parse().map_err(|e| Error::Invalid(format!("channel: {e}")))).transpose()?;
        t.set_policy(id.as_ref(), mode, channel, reset.unwrap_or(false))
    })
    .await
}

/// Answers consent question `id` (from a `consent` message): `agree` or refuse.
#[tauri::command]
pub async fn answer_consent<R: Runtime>(app: AppHandle<R>, id: u64, agree: bool) -> Result<()> {
    blocking(&app, move |t| t.answer(id, agree)).await
}

/// The plugins started as sidecars since the app started, with their state.
#[tauri::command]
pub async fn sidecars<R: Runtime>(app: AppHandle<R>) -> Result<Vec<SidecarInfo>> {
    blocking(&app, |t| Ok(t.sidecars().list())).await
}
