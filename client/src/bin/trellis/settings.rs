//! Settings commands: pin, unpin, policy, repair.

use clap::Args;
use trellis_client::policy::{PolicyOverride, UpdateMode};
use trellis_client::state::{DataDir, RepairReport, StateStore};
use trellis_schema::PluginId;
use trellis_schema::plugin::Channel;

use crate::{CliResult, Context, Failure, output};

#[derive(Args)]
pub(crate) struct PinArgs {
    /// `ID` (pin the active release) or `ID@VERSION`.
    target: String,
}

pub(crate) fn pin(ctx: &Context, args: PinArgs) -> CliResult {
    let (id, version) = match args.target.split_once('@') {
        Some((id, v)) => (id, Some(v)),
        None => (args.target.as_str(), None),
    };
    let id: PluginId = id.parse().map_err(|e| Failure::Usage(format!("`{id}` is not a plugin id: {e}")))?;
    let mut store = ctx.open()?;
    let version = match version {
        Some(v) => v.parse().map_err(|e| Failure::Usage(format!("`{v}` is not a version: {e}")))?,
        None => match store.state().plugin(&id) {
            Some(p) => p.active.version.clone(),
            None => {
                return Err(Failure::Failed(format!(
                    "{id} is not installed; name the version to pin: `trellis pin {id}@VERSION`"
                )));
            }
        },
    };
    store.update_state(|s| s.pins.insert(id.clone(), version.clone()))?;
    if ctx.json {
        output::json(&serde_json::json!({"pinned": id, "version": version}));
    } else {
        println!("pinned {id} at {version}");
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct UnpinArgs {
    /// The plugin id.
    id: String,
}

pub(crate) fn unpin(ctx: &Context, args: UnpinArgs) -> CliResult {
    let id: PluginId = args.id.parse().map_err(|e| Failure::Usage(format!("`{}` is not a plugin id: {e}", args.id)))?;
    let mut store = ctx.open()?;
    let removed = store.update_state(|s| s.pins.remove(&id))?;
    match (ctx.json, removed) {
        (true, removed) => output::json(&serde_json::json!({"unpinned": id, "was": removed})),
        (false, Some(v)) => println!("unpinned {id} (was {v})"),
        (false, None) => println!("{id} was not pinned"),
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct PolicyArgs {
    /// Change the policy of this plugin only (default: the global policy).
    #[arg(long)]
    plugin: Option<String>,
    /// How updates arrive: auto, notify or manual.
    #[arg(long)]
    mode: Option<String>,
    /// The release channel followed: stable, beta or experimental.
    #[arg(long)]
    channel: Option<String>,
    /// Show the administrator policy and your policies as they apply together.
    #[arg(long, conflicts_with_all = ["plugin", "mode", "channel"])]
    show_effective: bool,
}

pub(crate) fn policy(ctx: &Context, args: PolicyArgs) -> CliResult {
    if args.show_effective {
        crate::admin::show_effective(ctx.json, &ctx.open()?);
        return Ok(());
    }
    let mode: Option<UpdateMode> =
        args.mode.as_deref().map(str::parse).transpose().map_err(|e| Failure::Usage(format!("{e}")))?;
    let channel: Option<Channel> = args.channel.as_deref().map(str::parse).transpose().map_err(Failure::Usage)?;
    let plugin: Option<PluginId> = args
        .plugin
        .as_deref()
        .map(|p| p.parse().map_err(|e| Failure::Usage(format!("`{p}` is not a plugin id: {e}"))))
        .transpose()?;
    let mut store = ctx.open()?;
    if mode.is_some() || channel.is_some() {
        store.update_state(|s| match &plugin {
            Some(id) => {
                let o = s.policies.plugins.entry(id.clone()).or_insert_with(PolicyOverride::default);
                o.mode = mode.or(o.mode);
                o.channel = channel.or(o.channel);
            }
            None => {
                if let Some(mode) = mode {
                    s.policies.global.mode = mode;
                }
                if let Some(channel) = channel {
                    s.policies.global.channel = channel;
                }
            }
        })?;
    }
    let policies = &store.state().policies;
    if ctx.json {
        output::json(policies);
        return Ok(());
    }
    let g = &policies.global;
    println!("global: updates {}, channel {}, checked every {:#}", g.mode, g.channel.as_str(), g.check_interval);
    for (id, o) in &policies.plugins {
        let p = policies.for_plugin(id);
        let _ = o;
        println!("{id}: updates {}, channel {}", p.mode, p.channel.as_str());
    }
    Ok(())
}

pub(crate) fn repair(ctx: &Context) -> CliResult {
    let dir = DataDir::new(&ctx.data_dir);
    let report = StateStore::repair(dir).map_err(|e| Failure::Failed(e.to_string()))?;
    let store = ctx.open()?;
    drop(store);
    match report {
        RepairReport::NotNeeded => println!("the state file is fine; nothing to repair"),
        RepairReport::Repaired { set_aside, recovered, .. } => {
            println!("set the damaged state file aside as {}", set_aside.display());
            for (id, version) in recovered {
                println!("recovered {id} {version}");
            }
        }
    }
    Ok(())
}
