//! Domain proofs fetched from a real HTTP server on 127.0.0.1 (issue 15 §5): what a
//! hostile or broken web site can do to the builder's check. Each case must end as
//! "unverified, with the reason", within the configured time and size bounds, never
//! as a failed or hung build.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use trellis_index::domain_proof::{self, DomainProofSettings, ProofCache};
use trellis_index::fixture;
use trellis_schema::VendorId;
use trellis_schema::publisher::PublisherRecord;
use trellis_tests::fault_server::{Fault, FaultServer};

const PROOF: &str = "/acme.example/.well-known/trellis-publisher.json";

fn acme() -> PublisherRecord {
    let mut record = fixture::publisher("acme", &[&fixture::key(1)]);
    record.website = Some("https://acme.example".into());
    record
}

fn settings(base: &str) -> DomainProofSettings {
    DomainProofSettings {
        url: format!("{base}/{{domain}}"),
        timeout_seconds: 2,
        max_bytes: 4096,
        ..DomainProofSettings::default()
    }
}

/// The standing of `acme` when its domain is served by `base`.
fn check(base: &str) -> (bool, String) {
    let settings = settings(base);
    let records = BTreeMap::from([("acme".parse::<VendorId>().unwrap(), acme())]);
    let fetcher = |url: &str| domain_proof::fetch(&settings, url);
    let (standings, _) =
        domain_proof::standings(&records, &ProofCache::new(), &settings, jiff::Timestamp::now(), &fetcher);
    let acme = &standings[&"acme".parse::<VendorId>().unwrap()];
    (acme.verified, acme.reason.clone().unwrap_or_default())
}

fn good_proof() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"format": 1, "publisher": "acme", "keys": [fixture::key(1).key_id()]}))
        .unwrap()
}

#[test]
fn a_proof_served_over_http_verifies_the_publisher() {
    let web = FaultServer::start().unwrap();
    web.put(PROOF, good_proof());
    assert_eq!(check(&web.url()), (true, String::new()));
    assert_eq!(web.hits().iter().map(|h| h.path.as_str()).collect::<Vec<_>>(), [PROOF]);
}

#[test]
fn a_domain_claimed_but_not_proved_is_unverified_with_the_http_status() {
    let web = FaultServer::start().unwrap();
    let (verified, reason) = check(&web.url());
    assert!(!verified);
    assert!(reason.ends_with("/acme.example/.well-known/trellis-publisher.json: HTTP 404"), "{reason}");
    web.put(PROOF, good_proof());
    web.fault(PROOF, Fault::ServerError);
    assert!(check(&web.url()).1.ends_with("HTTP 500"));
}

#[test]
fn a_huge_proof_is_cut_at_the_byte_bound() {
    let web = FaultServer::start().unwrap();
    // Valid JSON that would verify if read whole: the bound stops it first.
    let mut huge = good_proof();
    huge.truncate(huge.len() - 1);
    huge.extend(std::iter::repeat_n(b' ', 8 << 20));
    huge.push(b'}');
    web.put(PROOF, huge);
    for fault in [None, Some(Fault::NoContentLength)] {
        if let Some(fault) = fault.clone() {
            web.fault(PROOF, fault);
        }
        let (verified, reason) = check(&web.url());
        assert!(!verified, "{fault:?}");
        assert!(reason.contains("4096") || reason.contains("limit"), "{fault:?}: {reason}");
    }
}

#[test]
fn an_endless_or_dripping_proof_stops_at_the_bounds() {
    // A server that never stops sending (no length, no end).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let chunk = [b'x'; 1024];
                while stream.write_all(&chunk).is_ok() {}
            });
        }
    });
    let start = Instant::now();
    let (verified, reason) = check(&format!("http://{addr}"));
    assert!(!verified && (reason.contains("4096") || reason.contains("limit")), "{reason}");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());

    // A server that sends one byte every 50 ms: the 2-second timeout ends it.
    let web = FaultServer::start().unwrap();
    web.put(PROOF, good_proof());
    web.fault(PROOF, Fault::Drip(Duration::from_millis(50)));
    let start = Instant::now();
    let (verified, reason) = check(&web.url());
    assert!(!verified, "{reason}");
    assert!(reason.to_lowercase().contains("timeout") || reason.to_lowercase().contains("timed out"), "{reason}");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
}

#[test]
fn publisher_proof_prints_the_document_that_verifies_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [fixture::key(1), fixture::key(2)];
    let chain = trellis_index::publisher::init(
        "acme".parse().unwrap(),
        "Acme".into(),
        Some("https://acme.example/tools".into()),
        None,
        &keys,
        2,
    )
    .unwrap();
    let record = dir.path().join("acme.json");
    std::fs::write(&record, serde_json::to_vec(&chain).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["publisher", "proof"])
        .arg(&record)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "serve this at https://acme.example/.well-known/trellis-publisher.json"
    );
    let head = chain.head().unwrap().signed.clone();
    assert_eq!(domain_proof::judge(&head, "acme.example", &out.stdout), Ok(()));
    let proof: domain_proof::DomainProof = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(proof.keys.len(), 2);
}
