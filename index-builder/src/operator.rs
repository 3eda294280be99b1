//! Operator commands that change a registry or a site without a full build:
//! `init`, `timestamp`, `yank`/`unyank`, `rollout`, `block`/`unblock` and key rotation.
//!
//! Owns editing the registry's own files (configuration, `root/`, `yanks.json`,
//! `rollouts.json`, `blocklist.json`, `keys/`) safely (atomic writes, refusing to lose
//! anything), and re-signing `timestamp.json`. Publishing the effect of a yank, a
//! rollout or a block in the site is an ordinary incremental build ([`crate::build`])
//! that the caller runs next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Map;
use trellis_client::fs::{FsError, write_atomic};
use trellis_schema::blocklist::{BlockEntry, Blocklist};
use trellis_schema::index::Percent;
use trellis_schema::tuf::{self as schema, Root, TopRole};
use trellis_schema::{KeyId, PluginId, PublicKey, SigningKey, canonical};

use crate::build::{self, BuildError, PreviousSite};
use crate::keyfile::{self, KeyFileIoError};
use crate::registry::{
    BLOCKLIST_FILE, CONFIG_FILE, Expiry, KeyConfig, REMOTE_SUFFIX, ROLLOUTS_FILE, Registry, RegistryConfig,
    RegistryError, RoleKeyFiles, Rollout, Rollouts, YANKS_FILE, Yank, Yanks,
};
use crate::site;
use crate::tuf;

/// An operator command that failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A key could not be created or read.
    #[error(transparent)]
    Key(#[from] KeyFileIoError),
    /// A file could not be written.
    #[error(transparent)]
    Io(#[from] FsError),
    /// The site could not be read or signed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The command does not apply.
    #[error("{0}")]
    Refused(String),
}

/// Options of [`init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Display name of the store.
    pub name: String,
    /// Where the site will be served.
    pub base_url: String,
    /// Number of root keys to create.
    pub root_keys: u32,
    /// Root signatures required.
    pub root_threshold: u32,
    /// `2^bin_bits` hash bins.
    pub bin_bits: u32,
    /// `2^publisher_bin_bits` publisher bins.
    pub publisher_bin_bits: u32,
    /// Expiry per role.
    pub expiry: Expiry,
    /// Now, for the root's expiry.
    pub now: jiff::Timestamp,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), OperatorError> {
    let mut text =
        serde_json::to_vec_pretty(value).map_err(|e| OperatorError::Refused(format!("{}: {e}", path.display())))?;
    text.push(b'\n');
    if let Some(parent) = path.parent() {
        trellis_client::fs::create_dir_all(parent)?;
    }
    write_atomic(path, &text)?;
    Ok(())
}

fn role_files(names: &[&str], threshold: u32) -> RoleKeyFiles {
    RoleKeyFiles { keys: names.iter().map(|n| PathBuf::from(format!("keys/{n}.key"))).collect(), threshold }
}

/// Creates a new registry at `dir`: configuration, fresh keys for every role under
/// `keys/`, root version 1 signed by all root keys, empty publishers, releases, yanks
/// and blocklist. Refuses when `dir` already holds a registry.
pub fn init(dir: &Path, options: &InitOptions) -> Result<RegistryConfig, OperatorError> {
    if dir.join(CONFIG_FILE).exists() {
        return Err(OperatorError::Refused(format!("{} already exists", dir.join(CONFIG_FILE).display())));
    }
    if options.root_threshold == 0 || options.root_threshold > options.root_keys {
        return Err(OperatorError::Refused(format!(
            "root threshold {} must be between 1 and the number of root keys ({})",
            options.root_threshold, options.root_keys
        )));
    }
    let root_names: Vec<String> = (1..=options.root_keys).map(|n| format!("root-{n}")).collect();
    let root_refs: Vec<&str> = root_names.iter().map(String::as_str).collect();
    let keys = KeyConfig {
        root: role_files(&root_refs, options.root_threshold),
        targets: role_files(&["targets"], 1),
        snapshot: role_files(&["snapshot"], 1),
        timestamp: role_files(&["timestamp"], 1),
        security: role_files(&["security"], 1),
        publishers: role_files(&["publishers"], 1),
        bins: role_files(&["bins"], 1),
    };
    let config = RegistryConfig {
        name: options.name.clone(),
        base_url: options.base_url.clone(),
        mirrors: Vec::new(),
        expiry_days: options.expiry.clone(),
        bin_bits: options.bin_bits,
        publisher_bin_bits: options.publisher_bin_bits,
        keys,
        deltas: crate::delta::DeltaPolicy::default(),
        scanners: crate::analysis::scanners::ScannerConfig::default(),
        sandbox: None,
        domain_proofs: crate::domain_proof::DomainProofSettings::default(),
    };
    let mut generated: BTreeMap<PathBuf, SigningKey> = BTreeMap::new();
    for role in all_roles(&config.keys) {
        for path in &role.keys {
            generated.insert(path.clone(), keyfile::generate(&dir.join(path))?);
        }
    }
    let get = |role: &RoleKeyFiles| -> Vec<SigningKey> {
        role.keys.iter().filter_map(|p| generated.get(p).cloned()).collect()
    };
    let root = root_doc(
        1,
        &options.now,
        options.expiry.root,
        [
            (TopRole::Root, get(&config.keys.root), options.root_threshold),
            (TopRole::Targets, get(&config.keys.targets), 1),
            (TopRole::Snapshot, get(&config.keys.snapshot), 1),
            (TopRole::Timestamp, get(&config.keys.timestamp), 1),
        ],
    );
    let root_signers = get(&config.keys.root);
    write_root(dir, root, &root_signers.iter().collect::<Vec<_>>())?;
    write_json(&dir.join(CONFIG_FILE), &config)?;
    write_json(&dir.join(YANKS_FILE), &Yanks::default())?;
    write_json(&dir.join(BLOCKLIST_FILE), &Blocklist::default())?;
    for sub in ["publishers", "releases"] {
        trellis_client::fs::create_dir_all(&dir.join(sub))?;
        write_atomic(&dir.join(sub).join(".gitkeep"), b"")?;
    }
    write_atomic(
        &dir.join(".gitignore"),
        b"# Private role keys: keep them offline or in CI secrets, never in git.\n/keys/\n# Downloaded remote packages.\n/.cache/\n",
    )?;
    Ok(config)
}

fn all_roles(keys: &KeyConfig) -> [&RoleKeyFiles; 7] {
    [&keys.root, &keys.targets, &keys.snapshot, &keys.timestamp, &keys.security, &keys.publishers, &keys.bins]
}

fn root_doc(version: u64, now: &jiff::Timestamp, days: u32, roles: [(TopRole, Vec<SigningKey>, u32); 4]) -> Root {
    let mut keys: BTreeMap<KeyId, PublicKey> = BTreeMap::new();
    let mut role_map = BTreeMap::new();
    for (role, signers, threshold) in roles {
        for key in &signers {
            keys.insert(key.key_id().clone(), key.public().clone());
        }
        role_map
            .insert(role, schema::RoleKeys { keyids: signers.iter().map(|k| k.key_id().clone()).collect(), threshold });
    }
    Root {
        type_: "root".into(),
        spec_version: schema::SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: tuf::expiry(*now, days),
        keys,
        roles: role_map,
        extra: Map::new(),
    }
}

fn write_root(dir: &Path, root: Root, signers: &[&SigningKey]) -> Result<(), OperatorError> {
    let version = root.version;
    let envelope = schema::sign(root, signers).map_err(|e| OperatorError::Refused(format!("signing root: {e}")))?;
    let bytes = canonical::to_vec_of(&envelope).map_err(|e| OperatorError::Refused(format!("root: {e}")))?;
    let path = dir.join("root").join(site::metadata_name("root", version));
    if path.exists() {
        return Err(OperatorError::Refused(format!(
            "{} already exists; a signed root is never replaced",
            path.display()
        )));
    }
    trellis_client::fs::create_dir_all(&dir.join("root"))?;
    write_atomic(&path, &bytes)?;
    Ok(())
}

fn keys_of(registry: &Registry, role: &RoleKeyFiles, name: &str) -> Result<Vec<SigningKey>, OperatorError> {
    registry.signing_keys(role)?.ok_or_else(|| {
        let files: Vec<String> = role.keys.iter().map(|p| registry.dir.join(p).display().to_string()).collect();
        OperatorError::Refused(format!(
            "the {name} key is not available: need {} of {}",
            role.threshold.max(1),
            files.join(", ")
        ))
    })
}

/// Re-signs only `timestamp.json` of the site (same snapshot, version + 1, new expiry):
/// what the scheduled job runs. Returns the new version.
pub fn timestamp(registry: &Registry, site_dir: &Path, now: jiff::Timestamp) -> Result<u64, OperatorError> {
    let previous = PreviousSite::open(site_dir)?.ok_or_else(|| {
        OperatorError::Refused(format!("{} has no metadata/timestamp.json; build first", site_dir.display()))
    })?;
    let keys = keys_of(registry, &registry.config.keys.timestamp, "timestamp")?;
    let snapshot_file = site::metadata_file(site_dir, "snapshot", previous.snapshot.signed.version);
    let snapshot_bytes = std::fs::read(&snapshot_file).map_err(|e| FsError::new("reading", &snapshot_file, e))?;
    let doc = build::timestamp_doc(
        previous.timestamp.signed.version + 1,
        previous.snapshot.signed.version,
        &snapshot_bytes,
        now,
        registry.config.expiry_days.timestamp,
    );
    let version = doc.version;
    let bytes = tuf::sign_role("timestamp", doc, Some(&keys), "keys.timestamp").map_err(BuildError::from)?;
    write_atomic(&site::timestamp_file(site_dir), &bytes)?;
    Ok(version)
}

/// Refuses a release that has neither a package nor a remote package descriptor.
fn require_release(registry: &Registry, id: &PluginId, version: &semver::Version) -> Result<(), OperatorError> {
    let dir = registry.dir.join("releases").join(id.as_str());
    let package = dir.join(format!("{version}.zip"));
    if package.exists() || dir.join(format!("{version}{REMOTE_SUFFIX}")).exists() {
        return Ok(());
    }
    Err(OperatorError::Refused(format!("{id} {version} is not in this registry ({} is missing)", package.display())))
}

/// Marks `id version` yanked in `yanks.json`. Refuses unknown releases and double yanks.
pub fn yank(registry: &Registry, id: &PluginId, version: &semver::Version, reason: &str) -> Result<(), OperatorError> {
    require_release(registry, id, version)?;
    let mut yanks = registry.yanks.clone();
    if yanks.contains(id, version) {
        return Err(OperatorError::Refused(format!("{id} {version} is already yanked")));
    }
    yanks.yanked.push(Yank { id: id.clone(), version: version.clone(), reason: reason.to_owned() });
    yanks.yanked.sort_by(|a, b| (&a.id, &a.version).cmp(&(&b.id, &b.version)));
    write_json(&registry.dir.join(YANKS_FILE), &yanks)
}

/// Removes the yank of `id version`. Refuses when it is not yanked.
pub fn unyank(registry: &Registry, id: &PluginId, version: &semver::Version) -> Result<(), OperatorError> {
    let mut yanks = registry.yanks.clone();
    let before = yanks.yanked.len();
    yanks.yanked.retain(|y| !(&y.id == id && &y.version == version));
    if yanks.yanked.len() == before {
        return Err(OperatorError::Refused(format!("{id} {version} is not yanked")));
    }
    write_json(&registry.dir.join(YANKS_FILE), &yanks)
}

/// Sets the staged rollout of `id version` in `rollouts.json`: the share of installs
/// offered it as an update. 100 ends the rollout (the entry is removed: everyone gets
/// it); 0 halts it (installs that already updated keep it). Refuses unknown releases.
/// Returns the share before the change (`None` when the release went to everyone).
pub fn rollout(
    registry: &Registry,
    id: &PluginId,
    version: &semver::Version,
    percent: Percent,
) -> Result<Option<Percent>, OperatorError> {
    require_release(registry, id, version)?;
    let mut rollouts: Rollouts = registry.rollouts.clone();
    let before = rollouts.percent(id, version);
    rollouts.rollouts.retain(|r| !(&r.id == id && &r.version == version));
    if percent != Percent::ALL {
        rollouts.rollouts.push(Rollout { id: id.clone(), version: version.clone(), percent });
        rollouts.rollouts.sort_by(|a, b| (&a.id, &a.version).cmp(&(&b.id, &b.version)));
    }
    write_json(&registry.dir.join(ROLLOUTS_FILE), &rollouts)?;
    Ok(before)
}

/// Adds a blocklist entry.
pub fn block(registry: &Registry, entry: BlockEntry) -> Result<(), OperatorError> {
    let mut list = registry.blocklist.clone();
    if list.entries.iter().any(|e| e.id == entry.id && e.versions == entry.versions && e.sha256 == entry.sha256) {
        return Err(OperatorError::Refused(format!("{} is already blocked with that scope", entry.id)));
    }
    list.entries.push(entry);
    write_json(&registry.dir.join(BLOCKLIST_FILE), &list)
}

/// Removes the blocklist entries of `id` (only those with exactly `versions` when
/// given). Returns how many were removed; refuses when none matched.
pub fn unblock(
    registry: &Registry,
    id: &PluginId,
    versions: Option<&semver::VersionReq>,
) -> Result<usize, OperatorError> {
    let mut list = registry.blocklist.clone();
    let before = list.entries.len();
    list.entries.retain(|e| !(&e.id == id && versions.is_none_or(|v| e.versions.as_ref() == Some(v))));
    let removed = before - list.entries.len();
    if removed == 0 {
        return Err(OperatorError::Refused(format!("no blocklist entry matches {id}")));
    }
    write_json(&registry.dir.join(BLOCKLIST_FILE), &list)?;
    Ok(removed)
}

/// A role whose keys [`rotate`] replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RotatedRole {
    /// Root: root N+1 signed by the old and the new root keys.
    Root,
    /// Top-level targets (new root).
    Targets,
    /// Snapshot (new root).
    Snapshot,
    /// Timestamp (new root).
    Timestamp,
    /// The `security` delegation (new targets.json at the next build).
    Security,
    /// The `publishers` delegation (new targets.json at the next build).
    Publishers,
    /// The `bins` delegation and every bin (re-signed at the next build).
    Bins,
}

/// Replaces the keys of `role` with fresh ones. The old key files move to
/// `keys/retired/<name>.<version or n>.key`; the configuration points at the new ones.
/// For root and the other top-level roles this signs root version N+1 with the old
/// root keys (meeting the old threshold) and, for a root rotation, the new ones too.
/// Delegated roles change in `targets.json` at the next build, which then needs the
/// targets key. Returns the paths of the new key files.
pub fn rotate(registry: &Registry, role: RotatedRole, now: jiff::Timestamp) -> Result<Vec<PathBuf>, OperatorError> {
    let mut config = registry.config.clone();
    let files = match role {
        RotatedRole::Root => &mut config.keys.root,
        RotatedRole::Targets => &mut config.keys.targets,
        RotatedRole::Snapshot => &mut config.keys.snapshot,
        RotatedRole::Timestamp => &mut config.keys.timestamp,
        RotatedRole::Security => &mut config.keys.security,
        RotatedRole::Publishers => &mut config.keys.publishers,
        RotatedRole::Bins => &mut config.keys.bins,
    };
    let name = format!("{role:?}").to_lowercase();
    let old_root_keys = keys_of(registry, &registry.config.keys.root, "root")?;
    let root_version = registry.root().map_or(0, |r| r.signed.version);
    if root_version == 0 {
        return Err(OperatorError::Refused("the registry has no root; run init".into()));
    }
    // Fresh keys beside the old ones, then retire the old files.
    let mut new_paths = Vec::new();
    let mut new_keys = Vec::new();
    for (index, old) in files.keys.iter().enumerate() {
        let stem =
            old.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| format!("{name}-{index}"));
        let base = stem.split(".v").next().unwrap_or(&stem).to_owned();
        let fresh = PathBuf::from(format!("keys/{base}.v{}.key", root_version + 1));
        new_keys.push(keyfile::generate(&registry.dir.join(&fresh))?);
        new_paths.push(fresh);
    }
    let retired: Vec<PathBuf> = std::mem::replace(&mut files.keys, new_paths.clone());
    let threshold = files.threshold;
    let top = match role {
        RotatedRole::Root => Some(TopRole::Root),
        RotatedRole::Targets => Some(TopRole::Targets),
        RotatedRole::Snapshot => Some(TopRole::Snapshot),
        RotatedRole::Timestamp => Some(TopRole::Timestamp),
        _ => None,
    };
    if let Some(top) = top {
        let Some(current) = registry.root() else { return Err(OperatorError::Refused("no root".into())) };
        let mut next = current.signed.clone();
        next.version += 1;
        next.expires = tuf::expiry(now, config.expiry_days.root);
        let old_ids = next.roles.get(&top).map(|r| r.keyids.clone()).unwrap_or_default();
        next.roles
            .insert(top, schema::RoleKeys { keyids: new_keys.iter().map(|k| k.key_id().clone()).collect(), threshold });
        let still_used: Vec<KeyId> = next.roles.values().flat_map(|r| r.keyids.clone()).collect();
        for id in old_ids {
            if !still_used.contains(&id) {
                next.keys.remove(&id);
            }
        }
        for key in &new_keys {
            next.keys.insert(key.key_id().clone(), key.public().clone());
        }
        let mut signers: Vec<&SigningKey> = old_root_keys.iter().collect();
        if top == TopRole::Root {
            signers.extend(new_keys.iter());
        }
        write_root(&registry.dir, next, &signers)?;
    }
    for old in retired {
        let from = registry.dir.join(&old);
        if from.exists() {
            let to = registry.dir.join("keys/retired").join(old.file_name().unwrap_or_default());
            trellis_client::fs::create_dir_all(&registry.dir.join("keys/retired"))?;
            std::fs::rename(&from, &to).map_err(|e| FsError::new("retiring key file", &from, e))?;
        }
    }
    write_json(&registry.dir.join(CONFIG_FILE), &config)?;
    Ok(new_paths)
}
