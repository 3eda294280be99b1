//! Transport: getting bytes from a mirror, and nothing more.
//!
//! This module owns how a file is fetched: the [`Transport`] trait, its HTTP(S)
//! implementation on ureq ([`HttpTransport`]: timeouts, a total deadline for metadata
//! and a minimum transfer rate for every download (slow retrieval), bounded retries with
//! backoff, conditional requests, size caps enforced while streaming), `file://` mirrors
//! ([`FileTransport`]), [`AnyTransport`] which picks one by URL scheme, ordered mirror
//! failover ([`Mirrors`]) with health memory ([`MirrorHealth`]: failed mirrors last,
//! the fastest healthy first, persisted), bounded parallel downloads ([`parallel`]) and the
//! content-addressed download cache ([`DownloadCache`]).
//!
//! It does not decide whether bytes are *trustworthy*: that is the `trust` module's job.
//! [`Mirrors::fetch_with`] takes the caller's verification as a closure, so a mirror
//! whose bytes fail verification is skipped exactly like one that timed out.

mod cache;
mod file;
pub mod health;
mod http;
mod mirrors;
pub mod parallel;

use std::fmt;

pub use cache::{CacheError, DownloadCache};
pub use file::FileTransport;
pub use health::{HealthOptions, MirrorHealth};
pub use http::{HttpOptions, HttpTransport, KEPT_CONNECTIONS_PER_HOST, MAX_RESPONSE_HEAD, MinRate};
pub use mirrors::{Attempt, AttemptError, FetchSpec, Mirror, MirrorKind, Mirrors, MirrorsError};

/// Receives progress of long downloads. The library reports; a binary draws.
pub trait Progress: Send + Sync {
    /// `received` bytes of `url` have arrived so far; `total` when the server said.
    fn on_progress(&self, url: &str, received: u64, total: Option<u64>);
}

/// HTTP cache validators of a response (`ETag`, `Last-Modified`), replayed as
/// `If-None-Match` / `If-Modified-Since` on the next request for the same file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// The `ETag` header, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` header, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is nothing to revalidate with.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// One request: a URL, the most bytes the caller accepts, and optional validators.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Absolute URL (`http://`, `https://` or `file://`).
    pub url: &'a str,
    /// Upper bound on the body size; more bytes fail the request with
    /// [`TransportError::TooLarge`] as soon as they arrive.
    pub max_length: u64,
    /// Makes the request conditional (answered by [`Fetched::NotModified`]).
    pub validators: Option<&'a Validators>,
    /// Progress reporting for this request.
    pub progress: Option<&'a dyn Progress>,
    /// Metadata or a target: metadata downloads also have a total deadline
    /// ([`HttpOptions::metadata_deadline`]). Default [`MirrorKind::Targets`].
    pub kind: MirrorKind,
}

impl<'a> Request<'a> {
    /// A plain GET of `url` accepting at most `max_length` bytes.
    pub fn new(url: &'a str, max_length: u64) -> Self {
        Self { url, max_length, validators: None, progress: None, kind: MirrorKind::Targets }
    }

    /// Marks the request as a download of `kind`.
    #[must_use]
    pub fn with_kind(mut self, kind: MirrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Makes the request conditional on `validators`.
    #[must_use]
    pub fn with_validators(mut self, validators: Option<&'a Validators>) -> Self {
        self.validators = validators.filter(|v| !v.is_empty());
        self
    }

    /// Reports progress to `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Option<&'a dyn Progress>) -> Self {
        self.progress = progress;
        self
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("url", &self.url)
            .field("max_length", &self.max_length)
            .field("validators", &self.validators)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What a successful fetch returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The file, with the validators to revalidate it later.
    Body {
        /// The bytes, at most `max_length` of them.
        bytes: Vec<u8>,
        /// `ETag` / `Last-Modified` of the response.
        validators: Validators,
    },
    /// A conditional request was answered `304 Not Modified`.
    NotModified,
}

impl Fetched {
    /// The body bytes; `None` for `304`.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Self::Body { bytes, .. } => Some(bytes),
            Self::NotModified => None,
        }
    }
}

/// Why a fetch failed. Every variant names the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// `404`/`403`, or a missing file: the mirror does not have it.
    #[error("{url}: not found (HTTP {status})")]
    NotFound {
        /// The URL.
        url: String,
        /// HTTP status (404 for a missing `file://` path).
        status: u16,
    },
    /// Any other unsuccessful HTTP status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The body is larger than the caller accepts.
    #[error("{url}: larger than the {limit}-byte limit")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The body ended before the `Content-Length` the server announced.
    #[error("{url}: body has {actual} bytes but Content-Length said {declared}")]
    LengthMismatch {
        /// The URL.
        url: String,
        /// Announced length.
        declared: u64,
        /// Bytes received.
        actual: u64,
    },
    /// Connecting or reading took longer than the configured timeout.
    #[error("{url}: timed out ({what})")]
    Timeout {
        /// The URL.
        url: String,
        /// Which timeout.
        what: String,
    },
    /// The body arrived too slowly: slower than the minimum rate, or not complete by
    /// the deadline (a slow-retrieval attack, or a mirror that cannot keep up).
    #[error("{url}: too slow: {received} bytes in {:.1} s ({why})", elapsed.as_secs_f64())]
    TooSlow {
        /// The URL.
        url: String,
        /// Body bytes received before giving up.
        received: u64,
        /// Time since the request started.
        elapsed: std::time::Duration,
        /// Which limit was hit.
        why: String,
    },
    /// The connection failed or broke (refused, reset, DNS, TLS, protocol).
    #[error("{url}: {message}")]
    Connection {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The URL's scheme is not one this transport serves.
    #[error("{url}: unsupported URL (expected http://, https:// or file://)")]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
}

impl TransportError {
    /// Whether trying the same URL again could help (timeouts, broken connections,
    /// `5xx`, `429`). `404` and size violations are final.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } | Self::LengthMismatch { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            // A mirror that drip-feeds would drip-feed again: the next mirror is asked.
            Self::NotFound { .. } | Self::TooLarge { .. } | Self::TooSlow { .. } | Self::UnsupportedUrl { .. } => false,
        }
    }

    /// Whether the mirror answered "no such file".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Fetches files. Implementations must enforce `max_length` while reading, never
/// after, and must not follow conditional semantics they cannot honour (answer with
/// the full body instead).
pub trait Transport: Send + Sync {
    /// Performs one request (retries, if any, happen inside).
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError>;
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        (**self).fetch(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        (**self).fetch(request)
    }
}

/// HTTP(S) and `file://` behind one transport, chosen by the URL's scheme.
#[derive(Debug, Default)]
pub struct AnyTransport {
    http: HttpTransport,
    file: FileTransport,
}

impl AnyTransport {
    /// With the given HTTP options.
    pub fn new(http: HttpOptions) -> Self {
        Self { http: HttpTransport::new(http), file: FileTransport }
    }
}

impl Transport for AnyTransport {
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        if request.url.starts_with("file://") {
            self.file.fetch(request)
        } else if request.url.starts_with("http://") || request.url.starts_with("https://") {
            self.http.fetch(request)
        } else {
            Err(TransportError::UnsupportedUrl { url: request.url.to_owned() })
        }
    }
}

/// How fast a body must arrive: an optional total deadline and an optional minimum
/// rate (see [`HttpOptions`]). Checked each time bytes arrive; silence between reads
/// is bounded by the transport's per-read timeout.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pace {
    /// When the request started.
    pub(crate) started: Option<std::time::Instant>,
    /// The whole body must have arrived within this long of `started`.
    pub(crate) deadline: Option<std::time::Duration>,
    /// The minimum transfer rate, if any.
    pub(crate) min_rate: Option<MinRate>,
}

/// Why [`read_capped`] gave up on a slow body.
#[derive(Debug)]
pub(crate) struct SlowBody {
    pub(crate) received: u64,
    pub(crate) elapsed: std::time::Duration,
    pub(crate) why: String,
}

impl std::fmt::Display for SlowBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes in {:?}: {}", self.received, self.elapsed, self.why)
    }
}

impl std::error::Error for SlowBody {}

/// Reads `reader` to the end, failing as soon as more than `max_length` bytes arrive
/// (`FileTooLarge`) or the body falls behind `pace` (`TimedOut` wrapping a [`SlowBody`]).
pub(crate) fn read_capped(
    mut reader: impl std::io::Read,
    request: &Request<'_>,
    declared: Option<u64>,
    pace: Pace,
) -> Result<Vec<u8>, std::io::Error> {
    use std::time::Instant;
    let started = pace.started.unwrap_or_else(Instant::now);
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(request.max_length).min(1 << 20) as usize);
    let mut buf = [0u8; 16 * 1024];
    // The low-speed window: bytes received since `window_start`.
    let mut window_start = started;
    let mut window_bytes = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if bytes.len() as u64 + n as u64 > request.max_length {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "body exceeds the limit"));
        }
        bytes.extend_from_slice(&buf[..n]);
        if let Some(progress) = request.progress {
            progress.on_progress(request.url, bytes.len() as u64, declared);
        }
        let now = Instant::now();
        let elapsed = now.duration_since(started);
        let slow = |why: String| {
            let body = SlowBody { received: bytes.len() as u64, elapsed, why };
            std::io::Error::new(std::io::ErrorKind::TimedOut, body)
        };
        if let Some(deadline) = pace.deadline
            && elapsed > deadline
        {
            return Err(slow(format!("the whole file must arrive within {deadline:?}")));
        }
        if let Some(rate) = pace.min_rate
            && elapsed > rate.grace
        {
            window_bytes += n as u64;
            if now.duration_since(window_start) >= rate.window {
                if window_bytes < rate.bytes {
                    return Err(slow(format!(
                        "{window_bytes} bytes in the last {:?}, the minimum is {} bytes per {:?}",
                        now.duration_since(window_start),
                        rate.bytes,
                        rate.window
                    )));
                }
                window_start = now;
                window_bytes = 0;
            }
        } else {
            window_start = now;
        }
    }
}
