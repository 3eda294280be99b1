//! Security levels (issue 15 §5, the pure core only): a level per release computed
//! from signals, with the reason each signal gave, so `info`, the index doc, the
//! catalog and the administrator policy (`minimum_security_level`) can show and use
//! the same answer.
//!
//! Not wired in yet: the builder does not compute [`Signals`] (the verified-publisher
//! domain proof and the scan branch's `analysis` summary are its missing inputs), and no
//! document carries a level. See the note of issue 15 for where it should be published
//! (a per-release value that changes with age and advisories does not belong in index
//! docs, which must stay unchanged between builds).
//!
//! The rule, from most to least demanding (every level needs the ones below):
//! - [`Level::Flagged`]: an open advisory of high or critical severity, or a failed scan
//!   or sandbox run; nothing else matters.
//! - [`Level::Signed`]: signed by the developer (every published release is).
//! - [`Level::Established`]: no open advisory, permissions of at most medium risk, and
//!   at least [`ESTABLISHED_AGE_DAYS`] days published or a verified publisher.
//! - [`Level::Verified`]: a verified publisher (domain proof), signed by a threshold of
//!   at least two keys, a clean scan, and established.

use serde::{Deserialize, Serialize};

use crate::blocklist::Severity;
use crate::permission::Risk;

/// Days a release must have been published to count as established without a
/// verified publisher.
pub const ESTABLISHED_AGE_DAYS: u32 = 30;

/// A release's security level, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

/// What a scan or sandbox run concluded (the scan branch's `analysis` summary maps
/// onto this).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanOutcome {
    /// Not run.
    NotRun,
    /// Run, nothing found.
    Clean,
    /// Run, warnings only (declared capabilities never used, ...).
    Warnings,
    /// Run, a finding that blocks (undeclared capability, malware rule, sandbox breach).
    Failed,
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

/// A level and the reason for each signal that held it back or raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The level.
    pub level: Level,
    /// One sentence per signal, in the order of the rule.
    pub reasons: Vec<String>,
}

/// The level of a release with these signals, and why.
pub fn level(signals: &Signals) -> Assessment {
    let mut reasons = Vec::new();
    let severe = matches!(signals.open_advisory, Some(Some(Severity::High | Severity::Critical)));
    if severe {
        reasons.push("an open security advisory of high or critical severity names this release".to_owned());
    }
    if signals.scan == ScanOutcome::Failed {
        reasons.push("the scan or sandbox run found something that blocks".to_owned());
    }
    if !reasons.is_empty() {
        return Assessment { level: Level::Flagged, reasons };
    }
    reasons.push(format!("signed by its developer ({} key(s))", signals.signing_keys));
    let mut established = true;
    if signals.open_advisory.is_some() {
        established = false;
        reasons.push("an open security advisory names this release".to_owned());
    }
    if signals.max_permission_risk == Some(Risk::High) {
        established = false;
        reasons.push("asks for high-risk permissions".to_owned());
    }
    if !signals.verified_publisher && signals.age_days < ESTABLISHED_AGE_DAYS {
        established = false;
        reasons.push(format!(
            "published {} day(s) ago by an unverified publisher (established after {ESTABLISHED_AGE_DAYS})",
            signals.age_days
        ));
    }
    if !established {
        return Assessment { level: Level::Signed, reasons };
    }
    let mut verified = true;
    if signals.verified_publisher {
        reasons.push("the publisher proved its domain".to_owned());
    } else {
        verified = false;
        reasons.push("the publisher has not proved its domain".to_owned());
    }
    if signals.signing_keys < 2 {
        verified = false;
        reasons.push("signed by one key, not a threshold of two or more".to_owned());
    }
    if signals.scan != ScanOutcome::Clean {
        verified = false;
        reasons.push("not scanned clean".to_owned());
    }
    Assessment { level: if verified { Level::Verified } else { Level::Established }, reasons }
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
        assert!(flagged.reasons[0].contains("high or critical"), "{flagged:?}");
        assert_eq!(level(&Signals { scan: ScanOutcome::Failed, ..best() }).level, Level::Flagged);
        assert_eq!(level(&Signals { open_advisory: Some(Some(Severity::Low)), ..best() }).level, Level::Signed);
        assert_eq!(level(&Signals { max_permission_risk: Some(Risk::High), ..best() }).level, Level::Signed);
        let young = level(&Signals { verified_publisher: false, ..best() });
        assert_eq!(young.level, Level::Signed);
        assert!(young.reasons.iter().any(|r| r.contains("unverified publisher")), "{young:?}");
        let old = level(&Signals { verified_publisher: false, age_days: ESTABLISHED_AGE_DAYS, ..best() });
        assert_eq!(old.level, Level::Established);
        assert_eq!(level(&Signals { signing_keys: 1, ..best() }).level, Level::Established);
        assert_eq!(level(&Signals { scan: ScanOutcome::NotRun, ..best() }).level, Level::Established);
        assert!(Level::Flagged < Level::Signed && Level::Established < Level::Verified);
    }
}
