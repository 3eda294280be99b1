//! The library's `tracing` diagnostics on stderr: warnings always (a cached blob that
//! no longer matches its digest, a rejected mirror), and with `-v` also what the
//! transport retries and which mirror failed, and other details. Nothing with `--json`
//! (stderr then holds only JSON lines) or `-q` below warnings.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

use crate::output::{Verbosity, errln};

/// Installs the stderr logger for this run.
pub(crate) fn install(json: bool, verbosity: Verbosity, color: bool) {
    if json {
        return;
    }
    let _ = tracing::subscriber::set_global_default(StderrLog { verbose: verbosity >= Verbosity::Verbose, color });
}

struct StderrLog {
    verbose: bool,
    color: bool,
}

impl tracing::Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("trellis");
        match *metadata.level() {
            Level::ERROR | Level::WARN => ours,
            Level::INFO => ours && self.verbose,
            Level::DEBUG => self.verbose && metadata.target().starts_with("trellis_client::transport"),
            Level::TRACE => false,
        }
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (label, code) = match *event.metadata().level() {
            Level::ERROR | Level::WARN => ("warning:", "33"),
            _ => ("info:", "2"),
        };
        let label = if self.color { format!("\x1b[1;{code}m{label}\x1b[0m") } else { label.to_owned() };
        errln(&format!("{label} {}{}", fields.message, fields.rest));
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}
