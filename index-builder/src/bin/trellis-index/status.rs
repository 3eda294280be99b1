//! `trellis-index status`: every role's version and expiry, and what must be re-signed
//! offline by when; the expiry warnings `build` and `verify` print.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use trellis_index::registry::{CONFIG_FILE, Expiry, Registry};
use trellis_index::status::{self, Signer, Status};
use trellis_index::verify::Source;

/// `trellis-index status REGISTRY|SITE_DIR|URL`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// A registry source tree (its site: `--site`, else its `base_url`), a site
    /// directory or a site URL.
    target: String,
    /// The registry's site (directory or URL), when TARGET is a registry source tree.
    #[arg(long)]
    site: Option<String>,
    /// Print the status as one JSON document.
    #[arg(long)]
    json: bool,
    /// Current time (RFC 3339); defaults to the clock.
    #[arg(long)]
    now: Option<jiff::Timestamp>,
}

/// Prints the status; exit 1 when a role needs attention (a warning), 0 otherwise.
pub(crate) fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let now = args.now.unwrap_or_else(jiff::Timestamp::now);
    let (source, expiry) = if Path::new(&args.target).join(CONFIG_FILE).is_file() {
        let registry = Registry::open(Path::new(&args.target))?;
        let site = match args.site {
            Some(site) => site,
            None => registry.config.base_url.clone(),
        };
        (Source::parse(&site), registry.config.expiry_days.clone())
    } else {
        (Source::parse(&args.target), Expiry::default())
    };
    let status = status::site_status(&source, &expiry, now)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status);
    }
    Ok(if status.roles.iter().any(|r| r.warning) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_status(status: &Status) {
    println!(
        "{:<10} {:>5} {:>7}  {:<20}  {:<20}  {:>9}  signer",
        "role", "count", "version", "expires", "re-sign by", "days left"
    );
    for role in &status.roles {
        let signer = match role.signer {
            Signer::Offline => "OFFLINE",
            Signer::Online => "online (CI)",
        };
        println!(
            "{:<10} {:>5} {:>7}  {:<20}  {:<20}  {:>9}  {signer}",
            role.role, role.count, role.version, role.expires, role.due, role.days_left
        );
    }
    let offline: Vec<_> = status.roles.iter().filter(|r| r.signer == Signer::Offline).collect();
    for role in offline {
        println!("{}: by {}, {}", role.role, role.due, role.action);
    }
    print_warnings(status);
}

/// Prints the expiry warnings of `status` on stderr.
pub(crate) fn print_warnings(status: &Status) {
    for warning in status.warnings() {
        eprintln!("warning: {warning}");
    }
}

/// The expiry warnings of the site in `site` (a directory just built or checked);
/// a site whose status cannot be read prints nothing (verify reports why).
pub(crate) fn warn_site(site: &Source, registry: Option<&Registry>, now: jiff::Timestamp) {
    let expiry = registry.map(|r| r.config.expiry_days.clone()).unwrap_or_default();
    if let Ok(status) = status::site_status(site, &expiry, now) {
        print_warnings(&status);
    }
}

/// `site` as a verify source.
pub(crate) fn dir_source(site: &Path) -> Source {
    Source::Dir(PathBuf::from(site))
}
