//! Shared fixtures for Trellis's end-to-end tests.

pub mod fault_server;
pub mod hostile;
pub mod registry;
pub mod trees;
