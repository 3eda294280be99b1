//! The rapid-response figure (issue 15 §6): how long from `trellis-index block` to the
//! installed copy stopped and disabled by a client's scheduled check, on loopback, and
//! the worst case once deployed (timestamp lifetime + check interval).
//!
//! `cargo bench -p trellis-tests --bench rapid_response [-- RUNS]` (default 3 runs):
//! prints each run's steps as JSON, then the median of each step.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    let mut all = Vec::new();
    for run in 0..runs {
        let measured = common::rapid_response::measure();
        assert!(measured.disabled, "run {run}: the blocked plugin was not disabled: {measured:?}");
        println!("run {run}: {}", serde_json::to_string(&measured).unwrap());
        all.push(measured);
    }
    let steps = all[0].steps.len();
    for i in 0..steps {
        let mut times: Vec<f64> = all.iter().map(|m| m.steps[i].millis).collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{:<80} median {:>8.1} ms  ({} requests)",
            all[0].steps[i].step,
            times[times.len() / 2],
            all[0].steps[i].requests
        );
    }
    let mut totals: Vec<f64> = all.iter().map(|m| m.total_millis).collect();
    totals.sort_by(f64::total_cmp);
    println!("{:<80} median {:>8.1} ms", "block to disabled (check right after the deploy)", totals[totals.len() / 2]);
    println!(
        "worst case once deployed: timestamp lifetime {} h + check interval {} h = {} h (see registry-template/docs/RAPID-RESPONSE.md)",
        all[0].timestamp_expiry_hours, all[0].check_interval_hours, all[0].worst_case_hours
    );
}
