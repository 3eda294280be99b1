//! `trellis`: the command-line store client, a thin layer over `trellis_client::store`.
//!
//! Parses arguments (flags, then `TRELLIS_*` environment variables, then the config
//! file: [`config`]), opens the store (which settles an interrupted operation), calls
//! one library function per subcommand and prints the result as text or as one
//! `--json` document ([`output`]). Exit codes ([`EXIT_CODES`]): 0 success, 1 the
//! operation failed (nothing was left half done), 2 usage or configuration error (bad
//! arguments, no registry, unreadable root or config file), 100 updates are available
//! (`update --check --exit-code` only).

#[macro_use]
mod output;
mod admin;
mod audit;
mod config;
mod discover;
mod generate;
mod license;
mod log;
mod mirror;
mod plugins;
mod registry;
mod settings;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trellis_client::resolve::HostApp;
use trellis_client::store::{Store, StoreError, StoreOptions};

use crate::output::{ColorChoice, Output, Verbosity};

/// The exit codes, as `--help` and the README list them.
pub(crate) const EXIT_CODES: &str = "Exit codes: 0 success; 1 the operation failed (nothing was left half done); \
2 usage or configuration error; 100 updates are available (`update --check --exit-code`).";

/// The `update --check --exit-code` code when there are updates (as `dnf check-update`).
pub(crate) const EXIT_UPDATES_AVAILABLE: u8 = 100;

/// Find, install, update, roll back and remove plugins from Trellis registries.
#[derive(Parser)]
#[command(name = "trellis", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Where the client keeps its state, trusted metadata, cache and plugins
    /// [default: the config file's data_dir, else the platform's local data dir +
    /// `trellis`: ~/.local/share/trellis, %LOCALAPPDATA%\trellis].
    #[arg(long, global = true, value_name = "DIR", env = "TRELLIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The config file [default: ~/.config/trellis/config.toml, %APPDATA%\trellis\config.toml].
    #[arg(long, global = true, value_name = "FILE", env = "TRELLIS_CONFIG")]
    config: Option<PathBuf>,
    /// Print one JSON document on stdout (progress events as JSON lines on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Agree to the permissions plugins ask for without asking (scripts).
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    /// Print no progress and no notes (warnings and errors still go to stderr).
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also show retries, failing mirrors, waits for another trellis process and other
    /// details on stderr.
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    /// Use no network: registries' persisted metadata (while unexpired) and cached
    /// downloads only. Without it, an unreachable registry is used the same way.
    #[arg(long, global = true, env = "TRELLIS_OFFLINE")]
    offline: bool,
    /// When to colour stderr [default: auto: on a terminal, unless NO_COLOR is set].
    #[arg(long, global = true, value_name = "WHEN", env = "TRELLIS_COLOR")]
    color: Option<ColorChoice>,
    /// The host app plugins are installed for [default: trellis-demo-host].
    #[arg(long, global = true, value_name = "ID", env = "TRELLIS_HOST_ID")]
    host_id: Option<String>,
    /// The plugin API version of the host app [default: 1.0.0].
    #[arg(long, global = true, value_name = "VERSION", env = "TRELLIS_HOST_API")]
    host_api: Option<semver::Version>,
    /// Test hook of the crash-safety test: abort at the Nth step of the operation.
    #[arg(long, global = true, hide = true, value_name = "N")]
    crash_at: Option<u64>,
    /// Test hook: judge licenses, trials and metadata expiry at this time (RFC 3339).
    #[arg(long, global = true, hide = true, value_name = "TIME")]
    now: Option<jiff::Timestamp>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the registries plugins come from.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Search the registries' catalogs (ids, names, tags, categories, descriptions, publishers).
    Search(discover::SearchArgs),
    /// List featured, new and updated plugins and the categories, or one category or tag.
    Browse(discover::BrowseArgs),
    /// Show a plugin's releases, permissions, security levels (with their reasons) and install state.
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
    /// List installed plugins that the registries' security advisories name (exit code 1 when there are any).
    ///
    /// Advisories are OSV documents the registry publishes signed, about a plugin or a
    /// component it bundles (from the plugin's SBOM); each finding says what to update to.
    Audit(audit::AuditArgs),
    /// Set a damaged state file aside and rebuild it from the plugins directory.
    Repair,
    /// Add, list and remove license tokens of paid plugins; show trials.
    #[command(subcommand)]
    License(license::LicenseCommand),
    /// Print the completion script for a shell (`trellis completions bash`).
    Completions(generate::CompletionsArgs),
    /// Print the trellis(1) man page (`trellis man > trellis.1`).
    Man,
}

impl Command {
    /// The command's name in the `--json` envelope.
    fn name(&self) -> &'static str {
        match self {
            Self::Registry(command) => command.name(),
            Self::Search(_) => "search",
            Self::Browse(_) => "browse",
            Self::Info(_) => "info",
            Self::Install(_) => "install",
            Self::Update(_) => "update",
            Self::Remove(_) => "remove",
            Self::Rollback(_) => "rollback",
            Self::List => "list",
            Self::Pin(_) => "pin",
            Self::Unpin(_) => "unpin",
            Self::Policy(_) => "policy",
            Self::Verify(_) => "verify",
            Self::Audit(_) => "audit",
            Self::Repair => "repair",
            Self::Completions(_) => "completions",
            Self::Man => "man",
            Self::License(_) => "license",
        }
    }
}

/// A failure and the exit code it maps to.
pub(crate) enum Failure {
    /// Exit code 2.
    Usage(String),
    /// Exit code 1.
    Failed(String),
    /// Exit code 1, after the result was printed (with `--json`, the result and the
    /// error are in the one document).
    FailedAfterResult(String),
    /// A result that is not an error but a documented exit code (100: updates available).
    Code(u8),
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
            | StoreError::RelativeFileUrl { .. }
            | StoreError::SameRegistry { .. }
            | StoreError::BadMirrorUrl { .. }
            | StoreError::MirrorExists { .. }
            | StoreError::UnknownMirror { .. }
            | StoreError::BadRoot { .. }
            | StoreError::NoRegistry
            | StoreError::RegistryInUse { .. }
            | StoreError::NoLicense { .. } => Self::Usage(message),
            _ => Self::Failed(message),
        }
    }
}

pub(crate) type CliResult = Result<(), Failure>;

/// What every command gets.
pub(crate) struct Context {
    pub(crate) out: Output,
    /// The consent prompt (without --yes and --json).
    pub(crate) prompt: output::Prompt,
    pub(crate) yes: bool,
    data_dir: Result<PathBuf, String>,
    pub(crate) options: StoreOptions,
}

impl Context {
    /// The data dir, or why there is none.
    pub(crate) fn data_dir(&self) -> Result<&Path, Failure> {
        self.data_dir.as_deref().map_err(|message| Failure::Usage(message.clone()))
    }

    /// Opens the store, saying so when another trellis process holds the data dir.
    pub(crate) fn open(&self) -> Result<Store, Failure> {
        let dir = self.data_dir()?;
        let mut store = match Store::try_open(dir, self.options.clone()) {
            Ok(store) => store,
            Err(StoreError::State(trellis_client::state::StateError::Busy { path })) => {
                self.out.note(&format!(
                    "waiting for another trellis process to finish with {} (lock {})",
                    dir.display(),
                    path.display()
                ));
                let store = Store::open(dir, self.options.clone())?;
                self.out.verbose("the other process finished; going on");
                store
            }
            Err(error) => return Err(error.into()),
        };
        if !store.recovery().is_empty() {
            let reporter = output::reporter(&self.out);
            let hooks = trellis_client::hooks::NoHooks;
            let consent = trellis_client::store::NeverAgree;
            let session = trellis_client::store::Session::new(&hooks, &consent).with_reporter(reporter);
            store.finish_recovery(&session)?;
        }
        Ok(store)
    }
}

impl Context {
    /// Says which registries the command used without reaching them, and how old
    /// their metadata is (a note when offline was asked for, a warning otherwise); with
    /// --json it goes into the document's result as `offline`.
    pub(crate) fn offline_notes(&self, store: &Store) {
        let uses = store.offline_uses();
        if uses.is_empty() {
            return;
        }
        self.out.offline(&uses);
        if self.out.json {
            return;
        }
        let now = jiff::Timestamp::now();
        for used in uses {
            let age = match used.last_checked {
                Some(checked) => format!("checked online {} ago", output::age(now.duration_since(checked))),
                None => "never checked online by this client version".into(),
            };
            let until = used.expires.map(|t| format!(", usable offline until {t}")).unwrap_or_default();
            match used.unreachable {
                None => {
                    self.out.note(&format!("offline: registry `{}` as last verified ({age}{until})", used.registry))
                }
                Some(why) => self.out.warn(&format!(
                    "registry `{}` cannot be reached ({why}); used its metadata as last verified ({age}{until})",
                    used.registry
                )),
            }
        }
    }
}

/// Whether the raw arguments ask for JSON (for clap's own errors, before parsing).
fn wants_json() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() && wants_json() => {
            let out = Output::new(true, Verbosity::Normal, false);
            out.finish("", Some((error.to_string().trim_end(), 2)));
            return ExitCode::from(2);
        }
        Err(error) => error.exit(),
    };
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, true) => Verbosity::Verbose,
        (false, false) => Verbosity::Normal,
    };
    let name = cli.command.name();
    let file = match config::load(cli.config.as_deref()) {
        Ok(file) => file,
        Err(failure) => {
            let color = cli.color.unwrap_or_default().stderr();
            return finish(&Output::new(cli.json, verbosity, color), name, Err(failure));
        }
    };
    let color = cli.color.or(file.color).unwrap_or_default().stderr();
    log::install(cli.json, verbosity, color);
    let out = Output::new(cli.json, verbosity, color);
    let host = HostApp {
        id: cli.host_id.or(file.host_id).unwrap_or_else(|| "trellis-demo-host".into()),
        api_version: cli.host_api.or(file.host_api).unwrap_or(semver::Version::new(1, 0, 0)),
    };
    let mut options = StoreOptions::new(host);
    options.crash_at = cli.crash_at;
    options.reference_time = cli.now;
    if cli.offline {
        options.network = trellis_client::store::Network::Offline;
    }
    let data_dir = match cli.data_dir.or(file.data_dir) {
        Some(dir) => Ok(dir),
        None => config::default_data_dir(),
    };
    options.admin_policy = match admin::load() {
        Ok(policy) => policy,
        Err(error) => return finish(&out, name, Err(Failure::Usage(error.to_string()))),
    };
    let ctx = Context { out, prompt: output::Prompt::default(), yes: cli.yes, data_dir, options };
    let result = match cli.command {
        Command::Registry(command) => registry::run(&ctx, command),
        Command::Search(args) => discover::search(&ctx, args),
        Command::Browse(args) => discover::browse(&ctx, args),
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
        Command::Audit(args) => audit::audit(&ctx, args),
        Command::Repair => settings::repair(&ctx),
        Command::License(command) => license::run(&ctx, command),
        Command::Completions(args) => generate::completions(&ctx, args),
        Command::Man => generate::man(&ctx),
    };
    finish(&ctx.out, name, result)
}

/// Prints the JSON document (`--json`) or the error line, and gives the exit code.
fn finish(out: &Output, command: &str, result: CliResult) -> ExitCode {
    let (error, code) = match &result {
        Ok(()) => (None, 0),
        Err(Failure::Code(code)) => (None, *code),
        Err(Failure::Usage(message)) => (Some(message.as_str()), 2),
        Err(Failure::Failed(message) | Failure::FailedAfterResult(message)) => (Some(message.as_str()), 1),
    };
    if out.json {
        if command != "completions" && command != "man" {
            out.finish(command, error.map(|message| (message, code)));
        }
    } else if let Some(message) = error {
        out.failure(message);
    }
    ExitCode::from(code)
}
