//! Update: policy check (whether an update adds permissions is read from its
//! developer-signed manifest, fetched and checked against the index doc before anything
//! is decided) → permission diff (re-consent when permissions grow) →
//! download and verify (a delta from the running release when the registry has one)
//! → graceful `stop` → swap → verify → `start`; any failure rolls
//! back automatically to the running release.
//!
//! Owns the update process and the update check (which updates exist and what the
//! policy decides for each, and which new dependencies come with the applied ones: a
//! new dependency of an update the policy skips is not installed). Installed releases
//! are re-checked under their publishers' current records first
//! ([`super::publishers`]); those the blocklist names are disabled and reported by
//! [`super::blocked`] on the way.
//! Consent, space and download steps are shared with [`super::install`]; the swap is
//! [`crate::activate`]'s journalled transaction.

use std::collections::BTreeSet;

use semver::{Version, VersionReq};
use serde::Serialize;
use trellis_schema::PluginId;

use super::advisories::AdvisoryFinding;
use super::blocked::{DisabledRelease, HeldBack};
use super::delta::Transfer;
use super::fetch::{self, SignedRelease, VerifiedRelease};
use super::install::{ActivationStep, activation_steps, consent_query, extract};
use super::verify::check_release_dir;
use super::{Session, Store, StoreError};
use crate::activate;
use crate::events::{Event, OperationKind};
use crate::hooks::{Hook, HookContext};
use crate::package::Durability;
use crate::policy::{self, Action, AvailableUpdate, Decision, PolicyContext, Trigger};
use crate::resolve::{Requirement, ResolvedPlugin, Upgrade};
use crate::state::{InstallReason, InstalledRelease};

/// An available update and what the policy decides for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedUpdate {
    /// The plugin.
    pub plugin: PluginId,
    /// The active release.
    pub from: Version,
    /// The release resolution picked.
    pub to: Version,
    /// Permissions the new release adds that were never agreed to.
    pub new_permissions: Vec<String>,
    /// The policy's decision.
    pub decision: Decision,
}

/// What `update --check` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UpdateCheckReport {
    /// Updates available, with the policy's decision.
    pub updates: Vec<PlannedUpdate>,
    /// Installed releases the blocklist names: stopped and disabled, with their marks.
    pub blocked: Vec<DisabledRelease>,
    /// Installed plugins left as they are because they depend on a blocked plugin.
    pub held_back: Vec<HeldBack>,
    /// Installed releases signed only by keys their publisher revoked, with no
    /// re-signed envelope: stopped and disabled, with their marks.
    pub revoked: Vec<DisabledRelease>,
    /// Installed releases a security advisory names, most severe first.
    pub advisories: Vec<AdvisoryFinding>,
}

/// What an update did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UpdateReport {
    /// Plugins moved to a new release (from, to).
    pub updated: Vec<(PluginId, Version, Version)>,
    /// New dependencies installed on the way.
    pub installed: Vec<(PluginId, Version)>,
    /// Updates left out, with the reason.
    pub skipped: Vec<(PluginId, Version, String)>,
    /// Updates that failed and were rolled back to the running release.
    pub rolled_back: Vec<(PluginId, Version, String)>,
    /// Installed releases the blocklist names: stopped and disabled, with their marks.
    pub blocked: Vec<DisabledRelease>,
    /// Installed plugins left as they are because they depend on a blocked plugin.
    pub held_back: Vec<HeldBack>,
    /// Installed releases signed only by keys their publisher revoked, with no
    /// re-signed envelope: stopped and disabled, with their marks.
    pub revoked: Vec<DisabledRelease>,
    /// Installed releases a security advisory names after the update, most severe
    /// first.
    pub advisories: Vec<AdvisoryFinding>,
    /// What was downloaded for each release brought in (delta or package, bytes).
    pub transfers: Vec<Transfer>,
}

/// The changes to make: the updates the policy applies, and the new plugins (new
/// dependencies) those updates need, directly or through each other. A new dependency
/// of an update the policy skips is not installed.
fn changes_to_apply(changes: Vec<SignedRelease>, planned: &[PlannedUpdate]) -> Vec<SignedRelease> {
    let decision = |id: &PluginId| planned.iter().find(|p| &p.plugin == id).map(|p| p.decision.action);
    let mut needed: BTreeSet<PluginId> = changes
        .iter()
        .filter(|c| decision(&c.resolved.id) == Some(Action::Apply))
        .map(|c| c.resolved.id.clone())
        .collect();
    let mut todo: Vec<PluginId> = needed.iter().cloned().collect();
    while let Some(id) = todo.pop() {
        let Some(change) = changes.iter().find(|c| c.resolved.id == id) else { continue };
        for dependency in &change.manifest.dependencies {
            let is_new = changes.iter().any(|c| c.resolved.id == dependency.id) && decision(&dependency.id).is_none();
            if is_new && needed.insert(dependency.id.clone()) {
                todo.push(dependency.id.clone());
            }
        }
    }
    changes.into_iter().filter(|c| needed.contains(&c.resolved.id)).collect()
}

/// What [`Store::plan`] found.
struct Plan {
    planned: Vec<PlannedUpdate>,
    changes: Vec<SignedRelease>,
    blocked: Vec<DisabledRelease>,
    held_back: Vec<HeldBack>,
    revoked: Vec<DisabledRelease>,
}

impl Store {
    /// Which updates are available for `plugins` (all installed ones when empty), and
    /// what the policy would do with each on a scheduled check. Stops installed
    /// releases the blocklist names. Records the time of the check.
    pub fn check_updates(
        &mut self,
        plugins: &[PluginId],
        session: &Session<'_>,
    ) -> Result<UpdateCheckReport, StoreError> {
        let remotes = self.fresh_remotes()?;
        let plan = self.plan(plugins, Trigger::Scheduled, session)?;
        let lists = remotes.advisories()?;
        let advisories = self.report_advisories(&lists, None, session);
        self.update_state(|s| s.last_update_check = Some(jiff::Timestamp::now()))?;
        Ok(UpdateCheckReport {
            updates: plan.planned,
            blocked: plan.blocked,
            held_back: plan.held_back,
            revoked: plan.revoked,
            advisories,
        })
    }

    /// Updates `plugins` (all installed ones when empty) as the user asked: pins are
    /// respected, new permissions need consent. Updating everything respects staged
    /// rollouts; naming a plugin takes its newest release even when this install is
    /// not in the rollout yet. A failing update is rolled back and reported; the others
    /// go on.
    pub fn update(&mut self, plugins: &[PluginId], session: &Session<'_>) -> Result<UpdateReport, StoreError> {
        let trigger = if plugins.is_empty() { Trigger::User } else { Trigger::Named };
        self.apply_updates(plugins, trigger, session)
    }

    /// The periodic check a host app runs (at start-up, then on a timer): when the
    /// check interval has passed since the last check, applies the updates the policies
    /// allow on a schedule (auto mode, inside the update window, inside the staged
    /// rollout, no new permissions) and reports the others as skipped with the reason
    /// (notify, manual, consent needed, outside the window). `Ok(None)` when no check is
    /// due; the time of the check is recorded either way it runs.
    pub fn scheduled_update(&mut self, session: &Session<'_>) -> Result<Option<UpdateReport>, StoreError> {
        let now = jiff::Timestamp::now();
        if !self.state().policies.check_due(self.state().last_update_check, now) {
            return Ok(None);
        }
        let report = self.apply_updates(&[], Trigger::Scheduled, session)?;
        self.update_state(|s| s.last_update_check = Some(now))?;
        Ok(Some(report))
    }

    fn apply_updates(
        &mut self,
        plugins: &[PluginId],
        trigger: Trigger,
        session: &Session<'_>,
    ) -> Result<UpdateReport, StoreError> {
        let result = self.apply_updates_unreported(plugins, trigger, session);
        self.report_update(plugins, &result, session);
        result
    }

    fn apply_updates_unreported(
        &mut self,
        plugins: &[PluginId],
        trigger: Trigger,
        session: &Session<'_>,
    ) -> Result<UpdateReport, StoreError> {
        self.relay_progress(session);
        let remotes = self.fresh_remotes()?;
        let Plan { planned, changes, blocked, held_back, revoked } = self.plan(plugins, trigger, session)?;
        let lists = remotes.advisories()?;
        let mut report = UpdateReport { blocked, held_back, revoked, ..UpdateReport::default() };
        for plan in planned.iter().filter(|p| p.decision.action != Action::Apply) {
            report.skipped.push((plan.plugin.clone(), plan.to.clone(), plan.decision.reason.to_string()));
        }
        let apply = changes_to_apply(changes, &planned);
        // New dependencies an update brings in are checked here (updates were in `plan`).
        self.check_admin_releases(&apply)?;
        session.reporter.report(Event::Resolved { to_fetch: apply.len() });
        if apply.is_empty() {
            report.advisories = self.report_advisories(&lists, None, session);
            return Ok(report);
        }
        self.check_space(&apply.iter().map(|r| r.resolved.clone()).collect::<Vec<_>>())?;
        self.collect_consent(&apply, session)?;
        let bases = self.delta_bases()?;
        let verified = fetch::download(&remotes, apply, self.relay(), &*session.reporter, &bases)?;
        report.transfers = verified.iter().map(|r| r.transfer.clone()).collect();
        self.crash.step();
        let installed = self.state().installed_versions();
        for step in activation_steps(verified, &installed) {
            match step {
                ActivationStep::Install(releases) => {
                    let releases = releases.into_iter().map(|release| (release, InstallReason::Dependency)).collect();
                    report.installed.extend(self.activate_installs(releases, session)?);
                }
                ActivationStep::Update(release, from) => {
                    let (id, to) = (release.resolved.id.clone(), release.resolved.version.clone());
                    match self.activate_update(*release, session) {
                        Ok(()) => report.updated.push((id, from, to)),
                        Err(error) => {
                            session
                                .reporter
                                .report(Event::Warning { plugin: Some(id.clone()), message: error.to_string() });
                            report.rolled_back.push((id, to, error.to_string()));
                        }
                    }
                }
            }
        }
        report.advisories = self.report_advisories(&lists, None, session);
        Ok(report)
    }

    /// Resolves with the selected plugins free to move; returns the planned updates
    /// (with policy decisions), every release that would change (its envelope verified
    /// and its index entry checked against the signed manifest, see
    /// [`fetch::verify_signed`]), blocked installs (disabled on the way), plugins held
    /// back by a blocked dependency and installed releases disabled because their
    /// signing keys were revoked.
    fn plan(&mut self, plugins: &[PluginId], trigger: Trigger, session: &Session<'_>) -> Result<Plan, StoreError> {
        for plugin in plugins {
            if self.state().plugin(plugin).is_none() {
                return Err(StoreError::NotInstalled { plugin: plugin.clone() });
            }
        }
        let remotes = self.remotes()?;
        let mut request = self.request();
        request.upgrade = if plugins.is_empty() {
            Upgrade::All
        } else {
            Upgrade::Only(plugins.iter().cloned().collect::<BTreeSet<_>>())
        };
        for (id, plugin) in self.state().plugins() {
            if plugin.reason == InstallReason::Requested {
                request.requirements.push(Requirement { id: id.clone(), version: VersionReq::STAR });
            }
        }
        let revoked = self.recheck_installed(&remotes, session)?;
        let (resolution, blocked, held_back) = self.resolve(&remotes, request, session)?;
        self.record_bindings(&resolution)?;
        let installed = self.state().installed_versions();
        let changes: Vec<ResolvedPlugin> =
            resolution.plugins.iter().filter(|p| installed.get(&p.id) != Some(&p.version)).cloned().collect();
        // Consent and auto-apply are decided from the developer-signed manifests.
        let changes = fetch::verify_signed(&remotes, &changes)?;
        let now = jiff::ZonedDateTime::now();
        let mut planned = Vec::new();
        for signed in &changes {
            let change = &signed.resolved;
            let Some(from) = installed.get(&change.id) else { continue };
            let old = self.installed_permissions(&change.id);
            let check = crate::consent::check(consent_query(signed, old.as_ref()), &self.state().consents);
            let new_permissions: Vec<String> = check.disclosure().unconsented().map(|p| p.key.clone()).collect();
            let state = self.state();
            let available = AvailableUpdate {
                plugin: change.id.clone(),
                from: from.clone(),
                to: change.version.clone(),
                rollout: change.release.rollout,
                needs_consent: new_permissions.clone(),
            };
            let decision = policy::decide(
                PolicyContext {
                    now: &now,
                    install_id: &state.install_id,
                    policies: &state.policies,
                    pins: &state.pins,
                    trigger,
                },
                &available,
            );
            let decision = self.admin_decision(decision, signed, &available, trigger, &now);
            planned.push(PlannedUpdate {
                plugin: change.id.clone(),
                from: from.clone(),
                to: change.version.clone(),
                new_permissions,
                decision,
            });
        }
        // Pinned plugins do not move in resolution; newer releases are still reported.
        for (id, pinned) in &self.state().pins.clone() {
            let Some(installed) = self.state().plugin(id).cloned() else { continue };
            if planned.iter().any(|p| &p.plugin == id) || (!plugins.is_empty() && !plugins.contains(id)) {
                continue;
            }
            let Some(doc) = remotes.doc(&installed.registry, id)? else { continue };
            let newest =
                doc.releases.iter().filter(|r| !r.yanked && &r.version > pinned).map(|r| r.version.clone()).max();
            if let Some(to) = newest {
                planned.push(PlannedUpdate {
                    plugin: id.clone(),
                    from: installed.active.version.clone(),
                    to: to.clone(),
                    new_permissions: Vec::new(),
                    decision: Decision {
                        plugin: id.clone(),
                        to,
                        action: Action::Skip,
                        reason: policy::Reason::Pinned { version: pinned.clone() },
                    },
                });
            }
        }
        Ok(Plan { planned, changes, blocked, held_back, revoked })
    }

    /// Swaps an installed plugin to a verified release: stop, switch, verify, start;
    /// on any failure the running release comes back (and is started again).
    pub(crate) fn activate_update(
        &mut self,
        release: VerifiedRelease,
        session: &Session<'_>,
    ) -> Result<(), StoreError> {
        let id = release.resolved.id.clone();
        let to = release.resolved.version.clone();
        let from = match self.state().plugin(&id) {
            Some(installed) => installed.active.version.clone(),
            None => return Err(StoreError::NotInstalled { plugin: id }),
        };
        let from_path = self.data_dir().release_dir(&id, &from);
        let record = InstalledRelease {
            version: to.clone(),
            dependencies: super::install::dependency_ids(&release),
            package_sha256: Some(release.manifest.package.sha256),
        };
        let crash = &mut self.crash;
        let mut tx = activate::begin_update(&mut self.state, &id, record)?;
        crash.step();
        let Some(to_path) = tx.target_dir() else { return Ok(()) };
        if !tx.target_is_ready() {
            extract(release, &to_path, Durability::Flushed, &*session.reporter)?;
            crash.step();
            tx.staged()?;
            crash.step();
        }
        let from_ctx = HookContext { plugin: &id, version: &from, path: &from_path };
        let to_ctx = HookContext { plugin: &id, version: &to, path: &to_path };
        let hook_error = |hook, source, undone: &str| StoreError::Hook {
            hook,
            plugin: id.clone(),
            version: to.clone(),
            source: Box::new(source),
            undone: undone.to_owned(),
        };
        if let Err(source) = session.hook(Hook::BeforeUpdate, to_ctx, Some(from_ctx)) {
            tx.abort()?;
            return Err(hook_error(Hook::BeforeUpdate, source, &format!("{id} {from} was left as it was")));
        }
        if let Err(source) = session.hook(Hook::Stop, from_ctx, None) {
            tx.abort()?;
            return Err(hook_error(Hook::Stop, source, &format!("{id} {from} was left running")));
        }
        tx.stopped()?;
        crash.step();
        session.reporter.report(Event::Activating { plugin: id.clone(), version: to.clone() });
        tx.switch()?;
        crash.step();
        let failure = match check_release_dir(&to_path) {
            Ok(problems) if problems.is_empty() => match session.hook(Hook::Start, to_ctx, None) {
                Ok(()) => None,
                Err(source) => Some(hook_error(Hook::Start, source, &format!("rolled back to {from}"))),
            },
            Ok(problems) => Some(StoreError::Corrupt {
                plugin: id.clone(),
                version: to.clone(),
                problem: problems.first().map(ToString::to_string).unwrap_or_default(),
                undone: format!("rolled back to {from}"),
            }),
            Err(error) => Some(error),
        };
        if let Some(error) = failure {
            tx.revert()?;
            crash.step();
            if let Err(e) = session.hook(Hook::Start, from_ctx, None) {
                session.reporter.report(Event::Warning {
                    plugin: Some(id.clone()),
                    message: format!("{id} {from} is active again but did not start: {e}"),
                });
            }
            tx.abort()?;
            return Err(error);
        }
        tx.finish()?;
        crash.step();
        if let Err(error) = self.settle_license(to_ctx, session) {
            session.reporter.report(Event::Warning {
                plugin: Some(id.clone()),
                message: format!("the trial or license state could not be recorded: {error}"),
            });
        }
        if let Err(error) = session.hook(Hook::AfterUpdate, to_ctx, Some(from_ctx)) {
            session
                .reporter
                .report(Event::Warning { plugin: Some(id.clone()), message: format!("after_update: {error}") });
        }
        session.reporter.report(Event::Done { operation: OperationKind::Update, plugin: id, version: Some(to) });
        Ok(())
    }
}
