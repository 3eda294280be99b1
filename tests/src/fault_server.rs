//! A fault-injecting HTTP/1.1 server on 127.0.0.1 for transport and trust tests.
//!
//! Files are served from memory, per path; each path can be given a [`Fault`]: 404,
//! 500, a stall past the client's read timeout, a truncated body, a flipped byte, a
//! stale old version, a wrong `Content-Length`, a connection reset, a body
//! drip-fed a byte at a time (slow retrieval), or an answer that never ends. Every response
//! carries an `ETag` (the body's SHA-256) and a fixed `Last-Modified`, and honours
//! `If-None-Match` (or, without it, `If-Modified-Since`) with `304`, like a CDN. The server counts requests (path and status) and bytes sent, so tests can
//! assert exactly what a client asked for.
//!
//! HTTP is written by hand on `std::net::TcpListener` because faults need byte-level
//! control (a body shorter than its `Content-Length`, a reset mid-request). One
//! request per connection (`Connection: close`) unless [`FaultServer::set_keep_alive`]
//! asks for persistent connections, as a CDN keeps them: then a connection serves
//! request after request until the client closes it, asks to close it, or a fault's
//! answer ends it.
//!
//! Latency: [`FaultServer::set_latency`] delays every answer by a fixed time (a CDN
//! round trip), and [`FaultServer::critical_path`] counts the longest chain of requests
//! each sent only after the previous one was answered: the round trips a client's
//! critical path takes, whatever the machine's speed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The latency the round-trip tests set ([`FaultServer::set_latency`]): large against
/// the scheduling stalls of a loaded 2-core CI runner running tests in parallel (40 ms
/// was not: a request sent together with others but scheduled late then arrived after
/// the first answer and counted as a round trip of its own), small enough that a cold
/// install of a few levels stays around a second.
pub const ROUND_TRIP_LATENCY: Duration = Duration::from_millis(150);

/// The `Last-Modified` of every file.
pub const LAST_MODIFIED: &str = "Wed, 25 Nov 2026 12:00:00 GMT";

/// What the server does instead of (or to) a normal response for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `404 Not Found`.
    NotFound,
    /// `500 Internal Server Error`.
    ServerError,
    /// Sends nothing for this long, then closes the connection.
    Stall(Duration),
    /// Announces the full `Content-Length` but sends only half the body, then closes.
    Truncate,
    /// Serves the body with one byte (in the middle) flipped.
    FlipByte,
    /// Serves these bytes instead (an old version of the file).
    Stale(Vec<u8>),
    /// Announces a `Content-Length` of half the body and sends only that many bytes.
    WrongContentLength,
    /// Resets the connection (RST) without answering.
    Reset,
    /// Sends the body without `Content-Length`, delimited by closing the connection.
    NoContentLength,
    /// Not a fault: sends the body gzip-encoded (`Content-Encoding: gzip`), as CDNs do.
    Gzip,
    /// Slow retrieval: announces the full `Content-Length`, then sends the body one
    /// byte at a time with this pause before each (until the client hangs up).
    Drip(Duration),
    /// An endless answer: no `Content-Length`, the body and then spaces, 64 KiB at a
    /// time as fast as the client reads, until it hangs up (each chunk counted in
    /// [`FaultServer::bytes_sent`]).
    Endless,
}

/// One request the server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Request path (without the query).
    pub path: String,
    /// Status sent (0 when the connection was reset or stalled).
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// Shared, not copied, by each answer: the server's lock is held for lookups and
    /// pushes only, never for an allocation or a copy (a cold install sends ~40
    /// requests at once, and every answer takes the lock).
    files: HashMap<String, Arc<[u8]>>,
    faults: HashMap<String, (Fault, Option<u32>)>,
    hits: Vec<Hit>,
    /// When each answered request arrived, when its answer began to be written, and its
    /// path (not for an endless or drip-fed answer). Recorded before the answer's first
    /// byte is sent: recorded after the last, the client could read the answer and
    /// return before the serving thread got to record it, and a test reading the spans
    /// then missed the last request of a chain (stop 28's CI counted a three-round-trip
    /// search as two).
    spans: Vec<(Instant, Instant, String)>,
    latency: Duration,
    keep_alive: bool,
    /// Connections accepted.
    connections: usize,
}

/// A running fault server; stops when dropped.
pub struct FaultServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    bytes_sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FaultServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let bytes_sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, bytes_sent, stop) = (Arc::clone(&state), Arc::clone(&bytes_sent), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    lock(&state).connections += 1;
                    let (state, bytes_sent) = (Arc::clone(&state), Arc::clone(&bytes_sent));
                    std::thread::spawn(move || {
                        let _ = serve(stream, &state, &bytes_sent);
                    });
                }
            })
        };
        Ok(Self { addr, state, bytes_sent, stop, thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `bytes` at `path` (e.g. `/metadata/timestamp.json`).
    pub fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        let (path, bytes) = (path.to_owned(), Arc::from(bytes.into()));
        lock(&self.state).files.insert(path, bytes);
    }

    /// Removes the file at `path`.
    pub fn remove(&self, path: &str) {
        lock(&self.state).files.remove(path);
    }

    /// The paths of every file served, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = lock(&self.state).files.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Applies `fault` to every request of `path`.
    pub fn fault(&self, path: &str, fault: Fault) {
        lock(&self.state).faults.insert(path.to_owned(), (fault, None));
    }

    /// Applies `fault` to the next `times` requests of `path`, then serves normally.
    pub fn fault_times(&self, path: &str, fault: Fault, times: u32) {
        lock(&self.state).faults.insert(path.to_owned(), (fault, Some(times)));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Every request so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.state).hits.clone()
    }

    /// Number of requests so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state).hits.len()
    }

    /// Connections accepted so far: with [`FaultServer::set_keep_alive`], fewer than
    /// the requests when the client reuses its connections.
    pub fn connections(&self) -> usize {
        lock(&self.state).connections
    }

    /// Bytes written to clients so far (status lines, headers and bodies).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::SeqCst)
    }

    /// Delays every answer by `latency` (after the request is read): one round trip
    /// of a distant server.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
    }

    /// Keeps each connection open after a complete answer for the client's next request
    /// (`Connection: keep-alive`), as a CDN does, instead of one request per connection;
    /// the connection's socket then sends without Nagle's delay (`TCP_NODELAY`, as
    /// `trellis-index serve` does). An answer a fault cuts, stalls or delimits by
    /// closing still closes its connection.
    pub fn set_keep_alive(&self, keep_alive: bool) {
        lock(&self.state).keep_alive = keep_alive;
    }

    /// The longest chain of answered requests in which each arrived after the previous
    /// one was answered: the round trips on the client's critical path (with latency
    /// set, requests sent together overlap and count once).
    pub fn critical_path(&self) -> usize {
        self.critical_chain().len()
    }

    /// The paths of one longest chain counted by [`FaultServer::critical_path`], first
    /// request first: what a client's critical path waits for, round trip by round trip.
    pub fn critical_chain(&self) -> Vec<String> {
        let mut spans = lock(&self.state).spans.clone();
        spans.sort();
        // For each request: its depth and the request before it on its longest chain.
        let mut depth: Vec<(usize, Option<usize>)> = Vec::with_capacity(spans.len());
        for (i, (start, _, _)) in spans.iter().enumerate() {
            let before = (0..i).filter(|&j| spans[j].1 <= *start).max_by_key(|&j| depth[j].0);
            depth.push((before.map_or(0, |j| depth[j].0) + 1, before));
        }
        let mut chain = Vec::new();
        let mut at = (0..spans.len()).max_by_key(|&i| depth[i].0);
        while let Some(i) = at {
            chain.push(spans[i].2.clone());
            at = depth[i].1;
        }
        chain.reverse();
        chain
    }

    /// Every answered request: when it arrived and when its answer began to be written, from
    /// the first arrival, and its path; in arrival order.
    pub fn timeline(&self) -> Vec<(Duration, Duration, String)> {
        let mut spans = lock(&self.state).spans.clone();
        spans.sort();
        let Some(first) = spans.first().map(|s| s.0) else { return Vec::new() };
        spans.into_iter().map(|(start, end, path)| (start - first, end - first, path)).collect()
    }

    /// Every answered request: when it arrived, when its answer began to be written, and its
    /// path; in arrival order (for placing a client's own events against them).
    pub fn spans(&self) -> Vec<(Instant, Instant, String)> {
        let mut spans = lock(&self.state).spans.clone();
        spans.sort();
        spans
    }

    /// Forgets the recorded requests, connections and bytes.
    pub fn reset_counters(&self) {
        let mut state = lock(&self.state);
        state.spans.clear();
        state.hits.clear();
        state.connections = 0;
        drop(state);
        self.bytes_sent.store(0, Ordering::SeqCst);
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a connection does after an answer.
#[derive(PartialEq, Eq)]
enum After {
    /// Waits for the client's next request.
    KeepOpen,
    /// Closes.
    Close,
}

fn serve(stream: TcpStream, state: &Mutex<State>, bytes_sent: &AtomicU64) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    if lock(state).keep_alive {
        stream.set_nodelay(true)?;
    }
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while answer(&mut reader, &mut stream, state, bytes_sent)? == After::KeepOpen {}
    Ok(())
}

/// Reads one request from `reader` and answers it on `stream`.
fn answer(
    reader: &mut BufReader<TcpStream>,
    stream: &mut TcpStream,
    state: &Mutex<State>,
    bytes_sent: &AtomicU64,
) -> std::io::Result<After> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        // The client closed the connection between requests.
        return Ok(After::Close);
    }
    let arrived = Instant::now();
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_owned();
    let fault = {
        let mut state = lock(state);
        let fault = match state.faults.get_mut(&path) {
            Some((fault, Some(0))) => {
                let _ = fault;
                None
            }
            Some((fault, Some(times))) => {
                *times -= 1;
                Some(fault.clone())
            }
            Some((fault, None)) => Some(fault.clone()),
            None => None,
        };
        if matches!(fault, Some(Fault::Reset)) {
            state.hits.push(Hit { path: path.clone(), status: 0 });
        }
        fault
    };
    if fault == Some(Fault::Reset) {
        // Unread request bytes in the receive buffer make the kernel send RST on close.
        stream.shutdown(Shutdown::Both)?;
        return Ok(After::Close);
    }
    let mut if_none_match = None;
    let mut if_modified_since = None;
    let mut client_closes = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("if-none-match") {
            if_none_match = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            if_modified_since = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("connection") {
            client_closes = value.eq_ignore_ascii_case("close");
        }
    }
    // Only an answer whose end the client can tell from its length leaves the
    // connection usable.
    let keep_open = lock(state).keep_alive
        && !client_closes
        && matches!(
            fault,
            None | Some(Fault::NotFound | Fault::ServerError | Fault::FlipByte | Fault::Stale(_) | Fault::Gzip)
        );
    let connection = if keep_open { "keep-alive" } else { "close" };
    let after = if keep_open { After::KeepOpen } else { After::Close };
    let latency = lock(state).latency;
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
    let record = |status: u16| {
        let hit = Hit { path: path.clone(), status };
        lock(state).hits.push(hit);
    };
    let span = |answered: Instant| {
        let span = (arrived, answered, path.clone());
        lock(state).spans.push(span);
    };
    if let Some(Fault::Stall(duration)) = fault {
        record(0);
        std::thread::sleep(duration);
        return Ok(After::Close);
    }
    let stored = lock(state).files.get(&path).cloned();
    let body: Option<Cow<'_, [u8]>> = match (&fault, &stored) {
        (Some(Fault::NotFound), _) | (_, None) => None,
        (Some(Fault::Stale(old)), Some(_)) => Some(Cow::Borrowed(old)),
        (_, Some(body)) => Some(Cow::Borrowed(body)),
    };
    let (status, reason, body) = match (&fault, body) {
        (Some(Fault::ServerError), _) => (500, "Internal Server Error", Cow::Borrowed(&b"server error"[..])),
        (_, None) => (404, "Not Found", Cow::Borrowed(&b"not found"[..])),
        (_, Some(body)) => (200, "OK", body),
    };
    let etag = format!("\"{}\"", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)));
    let not_modified = match &if_none_match {
        Some(tag) => *tag == etag,
        None => if_modified_since.as_deref() == Some(LAST_MODIFIED),
    };
    if status == 200 && not_modified {
        record(304);
        let head = format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: {connection}\r\n\r\n");
        span(Instant::now());
        stream.write_all(head.as_bytes())?;
        bytes_sent.fetch_add(head.len() as u64, Ordering::SeqCst);
        return Ok(after);
    }
    record(status);
    let mut body = body;
    let mut declared = body.len();
    match fault {
        Some(Fault::FlipByte) if !body.is_empty() => {
            let middle = body.len() / 2;
            body.to_mut()[middle] ^= 0x01;
        }
        Some(Fault::Truncate) => {
            let half = body.len() / 2;
            body.to_mut().truncate(half);
        }
        Some(Fault::WrongContentLength) => {
            declared = body.len() / 2;
            body.to_mut().truncate(declared);
        }
        Some(Fault::Gzip) => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&body)?;
            body = Cow::Owned(encoder.finish()?);
            declared = body.len();
        }
        _ => {}
    }
    let coding = if fault == Some(Fault::Gzip) { "Content-Encoding: gzip\r\n" } else { "" };
    let length = if matches!(fault, Some(Fault::NoContentLength | Fault::Endless)) {
        String::new()
    } else {
        format!("Content-Length: {declared}\r\n")
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n{length}{coding}ETag: {etag}\r\nLast-Modified: {LAST_MODIFIED}\r\nConnection: {connection}\r\n\r\n"
    );
    if !matches!(fault, Some(Fault::Endless | Fault::Drip(_))) {
        span(Instant::now());
    }
    stream.write_all(head.as_bytes())?;
    if fault == Some(Fault::Endless) {
        bytes_sent.fetch_add(head.len() as u64, Ordering::SeqCst);
        stream.write_all(&body)?;
        bytes_sent.fetch_add(body.len() as u64, Ordering::SeqCst);
        let chunk = vec![b' '; 64 * 1024];
        loop {
            // The client hanging up ends it.
            stream.write_all(&chunk)?;
            bytes_sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    }
    if let Some(Fault::Drip(pause)) = fault {
        stream.flush()?;
        bytes_sent.fetch_add(head.len() as u64, Ordering::SeqCst);
        for byte in body.iter() {
            std::thread::sleep(pause);
            // The client hanging up ends the drip.
            stream.write_all(std::slice::from_ref(byte))?;
            stream.flush()?;
            bytes_sent.fetch_add(1, Ordering::SeqCst);
        }
        return Ok(After::Close);
    }
    stream.write_all(&body)?;
    stream.flush()?;
    bytes_sent.fetch_add((head.len() + body.len()) as u64, Ordering::SeqCst);
    if after == After::Close {
        // Let the client read everything before the socket closes.
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 64];
        let _ = stream.read(&mut sink);
    }
    Ok(after)
}
