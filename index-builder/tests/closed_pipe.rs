//! `trellis-index … | head -1`: a reader that goes away ends the builder quietly.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_pipe_ends_quietly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    // A pipe whose reading end is closed before the builder writes a byte: its first
    // line fails with EPIPE, deterministically.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["init", dir.path().join("registry").to_str().unwrap(), "--now", "2026-11-01T00:00:00Z"])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    // The work was done before the first line was printed.
    assert!(dir.path().join("registry/trellis-registry.json").exists());
    // Any other failure still reports and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["init", dir.path().join("registry").to_str().unwrap()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
