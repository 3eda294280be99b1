//! The journal: the operation in flight, recorded in the state file before each
//! irreversible step. The phases and what recovery does in each are documented on
//! [`Phase`]; the steps themselves are run by [`crate::activate`].

use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};
use trellis_schema::PluginId;

use super::file::InstalledPlugin;

/// Which lifecycle operation is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// A first installation.
    Install,
    /// A move to another release, downloaded for it.
    Update,
    /// An uninstallation.
    Remove,
    /// A return to the kept previous release.
    Rollback,
}

impl OperationKind {
    /// The operation's name, as used in messages and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Update => "update",
            Self::Remove => "remove",
            Self::Rollback => "rollback",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far an operation got. Each phase is written to the state file *before* the step
/// that follows it, so after a crash the journal says what may have happened:
///
/// | phase | written before | recovery |
/// |---|---|---|
/// | `Prepared` | files of the new release are written to `plugins/<id>/<to>/` | undo: delete that directory unless the state refers to it |
/// | `Staged` | the host is asked (`before_*`) and the running release is stopped | undo, as above |
/// | `Stopped` | the state switches (the plugin was stopped) | undo; the host must start the unchanged active release again |
/// | `Switched` | old releases and the pointer file are cleaned up | finish: delete unreferenced releases (all files on remove), rewrite the pointer |
///
/// The switch itself is one atomic write of the state file that changes the installed
/// record *and* sets `Switched`, so there is no moment where the record and the phase
/// disagree. Rollback, removal and an update back to the kept previous release write
/// no files, so they start at `Staged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Recorded; the new release's directory may be partly written.
    Prepared,
    /// The new release's directory is complete and verified.
    Staged,
    /// The host stopped the running release.
    Stopped,
    /// The state file records the outcome; only cleanup remains.
    Switched,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prepared => "prepared",
            Self::Staged => "staged",
            Self::Stopped => "stopped",
            Self::Switched => "switched",
        })
    }
}

/// The journal record of an operation in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What is being done.
    #[serde(rename = "op")]
    pub kind: OperationKind,
    /// To which plugin.
    pub plugin: PluginId,
    /// The active release before the operation; `None` for an install.
    pub from: Option<Version>,
    /// The release becoming active; `None` for a removal.
    pub to: Option<Version>,
    /// How far it got.
    pub phase: Phase,
    /// The plugin's record before the operation, restored when it is undone.
    pub before: Option<InstalledPlugin>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.kind, self.plugin)?;
        match (&self.from, &self.to) {
            (Some(from), Some(to)) => write!(f, " from {from} to {to}")?,
            (None, Some(to)) => write!(f, " {to}")?,
            (Some(from), None) => write!(f, " {from}")?,
            (None, None) => {}
        }
        write!(f, " (phase {})", self.phase)
    }
}
