//! The storefront `trellis-index build` writes beside the site: pages from real signed
//! packages (icons, screenshots, Markdown), safe escaping, refusals that leave the site
//! as it was, incremental rewrites, and the pages in headless Chromium (WebDriver over
//! HTTP against `trellis-index serve` on 127.0.0.1).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};
use trellis_index::build::{BuildReport, Scope, build_registry};
use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::release::ReleaseDisplay;
use trellis_tests::trees::png;

fn now() -> jiff::Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn display(summary: &str, description: &str, categories: &[&str], tags: &[&str]) -> ReleaseDisplay {
    ReleaseDisplay {
        summary: summary.into(),
        description: description.into(),
        vendor: String::new(),
        categories: categories.iter().map(|c| (*c).to_owned()).collect(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        pricing: Default::default(),
    }
}

fn clock(version: &str) -> ReleaseSpec {
    ReleaseSpec::new("acme.clock", version)
        .with_display(
            "Desk Clock",
            display(
                "A clock for your <script>alert('x')</script> desk",
                "# Desk Clock\n\nShows the time. <script>alert(1)</script> [home](https://acme.example)",
                &["productivity"],
                &["time", "clock"],
            ),
        )
        .with_file("resources/icon-16.png", png(16, 16))
        .with_file("resources/icon-32.png", png(32, 32))
        .with_file("resources/icon-128.png", png(128, 128))
        .with_file("resources/screenshot-1.png", png(320, 200))
        .with_file("docs/README.md", "## Usage\n\nRun it. <img src=x onerror=alert(1)>\n")
        .with_member(
            "icons",
            json!({"small": "resources/icon-16.png", "medium": "resources/icon-32.png", "large": "resources/icon-128.png"}),
        )
        .with_member("screenshots", json!([{"url": "resources/screenshot-1.png", "caption": "The clock on a desk"}]))
        .with_member(
            "permissions",
            json!([{"type": "network", "scope": "internet", "reason": "Sync the time"}]),
        )
        .with_member("release_notes", json!("Alarms."))
}

/// A registry of a few plugins in two categories.
fn registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let options = InitOptions {
        name: "Test Store".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 2,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now: now(),
    };
    operator::init(dir.path(), &options).unwrap();
    let key = fixture::key(1);
    fixture::add_publisher(dir.path(), "acme", &key).unwrap();
    fixture::add_publisher(dir.path(), "contoso", &key).unwrap();
    fixture::add_release(dir.path(), &clock("1.0.0"), &key).unwrap();
    let calendar = ReleaseSpec::new("acme.calendar", "2.0.0").with_display(
        "Team Calendar",
        display("Shared calendars for teams", "Meetings and events.", &["productivity"], &["calendar"]),
    );
    fixture::add_release(dir.path(), &calendar, &key).unwrap();
    let images = ReleaseSpec::new("contoso.images", "1.0.0")
        .with_display("Image Tools", display("Resize and crop pictures", "Batch resize.", &["media"], &["images"]));
    fixture::add_release(dir.path(), &images, &key).unwrap();
    std::fs::create_dir_all(dir.path().join("catalog")).unwrap();
    std::fs::write(dir.path().join("catalog/featured.json"), r#"{"featured": ["acme.clock"]}"#).unwrap();
    dir
}

fn build(registry: &Path, site: &Path, scope: Scope) -> Result<BuildReport, trellis_index::build::BuildError> {
    build_registry(&Registry::open(registry)?, site, scope, now())
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn page(site: &Path, path: &str) -> String {
    std::fs::read_to_string(site.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn build_writes_home_listings_plugin_publisher_and_search_pages() {
    let registry = registry();
    let site = tempfile::tempdir().unwrap();
    let report = build(registry.path(), site.path(), Scope::Full).unwrap();
    for path in [
        "index.html",
        "categories/index.html",
        "categories/productivity/index.html",
        "categories/media/index.html",
        "tags/time/index.html",
        "plugins/acme.clock/index.html",
        "plugins/acme.calendar/index.html",
        "publishers/acme/index.html",
        "publishers/contoso/index.html",
        "search/index.html",
        "search/catalog.json",
    ] {
        assert!(report.storefront.contains(&path.to_owned()), "{path} not written: {:?}", report.storefront);
    }
    let home = page(site.path(), "index.html");
    assert!(home.contains("Featured") && home.contains("plugins/acme.clock/"), "{home}");
    let productivity = page(site.path(), "categories/productivity/index.html");
    assert!(productivity.contains("Desk Clock") && productivity.contains("Team Calendar"));
    assert!(!productivity.contains("Image Tools"));

    let plugin = page(site.path(), "plugins/acme.clock/index.html");
    // The one script a plugin page may carry is none: its text is escaped everywhere.
    assert!(!plugin.contains("<script"), "{plugin}");
    assert!(!plugin.contains("<img src=x"), "{plugin}");
    assert!(plugin.contains("&lt;script&gt;"), "{plugin}");
    assert!(plugin.contains("trellis://install/acme.clock"));
    assert!(plugin.contains("medium risk") || plugin.contains("high risk"), "{plugin}");
    assert!(plugin.contains("Sync the time"));
    assert!(plugin.contains("The clock on a desk"));
    assert!(plugin.contains("Alarms."));
    // Screenshot and icon are content-addressed images that decode.
    let images: Vec<String> = tree(site.path()).into_keys().filter(|p| p.starts_with("images/")).collect();
    assert_eq!(images.len(), 2, "{images:?}");
    for image in &images {
        assert!(plugin.contains(image.trim_start_matches("images/")), "{image} not on the page");
    }
    // Search data: the map names the signed head and shards.
    let map: Value = serde_json::from_str(&page(site.path(), "search/catalog.json")).unwrap();
    let head = map["head"].as_str().unwrap();
    assert!(head.starts_with("targets/catalog/") && site.path().join(head).is_file());
    assert!(map["shards"]["cl"].as_str().is_some_and(|p| site.path().join(p).is_file()), "{map}");
    // No page names anything outside the site.
    for (path, bytes) in tree(site.path()).into_iter().filter(|(p, _)| p.ends_with(".html")) {
        let text = String::from_utf8(bytes).unwrap();
        for attribute in ["src=\"http", "href=\"//", "src=\"//", "@import", "url(http"] {
            assert!(!text.contains(attribute), "{path} has {attribute}");
        }
    }
}

#[test]
fn a_screenshot_that_is_not_a_png_is_refused_and_nothing_is_written() {
    let registry = registry();
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let before = tree(site.path());
    // A PNG header (what lint checks) over garbage: it does not decode.
    let mut fake = png(320, 200)[..33].to_vec();
    fake.extend_from_slice(b"this is not image data at all");
    let bad = clock("1.1.0").with_file("resources/screenshot-1.png", fake);
    fixture::add_release(registry.path(), &bad, &fixture::key(1)).unwrap();
    let error = build(registry.path(), site.path(), Scope::Full).unwrap_err().to_string();
    assert!(
        error.contains("acme.clock 1.1.0") && error.contains("resources/screenshot-1.png") && error.contains("PNG"),
        "{error}"
    );
    assert_eq!(tree(site.path()), before, "a refused build changed the site");
}

#[test]
fn one_release_rewrites_only_the_pages_that_show_it() {
    let registry = registry();
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let again = build(registry.path(), site.path(), Scope::Full).unwrap();
    assert_eq!(again.storefront, Vec::<String>::new(), "an unchanged rebuild rewrote pages");

    let key = fixture::key(1);
    let calendar = ReleaseSpec::new("acme.calendar", "2.1.0").with_display(
        "Team Calendar",
        display("Shared calendars for teams", "Meetings and events.", &["productivity"], &["calendar"]),
    );
    fixture::add_release(registry.path(), &calendar, &key).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["acme.calendar".parse().unwrap()]));
    let report = build(registry.path(), site.path(), scope).unwrap();
    let written: BTreeSet<&str> = report.storefront.iter().map(String::as_str).collect();
    let expected = BTreeSet::from([
        "index.html",
        "categories/index.html",
        "search/catalog.json",
        "categories/productivity/index.html",
        "tags/calendar/index.html",
        "publishers/acme/index.html",
        "plugins/acme.calendar/index.html",
        "_storefront/plugins/acme.calendar.json",
        "_storefront/state.json",
    ]);
    // The home page lists it as updated; the categories index and the search map change
    // with the catalog's documents only when those do.
    let must: BTreeSet<&str> = [
        "index.html",
        "categories/productivity/index.html",
        "tags/calendar/index.html",
        "publishers/acme/index.html",
        "plugins/acme.calendar/index.html",
        "_storefront/plugins/acme.calendar.json",
        "_storefront/state.json",
    ]
    .into();
    assert!(written.is_subset(&expected), "unexpected pages rewritten: {:?}", written.difference(&expected));
    assert!(must.is_subset(&written), "pages not rewritten: {:?}", must.difference(&written));
    assert!(page(site.path(), "plugins/acme.calendar/index.html").contains("2.1.0"));
    // The same site as a full build gives.
    let full = tempfile::tempdir().unwrap();
    build(registry.path(), full.path(), Scope::Full).unwrap();
    let pages = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(dir).into_iter().filter(|(p, _)| p.ends_with(".html")).collect()
    };
    let (incremental, full) = (pages(site.path()), pages(full.path()));
    assert_eq!(incremental.keys().collect::<Vec<_>>(), full.keys().collect::<Vec<_>>());
    for (path, bytes) in &incremental {
        if path != "index.html" {
            assert_eq!(bytes, &full[path], "{path} differs from a full build's");
        }
    }
}

#[test]
fn the_operator_theme_replaces_a_template_and_a_broken_one_is_refused_naming_it() {
    let registry = registry();
    let site = tempfile::tempdir().unwrap();
    let theme = registry.path().join("storefront");
    std::fs::create_dir_all(&theme).unwrap();
    let base = include_str!("../src/storefront/theme/base.html").replace("<footer", "<footer data-theme=\"ours\"");
    std::fs::write(theme.join("base.html"), base).unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    assert!(page(site.path(), "index.html").contains("data-theme=\"ours\""));

    std::fs::write(
        theme.join("home.html"),
        "{% extends \"base.html\" %}{% block main %}{{ nothing.here }}{% endblock %}",
    )
    .unwrap();
    let error = build(registry.path(), site.path(), Scope::Full).unwrap_err().to_string();
    assert!(error.contains("home.html"), "{error}");
}
