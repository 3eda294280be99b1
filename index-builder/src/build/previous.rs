//! The published state of a site, as the next build reads it.
//!
//! Owns reading `timestamp.json`, the snapshot it names and any targets role of the
//! previous site. It trusts the files as its own output (no signature checks: that
//! is [`crate::verify`]'s and the client's job).

use std::path::{Path, PathBuf};

use trellis_client::fs::FsError;
use trellis_schema::tuf::{Envelope, Snapshot, Targets, Timestamp};

use super::BuildError;
use crate::site;

/// The published state of a site: its timestamp, snapshot and role documents.
pub struct PreviousSite {
    dir: PathBuf,
    /// `timestamp.json`.
    pub timestamp: Envelope<Timestamp>,
    /// The snapshot it names.
    pub snapshot: Envelope<Snapshot>,
}

impl PreviousSite {
    /// Reads the site at `dir`; `None` when it has no `timestamp.json` yet.
    pub fn open(dir: &Path) -> Result<Option<Self>, BuildError> {
        let path = site::timestamp_file(dir);
        if !path.exists() {
            return Ok(None);
        }
        let timestamp: Envelope<Timestamp> = read_site_json(&path)?;
        let version = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .map(|m| m.version)
            .ok_or_else(|| BuildError::Site { path: path.clone(), reason: "names no snapshot.json".into() })?;
        let snapshot: Envelope<Snapshot> = read_site_json(&site::metadata_file(dir, "snapshot", version))?;
        Ok(Some(Self { dir: dir.to_owned(), timestamp, snapshot }))
    }

    /// Version of `role` named by the snapshot.
    pub fn version(&self, role: &str) -> Option<u64> {
        self.snapshot.signed.meta.get(&format!("{role}.json")).map(|m| m.version)
    }

    /// The published document of a targets role (top-level or delegated).
    pub fn role(&self, role: &str) -> Result<Option<Envelope<Targets>>, BuildError> {
        let Some(version) = self.version(role) else { return Ok(None) };
        read_site_json(&site::metadata_file(&self.dir, role, version)).map(Some)
    }
}

fn read_site_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| FsError::new("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BuildError::Site { path: path.to_owned(), reason: e.to_string() })
}
