//! The client's local state: where things live under the data dir, and the state file.
//!
//! Owns:
//! - [`DataDir`], the layout of the data dir (trusted metadata per registry, the blob
//!   cache, `plugins/<id>/<version>/`, the state file, the lock file). The path is a
//!   value passed in; nothing here reads the environment.
//! - [`State`], the one file recording the installed set (active and kept previous
//!   release per plugin, registry of origin, the [`Disabled`] mark of a blocked or
//!   revoked plugin), vendor → registry bindings, consents,
//!   pins, policies, the install id, and the [`Operation`] journal of the operation in
//!   flight.
//! - [`StateStore`], which holds the data-dir lock for as long as it lives, reads the
//!   state file strictly (a damaged file is an error naming the file and the problem,
//!   never silently replaced) and writes it atomically; [`StateStore::repair`] is the
//!   only path that sets a damaged file aside.
//!
//! It does not move plugin files or run the journal's phases: that is
//! [`crate::activate`], which every lifecycle operation goes through. Trusted metadata
//! and the cache are only located here; `trust` and `transport` own their content.

mod disabled;
mod file;
mod journal;
mod layout;
mod salvage;

pub use disabled::{Disabled, DisabledCause, severity_word};
pub use file::{
    CurrentPointer, InstallReason, InstalledPlugin, InstalledRelease, RepairReport, STATE_SCHEMA_VERSION, State,
    StateError, StateStore, Trial,
};
pub use journal::{Operation, OperationKind, Phase};
pub use layout::{DataDir, InstallId, InvalidInstallId};

pub use crate::registry_name::RegistryName;
