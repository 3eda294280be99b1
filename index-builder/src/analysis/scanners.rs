//! Malware scanning hooks: ClamAV (`clamscan`), YARA (the `yara` command) and the
//! registry's list of known-bad SHA-256 digests.
//!
//! Owns running each scanner the registry configured (`"scanners"` in
//! `trellis-registry.json`, [`ScannerConfig`]) over the release's files and turning
//! what it says into [`ScannerVerdict`]s and lint problems: a match is an error naming
//! the file and the signature or rule, so publication is refused. The scanners are
//! external programs found on `PATH` at run time; one that is configured but missing
//! is a warning (the check ran without it), or an error when the configuration says
//! `"required": true`. Signature databases are the operator's: ClamAV's come from
//! `freshclam` (see registry-template/docs), YARA rules and the hash list live in the
//! registry source tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use trellis_schema::Sha256;
use trellis_schema::analysis::{ScannerVerdict, Verdict};
use trellis_schema::validate::{Problem, Severity};

use super::FileOnDisk;

/// The `"scanners"` member of `trellis-registry.json`. Paths are relative to the
/// registry root until [`ScannerConfig::resolved`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// ClamAV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamav: Option<ClamavConfig>,
    /// YARA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yara: Option<YaraConfig>,
    /// A file of known-bad SHA-256 digests, one a line (`<hex> <name>`; `#` comments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_bad: Option<PathBuf>,
}

/// How `clamscan` runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClamavConfig {
    /// A signature database file or directory (`--database`); absent: clamscan's own
    /// (what `freshclam` keeps up to date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<PathBuf>,
    /// Refuse to check without it (else a missing `clamscan` is a warning).
    #[serde(default)]
    pub required: bool,
}

/// How `yara` runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YaraConfig {
    /// Rule files.
    pub rules: Vec<PathBuf>,
    /// Refuse to check without it (else a missing `yara` is a warning).
    #[serde(default)]
    pub required: bool,
}

impl ScannerConfig {
    /// Whether anything is configured.
    pub fn is_empty(&self) -> bool {
        self.clamav.is_none() && self.yara.is_none() && self.known_bad.is_none()
    }

    /// Relative paths taken from `base` (the registry root).
    #[must_use]
    pub fn resolved(mut self, base: &Path) -> Self {
        if let Some(db) = self.clamav.as_mut().and_then(|c| c.database.as_mut()) {
            *db = base.join(&*db);
        }
        if let Some(yara) = self.yara.as_mut() {
            yara.rules = yara.rules.iter().map(|r| base.join(r)).collect();
        }
        self.known_bad = self.known_bad.map(|k| base.join(k));
        self
    }
}

/// Lines of a scanner's output kept as findings.
const MAX_FINDINGS: usize = 64;

/// Runs every configured scanner over `files` (under `root`).
pub fn scan(root: &Path, files: &[FileOnDisk], config: &ScannerConfig) -> (Vec<ScannerVerdict>, Vec<Problem>) {
    let mut verdicts = Vec::new();
    let mut problems = Vec::new();
    if let Some(list) = &config.known_bad {
        known_bad(list, files, &mut verdicts, &mut problems);
    }
    if let Some(clamav) = &config.clamav {
        let mut args = vec!["--no-summary".to_owned(), "--infected".into(), "--recursive".into(), "--stdout".into()];
        if let Some(db) = &clamav.database {
            args.push(format!("--database={}", db.display()));
        }
        args.push(root.display().to_string());
        external(Scanner::Clamav, &args, root, clamav.required, &mut verdicts, &mut problems);
    }
    if let Some(yara) = &config.yara {
        let mut args = vec!["--recursive".to_owned(), "--no-warnings".into()];
        args.extend(yara.rules.iter().map(|r| r.display().to_string()));
        args.push(root.display().to_string());
        external(Scanner::Yara, &args, root, yara.required, &mut verdicts, &mut problems);
    }
    (verdicts, problems)
}

fn known_bad(list: &Path, files: &[FileOnDisk], verdicts: &mut Vec<ScannerVerdict>, problems: &mut Vec<Problem>) {
    let where_ = list.display().to_string();
    let text = match std::fs::read_to_string(list) {
        Ok(text) => text,
        Err(e) => {
            problems.push(Problem::error(where_, format!("cannot read the known-bad hash list: {e}")));
            return;
        }
    };
    let mut bad = std::collections::BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (hex, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match hex.parse::<Sha256>() {
            Ok(digest) => {
                bad.insert(
                    digest,
                    if name.trim().is_empty() { "known-bad".to_owned() } else { name.trim().to_owned() },
                );
            }
            Err(e) => {
                problems.push(Problem::error(format!("{where_}:{}", n + 1), format!("not a SHA-256 digest: {e}")))
            }
        }
    }
    let mut findings = Vec::new();
    for file in files {
        let digest = match hash_file(&file.disk_path) {
            Ok(digest) => digest,
            Err(e) => {
                problems
                    .push(Problem::error(&file.package_path, format!("cannot hash it for the known-bad list: {e}")));
                continue;
            }
        };
        if let Some(name) = bad.get(&digest) {
            problems.push(Problem::error(
                &file.package_path,
                format!("matches the registry's known-bad hash list ({name}, sha256 {digest}); publication refused"),
            ));
            findings.push(format!("{}: {name}", file.package_path));
        }
    }
    verdicts.push(ScannerVerdict {
        scanner: "hash_list".into(),
        version: None,
        verdict: if findings.is_empty() { Verdict::Clean } else { Verdict::Found },
        findings,
    });
}

fn hash_file(path: &Path) -> std::io::Result<Sha256> {
    trellis_schema::digest::Hasher::read_all(std::fs::File::open(path)?).map(trellis_schema::digest::Hasher::finish)
}

#[derive(Clone, Copy)]
enum Scanner {
    Clamav,
    Yara,
}

impl Scanner {
    fn program(self) -> &'static str {
        match self {
            Self::Clamav => "clamscan",
            Self::Yara => "yara",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Clamav => "clamav",
            Self::Yara => "yara",
        }
    }

    /// `(package path, signature)` from one line of output, for a match.
    fn parse_match(self, line: &str, root: &str) -> Option<(String, String)> {
        match self {
            // `/root/bin/x: Eicar-Signature FOUND`
            Self::Clamav => {
                let rest = line.strip_suffix(" FOUND")?;
                let (path, signature) = rest.rsplit_once(": ")?;
                Some((relative(path, root), signature.to_owned()))
            }
            // `RuleName /root/bin/x`
            Self::Yara => {
                let (rule, path) = line.split_once(' ')?;
                Some((relative(path, root), rule.to_owned()))
            }
        }
    }
}

fn relative(path: &str, root: &str) -> String {
    path.strip_prefix(root).map(|p| p.trim_start_matches('/')).unwrap_or(path).to_owned()
}

fn external(
    scanner: Scanner,
    args: &[String],
    root: &Path,
    required: bool,
    verdicts: &mut Vec<ScannerVerdict>,
    problems: &mut Vec<Problem>,
) {
    let program = scanner.program();
    let output = match Command::new(program).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(Problem {
                path: "trellis-registry.json: scanners".into(),
                message: format!(
                    "{} is configured but `{program}` is not installed here; {}",
                    scanner.name(),
                    if required {
                        "the check cannot pass without it (required)"
                    } else {
                        "the package was not scanned with it"
                    }
                ),
                severity: if required { Severity::Error } else { Severity::Warning },
            });
            return;
        }
        Err(e) => {
            problems.push(Problem::error("trellis-registry.json: scanners", format!("running {program}: {e}")));
            return;
        }
    };
    let version = Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
        .filter(|s| !s.is_empty());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let root_text = root.display().to_string();
    let mut findings = BTreeSet::new();
    for line in stdout.lines() {
        if let Some((path, signature)) = scanner.parse_match(line.trim(), &root_text) {
            problems.push(Problem::error(
                path.clone(),
                format!("{} found {signature}; publication refused", scanner.name()),
            ));
            if findings.len() < MAX_FINDINGS {
                findings.insert(format!("{path}: {signature}"));
            }
        }
    }
    // clamscan: 0 clean, 1 found, 2 error; yara: 0 ran (matches or not), else error.
    let failed = match scanner {
        Scanner::Clamav => !matches!(output.status.code(), Some(0 | 1)),
        Scanner::Yara => !output.status.success(),
    };
    if failed {
        let stderr = String::from_utf8_lossy(&output.stderr);
        problems.push(Problem::error(
            "trellis-registry.json: scanners",
            format!(
                "{program} failed ({}): {}",
                output.status,
                stderr.trim().lines().take(5).collect::<Vec<_>>().join(" | ")
            ),
        ));
        return;
    }
    verdicts.push(ScannerVerdict {
        scanner: scanner.name().into(),
        version,
        verdict: if findings.is_empty() { Verdict::Clean } else { Verdict::Found },
        findings: findings.into_iter().collect(),
    });
}
