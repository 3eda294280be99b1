//! The permission catalog: what a plugin may ask for, and how to say it in plain words.
//!
//! Every permission is a `type` with a `scope` from this catalog and a mandatory
//! `reason`. The catalog is the single source for validation (unknown scopes are
//! refused), for consent screens and the storefront (plain-words text, risk level),
//! and for update decisions (a release whose permission set grows needs re-consent).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much a permission exposes, for consent screens and the security level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Confined to the plugin's own data or harmless information.
    Low,
    /// Touches user data or the network in a bounded way.
    Medium,
    /// Can act as the user on the whole machine.
    High,
}

/// One scope of a permission type.
#[derive(Clone, Copy, Debug)]
pub struct ScopeInfo {
    /// Name as written in `plugin.json`.
    pub name: &'static str,
    /// Plain-words description, completing "This plugin can …".
    pub plain: &'static str,
    /// Risk level.
    pub risk: Risk,
}

macro_rules! permission_catalog {
    ($( $variant:ident = $name:literal : [ $( ($scope:literal, $plain:literal, $risk:ident) ),+ $(,)? ] ),+ $(,)?) => {
        /// A permission type.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
        pub enum PermissionKind {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name)]
                $variant,
            )+
        }

        impl PermissionKind {
            /// Every permission type.
            pub const ALL: &'static [PermissionKind] = &[$(Self::$variant),+];

            /// Name as written in `plugin.json`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }

            /// The scopes this type accepts.
            pub fn scopes(self) -> &'static [ScopeInfo] {
                match self {
                    $(Self::$variant => &[ $( ScopeInfo { name: $scope, plain: $plain, risk: Risk::$risk } ),+ ]),+
                }
            }
        }
    };
}

permission_catalog! {
    Filesystem = "filesystem": [
        ("plugin_directory", "read and write files in its own folder", Low),
        ("app_data", "read and write the host application's data folder", Medium),
        ("user_documents", "read and write files in your Documents folder", Medium),
        ("user_downloads", "read and write files in your Downloads folder", Medium),
        ("user_pictures", "read and write files in your Pictures folder", Medium),
        ("temp", "use temporary files", Low),
        ("read_any", "read any file you can read", High),
        ("full", "read, change and delete any file you can", High),
    ],
    Network = "network": [
        ("localhost", "connect to services on this computer", Low),
        ("lan", "connect to devices on your local network", Medium),
        ("internet", "connect to servers on the internet", Medium),
        ("listen", "accept incoming network connections", High),
    ],
    Process = "process": [
        ("own_binaries", "start programs that ship inside the plugin", Medium),
        ("any", "start any program on this computer", High),
        ("inspect", "see which programs are running", Medium),
    ],
    Shell = "shell": [
        ("open_url", "open web links in your browser", Low),
        ("open_file", "open files with their default application", Medium),
        ("execute", "run shell commands", High),
    ],
    Clipboard = "clipboard": [
        ("read", "read what you copy", Medium),
        ("write", "put text on the clipboard", Low),
        ("read_write", "read and replace what you copy", Medium),
    ],
    Media = "media": [
        ("camera", "use your camera", High),
        ("microphone", "record from your microphone", High),
    ],
    Notifications = "notifications": [
        ("show", "show desktop notifications", Low),
    ],
    WindowsRegistry = "windows_registry": [
        ("plugin_key", "keep settings under its own registry key", Low),
        ("current_user_read", "read your user's registry settings", Medium),
        ("current_user_write", "change your user's registry settings", High),
        ("machine_read", "read machine-wide registry settings", Medium),
    ],
    SystemInfo = "system_info": [
        ("basic", "read the operating system version and language", Low),
        ("hardware", "read hardware details (CPU, memory, displays)", Low),
        ("identifiers", "read identifiers of this computer", Medium),
    ],
    HostApi = "host_api": [
        ("ui", "add panels, menus and commands to the application", Low),
        ("documents", "read and change the documents open in the application", Medium),
        ("settings", "change the application's settings", Medium),
    ],
}

impl PermissionKind {
    /// The catalog entry of `scope`, if this type accepts it.
    pub fn scope(self, scope: &str) -> Option<&'static ScopeInfo> {
        self.scopes().iter().find(|s| s.name == scope)
    }
}

impl fmt::Display for PermissionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission as requested in `plugin.json`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Permission {
    /// Permission type.
    #[serde(rename = "type")]
    pub kind: PermissionKind,
    /// Scope, from the catalog of `kind`.
    pub scope: String,
    /// Why the plugin needs it, shown to the user.
    pub reason: String,
}

impl Permission {
    /// The catalog entry; `None` for a scope the catalog does not know.
    pub fn info(&self) -> Option<&'static ScopeInfo> {
        self.kind.scope(&self.scope)
    }

    /// `type:scope`, the identity of a permission for diffs and consents.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.scope)
    }
}

/// Permissions in `new` that `old` did not have (by type and scope; reasons ignored).
pub fn added<'a>(old: &[Permission], new: &'a [Permission]) -> Vec<&'a Permission> {
    new.iter().filter(|n| !old.iter().any(|o| o.kind == n.kind && o.scope == n.scope)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermissionKind, scope: &str) -> Permission {
        Permission { kind, scope: scope.into(), reason: "r".into() }
    }

    #[test]
    fn catalog_knows_scopes_and_risk() {
        assert_eq!(PermissionKind::Filesystem.scope("plugin_directory").map(|s| s.risk), Some(Risk::Low));
        assert!(PermissionKind::Filesystem.scope("everything").is_none());
        assert!(PermissionKind::ALL.iter().all(|k| !k.scopes().is_empty()));
    }

    #[test]
    fn added_ignores_reasons_and_finds_growth() {
        let old = [perm(PermissionKind::Network, "internet")];
        let mut same = old.clone();
        same[0].reason = "other words".into();
        assert!(added(&old, &same).is_empty());
        let grown = [perm(PermissionKind::Network, "internet"), perm(PermissionKind::Shell, "execute")];
        assert_eq!(added(&old, &grown).iter().map(|p| p.key()).collect::<Vec<_>>(), ["shell:execute"]);
    }

    #[test]
    fn serialises_type_field_name() {
        let p: Permission =
            serde_json::from_str(r#"{"type":"windows_registry","scope":"plugin_key","reason":"x"}"#).unwrap();
        assert_eq!(p.kind, PermissionKind::WindowsRegistry);
    }
}
