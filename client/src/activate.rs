//! Crash-safe activation: moving a plugin from one release to another, and recovery.
//!
//! Owns the four operations' effects on the data dir and the state file (install,
//! update, rollback, remove), as a [`Transaction`] whose every step is journalled in
//! the state file first ([`Phase`] documents what recovery does after each), and
//! [`recover`], which settles an operation a crash interrupted.
//!
//! **Invariant**: the release the state file records as active for a plugin has a
//! complete directory `plugins/<id>/<version>/`, at every instant, whatever the point
//! at which the process dies. It holds because
//! - a release directory is only ever recorded as active by the *switch*, one atomic
//!   write of the state file, made after the directory was completed (`staged`);
//! - cleanup only deletes what the state file does not refer to (the active release,
//!   the kept previous one, the `current` pointer), and runs only after the switch
//!   (finish) or instead of it (undo);
//! - recovery is the same cleanup, so running it again after a crash during recovery
//!   is harmless.
//!
//! Steps of a transaction (the lifecycle calls the host hooks and does the downloads
//! between them):
//!
//! ```text
//! install:  begin_install → files into target_dir() → staged → switch → finish
//! update:   begin_update  → files into target_dir() → staged → stopped → switch → finish
//!                                                  (start fails: revert → abort)
//! rollback: begin_rollback → stopped → switch → finish
//! remove:   begin_remove   → stopped → switch → finish
//! ```
//!
//! Any step before `switch` can be followed by `abort` (undo). Dropping a transaction
//! without `finish` or `abort` settles it the way [`recover`] would.
//!
//! New plugins are installed together as one [`Batch`] (an install of ten plugins is
//! one transaction, not ten): `begin_installs` journals every operation in one write →
//! every release's files → `commit` (the pointers, then all become active and the
//! journal is cleared in one write). Recovery settles all of a batch's operations the
//! same way: none or all installed.
//!
//! # Barriers: what must be durable before what
//!
//! A process crash (SIGKILL) loses nothing a rename made visible; the barriers are for
//! a power loss, after which the disk must hold a state recovery settles to before or
//! after an operation, never between. The state file is never torn: each of its writes
//! flushes the new bytes before the rename. Beyond that:
//!
//! 1. The journal is durable before any file it covers (begin: fsync of the state and
//!    of its directory), so recovery finds every directory a transaction may have
//!    written.
//! 2. Every file of a release (package files, directories, the signed envelope and the
//!    publisher record) is durable before the switch that makes it active: a batch's
//!    switch flushes them all with its own new state in one `syncfs` (Linux; extraction
//!    writes unflushed there), then renames and syncs the directory. Without `syncfs`
//!    (Windows, macOS) each package is flushed as it is extracted, its files in
//!    parallel, and the switch flushes only the state file.
//! 3. The switch is durable before cleanup deletes anything the previous state refers
//!    to (an update's release two versions back, a removed plugin's files).
//! 4. Cleanup's pointers are flushed with the cleared journal (one `syncfs`, or a
//!    flush per pointer without it), whose rename is made durable: an operation
//!    reported done is not reported again after a power loss.
//!
//! A batch of new plugins needs no cleanup after its switch: the state before it
//! refers to nothing of theirs (rule 3 has nothing to order), `journal_installs` deleted
//! their leftovers, and their pointers are written before the switch, so the switch
//! flushes them with the files (rule 2; a pointer of a batch that did not switch is
//! deleted with its directory by recovery) and clears the journal in its own write
//! (rule 4). A batch of any size thus makes four barriers on Linux: two for the journal
//! (the fsync of the state and of its directory), two for the commit (`syncfs` and the
//! directory). A cold install journals the batch from the releases' verified index
//! entries while their developer signatures are verified on another thread and before
//! the packages are downloaded (the consents go with the commit), so the journal's
//! barriers run while the last envelopes are in flight and only the commit's two run
//! after the last package arrives. A cold install's commit also carries the
//! publishers' pins its releases were verified under ([`Batch::commit_with`]): their
//! temp files are flushed by the commit's `syncfs`, renamed and their directory synced
//! before the state's rename, so a durable commit has its pins (one barrier more,
//! instead of a `syncfs` and a directory sync of their own before the journal); a batch
//! that does not commit leaves the older pins, from which the records are verified
//! again next time. An update, rollback or removal keeps its per-plugin journal steps
//! (each write durable) and flushes its package with one `syncfs` at extraction.
//!
//! It does not download, verify signatures or extract (that is `package`, writing into
//! [`Transaction::target_dir`]), and it does not call host hooks; it tells the caller
//! which hooks recovery still owes ([`HostAction`]).
//!
//! # Example: an install, as the lifecycle runs it
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use trellis_client::activate;
//! use trellis_client::events::NoReporter;
//! use trellis_client::hooks::{Hook, HookContext, NoHooks, call_hook};
//! use trellis_client::state::{DataDir, InstallReason, InstalledRelease, StateStore};
//!
//! let data = tempfile::tempdir()?;
//! let mut store = StateStore::open(DataDir::new(data.path()))?;
//! for recovery in activate::recover(&mut store)? {
//!     println!("{recovery}"); // and owe the host `recovery.host`
//! }
//! let plugin = "acme.clock".parse()?;
//! let version = semver::Version::new(1, 0, 0);
//! let release = InstalledRelease { version: version.clone(), dependencies: vec![], package_sha256: None };
//! let mut tx = activate::begin_install(&mut store, &plugin, release, "public".parse()?, InstallReason::Requested)?;
//! let target = tx.target_dir().ok_or("an install has a target directory")?;
//! std::fs::create_dir(&target)?; // really: `Package::extract(&target)` after verification
//! std::fs::write(target.join("plugin.json"), "{}")?;
//! tx.staged()?;
//! let ctx = HookContext { plugin: &plugin, version: &version, path: &target };
//! call_hook(&NoHooks, &NoReporter, Hook::BeforeInstall, ctx, None)?; // on error: `tx.abort()`
//! tx.switch()?;
//! tx.finish()?;
//! call_hook(&NoHooks, &NoReporter, Hook::Register, ctx, None)?;
//! assert_eq!(store.state().plugin(&plugin).map(|p| &p.active.version), Some(&version));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use semver::Version;
use trellis_schema::{PluginId, VendorId};

use crate::fs::{Flush, FsError, IN_USE_BACKOFF, Rename, file_in_use, retry_while_in_use};
use crate::state::{
    CurrentPointer, DataDir, InstallReason, InstalledPlugin, InstalledRelease, Operation, OperationKind, Phase,
    RegistryName, State, StateError, StateStore,
};

/// A lifecycle step that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// Reading or writing the state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Creating, renaming or deleting plugin files failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A previous operation was interrupted and is not settled yet.
    #[error("an interrupted {operation} is still recorded; run recovery (`trellis` does this on start) first")]
    Pending {
        /// The interrupted operation.
        operation: Box<Operation>,
    },
    /// The plugin is not installed.
    #[error("{plugin} is not installed")]
    NotInstalled {
        /// The plugin.
        plugin: PluginId,
    },
    /// The plugin is installed already.
    #[error("{plugin} is already installed ({version} is active); update it instead")]
    AlreadyInstalled {
        /// The plugin.
        plugin: PluginId,
        /// Its active release.
        version: Version,
    },
    /// An update to the release that is active.
    #[error("{plugin} {version} is already the active release")]
    SameRelease {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
    },
    /// A rollback without a kept previous release.
    #[error("{plugin} has no previous release kept to roll back to")]
    NoPrevious {
        /// The plugin.
        plugin: PluginId,
    },
    /// The plugin's publisher is bound to another registry.
    #[error(
        "{plugin} is offered by registry {offered}, but publisher {vendor} is bound to registry {bound}; \
         refusing to mix them (this is how dependency-confusion attacks work). Install it from {bound}; \
         if {vendor} really moved to {offered}, bind it there first (`trellis registry bind {vendor} {offered}`)"
    )]
    VendorBoundElsewhere {
        /// The plugin.
        plugin: PluginId,
        /// Its publisher.
        vendor: String,
        /// The registry the publisher is bound to.
        bound: RegistryName,
        /// The registry the release came from.
        offered: RegistryName,
    },
    /// The release to activate has no directory (not staged, or deleted by hand).
    #[error(
        "the files of {plugin} {version} are not where they should be ({} is not a directory); \
         install that release again instead",
        path.display()
    )]
    ReleaseMissing {
        /// The plugin.
        plugin: PluginId,
        /// The release.
        version: Version,
        /// The expected directory.
        path: PathBuf,
    },
    /// A step called out of order (a bug in the caller).
    #[error("{step} is not possible for the {operation}")]
    WrongPhase {
        /// The step attempted.
        step: &'static str,
        /// The operation and its phase.
        operation: Box<Operation>,
    },
}

/// An operation in progress on one plugin, journalled in the state file. See the
/// module documentation for the order of steps.
#[derive(Debug)]
pub struct Transaction<'s> {
    store: &'s mut StateStore,
    operation: Operation,
    /// The record the switch writes; `None` for a removal.
    after: Option<InstalledPlugin>,
    settled: bool,
}

/// Starts installing `release` of `plugin`, taken from `registry`.
pub fn begin_install<'s>(
    store: &'s mut StateStore,
    plugin: &PluginId,
    release: InstalledRelease,
    registry: RegistryName,
    reason: InstallReason,
) -> Result<Transaction<'s>, ActivateError> {
    no_pending(store)?;
    if let Some(installed) = store.state().plugin(plugin) {
        return Err(ActivateError::AlreadyInstalled {
            plugin: plugin.clone(),
            version: installed.active.version.clone(),
        });
    }
    if let Ok(vendor) = plugin.vendor().parse::<VendorId>()
        && let Some(bound) = store.state().vendor_registry(&vendor)
        && bound != &registry
    {
        return Err(ActivateError::VendorBoundElsewhere {
            plugin: plugin.clone(),
            vendor: vendor.to_string(),
            bound: bound.clone(),
            offered: registry,
        });
    }
    let operation = Operation {
        kind: OperationKind::Install,
        plugin: plugin.clone(),
        from: None,
        to: Some(release.version.clone()),
        phase: Phase::Prepared,
        before: None,
    };
    let after = InstalledPlugin { registry, active: release, previous: None, reason, disabled: None };
    Transaction::begin(store, operation, Some(after))
}

/// Starts updating `plugin` to `release` (any release other than the active one; when
/// it is the kept previous release, its files are reused).
pub fn begin_update<'s>(
    store: &'s mut StateStore,
    plugin: &PluginId,
    release: InstalledRelease,
) -> Result<Transaction<'s>, ActivateError> {
    no_pending(store)?;
    let before = installed(store, plugin)?.clone();
    if before.active.version == release.version {
        return Err(ActivateError::SameRelease { plugin: plugin.clone(), version: release.version });
    }
    let reuse = before.refers_to(&release.version);
    let operation = Operation {
        kind: OperationKind::Update,
        plugin: plugin.clone(),
        from: Some(before.active.version.clone()),
        to: Some(release.version.clone()),
        phase: if reuse { Phase::Staged } else { Phase::Prepared },
        before: Some(before.clone()),
    };
    let after = InstalledPlugin { active: release, previous: Some(before.active.clone()), disabled: None, ..before };
    Transaction::begin(store, operation, Some(after))
}

/// Starts rolling `plugin` back to its kept previous release.
pub fn begin_rollback<'s>(store: &'s mut StateStore, plugin: &PluginId) -> Result<Transaction<'s>, ActivateError> {
    no_pending(store)?;
    let before = installed(store, plugin)?.clone();
    let Some(previous) = before.previous.clone() else {
        return Err(ActivateError::NoPrevious { plugin: plugin.clone() });
    };
    let operation = Operation {
        kind: OperationKind::Rollback,
        plugin: plugin.clone(),
        from: Some(before.active.version.clone()),
        to: Some(previous.version.clone()),
        phase: Phase::Staged,
        before: Some(before.clone()),
    };
    let after = InstalledPlugin { active: previous, previous: Some(before.active.clone()), disabled: None, ..before };
    Transaction::begin(store, operation, Some(after))
}

/// Starts removing `plugin` (its releases, pointer and configuration directory).
pub fn begin_remove<'s>(store: &'s mut StateStore, plugin: &PluginId) -> Result<Transaction<'s>, ActivateError> {
    no_pending(store)?;
    let before = installed(store, plugin)?.clone();
    let operation = Operation {
        kind: OperationKind::Remove,
        plugin: plugin.clone(),
        from: Some(before.active.version.clone()),
        to: None,
        phase: Phase::Staged,
        before: Some(before),
    };
    Transaction::begin(store, operation, None)
}

fn no_pending(store: &StateStore) -> Result<(), ActivateError> {
    match store.state().pending().first() {
        Some(operation) => Err(ActivateError::Pending { operation: Box::new(operation.clone()) }),
        None => Ok(()),
    }
}

fn installed<'a>(store: &'a StateStore, plugin: &PluginId) -> Result<&'a InstalledPlugin, ActivateError> {
    store.state().plugin(plugin).ok_or_else(|| ActivateError::NotInstalled { plugin: plugin.clone() })
}

impl<'s> Transaction<'s> {
    fn begin(
        store: &'s mut StateStore,
        operation: Operation,
        after: Option<InstalledPlugin>,
    ) -> Result<Self, ActivateError> {
        // A release reused as it is (rollback, update back to the kept previous one) must
        // still be on disk, or the switch would make a missing directory active.
        if operation.phase == Phase::Staged
            && let Some(version) = &operation.to
        {
            let path = store.data_dir().release_dir(&operation.plugin, version);
            if !path.is_dir() {
                return Err(ActivateError::ReleaseMissing {
                    plugin: operation.plugin.clone(),
                    version: version.clone(),
                    path,
                });
            }
        }
        let journal = operation.clone();
        store.update(|s| s.set_pending(vec![journal]))?;
        let tx = Self { store, operation, after, settled: false };
        // Leftovers of an earlier crash (a stale directory of the target release, temp
        // files) go now, so the target directory does not exist, and its parent does,
        // as extraction wants.
        collect_garbage(tx.store, &tx.operation.plugin)?;
        if tx.operation.phase == Phase::Prepared {
            tx.store.checkpoint()?;
            crate::fs::create_dir_all(&tx.store.data_dir().plugin_dir(&tx.operation.plugin))?;
        }
        Ok(tx)
    }

    /// The operation and how far it got.
    pub fn operation(&self) -> &Operation {
        &self.operation
    }

    /// The data dir.
    pub fn data_dir(&self) -> &DataDir {
        self.store.data_dir()
    }

    /// Where the files of the release becoming active go (install, update) or are
    /// (rollback); `None` for a removal. Extraction stages in a temp directory inside
    /// `plugins/<id>/` and renames it here; leftovers of an interrupted extraction are
    /// deleted by cleanup like any entry the state does not refer to.
    pub fn target_dir(&self) -> Option<PathBuf> {
        let to = self.operation.to.as_ref()?;
        Some(self.store.data_dir().release_dir(&self.operation.plugin, to))
    }

    /// Whether the target release's files are in place already (a rollback, or an
    /// update back to the kept previous release): nothing to download.
    pub fn target_is_ready(&self) -> bool {
        self.operation.phase >= Phase::Staged
    }

    /// Records that the target directory is complete and verified.
    pub fn staged(&mut self) -> Result<(), ActivateError> {
        self.expect(&[Phase::Prepared], "staged")?;
        if let (Some(path), Some(version)) = (self.target_dir(), self.operation.to.clone())
            && !path.is_dir()
        {
            return Err(ActivateError::ReleaseMissing { plugin: self.operation.plugin.clone(), version, path });
        }
        self.set_phase(Phase::Staged)
    }

    /// Records that the host stopped the running release.
    pub fn stopped(&mut self) -> Result<(), ActivateError> {
        self.expect(&[Phase::Staged], "stopped")?;
        self.set_phase(Phase::Stopped)
    }

    /// The commit point: records the new active release (or the removal) and the phase
    /// `Switched` in one atomic write of the state file.
    pub fn switch(&mut self) -> Result<(), ActivateError> {
        self.expect(&[Phase::Staged, Phase::Stopped], "switch")?;
        let mut operation = self.operation.clone();
        operation.phase = Phase::Switched;
        let plugin = operation.plugin.clone();
        let after = self.after.clone();
        let journal = operation.clone();
        self.store.update(move |state| {
            match after {
                Some(record) => {
                    if let Ok(vendor) = plugin.vendor().parse::<VendorId>() {
                        state.vendors.entry(vendor).or_insert_with(|| record.registry.clone());
                    }
                    let mut kept = vec![&record.active.version];
                    kept.extend(record.previous.as_ref().map(|p| &p.version));
                    state.consents.retain_versions(&plugin, &kept);
                    state.plugins_mut().insert(plugin.clone(), record);
                }
                None => {
                    state.plugins_mut().remove(&plugin);
                    state.consents.forget(&plugin);
                    state.pins.remove(&plugin);
                    state.policies.plugins.remove(&plugin);
                }
            }
            state.set_pending(vec![journal]);
        })?;
        self.operation = operation;
        Ok(())
    }

    /// Undoes the switch (the new release failed to start): the previous record comes
    /// back in one atomic write, with the phase `Stopped`; then [`abort`](Self::abort).
    pub fn revert(&mut self) -> Result<(), ActivateError> {
        self.expect(&[Phase::Switched], "revert")?;
        if self.operation.kind == OperationKind::Remove {
            return Err(ActivateError::WrongPhase { step: "revert", operation: Box::new(self.operation.clone()) });
        }
        let mut operation = self.operation.clone();
        operation.phase = Phase::Stopped;
        let plugin = operation.plugin.clone();
        let before = operation.before.clone();
        let journal = operation.clone();
        self.store.update(move |state| {
            match before {
                Some(record) => state.plugins_mut().insert(plugin, record),
                None => state.plugins_mut().remove(&plugin),
            };
            state.set_pending(vec![journal]);
        })?;
        self.operation = operation;
        Ok(())
    }

    /// Completes a switched operation: rewrites the pointer, deletes what is no longer
    /// referenced (older releases; everything of a removed plugin) and clears the journal.
    pub fn finish(mut self) -> Result<(), ActivateError> {
        self.expect(&[Phase::Switched], "finish")?;
        self.settled = true;
        settle(self.store, std::slice::from_ref(&self.operation.plugin), &mut || {})
    }

    /// Undoes an operation that has not switched (or was reverted): deletes the new
    /// release's files and clears the journal. The active release is untouched.
    pub fn abort(mut self) -> Result<(), ActivateError> {
        self.expect(&[Phase::Prepared, Phase::Staged, Phase::Stopped], "abort")?;
        self.settled = true;
        settle(self.store, std::slice::from_ref(&self.operation.plugin), &mut || {})
    }

    fn expect(&self, phases: &[Phase], step: &'static str) -> Result<(), ActivateError> {
        if phases.contains(&self.operation.phase) {
            Ok(())
        } else {
            Err(ActivateError::WrongPhase { step, operation: Box::new(self.operation.clone()) })
        }
    }

    fn set_phase(&mut self, phase: Phase) -> Result<(), ActivateError> {
        let mut operation = self.operation.clone();
        operation.phase = phase;
        let journal = operation.clone();
        self.store.update(|s| s.set_pending(vec![journal]))?;
        self.operation = operation;
        Ok(())
    }

    #[cfg(test)]
    fn checkpoint(&mut self) -> Result<(), StateError> {
        self.store.checkpoint()
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // An early return (`?`) in the caller: settle now as recovery would, so the
        // store is usable again. If this fails too, the journal stays for `recover`.
        if let Err(error) = settle(self.store, std::slice::from_ref(&self.operation.plugin), &mut || {}) {
            tracing::warn!(%error, operation = %self.operation, "could not settle an unfinished operation; recovery will");
        }
    }
}

/// A new plugin for [`begin_installs`].
#[derive(Clone, Debug)]
pub struct NewInstall {
    /// The plugin.
    pub plugin: PluginId,
    /// The release to install.
    pub release: InstalledRelease,
    /// The registry it comes from.
    pub registry: RegistryName,
    /// Why it is installed.
    pub reason: InstallReason,
}

/// The install of several new plugins as one transaction: they become active together
/// (one switch) or not at all. See the module documentation for its steps and
/// barriers. Dropping it without [`commit`](Self::commit) or [`abort`](Self::abort)
/// settles it the way [`recover`] would.
#[derive(Debug)]
pub struct Batch<'s> {
    store: &'s mut StateStore,
    operations: Vec<Operation>,
    after: Vec<InstalledPlugin>,
    settled: bool,
}

/// Starts installing `installs` (new plugins, dependencies first) as one transaction:
/// one durable journal write naming them all, then each plugin's leftovers of an
/// earlier crash are deleted and its directory created.
pub fn begin_installs(store: &mut StateStore, installs: Vec<NewInstall>) -> Result<Batch<'_>, ActivateError> {
    begin_installs_with(store, installs, |_| {})
}

/// [`begin_installs`], with `also` changing the state in the journal's write: one
/// durable write instead of two. Nothing is written when the batch is refused.
pub fn begin_installs_with(
    store: &mut StateStore,
    installs: Vec<NewInstall>,
    also: impl FnOnce(&mut State),
) -> Result<Batch<'_>, ActivateError> {
    let journalled = journal_installs(store, installs, also)?;
    Ok(journalled.resume(store))
}

/// A batch of new installs whose journal is durable and whose plugins' directories are
/// ready, not holding the state store: what a cold install journals *before* it
/// verifies the releases' signatures and asks for consent, so that the journal's
/// barriers run while the last envelopes and records are still in flight.
/// [`resume`](Self::resume) makes it the [`Batch`]; [`abort`](Self::abort) undoes it.
/// Dropped without either (a panic), the journal stays for [`recover`] to settle at the
/// next open, as after a crash.
#[derive(Debug)]
#[must_use = "a journalled batch is resumed or aborted"]
pub struct Journalled {
    operations: Vec<Operation>,
    after: Vec<InstalledPlugin>,
}

impl Journalled {
    /// The batch, in `store` (the one the journal was written to).
    pub fn resume(self, store: &mut StateStore) -> Batch<'_> {
        Batch { store, operations: self.operations, after: self.after, settled: false }
    }

    /// Undoes the batch before any of its files was written: deletes its plugins'
    /// directories and clears the journal. Nothing is installed.
    pub fn abort(self, store: &mut StateStore) -> Result<(), ActivateError> {
        self.resume(store).abort()
    }

    /// The releases journalled, in order.
    pub fn installs(&self) -> impl Iterator<Item = (&PluginId, &InstalledRelease)> {
        self.operations.iter().zip(&self.after).map(|(operation, after)| (&operation.plugin, &after.active))
    }
}

/// The first half of [`begin_installs_with`]: the journal, durable, and each plugin's
/// leftovers deleted and directory created; see [`Journalled`].
pub fn journal_installs(
    store: &mut StateStore,
    installs: Vec<NewInstall>,
    also: impl FnOnce(&mut State),
) -> Result<Journalled, ActivateError> {
    no_pending(store)?;
    let mut vendors: BTreeMap<VendorId, RegistryName> = BTreeMap::new();
    for install in &installs {
        if let Some(installed) = store.state().plugin(&install.plugin) {
            return Err(ActivateError::AlreadyInstalled {
                plugin: install.plugin.clone(),
                version: installed.active.version.clone(),
            });
        }
        if let Ok(vendor) = install.plugin.vendor().parse::<VendorId>() {
            // Bound already, or bound by an earlier plugin of this batch at its switch.
            let bound = store.state().vendor_registry(&vendor).or_else(|| vendors.get(&vendor)).cloned();
            match bound {
                Some(bound) if bound != install.registry => {
                    return Err(ActivateError::VendorBoundElsewhere {
                        plugin: install.plugin.clone(),
                        vendor: vendor.to_string(),
                        bound,
                        offered: install.registry.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    vendors.insert(vendor, install.registry.clone());
                }
            }
        }
    }
    let (operations, after): (Vec<Operation>, Vec<InstalledPlugin>) = installs
        .into_iter()
        .map(|install| {
            let operation = Operation {
                kind: OperationKind::Install,
                plugin: install.plugin,
                from: None,
                to: Some(install.release.version.clone()),
                phase: Phase::Prepared,
                before: None,
            };
            let after = InstalledPlugin {
                registry: install.registry,
                active: install.release,
                previous: None,
                reason: install.reason,
                disabled: None,
            };
            (operation, after)
        })
        .unzip();
    // Durable before any file it covers can be: after a power loss recovery finds
    // every directory the batch may have written.
    let journal = operations.clone();
    store.update(|s| {
        also(s);
        s.set_pending(journal);
    })?;
    // A failure past the journal settles the batch (the `Batch`'s drop) before it returns.
    let batch = Batch { store, operations, after, settled: false };
    for operation in &batch.operations {
        collect_garbage(batch.store, &operation.plugin)?;
        batch.store.checkpoint()?;
        crate::fs::create_dir_all(&batch.store.data_dir().plugin_dir(&operation.plugin))?;
    }
    Ok(batch.journalled())
}

impl Batch<'_> {
    /// The batch without its hold on the state store (nothing written).
    fn journalled(mut self) -> Journalled {
        self.settled = true;
        Journalled { operations: std::mem::take(&mut self.operations), after: std::mem::take(&mut self.after) }
    }

    /// The operations, in the order given to [`begin_installs`].
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The data dir.
    pub fn data_dir(&self) -> &DataDir {
        self.store.data_dir()
    }

    /// Where the files of the `index`th release go (see [`Transaction::target_dir`]).
    pub fn target_dir(&self, index: usize) -> Option<PathBuf> {
        let operation = self.operations.get(index)?;
        Some(self.store.data_dir().release_dir(&operation.plugin, operation.to.as_ref()?))
    }

    /// The commit point, and the batch's end: checks every release's directory is
    /// there, writes each plugin's `current` pointer, flushes every file the batch
    /// wrote and the new state together (one `syncfs` on Linux: extraction there
    /// writes unflushed; elsewhere the files were flushed as they were written and only
    /// the state file is), then records every plugin as active and clears the journal
    /// in one rename, made durable before this returns.
    ///
    /// There is no separate `Staged` or `Switched` write and no cleanup after it: the
    /// plugins are new, so the state before the batch refers to nothing of theirs that
    /// a cleanup would delete (rule 3 of the module documentation has nothing to order),
    /// [`begin_installs`] deleted their leftovers, and the pointers are written before
    /// the switch (a pointer of a plugin that did not switch is deleted with its
    /// directory by recovery, which treats an install that did not switch the same way
    /// whether it was staged or not). On error nothing is active and the batch is
    /// settled when dropped (or by [`recover`]). `also` changes the state in the same
    /// write (the vendor bindings the resolution inferred); `step` is called after each
    /// pointer (the lifecycle's crash points).
    pub fn commit(self, step: &mut dyn FnMut(), also: impl FnOnce(&mut State)) -> Result<(), ActivateError> {
        self.commit_with(step, &[], also)
    }

    /// [`commit`](Self::commit) that also writes `files` in the commit's flush, renamed
    /// into place (their directories synced) before the state's rename
    /// ([`StateStore::update_committing`]): the publishers' pins the batch's releases
    /// were verified under, which then advance with the commit at the cost of one
    /// directory sync instead of a flush of their own. A batch that does not commit
    /// leaves them as they were (verified again from the older pins next time).
    pub fn commit_with(
        mut self,
        step: &mut dyn FnMut(),
        files: &[(&Path, &[u8])],
        also: impl FnOnce(&mut State),
    ) -> Result<(), ActivateError> {
        for operation in &self.operations {
            if operation.phase != Phase::Prepared {
                return Err(ActivateError::WrongPhase { step: "commit", operation: Box::new(operation.clone()) });
            }
        }
        for index in 0..self.operations.len() {
            let (Some(path), Some(version)) = (self.target_dir(index), self.operations[index].to.clone()) else {
                continue;
            };
            if !path.is_dir() {
                let plugin = self.operations[index].plugin.clone();
                return Err(ActivateError::ReleaseMissing { plugin, version, path });
            }
        }
        for (operation, record) in self.operations.iter().zip(&self.after) {
            self.store.checkpoint()?;
            let pointer = CurrentPointer { plugin: operation.plugin.clone(), record: record.clone() };
            let bytes = serde_json::to_vec_pretty(&pointer).map_err(StateError::Serialize)?;
            crate::fs::write_atomic_before_flush(&self.store.data_dir().current_pointer(&operation.plugin), &bytes)?;
            step();
        }
        // The plugins directory on another file system (a mount point) is flushed on
        // its own: the state's flush covers only the data dir's.
        let plugins_root = self.store.data_dir().plugins_dir();
        if crate::fs::syncfs_available() && !crate::fs::same_file_system(self.store.data_dir().root(), &plugins_root) {
            crate::fs::sync_filesystem(&plugins_root)?;
        }
        let operations = self.operations.clone();
        let after = self.after.clone();
        self.store.update_committing(files, move |state| {
            for (operation, record) in operations.iter().zip(after) {
                let plugin = &operation.plugin;
                if let Ok(vendor) = plugin.vendor().parse::<VendorId>() {
                    state.vendors.entry(vendor).or_insert_with(|| record.registry.clone());
                }
                state.consents.retain_versions(plugin, &[&record.active.version]);
                state.plugins_mut().insert(plugin.clone(), record);
            }
            also(state);
            state.set_pending(Vec::new());
        })?;
        self.settled = true;
        Ok(())
    }

    /// Undoes a batch that has not committed: deletes every new release's files and
    /// clears the journal. Nothing is installed.
    pub fn abort(mut self) -> Result<(), ActivateError> {
        self.settled = true;
        settle(self.store, &self.plugins(), &mut || {})
    }

    fn plugins(&self) -> Vec<PluginId> {
        self.operations.iter().map(|o| o.plugin.clone()).collect()
    }

    #[cfg(test)]
    fn checkpoint(&mut self) -> Result<(), StateError> {
        self.store.checkpoint()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Err(error) = settle(self.store, &self.plugins(), &mut || {}) {
            tracing::warn!(%error, plugins = self.operations.len(), "could not settle an unfinished install; recovery will");
        }
    }
}

/// Brings the files of `plugins` in line with their records in the state file and
/// clears the journal: the one cleanup used by finish, abort and recovery. `step` is
/// called after each plugin's files are settled (the lifecycle's crash points).
///
/// Barriers: the pointers are written unflushed where `syncfs` exists, and the
/// journal's clearing flushes them with everything else before its rename
/// ([`Flush::FileSystem`]), then syncs the directory, so an operation reported done is
/// not reported again after a power loss. The deletions need no barrier of their own:
/// they only remove what the state file (durable since the switch) no longer refers to.
fn settle(store: &mut StateStore, plugins: &[PluginId], step: &mut dyn FnMut()) -> Result<(), ActivateError> {
    for plugin in plugins {
        if let Some(record) = store.state().plugin(plugin).cloned() {
            store.checkpoint()?;
            let pointer = CurrentPointer { plugin: plugin.clone(), record };
            let bytes = serde_json::to_vec_pretty(&pointer).map_err(StateError::Serialize)?;
            crate::fs::write_atomic_before_flush(&store.data_dir().current_pointer(plugin), &bytes)?;
        }
        collect_garbage(store, plugin)?;
        step();
    }
    store.update_flushing(Flush::FileSystem, Rename::Durable, |s| s.set_pending(Vec::new()))?;
    Ok(())
}

/// Deletes everything of `plugin` the state file does not refer to: in
/// `plugins/<id>/`, every entry but the active release, the kept previous one and the
/// pointer; of a plugin that is not installed, its whole directory and configuration.
/// Returns what was deleted.
fn collect_garbage(store: &mut StateStore, plugin: &PluginId) -> Result<Vec<PathBuf>, ActivateError> {
    let dir = store.data_dir().clone();
    let plugin_dir = dir.plugin_dir(plugin);
    let mut deleted = vec![];
    let Some(record) = store.state().plugin(plugin).cloned() else {
        for path in [plugin_dir, dir.config_dir(plugin)] {
            if path.exists() {
                store.checkpoint()?;
                remove_all(&path)?;
                deleted.push(path);
            }
        }
        return Ok(deleted);
    };
    let entries = match fs::read_dir(&plugin_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(deleted),
        Err(e) => return Err(FsError::new("listing", &plugin_dir, e).into()),
    };
    let pointer = dir.current_pointer(plugin);
    let mut garbage = vec![];
    for entry in entries {
        let path = entry.map_err(|e| FsError::new("listing", &plugin_dir, e))?.path();
        let referenced = path == pointer
            || path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Version>().ok())
                .is_some_and(|v| record.refers_to(&v) && dir.release_dir(plugin, &v) == path);
        if !referenced {
            garbage.push(path);
        }
    }
    garbage.sort();
    for path in garbage {
        store.checkpoint()?;
        remove_all(&path)?;
        deleted.push(path);
    }
    Ok(deleted)
}

fn remove_all(path: &Path) -> Result<(), FsError> {
    let result = retry_while_in_use(file_in_use, &IN_USE_BACKOFF, || match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    });
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FsError::new("deleting", path, e)),
        _ => Ok(()),
    }
}

/// How an interrupted operation was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It had not switched: undone, the active release is the one before it.
    RolledBack,
    /// It had switched: cleanup finished, the new state stands.
    Completed,
}

/// What the host still has to be told after recovery, because the crash happened
/// between a change on disk and the hook that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostAction {
    /// Nothing: the host never heard of the interrupted change.
    None,
    /// Start this release of the plugin (it was stopped, or it replaced a stopped one).
    Start(Version),
    /// A new plugin: register it, then start it.
    RegisterAndStart(Version),
    /// The plugin is gone: unregister it.
    Unregister,
}

/// What [`recover`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The interrupted operation, as journalled.
    pub operation: Operation,
    /// Undone or completed.
    pub outcome: Outcome,
    /// The active release now; `None` if the plugin is not installed.
    pub active: Option<Version>,
    /// What the host must still be told.
    pub host: HostAction,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = &self.operation;
        let done = match self.outcome {
            Outcome::RolledBack => "was undone",
            Outcome::Completed => "was completed",
        };
        write!(f, "an interrupted {} of {} {done}; ", op.kind, op.plugin)?;
        match &self.active {
            Some(version) => write!(f, "{} {version} is active", op.plugin),
            None => write!(f, "{} is not installed", op.plugin),
        }
    }
}

/// Settles the transaction a crash interrupted, if any: each of its operations undone
/// before its switch, completed after it (the operations of one transaction switch
/// together, so they are all undone or all completed). Call it once after opening the
/// store, before anything else. Safe to run again if it is itself interrupted.
/// Returns one [`Recovery`] per operation, empty when nothing was pending.
pub fn recover(store: &mut StateStore) -> Result<Vec<Recovery>, ActivateError> {
    let operations = store.state().pending().to_vec();
    if operations.is_empty() {
        return Ok(Vec::new());
    }
    let plugins: Vec<PluginId> = operations.iter().map(|o| o.plugin.clone()).collect();
    settle(store, &plugins, &mut || {})?;
    let recoveries = operations
        .into_iter()
        .map(|operation| {
            let active = store.state().plugin(&operation.plugin).map(|p| p.active.version.clone());
            let (outcome, host) = if operation.phase == Phase::Switched {
                let host = match (operation.kind, &active) {
                    (OperationKind::Install, Some(v)) => HostAction::RegisterAndStart(v.clone()),
                    (OperationKind::Remove, _) => HostAction::Unregister,
                    (_, Some(v)) => HostAction::Start(v.clone()),
                    (_, None) => HostAction::None,
                };
                (Outcome::Completed, host)
            } else {
                let host = match &active {
                    Some(v) if operation.phase == Phase::Stopped => HostAction::Start(v.clone()),
                    _ => HostAction::None,
                };
                (Outcome::RolledBack, host)
            };
            Recovery { operation, outcome, active, host }
        })
        .collect();
    Ok(recoveries)
}

/// Deletes unreferenced files of every installed plugin (stale releases, temp files),
/// for example after [`StateStore::repair`]. Refused while an operation is pending.
pub fn sweep(store: &mut StateStore) -> Result<Vec<PathBuf>, ActivateError> {
    no_pending(store)?;
    let plugins: Vec<PluginId> = store.state().plugins().keys().cloned().collect();
    let mut deleted = vec![];
    for plugin in plugins {
        deleted.extend(collect_garbage(store, &plugin)?);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
