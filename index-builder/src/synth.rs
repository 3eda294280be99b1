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
//!   builder;
//! - [`SynthSite::hybrid_input`]: both at once, for client benchmarks at 100k: every
//!   plugin as metadata, and real signed packages only for the plugins a benchmark
//!   installs, so everything a client fetches is real and verifies.
//!
//! [`SynthSite`] is the set-up those benchmarks share (a registry source tree with
//! its keys, a site directory, publisher records for every vendor). Building is
//! [`crate::build`]'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use trellis_schema::manifest::{FileEntry, ManifestFormat, PackageDigest, ReleaseManifest};
use trellis_schema::plugin::{Channel, Dependency, Platform, PricingModel};
use trellis_schema::{PluginId, Sha256};

use crate::build::{self, BuildError, BuildInput, BuildReport, Durability, Scope};
use crate::fixture::{self, FixtureError, ReleaseSpec};
use crate::operator::{self, InitOptions, OperatorError};
use crate::registry::{Expiry, Registry, RegistryError};
use crate::release::{Blob, BlobSource, PluginInput, ReleaseDisplay, ReleaseInput};

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

/// SplitMix64: small, fast, deterministic; good enough to shape test data (and the
/// benchmarks' random graphs: the same seed gives the same data on every machine).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n) (n > 0; the modulo bias is negligible for small n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
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
            spec.display = Some(display_of(&plugin.id));
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
    let (name, display) = display_of(&id);
    let display = std::sync::Arc::new(display);
    let releases = plugin
        .releases
        .into_iter()
        .map(|release| {
            let tag = format!("{id}-{}", release.version);
            let package = Sha256::of(format!("package {tag}").as_bytes());
            let size = 40_000 + (package.as_bytes()[0] as u64) * 1000;
            let files = vec![
                FileEntry {
                    path: "bin/any/plugin.wasm".into(),
                    size: size * 2,
                    sha256: Sha256::of(tag.as_bytes()),
                    executable: true,
                },
                FileEntry {
                    path: "plugin.json".into(),
                    size: 900,
                    sha256: Sha256::of(b"plugin.json"),
                    executable: false,
                },
            ];
            let manifest = ReleaseManifest {
                format: ManifestFormat::CURRENT,
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
                name: name.clone(),
                display: std::sync::Arc::clone(&display),
                min_client_version: None,
                pricing: None,
                package: Blob { sha256: package, length: size, source: BlobSource::InSite },
                envelope: Blob {
                    sha256: Sha256::of(format!("envelope {tag}").as_bytes()),
                    length: 620,
                    source: BlobSource::InSite,
                },
                manifest,
                yanked: release.yanked,
                rollout: None,
                components: Vec::new(),
                analysis: None,
                analysed: false,
                signing_keys: 1,
            }
        })
        .collect();
    PluginInput { id, releases }
}

/// Topics of the synthetic vocabulary: a store category, nouns a plugin of that kind
/// is named after, and tags.
const TOPICS: &[(&str, &[&str], &[&str])] = &[
    (
        "productivity",
        &["calendar", "todo", "notes", "timer", "reminder", "planner", "kanban", "journal"],
        &["tasks", "time", "focus", "schedule"],
    ),
    (
        "developer-tools",
        &["git", "linter", "formatter", "debugger", "terminal", "snippets", "regex", "json"],
        &["code", "git", "format", "debug"],
    ),
    (
        "communication",
        &["chat", "mail", "slack", "discord", "matrix", "notify", "webhook", "sms"],
        &["messaging", "email", "alerts", "team"],
    ),
    (
        "media",
        &["player", "music", "video", "podcast", "radio", "playlist", "screenshot", "camera"],
        &["audio", "video", "streaming", "capture"],
    ),
    (
        "design",
        &["palette", "color", "icons", "fonts", "sketch", "vector", "mockup", "grid"],
        &["colors", "ui", "graphics", "layout"],
    ),
    (
        "data",
        &["csv", "sql", "database", "chart", "spreadsheet", "query", "backup", "sync"],
        &["tables", "charts", "storage", "import"],
    ),
    (
        "security",
        &["password", "vault", "firewall", "scanner", "encrypt", "auth", "token", "audit"],
        &["privacy", "crypto", "secrets", "2fa"],
    ),
    (
        "language",
        &["translate", "spell", "grammar", "dictionary", "thesaurus", "markdown", "latex", "writer"],
        &["writing", "text", "i18n", "docs"],
    ),
    (
        "finance",
        &["budget", "invoice", "crypto", "stocks", "expense", "currency", "tax", "wallet"],
        &["money", "accounting", "trading", "bank"],
    ),
    (
        "games",
        &["chess", "sudoku", "puzzle", "trivia", "cards", "arcade", "dice", "quiz"],
        &["fun", "puzzle", "board", "casual"],
    ),
    (
        "ai",
        &["assistant", "summarizer", "classifier", "vision", "embeddings", "copilot", "transcribe", "agent"],
        &["llm", "ml", "speech", "automation"],
    ),
    (
        "utility",
        &["clock", "weather", "clipboard", "launcher", "rename", "archive", "converter", "battery"],
        &["tools", "system", "files", "desktop"],
    ),
    (
        "theme",
        &["dark", "solarized", "nord", "dracula", "pastel", "contrast", "retro", "minimal"],
        &["themes", "appearance", "colors", "style"],
    ),
    (
        "integration",
        &["github", "jira", "trello", "notion", "dropbox", "drive", "zapier", "rss"],
        &["cloud", "api", "sync", "connect"],
    ),
];

const ADJECTIVES: &[&str] = &[
    "Quick", "Smart", "Simple", "Tiny", "Better", "Power", "Open", "Super", "Pro", "Zen", "Swift", "Live", "Auto",
    "Magic", "Clean",
];

const PHRASES: &[&str] = &[
    "Works offline and keeps your data on this machine.",
    "Configurable shortcuts and a command palette entry.",
    "Fast, small and dependency free.",
    "Supports dark mode and high contrast themes.",
    "Syncs settings across devices when you sign in.",
    "Written in Rust for speed and safety.",
    "Includes sensible defaults and detailed documentation.",
    "Integrates with the status bar and notifications.",
];

/// Display name and catalog text of synthetic plugin `id`: a name, a short and a full
/// description, tags and a category drawn from a realistic vocabulary (deterministic
/// from the id, independent of [`plan`]'s random stream).
pub fn display_of(id: &PluginId) -> (String, ReleaseDisplay) {
    let mut rng =
        Rng(u64::from_be_bytes(Sha256::of(id.as_str().as_bytes()).as_bytes()[..8].try_into().unwrap_or([0; 8])));
    let (category, nouns, tags) = TOPICS[rng.skewed(TOPICS.len(), 1)];
    let noun = nouns[rng.skewed(nouns.len(), 2)];
    let other = nouns[rng.skewed(nouns.len(), 1)];
    let adjective = ADJECTIVES[rng.skewed(ADJECTIVES.len(), 1)];
    let capital = |word: &str| {
        let mut chars = word.chars();
        chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
    };
    let name = format!("{adjective} {}", capital(noun));
    let summary = format!("{} {noun} for your {category} work, with {other} support.", capital(adjective));
    let description = format!(
        "{name} brings {noun} and {other} tools to the app. {} {}",
        PHRASES[rng.skewed(PHRASES.len(), 1)],
        PHRASES[rng.skewed(PHRASES.len(), 1)]
    );
    let mut chosen: Vec<String> =
        (0..1 + rng.skewed(3, 1)).map(|_| tags[rng.skewed(tags.len(), 1)].to_owned()).collect();
    chosen.sort();
    chosen.dedup();
    let pricing = trellis_schema::plugin::Pricing {
        model: if rng.unit() < 0.8 { PricingModel::Free } else { PricingModel::Paid },
        trial_days: 0,
    };
    let display = ReleaseDisplay {
        summary,
        description,
        vendor: format!("Vendor {}", capital(id.vendor())),
        categories: vec![category.to_owned()],
        tags: chosen,
        pricing,
    };
    (name, display)
}

/// Why a synthetic site could not be set up or built.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// `init` of the registry source tree failed.
    #[error("initialising the synthetic registry: {0}")]
    Init(#[from] OperatorError),
    /// The registry source tree could not be read back.
    #[error("reading the synthetic registry: {0}")]
    Registry(#[from] Box<RegistryError>),
    /// A real release could not be made.
    #[error("making a real release: {0}")]
    Fixture(#[from] FixtureError),
    /// The build refused the input.
    #[error("building the synthetic site: {0}")]
    Build(#[from] Box<BuildError>),
}

impl From<RegistryError> for SynthError {
    fn from(error: RegistryError) -> Self {
        Self::Registry(Box::new(error))
    }
}

impl From<BuildError> for SynthError {
    fn from(error: BuildError) -> Self {
        Self::Build(Box::new(error))
    }
}

/// The key every synthetic publisher signs its releases with.
pub fn publisher_key() -> trellis_schema::SigningKey {
    fixture::key(1)
}

/// A synthetic registry source tree (from [`operator::init`], so with real TUF keys)
/// and the site it builds into: the set-up the benchmarks at 100k share.
///
/// Publisher records of every vendor of a plan ([`SynthSite::add_publishers`]) are
/// held in memory and published like records of the source tree; only the vendors of
/// real releases also get a record file, which the builder's release checks read.
#[derive(Debug)]
pub struct SynthSite {
    /// The registry source tree.
    pub registry: Registry,
    /// The site directory builds write.
    pub site_dir: PathBuf,
    /// Every plugin id of the registry (for the builder's dependency check).
    pub known: BTreeSet<PluginId>,
    /// The build's notion of now.
    pub now: jiff::Timestamp,
    /// Whether builds fsync content files ([`Durability::OsBuffered`] by default: a
    /// benchmark site is thrown away after a crash).
    pub durability: Durability,
}

impl SynthSite {
    /// Initialises a registry in `work/registry` with one root key and `2^bin_bits`
    /// hash bins, building into `work/site`.
    pub fn init(work: &Path, bin_bits: u32, now: jiff::Timestamp) -> Result<Self, SynthError> {
        let registry_dir = work.join("registry");
        let options = InitOptions {
            name: "Synthetic".into(),
            base_url: "http://127.0.0.1/".into(),
            root_keys: 1,
            root_threshold: 1,
            bin_bits,
            publisher_bin_bits: crate::registry::DEFAULT_PUBLISHER_BIN_BITS,
            expiry: Expiry::default(),
            now,
        };
        operator::init(&registry_dir, &options)?;
        Ok(Self {
            registry: Registry::open(&registry_dir)?,
            site_dir: work.join("site"),
            known: BTreeSet::new(),
            now,
            durability: Durability::OsBuffered,
        })
    }

    /// The same site with builds of another durability.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Records the plugins of `plan` as the registry's plugins and a publisher record
    /// (trusting [`publisher_key`]) for each of their vendors.
    pub fn add_publishers(&mut self, plan: &[SynthPlugin]) {
        let key = publisher_key();
        for plugin in plan {
            self.known.insert(plugin.id.clone());
            let vendor = plugin.id.vendor_id();
            Arc::make_mut(&mut self.registry.publishers)
                .entry(vendor)
                .or_insert_with_key(|vendor| fixture::publisher_chain(vendor.as_str(), &[&key]));
        }
    }

    /// The build input of `plan`: real signed packages (written into the registry
    /// source tree, then loaded and checked like any submitted release) for every
    /// release of the plugins in `real`, content addresses only for the others. Adds
    /// the plan's publishers first ([`SynthSite::add_publishers`]).
    pub fn hybrid_input(
        &mut self,
        plan: Vec<SynthPlugin>,
        real: &BTreeSet<PluginId>,
    ) -> Result<Vec<PluginInput>, SynthError> {
        self.add_publishers(&plan);
        let (chosen, rest): (Vec<SynthPlugin>, Vec<SynthPlugin>) =
            plan.into_iter().partition(|plugin| real.contains(&plugin.id));
        let mut inputs = self.real_inputs(&chosen)?;
        inputs.extend(rest.into_iter().map(plugin_input));
        Ok(inputs)
    }

    /// Writes every release of `plugins` as a real signed package into the registry
    /// source tree and loads them back through the builder's release checks
    /// (signature under the publisher record, package digest, lint); yanks follow the
    /// plan. Also how a benchmark publishes new releases before an incremental build.
    pub fn real_inputs(&mut self, plugins: &[SynthPlugin]) -> Result<Vec<PluginInput>, SynthError> {
        let key = publisher_key();
        let dir = self.registry.dir.clone();
        for plugin in plugins {
            let vendor = plugin.id.vendor();
            fixture::add_publisher(&dir, vendor, &key).map_err(|e| FixtureError::Io(e.to_string()))?;
        }
        let releases: Vec<(&SynthPlugin, &SynthRelease)> =
            plugins.iter().flat_map(|p| p.releases.iter().map(move |r| (p, r))).collect();
        releases.par_iter().try_for_each(|(plugin, release)| {
            let mut spec = ReleaseSpec::new(plugin.id.as_str(), &release.version.to_string());
            spec.dependencies = release.dependencies.clone();
            spec.channel = release.channel;
            spec.display = Some(display_of(&plugin.id));
            fixture::add_release(&dir, &spec, &key).map(drop)
        })?;
        // Reopen for the record files just written; keep the in-memory records.
        let mut records = std::mem::take(&mut self.registry.publishers);
        self.registry = Registry::open(&dir)?;
        Arc::make_mut(&mut records).append(Arc::make_mut(&mut self.registry.publishers));
        self.registry.publishers = records;
        let ids: BTreeSet<PluginId> = plugins.iter().map(|p| p.id.clone()).collect();
        let mut inputs = self.registry.load_plugins(&ids)?;
        for input in &mut inputs {
            let Some(planned) = plugins.iter().find(|p| p.id == input.id) else { continue };
            for release in &mut input.releases {
                release.yanked = planned.releases.iter().any(|r| r.yanked && r.version == release.manifest.version);
            }
        }
        self.known.extend(ids);
        Ok(inputs)
    }

    /// The build input of `plugins` with everything else from the registry (keys,
    /// roots, publishers, blocklist).
    pub fn input(&self, plugins: Vec<PluginInput>, scope: Scope) -> Result<BuildInput, SynthError> {
        Ok(BuildInput::for_registry(&self.registry, plugins, Arc::new(self.known.clone().into()), scope, self.now)?
            .with_durability(self.durability))
    }

    /// Builds `plugins` into the site ([`Scope::Full`] for the first build).
    pub fn build(&self, plugins: Vec<PluginInput>, scope: Scope) -> Result<BuildReport, SynthError> {
        Ok(build::build(self.input(plugins, scope)?, &self.site_dir)?)
    }

    /// The site's first root, the one a client pins.
    pub fn root_file(&self) -> PathBuf {
        crate::site::metadata_file(&self.site_dir, "root", 1)
    }
}

/// The newest stable, not yanked release of `plugin`: what a fresh install of it picks
/// when nothing else constrains it.
pub fn newest_stable(plugin: &SynthPlugin) -> Option<&SynthRelease> {
    plugin.releases.iter().rev().find(|r| !r.yanked && r.channel == Channel::Stable)
}

/// The plugins a fresh install of `plan[index]` brings in, following the dependencies
/// of [`newest_stable`] releases (plugins without one end the walk), as indices into
/// `plan`, sorted. Stops early, returning `None`, once more than `limit` are found.
pub fn closure(plan: &[SynthPlugin], index: usize, limit: usize) -> Option<Vec<usize>> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![index];
    while let Some(next) = todo.pop() {
        if !seen.insert(next) {
            continue;
        }
        if seen.len() > limit {
            return None;
        }
        let Some(release) = plan.get(next).and_then(newest_stable) else { continue };
        todo.extend(release.dependencies.iter().filter_map(|d| position(plan, &d.id)));
    }
    Some(seen.into_iter().collect())
}

/// Where `id` is in `plan`: ids are generated as `v<vendor>.plugin-<index>`.
fn position(plan: &[SynthPlugin], id: &PluginId) -> Option<usize> {
    let index: usize = id.as_str().rsplit_once("plugin-")?.1.parse().ok()?;
    (plan.get(index)?.id == *id).then_some(index)
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

    #[test]
    fn hybrid_site_signs_real_packages_only_for_the_chosen_plugins_and_builds() {
        let work = tempfile::tempdir().unwrap();
        let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut site = SynthSite::init(work.path(), 4, now).unwrap();
        let plan = plan(SynthSpec { plugins: 12, versions: 2, seed: 3 });
        let chosen = plan[7].id.clone();
        let inputs = site.hybrid_input(plan.clone(), &BTreeSet::from([chosen.clone()])).unwrap();
        assert_eq!(inputs.len(), 12);
        for input in &inputs {
            for release in &input.releases {
                let real = matches!(release.package.source, BlobSource::File(_));
                assert_eq!(real, input.id == chosen, "{} {}", input.id, release.manifest.version);
            }
        }
        let vendors: BTreeSet<_> = plan.iter().map(|p| p.id.vendor_id()).collect();
        assert!(vendors.iter().all(|v| site.registry.publishers.contains_key(v)));
        let report = site.build(inputs, Scope::Full).unwrap();
        assert_eq!(report.releases, 24);
        // The real packages are in the site under their content address; the others are not.
        let packages: Vec<String> = report.written.iter().filter(|p| p.ends_with(".zip")).cloned().collect();
        assert_eq!(packages.len(), 2, "{packages:?}");
        assert!(packages.iter().all(|p| p.contains(chosen.as_str())), "{packages:?}");
        for package in &packages {
            let bytes =
                std::fs::read(site.site_dir.join("targets").join(package.trim_start_matches("targets/"))).unwrap();
            let name = package.rsplit('/').next().unwrap();
            assert!(name.starts_with(&Sha256::of(&bytes).to_hex()), "{package}");
        }
    }
}
