//! Registry tools of the Trellis plugin store.
//!
//! For plugin developers: `pack`, `sign`, `lint`, `keygen`. For registry operators:
//! building, verifying and serving the signed static registry. The `trellis-index`
//! binary is a thin layer over this library.

pub mod keyfile;
pub mod lint;
pub mod pack;
pub mod sign;
pub mod source_tree;
