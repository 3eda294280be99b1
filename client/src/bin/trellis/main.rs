//! `trellis`: the command-line store client, a thin layer over `trellis_client::store`.
//!
//! Parses arguments, opens the store (which settles an interrupted operation), calls
//! one library function per subcommand and prints the result as text or `--json`.
//! Exit codes: 0 success, 1 the operation failed (nothing was left half done), 2 usage
//! or configuration error (bad arguments, no registry, unreadable root file).

mod admin;
mod mirror;
mod output;
mod plugins;
mod registry;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trellis_client::resolve::HostApp;
use trellis_client::store::{Store, StoreError, StoreOptions};

/// Find, install, update, roll back and remove plugins from Trellis registries.
#[derive(Parser)]
#[command(version, about, after_help = "Exit codes: 0 success, 1 operation failed, 2 usage or configuration error.")]
struct Cli {
    /// Where the client keeps its state, trusted metadata, cache and plugins
    /// [default: $TRELLIS_DATA_DIR, else ~/.local/share/trellis].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print results as JSON (progress events as JSON lines on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Agree to the permissions plugins ask for without asking (scripts).
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    /// The host app plugins are installed for.
    #[arg(long, global = true, default_value = "trellis-demo-host", value_name = "ID")]
    host_id: String,
    /// The plugin API version of the host app.
    #[arg(long, global = true, default_value = "1.0.0", value_name = "VERSION")]
    host_api: semver::Version,
    /// Test hook of the crash-safety test: abort at the Nth step of the operation.
    #[arg(long, global = true, hide = true, value_name = "N")]
    crash_at: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the registries plugins come from.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Find plugins whose id or name contains TEXT.
    Search(plugins::SearchArgs),
    /// Show a plugin's releases, permissions and install state.
    Info(plugins::InfoArgs),
    /// Install plugins (`ID` or `ID@REQUIREMENT`) with their dependencies.
    Install(plugins::InstallArgs),
    /// Update installed plugins (all when none is named), or only check with --check.
    ///
    /// Pins always hold. A release the registry is rolling out in stages reaches this
    /// install when its share does; `trellis update ID` takes it at once.
    Update(plugins::UpdateArgs),
    /// Remove a plugin, its files and its configuration.
    Remove(plugins::RemoveArgs),
    /// Reactivate the release that was active before the last update.
    Rollback(plugins::RollbackArgs),
    /// List installed plugins.
    List,
    /// Hold a plugin at a release (the active one unless `ID@VERSION`).
    Pin(settings::PinArgs),
    /// Let a pinned plugin update again.
    Unpin(settings::UnpinArgs),
    /// Show or change update policies.
    Policy(settings::PolicyArgs),
    /// Re-check the publishers' signatures on installed plugins and re-hash their files against the signed manifests.
    Verify(plugins::VerifyArgs),
    /// Set a damaged state file aside and rebuild it from the plugins directory.
    Repair,
}

/// A failure and the exit code it maps to.
pub(crate) enum Failure {
    /// Exit code 2.
    Usage(String),
    /// Exit code 1.
    Failed(String),
    /// Exit code 1, after the result was printed (with `--json`, stdout already holds
    /// its one document, so the message goes to stderr only).
    FailedAfterResult(String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::Config { .. }
            | StoreError::RegistryExists { .. }
            | StoreError::UnknownRegistry { .. }
            | StoreError::BadRegistryName { .. }
            | StoreError::BadRegistryUrl { .. }
            | StoreError::BadMirrorUrl { .. }
            | StoreError::MirrorExists { .. }
            | StoreError::UnknownMirror { .. }
            | StoreError::BadRoot { .. }
            | StoreError::NoRegistry
            | StoreError::RegistryInUse { .. } => Self::Usage(message),
            _ => Self::Failed(message),
        }
    }
}

pub(crate) type CliResult = Result<(), Failure>;

/// What every command gets.
pub(crate) struct Context {
    pub(crate) json: bool,
    pub(crate) yes: bool,
    pub(crate) data_dir: PathBuf,
    pub(crate) options: StoreOptions,
}

impl Context {
    pub(crate) fn open(&self) -> Result<Store, Failure> {
        let mut store = Store::open(&self.data_dir, self.options.clone())?;
        if store.recovery().is_some() {
            let reporter = output::reporter(self.json);
            let hooks = trellis_client::hooks::NoHooks;
            let consent = trellis_client::store::NeverAgree;
            let session = trellis_client::store::Session::new(&hooks, &consent).with_reporter(reporter);
            store.finish_recovery(&session)?;
        }
        Ok(store)
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRELLIS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(dir) => PathBuf::from(dir).join("trellis"),
        None => match std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")) {
            Some(home) => PathBuf::from(home).join(".local/share/trellis"),
            None => PathBuf::from(".trellis"),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut options = StoreOptions::new(HostApp { id: cli.host_id.clone(), api_version: cli.host_api.clone() });
    options.crash_at = cli.crash_at;
    options.admin_policy = match admin::load() {
        Ok(policy) => policy,
        Err(error) => {
            output::error(cli.json, &error.to_string(), 2);
            return ExitCode::from(2);
        }
    };
    let ctx =
        Context { json: cli.json, yes: cli.yes, data_dir: cli.data_dir.unwrap_or_else(default_data_dir), options };
    let result = match cli.command {
        Command::Registry(command) => registry::run(&ctx, command),
        Command::Search(args) => plugins::search(&ctx, args),
        Command::Info(args) => plugins::info(&ctx, args),
        Command::Install(args) => plugins::install(&ctx, args),
        Command::Update(args) => plugins::update(&ctx, args),
        Command::Remove(args) => plugins::remove(&ctx, args),
        Command::Rollback(args) => plugins::rollback(&ctx, args),
        Command::List => plugins::list(&ctx),
        Command::Pin(args) => settings::pin(&ctx, args),
        Command::Unpin(args) => settings::unpin(&ctx, args),
        Command::Policy(args) => settings::policy(&ctx, args),
        Command::Verify(args) => plugins::verify(&ctx, args),
        Command::Repair => settings::repair(&ctx),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            output::error(ctx.json, &message, 2);
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            output::error(ctx.json, &message, 1);
            ExitCode::from(1)
        }
        Err(Failure::FailedAfterResult(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
