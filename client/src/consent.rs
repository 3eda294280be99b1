//! Permission disclosure and (re-)consent.
//!
//! Before a release is installed, and whenever an update asks for more than the user
//! agreed to, the user sees what the plugin will be able to do, in plain words from the
//! permission catalog (`trellis_schema::permission`), riskiest first, and must agree.
//!
//! This module owns the decision ([`check`]: is consent needed, and what to show) and
//! the record of what was agreed ([`Consents`], stored in the state file). The rule:
//! consent is needed for every permission `type:scope` of the new release that the user
//! has not agreed to for the release being replaced or for the new release itself.
//! Reasons are not part of a permission's identity (a reworded reason needs no new
//! consent). A scope this client's catalog does not know is shown as high risk: fail
//! closed. Asking the user and drawing the list are the binary's or host's job.
//!
//! The permissions passed in are always the developer-signed manifest's: the store
//! discloses a release's permissions from its verified envelope, and those of the
//! release being replaced from the envelope kept beside its installed files, never
//! from an index doc (see `store::fetch`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};
use trellis_schema::PluginId;
use trellis_schema::permission::{Permission, PermissionKind, Risk};

/// What the user agreed to, per plugin and release: the permission keys (`type:scope`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Consents(BTreeMap<PluginId, BTreeMap<Version, BTreeSet<String>>>);

impl Consents {
    /// Records that the user agreed to `permissions` for `plugin` at `version`.
    pub fn grant(&mut self, plugin: &PluginId, version: &Version, permissions: &[Permission]) {
        let keys = permissions.iter().map(Permission::key).collect();
        self.0.entry(plugin.clone()).or_default().insert(version.clone(), keys);
    }

    /// The keys agreed to for `plugin` at `version`, if the user was ever asked.
    pub fn granted(&self, plugin: &PluginId, version: &Version) -> Option<&BTreeSet<String>> {
        self.0.get(plugin)?.get(version)
    }

    /// Forgets every consent of `plugin` (after its removal).
    pub fn forget(&mut self, plugin: &PluginId) {
        self.0.remove(plugin);
    }

    /// Keeps only the consents of `plugin` for the releases in `versions` (the active
    /// and the kept previous one), so the record does not grow forever.
    pub fn retain_versions(&mut self, plugin: &PluginId, versions: &[&Version]) {
        if let Some(by_version) = self.0.get_mut(plugin) {
            by_version.retain(|v, _| versions.contains(&v));
            if by_version.is_empty() {
                self.0.remove(plugin);
            }
        }
    }

    /// Plugins with at least one consent.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginId> {
        self.0.keys()
    }
}

/// The release a consent question is about, and the one it replaces.
#[derive(Clone, Copy, Debug)]
pub struct ConsentQuery<'a> {
    /// The plugin.
    pub plugin: &'a PluginId,
    /// The release about to be installed.
    pub version: &'a Version,
    /// Its permissions (from the signed release manifest or index doc).
    pub permissions: &'a [Permission],
    /// The release being replaced and its permissions; `None` for a first install.
    pub replaces: Option<(&'a Version, &'a [Permission])>,
}

/// Whether a permission is new compared with the release being replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Not asked for by the replaced release (or a first install).
    New,
    /// Already asked for by the replaced release.
    Unchanged,
}

/// One permission as shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisclosedPermission {
    /// `type:scope`.
    pub key: String,
    /// Permission type.
    pub kind: PermissionKind,
    /// Scope.
    pub scope: String,
    /// Plain words completing "This plugin can …".
    pub plain: String,
    /// Risk level; [`Risk::High`] for scopes this client does not know.
    pub risk: Risk,
    /// The developer's reason.
    pub reason: String,
    /// New compared with the replaced release.
    pub change: Change,
    /// Whether the user still has to agree to it.
    pub needs_consent: bool,
}

impl fmt::Display for DisclosedPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let risk = match self.risk {
            Risk::Low => "low risk",
            Risk::Medium => "medium risk",
            Risk::High => "high risk",
        };
        write!(f, "{} ({risk}); the developer says: {}", self.plain, self.reason)
    }
}

/// Everything to show for one release: all its permissions, those needing consent first,
/// then by risk (highest first), then by key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disclosure {
    /// The plugin.
    pub plugin: PluginId,
    /// The release.
    pub version: Version,
    /// Every permission of the release.
    pub permissions: Vec<DisclosedPermission>,
}

impl Disclosure {
    /// The permissions the user has not agreed to yet.
    pub fn unconsented(&self) -> impl Iterator<Item = &DisclosedPermission> {
        self.permissions.iter().filter(|p| p.needs_consent)
    }

    /// The highest risk among the permissions needing consent.
    pub fn highest_risk(&self) -> Option<Risk> {
        self.unconsented().map(|p| p.risk).max()
    }
}

/// The answer of [`check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "consent", rename_all = "snake_case")]
pub enum ConsentCheck {
    /// Everything the release asks for was agreed to already; carries the disclosure
    /// anyway, for a UI that shows permissions on every install.
    NotNeeded(Disclosure),
    /// The user must agree to [`Disclosure::unconsented`] before the release is used.
    Needed(Disclosure),
}

impl ConsentCheck {
    /// Whether the user must be asked.
    pub fn is_needed(&self) -> bool {
        matches!(self, Self::Needed(_))
    }

    /// The disclosure, needed or not.
    pub fn disclosure(&self) -> &Disclosure {
        match self {
            Self::NotNeeded(d) | Self::Needed(d) => d,
        }
    }
}

/// Decides whether `query`'s release needs the user's consent, and what to show.
pub fn check(query: ConsentQuery<'_>, consents: &Consents) -> ConsentCheck {
    let empty = BTreeSet::new();
    let agreed_new = consents.granted(query.plugin, query.version).unwrap_or(&empty);
    let agreed_old = query.replaces.and_then(|(v, _)| consents.granted(query.plugin, v)).unwrap_or(&empty);
    let old_permissions = query.replaces.map_or(&[][..], |(_, p)| p);

    let mut seen = BTreeSet::new();
    let mut permissions: Vec<DisclosedPermission> = query
        .permissions
        .iter()
        .filter(|p| seen.insert(p.key()))
        .map(|p| {
            let key = p.key();
            let (plain, risk) = match p.info() {
                Some(info) => (info.plain.to_owned(), info.risk),
                None => {
                    (format!("use the permission {key}, which this version of the store does not know"), Risk::High)
                }
            };
            let change = if old_permissions.iter().any(|o| o.kind == p.kind && o.scope == p.scope) {
                Change::Unchanged
            } else {
                Change::New
            };
            DisclosedPermission {
                needs_consent: !agreed_new.contains(&key) && !agreed_old.contains(&key),
                key,
                kind: p.kind,
                scope: p.scope.clone(),
                plain,
                risk,
                reason: p.reason.clone(),
                change,
            }
        })
        .collect();
    permissions
        .sort_by(|a, b| (b.needs_consent, b.risk, a.change, &a.key).cmp(&(a.needs_consent, a.risk, b.change, &b.key)));
    let disclosure = Disclosure { plugin: query.plugin.clone(), version: query.version.clone(), permissions };
    if disclosure.unconsented().next().is_some() {
        ConsentCheck::Needed(disclosure)
    } else {
        ConsentCheck::NotNeeded(disclosure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermissionKind, scope: &str) -> Permission {
        Permission { kind, scope: scope.into(), reason: format!("needs {scope}") }
    }

    fn clock() -> PluginId {
        "acme.clock".parse().unwrap()
    }

    fn keys(check: &ConsentCheck) -> Vec<&str> {
        check.disclosure().unconsented().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn first_install_with_permissions_needs_consent_riskiest_first() {
        let perms = [
            perm(PermissionKind::Notifications, "show"),
            perm(PermissionKind::Shell, "execute"),
            perm(PermissionKind::Network, "internet"),
        ];
        let v = Version::new(1, 0, 0);
        let check = check(
            ConsentQuery { plugin: &clock(), version: &v, permissions: &perms, replaces: None },
            &Consents::default(),
        );
        assert!(check.is_needed());
        assert_eq!(keys(&check), ["shell:execute", "network:internet", "notifications:show"]);
        let first = &check.disclosure().permissions[0];
        assert_eq!(first.plain, "run shell commands");
        assert_eq!(first.change, Change::New);
        assert_eq!(check.disclosure().highest_risk(), Some(Risk::High));
        assert_eq!(first.to_string(), "run shell commands (high risk); the developer says: needs execute");
    }

    #[test]
    fn first_install_without_permissions_needs_no_consent() {
        let v = Version::new(1, 0, 0);
        let check = check(
            ConsentQuery { plugin: &clock(), version: &v, permissions: &[], replaces: None },
            &Consents::default(),
        );
        assert!(!check.is_needed());
        assert!(check.disclosure().permissions.is_empty());
    }

    #[test]
    fn update_with_the_same_permissions_and_new_reasons_needs_no_consent() {
        let old = [perm(PermissionKind::Network, "internet")];
        let mut new = old.clone();
        new[0].reason = "reworded".into();
        let (v1, v2) = (Version::new(1, 0, 0), Version::new(1, 1, 0));
        let mut consents = Consents::default();
        consents.grant(&clock(), &v1, &old);
        let check = check(
            ConsentQuery { plugin: &clock(), version: &v2, permissions: &new, replaces: Some((&v1, &old)) },
            &consents,
        );
        assert!(!check.is_needed());
        assert_eq!(check.disclosure().permissions[0].change, Change::Unchanged);
    }

    #[test]
    fn update_that_grows_permissions_asks_only_for_the_added_ones() {
        let old = [perm(PermissionKind::Network, "internet")];
        let new = [perm(PermissionKind::Network, "internet"), perm(PermissionKind::Clipboard, "read")];
        let (v1, v2) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
        let mut consents = Consents::default();
        consents.grant(&clock(), &v1, &old);
        let query = ConsentQuery { plugin: &clock(), version: &v2, permissions: &new, replaces: Some((&v1, &old)) };
        let answer = check(query, &consents);
        assert!(answer.is_needed());
        assert_eq!(keys(&answer), ["clipboard:read"]);
        assert_eq!(answer.disclosure().permissions.len(), 2, "the whole set is still shown");

        consents.grant(&clock(), &v2, &new);
        assert!(!check(query, &consents).is_needed(), "consent given for the new release is remembered");
    }

    #[test]
    fn permissions_of_the_old_release_without_a_recorded_consent_are_asked_again() {
        // A state rebuilt by `repair` has no consents: fail closed.
        let old = [perm(PermissionKind::Network, "internet")];
        let (v1, v2) = (Version::new(1, 0, 0), Version::new(1, 1, 0));
        let query = ConsentQuery { plugin: &clock(), version: &v2, permissions: &old, replaces: Some((&v1, &old)) };
        let answer = check(query, &Consents::default());
        assert_eq!(keys(&answer), ["network:internet"]);
        assert_eq!(answer.disclosure().permissions[0].change, Change::Unchanged);
    }

    #[test]
    fn unknown_scope_is_shown_as_high_risk() {
        let perms = [perm(PermissionKind::Filesystem, "whole_universe")];
        let v = Version::new(1, 0, 0);
        let answer = check(
            ConsentQuery { plugin: &clock(), version: &v, permissions: &perms, replaces: None },
            &Consents::default(),
        );
        let shown = &answer.disclosure().permissions[0];
        assert_eq!(shown.risk, Risk::High);
        assert!(shown.plain.contains("filesystem:whole_universe"), "{}", shown.plain);
    }

    #[test]
    fn disclosure_reads_in_plain_words() {
        let old = [perm(PermissionKind::Network, "internet"), perm(PermissionKind::Notifications, "show")];
        let new = [
            perm(PermissionKind::Network, "internet"),
            perm(PermissionKind::Notifications, "show"),
            perm(PermissionKind::Filesystem, "user_documents"),
            perm(PermissionKind::Process, "any"),
        ];
        let (v1, v2) = (Version::new(1, 4, 2), Version::new(2, 0, 0));
        let mut consents = Consents::default();
        consents.grant(&clock(), &v1, &old);
        let answer = check(
            ConsentQuery { plugin: &clock(), version: &v2, permissions: &new, replaces: Some((&v1, &old)) },
            &consents,
        );
        let lines: Vec<String> = answer
            .disclosure()
            .permissions
            .iter()
            .map(|p| {
                let change = if p.change == Change::New { "new" } else { "unchanged" };
                let consent = if p.needs_consent { "asks consent" } else { "agreed before" };
                format!("[{change}, {consent}] This plugin can {p}")
            })
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn consents_keep_only_the_versions_asked_for() {
        let perms = [perm(PermissionKind::Network, "internet")];
        let mut consents = Consents::default();
        let versions: Vec<Version> = (0..3).map(|m| Version::new(1, m, 0)).collect();
        for v in &versions {
            consents.grant(&clock(), v, &perms);
        }
        consents.retain_versions(&clock(), &[&versions[1], &versions[2]]);
        assert!(consents.granted(&clock(), &versions[0]).is_none());
        assert!(consents.granted(&clock(), &versions[2]).is_some());
        consents.retain_versions(&clock(), &[]);
        assert_eq!(consents.plugins().count(), 0);
        let json = serde_json::to_string(&{
            let mut c = Consents::default();
            c.grant(&clock(), &versions[0], &perms);
            c
        })
        .unwrap();
        assert_eq!(json, r#"{"acme.clock":{"1.0.0":["network:internet"]}}"#);
    }
}
