//! License tokens and trials end to end (issue 11 §5), against a real site built by
//! `trellis-index` and served on 127.0.0.1, through the real binaries: a vendor creates
//! a license key and lists it in its publisher record, mints tokens from a checkout
//! webhook event, a user adds them with `trellis license add`; tokens that are garbage,
//! edited, forged, for another plugin or vendor, expired, or signed by a key the vendor
//! revoked are refused with a clear message and change nothing; trials start at the
//! first install, survive a reinstall and end, judged at an injected time.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use common::{Plugin, Site, store, trellis_bin, trellis_index_bin};
use trellis_client::hooks::RecordingHooks;
use trellis_client::license::LicenseState;
use trellis_client::state::Trial;
use trellis_client::store::install::parse_requirement;
use trellis_client::store::{AlwaysAgree, Session, Store, StoreOptions};
use trellis_schema::{PluginId, SigningKey};

fn id(s: &str) -> PluginId {
    s.parse().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A paid plugin with a 14-day trial, and a free one.
fn pro() -> Plugin {
    Plugin::new("acme.pro", "1.0.0").priced("paid", 14)
}

/// The vendor's side: a site with [`pro`], acme's release key on disk, a license key
/// made with `trellis-index license keygen` and listed in acme's record with
/// `publisher update --add-license-key`, the site rebuilt.
struct Vendor {
    site: Site,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Vendor {
    fn new() -> Self {
        let site = Site::new();
        site.publish(&[pro(), Plugin::new("acme.free", "1.0.0"), Plugin::new("contoso.widget", "1.0.0")]);
        let dir = tempfile::tempdir().unwrap();
        trellis_index::keyfile::write_new(&dir.path().join("acme.key"), site.key("acme")).unwrap();
        let vendor = Self { site, dir, bin: trellis_index_bin() };
        let out = vendor.ok(&["license", "keygen", "--out", &vendor.file("license.key")], None);
        assert!(out.contains("publisher update") && out.contains("--add-license-key"), "{out}");
        let record = vendor.record();
        vendor.ok(
            &[
                "publisher",
                "update",
                &record,
                "--key",
                &vendor.file("acme.key"),
                "--add-license-key",
                &vendor.file("license.key.pub"),
            ],
            None,
        );
        vendor.site.build();
        vendor
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn record(&self) -> String {
        self.site.registry.path().join("publishers/acme.json").to_str().unwrap().to_owned()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(&self.bin);
        command.args(args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        command.stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "trellis-index {args:?} failed: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    /// A token minted from a checkout webhook event on stdin, with extra flags.
    fn token(&self, plugin: &str, extra: &[&str]) -> String {
        let event = serde_json::json!({
            "id": "evt_1", "type": "checkout.session.completed",
            "data": {"object": {
                "id": "cs_test_42", "payment_status": "paid",
                "customer_details": {"name": "Ada Lovelace", "email": "ada@example.com"},
                "metadata": {"plugin": plugin, "seats": "3", "days": "365", "features": "pro,export"}
            }}
        });
        let key = self.file("license.key");
        let mut args = vec!["license", "issue", "--key", &key, "--webhook", "-"];
        args.extend_from_slice(extra);
        let out = self.ok(&args, Some(&event.to_string()));
        let token = out.trim().to_owned();
        assert!(token.starts_with("trellis-license-v1.") && !token.contains(char::is_whitespace), "{out}");
        token
    }

    fn license_key(&self) -> SigningKey {
        trellis_index::keyfile::read(&self.dir.path().join("license.key")).unwrap()
    }
}

struct Cli {
    bin: PathBuf,
    data: tempfile::TempDir,
}

impl Cli {
    /// A client with the vendor's site added as `main`.
    fn new(vendor: &Vendor) -> Self {
        let cli = Self { bin: trellis_bin(), data: tempfile::tempdir().unwrap() };
        let root = cli.data.path().join("root.json");
        std::fs::write(&root, vendor.site.root()).unwrap();
        cli.ok(&["registry", "add", "main", &vendor.site.url(), "--root", root.to_str().unwrap()]);
        cli
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).arg("--data-dir").arg(self.data.path()).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "trellis {args:?} failed: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    /// Runs a command that must fail with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "trellis {args:?}: {}{}", stdout(&out), stderr(&out));
        stderr(&out)
    }

    fn licenses_file(&self) -> Option<Vec<u8>> {
        std::fs::read(self.data.path().join("licenses.json")).ok()
    }

    fn pins(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = self.data.path().join("metadata/main/publisher-pins");
        common::walk(&dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
    }
}

fn days_from_now(days: i64) -> String {
    jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(days * 24)).unwrap().to_string()
}

#[test]
fn a_license_minted_from_a_checkout_webhook_is_added_listed_and_expires() {
    let vendor = Vendor::new();
    let cli = Cli::new(&vendor);
    let info = cli.ok(&["info", "acme.pro"]);
    assert!(info.contains("price: paid, 14-day trial"), "{info}");
    let installed = cli.ok(&["-y", "install", "acme.pro", "acme.free"]);
    assert!(installed.contains("acme.pro: paid, 14-day trial; trial, 14 day(s) left"), "{installed}");
    assert!(!installed.contains("acme.free:"), "a free plugin has no license line: {installed}");
    // The JSON envelope of install carries each plugin's license state and price.
    let json = cli.ok(&["--json", "-y", "install", "acme.pro", "acme.free"]);
    let envelope: serde_json::Value = serde_json::from_str(&json).unwrap();
    let licenses = &envelope["result"]["licenses"];
    assert_eq!(licenses["acme.pro"]["license"]["state"], "trial", "{envelope}");
    assert_eq!(licenses["acme.pro"]["license"]["days_left"], 14, "{envelope}");
    assert_eq!(licenses["acme.pro"]["pricing"]["trial_days"], 14, "{envelope}");
    assert_eq!(licenses["acme.free"]["license"]["state"], "free", "{envelope}");

    let token = vendor.token("acme.pro", &[]);
    let added = cli.ok(&["license", "add", &token]);
    assert!(
        added.contains("added the license of acme.pro: licensed to Ada Lovelace <ada@example.com> (3 seats), until "),
        "{added}"
    );
    assert!(added.contains("features: pro, export"), "{added}");
    let list = cli.ok(&["license", "list"]);
    assert!(list.contains("acme.pro 1.0.0: licensed to Ada Lovelace"), "{list}");
    assert!(!list.contains("acme.free"), "{list}");
    let info = cli.ok(&["info", "acme.pro"]);
    assert!(info.contains("license: licensed to Ada Lovelace"), "{info}");
    let json = cli.ok(&["--json", "license", "list"]);
    let envelope: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(envelope["command"], "license");
    let json = &envelope["result"];
    assert_eq!(json[0]["plugin"], "acme.pro");
    assert_eq!(json[0]["state"], "licensed");
    assert_eq!(json[0]["seats"], 3);

    // A year and a day later (offline: no registry is contacted by `license list`).
    let later = days_from_now(366);
    let list = cli.ok(&["--now", &later, "license", "list"]);
    assert!(list.contains("acme.pro 1.0.0: license of Ada Lovelace <ada@example.com> expired on "), "{list}");
    // The same token is refused once expired, and the file keeps the one added.
    let before = cli.licenses_file();
    let err = cli.fails(&["--now", &later, "license", "add", &token], 1);
    assert!(err.contains("expired on") && err.contains("renew it with the vendor"), "{err}");
    assert_eq!(cli.licenses_file(), before);

    // Pasted through a pipe.
    let piped = Command::new(&cli.bin)
        .arg("--data-dir")
        .arg(cli.data.path())
        .args(["license", "add", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(format!("{token}\r\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(piped.status.success() && stdout(&piped).contains("licensed to"), "{}", stdout(&piped));

    let removed = cli.ok(&["license", "remove", "acme.pro"]);
    assert!(removed.contains("removed the license of acme.pro; now: trial, 14 day(s) left"), "{removed}");
    let err = cli.fails(&["license", "remove", "acme.pro"], 2);
    assert!(err.contains("no license token was added for acme.pro"), "{err}");
}

/// The payload of `token` with `edit` applied, re-encoded canonically, with the
/// original signature.
fn edited(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(&BASE64URL.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    let bytes = trellis_schema::canonical::to_vec(&payload).unwrap();
    format!("{}.{}.{}", parts[0], BASE64URL.encode(bytes), parts[2])
}

#[test]
fn refused_tokens_say_why_and_change_nothing() {
    let vendor = Vendor::new();
    let cli = Cli::new(&vendor);
    cli.ok(&["-y", "install", "acme.pro"]);
    let token = vendor.token("acme.pro", &[]);
    let parts: Vec<&str> = token.split('.').collect();
    // Signed by a key acme does not list, under acme's license key id.
    let stranger = SigningKey::from_seed([77; 32]);
    let forged_sig = BASE64URL.encode(stranger.sign(format!("{}.{}", parts[0], parts[1]).as_bytes()));
    let forged = format!("{}.{}.{forged_sig}", parts[0], parts[1]);
    // Minted with a key acme never listed.
    let other_key = vendor.file("other.key");
    vendor.ok(&["license", "keygen", "--out", &other_key], None);
    let unlisted =
        vendor.ok(&["license", "issue", "--key", &other_key, "--plugin", "acme.pro", "--licensee", "Mallory"], None);
    // For another vendor's plugin, signed with acme's license key.
    let foreign = vendor.token("contoso.widget", &[]);
    // Valid for a day only.
    let short = vendor.token("acme.pro", &["--days", "1"]);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["hello".into()], "not a Trellis license token: it does not have three parts"),
        (vec![format!("{token}x!")], "the signature is not base64url"),
        (
            vec![edited(&token, |p| p["seats"] = 300.into())],
            "invalid signature (forged, or edited after it was signed)",
        ),
        (vec![edited(&token, |p| p["plugin"] = "acme.free".into())], "invalid signature"),
        (vec![forged], "invalid signature"),
        (vec![unlisted.trim().to_owned()], "which is not a key of publisher acme (version 2 of its record)"),
        (vec![foreign], "which is not a key of publisher contoso"),
        (vec![token.clone(), "--for".into(), "acme.free".into()], "this license token is for acme.pro, not acme.free"),
        (vec!["--now".into(), days_from_now(2), short], "expired on"),
    ];
    let pins_before: Vec<PathBuf> =
        cli.pins().into_iter().map(|(p, _)| p).filter(|p| p.ends_with("acme.json")).collect();
    for (args, expected) in cases {
        let mut all = vec!["license", "add"];
        let (flags, rest): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| a.as_str() == "--now");
        let mut args: Vec<&str> = rest.iter().map(|s| s.as_str()).collect();
        if !flags.is_empty() {
            // `--now TIME` is a global flag: put it first.
            let time = args.remove(0);
            all = vec!["--now", time, "license", "add"];
        }
        all.extend(args);
        let err = cli.fails(&all, 1);
        assert!(err.contains(expected), "{all:?}: {err}");
        assert_eq!(cli.licenses_file(), None, "{all:?} left a licenses file");
    }
    // The trusted state is as it was: acme's pin is the one the install wrote, and the
    // plugin still runs its trial.
    assert_eq!(
        cli.pins().into_iter().map(|(p, _)| p).filter(|p| p.ends_with("acme.json")).collect::<Vec<_>>(),
        pins_before
    );
    let list = cli.ok(&["license", "list"]);
    assert!(list.contains("acme.pro 1.0.0: trial, 14 day(s) left"), "{list}");

    // A damaged licenses file is reported, and never overwritten by an add.
    let damaged = br#"{"acme.pro": "trellis-license-v1.x.y", "acme.pro": "again"}"#;
    std::fs::write(cli.data.path().join("licenses.json"), damaged).unwrap();
    let err = cli.fails(&["license", "list"], 1);
    assert!(err.contains("licenses.json is damaged") && err.contains("duplicate member"), "{err}");
    let err = cli.fails(&["license", "add", &token], 1);
    assert!(err.contains("licenses.json is damaged"), "{err}");
    assert_eq!(cli.licenses_file().as_deref(), Some(&damaged[..]));
}

#[test]
fn a_license_key_the_vendor_revokes_invalidates_its_tokens_at_the_next_refresh() {
    let vendor = Vendor::new();
    let cli = Cli::new(&vendor);
    cli.ok(&["-y", "install", "acme.pro"]);
    let token = vendor.token("acme.pro", &[]);
    cli.ok(&["license", "add", &token]);
    let license_key = vendor.license_key().key_id().to_string();
    vendor.ok(
        &[
            "publisher",
            "update",
            &vendor.record(),
            "--key",
            &vendor.file("acme.key"),
            "--revoke",
            &license_key,
            "--reason",
            "webhook secret leaked",
            "--at",
            "2026-12-24",
        ],
        None,
    );
    vendor.site.build();
    // Until the client refreshes, it judges by the record it pinned.
    assert!(cli.ok(&["license", "list"]).contains("licensed to"));
    cli.ok(&["update", "--check"]);
    let list = cli.ok(&["license", "list"]);
    assert!(
        list.contains("acme.pro 1.0.0: license refused: the license token for acme.pro is signed by key ")
            && list.contains("which acme revoked on 2026-12-24 (webhook secret leaked)"),
        "{list}"
    );
    let err = cli.fails(&["license", "add", &token], 1);
    assert!(err.contains("which acme revoked on 2026-12-24"), "{err}");
}

fn options_at(now: jiff::Timestamp) -> StoreOptions {
    let mut options = StoreOptions::new(common::host());
    options.reference_time = Some(now);
    options
}

fn install(store: &mut Store, plugin: &str, hooks: &RecordingHooks) {
    let session = Session::new(hooks, &AlwaysAgree);
    store.install(&[parse_requirement(plugin).unwrap()], &session).unwrap();
}

#[test]
fn a_trial_starts_at_the_first_install_survives_a_reinstall_and_ends() {
    let site = Site::new();
    site.publish(&[pro(), Plugin::new("acme.free", "1.0.0")]);
    let data = tempfile::tempdir().unwrap();
    let start = jiff::Timestamp::now();
    let hooks = RecordingHooks::new();
    {
        let store = store(data.path(), &site);
        drop(store);
        let mut store = Store::open(data.path(), options_at(start)).unwrap();
        install(&mut store, "acme.pro", &hooks);
        install(&mut store, "acme.free", &hooks);
        assert_eq!(store.state().trials.get(&id("acme.pro")), Some(&Trial { started: start, days: 14 }));
        assert!(!store.state().trials.contains_key(&id("acme.free")));
        let ends = start.checked_add(jiff::SignedDuration::from_hours(14 * 24)).unwrap();
        // The host is told once, for the paid plugin, before it is registered and started.
        assert_eq!(hooks.licenses(), vec![(id("acme.pro"), LicenseState::Trial { ends, days_left: 14 })]);
        assert!(hooks.trace().iter().any(|c| c == "start acme.pro 1.0.0"));
        let session = Session::new(&hooks, &AlwaysAgree);
        store.remove(&id("acme.pro"), false, &session).unwrap();
        assert!(store.state().trials.contains_key(&id("acme.pro")), "a removal keeps the trial");
    }
    {
        // Reinstalled two hours later: the trial is the first one.
        let later = start.checked_add(jiff::SignedDuration::from_hours(2)).unwrap();
        let mut store = Store::open(data.path(), options_at(later)).unwrap();
        install(&mut store, "acme.pro", &hooks);
        assert_eq!(store.state().trials.get(&id("acme.pro")), Some(&Trial { started: start, days: 14 }));
    }
    {
        // Fifteen days after the first install (offline).
        let after = start.checked_add(jiff::SignedDuration::from_hours(15 * 24)).unwrap();
        let store = Store::open(data.path(), options_at(after)).unwrap();
        let state = store.license_state(&id("acme.pro")).unwrap();
        let ended = start.checked_add(jiff::SignedDuration::from_hours(14 * 24)).unwrap();
        assert_eq!(state, LicenseState::TrialEnded { ended });
        assert!(!state.allows_use() && !state.allows_feature("pro"));
        assert_eq!(store.license_state(&id("acme.free")).unwrap(), LicenseState::Free);
    }
}

#[test]
fn the_host_learns_the_license_state_when_a_token_is_added_and_removed() {
    let vendor = Vendor::new();
    let data = tempfile::tempdir().unwrap();
    let hooks = RecordingHooks::new();
    let mut store = store(data.path(), &vendor.site);
    install(&mut store, "acme.pro", &hooks);
    let request = trellis_index::license::LicenseRequest {
        plugin: Some("acme.pro".into()),
        licensee: Some("Grace".into()),
        features: vec!["export".into()],
        ..Default::default()
    };
    let token = trellis_index::license::issue(request, &vendor.license_key(), jiff::Timestamp::now()).unwrap();
    let session = Session::new(&hooks, &AlwaysAgree);
    let entry = store.add_license(&token.to_string(), Some(&id("acme.pro")), &session).unwrap();
    assert!(entry.state.allows_feature("export") && !entry.state.allows_feature("pro"));
    let (plugin, told) = hooks.licenses().pop().unwrap();
    assert_eq!((plugin, told), (id("acme.pro"), entry.state.clone()));
    store.remove_license(&id("acme.pro"), &session).unwrap();
    assert!(matches!(hooks.licenses().pop().unwrap().1, LicenseState::Trial { .. }));
    assert_eq!(store.licenses().unwrap().iter().count(), 0);
}

#[test]
fn a_plugin_that_becomes_paid_starts_its_trial_at_the_update() {
    let site = Site::new();
    site.publish(&[Plugin::new("acme.pro", "1.0.0")]);
    let data = tempfile::tempdir().unwrap();
    let hooks = RecordingHooks::new();
    let mut store = store(data.path(), &site);
    install(&mut store, "acme.pro", &hooks);
    assert!(store.state().trials.is_empty() && hooks.licenses().is_empty(), "a free plugin has no trial");
    site.publish(&[Plugin::new("acme.pro", "2.0.0").priced("subscription", 30)]);
    let session = Session::new(&hooks, &AlwaysAgree);
    store.update(&[id("acme.pro")], &session).unwrap();
    let trial = store.state().trials.get(&id("acme.pro")).copied().unwrap();
    assert_eq!(trial.days, 30);
    assert!(
        matches!(hooks.licenses().as_slice(), [(plugin, LicenseState::Trial { days_left: 30, .. })] if plugin == &id("acme.pro"))
    );
    assert!(store.license_state(&id("acme.pro")).unwrap().allows_use());
}
