//! The documents and blobs a build publishes.
//!
//! Owns the index doc of a plugin and the entries (path, SHA-256, length, where the
//! bytes come from) of every file a plugin contributes: the index doc, a TUF target,
//! and the blobs it lists (packages, envelopes, deltas), which are not TUF targets
//! but are vouched for by the doc's [`BlobRef`]s (see [`crate::tuf`]). Every entry
//! is derived from the release's signed manifest, and checked to agree with it before
//! it is written. Which bin signs
//! the doc is [`super::plan`]'s; writing the files is [`super::write`]'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Map;
use trellis_schema::Sha256;
use trellis_schema::index::{BlobRef, DeltaRef, IndexDoc, IndexRelease};
use trellis_schema::tuf::TargetFile;

use super::BuildError;
use super::deltas::PluginDeltas;
use crate::release::{BlobSource, PluginInput};
use crate::site;

/// What a file of the site is made from.
pub(super) enum Content {
    Bytes(Arc<[u8]>),
    Copy(PathBuf),
}

/// A file to publish under `targets/`: a TUF target or a blob.
pub(super) struct TargetOut {
    pub(super) target: String,
    pub(super) length: u64,
    pub(super) sha256: Sha256,
    pub(super) content: Option<Content>,
}

pub(super) fn target_file(sha256: &Sha256, length: u64) -> TargetFile {
    TargetFile {
        length,
        hashes: BTreeMap::from([("sha256".to_owned(), sha256.to_hex())]),
        custom: None,
        extra: Map::new(),
    }
}

pub(super) fn bytes_target(target: String, bytes: Vec<u8>) -> TargetOut {
    let sha256 = Sha256::of(&bytes);
    hashed_target(target, bytes, sha256)
}

/// [`bytes_target`] of bytes whose SHA-256 is known (`sha256`).
pub(super) fn hashed_target(target: String, bytes: Vec<u8>, sha256: Sha256) -> TargetOut {
    TargetOut { length: bytes.len() as u64, target, sha256, content: Some(Content::Bytes(bytes.into())) }
}

/// The index doc of one plugin, without deltas.
pub fn index_doc(plugin: &PluginInput) -> IndexDoc {
    index_doc_with(plugin, &PluginDeltas::new())
}

/// The index doc of one plugin, listing `deltas`.
pub(super) fn index_doc_with(plugin: &PluginInput, deltas: &PluginDeltas) -> IndexDoc {
    let releases = plugin
        .releases
        .iter()
        .map(|r| {
            let m = &r.manifest;
            IndexRelease {
                version: m.version.clone(),
                channel: m.channel,
                dependencies: m.dependencies.clone(),
                host: m.host.clone(),
                platforms: m.platforms.clone(),
                yanked: r.yanked,
                rollout: r.rollout,
                permissions: m.permissions.clone(),
                package: BlobRef {
                    path: site::package_target(&plugin.id, &m.version),
                    sha256: r.package.sha256,
                    length: r.package.length,
                },
                envelope: BlobRef {
                    path: site::envelope_target(&plugin.id, &m.version),
                    sha256: r.envelope.sha256,
                    length: r.envelope.length,
                },
                manifest_sha256: r.manifest_sha256,
                unpacked_size: m.unpacked_size(),
                deltas: deltas
                    .get(&m.version)
                    .into_iter()
                    .flatten()
                    .map(|d| DeltaRef {
                        from: d.from.clone(),
                        blob: BlobRef {
                            path: site::delta_target(&plugin.id, &d.from, &m.version),
                            sha256: d.blob.sha256,
                            length: d.blob.length,
                        },
                    })
                    .collect(),
                min_client_version: r.min_client_version.clone(),
                pricing: r.pricing.clone(),
                analysis: r.analysis.clone(),
            }
        })
        .collect();
    let name = plugin.releases.last().map(|r| r.name.clone()).unwrap_or_default();
    IndexDoc { id: plugin.id.clone(), name, releases, prefetch: Vec::new() }
}

/// Refuses an index doc whose entries say something else than the signed manifests
/// they were derived from: the signed manifest is the only authority, and a client
/// refuses a release whose entry disagrees with it.
fn check_agrees(plugin: &PluginInput, doc: &IndexDoc) -> Result<(), BuildError> {
    for (release, entry) in plugin.releases.iter().zip(&doc.releases) {
        if let Some(d) = release.manifest.index_disagreement(entry) {
            return Err(BuildError::IndexDisagrees {
                release: release.manifest.release_name(),
                field: d.field,
                index: d.index,
                signed: d.signed,
            });
        }
    }
    Ok(())
}

/// The files one plugin contributes to the site.
pub(super) struct PluginFiles {
    /// Its index doc: the only one a bin signs.
    pub(super) doc: TargetOut,
    /// The blobs the doc lists (packages, envelopes, deltas), in that order per release.
    pub(super) blobs: Vec<TargetOut>,
}

/// The files of `plugin`: its index doc (listing `deltas` and the prefetch hint
/// `prefetch`) and the blobs it lists.
pub(super) fn plugin_files(
    plugin: &PluginInput,
    deltas: &PluginDeltas,
    prefetch: Vec<trellis_schema::PluginId>,
) -> Result<PluginFiles, BuildError> {
    let doc = IndexDoc { prefetch, ..index_doc_with(plugin, deltas) };
    check_agrees(plugin, &doc)?;
    let doc = serde_json::to_vec(&doc).map_err(|e| BuildError::Trust(format!("index doc of {}: {e}", plugin.id)))?;
    let doc = bytes_target(site::index_target(&plugin.id), doc);
    let mut out = Vec::with_capacity(2 * plugin.releases.len());
    for release in &plugin.releases {
        let version = &release.manifest.version;
        let blobs = [
            (site::package_target(&plugin.id, version), &release.package),
            (site::envelope_target(&plugin.id, version), &release.envelope),
        ];
        let delta_blobs = deltas
            .get(version)
            .into_iter()
            .flatten()
            .map(|d| (site::delta_target(&plugin.id, &d.from, version), &d.blob));
        for (target, blob) in blobs.into_iter().chain(delta_blobs) {
            let content = match &blob.source {
                BlobSource::File(path) => Some(Content::Copy(path.clone())),
                BlobSource::Bytes(bytes) => Some(Content::Bytes(bytes.clone())),
                BlobSource::InSite => None,
            };
            out.push(TargetOut { target, length: blob.length, sha256: blob.sha256, content });
        }
    }
    Ok(PluginFiles { doc, blobs: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthPlugin, SynthRelease, plugin_input};

    fn plugin() -> PluginInput {
        let dependency = serde_json::from_value(serde_json::json!({"id": "acme.base", "version_requirement": "^1"}));
        plugin_input(SynthPlugin {
            id: "acme.clock".parse().unwrap(),
            releases: vec![SynthRelease {
                version: semver::Version::new(1, 0, 0),
                channel: trellis_schema::plugin::Channel::Stable,
                dependencies: vec![dependency.unwrap()],
                yanked: false,
            }],
        })
    }

    #[test]
    fn index_entries_are_derived_from_and_agree_with_the_signed_manifests() {
        let plugin = plugin();
        let doc = index_doc(&plugin);
        assert_eq!(doc.releases[0].dependencies, plugin.releases[0].manifest.dependencies);
        assert!(check_agrees(&plugin, &doc).is_ok());
        assert!(plugin_files(&plugin, &PluginDeltas::new(), Vec::new()).is_ok());
    }

    #[test]
    fn refuses_an_index_doc_that_disagrees_with_a_signed_manifest() {
        let plugin = plugin();
        let mut doc = index_doc(&plugin);
        doc.releases[0].dependencies.clear();
        let error = check_agrees(&plugin, &doc).unwrap_err().to_string();
        assert_eq!(
            error,
            "acme.clock 1.0.0: the index doc would list dependencies [] but the developer signed [acme.base ^1]; not written"
        );
    }
}
