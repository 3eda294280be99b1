//! Storefront generation on a synthetic registry (`TRELLIS_BENCH_PLUGINS`, default
//! 100,000 plugins × 2 releases): the time the storefront adds to a full build and to a
//! one-release incremental build, the files it writes and its total size.
//!
//! `cargo bench -p trellis-index --bench storefront` (`BENCH_DIR` for the work dir,
//! `TRELLIS_BENCH_KEEP=1` keeps it to look at the pages). The publish step's peak RSS
//! is its own: `VmHWM` reset before it.
//!
//! One figure a run: the full build without the storefront (its catalog timed inside
//! it), on a site of its own, then prepare, build and storefront at once
//! (`storefront::build_and_publish`: the catalog handed over in memory, pages rendered
//! while the build writes the site); `TRELLIS_BENCH_STOREFRONT_AFTER=1` runs the old
//! order (build, then `publish` from the site's files). Then one release more,
//! incrementally, without and with the storefront.
//!
//! Current figures at 100k × 2 (2026-12-03, a fresh VM, two runs, each started once
//! file creation was cheap again, `BENCH_DIR=<disk> <this binary> --bench`): 123,037
//! storefront files, 882.8 MB; catalog + storefront **+23.9 s and +22.2 s** beside the
//! build (storefront +19.9 / +18.4 s wall, +29.2 / +27.4 s CPU; the full build with it
//! 31.0 / 30.1 s), the process's system time 40–42 s; one release +3.0 / +7.4 ms (CPU
//! +20 / +30 ms), 12 files, the one-release build 57–79 ms (≥ 380× faster than the full
//! one). **Start a run only minutes after any large deletion** (this bench's own
//! clean-up of ~1M files above all): this VM's ext4 skips recently deleted inodes when
//! it allocates one (`recently_deleted`, `find_inode_bit` in a `perf` profile of a
//! creation probe), and right after a clean-up the same binary gave +30.5 to +59.0 s
//! (system time 72–150 s); that, not the code, was the 2× swing of earlier sessions'
//! pairs. Every earlier figure: `docs/perf-history.md`.
//!
//! Each step is reported in wall time and in CPU time (user + system of the process:
//! on a loaded machine the wall time says more about the neighbours than the code).
//! Synthetic packages are not on disk, so plugin pages come from the signed manifests
//! and display fields (no icon or screenshot extraction: `tests/storefront.rs` covers
//! that with real packages).

#![allow(clippy::unwrap_used)] // a bench set-up that fails is a failed bench

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use trellis_index::build::{self, Scope, Signing};
use trellis_index::storefront::{self, PageLimits, Prepared, StorefrontJob, Theme};
use trellis_index::synth::{self, SynthSite, SynthSpec};

/// The `trellis-index` binary's allocator, so the figures are the binary's (under
/// glibc's malloc, `_int_malloc`, `malloc_consolidate` and `unlink_chunk` were ~10%
/// of the storefront's CPU in a `perf` profile of the full build at 100k).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, 100 Hz ticks).
fn cpu() -> std::time::Duration {
    let (user, system) = cpu_split();
    user + system
}

/// User and system CPU time of this process so far, apart (`/proc/self/stat`).
fn cpu_split() -> (std::time::Duration, std::time::Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (std::time::Duration::from_millis(ticks(11) * 10), std::time::Duration::from_millis(ticks(12) * 10))
}

/// The peak resident set of this process since the last [`reset_peak_rss`], in MiB
/// (`VmHWM` of `/proc/self/status`; 0 where there is none).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).unwrap_or(0) / 1024
}

/// The resident set now, in MiB (`VmRSS`).
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).unwrap_or(0) / 1024
}

/// Resets the peak resident set to the current one (Linux: `5` into
/// `/proc/self/clear_refs`), so a step's own peak can be read after it.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The storefront's files and bytes in all, and per top-level directory.
fn storefront_size(site: &Path) -> (usize, u64, Vec<(&'static str, usize, u64)>) {
    let mut per_dir = Vec::new();
    for dir in
        ["index.html", "categories", "tags", "plugins", "publishers", "search", "assets", "images", "_storefront"]
    {
        let (mut files, mut bytes) = (0, 0);
        for entry in walkdir::WalkDir::new(site.join(dir)).into_iter().flatten() {
            if entry.file_type().is_file() {
                files += 1;
                bytes += entry.metadata().map_or(0, |m| m.len());
            }
        }
        per_dir.push((dir, files, bytes));
    }
    let files = per_dir.iter().map(|d| d.1).sum();
    let bytes = per_dir.iter().map(|d| d.2).sum();
    (files, bytes, per_dir)
}

/// Writes back every dirty page (`sync`), so a timed step does not pay for the
/// previous step's writeback (the synthetic builds do not flush: `OsBuffered`).
fn flush() {
    let _ = std::process::Command::new("sync").status();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plugins = env_or("TRELLIS_BENCH_PLUGINS", 100_000);
    let versions = env_or("TRELLIS_BENCH_VERSIONS", 2);
    let work =
        tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into())).unwrap();
    let now = jiff::Timestamp::now();
    let plan = synth::plan(SynthSpec { plugins, versions, seed: 42 });
    let target = plan[plan.len() / 2].clone();
    let known = plan.iter().map(|p| p.id.clone()).collect();
    let theme = Theme::builtin("Bench Store").unwrap();
    let limits = PageLimits::default();
    let nothing_more = |_: &BTreeSet<trellis_schema::PluginId>| Ok(Prepared::default());
    let insights = storefront::Insights::default();
    let job = |prepared| StorefrontJob { prepared, theme: &theme, insights: &insights, load: &nothing_more };

    // Without: the same full build of the site (catalog included, timed inside it)
    // with no storefront, on a site of its own, first.
    let without_dir = work.path().join("without");
    std::fs::create_dir_all(&without_dir).unwrap();
    let mut without = SynthSite::init(&without_dir, 12, now).unwrap();
    without.known.clone_from(&known);
    let inputs: Vec<_> = plan.iter().cloned().map(synth::plugin_input).collect();
    flush();
    let (started, cpu_started) = (Instant::now(), cpu());
    let bare = without.build(inputs, Scope::Full).unwrap();
    let (bare_time, bare_cpu) = (started.elapsed(), cpu() - cpu_started);
    let catalog_time = std::time::Duration::from_millis(bare.catalog_millis);

    // With: prepare, then the site and the storefront at once, as `trellis-index build`
    // does (`storefront::build_and_publish`); with `TRELLIS_BENCH_STOREFRONT_AFTER=1`,
    // the storefront after the build, from the site's files (as before `build_and_publish`).
    let after = std::env::var_os("TRELLIS_BENCH_STOREFRONT_AFTER").is_some();
    let mut site = SynthSite::init(work.path(), 12, now).unwrap();
    site.known = known;
    let inputs: Vec<_> = plan.into_iter().map(synth::plugin_input).collect();
    flush();
    let rss_before = rss_mib();
    reset_peak_rss();
    let (started, cpu_started) = (Instant::now(), cpu());
    let prepared = storefront::prepare(&inputs, &limits).unwrap();
    let prepare_time = started.elapsed();
    let input = site.input(inputs, Scope::Full).unwrap();
    let (full, report) = if after {
        let full = build::build(input, &site.site_dir).unwrap();
        (full, storefront::publish(&site.site_dir, job(prepared)).unwrap())
    } else {
        let built =
            storefront::build_and_publish(input, &site.site_dir, Signing::Signed, job(prepared), |_| Ok(())).unwrap();
        (built.build, built.storefront.unwrap())
    };
    let (full_time, full_cpu) = (started.elapsed(), cpu() - cpu_started);
    let peak = peak_rss_mib();
    let (files, bytes, per_dir) = storefront_size(&site.site_dir);
    println!(
        "full build of {} releases without the storefront: {bare_time:.2?} (CPU {bare_cpu:.2?}; its catalog \
         {catalog_time:.2?}); with it, at once: {full_time:.2?} (CPU {full_cpu:.2?}; prepare {prepare_time:.2?}; \
         catalog {:.2?}; storefront phases {:?} ms): storefront +{:.2?} (CPU +{:.2?}), catalog + storefront \
         +{:.2?}; {} pages rendered, {} files written; storefront {files} files, {:.1} MB; peak RSS {peak} MiB \
         ({rss_before} MiB before)",
        full.releases,
        std::time::Duration::from_millis(full.catalog_millis),
        report.phases,
        full_time.saturating_sub(bare_time),
        full_cpu.saturating_sub(bare_cpu),
        full_time.saturating_sub(bare_time) + catalog_time,
        report.rendered,
        report.written.len(),
        bytes as f64 / 1e6
    );
    for (dir, files, bytes) in per_dir {
        println!("  {dir}: {files} files, {:.1} MB", bytes as f64 / 1e6);
    }
    for dir in ["_storefront/pages", "_storefront/publisher-groups", "_storefront/cards"] {
        let entries = walkdir::WalkDir::new(site.site_dir.join(dir)).into_iter().flatten();
        let sizes: Vec<u64> =
            entries.filter(|e| e.file_type().is_file()).map(|e| e.metadata().map_or(0, |m| m.len())).collect();
        println!("    {dir}: {} files, {:.1} MB", sizes.len(), sizes.iter().sum::<u64>() as f64 / 1e6);
    }

    // One release more, incrementally.
    let mut grown = target.clone();
    let mut release = grown.releases.last().unwrap().clone();
    release.version = semver::Version::new(99, 0, 0);
    release.yanked = false;
    grown.releases.push(release);
    let changed = synth::plugin_input(grown);
    let scope = Scope::Plugins(BTreeSet::from([changed.id.clone()]));
    // Without the storefront, on the site built without it, then with it (prepare, the
    // site and the storefront at once), as `trellis-index build --only` does.
    let (started, cpu_started) = (Instant::now(), cpu());
    without.build(vec![changed.clone()], scope.clone()).unwrap();
    let (bare_time, bare_cpu) = (started.elapsed(), cpu() - cpu_started);
    let (started, cpu_started) = (Instant::now(), cpu());
    let prepared = storefront::prepare(std::slice::from_ref(&changed), &limits).unwrap();
    let prepare_time = started.elapsed();
    let input = site.input(vec![changed], scope).unwrap();
    let built =
        storefront::build_and_publish(input, &site.site_dir, Signing::Signed, job(prepared), |_| Ok(())).unwrap();
    let (one_time, one_cpu) = (started.elapsed(), cpu() - cpu_started);
    let report = built.storefront.unwrap();
    println!(
        "incremental build (+1 release of {}): without the storefront {bare_time:.2?} (CPU {bare_cpu:.2?}); with it \
         {one_time:.2?} (CPU {one_cpu:.2?}; prepare {prepare_time:.2?}; storefront phases {:?} ms): storefront \
         +{:.2?} (CPU +{:.2?}); {} pages rendered, {} files written: {:?}",
        target.id,
        report.phases,
        one_time.saturating_sub(bare_time),
        one_cpu.saturating_sub(bare_cpu),
        report.rendered,
        report.written.len(),
        report.written
    );
    // The process's user and system time before the work dir goes: `/usr/bin/time`
    // around this bench also counts the clean-up below, which is no build's.
    let (user, system) = cpu_split();
    println!(
        "process CPU before clean-up: user {user:.2?}, system {system:.2?}; peak RSS since the full build with the \
         storefront started {} MiB",
        peak_rss_mib()
    );
    if std::env::var_os("TRELLIS_BENCH_KEEP").is_some() {
        println!("site kept in {}", work.keep().join("site").display());
    } else {
        // Removing both sites (~1M files at 100k): minutes of wall time on a file
        // system mounted with online `discard` (each freed extent discarded as the
        // inode goes), and the next run's inode allocation then scans past the
        // recently deleted inodes (ext4's `recently_deleted`).
        let (started, cpu_started) = (Instant::now(), cpu());
        work.close().unwrap();
        println!("clean-up of the work dir (no build's): {:.2?} (CPU {:.2?})", started.elapsed(), cpu() - cpu_started);
    }
}
