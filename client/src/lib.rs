//! The Trellis store client, for embedding in host applications.
//!
//! Everything a host app needs to offer a plugin store lives here; the `trellis`
//! binary (feature `cli`) is a thin layer over it. The library has no async runtime
//! and a small dependency tree, because every host app pays for it.
//!
//! Start at [`store::Store`]: it drives install, update, remove and rollback over the
//! layers below, calls the host's [`hooks::HostHooks`] and reports [`events::Event`]s.
//!
//! Getting verified bytes:
//! - [`transport`]: HTTP(S) and `file://` mirrors, failover, parallel downloads, cache;
//! - [`trust`]: the TUF client workflow; nothing is used before it verified it;
//! - [`package`]: the only code that opens a package (hardened extraction);
//! - [`delta`]: rebuilding a release from the installed one and a delta, every file
//!   checked against the signed manifest.
//!
//! Deciding what to install: [`resolve`] (pubgrub over the index docs).
//!
//! The lifecycle's foundations that need no network:
//! - [`fs`]: atomic writes and the data-dir lock;
//! - [`registry_name`]: the checked local name of a configured registry, used by every layer;
//! - [`state`]: the data dir layout, the state file (installed set, consents, pins,
//!   policies) and the journal of the operation in flight;
//! - [`activate`]: moving a plugin between versions crash-safely, and recovery;
//! - [`hooks`]: what the embedding app is told (stop, start, register, …);
//! - [`events`]: the progress stream a UI draws;
//! - [`policy`]: when an available update is applied, announced or left alone;
//! - [`admin`]: the administrator's machine-wide policy, which overrides the user's;
//! - [`consent`]: which permissions must be shown and agreed to;
//! - [`license`]: license tokens and trials, and what they allow a plugin now;
//! - [`telemetry`]: opt-in outcome events for the host app (off by default).

pub mod activate;
pub mod admin;
pub mod catalog;
pub mod consent;
pub mod delta;
pub mod events;
pub mod fs;
pub mod hooks;
pub mod license;
pub mod package;
pub mod policy;
pub mod registry_name;
pub mod resolve;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod trust;

pub use registry_name::RegistryName;
