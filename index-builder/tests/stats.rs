//! `trellis-index stats ingest` as a scheduled CI job runs it on a registry checkout.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

fn ingest(registry: &Path, log: &Path) -> (serde_json::Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["stats", "ingest", "--json", "--registry"])
        .arg(registry)
        .arg(log)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (serde_json::from_slice(&output.stdout).unwrap(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn ingests_an_nginx_log_once_reporting_garbage_lines() {
    let registry = tempfile::tempdir().unwrap();
    let hash = "0".repeat(64);
    let mut log = String::new();
    for n in 0..3 {
        log.push_str(&format!(
            "10.0.0.{n} - - [01/Nov/2026:08:00:0{n} +0000] \"GET /targets/plugins/acme/acme.clock/{hash}.acme.clock-1.0.0.zip HTTP/2.0\" 200 512 \"-\" \"trellis/0.1\"\n"
        ));
    }
    log.push_str("\u{7f}ELF garbage\n");
    log.push_str("10.0.0.9 - - [01/Nov/2026:09:00:00 +0000] \"GET /metadata/timestamp.json HTTP/2.0\" 304 0 \"-\" \"trellis/0.1\"\n");
    let path = registry.path().join("access.log");
    std::fs::write(&path, log).unwrap();

    let (report, stderr) = ingest(registry.path(), &path);
    assert_eq!(report[0]["format"], "combined");
    assert_eq!(report[0]["requests"], 4);
    assert!(stderr.contains("access.log:4: skipped"), "{stderr}");
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.path().join("stats/downloads.json")).unwrap()).unwrap();
    assert_eq!(counts["downloads"]["acme.clock"]["1.0.0"]["2026-11-01"], 3);
    assert_eq!(counts["update_checks"]["2026-11-01"], 1);

    let (report, _) = ingest(registry.path(), &path);
    assert_eq!(report[0]["already_ingested"], true);
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.path().join("stats/downloads.json")).unwrap()).unwrap();
    assert_eq!(again, counts, "a log ingested twice counts once");
}

#[test]
fn the_example_registrys_access_log_is_read_with_its_probe_line_reported() {
    let registry = tempfile::tempdir().unwrap();
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-template/examples/access.log");
    let (report, stderr) = ingest(registry.path(), &log);
    assert_eq!(report[0]["format"], "combined");
    assert_eq!(report[0]["malformed"].as_array().unwrap().len(), 1, "{stderr}");
    assert!(stderr.contains("access.log:") && stderr.contains("skipped"), "{stderr}");
    let counts: trellis_index::stats::Counts =
        serde_json::from_slice(&std::fs::read(registry.path().join("stats/downloads.json")).unwrap()).unwrap();
    let figures = trellis_index::stats::figures(&counts, "2026-11-29".parse().unwrap());
    let total = |id: &str| figures.of(&id.parse().unwrap()).total;
    assert_eq!((total("acme.clock"), total("acme.time-core"), total("contoso.imagetools")), (35, 22, 8));
    assert!(figures.trending.first().is_some_and(|id| id.as_str() == "acme.clock"), "{:?}", figures.trending);
}
