//! Vendor subcommands: `license keygen | issue` (see `trellis_index::license`).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_index::keyfile;
use trellis_index::license::{LicenseRequest, issue};

/// `trellis-index license …`.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a license key (mode 0600) and `<out>.pub`, to list in your publisher
    /// record with `publisher update --add-license-key`. It signs tokens only.
    Keygen {
        /// Where to write the private key file; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a license token and print it on stdout (one line).
    ///
    /// With `--webhook -` reads a payment processor's checkout-completed event (JSON,
    /// Stripe's `checkout.session.completed` shape) on stdin; flags override it.
    Issue {
        /// The license key file (from `license keygen`).
        #[arg(long)]
        key: PathBuf,
        /// A checkout-completed webhook event: a file, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        webhook: Option<PathBuf>,
        /// The plugin sold (`vendor.name`).
        #[arg(long)]
        plugin: Option<String>,
        /// The buyer (name and/or e-mail).
        #[arg(long)]
        licensee: Option<String>,
        /// Seats bought [default: 1].
        #[arg(long)]
        seats: Option<u32>,
        /// Days until it expires [default: never].
        #[arg(long)]
        days: Option<u32>,
        /// A feature it unlocks (repeat for several).
        #[arg(long = "feature")]
        features: Vec<String>,
        /// The payment reference [default: the checkout session id].
        #[arg(long)]
        order: Option<String>,
    },
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen { out } => {
            let key = keyfile::generate(&out)?;
            let mut public = out.clone().into_os_string();
            public.push(".pub");
            let public = PathBuf::from(public);
            let mut text = serde_json::to_vec_pretty(key.public())?;
            text.push(b'\n');
            trellis_client::fs::write_atomic(&public, &text)?;
            println!("wrote license key to {} and its public key to {}", out.display(), public.display());
            println!("key id: {}", key.key_id());
            println!("list it in your publisher record (signed by your release key), then submit the record:");
            println!(
                "  trellis-index publisher update publishers/<vendor>.json --key <release key> --add-license-key {}",
                public.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Issue { key, webhook, plugin, licensee, seats, days, features, order } => {
            let key = keyfile::read(&key)?;
            let from_event = match webhook {
                None => LicenseRequest::default(),
                Some(path) => {
                    let mut bytes = Vec::new();
                    if path.as_os_str() == "-" {
                        std::io::stdin().read_to_end(&mut bytes).context("reading the webhook event from stdin")?;
                    } else {
                        bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    }
                    LicenseRequest::from_checkout_event(&bytes)?
                }
            };
            let flags = LicenseRequest { plugin, licensee, seats, days, features, order };
            let token = issue(from_event.overridden_by(flags), &key, jiff::Timestamp::now())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
