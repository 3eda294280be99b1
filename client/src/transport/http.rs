//! HTTP(S) on ureq: timeouts, a total deadline for metadata and a minimum transfer
//! rate for every body ([`MinRate`], against slow retrieval), bounded retries with
//! backoff, conditional requests and size caps enforced while the body streams in.
//!
//! Owns one request to one URL, retried only for transient failures (timeouts,
//! broken connections, `5xx`, `429`), never for `404` or an oversized body. Which
//! mirror to ask next is [`super::Mirrors`]' job; whether the bytes are good is the
//! caller's (`trust`).

use std::io;
use std::time::Duration;

use super::{Fetched, MirrorKind, Pace, Request, SlowBody, Transport, TransportError, Validators, read_capped};

/// Knobs of [`HttpTransport`], with documented defaults.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Time to establish a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for response headers or body bytes. Default 30 s.
    pub read_timeout: Duration,
    /// Attempts after the first one for transient failures (timeouts, resets, 5xx).
    /// Default 2.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one. Default 200 ms.
    pub backoff: Duration,
    /// `User-Agent` header. Default `trellis/<version>`.
    pub user_agent: String,
    /// The whole of a metadata file (`timestamp.json`, a role) must arrive within this
    /// long of the request, headers included; `None` for no deadline. Default 60 s
    /// (a 5 MB targets role at the default minimum rate takes under 10 s).
    pub metadata_deadline: Option<Duration>,
    /// The slowest transfer accepted for any download, metadata or target (curl's
    /// `--speed-limit`/`--speed-time`); `None` for no minimum. Default 1 KiB per 10 s
    /// window after a 10 s grace period.
    pub min_rate: Option<MinRate>,
}

/// A minimum transfer rate: after `grace`, fewer than `bytes` arriving over any
/// `window` fails the download with [`TransportError::TooSlow`]. This is what stops a
/// mirror that drip-feeds a file (TUF's slow-retrieval attack) within a bounded time;
/// the per-read timeout alone never fires while a byte arrives now and then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    /// Fewest bytes per window.
    pub bytes: u64,
    /// The window.
    pub window: Duration,
    /// How long after the request the rate starts to count (connection set-up, a slow
    /// start).
    pub grace: Duration,
}

impl Default for MinRate {
    fn default() -> Self {
        Self { bytes: 1024, window: Duration::from_secs(10), grace: Duration::from_secs(10) }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(200),
            user_agent: concat!("trellis/", env!("CARGO_PKG_VERSION")).to_owned(),
            metadata_deadline: Some(Duration::from_secs(60)),
            min_rate: Some(MinRate::default()),
        }
    }
}

/// Fetches `http://` and `https://` URLs. One connection pool per transport.
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    options: HttpOptions,
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new(HttpOptions::default())
    }
}

/// Idle connections kept per host: at least as many as the store has requests in
/// flight to one host at once (a prefetch wave's background and delegation downloads,
/// 64), so that every connection a wave opened serves the next wave instead of being
/// closed and opened again: a new connection is one more round trip, two or more with
/// TLS, which a benchmark on loopback does not show.
pub const KEPT_CONNECTIONS_PER_HOST: usize = 64;

/// The largest response head (status line and headers) accepted: a CDN's is 1–3 KB,
/// nginx refuses request heads over 8 KB by default. A longer one fails the request
/// with ureq's `LargeResponseHeader` ("response header is too big"), a
/// connection error naming the URL.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Each connection's receive buffer. It must hold a whole response head (ureq parses
/// the head from this buffer and never grows it), so it is kept above
/// [`MAX_RESPONSE_HEAD`]; bodies stream through it to the size cap. ureq's default
/// (128 KiB, zero-filled on a connection's first request, and as much again for the
/// send buffer) cost a cold install's ~190 connections ~48 MB of freshly faulted pages:
/// a fifth of its CPU in the kernel's page clearing.
const INPUT_BUFFER: usize = 32 * 1024;

/// Each connection's send buffer: the store only sends bodiless `GET`s, whose heads
/// (the URL, `User-Agent`, the validators) are well under 2 KB.
const OUTPUT_BUFFER: usize = 16 * 1024;

impl HttpTransport {
    /// A transport with `options`.
    pub fn new(options: HttpOptions) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_recv_response(Some(options.read_timeout))
            .timeout_per_read(Some(options.read_timeout))
            .user_agent(options.user_agent.as_str())
            .max_redirects(5)
            .max_idle_connections(2 * KEPT_CONNECTIONS_PER_HOST)
            .max_idle_connections_per_host(KEPT_CONNECTIONS_PER_HOST)
            .max_response_header_size(MAX_RESPONSE_HEAD)
            .input_buffer_size(INPUT_BUFFER)
            .output_buffer_size(OUTPUT_BUFFER)
            .build();
        Self { agent: ureq::Agent::new_with_config(config), options }
    }

    fn fetch_once(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        let url = request.url;
        let pace = Pace {
            started: Some(std::time::Instant::now()),
            deadline: match request.kind {
                MirrorKind::Metadata => self.options.metadata_deadline,
                MirrorKind::Targets => None,
            },
            min_rate: self.options.min_rate,
        };
        let mut call = self.agent.get(url);
        if let Some(validators) = request.validators {
            if let Some(etag) = &validators.etag {
                call = call.header("If-None-Match", etag.as_str());
            }
            if let Some(modified) = &validators.last_modified {
                call = call.header("If-Modified-Since", modified.as_str());
            }
        }
        let response = call.call().map_err(|e| map_ureq_error(url, e))?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            304 if request.validators.is_some() => return Ok(Fetched::NotModified),
            403 | 404 => return Err(TransportError::NotFound { url: url.to_owned(), status }),
            _ => return Err(TransportError::Status { url: url.to_owned(), status }),
        }
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let validators = Validators { etag: header("etag"), last_modified: header("last-modified") };
        // With a content coding (ureq asks for gzip and decodes it), Content-Length
        // counts encoded bytes: the cap then applies to the decoded stream only.
        let encoded = header("content-encoding").is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"));
        let declared = header("content-length").and_then(|v| v.trim().parse::<u64>().ok()).filter(|_| !encoded);
        if declared.is_some_and(|len| len > request.max_length) {
            return Err(TransportError::TooLarge { url: url.to_owned(), limit: request.max_length });
        }
        let reader = response.into_body().into_reader();
        let bytes =
            read_capped(reader, request, declared, pace).map_err(|e| map_io_error(url, request.max_length, e))?;
        if let Some(declared) = declared
            && declared != bytes.len() as u64
        {
            return Err(TransportError::LengthMismatch { url: url.to_owned(), declared, actual: bytes.len() as u64 });
        }
        Ok(Fetched::Body { bytes, validators })
    }
}

impl Transport for HttpTransport {
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        let mut delay = self.options.backoff;
        let mut attempt = 0;
        loop {
            match self.fetch_once(request) {
                Err(e) if e.is_transient() && attempt < self.options.retries => {
                    tracing::debug!(url = request.url, attempt, error = %e, "retrying");
                    std::thread::sleep(delay);
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn map_io_error(url: &str, limit: u64, e: io::Error) -> TransportError {
    if e.kind() == io::ErrorKind::FileTooLarge {
        return TransportError::TooLarge { url: url.to_owned(), limit };
    }
    if let Some(slow) = e.get_ref().and_then(|inner| inner.downcast_ref::<SlowBody>()) {
        return TransportError::TooSlow {
            url: url.to_owned(),
            received: slow.received,
            elapsed: slow.elapsed,
            why: slow.why.clone(),
        };
    }
    // ureq wraps its own errors (timeouts, truncated bodies) in io::Error.
    if let Some(inner) = e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()) {
        return match inner {
            ureq::Error::Timeout(which) => TransportError::Timeout { url: url.to_owned(), what: which.to_string() },
            other => TransportError::Connection { url: url.to_owned(), message: other.to_string() },
        };
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            TransportError::Timeout { url: url.to_owned(), what: "reading the body".into() }
        }
        _ => TransportError::Connection { url: url.to_owned(), message: e.to_string() },
    }
}

fn map_ureq_error(url: &str, e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(which) => TransportError::Timeout { url: url.to_owned(), what: which.to_string() },
        ureq::Error::Io(io) => map_io_error(url, 0, io),
        ureq::Error::BadUri(_) => TransportError::UnsupportedUrl { url: url.to_owned() },
        other => TransportError::Connection { url: url.to_owned(), message: other.to_string() },
    }
}
