//! Published security advisories: the builder's matches of the registry's OSV
//! advisories against its releases, signed by the `security` role beside the blocklist
//! (target [`crate::target::ADVISORIES_TARGET`]).
//!
//! The registry source holds advisories in OSV format (`advisories/*.json`), about a
//! plugin (ecosystem `Trellis`, name = plugin id) or about a third-party component that
//! plugins bundle (any other ecosystem, or a purl), listed in a release's SBOM. The
//! builder (`trellis-index`'s `advisories` module) evaluates the ranges and publishes,
//! per advisory, which releases of which plugins are affected ([`AffectedPlugin`]):
//! the client then needs no range logic, no SBOM and no OSV parser, only "is my
//! installed release in this list" ([`Advisories::findings`]).
//!
//! An advisory is a warning, not a block: the client keeps running an affected
//! release, warns at install and on update checks, and `trellis audit` lists the
//! findings. An operator who wants a release gone blocks it (the blocklist).

use serde::{Deserialize, Serialize};

pub use crate::blocklist::Severity;
use crate::id::PluginId;

/// The advisories document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Advisories {
    /// Every advisory that affects at least one release the registry serves, by id.
    pub advisories: Vec<Advisory>,
    /// SHA-256 over the registry's advisory sources this was computed from: the
    /// builder's record of whether they changed since (clients ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<crate::Sha256>,
}

/// One advisory, as far as a client needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Advisory {
    /// The OSV id (`TRELLIS-2026-0001`, `GHSA-…`, `RUSTSEC-…`).
    pub id: String,
    /// Other ids of the same vulnerability (`CVE-…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// One line saying what is wrong.
    pub summary: String,
    /// How bad; `None` when the advisory does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Where to read more (the advisory's first `ADVISORY` or `WEB` reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the advisory was last modified (RFC 3339, from OSV's `modified`).
    pub modified: String,
    /// The plugins it affects.
    pub affected: Vec<AffectedPlugin>,
}

/// The releases of one plugin an advisory affects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct AffectedPlugin {
    /// The plugin.
    pub plugin: PluginId,
    /// The component the plugin bundles that the advisory is about; `None` for an
    /// advisory about the plugin itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    /// The affected ranges as the advisory states them (`>=1.0.0, <1.2.3`): plugin
    /// versions, or component versions when `component` is set.
    pub ranges: Vec<String>,
    /// The releases of the plugin that are affected, ascending: what clients match.
    #[cfg_attr(feature = "json-schema", schemars(with = "Vec<String>"))]
    pub releases: Vec<semver::Version>,
    /// The lowest release above every affected one that is not affected: what to
    /// update to. `None` when the registry has no fixed release yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub fixed: Option<semver::Version>,
}

/// A bundled third-party component, as a release's SBOM lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Component {
    /// Its name.
    pub name: String,
    /// Its package URL (`pkg:npm/lodash`), without version, when the SBOM gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// The versions of it the affected releases bundle, ascending, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// One installed (or about to be installed) release an advisory affects.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding<'a> {
    /// The advisory.
    pub advisory: &'a Advisory,
    /// Which of its entries matched.
    pub affected: &'a AffectedPlugin,
}

impl Advisories {
    /// The advisories affecting release `version` of `plugin`, most severe first.
    pub fn findings(&self, plugin: &PluginId, version: &semver::Version) -> Vec<Finding<'_>> {
        let mut found: Vec<Finding<'_>> = self
            .advisories
            .iter()
            .flat_map(|advisory| {
                advisory
                    .affected
                    .iter()
                    .filter(|a| &a.plugin == plugin && a.releases.contains(version))
                    .map(move |affected| Finding { advisory, affected })
            })
            .collect();
        found.sort_by(|a, b| b.advisory.severity.cmp(&a.advisory.severity).then(a.advisory.id.cmp(&b.advisory.id)));
        found
    }
}

impl std::fmt::Display for Finding<'_> {
    /// `GHSA-xxxx (high severity): summary; in component lodash 4.17.20; fixed in 1.2.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let advisory = self.advisory;
        write!(f, "{}", advisory.id)?;
        match advisory.severity {
            Some(severity) => write!(f, " ({} severity)", severity_word(severity))?,
            None => write!(f, " (unrated)")?,
        }
        write!(f, ": {}", advisory.summary)?;
        if let Some(component) = &self.affected.component {
            write!(f, "; in bundled component {}", component.name)?;
            if !component.versions.is_empty() {
                write!(f, " {}", component.versions.join(", "))?;
            }
        }
        match &self.affected.fixed {
            Some(fixed) => write!(f, "; fixed in {fixed}"),
            None => write!(f, "; no fixed release yet"),
        }
    }
}

/// The lowercase word of a severity (`critical`).
pub fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(id: &str, severity: Option<Severity>, releases: &[&str]) -> Advisory {
        Advisory {
            id: id.into(),
            aliases: vec![],
            summary: "s".into(),
            severity,
            url: None,
            modified: "2026-11-30T00:00:00Z".into(),
            affected: vec![AffectedPlugin {
                plugin: "acme.clock".parse().unwrap(),
                component: None,
                ranges: vec!["<1.2.0".into()],
                releases: releases.iter().map(|v| v.parse().unwrap()).collect(),
                fixed: Some("1.2.0".parse().unwrap()),
            }],
        }
    }

    #[test]
    fn findings_match_listed_releases_only_most_severe_first() {
        let doc = Advisories {
            source_sha256: None,
            advisories: vec![
                advisory("A-1", Some(Severity::Low), &["1.0.0", "1.1.0"]),
                advisory("A-2", Some(Severity::Critical), &["1.1.0"]),
                advisory("A-3", None, &["1.1.0"]),
            ],
        };
        let id: PluginId = "acme.clock".parse().unwrap();
        let ids = |v: &str| -> Vec<String> {
            doc.findings(&id, &v.parse().unwrap()).iter().map(|f| f.advisory.id.clone()).collect()
        };
        assert_eq!(ids("1.1.0"), ["A-2", "A-1", "A-3"]);
        assert_eq!(ids("1.0.0"), ["A-1"]);
        assert!(ids("1.2.0").is_empty());
        assert!(doc.findings(&"acme.other".parse().unwrap(), &"1.0.0".parse().unwrap()).is_empty());
        assert_eq!(
            doc.findings(&id, &"1.1.0".parse().unwrap())[0].to_string(),
            "A-2 (critical severity): s; fixed in 1.2.0"
        );
    }

    #[test]
    fn unknown_members_are_refused_at_the_top() {
        let err = crate::json::from_slice::<Advisories>(br#"{"advisories": [], "extra": 1}"#).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }
}
