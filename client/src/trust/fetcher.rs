//! Target downloads apart from the [`Updater`](super::Updater): what a download needs
//! (mirrors, the verified download cache, progress, the consistent-snapshot naming),
//! owned, so downloads can run on other threads while the updater walks delegations.
//!
//! Owns the one check every target download passes (length cap while streaming, then
//! length and SHA-256 against the [`TargetInfo`]), and the only way unverified bytes
//! fetched ahead of their hash become usable: an [`Unverified`] download (an index doc
//! alias, `trellis_schema::target::index_alias_path`) is handed out as bytes only by
//! [`TargetFetcher::accept`], after the same check against the signed [`TargetInfo`].
//! Which alias to ask for and when to give up on it is [`crate::store`]'s.

use std::sync::Arc;

use super::TrustError;
use super::store::quote;
use super::updater::TargetInfo;
use super::verify::check_length_and_hashes;
use crate::transport::{DownloadCache, FetchSpec, MirrorKind, Mirrors, MirrorsError, Progress};

/// Bytes downloaded before anything signed vouched for them: usable only through
/// [`TargetFetcher::accept`].
#[derive(Debug)]
pub struct Unverified(Vec<u8>);

impl Unverified {
    /// How many bytes arrived.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing arrived.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The parts of an updater a target download needs, detached from it (cheap to make:
/// the transport and the health memory are shared).
#[derive(Clone)]
pub struct TargetFetcher {
    mirrors: Mirrors,
    cache: Option<DownloadCache>,
    progress: Option<Arc<dyn Progress>>,
    consistent_snapshot: bool,
}

impl std::fmt::Debug for TargetFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetFetcher").field("mirrors", &self.mirrors).finish_non_exhaustive()
    }
}

impl TargetFetcher {
    pub(super) fn new(
        mirrors: Mirrors,
        cache: Option<DownloadCache>,
        progress: Option<Arc<dyn Progress>>,
        consistent_snapshot: bool,
    ) -> Self {
        Self { mirrors, cache, progress, consistent_snapshot }
    }

    /// The verified bytes of a target if the download cache holds them intact.
    pub fn cached(&self, info: &TargetInfo) -> Option<Vec<u8>> {
        cached(self.cache.as_ref(), info)
    }

    /// The verified bytes of a target: from the cache, else from the first mirror
    /// whose bytes match the signed length and hashes (see [`super::Updater::fetch_target`]).
    pub fn fetch(&self, info: &TargetInfo) -> Result<Vec<u8>, TrustError> {
        fetch(&self.mirrors, self.cache.as_ref(), self.progress.as_deref(), self.consistent_snapshot, info)
    }

    /// Downloads `path` (relative to the targets tree, not quoted) as it is, at most
    /// `max_length` bytes, from the preferred mirror only ([`Mirrors::preferred`]: its
    /// health is not touched, no other mirror is asked). Nothing is checked: no signed
    /// document names these bytes yet.
    pub fn fetch_unverified(&self, path: &str, max_length: u64) -> Result<Unverified, MirrorsError<&'static str>> {
        let quoted: Vec<String> = path.split('/').map(quote).collect();
        let quoted = quoted.join("/");
        let spec = FetchSpec { kind: MirrorKind::Targets, path: &quoted, max_length, validators: None };
        self.mirrors.preferred().fetch_with(spec, None, |_, fetched| {
            fetched.into_bytes().map(Unverified).ok_or("a not-modified answer to an unconditional request")
        })
    }

    /// The bytes of `unverified` when they are exactly the target `info` describes
    /// (its signed length and SHA-256), put into the download cache like any verified
    /// target; `None` otherwise (a stale, truncated or tampered copy).
    pub fn accept(&self, info: &TargetInfo, unverified: Unverified) -> Option<Vec<u8>> {
        let bytes = unverified.0;
        check_length_and_hashes(&info.path, &bytes, Some(info.file.length), Some(&info.file.hashes)).ok()?;
        put_in_cache(self.cache.as_ref(), info, &bytes);
        Some(bytes)
    }
}

pub(super) fn cached(cache: Option<&DownloadCache>, info: &TargetInfo) -> Option<Vec<u8>> {
    let bytes = cache?.get(&info.sha256()?)?;
    check_length_and_hashes(&info.path, &bytes, Some(info.file.length), Some(&info.file.hashes))
        .is_ok()
        .then_some(bytes)
}

fn put_in_cache(cache: Option<&DownloadCache>, info: &TargetInfo, bytes: &[u8]) {
    if let (Some(cache), Some(digest)) = (cache, info.sha256())
        && let Err(e) = cache.put(&digest, bytes)
    {
        tracing::warn!(error = %e, "could not cache a verified target");
    }
}

pub(super) fn fetch(
    mirrors: &Mirrors,
    cache: Option<&DownloadCache>,
    progress: Option<&dyn Progress>,
    consistent_snapshot: bool,
    info: &TargetInfo,
) -> Result<Vec<u8>, TrustError> {
    if let Some(bytes) = cached(cache, info) {
        return Ok(bytes);
    }
    let what = format!("{} (listed by {})", info.path, info.role);
    let file = file_path(info, consistent_snapshot);
    let spec = FetchSpec { kind: MirrorKind::Targets, path: &file, max_length: info.file.length, validators: None };
    let bytes = mirrors
        .fetch_with(spec, progress, |_, fetched| {
            let bytes = fetched.into_bytes().unwrap_or_default();
            check_length_and_hashes(&what, &bytes, Some(info.file.length), Some(&info.file.hashes)).map(|()| bytes)
        })
        .map_err(|e| TrustError::Fetch(Box::new(e)))?;
    put_in_cache(cache, info, &bytes);
    Ok(bytes)
}

/// The URL path of a target: with consistent snapshots the file name is prefixed
/// by one of its hashes (`dir/<sha256>.name`).
pub(super) fn file_path(info: &TargetInfo, consistent_snapshot: bool) -> String {
    let (dir, name) = match info.path.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, info.path.as_str()),
    };
    let name = if consistent_snapshot {
        let hash = info.file.hashes.get("sha256").or_else(|| info.file.hashes.values().next());
        match hash {
            Some(hash) => format!("{hash}.{name}"),
            None => name.to_owned(),
        }
    } else {
        name.to_owned()
    };
    let quoted: Vec<String> = dir.into_iter().flat_map(|d| d.split('/')).chain([name.as_str()]).map(quote).collect();
    quoted.join("/")
}
