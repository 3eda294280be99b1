//! Lifecycle figures on a synthetic registry of real signed packages (trellis-index
//! synth), served on loopback by the counting fault server:
//!
//! 1. cold install of a plugin whose dependency graph has about 30 nodes, in a fresh
//!    child process: requests, bytes, wall time, peak RSS (VmHWM of the child);
//! 2. warm re-resolve: the same install again in a new store over the warm data dir
//!    (one conditional request for timestamp.json, index docs from the cache).
//!
//! Run: `cargo bench -p trellis-tests --bench lifecycle` (env `TRELLIS_BENCH_PLUGINS`,
//! default 2000 plugins × 3 releases; real ZIPs and signatures are written, so this is
//! not the metadata-only 100k registry of the trust bench).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a bench binary reports on stdout

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use trellis_client::hooks::NoHooks;
use trellis_client::resolve::HostApp;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_index::build::{Scope, build_registry};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::synth::{self, SynthSpec};
use trellis_tests::fault_server::FaultServer;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn options() -> StoreOptions {
    StoreOptions::new(HostApp { id: "demo-host".into(), api_version: semver::Version::new(1, 0, 0) })
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The child: one cold install; prints `elapsed_ms installed peak_kib`.
fn child(data: &str, url: &str, root: &str, id: &str) {
    let start = Instant::now();
    let mut store = Store::open(data, options()).unwrap();
    store.add_registry("synth", url, &std::fs::read(root).unwrap()).unwrap();
    let session = Session::new(&NoHooks, &AlwaysAgree);
    let report = store.install(&[parse_requirement(id).unwrap()], &session).unwrap();
    println!("{} {} {}", start.elapsed().as_millis(), report.installed.len(), peak_rss_kib());
}

/// Transitive dependency closure (newest stable, not yanked) per plugin.
fn closure_sizes(spec: SynthSpec) -> Vec<(String, usize)> {
    let plan = synth::plan(spec);
    let deps: BTreeMap<String, Vec<String>> = plan
        .iter()
        .map(|p| {
            let newest =
                p.releases.iter().rev().find(|r| !r.yanked && r.channel == trellis_schema::plugin::Channel::Stable);
            (
                p.id.to_string(),
                newest.map(|r| r.dependencies.iter().map(|d| d.id.to_string()).collect()).unwrap_or_default(),
            )
        })
        .collect();
    deps.keys()
        .map(|id| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![id.clone()];
            while let Some(next) = todo.pop() {
                if seen.insert(next.clone()) {
                    todo.extend(deps.get(&next).cloned().unwrap_or_default());
                }
            }
            (id.clone(), seen.len())
        })
        .collect()
}

/// Serves every file of `site` (again, after a rebuild).
fn put_site(server: &FaultServer, site: &std::path::Path) {
    let mut dirs = vec![site.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(site).unwrap().to_string_lossy().replace('\\', "/");
                server.put(&format!("/{rel}"), std::fs::read(&path).unwrap());
            }
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2], &args[i + 3], &args[i + 4]);
        return;
    }
    let spec = SynthSpec { plugins: env_or("TRELLIS_BENCH_PLUGINS", 2000), versions: 3, seed: 7 };
    let started = Instant::now();
    let registry = tempfile::tempdir().unwrap();
    let init = InitOptions {
        name: "Synthetic".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 8,
        expiry: Expiry::default(),
        now: jiff::Timestamp::now(),
    };
    operator::init(registry.path(), &init).unwrap();
    let releases = synth::write_registry(registry.path(), spec).unwrap();
    let site = tempfile::tempdir().unwrap();
    build_registry(&Registry::open(registry.path()).unwrap(), site.path(), Scope::Full, jiff::Timestamp::now())
        .unwrap();
    println!("synthetic registry: {} plugins, {releases} releases, built in {:.1?}", spec.plugins, started.elapsed());

    let server = FaultServer::start().unwrap();
    put_site(&server, site.path());
    let root = site.path().join("metadata/1.root.json");

    let sizes = closure_sizes(spec);
    let (target, nodes) = sizes.iter().min_by_key(|(_, n)| n.abs_diff(30)).cloned().unwrap();
    println!("target: {target}, dependency graph of {nodes} plugins (newest stable releases)");

    let data = tempfile::tempdir().unwrap();
    server.reset_counters();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--child", data.path().to_str().unwrap(), &server.url(), root.to_str().unwrap(), &target])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<u64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    println!(
        "cold install: {} plugins installed, {} requests, {} bytes, {} ms, peak RSS {:.1} MiB",
        fields[1],
        server.request_count(),
        server.bytes_sent(),
        fields[0],
        fields[2] as f64 / 1024.0
    );

    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for hit in server.hits() {
        let kind = if hit.path.starts_with("/metadata/") {
            if hit.path.contains(".bin") { "metadata: bins" } else { "metadata: top-level roles" }
        } else if hit.path.ends_with(".zip") {
            "packages"
        } else if hit.path.ends_with(".dsse") {
            "signature envelopes"
        } else if hit.path.starts_with("/targets/index/") {
            "index docs"
        } else {
            "publisher records, blocklist"
        };
        let entry = kinds.entry(kind.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(hit.status != 200);
    }
    for (kind, (count, not_ok)) in &kinds {
        println!(
            "  {kind}: {count} request(s){}",
            if *not_ok > 0 { format!(", {not_ok} not 200") } else { String::new() }
        );
    }

    let mut warm = Vec::new();
    let mut warm_requests = 0;
    for _ in 0..10 {
        server.reset_counters();
        let start = Instant::now();
        let mut store = Store::open(data.path(), options()).unwrap();
        let report =
            store.install(&[parse_requirement(&target).unwrap()], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
        warm.push(start.elapsed());
        assert!(report.installed.is_empty());
        warm_requests = server.request_count();
    }
    println!("warm re-resolve (new store, warm data dir): median {:.1?}, {warm_requests} request(s)", median(warm));

    // Update of 100 installed plugins when 10 have new releases.
    let mut by_size = sizes.clone();
    by_size.sort_by_key(|(id, n)| (*n, id.clone()));
    let chosen: Vec<String> = by_size.iter().take(100).map(|(id, _)| id.clone()).collect();
    let data = tempfile::tempdir().unwrap();
    let mut store = Store::open(data.path(), options()).unwrap();
    store.add_registry("synth", &server.url(), &std::fs::read(&root).unwrap()).unwrap();
    let requirements: Vec<_> = chosen.iter().map(|id| parse_requirement(id).unwrap()).collect();
    let report = store.install(&requirements, &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    let installed = report.installed.len();
    drop(store);
    let plan = synth::plan(spec);
    let changed: Vec<String> = chosen.iter().step_by(10).take(10).cloned().collect();
    let key = trellis_index::fixture::key(1);
    for id in &changed {
        let planned = plan.iter().find(|p| p.id.as_str() == id).unwrap();
        let newest = planned
            .releases
            .iter()
            .rev()
            .find(|r| !r.yanked && r.channel == trellis_schema::plugin::Channel::Stable)
            .unwrap();
        let mut release = trellis_index::fixture::ReleaseSpec::new(id, "99.0.0");
        release.dependencies = newest.dependencies.clone();
        trellis_index::fixture::add_release(registry.path(), &release, &key).unwrap();
    }
    let scope = Scope::Plugins(changed.iter().map(|id| id.parse().unwrap()).collect());
    build_registry(&Registry::open(registry.path()).unwrap(), site.path(), scope, jiff::Timestamp::now()).unwrap();
    put_site(&server, site.path());
    server.reset_counters();
    let start = Instant::now();
    let mut store = Store::open(data.path(), options()).unwrap();
    let report = store.update(&[], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    println!(
        "update of {installed} installed ({} requested), {} with new releases: {} updated, {} requests, {} bytes, {:.1?}",
        chosen.len(),
        changed.len(),
        report.updated.len(),
        server.request_count(),
        server.bytes_sent(),
        start.elapsed()
    );
    drop(store);
    server.reset_counters();
    let start = Instant::now();
    let mut store = Store::open(data.path(), options()).unwrap();
    let check = store.check_updates(&[], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    println!(
        "no-op update check of {installed} installed: {} update(s), {} request(s), {:.1?}",
        check.updates.len(),
        server.request_count(),
        start.elapsed()
    );
}
