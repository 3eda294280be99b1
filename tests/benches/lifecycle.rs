//! Lifecycle figures on the 100k-plugin synthetic registry (trellis-index synth,
//! [`SynthSite::hybrid_input`]): every plugin × 10 releases as signed metadata, real
//! signed packages for the plugins the figures touch, served on loopback by the
//! counting fault server:
//!
//! 1. cold install of a plugin whose dependency graph has about 30 nodes, in a fresh
//!    child process: requests, the round trips of the critical path, bytes, wall
//!    time, peak RSS (VmHWM of the child), and the critical path request by request;
//!    at each latency, then again in the strict order (`MetadataOrder::Strict`, no
//!    package before consent: the client before speculation), then with the index
//!    doc aliases not served (a mirror without them);
//! 2. warm re-resolve: the same install again in a new store over the warm data dir
//!    (one conditional request for timestamp.json, everything else from the trusted
//!    metadata and the cache): median and p95 over `TRELLIS_BENCH_WARM_RUNS` runs;
//! 3. update of 100 installed plugins when 10 have new releases (an incremental
//!    build publishes them): requests, bytes, time; then the no-op update check.
//!
//! Run: `cargo bench -p trellis-tests --bench lifecycle`. Environment:
//! `TRELLIS_BENCH_LATENCIES_MS` (per-request latencies of the cold installs, default
//! `0,25,100`), `TRELLIS_BENCH_COLD_ONLY` (stop after the cold installs),
//! `TRELLIS_BENCH_PLUGINS` (default 100000), `TRELLIS_BENCH_VERSIONS` (10),
//! `TRELLIS_BENCH_BIN_BITS` (12), `TRELLIS_BENCH_WARM_RUNS` (50), `BENCH_DIR` (where
//! the registry, site and data dirs go; default the system temp dir: put it on a real
//! disk, where the client's barriers cost what they cost users),
//! `TRELLIS_BENCH_TMPFS_DATA` (default `/dev/shm` when it exists; empty for none): the
//! cold installs are run again with the data dir there, the tmpfs figure beside the
//! disk one.
//!
//! Round trips of the cold install's critical path (counted by the fault server from
//! request timings: at 25 and 100 ms per request the machine's load hardly moves them;
//! 2-core machine shared with four builds, load average 13–18): on 10k plugins 8 (strict order 15, without aliases 14), 185 requests; on
//! 100k 11 (strict order 18; 10 and 17 since, below), 187 requests, 1.6 s at 100 ms per request. The first
//! refresh (`add_registry`) is one of them: the timestamp, the root probe and the
//! unversioned `snapshot.json` and `targets.json` together (three before the builder
//! published those copies: 10 and 13 round trips).
//!
//! On the quiet machine (2026-12-02, load 1–2, data dir on the VM's disk, three runs):
//! 100k, 11–13 round trips, 452–584 ms at 25 ms per request, 1.22–1.56 s at 100 ms
//! (strict order: 18, 0.61–1.10 s and 1.97–2.16 s): beyond the latency, 0.12–0.46 s of
//! the client's own time, mostly its barriers on this disk.
//!
//! Since a wave loads up to 32 of its bins and publisher bins at once
//! (`DELEGATION_DOWNLOADS`; one level of this graph on 100k needs 17, and the 17th
//! cost a round trip of its own at 16 at once): 100k, 10 round trips in every run
//! (strict order 17), 187 requests. Side by side with the code before (2026-12-02,
//! `TRELLIS_BENCH_BASELINE`, 3 runs each, load 7.3–7.5, data dir on the VM's disk):
//! round trips 10, 10, 10 against 12, 11, 11 at 25 ms and 10, 10, 10 against 11, 11, 11
//! at 100 ms; child CPU 170–340 ms against 160–320 ms at 25 ms, 200–290 against
//! 290–470 at 100 ms; wall 1.17–2.61 s against 1.78–7.76 s at 25 ms, 1.35–2.24 s
//! against 1.44–12.07 s at 100 ms: under that load (the build's writeback: `sync`
//! after it took 12 s) the barriers decide the wall time, not the round trips. The
//! single runs after them: 509 ms at 25 ms, 1,443 ms at 100 ms, 140–150 ms CPU.
//! `TRELLIS_BENCH_TIMELINE` prints each cold install's requests (arrival and answer,
//! by round trip); `TRELLIS_BENCH_PERF=<dir>` records each cold install's child with
//! `perf record -g --call-graph dwarf` into `<dir>`.
//!
//! `TRELLIS_BENCH_STRACE` runs each cold install under strace and places its barriers
//! against the requests in flight (`trellis_tests::strace`); `TRELLIS_BENCH_BASELINE`
//! (another build of this bench) installs in turn with this one, `TRELLIS_BENCH_COLD_RUNS`
//! times at each latency, who goes first alternating by round; every cold install's data
//! dir is kept until the cold installs are done (deleting each made every later run's
//! file creation dearer on ext4, a drift that favoured whichever build ran first).
//! 100k, data dir on the VM's disk, side by side with the code before the one-write
//! commit and the shared pin flush (2026-12-02, load 11–12, the disk shared with three
//! builds): the add_registry + install child makes 16 barriers
//! (14 fsync, 2 syncfs; 6 of them the install's) instead of 82 (80 fsync, 2 syncfs);
//! its fsyncs take 19–160 ms instead of 83–480 ms; wall 566–1142 ms at 25 ms (baseline
//! 762–908), 1.73–2.26 s at 100 ms (baseline 1.55–2.34 s), 11–15 round trips either
//! way: under that load the two `syncfs` calls (10–544 ms, in both builds) flush the
//! other writers' data too and decide the wall time.

//!
//! Every cold-install line splits the child's time into `Store::open`, `add_registry`
//! and `install` (process start not counted) and gives the client's own time after the
//! last answer; `TRELLIS_BENCH_TIMELINE` places the child's phases (the install's
//! reporter events) among the requests and gives each round trip's gap since the last
//! answer before it, `TRELLIS_BENCH_STRACE_LOG=<prefix>` keeps each traced child's
//! raw log with its renames and connects. Main's timeline at 25 ms (2026-12-02, load
//! ~4, one run, 12 round trips, 567 ms = open 10 + add_registry 84 + install 471):
//! add_registry's durable writes (root, config) run before its first request (17 ms);
//! 53 ms between add_registry's last answer and the install's first request (its
//! metadata verified and stored with their barriers, then the updater reopened); 2–6
//! ms between the install's round trips (~40 ms in all); 46 ms after the last answer
//! (verification of the envelopes and the pins' `syncfs` ~22, packages from the cache
//! and extraction ~10, the commit's `syncfs` and directory sync ~13). Since the pins
//! advance in the commit, the install makes one `syncfs`, 5 barriers instead of 6.
//! Since the updater checks from the chain it verified last (`Updater::current_chain`),
//! the install after `add_registry` no longer reads and parses the stored snapshot and
//! top-level targets twice (the hint, then the `304`). Side by side with the code
//! before (2026-12-02, `TRELLIS_BENCH_BASELINE` = main's bench, 3 runs each, data dir
//! on the VM's disk, load 12.7–13.9): 187 requests and 10 round trips in both builds
//! but baseline run 1 at 25 ms (14); at 25 ms child CPU 140/160/190 ms (baseline
//! 150/170/160), wall 614/697/902 ms (baseline 1723/538/639), 105/183/231 ms after
//! the last answer (965/102/135); at 100 ms 220/260/300 ms CPU (200/260/240), wall
//! 1548/1661/1698 ms (1523/1567/1593): at that load the disk and the scheduler
//! decide, and the few ms of parsing saved were below the 10 ms CPU tick the child
//! reported then (it reports its CPU to the millisecond since).
//!
//! 2026-12-03, a fresh VM (`/work/notes/lead-s27.md`): the first cold install on disk
//! of a bench process, 10 round trips: 377 ms at 25 ms per request (open 1 +
//! add_registry 38 + install 337; 127 ms of the client's own: 12.7 ms storing the
//! first refresh, 41 ms between the install's round trips, 31 ms after the last
//! answer: extraction 11, the commit 12), 1,115 ms at 100 ms. Then a cold install with
//! consent in advance journals its batch while another thread verifies the envelopes
//! (the journal's barriers ran after the last round trip, which carries the envelopes
//! of the graph's deepest level) and extracts on up to 4 threads: side by side with
//! the code before (`TRELLIS_BENCH_BASELINE`, 4 rounds each, load ~0.8), the time
//! after the last answer 34/48/65/65 ms against 39/44/67/134 at 25 ms and
//! 106/137/137/169 against 128/198/243/256 at 100 ms; wall 394/436/459/471 against
//! 482/415/444/556 ms at 25 ms, 1352/1363/1376/1419 against 1291/1403/1494/1515 ms at
//! 100 ms. **Every child of one bench process is dearer than the one before** (child
//! CPU 180 → 348 ms over four rounds, in both builds): on this VM's ext4, file creation
//! skips inodes deleted in the last minutes (`recently_deleted`, `find_inode_bit`: 30%
//! and 25% of a creation probe's samples), and each round deletes the data dirs of the
//! last; 3,000 creations took 0.1 s on a settled file system and 1.5–3.1 s after a
//! clean-up. Compare builds within a round, and start a bench only once creation is
//! cheap again (minutes after any large deletion, the storefront bench's above all).
//!
//! **Connections.** Since 2026-12-03 the fault server keeps connections open between
//! requests (`FaultServer::set_keep_alive`), as GitHub Pages and CDNs do, and the
//! client reuses them from wave to wave: 187 requests over 39 connections (188 over 36
//! without aliases), where one request per connection (`TRELLIS_BENCH_CLOSE`, the
//! server before) opened 187, in bursts of up to 38. Side by side
//! (`TRELLIS_BENCH_CONNECTIONS_SIDE_BY_SIDE`, 3 runs each, quiet VM, data dir on disk):
//! kept alive 372/330/325 ms at 25 ms per request against 354/342/333 ms, 1076/1079/1074
//! ms at 100 ms against 1082/1081/1078, 10–11 round trips either way, child CPU 91–102
//! ms against 90–100: on loopback a connection costs no round trip, and the latency
//! model delays answers only, so neither mode charges the handshake a real new
//! connection costs. The same day the server stopped copying each body while holding
//! its lock (bodies are shared, `Arc<[u8]>`): probed, a few answers of a burst of ~40
//! had spent 19–42 ms of the server's own time between their latency sleep and their
//! first byte, one request a round in rounds 5–7 of the 25 ms install starting or
//! ending ~20 ms late; after the change one answer still spent 19 ms so (and one 7.5 ms
//! hashing a 3 KB body: preempted), so the lock was not the only cause: the client and
//! the server share this VM's two cores. Cold installs at 25 ms were 389–457 ms in the
//! runs of that morning and 325–372 ms after (not side by side: the server is the
//! bench's own).
//!
//! With the index docs' prefetch hints (2026-12-04; each doc names its likely
//! release's dependency closure, which the client fetches with the next wave), side by
//! side with the code before (`TRELLIS_BENCH_BASELINE`, 3 rounds alternating, data
//! dir on the VM's disk, load ~2): **6 round trips against 10**; at 25 ms per request
//! 225/224/258 ms against 444/356/496; at 100 ms 685/679/675 ms against
//! 1,133/1,087/1,086; 187 requests in both; child CPU 107–152 ms against 114–175. The
//! single runs after them: 233 ms at 25 ms, 686 ms at 100 ms (tmpfs data dir 219 and
//! 668); strict order 13 round trips; without aliases 9 (a round trip for the first
//! docs' bins, then the same two waves).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a bench binary reports on stdout

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trellis_client::hooks::NoHooks;
use trellis_client::resolve::HostApp;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_client::trust::MetadataOrder;
use trellis_index::build::Scope;
use trellis_index::synth::{self, SynthPlugin, SynthSite, SynthSpec};
use trellis_schema::PluginId;
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

/// Agrees to everything when asked, but does not say so in advance: an install then
/// downloads no package before its consent step (what an interactive user gets).
struct AgreeWhenAsked;

impl trellis_client::store::Consent for AgreeWhenAsked {
    fn agree(&self, _disclosure: &trellis_client::consent::Disclosure) -> bool {
        true
    }
}

/// User + system CPU time of this process so far (every thread, ended ones too), in
/// milliseconds: `CLOCK_PROCESS_CPUTIME_ID` (nanoseconds; the 10 ms clock ticks of
/// `/proc/self/stat` it replaces hid changes of a few ms). 0 where there is no such clock.
#[cfg(unix)]
fn cpu_ms() -> u64 {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(spent.tv_sec).unwrap_or(0) * 1000 + u64::try_from(spent.tv_nsec).unwrap_or(0) / 1_000_000
}

#[cfg(not(unix))]
fn cpu_ms() -> u64 {
    0
}

/// Seconds since the Unix epoch (the clock the parent places the child's phases on).
fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The child's phases for the timeline (`TRELLIS_BENCH_TIMELINE`): the first and the
/// last event of each kind the install reports, with the epoch time it came.
#[derive(Default)]
struct PhaseReporter {
    seen: std::sync::Mutex<BTreeMap<&'static str, (f64, f64, usize)>>,
}

impl trellis_client::events::Reporter for PhaseReporter {
    fn report(&self, event: trellis_client::events::Event) {
        use trellis_client::events::Event;
        let kind = match event {
            Event::Resolving { .. } => "resolving",
            Event::Resolved { .. } => "resolved",
            Event::Downloading { .. } => "downloading",
            Event::Verifying { .. } => "verifying",
            Event::Extracting { files_done: 0, .. } => "extracting",
            Event::Extracting { .. } => "extracted",
            Event::Activating { .. } => "activating",
            Event::Done { .. } => "done",
            _ => "other",
        };
        let now = epoch_now();
        let mut seen = self.seen.lock().unwrap();
        let entry = seen.entry(kind).or_insert((now, now, 0));
        entry.1 = now;
        entry.2 += 1;
    }
}

/// The child: one cold install; prints `elapsed_ms installed peak_kib cpu_ms open_ms
/// add_registry_ms install_ms` (the three phases of `elapsed_ms`: `Store::open`,
/// `add_registry`, `install`; process start is not counted). With `strict`, metadata in
/// the spec's order ([`MetadataOrder::Strict`]) and no package before consent: the
/// client as it was before speculation. On stderr, `phase <epoch> <first|last> <name>
/// <count>` lines for the timeline.
fn child(data: &str, url: &str, root: &str, id: &str, strict: bool) {
    let (start, start_epoch) = (Instant::now(), epoch_now());
    let mut options = options();
    if strict {
        options.metadata_order = MetadataOrder::Strict;
    }
    let mut store = Store::open(data, options).unwrap();
    let opened = start.elapsed();
    let opened_epoch = epoch_now();
    store.add_registry("synth", url, &std::fs::read(root).unwrap()).unwrap();
    let added = start.elapsed();
    let added_epoch = epoch_now();
    let phases = std::sync::Arc::new(PhaseReporter::default());
    let session = if strict { Session::new(&NoHooks, &AgreeWhenAsked) } else { Session::new(&NoHooks, &AlwaysAgree) };
    let session = session.with_reporter(phases.clone());
    let report = store.install(&[parse_requirement(id).unwrap()], &session).unwrap();
    let elapsed = start.elapsed();
    let end_epoch = epoch_now();
    drop(store);
    let dropped_epoch = epoch_now();
    println!(
        "{} {} {} {} {} {} {}",
        elapsed.as_millis(),
        report.installed.len(),
        peak_rss_kib(),
        cpu_ms(),
        opened.as_millis(),
        (added - opened).as_millis(),
        (elapsed - added).as_millis()
    );
    let mut phases: Vec<(f64, String)> = phases
        .seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(kind, (first, last, n))| {
            [(*first, format!("first {kind} ({n})")), (*last, format!("last {kind} ({n})"))]
        })
        .collect();
    phases.extend([
        (start_epoch, "child: Store::open".to_owned()),
        (opened_epoch, "child: add_registry".to_owned()),
        (added_epoch, "child: install".to_owned()),
        (end_epoch, "child: install returned".to_owned()),
        (dropped_epoch, "child: store dropped".to_owned()),
    ]);
    for (at, name) in phases {
        eprintln!("phase {at:.6} {name}");
    }
}

/// The install target: the plugin nearest the middle of the registry whose fresh
/// install brings in 30 plugins (or the closest count found), with that graph.
/// One cold install of `target` in a child process (data dir `data`) at `latency_ms` per
/// request, the server's counters reset first: `[elapsed_ms, installed, peak_kib,
/// cpu_ms]`. With `strace` (`TRELLIS_BENCH_STRACE`), the child runs under it and its
/// durability barriers are reported against the requests in flight.
/// What every cold install of a run shares: the root file, the plugin to install, and
/// strace when the barriers are traced (`TRELLIS_BENCH_STRACE`).
#[derive(Clone, Copy)]
struct ColdInstall<'a> {
    root: &'a Path,
    target: &'a str,
    strace: Option<&'a Path>,
}

/// `open X + add_registry Y + install Z ms` from a child's fields (a baseline child
/// from before the split prints only the total).
fn phase_split(fields: &[u64]) -> String {
    match fields.get(4..7) {
        Some([open, add, install]) => format!("open {open} + add_registry {add} + install {install} ms"),
        _ => "no split".to_owned(),
    }
}

/// The child's time from the last answer the server wrote to the end of its install
/// (`install` returned): the client's own time after the network was done.
fn after_last_answer(server: &FaultServer) -> String {
    let guard = LAST_PHASES.lock().unwrap();
    let Some((clock, phases)) = guard.as_ref() else { return "no phases".to_owned() };
    let last = server.spans().iter().map(|s| clock.epoch(s.1)).fold(f64::NEG_INFINITY, f64::max);
    match phases.iter().find(|(_, name)| name == "child: install returned") {
        Some((end, _)) => format!("{:.0} ms after the last answer", (end - last) * 1e3),
        None => "no phases".to_owned(),
    }
}

/// The clock and the phases (epoch, name) of the last cold install's child, for
/// [`report_timeline`].
#[allow(clippy::type_complexity)]
static LAST_PHASES: std::sync::Mutex<Option<(trellis_tests::strace::Clock, Vec<(f64, String)>)>> =
    std::sync::Mutex::new(None);

fn cold_install(
    server: &FaultServer,
    run: &ColdInstall<'_>,
    latency_ms: u64,
    data: &Path,
    strict: bool,
    exe: Option<&Path>,
) -> Vec<u64> {
    let ColdInstall { root, target, strace } = *run;
    server.set_latency(Duration::from_millis(latency_ms));
    server.reset_counters();
    let log = tempfile::NamedTempFile::new().unwrap();
    // `TRELLIS_BENCH_PERF=<dir>`: the child of each cold install on disk runs under
    // `perf record -g --call-graph dwarf`, its profile written to `<dir>/cold-<latency>ms.data`.
    let perf = std::env::var_os("TRELLIS_BENCH_PERF").filter(|_| strace.is_none() && exe.is_none());
    let exe = exe.map_or_else(|| std::env::current_exe().unwrap(), Path::to_owned);
    let mut command = match (strace, perf) {
        (Some(strace), _) => {
            let mut command = std::process::Command::new(strace);
            command
                .args(["-f", "-qq", "-ttt", "-T", "-y", "--seccomp-bpf", "-e"])
                .arg(match std::env::var_os("TRELLIS_BENCH_STRACE_LOG") {
                    // The raw log kept for reading by hand, with the calls that place the
                    // client's own steps among the barriers (renames: every state and
                    // metadata write; connect: every new connection; sendto: every request).
                    Some(_) => {
                        format!("trace={},rename,renameat,renameat2,connect,sendto", trellis_tests::strace::TRACED)
                    }
                    None => format!("trace={}", trellis_tests::strace::TRACED),
                })
                .arg("-o")
                .arg(log.path())
                .arg("--")
                .arg(exe);
            command
        }
        (None, Some(dir)) => {
            let mut command = std::process::Command::new("perf");
            command
                .args(["record", "-q", "-g", "--call-graph", "dwarf,16384", "-F", "2000", "-o"])
                .arg(Path::new(&dir).join(format!("cold-{latency_ms}ms{}.data", if strict { "-strict" } else { "" })))
                .arg("--")
                .arg(exe);
            command
        }
        (None, None) => std::process::Command::new(exe),
    };
    let clock = trellis_tests::strace::Clock::now();
    let out = command
        .args(["--child", data.to_str().unwrap(), &server.url(), root.to_str().unwrap(), target])
        .arg(if strict { "strict" } else { "speculative" })
        .output()
        .unwrap();
    let ended = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let phases = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("phase "))
        .filter_map(|l| l.split_once(' ').and_then(|(at, name)| Some((at.parse().ok()?, name.to_owned()))))
        .collect();
    if strace.is_some() {
        report_barriers(server, &clock, ended, &std::fs::read_to_string(log.path()).unwrap());
        // `TRELLIS_BENCH_STRACE_LOG=<prefix>`: each traced child's raw log, kept as
        // `<prefix>-<n>` (n counting the traced installs of the run from 1).
        if let Some(keep) = std::env::var_os("TRELLIS_BENCH_STRACE_LOG") {
            static TRACED_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = TRACED_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let mut keep = keep;
            keep.push(format!("-{n}"));
            std::fs::copy(log.path(), keep).unwrap();
        }
    }
    *LAST_PHASES.lock().unwrap() = Some((clock, phases));
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|f| f.parse().ok()).collect()
}

/// The barriers of one traced cold install against the requests in flight, and the
/// time no request was in flight (the client's own time on the critical path).
fn report_barriers(server: &FaultServer, clock: &trellis_tests::strace::Clock, ended: Instant, log: &str) {
    let barriers = trellis_tests::strace::parse(log);
    let spans: Vec<(f64, f64)> = server.spans().iter().map(|(a, b, _)| (clock.epoch(*a), clock.epoch(*b))).collect();
    let placed = trellis_tests::strace::place(&barriers, &spans);
    let (first, last) = spans.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(f, l), s| (f.min(s.0), l.max(s.1)));
    let (start, end) = (clock.epoch(clock.instant()), clock.epoch(ended));
    let busy = trellis_tests::strace::place(
        &[trellis_tests::strace::Barrier {
            start,
            duration: end - start,
            call: String::new(),
            argument: String::new(),
        }],
        &spans,
    );
    let mut calls: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for barrier in &barriers {
        let entry = calls.entry(barrier.call.as_str()).or_default();
        entry.0 += 1;
        entry.1 += barrier.duration;
    }
    let by_call: Vec<String> = calls.iter().map(|(call, (n, t))| format!("{n} {call} {:.1} ms", t * 1000.0)).collect();
    println!(
        "  barriers (strace): {} calls, {:.1} ms ({}); {} with no request in flight, {:.1} ms of barrier time so; \
         {} after the last answer, {:.1} ms",
        placed.count,
        placed.total * 1000.0,
        by_call.join(", "),
        placed.critical_count,
        placed.critical * 1000.0,
        placed.after_last_answer_count,
        placed.after_last_answer * 1000.0
    );
    println!(
        "  no request in flight: {:.0} ms of the child's {:.0} ms (before the first request {:.0} ms, after the last \
         answer {:.0} ms)",
        busy.critical * 1000.0,
        (end - start) * 1000.0,
        (first - start) * 1000.0,
        (end - last) * 1000.0
    );
}

fn pick_target(plan: &[SynthPlugin]) -> (usize, Vec<usize>) {
    let mut best: Option<(usize, Vec<usize>)> = None;
    let middle = plan.len() / 2;
    for offset in 0..plan.len() {
        let index = if offset % 2 == 0 { middle + offset / 2 } else { middle.wrapping_sub(offset / 2 + 1) };
        let Some(nodes) = plan.get(index).and_then(|_| synth::closure(plan, index, 60)) else { continue };
        if best.as_ref().is_none_or(|(_, b)| nodes.len().abs_diff(30) < b.len().abs_diff(30)) {
            best = Some((index, nodes));
        }
        if best.as_ref().is_some_and(|(_, b)| b.len() == 30) || offset > 20_000 {
            break;
        }
    }
    best.expect("a plan with plugins")
}

/// The 100 plugins to install for the update figure: plugins without dependencies in
/// their newest stable release, spread evenly over the registry (so over many bins
/// and publishers).
fn pick_installed(plan: &[SynthPlugin], count: usize, exclude: &BTreeSet<usize>) -> Vec<usize> {
    let candidates: Vec<usize> = (1..plan.len())
        .filter(|i| !exclude.contains(i))
        .filter(|&i| synth::newest_stable(&plan[i]).is_some_and(|r| r.dependencies.is_empty()))
        .collect();
    let step = (candidates.len() / count).max(1);
    candidates.into_iter().step_by(step).take(count).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { walk(&path, out) } else { out.push(path) }
    }
}

/// Serves `files` (relative to `site`).
fn put_files(server: &FaultServer, site: &Path, files: impl IntoIterator<Item = PathBuf>) {
    for path in files {
        let relative = path.strip_prefix(site).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(site.join(&relative)).unwrap());
    }
}

/// (median, p95, min, max).
fn spread(mut samples: Vec<Duration>) -> (Duration, Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), samples[0], samples[samples.len() - 1])
}

/// Requests and body bytes per kind of file (sizes from the site; `304`s and `404`s
/// carry no body).
fn report_hits(server: &FaultServer, site: &Path) {
    let mut kinds: BTreeMap<&str, (usize, usize, u64)> = BTreeMap::new();
    for hit in server.hits() {
        let kind = if hit.path.starts_with("/metadata/") {
            if hit.path.contains(".bin-") {
                "metadata: hash bins"
            } else if hit.path.contains(".pub-") {
                "metadata: publisher bins"
            } else if hit.path.contains(".publishers.") {
                "metadata: publishers role"
            } else {
                "metadata: other roles"
            }
        } else if hit.path.ends_with(".zip") {
            "packages"
        } else if hit.path.ends_with(".dsse") {
            "signature envelopes"
        } else if hit.path.starts_with("/targets/index/alias/") {
            "index doc aliases"
        } else if hit.path.starts_with("/targets/index/") {
            "index docs"
        } else {
            "publisher records, blocklist"
        };
        let entry = kinds.entry(kind).or_default();
        entry.0 += 1;
        if hit.status == 200 {
            entry.2 += std::fs::metadata(site.join(hit.path.trim_start_matches('/'))).map(|m| m.len()).unwrap_or(0);
        } else {
            entry.1 += 1;
        }
    }
    for (kind, (count, not_ok, bytes)) in &kinds {
        println!(
            "  {kind}: {count} request(s){}, {bytes} body bytes",
            if *not_ok > 0 { format!(" ({not_ok} not 200)") } else { String::new() }
        );
    }
}

/// Every request of the last cold install (`TRELLIS_BENCH_TIMELINE`), grouped by the
/// round trip it started in (a request starts a new one when it arrives after an answer
/// of the round trip before): arrival and answer times from the first arrival.
/// The child's phases are placed among the requests (`--` lines, from the child's
/// reporter and its `Store::open` / `add_registry` / `install` marks), and each round
/// trip's first request is given with the gap since the round before's last answer
/// (the client's own time on the critical path between them).
fn report_timeline(server: &FaultServer) {
    let Some((clock, phases)) = LAST_PHASES.lock().unwrap().take() else { return };
    let spans = server.spans();
    let Some(first) = spans.first().map(|s| clock.epoch(s.0)) else { return };
    let ms = |epoch: f64| (epoch - first) * 1e3;
    let mut phases = phases;
    phases.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut phases = phases.into_iter().peekable();
    let mut round = 0;
    let (mut round_end, mut next_end) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut last_answer = f64::NEG_INFINITY;
    for (start, end, path) in &spans {
        let (start, end) = (clock.epoch(*start), clock.epoch(*end));
        while let Some((at, name)) = phases.next_if(|(at, _)| *at <= start) {
            println!("    --   {:7.1}          {name}", ms(at));
        }
        if start >= next_end && start > round_end {
            round += 1;
            if round > 1 {
                println!(
                    "    round trip {round}: first request {:.1} ms after the last answer of round trip {}",
                    (start - next_end) * 1e3,
                    round - 1
                );
            }
            round_end = next_end.max(start);
        }
        next_end = next_end.max(end);
        last_answer = last_answer.max(end);
        println!("    [{round:2}] {:7.1} {:7.1} ms  {path}", ms(start), ms(end));
    }
    for (at, name) in phases {
        println!("    --   {:7.1}          {name} ({:+.1} ms after the last answer)", ms(at), (at - last_answer) * 1e3);
    }
}

/// The critical path, round trip by round trip: the kind of request the chain waits
/// for at each (one of those sent together).
fn report_chain(server: &FaultServer) {
    let kinds: Vec<String> = server
        .critical_chain()
        .iter()
        .map(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            let name = name.split_once('.').filter(|(h, _)| h.len() == 64).map_or(name, |(_, rest)| rest);
            if path.contains("/index/alias/") { format!("alias {name}") } else { name.to_owned() }
        })
        .collect();
    println!("  critical path: {}", kinds.join(" → "));
}

/// Where a warm re-resolve spends its time in the trust layer: opening the trusted
/// state, the one-request update check, and the delegation walk to each index doc of
/// the graph (bins read back from the trusted store).
fn warm_breakdown(data: &tempfile::TempDir, server: &FaultServer, plan: &[SynthPlugin], graph: &[usize]) {
    use std::sync::Arc;
    use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
    let dir = trellis_client::state::DataDir::new(data.path()).metadata_dir(&"synth".parse().unwrap());
    let (mut open, mut check, mut walk) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let mirrors =
            Mirrors::new(Arc::new(AnyTransport::new(HttpOptions::default())), vec![Mirror::site(&server.url())]);
        let start = Instant::now();
        let mut updater = trellis_client::trust::Updater::new(&dir, mirrors).unwrap();
        open.push(start.elapsed());
        let start = Instant::now();
        updater.check_for_updates().unwrap();
        check.push(start.elapsed());
        let start = Instant::now();
        for &i in graph {
            updater.target_info(&trellis_schema::target::index_target(&plan[i].id)).unwrap().unwrap();
        }
        walk.push(start.elapsed());
    }
    println!(
        "  trust layer, medians: open {:.2?}, update check {:.2?}, delegation walk to {} index docs {:.2?}",
        spread(open).0,
        spread(check).0,
        graph.len(),
        spread(walk).0
    );
    let (mut open, mut blocklist) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let start = Instant::now();
        let mut store = Store::open(data.path(), options()).unwrap();
        open.push(start.elapsed());
        let start = Instant::now();
        store.remotes().unwrap().blocklist().unwrap();
        blocklist.push(start.elapsed());
    }
    println!(
        "  store, medians: open {:.2?}, registries + update check + blocklist {:.2?}",
        spread(open).0,
        spread(blocklist).0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2], &args[i + 3], &args[i + 4], args.get(i + 5).is_some_and(|a| a == "strict"));
        return;
    }
    let spec = SynthSpec {
        plugins: env_or("TRELLIS_BENCH_PLUGINS", 100_000),
        versions: env_or("TRELLIS_BENCH_VERSIONS", 10),
        seed: 7,
    };
    let bin_bits = env_or("TRELLIS_BENCH_BIN_BITS", 12) as u32;
    let warm_runs = env_or("TRELLIS_BENCH_WARM_RUNS", 50).max(1);
    let work =
        tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into())).unwrap();

    // The plan, and what the figures touch: real packages are written for those only.
    let started = Instant::now();
    let plan = synth::plan(spec);
    let (target_index, graph) = pick_target(&plan);
    let target = plan[target_index].id.to_string();
    let installed = pick_installed(&plan, 100, &graph.iter().copied().collect());
    let changed: Vec<usize> = installed.iter().copied().step_by(10).take(10).collect();
    let real: BTreeSet<PluginId> = graph.iter().chain(&installed).map(|&i| plan[i].id.clone()).collect();
    let mut site = SynthSite::init(work.path(), bin_bits, jiff::Timestamp::now()).unwrap();
    let inputs = site.hybrid_input(plan.clone(), &real).unwrap();
    let real_releases: usize = inputs.iter().filter(|p| real.contains(&p.id)).map(|p| p.releases.len()).sum();
    let setup_inputs = started.elapsed();
    let built = site.build(inputs, Scope::Full).unwrap();
    println!(
        "synthetic registry: {} plugins, {} releases ({real_releases} real signed packages of {} plugins), \
         2^{bin_bits} bins; inputs in {setup_inputs:.1?}, built in {:.1?}",
        built.plugins,
        built.releases,
        real.len(),
        started.elapsed() - setup_inputs
    );

    let started = Instant::now();
    let server = FaultServer::start().unwrap();
    // Connections kept open between requests, as GitHub Pages and CDNs keep them:
    // one request per connection (`TRELLIS_BENCH_CLOSE`) opens ~190 connections on
    // loopback in bursts of up to 38 (see the module doc).
    let keep_alive = std::env::var_os("TRELLIS_BENCH_CLOSE").is_none();
    server.set_keep_alive(keep_alive);
    let mut files = Vec::new();
    walk(&site.site_dir, &mut files);
    let served = files.len();
    put_files(&server, &site.site_dir, files);
    let root = site.root_file();
    println!("serving {served} files on {} (loaded in {:.1?})", server.url(), started.elapsed());
    // The build just wrote gigabytes: the first install's barriers would wait for their
    // writeback (on 2026-12-02, quiet: 3.05 s at 100 ms per request when timed first,
    // 1.22 s when second). Flush them before anything is timed.
    let synced = Instant::now();
    let _ = std::process::Command::new("sync").status();
    println!("sync after the build: {:.1?}", synced.elapsed());
    println!("target: {target}, dependency graph of {} plugins (newest stable releases)", graph.len());

    // 1. Cold install in a child process, at each added per-request latency (a CDN's
    //    round trip): requests, the round trips of the critical path, wall time.
    let latencies: Vec<u64> = std::env::var("TRELLIS_BENCH_LATENCIES_MS")
        .unwrap_or_else(|_| "0,25,100".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    // The same installs in the strict order (the client before speculation: each TUF
    // file when the spec's order reaches it, no package before consent), then from a
    // mirror without the index doc aliases (the files not served): bin then doc, one
    // more round trip per level of the graph.
    let aliases: Vec<String> = server.paths().into_iter().filter(|p| p.starts_with("/targets/index/alias/")).collect();
    let mut data = None;
    // The same cold installs with the data dir on tmpfs (the barriers cost nothing there).
    let tmpfs = std::env::var("TRELLIS_BENCH_TMPFS_DATA")
        .map(PathBuf::from)
        .ok()
        .or_else(|| Path::new("/dev/shm").is_dir().then(|| PathBuf::from("/dev/shm")))
        .filter(|p| !p.as_os_str().is_empty());
    let disk = work.path().to_owned();
    // Every cold install's data dir is kept until the cold installs are done: on ext4,
    // an inode deleted in the last minutes is skipped when a file is created, one by
    // one, so deleting each run's data dir made every later run's file creation dearer
    // (on 2026-12-03 the child's CPU grew 179 → 736 ms over 16 runs of the same two
    // builds).
    let mut kept: Vec<tempfile::TempDir> = Vec::new();
    // `TRELLIS_BENCH_STRACE` (any value): the cold installs on disk run under strace,
    // their barriers placed against the requests in flight.
    let strace = std::env::var_os("TRELLIS_BENCH_STRACE").and_then(|_| trellis_tests::tools::require("strace"));
    let cold = ColdInstall { root: &root, target: &target, strace: strace.as_deref() };
    if let Some(tmpfs) = &tmpfs {
        for latency in &latencies {
            let dir = tempfile::tempdir_in(tmpfs).unwrap();
            let fields =
                cold_install(&server, &ColdInstall { strace: None, ..cold }, *latency, dir.path(), false, None);
            println!(
                "cold install at {latency} ms per request, data dir on tmpfs ({}): {} plugins installed, {} requests, \
                 {} ms",
                tmpfs.display(),
                fields[1],
                server.request_count(),
                fields[0]
            );
        }
    }
    // `TRELLIS_BENCH_BASELINE`: another build of this bench (the code before a change);
    // its child and this one install in turn, `TRELLIS_BENCH_COLD_RUNS` times each (3)
    // at each latency, against the same server, registry and disk: ratios side by side.
    if let Some(baseline) = std::env::var_os("TRELLIS_BENCH_BASELINE").map(PathBuf::from) {
        let rounds = env_or("TRELLIS_BENCH_COLD_RUNS", 3);
        for latency in &latencies {
            for round in 0..rounds {
                // Each round swaps who goes first: a drift over the rounds (the disk's,
                // the machine's) then weighs on both builds alike.
                let mut pair = [("baseline", Some(baseline.as_path())), ("this build", None)];
                if round % 2 == 1 {
                    pair.reverse();
                }
                for (name, exe) in pair {
                    let dir = tempfile::tempdir_in(&disk).unwrap();
                    let fields = cold_install(&server, &cold, *latency, dir.path(), false, exe);
                    println!(
                        "side by side at {latency} ms, run {}, {name}: {} plugins, {} requests, {} round trips, {} ms \
                         ({}), {} ms CPU, {} (load {})",
                        round + 1,
                        fields[1],
                        server.request_count(),
                        server.critical_path(),
                        fields[0],
                        phase_split(&fields),
                        fields[3],
                        after_last_answer(&server),
                        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').next().unwrap_or("?")
                    );
                    if std::env::var_os("TRELLIS_BENCH_TIMELINE").is_some() {
                        report_timeline(&server);
                    }
                    kept.push(dir);
                }
            }
        }
    }
    // `TRELLIS_BENCH_CONNECTIONS_SIDE_BY_SIDE`: at each latency, a cold install over
    // kept-alive connections and one with a connection per request, in turn,
    // `TRELLIS_BENCH_COLD_RUNS` times each (3).
    if std::env::var_os("TRELLIS_BENCH_CONNECTIONS_SIDE_BY_SIDE").is_some() {
        let rounds = env_or("TRELLIS_BENCH_COLD_RUNS", 3);
        for latency in &latencies {
            for round in 0..rounds {
                let mut pair = [("kept alive", true), ("a connection per request", false)];
                if round % 2 == 1 {
                    pair.reverse();
                }
                for (name, keep_alive) in pair {
                    server.set_keep_alive(keep_alive);
                    let dir = tempfile::tempdir_in(&disk).unwrap();
                    let fields = cold_install(&server, &cold, *latency, dir.path(), false, None);
                    println!(
                        "connections side by side at {latency} ms, run {}, {name}: {} plugins, {} requests over {} \
                         connections, {} round trips, {} ms ({}), {} ms CPU, {}",
                        round + 1,
                        fields[1],
                        server.request_count(),
                        server.connections(),
                        server.critical_path(),
                        fields[0],
                        phase_split(&fields),
                        fields[3],
                        after_last_answer(&server),
                    );
                    if std::env::var_os("TRELLIS_BENCH_TIMELINE").is_some() {
                        report_timeline(&server);
                    }
                    kept.push(dir);
                }
            }
        }
        server.set_keep_alive(keep_alive);
    }
    let runs = latencies
        .iter()
        .map(|l| (*l, true, false))
        .chain(latencies.iter().map(|l| (*l, true, true)))
        .chain(latencies.iter().map(|l| (*l, false, false)));
    for (run, (latency, with_aliases, strict)) in runs.enumerate() {
        if !with_aliases && run == 2 * latencies.len() {
            for path in &aliases {
                server.remove(path);
            }
        }
        let dir = tempfile::tempdir_in(&disk).unwrap();
        let fields = cold_install(&server, &cold, latency, dir.path(), strict, None);
        println!(
            "cold install at {latency} ms per request{}{}, data dir on {}: {} plugins installed, {} requests over {} \
             connections, {} round trips of critical path, {} bytes, {} ms ({}), {} ms CPU, {}, peak RSS {:.1} MiB",
            if strict { " in the strict order" } else { "" },
            if with_aliases { "" } else { " without aliases" },
            disk.display(),
            fields[1],
            server.request_count(),
            server.connections(),
            server.critical_path(),
            server.bytes_sent(),
            fields[0],
            phase_split(&fields),
            fields[3],
            after_last_answer(&server),
            fields[2] as f64 / 1024.0
        );
        if std::env::var_os("TRELLIS_BENCH_TIMELINE").is_some() {
            report_timeline(&server);
        }
        if run % latencies.len() == latencies.len() - 1 {
            report_hits(&server, &site.site_dir);
            report_chain(&server);
        }
        match data {
            None => data = Some(dir),
            Some(_) => kept.push(dir),
        }
    }
    put_files(&server, &site.site_dir, aliases.iter().map(|p| site.site_dir.join(p.trim_start_matches('/'))));
    server.set_latency(Duration::ZERO);
    if std::env::var_os("TRELLIS_BENCH_COLD_ONLY").is_some() {
        return;
    }
    let data = data.unwrap_or_else(|| tempfile::tempdir_in(work.path()).unwrap());

    // 2. Warm re-resolve.
    let mut warm = Vec::new();
    let mut warm_requests = 0;
    for _ in 0..warm_runs {
        server.reset_counters();
        let start = Instant::now();
        let mut store = Store::open(data.path(), options()).unwrap();
        let report =
            store.install(&[parse_requirement(&target).unwrap()], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
        warm.push(start.elapsed());
        assert!(report.installed.is_empty());
        warm_requests = server.request_count();
    }
    let (median, p95, min, max) = spread(warm);
    println!(
        "warm re-resolve (new store, warm data dir): median {median:.2?}, p95 {p95:.2?} (min {min:.2?}, max {max:.2?}) \
         over {warm_runs} runs, {warm_requests} request(s)"
    );

    warm_breakdown(&data, &server, &plan, &graph);

    // 3. Update of 100 installed plugins when 10 have new releases.
    let data = tempfile::tempdir_in(work.path()).unwrap();
    let mut store = Store::open(data.path(), options()).unwrap();
    store.add_registry("synth", &server.url(), &std::fs::read(&root).unwrap()).unwrap();
    let requirements: Vec<_> = installed.iter().map(|&i| parse_requirement(plan[i].id.as_str()).unwrap()).collect();
    let report = store.install(&requirements, &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    let installed_count = report.installed.len();
    drop(store);
    let grown: Vec<SynthPlugin> = changed
        .iter()
        .map(|&i| {
            let mut plugin = plan[i].clone();
            let mut release = synth::newest_stable(&plugin).unwrap().clone();
            release.version = semver::Version::new(99, 0, 0);
            plugin.releases.push(release);
            plugin
        })
        .collect();
    let inputs = site.real_inputs(&grown).unwrap();
    let scope = Scope::Plugins(grown.iter().map(|p| p.id.clone()).collect());
    let rebuilt = site.build(inputs, scope).unwrap();
    put_files(&server, &site.site_dir, rebuilt.written.iter().map(PathBuf::from));
    server.reset_counters();
    let start = Instant::now();
    let mut store = Store::open(data.path(), options()).unwrap();
    let report = store.update(&[], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    println!(
        "update of {installed_count} installed ({} requested), {} with new releases: {} updated, {} requests, {} bytes, {:.1?}",
        installed.len(),
        changed.len(),
        report.updated.len(),
        server.request_count(),
        server.bytes_sent(),
        start.elapsed()
    );
    report_hits(&server, &site.site_dir);
    assert_eq!(report.updated.len(), changed.len());
    drop(store);

    server.reset_counters();
    let start = Instant::now();
    let mut store = Store::open(data.path(), options()).unwrap();
    let check = store.check_updates(&[], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    println!(
        "no-op update check of {installed_count} installed: {} update(s), {} request(s), {:.1?}",
        check.updates.len(),
        server.request_count(),
        start.elapsed()
    );
}
