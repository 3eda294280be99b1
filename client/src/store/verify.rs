//! Tamper detection: re-hashing installed files against the manifest their publisher
//! signed.
//!
//! Owns reading the release envelope kept in every release directory
//! ([`super::RELEASE_ENVELOPE_FILE`]) and comparing the directory with the manifest's
//! file list: missing, changed (size or SHA-256) and unexpected files. The lifecycle
//! uses it after every swap (an update is not started on files that do not verify);
//! `trellis verify` runs it over every installed plugin.

use std::fmt;
use std::io::Read;
use std::path::Path;

use semver::Version;
use serde::Serialize;
use trellis_schema::digest::Hasher;
use trellis_schema::dsse::Envelope;
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};
use trellis_schema::{PluginId, Sha256};

use super::fetch::RELEASE_ENVELOPE_FILE;
use super::{Store, StoreError};
use crate::fs::FsError;

/// One file that does not match the signed manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    /// Its path inside the release directory.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// The verification of one installed plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The plugin.
    pub plugin: PluginId,
    /// Its active release.
    pub version: Version,
    /// Problems found; empty when every file matches.
    pub problems: Vec<FileProblem>,
}

/// The manifest kept in a release directory (the signed envelope's payload).
pub fn release_manifest(dir: &Path) -> Result<ReleaseManifest, FileProblem> {
    let path = dir.join(RELEASE_ENVELOPE_FILE);
    let problem = |problem: String| FileProblem { path: RELEASE_ENVELOPE_FILE.into(), problem };
    let bytes = std::fs::read(&path).map_err(|e| problem(format!("cannot be read: {e}")))?;
    let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| problem(format!("is not an envelope: {e}")))?;
    let payload = envelope.payload_bytes().map_err(|e| problem(e.to_string()))?;
    serde_json::from_slice(&payload).map_err(|e| problem(format!("does not carry a release manifest: {e}")))
}

/// Compares the release directory `dir` with its signed manifest.
pub fn check_release_dir(dir: &Path) -> Result<Vec<FileProblem>, StoreError> {
    let manifest = match release_manifest(dir) {
        Ok(manifest) => manifest,
        Err(problem) => return Ok(vec![problem]),
    };
    let mut problems = Vec::new();
    let mut expected: std::collections::BTreeSet<String> =
        [RELEASE_ENVELOPE_FILE, CONTENT_MANIFEST_PATH].map(String::from).into();
    for entry in &manifest.files {
        expected.insert(entry.path.clone());
        let path = dir.join(&entry.path);
        match hash_file(&path) {
            Ok(None) => problems.push(FileProblem { path: entry.path.clone(), problem: "is missing".into() }),
            Ok(Some((size, sha))) if size != entry.size || sha != entry.sha256 => problems.push(FileProblem {
                path: entry.path.clone(),
                problem: format!(
                    "was changed (size {size}, SHA-256 {sha}; signed: size {}, SHA-256 {})",
                    entry.size, entry.sha256
                ),
            }),
            Ok(Some(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut found = Vec::new();
    list_files(dir, dir, &mut found)?;
    for path in found {
        if !expected.contains(&path) {
            problems.push(FileProblem { path, problem: "is not part of the signed release".into() });
        }
    }
    Ok(problems)
}

fn hash_file(path: &Path) -> Result<Option<(u64, Sha256)>, FsError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::new("opening", path, e)),
    };
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| FsError::new("reading", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(Some((size, hasher.finish())))
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), FsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FsError::new("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new("listing", dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| FsError::new("inspecting", &path, e))?;
        if kind.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

impl Store {
    /// Re-hashes the active release of `plugins` (every installed plugin when empty)
    /// against its signed manifest.
    pub fn verify(&self, plugins: &[PluginId]) -> Result<Vec<VerifyReport>, StoreError> {
        let mut reports = Vec::new();
        for (id, installed) in self.state().plugins() {
            if !plugins.is_empty() && !plugins.contains(id) {
                continue;
            }
            let dir = self.data_dir().release_dir(id, &installed.active.version);
            reports.push(VerifyReport {
                plugin: id.clone(),
                version: installed.active.version.clone(),
                problems: check_release_dir(&dir)?,
            });
        }
        if let Some(missing) = plugins.iter().find(|p| self.state().plugin(p).is_none()) {
            return Err(StoreError::NotInstalled { plugin: missing.clone() });
        }
        Ok(reports)
    }
}
