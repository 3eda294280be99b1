//! Building a site: from checked registry values to signed files on disk.
//!
//! Owns planning (index docs, target entries, which roles change), the cross-release
//! checks (dependencies exist, published releases are immutable and never removed) and
//! writing in the safe order: blobs and documents first (new, content-addressed names),
//! then delegated roles, targets, snapshot, and `timestamp.json` last. Every check runs
//! before the first write, so a refused build leaves the previous site as it was; a
//! build interrupted while writing leaves only unreferenced new files behind.
//!
//! A build reads the previous site in `SITE_DIR` and gives a role a new version only
//! when its content changed (see [`crate::tuf::settle`]), so the same inputs, keys and
//! `now` give the same bytes, and adding one release rewrites its blobs, its index doc,
//! the bins that sign them, the snapshot and the timestamp. [`Scope::Plugins`] does the
//! same work for a few plugins without reading the rest of the registry or site.
//!
//! Loading the registry is [`crate::registry`]'s job; the role rules are [`crate::tuf`]'s;
//! paths are [`crate::site`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Map;
use trellis_client::fs::{FsError, write_atomic, write_atomic_with};
use trellis_schema::blocklist::Blocklist;
use trellis_schema::canonical;
use trellis_schema::index::{BlobRef, IndexDoc, IndexRelease};
use trellis_schema::publisher::PublisherRecord;
use trellis_schema::tuf::{Envelope, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp, TopRole};
use trellis_schema::{PluginId, Sha256, SigningKey, VendorId};

use crate::registry::{Expiry, Registry, RegistryError};
use crate::release::{BlobSource, PluginInput};
use crate::site;
use crate::tuf::{self, BINS_ROLE, PUBLISHERS_ROLE, RoleKeys, SECURITY_ROLE, Settled, SignError};

/// Which part of the registry a build looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: every plugin is loaded and checked, every role compared with the
    /// previous site.
    Full,
    /// Only these plugins changed (e.g. from `git diff` in CI): only they are loaded,
    /// only the bins signing their targets are touched.
    Plugins(BTreeSet<PluginId>),
}

/// Signing keys available to a build, per role. `None` means offline: fine as long
/// as the role does not change.
#[derive(Clone, Debug, Default)]
pub struct Signers {
    /// Top-level targets.
    pub targets: Option<Vec<SigningKey>>,
    /// Snapshot.
    pub snapshot: Option<Vec<SigningKey>>,
    /// Timestamp.
    pub timestamp: Option<Vec<SigningKey>>,
    /// `security` delegation.
    pub security: Option<Vec<SigningKey>>,
    /// `publishers` delegation.
    pub publishers: Option<Vec<SigningKey>>,
    /// `bins` and every hash bin.
    pub bins: Option<Vec<SigningKey>>,
}

/// Thresholds of the delegated roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelegationThresholds {
    /// `security`.
    pub security: u32,
    /// `publishers`.
    pub publishers: u32,
    /// `bins` and its hash bins.
    pub bins: u32,
}

/// Everything a build needs, as values. [`build_registry`] makes one from a registry
/// source tree; benchmarks make one from a synthetic registry.
#[derive(Debug)]
pub struct BuildInput {
    /// Expiry per role.
    pub expiry: Expiry,
    /// `2^bin_bits` hash bins.
    pub bin_bits: u32,
    /// Thresholds of the delegations.
    pub thresholds: DelegationThresholds,
    /// Every signed root, oldest first, as the bytes to publish.
    pub roots: Vec<Vec<u8>>,
    /// Publisher records.
    pub publishers: BTreeMap<VendorId, PublisherRecord>,
    /// The blocklist.
    pub blocklist: Blocklist,
    /// Plugins to index: all of them ([`Scope::Full`]) or the changed ones.
    pub plugins: Vec<PluginInput>,
    /// Ids of every plugin of the registry, for the dependency check.
    pub known_plugins: BTreeSet<PluginId>,
    /// What changed.
    pub scope: Scope,
    /// Keys.
    pub signers: Signers,
    /// The build's notion of now: expiry dates are computed from it, nothing else.
    pub now: jiff::Timestamp,
}

/// What a build did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Files written, relative to the site root, sorted.
    pub written: Vec<String>,
    /// Version of the snapshot the site now serves.
    pub snapshot_version: u64,
    /// Version of `timestamp.json`.
    pub timestamp_version: u64,
    /// Number of plugins indexed by this build.
    pub plugins: usize,
    /// Number of releases indexed by this build.
    pub releases: usize,
}

/// Why a build was refused. Nothing was written when one of these is returned,
/// except [`BuildError::Io`] during the write phase (then only unreferenced new files).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The registry source tree has a problem.
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// A role could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Reading or writing the site failed.
    #[error(transparent)]
    Io(#[from] FsError),
    /// The previous site cannot be read.
    #[error("previous site: {}: {reason}", path.display())]
    Site {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A release depends on a plugin the registry does not have.
    #[error(
        "{release} depends on {dependency}, which is not in this registry; publish {dependency} first or drop the dependency"
    )]
    UnknownDependency {
        /// `id version`.
        release: String,
        /// The missing plugin.
        dependency: PluginId,
    },
    /// A published release changed.
    #[error(
        "{target} was published with sha256 {published}, the registry now has {new}; a published version is immutable: publish a new version instead"
    )]
    Immutable {
        /// Target path.
        target: String,
        /// Published digest.
        published: String,
        /// New digest.
        new: String,
    },
    /// A published release disappeared from the registry.
    #[error(
        "{target} was published but is missing from the registry; releases are yanked (trellis-index yank), never deleted"
    )]
    Removed {
        /// Target path.
        target: String,
    },
    /// The registry's root history and the site's disagree.
    #[error("{}: differs from root/{name} of the registry; a published root is never replaced", path.display())]
    RootMismatch {
        /// The site file.
        path: PathBuf,
        /// File name.
        name: String,
    },
    /// Trust configuration problem (no root, keys not in root, root expiring).
    #[error("{0}")]
    Trust(String),
}

impl From<RegistryError> for BuildError {
    fn from(source: RegistryError) -> Self {
        Self::Registry(Box::new(source))
    }
}

impl From<canonical::CanonicalError> for BuildError {
    fn from(source: canonical::CanonicalError) -> Self {
        Self::Sign(SignError::Canonical { role: "document".into(), source })
    }
}

/// Builds the site of the registry at `registry` into `site` (see [`build`]).
pub fn build_registry(
    registry: &Registry,
    site: &Path,
    scope: Scope,
    now: jiff::Timestamp,
) -> Result<BuildReport, BuildError> {
    let known_plugins = registry.plugin_ids()?;
    let load = match &scope {
        Scope::Full => known_plugins.clone(),
        Scope::Plugins(ids) => {
            if let Some(missing) = ids.iter().find(|id| !known_plugins.contains(*id)) {
                return Err(BuildError::Trust(format!("{missing} has no directory under releases/")));
            }
            ids.clone()
        }
    };
    let plugins = registry.load_plugins(&load)?;
    let keys = &registry.config.keys;
    let signers = Signers {
        targets: registry.signing_keys(&keys.targets)?,
        snapshot: registry.signing_keys(&keys.snapshot)?,
        timestamp: registry.signing_keys(&keys.timestamp)?,
        security: registry.signing_keys(&keys.security)?,
        publishers: registry.signing_keys(&keys.publishers)?,
        bins: registry.signing_keys(&keys.bins)?,
    };
    let input = BuildInput {
        expiry: registry.config.expiry_days.clone(),
        bin_bits: registry.config.bin_bits,
        thresholds: DelegationThresholds {
            security: keys.security.threshold,
            publishers: keys.publishers.threshold,
            bins: keys.bins.threshold,
        },
        roots: registry.roots.iter().map(|root| root.bytes.clone()).collect(),
        publishers: registry.publishers.clone(),
        blocklist: registry.blocklist.clone(),
        plugins,
        known_plugins,
        scope,
        signers,
        now,
    };
    build(input, site)
}

/// The published state of a site: its timestamp, snapshot and role documents.
pub struct PreviousSite {
    dir: PathBuf,
    /// `timestamp.json`.
    pub timestamp: Envelope<Timestamp>,
    /// The snapshot it names.
    pub snapshot: Envelope<Snapshot>,
}

impl PreviousSite {
    /// Reads the site at `dir`; `None` when it has no `timestamp.json` yet.
    pub fn open(dir: &Path) -> Result<Option<Self>, BuildError> {
        let path = site::timestamp_file(dir);
        if !path.exists() {
            return Ok(None);
        }
        let timestamp: Envelope<Timestamp> = read_site_json(&path)?;
        let version = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .map(|m| m.version)
            .ok_or_else(|| BuildError::Site { path: path.clone(), reason: "names no snapshot.json".into() })?;
        let snapshot: Envelope<Snapshot> = read_site_json(&site::metadata_file(dir, "snapshot", version))?;
        Ok(Some(Self { dir: dir.to_owned(), timestamp, snapshot }))
    }

    /// Version of `role` named by the snapshot.
    pub fn version(&self, role: &str) -> Option<u64> {
        self.snapshot.signed.meta.get(&format!("{role}.json")).map(|m| m.version)
    }

    /// The published document of a targets role (top-level or delegated).
    pub fn role(&self, role: &str) -> Result<Option<Envelope<Targets>>, BuildError> {
        let Some(version) = self.version(role) else { return Ok(None) };
        read_site_json(&site::metadata_file(&self.dir, role, version)).map(Some)
    }
}

fn read_site_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| FsError::new("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BuildError::Site { path: path.to_owned(), reason: e.to_string() })
}

/// What a file of the site is made from.
enum Content {
    Bytes(Arc<[u8]>),
    Copy(PathBuf),
}

/// A target to publish.
struct TargetOut {
    target: String,
    file: TargetFile,
    sha256: Sha256,
    content: Option<Content>,
}

fn target_file(sha256: &Sha256, length: u64) -> TargetFile {
    TargetFile {
        length,
        hashes: BTreeMap::from([("sha256".to_owned(), sha256.to_hex())]),
        custom: None,
        extra: Map::new(),
    }
}

fn bytes_target(target: String, bytes: Vec<u8>) -> TargetOut {
    let sha256 = Sha256::of(&bytes);
    TargetOut {
        file: target_file(&sha256, bytes.len() as u64),
        target,
        sha256,
        content: Some(Content::Bytes(bytes.into())),
    }
}

/// The index doc of one plugin.
pub fn index_doc(plugin: &PluginInput) -> IndexDoc {
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
                deltas: Vec::new(),
                min_client_version: r.min_client_version.clone(),
            }
        })
        .collect();
    let name = plugin.releases.last().map(|r| r.name.clone()).unwrap_or_default();
    IndexDoc { id: plugin.id.clone(), name, releases }
}

fn plugin_targets(plugin: &PluginInput) -> Result<Vec<TargetOut>, BuildError> {
    let doc = serde_json::to_vec(&index_doc(plugin))
        .map_err(|e| BuildError::Trust(format!("index doc of {}: {e}", plugin.id)))?;
    let mut out = Vec::with_capacity(1 + 2 * plugin.releases.len());
    out.push(bytes_target(site::index_target(&plugin.id), doc));
    for release in &plugin.releases {
        let version = &release.manifest.version;
        for (target, blob) in [
            (site::package_target(&plugin.id, version), &release.package),
            (site::envelope_target(&plugin.id, version), &release.envelope),
        ] {
            let content = match &blob.source {
                BlobSource::File(path) => Some(Content::Copy(path.clone())),
                BlobSource::Bytes(bytes) => Some(Content::Bytes(bytes.clone())),
                BlobSource::InSite => None,
            };
            out.push(TargetOut { target, file: target_file(&blob.sha256, blob.length), sha256: blob.sha256, content });
        }
    }
    Ok(out)
}

/// A role's name, its settled document and the keys that would sign it.
type SettledRole<'a> = (String, Settled<Targets>, Option<&'a [SigningKey]>);

/// A role document to write.
struct RoleOut {
    name: String,
    version: u64,
    bytes: Vec<u8>,
}

/// Builds `input` into the site directory `site`, reading its previous state.
pub fn build(input: BuildInput, site_dir: &Path) -> Result<BuildReport, BuildError> {
    let previous = PreviousSite::open(site_dir)?;
    let now = input.now;
    check_root(&input)?;
    check_dependencies(&input)?;

    // Targets of the changed plugins, grouped by bin.
    let per_plugin: Vec<Vec<TargetOut>> = input.plugins.par_iter().map(plugin_targets).collect::<Result<_, _>>()?;
    let releases = input.plugins.iter().map(|p| p.releases.len()).sum();
    let bits = input.bin_bits;
    let mut bin_targets: BTreeMap<String, BTreeMap<String, TargetFile>> = BTreeMap::new();
    if input.scope == Scope::Full {
        for number in 0..(1u32 << bits) {
            bin_targets.insert(site::bin_name(number, bits, tuf::BIN_PREFIX), BTreeMap::new());
        }
    }
    let mut contents: Vec<TargetOut> = Vec::new();
    for target in per_plugin.into_iter().flatten() {
        let bin = site::bin_for_target(&target.target, bits, tuf::BIN_PREFIX);
        bin_targets.entry(bin).or_default().insert(target.target.clone(), target.file.clone());
        contents.push(target);
    }

    // Previous versions of the touched bins; merge (Plugins scope) and immutability.
    let changed_ids: BTreeSet<&str> = input.plugins.iter().map(|p| p.id.as_str()).collect();
    let bin_names: Vec<String> = bin_targets.keys().cloned().collect();
    let previous_bins: Vec<Option<Envelope<Targets>>> = match &previous {
        Some(prev) => bin_names.par_iter().map(|name| prev.role(name)).collect::<Result<_, _>>()?,
        None => vec![None; bin_names.len()],
    };
    for (name, prev) in bin_names.iter().zip(&previous_bins) {
        let Some(prev) = prev else { continue };
        let Some(new) = bin_targets.get_mut(name) else { continue };
        for (target, published) in &prev.signed.targets {
            let owned_by_changed =
                input.scope == Scope::Full || owner(target).is_some_and(|id| changed_ids.contains(id));
            if !owned_by_changed {
                new.insert(target.clone(), published.clone());
                continue;
            }
            if !target.starts_with("plugins/") {
                continue;
            }
            match new.get(target) {
                None => return Err(BuildError::Removed { target: target.clone() }),
                Some(now_file) if now_file.hashes != published.hashes || now_file.length != published.length => {
                    return Err(BuildError::Immutable {
                        target: target.clone(),
                        published: published.hashes.get("sha256").cloned().unwrap_or_default(),
                        new: now_file.hashes.get("sha256").cloned().unwrap_or_default(),
                    });
                }
                Some(_) => {}
            }
        }
    }

    // Publishers and the blocklist.
    let mut publisher_targets = BTreeMap::new();
    for record in input.publishers.values() {
        let t = bytes_target(site::publisher_target(&record.id), canonical::to_vec_of(record)?);
        publisher_targets.insert(t.target.clone(), t.file.clone());
        contents.push(t);
    }
    let blocklist = bytes_target(site::BLOCKLIST_TARGET.to_owned(), canonical::to_vec_of(&input.blocklist)?);
    let security_targets = BTreeMap::from([(blocklist.target.clone(), blocklist.file.clone())]);
    contents.push(blocklist);

    // Role keys: from the signers, else as published.
    let previous_targets = match &previous {
        Some(prev) => prev.role("targets")?,
        None => None,
    };
    let thresholds = input.thresholds;
    let role_keys = |role: &str, signers: &Option<Vec<SigningKey>>, threshold: u32| {
        delegation_keys(role, signers.as_deref(), threshold, previous_targets.as_ref().map(|t| &t.signed))
    };
    let security_keys = role_keys(SECURITY_ROLE, &input.signers.security, thresholds.security)?;
    let publishers_keys = role_keys(PUBLISHERS_ROLE, &input.signers.publishers, thresholds.publishers)?;
    let bins_keys = role_keys(BINS_ROLE, &input.signers.bins, thresholds.bins)?;

    // Settle every targets role.
    let expiry = &input.expiry;
    let prev_role = |name: &str| -> Result<Option<Envelope<Targets>>, BuildError> {
        match &previous {
            Some(prev) => prev.role(name),
            None => Ok(None),
        }
    };
    let mut settled: Vec<SettledRole<'_>> = Vec::new();
    let top =
        tuf::targets_doc(BTreeMap::new(), Some(tuf::top_delegations(&security_keys, &publishers_keys, &bins_keys)));
    settled.push((
        "targets".into(),
        tuf::settle(previous_targets.as_ref(), input.signers.targets.as_deref(), top, now, expiry.targets),
        input.signers.targets.as_deref(),
    ));
    let bins_doc = tuf::targets_doc(BTreeMap::new(), Some(tuf::bin_delegations(&bins_keys, bits)));
    settled.push((
        BINS_ROLE.into(),
        tuf::settle(prev_role(BINS_ROLE)?.as_ref(), input.signers.bins.as_deref(), bins_doc, now, expiry.delegations),
        input.signers.bins.as_deref(),
    ));
    let security_doc = tuf::targets_doc(security_targets, None);
    settled.push((
        SECURITY_ROLE.into(),
        tuf::settle(
            prev_role(SECURITY_ROLE)?.as_ref(),
            input.signers.security.as_deref(),
            security_doc,
            now,
            expiry.delegations,
        ),
        input.signers.security.as_deref(),
    ));
    let publishers_doc = tuf::targets_doc(publisher_targets, None);
    settled.push((
        PUBLISHERS_ROLE.into(),
        tuf::settle(
            prev_role(PUBLISHERS_ROLE)?.as_ref(),
            input.signers.publishers.as_deref(),
            publishers_doc,
            now,
            expiry.delegations,
        ),
        input.signers.publishers.as_deref(),
    ));
    let bins_signers = input.signers.bins.as_deref();
    let bin_targets: Vec<(String, BTreeMap<String, TargetFile>)> = bin_targets.into_iter().collect();
    let settled_bins: Vec<SettledRole<'_>> = bin_targets
        .into_par_iter()
        .zip(previous_bins.into_par_iter())
        .map(|((name, targets), prev)| {
            let doc = tuf::targets_doc(targets, None);
            let s = tuf::settle(prev.as_ref(), bins_signers, doc, now, expiry.delegations);
            (name, s, bins_signers)
        })
        .collect();
    settled.extend(settled_bins);

    // Sign the new versions.
    let roles: Vec<RoleOut> = settled
        .par_iter()
        .filter_map(|(name, s, keys)| match s {
            Settled::Keep { .. } => None,
            Settled::New(doc) => Some((name, doc, *keys)),
        })
        .map(|(name, doc, keys)| {
            let bytes = tuf::sign_role(name, doc, keys, "check the key files in trellis-registry.json")?;
            Ok(RoleOut { name: name.clone(), version: doc.version, bytes })
        })
        .collect::<Result<_, BuildError>>()?;

    // Snapshot and timestamp.
    let mut meta: BTreeMap<String, MetaFile> = match (&previous, &input.scope) {
        (Some(prev), Scope::Plugins(_)) => prev.snapshot.signed.meta.clone(),
        _ => BTreeMap::new(),
    };
    for (name, s, _) in &settled {
        let version = s.version(|d| d.version);
        meta.insert(format!("{name}.json"), MetaFile { version, length: None, hashes: None, extra: Map::new() });
    }
    let prev_snapshot = previous.as_ref().map(|p| &p.snapshot.signed);
    let snapshot_unchanged = previous.as_ref().is_some_and(|p| {
        p.snapshot.signed.meta == meta
            && !tuf::needs_refresh(&p.snapshot.signed.expires, now, expiry.snapshot)
            && tuf::signed_by_same_keys(&p.snapshot, input.signers.snapshot.as_deref())
            && tuf::signed_by_same_keys(&p.timestamp, input.signers.timestamp.as_deref())
    });
    let mut report = BuildReport { plugins: input.plugins.len(), releases, ..BuildReport::default() };
    let (snapshot_out, timestamp_out) = if snapshot_unchanged
        && let Some(prev) = &previous
        && !tuf::needs_refresh(&prev.timestamp.signed.expires, now, expiry.timestamp)
    {
        report.snapshot_version = prev.snapshot.signed.version;
        report.timestamp_version = prev.timestamp.signed.version;
        (None, None)
    } else {
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: trellis_schema::tuf::SPEC_VERSION.into(),
            version: prev_snapshot.map_or(1, |p| p.version + 1),
            expires: tuf::expiry(now, expiry.snapshot),
            meta,
            extra: Map::new(),
        };
        let version = snapshot.version;
        let bytes = tuf::sign_role("snapshot", snapshot, input.signers.snapshot.as_deref(), "keys.snapshot")?;
        let timestamp = timestamp_doc(
            previous.as_ref().map_or(0, |p| p.timestamp.signed.version) + 1,
            version,
            &bytes,
            now,
            expiry.timestamp,
        );
        report.snapshot_version = version;
        report.timestamp_version = timestamp.version;
        let ts_bytes = tuf::sign_role("timestamp", timestamp, input.signers.timestamp.as_deref(), "keys.timestamp")?;
        (Some(RoleOut { name: "snapshot".into(), version, bytes }), Some(ts_bytes))
    };

    // Roots: published ones must match the registry's.
    let mut root_writes = Vec::new();
    for (index, bytes) in input.roots.iter().enumerate() {
        let name = site::metadata_name("root", index as u64 + 1);
        let path = site_dir.join(site::METADATA_DIR).join(&name);
        match std::fs::read(&path) {
            Ok(existing) if &existing == bytes => {}
            Ok(_) => return Err(BuildError::RootMismatch { path, name }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => root_writes.push((name, bytes.clone())),
            Err(e) => return Err(FsError::new("reading", path, e).into()),
        }
    }

    // Write: targets, then delegated roles, targets, snapshot, roots, timestamp last.
    let mut written = write_targets(site_dir, &contents)?;
    trellis_client::fs::create_dir_all(&site_dir.join(site::METADATA_DIR))?;
    let (delegated, top): (Vec<&RoleOut>, Vec<&RoleOut>) = roles.iter().partition(|r| r.name != "targets");
    for group in [delegated, top] {
        let names: Vec<String> = group
            .par_iter()
            .map(|r| {
                let name = site::metadata_name(&r.name, r.version);
                write_atomic(&site_dir.join(site::METADATA_DIR).join(&name), &r.bytes)?;
                Ok(format!("{}/{name}", site::METADATA_DIR))
            })
            .collect::<Result<_, FsError>>()?;
        written.extend(names);
    }
    if let Some(snapshot) = snapshot_out {
        let name = site::metadata_name("snapshot", snapshot.version);
        write_atomic(&site_dir.join(site::METADATA_DIR).join(&name), &snapshot.bytes)?;
        written.push(format!("{}/{name}", site::METADATA_DIR));
    }
    for (name, bytes) in root_writes {
        write_atomic(&site_dir.join(site::METADATA_DIR).join(&name), &bytes)?;
        written.push(format!("{}/{name}", site::METADATA_DIR));
    }
    if let Some(bytes) = timestamp_out {
        write_atomic(&site::timestamp_file(site_dir), &bytes)?;
        written.push(format!("{}/timestamp.json", site::METADATA_DIR));
    }
    written.sort();
    report.written = written;
    Ok(report)
}

/// The id of the plugin a target under `index/` or `plugins/` belongs to.
fn owner(target: &str) -> Option<&str> {
    let mut parts = target.split('/');
    match parts.next()? {
        "index" => target.rsplit('/').next()?.strip_suffix(".json"),
        "plugins" => parts.nth(1),
        _ => None,
    }
}

/// A timestamp document naming `snapshot_bytes` as version `snapshot_version`.
pub fn timestamp_doc(
    version: u64,
    snapshot_version: u64,
    snapshot_bytes: &[u8],
    now: jiff::Timestamp,
    days: u32,
) -> Timestamp {
    let meta = MetaFile {
        version: snapshot_version,
        length: Some(snapshot_bytes.len() as u64),
        hashes: Some(BTreeMap::from([("sha256".to_owned(), Sha256::of(snapshot_bytes).to_hex())])),
        extra: Map::new(),
    };
    Timestamp {
        type_: "timestamp".into(),
        spec_version: trellis_schema::tuf::SPEC_VERSION.into(),
        version,
        expires: tuf::expiry(now, days),
        meta: BTreeMap::from([("snapshot.json".to_owned(), meta)]),
        extra: Map::new(),
    }
}

fn delegation_keys(
    role: &str,
    signers: Option<&[SigningKey]>,
    threshold: u32,
    published: Option<&Targets>,
) -> Result<RoleKeys, BuildError> {
    if let Some(signers) = signers {
        return Ok(RoleKeys::of(signers, threshold));
    }
    let delegations = published.and_then(|t| t.delegations.as_ref());
    let found = delegations.and_then(|d| {
        let entry = d.roles.as_ref()?.iter().find(|r| r.name == role)?;
        let keys = entry.keyids.iter().filter_map(|id| Some((id.clone(), d.keys.get(id)?.clone()))).collect();
        Some(RoleKeys { keys, threshold: entry.threshold })
    });
    found.ok_or_else(|| {
        BuildError::Sign(SignError::MissingKey {
            role: role.to_owned(),
            hint: "no key file configured and no published delegation to reuse".into(),
        })
    })
}

fn check_root(input: &BuildInput) -> Result<(), BuildError> {
    let Some(bytes) = input.roots.last() else {
        return Err(BuildError::Trust("the registry has no root/1.root.json; run trellis-index init".into()));
    };
    let root: Envelope<Root> =
        serde_json::from_slice(bytes).map_err(|e| BuildError::Trust(format!("newest root does not parse: {e}")))?;
    let root = root.signed;
    let snapshot_expires = tuf::expiry(input.now, input.expiry.snapshot);
    let expires: jiff::Timestamp = root
        .expires
        .parse()
        .map_err(|e| BuildError::Trust(format!("root version {}: expires {:?}: {e}", root.version, root.expires)))?;
    if expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string() < snapshot_expires {
        return Err(BuildError::Trust(format!(
            "root version {} expires at {}, before the snapshot signed now would ({snapshot_expires}); \
             sign a new root first: trellis-index rotate REGISTRY root",
            root.version, root.expires
        )));
    }
    for (role, signers) in [
        (TopRole::Targets, &input.signers.targets),
        (TopRole::Snapshot, &input.signers.snapshot),
        (TopRole::Timestamp, &input.signers.timestamp),
    ] {
        let Some(signers) = signers else { continue };
        let allowed = root.roles.get(&role).map(|r| r.keyids.clone()).unwrap_or_default();
        for key in signers {
            if !allowed.contains(key.key_id()) {
                return Err(BuildError::Trust(format!(
                    "the configured {} key {} is not a {} key of root version {}; fix keys.{} in trellis-registry.json or rotate",
                    role.as_str(),
                    key.key_id().short(),
                    role.as_str(),
                    root.version,
                    role.as_str()
                )));
            }
        }
    }
    Ok(())
}

fn check_dependencies(input: &BuildInput) -> Result<(), BuildError> {
    for plugin in &input.plugins {
        for release in &plugin.releases {
            for dependency in &release.manifest.dependencies {
                if !input.known_plugins.contains(&dependency.id) {
                    return Err(BuildError::UnknownDependency {
                        release: release.manifest.release_name(),
                        dependency: dependency.id.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Writes the content files that are not in the site yet; returns their site paths.
fn write_targets(site_dir: &Path, contents: &[TargetOut]) -> Result<Vec<String>, FsError> {
    let written: Vec<Option<String>> = contents
        .par_iter()
        .map(|t| {
            let Some(content) = &t.content else { return Ok(None) };
            let relative = format!("{}/{}", site::TARGETS_DIR, site::hashed_target_path(&t.target, &t.sha256));
            let path = site_dir.join(&relative);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.len() == t.file.length => return Ok(None),
                Ok(_) | Err(_) => {}
            }
            if let Some(parent) = path.parent() {
                trellis_client::fs::create_dir_all(parent)?;
            }
            match content {
                Content::Bytes(bytes) => write_atomic(&path, bytes)?,
                Content::Copy(from) => write_atomic_with(&path, |out| {
                    let mut input = std::fs::File::open(from)?;
                    io::copy(&mut input, out).map(|_| ())
                })?,
            }
            Ok(Some(relative))
        })
        .collect::<Result<_, FsError>>()?;
    Ok(written.into_iter().flatten().collect())
}
