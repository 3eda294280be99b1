//! Storefront generation on a synthetic registry (`TRELLIS_BENCH_PLUGINS`, default
//! 100,000 plugins × 2 releases): the time the storefront adds to a full build and to a
//! one-release incremental build, the files it writes and its total size.
//!
//! `cargo bench -p trellis-index --bench storefront` (`BENCH_DIR` for the work dir,
//! `TRELLIS_BENCH_KEEP=1` keeps it to look at the pages). The publish step's peak RSS
//! is its own: `VmHWM` reset before it.
//!
//! At 100k (2026-12-02, 2 shared cores at load 16–19): before pages were written as
//! they render (`0dcc1b3`), publish's peak RSS 2,812 MiB from 1,338 MiB held before it
//! (+1,474 MiB: every rendered page), 254,530 files, 963 MB, storefront CPU 27.0 s;
//! after (`506b1b5`), 1,498 MiB from 1,491 MiB (+7 MiB), 242,299 files, 912 MB, CPU
//! 32.1 s in a run overlapping other work (not a like-for-like CPU figure). On the quiet
//! machine the same day (load 1–2): full build +40.9 s wall, 45.1 s CPU (render and
//! write 40.6 s), peak RSS +10 MiB; one release +173 ms wall, 100 ms CPU.
//! Page data in 4,096 groups instead of a file a plugin (`9e0e59e`, `d7c0f11`; load
//! 11–13 on the 2 shared cores, side by side with the binary of `a1a34d0`, each
//! beside other work, so wall times are not comparable): storefront files 242,299 →
//! 146,475 (`_storefront/plugins` 99,920 files, 67.4 MB → `_storefront/pages` 4,096
//! files, 69.6 MB), 912.2 → 914.4 MB, full-build storefront CPU 27.2 → 21.7 s (a 20k
//! pair under the same load gave 6.9 → 12.9 s, the strace pair 9.7 → 9.0 s: CPU is noisy
//! here, rayon's idle spinning included; files and system calls are the firm figures), publish
//! peak RSS +8 → +7 MiB; one release 12 files written either way (a ~17 KB group
//! for the plugin's data file), CPU 70 → 50 ms (10 ms ticks), catalog phase 84 → 25 ms (the
//! catalog role scanned, not parsed). At 20k under `strace -f -c` (whole process, its
//! site build and clean-up included): 1,037,251 → 937,542 system calls (openat
//! 167,800 → 151,893, statx 162,197 → 126,340, write 95,071 → 79,164).
//! Insight pages only for publishers with a download in the window (`654e3ed`; the
//! synthetic registry has no statistics, so none) and this bench under jemalloc, the
//! binary's allocator (load 8–10 on the 2 shared cores, `nice -n 10`, one run each):
//! storefront files 146,475 → 134,244 (−12,231 insight pages), 914.4 → 882.7 MB, pages
//! rendered 127,105 → 114,874; full-build storefront +48.7 s wall, 25.7 s CPU (main's
//! code under jemalloc) → +46.1 s wall, 21.4 s CPU; publish peak RSS +134 → +121 MiB
//! above what the process held (743 → 711 MiB; under glibc 1,461 MiB: jemalloc holds
//! half). One release: +149 → +117 ms wall, 40 → 50 ms CPU (10 ms ticks), 12 files
//! written either way; its `prepare` 86–95 µs in every run (100k and 20k, glibc and
//! jemalloc): the 153 ms of one earlier run did not come back. A `perf` profile of the
//! full build (main's code, glibc): in the storefront's part 57% of the samples in the
//! kernel (file creation: `ext4_create`, `recently_deleted`, `mkdir`), 18% in libc
//! (malloc 10%, memcmp 4%), 25% in the bench's own code (minijinja's VM 3%).
//! Storefront beside the build (`storefront::build_and_publish`: the catalog handed over in
//! memory, pages rendered while the build writes the site) and publishers' kept data in
//! 1,024 groups (`00e82e0`). This bench now gives one figure a run: the same full build
//! without the storefront (its catalog timed inside it), on a site of its own, then
//! prepare, build and storefront; `TRELLIS_BENCH_STOREFRONT_AFTER=1` runs the old order (build, then
//! `publish` from the site's files). No quiet window (a `/proc/stat` sampler: the 2 cores
//! 1.92-2.00 busy on average with the neighbours), so the wall figures are the
//! neighbours': old order at load 6.4, +28.6 s wall (without 48.2 s, its catalog 9.0 s;
//! catalog + storefront +37.6 s); beside at load 8.6-13, +37.1 s (without 181 s, catalog
//! 79 s); with the groups at load 7-9 beside two of my compiles, +91 s. Firm: storefront
//! files 134,244 -> 123,037 (`_storefront/publishers` 12,231 files -> 1,024 groups, 42.9
//! MB either way), 882.8 MB; one release writes 12 files (its publisher group, ~42 KB,
//! for its publisher file), +58-136 ms wall (load 5-9); peak RSS of the whole build with
//! the storefront 1,369-1,488 MiB (the handoff keeps the record buckets, listings and
//! reviews, not the shards).
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
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    std::time::Duration::from_millis(ticks * 10)
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
    if std::env::var_os("TRELLIS_BENCH_KEEP").is_some() {
        println!("site kept in {}", work.keep().join("site").display());
    }
}
