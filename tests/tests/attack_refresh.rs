//! Issue 10, item 5: a host app that keeps its `Store` open must see what the registry
//! publishes after the store was opened. Each test opens ONE store, installs, changes
//! the served site (a new release, a critical block, an expired timestamp), and asks the
//! same store again: it must refresh (the one-request check), drop the index docs it
//! memoized under the old snapshot, and judge expiry at the time of the call.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Plugin, clock, clock_site, store};
use semver::Version;
use trellis_client::events::{ChannelReporter, Event};
use trellis_client::hooks::RecordingHooks;
use trellis_client::store::{AlwaysAgree, Session, StoreError, install::parse_requirement};
use trellis_index::registry::Registry;
use trellis_schema::PluginId;
use trellis_schema::blocklist::Severity;

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

#[test]
fn a_store_kept_open_sees_a_release_published_after_it_was_opened() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    assert!(store.check_updates(&[], &session).unwrap().updates.is_empty());

    site.publish(&[clock("1.1.0"), Plugin::new("contoso.weather", "1.0.0")]);

    let check = store.check_updates(&[], &session).unwrap();
    let found: Vec<(String, String)> = check.updates.iter().map(|u| (u.plugin.to_string(), u.to.to_string())).collect();
    assert_eq!(found, [("acme.clock".to_owned(), "1.1.0".to_owned())], "the open store saw the new release");
    let report = store.update(&[], &session).unwrap();
    assert_eq!(report.updated, [(id("acme.clock"), v("1.0.0"), v("1.1.0"))]);
    // A plugin published after the store opened installs through the same store.
    let installed = store.install(&[parse_requirement("contoso.weather").unwrap()], &session).unwrap();
    assert_eq!(installed.installed, [(id("contoso.weather"), v("1.0.0"))]);
}

#[test]
fn a_store_kept_open_disables_a_plugin_blocked_after_it_was_opened() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    assert!(store.check_updates(&[], &session).unwrap().blocked.is_empty());
    let installed_before = store.state().installed_versions();

    site.block("acme.clock", "uploads your documents");

    let (reporter, events) = ChannelReporter::new();
    let session = session.with_reporter(Arc::new(reporter));
    let check = store.check_updates(&[], &session).unwrap();
    assert_eq!(check.blocked.len(), 1, "{check:?}");
    let blocked = &check.blocked[0];
    assert_eq!((blocked.plugin.as_str(), blocked.version.to_string()), ("acme.clock", "1.0.0".to_owned()));
    assert_eq!(blocked.mark.severity(), Some(Severity::Critical));
    assert_eq!(blocked.mark.reason, "uploads your documents");
    assert_eq!(hooks.trace().last().unwrap(), "stop acme.clock 1.0.0", "the host was told to stop it");
    let mark = store.state().plugin(&id("acme.clock")).unwrap().disabled.clone().unwrap();
    assert_eq!(mark, blocked.mark);
    assert_eq!(store.state().installed_versions(), installed_before, "nothing was removed or moved");
    let told: Vec<Event> = events.try_iter().filter(|e| matches!(e, Event::Disabled { .. })).collect();
    assert_eq!(told.len(), 1, "the host's UI was told once: {told:?}");
    let Event::Disabled { message, .. } = &told[0] else { unreachable!() };
    assert!(message.contains("acme.clock 1.0.0 is blocked (critical severity): uploads your documents"), "{message}");
    // Found again by the next check, but not reported or stopped again.
    let calls = hooks.calls().len();
    assert_eq!(store.check_updates(&[], &session).unwrap().blocked.len(), 1);
    assert_eq!(hooks.calls().len(), calls);
    assert!(events.try_iter().all(|e| !matches!(e, Event::Disabled { .. })));
}

#[test]
fn a_store_kept_open_refuses_a_timestamp_that_expired() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    store.check_updates(&[], &session).unwrap();
    let metadata = store.data_dir().metadata_dir(&"main".parse().unwrap());
    let trusted_before = std::fs::read(metadata.join("timestamp.json")).unwrap();
    let state_before = std::fs::read(store.data_dir().state_file()).unwrap();

    // The operator's scheduled job stopped: the mirror now serves a genuinely signed
    // timestamp (a higher version) whose expiry is in the past (a freeze).
    let registry = Registry::open(site.registry.path()).unwrap();
    let days = i64::from(registry.config.expiry_days.timestamp) + 2;
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days);
    trellis_index::operator::timestamp(&registry, site.site.path(), long_ago).unwrap();

    let error = store.check_updates(&[], &session).unwrap_err();
    assert!(matches!(error, StoreError::Trust { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("registry `main`") && message.contains("timestamp") && message.contains("expired"),
        "{message}"
    );
    let error = store.update(&[], &session).unwrap_err();
    assert!(error.to_string().contains("expired"), "{error}");
    assert_eq!(std::fs::read(metadata.join("timestamp.json")).unwrap(), trusted_before, "trusted metadata unchanged");
    assert_eq!(std::fs::read(store.data_dir().state_file()).unwrap(), state_before, "state unchanged");
}

#[test]
fn an_open_store_pays_one_request_per_check_when_nothing_changed() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let mut store = store(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);
    store.install(&[parse_requirement("acme.clock").unwrap()], &session).unwrap();
    store.check_updates(&[], &session).unwrap();
    for _ in 0..3 {
        let before = site.server.requests();
        assert!(store.check_updates(&[], &session).unwrap().updates.is_empty());
        assert_eq!(site.server.requests() - before, 1, "one conditional GET of timestamp.json");
    }
}
