//! `trellis registry mirror …`: the user's mirrors of a registry, and every mirror's
//! health.

use clap::Subcommand;
use trellis_client::store::Store;
use trellis_client::store::mirrors::MirrorOrigin;

use crate::{CliResult, Context};

#[derive(Subcommand)]
pub(crate) enum MirrorCommand {
    /// Add a mirror of registry NAME, asked before the registry's own URL. Everything
    /// from a mirror is verified against the registry's signed metadata, as from the
    /// registry itself.
    Add {
        /// The registry's local name.
        name: String,
        /// The mirror's base URL (https://, http://, or file:/// for a copied site).
        url: String,
    },
    /// Remove a mirror you added.
    Remove {
        /// The registry's local name.
        name: String,
        /// The mirror's base URL.
        url: String,
    },
    /// List the mirrors of registry NAME in order of preference, with their health.
    List {
        /// The registry's local name.
        name: String,
    },
}

pub(crate) fn run(ctx: &Context, store: &mut Store, command: MirrorCommand) -> CliResult {
    match command {
        MirrorCommand::Add { name, url } => {
            store.add_mirror(&name, &url)?;
            if ctx.out.json {
                ctx.out.result(&serde_json::json!({"registry": name, "added_mirror": url}));
            } else {
                outln!("added mirror {url} to registry {name}");
            }
        }
        MirrorCommand::Remove { name, url } => {
            store.remove_mirror(&name, &url)?;
            if ctx.out.json {
                ctx.out.result(&serde_json::json!({"registry": name, "removed_mirror": url}));
            } else {
                outln!("removed mirror {url} from registry {name}");
            }
        }
        MirrorCommand::List { name } => {
            let mirrors = store.mirrors(&name)?;
            if ctx.out.json {
                ctx.out.result(&serde_json::json!({"registry": name, "mirrors": mirrors}));
                return Ok(());
            }
            let now = jiff::Timestamp::now().as_second();
            for mirror in &mirrors {
                let origin = match mirror.origin {
                    MirrorOrigin::User => "yours",
                    MirrorOrigin::Registry => "registry",
                    MirrorOrigin::Published => "published by the registry",
                };
                let health = match &mirror.health {
                    None => "not used yet".to_owned(),
                    Some(record) => match (&record.failure, record.failed_at) {
                        (Some(failure), Some(at)) => format!("failed {} s ago: {failure}", now.saturating_sub(at)),
                        _ => match record.latency_ms {
                            Some(ms) => format!("healthy, {ms} ms"),
                            None => "healthy".to_owned(),
                        },
                    },
                };
                outln!("{}  ({origin})  {health}", mirror.url);
            }
        }
    }
    Ok(())
}
