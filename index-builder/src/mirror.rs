//! Copying a site: a full mirror, or a partial one holding only chosen plugins' blobs.
//!
//! Owns `trellis-index mirror SOURCE DEST [--only ID…] [--with-dependencies]`: every
//! piece of metadata (all roots, the timestamp, the snapshot, every targets role, every
//! signed target: index docs, publisher records, the blocklist, the mirror list) is
//! copied, so a client pointed at DEST verifies it exactly as it would the source and
//! can resolve any plugin; blobs (packages, envelopes, deltas) are copied for every
//! plugin, or with `--only` for the chosen ones and, with `--with-dependencies`, every
//! plugin any of their releases depends on (transitively, from the signed index docs).
//! Each file is checked against what lists it (the snapshot for roles, the role for
//! targets, the index doc for blobs) while copying; the result is then audited by
//! [`crate::verify`] with its own rules for a partial mirror.
//!
//! A partial mirror carries [`PARTIAL_MARKER`] (the plugins whose blobs it holds), so
//! `verify` accepts that other plugins' blobs are absent (and says so) while still
//! requiring every blob of the listed plugins; `verify --full` ignores the marker.
//! Files are written in the publishing order (blobs, targets, roles, snapshot,
//! timestamp last, each atomically), so a mirror refreshed in place is consistent at
//! every moment; files already in DEST with the right hash are not fetched again.
//! After the timestamp, the unversioned copies of the snapshot and the top-level
//! targets ([`crate::unversioned`]) and the alias of every index doc
//! ([`trellis_schema::target::index_alias_path`]) are written from the documents just
//! checked (never copied from SOURCE), so clients of the mirror save the round trips
//! they save on the source: two on a first refresh, one per level of a dependency
//! graph.
//! SOURCE is a site directory or an `http(s)://` URL ([`Source`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_client::fs::{FsError, write_atomic};
use trellis_schema::index::{BlobRef, IndexDoc};
use trellis_schema::tuf::{Envelope, Snapshot, TargetFile, Targets, Timestamp};
use trellis_schema::{PluginId, Sha256};

use crate::site;
use crate::verify::Source;

/// The file at the root of a partial mirror naming the plugins whose blobs it holds.
pub const PARTIAL_MARKER: &str = "trellis-partial-mirror.json";

/// The contents of [`PARTIAL_MARKER`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialMarker {
    /// The plugins whose every blob (packages, envelopes, deltas) the mirror holds.
    pub plugins: BTreeSet<PluginId>,
}

impl PartialMarker {
    /// Reads the marker of the site at `source`: `Ok(None)` when it is not a partial
    /// mirror.
    pub fn read(source: &Source) -> Result<Option<Self>, String> {
        match source.fetch(PARTIAL_MARKER)? {
            None => Ok(None),
            Some(bytes) => trellis_schema::json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{PARTIAL_MARKER}: not a partial mirror marker: {e}")),
        }
    }
}

/// Which blobs to copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorOptions {
    /// Only these plugins' blobs (`None`: every plugin's, a full mirror).
    pub only: Option<BTreeSet<PluginId>>,
    /// With `only`: also every plugin their releases depend on, transitively.
    pub with_dependencies: bool,
}

/// What [`mirror`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorReport {
    /// Metadata files (roots, timestamp, snapshot, targets roles).
    pub metadata_files: usize,
    /// Signed targets (index docs, publisher records, blocklist, mirror list).
    pub targets: usize,
    /// Blobs in the mirror (copied now or already there).
    pub blobs: usize,
    /// Files actually fetched and written (the others were in DEST already).
    pub written: usize,
    /// Bytes of blobs in the mirror.
    pub blob_bytes: u64,
    /// The plugins whose blobs the mirror holds.
    pub plugins: BTreeSet<PluginId>,
    /// Plugins in the registry whose blobs were left out.
    pub left_out: usize,
    /// Index doc aliases in the mirror (written now or already there).
    pub aliases: usize,
}

/// Why a mirror could not be made. Nothing of the new metadata is published in DEST
/// then (the timestamp is written last); blobs already copied stay (they are
/// content-addressed, harmless).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The source could not be read.
    #[error("reading {path} from the source: {problem}")]
    Fetch {
        /// The file, relative to the site root.
        path: String,
        /// What happened.
        problem: String,
    },
    /// A file the metadata names is not in the source.
    #[error("{path} is missing from the source, though {listed_by} lists it; the source is not a whole site")]
    Missing {
        /// The file.
        path: String,
        /// What names it.
        listed_by: String,
    },
    /// A file is not what lists it says.
    #[error(
        "{path} in the source is {actual_length} bytes with sha256 {actual}, {listed_by} lists {length} bytes with {expected}; the source is damaged or tampered with"
    )]
    Mismatch {
        /// The file.
        path: String,
        /// What lists it.
        listed_by: String,
        /// The listed length.
        length: u64,
        /// The listed hash.
        expected: String,
        /// The length found.
        actual_length: u64,
        /// The hash found.
        actual: Sha256,
    },
    /// A metadata file does not parse.
    #[error("{path}: {problem}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// `--only` names a plugin the registry does not serve.
    #[error("--only {id}: the registry serves no such plugin{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownPlugin {
        /// The id asked for.
        id: PluginId,
        /// The closest id the registry serves.
        suggestion: Option<PluginId>,
    },
    /// Writing DEST failed.
    #[error(transparent)]
    Write(#[from] FsError),
}

/// A file to copy: where it is, what lists it, and its expected length and hash.
#[derive(Clone, Debug)]
struct Listed {
    path: String,
    listed_by: String,
    length: Option<u64>,
    sha256: Option<Sha256>,
}

fn fetch(source: &Source, path: &str) -> Result<Option<Vec<u8>>, MirrorError> {
    source.fetch(path).map_err(|problem| MirrorError::Fetch { path: path.to_owned(), problem })
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, MirrorError> {
    trellis_schema::json::from_slice(bytes)
        .map_err(|e| MirrorError::Parse { path: path.to_owned(), problem: e.to_string() })
}

/// Fetches `file` and checks it against its listing.
fn fetch_listed(source: &Source, file: &Listed) -> Result<Vec<u8>, MirrorError> {
    let bytes = fetch(source, &file.path)?
        .ok_or_else(|| MirrorError::Missing { path: file.path.clone(), listed_by: file.listed_by.clone() })?;
    check(file, &bytes)?;
    Ok(bytes)
}

fn check(file: &Listed, bytes: &[u8]) -> Result<(), MirrorError> {
    let actual = Sha256::of(bytes);
    let length_ok = file.length.is_none_or(|l| l == bytes.len() as u64);
    let hash_ok = file.sha256.as_ref().is_none_or(|s| s == &actual);
    if length_ok && hash_ok {
        return Ok(());
    }
    Err(MirrorError::Mismatch {
        path: file.path.clone(),
        listed_by: file.listed_by.clone(),
        length: file.length.unwrap_or(bytes.len() as u64),
        expected: file.sha256.as_ref().map_or_else(|| "any hash".to_owned(), Sha256::to_hex),
        actual_length: bytes.len() as u64,
        actual,
    })
}

/// Copies content-addressed `file` into `dest` unless it is there intact already;
/// returns whether it was written.
fn copy_listed(source: &Source, dest: &Path, file: &Listed) -> Result<bool, MirrorError> {
    let target = dest.join(&file.path);
    if let Ok(bytes) = std::fs::read(&target)
        && check(file, &bytes).is_ok()
    {
        return Ok(false);
    }
    let bytes = fetch_listed(source, file)?;
    write_file(&target, &bytes)?;
    Ok(true)
}

/// Writes `bytes` to `path` atomically, creating its directory.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| FsError::new("creating", parent, e))?;
    }
    write_atomic(path, bytes)
}

fn target_file(path: &str, file: &TargetFile, role: &str) -> Result<Listed, MirrorError> {
    let sha256 = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()).ok_or_else(|| {
        MirrorError::Parse { path: format!("metadata of {role}"), problem: format!("target {path} has no sha256 hash") }
    })?;
    Ok(Listed {
        path: format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(path, &sha256)),
        listed_by: format!("the {role} role"),
        length: Some(file.length),
        sha256: Some(sha256),
    })
}

fn blob_file(blob: &BlobRef, doc: &IndexDoc) -> Listed {
    Listed {
        path: format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(&blob.path, &blob.sha256)),
        listed_by: format!("the index doc of {}", doc.id),
        length: Some(blob.length),
        sha256: Some(blob.sha256),
    }
}

/// The plugins whose blobs to copy: `only` (each must exist) and, with dependencies,
/// everything any of their releases depends on.
fn selection(docs: &BTreeMap<PluginId, IndexDoc>, options: &MirrorOptions) -> Result<BTreeSet<PluginId>, MirrorError> {
    let Some(only) = &options.only else { return Ok(docs.keys().cloned().collect()) };
    for id in only {
        if !docs.contains_key(id) {
            let suggestion = docs.keys().min_by_key(|known| strsim_distance(known.as_str(), id.as_str())).cloned();
            let suggestion = suggestion.filter(|s| strsim_distance(s.as_str(), id.as_str()) <= 3);
            return Err(MirrorError::UnknownPlugin { id: id.clone(), suggestion });
        }
    }
    let mut chosen: BTreeSet<PluginId> = only.clone();
    if options.with_dependencies {
        let mut todo: Vec<PluginId> = only.iter().cloned().collect();
        while let Some(id) = todo.pop() {
            let Some(doc) = docs.get(&id) else { continue };
            for dependency in doc.releases.iter().flat_map(|r| &r.dependencies) {
                if docs.contains_key(&dependency.id) && chosen.insert(dependency.id.clone()) {
                    todo.push(dependency.id.clone());
                }
            }
        }
    }
    Ok(chosen)
}

/// Levenshtein distance (for "did you mean"), on bytes: ids are ASCII.
fn strsim_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

/// Copies the site at `source` into `dest` (see the module docs).
pub fn mirror(source: &Source, dest: &Path, options: &MirrorOptions) -> Result<MirrorReport, MirrorError> {
    let mut report = MirrorReport::default();
    let metadata = |name: &str| format!("{}/{name}", site::METADATA_DIR);
    // Metadata, held in memory and written last, in publishing order.
    let mut roots: Vec<(String, Vec<u8>)> = Vec::new();
    for version in 1u64.. {
        let path = metadata(&format!("{version}.root.json"));
        match fetch(source, &path)? {
            Some(bytes) => roots.push((path, bytes)),
            None if version == 1 => {
                return Err(MirrorError::Missing { path, listed_by: "every Trellis site".into() });
            }
            None => break,
        }
    }
    let timestamp_path = metadata("timestamp.json");
    let timestamp_bytes = fetch(source, &timestamp_path)?
        .ok_or_else(|| MirrorError::Missing { path: timestamp_path.clone(), listed_by: "every Trellis site".into() })?;
    let timestamp: Envelope<Timestamp> = parse(&timestamp_path, &timestamp_bytes)?;
    let snapshot_meta = timestamp
        .signed
        .meta
        .get("snapshot.json")
        .ok_or_else(|| MirrorError::Parse { path: timestamp_path.clone(), problem: "names no snapshot.json".into() })?;
    let snapshot_file = Listed {
        path: metadata(&site::metadata_name("snapshot", snapshot_meta.version)),
        listed_by: "timestamp.json".into(),
        length: snapshot_meta.length,
        sha256: snapshot_meta.hashes.as_ref().and_then(|h| h.get("sha256")).and_then(|h| h.parse().ok()),
    };
    let snapshot_bytes = fetch_listed(source, &snapshot_file)?;
    let snapshot: Envelope<Snapshot> = parse(&snapshot_file.path, &snapshot_bytes)?;
    let role_files: Vec<(String, Listed)> = snapshot
        .signed
        .meta
        .iter()
        .map(|(name, meta)| {
            let role = name.strip_suffix(".json").unwrap_or(name).to_owned();
            let file = Listed {
                path: metadata(&site::metadata_name(&role, meta.version)),
                listed_by: snapshot_file.path.clone(),
                length: meta.length,
                sha256: meta.hashes.as_ref().and_then(|h| h.get("sha256")).and_then(|h| h.parse().ok()),
            };
            (role, file)
        })
        .collect();
    let roles: Vec<(String, Listed, Vec<u8>, Envelope<Targets>)> = role_files
        .into_par_iter()
        .map(|(role, file)| {
            let bytes = fetch_listed(source, &file)?;
            let doc: Envelope<Targets> = parse(&file.path, &bytes)?;
            Ok((role, file, bytes, doc))
        })
        .collect::<Result<_, MirrorError>>()?;

    // Signed targets. Index docs first, in memory (from DEST when it has them intact),
    // so the selection is checked before anything is written.
    let targets: Vec<(String, Listed)> = roles
        .iter()
        .flat_map(|(role, _, _, doc)| doc.signed.targets.iter().map(move |(path, file)| (role, path, file)))
        .map(|(role, path, file)| Ok((path.clone(), target_file(path, file, role)?)))
        .collect::<Result<_, MirrorError>>()?;
    let (index_targets, other_targets): (Vec<_>, Vec<_>) =
        targets.iter().partition(|(path, _)| path.starts_with("index/"));
    let fetched: Vec<(&Listed, bool, Vec<u8>, IndexDoc)> = index_targets
        .par_iter()
        .map(|(path, file)| {
            let (fresh, bytes) = match std::fs::read(dest.join(&file.path)) {
                Ok(bytes) if check(file, &bytes).is_ok() => (false, bytes),
                _ => (true, fetch_listed(source, file)?),
            };
            let doc = parse::<IndexDoc>(path, &bytes)?;
            Ok((file, fresh, bytes, doc))
        })
        .collect::<Result<_, MirrorError>>()?;
    let docs: BTreeMap<PluginId, IndexDoc> =
        fetched.iter().map(|(_, _, _, doc)| (doc.id.clone(), doc.clone())).collect();
    let chosen = selection(&docs, options)?;
    for (file, fresh, bytes, _) in &fetched {
        if *fresh {
            write_file(&dest.join(&file.path), bytes)?;
            report.written += 1;
        }
    }
    let written: Vec<bool> = other_targets
        .par_iter()
        .map(|(_, file)| copy_listed(source, dest, file))
        .collect::<Result<_, MirrorError>>()?;
    report.written += written.iter().filter(|w| **w).count();
    report.targets = targets.len();

    // Blobs of the chosen plugins.
    let blobs: Vec<Listed> = chosen
        .iter()
        .filter_map(|id| docs.get(id))
        .flat_map(|doc| {
            doc.releases.iter().flat_map(move |r| {
                [&r.package, &r.envelope]
                    .into_iter()
                    .chain(r.deltas.iter().map(|d| &d.blob))
                    .map(move |b| blob_file(b, doc))
            })
        })
        .collect();
    let written: Vec<bool> =
        blobs.par_iter().map(|file| copy_listed(source, dest, file)).collect::<Result<_, MirrorError>>()?;
    report.blobs = blobs.len();
    report.blob_bytes = blobs.iter().filter_map(|b| b.length).sum();
    report.written += written.iter().filter(|w| **w).count();
    report.left_out = docs.len() - chosen.len();
    report.plugins = chosen;

    // The marker, then metadata: roots, delegated roles, top-level targets, snapshot,
    // timestamp last.
    let marker = dest.join(PARTIAL_MARKER);
    if options.only.is_some() {
        let mut bytes = serde_json::to_vec_pretty(&PartialMarker { plugins: report.plugins.clone() })
            .map_err(|e| MirrorError::Parse { path: PARTIAL_MARKER.into(), problem: e.to_string() })?;
        bytes.push(b'\n');
        write_file(&marker, &bytes)?;
    } else if marker.exists() {
        std::fs::remove_file(&marker).map_err(|e| FsError::new("deleting", &marker, e))?;
    }
    let mut ordered: Vec<(&str, &[u8])> = roots.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let (top, delegated): (Vec<_>, Vec<_>) = roles.iter().partition(|(role, ..)| role == "targets");
    ordered.extend(delegated.iter().chain(&top).map(|(_, file, bytes, _)| (file.path.as_str(), bytes.as_slice())));
    ordered.push((&snapshot_file.path, &snapshot_bytes));
    for (path, bytes) in &ordered {
        let target = dest.join(path);
        if std::fs::read(&target).is_ok_and(|existing| existing == *bytes) {
            continue;
        }
        write_file(&target, bytes)?;
        report.written += 1;
    }
    write_file(&dest.join(&timestamp_path), &timestamp_bytes)?;
    report.written += 1;
    report.metadata_files = ordered.len() + 1;
    // The unversioned copies of the snapshot and the top-level targets
    // (`crate::unversioned`), from the documents just checked, never the source's.
    if let Some((_, _, top_bytes, _)) = top.first() {
        report.written += crate::unversioned::write(dest, &snapshot_bytes, top_bytes)?.len();
    }
    // The index doc aliases (not signed; see `site::index_alias_path`): made from the
    // docs just checked, never copied from the source, whose aliases may be stale.
    let aliases: Vec<bool> = fetched
        .par_iter()
        .filter_map(|(file, _, bytes, doc)| {
            let target = site::hashed_target_path(&site::index_target(&doc.id), file.sha256.as_ref()?);
            let listed = file.path == format!("{}/{target}", site::TARGETS_DIR);
            listed.then(|| (site::index_alias_path(&doc.id), bytes))
        })
        .map(|(alias, bytes)| {
            let path = dest.join(site::TARGETS_DIR).join(alias);
            if std::fs::read(&path).is_ok_and(|existing| existing == *bytes) {
                return Ok(false);
            }
            write_file(&path, bytes).map(|()| true)
        })
        .collect::<Result<_, FsError>>()?;
    report.aliases = aliases.len();
    report.written += aliases.iter().filter(|w| **w).count();
    Ok(report)
}

/// `dest` as a `file://` URL a client can be pointed at.
pub fn file_url(dest: &Path) -> Result<String, FsError> {
    let absolute: PathBuf = std::path::absolute(dest).map_err(|e| FsError::new("resolving", dest, e))?;
    let text = absolute.to_string_lossy().replace('\\', "/");
    Ok(if text.starts_with('/') { format!("file://{text}") } else { format!("file:///{text}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(strsim_distance("acme.clock", "acme.clock"), 0);
        assert_eq!(strsim_distance("acme.clok", "acme.clock"), 1);
        assert_eq!(strsim_distance("acme.timer", "acme.clock"), 5);
    }
}
