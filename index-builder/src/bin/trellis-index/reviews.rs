//! `trellis-index reviews …`: the registry's review files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
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
