//! Issue 15: the cost of the analysis lint now runs.
//!
//! 1. **static analysis + scanning** of the ~100 MB mixed package of the pack and extract
//!    benchmarks (text, random binaries, small files) with real binaries and scripts
//!    added (every ELF of /usr/bin/ up to 40, a mingw PE when the cross compiler is
//!    installed, a few scripts): the time and peak RSS of `lint` as it was (open +
//!    verify, the checks it ran on a package) against `lint` now (extract to scratch +
//!    static analysis), and with the scanners (known-bad list; ClamAV and YARA when
//!    installed, with a test database and rule). Targets: ≤ 2× the time, ≤ 200 MB.
//!    Each mode runs in a fresh process so its peak RSS (VmHWM) is its own.
//! 2. **sandbox overhead** per plugin: a small ELF run directly against the same run in
//!    the sandbox (bubblewrap + strace + limits), best and median of 5.
//!
//! `cargo bench -p trellis-index --bench analysis` (`TRELLIS_BENCH_MB` for another size).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use trellis_client::package::{Limits, Package};
use trellis_index::analysis::AnalysisOptions;
use trellis_index::analysis::sandbox::SandboxOptions;
use trellis_index::analysis::scanners::{ClamavConfig, ScannerConfig, YaraConfig};
use trellis_index::lint::{LintOptions, lint};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--mode") {
        return child(&args[at + 1], Path::new(&args[at + 2]));
    }
    let megabytes: u64 = std::env::var("TRELLIS_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let package = mixed_package(dir.path(), megabytes)?;
    println!("package: {:.1} MB ({})", std::fs::metadata(&package)?.len() as f64 / 1e6, package.display());
    let mut baseline = None;
    for mode in ["before", "static", "scanners"] {
        let mut best = f64::INFINITY;
        let mut rss = 0.0f64;
        let mut said = String::new();
        for _ in 0..3 {
            let out =
                Command::new(std::env::current_exe()?).args(["--mode", mode]).arg(&package).arg(dir.path()).output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let fields: Vec<&str> = text.split_whitespace().collect();
            let (Some(secs), Some(mib)) =
                (fields.first().and_then(|s| s.parse::<f64>().ok()), fields.get(1).and_then(|s| s.parse::<f64>().ok()))
            else {
                return Err(format!("{mode}: {text} {}", String::from_utf8_lossy(&out.stderr)).into());
            };
            best = best.min(secs);
            rss = rss.max(mib);
            said = fields[2..].join(" ");
        }
        let ratio = baseline.map(|b: f64| format!(", {:.2}x lint before", best / b)).unwrap_or_default();
        println!("{mode:>9}: best of 3 {best:.3} s, peak RSS {rss:.1} MiB{ratio} {said}");
        baseline.get_or_insert(best);
    }
    sandbox_overhead(dir.path())?;
    Ok(())
}

fn child(mode: &str, package: &Path) -> Result<()> {
    let work = Path::new(&std::env::args().nth(4).unwrap_or_default()).to_owned();
    let start = Instant::now();
    let said = match mode {
        "before" => {
            // What lint did on a package before the analysis: the hardened open and a
            // full verify (inflate and hash every file), plus plugin.json.
            let p = Package::open_unsigned(package, &Limits::default())?;
            p.verify()?;
            let _ = p.plugin_json()?;
            String::new()
        }
        "static" => {
            let report = lint(package, &LintOptions::default())?;
            let a = report.analysis.unwrap_or_default();
            format!("({} capability classes, {} problems)", a.capabilities.len(), report.problems.len())
        }
        _ => {
            let report = lint(
                package,
                &LintOptions {
                    analysis: AnalysisOptions { scanners: scanners(&work)?, ..Default::default() },
                    ..Default::default()
                },
            )?;
            let a = report.analysis.unwrap_or_default();
            let names: Vec<&str> = a.scanners.iter().map(|s| s.scanner.as_str()).collect();
            format!("(scanners: {})", names.join(", "))
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    println!("{secs} {} {said}", kib / 1024.0);
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn scanners(work: &Path) -> Result<ScannerConfig> {
    let list = work.join("known-bad.txt");
    std::fs::write(&list, format!("{} Bench.Never\n", "ab".repeat(32)))?;
    let mut config = ScannerConfig { known_bad: Some(list), ..Default::default() };
    if which("clamscan") {
        let db = work.join("clamdb");
        std::fs::create_dir_all(&db)?;
        std::fs::write(db.join("bench.hsb"), format!("{}:10:Bench.Never\n", "cd".repeat(32)))?;
        config.clamav = Some(ClamavConfig { database: Some(db), required: true });
    }
    if which("yara") {
        let rules = work.join("bench.yar");
        std::fs::write(
            &rules,
            "rule Bench_Never { strings: $a = \"TRELLIS-BENCH-NEVER-PRESENT-7f3a\" condition: $a }\n",
        )?;
        config.yara = Some(YaraConfig { rules: vec![rules], required: true });
    }
    Ok(config)
}

fn mixed_package(dir: &Path, megabytes: u64) -> Result<PathBuf> {
    let tree = dir.join("tree");
    trellis_tests::trees::write_mixed_tree(&tree, megabytes << 20, 42)?;
    let bin = tree.join("bin/any/tools");
    std::fs::create_dir_all(&bin)?;
    let mut elves = 0;
    for entry in std::fs::read_dir("/usr/bin")?.filter_map(std::result::Result::ok) {
        let path = entry.path();
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if elves < 40 && bytes.starts_with(b"\x7fELF") && bytes.len() < 4 << 20 {
            std::fs::write(bin.join(format!("tool{elves}")), bytes)?;
            elves += 1;
        }
    }
    if which("x86_64-w64-mingw32-gcc") {
        let src = dir.join("w.c");
        std::fs::write(&src, "#include <winsock2.h>\nint main(void){WSADATA w; return WSAStartup(0x202,&w);}\n")?;
        let status = Command::new("x86_64-w64-mingw32-gcc")
            .arg("-o")
            .arg(bin.join("win.exe"))
            .arg(&src)
            .arg("-lws2_32")
            .status()?;
        assert!(status.success());
    }
    std::fs::write(bin.join("fetch.ps1"), "Invoke-WebRequest https://example.com\n".repeat(1000))?;
    std::fs::write(bin.join("helper.py"), "import json\nprint(json.dumps({}))\n".repeat(1000))?;
    let package = dir.join("mixed.zip");
    trellis_index::pack::pack_dir(&tree, &package)?;
    Ok(package)
}

fn sandbox_overhead(dir: &Path) -> Result<()> {
    if !["gcc", "bwrap", "strace", "prlimit", "time"].iter().all(|t| which(t)) {
        println!("sandbox: skipped (needs gcc, bwrap, strace, prlimit, time)");
        return Ok(());
    }
    let tree = dir.join("hello");
    trellis_tests::trees::write_skeleton(&tree, "acme.hello", "1.0.0")?;
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(tree.join("plugin.json"))?)?;
    meta["platforms"] = serde_json::json!(["linux-x86_64"]);
    meta["entry"] = serde_json::json!({"linux-x86_64": "bin/linux-x86_64/hello"});
    std::fs::write(tree.join("plugin.json"), meta.to_string())?;
    std::fs::remove_file(tree.join("bin/any/main.sh"))?;
    std::fs::create_dir_all(tree.join("bin/linux-x86_64"))?;
    let src = dir.join("hello.c");
    std::fs::write(&src, "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n")?;
    let entry = tree.join("bin/linux-x86_64/hello");
    assert!(Command::new("gcc").arg("-O1").arg("-o").arg(&entry).arg(&src).status()?.success());
    let mut direct = Vec::new();
    let mut sandboxed = Vec::new();
    let mut lint_static = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        Command::new(&entry).output()?;
        direct.push(t.elapsed());
        let t = Instant::now();
        lint(&tree, &LintOptions::default())?;
        lint_static.push(t.elapsed());
        let t = Instant::now();
        let sandbox = SandboxOptions::default();
        let report = lint(
            &tree,
            &LintOptions {
                analysis: AnalysisOptions { sandbox: Some(sandbox), ..Default::default() },
                ..Default::default()
            },
        )?;
        sandboxed.push(t.elapsed());
        assert!(report.analysis.and_then(|a| a.sandbox).is_some());
    }
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        (v[0].as_secs_f64() * 1e3, v[v.len() / 2].as_secs_f64() * 1e3)
    };
    let (db, dm) = stats(&mut direct);
    let (lb, lm) = stats(&mut lint_static);
    let (sb, sm) = stats(&mut sandboxed);
    println!(
        "sandbox: hello run directly best {db:.1} ms / median {dm:.1} ms; lint of the tree best {lb:.1} / median {lm:.1} ms; lint --sandbox best {sb:.1} / median {sm:.1} ms: overhead per plugin ~{:.0} ms",
        sm - lm
    );
    Ok(())
}
