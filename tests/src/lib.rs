//! Shared fixtures for Trellis's end-to-end tests.

pub mod fault_server;
pub mod registry;
