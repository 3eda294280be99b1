//! Trellis beside uv on the same dependency graphs (issue 13): a random graph of 5–15
//! plugins, each with three releases and `^1` requirements, published as a real signed
//! registry served by `trellis-index serve` on loopback, and the same graph as Python
//! wheels behind a find-links page served the same way.
//!
//! For each graph, in fresh processes, with every data and cache directory on the real
//! disk (under `BENCH_DIR`, default `target/uv-compare`):
//! - `trellis install APP` into a data dir whose registry was added beforehand (cold
//!   package cache): resolve, download, verify every signature and hash, extract,
//!   activate; and `registry add` + `install` together (the TUF chain too);
//! - `uv pip compile` of the same requirement with an empty cache (resolution only,
//!   reading each wheel's metadata over HTTP).
//!
//! Run: `cargo bench -p trellis-tests --bench uv_compare`. `TRELLIS_BENCH_GRAPHS` (default
//! 7) graphs, `TRELLIS_BENCH_SEED`, `TRELLIS_BENCH_RUNS` (default 3: each figure of a
//! graph is the median of that many fresh runs, trellis and uv interleaved);
//! `TRELLIS_BENCH_LATENCY_MS` (default 0) serves both the site and the wheels from the
//! test fault server with that delay added to every answer (a CDN's round trip; one
//! request per connection for both) instead of `trellis-index serve`, and each graph's
//! line then also gives the requests and round trips (the fault server's critical path)
//! of its install and of uv's resolution in the first run: unlike the walls, they do not
//! move with the machine's load. `uv` from `PATH`,
//! else installed once into a venv under `BENCH_DIR` from PyPI (`UV_VERSION`, default
//! 0.13.8). `TRELLIS_BENCH_BASELINE`: another `trellis` binary (an older build) timed
//! the same way in the same runs, for before/after ratios side by side. Prints each
//! graph and the medians; the target is Trellis install ≤ 1.5 × uv for every graph.
//!
//! Figures (2026-12-02, shared 2-core machine at load 14–16, so every wall time is noisy:
//! one graph's install median exceeded its own `registry add + install`), 7 graphs,
//! seed 13, 3 runs, 25 ms: install median 631 ms against 897 ms for main's binary in the
//! same runs (uv 697 ms): 0.91× uv, was 1.29×; worst graph 2.00× (graph 4, 11 plugins,
//! noise-dominated: 1.80× for main), other graphs 0.49–1.39× (main 1.12–1.80×). The change:
//! the prefetch closure follows the release each requirement allows (`app@^1` → 1.x,
//! whose dependencies these graphs put there), not the newest (2.0.0, which needs
//! nothing), and the resolver hints a chosen release's dependencies together. At 0 ms
//! in the next run (load 10–14) the walls were noise (install medians above their own
//! `registry add + install` for 2 graphs): median 474 ms new, 526 ms main, uv 230 ms.
//!
//! On the quiet machine (same day, load 1–2, the same 7 graphs, seed 13, 3 runs; data
//! and caches on disk): at 25 ms install median 169 ms, uv 370 ms: **0.46×, worst graph
//! 0.65×** (`registry add` + install 212 ms); at 0 ms 79 ms against 263 ms: 0.30×, worst
//! 0.53× (112 ms with `registry add`). The target holds for every graph at both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Plugin, Site};
use trellis_index::synth::Rng;
use trellis_tests::fault_server::FaultServer;

/// A graph: `deps[i]` are the plugins `i` needs (all greater than `i`); plugin 0 is
/// the one installed and reaches every other.
fn random_graph(rng: &mut Rng) -> Vec<Vec<usize>> {
    let n = 5 + rng.below(11) as usize;
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, edges) in deps.iter_mut().enumerate().take(n - 1) {
        for j in i + 1..n {
            if rng.below(4) == 0 {
                edges.push(j);
            }
        }
    }
    // Every plugin nobody needs becomes a dependency of plugin 0.
    for j in 1..n {
        if !deps.iter().any(|d| d.contains(&j)) {
            deps[0].push(j);
        }
    }
    deps
}

const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];

fn plugin_id(graph: usize, i: usize) -> String {
    format!("acme.g{graph}p{i}")
}

fn publish(site: &Site, graph: usize, deps: &[Vec<usize>]) {
    let mut plugins = Vec::new();
    for (i, edges) in deps.iter().enumerate() {
        for version in VERSIONS {
            let mut plugin = Plugin::new(&plugin_id(graph, i), version);
            // 2.0.0 needs nothing: `^1` keeps every dependency on 1.x, so the
            // resolver has to walk back from the newest release.
            if version != "2.0.0" {
                for j in edges {
                    plugin = plugin.depends_on(&plugin_id(graph, *j), "^1");
                }
            }
            plugins.push(plugin);
        }
    }
    // Plugin 0 is asked for at ^1, so its 1.x releases and their dependencies count.
    site.publish(&plugins);
}

fn python_name(graph: usize, i: usize) -> String {
    format!("acme-g{graph}p{i}")
}

/// The graph as wheels (`METADATA` with `Requires-Dist`), with a find-links page.
fn write_wheels(dir: &Path, graph: usize, deps: &[Vec<usize>]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut links = String::from("<!DOCTYPE html><html><body>\n");
    for (i, edges) in deps.iter().enumerate() {
        for version in VERSIONS {
            let name = python_name(graph, i);
            let module = name.replace('-', "_");
            let file = format!("{module}-{version}-py3-none-any.whl");
            let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
            if version != "2.0.0" {
                for j in edges {
                    metadata.push_str(&format!("Requires-Dist: {}>=1,<2\n", python_name(graph, *j)));
                }
            }
            let dist_info = format!("{module}-{version}.dist-info");
            let entries = [
                (format!("{module}/__init__.py"), format!("VERSION = {version:?}\n")),
                (format!("{dist_info}/METADATA"), metadata),
                (
                    format!("{dist_info}/WHEEL"),
                    "Wheel-Version: 1.0\nGenerator: trellis-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n".into(),
                ),
            ];
            let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join(&file)).unwrap());
            let mut record = String::new();
            for (path, content) in &entries {
                zip.start_file(path, zip::write::SimpleFileOptions::default()).unwrap();
                zip.write_all(content.as_bytes()).unwrap();
                record.push_str(&format!("{path},,\n"));
            }
            record.push_str(&format!("{dist_info}/RECORD,,\n"));
            zip.start_file(format!("{dist_info}/RECORD"), zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(record.as_bytes()).unwrap();
            zip.finish().unwrap();
            links.push_str(&format!("<a href=\"{file}\">{file}</a><br/>\n"));
        }
    }
    links.push_str("</body></html>\n");
    std::fs::write(dir.join("index.html"), links).unwrap();
}

/// `uv` from PATH, or installed once into a venv under `base` from PyPI.
fn uv(base: &Path) -> PathBuf {
    if let Ok(out) = Command::new("uv").arg("--version").output()
        && out.status.success()
    {
        return PathBuf::from("uv");
    }
    let venv = base.join("uv-venv");
    let bin = venv.join("bin/uv");
    if !bin.is_file() {
        let version = std::env::var("UV_VERSION").unwrap_or_else(|_| "0.13.8".into());
        let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().unwrap();
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", &format!("uv=={version}")])
            .status()
            .unwrap();
        assert!(status.success(), "pip install uv=={version} failed");
    }
    bin
}

/// The `trellis` CLI as users get it: built with the release profile.
fn release_trellis() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "trellis-client", "--bin", "trellis"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "building the release trellis binary failed");
    target.join("release").join(format!("trellis{}", std::env::consts::EXE_SUFFIX))
}

fn run(command: &mut Command) -> Duration {
    let started = Instant::now();
    let out = command.output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Serves the files under `dir` from the fault server with `latency` added to every
/// answer.
fn delayed(dir: &Path, latency: Duration) -> FaultServer {
    let server = FaultServer::start().unwrap();
    for file in common::walk(dir) {
        let path = file.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{path}"), std::fs::read(&file).unwrap());
    }
    server.set_latency(latency);
    server
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let graphs: usize = std::env::var("TRELLIS_BENCH_GRAPHS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let seed: u64 = std::env::var("TRELLIS_BENCH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(13);
    let runs: usize = std::env::var("TRELLIS_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let latency =
        Duration::from_millis(std::env::var("TRELLIS_BENCH_LATENCY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0));
    let base = std::env::var_os("BENCH_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/uv-compare"),
        |d| PathBuf::from(d).join("uv-compare"),
    );
    std::fs::create_dir_all(&base).unwrap();
    let uv = uv(&base);
    let trellis = release_trellis();
    let baseline = std::env::var_os("TRELLIS_BENCH_BASELINE").map(PathBuf::from);
    let mut rng = Rng(seed);
    let site = Site::with_bin_bits(4);
    let (mut installs, mut colds, mut uvs, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut baseline_installs, mut baseline_ratios) = (Vec::new(), Vec::new());
    println!("{runs} runs per graph, {} ms added per request", latency.as_millis());
    if let Some(baseline) = &baseline {
        println!("baseline: {}", baseline.display());
    }
    println!(
        "graph  plugins  trellis install  registry add + install  uv pip compile  install/uv{}",
        if baseline.is_some() { "  baseline install  baseline/uv" } else { "" }
    );
    for graph in 0..graphs {
        let deps = random_graph(&mut rng);
        publish(&site, graph, &deps);
        let work = tempfile::tempdir_in(&base).unwrap();
        let root = work.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        let target = format!("{}@^1", plugin_id(graph, 0));
        let wheels = work.path().join("wheels");
        write_wheels(&wheels, graph, &deps);
        let wheel_server = trellis_index::serve::Server::start(&wheels, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let delayed_servers =
            (!latency.is_zero()).then(|| (delayed(site.site.path(), latency), delayed(&wheels, latency)));
        let (site_url, wheels_url) = match &delayed_servers {
            // The fault server's URL has no trailing slash; `serve`'s has.
            Some((site_server, wheel_server)) => {
                (format!("{}/", site_server.url()), format!("{}/", wheel_server.url()))
            }
            None => (site.url(), wheel_server.url()),
        };
        let command_of = |bin: &Path, data: &Path| {
            let mut command = Command::new(bin);
            command.arg("--data-dir").arg(data).arg("--quiet");
            command
        };
        let trellis_cmd = |data: &Path| command_of(&trellis, data);
        let requirements = work.path().join("requirements.in");
        std::fs::write(&requirements, format!("{}>=1,<2\n", python_name(graph, 0))).unwrap();
        let (mut install_runs, mut cold_runs, mut uv_runs) = (Vec::new(), Vec::new(), Vec::new());
        let mut baseline_runs = Vec::new();
        // Requests and round trips (the fault server's critical path) of the first run's
        // install and of uv's resolution: load-independent, unlike the walls.
        let mut counted: Option<[(usize, usize); 2]> = None;
        let reset = || {
            if let Some((site_server, wheel_server)) = &delayed_servers {
                site_server.reset_counters();
                wheel_server.reset_counters();
            }
        };
        let counts = |server: &FaultServer| (server.request_count(), server.critical_path());
        for run_index in 0..runs {
            let attempt = work.path().join(format!("run-{run_index}"));
            // Trellis, registry added beforehand: the install alone.
            let data = attempt.join("data");
            run(trellis_cmd(&data).args(["registry", "add", "main", &site_url, "--root"]).arg(&root));
            reset();
            install_runs.push(run(trellis_cmd(&data).args(["--yes", "install", &target])));
            let install_counts = delayed_servers.as_ref().map(|(site_server, _)| counts(site_server));
            let listed = trellis_cmd(&data).args(["--json", "list"]).output().unwrap();
            let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
            let count = list["result"].as_array().map_or(0, Vec::len);
            assert_eq!(count, deps.len(), "the whole graph is installed: {list}");

            // The baseline binary, the same way.
            if let Some(baseline) = &baseline {
                let data = attempt.join("baseline");
                run(command_of(baseline, &data).args(["registry", "add", "main", &site_url, "--root"]).arg(&root));
                baseline_runs.push(run(command_of(baseline, &data).args(["--yes", "install", &target])));
            }

            // Trellis from nothing: registry add (the TUF chain) and install.
            let fresh = attempt.join("fresh");
            cold_runs.push(
                run(trellis_cmd(&fresh).args(["registry", "add", "main", &site_url, "--root"]).arg(&root))
                    + run(trellis_cmd(&fresh).args(["--yes", "install", &target])),
            );

            // uv, cold cache, wheels over HTTP from the same kind of server.
            let compiled = attempt.join("requirements.txt");
            reset();
            uv_runs.push(run(Command::new(&uv)
                .args(["pip", "compile", "--quiet", "--no-index", "--find-links"])
                .arg(format!("{wheels_url}index.html"))
                .arg("--cache-dir")
                .arg(attempt.join("uv-cache"))
                .arg("-o")
                .arg(&compiled)
                .arg(&requirements)));
            let pinned = std::fs::read_to_string(&compiled).unwrap();
            let uv_count = pinned.lines().filter(|l| l.starts_with("acme-")).count();
            assert_eq!(uv_count, deps.len(), "uv resolves the same graph: {pinned}");
            if counted.is_none()
                && let (Some(install), Some((_, wheel_server))) = (install_counts, &delayed_servers)
            {
                counted = Some([install, counts(wheel_server)]);
            }
            std::fs::remove_dir_all(&attempt).unwrap();
        }
        let (install, cold, uv_time) = (median(install_runs), median(cold_runs), median(uv_runs));
        let ratio = install.as_secs_f64() / uv_time.as_secs_f64();
        let before = (!baseline_runs.is_empty()).then(|| {
            let before = median(baseline_runs);
            let before_ratio = before.as_secs_f64() / uv_time.as_secs_f64();
            baseline_installs.push(before);
            baseline_ratios.push(before_ratio);
            format!("  {:>13.1} ms  {before_ratio:>10.2}×", ms(before))
        });
        println!(
            "{graph:>5}  {:>7}  {:>12.1} ms  {:>19.1} ms  {:>11.1} ms  {:>9.2}×{}{}",
            deps.len(),
            ms(install),
            ms(cold),
            ms(uv_time),
            ratio,
            before.unwrap_or_default(),
            counted.map_or_else(String::new, |[(requests, trips), (uv_requests, uv_trips)]| format!(
                "  install {requests} requests / {trips} round trips, uv {uv_requests} / {uv_trips}"
            ))
        );
        installs.push(install);
        colds.push(cold);
        uvs.push(uv_time);
        ratios.push(ratio);
    }
    let (install, cold, uv_time) = (median(installs), median(colds), median(uvs));
    let worst = ratios.iter().copied().fold(0.0_f64, f64::max);
    println!(
        "median  trellis install {:.1} ms, registry add + install {:.1} ms, uv pip compile {:.1} ms: install/uv {:.2}×, \
         worst graph {worst:.2}× (target ≤ 1.5× for every graph)",
        ms(install),
        ms(cold),
        ms(uv_time),
        install.as_secs_f64() / uv_time.as_secs_f64()
    );
    if !baseline_installs.is_empty() {
        let before = median(baseline_installs);
        let worst = baseline_ratios.iter().copied().fold(0.0_f64, f64::max);
        println!(
            "baseline  install {:.1} ms: install/uv {:.2}×, worst graph {worst:.2}×",
            ms(before),
            before.as_secs_f64() / uv_time.as_secs_f64()
        );
    }
}
