//! Trust and transport figures against a synthetic 100k-plugin registry served on
//! loopback by the fault server (no faults): requests, bytes and time of
//!
//! 1. a cold refresh plus the lookup and download of one index doc;
//! 2. the no-op update check (one conditional GET answered `304`).
//!
//! Run: `cargo bench -p trellis-tests --bench trust` (env `TRELLIS_BENCH_PLUGINS`
//! overrides the plugin count, `TRELLIS_BENCH_BITS` the number of bin bits).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a bench binary reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::{UpdateCheck, Updater};
use trellis_tests::fault_server::FaultServer;
use trellis_tests::registry::TestRegistry;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An index doc of ~10 releases, roughly the size the builder writes.
fn index_doc(n: usize) -> Vec<u8> {
    let versions: Vec<String> = (0..10)
        .map(|v| {
            format!(
                "{{\"version\":\"1.{v}.0\",\"channel\":\"stable\",\"sha256\":\"{:064x}\",\"length\":{}}}",
                n * 16 + v,
                10_000 + v
            )
        })
        .collect();
    format!("{{\"id\":\"vendor{}.plugin-{n}\",\"releases\":[{}]}}", n % 1000, versions.join(",")).into_bytes()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let plugins = env_or("TRELLIS_BENCH_PLUGINS", 100_000);
    let bits = env_or("TRELLIS_BENCH_BITS", 10) as u32;
    let started = Instant::now();
    let mut registry = TestRegistry::new(9, bits);
    for n in 0..plugins {
        registry.set_index_doc(&format!("vendor{}.plugin-{n}", n % 1000), &index_doc(n));
    }
    registry.publish();
    println!("generated {plugins} plugins in {} bins in {:.1?}", 1u64 << bits, started.elapsed());

    let wanted = plugins / 2;
    let plugin = format!("vendor{}.plugin-{wanted}", wanted % 1000);
    let server = FaultServer::start().unwrap();
    for (path, bytes) in registry.files() {
        if path.starts_with("metadata/") || path.ends_with(&format!(".{plugin}.json")) {
            server.put(&format!("/{path}"), bytes.clone());
        }
    }
    let snapshot_len = registry.files().iter().find(|(p, _)| p.ends_with(".snapshot.json")).map(|(_, b)| b.len());
    println!("snapshot.json: {} bytes", snapshot_len.unwrap_or(0));

    let mirrors =
        || Mirrors::new(Arc::new(AnyTransport::new(HttpOptions::default())), vec![Mirror::site(&server.url())]);
    let rounds = 10;
    let mut cold = Vec::new();
    let mut cold_requests = 0;
    let mut cold_bytes = 0;
    let mut last_dir = None;
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        Updater::bootstrap(dir.path(), registry.root()).unwrap();
        server.reset_counters();
        let start = Instant::now();
        let mut client = Updater::new(dir.path(), mirrors()).unwrap();
        client.refresh().unwrap();
        let info = client.target_info(&TestRegistry::index_path(&plugin)).unwrap().expect("listed");
        let doc = client.fetch_target(&info).unwrap();
        cold.push(start.elapsed());
        assert_eq!(doc, index_doc(wanted));
        cold_requests = server.request_count();
        cold_bytes = server.bytes_sent();
        last_dir = Some(dir);
    }
    println!(
        "cold refresh + one index doc: {cold_requests} requests, {cold_bytes} bytes, median {:.2?} over {rounds} runs",
        median(cold)
    );

    let dir = last_dir.unwrap();
    let rounds = 50;
    let mut noop = Vec::new();
    let mut noop_requests = 0;
    let mut noop_bytes = 0;
    for _ in 0..rounds {
        server.reset_counters();
        let start = Instant::now();
        let check = Updater::new(dir.path(), mirrors()).unwrap().check_for_updates().unwrap();
        noop.push(start.elapsed());
        assert_eq!(check, UpdateCheck::NothingNew);
        noop_requests = server.request_count();
        noop_bytes = server.bytes_sent();
    }
    println!(
        "no-op update check: {noop_requests} request(s), {noop_bytes} bytes received, median {:.2?} over {rounds} runs \
         (includes loading the trusted snapshot and targets from disk)",
        median(noop)
    );
}
