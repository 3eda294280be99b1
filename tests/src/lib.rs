//! Shared fixtures for Trellis's end-to-end tests.

pub mod hostile;
pub mod trees;
