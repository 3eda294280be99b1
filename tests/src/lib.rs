//! Shared fixtures for Trellis's end-to-end tests.

pub mod fault_server;
pub mod hostile;
#[cfg(unix)]
pub mod pty;
pub mod registry;
pub mod strace;
pub mod tools;
pub mod trees;
