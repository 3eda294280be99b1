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
use std::sync::Arc;

use rayon::prelude::*;
use semver::Version;
use trellis_schema::index::IndexDoc;

use super::BuildError;
use crate::delta::{self, DeltaPolicy, ReleaseFiles};
use crate::release::{Blob, BlobSource, PluginInput, ReleaseInput};

/// A delta to publish: from which release, and its blob.
#[derive(Clone, Debug)]
pub(super) struct DeltaOut {
    pub(super) from: Version,
    pub(super) blob: Blob,
}

/// The deltas of one plugin, by the release they lead to.
pub(super) type PluginDeltas = BTreeMap<Version, Vec<DeltaOut>>;

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
        if first == index {
            continue;
        }
        let Some(new) = release_files(&mut files, plugin, index)? else { continue };
        let mut sources = Vec::new();
        for source in first..index {
            if let Some(old) = release_files(&mut files, plugin, source)? {
                sources.push(old);
            }
        }
        // The deltas of one release from its sources are made in parallel on rayon's
        // pool (as many threads as cores, shared with the other plugins' builds).
        let made: Vec<Option<DeltaOut>> = sources
            .par_iter()
            .map(|old| {
                let (bytes, stats) = delta::make(old, &new, policy)?;
                let worth = delta::worth_it(bytes.len() as u64, release.package.length, policy);
                tracing::debug!(
                    plugin = %plugin.id, from = %old.manifest.version, to = %version, bytes = bytes.len(),
                    package = release.package.length, copied = stats.copied, patched = stats.patched,
                    literal = stats.literal, worth, "delta"
                );
                Ok::<_, BuildError>(
                    worth.then(|| DeltaOut { from: old.manifest.version.clone(), blob: Blob::from_bytes(bytes) }),
                )
            })
            .collect::<Result<_, _>>()?;
        let made: Vec<DeltaOut> = made.into_iter().flatten().collect();
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
