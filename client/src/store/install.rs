//! Install: resolve → free-space check → the small signed envelopes fetched and
//! verified, each index entry checked against its signed manifest → permission
//! disclosure and consent from the signed manifests → download and verify the
//! packages → hardened extraction into staging → `before_install` → atomic activation
//! → `register` → `start`.
//!
//! Owns the install process and the shared steps of every process that brings new
//! releases in (consent collection, space check, activation of a verified release).
//! Consent is disclosed from the developer-signed manifest of each release, and the
//! permissions of the release being replaced come from the signed envelope kept beside
//! its installed files, never from the index doc (which only online keys sign).
//! Updates of plugins that an install has to move are handed to [`super::update`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use semver::{Version, VersionReq};
use serde::Serialize;
use trellis_schema::advisory::Advisories;
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::permission::Permission;
use trellis_schema::{PluginId, VendorId};

use super::advisories::AdvisoryFinding;
use super::blocked::{self, DisabledRelease, HeldBack};
use super::fetch::{
    self, PUBLISHER_RECORD_FILE, RELEASE_ENVELOPE_FILE, ReleaseContent, SignedRelease, VerifiedRelease,
};
use super::source::Remotes;
use super::{Session, Store, StoreError, space};
use crate::activate;
use crate::consent::{self, ConsentQuery, Disclosure};
use crate::events::{Event, OperationKind};
use crate::hooks::{Hook, HookContext};
use crate::package::Durability;
use crate::resolve::{self, PreReleases, Request, Requirement, Resolution, ResolveError, ResolvedPlugin};
use crate::state::{InstallReason, InstalledRelease, RegistryName, State};

/// What an install did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InstallReport {
    /// Newly installed releases, dependencies first.
    pub installed: Vec<(PluginId, Version)>,
    /// Installed plugins the install had to move to another release (from, to).
    pub updated: Vec<(PluginId, Version, Version)>,
    /// Requested plugins that were installed already at the resolved release.
    pub unchanged: Vec<(PluginId, Version)>,
    /// The permissions shown for every release brought in.
    pub disclosures: Vec<Disclosure>,
    /// Installed releases the blocklist names: stopped and disabled, with their marks.
    pub blocked: Vec<DisabledRelease>,
    /// Installed plugins left as they are because they depend on a blocked plugin.
    pub held_back: Vec<HeldBack>,
    /// Releases this install brought in that a security advisory names (installed all
    /// the same, with a warning).
    pub advisories: Vec<AdvisoryFinding>,
}

impl Store {
    /// Installs the plugins `requirements` ask for, with their dependencies. A
    /// pre-release is chosen only when a requirement names one (`acme.clock@1.3.0-rc.1`);
    /// see [`Store::install_with`].
    pub fn install(
        &mut self,
        requirements: &[Requirement],
        session: &Session<'_>,
    ) -> Result<InstallReport, StoreError> {
        self.install_with(requirements, PreReleases::IfRequested, session)
    }

    /// [`Store::install`], saying whether pre-releases may be chosen where no
    /// requirement names one (`trellis install --pre`).
    pub fn install_with(
        &mut self,
        requirements: &[Requirement],
        prereleases: PreReleases,
        session: &Session<'_>,
    ) -> Result<InstallReport, StoreError> {
        let result = self.install_unreported(requirements, prereleases, session);
        self.report_install(requirements, &result, session);
        result
    }

    fn install_unreported(
        &mut self,
        requirements: &[Requirement],
        prereleases: PreReleases,
        session: &Session<'_>,
    ) -> Result<InstallReport, StoreError> {
        self.relay_progress(session);
        let remotes = self.fresh_remotes()?;
        // Re-check what is installed under the current publisher records; an install
        // does not fail on another registry's trouble (the update check reports it),
        // and the records of what it installs are verified by the download below.
        if let Err(error) = self.recheck_installed(&remotes, session) {
            session.reporter.report(crate::events::Event::Warning {
                plugin: None,
                message: format!("installed plugins were not re-checked against their publishers' records: {error}"),
            });
        }
        let mut request = self.request().with_prereleases(prereleases);
        request.requirements = requirements.to_vec();
        for (id, plugin) in self.state().plugins() {
            if plugin.reason == InstallReason::Requested && !requirements.iter().any(|r| &r.id == id) {
                request.requirements.push(Requirement { id: id.clone(), version: VersionReq::STAR });
            }
        }
        let (resolution, blocked, held_back) = self.resolve(&remotes, request, session)?;
        let advisories = remotes.advisories()?;
        let installed = self.state().installed_versions();
        let changes: Vec<ResolvedPlugin> =
            resolution.plugins.iter().filter(|p| installed.get(&p.id) != Some(&p.version)).cloned().collect();
        let mut report = InstallReport { blocked, held_back, ..InstallReport::default() };
        for plugin in &resolution.plugins {
            if installed.get(&plugin.id) == Some(&plugin.version) && requirements.iter().any(|r| r.id == plugin.id) {
                report.unchanged.push((plugin.id.clone(), plugin.version.clone()));
            }
        }
        session.reporter.report(Event::Resolved { to_fetch: changes.len() });
        self.check_space(&changes)?;
        self.check_admin_plugins(&changes)?;
        if session.consent.agrees_in_advance() {
            fetch::download_new_packages_behind(&remotes, &changes, &installed);
        }
        // Only new plugins (a cold install): one batch, whose commit also advances the
        // publishers' pins; otherwise the pins advance once every release verified.
        if !changes.is_empty() && changes.iter().all(|p| !installed.contains_key(&p.id)) {
            report.installed = self.install_new(&remotes, &changes, &resolution, &mut report.disclosures, session)?;
            return self.finish_install(report, &resolution, &advisories, session);
        }
        let signed = fetch::verify_signed(&remotes, &changes)?;
        self.check_admin_releases(&signed)?;
        let (disclosures, grants) = self.ask_consent(&signed, session)?;
        report.disclosures = disclosures;
        let bases = self.delta_bases()?;
        if !grants.is_empty() {
            self.update_state(|state| grants.record(state))?;
        }
        let verified = fetch::download(&remotes, signed, self.relay(), &*session.reporter, &bases)?;
        self.crash.step();
        for step in activation_steps(verified, &installed) {
            match step {
                ActivationStep::Install(releases) => {
                    let releases = releases
                        .into_iter()
                        .map(|release| {
                            let reason = if release.resolved.requested {
                                InstallReason::Requested
                            } else {
                                InstallReason::Dependency
                            };
                            (release, reason)
                        })
                        .collect();
                    report.installed.extend(self.activate_installs(releases, session)?);
                }
                ActivationStep::Update(release, from) => {
                    let (id, to) = (release.resolved.id.clone(), release.resolved.version.clone());
                    self.activate_update(*release, session)?;
                    report.updated.push((id, from, to));
                }
            }
        }
        self.finish_install(report, &resolution, &advisories, session)
    }

    /// Installs `changes`, all new plugins, as one batch. With consent given in advance,
    /// the batch is journalled from the resolution's verified index entries on this
    /// thread while another verifies the releases' developer signatures (the envelopes
    /// and publisher records of the graph's last level are then usually still in
    /// flight, so the journal's barriers cost no time), and a refusal after it (a
    /// signature, the admin policy, a journalled digest that is not the signed one)
    /// undoes the batch; asked interactively, nothing is journalled before the user
    /// answered (an interrupted prompt leaves nothing to recover). Then the packages
    /// (downloading since the resolution when consent was given in advance) are
    /// extracted, and one commit records the plugins with the consents, the vendor
    /// bindings and the publishers' pins.
    fn install_new(
        &mut self,
        remotes: &Arc<Remotes>,
        changes: &[ResolvedPlugin],
        resolution: &Resolution,
        disclosures: &mut Vec<Disclosure>,
        session: &Session<'_>,
    ) -> Result<Vec<(PluginId, Version)>, StoreError> {
        let plan: Vec<activate::NewInstall> = changes.iter().map(indexed_install).collect();
        let journalled_first = session.consent.agrees_in_advance();
        let (checked, journalled) = if journalled_first {
            let (verified, journalled) = std::thread::scope(|scope| {
                let verifying = scope.spawn(|| fetch::verify_signed_unpinned(remotes, changes));
                let journalled = activate::journal_installs(&mut self.state, plan.clone(), |_| {});
                (verifying.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), journalled)
            });
            // A refused signature is the error to report, also when the journal failed.
            let journalled = match journalled {
                Ok(journalled) => journalled,
                Err(error) => {
                    verified?;
                    return Err(error.into());
                }
            };
            self.crash.step();
            match verified.and_then(|verified| self.check_new(verified, &plan, session)) {
                Ok(checked) => (checked, journalled),
                Err(error) => {
                    if let Err(abort) = journalled.abort(&mut self.state) {
                        tracing::warn!(%abort, "could not undo the journalled install; recovery will");
                    }
                    return Err(error);
                }
            }
        } else {
            let checked = self.check_new(fetch::verify_signed_unpinned(remotes, changes)?, &plan, session)?;
            let journalled = activate::journal_installs(&mut self.state, plan, |_| {})?;
            self.crash.step();
            (checked, journalled)
        };
        let CheckedNew { signed, pins, disclosures: shown, grants, bases } = checked;
        *disclosures = shown;
        let bindings = resolution.inferred_bindings.clone();
        let download =
            |relay: &fetch::ProgressRelay| fetch::download(remotes, signed, relay, &*session.reporter, &bases);
        let pin_files: Vec<(&std::path::Path, &[u8])> = pins.iter().map(|p| p.file()).collect();
        let commit = |state: &mut State| {
            grants.record(state);
            bind_vendors(state, bindings);
        };
        self.activate_installs_with(journalled, download, (&pin_files, commit), session)
    }

    /// What a cold install checks between verifying its releases and journalling (or,
    /// journalled first, committing) them: each `plan` entry is what the signed
    /// manifest says, the admin policy allows the releases, the user agrees.
    fn check_new(
        &self,
        (signed, pins): (Vec<SignedRelease>, Vec<super::publishers::PinAdvance>),
        plan: &[activate::NewInstall],
        session: &Session<'_>,
    ) -> Result<CheckedNew, StoreError> {
        plan_agrees(plan, &signed)?;
        super::publishers::prepare_pin_dirs(&pins)?;
        self.check_admin_releases(&signed)?;
        let (disclosures, grants) = self.ask_consent(&signed, session)?;
        Ok(CheckedNew { signed, pins, disclosures, grants, bases: self.delta_bases()? })
    }

    /// Records the vendor bindings the resolution inferred (nothing when they are all
    /// recorded) and reports the advisories against what the install brought in.
    fn finish_install(
        &mut self,
        mut report: InstallReport,
        resolution: &Resolution,
        advisories: &[(RegistryName, Advisories)],
        session: &Session<'_>,
    ) -> Result<InstallReport, StoreError> {
        self.record_bindings(resolution)?;
        let brought_in: Vec<PluginId> = report
            .installed
            .iter()
            .map(|(id, _)| id.clone())
            .chain(report.updated.iter().map(|(id, ..)| id.clone()))
            .collect();
        report.advisories = self.report_advisories(advisories, Some(&brought_in), session);
        Ok(report)
    }

    /// Resolves `request` against the registries, with their merged blocklist.
    ///
    /// First stops and disables the installed releases the blocklist names (see
    /// [`super::blocked`]). A blocked installed plugin is not "installed" for the solver;
    /// when the request lets it move (`update`), it is required at a newer release than
    /// the blocked one (so a fixed release replaces it, never an older one), otherwise it
    /// is no requirement at all. When that, or installed plugins that depend on a blocked
    /// one, make the request unsolvable, it is solved again without the blocked plugins'
    /// and their dependents' requirements, and the dependents are returned as held back
    /// (left as they are). A blocked plugin never fails a resolution.
    #[allow(clippy::type_complexity)]
    pub(crate) fn resolve(
        &mut self,
        remotes: &Arc<Remotes>,
        mut request: Request,
        session: &Session<'_>,
    ) -> Result<(Resolution, Vec<DisabledRelease>, Vec<HeldBack>), StoreError> {
        // The blocklist, the requested docs and their closure, and publisher records,
        // fetched together: the round trips below are then mostly memoized reads.
        remotes.prefetch_for(&request.requirements);
        let blocklist = remotes.blocklist()?;
        let blocked = self.disable_blocked(remotes, &blocklist, session)?;
        self.disable_denied(session)?;
        let blocked_ids: BTreeSet<PluginId> = blocked.iter().map(|b| b.plugin.clone()).collect();
        let installed = self.state().installed_versions();
        let added_for_installed = |r: &Requirement| r.version == VersionReq::STAR && installed.contains_key(&r.id);
        // Blocked plugins whose requirement was turned into "newer than the blocked one".
        let mut moving = BTreeSet::new();
        let upgrade = request.upgrade.clone();
        request.requirements.retain_mut(|r| {
            if !(added_for_installed(r) && blocked_ids.contains(&r.id)) {
                return true;
            }
            let newer = installed.get(&r.id).and_then(|v| VersionReq::parse(&format!(">{v}")).ok());
            match newer {
                Some(newer) if !upgrade.keeps(&r.id) => {
                    r.version = newer;
                    moving.insert(r.id.clone());
                    true
                }
                _ => false,
            }
        });
        request.installed.retain(|id, _| !blocked_ids.contains(id));
        request.blocklist = Arc::new(blocklist);
        session.reporter.report(Event::Resolving {
            requested: request.requirements.iter().map(|r| format!("{} {}", r.id, r.version)).collect(),
        });
        let conflict = match resolve::resolve(&request, &**remotes) {
            Ok(resolution) => return Ok((resolution, blocked, Vec::new())),
            Err(error @ ResolveError::Conflict(_)) if !blocked_ids.is_empty() => error,
            Err(error) => return Err(error.into()),
        };
        let held = blocked::dependents_of_blocked(self.state(), &blocked_ids);
        let held_ids: BTreeSet<&PluginId> = held.iter().map(|h| &h.plugin).collect();
        let before = request.requirements.len();
        request
            .requirements
            .retain(|r| !(moving.contains(&r.id) || (added_for_installed(r) && held_ids.contains(&r.id))));
        if request.requirements.len() == before {
            return Err(conflict.into());
        }
        let resolution = resolve::resolve(&request, &**remotes)?;
        for held in &held {
            let on: Vec<String> = held.blocked_dependencies.iter().map(ToString::to_string).collect();
            session.reporter.report(Event::Warning {
                plugin: Some(held.plugin.clone()),
                message: format!(
                    "{} {} depends on the blocked {}; it was left as it is and gets no updates until a release \
                     without it is published",
                    held.plugin,
                    held.version,
                    on.join(", ")
                ),
            });
        }
        Ok((resolution, blocked, held))
    }

    /// Records the vendor bindings `resolution` inferred; writes nothing when every
    /// one is recorded already (an install's commit records them with its plugins).
    pub(crate) fn record_bindings(&mut self, resolution: &Resolution) -> Result<(), StoreError> {
        let bindings: BTreeMap<VendorId, RegistryName> = resolution
            .inferred_bindings
            .iter()
            .filter(|(vendor, _)| self.state().vendor_registry(vendor).is_none())
            .map(|(vendor, registry)| (vendor.clone(), registry.clone()))
            .collect();
        if !bindings.is_empty() {
            self.update_state(|state| bind_vendors(state, bindings))?;
        }
        Ok(())
    }

    /// Fails before any download when the packages and their unpacked files do not fit.
    pub(crate) fn check_space(&self, changes: &[ResolvedPlugin]) -> Result<(), StoreError> {
        let needed: u64 =
            changes.iter().map(|p| p.release.package.length.saturating_add(p.release.unpacked_size)).sum();
        space::check(self.data_dir().root(), needed)
    }

    /// Shows every release's permissions (from its signed manifest) and asks for
    /// consent where it is needed (new releases, and permissions an update adds);
    /// records what was agreed to.
    pub(crate) fn collect_consent(
        &mut self,
        releases: &[SignedRelease],
        session: &Session<'_>,
    ) -> Result<Vec<Disclosure>, StoreError> {
        let (disclosures, grants) = self.ask_consent(releases, session)?;
        if !grants.is_empty() {
            self.update_state(|state| grants.record(state))?;
        }
        Ok(disclosures)
    }

    /// [`collect_consent`](Self::collect_consent) without the write: the disclosures
    /// and what was agreed to, for the caller to record (with its journal).
    pub(crate) fn ask_consent(
        &self,
        releases: &[SignedRelease],
        session: &Session<'_>,
    ) -> Result<(Vec<Disclosure>, Grants), StoreError> {
        let mut checks = Vec::new();
        for release in releases {
            let old = self.installed_permissions(&release.resolved.id);
            checks.push(consent::check(consent_query(release, old.as_ref()), &self.state().consents));
        }
        let questions: Vec<Disclosure> =
            checks.iter().filter(|c| c.is_needed()).map(|c| c.disclosure().clone()).collect();
        if !questions.is_empty() {
            let planned = releases
                .iter()
                .map(|release| {
                    let plugin = &release.resolved;
                    super::PlannedRelease {
                        plugin: plugin.id.clone(),
                        version: plugin.version.clone(),
                        from: self.state().plugin(&plugin.id).map(|p| p.active.version.clone()),
                        requested: plugin.requested,
                        download_bytes: plugin.release.package.length,
                        unpacked_bytes: plugin.release.unpacked_size,
                    }
                })
                .collect();
            session.consent.plan(&super::Plan { releases: planned, questions });
        }
        let mut disclosures = Vec::new();
        let mut grants: Vec<(PluginId, Version, Vec<Permission>)> = Vec::new();
        for (release, check) in releases.iter().zip(checks) {
            let (plugin, permissions) = (&release.resolved, &release.manifest.permissions);
            if check.is_needed() {
                if !session.consent.agree(check.disclosure()) {
                    return Err(StoreError::ConsentRefused {
                        plugin: plugin.id.clone(),
                        version: plugin.version.clone(),
                        permissions: check.disclosure().unconsented().map(|p| p.key.clone()).collect(),
                    });
                }
                grants.push((plugin.id.clone(), plugin.version.clone(), permissions.clone()));
            }
            disclosures.push(check.disclosure().clone());
        }
        Ok((disclosures, Grants(grants)))
    }

    /// The active release of an installed plugin and the permissions its developer
    /// signed, read from the envelope kept beside its files (verified when it was
    /// installed). A release whose envelope cannot be read counts as having asked for
    /// nothing, so that every permission of the new release is shown as new.
    pub(crate) fn installed_permissions(&self, plugin: &PluginId) -> Option<(Version, Vec<Permission>)> {
        let installed = self.state().plugin(plugin)?;
        let version = installed.active.version.clone();
        let dir = self.data_dir().release_dir(plugin, &version);
        let permissions = match super::delta::kept_manifest(&dir) {
            Ok((manifest, _)) => manifest.permissions,
            Err(problem) => {
                tracing::warn!(%plugin, %version, %problem, "the kept envelope of the installed release is unreadable");
                Vec::new()
            }
        };
        Some((version, permissions))
    }

    /// Extracts verified releases of new plugins (dependencies first) and activates
    /// them as one transaction ([`activate::Batch`]): every package is extracted, every
    /// `before_install` hook asked, then all switch together; `register` and `start`
    /// follow, dependencies first. A refused `before_install` installs none of them;
    /// a refused `register` or `start` removes that plugin and the ones after it (which
    /// may depend on it) again. Returns what was installed.
    pub(crate) fn activate_installs(
        &mut self,
        releases: Vec<(VerifiedRelease, InstallReason)>,
        session: &Session<'_>,
    ) -> Result<Vec<(PluginId, Version)>, StoreError> {
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let installs = releases
            .iter()
            .map(|(release, reason)| activate::NewInstall {
                reason: *reason,
                ..new_install(&release.resolved, &release.registry, &release.manifest)
            })
            .collect();
        let verified = releases.into_iter().map(|(release, _)| release).collect();
        let journalled = activate::journal_installs(&mut self.state, installs, |_| {})?;
        self.crash.step();
        self.activate_installs_with(journalled, |_| Ok(verified), (&[], |_: &mut State| {}), session)
    }

    /// [`activate_installs`](Self::activate_installs) of the `journalled` batch, whose
    /// verified releases `download` produces (in the same order): the journal was
    /// written before they arrived. `commit` changes the state in the commit's write
    /// (the consents given for these releases, the vendor bindings the resolution
    /// inferred), which saves a durable write; its files (the publishers' pins
    /// advanced by the verification) are written in the commit's flush
    /// ([`activate::Batch::commit_with`]).
    pub(crate) fn activate_installs_with(
        &mut self,
        journalled: activate::Journalled,
        download: impl FnOnce(&fetch::ProgressRelay) -> Result<Vec<VerifiedRelease>, StoreError>,
        commit: (&[(&std::path::Path, &[u8])], impl FnOnce(&mut State)),
        session: &Session<'_>,
    ) -> Result<Vec<(PluginId, Version)>, StoreError> {
        let (commit_files, commit) = commit;
        let installed: Vec<(PluginId, Version)> =
            journalled.installs().map(|(plugin, release)| (plugin.clone(), release.version.clone())).collect();
        let (crash, relay) = (&mut self.crash, &self.relay);
        let batch = journalled.resume(&mut self.state);
        let releases = download(relay)?;
        crash.step();
        // Where `syncfs` exists the files are written unflushed and the commit flushes
        // them all at once; elsewhere each package is flushed as it is extracted.
        let durability = if crate::fs::syncfs_available() { Durability::Unflushed } else { Durability::Flushed };
        // Each journalled release's files go to its target (one the download did not
        // return leaves its directory missing, which the commit refuses).
        let mut releases: BTreeMap<(PluginId, Version), VerifiedRelease> = releases
            .into_iter()
            .map(|release| ((release.resolved.id.clone(), release.resolved.version.clone()), release))
            .collect();
        let mut targets = Vec::with_capacity(installed.len());
        let mut jobs = Vec::with_capacity(installed.len());
        for (index, key) in installed.iter().enumerate() {
            let Some(target) = batch.target_dir(index) else { continue };
            if let Some(release) = releases.remove(key) {
                jobs.push((release, target.clone()));
            }
            targets.push(target);
        }
        extract_all(jobs, durability, &*session.reporter, &mut || crash.step())?;
        for ((id, version), target) in installed.iter().zip(&targets) {
            let ctx = HookContext { plugin: id, version, path: target };
            if let Err(source) = session.hook(Hook::BeforeInstall, ctx, None) {
                batch.abort()?;
                return Err(StoreError::Hook {
                    hook: Hook::BeforeInstall,
                    plugin: id.clone(),
                    version: version.clone(),
                    source: Box::new(source),
                    undone: "nothing was installed".into(),
                });
            }
        }
        for (id, version) in &installed {
            session.reporter.report(Event::Activating { plugin: id.clone(), version: version.clone() });
        }
        batch.commit_with(&mut || crash.step(), commit_files, commit)?;
        crash.step();
        for (index, ((id, version), target)) in installed.iter().zip(&targets).enumerate() {
            let ctx = HookContext { plugin: id, version, path: target };
            if let Err(error) = self.settle_license(ctx, session) {
                session.reporter.report(Event::Warning {
                    plugin: Some(id.clone()),
                    message: format!("the trial or license state could not be recorded: {error}"),
                });
            }
            for hook in [Hook::Register, Hook::Start] {
                if let Err(source) = session.hook(hook, ctx, None) {
                    // The host cannot take the plugin: take it out again, with the ones
                    // after it the host never heard of (dependents last, removed first).
                    let mut failed = Vec::new();
                    for (later, _) in installed[index + 1..].iter().rev() {
                        if let Err(e) = self.remove_unannounced(later) {
                            failed.push(format!("{later} ({e})"));
                        }
                    }
                    let undone = match self.remove_one(id, session) {
                        Ok(()) if failed.is_empty() => {
                            let later = installed.len() - index - 1;
                            if later == 0 {
                                "the plugin was removed again".to_owned()
                            } else {
                                format!("the plugin and the {later} installed after it were removed again")
                            }
                        }
                        Ok(()) => format!("removing {} failed; run `trellis remove` for them", failed.join(", ")),
                        Err(e) => format!("removing it again failed too ({e}); run `trellis remove {id}`"),
                    };
                    return Err(StoreError::Hook {
                        hook,
                        plugin: id.clone(),
                        version: version.clone(),
                        source: Box::new(source),
                        undone,
                    });
                }
            }
            if let Err(error) = session.hook(Hook::AfterInstall, ctx, None) {
                session
                    .reporter
                    .report(Event::Warning { plugin: Some(id.clone()), message: format!("after_install: {error}") });
            }
            session.reporter.report(Event::Done {
                operation: OperationKind::Install,
                plugin: id.clone(),
                version: Some(version.clone()),
            });
        }
        Ok(installed)
    }
}

impl Store {
    /// Removes a plugin the host was never told about (installed in the same batch
    /// after one the host refused): the removal's transaction, no hooks.
    fn remove_unannounced(&mut self, plugin: &PluginId) -> Result<(), StoreError> {
        let mut tx = activate::begin_remove(&mut self.state, plugin)?;
        tx.stopped()?;
        tx.switch()?;
        tx.finish()?;
        Ok(())
    }
}

/// One step of bringing verified releases in.
pub(crate) enum ActivationStep {
    /// New plugins, installed as one transaction.
    Install(Vec<VerifiedRelease>),
    /// An installed plugin moved from the given release, in its own transaction (it
    /// rolls back on its own).
    Update(Box<VerifiedRelease>, Version),
}

/// Groups releases (dependencies first) into steps in the same order: each run of new
/// plugins is one install transaction, each installed plugin one update, so every
/// plugin is still activated after what it depends on. A cold install is one step.
pub(crate) fn activation_steps(
    verified: Vec<VerifiedRelease>,
    installed: &std::collections::BTreeMap<PluginId, Version>,
) -> Vec<ActivationStep> {
    let mut steps = Vec::new();
    for release in verified {
        match (installed.get(&release.resolved.id), steps.last_mut()) {
            (Some(from), _) => steps.push(ActivationStep::Update(Box::new(release), from.clone())),
            (None, Some(ActivationStep::Install(run))) => run.push(release),
            (None, _) => steps.push(ActivationStep::Install(vec![release])),
        }
    }
    steps
}

/// The consent question for `release`: its signed permissions, replacing `old` (the
/// installed release and the permissions its developer signed).
pub(crate) fn consent_query<'a>(
    release: &'a SignedRelease,
    old: Option<&'a (Version, Vec<Permission>)>,
) -> ConsentQuery<'a> {
    ConsentQuery {
        plugin: &release.resolved.id,
        version: &release.resolved.version,
        permissions: &release.manifest.permissions,
        replaces: old.map(|(v, p)| (v, p.as_slice())),
    }
}

pub(crate) fn dependency_ids(release: &VerifiedRelease) -> Vec<PluginId> {
    manifest_dependency_ids(&release.manifest)
}

fn manifest_dependency_ids(manifest: &ReleaseManifest) -> Vec<PluginId> {
    ids_of(&manifest.dependencies)
}

/// The ids `dependencies` name, sorted, each once (what an installed release records).
fn ids_of(dependencies: &[trellis_schema::plugin::Dependency]) -> Vec<PluginId> {
    let mut ids: Vec<PluginId> = dependencies.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The new install of a resolved release as a cold install journals it before its
/// signature is verified: dependencies and package digest from its verified index
/// entry ([`plan_agrees`] then checks them against the signed manifest).
fn indexed_install(resolved: &ResolvedPlugin) -> activate::NewInstall {
    let release = &resolved.release;
    install_of(resolved, &resolved.registry, &release.dependencies, release.package.sha256)
}

/// Whether every release of `plan` (journalled from the index entries) is what the
/// commit would record from its signed manifest. The envelope check has compared both
/// already (dependencies by [`ReleaseManifest::index_disagreement`], the package
/// digest against the entry's blob), so a difference here is a bug between the two,
/// refused rather than committed: what an install records is the developer's.
fn plan_agrees(plan: &[activate::NewInstall], signed: &[SignedRelease]) -> Result<(), StoreError> {
    for (planned, release) in plan.iter().zip(signed) {
        let manifest = new_install(&release.resolved, &release.registry, &release.manifest);
        if planned.plugin != manifest.plugin || planned.release != manifest.release {
            return Err(StoreError::Mismatch {
                plugin: release.resolved.id.clone(),
                version: release.resolved.version.clone(),
                what: "the release journalled from the index doc and the signed manifest".into(),
            });
        }
    }
    Ok(())
}

/// A cold install's releases once checked ([`Store::check_new`]).
struct CheckedNew {
    signed: Vec<SignedRelease>,
    pins: Vec<super::publishers::PinAdvance>,
    disclosures: Vec<Disclosure>,
    grants: Grants,
    bases: super::delta::DeltaBases,
}

/// The new install of a resolved release (reason from whether it was requested), as
/// the batch journals it: its dependencies and package digest from the signed manifest.
fn new_install(resolved: &ResolvedPlugin, registry: &RegistryName, manifest: &ReleaseManifest) -> activate::NewInstall {
    install_of(resolved, registry, &manifest.dependencies, manifest.package.sha256)
}

/// The new install of `resolved` from `registry` with these dependencies and package
/// digest (reason from whether it was requested).
fn install_of(
    resolved: &ResolvedPlugin,
    registry: &RegistryName,
    dependencies: &[trellis_schema::plugin::Dependency],
    package_sha256: trellis_schema::Sha256,
) -> activate::NewInstall {
    activate::NewInstall {
        plugin: resolved.id.clone(),
        release: InstalledRelease {
            version: resolved.version.clone(),
            dependencies: ids_of(dependencies),
            package_sha256: Some(package_sha256),
        },
        registry: registry.clone(),
        reason: if resolved.requested { InstallReason::Requested } else { InstallReason::Dependency },
    }
}

/// Consents agreed to while asking, not yet recorded: (plugin, release, permissions).
#[derive(Debug, Default)]
pub(crate) struct Grants(Vec<(PluginId, Version, Vec<Permission>)>);

impl Grants {
    /// Whether nothing was agreed to (nothing asked, or nothing needed asking).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records them in `state`.
    pub(crate) fn record(&self, state: &mut State) {
        for (plugin, version, permissions) in &self.0 {
            state.consents.grant(plugin, version, permissions);
        }
    }
}

/// Binds each vendor of `bindings` not bound yet to its registry.
fn bind_vendors(state: &mut State, bindings: BTreeMap<VendorId, RegistryName>) {
    for (vendor, registry) in bindings {
        if state.vendor_registry(&vendor).is_none() {
            state.bind_vendor(vendor, registry);
        }
    }
}

/// Most releases of a batch extracted at once.
const EXTRACT_THREADS: usize = 4;

/// [`extract`]s each release of a batch to its target, several at once (a cold install
/// of many small plugins spends more time in file creation and inflating than any one
/// of them needs a core for). `step` runs on the calling thread after each release is
/// in place, in the order they finish (the crash test's steps: a kill there leaves the
/// others part-written, as a real crash would). The first failure stops the workers
/// from taking another release and is returned once the ones in hand are done: the
/// batch's journal covers every target, finished or not.
pub(crate) fn extract_all(
    jobs: Vec<(VerifiedRelease, std::path::PathBuf)>,
    durability: Durability,
    reporter: &dyn crate::events::Reporter,
    step: &mut dyn FnMut(),
) -> Result<(), StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, EXTRACT_THREADS).min(jobs.len());
    if threads <= 1 {
        for (release, target) in jobs {
            extract(release, &target, durability, reporter)?;
            step();
        }
        return Ok(());
    }
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sender, results) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (queue, stop, sender) = (&queue, &stop, sender.clone());
            scope.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let next = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next();
                    let Some((release, target)) = next else { break };
                    let result = extract(release, &target, durability, reporter);
                    if sender.send(result).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for result in results {
            if let Err(error) = result {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(error);
            }
            step();
        }
        Ok(())
    })
}

/// Puts the release's files at `target` (extracting the package through a staging
/// directory, or moving the files a delta staged) and keeps the signed envelope and
/// the publisher record it was verified under beside them (the envelope last: a
/// directory with an envelope has its record).
pub(crate) fn extract(
    release: VerifiedRelease,
    target: &std::path::Path,
    durability: Durability,
    reporter: &dyn crate::events::Reporter,
) -> Result<(), StoreError> {
    let files = release.manifest.files.len() as u64;
    let plugin = release.resolved.id.clone();
    let version = release.resolved.version.clone();
    reporter.report(Event::Extracting {
        plugin: plugin.clone(),
        version: version.clone(),
        files_done: 0,
        files_total: files,
    });
    if let Some(parent) = target.parent() {
        crate::fs::create_dir_all(parent)?;
    }
    match release.content {
        ReleaseContent::Package(package) => {
            package.extract_with(target, durability).map_err(|source| StoreError::Package {
                plugin: plugin.clone(),
                version: version.clone(),
                source: Box::new(source),
            })?;
        }
        ReleaseContent::Staged(staged) => staged.persist(target).map_err(|e| StoreError::Delta {
            plugin: plugin.clone(),
            version: version.clone(),
            problem: e.to_string(),
        })?,
    }
    // The record before the envelope, both on disk before activation: flushed here
    // (one flush), or by the transaction's switch when extraction is unflushed.
    let (record, envelope) = (target.join(PUBLISHER_RECORD_FILE), target.join(RELEASE_ENVELOPE_FILE));
    match durability {
        Durability::Flushed => {
            crate::fs::write_atomic_all(&[(&record, &release.publisher_record), (&envelope, &release.envelope)])?
        }
        Durability::Unflushed => {
            crate::fs::write_atomic_before_flush(&record, &release.publisher_record)?;
            crate::fs::write_atomic_before_flush(&envelope, &release.envelope)?;
        }
    }
    reporter.report(Event::Extracting { plugin, version, files_done: files, files_total: files });
    Ok(())
}

/// Parses `ID` or `ID@REQ` (`acme.clock@^1.2`, `acme.clock@1.2.0` = exactly 1.2.0).
pub fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let (id, req) = match text.split_once('@') {
        Some((id, req)) => (id, Some(req)),
        None => (text, None),
    };
    let id: PluginId = id.parse().map_err(|e| format!("`{id}` is not a plugin id: {e}"))?;
    let version = match req {
        None => VersionReq::STAR,
        Some(req) => match req.parse::<Version>() {
            Ok(exact) => VersionReq::parse(&format!("={exact}")).map_err(|e| e.to_string())?,
            Err(_) => req.parse().map_err(|e| format!("`{req}` is not a version requirement: {e}"))?,
        },
    };
    Ok(Requirement { id, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_syntax_takes_ranges_and_treats_a_bare_version_as_exact() {
        let any = parse_requirement("acme.clock").unwrap();
        assert_eq!((any.id.as_str(), any.version.to_string()), ("acme.clock", "*".to_owned()));
        let exact = parse_requirement("acme.clock@1.2.0").unwrap();
        assert!(exact.version.matches(&Version::new(1, 2, 0)) && !exact.version.matches(&Version::new(1, 2, 1)));
        let range = parse_requirement("acme.clock@^1.2").unwrap();
        assert!(range.version.matches(&Version::new(1, 9, 0)));
        assert!(parse_requirement("Not An Id").unwrap_err().contains("is not a plugin id"));
        assert!(parse_requirement("acme.clock@>>1").unwrap_err().contains("is not a version requirement"));
    }
}
