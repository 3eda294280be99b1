//! The data dir layout and the install id.

use std::fmt;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};
use trellis_schema::PluginId;

use crate::registry_name::RegistryName;

/// The client's data dir. Every path the client writes is one of these:
///
/// ```text
/// <root>/state.json                       the state file
/// <root>/state.lock                       the data-dir lock
/// <root>/metadata/<registry>/             trusted TUF metadata of one registry (and the
///                                         mirror list it published, `published.mirrors`)
/// <root>/mirror-health.json               which mirrors failed lately, how fast others are
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

/// An install id that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("install id {0:?} is not 32 lowercase hex digits")]
pub struct InvalidInstallId(pub String);

/// A random id of this installation of the client, for staged rollouts. It never
/// leaves the machine.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
    pub fn from_hex(hex: &str) -> Result<Self, InvalidInstallId> {
        if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            Ok(Self(hex.to_owned()))
        } else {
            Err(InvalidInstallId(hex.to_owned()))
        }
    }

    /// The id as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstallId {
    type Error = InvalidInstallId;

    fn try_from(hex: String) -> Result<Self, Self::Error> {
        Self::from_hex(&hex)
    }
}

impl From<InstallId> for String {
    fn from(id: InstallId) -> Self {
        id.0
    }
}

impl fmt::Display for InstallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

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
    fn generated_install_ids_are_32_hex_digits_and_differ() {
        let a = InstallId::generate().unwrap();
        let b = InstallId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(InstallId::from_hex(a.as_str()).unwrap(), a);
        assert!(InstallId::from_hex("xyz").is_err());
        assert!(serde_json::from_str::<InstallId>("\"00112233445566778899AABBCCDDEEFF\"").is_err());
    }
}
