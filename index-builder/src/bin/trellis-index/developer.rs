//! Developer subcommands: keygen, pack, sign, lint, publisher (record chains).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_index::{keyfile, lint, pack, publisher, sign};
use trellis_schema::validate::Severity;

/// Commands a plugin developer runs.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create an Ed25519 signing key (file mode 0600) and print its public key and key id.
    Keygen {
        /// Where to write the private key file; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Pack a plugin source tree into a deterministic package (.zip) with its content manifest.
    ///
    /// The same tree always gives the same bytes. A tree that the store or the client
    /// would refuse (bad plugin.json, unsafe file names, symlinks, missing icons...) is
    /// refused with every problem listed.
    Pack {
        /// The plugin's source tree (holds plugin.json, LICENSE, bin/, resources/, docs/).
        dir: PathBuf,
        /// Package to write; defaults to `<id>-<version>.zip` in the current directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a package: writes a DSSE envelope over its release manifest as `<package>.dsse`.
    ///
    /// Signing again with another key of the same publisher adds a co-signature.
    Sign {
        /// The package to sign.
        package: PathBuf,
        /// The developer's private key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Replace the envelope's signatures instead of adding one (re-signing a
        /// published release after its key was revoked; the signed manifest is the same).
        #[arg(long)]
        resign: bool,
    },
    /// Write publisher record chains (`publishers/<vendor>.json`): init, update, recover.
    #[command(subcommand)]
    Publisher(PublisherCommand),
    /// Check a source tree or a package the way the store will; exit 0 when clean, 1 on problems.
    Lint {
        /// A plugin source tree, a package (.zip), or a registry source tree (then its
        /// reviews are checked, as `trellis-index reviews check` does).
        path: PathBuf,
        /// Check the package's signature against this publisher record chain
        /// (`publishers/<vendor>.json`).
        #[arg(long)]
        publisher: Option<PathBuf>,
        /// The trusted chain of the same publisher (the base branch's copy): the
        /// `--publisher` chain must extend it with versions signed by its keys. A pull
        /// request check must pass this whenever the base branch has a record.
        #[arg(long, requires = "publisher")]
        trusted_publisher: Option<PathBuf>,
        /// The registry's newest root (`root/N.root.json` of the base branch): its
        /// targets keys may sign a recovery version of the record.
        #[arg(long, requires = "publisher")]
        root: Option<PathBuf>,
        /// Scan with the malware scanners this registry configures (the `"scanners"`
        /// of DIR/trellis-registry.json: ClamAV, YARA, the known-bad hash list).
        #[arg(long, value_name = "DIR")]
        registry: Option<PathBuf>,
        /// Also run the Linux entry point in a sandbox (bubblewrap + strace; no network,
        /// a private file system, process/size/time limits) and compare what it does
        /// with the declared permissions.
        #[arg(long)]
        sandbox: bool,
        /// Seconds the sandboxed run may take before it is stopped.
        #[arg(long, default_value_t = 10, requires = "sandbox")]
        sandbox_timeout: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `trellis-index publisher …`.
#[derive(Subcommand)]
pub(crate) enum PublisherCommand {
    /// Write version 1 of a publisher record, signed by its keys.
    Init {
        /// Publisher id (the namespace of its plugin ids).
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Private key files of the publisher's keys (each signs version 1).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Signatures required on releases and on the next record version.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// Web site.
        #[arg(long)]
        website: Option<String>,
        /// Security contact.
        #[arg(long)]
        contact: Option<String>,
        /// Where to write (default `publishers/<id>.json`); never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Append a version to a record: signed by current keys (`--key`) and added keys.
    Update {
        /// The record chain file, rewritten in place.
        record: PathBuf,
        /// Private key files of current keys (a threshold of them must be given).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Private key file of a key to add (it signs the new version too).
        #[arg(long = "add-key")]
        add: Vec<PathBuf>,
        /// A license key to add (the public key file `license keygen` writes, or its
        /// private key file): it signs license tokens only.
        #[arg(long = "add-license-key", value_name = "FILE")]
        add_license: Vec<PathBuf>,
        /// Key id of a key to drop without revoking it.
        #[arg(long = "remove-key")]
        remove: Vec<String>,
        /// Key id of a key to revoke: its signatures stop counting, on old releases too.
        #[arg(long)]
        revoke: Vec<String>,
        /// Why the keys are revoked.
        #[arg(long, default_value = "")]
        reason: String,
        /// New threshold.
        #[arg(long)]
        threshold: Option<u32>,
        /// Date of the revocation (default: today, UTC).
        #[arg(long)]
        at: Option<String>,
    },
    /// Append a recovery version for a publisher who lost every key: all current keys
    /// revoked, the new keys listed; signed by the registry's offline targets keys.
    Recover {
        /// The record chain file, rewritten in place.
        record: PathBuf,
        /// The registry's targets key files (offline; the root's targets threshold of them).
        #[arg(long = "recovery-key", required = true)]
        recovery: Vec<PathBuf>,
        /// Private key files of the publisher's new keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Signatures required with the new keys.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// Why.
        #[arg(long, default_value = "every key lost")]
        reason: String,
        /// Date of the revocation (default: today, UTC).
        #[arg(long)]
        at: Option<String>,
    },
    /// Print the domain proof the record's website must serve at
    /// `/.well-known/trellis-publisher.json` for the publisher to be verified: its id
    /// and every key of the record's newest version.
    Proof {
        /// The record chain file.
        record: PathBuf,
    },
    /// Check a submitted record chain: from version 1 for a new publisher, else as a
    /// valid extension of the trusted chain (the base branch's copy). Exit 0 when it
    /// is accepted, 1 when refused (a pull request that adds its own key, say).
    Check {
        /// The submitted record chain (the pull request's `publishers/<vendor>.json`).
        record: PathBuf,
        /// The trusted chain of the same publisher (the base branch's copy).
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// The registry's newest root (the base branch's): its targets keys may sign
        /// a recovery version.
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

fn read_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<trellis_schema::SigningKey>> {
    paths.iter().map(|p| Ok(keyfile::read(p)?)).collect()
}

fn read_chain(path: &std::path::Path) -> anyhow::Result<trellis_schema::publisher::PublisherChain> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a publisher record chain", path.display()))
}

fn write_chain(path: &std::path::Path, chain: &trellis_schema::publisher::PublisherChain) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(chain)?;
    text.push(b'\n');
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        trellis_client::fs::create_dir_all(parent)?;
    }
    trellis_client::fs::write_atomic(path, &text)?;
    let head = chain.head().map(|h| &h.signed);
    println!(
        "wrote {} (version {}, {} key(s), threshold {})",
        path.display(),
        head.map_or(0, |h| h.version),
        head.map_or(0, |h| h.keys.len()),
        head.map_or(0, |h| h.threshold)
    );
    Ok(())
}

fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

fn run_publisher(command: PublisherCommand) -> anyhow::Result<ExitCode> {
    match command {
        PublisherCommand::Init { id, name, keys, threshold, website, contact, out } => {
            let vendor: trellis_schema::VendorId = id.parse().map_err(|e| anyhow::anyhow!("--id {id}: {e}"))?;
            let out = out.unwrap_or_else(|| PathBuf::from("publishers").join(format!("{vendor}.json")));
            anyhow::ensure!(!out.exists(), "{} exists; extend it with `publisher update`", out.display());
            let chain = publisher::init(vendor, name, website, contact, &read_keys(&keys)?, threshold)?;
            write_chain(&out, &chain)?;
        }
        PublisherCommand::Update { record, keys, add, add_license, remove, revoke, reason, threshold, at } => {
            let chain = read_chain(&record)?;
            let change = publisher::RecordChange {
                add: read_keys(&add)?,
                add_license: add_license
                    .iter()
                    .map(|p| trellis_index::license::read_public_key(p))
                    .collect::<Result<_, _>>()?,
                remove: remove.into_iter().map(trellis_schema::KeyId).collect(),
                revoke: revoke.into_iter().map(|id| (trellis_schema::KeyId(id), reason.clone())).collect(),
                threshold,
                revoked_at: at.unwrap_or_else(today),
            };
            let chain = publisher::update(&chain, &read_keys(&keys)?, change)?;
            write_chain(&record, &chain)?;
        }
        PublisherCommand::Proof { record } => {
            let chain = read_chain(&record)?;
            let head = chain.head().with_context(|| format!("{} has no record", record.display()))?;
            let proof = trellis_index::domain_proof::DomainProof {
                format: trellis_index::domain_proof::PROOF_FORMAT,
                publisher: head.signed.id.clone(),
                keys: head.signed.keys.keys().cloned().collect(),
            };
            let domain = trellis_index::domain_proof::domain_of(&head.signed).map_err(anyhow::Error::msg)?;
            eprintln!("serve this at https://{domain}{}", trellis_index::domain_proof::PROOF_PATH);
            println!("{}", serde_json::to_string_pretty(&proof)?);
        }
        PublisherCommand::Recover { record, recovery, keys, threshold, reason, at } => {
            let chain = read_chain(&record)?;
            let chain = publisher::recover(
                &chain,
                &read_keys(&recovery)?,
                &read_keys(&keys)?,
                threshold,
                &reason,
                &at.unwrap_or_else(today),
            )?;
            write_chain(&record, &chain)?;
        }
        PublisherCommand::Check { record, trusted, root } => {
            let root = match root {
                Some(file) => Some(read_root(&file)?),
                None => None,
            };
            return Ok(match lint::submitted_publisher(&record, trusted.as_deref(), root.as_ref()) {
                Ok(head) => {
                    println!(
                        "ok: {} version {} ({} key(s), threshold {}){}",
                        record.display(),
                        head.version,
                        head.keys.len(),
                        head.threshold,
                        if trusted.is_some() {
                            ", a valid extension of the trusted record"
                        } else {
                            ", a new publisher"
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    println!("refused: {error}");
                    ExitCode::from(1)
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_root(file: &std::path::Path) -> anyhow::Result<trellis_schema::tuf::Root> {
    Ok(serde_json::from_slice::<trellis_schema::tuf::Envelope<trellis_schema::tuf::Root>>(
        &std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
    )
    .with_context(|| format!("{} is not a root", file.display()))?
    .signed)
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen { out } => {
            let key = keyfile::generate(&out)?;
            println!("wrote private key to {}", out.display());
            println!("key id:     {}", key.key_id());
            println!("public key: {}", serde_json::to_string(key.public())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pack { dir, out } => {
            let out = match out {
                Some(out) => out,
                None => PathBuf::from(pack::default_file_name(&pack::read_metadata(&dir)?)),
            };
            let packed = pack::pack_dir(&dir, &out)?;
            for warning in &packed.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "packed {} {} into {} ({} files, {} bytes, sha256 {})",
                packed.metadata.id,
                packed.metadata.version,
                packed.path.display(),
                packed.manifest.files.len(),
                packed.digest.size,
                packed.digest.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Publisher(command) => run_publisher(command),
        Command::Sign { package, key, resign } => {
            let key = keyfile::read(&key)?;
            let signed =
                if resign { sign::resign_package(&package, &key)? } else { sign::sign_package(&package, &key)? };
            let verb = if signed.cosigned { "added a co-signature to" } else { "wrote" };
            println!(
                "{verb} {} for {} (package sha256 {}, key {})",
                signed.envelope_path.display(),
                signed.manifest.release_name(),
                signed.manifest.package.sha256,
                key.key_id()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint { path, publisher, trusted_publisher, root, registry, sandbox, sandbox_timeout, json } => {
            if path.join(trellis_index::registry::CONFIG_FILE).is_file() {
                // A registry source tree: what it holds besides packages is its reviews.
                return crate::reviews::run(crate::reviews::Command::Check { registry: path, json });
            }
            let root = match root {
                Some(file) => Some(
                    serde_json::from_slice::<trellis_schema::tuf::Envelope<trellis_schema::tuf::Root>>(
                        &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
                    )
                    .with_context(|| format!("{} is not a root", file.display()))?
                    .signed,
                ),
                None => None,
            };
            let publisher = match publisher {
                Some(file) => Some(lint::submitted_publisher(&file, trusted_publisher.as_deref(), root.as_ref())?),
                None => None,
            };
            let scanners = match registry {
                Some(dir) => scanners_of(&dir)?,
                None => Default::default(),
            };
            let sandbox = sandbox.then(|| trellis_index::analysis::sandbox::SandboxOptions {
                timeout: std::time::Duration::from_secs(sandbox_timeout),
                ..Default::default()
            });
            let analysis = trellis_index::analysis::AnalysisOptions { scanners, sandbox, reanalyse: false };
            let report = lint::lint(&path, &lint::LintOptions { publisher, analysis, skip_analysis: false })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_lint(&report);
            }
            Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// The `"scanners"` of `dir/trellis-registry.json`, paths taken from `dir` (only that
/// member is read: a pull-request check passes the base branch's checkout).
fn scanners_of(dir: &std::path::Path) -> anyhow::Result<trellis_index::analysis::scanners::ScannerConfig> {
    let path = dir.join("trellis-registry.json");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("{} is not JSON", path.display()))?;
    let scanners = match config.get("scanners") {
        Some(value) => {
            serde_json::from_value(value.clone()).with_context(|| format!("{}: \"scanners\"", path.display()))?
        }
        None => Default::default(),
    };
    Ok(trellis_index::analysis::scanners::ScannerConfig::resolved(scanners, dir))
}

fn print_lint(report: &lint::LintReport) {
    let release = report.release.as_deref().unwrap_or("(unreadable plugin.json)");
    println!("lint {release}: {}", report.target.display());
    for problem in &report.problems {
        let label = match problem.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        println!("  {label}: {problem}");
    }
    match &report.signature {
        lint::SignatureStatus::Absent => {}
        lint::SignatureStatus::Unchecked { signers } => {
            let keys: Vec<&str> = signers.iter().map(|k| k.short()).collect();
            println!(
                "  signature: matches this package, signed by {} (pass --publisher to check the keys)",
                keys.join(", ")
            );
        }
        lint::SignatureStatus::Verified { publisher } => {
            println!("  signature: verified against publisher {publisher}")
        }
        lint::SignatureStatus::Invalid => println!("  signature: INVALID"),
    }
    if let Some(analysis) = &report.analysis {
        for used in &analysis.capabilities {
            let first = used.evidence.first().map(|e| format!("{} in {}", e.symbol, e.file)).unwrap_or_default();
            match &used.permission {
                Some(permission) => println!("  uses {} ({first}), allowed by {permission}", used.capability),
                None => println!("  uses {} ({first})", used.capability),
            }
        }
        for scanner in &analysis.scanners {
            println!("  scanner {}: {:?}", scanner.scanner, scanner.verdict);
        }
        if let Some(run) = &analysis.sandbox {
            println!(
                "  sandbox: {:?} after {} ms, cpu {} ms, peak memory {} KiB, {} process(es)",
                run.exit,
                run.wall_ms,
                run.cpu_ms,
                run.peak_memory_bytes / 1024,
                run.processes
            );
        }
    }
    let errors = report.problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = report.problems.len() - errors;
    println!("{}: {errors} error(s), {warnings} warning(s)", if report.is_clean() { "ok" } else { "refused" });
}
