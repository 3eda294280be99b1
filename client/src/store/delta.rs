//! Choosing a delta for an update, and applying it with the full package as fallback.
//!
//! Owns the store's side of delta updates: which installed release a delta may start
//! from ([`DeltaBases`]), whether the verified index doc lists a delta from it
//! (`candidate`; the delta is a blob downloaded by that listing's length and SHA-256,
//! like a package, see [`super::fetch`]), and applying the downloaded blob into a
//! staging directory (`apply`). Every way a delta can fail
//! (installed files changed, delta missing or refused by its listed hash, bad format,
//! a file that does not match the signed manifest) yields a reason; the caller
//! ([`super::fetch`]) reports it and downloads the full package instead.
//!
//! The format and its checks are [`crate::delta`]'s; signatures were checked by
//! [`super::fetch`] before a delta is even considered.

use std::collections::BTreeMap;
use std::path::PathBuf;

use semver::Version;
use serde::Serialize;
use trellis_schema::delta::DeltaLimits;
use trellis_schema::dsse::Envelope;
use trellis_schema::index::DeltaRef;
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::{PluginId, Sha256};

use super::Store;
use super::fetch::RELEASE_ENVELOPE_FILE;
use super::source::blob_info;
use super::verify::check_release_dir;
use crate::delta::{self, Base, Staged, Target};
use crate::resolve::ResolvedPlugin;
use crate::state::RegistryName;
use crate::trust::TargetInfo;

/// An installed release a delta may start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaBase {
    /// The registry it was installed from.
    pub registry: RegistryName,
    /// The active release.
    pub version: Version,
    /// Its directory.
    pub dir: PathBuf,
}

/// Where deltas may start from (the active release of every installed plugin) and
/// where their output is staged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaBases {
    /// Bases by plugin.
    pub bases: BTreeMap<PluginId, DeltaBase>,
    /// Directory for staging rebuilt releases, on the file system of the plugins
    /// directory (`cache/delta-staging` in the data dir). Not inside a plugin's
    /// directory: activation deletes what it does not know there.
    pub staging: PathBuf,
}

/// How a release's files were obtained, for reports ("delta, 12 KB instead of 340 KB").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The plugin.
    pub plugin: PluginId,
    /// The release.
    pub version: Version,
    /// The release the delta started from; `None` when the package was downloaded.
    pub delta_from: Option<Version>,
    /// Bytes downloaded for the release's files (the delta, or the package; with a
    /// failed delta, both).
    pub bytes: u64,
    /// Size of the full package.
    pub package_bytes: u64,
}

/// A delta the verified index doc lists, from the installed release, with that release's
/// manifest.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) delta: DeltaRef,
    pub(super) info: TargetInfo,
    pub(super) base: DeltaBase,
    base_manifest: ReleaseManifest,
    base_manifest_sha256: Sha256,
}

impl Store {
    /// The active release of every installed plugin, as delta bases, and an empty
    /// staging directory (what is left there is from a run that crashed: the store
    /// holds the data-dir lock, so no other process is using it).
    pub(crate) fn delta_bases(&self) -> Result<DeltaBases, crate::fs::FsError> {
        let bases = self
            .state()
            .plugins()
            .iter()
            .map(|(id, plugin)| {
                let version = plugin.active.version.clone();
                let dir = self.data_dir().release_dir(id, &version);
                (id.clone(), DeltaBase { registry: plugin.registry.clone(), version, dir })
            })
            .collect();
        let staging = self.data_dir().cache_dir().join("delta-staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| crate::fs::FsError::new("emptying", &staging, e))?;
        }
        Ok(DeltaBases { bases, staging })
    }
}

/// The delta to use for `plugin`, if its index entry lists one from the installed
/// release of the same registry. `Ok(None)`: no delta applies (nothing to report);
/// `Err(reason)`: one is listed but cannot be used.
pub(super) fn candidate(
    plugin: &ResolvedPlugin,
    registry: &RegistryName,
    bases: &DeltaBases,
) -> Result<Option<Candidate>, String> {
    let Some(base) = bases.bases.get(&plugin.id).filter(|b| &b.registry == registry) else { return Ok(None) };
    let Some(delta) = plugin.release.deltas.iter().find(|d| d.from == base.version) else { return Ok(None) };
    let info = blob_info(&plugin.id, &delta.blob);
    let problems = check_release_dir(&base.dir).map_err(|e| e.to_string())?;
    if let Some(problem) = problems.first() {
        return Err(format!("the installed {} {} does not verify ({problem})", plugin.id, base.version));
    }
    let (base_manifest, base_manifest_sha256) = kept_manifest(&base.dir)?;
    Ok(Some(Candidate { delta: delta.clone(), info, base: base.clone(), base_manifest, base_manifest_sha256 }))
}

/// The signed manifest kept in an installed release's directory (the envelope was
/// verified when the release was installed) and the SHA-256 of its payload.
pub(super) fn kept_manifest(dir: &std::path::Path) -> Result<(ReleaseManifest, Sha256), String> {
    let path = dir.join(RELEASE_ENVELOPE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let envelope: Envelope =
        trellis_schema::json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let payload = envelope.payload_bytes().map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest = trellis_schema::json::from_slice(&payload).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((manifest, Sha256::of(&payload)))
}

/// Applies the downloaded delta into a new directory inside `staging`; every file is checked against `manifest` (signed, verified).
pub(super) fn apply(
    candidate: &Candidate,
    bytes: &[u8],
    manifest: &ReleaseManifest,
    manifest_sha256: Sha256,
    staging: &std::path::Path,
) -> Result<Staged, String> {
    crate::fs::create_dir_all(staging).map_err(|e| e.to_string())?;
    delta::apply(
        bytes,
        Base {
            dir: &candidate.base.dir,
            manifest: &candidate.base_manifest,
            manifest_sha256: candidate.base_manifest_sha256,
        },
        Target { manifest, manifest_sha256 },
        staging,
        &DeltaLimits::default(),
    )
    .map_err(|e| e.to_string())
}
