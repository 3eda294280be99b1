//! The unversioned copies of the top-level metadata: `metadata/snapshot.json` and
//! `metadata/targets.json`, beside `V.snapshot.json` and `V.targets.json`.
//!
//! Why: with consistent snapshots the name of every metadata file carries its version,
//! which only the file above it gives (the timestamp names the snapshot's, the
//! snapshot the top-level targets'), so a client without trusted state needs a round
//! trip for each, one after another. Under these names (TUF's layout without
//! consistent snapshots) a client asks for all three with `timestamp.json` and
//! verifies each copy where the strict order reaches it: the snapshot against the
//! length and hashes the timestamp signs, the targets against the version the snapshot
//! names, both under the root's keys (`trellis_client::trust::speculation`). The
//! versioned files stay what the metadata names; a copy that is stale (a CDN's),
//! missing (a site built before them) or wrong costs a client one request, then it
//! reads the versioned file.
//!
//! Like `timestamp.json` and the index doc aliases, the copies are rewritten in place:
//! after `timestamp.json` (a copy is never newer than the timestamp a client may read),
//! each by a rename without a barrier (a copy lost in a crash is a stale one), and only
//! when its bytes differ. Hosts must not cache them as immutable (`serve` marks them
//! `no-cache`). They are written from the documents just signed or verified, never
//! copied from another site's copies (`mirror`), and an unsigned build
//! ([`crate::build::Signing::Unsigned`]) leaves them to its signer
//! ([`crate::build::prepared`]).

use std::path::Path;

use trellis_client::fs::{FsError, replace_unsynced};
use trellis_schema::tuf::{Envelope, Snapshot, Timestamp};

use crate::build::BuildError;
use crate::site;

/// The roles a site also publishes under their unversioned names.
pub const ROLES: [&str; 2] = ["snapshot", "targets"];

/// The site path of the unversioned copy of `role` (`metadata/snapshot.json`).
pub fn path(role: &str) -> String {
    format!("{}/{role}.json", site::METADATA_DIR)
}

/// Writes the copies into `site_dir`: `snapshot`, the bytes of the snapshot
/// `timestamp.json` now names, and `targets`, those of the top-level targets it names.
/// Each is replaced only when its bytes differ; returns the site paths written.
pub fn write(site_dir: &Path, snapshot: &[u8], targets: &[u8]) -> Result<Vec<String>, FsError> {
    let mut written = Vec::new();
    for (role, bytes) in ROLES.into_iter().zip([snapshot, targets]) {
        let relative = path(role);
        let file = site_dir.join(&relative);
        if std::fs::read(&file).is_ok_and(|existing| existing == bytes) {
            continue;
        }
        replace_unsynced(&file, bytes)?;
        written.push(relative);
    }
    Ok(written)
}

/// Makes the copies in `site_dir` those of the snapshot its `timestamp.json` names
/// (`snapshot`: its bytes, when the caller has them at hand) and of the top-level
/// targets that snapshot names. Returns the site paths written (none when both were
/// current).
pub fn refresh(site_dir: &Path, snapshot: Option<&[u8]>) -> Result<Vec<String>, BuildError> {
    let published;
    let snapshot = match snapshot {
        Some(bytes) => bytes,
        None => {
            published = published_snapshot(site_dir)?;
            &published
        }
    };
    let targets = top_targets(site_dir, snapshot)?;
    Ok(write(site_dir, snapshot, &targets)?)
}

/// The bytes of the snapshot `timestamp.json` in `site_dir` names.
fn published_snapshot(site_dir: &Path) -> Result<Vec<u8>, BuildError> {
    let path = site::timestamp_file(site_dir);
    let bytes = std::fs::read(&path).map_err(|e| FsError::new("reading", &path, e))?;
    let timestamp: Envelope<Timestamp> = trellis_schema::json::from_slice(&bytes)
        .map_err(|e| BuildError::Site { path: path.clone(), reason: e.to_string() })?;
    let version = timestamp
        .signed
        .meta
        .get("snapshot.json")
        .map(|m| m.version)
        .ok_or_else(|| BuildError::Site { path, reason: "names no snapshot.json".into() })?;
    let file = site::metadata_file(site_dir, "snapshot", version);
    std::fs::read(&file).map_err(|e| FsError::new("reading", file, e).into())
}

/// The bytes of the top-level targets that `snapshot` (the snapshot being published)
/// names, read from `site_dir`.
pub fn top_targets(site_dir: &Path, snapshot: &[u8]) -> Result<Vec<u8>, BuildError> {
    let refused = |reason: String| BuildError::Site { path: site_dir.join(site::METADATA_DIR), reason };
    let parsed: Envelope<Snapshot> = trellis_schema::json::from_slice(snapshot)
        .map_err(|e| refused(format!("the snapshot being published does not parse: {e}")))?;
    let version = parsed
        .signed
        .meta
        .get("targets.json")
        .map(|m| m.version)
        .ok_or_else(|| refused(format!("snapshot v{} names no targets.json", parsed.signed.version)))?;
    let file = site::metadata_file(site_dir, "targets", version);
    std::fs::read(&file).map_err(|e| FsError::new("reading", file, e).into())
}
