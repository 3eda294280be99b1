//! The storefront `trellis-index build` writes beside the site: pages from real signed
//! packages (icons, screenshots, Markdown), safe escaping, refusals that leave the site
//! as it was, incremental rewrites, and the pages in headless Chromium (WebDriver over
//! HTTP against `trellis-index serve` on 127.0.0.1).

#![allow(clippy::unwrap_used)] // test set-up: a failure to build the fixture is a test failure

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

/// Writes `reviews/<plugin>/<author>.json`.
fn review(registry: &Path, plugin: &str, author: &str, stars: u8, text: &str) {
    let dir = registry.join("reviews").join(plugin);
    std::fs::create_dir_all(&dir).unwrap();
    let review = json!({"stars": stars, "text": text, "version": "1.0.0", "date": "2026-10-20",
                        "author": author, "state": "visible"});
    std::fs::write(dir.join(format!("{author}.json")), serde_json::to_vec_pretty(&review).unwrap()).unwrap();
}

/// A combined-format access log of `recent` downloads of acme.clock 1.0.0 in the last
/// 30 days before [`now`] and `older` before that, ingested into the registry's `stats/`.
fn downloads(registry: &Path, recent: usize, older: usize) {
    let hash = "ab".repeat(32);
    let line = |day: &str| {
        format!(
            "203.0.113.7 - - [{day}:10:00:00 +0000] \"GET /targets/plugins/acme/acme.clock/{hash}.acme.clock-1.0.0.zip HTTP/1.1\" 200 4096 \"-\" \"trellis/0.1\"\n"
        )
    };
    let mut log = String::new();
    for _ in 0..recent {
        log.push_str(&line("28/Oct/2026"));
    }
    for _ in 0..older {
        log.push_str(&line("01/Sep/2026"));
    }
    let path = registry.join("access.log");
    std::fs::write(&path, log).unwrap();
    trellis_index::stats::ingest(registry, &[path]).unwrap();
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
    // The storefront's own state: the digests of the plugins of one record bucket,
    // the publisher's members, the documents rendered from.
    let bucket = format!(
        "_storefront/records-{:02x}.json",
        trellis_schema::catalog::record_bucket(&"acme.calendar".parse().unwrap())
    );
    // Its page data, in its group.
    let calendar_group = group_of("acme.calendar");
    let acme_group = publisher_group_of("acme");
    // And the levels of the plugins of its levels bucket (the new release is one).
    let levels = format!(
        "_storefront/levels-{:02x}.json",
        trellis_schema::security_level::levels_bucket(&"acme.calendar".parse().unwrap())
    );
    // And the levels of the cards of each listing page rendered (a publisher page's
    // are kept with its members).
    let cards = ["_storefront/cards/category-productivity-1.json", "_storefront/cards/tag-calendar-1.json"];
    let expected = BTreeSet::from([
        bucket.as_str(),
        levels.as_str(),
        cards[0],
        cards[1],
        acme_group.as_str(),
        "index.html",
        "categories/index.html",
        "search/catalog.json",
        "categories/productivity/index.html",
        "tags/calendar/index.html",
        "publishers/acme/index.html",
        "plugins/acme.calendar/index.html",
        calendar_group.as_str(),
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
        calendar_group.as_str(),
        acme_group.as_str(),
        bucket.as_str(),
        levels.as_str(),
        cards[0],
        cards[1],
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
fn the_plugin_page_shows_reviews_histogram_and_downloads_and_an_edited_review_redoes_it() {
    let registry = registry();
    review(registry.path(), "acme.clock", "octocat", 5, "Keeps *perfect* time.");
    review(registry.path(), "acme.clock", "hubot", 4, "Good, but the alarm is loud.");
    review(
        registry.path(),
        "acme.clock",
        "mallory",
        1,
        "See &lt;script&gt;alert(1)&lt;/script&gt; [win](javascript:alert(2))",
    );
    downloads(registry.path(), 12, 3);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let plugin = page(site.path(), "plugins/acme.clock/index.html");
    assert!(plugin.contains("15 downloads, 12 in the last 30 days"), "{plugin}");
    assert!(plugin.contains("Rated 3.3 out of 5 by 3 reviewers"), "{plugin}");
    for (stars, count) in [(5, 1), (4, 1), (3, 0), (2, 0), (1, 1)] {
        let meter =
            format!(r#"max="3" value="{count}" aria-label="{}% of reviews gave {stars} star"#, (count * 100 + 1) / 3);
        assert!(plugin.contains(&meter), "{meter} missing: {plugin}");
    }
    assert!(plugin.contains("Keeps <em>perfect</em> time.") && plugin.contains("hubot"), "{plugin}");
    assert!(plugin.contains("See &lt;script&gt;alert(1)&lt;"), "{plugin}");
    assert!(!plugin.contains("<script") && !plugin.contains("href=\"javascript"), "{plugin}");
    // The catalog summary names the icon the page shows, and listings use it.
    let summary = catalog_summary(site.path(), "acme.clock");
    let icon = summary["icon"].as_str().unwrap_or_else(|| panic!("no icon in {summary}"));
    assert!(icon.starts_with("images/") && site.path().join(icon).is_file(), "{icon}");
    let listing = page(site.path(), "categories/productivity/index.html");
    assert!(listing.contains(icon.trim_start_matches("images/")), "{listing}");
    assert!(catalog_summary(site.path(), "acme.calendar").get("icon").is_none(), "a plugin without an icon has one");

    // The same stars, another text: the rating does not move but the page must.
    review(registry.path(), "acme.clock", "hubot", 4, "Good, and the alarm volume is now adjustable.");
    let scope = Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]));
    let report = build(registry.path(), site.path(), scope).unwrap();
    assert!(report.storefront.contains(&"plugins/acme.clock/index.html".to_owned()), "{:?}", report.storefront);
    let plugin = page(site.path(), "plugins/acme.clock/index.html");
    assert!(plugin.contains("alarm volume is now adjustable") && !plugin.contains("alarm is loud"), "{plugin}");
    // Equal to a full build of the same registry.
    let full = tempfile::tempdir().unwrap();
    build(registry.path(), full.path(), Scope::Full).unwrap();
    assert_eq!(plugin, page(full.path(), "plugins/acme.clock/index.html"));
}

/// The catalog summary of `id` in the site's search shard for its first term.
fn catalog_summary(site: &Path, id: &str) -> Value {
    let map: Value = serde_json::from_str(&page(site, "search/catalog.json")).unwrap();
    let shard = map["shards"][&id[..2]].as_str().unwrap_or_else(|| panic!("no shard {} in {map}", &id[..2]));
    let shard: Value = serde_json::from_str(&page(site, shard)).unwrap();
    shard["docs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {shard}"))
}

#[test]
fn the_storefront_after_several_incremental_builds_equals_a_full_builds() {
    let registry = registry();
    let key = fixture::key(1);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let only = |id: &str| Scope::Plugins(BTreeSet::from([id.parse().unwrap()]));
    // A new release, a plugin in a new category and tag, reviews, downloads, then the
    // only plugin of a category withdrawn: each built incrementally.
    let calendar = ReleaseSpec::new("acme.calendar", "2.1.0").with_display(
        "Team Calendar",
        display("Shared calendars for teams", "Meetings and events.", &["productivity"], &["calendar"]),
    );
    fixture::add_release(registry.path(), &calendar, &key).unwrap();
    build(registry.path(), site.path(), only("acme.calendar")).unwrap();
    let video = ReleaseSpec::new("contoso.video", "1.0.0")
        .with_display("Video Cutter", display("Cut videos", "Trim clips.", &["design"], &["clips"]));
    fixture::add_release(registry.path(), &video, &key).unwrap();
    build(registry.path(), site.path(), only("contoso.video")).unwrap();
    assert!(site.path().join("categories/design/index.html").is_file());
    review(registry.path(), "acme.clock", "octocat", 5, "Keeps *perfect* time.");
    build(registry.path(), site.path(), only("acme.clock")).unwrap();
    let images = ("contoso.images".parse().unwrap(), "1.0.0".parse().unwrap());
    operator::yank(&Registry::open(registry.path()).unwrap(), &images.0, &images.1, "withdrawn").unwrap();
    let report = build(registry.path(), site.path(), only("contoso.images")).unwrap();
    assert!(!site.path().join("plugins/contoso.images/index.html").exists(), "{report:?}");
    assert!(!site.path().join("categories/media/index.html").exists(), "an empty category kept its page");

    let full = tempfile::tempdir().unwrap();
    build(registry.path(), full.path(), Scope::Full).unwrap();
    let full_groups = page_groups(full.path());
    let publisher_groups = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(dir).into_iter().filter(|(p, _)| p.starts_with("_storefront/publisher-groups/")).collect()
    };
    let full_publisher_groups = publisher_groups(full.path());
    let storefront = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(dir)
            .into_iter()
            .filter(|(p, _)| {
                ["index.html", "categories/", "tags/", "plugins/", "publishers/", "search/", "assets/", "images/"]
                    .iter()
                    .any(|prefix| p.starts_with(prefix))
            })
            .collect()
    };
    let (incremental, full) = (storefront(site.path()), storefront(full.path()));
    assert_eq!(incremental.keys().collect::<Vec<_>>(), full.keys().collect::<Vec<_>>());
    for (path, bytes) in &incremental {
        assert!(bytes == &full[path], "{path} differs from a full build's");
    }
    // The kept page data too: a group the withdrawn plugin left empty is gone.
    assert!(
        !site.path().join(group_of("contoso.images")).exists()
            || group_of("contoso.images") == group_of("contoso.video")
    );
    assert_eq!(page_groups(site.path()), full_groups);
    // And the kept publishers, byte for byte (each group rewritten whole).
    assert_eq!(publisher_groups(site.path()), full_publisher_groups);
    assert!(!site.path().join("_storefront/publishers").exists());
    // And a rebuild with nothing new writes nothing.
    let again = build(registry.path(), site.path(), Scope::Full).unwrap();
    assert_eq!(again.storefront, Vec::<String>::new());

    // Kept state lost (by hand, or a storefront from an older trellis-index): the
    // next build renders everything again rather than a publisher page short of
    // plugins.
    std::fs::remove_file(site.path().join(publisher_group_of("acme"))).unwrap();
    let calendar = ReleaseSpec::new("acme.calendar", "2.2.0").with_display(
        "Team Calendar",
        display("Shared calendars for teams", "Meetings and events.", &["productivity"], &["calendar"]),
    );
    fixture::add_release(registry.path(), &calendar, &key).unwrap();
    let report = build(registry.path(), site.path(), only("acme.calendar")).unwrap();
    let publisher = page(site.path(), "publishers/acme/index.html");
    assert!(publisher.contains("Desk Clock") && publisher.contains("2.2.0"), "{publisher}");
    assert!(report.storefront.contains(&publisher_group_of("acme")), "{:?}", report.storefront);
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

    // A template that only fails when rendered refuses the build before the site changes.
    let before = tree(site.path());
    fixture::add_release(registry.path(), &clock("1.1.0"), &fixture::key(1)).unwrap();
    std::fs::write(
        theme.join("home.html"),
        "{% extends \"base.html\" %}{% block main %}{{ nothing.here }}{% endblock %}",
    )
    .unwrap();
    let error = build(registry.path(), site.path(), Scope::Full).unwrap_err().to_string();
    assert!(error.contains("home.html"), "{error}");
    assert_eq!(tree(site.path()), before, "a refused build changed the site");
}

/// A WebDriver session of headless Chromium, driven over chromedriver's HTTP API.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let started = std::time::Instant::now();
        while agent.get(&format!("{base}/status")).call().is_err() {
            assert!(started.elapsed().as_secs() < 30, "chromedriver did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let mut browser = Self { driver, base, session: String::new(), agent };
        // Chromium sometimes fails to start on a loaded machine ("DevToolsActivePort
        // file doesn't exist"): a session is asked for up to three times.
        let mut attempts = 1;
        let answer = loop {
            match browser.try_call("POST", "/session", Some(capabilities.clone())) {
                Ok(answer) => break answer,
                Err(e) if attempts < 3 && e.contains("session not created") => attempts += 1,
                Err(e) => panic!("{e} (attempt {attempts})"),
            }
        };
        browser.session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The WebDriver answer's value, or its error as "METHOD PATH: error: message".
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(&body.unwrap_or(json!({}))).unwrap()),
        };
        let mut response = response.map_err(|e| format!("{method} {path}: {e}"))?;
        let value: Value = serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        if let Some(error) = value["value"]["error"].as_str() {
            return Err(format!("{method} {path}: {error}: {}", value["value"]["message"]));
        }
        Ok(value["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.session_call("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    fn script_async(&self, script: &str, args: Value) -> Value {
        self.session_call("POST", "/execute/async", Some(json!({"script": script, "args": args})))
    }

    /// Waits until `script` returns something truthy.
    fn wait_for(&self, script: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let value = self.script(script, json!([]));
            if !(value.is_null() || value == json!(false) || value == json!(0) || value == json!("")) {
                return value;
            }
            assert!(started.elapsed().as_secs() < 20, "timed out waiting for {script}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine;
        let data = self.session_call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/storefront-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    fn resize(&self, width: u32, height: u32) {
        self.session_call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    fn log(&self, kind: &str) -> Vec<Value> {
        self.session_call("POST", "/se/log", Some(json!({"type": kind}))).as_array().cloned().unwrap_or_default()
    }

    /// Asserts that the console logged no error and that every request went to `url`
    /// (the loopback server); returns how many requests it saw.
    fn assert_quiet_and_local(&self, url: &str) -> usize {
        let severe: Vec<Value> = self.log("browser").into_iter().filter(|e| e["level"] == "SEVERE").collect();
        assert!(severe.is_empty(), "console errors: {severe:?}");
        let mut requests = 0;
        for entry in self.log("performance") {
            let message: Value = serde_json::from_str(entry["message"].as_str().unwrap_or("{}")).unwrap_or_default();
            if message["message"]["method"] == "Network.requestWillBeSent" {
                let requested = message["message"]["params"]["request"]["url"].as_str().unwrap_or_default().to_owned();
                // chrome://, data: and blob: never reach a network; everything else must
                // be the loopback server.
                let in_browser = ["chrome:", "data:", "blob:", "about:"].iter().any(|s| requested.starts_with(s));
                assert!(in_browser || requested.starts_with(url), "a request left the loopback server: {requested}");
                requests += usize::from(!in_browser);
            }
        }
        requests
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.agent.delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The ranking `trellis_client::catalog::rank` gives `text` over the site's shards,
/// read as the client reads them (`Query::next_reads`: the query's shards, then the
/// typo shards of the terms they do not match well and the shards of their best typo
/// matches), with the plugin count the search page's map carries, which is the head's.
fn client_ranking(site: &Path, text: &str) -> Vec<(String, f64)> {
    client_search(site, text).0
}

/// [`client_ranking`], and the documents the client read for it: the site paths of
/// the search page's map, sorted.
fn client_search(site: &Path, text: &str) -> (Vec<(String, f64)>, Vec<String>) {
    use trellis_client::catalog::{Query, rank};
    use trellis_schema::catalog::{parse_shard, parse_typo};
    let map: Value = serde_json::from_str(&page(site, "search/catalog.json")).unwrap();
    let head: trellis_schema::catalog::CatalogHead =
        serde_json::from_slice(&std::fs::read(site.join(map["head"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!(map["plugins"], head.plugins, "the search page ranks with the head's plugin count");
    let query = Query::new(text);
    let read = |name: &str| std::fs::read(site.join(map["shards"][name].as_str().unwrap())).unwrap();
    let exists = |k: &str| map["shards"].get(k).is_some();
    let (mut shards, mut typos) = (BTreeMap::new(), BTreeMap::new());
    let mut documents = Vec::new();
    loop {
        let next = query.next_reads(&shards, &typos, exists, |k| exists(&format!("typo-{k}")));
        if next.is_empty() {
            break;
        }
        let names = next.shards.iter().cloned().chain(next.typos.iter().map(|k| format!("typo-{k}")));
        documents.extend(names.map(|name| map["shards"][&name].as_str().unwrap().to_owned()));
        for key in next.shards {
            shards.insert(key.clone(), parse_shard(&key, &read(&key), &Default::default()).unwrap());
        }
        for key in next.typos {
            typos.insert(key.clone(), parse_typo(&key, &read(&format!("typo-{key}")), &Default::default()).unwrap());
        }
    }
    let host = trellis_client::resolve::HostApp { id: "demo-host".into(), api_version: "1.0.0".parse().unwrap() };
    let ranking = rank(head.plugins, &query, &shards, &typos, &host, trellis_schema::plugin::Platform::LinuxX86_64)
        .into_iter()
        .map(|r| (r.summary.id.to_string(), r.score))
        .collect();
    documents.sort();
    (ranking, documents)
}

#[test]
fn chromium_browses_searches_and_filters_the_storefront_served_on_loopback() {
    let (Some(chromium), Some(chromedriver)) =
        (trellis_tests::tools::require("chromium"), trellis_tests::tools::require("chromedriver"))
    else {
        return;
    };
    let registry = registry();
    let key = fixture::key(1);
    for (id, name, summary, category, tag) in [
        ("acme.alarm", "Alarm Clock", "Wake up on time with alarms", "productivity", "time"),
        ("acme.timer", "Kitchen Timer", "Countdown timers for cooking", "productivity", "time"),
        ("contoso.photos", "Photo Organizer", "Sort your photos by date and place", "media", "images"),
        ("contoso.music", "Music Player", "Play your music library", "media", "audio"),
    ] {
        let spec = ReleaseSpec::new(id, "1.0.0").with_display(name, display(summary, summary, &[category], &[tag]));
        fixture::add_release(registry.path(), &spec, &key).unwrap();
    }
    review(registry.path(), "acme.clock", "octocat", 5, "Keeps *perfect* time.");
    review(registry.path(), "acme.clock", "hubot", 4, "Good, but the alarm is loud.");
    review(
        registry.path(),
        "acme.clock",
        "mallory",
        1,
        "See &lt;script&gt;window.pwned = 1&lt;/script&gt; and [win](javascript:window.pwned=2)",
    );
    downloads(registry.path(), 12, 3);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let server = trellis_index::serve::Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let url = server.url();
    let url = url.trim_end_matches('/');
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, profile.path());
    browser.resize(1280, 1400);

    // Home: featured and categories, landmarks, the skip link takes the first Tab.
    browser.open(&format!("{url}/"));
    let home = browser.script(
        "return {featured: document.querySelectorAll('[aria-labelledby=h-featured] .card').length,
                 categories: [...document.querySelectorAll('#categories a')].map(a => a.textContent.trim()),
                 landmarks: ['header','nav','main','footer'].every(t => document.querySelector(t)),
                 alts: [...document.images].every(i => i.hasAttribute('alt'))}",
        json!([]),
    );
    assert_eq!(home["featured"], 1, "{home}");
    let categories = home["categories"].to_string();
    assert!(categories.contains("productivity") && categories.contains("media"), "{home}");
    assert_eq!(home["landmarks"], true);
    assert_eq!(home["alts"], true);
    browser.session_call(
        "POST",
        "/actions",
        Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": "\u{E004}"}, {"type": "keyUp", "value": "\u{E004}"}]}]})),
    );
    assert_eq!(browser.script("return document.activeElement.className", json!([])), "skip");
    browser.screenshot("home");

    // A mistyped search finds the plugin.
    browser.open(&format!("{url}/search/?q=calnedar"));
    let found = browser.wait_for("return document.querySelector('#results .card .name')?.textContent");
    assert_eq!(found, "Team Calendar");
    browser.screenshot("search-typo");

    // So does a typo in a word's first two characters, which sends it to another
    // search shard: the script reads the typo shard of its last two characters.
    // It reads what the client reads and no head (the map carries the plugin count):
    // each catalog document once, at most three for one word.
    for typo in ["xlock", "lcock", "colck", "clock", "clo", "desk colck"] {
        browser.open(&format!("{url}/search/?q={}", typo.replace(' ', "+")));
        let names = browser.wait_for(
            "const names = [...document.querySelectorAll('#results .card .name')].map(n => n.textContent);
             return names.length > 0 ? names : null",
        );
        assert!(names.to_string().contains("Desk Clock"), "{typo}: {names}");
        let requested = browser.script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)
                 .filter(p => p.includes('/catalog/')).sort()",
            json!([]),
        );
        let (_, expected) = client_search(site.path(), typo);
        let expected: Vec<String> = expected.iter().map(|p| format!("/{p}")).collect();
        assert_eq!(requested, json!(expected), "{typo}: the script reads what the client reads");
        assert!(expected.len() <= if typo.contains(' ') { 4 } else { 3 }, "{typo}: {expected:?}");
    }
    browser.screenshot("search-typo-first-characters");

    // A search result shows the plugin's own icon, loaded from the site.
    browser.open(&format!("{url}/search/?q=desk+clock"));
    let icon = browser.wait_for(
        "const card = [...document.querySelectorAll('#results .card')].find(c => c.textContent.includes('Desk Clock'));
         const img = card && card.querySelector('img');
         return img && img.complete && img.naturalWidth ? [img.getAttribute('src'), img.naturalWidth] : null",
    );
    assert!(icon[0].as_str().unwrap().contains("images/"), "{icon}");
    assert_eq!(icon[1], 128, "{icon}");

    // A category filter narrows the results.
    browser.open(&format!("{url}/search/?q=time+photos+music+clock"));
    browser.wait_for("return document.querySelectorAll('#results .card').length > 0");
    let all = browser.script("return document.querySelectorAll('#results .card').length", json!([]));
    browser.script(
        "const s = document.getElementById('category'); s.value = 'media'; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    let narrowed = browser.wait_for(
        "const names = [...document.querySelectorAll('#results .card .name')].map(n => n.textContent);
         return names.length > 0 && !names.includes('Desk Clock') ? names : null",
    );
    let narrowed = narrowed.as_array().unwrap().len();
    assert!(narrowed > 0 && narrowed < all.as_u64().unwrap() as usize, "{narrowed} of {all}");
    browser.screenshot("search-category");

    // The script ranks as the client does, on the same shards.
    for query in [
        "clock",
        "calnedar",
        "tim",
        "photo organizer",
        "acme",
        "images resize",
        "music",
        "desk clok",
        "xlock",
        "lcock",
        "desk colck",
        "ttimer",
    ] {
        let browser_ranking = browser.script_async(
            "const done = arguments[arguments.length - 1];
             window.trellisSearch.search(arguments[0], {}, 20)
               .then(r => done(r.map(x => [x.summary.id, x.score]))).catch(e => done(String(e)));",
            json!([query]),
        );
        let browser_ranking: Vec<(String, f64)> = serde_json::from_value(browser_ranking.clone())
            .unwrap_or_else(|e| panic!("{query}: {browser_ranking}: {e}"));
        let client = client_ranking(site.path(), query);
        assert_eq!(
            browser_ranking.iter().map(|r| &r.0).collect::<Vec<_>>(),
            client.iter().map(|r| &r.0).collect::<Vec<_>>(),
            "{query}"
        );
        for (b, c) in browser_ranking.iter().zip(&client) {
            assert!((b.1 - c.1).abs() < 1e-9 * c.1.abs().max(1.0), "{query}: {b:?} vs {c:?}");
        }
    }

    // The plugin page: permissions, screenshots that load, the rating line, install link.
    browser.open(&format!("{url}/plugins/acme.clock/"));
    let plugin = browser.script(
        "return {permissions: document.getElementById('permissions').textContent,
                 shots: [...document.querySelectorAll('.shots img')].map(i => i.complete && i.naturalWidth),
                 icon: document.querySelector('.icon').naturalWidth,
                 rating: document.getElementById('rating').textContent,
                 downloads: document.getElementById('downloads').textContent,
                 histogram: [...document.querySelectorAll('#histogram tr')].map(r =>
                     [r.querySelector('th').textContent, r.querySelector('meter').value]),
                 reviews: [...document.querySelectorAll('#reviews .review')].map(r =>
                     [r.querySelector('.author').textContent, r.querySelector('.review-text').textContent.trim()]),
                 links: [...document.querySelectorAll('#reviews a')].length,
                 pwned: window.pwned === undefined ? null : window.pwned,
                 install: document.querySelector('a.install').getAttribute('href'),
                 level: document.getElementById('security-level').textContent,
                 levels: [...document.querySelectorAll('#release-levels tbody tr')].map(r => r.cells[2].textContent),
                 scripts: document.scripts.length,
                 text: document.body.textContent}",
        json!([]),
    );
    assert!(plugin["permissions"].as_str().unwrap().contains("Sync the time"), "{plugin}");
    assert_eq!(plugin["shots"], json!([320]), "{plugin}");
    assert_eq!(plugin["icon"], 128);
    assert!(plugin["rating"].as_str().unwrap().contains("3.3 (3)"), "{plugin}");
    assert_eq!(plugin["downloads"], "15 downloads, 12 in the last 30 days", "{plugin}");
    assert_eq!(
        plugin["histogram"],
        json!([["5 stars", 1], ["4 stars", 1], ["3 stars", 0], ["2 stars", 0], ["1 star", 1]]),
        "{plugin}"
    );
    let reviews = plugin["reviews"].as_array().unwrap();
    assert!(reviews.iter().any(|r| r[0] == "octocat" && r[1] == "Keeps perfect time."), "{plugin}");
    // The hostile review is shown as the text it is, runs nothing and links nowhere.
    assert!(
        reviews.iter().any(|r| r[0] == "mallory" && r[1] == "See <script>window.pwned = 1</script> and win"),
        "{plugin}"
    );
    assert_eq!(plugin["pwned"], Value::Null, "a review ran a script");
    assert_eq!(plugin["links"], 0, "{plugin}");
    assert_eq!(plugin["install"], "trellis://install/acme.clock");
    assert!(plugin["level"].as_str().unwrap().starts_with("signed for version 1.0.0"), "{plugin}");
    assert_eq!(plugin["levels"], json!(["signed"]), "{plugin}");
    assert_eq!(plugin["scripts"], 0, "a script from plugin.json ran");
    assert!(plugin["text"].as_str().unwrap().contains("<script>alert(1)</script>"), "shown as text");
    browser.screenshot("plugin");

    // Responsive: no horizontal scrolling on a phone.
    browser.resize(390, 844);
    browser.open(&format!("{url}/plugins/acme.clock/"));
    let overflow = browser.script("return document.documentElement.scrollWidth - window.innerWidth", json!([]));
    assert!(overflow.as_i64().unwrap() <= 0, "the plugin page scrolls sideways on a phone: {overflow}");
    browser.screenshot("plugin-phone");

    // No console errors; no request left 127.0.0.1.
    let requests = browser.assert_quiet_and_local(url);
    assert!(requests > 5, "the performance log saw {requests} requests");
}

/// The example registry's access log (`registry-template/examples/access.log`,
/// 20–29 November 2026), ingested into the registry's `stats/`.
fn example_downloads(registry: &Path) {
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/examples/access.log");
    trellis_index::stats::ingest(registry, &[log]).unwrap();
}

/// A day after the example log's last one.
fn late_november() -> jiff::Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

#[test]
fn a_publishers_insight_page_charts_downloads_and_versions_and_is_redone_only_when_its_numbers_move() {
    let registry = registry();
    example_downloads(registry.path());
    let site = tempfile::tempdir().unwrap();
    let registry_of = |dir: &Path| Registry::open(dir).unwrap();
    let report = build_registry(&registry_of(registry.path()), site.path(), Scope::Full, late_november()).unwrap();
    assert!(
        report.storefront.contains(&"publishers/acme/insights/index.html".to_owned()),
        "acme's insight page not written: {:?}",
        report.storefront
    );
    let publisher = page(site.path(), "publishers/acme/index.html");
    assert!(publisher.contains(r#"href="../../publishers/acme/insights/""#), "{publisher}");
    // contoso: no download in the window, so no insight page and no link to one.
    let no_insights = |site: &Path| {
        let publisher = page(site, "publishers/contoso/index.html");
        assert!(!publisher.contains("insights"), "a link to an insight page that is not there: {publisher}");
        assert!(!site.join("publishers/contoso/insights").exists(), "contoso has an insight page without downloads");
    };
    no_insights(site.path());

    // acme.clock: 35 downloads of 1.0.0 over 10 days of the log (its HEAD request and
    // the GET of 9.9.9 answered 404 are not downloads).
    let insight = page(site.path(), "publishers/acme/insights/index.html");
    assert!(
        insight.contains("2026-09-01") && insight.contains("2026-11-29"),
        "the 90 days to the log's last day: {insight}"
    );
    assert!(insight.contains("35 in all"), "{insight}");
    assert_eq!(
        insight.matches("<svg").count(),
        2,
        "a daily and a version chart for the one downloaded plugin: {insight}"
    );
    assert_eq!(insight.matches(r#"role="img""#).count(), 2);
    assert!(insight.contains("<title id=\"i1-dt\">Daily downloads of Desk Clock</title>"), "{insight}");
    assert!(
        insight.contains("From 2026-09-01 to 2026-11-29: 35 downloads in all; the most in one day, 8, on 2026-11-29."),
        "{insight}"
    );
    let days_with_downloads = insight.matches(r#"<rect class="bar""#).count() - 1;
    assert_eq!(days_with_downloads, 10, "20–29 November: {insight}");
    assert!(insight.contains("<td>1.0.0</td><td>35</td><td>100%</td>"), "{insight}");
    assert!(!insight.contains("9.9.9"), "{insight}");
    // The plugin nobody downloaded is named, without charts.
    assert!(insight.contains("Not downloaded in this period") && insight.contains("Team Calendar"), "{insight}");
    assert!(!insight.contains("<script") && !insight.contains("style="), "no script, no inline style (CSP)");

    // A rebuild with the same numbers writes nothing.
    let report = build_registry(&registry_of(registry.path()), site.path(), Scope::Full, late_november()).unwrap();
    assert_eq!(report.storefront, Vec::<String>::new());
    // New downloads of contoso's plugin only: its insight page is redone, acme's is not.
    let hash = "cd".repeat(32);
    let line = format!(
        "203.0.113.9 - - [29/Nov/2026:10:00:00 +0000] \"GET /targets/plugins/contoso/contoso.images/{hash}.contoso.images-1.0.0.zip HTTP/1.1\" 200 99 \"-\" \"trellis/0.1\"\n"
    );
    std::fs::write(registry.path().join("more.log"), line.repeat(4)).unwrap();
    trellis_index::stats::ingest(registry.path(), &[registry.path().join("more.log")]).unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["contoso.images".parse().unwrap()]));
    let report = build_registry(&registry_of(registry.path()), site.path(), scope.clone(), late_november()).unwrap();
    for path in ["publishers/contoso/insights/index.html", "publishers/contoso/index.html"] {
        assert!(report.storefront.contains(&path.to_owned()), "{path} not written: {:?}", report.storefront);
    }
    assert!(!report.storefront.contains(&"publishers/acme/insights/index.html".to_owned()), "{:?}", report.storefront);
    let publisher = page(site.path(), "publishers/contoso/index.html");
    assert!(publisher.contains(r#"href="../../publishers/contoso/insights/""#), "{publisher}");
    let contoso = page(site.path(), "publishers/contoso/insights/index.html");
    assert!(
        contoso.contains("<td>2026-11-29</td>")
            || contoso.contains(r#"<time datetime="2026-11-29">2026-11-29</time></td><td>4</td>"#),
        "{contoso}"
    );
    assert!(contoso.contains("<td>1.0.0</td><td>4</td><td>100%</td>"), "{contoso}");
    // Equal to a full build's.
    let full = tempfile::tempdir().unwrap();
    build_registry(&registry_of(registry.path()), full.path(), Scope::Full, late_november()).unwrap();
    for path in [
        "publishers/acme/insights/index.html",
        "publishers/contoso/insights/index.html",
        "publishers/contoso/index.html",
    ] {
        assert_eq!(page(site.path(), path), page(full.path(), path), "{path}");
    }

    // contoso's downloads gone from the statistics (only the example log counted):
    // a build that changes no plugin removes its insight page and the link to it.
    for file in [trellis_index::stats::COUNTS_FILE, trellis_index::stats::INGESTED_FILE] {
        std::fs::remove_file(registry.path().join(file)).unwrap();
    }
    example_downloads(registry.path());
    let report =
        build_registry(&registry_of(registry.path()), site.path(), Scope::Plugins(BTreeSet::new()), late_november())
            .unwrap();
    assert!(report.storefront.contains(&"publishers/contoso/index.html".to_owned()), "{:?}", report.storefront);
    no_insights(site.path());
    assert!(site.path().join("publishers/acme/insights/index.html").is_file());
    let full = tempfile::tempdir().unwrap();
    build_registry(&registry_of(registry.path()), full.path(), Scope::Full, late_november()).unwrap();
    no_insights(full.path());
    assert_eq!(page(site.path(), "publishers/contoso/index.html"), page(full.path(), "publishers/contoso/index.html"));
}

#[test]
fn chromium_draws_the_insight_charts_of_the_example_access_log_on_loopback() {
    let (Some(chromium), Some(chromedriver)) =
        (trellis_tests::tools::require("chromium"), trellis_tests::tools::require("chromedriver"))
    else {
        return;
    };
    let registry = registry();
    example_downloads(registry.path());
    // And 15 downloads of a newer release on the log's last two days.
    let hash = "ef".repeat(32);
    let line = |day: u32| {
        format!(
            "203.0.113.8 - - [{day}/Nov/2026:10:00:00 +0000] \"GET /targets/plugins/acme/acme.clock/{hash}.acme.clock-1.1.0.zip HTTP/1.1\" 200 99 \"-\" \"trellis/0.1\"\n"
        )
    };
    std::fs::write(registry.path().join("upgrade.log"), line(28).repeat(5) + &line(29).repeat(10)).unwrap();
    trellis_index::stats::ingest(registry.path(), &[registry.path().join("upgrade.log")]).unwrap();
    let site = tempfile::tempdir().unwrap();
    build_registry(&Registry::open(registry.path()).unwrap(), site.path(), Scope::Full, late_november()).unwrap();
    let server = trellis_index::serve::Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let url = server.url();
    let url = url.trim_end_matches('/');
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, profile.path());
    browser.resize(1280, 1400);

    // From the publisher page, the insights link.
    browser.open(&format!("{url}/publishers/acme/"));
    browser.script("document.getElementById('insights-link').click()", json!([]));
    browser.wait_for("return location.pathname.endsWith('/publishers/acme/insights/')");
    let charts = browser.script(
        "return [...document.querySelectorAll('svg.chart')].map(svg => {
             const box = svg.getBoundingClientRect();
             const labelled = (svg.getAttribute('aria-labelledby') || '').split(' ')
                 .map(id => document.getElementById(id)?.textContent || '');
             return {kind: svg.classList.contains('daily') ? 'daily' : 'adoption',
                     width: Math.round(box.width), height: Math.round(box.height),
                     bars: [...svg.querySelectorAll('rect.bar')].map(r => {
                         const b = r.getBBox(); return [Math.round(b.width), Math.round(b.height)]; }),
                     fill: getComputedStyle(svg.querySelector('rect.bar')).fill,
                     labelled};
         })",
        json!([]),
    );
    let charts = charts.as_array().unwrap();
    assert_eq!(charts.len(), 2, "{charts:?}");
    let (daily, adoption) = (&charts[0], &charts[1]);
    assert_eq!(daily["kind"], "daily");
    assert!(daily["width"].as_u64().unwrap() > 300 && daily["height"].as_u64().unwrap() > 60, "{daily}");
    let bars = daily["bars"].as_array().unwrap();
    assert!(bars.len() >= 5 && bars.iter().all(|b| b[0].as_u64() > Some(0) && b[1].as_u64() > Some(0)), "{daily}");
    // The stylesheet coloured them (the CSP allows no inline style).
    assert_ne!(daily["fill"], "rgb(0, 0, 0)", "{daily}");
    assert_eq!(daily["labelled"][0], "Daily downloads of Desk Clock");
    assert!(daily["labelled"][1].as_str().unwrap().contains("50 downloads in all"), "{daily}");
    assert_eq!(adoption["bars"].as_array().unwrap().len(), 2, "1.0.0 and 1.1.0: {adoption}");
    assert!(adoption["bars"][0][0].as_u64() > adoption["bars"][1][0].as_u64(), "{adoption}");
    // The table under each chart holds its numbers, folded away until opened.
    let tables = browser.script(
        "document.querySelectorAll('details').forEach(d => d.open = true);
         return [...document.querySelectorAll('table.data')].map(t =>
             [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent)));",
        json!([]),
    );
    assert_eq!(tables[0].as_array().unwrap().len(), bars.len(), "{tables}");
    assert_eq!(tables[1], json!([["1.0.0", "35", "70%"], ["1.1.0", "15", "30%"]]), "{tables}");
    browser.screenshot("insight");
    browser.resize(390, 844);
    let overflow = browser.script("return document.documentElement.scrollWidth - window.innerWidth", json!([]));
    assert!(overflow.as_i64().unwrap() <= 0, "the insight page scrolls sideways on a phone: {overflow}");
    browser.screenshot("insight-phone");
    let requests = browser.assert_quiet_and_local(url);
    assert!(requests >= 3, "the performance log saw {requests} requests");
}

/// The text of the element `id` of `html` (tags stripped), or a panic naming the page.
fn element_text(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let open = html[..start].rfind('<').unwrap();
    let tag: String = html[open + 1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let end = start + html[start..].find(&format!("</{tag}>")).unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[start..end].chars().skip_while(|c| *c != '>').skip(1) {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

#[test]
fn pages_show_each_releases_security_level_and_redo_what_shows_a_level_that_moved_with_age() {
    let registry = registry();
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    // Published today by an unverified publisher: signed, and why.
    let calendar = page(site.path(), "plugins/acme.calendar/index.html");
    assert!(element_text(&calendar, "security-level").starts_with("signed for version 2.0.0"), "{calendar}");
    let reasons = element_text(&calendar, "security-reasons");
    assert!(reasons.contains("signed by its developer"), "{reasons}");
    assert!(reasons.contains("published less than 30 days ago by an unverified publisher"), "{reasons}");
    assert!(element_text(&calendar, "release-levels").contains("2.0.0"), "{calendar}");
    assert!(calendar.contains("The publisher has not proved its domain"), "{calendar}");
    let listing = page(site.path(), "categories/productivity/index.html");
    assert_eq!(listing.matches("Security level: signed").count(), 2, "both cards: {listing}");
    assert!(page(site.path(), "publishers/acme/index.html").contains("Security level: signed"));

    // 35 days later the releases are established by age: the levels buckets change,
    // the catalog does not, and the storefront redoes the pages that show a level.
    let later: jiff::Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
    let scope = Scope::Plugins(BTreeSet::from(["contoso.images".parse().unwrap()]));
    let report = build_registry(&Registry::open(registry.path()).unwrap(), site.path(), scope, later).unwrap();
    let written: BTreeSet<&str> = report.storefront.iter().map(String::as_str).collect();
    for path in [
        "plugins/acme.calendar/index.html",
        "plugins/acme.clock/index.html",
        "categories/productivity/index.html",
        "tags/calendar/index.html",
        "publishers/acme/index.html",
    ] {
        assert!(written.contains(path), "{path} not redone: {written:?}");
    }
    let calendar = page(site.path(), "plugins/acme.calendar/index.html");
    let level = element_text(&calendar, "security-level");
    assert!(level.starts_with("established for version 2.0.0"), "{level}");
    assert!(!element_text(&calendar, "security-reasons").contains("less than 30 days"), "{calendar}");
    assert!(page(site.path(), "categories/productivity/index.html").contains("Security level: established"));
    // Nothing else moved: an unchanged rebuild writes nothing, and the pages are what
    // rendering the same site from scratch gives (a fresh full build would not do: it
    // would publish every release today).
    let again = build_registry(&Registry::open(registry.path()).unwrap(), site.path(), Scope::Full, later).unwrap();
    assert_eq!(again.storefront, Vec::<String>::new());
    let fresh = tempfile::tempdir().unwrap();
    for (path, bytes) in
        tree(site.path()).into_iter().filter(|(p, _)| !p.ends_with(".html") && !p.starts_with("_storefront"))
    {
        let to = fresh.path().join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let redone = build_registry(&Registry::open(registry.path()).unwrap(), fresh.path(), Scope::Full, later).unwrap();
    assert!(redone.storefront.contains(&"plugins/acme.calendar/index.html".to_owned()), "{:?}", redone.storefront);
    let pages = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(dir).into_iter().filter(|(p, _)| p.ends_with(".html")).collect()
    };
    let (incremental, scratch) = (pages(site.path()), pages(fresh.path()));
    assert_eq!(incremental.keys().collect::<Vec<_>>(), scratch.keys().collect::<Vec<_>>());
    for (path, bytes) in &incremental {
        assert_eq!(String::from_utf8_lossy(bytes), String::from_utf8_lossy(&scratch[path]), "{path}");
    }
}

/// The storefront's pages (HTML) of the site at `dir`.
fn html_pages(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir).into_iter().filter(|(p, _)| p.ends_with(".html")).collect()
}

/// `site`'s pages equal a full build's of the same registry, byte for byte (the home
/// page too: the same catalog gives the same home).
fn assert_pages_equal_a_full_builds(registry: &Path, site: &Path) {
    let full = tempfile::tempdir().unwrap();
    build(registry, full.path(), Scope::Full).unwrap();
    let (incremental, full) = (html_pages(site), html_pages(full.path()));
    assert_eq!(incremental.keys().collect::<Vec<_>>(), full.keys().collect::<Vec<_>>());
    for (path, bytes) in &incremental {
        assert_eq!(String::from_utf8_lossy(bytes), String::from_utf8_lossy(&full[path]), "{path}");
    }
}

#[test]
fn a_card_level_comes_from_the_pages_kept_cards_only_for_the_version_they_name() {
    let registry = registry();
    let key = fixture::key(1);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let only = |id: &str| Scope::Plugins(BTreeSet::from([id.parse().unwrap()]));
    // Each card page keeps the level of each card it shows, for the version shown.
    let cards_file = site.path().join("_storefront/cards/category-productivity-1.json");
    let cards: Value = serde_json::from_slice(&std::fs::read(&cards_file).unwrap()).unwrap();
    assert_eq!(cards["acme.calendar"], json!(["2.0.0", "signed"]), "{cards}");
    assert_eq!(cards["acme.clock"], json!(["1.0.0", "signed"]), "{cards}");
    // A publisher page keeps its cards with its members (in its publisher group).
    let publisher_file = site.path().join(publisher_group_of("acme"));
    let group: Value = serde_json::from_slice(&std::fs::read(&publisher_file).unwrap()).unwrap();
    let publisher = &group["publishers"]["acme"];
    assert_eq!(publisher["cards"]["acme.calendar"], json!(["2.0.0", "signed"]), "{publisher}");
    assert_eq!(publisher["members"].as_array().map(Vec::len), Some(2), "{publisher}");
    assert!(!site.path().join("_storefront/cards/publisher-acme.json").exists());

    // A new calendar release; then its page's kept cards replaced by a stale file that
    // names its old version with a level it never had: a build redoing the page for
    // another plugin (a clock release) must not show it.
    let calendar = ReleaseSpec::new("acme.calendar", "2.1.0").with_display(
        "Team Calendar",
        display("Shared calendars for teams", "Meetings and events.", &["productivity"], &["calendar"]),
    );
    fixture::add_release(registry.path(), &calendar, &key).unwrap();
    build(registry.path(), site.path(), only("acme.calendar")).unwrap();
    let stale = json!({"acme.calendar": ["2.0.0", "flagged"], "acme.clock": ["1.0.0", "signed"]});
    std::fs::write(&cards_file, serde_json::to_vec(&stale).unwrap()).unwrap();
    // The same stale card in the publisher's kept cards.
    let mut group: Value = serde_json::from_slice(&std::fs::read(&publisher_file).unwrap()).unwrap();
    group["publishers"]["acme"]["cards"] = stale.clone();
    std::fs::write(&publisher_file, serde_json::to_vec(&group).unwrap()).unwrap();
    fixture::add_release(registry.path(), &clock("1.1.0"), &key).unwrap();
    let report = build(registry.path(), site.path(), only("acme.clock")).unwrap();
    assert!(report.storefront.contains(&"categories/productivity/index.html".to_owned()), "{:?}", report.storefront);
    let listing = page(site.path(), "categories/productivity/index.html");
    assert!(!listing.contains("Security level: flagged"), "{listing}");
    assert_eq!(listing.matches("Security level: signed").count(), 2, "{listing}");
    let publisher_page = page(site.path(), "publishers/acme/index.html");
    assert!(!publisher_page.contains("Security level: flagged"), "{publisher_page}");
    assert_eq!(publisher_page.matches("Security level: signed").count(), 2, "{publisher_page}");
    let cards: Value = serde_json::from_slice(&std::fs::read(&cards_file).unwrap()).unwrap();
    assert_eq!(cards["acme.calendar"], json!(["2.1.0", "signed"]), "{cards}");
    assert_pages_equal_a_full_builds(registry.path(), site.path());

    // Every page's kept cards lost: the cards' levels come from the levels state again.
    std::fs::remove_dir_all(site.path().join("_storefront/cards")).unwrap();
    fixture::add_release(registry.path(), &clock("1.2.0"), &key).unwrap();
    let report = build(registry.path(), site.path(), only("acme.clock")).unwrap();
    assert!(report.storefront.contains(&publisher_group_of("acme")), "{:?}", report.storefront);
    assert_eq!(page(site.path(), "categories/productivity/index.html").matches("Security level: signed").count(), 2);
    assert_pages_equal_a_full_builds(registry.path(), site.path());

    // A storefront of an older trellis-index: a file a publisher
    // (`_storefront/publishers/<vendor>.json`, even older: a bare list of members with
    // the cards in a file of their own), no groups. The next build renders everything
    // once, into the groups, and removes the old files.
    let members = publisher_file_members(&publisher_file);
    std::fs::remove_dir_all(site.path().join("_storefront/publisher-groups")).unwrap();
    let old_file = site.path().join("_storefront/publishers/acme.json");
    std::fs::create_dir_all(old_file.parent().unwrap()).unwrap();
    std::fs::write(&old_file, serde_json::to_vec(&members).unwrap()).unwrap();
    let old_cards = site.path().join("_storefront/cards/publisher-acme.json");
    std::fs::write(&old_cards, serde_json::to_vec(&json!({"acme.clock": ["1.2.0", "signed"]})).unwrap()).unwrap();
    fixture::add_release(registry.path(), &clock("1.3.0"), &key).unwrap();
    let report = build(registry.path(), site.path(), only("acme.clock")).unwrap();
    assert!(!old_cards.exists(), "the old publisher cards file stayed");
    assert!(!old_file.parent().unwrap().exists(), "the old publisher files stayed");
    // Rendered whole: the group of a publisher with no change is back too.
    assert!(report.storefront.contains(&publisher_group_of("contoso")), "{:?}", report.storefront);
    assert_eq!(publisher_file_members(&publisher_file).as_array().map(Vec::len), Some(2));
    assert_pages_equal_a_full_builds(registry.path(), site.path());
}

/// The publisher group `vendor` falls in (`_storefront/publisher-groups/<first 10 bits
/// of its SHA-256>.json`).
fn publisher_group_of(vendor: &str) -> String {
    let digest = trellis_schema::Sha256::of(vendor.as_bytes());
    let bytes = digest.as_bytes();
    format!("_storefront/publisher-groups/{:03x}.json", u16::from(bytes[0]) << 2 | u16::from(bytes[1]) >> 6)
}

/// The kept members of the publisher `acme` in its group file at `path`.
fn publisher_file_members(path: &Path) -> Value {
    let kept: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    kept["publishers"]["acme"]["members"].clone()
}

#[test]
fn new_directories_are_staged_whole_and_a_stopped_builds_leftovers_never_show() {
    let registry = registry();
    let key = fixture::key(1);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    assert!(!site.path().join(".storefront-staging").exists(), "the staging directory stayed");
    // What a build that stopped before moving its staged directories left: a
    // half-written page of a plugin the next build also adds, and a stray file.
    let staged = site.path().join(".storefront-staging/plugins/contoso.video");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("index.html"), "<!doctype html><p>half").unwrap();
    std::fs::write(site.path().join(".storefront-staging/stray"), "x").unwrap();
    let video = ReleaseSpec::new("contoso.video", "1.0.0")
        .with_display("Video Cutter", display("Cut videos", "Trim clips.", &["design"], &["clips"]));
    fixture::add_release(registry.path(), &video, &key).unwrap();
    let only = Scope::Plugins(BTreeSet::from(["contoso.video".parse().unwrap()]));
    let report = build(registry.path(), site.path(), only).unwrap();
    // The new plugin's, category's and tag's directories were staged and moved in whole.
    for path in ["plugins/contoso.video/index.html", "categories/design/index.html", "tags/clips/index.html"] {
        assert!(report.storefront.contains(&path.to_owned()), "{path}: {:?}", report.storefront);
        assert!(page(site.path(), path).ends_with("</html>\n") || page(site.path(), path).ends_with("</html>"));
    }
    assert!(!page(site.path(), "plugins/contoso.video/index.html").contains("half"));
    assert!(!site.path().join(".storefront-staging").exists(), "the staging directory stayed");
    assert_pages_equal_a_full_builds(registry.path(), site.path());

    // A staging path that is a file (not a directory) is cleared the same way.
    std::fs::write(site.path().join(".storefront-staging"), "not a directory").unwrap();
    fixture::add_release(registry.path(), &clock("1.1.0"), &key).unwrap();
    build(registry.path(), site.path(), Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]))).unwrap();
    assert!(!site.path().join(".storefront-staging").exists());
    assert_pages_equal_a_full_builds(registry.path(), site.path());
}

/// The storefront's files (pages, assets, images and its state) of the site at `dir`.
fn storefront_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| {
            ["index.html", "categories/", "tags/", "plugins/", "publishers/", "search/", "assets/", "images/"]
                .iter()
                .chain(&["_storefront/", ".storefront-staging"])
                .any(|prefix| p.starts_with(prefix))
        })
        .collect()
}

#[test]
fn a_page_that_fails_to_render_midway_refuses_the_storefront_with_no_page_replaced() {
    let registry = registry();
    let key = fixture::key(1);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let before = storefront_files(site.path());
    // An operator template that renders the sample page (so the theme loads) and every
    // plugin but one: pages are written as they are rendered, and the others, rendered
    // and written before or after it, must not replace a page of the site.
    let theme = registry.path().join("storefront");
    std::fs::create_dir_all(&theme).unwrap();
    let plugin = include_str!("../src/storefront/theme/plugin.html").replace(
        "<article class=\"plugin\"",
        "{% if p.id == \"acme.calendar\" %}{{ nothing.here }}{% endif %}<article data-theme=\"ours\" class=\"plugin\"",
    );
    std::fs::write(theme.join("plugin.html"), plugin).unwrap();
    fixture::add_release(registry.path(), &clock("1.1.0"), &key).unwrap();
    let error = build(registry.path(), site.path(), Scope::Full).unwrap_err().to_string();
    assert!(error.contains("plugin.html"), "{error}");
    assert_eq!(storefront_files(site.path()), before, "a refused storefront changed the site's pages");

    // The template fixed: the next build gives what a full build of a fresh site gives.
    let fixed = include_str!("../src/storefront/theme/plugin.html")
        .replace("<article class=\"plugin\"", "<article data-theme=\"ours\" class=\"plugin\"");
    std::fs::write(theme.join("plugin.html"), fixed).unwrap();
    let only = Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]));
    build(registry.path(), site.path(), only).unwrap();
    assert!(page(site.path(), "plugins/acme.calendar/index.html").contains("data-theme=\"ours\""));
    assert!(page(site.path(), "plugins/acme.clock/index.html").contains("1.1.0"));
    assert!(!site.path().join(".storefront-staging").exists(), "the staging directory stayed");
    assert_pages_equal_a_full_builds(registry.path(), site.path());
}

/// The one file of the site's `targets/catalog/` whose name ends with `.{target_name}`
/// (a catalog document under its hashed path).
fn published_catalog_file(site: &Path, target_name: &str) -> std::path::PathBuf {
    let suffix = format!(".{target_name}");
    let files: Vec<_> = std::fs::read_dir(site.join("targets/catalog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(&suffix))
        .collect();
    assert_eq!(files.len(), 1, "{target_name}: {files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn a_carried_catalog_document_edited_after_signing_is_never_rendered() {
    let registry = registry();
    let key = fixture::key(1);
    let site = tempfile::tempdir().unwrap();
    build(registry.path(), site.path(), Scope::Full).unwrap();
    let summary = "Resize and crop pictures";
    assert!(page(site.path(), "categories/media/index.html").contains(summary));
    // contoso.images's record bucket and its category's listing page: an incremental
    // build of acme.clock carries both over (reads neither) and the storefront reads
    // them from the site.
    let images = "contoso.images".parse().unwrap();
    let bucket = trellis_schema::catalog::record_bucket(&images);
    assert_ne!(bucket, trellis_schema::catalog::record_bucket(&"acme.clock".parse().unwrap()));
    let only = Scope::Plugins(BTreeSet::from(["acme.clock".parse().unwrap()]));
    for (version, target_name) in
        [("1.1.0", "category-media-1.json".to_owned()), ("1.2.0", format!("records-{bucket:02x}.json"))]
    {
        let file = published_catalog_file(site.path(), &target_name);
        let signed = std::fs::read(&file).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(text.contains(summary), "{target_name}: {text}");
        // The same length, so only its SHA-256 tells.
        let edited = text.replace(summary, "Resize and crop pXctures");
        assert_eq!(edited.len(), signed.len());
        std::fs::write(&file, &edited).unwrap();
        // A lost storefront state (still lost after a refused storefront): every page is
        // rendered, from every catalog document.
        let state = site.path().join("_storefront/state.json");
        if state.exists() {
            std::fs::remove_file(&state).unwrap();
        }
        let before = storefront_files(site.path());
        fixture::add_release(registry.path(), &clock(version), &key).unwrap();
        let error = build(registry.path(), site.path(), only.clone()).unwrap_err().to_string();
        assert!(
            error.contains(&target_name) && error.contains("is not the document its signed role lists"),
            "{target_name}: {error}"
        );
        assert_eq!(
            storefront_files(site.path()),
            before,
            "{target_name}: a refused storefront changed the site's pages"
        );
        for (path, bytes) in html_pages(site.path()) {
            assert!(!String::from_utf8_lossy(&bytes).contains("pXctures"), "{path} shows the edited {target_name}");
        }
        std::fs::write(&file, &signed).unwrap();
    }
    // The signed bytes back: the next incremental build renders what a full build does.
    build(registry.path(), site.path(), only).unwrap();
    assert!(page(site.path(), "plugins/acme.clock/index.html").contains("1.2.0"));
    assert_pages_equal_a_full_builds(registry.path(), site.path());
}

/// The page data group `id` falls in (`_storefront/pages/<first 12 bits of its SHA-256>.json`).
fn group_of(id: &str) -> String {
    let digest = trellis_schema::Sha256::of(id.as_bytes());
    let bytes = digest.as_bytes();
    format!("_storefront/pages/{:03x}.json", u16::from(bytes[0]) << 4 | u16::from(bytes[1]) >> 4)
}

/// The page data groups of the site: group file → plugin → its kept data.
fn page_groups(site: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    let dir = site.join("_storefront/pages");
    let mut groups = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let group: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        let pages = group["pages"].as_object().unwrap().iter().map(|(id, data)| (id.clone(), data.clone())).collect();
        groups.insert(format!("_storefront/pages/{}", entry.file_name().to_string_lossy()), pages);
    }
    groups
}

/// The plugins the site has a page for.
fn listed_plugins(site: &Path) -> BTreeSet<String> {
    std::fs::read_dir(site.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn page_data_lives_in_groups_each_rewritten_whole_and_pages_are_redone_from_them() {
    use std::sync::Mutex;
    use trellis_index::storefront::{self, Insights, PageLimits, Prepared, StorefrontJob, Theme};
    use trellis_index::synth::{self, SynthSite, SynthSpec};
    use trellis_schema::PluginId;

    let work = tempfile::tempdir().unwrap();
    let mut site = SynthSite::init(work.path(), 4, now()).unwrap();
    let plan = synth::plan(SynthSpec { plugins: 600, versions: 1, seed: 7 });
    site.known = plan.iter().map(|p| p.id.clone()).collect();
    // What each plugin's package holds now (a release added below is put in).
    let inputs: Mutex<BTreeMap<PluginId, trellis_index::release::PluginInput>> =
        Mutex::new(plan.iter().map(|p| (p.id.clone(), synth::plugin_input(p.clone()))).collect());
    let (theme, limits, insights) = (Theme::builtin("Test Store").unwrap(), PageLimits::default(), Insights::default());
    // Every plugin the storefront asks to be read from its package.
    let asked: Mutex<BTreeSet<PluginId>> = Mutex::new(BTreeSet::new());
    let load = |ids: &BTreeSet<PluginId>| {
        asked.lock().unwrap().extend(ids.iter().cloned());
        let wanted: Vec<_> = ids.iter().map(|id| inputs.lock().unwrap()[id].clone()).collect();
        storefront::prepare(&wanted, &limits)
    };
    let job = |prepared| StorefrontJob { prepared, theme: &theme, insights: &insights, load: &load };
    let all: Vec<_> = inputs.lock().unwrap().values().cloned().collect();
    let prepared = storefront::prepare(&all, &limits).unwrap();
    site.build(all, Scope::Full).unwrap();
    storefront::publish(&site.site_dir, job(prepared)).unwrap();
    let site_dir = site.site_dir.clone();

    // Each listed plugin's data is in its group and nowhere else; no file a plugin.
    assert!(!site_dir.join("_storefront/plugins").exists());
    let listed = listed_plugins(&site_dir);
    assert!(listed.len() > 550, "{} plugins listed", listed.len());
    let groups = page_groups(&site_dir);
    let mut placed = BTreeMap::new();
    for (group, members) in &groups {
        for (id, data) in members {
            assert_eq!(&group_of(id), group, "{id} is kept in the wrong group");
            assert_eq!(data["id"], id.as_str());
            assert!(placed.insert(id.clone(), group.clone()).is_none());
        }
    }
    assert_eq!(placed.keys().cloned().collect::<BTreeSet<_>>(), listed, "kept data and pages differ");
    assert!(groups.len() < listed.len(), "no two plugins share a group: {} groups", groups.len());

    // One release of a plugin sharing its group: the group is rewritten whole, the
    // other plugin's data unchanged, and nothing is read from a package.
    let (x, y) = listed
        .iter()
        .find_map(|x| Some((x.clone(), listed.iter().find(|y| *y != x && group_of(y) == group_of(x))?.clone())))
        .unwrap();
    let x_id: PluginId = x.parse().unwrap();
    let mut grown = plan.iter().find(|p| p.id == x_id).unwrap().clone();
    let mut release = grown.releases.last().unwrap().clone();
    release.version = semver::Version::new(99, 0, 0);
    release.yanked = false;
    grown.releases.push(release);
    let changed = synth::plugin_input(grown);
    inputs.lock().unwrap().insert(x_id.clone(), changed.clone());
    let prepared = storefront::prepare(std::slice::from_ref(&changed), &limits).unwrap();
    site.build(vec![changed], Scope::Plugins(BTreeSet::from([x_id.clone()]))).unwrap();
    let report = storefront::publish(&site_dir, job(prepared)).unwrap();
    assert!(report.written.contains(&group_of(&x)), "{:?}", report.written);
    let after = page_groups(&site_dir);
    assert_eq!(after[&group_of(&x)][&y], groups[&group_of(&x)][&y], "the other plugin's data changed");
    assert_eq!(after[&group_of(&x)][&x]["version"], "99.0.0");
    assert_eq!(after.len(), groups.len());
    assert!(asked.lock().unwrap().is_empty(), "packages read: {:?}", asked.lock().unwrap());
    assert!(page(&site_dir, &format!("plugins/{x}/index.html")).contains("99.0.0"));
    let pages_now = html_pages(&site_dir);

    // A record bucket the state does not know, with no kept digests: every plugin of
    // it is redone from the groups (no package opened), each page the bytes it was.
    let y_id: PluginId = y.parse().unwrap();
    let bucket_state =
        site_dir.join(format!("_storefront/records-{:02x}.json", trellis_schema::catalog::record_bucket(&y_id)));
    let in_bucket: BTreeSet<&String> = listed
        .iter()
        .filter(|id| {
            trellis_schema::catalog::record_bucket(&id.parse().unwrap())
                == trellis_schema::catalog::record_bucket(&y_id)
        })
        .collect();
    let forget_bucket = || {
        std::fs::remove_file(&bucket_state).unwrap();
        let state_path = site_dir.join("_storefront/state.json");
        let mut state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
        let target = format!("catalog/records-{:02x}.json", trellis_schema::catalog::record_bucket(&y_id));
        assert!(state["buckets"].as_object_mut().unwrap().remove(&target).is_some(), "{target} not in the state");
        std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    };
    forget_bucket();
    let report = storefront::publish(&site_dir, job(Prepared::default())).unwrap();
    assert!(
        report.rendered >= in_bucket.len(),
        "{} pages rendered, {} in the bucket",
        report.rendered,
        in_bucket.len()
    );
    assert!(asked.lock().unwrap().is_empty(), "packages read: {:?}", asked.lock().unwrap());
    assert!(!report.written.iter().any(|p| p.starts_with("plugins/")), "{:?}", report.written);
    assert_same_pages(&html_pages(&site_dir), &pages_now);

    // A bucket state an older trellis-index kept (each digest of the decoded summary
    // serialized again) redoes no page: a publish that reads the bucket renders what
    // one that reads nothing does.
    let rendered_alone = storefront::publish(&site_dir, job(Prepared::default())).unwrap().rendered;
    let bucket_name = format!("records-{:02x}.json", trellis_schema::catalog::record_bucket(&y_id));
    let state =
        serde_json::from_slice::<Value>(&std::fs::read(site_dir.join("_storefront/state.json")).unwrap()).unwrap();
    let sha256 = state["buckets"][format!("catalog/{bucket_name}")].as_str().unwrap().to_owned();
    let records: Value = serde_json::from_slice(
        &std::fs::read(site_dir.join(format!("targets/catalog/{sha256}.{bucket_name}"))).unwrap(),
    )
    .unwrap();
    let reviews = &state["reviews"];
    let legacy: BTreeMap<String, String> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            let summary: trellis_schema::catalog::PluginSummary =
                serde_json::from_value(record["summary"].clone()).unwrap();
            let mut bytes = serde_json::to_vec(&summary).unwrap();
            bytes.extend_from_slice(reviews[summary.id.as_str()].as_str().unwrap_or_default().as_bytes());
            (summary.id.to_string(), trellis_schema::Sha256::of(&bytes).to_hex())
        })
        .collect();
    assert_eq!(legacy.len(), in_bucket.len());
    let digests_now: BTreeMap<String, String> = serde_json::from_slice(&std::fs::read(&bucket_state).unwrap()).unwrap();
    // The builder writes each summary as serde serializes it: the digests of the
    // summaries as published are those an older trellis-index kept.
    assert_eq!(digests_now, legacy);
    forget_bucket();
    std::fs::write(&bucket_state, serde_json::to_vec(&legacy).unwrap()).unwrap();
    let report = storefront::publish(&site_dir, job(Prepared::default())).unwrap();
    assert_eq!(report.rendered, rendered_alone, "pages redone for a legacy bucket state");
    let moved: BTreeMap<String, String> = serde_json::from_slice(&std::fs::read(&bucket_state).unwrap()).unwrap();
    assert_eq!(moved, digests_now);
    assert_same_pages(&html_pages(&site_dir), &pages_now);

    // The same for a levels bucket: each plugin's kept digest is now of its entry as
    // published; an older trellis-index kept the digest of the entry parsed and
    // serialized again. A publish that reads the bucket with those redoes no page,
    // and replaces them; one whose kept digest differs redoes that plugin's pages.
    let number = trellis_schema::security_level::levels_bucket(&y_id);
    let kept_levels = site_dir.join(format!("_storefront/levels-{number:02x}.json"));
    let levels_target = format!("security/levels-{number:02x}.json");
    let kept_now: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(&kept_levels).unwrap()).unwrap();
    let state =
        serde_json::from_slice::<Value>(&std::fs::read(site_dir.join("_storefront/state.json")).unwrap()).unwrap();
    let sha256 = state["levels"][&levels_target].as_str().unwrap().to_owned();
    let bucket: trellis_schema::security_level::LevelsBucket = serde_json::from_slice(
        &std::fs::read(site_dir.join(format!("targets/security/{sha256}.levels-{number:02x}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(kept_now.len(), bucket.plugins.len());
    assert!(kept_now.contains_key(&y), "{y} not kept: {kept_now:?}");
    let legacy = |altered: Option<&str>| -> BTreeMap<String, Value> {
        (bucket.plugins.iter())
            .map(|(id, levels)| {
                let mut bytes = serde_json::to_vec(levels).unwrap();
                if altered == Some(id.as_str()) {
                    bytes.push(b' ');
                }
                let digest = trellis_schema::Sha256::of(&bytes).to_hex();
                (id.to_string(), json!({"digest": digest, "levels": kept_now[id.as_str()]["levels"]}))
            })
            .collect()
    };
    let forget_levels = |kept: &BTreeMap<String, Value>| {
        std::fs::write(&kept_levels, serde_json::to_vec(kept).unwrap()).unwrap();
        let state_path = site_dir.join("_storefront/state.json");
        let mut state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
        assert!(state["levels"].as_object_mut().unwrap().remove(&levels_target).is_some());
        std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    };
    forget_levels(&legacy(None));
    let report = storefront::publish(&site_dir, job(Prepared::default())).unwrap();
    assert_eq!(report.rendered, rendered_alone, "pages redone for a legacy levels state");
    let replaced: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(&kept_levels).unwrap()).unwrap();
    assert_eq!(replaced, kept_now);
    forget_levels(&legacy(Some(&y)));
    let report = storefront::publish(&site_dir, job(Prepared::default())).unwrap();
    assert!(report.rendered > rendered_alone, "{} pages rendered for a changed level", report.rendered);
    assert_same_pages(&html_pages(&site_dir), &pages_now);

    // A group that does not parse: its plugins of that bucket are read from their
    // packages instead (exactly those), the pages the same.
    std::fs::write(site_dir.join(group_of(&y)), "{").unwrap();
    forget_bucket();
    storefront::publish(&site_dir, job(Prepared::default())).unwrap();
    let expected: BTreeSet<PluginId> =
        in_bucket.iter().filter(|id| group_of(id) == group_of(&y)).map(|id| id.parse().unwrap()).collect();
    assert_eq!(*asked.lock().unwrap(), expected);
    assert_same_pages(&html_pages(&site_dir), &pages_now);
    assert!(page_groups(&site_dir)[&group_of(&y)].contains_key(&y));

    // A storefront of an older trellis-index (a data file a plugin, no groups; here
    // only y's kept): the next build renders it whole into the groups, y from its old
    // file, the others from their packages, and removes the old files.
    let old = site_dir.join("_storefront/plugins");
    std::fs::create_dir_all(&old).unwrap();
    let y_data = serde_json::to_vec(&page_groups(&site_dir)[&group_of(&y)][&y]).unwrap();
    std::fs::write(old.join(format!("{y}.json")), y_data).unwrap();
    std::fs::remove_dir_all(site_dir.join("_storefront/pages")).unwrap();
    asked.lock().unwrap().clear();
    let report = storefront::publish(&site_dir, job(Prepared::default())).unwrap();
    assert!(!old.exists(), "the old page data stayed");
    assert!(report.removed.contains(&"_storefront/plugins/".to_owned()), "{:?}", report.removed);
    let others: BTreeSet<PluginId> = listed.iter().filter(|id| **id != y).map(|id| id.parse().unwrap()).collect();
    assert_eq!(*asked.lock().unwrap(), others, "y is read from its old file, the others from their packages");
    let regrouped = page_groups(&site_dir);
    assert_eq!(regrouped.values().map(BTreeMap::len).sum::<usize>(), listed.len());
    assert_same_pages(&html_pages(&site_dir), &pages_now);
}

/// `now` and `then` hold the same pages, byte for byte (names the first that differs).
fn assert_same_pages(now: &BTreeMap<String, Vec<u8>>, then: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(now.keys().collect::<Vec<_>>(), then.keys().collect::<Vec<_>>());
    for (path, bytes) in now {
        if bytes != &then[path] {
            let (a, b) = (String::from_utf8_lossy(bytes), String::from_utf8_lossy(&then[path]));
            let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
            let context = |s: &str| s.chars().skip(at.saturating_sub(80)).take(240).collect::<String>();
            panic!("{path} differs:\nnow:  {}\nthen: {}", context(&a), context(&b));
        }
    }
}

/// The storefront's pages and state in place in the site at `dir` (not the staging
/// directory).
fn visible_storefront(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    storefront_files(dir).into_iter().filter(|(p, _)| !p.starts_with(".storefront-staging")).collect()
}

#[test]
fn the_storefront_rendered_beside_the_build_shows_nothing_before_its_metadata_and_equals_one_rendered_after() {
    use trellis_index::build::{BuildError, Signing};
    use trellis_index::storefront::{self, Insights, PageLimits, Prepared, StorefrontJob, Theme};
    use trellis_index::synth::{self, SynthSite, SynthSpec};
    use trellis_schema::PluginId;

    let work = tempfile::tempdir().unwrap();
    let plan = synth::plan(SynthSpec { plugins: 300, versions: 2, seed: 11 });
    let site = |name: &str| {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut site = SynthSite::init(&dir, 4, now()).unwrap();
        site.known = plan.iter().map(|p| p.id.clone()).collect();
        site
    };
    // `after`: the site built, then its storefront rendered from the site's files (as
    // before); `beside`: both at once, the storefront from the documents handed over.
    let (after, beside) = (site("after"), site("beside"));
    let (theme, limits, insights) = (Theme::builtin("Test Store").unwrap(), PageLimits::default(), Insights::default());
    let nothing_more = |_: &BTreeSet<PluginId>| Ok(Prepared::default());
    let job = |prepared| StorefrontJob { prepared, theme: &theme, insights: &insights, load: &nothing_more };
    let inputs: Vec<_> = plan.iter().cloned().map(synth::plugin_input).collect();
    let prepared = storefront::prepare(&inputs, &limits).unwrap();
    after.build(inputs.clone(), Scope::Full).unwrap();
    storefront::publish(&after.site_dir, job(prepared)).unwrap();

    // When the build has published (its timestamp in place), no page is yet.
    let published = |site: &SynthSite| {
        let bytes = std::fs::read(trellis_index::site::timestamp_file(&site.site_dir)).unwrap();
        let timestamp: Value = serde_json::from_slice(&bytes).unwrap();
        timestamp["signed"]["version"].as_u64().unwrap()
    };
    let mut seen = None;
    let built = storefront::build_and_publish(
        beside.input(inputs, Scope::Full).unwrap(),
        &beside.site_dir,
        Signing::Signed,
        job(storefront::prepare(&plan.iter().cloned().map(synth::plugin_input).collect::<Vec<_>>(), &limits).unwrap()),
        |report| {
            seen = Some((published(&beside), report.timestamp_version, visible_storefront(&beside.site_dir)));
            Ok(())
        },
    )
    .unwrap();
    let (version, reported, visible) = seen.unwrap();
    assert_eq!(version, reported, "the build had not published its timestamp");
    assert!(visible.is_empty(), "storefront files in place before the metadata: {:?}", visible.keys());
    let storefront = built.storefront.unwrap();
    assert!(storefront.rendered > 300, "{} pages rendered", storefront.rendered);
    assert!(!beside.site_dir.join(".storefront-staging").exists(), "the staging directory stayed");
    assert_same_pages(&html_pages(&beside.site_dir), &html_pages(&after.site_dir));
    assert_eq!(visible_storefront(&beside.site_dir), visible_storefront(&after.site_dir));

    // One release more: a build that fails once the storefront has its documents (here
    // the caller's state after the timestamp) leaves every storefront file as it was.
    let mut grown = plan[150].clone();
    let mut release = grown.releases.last().unwrap().clone();
    release.version = semver::Version::new(99, 0, 0);
    release.yanked = false;
    grown.releases.push(release);
    let id = grown.id.clone();
    let changed = synth::plugin_input(grown);
    let only = Scope::Plugins(BTreeSet::from([id.clone()]));
    let before = storefront_files(&beside.site_dir);
    let failed = storefront::build_and_publish(
        beside.input(vec![changed.clone()], only.clone()).unwrap(),
        &beside.site_dir,
        Signing::Signed,
        job(storefront::prepare(std::slice::from_ref(&changed), &limits).unwrap()),
        |_| Err(BuildError::Trust("stopped after the timestamp".into())),
    );
    assert!(failed.unwrap_err().to_string().contains("stopped after the timestamp"));
    let now = storefront_files(&beside.site_dir);
    let moved: Vec<&String> =
        now.keys().chain(before.keys()).filter(|path| now.get(*path) != before.get(*path)).collect();
    assert!(moved.is_empty(), "a failed build changed the storefront: {moved:?}");

    // The same release again: the storefront catches up, equal to the one rendered after.
    let prepared = storefront::prepare(std::slice::from_ref(&changed), &limits).unwrap();
    after.build(vec![changed.clone()], only.clone()).unwrap();
    storefront::publish(&after.site_dir, job(prepared)).unwrap();
    let built = storefront::build_and_publish(
        beside.input(vec![changed.clone()], only).unwrap(),
        &beside.site_dir,
        Signing::Signed,
        job(storefront::prepare(std::slice::from_ref(&changed), &limits).unwrap()),
        |_| Ok(()),
    )
    .unwrap();
    let written = built.storefront.unwrap().written;
    assert!(written.contains(&format!("plugins/{id}/index.html")), "{written:?}");
    assert!(page(&beside.site_dir, &format!("plugins/{id}/index.html")).contains("99.0.0"));
    assert_same_pages(&html_pages(&beside.site_dir), &html_pages(&after.site_dir));
    assert_eq!(visible_storefront(&beside.site_dir), visible_storefront(&after.site_dir));
}
