//! A loopback static server for a built site: previews, demos and tests.
//!
//! Owns answering `GET`/`HEAD` for files under the site directory the way a CDN in
//! front of a static host does: a strong `ETag` (the SHA-256 of the bytes),
//! `If-None-Match` → `304`, `Cache-Control: no-cache` for the files rewritten in place
//! (`metadata/timestamp.json`, the unversioned `metadata/snapshot.json` and
//! `metadata/targets.json`, the catalog head, the index doc aliases under
//! `targets/index/alias/`, the storefront's pages) and
//! `public, max-age=31536000, immutable` for every other file (all named by version or
//! content). It counts requests, so benchmarks and tests can assert request budgets.
//! It binds loopback addresses only: it is not a production server. Building the site
//! is [`crate::build`]'s job.
//!
//! HTTP/1.1 with keep-alive and pipelining, one thread per connection (at most
//! [`MAX_CONNECTIONS`]; past that a connection gets `503` and is closed), request
//! heads parsed by `httparse`. A connection idle for [`KEEP_ALIVE`] is closed, and a
//! client that stops reading a response is dropped after [`WRITE_TIMEOUT`], so neither
//! holds a thread for long. Thread per connection is deliberate: a fixed worker pool
//! that connections queue for (tiny_http's, used before) starves when kept-alive
//! connections occupy every worker: a client's sixteenth parallel download then waits
//! until an idle connection closes, 30 s and a retry later.
//!
//! Kept-alive connections are answered without the ~40 ms Nagle/delayed-ACK stall: the
//! listening socket has `TCP_NODELAY` set on Linux, which every accepted connection
//! inherits (and it is set again on each accepted connection elsewhere).
//! `benches/serve.rs` measures 1,000 kept-alive requests.

use std::io::{BufWriter, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use trellis_schema::Sha256;

/// `Cache-Control` of the files that change in place.
pub const MUTABLE_CACHE_CONTROL: &str = "no-cache";
/// `Cache-Control` of every other file.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Connections served at once; each has its own thread.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a kept-alive connection may sit idle (or take to send a request head).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long writing one response may stall on a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) read.
const MAX_HEAD: usize = 16 << 10;

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Only loopback addresses are served.
    #[error("{0} is not a loopback address; `serve` is for previews and tests, bind 127.0.0.1 or [::1]")]
    NotLoopback(SocketAddr),
    /// The site directory does not exist.
    #[error("{} is not a directory", .0.display())]
    NoSite(PathBuf),
    /// Binding failed.
    #[error("binding {addr}: {reason}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// What the accept thread and the connection threads share.
struct Shared {
    root: PathBuf,
    requests: AtomicU64,
    connections: AtomicUsize,
    stop: AtomicBool,
}

/// A running server; stops accepting when dropped (open connections finish their
/// current response and close at their next idle wait).
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `site` on `addr` (port 0 picks a free port) from a background thread.
    pub fn start(site: &Path, addr: SocketAddr) -> Result<Self, ServeError> {
        if !addr.ip().is_loopback() {
            return Err(ServeError::NotLoopback(addr));
        }
        if !site.is_dir() {
            return Err(ServeError::NoSite(site.to_owned()));
        }
        let listener = bind(addr)?;
        let bound = listener.local_addr().unwrap_or(addr);
        let shared = Arc::new(Shared {
            root: site.to_owned(),
            requests: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("trellis-serve-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(|e| ServeError::Bind { addr, reason: format!("starting the accept thread: {e}") })?
        };
        Ok(Self { shared, addr: bound, accept: Some(accept) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Blocks until the server stops (never, unless accepting fails): for the CLI.
    pub fn wait(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Binds `addr` with `TCP_NODELAY` on the listener, which Linux copies onto every
/// accepted connection: without it a kept-alive response whose last segment is short
/// waits for the client's delayed ACK (~40 ms).
fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let listener = TcpListener::bind(addr).map_err(|e| ServeError::Bind { addr, reason: e.to_string() })?;
    #[cfg(target_os = "linux")]
    rustix::net::sockopt::set_tcp_nodelay(&listener, true)
        .map_err(|e| ServeError::Bind { addr, reason: format!("setting TCP_NODELAY: {e}") })?;
    Ok(listener)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = (&stream)
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            continue;
        }
        let for_thread = shared.clone();
        let spawned = std::thread::Builder::new().name("trellis-serve-conn".into()).spawn(move || {
            let _ = serve_connection(stream, &for_thread);
            for_thread.connections.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One parsed request head.
struct Head {
    method: String,
    path: String,
    if_none_match: Option<String>,
    keep_alive: bool,
    has_body: bool,
}

/// Parses the head at the start of `buf`: `Ok(Some((head, length)))` when complete,
/// `Ok(None)` when more bytes are needed, `Err(())` when it is not HTTP.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let connection = header("Connection").map(|v| v.to_ascii_lowercase()).unwrap_or_default();
    let keep_alive = match request.version {
        Some(1) => !connection.contains("close"),
        _ => connection.contains("keep-alive"),
    };
    let has_body = header("Transfer-Encoding").is_some()
        || header("Content-Length").is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n > 0));
    let head = Head {
        method: request.method.unwrap_or_default().to_owned(),
        path: request.path.unwrap_or("/").to_owned(),
        if_none_match: header("If-None-Match"),
        keep_alive,
        has_body,
    };
    Ok(Some((head, length)))
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(KEEP_ALIVE))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    serve_requests(&stream, shared)?;
    close_gracefully(&stream);
    Ok(())
}

/// Closes a connection the client may still be sending on (a body, the rest of an
/// oversized head) without a reset destroying the answer in flight: no more writes,
/// then what the client sends is read and dropped for a moment.
fn close_gracefully(stream: &TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < (1 << 20) {
        match (&mut &*stream).read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn serve_requests(stream: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = stream;
    let mut writer = BufWriter::with_capacity(64 << 10, stream);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Pipelined requests may already be in `buf`.
        let (head, length) = loop {
            match parse_head(&buf) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) if buf.len() < MAX_HEAD => {}
                Ok(None) => {
                    writer.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                    return writer.flush();
                }
                Err(()) => {
                    writer.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                    return writer.flush();
                }
            }
            // Idle (or a timed-out, closed or reset connection): done.
            let read = reader.read(&mut chunk)?;
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
        };
        buf.drain(..length);
        shared.requests.fetch_add(1, Ordering::Relaxed);
        // A request with a body (no GET or HEAD sends one) is answered, then the
        // connection closed: where its body ends is not worth parsing here.
        let keep_alive = head.keep_alive && !head.has_body;
        answer(&shared.root, &head, keep_alive, &mut writer)?;
        // Flush once the pipeline is drained: pipelined answers share segments.
        if buf.is_empty() || !keep_alive {
            writer.flush()?;
        }
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Maps a request path onto a file under `root`, refusing anything but plain names.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let mut out = root.to_owned();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(name) if !name.to_string_lossy().starts_with('.') => out.push(name),
            _ => return None,
        }
    }
    if out.is_dir() {
        // A storefront alias: `/plugins/acme.clock/` serves its `index.html`.
        out.push("index.html");
    }
    out.is_file().then_some(out)
}

fn answer(root: &Path, head: &Head, keep_alive: bool, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut respond = |status: &str, headers: &[(&str, &str)], body: &[u8], length: usize| {
        write!(out, "HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: {connection}\r\n")?;
        for (name, value) in headers {
            write!(out, "{name}: {value}\r\n")?;
        }
        out.write_all(b"\r\n")?;
        out.write_all(body)
    };
    let is_head = head.method == "HEAD";
    if head.method != "GET" && !is_head {
        return respond("405 Method Not Allowed", &[("Allow", "GET, HEAD")], b"", 0);
    }
    let Some(path) = resolve(root, &head.path) else {
        let body: &[u8] = b"not found\n";
        return respond(
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            if is_head { b"" } else { body },
            body.len(),
        );
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(_) => return respond("404 Not Found", &[], b"", 0),
    };
    let etag = format!("\"{}\"", Sha256::of(&bytes));
    // timestamp.json, the unversioned snapshot and targets, the catalog head, the
    // index doc aliases and the storefront's
    // pages (human-readable
    // names over content-addressed assets) change in place; everything else is
    // content-addressed.
    let extension = path.extension().and_then(|e| e.to_str());
    let alias_dir = root.join(crate::site::TARGETS_DIR).join(crate::site::INDEX_ALIAS_DIR);
    let mutable = path.file_name().is_some_and(|n| n == "timestamp.json" || n == "catalog.json")
        || extension == Some("html")
        || path.starts_with(&alias_dir)
        || crate::unversioned::ROLES.iter().any(|role| path == root.join(crate::unversioned::path(role)));
    let cache = if mutable { MUTABLE_CACHE_CONTROL } else { IMMUTABLE_CACHE_CONTROL };
    let content_type = match extension {
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        _ => "application/octet-stream",
    };
    let headers = [("ETag", etag.as_str()), ("Cache-Control", cache), ("Content-Type", content_type)];
    let matches = head.if_none_match.as_deref().is_some_and(|v| v.split(',').any(|v| v.trim() == etag));
    if matches {
        return respond("304 Not Modified", &headers, b"", 0);
    }
    respond("200 OK", &headers, if is_head { b"" } else { &bytes }, bytes.len())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn get(url: &str, etag: Option<&str>) -> (u16, Option<String>, Option<String>, Vec<u8>) {
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let mut request = agent.get(url);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request.call().unwrap();
        let h = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (etag, cache) = (h("etag"), h("cache-control"));
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_vec().unwrap();
        (status, etag, cache, body)
    }

    #[test]
    fn serves_files_with_etags_and_cdn_cache_headers() {
        let site = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(site.path().join("metadata")).unwrap();
        std::fs::write(site.path().join("metadata/timestamp.json"), b"{}").unwrap();
        std::fs::write(site.path().join("metadata/1.root.json"), b"[1]").unwrap();
        let server = Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let (status, etag, cache, body) = get(&format!("{}metadata/timestamp.json", server.url()), None);
        assert_eq!((status, cache.as_deref(), body.as_slice()), (200, Some(MUTABLE_CACHE_CONTROL), &b"{}"[..]));
        let etag = etag.unwrap();
        assert_eq!(etag, format!("\"{}\"", Sha256::of(b"{}")));
        let (status, _, _, body) = get(&format!("{}metadata/timestamp.json", server.url()), Some(&etag));
        assert_eq!((status, body.len()), (304, 0));
        let (_, _, cache, _) = get(&format!("{}metadata/1.root.json", server.url()), None);
        assert_eq!(cache.as_deref(), Some(IMMUTABLE_CACHE_CONTROL));
        assert_eq!(get(&format!("{}metadata/2.root.json", server.url()), None).0, 404);
        assert_eq!(get(&format!("{}metadata/../metadata/1.root.json", server.url()), None).0, 404);
        // An index doc alias is rewritten by each build: revalidated, never immutable.
        std::fs::create_dir_all(site.path().join("targets/index/alias/3f")).unwrap();
        std::fs::write(site.path().join("targets/index/alias/3f/acme.clock.json"), b"{}").unwrap();
        let (_, _, cache, _) = get(&format!("{}targets/index/alias/3f/acme.clock.json", server.url()), None);
        assert_eq!(cache.as_deref(), Some(MUTABLE_CACHE_CONTROL));
        // So are the unversioned snapshot and top-level targets, but not a target
        // that happens to share a name.
        for (file, expected) in [
            ("metadata/snapshot.json", MUTABLE_CACHE_CONTROL),
            ("metadata/targets.json", MUTABLE_CACHE_CONTROL),
            ("targets/targets.json", IMMUTABLE_CACHE_CONTROL),
        ] {
            std::fs::write(site.path().join(file), b"{}").unwrap();
            let (_, _, cache, _) = get(&format!("{}{file}", server.url()), None);
            assert_eq!(cache.as_deref(), Some(expected), "{file}");
        }
        assert_eq!(server.requests(), 9);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_connections_have_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap(), "an accepted connection must not wait for delayed ACKs");
    }

    /// One client that does not read a large response holds its own thread; another
    /// client is still answered (a single-threaded server never answers it: the read
    /// times out).
    #[test]
    fn a_stalled_client_does_not_block_the_others() {
        use std::io::Write as _;
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("big.zip"), vec![7u8; 32 << 20]).unwrap();
        std::fs::write(site.path().join("small.json"), b"{}").unwrap();
        let server = Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let mut stalled = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(stalled, "GET /big.zip HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // Wait until the stalled request is being answered (its thread blocks in write).
        while server.requests() == 0 {
            std::thread::yield_now();
        }
        let mut other = std::net::TcpStream::connect(server.addr()).unwrap();
        other.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        write!(other, "GET /small.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        other.read_to_string(&mut response).expect("the second client is answered while the first stalls");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("{}"), "{response}");
        drop(stalled);
    }

    fn site_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Server) {
        let site = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(site.path().join(name), bytes).unwrap();
        }
        let server = Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
        (site, server)
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    fn exchange(server: &Server, request: &str) -> String {
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// The starvation a fixed worker pool has (tiny_http's lost a wakeup when two
    /// connections arrived together and then held its threads with kept-alive
    /// connections): many clients that keep their connections open, each sending
    /// requests at the same moment, are all answered at once.
    #[test]
    fn many_kept_alive_connections_opened_together_are_all_answered() {
        let (_site, server) = site_with(&[("a.json", b"{}")]);
        let clients = 48;
        let barrier = Arc::new(std::sync::Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (barrier, addr) = (barrier.clone(), server.addr());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut stream = std::net::TcpStream::connect(addr).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    for _ in 0..3 {
                        stream.write_all(b"GET /a.json HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            std::io::BufRead::read_line(&mut reader, &mut line).expect("answered, not timed out");
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                        assert!(head.contains("Connection: keep-alive"), "{head}");
                        let mut body = [0u8; 2];
                        reader.read_exact(&mut body).unwrap();
                        assert_eq!(&body, b"{}");
                    }
                    // Kept open until every client is done, as a pool keeps it.
                    barrier.wait();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(server.requests(), 3 * clients as u64);
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
        let (_site, server) = site_with(&[("a.json", b"[1]"), ("b.json", b"[22]")]);
        let response = exchange(
            &server,
            "GET /a.json HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b.json HTTP/1.1\r\nHost: x\r\n\r\nGET /b.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let parts: Vec<&str> = response.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(parts.len(), 3, "{response}");
        assert!(parts[0].starts_with("200") && parts[0].ends_with("\r\n\r\n[1]"), "{response}");
        // HEAD: the length of the body it would get, and no body.
        assert!(parts[1].contains("Content-Length: 4\r\n") && parts[1].ends_with("\r\n\r\n"), "{response}");
        assert!(parts[2].contains("Connection: close") && parts[2].ends_with("[22]"), "{response}");
        // HTTP/1.0 closes after one answer unless it asks to keep alive.
        let response = exchange(&server, "GET /a.json HTTP/1.0\r\n\r\nGET /b.json HTTP/1.0\r\n\r\n");
        assert_eq!(response.matches("HTTP/1.1 200").count(), 1, "{response}");
    }

    #[test]
    fn bad_requests_get_a_status_and_a_closed_connection() {
        let (_site, server) = site_with(&[("a.json", b"{}")]);
        assert!(exchange(&server, "NOT HTTP AT ALL\r\n\r\n").starts_with("HTTP/1.1 400"));
        let post = exchange(&server, "POST /a.json HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
        assert!(post.starts_with("HTTP/1.1 405") && post.contains("Connection: close"), "{post}");
        let huge = format!("GET /a.json HTTP/1.1\r\nX-Pad: {}\r\n", "p".repeat(MAX_HEAD));
        assert!(exchange(&server, &huge).starts_with("HTTP/1.1 431"));
        assert!(
            exchange(&server, "GET /%2e%2e/etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n")
                .starts_with("HTTP/1.1 404")
        );
    }

    #[test]
    fn refuses_to_bind_a_public_address() {
        let site = tempfile::tempdir().unwrap();
        let err = Server::start(site.path(), "0.0.0.0:0".parse().unwrap()).err().unwrap();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }
}
