//! `trellis-index reviews …`: the registry's review files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use trellis_index::registry::Registry;
use trellis_index::review::{self, Aggregate, ReviewLimits};

/// `trellis-index reviews …`.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check every `reviews/<plugin id>/<GitHub login>.json` of a registry: stars 1–5,
    /// the author is the file's name (one review per author and plugin), a plugin and
    /// version the registry has, text within the limits in Markdown without raw HTML
    /// or images, a moderation state (`visible` or `hidden`). Prints each plugin's
    /// rating from its visible reviews; exit 1 when a file is refused.
    Check {
        /// The registry source tree.
        #[arg(default_value = ".")]
        registry: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the review of a GitHub issue event (the review issue form) to
    /// `reviews/<plugin>/<login>.json` of the registry, the author being the issue's
    /// author, then check every review; prints the file's path. Exit 1 (and nothing
    /// written) when the review is refused.
    FromIssue {
        /// The event JSON (`$GITHUB_EVENT_PATH`).
        event: PathBuf,
        /// The registry source tree.
        #[arg(long, default_value = ".")]
        registry: PathBuf,
    },
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::FromIssue { event, registry } => {
            let bytes = std::fs::read(&event).with_context(|| format!("reading {}", event.display()))?;
            let (relative, review) = match review::from_issue(&bytes) {
                Ok(found) => found,
                Err(reason) => {
                    eprintln!("error: {}: {reason}", event.display());
                    return Ok(ExitCode::from(1));
                }
            };
            let path = registry.join(&relative);
            if path.exists() {
                eprintln!(
                    "error: {} exists: {} already reviewed this plugin (edit that file)",
                    relative.display(),
                    review.author
                );
                return Ok(ExitCode::from(1));
            }
            let source = Registry::open(&registry).with_context(|| format!("opening {}", registry.display()))?;
            let plugins = source.load_plugins(&source.plugin_ids()?)?;
            let known: BTreeMap<_, BTreeSet<semver::Version>> = plugins
                .iter()
                .map(|p| (p.id.clone(), p.releases.iter().map(|r| r.manifest.version.clone()).collect()))
                .collect();
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let new_dir = !dir.exists();
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut json = serde_json::to_vec_pretty(&review)?;
            json.push(b'\n');
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
            let report = review::check(&registry, &known, &ReviewLimits::default());
            let own: Vec<&review::ReviewProblem> =
                report.problems.iter().filter(|p| p.path.ends_with(&relative) || p.path == dir).collect();
            if !own.is_empty() {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                if new_dir {
                    std::fs::remove_dir(&dir).with_context(|| format!("removing {}", dir.display()))?;
                }
                for problem in own {
                    eprintln!("error: {}: {}", relative.display(), problem.reason);
                }
                return Ok(ExitCode::from(1));
            }
            println!("{}", relative.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { registry, json } => {
            let source = Registry::open(&registry).with_context(|| format!("opening {}", registry.display()))?;
            let plugins = source.load_plugins(&source.plugin_ids()?)?;
            let known: BTreeMap<_, BTreeSet<semver::Version>> = plugins
                .iter()
                .map(|p| (p.id.clone(), p.releases.iter().map(|r| r.manifest.version.clone()).collect()))
                .collect();
            let report = review::check(&registry, &known, &ReviewLimits::default());
            let today: jiff::civil::Date = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string().parse()?;
            let mut by_plugin: BTreeMap<String, Vec<&review::Review>> = BTreeMap::new();
            for checked in &report.reviews {
                by_plugin.entry(checked.plugin.to_string()).or_default().push(&checked.review);
            }
            let ratings: BTreeMap<String, Aggregate> = by_plugin
                .into_iter()
                .filter_map(|(plugin, reviews)| Some((plugin, Aggregate::of(reviews, today)?)))
                .collect();
            if json {
                let value = serde_json::json!({
                    "reviews": report.reviews.len(),
                    "problems": report.problems,
                    "ratings": ratings,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{} reviews checked", report.reviews.len());
                for (plugin, aggregate) in &ratings {
                    println!(
                        "{plugin}: {}.{} stars from {} visible reviews {:?}",
                        aggregate.tenths / 10,
                        aggregate.tenths % 10,
                        aggregate.count,
                        aggregate.histogram
                    );
                }
                for problem in &report.problems {
                    eprintln!("error: {}: {}", problem.path.display(), problem.reason);
                }
            }
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
