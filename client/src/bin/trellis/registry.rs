//! `trellis registry …`: add, list, remove registries; bind a vendor namespace.

use std::path::PathBuf;

use clap::Subcommand;

use crate::{CliResult, Context, Failure};

#[derive(Subcommand)]
pub(crate) enum RegistryCommand {
    /// Add a registry, trusting the root metadata in ROOT (obtained from its operator).
    Add {
        /// Local name (lowercase letters, digits, `-`).
        name: String,
        /// Base URL of the registry's site.
        url: String,
        /// The registry's root metadata (`1.root.json`).
        #[arg(long)]
        root: PathBuf,
    },
    /// List the registries in priority order.
    List,
    /// Remove a registry (refused while plugins installed from it remain).
    Remove {
        /// Its local name.
        name: String,
    },
    /// Manage a registry's mirrors (`add`, `remove`, `list`).
    #[command(subcommand)]
    Mirror(crate::mirror::MirrorCommand),
    /// Bind a vendor namespace to a registry: its plugins come only from there.
    Bind {
        /// The vendor id (`acme`).
        vendor: String,
        /// The registry's local name.
        name: String,
    },
}

impl RegistryCommand {
    /// The command's name in the `--json` envelope.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "registry add",
            Self::List => "registry list",
            Self::Remove { .. } => "registry remove",
            Self::Bind { .. } => "registry bind",
            Self::Mirror(_) => "registry mirror",
        }
    }
}

pub(crate) fn run(ctx: &Context, command: RegistryCommand) -> CliResult {
    let mut store = ctx.open()?;
    match command {
        RegistryCommand::Mirror(command) => return crate::mirror::run(ctx, &mut store, command),
        RegistryCommand::Add { name, url, root } => {
            let bytes = std::fs::read(&root).map_err(|e| {
                Failure::Usage(format!(
                    "cannot read the root metadata {}: {e}; pass the registry's 1.root.json",
                    root.display()
                ))
            })?;
            let (root_version, snapshot) = store.add_registry(&name, &url, &bytes)?;
            ctx.out.result(&serde_json::json!({
                "added": name, "url": url, "root_version": root_version, "snapshot_version": snapshot,
            }));
            if !ctx.out.json {
                outln!("added registry {name} ({url}); its signed metadata verified (root v{root_version})");
            }
        }
        RegistryCommand::List => {
            let state = store.state().clone();
            if ctx.out.json {
                ctx.out.result(
                    &serde_json::json!({"registries": store.registries().registries, "vendors": state.vendors}),
                );
            } else {
                if store.registries().registries.is_empty() {
                    outln!("no registries; add one with `trellis registry add NAME URL --root ROOT.json`");
                }
                for registry in &store.registries().registries {
                    let vendors: Vec<String> = state
                        .vendors
                        .iter()
                        .filter(|(_, r)| *r == &registry.name)
                        .map(|(v, _)| v.to_string())
                        .collect();
                    outln!(
                        "{}  {}  vendors: {}",
                        registry.name,
                        registry.url,
                        if vendors.is_empty() { "-".into() } else { vendors.join(", ") }
                    );
                }
            }
        }
        RegistryCommand::Remove { name } => {
            store.remove_registry(&name)?;
            if ctx.out.json {
                ctx.out.result(&serde_json::json!({"removed": name}));
            } else {
                outln!("removed registry {name}");
            }
        }
        RegistryCommand::Bind { vendor, name } => {
            let vendor: trellis_schema::VendorId =
                vendor.parse().map_err(|e| Failure::Usage(format!("`{vendor}` is not a vendor id: {e}")))?;
            let registry: trellis_client::state::RegistryName =
                name.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
            if store.registries().get(&registry).is_none() {
                return Err(Failure::Usage(format!("no registry named `{name}` is configured")));
            }
            let previous = store.update_state(|s| s.bind_vendor(vendor.clone(), registry.clone()))?;
            if ctx.out.json {
                ctx.out.result(&serde_json::json!({"vendor": vendor, "registry": registry, "previous": previous}));
            } else {
                outln!("vendor {vendor} is bound to registry {registry}");
            }
        }
    }
    Ok(())
}
