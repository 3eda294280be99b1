//! The store kept for the app's life and the operations the commands run on it, free
//! of Tauri types so they can be tested without a webview.
//!
//! [`Trellis`] owns one [`Store`] (opened once, on a background thread so the app's
//! window is not held up; commands wait for it), the app's hooks, the sidecars and the
//! consent questions waiting for the webview's answer. Every operation runs with a
//! [`Session`] whose reporter streams [`Message::Event`]s to the calling command's
//! channel and to every window (`trellis://event`), and whose consent sends
//! [`Message::Consent`] and blocks the operation until the webview answers through
//! [`Trellis::answer`] — or refuses when no answer comes in time. The store never
//! installs anything the user did not agree to.
//!
//! The store refreshes its registries at the start of each operation (the cheap
//! one-request check when nothing changed), so keeping it open for the app's life
//! never serves stale trust metadata.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use semver::Version;
use serde::Serialize;
use trellis_client::consent::Disclosure;
use trellis_client::events::{Event, Reporter};
use trellis_client::hooks::HookContext;
use trellis_client::policy::{Policies, PolicyOverride, UpdateMode};
use trellis_client::state::{Disabled, InstallReason};
use trellis_client::store::{Consent, Plan, Session, Store, StoreError, StoreOptions};
use trellis_schema::PluginId;
use trellis_schema::plugin::Channel as ReleaseChannel;

use crate::Emit;
use crate::error::{Error, Result};
use crate::hooks::{Forward, SidecarInfo, Sidecars, StoreHooks};

/// One message of an operation's stream to the webview (the command's channel).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// Progress or a lifecycle step (`downloading`, `hook_called`, `done`, …).
    Event {
        /// The event, tagged `event`.
        event: Event,
    },
    /// What the operation is about to do, before its consent questions.
    Plan {
        /// Releases and questions.
        plan: Plan,
    },
    /// A consent question: answer it with `answerConsent(id, agree)`.
    Consent {
        /// The question's id.
        id: u64,
        /// What the release may do; the permissions with `needs_consent` are asked.
        disclosure: Disclosure,
    },
}

/// Where an operation's messages go (a command's channel).
pub type Sink = Arc<dyn Fn(Message) + Send + Sync>;

/// The consent questions waiting for the webview's answer.
#[derive(Default)]
struct Questions {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, mpsc::Sender<bool>>>,
}

/// The plugin's state: one store for the app's life.
pub struct Trellis {
    store: OnceLock<std::result::Result<Mutex<Store>, String>>,
    hooks: Arc<dyn StoreHooks>,
    sidecars: Sidecars,
    questions: Questions,
    emit: Emit,
    consent_timeout: Duration,
    opened_in: OnceLock<Duration>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Trellis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trellis").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

/// What `status` tells the webview.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The store's data dir.
    pub data_dir: PathBuf,
    /// Milliseconds the store took to open: the data dir locked, the state read, an
    /// interrupted operation settled (not the first-start registry additions).
    pub opened_in_ms: Option<f64>,
    /// Whether the store opened; `error` says why not.
    pub open: bool,
    /// Why the store could not be opened.
    pub error: Option<String>,
}

/// One installed plugin as the store UI lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// The plugin.
    pub id: PluginId,
    /// The registry it came from.
    pub registry: String,
    /// The active release.
    pub version: Version,
    /// The release kept for rollback.
    pub previous: Option<Version>,
    /// Why it is installed.
    pub reason: InstallReason,
    /// The release it is pinned at.
    pub pinned: Option<Version>,
    /// Set when it was disabled (blocked or revoked): it is not started.
    pub disabled: Option<Disabled>,
    /// Its sidecar process since the app started, if it was started.
    pub sidecar: Option<SidecarInfo>,
}

impl Trellis {
    /// A store at `data_dir` not opened yet (see [`Trellis::open`]).
    pub(crate) fn new(data_dir: PathBuf, hooks: Arc<dyn StoreHooks>, emit: Emit, consent_timeout: Duration) -> Self {
        Self {
            store: OnceLock::new(),
            sidecars: Sidecars::new(Arc::clone(&emit)),
            hooks,
            questions: Questions::default(),
            emit,
            consent_timeout,
            opened_in: OnceLock::new(),
            data_dir,
        }
    }

    /// Opens the store (waiting for another process holding the data dir), settles an
    /// operation a crash interrupted, and starts the enabled installed plugins when
    /// `start_installed`. Called once, on a background thread; commands wait for it.
    pub(crate) fn open(&self, options: StoreOptions, start_installed: bool, seeds: &[(String, String, Vec<u8>)]) {
        let started = Instant::now();
        let opened = Store::open(&self.data_dir, options).map_err(|e| Error::Store(e).full_message());
        let opened = opened.and_then(|mut store| {
            // A crash-interrupted operation is settled through the app's hooks; its
            // consent (if any is asked) goes to every window.
            let forward = Forward { hooks: &*self.hooks, sidecars: &self.sidecars };
            let consent = WebviewConsent { trellis: self, sink: None };
            let reporter = Arc::new(WebviewReporter { emit: Arc::clone(&self.emit), sink: None });
            let session = Session::new(&forward, &consent).with_reporter(reporter);
            store.finish_recovery(&session).map_err(|e| Error::Store(e).full_message())?;
            // The cold start: the data dir locked, the state read, recovery settled.
            let _ = self.opened_in.set(started.elapsed());
            for (name, url, root) in seeds {
                if store.registries().registries.iter().any(|r| r.name.as_str() == name.as_str()) {
                    continue;
                }
                if let Err(error) = store.add_registry(name, url, root) {
                    let message =
                        format!("registry `{name}` ({url}) was not added: {}", Error::Store(error).full_message());
                    self.emit(
                        "trellis://event",
                        serde_json::to_value(Event::Warning { plugin: None, message }).unwrap_or_default(),
                    );
                }
            }
            Ok(store)
        });
        let ok = opened.is_ok();
        let _ = self.opened_in.set(started.elapsed());
        let _ = self.store.set(opened.map(Mutex::new));
        if ok && start_installed {
            self.start_installed();
        }
        (self.emit)("trellis://ready", serde_json::to_value(self.status()).unwrap_or_default());
    }

    /// Sends `payload` as `event` to every window.
    pub(crate) fn emit(&self, event: &'static str, payload: serde_json::Value) {
        (self.emit)(event, payload);
    }

    /// The open store, waiting while it opens.
    fn store(&self) -> Result<MutexGuard<'_, Store>> {
        match self.store.wait() {
            Ok(store) => Ok(store.lock().unwrap_or_else(PoisonError::into_inner)),
            Err(error) => Err(Error::NotOpen(error.clone())),
        }
    }

    /// Where the store lives, whether it opened, and how long that took.
    pub fn status(&self) -> Status {
        let error = self.store.get().and_then(|s| s.as_ref().err().cloned());
        Status {
            data_dir: self.data_dir.clone(),
            opened_in_ms: self.opened_in.get().map(|d| d.as_secs_f64() * 1000.0),
            open: self.store.get().is_some_and(std::result::Result::is_ok),
            error,
        }
    }

    /// The sidecars (the app may start and stop plugins itself).
    pub fn sidecars(&self) -> &Sidecars {
        &self.sidecars
    }

    /// Runs `operation` on the store with a session whose events and consent
    /// questions go to `sink` (and events to every window).
    pub fn run<T>(
        &self,
        sink: Option<Sink>,
        operation: impl FnOnce(&mut Store, &Session<'_>) -> std::result::Result<T, StoreError>,
    ) -> Result<T> {
        let mut store = self.store()?;
        let forward = Forward { hooks: &*self.hooks, sidecars: &self.sidecars };
        let consent = WebviewConsent { trellis: self, sink: sink.clone() };
        let reporter = Arc::new(WebviewReporter { emit: Arc::clone(&self.emit), sink });
        let session = Session::new(&forward, &consent).with_reporter(reporter);
        Ok(operation(&mut store, &session)?)
    }

    /// Answers consent question `id`; the operation waiting for it goes on.
    pub fn answer(&self, id: u64, agree: bool) -> Result<()> {
        let sender = lock(&self.questions.waiting).remove(&id).ok_or(Error::NoSuchQuestion(id))?;
        sender.send(agree).map_err(|_| Error::NoSuchQuestion(id))
    }

    /// The installed plugins with their state and sidecar.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let store = self.store()?;
        let sidecars = self.sidecars.list();
        let state = store.state();
        Ok(state
            .plugins()
            .iter()
            .map(|(id, p)| Listed {
                id: id.clone(),
                registry: p.registry.to_string(),
                version: p.active.version.clone(),
                previous: p.previous.as_ref().map(|r| r.version.clone()),
                reason: p.reason,
                pinned: state.pins.get(id).cloned(),
                disabled: p.disabled.clone(),
                sidecar: sidecars.iter().find(|s| &s.plugin == id).cloned(),
            })
            .collect())
    }

    /// Pins `plugin` at `version` (the active release when `None`); the release must
    /// be installed or listed by its registry.
    pub fn pin(&self, plugin: &PluginId, version: Option<Version>) -> Result<Version> {
        let mut store = self.store()?;
        let version = match version {
            Some(version) => {
                if !store.state().plugin(plugin).is_some_and(|p| p.refers_to(&version)) {
                    let (registry, doc) = store.info(plugin)?;
                    if !doc.releases.iter().any(|r| r.version == version) {
                        return Err(Error::Invalid(format!(
                            "{plugin} has no release {version} in registry `{registry}`"
                        )));
                    }
                }
                version
            }
            None => match store.state().plugin(plugin) {
                Some(p) => p.active.version.clone(),
                None => {
                    return Err(Error::Invalid(format!("{plugin} is not installed; name the version to pin")));
                }
            },
        };
        store.update_state(|s| s.pins.insert(plugin.clone(), version.clone()))?;
        Ok(version)
    }

    /// Unpins `plugin`; the release it was pinned at, if it was.
    pub fn unpin(&self, plugin: &PluginId) -> Result<Option<Version>> {
        Ok(self.store()?.update_state(|s| s.pins.remove(plugin))?)
    }

    /// The pins.
    pub fn pins(&self) -> Result<std::collections::BTreeMap<PluginId, Version>> {
        Ok(self.store()?.state().pins.clone())
    }

    /// Changes the global policy (`plugin` `None`) or one plugin's override; `reset`
    /// first goes back to the defaults. Returns the policies now.
    pub fn set_policy(
        &self,
        plugin: Option<&PluginId>,
        mode: Option<UpdateMode>,
        channel: Option<ReleaseChannel>,
        reset: bool,
    ) -> Result<Policies> {
        let mut store = self.store()?;
        if let Some(id) = plugin
            && (mode.is_some() || channel.is_some())
            && store.state().plugin(id).is_none()
        {
            store.info(id)?;
        }
        store.update_state(|s| {
            if reset {
                match plugin {
                    Some(id) => {
                        s.policies.plugins.remove(id);
                    }
                    None => s.policies.global = Default::default(),
                }
            }
            if mode.is_some() || channel.is_some() {
                match plugin {
                    Some(id) => {
                        let o = s.policies.plugins.entry(id.clone()).or_insert_with(PolicyOverride::default);
                        o.mode = mode.or(o.mode);
                        o.channel = channel.or(o.channel);
                    }
                    None => {
                        if let Some(mode) = mode {
                            s.policies.global.mode = mode;
                        }
                        if let Some(channel) = channel {
                            s.policies.global.channel = channel;
                        }
                    }
                }
            }
        })?;
        Ok(store.state().policies.clone())
    }

    /// The policies.
    pub fn policies(&self) -> Result<Policies> {
        Ok(self.store()?.state().policies.clone())
    }

    /// Starts every enabled installed plugin, dependencies first (what an app does at
    /// launch). A plugin that fails to start is reported as a warning event.
    pub fn start_installed(&self) {
        let order = match self.store() {
            Ok(store) => {
                let order = start_order(store.state());
                order.into_iter().map(|(id, v)| (store.data_dir().release_dir(&id, &v), id, v)).collect::<Vec<_>>()
            }
            Err(_) => return,
        };
        for (path, plugin, version) in order {
            let ctx = HookContext { plugin: &plugin, version: &version, path: &path };
            if let Err(error) = self.hooks.start(&self.sidecars, ctx) {
                let warning = Event::Warning { plugin: Some(plugin.clone()), message: error.to_string() };
                (self.emit)("trellis://event", serde_json::to_value(&warning).unwrap_or_default());
            }
        }
    }
}

/// The enabled installed plugins, each after the plugins it depends on.
fn start_order(state: &trellis_client::state::State) -> Vec<(PluginId, Version)> {
    let mut order: Vec<(PluginId, Version)> = Vec::new();
    let mut left: Vec<_> = state.plugins().iter().filter(|(_, p)| p.disabled.is_none()).collect();
    while !left.is_empty() {
        let placed = |id: &PluginId| order.iter().any(|(o, _)| o == id) || state.plugin(id).is_none();
        let ready = left.iter().position(|(_, p)| p.active.dependencies.iter().all(&placed)).unwrap_or(0);
        let (id, plugin) = left.remove(ready);
        order.push((id.clone(), plugin.active.version.clone()));
    }
    order
}

/// Streams events to the operation's channel and to every window.
struct WebviewReporter {
    emit: Emit,
    sink: Option<Sink>,
}

impl Reporter for WebviewReporter {
    fn report(&self, event: Event) {
        (self.emit)("trellis://event", serde_json::to_value(&event).unwrap_or_default());
        if let Some(sink) = &self.sink {
            sink(Message::Event { event });
        }
    }
}

/// Asks the webview and waits for its answer; no answer in time is a refusal.
struct WebviewConsent<'a> {
    trellis: &'a Trellis,
    sink: Option<Sink>,
}

impl Consent for WebviewConsent<'_> {
    fn plan(&self, plan: &Plan) {
        if let Some(sink) = &self.sink {
            sink(Message::Plan { plan: plan.clone() });
        }
    }

    fn agree(&self, disclosure: &Disclosure) -> bool {
        let questions = &self.trellis.questions;
        let id = questions.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (sender, answer) = mpsc::channel();
        lock(&questions.waiting).insert(id, sender);
        let message = Message::Consent { id, disclosure: disclosure.clone() };
        match &self.sink {
            Some(sink) => sink(message),
            // An operation started from Rust without a channel asks every window.
            None => (self.trellis.emit)("trellis://consent", serde_json::to_value(&message).unwrap_or_default()),
        }
        let agreed = answer.recv_timeout(self.trellis.consent_timeout).unwrap_or(false);
        lock(&questions.waiting).remove(&id);
        agreed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hooks::SidecarHooks;
    use trellis_client::resolve::HostApp;

    fn trellis(dir: &std::path::Path, timeout: Duration) -> Trellis {
        let emit: Emit = Arc::new(|_: &'static str, _: serde_json::Value| {});
        Trellis::new(dir.to_owned(), Arc::new(SidecarHooks), emit, timeout)
    }

    fn options() -> StoreOptions {
        StoreOptions::new(HostApp { id: "trellis-demo-host".into(), api_version: Version::new(1, 0, 0) })
    }

    fn disclosure() -> Disclosure {
        Disclosure { plugin: "acme.clock".parse().unwrap(), version: Version::new(1, 0, 0), permissions: vec![] }
    }

    #[test]
    fn consent_waits_for_the_webviews_answer_and_no_answer_in_time_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let t = trellis(dir.path(), Duration::from_millis(300));
        let (sent, questions) = mpsc::channel();
        let sink: Sink = Arc::new(move |m| {
            let _ = sent.send(m);
        });
        std::thread::scope(|scope| {
            let consent = WebviewConsent { trellis: &t, sink: Some(Arc::clone(&sink)) };
            let asked = scope.spawn(move || consent.agree(&disclosure()));
            let Ok(Message::Consent { id, disclosure: asked_about }) = questions.recv() else { panic!("no question") };
            assert_eq!(asked_about.plugin.as_str(), "acme.clock");
            t.answer(id, true).unwrap();
            assert!(asked.join().unwrap(), "the answer is the webview's");
            assert!(matches!(t.answer(id, true), Err(Error::NoSuchQuestion(i)) if i == id), "answered once only");

            let consent = WebviewConsent { trellis: &t, sink: Some(sink) };
            let started = Instant::now();
            let asked = scope.spawn(move || consent.agree(&disclosure()));
            let Ok(Message::Consent { id, .. }) = questions.recv() else { panic!("no question") };
            assert!(!asked.join().unwrap(), "no answer refuses");
            assert!(started.elapsed() >= Duration::from_millis(300));
            assert!(matches!(t.answer(id, true), Err(Error::NoSuchQuestion(_))), "a late answer changes nothing");
        });
    }

    #[test]
    fn a_store_that_cannot_open_says_why_on_every_command() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let t = trellis(&file, DEFAULT_TIMEOUT);
        t.open(options(), true, &[]);
        let status = t.status();
        assert!(!status.open);
        let error = t.list().unwrap_err();
        assert_eq!(error.kind(), "not_open");
        assert!(error.full_message().contains("not-a-dir"), "{}", error.full_message());
        assert!(matches!(t.policies(), Err(Error::NotOpen(_))));
    }

    #[test]
    fn a_fresh_store_lists_nothing_and_keeps_policies_and_refuses_pins_it_cannot_check() {
        let dir = tempfile::tempdir().unwrap();
        let t = trellis(dir.path(), DEFAULT_TIMEOUT);
        t.open(options(), true, &[]);
        let status = t.status();
        assert!(status.open && status.opened_in_ms.is_some(), "{status:?}");
        assert!(t.list().unwrap().is_empty());
        let policies = t.set_policy(None, Some(UpdateMode::Auto), None, false).unwrap();
        assert_eq!(policies.global.mode, UpdateMode::Auto);
        let clock: PluginId = "acme.clock".parse().unwrap();
        let error = t.pin(&clock, None).unwrap_err();
        assert!(error.to_string().contains("acme.clock is not installed"), "{error}");
        assert_eq!(t.unpin(&clock).unwrap(), None);
        // Kept in the state file: a second store on the same dir sees it.
        drop(t);
        let again = trellis(dir.path(), DEFAULT_TIMEOUT);
        again.open(options(), false, &[]);
        assert_eq!(again.policies().unwrap().global.mode, UpdateMode::Auto);
    }

    #[test]
    fn a_seed_registry_that_cannot_be_added_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let emit: Emit = Arc::new(move |name: &'static str, v: serde_json::Value| lock(&sink).push((name, v)));
        let t = Trellis::new(dir.path().to_owned(), Arc::new(SidecarHooks), emit, DEFAULT_TIMEOUT);
        t.open(options(), false, &[("example".into(), "http://127.0.0.1:9/".into(), b"{}".to_vec())]);
        assert!(t.status().open);
        let seen = lock(&seen);
        let warning = seen.iter().find(|(n, v)| *n == "trellis://event" && v["event"] == "warning").unwrap();
        assert!(warning.1["message"].as_str().unwrap().contains("registry `example`"), "{warning:?}");
        assert!(seen.iter().any(|(n, v)| *n == "trellis://ready" && v["open"] == true));
    }

    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}
