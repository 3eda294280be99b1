//! Tamper detection: re-checking the publisher's signature on the kept release manifest,
//! then re-hashing installed files against it.
//!
//! Owns reading the release envelope and the publisher record kept in every release
//! directory ([`super::RELEASE_ENVELOPE_FILE`], [`super::PUBLISHER_RECORD_FILE`]),
//! verifying the envelope under that record (the same
//! [`PublisherRecord::verify_release`] the download was checked with: threshold,
//! revocation, namespace), and comparing the directory with the manifest's file list:
//! missing, changed (size or SHA-256) and unexpected files. A manifest edited so that its
//! hashes match edited files fails the signature check and is reported as tampering. The
//! lifecycle uses it after every swap (an update is not started on files that do not
//! verify); `trellis verify` runs it over every installed plugin.
//!
//! The report also carries the plugin's [`Disabled`] mark, so that a blocked or revoked
//! plugin whose files are intact is not reported as simply "ok".
//!
//! The record is the one the install verified over TUF (refreshed by every update
//! check, [`super::publishers`]); `Store::verify` also re-checks the envelope under the
//! newest record this client pinned for the publisher, offline. Someone who can
//! rewrite the data dir can replace the record too: this catches edited files and
//! manifests, not an attacker who owns the user's account.

use std::fmt;
use std::path::Path;

use semver::Version;
use serde::Serialize;
use trellis_schema::digest::Hasher;
use trellis_schema::dsse::Envelope;
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};
use trellis_schema::publisher::PublisherRecord;
use trellis_schema::{PluginId, Sha256};

use super::fetch::{PUBLISHER_RECORD_FILE, RELEASE_ENVELOPE_FILE};
use super::{Store, StoreError};
use crate::fs::FsError;
use crate::state::Disabled;

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
    /// Set when the plugin is disabled (blocked, or signed only by revoked keys): its
    /// files may be intact, but the host must not run it.
    pub disabled: Option<Disabled>,
}

/// The manifest kept in a release directory, once its envelope's signature verifies
/// under the publisher record kept beside it.
pub fn verified_release_manifest(dir: &Path) -> Result<ReleaseManifest, FileProblem> {
    let envelope_problem = |problem: String| FileProblem { path: RELEASE_ENVELOPE_FILE.into(), problem };
    let record_problem = |problem: String| FileProblem { path: PUBLISHER_RECORD_FILE.into(), problem };
    let bytes =
        std::fs::read(dir.join(RELEASE_ENVELOPE_FILE)).map_err(|e| envelope_problem(format!("cannot be read: {e}")))?;
    let envelope: Envelope =
        trellis_schema::json::from_slice(&bytes).map_err(|e| envelope_problem(format!("is not an envelope: {e}")))?;
    let record = match std::fs::read(dir.join(PUBLISHER_RECORD_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(record_problem(
                "is missing, so the release's signature cannot be re-checked; reinstall the plugin".into(),
            ));
        }
        Err(e) => return Err(record_problem(format!("cannot be read: {e}"))),
    };
    let record: PublisherRecord = trellis_schema::json::from_slice(&record)
        .map_err(|e| record_problem(format!("is not a publisher record: {e}")))?;
    record.verify_release(&envelope).map_err(|e| {
        envelope_problem(format!(
            "was tampered with: its signature does not verify under publisher {}'s record kept at install ({e}), so the manifest was forged or edited",
            record.id
        ))
    })
}

/// The kept envelope of `dir` re-checked under `pinned`, the newest record of its
/// publisher this client verified: a problem when it no longer verifies (its keys were
/// revoked or removed since the install).
pub(crate) fn check_under(dir: &Path, pinned: &PublisherRecord) -> Option<FileProblem> {
    let envelope: Envelope =
        trellis_schema::json::from_slice(&std::fs::read(dir.join(RELEASE_ENVELOPE_FILE)).ok()?).ok()?;
    pinned.verify_release(&envelope).err().map(|e| FileProblem {
        path: RELEASE_ENVELOPE_FILE.into(),
        problem: format!(
            "does not verify under version {} of publisher {}'s record, the newest this client trusts: {e}",
            pinned.version, pinned.id
        ),
    })
}

/// Compares the release directory `dir` with its signed manifest, after checking the
/// signature (a bad signature is the only problem reported: the file list it vouches
/// for cannot be trusted).
pub fn check_release_dir(dir: &Path) -> Result<Vec<FileProblem>, StoreError> {
    check(dir, None)
}

fn check(dir: &Path, expected: Option<(&PluginId, &Version)>) -> Result<Vec<FileProblem>, StoreError> {
    let manifest = match verified_release_manifest(dir) {
        Ok(manifest) => manifest,
        Err(problem) => return Ok(vec![problem]),
    };
    if let Some((id, version)) = expected
        && (&manifest.plugin_id != id || &manifest.version != version)
    {
        return Ok(vec![FileProblem {
            path: RELEASE_ENVELOPE_FILE.into(),
            problem: format!(
                "was swapped: it is signed for {} {}, but this directory holds {id} {version}",
                manifest.plugin_id, manifest.version
            ),
        }]);
    }
    let mut problems = Vec::new();
    let mut expected: std::collections::BTreeSet<String> =
        [RELEASE_ENVELOPE_FILE, PUBLISHER_RECORD_FILE, CONTENT_MANIFEST_PATH].map(String::from).into();
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
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::new("opening", path, e)),
    };
    let hasher = Hasher::read_all(file).map_err(|e| FsError::new("reading", path, e))?;
    Ok(Some((hasher.len(), hasher.finish())))
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
    /// Re-checks the signature of the active release of `plugins` (every installed
    /// plugin when empty) and re-hashes its files against the signed manifest.
    pub fn verify(&self, plugins: &[PluginId]) -> Result<Vec<VerifyReport>, StoreError> {
        let mut reports = Vec::new();
        for (id, installed) in self.state().plugins() {
            if !plugins.is_empty() && !plugins.contains(id) {
                continue;
            }
            let dir = self.data_dir().release_dir(id, &installed.active.version);
            let mut problems = check(&dir, Some((id, &installed.active.version)))?;
            if problems.is_empty()
                && let Some(pinned) =
                    super::publishers::pinned_record(self.data_dir(), &installed.registry, &id.vendor_id())
                && let Some(problem) = check_under(&dir, &pinned)
            {
                problems.push(problem);
            }
            reports.push(VerifyReport {
                plugin: id.clone(),
                version: installed.active.version.clone(),
                problems,
                disabled: installed.disabled.clone(),
            });
        }
        if let Some(missing) = plugins.iter().find(|p| self.state().plugin(p).is_none()) {
            return Err(StoreError::NotInstalled { plugin: missing.clone() });
        }
        Ok(reports)
    }
}
