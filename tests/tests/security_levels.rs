//! Issue 15 §5: security levels end to end. `trellis-index build` checks each
//! publisher's domain proof (`/.well-known/trellis-publisher.json`, served here by a
//! loopback server standing in for the publishers' web sites), computes every release's
//! level and publishes it in buckets signed by the `security` role; `trellis info`
//! shows it with its reasons; the administrator's `minimum_security_level` refuses
//! installs below it and disables an installed release that falls below (a new
//! advisory). Attacks: a domain claimed but not proved, a levels bucket withheld,
//! tampered or replaced by an unsigned one on the mirror.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Plugin, Site, trellis_bin};
use trellis_index::domain_proof;
use trellis_schema::SigningKey;
use trellis_schema::security_level::{Level, LevelsBucket, Reason, levels_target};
use trellis_tests::fault_server::FaultServer;

/// A registry whose publisher `globex` (two keys, threshold 2) names the domain
/// `globex.example`, whose proof `web` serves; `acme` names no domain. Releases:
/// `globex.tool 1.0.0` (signed by both keys) and `acme.tool 1.0.0`.
struct World {
    site: Site,
    web: FaultServer,
    globex: [SigningKey; 2],
}

const PROOF: &str = "/globex.example/.well-known/trellis-publisher.json";

impl World {
    fn new(proof: Option<serde_json::Value>) -> Self {
        let site = Site::new();
        let web = FaultServer::start().unwrap();
        let config_path = site.registry.path().join("trellis-registry.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["domain_proofs"] = serde_json::json!({"url": format!("{}/{{domain}}", web.url()), "timeout_seconds": 5});
        config["scanners"] = serde_json::json!({"known_bad": "known-bad.txt"});
        std::fs::write(site.registry.path().join("known-bad.txt"), "# nothing known bad yet\n").unwrap();
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let globex = [trellis_index::fixture::key(21), trellis_index::fixture::key(22)];
        let chain = trellis_index::publisher::init(
            "globex".parse().unwrap(),
            "Globex".into(),
            Some("https://globex.example/".into()),
            None,
            &globex,
            2,
        )
        .unwrap();
        std::fs::write(site.registry.path().join("publishers/globex.json"), serde_json::to_vec_pretty(&chain).unwrap())
            .unwrap();
        if let Some(proof) = proof {
            web.put(PROOF, serde_json::to_vec(&proof).unwrap());
        }
        let world = Self { site, web, globex };
        let package = world.site.add_signed(&Plugin::new("globex.tool", "1.0.0"), &world.globex[0]);
        trellis_index::sign::sign_package(&package, &world.globex[1]).unwrap();
        world.site.add(&Plugin::new("acme.tool", "1.0.0"));
        world.site.build();
        world
    }

    /// The proof that vouches for globex and both its keys.
    fn good_proof(keys: &[&SigningKey]) -> serde_json::Value {
        serde_json::json!({"format": 1, "publisher": "globex", "keys": keys.iter().map(|k| k.key_id()).collect::<Vec<_>>()})
    }

    /// The levels bucket holding `id`, as the site publishes it now.
    fn bucket(&self, id: &str) -> (PathBuf, LevelsBucket) {
        let path = self.bucket_file(id);
        (path.clone(), serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap())
    }

    /// The file of the bucket the `security` role lists for `id`.
    fn bucket_file(&self, id: &str) -> PathBuf {
        let target = levels_target(&id.parse().unwrap());
        let security = newest(&self.site.site.path().join("metadata"), ".security.json");
        let role: serde_json::Value = serde_json::from_slice(&std::fs::read(security).unwrap()).unwrap();
        let sha = role["signed"]["targets"][&target]["hashes"]["sha256"].as_str().expect("bucket listed").to_owned();
        let (dir, name) = target.rsplit_once('/').unwrap();
        self.site.site.path().join("targets").join(dir).join(format!("{sha}.{name}"))
    }

    fn proof_requests(&self) -> usize {
        self.web.hits().iter().filter(|h| h.path == PROOF).count()
    }
}

/// The highest-versioned `N<suffix>` file of `dir`.
fn newest(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(suffix))
        .max_by_key(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.split('.').next().unwrap().parse::<u64>().unwrap_or(0)
        })
        .unwrap()
}

/// The `trellis` binary on a data dir of its own, with an optional administrator policy.
struct Client {
    data: tempfile::TempDir,
    policy: PathBuf,
}

impl Client {
    fn new(site: &Site, policy: Option<&str>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let policy_path = data.path().join("policy.json");
        if let Some(policy) = policy {
            std::fs::write(&policy_path, policy).unwrap();
        }
        let root = data.path().join("root.json");
        std::fs::write(&root, site.root()).unwrap();
        let client = Self { data, policy: policy_path };
        let out = client.run(&["registry", "add", "main", &site.url(), "--root", root.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        client
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(trellis_bin())
            .env("TRELLIS_ADMIN_POLICY", &self.policy)
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .args(args)
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_proved_domain_threshold_and_clean_scan_make_a_release_verified_and_info_says_why() {
    let world = World::new(None);
    let keys: Vec<&SigningKey> = world.globex.iter().collect();
    world.web.put(PROOF, serde_json::to_vec(&World::good_proof(&keys)).unwrap());
    // The first build (in `World::new`) found no proof: unverified, with the reason,
    // and the build went ahead. A failed check is cached like a good one; the operator
    // drops the cache entry to check again at once after the domain is fixed.
    let (_, before) = world.bucket("globex.tool");
    let standing = &before.plugins[&"globex.tool".parse().unwrap()].publisher;
    assert!(!standing.verified);
    assert!(standing.reason.as_deref().unwrap().contains("HTTP 404"), "{standing:?}");
    assert_eq!(world.proof_requests(), 1);
    std::fs::remove_file(world.site.registry.path().join(domain_proof::CACHE_FILE)).unwrap();
    world.site.build();
    assert_eq!(world.proof_requests(), 2);

    let (_, bucket) = world.bucket("globex.tool");
    let globex = &bucket.plugins[&"globex.tool".parse().unwrap()];
    assert!(globex.publisher.verified, "{globex:?}");
    assert_eq!(globex.publisher.domain.as_deref(), Some("globex.example"));
    let release = &globex.releases[0];
    assert_eq!((release.level, release.signing_keys), (Level::Verified, 2), "{release:?}");
    assert_eq!(release.reasons, [Reason::DeveloperSigned, Reason::VerifiedPublisher]);

    // acme names no domain, so its new release is only signed, and says why.
    let (_, bucket) = world.bucket("acme.tool");
    let acme = &bucket.plugins[&"acme.tool".parse().unwrap()];
    assert!(acme.publisher.reason.as_deref().unwrap().contains("names no website"), "{acme:?}");
    assert_eq!(acme.releases[0].level, Level::Signed);
    assert_eq!(acme.releases[0].reasons, [Reason::DeveloperSigned, Reason::RecentUnverified]);

    // The result is cached with its date in the registry source: the next build
    // makes no request and writes the same levels.
    let cache = domain_proof::read_cache(world.site.registry.path()).unwrap();
    assert!(cache[&"globex".parse().unwrap()].verified);
    let before = world.bucket_file("globex.tool");
    world.site.build();
    assert_eq!(world.proof_requests(), 2, "a fresh cached proof is not fetched again");
    assert_eq!(world.bucket_file("globex.tool"), before);

    // `trellis info`, as a script reads it and as a person does.
    let client = Client::new(&world.site, None);
    let info = client.json(&["info", "globex.tool"]);
    let level = &info["result"]["security_levels"]["1.0.0"];
    assert_eq!(level["status"], "known", "{info}");
    assert_eq!(level["level"], "verified");
    assert_eq!(level["reasons"], serde_json::json!(["signed by its developer", "the publisher proved its domain"]));
    let out = client.run(&["info", "acme.tool"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("security level: signed (signed by its developer; published less than 30 days ago by an unverified publisher")
            && shown.contains("domain proof: the record of acme names no website"),
        "{shown}"
    );
}

#[test]
fn a_domain_vouching_for_other_keys_or_another_publisher_proves_nothing() {
    for (proof, expected) in [
        (
            serde_json::json!({"format": 1, "publisher": "globex", "keys": [trellis_index::fixture::key(99).key_id()]}),
            "does not vouch for key(s)",
        ),
        (serde_json::json!({"format": 1, "publisher": "acme", "keys": []}), "vouches for publisher acme, not globex"),
    ] {
        let world = World::new(Some(proof));
        let (_, bucket) = world.bucket("globex.tool");
        let globex = &bucket.plugins[&"globex.tool".parse().unwrap()];
        assert!(!globex.publisher.verified);
        assert!(globex.publisher.reason.as_deref().unwrap().contains(expected), "{globex:?}");
        assert_eq!(globex.releases[0].level, Level::Signed, "young and unverified");
    }
    // A proof that lists only one of the record's two keys does not verify it either:
    // a key added to the record is unverified until the domain lists it.
    let one = trellis_index::fixture::key(21);
    let world = World::new(Some(World::good_proof(&[&one])));
    let (_, bucket) = world.bucket("globex.tool");
    let reason = bucket.plugins[&"globex.tool".parse().unwrap()].publisher.reason.clone().unwrap();
    assert!(reason.contains(trellis_index::fixture::key(22).key_id().short()), "{reason}");
}

#[test]
fn minimum_security_level_refuses_lower_releases_and_disables_an_installed_one_that_falls_below() {
    let world = World::new(None);
    let keys: Vec<&SigningKey> = world.globex.iter().collect();
    world.web.put(PROOF, serde_json::to_vec(&World::good_proof(&keys)).unwrap());
    std::fs::remove_file(world.site.registry.path().join(domain_proof::CACHE_FILE)).unwrap();
    world.site.build();
    let client = Client::new(&world.site, Some(r#"{"minimum_security_level": "established"}"#));
    let policy = client.policy.display().to_string();

    let out = client.run(&["--yes", "install", "acme.tool"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    for expected in [
        policy.as_str(),
        "acme.tool 1.0.0 has security level signed (signed by its developer; published less than 30 days ago",
        "below minimum_security_level established",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in {said}");
    }
    let out = client.run(&["--yes", "install", "globex.tool"]);
    assert!(out.status.success(), "{}", text(&out));

    // A high-severity advisory names the installed release: flagged, and disabled on
    // the next refresh like any administrator denial.
    let dir = world.site.registry.path().join("advisories");
    std::fs::create_dir_all(&dir).unwrap();
    let osv = serde_json::json!({
        "id": "TRELLIS-2026-0100", "modified": "2026-12-01T00:00:00Z", "summary": "leaks tokens",
        "affected": [{"package": {"ecosystem": "Trellis", "name": "globex.tool"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}],
        "database_specific": {"severity": "HIGH"}
    });
    std::fs::write(dir.join("TRELLIS-2026-0100.json"), serde_json::to_vec(&osv).unwrap()).unwrap();
    world.site.build();
    let (_, bucket) = world.bucket("globex.tool");
    assert_eq!(bucket.plugins[&"globex.tool".parse().unwrap()].releases[0].level, Level::Flagged);
    let out = client.run(&["update", "--check"]);
    let said = text(&out);
    assert!(said.contains("globex.tool 1.0.0 has security level flagged"), "{said}");
    let list = client.json(&["list"]);
    let entry = &list["result"][0];
    assert_eq!(entry["id"], "globex.tool", "{list}");
    let disabled = entry["record"]["disabled"].to_string();
    assert!(disabled.contains("admin") && disabled.contains("below minimum_security_level established"), "{list}");
}

#[test]
fn a_withheld_tampered_or_unsigned_levels_bucket_is_unknown_and_the_policy_refuses() {
    let world = World::new(None);
    let file = world.bucket_file("acme.tool");
    let original = std::fs::read(&file).unwrap();
    let policy = r#"{"minimum_security_level": "signed"}"#;

    // Genuine: signed meets the minimum "signed".
    let client = Client::new(&world.site, Some(policy));
    let info = client.json(&["info", "acme.tool"]);
    assert_eq!(info["result"]["security_levels"]["1.0.0"]["level"], "signed", "{info}");

    // Tampered on the mirror: claims verified. The signed role's hash refuses it.
    let forged = String::from_utf8(original.clone()).unwrap().replace(r#""level":"signed""#, r#""level":"verified""#);
    assert_ne!(forged.as_bytes(), &original[..]);
    std::fs::write(&file, &forged).unwrap();
    let fresh = Client::new(&world.site, Some(policy));
    let info = fresh.json(&["info", "acme.tool"]);
    let level = &info["result"]["security_levels"]["1.0.0"];
    assert_eq!(level["status"], "unknown", "{info}");
    assert!(level["reason"].as_str().unwrap().contains("could not be verified"), "{info}");
    let out = fresh.run(&["--yes", "install", "acme.tool"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("has security level unknown (the security levels of acme.tool could not be verified"));

    // Unsigned: the forged bucket under its own content address, the signed one gone
    // (a mirror serving a document the role does not vouch for).
    std::fs::remove_file(&file).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let (_, base) = name.split_once('.').unwrap();
    let own = trellis_schema::Sha256::of(forged.as_bytes()).to_hex();
    std::fs::write(file.with_file_name(format!("{own}.{base}")), &forged).unwrap();
    let fresh = Client::new(&world.site, Some(policy));
    let out = fresh.run(&["--yes", "install", "acme.tool"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("below minimum_security_level signed"), "{}", text(&out));
    assert_eq!(fresh.json(&["list"])["result"], serde_json::json!([]));

    // Without a policy the same install goes ahead: levels only inform then.
    let free = Client::new(&world.site, None);
    let out = free.run(&["--yes", "install", "acme.tool"]);
    assert!(out.status.success(), "{}", text(&out));
}
