//! Security levels (issue 15 §5): a level per release computed from signals, with the
//! reason each signal gave, so `info`, the catalog and the administrator policy
//! (`minimum_security_level`) show and use the same answer.
//!
//! The builder computes the [`Signals`] of every release (signing keys, the publisher's
//! domain proof, permission risk, the published analysis, advisories, age) and
//! publishes the outcome as [`LevelsBucket`] documents under the `security` role
//! ([`levels_target`]): 256 buckets by plugin id, apart from the index docs, because
//! age and advisories change a level after publication and index docs must stay
//! unchanged between builds. A bucket stores the static signals and the first
//! publication date of each release, so a later build re-derives every level without
//! the packages, and only stable facts go into it (dates, not "N days ago"): a bucket
//! changes only when a level or a signal does.
//!
//! The rule, from most to least demanding (every level needs the ones below):
//! - [`Level::Flagged`]: an open advisory of high or critical severity, or a failed scan
//!   or sandbox run; nothing else matters.
//! - [`Level::Signed`]: signed by the developer (every published release is).
//! - [`Level::Established`]: no open advisory, permissions of at most medium risk, and
//!   at least [`ESTABLISHED_AGE_DAYS`] days published or a verified publisher.
//! - [`Level::Verified`]: a verified publisher (domain proof), signed by a threshold of
//!   at least two keys, a clean scan, and established.
//!
//! A client that cannot read a release's level (no bucket, a bucket without it, a
//! document refused by TUF) treats it as unknown, below every level: missing is never
//! taken for verified.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::advisory::Advisories;
use crate::analysis::ReleaseAnalysis;
use crate::blocklist::Severity;
use crate::id::PluginId;
use crate::permission::{Permission, Risk};

/// Days a release must have been published to count as established without a
/// verified publisher.
pub const ESTABLISHED_AGE_DAYS: u32 = 30;

/// Format of [`LevelsBucket`].
pub const LEVELS_FORMAT: u32 = 1;

/// Target path of the levels bucket holding `id`: `security/levels-<xx>.json`, `xx` the
/// first byte of SHA-256(id) in hex (the same split as index doc shards).
pub fn levels_target(id: &PluginId) -> String {
    format!("security/levels-{:02x}.json", levels_bucket(id))
}

/// The bucket number (0–255) of `id`.
pub fn levels_bucket(id: &PluginId) -> u8 {
    crate::Sha256::of(id.as_str().as_bytes()).as_bytes()[0]
}

/// Target path of bucket `number`.
pub fn bucket_target(number: u8) -> String {
    format!("security/levels-{number:02x}.json")
}

/// A release's security level, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Something is known to be wrong with it.
    Flagged,
    /// Signed by its developer; nothing more is known.
    Signed,
    /// Signed, modest permissions, no open advisory, and either time or a verified
    /// publisher behind it.
    Established,
    /// Established, from a verified publisher, threshold-signed, scanned clean.
    Verified,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [Level::Flagged, Level::Signed, Level::Established, Level::Verified];

    /// The name used in documents and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flagged => "flagged",
            Self::Signed => "signed",
            Self::Established => "established",
            Self::Verified => "verified",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|l| l.as_str() == s).ok_or_else(|| {
            format!("unknown security level `{s}` (expected one of: flagged, signed, established, verified)")
        })
    }
}

/// What a scan or sandbox run concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanOutcome {
    /// Not run.
    NotRun,
    /// Run, nothing found.
    Clean,
    /// Run, warnings only (no malware scanner configured, a sandboxed run that did
    /// not end by itself, ...).
    Warnings,
    /// Run, a finding that blocks (undeclared capability, malware rule, sandbox breach).
    Failed,
}

impl ScanOutcome {
    /// What a release's published analysis concluded: a malware finding fails; no
    /// malware scanner run leaves warnings (static analysis alone is not "scanned
    /// clean").
    pub fn of(analysis: Option<&ReleaseAnalysis>) -> Self {
        match analysis {
            None => Self::NotRun,
            Some(a) if !a.scanners_clean() => Self::Failed,
            Some(a) if a.scanners.is_empty() => Self::Warnings,
            Some(_) => Self::Clean,
        }
    }
}

/// The riskiest of `permissions` (`None`: none asked); a scope this build does not
/// know counts as high.
pub fn max_permission_risk(permissions: &[Permission]) -> Option<Risk> {
    permissions.iter().map(|p| p.info().map_or(Risk::High, |i| i.risk)).max()
}

/// The most severe open advisory of each (plugin, release) `advisories` names.
pub fn open_advisories(advisories: &Advisories) -> HashMap<(&PluginId, &semver::Version), AdvisorySeverity> {
    let mut out: HashMap<(&PluginId, &semver::Version), AdvisorySeverity> = HashMap::new();
    for advisory in &advisories.advisories {
        let severity = AdvisorySeverity::of(advisory.severity);
        for affected in &advisory.affected {
            for version in &affected.releases {
                let slot = out.entry((&affected.plugin, version)).or_insert(severity);
                *slot = (*slot).max(severity);
            }
        }
    }
    out
}

/// Whole days from `published` (`YYYY-MM-DD`) to `today`; an unreadable or future
/// date counts as published today (the lowest age).
pub fn age_days(published: &str, today: jiff::civil::Date) -> u32 {
    published
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|published| published.until(today).ok())
        .map_or(0, |span| u32::try_from(span.get_days().max(0)).unwrap_or(u32::MAX))
}

/// The inputs of [`level`], all known at build time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signals {
    /// Distinct keys that signed the release manifest.
    pub signing_keys: u32,
    /// The publisher proved its domain (`/.well-known/trellis-publisher.json`).
    pub verified_publisher: bool,
    /// The highest risk among the release's permissions (`None`: none asked).
    pub max_permission_risk: Option<Risk>,
    /// Static analysis and sandbox outcome.
    pub scan: ScanOutcome,
    /// The most severe open advisory naming the release (`Some(None)`: unrated).
    pub open_advisory: Option<Option<Severity>>,
    /// Days since the release was first published.
    pub age_days: u32,
}

/// Why a release has its level: one per signal that held it back or raised it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An open advisory of high or critical severity names it.
    SevereAdvisory,
    /// The scan or sandbox run found something that blocks.
    ScanFailed,
    /// Signed by its developer.
    DeveloperSigned,
    /// An open advisory names it.
    OpenAdvisory,
    /// It asks for high-risk permissions.
    HighRiskPermissions,
    /// Published less than [`ESTABLISHED_AGE_DAYS`] days ago by an unverified publisher.
    RecentUnverified,
    /// The publisher proved its domain.
    VerifiedPublisher,
    /// The publisher has not proved its domain.
    UnverifiedPublisher,
    /// Signed by one key, not a threshold of two or more.
    SingleKey,
    /// Not scanned clean.
    NotScannedClean,
}

impl Reason {
    /// The sentence to show.
    pub fn sentence(self) -> &'static str {
        match self {
            Self::SevereAdvisory => "an open security advisory of high or critical severity names this release",
            Self::ScanFailed => "the scan or sandbox run found something that blocks",
            Self::DeveloperSigned => "signed by its developer",
            Self::OpenAdvisory => "an open security advisory names this release",
            Self::HighRiskPermissions => "asks for high-risk permissions",
            Self::RecentUnverified => {
                "published less than 30 days ago by an unverified publisher (established after 30 days)"
            }
            Self::VerifiedPublisher => "the publisher proved its domain",
            Self::UnverifiedPublisher => "the publisher has not proved its domain",
            Self::SingleKey => "signed by one key, not a threshold of two or more",
            Self::NotScannedClean => "not scanned clean by a malware scanner",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sentence())
    }
}

/// A level and the reason for each signal that held it back or raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The level.
    pub level: Level,
    /// One per signal, in the order of the rule.
    pub reasons: Vec<Reason>,
}

/// The level of a release with these signals, and why.
pub fn level(signals: &Signals) -> Assessment {
    let mut reasons = Vec::new();
    let severe = matches!(signals.open_advisory, Some(Some(Severity::High | Severity::Critical)));
    if severe {
        reasons.push(Reason::SevereAdvisory);
    }
    if signals.scan == ScanOutcome::Failed {
        reasons.push(Reason::ScanFailed);
    }
    if !reasons.is_empty() {
        return Assessment { level: Level::Flagged, reasons };
    }
    reasons.push(Reason::DeveloperSigned);
    let mut established = true;
    if signals.open_advisory.is_some() {
        established = false;
        reasons.push(Reason::OpenAdvisory);
    }
    if signals.max_permission_risk == Some(Risk::High) {
        established = false;
        reasons.push(Reason::HighRiskPermissions);
    }
    if !signals.verified_publisher && signals.age_days < ESTABLISHED_AGE_DAYS {
        established = false;
        reasons.push(Reason::RecentUnverified);
    }
    if !established {
        return Assessment { level: Level::Signed, reasons };
    }
    let mut verified = true;
    if signals.verified_publisher {
        reasons.push(Reason::VerifiedPublisher);
    } else {
        verified = false;
        reasons.push(Reason::UnverifiedPublisher);
    }
    if signals.signing_keys < 2 {
        verified = false;
        reasons.push(Reason::SingleKey);
    }
    if signals.scan != ScanOutcome::Clean {
        verified = false;
        reasons.push(Reason::NotScannedClean);
    }
    Assessment { level: if verified { Level::Verified } else { Level::Established }, reasons }
}

/// One bucket of published levels (`security/levels-<xx>.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelsBucket {
    /// [`LEVELS_FORMAT`].
    pub format: u32,
    /// The plugins of the bucket, by id.
    pub plugins: BTreeMap<PluginId, PluginLevels>,
}

/// The levels of one plugin's releases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLevels {
    /// What the publisher's domain proof showed.
    pub publisher: PublisherStanding,
    /// Every release the index doc lists, oldest first.
    pub releases: Vec<ReleaseLevel>,
}

/// The outcome of a publisher's domain proof, as of its last check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherStanding {
    /// Whether the domain vouches for the publisher and every key of its record.
    pub verified: bool,
    /// The domain checked (the host of the record's `website`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Why it is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the proof was last checked (RFC 3339), absent when never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
}

/// One release's signals and level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLevel {
    /// The release.
    pub version: semver::Version,
    /// The day it was first published (`YYYY-MM-DD`).
    pub published: String,
    /// Distinct developer keys that signed its manifest.
    pub signing_keys: u32,
    /// The riskiest permission it asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_permission_risk: Option<Risk>,
    /// The published analysis' outcome.
    pub scan: ScanOutcome,
    /// The most severe open advisory naming it (`unrated` when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<AdvisorySeverity>,
    /// The level.
    pub level: Level,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// The severity of an open advisory in a levels bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvisorySeverity {
    /// No severity stated.
    Unrated,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl AdvisorySeverity {
    /// From an advisory's optional severity.
    pub fn of(severity: Option<Severity>) -> Self {
        match severity {
            None => Self::Unrated,
            Some(Severity::Low) => Self::Low,
            Some(Severity::Medium) => Self::Medium,
            Some(Severity::High) => Self::High,
            Some(Severity::Critical) => Self::Critical,
        }
    }

    /// Back to an advisory's optional severity.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Self::Unrated => None,
            Self::Low => Some(Severity::Low),
            Self::Medium => Some(Severity::Medium),
            Self::High => Some(Severity::High),
            Self::Critical => Some(Severity::Critical),
        }
    }
}

/// Target path of the levels head ([`LevelsHead`]).
pub const LEVELS_HEAD_TARGET: &str = "security/levels.json";

/// The builder's record beside the buckets (clients ignore it): when the published
/// levels can next change on their own, so an incremental build rewrites only the
/// buckets of the plugins it changes until then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelsHead {
    /// [`LEVELS_FORMAT`].
    pub format: u32,
    /// The first day a published release becomes [`ESTABLISHED_AGE_DAYS`] old
    /// (`YYYY-MM-DD`); absent when none is younger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_review: Option<String>,
    /// SHA-256 of the canonical JSON of every publisher's standing the levels used.
    pub publishers_sha256: crate::Sha256,
}

impl ReleaseLevel {
    /// The level its stored signals give under `publisher`'s standing on `today`.
    pub fn assess(&self, publisher: &PublisherStanding, today: jiff::civil::Date) -> Assessment {
        level(&Signals {
            signing_keys: self.signing_keys,
            verified_publisher: publisher.verified,
            max_permission_risk: self.max_permission_risk,
            scan: self.scan,
            open_advisory: self.advisory.map(AdvisorySeverity::severity),
            age_days: age_days(&self.published, today),
        })
    }
}

impl LevelsBucket {
    /// The level of release `version` of `plugin`, with its publisher's standing.
    pub fn release(&self, plugin: &PluginId, version: &semver::Version) -> Option<(&PublisherStanding, &ReleaseLevel)> {
        let levels = self.plugins.get(plugin)?;
        let release = levels.releases.iter().find(|r| &r.version == version)?;
        Some((&levels.publisher, release))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best() -> Signals {
        Signals {
            signing_keys: 2,
            verified_publisher: true,
            max_permission_risk: Some(Risk::Medium),
            scan: ScanOutcome::Clean,
            open_advisory: None,
            age_days: 0,
        }
    }

    #[test]
    fn each_signal_moves_the_level_and_says_why() {
        assert_eq!(level(&best()).level, Level::Verified);
        let flagged = level(&Signals { open_advisory: Some(Some(Severity::Critical)), ..best() });
        assert_eq!(flagged.level, Level::Flagged);
        assert_eq!(flagged.reasons, [Reason::SevereAdvisory]);
        assert_eq!(level(&Signals { scan: ScanOutcome::Failed, ..best() }).level, Level::Flagged);
        assert_eq!(level(&Signals { open_advisory: Some(Some(Severity::Low)), ..best() }).level, Level::Signed);
        assert_eq!(level(&Signals { max_permission_risk: Some(Risk::High), ..best() }).level, Level::Signed);
        let young = level(&Signals { verified_publisher: false, ..best() });
        assert_eq!(young.level, Level::Signed);
        assert!(young.reasons.contains(&Reason::RecentUnverified), "{young:?}");
        let old = level(&Signals { verified_publisher: false, age_days: ESTABLISHED_AGE_DAYS, ..best() });
        assert_eq!(old.level, Level::Established);
        assert_eq!(level(&Signals { signing_keys: 1, ..best() }).level, Level::Established);
        assert_eq!(level(&Signals { scan: ScanOutcome::NotRun, ..best() }).level, Level::Established);
        assert!(Level::Flagged < Level::Signed && Level::Established < Level::Verified);
    }

    #[test]
    fn the_analysis_decides_the_scan_outcome() {
        use crate::analysis::{ScannerVerdict, Verdict};
        let verdict = |verdict| ScannerVerdict { scanner: "clamav".into(), version: None, verdict, findings: vec![] };
        assert_eq!(ScanOutcome::of(None), ScanOutcome::NotRun);
        assert_eq!(ScanOutcome::of(Some(&ReleaseAnalysis::default())), ScanOutcome::Warnings);
        let clean = ReleaseAnalysis { scanners: vec![verdict(Verdict::Clean)], ..ReleaseAnalysis::default() };
        assert_eq!(ScanOutcome::of(Some(&clean)), ScanOutcome::Clean);
        let found = ReleaseAnalysis { scanners: vec![verdict(Verdict::Found)], ..ReleaseAnalysis::default() };
        assert_eq!(ScanOutcome::of(Some(&found)), ScanOutcome::Failed);
    }

    #[test]
    fn age_counts_whole_days_and_never_goes_negative() {
        let today: jiff::civil::Date = "2026-12-02".parse().unwrap();
        assert_eq!(age_days("2026-11-02", today), 30);
        assert_eq!(age_days("2026-12-02", today), 0);
        assert_eq!(age_days("2027-01-01", today), 0);
        assert_eq!(age_days("yesterday", today), 0);
    }

    #[test]
    fn names_parse_and_buckets_split_by_id() {
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
        }
        assert!("trusted".parse::<Level>().unwrap_err().contains("flagged, signed, established, verified"));
        let id: PluginId = "acme.clock".parse().unwrap();
        let first = crate::Sha256::of(b"acme.clock").as_bytes()[0];
        assert_eq!(levels_target(&id), format!("security/levels-{first:02x}.json"));
        assert_eq!(bucket_target(first), levels_target(&id));
    }

    #[test]
    fn buckets_are_strict() {
        let ok = r#"{"format":1,"plugins":{"acme.clock":{"publisher":{"verified":false},"releases":[
            {"version":"1.0.0","published":"2026-11-01","signing_keys":1,"scan":"not_run","level":"signed","reasons":["developer_signed"]}]}}}"#;
        let bucket: LevelsBucket = crate::json::from_slice(ok.as_bytes()).unwrap();
        let (_, release) = bucket.release(&"acme.clock".parse().unwrap(), &"1.0.0".parse().unwrap()).unwrap();
        assert_eq!(release.level, Level::Signed);
        let unknown_level = ok.replace(r#""level":"signed""#, r#""level":"trusted""#);
        assert!(crate::json::from_slice::<LevelsBucket>(unknown_level.as_bytes()).is_err());
        let extra = ok.replace(r#""format":1"#, r#""format":1,"note":"x""#);
        assert!(crate::json::from_slice::<LevelsBucket>(extra.as_bytes()).is_err());
    }
}
