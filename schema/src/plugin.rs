//! `plugin.json`: the metadata a plugin developer writes and every package carries.
//!
//! These are the typed, already-valid documents. Turning untrusted JSON into them, with
//! every problem reported at once, is [`crate::validate`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::{PluginId, VendorId};
use crate::permission::Permission;

/// Path of the metadata file at the root of a package.
pub const METADATA_PATH: &str = "plugin.json";

/// Release channel. A user following `beta` also accepts `stable` releases, and one
/// following `experimental` accepts all three: `stable ⊂ beta ⊂ experimental`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Production releases.
    #[default]
    Stable,
    /// Pre-releases for early adopters.
    Beta,
    /// Anything goes.
    Experimental,
}

impl Channel {
    /// Whether a user following `self` accepts a release published on `release`.
    pub fn accepts(self, release: Channel) -> bool {
        release <= self
    }

    /// The channel's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Beta => "beta",
            Self::Experimental => "experimental",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stable" => Ok(Self::Stable),
            "beta" => Ok(Self::Beta),
            "experimental" => Ok(Self::Experimental),
            other => Err(format!("unknown channel {other:?}; expected stable, beta or experimental")),
        }
    }
}

/// A platform a package ships binaries for; `any` is platform-independent content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub enum Platform {
    /// Windows on x86-64.
    #[serde(rename = "windows-x86_64")]
    WindowsX86_64,
    /// Windows on ARM64.
    #[serde(rename = "windows-aarch64")]
    WindowsAarch64,
    /// Linux on x86-64.
    #[serde(rename = "linux-x86_64")]
    LinuxX86_64,
    /// macOS on Apple silicon.
    #[serde(rename = "macos-aarch64")]
    MacosAarch64,
    /// Platform-independent (scripts, WebAssembly, resources).
    #[serde(rename = "any")]
    Any,
}

impl Platform {
    /// Every platform, in a stable order.
    pub const ALL: [Platform; 5] =
        [Self::WindowsX86_64, Self::WindowsAarch64, Self::LinuxX86_64, Self::MacosAarch64, Self::Any];

    /// The platform's name, as used in `bin/<platform>/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WindowsX86_64 => "windows-x86_64",
            Self::WindowsAarch64 => "windows-aarch64",
            Self::LinuxX86_64 => "linux-x86_64",
            Self::MacosAarch64 => "macos-aarch64",
            Self::Any => "any",
        }
    }

    /// The platform this program was compiled for, if it is one Trellis knows.
    pub fn current() -> Option<Self> {
        match (std::env::consts::OS, std::env::consts::ARCH) {
            ("windows", "x86_64") => Some(Self::WindowsX86_64),
            ("windows", "aarch64") => Some(Self::WindowsAarch64),
            ("linux", "x86_64") => Some(Self::LinuxX86_64),
            ("macos", "aarch64") => Some(Self::MacosAarch64),
            _ => None,
        }
    }

    /// Whether a release built for `self` runs on `host`.
    pub fn runs_on(self, host: Platform) -> bool {
        self == Self::Any || self == host
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown platform {s:?}; expected one of {}", known.join(", "))
        })
    }
}

/// The publisher as named in `plugin.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Vendor {
    /// Display name.
    pub name: String,
    /// Publisher id; the plugin id must live in this namespace.
    pub id: VendorId,
    /// Publisher web site (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// Short and long description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Description {
    /// One line, at most 140 characters.
    pub short: String,
    /// Markdown.
    #[serde(default)]
    pub full: String,
}

/// Icon files, paths inside the package, with the pixel sizes the names promise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Icons {
    /// 16×16 PNG.
    pub small: String,
    /// 32×32 PNG.
    pub medium: String,
    /// 128×128 PNG.
    pub large: String,
}

/// A screenshot, a path inside the package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Screenshot {
    /// PNG or JPEG path inside the package.
    pub url: String,
    /// What it shows.
    #[serde(default)]
    pub caption: String,
}

/// A dependency on another plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Dependency {
    /// The plugin depended on.
    pub id: PluginId,
    /// Semver requirement, e.g. `>=1.0.0, <2`.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub version_requirement: semver::VersionReq,
}

/// Pricing model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PricingModel {
    /// No charge.
    Free,
    /// One-time purchase.
    Paid,
    /// Free with paid features.
    Freemium,
    /// Recurring payment.
    Subscription,
}

/// Pricing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Pricing {
    /// Model.
    pub model: PricingModel,
    /// Days of free trial; 0 for none.
    #[serde(default)]
    pub trial_days: u32,
}

impl Default for Pricing {
    fn default() -> Self {
        Self { model: PricingModel::Free, trial_days: 0 }
    }
}

/// The host application and API versions a plugin runs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct HostRequirement {
    /// Host application id (e.g. `tauri-demo`).
    pub id: String,
    /// Semver requirement on the host's plugin API version.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub api_version_requirement: semver::VersionReq,
}

/// A valid `plugin.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct PluginMetadata {
    /// Plugin id, in the vendor's namespace.
    pub id: PluginId,
    /// Display name.
    pub name: String,
    /// Semver version of this release.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// Publisher.
    pub vendor: Vendor,
    /// Descriptions.
    pub description: Description,
    /// Store categories (see [`crate::validate::CATEGORIES`]).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Free-form search tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Icons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icons: Option<Icons>,
    /// Screenshots.
    #[serde(default)]
    pub screenshots: Vec<Screenshot>,
    /// Permissions requested, each with a reason.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Other plugins required.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Pricing.
    #[serde(default)]
    pub pricing: Pricing,
    /// What changed in this release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<String>,
    /// Release channel.
    #[serde(default)]
    pub channel: Channel,
    /// Host application requirement.
    pub host: HostRequirement,
    /// Platforms with binaries in `bin/<platform>/`.
    pub platforms: Vec<Platform>,
    /// Entry point per platform, a path inside the package.
    #[serde(default)]
    pub entry: BTreeMap<Platform, String>,
    /// SPDX license expression.
    pub license: String,
    /// Source repository (https), for open-source plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Oldest Trellis client that can install this release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub min_client_version: Option<semver::Version>,
    /// Fields this version does not know; kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_nest() {
        assert!(Channel::Beta.accepts(Channel::Stable));
        assert!(Channel::Beta.accepts(Channel::Beta));
        assert!(!Channel::Beta.accepts(Channel::Experimental));
        assert!(!Channel::Stable.accepts(Channel::Beta));
        assert!(Channel::Experimental.accepts(Channel::Beta));
    }

    #[test]
    fn platform_any_runs_everywhere_and_names_round_trip() {
        assert!(Platform::Any.runs_on(Platform::WindowsX86_64));
        assert!(!Platform::LinuxX86_64.runs_on(Platform::WindowsX86_64));
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>(), Ok(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
