//! Staged rollouts end to end: the operator sets a share with `trellis-index rollout`,
//! the builder publishes it in the index doc, and the client holds the update back on
//! installs outside the share (decided by the install id), while new installs and
//! updates the user names go through.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Site, clock, clock_site};
use semver::Version;
use trellis_client::hooks::RecordingHooks;
use trellis_client::policy::{Percent, rollout_bucket};
use trellis_client::state::InstallId;
use trellis_client::store::{AlwaysAgree, Session, Store, install::parse_requirement};
use trellis_index::operator;
use trellis_index::registry::Registry;
use trellis_schema::PluginId;

/// The install id every test here pins, so its bucket is known.
const INSTALL_ID: &str = "00112233445566778899aabbccddeeff";
/// Its bucket for `acme.clock 1.1.0`. Pinned: changing the bucket formula would move
/// every install in or out of rollouts under way.
const BUCKET: u8 = 63;

fn clock_id() -> PluginId {
    "acme.clock".parse().unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// `acme.clock 1.0.0` installed on an install with [`INSTALL_ID`].
fn installed(data: &std::path::Path, site: &Site) -> Store {
    let mut store = common::store(data, site);
    store.update_state(|s| s.install_id = InstallId::from_hex(INSTALL_ID).unwrap()).unwrap();
    let hooks = RecordingHooks::new();
    store.install(&[parse_requirement("acme.clock").unwrap()], &Session::new(&hooks, &AlwaysAgree)).unwrap();
    store
}

/// Publishes `acme.clock 1.1.0` rolled out to `percent` (`None`: no rollout entry).
fn publish_staged(site: &Site, percent: Option<u32>) {
    site.add(&clock("1.1.0"));
    if let Some(percent) = percent {
        let registry = Registry::open(site.registry.path()).unwrap();
        operator::rollout(&registry, &clock_id(), &v("1.1.0"), Percent::new(percent).unwrap()).unwrap();
    }
    site.build();
}

fn reopen(store: Store, data: &std::path::Path, site: &Site) -> Store {
    drop(store);
    common::store(data, site)
}

fn active(store: &Store) -> Version {
    store.state().plugin(&clock_id()).unwrap().active.version.clone()
}

#[test]
fn the_pinned_install_id_has_the_pinned_bucket() {
    let id = InstallId::from_hex(INSTALL_ID).unwrap();
    assert_eq!(rollout_bucket(&id, &clock_id(), &v("1.1.0")), BUCKET);
}

#[test]
fn update_everything_holds_back_a_release_until_the_share_reaches_the_install() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let store = installed(data.path(), &site);
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);

    // Buckets below the share get the release; this install's bucket is not below it.
    publish_staged(&site, Some(u32::from(BUCKET)));
    let mut store = reopen(store, data.path(), &site);
    let report = store.update(&[], &session).unwrap();
    assert_eq!(report.updated, []);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    let (plugin, version, reason) = &report.skipped[0];
    assert_eq!((plugin, version), (&clock_id(), &v("1.1.0")));
    assert_eq!(
        reason,
        &format!(
            "staged rollout: offered to {BUCKET}% of installs so far (this one is in bucket {BUCKET}); name the plugin (`trellis update ID`) to get it now"
        )
    );
    assert_eq!(active(&store), v("1.0.0"));
    let check = store.check_updates(&[], &session).unwrap();
    assert_eq!(check.updates.len(), 1);
    assert_eq!(check.updates[0].decision.action, trellis_client::policy::Action::Skip);

    // One more percent takes this install in.
    let registry = Registry::open(site.registry.path()).unwrap();
    let before = operator::rollout(&registry, &clock_id(), &v("1.1.0"), Percent::new(u32::from(BUCKET) + 1).unwrap());
    assert_eq!(before.unwrap().map(Percent::get), Some(BUCKET));
    site.build();
    let mut store = reopen(store, data.path(), &site);
    let report = store.update(&[], &session).unwrap();
    assert_eq!(report.updated, [(clock_id(), v("1.0.0"), v("1.1.0"))]);
    assert_eq!(active(&store), v("1.1.0"));
}

#[test]
fn automatic_updates_wait_for_the_rollout_to_reach_the_install() {
    use trellis_client::policy::{PolicyOverride, UpdateMode};

    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let store = installed(data.path(), &site);
    publish_staged(&site, Some(u32::from(BUCKET)));
    let mut store = reopen(store, data.path(), &site);
    let auto = PolicyOverride { mode: Some(UpdateMode::Auto), ..Default::default() };
    store.update_state(|s| s.policies.plugins.insert(clock_id(), auto)).unwrap();
    let hooks = RecordingHooks::new();
    let session = Session::new(&hooks, &AlwaysAgree);

    let report = store.scheduled_update(&session).unwrap().expect("never checked: due");
    assert_eq!(report.updated, []);
    assert!(report.skipped[0].2.starts_with("staged rollout"), "{report:?}");

    let registry = Registry::open(site.registry.path()).unwrap();
    operator::rollout(&registry, &clock_id(), &v("1.1.0"), Percent::new(u32::from(BUCKET) + 1).unwrap()).unwrap();
    site.build();
    let mut store = reopen(store, data.path(), &site);
    store.update_state(|s| s.last_update_check = None).unwrap();
    let report = store.scheduled_update(&session).unwrap().expect("due again");
    assert_eq!(report.updated, [(clock_id(), v("1.0.0"), v("1.1.0"))]);
}

#[test]
fn naming_the_plugin_takes_a_release_the_rollout_holds_back() {
    let site = clock_site();
    let data = tempfile::tempdir().unwrap();
    let store = installed(data.path(), &site);
    publish_staged(&site, Some(0));
    let mut store = reopen(store, data.path(), &site);
    let hooks = RecordingHooks::new();

    let report = store.update(&[clock_id()], &Session::new(&hooks, &AlwaysAgree)).unwrap();

    assert_eq!(report.updated, [(clock_id(), v("1.0.0"), v("1.1.0"))]);
    assert_eq!(active(&store), v("1.1.0"));
}

#[test]
fn a_new_install_is_never_held_back_by_a_rollout() {
    let site = clock_site();
    publish_staged(&site, Some(0));
    let data = tempfile::tempdir().unwrap();

    let store = installed(data.path(), &site);

    assert_eq!(active(&store), v("1.1.0"));
}

#[test]
fn a_full_or_absent_rollout_reaches_every_install() {
    for rollout in [Some(100), None] {
        let site = clock_site();
        let data = tempfile::tempdir().unwrap();
        let store = installed(data.path(), &site);
        site.add(&clock("1.1.0"));
        if let Some(percent) = rollout {
            // Written by hand: the operator command drops a 100% entry instead.
            std::fs::write(
                site.registry.path().join("rollouts.json"),
                format!(r#"{{"rollouts": [{{"id": "acme.clock", "version": "1.1.0", "percent": {percent}}}]}}"#),
            )
            .unwrap();
        }
        site.build();
        let mut store = reopen(store, data.path(), &site);
        let doc = store.remotes().unwrap().doc(&"main".parse().unwrap(), &clock_id()).unwrap().unwrap();
        assert_eq!(doc.release(&v("1.1.0")).unwrap().rollout, rollout.map(|p| Percent::new(p).unwrap()));
        let hooks = RecordingHooks::new();

        let report = store.update(&[], &Session::new(&hooks, &AlwaysAgree)).unwrap();

        assert_eq!(report.updated, [(clock_id(), v("1.0.0"), v("1.1.0"))], "rollout {rollout:?}");
    }
}

#[test]
fn info_shows_a_release_still_rolling_out_and_not_a_finished_one() {
    let site = clock_site();
    publish_staged(&site, Some(25));
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(root.path(), site.root()).unwrap();
    let trellis = |args: &[&str]| {
        let out = std::process::Command::new(common::trellis_bin())
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "trellis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    trellis(&["registry", "add", "example", &site.url(), "--root", root.path().to_str().unwrap()]);

    let info = trellis(&["info", "acme.clock"]);
    let line = |version: &str| info.lines().find(|l| l.trim_start().starts_with(version)).unwrap().to_owned();
    assert!(line("1.1.0").contains("rolling out to 25% of installs"), "{info}");
    assert!(!line("1.0.0").contains("rolling out"), "{info}");
}
