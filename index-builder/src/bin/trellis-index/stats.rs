//! `trellis-index stats …`: download statistics from access logs and client telemetry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use trellis_index::stats;

/// `trellis-index stats …`.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Count package and delta downloads per plugin, version and day, and update
    /// checks (timestamp fetches) per day, from access logs of the site's host:
    /// combined log format (nginx, Apache), CloudFront standard logs or Cloudflare
    /// Logpush JSON lines, detected per log; also the client's opt-in telemetry
    /// JSON-lines files (event schema 1: install, update, remove and rollback
    /// outcomes per plugin and day). Adds them to `stats/downloads.json` of
    /// the registry; a log already ingested (same bytes, listed in
    /// `stats/ingested.json`) is skipped. Malformed lines are reported on stderr and
    /// skipped.
    Ingest {
        /// Access logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// The registry source tree.
        #[arg(long, default_value = ".")]
        registry: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ingest { logs, registry, json } => {
            let reports = stats::ingest(&registry, &logs)?;
            for report in &reports {
                for bad in report.malformed.iter().take(20) {
                    eprintln!("warning: {}:{}: skipped: {}", report.path.display(), bad.line, bad.reason);
                }
                if report.malformed.len() > 20 {
                    eprintln!(
                        "warning: {}: {} more malformed lines",
                        report.path.display(),
                        report.malformed.len() - 20
                    );
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for report in &reports {
                    if report.already_ingested {
                        println!("{}: already ingested, skipped", report.path.display());
                    } else {
                        println!(
                            "{}: {} requests read ({:?}), {} lines skipped",
                            report.path.display(),
                            report.requests,
                            report.format,
                            report.malformed.len()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
