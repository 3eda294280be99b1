//! The bodies of Trellis's fuzz targets, as plain functions.
//!
//! Each module is one target: `run(data)` parses or applies the untrusted bytes
//! through the public API the client uses and asserts the properties that must hold
//! for every input (a panic is a finding). The libFuzzer binaries in `fuzz_targets/`
//! call these functions, and so does the stable replay test
//! (`tests/tests/fuzz_corpora.rs`), which runs every committed corpus file through
//! them: CI replays the corpora without a nightly toolchain.
//!
//! [`fixture`] holds the deterministic keys and genuine documents the targets verify
//! against; [`seeds`] writes the seed corpora from them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod canonical_json;
pub mod delta;
pub mod fixture;
pub mod index_doc;
pub mod package_zip;
pub mod path_policy;
pub mod publisher_release;
pub mod seeds;
pub mod tuf_metadata;

/// A target's body: one input, a panic on a finding.
pub type Body = fn(&[u8]);

/// Every target, by the name of its binary and corpus directory.
pub const TARGETS: &[(&str, Body)] = &[
    ("canonical_json", canonical_json::run),
    ("delta", delta::run),
    ("index_doc", index_doc::run),
    ("package_zip", package_zip::run),
    ("path_policy", path_policy::run),
    ("publisher_release", publisher_release::run),
    ("tuf_metadata", tuf_metadata::run),
];
