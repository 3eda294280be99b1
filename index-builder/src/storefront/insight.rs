//! Publisher insight pages: each publisher's downloads over time and version adoption,
//! drawn as inline SVG charts.
//!
//! Owns turning the registry's download counts ([`crate::stats::Counts`]) into each
//! publisher's figures over the [`DAYS`] days that end on the last day the statistics
//! cover (never after the build's day: a day whose logs are not ingested yet is not
//! drawn as a day without downloads), their digest (so [`super::publish`] redoes an
//! insight page only when its numbers move: a build without new statistics redoes
//! none), and the geometry of the charts the `insight.html` template draws (bars,
//! ticks, a title and a description for screen readers, and the rows of the data
//! tables under each chart). It reads and writes no file.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;
use trellis_schema::{PluginId, Sha256};

use super::render::thousands;
use crate::stats::Counts;

/// Days an insight page covers, the last day included.
pub const DAYS: usize = 90;
/// Versions the adoption chart names; the rest are summed as "other versions".
pub const VERSIONS_SHOWN: usize = 6;

/// The days an insight page covers: [`DAYS`] days ending on `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first day.
    pub first: Date,
    /// The last day: the newest day of the statistics, at most the build's day.
    pub last: Date,
}

impl Window {
    /// The window of `counts` as of `today`; `None` when they have no day up to `today`.
    pub fn of(counts: &Counts, today: Date) -> Option<Self> {
        let newest = |days: &BTreeMap<Date, u64>| days.range(..=today).next_back().map(|(day, _)| *day);
        let last = [&counts.downloads, &counts.deltas]
            .into_iter()
            .flat_map(|map| map.values().flat_map(|versions| versions.values()))
            .filter_map(newest)
            .chain(newest(&counts.update_checks))
            .max()?;
        let first = last.checked_sub(jiff::Span::new().days(DAYS as i64 - 1)).unwrap_or(Date::MIN);
        Some(Self { first, last })
    }

    fn index(&self, day: Date) -> Option<usize> {
        if day < self.first || day > self.last {
            return None;
        }
        usize::try_from((day - self.first).get_days()).ok()
    }

    fn day(&self, index: usize) -> Date {
        self.first.checked_add(jiff::Span::new().days(index as i64)).unwrap_or(self.last)
    }

    fn len(&self) -> usize {
        self.index(self.last).map_or(0, |i| i + 1)
    }
}

/// One plugin's downloads in a [`Window`] (package and delta downloads, a delta
/// counting for the version it brings, as the catalog's figures count them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PluginFigures {
    /// Downloads per day, the window's first day first.
    pub daily: Vec<u64>,
    /// Downloads per version.
    pub versions: BTreeMap<String, u64>,
}

impl PluginFigures {
    /// Every download in the window.
    pub fn total(&self) -> u64 {
        self.daily.iter().sum()
    }
}

/// What the insight pages show: the window and, per publisher, its plugins that
/// were downloaded in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Insights {
    /// `None`: the registry has no statistics (up to the build's day).
    pub window: Option<Window>,
    /// Publisher → plugin → figures (only plugins with a download in the window).
    pub publishers: BTreeMap<String, BTreeMap<PluginId, PluginFigures>>,
}

impl Insights {
    /// The figures of `counts` (none: the registry keeps no statistics) as of `today`.
    pub fn new(counts: Option<&Counts>, today: Date) -> Self {
        let Some((counts, window)) = counts.and_then(|c| Some((c, Window::of(c, today)?))) else {
            return Self::default();
        };
        let mut publishers: BTreeMap<String, BTreeMap<PluginId, PluginFigures>> = BTreeMap::new();
        for map in [&counts.downloads, &counts.deltas] {
            for (id, versions) in map {
                for (version, days) in versions {
                    for (day, n) in days.range(window.first..=window.last) {
                        let (Some(index), true) = (window.index(*day), *n > 0) else { continue };
                        let figures =
                            publishers.entry(id.vendor().to_owned()).or_default().entry(id.clone()).or_insert_with(
                                || PluginFigures { daily: vec![0; window.len()], versions: BTreeMap::new() },
                            );
                        figures.daily[index] += n;
                        *figures.versions.entry(version.clone()).or_default() += n;
                    }
                }
            }
        }
        Self { window: Some(window), publishers }
    }

    /// Keeps the figures of the plugins `keep` names only (a build: those the registry
    /// has; a log also counts plugins since removed): a publisher left with none has
    /// no insight page.
    pub fn retain_plugins(&mut self, keep: impl Fn(&PluginId) -> bool) {
        for plugins in self.publishers.values_mut() {
            plugins.retain(|id, _| keep(id));
        }
        self.publishers.retain(|_, plugins| !plugins.is_empty());
    }

    /// Whether `vendor` has an insight page: a plugin of it downloaded in the window.
    /// A publisher with none gets no page (at 100k synthetic plugins, 12,231 pages
    /// saying "no download") and its publisher page no link to one.
    pub fn has_page(&self, vendor: &str) -> bool {
        self.window.is_some() && self.publishers.contains_key(vendor)
    }

    /// The digest of what `vendor`'s insight page shows from the statistics; `None`
    /// when nothing (no download in the window): the publisher has no insight page.
    pub fn digest(&self, vendor: &str) -> Option<String> {
        let (window, figures) = (self.window?, self.publishers.get(vendor)?);
        let bytes = serde_json::to_vec(&(window.last.to_string(), figures)).unwrap_or_default();
        Some(Sha256::of(&bytes).to_hex())
    }
}

/// A bar of a chart, in the SVG's user units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bar {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// What the bar is (a tooltip: `2026-11-29: 12 downloads`).
    pub label: String,
}

/// A labelled tick of an axis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// Where along its axis.
    pub at: u32,
    /// Its label.
    pub label: String,
    /// SVG `text-anchor` of the label.
    pub anchor: &'static str,
}

/// Daily downloads as a bar chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DailyChart {
    /// SVG width (user units; the chart scales to the page).
    pub width: u32,
    /// SVG height.
    pub height: u32,
    /// The plot area: left, top, right, bottom edges.
    pub left: u32,
    /// Top edge of the plot area.
    pub top: u32,
    /// Right edge of the plot area.
    pub right: u32,
    /// Bottom edge of the plot area (the x axis).
    pub bottom: u32,
    /// One bar per day with downloads.
    pub bars: Vec<Bar>,
    /// Downloads-per-day ticks (y positions).
    pub y_ticks: Vec<Tick>,
    /// Date ticks (x positions).
    pub x_ticks: Vec<Tick>,
    /// The chart's accessible title.
    pub title: String,
    /// The chart's accessible description: the figures in a sentence.
    pub desc: String,
    /// The days with downloads, for the data table: (day, downloads).
    pub rows: Vec<(String, u64)>,
}

/// Version adoption as horizontal bars, one per version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdoptionChart {
    /// SVG width.
    pub width: u32,
    /// SVG height.
    pub height: u32,
    /// Where bars start (after the version labels).
    pub left: u32,
    /// One row per version shown, most downloaded first.
    pub rows: Vec<AdoptionRow>,
    /// The chart's accessible title.
    pub title: String,
    /// The shares in a sentence.
    pub desc: String,
}

/// One version of an [`AdoptionChart`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdoptionRow {
    /// The version (or "other versions").
    pub version: String,
    /// Its downloads in the window.
    pub downloads: u64,
    /// Its share, whole percent (at least 1 when it has any download).
    pub percent: u64,
    /// Top of its bar.
    pub y: u32,
    /// Length of its bar.
    pub length: u32,
    /// Baseline of its label.
    pub text_y: u32,
    /// Where the share label starts.
    pub text_x: u32,
}

const WIDTH: u32 = 700;
const LEFT: u32 = 56;
const BAR: u32 = 7;
const TOP: u32 = 12;
const PLOT_HEIGHT: u32 = 140;

/// The smallest 1, 2 or 5 × 10ⁿ at least `peak` (at least 1).
fn nice_ceiling(peak: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for step in [1, 2, 5] {
            let value = unit.saturating_mul(step);
            if value >= peak || value == u64::MAX {
                return value;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// The daily downloads chart of `name` over `window`.
pub fn daily_chart(name: &str, window: &Window, figures: &PluginFigures) -> DailyChart {
    let days = figures.daily.len().max(1) as u32;
    let right = LEFT + BAR * days;
    let bottom = TOP + PLOT_HEIGHT;
    let peak = figures.daily.iter().copied().max().unwrap_or(0);
    let ceiling = nice_ceiling(peak);
    let scale = |n: u64| -> u32 {
        u32::try_from((u128::from(n) * u128::from(PLOT_HEIGHT) + u128::from(ceiling) / 2) / u128::from(ceiling))
            .unwrap_or(PLOT_HEIGHT)
    };
    let mut bars = Vec::new();
    let mut rows = Vec::new();
    for (index, n) in figures.daily.iter().enumerate().filter(|(_, n)| **n > 0) {
        let day = window.day(index).to_string();
        // A day with downloads is never drawn flat.
        let height = scale(*n).max(1);
        bars.push(Bar {
            x: LEFT + BAR * index as u32,
            y: bottom - height,
            width: BAR - 1,
            height,
            label: format!("{day}: {}", plural(*n, "download", "downloads")),
        });
        rows.push((day, *n));
    }
    let mut y_ticks = vec![Tick { at: bottom, label: "0".into(), anchor: "end" }];
    if ceiling.is_multiple_of(2) {
        y_ticks.push(Tick { at: bottom - scale(ceiling / 2), label: thousands(ceiling / 2), anchor: "end" });
    }
    y_ticks.push(Tick { at: TOP, label: thousands(ceiling), anchor: "end" });
    let middle = figures.daily.len() / 2;
    let x_ticks = vec![
        Tick { at: LEFT, label: window.first.to_string(), anchor: "start" },
        Tick { at: LEFT + BAR * middle as u32 + BAR / 2, label: window.day(middle).to_string(), anchor: "middle" },
        Tick { at: right, label: window.last.to_string(), anchor: "end" },
    ];
    let total = figures.total();
    let busiest = figures.daily.iter().enumerate().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
    let mut desc =
        format!("From {} to {}: {} in all", window.first, window.last, plural(total, "download", "downloads"));
    if let Some((index, n)) = busiest.filter(|(_, n)| **n > 0) {
        desc.push_str(&format!("; the most in one day, {}, on {}", thousands(*n), window.day(index)));
    }
    desc.push('.');
    DailyChart {
        width: WIDTH,
        height: bottom + 26,
        left: LEFT,
        top: TOP,
        right,
        bottom,
        bars,
        y_ticks,
        x_ticks,
        title: format!("Daily downloads of {name}"),
        desc,
        rows,
    }
}

/// Versions by downloads, most first (then the newer version first).
fn by_downloads(versions: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut list: Vec<(String, u64)> = versions.iter().map(|(v, n)| (v.clone(), *n)).collect();
    let newer = |a: &str, b: &str| match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => b.cmp(&a),
        _ => b.cmp(a),
    };
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| newer(&a.0, &b.0)));
    list
}

/// The version adoption chart of `name`: each version's share of its downloads in
/// the window, the [`VERSIONS_SHOWN`]` - 1` most downloaded named and the rest summed
/// when there are more.
pub fn adoption_chart(name: &str, figures: &PluginFigures) -> AdoptionChart {
    const ROW: u32 = 26;
    const LABEL: u32 = 110;
    const LENGTH: u32 = 480;
    let mut list = by_downloads(&figures.versions);
    if list.len() > VERSIONS_SHOWN {
        let rest: u64 = list.drain(VERSIONS_SHOWN - 1..).map(|(_, n)| n).sum();
        list.push(("other versions".into(), rest));
    }
    let total: u64 = list.iter().map(|(_, n)| n).sum::<u64>().max(1);
    let rows: Vec<AdoptionRow> = list
        .into_iter()
        .enumerate()
        .map(|(i, (version, downloads))| {
            let share = u128::from(downloads) * 100;
            let percent = u64::try_from((share + u128::from(total) / 2) / u128::from(total)).unwrap_or(100).max(1);
            let length =
                u32::try_from(u128::from(downloads) * u128::from(LENGTH) / u128::from(total)).unwrap_or(LENGTH).max(1);
            let y = 4 + ROW * i as u32;
            AdoptionRow { version, downloads, percent, y, length, text_y: y + 14, text_x: LABEL + length + 8 }
        })
        .collect();
    let desc = rows
        .iter()
        .map(|r| format!("{}: {}% ({})", r.version, r.percent, plural(r.downloads, "download", "downloads")))
        .collect::<Vec<_>>()
        .join("; ");
    AdoptionChart {
        width: WIDTH,
        height: 8 + ROW * rows.len().max(1) as u32,
        left: LABEL,
        rows,
        title: format!("Share of downloads by version of {name}"),
        desc: format!("{desc}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn counts(entries: &[(&str, &str, &str, u64)]) -> Counts {
        let mut counts = Counts::default();
        for (id, version, date, n) in entries {
            *counts
                .downloads
                .entry(id.parse().unwrap())
                .or_default()
                .entry((*version).into())
                .or_default()
                .entry(day(date))
                .or_default() += n;
        }
        counts
    }

    #[test]
    fn the_window_ends_on_the_newest_day_of_the_statistics_never_after_the_build_day() {
        let counts = counts(&[("acme.clock", "1.0.0", "2026-10-20", 3), ("acme.clock", "1.0.0", "2026-12-24", 9)]);
        let window = Window::of(&counts, day("2026-11-01")).unwrap();
        assert_eq!((window.first, window.last), (day("2026-07-23"), day("2026-10-20")));
        assert_eq!(window.len(), DAYS);
        // Update checks say which days the logs cover too.
        let mut covered = counts.clone();
        covered.update_checks.insert(day("2026-10-31"), 4);
        assert_eq!(Window::of(&covered, day("2026-11-01")).unwrap().last, day("2026-10-31"));
        assert_eq!(Window::of(&counts, day("2026-10-01")), None);
    }

    #[test]
    fn figures_count_package_and_delta_downloads_per_day_and_version_per_publisher() {
        let mut counts = counts(&[
            ("acme.clock", "1.0.0", "2026-10-20", 3),
            ("acme.clock", "1.1.0", "2026-10-20", 2),
            ("acme.clock", "1.1.0", "2026-10-21", 5),
            ("acme.clock", "0.9.0", "2026-01-01", 70),
            ("contoso.images", "2.0.0", "2026-10-21", 1),
        ]);
        counts
            .deltas
            .entry("acme.clock".parse().unwrap())
            .or_default()
            .insert("1.1.0".into(), BTreeMap::from([(day("2026-10-21"), 4)]));
        let insights = Insights::new(Some(&counts), day("2026-11-01"));
        let clock = &insights.publishers["acme"][&"acme.clock".parse::<PluginId>().unwrap()];
        assert_eq!(clock.total(), 14, "the January downloads are outside the 90 days");
        assert_eq!(clock.daily[DAYS - 2..], [5, 9]);
        assert_eq!(clock.versions, BTreeMap::from([("1.0.0".into(), 3), ("1.1.0".into(), 11)]));
        assert!(insights.publishers["contoso"].contains_key(&"contoso.images".parse::<PluginId>().unwrap()));
        // A digest per publisher that moves with its own numbers only.
        let acme = insights.digest("acme").unwrap();
        let contoso = insights.digest("contoso").unwrap();
        let mut more = counts.clone();
        *more
            .downloads
            .get_mut(&"contoso.images".parse::<PluginId>().unwrap())
            .unwrap()
            .get_mut("2.0.0")
            .unwrap()
            .get_mut(&day("2026-10-21"))
            .unwrap() += 1;
        let after = Insights::new(Some(&more), day("2026-11-01"));
        assert_eq!(after.digest("acme").unwrap(), acme);
        assert_ne!(after.digest("contoso").unwrap(), contoso);
        assert_eq!(after.digest("northwind"), None);
        assert_eq!(Insights::new(None, day("2026-11-01")), Insights::default());
    }

    #[test]
    fn the_daily_chart_scales_to_a_round_ceiling_and_describes_itself() {
        let window = Window { first: day("2026-08-03"), last: day("2026-10-31") };
        let mut daily = vec![0; DAYS];
        daily[DAYS - 1] = 12;
        daily[10] = 3;
        let chart = daily_chart("Desk Clock", &window, &PluginFigures { daily, versions: BTreeMap::new() });
        assert_eq!(chart.bars.len(), 2);
        let last = &chart.bars[1];
        assert_eq!(last.x, LEFT + BAR * (DAYS as u32 - 1));
        assert_eq!(last.height, 12 * PLOT_HEIGHT / 20, "12 on a 0-20 axis");
        assert_eq!(last.y + last.height, chart.bottom);
        assert_eq!(last.label, "2026-10-31: 12 downloads");
        assert_eq!(chart.y_ticks.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(), ["0", "10", "20"]);
        assert_eq!(chart.x_ticks[0].label, "2026-08-03");
        assert_eq!(chart.x_ticks[2].label, "2026-10-31");
        assert_eq!(chart.right, LEFT + BAR * DAYS as u32);
        assert!(chart.right < chart.width);
        assert_eq!(
            chart.desc,
            "From 2026-08-03 to 2026-10-31: 15 downloads in all; the most in one day, 12, on 2026-10-31."
        );
        assert_eq!(chart.rows, [("2026-08-13".to_owned(), 3), ("2026-10-31".to_owned(), 12)]);
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(101), 200);
    }

    #[test]
    fn adoption_names_the_most_downloaded_versions_and_sums_the_rest() {
        let versions: BTreeMap<String, u64> =
            (0..9u64).map(|minor| (format!("1.{minor}.0"), if minor == 8 { 100 } else { minor + 1 })).collect();
        let chart = adoption_chart("Desk Clock", &PluginFigures { daily: vec![], versions });
        let names: Vec<&str> = chart.rows.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(names, ["1.8.0", "1.7.0", "1.6.0", "1.5.0", "1.4.0", "other versions"]);
        assert_eq!(chart.rows[0].downloads, 100);
        assert_eq!(chart.rows[5].downloads, 1 + 2 + 3 + 4);
        assert_eq!(chart.rows[0].percent, 100 * 100 / 136 + 1, "73.5% rounds to 74");
        assert!(chart.rows.iter().all(|r| r.length >= 1 && r.text_x > chart.left + r.length));
        assert!(chart.desc.starts_with("1.8.0: 74% (100 downloads); 1.7.0: 6% (8 downloads)"), "{}", chart.desc);
        // Equal downloads: the newer version first, by semver (1.10.0 after 1.9.0).
        let tie = adoption_chart(
            "x",
            &PluginFigures { daily: vec![], versions: BTreeMap::from([("1.9.0".into(), 5), ("1.10.0".into(), 5)]) },
        );
        assert_eq!(tie.rows[0].version, "1.10.0");
    }
}
