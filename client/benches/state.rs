//! The local state's costs on a large install base: opening the data dir (lock + parse
//! of a state file with 1000 installed plugins), one journalled update of a plugin
//! among 100 (five atomic state writes, pointer, cleanup; fsync included), and the
//! policy decisions for 100 available updates.
//!
//! Run with `cargo bench -p trellis-client --bench state`.

use std::collections::BTreeMap;
use std::fs;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::tz::TimeZone;
use semver::Version;
use trellis_client::activate;
use trellis_client::policy::{AvailableUpdate, Percent, Policies, PolicyContext, Trigger, UpdateMode, decide};
use trellis_client::state::{DataDir, InstallId, InstallReason, InstalledRelease, StateStore};
use trellis_schema::PluginId;

fn plugin(i: usize) -> PluginId {
    format!("bench.plugin{i:04}").parse().expect("valid id")
}

fn release(version: Version, i: usize) -> InstalledRelease {
    InstalledRelease { version, dependencies: (1..4).map(|d| plugin((i + d) % 1000)).collect(), package_sha256: None }
}

/// A data dir with `count` plugins installed through real transactions.
fn installed(count: usize) -> (tempfile::TempDir, DataDir) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = DataDir::new(tmp.path());
    let mut store = StateStore::open(dir.clone()).expect("open");
    for i in 0..count {
        let mut tx = activate::begin_install(
            &mut store,
            &plugin(i),
            release(Version::new(1, 0, 0), i),
            "public".parse().expect("valid name"),
            InstallReason::Requested,
        )
        .expect("begin");
        let target = tx.target_dir().expect("target");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("plugin.json"), b"{}").expect("write");
        tx.staged().expect("staged");
        tx.switch().expect("switch");
        tx.finish().expect("finish");
    }
    (tmp, dir)
}

/// A data dir whose state file lists `count` installed plugins (written directly: a
/// thousand journalled installs would only measure the disk).
fn state_file_with(count: usize) -> (tempfile::TempDir, DataDir) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = DataDir::new(tmp.path());
    let plugins: serde_json::Map<String, serde_json::Value> = (0..count)
        .map(|i| {
            let record = serde_json::json!({
                "registry": "public",
                "active": release(Version::new(1, 2, 0), i),
                "previous": release(Version::new(1, 1, 0), i),
            });
            (plugin(i).to_string(), record)
        })
        .collect();
    let state = serde_json::json!({
        "schema_version": 1,
        "install_id": "00112233445566778899aabbccddeeff",
        "plugins": plugins,
    });
    fs::write(dir.state_file(), serde_json::to_vec_pretty(&state).expect("json")).expect("write");
    (tmp, dir)
}

fn bench(c: &mut Criterion) {
    let (_big, big) = state_file_with(1000);
    c.bench_function("state/open_1000_plugins", |b| {
        b.iter(|| black_box(StateStore::open(big.clone()).expect("open").state().plugins().len()))
    });

    let (_tmp, dir) = installed(100);
    let mut store = StateStore::open(dir).expect("open");
    let mut minor = 0;
    c.bench_function("activate/update_one_of_100", |b| {
        b.iter(|| {
            minor += 1;
            let mut tx =
                activate::begin_update(&mut store, &plugin(7), release(Version::new(1, minor, 0), 7)).expect("begin");
            let target = tx.target_dir().expect("target");
            fs::create_dir(&target).expect("mkdir");
            fs::write(target.join("plugin.json"), b"{}").expect("write");
            tx.staged().expect("staged");
            tx.stopped().expect("stopped");
            tx.switch().expect("switch");
            tx.finish().expect("finish");
        })
    });

    let now = jiff::civil::date(2026, 11, 25).at(3, 0, 0, 0).to_zoned_datetime(TimeZone::UTC).expect("time");
    let install_id = InstallId::from_hex("00112233445566778899aabbccddeeff").expect("id");
    let mut policies = Policies::default();
    policies.global.mode = UpdateMode::Auto;
    policies.global.window = Some("02:00-05:00".parse().expect("window"));
    let pins = BTreeMap::from([(plugin(3), Version::new(1, 0, 0))]);
    let updates: Vec<AvailableUpdate> = (0..100)
        .map(|i| AvailableUpdate {
            plugin: plugin(i),
            from: Version::new(1, 0, 0),
            to: Version::new(1, 1, 0),
            rollout: Some(Percent::new(50).expect("percent")),
            needs_consent: vec![],
        })
        .collect();
    c.bench_function("policy/decide_100_updates", |b| {
        b.iter(|| {
            let ctx = PolicyContext {
                now: &now,
                install_id: &install_id,
                policies: &policies,
                pins: &pins,
                trigger: Trigger::Scheduled,
            };
            updates.iter().map(|u| decide(ctx, u)).filter(|d| d.action == trellis_client::policy::Action::Apply).count()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
