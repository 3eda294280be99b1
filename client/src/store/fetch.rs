//! Downloading and verifying releases before anything touches the plugins directory.
//!
//! Owns the chain of checks between "the resolver picked acme.clock 1.2.0" and "these
//! package bytes may be extracted", in two steps:
//!
//! 1. [`verify_signed`], before anything is asked or opened: the small DSSE
//!    envelopes (blobs whose path, length and SHA-256 the release's entry in the index
//!    doc lists) are fetched in parallel and each must carry the publisher's signature
//!    ([`PublisherRecord::verify_release`], the record being the head of its chain, a
//!    TUF target verified from the version pinned here, [`super::publishers`]) over a release manifest naming this plugin and
//!    version, whose digest the index doc recorded and whose package digest is the
//!    package blob's. The index entry must then say what the developer signed about
//!    permissions, dependencies, channel, host requirement and platforms
//!    ([`ReleaseManifest::index_disagreement`]); otherwise the release is refused
//!    naming the field and both values ([`StoreError::IndexDisagrees`]): the index
//!    doc is signed only by the registry's online keys, the manifest by the developer.
//!    The result, [`SignedRelease`]s, is what consent is disclosed from
//!    (`Store::collect_consent`) and what the update check decides on.
//! 2. [`download`]: the packages (or deltas, [`super::delta`], with the package as
//!    fallback) in parallel, each archive's structure and entry set checked against
//!    the signed manifest ([`Package::from_bytes`]); progress goes to the [`Reporter`].
//!
//! The bytes of a new plugin's package may arrive earlier: when consent is given in
//! advance (`--yes`), an install starts their download into the verified cache as
//! soon as resolution is done ([`download_new_packages_behind`]), so it shares the
//! round trip of the envelopes and publisher records step 1 reads. That changes only when bytes arrive: they are
//! checked against the index doc's length and SHA-256 like any blob, and nothing is
//! opened before step 1 passed and the user consented.
//!
//! **Why a blob needs no TUF target of its own.** The index doc came through
//! [`crate::trust`]: a target of a hash bin, verified by length and SHA-256 under the
//! bins role, the snapshot and a fresh timestamp. Its
//! [`BlobRef`](trellis_schema::index::BlobRef)s are therefore signed
//! data, and a blob downloaded with [`TargetInfo::vouched_by`] is checked exactly like
//! a target (capped at the listed length while streaming, then length and SHA-256;
//! same mirrors, same verified cache). So it has the assurance a TUF target has: TUF's
//! guarantee carried one signed hash further, as PEP 458's simple index does for
//! distributions. Registries sign only index docs in their bins, which keeps the bins
//! a cold install must fetch small.
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
use super::delta::{self, DeltaBases, Transfer};
use super::source::{Remotes, blob_info};
use crate::delta::Staged;
use crate::events::{Event, Reporter};
use crate::package::{Limits, Package};
use crate::resolve::ResolvedPlugin;
use crate::state::RegistryName;
use crate::transport::Progress;
use crate::trust::{TargetInfo, TrustError};

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
    /// The release's files: the checked package, or the files a delta rebuilt.
    pub content: ReleaseContent,
    /// What was downloaded for it.
    pub transfer: Transfer,
}

/// The files of a verified release, ready to be placed.
#[derive(Debug)]
pub enum ReleaseContent {
    /// The package, structure and entry set checked; extraction checks every file.
    Package(Package),
    /// Files rebuilt from a delta, every one checked against the signed manifest,
    /// staged in the data dir.
    Staged(Staged),
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

/// The publisher records fetched so far, by registry and namespace: parsed, and the
/// bytes as served (kept beside each installed release).
type PublisherRecords = BTreeMap<(RegistryName, VendorId), (Arc<PublisherRecord>, Arc<[u8]>)>;

/// A release whose developer signature verified under its publisher record, and whose
/// index entry agrees with the signed manifest: what consent is disclosed from, before
/// any package is downloaded ([`verify_signed`]).
#[derive(Clone, Debug)]
pub struct SignedRelease {
    /// What the resolver chose.
    pub resolved: ResolvedPlugin,
    /// The registry it comes from.
    pub registry: RegistryName,
    /// The manifest the publisher signed: the only authority for its permissions,
    /// dependencies, channel, host requirement, platforms and files.
    pub manifest: ReleaseManifest,
    /// The envelope's bytes, as served (kept beside the installed files).
    pub envelope: Vec<u8>,
    /// The bytes of the publisher record the envelope was verified under, as served.
    pub publisher_record: Arc<[u8]>,
}

/// Fetches the small signed envelopes of `plugins` (in parallel per registry) and
/// their publisher records, and verifies each: the developer signature under the
/// record, the manifest digest, id, version and package digest the index doc lists,
/// and that the index entry says what the developer signed about permissions,
/// dependencies, channel, host requirement and platforms
/// ([`StoreError::IndexDisagrees`] otherwise). Nothing is asked or downloaded for a
/// release before this passed.
pub fn verify_signed(remotes: &Remotes, plugins: &[ResolvedPlugin]) -> Result<Vec<SignedRelease>, StoreError> {
    let (signed, pins) = verify_signed_unpinned(remotes, plugins)?;
    // The publishers' pins advance together, once every release verified: two
    // barriers for the install, not two per publisher.
    super::publishers::write_pins(pins)?;
    Ok(signed)
}

/// [`verify_signed`] without writing the publishers' pins: the releases, and the pins
/// to advance to the records they were verified under, for the caller to write (a cold
/// install writes them with its commit, [`crate::activate::Batch::commit_with`]).
pub(crate) fn verify_signed_unpinned(
    remotes: &Remotes,
    plugins: &[ResolvedPlugin],
) -> Result<(Vec<SignedRelease>, Vec<super::publishers::PinAdvance>), StoreError> {
    let mut by_registry: BTreeMap<&RegistryName, Vec<usize>> = BTreeMap::new();
    for (i, plugin) in plugins.iter().enumerate() {
        by_registry.entry(&plugin.registry).or_default().push(i);
    }
    let mut envelopes: Vec<Option<Vec<u8>>> = (0..plugins.len()).map(|_| None).collect();
    for (registry, indices) in by_registry {
        let infos: Vec<TargetInfo> =
            indices.iter().map(|&i| blob_info(&plugins[i].id, &plugins[i].release.envelope)).collect();
        let results = remotes.fetch_many(registry, &infos)?;
        for (&i, result) in indices.iter().zip(results) {
            let plugin = &plugins[i];
            envelopes[i] = Some(result.map_err(|source| StoreError::EnvelopeDownload {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                registry: registry.clone(),
                source: Box::new(source),
            })?);
        }
    }
    let mut publishers: PublisherRecords = BTreeMap::new();
    let mut pins = Vec::new();
    let mut signed = Vec::with_capacity(plugins.len());
    for (plugin, envelope) in plugins.iter().zip(envelopes) {
        let Some(envelope) = envelope else {
            return Err(StoreError::MissingTarget {
                registry: plugin.registry.clone(),
                target: plugin.release.envelope.path.clone(),
                what: "signed envelope".into(),
            });
        };
        let (record, record_bytes) =
            publisher_record(remotes, &mut publishers, &mut pins, &plugin.registry, &plugin.id)?;
        let manifest = verify_envelope(plugin, &record, &envelope)?;
        if let Some(disagreement) = manifest.index_disagreement(&plugin.release) {
            return Err(StoreError::IndexDisagrees {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                registry: plugin.registry.clone(),
                disagreement: Box::new(disagreement),
            });
        }
        signed.push(SignedRelease {
            resolved: plugin.clone(),
            registry: plugin.registry.clone(),
            manifest,
            envelope,
            publisher_record: record_bytes,
        });
    }
    Ok((signed, pins))
}

/// The publisher record of `plugin`'s namespace in `registry` (memoised in `records`):
/// the one place a record is fetched for verifying releases. The pin to advance goes
/// to `pins`, for the caller to write with the others.
fn publisher_record(
    remotes: &Remotes,
    records: &mut PublisherRecords,
    pins: &mut Vec<super::publishers::PinAdvance>,
    registry: &RegistryName,
    plugin: &PluginId,
) -> Result<(Arc<PublisherRecord>, Arc<[u8]>), StoreError> {
    let vendor = plugin.vendor_id();
    if let Some((record, bytes)) = records.get(&(registry.clone(), vendor.clone())) {
        return Ok((Arc::clone(record), Arc::clone(bytes)));
    }
    let ((record, bytes), pin) = super::publishers::verify_record(remotes, registry, &vendor)?;
    pins.extend(pin);
    records.insert((registry.clone(), vendor), (Arc::clone(&record), Arc::clone(&bytes)));
    Ok((record, bytes))
}

/// Starts downloading the packages of the releases of `plugins` that are new to the
/// data dir (not in `installed`: an update may take a delta instead) into the verified
/// cache, while [`verify_signed`] checks their signatures: the length and SHA-256 of
/// each come from its verified index doc, so the bytes are checked as any target's,
/// and nothing is opened, extracted or activated before [`download`], which runs only
/// after every check and the user's consent. Called only when consent is given in
/// advance ([`super::Consent::agrees_in_advance`]): a user who refuses has had nothing
/// downloaded. A refused install leaves verified blobs in the cache, nothing else.
pub fn download_new_packages_behind(
    remotes: &Remotes,
    plugins: &[ResolvedPlugin],
    installed: &BTreeMap<PluginId, Version>,
) {
    let mut by_registry: BTreeMap<&RegistryName, Vec<TargetInfo>> = BTreeMap::new();
    for plugin in plugins.iter().filter(|p| !installed.contains_key(&p.id)) {
        by_registry.entry(&plugin.registry).or_default().push(blob_info(&plugin.id, &plugin.release.package));
    }
    for (registry, infos) in by_registry {
        remotes.download_behind(registry, infos);
    }
}

/// Downloads the packages of `releases` (verified by [`verify_signed`]; in parallel per
/// registry) and opens each against its signed manifest. A release whose installed
/// release (in `bases`) is the source of a delta its verified index doc lists gets the
/// delta instead of its package, applied into `bases.staging`; when that fails for any
/// reason, an [`Event::DeltaFallback`] says why and the package is downloaded as usual.
pub fn download(
    remotes: &Remotes,
    releases: Vec<SignedRelease>,
    relay: &ProgressRelay,
    reporter: &dyn Reporter,
    bases: &DeltaBases,
) -> Result<Vec<VerifiedRelease>, StoreError> {
    let mut prepared = Vec::with_capacity(releases.len());
    for signed in releases {
        let plugin = &signed.resolved;
        let release = &plugin.release;
        let package = blob_info(&plugin.id, &release.package);
        let candidate = match delta::candidate(plugin, &signed.registry, bases) {
            Ok(candidate) => candidate,
            Err(reason) => {
                fallback(reporter, plugin, reason);
                None
            }
        };
        match &candidate {
            Some(c) => {
                relay.watch(&c.delta.blob.sha256, &plugin.id, &plugin.version);
                reporter.report(Event::Delta {
                    plugin: plugin.id.clone(),
                    version: plugin.version.clone(),
                    from: c.delta.from.clone(),
                    delta_bytes: c.delta.blob.length,
                    package_bytes: release.package.length,
                });
            }
            None => relay.watch(&release.package.sha256, &plugin.id, &plugin.version),
        }
        prepared.push(Prepared { package, signed, candidate });
    }

    // First round: each release's delta or package.
    let first: Vec<(usize, TargetInfo)> = prepared
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.candidate.as_ref().map_or_else(|| p.package.clone(), |c| c.info.clone())))
        .collect();
    let mut bytes = fetch_all(remotes, &prepared, &first, reporter)?;
    let mut contents: Vec<Option<ReleaseContent>> = (0..prepared.len()).map(|_| None).collect();
    let mut downloaded: Vec<u64> = vec![0; prepared.len()];
    let mut second = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let result = bytes[i].take().unwrap_or(Err(TrustError::NotLoaded("the download")));
        let plugin = &p.signed.resolved;
        let Some(candidate) = &p.candidate else {
            contents[i] = Some(open_downloaded(p, result, &mut downloaded[i])?);
            continue;
        };
        let staged = result.map_err(|e| format!("downloading the delta failed: {e}")).and_then(|delta| {
            downloaded[i] += delta.len() as u64;
            reporter.report(Event::Verifying { plugin: plugin.id.clone(), version: plugin.version.clone() });
            delta::apply(candidate, &delta, &p.signed.manifest, plugin.release.manifest_sha256, &bases.staging)
        });
        match staged {
            Ok(staged) => contents[i] = Some(ReleaseContent::Staged(staged)),
            Err(reason) => {
                fallback(reporter, plugin, reason);
                relay.watch(&plugin.release.package.sha256, &plugin.id, &plugin.version);
                second.push((i, p.package.clone()));
            }
        }
    }

    // Second round: the packages of failed deltas.
    if !second.is_empty() {
        bytes = fetch_all(remotes, &prepared, &second, reporter)?;
        for &(i, _) in &second {
            let p = &prepared[i];
            let result = bytes[i].take().unwrap_or(Err(TrustError::NotLoaded("the download")));
            contents[i] = Some(open_downloaded(p, result, &mut downloaded[i])?);
        }
    }

    let mut verified = Vec::with_capacity(prepared.len());
    for ((p, content), bytes) in prepared.into_iter().zip(contents).zip(downloaded) {
        let signed = p.signed;
        let Some(content) = content else {
            return Err(StoreError::MissingTarget {
                registry: signed.registry,
                target: signed.resolved.release.package.path.clone(),
                what: "package".into(),
            });
        };
        let delta_from = match &content {
            ReleaseContent::Staged(_) => p.candidate.as_ref().map(|c| c.delta.from.clone()),
            ReleaseContent::Package(_) => None,
        };
        let transfer = Transfer {
            plugin: signed.resolved.id.clone(),
            version: signed.resolved.version.clone(),
            delta_from,
            bytes,
            package_bytes: signed.resolved.release.package.length,
        };
        verified.push(VerifiedRelease {
            resolved: signed.resolved,
            registry: signed.registry,
            manifest: signed.manifest,
            envelope: signed.envelope,
            publisher_record: signed.publisher_record,
            content,
            transfer,
        });
    }
    Ok(verified)
}

/// One release between its checks and its download.
struct Prepared {
    signed: SignedRelease,
    package: TargetInfo,
    candidate: Option<delta::Candidate>,
}

type Fetched = Vec<Option<Result<Vec<u8>, TrustError>>>;

/// Downloads `targets` (index into `prepared`, target) in parallel per registry.
fn fetch_all(
    remotes: &Remotes,
    prepared: &[Prepared],
    targets: &[(usize, TargetInfo)],
    reporter: &dyn Reporter,
) -> Result<Fetched, StoreError> {
    let mut by_registry: BTreeMap<&RegistryName, Vec<&(usize, TargetInfo)>> = BTreeMap::new();
    for target in targets {
        by_registry.entry(&prepared[target.0].signed.registry).or_default().push(target);
    }
    let mut out: Fetched = (0..prepared.len()).map(|_| None).collect();
    for (registry, targets) in by_registry {
        let infos: Vec<TargetInfo> = targets.iter().map(|(_, info)| info.clone()).collect();
        for (i, info) in &targets {
            let plugin = &prepared[*i].signed.resolved;
            reporter.report(Event::Downloading {
                plugin: plugin.id.clone(),
                version: plugin.version.clone(),
                bytes_done: 0,
                bytes_total: Some(info.file.length),
            });
        }
        let results = remotes.fetch_many(registry, &infos)?;
        for ((i, info), result) in targets.into_iter().zip(results) {
            let plugin = &prepared[*i].signed.resolved;
            if let Ok(bytes) = &result {
                reporter.report(Event::Downloading {
                    plugin: plugin.id.clone(),
                    version: plugin.version.clone(),
                    bytes_done: bytes.len() as u64,
                    bytes_total: Some(info.file.length),
                });
            }
            out[*i] = Some(result);
        }
    }
    Ok(out)
}

/// A package download's result, counted in `downloaded` and opened against the signed
/// manifest.
fn open_downloaded(
    p: &Prepared,
    result: Result<Vec<u8>, TrustError>,
    downloaded: &mut u64,
) -> Result<ReleaseContent, StoreError> {
    let plugin = &p.signed.resolved;
    let bytes = result.map_err(|source| StoreError::Download {
        plugin: plugin.id.clone(),
        version: plugin.version.clone(),
        registry: p.signed.registry.clone(),
        source: Box::new(source),
    })?;
    *downloaded += bytes.len() as u64;
    let package = Package::from_bytes(bytes, &p.signed.manifest, &Limits::default()).map_err(|source| {
        StoreError::Package { plugin: plugin.id.clone(), version: plugin.version.clone(), source: Box::new(source) }
    })?;
    Ok(ReleaseContent::Package(package))
}

fn fallback(reporter: &dyn Reporter, plugin: &ResolvedPlugin, reason: String) {
    tracing::info!(plugin = %plugin.id, version = %plugin.version, %reason, "delta not used");
    reporter.report(Event::DeltaFallback { plugin: plugin.id.clone(), version: plugin.version.clone(), reason });
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
    let envelope: Envelope = trellis_schema::json::from_slice(bytes).map_err(|e| StoreError::Signature {
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
