//! What the user sees: results as text or JSON, progress bars for downloads, errors.
//!
//! Text goes to stdout, progress, notes, warnings and errors to stderr (warnings whether
//! or not stderr is a terminal; progress bars only on a terminal; `-q` drops progress
//! and notes, never warnings or errors). With `--json` every command prints exactly one
//! JSON document on stdout, [`Output::finish`]'s envelope `{"schema_version", "command",
//! "ok", "result", "error"}` (its error inside it), and every progress event one JSON
//! line on stderr. Every line on stdout goes through `outln!`, so a closed pipe
//! (`trellis search "" | head -1`) ends the command quietly instead of panicking.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use semver::Version;
use serde::Serialize;
use trellis_client::consent::Disclosure;
use trellis_client::events::{Event, Reporter};
use trellis_client::state::Disabled;
use trellis_client::store::{Consent, DisabledRelease, HeldBack, Plan};
use trellis_schema::PluginId;

/// The version of the `--json` envelope and of the documents inside it. Raised when a
/// field is removed or changes meaning; adding a field does not raise it.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Prints one line on stdout; when stdout is a closed pipe the process ends quietly
/// with exit code 0 (the reader has what it wanted), as `head` users expect.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints on stdout without a newline, like `outln!`.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// Writes to stdout; a broken pipe ends the process quietly.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "error: could not write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Writes one line to stderr, whatever happens to stderr (a closed stderr is ignored).
pub(crate) fn errln(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// When to colour what goes to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ColorChoice {
    /// When stderr is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always (for a pager or CI log that renders colour).
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether stderr gets colour.
    pub(crate) fn stderr(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// How much goes to stderr besides results, warnings and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verbosity {
    /// `-q`: no progress bars, no notes.
    Quiet,
    /// Progress bars (on a terminal) and notes.
    Normal,
    /// `-v`: also retries, lock waits and each step.
    Verbose,
}

/// How this run prints: text or one JSON document, how verbose, in colour or not.
#[derive(Debug)]
pub(crate) struct Output {
    /// `--json`.
    pub(crate) json: bool,
    /// `-q` / `-v`.
    pub(crate) verbosity: Verbosity,
    /// Colour on stderr.
    pub(crate) color: bool,
    result: RefCell<Option<serde_json::Value>>,
    offline: RefCell<Vec<trellis_client::store::source::OfflineUse>>,
}

impl Output {
    /// An output for these flags.
    pub(crate) fn new(json: bool, verbosity: Verbosity, color: bool) -> Self {
        Self { json, verbosity, color, result: RefCell::new(None), offline: RefCell::default() }
    }

    /// Sets the result of the command: with `--json` it becomes the envelope's `result`.
    pub(crate) fn result(&self, value: &impl Serialize) {
        match serde_json::to_value(value) {
            Ok(value) => *self.result.borrow_mut() = Some(value),
            Err(e) => self.error_line(&format!("could not serialise the result: {e}")),
        }
    }

    /// Prints the one JSON document of the command (`--json`): its result, if it got
    /// as far, and its error with the exit code.
    pub(crate) fn finish(&self, command: &str, error: Option<(&str, u8)>) {
        let document = serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "command": command,
            "ok": error.is_none(),
            "result": self.result.borrow_mut().take(),
            "error": error.map(|(message, code)| serde_json::json!({"message": message, "exit_code": code})),
            "offline": &*self.offline.borrow(),
        });
        match serde_json::to_string_pretty(&document) {
            Ok(text) => outln!("{text}"),
            Err(e) => self.error_line(&format!("could not serialise the result: {e}")),
        }
    }

    /// Registries the command used without reaching them (the envelope's `offline`).
    pub(crate) fn offline(&self, uses: &[trellis_client::store::source::OfflineUse]) {
        self.offline.borrow_mut().extend_from_slice(uses);
    }

    /// `warning: …` on stderr (always, whatever the verbosity; not with --json).
    pub(crate) fn warn(&self, message: &str) {
        if !self.json {
            errln(&format!("{} {message}", self.paint("warning:", "33")));
        }
    }

    /// `prefix` in `code` colour (bold), when stderr gets colour.
    fn paint(&self, prefix: &str, code: &str) -> String {
        if self.color { format!("\x1b[1;{code}m{prefix}\x1b[0m") } else { prefix.to_owned() }
    }

    /// `error: …` on stderr.
    pub(crate) fn error_line(&self, message: &str) {
        errln(&format!("{} {message}", self.paint("error:", "31")));
    }

    /// `note: …` on stderr, unless `-q`.
    pub(crate) fn note(&self, message: &str) {
        if self.verbosity > Verbosity::Quiet && !self.json {
            errln(&format!("{} {message}", self.paint("note:", "36")));
        }
    }

    /// A line only `-v` shows.
    pub(crate) fn verbose(&self, message: &str) {
        if self.verbosity >= Verbosity::Verbose {
            errln(&format!("{} {message}", self.paint("info:", "2")));
        }
    }

    /// Prints the failure of a command in text mode.
    pub(crate) fn failure(&self, message: &str) {
        self.error_line(message);
    }
}

/// A duration for people: `40 seconds`, `12 minutes`, `3 hours`, `2 days`.
pub(crate) fn age(duration: jiff::SignedDuration) -> String {
    let seconds = duration.as_secs().max(0);
    match seconds {
        0..120 => format!("{seconds} seconds"),
        120..7_200 => format!("{} minutes", seconds / 60),
        7_200..172_800 => format!("{} hours", seconds / 3_600),
        _ => format!("{} days", seconds / 86_400),
    }
}

/// A byte count for people: `512 B`, `1.1 KB`, `3.4 MB`, `1.2 GB` (powers of 1000, as
/// the progress bars count).
pub(crate) fn size(bytes: u64) -> String {
    let value = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} KB", value / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", value / 1e6),
        _ => format!("{:.1} GB", value / 1e9),
    }
}

/// The reporter for this run: JSON lines, or progress bars and short notes.
pub(crate) fn reporter(output: &Output) -> Arc<dyn Reporter> {
    if output.json {
        Arc::new(JsonLines)
    } else {
        Arc::new(Bars { quiet: output.verbosity == Verbosity::Quiet, color: output.color, ..Bars::default() })
    }
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
    quiet: bool,
    color: bool,
}

impl Bars {
    /// Prints a line on stderr above the progress bars, terminal or not (the bars'
    /// own `println` draws nothing when stderr is not a terminal, and warnings must
    /// reach logs and scripts too).
    fn line(&self, prefix: &str, code: &str, line: &str) {
        let prefix = if self.color { format!("\x1b[1;{code}m{prefix}\x1b[0m") } else { prefix.to_owned() };
        self.multi.suspend(|| errln(&format!("{prefix} {line}")));
    }

    fn note(&self, line: &str) {
        if !self.quiet {
            self.line("note:", "36", line);
        }
    }

    fn warning(&self, line: &str) {
        self.line("warning:", "33", line);
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
                    if self.quiet || !std::io::stderr().is_terminal() {
                        bar.set_draw_target(ProgressDrawTarget::hidden());
                    }
                    let style =
                        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {decimal_bytes}/{decimal_total_bytes}")
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
                self.note(&format!("{plugin} {version}: downloading the whole package ({reason})"));
            }
            Event::Disabled { plugin, message, .. } => self.warning(&format!("{plugin}: {message}")),
            Event::Advisory { plugin, message, .. } => self.warning(&format!("{plugin}: {message}")),
            Event::Warning { plugin, message } => self.warning(&match plugin {
                Some(plugin) => format!("{plugin}: {message}"),
                None => message,
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
        outln!(
            "{} {}: {}; it is disabled, update or remove it",
            release.plugin,
            release.version,
            disabled_line(&release.mark)
        );
    }
    for held in held_back {
        let on: Vec<String> = held.blocked_dependencies.iter().map(ToString::to_string).collect();
        outln!("{} {}: held back, it depends on the blocked {}", held.plugin, held.version, on.join(", "));
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

/// The plan of an operation, as shown before consent: every release with what it does
/// and its download size, then the permissions asked about.
pub(crate) fn plan_text(plan: &Plan) -> String {
    let mut text = String::from("The operation will:\n");
    let width = plan.releases.iter().map(|r| r.plugin.as_str().len() + r.version.to_string().len()).max().unwrap_or(0);
    for release in &plan.releases {
        let what = match &release.from {
            Some(from) => format!("update {} {from} ->", release.plugin),
            None => format!("install {}", release.plugin),
        };
        let why = if release.requested { "" } else { " (a dependency)" };
        let name = format!("{what} {}", release.version);
        text.push_str(&format!(
            "  {name:<w$}  {} download, {} on disk{why}\n",
            size(release.download_bytes),
            size(release.unpacked_bytes),
            w = width + 16
        ));
    }
    let total: u64 = plan.releases.iter().map(|r| r.download_bytes).sum();
    if plan.releases.len() > 1 {
        text.push_str(&format!("  in all: {} to download\n", size(total)));
    }
    for disclosure in &plan.questions {
        text.push_str(&disclosure_text(disclosure));
    }
    text
}

/// Consent on the terminal: shows the whole plan (every release, its download size and
/// the permissions marked `*` that need consent) and asks y/N once for the operation.
/// Without a terminal (and without --yes) it refuses, so a script never agrees by
/// accident. Remembers which disclosures it showed, so they are not printed again.
#[derive(Default)]
pub(crate) struct Prompt {
    answer: Mutex<Option<bool>>,
    shown: Mutex<Vec<(PluginId, Version)>>,
}

impl Prompt {
    /// Whether the disclosure of `plugin` `version` was shown before asking.
    pub(crate) fn showed(&self, plugin: &PluginId, version: &Version) -> bool {
        lock(&self.shown).iter().any(|(p, v)| p == plugin && v == version)
    }

    fn ask(&self, text: &str) -> bool {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{text}");
        if !std::io::stdin().is_terminal() {
            let _ = writeln!(stderr, "(not a terminal: pass --yes to agree)");
            return false;
        }
        let _ = write!(stderr, "Agree to the permissions marked * and continue? [y/N] ");
        let _ = stderr.flush();
        drop(stderr);
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Consent for Prompt {
    fn plan(&self, plan: &Plan) {
        lock(&self.shown).extend(plan.questions.iter().map(|d| (d.plugin.clone(), d.version.clone())));
        let agreed = self.ask(&plan_text(plan));
        *lock(&self.answer) = Some(agreed);
    }

    fn agree(&self, disclosure: &Disclosure) -> bool {
        // Asked once for the whole plan; a caller that gives no plan is asked per release.
        if let Some(answer) = *lock(&self.answer) {
            return answer;
        }
        lock(&self.shown).push((disclosure.plugin.clone(), disclosure.version.clone()));
        self.ask(&disclosure_text(disclosure))
    }
}
