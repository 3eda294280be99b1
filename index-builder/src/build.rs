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
use trellis_client::fs::{FsError, write_atomic};
use trellis_schema::blocklist::Blocklist;
use trellis_schema::canonical;
use trellis_schema::index::{BlobRef, IndexDoc, IndexRelease};
use trellis_schema::publisher::PublisherRecord;
use trellis_schema::tuf::{Envelope, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp, TopRole};
use trellis_schema::{PluginId, Sha256, SigningKey, VendorId};

use crate::registry::{Expiry, Registry, RegistryError};
use crate::release::{BlobSource, PluginInput};
use crate::site;
use crate::tuf::{self, BINS_ROLE, PUBLISHERS_ROLE, RoleKeys, SECURITY_ROLE, SignError};

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
    /// Whether content files are flushed to disk before metadata names them.
    pub durability: Durability,
}

/// Whether a build flushes the content files it wrote before publishing metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync every new content file and directory before writing metadata (the
    /// default: a crash never leaves metadata naming a file that is not on disk).
    Fsync,
    /// Leave flushing to the OS: for throwaway sites (benchmarks, previews) where a
    /// crash means rebuilding anyway. Metadata files are always written atomically.
    OsBuffered,
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
        durability: Durability::Fsync,
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
    length: u64,
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
    TargetOut { length: bytes.len() as u64, target, sha256, content: Some(Content::Bytes(bytes.into())) }
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
            out.push(TargetOut { target, length: blob.length, sha256: blob.sha256, content });
        }
    }
    Ok(out)
}

/// Target entries of one role, compactly: target path → (SHA-256, length). At 10^6
/// releases a full `TargetFile` per entry would cost gigabytes; documents are made
/// from these one role at a time, when deciding and when signing.
type Entries = BTreeMap<String, (Sha256, u64)>;

/// Whether a role keeps its published version or gets a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    Keep(u64),
    New { version: u64, expires: String },
}

/// One targets role of the site being built.
struct RolePlan<'a> {
    name: String,
    entries: Entries,
    delegations: Option<trellis_schema::tuf::Delegations>,
    keys: Option<&'a [SigningKey]>,
    days: u32,
    decision: Decision,
}

impl<'a> RolePlan<'a> {
    fn new(
        name: &str,
        entries: Entries,
        delegations: Option<trellis_schema::tuf::Delegations>,
        keys: Option<&'a [SigningKey]>,
        days: u32,
    ) -> Self {
        Self { name: name.to_owned(), entries, delegations, keys, days, decision: Decision::Keep(0) }
    }

    /// Keeps the published version when nothing changed (same entries, delegations
    /// and signing keys, fresh enough), else the next version: [`tuf::settle`] over
    /// compact entries, without materialising documents.
    fn decide(&self, published: Option<&Envelope<Targets>>, now: jiff::Timestamp) -> Decision {
        if let Some(published) = published
            && is_plain(&published.signed)
            && published.signed.delegations == self.delegations
            && tuf::signed_by_same_keys(published, self.keys)
            && !tuf::needs_refresh(&published.signed.expires, now, self.days)
            && published.signed.targets.len() == self.entries.len()
            && published
                .signed
                .signed_entries()
                .into_iter()
                .zip(&self.entries)
                .all(|((p, e), (q, f))| p == q && e == *f)
        {
            return Decision::Keep(published.signed.version);
        }
        Decision::New { version: published.map_or(1, |p| p.signed.version + 1), expires: tuf::expiry(now, self.days) }
    }

    /// The signed file of this role at `version`: the fast canonical writer for plain
    /// documents (every hash bin), the generic one otherwise.
    fn sign(&self, version: u64, expires: &str) -> Result<Vec<u8>, BuildError> {
        let keys = self.keys.ok_or_else(|| SignError::MissingKey {
            role: self.name.clone(),
            hint: "check the key files in trellis-registry.json".into(),
        })?;
        if self.delegations.is_none() {
            let signed = plain_targets_canonical(&self.entries, version, expires);
            return Ok(envelope_canonical(&signed, keys));
        }
        let mut doc = self.doc();
        doc.version = version;
        doc.expires = expires.to_owned();
        Ok(tuf::sign_role(&self.name, doc, Some(keys), "")?)
    }

    /// The role's document, without version and expiry.
    fn doc(&self) -> Targets {
        let targets =
            self.entries.iter().map(|(path, (sha, length))| (path.clone(), target_file(sha, *length))).collect();
        tuf::targets_doc(targets, self.delegations.clone())
    }
}

/// Brings the published entries of a bin into `entries`: entries of plugins this
/// build did not load are kept as published; for the others, a published blob must
/// still be there with the same bytes (releases are immutable and never removed).
fn merge_bin(
    entries: &mut Entries,
    published: &Targets,
    full: bool,
    changed: &BTreeSet<String>,
) -> Result<(), BuildError> {
    for (target, file) in &published.signed_entries() {
        let owned_by_build = full || owner(target).is_some_and(|id| changed.contains(id));
        if !owned_by_build {
            entries.insert((*target).to_owned(), *file);
            continue;
        }
        if !target.starts_with("plugins/") {
            continue;
        }
        match entries.get(*target) {
            None => return Err(BuildError::Removed { target: (*target).to_owned() }),
            Some(now) if now != file => {
                return Err(BuildError::Immutable {
                    target: (*target).to_owned(),
                    published: file.0.to_hex(),
                    new: now.0.to_hex(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether a published targets document is one this builder writes: nothing but
/// SHA-256 hashes and lengths, no custom data, no unknown fields.
fn is_plain(doc: &Targets) -> bool {
    doc.type_ == "targets"
        && doc.spec_version == trellis_schema::tuf::SPEC_VERSION
        && doc.extra.is_empty()
        && doc
            .targets
            .values()
            .all(|f| f.custom.is_none() && f.extra.is_empty() && f.hashes.len() == 1 && f.hashes.contains_key("sha256"))
}

/// Canonical JSON of a targets document without delegations, written directly: at
/// 10^6 entries going through `serde_json::Value` costs more than everything else.
/// Keys in code-point order: `_type`, `expires`, `spec_version`, `targets`, `version`;
/// per target `hashes`, `length`. Strings escape only `"` and `\`, as
/// [`trellis_schema::canonical`] does.
fn plain_targets_canonical(entries: &Entries, version: u64, expires: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 160);
    out.extend_from_slice(b"{\"_type\":\"targets\",\"expires\":");
    canonical_string(expires, &mut out);
    out.extend_from_slice(b",\"spec_version\":");
    canonical_string(trellis_schema::tuf::SPEC_VERSION, &mut out);
    out.extend_from_slice(b",\"targets\":{");
    for (index, (path, (sha, length))) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        canonical_string(path, &mut out);
        out.extend_from_slice(b":{\"hashes\":{\"sha256\":\"");
        out.extend_from_slice(sha.to_hex().as_bytes());
        out.extend_from_slice(b"\"},\"length\":");
        out.extend_from_slice(length.to_string().as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"},\"version\":");
    out.extend_from_slice(version.to_string().as_bytes());
    out.push(b'}');
    out
}

fn canonical_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in text.as_bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

/// Canonical JSON of `{"signatures": [...], "signed": <signed>}` with a signature of
/// `signed` by each key, in order (the same bytes as [`tuf::sign_role`]).
fn envelope_canonical(signed: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(signed.len() + 64 + keys.len() * 220);
    out.extend_from_slice(b"{\"signatures\":[");
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"keyid\":");
        canonical_string(key.key_id().as_str(), &mut out);
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(hex::encode(key.sign(signed)).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"],\"signed\":");
    out.extend_from_slice(signed);
    out.push(b'}');
    out
}

/// Compact entries of a published targets document.
trait SignedEntries {
    fn signed_entries(&self) -> Vec<(&str, (Sha256, u64))>;
}

impl SignedEntries for Targets {
    fn signed_entries(&self) -> Vec<(&str, (Sha256, u64))> {
        self.targets
            .iter()
            .map(|(path, file)| {
                let sha = file.hashes.get("sha256").and_then(|h| h.parse().ok()).unwrap_or(Sha256::from_bytes([0; 32]));
                (path.as_str(), (sha, file.length))
            })
            .collect()
    }
}

/// Builds `input` into the site directory `site`, reading its previous state.
pub fn build(mut input: BuildInput, site_dir: &Path) -> Result<BuildReport, BuildError> {
    let previous = PreviousSite::open(site_dir)?;
    if previous.is_none() && input.scope != Scope::Full {
        return Err(BuildError::Trust(format!(
            "{} has no published site to update; run a full build (without --only) first",
            site_dir.display()
        )));
    }
    let now = input.now;
    check_root(&input)?;
    check_dependencies(&input)?;

    // Targets of the changed plugins, grouped by bin. The inputs are dropped as soon
    // as their index docs exist: at 10^6 releases they are the largest thing held.
    let plugins = std::mem::take(&mut input.plugins);
    let releases = plugins.iter().map(|p| p.releases.len()).sum();
    let plugin_count = plugins.len();
    let changed_ids: BTreeSet<String> = plugins.iter().map(|p| p.id.as_str().to_owned()).collect();
    let per_plugin: Vec<Vec<TargetOut>> =
        plugins.into_par_iter().map(|p| plugin_targets(&p)).collect::<Result<_, _>>()?;
    let bits = input.bin_bits;
    let mut bin_entries: BTreeMap<String, Entries> = BTreeMap::new();
    if input.scope == Scope::Full {
        for number in 0..(1u32 << bits) {
            bin_entries.insert(site::bin_name(number, bits, tuf::BIN_PREFIX), BTreeMap::new());
        }
    }
    let mut contents: Vec<TargetOut> = Vec::new();
    for target in per_plugin.into_iter().flatten() {
        let bin = site::bin_for_target(&target.target, bits, tuf::BIN_PREFIX);
        bin_entries.entry(bin).or_default().insert(target.target.clone(), (target.sha256, target.length));
        if target.content.is_some() {
            contents.push(target);
        }
    }

    // Publishers and the blocklist.
    let mut publisher_entries = BTreeMap::new();
    for record in input.publishers.values() {
        let t = bytes_target(site::publisher_target(&record.id), canonical::to_vec_of(record)?);
        publisher_entries.insert(t.target.clone(), (t.sha256, t.length));
        contents.push(t);
    }
    let blocklist = bytes_target(site::BLOCKLIST_TARGET.to_owned(), canonical::to_vec_of(&input.blocklist)?);
    let security_entries = BTreeMap::from([(blocklist.target.clone(), (blocklist.sha256, blocklist.length))]);
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

    // Plan every targets role, then decide its version against the published one.
    let expiry = &input.expiry;
    let signers = &input.signers;
    let mut plans = vec![
        RolePlan::new(
            "targets",
            BTreeMap::new(),
            Some(tuf::top_delegations(&security_keys, &publishers_keys, &bins_keys)),
            signers.targets.as_deref(),
            expiry.targets,
        ),
        RolePlan::new(
            BINS_ROLE,
            BTreeMap::new(),
            Some(tuf::bin_delegations(&bins_keys, bits)),
            signers.bins.as_deref(),
            expiry.delegations,
        ),
        RolePlan::new(SECURITY_ROLE, security_entries, None, signers.security.as_deref(), expiry.delegations),
        RolePlan::new(PUBLISHERS_ROLE, publisher_entries, None, signers.publishers.as_deref(), expiry.delegations),
    ];
    for (name, entries) in bin_entries {
        plans.push(RolePlan::new(&name, entries, None, signers.bins.as_deref(), expiry.delegations));
    }
    let full = input.scope == Scope::Full;
    plans.par_iter_mut().try_for_each(|plan| {
        let published = match &previous {
            Some(_) if plan.name == "targets" => previous_targets.clone(),
            Some(prev) => prev.role(&plan.name)?,
            None => None,
        };
        if plan.name.starts_with(&format!("{}-", tuf::BIN_PREFIX))
            && let Some(published) = &published
        {
            merge_bin(&mut plan.entries, &published.signed, full, &changed_ids)?;
        }
        plan.decision = plan.decide(published.as_ref(), now);
        Ok::<(), BuildError>(())
    })?;

    // Every role that changes must have its keys here, before anything is written;
    // the documents themselves are signed while writing, one at a time.
    if let Some(plan) = plans.iter().find(|p| matches!(p.decision, Decision::New { .. }) && p.keys.is_none()) {
        return Err(SignError::MissingKey {
            role: plan.name.clone(),
            hint: "check the key files in trellis-registry.json".into(),
        }
        .into());
    }

    // Snapshot and timestamp.
    let mut meta: BTreeMap<String, MetaFile> = match (&previous, &input.scope) {
        (Some(prev), Scope::Plugins(_)) => prev.snapshot.signed.meta.clone(),
        _ => BTreeMap::new(),
    };
    for plan in &plans {
        let version = match &plan.decision {
            Decision::Keep(version) | Decision::New { version, .. } => *version,
        };
        meta.insert(format!("{}.json", plan.name), MetaFile { version, length: None, hashes: None, extra: Map::new() });
    }
    let prev_snapshot = previous.as_ref().map(|p| &p.snapshot.signed);
    let snapshot_unchanged = previous.as_ref().is_some_and(|p| {
        p.snapshot.signed.meta == meta
            && !tuf::needs_refresh(&p.snapshot.signed.expires, now, expiry.snapshot)
            && tuf::signed_by_same_keys(&p.snapshot, input.signers.snapshot.as_deref())
            && tuf::signed_by_same_keys(&p.timestamp, input.signers.timestamp.as_deref())
    });
    let mut report = BuildReport { plugins: plugin_count, releases, ..BuildReport::default() };
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
        (Some((version, bytes)), Some(ts_bytes))
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

    // Write: targets, then every targets role, then snapshot and roots, each batch
    // durable before the next names it; timestamp.json last, atomically.
    let durability = input.durability;
    let mut written = write_targets(site_dir, &contents)?;
    make_durable(site_dir, &written, durability)?;
    trellis_client::fs::create_dir_all(&site_dir.join(site::METADATA_DIR))?;
    let write_metadata = |name: String, bytes: &[u8]| -> Result<String, FsError> {
        write_content(&site_dir.join(site::METADATA_DIR).join(&name), &Content::Bytes(bytes.into()))?;
        Ok(format!("{}/{name}", site::METADATA_DIR))
    };
    let role_files: Vec<String> = plans
        .into_par_iter()
        .filter_map(|plan| match &plan.decision {
            Decision::Keep(_) => None,
            Decision::New { version, expires } => Some(
                plan.sign(*version, expires)
                    .and_then(|bytes| Ok(write_metadata(site::metadata_name(&plan.name, *version), &bytes)?)),
            ),
        })
        .collect::<Result<_, BuildError>>()?;
    make_durable(site_dir, &role_files, durability)?;
    written.extend(role_files);
    let mut last = Vec::new();
    if let Some((version, bytes)) = snapshot_out {
        last.push(write_metadata(site::metadata_name("snapshot", version), &bytes)?);
    }
    for (name, bytes) in root_writes {
        last.push(write_metadata(name, &bytes)?);
    }
    make_durable(site_dir, &last, durability)?;
    written.extend(last);
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

/// Writes one content-addressed file: a temp file in the same directory renamed into
/// place, without an fsync; [`make_durable`] makes the whole batch durable before any
/// metadata names it.
fn write_content(path: &Path, content: &Content) -> Result<(), FsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = trellis_client::fs::temp_builder(".trellis-tmp-")
        .tempfile_in(dir)
        .map_err(|e| FsError::new("creating a temp file in", dir, e))?;
    let written = match content {
        Content::Bytes(bytes) => io::Write::write_all(temp.as_file_mut(), bytes),
        Content::Copy(from) => {
            std::fs::File::open(from).and_then(|mut input| io::copy(&mut input, temp.as_file_mut()).map(|_| ()))
        }
    };
    written.map_err(|e| FsError::new("writing", temp.path(), e))?;
    temp.persist(path).map_err(|e| FsError::new("renaming into place", path, e.error))?;
    Ok(())
}

/// Makes the files just written (paths relative to `site_dir`) durable: one
/// `syncfs` of the site's file system on Linux, each file and directory elsewhere.
fn make_durable(site_dir: &Path, written: &[String], durability: Durability) -> Result<(), FsError> {
    if durability == Durability::OsBuffered || written.is_empty() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        let _ = written;
        let dir = std::fs::File::open(site_dir).map_err(|e| FsError::new("opening", site_dir, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| FsError::new("syncing the file system of", site_dir, e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    sync_each(site_dir, written)
}

/// Flushes each file written by this build, and its directory, to disk.
#[cfg(not(target_os = "linux"))]
fn sync_each(site_dir: &Path, written: &[String]) -> Result<(), FsError> {
    let dirs: BTreeSet<PathBuf> =
        written.iter().filter_map(|p| site_dir.join(p).parent().map(Path::to_owned)).collect();
    written.par_iter().try_for_each(|p| {
        let path = site_dir.join(p);
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("syncing", path, e))
    })?;
    dirs.par_iter().try_for_each(|d| trellis_client::fs::sync_dir(d))
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
                Ok(meta) if meta.len() == t.length => return Ok(None),
                Ok(_) | Err(_) => {}
            }
            if let Some(parent) = path.parent() {
                trellis_client::fs::create_dir_all(parent)?;
            }
            write_content(&path, content)?;
            Ok(Some(relative))
        })
        .collect::<Result<_, FsError>>()?;
    Ok(written.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_canonical_bin_equals_the_generic_signed_document() {
        let key = SigningKey::from_seed([3; 32]);
        let mut entries = Entries::new();
        entries.insert("index/0a/acme.clock.json".into(), (Sha256::of(b"a"), 12));
        entries.insert("plugins/acme/acme.clock/acme.clock-1.0.0.zip".into(), (Sha256::of(b"b"), 4096));
        entries.insert("plugins/q\"uote/x\\y.zip".into(), (Sha256::of(b"c"), 0));
        let keys = [key.clone()];
        let plan = RolePlan::new("bin-0", entries, None, Some(&keys), 90);
        let fast = plan.sign(7, "2027-01-01T00:00:00Z").unwrap();
        let mut doc = plan.doc();
        doc.version = 7;
        doc.expires = "2027-01-01T00:00:00Z".into();
        let generic = tuf::sign_role("bin-0", doc, Some(&keys), "").unwrap();
        assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(generic).unwrap());
    }

    #[test]
    fn unchanged_bin_keeps_its_version_and_a_changed_one_moves() {
        let key = SigningKey::from_seed([3; 32]);
        let keys = [key];
        let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let entries = Entries::from([("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"a"), 12))]);
        let plan = RolePlan::new("bin-0", entries.clone(), None, Some(&keys), 90);
        let bytes = plan.sign(3, &tuf::expiry(now, 90)).unwrap();
        let published: Envelope<Targets> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(plan.decide(Some(&published), now), Decision::Keep(3));
        let mut grown = entries;
        grown.insert("index/0a/acme.alarm.json".to_owned(), (Sha256::of(b"b"), 1));
        let plan = RolePlan::new("bin-0", grown, None, Some(&keys), 90);
        assert!(matches!(plan.decide(Some(&published), now), Decision::New { version: 4, .. }));
    }
}
