//! `trellis-index mirror URL` against servers that stall: it ends, naming the URL,
//! instead of waiting forever (connect/read timeouts and a minimum transfer rate).

#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback server that accepts every connection, reads the request and then
/// `behaviour` does what it does with the connection, each in its own thread.
fn server(behaviour: fn(std::net::TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                behaviour(stream);
            });
        }
    });
    url
}

/// Never answers: the connection stays open and silent.
fn stall(stream: std::net::TcpStream) {
    std::thread::sleep(Duration::from_secs(600));
    drop(stream);
}

/// Answers with headers, then one byte every 300 ms: never silent for long, far too slow.
fn drip(mut stream: std::net::TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    for _ in 0..2000 {
        if stream.write_all(b"{").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs `trellis-index mirror URL DEST --timeout 1`, failing the test if it has not
/// ended after a minute (it would otherwise hang the suite); returns stderr.
fn mirror(url: &str) -> String {
    let dest = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis-index"))
        .args(["mirror", url, dest.path().join("copy").to_str().unwrap(), "--timeout", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("trellis-index mirror {url} still running after a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!dest.path().join("copy/metadata/timestamp.json").exists(), "nothing copied: {stderr}");
    stderr
}

#[test]
fn a_server_that_never_answers_times_out_naming_the_url() {
    let url = server(stall);
    let stderr = mirror(&url);
    assert!(stderr.contains(&format!("{url}metadata/")) && stderr.contains("timed out"), "{stderr}");
}

#[test]
fn a_server_that_drip_feeds_fails_the_minimum_rate_naming_the_url() {
    let url = server(drip);
    let stderr = mirror(&url);
    assert!(stderr.contains(&format!("{url}metadata/")), "{stderr}");
    assert!(stderr.contains("too slow") || stderr.contains("slow"), "{stderr}");
}
