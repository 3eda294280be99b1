//! Conflict explanations in plain sentences.
//!
//! Owns the text a user reads when no set of releases satisfies a request: pubgrub's
//! derivation tree walked by its `DefaultStringReporter`, with our own
//! [`ReportFormatter`] choosing the words (the way uv and cargo report), followed by hints
//! that say what the user can change. The virtual host package reads as "this app
//! provides plugin API 1.4.0"; a plugin without usable release says why each release was
//! excluded (yanked, blocked with the reason, wrong platform, channel, pin, host app,
//! client version); a plugin missing from its namespace's registry says which other
//! registry offers it and why that copy is not used. It decides nothing: the facts come
//! from [`super::provider`].

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use pubgrub::{DefaultStringReporter, DerivationTree, Derived, External, Map, Ranges, ReportFormatter, Reporter, Term};
use semver::{Version, VersionReq};
use trellis_schema::id::PluginId;
use trellis_schema::plugin::Channel;

use super::Conflict;
use super::provider::{Exclusion, Lookup, Package, PluginEntry, Provider, Unavailable};
use super::ranges::{display_ranges, requirement_ranges};
use super::source::IndexSource;

type Tree = DerivationTree<Package, Ranges<Version>, Unavailable>;
type Ext = External<Package, Ranges<Version>, Unavailable>;
type Terms = Map<Package, Term<Ranges<Version>>>;

/// Most releases listed when saying which ones exist.
const LISTED_RELEASES: usize = 5;

/// Explains why `tree` has no solution.
pub(crate) fn explain<S: IndexSource>(provider: &Provider<'_, S>, tree: &Tree) -> Conflict {
    let mut tree = tree.clone();
    let formatter = Words { provider, mentioned: RefCell::default() };
    simplify(&formatter, &mut tree);
    let explanation = match &tree {
        // A single fact: pubgrub reports it bare; make it a sentence with the conclusion.
        DerivationTree::External(external) => {
            format!("Because {}, no set of releases satisfies your request.", formatter.format_external(external))
        }
        DerivationTree::Derived(_) => DefaultStringReporter::report_with_formatter(&tree, &formatter),
    };
    let hints = hints(provider, &tree, &formatter.mentioned.borrow());
    Conflict { explanation, hints }
}

/// Removes facts that say nothing a user can act on, the way uv does.
///
/// "X has no release in <the gaps between its releases>" is dropped, or folded into the
/// neighbouring "X depends on Y". A missing or unusable *dependency* is kept, because
/// that is the reason for the conflict.
fn simplify<S: IndexSource>(words: &Words<'_, '_, S>, tree: &mut Tree) {
    let DerivationTree::Derived(derived) = tree else { return };
    simplify(words, Arc::make_mut(&mut derived.cause1));
    simplify(words, Arc::make_mut(&mut derived.cause2));
    let replacement = match (&*derived.cause1, &*derived.cause2) {
        (DerivationTree::External(External::NoVersions(gap, gaps)), other)
        | (other, DerivationTree::External(External::NoVersions(gap, gaps))) => match other {
            DerivationTree::External(External::FromDependencyOf(p, set_p, dep, set_dep))
                if gap == p && publishes_none(words, gap, gaps) =>
            {
                DerivationTree::External(External::FromDependencyOf(
                    p.clone(),
                    set_p.union(gaps),
                    dep.clone(),
                    set_dep.clone(),
                ))
            }
            _ if is_gaps(words, gap, gaps) => other.clone(),
            _ => return,
        },
        _ => return,
    };
    *tree = replacement;
}

/// Whether `set` only covers versions between published releases of `package`: no
/// release is inside, and it is not a requirement someone wrote (those are worth saying:
/// "acme.a has no release matching >=2").
fn is_gaps<S: IndexSource>(words: &Words<'_, '_, S>, package: &Package, set: &Ranges<Version>) -> bool {
    publishes_none(words, package, set) && words.written(package, set).is_none()
}

/// Whether `package` is a plugin whose doc is known and has no release in `set`.
fn publishes_none<S: IndexSource>(words: &Words<'_, '_, S>, package: &Package, set: &Ranges<Version>) -> bool {
    let Package::Plugin(id) = package else { return false };
    let Some(lookup) = words.provider.known(id) else { return false };
    let Lookup::Found(entry) = &*lookup else { return false };
    !entry.doc.releases.iter().any(|r| set.contains(&r.version))
}

struct Words<'p, 'a, S: IndexSource> {
    provider: &'p Provider<'a, S>,
    /// Exclusions the explanation named, for the hints.
    mentioned: RefCell<Vec<(PluginId, Exclusion)>>,
}

/// `acme.clock`, `acme.clock 1.2.0`, `acme.clock >=1.0.0, <2.0.0`, `plugin API >=1.5.0`.
fn named(package: &Package, set: &Ranges<Version>) -> String {
    match package {
        Package::Root => "your request".to_owned(),
        _ if *set == Ranges::full() => package.to_string(),
        _ => format!("{package} {}", display_ranges(set)),
    }
}

/// Most versions listed one by one when naming the releases a statement is about.
const LISTED_VERSIONS: usize = 3;

pub(crate) fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn or_list(items: &[String]) -> String {
    match items {
        [init @ .., last] if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => list(items),
    }
}

fn versions(versions: &[&Version]) -> String {
    list(&versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
}

impl<S: IndexSource> Words<'_, '_, S> {
    fn api(&self) -> &Version {
        &self.provider.request().host.api_version
    }

    /// Published releases of `package` in `set`, oldest first, when its doc is known.
    fn published_in(&self, package: &Package, set: &Ranges<Version>) -> Option<(Vec<Version>, usize)> {
        let Package::Plugin(id) = package else { return None };
        let lookup = self.provider.known(id)?;
        let Lookup::Found(entry) = &*lookup else { return None };
        let mut all: Vec<Version> = entry.doc.releases.iter().map(|r| r.version.clone()).collect();
        all.sort_unstable();
        let total = all.len();
        all.retain(|v| set.contains(v));
        Some((all, total))
    }

    /// A plugin as the subject of a statement about some of its releases: the releases
    /// themselves when few (`acme.left 1.0.0 or 2.0.0`), no version when the statement
    /// holds for every release, else the set simplified against what is published.
    fn subject(&self, package: &Package, set: &Ranges<Version>) -> String {
        match self.published_in(package, set) {
            Some((inside, total)) if !inside.is_empty() => {
                if inside.len() == total {
                    package.to_string()
                } else if inside.len() <= LISTED_VERSIONS {
                    let shown: Vec<String> = inside.iter().map(|v| v.to_string()).collect();
                    format!("{package} {}", or_list(&shown))
                } else {
                    format!("{package} {}", display_ranges(&set.simplify(inside.iter())))
                }
            }
            _ => named(package, set),
        }
    }

    /// The requirement on `dep` as the request or a known release wrote it, when it
    /// denotes exactly `set`: `acme.core ^1` reads better than `>=1.0.0, <2.0.0`.
    fn written(&self, dep: &Package, set: &Ranges<Version>) -> Option<VersionReq> {
        if *set == Ranges::full() {
            return None;
        }
        let same = |req: &&VersionReq| requirement_ranges(req) == *set;
        match dep {
            Package::Root => None,
            Package::Host => self.provider.known_all().iter().find_map(|lookup| match &**lookup {
                Lookup::Found(entry) => {
                    entry.doc.releases.iter().map(|r| &r.host.api_version_requirement).find(same).cloned()
                }
                Lookup::Missing { .. } => None,
            }),
            Package::Plugin(id) => {
                let request = self.provider.request();
                let from_request = request.requirements.iter().filter(|r| &r.id == id).map(|r| &r.version).find(same);
                from_request.cloned().or_else(|| {
                    self.provider.known_all().iter().find_map(|lookup| match &**lookup {
                        Lookup::Found(entry) => entry
                            .doc
                            .releases
                            .iter()
                            .flat_map(|r| &r.dependencies)
                            .filter(|d| d.id == *id)
                            .map(|d| &d.version_requirement)
                            .find(same)
                            .cloned(),
                        Lookup::Missing { .. } => None,
                    })
                })
            }
        }
    }

    /// A package and a set of its versions, with the requirement as written if known.
    fn target(&self, dep: &Package, set: &Ranges<Version>) -> String {
        match self.written(dep, set) {
            Some(req) => format!("{dep} {req}"),
            None => named(dep, set),
        }
    }

    fn no_versions(&self, id: &PluginId, set: &Ranges<Version>) -> String {
        let Some(lookup) = self.provider.known(id) else {
            return format!("no release of {} is available", named(&Package::Plugin(id.clone()), set));
        };
        match &*lookup {
            Lookup::Missing { bound: Some(registry), elsewhere } if !elsewhere.is_empty() => format!(
                "{id} is not published in registry `{registry}`, which serves the `{}` namespace (registry {} offers \
                 a plugin with that id, which is never used in its place)",
                id.vendor(),
                list(&elsewhere.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>()),
            ),
            Lookup::Missing { bound: Some(registry), .. } => {
                format!("{id} is not published in registry `{registry}`, which serves the `{}` namespace", id.vendor())
            }
            Lookup::Missing { bound: None, .. } => format!("no configured registry publishes {id}"),
            Lookup::Found(entry) => self.unusable(id, set, entry),
        }
    }

    fn unusable(&self, id: &PluginId, set: &Ranges<Version>, entry: &PluginEntry) -> String {
        let mut published: Vec<&Version> = entry.doc.releases.iter().map(|r| &r.version).collect();
        published.sort_unstable_by(|a, b| b.cmp(a));
        let written = self.written(&Package::Plugin(id.clone()), set);
        let matching = match &written {
            _ if *set == Ranges::full() => String::new(),
            Some(req) => format!(" matching {req}"),
            None => format!(" matching {}", display_ranges(set)),
        };
        if !published.iter().any(|v| set.contains(*v)) {
            if published.is_empty() {
                return format!("{id} has no releases");
            }
            let shown: Vec<&Version> = published.iter().take(LISTED_RELEASES).copied().collect();
            let more = published.len() - shown.len();
            let tail = if more > 0 { format!(" and {more} older") } else { String::new() };
            let releases = if published.len() == 1 { "its only release is" } else { "its releases are" };
            return format!("{id} has no release{matching} ({releases} {}{tail})", versions(&shown));
        }
        let mut groups: Vec<(&Exclusion, Vec<&Version>)> = Vec::new();
        for (version, why) in entry.excluded.iter().filter(|(v, _)| set.contains(v)) {
            match groups.iter_mut().find(|(seen, _)| *seen == why) {
                Some((_, versions)) => versions.push(version),
                None => groups.push((why, vec![version])),
            }
        }
        self.mentioned.borrow_mut().extend(groups.iter().map(|(why, _)| (id.clone(), (*why).clone())));
        let mut reasons: Vec<String> = groups.iter().map(|(why, vs)| self.excluded(why, vs)).collect();
        if let Some(follows) = groups.iter().find_map(|(why, _)| match why {
            Exclusion::Channel { follows, .. } => Some(follows),
            _ => None,
        }) {
            reasons.push(format!("{id} follows the {follows} channel"));
        }
        // Releases outside the set are accounted for elsewhere in the explanation; naming
        // them reads better than the set between them (`<1.0.0 or >1.0.0`).
        let outside: Vec<String> = published.iter().filter(|v| !set.contains(**v)).map(|v| v.to_string()).collect();
        let which = match (&written, outside.len()) {
            (None, 1..=LISTED_RELEASES) => format!(" other than {}", list(&outside)),
            _ => matching,
        };
        format!("{id} has no usable release{which} ({})", reasons.join("; "))
    }

    fn excluded(&self, why: &Exclusion, vs: &[&Version]) -> String {
        let one = vs.len() == 1;
        let is = if one { "is" } else { "are" };
        let vs = versions(vs);
        let request = self.provider.request();
        match why {
            Exclusion::Blocked { severity, reason } => {
                format!("{vs} {is} blocked, severity {}: {reason}", format!("{severity:?}").to_lowercase())
            }
            Exclusion::NotPinned { pinned } => format!("{vs} {is} not the pinned version {pinned}"),
            Exclusion::Yanked => format!("{vs} {} yanked by the publisher", if one { "was" } else { "were" }),
            Exclusion::OtherHost { host } => format!("{vs} {is} made for the app `{host}`, not `{}`", request.host.id),
            Exclusion::Platform { supported } => {
                let supported: Vec<String> = supported.iter().map(|p| p.to_string()).collect();
                format!("{vs} {is} only for {}, not {}", list(&supported), request.platform)
            }
            Exclusion::Channel { release, .. } => {
                let article = match (one, release) {
                    (false, _) => "",
                    (true, Channel::Experimental) => "an ",
                    (true, _) => "a ",
                };
                let plural = if one { "" } else { "s" };
                format!("{vs} {is} {article}{release} release{plural}")
            }
            Exclusion::ClientTooOld { needs } => {
                let s = if one { "s" } else { "" };
                format!("{vs} need{s} Trellis {needs} or newer, this is {}", request.client_version)
            }
            Exclusion::PreRelease => {
                let what = if one { "a pre-release" } else { "pre-releases" };
                format!("{vs} {is} {what}, chosen only when asked for")
            }
        }
    }

    /// The requirements on `dep` written by the request (for the root) or by `p`'s
    /// releases in `set_p`, as `dep REQ` strings.
    fn requirements_on(&self, p: &Package, set_p: &Ranges<Version>, dep: &Package) -> Vec<String> {
        let mut written: Vec<String> = match (p, dep) {
            (Package::Root, Package::Plugin(id)) => self
                .provider
                .request()
                .requirements
                .iter()
                .filter(|r| &r.id == id)
                .map(|r| format!("{dep} {}", r.version))
                .collect(),
            (Package::Plugin(id), Package::Plugin(dep_id)) => match self.provider.known(id).as_deref() {
                Some(Lookup::Found(entry)) => entry
                    .doc
                    .releases
                    .iter()
                    .filter(|r| set_p.contains(&r.version))
                    .flat_map(|r| &r.dependencies)
                    .filter(|d| d.id == *dep_id)
                    .map(|d| format!("{dep} {}", d.version_requirement))
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        written.dedup();
        written
    }

    fn dependency(&self, p: &Package, set_p: &Ranges<Version>, dep: &Package, set_dep: &Ranges<Version>) -> String {
        if set_dep.is_empty() {
            let both = list(&self.requirements_on(p, set_p, dep));
            return match p {
                Package::Root => format!("you asked for {both}, which no single version satisfies"),
                _ => format!("{} asks for {both}, which no single version satisfies", self.subject(p, set_p)),
            };
        }
        let target = self.target(dep, set_dep);
        match (p, dep) {
            (Package::Root, Package::Host) => format!("your request needs {target}"),
            (Package::Root, _) => format!("you asked for {target}"),
            (_, Package::Host) => format!("{} needs {target}", self.subject(p, set_p)),
            _ => format!("{} depends on {target}", self.subject(p, set_p)),
        }
    }
}

impl<S: IndexSource> ReportFormatter<Package, Ranges<Version>, Unavailable> for Words<'_, '_, S> {
    type Output = String;

    fn format_external(&self, external: &Ext) -> String {
        match external {
            External::NotRoot(..) => "you asked for these plugins".to_owned(),
            External::NoVersions(Package::Host, set) => {
                format!("this app provides plugin API {}, not {}", self.api(), display_ranges(set))
            }
            External::NoVersions(Package::Plugin(id), set) => self.no_versions(id, set),
            External::NoVersions(Package::Root, _) => "your request cannot be met".to_owned(),
            External::FromDependencyOf(Package::Root, _, Package::Host, _) => {
                format!("this app provides plugin API {}", self.api())
            }
            External::FromDependencyOf(p, set_p, dep, set_dep) => self.dependency(p, set_p, dep, set_dep),
            External::Custom(package, set, why) => format!("{} cannot be used ({why})", named(package, set)),
        }
    }

    fn format_terms(&self, terms: &Terms) -> String {
        let terms: Vec<_> = terms.iter().collect();
        match terms.as_slice() {
            [] | [(Package::Root, Term::Positive(_))] => "no set of releases satisfies your request".to_owned(),
            [(Package::Host, Term::Positive(set))] => {
                format!("nothing requested works with plugin API {}", display_ranges(set))
            }
            [(package, Term::Positive(set))] => format!("{} cannot be used", self.subject(package, set)),
            [(package, Term::Negative(set))] => format!("{} is required", named(package, set)),
            [(p, Term::Positive(set_p)), (dep, Term::Negative(set_dep))]
            | [(dep, Term::Negative(set_dep)), (p, Term::Positive(set_p))] => self.dependency(p, set_p, dep, set_dep),
            // {P1, P2, not N1, not N2}: selecting P1 and P2 requires N1 or N2.
            many => {
                let mut users = Vec::new();
                let mut needed = Vec::new();
                for (package, term) in many {
                    match term {
                        Term::Positive(set) => users.push(self.subject(package, set)),
                        Term::Negative(set) => needed.push(self.target(package, set)),
                    }
                }
                match (users.is_empty(), needed.is_empty()) {
                    (_, true) => format!("{} cannot be used together", list(&users)),
                    (true, false) => format!("one of {} is required", or_list(&needed)),
                    (false, false) => {
                        let need = if users.len() == 1 { "needs" } else { "together need" };
                        format!("{} {need} {}", list(&users), or_list(&needed))
                    }
                }
            }
        }
    }

    fn explain_both_external(&self, external1: &Ext, external2: &Ext, current_terms: &Terms) -> String {
        format!(
            "Because {} and {}, {}.",
            self.format_external(external1),
            self.format_external(external2),
            self.format_terms(current_terms)
        )
    }

    fn explain_both_ref(
        &self,
        ref_id1: usize,
        derived1: &Derived<Package, Ranges<Version>, Unavailable>,
        ref_id2: usize,
        derived2: &Derived<Package, Ranges<Version>, Unavailable>,
        current_terms: &Terms,
    ) -> String {
        format!(
            "Because {} ({ref_id1}) and {} ({ref_id2}), {}.",
            self.format_terms(&derived1.terms),
            self.format_terms(&derived2.terms),
            self.format_terms(current_terms)
        )
    }

    fn explain_ref_and_external(
        &self,
        ref_id: usize,
        derived: &Derived<Package, Ranges<Version>, Unavailable>,
        external: &Ext,
        current_terms: &Terms,
    ) -> String {
        format!(
            "Because {} ({ref_id}) and {}, {}.",
            self.format_terms(&derived.terms),
            self.format_external(external),
            self.format_terms(current_terms)
        )
    }

    fn and_explain_external(&self, external: &Ext, current_terms: &Terms) -> String {
        format!("And because {}, {}.", self.format_external(external), self.format_terms(current_terms))
    }

    fn and_explain_ref(
        &self,
        ref_id: usize,
        derived: &Derived<Package, Ranges<Version>, Unavailable>,
        current_terms: &Terms,
    ) -> String {
        format!("And because {} ({ref_id}), {}.", self.format_terms(&derived.terms), self.format_terms(current_terms))
    }

    fn and_explain_prior_and_external(&self, prior_external: &Ext, external: &Ext, current_terms: &Terms) -> String {
        format!(
            "And because {} and {}, {}.",
            self.format_external(prior_external),
            self.format_external(external),
            self.format_terms(current_terms)
        )
    }
}

/// What the user can change, for what the explanation mentions.
fn hints<S: IndexSource>(provider: &Provider<'_, S>, tree: &Tree, mentioned: &[(PluginId, Exclusion)]) -> Vec<String> {
    let request = provider.request();
    let mut hints = Vec::new();
    let packages: BTreeSet<Package> = tree.packages().into_iter().cloned().collect();
    if packages.contains(&Package::Host) {
        hints.push(format!(
            "this app provides plugin API {}; a newer version of the app may support these plugins, or an older \
             release of the plugin may support this app",
            request.host.api_version
        ));
    }
    for package in &packages {
        let Package::Plugin(id) = package else { continue };
        if let Some(lookup) = provider.known(id)
            && let Lookup::Missing { bound: Some(registry), elsewhere } = &*lookup
            && !elsewhere.is_empty()
        {
            hints.push(format!(
                "the `{vendor}` namespace is bound to registry `{registry}`; Trellis never takes {id} from another \
                 registry on its own, because that is how dependency-confusion attacks work. If you trust {others} \
                 for this namespace, bind `{vendor}` to it explicitly",
                vendor = id.vendor(),
                others = list(&elsewhere.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>()),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (id, why) in mentioned {
        let hint = match why {
            Exclusion::NotPinned { pinned } => format!("{id} is pinned to {pinned}; unpin it to allow other versions"),
            Exclusion::Channel { follows, .. } => {
                let needed = mentioned
                    .iter()
                    .filter_map(|(other, why)| match why {
                        Exclusion::Channel { release, .. } if other == id => Some(*release),
                        _ => None,
                    })
                    .min()
                    .unwrap_or(Channel::Experimental);
                format!(
                    "following the {needed} channel for {id} (instead of {follows}) makes its {needed} releases eligible"
                )
            }
            Exclusion::ClientTooOld { needs } => {
                format!("updating Trellis to {needs} or newer makes more releases eligible")
            }
            Exclusion::PreRelease => {
                format!("a pre-release of {id} is installed when asked for by version (`{id}@VERSION`) or with --pre")
            }
            Exclusion::Blocked { .. }
            | Exclusion::Yanked
            | Exclusion::OtherHost { .. }
            | Exclusion::Platform { .. } => continue,
        };
        if seen.insert(hint.clone()) {
            hints.push(hint);
        }
    }
    hints
}
