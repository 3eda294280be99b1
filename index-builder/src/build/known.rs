//! The plugins a site publishes, as the builder keeps them (`_catalog/plugins.txt`, with
//! its header `_catalog/plugins-state.json`): an incremental build takes the registry's
//! plugins from it instead of listing `releases/` (at 100k plugins ~90 ms, most of it
//! the kernel's `readdir`; ~0.3 s at 300k), adding the plugins it builds. A full build
//! lists `releases/`, and so does an incremental one whose state is missing, unreadable
//! or of another site.
//!
//! The ids are sorted, one a line; the header (`{"format":3,"snapshot":N,"plugins":
//! COUNT,"crc32":N}`) binds them, by their CRC-32, to the snapshot of the build that
//! wrote it. [`KnownPlugins`] keeps the bytes as read and answers by binary search over
//! their lines: reading 300k ids is a read and one checksum, no id is made into a
//! [`PluginId`] unless a build asks for it, and a build that adds no plugin writes the
//! header only (the 5.8 MB of 300k ids were ~15–20 ms of such a build). A list whose
//! ids do not have the checksum of its header (cut, edited, half-written, or the
//! previous list under a new header) is not taken. A checksum, not a digest: the list
//! is the builder's own cache, and whoever could forge it could write the site it sits
//! in as well; what it must catch is an accident. At 300k plugins the SHA-256 of
//! format 2 was ~5 ms of a one-release build, the CRC-32 (SIMD, `crc32fast`) a tenth
//! of it. The JSON list of format 1, parsed into a set of ids, took 60–70 ms to read
//! and ~15 ms to write; checking every id and its order instead of a digest, ~25 ms.
//!
//! Bound to the snapshot version of the build that wrote it, like the other state files
//! ([`super::state`]). Written without a durability barrier: after a power loss it may
//! be the previous build's (bound to an older snapshot) or unreadable, and either costs
//! the listing. What it changes for an incremental build: a plugin directory added to
//! `releases/` and not named by the build stays unknown to it (a dependency on it is
//! refused, as on any unpublished plugin) until a build names it or a full build.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, create_dir_all, write_atomic_unflushed};
use trellis_schema::{PluginId, VendorId};

use super::PreviousSite;
use super::state;

/// The list of ids, relative to the site directory.
pub(crate) const KNOWN_IDS: &str = "_catalog/plugins.txt";

/// Its header, relative to the site directory: written after the ids.
pub(crate) const KNOWN_STATE: &str = "_catalog/plugins-state.json";

/// Its format (2: the list's SHA-256 instead of its CRC-32).
const FORMAT: u32 = 3;

/// The state file of format 1 (a JSON list), removed by the first build writing a later one.
const LEGACY_STATE: &str = "_catalog/plugins.json";

/// The header of the list.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    snapshot: u64,
    /// How many ids follow.
    plugins: usize,
    /// The CRC-32 of the list.
    crc32: u32,
}

/// The ids of every plugin of a registry: a sorted text of ids, one a line, as the
/// builder's state holds them, and the ids added to it since.
#[derive(Clone, Default)]
pub struct KnownPlugins {
    /// The list's bytes: sorted, distinct plugin ids, each followed by `\n` (the
    /// builder wrote them; the checksum says so).
    text: Vec<u8>,
    /// How many ids the text holds, and its CRC-32 when it is the list as read from
    /// the site (which then need not be written again).
    listed: usize,
    crc32: Option<u32>,
    /// Ids that the text does not hold.
    added: BTreeSet<PluginId>,
}

/// Counts, not the megabytes of ids (a [`super::BuildInput`] holds one).
impl std::fmt::Debug for KnownPlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownPlugins").field("listed", &self.listed).field("added", &self.added.len()).finish()
    }
}

impl From<BTreeSet<PluginId>> for KnownPlugins {
    fn from(ids: BTreeSet<PluginId>) -> Self {
        Self { added: ids, ..Self::default() }
    }
}

impl KnownPlugins {
    /// The ids' text.
    fn text(&self) -> &[u8] {
        &self.text
    }

    /// Where the first line of the text not less than `key` starts (the text's length
    /// when there is none). Every bound is a line's start, so each step finds the line
    /// around the middle with two `memchr`s.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let text = self.text();
        let (mut low, mut high) = (0, text.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let start = memchr::memrchr(b'\n', &text[low..middle]).map_or(low, |at| low + at + 1);
            let end = memchr::memchr(b'\n', &text[start..high]).map_or(high, |at| start + at);
            if &text[start..end] < key {
                low = end + 1;
            } else {
                high = start;
            }
        }
        low.min(text.len())
    }

    /// The text's lines from byte `at` on.
    fn lines_from(&self, at: usize) -> impl Iterator<Item = &[u8]> {
        let rest = self.text().get(at..).unwrap_or_default();
        rest.split(|byte| *byte == b'\n').take_while(|line| !line.is_empty())
    }

    /// Whether `id` is a plugin of the registry.
    pub fn contains(&self, id: &PluginId) -> bool {
        let key = id.as_str().as_bytes();
        self.added.contains(id) || self.lines_from(self.lower_bound(key)).next() == Some(key)
    }

    /// Adds `id`; whether it was new.
    pub fn insert(&mut self, id: PluginId) -> bool {
        !self.contains(&id) && self.added.insert(id)
    }

    /// How many plugins.
    pub fn len(&self) -> usize {
        self.listed + self.added.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The listed ids (as text) and the added ones of `vendor`, each found by a search
    /// (a full build's ids are all added: 300k of them).
    fn with_vendor<'a>(
        &'a self,
        vendor: &VendorId,
    ) -> (impl Iterator<Item = &'a [u8]>, impl Iterator<Item = &'a PluginId>) {
        let prefix = format!("{vendor}.");
        let listed = self.lines_from(self.lower_bound(prefix.as_bytes()));
        let listed = listed.take_while({
            let prefix = prefix.clone();
            move |id| id.starts_with(prefix.as_bytes())
        });
        // `<vendor>.a` is the first id of the vendor's in text order (a segment starts
        // with a letter); none parses when the vendor's ids would all be too long.
        let first = format!("{prefix}a").parse::<PluginId>().ok();
        let added = first.into_iter().flat_map(|first| self.added.range(first..));
        (listed, added.take_while(move |id| id.as_str().starts_with(&prefix)))
    }

    /// The ids of `vendor`'s plugins, in order.
    pub fn of_vendor(&self, vendor: &VendorId) -> Vec<PluginId> {
        let (listed, added) = self.with_vendor(vendor);
        let mut ids: Vec<PluginId> = listed.filter_map(|id| std::str::from_utf8(id).ok()?.parse().ok()).collect();
        ids.extend(added.cloned());
        ids.sort_unstable();
        ids
    }

    /// Whether `vendor` has a plugin.
    pub fn has_vendor(&self, vendor: &VendorId) -> bool {
        let (mut listed, mut added) = self.with_vendor(vendor);
        listed.next().is_some() || added.next().is_some()
    }

    /// Every id, sorted, one a line (the text with the added ids merged in), and its
    /// CRC-32.
    fn lines(&self) -> (std::borrow::Cow<'_, [u8]>, u32) {
        if let (true, Some(crc32)) = (self.added.is_empty(), self.crc32) {
            return (self.text().into(), crc32);
        }
        let size = self.text().len() + self.added.iter().map(|id| id.as_str().len() + 1).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        let mut listed = self.lines_from(0).peekable();
        for added in &self.added {
            while let Some(id) = listed.next_if(|id| *id < added.as_str().as_bytes()) {
                out.extend_from_slice(id);
                out.push(b'\n');
            }
            out.extend_from_slice(added.as_str().as_bytes());
            out.push(b'\n');
        }
        for id in listed {
            out.extend_from_slice(id);
            out.push(b'\n');
        }
        let crc32 = crc32fast::hash(&out);
        (out.into(), crc32)
    }
}

/// The plugins `previous` publishes, from its state files; `None` when there are no
/// usable ones (logged: the caller lists `releases/`).
pub(super) fn read(previous: &PreviousSite) -> Option<KnownPlugins> {
    const REDO: &str = "listing releases/";
    let what = "list of published plugins";
    let header = state::read_bytes(previous.dir(), KNOWN_STATE, what, REDO)?;
    let header: Header = state::parse(&header, previous.dir(), KNOWN_STATE, what, REDO)?;
    let path = previous.dir().join(KNOWN_IDS);
    if header.format != FORMAT || header.snapshot != previous.snapshot.signed.version {
        tracing::info!(path = %path.display(), "{what} of another site; {REDO}");
        return None;
    }
    let text = state::read_bytes(previous.dir(), KNOWN_IDS, what, REDO)?;
    // Written whole by the builder: any other text is cut, edited or half-written.
    if crc32fast::hash(&text) != header.crc32 {
        tracing::info!(path = %path.display(), "{what} without the CRC-32 its header gives; {REDO}");
        return None;
    }
    Some(KnownPlugins { text, listed: header.plugins, crc32: Some(header.crc32), added: BTreeSet::new() })
}

/// Writes `plugins` as the plugins of the site at `site`, whose snapshot is now at
/// `snapshot`: the list when it is not the one read from the site, then its header.
pub(super) fn write(site: &Path, snapshot: u64, plugins: &KnownPlugins) -> Result<(), FsError> {
    create_dir_all(site.join(KNOWN_STATE).parent().unwrap_or(site))?;
    let (ids, crc32) = plugins.lines();
    if plugins.crc32.is_none() || !plugins.added.is_empty() {
        // Before the header: a header never names ids that are not written yet.
        write_atomic_unflushed(&site.join(KNOWN_IDS), &ids)?;
    }
    let header = Header { format: FORMAT, snapshot, plugins: plugins.len(), crc32 };
    // Integers: serialising cannot fail.
    write_atomic_unflushed(&site.join(KNOWN_STATE), &serde_json::to_vec(&header).unwrap_or_default())?;
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

    /// As [`read`] takes a list whose ids are `text`.
    fn of_text(text: &str) -> KnownPlugins {
        KnownPlugins {
            text: text.as_bytes().to_vec(),
            listed: text.lines().count(),
            crc32: Some(crc32fast::hash(text.as_bytes())),
            added: BTreeSet::new(),
        }
    }

    #[test]
    fn a_known_list_answers_from_its_text_and_merges_what_was_added() {
        let mut known = of_text("acme.alarm\nacme.clock\nbravo.tool\n");
        assert_eq!(known.len(), 3);
        for id in ["acme.alarm", "acme.clock", "bravo.tool"] {
            assert!(known.contains(&id.parse().unwrap()), "{id}");
        }
        for id in ["acme.a", "acme.clocks", "acme.bell", "aaa.first", "zeta.last", "acme.clock-2"] {
            assert!(!known.contains(&id.parse().unwrap()), "{id}");
        }
        assert!(!known.insert("acme.clock".parse().unwrap()), "listed already");
        assert_eq!(known.lines().1, crc32fast::hash(b"acme.alarm\nacme.clock\nbravo.tool\n"), "nothing added");
        assert!(known.insert("acme.bell".parse().unwrap()));
        assert!(known.insert("zeta.last".parse().unwrap()));
        assert!(known.contains(&"acme.bell".parse().unwrap()));
        assert_eq!(known.len(), 5);
        let vendor = |v: &str| v.parse::<VendorId>().unwrap();
        assert_eq!(
            known.of_vendor(&vendor("acme")),
            ids(&["acme.alarm", "acme.bell", "acme.clock"]).into_iter().collect::<Vec<_>>()
        );
        assert!(known.of_vendor(&vendor("carol")).is_empty());
        assert!(
            known.has_vendor(&vendor("acme"))
                && known.has_vendor(&vendor("zeta"))
                && known.has_vendor(&vendor("bravo"))
        );
        assert!(!known.has_vendor(&vendor("carol")) && !known.has_vendor(&vendor("acm")));
        assert_eq!(known.of_vendor(&vendor("zeta")), ["zeta.last".parse::<PluginId>().unwrap()]);
        let merged = "acme.alarm\nacme.bell\nacme.clock\nbravo.tool\nzeta.last\n";
        assert_eq!(known.lines(), (merged.as_bytes().into(), crc32fast::hash(merged.as_bytes())));
        assert_eq!(of_text(merged).len(), 5);

        let from_set = KnownPlugins::from(ids(&["b.x", "a.y", "a.z", "ab.c"]));
        assert_eq!(from_set.of_vendor(&vendor("a")), ids(&["a.y", "a.z"]).into_iter().collect::<Vec<_>>());
        assert!(from_set.has_vendor(&vendor("ab")) && !from_set.has_vendor(&vendor("c")));
        assert_eq!(from_set.lines().0.as_ref(), b"a.y\na.z\nab.c\nb.x\n");
        assert!(from_set.contains(&"b.x".parse().unwrap()));
        assert!(of_text("").is_empty());
        assert!(!of_text("").contains(&"a.y".parse().unwrap()));
    }

    #[test]
    fn every_id_of_a_long_list_is_found_by_binary_search_and_no_other() {
        // Ids of many lengths, so that the middle of a range falls anywhere in a line.
        let listed: BTreeSet<PluginId> =
            (0..2_000).map(|n| format!("v{}.p{}", n % 37, "x".repeat(n % 23)).parse().unwrap()).collect();
        let text: String = listed.iter().map(|id| format!("{id}\n")).collect();
        let known = of_text(&text);
        assert_eq!(known.len(), listed.len());
        for id in &listed {
            assert!(known.contains(id), "{id}");
            let absent: PluginId = format!("{id}-not").parse().unwrap();
            assert!(!known.contains(&absent), "{absent}");
        }
        let expected: Vec<PluginId> = listed.iter().filter(|id| id.as_str().starts_with("v7.")).cloned().collect();
        assert_eq!(known.of_vendor(&"v7".parse().unwrap()), expected);
    }
}
