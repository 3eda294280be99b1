//! The mirrors of each registry: where its site may be fetched from.
//!
//! A registry's mirrors are, in this order of preference: the user's own
//! (`registry mirror add`, kept in `registries.json`: a closer or internal copy the
//! user chose), the registry's URL, then the mirrors the registry publishes in its
//! signed metadata (the target [`MIRRORS_TARGET`] of the top-level `targets` role,
//! signed by the offline targets keys). The published list is read only from the
//! verified target after a refresh and kept in `metadata/<registry>/published.mirrors`
//! so that the next run can use those mirrors even when the registry's URL is down.
//! A mirror is only a location: every file from every mirror is verified by
//! [`crate::trust`] exactly as from the registry's URL, so a mirror (or a list of them)
//! can add availability, never trust.
//!
//! The health memory shared by every registry (`mirror-health.json` in the data dir,
//! [`MirrorHealth`]) then orders each fetch: mirrors that failed lately last, a
//! clearly faster one first. It owns none of the fetching ([`crate::transport::Mirrors`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use trellis_schema::mirrors::MirrorList;
use trellis_schema::target::MIRRORS_TARGET;

use super::StoreError;
use super::registries::RegistryConfig;
use crate::state::DataDir;
use crate::transport::health::MirrorRecord;
use crate::transport::{Mirror, MirrorHealth, Mirrors, Transport};
use crate::trust::{TargetInfo, Updater};

/// The file (in a registry's trusted metadata dir) holding its verified mirror list.
pub const PUBLISHED_MIRRORS_FILE: &str = "published.mirrors";

/// Where a mirror of a registry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MirrorOrigin {
    /// Added by the user (`registry mirror add`).
    User,
    /// The registry's own URL.
    Registry,
    /// Published by the registry in its signed metadata.
    Published,
}

/// One mirror of a registry as `registry mirror list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MirrorStatus {
    /// The mirror's base URL.
    pub url: String,
    /// Where it comes from.
    pub origin: MirrorOrigin,
    /// What the health memory knows of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<MirrorRecord>,
}

/// The health memory file of a data dir.
pub fn health_file(dir: &DataDir) -> PathBuf {
    dir.root().join("mirror-health.json")
}

fn published_file(metadata_dir: &Path) -> PathBuf {
    metadata_dir.join(PUBLISHED_MIRRORS_FILE)
}

/// The mirror list last verified for the registry whose trusted metadata is in
/// `metadata_dir` (none when it published none or was never refreshed).
pub fn published(metadata_dir: &Path) -> Vec<String> {
    let path = published_file(metadata_dir);
    let Ok(bytes) = std::fs::read(&path) else { return Vec::new() };
    match trellis_schema::json::from_slice::<MirrorList>(&bytes) {
        Ok(list) => valid_urls(&list),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged published mirror list");
            Vec::new()
        }
    }
}

/// The URLs of `list` that are valid mirror URLs (a bad entry is skipped, not fatal:
/// the list only adds locations).
fn valid_urls(list: &MirrorList) -> Vec<String> {
    list.mirrors
        .iter()
        .filter_map(|m| match trellis_schema::mirrors::normalize(&m.url) {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a published mirror");
                None
            }
        })
        .collect()
}

/// The mirrors of `config` with `published` ones, in order of preference, each once.
pub fn statuses(config: &RegistryConfig, published: &[String], health: Option<&MirrorHealth>) -> Vec<MirrorStatus> {
    let mut out: Vec<MirrorStatus> = Vec::new();
    let candidates = config
        .mirrors
        .iter()
        .map(|url| (url, MirrorOrigin::User))
        .chain([(&config.url, MirrorOrigin::Registry)])
        .chain(published.iter().map(|url| (url, MirrorOrigin::Published)));
    for (url, origin) in candidates {
        let url = url.trim_end_matches('/');
        if out.iter().any(|m| m.url == url) {
            continue;
        }
        let health = health.and_then(|h| h.record(&Mirror::site(url)));
        out.push(MirrorStatus { url: url.to_owned(), origin, health });
    }
    out
}

/// The [`Mirrors`] of `config` and its `published` mirrors over `transport`.
pub(super) fn mirrors_of(
    transport: &Arc<dyn Transport>,
    health: &Arc<MirrorHealth>,
    config: &RegistryConfig,
    published: &[String],
) -> Mirrors {
    let sites = statuses(config, published, None).iter().map(|m| Mirror::site(&m.url)).collect();
    Mirrors::new(Arc::clone(transport), sites).with_health(Arc::clone(health))
}

/// After a refresh: the mirror list the registry now signs (its top-level `targets`
/// role only), when it differs from `current`; kept in the metadata dir. A list that
/// cannot be fetched or parsed leaves the current one (logged): it only adds locations.
pub(super) fn refreshed_list(updater: &Updater, current: &[String]) -> Option<Vec<String>> {
    let metadata_dir = updater.store().dir().to_owned();
    // Not loaded (no refresh happened): nothing is known, keep what we have.
    let targets = updater.trusted().targets()?;
    let list = match targets.targets.get(MIRRORS_TARGET).cloned() {
        None => Vec::new(),
        Some(file) => {
            let info = TargetInfo { path: MIRRORS_TARGET.to_owned(), file, role: "targets".to_owned() };
            let parsed = updater
                .fetch_target(&info)
                .map_err(|e| e.to_string())
                .and_then(|bytes| trellis_schema::json::from_slice::<MirrorList>(&bytes).map_err(|e| e.to_string()));
            match parsed {
                Ok(list) => valid_urls(&list),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the registry's mirror list; keeping the known one");
                    return None;
                }
            }
        }
    };
    if list == current {
        return None;
    }
    // Kept for the next run; a failure to keep it is logged, not fatal (the list only
    // adds locations, and a read-only data dir must not stop a refresh).
    let path = published_file(&metadata_dir);
    let kept = if list.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        }
    } else {
        MirrorList::from_urls(list.iter().map(String::as_str))
            .map_err(|e| e.to_string())
            .and_then(|document| serde_json::to_vec_pretty(&document).map_err(|e| e.to_string()))
            .and_then(|bytes| crate::fs::write_atomic(&path, &bytes).map_err(|e| e.to_string()))
    };
    if let Err(e) = kept {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the registry's mirror list");
    }
    Some(list)
}

/// `url` as a user mirror: `https://` or `http://` with a host, or an absolute
/// `file:///` path; without trailing `/`.
pub(super) fn user_mirror_url(url: &str) -> Result<String, StoreError> {
    if let Some(path) = url.strip_prefix("file://") {
        let absolute = path.starts_with('/') && path.len() > 1;
        if !absolute || url.chars().any(char::is_control) {
            return Err(StoreError::BadMirrorUrl { url: url.to_owned() });
        }
        return Ok(url.trim_end_matches('/').to_owned());
    }
    trellis_schema::mirrors::normalize(url).map_err(|_| StoreError::BadMirrorUrl { url: url.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mirrors: &[&str]) -> RegistryConfig {
        RegistryConfig {
            name: "main".parse().unwrap(),
            url: "https://store.example".into(),
            mirrors: mirrors.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    #[test]
    fn user_mirrors_come_first_then_the_registry_then_published_each_once() {
        let published = vec!["https://eu.example".to_owned(), "https://user.example".to_owned()];
        let list = statuses(&config(&["https://user.example"]), &published, None);
        let got: Vec<(&str, MirrorOrigin)> = list.iter().map(|m| (m.url.as_str(), m.origin)).collect();
        assert_eq!(
            got,
            [
                ("https://user.example", MirrorOrigin::User),
                ("https://store.example", MirrorOrigin::Registry),
                ("https://eu.example", MirrorOrigin::Published),
            ]
        );
    }

    #[test]
    fn user_mirror_urls_are_checked() {
        assert_eq!(user_mirror_url("https://m.example/x/").unwrap(), "https://m.example/x");
        assert_eq!(user_mirror_url("file:///media/usb/site/").unwrap(), "file:///media/usb/site");
        for bad in ["file://relative/site", "file:///", "ftp://m.example", "m.example", "https://"] {
            assert!(matches!(user_mirror_url(bad), Err(StoreError::BadMirrorUrl { .. })), "{bad}");
        }
    }
}
