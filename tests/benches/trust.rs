//! Trust and transport figures against a synthetic registry built by `trellis-index`
//! (its `synth` generator: 100k plugins × 10 releases by default, metadata only) and
//! served on loopback by the fault server (no faults): requests, bytes and time of
//!
//! 1. a cold refresh plus the lookup and download of one index doc (the client walks
//!    targets → bins → one hash bin);
//! 2. the no-op update check (one conditional GET answered `304`).
//!
//! Run: `cargo bench -p trellis-tests --bench trust -- [PLUGINS] [VERSIONS] [BIN_BITS]`
//! (defaults 100000 10 12, as the builder's registry benchmark).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a bench binary reports on stdout

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::{UpdateCheck, Updater};
use trellis_index::build::Scope;
use trellis_index::site;
use trellis_index::synth::{self, SynthSite, SynthSpec};
use trellis_tests::fault_server::FaultServer;

fn arg(index: usize, default: u64) -> u64 {
    std::env::args().filter(|a| !a.starts_with('-')).nth(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { walk(&path, out) } else { out.push(path) }
    }
}

fn main() {
    let plugins = arg(1, 100_000) as usize;
    let versions = arg(2, 10) as usize;
    let bin_bits = arg(3, 12) as u32;
    let now = jiff::Timestamp::now();
    let work =
        tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into())).unwrap();
    // The client is measured here, not the builder's fsyncs (SynthSite's default).
    let mut synth_site = SynthSite::init(work.path(), bin_bits, now).unwrap();
    let site_dir = synth_site.site_dir.clone();
    let started = Instant::now();
    let plan = synth::plan(SynthSpec { plugins, versions, seed: 42 });
    let target = plan[plan.len() / 2].clone();
    let wanted = target.id.clone();
    synth_site.known = plan.iter().map(|p| p.id.clone()).collect();
    let report = synth_site.build(plan.into_iter().map(synth::plugin_input).collect(), Scope::Full).unwrap();
    println!(
        "built {} plugins / {} releases in 2^{bin_bits} bins with trellis-index in {:.1?}",
        report.plugins,
        report.releases,
        started.elapsed()
    );

    // Serve all metadata and the one index doc (100k docs in memory would measure
    // nothing but this process's RAM).
    let index = site::index_target(&wanted);
    let server = FaultServer::start().unwrap();
    let doc_suffix = format!(".{}", index.rsplit('/').next().unwrap_or_default());
    let serve_site = || {
        let mut files = Vec::new();
        walk(&site_dir.join(site::METADATA_DIR), &mut files);
        walk(&site_dir.join(site::TARGETS_DIR).join("index"), &mut files);
        for file in files {
            let relative = file.strip_prefix(&site_dir).unwrap().to_string_lossy().replace('\\', "/");
            if relative.starts_with("metadata/") || relative.ends_with(&doc_suffix) {
                server.put(&format!("/{relative}"), std::fs::read(&file).unwrap());
            }
        }
    };
    serve_site();
    let root = std::fs::read(site::metadata_file(&site_dir, "root", 1)).unwrap();
    let mirrors =
        || Mirrors::new(Arc::new(AnyTransport::new(HttpOptions::default())), vec![Mirror::site(&server.url())]);

    let rounds = 10;
    let (mut cold, mut cold_requests, mut cold_bytes, mut kept) = (Vec::new(), 0, 0, None);
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        Updater::bootstrap(dir.path(), &root).unwrap();
        server.reset_counters();
        let start = Instant::now();
        let mut client = Updater::new(dir.path(), mirrors()).unwrap();
        client.refresh().unwrap();
        let info = client.target_info(&index).unwrap().expect("listed");
        let doc = client.fetch_target(&info).unwrap();
        cold.push(start.elapsed());
        assert!(!doc.is_empty());
        (cold_requests, cold_bytes) = (server.request_count(), server.bytes_sent());
        kept = Some(dir);
    }
    println!(
        "cold refresh + one index doc ({index}): {cold_requests} requests, {cold_bytes} bytes, median {:.2?} over {rounds} runs",
        median(cold)
    );

    let dir = kept.unwrap();
    let rounds = 50;
    let (mut noop, mut noop_requests, mut noop_bytes) = (Vec::new(), 0, 0);
    for _ in 0..rounds {
        server.reset_counters();
        let start = Instant::now();
        let check = Updater::new(dir.path(), mirrors()).unwrap().check_for_updates().unwrap();
        noop.push(start.elapsed());
        assert_eq!(check, UpdateCheck::NothingNew);
        (noop_requests, noop_bytes) = (server.request_count(), server.bytes_sent());
    }
    println!(
        "no-op update check: {noop_requests} request(s), {noop_bytes} bytes received, median {:.2?} over {rounds} runs \
         (includes reading the trusted root, timestamp, snapshot and targets back from disk: the root verified, the others under their receipts)",
        median(noop)
    );

    // One new release of that plugin: an incremental build, then the update check for
    // a client that has the plugin installed (knows its index doc's hash).
    let installed = Updater::new(dir.path(), mirrors()).unwrap().target_info(&index).unwrap().expect("listed");
    let mut grown = target.clone();
    let mut release = grown.releases.last().unwrap().clone();
    release.version = semver::Version::new(99, 0, 0);
    release.yanked = false;
    grown.releases.push(release);
    let scope = Scope::Plugins(BTreeSet::from([wanted.clone()]));
    synth_site.build(vec![synth::plugin_input(grown)], scope).unwrap();
    serve_site();
    server.reset_counters();
    let start = Instant::now();
    let mut client = Updater::new(dir.path(), mirrors()).unwrap();
    let changed = client.changed_targets(&[(index.clone(), installed.sha256().unwrap())]).unwrap();
    assert_eq!(changed.len(), 1);
    let doc = client.fetch_target(&changed[0]).unwrap();
    let elapsed = start.elapsed();
    assert!(!doc.is_empty());
    let paths: Vec<String> = server.hits().into_iter().map(|h| format!("{} {}", h.status, h.path)).collect();
    println!(
        "update check with one new release + its index doc: {} requests, {} bytes, {elapsed:.2?}: {paths:?}",
        server.request_count(),
        server.bytes_sent()
    );
}
