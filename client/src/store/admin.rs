//! Enforcing the administrator policy ([`crate::admin`]) in the lifecycle: which
//! releases may come in (registry, vendor, allow and deny lists, from the resolution;
//! the permission risk, from the developer-signed manifests; the security level, from
//! the registry's signed levels), which updates a schedule
//! or "update all" may apply (the administrator's window and staged-rollout opt-out
//! override the user's policy), and the forced installs. Refusing removals of forced
//! plugins is in [`super::remove`], registries in [`super::Store::add_registry`].

use semver::VersionReq;
use trellis_schema::PluginId;

use super::fetch::SignedRelease;
use super::install::InstallReport;
use super::{Session, Store, StoreError};
use crate::events::Event;
use crate::policy::{Action, AvailableUpdate, Decision, Reason, Trigger};
use crate::resolve::{Requirement, ResolvedPlugin};
use crate::state::{Disabled, DisabledCause};

impl Store {
    /// Refuses the first of `changes` the policy does not allow (its registry, vendor,
    /// or the plugin itself).
    pub(super) fn check_admin_plugins(&self, changes: &[ResolvedPlugin]) -> Result<(), StoreError> {
        let Some(admin) = &self.options().admin_policy else { return Ok(()) };
        for change in changes {
            if let Some(registry) = self.registries().get(&change.registry) {
                admin.check_registry(&registry.url)?;
            }
            admin.check_plugin(&change.id)?;
        }
        Ok(())
    }

    /// [`Store::check_admin_plugins`], and the permissions each signed manifest asks for.
    pub(super) fn check_admin_releases(&self, releases: &[SignedRelease]) -> Result<(), StoreError> {
        let Some(admin) = &self.options().admin_policy else { return Ok(()) };
        let resolved: Vec<ResolvedPlugin> = releases.iter().map(|r| r.resolved.clone()).collect();
        self.check_admin_plugins(&resolved)?;
        for release in releases {
            let (id, version) = (&release.resolved.id, &release.resolved.version);
            admin.check_permissions(id, version, &release.manifest.permissions)?;
            if admin.document.minimum_security_level.is_some() {
                admin.check_security_level(
                    id,
                    version,
                    &self.security_level(&release.resolved.registry, id, version),
                )?;
            }
        }
        Ok(())
    }

    /// The user's policy `decision` about `update`, unless the administrator's rules
    /// hold it back: a release not allowed is never applied; outside the
    /// administrator's window, or still in a staged rollout this machine opted out of,
    /// a scheduled or "update all" update waits (a named update goes ahead).
    pub(super) fn admin_decision(
        &self,
        decision: Decision,
        signed: &SignedRelease,
        update: &AvailableUpdate,
        trigger: Trigger,
        now: &jiff::ZonedDateTime,
    ) -> Decision {
        let Some(admin) = &self.options().admin_policy else { return decision };
        if decision.action != Action::Apply {
            return decision;
        }
        let hold = |rule: String| Decision {
            plugin: decision.plugin.clone(),
            to: decision.to.clone(),
            action: Action::Skip,
            reason: Reason::AdminPolicy { rule },
        };
        let allowed = self.check_admin_releases(std::slice::from_ref(signed)).err().map(|e| e.to_string());
        if let Some(rule) = allowed {
            return hold(rule);
        }
        if trigger == Trigger::Named {
            return decision;
        }
        let path = admin.path.display();
        if let Some(window) = &admin.window
            && !window.contains(now.time())
        {
            let text = admin.document.update_window.clone().unwrap_or_default();
            return hold(format!("waits for the update window {text} set by the administrator policy {path}"));
        }
        if admin.document.staged_rollouts == Some(false)
            && let Some(percent) = update.rollout
            && percent.get() < 100
        {
            return hold(format!(
                "still in a staged rollout ({}%), which the administrator policy {path} opts this machine out of",
                percent.get()
            ));
        }
        decision
    }

    /// Stops and disables the installed plugins the administrator policy no longer
    /// allows (denied, their vendor or registry not allowed, or a permission above the
    /// highest risk allowed: a policy changed after they were installed), as blocked
    /// ones are, and enables again those it allows
    /// once more. Run at every refresh; warns about each change.
    pub(crate) fn disable_denied(&mut self, session: &Session<'_>) -> Result<(), StoreError> {
        let admin = self.options().admin_policy.clone();
        let now = jiff::Timestamp::now();
        let mut changes: Vec<(PluginId, Option<Disabled>)> = Vec::new();
        for (id, record) in self.state().plugins() {
            let version = &record.active.version;
            let refusal = admin.as_ref().and_then(|admin| {
                let registry = self.registries().get(&record.registry).map(|r| r.url.clone());
                registry
                    .map_or(Ok(()), |url| admin.check_registry(&url))
                    .and_then(|()| admin.check_plugin(id))
                    .and_then(|()| match installed_permissions(&self.data_dir().release_dir(id, version)) {
                        Some(permissions) => admin.check_permissions(id, version, &permissions),
                        // Unreadable: `verify` reports the damaged release; the
                        // permissions were checked when it was installed.
                        None => Ok(()),
                    })
                    .err()
                    .map(|e| e.to_string())
            });
            // The security level: a release the registry's signed levels put below the
            // minimum (or do not list) is denied; one whose levels cannot be read now
            // (offline, a mirror withholding them) is left as it is, with a warning:
            // installs are refused on that, running plugins are not stopped on it.
            let refusal = match (refusal, &admin) {
                (None, Some(admin)) if admin.document.minimum_security_level.is_some() => {
                    let version = &record.active.version;
                    match self.installed_security_level(&record.registry, id, version) {
                        Ok(level) => admin.check_security_level(id, version, &level).err().map(|e| e.to_string()),
                        Err(reason) => {
                            session.reporter.report(Event::Warning {
                                plugin: Some(id.clone()),
                                message: format!(
                                    "the security level of installed {id} {version} cannot be checked against the administrator policy: {reason}"
                                ),
                            });
                            continue;
                        }
                    }
                }
                (refusal, _) => refusal,
            };
            let denied = record.disabled.as_ref().is_some_and(|d| d.cause == DisabledCause::AdminPolicy);
            match (refusal, denied) {
                (Some(reason), false) if record.disabled.is_none() => {
                    let mark = Disabled::denied(reason, now);
                    self.stop_disabled(session, id, version, &mark, &format!("is {mark}"), "");
                    changes.push((id.clone(), Some(mark)));
                }
                (None, true) => {
                    session.reporter.report(Event::Warning {
                        plugin: Some(id.clone()),
                        message: format!("{id} {version} is allowed by the administrator policy again: enabled"),
                    });
                    changes.push((id.clone(), None));
                }
                _ => {}
            }
        }
        if !changes.is_empty() {
            self.update_state(|state| {
                for (id, mark) in changes {
                    state.set_disabled(&id, mark);
                }
            })?;
        }
        Ok(())
    }

    /// Installs the plugins the administrator policy forces that are not installed
    /// (a host app calls this at start-up). Consent is asked as for any install.
    pub fn install_forced(&mut self, session: &Session<'_>) -> Result<InstallReport, StoreError> {
        let Some(admin) = self.options().admin_policy.clone() else { return Ok(InstallReport::default()) };
        let missing: Vec<Requirement> = admin
            .document
            .forced_plugins
            .iter()
            .filter(|id| self.state().plugin(id).is_none())
            .map(|id| Requirement { id: id.clone(), version: VersionReq::STAR })
            .collect();
        if missing.is_empty() {
            return Ok(InstallReport::default());
        }
        self.install(&missing, session)
    }
}

/// The permissions an installed release's `plugin.json` declares (the file is covered
/// by the developer's signed manifest, checked at install). `None` when it cannot be
/// read.
fn installed_permissions(release_dir: &std::path::Path) -> Option<Vec<trellis_schema::permission::Permission>> {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(default)]
        permissions: Vec<trellis_schema::permission::Permission>,
    }
    let bytes = std::fs::read(release_dir.join(trellis_schema::plugin::METADATA_PATH)).ok()?;
    trellis_schema::json::from_slice::<Declared>(&bytes).ok().map(|d| d.permissions)
}
