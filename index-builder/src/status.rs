//! Expiry you cannot miss: every role of a site, when it expires, who re-signs it and
//! by when.
//!
//! Owns reading the expiry and version of each role of a built or deployed site (a
//! directory or an `http(s)://` URL, through [`crate::verify::Source`]) and deciding
//! what must happen before it expires: the offline roles (root, top-level targets)
//! need their key holders, the online ones need CI to keep running. Hash bins and
//! publisher bins are reported as one group each (their earliest expiry). It checks no
//! signature: that is [`crate::verify`]'s job; `build` and `verify` print the
//! [`Status::warnings`] of the site they just wrote or checked.
//!
//! When each role is due:
//!
//! | role | re-signed by | due |
//! |---|---|---|
//! | root | the root key holders, offline (`rotate REGISTRY root`) | when the snapshot a build signs would outlive it (`expires − snapshot lifetime`): `build` refuses from then on |
//! | targets | the targets key holder, offline (a full build with the key present) | when it expires: builds keep it unchanged until then |
//! | snapshot, timestamp, delegations, bins | CI (publish, timestamp workflows) | when it expires; CI re-signs at half-life |
//!
//! A warning is due [`WARN_DAYS`] days ahead for offline roles, and for an online role
//! when less than half its lifetime is left (capped at [`WARN_DAYS`]): CI should have
//! re-signed it by then, so something stopped it.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::registry::Expiry;
use crate::site;
use crate::verify::Source;

/// How many days ahead an offline role's expiry is warned about.
pub const WARN_DAYS: i64 = 30;

/// Who re-signs a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signer {
    /// Keys kept offline: people must act.
    Offline,
    /// Keys held by CI: the workflows re-sign it.
    Online,
}

/// One role (or a group of bins) of a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleStatus {
    /// Role name; `bin-*` and `pub-*` for the groups of bins.
    pub role: String,
    /// Number of documents (1, or the number of bins in a group).
    pub count: usize,
    /// Version (of the earliest-expiring document of a group).
    pub version: u64,
    /// When it expires (RFC 3339).
    pub expires: String,
    /// When it must have been re-signed (RFC 3339).
    pub due: String,
    /// Whole days from now until `due` (negative: overdue).
    pub days_left: i64,
    /// Who re-signs it.
    pub signer: Signer,
    /// What to do, in words, with the command.
    pub action: String,
    /// Whether it needs attention now.
    pub warning: bool,
}

/// Every role of a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The time the status was computed for (RFC 3339).
    pub now: String,
    /// Roles, root first, in the order a client reads them.
    pub roles: Vec<RoleStatus>,
}

impl Status {
    /// One line per role that needs attention now.
    pub fn warnings(&self) -> Vec<String> {
        self.roles
            .iter()
            .filter(|r| r.warning)
            .map(|r| {
                let when = if r.days_left < 0 {
                    format!("was due {} ({} day(s) ago)", r.due, -r.days_left)
                } else {
                    format!("is due by {} (in {} day(s))", r.due, r.days_left)
                };
                format!("{} v{} expires {}; re-signing {when}: {}", r.role, r.version, r.expires, r.action)
            })
            .collect()
    }
}

/// Why a site's status cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A metadata file could not be fetched.
    #[error("{path}: {reason}")]
    Fetch {
        /// The file, relative to the site root.
        path: String,
        /// Why.
        reason: String,
    },
    /// A metadata file is missing.
    #[error("{path}: missing; is this a built site (metadata/timestamp.json)?")]
    Missing {
        /// The file, relative to the site root.
        path: String,
    },
    /// A metadata file does not say what it must.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file, relative to the site root.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The status of the site at `source` at `now`, with the lifetimes of `expiry` (the
/// registry's `expiry_days`, or the defaults when only the site is known).
pub fn site_status(source: &Source, expiry: &Expiry, now: jiff::Timestamp) -> Result<Status, StatusError> {
    let timestamp = read(source, &format!("{}/timestamp.json", site::METADATA_DIR))?;
    let snapshot_version = timestamp
        .meta
        .get("snapshot.json")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("metadata/timestamp.json", "names no snapshot.json version"))?;
    let mut roots = Vec::new();
    for version in 1u64.. {
        let path = format!("{}/{}", site::METADATA_DIR, site::metadata_name("root", version));
        match fetch(source, &path)? {
            Some(bytes) => roots.push(parse(&path, &bytes)?),
            None => break,
        }
    }
    let root = roots.pop().ok_or_else(|| StatusError::Missing { path: "metadata/1.root.json".into() })?;
    let snapshot_path = format!("{}/{}", site::METADATA_DIR, site::metadata_name("snapshot", snapshot_version));
    let snapshot = read(source, &snapshot_path)?;

    let mut out = vec![root_status(&root, expiry, now)];
    let mut groups: BTreeMap<&str, (usize, Doc)> = BTreeMap::new();
    let mut singles = Vec::new();
    let mut listed = Vec::with_capacity(snapshot.meta.len());
    for (file, meta) in &snapshot.meta {
        let Some(name) = file.strip_suffix(".json") else { continue };
        let version = meta
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(&snapshot_path, &format!("meta {file} has no version")))?;
        listed.push((name, format!("{}/{}", site::METADATA_DIR, site::metadata_name(name, version))));
    }
    // Thousands of bins over HTTP: fetched in parallel.
    let docs: Vec<(&str, Doc)> =
        listed.into_par_iter().map(|(name, path)| Ok((name, read(source, &path)?))).collect::<Result<_, _>>()?;
    for (name, doc) in docs {
        let group = if name.starts_with("bin-") {
            Some("bin-*")
        } else if name.starts_with("pub-") {
            Some("pub-*")
        } else {
            None
        };
        match group {
            Some(group) => {
                let entry = groups.entry(group).or_insert((0, doc.clone()));
                entry.0 += 1;
                if doc.expires < entry.1.expires {
                    entry.1 = doc;
                }
            }
            None => singles.push((name.to_owned(), doc)),
        }
    }
    // targets first, then the delegations in the order they are read.
    singles.sort_by_key(|(name, _)| (name != "targets", name.clone()));
    for (name, doc) in singles {
        out.push(role_status(&name, 1, &doc, expiry, now));
    }
    out.push(role_status("snapshot", 1, &snapshot, expiry, now));
    out.push(role_status("timestamp", 1, &timestamp, expiry, now));
    for (group, (count, doc)) in groups {
        out.push(role_status(group, count, &doc, expiry, now));
    }
    Ok(Status { now: format_time(now), roles: out })
}

/// The version, expiry and (for timestamp and snapshot) `meta` of a signed document.
#[derive(Clone, Debug)]
struct Doc {
    version: u64,
    expires: jiff::Timestamp,
    expires_text: String,
    meta: serde_json::Map<String, Value>,
}

fn malformed(path: &str, reason: &str) -> StatusError {
    StatusError::Malformed { path: path.to_owned(), reason: reason.to_owned() }
}

fn fetch(source: &Source, path: &str) -> Result<Option<Vec<u8>>, StatusError> {
    source.fetch(path).map_err(|reason| StatusError::Fetch { path: path.to_owned(), reason })
}

fn read(source: &Source, path: &str) -> Result<Doc, StatusError> {
    let bytes = fetch(source, path)?.ok_or_else(|| StatusError::Missing { path: path.to_owned() })?;
    parse(path, &bytes)
}

fn parse(path: &str, bytes: &[u8]) -> Result<Doc, StatusError> {
    let value: Value = trellis_schema::json::from_slice(bytes).map_err(|e| malformed(path, &e.to_string()))?;
    let signed = value.get("signed").ok_or_else(|| malformed(path, "no \"signed\" member"))?;
    let version = signed.get("version").and_then(Value::as_u64).ok_or_else(|| malformed(path, "no version"))?;
    let expires_text =
        signed.get("expires").and_then(Value::as_str).ok_or_else(|| malformed(path, "no expires"))?.to_owned();
    let expires = expires_text
        .parse::<jiff::Timestamp>()
        .map_err(|e| malformed(path, &format!("expires {expires_text:?}: {e}")))?;
    let meta = signed.get("meta").and_then(Value::as_object).cloned().unwrap_or_default();
    Ok(Doc { version, expires, expires_text, meta })
}

fn format_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn days_between(from: jiff::Timestamp, to: jiff::Timestamp) -> i64 {
    (to.as_second() - from.as_second()).div_euclid(86_400)
}

fn minus_days(at: jiff::Timestamp, days: u32) -> jiff::Timestamp {
    jiff::Timestamp::from_second(at.as_second().saturating_sub(i64::from(days) * 86_400))
        .unwrap_or(jiff::Timestamp::MIN)
}

fn root_status(root: &Doc, expiry: &Expiry, now: jiff::Timestamp) -> RoleStatus {
    let due = minus_days(root.expires, expiry.snapshot);
    let days_left = days_between(now, due);
    RoleStatus {
        role: "root".into(),
        count: 1,
        version: root.version,
        expires: root.expires_text.clone(),
        due: format_time(due),
        days_left,
        signer: Signer::Offline,
        action: format!(
            "the root key holders sign root v{} (on the offline machine: trellis-index rotate REGISTRY root, commit root/ and the config), then build; \
             builds refuse from the due date on (a snapshot must not outlive the root)",
            root.version + 1
        ),
        warning: days_left < WARN_DAYS,
    }
}

fn role_status(name: &str, count: usize, doc: &Doc, expiry: &Expiry, now: jiff::Timestamp) -> RoleStatus {
    let (signer, lifetime, action) = match name {
        "targets" => (
            Signer::Offline,
            expiry.targets,
            "a full build with the offline targets key present (scripts/publish-offline.sh on the operator's machine)"
                .to_owned(),
        ),
        "timestamp" => (
            Signer::Online,
            expiry.timestamp,
            "the scheduled timestamp workflow re-signs it (scripts/timestamp.sh); check it runs".to_owned(),
        ),
        "snapshot" => (
            Signer::Online,
            expiry.snapshot,
            "every build re-signs it at half-life (publish workflow, weekly full build); check it runs".to_owned(),
        ),
        _ => (
            Signer::Online,
            expiry.delegations,
            "a full build re-signs it at half-life (the publish workflow's weekly run); check it runs".to_owned(),
        ),
    };
    let days_left = days_between(now, doc.expires);
    let window = match signer {
        Signer::Offline => WARN_DAYS,
        Signer::Online => (i64::from(lifetime) / 2).min(WARN_DAYS),
    };
    RoleStatus {
        role: name.to_owned(),
        count,
        version: doc.version,
        expires: doc.expires_text.clone(),
        due: doc.expires_text.clone(),
        days_left,
        signer,
        action,
        warning: days_left < window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(expires: &str) -> Doc {
        Doc { version: 3, expires: expires.parse().unwrap(), expires_text: expires.into(), meta: Default::default() }
    }

    fn now() -> jiff::Timestamp {
        "2027-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn offline_targets_warns_thirty_days_ahead_and_online_roles_past_half_life() {
        let expiry = Expiry::default();
        let targets = role_status("targets", 1, &doc("2027-01-31T00:00:00Z"), &expiry, now());
        assert_eq!((targets.days_left, targets.warning, targets.signer), (30, false, Signer::Offline));
        let targets = role_status("targets", 1, &doc("2027-01-30T23:00:00Z"), &expiry, now());
        assert_eq!((targets.days_left, targets.warning), (29, true));
        // Timestamp lives 2 days: a warning once less than one day is left.
        let timestamp = role_status("timestamp", 1, &doc("2027-01-02T12:00:00Z"), &expiry, now());
        assert!(!timestamp.warning);
        let timestamp = role_status("timestamp", 1, &doc("2027-01-01T12:00:00Z"), &expiry, now());
        assert!(timestamp.warning, "{timestamp:?}");
        assert!(timestamp.action.contains("timestamp workflow"));
    }

    #[test]
    fn root_is_due_a_snapshot_lifetime_before_it_expires() {
        let root = root_status(&doc("2027-03-02T00:00:00Z"), &Expiry::default(), now());
        assert_eq!(root.due, "2027-01-31T00:00:00Z");
        assert_eq!((root.days_left, root.warning), (30, false));
        let root = root_status(&doc("2027-01-15T00:00:00Z"), &Expiry::default(), now());
        assert!(root.days_left < 0 && root.warning);
        let status = Status { now: format_time(now()), roles: vec![root] };
        let warnings = status.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("was due 2026-12-16T00:00:00Z") && warnings[0].contains("rotate"), "{warnings:?}");
    }
}
