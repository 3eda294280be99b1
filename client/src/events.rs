//! The progress and event stream a UI draws.
//!
//! The library reports, the binary (or the host app's store UI) draws: every long step
//! of the lifecycle sends an [`Event`] to a [`Reporter`] that the caller passes in. This
//! module owns the event vocabulary and two reporters ([`NoReporter`] and
//! [`ChannelReporter`]); it draws nothing and decides nothing. Progress bars, `--json`
//! lines and log output live in the `trellis` binary or in the host app.

use std::sync::mpsc;

use semver::Version;
use serde::Serialize;
use trellis_schema::PluginId;

use crate::hooks::Hook;
use crate::state::Disabled;
pub use crate::state::OperationKind;

/// Something a UI may want to show. Serialises as `{"event": "downloading", ...}` for
/// machine-readable output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Resolution of the requested plugins started.
    Resolving {
        /// What the user asked for, as typed (`acme.clock@^1.2`).
        requested: Vec<String>,
    },
    /// Resolution finished with this many releases to fetch.
    Resolved {
        /// Releases chosen that are not installed yet in that version.
        to_fetch: usize,
    },
    /// Bytes of a package (or delta) arrived.
    Downloading {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// Bytes received so far.
        bytes_done: u64,
        /// Expected total, when known (it is, from the signed index).
        bytes_total: Option<u64>,
    },
    /// An update downloads a delta from the installed release instead of the package.
    Delta {
        /// The plugin.
        plugin: PluginId,
        /// The release being installed.
        version: Version,
        /// The installed release the delta starts from.
        from: Version,
        /// Size of the delta.
        delta_bytes: u64,
        /// Size of the package it saves downloading.
        package_bytes: u64,
    },
    /// A delta could not be used; the whole package is downloaded instead.
    DeltaFallback {
        /// The plugin.
        plugin: PluginId,
        /// The release being installed.
        version: Version,
        /// Why the delta was not used.
        reason: String,
    },
    /// A package's hash and developer signature are being checked.
    Verifying {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
    },
    /// Files of a verified package are being written to staging.
    Extracting {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// Files written so far.
        files_done: u64,
        /// Files in the package.
        files_total: u64,
    },
    /// A staged release is being made the active one.
    Activating {
        /// The plugin.
        plugin: PluginId,
        /// The release becoming active.
        version: Version,
    },
    /// The host app's hook was called (and returned).
    HookCalled {
        /// Which hook.
        hook: Hook,
        /// The plugin.
        plugin: PluginId,
        /// The release the hook was called for.
        version: Version,
        /// Whether the host reported success.
        ok: bool,
    },
    /// An operation on one plugin completed.
    Done {
        /// What was done.
        operation: OperationKind,
        /// The plugin.
        plugin: PluginId,
        /// The active release now; `None` after a removal.
        version: Option<Version>,
    },
    /// An installed plugin was disabled (blocked by the registry, or signed only by
    /// revoked keys): the host was asked to stop it, and it must not be started. A UI
    /// shows this prominently, like a warning.
    Disabled {
        /// The plugin.
        plugin: PluginId,
        /// Its installed release.
        version: Version,
        /// Cause, reason, severity and since when.
        mark: Disabled,
        /// The sentence to show: what happened and what to do.
        message: String,
    },
    /// An installed (or just installed) release is named by a security advisory of its
    /// registry. It keeps running; a UI shows this like a warning, with the fix.
    Advisory {
        /// The plugin.
        plugin: PluginId,
        /// Its installed release.
        version: Version,
        /// The advisory's id.
        id: String,
        /// How bad; `None`: unrated.
        severity: Option<trellis_schema::blocklist::Severity>,
        /// The sentence to show: the advisory, the component, the fixed release.
        message: String,
    },
    /// Something the user should know that did not stop the operation.
    Warning {
        /// The plugin concerned, if one is.
        plugin: Option<PluginId>,
        /// What happened and, where it applies, what to do.
        message: String,
    },
}

/// Receives events from the library. Implementations must be cheap and must not block
/// for long: they are called on the thread doing the work, possibly from several
/// threads at once (parallel downloads), hence `Send + Sync`.
pub trait Reporter: Send + Sync {
    /// Called for every event, in the order the work happened on its thread.
    fn report(&self, event: Event);
}

/// A reporter that drops every event, for callers that show no progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {
    fn report(&self, _event: Event) {}
}

/// A reporter that forwards events to a channel, so a UI thread can draw them.
///
/// Sending never blocks; when the receiving side is gone, events are dropped (the
/// work does not fail because nobody watches it).
#[derive(Clone, Debug)]
pub struct ChannelReporter {
    sender: mpsc::Sender<Event>,
}

impl ChannelReporter {
    /// A reporter and the receiver its events arrive on.
    pub fn new() -> (Self, mpsc::Receiver<Event>) {
        let (sender, receiver) = mpsc::channel();
        (Self { sender }, receiver)
    }

    /// A reporter sending to an existing channel.
    pub fn from_sender(sender: mpsc::Sender<Event>) -> Self {
        Self { sender }
    }
}

impl Reporter for ChannelReporter {
    fn report(&self, event: Event) {
        // A closed receiver means nobody is watching; that is not the work's failure.
        let _ = self.sender.send(event);
    }
}

impl<R: Reporter + ?Sized> Reporter for &R {
    fn report(&self, event: Event) {
        (**self).report(event);
    }
}

impl<R: Reporter + ?Sized> Reporter for std::sync::Arc<R> {
    fn report(&self, event: Event) {
        (**self).report(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> PluginId {
        "acme.clock".parse().unwrap()
    }

    #[test]
    fn channel_reporter_delivers_events_in_order_across_threads() {
        let (reporter, events) = ChannelReporter::new();
        let worker = {
            let reporter = reporter.clone();
            std::thread::spawn(move || {
                for done in [0, 512, 1024] {
                    reporter.report(Event::Downloading {
                        plugin: clock(),
                        version: Version::new(1, 0, 0),
                        bytes_done: done,
                        bytes_total: Some(1024),
                    });
                }
            })
        };
        worker.join().unwrap();
        drop(reporter);
        let done: Vec<u64> = events
            .iter()
            .map(|e| match e {
                Event::Downloading { bytes_done, .. } => bytes_done,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(done, [0, 512, 1024]);
    }

    #[test]
    fn channel_reporter_keeps_working_when_nobody_listens() {
        let (reporter, events) = ChannelReporter::new();
        drop(events);
        reporter.report(Event::Warning { plugin: None, message: "no listener".into() });
    }

    #[test]
    fn events_serialise_with_a_tag_for_json_output() {
        let event = Event::HookCalled { hook: Hook::Start, plugin: clock(), version: Version::new(1, 2, 0), ok: true };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "hook_called", "hook": "start", "plugin": "acme.clock", "version": "1.2.0", "ok": true})
        );
        let done = Event::Done { operation: OperationKind::Remove, plugin: clock(), version: None };
        assert_eq!(serde_json::to_value(&done).unwrap()["operation"], "remove");
    }
}
