//! `trellis-index`: pack, sign and lint plugins; build, verify and serve registries.
//!
//! A thin layer over the `trellis_index` library: it parses arguments, sets up output
//! and calls one library function per subcommand. Developer commands live in
//! `developer.rs`; registry operator commands go in `operator.rs`.

mod developer;
mod license;
mod mirror;
mod operator;
mod reviews;
mod stats;
mod status;
mod submission;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Trellis registry tools: for plugin developers (keygen, pack, sign, lint) and for
/// registry operators (init, build, verify, serve, timestamp, yank, block, rotate).
#[derive(Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Developer(developer::Command),
    #[command(flatten)]
    Operator(operator::Command),
    /// Every role's version and expiry, and what must be re-signed offline by when
    /// (exit 1 when something needs attention: overdue or due within 30 days).
    Status(status::StatusArgs),
    #[command(flatten)]
    Submission(submission::Command),
    /// License tokens for paid plugins: keygen, issue (from a checkout webhook event).
    #[command(subcommand)]
    License(license::Command),
    /// Copy a site into a directory: all metadata, and the blobs of every plugin or
    /// (with --only) of chosen plugins: a mirror for a CDN, a USB stick or an
    /// air-gapped share. The copy is verified as a client would.
    Mirror(mirror::MirrorArgs),
    /// Reviews in the registry source (`reviews/<plugin id>/<GitHub login>.json`).
    #[command(subcommand)]
    Reviews(reviews::Command),
    /// Download statistics (`stats/` of the registry source) from access logs.
    #[command(subcommand)]
    Stats(stats::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Developer(command) => developer::run(command),
        Command::Operator(command) => operator::run(command),
        Command::Status(args) => status::run(args),
        Command::License(command) => license::run(command),
        Command::Submission(command) => submission::run(command),
        Command::Mirror(args) => mirror::run(args),
        Command::Reviews(command) => reviews::run(command),
        Command::Stats(command) => stats::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
