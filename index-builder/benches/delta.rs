//! Delta size and speed: how many bytes an update downloads as a delta instead of the
//! package, how long the builder takes to make the delta and the client to apply it.
//!
//! Two cases, both packed and signed for real:
//! - the example registry's `acme.clock` 1.0.0 → 1.1.0 (`registry-template/plugins`);
//! - the same plugin carrying a synthetic binary of `TRELLIS_BENCH_MB` MB (default 20;
//!   pseudo-random, so it does not compress) of which 1 % changes between releases
//!   (20 blocks spread over the file).
//!
//! `cargo bench -p trellis-index --bench delta`

use std::path::Path;
use std::time::Instant;

use trellis_client::delta::{Base, Target};
use trellis_client::package::{Limits, Package};
use trellis_index::delta::{self, DeltaPolicy, ReleaseFiles};
use trellis_schema::Sha256;
use trellis_schema::delta::DeltaLimits;
use trellis_schema::manifest::ReleaseManifest;

type Error = Box<dyn std::error::Error>;

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry?;
        let target = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A packed and signed release of the tree at `tree`.
struct Release {
    package: Vec<u8>,
    manifest: ReleaseManifest,
    manifest_sha256: Sha256,
}

fn release(tree: &Path, out: &Path) -> Result<Release, Error> {
    trellis_index::pack::pack_dir(tree, out)?;
    let signed = trellis_index::sign::sign_package(out, &trellis_index::fixture::key(1))?;
    let payload = trellis_index::sign::manifest_payload(&signed.manifest)?;
    Ok(Release { package: std::fs::read(out)?, manifest: signed.manifest, manifest_sha256: Sha256::of(&payload) })
}

fn measure(label: &str, old_tree: &Path, new_tree: &Path, work: &Path) -> Result<(), Error> {
    let old = release(old_tree, &work.join("old.zip"))?;
    let new = release(new_tree, &work.join("new.zip"))?;
    let old_files = ReleaseFiles::read(&old.package, &old.manifest, old.manifest_sha256)?;
    let new_files = ReleaseFiles::read(&new.package, &new.manifest, new.manifest_sha256)?;

    let started = Instant::now();
    let (bytes, stats) = delta::make(&old_files, &new_files, &DeltaPolicy::default())?;
    let make = started.elapsed().as_secs_f64();

    let base_dir = work.join("installed");
    Package::from_bytes(old.package.clone(), &old.manifest, &Limits::default())?.extract(&base_dir)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let staged = trellis_client::delta::apply(
            &bytes,
            Base { dir: &base_dir, manifest: &old.manifest, manifest_sha256: old.manifest_sha256 },
            Target { manifest: &new.manifest, manifest_sha256: new.manifest_sha256 },
            work,
            &DeltaLimits::default(),
        )?;
        best = best.min(started.elapsed().as_secs_f64());
        drop(staged);
    }
    let package = new.package.len();
    println!(
        "{label}: package {package} B, delta {} B ({:.1} % of the package; {} copied, {} patched, {} literal); \
         make {make:.3} s, apply (best of 3, files flushed) {best:.3} s",
        bytes.len(),
        bytes.len() as f64 * 100.0 / package as f64,
        stats.copied,
        stats.patched,
        stats.literal,
    );
    std::fs::remove_dir_all(&base_dir)?;
    Ok(())
}

fn main() -> Result<(), Error> {
    let megabytes: usize = std::env::var("TRELLIS_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/plugins");
    let work = tempfile::tempdir()?;
    measure(
        "acme.clock 1.0.0 -> 1.1.0 (example registry)",
        &templates.join("acme.clock-1.0.0"),
        &templates.join("acme.clock-1.1.0"),
        work.path(),
    )?;

    let (old_tree, new_tree) = (work.path().join("old"), work.path().join("new"));
    copy_tree(&templates.join("acme.clock-1.0.0"), &old_tree)?;
    copy_tree(&templates.join("acme.clock-1.1.0"), &new_tree)?;
    let size = megabytes << 20;
    let engine = pseudo_random(size, 7);
    let mut changed = engine.clone();
    let block = size / 100 / 20;
    for n in 0..20 {
        let at = n * (size / 20) + size / 40;
        changed[at..at + block].copy_from_slice(&pseudo_random(block, 100 + n as u64));
    }
    std::fs::write(old_tree.join("bin/any/engine.bin"), &engine)?;
    std::fs::write(new_tree.join("bin/any/engine.bin"), &changed)?;
    measure(&format!("{megabytes} MB binary, 1 % changed"), &old_tree, &new_tree, work.path())?;
    Ok(())
}
