//! What the embedding host app is told, and may refuse, during the lifecycle.
//!
//! A host app implements [`HostHooks`] to stop, start, register and unregister its
//! plugins, and to veto or follow an install, update or removal. Every hook gets a
//! [`HookContext`] (plugin id, release, install path) and returns a [`HookError`] the
//! host fills in; the lifecycle turns a failed `before_*` hook into a clean refusal and
//! a failed `start` after an update into an automatic rollback.
//!
//! This module owns the trait and two implementations: [`NoHooks`] (a host without
//! plugin processes, such as the CLI) and [`RecordingHooks`] (tests: records every call
//! and fails on request), plus [`call_hook`], which calls one hook and reports it on the
//! event stream. It does not decide *when* hooks run; that is the lifecycle's order,
//! documented in [`crate::activate`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use semver::Version;
use serde::Serialize;
use trellis_schema::PluginId;

use crate::events::{Event, Reporter};
use crate::license::LicenseState;

/// The release a hook is about.
#[derive(Clone, Copy, Debug)]
pub struct HookContext<'a> {
    /// The plugin.
    pub plugin: &'a PluginId,
    /// The release.
    pub version: &'a Version,
    /// Where the release's files are (`plugins/<id>/<version>/` under the data dir).
    pub path: &'a Path,
}

/// A failure reported by the host app. It carries the host's own error so the
/// lifecycle can show it and keep it as the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl HookError {
    /// A failure described in words.
    pub fn msg(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }

    /// A failure caused by the host's own error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { message: error.to_string(), source: Some(Box::new(error)) }
    }

    /// The host's description of the failure.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The hooks a host app can implement. Every method has a default that does nothing
/// and succeeds, so a host implements only what it needs.
///
/// Order (see [`crate::activate`] for the state kept between steps):
/// - install: `before_install` (staged files) → activation → `register` → `start` →
///   `after_install`;
/// - update: `before_update` → `stop` (old) → swap → `start` (new; failure rolls back
///   and starts the old one again) → `after_update`;
/// - remove: `before_remove` → `stop` → files removed → `unregister` → `after_remove`;
/// - rollback: `stop` (current) → swap → `start` (previous).
pub trait HostHooks {
    /// Stop the running plugin (before its files change or go away).
    fn stop(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// Start the plugin from `ctx.path`.
    fn start(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// Make a newly installed plugin known to the host (menus, commands, …).
    fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// Forget a removed plugin.
    fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// A release is staged and about to be activated; an error refuses the install.
    fn before_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// The install completed.
    fn after_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// `to` is staged and about to replace `from`; an error refuses the update.
    fn before_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        let _ = (from, to);
        Ok(())
    }

    /// The update from `from` to `to` completed and `to` runs.
    fn after_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        let _ = (from, to);
        Ok(())
    }

    /// The plugin is about to be removed; an error refuses the removal.
    fn before_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// The plugin was removed; `ctx.path` no longer exists.
    fn after_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }

    /// What the plugin's license allows now ([`LicenseState::allows_use`],
    /// [`LicenseState::allows_feature`]), so the host can gate paid features. Called
    /// for a plugin that is not free, or that has a token: at install (after activation,
    /// before `register` and `start`; the trial starts then), after an update (a plugin
    /// that became paid starts its trial then) and when a license is added or removed. The host may also ask any time with
    /// [`crate::store::Store::license_state`]. It cannot refuse anything.
    fn license(&self, ctx: HookContext<'_>, state: &LicenseState) {
        let _ = (ctx, state);
    }

    /// An install, update, rollback or removal outcome, only when the host turned
    /// telemetry on ([`crate::telemetry`]); the default drops it. Nothing leaves the
    /// machine unless this sends it (e.g. [`crate::telemetry::JsonLinesSink`] keeps it
    /// in a local file).
    fn telemetry(&self, event: &crate::telemetry::TelemetryEvent) {
        let _ = event;
    }
}

impl<H: HostHooks + ?Sized> HostHooks for &H {
    fn stop(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).stop(ctx)
    }
    fn start(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).start(ctx)
    }
    fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).register(ctx)
    }
    fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).unregister(ctx)
    }
    fn before_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).before_install(ctx)
    }
    fn after_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).after_install(ctx)
    }
    fn before_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        (**self).before_update(from, to)
    }
    fn after_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        (**self).after_update(from, to)
    }
    fn before_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).before_remove(ctx)
    }
    fn after_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        (**self).after_remove(ctx)
    }
    fn license(&self, ctx: HookContext<'_>, state: &LicenseState) {
        (**self).license(ctx, state);
    }

    fn telemetry(&self, event: &crate::telemetry::TelemetryEvent) {
        (**self).telemetry(event);
    }
}

/// Hooks of a host that runs no plugin code itself (the `trellis` CLI): every hook
/// succeeds and does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl HostHooks for NoHooks {}

/// The name of a hook, for events, logs and recorded calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// [`HostHooks::stop`].
    Stop,
    /// [`HostHooks::start`].
    Start,
    /// [`HostHooks::register`].
    Register,
    /// [`HostHooks::unregister`].
    Unregister,
    /// [`HostHooks::before_install`].
    BeforeInstall,
    /// [`HostHooks::after_install`].
    AfterInstall,
    /// [`HostHooks::before_update`].
    BeforeUpdate,
    /// [`HostHooks::after_update`].
    AfterUpdate,
    /// [`HostHooks::before_remove`].
    BeforeRemove,
    /// [`HostHooks::after_remove`].
    AfterRemove,
}

impl Hook {
    /// The hook's method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Register => "register",
            Self::Unregister => "unregister",
            Self::BeforeInstall => "before_install",
            Self::AfterInstall => "after_install",
            Self::BeforeUpdate => "before_update",
            Self::AfterUpdate => "after_update",
            Self::BeforeRemove => "before_remove",
            Self::AfterRemove => "after_remove",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Calls `hook` on `hooks` for `ctx` and reports [`Event::HookCalled`] with the
/// outcome, so the lifecycle has one line per hook. For `before_update` and
/// `after_update`, `from` is the release being left (`ctx` when `None`).
pub fn call_hook(
    hooks: &(impl HostHooks + ?Sized),
    reporter: &(impl Reporter + ?Sized),
    hook: Hook,
    ctx: HookContext<'_>,
    from: Option<HookContext<'_>>,
) -> Result<(), HookError> {
    let result = match hook {
        Hook::Stop => hooks.stop(ctx),
        Hook::Start => hooks.start(ctx),
        Hook::Register => hooks.register(ctx),
        Hook::Unregister => hooks.unregister(ctx),
        Hook::BeforeInstall => hooks.before_install(ctx),
        Hook::AfterInstall => hooks.after_install(ctx),
        Hook::BeforeUpdate => hooks.before_update(from.unwrap_or(ctx), ctx),
        Hook::AfterUpdate => hooks.after_update(from.unwrap_or(ctx), ctx),
        Hook::BeforeRemove => hooks.before_remove(ctx),
        Hook::AfterRemove => hooks.after_remove(ctx),
    };
    reporter.report(Event::HookCalled {
        hook,
        plugin: ctx.plugin.clone(),
        version: ctx.version.clone(),
        ok: result.is_ok(),
    });
    result
}

/// One call seen by [`RecordingHooks`]. For the update hooks, `version` and `path` are
/// those of the release being moved to and `from` is the one being left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    /// Which hook.
    pub hook: Hook,
    /// The plugin.
    pub plugin: PluginId,
    /// The release.
    pub version: Version,
    /// The install path passed in.
    pub path: PathBuf,
    /// For `before_update`/`after_update`: the release being left.
    pub from: Option<Version>,
}

/// Hooks for tests: records every call in order and fails the hooks it was told to.
#[derive(Debug, Default)]
pub struct RecordingHooks {
    calls: Mutex<Vec<HookCall>>,
    failures: Mutex<Vec<(Hook, PluginId, Option<Version>)>>,
    licenses: Mutex<Vec<(PluginId, LicenseState)>>,
}

impl RecordingHooks {
    /// Hooks that record and always succeed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `hook` fail for `plugin` (for any release), until cleared.
    #[must_use]
    pub fn failing(self, hook: Hook, plugin: &PluginId) -> Self {
        self.fail(hook, plugin, None);
        self
    }

    /// Makes `hook` fail for `plugin` at `version` only, or at every release when `None`.
    pub fn fail(&self, hook: Hook, plugin: &PluginId, version: Option<Version>) {
        lock(&self.failures).push((hook, plugin.clone(), version));
    }

    /// Stops injecting failures.
    pub fn clear_failures(&self) {
        lock(&self.failures).clear();
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<HookCall> {
        lock(&self.calls).clone()
    }

    /// The license states the host was told, in order.
    pub fn licenses(&self) -> Vec<(PluginId, LicenseState)> {
        lock(&self.licenses).clone()
    }

    /// The calls so far as `hook plugin version` strings, for compact assertions.
    pub fn trace(&self) -> Vec<String> {
        lock(&self.calls).iter().map(|c| format!("{} {} {}", c.hook, c.plugin, c.version)).collect()
    }

    fn record(&self, hook: Hook, ctx: HookContext<'_>, from: Option<&Version>) -> Result<(), HookError> {
        lock(&self.calls).push(HookCall {
            hook,
            plugin: ctx.plugin.clone(),
            version: ctx.version.clone(),
            path: ctx.path.to_owned(),
            from: from.cloned(),
        });
        let fails = lock(&self.failures).iter().any(|(h, plugin, version)| {
            *h == hook && plugin == ctx.plugin && version.as_ref().is_none_or(|v| v == ctx.version)
        });
        if fails {
            return Err(HookError::msg(format!(
                "{hook} of {} {} failed (injected by the test)",
                ctx.plugin, ctx.version
            )));
        }
        Ok(())
    }
}

/// Locks a test helper's mutex, recovering from a poisoned lock (a panicking test
/// thread must not hide the calls recorded so far).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HostHooks for RecordingHooks {
    fn stop(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::Stop, ctx, None)
    }
    fn start(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::Start, ctx, None)
    }
    fn register(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::Register, ctx, None)
    }
    fn unregister(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::Unregister, ctx, None)
    }
    fn before_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::BeforeInstall, ctx, None)
    }
    fn after_install(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::AfterInstall, ctx, None)
    }
    fn before_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::BeforeUpdate, to, Some(from.version))
    }
    fn after_update(&self, from: HookContext<'_>, to: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::AfterUpdate, to, Some(from.version))
    }
    fn before_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::BeforeRemove, ctx, None)
    }
    fn after_remove(&self, ctx: HookContext<'_>) -> Result<(), HookError> {
        self.record(Hook::AfterRemove, ctx, None)
    }
    fn license(&self, ctx: HookContext<'_>, state: &LicenseState) {
        lock(&self.licenses).push((ctx.plugin.clone(), state.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(plugin: &'a PluginId, version: &'a Version, path: &'a Path) -> HookContext<'a> {
        HookContext { plugin, version, path }
    }

    #[test]
    fn no_hooks_succeed_without_doing_anything() {
        let plugin: PluginId = "acme.clock".parse().unwrap();
        let version = Version::new(1, 0, 0);
        let c = ctx(&plugin, &version, Path::new("/p"));
        assert!(NoHooks.stop(c).is_ok());
        assert!(NoHooks.before_update(c, c).is_ok());
        assert!(NoHooks.after_remove(c).is_ok());
    }

    #[test]
    fn recording_hooks_record_calls_in_order_with_paths() {
        let plugin: PluginId = "acme.clock".parse().unwrap();
        let (v1, v2) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
        let hooks = RecordingHooks::new();
        hooks.stop(ctx(&plugin, &v1, Path::new("/p/1.0.0"))).unwrap();
        hooks
            .before_update(ctx(&plugin, &v1, Path::new("/p/1.0.0")), ctx(&plugin, &v2, Path::new("/p/2.0.0")))
            .unwrap();
        assert_eq!(hooks.trace(), ["stop acme.clock 1.0.0", "before_update acme.clock 2.0.0"]);
        let calls = hooks.calls();
        assert_eq!(calls[1].from, Some(v1));
        assert_eq!(calls[1].path, Path::new("/p/2.0.0"));
    }

    #[test]
    fn recording_hooks_fail_only_the_hook_plugin_and_version_asked_for() {
        let clock: PluginId = "acme.clock".parse().unwrap();
        let other: PluginId = "acme.other".parse().unwrap();
        let (v1, v2) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
        let hooks = RecordingHooks::new();
        hooks.fail(Hook::Start, &clock, Some(v2.clone()));
        let path = Path::new("/p");
        let err = hooks.start(ctx(&clock, &v2, path)).unwrap_err();
        assert!(err.message().contains("start of acme.clock 2.0.0 failed"), "{err}");
        assert!(hooks.start(ctx(&clock, &v1, path)).is_ok());
        assert!(hooks.start(ctx(&other, &v2, path)).is_ok());
        assert!(hooks.stop(ctx(&clock, &v2, path)).is_ok());
        hooks.clear_failures();
        assert!(hooks.start(ctx(&clock, &v2, path)).is_ok());
        assert_eq!(hooks.calls().len(), 5, "failed calls are recorded too");
    }

    #[test]
    fn call_hook_dispatches_and_reports_the_outcome() {
        let plugin: PluginId = "acme.clock".parse().unwrap();
        let (v1, v2) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
        let hooks = RecordingHooks::new().failing(Hook::Register, &plugin);
        let (reporter, events) = crate::events::ChannelReporter::new();
        let path = Path::new("/p");
        call_hook(&hooks, &reporter, Hook::BeforeUpdate, ctx(&plugin, &v2, path), Some(ctx(&plugin, &v1, path)))
            .unwrap();
        assert!(call_hook(&hooks, &reporter, Hook::Register, ctx(&plugin, &v2, path), None).is_err());
        assert_eq!(hooks.calls()[0].from, Some(v1));
        drop(reporter);
        let oks: Vec<(Hook, bool)> = events
            .iter()
            .map(|e| match e {
                Event::HookCalled { hook, ok, .. } => (hook, ok),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(oks, [(Hook::BeforeUpdate, true), (Hook::Register, false)]);
    }

    #[test]
    fn hook_error_keeps_the_host_error_as_source() {
        let io = std::io::Error::other("plugin process did not exit");
        let err = HookError::new(io);
        assert_eq!(err.to_string(), "plugin process did not exit");
        assert!(std::error::Error::source(&err).is_some());
    }
}
