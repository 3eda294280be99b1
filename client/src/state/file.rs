//! The state file: its types, strict reading, atomic writing under the lock, repair.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use trellis_schema::{PluginId, Sha256, VendorId};

use super::disabled::Disabled;
use super::journal::Operation;
use super::layout::{CURRENT, DataDir, InstallId};
use crate::consent::Consents;
use crate::fs::{Flush, FsError, LockedFile, Rename, write_atomic_flushing};
use crate::policy::Policies;
use crate::registry_name::RegistryName;

/// The state file format this client reads and writes. A file with a higher version
/// was written by a newer client and is refused, not rewritten.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// Why a plugin is installed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallReason {
    /// The user asked for it.
    #[default]
    Requested,
    /// Another plugin needs it.
    Dependency,
}

/// One installed release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledRelease {
    /// The version.
    pub version: Version,
    /// The plugins this release depends on, for the dependents check on removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<PluginId>,
    /// SHA-256 of the release's package, as its signed manifest gives it: what a
    /// blocklist entry with a hash is matched against. Absent in records written by
    /// older clients (the registry's index doc lists it then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_sha256: Option<Sha256>,
}

/// An installed plugin: its active release and the previous one kept for rollback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPlugin {
    /// The registry it came from (and the only one it may be updated from).
    pub registry: RegistryName,
    /// The release in use; its directory is always complete.
    pub active: InstalledRelease,
    /// The release before the last update or rollback, kept on disk for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<InstalledRelease>,
    /// Why it is installed.
    #[serde(default)]
    pub reason: InstallReason,
    /// Set when the plugin was disabled without being removed (the blocklist's rapid
    /// response, or a release signed only by revoked keys): cause, reason and since
    /// when. The host must not start it. Cleared by an update or rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
}

impl InstalledPlugin {
    /// Whether the record refers to `version`, as active or previous release.
    pub fn refers_to(&self, version: &Version) -> bool {
        &self.active.version == version || self.previous.as_ref().is_some_and(|p| &p.version == version)
    }
}

/// A trial of a paid plugin: started at its first install, for the days its release
/// offered then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// When it started (the first install).
    pub started: Timestamp,
    /// How many days it lasts.
    pub days: u32,
}

impl Trial {
    /// When it ends.
    pub fn ends(&self) -> Timestamp {
        self.started.saturating_add(jiff::SignedDuration::from_hours(i64::from(self.days) * 24)).unwrap_or(self.started)
    }

    /// Whether it still runs at `now`.
    pub fn is_running(&self, now: Timestamp) -> bool {
        now < self.ends()
    }
}

/// The content of `plugins/<id>/current`: the active release, written after every
/// switch. For people looking at the data dir, and for [`StateStore::repair`] to
/// rebuild the installed set when the state file is lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentPointer {
    /// The plugin.
    pub plugin: PluginId,
    /// Its record at the last completed operation.
    #[serde(flatten)]
    pub record: InstalledPlugin,
}

/// Everything the client remembers between runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    schema_version: u32,
    /// This installation's random id (staged rollouts).
    pub install_id: InstallId,
    #[serde(default)]
    plugins: BTreeMap<PluginId, InstalledPlugin>,
    /// Which registry serves each publisher namespace. A plugin of a bound vendor is only
    /// ever taken from that registry (the defence against dependency confusion).
    #[serde(default)]
    pub vendors: BTreeMap<VendorId, RegistryName>,
    /// Permissions the user agreed to.
    #[serde(default)]
    pub consents: Consents,
    /// Pins: the release each pinned plugin is held at (updates and resolution keep it).
    #[serde(default)]
    pub pins: BTreeMap<PluginId, Version>,
    /// Update policies.
    #[serde(default)]
    pub policies: Policies,
    /// When updates were last checked for on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_check: Option<Timestamp>,
    /// Trials started, per plugin (see [`crate::license`]). Kept when a plugin is
    /// removed, so a reinstall never restarts one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trials: BTreeMap<PluginId, Trial>,
    /// The journal: the operations of the transaction in flight (one for an update,
    /// rollback or removal; one per plugin for an install). Written as one object when
    /// it holds one operation, as older clients wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pending: Vec<Operation>,
    /// Fields this client does not know, kept as they were.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl State {
    /// An empty state for a new data dir.
    pub fn new(install_id: InstallId) -> Self {
        Self {
            schema_version: STATE_SCHEMA_VERSION,
            install_id,
            plugins: BTreeMap::new(),
            vendors: BTreeMap::new(),
            consents: Consents::default(),
            pins: BTreeMap::new(),
            policies: Policies::default(),
            last_update_check: None,
            trials: BTreeMap::new(),
            pending: Vec::new(),
            extra: Map::new(),
        }
    }

    /// The installed plugins. Changed only by [`crate::activate`].
    pub fn plugins(&self) -> &BTreeMap<PluginId, InstalledPlugin> {
        &self.plugins
    }

    /// One installed plugin.
    pub fn plugin(&self, plugin: &PluginId) -> Option<&InstalledPlugin> {
        self.plugins.get(plugin)
    }

    /// The active release of every installed plugin, as the resolver's request takes it.
    pub fn installed_versions(&self) -> BTreeMap<PluginId, Version> {
        self.plugins.iter().map(|(id, p)| (id.clone(), p.active.version.clone())).collect()
    }

    /// Installed plugins whose active release depends on `plugin`.
    pub fn dependents(&self, plugin: &PluginId) -> Vec<&PluginId> {
        self.plugins.iter().filter(|(_, p)| p.active.dependencies.contains(plugin)).map(|(id, _)| id).collect()
    }

    /// The operations of the transaction in flight, if one was interrupted (empty
    /// otherwise). [`crate::activate::recover`] settles them.
    pub fn pending(&self) -> &[Operation] {
        &self.pending
    }

    /// The registry bound to `vendor`, if any.
    pub fn vendor_registry(&self, vendor: &VendorId) -> Option<&RegistryName> {
        self.vendors.get(vendor)
    }

    /// Binds `vendor`'s namespace to `registry`, replacing an earlier binding: the
    /// user's explicit choice (`trellis registry bind`). Installs bind a vendor
    /// implicitly to the first registry that served it, and bindings outlive removals.
    pub fn bind_vendor(&mut self, vendor: VendorId, registry: RegistryName) -> Option<RegistryName> {
        self.vendors.insert(vendor, registry)
    }

    /// Marks `plugin` disabled (`Some`), or enabled again with `None`. Returns
    /// whether the plugin is installed.
    pub fn set_disabled(&mut self, plugin: &PluginId, mark: Option<Disabled>) -> bool {
        match self.plugins.get_mut(plugin) {
            Some(record) => {
                record.disabled = mark;
                true
            }
            None => false,
        }
    }

    pub(crate) fn plugins_mut(&mut self) -> &mut BTreeMap<PluginId, InstalledPlugin> {
        &mut self.plugins
    }

    pub(crate) fn set_pending(&mut self, operations: Vec<Operation>) {
        self.pending = operations;
    }

    fn check(&self) -> Result<(), String> {
        for (id, plugin) in &self.plugins {
            if plugin.previous.as_ref().is_some_and(|p| p.version == plugin.active.version) {
                return Err(format!("plugin {id} has {} as both active and previous release", plugin.active.version));
            }
        }
        Ok(())
    }
}

/// A failure reading or writing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, locking or renaming failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The state file does not parse or is inconsistent.
    #[error(
        "state file {} is damaged: {problem}. It was left as it is; run `trellis repair` to set it aside \
         as state.json.corrupt-N and rebuild the list of installed plugins from the plugins directory",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong, with the line and column where the parser knows them.
        problem: String,
    },
    /// The state file was written by a newer client.
    #[error(
        "state file {} has format version {found}, but this client understands up to {supported}; \
         upgrade trellis (the file was not changed)",
        path.display()
    )]
    NewerSchema {
        /// The state file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The newest version this client knows.
        supported: u32,
    },
    /// Another process holds the data-dir lock.
    #[error("another trellis process is using {}; try again when it has finished", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// A change to a data dir that was opened read-only (it cannot be written).
    #[error(
        "the data dir {} cannot be written (read-only, or owned by another user), so this command cannot change it; commands that only read (list, verify) work",
        path.display()
    )]
    ReadOnly {
        /// The data dir.
        path: PathBuf,
    },
    /// The operating system gave no randomness for the install id.
    #[error("could not generate an install id: {0}")]
    Random(String),
    /// Serialising the state failed (a bug; the file was not changed).
    #[error("could not serialise the state: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A crash simulated by a test.
    #[cfg(test)]
    #[error("injected crash")]
    InjectedCrash,
}

/// What [`StateStore::repair`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairReport {
    /// The state file parses (or does not exist); nothing was changed.
    NotNeeded,
    /// The damaged file was set aside and a new one written.
    Repaired {
        /// Where the damaged file now is.
        set_aside: PathBuf,
        /// Plugins found through their pointer files, now in the new state.
        recovered: Vec<(PluginId, Version)>,
        /// Plugin directories left on disk that could not be recognised.
        unrecognised: Vec<PathBuf>,
        /// Whether the install id could be read from the damaged file.
        kept_install_id: bool,
        /// The settings kept from the damaged file, for people (`"pins (2)"`).
        kept: Vec<String>,
        /// What could not be kept from it, for people (`"pin of `acme.bad`"`).
        lost: Vec<String>,
    },
}

/// The state, loaded, with the data-dir lock held until this is dropped. Every change
/// is written to disk atomically before it is visible in memory.
///
/// Hold it for one command or operation, not for the life of the host app: another
/// process (the `trellis` CLI) waits for the lock meanwhile.
#[derive(Debug)]
pub struct StateStore {
    dir: DataDir,
    state: State,
    /// The data-dir lock; `None` for a read-only data dir ([`StateStore::open_read_only`]).
    _lock: Option<LockedFile>,
    #[cfg(test)]
    pub(crate) crash_after: Option<usize>,
}

impl StateStore {
    /// Takes the data-dir lock (waiting for another process to release it) and loads the
    /// state, creating a new one if there is none. A damaged file is an error.
    pub fn open(dir: DataDir) -> Result<Self, StateError> {
        let lock = LockedFile::acquire(&dir.lock_file())?;
        Self::load(dir, lock)
    }

    /// Like [`open`](Self::open), but fails with [`StateError::Busy`] instead of waiting.
    pub fn try_open(dir: DataDir) -> Result<Self, StateError> {
        let path = dir.lock_file();
        let lock = LockedFile::try_acquire(&path)?.ok_or(StateError::Busy { path })?;
        Self::load(dir, lock)
    }

    /// Reads the state of a data dir that cannot be written (a read-only mount, a dir
    /// owned by another user), without the lock: what another process writes meanwhile
    /// is not seen, and every change fails with [`StateError::ReadOnly`]. A missing
    /// state file reads as an empty state.
    pub fn open_read_only(dir: DataDir) -> Result<Self, StateError> {
        let path = dir.state_file();
        let state = match read(&path)? {
            Some(bytes) => parse(&path, &bytes)?,
            None => State::new(InstallId::generate().map_err(|e| StateError::Random(e.to_string()))?),
        };
        Ok(Self {
            dir,
            state,
            _lock: None,
            #[cfg(test)]
            crash_after: None,
        })
    }

    /// Whether the data dir was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self._lock.is_none()
    }

    fn load(dir: DataDir, lock: LockedFile) -> Result<Self, StateError> {
        let path = dir.state_file();
        let (state, fresh) = match read(&path)? {
            Some(bytes) => (parse(&path, &bytes)?, false),
            None => (State::new(InstallId::generate().map_err(|e| StateError::Random(e.to_string()))?), true),
        };
        let mut store = Self {
            dir,
            state,
            _lock: Some(lock),
            #[cfg(test)]
            crash_after: None,
        };
        if fresh {
            // The install id must survive the first run, so a new state is written now.
            store.write(&store.state.clone())?;
        }
        Ok(store)
    }

    /// The data dir.
    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// The state as last written.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Changes the state with `change` and writes it; on a write failure nothing changes,
    /// on disk or in memory.
    pub fn update<R>(&mut self, change: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        let mut next = self.state.clone();
        let result = change(&mut next);
        self.write(&next)?;
        self.state = next;
        Ok(result)
    }

    /// [`update`](Self::update) with the write's barriers chosen by the caller (see
    /// [`crate::fs::write_atomic_flushing`]): a transaction's commit flushes the files
    /// it wrote unflushed with [`Flush::FileSystem`]; a journal step whose loss after
    /// a power cut recovery handles the same way uses [`Rename::Lazy`]. The state
    /// file is never torn: its new bytes are always flushed before the rename.
    pub fn update_flushing<R>(
        &mut self,
        flush: Flush,
        rename: Rename,
        change: impl FnOnce(&mut State) -> R,
    ) -> Result<R, StateError> {
        self.update_writing(change, |path, bytes| write_atomic_flushing(path, bytes, flush, rename))
    }

    /// [`update_flushing`](Self::update_flushing) with `(Flush::FileSystem,
    /// Rename::Durable)` that also writes `files`, renamed into place (and their
    /// directories synced) after the shared flush and before the state's rename
    /// ([`crate::fs::write_atomic_committing`]): a transaction's commit that carries
    /// other trusted files (the publishers' pins of an install) in its one flush.
    pub fn update_committing<R>(
        &mut self,
        files: &[(&Path, &[u8])],
        change: impl FnOnce(&mut State) -> R,
    ) -> Result<R, StateError> {
        self.update_writing(change, |path, bytes| crate::fs::write_atomic_committing(files, (path, bytes)))
    }

    /// Applies `change` to a copy of the state, writes the copy with `write` (the
    /// state file's path and bytes) and adopts it once written.
    fn update_writing<R>(
        &mut self,
        change: impl FnOnce(&mut State) -> R,
        write: impl FnOnce(&Path, &[u8]) -> Result<(), crate::fs::FsError>,
    ) -> Result<R, StateError> {
        let mut next = self.state.clone();
        let result = change(&mut next);
        self.write_state(&next, write)?;
        self.state = next;
        Ok(result)
    }

    fn write(&mut self, state: &State) -> Result<(), StateError> {
        self.write_state(state, |path, bytes| write_atomic_flushing(path, bytes, Flush::File, Rename::Durable))
    }

    /// Serialises `state` and hands it to `write` with the state file's path, under
    /// the lock (refused read-only) and after the test crash point.
    fn write_state(
        &mut self,
        state: &State,
        write: impl FnOnce(&Path, &[u8]) -> Result<(), crate::fs::FsError>,
    ) -> Result<(), StateError> {
        if self._lock.is_none() {
            return Err(StateError::ReadOnly { path: self.dir.root().to_owned() });
        }
        self.checkpoint()?;
        let mut bytes = serde_json::to_vec_pretty(state).map_err(StateError::Serialize)?;
        bytes.push(b'\n');
        crate::fs::create_dir_all(self.dir.root())?;
        write(&self.dir.state_file(), &bytes)?;
        Ok(())
    }

    /// A point between two effects on disk where a test may simulate a crash. Free in
    /// normal builds.
    #[inline]
    pub(crate) fn checkpoint(&mut self) -> Result<(), StateError> {
        #[cfg(test)]
        if let Some(left) = self.crash_after.as_mut() {
            if *left == 0 {
                return Err(StateError::InjectedCrash);
            }
            *left -= 1;
        }
        Ok(())
    }

    /// Sets a damaged state file aside as `state.json.corrupt-<n>` and writes a new one
    /// with the plugins found through their `plugins/<id>/current` pointers. The install
    /// id, vendor bindings, consents, pins and policies of the damaged file are kept
    /// where they can still be read (entry by entry; members before a truncation), and
    /// the report lists what was kept and what was lost. Does nothing when the file parses, and refuses a file written
    /// by a newer client.
    pub fn repair(dir: DataDir) -> Result<RepairReport, StateError> {
        let lock = LockedFile::acquire(&dir.lock_file())?;
        let path = dir.state_file();
        let Some(bytes) = read(&path)? else { return Ok(RepairReport::NotNeeded) };
        match parse(&path, &bytes) {
            Ok(_) => return Ok(RepairReport::NotNeeded),
            Err(StateError::Corrupt { .. }) => {}
            Err(other) => return Err(other),
        }
        let set_aside = free_corrupt_name(&path);
        fs::rename(&path, &set_aside).map_err(|e| FsError::new("setting aside", &path, e))?;
        crate::fs::sync_dir(dir.root())?;

        let mut salvaged = super::salvage::Salvaged::read(&bytes);
        let kept_install_id = salvaged.install_id.is_some();
        let mut state = State::new(match salvaged.install_id.clone() {
            Some(id) => id,
            None => InstallId::generate().map_err(|e| StateError::Random(e.to_string()))?,
        });
        salvaged.apply(&mut state);
        let (recovered, unrecognised) = scan_pointers(&dir, &mut state)?;
        let mut store = Self {
            dir,
            state: state.clone(),
            _lock: Some(lock),
            #[cfg(test)]
            crash_after: None,
        };
        store.write(&state)?;
        Ok(RepairReport::Repaired {
            set_aside,
            recovered,
            unrecognised,
            kept_install_id,
            kept: salvaged.kept,
            lost: salvaged.lost,
        })
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("reading", path, e).into()),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<State, StateError> {
    let corrupt = |problem: String| StateError::Corrupt { path: path.to_owned(), problem };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("the file is empty (was a write interrupted?)".into()));
    }
    #[derive(Deserialize)]
    struct Probe {
        schema_version: Option<Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a JSON object: {e}")))?;
    match probe.schema_version.as_ref().map(Value::as_u64) {
        None => return Err(corrupt("it has no schema_version field".into())),
        Some(Some(found)) if found > u64::from(STATE_SCHEMA_VERSION) => {
            return Err(StateError::NewerSchema { path: path.to_owned(), found, supported: STATE_SCHEMA_VERSION });
        }
        Some(Some(found)) if found == u64::from(STATE_SCHEMA_VERSION) => {}
        Some(_) => {
            return Err(corrupt(format!(
                "schema_version {} is not one this client knows",
                Value::from(probe.schema_version)
            )));
        }
    }
    let state: State = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    state.check().map_err(corrupt)?;
    Ok(state)
}

fn free_corrupt_name(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "state.json".into(), |n| n.to_string_lossy().into_owned());
    (1..)
        .map(|n| path.with_file_name(format!("{name}.corrupt-{n}")))
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.with_file_name(format!("{name}.corrupt")))
}

type Scan = (Vec<(PluginId, Version)>, Vec<PathBuf>);

fn scan_pointers(dir: &DataDir, state: &mut State) -> Result<Scan, StateError> {
    let plugins_dir = dir.plugins_dir();
    let entries = match fs::read_dir(&plugins_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((vec![], vec![])),
        Err(e) => return Err(FsError::new("listing", &plugins_dir, e).into()),
    };
    let (mut recovered, mut unrecognised) = (vec![], vec![]);
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new("listing", &plugins_dir, e))?;
        let path = entry.path();
        let pointer = fs::read(path.join(CURRENT)).ok().and_then(|b| serde_json::from_slice::<CurrentPointer>(&b).ok());
        let valid = pointer.filter(|p| {
            entry.file_name().to_str() == Some(p.plugin.as_str())
                && dir.release_dir(&p.plugin, &p.record.active.version).is_dir()
        });
        let Some(mut pointer) = valid else {
            unrecognised.push(path);
            continue;
        };
        if pointer.record.previous.as_ref().is_some_and(|p| !dir.release_dir(&pointer.plugin, &p.version).is_dir()) {
            pointer.record.previous = None;
        }
        if let Ok(vendor) = pointer.plugin.vendor().parse::<VendorId>() {
            state.vendors.entry(vendor).or_insert_with(|| pointer.record.registry.clone());
        }
        recovered.push((pointer.plugin.clone(), pointer.record.active.version.clone()));
        state.plugins.insert(pointer.plugin, pointer.record);
    }
    recovered.sort();
    unrecognised.sort();
    Ok((recovered, unrecognised))
}

/// The journal's serialized form: one operation as an object (what clients before
/// batched installs wrote and read), several as a list.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Operation;

    pub(super) fn serialize<S: Serializer>(operations: &[Operation], serializer: S) -> Result<S::Ok, S::Error> {
        match operations {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Operation>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(Box<Operation>),
            Many(Vec<Operation>),
        }
        match Option::<OneOrMany>::deserialize(deserializer)? {
            None => Ok(Vec::new()),
            Some(OneOrMany::One(one)) => Ok(vec![*one]),
            Some(OneOrMany::Many(many)) => Ok(many),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::UpdateMode;

    fn clock() -> PluginId {
        "acme.clock".parse().unwrap()
    }

    fn release(major: u64) -> InstalledRelease {
        InstalledRelease { version: Version::new(major, 0, 0), dependencies: vec![], package_sha256: None }
    }

    #[test]
    fn first_open_creates_a_state_with_a_stable_install_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        let id = StateStore::open(dir.clone()).unwrap().state().install_id.clone();
        let again = StateStore::open(dir.clone()).unwrap();
        assert_eq!(again.state().install_id, id);
        let text = fs::read_to_string(dir.state_file()).unwrap();
        assert!(text.contains("\"schema_version\": 1"), "{text}");
    }

    #[test]
    fn second_store_cannot_open_while_the_first_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let held = StateStore::open(dir.clone()).unwrap();
        let err = StateStore::try_open(dir.clone()).unwrap_err();
        assert!(matches!(err, StateError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("another trellis process"), "{err}");
        drop(held);
        assert!(StateStore::try_open(dir).is_ok());
    }

    #[test]
    fn update_persists_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let mut store = StateStore::open(dir.clone()).unwrap();
        store.update(|s| s.policies.global.mode = UpdateMode::Auto).unwrap();
        store.update(|s| s.pins.insert(clock(), Version::new(1, 0, 0))).unwrap();
        drop(store);
        let store = StateStore::open(dir).unwrap();
        assert_eq!(store.state().policies.global.mode, UpdateMode::Auto);
        assert_eq!(store.state().pins[&clock()], Version::new(1, 0, 0));
    }

    #[test]
    fn failed_write_changes_nothing_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(DataDir::new(tmp.path())).unwrap();
        store.crash_after = Some(0);
        assert!(store.update(|s| s.policies.global.mode = UpdateMode::Manual).is_err());
        assert_eq!(store.state().policies.global.mode, UpdateMode::Notify);
    }

    fn damaged(content: &str) -> (tempfile::TempDir, DataDir, StateError) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        fs::write(dir.state_file(), content).unwrap();
        let err = StateStore::open(dir.clone()).unwrap_err();
        (tmp, dir, err)
    }

    #[test]
    fn half_written_state_is_an_error_naming_the_file_and_is_left_alone() {
        let content = r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff", "plugins": {"#;
        let (_tmp, dir, err) = damaged(content);
        let text = err.to_string();
        assert!(text.contains(&dir.state_file().display().to_string()), "{text}");
        assert!(text.contains("EOF while parsing"), "{text}");
        assert!(text.contains("trellis repair"), "{text}");
        assert_eq!(fs::read_to_string(dir.state_file()).unwrap(), content);
    }

    #[test]
    fn empty_and_wrong_shaped_state_files_say_what_is_wrong() {
        assert!(damaged("").2.to_string().contains("the file is empty"));
        assert!(damaged("{}").2.to_string().contains("no schema_version"));
        assert!(damaged(r#"{"schema_version": "one"}"#).2.to_string().contains("schema_version \"one\""));
        let bad_id = r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff",
            "plugins": {"Acme.clock": {"registry": "public", "active": {"version": "1.0.0"}}}}"#;
        let err = damaged(bad_id).2.to_string();
        assert!(err.contains("must start with a lowercase letter") && err.contains("line 2"), "{err}");
        let same = r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff",
            "plugins": {"acme.clock": {"registry": "public", "active": {"version": "1.0.0"}, "previous": {"version": "1.0.0"}}}}"#;
        assert!(damaged(same).2.to_string().contains("both active and previous"));
    }

    #[test]
    fn newer_state_format_is_refused_and_not_repaired() {
        let content = r#"{"schema_version": 7, "install_id": "00112233445566778899aabbccddeeff"}"#;
        let (_tmp, dir, err) = damaged(content);
        assert!(matches!(err, StateError::NewerSchema { found: 7, .. }), "{err}");
        assert!(err.to_string().contains("upgrade trellis"), "{err}");
        assert!(matches!(StateStore::repair(dir.clone()), Err(StateError::NewerSchema { .. })));
        assert_eq!(fs::read_to_string(dir.state_file()).unwrap(), content);
    }

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let content = r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff", "future": {"x": 1}}"#;
        fs::write(dir.state_file(), content).unwrap();
        let mut store = StateStore::open(dir.clone()).unwrap();
        store.update(|s| s.policies.global.mode = UpdateMode::Auto).unwrap();
        let written: Value = serde_json::from_str(&fs::read_to_string(dir.state_file()).unwrap()).unwrap();
        assert_eq!(written["future"]["x"], 1);
    }

    #[test]
    fn repair_sets_the_damaged_file_aside_and_rebuilds_from_pointers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let record = InstalledPlugin {
            registry: "public".parse().unwrap(),
            active: release(2),
            previous: Some(release(1)),
            reason: InstallReason::Requested,
            disabled: None,
        };
        fs::create_dir_all(dir.release_dir(&clock(), &Version::new(2, 0, 0))).unwrap();
        let pointer = CurrentPointer { plugin: clock(), record };
        fs::write(dir.current_pointer(&clock()), serde_json::to_vec(&pointer).unwrap()).unwrap();
        fs::create_dir_all(dir.plugins_dir().join("junk")).unwrap();
        fs::write(dir.state_file(), r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff", "plug"#)
            .unwrap();
        fs::write(dir.root().join("state.json.corrupt-1"), "older damage").unwrap();

        let report = StateStore::repair(dir.clone()).unwrap();
        let RepairReport::Repaired { set_aside, recovered, unrecognised, kept_install_id, .. } = report else {
            panic!("expected a repair, got {report:?}");
        };
        assert_eq!(set_aside, dir.root().join("state.json.corrupt-2"));
        assert!(set_aside.exists());
        assert_eq!(recovered, [(clock(), Version::new(2, 0, 0))]);
        assert_eq!(unrecognised, [dir.plugins_dir().join("junk")]);
        assert!(kept_install_id, "the id precedes the truncation");

        let store = StateStore::open(dir.clone()).unwrap();
        let plugin = store.state().plugin(&clock()).unwrap();
        assert_eq!(plugin.active.version, Version::new(2, 0, 0));
        assert_eq!(plugin.previous, None, "1.0.0 has no directory, so it cannot be rolled back to");
        assert_eq!(store.state().vendor_registry(&"acme".parse().unwrap()).unwrap().as_str(), "public");
        drop(store);
        assert_eq!(StateStore::repair(dir).unwrap(), RepairReport::NotNeeded);
    }

    #[test]
    fn repair_keeps_a_readable_install_id() {
        let (_tmp, dir, _) =
            damaged(r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff", "plugins": 3}"#);
        let RepairReport::Repaired { kept_install_id, .. } = StateStore::repair(dir.clone()).unwrap() else {
            panic!("expected a repair");
        };
        assert!(kept_install_id);
        assert_eq!(StateStore::open(dir).unwrap().state().install_id.as_str(), "00112233445566778899aabbccddeeff");
    }

    #[test]
    fn disabling_is_recorded_and_needs_an_installed_plugin() {
        let mut state = State::new(InstallId::from_hex("00112233445566778899aabbccddeeff").unwrap());
        let mark = |reason: &str| Disabled {
            cause: super::super::DisabledCause::Unrecorded,
            reason: reason.into(),
            since: Some(Timestamp::UNIX_EPOCH),
        };
        assert!(!state.set_disabled(&clock(), Some(mark("blocked"))), "not installed");
        state.plugins_mut().insert(
            clock(),
            InstalledPlugin {
                registry: "public".parse().unwrap(),
                active: release(1),
                previous: None,
                reason: InstallReason::Requested,
                disabled: None,
            },
        );
        assert!(state.set_disabled(&clock(), Some(mark("blocked: malware"))));
        assert_eq!(state.plugin(&clock()).unwrap().disabled, Some(mark("blocked: malware")));
        assert!(state.set_disabled(&clock(), None));
        assert_eq!(state.plugin(&clock()).unwrap().disabled, None);
    }

    #[test]
    fn a_disabled_plugin_of_an_older_state_file_keeps_its_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let content = r#"{"schema_version": 1, "install_id": "00112233445566778899aabbccddeeff",
            "plugins": {"acme.clock": {"registry": "public", "active": {"version": "1.0.0"},
            "disabled": "blocklisted: steals data"}}}"#;
        fs::write(dir.state_file(), content).unwrap();
        let mut store = StateStore::open(dir.clone()).unwrap();
        let mark = store.state().plugin(&clock()).unwrap().disabled.clone().unwrap();
        assert_eq!(mark.reason, "blocklisted: steals data");
        assert_eq!(mark.cause, super::super::DisabledCause::Unrecorded);
        store.update(|s| s.policies.global.mode = UpdateMode::Auto).unwrap();
        drop(store);
        let store = StateStore::open(dir).unwrap();
        assert_eq!(store.state().plugin(&clock()).unwrap().disabled.as_ref(), Some(&mark));
    }

    #[test]
    fn dependents_lists_plugins_whose_active_release_needs_the_plugin() {
        let mut state = State::new(InstallId::from_hex("00112233445566778899aabbccddeeff").unwrap());
        let ui: PluginId = "acme.ui".parse().unwrap();
        let mut needs_ui = release(1);
        needs_ui.dependencies.push(ui.clone());
        let record = |active| InstalledPlugin {
            registry: "public".parse().unwrap(),
            active,
            previous: None,
            reason: InstallReason::Requested,
            disabled: None,
        };
        state.plugins_mut().insert(clock(), record(needs_ui));
        state.plugins_mut().insert(ui.clone(), record(release(1)));
        assert_eq!(state.dependents(&ui), [&clock()]);
        assert!(state.dependents(&clock()).is_empty());
    }

    fn arb_version() -> impl Strategy<Value = Version> {
        (0u64..5, 0u64..20, 0u64..20).prop_map(|(a, b, c)| Version::new(a, b, c))
    }

    fn arb_plugin_id() -> impl Strategy<Value = PluginId> {
        ("[a-z][a-z0-9]{0,6}", "[a-z][a-z0-9-]{0,8}[a-z0-9]").prop_map(|(v, n)| format!("{v}.{n}").parse().unwrap())
    }

    fn arb_state() -> impl Strategy<Value = State> {
        let plugin = (
            arb_version(),
            proptest::option::of(arb_version()),
            prop::collection::vec(arb_plugin_id(), 0..3),
            any::<bool>(),
        )
            .prop_filter("previous differs from active", |(a, p, _, _)| p.as_ref() != Some(a))
            .prop_map(|(active, previous, dependencies, dep)| InstalledPlugin {
                registry: "public".parse().unwrap(),
                active: InstalledRelease {
                    version: active,
                    dependencies,
                    package_sha256: Some(Sha256::of(b"package")),
                },
                previous: previous.map(|version| InstalledRelease {
                    version,
                    dependencies: vec![],
                    package_sha256: None,
                }),
                reason: if dep { InstallReason::Dependency } else { InstallReason::Requested },
                disabled: dep.then(|| Disabled {
                    cause: super::super::DisabledCause::Blocked {
                        severity: trellis_schema::blocklist::Severity::High,
                        advisory: None,
                    },
                    reason: "uploads documents".to_owned(),
                    since: Some(Timestamp::UNIX_EPOCH),
                }),
            });
        (
            any::<u128>(),
            prop::collection::btree_map(arb_plugin_id(), plugin, 0..6),
            prop::collection::btree_map(arb_plugin_id(), arb_version(), 0..3),
            proptest::option::of(0i64..2_000_000_000),
        )
            .prop_map(|(id, plugins, pins, checked)| {
                let mut state = State::new(InstallId::from_hex(&format!("{id:032x}")).unwrap());
                for (plugin, record) in &plugins {
                    state.consents.grant(plugin, &record.active.version, &[]);
                    if let Ok(vendor) = plugin.vendor().parse() {
                        state.vendors.insert(vendor, record.registry.clone());
                    }
                }
                state.plugins = plugins;
                state.pins = pins;
                state.last_update_check = checked.map(|s| Timestamp::from_second(s).unwrap());
                state
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn state_file_round_trips(state in arb_state()) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = DataDir::new(tmp.path());
            {
                let mut store = StateStore::open(dir.clone()).unwrap();
                let copy = state.clone();
                store.update(move |s| *s = copy).unwrap();
            }
            let store = StateStore::open(dir).unwrap();
            prop_assert_eq!(store.state(), &state);
        }
    }
}
