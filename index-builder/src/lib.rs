//! Registry tools of the Trellis plugin store.
//!
//! For plugin developers: `pack`, `sign`, `lint`, `keygen`, publisher record chains
//! ([`publisher`]). For registry operators:
//! reading a registry source tree ([`registry`]), checking releases ([`release`]),
//! building the signed static site ([`build`], with roles in [`tuf`] and paths in
//! [`site`]), the operator commands ([`operator`]), checking a built or deployed site
//! as a client would ([`verify`]), every role's expiry and who re-signs it by when
//! ([`status`]), serving it on loopback ([`serve`]) and synthetic
//! registries for benchmarks ([`synth`]). The `trellis-index` binary is a thin layer
//! over this library.

pub mod advisories;
pub mod analysis;
pub mod build;
pub mod delta;
pub mod domain_proof;
pub mod fixture;
pub mod keyfile;
pub mod license;
pub mod lint;
pub mod mirror;
pub mod operator;
pub mod pack;
pub mod project;
pub mod publisher;
pub mod registry;
pub mod release;
pub mod review;
pub mod sbom;
pub mod serve;
pub mod sign;
pub mod site;
pub mod source_tree;
pub mod stats;
pub mod status;
pub mod storefront;
pub mod submit;
pub mod synth;
pub mod tuf;
pub mod unversioned;
pub mod verify;
