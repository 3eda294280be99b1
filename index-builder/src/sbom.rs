//! Software bills of materials: the third-party components a package says it bundles.
//!
//! A package may carry one SBOM at a known path, [`CYCLONEDX_PATH`] (CycloneDX JSON,
//! nested components included) or [`SPDX_PATH`] (SPDX 2.x JSON, packages with their
//! `purl` external references). `lint` reads it (so a broken or oversized SBOM is a
//! finding in the pull-request check and refuses the release at build time), and the
//! builder matches the components against component advisories (`advisories`).
//!
//! Work is bounded before parsing: the file's size comes from the package's content
//! manifest and one over [`SbomLimits::max_bytes`] is not read at all; the component
//! count is capped after parsing; nesting is capped by `serde_json`'s recursion limit.

use serde::{Deserialize, Serialize};

/// Where a CycloneDX SBOM sits in a package.
pub const CYCLONEDX_PATH: &str = "docs/sbom.cdx.json";
/// Where an SPDX SBOM sits in a package.
pub const SPDX_PATH: &str = "docs/sbom.spdx.json";

/// Bounds on reading an SBOM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SbomLimits {
    /// Largest SBOM read: 8 MiB (a large application's SBOM of ~10k components is
    /// a few MiB).
    pub max_bytes: u64,
    /// Most components kept: 50 000.
    pub max_components: usize,
}

impl Default for SbomLimits {
    fn default() -> Self {
        Self { max_bytes: 8 << 20, max_components: 50_000 }
    }
}

/// One component an SBOM lists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SbomComponent {
    /// Its name.
    pub name: String,
    /// Its version, when given.
    pub version: Option<String>,
    /// Its package URL, when given (`pkg:npm/lodash@4.17.20`).
    pub purl: Option<String>,
}

/// Why an SBOM was not used. The message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    /// Larger than [`SbomLimits::max_bytes`].
    #[error("{path} is {size} bytes; an SBOM may be at most {max} bytes: list only the bundled components")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// More components than [`SbomLimits::max_components`].
    #[error("{path} lists {count} components; at most {max} are read")]
    TooManyComponents {
        /// The file.
        path: String,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The file could not be read from the package or tree.
    #[error("{path} cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not the JSON of its format.
    #[error("{path} is not {format} JSON: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// `CycloneDX` or `SPDX`.
        format: &'static str,
        /// The parser's message.
        reason: String,
    },
}

#[derive(Deserialize)]
struct CycloneDx {
    #[serde(rename = "bomFormat")]
    bom_format: String,
    #[serde(default)]
    components: Vec<CdxComponent>,
}

#[derive(Deserialize)]
struct CdxComponent {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    components: Vec<CdxComponent>,
}

#[derive(Deserialize)]
struct Spdx {
    #[serde(rename = "spdxVersion")]
    spdx_version: String,
    #[serde(default)]
    packages: Vec<SpdxPackage>,
}

#[derive(Deserialize)]
struct SpdxPackage {
    name: String,
    #[serde(default, rename = "versionInfo")]
    version_info: Option<String>,
    #[serde(default, rename = "externalRefs")]
    external_refs: Vec<SpdxRef>,
}

#[derive(Deserialize)]
struct SpdxRef {
    #[serde(rename = "referenceType")]
    reference_type: String,
    #[serde(rename = "referenceLocator")]
    reference_locator: String,
}

/// Checks the size of the SBOM at `path` (one of the known paths) before reading it.
pub fn check_size(path: &str, size: u64, limits: &SbomLimits) -> Result<(), SbomError> {
    if size > limits.max_bytes {
        return Err(SbomError::TooLarge { path: path.to_owned(), size, max: limits.max_bytes });
    }
    Ok(())
}

/// Parses the SBOM `bytes` read from `path` ([`CYCLONEDX_PATH`] or [`SPDX_PATH`]).
pub fn parse(path: &str, bytes: &[u8], limits: &SbomLimits) -> Result<Vec<SbomComponent>, SbomError> {
    check_size(path, bytes.len() as u64, limits)?;
    let mut out = Vec::new();
    if path == SPDX_PATH {
        let malformed = |reason: String| SbomError::Malformed { path: path.to_owned(), format: "SPDX", reason };
        let doc: Spdx = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if !doc.spdx_version.starts_with("SPDX-2.") {
            return Err(malformed(format!("spdxVersion is {:?}; SPDX-2.x is read", doc.spdx_version)));
        }
        for package in doc.packages {
            let purl =
                package.external_refs.into_iter().find(|r| r.reference_type == "purl").map(|r| r.reference_locator);
            out.push(SbomComponent { name: package.name, version: package.version_info, purl });
        }
    } else {
        let malformed = |reason: String| SbomError::Malformed { path: path.to_owned(), format: "CycloneDX", reason };
        let doc: CycloneDx = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if doc.bom_format != "CycloneDX" {
            return Err(malformed(format!("bomFormat is {:?}, not \"CycloneDX\"", doc.bom_format)));
        }
        let mut todo = doc.components;
        while let Some(c) = todo.pop() {
            todo.extend(c.components);
            out.push(SbomComponent { name: c.name, version: c.version, purl: c.purl });
        }
    }
    if out.len() > limits.max_components {
        return Err(SbomError::TooManyComponents {
            path: path.to_owned(),
            count: out.len(),
            max: limits.max_components,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_cyclonedx_and_spdx_purls() {
        let cdx = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"type":"library","name":"lodash","version":"4.17.20","purl":"pkg:npm/lodash@4.17.20",
             "components":[{"name":"inner","version":"1.0"}]}]}"#;
        let found = parse(CYCLONEDX_PATH, cdx, &SbomLimits::default()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].purl.as_deref(), Some("pkg:npm/lodash@4.17.20"));
        assert_eq!(found[0].name, "inner");

        let spdx = br#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"zlib","versionInfo":"1.2.11",
            "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:generic/zlib@1.2.11"}]}]}"#;
        let found = parse(SPDX_PATH, spdx, &SbomLimits::default()).unwrap();
        assert_eq!(found[0].version.as_deref(), Some("1.2.11"));
        assert_eq!(found[0].purl.as_deref(), Some("pkg:generic/zlib@1.2.11"));
    }

    #[test]
    fn refuses_wrong_formats_and_bounds() {
        let limits = SbomLimits { max_bytes: 200, max_components: 1 };
        let err = parse(CYCLONEDX_PATH, br#"{"bomFormat":"SPDX"}"#, &limits).unwrap_err();
        assert!(err.to_string().contains("docs/sbom.cdx.json is not CycloneDX JSON: bomFormat is \"SPDX\""), "{err}");
        let err = parse(SPDX_PATH, b"[1,", &limits).unwrap_err();
        assert!(err.to_string().starts_with("docs/sbom.spdx.json is not SPDX JSON"), "{err}");
        let two = br#"{"bomFormat":"CycloneDX","components":[{"name":"a"},{"name":"b"}]}"#;
        assert!(matches!(parse(CYCLONEDX_PATH, two, &limits), Err(SbomError::TooManyComponents { count: 2, .. })));
        let err = check_size(CYCLONEDX_PATH, 100 << 20, &SbomLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "docs/sbom.cdx.json is 104857600 bytes; an SBOM may be at most 8388608 bytes: list only the bundled components"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut text = String::from(r#"{"bomFormat":"CycloneDX","components":"#);
        for _ in 0..5000 {
            text.push_str(r#"[{"name":"x","components":"#);
        }
        let err = parse(CYCLONEDX_PATH, text.as_bytes(), &SbomLimits::default()).unwrap_err();
        assert!(matches!(err, SbomError::Malformed { .. }), "{err}");
    }
}
