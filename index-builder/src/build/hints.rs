//! Prefetch hints: the dependency closure each index doc names, so that a client
//! fetches a whole graph in two waves instead of one per level.
//!
//! Owns [`compute`]: for every plugin this build writes a doc for, the plugins the
//! dependency closure of its likely release reaches
//! ([`trellis_schema::index::likely_release`] with no requirement on it, each deeper
//! plugin under the requirements met on the way, the rule the client's prefetch
//! follows), breadth first (nearest first), at most [`PREFETCH_MAX`], never the plugin
//! itself ([`IndexDoc::prefetch`]). The closure runs through the plugins of this build
//! as they are now and, in an incremental build, through the docs the site publishes
//! for the others (read under the SHA-256 their bins list, each once, a level of all
//! the walks at a time).
//!
//! A hint is advice about what to fetch, not what to install; it is made when its doc
//! is written and goes stale when a dependency's closure changes later (the client
//! then pays a round trip for what the hint missed). So nothing here fails a build: a
//! published doc that cannot be read (gone, altered, unparsable: `verify` reports
//! those) ends the walk there, named by the hint, what lies beyond it not.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use semver::VersionReq;
use trellis_schema::PluginId;
use trellis_schema::index::{IndexDoc, PREFETCH_MAX, likely_among, likely_release};
use trellis_schema::plugin::Dependency;

use super::previous::PreviousSite;
use crate::release::PluginInput;

/// What computing the hints took (for benchmarks and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HintsWork {
    /// Published index docs read (an incremental build's dependencies outside it).
    pub docs_read: usize,
    /// Wall time, milliseconds.
    pub millis: u64,
}

/// The hint of every plugin of a build.
#[derive(Debug, Default)]
pub(super) struct Hints {
    by_plugin: HashMap<PluginId, Vec<PluginId>>,
    pub(super) work: HintsWork,
}

impl Hints {
    /// The hint of `id` (empty when its likely release depends on nothing).
    pub(super) fn of(&self, id: &PluginId) -> Vec<PluginId> {
        self.by_plugin.get(id).cloned().unwrap_or_default()
    }
}

/// A plugin the walks go through.
enum Node<'a> {
    /// Built now: its releases as this build publishes them.
    Built(&'a PluginInput),
    /// Its doc as a prepared build made it (what `sign-prepared` checks).
    Prepared(&'a IndexDoc),
    /// Published by the site and not part of this build.
    Published(IndexDoc),
    /// Not in this build, and its published doc could not be read (or the site does
    /// not list it): the walk ends there.
    Unknown,
}

impl Node<'_> {
    /// The dependencies of the release a client's prefetch follows under `wanted`.
    fn dependencies(&self, wanted: &[VersionReq]) -> &[Dependency] {
        match self {
            Node::Built(plugin) => {
                likely_among(&plugin.releases, |r| (&r.manifest.version, r.manifest.channel, r.yanked), wanted)
                    .map_or(&[], |r| &r.manifest.dependencies)
            }
            Node::Prepared(doc) => likely_release(doc, wanted).map_or(&[], |r| &r.dependencies),
            Node::Published(doc) => likely_release(doc, wanted).map_or(&[], |r| &r.dependencies),
            Node::Unknown => &[],
        }
    }
}

/// One plugin's walk: the plugins met (its hint), the requirements met on each, and
/// the level it is at.
struct Walk {
    root: PluginId,
    hint: Vec<PluginId>,
    seen: HashSet<PluginId>,
    wanted: HashMap<PluginId, Vec<VersionReq>>,
    level: Vec<PluginId>,
}

impl Walk {
    fn new(root: &PluginId) -> Self {
        Self {
            root: root.clone(),
            hint: Vec::new(),
            seen: HashSet::from([root.clone()]),
            wanted: HashMap::new(),
            level: vec![root.clone()],
        }
    }

    /// Goes one level down: the dependencies of the level's likely releases not met
    /// before, in order, until the hint is full.
    fn step(&mut self, nodes: &HashMap<PluginId, Node<'_>>) {
        let mut next = Vec::new();
        for id in std::mem::take(&mut self.level) {
            let wanted = self.wanted.get(&id).map_or(&[][..], Vec::as_slice);
            let dependencies = nodes.get(&id).map_or(&[][..], |node| node.dependencies(wanted));
            for dependency in dependencies {
                self.wanted.entry(dependency.id.clone()).or_default().push(dependency.version_requirement.clone());
                if self.hint.len() < PREFETCH_MAX && self.seen.insert(dependency.id.clone()) {
                    self.hint.push(dependency.id.clone());
                    next.push(dependency.id.clone());
                }
            }
        }
        self.level = next;
    }
}

/// The hint of every plugin in `plugins`, walking through the docs `previous`
/// publishes (hash bins of `bin_bits`) for the plugins outside the build.
pub(super) fn compute(plugins: &[PluginInput], previous: Option<&PreviousSite>, bin_bits: u32) -> Hints {
    walk(plugins.iter().map(|p| (p.id.clone(), Node::Built(p))).collect(), previous, bin_bits)
}

/// The hint a build makes for each of `docs`, the docs of a prepared build, walking
/// through them and the docs `previous` publishes for the other plugins: what
/// `sign-prepared` compares each doc's hint with.
pub(super) fn of_prepared<'a>(
    docs: impl Iterator<Item = &'a IndexDoc>,
    previous: &PreviousSite,
    bin_bits: u32,
) -> Hints {
    walk(docs.map(|doc| (doc.id.clone(), Node::Prepared(doc))).collect(), Some(previous), bin_bits)
}

/// The hint of every plugin of `nodes`, which it starts from.
fn walk(mut nodes: HashMap<PluginId, Node<'_>>, previous: Option<&PreviousSite>, bin_bits: u32) -> Hints {
    let started = std::time::Instant::now();
    let mut walks: Vec<Walk> = nodes.keys().map(Walk::new).collect();
    let mut docs_read = 0;
    while walks.iter().any(|w| !w.level.is_empty()) {
        // The published docs this level needs, read together.
        let missing: HashSet<&PluginId> =
            walks.iter().flat_map(|w| &w.level).filter(|id| !nodes.contains_key(*id)).collect();
        let missing: Vec<PluginId> = missing.into_iter().cloned().collect();
        let read = read_published(previous, &missing, bin_bits);
        docs_read += read.iter().filter(|(_, node)| matches!(node, Node::Published(_))).count();
        nodes.extend(read);
        walks.par_iter_mut().for_each(|walk| walk.step(&nodes));
    }
    let by_plugin = walks.into_iter().filter(|w| !w.hint.is_empty()).map(|w| (w.root, w.hint)).collect();
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Hints { by_plugin, work: HintsWork { docs_read, millis } }
}

/// The published docs of `ids`, each [`Node::Unknown`] where it cannot be read.
fn read_published<'a>(previous: Option<&PreviousSite>, ids: &[PluginId], bin_bits: u32) -> Vec<(PluginId, Node<'a>)> {
    let unknown = || ids.iter().map(|id| (id.clone(), Node::Unknown)).collect();
    let Some(previous) = previous.filter(|_| !ids.is_empty()) else { return unknown() };
    let listed = match previous.published_docs_of(ids.iter(), bin_bits) {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "prefetch hints: the published bins could not be read; the hints end there");
            return unknown();
        }
    };
    ids.par_iter()
        .map(|id| {
            let Some(sha256) = listed.get(id) else { return (id.clone(), Node::Unknown) };
            match previous.index_doc(id, sha256) {
                Ok(doc) => (id.clone(), Node::Published(doc)),
                Err(error) => {
                    tracing::warn!(plugin = %id, %error, "prefetch hints: a published index doc could not be read; the hints end there");
                    (id.clone(), Node::Unknown)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;
    use trellis_schema::plugin::Channel;

    use super::*;
    use crate::release::ReleaseInput;
    use crate::synth::{SynthPlugin, SynthRelease, plugin_input};

    fn id(name: &str) -> PluginId {
        format!("acme.{name}").parse().unwrap()
    }

    fn release(version: &str, dependencies: &[(&str, &str)]) -> SynthRelease {
        SynthRelease {
            version: version.parse().unwrap(),
            channel: Channel::Stable,
            dependencies: (dependencies.iter())
                .map(|(name, req)| Dependency { id: id(name), version_requirement: req.parse().unwrap() })
                .collect(),
            yanked: false,
        }
    }

    fn plugin(name: &str, releases: Vec<SynthRelease>) -> PluginInput {
        plugin_input(SynthPlugin { id: id(name), releases })
    }

    fn hint(hints: &Hints, name: &str) -> Vec<String> {
        hints.of(&id(name)).iter().map(|id| id.as_str().trim_start_matches("acme.").to_owned()).collect()
    }

    #[test]
    fn a_hint_names_the_closure_nearest_first_without_the_plugin_itself() {
        let plugins = vec![
            plugin("app", vec![release("1.0.0", &[("ui", "^1"), ("net", "^1")])]),
            plugin("ui", vec![release("1.0.0", &[("gfx", "^1"), ("app", "*")])]),
            plugin("net", vec![release("1.0.0", &[("tls", "^1")])]),
            plugin("gfx", vec![release("1.0.0", &[("net", "^1")])]),
            plugin("tls", vec![release("1.0.0", &[])]),
        ];
        let hints = compute(&plugins, None, 2);
        assert_eq!(hint(&hints, "app"), ["ui", "net", "gfx", "tls"]);
        assert_eq!(hint(&hints, "ui"), ["gfx", "app", "net", "tls"]);
        assert_eq!(hint(&hints, "gfx"), ["net", "tls"]);
        assert_eq!(hint(&hints, "tls"), Vec::<String>::new());
        assert_eq!(hints.work.docs_read, 0);
    }

    #[test]
    fn a_hint_follows_the_likely_release_under_the_requirements_met_on_the_way() {
        let mut beta = release("3.0.0-beta.1", &[("beta", "*")]);
        beta.channel = Channel::Beta;
        let mut yanked = release("2.0.0", &[("yanked", "*")]);
        yanked.yanked = true;
        let plugins = vec![
            plugin("app", vec![release("1.0.0", &[("old", "*")]), release("1.1.0", &[("lib", "^1")]), yanked, beta]),
            plugin("lib", vec![release("1.0.0", &[("one", "*")]), release("2.0.0", &[("two", "*")])]),
        ];
        let hints = compute(&plugins, None, 2);
        // 1.1.0: the newest stable release not yanked; lib under ^1: 1.0.0.
        assert_eq!(hint(&hints, "app"), ["lib", "one"]);
        // Without a requirement on it, lib's newest.
        assert_eq!(hint(&hints, "lib"), ["two"]);
    }

    #[test]
    fn a_hint_stops_at_the_most_a_client_reads() {
        let plugins: Vec<PluginInput> = (0..PREFETCH_MAX + 10)
            .map(|n| {
                let next = format!("p{}", n + 1);
                plugin(&format!("p{n}"), vec![release("1.0.0", &[(next.as_str(), "*")])])
            })
            .collect();
        let hints = compute(&plugins, None, 2);
        let expected: Vec<String> = (1..=PREFETCH_MAX).map(|n| format!("p{n}")).collect();
        assert_eq!(hint(&hints, "p0"), expected);
    }

    /// The newest stable release not yanked among `among`, else the newest not yanked.
    fn pick<'r>(among: &[&'r ReleaseInput]) -> Option<&'r ReleaseInput> {
        let live: Vec<&ReleaseInput> = among.iter().copied().filter(|r| !r.yanked).collect();
        let stable = live.iter().filter(|r| r.manifest.channel == Channel::Stable && r.manifest.version.pre.is_empty());
        let newest = |r: &&&ReleaseInput| r.manifest.version.clone();
        stable.max_by_key(newest).or_else(|| live.iter().max_by_key(newest)).copied()
    }

    /// The hint as a client's breadth-first prefetch would meet the plugins, one
    /// queue, walked for `root` alone.
    fn reference(plugins: &[PluginInput], root: &PluginId) -> Vec<PluginId> {
        let by_id: HashMap<&PluginId, &PluginInput> = plugins.iter().map(|p| (&p.id, p)).collect();
        let mut wanted: HashMap<PluginId, Vec<VersionReq>> = HashMap::new();
        let (mut seen, mut hint) = (HashSet::from([root.clone()]), Vec::new());
        let mut queue = VecDeque::from([root.clone()]);
        while let Some(id) = queue.pop_front() {
            let Some(plugin) = by_id.get(&id) else { continue };
            let reqs = wanted.get(&id).cloned().unwrap_or_default();
            let allowed: Vec<&ReleaseInput> =
                plugin.releases.iter().filter(|r| reqs.iter().all(|q| q.matches(&r.manifest.version))).collect();
            let every: Vec<&ReleaseInput> = plugin.releases.iter().collect();
            let Some(release) = pick(&allowed).or_else(|| pick(&every)) else { continue };
            for dependency in &release.manifest.dependencies {
                wanted.entry(dependency.id.clone()).or_default().push(dependency.version_requirement.clone());
                if hint.len() < PREFETCH_MAX && seen.insert(dependency.id.clone()) {
                    hint.push(dependency.id.clone());
                    queue.push_back(dependency.id.clone());
                }
            }
        }
        hint
    }

    fn graph() -> impl Strategy<Value = Vec<PluginInput>> {
        let release = (0u64..4, any::<bool>(), any::<bool>(), prop::collection::vec((0usize..12, 0u64..4), 0..4));
        prop::collection::vec(prop::collection::vec(release, 1..4), 12).prop_map(|plugins| {
            (plugins.into_iter().enumerate())
                .map(|(n, releases)| {
                    let mut releases: Vec<SynthRelease> = (releases.into_iter().enumerate())
                        .map(|(k, (major, beta, yanked, dependencies))| SynthRelease {
                            version: semver::Version::new(major, k as u64, 0),
                            channel: if beta { Channel::Beta } else { Channel::Stable },
                            dependencies: (dependencies.into_iter())
                                .map(|(to, major)| Dependency {
                                    id: id(&format!("p{to}")),
                                    version_requirement: format!("^{major}").parse().unwrap(),
                                })
                                .collect(),
                            yanked,
                        })
                        .collect();
                    releases.sort_by(|a, b| a.version.cmp(&b.version));
                    releases.dedup_by(|a, b| a.version == b.version);
                    plugin(&format!("p{n}"), releases)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_hint_is_the_breadth_first_walk_of_its_plugin_alone(plugins in graph()) {
            let hints = compute(&plugins, None, 2);
            for plugin in &plugins {
                prop_assert_eq!(hints.of(&plugin.id), reference(&plugins, &plugin.id), "{}", plugin.id);
            }
        }
    }
}
