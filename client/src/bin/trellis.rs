//! `trellis`: the command-line store client.

use clap::Parser;

/// Find, install, update, roll back and remove plugins from Trellis registries.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
