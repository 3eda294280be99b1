//! The download figures the published catalog carries, kept beside the site so an
//! incremental build of a registry with `stats/` knows which plugins' figures moved
//! without reading every record.
//!
//! Owns `_catalog/figures.json` in the site directory (builder state, not a TUF
//! target, never served to clients): the downloads (total, last 30 days) of every
//! counted plugin as the build that published the catalog computed them, zeros left
//! out, listed plugins or not (so an unlisted one is not looked for again until its
//! counts move), and the digest of the record buckets published with them. Listed
//! plugins' records carry exactly these figures, so the file is used only while
//! the site's catalog role lists the same record buckets
//! (same targets, same SHA-256): a lost, foreign or stale file (an older builder, a
//! build that crashed after publishing, an edited site) makes the build redo the
//! catalog from every record, which writes it again. [`moved`] compares it with
//! today's figures: counts ingested since, and days leaving the 30-day window.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use trellis_client::fs::FsError;
use trellis_schema::{PluginId, Sha256};

use crate::build::state;
use crate::stats::{CatalogFigures, Downloads};

/// The state file, relative to the site directory.
pub(crate) const FIGURES_STATE: &str = "_catalog/figures.json";

/// Format of [`FIGURES_STATE`]; another one is not read.
const FORMAT: u32 = 1;

/// A listed plugin's published downloads: total, last 30 days.
pub(in crate::build) type Published = BTreeMap<PluginId, Downloads>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    /// [`records_digest`] of the catalog these figures were published in.
    records: String,
    /// Plugin → `[total, recent]`, zeros left out.
    downloads: BTreeMap<PluginId, [u64; 2]>,
}

/// The digest of the record buckets of a catalog role's `entries` (target → SHA-256,
/// length): what the figures file is bound to.
pub(in crate::build) fn records_digest(entries: &BTreeMap<String, (Sha256, u64)>) -> Sha256 {
    let mut listed = String::new();
    for (target, (sha256, length)) in entries.range("catalog/records-".to_owned()..) {
        if !target.starts_with("catalog/records-") {
            break;
        }
        listed.push_str(&format!("{target} {sha256} {length}\n"));
    }
    Sha256::of(listed.as_bytes())
}

/// The figures published with the catalog whose role lists `entries`; `None` (with
/// the reason logged) when the file is missing, unreadable or bound to other records.
pub(in crate::build) fn read(site: &Path, entries: &BTreeMap<String, (Sha256, u64)>) -> Option<Published> {
    let state: State = state::read(site, FIGURES_STATE, "published download figures", "redoing the catalog")?;
    if state.format != FORMAT || state.records != records_digest(entries).to_hex() {
        tracing::info!(path = %site.join(FIGURES_STATE).display(), "download figures of another catalog; redoing the catalog");
        return None;
    }
    Some(state.downloads.into_iter().map(|(id, [total, recent])| (id, Downloads { total, recent })).collect())
}

/// Writes the figures of `published` for the catalog whose role lists `entries`.
pub(in crate::build) fn write(
    site: &Path,
    entries: &BTreeMap<String, (Sha256, u64)>,
    published: &Published,
) -> Result<(), FsError> {
    let state = State {
        format: FORMAT,
        records: records_digest(entries).to_hex(),
        downloads: published
            .iter()
            .filter(|(_, d)| **d != Downloads::default())
            .map(|(id, d)| (id.clone(), [d.total, d.recent]))
            .collect(),
    };
    state::write(site, FIGURES_STATE, &state)
}

/// The plugins whose figures in `today` differ from the `published` ones (a plugin
/// missing on either side has zeros there). Plugins the catalog does not list may be
/// among them: the caller keeps only those with a record.
pub(in crate::build) fn moved(published: &Published, today: &CatalogFigures) -> BTreeSet<PluginId> {
    let mut moved: BTreeSet<PluginId> = today
        .downloads
        .iter()
        .filter(|(id, now)| published.get(*id).copied().unwrap_or_default() != **now)
        .map(|(id, _)| id.clone())
        .collect();
    moved.extend(published.keys().filter(|id| !today.downloads.contains_key(*id)).cloned());
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PluginId {
        s.parse().unwrap()
    }

    #[test]
    fn moved_lists_new_counts_figures_leaving_the_window_and_plugins_whose_counts_vanished() {
        let published: Published = BTreeMap::from([
            (id("a.same"), Downloads { total: 10, recent: 4 }),
            (id("a.older"), Downloads { total: 10, recent: 4 }),
            (id("a.gone"), Downloads { total: 3, recent: 3 }),
        ]);
        let today = CatalogFigures {
            downloads: BTreeMap::from([
                (id("a.same"), Downloads { total: 10, recent: 4 }),
                (id("a.older"), Downloads { total: 10, recent: 1 }),
                (id("a.new"), Downloads { total: 2, recent: 2 }),
                (id("a.zero"), Downloads::default()),
            ]),
            trending: Vec::new(),
        };
        let moved: Vec<String> = moved(&published, &today).iter().map(|i| i.as_str().to_owned()).collect();
        assert_eq!(moved, ["a.gone", "a.new", "a.older"]);
    }

    #[test]
    fn the_state_is_read_only_for_the_record_buckets_it_was_written_with() {
        let site = tempfile::tempdir().unwrap();
        let sha = Sha256::of(b"bucket");
        let mut entries = BTreeMap::from([
            ("catalog/head.json".to_owned(), (Sha256::of(b"head"), 4)),
            ("catalog/records-00.json".to_owned(), (sha, 6)),
        ]);
        let published: Published =
            BTreeMap::from([(id("a.one"), Downloads { total: 7, recent: 2 }), (id("a.none"), Downloads::default())]);
        assert!(read(site.path(), &entries).is_none(), "no file yet");
        write(site.path(), &entries, &published).unwrap();
        let read_back = read(site.path(), &entries).unwrap();
        assert_eq!(read_back, BTreeMap::from([(id("a.one"), Downloads { total: 7, recent: 2 })]));
        // Another head: same records, still valid. Another bucket: not.
        entries.insert("catalog/head.json".to_owned(), (Sha256::of(b"other head"), 10));
        assert!(read(site.path(), &entries).is_some());
        entries.insert("catalog/records-00.json".to_owned(), (Sha256::of(b"other"), 5));
        assert!(read(site.path(), &entries).is_none());
        std::fs::write(site.path().join(FIGURES_STATE), b"{\"format\": 1").unwrap();
        assert!(read(site.path(), &entries).is_none(), "a torn file is no state");
    }
}
