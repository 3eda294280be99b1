//! The blocklist against the installed set: which installed releases it names, disabling
//! them through the host's hooks, and which installed plugins are held back because they
//! depend on one.
//!
//! An entry is matched against an installed release by plugin id, version (ranges cover
//! pre-releases, see [`trellis_schema::blocklist`]) and, for an entry with a hash, the
//! package digest recorded when the release was installed (for a record of an older
//! client, the digest the registry's index doc lists for that version). A blocked
//! installed release is stopped (`stop` hook), marked [`Disabled`] in the state and
//! reported; it never makes an operation fail. It is also kept out of resolution: its
//! plugin is neither a root requirement nor "installed" for the solver, and when an
//! installed plugin cannot be resolved because it depends on a blocked one, resolution is
//! retried without it and the plugin is reported as held back ([`HeldBack`]).
//!
//! Called by [`super::update`] (every check and update) and [`super::install`].

use std::collections::BTreeSet;

use semver::Version;
use serde::Serialize;
use trellis_schema::PluginId;
use trellis_schema::blocklist::{BlockEntry, Blocklist};

use super::source::Remotes;
use super::{Session, Store, StoreError};
use crate::events::Event;
use crate::hooks::{Hook, HookContext};
use crate::state::{Disabled, DisabledCause, State};

/// An installed release that is disabled, as an operation found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisabledRelease {
    /// The plugin.
    pub plugin: PluginId,
    /// Its installed (active) release.
    pub version: Version,
    /// Cause, reason, severity and since when.
    pub mark: Disabled,
}

/// An installed plugin left as it is because a plugin it depends on is blocked: no
/// release of it can be resolved without the blocked one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldBack {
    /// The plugin.
    pub plugin: PluginId,
    /// Its installed release.
    pub version: Version,
    /// The blocked plugins it depends on (directly or through other plugins).
    pub blocked_dependencies: Vec<PluginId>,
}

/// Installed releases `blocklist` names, each with the most severe entry.
pub(crate) fn blocked_installed(
    state: &State,
    remotes: &Remotes,
    blocklist: &Blocklist,
) -> Result<Vec<(PluginId, Version, BlockEntry)>, StoreError> {
    let mut found = Vec::new();
    for (id, plugin) in state.plugins() {
        if !blocklist.entries.iter().any(|e| &e.id == id) {
            continue;
        }
        let version = &plugin.active.version;
        let digest = match plugin.active.package_sha256 {
            Some(digest) => Some(digest),
            // Recorded by an older client: the registry's listing of that release.
            None => remotes.doc(&plugin.registry, id)?.and_then(|doc| doc.release(version).map(|r| r.package.sha256)),
        };
        if let Some(entry) = blocklist.find(id, version, digest.as_ref()) {
            found.push((id.clone(), version.clone(), entry.clone()));
        }
    }
    Ok(found)
}

/// Installed plugins that depend, directly or through other installed plugins, on one
/// of `blocked`, with the blocked plugins each one reaches.
pub(crate) fn dependents_of_blocked(state: &State, blocked: &BTreeSet<PluginId>) -> Vec<HeldBack> {
    let mut held = Vec::new();
    for (id, plugin) in state.plugins() {
        if blocked.contains(id) {
            continue;
        }
        let mut reached = BTreeSet::new();
        let mut seen = BTreeSet::from([id.clone()]);
        let mut todo: Vec<PluginId> = plugin.active.dependencies.clone();
        while let Some(dep) = todo.pop() {
            if !seen.insert(dep.clone()) {
                continue;
            }
            if blocked.contains(&dep) {
                reached.insert(dep.clone());
            }
            if let Some(record) = state.plugin(&dep) {
                todo.extend(record.active.dependencies.iter().cloned());
            }
        }
        if !reached.is_empty() {
            held.push(HeldBack {
                plugin: id.clone(),
                version: plugin.active.version.clone(),
                blocked_dependencies: reached.into_iter().collect(),
            });
        }
    }
    held
}

impl Store {
    /// Stops an installed release through the host's hooks and reports it disabled with
    /// `mark` (`{id} {version} {what}; it was stopped and disabled{advice}`, or says the
    /// host refused to stop it). The caller records the mark in the state.
    pub(super) fn stop_disabled(
        &self,
        session: &Session<'_>,
        id: &PluginId,
        version: &Version,
        mark: &Disabled,
        what: &str,
        advice: &str,
    ) {
        let path = self.data_dir().release_dir(id, version);
        let stopped = session.hook(Hook::Stop, HookContext { plugin: id, version, path: &path }, None);
        let outcome =
            if stopped.is_ok() { "stopped and disabled" } else { "disabled, but the host refused to stop it" };
        session.reporter.report(Event::Disabled {
            plugin: id.clone(),
            version: version.clone(),
            mark: mark.clone(),
            message: format!("{id} {version} {what}; it was {outcome}{advice}"),
        });
    }

    /// Stops and disables the installed releases the registries' blocklists name, warns
    /// about each newly disabled one, and returns all of them (with their marks).
    pub(crate) fn disable_blocked(
        &mut self,
        remotes: &Remotes,
        blocklist: &Blocklist,
        session: &Session<'_>,
    ) -> Result<Vec<DisabledRelease>, StoreError> {
        let found = blocked_installed(self.state(), remotes, blocklist)?;
        let now = jiff::Timestamp::now();
        let mut report = Vec::new();
        let mut newly = Vec::new();
        for (id, version, entry) in found {
            let existing = self.state().plugin(&id).and_then(|p| p.disabled.clone());
            let mark = match existing {
                Some(mark) if matches!(mark.cause, DisabledCause::Blocked { .. }) => mark,
                _ => {
                    let mark = Disabled::blocked(&entry, now);
                    self.stop_disabled(session, &id, &version, &mark, &format!("is {mark}"), ". Update or remove it");
                    newly.push((id.clone(), mark.clone()));
                    mark
                }
            };
            report.push(DisabledRelease { plugin: id, version, mark });
        }
        if !newly.is_empty() {
            self.update_state(|state| {
                for (id, mark) in newly {
                    state.set_disabled(&id, Some(mark));
                }
            })?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InstallId, InstalledPlugin, InstalledRelease};

    fn id(text: &str) -> PluginId {
        text.parse().unwrap()
    }

    #[test]
    fn dependents_are_found_through_other_installed_plugins() {
        let mut state = State::new(InstallId::from_hex("00112233445566778899aabbccddeeff").unwrap());
        let record = |deps: &[&str]| InstalledPlugin {
            registry: "public".parse().unwrap(),
            active: InstalledRelease {
                version: Version::new(1, 0, 0),
                dependencies: deps.iter().map(|d| id(d)).collect(),
                package_sha256: None,
            },
            previous: None,
            reason: crate::state::InstallReason::Requested,
            disabled: None,
        };
        let plugins = state.plugins_mut();
        plugins.insert(id("acme.ui"), record(&["acme.clock"]));
        plugins.insert(id("acme.clock"), record(&["acme.time-core"]));
        plugins.insert(id("acme.time-core"), record(&[]));
        plugins.insert(id("acme.other"), record(&[]));
        let held = dependents_of_blocked(&state, &BTreeSet::from([id("acme.time-core")]));
        let names: Vec<&str> = held.iter().map(|h| h.plugin.as_str()).collect();
        assert_eq!(names, ["acme.clock", "acme.ui"]);
        assert!(held.iter().all(|h| h.blocked_dependencies == [id("acme.time-core")]));
    }
}
