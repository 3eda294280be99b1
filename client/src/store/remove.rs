//! Remove and rollback.
//!
//! Remove: dependents check (refuse with the list of dependents, or cascade, dependents
//! first) → `before_remove` → `stop` → remove files and the plugin's configuration →
//! `unregister` → `after_remove`. Orphans ([`Store::orphans`]): plugins installed only
//! as dependencies that no installed plugin needs any more; [`Store::autoremove`]
//! removes those a removal left behind. Rollback: reactivate the kept previous release
//! (`stop` → switch → verify → `start`, undone if the old release does not start) and
//! hold it with a pin, so the next update does not undo it; a rollback to a newer
//! release than the active one (a second rollback) is refused.
//!
//! Owns these two processes; the file moves are [`crate::activate`]'s transactions.

use std::collections::BTreeSet;

use semver::Version;
use trellis_schema::PluginId;

use super::verify::check_release_dir;
use super::{Session, Store, StoreError};
use crate::activate;
use crate::events::{Event, OperationKind};
use crate::hooks::{Hook, HookContext};
use crate::state::InstallReason;

impl Store {
    /// Removes `plugin`. With dependents installed it is refused (naming them) unless
    /// `cascade`, which removes them first. Returns what was removed, in order.
    pub fn remove(
        &mut self,
        plugin: &PluginId,
        cascade: bool,
        session: &Session<'_>,
    ) -> Result<Vec<PluginId>, StoreError> {
        self.remove_with_reason(plugin, cascade, None, session)
    }

    /// [`Store::remove`], with the reason the user gave for uninstalling (kept only in
    /// the telemetry event of the removal, when telemetry is on).
    pub fn remove_with_reason(
        &mut self,
        plugin: &PluginId,
        cascade: bool,
        reason: Option<&str>,
        session: &Session<'_>,
    ) -> Result<Vec<PluginId>, StoreError> {
        let versions = self.state().installed_versions();
        let result = self.remove_unreported(plugin, cascade, session);
        self.report_remove(plugin, &versions, reason, &result, session);
        result
    }

    fn remove_unreported(
        &mut self,
        plugin: &PluginId,
        cascade: bool,
        session: &Session<'_>,
    ) -> Result<Vec<PluginId>, StoreError> {
        if self.state().plugin(plugin).is_none() {
            return Err(StoreError::NotInstalled { plugin: plugin.clone() });
        }
        let mut closure: BTreeSet<PluginId> = BTreeSet::new();
        let mut todo = vec![plugin.clone()];
        while let Some(next) = todo.pop() {
            for dependent in self.state().dependents(&next) {
                if closure.insert(dependent.clone()) {
                    todo.push(dependent.clone());
                }
            }
        }
        closure.remove(plugin);
        if let Some(admin) = &self.options().admin_policy {
            admin.check_remove(plugin)?;
            for dependent in closure.iter().filter(|_| cascade) {
                admin.check_remove(dependent)?;
            }
        }
        if !closure.is_empty() && !cascade {
            return Err(StoreError::HasDependents {
                plugin: plugin.clone(),
                dependents: closure.into_iter().collect(),
            });
        }
        // Dependents before what they depend on.
        let mut order = Vec::new();
        let mut left: BTreeSet<PluginId> = closure;
        left.insert(plugin.clone());
        while !left.is_empty() {
            let ready: Vec<PluginId> = left
                .iter()
                .filter(|id| self.state().dependents(id).iter().all(|d| !left.contains(*d) || *d == *id))
                .cloned()
                .collect();
            let batch = if ready.is_empty() { left.iter().cloned().collect() } else { ready };
            for id in batch {
                left.remove(&id);
                order.push(id);
            }
        }
        let mut removed = Vec::new();
        for id in order {
            self.remove_one(&id, session)?;
            removed.push(id);
        }
        Ok(removed)
    }

    /// Plugins installed only as dependencies that no installed plugin needs any more
    /// (directly or through other orphans), in an order that removes dependents first.
    pub fn orphans(&self) -> Vec<PluginId> {
        let state = self.state();
        let mut left: BTreeSet<&PluginId> = state.plugins().keys().collect();
        let mut orphans = Vec::new();
        loop {
            let next = left.iter().copied().find(|id| {
                state.plugin(id).is_some_and(|p| p.reason == InstallReason::Dependency)
                    && state.dependents(id).iter().all(|d| !left.contains(d))
            });
            let Some(next) = next else { break };
            left.remove(next);
            orphans.push(next.clone());
        }
        orphans
    }

    /// Removes the orphans ([`Store::orphans`]) that are not in `keep` (the orphans
    /// there were before an operation, which the user did not ask about). Returns what
    /// was removed, in order.
    pub fn autoremove(&mut self, keep: &[PluginId], session: &Session<'_>) -> Result<Vec<PluginId>, StoreError> {
        let mut removed = Vec::new();
        for id in self.orphans() {
            if keep.contains(&id) {
                continue;
            }
            self.remove_one(&id, session)?;
            removed.push(id);
        }
        Ok(removed)
    }

    /// Removes one plugin whatever depends on it.
    pub(crate) fn remove_one(&mut self, plugin: &PluginId, session: &Session<'_>) -> Result<(), StoreError> {
        let Some(installed) = self.state().plugin(plugin) else {
            return Err(StoreError::NotInstalled { plugin: plugin.clone() });
        };
        let version = installed.active.version.clone();
        let path = self.data_dir().release_dir(plugin, &version);
        let ctx = HookContext { plugin, version: &version, path: &path };
        let refused = |hook, source| StoreError::Hook {
            hook,
            plugin: plugin.clone(),
            version: version.clone(),
            source: Box::new(source),
            undone: "nothing was removed".into(),
        };
        session.hook(Hook::BeforeRemove, ctx, None).map_err(|e| refused(Hook::BeforeRemove, e))?;
        session.hook(Hook::Stop, ctx, None).map_err(|e| refused(Hook::Stop, e))?;
        let crash = &mut self.crash;
        let mut tx = activate::begin_remove(&mut self.state, plugin)?;
        crash.step();
        tx.stopped()?;
        crash.step();
        tx.switch()?;
        crash.step();
        tx.finish()?;
        crash.step();
        for hook in [Hook::Unregister, Hook::AfterRemove] {
            if let Err(error) = session.hook(hook, ctx, None) {
                session
                    .reporter
                    .report(Event::Warning { plugin: Some(plugin.clone()), message: format!("{hook}: {error}") });
            }
        }
        session.reporter.report(Event::Done {
            operation: OperationKind::Remove,
            plugin: plugin.clone(),
            version: None,
        });
        Ok(())
    }

    /// Reactivates the kept previous release of `plugin` and pins it there (until
    /// [`crate::state::State::pins`] loses it: `trellis unpin`), so that updates leave it;
    /// returns it. Refused when the kept release is newer than the active one: that
    /// is undoing a rollback, which is an update (unpin, then update).
    pub fn rollback(&mut self, plugin: &PluginId, session: &Session<'_>) -> Result<Version, StoreError> {
        let from = self.state().plugin(plugin).map(|p| p.active.version.clone());
        let result = self.rollback_unreported(plugin, session);
        self.report_rollback(plugin, from.as_ref(), &result, session);
        result
    }

    fn rollback_unreported(&mut self, plugin: &PluginId, session: &Session<'_>) -> Result<Version, StoreError> {
        let Some(installed) = self.state().plugin(plugin) else {
            return Err(StoreError::NotInstalled { plugin: plugin.clone() });
        };
        let from = installed.active.version.clone();
        if let Some(previous) = &installed.previous
            && previous.version > from
        {
            return Err(StoreError::RollbackForward {
                plugin: plugin.clone(),
                active: from,
                previous: Box::new(previous.version.clone()),
            });
        }
        let from_path = self.data_dir().release_dir(plugin, &from);
        // The kept release must still be vouched for by the newest record this client
        // verified for its publisher: a rollback must not bring back a release signed
        // only by a key the publisher revoked since.
        if let Some(previous) = &installed.previous
            && let Some(pinned) =
                super::publishers::pinned_record(self.data_dir(), &installed.registry, &plugin.vendor_id())
            && let Some(problem) =
                super::verify::check_under(&self.data_dir().release_dir(plugin, &previous.version), &pinned)
        {
            return Err(StoreError::RollbackRevoked {
                plugin: plugin.clone(),
                version: previous.version.clone(),
                active: Box::new(from),
                problem: problem.problem,
            });
        }
        let crash = &mut self.crash;
        let mut tx = activate::begin_rollback(&mut self.state, plugin)?;
        crash.step();
        let to = tx.operation().to.clone().unwrap_or_else(|| from.clone());
        let Some(to_path) = tx.target_dir() else { return Ok(from) };
        let from_ctx = HookContext { plugin, version: &from, path: &from_path };
        let to_ctx = HookContext { plugin, version: &to, path: &to_path };
        if let Err(source) = session.hook(Hook::Stop, from_ctx, None) {
            tx.abort()?;
            return Err(StoreError::Hook {
                hook: Hook::Stop,
                plugin: plugin.clone(),
                version: from.clone(),
                source: Box::new(source),
                undone: format!("{plugin} {from} was left running"),
            });
        }
        tx.stopped()?;
        crash.step();
        tx.switch()?;
        crash.step();
        let failure = match check_release_dir(&to_path) {
            Ok(problems) if problems.is_empty() => {
                session.hook(Hook::Start, to_ctx, None).err().map(|source| StoreError::Hook {
                    hook: Hook::Start,
                    plugin: plugin.clone(),
                    version: to.clone(),
                    source: Box::new(source),
                    undone: format!("{from} is active again"),
                })
            }
            Ok(problems) => Some(StoreError::Corrupt {
                plugin: plugin.clone(),
                version: to.clone(),
                problem: problems.first().map(ToString::to_string).unwrap_or_default(),
                undone: format!("nothing was rolled back: {from} stays active"),
            }),
            Err(error) => Some(error),
        };
        if let Some(error) = failure {
            tx.revert()?;
            let _ = session.hook(Hook::Start, from_ctx, None);
            tx.abort()?;
            return Err(error);
        }
        tx.finish()?;
        crash.step();
        self.state.update(|s| s.pins.insert(plugin.clone(), to.clone()))?;
        session.reporter.report(Event::Done {
            operation: OperationKind::Rollback,
            plugin: plugin.clone(),
            version: Some(to.clone()),
        });
        Ok(to)
    }
}
