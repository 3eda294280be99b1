//! Administrator policy: the machine-wide rules an organisation sets for every user.
//!
//! A JSON file in a location only administrators can write ([`system_path`]:
//! `%ProgramData%\Trellis\policy.json` on Windows, `/etc/trellis/policy.json`
//! elsewhere; the binary lets `TRELLIS_ADMIN_POLICY` name another file, for tests and
//! managed deployments). The library takes the loaded policy as a value
//! ([`crate::store::StoreOptions::admin_policy`]) and enforces it; every refusal names
//! the file and the rule ([`AdminRefusal`]). This is separate from [`crate::policy`],
//! the user's own update preferences, which the administrator's rules override.
//!
//! Parsing is strict (unknown fields, duplicate members, bad ids or times are errors)
//! and a policy file that exists but cannot be read or parsed is an error
//! ([`AdminPolicyError`]): the store refuses to open rather than run without the rules
//! (fail closed). A missing file means no policy.
//!
//! ```json
//! {
//!   "allowed_registries": ["https://plugins.example.com"],
//!   "allowed_vendors": ["acme"],
//!   "allowed_plugins": ["acme.clock", "acme.time-core"],
//!   "denied_plugins": ["acme.spy"],
//!   "max_permission_risk": "medium",
//!   "minimum_security_level": "established",
//!   "forced_plugins": ["acme.clock"],
//!   "update_window": "02:00-05:00",
//!   "staged_rollouts": false
//! }
//! ```
//! Every field is optional. `allowed_*` lists, when present, are the only registries
//! (base URLs), vendors and plugins allowed (dependencies included); `denied_plugins`
//! always wins; `max_permission_risk` (`low`, `medium`, `high`) refuses a release
//! asking for a riskier permission, judged from its developer-signed manifest;
//! `minimum_security_level` (`flagged`, `signed`, `established`, `verified`) refuses a
//! release below it, judged from the registry's signed security levels
//! ([`crate::store::levels`]): a release whose level cannot be read is below every
//! level, and an installed release that falls below (a new advisory) is stopped and
//! disabled like a denied plugin;
//! `forced_plugins` cannot be removed (and [`crate::store::Store::install_forced`]
//! installs the missing ones); `update_window` limits scheduled and "update all"
//! updates to that local time of day; `staged_rollouts: false` opts this machine out of
//! staged rollouts: a release still rolling out is not taken by scheduled or "update
//! all" updates until it reaches every install.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trellis_schema::permission::Risk;
use trellis_schema::security_level::Level;
use trellis_schema::{PluginId, VendorId};

use crate::policy::UpdateWindow;

/// The environment variable the `trellis` binary reads for another policy file.
pub const POLICY_PATH_ENV: &str = "TRELLIS_ADMIN_POLICY";

/// The platform location of the policy file: `%ProgramData%\Trellis\policy.json` on
/// Windows (`C:\ProgramData` when the variable is unset, empty or not an absolute
/// path), `/etc/trellis/policy.json` elsewhere.
pub fn system_path() -> PathBuf {
    system_path_for(cfg!(windows), std::env::var_os("ProgramData").as_deref())
}

/// [`system_path`] for a platform and a `%ProgramData%` value, without reading either.
/// A relative or empty value is ignored: it would make the machine-wide policy a file
/// of whatever directory a user starts the program in.
fn system_path_for(windows: bool, program_data: Option<&std::ffi::OsStr>) -> PathBuf {
    if !windows {
        return PathBuf::from("/etc/trellis/policy.json");
    }
    let base = match program_data.and_then(std::ffi::OsStr::to_str) {
        Some(value) if windows_absolute(value) => value.trim_end_matches(['\\', '/']).to_owned(),
        _ => r"C:\ProgramData".to_owned(),
    };
    PathBuf::from(format!(r"{base}\Trellis\policy.json"))
}

/// `X:\...`, `X:/...` or a UNC path `\\server\share\...`, whatever the running platform.
fn windows_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    match bytes {
        [drive, b':', b'\\' | b'/', ..] => drive.is_ascii_alphabetic(),
        [b'\\', b'\\', rest @ ..] => !rest.is_empty(),
        _ => false,
    }
}

/// The policy document, as written by the administrator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Only registries at these base URLs may be added (none: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_registries: Option<Vec<String>>,
    /// Only these vendors' plugins may be installed (none: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_vendors: Option<BTreeSet<VendorId>>,
    /// Only these plugins may be installed (none: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_plugins: Option<BTreeSet<PluginId>>,
    /// These plugins may never be installed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub denied_plugins: BTreeSet<PluginId>,
    /// The riskiest permission a release may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_permission_risk: Option<Risk>,
    /// The lowest security level a release may have (an unknown level is below all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_security_level: Option<Level>,
    /// Plugins that must be installed and cannot be removed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub forced_plugins: BTreeSet<PluginId>,
    /// Scheduled and "update all" updates only in this local time window (`HH:MM-HH:MM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_window: Option<String>,
    /// `false`: never take a release still in a staged rollout (scheduled and "update
    /// all" updates wait until it reaches every install).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_rollouts: Option<bool>,
}

/// A loaded, checked policy and the file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPolicy {
    /// The file.
    pub path: PathBuf,
    /// What it says.
    pub document: PolicyDocument,
    /// `update_window`, parsed.
    pub window: Option<UpdateWindow>,
}

/// The policy file exists but cannot be used: the store refuses to run (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum AdminPolicyError {
    /// It cannot be read.
    #[error("the administrator policy {} cannot be read: {source}; ask your administrator", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It does not parse or says something impossible.
    #[error("the administrator policy {} is invalid: {problem}; nothing is allowed until it is fixed (ask your administrator)", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl AdminPolicy {
    /// Loads the policy at `path`: `Ok(None)` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Self>, AdminPolicyError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AdminPolicyError::Read { path: path.to_owned(), source }),
        };
        Self::parse(path, &bytes).map(Some)
    }

    /// Parses the policy `bytes` read from `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, AdminPolicyError> {
        let invalid = |problem: String| AdminPolicyError::Invalid { path: path.to_owned(), problem };
        let document: PolicyDocument = trellis_schema::json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let window = document
            .update_window
            .as_deref()
            .map(str::parse::<UpdateWindow>)
            .transpose()
            .map_err(|e| invalid(format!("update_window: {e}")))?;
        for url in document.allowed_registries.iter().flatten() {
            if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("file://")) {
                return Err(invalid(format!("allowed_registries: `{url}` is not an http(s):// or file:// URL")));
            }
        }
        if let Some(id) = document.forced_plugins.iter().find(|id| document.denied_plugins.contains(*id)) {
            return Err(invalid(format!("{id} is both forced and denied")));
        }
        Ok(Self { path: path.to_owned(), document, window })
    }

    /// Why registry URL `url` may not be added, if it may not.
    pub fn check_registry(&self, url: &str) -> Result<(), AdminRefusal> {
        let Some(allowed) = &self.document.allowed_registries else { return Ok(()) };
        let url = url.trim_end_matches('/');
        if allowed.iter().any(|a| a.trim_end_matches('/') == url) {
            return Ok(());
        }
        Err(self.refusal(format!("registry {url} is not in allowed_registries ({})", allowed.join(", "))))
    }

    /// Why `plugin` may not be installed, if it may not (deny list, allow lists).
    pub fn check_plugin(&self, plugin: &PluginId) -> Result<(), AdminRefusal> {
        let doc = &self.document;
        if doc.denied_plugins.contains(plugin) {
            return Err(self.refusal(format!("{plugin} is in denied_plugins")));
        }
        if let Some(vendors) = &doc.allowed_vendors
            && !vendors.contains(&plugin.vendor_id())
        {
            return Err(self.refusal(format!("{plugin}: vendor {} is not in allowed_vendors", plugin.vendor_id())));
        }
        if let Some(plugins) = &doc.allowed_plugins
            && !plugins.contains(plugin)
        {
            return Err(self.refusal(format!("{plugin} is not in allowed_plugins")));
        }
        Ok(())
    }

    /// Why a release of `plugin` asking for `permissions` (from its signed manifest)
    /// may not be installed, if it may not.
    pub fn check_permissions(
        &self,
        plugin: &PluginId,
        version: &semver::Version,
        permissions: &[trellis_schema::permission::Permission],
    ) -> Result<(), AdminRefusal> {
        let Some(max) = self.document.max_permission_risk else { return Ok(()) };
        for permission in permissions {
            // A scope the catalog does not know is judged the riskiest.
            let risk = permission.info().map_or(Risk::High, |i| i.risk);
            if risk > max {
                return Err(self.refusal(format!(
                    "{plugin} {version} asks for {}:{} ({} risk), above max_permission_risk {}",
                    permission.kind,
                    permission.scope,
                    risk_name(risk),
                    risk_name(max)
                )));
            }
        }
        Ok(())
    }

    /// Why release `version` of `plugin` at security level `level` may not be
    /// installed (or stay enabled), if it may not.
    pub fn check_security_level(
        &self,
        plugin: &PluginId,
        version: &semver::Version,
        level: &crate::store::levels::SecurityLevel,
    ) -> Result<(), AdminRefusal> {
        let Some(minimum) = self.document.minimum_security_level else { return Ok(()) };
        if level.meets(minimum) {
            return Ok(());
        }
        Err(self.refusal(format!(
            "{plugin} {version} has security level {}, below minimum_security_level {minimum}",
            level.describe()
        )))
    }

    /// Why `plugin` may not be removed, if it may not.
    pub fn check_remove(&self, plugin: &PluginId) -> Result<(), AdminRefusal> {
        if self.document.forced_plugins.contains(plugin) {
            return Err(self.refusal(format!("{plugin} is in forced_plugins and cannot be removed")));
        }
        Ok(())
    }

    fn refusal(&self, rule: String) -> AdminRefusal {
        AdminRefusal { path: self.path.clone(), rule }
    }
}

fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

/// Something the administrator policy does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused by the administrator policy {}: {rule}", path.display())]
pub struct AdminRefusal {
    /// The policy file.
    pub path: PathBuf,
    /// The rule and what broke it.
    pub rule: String,
}

impl fmt::Display for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: Vec<String>| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
        let any = |items: Option<Vec<String>>| items.map_or_else(|| "any".to_owned(), list);
        writeln!(f, "allowed registries: {}", any(self.allowed_registries.clone()))?;
        writeln!(
            f,
            "allowed vendors: {}",
            any(self.allowed_vendors.as_ref().map(|v| v.iter().map(ToString::to_string).collect()))
        )?;
        writeln!(
            f,
            "allowed plugins: {}",
            any(self.allowed_plugins.as_ref().map(|v| v.iter().map(ToString::to_string).collect()))
        )?;
        writeln!(f, "denied plugins: {}", list(self.denied_plugins.iter().map(ToString::to_string).collect()))?;
        writeln!(f, "highest permission risk: {}", self.max_permission_risk.map_or("any", risk_name))?;
        writeln!(
            f,
            "minimum security level: {}",
            self.minimum_security_level.map_or_else(|| "any".to_owned(), |l| l.to_string())
        )?;
        writeln!(f, "forced plugins: {}", list(self.forced_plugins.iter().map(ToString::to_string).collect()))?;
        writeln!(f, "update window: {}", self.update_window.as_deref().unwrap_or("any time"))?;
        write!(
            f,
            "staged rollouts: {}",
            if self.staged_rollouts == Some(false) { "opted out (wait for full rollout)" } else { "followed" }
        )
    }
}

#[cfg(test)]
mod system_path_tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn windows_policy_lives_under_program_data_and_ignores_a_relative_value() {
        let path = |value: Option<&str>| system_path_for(true, value.map(OsStr::new)).to_string_lossy().into_owned();
        assert_eq!(path(Some(r"D:\ProgramData")), r"D:\ProgramData\Trellis\policy.json");
        assert_eq!(path(Some(r"D:\ProgramData\")), r"D:\ProgramData\Trellis\policy.json");
        assert_eq!(path(Some(r"\\corp\share")), r"\\corp\share\Trellis\policy.json");
        for fallback in [None, Some(""), Some("ProgramData"), Some(r"..\x"), Some(r"\x"), Some("C:relative")] {
            assert_eq!(path(fallback), r"C:\ProgramData\Trellis\policy.json", "{fallback:?}");
        }
        assert_eq!(system_path_for(false, Some(OsStr::new(r"D:\x"))), PathBuf::from("/etc/trellis/policy.json"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<AdminPolicy, AdminPolicyError> {
        AdminPolicy::parse(Path::new("/etc/trellis/policy.json"), json.as_bytes())
    }

    #[test]
    fn parsing_is_strict_and_names_the_file() {
        for (json, expected) in [
            (r#"{"allowed_plugin":["acme.clock"]}"#, "unknown field `allowed_plugin`"),
            (r#"{"denied_plugins":["not an id"]}"#, "\"not an id\": character ' ' is not allowed"),
            (r#"{"update_window":"25:00-03:00"}"#, "update_window"),
            (r#"{"max_permission_risk":"extreme"}"#, "extreme"),
            (r#"{"forced_plugins":["acme.a"],"denied_plugins":["acme.a"]}"#, "acme.a is both forced and denied"),
            (r#"{"allowed_registries":["store.example"]}"#, "`store.example` is not an http(s)"),
            (r#"{"denied_plugins":[],"denied_plugins":[]}"#, "duplicate member"),
            ("{", "EOF"),
        ] {
            let error = policy(json).unwrap_err().to_string();
            assert!(
                error.contains("/etc/trellis/policy.json is invalid") && error.contains(expected),
                "{json}: {error}"
            );
        }
    }

    #[test]
    fn rules_refuse_naming_the_file_and_the_rule() {
        let p = policy(
            r#"{"allowed_registries":["https://store.example/"],"allowed_vendors":["acme"],
                "denied_plugins":["acme.spy"],"forced_plugins":["acme.clock"],"max_permission_risk":"low"}"#,
        )
        .unwrap();
        assert!(p.check_registry("https://store.example").is_ok());
        let refused = p.check_registry("https://other.example").unwrap_err().to_string();
        assert_eq!(
            refused,
            "refused by the administrator policy /etc/trellis/policy.json: registry https://other.example is not in allowed_registries (https://store.example/)"
        );
        assert!(p.check_plugin(&"acme.clock".parse().unwrap()).is_ok());
        assert!(p.check_plugin(&"acme.spy".parse().unwrap()).unwrap_err().rule.contains("denied_plugins"));
        assert!(p.check_plugin(&"contoso.x".parse().unwrap()).unwrap_err().rule.contains("vendor contoso"));
        assert!(p.check_remove(&"acme.clock".parse().unwrap()).unwrap_err().rule.contains("forced_plugins"));
        assert_eq!(AdminPolicy::load(Path::new("/nonexistent/policy.json")).unwrap(), None);
    }
}
