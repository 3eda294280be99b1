//! The pubgrub [`DependencyProvider`] over lazily fetched index docs.
//!
//! Owns four decisions: which registry serves a plugin (namespace bindings, the
//! dependency-confusion rule), which releases of a plugin are candidates for this request
//! (platform, channel, yanked, blocklist, pins, host app, client version; every other
//! release is kept with its [`Exclusion`] so that [`super::report`] can say why), and in
//! which order candidates are tried (newest first, or the installed version when it is
//! kept), and which plugin is decided next (the requested plugins before their
//! dependencies, so the plugin the user asked for gets its newest workable release). It fetches a doc only when pubgrub reaches the plugin, through
//! [`IndexSource`], and hints at the docs it will need next. It does not explain
//! conflicts ([`super::report`]) nor order the result for installation ([`super`]).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use pubgrub::{Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics, Ranges};
use semver::Version;
use trellis_schema::blocklist::Severity;
use trellis_schema::id::{PluginId, VendorId};
use trellis_schema::index::{IndexDoc, IndexRelease};
use trellis_schema::plugin::{Channel, Platform};

use super::ResolveError;
use super::ranges::requirement_ranges;
use super::request::Request;
use super::source::{DocRequest, IndexSource};
use crate::registry_name::RegistryName;

/// A package in the solver's sense.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Package {
    /// The request itself, at version 0.0.0.
    Root,
    /// The host app; its only version is the plugin API version it provides.
    Host,
    /// A plugin.
    Plugin(PluginId),
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("your request"),
            Self::Host => f.write_str("plugin API"),
            Self::Plugin(id) => write!(f, "{id}"),
        }
    }
}

/// Why a published release is not a candidate for this request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exclusion {
    /// The blocklist names it.
    Blocked {
        /// Severity from the blocklist entry.
        severity: Severity,
        /// The reason from the blocklist entry.
        reason: String,
    },
    /// The user pinned another version.
    NotPinned {
        /// The pinned version.
        pinned: Version,
    },
    /// Withdrawn, and not the installed version.
    Yanked,
    /// Built for another host application.
    OtherHost {
        /// The host id the release targets.
        host: String,
    },
    /// No binaries for this platform.
    Platform {
        /// The platforms it supports.
        supported: Vec<Platform>,
    },
    /// Published on a channel the user does not follow for this plugin.
    Channel {
        /// The release's channel.
        release: Channel,
        /// The channel the user follows.
        follows: Channel,
    },
    /// Needs a newer Trellis client.
    ClientTooOld {
        /// The oldest client version it accepts.
        needs: Version,
    },
    /// A pre-release nobody asked for (see [`super::PreReleases`]).
    PreRelease,
}

/// Why a version cannot be used although its release is a candidate (pubgrub's
/// `Dependencies::Unavailable`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The release depends on its own plugin with a requirement it does not meet itself.
    DependsOnItself {
        /// The requirement, as published.
        requirement: String,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DependsOnItself { requirement } => {
                write!(f, "it depends on its own plugin at {requirement}, which it does not match")
            }
        }
    }
}

/// What the resolver knows about one plugin.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The bound registry serves it.
    Found(PluginEntry),
    /// No registry that may serve it does.
    Missing {
        /// The registry its namespace is bound to, if any.
        bound: Option<RegistryName>,
        /// Other registries that offer the same id, which are never used for it.
        elsewhere: Vec<RegistryName>,
    },
}

/// The releases of one plugin, sorted for this request.
#[derive(Debug)]
pub(crate) struct PluginEntry {
    /// The registry that served the doc.
    pub(crate) registry: RegistryName,
    /// The doc.
    pub(crate) doc: Arc<IndexDoc>,
    /// Candidate versions in the order they are tried.
    pub(crate) candidates: Vec<Version>,
    /// Releases that are not candidates, newest first, with the reason.
    pub(crate) excluded: Vec<(Version, Exclusion)>,
}

impl PluginEntry {
    pub(crate) fn release(&self, version: &Version) -> Option<&IndexRelease> {
        self.doc.release(version)
    }
}

/// Why `request` would not install `release` of `id`, or `None` when it is eligible.
///
/// The same rule the resolver applies, for callers that list releases (`info ID`).
/// Checked in this order: blocklist, pin, yanked (unless installed), host app, platform,
/// channel, client version, pre-release; the first reason found is returned.
pub fn exclusion(request: &Request, id: &PluginId, release: &IndexRelease) -> Option<Exclusion> {
    exclusion_with(request, id, release, false)
}

/// [`exclusion`], where `named` says a dependency requirement met so far names a
/// pre-release of `id`.
fn exclusion_with(request: &Request, id: &PluginId, release: &IndexRelease, named: bool) -> Option<Exclusion> {
    let version = &release.version;
    if let Some(entry) = request.blocklist.find(id, version, Some(&release.package.sha256)) {
        return Some(Exclusion::Blocked { severity: entry.severity, reason: entry.reason.clone() });
    }
    if let Some(pinned) = request.pins.get(id)
        && pinned != version
    {
        return Some(Exclusion::NotPinned { pinned: pinned.clone() });
    }
    if release.yanked && request.installed.get(id) != Some(version) {
        return Some(Exclusion::Yanked);
    }
    if release.host.id != request.host.id {
        return Some(Exclusion::OtherHost { host: release.host.id.clone() });
    }
    if !release.platforms.iter().any(|p| p.runs_on(request.platform)) {
        return Some(Exclusion::Platform { supported: release.platforms.clone() });
    }
    let follows = request.channel_of(id);
    if !follows.accepts(release.channel) {
        return Some(Exclusion::Channel { release: release.channel, follows });
    }
    if let Some(needs) = &release.min_client_version
        && *needs > request.client_version
    {
        return Some(Exclusion::ClientTooOld { needs: needs.clone() });
    }
    if !version.pre.is_empty() && !named && !request.admits_prerelease(id, version) {
        return Some(Exclusion::PreRelease);
    }
    None
}

/// A notable fact found while resolving that is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Several registries offer plugins of a namespace that was not bound yet; the first
    /// in priority order was bound, the others are ignored for it from now on.
    AlsoOfferedBy {
        /// The plugin that was looked up.
        id: PluginId,
        /// The registry the namespace was bound to.
        bound: RegistryName,
        /// The registries whose copy is ignored.
        ignored: Vec<RegistryName>,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlsoOfferedBy { id, bound, ignored } => {
                let ignored: Vec<String> = ignored.iter().map(|r| format!("`{r}`")).collect();
                write!(
                    f,
                    "{id} is offered by registry `{bound}` and also by {}; namespace `{}` is now bound to `{bound}` and \
                     the other copies are ignored",
                    super::report::list(&ignored),
                    id.vendor()
                )
            }
        }
    }
}

/// The provider: a request, a source, and what was learnt so far.
pub(crate) struct Provider<'a, S: IndexSource> {
    request: &'a Request,
    source: &'a S,
    lookups: RefCell<HashMap<PluginId, Rc<Lookup>>>,
    bindings: RefCell<BTreeMap<VendorId, RegistryName>>,
    pub(crate) inferred: RefCell<BTreeMap<VendorId, RegistryName>>,
    pub(crate) notices: RefCell<Vec<Notice>>,
    prefetched: RefCell<HashSet<DocRequest>>,
    /// Plugins a dependency requirement met so far names a pre-release of.
    named_prereleases: RefCell<HashSet<PluginId>>,
    /// The requirements met so far on each plugin (the request's, and those of the
    /// releases whose dependencies were asked for): the release whose dependencies a
    /// lookup hints is the newest they all allow.
    wanted: RefCell<HashMap<PluginId, Vec<semver::VersionReq>>>,
}

/// The version of the root package.
pub(crate) fn root_version() -> Version {
    Version::new(0, 0, 0)
}

impl<'a, S: IndexSource> Provider<'a, S> {
    pub(crate) fn new(request: &'a Request, source: &'a S) -> Self {
        Self {
            request,
            source,
            lookups: RefCell::default(),
            bindings: RefCell::new(request.registries.bindings.clone()),
            inferred: RefCell::default(),
            notices: RefCell::default(),
            prefetched: RefCell::default(),
            named_prereleases: RefCell::default(),
            wanted: RefCell::new(request.requirements.iter().fold(HashMap::new(), |mut wanted, r| {
                wanted.entry(r.id.clone()).or_insert_with(Vec::new).push(r.version.clone());
                wanted
            })),
        }
    }

    pub(crate) fn request(&self) -> &Request {
        self.request
    }

    /// What is known about `id`, if it was looked up.
    pub(crate) fn known(&self, id: &PluginId) -> Option<Rc<Lookup>> {
        self.lookups.borrow().get(id).cloned()
    }

    /// Everything looked up so far, in plugin id order (so explanations are stable).
    pub(crate) fn known_all(&self) -> Vec<Rc<Lookup>> {
        let lookups = self.lookups.borrow();
        let mut known: Vec<(&PluginId, &Rc<Lookup>)> = lookups.iter().collect();
        known.sort_unstable_by(|a, b| a.0.cmp(b.0));
        known.into_iter().map(|(_, lookup)| Rc::clone(lookup)).collect()
    }

    /// Hints the source at the root requirements' docs.
    pub(crate) fn prefetch_roots(&self) {
        let ids: Vec<PluginId> = self.request.requirements.iter().map(|r| r.id.clone()).collect();
        self.prefetch(ids.iter());
    }

    fn prefetch<'i>(&self, ids: impl Iterator<Item = &'i PluginId>) {
        let lookups = self.lookups.borrow();
        let bindings = self.bindings.borrow();
        let mut prefetched = self.prefetched.borrow_mut();
        let mut wanted = Vec::new();
        for id in ids.filter(|id| !lookups.contains_key(*id)) {
            let registries: Vec<&RegistryName> = match bindings.get(&id.vendor_id()) {
                Some(registry) => vec![registry],
                None => self.request.registries.priority.iter().collect(),
            };
            for registry in registries {
                let doc = DocRequest { registry: registry.clone(), id: id.clone() };
                if prefetched.insert(doc.clone()) {
                    wanted.push(doc);
                }
            }
        }
        if !wanted.is_empty() {
            self.source.prefetch(&wanted);
        }
    }

    fn fetch(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, ResolveError> {
        let doc = self.source.index_doc(registry, id).map_err(|source| ResolveError::Source {
            registry: registry.clone(),
            id: id.clone(),
            source,
        })?;
        match doc {
            Some(doc) if doc.id != *id => Err(ResolveError::WrongDoc {
                registry: registry.clone(),
                requested: id.clone(),
                served: doc.id.clone(),
            }),
            other => Ok(other),
        }
    }

    /// Registries other than `bound` that serve `id`, asked only to explain a failure or
    /// a notice: a registry that cannot answer is left out rather than failing
    /// resolution, because its answer would not change which registry serves `id`.
    fn elsewhere<'r>(
        &self,
        bound: &RegistryName,
        id: &PluginId,
        registries: impl Iterator<Item = &'r RegistryName>,
    ) -> Vec<RegistryName> {
        registries
            .filter(|r| *r != bound)
            .filter(|registry| match self.fetch(registry, id) {
                Ok(doc) => doc.is_some(),
                Err(err) => {
                    tracing::debug!(%registry, %id, %err, "skipping a registry that cannot say whether it offers the plugin");
                    false
                }
            })
            .cloned()
            .collect()
    }

    /// Looks `id` up once: binds its namespace if needed, fetches its doc, sorts its
    /// releases into candidates and exclusions, and hints at its likely dependencies.
    pub(crate) fn lookup(&self, id: &PluginId) -> Result<Rc<Lookup>, ResolveError> {
        if let Some(known) = self.known(id) {
            return Ok(known);
        }
        let vendor = id.vendor_id();
        let bound = self.bindings.borrow().get(&vendor).cloned();
        let lookup = match bound {
            Some(registry) => match self.fetch(&registry, id)? {
                Some(doc) => Lookup::Found(self.entry(registry, doc)),
                None => {
                    let elsewhere = self.elsewhere(&registry, id, self.request.registries.priority.iter());
                    Lookup::Missing { elsewhere, bound: Some(registry) }
                }
            },
            None => {
                // The first registry in priority order that serves the plugin gets the
                // namespace, so every registry before it must answer (fail closed); the
                // ones after it are only asked for the notice.
                let mut registries = self.request.registries.priority.iter();
                let mut first = None;
                for registry in registries.by_ref() {
                    if let Some(doc) = self.fetch(registry, id)? {
                        first = Some((registry.clone(), doc));
                        break;
                    }
                }
                match first {
                    None => Lookup::Missing { bound: None, elsewhere: Vec::new() },
                    Some((registry, doc)) => {
                        let ignored = self.elsewhere(&registry, id, registries);
                        if !ignored.is_empty() {
                            self.notices.borrow_mut().push(Notice::AlsoOfferedBy {
                                id: id.clone(),
                                bound: registry.clone(),
                                ignored,
                            });
                        }
                        tracing::debug!(vendor = %vendor, registry = %registry, "bound namespace to the first registry serving it");
                        self.bindings.borrow_mut().insert(vendor.clone(), registry.clone());
                        self.inferred.borrow_mut().insert(vendor, registry.clone());
                        Lookup::Found(self.entry(registry, doc))
                    }
                }
            }
        };
        let lookup = Rc::new(lookup);
        self.lookups.borrow_mut().insert(id.clone(), Rc::clone(&lookup));
        // The dependencies of the release the solver most likely picks: the newest
        // candidate every requirement met so far allows (`app@^1` whose 2.0.0 needs
        // other plugins than 1.x: 1.x's), else the newest (a conflict to report).
        if let Lookup::Found(entry) = &*lookup {
            let wanted = self.wanted.borrow();
            let allowed = |v: &&Version| wanted.get(id).is_none_or(|reqs| reqs.iter().all(|r| r.matches(v)));
            let likely = entry.candidates.iter().find(allowed).or_else(|| entry.candidates.first());
            if let Some(release) = likely.and_then(|v| entry.release(v)) {
                drop(wanted);
                self.prefetch(release.dependencies.iter().map(|d| &d.id));
            }
        }
        Ok(lookup)
    }

    fn entry(&self, registry: RegistryName, doc: Arc<IndexDoc>) -> PluginEntry {
        let id = &doc.id;
        let mut candidates = Vec::new();
        let mut excluded = Vec::new();
        let named = self.named_prereleases.borrow().contains(id);
        for release in &doc.releases {
            match exclusion_with(self.request, id, release, named) {
                Some(why) => excluded.push((release.version.clone(), why)),
                None => candidates.push(release.version.clone()),
            }
        }
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        if self.request.upgrade.keeps(id)
            && let Some(installed) = self.request.installed.get(id)
            && let Some(at) = candidates.iter().position(|v| v == installed)
        {
            let kept = candidates.remove(at);
            candidates.insert(0, kept);
        }
        excluded.sort_by(|a, b| b.0.cmp(&a.0));
        PluginEntry { registry, doc, candidates, excluded }
    }

    fn dependencies_of_root(&self) -> DependencyConstraints<Package, Ranges<Version>> {
        let mut deps = Vec::with_capacity(self.request.requirements.len() + 1);
        deps.push((Package::Host, Ranges::singleton(self.request.host.api_version.clone())));
        for requirement in &self.request.requirements {
            add(&mut deps, Package::Plugin(requirement.id.clone()), requirement_ranges(&requirement.version));
        }
        deps.into_iter().collect()
    }
}

/// Adds a dependency, intersecting with an earlier one on the same package.
fn add(deps: &mut Vec<(Package, Ranges<Version>)>, package: Package, set: Ranges<Version>) {
    match deps.iter_mut().find(|(p, _)| *p == package) {
        Some((_, earlier)) => *earlier = earlier.intersection(&set),
        None => deps.push((package, set)),
    }
}

impl<S: IndexSource> DependencyProvider for Provider<'_, S> {
    type P = Package;
    type V = Version;
    type VS = Ranges<Version>;
    type M = Unavailable;
    type Err = ResolveError;
    type Priority = (u8, bool, u32, Reverse<usize>);

    /// Root and host first; then the requested plugins (the request's requirements), so
    /// each gets its newest workable release before a dependency's choice can rule it
    /// out (as uv decides direct requirements first); within each group, plugins with
    /// more conflicts, then with fewer candidates.
    fn prioritize(
        &self,
        package: &Package,
        range: &Ranges<Version>,
        statistics: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let Package::Plugin(id) = package else {
            return (2, false, 0, Reverse(0));
        };
        // A lookup error surfaces from `choose_version`, which this priority makes next.
        let count = match self.lookup(id).as_deref() {
            Ok(Lookup::Found(entry)) => entry.candidates.iter().filter(|v| range.contains(v)).count(),
            Ok(Lookup::Missing { .. }) | Err(_) => 0,
        };
        let requested = self.request.requirements.iter().any(|r| r.id == *id);
        (1, requested, statistics.conflict_count(), Reverse(count))
    }

    fn choose_version(&self, package: &Package, range: &Ranges<Version>) -> Result<Option<Version>, ResolveError> {
        Ok(match package {
            Package::Root => Some(root_version()),
            Package::Host => Some(self.request.host.api_version.clone()).filter(|v| range.contains(v)),
            Package::Plugin(id) => match &*self.lookup(id)? {
                Lookup::Found(entry) => entry.candidates.iter().find(|v| range.contains(v)).cloned(),
                Lookup::Missing { .. } => None,
            },
        })
    }

    fn get_dependencies(
        &self,
        package: &Package,
        version: &Version,
    ) -> Result<Dependencies<Package, Ranges<Version>, Unavailable>, ResolveError> {
        let id = match package {
            Package::Root => return Ok(Dependencies::Available(self.dependencies_of_root())),
            Package::Host => return Ok(Dependencies::Available(DependencyConstraints::default())),
            Package::Plugin(id) => id,
        };
        let lookup = self.lookup(id)?;
        let release = match &*lookup {
            Lookup::Found(entry) => entry.release(version),
            Lookup::Missing { .. } => None,
        };
        let Some(release) = release else {
            // pubgrub only asks about versions `choose_version` returned.
            return Err(ResolveError::Internal { what: format!("dependencies of unknown release {id} {version}") });
        };
        // pubgrub looks each dependency up next, one after another (its priority needs
        // the candidates): hint them all first, so the source fetches their docs
        // together. The hint at lookup covered the newest release's dependencies,
        // which are not these when an older release was chosen (`app@^1` whose 2.0.0
        // needs nothing).
        {
            let mut wanted = self.wanted.borrow_mut();
            for dependency in &release.dependencies {
                wanted.entry(dependency.id.clone()).or_default().push(dependency.version_requirement.clone());
            }
        }
        self.prefetch(release.dependencies.iter().map(|d| &d.id));
        let mut deps = Vec::with_capacity(release.dependencies.len() + 1);
        add(&mut deps, Package::Host, requirement_ranges(&release.host.api_version_requirement));
        for dependency in &release.dependencies {
            if super::request::names_prerelease(&dependency.version_requirement) {
                // Read when the dependency is first looked up, which pubgrub does after
                // this (a plugin already looked up keeps its candidates).
                self.named_prereleases.borrow_mut().insert(dependency.id.clone());
            }
            let set = requirement_ranges(&dependency.version_requirement);
            if dependency.id == *id {
                if set.contains(version) {
                    continue;
                }
                return Ok(Dependencies::Unavailable(Unavailable::DependsOnItself {
                    requirement: dependency.version_requirement.to_string(),
                }));
            }
            add(&mut deps, Package::Plugin(dependency.id.clone()), set);
        }
        Ok(Dependencies::Available(deps.into_iter().collect()))
    }
}
