//! The data dir layout and the small identifiers the state file is keyed by.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use semver::Version;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trellis_schema::PluginId;

/// The client's data dir. Every path the client writes is one of these:
///
/// ```text
/// <root>/state.json                       the state file
/// <root>/state.lock                       the data-dir lock
/// <root>/metadata/<registry>/             trusted TUF metadata of one registry
/// <root>/cache/                           content-addressed blob cache
/// <root>/plugins/<id>/<version>/          an installed release's files
/// <root>/plugins/<id>/current             pointer to the active release (for humans and repair)
/// <root>/config/<id>/                     the plugin's own configuration
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data dir at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// The lock file every writer of the data dir holds.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("state.lock")
    }

    /// Trusted metadata of `registry`.
    pub fn metadata_dir(&self, registry: &RegistryName) -> PathBuf {
        self.root.join("metadata").join(registry.as_str())
    }

    /// The content-addressed blob cache.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// All installed plugins.
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// Everything of one plugin: its release directories and the `current` pointer.
    pub fn plugin_dir(&self, plugin: &PluginId) -> PathBuf {
        self.plugins_dir().join(plugin.as_str())
    }

    /// The files of one release.
    pub fn release_dir(&self, plugin: &PluginId, version: &Version) -> PathBuf {
        self.plugin_dir(plugin).join(version.to_string())
    }

    /// The pointer file naming the active release.
    pub fn current_pointer(&self, plugin: &PluginId) -> PathBuf {
        self.plugin_dir(plugin).join(CURRENT)
    }

    /// The plugin's own configuration, removed with the plugin.
    pub fn config_dir(&self, plugin: &PluginId) -> PathBuf {
        self.root.join("config").join(plugin.as_str())
    }
}

/// Name of the pointer file in a plugin's directory.
pub(crate) const CURRENT: &str = "current";

/// Why a registry name or install id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A registry name outside `a-z 0-9 -` or too long.
    #[error("registry name {0:?} is not valid; use 1 to 64 lowercase letters, digits and '-', starting with a letter")]
    RegistryName(String),
    /// An install id that is not 32 lowercase hex digits.
    #[error("install id {0:?} is not 32 lowercase hex digits")]
    InstallId(String),
}

/// The local name of a configured registry (`public`, `acme-internal`): one segment of
/// lowercase letters, digits and `-`, so it is safe as a directory name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryName(String);

impl RegistryName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RegistryName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid { Ok(Self(s.to_owned())) } else { Err(IdError::RegistryName(s.to_owned())) }
    }
}

// The resolver has its own unvalidated registry name type; these conversions keep the
// lifecycle simple until the two are one type.
impl From<&RegistryName> for crate::resolve::RegistryName {
    fn from(name: &RegistryName) -> Self {
        Self::new(name.as_str())
    }
}

impl TryFrom<&crate::resolve::RegistryName> for RegistryName {
    type Error = IdError;

    fn try_from(name: &crate::resolve::RegistryName) -> Result<Self, Self::Error> {
        name.as_str().parse()
    }
}

/// A random id of this installation of the client, for staged rollouts. It never
/// leaves the machine.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InstallId(String);

impl InstallId {
    /// A fresh random id from the operating system's generator.
    pub fn generate() -> Result<Self, rand_core::Error> {
        use rand_core::RngCore as _;
        let mut bytes = [0u8; 16];
        rand_core::OsRng.try_fill_bytes(&mut bytes)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// An id written as 32 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, IdError> {
        if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            Ok(Self(hex.to_owned()))
        } else {
            Err(IdError::InstallId(hex.to_owned()))
        }
    }

    /// The id as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_id_impls {
    ($ty:ident, $parse:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                let parse: fn(&str) -> Result<$ty, IdError> = $parse;
                parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id_impls!(RegistryName, |s| s.parse());
string_id_impls!(InstallId, InstallId::from_hex);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_puts_each_release_in_its_own_directory() {
        let dir = DataDir::new("/data");
        let clock: PluginId = "acme.clock".parse().unwrap();
        assert_eq!(dir.release_dir(&clock, &Version::new(1, 2, 0)), Path::new("/data/plugins/acme.clock/1.2.0"));
        assert_eq!(dir.current_pointer(&clock), Path::new("/data/plugins/acme.clock/current"));
        assert_eq!(dir.metadata_dir(&"public".parse().unwrap()), Path::new("/data/metadata/public"));
        assert_eq!(dir.state_file(), Path::new("/data/state.json"));
    }

    #[test]
    fn registry_names_are_safe_directory_names() {
        let name: RegistryName = "acme-internal".parse().unwrap();
        let resolver_name = crate::resolve::RegistryName::from(&name);
        assert_eq!(RegistryName::try_from(&resolver_name), Ok(name));
        assert!(RegistryName::try_from(&crate::resolve::RegistryName::new("../up")).is_err());
        for bad in ["", "../x", "Public", "a/b", "-x", "x-", "a.b", &"a".repeat(65)] {
            let err = bad.parse::<RegistryName>().unwrap_err();
            assert!(err.to_string().contains("registry name"), "{bad}: {err}");
        }
    }

    #[test]
    fn generated_install_ids_are_32_hex_digits_and_differ() {
        let a = InstallId::generate().unwrap();
        let b = InstallId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(InstallId::from_hex(a.as_str()).unwrap(), a);
        assert!(InstallId::from_hex("xyz").is_err());
        assert!(serde_json::from_str::<InstallId>("\"00112233445566778899AABBCCDDEEFF\"").is_err());
    }
}
