//! Document types of the Trellis plugin store, and the pure functions over them.
//!
//! This crate owns every document that crosses the wire or is signed: the plugin
//! metadata (`plugin.json`), the release manifest and its DSSE envelope, publisher
//! records, sparse index documents, the blocklist and the TUF metadata that signs the
//! registry. It also owns canonical JSON, key and signature types and signature
//! verification. It does no I/O and no networking: reading files, fetching and trust
//! decisions belong to `trellis-client` (`trust`, `transport`) and `trellis-index`.

pub mod advisory;
pub mod analysis;
pub mod blocklist;
pub mod canonical;
pub mod catalog;
pub mod delta;
pub mod digest;
pub mod dsse;
pub mod id;
pub mod index;
pub mod json;
#[cfg(feature = "json-schema")]
pub mod json_schema;
pub mod key;
pub mod license;
pub mod manifest;
pub mod mirrors;
pub mod path;
pub mod permission;
pub mod plugin;
pub mod publisher;
pub mod security_level;
pub mod target;
pub mod tuf;
pub mod validate;

pub use digest::Sha256;
pub use id::{PluginId, VendorId};
pub use key::{KeyId, PublicKey, SigningKey};
