//! Preparing a registry pull request: `trellis-index submit`.
//!
//! Owns turning a signed package into the files of a submission in a checkout of the
//! registry repository, checked the way the registry's own check will:
//! - the publisher record: the checkout's `publishers/<vendor>.json` is the trusted
//!   copy; a record passed with `--publisher` must be a valid extension of it (or, on a
//!   first submission, a valid chain from version 1), checked by
//!   [`crate::lint::submitted_publisher`], and is copied in when it differs;
//! - the package: linted with its signature checked against that record
//!   ([`crate::lint::lint`]);
//! - `releases/<id>/<version>.zip` and `.zip.dsse` are written; a release already in
//!   the checkout with other bytes is refused (a published release never changes),
//!   the same bytes are a no-op.
//!
//! It returns the git and `gh` commands of the pull request ([`Submission::commands`]);
//! the binary prints them, or runs them with `--run`. Nothing is pushed or opened here.

use std::path::{Path, PathBuf};

use trellis_schema::PluginId;
use trellis_schema::validate::Severity;

use crate::lint::{self, LintOptions, SignatureStatus};

/// Why a submission could not be prepared. Nothing in the checkout is changed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The directory is not a registry checkout.
    #[error("{} is not a registry checkout (it has no trellis-registry.json); clone the registry repository and pass its directory with --registry", .0.display())]
    NotARegistry(PathBuf),
    /// The package has no envelope.
    #[error("{} is not signed ({} is missing); sign it first: trellis-index sign {} --key YOUR.key", package.display(), envelope.display(), package.display())]
    Unsigned {
        /// The package.
        package: PathBuf,
        /// The missing envelope.
        envelope: PathBuf,
    },
    /// The package cannot be read.
    #[error(transparent)]
    Package(#[from] crate::sign::SignError),
    /// A first submission without a record.
    #[error(
        "the registry has no record of publisher {vendor}: pass your record with --publisher (write it with `trellis-index publisher init --id {vendor} --name NAME --key YOUR.key`)"
    )]
    NoPublisher {
        /// The publisher.
        vendor: String,
    },
    /// The record is refused.
    #[error(transparent)]
    Publisher(#[from] lint::PublisherCheckError),
    /// The package does not pass lint or its signature does not verify.
    #[error("{release} would be refused by the registry: {}", problems.join("; "))]
    Refused {
        /// `id version`.
        release: String,
        /// Every problem.
        problems: Vec<String>,
    },
    /// Lint could not read the package.
    #[error(transparent)]
    Lint(#[from] lint::LintError),
    /// The release is in the checkout already, with other bytes.
    #[error(
        "{} exists with other content: a published release never changes; bump the version in plugin.json and pack again",
        .0.display()
    )]
    Changed(PathBuf),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Fs(#[from] trellis_client::fs::FsError),
}

/// A prepared submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The plugin.
    pub plugin: PluginId,
    /// The release.
    pub version: semver::Version,
    /// The registry checkout.
    pub registry: PathBuf,
    /// Files written or already in place, relative to the checkout.
    pub files: Vec<PathBuf>,
    /// Whether the checkout had no record of the publisher (a first submission, which
    /// the registry's maintainers review).
    pub first_submission: bool,
    /// The branch the commands create.
    pub branch: String,
}

/// One command of a submission: the program, its arguments, and whether it is optional
/// (`gh`, which may not be installed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitCommand {
    /// `git` or `gh`.
    pub program: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Submission {
    /// The title of the pull request.
    pub fn title(&self) -> String {
        if self.first_submission {
            format!("{} {} (first submission of publisher {})", self.plugin, self.version, self.plugin.vendor_id())
        } else {
            format!("{} {}", self.plugin, self.version)
        }
    }

    /// The commands that make the pull request, run in the checkout: a branch, a
    /// commit of [`Submission::files`], a push, and `gh pr create`.
    pub fn commands(&self) -> Vec<SubmitCommand> {
        let git =
            |args: &[&str]| SubmitCommand { program: "git", args: args.iter().map(|a| (*a).to_owned()).collect() };
        let mut add = git(&["add", "--"]);
        add.args.extend(self.files.iter().map(|f| f.to_string_lossy().replace('\\', "/")));
        let body = format!(
            "Submitted with `trellis-index submit`: {} {}, its developer signature{}.",
            self.plugin,
            self.version,
            if self.first_submission { " and the publisher record (first submission)" } else { "" }
        );
        vec![
            git(&["checkout", "-b", &self.branch]),
            add,
            git(&["commit", "-m", &self.title()]),
            git(&["push", "-u", "origin", &self.branch]),
            SubmitCommand {
                program: "gh",
                args: ["pr", "create", "--head", &self.branch, "--title", &self.title(), "--body", &body]
                    .iter()
                    .map(|a| (*a).to_owned())
                    .collect(),
            },
        ]
    }
}

/// Copies `from` to `to` (relative to the checkout) unless `to` holds the same bytes
/// already; `allow_change` lets a different file be replaced (the record).
fn place(registry: &Path, from: &Path, to: &Path, allow_change: bool) -> Result<(), SubmitError> {
    let bytes = std::fs::read(from).map_err(|e| trellis_client::fs::FsError::new("reading", from, e))?;
    let target = registry.join(to);
    match std::fs::read(&target) {
        Ok(existing) if existing == bytes => return Ok(()),
        Ok(_) if !allow_change => return Err(SubmitError::Changed(to.to_owned())),
        _ => {}
    }
    if let Some(parent) = target.parent() {
        trellis_client::fs::create_dir_all(parent)?;
    }
    trellis_client::fs::write_atomic(&target, &bytes)?;
    Ok(())
}

/// Prepares the submission of the signed `package` into the registry checkout
/// `registry`, with the publisher record chain `publisher` (needed on a first
/// submission, or when the record changed). See the module docs.
pub fn prepare(package: &Path, registry: &Path, publisher: Option<&Path>) -> Result<Submission, SubmitError> {
    if !registry.join("trellis-registry.json").is_file() {
        return Err(SubmitError::NotARegistry(registry.to_owned()));
    }
    let envelope = crate::sign::envelope_path(package);
    if !envelope.is_file() {
        return Err(SubmitError::Unsigned { package: package.to_owned(), envelope });
    }
    let (_, metadata) = crate::sign::inspect(package)?;
    let vendor = metadata.id.vendor_id();
    let record_path = PathBuf::from("publishers").join(format!("{vendor}.json"));
    let trusted = registry.join(&record_path);
    let first_submission = !trusted.is_file();
    let record = match (publisher, first_submission) {
        (Some(submitted), true) => lint::submitted_publisher(submitted, None, None)?,
        (Some(submitted), false) => lint::submitted_publisher(submitted, Some(&trusted), None)?,
        (None, false) => lint::submitted_publisher(&trusted, None, None)?,
        (None, true) => return Err(SubmitError::NoPublisher { vendor: vendor.to_string() }),
    };
    let report = lint::lint(package, &LintOptions { publisher: Some(record), ..LintOptions::default() })?;
    let release = format!("{} {}", metadata.id, metadata.version);
    let mut problems: Vec<String> =
        report.problems.iter().filter(|p| p.severity == Severity::Error).map(ToString::to_string).collect();
    if !matches!(report.signature, SignatureStatus::Verified { .. }) {
        problems.push(format!("its signature does not verify against publisher {vendor}'s record"));
    }
    if !problems.is_empty() {
        return Err(SubmitError::Refused { release, problems });
    }
    let dir = PathBuf::from("releases").join(metadata.id.as_str());
    let zip = dir.join(format!("{}.zip", metadata.version));
    let dsse = dir.join(format!("{}.zip.dsse", metadata.version));
    // Check before writing anything, so a refusal leaves the checkout as it was.
    for (from, to) in [(package, &zip), (envelope.as_path(), &dsse)] {
        let existing = std::fs::read(registry.join(to)).ok();
        let bytes = std::fs::read(from).map_err(|e| trellis_client::fs::FsError::new("reading", from, e))?;
        if existing.is_some_and(|e| e != bytes) {
            return Err(SubmitError::Changed(to.clone()));
        }
    }
    let mut files = Vec::new();
    if let Some(submitted) = publisher {
        place(registry, submitted, &record_path, true)?;
        files.push(record_path);
    }
    place(registry, package, &zip, false)?;
    place(registry, &envelope, &dsse, false)?;
    files.extend([zip, dsse]);
    Ok(Submission {
        branch: format!("submit/{}-{}", metadata.id, metadata.version),
        plugin: metadata.id,
        version: metadata.version,
        registry: registry.to_owned(),
        files,
        first_submission,
    })
}
