//! Templates and the values pages are rendered from.
//!
//! Owns the theme (the templates, stylesheet, search script and generic icon built
//! into the binary, each replaceable by a file of the same name in the registry's
//! `storefront/` directory) and turning catalog records and page data into the
//! contexts of `home`, `categories`, `listing`, `publisher`, `plugin` and `search`.
//! minijinja escapes every value in `.html` templates; only the Markdown that
//! [`super::page::markdown`] made safe is marked `|safe`.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, Value, context};
use serde::Serialize;
use trellis_schema::catalog::{CatalogHead, CatalogRecord, ListingKind, ListingPage, PluginReviews, PluginSummary};
use trellis_schema::security_level::{Level, PluginLevels};
use trellis_schema::{PluginId, Sha256};

use super::StorefrontError;
use super::insight::{self, Insights};
use super::page::PageData;

const TEMPLATES: [(&str, &str); 9] = [
    ("base.html", include_str!("theme/base.html")),
    ("macros.html", include_str!("theme/macros.html")),
    ("home.html", include_str!("theme/home.html")),
    ("categories.html", include_str!("theme/categories.html")),
    ("listing.html", include_str!("theme/listing.html")),
    ("publisher.html", include_str!("theme/publisher.html")),
    ("insight.html", include_str!("theme/insight.html")),
    ("plugin.html", include_str!("theme/plugin.html")),
    ("search.html", include_str!("theme/search.html")),
];
/// Reviews a plugin page shows (the newest; the catalog document holds up to
/// [`trellis_schema::catalog::REVIEWS_PER_DOC`]).
pub(super) const REVIEWS_SHOWN: usize = 20;

/// The storefront's layout (which pages and state files exist), part of
/// [`Theme::digest`]: `2`, insight pages only for publishers with downloads in the
/// window; `3`, the publishers' kept data in groups (`_storefront/publisher-groups/`).
const LAYOUT: &str = "layout 3";

const STYLE: &str = include_str!("theme/style.css");
const SCRIPT: &str = include_str!("theme/search.js");
const ICON: &str = include_str!("theme/plugin.svg");

/// The templates and assets of a storefront.
#[derive(Debug)]
pub struct Theme {
    env: Environment<'static>,
    sources: Vec<(String, String)>,
    style: String,
    script: String,
    icon: String,
    name: String,
}

impl Theme {
    /// The built-in theme, for a store called `name`.
    pub fn builtin(name: &str) -> Result<Self, StorefrontError> {
        Self::with(name, None)
    }

    /// The built-in theme with the operator's replacements from `dir` (the registry's
    /// `storefront/`: `base.html`, …, `style.css`, `search.js`, `plugin.svg`), when
    /// it exists.
    pub fn load(name: &str, dir: &Path) -> Result<Self, StorefrontError> {
        Self::with(name, Some(dir))
    }

    fn with(name: &str, dir: Option<&Path>) -> Result<Self, StorefrontError> {
        let read = |file: &str, builtin: &str| -> Result<String, StorefrontError> {
            let Some(dir) = dir else { return Ok(builtin.to_owned()) };
            let path = dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(builtin.to_owned()),
                Err(e) => Err(StorefrontError::Io(trellis_client::fs::FsError::new("reading", path, e))),
            }
        };
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_formatter(html_formatter);
        let mut sources = Vec::new();
        for (file, builtin) in TEMPLATES {
            let source = read(file, builtin)?;
            env.add_template_owned(file.to_owned(), source.clone())
                .map_err(|e| StorefrontError::Template { name: file.to_owned(), reason: format!("{e:#}") })?;
            sources.push((file.to_owned(), source));
        }
        let theme = Self {
            env,
            sources,
            style: read("style.css", STYLE)?,
            script: read("search.js", SCRIPT)?,
            icon: read("plugin.svg", ICON)?,
            name: name.to_owned(),
        };
        theme.check()?;
        Ok(theme)
    }

    /// Renders every page kind once with a sample plugin, so a template that fails
    /// at render time (an undefined value, a bad filter) refuses the build before
    /// anything is written rather than after the site was.
    fn check(&self) -> Result<(), StorefrontError> {
        let sample = |reason: String| StorefrontError::Template { name: "(sample)".into(), reason };
        let id: PluginId = "example.plugin".parse().map_err(|e| sample(format!("{e}")))?;
        let summary = PluginSummary {
            id: id.clone(),
            name: "Example".into(),
            summary: "An example".into(),
            vendor: "Example".into(),
            version: semver::Version::new(1, 0, 0),
            channel: trellis_schema::plugin::Channel::Stable,
            host: trellis_schema::plugin::HostRequirement {
                id: "host".into(),
                api_version_requirement: semver::VersionReq::STAR,
            },
            platforms: vec![trellis_schema::plugin::Platform::Any],
            pricing: trellis_schema::plugin::PricingModel::Paid,
            permissions: vec!["network".into()],
            categories: vec!["utility".into()],
            tags: vec!["example".into()],
            rating: Some(trellis_schema::catalog::Rating {
                tenths: 45,
                count: 2,
                histogram: [0, 0, 0, 1, 1],
                recent_tenths: None,
            }),
            downloads: 10,
            recent_downloads: 4,
            updated: String::new(),
            icon: None,
        };
        let record = CatalogRecord {
            summary: summary.clone(),
            created: String::new(),
            releases: 1,
            length: 0,
            terms: BTreeMap::new(),
        };
        let size = |name: &str| trellis_schema::catalog::ListingSize { name: name.into(), plugins: 1, pages: 1 };
        let head = CatalogHead {
            format: trellis_schema::catalog::CATALOG_FORMAT,
            generated: String::new(),
            plugins: 1,
            releases: 1,
            average_length: 1,
            categories: vec![size("utility")],
            tags: vec![size("example")],
            featured: vec![summary.clone()],
            trending: vec![summary.clone()],
            new: vec![summary.clone()],
            updated: vec![summary],
        };
        let shards = BTreeMap::new();
        let context = Context::new(self, &head, 1, &shards, "");
        let data = PageData {
            id,
            version: "1.0.0".into(),
            vendor_id: "example".into(),
            vendor_website: Some("https://example.com".into()),
            icon: None,
            screenshots: vec![super::page::Shot {
                src: "images/x.png".into(),
                caption: "A".into(),
                alt: "A".into(),
                width: 1,
                height: 1,
            }],
            description_html: String::new(),
            readme_html: Some(String::new()),
            release_notes: Some("Notes".into()),
            permissions: vec![super::page::PermissionLine {
                plain: "p".into(),
                risk: "low".into(),
                reason: "r".into(),
            }],
            dependencies: vec![super::page::DependencyLine { id: "example.other".into(), requirement: "^1".into() }],
            versions: vec![super::page::VersionLine {
                version: "1.0.0".into(),
                channel: "stable".into(),
                yanked: false,
            }],
            trial_days: 7,
            license: "MIT".into(),
            repository: Some("https://example.com".into()),
        };
        context.fixed_pages()?;
        for page in [1, 2] {
            context.listing_page(&ListingPage {
                format: trellis_schema::catalog::CATALOG_FORMAT,
                kind: ListingKind::Category,
                name: "utility".into(),
                page,
                pages: 2,
                total: 101,
                plugins: vec![record.summary.clone()],
            })?;
        }
        for insights in [true, false] {
            context.publisher_page("example", std::slice::from_ref(&record.summary), insights)?;
        }
        let day = |d: &str| d.parse::<jiff::civil::Date>().map_err(|e| sample(format!("{e}")));
        let window = insight::Window { first: day("2026-08-03")?, last: day("2026-10-31")? };
        let mut daily = vec![0; insight::DAYS];
        daily[3] = 2;
        let figures = insight::PluginFigures { daily, versions: BTreeMap::from([("1.0.0".to_owned(), 2)]) };
        let sample_insights = Insights {
            window: Some(window),
            publishers: BTreeMap::from([(
                "example".to_owned(),
                BTreeMap::from([(record.summary.id.clone(), figures)]),
            )]),
        };
        for insights in [&sample_insights, &Insights::default()] {
            context.insight_page("example", std::slice::from_ref(&record.summary), insights)?;
        }
        let reviews = PluginReviews {
            format: trellis_schema::catalog::CATALOG_FORMAT,
            plugin: record.summary.id.clone(),
            total: 1,
            reviews: vec![trellis_schema::catalog::PublishedReview {
                author: "octocat".into(),
                stars: 4,
                version: semver::Version::new(1, 0, 0),
                date: "2026-11-01".into(),
                text: "Good.".into(),
            }],
        };
        let levels = PluginLevels {
            publisher: trellis_schema::security_level::PublisherStanding {
                verified: false,
                domain: Some("example.com".into()),
                reason: Some("no proof".into()),
                checked: None,
            },
            releases: vec![trellis_schema::security_level::ReleaseLevel {
                version: semver::Version::new(1, 0, 0),
                published: "2026-11-01".into(),
                signing_keys: 1,
                max_permission_risk: None,
                scan: trellis_schema::security_level::ScanOutcome::NotRun,
                advisory: None,
                level: Level::Signed,
                reasons: vec![trellis_schema::security_level::Reason::DeveloperSigned],
            }],
        };
        let card_levels = BTreeMap::from([(record.summary.id.clone(), Level::Signed)]);
        let with_levels = Context::new(self, &head, 1, &shards, "").with_levels(&card_levels);
        with_levels.fixed_pages()?;
        with_levels.plugin_page(&record.summary, Some(&data), Some(&reviews), Some(&levels))?;
        context.plugin_page(&record.summary, None, None, None)?;
        Ok(())
    }

    /// A digest of everything the pages depend on besides the data: a different
    /// theme redoes every page.
    pub fn digest(&self) -> String {
        let mut hasher = trellis_schema::digest::Hasher::new();
        // Which pages exist, so a storefront of an older layout is rendered whole once
        // even under a theme whose every file the operator replaced.
        hasher.update(LAYOUT.as_bytes());
        for (name, source) in &self.sources {
            hasher.update(name.as_bytes());
            hasher.update(source.as_bytes());
        }
        for part in [&self.style, &self.script, &self.icon, &self.name] {
            hasher.update(part.as_bytes());
        }
        hasher.finish().to_hex()
    }

    fn asset(name: &str, bytes: &str) -> String {
        format!("assets/{}.{name}", Sha256::of(bytes.as_bytes()))
    }

    /// The content-addressed assets: (site path, bytes).
    pub fn assets(&self) -> Vec<(String, &[u8])> {
        vec![
            (Self::asset("style.css", &self.style), self.style.as_bytes()),
            (Self::asset("search.js", &self.script), self.script.as_bytes()),
            (Self::asset("plugin.svg", &self.icon), self.icon.as_bytes()),
        ]
    }

    fn render(&self, name: &str, context: Value) -> Result<Vec<u8>, StorefrontError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| StorefrontError::Template { name: name.to_owned(), reason: format!("{e:#}") })?;
        template
            .render(context)
            .map(String::into_bytes)
            .map_err(|e| StorefrontError::Template { name: name.to_owned(), reason: format!("{e:#}") })
    }
}

/// minijinja's HTML escaping without its `&#x2f;` for `/`: every value is printed in
/// text or a double-quoted attribute, where `/` means nothing, and a page names paths
/// (`../../plugins/acme.clock/`) a few dozen times (a listing page's hundred cards,
/// five each): 5 bytes each, on every page.
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let text = match value.as_str() {
        Some(text) if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() => text,
        _ => return minijinja::escape_formatter(out, state, value),
    };
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#x27;",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)?;
    Ok(())
}

/// The storefront page of a listing's page `page` (1-based).
pub(super) fn listing_path(kind: ListingKind, name: &str, page: u32) -> String {
    let dir = match kind {
        ListingKind::Category => "categories",
        ListingKind::Tag => "tags",
    };
    if page <= 1 { format!("{dir}/{name}/index.html") } else { format!("{dir}/{name}/{page}/index.html") }
}

/// The page of publisher `vendor`.
pub(super) fn publisher_path(vendor: &str) -> String {
    format!("publishers/{vendor}/index.html")
}

/// The page of plugin `id`.
pub(super) fn plugin_path(id: &PluginId) -> String {
    format!("plugins/{id}/index.html")
}

/// The download insights page of publisher `vendor`.
pub(super) fn insight_path(vendor: &str) -> String {
    format!("publishers/{vendor}/insights/index.html")
}

/// A star rating as pages show it.
#[derive(Serialize)]
struct Stars {
    stars: String,
    count: u32,
    glyphs: String,
}

/// A plugin as a card shows it.
#[derive(Serialize)]
struct Card<'a> {
    id: &'a str,
    name: &'a str,
    vendor: &'a str,
    version: String,
    summary: &'a str,
    pricing: &'a str,
    rating: Option<Stars>,
    downloads: u64,
    downloads_text: String,
    icon: &'a str,
    /// The security level of the release shown, when the site's levels name it.
    level: Option<&'static str>,
    level_meaning: Option<&'static str>,
}

fn stars(summary: &PluginSummary) -> Option<Stars> {
    let rating = summary.rating?;
    let tenths = u32::from(rating.tenths.clamp(10, 50));
    let halves = (tenths + 2) / 5;
    let glyphs = format!("{}{}{}", "★".repeat((halves / 2) as usize), if halves % 2 == 1 { "½" } else { "" }, {
        "☆".repeat(((10 - halves) / 2) as usize)
    });
    Some(Stars { stars: format!("{}.{}", tenths / 10, tenths % 10), count: rating.count, glyphs })
}

/// `12,345`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pricing_name(summary: &PluginSummary) -> &'static str {
    use trellis_schema::plugin::PricingModel;
    match summary.pricing {
        PricingModel::Free => "free",
        PricingModel::Paid => "paid",
        PricingModel::Freemium => "freemium",
        PricingModel::Subscription => "subscription",
    }
}

/// What every page shares.
pub(super) struct Context<'a> {
    theme: &'a Theme,
    head: &'a CatalogHead,
    shards: &'a BTreeMap<String, super::TargetFile>,
    head_path: &'a str,
    default_icon: String,
    store: Value,
    levels: Option<&'a BTreeMap<PluginId, Level>>,
}

impl<'a> Context<'a> {
    /// `publishers`: how many publishers list a plugin (the home page says it).
    pub(super) fn new(
        theme: &'a Theme,
        head: &'a CatalogHead,
        publishers: usize,
        shards: &'a BTreeMap<String, super::TargetFile>,
        head_path: &'a str,
    ) -> Self {
        let assets = theme.assets();
        let store = context! {
            name => theme.name.clone(),
            plugins => head.plugins,
            publishers,
            css => assets[0].0.clone(),
            js => assets[1].0.clone(),
            default_icon => assets[2].0.clone(),
        };
        Self { theme, head, shards, head_path, default_icon: assets[2].0.clone(), store, levels: None }
    }

    /// The same context, its cards showing the levels of `levels` (plugin → the level
    /// of the version its cards show).
    #[must_use]
    pub(super) fn with_levels(mut self, levels: &'a BTreeMap<PluginId, Level>) -> Self {
        self.levels = Some(levels);
        self
    }

    fn card<'s>(&'s self, summary: &'s PluginSummary) -> Card<'s> {
        let level = self.levels.and_then(|l| l.get(&summary.id).copied());
        Card {
            level: level.map(Level::as_str),
            level_meaning: level.map(super::levels::meaning),
            id: summary.id.as_str(),
            name: &summary.name,
            vendor: &summary.vendor,
            version: summary.version.to_string(),
            summary: &summary.summary,
            pricing: pricing_name(summary),
            rating: stars(summary),
            downloads: summary.downloads,
            downloads_text: thousands(summary.downloads),
            icon: summary.icon.as_deref().unwrap_or(self.default_icon.as_str()),
        }
    }

    fn cards<'s>(&'s self, list: &'s [PluginSummary]) -> Vec<Card<'s>> {
        list.iter().map(|s| self.card(s)).collect()
    }

    /// Home, the categories index, the search page and its catalog map.
    pub(super) fn fixed_pages(&self) -> Result<Vec<(String, Vec<u8>)>, StorefrontError> {
        let head = self.head;
        let home = self.theme.render(
            "home.html",
            context! {
                root => "", store => self.store.clone(), categories => head.categories,
                featured => self.cards(&head.featured), trending => self.cards(&head.trending),
                new => self.cards(&head.new), updated => self.cards(&head.updated),
            },
        )?;
        let categories = self.theme.render(
            "categories.html",
            context! { root => "../", store => self.store.clone(), categories => head.categories, tags => head.tags },
        )?;
        let search = self.theme.render(
            "search.html",
            context! { root => "../", store => self.store.clone(), categories => head.categories },
        )?;
        // `plugins`: the head's count, which ranking needs, so a search reads its shards only.
        #[derive(Serialize)]
        struct SearchMap<'m> {
            head: &'m str,
            plugins: u32,
            shards: &'m BTreeMap<String, super::TargetFile>,
        }
        let map = serde_json::to_vec(&SearchMap { head: self.head_path, plugins: head.plugins, shards: self.shards })
            .unwrap_or_default();
        Ok(vec![
            ("index.html".into(), home),
            ("categories/index.html".into(), categories),
            ("search/index.html".into(), search),
            ("search/catalog.json".into(), map),
        ])
    }

    /// The page of a category or tag listing, from the catalog's listing document of
    /// the same page (the same members in the same order, 100 a page).
    pub(super) fn listing_page(&self, listing: &ListingPage) -> Result<(String, Vec<u8>), StorefrontError> {
        let (dir, heading) = match listing.kind {
            ListingKind::Category => ("categories", format!("Category: {}", listing.name)),
            ListingKind::Tag => ("tags", format!("Tag: {}", listing.name)),
        };
        let path = listing_path(listing.kind, &listing.name, listing.page);
        let root = if listing.page <= 1 { "../../" } else { "../../../" };
        let bytes = self.theme.render(
            "listing.html",
            context! {
                root, store => self.store.clone(), heading, plugins => self.cards(&listing.plugins),
                total => listing.total, page => listing.page, pages => listing.pages.max(1),
                base => format!("{dir}/{}/", listing.name),
            },
        )?;
        Ok((path, bytes))
    }

    /// The page of publisher `vendor` listing `members` (its plugins, in listing order),
    /// linking its insight page when it has one (`insights`).
    pub(super) fn publisher_page(
        &self,
        vendor: &str,
        members: &[PluginSummary],
        insights: bool,
    ) -> Result<(String, Vec<u8>), StorefrontError> {
        let downloads: u64 = members.iter().map(|s| s.downloads).sum();
        let publisher = context! {
            id => vendor, name => members.first().map(|s| s.vendor.clone()).unwrap_or_default(),
            website => Value::from(()), downloads, downloads_text => thousands(downloads),
        };
        let bytes = self.theme.render(
            "publisher.html",
            context! {
                root => "../../", store => self.store.clone(), publisher, plugins => self.cards(members), insights,
            },
        )?;
        Ok((publisher_path(vendor), bytes))
    }

    /// The download insights page of publisher `vendor` listing `members`: per plugin
    /// downloaded in the window, its daily downloads and version adoption as inline SVG
    /// charts with a data table each; the others named.
    pub(super) fn insight_page(
        &self,
        vendor: &str,
        members: &[PluginSummary],
        insights: &Insights,
    ) -> Result<(String, Vec<u8>), StorefrontError> {
        let figures = insights.publishers.get(vendor);
        let mut plugins = Vec::new();
        let mut quiet = Vec::new();
        let mut total = 0;
        for summary in members {
            let shown = insights.window.zip(figures.and_then(|f| f.get(&summary.id)));
            let Some((window, figures)) = shown else {
                quiet.push(context! { id => summary.id.as_str(), name => summary.name.clone() });
                continue;
            };
            let downloads = figures.total();
            total += downloads;
            plugins.push((
                downloads,
                context! {
                    id => summary.id.as_str(), name => summary.name.clone(), total => downloads,
                    total_text => thousands(downloads),
                    daily => Value::from_serialize(insight::daily_chart(&summary.name, &window, figures)),
                    adoption => Value::from_serialize(insight::adoption_chart(&summary.name, figures)),
                },
            ));
        }
        // The most downloaded first; ties keep the listing order.
        plugins.sort_by_key(|p| std::cmp::Reverse(p.0));
        let plugins: Vec<Value> = plugins.into_iter().map(|(_, p)| p).collect();
        let window = insights.window.filter(|_| !plugins.is_empty()).map(|w| {
            context! { first => w.first.to_string(), last => w.last.to_string() }
        });
        let publisher = context! {
            id => vendor, name => members.first().map(|s| s.vendor.clone()).unwrap_or_else(|| vendor.to_owned()),
        };
        let bytes = self.theme.render(
            "insight.html",
            context! {
                root => "../../../", store => self.store.clone(), publisher, days => insight::DAYS, window,
                total_text => thousands(total), plugins, quiet,
            },
        )?;
        Ok((insight_path(vendor), bytes))
    }

    /// The page of the plugin `s` summarises; `data` from its package (without: from the
    /// summary alone).
    pub(super) fn plugin_page(
        &self,
        s: &PluginSummary,
        data: Option<&PageData>,
        reviews: Option<&PluginReviews>,
        levels: Option<&PluginLevels>,
    ) -> Result<(String, Vec<u8>), StorefrontError> {
        // Each release's level with its reasons, newest first; the shown release's apart.
        let release_levels: Vec<Value> = levels
            .map(|l| {
                let mut releases: Vec<_> = l.releases.iter().collect();
                releases.sort_by(|a, b| b.version.cmp(&a.version));
                releases
                    .into_iter()
                    .map(|r| {
                        context! {
                            version => r.version.to_string(), published => r.published.clone(),
                            level => r.level.as_str(), meaning => super::levels::meaning(r.level),
                            reasons => r.reasons.iter().map(|reason| reason.sentence()).collect::<Vec<_>>(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let security = levels.and_then(|l| {
            let release = l.releases.iter().find(|r| r.version == s.version)?;
            let publisher = &l.publisher;
            Some(context! {
                level => release.level.as_str(), meaning => super::levels::meaning(release.level),
                reasons => release.reasons.iter().map(|reason| reason.sentence()).collect::<Vec<_>>(),
                publisher_verified => publisher.verified, domain => publisher.domain.clone(),
                publisher_reason => publisher.reason.clone(),
            })
        });
        let histogram: Vec<Value> = match s.rating {
            Some(rating) if rating.histogram.iter().any(|n| *n > 0) => (1..=5u8)
                .rev()
                .map(|stars| {
                    let count = rating.histogram[usize::from(stars - 1)];
                    let total = rating.histogram.iter().sum::<u32>().max(1);
                    context! { stars, count, total, percent => (u64::from(count) * 100 + u64::from(total) / 2) / u64::from(total) }
                })
                .collect(),
            _ => Vec::new(),
        };
        // The 90-day mean, when it tells something the overall mean does not.
        let recent_stars =
            s.rating.and_then(|r| r.recent_tenths.filter(|t| *t != r.tenths)).map(|t| format!("{}.{}", t / 10, t % 10));
        let shown: Vec<Value> = reviews
            .map(|doc| {
                doc.reviews
                    .iter()
                    .take(REVIEWS_SHOWN)
                    .map(|r| {
                        let stars = r.stars.clamp(1, 5);
                        context! {
                            author => r.author.clone(), stars,
                            glyphs => format!("{}{}", "★".repeat(usize::from(stars)), "☆".repeat(usize::from(5 - stars))),
                            version => r.version.to_string(), date => r.date.clone(),
                            text_html => super::page::review_markdown(&r.text),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reviews_total = reviews.map_or(0, |doc| doc.total);
        let trial = data.map_or(0, |d| d.trial_days);
        let pricing_text = match (pricing_name(s), trial) {
            ("free", _) => "Free".to_owned(),
            (model, 0) => format!("Pricing: {model}"),
            (model, days) => format!("Pricing: {model}, with a {days}-day free trial"),
        };
        let permissions: Vec<Value> = match data {
            Some(d) => d.permissions.iter().map(Value::from_serialize).collect(),
            None => s
                .permissions
                .iter()
                .map(|p| {
                    Value::from_serialize(
                        serde_json::json!({"plain": format!("use {p}"), "risk": "medium", "reason": ""}),
                    )
                })
                .collect(),
        };
        let p = context! {
            id => s.id.as_str(), name => s.name.clone(), summary => s.summary.clone(), vendor => s.vendor.clone(),
            vendor_id => s.id.vendor(), version => s.version.to_string(), channel => s.channel.as_str(),
            rating => stars(s), downloads => s.downloads, downloads_text => thousands(s.downloads),
            recent_downloads => s.recent_downloads, recent_downloads_text => thousands(s.recent_downloads),
            histogram, recent_stars, reviews => shown, reviews_total,
            pricing_text, categories => s.categories.clone(), tags => s.tags.clone(),
            host => format!("{} {}", s.host.id, s.host.api_version_requirement),
            platforms => s.platforms.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            icon => data.and_then(|d| d.icon.clone()).or_else(|| s.icon.clone()).unwrap_or_else(|| self.default_icon.clone()),
            screenshots => data.map(|d| d.screenshots.clone()).unwrap_or_default(),
            description_html => data.map(|d| d.description_html.clone()).unwrap_or_else(|| super::page::markdown(&s.summary)),
            readme_html => data.and_then(|d| d.readme_html.clone()),
            release_notes => data.and_then(|d| d.release_notes.clone()),
            permissions,
            dependencies => data.map(|d| d.dependencies.clone()).unwrap_or_default(),
            versions => data.map(|d| d.versions.clone()).unwrap_or_default(),
            license => data.map(|d| d.license.clone()).unwrap_or_default(),
            security, release_levels,
            repository => data.and_then(|d| d.repository.clone()),
        };
        let bytes = self.theme.render("plugin.html", context! { root => "../../", store => self.store.clone(), p })?;
        Ok((plugin_path(&s.id), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_schema::catalog::{CATALOG_FORMAT, Rating};

    fn record(rating: Option<Rating>, downloads: u64) -> CatalogRecord {
        let summary = PluginSummary {
            id: "acme.clock".parse().unwrap(),
            name: "Clock".into(),
            summary: "A <b>clock</b>".into(),
            vendor: "Acme".into(),
            version: "1.2.0".parse().unwrap(),
            channel: trellis_schema::plugin::Channel::Stable,
            host: trellis_schema::plugin::HostRequirement {
                id: "demo-host".into(),
                api_version_requirement: "^1".parse().unwrap(),
            },
            platforms: vec![trellis_schema::plugin::Platform::Any],
            pricing: trellis_schema::plugin::PricingModel::Free,
            permissions: vec![],
            categories: vec!["utility".into()],
            tags: vec![],
            rating,
            downloads,
            recent_downloads: downloads / 10,
            updated: "2026-11-01T00:00:00Z".into(),
            icon: None,
        };
        CatalogRecord { summary, created: String::new(), releases: 1, length: 0, terms: BTreeMap::new() }
    }

    fn head() -> CatalogHead {
        CatalogHead {
            format: CATALOG_FORMAT,
            generated: String::new(),
            plugins: 1,
            releases: 1,
            average_length: 1,
            categories: vec![],
            tags: vec![],
            featured: vec![],
            trending: vec![],
            new: vec![],
            updated: vec![],
        }
    }

    fn plugin_page(record: &CatalogRecord) -> String {
        let theme = Theme::builtin("Store").unwrap();
        let head = head();
        let shards = BTreeMap::new();
        let context = Context::new(&theme, &head, 1, &shards, "");
        String::from_utf8(context.plugin_page(&record.summary, None, None, None).unwrap().1).unwrap()
    }

    #[test]
    fn the_plugin_page_shows_rating_and_downloads_when_the_catalog_has_them() {
        let page = plugin_page(&record(
            Some(Rating { tenths: 43, count: 12, histogram: [1, 0, 1, 3, 7], recent_tenths: Some(45) }),
            1_234_567,
        ));
        assert!(page.contains("Rated 4.3 out of 5 by 12 reviewers"), "{page}");
        assert!(page.contains("★★★★½"), "{page}");
        assert!(page.contains("1,234,567 downloads"), "{page}");
        assert!(page.contains("A &lt;b&gt;clock&lt;/b&gt;"), "{page}");
        let bare = plugin_page(&record(None, 0));
        assert!(bare.contains("No reviews yet") && !bare.contains("downloads"), "{bare}");
    }

    #[test]
    fn the_plugin_page_shows_the_histogram_the_newest_reviews_inert_and_recent_downloads() {
        let theme = Theme::builtin("Store").unwrap();
        let head = head();
        let mut record =
            record(Some(Rating { tenths: 38, count: 4, histogram: [1, 0, 0, 1, 2], recent_tenths: Some(45) }), 5_000);
        record.summary.icon = Some(format!("images/{}.png", "cd".repeat(32)));
        let shards = BTreeMap::new();
        let context = Context::new(&theme, &head, 1, &shards, "");
        let review = |author: &str, stars: u8, text: &str| trellis_schema::catalog::PublishedReview {
            author: author.into(),
            stars,
            version: "1.2.0".parse().unwrap(),
            date: "2026-10-30".into(),
            text: text.into(),
        };
        let mut reviews = PluginReviews {
            format: CATALOG_FORMAT,
            plugin: record.summary.id.clone(),
            total: 32,
            reviews: vec![
                review("mallory", 1, "<script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))"),
                review("octocat", 5, "Keeps *perfect* time."),
            ],
        };
        reviews.reviews.extend((0..30).map(|n| review(&format!("user{n}"), 4, &format!("review number {n}"))));
        let page =
            String::from_utf8(context.plugin_page(&record.summary, None, Some(&reviews), None).unwrap().1).unwrap();
        // The histogram, 5 stars first, as meters a screen reader can read.
        let five = page.find("5 stars</th>").unwrap();
        let one = page.find("1 star</th>").unwrap();
        assert!(five < one, "{page}");
        assert!(
            page.contains(r#"<meter min="0" max="4" value="2" aria-label="50% of reviews gave 5 stars">"#),
            "{page}"
        );
        assert!(page.contains("4.5 on average in the last 90 days"), "{page}");
        // Reviews: the hostile one is text, the Markdown one formatted, at most REVIEWS_SHOWN.
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(
            !page.contains("<script") && !page.contains("<img src=x") && !page.contains("href=\"javascript"),
            "{page}"
        );
        assert!(page.contains("Keeps <em>perfect</em> time."), "{page}");
        assert_eq!(page.matches(r#"<article class="review""#).count(), REVIEWS_SHOWN, "{page}");
        assert!(page.contains("The newest 20 of 32 reviews"), "{page}");
        // Downloads, total and recent; the icon the catalog names.
        assert!(page.contains("5,000 downloads, 500 in the last 30 days"), "{page}");
        assert!(page.contains(&format!("src=\"../../images/{}.png\"", "cd".repeat(32))), "{page}");
        // A card uses the catalog's icon too.
        assert_eq!(context.card(&record.summary).icon, format!("images/{}.png", "cd".repeat(32)));
    }

    #[test]
    fn values_are_escaped_for_html_but_paths_keep_their_slashes() {
        let mut env = Environment::new();
        env.set_formatter(html_formatter);
        env.add_template("t.html", "<a href=\"{{ path }}\" title='{{ text }}'>{{ text }}</a>{{ markup|safe }}{{ n }}")
            .unwrap();
        let page = env
            .get_template("t.html")
            .unwrap()
            .render(context! { path => "../../plugins/acme.clock/", text => "<b>\"Tom\" & 'Jerry'</b>", markup => "<em>x</em>", n => 3 })
            .unwrap();
        assert_eq!(
            page,
            "<a href=\"../../plugins/acme.clock/\" title='&lt;b&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt;'>\
             &lt;b&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt;</a><em>x</em>3"
        );
        // Outside HTML templates, minijinja's own formatting.
        env.add_template("t.txt", "{{ text }}").unwrap();
        assert_eq!(env.get_template("t.txt").unwrap().render(context! { text => "<&>" }).unwrap(), "<&>");
    }

    #[test]
    fn stars_round_to_halves() {
        let glyphs = |tenths| {
            stars(
                &record(Some(Rating { tenths, count: 1, histogram: [0, 0, 0, 0, 1], recent_tenths: None }), 0).summary,
            )
            .unwrap()
            .glyphs
        };
        assert_eq!(glyphs(50), "★★★★★");
        assert_eq!(glyphs(35), "★★★½☆");
        assert_eq!(glyphs(10), "★☆☆☆☆");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999), "999");
    }
}
