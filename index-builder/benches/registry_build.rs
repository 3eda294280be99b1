//! Registry build benchmark: a full metadata build of a synthetic registry, then an
//! incremental build adding one release, in the same run; sizes of the documents a
//! client downloads; and the cold request count to reach one plugin's index doc,
//! counted by the loopback server.
//!
//! `cargo bench -p trellis-index --bench registry_build -- [PLUGINS] [VERSIONS] [BIN_BITS]`
//! (defaults: 100000 10 12). `scripts/bench-registry` runs it under `/usr/bin/time -v`
//! for the peak RSS. Blobs are content addresses only (see `trellis_index::synth`):
//! metadata is what is measured.
//!
//! Then +1 release **in a fresh process** (as CI runs `trellis-index build`: a new
//! heap, nothing of the full build in memory; `TRELLIS_BENCH_RUNS` runs, default 3).
//! The child re-runs this binary with `TRELLIS_BENCH_CHILD` set and times only the
//! build: wall time and CPU time (user + system of every thread, ended ones too:
//! `CLOCK_PROCESS_CPUTIME_ID`, so a loaded machine shows in the wall time only).
//! This bench runs under jemalloc, the `trellis-index` binary's allocator.
//!
//! Figures (2-core VM shared with four other builds, load 12–18; CPU time is the
//! comparable figure, wall time mostly waits for a core): +1 release at 100k × 10,
//! before the shard layout state 475–600 ms CPU (2.7–3.7 s wall); with it, the
//! spliced record buckets and roles read once 83–102 ms CPU (0.2–0.74 s wall); at
//! 300k × 5 (10 versions did not fit the shared memory) 194–253 ms CPU (0.62–0.96 s
//! wall). With plain roles scanned (the catalog role, 2.4 MB, no longer parsed) and
//! the levels bucket spliced, at 300k × 5, alternating with the previous binary on the
//! same kept site (load 13–14): 145–198 ms CPU (median 166; levels 3–8 ms), the
//! previous binary 188–298 ms (levels 29–70 ms); at 100k × 10 the same way (load
//! 15–16) 74–102 ms, the previous binary 103–161 ms. What is left at 300k: the search
//! shards under split keys (~30 ms), the record bucket splice (3.4 MB, ~12 ms), the
//! catalog role's scan (~12 ms) and signature (two SHA-512 passes over 2.4 MB, with
//! the snapshot's ~10 ms), the catalog update's copies of its 18k entries (~10 ms),
//! ~7 MB written and hashed. The full builds: 175 s at 100k × 10, 591 s at 300k × 5
//! (402 s with `BENCH_NO_FSYNC`). Then the record bucket is kept as the one buffer
//! read and spliced into an output reserved once (it grew by doubling: ~9 ms of
//! copies), only when it has the SHA-256 the catalog role lists; digests are written
//! to and read from hex by hand: at 300k × 5, 16 runs alternating with the previous
//! binary on one kept site (load 10–15, another helper's builds running), 120–229 ms
//! CPU, median 169, lowest quarter under 154 (previous 153–221, median 177, 168); at
//! 100k × 10 (8 runs each, load 11–12) 64–119 ms, median 90 (previous 67–112, median
//! 89: the same within the noise; a bucket is 1.1 MB there). Still over 100 ms at 300k:
//! the catalog role (2.4 MB, 18k entries, 9.8k of them search shards: read and
//! scanned ~13 ms, signed ~10–16, copied and written), the search shards and listing
//! pages parsed (~1.4 MB, 15–23 ms), the 3.4 MB record bucket (read, hashed, scanned,
//! spliced, hashed, written: ~12 ms), jemalloc returning pages (`madvise`, up to
//! ~20 ms in one profile). The full builds: 138 s at 100k × 10, 689 s at 300k × 5
//! (`BENCH_NO_FSYNC`, load ~10). Then every published catalog document an update
//! reads is checked against the catalog role's SHA-256, a new release whose postings
//! do not move carries the shards not showing it unparsed, and listing pages are
//! probed for order keys only: alternating with the previous binary on one kept site
//! (load 6.6–7.6), at 100k × 10, 8 runs each, 49–85 ms CPU, median 66 (previous
//! 71–110, median 75); at 300k × 5, 20 runs each (load 5–7.6), 110–185 ms, median
//! 146, lowest quarter under 126 (previous 120–226, median 157, 149); in one profile
//! the shards' samples 11.8 → 4.2 ms (`/work/notes/cat300k.md`). Still over 100 ms at 300k: the catalog role (2.4 MB: 9,844 shard entries
//! 1.30 MB, 8,091 listing pages 1.10 MB), the 3.4 MB record bucket, ~7 MB written.
//! A child no longer makes the whole synthetic plan: it reads the grown plugin and
//! the plugin ids from `child-input.json` (written by the full build; for an older
//! kept site by a process of its own) and reports the build's own peak RSS (reset
//! right before it). At 300k × 5 the 971 MB peak the child reported was the plan's:
//! the build itself peaks at ~75 MB (42 MB before it); at 100k × 10 ~33 MB (was 623).
//! With the published catalog read through one checking reader, `Sha256::from_str`
//! from a table and record buckets scanned with `memchr2` (2026-12-02, load 7–8,
//! alternating on one kept site with main's binary): 300k × 5, 10 runs each, median
//! 159 ms CPU (118–268), main 167 (151–187), a second batch of 12 each (load 6.4–8.2)
//! 153 (132–174), main 165 (121–367); 100k × 10, 8 runs each, median 77
//! (71–99), main 95 (89–109). With the same binary, a child making the plan itself
//! (`TRELLIS_BENCH_CHILD_PLAN=inline`) measured the same CPU within the noise (100k:
//! 79 vs 82). In one 300k profile the build's CPU goes to the catalog role (read and
//! scanned ~12 ms, signed: two SHA-512 passes over 2.4 MB, most of ~23 ms sampled,
//! written), the record bucket (~11), `build_with` glue and drops (~30, of it ~9
//! dropping the 300k plugin ids of `BuildInput`), writes (~12), levels (~5), the
//! snapshot (~4) (`/work/notes/bins300k.md`).
//!
//! `TRELLIS_BENCH_STATS=1`: the registry has download statistics (`stats/`), and the
//! fresh-process builds also run a day later (the windows move) and without the
//! catalog's figures state (the catalog redone from every record).
//!
//! **The figures above are the metadata build only** (`build_with` over inputs made
//! before the timer), not what `trellis-index build --only ID` costs: the CLI also opens
//! the registry source (every publisher record read and its signatures verified), lists
//! `releases/` for the plugin ids, checks every publisher chain against the published
//! one, publishes every record again, judges every publisher's domain proof and runs
//! the storefront. `TRELLIS_BENCH_CLI="DIR PLUGINS VERSIONS"` (`DIR` a site kept with
//! `TRELLIS_BENCH_KEEP`) measures that: it lays out the source tree the CLI reads (a
//! directory under `releases/` for every plugin, a publisher record for every vendor),
//! publishes the records and a first real plugin (`vbench.cli-0`) by a first CLI build
//! (with the whole storefront), then `TRELLIS_BENCH_RUNS` times adds a new release of
//! that plugin (`1.0.N`) and a new plugin (`vbench.cli-N` 1.0.0), real signed packages,
//! and builds each as the CLI does (`build::open_registry` + `build_registry`), in a fresh
//! process, timed whole. At 100k after the changes below (3 runs, quiet): a new release
//! of a published plugin 797–813 ms wall (1.3 s CPU; 18 site files, 10 storefront
//! files; a first run with cold caches 2.7 s), a new plugin 0.99–1.12 s. An incremental
//! build then stopped reading back the publisher records it did not change (a stat
//! each instead; a full build still rewrites one altered in place): alternating 4 runs
//! each, a new release 856–1,003 → 800–837 ms wall (CPU 1.46–1.65 → 1.31–1.39 s), a new
//! plugin 1,026–1,202 → 944–1,000 ms. Figures (2026-12-03, quiet 2-core VM, jemalloc,
//! alternating with the code before on one kept site): at 100k × 10 (12,224 publishers)
//! **1.82–1.98 s wall before, 0.98–1.07 s after** parallel record loading, the plugin
//! listing sorted before the set is made, the publisher records shared instead of
//! cloned (three times) and checked against only the vendors loaded; the open alone
//! 0.96–1.26 s → 0.50–0.53 s; at 300k × 5 (36,714 publishers) 5.4–6.0 s → 3.4–4.7 s
//! (open 3.0–3.2 → 1.6–2.2 s). Each such build writes ~95 (100k) or ~238 (300k) site
//! files and ~84 or ~226 storefront pages: a new plugin enters its category's
//! listing, whose pages after it all move. Still 10× over the ≤ 100 ms target: the
//! rest is O(publishers) and O(plugins) work an `--only` build does not need (see
//! the note of stop 28).
//!
//! Each CLI build's child starts on a settled disk: the bench flushes the file
//! system (`sync`) after adding the release, so the build's one durability barrier
//! (`syncfs`) waits for its own writes and the new package, not for what the run
//! before left unflushed (the plugin list, the storefront's pages), nor for the bench
//! binary just copied: between two real builds, minutes apart, the kernel has written
//! those back (`vm.dirty_expire_centisecs`, 30 s). `TRELLIS_BENCH_UNSETTLED=1` skips
//! the flush (builds back to back, each paying for the one before).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use trellis_index::build::{Durability, Scope};
use trellis_index::fixture;
use trellis_index::serve::Server;
use trellis_index::site;
use trellis_index::synth::{self, SynthSite, SynthSpec};
use trellis_schema::tuf::{Envelope, Snapshot, Targets};

/// The `trellis-index` binary's allocator, so the fresh-process figures are its own.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn arg(index: usize, default: u64) -> u64 {
    std::env::args().filter(|a| !a.starts_with('-')).nth(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// CPU time (user + system) of this process so far, every thread's, ended ones too, in
/// nanoseconds (`CLOCK_PROCESS_CPUTIME_ID`; 0 where there is no such clock). It summed
/// `/proc/self/task/*/schedstat` before, which misses threads that have ended: the
/// storefront's (a third to a half of a new plugin's CPU at 300k) were not counted.
#[cfg(target_os = "linux")]
fn cpu_nanos() -> u64 {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(spent.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(spent.tv_nsec).unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
fn cpu_nanos() -> u64 {
    0
}

/// The plugin the +1 builds grow: the first from the middle of `plan` whose newest
/// release has at least four dependencies, so that its doc's prefetch hint walks
/// through published docs as a real release's does (the middle one when none has).
fn grown_target(plan: &[synth::SynthPlugin]) -> &synth::SynthPlugin {
    let middle = &plan[plan.len() / 2..];
    let deep = |p: &&synth::SynthPlugin| p.releases.last().is_some_and(|r| r.dependencies.len() >= 4);
    middle.iter().find(deep).unwrap_or(&middle[0])
}

/// [`grown_target`] with the releases the +1 builds add: 99.0.0 by the in-process one,
/// 100.0.0, 101.0.0, … by the fresh-process ones (each keeps those before it, as the
/// registry's source tree would).
fn grown(target: &synth::SynthPlugin, n: u64) -> trellis_index::release::PluginInput {
    let mut grown = target.clone();
    let last = grown.releases.last().unwrap().clone();
    for k in 0..=n {
        let mut release = last.clone();
        release.version = semver::Version::new(99 + k, 0, 0);
        release.yanked = false;
        grown.releases.push(release);
    }
    synth::plugin_input(grown)
}

/// `stats/downloads.json` for `plan` (`TRELLIS_BENCH_STATS`): a fifth of the plugins
/// downloaded on 1–6 of the 60 days before the build, a few to a few thousand times.
fn write_stats(registry: &Path, plan: &[synth::SynthPlugin]) -> usize {
    let start: jiff::civil::Date = "2026-09-02".parse().unwrap();
    let mut rng = synth::Rng(7);
    let mut downloads = serde_json::Map::new();
    for plugin in plan {
        if rng.below(5) != 0 {
            continue;
        }
        let mut days = serde_json::Map::new();
        for _ in 0..1 + rng.below(6) {
            let day = start.checked_add(jiff::Span::new().days(rng.below(60) as i64)).unwrap();
            days.insert(day.to_string(), (1 + rng.below(10) * rng.below(300)).into());
        }
        let version = plugin.releases[0].version.to_string();
        downloads.insert(plugin.id.to_string(), serde_json::json!({ version: days }));
    }
    let count = downloads.len();
    let counts = serde_json::json!({ "downloads": downloads, "deltas": {}, "update_checks": {} });
    std::fs::create_dir_all(registry.join("stats")).unwrap();
    std::fs::write(registry.join("stats/downloads.json"), serde_json::to_vec(&counts).unwrap()).unwrap();
    count
}

/// What a child needs of the synthetic plan: the plugin it grows and every plugin id
/// (what a real build lists from the registry's `releases/`), kept in the work
/// directory as `child-input.json` so a child never generates the plan itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildInput {
    target: ChildPlugin,
    known: Vec<trellis_schema::PluginId>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ChildPlugin {
    id: trellis_schema::PluginId,
    releases: Vec<(semver::Version, trellis_schema::plugin::Channel, Vec<trellis_schema::plugin::Dependency>, bool)>,
}

impl ChildInput {
    /// The input of a child over the site built from `plan` (it grows [`grown_target`]).
    fn of(plan: &[synth::SynthPlugin]) -> Self {
        let target = grown_target(plan);
        Self {
            target: ChildPlugin {
                id: target.id.clone(),
                releases: (target.releases.iter())
                    .map(|r| (r.version.clone(), r.channel, r.dependencies.clone(), r.yanked))
                    .collect(),
            },
            known: plan.iter().map(|p| p.id.clone()).collect(),
        }
    }
}

const CHILD_INPUT: &str = "child-input.json";

/// Writes `child-input.json` of `work` from the plan of `spec` (in its own process:
/// the plan is ~1 GB at 300k plugins, and a child that made and freed it measured
/// jemalloc sorting those freed pages, and reported them as its peak RSS).
fn prepare_child_input(work: &Path, spec: SynthSpec) {
    let input = ChildInput::of(&synth::plan(spec));
    std::fs::write(work.join(CHILD_INPUT), serde_json::to_vec(&input).unwrap()).unwrap();
}

/// The child's input: `child-input.json` of `work`, written first (by a process of its
/// own) when missing (a site kept by an older version of this bench).
/// `TRELLIS_BENCH_CHILD_PLAN=inline`: the plan made (and freed) in the child, as this
/// bench did before, to compare with.
fn child_input(work: &Path, spec: SynthSpec) -> ChildInput {
    if std::env::var("TRELLIS_BENCH_CHILD_PLAN").is_ok_and(|v| v == "inline") {
        return ChildInput::of(&synth::plan(spec));
    }
    let path = work.join(CHILD_INPUT);
    if !path.exists() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env_remove("TRELLIS_BENCH_CHILD")
            .env("TRELLIS_BENCH_CHILD_PREPARE", format!("{} {} {}", work.display(), spec.plugins, spec.versions))
            .status()
            .unwrap();
        assert!(status.success(), "preparing {}", path.display());
    }
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// `VmHWM` or `VmRSS` of this process, as `/proc/self/status` gives it (`N kB`).
fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(|l| l[field.len()..].trim().to_owned()))
        .unwrap_or_default()
}

/// The child: one +1 release build over the site in `work`, timed alone.
/// `TRELLIS_BENCH_CHILD_MODE`: `next-day` builds a day later (download windows move),
/// `no-state` first removes the catalog's figures state (the catalog from every record:
/// what every build with `stats/` did before that state existed). The peak RSS is the
/// build's own: reset (`/proc/self/clear_refs`) right before it.
fn child(work: &Path, spec: SynthSpec, n: u64) {
    let mode = std::env::var("TRELLIS_BENCH_CHILD_MODE").unwrap_or_default();
    let mut now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    if mode == "next-day" {
        now = now.checked_add(jiff::SignedDuration::from_hours(24)).unwrap();
    }
    if mode == "no-state" {
        std::fs::remove_file(work.join("site/_catalog/figures.json")).unwrap();
    }
    let input = child_input(work, spec);
    let synth_site = SynthSite {
        registry: trellis_index::registry::Registry::open(&work.join("registry")).unwrap(),
        site_dir: work.join("site"),
        known: input.known.into_iter().collect(),
        now,
        durability: Durability::OsBuffered,
    };
    let target = synth::SynthPlugin {
        id: input.target.id,
        releases: (input.target.releases.into_iter())
            .map(|(version, channel, dependencies, yanked)| synth::SynthRelease {
                version,
                channel,
                dependencies,
                yanked,
            })
            .collect(),
    };
    let changed = grown(&target, n);
    let scope = Scope::Plugins(BTreeSet::from([changed.id.clone()]));
    let before = proc_status("VmRSS:");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (started, cpu_before) = (Instant::now(), cpu_nanos());
    let report = synth_site.build(vec![changed], scope).unwrap();
    let elapsed = started.elapsed();
    let cpu = cpu_nanos().saturating_sub(cpu_before);
    let rss = proc_status("VmHWM:");
    println!(
        "{} {} {} {rss}{} ({before} before it; levels {} ms, catalog {:?}, hints {} ms over {} published docs)",
        elapsed.as_secs_f64() * 1000.0,
        cpu as f64 / 1e6,
        report.written.len(),
        if reset { "" } else { " (process peak)" },
        report.levels.millis,
        report.catalog,
        report.hints.millis,
        report.hints.docs_read
    );
}

/// Runs the +1 release build in fresh processes, `runs` times (and, with download
/// statistics, a day later and without the figures state).
fn fresh_process_builds(work: &Path, plugins: usize, versions: usize) {
    let runs = std::env::var("TRELLIS_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3u64);
    let mut modes = vec![""];
    if work.join("registry/stats").exists() {
        modes.extend(["next-day", "no-state"]);
    }
    let mut n = 1;
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for round in 0..runs {
        for mode in &modes {
            let mut command = std::process::Command::new(std::env::current_exe().unwrap());
            command.env("TRELLIS_BENCH_CHILD", format!("{} {plugins} {versions} {n}", work.display()));
            command.env("TRELLIS_BENCH_CHILD_MODE", mode);
            let output = command.output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let mut fields = line.split_whitespace();
            let ms: f64 = fields.next().unwrap().parse().unwrap();
            let cpu: f64 = fields.next().unwrap().parse().unwrap();
            let written = fields.next().unwrap();
            let rss = fields.collect::<Vec<_>>().join(" ");
            if mode.is_empty() {
                walls.push((ms * 1000.0) as u64);
                cpus.push((cpu * 1000.0) as u64);
            }
            println!(
                "+1 release in a fresh process{} (run {}): {ms:.1} ms wall, {cpu:.1} ms CPU, {written} files written, peak RSS {rss}",
                if mode.is_empty() { String::new() } else { format!(", {mode}") },
                round + 1
            );
            n += 1;
        }
    }
    println!(
        "+1 release in a fresh process: median {:.1} ms wall, {:.1} ms CPU over {runs} runs",
        median(walls) as f64 / 1000.0,
        median(cpus) as f64 / 1000.0
    );
}

/// The registry source tree `trellis-index build` reads, beside the synthetic site of
/// `work`: a directory under `releases/` for every plugin of the plan (what the CLI
/// lists for its plugin ids) and a publisher record for every vendor (what it loads and
/// verifies), then one `--only` build that publishes those records (the synthetic site
/// has none). Done once per work directory (`cli-source.done`).
fn prepare_cli_source(work: &Path, spec: SynthSpec) {
    let marker = work.join("cli-source.done");
    if marker.exists() {
        return;
    }
    let registry = work.join("registry");
    let known = child_input(work, spec).known;
    let key = synth::publisher_key();
    let started = Instant::now();
    let mut vendors = BTreeSet::new();
    for id in &known {
        std::fs::create_dir_all(registry.join("releases").join(id.as_str())).unwrap();
        vendors.insert(id.vendor().to_owned());
    }
    for vendor in vendors.iter().map(String::as_str).chain([CLI_VENDOR]) {
        fixture::add_publisher(&registry, vendor, &key).unwrap();
    }
    println!(
        "source tree for the CLI: {} plugin directories, {} publisher records in {:.1?}",
        known.len(),
        vendors.len() + 1,
        started.elapsed()
    );
    let started = Instant::now();
    let line = cli_child(work, &cli_published(), "1.0.0");
    println!("first CLI build (publishes the publisher records): {line} ({:.1?})", started.elapsed());
    std::fs::write(marker, b"").unwrap();
}

/// The vendor of the plugins the CLI builds add.
const CLI_VENDOR: &str = "vbench";

/// Adds release `version` of `id` (a real signed package) to the source tree of `work`,
/// then builds it as `trellis-index build --only` does, in a fresh process: the registry
/// opened and every step of `build_registry` timed, not only the metadata build.
/// Returns the child's line.
fn cli_child(work: &Path, id: &str, version: &str) -> String {
    let spec = fixture::ReleaseSpec::new(id, version);
    fixture::add_release(&work.join("registry"), &spec, &synth::publisher_key()).unwrap();
    if std::env::var_os("TRELLIS_BENCH_UNSETTLED").is_none() {
        let settled = std::process::Command::new("sync").status();
        assert!(settled.as_ref().is_ok_and(|s| s.success()), "sync: {settled:?}");
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("TRELLIS_BENCH_CLI_CHILD", format!("{} {id}", work.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The plugin the first CLI build publishes; later runs add releases to it.
fn cli_published() -> String {
    format!("{CLI_VENDOR}.cli-0")
}

/// The CLI's `build --only ID` in this (fresh) process: open the registry source, then
/// `build_registry` (plugin listing, publisher records, ratings, statistics, the site
/// and the storefront). Prints wall ms, CPU ms, files written and the open's share.
fn cli_build(work: &Path, id: &str) {
    let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let (started, cpu_before) = (Instant::now(), cpu_nanos());
    let scope = Scope::Plugins(BTreeSet::from([id.parse().unwrap()]));
    // `TRELLIS_BENCH_CLI_VERIFY_ALL=1`: every publisher chain verified, as before
    // `open_incremental` (for side-by-side runs with one binary).
    let registry = if std::env::var_os("TRELLIS_BENCH_CLI_VERIFY_ALL").is_some() {
        trellis_index::registry::Registry::open(&work.join("registry")).unwrap()
    } else {
        trellis_index::build::open_registry(&work.join("registry"), &work.join("site"), &scope).unwrap()
    };
    let opened = started.elapsed();
    let report = trellis_index::build::build_registry(&registry, &work.join("site"), scope, now).unwrap();
    let elapsed = started.elapsed();
    let cpu = cpu_nanos().saturating_sub(cpu_before);
    println!(
        "{} {} {} {} (open {:.1} ms)",
        elapsed.as_secs_f64() * 1000.0,
        cpu as f64 / 1e6,
        report.written.len(),
        report.storefront.len(),
        opened.as_secs_f64() * 1000.0
    );
}

/// `TRELLIS_BENCH_CLI`: +1 release as `trellis-index build --only` makes it, in fresh
/// processes over the source tree [`prepare_cli_source`] lays out, `TRELLIS_BENCH_RUNS`
/// times each: a new release of the plugin the first build published, then a new plugin.
fn cli_builds(work: &Path, spec: SynthSpec) {
    prepare_cli_source(work, spec);
    let runs = std::env::var("TRELLIS_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3u64);
    let first = std::fs::read_dir(work.join("registry/releases"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(CLI_VENDOR))
        .count() as u64;
    let published = cli_published();
    let releases = |id: &str| std::fs::read_dir(work.join("registry/releases").join(id)).unwrap().count() as u64 / 2;
    // Two kinds of +1 release: a new release of a published plugin (its listings'
    // order unchanged), and a new plugin (entering its category's listing).
    let kinds = ["a new release of a published plugin", "a new plugin's first release"];
    let mut figures: [(Vec<u64>, Vec<u64>); 2] = Default::default();
    for n in first..first + runs {
        let patch = releases(&published);
        let builds =
            [(published.clone(), format!("1.0.{patch}")), (format!("{CLI_VENDOR}.cli-{n}"), "1.0.0".to_owned())];
        for (kind, ((id, version), (walls, cpus))) in builds.iter().zip(figures.iter_mut()).enumerate() {
            let line = cli_child(work, id, version);
            let mut fields = line.split_whitespace();
            let ms: f64 = fields.next().unwrap().parse().unwrap();
            let cpu: f64 = fields.next().unwrap().parse().unwrap();
            let (written, storefront) = (fields.next().unwrap(), fields.next().unwrap());
            walls.push((ms * 1000.0) as u64);
            cpus.push((cpu * 1000.0) as u64);
            println!(
                "+1 release as the CLI builds it ({}, {id} {version}), fresh process: {ms:.1} ms wall, {cpu:.1} ms \
                 CPU, {written} files and {storefront} storefront files written {}",
                kinds[kind],
                fields.collect::<Vec<_>>().join(" ")
            );
        }
    }
    for (kind, (walls, cpus)) in figures.into_iter().enumerate() {
        println!(
            "+1 release as the CLI builds it, {}: median {:.1} ms wall, {:.1} ms CPU over {runs} runs",
            kinds[kind],
            median(walls) as f64 / 1000.0,
            median(cpus) as f64 / 1000.0
        );
    }
}

fn main() {
    if let Ok(args) = std::env::var("TRELLIS_BENCH_CLI_CHILD") {
        let (work, id) = args.split_once(' ').unwrap();
        cli_build(Path::new(work), id);
        return;
    }
    if let Ok(args) = std::env::var("TRELLIS_BENCH_CLI") {
        let fields: Vec<&str> = args.split(' ').collect();
        let spec = SynthSpec { plugins: fields[1].parse().unwrap(), versions: fields[2].parse().unwrap(), seed: 42 };
        cli_builds(Path::new(fields[0]), spec);
        return;
    }
    if let Ok(args) = std::env::var("TRELLIS_BENCH_CHILD_PREPARE") {
        let fields: Vec<&str> = args.split(' ').collect();
        let spec = SynthSpec { plugins: fields[1].parse().unwrap(), versions: fields[2].parse().unwrap(), seed: 42 };
        prepare_child_input(Path::new(fields[0]), spec);
        return;
    }
    if let Ok(child_args) = std::env::var("TRELLIS_BENCH_CHILD") {
        let fields: Vec<&str> = child_args.split(' ').collect();
        let spec = SynthSpec { plugins: fields[1].parse().unwrap(), versions: fields[2].parse().unwrap(), seed: 42 };
        child(Path::new(fields[0]), spec, fields[3].parse().unwrap());
        return;
    }
    let plugins = arg(1, 100_000) as usize;
    let versions = arg(2, 10) as usize;
    let bin_bits = arg(3, 12) as u32;
    let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let work = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    // `TRELLIS_BENCH_KEEP`: leave the registry and site behind (to profile a child
    // build with `TRELLIS_BENCH_CHILD="DIR PLUGINS VERSIONS N"`); delete it after use.
    let work = if std::env::var_os("TRELLIS_BENCH_KEEP").is_some() {
        let kept = work.keep();
        println!("kept {}", kept.display());
        Kept::Dir(kept)
    } else {
        Kept::Temp(work)
    };
    let durability =
        if std::env::var_os("BENCH_NO_FSYNC").is_some() { Durability::OsBuffered } else { Durability::Fsync };
    let mut synth_site = SynthSite::init(work.path(), bin_bits, now).unwrap().with_durability(durability);
    let site_dir = synth_site.site_dir.clone();
    let with_stats = std::env::var_os("TRELLIS_BENCH_STATS").is_some();

    let started = Instant::now();
    let spec = SynthSpec { plugins, versions, seed: 42 };
    let plan = synth::plan(spec);
    let stats = synth::shape(&plan);
    let target = grown_target(&plan).clone();
    synth_site.known = plan.iter().map(|p| p.id.clone()).collect();
    std::fs::write(work.path().join(CHILD_INPUT), serde_json::to_vec(&ChildInput::of(&plan)).unwrap()).unwrap();
    if with_stats {
        let counted = write_stats(&synth_site.registry.dir, &plan);
        println!("stats/downloads.json: {counted} plugins downloaded in the 60 days before the build");
    }
    let inputs: Vec<_> = plan.into_iter().map(synth::plugin_input).collect();
    println!("generated {stats:?} in {:.2?}", started.elapsed());

    let started = Instant::now();
    let full = synth_site.build(inputs, Scope::Full).unwrap();
    let full_time = started.elapsed();
    println!(
        "full build: {} plugins, {} releases, {} files written in {:.2?}",
        full.plugins,
        full.releases,
        full.written.len(),
        full_time
    );
    println!(
        "  of which security levels: {} releases assessed in {} ms, {} buckets bytes",
        full.levels.releases, full.levels.millis, full.levels.bytes
    );
    println!("  of which prefetch hints: {} ms", full.hints.millis);

    // One new release of a mid-popularity plugin with dependencies.
    let changed = grown(&target, 0);
    let scope = Scope::Plugins(BTreeSet::from([changed.id.clone()]));
    let started = Instant::now();
    let incremental = synth_site.build(vec![changed], scope).unwrap();
    let incremental_time = started.elapsed();
    println!(
        "incremental build (+1 release of {}): {} files written in {:.2?}: {:?}",
        target.id,
        incremental.written.len(),
        incremental_time,
        incremental.written
    );
    println!(
        "  of which security levels: {} releases assessed in {} ms",
        incremental.levels.releases, incremental.levels.millis
    );
    println!(
        "  of which prefetch hints: {} ms, {} published docs read",
        incremental.hints.millis, incremental.hints.docs_read
    );
    println!("speed-up: {:.0}x", full_time.as_secs_f64() / incremental_time.as_secs_f64());
    fresh_process_builds(work.path(), plugins, versions);

    // Sizes.
    let metadata = site_dir.join(site::METADATA_DIR);
    let snapshot_file = site::metadata_file(&site_dir, "snapshot", incremental.snapshot_version);
    let snapshot: Envelope<Snapshot> = serde_json::from_slice(&std::fs::read(&snapshot_file).unwrap()).unwrap();
    let bin_sizes: Vec<u64> = snapshot
        .signed
        .meta
        .iter()
        .filter(|(name, _)| name.starts_with("bin-"))
        .map(|(name, meta)| size(&metadata.join(format!("{}.{name}", meta.version))))
        .collect();
    // The signed docs, not their aliases (the same bytes again).
    let alias_dir = site_dir.join(site::TARGETS_DIR).join(site::INDEX_ALIAS_DIR);
    let index_sizes: Vec<u64> = std::fs::read_dir(site_dir.join("targets/index"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|shard| shard.path() != alias_dir)
        .flat_map(|shard| walk(&shard.path()))
        .collect();
    println!("timestamp.json: {} bytes", size(&site::timestamp_file(&site_dir)));
    println!("snapshot: {} bytes ({} roles)", size(&snapshot_file), snapshot.signed.meta.len());
    println!(
        "targets.json: {} bytes; bins.json: {} bytes",
        size(&metadata.join("1.targets.json")),
        size(&metadata.join("1.bins.json"))
    );
    println!(
        "bin: median {} bytes, max {} bytes ({} bins)",
        median(bin_sizes.clone()),
        bin_sizes.iter().max().unwrap_or(&0),
        bin_sizes.len()
    );
    println!("index doc: median {} bytes over {} docs", median(index_sizes.clone()), index_sizes.len());

    // Cold request count: a client holding root v1 reaches one index doc.
    let server = Server::start(&site_dir, "127.0.0.1:0".parse().unwrap()).unwrap();
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let get = |path: &str| {
        let mut response = agent.get(&format!("{}{path}", server.url())).call().unwrap();
        (response.status().as_u16(), response.body_mut().with_config().limit(1 << 28).read_to_vec().unwrap())
    };
    let mut bytes = 0usize;
    let (status, body) = get("metadata/2.root.json");
    assert_eq!(status, 404);
    bytes += body.len();
    let (_, ts) = get("metadata/timestamp.json");
    bytes += ts.len();
    let ts: serde_json::Value = serde_json::from_slice(&ts).unwrap();
    let snapshot_version = ts["signed"]["meta"]["snapshot.json"]["version"].as_u64().unwrap();
    let (_, snap) = get(&format!("metadata/{snapshot_version}.snapshot.json"));
    bytes += snap.len();
    let snap: Envelope<Snapshot> = serde_json::from_slice(&snap).unwrap();
    let version = |role: &str| snap.signed.meta[&format!("{role}.json")].version;
    for role in ["targets", "bins"] {
        bytes += get(&format!("metadata/{}.{role}.json", version(role))).1.len();
    }
    let index = site::index_target(&target.id);
    let bin = site::bin_for_target(&index, bin_bits, "bin");
    let (_, bin_bytes) = get(&format!("metadata/{}.{bin}.json", version(&bin)));
    bytes += bin_bytes.len();
    let bin_doc: Envelope<Targets> = serde_json::from_slice(&bin_bytes).unwrap();
    let sha: trellis_schema::Sha256 = bin_doc.signed.targets[&index].hashes["sha256"].parse().unwrap();
    let (status, doc) = get(&format!("targets/{}", site::hashed_target_path(&index, &sha)));
    assert_eq!((status, trellis_schema::Sha256::of(&doc)), (200, sha));
    bytes += doc.len();
    println!(
        "cold path to one index doc: {} requests, {bytes} bytes (root check, timestamp, snapshot, targets, bins, bin, index doc)",
        server.requests()
    );
}

/// The bench's work directory: removed at the end unless kept.
enum Kept {
    Temp(tempfile::TempDir),
    Dir(std::path::PathBuf),
}

impl Kept {
    fn path(&self) -> &Path {
        match self {
            Self::Temp(dir) => dir.path(),
            Self::Dir(dir) => dir,
        }
    }
}

fn walk(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(size(&path)) }
    }
    out
}
