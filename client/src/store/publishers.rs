//! Publisher record chains on the client: verification from the pinned version, the
//! pins, and re-checking installed releases under the current record.
//!
//! Owns turning the `publishers/<vendor>.json` target of a registry (every version of
//! the record, see [`trellis_schema::publisher::chain`]) into the record releases are
//! checked against (`current_record`). The client pins, per registry and vendor, the
//! highest version it verified (`<metadata dir>/publisher-pins/<vendor>.json`, written
//! with [`crate::fs::write_atomic`], or with the other publishers of an update by
//! [`crate::fs::write_atomic_all`], or in a cold install's commit by
//! [`crate::fs::write_atomic_committing`]) and accepts a served chain only when every version
//! above the pin is a valid successor of the one before, starting from the pinned
//! record: signed by a threshold of the previous version's keys, or by the registry's
//! recovery signers (the `targets` role of the trusted root) and its own keys. A head
//! below the pin is a rollback; a different copy of the pinned version is a fork. With
//! no pin the chain is checked from version 1 (first use, vouched for by the registry's
//! `publishers` role). So the online `publishers` key can add vendors, but cannot change
//! the keys of a vendor this client has seen. A refused chain changes nothing.
//!
//! On every refresh (`Store::recheck_installed`, called by install, update,
//! `check_updates` and `scheduled_update`) each installed release's kept envelope is
//! re-verified under the current record of its vendor: the kept record is refreshed; a
//! release whose only signatures are by revoked or removed keys takes the re-signed
//! envelope the index doc now lists for the same version (same signed manifest), or is
//! stopped through the hooks and disabled with the reason. Fetching releases is
//! [`super::fetch`]'s; `trellis verify` reads the pins through [`pinned_record`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use semver::Version;
use trellis_schema::dsse::Envelope;
use trellis_schema::publisher::{
    ChainLimits, PublisherChain, PublisherRecord, RecoverySigners, RejectionReason, ReleaseSignatureError, SignedRecord,
};
use trellis_schema::{KeyId, PluginId, Sha256, VendorId};

use super::blocked::DisabledRelease;
use super::fetch::{PUBLISHER_RECORD_FILE, RELEASE_ENVELOPE_FILE};
use super::source::{Remotes, publisher_target};
use super::{Session, Store, StoreError};
use crate::events::Event;
use crate::state::{DataDir, Disabled, RegistryName};

/// Directory of the pins, inside a registry's metadata directory.
pub const PIN_DIR: &str = "publisher-pins";

/// The current record of a vendor: parsed, and the bytes kept beside installed
/// releases (the head record's JSON).
pub(crate) type CurrentRecord = (Arc<PublisherRecord>, Arc<[u8]>);

/// The pin file of `vendor` under the metadata directory `metadata_dir`.
fn pin_path(metadata_dir: &Path, vendor: &VendorId) -> PathBuf {
    metadata_dir.join(PIN_DIR).join(format!("{vendor}.json"))
}

fn read_pin(path: &Path, registry: &RegistryName) -> Result<Option<SignedRecord>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => trellis_schema::json::from_slice(&bytes).map(Some).map_err(|e| StoreError::BadDocument {
            registry: registry.clone(),
            target: path.display().to_string(),
            problem: format!("the pinned publisher record does not parse ({e}); the trusted state is damaged"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::fs::FsError::new("reading", path, e).into()),
    }
}

/// The pinned (newest verified) record of `vendor` in `registry`, if any.
pub fn pinned_record(dir: &DataDir, registry: &RegistryName, vendor: &VendorId) -> Option<PublisherRecord> {
    let path = pin_path(&dir.metadata_dir(registry), vendor);
    read_pin(&path, registry).ok().flatten().map(|pin| pin.signed)
}

/// The record of `vendor` in `registry` as its chain, verified from the pin, says it
/// is now; advances the pin. Nothing is written when the chain is refused.
pub(crate) fn current_record(
    remotes: &Remotes,
    registry: &RegistryName,
    vendor: &VendorId,
) -> Result<CurrentRecord, StoreError> {
    let (current, pin) = verify_record(remotes, registry, vendor)?;
    if let Some(pin) = pin {
        pin.write()?;
    }
    Ok(current)
}

/// A pin to advance: the file and the canonical bytes of the newest verified record.
#[derive(Debug)]
pub(crate) struct PinAdvance {
    path: PathBuf,
    bytes: Vec<u8>,
    registry: RegistryName,
    vendor: VendorId,
}

impl PinAdvance {
    fn write(self) -> Result<(), StoreError> {
        write_pins(vec![self])
    }

    /// The pin's file and its new bytes, for a caller writing it in a transaction's
    /// commit (the directory made to exist first, [`prepare_pin_dirs`]).
    pub(crate) fn file(&self) -> (&Path, &[u8]) {
        (&self.path, &self.bytes)
    }
}

/// Creates the directories `pins` go to (before they are written in a commit).
pub(crate) fn prepare_pin_dirs(pins: &[PinAdvance]) -> Result<(), StoreError> {
    for pin in pins {
        if let Some(parent) = pin.path.parent() {
            crate::fs::create_dir_all(parent)?;
        }
    }
    Ok(())
}

/// Writes pins verified together (the publishers of one install) with shared barriers
/// ([`crate::fs::write_atomic_all`]: each file flushed before its rename, two barriers
/// on Linux however many publishers). Each pin only ever moves to a record verified as
/// a valid successor of the one it held, so writing them after the verification of all
/// of them (not at all if one fails) loses nothing: an unwritten advance is verified
/// again from the older pin next time.
pub(crate) fn write_pins(pins: Vec<PinAdvance>) -> Result<(), StoreError> {
    prepare_pin_dirs(&pins)?;
    let files: Vec<(&Path, &[u8])> = pins.iter().map(|p| (p.path.as_path(), p.bytes.as_slice())).collect();
    crate::fs::write_atomic_all(&files)?;
    for pin in &pins {
        tracing::info!(registry = %pin.registry, vendor = %pin.vendor, "publisher record pinned");
    }
    Ok(())
}

/// [`current_record`] without writing: the record, and the pin to advance to it (none
/// when the pin holds its version already).
pub(crate) fn verify_record(
    remotes: &Remotes,
    registry: &RegistryName,
    vendor: &VendorId,
) -> Result<(CurrentRecord, Option<PinAdvance>), StoreError> {
    let path = publisher_target(vendor);
    let bytes = remotes.fetch(registry, &path)?.ok_or_else(|| StoreError::MissingTarget {
        registry: registry.clone(),
        target: path.clone(),
        what: format!("publisher record of {vendor}"),
    })?;
    let refuse = |chain| StoreError::Publisher { registry: registry.clone(), chain: Box::new(chain) };
    let limits = ChainLimits::default();
    let chain = PublisherChain::from_slice(vendor, &bytes, &limits).map_err(refuse)?;
    let pin_file = pin_path(&remotes.metadata_dir(registry)?, vendor);
    let pin = read_pin(&pin_file, registry)?;
    let (keys, threshold) = remotes.recovery_signers(registry)?;
    let recovery = RecoverySigners { keys: &keys, threshold };
    let verified = chain.verify(vendor, pin.as_ref(), Some(recovery), &limits).map_err(refuse)?;
    let head = verified.head;
    let mut advance = None;
    if pin.as_ref().is_none_or(|p| p.signed.version < head.signed.version) {
        let pinned = trellis_schema::canonical::to_vec_of(head).map_err(|e| StoreError::BadDocument {
            registry: registry.clone(),
            target: path.clone(),
            problem: e.to_string(),
        })?;
        advance =
            Some(PinAdvance { path: pin_file, bytes: pinned, registry: registry.clone(), vendor: vendor.clone() });
    }
    let record_bytes = serde_json::to_vec_pretty(&head.signed).map_err(|e| StoreError::BadDocument {
        registry: registry.clone(),
        target: path,
        problem: e.to_string(),
    })?;
    Ok(((Arc::new(head.signed.clone()), record_bytes.into()), advance))
}

/// Where the marker of `registry`'s last complete re-check lives, and what it must say
/// (the versions of the trusted root and snapshot) for no new re-check to be needed.
/// The installed set is not part of it: a release that enters it is verified under the
/// current record when it is downloaded, and `rollback` checks a kept release under
/// the pinned record.
fn recheck_marker(remotes: &Remotes, registry: &RegistryName) -> Result<(PathBuf, String), StoreError> {
    let (root, snapshot) = remotes.trusted_versions(registry)?;
    let marker = format!("root {root} snapshot {}\n", snapshot.map_or_else(|| "none".to_owned(), |v| v.to_string()));
    Ok((remotes.metadata_dir(registry)?.join(PIN_DIR).join(RECHECKED_FILE), marker))
}

/// Name of the marker of the last complete re-check, in a registry's pin directory.
const RECHECKED_FILE: &str = "rechecked";

/// What a re-check did to one installed release.
#[derive(Debug)]
enum Recheck {
    /// Verifies under the current record (the kept record was refreshed if needed).
    Valid,
    /// Took the re-signed envelope the index doc lists.
    Resigned,
    /// Signed only by revoked or removed keys, and no re-signed envelope: which keys, and why.
    Revoked {
        /// The keys whose signatures no longer count.
        keys: Vec<KeyId>,
        /// The sentence shown to users.
        why: String,
    },
}

impl Store {
    /// Re-verifies every installed, enabled plugin's kept envelope under the current
    /// record of its vendor (see the module docs). Returns the releases it disabled,
    /// with the reason. A refused record chain is an error and changes nothing.
    pub(crate) fn recheck_installed(
        &mut self,
        remotes: &Remotes,
        session: &Session<'_>,
    ) -> Result<Vec<DisabledRelease>, StoreError> {
        // A registry whose trusted root and snapshot are those of the last complete
        // re-check has nothing new to re-check: records are TUF targets, so a changed
        // record moves the snapshot (see `recheck_marker`).
        let mut markers: BTreeMap<RegistryName, (PathBuf, String)> = BTreeMap::new();
        for plugin in self.state().plugins().values() {
            if !markers.contains_key(&plugin.registry) {
                let marker = recheck_marker(remotes, &plugin.registry)?;
                markers.insert(plugin.registry.clone(), marker);
            }
        }
        markers.retain(|_, (path, marker)| std::fs::read(&*path).ok().as_deref() != Some(marker.as_bytes()));
        let mut records: BTreeMap<(RegistryName, VendorId), CurrentRecord> = BTreeMap::new();
        let mut checks = Vec::new();
        let mut kept = Vec::new();
        for (id, plugin) in self.state().plugins() {
            if !markers.contains_key(&plugin.registry) {
                continue;
            }
            let key = (plugin.registry.clone(), id.vendor_id());
            if !records.contains_key(&key) {
                let current = current_record(remotes, &key.0, &key.1)?;
                records.insert(key.clone(), current);
            }
            if let Some(previous) = &plugin.previous {
                kept.push((id.clone(), previous.version.clone(), key.clone()));
            }
            if plugin.disabled.is_none() {
                checks.push((id.clone(), plugin.active.version.clone(), key));
            }
        }
        // The releases kept for rollback take a re-signed envelope too, so a rollback to
        // them stays possible; one signed only by revoked keys is left as it is
        // (`Store::rollback` refuses it) and disables nothing.
        for (id, version, key) in kept {
            let Some((record, record_bytes)) = records.get(&key) else { continue };
            let dir = self.data_dir().release_dir(&id, &version);
            if let Err(error) = recheck(remotes, &key.0, &id, &version, &dir, record, record_bytes) {
                session.reporter.report(Event::Warning {
                    plugin: Some(id.clone()),
                    message: format!("{id} {version} (kept for rollback) was not re-checked: {error}"),
                });
            }
        }
        let mut disabled = Vec::new();
        for (id, version, key) in checks {
            let Some((record, record_bytes)) = records.get(&key) else { continue };
            let dir = self.data_dir().release_dir(&id, &version);
            match recheck(remotes, &key.0, &id, &version, &dir, record, record_bytes)? {
                Recheck::Valid => {}
                Recheck::Resigned => session.reporter.report(Event::Warning {
                    plugin: Some(id.clone()),
                    message: format!(
                        "{id} {version}: took the envelope its publisher re-signed after revoking a key; it keeps running"
                    ),
                }),
                Recheck::Revoked { keys, why } => {
                    let what = why.clone();
                    let mark = Disabled::revoked(keys, why, jiff::Timestamp::now());
                    let advice = ". Ask the publisher for a re-signed release, or update or remove it";
                    self.stop_disabled(session, &id, &version, &mark, &what, advice);
                    disabled.push(DisabledRelease { plugin: id, version, mark });
                }
            }
        }
        if !disabled.is_empty() {
            let marks: Vec<(PluginId, Disabled)> =
                disabled.iter().map(|d| (d.plugin.clone(), d.mark.clone())).collect();
            self.update_state(|state| {
                for (id, mark) in marks {
                    state.set_disabled(&id, Some(mark));
                }
            })?;
        }
        for (path, marker) in markers.into_values() {
            if let Some(parent) = path.parent() {
                crate::fs::create_dir_all(parent)?;
            }
            crate::fs::write_atomic(&path, marker.as_bytes())?;
        }
        Ok(disabled)
    }
}

fn recheck(
    remotes: &Remotes,
    registry: &RegistryName,
    id: &PluginId,
    version: &Version,
    dir: &Path,
    record: &PublisherRecord,
    record_bytes: &[u8],
) -> Result<Recheck, StoreError> {
    let envelope_file = dir.join(RELEASE_ENVELOPE_FILE);
    let record_file = dir.join(PUBLISHER_RECORD_FILE);
    let kept = match std::fs::read(&envelope_file) {
        Ok(bytes) => bytes,
        // A damaged release directory is `verify`'s to report.
        Err(_) => return Ok(Recheck::Valid),
    };
    let Ok(envelope) = trellis_schema::json::from_slice::<Envelope>(&kept) else { return Ok(Recheck::Valid) };
    let error = match record.verify_release(&envelope) {
        Ok(_) => {
            if std::fs::read(&record_file).ok().as_deref() != Some(record_bytes) {
                crate::fs::write_atomic(&record_file, record_bytes)?;
            }
            return Ok(Recheck::Valid);
        }
        Err(error) if error.is_revocation() => error,
        // Other failures (tampering) are `verify`'s to report.
        Err(_) => return Ok(Recheck::Valid),
    };
    let kept_payload = envelope.payload_bytes().ok().map(|p| Sha256::of(&p));
    let listed = remotes.doc(registry, id)?.and_then(|doc| doc.release(version).cloned());
    if let Some(release) = listed
        && release.envelope.sha256 != Sha256::of(&kept)
        && kept_payload == Some(release.manifest_sha256)
    {
        let bytes = remotes.fetch_blob(registry, id, &release.envelope)?;
        let resigned = trellis_schema::json::from_slice::<Envelope>(&bytes).ok().filter(|new| {
            new.payload_bytes().ok().map(|p| Sha256::of(&p)) == kept_payload && record.verify_release(new).is_ok()
        });
        if resigned.is_some() {
            crate::fs::write_atomic(&envelope_file, &bytes)?;
            crate::fs::write_atomic(&record_file, record_bytes)?;
            return Ok(Recheck::Resigned);
        }
    }
    let keys = match &error {
        ReleaseSignatureError::Threshold { rejected, .. } => rejected.iter().map(|r| r.keyid.clone()).collect(),
        _ => Vec::new(),
    };
    Ok(Recheck::Revoked { keys, why: revocation_reason(record, &error) })
}

/// "is signed only by key 3f2a…, which acme revoked on 2026-10-01 (laptop stolen)".
fn revocation_reason(record: &PublisherRecord, error: &ReleaseSignatureError) -> String {
    let ReleaseSignatureError::Threshold { rejected, .. } = error else { return error.to_string() };
    let revoked = rejected.iter().find_map(|r| match &r.reason {
        RejectionReason::Revoked { at, reason } => Some((r.keyid.short().to_owned(), at.clone(), reason.clone())),
        _ => None,
    });
    match revoked {
        Some((key, at, reason)) if reason.is_empty() => {
            format!("is signed only by key {key}…, which {} revoked on {at}", record.id)
        }
        Some((key, at, reason)) => {
            format!("is signed only by key {key}…, which {} revoked on {at} ({reason})", record.id)
        }
        None => {
            let keys: Vec<&str> = rejected.iter().map(|r| r.keyid.short()).collect();
            format!("is signed only by key(s) {}…, which {} no longer lists", keys.join("…, "), record.id)
        }
    }
}
