//! `trellis-index mirror SOURCE DEST [--only ID…] [--with-dependencies]`: copy a site,
//! whole or partially, then audit the copy as a client would.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use trellis_index::mirror::{self, MirrorOptions};
use trellis_index::verify;
use trellis_schema::PluginId;

/// Arguments of `mirror`.
#[derive(clap::Args)]
pub(crate) struct MirrorArgs {
    /// The site to copy: a directory or an http(s) URL.
    source: String,
    /// The directory to copy it into (created; an earlier copy is brought up to date).
    dest: PathBuf,
    /// Copy the blobs (packages, envelopes, deltas) of these plugins only; all
    /// metadata is always copied. Repeat or separate with commas.
    #[arg(long, value_name = "ID", value_delimiter = ',', num_args = 1..)]
    only: Vec<PluginId>,
    /// With --only: also the plugins their releases depend on, transitively.
    #[arg(long, requires = "only")]
    with_dependencies: bool,
    /// For a URL source: the longest wait to connect or for the next bytes, in seconds;
    /// a transfer slower than 1 KiB per this many seconds (after as long a start) fails
    /// too, naming the URL. Transient failures are retried twice.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

pub(crate) fn run(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    let wait = std::time::Duration::from_secs(args.timeout);
    let http = trellis_client::transport::HttpOptions {
        connect_timeout: wait,
        read_timeout: wait,
        metadata_deadline: None,
        min_rate: Some(trellis_client::transport::MinRate { bytes: 1024, window: wait, grace: wait }),
        ..trellis_client::transport::HttpOptions::default()
    };
    let source = verify::Source::parse_with(&args.source, http);
    let only: Option<BTreeSet<PluginId>> = (!args.only.is_empty()).then(|| args.only.into_iter().collect());
    let options = MirrorOptions { only, with_dependencies: args.with_dependencies };
    let report = match mirror::mirror(&source, &args.dest, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "copied {} metadata file(s), {} target(s) and {} blob(s) ({} bytes) of {} plugin(s) into {} ({} file(s) written)",
        report.metadata_files,
        report.targets,
        report.blobs,
        report.blob_bytes,
        report.plugins.len(),
        args.dest.display(),
        report.written
    );
    if options.only.is_some() {
        let names: Vec<String> = report.plugins.iter().map(ToString::to_string).collect();
        println!("partial mirror: blobs of {} only ({} other plugin(s) left out)", names.join(", "), report.left_out);
    }
    let check = verify::verify(&verify::Source::Dir(args.dest.clone()), None, jiff::Timestamp::now());
    for warning in &check.warnings {
        eprintln!("warning: {warning}");
    }
    if !check.problems.is_empty() {
        for problem in &check.problems {
            eprintln!("problem: {problem}");
        }
        eprintln!("error: the copy does not verify ({} problem(s))", check.problems.len());
        return Ok(ExitCode::from(1));
    }
    println!(
        "verified: {} role file(s), {} release signature(s); point a client at {}",
        check.roles,
        check.releases,
        mirror::file_url(&args.dest)?
    );
    Ok(ExitCode::SUCCESS)
}
