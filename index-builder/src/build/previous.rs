//! The published state of a site, as the next build reads it.
//!
//! Owns reading `timestamp.json`, the snapshot it names, any targets role of the
//! previous site and the index docs its bins sign, and the rule that a published
//! release never changes: its package and envelope, as the published index doc lists
//! them, must be what the registry has now ([`check_published_releases`]): the same
//! package and signed manifest (an envelope may be re-signed). The index
//! doc is the record of a release's blobs (the bins sign only index docs). It trusts
//! the metadata as its own output (no signature checks: that is [`crate::verify`]'s and
//! the client's job), and a content-addressed file only with the SHA-256 the metadata
//! lists for it ([`PreviousSite::read_target`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use std::path::{Path, PathBuf};

use trellis_client::fs::FsError;
use trellis_schema::index::IndexDoc;
use trellis_schema::tuf::{Envelope, Snapshot, Targets, Timestamp};
use trellis_schema::{PluginId, Sha256, VendorId};

use super::BuildError;
use super::plan::PublishedRole;
use crate::registry::PublishedReleases;
use crate::release::{PluginInput, PublishedRelease};
use crate::site;
use crate::tuf::BIN_PREFIX;

/// A publisher record target a site publishes: path, SHA-256, length.
pub type PublishedRecord = (String, Sha256, u64);

/// The published state of a site: its timestamp, snapshot and role documents.
pub struct PreviousSite {
    dir: PathBuf,
    /// `timestamp.json`.
    pub timestamp: Envelope<Timestamp>,
    /// The snapshot it names.
    pub snapshot: Envelope<Snapshot>,
    /// Roles read so far, but hash bins and the catalog role (a build reads each of
    /// those once): the publisher bins, the security role and the top-level ones are
    /// each read by more than one step of a build.
    roles: Mutex<HashMap<String, Option<Envelope<Targets>>>>,
    /// The same as [`PublishedRole`]s (compact entries; a plain role scanned).
    published: Mutex<HashMap<String, Option<Arc<PublishedRole>>>>,
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
        Ok(Some(Self {
            dir: dir.to_owned(),
            timestamp,
            snapshot,
            roles: Mutex::default(),
            published: Mutex::default(),
        }))
    }

    /// The site directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every publisher record target the previous site published (from the publisher
    /// bins its snapshot names), with its SHA-256 and length.
    pub fn published_publisher_targets(&self) -> Result<Vec<PublishedRecord>, BuildError> {
        let bins: Vec<String> = self.publisher_bins().map(str::to_owned).collect();
        self.publisher_targets_in(&bins)
    }

    /// The publisher record targets the previous site published in the bins of
    /// `vendors`' records (every record of those bins, not only theirs), when the site
    /// has the `2^bits` publisher bins a build of these bits makes; `None` when it has
    /// other bins (a build that changed `publisher_bin_bits` makes every bin again).
    pub fn published_publisher_targets_of(
        &self,
        vendors: &BTreeSet<VendorId>,
        bits: u32,
    ) -> Result<Option<Vec<PublishedRecord>>, BuildError> {
        let prefix = crate::tuf::PUBLISHER_BIN_PREFIX;
        let published: BTreeSet<&str> = self.publisher_bins().collect();
        let every = (0..1u32 << bits.min(16)).map(|number| site::bin_name(number, bits, prefix));
        if published.len() != 1 << bits.min(16) || !every.into_iter().all(|bin| published.contains(bin.as_str())) {
            return Ok(None);
        }
        let bins: BTreeSet<String> =
            vendors.iter().map(|v| site::bin_for_target(&site::publisher_target(v), bits, prefix)).collect();
        self.publisher_targets_in(&bins.into_iter().collect::<Vec<_>>()).map(Some)
    }

    /// The publisher bins the snapshot names.
    fn publisher_bins(&self) -> impl Iterator<Item = &str> {
        let prefix = format!("{}-", crate::tuf::PUBLISHER_BIN_PREFIX);
        (self.snapshot.signed.meta.keys())
            .filter_map(|name| name.strip_suffix(".json"))
            .filter(move |name| name.starts_with(&prefix))
    }

    /// The record targets the publisher bins `bins` list.
    fn publisher_targets_in(&self, bins: &[String]) -> Result<Vec<PublishedRecord>, BuildError> {
        let mut out = Vec::new();
        for bin in bins {
            let Some(role) = self.published_role(bin)? else { continue };
            for (target, (sha, length)) in &role.entries {
                if !role.invalid.contains(target) {
                    out.push((target.clone(), *sha, *length));
                }
            }
        }
        Ok(out)
    }

    /// Version of `role` named by the snapshot.
    pub fn version(&self, role: &str) -> Option<u64> {
        self.snapshot.signed.meta.get(&format!("{role}.json")).map(|m| m.version)
    }

    /// The published document of a targets role (top-level or delegated).
    pub fn role(&self, role: &str) -> Result<Option<Envelope<Targets>>, BuildError> {
        let cached = !role.starts_with(&format!("{BIN_PREFIX}-")) && role != crate::tuf::CATALOG_ROLE;
        if cached && let Some(read) = self.roles.lock().unwrap_or_else(|e| e.into_inner()).get(role) {
            return Ok(read.clone());
        }
        let read = match self.version(role) {
            Some(version) => Some(read_site_json(&site::metadata_file(&self.dir, role, version))?),
            None => None,
        };
        if cached {
            self.roles.lock().unwrap_or_else(|e| e.into_inner()).insert(role.to_owned(), read.clone());
        }
        Ok(read)
    }

    /// The published role `role` as the planner compares it ([`PublishedRole`]: a
    /// role this builder wrote without delegations is scanned, not parsed). Kept but
    /// for hash bins and the catalog role, which a build reads once.
    pub(crate) fn published_role(&self, role: &str) -> Result<Option<Arc<PublishedRole>>, BuildError> {
        let cached = !role.starts_with(&format!("{BIN_PREFIX}-")) && role != crate::tuf::CATALOG_ROLE;
        if cached && let Some(read) = self.published.lock().unwrap_or_else(|e| e.into_inner()).get(role) {
            return Ok(read.clone());
        }
        let read = match self.version(role) {
            Some(version) => {
                let path = site::metadata_file(&self.dir, role, version);
                let bytes = std::fs::read(&path).map_err(|e| FsError::new("reading", &path, e))?;
                let role = PublishedRole::from_bytes(&bytes)
                    .map_err(|e| BuildError::Site { path: path.clone(), reason: e.to_string() })?;
                Some(Arc::new(role))
            }
            None => None,
        };
        if cached {
            self.published.lock().unwrap_or_else(|e| e.into_inner()).insert(role.to_owned(), read.clone());
        }
        Ok(read)
    }

    /// A day no later than the one this site was built on: its snapshot's expiry less
    /// `snapshot_lifetime_days`, less a day's slack (`None` when the expiry does not parse).
    pub fn built_no_later_than(&self, snapshot_lifetime_days: u32) -> Option<jiff::civil::Date> {
        built_no_later_than(&self.snapshot.signed, snapshot_lifetime_days)
    }
}

/// A day no later than the one the site whose snapshot is `snapshot` was built on:
/// the snapshot's expiry less its lifetime (`snapshot_lifetime_days`, the registry's
/// `expiry_days.snapshot`), less a day's slack for a lifetime changed since. `None`
/// when the expiry does not parse. (A build that changes nothing keeps the snapshot:
/// the day is then an older build's, still no later.)
pub(crate) fn built_no_later_than(snapshot: &Snapshot, snapshot_lifetime_days: u32) -> Option<jiff::civil::Date> {
    let lifetime = jiff::SignedDuration::from_hours(24 * i64::from(snapshot_lifetime_days));
    let expires: jiff::Timestamp = snapshot.expires.parse().ok()?;
    let built = expires.checked_sub(lifetime).ok()?;
    jiff::tz::Offset::UTC.to_datetime(built).date().yesterday().ok()
}

impl PreviousSite {
    /// The SHA-256 of the index doc the previous site published for each of
    /// `plugins` (plugins it did not publish are absent), read from the bins that sign
    /// them, each bin once.
    pub(super) fn published_docs(
        &self,
        plugins: &[PluginInput],
        bin_bits: u32,
    ) -> Result<BTreeMap<PluginId, Sha256>, BuildError> {
        self.published_docs_of(plugins.iter().map(|p| &p.id), bin_bits)
    }

    pub(super) fn published_docs_of<'a>(
        &self,
        ids: impl Iterator<Item = &'a PluginId>,
        bin_bits: u32,
    ) -> Result<BTreeMap<PluginId, Sha256>, BuildError> {
        let mut by_bin: BTreeMap<String, Vec<(&PluginId, String)>> = BTreeMap::new();
        for id in ids {
            let target = site::index_target(id);
            by_bin.entry(site::bin_for_target(&target, bin_bits, BIN_PREFIX)).or_default().push((id, target));
        }
        let mut out = BTreeMap::new();
        for (bin, wanted) in by_bin {
            let Some(role) = self.published_role(&bin)? else { continue };
            for (id, target) in wanted {
                if let Some((sha, _)) = role.entries.get(&target).filter(|_| !role.invalid.contains(&target)) {
                    out.insert(id.clone(), *sha);
                }
            }
        }
        Ok(out)
    }

    /// Every release the site publishes for `ids`: its package and the analysis
    /// published with it, read from the index docs (one plugin at a time, in
    /// parallel). A build carries these analyses over instead of re-analysing.
    pub fn published_releases(&self, ids: &BTreeSet<PluginId>, bin_bits: u32) -> Result<PublishedReleases, BuildError> {
        let docs = self.published_docs_of(ids.iter(), bin_bits)?;
        let per_plugin: Vec<Vec<((PluginId, semver::Version), PublishedRelease)>> = docs
            .par_iter()
            .map(|(id, sha)| {
                let doc = self.index_doc(id, sha)?;
                Ok(doc
                    .releases
                    .into_iter()
                    .map(|r| {
                        let published = PublishedRelease { package_sha256: r.package.sha256, analysis: r.analysis };
                        ((id.clone(), r.version), published)
                    })
                    .collect())
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(per_plugin.into_iter().flatten().collect())
    }

    /// The published index doc of `id` whose SHA-256 is `sha256` (a doc gone from the
    /// site is [`BuildError::SiteMissing`], other bytes [`BuildError::SiteAltered`]).
    pub(super) fn index_doc(&self, id: &PluginId, sha256: &Sha256) -> Result<IndexDoc, BuildError> {
        let target = site::index_target(id);
        let bytes = self.read_target(&target, sha256)?;
        trellis_schema::json::from_slice(&bytes).map_err(|e| BuildError::Site {
            path: site::target_file(&self.dir, &target, sha256),
            reason: e.to_string(),
        })
    }

    /// The bytes of the published `target` whose SHA-256 the site's metadata lists as
    /// `sha256`. Every file a build carries something over from is read here, and only
    /// with those bytes: other bytes at that address (the file was edited after it was
    /// signed) are [`BuildError::SiteAltered`], a file gone is
    /// [`BuildError::SiteMissing`]. What a build carries over from the site (the
    /// releases an index doc pins, a publisher's chain, first publication days) is
    /// only ever what the signed metadata vouches for, and never silently dropped.
    pub fn read_target(&self, target: &str, sha256: &Sha256) -> Result<Vec<u8>, BuildError> {
        let path = site::target_file(&self.dir, target, sha256);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BuildError::SiteMissing { path }),
            Err(e) => return Err(FsError::new("reading", path, e).into()),
        };
        let actual = Sha256::of(&bytes);
        if actual != *sha256 {
            return Err(BuildError::SiteAltered { path, actual, listed: *sha256 });
        }
        Ok(bytes)
    }
}

/// Refuses a build that would change or drop a release `published` lists: every
/// published release must still be in `plugin`, with the same package (path, SHA-256,
/// length) and the same signed release manifest (`manifest_sha256`). Immutability pins
/// content, not envelope bytes: an envelope may be replaced by one re-signed over the
/// same manifest (the registry checked it under the current publisher record), which
/// is how a release outlives the revocation of the key that first signed it. Releases
/// are yanked, never deleted.
pub(super) fn check_published_releases(published: &IndexDoc, plugin: &PluginInput) -> Result<(), BuildError> {
    for release in &published.releases {
        let version = &release.version;
        let Some(now) = plugin.releases.iter().find(|r| &r.manifest.version == version) else {
            return Err(BuildError::Removed { target: release.package.path.clone() });
        };
        let (was, is) = (&release.package, &now.package);
        if was.sha256 != is.sha256 || was.length != is.length {
            return Err(BuildError::Immutable {
                target: was.path.clone(),
                published: was.sha256.to_hex(),
                new: is.sha256.to_hex(),
            });
        }
        if release.manifest_sha256 != now.manifest_sha256 {
            return Err(BuildError::Immutable {
                target: release.envelope.path.clone(),
                published: format!("a release manifest with sha256 {}", release.manifest_sha256),
                new: format!("one with sha256 {}", now.manifest_sha256),
            });
        }
    }
    Ok(())
}

fn read_site_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| FsError::new("reading", path, e))?;
    trellis_schema::json::from_slice(&bytes)
        .map_err(|e| BuildError::Site { path: path.to_owned(), reason: e.to_string() })
}
