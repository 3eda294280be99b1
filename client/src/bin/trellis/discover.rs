//! The discovery commands: search, browse, and the "did you mean" hint of info/install.

use clap::Args;
use trellis_client::catalog::{Compatibility, Filters, Query};
use trellis_client::store::{Browse, SearchHit, Store, StoreError};
use trellis_schema::catalog::{PluginSummary, Rating};
use trellis_schema::plugin::PricingModel;

use crate::{CliResult, Context, Failure};

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Words to look for in plugin ids, names, tags, categories, descriptions and
    /// publishers (typos and a partly typed last word are forgiven).
    text: String,
    /// Only plugins in this category.
    #[arg(long)]
    category: Option<String>,
    /// Only plugins with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only free plugins.
    #[arg(long)]
    free: bool,
    /// Only plugins this host app and platform can run.
    #[arg(long)]
    compatible: bool,
    /// Only plugins that request none of these permission types (`network`, …).
    #[arg(long, value_name = "TYPE")]
    without: Vec<String>,
    /// Most results shown.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

fn rating(rating: Option<Rating>) -> String {
    rating.map_or_else(|| "no rating".to_owned(), |r| format!("{}.{}★ ({})", r.tenths / 10, r.tenths % 10, r.count))
}

fn mark(compatibility: &Compatibility) -> String {
    match compatibility {
        Compatibility::Runs => String::new(),
        Compatibility::Incompatible { reason } => format!("  [cannot run here: {reason}]"),
    }
}

fn hit_line(hit: &SearchHit) -> String {
    let latest = hit.latest.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into());
    let installed = hit.installed.as_ref().map(|v| format!("  (installed {v})")).unwrap_or_default();
    format!(
        "{}  {latest}  {}  {}  {} downloads  [{}]{installed}{}",
        hit.id,
        hit.name,
        rating(hit.rating),
        hit.downloads,
        hit.registry,
        mark(&hit.compatibility)
    )
}

pub(crate) fn search(ctx: &Context, args: SearchArgs) -> CliResult {
    let mut store = ctx.open()?;
    let filters = Filters {
        category: args.category,
        tag: args.tag,
        pricing: if args.free { vec![PricingModel::Free] } else { Vec::new() },
        compatible: args.compatible,
        without_permissions: args.without,
        ..Filters::default()
    };
    let query = Query { limit: args.limit, ..Query::new(&args.text).with_filters(filters) };
    let results = store.search(&query)?;
    ctx.offline_notes(&store);
    if ctx.out.json {
        ctx.out.result(&results);
        return Ok(());
    }
    if results.hits.is_empty() {
        outln!("no plugin matches `{}`", args.text);
    }
    for hit in &results.hits {
        outln!("{}", hit_line(hit));
        if !hit.summary.is_empty() {
            outln!("    {}", hit.summary);
        }
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct BrowseArgs {
    /// A category or tag to list (the featured, new and updated plugins and the
    /// categories when none is given).
    listing: Option<String>,
    /// Page of the listing, from 1.
    #[arg(long, default_value_t = 1)]
    page: u32,
}

fn summary_line(store: &Store, summary: &PluginSummary) -> String {
    format!(
        "  {}  {}  {}  {}  {} downloads{}",
        summary.id,
        summary.version,
        summary.name,
        rating(summary.rating),
        summary.downloads,
        mark(&store.compatibility(summary))
    )
}

pub(crate) fn browse(ctx: &Context, args: BrowseArgs) -> CliResult {
    let mut store = ctx.open()?;
    let found = store.browse(args.listing.as_deref(), args.page)?;
    ctx.offline_notes(&store);
    if ctx.out.json {
        ctx.out.result(&found);
        return Ok(());
    }
    if found.is_empty() {
        return Err(match &args.listing {
            Some(name) => Failure::Failed(format!(
                "no registry has a category or tag `{name}`; `trellis browse` lists the categories"
            )),
            None => Failure::Failed("no configured registry publishes a catalog".into()),
        });
    }
    for (registry, browse) in &found {
        match browse {
            Browse::Home(head) => {
                outln!("registry {registry}: {} plugins (catalog of {})", head.plugins, head.generated);
                for (title, list) in [
                    ("featured", &head.featured),
                    ("trending", &head.trending),
                    ("new", &head.new),
                    ("updated", &head.updated),
                ] {
                    if list.is_empty() {
                        continue;
                    }
                    outln!("{title}:");
                    for summary in list {
                        outln!("{}", summary_line(&store, summary));
                    }
                }
                let categories: Vec<String> =
                    head.categories.iter().map(|c| format!("{} ({})", c.name, c.plugins)).collect();
                outln!("categories: {}", categories.join(", "));
            }
            Browse::Listing(page) => {
                outln!(
                    "registry {registry}: {} {}: {} plugins, page {} of {}",
                    page.kind.as_str(),
                    page.name,
                    page.total,
                    page.page,
                    page.pages
                );
                for summary in &page.plugins {
                    outln!("{}", summary_line(&store, summary));
                }
            }
        }
    }
    Ok(())
}

/// `error`, with "did you mean" suggestions for each of `ids` it says no registry
/// serves or publishes.
pub(crate) fn with_suggestions(store: &mut Store, ids: &[&str], error: StoreError) -> Failure {
    match Failure::from(error) {
        Failure::Failed(message) => Failure::Failed(suggest(store, ids, message)),
        other => other,
    }
}

/// `message`, followed by "did you mean" suggestions for each of `ids` it says no
/// registry serves or publishes.
pub(crate) fn suggest(store: &mut Store, ids: &[&str], message: String) -> String {
    let mut text = message.clone();
    for id in ids {
        let missing = message.contains(&format!("serves {id}"))
            || message.contains(&format!("publishes {id}"))
            || message.contains(&format!("{id} is not published"));
        if !missing {
            continue;
        }
        if let Ok(close) = store.did_you_mean(id)
            && !close.is_empty()
        {
            let names: Vec<String> = close.iter().map(ToString::to_string).collect();
            text.push_str(&format!("\ndid you mean {}?", names.join(", ")));
        }
    }
    text
}
