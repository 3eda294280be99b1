//! A real full build, beside the metadata-only one of `registry_build`: every release
//! a real signed package in the registry source tree, read back, its developer
//! signature verified under the publisher record, linted and analysed, its deltas
//! made (bounded by rayon's pool), the index docs, catalog and storefront written;
//! then one more release built incrementally. In the same run, the metadata-only
//! build of the same plan (content addresses only, nothing read), for the ratio.
//!
//! `cargo bench -p trellis-index --bench real_build -- [PLUGINS] [VERSIONS] [PACKAGE_KB]`
//! (defaults: 10000 10 16). Each release's entry point carries `PACKAGE_KB` of
//! pseudo-random text of which each version changes a few lines, so deltas are worth
//! publishing, as between real releases. Everything is written under `BENCH_DIR`
//! (default `.`): 10k × 10 × 16 KB is ~1.6 GB of packages, twice (source and site).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use trellis_index::build::{Scope, build_registry};
use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::registry::Registry;
use trellis_index::synth::{self, Rng, SynthPlugin, SynthSite, SynthSpec};

fn arg(index: usize, default: u64) -> u64 {
    std::env::args().filter(|a| !a.starts_with('-')).nth(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// The entry point of `plugin`'s release number `version`: `kb` KiB of comment lines
/// drawn from the plugin's seed, of which each version rewrites 3 lines.
fn payload(plugin: &SynthPlugin, version: usize, kb: usize) -> Vec<u8> {
    let seed = plugin
        .id
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut rng = Rng(seed);
    let lines = kb * 1024 / 64;
    let mut out = format!("#!/bin/sh\necho {} {version}\n", plugin.id).into_bytes();
    let changed: Vec<u64> = {
        let mut pick = Rng(seed ^ (version as u64 + 1));
        (0..3 * version).map(|_| pick.below(lines as u64)).collect()
    };
    for line in 0..lines as u64 {
        let mut value = rng.next_u64();
        if changed.contains(&line) {
            value ^= 0x5a5a_5a5a;
        }
        out.extend_from_slice(
            format!("# {value:016x} {:016x} {:016x}\n", value.rotate_left(21), value.rotate_left(42)).as_bytes(),
        );
    }
    out
}

fn du(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (f, b) = du(&path);
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (files, bytes)
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l[6..].trim().to_owned()))
        .unwrap_or_default()
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, 100 Hz ticks).
fn cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    std::time::Duration::from_millis(ticks * 10)
}

fn main() {
    let plugins = arg(1, 10_000) as usize;
    let versions = arg(2, 10) as usize;
    let kb = arg(3, 16) as usize;
    let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let work = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    let spec = SynthSpec { plugins, versions, seed: 42 };
    let plan = synth::plan(spec);

    // The metadata-only build of the same plan, for the ratio.
    let meta_work = work.path().join("metadata");
    std::fs::create_dir_all(&meta_work).unwrap();
    let mut meta_site = SynthSite::init(&meta_work, 8, now).unwrap();
    meta_site.known = plan.iter().map(|p| p.id.clone()).collect();
    let inputs: Vec<_> = plan.iter().cloned().map(synth::plugin_input).collect();
    let (started, cpu_before) = (Instant::now(), cpu());
    let meta = meta_site.build(inputs, Scope::Full).unwrap();
    let (meta_time, meta_cpu) = (started.elapsed(), cpu() - cpu_before);
    println!(
        "metadata-only full build: {} releases, {} files in {meta_time:.2?} ({meta_cpu:.2?} CPU)",
        meta.releases,
        meta.written.len()
    );
    std::fs::remove_dir_all(&meta_work).unwrap();

    // The registry source tree: real signed packages.
    let real_work = work.path().join("real");
    std::fs::create_dir_all(&real_work).unwrap();
    let site = SynthSite::init(&real_work, 8, now).unwrap();
    let registry_dir = site.registry.dir.clone();
    let key = fixture::key(1);
    let started = Instant::now();
    let mut vendors: Vec<&str> = plan.iter().map(|p| p.id.vendor()).collect();
    vendors.sort_unstable();
    vendors.dedup();
    for vendor in vendors {
        fixture::add_publisher(&registry_dir, vendor, &key).unwrap();
    }
    let mut yanks = trellis_index::registry::Yanks::default();
    for plugin in &plan {
        for release in plugin.releases.iter().filter(|r| r.yanked) {
            yanks.yanked.push(trellis_index::registry::Yank {
                id: plugin.id.clone(),
                version: release.version.clone(),
                reason: "synthetic".into(),
            });
        }
    }
    std::fs::write(registry_dir.join(trellis_index::registry::YANKS_FILE), serde_json::to_vec_pretty(&yanks).unwrap())
        .unwrap();
    plan.par_iter().for_each(|plugin| {
        for (n, release) in plugin.releases.iter().enumerate() {
            let mut spec = ReleaseSpec::new(plugin.id.as_str(), &release.version.to_string());
            spec.dependencies = release.dependencies.clone();
            spec.channel = release.channel;
            spec.display = Some(synth::display_of(&plugin.id));
            spec.payload = payload(plugin, n, kb);
            fixture::add_release(&registry_dir, &spec, &key).unwrap();
        }
    });
    let (files, bytes) = du(&registry_dir.join("releases"));
    println!(
        "wrote {} signed releases ({files} files, {:.1} MB) in {:.2?}",
        plan.iter().map(|p| p.releases.len()).sum::<usize>(),
        bytes as f64 / 1e6,
        started.elapsed()
    );

    // The real full build, as `trellis-index build` runs it.
    let registry = Registry::open(&registry_dir).unwrap();
    let (started, cpu_before) = (Instant::now(), cpu());
    let full = build_registry(&registry, &site.site_dir, Scope::Full, now).unwrap();
    let full_time = started.elapsed();
    let full_cpu = cpu() - cpu_before;
    let deltas = full.written.iter().filter(|f| f.starts_with("targets/deltas/")).count();
    let packages = full.written.iter().filter(|f| f.ends_with(".zip")).count();
    println!(
        "real full build: {} plugins, {} releases ({} analysed), {packages} packages, {deltas} deltas, {} files + {} storefront files in {full_time:.2?} ({full_cpu:.2?} CPU); peak RSS {}",
        full.plugins,
        full.releases,
        full.analysed,
        full.written.len(),
        full.storefront.len(),
        peak_rss()
    );
    println!(
        "real / metadata-only: {:.1}x wall, {:.1}x CPU (the rest of the wall time is the disk: every file fsynced)",
        full_time.as_secs_f64() / meta_time.as_secs_f64(),
        full_cpu.as_secs_f64() / meta_cpu.as_secs_f64().max(0.01)
    );

    // +1 release of a mid-registry plugin, incremental (in this process).
    let target = &plan[plan.len() / 2];
    let mut spec = ReleaseSpec::new(target.id.as_str(), "99.0.0");
    spec.display = Some(synth::display_of(&target.id));
    spec.payload = payload(target, target.releases.len(), kb);
    fixture::add_release(&registry_dir, &spec, &key).unwrap();
    let registry = Registry::open(&registry_dir).unwrap();
    let started = Instant::now();
    let one =
        build_registry(&registry, &site.site_dir, Scope::Plugins(BTreeSet::from([target.id.clone()])), now).unwrap();
    let one_deltas = one.written.iter().filter(|f| f.starts_with("targets/deltas/")).count();
    println!(
        "real +1 release of {}: {} files ({one_deltas} deltas) + {} storefront files in {:.2?}",
        target.id,
        one.written.len(),
        one.storefront.len(),
        started.elapsed()
    );
    let (files, bytes) = du(&site.site_dir);
    println!("site: {files} files, {:.1} MB", bytes as f64 / 1e6);
}
