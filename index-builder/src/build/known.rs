//! The plugins a site publishes, as the builder keeps them (`_catalog/plugins.json`): an
//! incremental build takes the registry's plugins from it instead of listing
//! `releases/` (at 100k plugins ~90 ms, most of it the kernel's `readdir`; ~0.3 s at
//! 300k), adding the plugins it builds. A full build lists `releases/`, and so does an
//! incremental one whose state is missing, unreadable or of another site.
//!
//! Bound to the snapshot version of the build that wrote it, like the other state files
//! ([`super::state`]). Written without a durability barrier: after a power loss it may
//! be the previous build's (bound to an older snapshot) or unreadable, and either costs
//! the listing. What it changes for an incremental build: a plugin directory added to
//! `releases/` and not named by the build stays unknown to it (a dependency on it is
//! refused, as on any unpublished plugin) until a build names it or a full build.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, create_dir_all, write_atomic_unflushed};
use trellis_schema::PluginId;

use super::PreviousSite;
use super::state;

/// The state file, relative to the site directory.
pub(crate) const KNOWN_STATE: &str = "_catalog/plugins.json";

/// Its format.
const FORMAT: u32 = 1;

#[derive(Serialize)]
struct StateOut<'a> {
    format: u32,
    snapshot: u64,
    plugins: &'a BTreeSet<PluginId>,
}

#[derive(Deserialize)]
struct StateIn<'a> {
    format: u32,
    snapshot: u64,
    /// Borrowed from the file's bytes (an id has no escapes): one allocation an id.
    #[serde(borrow)]
    plugins: Vec<Cow<'a, str>>,
}

/// The plugins `previous` publishes, from its state file; `None` when there is no
/// usable one (logged: the caller lists `releases/`).
pub(super) fn read(previous: &PreviousSite) -> Option<BTreeSet<PluginId>> {
    const REDO: &str = "listing releases/";
    let path = previous.dir().join(KNOWN_STATE);
    let what = "list of published plugins";
    let bytes = state::read_bytes(previous.dir(), KNOWN_STATE, what, REDO)?;
    let state: StateIn<'_> = state::parse(&bytes, previous.dir(), KNOWN_STATE, what, REDO)?;
    if state.format != FORMAT || state.snapshot != previous.snapshot.signed.version {
        tracing::info!(path = %path.display(), "list of published plugins of another site; {REDO}");
        return None;
    }
    let ids: Result<Vec<PluginId>, _> = state.plugins.par_iter().map(|id| id.parse::<PluginId>()).collect();
    // Written sorted and without repeats: any other list is not this builder's.
    let ids = ids.ok().filter(|ids| ids.windows(2).all(|pair| pair[0] < pair[1]));
    if ids.is_none() {
        tracing::info!(path = %path.display(), "list of published plugins with a bad or unsorted id; {REDO}");
    }
    Some(ids?.into_iter().collect())
}

/// Writes `plugins` as the plugins of the site at `site`, whose snapshot is now at
/// `snapshot`.
pub(super) fn write(site: &Path, snapshot: u64, plugins: &BTreeSet<PluginId>) -> Result<(), FsError> {
    let path = site.join(KNOWN_STATE);
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    // Ids and integers: serialising cannot fail.
    let bytes = serde_json::to_vec(&StateOut { format: FORMAT, snapshot, plugins }).unwrap_or_default();
    write_atomic_unflushed(&path, &bytes)
}
