//! Speculative metadata downloads: bytes asked for before the workflow knows it needs
//! them, so that requests the strict order of spec §5 would send one after another
//! share a round trip.
//!
//! Owns [`MetadataOrder`] (the [`super::Updater`] option that turns speculation on),
//! the pool of in-flight downloads (`Speculated`), keyed by the exact metadata file
//! name, and the guesses of which files a walk to a target will need (`guess_bins`).
//! It never verifies and never decides anything: the updater takes a file's bytes from
//! the pool *when its strict workflow reaches that file*, and hands them to exactly the
//! check a download at that point would get (signatures under the keys trusted then,
//! version and length from the referring document, rollback, expiry, the metadata
//! budget). Bytes that fail it are dropped and the file is downloaded again the strict
//! way, from every mirror in order. So speculation changes *when* bytes are downloaded,
//! never what is trusted: a wrong guess costs a wasted request.
//!
//! What the updater speculates, with [`MetadataOrder::Speculative`]:
//! - a full refresh asks for `timestamp.json` together with the root probe
//!   (`N+1.root.json`), and with them for the snapshot and (when the store holds none)
//!   the top-level targets under their unversioned names, [`SNAPSHOT_FILE`] and
//!   [`TOP_TARGETS_FILE`] (TUF's layout without consistent snapshots, which
//!   `trellis-index` publishes beside the versioned files): their versions are not
//!   known before the timestamp and the snapshot, so the strict order needs a round
//!   trip for each. What was asked for before the root chain settled is used only when
//!   it did not move (a new root may rotate keys or change what is trusted: then
//!   everything is fetched again after it). The unversioned copies are taken where the
//!   strict order reaches the snapshot and the top-level targets, under exactly their
//!   checks (the snapshot against the length and hashes the timestamp signs, the
//!   targets against the version the snapshot names, both under the root's keys): a
//!   copy a CDN keeps stale, a site without copies or a mirror serving another file
//!   under the name costs a wasted request, then the versioned file;
//! - a refresh after a changed timestamp (the update check's `200`) asks for the
//!   snapshot the new timestamp names (`V.snapshot.json`, the version read from its
//!   bytes before they are verified: only a guess) together with the root probe;
//! - once the snapshot is known (verified by a refresh, or the trusted one a `304` of the
//!   update check confirms, asked for together with that check), the whole delegation
//!   path of every hinted target ([`super::Updater::hint`]): the first role its walk
//!   lacks, at the version the snapshot names, and the hash bin below it that the
//!   target falls in, its name taken from the stored copy of that role or from the
//!   succinct bins the snapshot lists (`guess_bins`).
//!
//! A succinct bin is interchangeable with any other bin of its delegation as far as
//! signatures go (one key set signs them all) and a Trellis snapshot names their
//! versions without hashes, so a bin (speculated or downloaded the strict way: the
//! updater applies `foreign_target` to both) is taken only if every target it lists
//! falls in it: a mirror answering a bin's name with another bin is refused, never
//! taken for the role.
//!
//! Downloads go to the preferred mirror only (no health record: a miss says nothing
//! about a mirror), at most [`MAX_SPECULATIVE`] per refresh, each capped at the length
//! the strict download would allow; what is never taken ends within the transport's
//! bounds on its own thread and is dropped.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};

use trellis_schema::tuf::{Snapshot, SuccinctRoles, Targets};

use super::delegation;
use super::store::TimestampValidators;
use crate::transport::{FetchSpec, Fetched, MirrorKind, Mirrors};

/// The order in which an [`super::Updater`] downloads metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetadataOrder {
    /// Each file is requested when the spec's workflow reaches it, one after another
    /// (what the TUF conformance suite asserts, request by request).
    #[default]
    Strict,
    /// Files the workflow will need are requested ahead, together (see the module
    /// docs); every byte is still verified when, and as, the strict workflow reaches
    /// it. The store's updaters use this.
    Speculative,
}

/// Speculative downloads started in one refresh at most.
pub const MAX_SPECULATIVE: usize = 64;

/// The unversioned name of the snapshot a full refresh asks for with the timestamp.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// The unversioned name of the top-level targets a full refresh without a stored copy
/// asks for with the timestamp.
pub const TOP_TARGETS_FILE: &str = "targets.json";

type Outcome = Result<(Vec<u8>, TimestampValidators), ()>;

/// Downloads in flight (or done), by metadata file name.
#[derive(Default)]
pub(crate) struct Speculated {
    /// (A `Mutex` only to make the updater `Sync`: the pool is used under `&mut`.)
    pending: HashMap<String, Mutex<mpsc::Receiver<Outcome>>>,
    started: usize,
}

impl std::fmt::Debug for Speculated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speculated").field("files", &self.pending.keys()).field("started", &self.started).finish()
    }
}

impl Speculated {
    /// Forgets every download (a new refresh starts): late ones are dropped.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.started = 0;
    }

    /// Starts downloading metadata `file` (already quoted), capped at `max_length`
    /// bytes, from the preferred mirror; nothing when it is already asked for or the
    /// refresh started [`MAX_SPECULATIVE`] downloads.
    pub(crate) fn start(&mut self, mirrors: &Mirrors, file: String, max_length: u64) {
        if self.pending.contains_key(&file) || self.started >= MAX_SPECULATIVE {
            return;
        }
        let mirrors = mirrors.preferred();
        let (sender, receiver) = mpsc::sync_channel(1);
        let path = file.clone();
        let spawned = std::thread::Builder::new().name("trellis-speculate".into()).spawn(move || {
            let spec = FetchSpec { kind: MirrorKind::Metadata, path: &path, max_length, validators: None };
            let outcome = mirrors
                .fetch_with(spec, None, |url, fetched| match fetched {
                    Fetched::Body { bytes, validators } => {
                        Ok((bytes, TimestampValidators { url: url.to_owned(), validators }))
                    }
                    Fetched::NotModified => Err("a not-modified answer to an unconditional request"),
                })
                .map_err(|e| tracing::debug!(file = %path, error = %e, "speculative download failed"));
            let _ = sender.send(outcome);
        });
        if spawned.is_ok() {
            self.started += 1;
            self.pending.insert(file, Mutex::new(receiver));
        }
    }

    /// Whether `file` was asked for and not taken yet.
    pub(crate) fn is_pending(&self, file: &str) -> bool {
        self.pending.contains_key(file)
    }

    /// The bytes of `file` if it was asked for and arrived (waiting for it if it is
    /// still on its way); `None` otherwise. Each download is taken once.
    pub(crate) fn take(&mut self, file: &str) -> Option<(Vec<u8>, TimestampValidators)> {
        self.pending.remove(file)?.into_inner().ok()?.recv().ok()?.ok()
    }
}

/// The bins of a succinct delegation below `role` that `target` may fall in, by the
/// best knowledge at hand: the succinct delegation of `stored` (an earlier copy of
/// `role`, read without verification: only a guess), else every family of bins the
/// snapshot lists whose prefix starts `role`'s name (`bin-…` below `bins`), else the
/// only family it lists. Empty when nothing suggests a name.
pub(crate) fn guess_bins(role: &str, stored: Option<&[u8]>, snapshot: &Snapshot, target: &str) -> Vec<String> {
    if let Some(succinct) = stored.and_then(unverified_targets).and_then(|targets| targets.delegations?.succinct_roles)
    {
        return vec![delegation::bin_for_target(&succinct, target)];
    }
    let families = bin_families(snapshot);
    let named: Vec<&SuccinctRoles> = families.iter().filter(|f| role.starts_with(f.name_prefix.as_str())).collect();
    let chosen: Vec<&SuccinctRoles> = match (named.is_empty(), families.len()) {
        (false, _) => named,
        (true, 1) => families.iter().collect(),
        (true, _) => Vec::new(),
    };
    chosen.into_iter().map(|succinct| delegation::bin_for_target(succinct, target)).collect()
}

/// A targets document read without verification: only to guess what to ask for.
pub(crate) fn unverified_targets(bytes: &[u8]) -> Option<Targets> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    serde_json::from_value(value.get("signed")?.clone()).ok()
}

/// The families of succinct bins a snapshot lists: role names `<prefix>-<hex>` of one
/// width, as many as that width's bit length gives (every bin of the delegation).
fn bin_families(snapshot: &Snapshot) -> Vec<SuccinctRoles> {
    let mut counts: HashMap<(&str, usize), u64> = HashMap::new();
    for name in snapshot.meta.keys() {
        let Some(role) = name.strip_suffix(".json") else { continue };
        let Some((prefix, suffix)) = role.rsplit_once('-') else { continue };
        if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            *counts.entry((prefix, suffix.len())).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter_map(|((prefix, width), count)| {
            let bits = count.checked_ilog2()?;
            let complete = count.is_power_of_two() && (1..=delegation::MAX_SUCCINCT_BIT_LENGTH).contains(&bits);
            let last = format!("{:x}", count - 1);
            (complete && last.len() == width).then(|| SuccinctRoles {
                keyids: Vec::new(),
                threshold: 1,
                bit_length: bits,
                name_prefix: prefix.to_owned(),
                extra: Default::default(),
            })
        })
        .collect()
}

/// The version of the snapshot that timestamp `bytes` names, read without
/// verification: only a guess of what to ask for.
pub(crate) fn unverified_snapshot_version(bytes: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.get("signed")?.get("meta")?.get(SNAPSHOT_FILE)?.get("version")?.as_u64()
}

/// The first target `bin` lists that does not fall in it under `delegator`'s succinct
/// delegation, with the bin it falls in; `None` when every one does (and when
/// `delegator` delegates by paths: nothing to check there).
pub(crate) fn foreign_target<'a>(delegator: &Targets, bin: &str, targets: &'a Targets) -> Option<(&'a str, String)> {
    let succinct = delegator.delegations.as_ref()?.succinct_roles.as_ref()?;
    targets.targets.keys().find_map(|path| {
        let own = delegation::bin_for_target(succinct, path);
        (own != bin).then_some((path.as_str(), own))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(roles: impl IntoIterator<Item = String>) -> Snapshot {
        let meta = roles
            .into_iter()
            .map(|r| {
                let file =
                    trellis_schema::tuf::MetaFile { version: 1, length: None, hashes: None, extra: Default::default() };
                (format!("{r}.json"), file)
            })
            .collect();
        Snapshot {
            type_: "snapshot".into(),
            spec_version: "1.0.31".into(),
            version: 1,
            expires: "2030-01-01T00:00:00Z".into(),
            meta,
            extra: Default::default(),
        }
    }

    #[test]
    fn the_bin_a_target_falls_in_is_guessed_from_the_snapshot_names() {
        let roles = ["targets".to_owned(), "bins".into(), "publishers".into(), "security".into()]
            .into_iter()
            .chain((0..256).map(|n| format!("bin-{n:02x}")))
            .chain((0..16).map(|n| format!("pub-{n:x}")));
        let snapshot = snapshot(roles);
        let target = "index/ab/acme.clock.json";
        let digest = <sha2::Sha256 as sha2::Digest>::digest(target.as_bytes());
        assert_eq!(guess_bins("bins", None, &snapshot, target), vec![format!("bin-{:02x}", digest[0])]);
        assert_eq!(guess_bins("publishers", None, &snapshot, target), vec![format!("pub-{:x}", digest[0] >> 4)]);
        assert!(guess_bins("security", None, &snapshot, target).is_empty(), "two families, neither named");
    }

    #[test]
    fn an_incomplete_family_is_no_guess() {
        let snapshot = snapshot((0..255).map(|n| format!("bin-{n:02x}")));
        assert!(guess_bins("bins", None, &snapshot, "index/ab/acme.clock.json").is_empty());
    }
}
