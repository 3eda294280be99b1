//! The administrator policy in the CLI: where it is read from, and
//! `trellis policy --show-effective`.

use std::path::PathBuf;
use std::sync::Arc;

use trellis_client::admin::{AdminPolicy, AdminPolicyError, POLICY_PATH_ENV, system_path};
use trellis_client::store::Store;

use crate::Context;

/// The policy file: `$TRELLIS_ADMIN_POLICY`, else the platform location.
pub(crate) fn policy_path() -> PathBuf {
    std::env::var_os(POLICY_PATH_ENV).map_or_else(system_path, PathBuf::from)
}

/// The administrator policy, if there is one; an unusable file is an error (every
/// command refuses: fail closed).
pub(crate) fn load() -> Result<Option<Arc<AdminPolicy>>, AdminPolicyError> {
    Ok(AdminPolicy::load(&policy_path())?.map(Arc::new))
}

/// Prints the administrator's rules and the user's update policies, as they apply.
pub(crate) fn show_effective(ctx: &Context, store: &Store) {
    let admin = store.options().admin_policy.as_deref();
    let policies = &store.state().policies;
    let forced: Vec<(String, bool)> = admin
        .map(|a| {
            a.document.forced_plugins.iter().map(|id| (id.to_string(), store.state().plugin(id).is_some())).collect()
        })
        .unwrap_or_default();
    if ctx.out.json {
        ctx.out.result(&serde_json::json!({
            "admin_policy": admin.map(|a| serde_json::json!({"path": a.path, "rules": a.document})),
            "admin_policy_path": policy_path(),
            "forced_installed": forced.iter().map(|(id, installed)| serde_json::json!({"plugin": id, "installed": installed})).collect::<Vec<_>>(),
            "user": policies,
        }));
        return;
    }
    match admin {
        None => outln!("administrator policy: none ({} does not exist)", policy_path().display()),
        Some(admin) => {
            outln!("administrator policy: {}", admin.path.display());
            for line in admin.document.to_string().lines() {
                outln!("  {line}");
            }
            for (id, installed) in &forced {
                outln!("  forced {id}: {}", if *installed { "installed" } else { "not installed yet" });
            }
        }
    }
    let g = &policies.global;
    let overridden =
        admin.is_some_and(|a| a.document.update_window.is_some() || a.document.staged_rollouts == Some(false));
    outln!(
        "your policy: updates {}, channel {}, checked every {:#}{}",
        g.mode,
        g.channel.as_str(),
        g.check_interval,
        if overridden { " (the administrator's window and rollout rules apply first)" } else { "" }
    );
    for id in policies.plugins.keys() {
        let p = policies.for_plugin(id);
        outln!("{id}: updates {}, channel {}", p.mode, p.channel.as_str());
    }
}
