//! Developer subcommands for starting and submitting a plugin: `new`, `submit`
//! (see `trellis_index::project` and `trellis_index::submit`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_index::{project, submit};

/// `trellis-index new | submit`.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a plugin project: plugin.json (valid for lint), LICENSE, bin/, docs/, a
    /// README with the commands of a release, and a CI workflow that lints and packs.
    New {
        /// The plugin id (`vendor.name`).
        id: String,
        /// Where to create it [default: ./ID]; must not exist.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Display name [default: the id's name part].
        #[arg(long)]
        name: Option<String>,
        /// The host app the plugin is for.
        #[arg(long, default_value = "trellis-demo-host", value_name = "ID")]
        host_id: String,
        /// The requirement on the host's plugin API version.
        #[arg(long, default_value = "^1", value_name = "REQUIREMENT")]
        host_api: String,
    },
    /// Prepare a registry pull request from a signed package: check it against your
    /// publisher record, copy the package, its signature and (first submission, or a
    /// changed record) the record into a checkout of the registry, and print the git
    /// and `gh` commands (`--run` runs them).
    Submit {
        /// The signed package (its `<package>.dsse` beside it).
        package: PathBuf,
        /// A checkout of the registry repository.
        #[arg(long, value_name = "DIR")]
        registry: PathBuf,
        /// Your publisher record chain (`publishers/<vendor>.json`); required on your
        /// first submission, and when you changed it.
        #[arg(long, value_name = "FILE")]
        publisher: Option<PathBuf>,
        /// Run the commands: branch, commit, push; then `gh pr create` when `gh` is installed.
        #[arg(long)]
        run: bool,
    },
}

/// A command as a shell line (arguments quoted where needed).
fn shell_line(dir: &std::path::Path, command: &submit::SubmitCommand) -> String {
    let quote = |arg: &str| {
        if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@+,".contains(&b)) {
            arg.to_owned()
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    let args: Vec<String> = command.args.iter().map(|a| quote(a)).collect();
    let dir = quote(&dir.display().to_string());
    match command.program {
        "git" => format!("git -C {dir} {}", args.join(" ")),
        program => format!("(cd {dir} && {program} {})", args.join(" ")),
    }
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::New { id, dir, name, host_id, host_api } => {
            let id: trellis_schema::PluginId =
                id.parse().map_err(|e| anyhow::anyhow!("`{id}` is not a plugin id: {e}"))?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(id.as_str()));
            let year = jiff::Timestamp::now().strftime("%Y").to_string().parse().unwrap_or(1970);
            let files = project::create(&dir, &project::NewProject { id: id.clone(), name, host_id, host_api, year })?;
            println!("created plugin project {id} in {}:", dir.display());
            for file in files {
                println!("  {}", file.display());
            }
            println!("next: trellis-index lint {}", dir.join(project::PLUGIN_DIR).display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit { package, registry, publisher, run } => {
            let submission = submit::prepare(&package, &registry, publisher.as_deref())?;
            println!(
                "prepared {} {} in {}{}:",
                submission.plugin,
                submission.version,
                registry.display(),
                if submission.first_submission {
                    " (first submission: the registry's maintainers review it)"
                } else {
                    ""
                }
            );
            for file in &submission.files {
                println!("  {}", file.display());
            }
            let commands = submission.commands();
            if !run {
                println!("open the pull request with:");
                for command in &commands {
                    println!("  {}", shell_line(&registry, command));
                }
                return Ok(ExitCode::SUCCESS);
            }
            for command in &commands {
                let line = shell_line(&registry, command);
                if command.program == "gh" && which("gh").is_none() {
                    println!(
                        "gh is not installed; open the pull request for branch {} on the registry's site, or run:\n  {line}",
                        submission.branch
                    );
                    continue;
                }
                println!("$ {line}");
                let status = std::process::Command::new(command.program)
                    .args(&command.args)
                    .current_dir(&registry)
                    .status()
                    .with_context(|| format!("running {}", command.program))?;
                anyhow::ensure!(status.success(), "`{line}` failed ({status}); the files are in place, finish by hand");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where `program` is on PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(format!("{program}{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| p.is_file())
}
