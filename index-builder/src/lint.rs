//! `lint`: the store-compatibility check a developer runs locally and in CI.
//!
//! Takes a plugin source tree or a package and reports every problem the store would
//! refuse it for: plugin.json schema and semantics, the portable name policy, size
//! limits, the license file, icons and their pixel sizes, platform directories and
//! entry points; for a package also the hardened structural checks (the same code the
//! client installs with), content manifest ⇔ contents, and the developer signature in
//! `<package>.dsse` when present (against a publisher record when one is given).
//!
//! The record a pull-request check lints with comes from [`submitted_publisher`]: the
//! submitted record chain, accepted only as a valid extension of the *trusted* chain of
//! the base branch (never the pull request's own copy alone), so a submission cannot
//! add its own key to a publisher and then pass lint with it.
//!
//! Lint never writes anything. Packing is [`crate::pack`], signing [`crate::sign`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use trellis_client::package::{Durability, Limits, Package};
use trellis_schema::VendorId;
use trellis_schema::analysis::ReleaseAnalysis;
use trellis_schema::dsse::Envelope;
use trellis_schema::key::KeyId;
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ReleaseManifest};
use trellis_schema::permission::Risk;
use trellis_schema::plugin::{METADATA_PATH, PluginMetadata};
use trellis_schema::publisher::{ChainError, ChainLimits, PublisherChain, PublisherRecord, RecoverySigners};
use trellis_schema::validate::{self, PackageFile, Problem, Severity};

use crate::analysis::{self, AnalysisOptions, FileOnDisk};
use crate::{sign, source_tree};

/// Bytes of each file read for format checks.
const HEAD_LEN: usize = 32;

/// What was linted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A plugin source tree.
    Directory,
    /// A package file.
    Package,
}

/// The developer signature found beside a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum SignatureStatus {
    /// No `.dsse` file (or a directory was linted).
    Absent,
    /// The envelope vouches for exactly this package; its signers were not checked
    /// because no publisher record was given.
    Unchecked {
        /// Key ids that signed.
        signers: Vec<KeyId>,
    },
    /// Verified against the given publisher record.
    Verified {
        /// The publisher.
        publisher: String,
    },
    /// The envelope is wrong; see the problems.
    Invalid,
}

/// Options of [`lint`].
#[derive(Clone, Debug, Default)]
pub struct LintOptions {
    /// Check the signature against this publisher record.
    pub publisher: Option<PublisherRecord>,
    /// Scanners and the sandboxed run (the static capability analysis always runs,
    /// unless `skip_analysis`).
    pub analysis: AnalysisOptions,
    /// Check a package without analysing it: no extraction, no static analysis, no
    /// scanners, no sandbox (the report's `analysis` is `None`). `build` sets it for a
    /// release the site already published, whose analysis it carries over.
    pub skip_analysis: bool,
}

/// The result of [`lint`].
#[derive(Clone, Debug, Serialize)]
pub struct LintReport {
    /// The path linted.
    pub target: PathBuf,
    /// Tree or package.
    pub kind: Target,
    /// `id version`, when plugin.json could be read.
    pub release: Option<String>,
    /// Every problem, errors and warnings.
    pub problems: Vec<Problem>,
    /// The developer signature.
    pub signature: SignatureStatus,
    /// The permissions `plugin.json` asks for, with their risk (empty when it is not
    /// valid): what a pull-request check decides manual review from.
    pub permissions: Vec<PermissionSummary>,
    /// What the package really does (capabilities with evidence, scanner verdicts,
    /// the sandboxed run): the summary `build` publishes in the index entry. Absent
    /// when the package could not be opened.
    pub analysis: Option<ReleaseAnalysis>,
    /// The package's `plugin.json`, when it is valid.
    #[serde(skip)]
    pub metadata: Option<PluginMetadata>,
    /// The bundled components its SBOM lists ([`crate::sbom`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<crate::sbom::SbomComponent>,
}

/// One permission a release asks for, as `lint --json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PermissionSummary {
    /// `type:scope`, the identity of a permission.
    pub permission: String,
    /// The catalog's risk level (`None` for a scope the catalog does not know, which
    /// is also a lint error).
    pub risk: Option<Risk>,
}

fn permission_summaries(meta: Option<&PluginMetadata>) -> Vec<PermissionSummary> {
    meta.map(|m| {
        m.permissions
            .iter()
            .map(|p| PermissionSummary { permission: p.key(), risk: p.info().map(|i| i.risk) })
            .collect()
    })
    .unwrap_or_default()
}

impl LintReport {
    /// Whether the store would accept it (no errors; warnings allowed).
    pub fn is_clean(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// The target does not exist or cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot lint {}: {source}", path.display())]
pub struct LintError {
    /// The target.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Why a submitted publisher record chain cannot be linted with.
#[derive(Debug, thiserror::Error)]
pub enum PublisherCheckError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file name is not `<publisher id>.json`.
    #[error("{}: a publisher record file is named <publisher id>.json", path.display())]
    Name {
        /// The file.
        path: PathBuf,
    },
    /// The chain (submitted or trusted) is refused.
    #[error("{}: {chain}", path.display())]
    Chain {
        /// The file.
        path: PathBuf,
        /// Why.
        chain: ChainError,
    },
    /// The submitted chain rewrites the trusted one instead of appending to it.
    #[error(
        "{}: does not keep the {trusted} version(s) of the trusted record ({}) unchanged; a record changes only by appending a version signed by the current keys",
        submitted.display(), trusted_path.display()
    )]
    Rewritten {
        /// The submitted file.
        submitted: PathBuf,
        /// The trusted file.
        trusted_path: PathBuf,
        /// Versions in the trusted chain.
        trusted: usize,
    },
}

/// The newest record of the submitted chain at `submitted`, once it verified: from
/// version 1 when there is no `trusted` chain (a new publisher), else as a valid
/// extension of the trusted chain (the base branch's copy). `root` (the base branch's
/// newest root) supplies the recovery signers (its `targets` role); without it a
/// recovery version is refused here (the build checks it against the registry's root).
pub fn submitted_publisher(
    submitted: &Path,
    trusted: Option<&Path>,
    root: Option<&trellis_schema::tuf::Root>,
) -> Result<PublisherRecord, PublisherCheckError> {
    let limits = ChainLimits::default();
    let (recovery_keys, recovery_threshold) = root.map(crate::registry::recovery_keys).unwrap_or_default();
    let recovery = root.map(|_| RecoverySigners { keys: &recovery_keys, threshold: recovery_threshold });
    let read = |path: &Path| -> Result<(VendorId, PublisherChain), PublisherCheckError> {
        let vendor: VendorId = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| PublisherCheckError::Name { path: path.to_owned() })?;
        let bytes = std::fs::read(path).map_err(|source| PublisherCheckError::Io { path: path.to_owned(), source })?;
        let chain = PublisherChain::from_slice(&vendor, &bytes, &limits)
            .map_err(|chain| PublisherCheckError::Chain { path: path.to_owned(), chain })?;
        Ok((vendor, chain))
    };
    let (vendor, chain) = read(submitted)?;
    let base = match trusted {
        Some(path) => {
            let (_, base) = read(path)?;
            base.verify(&vendor, None, recovery, &limits)
                .map_err(|chain| PublisherCheckError::Chain { path: path.to_owned(), chain })?;
            if !chain.extends(&base) {
                return Err(PublisherCheckError::Rewritten {
                    submitted: submitted.to_owned(),
                    trusted_path: path.to_owned(),
                    trusted: base.records.len(),
                });
            }
            Some(base)
        }
        None => None,
    };
    let pinned = base.as_ref().and_then(PublisherChain::head);
    let verified = chain
        .verify(&vendor, pinned, recovery, &limits)
        .map_err(|chain| PublisherCheckError::Chain { path: submitted.to_owned(), chain })?;
    Ok(verified.head.signed.clone())
}

/// Lints a plugin source tree or a package.
pub fn lint(path: &Path, options: &LintOptions) -> Result<LintReport, LintError> {
    let metadata = std::fs::metadata(path).map_err(|source| LintError { path: path.to_owned(), source })?;
    if metadata.is_dir() { lint_directory(path, options) } else { Ok(lint_package(path, options)) }
}

fn lint_directory(root: &Path, options: &LintOptions) -> Result<LintReport, LintError> {
    let mut problems = Vec::new();
    let (meta, release) = match std::fs::read(root.join(METADATA_PATH)) {
        Ok(bytes) => (metadata_problems(&bytes, &mut problems), release_label(&bytes)),
        Err(e) => {
            problems.push(Problem::error(METADATA_PATH, format!("cannot read it: {e}")));
            (None, None)
        }
    };
    let scan = source_tree::scan(root).map_err(|e| LintError { path: e.path, source: e.source })?;
    problems.extend(scan.limit_problems(&Limits::default()));
    problems.extend(scan.problems);
    let mut files = BTreeMap::new();
    for file in &scan.files {
        let mut head = Vec::with_capacity(HEAD_LEN);
        if let Ok(f) = std::fs::File::open(&file.disk_path) {
            let _ = f.take(HEAD_LEN as u64).read_to_end(&mut head);
        }
        files.insert(file.package_path.clone(), PackageFile { size: file.size, head });
    }
    problems.extend(match &meta {
        Some(meta) => validate::package_contents(meta, &files),
        None => validate::package_layout(&files),
    });
    let on_disk = |path: &str| {
        scan.files
            .iter()
            .find(|f| f.package_path == path)
            .map_or_else(|| Err("not found".to_owned()), |f| std::fs::read(&f.disk_path).map_err(|e| e.to_string()))
    };
    let components = read_sboms(scan.files.iter().map(|f| (f.package_path.as_str(), f.size)), on_disk, &mut problems);
    let on_disk: Vec<FileOnDisk> = scan
        .files
        .iter()
        .map(|f| FileOnDisk { package_path: f.package_path.clone(), disk_path: f.disk_path.clone() })
        .collect();
    let found = analysis::analyse(root, &on_disk, meta.as_ref(), &options.analysis);
    problems.extend(found.problems);
    Ok(LintReport {
        target: root.to_owned(),
        kind: Target::Directory,
        release,
        problems,
        signature: SignatureStatus::Absent,
        permissions: permission_summaries(meta.as_ref()),
        analysis: Some(found.summary),
        metadata: meta,
        components,
    })
}

fn lint_package(path: &Path, options: &LintOptions) -> LintReport {
    let mut report = LintReport {
        target: path.to_owned(),
        kind: Target::Package,
        release: None,
        problems: Vec::new(),
        signature: SignatureStatus::Absent,
        permissions: Vec::new(),
        analysis: None,
        metadata: None,
        components: Vec::new(),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > crate::registry::MAX_LOCAL_PACKAGE
    {
        report
            .problems
            .push(Problem::error(path.display().to_string(), crate::registry::local_package_too_large(meta.len())));
    }
    if options.skip_analysis {
        // `verify` runs the client's hardened checks without writing anything.
        let opened = Package::open_unsigned(path, &Limits::default()).and_then(|p| p.verify().map(|()| p));
        return match opened {
            Ok(package) => check_package(path, &package, None, options, report),
            Err(e) => {
                report.problems.push(Problem::error(path.display().to_string(), e.to_string()));
                report
            }
        };
    }
    // Extracting runs every check `verify` does (the client's hardened code) and gives
    // the analysis the files on disk; nothing is flushed, and the directory goes away.
    let scratch = match tempfile::Builder::new().prefix("trellis-lint-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            report
                .problems
                .push(Problem::error(path.display().to_string(), format!("creating a scratch directory: {e}")));
            return report;
        }
    };
    let tree = scratch.path().join("package");
    // Without scanners or a sandbox only the binaries and scripts the static analysis
    // reads are written; every file is still inflated and checked.
    let written = std::cell::RefCell::new(Vec::new());
    let opened = Package::open_unsigned(path, &Limits::default()).and_then(|p| {
        if options.analysis.static_only() {
            let meta: Option<PluginMetadata> = p.plugin_json().ok().and_then(|b| serde_json::from_slice(&b).ok());
            let entries: BTreeSet<&str> =
                meta.as_ref().map(|m| m.entry.values().map(String::as_str).collect()).unwrap_or_default();
            let select = |name: &str, head: &[u8]| {
                let read = analysis::reads(name, head, &entries);
                if read {
                    written.borrow_mut().push(name.to_owned());
                }
                read
            };
            p.extract_selected(&tree, Durability::Unflushed, &select)?;
        } else {
            p.extract_with(&tree, Durability::Unflushed)?;
            written.borrow_mut().extend(p.content_manifest().files.iter().map(|f| f.path.clone()));
        }
        Ok(p)
    });
    match opened {
        Ok(package) => {
            let mut written = written.into_inner();
            written.sort();
            let on_disk: Vec<FileOnDisk> = written
                .into_iter()
                .filter(|f| f != CONTENT_MANIFEST_PATH)
                .map(|f| FileOnDisk { disk_path: tree.join(&f), package_path: f })
                .collect();
            check_package(path, &package, Some((&tree, on_disk)), options, report)
        }
        Err(e) => {
            report.problems.push(Problem::error(path.display().to_string(), e.to_string()));
            report
        }
    }
}

/// The checks of an opened (verified) package; `tree` is where it was extracted and
/// the files written there, for the analysis (`None`: not analysed).
fn check_package(
    path: &Path,
    package: &Package,
    tree: Option<(&Path, Vec<FileOnDisk>)>,
    options: &LintOptions,
    mut report: LintReport,
) -> LintReport {
    let meta = match package.plugin_json() {
        Ok(bytes) => metadata_problems(&bytes, &mut report.problems),
        Err(e) => {
            report.problems.push(Problem::error(METADATA_PATH, e.to_string()));
            None
        }
    };
    let content = package.content_manifest();
    report.release = Some(format!("{} {}", content.plugin_id, content.version));
    let Some(meta) = meta else { return report };
    if content.plugin_id != meta.id || content.version != meta.version {
        report.problems.push(Problem::error(
            CONTENT_MANIFEST_PATH,
            format!(
                "names {} {} but plugin.json says {} {}; repack the tree",
                content.plugin_id, content.version, meta.id, meta.version
            ),
        ));
    }
    let files = package_files(package, &meta);
    report.problems.extend(validate::package_contents(&meta, &files));
    report.components = sbom_components(package, &mut report.problems);
    if let Some((tree, on_disk)) = tree {
        let found = analysis::analyse(tree, &on_disk, Some(&meta), &options.analysis);
        report.problems.extend(found.problems.into_iter().map(|problem| match problem.severity {
            Severity::Error if options.analysis.reanalyse => Problem {
                severity: Severity::Warning,
                message: format!("{}{}", problem.message, analysis::PUBLISHED_FINDING),
                ..problem
            },
            _ => problem,
        }));
        report.analysis = Some(found.summary);
    }
    report.signature = check_envelope(path, package, &meta, options, &mut report.problems);
    report.permissions = permission_summaries(Some(&meta));
    report.metadata = Some(meta);
    report
}

fn metadata_problems(bytes: &[u8], problems: &mut Vec<Problem>) -> Option<PluginMetadata> {
    let (meta, found) = match serde_json::from_slice(bytes) {
        Ok(value) => validate::plugin_metadata_report(&value),
        Err(_) => (None, validate::plugin_metadata_bytes(bytes).err().map(|p| p.0).unwrap_or_default()),
    };
    problems.extend(found.into_iter().map(|p| p.in_file(METADATA_PATH)));
    meta
}

/// `id version` as plugin.json states them, valid or not.
fn release_label(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(format!("{} {}", value.get("id")?.as_str()?, value.get("version")?.as_str()?))
}

/// Sizes from the content manifest; heads of the files format checks look at.
fn package_files(package: &Package, meta: &PluginMetadata) -> BTreeMap<String, PackageFile> {
    let mut images: Vec<&str> = meta.screenshots.iter().map(|s| s.url.as_str()).collect();
    if let Some(icons) = &meta.icons {
        images.extend([icons.small.as_str(), icons.medium.as_str(), icons.large.as_str()]);
    }
    package
        .content_manifest()
        .files
        .iter()
        .map(|file| {
            let head = if images.contains(&file.path.as_str()) {
                let mut bytes = package.read_small(&file.path).unwrap_or_default();
                bytes.truncate(HEAD_LEN);
                bytes
            } else {
                Vec::new()
            };
            (file.path.clone(), PackageFile { size: file.size, head })
        })
        .collect()
}

/// The components of the package's SBOM, if it has one.
fn sbom_components(package: &Package, problems: &mut Vec<Problem>) -> Vec<crate::sbom::SbomComponent> {
    let files = package.content_manifest().files.iter().map(|f| (f.path.as_str(), f.size));
    read_sboms(files, |path| package.read_small(path).map_err(|e| e.to_string()), problems)
}

/// The components of the SBOMs among `files` (path and size); a broken or oversized
/// SBOM is an error naming it (its size is checked before `read` is called).
fn read_sboms<'a>(
    files: impl Iterator<Item = (&'a str, u64)>,
    read: impl Fn(&str) -> Result<Vec<u8>, String>,
    problems: &mut Vec<Problem>,
) -> Vec<crate::sbom::SbomComponent> {
    use crate::sbom;
    let limits = sbom::SbomLimits::default();
    let mut found = Vec::new();
    for (path, size) in files.filter(|(path, _)| [sbom::CYCLONEDX_PATH, sbom::SPDX_PATH].contains(path)) {
        let parsed = sbom::check_size(path, size, &limits).and_then(|()| {
            let bytes = read(path).map_err(|reason| sbom::SbomError::Unreadable { path: path.to_owned(), reason })?;
            sbom::parse(path, &bytes, &limits)
        });
        match parsed {
            Ok(components) => {
                // Advisories name components by package URL: one without a purl is one
                // no advisory will ever match, which a reviewer should know.
                let unnamed: Vec<&str> =
                    components.iter().filter(|c| c.purl.is_none()).map(|c| c.name.as_str()).collect();
                if !unnamed.is_empty() {
                    let shown: Vec<&str> = unnamed.iter().copied().take(5).collect();
                    let more = if unnamed.len() > shown.len() {
                        format!(" and {} more", unnamed.len() - shown.len())
                    } else {
                        String::new()
                    };
                    problems.push(Problem {
                        path: path.to_owned(),
                        message: format!(
                            "{} component(s) have no purl ({}{more}): advisories are matched by package URL, \
                             so none will ever name them; give each a purl (pkg:npm/NAME, pkg:cargo/NAME, ...)",
                            unnamed.len(),
                            shown.join(", ")
                        ),
                        severity: Severity::Warning,
                    });
                }
                found.extend(components);
            }
            Err(e) => {
                let message = e.to_string();
                let message = message.strip_prefix(&format!("{path} ")).unwrap_or(&message).to_owned();
                problems.push(Problem::error(path, message));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn check_envelope(
    path: &Path,
    package: &Package,
    meta: &PluginMetadata,
    options: &LintOptions,
    problems: &mut Vec<Problem>,
) -> SignatureStatus {
    let envelope_path = sign::envelope_path(path);
    let where_ = envelope_path.display().to_string();
    let Ok(bytes) = std::fs::read(&envelope_path) else {
        problems.push(Problem {
            path: where_,
            message: "no developer signature; run `trellis-index sign` before submitting".into(),
            severity: Severity::Warning,
        });
        return SignatureStatus::Absent;
    };
    let mut invalid = |message: String| {
        problems.push(Problem::error(where_.clone(), message));
        SignatureStatus::Invalid
    };
    let envelope: Envelope = match trellis_schema::json::from_slice(&bytes) {
        Ok(envelope) => envelope,
        Err(e) => return invalid(format!("not a DSSE envelope: {e}")),
    };
    let signed: ReleaseManifest = match envelope.payload_bytes().map(|p| trellis_schema::json::from_slice(&p)) {
        Ok(Ok(manifest)) => manifest,
        Ok(Err(e)) => return invalid(format!("payload is not a release manifest: {e}")),
        Err(e) => return invalid(e.to_string()),
    };
    let expected = sign::release_manifest(meta, package.content_manifest(), package.digest());
    if signed != expected {
        let what = if signed.package != expected.package {
            format!(
                "signs package sha256 {} ({} bytes) but this package is sha256 {} ({} bytes)",
                signed.package.sha256, signed.package.size, expected.package.sha256, expected.package.size
            )
        } else {
            "signs a release manifest that does not match this package's plugin.json and files".to_owned()
        };
        return invalid(format!("{what}; sign the package again"));
    }
    match &options.publisher {
        None => SignatureStatus::Unchecked { signers: envelope.signatures.iter().map(|s| s.keyid.clone()).collect() },
        Some(record) => match record.verify_release(&envelope) {
            Ok(_) => SignatureStatus::Verified { publisher: record.id.to_string() },
            Err(e) => invalid(e.to_string()),
        },
    }
}
