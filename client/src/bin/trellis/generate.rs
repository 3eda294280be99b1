//! `trellis completions SHELL` and `trellis man`: shell completion scripts
//! (clap_complete) and the trellis(1) man page (clap_mangen), generated from the same
//! argument definitions the parser uses, so they never drift from the commands.

use clap::{Args, CommandFactory};

use crate::{Cli, CliResult, Context, Failure};

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    shell: clap_complete::Shell,
}

/// Prints the completion script for a shell on stdout
/// (`trellis completions bash > /etc/bash_completion.d/trellis`).
pub(crate) fn completions(_ctx: &Context, args: CompletionsArgs) -> CliResult {
    let mut command = Cli::command();
    let mut bytes = Vec::new();
    clap_complete::generate(args.shell, &mut command, "trellis", &mut bytes);
    out!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}

/// Prints the trellis(1) man page (roff) on stdout (`trellis man > trellis.1`).
pub(crate) fn man(_ctx: &Context) -> CliResult {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut bytes)
        .map_err(|e| Failure::Failed(format!("could not render the man page: {e}")))?;
    out!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}
