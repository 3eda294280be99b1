//! Interop: the client's TUF workflow reads a site that `trellis-index` built (a
//! second, independent implementation of the layout): refresh, the delegation walk
//! targets → bins → hash bin, an index doc, a package blob and its DSSE envelope,
//! over HTTP and over `file://`.

#![allow(clippy::unwrap_used)] // setup helpers panic on failure by design

use std::path::Path;
use std::sync::Arc;

use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::{TargetInfo, Updater};
use trellis_index::build::{self, Scope};
use trellis_index::operator::{self, InitOptions};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::site;
use trellis_index::synth::{self, SynthSpec};
use trellis_schema::Sha256;
use trellis_schema::index::IndexDoc;
use trellis_tests::fault_server::FaultServer;

fn built_site(work: &Path) -> (std::path::PathBuf, Vec<trellis_index::synth::SynthPlugin>) {
    let now = jiff::Timestamp::now();
    let registry_dir = work.join("registry");
    let site_dir = work.join("site");
    let options = InitOptions {
        name: "interop".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 1,
        root_threshold: 1,
        bin_bits: 4,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now,
    };
    operator::init(&registry_dir, &options).unwrap();
    let spec = SynthSpec { plugins: 12, versions: 2, seed: 7 };
    synth::write_registry(&registry_dir, spec).unwrap();
    let registry = Registry::open(&registry_dir).unwrap();
    build::build_registry(&registry, &site_dir, Scope::Full, now).unwrap();
    (site_dir, synth::plan(spec))
}

fn check_site(mirror: Mirror, site_dir: &Path, plugins: &[trellis_index::synth::SynthPlugin]) {
    let metadata = tempfile::tempdir().unwrap();
    let root = std::fs::read(site::metadata_file(site_dir, "root", 1)).unwrap();
    Updater::bootstrap(metadata.path(), &root).unwrap();
    let mirrors = Mirrors::new(Arc::new(AnyTransport::new(HttpOptions::default())), vec![mirror]);
    let mut client = Updater::new(metadata.path(), mirrors).unwrap();
    client.refresh().unwrap();
    for plugin in plugins.iter().take(4) {
        let index = site::index_target(&plugin.id);
        let info = client.target_info(&index).unwrap().unwrap_or_else(|| panic!("{index} not found"));
        let bytes = client.fetch_target(&info).unwrap();
        let doc: IndexDoc = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc.id, plugin.id);
        let newest = doc.release(&plugin.releases.last().unwrap().version).unwrap();
        assert_eq!(newest.package.path, site::package_target(&plugin.id, &newest.version));
        assert_eq!(newest.envelope.path, site::envelope_target(&plugin.id, &newest.version));
        for blob in [&newest.package, &newest.envelope] {
            assert_eq!(client.target_info(&blob.path).unwrap(), None, "{} is vouched for, not signed", blob.path);
            let info = TargetInfo::vouched_by(blob, format!("the index doc of {}", plugin.id));
            let bytes = client.fetch_target(&info).unwrap();
            assert_eq!((bytes.len() as u64, Sha256::of(&bytes)), (blob.length, blob.sha256));
        }
    }
    assert!(client.target_info("index/00/nobody.nothing.json").unwrap().is_none());
}

#[test]
fn client_reads_a_site_built_by_trellis_index_over_http_and_file() {
    let work = tempfile::tempdir().unwrap();
    let (site_dir, plugins) = built_site(work.path());

    let server = FaultServer::start().unwrap();
    for entry in walk(&site_dir) {
        let relative = entry.strip_prefix(&site_dir).unwrap().to_string_lossy().replace('\\', "/");
        server.put(&format!("/{relative}"), std::fs::read(&entry).unwrap());
    }
    check_site(Mirror::site(&server.url()), &site_dir, &plugins);
    check_site(Mirror::site(&format!("file://{}", site_dir.display())), &site_dir, &plugins);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}
