//! `trellis-index serve` on loopback: 1,000 kept-alive requests over one connection
//! (index-doc-sized and blob-sized files, half of them conditional `304`s), then the
//! same from 4 clients at once; prints p50/p99/max per request. Target: p99 < 5 ms.
//!
//! `cargo bench -p trellis-index --bench serve` (`TRELLIS_BENCH_REQUESTS` for another count).

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let slow = times.iter().filter(|d| **d > Duration::from_millis(30)).count();
    println!(
        "serve {label}: {} requests, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {slow} over 30 ms",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(percentile(&times, 1.0)),
    );
}

/// `requests` kept-alive requests over one ureq agent (one pooled connection).
fn client(base: &str, requests: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error + Send + Sync>> {
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let files = ["index/ab/acme.tool.json", "blobs/pkg.zip", "metadata/timestamp.json"];
    let mut etags: Vec<Option<String>> = vec![None; files.len()];
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests {
        let f = i % files.len();
        let mut request = agent.get(format!("{base}{}", files[f]));
        // Every second round is conditional, as a refresh's timestamp fetch is.
        if (i / files.len()) % 2 == 1
            && let Some(etag) = &etags[f]
        {
            request = request.header("If-None-Match", etag);
        }
        let start = Instant::now();
        let mut response = request.call()?;
        let body = response.body_mut().read_to_vec()?;
        times.push(start.elapsed());
        if let Some(etag) = response.headers().get("etag") {
            etags[f] = Some(etag.to_str()?.to_owned());
        }
        std::hint::black_box(body);
    }
    Ok(times)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let requests: usize = std::env::var("TRELLIS_BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let site = tempfile::tempdir()?;
    for (path, size) in
        [("index/ab/acme.tool.json", 3_000), ("blobs/pkg.zip", 200_000), ("metadata/timestamp.json", 700)]
    {
        let path = site.path().join(path);
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(path, (0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>())?;
    }
    let server = trellis_index::serve::Server::start(site.path(), "127.0.0.1:0".parse()?)?;
    let base = server.url();
    // Warm up the connection and the page cache.
    client(&base, 10)?;
    report("1 kept-alive client", client(&base, requests)?);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || client(&base, requests / 4))
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.join().map_err(|_| "client panicked")??);
    }
    report("4 kept-alive clients", all);
    Ok(())
}
