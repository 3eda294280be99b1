//! `trellis-index`: pack, sign and lint plugins; build and verify registries.

use clap::Parser;

/// Trellis registry tools.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
