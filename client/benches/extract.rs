//! Two measurements of [`Package::open`] + extract:
//!
//! 1. **time** (default): verify + extract a ~100 MB package of mixed files, side by
//!    side with `unzip -q` + `sha256sum` of the extracted files, in one run. Run:
//!    `cargo bench -p trellis-client --bench extract` (`-- --runs N`, `-- --mib N`).
//!    Needs `unzip`, `sha256sum`, `find` and `xargs` on `PATH`. The target is
//!    trellis ≤ 1.3 × the pair; the ratio of the medians is printed.
//! 2. **memory** (`-- --rss-mib N`): writes a package of about N MiB (mostly
//!    incompressible binaries, so packed ≈ unpacked) straight to disk, then opens and
//!    extracts it in a fresh child process and prints the child's peak RSS (`VmHWM`).
//!    Issue 6's target for a cold install is ≤ 100 MB peak RSS.
//!
//! Files go to a temporary directory under `TRELLIS_BENCH_DIR` (default `.`), removed
//! at the end; `/dev/shm` keeps disk speed out of the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trellis_client::package::{Durability, Limits, Package};
use trellis_schema::Sha256;
use trellis_schema::manifest::{
    CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, ManifestFormat, PackageDigest, ReleaseManifest,
};

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "plugin",
            "release",
            "package",
            "clock",
            "window",
            "the",
            "of",
            "and",
            "registry",
            "signature",
            "install",
            "update",
            "host",
            "a",
            "to",
            "is",
            "verify",
            "extract",
            "manifest",
            "file",
            "in",
            "for",
        ];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            let word = WORDS[(self.next() % WORDS.len() as u64) as usize];
            out.extend_from_slice(word.as_bytes());
            out.push(if self.next().is_multiple_of(12) { b'\n' } else { b' ' });
        }
        out.truncate(len);
        out
    }
}

/// A mixed tree of about `mib` MiB: 40 % text, 40 % random binaries, 20 % small files.
fn tree(mib: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let total = mib << 20;
    let mut files = Vec::new();
    for i in 0..(total * 4 / 10) / (200 << 10) {
        files.push((format!("docs/text/{i:04}.md"), rng.text(200 << 10)));
    }
    for i in 0..(total * 4 / 10) / (5 << 20) {
        files.push((format!("bin/linux-x86_64/lib{i}.so"), rng.bytes(5 << 20)));
    }
    for i in 0..(total * 2 / 10) / 4096 {
        let content = if i.is_multiple_of(2) { rng.text(4096) } else { rng.bytes(4096) };
        files.push((format!("resources/small/{:02}/{i:05}.dat", i % 64), content));
    }
    files.sort();
    files
}

fn pack(files: &[(String, Vec<u8>)]) -> (Vec<u8>, ReleaseManifest) {
    let entries: Vec<FileEntry> = files
        .iter()
        .map(|(path, content)| FileEntry {
            path: path.clone(),
            size: content.len() as u64,
            sha256: Sha256::of(content),
            executable: false,
        })
        .collect();
    let content = ContentManifest {
        format: ManifestFormat::CURRENT,
        plugin_id: "bench.mixed".parse().unwrap(),
        version: "1.0.0".parse().unwrap(),
        files: entries.clone(),
    };
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (path, bytes) in files {
        writer.start_file(path.as_str(), options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.start_file(CONTENT_MANIFEST_PATH, options).unwrap();
    writer.write_all(&serde_json::to_vec(&content).unwrap()).unwrap();
    let bytes = writer.finish().unwrap().into_inner();
    let release =
        bench_release("bench.mixed", PackageDigest { sha256: Sha256::of(&bytes), size: bytes.len() as u64 }, &entries);
    (bytes, release)
}

fn trellis(package: &Path, release: &ReleaseManifest, destination: &Path, durability: Durability) -> Duration {
    let start = Instant::now();
    let opened = Package::open(package, release, &Limits::default()).expect("package verifies");
    opened.extract_with(destination, durability).expect("package extracts");
    start.elapsed()
}

fn unzip_and_sha256sum(package: &Path, destination: &Path) -> Duration {
    let script = format!(
        "unzip -q {} -d {dest} && find {dest} -type f -print0 | xargs -0 sha256sum > /dev/null",
        package.display(),
        dest = destination.display()
    );
    let start = Instant::now();
    let status = Command::new("sh").arg("-c").arg(script).status().expect("running unzip");
    let elapsed = start.elapsed();
    assert!(status.success(), "unzip + sha256sum failed");
    elapsed
}

/// Writes dirty pages back so each measurement starts from the same state.
fn settle() {
    let _ = Command::new("sync").status();
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Writes a package of about `mib` MiB to `path` without holding it in memory: 90 %
/// random 8 MiB binaries, 10 % text. Returns the release manifest and the file count.
fn write_large_package(path: &Path, mib: usize) -> (ReleaseManifest, usize) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let total = mib << 20;
    let mut specs: Vec<(String, bool, usize)> = Vec::new();
    for i in 0..(total * 9 / 10).div_ceil(8 << 20) {
        specs.push((format!("bin/linux-x86_64/lib{i:03}.so"), false, 8 << 20));
    }
    for i in 0..(total / 10).div_ceil(256 << 10) {
        specs.push((format!("docs/text/{i:04}.md"), true, 256 << 10));
    }
    let mut writer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .unix_permissions(0o644);
    let mut entries = Vec::with_capacity(specs.len());
    for (name, text, size) in &specs {
        let content = if *text { rng.text(*size) } else { rng.bytes(*size) };
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(&content).unwrap();
        entries.push(FileEntry {
            path: name.clone(),
            size: content.len() as u64,
            sha256: Sha256::of(&content),
            executable: false,
        });
    }
    let content = ContentManifest {
        format: ManifestFormat::CURRENT,
        plugin_id: "bench.large".parse().unwrap(),
        version: "1.0.0".parse().unwrap(),
        files: entries.clone(),
    };
    writer.start_file(CONTENT_MANIFEST_PATH, options).unwrap();
    writer.write_all(&serde_json::to_vec(&content).unwrap()).unwrap();
    writer.finish().unwrap();

    let mut hasher = trellis_schema::digest::Hasher::new();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    let release = bench_release("bench.large", PackageDigest { sha256: hasher.finish(), size }, &entries);
    (release, specs.len() + 1)
}

/// The signed release manifest of a bench package `id 1.0.0` with `files`.
fn bench_release<T: serde::Serialize>(id: &str, package: PackageDigest, files: &T) -> ReleaseManifest {
    serde_json::from_value(serde_json::json!({
        "format": ManifestFormat::CURRENT,
        "plugin_id": id,
        "version": "1.0.0",
        "package": package,
        "files": files,
        "permissions": [],
        "host": {"id": "bench", "api_version_requirement": "*"},
        "platforms": ["linux-x86_64"],
        "channel": "stable",
        "dependencies": [],
    }))
    .unwrap()
}

/// The child of the memory measurement: open + extract; prints `elapsed_ms peak_kib`.
fn rss_child(package: &str, release: &str, destination: &str) {
    let release: ReleaseManifest = serde_json::from_slice(&std::fs::read(release).unwrap()).unwrap();
    let start = Instant::now();
    let opened = Package::open(Path::new(package), &release, &Limits::default()).expect("package verifies");
    opened.extract(Path::new(destination)).expect("package extracts");
    println!("{} {}", start.elapsed().as_millis(), peak_rss_kib());
}

fn measure_rss(work: &Path, mib: usize) {
    let package = work.join("large.zip");
    let (release, files) = write_large_package(&package, mib);
    let manifest = work.join("release.json");
    std::fs::write(&manifest, serde_json::to_vec(&release).unwrap()).unwrap();
    println!("package: {files} files, {:.1} MiB packed", release.package.size as f64 / 1048576.0);
    let destination = work.join("extracted");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--rss-child", package.to_str().unwrap(), manifest.to_str().unwrap(), destination.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    let (ms, kib) = (fields.next().unwrap(), fields.next().unwrap());
    println!(
        "open + extract (flushed) in a fresh process: {ms} ms, peak RSS (VmHWM) {:.1} MiB (target <= 100 MB)",
        kib as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        rss_child(&args[i + 1], &args[i + 2], &args[i + 3]);
        return;
    }
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (runs, mib) = (flag("--runs", 5), flag("--mib", 100));
    let bench_dir = std::env::var_os("TRELLIS_BENCH_DIR").unwrap_or_else(|| ".".into());
    if args.iter().any(|a| a == "--rss-mib") {
        let work = tempfile::tempdir_in(&bench_dir).unwrap();
        measure_rss(work.path(), flag("--rss-mib", 300));
        return;
    }

    let files = tree(mib);
    let unpacked: usize = files.iter().map(|(_, c)| c.len()).sum();
    let (bytes, release) = pack(&files);
    let work = tempfile::tempdir_in(&bench_dir).unwrap();
    let package = work.path().join("package.zip");
    std::fs::write(&package, &bytes).unwrap();
    println!(
        "package: {} files, {:.1} MiB unpacked, {:.1} MiB packed",
        files.len() + 1,
        unpacked as f64 / 1048576.0,
        bytes.len() as f64 / 1048576.0
    );

    let (mut unflushed, mut flushed, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let a = work.path().join(format!("trellis-{run}"));
        let b = work.path().join(format!("unzip-{run}"));
        let c = work.path().join(format!("flushed-{run}"));
        // Rotate the order so that no contender always runs first after the cleanup.
        let (mut t, mut u, mut f) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for step in 0..3 {
            settle();
            match (run + step) % 3 {
                0 => t = trellis(&package, &release, &a, Durability::Unflushed),
                1 => u = unzip_and_sha256sum(&package, &b),
                _ => f = trellis(&package, &release, &c, Durability::Flushed),
            }
        }
        println!(
            "run {run}: trellis (unflushed) {t:>9.3?}   unzip -q + sha256sum {u:>9.3?}   trellis (flushed, default) {f:>9.3?}"
        );
        unflushed.push(t);
        theirs.push(u);
        flushed.push(f);
        for dir in [a, b, c] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
    let (t, u, f) = (median(unflushed), median(theirs), median(flushed));
    let rate = |d: Duration| unpacked as f64 / 1e6 / d.as_secs_f64();
    println!(
        "median: trellis unflushed {t:.3?} ({:.0} MB/s), unzip -q + sha256sum {u:.3?} ({:.0} MB/s): ratio {:.2} (target <= 1.30)",
        rate(t),
        rate(u),
        t.as_secs_f64() / u.as_secs_f64()
    );
    println!(
        "median: trellis flushed (every file and directory fsynced) {f:.3?} ({:.0} MB/s): ratio {:.2} to the unflushed pair",
        rate(f),
        f.as_secs_f64() / u.as_secs_f64()
    );
}
