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

/// `text` gzipped as CloudFront and Logpush write it: here in two concatenated members.
fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let (first, second) = text.split_at(text.len() / 2);
    let mut out = Vec::new();
    for part in [first, second] {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(part.as_bytes()).unwrap();
        out.extend(encoder.finish().unwrap());
    }
    out
}

#[test]
fn a_gzipped_cloudfront_log_is_read_like_the_plain_one_and_counts_once_either_way() {
    let hash = "0".repeat(64);
    let mut log = String::from(
        "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status\n",
    );
    for n in 0..4 {
        log.push_str(&format!(
            "2026-11-0{}\t08:00:00\tFRA2\t512\t10.0.0.{n}\tGET\td1.cloudfront.net\t/targets/plugins/acme/acme.clock/{hash}.acme.clock-1.0.0.zip\t200\n",
            n + 1
        ));
    }
    let registry = tempfile::tempdir().unwrap();
    let gz = registry.path().join("E2ABC.2026-11-04-08.abcd1234.gz");
    std::fs::write(&gz, gzip(&log)).unwrap();
    let (report, stderr) = ingest(registry.path(), &gz);
    assert_eq!(report[0]["format"], "cloud-front", "{report} {stderr}");
    assert_eq!(report[0]["requests"], 4, "{report}");
    // The same log uncompressed is the same log: not counted twice.
    let plain = registry.path().join("plain.log");
    std::fs::write(&plain, &log).unwrap();
    let (again, _) = ingest(registry.path(), &plain);
    assert_eq!(again[0]["already_ingested"], true, "{again}");
    let counts: trellis_index::stats::Counts =
        serde_json::from_slice(&std::fs::read(registry.path().join("stats/downloads.json")).unwrap()).unwrap();
    assert_eq!(counts.total(&"acme.clock".parse().unwrap(), None), 4);

    // A truncated gzip file is refused naming it, and nothing is counted from it.
    let broken = registry.path().join("broken.gz");
    let mut bytes = gzip(&log.replace("10.0.0.", "10.9.9."));
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&broken, bytes).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["stats", "ingest", "--registry"])
        .arg(registry.path())
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.gz") && stderr.contains("gzip"), "{stderr}");
    let after: trellis_index::stats::Counts =
        serde_json::from_slice(&std::fs::read(registry.path().join("stats/downloads.json")).unwrap()).unwrap();
    assert_eq!(after, counts);
}
