//! Settings commands: pin, unpin, policy, repair.
//!
//! `pin` takes only a release that exists (installed, or listed by the plugin's index
//! doc) and `policy --plugin` only a plugin that is installed or served by a registry;
//! `unpin` and `policy --reset` undo them.

use clap::Args;
use trellis_client::policy::{PolicyOverride, UpdateMode};
use trellis_client::state::{DataDir, RepairReport, StateStore};
use trellis_schema::PluginId;
use trellis_schema::plugin::Channel;

use crate::{CliResult, Context, Failure};

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
        Some(v) => {
            let version: semver::Version =
                v.parse().map_err(|e| Failure::Usage(format!("`{v}` is not a version: {e}")))?;
            check_release_exists(&mut store, &id, &version)?;
            version
        }
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
    if ctx.out.json {
        ctx.out.result(&serde_json::json!({"pinned": id, "version": version}));
    } else {
        outln!("pinned {id} at {version}");
    }
    Ok(())
}

/// Refuses a pin at a release that is neither installed nor listed by the index doc.
fn check_release_exists(
    store: &mut trellis_client::store::Store,
    id: &PluginId,
    version: &semver::Version,
) -> Result<(), Failure> {
    if store.state().plugin(id).is_some_and(|p| p.refers_to(version)) {
        return Ok(());
    }
    let (registry, doc) = store.info(id)?;
    if doc.releases.iter().any(|r| &r.version == version) {
        return Ok(());
    }
    let mut known: Vec<String> = doc.releases.iter().rev().take(10).map(|r| r.version.to_string()).collect();
    if known.is_empty() {
        known.push("none".into());
    }
    Err(Failure::Usage(format!(
        "{id} has no release {version} in registry `{registry}`; its releases: {} (`trellis info {id}`)",
        known.join(", ")
    )))
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
    match (ctx.out.json, removed) {
        (true, removed) => ctx.out.result(&serde_json::json!({"unpinned": id, "was": removed})),
        (false, Some(v)) => outln!("unpinned {id} (was {v})"),
        (false, None) => outln!("{id} was not pinned"),
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
    /// How often the scheduled check (`update --scheduled`) runs: `1h`, `30m`, `48h`
    /// (at least 1m; default 24h). A shorter interval makes blocks and advisories reach
    /// this install sooner; a check that finds nothing new is one small request.
    #[arg(long, conflicts_with = "plugin", value_parser = parse_interval)]
    check_interval: Option<jiff::SignedDuration>,
    /// Go back to the defaults: drop the plugin's override (with --plugin) or reset
    /// the global policy.
    #[arg(long, conflicts_with_all = ["mode", "channel", "check_interval"])]
    reset: bool,
    /// Show the administrator policy and your policies as they apply together.
    #[arg(long, conflicts_with_all = ["plugin", "mode", "channel", "check_interval"])]
    show_effective: bool,
    /// Install the plugins the administrator policy forces that are not installed yet
    /// (for a deployment script or a login task), asking consent as any install does
    /// (`--yes` to agree); does nothing when they all are.
    #[arg(long, conflicts_with_all = ["plugin", "mode", "channel", "reset", "show_effective"])]
    apply: bool,
}

fn parse_interval(text: &str) -> Result<jiff::SignedDuration, String> {
    let interval: jiff::SignedDuration =
        text.parse().map_err(|e| format!("`{text}` is not a duration like 1h, 30m or 48h: {e}"))?;
    if interval < jiff::SignedDuration::from_mins(1) {
        return Err(format!("`{text}` is shorter than the shortest check interval, 1m"));
    }
    Ok(interval)
}

pub(crate) fn policy(ctx: &Context, args: PolicyArgs) -> CliResult {
    if args.show_effective {
        crate::admin::show_effective(ctx, &ctx.open()?);
        return Ok(());
    }
    if args.apply {
        let mut store = ctx.open()?;
        if store.options().admin_policy.is_none() {
            return Err(Failure::Failed(format!(
                "there is no administrator policy ({} does not exist): nothing is forced",
                crate::admin::policy_path().display()
            )));
        }
        let report = crate::plugins::with_session(ctx, |session| Ok(store.install_forced(session)?));
        ctx.offline_notes(&store);
        let report = report?;
        ctx.out.result(&report);
        if !ctx.out.json {
            if report.installed.is_empty() {
                outln!("every plugin the administrator policy forces is installed");
            }
            for (id, version) in &report.installed {
                outln!("installed {id} {version} (forced by the administrator policy)");
            }
        }
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
    if let Some(id) = &plugin
        && (mode.is_some() || channel.is_some())
        && store.state().plugin(id).is_none()
    {
        // Not installed: it must at least be a plugin some registry serves.
        store.info(id)?;
    }
    if args.reset {
        store.update_state(|s| match &plugin {
            Some(id) => {
                s.policies.plugins.remove(id);
            }
            None => s.policies.global = Default::default(),
        })?;
    }
    if let Some(interval) = args.check_interval {
        store.update_state(|s| s.policies.global.check_interval = interval)?;
    }
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
    ctx.out.result(policies);
    if ctx.out.json {
        return Ok(());
    }
    let g = &policies.global;
    outln!("global: updates {}, channel {}, checked every {:#}", g.mode, g.channel.as_str(), g.check_interval);
    for id in policies.plugins.keys() {
        let p = policies.for_plugin(id);
        outln!("{id}: updates {}, channel {}", p.mode, p.channel.as_str());
    }
    Ok(())
}

pub(crate) fn repair(ctx: &Context) -> CliResult {
    let dir = DataDir::new(ctx.data_dir()?);
    let report = StateStore::repair(dir).map_err(|e| Failure::Failed(e.to_string()))?;
    let store = ctx.open()?;
    drop(store);
    match report {
        RepairReport::NotNeeded => {
            ctx.out.result(&serde_json::json!({"repaired": false}));
            if !ctx.out.json {
                outln!("the state file is fine; nothing to repair");
            }
        }
        RepairReport::Repaired { set_aside, recovered, unrecognised, kept, lost, .. } => {
            let plugins: Vec<_> =
                recovered.iter().map(|(id, version)| serde_json::json!({"id": id, "version": version})).collect();
            ctx.out.result(&serde_json::json!({
                "repaired": true,
                "set_aside": set_aside,
                "recovered": plugins,
                "unrecognised": unrecognised,
                "kept": kept,
                "lost": lost,
            }));
            if ctx.out.json {
                return Ok(());
            }
            outln!("set the damaged state file aside as {}", set_aside.display());
            for (id, version) in recovered {
                outln!("recovered {id} {version}");
            }
            for path in unrecognised {
                outln!("left as it is (not a plugin this client installed): {}", path.display());
            }
            if !kept.is_empty() {
                outln!("kept from the damaged file: {}", kept.join(", "));
            }
            for what in lost {
                outln!("could not keep {what}");
            }
        }
    }
    Ok(())
}
