//! The builder's own state files in the site directory (`_catalog/*.json`): what a
//! build learnt that the next one would otherwise recompute from every source
//! (download figures, search shard sizes, the days ratings move). Never TUF targets,
//! never read by clients; each is bound by its owner to the site it was written with
//! (a format number and a digest or version), and a missing, unreadable or foreign file
//! costs time, never a wrong document: the owner redoes what it would have told.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, create_dir_all, write_atomic};

/// State file `relative` of `site` as `T`, or `None` when it is missing or unreadable
/// (logged at info as "`what`…; `redo`": what the build does instead). The owner then
/// checks its format and binding.
pub(in crate::build) fn read<T: DeserializeOwned>(site: &Path, relative: &str, what: &str, redo: &str) -> Option<T> {
    parse(&read_bytes(site, relative, what, redo)?, site, relative, what, redo)
}

/// The bytes of state file `relative` of `site` (see [`read`]), for a state parsed
/// borrowing from them ([`parse`]).
pub(in crate::build) fn read_bytes(site: &Path, relative: &str, what: &str, redo: &str) -> Option<Vec<u8>> {
    let path = site.join(relative);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no {what}; {redo}");
            None
        }
        Err(e) => {
            tracing::info!(path = %path.display(), "cannot read the {what} ({e}); {redo}");
            None
        }
    }
}

/// `bytes` of state file `relative` of `site` as `T` (see [`read`]).
pub(in crate::build) fn parse<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    site: &Path,
    relative: &str,
    what: &str,
    redo: &str,
) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::info!(path = %site.join(relative).display(), "unreadable {what} ({e}); {redo}");
            None
        }
    }
}

/// Writes `state` as state file `relative` of `site`, replacing it atomically (a crash
/// leaves the old file or the new one; the owner's binding tells a stale one).
pub(in crate::build) fn write<T: Serialize>(site: &Path, relative: &str, state: &T) -> Result<(), FsError> {
    let path = site.join(relative);
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    // The states are maps of strings, integers and dates: serialising cannot fail.
    write_atomic(&path, &serde_json::to_vec(state).unwrap_or_default())
}
