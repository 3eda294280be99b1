//! The client-under-test of the TUF conformance suite
//! (`shared/tuf-conformance/CLIENT-CLI.md`): `init`, `refresh`, `download` over
//! `trellis_client::trust`, with the strict spec refresh.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use trellis_client::transport::{AnyTransport, HttpOptions, Mirror, Mirrors};
use trellis_client::trust::store::quote;
use trellis_client::trust::{KeyIds, Limits, Updater};

#[derive(Parser)]
#[command(about = "TUF conformance client for trellis-client")]
struct Cli {
    /// Directory of trusted metadata.
    #[arg(long, global = true)]
    metadata_dir: Option<PathBuf>,
    /// Base URL of the repository's metadata.
    #[arg(long, global = true)]
    metadata_url: Option<String>,
    /// Target paths to download, in order.
    #[arg(long = "target-name", global = true)]
    target_names: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long, global = true)]
    target_base_url: Option<String>,
    /// Directory for downloaded targets.
    #[arg(long, global = true)]
    target_dir: Option<PathBuf>,
    /// More output.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust the given root.
    Init {
        /// The initial trusted root.json.
        trusted_root: PathBuf,
    },
    /// Update top-level metadata.
    Refresh,
    /// Download targets.
    Download,
}

fn updater(cli: &Cli, metadata_dir: &std::path::Path) -> anyhow::Result<Updater> {
    let metadata_url = cli.metadata_url.as_deref().context("--metadata-url is required")?;
    let targets_url = cli.target_base_url.as_deref().unwrap_or(metadata_url);
    let transport = Arc::new(AnyTransport::new(HttpOptions::default()));
    let mirrors = Mirrors::new(transport, vec![Mirror::new(metadata_url, targets_url)]);
    // The suite includes real repositories whose key ids are not the SHA-256 of their
    // keys; TUF clients take ids as listed (thresholds still count key material).
    let limits = Limits { key_ids: KeyIds::AsListed, ..Limits::default() };
    Ok(Updater::new_with_limits(metadata_dir, mirrors, limits)?)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let metadata_dir = cli.metadata_dir.as_deref().context("--metadata-dir is required")?;
    match &cli.command {
        Command::Init { trusted_root } => {
            let bytes = std::fs::read(trusted_root).with_context(|| format!("reading {}", trusted_root.display()))?;
            Updater::bootstrap(metadata_dir, &bytes)?;
        }
        Command::Refresh => updater(cli, metadata_dir)?.refresh()?,
        Command::Download => {
            let target_dir = cli.target_dir.as_deref().context("--target-dir is required")?;
            let mut updater = updater(cli, metadata_dir)?;
            for name in &cli.target_names {
                let Some(info) = updater.target_info(name)? else { bail!("{name}: no such target in the repository") };
                updater.download_target(&info, &target_dir.join(quote(name)))?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}
