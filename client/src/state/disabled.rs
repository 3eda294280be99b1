//! Why an installed plugin is disabled: the record the state file keeps and every
//! listing (`list`, `info`, `verify`, their `--json`) shows.
//!
//! A plugin is disabled, not removed, when the registry's blocklist names its installed
//! release ([`DisabledCause::Blocked`]), when every signature on it is by a developer
//! key its publisher has revoked ([`DisabledCause::Revoked`]), or when the administrator
//! policy no longer allows it ([`DisabledCause::AdminPolicy`], until it does again). The host must not start a
//! disabled plugin; an update or rollback to another release clears the mark.
//!
//! State files written before this record existed kept only a sentence
//! (`"disabled": "blocklisted: steals data"`); they are read as
//! [`DisabledCause::Unrecorded`] with that sentence as the reason, so nothing is lost, and
//! written back in the structured form.
//!
//! A record written by a *newer* client may carry a cause this client does not know (or
//! a known cause with a value it cannot read, such as a new blocklist severity). It is
//! read as [`DisabledCause::Unknown`], kept verbatim and written back as it was: the
//! plugin stays disabled, with the newer client's reason, and the rest of the state
//! file stays readable. Refusing the whole file would lock the user out of every
//! plugin after a downgrade, or with two clients of different ages on one data dir.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use trellis_schema::blocklist::{BlockEntry, Severity};
use trellis_schema::key::KeyId;

/// What disabled a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DisabledCause {
    /// A registry's blocklist names the installed release.
    Blocked {
        /// The blocklist entry's severity.
        severity: Severity,
        /// The advisory the entry links to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        advisory: Option<String>,
    },
    /// Every signature on the installed release is by a key its publisher revoked.
    Revoked {
        /// The revoked keys that signed it.
        keys: Vec<KeyId>,
    },
    /// The administrator policy ([`crate::admin`]) no longer allows the installed plugin
    /// (denied, or its vendor or registry not allowed): cleared again when the policy
    /// allows it.
    AdminPolicy,
    /// Recorded by an older client, which kept only the reason.
    Unrecorded,
    /// Recorded by a newer client with a cause this client cannot read: the record as
    /// it was (its `kind` and fields), written back unchanged. Still disabled.
    #[serde(untagged)]
    Unknown(Map<String, Value>),
}

impl DisabledCause {
    /// The cause's `kind` as the state file names it (`blocked`, `admin_policy`, or a
    /// newer client's).
    pub fn kind(&self) -> &str {
        match self {
            Self::Blocked { .. } => "blocked",
            Self::Revoked { .. } => "revoked",
            Self::AdminPolicy => "admin_policy",
            Self::Unrecorded => "unrecorded",
            Self::Unknown(fields) => fields.get("kind").and_then(Value::as_str).unwrap_or("unknown"),
        }
    }
}

/// A disabled plugin's mark: the cause, the reason shown to users, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disabled {
    /// What disabled it.
    pub cause: DisabledCause,
    /// Why, in the words shown to users (the blocklist's reason, for a block).
    pub reason: String,
    /// When this client disabled it (absent in records of older clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

impl Disabled {
    /// The mark for an installed release that `entry` blocks, set at `now`.
    pub fn blocked(entry: &BlockEntry, now: Timestamp) -> Self {
        Self {
            cause: DisabledCause::Blocked { severity: entry.severity, advisory: entry.advisory.clone() },
            reason: entry.reason.clone(),
            since: Some(now),
        }
    }

    /// The mark for an installed release signed only by the revoked `keys`, set at `now`.
    pub fn revoked(keys: Vec<KeyId>, reason: String, now: Timestamp) -> Self {
        Self { cause: DisabledCause::Revoked { keys }, reason, since: Some(now) }
    }

    /// The mark for an installed plugin the administrator policy refuses, with the
    /// refusal (naming the file and the rule) as the reason, set at `now`.
    pub fn denied(reason: String, now: Timestamp) -> Self {
        Self { cause: DisabledCause::AdminPolicy, reason, since: Some(now) }
    }

    /// The blocklist severity, for a blocked plugin.
    pub fn severity(&self) -> Option<Severity> {
        match &self.cause {
            DisabledCause::Blocked { severity, .. } => Some(*severity),
            _ => None,
        }
    }

    /// `blocked`, `revoked`, `denied` or `disabled`: the one word listings show.
    pub fn label(&self) -> &'static str {
        match self.cause {
            DisabledCause::Blocked { .. } => "blocked",
            DisabledCause::Revoked { .. } => "revoked",
            DisabledCause::AdminPolicy => "denied",
            DisabledCause::Unrecorded | DisabledCause::Unknown(_) => "disabled",
        }
    }
}

impl fmt::Display for Disabled {
    /// `blocked (critical severity): steals data; advisory https://…`,
    /// `revoked: …`, `disabled: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            DisabledCause::Blocked { severity, advisory } => {
                write!(f, "blocked ({} severity): {}", severity_word(*severity), self.reason)?;
                if let Some(advisory) = advisory {
                    write!(f, "; advisory {advisory}")?;
                }
                Ok(())
            }
            DisabledCause::Revoked { keys } => {
                let keys: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
                write!(f, "revoked: {} (signed only by revoked key(s) {})", self.reason, keys.join(", "))
            }
            DisabledCause::AdminPolicy => write!(f, "denied: {}", self.reason),
            DisabledCause::Unrecorded => write!(f, "disabled: {}", self.reason),
            DisabledCause::Unknown(_) => {
                write!(f, "disabled ({}, recorded by a newer client): {}", self.cause.kind(), self.reason)
            }
        }
    }
}

/// The severity as a word (`critical`).
pub fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The record as written, or the plain sentence of an older client.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Record {
        cause: DisabledCause,
        reason: String,
        #[serde(default)]
        since: Option<Timestamp>,
    },
    Sentence(String),
}

impl<'de> Deserialize<'de> for Disabled {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Record { cause, reason, since } => Self { cause, reason, since },
            Stored::Sentence(reason) => Self { cause: DisabledCause::Unrecorded, reason, since: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> BlockEntry {
        BlockEntry {
            id: "acme.clock".parse().unwrap(),
            versions: None,
            sha256: None,
            reason: "steals data".into(),
            severity: Severity::Critical,
            advisory: Some("https://example.org/adv/1".into()),
            added: "2026-11-25".into(),
        }
    }

    #[test]
    fn a_plain_sentence_of_an_older_client_is_read_without_loss() {
        let old: Disabled = serde_json::from_str(r#""blocklisted: steals data""#).unwrap();
        assert_eq!(old.cause, DisabledCause::Unrecorded);
        assert_eq!(old.reason, "blocklisted: steals data");
        assert_eq!(old.to_string(), "disabled: blocklisted: steals data");
        let again: Disabled = serde_json::from_str(&serde_json::to_string(&old).unwrap()).unwrap();
        assert_eq!(again, old);
    }

    #[test]
    fn a_block_round_trips_with_severity_advisory_and_time() {
        let mark = Disabled::blocked(&entry(), Timestamp::from_second(1_800_000_000).unwrap());
        let json = serde_json::to_value(&mark).unwrap();
        assert_eq!(json["cause"]["kind"], "blocked");
        assert_eq!(json["cause"]["severity"], "critical");
        assert_eq!(json["reason"], "steals data");
        assert_eq!(serde_json::from_value::<Disabled>(json).unwrap(), mark);
        assert_eq!(mark.severity(), Some(Severity::Critical));
        assert_eq!(mark.to_string(), "blocked (critical severity): steals data; advisory https://example.org/adv/1");
    }

    #[test]
    fn an_administrator_denial_round_trips_with_its_rule() {
        let mark = Disabled::denied(
            "refused by the administrator policy /etc/trellis/policy.json: acme.clock is in denied_plugins".into(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(mark.label(), "denied");
        assert!(mark.to_string().starts_with("denied: refused by the administrator policy"), "{mark}");
        let json = serde_json::to_value(&mark).unwrap();
        assert_eq!(json["cause"]["kind"], "admin_policy");
        assert_eq!(serde_json::from_value::<Disabled>(json).unwrap(), mark);
    }

    #[test]
    fn a_cause_of_a_newer_client_is_read_as_unknown_still_disabled_and_written_back_as_it_was() {
        let newer = serde_json::json!({
            "cause": {"kind": "quarantined", "scanner": "acme-av", "verdict": {"family": "Trojan.X"}},
            "reason": "quarantined by the host's scanner",
            "since": "2027-03-01T00:00:00Z"
        });
        let mark: Disabled = serde_json::from_value(newer.clone()).unwrap();
        assert!(matches!(mark.cause, DisabledCause::Unknown(_)), "{mark:?}");
        assert_eq!(mark.cause.kind(), "quarantined");
        assert_eq!(mark.label(), "disabled");
        assert_eq!(
            mark.to_string(),
            "disabled (quarantined, recorded by a newer client): quarantined by the host's scanner"
        );
        assert_eq!(serde_json::to_value(&mark).unwrap(), newer, "kept verbatim");

        // A known kind with a value this client cannot read (a new severity) is kept too.
        let severity = serde_json::json!({"cause": {"kind": "blocked", "severity": "catastrophic"}, "reason": "worm"});
        let mark: Disabled = serde_json::from_value(severity.clone()).unwrap();
        assert!(matches!(mark.cause, DisabledCause::Unknown(_)) && mark.severity().is_none(), "{mark:?}");
        assert_eq!(mark.cause.kind(), "blocked");
        assert_eq!(serde_json::to_value(&mark).unwrap(), severity);
    }

    #[test]
    fn a_revocation_names_the_keys() {
        let mark = Disabled::revoked(vec![KeyId("3f2a".into())], "acme revoked its key".into(), Timestamp::UNIX_EPOCH);
        assert_eq!(mark.label(), "revoked");
        assert!(mark.to_string().contains("3f2a"), "{mark}");
        let json = serde_json::to_string(&mark).unwrap();
        assert_eq!(serde_json::from_str::<Disabled>(&json).unwrap(), mark);
    }
}
