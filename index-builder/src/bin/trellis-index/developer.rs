//! Developer subcommands: keygen, pack, sign, lint.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_index::{keyfile, lint, pack, sign};
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
    },
    /// Check a source tree or a package the way the store will; exit 0 when clean, 1 on problems.
    Lint {
        /// A plugin source tree or a package (.zip).
        path: PathBuf,
        /// Check the package's signature against this publisher record (JSON).
        #[arg(long)]
        publisher: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
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
        Command::Sign { package, key } => {
            let key = keyfile::read(&key)?;
            let signed = sign::sign_package(&package, &key)?;
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
        Command::Lint { path, publisher, json } => {
            let publisher = match publisher {
                Some(file) => Some(
                    serde_json::from_slice(
                        &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
                    )
                    .with_context(|| format!("{} is not a publisher record", file.display()))?,
                ),
                None => None,
            };
            let report = lint::lint(&path, &lint::LintOptions { publisher })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_lint(&report);
            }
            Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
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
    let errors = report.problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = report.problems.len() - errors;
    println!("{}: {errors} error(s), {warnings} warning(s)", if report.is_clean() { "ok" } else { "refused" });
}
