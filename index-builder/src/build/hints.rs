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
//! for the others (read under the SHA-256 their bins list, each once, a level of
//! [`WALKS_AT_ONCE`] walks at a time). Plugins are numbered as the walks meet them and
//! each release's dependencies resolved to numbers once, so a walk is a few hundred
//! integers and a full build's 300k walks cost seconds, not the half-minute walks over
//! ids and cloned requirements took.
//!
//! A hint is advice about what to fetch, not what to install; it is made when its doc
//! is written and goes stale when a dependency's closure changes later (the client
//! then pays a round trip for what the hint missed). So nothing here fails a build: a
//! published doc that cannot be read (gone, altered, unparsable: `verify` reports
//! those) ends the walk there, named by the hint, what lies beyond it not.

use std::borrow::Cow;
use std::collections::HashMap;

use rayon::prelude::*;
use semver::{Version, VersionReq};
use trellis_schema::PluginId;
use trellis_schema::index::{IndexDoc, PREFETCH_MAX, likely_allowed};
use trellis_schema::plugin::{Channel, Dependency};

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
    /// Every plugin the walks met, by number: the build's plugins first.
    ids: Vec<PluginId>,
    numbers: HashMap<PluginId, u32>,
    /// The hint of each of the build's plugins, by number.
    hints: Vec<Vec<u32>>,
    pub(super) work: HintsWork,
}

impl Hints {
    /// The hint of `id` (empty when its likely release depends on nothing).
    pub(super) fn of(&self, id: &PluginId) -> Vec<PluginId> {
        let Some(hint) = self.numbers.get(id).and_then(|n| self.hints.get(*n as usize)) else { return Vec::new() };
        hint.iter().map(|n| self.ids[*n as usize].clone()).collect()
    }
}

/// A plugin as the walks read it: its releases, each dependency by number.
enum Plugin<'a> {
    /// Outside the build, its published doc not read yet.
    Unread,
    /// Its releases (none when its published doc could not be read, or the site does
    /// not list it: the walks end there), and the one a client's prefetch follows
    /// with no requirement on the plugin.
    Read { releases: Vec<Release<'a>>, likely: Option<usize> },
}

struct Release<'a> {
    version: Cow<'a, Version>,
    channel: Channel,
    yanked: bool,
    dependencies: Vec<(u32, Cow<'a, VersionReq>)>,
}

impl Release<'_> {
    fn facts(&self) -> (&Version, Channel, bool) {
        (&self.version, self.channel, self.yanked)
    }
}

/// Where a requirement met on a plugin is written: the plugin, release and
/// dependency that name it.
type Requirement = (u32, u32, u32);

/// The plugins the walks go through, numbered as they are met.
#[derive(Default)]
struct Graph<'a> {
    ids: Vec<PluginId>,
    numbers: HashMap<PluginId, u32>,
    plugins: Vec<Plugin<'a>>,
}

impl<'a> Graph<'a> {
    fn number(&mut self, id: &PluginId) -> u32 {
        if let Some(number) = self.numbers.get(id) {
            return *number;
        }
        let number = u32::try_from(self.ids.len()).expect("fewer than 2^32 plugins");
        self.ids.push(id.clone());
        self.numbers.insert(id.clone(), number);
        self.plugins.push(Plugin::Unread);
        number
    }

    /// A graph whose first plugins are `roots`, numbered in order.
    fn with_roots<'r>(roots: impl Iterator<Item = &'r PluginId>) -> Self {
        let mut graph = Self::default();
        for (n, id) in roots.enumerate() {
            let number = graph.number(id);
            debug_assert_eq!(number as usize, n, "{id} is a root twice");
        }
        graph
    }

    /// Sets what `number` is read as: `releases`, each as its version, channel,
    /// yanked flag and dependencies.
    fn read<'d, R, D>(&mut self, number: u32, releases: R)
    where
        R: Iterator<Item = (Cow<'a, Version>, Channel, bool, D)>,
        D: Iterator<Item = (Cow<'d, PluginId>, Cow<'a, VersionReq>)>,
    {
        let releases: Vec<Release<'a>> = releases
            .map(|(version, channel, yanked, dependencies)| {
                let dependencies = dependencies.map(|(id, req)| (self.number(&id), req)).collect();
                Release { version, channel, yanked, dependencies }
            })
            .collect();
        let likely = likely_allowed(&releases, Release::facts, |_| true)
            .and_then(|found| releases.iter().position(|r| std::ptr::eq(r, found)));
        self.plugins[number as usize] = Plugin::Read { releases, likely };
    }

    fn requirement(&self, (plugin, release, dependency): Requirement) -> &VersionReq {
        let Plugin::Read { releases, .. } = &self.plugins[plugin as usize] else {
            unreachable!("a requirement is met only on the way from a plugin read")
        };
        &releases[release as usize].dependencies[dependency as usize].1
    }

    /// The release of `plugin` a client's prefetch follows under `wanted`, by index.
    fn likely(&self, plugin: u32, wanted: &[Requirement]) -> Option<(u32, &Release<'a>)> {
        let Plugin::Read { releases, likely } = &self.plugins[plugin as usize] else { return None };
        let allowed = |version: &Version| wanted.iter().all(|w| self.requirement(*w).matches(version));
        // The newest of all is the one when every requirement allows it.
        let index = match likely {
            Some(index) if allowed(&releases[*index].version) => *index,
            _ => {
                let found = likely_allowed(releases, Release::facts, allowed)?;
                releases.iter().position(|r| std::ptr::eq(r, found))?
            }
        };
        Some((u32::try_from(index).ok()?, &releases[index]))
    }
}

/// `dependencies` as [`Graph::read`] takes them.
fn borrowed(dependencies: &[Dependency]) -> impl Iterator<Item = (Cow<'_, PluginId>, Cow<'_, VersionReq>)> {
    dependencies.iter().map(|d| (Cow::Borrowed(&d.id), Cow::Borrowed(&d.version_requirement)))
}

/// One plugin's walk: the plugins met (the root, then its hint, level by level) and
/// the requirements met on each.
struct Walk {
    met: Vec<u32>,
    wanted: Vec<Vec<Requirement>>,
    /// Where the level to walk next is in `met`.
    level: std::ops::Range<usize>,
}

impl Walk {
    fn new(root: u32) -> Self {
        Self { met: vec![root], wanted: vec![Vec::new()], level: 0..1 }
    }

    /// The plugins of the next level.
    fn level(&self) -> &[u32] {
        &self.met[self.level.clone()]
    }

    /// Goes one level down: the dependencies of the level's likely releases not met
    /// before, in order, until the hint is full.
    fn step(&mut self, graph: &Graph<'_>) {
        let level = self.level.clone();
        for position in level.clone() {
            let plugin = self.met[position];
            let Some((release, found)) = graph.likely(plugin, &self.wanted[position]) else { continue };
            for (k, (dependency, _)) in found.dependencies.iter().enumerate() {
                let at = match self.met.iter().position(|m| m == dependency) {
                    Some(at) => at,
                    // The hint is full: a requirement on a plugin it leaves out
                    // changes nothing.
                    None if self.met.len() > PREFETCH_MAX => continue,
                    None => {
                        self.met.push(*dependency);
                        self.wanted.push(Vec::new());
                        self.met.len() - 1
                    }
                };
                self.wanted[at].push((plugin, release, u32::try_from(k).unwrap_or(u32::MAX)));
            }
        }
        self.level = level.end..self.met.len();
    }

    fn hint(mut self) -> Vec<u32> {
        self.met.remove(0);
        self.met
    }
}

/// How many walks run together: each level's published docs are read at once for
/// all of them, and their state is bounded (a full build has hundreds of thousands).
const WALKS_AT_ONCE: usize = 8192;

/// The hint of every plugin in `plugins`, walking through the docs `previous`
/// publishes (hash bins of `bin_bits`) for the plugins outside the build.
pub(super) fn compute(plugins: &[PluginInput], previous: Option<&PreviousSite>, bin_bits: u32) -> Hints {
    compute_at_once(plugins, previous, bin_bits, WALKS_AT_ONCE)
}

fn compute_at_once(plugins: &[PluginInput], previous: Option<&PreviousSite>, bin_bits: u32, at_once: usize) -> Hints {
    let mut graph = Graph::with_roots(plugins.iter().map(|p| &p.id));
    for (number, plugin) in (0..).zip(plugins) {
        let releases = plugin.releases.iter().map(|r| {
            let m = &r.manifest;
            (Cow::Borrowed(&m.version), m.channel, r.yanked, borrowed(&m.dependencies))
        });
        graph.read(number, releases);
    }
    walk(graph, plugins.len(), previous, bin_bits, at_once)
}

/// The hint a build makes for each of `docs`, the docs of a prepared build, walking
/// through them and the docs `previous` publishes for the other plugins: what
/// `sign-prepared` compares each doc's hint with.
pub(super) fn of_prepared(docs: &[&IndexDoc], previous: &PreviousSite, bin_bits: u32) -> Hints {
    let mut graph = Graph::with_roots(docs.iter().map(|doc| &doc.id));
    for (number, doc) in (0..).zip(docs) {
        let releases =
            doc.releases.iter().map(|r| (Cow::Borrowed(&r.version), r.channel, r.yanked, borrowed(&r.dependencies)));
        graph.read(number, releases);
    }
    walk(graph, docs.len(), Some(previous), bin_bits, WALKS_AT_ONCE)
}

/// The hints of the first `roots` plugins of `graph`, `at_once` walks at a time.
fn walk(mut graph: Graph<'_>, roots: usize, previous: Option<&PreviousSite>, bin_bits: u32, at_once: usize) -> Hints {
    let started = std::time::Instant::now();
    let mut docs_read = 0;
    let mut hints = Vec::with_capacity(roots);
    let roots: Vec<u32> = (0..u32::try_from(roots).expect("fewer than 2^32 plugins")).collect();
    for chunk in roots.chunks(at_once) {
        let mut walks: Vec<Walk> = chunk.iter().map(|root| Walk::new(*root)).collect();
        while walks.iter().any(|w| !w.level.is_empty()) {
            // The published docs this level needs, read together.
            let mut unread: Vec<u32> = (walks.iter().flat_map(Walk::level))
                .filter(|n| matches!(graph.plugins[**n as usize], Plugin::Unread))
                .copied()
                .collect();
            unread.sort_unstable();
            unread.dedup();
            if !unread.is_empty() {
                let ids: Vec<PluginId> = unread.iter().map(|n| graph.ids[*n as usize].clone()).collect();
                for (number, doc) in unread.into_iter().zip(read_published(previous, &ids, bin_bits)) {
                    let releases = doc.map(|doc| {
                        docs_read += 1;
                        doc.releases
                    });
                    let releases = releases.into_iter().flatten().map(|r| {
                        let dependencies =
                            (r.dependencies.into_iter()).map(|d| (Cow::Owned(d.id), Cow::Owned(d.version_requirement)));
                        (Cow::Owned(r.version), r.channel, r.yanked, dependencies)
                    });
                    graph.read(number, releases);
                }
            }
            walks.par_iter_mut().for_each(|walk| walk.step(&graph));
        }
        hints.extend(walks.into_iter().map(Walk::hint));
    }
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let Graph { ids, numbers, .. } = graph;
    Hints { ids, numbers, hints, work: HintsWork { docs_read, millis } }
}

/// The published docs of `ids`, in order, each `None` where it cannot be read.
fn read_published(previous: Option<&PreviousSite>, ids: &[PluginId], bin_bits: u32) -> Vec<Option<IndexDoc>> {
    let Some(previous) = previous else { return ids.iter().map(|_| None).collect() };
    let listed = match previous.published_docs_of(ids.iter(), bin_bits) {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "prefetch hints: the published bins could not be read; the hints end there");
            return ids.iter().map(|_| None).collect();
        }
    };
    ids.par_iter()
        .map(|id| {
            let sha256 = listed.get(id)?;
            previous
                .index_doc(id, sha256)
                .inspect_err(|error| {
                    tracing::warn!(plugin = %id, %error, "prefetch hints: a published index doc could not be read; the hints end there");
                })
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashSet, VecDeque};

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
            // Walked a few at a time, as a full build's hundreds of thousands are.
            let in_chunks = compute_at_once(&plugins, None, 2, 5);
            for plugin in &plugins {
                prop_assert_eq!(hints.of(&plugin.id), reference(&plugins, &plugin.id), "{}", plugin.id);
                prop_assert_eq!(in_chunks.of(&plugin.id), hints.of(&plugin.id), "{}", plugin.id);
            }
        }
    }
}
