//! `trellis-index`: pack, sign and lint plugins; build, verify and serve registries.
//!
//! A thin layer over the `trellis_index` library: it parses arguments, sets up output
//! and calls one library function per subcommand. Developer commands live in
//! `developer.rs`; registry operator commands go in `operator.rs`.

mod developer;
mod license;
mod log;
mod mirror;
mod operator;
mod reviews;
mod stats;
mod status;
mod submission;

use std::process::ExitCode;

/// jemalloc for the builder: a large build's peak memory is 16% lower than with
/// glibc's malloc, whose `free`/consolidation also showed in its profiles
/// (`cargo bench -p trellis-index --bench registry_build` compares allocators side by
/// side in fresh processes). The library leaves the choice to its binaries.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    quiet_on_closed_stdout();
    log::init();
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

/// `trellis-index status SITE | head -1`: when the reader of stdout goes away, end
/// quietly with exit 0, as `cat` or ripgrep do, instead of a panic message and exit 101.
/// Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe` and
/// `println!` panics with "failed printing to stdout"; this hook turns exactly that
/// panic into a quiet exit and leaves every other panic to the default hook.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
