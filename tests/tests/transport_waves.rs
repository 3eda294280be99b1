//! A wide level of a dependency graph costs one round trip, like a narrow one: the
//! roles a prefetch wave loads (its docs' hash bins and its vendors' publisher bins)
//! go out together, not [`PARALLEL_DOWNLOADS`] at a time. On the 100k-plugin registry
//! a level of the lifecycle bench's 30-plugin graph needs 17 of them, and the
//! seventeenth took a round trip of its own (11 round trips; 10 since).
//!
//! [`PARALLEL_DOWNLOADS`]: trellis_client::store::source::PARALLEL_DOWNLOADS

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Plugin, Site, host, served};
use trellis_client::hooks::NoHooks;
use trellis_client::store::source::{DELEGATION_DOWNLOADS, PARALLEL_DOWNLOADS};
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions, install::parse_requirement};
use trellis_tests::fault_server::{FaultServer, ROUND_TRIP_LATENCY};

/// Dependencies of the app, each from a vendor of its own.
const WIDTH: usize = 14;

/// `acme.app` depending on [`WIDTH`] plugins, each from a vendor of its own, on 256
/// hash bins and the default publisher bins: the level below the app needs about a
/// bin and a publisher bin per dependency.
fn wide_site() -> Site {
    let site = Site::with_bin_bits(8);
    let mut app = Plugin::new("acme.app", "1.0.0");
    for i in 0..WIDTH {
        let vendor = format!("wide{i}");
        let key = trellis_index::fixture::key(100 + i as u8);
        trellis_index::fixture::add_publisher(site.registry.path(), &vendor, &key).unwrap();
        let id = format!("{vendor}.lib");
        site.add_signed(&Plugin::new(&id, "1.0.0"), &key);
        app = app.depends_on(&id, "^1");
    }
    site.publish(&[app]);
    site
}

/// Installs `acme.app` from `server` into a fresh store, counting from the install's
/// first request (after `add_registry`).
fn cold_install(site: &Site, server: &FaultServer) {
    let data = tempfile::tempdir().unwrap();
    let mut store = Store::open(data.path(), StoreOptions::new(host())).unwrap();
    store.add_registry("main", &server.url(), &site.root()).unwrap();
    server.reset_counters();
    let report =
        store.install(&[parse_requirement("acme.app").unwrap()], &Session::new(&NoHooks, &AlwaysAgree)).unwrap();
    assert_eq!(report.installed.len(), WIDTH + 1);
}

/// The most requests the server had in flight at once among `spans`.
fn most_in_flight(spans: &[(Duration, Duration)]) -> usize {
    spans.iter().map(|(start, _)| spans.iter().filter(|(a, b)| a <= start && start < b).count()).max().unwrap_or(0)
}

#[test]
fn a_level_needing_more_roles_than_parallel_downloads_takes_one_round_trip() {
    let site = wide_site();
    let server = served(&site);
    // Latency makes requests sent together overlap in the server's count.
    server.set_latency(ROUND_TRIP_LATENCY);
    cold_install(&site, &server);

    // The level below the app really needs more roles than PARALLEL_DOWNLOADS (and
    // no more than a wave loads at once), or this test proves nothing.
    let is_role = |p: &str| p.starts_with("/metadata/") && (p.contains(".bin-") || p.contains(".pub-"));
    let roles: BTreeSet<String> = server.hits().into_iter().map(|h| h.path).filter(|p| is_role(p)).collect();
    assert!(
        roles.len() > PARALLEL_DOWNLOADS + 2 && roles.len() <= DELEGATION_DOWNLOADS + 2,
        "{} bins and publisher bins (2 of them the app's): {roles:#?}",
        roles.len()
    );
    // All of them in flight at once: loaded PARALLEL_DOWNLOADS at a time, never more
    // than that many are (whatever the timing), and the rest wait a round trip.
    let spans: Vec<(Duration, Duration)> =
        server.timeline().into_iter().filter(|(_, _, p)| is_role(p)).map(|(a, b, _)| (a, b)).collect();
    let most = most_in_flight(&spans);
    assert!(most > PARALLEL_DOWNLOADS, "at most {most} roles in flight at once: {spans:#?}");
    // The update check with the app's roles and alias; the level below (every bin,
    // publisher bin and alias at once, with the app's envelope and record); the
    // packages with the level's envelopes and records. Loading the level's roles
    // PARALLEL_DOWNLOADS at a time made it 4.
    let chain = server.critical_chain();
    assert!(chain.len() <= 3, "{} requests: {chain:#?}", server.request_count());
}

/// Against a server that keeps connections open, as a CDN does, a wave's requests go
/// out on the connections the waves before it opened: a cold install opens about as
/// many connections as it has requests in flight at once, not one per request (a
/// new connection is one more round trip, two or more with TLS, which loopback does
/// not show). Fails when the client closes its connections after each request or
/// keeps fewer idle than a wave has in flight.
#[test]
fn a_cold_install_reuses_kept_alive_connections_from_wave_to_wave() {
    let site = wide_site();
    let server = served(&site);
    server.set_keep_alive(true);
    // Enough for the requests of a wave to overlap, and for each wave's answers to be
    // read (and their connections back in the pool) before the next wave goes out.
    server.set_latency(Duration::from_millis(50));
    cold_install(&site, &server);

    let requests = server.request_count();
    let spans: Vec<(Duration, Duration)> = server.timeline().into_iter().map(|(a, b, _)| (a, b)).collect();
    let most = most_in_flight(&spans);
    let connections = server.connections();
    // A connection a request ends may be back in the pool a moment after the next one
    // went out on a new one: a few to spare.
    const SPARE: usize = 4;
    // The install's waves (the update check, the level below the app, the packages)
    // send more requests than are ever in flight at once, or reuse could not show.
    assert!(most + SPARE < requests, "{requests} requests, {most} in flight at once: nothing to reuse");
    assert!(
        connections <= most + SPARE,
        "{connections} connections for {requests} requests, at most {most} in flight at once"
    );
}
