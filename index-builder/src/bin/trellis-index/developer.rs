//! Developer subcommands: keygen, pack, sign, lint.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use trellis_index::keyfile;

/// Commands a plugin developer runs.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create an Ed25519 signing key (file mode 0600) and print its public key and key id.
    Keygen {
        /// Where to write the private key file; never overwritten.
        #[arg(long)]
        out: PathBuf,
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
    }
}
