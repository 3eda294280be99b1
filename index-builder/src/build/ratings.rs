//! Star ratings, and the days on which a published rating moves with no review
//! changing.
//!
//! A rating's `recent_tenths` is the mean of the visible reviews of the last
//! [`RECENT_DAYS`](review::RECENT_DAYS) days, so it moves on the day a review reaches its date (a review
//! dated ahead) and as many days later, when it leaves the window. A full build
//! rates every plugin as of its day; an incremental one rates only the plugins it
//! loads, so it also loads, like changed ones, every plugin whose window moved since
//! the published site ([`due`]): its catalog stays byte for byte what a full build
//! writes.
//!
//! Owns `_catalog/ratings.json` in the site (builder state, not a TUF target, never
//! served): the next day each reviewed plugin's published rating moves, bound to the
//! snapshot version of the site it was written with. A lost, foreign or stale file (an
//! older builder, a build that crashed after publishing, a copied site) costs one
//! read of every review file: a plugin is then due when one of its reviews entered or
//! left the window since a day no later than the published site's build
//! ([`PreviousSite::built_no_later_than`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use trellis_client::fs::FsError;
use trellis_schema::PluginId;
use trellis_schema::catalog::{PublishedReview, Rating};

use super::{PreviousSite, Scope, state};
use crate::registry::{Registry, RegistryError};
use crate::release::PluginInput;
use crate::review;

/// The state file, relative to the site directory.
pub(crate) const RATINGS_STATE: &str = "_catalog/ratings.json";

/// Format of [`RATINGS_STATE`]; another one is not read.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    /// Version of the snapshot of the site whose catalog carries these ratings.
    snapshot: u64,
    /// Plugin → the first day after the build on which its rating moves; plugins
    /// whose rating never moves on its own are left out.
    moves: BTreeMap<PluginId, jiff::civil::Date>,
}

/// When each reviewed plugin's published rating moves next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RatingDays {
    moves: BTreeMap<PluginId, jiff::civil::Date>,
    /// Whether the registry has visible reviews (or had: a state was read): then
    /// the state is written even when no rating will move, so the next build need
    /// not read every review to learn that.
    reviewed: bool,
}

/// The day of `now` (UTC).
pub(super) fn day(now: jiff::Timestamp) -> jiff::civil::Date {
    jiff::tz::Offset::UTC.to_datetime(now).date()
}

/// The plugins of the published site `previous` whose rating moves between its build
/// and `today`, with the days the others' ratings move next. Reads
/// [`RATINGS_STATE`], or (lost, stale) every review file of `registry`.
pub(super) fn due(
    registry: &Registry,
    previous: &PreviousSite,
    today: jiff::civil::Date,
) -> (BTreeSet<PluginId>, RatingDays) {
    if let Some(days) = read(previous) {
        let due = days.moves.iter().filter(|(_, day)| **day <= today).map(|(id, _)| id.clone()).collect();
        return (due, days);
    }
    let since = previous.built_no_later_than(registry.config.expiry_days.snapshot).unwrap_or(jiff::civil::Date::MIN);
    let mut due = BTreeSet::new();
    let reviewed = review::visible_dates(&registry.dir);
    let mut days = RatingDays { moves: BTreeMap::new(), reviewed: !reviewed.is_empty() };
    for (id, dates) in reviewed {
        if review::window_changed(dates.iter().copied(), since, today) {
            due.insert(id.clone());
        }
        if let Some(next) = review::next_window_change(dates, today) {
            days.moves.insert(id, next);
        }
    }
    (due, days)
}

fn read(previous: &PreviousSite) -> Option<RatingDays> {
    let state: State = state::read(previous.dir(), RATINGS_STATE, "rating days", "reading every review")?;
    if state.format != FORMAT || state.snapshot != previous.snapshot.signed.version {
        tracing::info!(path = %previous.dir().join(RATINGS_STATE).display(), "rating days of another site; reading every review");
        return None;
    }
    Some(RatingDays { moves: state.moves, reviewed: true })
}

impl RatingDays {
    /// The days of `reviews` (the loaded plugins' visible reviews, as the build
    /// publishes them) as of `today`, over `self` (the other plugins'; nothing
    /// for a full build), every loaded plugin's entry replaced.
    pub(super) fn with_loaded(
        mut self,
        loaded: &[PluginInput],
        reviews: &VisibleReviews,
        today: jiff::civil::Date,
    ) -> Self {
        for plugin in loaded {
            self.moves.remove(&plugin.id);
        }
        // Due and not loaded: no longer a plugin of the registry.
        self.moves.retain(|_, day| *day > today);
        self.reviewed |= !reviews.is_empty();
        for (id, published) in reviews {
            let dates = published.iter().filter_map(|r| r.date.parse::<jiff::civil::Date>().ok());
            if let Some(next) = review::next_window_change(dates, today) {
                self.moves.insert(id.clone(), next);
            }
        }
        self
    }

    /// Writes them for the site whose snapshot is now at `snapshot` (nothing for a
    /// registry without reviews whose site has no state).
    pub(super) fn write(self, site: &Path, snapshot: u64) -> Result<(), FsError> {
        if !self.reviewed && !site.join(RATINGS_STATE).exists() {
            return Ok(());
        }
        state::write(site, RATINGS_STATE, &State { format: FORMAT, snapshot, moves: self.moves })
    }
}

/// The star ratings of `plugins` from their reviews (`reviews/<id>/<login>.json`),
/// as of `now`. A refused review of a loaded plugin (any review in a full build)
/// refuses the build; reviews of plugins an incremental build does not load are
/// left for the build that loads them.
pub(super) fn of_loaded(
    registry: &Registry,
    plugins: &[PluginInput],
    scope: &Scope,
    now: jiff::Timestamp,
) -> Result<(BTreeMap<PluginId, Rating>, VisibleReviews), RegistryError> {
    use crate::review::{Aggregate, ReviewLimits};
    let known: BTreeMap<PluginId, BTreeSet<semver::Version>> = plugins
        .iter()
        .map(|p| (p.id.clone(), p.releases.iter().map(|r| r.manifest.version.clone()).collect()))
        .collect();
    let report = review::check(&registry.dir, &known, &ReviewLimits::default());
    let reviews_dir = registry.dir.join("reviews");
    let loaded = |path: &Path| {
        path.strip_prefix(&reviews_dir)
            .ok()
            .and_then(|rest| rest.components().next()?.as_os_str().to_str()?.parse::<PluginId>().ok())
            .is_some_and(|id| known.contains_key(&id))
    };
    let refused: Vec<&review::ReviewProblem> =
        report.problems.iter().filter(|p| *scope == Scope::Full || loaded(&p.path)).collect();
    if let Some(first) = refused.first() {
        let more = match refused.len() {
            1 => String::new(),
            n => format!(" (and {} more; run `trellis-index reviews check`)", n - 1),
        };
        return Err(RegistryError::Layout { path: first.path.clone(), reason: format!("{}{more}", first.reason) });
    }
    let today = day(now);
    let mut by_plugin: BTreeMap<&PluginId, Vec<&review::Review>> = BTreeMap::new();
    for checked in &report.reviews {
        by_plugin.entry(&checked.plugin).or_default().push(&checked.review);
    }
    let ratings = by_plugin
        .iter()
        .filter_map(|(id, reviews)| Some(((*id).clone(), Aggregate::of(reviews.iter().copied(), today)?.rating())))
        .collect();
    let visible = by_plugin
        .into_iter()
        .map(|(id, reviews)| {
            let published = reviews
                .into_iter()
                .filter(|r| r.state == review::Moderation::Visible)
                .map(|r| PublishedReview {
                    author: r.author.clone(),
                    stars: r.stars,
                    version: r.version.clone(),
                    date: r.date.to_string(),
                    text: r.text.clone(),
                })
                .collect::<Vec<_>>();
            (id.clone(), published)
        })
        .filter(|(_, published)| !published.is_empty())
        .collect();
    Ok((ratings, visible))
}

/// Visible reviews of one plugin.
pub(super) type VisibleReviews = BTreeMap<PluginId, Vec<PublishedReview>>;
