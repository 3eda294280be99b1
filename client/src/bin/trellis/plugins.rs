//! The plugin commands: search, info, install, update, remove, rollback, list, verify.

use std::sync::Arc;

use clap::Args;
use trellis_client::catalog::Compatibility;
use trellis_client::events::Reporter;
use trellis_client::hooks::NoHooks;
use trellis_client::license::{LicenseState, describe_pricing};
use trellis_client::resolve::PreReleases;
use trellis_client::state::severity_word;
use trellis_client::store::{AlwaysAgree, Consent, NeverAgree, Session, Store, install::parse_requirement};
use trellis_schema::PluginId;
use trellis_schema::index::Percent;

use crate::{CliResult, Context, Failure, output};

fn plugin_id(text: &str) -> Result<PluginId, Failure> {
    text.parse().map_err(|e| Failure::Usage(format!("`{text}` is not a plugin id: {e}")))
}

pub(crate) fn with_session<T>(
    ctx: &Context,
    run: impl FnOnce(&Session<'_>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let hooks = NoHooks;
    // With --json nothing but JSON lines may reach stderr, so there is no prompt: the
    // refusal (naming the permissions and --yes) is the error of the JSON document.
    let consent: &dyn Consent = match (ctx.yes, ctx.out.json) {
        (true, _) => &AlwaysAgree,
        (false, true) => &NeverAgree,
        (false, false) => &ctx.prompt,
    };
    let reporter: Arc<dyn Reporter> = output::reporter(&ctx.out);
    let session = Session::new(&hooks, consent).with_reporter(reporter);
    run(&session)
}

#[derive(Args)]
pub(crate) struct InfoArgs {
    /// The plugin id.
    id: String,
}

pub(crate) fn info(ctx: &Context, args: InfoArgs) -> CliResult {
    let id = plugin_id(&args.id)?;
    let mut store = ctx.open()?;
    let (registry, doc) = match store.info(&id) {
        Ok(found) => found,
        Err(error) => return Err(crate::discover::with_suggestions(&mut store, &[id.as_str()], error)),
    };
    let blocklist = store.blocklist()?;
    let versions: Vec<_> = doc.releases.iter().map(|r| r.version.clone()).collect();
    let levels = store.security_levels(&registry, &id, &versions)?;
    ctx.offline_notes(&store);
    let installed = store.state().plugin(&id).cloned();
    let blocked: Vec<_> = doc
        .releases
        .iter()
        .filter_map(|r| blocklist.find(&id, &r.version, Some(&r.package.sha256)).map(|e| (&r.version, e)))
        .collect();
    if ctx.out.json {
        let blocked: Vec<_> = blocked
            .iter()
            .map(|(version, e)| {
                serde_json::json!({"version": version, "severity": e.severity, "reason": e.reason, "advisory": e.advisory})
            })
            .collect();
        let license = match &installed {
            Some(_) => Some(store.license_state(&id)?),
            None => None,
        };
        ctx.out.result(&serde_json::json!({
            "registry": registry, "doc": &*doc, "installed": installed, "blocked_releases": blocked, "license": license,
            "security_levels": levels,
        }));
        return Ok(());
    }
    outln!("{} ({}) from registry {registry}", doc.id, doc.name);
    let newest = doc.releases.iter().filter(|r| !r.yanked).max_by(|a, b| a.version.cmp(&b.version));
    if let Some(release) = newest
        && let Compatibility::Incompatible { reason } = store.release_compatibility(release)
    {
        outln!("cannot run here: {} {reason}", release.version);
    }
    if let Some(pricing) = newest.and_then(|r| r.pricing.as_ref()) {
        outln!("price: {}", describe_pricing(pricing));
    }
    if let Some(installed) = &installed {
        let previous =
            installed.previous.as_ref().map(|p| format!(", previous {} kept", p.version)).unwrap_or_default();
        outln!("installed: {}{previous}", installed.active.version);
        if let Some(mark) = &installed.disabled {
            outln!("{}", output::disabled_line(mark));
        }
        let license = store.license_state(&id)?;
        if license != LicenseState::Free {
            outln!("license: {license}");
        }
    }
    for release in doc.releases.iter().rev() {
        let mut flags = vec![release.channel.as_str().to_owned()];
        if release.yanked {
            flags.push("yanked".into());
        }
        if let Some(rollout) = release.rollout.filter(|r| *r != Percent::ALL) {
            flags.push(format!("rolling out to {rollout} of installs"));
        }
        if let Some((_, entry)) = blocked.iter().find(|(v, _)| **v == release.version) {
            flags.push(format!("BLOCKED ({} severity): {}", severity_word(entry.severity), entry.reason));
        }
        outln!("  {}  [{}]  {}", release.version, flags.join(", "), output::size(release.package.length));
        if let Some(level) = levels.get(&release.version) {
            outln!("      security level: {}", level.describe());
        }
        for dependency in &release.dependencies {
            outln!("      needs {} {}", dependency.id, dependency.version_requirement);
        }
        for permission in &release.permissions {
            let plain = permission.info().map(|i| i.plain).unwrap_or("an unknown permission");
            outln!("      may {plain} ({}): {}", permission.key(), permission.reason);
        }
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct InstallArgs {
    /// Plugins to install: `ID` or `ID@REQUIREMENT` (`acme.clock@^1.2`, `acme.clock@1.2.0`).
    #[arg(required = true)]
    plugins: Vec<String>,
    /// Also consider pre-releases (`1.3.0-rc.1`) where no requirement names one.
    #[arg(long)]
    pre: bool,
}

pub(crate) fn install(ctx: &Context, args: InstallArgs) -> CliResult {
    let requirements =
        args.plugins.iter().map(|p| parse_requirement(p).map_err(Failure::Usage)).collect::<Result<Vec<_>, _>>()?;
    let mut store = ctx.open()?;
    let prereleases = if args.pre { PreReleases::Allow } else { PreReleases::IfRequested };
    let report = with_session(ctx, |session| Ok(store.install_with(&requirements, prereleases, session)?));
    ctx.offline_notes(&store);
    let report = match report {
        Ok(report) => report,
        Err(Failure::Failed(message)) => {
            let ids: Vec<&str> = requirements.iter().map(|r| r.id.as_str()).collect();
            return Err(Failure::Failed(crate::discover::suggest(&mut store, &ids, message)));
        }
        Err(other) => return Err(other),
    };
    if ctx.out.json {
        // The report, and each plugin's license state and price model (free ones too:
        // a host reading the JSON needs no second command to gate features).
        let mut result = serde_json::to_value(&report).map_err(|e| Failure::Failed(e.to_string()))?;
        let mut licenses = serde_json::Map::new();
        let ids = report.installed.iter().map(|(id, _)| id).chain(report.updated.iter().map(|(id, _, _)| id));
        for id in ids.chain(report.unchanged.iter().map(|(id, _)| id)) {
            let state = serde_json::to_value(store.license_state(id)?).map_err(|e| Failure::Failed(e.to_string()))?;
            let pricing = store.pricing_of(id);
            licenses.insert(id.to_string(), serde_json::json!({"license": state, "pricing": pricing}));
        }
        if let serde_json::Value::Object(members) = &mut result {
            members.insert("licenses".into(), serde_json::Value::Object(licenses));
        }
        ctx.out.result(&result);
        return Ok(());
    }
    // What the prompt showed before asking is not printed again.
    let unseen = report.disclosures.iter().filter(|d| !d.permissions.is_empty());
    for disclosure in unseen.filter(|d| !ctx.prompt.showed(&d.plugin, &d.version)) {
        out!("{}", output::disclosure_text(disclosure));
    }
    for (id, version) in &report.installed {
        outln!("installed {id} {version}");
        match store.license_state(id)? {
            LicenseState::Free => {}
            license => {
                let price = store.pricing_of(id).map(|p| format!("{}; ", describe_pricing(&p))).unwrap_or_default();
                outln!("  {id}: {price}{license}");
            }
        }
    }
    for (id, from, to) in &report.updated {
        outln!("updated {id} {from} -> {to}");
    }
    for (id, version) in &report.unchanged {
        outln!("{id} {version} is already installed");
    }
    output::protection(&report.blocked, &report.held_back);
    Ok(())
}

#[derive(Args)]
pub(crate) struct UpdateArgs {
    /// Only report available updates and what the update policy would do.
    #[arg(long)]
    check: bool,
    /// With --check: exit with code 100 when updates are available (0 when none).
    #[arg(long, requires = "check")]
    exit_code: bool,
    /// Run the scheduled check (for a timer or a login task): only when the check
    /// interval has passed, and apply only what the policies allow unattended.
    #[arg(long, conflicts_with_all = ["check", "plugins"])]
    scheduled: bool,
    /// Plugins to update (all installed ones when none is given). A named plugin gets
    /// its newest release even when the registry's staged rollout has not reached this
    /// install yet; updating everything waits for the rollout.
    plugins: Vec<String>,
}

pub(crate) fn update(ctx: &Context, args: UpdateArgs) -> CliResult {
    let ids = args.plugins.iter().map(|p| plugin_id(p)).collect::<Result<Vec<_>, _>>()?;
    let mut store = ctx.open()?;
    if args.check {
        let report = with_session(ctx, |session| Ok(store.check_updates(&ids, session)?));
        ctx.offline_notes(&store);
        let report = report?;
        ctx.out.result(&report);
        let code = if args.exit_code && !report.updates.is_empty() {
            Err(Failure::Code(crate::EXIT_UPDATES_AVAILABLE))
        } else {
            Ok(())
        };
        if ctx.out.json {
            return code;
        }
        if report.updates.is_empty() {
            outln!("everything is up to date");
        }
        for update in &report.updates {
            let new = if update.new_permissions.is_empty() {
                String::new()
            } else {
                format!("; asks for new permissions: {}", update.new_permissions.join(", "))
            };
            outln!("{} {} -> {}: {}{new}", update.plugin, update.from, update.to, update.decision.reason);
        }
        output::protection(&[report.blocked.as_slice(), report.revoked.as_slice()].concat(), &report.held_back);
        return code;
    }
    let report = if args.scheduled {
        match with_session(ctx, |session| Ok(store.scheduled_update(session)?))? {
            Some(report) => {
                ctx.out.result(&serde_json::json!({"due": true, "report": &report}));
                report
            }
            None => {
                ctx.out.result(&serde_json::json!({"due": false, "report": null}));
                if !ctx.out.json {
                    outln!("no check is due yet (see `trellis policy` for the check interval)");
                }
                return Ok(());
            }
        }
    } else {
        with_session(ctx, |session| Ok(store.update(&ids, session)?))?
    };
    ctx.offline_notes(&store);
    if !args.scheduled {
        ctx.out.result(&report);
    }
    if !ctx.out.json {
        for (id, from, to) in &report.updated {
            let transfer = report.transfers.iter().find(|t| &t.plugin == id && &t.version == to);
            let how = match transfer {
                Some(t) if t.delta_from.is_some() => {
                    format!(" (delta, {} instead of {})", output::size(t.bytes), output::size(t.package_bytes))
                }
                _ => String::new(),
            };
            outln!("updated {id} {from} -> {to}{how}");
        }
        for (id, version) in &report.installed {
            outln!("installed {id} {version} (new dependency)");
        }
        for (id, version, reason) in &report.skipped {
            outln!("skipped {id} {version}: {reason}");
        }
        for (id, version, reason) in &report.rolled_back {
            outln!("update of {id} to {version} failed and was rolled back: {reason}");
        }
        output::protection(&[report.blocked.as_slice(), report.revoked.as_slice()].concat(), &report.held_back);
        if report.updated.is_empty() && report.installed.is_empty() && report.rolled_back.is_empty() {
            outln!("nothing to update");
        }
    }
    if report.rolled_back.is_empty() {
        Ok(())
    } else {
        Err(Failure::FailedAfterResult(format!("{} update(s) failed and were rolled back", report.rolled_back.len())))
    }
}

#[derive(Args)]
pub(crate) struct RemoveArgs {
    /// The plugin to remove.
    id: String,
    /// Also remove the installed plugins that depend on it.
    #[arg(long)]
    cascade: bool,
    /// Also remove the dependencies it leaves that no installed plugin needs any more.
    #[arg(long)]
    autoremove: bool,
}

pub(crate) fn remove(ctx: &Context, args: RemoveArgs) -> CliResult {
    let id = plugin_id(&args.id)?;
    let mut store = ctx.open()?;
    let orphans_before = store.orphans();
    let (removed, autoremoved) = with_session(ctx, |session| {
        let removed = store.remove(&id, args.cascade, session)?;
        let autoremoved = if args.autoremove { store.autoremove(&orphans_before, session)? } else { Vec::new() };
        Ok((removed, autoremoved))
    })?;
    let orphans: Vec<_> = store.orphans().into_iter().filter(|o| !orphans_before.contains(o)).collect();
    ctx.out.result(&serde_json::json!({"removed": removed, "autoremoved": autoremoved, "orphans": orphans}));
    if ctx.out.json {
        return Ok(());
    }
    let cascaded = removed.len() > 1;
    for removed in &removed {
        if cascaded && removed != &id {
            outln!("removed {removed} (it depends on {id})");
        } else {
            outln!("removed {removed}");
        }
    }
    for removed in &autoremoved {
        outln!("removed {removed} (no installed plugin needs it any more)");
    }
    if !orphans.is_empty() {
        let names: Vec<String> = orphans.iter().map(ToString::to_string).collect();
        outln!(
            "no installed plugin needs {} any more: `trellis remove {}` removes it (`--autoremove` does so with the removal)",
            names.join(", "),
            names.join(" ")
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct RollbackArgs {
    /// The plugin to roll back.
    id: String,
}

pub(crate) fn rollback(ctx: &Context, args: RollbackArgs) -> CliResult {
    let id = plugin_id(&args.id)?;
    let mut store = ctx.open()?;
    let version = with_session(ctx, |session| Ok(store.rollback(&id, session)?))?;
    ctx.out.result(&serde_json::json!({"plugin": id, "active": version, "pinned": version}));
    if !ctx.out.json {
        outln!("rolled back {id} to {version}; it stays at {version} until `trellis unpin {id}`");
    }
    Ok(())
}

pub(crate) fn list(ctx: &Context) -> CliResult {
    let store = ctx.open()?;
    let state = store.state();
    if ctx.out.json {
        let plugins: Vec<_> = state
            .plugins()
            .iter()
            .map(|(id, p)| serde_json::json!({"id": id, "record": p, "pinned": state.pins.get(id)}))
            .collect();
        ctx.out.result(&plugins);
        return Ok(());
    }
    if state.plugins().is_empty() {
        outln!("no plugins installed");
    }
    for (id, plugin) in state.plugins() {
        let previous = plugin.previous.as_ref().map(|p| format!("  (previous {})", p.version)).unwrap_or_default();
        let pinned = state.pins.get(id).map(|v| format!("  pinned at {v}")).unwrap_or_default();
        let reason = match plugin.reason {
            trellis_client::state::InstallReason::Requested => "",
            trellis_client::state::InstallReason::Dependency => "  (dependency)",
        };
        let mark = plugin.disabled.as_ref().map(|m| format!("  {}", output::disabled_line(m))).unwrap_or_default();
        outln!("{id} {}  [{}]{previous}{pinned}{reason}{mark}", plugin.active.version, plugin.registry);
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Plugins to verify (all installed ones when none is given).
    plugins: Vec<String>,
}

pub(crate) fn verify(ctx: &Context, args: VerifyArgs) -> CliResult {
    let ids = args.plugins.iter().map(|p| plugin_id(p)).collect::<Result<Vec<_>, _>>()?;
    let store: Store = ctx.open()?;
    let reports = store.verify(&ids)?;
    let bad = reports.iter().filter(|r| !r.problems.is_empty()).count();
    let disabled = reports.iter().filter(|r| r.disabled.is_some()).count();
    if ctx.out.json {
        ctx.out.result(&reports);
    } else {
        for report in &reports {
            if let Some(mark) = &report.disabled {
                outln!("{} {}: {}", report.plugin, report.version, output::disabled_line(mark));
            }
            if report.problems.is_empty() {
                let ok = if report.disabled.is_some() { "files match the signed manifest" } else { "ok" };
                outln!("{} {}: {ok}", report.plugin, report.version);
            }
            for problem in &report.problems {
                outln!("{} {}: {problem}", report.plugin, report.version);
            }
        }
    }
    if bad > 0 {
        Err(Failure::FailedAfterResult(format!(
            "{bad} plugin(s) have files or a signed manifest that do not match what the publisher signed; reinstall them (`trellis remove ID` then `trellis install ID`)"
        )))
    } else if disabled > 0 {
        Err(Failure::FailedAfterResult(format!(
            "{disabled} plugin(s) are disabled (blocked by the registry or signed only by revoked keys); update or remove them"
        )))
    } else {
        Ok(())
    }
}
