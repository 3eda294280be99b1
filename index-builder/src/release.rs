//! One release, checked: the developer signature, the package bytes, the package's
//! own metadata.
//!
//! Owns turning the files of a submitted release (package ZIP + DSSE envelope) into a
//! [`ReleaseInput`] the builder may index, and every refusal on the way: an envelope
//! that does not parse, an unknown publisher, a signature that does not meet the
//! publisher record (revoked keys, foreign namespace), a package whose SHA-256 or size
//! differs from the signed manifest, a package that fails [`crate::lint`] (run with the
//! publisher record, so lint re-checks the signature too), a package whose
//! `plugin.json` disagrees with the manifest. Cross-release rules (dependencies exist, published versions are
//! immutable) belong to [`crate::build`]; finding the files to [`crate::registry`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use trellis_schema::dsse::Envelope;
use trellis_schema::index::Percent;
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::plugin::METADATA_PATH;
use trellis_schema::publisher::{PublisherRecord, ReleaseSignatureError};
use trellis_schema::validate::Severity;
use trellis_schema::{PluginId, Sha256, VendorId};

use crate::analysis::AnalysisOptions;
use crate::lint::{self, LintOptions};

/// Where the bytes of a blob come from when the site is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobSource {
    /// A file of the registry source tree.
    File(PathBuf),
    /// Bytes in memory.
    Bytes(Arc<[u8]>),
    /// Already in the site from an earlier build (or, for synthetic benchmark
    /// registries, deliberately not written): nothing to copy.
    InSite,
}

/// A blob to publish: its content address and where its bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// SHA-256 of the content.
    pub sha256: Sha256,
    /// Length in bytes.
    pub length: u64,
    /// Where the bytes are.
    pub source: BlobSource,
}

impl Blob {
    /// A blob held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { sha256: Sha256::of(&bytes), length: bytes.len() as u64, source: BlobSource::Bytes(bytes.into()) }
    }
}

/// The display data of a release: what catalog documents list and search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseDisplay {
    /// Short description.
    pub summary: String,
    /// Full description.
    pub description: String,
    /// The publisher's display name.
    pub vendor: String,
    /// Store categories.
    pub categories: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Pricing.
    pub pricing: trellis_schema::plugin::Pricing,
}

/// A release that passed every per-release check.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseInput {
    /// The signed release manifest.
    pub manifest: ReleaseManifest,
    /// SHA-256 of the manifest bytes as signed (the envelope's payload).
    pub manifest_sha256: Sha256,
    /// Display name from `plugin.json`.
    pub name: String,
    /// What the catalog shows and searches, from `plugin.json` (shared by the releases
    /// of synthetic plugins, hence the `Arc`).
    pub display: Arc<ReleaseDisplay>,
    /// Oldest client that can install it, from `plugin.json`.
    pub min_client_version: Option<semver::Version>,
    /// Pricing from `plugin.json`, when not free.
    pub pricing: Option<trellis_schema::plugin::Pricing>,
    /// The package.
    pub package: Blob,
    /// The DSSE envelope.
    pub envelope: Blob,
    /// Yanked by the operator or publisher (from the registry's yank list).
    pub yanked: bool,
    /// The operator's staged rollout (from the registry's rollout list); `None` is
    /// every install.
    pub rollout: Option<Percent>,
    /// The bundled components its SBOM lists ([`crate::sbom`]); empty without one.
    pub components: Vec<crate::sbom::SbomComponent>,
    /// What lint's analysis found (capabilities, scanner verdicts, a sandboxed run),
    /// published in the index entry.
    pub analysis: Option<trellis_schema::analysis::ReleaseAnalysis>,
    /// Whether this check analysed the package (`false`: the analysis was carried
    /// over from the published index doc, or the release is synthetic).
    pub analysed: bool,
    /// Distinct publisher keys whose signatures on the manifest are valid (a signal of
    /// the security level).
    pub signing_keys: u32,
}

/// A release as the published site lists it: the package it pins and the analysis
/// published with it. A release is analysed once, when it is first published; later
/// builds carry the analysis over instead of extracting, scanning and sandboxing the
/// package again (the package cannot change: [`crate::build`] refuses that).
#[derive(Clone, Debug, PartialEq)]
pub struct PublishedRelease {
    /// SHA-256 of the published package.
    pub package_sha256: Sha256,
    /// The published analysis (`None`: published before the builder analysed).
    pub analysis: Option<trellis_schema::analysis::ReleaseAnalysis>,
}

/// All releases of one plugin, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginInput {
    /// The plugin.
    pub id: PluginId,
    /// Its releases, sorted by version.
    pub releases: Vec<ReleaseInput>,
}

/// Why a release is refused. Every variant names the release's files.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The envelope file is not a DSSE envelope.
    #[error("{}: not a DSSE envelope: {reason}", path.display())]
    Envelope {
        /// The envelope file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// The envelope's manifest names a plugin of a publisher the registry does not know.
    #[error("{}: plugin {plugin} belongs to publisher {vendor:?}, which has no record in publishers/{vendor}.json", path.display())]
    UnknownPublisher {
        /// The envelope file.
        path: PathBuf,
        /// Plugin id.
        plugin: String,
        /// Missing publisher.
        vendor: String,
    },
    /// The developer signature is not accepted.
    #[error("{}: {source}", path.display())]
    Signature {
        /// The envelope file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ReleaseSignatureError,
    },
    /// The release sits under a directory or file name that disagrees with its manifest.
    #[error("{}: file name says {expected}, the manifest its envelope carries says {actual}", path.display())]
    Misplaced {
        /// The envelope file.
        path: PathBuf,
        /// What the location says.
        expected: String,
        /// What the manifest says.
        actual: String,
    },
    /// The package is not the one the developer signed.
    #[error(
        "{}: package does not match the signed manifest of {release}: expected sha256 {expected_sha256} ({expected_size} bytes), found {actual_sha256} ({actual_size} bytes)",
        path.display()
    )]
    PackageMismatch {
        /// The package file.
        path: PathBuf,
        /// `id version`.
        release: String,
        /// Signed digest.
        expected_sha256: Sha256,
        /// Signed size.
        expected_size: u64,
        /// Digest of the file.
        actual_sha256: Sha256,
        /// Size of the file.
        actual_size: u64,
    },
    /// The package fails lint.
    #[error("{}: package of {release} fails lint: {reason}", path.display())]
    Lint {
        /// The package file.
        path: PathBuf,
        /// `id version`.
        release: String,
        /// The problems.
        reason: String,
    },
}

/// Checks one release: `envelope_bytes` (read from `envelope_path`) signed by a record
/// in `publishers`, `package_bytes` (read from `package_path`) equal to what was signed,
/// and the package passing [`crate::lint`] (with `analysis`: the registry's scanners). `expected` is the id and version the
/// release's location in the registry claims. When `published` pins this very package
/// (same SHA-256), lint still runs every structural and signature check but not the
/// analysis, whose published result is carried over.
#[allow(clippy::too_many_arguments)]
pub fn check_release(
    expected: (&PluginId, &semver::Version),
    envelope_path: PathBuf,
    envelope_bytes: Vec<u8>,
    package_path: PathBuf,
    package_bytes: &[u8],
    publishers: &BTreeMap<VendorId, PublisherRecord>,
    analysis: &AnalysisOptions,
    published: Option<&PublishedRelease>,
) -> Result<ReleaseInput, Box<ReleaseError>> {
    check(expected, envelope_path, envelope_bytes, package_path, package_bytes, publishers, analysis, published)
        .map_err(Box::new)
}

#[allow(clippy::result_large_err, clippy::too_many_arguments)] // boxed once by `check_release`
fn check(
    expected: (&PluginId, &semver::Version),
    envelope_path: PathBuf,
    envelope_bytes: Vec<u8>,
    package_path: PathBuf,
    package_bytes: &[u8],
    publishers: &BTreeMap<VendorId, PublisherRecord>,
    analysis: &AnalysisOptions,
    published: Option<&PublishedRelease>,
) -> Result<ReleaseInput, ReleaseError> {
    let envelope: Envelope = trellis_schema::json::from_slice(&envelope_bytes)
        .map_err(|e| ReleaseError::Envelope { path: envelope_path.clone(), reason: e.to_string() })?;
    let payload = envelope
        .payload_bytes()
        .map_err(|e| ReleaseError::Envelope { path: envelope_path.clone(), reason: e.to_string() })?;
    let claimed: ReleaseManifest = trellis_schema::json::from_slice(&payload).map_err(|e| ReleaseError::Envelope {
        path: envelope_path.clone(),
        reason: format!("payload is not a release manifest: {e}"),
    })?;
    // A manifest naming another publisher's plugin is in the wrong place whoever signed
    // it; said before any record is looked up (a caller may hold the records of the
    // expected plugin's publisher only: `Registry::load_plugins`).
    if claimed.plugin_id.vendor() != expected.0.vendor() {
        return Err(ReleaseError::Misplaced {
            path: envelope_path,
            expected: format!("{} {}", expected.0, expected.1),
            actual: claimed.release_name(),
        });
    }
    let vendor: VendorId = claimed.plugin_id.vendor().parse().map_err(|e| ReleaseError::Envelope {
        path: envelope_path.clone(),
        reason: format!("plugin id {}: {e}", claimed.plugin_id),
    })?;
    let record = publishers.get(&vendor).ok_or_else(|| ReleaseError::UnknownPublisher {
        path: envelope_path.clone(),
        plugin: claimed.plugin_id.to_string(),
        vendor: vendor.to_string(),
    })?;
    let (manifest, signing_keys) = record
        .verify_release_counted(&envelope)
        .map_err(|source| ReleaseError::Signature { path: envelope_path.clone(), source })?;
    if (&manifest.plugin_id, &manifest.version) != expected {
        return Err(ReleaseError::Misplaced {
            path: envelope_path,
            expected: format!("{} {}", expected.0, expected.1),
            actual: manifest.release_name(),
        });
    }
    let actual_sha256 = Sha256::of(package_bytes);
    let actual_size = package_bytes.len() as u64;
    if actual_sha256 != manifest.package.sha256 || actual_size != manifest.package.size {
        return Err(ReleaseError::PackageMismatch {
            path: package_path,
            release: manifest.release_name(),
            expected_sha256: manifest.package.sha256,
            expected_size: manifest.package.size,
            actual_sha256,
            actual_size,
        });
    }
    let lint_error =
        |reason| ReleaseError::Lint { path: package_path.clone(), release: manifest.release_name(), reason };
    // A release already published with this very package carries its analysis over,
    // unless the build analyses published releases again.
    let pinned = published.filter(|p| p.package_sha256 == actual_sha256);
    let again = pinned.is_some() && analysis.reanalyse;
    let carried = pinned.filter(|_| !again);
    let options = LintOptions {
        publisher: Some(record.clone()),
        analysis: AnalysisOptions { reanalyse: again, ..analysis.clone() },
        skip_analysis: carried.is_some(),
    };
    let report = lint::lint(&package_path, &options).map_err(|e| lint_error(e.to_string()))?;
    for finding in report.problems.iter().filter(|p| p.message.ends_with(crate::analysis::PUBLISHED_FINDING)) {
        tracing::warn!("{}: {finding}", manifest.release_name());
    }
    if !report.is_clean() {
        let errors: Vec<String> =
            report.problems.iter().filter(|p| p.severity == Severity::Error).map(ToString::to_string).collect();
        return Err(lint_error(errors.join("; ")));
    }
    // Lint with the publisher record checked that the signed manifest is exactly the
    // one this package's plugin.json and files give (id, version, channel, host,
    // platforms, permissions, dependencies, file list), through the hardened opener.
    let metadata = report.metadata.ok_or_else(|| lint_error(format!("{METADATA_PATH} is not readable")))?;
    let pricing = Some(metadata.pricing.clone()).filter(|p| p.model != trellis_schema::plugin::PricingModel::Free);
    Ok(ReleaseInput {
        signing_keys,
        manifest_sha256: Sha256::of(&payload),
        display: Arc::new(ReleaseDisplay {
            summary: metadata.description.short,
            description: metadata.description.full,
            vendor: metadata.vendor.name,
            categories: metadata.categories,
            tags: metadata.tags,
            pricing: metadata.pricing,
        }),
        name: metadata.name,
        min_client_version: metadata.min_client_version,
        pricing,
        package: Blob { sha256: actual_sha256, length: actual_size, source: BlobSource::File(package_path) },
        envelope: Blob::from_bytes(envelope_bytes),
        manifest,
        yanked: false,
        rollout: None,
        components: report.components,
        analysed: carried.is_none(),
        analysis: match carried {
            Some(published) => published.analysis.clone(),
            None => report.analysis,
        },
    })
}
