//! The signer's own assessment of the security levels a prepared build publishes.
//!
//! Levels feed an administrator's `minimum_security_level`: a build job that could
//! publish `verified` for a release of its choosing would walk that release past the
//! policy of every host that set one. So the signer re-derives each level of every
//! levels bucket it signs from what it can check itself, and refuses a bucket that says
//! anything else:
//! - the releases it lists for a plugin are exactly those of the plugin's index doc (this
//!   build's, else the published one); per release the riskiest permission and the scan
//!   outcome are those the doc states (its permissions, the analysis it carries), and
//!   the open advisory the one the advisories document signed beside it names;
//! - the first publication day is the published bucket's, or for a release new to the
//!   published site a day from that site's build to the signing day: nobody backdates a
//!   release past the days an unverified publisher waits;
//! - the number of developer keys is the published bucket's, or the number of distinct
//!   keys of the publisher's record the signer finds on the release's envelope;
//! - a publisher shown verified names the domain of its record's website, and unless a
//!   published bucket already showed that publisher verified for that domain under the
//!   same record, the signer fetches the domain's proof itself and judges it;
//! - the level and the reasons are what the rule gives from these signals, on the
//!   signing day or (age only raises a level) on the published site's day, for a build
//!   signed some days after it ran.
//!
//! Every release an advisory names must show the advisory in its bucket, whether this
//! build rewrote the bucket or carries the published one.
//!
//! What it cannot re-derive, and so takes from the build as it takes the analysis in an
//! index doc: whether the scanners and the sandbox really ran (it checks that the level
//! follows from what the doc says they found), and which advisories about bundled
//! components match a release's SBOM (packages never reach the signer). A publisher who
//! withdraws a domain proof is noticed by the builder's periodic re-check, not here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use trellis_schema::advisory::Advisories;
use trellis_schema::index::IndexDoc;
use trellis_schema::security_level::{
    self, AdvisorySeverity, LevelsBucket, PluginLevels, PublisherStanding, ScanOutcome, levels_target,
};
use trellis_schema::target::ADVISORIES_TARGET;
use trellis_schema::{PluginId, Sha256, VendorId};

use super::{Checker, refuse};
use crate::build::BuildError;
use crate::domain_proof;
use crate::site;
use crate::tuf::SECURITY_ROLE;

/// Checks every levels bucket the security role `signed` (as it will be signed) lists
/// anew, and the advisories' releases in every bucket, as of `now`.
pub(super) fn check(
    checker: &Checker<'_>,
    signed: &BTreeMap<String, (Sha256, u64)>,
    now: jiff::Timestamp,
) -> Result<(), BuildError> {
    let published: BTreeMap<String, (Sha256, u64)> = match checker.live.role(SECURITY_ROLE)? {
        Some(role) => role
            .signed
            .targets
            .iter()
            .filter_map(|(target, file)| {
                let sha256 = file.hashes.get("sha256")?.parse().ok()?;
                Some((target.clone(), (sha256, file.length)))
            })
            .collect(),
        None => BTreeMap::new(),
    };
    let is_bucket = |target: &str| {
        target
            .strip_prefix("security/levels-")
            .and_then(|rest| rest.strip_suffix(".json"))
            .is_some_and(|n| n.len() == 2)
    };
    let changed: Vec<(&String, &(Sha256, u64))> =
        signed.iter().filter(|(target, entry)| is_bucket(target) && published.get(*target) != Some(*entry)).collect();
    let advisories_changed = published.get(ADVISORIES_TARGET) != signed.get(ADVISORIES_TARGET);
    if changed.is_empty() && !advisories_changed {
        return Ok(());
    }
    let advisories: Advisories = match signed.get(ADVISORIES_TARGET) {
        Some((sha256, length)) => parse(ADVISORIES_TARGET, &checker.document(ADVISORIES_TARGET, sha256, *length)?)?,
        None => Advisories::default(),
    };
    if advisories_changed && advisories.source_sha256 != Some(checker.registry.advisories.digest) {
        return Err(refuse(
            ADVISORIES_TARGET,
            "was not computed from the registry's advisories/ (its source_sha256 is not theirs)",
        ));
    }
    let severities = security_level::open_advisories(&advisories);
    let days = Days::of(checker, now);

    let read = |target: &str, (sha256, length): &(Sha256, u64)| -> Result<LevelsBucket, BuildError> {
        parse(target, &checker.document(target, sha256, *length)?)
    };
    let mut new: BTreeMap<&str, LevelsBucket> = BTreeMap::new();
    let mut before: BTreeMap<&str, LevelsBucket> = BTreeMap::new();
    for (target, entry) in &changed {
        new.insert(target.as_str(), read(target, entry)?);
        if let Some(entry) = published.get(*target) {
            before.insert(target.as_str(), read(target, entry)?);
        }
    }
    // Where each plugin's published index doc is (this build's are in the checker):
    // the docs themselves are read a bucket at a time, so a build that redoes every
    // bucket of a large registry never holds every doc at once.
    let built: BTreeSet<PluginId> = checker.docs.borrow().keys().cloned().collect();
    let published_docs = checker.live.published_docs_of(
        new.values().flat_map(|b| b.plugins.keys()).filter(|id| !built.contains(*id)),
        checker.registry.config.bin_bits,
    )?;

    // Publishers shown verified that no published bucket vouches for: the signer's own
    // proof check, each domain once.
    let mut to_prove: BTreeMap<VendorId, (String, &str)> = BTreeMap::new();
    let mut changed_records: HashMap<VendorId, bool> = HashMap::new();
    for (target, bucket) in &new {
        for (id, levels) in &bucket.plugins {
            let Some(domain) = verified_domain(checker, target, id, &levels.publisher)? else { continue };
            let was_verified = before
                .get(target)
                .and_then(|b| b.plugins.get(id))
                .is_some_and(|b| b.publisher.verified && b.publisher.domain.as_deref() == Some(domain.as_str()));
            let vouched = was_verified
                && !match changed_records.get(&id.vendor_id()) {
                    Some(changed) => *changed,
                    None => {
                        let changed = record_changed(checker, &id.vendor_id())?;
                        changed_records.insert(id.vendor_id(), changed);
                        changed
                    }
                };
            if !vouched {
                to_prove.insert(id.vendor_id(), (domain, target));
            }
        }
    }
    to_prove
        .par_iter()
        .map(|(vendor, (domain, target))| {
            let settings = &checker.registry.config.domain_proofs;
            let record = checker.registry.publishers.get(vendor).and_then(|chain| chain.head());
            record
                .ok_or_else(|| format!("the registry has no record of {vendor}"))
                .and_then(|record| {
                    let bytes = domain_proof::fetch(settings, &settings.proof_url(domain))?;
                    domain_proof::judge(&record.signed, domain, &bytes)
                })
                .map_err(|why| {
                    refuse(
                        *target,
                        format!("shows publisher {vendor} verified, but the signer's proof check failed: {why}"),
                    )
                })
        })
        .collect::<Result<Vec<()>, _>>()?;

    for (target, bucket) in &new {
        let docs = index_docs(checker, &published_docs, bucket.plugins.keys())?;
        for (id, levels) in &bucket.plugins {
            let doc = docs
                .get(id)
                .ok_or_else(|| refuse(*target, format!("lists {id}, which the registry does not index")))?;
            let published = before.get(target).and_then(|b| b.plugins.get(id));
            check_plugin(checker, target, doc, levels, published, &severities, &days)?;
        }
    }

    // Every advisory's releases show it, in a rewritten bucket or a carried one.
    let mut carried: BTreeMap<String, LevelsBucket> = BTreeMap::new();
    for (id, version) in severities.keys() {
        let target = levels_target(id);
        if !new.contains_key(target.as_str()) && !carried.contains_key(&target) {
            let Some(entry) = signed.get(&target) else {
                return Err(refuse(
                    ADVISORIES_TARGET,
                    format!("names {id} {version}, whose levels bucket {target} is not signed"),
                ));
            };
            carried.insert(target.clone(), read(&target, entry)?);
        }
    }
    for ((id, version), severity) in &severities {
        let target = levels_target(id);
        let bucket = new.get(target.as_str()).or_else(|| carried.get(&target)).expect("read above");
        let shown = bucket.release(id, version).map(|(_, release)| release.advisory);
        if shown != Some(Some(*severity)) {
            return Err(refuse(
                &target,
                format!(
                    "does not show the {} advisory on {id} {version} that {ADVISORIES_TARGET} names",
                    severity_name(*severity)
                ),
            ));
        }
    }
    Ok(())
}

/// One plugin's levels in a bucket the build rewrote, against its index doc and the
/// published bucket's entry.
fn check_plugin(
    checker: &Checker<'_>,
    target: &str,
    doc: &IndexDoc,
    levels: &PluginLevels,
    published: Option<&PluginLevels>,
    severities: &HashMap<(&PluginId, &semver::Version), AdvisorySeverity>,
    days: &Days,
) -> Result<(), BuildError> {
    let id = &doc.id;
    let listed: BTreeSet<&semver::Version> = levels.releases.iter().map(|r| &r.version).collect();
    let indexed: BTreeSet<&semver::Version> = doc.releases.iter().map(|r| &r.version).collect();
    if listed != indexed || listed.len() != levels.releases.len() {
        return Err(refuse(target, format!("lists other releases of {id} than its index doc")));
    }
    for level in &levels.releases {
        let name = format!("{id} {}", level.version);
        let wrong = |what: &str| refuse(target, format!("{name}: {what}"));
        let release = doc.release(&level.version).expect("the same versions");
        let before = published.and_then(|p| p.releases.iter().find(|r| r.version == level.version));
        if level.max_permission_risk != security_level::max_permission_risk(&release.permissions) {
            return Err(wrong("its riskiest permission is not the index doc's"));
        }
        if level.scan != ScanOutcome::of(release.analysis.as_ref()) {
            return Err(wrong("its scan outcome is not what the index doc's analysis says"));
        }
        if level.advisory != severities.get(&(id, &level.version)).copied() {
            return Err(wrong(&format!("its open advisory is not what {ADVISORIES_TARGET} says")));
        }
        let first_published = match before {
            Some(before) => level.published == before.published,
            None => level.published.parse().is_ok_and(|day| days.site <= day && day <= days.today),
        };
        if !first_published {
            return Err(wrong(&match before {
                Some(before) => {
                    format!("first published {}, but the published bucket says {}", level.published, before.published)
                }
                None => format!(
                    "first published {}, but it is new since the published site of {} (signed on {})",
                    level.published, days.site, days.today
                ),
            }));
        }
        if before.is_none_or(|b| b.signing_keys != level.signing_keys) {
            let counted = checker.signing_keys.borrow().get(&(id.clone(), level.version.clone())).copied();
            let counted = match counted {
                Some(counted) => counted,
                None => checker.verify_envelope(doc, release)?.keys,
            };
            if counted != level.signing_keys {
                return Err(wrong(&format!(
                    "says {} developer key(s) signed it, the signer counts {counted}",
                    level.signing_keys
                )));
            }
        }
        // Age only raises a level: the bucket may give the level of any day since the
        // published site (a build signed some days later), never a higher one.
        let follows = [days.today, days.site].into_iter().any(|day| {
            let assessment = level.assess(&levels.publisher, day);
            assessment.level == level.level && assessment.reasons == level.reasons
        });
        if !follows {
            let assessment = level.assess(&levels.publisher, days.today);
            return Err(wrong(&format!(
                "says {} ({}), but its signals give {} ({})",
                level.level,
                reasons(&level.reasons),
                assessment.level,
                reasons(&assessment.reasons)
            )));
        }
    }
    Ok(())
}

/// The days a level may be assessed on.
struct Days {
    /// The signing day.
    today: jiff::civil::Date,
    /// The day the published site was built (its snapshot signed): a release new to it
    /// was first published on this day or later.
    site: jiff::civil::Date,
}

impl Days {
    fn of(checker: &Checker<'_>, now: jiff::Timestamp) -> Self {
        let day = |at: jiff::Timestamp| jiff::tz::Offset::UTC.to_datetime(at).date();
        let today = day(now);
        // Unreadable: no earlier bound than today.
        let site = checker
            .live
            .built_no_later_than(checker.registry.config.expiry_days.snapshot)
            .map_or(today, |d| d.min(today));
        Self { today, site }
    }
}

/// The domain of a publisher shown verified, checked against its record's website;
/// `None` when not shown verified.
fn verified_domain(
    checker: &Checker<'_>,
    target: &str,
    id: &PluginId,
    standing: &PublisherStanding,
) -> Result<Option<String>, BuildError> {
    if !standing.verified {
        return Ok(None);
    }
    let vendor = id.vendor_id();
    let record = checker.registry.publishers.get(&vendor).and_then(|chain| chain.head()).ok_or_else(|| {
        refuse(target, format!("shows publisher {vendor} verified, but the registry has no record of it"))
    })?;
    let domain = domain_proof::domain_of(&record.signed)
        .map_err(|why| refuse(target, format!("shows publisher {vendor} verified, but {why}")))?;
    if standing.domain.as_deref() != Some(domain.as_str()) {
        return Err(refuse(
            target,
            format!("shows publisher {vendor} verified for {:?}, but its record's domain is {domain}", standing.domain),
        ));
    }
    Ok(Some(domain))
}

/// Whether the registry's record of `vendor` differs from the one the site published.
fn record_changed(checker: &Checker<'_>, vendor: &VendorId) -> Result<bool, BuildError> {
    let target = site::publisher_target(vendor);
    let role =
        site::bin_for_target(&target, checker.registry.config.publisher_bin_bits, crate::tuf::PUBLISHER_BIN_PREFIX);
    let published = checker
        .live
        .role(&role)?
        .and_then(|r| r.signed.targets.get(&target).and_then(|f| f.hashes.get("sha256").cloned()));
    let current = checker.record_bytes.get(&target).map(|bytes| Sha256::of(bytes).to_hex());
    Ok(published.is_none() || published != current)
}

/// The index doc of each of `ids`: this build's, else the published one whose hash
/// `published` gives (absent from both: not indexed).
fn index_docs<'a>(
    checker: &Checker<'_>,
    published: &BTreeMap<PluginId, Sha256>,
    ids: impl Iterator<Item = &'a PluginId>,
) -> Result<BTreeMap<PluginId, IndexDoc>, BuildError> {
    let built = checker.docs.borrow();
    let mut out: BTreeMap<PluginId, IndexDoc> = BTreeMap::new();
    let mut elsewhere: Vec<(&PluginId, &Sha256)> = Vec::new();
    for id in ids {
        match (built.get(id), published.get(id)) {
            (Some(doc), _) => {
                out.insert(id.clone(), doc.clone());
            }
            (None, Some(sha256)) => elsewhere.push((id, sha256)),
            (None, None) => {}
        }
    }
    let read: Vec<(PluginId, IndexDoc)> = elsewhere
        .into_par_iter()
        .map(|(id, sha256)| {
            let target = site::index_target(id);
            let path = site::target_file(checker.live.dir(), &target, sha256);
            let bytes = checker.live.read_target(&target, sha256)?;
            let doc = trellis_schema::json::from_slice(&bytes)
                .map_err(|e| BuildError::Site { path, reason: e.to_string() })?;
            Ok((id.clone(), doc))
        })
        .collect::<Result<_, BuildError>>()?;
    out.extend(read);
    Ok(out)
}

fn parse<T: serde::de::DeserializeOwned>(target: &str, bytes: &[u8]) -> Result<T, BuildError> {
    trellis_schema::json::from_slice(bytes)
        .map_err(|e| refuse(target, format!("is not a valid document of its kind: {e}")))
}

fn reasons(reasons: &[security_level::Reason]) -> String {
    reasons.iter().map(|r| r.sentence()).collect::<Vec<_>>().join("; ")
}

fn severity_name(severity: AdvisorySeverity) -> &'static str {
    match severity {
        AdvisorySeverity::Unrated => "unrated",
        AdvisorySeverity::Low => "low",
        AdvisorySeverity::Medium => "medium",
        AdvisorySeverity::High => "high",
        AdvisorySeverity::Critical => "critical",
    }
}
