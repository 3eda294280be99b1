//! Downloading and verifying releases before anything touches the plugins directory.
//!
//! Owns the chain of checks between "the resolver picked acme.clock 1.2.0" and "these
//! package bytes may be extracted": the package, its DSSE envelope and the publisher
//! record are TUF targets (length and hash signed by the registry); the envelope must
//! carry the publisher's signature ([`PublisherRecord::verify_release`]) over a
//! release manifest naming this plugin and version, whose digest the index doc
//! recorded and whose package digest is the blob's; finally the archive's structure and
//! entry set are checked against the signed manifest ([`Package::from_bytes`]).
//! Packages download in parallel; progress goes to the [`Reporter`].
//!
//! It does not extract (the lifecycle modules do, into the transaction's target
//! directory) and does not resolve.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use semver::Version;
use trellis_schema::dsse::Envelope;
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::publisher::PublisherRecord;
use trellis_schema::{PluginId, Sha256, VendorId};

use super::StoreError;
use super::source::{Remotes, publisher_target};
use crate::events::{Event, Reporter};
use crate::package::{Limits, Package};
use crate::resolve::ResolvedPlugin;
use crate::state::RegistryName;
use crate::transport::Progress;
use crate::trust::TargetInfo;

/// Name of the signed release envelope kept in every installed release directory, so
/// that `verify` can re-hash the files against the manifest the publisher signed.
pub const RELEASE_ENVELOPE_FILE: &str = "trellis-release.dsse";

/// Name of the publisher record kept beside [`RELEASE_ENVELOPE_FILE`]: the record the
/// envelope's signature was verified under at install, so that `verify` can re-check the
/// signature offline.
pub const PUBLISHER_RECORD_FILE: &str = "trellis-publisher.json";

/// A release whose package, signature and publisher all checked out.
#[derive(Debug)]
pub struct VerifiedRelease {
    /// What the resolver chose.
    pub resolved: ResolvedPlugin,
    /// The registry it comes from.
    pub registry: RegistryName,
    /// The manifest the publisher signed.
    pub manifest: ReleaseManifest,
    /// The envelope's bytes, as served (kept beside the installed files).
    pub envelope: Vec<u8>,
    /// The bytes of the publisher record the envelope was verified under, as served
    /// (kept beside the installed files).
    pub publisher_record: Arc<[u8]>,
    /// The opened package, structure and entry set checked.
    pub package: Package,
}

/// Turns transport progress (by URL) into [`Event::Downloading`] for known packages.
#[derive(Default)]
pub struct ProgressRelay {
    reporter: Mutex<Option<Arc<dyn Reporter>>>,
    watched: Mutex<Vec<(String, PluginId, Version)>>,
}

impl std::fmt::Debug for ProgressRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressRelay").finish_non_exhaustive()
    }
}

impl ProgressRelay {
    /// Sends events to `reporter` from now on.
    pub fn set_reporter(&self, reporter: Arc<dyn Reporter>) {
        *self.reporter.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reporter);
    }

    fn watch(&self, sha256: &Sha256, plugin: &PluginId, version: &Version) {
        self.watched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((
            sha256.to_string(),
            plugin.clone(),
            version.clone(),
        ));
    }

    fn report(&self, event: Event) {
        if let Some(reporter) = self.reporter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            reporter.report(event);
        }
    }
}

impl Progress for ProgressRelay {
    fn on_progress(&self, url: &str, received: u64, total: Option<u64>) {
        let found = self
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(hex, _, _)| url.contains(hex.as_str()))
            .map(|(_, plugin, version)| (plugin.clone(), version.clone()));
        if let Some((plugin, version)) = found {
            self.report(Event::Downloading { plugin, version, bytes_done: received, bytes_total: total });
        }
    }
}

fn target(remotes: &Remotes, registry: &RegistryName, path: &str, what: &str) -> Result<TargetInfo, StoreError> {
    remotes.target_info(registry, path)?.ok_or_else(|| StoreError::MissingTarget {
        registry: registry.clone(),
        target: path.to_owned(),
        what: what.to_owned(),
    })
}

/// The publisher records fetched so far, by registry and namespace: parsed, and the
/// bytes as served (kept beside each installed release).
type PublisherRecords = BTreeMap<(RegistryName, VendorId), (Arc<PublisherRecord>, Arc<[u8]>)>;

/// Downloads and verifies `plugins` (packages in parallel per registry).
pub fn download(
    remotes: &Remotes,
    plugins: &[ResolvedPlugin],
    relay: &ProgressRelay,
    reporter: &dyn Reporter,
) -> Result<Vec<VerifiedRelease>, StoreError> {
    let mut publishers: PublisherRecords = BTreeMap::new();
    let mut prepared = Vec::with_capacity(plugins.len());
    for plugin in plugins {
        let registry = plugin.registry.clone();
        let release = &plugin.release;
        let package = target(remotes, &registry, &release.package.path, "package")?;
        if package.sha256() != Some(release.package.sha256) || package.file.length != release.package.length {
            return Err(StoreError::Mismatch {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                what: "the package's signed target hash or length and its index doc entry".into(),
            });
        }
        let envelope = remotes.fetch(&registry, &release.envelope.path)?.ok_or_else(|| StoreError::MissingTarget {
            registry: registry.clone(),
            target: release.envelope.path.clone(),
            what: "developer signature envelope".into(),
        })?;
        let vendor = plugin.id.vendor_id();
        let (record, record_bytes) =
            match publishers.get(&(registry.clone(), vendor.clone())) {
                Some((record, bytes)) => (Arc::clone(record), Arc::clone(bytes)),
                None => {
                    let path = publisher_target(&vendor);
                    let bytes = remotes.fetch(&registry, &path)?.ok_or_else(|| StoreError::MissingTarget {
                        registry: registry.clone(),
                        target: path.clone(),
                        what: format!("publisher record of {vendor}"),
                    })?;
                    let record: PublisherRecord = serde_json::from_slice(&bytes).map_err(|e| {
                        StoreError::BadDocument { registry: registry.clone(), target: path, problem: e.to_string() }
                    })?;
                    let record = Arc::new(record);
                    let bytes: Arc<[u8]> = bytes.into();
                    publishers.insert((registry.clone(), vendor.clone()), (Arc::clone(&record), Arc::clone(&bytes)));
                    (record, bytes)
                }
            };
        let manifest = verify_envelope(plugin, &record, &envelope)?;
        relay.watch(&release.package.sha256, &plugin.id, &plugin.version);
        prepared.push((plugin, registry, package, manifest, envelope, record_bytes));
    }

    let mut by_registry: BTreeMap<RegistryName, Vec<usize>> = BTreeMap::new();
    for (index, (_, registry, ..)) in prepared.iter().enumerate() {
        by_registry.entry(registry.clone()).or_default().push(index);
    }
    let mut bytes: Vec<Option<Vec<u8>>> = (0..prepared.len()).map(|_| None).collect();
    for (registry, indices) in by_registry {
        let infos: Vec<TargetInfo> = indices.iter().map(|&i| prepared[i].2.clone()).collect();
        for &i in &indices {
            let (plugin, ..) = &prepared[i];
            reporter.report(Event::Downloading {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                bytes_done: 0,
                bytes_total: Some(plugin.release.package.length),
            });
        }
        let results = remotes.fetch_many(&registry, &infos)?;
        for (&i, result) in indices.iter().zip(results) {
            let (plugin, ..) = &prepared[i];
            let package = result.map_err(|source| StoreError::Download {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                source: Box::new(source),
            })?;
            reporter.report(Event::Downloading {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                bytes_done: package.len() as u64,
                bytes_total: Some(plugin.release.package.length),
            });
            bytes[i] = Some(package);
        }
    }

    let limits = Limits::default();
    let mut verified = Vec::with_capacity(prepared.len());
    for ((plugin, registry, _, manifest, envelope, publisher_record), package) in prepared.into_iter().zip(bytes) {
        reporter.report(Event::Verifying { plugin: plugin.id.clone(), version: plugin.version.clone() });
        let package = package.unwrap_or_default();
        let package = Package::from_bytes(package, &manifest, &limits).map_err(|source| StoreError::Package {
            plugin: plugin.id.clone(),
            version: plugin.version.clone(),
            source: Box::new(source),
        })?;
        verified.push(VerifiedRelease {
            resolved: plugin.clone(),
            registry,
            manifest,
            envelope,
            publisher_record,
            package,
        });
    }
    Ok(verified)
}

/// Checks the developer signature and that the manifest is the one the index doc names.
fn verify_envelope(
    plugin: &ResolvedPlugin,
    record: &PublisherRecord,
    bytes: &[u8],
) -> Result<ReleaseManifest, StoreError> {
    let mismatch = |what: &str| StoreError::Mismatch {
        plugin: plugin.id.clone(),
        version: plugin.version.clone(),
        what: what.to_owned(),
    };
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| StoreError::Signature {
        plugin: plugin.id.clone(),
        version: plugin.version.clone(),
        problem: format!("the envelope is not DSSE JSON: {e}"),
    })?;
    let manifest = record.verify_release(&envelope).map_err(|e| StoreError::Signature {
        plugin: plugin.id.clone(),
        version: plugin.version.clone(),
        problem: e.to_string(),
    })?;
    let payload = envelope.payload_bytes().map_err(|e| StoreError::Signature {
        plugin: plugin.id.clone(),
        version: plugin.version.clone(),
        problem: e.to_string(),
    })?;
    if Sha256::of(&payload) != plugin.release.manifest_sha256 {
        return Err(mismatch("the signed manifest and the digest in the index doc"));
    }
    if manifest.plugin_id != plugin.id || manifest.version != plugin.version {
        return Err(mismatch("the plugin id or version in the signed manifest"));
    }
    if manifest.package.sha256 != plugin.release.package.sha256
        || manifest.package.size != plugin.release.package.length
    {
        return Err(mismatch("the package digest in the signed manifest and the package blob"));
    }
    if let Some(reserved) =
        manifest.files.iter().find(|f| f.path == RELEASE_ENVELOPE_FILE || f.path == PUBLISHER_RECORD_FILE)
    {
        return Err(mismatch(&format!("the file list (it uses the reserved name {})", reserved.path)));
    }
    Ok(manifest)
}
