//! Turning the outcome of each lifecycle operation into [`TelemetryEvent`]s for the
//! host's [`HostHooks::telemetry`](crate::hooks::HostHooks::telemetry), when the host
//! turned telemetry on ([`crate::telemetry`] owns the schema and the file sink).

use std::collections::BTreeMap;

use semver::Version;
use trellis_schema::PluginId;

use super::install::InstallReport;
use super::update::UpdateReport;
use super::{Session, Store, StoreError};
use crate::resolve::Requirement;
use crate::telemetry::{FailureClass, Operation, Outcome, Telemetry, TelemetryEvent};

impl Store {
    fn emit(&self, session: &Session<'_>, events: Vec<TelemetryEvent>) {
        if self.options().telemetry == Telemetry::On {
            for event in &events {
                session.hooks.telemetry(event);
            }
        }
    }

    /// One failure event per plugin asked for (or one without a plugin).
    fn failures(operation: Operation, plugins: &[&PluginId], error: &StoreError) -> Vec<TelemetryEvent> {
        let class = FailureClass::of(error);
        let event = TelemetryEvent::new(operation, Outcome::Failure).failure(class);
        if plugins.is_empty() {
            return vec![event];
        }
        plugins.iter().map(|id| event.clone().plugin(id)).collect()
    }

    pub(super) fn report_install(
        &self,
        requirements: &[Requirement],
        result: &Result<InstallReport, StoreError>,
        session: &Session<'_>,
    ) {
        let events = match result {
            Ok(report) => installed_and_updated(&report.installed, &report.updated),
            Err(error) => {
                let asked: Vec<&PluginId> = requirements.iter().map(|r| &r.id).collect();
                Self::failures(Operation::Install, &asked, error)
            }
        };
        self.emit(session, events);
    }

    pub(super) fn report_update(
        &self,
        plugins: &[PluginId],
        result: &Result<UpdateReport, StoreError>,
        session: &Session<'_>,
    ) {
        let events = match result {
            Ok(report) => {
                let mut events = installed_and_updated(&report.installed, &report.updated);
                for (id, to, _) in &report.rolled_back {
                    events.push(
                        TelemetryEvent::new(Operation::Update, Outcome::RolledBack)
                            .plugin(id)
                            .versions(Some(to), None)
                            .failure(FailureClass::Hook),
                    );
                }
                events
            }
            Err(error) => Self::failures(Operation::Update, &plugins.iter().collect::<Vec<_>>(), error),
        };
        self.emit(session, events);
    }

    pub(super) fn report_remove(
        &self,
        plugin: &PluginId,
        versions: &BTreeMap<PluginId, Version>,
        reason: Option<&str>,
        result: &Result<Vec<PluginId>, StoreError>,
        session: &Session<'_>,
    ) {
        let events = match result {
            // The reason is the user's about the plugin they removed, not the
            // dependents a cascade took with it.
            Ok(removed) => removed
                .iter()
                .map(|id| {
                    TelemetryEvent::new(Operation::Remove, Outcome::Success)
                        .plugin(id)
                        .versions(versions.get(id), None)
                        .reason(reason.filter(|_| id == plugin))
                })
                .collect(),
            Err(error) => Self::failures(Operation::Remove, &[plugin], error),
        };
        self.emit(session, events);
    }

    pub(super) fn report_rollback(
        &self,
        plugin: &PluginId,
        from: Option<&Version>,
        result: &Result<Version, StoreError>,
        session: &Session<'_>,
    ) {
        let event = match result {
            Ok(to) => {
                TelemetryEvent::new(Operation::Rollback, Outcome::Success).plugin(plugin).versions(Some(to), from)
            }
            Err(error) => TelemetryEvent::new(Operation::Rollback, Outcome::Failure)
                .plugin(plugin)
                .versions(None, from)
                .failure(FailureClass::of(error)),
        };
        self.emit(session, vec![event]);
    }
}

fn installed_and_updated(
    installed: &[(PluginId, Version)],
    updated: &[(PluginId, Version, Version)],
) -> Vec<TelemetryEvent> {
    let installs = installed
        .iter()
        .map(|(id, v)| TelemetryEvent::new(Operation::Install, Outcome::Success).plugin(id).versions(Some(v), None));
    let updates = updated.iter().map(|(id, from, to)| {
        TelemetryEvent::new(Operation::Update, Outcome::Success).plugin(id).versions(Some(to), Some(from))
    });
    installs.chain(updates).collect()
}
