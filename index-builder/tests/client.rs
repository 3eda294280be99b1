//! Our own client's trust module against sites built by `trellis-index`, served by
//! `trellis-index serve`: root rotation, the delegation walk through `bins` to a
//! TAP 15 bin, blobs, incremental updates and the one-request no-op check.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::{TargetInfo, UpdateCheck, Updater};
use trellis_index::build::{Scope, build_registry};
use trellis_index::fixture::{self, ReleaseSpec};
use trellis_index::operator::{self, InitOptions, RotatedRole};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::serve::Server;
use trellis_index::site;
use trellis_schema::index::IndexDoc;

#[test]
fn trellis_client_refreshes_walks_bins_and_sees_incremental_updates() {
    let now = jiff::Timestamp::now();
    let registry = tempfile::tempdir().unwrap();
    let options = InitOptions {
        name: "Test".into(),
        base_url: "http://127.0.0.1/".into(),
        root_keys: 2,
        root_threshold: 2,
        bin_bits: 5,
        publisher_bin_bits: trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS,
        expiry: Expiry::default(),
        now,
    };
    operator::init(registry.path(), &options).unwrap();
    let key = fixture::key(1);
    fixture::add_publisher(registry.path(), "acme", &key).unwrap();
    let package = fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "1.0.0"), &key).unwrap();
    let site_dir = tempfile::tempdir().unwrap();
    let build = |scope| build_registry(&Registry::open(registry.path()).unwrap(), site_dir.path(), scope, now).unwrap();
    build(Scope::Full);
    let root_one = std::fs::read(site_dir.path().join("metadata/1.root.json")).unwrap();
    operator::rotate(&Registry::open(registry.path()).unwrap(), RotatedRole::Root, now).unwrap();
    build(Scope::Full);

    let server = Server::start(site_dir.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let metadata = tempfile::tempdir().unwrap();
    Updater::bootstrap(metadata.path(), &root_one).unwrap();
    let mirrors = Mirrors::new(Arc::new(AnyTransport::new(HttpOptions::default())), vec![Mirror::site(&server.url())]);
    let mut client = Updater::new(metadata.path(), mirrors).unwrap();
    client.refresh().unwrap();
    assert_eq!(client.trusted().root().version(), 2);

    let id = "acme.clock".parse().unwrap();
    let info = client.target_info(&site::index_target(&id)).unwrap().expect("index doc is a signed target");
    let doc: IndexDoc = serde_json::from_slice(&client.fetch_target(&info).unwrap()).unwrap();
    assert_eq!(doc.releases.len(), 1);
    let package_ref = &doc.releases[0].package;
    assert_eq!(client.target_info(&package_ref.path).unwrap(), None, "the bins sign index docs, not blobs");
    let blob = TargetInfo::vouched_by(package_ref, "the index doc of acme.clock");
    assert_eq!(client.fetch_target(&blob).unwrap(), std::fs::read(&package).unwrap());
    let mut wrong = package_ref.clone();
    wrong.length += 1;
    let error = client.fetch_target(&TargetInfo::vouched_by(&wrong, "the index doc of acme.clock")).unwrap_err();
    let expected = format!(
        "listed by the index doc of acme.clock): length is {} bytes, expected {}",
        package_ref.length, wrong.length
    );
    assert!(error.to_string().contains(&expected), "{error}");

    assert!(matches!(client.check_for_updates().unwrap(), UpdateCheck::NothingNew));
    fixture::add_release(registry.path(), &ReleaseSpec::new("acme.clock", "1.1.0"), &key).unwrap();
    build(Scope::Plugins(std::collections::BTreeSet::from([id.clone()])));
    assert!(matches!(client.check_for_updates().unwrap(), UpdateCheck::Refreshed));
    let info = client.target_info(&site::index_target(&id)).unwrap().unwrap();
    let doc: IndexDoc = serde_json::from_slice(&client.fetch_target(&info).unwrap()).unwrap();
    assert_eq!(doc.releases.iter().map(|r| r.version.to_string()).collect::<Vec<_>>(), ["1.0.0", "1.1.0"]);
}
