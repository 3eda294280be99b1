//! Invariants on random small registries: every solution satisfies every constraint, and
//! a conflict is only reported when no valid assignment exists (checked by brute force),
//! and a single requested plugin gets the newest release any valid assignment gives it.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const PLUGINS: [&str; 4] = ["p.a", "p.b", "p.c", "p.d"];
const VERSIONS: [&str; 4] = ["1.0.0", "1.1.0", "2.0.0", "2.1.0"];
const REQS: [&str; 6] = ["*", "^1", "^2", ">=1.1", "=1.0.0", "<2"];
const CHANNELS: [Channel; 3] = [Channel::Stable, Channel::Beta, Channel::Experimental];

fn arb_release(version: &'static str) -> impl Strategy<Value = IndexRelease> {
    (
        prop::sample::select(CHANNELS.to_vec()),
        prop::sample::subsequence(vec![Platform::Any, Platform::WindowsX86_64, Platform::LinuxX86_64], 1..=2),
        prop::bool::weighted(0.2),
        prop::sample::select(vec!["^1.0", "^1.0", ">=1.5", "^1.3"]),
        prop::bool::weighted(0.1),
        prop::collection::vec((prop::sample::select(PLUGINS.to_vec()), prop::sample::select(REQS.to_vec())), 0..=2),
    )
        .prop_map(move |(channel, platforms, yanked, host, other_app, deps)| {
            let mut r = rel(version).channel(channel).platforms(&platforms).host(host);
            if yanked {
                r = r.yanked();
            }
            if other_app {
                r = r.host_app("other-app");
            }
            for (on, req) in deps {
                r = r.dep(on, req);
            }
            r.0
        })
}

fn arb_doc(plugin: &'static str) -> impl Strategy<Value = IndexDoc> {
    prop::sample::subsequence(VERSIONS.to_vec(), 0..=3)
        .prop_flat_map(|versions| versions.into_iter().map(arb_release).collect::<Vec<_>>())
        .prop_map(move |releases| IndexDoc { id: id(plugin), name: plugin.into(), releases, prefetch: Vec::new() })
}

fn arb_case() -> impl Strategy<Value = (Vec<IndexDoc>, Request)> {
    let docs = PLUGINS.iter().map(|p| arb_doc(p)).collect::<Vec<_>>();
    let pick = || (prop::sample::select(PLUGINS.to_vec()), prop::sample::select(VERSIONS.to_vec()));
    (
        docs,
        prop::collection::vec((prop::sample::select(PLUGINS.to_vec()), prop::sample::select(REQS.to_vec())), 1..=2),
        prop::sample::select(CHANNELS.to_vec()),
        prop::option::of((prop::sample::select(PLUGINS.to_vec()), prop::sample::select(CHANNELS.to_vec()))),
        prop::option::of(pick()),
        prop::collection::vec(pick(), 0..=2),
        prop::option::of((prop::sample::select(PLUGINS.to_vec()), prop::sample::select(REQS.to_vec()))),
        prop::sample::select(vec![Upgrade::Nothing, Upgrade::All]),
    )
        .prop_map(|(docs, roots, channel, plugin_channel, pin, installed, blocked, upgrade)| {
            let mut request = request().with_channel(channel).with_upgrade(upgrade);
            for (plugin, req) in roots {
                request = want(request, plugin, req);
            }
            if let Some((plugin, channel)) = plugin_channel {
                request = request.with_plugin_channel(id(plugin), channel);
            }
            if let Some((plugin, version)) = pin {
                request = request.with_pin(id(plugin), ver(version));
            }
            for (plugin, version) in installed {
                request = request.with_installed(id(plugin), ver(version));
            }
            if let Some((plugin, req)) = blocked {
                let entry = block(plugin, req, "bad", Severity::High);
                request = request.with_blocklist(Arc::new(Blocklist { entries: vec![entry] }));
            }
            (docs, request)
        })
}

/// Whether `release` of `plugin` may be installed at all under `request`, written
/// independently of the provider.
fn admissible(request: &Request, plugin: &PluginId, release: &IndexRelease) -> bool {
    let v = &release.version;
    request.blocklist.find(plugin, v, Some(&release.package.sha256)).is_none()
        && request.pins.get(plugin).is_none_or(|pin| pin == v)
        && (!release.yanked || request.installed.get(plugin) == Some(v))
        && release.host.id == request.host.id
        && release.host.api_version_requirement.matches(&request.host.api_version)
        && release.platforms.iter().any(|p| *p == Platform::Any || *p == request.platform)
        && request.channels.get(plugin).copied().unwrap_or(request.channel) >= release.channel
}

/// Every constraint on a whole assignment; `Err` says which one fails.
fn check(request: &Request, assignment: &BTreeMap<PluginId, &IndexRelease>) -> Result<(), String> {
    for requirement in &request.requirements {
        match assignment.get(&requirement.id) {
            Some(r) if requirement.version.matches(&r.version) => {}
            other => {
                return Err(format!(
                    "root {} {} not met by {:?}",
                    requirement.id,
                    requirement.version,
                    other.map(|r| &r.version)
                ));
            }
        }
    }
    for (plugin, release) in assignment {
        if !admissible(request, plugin, release) {
            return Err(format!("{plugin} {} is not admissible", release.version));
        }
        for dep in &release.dependencies {
            match assignment.get(&dep.id) {
                Some(r) if dep.version_requirement.matches(&r.version) => {}
                _ => {
                    return Err(format!(
                        "{plugin} {} dependency {} {} unmet",
                        release.version, dep.id, dep.version_requirement
                    ));
                }
            }
        }
    }
    Ok(())
}

fn any_valid_assignment(docs: &[IndexDoc], request: &Request) -> bool {
    let mut found = false;
    valid_assignments(docs, request, &mut |_| {
        found = true;
        true
    });
    found
}

/// Calls `visit` with every valid assignment until it returns `true`.
fn valid_assignments(
    docs: &[IndexDoc],
    request: &Request,
    visit: &mut dyn FnMut(&BTreeMap<PluginId, &IndexRelease>) -> bool,
) {
    fn go<'d>(
        docs: &'d [IndexDoc],
        request: &Request,
        assignment: &mut BTreeMap<PluginId, &'d IndexRelease>,
        visit: &mut dyn FnMut(&BTreeMap<PluginId, &IndexRelease>) -> bool,
    ) -> bool {
        let Some((doc, rest)) = docs.split_first() else {
            return check(request, assignment).is_ok() && visit(assignment);
        };
        if go(rest, request, assignment, visit) {
            return true;
        }
        for release in &doc.releases {
            assignment.insert(doc.id.clone(), release);
            if go(rest, request, assignment, visit) {
                return true;
            }
        }
        assignment.remove(&doc.id);
        false
    }
    go(docs, request, &mut BTreeMap::new(), visit);
}

/// Whether `to` is reachable from `from` through the chosen releases' dependencies.
fn reaches(resolution: &Resolution, from: &PluginId, to: &PluginId) -> bool {
    let mut stack = vec![from.clone()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(at) = stack.pop() {
        if &at == to {
            return true;
        }
        if seen.insert(at.clone())
            && let Some(plugin) = resolution.get(&at)
        {
            stack.extend(plugin.release.dependencies.iter().map(|d| d.id.clone()));
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn solutions_satisfy_every_constraint_and_conflicts_are_real((docs, request) in arb_case()) {
        let source = source(docs.clone());
        match resolve(&request, &source) {
            Ok(resolution) => {
                let assignment: BTreeMap<PluginId, &IndexRelease> =
                    resolution.plugins.iter().map(|p| (p.id.clone(), &p.release)).collect();
                prop_assert_eq!(assignment.len(), resolution.plugins.len(), "a plugin chosen twice");
                if let Err(broken) = check(&request, &assignment) {
                    return Err(TestCaseError::fail(broken));
                }
                for plugin in &resolution.plugins {
                    prop_assert_eq!(&plugin.version, &plugin.release.version);
                    prop_assert_eq!(&plugin.registry, &public());
                }
                // Dependencies come first unless they sit in a cycle with the dependent.
                for (at, plugin) in resolution.plugins.iter().enumerate() {
                    for dep in &plugin.release.dependencies {
                        let dep_at = resolution.plugins.iter().position(|p| p.id == dep.id).unwrap_or(usize::MAX);
                        prop_assert!(
                            dep_at <= at || reaches(&resolution, &dep.id, &plugin.id),
                            "{} installed before its dependency {}", plugin.id, dep.id
                        );
                    }
                }
            }
            Err(ResolveError::Conflict(conflict)) => {
                prop_assert!(!any_valid_assignment(&docs, &request), "conflict reported but a solution exists:\n{}", conflict);
                prop_assert!(conflict.explanation.ends_with("no set of releases satisfies your request."), "{}", conflict);
                for artefact in ["-0", "∅", " | ", "no version", "Root", "outside"] {
                    prop_assert!(!conflict.explanation.contains(artefact), "{:?} in:\n{}", artefact, conflict);
                }
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
        }
    }

    /// Issue 12 §7: one requested plugin (not held at an installed version) gets the
    /// newest release that any valid assignment gives it.
    #[test]
    fn a_single_requested_plugin_gets_its_newest_workable_release((docs, request) in arb_case()) {
        let mut request = request;
        request.requirements.truncate(1);
        let wanted = request.requirements[0].id.clone();
        prop_assume!(!(request.upgrade.keeps(&wanted) && request.installed.contains_key(&wanted)));
        let mut newest: Option<semver::Version> = None;
        valid_assignments(&docs, &request, &mut |assignment| {
            if let Some(release) = assignment.get(&wanted) {
                newest = newest.clone().max(Some(release.version.clone()));
            }
            false
        });
        let got = resolve(&request, &source(docs)).ok().and_then(|r| r.get(&wanted).map(|p| p.version.clone()));
        prop_assert_eq!(got, newest);
    }
}
