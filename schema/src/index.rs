//! Sparse index documents: one per plugin, everything resolution needs.
//!
//! An index doc lists every release of one plugin with its version, channel,
//! dependencies, host requirement, platforms, yanked flag, permissions, the package
//! blob (path, SHA-256, length), the developer signature envelope, the digest of the
//! signed release manifest, the deltas that lead to it and the operator's staged
//! rollout ([`Percent`] of installs offered it as an update). Display data (long
//! descriptions, screenshots) lives in the package and in catalog docs, so the
//! documents a resolver downloads stay small.

use serde::{Deserialize, Serialize};

use crate::analysis::ReleaseAnalysis;
use crate::digest::Sha256;
use crate::id::PluginId;
use crate::permission::Permission;
use crate::plugin::{Channel, Dependency, HostRequirement, Platform, Pricing};

/// A file in the site, named by content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct BlobRef {
    /// Target path, relative to `targets/`.
    pub path: String,
    /// SHA-256 of the content.
    pub sha256: Sha256,
    /// Length in bytes.
    pub length: u64,
}

/// A delta package that turns release `from` into this release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct DeltaRef {
    /// The release the delta applies to.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub from: semver::Version,
    /// The delta blob.
    pub blob: BlobRef,
}

/// One release in an index doc.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct IndexRelease {
    /// Version.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// Channel.
    pub channel: Channel,
    /// Dependencies.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Host requirement.
    pub host: HostRequirement,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Withdrawn by its publisher or the operator: never chosen for a new install.
    #[serde(default)]
    pub yanked: bool,
    /// Permissions requested.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// The package.
    pub package: BlobRef,
    /// The developer's DSSE envelope.
    pub envelope: BlobRef,
    /// SHA-256 of the signed release manifest (the envelope's payload).
    pub manifest_sha256: Sha256,
    /// Total size of the files once extracted, for the free-space check.
    pub unpacked_size: u64,
    /// Deltas that lead to this release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaRef>,
    /// Oldest client that can install it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub min_client_version: Option<semver::Version>,
    /// The operator's staged rollout: the share of installs offered this release as an
    /// update (each install falls in or out by a stable bucket of its own). Absent means
    /// every install. New installs are never held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Percent>,
    /// The price model and trial of a release that is not free (from its
    /// `plugin.json`), for display; absent for a free one. The client starts a trial
    /// from the installed `plugin.json`, which the developer signed, not from this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// What the registry's checks found the release really does (capabilities with
    /// their evidence, scanner verdicts, the sandboxed run's profile); absent from
    /// registries that do not analyse. Derived by the builder, not signed by the
    /// developer: informative, never an authority for consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<ReleaseAnalysis>,
}

/// A share of installs, 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Percent(u8);

/// A percentage above 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("percentage {0} is above 100")]
pub struct PercentError(pub u32);

impl Percent {
    /// Every install.
    pub const ALL: Percent = Percent(100);

    /// The percentage; values above 100 are refused.
    pub fn new(value: u32) -> Result<Self, PercentError> {
        u8::try_from(value).ok().filter(|v| *v <= 100).map(Self).ok_or(PercentError(value))
    }

    /// The value, 0 to 100.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u32> for Percent {
    type Error = PercentError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Percent> for u32 {
    fn from(p: Percent) -> Self {
        u32::from(p.0)
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl std::str::FromStr for Percent {
    type Err = PercentParseError;

    /// `25` or `25%`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim().strip_suffix('%').unwrap_or(s.trim());
        let value: u32 = digits.parse().map_err(|_| PercentParseError(s.to_owned()))?;
        Self::new(value).map_err(|_| PercentParseError(s.to_owned()))
    }
}

/// Text that is not a percentage from 0 to 100.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a percentage from 0 to 100")]
pub struct PercentParseError(pub String);

#[cfg(feature = "json-schema")]
impl schemars::JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": 100,
            "description": "A share of installs, 0 to 100",
        })
    }
}

/// The index doc of one plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct IndexDoc {
    /// Plugin id.
    pub id: PluginId,
    /// Display name of the newest release.
    pub name: String,
    /// Releases, oldest first.
    pub releases: Vec<IndexRelease>,
    /// A prefetch hint: the plugins the dependency closure of this plugin's
    /// [`likely_release`] (with no requirement on it) reached when the builder wrote
    /// this doc, nearest first, at most [`PREFETCH_MAX`], never the plugin itself.
    /// A client asks for their docs in the round trip after this one instead of a
    /// round trip per level of the graph. Advice about *what to fetch*, never about
    /// what to install: the resolver reads every doc it needs under its own bin, and a
    /// stale or hostile hint costs requests, not a dependency (a doc written before
    /// a dependency's new release lists the old closure until it is rewritten).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefetch: Vec<PluginId>,
}

/// The most plugins a doc's prefetch hint names: a client ignores the rest, the
/// builder stops there (a graph deeper than that pays a round trip per level past it).
pub const PREFETCH_MAX: usize = 64;

impl IndexDoc {
    /// The release with exactly `version`.
    pub fn release(&self, version: &semver::Version) -> Option<&IndexRelease> {
        self.releases.iter().find(|r| &r.version == version)
    }
}

/// The release of `doc` a resolver most likely picks, whose dependencies a prefetch
/// follows: among the releases every requirement in `wanted` allows, the newest
/// stable one, not yanked, not a pre-release (else the newest not yanked); when none
/// is allowed (a conflict the resolver will report), the same rule over every
/// release. So `app@^1` follows 1.x's dependencies, not those of a 2.0.0 the resolver
/// cannot pick. The builder's prefetch hint and the client's prefetch follow the
/// same rule, so a client uses a doc's hint exactly when it follows the release the
/// hint was made from.
pub fn likely_release<'d>(doc: &'d IndexDoc, wanted: &[semver::VersionReq]) -> Option<&'d IndexRelease> {
    likely_among(&doc.releases, |r| (&r.version, r.channel, r.yanked), wanted)
}

/// [`likely_release`] over any list of releases, `facts` giving each one's version,
/// channel and yanked flag (the builder applies it to its inputs before their index
/// docs exist).
pub fn likely_among<'r, R>(
    releases: &'r [R],
    facts: impl Fn(&R) -> (&semver::Version, Channel, bool),
    wanted: &[semver::VersionReq],
) -> Option<&'r R> {
    likely_allowed(releases, facts, |version| wanted.iter().all(|req| req.matches(version)))
}

/// [`likely_among`] with the requirements as a test of a version (`allowed`: every
/// requirement met on the plugin matches it).
pub fn likely_allowed<R>(
    releases: &[R],
    facts: impl Fn(&R) -> (&semver::Version, Channel, bool),
    allowed: impl Fn(&semver::Version) -> bool,
) -> Option<&R> {
    let newest = |allowed: &dyn Fn(&semver::Version) -> bool| {
        let live = || {
            releases.iter().filter(|r| {
                let (version, _, yanked) = facts(r);
                !yanked && allowed(version)
            })
        };
        let by_version = |a: &&R, b: &&R| facts(a).0.cmp(facts(b).0);
        live()
            .filter(|r| {
                let (version, channel, _) = facts(r);
                channel == Channel::Stable && version.pre.is_empty()
            })
            .max_by(by_version)
            .or_else(|| live().max_by(by_version))
    };
    newest(&allowed).or_else(|| newest(&|_| true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_accepts_0_to_100_and_refuses_more() {
        assert_eq!(Percent::new(0).map(Percent::get), Ok(0));
        assert_eq!(Percent::new(100), Ok(Percent::ALL));
        assert_eq!(Percent::new(101), Err(PercentError(101)));
        assert_eq!(serde_json::from_str::<Percent>("40").map(Percent::get).ok(), Some(40));
        let err = serde_json::from_str::<Percent>("250").unwrap_err();
        assert!(err.to_string().contains("percentage 250 is above 100"), "{err}");
    }

    #[test]
    fn percent_parses_with_or_without_the_sign() {
        assert_eq!("25".parse::<Percent>().map(Percent::get), Ok(25));
        assert_eq!(" 25% ".parse::<Percent>().map(Percent::get), Ok(25));
        assert_eq!("100%".parse::<Percent>(), Ok(Percent::ALL));
        for bad in ["", "%", "-1", "101", "12.5", "half"] {
            let err = bad.parse::<Percent>().unwrap_err();
            assert_eq!(err.to_string(), format!("{bad:?} is not a percentage from 0 to 100"));
        }
    }
}
