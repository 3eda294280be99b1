//! Making deltas: the file-level difference between two releases of a plugin, in the
//! format of [`trellis_schema::delta`].
//!
//! Owns choosing an operation per file of the new release (`copy` when the old
//! release has the same bytes anywhere, `patch` with bsdiff against the old file at
//! the same path when that is smaller than the compressed file, `literal` otherwise;
//! the content manifest is always a literal), normalising bsdiff's output to the
//! strict form clients accept, and deciding whether a delta is worth publishing
//! ([`DeltaPolicy`]). Output is deterministic: same packages, same bytes.
//!
//! It reads packages that [`crate::release`] checked already. Which releases get
//! deltas, reuse of published ones and publishing are [`crate::build`]'s; applying a
//! delta is the client's (`trellis_client::delta`).

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};
use trellis_schema::Sha256;
use trellis_schema::delta::{Compression, DataRange, DeltaFile, DeltaHeader, DeltaOp, encode};
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};

/// Which deltas a build publishes (`"deltas"` in `trellis-registry.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaPolicy {
    /// Deltas to each new release from this many releases before it (0 disables deltas).
    pub sources: u32,
    /// A delta is published only when it is smaller than this percentage of the
    /// package it saves downloading.
    pub max_percent: u32,
    /// Files larger than this are never patched (bsdiff needs ~17 bytes of memory
    /// per byte of the old file); they are copied or carried whole.
    pub max_patch_input: u64,
}

impl Default for DeltaPolicy {
    /// Deltas from the 2 previous releases, when under 60 % of the package; files up
    /// to 64 MiB are patched.
    fn default() -> Self {
        Self { sources: 2, max_percent: 60, max_patch_input: 64 << 20 }
    }
}

impl DeltaPolicy {
    /// Whether this is the default policy (left out of a written configuration).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Why a delta could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeltaBuildError {
    /// A package could not be read.
    #[error("{release}: reading the package for a delta: {reason}")]
    Package {
        /// `id version`.
        release: String,
        /// What went wrong.
        reason: String,
    },
    /// The header could not be written.
    #[error("{release}: writing the delta header: {reason}")]
    Encode {
        /// `id version`.
        release: String,
        /// What went wrong.
        reason: String,
    },
}

/// The files of one release, as the client has them installed.
#[derive(Debug)]
pub struct ReleaseFiles {
    /// The signed manifest.
    pub manifest: ReleaseManifest,
    /// SHA-256 of the manifest as signed.
    pub manifest_sha256: Sha256,
    /// Every file of the package, `trellis-manifest.json` included, by path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ReleaseFiles {
    /// Reads every file of `package` (a package [`crate::release`] checked: its entry
    /// set is the signed manifest's).
    pub fn read(package: &[u8], manifest: &ReleaseManifest, manifest_sha256: Sha256) -> Result<Self, DeltaBuildError> {
        let error = |reason: String| DeltaBuildError::Package { release: manifest.release_name(), reason };
        let mut archive = zip::ZipArchive::new(Cursor::new(package)).map_err(|e| error(e.to_string()))?;
        let mut files = BTreeMap::new();
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).map_err(|e| error(e.to_string()))?;
            if entry.is_dir() {
                continue;
            }
            let name = entry.name().map_err(|e| error(e.to_string()))?.into_owned();
            let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
            entry.read_to_end(&mut bytes).map_err(|e| error(format!("{name}: {e}")))?;
            files.insert(name, bytes);
        }
        Ok(Self { manifest: manifest.clone(), manifest_sha256, files })
    }
}

/// What a delta does, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Files copied.
    pub copied: usize,
    /// Files patched.
    pub patched: usize,
    /// Files carried whole.
    pub literal: usize,
}

/// The delta from `from` to `to`, and what it does.
pub fn make(
    from: &ReleaseFiles,
    to: &ReleaseFiles,
    policy: &DeltaPolicy,
) -> Result<(Vec<u8>, DeltaStats), DeltaBuildError> {
    let release = to.manifest.release_name();
    let encode_error = |reason: String| DeltaBuildError::Encode { release: release.clone(), reason };
    let mut by_hash: BTreeMap<Sha256, &str> = BTreeMap::new();
    for (path, bytes) in &from.files {
        if path != CONTENT_MANIFEST_PATH {
            by_hash.entry(Sha256::of(bytes)).or_insert(path);
        }
    }
    let mut stats = DeltaStats::default();
    let mut files = Vec::with_capacity(to.files.len());
    let mut data = Vec::new();
    let push = |data: &mut Vec<u8>, bytes: &[u8]| {
        let range = DataRange { offset: data.len() as u64, length: bytes.len() as u64 };
        data.extend_from_slice(bytes);
        range
    };
    for (path, bytes) in &to.files {
        let is_content_manifest = path == CONTENT_MANIFEST_PATH;
        if !is_content_manifest && let Some(source) = by_hash.get(&Sha256::of(bytes)) {
            stats.copied += 1;
            files.push(DeltaFile { path: path.clone(), op: DeltaOp::Copy { source: (*source).to_owned() } });
            continue;
        }
        let literal = deflate(bytes);
        let patch = match from.files.get(path) {
            Some(old) if !is_content_manifest && old.len() as u64 <= policy.max_patch_input => {
                bsdiff_strict(old, bytes).map(|p| deflate(&p)).filter(|p| p.len() < literal.len())
            }
            _ => None,
        };
        let op = match patch {
            Some(patch) => {
                stats.patched += 1;
                DeltaOp::Patch { source: path.clone(), data: push(&mut data, &patch) }
            }
            None => {
                stats.literal += 1;
                DeltaOp::Literal { data: push(&mut data, &literal) }
            }
        };
        files.push(DeltaFile { path: path.clone(), op });
    }
    let header = DeltaHeader {
        plugin_id: to.manifest.plugin_id.clone(),
        from: from.manifest.version.clone(),
        to: to.manifest.version.clone(),
        from_manifest_sha256: from.manifest_sha256,
        to_manifest_sha256: to.manifest_sha256,
        compression: Compression::Deflate,
        files,
    };
    let bytes = encode(&header, &data).map_err(|e| encode_error(e.to_string()))?;
    Ok((bytes, stats))
}

/// Whether a delta of `delta_len` bytes is worth publishing instead of a package of
/// `package_len` bytes.
pub fn worth_it(delta_len: u64, package_len: u64, policy: &DeltaPolicy) -> bool {
    u128::from(delta_len) * 100 < u128::from(package_len) * u128::from(policy.max_percent)
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(bytes.len() / 2), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// A bsdiff patch from `old` to `new` in the strict form clients accept: controls
/// that produce nothing are folded into the previous control's seek. `None` when the
/// patch cannot be put in that form (a leading empty control with a seek).
pub fn bsdiff_strict(old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    bsdiff::diff(old, new, &mut raw).ok()?;
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw.as_slice();
    let mut last_seek_at: Option<usize> = None;
    while !rest.is_empty() {
        let control = rest.get(..24)?;
        let word = |at: usize| control.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
        let (mix, copy, seek) = (word(0)?, word(8)?, word(16)?);
        let body = usize::try_from(mix.checked_add(copy)?).ok()?;
        let bytes = rest.get(24..24 + body)?;
        rest = &rest[24 + body..];
        if mix == 0 && copy == 0 {
            let at = last_seek_at?;
            let previous = u64::from_le_bytes(out.get(at..at + 8)?.try_into().ok()?);
            let sum = signed(previous).checked_add(signed(seek))?;
            out.get_mut(at..at + 8)?.copy_from_slice(&sign_magnitude(sum)?.to_le_bytes());
            continue;
        }
        out.extend_from_slice(&control[..16]);
        last_seek_at = Some(out.len());
        out.extend_from_slice(&control[16..24]);
        out.extend_from_slice(bytes);
    }
    Some(out)
}

fn signed(word: u64) -> i128 {
    let magnitude = i128::from(word & !(1 << 63));
    if word >> 63 == 0 { magnitude } else { -magnitude }
}

fn sign_magnitude(value: i128) -> Option<u64> {
    let magnitude = u64::try_from(value.unsigned_abs()).ok().filter(|m| m >> 63 == 0)?;
    Some(if value < 0 { magnitude | (1 << 63) } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect()
    }

    #[test]
    fn strict_patches_apply_with_the_client_patcher() {
        let old = pseudo_random(100_000, 1);
        let mut new = old.clone();
        new[5_000..5_050].fill(0);
        new.splice(60_000..60_000, pseudo_random(3_000, 2));
        new.truncate(90_000);
        for (old, new) in [(&old, &new), (&new, &old), (&Vec::new(), &new), (&old, &Vec::new())] {
            let patch = bsdiff_strict(old, new).unwrap();
            let rebuilt = trellis_client::delta::bspatch(old, &mut patch.as_slice(), new.len() as u64).unwrap();
            assert_eq!(&rebuilt, new);
        }
    }

    fn release(version: &str, files: &[(&str, Vec<u8>)]) -> ReleaseFiles {
        let entries = files
            .iter()
            .filter(|(p, _)| *p != CONTENT_MANIFEST_PATH)
            .map(|(p, b)| trellis_schema::manifest::FileEntry {
                path: (*p).into(),
                size: b.len() as u64,
                sha256: Sha256::of(b),
                executable: p.starts_with("bin/"),
            })
            .collect();
        let manifest = ReleaseManifest {
            format: trellis_schema::manifest::ManifestFormat::CURRENT,
            plugin_id: "acme.clock".parse().unwrap(),
            version: version.parse().unwrap(),
            package: trellis_schema::manifest::PackageDigest { sha256: Sha256::of(version.as_bytes()), size: 1 },
            files: entries,
            permissions: vec![],
            host: crate::fixture::host(),
            platforms: vec![],
            channel: trellis_schema::plugin::Channel::Stable,
            dependencies: vec![],
        };
        let files = files.iter().map(|(p, b)| ((*p).to_owned(), b.clone())).collect();
        ReleaseFiles { manifest_sha256: Sha256::of(version.as_bytes()), manifest, files }
    }

    #[test]
    fn copies_moved_files_patches_changed_ones_and_carries_new_ones_whole() {
        let binary = pseudo_random(50_000, 3);
        let mut changed = binary.clone();
        changed[1_000..1_010].fill(0);
        let old = release(
            "1.0.0",
            &[
                ("LICENSE", b"MIT\n".to_vec()),
                ("bin/any/run", binary),
                ("docs/old-name.md", b"# docs\n".to_vec()),
                (CONTENT_MANIFEST_PATH, b"{}".to_vec()),
            ],
        );
        let new = release(
            "1.1.0",
            &[
                ("LICENSE", b"MIT\n".to_vec()),
                ("bin/any/run", changed),
                ("docs/new-name.md", b"# docs\n".to_vec()),
                ("docs/added.md", pseudo_random(300, 9)),
                (CONTENT_MANIFEST_PATH, b"{\"v\":2}".to_vec()),
            ],
        );
        let (bytes, stats) = make(&old, &new, &DeltaPolicy::default()).unwrap();
        assert_eq!(stats, DeltaStats { copied: 2, patched: 1, literal: 2 });
        let blob = trellis_schema::delta::DeltaBlob::parse(&bytes, &Default::default()).unwrap();
        let ops: Vec<(&str, &str, Option<&str>)> =
            blob.header.files.iter().map(|f| (f.path.as_str(), f.op.kind(), f.op.source())).collect();
        assert_eq!(
            ops,
            [
                ("LICENSE", "copy", Some("LICENSE")),
                ("bin/any/run", "patch", Some("bin/any/run")),
                ("docs/added.md", "literal", None),
                ("docs/new-name.md", "copy", Some("docs/old-name.md")),
                (CONTENT_MANIFEST_PATH, "literal", None),
            ]
        );
        assert!(bytes.len() < 2_000, "{} bytes", bytes.len());
        // Same inputs, same bytes.
        assert_eq!(make(&old, &new, &DeltaPolicy::default()).unwrap().0, bytes);
        // Files over the patch limit are carried whole.
        let small = DeltaPolicy { max_patch_input: 1_000, ..DeltaPolicy::default() };
        assert_eq!(make(&old, &new, &small).unwrap().1, DeltaStats { copied: 2, patched: 0, literal: 3 });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn strict_patches_rebuild_any_edit(
            old in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2_000),
            edits in proptest::collection::vec((0usize..2_000, proptest::prelude::any::<u8>()), 0..20),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
        ) {
            let mut new = old.clone();
            for (at, byte) in edits {
                if let Some(slot) = new.get_mut(at) {
                    *slot = byte;
                }
            }
            new.extend_from_slice(&tail);
            let patch = bsdiff_strict(&old, &new).unwrap();
            let rebuilt = trellis_client::delta::bspatch(&old, &mut patch.as_slice(), new.len() as u64).unwrap();
            proptest::prop_assert_eq!(rebuilt, new);
        }
    }

    #[test]
    fn sign_magnitude_round_trips_and_refuses_overflow() {
        for value in [0i128, 1, -1, 12_345, -(1 << 40)] {
            assert_eq!(signed(sign_magnitude(value).unwrap()), value);
        }
        assert_eq!(sign_magnitude(1 << 63), None);
    }

    #[test]
    fn worth_it_compares_with_the_configured_percentage() {
        let policy = DeltaPolicy::default();
        assert!(worth_it(59, 100, &policy));
        assert!(!worth_it(60, 100, &policy));
        assert!(!worth_it(u64::MAX, u64::MAX, &policy));
    }
}
