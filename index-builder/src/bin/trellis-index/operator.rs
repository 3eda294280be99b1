//! Registry operator subcommands: init, build, timestamp, yank, unyank, rollout, block,
//! unblock, rotate, verify, serve, synth.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_index::build::{self, Scope};
use trellis_index::operator::{self, InitOptions, RotatedRole};
use trellis_index::registry::{Expiry, Registry};
use trellis_index::serve::Server;
use trellis_index::{synth, verify};
use trellis_schema::blocklist::{BlockEntry, Severity};
use trellis_schema::index::Percent;
use trellis_schema::{PluginId, Sha256};

/// Commands a registry operator runs.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a new registry source tree with fresh keys for every role and root v1.
    Init {
        /// Directory of the new registry.
        dir: PathBuf,
        /// Display name of the store.
        #[arg(long, default_value = "Trellis plugin store")]
        name: String,
        /// URL the site will be served from.
        #[arg(long, default_value = "https://example.invalid/")]
        base_url: String,
        /// Number of root keys to create.
        #[arg(long, default_value_t = 1)]
        root_keys: u32,
        /// Root signatures required for a new root.
        #[arg(long, default_value_t = 1)]
        root_threshold: u32,
        /// Number of hash bins for index docs, as a power of two (1 to 16).
        #[arg(long, default_value_t = 8)]
        bin_bits: u32,
        /// Number of hash bins for publisher records, as a power of two (1 to 16).
        #[arg(long, default_value_t = trellis_index::registry::DEFAULT_PUBLISHER_BIN_BITS)]
        publisher_bin_bits: u32,
        /// Current time (RFC 3339), for expiry dates; defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
    },
    /// Build (or update) the signed static site of a registry and its storefront (HTML
    /// pages: home, categories, tags, plugins, publishers, search; the theme can be
    /// replaced file by file from the registry's `storefront/` directory).
    Build {
        /// The registry source tree.
        registry: PathBuf,
        /// The site directory; its previous state is read and only changes are written.
        #[arg(long)]
        out: PathBuf,
        /// Only these plugins changed (repeatable): skip loading the others.
        #[arg(long = "only", value_name = "PLUGIN_ID")]
        only: Vec<PluginId>,
        /// Current time (RFC 3339), for expiry dates; defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
        /// Also fetch `.remote.json` packages over plain http from a loopback host
        /// (tests and local previews; never in CI, where descriptors come from PRs).
        #[arg(long)]
        allow_loopback_http: bool,
        /// Use no key at all: write every changed online role, the snapshot and the
        /// timestamp without signatures, for `sign-prepared` to check and sign in
        /// another job (the top-level targets role must still be unchanged). The site
        /// written this way is not servable.
        #[arg(long)]
        unsigned: bool,
        /// Analyse, scan and sandbox the releases the site already publishes again
        /// (all of them, or those of `--only`) instead of carrying their published
        /// analysis over: after new scanner signatures or rules. A finding in a
        /// published release does not stop the build: its analysis is republished with
        /// it (its security level drops to flagged) and a warning says to block it.
        #[arg(long)]
        reanalyse: bool,
    },
    /// Sign a build prepared with `build --unsigned`, after checking it: the signing job
    /// of a split pipeline. Reads the published site, the registry source (releases/
    /// is not needed) and, from PREPARED, only the role payloads and the documents they
    /// list; refuses, naming the file, any release not signed by its developer under
    /// the publisher record, any published release changed or dropped, any other role,
    /// version, delegation, record or blocklist than the registry's. Writes the signed
    /// metadata and the checked documents into OUT, to copy over the published site with
    /// the prepared blobs. Expiry dates are computed here, from the registry's
    /// configuration.
    SignPrepared {
        /// The registry source tree (configuration, roots, publishers, yanks, rollouts,
        /// blocklist, and the online key files).
        registry: PathBuf,
        /// The published site the build started from.
        #[arg(long)]
        site: PathBuf,
        /// What `build --unsigned` wrote (only metadata/ and the documents are read).
        #[arg(long)]
        prepared: PathBuf,
        /// Where the signed metadata and checked documents are written.
        #[arg(long)]
        out: PathBuf,
        /// Current time (RFC 3339), for expiry dates; defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
    },
    /// Re-sign only metadata/timestamp.json (for a scheduled job).
    Timestamp {
        /// The registry source tree (for the config and the timestamp key).
        registry: PathBuf,
        /// The site directory.
        #[arg(long)]
        site: PathBuf,
        /// Current time (RFC 3339); defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
    },
    /// Mark a release yanked (never chosen for new installs); rebuild to publish.
    Yank {
        /// The registry source tree.
        registry: PathBuf,
        /// The release, as ID@VERSION.
        release: String,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove a yank; rebuild to publish.
    Unyank {
        /// The registry source tree.
        registry: PathBuf,
        /// The release, as ID@VERSION.
        release: String,
    },
    /// Stage a release: offer it as an update to PERCENT of installs; rebuild to publish.
    ///
    /// Each install falls in or out by a stable bucket of its own, so raising the share
    /// only adds installs. 100 ends the rollout (everyone); 0 halts it (installs that
    /// already updated keep the release). Only updates are staged: a new install always
    /// gets the newest release, and a user who names the plugin (`trellis update ID`)
    /// gets it at once.
    Rollout {
        /// The registry source tree.
        registry: PathBuf,
        /// The release, as ID@VERSION.
        release: String,
        /// Share of installs, 0 to 100 (`25` or `25%`).
        percent: Percent,
    },
    /// Add a blocklist entry; rebuild to publish.
    Block {
        /// The registry source tree.
        registry: PathBuf,
        /// Plugin id.
        id: PluginId,
        /// Versions blocked (a semver requirement, pre-releases included: `*` and
        /// `>=1.0.0` also block `1.2.0-rc.1`); all when absent.
        #[arg(long)]
        versions: Option<semver::VersionReq>,
        /// Block only the package with this SHA-256.
        #[arg(long)]
        sha256: Option<Sha256>,
        /// Why, shown to users.
        #[arg(long)]
        reason: String,
        /// low, medium, high or critical.
        #[arg(long, value_parser = parse_severity)]
        severity: Severity,
        /// Advisory URL.
        #[arg(long)]
        advisory: Option<String>,
        /// Current time (RFC 3339), recorded as the entry's date; defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
    },
    /// Remove blocklist entries of a plugin; rebuild to publish.
    Unblock {
        /// The registry source tree.
        registry: PathBuf,
        /// Plugin id.
        id: PluginId,
        /// Only the entry with exactly this version requirement.
        #[arg(long)]
        versions: Option<semver::VersionReq>,
    },
    /// Replace the keys of a role; top-level roles get a new root signed by old and new keys.
    Rotate {
        /// The registry source tree.
        registry: PathBuf,
        /// The role.
        #[arg(value_enum)]
        role: RotatedRole,
        /// Current time (RFC 3339); defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
    },
    /// Check a built or deployed site as a client would; list every problem.
    Verify {
        /// Site directory or http(s) URL.
        site: String,
        /// Trusted root to start from (default: the site's 1.root.json, trust on first use).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Current time (RFC 3339) for expiry checks; defaults to the clock.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
        /// Require every blob even in a partial mirror (made by `mirror --only`).
        #[arg(long)]
        full: bool,
    },
    /// Fill a registry made by `init` with a synthetic, realistically shaped set of
    /// signed releases (demos, tests, the python-tuf oracle). Publisher key: fixture key 1.
    Synth {
        /// The registry source tree.
        registry: PathBuf,
        /// Number of plugins.
        #[arg(long, default_value_t = 20)]
        plugins: usize,
        /// Versions per plugin.
        #[arg(long, default_value_t = 3)]
        versions: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Serve a site on a loopback address with CDN-like ETag and Cache-Control.
    Serve {
        /// The site directory.
        site: PathBuf,
        /// Loopback address, e.g. 127.0.0.1:8080.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown severity {s:?}; expected low, medium, high or critical"))
}

fn parse_release(release: &str) -> anyhow::Result<(PluginId, semver::Version)> {
    let (id, version) =
        release.split_once('@').with_context(|| format!("{release:?}: expected ID@VERSION, e.g. acme.clock@1.2.0"))?;
    Ok((id.parse()?, version.parse().with_context(|| format!("{version:?} is not a semantic version"))?))
}

fn now_or_clock(now: Option<jiff::Timestamp>) -> jiff::Timestamp {
    now.unwrap_or_else(jiff::Timestamp::now)
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { dir, name, base_url, root_keys, root_threshold, bin_bits, publisher_bin_bits, now } => {
            let options = InitOptions {
                name,
                base_url,
                root_keys,
                root_threshold,
                bin_bits,
                publisher_bin_bits,
                expiry: Expiry::default(),
                now: now_or_clock(now),
            };
            operator::init(&dir, &options)?;
            println!(
                "created registry {} (root v1, {root_keys} root key(s), threshold {root_threshold})",
                dir.display()
            );
            println!("private keys are in {}: move the root and targets keys offline", dir.join("keys").display());
        }
        Command::Build { registry, out, only, now, allow_loopback_http, unsigned, reanalyse } => {
            let scope =
                if only.is_empty() { Scope::Full } else { Scope::Plugins(only.into_iter().collect::<BTreeSet<_>>()) };
            let mut registry = build::open_registry(&registry, &out, &scope)?;
            if allow_loopback_http {
                registry = registry.with_remote_http(trellis_index::registry::RemoteHttp::AllowLoopback);
            }
            if reanalyse {
                registry = registry.with_reanalysis();
            }
            let now = now_or_clock(now);
            let signing = if unsigned { build::Signing::Unsigned } else { build::Signing::Signed };
            let report = build::build_registry_with(&registry, &out, scope, now, signing)?;
            println!(
                "indexed {} plugin(s), {} release(s) ({} analysed, the others as published); wrote {} {}file(s); snapshot v{}, timestamp v{}",
                report.plugins,
                report.releases,
                report.analysed,
                report.written.len(),
                if unsigned { "unsigned " } else { "" },
                report.snapshot_version,
                report.timestamp_version
            );
            println!(
                "storefront: wrote {} file(s); open {} through `trellis-index serve`",
                report.storefront.len(),
                out.join("index.html").display()
            );
            if !unsigned {
                crate::status::warn_site(&crate::status::dir_source(&out), Some(&registry), now);
            }
        }
        Command::SignPrepared { registry, site, prepared, out, now } => {
            let registry = Registry::open(&registry)?;
            let report = build::prepared::sign_prepared(&registry, &site, &prepared, &out, now_or_clock(now))?;
            if report.roles.is_empty() {
                println!("nothing prepared to sign");
            } else {
                let roles: Vec<String> = report.roles.iter().map(|(role, v)| format!("{role} v{v}")).collect();
                println!(
                    "checked {} document(s) and {} developer signature(s); signed {}",
                    report.documents,
                    report.releases,
                    roles.join(", ")
                );
            }
        }
        Command::Timestamp { registry, site, now } => {
            let registry = Registry::open(&registry)?;
            let now = now_or_clock(now);
            let version = operator::timestamp(&registry, &site, now)?;
            println!("signed timestamp.json v{version}");
            crate::status::warn_site(&crate::status::dir_source(&site), Some(&registry), now);
        }
        Command::Yank { registry, release, reason } => {
            let (id, version) = parse_release(&release)?;
            operator::yank(&Registry::open(&registry)?, &id, &version, &reason)?;
            println!("yanked {id} {version}; run `trellis-index build --only {id}` to publish");
        }
        Command::Unyank { registry, release } => {
            let (id, version) = parse_release(&release)?;
            operator::unyank(&Registry::open(&registry)?, &id, &version)?;
            println!("unyanked {id} {version}; run `trellis-index build --only {id}` to publish");
        }
        Command::Rollout { registry, release, percent } => {
            let (id, version) = parse_release(&release)?;
            let before = operator::rollout(&Registry::open(&registry)?, &id, &version, percent)?;
            let before = before.unwrap_or(Percent::ALL);
            let now =
                if percent == Percent::ALL { "every install".to_owned() } else { format!("{percent} of installs") };
            println!(
                "{id} {version} is offered as an update to {now} (was {before}); run `trellis-index build --only {id}` to publish"
            );
        }
        Command::Block { registry, id, versions, sha256, reason, severity, advisory, now } => {
            let added = now_or_clock(now).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let entry = BlockEntry { id: id.clone(), versions, sha256, reason, severity, advisory, added };
            operator::block(&Registry::open(&registry)?, entry)?;
            println!("blocked {id}; run `trellis-index build` to publish");
        }
        Command::Unblock { registry, id, versions } => {
            let removed = operator::unblock(&Registry::open(&registry)?, &id, versions.as_ref())?;
            println!("removed {removed} blocklist entr{} of {id}", if removed == 1 { "y" } else { "ies" });
        }
        Command::Rotate { registry, role, now } => {
            let paths = operator::rotate(&Registry::open(&registry)?, role, now_or_clock(now))?;
            for path in paths {
                println!("new key: {}", path.display());
            }
            println!("run `trellis-index build` to publish the change");
        }
        Command::Verify { site, root, now, full } => {
            let source = verify::Source::parse(&site);
            let trusted = match root {
                Some(path) => Some(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?),
                None => None,
            };
            let now = now_or_clock(now);
            let blobs = if full { verify::Blobs::All } else { verify::Blobs::AsMarked };
            let report = verify::verify_blobs(&source, trusted.as_deref(), now, blobs);
            crate::status::warn_site(&source, None, now);
            println!(
                "checked {} role file(s), {} target(s), {} blob(s), {} release signature(s), {} index doc alias(es)",
                report.roles, report.targets, report.blobs, report.releases, report.aliases
            );
            if let Some(plugins) = &report.partial {
                let names: Vec<String> = plugins.iter().map(ToString::to_string).collect();
                println!(
                    "partial mirror: holds the blobs of {} only; {} blob(s) of other plugins are absent by design (--full requires them)",
                    if names.is_empty() { "no plugin".to_owned() } else { names.join(", ") },
                    report.absent_blobs
                );
            }
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            if report.problems.is_empty() {
                println!("no problems");
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            println!("{} problem(s)", report.problems.len());
            return Ok(ExitCode::from(1));
        }
        Command::Synth { registry, plugins, versions, seed } => {
            let count = synth::write_registry(&registry, synth::SynthSpec { plugins, versions, seed })?;
            println!("wrote {count} signed release(s) of {plugins} plugin(s) into {}", registry.display());
        }
        Command::Serve { site, addr } => {
            let server = Server::start(&site, addr)?;
            println!("serving {} at {}", site.display(), server.url());
            server.wait();
        }
    }
    Ok(ExitCode::SUCCESS)
}
