//! Developer subcommands: keygen, pack, sign, lint.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use trellis_index::{keyfile, pack};

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
    }
}
