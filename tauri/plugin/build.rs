//! Generates the plugin's permissions (`allow-<command>`/`deny-<command>`) for the
//! commands below; `permissions/default.toml` groups them into the default set.

const COMMANDS: &[&str] = &[
    "status",
    "registries",
    "add_registry",
    "remove_registry",
    "search",
    "browse",
    "info",
    "install",
    "check_updates",
    "update",
    "scheduled_update",
    "remove",
    "rollback",
    "list",
    "verify",
    "pins",
    "pin",
    "unpin",
    "policies",
    "set_policy",
    "answer_consent",
    "sidecars",
];

fn main() {
    tauri_plugin::Builder::new(COMMANDS).build();
}
