//! What a plugin really does, against what it declares: the analysis `lint` runs on
//! every tree and package (so the pull-request check and `build` too).
//!
//! Three parts, each its own module:
//! - static capability analysis: [`binary`] lists the imports of every ELF, PE and
//!   Mach-O file, [`script`] matches pattern rules over PowerShell, shell, JavaScript
//!   and Python, and [`map`] (the data file `capabilities.toml`) says which capability
//!   each import or pattern means and which permissions allow it;
//! - malware scanners: [`scanners`] (ClamAV, YARA, the registry's known-bad hashes);
//! - a sandboxed run of the entry point on Linux: [`sandbox`].
//!
//! This module compares the capabilities found with the permissions `plugin.json`
//! declares: a capability no declared permission allows is an error naming the file,
//! the symbol or pattern and the permission to declare; a declared permission the
//! analysis could see used but did not is a warning. The result is lint
//! [`Problem`]s plus the [`ReleaseAnalysis`] summary the builder publishes in the
//! index doc. It reads files, never writes the tree.

pub mod binary;
pub mod map;
pub mod sandbox;
pub mod scanners;
pub mod script;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use trellis_schema::analysis::{CapabilityUse, Evidence, ReleaseAnalysis};
use trellis_schema::plugin::PluginMetadata;
use trellis_schema::validate::{Problem, Severity};

use self::map::{CapabilityMap, Unpermitted};

/// Evidence kept per capability in the published summary (all are counted).
pub const MAX_EVIDENCE: usize = 8;

/// Bytes of each file read to recognise binaries and `#!` lines.
const SNIFF_LEN: usize = 256;

/// What runs besides the static analysis.
#[derive(Clone, Debug, Default)]
pub struct AnalysisOptions {
    /// Malware scanners and the known-bad hash list (from `trellis-registry.json`).
    pub scanners: scanners::ScannerConfig,
    /// Run the Linux entry point in the sandbox (`lint --sandbox`).
    pub sandbox: Option<sandbox::SandboxOptions>,
    /// Analyse again a release the published site already lists with this very package
    /// (`build --reanalyse`: new scanner signatures, a new analyser), instead of carrying
    /// its published analysis over. It is out already, so what blocks a new release is
    /// a warning for it ([`PUBLISHED_FINDING`]): its analysis is published with the
    /// findings (its security level drops to flagged) and the operator blocks it to act.
    pub reanalyse: bool,
}

/// Ends the message of a finding in a release already published (see
/// [`AnalysisOptions::reanalyse`]).
pub const PUBLISHED_FINDING: &str =
    " (in a release already published: its analysis now says so; `trellis-index block` it to act)";

/// One file to analyse: its package path and where its bytes are on disk.
#[derive(Clone, Debug)]
pub struct FileOnDisk {
    /// Path inside the package (`bin/linux-x86_64/tool`).
    pub package_path: String,
    /// The file on disk.
    pub disk_path: PathBuf,
}

impl AnalysisOptions {
    /// Whether only the files [`reads`] selects need to be on disk: no scanner and no
    /// sandbox, which read the whole tree.
    pub fn static_only(&self) -> bool {
        self.scanners.is_empty() && self.sandbox.is_none()
    }
}

/// Whether the static analysis reads the file at package path `path`, given its first
/// bytes (at least `SNIFF_LEN` of them, or the whole file) and the entry points:
/// binaries, scripts, entry points and extensionless files under `bin/` (the last two
/// to warn about what it cannot analyse). [`analyse`] needs only these on disk.
pub fn reads(path: &str, head: &[u8], entries: &BTreeSet<&str>) -> bool {
    let head = &head[..head.len().min(SNIFF_LEN)];
    binary::sniff(head).is_some()
        || script::language(path, head).is_some()
        || entries.contains(path)
        || (path.starts_with("bin/") && path.rsplit('/').next().is_some_and(|n| !n.contains('.')))
}

/// Problems found and the summary to publish.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Lint problems (errors refuse the release).
    pub problems: Vec<Problem>,
    /// The summary for the index doc.
    pub summary: ReleaseAnalysis,
}

#[derive(Default)]
struct Found {
    evidence: Vec<Evidence>,
    total: u64,
    /// Evidence per file (first symbol, count), for one error per file and class.
    per_file: BTreeMap<String, (String, u64)>,
}

/// Analyses the files of a release whose tree is at `root` (`files` inside it).
/// `metadata` is the valid `plugin.json` (without it only the capabilities are listed).
/// With [`AnalysisOptions::static_only`], `files` may be only those [`reads`] selects.
pub fn analyse(
    root: &Path,
    files: &[FileOnDisk],
    metadata: Option<&PluginMetadata>,
    options: &AnalysisOptions,
) -> Analysis {
    let map = CapabilityMap::builtin();
    let mut problems = Vec::new();
    let mut found: BTreeMap<usize, Found> = BTreeMap::new();
    let mut opaque = false;
    let entries: BTreeSet<&str> = metadata.map(|m| m.entry.values().map(String::as_str).collect()).unwrap_or_default();
    let mut record = |class: usize, file: &str, symbol: String| {
        let f = found.entry(class).or_default();
        f.total += 1;
        if f.evidence.len() < MAX_EVIDENCE {
            f.evidence.push(Evidence { file: file.to_owned(), symbol: symbol.clone() });
        }
        f.per_file.entry(file.to_owned()).or_insert((symbol, 0)).1 += 1;
    };
    for file in files {
        let path = file.package_path.as_str();
        let mut head = Vec::with_capacity(SNIFF_LEN);
        if let Err(e) =
            std::fs::File::open(&file.disk_path).and_then(|f| f.take(SNIFF_LEN as u64).read_to_end(&mut head))
        {
            problems.push(Problem::error(path, format!("cannot read it for analysis: {e}")));
            continue;
        }
        if let Some(format) = binary::sniff(&head) {
            match binary::imports(&file.disk_path, format) {
                Ok(imports) => {
                    if imports.symbols.is_empty() && format != binary::Format::Pe {
                        opaque = true;
                        problems.push(Problem {
                            path: path.to_owned(),
                            message: format!(
                                "{} binary imports nothing (statically linked or stripped of dynamic symbols): static analysis cannot tell what it does; the sandboxed run and review decide",
                                format.as_str()
                            ),
                            severity: Severity::Warning,
                        });
                    }
                    for (library, symbol) in &imports.symbols {
                        if let Some(class) = map.symbol(symbol) {
                            let shown = if library.is_empty() { symbol.clone() } else { format!("{library}!{symbol}") };
                            record(class, path, shown);
                        }
                    }
                    for library in &imports.libraries {
                        if let Some(class) = map.library(library) {
                            record(class, path, library.clone());
                        }
                    }
                }
                Err(e) => problems.push(Problem::error(path, e.to_string())),
            }
        } else if let Some(language) = script::language(path, &head) {
            match script::scan(&file.disk_path, language, map) {
                Ok(matches) => {
                    for m in matches {
                        record(m.class, path, format!("{} pattern {:?}", language.as_str(), m.pattern));
                    }
                }
                Err(e) => problems.push(Problem::error(path, format!("cannot read it for analysis: {e}"))),
            }
        } else if entries.contains(path) {
            opaque = true;
            problems.push(Problem {
                path: path.to_owned(),
                message: "is an entry point but neither an ELF, PE or Mach-O binary nor a script the analysis knows (PowerShell, shell, JavaScript, Python, batch): static analysis cannot tell what it does; the sandboxed run and review decide".into(),
                severity: Severity::Warning,
            });
        } else if path.starts_with("bin/") && path.rsplit('/').next().is_some_and(|n| !n.contains('.')) {
            problems.push(Problem {
                path: path.to_owned(),
                message: "is under bin/ without an extension but is not a binary or a script the analysis knows; static analysis skipped it".into(),
                severity: Severity::Warning,
            });
        }
    }
    let declared: BTreeSet<String> =
        metadata.map(|m| m.permissions.iter().map(|p| p.key()).collect()).unwrap_or_default();
    let mut capabilities = Vec::new();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for (class_index, f) in &found {
        let class = &map.classes[*class_index];
        let covering = class.permissions.iter().find(|p| declared.contains(*p));
        used.extend(class.permissions.iter().filter(|p| declared.contains(*p)).map(String::as_str));
        if metadata.is_some() && covering.is_none() {
            let refused = !class.permissions.is_empty() || class.unpermitted == Unpermitted::Refuse;
            for (file, (symbol, count)) in f.per_file.iter().filter(|_| refused) {
                let more = if *count > 1 { format!(" and {} more", count - 1) } else { String::new() };
                let message = match class.permissions.split_first() {
                    Some((first, [])) => format!(
                        "uses {symbol}{more} ({}), which needs the permission {first}; declare it in plugin.json with a reason",
                        class.capability
                    ),
                    Some((first, others)) => format!(
                        "uses {symbol}{more} ({}), which needs the permission {first} (or one of {}); declare it in plugin.json with a reason",
                        class.capability,
                        others.join(", ")
                    ),
                    None => format!(
                        "uses {symbol}{more} ({}), which no permission allows; the store refuses it",
                        class.capability
                    ),
                };
                problems.push(Problem::error(file.clone(), message));
            }
        }
        capabilities.push(CapabilityUse {
            capability: class.capability,
            permission: covering.cloned(),
            evidence: f.evidence.clone(),
            evidence_total: f.total,
        });
    }
    if !opaque && let Some(meta) = metadata {
        let detectable: BTreeSet<&str> =
            map.classes.iter().flat_map(|c| c.permissions.iter().map(String::as_str)).collect();
        for (i, permission) in meta.permissions.iter().enumerate() {
            let key = permission.key();
            if detectable.contains(key.as_str()) && !used.contains(key.as_str()) {
                problems.push(Problem {
                    path: format!("plugin.json: permissions[{i}]"),
                    message: format!(
                        "{key} is declared but no binary or script of the package uses it (static analysis); remove it unless the plugin needs it in a way the analysis cannot see"
                    ),
                    severity: Severity::Warning,
                });
            }
        }
    }
    let mut summary = ReleaseAnalysis { map_version: map.version, capabilities, ..ReleaseAnalysis::default() };
    let (verdicts, scan_problems) = scanners::scan(root, files, &options.scanners);
    summary.scanners = verdicts;
    problems.extend(scan_problems);
    if let (Some(sandbox_options), Some(meta)) = (&options.sandbox, metadata) {
        let (profile, sandbox_problems) = sandbox::run(root, meta, sandbox_options);
        summary.sandbox = profile;
        problems.extend(sandbox_problems);
    }
    Analysis { problems, summary }
}
