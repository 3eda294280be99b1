//! Catalog figures on the synthetic registry (`trellis_index::synth`, names, tags and
//! descriptions from its vocabulary), served on loopback by the counting fault
//! server (metadata and catalog documents only: a search must need nothing else):
//!
//! 1. what the catalog adds to a full build: records + documents for every plugin,
//!    timed apart from the full build that includes them; catalog size;
//! 2. what it adds to a one-release incremental build: its catalog part alone (the
//!    changed plugin's bucket and the published documents listing it, redone), then
//!    the incremental build;
//! 3. cold queries of each shape (two words, an exact word, a prefix while typing, a
//!    typo in a word's first two characters with and without a shard of its own),
//!    each in a new data dir: requests and bytes of the TUF chain and after it, and
//!    the round trips after it on the client's critical path (answers delayed 5 ms so
//!    requests sent together overlap; the wall time printed includes that delay).
//!    After the chain a query reads no head (its plugin count is in the head's entry
//!    of the catalog role): its shards, then the typo shard and the matched shard of
//!    a word its shard does not match well;
//! 4. warm query latency (the update check + verified cache + ranking), exact and
//!    with typos (also in the first two characters): median and p95 over
//!    `TRELLIS_BENCH_WARM_RUNS` runs, with the CPU time (user + sys) of the runs.
//!
//! Figures (2026-12-02, 100k plugins × 2, `TRELLIS_BENCH_WARM_RUNS=10`, shared 2-core
//! machine at load ~14): after the chain, `markdown` and `mark` 1 request / 16.0 KB in 1
//! round trip, `markdown preview` 2 / 62.9 KB in 1, `xlock` and `lcock` 2 / 31.3 KB in 2,
//! `amrkdown` 2 / 16.1 KB in 2, `colck` 3 / 62.1 KB in 3 (before the head's facts moved
//! into the catalog role: 3, 3, 4 requests, the head 12.4 KB and a round trip of its
//! own); warm 4–6 ms CPU a query, wall median 7–19 ms. On a quiet fresh VM (2026-12-03,
//! load < 1, `TRELLIS_BENCH_WARM_RUNS=30`, `/work/notes/lead-s27.md`): the same requests
//! and bytes after the chain (the chain 2 requests, 833 KB: the catalog role), cold
//! queries 36–48 ms, warm median 1.3–2.0 ms (p95 ≤ 2.5 ms) for every query, typos
//! included; the catalog 4.3 s of a 13.6 s full build.
//!
//! Run: `cargo bench -p trellis-tests --bench catalog`. Environment:
//! `TRELLIS_BENCH_PLUGINS` (default 100000), `TRELLIS_BENCH_VERSIONS` (2),
//! `TRELLIS_BENCH_WARM_RUNS` (30), `BENCH_DIR` (default the system temp dir).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trellis_client::catalog::Query;
use trellis_client::resolve::HostApp;
use trellis_client::store::{Store, StoreOptions};
use trellis_index::build::{Scope, catalog};
use trellis_index::synth::{self, SynthSite, SynthSpec};
use trellis_schema::PluginId;
use trellis_schema::catalog::CatalogRecord;
use trellis_tests::fault_server::FaultServer;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort_unstable();
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plugins = env_or("TRELLIS_BENCH_PLUGINS", 100_000);
    let versions = env_or("TRELLIS_BENCH_VERSIONS", 2);
    let runs = env_or("TRELLIS_BENCH_WARM_RUNS", 30);
    let work =
        tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into())).unwrap();
    let mut site = SynthSite::init(work.path(), 12, jiff::Timestamp::now()).unwrap();
    let plan = synth::plan(SynthSpec { plugins, versions, seed: 42 });
    let target = plan[plan.len() / 2].clone();
    site.known = plan.iter().map(|p| p.id.clone()).collect();
    let inputs: Vec<_> = plan.into_iter().map(synth::plugin_input).collect();

    // 1. The catalog's part of a full build, then the full build.
    let started = Instant::now();
    let records: BTreeMap<PluginId, CatalogRecord> = inputs
        .iter()
        .filter_map(|p| catalog::record(p, None, "2026-11-01T00:00:00Z", None).map(|r| (p.id.clone(), r)))
        .collect();
    let records_time = started.elapsed();
    let started = Instant::now();
    let documents = catalog::documents(&records, &[]);
    let documents_time = started.elapsed();
    let total: usize = documents.iter().map(|(_, b)| b.len()).sum();
    let shards: Vec<usize> =
        documents.iter().filter(|(t, _)| t.starts_with("catalog/search-")).map(|(_, b)| b.len()).collect();
    let typos: Vec<usize> =
        documents.iter().filter(|(t, _)| t.starts_with("catalog/typo-")).map(|(_, b)| b.len()).collect();
    println!(
        "typo shards: {}, {} bytes (max {})",
        typos.len(),
        typos.iter().sum::<usize>(),
        typos.iter().max().copied().unwrap_or(0)
    );
    let head = documents.iter().find(|(t, _)| t == "catalog/head.json").map_or(0, |(_, b)| b.len());
    println!(
        "catalog of {} plugins: records {records_time:.2?}, documents {documents_time:.2?}; {} documents, {} bytes \
         (head {head} bytes, {} shards: median {} max {} bytes)",
        records.len(),
        documents.len(),
        total,
        shards.len(),
        {
            let mut s = shards.clone();
            s.sort_unstable();
            s[s.len() / 2]
        },
        shards.iter().max().unwrap()
    );
    drop(documents);
    drop(records);
    let started = Instant::now();
    let full = site.build(inputs, Scope::Full).unwrap();
    println!("full build (catalog included): {} releases in {:.2?}", full.releases, started.elapsed());
    let catalog_role = std::fs::read(
        site.site_dir.join("metadata").join(format!("{}.catalog.json", version_of(&site.site_dir, "catalog"))),
    )
    .unwrap();
    println!("catalog role document: {} bytes", catalog_role.len());

    // 2. One release more, incrementally; and the catalog's part of that.
    let mut grown = target.clone();
    let mut release = grown.releases.last().unwrap().clone();
    release.version = semver::Version::new(99, 0, 0);
    release.yanked = false;
    grown.releases.push(release);
    let changed = synth::plugin_input(grown);
    let scope = Scope::Plugins(BTreeSet::from([changed.id.clone()]));
    // The catalog's part alone, on the published site as the build sees it: the
    // changed plugin's bucket, its record, the documents listing it.
    let published = SitePublished::open(&site.site_dir);
    let started = Instant::now();
    let mut incremental = catalog::Incremental::new(&published);
    incremental.load([&changed.id]).unwrap();
    let record = catalog::record(&changed, incremental.previous(&changed.id), "2026-12-01T00:00:00Z", None);
    let update = incremental.update(&BTreeMap::from([(changed.id.clone(), record)]), &[], &[]).unwrap();
    let catalog_time = started.elapsed();
    let update = update.expect("one more release is decided from the published documents");
    println!(
        "catalog part of an incremental build: {catalog_time:.2?}, {} documents redone ({} bytes), reading {} \
         published documents",
        update.documents.len(),
        update.documents.iter().map(|(_, b)| b.len()).sum::<usize>(),
        published.reads.load(std::sync::atomic::Ordering::Relaxed)
    );
    let started = Instant::now();
    let incremental = site.build(vec![changed], scope).unwrap();
    let incremental_time = started.elapsed();
    assert_eq!(incremental.catalog, trellis_index::build::CatalogWork::Incremental);
    let catalog_files = incremental.written.iter().filter(|p| p.starts_with("targets/catalog/")).count();
    println!(
        "incremental build (+1 release of {}): {} files written ({catalog_files} catalog documents) in {incremental_time:.2?}",
        target.id,
        incremental.written.len()
    );

    // 3. A cold query.
    let server = FaultServer::start().unwrap();
    let mut served = Vec::new();
    walk(&site.site_dir.join("metadata"), &mut served);
    walk(&site.site_dir.join("targets/catalog"), &mut served);
    for file in served.iter().filter(|f| !f.to_string_lossy().contains(".records-")) {
        let relative = file.strip_prefix(&site.site_dir).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(file).unwrap());
    }
    let host = HostApp { id: "demo-host".into(), api_version: semver::Version::new(1, 0, 0) };
    let root = std::fs::read(site.root_file()).unwrap();
    let cold = |text: &str| {
        let data = tempfile::tempdir_in(work.path()).unwrap();
        let mut store = Store::open(data.path(), StoreOptions::new(host.clone())).unwrap();
        store.add_registry("synth", &server.url(), &root).unwrap();
        server.reset_counters();
        server.set_latency(Duration::from_millis(5));
        let query = Query::new(text);
        let started = Instant::now();
        let results = store.search(&query).unwrap();
        let cold = started.elapsed();
        server.set_latency(Duration::ZERO);
        let round_trips = server.critical_chain().iter().filter(|p| p.starts_with("/targets/")).count();
        let hits = server.hits();
        let mut chain = (0usize, 0u64);
        let mut after = (0usize, 0u64);
        for hit in &hits {
            let length = std::fs::metadata(site.site_dir.join(&hit.path[1..])).map_or(0, |m| m.len());
            let slot = if hit.path.starts_with("/metadata/") { &mut chain } else { &mut after };
            slot.0 += 1;
            slot.1 += length;
        }
        println!(
            "cold query {:?}: {} hits in {cold:.2?}; TUF chain {} requests {} bytes; after it {} requests {} bytes \
             in {round_trips} round trips: {:?}",
            query.text,
            results.hits.len(),
            chain.0,
            chain.1,
            after.0,
            after.1,
            hits.iter()
                .filter(|h| h.path.starts_with("/targets/"))
                .map(|h| h.path.rsplit('/').next().unwrap().split_once('.').unwrap().1)
                .collect::<Vec<_>>()
        );
        println!(
            "top 3: {:?}",
            results.hits.iter().take(3).map(|h| format!("{} ({})", h.id, h.name)).collect::<Vec<_>>()
        );
        data
    };
    let data = cold("markdown preview");
    for text in ["markdown", "mark", "xlock", "lcock", "colck", "amrkdown"] {
        drop(cold(text));
    }

    // 4. Warm queries, exact and with typos, in a new store (the data dir is locked
    // by one store at a time).
    for text in ["markdown preview", "markdwon preveiw", "calendar sync", "xlock", "colck", "amrkdown preview"] {
        let query = Query::new(text);
        let mut store = Store::open(data.path(), StoreOptions::new(host.clone())).unwrap();
        let _ = store.search(&query).unwrap();
        let mut times = Vec::new();
        server.reset_counters();
        let cpu = cpu_time();
        for _ in 0..runs {
            let started = Instant::now();
            let found = store.search(&query).unwrap();
            times.push(started.elapsed());
            assert!(!found.hits.is_empty(), "{text}");
        }
        let cpu = cpu_time().saturating_sub(cpu);
        println!(
            "warm query {text:?}: median {:.2?}, p95 {:.2?}, CPU (user+sys, whole process) {:.2?} a run ({} requests over {runs} runs)",
            percentile(times.clone(), 0.5),
            percentile(times, 0.95),
            cpu / runs.max(1) as u32,
            server.request_count()
        );
    }
}

/// CPU time (user + sys) this process has used so far, from `/proc/self/stat`
/// (zero where there is none).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    let Some((_, after)) = stat.rsplit_once(')') else { return Duration::ZERO };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    // Clock ticks are 100 a second on Linux.
    Duration::from_millis(ticks * 10)
}

fn version_of(site: &Path, role: &str) -> u64 {
    let mut files = Vec::new();
    walk(&site.join("metadata"), &mut files);
    files
        .iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_string_lossy().into_owned();
            name.strip_suffix(&format!(".{role}.json"))?.parse().ok()
        })
        .max()
        .unwrap_or(1)
}

/// The catalog documents a built site publishes, read from its newest catalog role.
struct SitePublished {
    dir: PathBuf,
    entries: BTreeMap<String, (trellis_schema::Sha256, u64)>,
    reads: std::sync::atomic::AtomicUsize,
}

impl SitePublished {
    fn open(dir: &Path) -> Self {
        let path = dir.join("metadata").join(format!("{}.catalog.json", version_of(dir, "catalog")));
        let role: trellis_schema::tuf::Envelope<trellis_schema::tuf::Targets> =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let entries = role
            .signed
            .targets
            .into_iter()
            .map(|(t, f)| (t, (f.hashes["sha256"].parse().unwrap(), f.length)))
            .collect();
        Self { dir: dir.to_owned(), entries, reads: 0.into() }
    }
}

impl catalog::PublishedCatalog for SitePublished {
    fn entries(&self) -> &BTreeMap<String, (trellis_schema::Sha256, u64)> {
        &self.entries
    }
    fn stored(&self, target: &str) -> Result<Vec<u8>, trellis_index::build::BuildError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sha256, _) = &self.entries[target];
        Ok(std::fs::read(trellis_index::site::target_file(&self.dir, target, sha256)).unwrap())
    }
}
