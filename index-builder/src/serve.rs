//! A loopback static server for a built site: previews, demos and tests.
//!
//! Owns answering `GET`/`HEAD` for files under the site directory the way a CDN in
//! front of a static host does: a strong `ETag` (the SHA-256 of the bytes),
//! `If-None-Match` → `304`, `Cache-Control: no-cache` for the files rewritten in place
//! (`metadata/timestamp.json`, the index doc aliases under `targets/index/alias/`, the
//! storefront's pages) and `public, max-age=31536000, immutable` for every other file
//! (all named by version or content). It counts requests, so benchmarks
//! and tests can assert request budgets. It binds loopback addresses only: it is not
//! a production server. Building the site is [`crate::build`]'s job.
//!
//! Kept-alive connections are answered without the ~40 ms Nagle/delayed-ACK stall: the
//! listening socket has `TCP_NODELAY` set on Linux, which every accepted connection
//! inherits (`tiny_http` accepts the connections itself, so the listener is the one
//! place to set it). Requests are answered concurrently by a bounded pool of
//! [`WORKERS`] threads; a client that reads a large file slowly holds one worker, not
//! the server. `benches/serve.rs` measures 1,000 kept-alive requests.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use trellis_schema::Sha256;

/// `Cache-Control` of the mutable `timestamp.json`.
pub const MUTABLE_CACHE_CONTROL: &str = "no-cache";
/// `Cache-Control` of every other file.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Threads answering requests at once (each reads one file and writes one response).
pub const WORKERS: usize = 8;

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

/// A running server; stops when dropped.
pub struct Server {
    inner: Arc<tiny_http::Server>,
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
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
        let inner = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| ServeError::Bind { addr, reason: e.to_string() })?;
        let bound = inner.server_addr().to_ip().unwrap_or(addr);
        let inner = Arc::new(inner);
        let requests = Arc::new(AtomicU64::new(0));
        let threads = (0..WORKERS)
            .map(|_| {
                let (server, count, root) = (inner.clone(), requests.clone(), site.to_owned());
                std::thread::spawn(move || {
                    // `recv` fails once the server is unblocked (dropped) or its accept loop
                    // has failed; either way this worker is done.
                    while let Ok(request) = server.recv() {
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = answer(&root, request);
                    }
                })
            })
            .collect();
        Ok(Self { inner, addr: bound, requests, threads })
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
        self.requests.load(Ordering::Relaxed)
    }

    /// Blocks until the server stops (never, unless it fails): for the CLI.
    pub fn wait(mut self) {
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Each `unblock` releases one worker waiting in `recv`.
        for _ in 0..self.threads.len() {
            self.inner.unblock();
        }
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}

/// Binds `addr` with `TCP_NODELAY` on the listener, which Linux copies onto every
/// accepted connection: without it a kept-alive response whose last segment is short
/// waits for the client's delayed ACK (~40 ms).
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| ServeError::Bind { addr, reason: e.to_string() })?;
    #[cfg(target_os = "linux")]
    rustix::net::sockopt::set_tcp_nodelay(&listener, true)
        .map_err(|e| ServeError::Bind { addr, reason: format!("setting TCP_NODELAY: {e}") })?;
    Ok(listener)
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

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn answer(root: &Path, request: tiny_http::Request) -> std::io::Result<()> {
    let method = request.method().clone();
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return request.respond(tiny_http::Response::empty(405));
    }
    let Some(path) = resolve(root, request.url()) else {
        return request.respond(tiny_http::Response::from_string("not found\n").with_status_code(404));
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&path)?.read_to_end(&mut bytes)?;
    let etag = format!("\"{}\"", Sha256::of(&bytes));
    // timestamp.json, the index doc aliases and the storefront's pages (human-readable
    // names over content-addressed assets) change in place; everything else is
    // content-addressed.
    let extension = path.extension().and_then(|e| e.to_str());
    let alias_dir = root.join(crate::site::TARGETS_DIR).join(crate::site::INDEX_ALIAS_DIR);
    let mutable = path.file_name().is_some_and(|n| n == "timestamp.json" || n == "catalog.json")
        || extension == Some("html")
        || path.starts_with(&alias_dir);
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
    let matches = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("If-None-Match") && h.value.as_str().split(',').any(|v| v.trim() == etag));
    let headers = [header("ETag", &etag), header("Cache-Control", cache), header("Content-Type", content_type)];
    if matches {
        let mut response = tiny_http::Response::empty(304);
        for h in headers.into_iter().flatten() {
            response.add_header(h);
        }
        return request.respond(response);
    }
    // tiny_http sends headers and no body for HEAD.
    let mut response = tiny_http::Response::from_data(bytes);
    for h in headers.into_iter().flatten() {
        response.add_header(h);
    }
    request.respond(response)
}

#[cfg(test)]
mod tests {
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
        assert_eq!(server.requests(), 6);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_connections_have_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap(), "an accepted connection must not wait for delayed ACKs");
    }

    /// One client that does not read a large response holds one worker; another client
    /// is still answered (a single-threaded server never answers it: the read times out).
    #[test]
    fn a_stalled_client_does_not_block_the_others() {
        use std::io::Write as _;
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("big.zip"), vec![7u8; 32 << 20]).unwrap();
        std::fs::write(site.path().join("small.json"), b"{}").unwrap();
        let server = Server::start(site.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let mut stalled = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(stalled, "GET /big.zip HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // Wait until the stalled request is being answered (its worker blocks in write).
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

    #[test]
    fn refuses_to_bind_a_public_address() {
        let site = tempfile::tempdir().unwrap();
        let err = Server::start(site.path(), "0.0.0.0:0".parse().unwrap()).err().unwrap();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }
}
