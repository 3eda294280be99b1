//! Dependency resolution: which release of which plugin to install, from which registry.
//!
//! Owns turning a [`Request`] (root requirements, host app, platform, channels, pins,
//! installed set, blocklist, registries) and the index docs an [`IndexSource`] serves into
//! a [`Resolution`]: one release per plugin, dependencies first, with the namespace
//! bindings it had to infer. It is pure: no network and no disk; docs come through the
//! source, fetched lazily (only plugins the solver reaches) with prefetch hints so that
//! the caller can download the next ones in parallel. When no solution exists the
//! [`Conflict`] explains why in sentences a user can act on.
//!
//! The solver is pubgrub. Packages are the plugins, a virtual host package whose only
//! version is the plugin API version of this app (so "needs plugin API >=1.5" is an
//! ordinary dependency), and the root. Releases excluded by platform, channel, yanking,
//! the blocklist, pins, host app or client version, and pre-releases nobody asked for
//! ([`PreReleases`], cargo's rule), are not offered to the solver at all, and the
//! explanation says why each one was left out.
//!
//! Version preference follows cargo and uv: newest first, except that an installed plugin
//! keeps its version unless [`Upgrade`] lets it move (`update` moves all, `update ID`
//! moves those, installing something else moves nothing that still works).
//!
//! Hands off to the lifecycle (space check, consent, download, install), which records
//! [`Resolution::inferred_bindings`] in its state file.

mod provider;
mod ranges;
mod report;
mod request;
mod source;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use pubgrub::PubGrubError;
use semver::Version;
use trellis_schema::id::{PluginId, VendorId};
use trellis_schema::index::IndexRelease;

pub use provider::{Exclusion, Notice, exclusion};
pub use request::{HostApp, PreReleases, Registries, Request, Requirement, Upgrade};

pub use crate::registry_name::RegistryName;
pub use source::{DocRequest, IndexSource, MemorySource, SourceError, SourceLog};

use provider::{Lookup, Package, Provider, root_version};

/// One chosen release.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedPlugin {
    /// The plugin.
    pub id: PluginId,
    /// The chosen version.
    pub version: Version,
    /// The registry it comes from.
    pub registry: RegistryName,
    /// The release as the index doc describes it (package blob, permissions, …).
    pub release: IndexRelease,
    /// Whether a root requirement names it (otherwise it is only a dependency).
    pub requested: bool,
}

/// The outcome of a successful resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    /// Chosen releases in install order: every plugin after the plugins it depends on
    /// (members of a dependency cycle in id order).
    pub plugins: Vec<ResolvedPlugin>,
    /// Namespaces bound during this resolution (not given in the request), for the caller
    /// to record so the next resolution uses the same registry.
    pub inferred_bindings: BTreeMap<VendorId, RegistryName>,
    /// Facts worth showing the user, such as a plugin offered by several registries.
    pub notices: Vec<Notice>,
}

impl Resolution {
    /// The chosen release of `id`, if it is part of the solution.
    pub fn get(&self, id: &PluginId) -> Option<&ResolvedPlugin> {
        self.plugins.iter().find(|p| &p.id == id)
    }
}

/// Why no set of releases satisfies a request, in sentences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The derivation, one sentence per line, ending with the conclusion.
    pub explanation: String,
    /// What the user can change.
    pub hints: Vec<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no set of plugin releases satisfies the request:\n{}", self.explanation)?;
        for hint in &self.hints {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Why resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No solution; the explanation says why.
    #[error("{0}")]
    Conflict(Box<Conflict>),
    /// An index doc could not be obtained or verified.
    #[error("could not get the index doc of {id} from registry `{registry}`: {source}")]
    Source {
        /// The registry asked.
        registry: RegistryName,
        /// The plugin.
        id: PluginId,
        /// What went wrong.
        source: SourceError,
    },
    /// A registry answered with the doc of another plugin.
    #[error(
        "registry `{registry}` answered the request for the index doc of {requested} with the doc of {served}; \
         the registry is broken or tampered with, report it to its operator"
    )]
    WrongDoc {
        /// The registry asked.
        registry: RegistryName,
        /// The plugin asked for.
        requested: PluginId,
        /// The plugin the doc describes.
        served: PluginId,
    },
    /// A namespace is bound to a registry that is not configured.
    #[error(
        "namespace `{vendor}` is bound to registry `{registry}`, which is not configured; add that registry \
         or remove the binding"
    )]
    UnknownRegistry {
        /// The namespace.
        vendor: VendorId,
        /// The registry it is bound to.
        registry: RegistryName,
    },
    /// No registry is configured.
    #[error("no registry is configured; add one before installing plugins")]
    NoRegistry,
    /// The solver asked something it should not have; a bug in Trellis.
    #[error("internal resolver error ({what}); please report this bug")]
    Internal {
        /// What happened.
        what: String,
    },
}

/// Resolves `request` against the docs of `source`.
pub fn resolve<S: IndexSource>(request: &Request, source: &S) -> Result<Resolution, ResolveError> {
    let registries = &request.registries;
    if registries.priority.is_empty() {
        return Err(ResolveError::NoRegistry);
    }
    if let Some((vendor, registry)) = registries.bindings.iter().find(|(_, r)| !registries.priority.contains(r)) {
        return Err(ResolveError::UnknownRegistry { vendor: vendor.clone(), registry: registry.clone() });
    }
    let provider = Provider::new(request, source);
    provider.prefetch_roots();
    let selected = match pubgrub::resolve(&provider, Package::Root, root_version()) {
        Ok(selected) => selected,
        Err(PubGrubError::NoSolution(tree)) => {
            return Err(ResolveError::Conflict(Box::new(report::explain(&provider, &tree))));
        }
        Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(source),
    };
    let mut chosen: HashMap<PluginId, ResolvedPlugin> = HashMap::new();
    for (package, version) in selected {
        let Package::Plugin(id) = package else { continue };
        let lookup = provider.known(&id);
        let found = lookup.as_deref().and_then(|lookup| match lookup {
            Lookup::Found(entry) => entry.release(&version).map(|release| (entry.registry.clone(), release.clone())),
            Lookup::Missing { .. } => None,
        });
        let Some((registry, release)) = found else {
            return Err(ResolveError::Internal { what: format!("solution names unknown release {id} {version}") });
        };
        let requested = request.requirements.iter().any(|r| r.id == id);
        chosen.insert(id.clone(), ResolvedPlugin { id, version, registry, release, requested });
    }
    Ok(Resolution {
        plugins: install_order(chosen),
        inferred_bindings: provider.inferred.take(),
        notices: provider.notices.take(),
    })
}

/// Dependencies first; ties and cycles broken by plugin id, so the order is stable.
fn install_order(mut chosen: HashMap<PluginId, ResolvedPlugin>) -> Vec<ResolvedPlugin> {
    fn visit(
        id: &PluginId,
        chosen: &HashMap<PluginId, ResolvedPlugin>,
        seen: &mut HashSet<PluginId>,
        order: &mut Vec<PluginId>,
    ) {
        if !seen.insert(id.clone()) {
            return;
        }
        if let Some(plugin) = chosen.get(id) {
            let mut deps: Vec<&PluginId> = plugin.release.dependencies.iter().map(|d| &d.id).collect();
            deps.sort();
            for dep in deps {
                visit(dep, chosen, seen, order);
            }
            order.push(id.clone());
        }
    }
    let mut ids: Vec<PluginId> = chosen.keys().cloned().collect();
    ids.sort();
    let mut seen = HashSet::new();
    let mut order = Vec::with_capacity(ids.len());
    for id in &ids {
        visit(id, &chosen, &mut seen, &mut order);
    }
    order.into_iter().filter_map(|id| chosen.remove(&id)).collect()
}
