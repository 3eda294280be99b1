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
    /// Whether `standings` judged every publisher; when not (an incremental build judges
    /// the publishers of its loaded plugins), a plugin whose publisher is missing there
    /// keeps the standing the site published for it.
    pub(super) every_standing: bool,
    pub(super) advisories: &'a Advisories,
    pub(super) today: jiff::civil::Date,
    /// Every plugin of the registry (whose publishers' standings count).
    pub(super) known_plugins: &'a super::KnownPlugins,
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
    // any changes no level. (Looked up by range, one per standing: a set of every
    // plugin's vendor cost ~9 ms at 300k plugins.)
    let has_plugins = |vendor: &VendorId| context.known_plugins.has_vendor(vendor);
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
    // No published release reached the age threshold since the head was published.
    let unaged = matches!(scope, Scope::Plugins(_))
        && head.as_ref().is_some_and(|head| {
            head.next_review.as_ref().is_none_or(|day| day.as_str() > context.today.to_string().as_str())
        });
    let loaded: BTreeSet<&PluginId> = plugins.iter().map(|p| &p.id).collect();
    let loaded_buckets = || plugins.iter().map(|p| security_level::levels_target(&p.id)).collect::<BTreeSet<_>>();
    let read = |wanted: Option<&BTreeSet<String>>, parsed: &BTreeSet<&PluginId>| match previous {
        Some(previous) => published_levels(previous, &listed, wanted, parsed),
        None => Ok(Published::default()),
    };
    // Narrow: only the loaded plugins' buckets are read and redone. With every
    // publisher judged, while their standings' digest is the head's; with some judged
    // (`every_standing` false), while each judged publisher's standing is the one the
    // site published for its plugins (read from a loaded plugin the site published,
    // else from one more plugin of the publisher): the others' stand as published.
    let (narrow, Published { plugins: published, spliced }, publishers_sha256) = if context.every_standing {
        let counted: BTreeMap<&VendorId, &PublisherStanding> =
            context.standings.iter().filter(|(v, _)| has_plugins(v)).collect();
        let publishers_sha256 = Sha256::of(&canonical::to_vec_of(&counted)?);
        let narrow = unaged && head.as_ref().is_some_and(|head| head.publishers_sha256 == publishers_sha256);
        let wanted = narrow.then(loaded_buckets);
        (narrow, read(wanted.as_ref(), &loaded)?, Some(publishers_sha256))
    } else {
        let judged: Vec<(&VendorId, &PublisherStanding)> =
            context.standings.iter().filter(|(v, _)| has_plugins(v)).collect();
        let narrowed = match (unaged, &head) {
            (true, Some(head)) => {
                // The loaded plugins' buckets first: a judged publisher one of whose
                // loaded plugins the site published shows its published standing there.
                let mut found = read(Some(&loaded_buckets()), &loaded)?;
                let shown = |vendor: &VendorId| {
                    loaded.iter().any(|id| id.vendor_id() == *vendor && found.plugins.contains_key(*id))
                };
                let probes: BTreeSet<PluginId> = (judged.iter())
                    .filter(|(vendor, _)| !shown(vendor))
                    .filter_map(|(vendor, _)| {
                        context.known_plugins.of_vendor(vendor).into_iter().find(|id| !loaded.contains(id))
                    })
                    .collect();
                if !probes.is_empty() {
                    let wanted = probes.iter().map(security_level::levels_target).collect();
                    let more = read(Some(&wanted), &probes.iter().collect())?;
                    found.plugins.extend(more.plugins);
                    found.spliced.extend(more.spliced);
                }
                let same = judged.iter().all(|(vendor, standing)| {
                    let mut published =
                        context.known_plugins.of_vendor(vendor).into_iter().filter_map(|id| found.plugins.get(&id));
                    published.next().is_some_and(|levels| &levels.publisher == *standing)
                });
                // A probe in a spliced bucket is not redone: its bytes stay as published.
                found.plugins.retain(|id, _| {
                    !probes.contains(id) || !found.spliced.contains_key(&security_level::levels_target(id))
                });
                same.then_some((found, head.publishers_sha256))
            }
            _ => None,
        };
        match narrowed {
            Some((read, publishers_sha256)) => (true, read, Some(publishers_sha256)),
            None => (false, read(None, &loaded)?, None),
        }
    };
    let severities = security_level::open_advisories(context.advisories);
    let today = context.today.to_string();
    let mut all: BTreeMap<PluginId, PluginLevels> = plugins
        .par_iter()
        .map(|plugin| {
            let before = published.get(&plugin.id);
            let standing = standing(context, &plugin.id, None);
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
                let standing = standing(context, &id, Some(&levels.publisher));
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
    // Wide with some publishers judged: the digest of every publisher's standing as the
    // buckets now hold it (a publisher without a record counts as absent, as a build
    // judging every publisher would count it).
    let publishers_sha256 = match publishers_sha256 {
        Some(digest) => digest,
        None => {
            let none = unchecked();
            let counted: BTreeMap<VendorId, &PublisherStanding> = (all.iter())
                .filter(|(_, levels)| levels.publisher != none)
                .map(|(id, levels)| (id.vendor_id(), &levels.publisher))
                .collect();
            Sha256::of(&canonical::to_vec_of(&counted)?)
        }
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
            let target = security_level::bucket_target(number);
            let bytes = match spliced.get(&target) {
                Some(published) => published.splice(&bucket.plugins)?,
                None => canonical::to_vec_of(&bucket)?,
            };
            Ok(BucketOut { target: bytes_target(target, bytes), releases })
        })
        .collect::<Result<_, BuildError>>()?;
    Ok(LevelsOut { buckets, carried, head })
}

/// The standing of `id`'s publisher: as judged by this build, else (not every publisher
/// judged) `published`, the one its levels were published with, else unverified (the
/// registry has no record).
fn standing(context: &LevelContext<'_>, id: &PluginId, published: Option<&PublisherStanding>) -> PublisherStanding {
    let vendor: Option<VendorId> = id.vendor().parse().ok();
    match vendor.and_then(|v| context.standings.get(&v)) {
        Some(standing) => standing.clone(),
        None => match published.filter(|_| !context.every_standing) {
            Some(published) => published.clone(),
            None => unchecked(),
        },
    }
}

/// The standing of a publisher without a record: no domain proof checked.
fn unchecked() -> PublisherStanding {
    PublisherStanding {
        verified: false,
        domain: None,
        reason: Some("no domain proof was checked for this publisher".to_owned()),
        checked: None,
    }
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

/// What a build reads of the published levels buckets.
#[derive(Default)]
struct Published {
    /// The plugins parsed: every plugin of a bucket read whole, only the loaded ones
    /// of a spliced bucket.
    plugins: BTreeMap<PluginId, PluginLevels>,
    /// The buckets kept as published bytes, by target, which the build rewrites by
    /// splicing its loaded plugins' entries into them.
    spliced: BTreeMap<String, SplitBucket>,
}

/// The plugins of the published buckets `listed` (only those in `wanted`, when given).
///
/// A bucket is read only with the SHA-256 the security role lists
/// ([`PreviousSite::read_target`]; other bytes are [`BuildError::SiteAltered`]): the
/// first publication day of each release is carried over from it, and a day edited
/// on the site would move a release's age, so its level.
///
/// With `wanted` (a narrow build: the levels of every plugin the build did not load
/// are as published, see [`documents`]), a bucket laid out as this builder writes it
/// is split into its plugins' entries ([`SplitBucket`]) and only the `loaded` plugins'
/// entries are parsed: at 300k plugins a bucket holds ~1,200 plugins (~1 MB), which a
/// parse, re-assessment and canonical serialisation of every one cost tens of
/// milliseconds. A bucket in another layout is parsed whole and all of its plugins
/// re-assessed, as a wide build does.
fn published_levels(
    previous: &PreviousSite,
    listed: &Entries,
    wanted: Option<&BTreeSet<String>>,
    loaded: &BTreeSet<&PluginId>,
) -> Result<Published, BuildError> {
    let targets: Vec<(&String, &Sha256)> = listed
        .iter()
        .filter(|(target, _)| target.starts_with(LEVELS_PREFIX))
        .filter(|(target, _)| wanted.is_none_or(|w| w.contains(*target)))
        .map(|(target, (sha256, _))| (target, sha256))
        .collect();
    enum Read {
        Whole(LevelsBucket),
        Split(String, SplitBucket, Vec<(PluginId, PluginLevels)>),
    }
    let read: Vec<Read> = targets
        .into_par_iter()
        .map(|(target, sha256)| {
            if wanted.is_none() {
                return Ok(Read::Whole(read_site_target(previous, target, sha256)?));
            }
            let path = crate::site::target_file(previous.dir(), target, sha256);
            let bytes = previous.read_target(target, sha256)?;
            match SplitBucket::new(bytes) {
                Ok(split) => {
                    let parsed = split.parse(loaded).map_err(|reason| BuildError::Site { path, reason })?;
                    Ok(Read::Split(target.clone(), split, parsed))
                }
                Err(bytes) => trellis_schema::json::from_slice(&bytes)
                    .map(Read::Whole)
                    .map_err(|e| BuildError::Site { path, reason: e.to_string() }),
            }
        })
        .collect::<Result<_, BuildError>>()?;
    let mut published = Published::default();
    for read in read {
        match read {
            Read::Whole(bucket) => published.plugins.extend(bucket.plugins),
            Read::Split(target, split, parsed) => {
                published.plugins.extend(parsed);
                published.spliced.insert(target, split);
            }
        }
    }
    Ok(published)
}

/// A published levels bucket as this builder writes it (canonical JSON
/// `{"format":1,"plugins":{"<id>":{…},…}}`), with where each plugin's entry is.
struct SplitBucket {
    bytes: Vec<u8>,
    /// Each plugin's entry (the bytes of its `PluginLevels` object), in canonical
    /// (byte) order of the ids.
    entries: Vec<(PluginId, std::ops::Range<usize>)>,
}

impl SplitBucket {
    /// Splits `bytes` into entries by a scan (strings, escapes and nesting followed);
    /// gives the bytes back when they are not laid out as [`canonical`] writes a
    /// [`LevelsBucket`] of this format: another prefix, an id that is not a plugin id,
    /// ids out of canonical order or repeated, unbalanced objects, anything after.
    fn new(bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        match split_entries(&bytes) {
            Some(entries) => Ok(Self { bytes, entries }),
            None => Err(bytes),
        }
    }

    /// The entries of `ids` found in the bucket, parsed strictly.
    fn parse(&self, ids: &BTreeSet<&PluginId>) -> Result<Vec<(PluginId, PluginLevels)>, String> {
        let mut out = Vec::new();
        for id in ids {
            let Ok(index) = self.entries.binary_search_by(|(listed, _)| listed.as_str().cmp(id.as_str())) else {
                continue;
            };
            let levels: PluginLevels = trellis_schema::json::from_slice(&self.bytes[self.entries[index].1.clone()])
                .map_err(|e| format!("the entry of {id}: {e}"))?;
            out.push(((*id).clone(), levels));
        }
        Ok(out)
    }

    /// The bucket with the entries of `changed` serialised in their places (new ones
    /// inserted in order), every other entry as published: byte for byte the
    /// canonical JSON of the bucket with those entries replaced.
    fn splice(&self, changed: &BTreeMap<PluginId, PluginLevels>) -> Result<Vec<u8>, BuildError> {
        let mut out = Vec::with_capacity(self.bytes.len() + 1024);
        out.extend_from_slice(&bucket_prefix());
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, id: &str, entry: &[u8]| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(entry);
        };
        let mut changed = changed.iter().peekable();
        for (id, range) in &self.entries {
            while let Some((new_id, levels)) = changed.next_if(|(new_id, _)| new_id.as_str() < id.as_str()) {
                push(&mut out, new_id.as_str(), &canonical::to_vec_of(levels)?);
            }
            match changed.next_if(|(new_id, _)| new_id.as_str() == id.as_str()) {
                Some((_, levels)) => push(&mut out, id.as_str(), &canonical::to_vec_of(levels)?),
                None => push(&mut out, id.as_str(), &self.bytes[range.clone()]),
            }
        }
        for (id, levels) in changed {
            push(&mut out, id.as_str(), &canonical::to_vec_of(levels)?);
        }
        out.extend_from_slice(b"}}");
        Ok(out)
    }
}

/// `{"format":<LEVELS_FORMAT>,"plugins":{`, the canonical start of a bucket.
fn bucket_prefix() -> Vec<u8> {
    format!("{{\"format\":{LEVELS_FORMAT},\"plugins\":{{").into_bytes()
}

/// The entries of a bucket laid out as [`canonical`] writes it (see
/// [`SplitBucket::new`]); `None` otherwise. Ids are plugin ids, which need no escape
/// in JSON: an id string with a backslash is not one.
fn split_entries(bytes: &[u8]) -> Option<Vec<(PluginId, std::ops::Range<usize>)>> {
    let prefix = bucket_prefix();
    let body_end = bytes.len().checked_sub(2)?;
    if !bytes.starts_with(&prefix) || &bytes[body_end..] != b"}}" || body_end < prefix.len() {
        return None;
    }
    let mut out: Vec<(PluginId, std::ops::Range<usize>)> = Vec::new();
    let mut at = prefix.len();
    while at < body_end {
        if !out.is_empty() {
            (bytes[at] == b',').then_some(())?;
            at += 1;
        }
        // `"<id>":`
        (bytes.get(at) == Some(&b'"')).then_some(())?;
        let id_end = at + 1 + bytes[at + 1..body_end].iter().position(|&b| b == b'"')?;
        let id: PluginId = std::str::from_utf8(&bytes[at + 1..id_end]).ok()?.parse().ok()?;
        if out.last().is_some_and(|(last, _)| last.as_str() >= id.as_str()) {
            return None;
        }
        (bytes.get(id_end + 1) == Some(&b':')).then_some(())?;
        let start = id_end + 2;
        let end = object_end(bytes, start, body_end)?;
        out.push((id, start..end));
        at = end;
    }
    (at == body_end).then_some(out)
}

/// The end (exclusive) of the JSON object starting at `start`, within `..limit`
/// (brackets matched, strings and escapes followed).
fn object_end(bytes: &[u8], start: usize, limit: usize) -> Option<usize> {
    (bytes.get(start) == Some(&b'{')).then_some(())?;
    let (mut open, mut in_string, mut escaped) = (Vec::new(), false, false);
    for (i, &b) in bytes.get(start..limit)?.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => open.push(b'}'),
            b'[' => open.push(b']'),
            b'}' | b']' => {
                (open.pop()? == b).then_some(())?;
                if open.is_empty() {
                    return Some(start + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_schema::security_level::{Level, Reason};

    fn levels(n: u32, reason: &str) -> PluginLevels {
        let release = |minor: u32| ReleaseLevel {
            version: semver::Version::new(1, u64::from(minor), 0),
            published: format!("2026-10-{:02}", 1 + minor % 28),
            signing_keys: 1 + n % 2,
            max_permission_risk: None,
            scan: ScanOutcome::Clean,
            advisory: n.is_multiple_of(3).then_some(AdvisorySeverity::Unrated),
            level: Level::Signed,
            reasons: vec![Reason::DeveloperSigned, Reason::RecentUnverified],
        };
        PluginLevels {
            publisher: PublisherStanding {
                verified: false,
                domain: Some(format!("v{n}.example")),
                reason: Some(reason.to_owned()),
                checked: None,
            },
            releases: (0..1 + n % 4).map(release).collect(),
        }
    }

    fn id(n: u32) -> PluginId {
        format!("v{}.plugin-{n}", n % 7).parse().unwrap()
    }

    /// Reasons with what a scan must step over: quotes, escapes, brackets.
    const TRICKY: [&str; 4] = ["plain", "a \"quoted\" } ] { [ reason", "back\\slash \\\" }", "{\"not\":[\"json\"]}"];

    fn bucket(ns: impl IntoIterator<Item = u32>) -> LevelsBucket {
        LevelsBucket {
            format: LEVELS_FORMAT,
            plugins: ns.into_iter().map(|n| (id(n), levels(n, TRICKY[n as usize % TRICKY.len()]))).collect(),
        }
    }

    #[test]
    fn a_bucket_is_split_into_its_plugins_and_spliced_back_as_the_canonical_bucket() {
        let published = bucket(0..40);
        let bytes = canonical::to_vec_of(&published).unwrap();
        let split = SplitBucket::new(bytes.clone()).unwrap_or_else(|_| panic!("the canonical layout splits"));
        assert_eq!(split.entries.len(), 40);
        for (id, range) in &split.entries {
            let entry: PluginLevels = trellis_schema::json::from_slice(&bytes[range.clone()]).unwrap();
            assert_eq!(&entry, &published.plugins[id]);
        }
        // Nothing changed: the same bytes.
        assert_eq!(split.splice(&BTreeMap::new()).unwrap(), bytes);
        // Changed, inserted before, between and after the published entries.
        let mut changed = BTreeMap::new();
        changed.insert(id(5), levels(99, "changed \"}"));
        changed.insert("a0.first".parse().unwrap(), levels(1, "new first"));
        changed.insert(id(41), levels(41, "new between"));
        changed.insert("zz.last".parse().unwrap(), levels(2, "new last"));
        let mut expected = published.clone();
        expected.plugins.extend(changed.clone());
        assert_eq!(split.splice(&changed).unwrap(), canonical::to_vec_of(&expected).unwrap());
        // Only the plugins asked for are parsed.
        let (five, absent) = (id(5), id(77));
        let parsed = split.parse(&BTreeSet::from([&five, &absent])).unwrap();
        assert_eq!(parsed, vec![(five.clone(), published.plugins[&five].clone())]);
        // An empty bucket.
        let empty = canonical::to_vec_of(&bucket([])).unwrap();
        let split = SplitBucket::new(empty).unwrap_or_else(|_| panic!("empty"));
        let one = BTreeMap::from([(id(3), levels(3, TRICKY[3]))]);
        assert_eq!(split.splice(&one).unwrap(), canonical::to_vec_of(&bucket([3])).unwrap());
    }

    #[test]
    fn a_bucket_in_any_other_layout_is_not_split() {
        let bytes = canonical::to_vec_of(&bucket(0..12)).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let (a, b) = (format!("\"{}\":", id(1)), format!("\"{}\":", id(2)));
        let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("pretty-printed", pretty),
            ("another format", text.replacen("{\"format\":1,", "{\"format\":2,", 1).into_bytes()),
            ("a trailing newline", [bytes.as_slice(), b"\n"].concat()),
            ("out of order", text.replacen(&a, "@", 1).replacen(&b, &a, 1).replacen('@', &b, 1).into_bytes()),
            ("a repeated plugin", text.replacen(&b, &a, 1).into_bytes()),
            ("an id that is not a plugin id", text.replacen(&a, "\"NOT AN ID\":", 1).into_bytes()),
            ("an entry that is not an object", text.replacen(&a, &format!("{a}1,\"zz.z\":"), 1).into_bytes()),
            ("mismatched brackets", text.replacen("\"releases\":[", "\"releases\":{", 1).into_bytes()),
            ("a member after the plugins", text.replacen("}}}", "}},\"x\":1}", 1).into_bytes()),
        ];
        for (what, variant) in variants {
            assert!(SplitBucket::new(variant).is_err(), "{what}");
        }
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(SplitBucket::new(bytes[..cut].to_vec()).is_err(), "cut at {cut}");
        }
    }
}
