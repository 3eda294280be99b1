//! The configured registries: their names, site URLs and priority order.
//!
//! Owns `registries.json` in the data dir (written atomically, only while the data-dir
//! lock is held by the [`super::Store`]) and bootstrapping a new registry's trusted root
//! into `metadata/<name>/`, refusing a URL that cannot work (another scheme, a relative
//! `file://` path) and a registry configured already (the same URL or the same root).
//! It does not fetch anything: [`super::Store::add_registry`] refreshes the new registry
//! once and undoes the addition when that fails, explaining why ([`AddProblem`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::state::{DataDir, RegistryName};
use crate::trust::Updater;

/// One configured registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Its local name.
    pub name: RegistryName,
    /// The base URL of its site (`<url>/metadata/`, `<url>/targets/`).
    pub url: String,
    /// The user's own mirrors of the site, asked before `url` (see [`super::mirrors`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
}

/// The registries, first = highest priority (an unbound vendor namespace is bound to
/// the first registry that serves it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registries {
    /// In priority order.
    pub registries: Vec<RegistryConfig>,
}

impl Registries {
    /// The file they live in.
    pub fn path(dir: &DataDir) -> PathBuf {
        dir.root().join("registries.json")
    }

    /// Reads the configuration; a missing file is an empty configuration.
    pub fn load(dir: &DataDir) -> Result<Self, StoreError> {
        let path = Self::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(crate::fs::FsError::new("reading", &path, e).into()),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Config { path, problem: e.to_string() })
    }

    fn save(&self, dir: &DataDir) -> Result<(), StoreError> {
        let path = Self::path(dir);
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| StoreError::Config { path: path.clone(), problem: e.to_string() })?;
        bytes.push(b'\n');
        crate::fs::write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// The registry called `name`.
    pub fn get(&self, name: &RegistryName) -> Option<&RegistryConfig> {
        self.registries.iter().find(|r| &r.name == name)
    }

    /// Adds a registry at the lowest priority, trusting `root` (the bytes of its
    /// `1.root.json`, obtained out of band). The root must verify as a TUF root.
    pub(super) fn add(dir: &DataDir, name: RegistryName, url: &str, root: &[u8]) -> Result<Self, StoreError> {
        let mut config = Self::load(dir)?;
        if config.get(&name).is_some() {
            return Err(StoreError::RegistryExists { name });
        }
        if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file://")) {
            return Err(StoreError::BadRegistryUrl { url: url.to_owned() });
        }
        if let Some(rest) = url.strip_prefix("file://")
            && !rest.strip_prefix("localhost").unwrap_or(rest).starts_with('/')
        {
            return Err(StoreError::RelativeFileUrl { url: url.to_owned() });
        }
        let trimmed = url.trim_end_matches('/');
        if let Some(existing) = config.registries.iter().find(|r| r.url == trimmed) {
            return Err(StoreError::SameRegistry {
                name,
                existing: existing.name.clone(),
                what: format!("URL {trimmed}"),
            });
        }
        for existing in &config.registries {
            // The same root bytes (before any rotation): the same registry at another URL.
            let trusted = crate::trust::MetadataStore::new(dir.metadata_dir(&existing.name)).load("root");
            if trusted.is_some_and(|bytes| bytes == root) {
                return Err(StoreError::SameRegistry {
                    name,
                    existing: existing.name.clone(),
                    what: "root metadata".into(),
                });
            }
        }
        crate::trust::TrustedSet::new(root, jiff::Timestamp::now())
            .map_err(|source| StoreError::BadRoot { name: name.clone(), source: Box::new(source) })?;
        let metadata = dir.metadata_dir(&name);
        if metadata.exists() {
            remove_dir(&metadata)?;
        }
        Updater::bootstrap(&metadata, root)
            .map_err(|source| StoreError::Trust { registry: name.clone(), source: Box::new(source) })?;
        config.registries.push(RegistryConfig { name, url: url.trim_end_matches('/').to_owned(), mirrors: Vec::new() });
        config.save(dir)?;
        Ok(config)
    }

    /// Adds `url` (checked, see [`super::mirrors`]) as the last of the user's mirrors of
    /// registry `name`.
    pub(super) fn add_mirror(dir: &DataDir, name: &RegistryName, url: &str) -> Result<Self, StoreError> {
        let url = super::mirrors::user_mirror_url(url)?;
        Self::edit(dir, name, |registry| {
            if registry.url == url || registry.mirrors.contains(&url) {
                return Err(StoreError::MirrorExists { registry: name.clone(), url });
            }
            registry.mirrors.push(url);
            Ok(())
        })
    }

    /// Removes `url` from the user's mirrors of registry `name`.
    pub(super) fn remove_mirror(dir: &DataDir, name: &RegistryName, url: &str) -> Result<Self, StoreError> {
        Self::edit(dir, name, |registry| {
            let wanted = url.trim_end_matches('/');
            let before = registry.mirrors.len();
            registry.mirrors.retain(|m| m != wanted);
            if registry.mirrors.len() == before {
                return Err(StoreError::UnknownMirror {
                    registry: name.clone(),
                    url: url.to_owned(),
                    user_mirrors: registry.mirrors.clone(),
                });
            }
            Ok(())
        })
    }

    /// Applies `change` to the configuration of registry `name` and saves the result;
    /// nothing is saved when `change` fails.
    fn edit(
        dir: &DataDir,
        name: &RegistryName,
        change: impl FnOnce(&mut RegistryConfig) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let mut config = Self::load(dir)?;
        let registry = config
            .registries
            .iter_mut()
            .find(|r| &r.name == name)
            .ok_or_else(|| StoreError::UnknownRegistry { name: name.clone() })?;
        change(registry)?;
        config.save(dir)?;
        Ok(config)
    }

    /// Removes a registry and its trusted metadata.
    pub(super) fn remove(dir: &DataDir, name: &RegistryName) -> Result<Self, StoreError> {
        let mut config = Self::load(dir)?;
        let before = config.registries.len();
        config.registries.retain(|r| &r.name != name);
        if config.registries.len() == before {
            return Err(StoreError::UnknownRegistry { name: name.clone() });
        }
        config.save(dir)?;
        remove_dir(&dir.metadata_dir(name))?;
        Ok(config)
    }
}

/// Why a registry could not be added: what its first refresh found.
#[derive(Debug, thiserror::Error)]
pub enum AddProblem {
    /// The site has no such file: the URL is not the site's base.
    #[error(
        "{url} has no {file} (not found): the URL must be the registry site's base, the folder that holds metadata/ and targets/"
    )]
    NotFound {
        /// The URL given.
        url: String,
        /// The file the refresh asked for.
        file: String,
    },
    /// The host could not be reached, or did not answer in time.
    #[error("cannot reach {url}: {detail}; check the URL and the network, then add it again")]
    Unreachable {
        /// The URL given.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The site's metadata is not signed by the keys of the root given.
    #[error(
        "the site at {url} is not signed by the keys of the root metadata given ({detail}); is --root this registry's own 1.root.json?"
    )]
    WrongRoot {
        /// The URL given.
        url: String,
        /// What did not verify.
        detail: String,
    },
    /// Anything else the refresh refused.
    #[error("{url}: {detail}")]
    Refused {
        /// The URL given.
        url: String,
        /// What was refused.
        detail: String,
    },
}

impl AddProblem {
    /// Explains a failed first refresh of the registry at `url`.
    pub(super) fn explain(url: &str, error: &crate::trust::TrustError) -> Self {
        use crate::transport::{AttemptError, TransportError};
        use crate::trust::TrustError;
        let url = url.to_owned();
        let detail = error.to_string();
        match error {
            TrustError::Fetch(failure) if failure.is_not_found() => {
                Self::NotFound { url, file: format!("metadata/{}", failure.path) }
            }
            TrustError::Fetch(failure)
                if failure.attempts.iter().all(|a| {
                    matches!(
                        &a.error,
                        AttemptError::Transport(
                            TransportError::Connection { .. }
                                | TransportError::Timeout { .. }
                                | TransportError::TooSlow { .. }
                                | TransportError::Status { .. }
                        )
                    )
                }) =>
            {
                Self::Unreachable { url, detail }
            }
            TrustError::Threshold { .. } | TrustError::WrongType { .. } => Self::WrongRoot { url, detail },
            TrustError::Fetch(failure)
                if failure
                    .attempts
                    .iter()
                    .any(|a| matches!(&a.error, AttemptError::Rejected(TrustError::Threshold { .. }))) =>
            {
                Self::WrongRoot { url, detail }
            }
            _ => Self::Refused { url, detail },
        }
    }
}

fn remove_dir(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::fs::FsError::new("deleting", path, e).into()),
    }
}
