//! The plugins a site publishes, as the builder keeps them (`_catalog/plugins.txt`): an
//! incremental build takes the registry's plugins from it instead of listing
//! `releases/` (at 100k plugins ~90 ms, most of it the kernel's `readdir`; ~0.3 s at
//! 300k), adding the plugins it builds. A full build lists `releases/`, and so does an
//! incremental one whose state is missing, unreadable or of another site.
//!
//! The file is a JSON header line (`{"format":2,"snapshot":N,"plugins":COUNT}`) and then
//! the ids, sorted, one a line. [`KnownPlugins`] keeps that text as it was read: each id
//! is checked (no allocation), none is made into a [`PluginId`] unless a build looks it
//! up, and the next state is the same text with the ids a build added merged in. At
//! 300k plugins the JSON list of format 1, parsed into a set of ids, took 60–70 ms to
//! read and ~15 ms to write.
//!
//! Bound to the snapshot version of the build that wrote it, like the other state files
//! ([`super::state`]). Written without a durability barrier: after a power loss it may
//! be the previous build's (bound to an older snapshot) or unreadable, and either costs
//! the listing. What it changes for an incremental build: a plugin directory added to
//! `releases/` and not named by the build stays unknown to it (a dependency on it is
//! refused, as on any unpublished plugin) until a build names it or a full build.

use std::collections::BTreeSet;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, create_dir_all, write_atomic_unflushed};
use trellis_schema::PluginId;

use super::PreviousSite;
use super::state;

/// The state file, relative to the site directory.
pub(crate) const KNOWN_STATE: &str = "_catalog/plugins.txt";

/// Its format.
const FORMAT: u32 = 2;

/// The state file of format 1 (a JSON list), removed by the first build writing format 2.
const LEGACY_STATE: &str = "_catalog/plugins.json";

/// The header line of the state file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    snapshot: u64,
    /// How many ids follow.
    plugins: usize,
}

/// The ids of every plugin of a registry: a sorted text of checked ids, one a line (as
/// the builder's state holds them), and the ids added to it since.
#[derive(Clone, Debug, Default)]
pub struct KnownPlugins {
    /// Sorted, distinct plugin ids, each followed by `\n`.
    text: String,
    /// Where each id of `text` starts, and `text.len()` last.
    starts: Vec<usize>,
    /// Ids that `text` does not hold.
    added: BTreeSet<PluginId>,
}

impl From<BTreeSet<PluginId>> for KnownPlugins {
    fn from(ids: BTreeSet<PluginId>) -> Self {
        Self { added: ids, ..Self::default() }
    }
}

impl KnownPlugins {
    /// Sorted, distinct ids, one a line, each checked; `None` when `text` is not that.
    fn of_text(text: String) -> Option<Self> {
        if !text.is_empty() && !text.ends_with('\n') {
            return None;
        }
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        let id = |i: usize| &text[starts[i]..starts[i + 1] - 1];
        let checked = (0..starts.len() - 1).into_par_iter().all(|i| {
            let current = id(i);
            PluginId::check(current).is_ok() && (i == 0 || id(i - 1) < current)
        });
        checked.then_some(Self { text, starts, added: BTreeSet::new() })
    }

    /// The `i`-th id of the text.
    fn id(&self, i: usize) -> &str {
        &self.text[self.starts[i]..self.starts[i + 1] - 1]
    }

    /// How many ids the text holds.
    fn listed(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Whether `id` is a plugin of the registry.
    pub fn contains(&self, id: &PluginId) -> bool {
        self.added.contains(id) || self.position(id.as_str()).is_ok()
    }

    /// Where `id` is in the text, or would be.
    fn position(&self, id: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.listed());
        while low < high {
            let middle = low + (high - low) / 2;
            match self.id(middle).cmp(id) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }

    /// Adds `id`; whether it was new.
    pub fn insert(&mut self, id: PluginId) -> bool {
        !self.contains(&id) && self.added.insert(id)
    }

    /// How many plugins.
    pub fn len(&self) -> usize {
        self.listed() + self.added.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids that start with `prefix`, in order.
    pub fn starting_with(&self, prefix: &str) -> Vec<PluginId> {
        let first = self.position(prefix).unwrap_or_else(|at| at);
        let listed = (first..self.listed()).map(|i| self.id(i)).take_while(|id| id.starts_with(prefix));
        let mut ids: Vec<PluginId> = listed.filter_map(|id| id.parse().ok()).collect();
        ids.extend(self.added.iter().filter(|id| id.as_str().starts_with(prefix)).cloned());
        ids.sort_unstable();
        ids
    }

    /// Every id, sorted, one a line (the text with the added ids merged in).
    fn lines(&self) -> String {
        if self.added.is_empty() {
            return self.text.clone();
        }
        let mut out =
            String::with_capacity(self.text.len() + self.added.iter().map(|id| id.as_str().len() + 1).sum::<usize>());
        let mut listed = (0..self.listed()).map(|i| self.id(i)).peekable();
        for added in &self.added {
            while let Some(id) = listed.next_if(|id| *id < added.as_str()) {
                out.push_str(id);
                out.push('\n');
            }
            out.push_str(added.as_str());
            out.push('\n');
        }
        for id in listed {
            out.push_str(id);
            out.push('\n');
        }
        out
    }
}

/// The plugins `previous` publishes, from its state file; `None` when there is no
/// usable one (logged: the caller lists `releases/`).
pub(super) fn read(previous: &PreviousSite) -> Option<KnownPlugins> {
    const REDO: &str = "listing releases/";
    let what = "list of published plugins";
    let path = previous.dir().join(KNOWN_STATE);
    let bytes = state::read_bytes(previous.dir(), KNOWN_STATE, what, REDO)?;
    let unreadable = || tracing::info!(path = %path.display(), "unreadable {what}; {REDO}");
    let Ok(text) = String::from_utf8(bytes) else {
        unreadable();
        return None;
    };
    let Some((header, ids)) = text.split_once('\n') else {
        unreadable();
        return None;
    };
    let header: Header = state::parse(header.as_bytes(), previous.dir(), KNOWN_STATE, what, REDO)?;
    if header.format != FORMAT || header.snapshot != previous.snapshot.signed.version {
        tracing::info!(path = %path.display(), "{what} of another site; {REDO}");
        return None;
    }
    let ids = ids.to_owned();
    drop(text);
    // Written sorted, without repeats and with its count: any other list is not this builder's.
    let known = KnownPlugins::of_text(ids).filter(|known| known.listed() == header.plugins);
    if known.is_none() {
        tracing::info!(path = %path.display(), "{what} with a bad, unsorted or missing id; {REDO}");
    }
    known
}

/// Writes `plugins` as the plugins of the site at `site`, whose snapshot is now at
/// `snapshot`.
pub(super) fn write(site: &Path, snapshot: u64, plugins: &KnownPlugins) -> Result<(), FsError> {
    let path = site.join(KNOWN_STATE);
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    let header = Header { format: FORMAT, snapshot, plugins: plugins.len() };
    // Integers: serialising cannot fail.
    let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(plugins.lines().as_bytes());
    write_atomic_unflushed(&path, &bytes)?;
    match std::fs::remove_file(site.join(LEGACY_STATE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::info!(path = %site.join(LEGACY_STATE).display(), "cannot remove an older list of published plugins ({e})");
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> BTreeSet<PluginId> {
        ids.iter().map(|id| id.parse().unwrap()).collect()
    }

    #[test]
    fn a_known_list_answers_from_its_text_and_merges_what_was_added() {
        let mut known = KnownPlugins::of_text("acme.alarm\nacme.clock\nbravo.tool\n".to_owned()).unwrap();
        assert_eq!(known.len(), 3);
        assert!(known.contains(&"acme.clock".parse().unwrap()));
        assert!(!known.contains(&"acme.clocks".parse().unwrap()));
        assert!(!known.insert("acme.clock".parse().unwrap()), "listed already");
        assert!(known.insert("acme.bell".parse().unwrap()));
        assert!(known.insert("zeta.last".parse().unwrap()));
        assert!(known.contains(&"acme.bell".parse().unwrap()));
        assert_eq!(known.len(), 5);
        assert_eq!(
            known.starting_with("acme."),
            ids(&["acme.alarm", "acme.bell", "acme.clock"]).into_iter().collect::<Vec<_>>()
        );
        assert!(known.starting_with("carol.").is_empty());
        assert_eq!(known.lines(), "acme.alarm\nacme.bell\nacme.clock\nbravo.tool\nzeta.last\n");
        let merged = KnownPlugins::of_text(known.lines()).unwrap();
        assert_eq!(merged.len(), 5);

        let from_set = KnownPlugins::from(ids(&["b.x", "a.y"]));
        assert_eq!(from_set.lines(), "a.y\nb.x\n");
        assert!(from_set.contains(&"b.x".parse().unwrap()));
        assert!(KnownPlugins::of_text(String::new()).is_some_and(|k| k.is_empty()));
    }

    #[test]
    fn a_list_unsorted_repeated_with_a_bad_id_or_cut_is_not_taken() {
        for text in ["b.x\na.y\n", "a.y\na.y\n", "a.y\nNot-An-Id\n", "a.y\nb.x", "a.y\n\nb.x\n"] {
            assert!(KnownPlugins::of_text(text.to_owned()).is_none(), "{text:?}");
        }
    }
}
