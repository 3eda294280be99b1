//! Security levels as the client knows them: the registry's signed levels buckets
//! ([`trellis_schema::security_level`]), read for `info` and for the administrator's
//! `minimum_security_level` ([`crate::admin`]).
//!
//! A level is only ever taken from a bucket verified through the TUF chain of the
//! registry's `security` role (length and SHA-256 from the signed role, like the
//! blocklist). When it cannot be read — the registry publishes no bucket for the
//! plugin, the bucket does not list the release, the bucket is over
//! [`LEVELS_MAX_BYTES`], a mirror withholds or alters it — the level is
//! [`SecurityLevel::Unknown`] with the reason, which is below every level: missing is
//! never taken for verified, and a policy with a minimum refuses it.

use std::collections::BTreeMap;

use semver::Version;
use serde::Serialize;
use trellis_schema::PluginId;
use trellis_schema::security_level::{Level, LevelsBucket, PublisherStanding, levels_target};

use super::source::Remotes;
use super::{Store, StoreError};
use crate::registry_name::RegistryName;

/// The largest levels bucket read (a bucket holds about 1/256 of the registry's
/// releases: ~200 bytes each).
pub const LEVELS_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// A release's security level, or why it is not known.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SecurityLevel {
    /// Read from the registry's signed levels.
    Known {
        /// The level.
        level: Level,
        /// One sentence per signal.
        reasons: Vec<String>,
        /// The publisher's domain proof.
        publisher: PublisherStanding,
        /// The day the release was first published.
        published: String,
        /// Distinct developer keys that signed it.
        signing_keys: u32,
    },
    /// Not known: below every level.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl SecurityLevel {
    /// The level, `None` when unknown.
    pub fn level(&self) -> Option<Level> {
        match self {
            Self::Known { level, .. } => Some(*level),
            Self::Unknown { .. } => None,
        }
    }

    /// Whether it is at least `minimum` (never, when unknown).
    pub fn meets(&self, minimum: Level) -> bool {
        self.level().is_some_and(|level| level >= minimum)
    }

    /// `established: signed by its developer; …` or `unknown: why`.
    pub fn describe(&self) -> String {
        match self {
            Self::Known { level, reasons, publisher, .. } => {
                let mut reasons = reasons.clone();
                if !publisher.verified
                    && let Some(why) = &publisher.reason
                {
                    reasons.push(format!("domain proof: {why}"));
                }
                format!("{level} ({})", reasons.join("; "))
            }
            Self::Unknown { reason } => format!("unknown ({reason})"),
        }
    }
}

/// The levels of `id`'s releases in `registry`, or why there are none.
pub(crate) enum PluginLevels {
    /// The verified bucket.
    Bucket(LevelsBucket),
    /// The registry's signed metadata lists no bucket for it (applies to every release).
    Absent(String),
    /// The bucket could not be fetched or verified (applies to every release).
    Unreadable(String),
}

impl PluginLevels {
    /// Reads `id`'s bucket from `registry`.
    pub(crate) fn read(remotes: &Remotes, registry: &RegistryName, id: &PluginId) -> Self {
        let target = levels_target(id);
        match remotes.levels_bucket(registry, &target) {
            Ok(Some(bucket)) => Self::Bucket(bucket),
            Ok(None) => Self::Absent(format!("registry {registry} publishes no security levels for {id} ({target})")),
            Err(error) => Self::Unreadable(format!("the security levels of {id} could not be verified: {error}")),
        }
    }

    /// The level of release `version` of `id`.
    pub(crate) fn of(&self, id: &PluginId, version: &Version) -> SecurityLevel {
        let bucket = match self {
            Self::Bucket(bucket) => bucket,
            Self::Absent(reason) | Self::Unreadable(reason) => {
                return SecurityLevel::Unknown { reason: reason.clone() };
            }
        };
        match bucket.release(id, version) {
            Some((publisher, release)) => SecurityLevel::Known {
                level: release.level,
                reasons: release.reasons.iter().map(|r| r.sentence().to_owned()).collect(),
                publisher: publisher.clone(),
                published: release.published.clone(),
                signing_keys: release.signing_keys,
            },
            None => SecurityLevel::Unknown {
                reason: format!("the registry's signed security levels do not list {id} {version}"),
            },
        }
    }
}

impl Store {
    /// The security level of every release of `plugin` that `registry` lists in its
    /// levels (after the refresh of the operation that found the plugin, e.g.
    /// [`Store::info`]); a release missing from the map has an unknown level.
    pub fn security_levels(
        &mut self,
        registry: &RegistryName,
        plugin: &PluginId,
        versions: &[Version],
    ) -> Result<BTreeMap<Version, SecurityLevel>, StoreError> {
        let remotes = self.remotes()?;
        let levels = PluginLevels::read(&remotes, registry, plugin);
        Ok(versions.iter().map(|v| (v.clone(), levels.of(plugin, v))).collect())
    }

    /// The security level of one release, from the registries as last refreshed
    /// (unknown when there are none).
    pub(crate) fn security_level(
        &self,
        registry: &RegistryName,
        plugin: &PluginId,
        version: &Version,
    ) -> SecurityLevel {
        match &self.remotes {
            Some(remotes) => PluginLevels::read(remotes, registry, plugin).of(plugin, version),
            None => SecurityLevel::Unknown { reason: "no registry metadata was read".to_owned() },
        }
    }
}

impl Store {
    /// [`Store::security_level`] of an installed release, `Err` (why) when the
    /// registry's levels cannot be read now: an installed plugin is not stopped on
    /// that, only on what the signed levels say.
    pub(crate) fn installed_security_level(
        &self,
        registry: &RegistryName,
        plugin: &PluginId,
        version: &Version,
    ) -> Result<SecurityLevel, String> {
        let Some(remotes) = &self.remotes else { return Err("no registry metadata was read".to_owned()) };
        match PluginLevels::read(remotes, registry, plugin) {
            PluginLevels::Unreadable(reason) => Err(reason),
            levels => Ok(levels.of(plugin, version)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_meets_no_minimum() {
        let unknown = SecurityLevel::Unknown { reason: "withheld".into() };
        for level in Level::ALL {
            assert!(!unknown.meets(level), "{level}");
        }
        assert_eq!(unknown.describe(), "unknown (withheld)");
        let known = SecurityLevel::Known {
            level: Level::Established,
            reasons: vec!["signed by its developer".into()],
            publisher: PublisherStanding {
                verified: false,
                domain: None,
                reason: Some("no website".into()),
                checked: None,
            },
            published: "2026-11-01".into(),
            signing_keys: 1,
        };
        assert!(known.meets(Level::Signed) && known.meets(Level::Established) && !known.meets(Level::Verified));
        assert_eq!(known.describe(), "established (signed by its developer; domain proof: no website)");
    }
}
