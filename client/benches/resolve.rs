//! Warm re-resolve of a 30-plugin dependency graph from index docs already in memory
//! (the target: at most 10 ms).
//!
//! Run with `cargo bench -p trellis-client --bench resolve`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use semver::Version;
use trellis_client::resolve::{HostApp, MemorySource, Registries, RegistryName, Request, resolve};
use trellis_schema::blocklist::{BlockEntry, Blocklist, Severity};
use trellis_schema::digest::Sha256;
use trellis_schema::id::PluginId;
use trellis_schema::index::{BlobRef, IndexDoc, IndexRelease};
use trellis_schema::plugin::{Channel, Dependency, HostRequirement, Platform};

const NODES: usize = 30;
const APP: &str = "bench-app";

fn public() -> RegistryName {
    "public".parse().expect("a valid registry name")
}

fn plugin(i: usize) -> PluginId {
    format!("bench.node{i:02}").parse().expect("valid id")
}

fn blob(name: String) -> BlobRef {
    BlobRef { sha256: Sha256::of(name.as_bytes()), path: name, length: 100_000 }
}

/// A deterministic layered graph: node `i` depends on node `i + 1` and up to two more
/// nodes after it, so resolving node 0 reaches all 30; each
/// plugin has ten releases over two majors; 1.x releases need `^1` of their
/// dependencies, 2.x releases `^2`; some newest releases need a newer host (so the
/// solver backtracks), a few are yanked, beta, or blocked.
fn registry() -> MemorySource {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut source = MemorySource::new();
    for i in 0..NODES {
        // The next node always, so all 30 are reached; up to two more at random.
        let deps: Vec<usize> =
            (i + 1..NODES).take(1).chain((i + 2..NODES).filter(|_| next() % 4 == 0).take(2)).collect();
        let mut releases = Vec::new();
        for major in 1..=2u64 {
            for minor in 0..5u64 {
                let version = Version::new(major, minor, 0);
                let requirement = if major == 1 { "^1" } else { "^2.0" };
                let newest = major == 2 && minor == 4;
                releases.push(IndexRelease {
                    channel: if newest && i % 5 == 1 { Channel::Beta } else { Channel::Stable },
                    dependencies: deps
                        .iter()
                        .map(|&d| Dependency { id: plugin(d), version_requirement: requirement.parse().expect("req") })
                        .collect(),
                    host: HostRequirement {
                        id: APP.into(),
                        api_version_requirement: if newest && i % 3 == 0 { ">=1.5" } else { "^1.0" }
                            .parse()
                            .expect("req"),
                    },
                    platforms: vec![Platform::Any],
                    yanked: major == 2 && minor == 3 && i % 7 == 0,
                    permissions: Vec::new(),
                    package: blob(format!("plugins/bench/{i}/{version}.zip")),
                    envelope: blob(format!("plugins/bench/{i}/{version}.dsse")),
                    manifest_sha256: Sha256::of(version.to_string().as_bytes()),
                    unpacked_size: 1_000_000,
                    deltas: Vec::new(),
                    min_client_version: None,
                    rollout: None,
                    pricing: None,
                    analysis: None,
                    version,
                });
            }
        }
        source.insert(public(), IndexDoc { id: plugin(i), name: format!("Node {i}"), releases, prefetch: Vec::new() });
    }
    source
}

fn request() -> Request {
    let blocklist = Blocklist {
        entries: (0..NODES)
            .step_by(8)
            .map(|i| BlockEntry {
                id: plugin(i),
                versions: Some("=2.2.0".parse().expect("req")),
                sha256: None,
                reason: "benchmark".into(),
                severity: Severity::High,
                advisory: None,
                added: "2026-11-01T00:00:00Z".into(),
            })
            .collect(),
    };
    Request::new(
        HostApp { id: APP.into(), api_version: Version::new(1, 4, 0) },
        Platform::WindowsX86_64,
        Registries::new([public()]),
    )
    .require(plugin(0), "*".parse().expect("req"))
    .with_blocklist(Arc::new(blocklist))
}

fn bench(c: &mut Criterion) {
    let source = registry();
    let request = request();
    let resolution = resolve(&request, &source).expect("the benchmark graph resolves");
    assert_eq!(resolution.plugins.len(), NODES, "every node is part of the solution");
    c.bench_function("warm_resolve_30_node_graph", |b| b.iter(|| resolve(black_box(&request), &source)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
