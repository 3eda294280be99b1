//! The Trellis store client, for embedding in host applications.
//!
//! Everything a host app needs to offer a plugin store lives here; the `trellis`
//! binary (feature `cli`) is a thin layer over it. The library has no async runtime
//! and a small dependency tree, because every host app pays for it.

pub mod fs;
pub mod package;
pub mod resolve;
