//! The deltas a build publishes for each release.
//!
//! Owns which deltas exist: a release gets deltas from the [`DeltaPolicy::sources`]
//! releases before it (in version order), each kept only when it is worth it
//! ([`delta::worth_it`]). Deltas are made once, when their release is first published:
//! a release the previous site indexed already (same version, same signed manifest)
//! keeps exactly the deltas its published index doc lists, without reading a package,
//! so rebuilding costs nothing and a published delta never changes. Making one delta
//! is [`crate::delta`]'s job; listing them in the index doc and publishing their blobs
//! is [`super::documents`]'.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use semver::Version;
use trellis_schema::PluginId;
use trellis_schema::index::IndexDoc;

use super::BuildError;
use super::previous::PreviousSite;
use crate::delta::{self, DeltaPolicy, ReleaseFiles};
use crate::release::{Blob, BlobSource, PluginInput, ReleaseInput};
use crate::site;
use crate::tuf::BIN_PREFIX;

/// A delta to publish: from which release, and its blob.
#[derive(Clone, Debug)]
pub(super) struct DeltaOut {
    pub(super) from: Version,
    pub(super) blob: Blob,
}

/// The deltas of one plugin, by the release they lead to.
pub(super) type PluginDeltas = BTreeMap<Version, Vec<DeltaOut>>;

/// The index docs the previous site published for `plugins` (those that could have
/// deltas at all: two releases or more, with package bytes at hand), read through
/// the hash bins that sign them.
pub(super) fn previous_docs(
    previous: &PreviousSite,
    site_dir: &Path,
    plugins: &[PluginInput],
    bin_bits: u32,
) -> Result<BTreeMap<PluginId, IndexDoc>, BuildError> {
    let mut bins = BTreeMap::new();
    let mut docs = BTreeMap::new();
    let has_bytes = |r: &ReleaseInput| !matches!(r.package.source, BlobSource::InSite);
    for plugin in plugins.iter().filter(|p| p.releases.iter().filter(|r| has_bytes(r)).count() > 1) {
        let target = site::index_target(&plugin.id);
        let bin = site::bin_for_target(&target, bin_bits, BIN_PREFIX);
        if !bins.contains_key(&bin) {
            let role = previous.role(&bin)?;
            bins.insert(bin.clone(), role);
        }
        let Some(Some(role)) = bins.get(&bin) else { continue };
        let Some(file) = role.signed.targets.get(&target) else { continue };
        let Some(sha) = file.hashes.get("sha256").and_then(|h| h.parse().ok()) else { continue };
        let path = site::target_file(site_dir, &target, &sha);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(trellis_client::fs::FsError::new("reading", path, e).into()),
        };
        let doc: IndexDoc =
            serde_json::from_slice(&bytes).map_err(|e| BuildError::Site { path, reason: e.to_string() })?;
        docs.insert(plugin.id.clone(), doc);
    }
    Ok(docs)
}

/// The deltas of every release of `plugin`: carried over from `previous` for
/// releases published already, made for new ones.
pub(super) fn plugin_deltas(
    plugin: &PluginInput,
    previous: Option<&IndexDoc>,
    policy: &DeltaPolicy,
) -> Result<PluginDeltas, BuildError> {
    let mut out = PluginDeltas::new();
    if policy.sources == 0 {
        return Ok(out);
    }
    let mut files: BTreeMap<usize, Arc<ReleaseFiles>> = BTreeMap::new();
    for (index, release) in plugin.releases.iter().enumerate() {
        let version = &release.manifest.version;
        if let Some(published) = previous.and_then(|doc| doc.release(version))
            && published.manifest_sha256 == release.manifest_sha256
        {
            let kept: Vec<DeltaOut> = published
                .deltas
                .iter()
                .filter(|d| plugin.releases.iter().any(|r| r.manifest.version == d.from))
                .map(|d| DeltaOut {
                    from: d.from.clone(),
                    blob: Blob { sha256: d.blob.sha256, length: d.blob.length, source: BlobSource::InSite },
                })
                .collect();
            if !kept.is_empty() {
                out.insert(version.clone(), kept);
            }
            continue;
        }
        let first = index.saturating_sub(policy.sources as usize);
        let mut made = Vec::new();
        for source in first..index {
            let (Some(old), Some(new)) =
                (release_files(&mut files, plugin, source)?, release_files(&mut files, plugin, index)?)
            else {
                continue;
            };
            let (bytes, stats) = delta::make(&old, &new, policy)?;
            let worth = delta::worth_it(bytes.len() as u64, release.package.length, policy);
            tracing::debug!(
                plugin = %plugin.id, from = %old.manifest.version, to = %version, bytes = bytes.len(),
                package = release.package.length, copied = stats.copied, patched = stats.patched,
                literal = stats.literal, worth, "delta"
            );
            if worth {
                made.push(DeltaOut { from: old.manifest.version.clone(), blob: Blob::from_bytes(bytes) });
            }
        }
        if !made.is_empty() {
            out.insert(version.clone(), made);
        }
        // Packages older than the next release's sources are not needed again.
        files.retain(|&i, _| i + policy.sources as usize > index);
    }
    Ok(out)
}

/// The files of release `index`, read once; `None` when its package bytes are not at
/// hand (synthetic registries publish no package files).
fn release_files(
    cache: &mut BTreeMap<usize, Arc<ReleaseFiles>>,
    plugin: &PluginInput,
    index: usize,
) -> Result<Option<Arc<ReleaseFiles>>, BuildError> {
    if let Some(files) = cache.get(&index) {
        return Ok(Some(Arc::clone(files)));
    }
    let Some(release) = plugin.releases.get(index) else { return Ok(None) };
    let Some(bytes) = package_bytes(release)? else { return Ok(None) };
    let files = ReleaseFiles::read(&bytes, &release.manifest, release.manifest_sha256)?;
    let files = Arc::new(files);
    cache.insert(index, Arc::clone(&files));
    Ok(Some(files))
}

fn package_bytes(release: &ReleaseInput) -> Result<Option<Arc<[u8]>>, BuildError> {
    match &release.package.source {
        BlobSource::File(path) => std::fs::read(path)
            .map(|b| Some(b.into()))
            .map_err(|e| trellis_client::fs::FsError::new("reading", path, e).into()),
        BlobSource::Bytes(bytes) => Ok(Some(Arc::clone(bytes))),
        BlobSource::InSite => Ok(None),
    }
}
