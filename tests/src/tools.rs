//! System tools some suites drive (a browser, a sandbox, scanners, cross compilers).
//!
//! `scripts/install-system-tools` installs the Debian packages of
//! `scripts/system-tools.txt`; a test that needs one asks [`require`] first.

use std::path::PathBuf;

/// The path of `command` on `PATH`. When it is missing the test cannot run: under CI
/// (`CI` set) that is a failure naming the install script; elsewhere the test says it
/// skips and gets `None`.
pub fn require(command: &str) -> Option<PathBuf> {
    if let Some(path) = which(command) {
        return Some(path);
    }
    let hint = format!(
        "`{command}` is not installed: run scripts/install-system-tools \
         (it installs scripts/system-tools.txt with apt-get)"
    );
    assert!(std::env::var_os("CI").is_none(), "{hint}");
    eprintln!("SKIPPED: {hint}");
    None
}

fn which(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(command)).find(|candidate| candidate.is_file())
}
