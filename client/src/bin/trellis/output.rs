//! What the user sees: results as text or JSON, progress bars for downloads, errors.
//!
//! Text goes to stdout, progress, warnings and errors to stderr (warnings whether or not
//! stderr is a terminal; progress bars only on a terminal). With `--json` every result is
//! one JSON document on stdout and every progress event one JSON line on stderr.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use trellis_client::consent::Disclosure;
use trellis_client::events::{Event, Reporter};
use trellis_client::state::Disabled;
use trellis_client::store::{Consent, DisabledRelease, HeldBack};

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: could not serialise the result: {e}"),
    }
}

/// A byte count for people: `512 B`, `12 KB`, `3.4 MB` (powers of 1000).
pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{} KB", bytes.div_ceil(1_000)),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// Prints an error (and what to do, which the message carries).
pub(crate) fn error(as_json: bool, message: &str, code: u8) {
    if as_json {
        json(&serde_json::json!({"error": message, "exit_code": code}));
    } else {
        eprintln!("error: {message}");
    }
}

/// The reporter for this run: JSON lines, or progress bars and short notes.
pub(crate) fn reporter(as_json: bool) -> Arc<dyn Reporter> {
    if as_json { Arc::new(JsonLines) } else { Arc::new(Bars::default()) }
}

struct JsonLines;

impl Reporter for JsonLines {
    fn report(&self, event: Event) {
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    /// Prints a line on stderr above the progress bars, terminal or not (the bars'
    /// own `println` draws nothing when stderr is not a terminal, and warnings must
    /// reach logs and scripts too).
    fn note(&self, line: &str) {
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stderr(), "{line}");
        });
    }
}

impl Reporter for Bars {
    fn report(&self, event: Event) {
        match event {
            Event::Downloading { plugin, version, bytes_done, bytes_total } => {
                let key = format!("{plugin} {version}");
                let mut bars = self.bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let bar = bars.entry(key.clone()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new(bytes_total.unwrap_or(0)));
                    if !std::io::stderr().is_terminal() {
                        bar.set_draw_target(ProgressDrawTarget::hidden());
                    }
                    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {bytes}/{total_bytes}")
                        .map(|s| s.progress_chars("=> "))
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                    bar.set_style(style);
                    bar.set_prefix(key);
                    bar
                });
                if let Some(total) = bytes_total {
                    bar.set_length(total);
                }
                bar.set_position(bytes_done);
                if bytes_total.is_some_and(|t| bytes_done >= t) {
                    bar.finish();
                }
            }
            Event::DeltaFallback { plugin, version, reason } => {
                self.note(&format!("note: {plugin} {version}: downloading the whole package ({reason})"));
            }
            Event::Disabled { plugin, message, .. } => self.note(&format!("warning: {plugin}: {message}")),
            Event::Warning { plugin, message } => self.note(&match plugin {
                Some(plugin) => format!("warning: {plugin}: {message}"),
                None => format!("warning: {message}"),
            }),
            _ => {}
        }
    }
}

/// The mark of a disabled plugin, as listings show it:
/// `BLOCKED (critical severity): steals data; advisory …; disabled since …`.
pub(crate) fn disabled_line(mark: &Disabled) -> String {
    let text = mark.to_string();
    let rest = text.strip_prefix(mark.label()).unwrap_or(&text);
    let since = mark.since.map(|t| format!("; disabled since {t}")).unwrap_or_default();
    format!("{}{rest}{since}", mark.label().to_uppercase())
}

/// Installed plugins the operation found blocked (and disabled) or held back by a
/// blocked dependency, one line each on stdout.
pub(crate) fn protection(blocked: &[DisabledRelease], held_back: &[HeldBack]) {
    for release in blocked {
        println!(
            "{} {}: {}; it is disabled, update or remove it",
            release.plugin,
            release.version,
            disabled_line(&release.mark)
        );
    }
    for held in held_back {
        let on: Vec<String> = held.blocked_dependencies.iter().map(ToString::to_string).collect();
        println!("{} {}: held back, it depends on the blocked {}", held.plugin, held.version, on.join(", "));
    }
}

/// The permissions of a release, as shown before consent.
pub(crate) fn disclosure_text(disclosure: &Disclosure) -> String {
    let mut text = format!("{} {} asks for these permissions:\n", disclosure.plugin, disclosure.version);
    if disclosure.permissions.is_empty() {
        text.push_str("  (none)\n");
    }
    for permission in &disclosure.permissions {
        let mark = if permission.needs_consent { "*" } else { " " };
        text.push_str(&format!("  {mark} {permission}\n"));
    }
    text
}

/// Consent on the terminal: shows the permissions and asks y/N. Without a terminal
/// (and without --yes) it refuses, so a script never agrees by accident.
pub(crate) struct Prompt;

impl Consent for Prompt {
    fn agree(&self, disclosure: &Disclosure) -> bool {
        eprint!("{}", disclosure_text(disclosure));
        if !std::io::stdin().is_terminal() {
            eprintln!("(not a terminal: pass --yes to agree)");
            return false;
        }
        eprint!("Agree to the permissions marked * and continue? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
    }
}
