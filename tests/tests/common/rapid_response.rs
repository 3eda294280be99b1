//! Issue 15 §6, the rapid-response path measured on loopback: `trellis-index block` →
//! `trellis-index build` (both the real binary, as the registry's CI runs them) → a
//! client's scheduled check (`Store::scheduled_update`, what `trellis update
//! --scheduled` and a host app's timer call) stops and disables the installed copy
//! through the host's hooks. Shared by `tests/rapid_response.rs` (which checks the
//! outcome) and `benches/rapid_response.rs` (which prints the figure). Times are data,
//! never asserted.

use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{AlwaysAgree, Session, install::parse_requirement};

use super::{Site, clock_site, store, trellis_index_bin};

/// One step of the path and how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// What ran.
    pub step: &'static str,
    /// Wall time in milliseconds.
    pub millis: f64,
    /// HTTP requests the loopback server answered during the step.
    pub requests: u64,
}

/// The whole path, with the bounds that matter in production.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Their sum: block to disabled, when the client checks right after the deploy.
    pub total_millis: f64,
    /// The hooks the host saw during the check (`stop acme.clock 1.0.0`).
    pub hooks: Vec<String>,
    /// Whether the installed copy ended disabled.
    pub disabled: bool,
    /// The timestamp's lifetime (what a stale mirror or CDN can delay the block by at
    /// most: after it, the client refuses the stale metadata).
    pub timestamp_expiry_hours: i64,
    /// The client's default check interval.
    pub check_interval_hours: i64,
    /// Worst case once the build is deployed: timestamp lifetime + check interval.
    pub worst_case_hours: i64,
}

fn timed<T>(steps: &mut Vec<Step>, site: &Site, step: &'static str, f: impl FnOnce() -> T) -> T {
    let before = site.server.requests();
    let start = Instant::now();
    let out = f();
    let elapsed: Duration = start.elapsed();
    steps.push(Step { step, millis: elapsed.as_secs_f64() * 1000.0, requests: site.server.requests() - before });
    out
}

/// Runs the path once on a fresh site with `acme.clock 1.0.0` installed.
pub fn measure() -> Measurement {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    let hooks_before = hooks.trace().len();
    let registry = site.registry.path().to_str().unwrap().to_owned();
    let out = site.site.path().to_str().unwrap().to_owned();
    let bin = trellis_index_bin();

    let mut steps = Vec::new();
    timed(&mut steps, &site, "trellis-index block", || {
        let status = Command::new(&bin)
            .args(["block", &registry, "acme.clock", "--reason", "exfiltrates calendars", "--severity", "critical"])
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    });
    timed(&mut steps, &site, "trellis-index build (the site is served from its output: deploy is instant)", || {
        let status = Command::new(&bin).args(["build", &registry, "--out", &out]).output().unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    });
    let report = timed(&mut steps, &site, "client scheduled check: refresh, disable, stop hook", || {
        store.scheduled_update(&session).unwrap()
    });
    let report = report.expect("a check is due: none ran since the install");
    let disabled = report.blocked.iter().any(|b| b.plugin.as_str() == "acme.clock")
        && store.state().plugin(&"acme.clock".parse().unwrap()).unwrap().disabled.is_some();

    let expiry = trellis_index::registry::Expiry::default();
    let timestamp_expiry_hours = i64::from(expiry.timestamp) * 24;
    let check_interval_hours = trellis_client::policy::DEFAULT_CHECK_INTERVAL.as_hours();
    Measurement {
        total_millis: steps.iter().map(|s| s.millis).sum(),
        steps,
        hooks: hooks.trace()[hooks_before..].to_vec(),
        disabled,
        timestamp_expiry_hours,
        check_interval_hours,
        worst_case_hours: timestamp_expiry_hours + check_interval_hours,
    }
}
