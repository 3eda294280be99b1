//! Transport and trust under faults: every fault the fault server can inject, with one
//! mirror (a clear error, trusted state unchanged, nothing refused is stored) and with
//! two mirrors (the good one wins and the result is correct).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns panic on setup failure by design

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::{UpdateCheck, Updater};
use trellis_tests::fault_server::{Fault, FaultServer, Hit};
use trellis_tests::registry::{TestRegistry, sha256_hex};

fn fast_http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(300),
        retries: 0,
        backoff: Duration::from_millis(10),
        ..HttpOptions::default()
    }
}

fn updater(metadata_dir: &Path, registry: &TestRegistry, sites: &[String], http: HttpOptions) -> Updater {
    Updater::bootstrap(metadata_dir, registry.root()).unwrap();
    let mirrors = Mirrors::new(Arc::new(AnyTransport::new(http)), sites.iter().map(|s| Mirror::site(s)).collect());
    Updater::new(metadata_dir, mirrors).unwrap()
}

fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

const CLOCK_V1: &[u8] = b"{\"versions\":[\"1.0.0\"]}";
const CLOCK_V2: &[u8] = b"{\"versions\":[\"1.0.0\",\"1.1.0\"]}";
const TIMER: &[u8] = b"{\"versions\":[\"0.1.0\"]}";

/// The same registry (same keys) at timestamp v2 and at v3, where v3 changes
/// `acme.clock`'s index doc, and the v1 timestamp (stale for a client at v2).
fn registries() -> (TestRegistry, TestRegistry, Vec<u8>) {
    let build = |steps: usize| {
        let mut registry = TestRegistry::new(1, 3);
        registry.set_index_doc("acme.clock", CLOCK_V1);
        registry.publish();
        let stale = registry.file("metadata/timestamp.json").unwrap().to_vec();
        registry.set_index_doc("acme.timer", TIMER);
        registry.publish();
        if steps == 3 {
            registry.set_index_doc("acme.clock", CLOCK_V2);
            registry.publish();
        }
        (registry, stale)
    };
    let (at_v2, stale) = build(2);
    let (at_v3, _) = build(3);
    (at_v2, at_v3, stale)
}

/// A metadata dir whose client trusts `at_v2` (refreshed from it over `server`).
fn trusting_v2(server: &FaultServer, at_v2: &TestRegistry) -> tempfile::TempDir {
    at_v2.serve(server, "/v2");
    let dir = tempfile::tempdir().unwrap();
    let mut client = updater(dir.path(), at_v2, &[format!("{}/v2", server.url())], fast_http());
    client.refresh().unwrap();
    assert_eq!(client.trusted().timestamp().unwrap().version(), 2);
    dir
}

fn faults(stale: &[u8]) -> Vec<(&'static str, Fault)> {
    vec![
        ("404", Fault::NotFound),
        ("500", Fault::ServerError),
        ("stall", Fault::Stall(Duration::from_millis(1500))),
        ("truncated body", Fault::Truncate),
        ("flipped byte", Fault::FlipByte),
        ("stale version", Fault::Stale(stale.to_vec())),
        ("wrong Content-Length", Fault::WrongContentLength),
        ("connection reset", Fault::Reset),
    ]
}

#[test]
fn each_timestamp_fault_with_one_mirror_fails_clearly_and_keeps_trusted_state() {
    let (at_v2, registry, stale) = registries();
    let server = FaultServer::start().unwrap();
    let dir = trusting_v2(&server, &at_v2);
    let trusted_before = dir_contents(dir.path());
    registry.serve(&server, "");
    for (name, fault) in faults(&stale) {
        server.fault("/metadata/timestamp.json", fault);
        let mut client = updater(dir.path(), &registry, &[server.url()], fast_http());
        let err = client.refresh().expect_err(&format!("{name} must fail the refresh"));
        let message = err.to_string();
        assert!(message.contains("timestamp.json"), "{name}: error does not name the file: {message}");
        assert_eq!(dir_contents(dir.path()), trusted_before, "{name} changed the trusted state");
    }
    server.clear_faults();
    let mut client = updater(dir.path(), &registry, &[server.url()], fast_http());
    client.refresh().unwrap();
    assert_eq!(client.trusted().timestamp().unwrap().version(), 3, "healthy mirror: refresh goes through");
}

#[test]
fn each_target_fault_with_one_mirror_fails_and_writes_nothing() {
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let doc_path = format!("/targets/index/{}.acme.clock.json", sha256_hex(CLOCK_V2));
    let mut client = updater(dir.path(), &registry, &[server.url()], fast_http());
    let info = client.target_info("index/acme.clock.json").unwrap().expect("listed");
    for (name, fault) in faults(CLOCK_V1) {
        server.fault(&doc_path, fault);
        let dest = out.path().join("acme.clock.json");
        let err = client.download_target(&info, &dest).expect_err(&format!("{name} must fail the download"));
        assert!(err.to_string().contains("acme.clock.json"), "{name}: {err}");
        assert!(!dest.exists(), "{name}: refused bytes were written");
    }
}

#[test]
fn each_fault_on_the_first_of_two_mirrors_lets_the_good_mirror_win() {
    let (at_v2, registry, stale) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "/bad");
    registry.serve(&server, "/good");
    let doc = CLOCK_V2;
    let doc_file = format!("targets/index/{}.acme.clock.json", sha256_hex(doc));
    let stale_doc = CLOCK_V1;
    for (name, fault) in faults(&stale) {
        server.clear_faults();
        server.fault("/bad/metadata/timestamp.json", fault.clone());
        let doc_fault = if let Fault::Stale(_) = fault { Fault::Stale(stale_doc.to_vec()) } else { fault };
        server.fault(&format!("/bad/{doc_file}"), doc_fault);
        let dir = trusting_v2(&server, &at_v2);
        server.reset_counters();
        let out = tempfile::tempdir().unwrap();
        let sites = [format!("{}/bad", server.url()), format!("{}/good", server.url())];
        let mut client = updater(dir.path(), &registry, &sites, fast_http());
        client.refresh().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(client.trusted().timestamp().unwrap().version(), 3, "{name}");
        let info = client.target_info("index/acme.clock.json").unwrap().expect("listed");
        let dest = out.path().join("doc.json");
        client.download_target(&info, &dest).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(std::fs::read(&dest).unwrap(), doc, "{name}");
        let hits = server.hits();
        assert!(hits.iter().any(|h| h.path == "/good/metadata/timestamp.json" && h.status == 200), "{name}");
        assert!(hits.iter().any(|h| h.path == format!("/good/{doc_file}") && h.status == 200), "{name}");
    }
}

#[test]
fn every_mirror_failing_lists_what_each_did() {
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "/a");
    registry.serve(&server, "/b");
    server.fault("/a/metadata/timestamp.json", Fault::ServerError);
    server.fault("/b/metadata/timestamp.json", Fault::NotFound);
    let dir = tempfile::tempdir().unwrap();
    let sites = [format!("{}/a", server.url()), format!("{}/b", server.url())];
    let err = updater(dir.path(), &registry, &sites, fast_http()).refresh().unwrap_err().to_string();
    assert!(err.contains("/a/metadata/timestamp.json: HTTP status 500"), "{err}");
    assert!(err.contains("/b/metadata/timestamp.json: not found (HTTP 404)"), "{err}");
}

#[test]
fn transient_server_error_is_retried_with_backoff() {
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    server.fault_times("/metadata/timestamp.json", Fault::ServerError, 2);
    let dir = tempfile::tempdir().unwrap();
    let http = HttpOptions { retries: 2, ..fast_http() };
    updater(dir.path(), &registry, &[server.url()], http).refresh().unwrap();
    let statuses: Vec<u16> =
        server.hits().into_iter().filter(|h| h.path == "/metadata/timestamp.json").map(|h| h.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[test]
fn not_found_is_not_retried() {
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    server.fault("/metadata/timestamp.json", Fault::NotFound);
    let dir = tempfile::tempdir().unwrap();
    let http = HttpOptions { retries: 3, ..fast_http() };
    assert!(updater(dir.path(), &registry, &[server.url()], http).refresh().is_err());
    let tries = server.hits().iter().filter(|h| h.path == "/metadata/timestamp.json").count();
    assert_eq!(tries, 1);
}

#[test]
fn body_without_content_length_is_cut_off_at_the_cap_while_streaming() {
    use trellis_client::transport::{HttpTransport, Request, Transport, TransportError};
    let server = FaultServer::start().unwrap();
    server.put("/big", vec![b'x'; 200_000]);
    server.fault("/big", Fault::NoContentLength);
    let url = format!("{}/big", server.url());
    let transport = HttpTransport::new(fast_http());
    let err = transport.fetch(&Request::new(&url, 1000)).unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { limit: 1000, .. }), "{err}");
    let ok = transport.fetch(&Request::new(&url, 200_000)).unwrap().into_bytes().unwrap();
    assert_eq!(ok.len(), 200_000);
}

#[test]
fn conditional_request_is_answered_not_modified() {
    use trellis_client::transport::{Fetched, HttpTransport, Request, Transport, Validators};
    let server = FaultServer::start().unwrap();
    server.put("/metadata/timestamp.json", b"{}".to_vec());
    let url = format!("{}/metadata/timestamp.json", server.url());
    let transport = HttpTransport::new(fast_http());
    let Fetched::Body { validators, .. } = transport.fetch(&Request::new(&url, 100)).unwrap() else {
        panic!("expected a body")
    };
    assert!(validators.etag.is_some());
    let again = transport.fetch(&Request::new(&url, 100).with_validators(Some(&validators))).unwrap();
    assert_eq!(again, Fetched::NotModified);
    server.put("/metadata/timestamp.json", b"{\"v\":2}".to_vec());
    let changed = transport.fetch(&Request::new(&url, 100).with_validators(Some(&validators))).unwrap();
    assert_eq!(changed.into_bytes().unwrap(), b"{\"v\":2}");
    let by_date = Validators { etag: None, last_modified: validators.last_modified.clone() };
    assert!(by_date.last_modified.is_some());
    let again = transport.fetch(&Request::new(&url, 100).with_validators(Some(&by_date))).unwrap();
    assert_eq!(again, Fetched::NotModified, "If-Modified-Since alone is honoured");
    assert_eq!(
        server.hits().iter().map(|h| h.status).collect::<Vec<_>>(),
        [200, 304, 200, 304],
        "{:?}",
        server.hits().iter().map(|h: &Hit| &h.path).collect::<Vec<_>>()
    );
}

#[test]
fn file_mirror_serves_refresh_and_download() {
    let (_, registry, _) = registries();
    let site = tempfile::tempdir().unwrap();
    registry.write_to(site.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = format!("file://{}", site.path().display());
    let mut client = updater(dir.path(), &registry, &[url], fast_http());
    client.refresh().unwrap();
    let info = client.target_info("index/acme.timer.json").unwrap().expect("listed");
    client.download_target(&info, &out.path().join("t.json")).unwrap();
    assert_eq!(std::fs::read(out.path().join("t.json")).unwrap(), b"{\"versions\":[\"0.1.0\"]}");
    assert!(client.target_info("index/acme.nothing.json").unwrap().is_none());
}

#[test]
fn parallel_downloads_are_bounded_verified_and_in_order() {
    let mut registry = TestRegistry::new(4, 2);
    let docs: Vec<Vec<u8>> = (0..20).map(|n| format!("{{\"plugin\":{n}}}").into_bytes()).collect();
    for (n, doc) in docs.iter().enumerate() {
        registry.set_index_doc(&format!("acme.p{n}"), doc);
    }
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    // One corrupted doc: its result is an error, the others are unaffected.
    server.fault(&format!("/targets/index/{}.acme.p5.json", sha256_hex(&docs[5])), Fault::FlipByte);
    let dir = tempfile::tempdir().unwrap();
    let mut client = updater(dir.path(), &registry, &[server.url()], fast_http());
    let infos: Vec<_> =
        (0..20).map(|n| client.target_info(&format!("index/acme.p{n}.json")).unwrap().expect("listed")).collect();
    server.reset_counters();
    let results = client.fetch_targets(&infos, 4);
    for (n, result) in results.iter().enumerate() {
        match result {
            Ok(bytes) => assert_eq!(bytes, &docs[n], "doc {n}"),
            Err(e) => assert_eq!(n, 5, "only the corrupted doc fails: {e}"),
        }
    }
    assert!(results[5].is_err());
    assert_eq!(server.request_count(), 20);
}

#[test]
fn progress_is_reported_while_a_target_downloads() {
    use std::sync::Mutex;
    use trellis_client::transport::Progress;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, Option<u64>)>>);
    impl Progress for Recorder {
        fn on_progress(&self, _url: &str, received: u64, total: Option<u64>) {
            self.0.lock().unwrap().push((received, total));
        }
    }

    let big = vec![b'7'; 300_000];
    let mut registry = TestRegistry::new(5, 1);
    registry.set_index_doc("acme.big", &big);
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let mut client = updater(dir.path(), &registry, &[server.url()], fast_http()).with_progress(recorder.clone());
    let info = client.target_info("index/acme.big.json").unwrap().expect("listed");
    assert_eq!(client.fetch_target(&info).unwrap(), big);
    let calls = recorder.0.lock().unwrap().clone();
    assert!(calls.len() > 1, "several progress reports for 300 kB: {calls:?}");
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "received grows");
    assert_eq!(calls.last(), Some(&(300_000, Some(300_000))));
}

#[test]
fn download_cache_serves_verified_targets_without_a_request() {
    use trellis_client::transport::DownloadCache;
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let mut client =
        updater(dir.path(), &registry, &[server.url()], fast_http()).with_cache(DownloadCache::new(cache_dir.path()));
    let info = client.target_info("index/acme.clock.json").unwrap().expect("listed");
    assert_eq!(client.fetch_target(&info).unwrap(), CLOCK_V2);
    server.reset_counters();
    assert_eq!(client.fetch_target(&info).unwrap(), CLOCK_V2);
    assert_eq!(server.request_count(), 0, "second fetch comes from the cache");
    // A corrupted cache entry is dropped and fetched again.
    let cached = DownloadCache::new(cache_dir.path()).path_of(&info.sha256().unwrap());
    std::fs::write(&cached, b"tampered").unwrap();
    assert_eq!(client.fetch_target(&info).unwrap(), CLOCK_V2);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn unreachable_first_mirror_is_skipped() {
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    // Bind and drop a listener: its port now refuses connections.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sites = [format!("http://{refused}"), server.url()];
    let mut client = updater(dir.path(), &registry, &sites, fast_http());
    client.refresh().unwrap();
    assert_eq!(client.trusted().timestamp().unwrap().version(), 3);
}

#[test]
fn oversized_timestamp_is_refused_with_the_limit_named() {
    let (_, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    server.put("/metadata/timestamp.json", vec![b' '; 100_000]);
    let dir = tempfile::tempdir().unwrap();
    let err = updater(dir.path(), &registry, &[server.url()], fast_http()).refresh().unwrap_err().to_string();
    assert!(err.contains("timestamp.json: larger than the 16384-byte limit"), "{err}");
    assert!(!dir.path().join("timestamp.json").exists());
}

#[test]
fn gzip_encoded_responses_are_capped_and_verified_after_decoding() {
    // Highly compressible: the encoded body is far shorter than the signed length,
    // and a tiny target's encoded body is longer than its signed length.
    let mut registry = TestRegistry::new(6, 1);
    let big = vec![b'a'; 50_000];
    registry.set_index_doc("acme.big", &big);
    registry.set_index_doc("acme.tiny", b"{}");
    registry.publish();
    let server = FaultServer::start().unwrap();
    registry.serve(&server, "");
    for path in registry.files().keys() {
        server.fault(&format!("/{path}"), Fault::Gzip);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut client = updater(dir.path(), &registry, &[server.url()], fast_http());
    client.refresh().unwrap();
    for (plugin, bytes) in [("acme.big", big.as_slice()), ("acme.tiny", b"{}".as_slice())] {
        let info = client.target_info(&format!("index/{plugin}.json")).unwrap().expect("listed");
        assert_eq!(client.fetch_target(&info).unwrap(), bytes, "{plugin}");
    }
}

#[test]
fn update_check_fails_over_when_the_first_mirror_serves_a_bad_timestamp() {
    let (at_v2, registry, _) = registries();
    let server = FaultServer::start().unwrap();
    at_v2.serve(&server, "/bad");
    at_v2.serve(&server, "/good");
    let dir = tempfile::tempdir().unwrap();
    let sites = [format!("{}/bad", server.url()), format!("{}/good", server.url())];
    updater(dir.path(), &at_v2, &sites, fast_http()).refresh().unwrap();

    registry.serve(&server, "/bad");
    registry.serve(&server, "/good");
    server.fault("/bad/metadata/timestamp.json", Fault::FlipByte);
    let mut client = updater(dir.path(), &registry, &sites, fast_http());
    assert_eq!(client.check_for_updates().unwrap(), UpdateCheck::Refreshed);
    assert_eq!(client.trusted().timestamp().unwrap().version(), 3);
    let info = client.target_info("index/acme.clock.json").unwrap().expect("listed");
    assert_eq!(client.fetch_target(&info).unwrap(), CLOCK_V2);
}

/// Serves `heads` one connection each, in order, on loopback: each a response whose
/// head carries `pad` bytes of extra headers (a CDN's cookies and policies), then
/// `body`. Returns the URL.
fn padded_heads_server(pads: Vec<usize>, body: &'static [u8]) -> String {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/file", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for pad in pads {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            // Long lines: ureq takes at most 128 headers.
            for i in 0..pad.div_ceil(1_000) {
                head.push_str(&format!("X-Pad-{i:05}: {}\r\n", "p".repeat(984)));
            }
            head.push_str("\r\n");
            let mut stream = stream;
            // The client may hang up mid-head when it refuses one.
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
        }
    });
    url
}

#[test]
fn a_response_head_up_to_the_limit_is_read_and_a_longer_one_is_refused_naming_it() {
    use trellis_client::transport::{HttpTransport, MAX_RESPONSE_HEAD, Request, Transport, TransportError};
    let url = padded_heads_server(vec![MAX_RESPONSE_HEAD - 1_000, 3 * MAX_RESPONSE_HEAD], b"the body");
    let transport = HttpTransport::new(fast_http());
    let body = transport.fetch(&Request::new(&url, 1_000)).unwrap().into_bytes().unwrap();
    assert_eq!(body, b"the body");
    let err = transport.fetch(&Request::new(&url, 1_000)).unwrap_err();
    assert!(matches!(&err, TransportError::Connection { url: u, .. } if *u == url), "{err:?}");
    assert!(err.to_string().contains("response header is too big"), "{err}");
}
