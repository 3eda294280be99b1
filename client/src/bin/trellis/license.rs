//! The license commands: add, list, remove (see `trellis_client::license`).

use std::io::Read as _;

use clap::Subcommand;
use trellis_client::hooks::NoHooks;
use trellis_client::store::{NeverAgree, Session};
use trellis_schema::PluginId;

use crate::{CliResult, Context, Failure, output};

/// `trellis license …`.
#[derive(Subcommand)]
pub(crate) enum LicenseCommand {
    /// Add a license token from the vendor (`-` reads it from stdin). It is verified
    /// offline under the vendor's publisher record and kept; it replaces an earlier
    /// token of the same plugin.
    Add {
        /// The token: `trellis-license-v1.…`, or `-` for stdin.
        token: String,
        /// Refuse the token unless it is for this plugin.
        #[arg(long = "for", value_name = "ID")]
        plugin: Option<String>,
    },
    /// List the license state of plugins with a token, a trial, or a paid release installed.
    List,
    /// Forget the token of a plugin (a trial is kept).
    Remove {
        /// The plugin id.
        id: String,
    },
}

fn plugin_id(id: &str) -> Result<PluginId, Failure> {
    id.parse().map_err(|e| Failure::Usage(format!("`{id}` is not a plugin id: {e}")))
}

pub(crate) fn run(ctx: &Context, command: LicenseCommand) -> CliResult {
    let hooks = NoHooks;
    let consent = NeverAgree;
    let session = Session::new(&hooks, &consent).with_reporter(output::reporter(&ctx.out));
    match command {
        LicenseCommand::Add { token, plugin } => {
            let expected = plugin.map(|id| plugin_id(&id)).transpose()?;
            let token = if token == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .take(64 * 1024)
                    .read_to_string(&mut text)
                    .map_err(|e| Failure::Usage(format!("reading the token from stdin: {e}")))?;
                text
            } else {
                token
            };
            let mut store = ctx.open()?;
            let entry = store.add_license(&token, expected.as_ref(), &session)?;
            if ctx.out.json {
                ctx.out.result(&entry);
            } else {
                outln!("added the license of {}: {}", entry.plugin, entry.state);
            }
        }
        LicenseCommand::List => {
            let store = ctx.open()?;
            let entries = store.license_list()?;
            if ctx.out.json {
                ctx.out.result(&entries);
                return Ok(());
            }
            if entries.is_empty() {
                outln!("no licenses, trials or paid plugins");
            }
            for entry in entries {
                let installed = entry.installed.map(|v| format!(" {v}")).unwrap_or_else(|| " (not installed)".into());
                outln!("{}{installed}: {}", entry.plugin, entry.state);
            }
        }
        LicenseCommand::Remove { id } => {
            let plugin = plugin_id(&id)?;
            let mut store = ctx.open()?;
            let state = store.remove_license(&plugin, &session)?;
            if ctx.out.json {
                ctx.out.result(&serde_json::json!({"plugin": plugin, "removed": true, "license": state}));
            } else {
                outln!("removed the license of {plugin}; now: {state}");
            }
        }
    }
    Ok(())
}
