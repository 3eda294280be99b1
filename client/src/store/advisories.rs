//! Security advisories against the installed set: which installed releases the
//! registries' signed advisories ([`trellis_schema::advisory`]) name, reported as
//! warnings.
//!
//! An advisory never disables anything (that is the blocklist's job, [`super::blocked`]):
//! an install of an affected release, an update check and an update report each affected
//! release they leave installed as an [`AdvisoryFinding`] and an [`Event::Advisory`]
//! (the CLI prints it on stderr), and [`Store::audit`] lists them all (`trellis audit`).
//! Matching is by the registry the plugin was installed from, plugin id and version:
//! the builder already evaluated ranges and SBOMs into release lists.

use semver::Version;
use serde::Serialize;
use trellis_schema::PluginId;
use trellis_schema::advisory::{Advisories, Component, Severity};

use super::{Session, Store, StoreError};
use crate::events::Event;
use crate::registry_name::RegistryName;
use crate::state::State;

/// An installed release an advisory affects.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdvisoryFinding {
    /// The plugin.
    pub plugin: PluginId,
    /// Its installed (active) release.
    pub version: Version,
    /// The registry it came from, which published the advisory.
    pub registry: RegistryName,
    /// The advisory's id.
    pub id: String,
    /// Other ids of the same vulnerability.
    pub aliases: Vec<String>,
    /// What is wrong.
    pub summary: String,
    /// How bad; `None`: unrated.
    pub severity: Option<Severity>,
    /// Where to read more.
    pub url: Option<String>,
    /// The bundled component concerned; `None` when the advisory is about the plugin.
    pub component: Option<Component>,
    /// The affected ranges, as the advisory states them.
    pub ranges: Vec<String>,
    /// The release to update to; `None`: no fixed release yet.
    pub fixed: Option<Version>,
    /// The sentence to show.
    pub message: String,
}

/// The findings for the installed releases of `plugins` (every installed plugin when
/// `None`), most severe first.
pub(crate) fn findings(
    state: &State,
    lists: &[(RegistryName, Advisories)],
    plugins: Option<&[PluginId]>,
) -> Vec<AdvisoryFinding> {
    let mut out = Vec::new();
    for (id, record) in state.plugins() {
        if plugins.is_some_and(|only| !only.contains(id)) {
            continue;
        }
        let version = &record.active.version;
        for (registry, list) in lists.iter().filter(|(name, _)| name == &record.registry) {
            for finding in list.findings(id, version) {
                let advisory = finding.advisory;
                out.push(AdvisoryFinding {
                    plugin: id.clone(),
                    version: version.clone(),
                    registry: registry.clone(),
                    id: advisory.id.clone(),
                    aliases: advisory.aliases.clone(),
                    summary: advisory.summary.clone(),
                    severity: advisory.severity,
                    url: advisory.url.clone(),
                    component: finding.affected.component.clone(),
                    ranges: finding.affected.ranges.clone(),
                    fixed: finding.affected.fixed.clone(),
                    message: format!("{id} {version} is affected by {finding}"),
                });
            }
        }
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| (&a.plugin, &a.id).cmp(&(&b.plugin, &b.id))));
    out
}

impl Store {
    /// Every installed release the registries' advisories name, most severe first,
    /// after refreshing the registries' metadata (`trellis audit`). Reports nothing:
    /// the caller shows the list.
    pub fn audit(&mut self) -> Result<Vec<AdvisoryFinding>, StoreError> {
        let remotes = self.fresh_remotes()?;
        let lists = remotes.advisories()?;
        Ok(findings(self.state(), &lists, None))
    }

    /// The findings for the installed releases of `plugins` (all when `None`) under
    /// `lists` (fetched by the caller before it changed anything, so a refused
    /// advisories document fails the operation before it starts), each reported as an
    /// [`Event::Advisory`].
    pub(crate) fn report_advisories(
        &self,
        lists: &[(RegistryName, Advisories)],
        plugins: Option<&[PluginId]>,
        session: &Session<'_>,
    ) -> Vec<AdvisoryFinding> {
        let found = findings(self.state(), lists, plugins);
        for finding in &found {
            session.reporter.report(Event::Advisory {
                plugin: finding.plugin.clone(),
                version: finding.version.clone(),
                id: finding.id.clone(),
                severity: finding.severity,
                message: finding.message.clone(),
            });
        }
        found
    }
}
