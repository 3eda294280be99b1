//! Pack throughput: a ~100 MB tree of mixed files (compressible text, random binaries,
//! many small files) packed several times; prints MB/s of source bytes.
//!
//! `cargo bench -p trellis-index --bench pack` (set `TRELLIS_BENCH_MB` for another size).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let megabytes: u64 = std::env::var("TRELLIS_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    trellis_tests::trees::write_mixed_tree(&tree, megabytes << 20, 42)?;
    let source_bytes: u64 = walkdir::WalkDir::new(&tree)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let runs = 3;
    let mut best = f64::INFINITY;
    let mut package_size = 0;
    for run in 0..runs {
        let out = dir.path().join(format!("out-{run}.zip"));
        let start = Instant::now();
        let packed = trellis_index::pack::pack_dir(&tree, &out)?;
        let secs = start.elapsed().as_secs_f64();
        best = best.min(secs);
        package_size = packed.digest.size;
        std::fs::remove_file(&out)?;
    }
    let mb = source_bytes as f64 / 1e6;
    println!(
        "pack: {mb:.1} MB source -> {:.1} MB package, best of {runs}: {best:.3} s = {:.1} MB/s",
        package_size as f64 / 1e6,
        mb / best
    );
    Ok(())
}
