//! Reviews: files in the registry source, checked and aggregated into ratings.
//!
//! Owns the review file format (`reviews/<plugin id>/<GitHub login>.json`: stars
//! 1–5, text, the version reviewed, a date, the author and a moderation state), its
//! checks ([`check`]: one file per author and plugin by construction, the author the
//! file's name, a known plugin and version, bounded text in the allowed Markdown,
//! [`ReviewLimits`]), and the aggregate a catalog shows ([`Aggregate`]: mean, count,
//! histogram, recent trend). Hidden reviews are checked but never counted. It does not
//! read packages: the caller passes the versions each plugin has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trellis_schema::PluginId;
use trellis_schema::catalog::Rating;

/// Bounds on a review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReviewLimits {
    /// Bytes of a review file, refused before it is read (default 16 KiB).
    pub file_bytes: u64,
    /// Characters of the text (default 2,000).
    pub text_chars: usize,
    /// Lines of the text (default 40).
    pub text_lines: usize,
}

impl Default for ReviewLimits {
    fn default() -> Self {
        Self { file_bytes: 16 * 1024, text_chars: 2000, text_lines: 40 }
    }
}

/// Whether a review is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Moderation {
    /// Shown and counted.
    Visible,
    /// Kept in the source, neither shown nor counted.
    Hidden,
}

/// One review file, as written in the registry source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// 1 to 5.
    pub stars: u8,
    /// Markdown: paragraphs, emphasis, lists, code and links; no raw HTML, no images.
    pub text: String,
    /// The version reviewed.
    pub version: semver::Version,
    /// When it was written (`YYYY-MM-DD`).
    pub date: jiff::civil::Date,
    /// GitHub login of the author: the file's name.
    pub author: String,
    /// Moderation state.
    pub state: Moderation,
}

/// A review that passed [`check`], with the plugin it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedReview {
    /// The plugin.
    pub plugin: PluginId,
    /// The review.
    pub review: Review,
}

/// A review file that is refused: where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReviewProblem {
    /// The file (or directory).
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub reason: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewReport {
    /// Reviews that passed, visible and hidden, by plugin then author.
    pub reviews: Vec<CheckedReview>,
    /// Files refused.
    pub problems: Vec<ReviewProblem>,
}

/// Checks every review under `registry/reviews/` against `known` (each plugin's
/// versions). A missing `reviews/` directory is no reviews.
pub fn check(
    registry: &Path,
    known: &BTreeMap<PluginId, BTreeSet<semver::Version>>,
    limits: &ReviewLimits,
) -> ReviewReport {
    let mut report = ReviewReport::default();
    let root = registry.join("reviews");
    let Ok(plugins) = sorted_entries(&root, &mut report) else { return report };
    for plugin_dir in plugins {
        let name = plugin_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let plugin: PluginId = match name.parse() {
            Ok(id) if known.contains_key(&id) => id,
            Ok(_) => {
                report.problems.push(problem(&plugin_dir, format!("{name} is not a plugin of this registry")));
                continue;
            }
            Err(e) => {
                report.problems.push(problem(&plugin_dir, format!("the directory name is not a plugin id: {e}")));
                continue;
            }
        };
        let Ok(files) = sorted_entries(&plugin_dir, &mut report) else { continue };
        for file in files {
            match check_file(&file, &plugin, &known[&plugin], limits) {
                Ok(review) => report.reviews.push(CheckedReview { plugin: plugin.clone(), review }),
                Err(reason) => report.problems.push(problem(&file, reason)),
            }
        }
    }
    report
}

fn problem(path: &Path, reason: String) -> ReviewProblem {
    ReviewProblem { path: path.to_owned(), reason }
}

fn sorted_entries(dir: &Path, report: &mut ReviewReport) -> Result<Vec<PathBuf>, ()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.ends_with("reviews") => return Err(()),
        Err(e) => {
            report.problems.push(problem(dir, format!("cannot be read: {e}")));
            return Err(());
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    Ok(paths)
}

/// One review file of `plugin` (whose versions are `versions`).
fn check_file(
    path: &Path,
    plugin: &PluginId,
    versions: &BTreeSet<semver::Version>,
    limits: &ReviewLimits,
) -> Result<Review, String> {
    let login = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .ok_or_else(|| "a review is a file <GitHub login>.json".to_owned())?;
    if !is_github_login(login) {
        return Err(format!("{login:?} is not a GitHub login (letters, digits, single hyphens inside, 1–39)"));
    }
    let length = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?.len();
    if length > limits.file_bytes {
        return Err(format!("the file is {length} bytes; a review file holds at most {}", limits.file_bytes));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let review: Review = serde_json::from_slice(&bytes).map_err(|e| format!("not a review: {e}"))?;
    if !(1..=5).contains(&review.stars) {
        return Err(format!("stars is {}; give 1 to 5", review.stars));
    }
    if review.author != login {
        return Err(format!(
            "author is {:?} but the file is {login}.json: one file per author, named by the author's login",
            review.author
        ));
    }
    if !versions.contains(&review.version) {
        return Err(format!("{plugin} has no release {}; review a published version", review.version));
    }
    check_text(&review.text, limits)?;
    Ok(review)
}

/// GitHub's login rule: 1–39 ASCII letters, digits and hyphens, no hyphen first,
/// last or twice in a row.
pub fn is_github_login(login: &str) -> bool {
    (1..=39).contains(&login.len())
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
}

/// The text rules: not empty, within the limits, Markdown without raw HTML or images.
fn check_text(text: &str, limits: &ReviewLimits) -> Result<(), String> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err("the text is empty".to_owned());
    }
    if chars > limits.text_chars {
        return Err(format!("the text is {chars} characters; a review holds at most {}", limits.text_chars));
    }
    let lines = text.lines().count();
    if lines > limits.text_lines {
        return Err(format!("the text is {lines} lines; a review holds at most {}", limits.text_lines));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
        return Err(format!("the text holds the control character U+{:04X}", u32::from(c)));
    }
    let bytes = text.as_bytes();
    for (at, window) in bytes.windows(2).enumerate() {
        if window[0] == b'<' && (window[1].is_ascii_alphabetic() || matches!(window[1], b'/' | b'!' | b'?')) {
            let line = text[..at].matches('\n').count() + 1;
            return Err(format!("line {line}: raw HTML is not allowed in a review (write Markdown)"));
        }
        if window == b"![" {
            let line = text[..at].matches('\n').count() + 1;
            return Err(format!("line {line}: images are not allowed in a review"));
        }
    }
    Ok(())
}

/// Stars of one plugin's visible reviews.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    /// Visible reviews.
    pub count: u32,
    /// Mean stars in tenths (10–50), rounded half up.
    pub tenths: u8,
    /// Reviews with 1, 2, 3, 4 and 5 stars.
    pub histogram: [u32; 5],
    /// Mean stars in tenths of the reviews of the last [`RECENT_DAYS`] before the
    /// build, when there are any: above `tenths` is rising.
    pub recent_tenths: Option<u8>,
}

/// The window of [`Aggregate::recent_tenths`].
pub const RECENT_DAYS: i64 = 90;

impl Aggregate {
    /// The aggregate of `reviews` (hidden ones left out) as of `today`; `None`
    /// without a visible review.
    pub fn of<'a>(reviews: impl IntoIterator<Item = &'a Review>, today: jiff::civil::Date) -> Option<Self> {
        let visible: Vec<&Review> = reviews.into_iter().filter(|r| r.state == Moderation::Visible).collect();
        let mean = |list: &[&Review]| -> Option<u8> {
            let count = list.len() as u64;
            let sum: u64 = list.iter().map(|r| u64::from(r.stars)).sum();
            (count > 0).then(|| ((sum * 10 * 2 + count) / (count * 2)) as u8)
        };
        let tenths = mean(&visible)?;
        let mut histogram = [0u32; 5];
        for review in &visible {
            histogram[usize::from(review.stars - 1)] += 1;
        }
        let since = today.checked_sub(jiff::Span::new().days(RECENT_DAYS)).unwrap_or(today);
        let recent: Vec<&Review> = visible.iter().copied().filter(|r| r.date > since && r.date <= today).collect();
        Some(Self { count: visible.len() as u32, tenths, histogram, recent_tenths: mean(&recent) })
    }

    /// The rating a catalog summary carries.
    pub fn rating(&self) -> Rating {
        Rating { tenths: self.tenths, count: self.count, histogram: self.histogram, recent_tenths: self.recent_tenths }
    }
}

/// The first day after `today` on which the aggregate of visible reviews dated `dates`
/// differs from today's without any review changing: a review enters the
/// [`RECENT_DAYS`] window on its date and leaves it [`RECENT_DAYS`] later (the window
/// of day `t` holds the dates `d` with `t - RECENT_DAYS < d <= t`). `None`: never.
pub fn next_window_change(
    dates: impl IntoIterator<Item = jiff::civil::Date>,
    today: jiff::civil::Date,
) -> Option<jiff::civil::Date> {
    dates
        .into_iter()
        .flat_map(|date| [Some(date), date.checked_add(jiff::Span::new().days(RECENT_DAYS)).ok()])
        .flatten()
        .filter(|day| *day > today)
        .min()
}

/// Whether the aggregate of visible reviews dated `dates` may differ between the days
/// `since` (exclusive) and `until` (inclusive): a review entered or left the window
/// in between.
pub fn window_changed(
    dates: impl IntoIterator<Item = jiff::civil::Date>,
    since: jiff::civil::Date,
    until: jiff::civil::Date,
) -> bool {
    next_window_change(dates, since).is_some_and(|day| day <= until)
}

/// The dates of every visible review under `reviews/`, by plugin, read leniently: a
/// file that is not a review is left out (a build that loads its plugin refuses it
/// through [`check`]). For the builder's state when it has none (see
/// `build::ratings`); costs one read per review file.
pub fn visible_dates(registry: &Path) -> BTreeMap<PluginId, Vec<jiff::civil::Date>> {
    #[derive(Deserialize)]
    struct Dated {
        date: jiff::civil::Date,
        state: Moderation,
    }
    let mut out: BTreeMap<PluginId, Vec<jiff::civil::Date>> = BTreeMap::new();
    let Ok(plugins) = std::fs::read_dir(registry.join("reviews")) else { return out };
    for plugin_dir in plugins.flatten() {
        let Some(plugin) = plugin_dir.file_name().to_str().and_then(|name| name.parse::<PluginId>().ok()) else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(plugin_dir.path()) else { continue };
        for file in files.flatten() {
            let path = file.path();
            if file.metadata().is_ok_and(|m| m.len() > ReviewLimits::default().file_bytes) {
                continue;
            }
            if let Some(dated) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Dated>(&b).ok())
                && dated.state == Moderation::Visible
            {
                out.entry(plugin.clone()).or_default().push(dated.date);
            }
        }
    }
    out
}

/// A review written from a GitHub issue event (the issue form
/// `.github/ISSUE_TEMPLATE/review.yml` of the registry template): the plugin, version,
/// stars and text from the form's sections, the author from the issue's `user.login`
/// (never from the body), the date from `created_at`, state visible. Returns the
/// path relative to the registry (`reviews/<plugin>/<login>.json`) and the review;
/// [`check`] still has to pass it.
pub fn from_issue(event: &[u8]) -> Result<(PathBuf, Review), String> {
    #[derive(Deserialize)]
    struct Event {
        issue: Issue,
    }
    #[derive(Deserialize)]
    struct Issue {
        user: User,
        body: Option<String>,
        created_at: String,
    }
    #[derive(Deserialize)]
    struct User {
        login: String,
    }
    let event: Event = serde_json::from_slice(event).map_err(|e| format!("not an issue event: {e}"))?;
    let body = event.issue.body.unwrap_or_default();
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in body.lines() {
        match line.strip_prefix("### ") {
            Some(heading) => {
                current = Some(heading.trim().to_lowercase());
                sections.entry(heading.trim().to_lowercase()).or_default();
            }
            None => {
                if let Some(name) = &current {
                    let text = sections.entry(name.clone()).or_default();
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    let field = |name: &str| -> Result<String, String> {
        let value = sections.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        if value.is_empty() || value == "_No response_" {
            return Err(format!("the issue has no {name:?} section (use the review issue form)"));
        }
        Ok(value)
    };
    let plugin: PluginId = field("plugin")?.parse().map_err(|e| format!("plugin: {e}"))?;
    let version: semver::Version = field("version")?.parse().map_err(|e| format!("version: {e}"))?;
    let stars_text = field("stars")?;
    let stars: u8 = stars_text
        .chars()
        .find(char::is_ascii_digit)
        .and_then(|c| c.to_digit(10))
        .and_then(|d| u8::try_from(d).ok())
        .ok_or_else(|| format!("stars: {stars_text:?} has no number"))?;
    let text = field("review")?;
    let login = event.issue.user.login;
    if !is_github_login(&login) {
        return Err(format!("{login:?} is not a GitHub login"));
    }
    let date: jiff::civil::Date = event
        .issue
        .created_at
        .get(..10)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("created_at {:?} is not a date", event.issue.created_at))?;
    let path = PathBuf::from("reviews").join(plugin.as_str()).join(format!("{login}.json"));
    Ok((path, Review { stars, text, version, date, author: login, state: Moderation::Visible }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeMap<PluginId, BTreeSet<semver::Version>> {
        BTreeMap::from([("acme.clock".parse().unwrap(), BTreeSet::from(["1.0.0".parse().unwrap()]))])
    }

    fn write(registry: &Path, plugin: &str, file: &str, text: &str) -> PathBuf {
        let dir = registry.join("reviews").join(plugin);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn review(stars: u32, author: &str, text: &str) -> String {
        serde_json::json!({
            "stars": stars, "text": text, "version": "1.0.0", "date": "2026-11-20",
            "author": author, "state": "visible"
        })
        .to_string()
    }

    fn only_problem(registry: &Path) -> String {
        let report = check(registry, &known(), &ReviewLimits::default());
        assert!(report.reviews.is_empty(), "{:?}", report.reviews);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        format!("{}: {}", report.problems[0].path.display(), report.problems[0].reason)
    }

    #[test]
    fn accepts_a_review_in_markdown() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "acme.clock", "octocat.json", &review(4, "octocat", "Works **well**.\n\n- fast\n- small"));
        let report = check(dir.path(), &known(), &ReviewLimits::default());
        assert_eq!(report.problems, Vec::new());
        assert_eq!(report.reviews.len(), 1);
        assert_eq!(report.reviews[0].review.stars, 4);
    }

    #[test]
    fn refuses_six_stars_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "acme.clock", "octocat.json", &review(6, "octocat", "great"));
        let message = only_problem(dir.path());
        assert!(message.contains("octocat.json") && message.contains("stars is 6; give 1 to 5"), "{message}");
    }

    #[test]
    fn refuses_a_megabyte_of_text_before_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "acme.clock", "octocat.json", &review(3, "octocat", &"a".repeat(1 << 20)));
        let message = only_problem(dir.path());
        assert!(message.contains("bytes; a review file holds at most 16384"), "{message}");
        let limits = ReviewLimits { file_bytes: 4 << 20, ..ReviewLimits::default() };
        let report = check(dir.path(), &known(), &limits);
        assert!(report.problems[0].reason.contains("characters; a review holds at most 2000"), "{:?}", report.problems);
    }

    #[test]
    fn refuses_raw_html_images_and_an_author_other_than_the_file() {
        for (text, author, expected) in [
            ("hi <script>alert(1)</script>", "octocat", "raw HTML is not allowed"),
            ("ok\n![x](http://e/x.png)", "octocat", "line 2: images are not allowed"),
            ("fine", "someone-else", "one file per author"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "acme.clock", "octocat.json", &review(5, author, text));
            let message = only_problem(dir.path());
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn refuses_an_unknown_plugin_version_field_or_login() {
        let cases: [(&str, &str, String, &str); 4] = [
            ("acme.other", "octocat.json", review(5, "octocat", "x"), "acme.other is not a plugin of this registry"),
            ("acme.clock", "octocat.json", review(5, "octocat", "x").replace("1.0.0", "9.0.0"), "has no release 9.0.0"),
            (
                "acme.clock",
                "octocat.json",
                review(5, "octocat", "x").replace("\"state\"", "\"mood\":1,\"state\""),
                "unknown field",
            ),
            ("acme.clock", "-bad-.json", review(5, "-bad-", "x"), "is not a GitHub login"),
        ];
        for (plugin, file, text, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), plugin, file, &text);
            let message = only_problem(dir.path());
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn the_window_moves_when_a_review_reaches_its_date_and_ninety_days_later() {
        let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
        let dates = [d("2026-08-10"), d("2026-10-20"), d("2026-12-24")];
        assert_eq!(next_window_change(dates, d("2026-11-01")), Some(d("2026-11-08")), "08-10 leaves");
        assert_eq!(next_window_change(dates, d("2026-11-08")), Some(d("2026-12-24")), "the one dated ahead enters");
        assert_eq!(next_window_change(dates, d("2026-12-24")), Some(d("2027-01-18")), "10-20 leaves");
        assert_eq!(next_window_change(dates, d("2027-03-24")), None, "every review has left");
        // The aggregate really does move on that day and not the day before.
        let reviews: Vec<Review> = dates
            .iter()
            .zip([5, 3, 1])
            .map(|(date, stars)| Review {
                stars,
                text: "ok".into(),
                version: "1.0.0".parse().unwrap(),
                date: *date,
                author: "a".into(),
                state: Moderation::Visible,
            })
            .collect();
        let recent = |day: &str| Aggregate::of(&reviews, d(day)).unwrap().recent_tenths;
        assert_eq!([recent("2026-11-07"), recent("2026-11-08")], [Some(40), Some(30)]);
        assert!(window_changed(dates, d("2026-11-07"), d("2026-11-08")));
        assert!(!window_changed(dates, d("2026-11-08"), d("2026-12-23")));
    }

    #[test]
    fn aggregates_visible_reviews_only_with_histogram_and_recent_trend() {
        let today: jiff::civil::Date = "2026-12-01".parse().unwrap();
        let make = |stars: u8, date: &str, state| Review {
            stars,
            text: "x".into(),
            version: "1.0.0".parse().unwrap(),
            date: date.parse().unwrap(),
            author: "a".into(),
            state,
        };
        let reviews = [
            make(5, "2026-11-30", Moderation::Visible),
            make(4, "2026-11-01", Moderation::Visible),
            make(1, "2025-01-01", Moderation::Visible),
            make(1, "2026-11-30", Moderation::Hidden),
        ];
        let aggregate = Aggregate::of(&reviews, today).unwrap();
        assert_eq!(aggregate.count, 3);
        assert_eq!(aggregate.tenths, 33, "10/3 stars, rounded");
        assert_eq!(aggregate.histogram, [1, 0, 0, 1, 1]);
        assert_eq!(aggregate.recent_tenths, Some(45), "the last 90 days: 5 and 4");
        let rating = Rating { tenths: 33, count: 3, histogram: [1, 0, 0, 1, 1], recent_tenths: Some(45) };
        assert_eq!(aggregate.rating(), rating, "the catalog publishes the histogram and the trend");
        assert_eq!(Aggregate::of(&reviews[3..], today), None, "hidden reviews count for nothing");
    }
}
