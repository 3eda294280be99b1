//! The security levels documents (`security/levels-<xx>.json`, signed by the `security`
//! role): every release's signals and level ([`trellis_schema::security_level`]).
//!
//! A loaded plugin's releases get their signals from the build's inputs (the keys that
//! signed the manifest, the permissions, the published analysis) and the date each was
//! first published from the previous site's bucket (a new release: the build's day).
//! Every other plugin the previous site lists (a [`Scope::Plugins`] build) keeps its
//! stored signals; for all of them the publisher's domain proof, the advisories and
//! the age are taken as of this build, so a level moves when time passes or an
//! advisory appears without touching any index doc. Only buckets whose bytes change
//! are new files; the role lists all of them. The head (`security/levels.json`,
//! [`LevelsHead`]) records the next day a published release reaches the age threshold
//! and a digest of the publishers' standings: until then, and while they stay the same,
//! an incremental build reads and redoes only its plugins' buckets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use trellis_schema::advisory::Advisories;
use trellis_schema::security_level::{
    self, AdvisorySeverity, ESTABLISHED_AGE_DAYS, LEVELS_FORMAT, LEVELS_HEAD_TARGET, LevelsBucket, LevelsHead,
    PluginLevels, PublisherStanding, ReleaseLevel, ScanOutcome,
};
use trellis_schema::{PluginId, Sha256, VendorId, canonical};

use super::documents::{TargetOut, bytes_target};
use super::plan::Entries;
use super::previous::PreviousSite;
use super::{BuildError, Scope, read_site_target};
use crate::release::PluginInput;
use crate::tuf::SECURITY_ROLE;

/// Prefix of every levels bucket target.
const LEVELS_PREFIX: &str = "security/levels-";

/// What the build knows beyond the plugins: standings, advisories, the day.
pub(super) struct LevelContext<'a> {
    pub(super) standings: &'a BTreeMap<VendorId, PublisherStanding>,
    pub(super) advisories: &'a Advisories,
    pub(super) today: jiff::civil::Date,
    /// Every plugin of the registry (whose publishers' standings count).
    pub(super) known_plugins: &'a BTreeSet<PluginId>,
}

/// One bucket to publish and the releases it assesses.
pub(super) struct BucketOut {
    pub(super) target: TargetOut,
    pub(super) releases: usize,
}

/// What the security role lists for the levels.
pub(super) struct LevelsOut {
    /// Buckets (re)computed by this build.
    pub(super) buckets: Vec<BucketOut>,
    /// Buckets the previous site published that this build did not need to redo.
    pub(super) carried: Entries,
    /// The head.
    pub(super) head: TargetOut,
}

/// The buckets to publish and the head. A [`Scope::Plugins`] build redoes only the
/// buckets of its plugins while the published head shows that nothing else can have
/// moved (no release reached the age threshold since, the same publisher standings;
/// the advisories of the other plugins are carried as published); otherwise every
/// bucket is redone from the published ones.
pub(super) fn documents(
    previous: Option<&PreviousSite>,
    scope: &Scope,
    plugins: &[PluginInput],
    context: &LevelContext<'_>,
) -> Result<LevelsOut, BuildError> {
    // Only the standings of publishers with plugins count: a new publisher without
    // any changes no level.
    let vendors: BTreeSet<&str> = context.known_plugins.iter().map(PluginId::vendor).collect();
    let counted: BTreeMap<&VendorId, &PublisherStanding> =
        context.standings.iter().filter(|(v, _)| vendors.contains(v.as_str())).collect();
    let publishers_sha256 = Sha256::of(&canonical::to_vec_of(&counted)?);
    let published_role = match previous {
        Some(previous) => previous.role(SECURITY_ROLE)?,
        None => None,
    };
    let listed: Entries = match &published_role {
        Some(role) => role
            .signed
            .targets
            .iter()
            .filter(|(target, _)| target.starts_with(LEVELS_PREFIX) || target.as_str() == LEVELS_HEAD_TARGET)
            .map(|(target, file)| {
                let sha256 =
                    file.hashes.get("sha256").and_then(|h| h.parse().ok()).ok_or_else(|| BuildError::Site {
                        path: previous.map(|p| p.dir().to_owned()).unwrap_or_default(),
                        reason: format!("{target} has no valid sha256 in the security role"),
                    })?;
                Ok((target.clone(), (sha256, file.length)))
            })
            .collect::<Result<_, BuildError>>()?,
        None => Entries::new(),
    };
    let head: Option<LevelsHead> = match (previous, listed.get(LEVELS_HEAD_TARGET)) {
        (Some(previous), Some((sha256, _))) => Some(read_site_target(previous, LEVELS_HEAD_TARGET, sha256)?),
        _ => None,
    };
    let narrow = matches!(scope, Scope::Plugins(_))
        && head.as_ref().is_some_and(|head| {
            head.publishers_sha256 == publishers_sha256
                && head.next_review.as_ref().is_none_or(|day| day.as_str() > context.today.to_string().as_str())
        });
    let wanted: Option<BTreeSet<String>> =
        narrow.then(|| plugins.iter().map(|p| security_level::levels_target(&p.id)).collect());
    let published = match previous {
        Some(previous) => published_levels(previous, &listed, wanted.as_ref())?,
        None => BTreeMap::new(),
    };
    let severities = security_level::open_advisories(context.advisories);
    let today = context.today.to_string();
    let mut all: BTreeMap<PluginId, PluginLevels> = plugins
        .par_iter()
        .map(|plugin| {
            let before = published.get(&plugin.id);
            let standing = standing(context, &plugin.id);
            let releases = plugin
                .releases
                .iter()
                .map(|release| {
                    let version = &release.manifest.version;
                    let first = before.and_then(|b| b.releases.iter().find(|r| &r.version == version));
                    let risk = security_level::max_permission_risk(&release.manifest.permissions);
                    let stored = ReleaseLevel {
                        version: version.clone(),
                        published: first.map_or_else(|| today.clone(), |f| f.published.clone()),
                        signing_keys: release.signing_keys,
                        max_permission_risk: risk,
                        scan: ScanOutcome::of(release.analysis.as_ref()),
                        advisory: None,
                        level: security_level::Level::Signed,
                        reasons: Vec::new(),
                    };
                    assess(stored, &standing, &severities, &plugin.id, context.today)
                })
                .collect();
            (plugin.id.clone(), PluginLevels { publisher: standing, releases })
        })
        .collect();
    if matches!(scope, Scope::Plugins(_)) {
        let carried: Vec<(PluginId, PluginLevels)> = published
            .into_par_iter()
            .filter(|(id, _)| !all.contains_key(id))
            .map(|(id, levels)| {
                let standing = standing(context, &id);
                let releases = levels
                    .releases
                    .into_iter()
                    .map(|r| assess(r, &standing, &severities, &id, context.today))
                    .collect();
                (id, PluginLevels { publisher: standing, releases })
            })
            .collect();
        all.extend(carried);
    }
    // The head: the earliest day a release assessed here reaches the age threshold,
    // and (narrow) the published one, which stands for every bucket carried over.
    let young = all
        .values()
        .flat_map(|p| &p.releases)
        .filter_map(|r| r.published.parse::<jiff::civil::Date>().ok())
        .filter_map(|d| d.checked_add(jiff::Span::new().days(i64::from(ESTABLISHED_AGE_DAYS))).ok())
        .filter(|d| *d > context.today)
        .min()
        .map(|d| d.to_string());
    let next_review = match (&young, head.as_ref().and_then(|h| h.next_review.clone()).filter(|_| narrow)) {
        (Some(a), Some(b)) => Some(a.clone().min(b)),
        (a, b) => a.clone().or(b),
    };
    let head = LevelsHead { format: LEVELS_FORMAT, next_review, publishers_sha256 };
    let head = bytes_target(LEVELS_HEAD_TARGET.to_owned(), canonical::to_vec_of(&head)?);

    let mut buckets: BTreeMap<u8, LevelsBucket> = BTreeMap::new();
    for (id, levels) in all {
        let bucket = buckets
            .entry(security_level::levels_bucket(&id))
            .or_insert_with(|| LevelsBucket { format: LEVELS_FORMAT, plugins: BTreeMap::new() });
        bucket.plugins.insert(id, levels);
    }
    let redone: BTreeSet<String> = buckets.keys().map(|n| security_level::bucket_target(*n)).collect();
    let carried: Entries = match narrow {
        true => listed
            .into_iter()
            .filter(|(target, _)| target.starts_with(LEVELS_PREFIX) && !redone.contains(target))
            .collect(),
        false => Entries::new(),
    };
    let buckets = buckets
        .into_par_iter()
        .map(|(number, bucket)| {
            let releases = bucket.plugins.values().map(|p| p.releases.len()).sum();
            let target = bytes_target(security_level::bucket_target(number), canonical::to_vec_of(&bucket)?);
            Ok(BucketOut { target, releases })
        })
        .collect::<Result<_, BuildError>>()?;
    Ok(LevelsOut { buckets, carried, head })
}

/// The standing of `id`'s publisher (unverified when the registry has no record).
fn standing(context: &LevelContext<'_>, id: &PluginId) -> PublisherStanding {
    let vendor: Option<VendorId> = id.vendor().parse().ok();
    vendor.and_then(|v| context.standings.get(&v).cloned()).unwrap_or(PublisherStanding {
        verified: false,
        domain: None,
        reason: Some("no domain proof was checked for this publisher".to_owned()),
        checked: None,
    })
}

/// `stored`'s level under today's standing, advisories and age.
fn assess(
    mut stored: ReleaseLevel,
    standing: &PublisherStanding,
    severities: &HashMap<(&PluginId, &semver::Version), AdvisorySeverity>,
    id: &PluginId,
    today: jiff::civil::Date,
) -> ReleaseLevel {
    stored.advisory = severities.get(&(id, &stored.version)).copied();
    let assessment = stored.assess(standing, today);
    stored.level = assessment.level;
    stored.reasons = assessment.reasons;
    stored
}

/// The plugins of the published buckets `listed` (only those in `wanted`, when given).
fn published_levels(
    previous: &PreviousSite,
    listed: &Entries,
    wanted: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<PluginId, PluginLevels>, BuildError> {
    let targets: Vec<(&String, &Sha256)> = listed
        .iter()
        .filter(|(target, _)| target.starts_with(LEVELS_PREFIX))
        .filter(|(target, _)| wanted.is_none_or(|w| w.contains(*target)))
        .map(|(target, (sha256, _))| (target, sha256))
        .collect();
    let buckets: Vec<LevelsBucket> = targets
        .into_par_iter()
        .map(|(target, sha256)| read_site_target(previous, target, sha256))
        .collect::<Result<_, _>>()?;
    Ok(buckets.into_iter().flat_map(|b| b.plugins).collect())
}
