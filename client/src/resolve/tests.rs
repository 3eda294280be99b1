//! Resolver behaviour, conflict explanations (insta snapshots) and invariants (proptest).

use std::collections::BTreeSet;
use std::sync::Arc;

use semver::{Version, VersionReq};
use trellis_schema::blocklist::{BlockEntry, Blocklist, Severity};
use trellis_schema::digest::Sha256;
use trellis_schema::id::PluginId;
use trellis_schema::index::{BlobRef, IndexDoc, IndexRelease};
use trellis_schema::plugin::{Channel, Dependency, HostRequirement, Platform};

use super::*;

const APP: &str = "demo-app";

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn ver(s: &str) -> Version {
    s.parse().unwrap()
}

fn blob(name: &str) -> BlobRef {
    BlobRef { path: format!("plugins/{name}"), sha256: Sha256::of(name.as_bytes()), length: 1000 }
}

/// A release with sensible defaults: stable, any platform, needs plugin API ^1.0.
struct Rel(IndexRelease);

fn rel(version: &str) -> Rel {
    Rel(IndexRelease {
        version: ver(version),
        channel: Channel::Stable,
        dependencies: Vec::new(),
        host: HostRequirement { id: APP.into(), api_version_requirement: "^1.0".parse().unwrap() },
        platforms: vec![Platform::Any],
        yanked: false,
        permissions: Vec::new(),
        package: blob(&format!("{version}.zip")),
        envelope: blob(&format!("{version}.dsse")),
        manifest_sha256: Sha256::of(version.as_bytes()),
        unpacked_size: 4096,
        deltas: Vec::new(),
        min_client_version: None,
        rollout: None,
        pricing: None,
        analysis: None,
    })
}

impl Rel {
    fn dep(mut self, on: &str, req: &str) -> Self {
        self.0.dependencies.push(Dependency { id: id(on), version_requirement: req.parse().unwrap() });
        self
    }
    fn host(mut self, req: &str) -> Self {
        self.0.host.api_version_requirement = req.parse().unwrap();
        self
    }
    fn host_app(mut self, app: &str) -> Self {
        self.0.host.id = app.into();
        self
    }
    fn channel(mut self, channel: Channel) -> Self {
        self.0.channel = channel;
        self
    }
    fn platforms(mut self, platforms: &[Platform]) -> Self {
        self.0.platforms = platforms.to_vec();
        self
    }
    fn yanked(mut self) -> Self {
        self.0.yanked = true;
        self
    }
    fn min_client(mut self, version: &str) -> Self {
        self.0.min_client_version = Some(ver(version));
        self
    }
}

fn doc(plugin: &str, releases: Vec<Rel>) -> IndexDoc {
    IndexDoc {
        id: id(plugin),
        name: plugin.into(),
        releases: releases.into_iter().map(|r| r.0).collect(),
        prefetch: Vec::new(),
    }
}

fn registry(name: &str) -> RegistryName {
    name.parse().unwrap()
}

fn public() -> RegistryName {
    registry("public")
}

fn source(docs: Vec<IndexDoc>) -> MemorySource {
    let mut source = MemorySource::recording();
    for doc in docs {
        source.insert(public(), doc);
    }
    source
}

fn request() -> Request {
    Request::new(
        HostApp { id: APP.into(), api_version: ver("1.4.0") },
        Platform::WindowsX86_64,
        Registries::new([public()]),
    )
}

fn want(request: Request, plugin: &str, req: &str) -> Request {
    request.require(id(plugin), req.parse().unwrap())
}

fn chosen(resolution: &Resolution) -> Vec<String> {
    resolution.plugins.iter().map(|p| format!("{} {}", p.id, p.version)).collect()
}

fn conflict(result: Result<Resolution, ResolveError>) -> String {
    match result {
        Err(err @ ResolveError::Conflict(_)) => err.to_string(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn block(plugin: &str, versions: &str, reason: &str, severity: Severity) -> BlockEntry {
    BlockEntry {
        id: id(plugin),
        versions: Some(versions.parse().unwrap()),
        sha256: None,
        reason: reason.into(),
        severity,
        advisory: None,
        added: "2026-11-01T00:00:00Z".into(),
    }
}

#[test]
fn picks_newest_releases_and_orders_dependencies_first() {
    let source = source(vec![
        doc(
            "acme.editor",
            vec![rel("1.0.0").dep("acme.core", "^1"), rel("1.2.0").dep("acme.ui", "^2").dep("acme.core", "^1.1")],
        ),
        doc("acme.ui", vec![rel("2.0.0").dep("acme.core", "^1"), rel("2.3.1").dep("acme.core", "^1"), rel("3.0.0")]),
        doc("acme.core", vec![rel("1.0.0"), rel("1.1.0"), rel("1.5.2"), rel("2.0.0")]),
    ]);
    let resolution = resolve(&want(request(), "acme.editor", "*"), &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.core 1.5.2", "acme.ui 2.3.1", "acme.editor 1.2.0"]);
    assert!(resolution.plugins.iter().all(|p| p.registry == public()));
    assert_eq!(resolution.get(&id("acme.ui")).unwrap().release.package, blob("2.3.1.zip"));
    assert_eq!(resolution.inferred_bindings.into_iter().collect::<Vec<_>>(), [("acme".parse().unwrap(), public())]);
}

#[test]
fn fetches_only_reached_docs_and_prefetches_likely_dependencies() {
    let source = source(vec![
        doc("acme.editor", vec![rel("1.0.0").dep("acme.legacy", "^1"), rel("2.0.0").dep("acme.core", "^1")]),
        doc("acme.core", vec![rel("1.0.0")]),
        doc("acme.legacy", vec![rel("1.0.0")]),
        doc("acme.unrelated", vec![rel("1.0.0")]),
    ]);
    resolve(&want(request(), "acme.editor", "*"), &source).unwrap();
    let log = source.log();
    let fetched: BTreeSet<&str> = log.fetched.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(fetched, BTreeSet::from(["acme.editor", "acme.core"]));
    let prefetched: Vec<&str> = log.prefetched.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(prefetched, ["acme.editor", "acme.core"]);
}

/// A source that logs hints and fetches in the one order they happened.
struct Ordered {
    docs: MemorySource,
    events: std::sync::Mutex<Vec<String>>,
}

impl IndexSource for Ordered {
    fn index_doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
        self.events.lock().unwrap().push(format!("fetch {id}"));
        self.docs.index_doc(registry, id)
    }

    fn prefetch(&self, requests: &[DocRequest]) {
        let ids: Vec<&str> = requests.iter().map(|d| d.id.as_str()).collect();
        self.events.lock().unwrap().push(format!("hint {}", ids.join(" ")));
    }
}

/// `acme.app@^1`: its newest release, 2.0.0, needs nothing, so the hint at lookup names
/// nothing; the 1.x release the solver takes needs three plugins, which pubgrub then
/// looks up one after another. They are hinted together before the first is fetched,
/// so a source fetches them in one round trip, not three.
#[test]
fn hints_the_dependencies_of_the_chosen_release_before_looking_any_up() {
    let docs = source(vec![
        doc("acme.app", vec![rel("1.0.0").dep("acme.a", "^1").dep("acme.b", "^1").dep("acme.c", "^1"), rel("2.0.0")]),
        doc("acme.a", vec![rel("1.0.0")]),
        doc("acme.b", vec![rel("1.0.0")]),
        doc("acme.c", vec![rel("1.0.0")]),
    ]);
    let source = Ordered { docs, events: std::sync::Mutex::default() };
    let resolution = resolve(&want(request(), "acme.app", "^1"), &source).unwrap();
    assert_eq!(chosen(&resolution).len(), 4);
    let events = source.events.into_inner().unwrap();
    let first_dependency = events.iter().position(|e| e.starts_with("fetch acme.") && e != "fetch acme.app").unwrap();
    let hint = events.iter().position(|e| e.starts_with("hint ") && e.split(' ').any(|w| w == "acme.a"));
    let hint = hint.unwrap_or_else(|| panic!("acme.a was never hinted: {events:?}"));
    assert!(hint < first_dependency, "the dependencies were looked up before they were hinted: {events:?}");
    assert_eq!(events[hint], "hint acme.a acme.b acme.c", "{events:?}");
}

/// `acme.app@^1` whose 1.0.0 needs `acme.lib@^1`, and `acme.lib` whose 2.0.0 needs
/// `acme.big` where 1.x needs `acme.small`: the lookup of `acme.lib` hints the
/// dependencies of the release the requirements allow (1.x: `acme.small`), never those
/// of a 2.0.0 no requirement lets the solver pick (a wasted wave of fetches).
#[test]
fn a_lookup_hints_the_dependencies_of_the_newest_release_its_requirements_allow() {
    let docs = source(vec![
        doc("acme.app", vec![rel("1.0.0").dep("acme.lib", "^1"), rel("2.0.0").dep("acme.lib", "^2")]),
        doc("acme.lib", vec![rel("1.0.0").dep("acme.small", "^1"), rel("2.0.0").dep("acme.big", "^1")]),
        doc("acme.small", vec![rel("1.0.0")]),
        doc("acme.big", vec![rel("1.0.0")]),
    ]);
    let source = Ordered { docs, events: std::sync::Mutex::default() };
    let resolution = resolve(&want(request(), "acme.app", "^1"), &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.small 1.0.0", "acme.lib 1.0.0", "acme.app 1.0.0"]);
    let events = source.events.into_inner().unwrap();
    assert!(!events.iter().any(|e| e.split(' ').any(|w| w == "acme.big")), "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("hint ") && e.split(' ').any(|w| w == "acme.small")), "{events:?}");
}

#[test]
fn prefetches_from_every_registry_until_a_namespace_is_bound() {
    let corp = registry("corp");
    let mut source = MemorySource::recording();
    source.insert(public(), doc("acme.a", vec![rel("1.0.0").dep("acme.b", "*").dep("other.c", "*")]));
    source.insert(public(), doc("acme.b", vec![rel("1.0.0")]));
    source.insert(public(), doc("other.c", vec![rel("1.0.0")]));
    let mut request = want(request(), "acme.a", "*");
    request.registries = Registries::new([corp.clone(), public()]);
    resolve(&request, &source).unwrap();
    let hinted: Vec<(String, String)> =
        source.log().prefetched.iter().map(|d| (d.registry.to_string(), d.id.to_string())).collect();
    let expected =
        [("corp", "acme.a"), ("public", "acme.a"), ("public", "acme.b"), ("corp", "other.c"), ("public", "other.c")];
    assert_eq!(hinted, expected.map(|(r, i)| (r.to_owned(), i.to_owned())));
}

#[test]
fn keeps_installed_versions_unless_the_plugin_may_upgrade() {
    let source = source(vec![
        doc("acme.a", vec![rel("1.0.0").dep("acme.lib", "^1")]),
        doc("acme.lib", vec![rel("1.0.0"), rel("1.1.0")]),
    ]);
    let base = want(request(), "acme.a", "*").with_installed(id("acme.lib"), ver("1.0.0"));
    let kept = resolve(&base, &source).unwrap();
    assert_eq!(chosen(&kept), ["acme.lib 1.0.0", "acme.a 1.0.0"]);
    let all = resolve(&base.clone().with_upgrade(Upgrade::All), &source).unwrap();
    assert_eq!(chosen(&all), ["acme.lib 1.1.0", "acme.a 1.0.0"]);
    let only = resolve(&base.clone().with_upgrade(Upgrade::Only(BTreeSet::from([id("acme.lib")]))), &source).unwrap();
    assert_eq!(chosen(&only), ["acme.lib 1.1.0", "acme.a 1.0.0"]);
    let other = resolve(&base.with_upgrade(Upgrade::Only(BTreeSet::from([id("acme.a")]))), &source).unwrap();
    assert_eq!(chosen(&other), ["acme.lib 1.0.0", "acme.a 1.0.0"]);
}

/// Issue 12 §7: fewest-candidates-first used to decide `acme.lib` (2 candidates, reached
/// through the single-release `acme.base`) before the requested `acme.app` (3
/// candidates); `acme.lib 2.0.0` then ruled out every `acme.app` above 1.0.0 and the
/// user got `acme.app 1.0.0`, although `acme.app 3.0.0` with `acme.lib 1.0.0` works.
#[test]
fn a_requested_plugin_gets_its_newest_release_before_dependencies_are_decided() {
    let source = source(vec![
        doc("acme.app", vec![rel("1.0.0"), rel("2.0.0"), rel("3.0.0")]),
        doc("acme.base", vec![rel("1.0.0").dep("acme.lib", "*")]),
        doc("acme.lib", vec![rel("1.0.0"), rel("2.0.0").dep("acme.app", "<2")]),
    ]);
    let request = want(want(request(), "acme.app", "*"), "acme.base", "*");
    let resolution = resolve(&request, &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.app 3.0.0", "acme.lib 1.0.0", "acme.base 1.0.0"]);
    // The same when the other root is an installed plugin kept at its version.
    let kept = resolve(&request.with_installed(id("acme.base"), ver("1.0.0")), &source).unwrap();
    assert_eq!(kept.get(&id("acme.app")).map(|p| p.version.to_string()).as_deref(), Some("3.0.0"));
}

#[test]
fn moves_an_installed_dependency_when_a_new_plugin_needs_it() {
    let source = source(vec![
        doc("acme.new", vec![rel("1.0.0").dep("acme.lib", ">=1.1")]),
        doc("acme.lib", vec![rel("1.0.0"), rel("1.1.0"), rel("1.2.0")]),
    ]);
    let request = want(request(), "acme.new", "*").require(id("acme.lib"), VersionReq::STAR);
    let resolution = resolve(&request.with_installed(id("acme.lib"), ver("1.0.0")), &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.lib 1.2.0", "acme.new 1.0.0"]);
}

#[test]
fn keeps_an_installed_yanked_version_but_never_installs_one() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0"), rel("1.1.0").yanked()])]);
    let request = want(request(), "acme.a", "*");
    assert_eq!(chosen(&resolve(&request, &source).unwrap()), ["acme.a 1.0.0"]);
    let installed = request.with_installed(id("acme.a"), ver("1.1.0"));
    assert_eq!(chosen(&resolve(&installed, &source).unwrap()), ["acme.a 1.1.0"]);
}

#[test]
fn never_picks_a_blocked_release_even_when_installed() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0"), rel("1.1.0")])]);
    let blocklist = Blocklist { entries: vec![block("acme.a", "=1.1.0", "exfiltrates files", Severity::Critical)] };
    let request =
        want(request(), "acme.a", "*").with_installed(id("acme.a"), ver("1.1.0")).with_blocklist(Arc::new(blocklist));
    assert_eq!(chosen(&resolve(&request, &source).unwrap()), ["acme.a 1.0.0"]);
}

#[test]
fn honours_pins_over_newer_releases() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0"), rel("1.1.0"), rel("2.0.0")])]);
    let request = want(request(), "acme.a", "*").with_pin(id("acme.a"), ver("1.1.0"));
    assert_eq!(chosen(&resolve(&request, &source).unwrap()), ["acme.a 1.1.0"]);
}

#[test]
fn per_plugin_channel_admits_beta_releases_of_that_plugin_only() {
    let source = source(vec![
        doc(
            "acme.a",
            vec![rel("1.0.0").dep("acme.b", "*"), rel("1.1.0-beta.1").channel(Channel::Beta).dep("acme.b", "*")],
        ),
        doc("acme.b", vec![rel("1.0.0"), rel("1.1.0").channel(Channel::Beta)]),
    ]);
    let request = want(request(), "acme.a", "*");
    assert_eq!(chosen(&resolve(&request, &source).unwrap()), ["acme.b 1.0.0", "acme.a 1.0.0"]);
    let beta_a = request.clone().with_plugin_channel(id("acme.a"), Channel::Beta);
    assert_eq!(chosen(&resolve(&beta_a, &source).unwrap()), ["acme.b 1.0.0", "acme.a 1.1.0-beta.1"]);
    let beta = request.with_channel(Channel::Experimental);
    assert_eq!(chosen(&resolve(&beta, &source).unwrap()), ["acme.b 1.1.0", "acme.a 1.1.0-beta.1"]);
}

#[test]
fn skips_releases_for_another_app_platform_or_newer_client() {
    let source = source(vec![doc(
        "acme.a",
        vec![
            rel("1.0.0"),
            rel("1.1.0").platforms(&[Platform::WindowsX86_64, Platform::LinuxX86_64]),
            rel("1.2.0").platforms(&[Platform::LinuxX86_64]),
            rel("1.3.0").host_app("other-app"),
            rel("1.4.0").min_client("99.0.0"),
        ],
    )]);
    assert_eq!(chosen(&resolve(&want(request(), "acme.a", "*"), &source).unwrap()), ["acme.a 1.1.0"]);
}

#[test]
fn binds_each_namespace_to_the_first_registry_serving_it_and_notes_the_others() {
    let corp = registry("corp");
    let mut source = MemorySource::recording();
    source.insert(corp.clone(), doc("acme.a", vec![rel("1.0.0").dep("acme.b", "*")]));
    source.insert(corp.clone(), doc("acme.b", vec![rel("1.0.0")]));
    source.insert(public(), doc("acme.a", vec![rel("5.0.0")]));
    source.insert(public(), doc("other.c", vec![rel("1.0.0")]));
    let mut request = want(request(), "acme.a", "*");
    request = want(request, "other.c", "*");
    request.registries = Registries::new([corp.clone(), public()]);
    let resolution = resolve(&request, &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.b 1.0.0", "acme.a 1.0.0", "other.c 1.0.0"]);
    assert_eq!(resolution.get(&id("other.c")).unwrap().registry, public());
    assert_eq!(
        resolution.inferred_bindings.into_iter().collect::<Vec<_>>(),
        [("acme".parse().unwrap(), corp.clone()), ("other".parse().unwrap(), public())]
    );
    assert_eq!(
        resolution.notices,
        [Notice::AlsoOfferedBy { id: id("acme.a"), bound: corp.clone(), ignored: vec![public()] }]
    );
    // acme.b was looked up in the bound registry only.
    let asked: Vec<_> = source.log().fetched.into_iter().filter(|d| d.id == id("acme.b")).collect();
    assert_eq!(asked, [DocRequest { registry: corp, id: id("acme.b") }]);
}

#[test]
fn explicit_binding_ignores_a_newer_copy_in_another_registry() {
    let corp = registry("corp");
    let mut source = MemorySource::new();
    source.insert(corp.clone(), doc("acme.a", vec![rel("1.0.0")]));
    source.insert(public(), doc("acme.a", vec![rel("99.0.0")]));
    let mut request = want(request(), "acme.a", "*");
    request.registries = Registries::new([public(), corp.clone()]).with_binding("acme".parse().unwrap(), corp.clone());
    let resolution = resolve(&request, &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.a 1.0.0"]);
    assert!(resolution.inferred_bindings.is_empty());
    assert!(resolution.notices.is_empty());
}

#[test]
fn refuses_a_doc_for_another_plugin() {
    let mut source = MemorySource::new();
    source.insert(public(), doc("acme.evil", vec![rel("1.0.0")]));
    struct Swapped(MemorySource);
    impl IndexSource for Swapped {
        fn index_doc(&self, registry: &RegistryName, _: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
            self.0.index_doc(registry, &id("acme.evil"))
        }
    }
    let err = resolve(&want(request(), "acme.a", "*"), &Swapped(source)).unwrap_err();
    assert!(
        matches!(&err, ResolveError::WrongDoc { requested, served, .. } if *requested == id("acme.a") && *served == id("acme.evil")),
        "{err}"
    );
}

#[test]
fn stops_on_a_source_error_naming_the_doc() {
    struct Offline;
    impl IndexSource for Offline {
        fn index_doc(&self, _: &RegistryName, _: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
            Err("connection refused".into())
        }
    }
    let err = resolve(&want(request(), "acme.a", "*"), &Offline).unwrap_err();
    assert_eq!(err.to_string(), "could not get the index doc of acme.a from registry `public`: connection refused");
}

/// Serves `inner`, except that every request to `down` fails.
struct PartlyDown {
    inner: MemorySource,
    down: RegistryName,
}

impl IndexSource for PartlyDown {
    fn index_doc(&self, registry: &RegistryName, id: &PluginId) -> Result<Option<Arc<IndexDoc>>, SourceError> {
        if *registry == self.down {
            return Err(format!("{registry} is down").into());
        }
        self.inner.index_doc(registry, id)
    }
}

#[test]
fn a_lower_priority_registry_that_is_down_does_not_block_a_namespace_served_above_it() {
    let mut inner = MemorySource::new();
    inner.insert(public(), doc("acme.a", vec![rel("1.0.0")]));
    let mut request = want(request(), "acme.a", "*");
    request.registries = Registries::new([public(), registry("corp")]);
    let source = PartlyDown { inner, down: registry("corp") };
    let resolution = resolve(&request, &source).unwrap();
    assert_eq!(chosen(&resolution), ["acme.a 1.0.0"]);
    assert!(resolution.notices.is_empty());
}

#[test]
fn a_higher_priority_registry_that_is_down_stops_binding_an_unbound_namespace() {
    let mut inner = MemorySource::new();
    inner.insert(public(), doc("acme.a", vec![rel("1.0.0")]));
    let mut request = want(request(), "acme.a", "*");
    request.registries = Registries::new([registry("corp"), public()]);
    let source = PartlyDown { inner, down: registry("corp") };
    let err = resolve(&request, &source).unwrap_err();
    assert!(matches!(&err, ResolveError::Source { registry, .. } if registry.as_str() == "corp"), "{err}");
}

#[test]
fn refuses_bindings_to_unconfigured_registries_and_empty_registry_lists() {
    let mut request = want(request(), "acme.a", "*");
    request.registries = Registries::new([public()]).with_binding("acme".parse().unwrap(), registry("gone"));
    let err = resolve(&request, &MemorySource::new()).unwrap_err();
    assert!(matches!(err, ResolveError::UnknownRegistry { .. }), "{err}");
    request.registries = Registries::default();
    assert!(matches!(resolve(&request, &MemorySource::new()), Err(ResolveError::NoRegistry)));
}

#[test]
fn exclusion_reports_the_first_rule_a_release_breaks() {
    let blocklist = Blocklist { entries: vec![block("acme.a", "=1.0.0", "malware", Severity::Critical)] };
    let request = request().with_blocklist(Arc::new(blocklist)).with_installed(id("acme.a"), ver("1.2.0"));
    let a = id("acme.a");
    assert!(matches!(exclusion(&request, &a, &rel("1.0.0").yanked().0), Some(Exclusion::Blocked { .. })));
    assert_eq!(exclusion(&request, &a, &rel("1.1.0").yanked().0), Some(Exclusion::Yanked));
    assert_eq!(exclusion(&request, &a, &rel("1.2.0").yanked().0), None);
    assert_eq!(
        exclusion(&request, &a, &rel("1.3.0").channel(Channel::Beta).0),
        Some(Exclusion::Channel { release: Channel::Beta, follows: Channel::Stable })
    );
    assert_eq!(
        exclusion(&request, &a, &rel("1.4.0").min_client("9.0.0").0),
        Some(Exclusion::ClientTooOld { needs: ver("9.0.0") })
    );
}

#[test]
fn describes_a_plugin_offered_by_several_registries() {
    let notice = Notice::AlsoOfferedBy {
        id: id("acme.a"),
        bound: registry("corp"),
        ignored: vec![public(), registry("mirror")],
    };
    insta::assert_snapshot!(notice.to_string());
}

// ---- conflict explanations ----

#[test]
fn explains_a_missing_dependency() {
    let source = source(vec![doc("acme.editor", vec![rel("1.0.0").dep("acme.spell", "^1")])]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.editor", "*"), &source)));
}

#[test]
fn explains_incompatible_ranges() {
    let source = source(vec![
        doc("acme.editor", vec![rel("1.0.0").dep("acme.core", "^1")]),
        doc("acme.sync", vec![rel("2.0.0").dep("acme.core", "^2.1")]),
        doc("acme.core", vec![rel("1.4.0"), rel("2.0.0"), rel("2.1.0")]),
    ]);
    let request = want(want(request(), "acme.editor", "*"), "acme.sync", "*");
    insta::assert_snapshot!(conflict(resolve(&request, &source)));
}

#[test]
fn explains_a_host_too_old() {
    let source = source(vec![doc("acme.clock", vec![rel("2.0.0").host(">=1.5"), rel("2.1.0").host("^1.6")])]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.clock", "^2"), &source)));
}

#[test]
fn explains_a_dependency_whose_releases_are_all_yanked_or_blocked() {
    let source = source(vec![
        doc("acme.editor", vec![rel("1.0.0").dep("acme.spell", "^1")]),
        doc("acme.spell", vec![rel("1.0.0").yanked(), rel("1.1.0").yanked(), rel("1.2.0")]),
    ]);
    let blocklist = Blocklist { entries: vec![block("acme.spell", ">=1.2", "uploads documents", Severity::Critical)] };
    let request = want(request(), "acme.editor", "*").with_blocklist(Arc::new(blocklist));
    insta::assert_snapshot!(conflict(resolve(&request, &source)));
}

#[test]
fn explains_an_unsupported_platform() {
    let source = source(vec![doc(
        "acme.scanner",
        vec![
            rel("1.0.0").platforms(&[Platform::LinuxX86_64]),
            rel("1.1.0").platforms(&[Platform::LinuxX86_64, Platform::MacosAarch64]),
        ],
    )]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.scanner", "*"), &source)));
}

#[test]
fn explains_a_release_only_on_another_channel() {
    let source = source(vec![
        doc("acme.editor", vec![rel("2.0.0").dep("acme.ai", ">=0.3")]),
        doc(
            "acme.ai",
            vec![rel("0.2.0"), rel("0.3.0").channel(Channel::Beta), rel("0.4.0").channel(Channel::Experimental)],
        ),
    ]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.editor", "*"), &source)));
}

#[test]
fn explains_a_pin_that_blocks_a_requirement() {
    let source = source(vec![
        doc("acme.editor", vec![rel("3.0.0").dep("acme.core", "^2")]),
        doc("acme.core", vec![rel("1.0.0"), rel("2.0.0"), rel("2.1.0")]),
    ]);
    let request = want(request(), "acme.editor", "*").with_pin(id("acme.core"), ver("1.0.0"));
    insta::assert_snapshot!(conflict(resolve(&request, &source)));
}

#[test]
fn explains_a_plugin_offered_only_by_a_registry_its_namespace_is_not_bound_to() {
    let corp = registry("corp");
    let mut source = MemorySource::new();
    source.insert(corp.clone(), doc("corp.dashboard", vec![rel("1.0.0").dep("corp.auth", "^1")]));
    source.insert(public(), doc("corp.auth", vec![rel("1.0.0"), rel("99.0.0")]));
    let mut request = want(request(), "corp.dashboard", "*");
    request.registries = Registries::new([public(), corp.clone()]).with_binding("corp".parse().unwrap(), corp);
    insta::assert_snapshot!(conflict(resolve(&request, &source)));
}

#[test]
fn explains_a_requirement_no_release_matches() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0"), rel("1.1.0")])]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.a", ">=2"), &source)));
}

#[test]
fn explains_a_release_that_depends_on_itself() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0").dep("acme.a", "^2")])]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.a", "*"), &source)));
}

#[test]
fn explains_a_conflict_through_two_dependency_paths() {
    let source = source(vec![
        doc("acme.app", vec![rel("1.0.0").dep("acme.left", "*").dep("acme.right", "*")]),
        doc("acme.left", vec![rel("1.0.0").dep("acme.base", "^1"), rel("2.0.0").dep("acme.base", "^1").host(">=1.6")]),
        doc("acme.right", vec![rel("1.0.0").dep("acme.base", "^2"), rel("1.1.0").dep("acme.base", "^2")]),
        doc("acme.base", vec![rel("1.0.0"), rel("2.0.0")]),
    ]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.app", "*"), &source)));
}

#[test]
fn explains_releases_for_another_app_or_a_newer_client() {
    let source = source(vec![
        doc("acme.editor", vec![rel("1.0.0").dep("acme.git", ">=2")]),
        doc("acme.git", vec![rel("1.0.0"), rel("2.0.0").host_app("other-app"), rel("2.1.0").min_client("9.0.0")]),
    ]);
    let request = want(request(), "acme.editor", "*").with_client_version(ver("0.1.0"));
    insta::assert_snapshot!(conflict(resolve(&request, &source)));
}

#[test]
fn explains_a_conflict_between_transitive_dependencies() {
    let source = source(vec![
        doc("acme.a", vec![rel("1.0.0").dep("acme.x", "^1").dep("acme.y", "^1")]),
        doc("acme.b", vec![rel("1.0.0").dep("acme.x", "^2"), rel("1.1.0").dep("acme.y", "^2")]),
        doc("acme.x", vec![rel("1.0.0").dep("acme.z", "^1"), rel("2.0.0").dep("acme.z", "^2")]),
        doc("acme.y", vec![rel("1.0.0").dep("acme.z", "^2"), rel("2.0.0").dep("acme.z", "^1")]),
        doc("acme.z", vec![rel("1.0.0"), rel("2.0.0")]),
    ]);
    let request = want(want(request(), "acme.a", "*"), "acme.b", "*");
    insta::assert_snapshot!(conflict(resolve(&request, &source)));
}

#[test]
fn explains_why_newer_releases_of_the_requested_plugin_were_skipped() {
    let source = source(vec![doc(
        "acme.editor",
        vec![
            rel("1.0.0").dep("acme.spell", "^1"),
            rel("2.0.0").yanked(),
            rel("2.1.0").platforms(&[Platform::MacosAarch64]),
        ],
    )]);
    insta::assert_snapshot!(conflict(resolve(&want(request(), "acme.editor", "*"), &source)));
}

#[test]
fn explains_a_plugin_no_registry_publishes() {
    let mut request = want(request(), "globex.viewer", "^3");
    request.registries = Registries::new([public(), registry("corp")]);
    insta::assert_snapshot!(conflict(resolve(&request, &source(Vec::new()))));
}

#[test]
fn a_pin_wins_over_keeping_the_installed_version() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0"), rel("1.1.0"), rel("1.2.0")])]);
    let request =
        want(request(), "acme.a", "*").with_installed(id("acme.a"), ver("1.0.0")).with_pin(id("acme.a"), ver("1.1.0"));
    assert_eq!(chosen(&resolve(&request, &source).unwrap()), ["acme.a 1.1.0"]);
}

#[test]
fn marks_which_plugins_were_requested() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0").dep("acme.b", "*")]), doc("acme.b", vec![rel("1.0.0")])]);
    let resolution = resolve(&want(request(), "acme.a", "*"), &source).unwrap();
    let requested: Vec<(&str, bool)> = resolution.plugins.iter().map(|p| (p.id.as_str(), p.requested)).collect();
    assert_eq!(requested, [("acme.b", false), ("acme.a", true)]);
}

#[test]
fn explains_requirements_that_exclude_each_other() {
    let source = source(vec![doc("acme.a", vec![rel("1.0.0"), rel("2.0.0")])]);
    insta::assert_snapshot!(conflict(resolve(&want(want(request(), "acme.a", "=1.0.0"), "acme.a", "^2"), &source)));
}

mod properties;

#[test]
fn a_plain_request_never_picks_a_prerelease_unless_asked() {
    let source = source(vec![doc("acme.a", vec![rel("1.1.0"), rel("1.2.0-rc.1")])]);
    assert_eq!(chosen(&resolve(&want(request(), "acme.a", "*"), &source).unwrap()), ["acme.a 1.1.0"]);
    assert_eq!(chosen(&resolve(&want(request(), "acme.a", ">=1.0.0"), &source).unwrap()), ["acme.a 1.1.0"]);
    // Asked for by version, by a range naming a pre-release, or with --pre.
    assert_eq!(chosen(&resolve(&want(request(), "acme.a", "=1.2.0-rc.1"), &source).unwrap()), ["acme.a 1.2.0-rc.1"]);
    assert_eq!(chosen(&resolve(&want(request(), "acme.a", ">=1.2.0-rc.1"), &source).unwrap()), ["acme.a 1.2.0-rc.1"]);
    let pre = want(request(), "acme.a", "*").with_prereleases(PreReleases::Allow);
    assert_eq!(chosen(&resolve(&pre, &source).unwrap()), ["acme.a 1.2.0-rc.1"]);
}

#[test]
fn an_installed_prerelease_stays_and_moves_within_its_version() {
    let source =
        source(vec![doc("acme.a", vec![rel("1.1.0"), rel("1.2.0-rc.1"), rel("1.2.0-rc.2"), rel("1.3.0-beta.1")])]);
    let installed = want(request(), "acme.a", "*").with_installed(id("acme.a"), ver("1.2.0-rc.1"));
    assert_eq!(chosen(&resolve(&installed, &source).unwrap()), ["acme.a 1.2.0-rc.1"]);
    let update = installed.with_upgrade(Upgrade::All);
    assert_eq!(chosen(&resolve(&update, &source).unwrap()), ["acme.a 1.2.0-rc.2"]);
}

#[test]
fn a_dependency_naming_a_prerelease_admits_it() {
    let source = source(vec![
        doc("acme.a", vec![rel("1.0.0").dep("acme.b", "^2.0.0-beta.1")]),
        doc("acme.b", vec![rel("1.0.0"), rel("2.0.0-beta.2")]),
    ]);
    assert_eq!(
        chosen(&resolve(&want(request(), "acme.a", "*"), &source).unwrap()),
        ["acme.b 2.0.0-beta.2", "acme.a 1.0.0"]
    );
}

#[test]
fn explains_a_plugin_with_only_prereleases() {
    let source = source(vec![doc("acme.a", vec![rel("1.2.0-rc.1")])]);
    let text = conflict(resolve(&want(request(), "acme.a", "*"), &source));
    assert!(text.contains("1.2.0-rc.1 is a pre-release, chosen only when asked for"), "{text}");
    assert!(text.contains("acme.a@VERSION") && text.contains("--pre"), "{text}");
}
