//! `sign`: the developer's signature over a release.
//!
//! Reads a package through the hardened opener (`trellis_client::package`), builds the
//! release manifest (package SHA-256 and size, every file with its mode, permissions, host
//! requirement, platforms, channel, dependencies) and writes a DSSE envelope over its
//! canonical JSON next to the package, as `<package>.dsse`. Signing a package whose
//! envelope already carries the same manifest adds a co-signature (publishers with a
//! threshold above one); an envelope for other bytes is replaced.
//!
//! Checking envelopes against publisher records is `trellis_schema::publisher`.

use std::path::{Path, PathBuf};

use trellis_client::package::{Limits, Package, PackageError};
use trellis_schema::canonical;
use trellis_schema::dsse::{Envelope, EnvelopeError, RELEASE_PAYLOAD_TYPE};
use trellis_schema::key::SigningKey;
use trellis_schema::manifest::{ContentManifest, ManifestFormat, PackageDigest, ReleaseManifest};
use trellis_schema::plugin::PluginMetadata;
use trellis_schema::validate::{self, Problems};

/// What [`sign_package`] did.
#[derive(Clone, Debug)]
pub struct Signed {
    /// Where the envelope was written.
    pub envelope_path: PathBuf,
    /// The envelope.
    pub envelope: Envelope,
    /// The signed manifest.
    pub manifest: ReleaseManifest,
    /// Whether a signature was added to an existing envelope.
    pub cosigned: bool,
}

/// Why a package was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The package fails the hardened checks.
    #[error("package {}: {source}", path.display())]
    Package {
        /// The package.
        path: PathBuf,
        /// Why.
        #[source]
        source: PackageError,
    },
    /// Its plugin.json is not valid.
    #[error("package {}: plugin.json {problems}", path.display())]
    Metadata {
        /// The package.
        path: PathBuf,
        /// Every problem.
        problems: Problems,
    },
    /// plugin.json and the content manifest disagree on the release.
    #[error("package {}: plugin.json says {metadata} but trellis-manifest.json says {manifest}; repack it", path.display())]
    Mismatch {
        /// The package.
        path: PathBuf,
        /// `id version` from plugin.json.
        metadata: String,
        /// `id version` from the content manifest.
        manifest: String,
    },
    /// The existing envelope could not be co-signed.
    #[error("envelope {}: {source}", path.display())]
    Envelope {
        /// The envelope.
        path: PathBuf,
        /// Why.
        #[source]
        source: EnvelopeError,
    },
    /// Writing the envelope failed.
    #[error(transparent)]
    Write(#[from] trellis_client::fs::FsError),
    /// The manifest has no canonical form (cannot happen for valid manifests).
    #[error("release manifest of {0} cannot be canonicalised: {1}")]
    Canonical(String, canonical::CanonicalError),
}

/// Where the envelope of `package` lives: the package's name with `.dsse` appended
/// (`acme.clock-1.0.0.zip.dsse`), as detached signatures usually are.
pub fn envelope_path(package: &Path) -> PathBuf {
    let mut name = package.as_os_str().to_owned();
    name.push(".dsse");
    PathBuf::from(name)
}

/// The release manifest a developer signs for a package.
pub fn release_manifest(
    metadata: &PluginMetadata,
    content: &ContentManifest,
    package: PackageDigest,
) -> ReleaseManifest {
    ReleaseManifest {
        format: ManifestFormat::CURRENT,
        plugin_id: metadata.id.clone(),
        version: metadata.version.clone(),
        package,
        files: content.files.clone(),
        permissions: metadata.permissions.clone(),
        host: metadata.host.clone(),
        platforms: metadata.platforms.clone(),
        channel: metadata.channel,
        dependencies: metadata.dependencies.clone(),
    }
}

/// The payload bytes of a release manifest: its canonical JSON.
pub fn manifest_payload(manifest: &ReleaseManifest) -> Result<Vec<u8>, canonical::CanonicalError> {
    canonical::to_vec_of(manifest)
}

/// Opens a package (hardened, every entry inflated and checked) and reads its metadata.
pub fn inspect(path: &Path) -> Result<(Package, PluginMetadata), SignError> {
    let package_err = |source| SignError::Package { path: path.to_owned(), source };
    let package = Package::open_unsigned(path, &Limits::default()).map_err(package_err)?;
    package.verify().map_err(package_err)?;
    let raw = package.plugin_json().map_err(package_err)?;
    let metadata = validate::plugin_metadata_bytes(&raw)
        .map_err(|problems| SignError::Metadata { path: path.to_owned(), problems })?;
    let content = package.content_manifest();
    if content.plugin_id != metadata.id || content.version != metadata.version {
        return Err(SignError::Mismatch {
            path: path.to_owned(),
            metadata: format!("{} {}", metadata.id, metadata.version),
            manifest: format!("{} {}", content.plugin_id, content.version),
        });
    }
    Ok((package, metadata))
}

/// Signs the package at `path` with `key`, writing or co-signing `<package>.dsse`.
pub fn sign_package(path: &Path, key: &SigningKey) -> Result<Signed, SignError> {
    sign_with(path, key, Mode::CoSign)
}

/// Re-signs a published release with `key` alone: a new `<package>.dsse` over the
/// same release manifest (so the same `manifest_sha256`), without the old signatures.
/// What a publisher does after revoking the key that signed it.
pub fn resign_package(path: &Path, key: &SigningKey) -> Result<Signed, SignError> {
    sign_with(path, key, Mode::Replace)
}

#[derive(PartialEq)]
enum Mode {
    CoSign,
    Replace,
}

fn sign_with(path: &Path, key: &SigningKey, mode: Mode) -> Result<Signed, SignError> {
    let (package, metadata) = inspect(path)?;
    let manifest = release_manifest(&metadata, package.content_manifest(), package.digest());
    let payload = manifest_payload(&manifest).map_err(|e| SignError::Canonical(manifest.release_name(), e))?;
    let envelope_path = envelope_path(path);
    let existing =
        std::fs::read(&envelope_path).ok().and_then(|bytes| serde_json::from_slice::<Envelope>(&bytes).ok()).filter(
            |env| env.payload_type == RELEASE_PAYLOAD_TYPE && env.payload_bytes().ok().as_deref() == Some(&payload),
        );
    let (envelope, cosigned) = match existing {
        Some(_) if mode == Mode::Replace => (Envelope::sign(RELEASE_PAYLOAD_TYPE, &payload, &[key]), false),
        Some(mut envelope) => {
            envelope
                .add_signature(key)
                .map_err(|source| SignError::Envelope { path: envelope_path.clone(), source })?;
            (envelope, true)
        }
        None => (Envelope::sign(RELEASE_PAYLOAD_TYPE, &payload, &[key]), false),
    };
    let mut text = serde_json::to_vec_pretty(&envelope).unwrap_or_default();
    text.push(b'\n');
    trellis_client::fs::write_atomic(&envelope_path, &text)?;
    Ok(Signed { envelope_path, envelope, manifest, cosigned })
}
