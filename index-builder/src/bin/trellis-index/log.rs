//! Where the library's `tracing` events go: stderr, one line each, as `warning: …`
//! (the CLI's own style), at `TRELLIS_LOG`'s level (`error`, `warn` by default, `info`,
//! `debug`, `trace`, `off`). Without it, what the builder warns about (a domain proof
//! that failed, an advisory range it cannot evaluate, a CVSS vector that does not
//! parse, a published release whose new analysis found something) would reach nobody.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the stderr subscriber.
pub(crate) fn init() {
    let (level, bad) = match std::env::var("TRELLIS_LOG") {
        Ok(text) => match text.trim().parse::<LevelFilter>() {
            Ok(level) => (level, None),
            Err(_) => (LevelFilter::WARN, Some(text)),
        },
        Err(_) => (LevelFilter::WARN, None),
    };
    let installed = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Plain)
        .try_init();
    if let (Ok(()), Some(text)) = (installed, bad) {
        tracing::warn!("TRELLIS_LOG={text:?} is not a level (error, warn, info, debug, trace, off); using warn");
    }
}

/// `warning: MESSAGE key=value …`.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "{level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
