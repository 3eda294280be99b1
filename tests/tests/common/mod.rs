//! A real registry for lifecycle tests: plugin trees written to disk, packed with
//! `trellis-index pack`, signed with the publisher's key, built into a TUF-signed site
//! with `trellis-index build`, served on 127.0.0.1 by `trellis_index::serve`.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

pub mod rapid_response;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use trellis_client::resolve::HostApp;
use trellis_client::store::{Store, StoreOptions};
use trellis_index::build::{Scope, build_registry};
use trellis_index::fixture;
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::serve::Server;
use trellis_schema::SigningKey;
use trellis_tests::fault_server::FaultServer;

/// One plugin release to publish.
#[derive(Clone, Debug)]
pub struct Plugin {
    pub id: String,
    pub version: String,
    pub dependencies: Vec<(String, String)>,
    pub permissions: Vec<(String, String)>,
    pub script: String,
    pub channel: String,
    /// Members replacing those of the generated `plugin.json` (name, description, tags,
    /// pricing…).
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// More files of the tree (`docs/sbom.cdx.json`), path and content.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

impl Plugin {
    pub fn new(id: &str, version: &str) -> Self {
        Self {
            id: id.into(),
            version: version.into(),
            dependencies: vec![],
            permissions: vec![],
            script: format!("#!/bin/sh\necho \"{id} {version} running\"\n"),
            channel: "stable".into(),
            overrides: serde_json::Map::new(),
            extra_files: Vec::new(),
        }
    }

    /// Adds file `path` (relative to the tree) with `content`.
    pub fn file(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.extra_files.push((path.into(), content.into()));
        self
    }

    /// Sets member `key` of `plugin.json` to `value`.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.overrides.insert(key.into(), value);
        self
    }

    /// Priced with `model` and a trial of `trial_days`.
    pub fn priced(self, model: &str, trial_days: u32) -> Self {
        self.with("pricing", serde_json::json!({"model": model, "trial_days": trial_days}))
    }

    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = channel.into();
        self
    }

    pub fn depends_on(mut self, id: &str, requirement: &str) -> Self {
        self.dependencies.push((id.into(), requirement.into()));
        self
    }

    pub fn permission(mut self, kind: &str, scope: &str) -> Self {
        self.permissions.push((kind.into(), scope.into()));
        self
    }

    fn plugin_json(&self) -> String {
        let vendor = self.id.split('.').next().unwrap();
        let mut json = serde_json::json!({
            "id": self.id, "name": format!("Plugin {}", self.id), "version": self.version,
            "vendor": {"name": vendor.to_uppercase(), "id": vendor},
            "description": {"short": format!("Test plugin {}", self.id), "full": ""},
            "categories": ["utility"], "tags": [],
            "permissions": self.permissions.iter().map(|(k, s)| serde_json::json!({"type": k, "scope": s, "reason": "the test needs it"})).collect::<Vec<_>>(),
            "dependencies": self.dependencies.iter().map(|(id, r)| serde_json::json!({"id": id, "version_requirement": r})).collect::<Vec<_>>(),
            "pricing": {"model": "free", "trial_days": 0},
            "channel": self.channel,
            "host": {"id": "trellis-demo-host", "api_version_requirement": "^1"},
            "platforms": ["any"], "entry": {"any": "bin/any/run.sh"},
            "license": "MIT"
        });
        for (key, value) in &self.overrides {
            json[key] = value.clone();
        }
        json.to_string()
    }

    fn write_tree(&self, root: &Path) {
        std::fs::create_dir_all(root.join("bin/any")).unwrap();
        std::fs::write(root.join("plugin.json"), self.plugin_json()).unwrap();
        std::fs::write(root.join("LICENSE"), "MIT License\n").unwrap();
        std::fs::write(root.join("bin/any/run.sh"), &self.script).unwrap();
        for (path, content) in &self.extra_files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    }
}

/// A registry source tree, its built site, and a loopback server for it.
pub struct Site {
    pub registry: tempfile::TempDir,
    pub site: tempfile::TempDir,
    pub server: Server,
    keys: Vec<(String, SigningKey)>,
}

impl Site {
    /// A registry with publishers `acme` and `contoso`, built (empty) and served.
    pub fn new() -> Self {
        Self::with_bin_bits(2)
    }

    /// [`Site::new`] with `2^bin_bits` hash bins.
    pub fn with_bin_bits(bin_bits: u32) -> Self {
        let registry = tempfile::tempdir().unwrap();
        let options = InitOptions {
            name: "Test Store".into(),
            base_url: "http://127.0.0.1/".into(),
            root_keys: 1,
            root_threshold: 1,
            bin_bits,
            publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
            expiry: Expiry::default(),
            now: jiff::Timestamp::now(),
        };
        operator::init(registry.path(), &options).unwrap();
        let mut keys = Vec::new();
        for (seed, vendor) in [(1, "acme"), (2, "contoso")] {
            let key = fixture::key(seed);
            fixture::add_publisher(registry.path(), vendor, &key).unwrap();
            keys.push((vendor.to_owned(), key));
        }
        let site = tempfile::tempdir().unwrap();
        let server = Server::start(site.path(), SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let this = Self { registry, site, server, keys };
        this.build();
        this
    }

    pub fn key(&self, vendor: &str) -> &SigningKey {
        &self.keys.iter().find(|(v, _)| v == vendor).unwrap().1
    }

    /// Packs, signs and adds a release to the registry source tree (not built yet).
    pub fn add(&self, plugin: &Plugin) -> PathBuf {
        let vendor = plugin.id.split('.').next().unwrap();
        self.add_signed(plugin, self.key(vendor))
    }

    /// Like [`Site::add`], signed with `key`.
    pub fn add_signed(&self, plugin: &Plugin, key: &SigningKey) -> PathBuf {
        let tree = tempfile::tempdir().unwrap();
        plugin.write_tree(tree.path());
        let dir = self.registry.path().join("releases").join(&plugin.id);
        std::fs::create_dir_all(&dir).unwrap();
        let package = dir.join(format!("{}.zip", plugin.version));
        trellis_index::pack::pack_dir(tree.path(), &package).unwrap();
        trellis_index::sign::sign_package(&package, key).unwrap();
        package
    }

    /// Rebuilds the site (what CI does after a merge).
    pub fn build(&self) {
        let registry = Registry::open(self.registry.path()).unwrap();
        build_registry(&registry, self.site.path(), Scope::Full, jiff::Timestamp::now()).unwrap();
    }

    /// Adds releases and rebuilds.
    pub fn publish(&self, plugins: &[Plugin]) {
        for plugin in plugins {
            self.add(plugin);
        }
        self.build();
    }

    /// Adds releases and rebuilds only their plugins (`trellis-index build --only`, what
    /// the registry's CI does for a merged submission): the other plugins' docs stay as
    /// published.
    pub fn publish_only(&self, plugins: &[Plugin]) {
        for plugin in plugins {
            self.add(plugin);
        }
        let ids = plugins.iter().map(|p| p.id.parse().unwrap()).collect();
        let registry = Registry::open(self.registry.path()).unwrap();
        build_registry(&registry, self.site.path(), Scope::Plugins(ids), jiff::Timestamp::now()).unwrap();
    }

    /// The trusted root to pin.
    pub fn root(&self) -> Vec<u8> {
        std::fs::read(self.site.path().join("metadata/1.root.json")).unwrap()
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The blob file of a built target (with its content-addressed name).
    pub fn blob_files(&self, suffix: &str) -> Vec<PathBuf> {
        walk(&self.site.path().join("targets")).into_iter().filter(|p| p.to_string_lossy().ends_with(suffix)).collect()
    }

    /// Blocks `id` (all versions) and rebuilds.
    pub fn block(&self, id: &str, reason: &str) {
        let registry = Registry::open(self.registry.path()).unwrap();
        let entry = trellis_schema::blocklist::BlockEntry {
            id: id.parse().unwrap(),
            versions: None,
            sha256: None,
            reason: reason.into(),
            severity: trellis_schema::blocklist::Severity::Critical,
            advisory: None,
            added: "2026-11-25".into(),
        };
        operator::block(&registry, entry).unwrap();
        self.build();
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn host() -> HostApp {
    HostApp { id: "trellis-demo-host".into(), api_version: "1.2.0".parse().unwrap() }
}

/// A store in `data` with `site` added as registry `main`.
pub fn store(data: &Path, site: &Site) -> Store {
    let mut store = Store::open(data, StoreOptions::new(host())).unwrap();
    if store.registries().registries.is_empty() {
        store.add_registry("main", &site.url(), &site.root()).unwrap();
    }
    store
}

/// The built site of `site`, served from memory by a fault server (every file,
/// aliases included).
pub fn served(site: &Site) -> FaultServer {
    let server = FaultServer::start().unwrap();
    for path in walk(site.site.path()) {
        let relative = path.strip_prefix(site.site.path()).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(&path).unwrap());
    }
    server
}

/// The URL path of the current (hashed) index doc of `id` in `site`: the one its alias
/// holds (a site keeps the earlier docs too).
pub fn doc_path(site: &Site, id: &str) -> String {
    let alias = std::fs::read(site.site.path().join(alias_path(id).trim_start_matches('/'))).unwrap();
    let target = trellis_schema::target::index_target(&id.parse().unwrap());
    let (dir, name) = target.rsplit_once('/').unwrap();
    let path = format!("/targets/{dir}/{}.{name}", trellis_schema::Sha256::of(&alias));
    assert!(site.site.path().join(path.trim_start_matches('/')).is_file(), "{path}");
    path
}

/// The URL path of the alias of the index doc of `id`.
pub fn alias_path(id: &str) -> String {
    format!("/targets/{}", trellis_schema::target::index_alias_path(&id.parse().unwrap()))
}

/// Relative paths of all files under `dir`.
pub fn files(dir: &Path) -> BTreeSet<String> {
    walk(dir).iter().map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned()).collect()
}

/// The `trellis` binary of this workspace, built on first use.
pub fn trellis_bin() -> PathBuf {
    workspace_bin("trellis-client", "trellis")
}

/// The `trellis-index` binary of this workspace, built on first use.
pub fn trellis_index_bin() -> PathBuf {
    workspace_bin("trellis-index", "trellis-index")
}

/// Binary `bin` of workspace package `package`, built (debug) on first use.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "building the {bin} binary failed");
    target.join("debug").join(format!("{bin}{}", std::env::consts::EXE_SUFFIX))
}

/// `acme.clock` at `version` as the lifecycle suites publish it: it needs
/// `acme.time-core ^1` and asks for `filesystem:plugin_directory` and `notifications:show`.
pub fn clock(version: &str) -> Plugin {
    Plugin::new("acme.clock", version)
        .depends_on("acme.time-core", "^1")
        .permission("filesystem", "plugin_directory")
        .permission("notifications", "show")
}

/// A served site with `acme.time-core 1.0.0` and [`clock`] `1.0.0`.
pub fn clock_site() -> Site {
    let site = Site::new();
    site.publish(&[Plugin::new("acme.time-core", "1.0.0"), clock("1.0.0")]);
    site
}
