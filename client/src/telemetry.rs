//! Opt-in telemetry: install, update and remove outcomes as events for the host app.
//!
//! Off by default ([`Telemetry::Off`] in [`crate::store::StoreOptions`]). When the host
//! turns it on, the store hands one [`TelemetryEvent`] per outcome to
//! [`crate::hooks::HostHooks::telemetry`] (whose default does nothing): a plugin
//! installed, updated, rolled back, removed, or an operation that failed, with its
//! [`FailureClass`] and, for a removal, the reason the user gave. The library never
//! sends anything anywhere: the host decides what leaves the machine (the product
//! spec's install/update success rates and uninstall reasons come from what hosts
//! choose to send). [`JsonLinesSink`] appends events to a local file, one JSON object
//! per line, for hosts that collect them later (or never).
//!
//! # Event schema (version 1)
//!
//! ```json
//! {"schema_version":1,"time":"2026-12-01T18:00:00Z","client_version":"0.1.0",
//!  "operation":"install","outcome":"success","plugin":"acme.clock","version":"1.0.0"}
//! {"schema_version":1,"time":"…","client_version":"0.1.0","operation":"update",
//!  "outcome":"failure","plugin":"acme.clock","failure_class":"network"}
//! {"schema_version":1,"time":"…","client_version":"0.1.0","operation":"remove",
//!  "outcome":"success","plugin":"acme.clock","version":"1.0.0","uninstall_reason":"not useful"}
//! ```
//!
//! - `operation`: `install`, `update`, `remove`, `rollback`;
//! - `outcome`: `success`, `failure`, or `rolled_back` (an update undone because the
//!   new release did not start);
//! - `plugin`, `version`, `from_version` (updates): when known; a failed operation
//!   names the plugin it was asked for (one event per plugin asked for), or none;
//! - `failure_class` (failures only): see [`FailureClass`];
//! - `uninstall_reason`: what the host passed to [`crate::store::Store::remove_with_reason`]
//!   (at most 280 characters).
//!
//! No URL, path, host name, error text or install id is in an event: nothing that
//! identifies the machine or the user beyond what the host adds itself.

use std::io::Write as _;
use std::path::PathBuf;

use semver::Version;
use serde::{Deserialize, Serialize};
use trellis_schema::PluginId;

use crate::store::StoreError;

/// Whether the store emits telemetry events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Telemetry {
    /// No events (the default).
    #[default]
    Off,
    /// Events go to [`crate::hooks::HostHooks::telemetry`].
    On,
}

/// The version of the event schema.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest uninstall reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 280;

/// Which lifecycle operation an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// An install (also a dependency brought in by an update).
    Install,
    /// An update.
    Update,
    /// A removal.
    Remove,
    /// A rollback to the kept release.
    Rollback,
}

/// How an operation ended for a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Failed; nothing changed for the plugin.
    Failure,
    /// An update was applied, failed to start and was undone.
    RolledBack,
}

/// Why an operation failed, coarsely (no message text: that can hold paths and URLs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A registry or mirror could not be reached, or a download failed.
    Network,
    /// Signed metadata, a signature, a hash or a publisher record did not verify.
    Verification,
    /// No set of releases satisfies the request.
    Resolution,
    /// The user did not agree to the permissions.
    ConsentRefused,
    /// Not enough free disk space.
    DiskSpace,
    /// The release is blocklisted (or signed only by revoked keys).
    Blocked,
    /// A host app hook failed.
    Hook,
    /// The installed files or the package are damaged.
    Corrupt,
    /// A local file, the state or the configuration could not be read or written.
    Local,
    /// The request itself was wrong (unknown plugin or registry, dependents remain).
    Usage,
    /// The administrator policy does not allow it.
    AdminPolicy,
}

impl FailureClass {
    /// The class of `error`.
    pub fn of(error: &StoreError) -> Self {
        match error {
            StoreError::Trust { source, .. }
            | StoreError::EnvelopeDownload { source, .. }
            | StoreError::Download { source, .. } => {
                if matches!(&**source, crate::trust::TrustError::Fetch(e)
                    if e.attempts.iter().all(|a| matches!(a.error, crate::transport::AttemptError::Transport(_))))
                {
                    Self::Network
                } else {
                    Self::Verification
                }
            }
            StoreError::BadDocument { .. }
            | StoreError::MissingTarget { .. }
            | StoreError::Mismatch { .. }
            | StoreError::Publisher { .. }
            | StoreError::IndexDisagrees { .. }
            | StoreError::Signature { .. }
            | StoreError::BadRoot { .. } => Self::Verification,
            StoreError::Resolve(_) | StoreError::NotServed { .. } => Self::Resolution,
            StoreError::ConsentRefused { .. } => Self::ConsentRefused,
            StoreError::InsufficientSpace { .. } => Self::DiskSpace,
            StoreError::Blocked { .. } | StoreError::RollbackRevoked { .. } => Self::Blocked,
            StoreError::Hook { .. } => Self::Hook,
            StoreError::Admin(_) => Self::AdminPolicy,
            StoreError::Corrupt { .. } | StoreError::Package { .. } | StoreError::Delta { .. } => Self::Corrupt,
            StoreError::State(_) | StoreError::Activate(_) | StoreError::Fs(_) | StoreError::Config { .. } => {
                Self::Local
            }
            _ => Self::Usage,
        }
    }
}

/// One outcome (see the module docs for the schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryEvent {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    /// This library's version.
    pub client_version: String,
    /// The operation.
    pub operation: Operation,
    /// How it ended.
    pub outcome: Outcome,
    /// The plugin, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginId>,
    /// The release installed, updated to, removed or rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// For an update or rollback: the release before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<Version>,
    /// For a failure: its class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<FailureClass>,
    /// For a removal: the reason the user gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninstall_reason: Option<String>,
}

impl TelemetryEvent {
    /// An event of `operation` with `outcome`, now, about nothing in particular yet.
    pub fn new(operation: Operation, outcome: Outcome) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            time: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            operation,
            outcome,
            plugin: None,
            version: None,
            from_version: None,
            failure_class: None,
            uninstall_reason: None,
        }
    }

    /// About `plugin`.
    #[must_use]
    pub fn plugin(mut self, plugin: &PluginId) -> Self {
        self.plugin = Some(plugin.clone());
        self
    }

    /// About release `version` (coming from `from`).
    #[must_use]
    pub fn versions(mut self, version: Option<&Version>, from: Option<&Version>) -> Self {
        self.version = version.cloned();
        self.from_version = from.cloned();
        self
    }

    /// A failure of `class`.
    #[must_use]
    pub fn failure(mut self, class: FailureClass) -> Self {
        self.failure_class = Some(class);
        self
    }

    /// With the uninstall reason `reason` (cut to [`MAX_REASON_CHARS`]).
    #[must_use]
    pub fn reason(mut self, reason: Option<&str>) -> Self {
        self.uninstall_reason = reason.map(|r| r.trim().chars().take(MAX_REASON_CHARS).collect());
        self
    }
}

/// Appends events to a local file, one JSON object per line. Nothing is sent.
#[derive(Clone, Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
}

impl JsonLinesSink {
    /// Events go to `path` (created on the first event).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `event` as one line (one `write` call, so lines of concurrent writers
    /// do not interleave on platforms with atomic appends).
    pub fn append(&self, event: &TelemetryEvent) -> Result<(), crate::fs::FsError> {
        let mut line = serde_json::to_vec(event)
            .map_err(|e| crate::fs::FsError::new("encoding an event for", &self.path, std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| crate::fs::FsError::new("opening", &self.path, e))?;
        file.write_all(&line).map_err(|e| crate::fs::FsError::new("appending to", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_to_the_documented_schema() {
        let id: PluginId = "acme.clock".parse().unwrap();
        let event = TelemetryEvent::new(Operation::Remove, Outcome::Success)
            .plugin(&id)
            .versions(Some(&"1.0.0".parse().unwrap()), None)
            .reason(Some(&"x".repeat(400)));
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["operation"], "remove");
        assert_eq!(value["outcome"], "success");
        assert_eq!(value["plugin"], "acme.clock");
        assert_eq!(value["version"], "1.0.0");
        assert!(value.get("from_version").is_none() && value.get("failure_class").is_none());
        assert_eq!(value["uninstall_reason"].as_str().unwrap().len(), MAX_REASON_CHARS);
        assert!(value["time"].as_str().unwrap().ends_with('Z'));
        let failed = TelemetryEvent::new(Operation::Update, Outcome::Failure).failure(FailureClass::ConsentRefused);
        assert_eq!(serde_json::to_value(&failed).unwrap()["failure_class"], "consent_refused");
    }

    #[test]
    fn the_sink_appends_one_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let sink = JsonLinesSink::new(dir.path().join("events.jsonl"));
        sink.append(&TelemetryEvent::new(Operation::Install, Outcome::Success)).unwrap();
        sink.append(&TelemetryEvent::new(Operation::Install, Outcome::Failure)).unwrap();
        let text = std::fs::read_to_string(sink.path()).unwrap();
        let lines: Vec<TelemetryEvent> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].outcome, Outcome::Failure);
    }
}
