//! Synthetic registries with a realistic shape, for benchmarks, demos and the oracle.
//!
//! Owns generating N plugins × M versions deterministically from a seed: publishers
//! with power-law sizes (a few publishers own many plugins), 0–8 dependencies per
//! release on earlier plugins with caret ranges (popular plugins are depended on far
//! more often), about 3% yanked releases and a few beta/experimental channels. Two
//! outputs share one [`plan`]:
//!
//! - [`write_registry`]: a real registry source tree (real ZIPs, real developer
//!   signatures via [`crate::fixture`]), for small N: demos, the python-tuf oracle;
//! - [`build_input`]: the same registry as in-memory [`PluginInput`]s whose blobs are
//!   content addresses only ([`BlobSource::InSite`]), for the metadata benchmark at
//!   100k × 10, where writing a million packages would measure the disk, not the
//!   builder.
//!
//! Building is [`crate::build`]'s job.

use std::collections::BTreeMap;
use std::path::Path;

use trellis_schema::manifest::{FileEntry, PackageDigest, ReleaseManifest};
use trellis_schema::plugin::{Channel, Dependency, Platform};
use trellis_schema::{PluginId, Sha256};

use crate::fixture::{self, FixtureError, ReleaseSpec};
use crate::release::{Blob, BlobSource, PluginInput, ReleaseInput};

/// Size and seed of a synthetic registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Number of plugins.
    pub plugins: usize,
    /// Versions per plugin.
    pub versions: usize,
    /// Seed of the generator.
    pub seed: u64,
}

/// One planned release.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthRelease {
    /// Version.
    pub version: semver::Version,
    /// Channel.
    pub channel: Channel,
    /// Dependencies.
    pub dependencies: Vec<Dependency>,
    /// Whether the release is yanked.
    pub yanked: bool,
}

/// One planned plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthPlugin {
    /// Id.
    pub id: PluginId,
    /// Releases, oldest first.
    pub releases: Vec<SynthRelease>,
}

/// SplitMix64: small, fast, deterministic; good enough to shape test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index in [0, n) skewed towards 0 (power law with exponent `power`).
    fn skewed(&mut self, n: usize, power: i32) -> usize {
        ((self.unit().powi(power) * n as f64) as usize).min(n.saturating_sub(1))
    }
}

fn version_of(index: usize) -> semver::Version {
    // 0.1.0, 0.2.0, 0.3.0, 1.0.0, 1.1.0, … : a few majors, several minors each.
    let major = (index / 3) as u64;
    let minor = if major == 0 { index as u64 + 1 } else { (index % 3) as u64 };
    semver::Version::new(major, minor, 0)
}

/// Plans a registry of `spec.plugins` plugins with `spec.versions` releases each.
#[allow(clippy::expect_used)] // ids and versions are generated from a fixed alphabet
pub fn plan(spec: SynthSpec) -> Vec<SynthPlugin> {
    let mut rng = Rng(spec.seed);
    let vendors = (spec.plugins / 8).max(1);
    let mut plugins: Vec<SynthPlugin> = Vec::with_capacity(spec.plugins);
    for index in 0..spec.plugins {
        let vendor = rng.skewed(vendors, 3);
        let id: PluginId = format!("v{vendor}.plugin-{index}").parse().expect("generated id is valid");
        let mut releases = Vec::with_capacity(spec.versions);
        for v in 0..spec.versions {
            let count = if index == 0 { 0 } else { rng.skewed(9, 2) };
            let mut dependencies: Vec<Dependency> = Vec::new();
            for _ in 0..count {
                let target = &plugins[rng.skewed(index, 2)];
                if target.id == id || dependencies.iter().any(|d| d.id == target.id) {
                    continue;
                }
                let base = &target.releases[0].version;
                dependencies.push(Dependency {
                    id: target.id.clone(),
                    version_requirement: format!(">={}.{}, <{}", base.major, base.minor, base.major + 100)
                        .parse()
                        .expect("generated requirement is valid"),
                });
            }
            let roll = rng.unit();
            let channel = if v + 1 == spec.versions && roll < 0.10 {
                Channel::Beta
            } else if v + 1 == spec.versions && roll < 0.13 {
                Channel::Experimental
            } else {
                Channel::Stable
            };
            let yanked = rng.unit() < 0.03;
            releases.push(SynthRelease { version: version_of(v), channel, dependencies, yanked });
        }
        plugins.push(SynthPlugin { id, releases });
    }
    plugins
}

/// Writes the planned registry as real signed releases into the registry source
/// tree at `registry` (which `init` created): one publisher record per vendor, all
/// signed by [`fixture::key`]`(1)`, and the yanks. For small registries.
pub fn write_registry(registry: &Path, spec: SynthSpec) -> Result<usize, FixtureError> {
    let key = fixture::key(1);
    let plugins = plan(spec);
    let mut vendors: Vec<&str> = plugins.iter().map(|p| p.id.vendor()).collect();
    vendors.sort_unstable();
    vendors.dedup();
    for vendor in vendors {
        fixture::add_publisher(registry, vendor, &key)?;
    }
    let mut yanks = crate::registry::Yanks::default();
    let mut count = 0;
    for plugin in &plugins {
        for release in &plugin.releases {
            let mut spec = ReleaseSpec::new(plugin.id.as_str(), &release.version.to_string());
            spec.dependencies = release.dependencies.clone();
            spec.channel = release.channel;
            fixture::add_release(registry, &spec, &key)?;
            if release.yanked {
                yanks.yanked.push(crate::registry::Yank {
                    id: plugin.id.clone(),
                    version: release.version.clone(),
                    reason: "synthetic".into(),
                });
            }
            count += 1;
        }
    }
    let bytes = serde_json::to_vec_pretty(&yanks).unwrap_or_default();
    trellis_client::fs::write_atomic(&registry.join(crate::registry::YANKS_FILE), &bytes)?;
    Ok(count)
}

/// The planned registry as in-memory build inputs. Package and envelope blobs are
/// content addresses of short synthetic strings marked [`BlobSource::InSite`]: the
/// build signs and indexes them but does not write them.
pub fn build_input(spec: SynthSpec) -> Vec<PluginInput> {
    plan(spec).into_iter().map(plugin_input).collect()
}

/// One planned plugin as a build input (see [`build_input`]).
pub fn plugin_input(plugin: SynthPlugin) -> PluginInput {
    let id = plugin.id;
    let releases = plugin
        .releases
        .into_iter()
        .map(|release| {
            let tag = format!("{id}-{}", release.version);
            let package = Sha256::of(format!("package {tag}").as_bytes());
            let size = 40_000 + (package.as_bytes()[0] as u64) * 1000;
            let files = vec![
                FileEntry { path: "bin/any/plugin.wasm".into(), size: size * 2, sha256: Sha256::of(tag.as_bytes()) },
                FileEntry { path: "plugin.json".into(), size: 900, sha256: Sha256::of(b"plugin.json") },
            ];
            let manifest = ReleaseManifest {
                plugin_id: id.clone(),
                version: release.version,
                package: PackageDigest { sha256: package, size },
                files,
                permissions: Vec::new(),
                host: fixture::host(),
                platforms: vec![Platform::Any],
                channel: release.channel,
                dependencies: release.dependencies,
            };
            ReleaseInput {
                manifest_sha256: Sha256::of(format!("manifest {tag}").as_bytes()),
                name: format!("Plugin {id}"),
                min_client_version: None,
                package: Blob { sha256: package, length: size, source: BlobSource::InSite },
                envelope: Blob {
                    sha256: Sha256::of(format!("envelope {tag}").as_bytes()),
                    length: 620,
                    source: BlobSource::InSite,
                },
                manifest,
                yanked: release.yanked,
                rollout: None,
            }
        })
        .collect();
    PluginInput { id, releases }
}

/// Summary statistics of a plan, for benchmark reports.
pub fn shape(plugins: &[SynthPlugin]) -> BTreeMap<&'static str, usize> {
    let releases: Vec<&SynthRelease> = plugins.iter().flat_map(|p| &p.releases).collect();
    let mut out = BTreeMap::new();
    out.insert("plugins", plugins.len());
    out.insert("releases", releases.len());
    out.insert("dependencies", releases.iter().map(|r| r.dependencies.len()).sum());
    out.insert("yanked", releases.iter().filter(|r| r.yanked).count());
    out.insert("prerelease_channel", releases.iter().filter(|r| r.channel != Channel::Stable).count());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_realistically_shaped() {
        let spec = SynthSpec { plugins: 2000, versions: 10, seed: 7 };
        let plugins = plan(spec);
        assert_eq!(plugins, plan(spec));
        let stats = shape(&plugins);
        assert_eq!(stats["releases"], 20_000);
        let per_release = stats["dependencies"] as f64 / 20_000.0;
        assert!((1.0..4.0).contains(&per_release), "{per_release}");
        assert!((300..1000).contains(&stats["yanked"]), "{stats:?}");
        assert!(stats["prerelease_channel"] > 50, "{stats:?}");
        assert!(plugins.iter().flat_map(|p| &p.releases).all(|r| r.dependencies.len() <= 8));
        // Power law: the most depended-on plugin is depended on far more than the median.
        let mut counts: BTreeMap<&PluginId, usize> = BTreeMap::new();
        for d in plugins.iter().flat_map(|p| &p.releases).flat_map(|r| &r.dependencies) {
            *counts.entry(&d.id).or_default() += 1;
        }
        let mut sorted: Vec<usize> = counts.values().copied().collect();
        sorted.sort_unstable();
        assert!(sorted[sorted.len() - 1] > 20 * sorted[sorted.len() / 2], "{:?}", &sorted[sorted.len() - 5..]);
    }
}
