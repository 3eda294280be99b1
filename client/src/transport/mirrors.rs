//! Ordered mirror failover.
//!
//! A file is asked of each mirror in order. A mirror that errors, times out, or serves
//! bytes the caller rejects (the `accept` closure: size, hash or signature checks) is
//! skipped *for that file* and the next one is tried. Only when every mirror failed
//! does the fetch fail, with a [`MirrorsError`] that lists what each mirror did.
//!
//! With a [`MirrorHealth`] ([`Mirrors::with_health`]) the order is the configured one
//! adjusted by what the health memory knows: mirrors that failed lately last, a clearly
//! faster mirror first; every outcome is recorded and the memory saved when the order
//! it implies changed (see [`super::health`]).

use std::fmt;
use std::sync::Arc;

use super::health::MirrorHealth;
use super::{Fetched, Progress, Request, Transport, TransportError, Validators};

/// Which tree of a mirror a path lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorKind {
    /// TUF metadata (`metadata/`).
    Metadata,
    /// Target files: index docs, packages, publisher records (`targets/`).
    Targets,
}

/// One mirror: where its metadata and its targets live. Base URLs end with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Base URL of the metadata tree.
    pub metadata_url: String,
    /// Base URL of the targets tree.
    pub targets_url: String,
}

impl Mirror {
    /// A mirror serving `<base>/metadata/` and `<base>/targets/` (a Trellis site).
    pub fn site(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self { metadata_url: format!("{base}/metadata/"), targets_url: format!("{base}/targets/") }
    }

    /// A mirror with separately given metadata and targets base URLs.
    pub fn new(metadata_url: &str, targets_url: &str) -> Self {
        Self { metadata_url: with_slash(metadata_url), targets_url: with_slash(targets_url) }
    }

    /// The full URL of `path` (already URL-quoted) in tree `kind`.
    pub fn url(&self, kind: MirrorKind, path: &str) -> String {
        let base = match kind {
            MirrorKind::Metadata => &self.metadata_url,
            MirrorKind::Targets => &self.targets_url,
        };
        format!("{base}{path}")
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

/// What went wrong at one mirror.
#[derive(Debug)]
pub enum AttemptError<E> {
    /// The transport failed (404, timeout, reset, too large...).
    Transport(TransportError),
    /// The bytes arrived but the caller rejected them.
    Rejected(E),
}

/// One mirror's failure for one file.
#[derive(Debug)]
pub struct Attempt<E> {
    /// The URL that was tried.
    pub url: String,
    /// What happened.
    pub error: AttemptError<E>,
}

impl<E> Attempt<E> {
    /// Whether the transport refused the body as larger than the cap.
    pub fn is_too_large(&self) -> bool {
        matches!(&self.error, AttemptError::Transport(TransportError::TooLarge { .. }))
    }
}

/// Every mirror failed for `path`.
#[derive(Debug)]
pub struct MirrorsError<E> {
    /// The file, relative to the mirror's tree.
    pub path: String,
    /// One entry per mirror, in order.
    pub attempts: Vec<Attempt<E>>,
}

impl<E> MirrorsError<E> {
    /// Whether at least one mirror said "not found" and none served the file: the
    /// answer to "is there a next root version?" when it is "no".
    pub fn is_not_found(&self) -> bool {
        self.attempts.iter().any(|a| matches!(&a.error, AttemptError::Transport(e) if e.is_not_found()))
            && self.attempts.iter().all(|a| matches!(&a.error, AttemptError::Transport(_)))
    }
}

impl<E: fmt::Display> fmt::Display for MirrorsError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts.is_empty() {
            return write!(f, "no mirror is configured to fetch {}", self.path);
        }
        write!(f, "every mirror failed to provide {}", self.path)?;
        for attempt in &self.attempts {
            match &attempt.error {
                AttemptError::Transport(e) => write!(f, "; {e}")?,
                AttemptError::Rejected(e) => write!(f, "; {}: rejected: {e}", attempt.url)?,
            }
        }
        Ok(())
    }
}

impl<E: std::error::Error + 'static> std::error::Error for MirrorsError<E> {}

/// An ordered list of mirrors and the transport that reaches them.
#[derive(Clone)]
pub struct Mirrors {
    transport: Arc<dyn Transport>,
    mirrors: Vec<Mirror>,
    health: Option<Arc<MirrorHealth>>,
}

impl fmt::Debug for Mirrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirrors").field("mirrors", &self.mirrors).finish_non_exhaustive()
    }
}

/// Parameters of one [`Mirrors::fetch_with`] call.
#[derive(Clone, Copy, Debug)]
pub struct FetchSpec<'a> {
    /// Metadata or targets tree.
    pub kind: MirrorKind,
    /// Path inside the tree, URL-quoted.
    pub path: &'a str,
    /// Size cap.
    pub max_length: u64,
    /// Validators and the URL they were obtained from (sent only to that URL).
    pub validators: Option<(&'a str, &'a Validators)>,
}

impl Mirrors {
    /// Mirrors tried in the given order.
    pub fn new(transport: Arc<dyn Transport>, mirrors: Vec<Mirror>) -> Self {
        Self { transport, mirrors, health: None }
    }

    /// Orders the mirrors of each fetch by `health` and records every outcome there.
    #[must_use]
    pub fn with_health(mut self, health: Arc<MirrorHealth>) -> Self {
        self.health = Some(health);
        self
    }

    /// The health memory, if any.
    pub fn health(&self) -> Option<&Arc<MirrorHealth>> {
        self.health.as_ref()
    }

    /// The mirrors, in order.
    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The mirror a fetch would try first (by health, when remembered), alone and
    /// without the health memory: for optional requests (an index doc alias) whose
    /// failure says nothing about the mirror and must not send others the request.
    #[must_use]
    pub fn preferred(&self) -> Self {
        let first = match &self.health {
            Some(health) => health.order(&self.mirrors).into_iter().next(),
            None => Some(0),
        };
        let mirrors = first.and_then(|i| self.mirrors.get(i)).cloned().into_iter().collect();
        Self { transport: Arc::clone(&self.transport), mirrors, health: None }
    }

    /// Fetches `spec.path` from the first mirror that serves bytes `accept` takes.
    /// `accept` gets the URL and the response (a `304` when validators were sent).
    pub fn fetch_with<T, E: fmt::Display>(
        &self,
        spec: FetchSpec<'_>,
        progress: Option<&dyn Progress>,
        mut accept: impl FnMut(&str, Fetched) -> Result<T, E>,
    ) -> Result<T, MirrorsError<E>> {
        let mut attempts = Vec::new();
        let order = match &self.health {
            Some(health) => health.order(&self.mirrors),
            None => (0..self.mirrors.len()).collect(),
        };
        let mut result = None;
        for mirror in order.into_iter().filter_map(|i| self.mirrors.get(i)) {
            let url = mirror.url(spec.kind, spec.path);
            let validators = spec.validators.filter(|(from, _)| *from == url).map(|(_, v)| v);
            let request = Request::new(&url, spec.max_length)
                .with_validators(validators)
                .with_progress(progress)
                .with_kind(spec.kind);
            let started = std::time::Instant::now();
            let fetched = self.transport.fetch(&request);
            let elapsed = (spec.kind == MirrorKind::Metadata).then(|| started.elapsed());
            match fetched {
                Ok(fetched) => match accept(&url, fetched) {
                    Ok(value) => {
                        if let Some(health) = &self.health {
                            health.record_success(mirror, elapsed);
                        }
                        result = Some(value);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(url, "mirror served bytes that were rejected");
                        if let Some(health) = &self.health {
                            health.record_failure(mirror, format!("{url}: rejected: {e}"), true);
                        }
                        attempts.push(Attempt { url, error: AttemptError::Rejected(e) });
                    }
                },
                Err(e) => {
                    tracing::debug!(url, error = %e, "mirror failed");
                    // "Not found" is an answer, not ill health: a partial mirror lacks
                    // blobs, and the probe for the next root expects it.
                    if let Some(health) = self.health.as_ref().filter(|_| !e.is_not_found()) {
                        health.record_failure(mirror, e.to_string(), false);
                    }
                    attempts.push(Attempt { url, error: AttemptError::Transport(e) });
                }
            }
        }
        if let Some(health) = &self.health {
            health.save();
        }
        if let Some(value) = result {
            return Ok(value);
        }
        Err(MirrorsError { path: spec.path.to_owned(), attempts })
    }
}
