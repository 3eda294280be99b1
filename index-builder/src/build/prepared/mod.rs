//! Signing a prepared build: the signing half of a split build.
//!
//! Owns the checks a signer makes before it signs role payloads that a build *without
//! keys* ([`super::Signing::Unsigned`], the registry template's `build` job) prepared,
//! and the signing itself. The signer trusts only three things: the published site
//! (`LIVE`, signed earlier), the registry source *without* `releases/` (configuration,
//! roots, publisher records, yanks, rollouts, blocklist: a sparse checkout of the
//! pushed commit, which the build job cannot change) and its own online keys. From the
//! prepared directory it reads only metadata: the unsigned payloads of the changed
//! delegated roles (`metadata/V.<role>.json`) and the documents they list (index docs,
//! developer envelopes, publisher records, the blocklist, catalog documents). Packages
//! and deltas never reach it: the index doc signs their hashes, which a developer
//! signature vouches for (packages) or the client checks file by file against the
//! signed manifest (deltas).
//!
//! Before signing anything it refuses, naming the file and what is wrong:
//! - a role the published site does not have, the top-level `targets` role (offline
//!   keys: `scripts/publish-offline.sh`), a version other than the published one + 1,
//!   delegations other than the published ones (that would hand a role to other keys);
//! - a target dropped from a role, a target in the wrong role or bin, a listed document
//!   missing from the prepared directory or with another length or hash;
//! - an index doc whose new or changed release is not signed by its developer under the
//!   registry's publisher record (which must validly extend the published chain), or
//!   whose entry says something else than the signed manifest, or that changes or drops
//!   a published release (the published doc, and chain, read only with the SHA-256 the
//!   live metadata lists: `BuildError::SiteAltered` otherwise), or whose yank or
//!   rollout is not the registry's;
//! - an index doc whose prefetch hint is not the one a build makes: the closure of its
//!   likely release through the prepared docs and the published ones;
//! - a delta an index doc lists that does not lead from an older release of the same
//!   doc to the release it is listed under (by its path too), or a published release
//!   whose deltas gain one (deltas are made once, when their release is first published);
//! - a catalog document that does not parse as the kind its path says, or is larger
//!   than a client accepts ([`CatalogLimits`]), or a `catalog` role listing a path
//!   outside `catalog/`;
//! - a publisher record or blocklist other than the registry source's;
//! - a security levels bucket whose levels the signer does not arrive at itself
//!   (`prepared/levels.rs`): every signal it can recompute (the releases of the index doc, their
//!   permissions, analysis, advisories and developer keys, the first publication day,
//!   a publisher's domain proof) must be the bucket's, and the level and reasons the
//!   rule gives from them; an advisory's releases must show it wherever their bucket is;
//! - a newest root that expires before the snapshot or timestamp it would sign (clients
//!   would stop trusting the site at the root's expiry whatever those say).
//!
//! Whether a delta's bytes turn its base into the release is not checked here: the
//! signer never receives packages or deltas, and the client checks every file a delta
//! produces against the developer-signed manifest and falls back to the full package
//! when one differs (`tests/tests/lifecycle_delta.rs`,
//! `signed_delta_producing_content_the_developer_did_not_sign_is_refused`), so a bad
//! delta costs a download, never an install.
//!
//! Expiry dates are the signer's own (the registry's `expiry_days` from `now`), never the
//! payload's; the snapshot and the timestamp are recomputed from the published ones.
//! Nothing is written when anything is refused.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use trellis_client::fs::{FsError, write_atomic};
use trellis_schema::catalog::{self, CatalogLimits};
use trellis_schema::dsse::Envelope as Dsse;
use trellis_schema::index::{IndexDoc, IndexRelease};
use trellis_schema::tuf::{Envelope, MetaFile, Root, Snapshot, Targets};
use trellis_schema::{PluginId, Sha256, VendorId, canonical};

mod levels;

use super::plan::SignedEntries as _;
use super::{BuildError, PreviousSite, publishers};
use crate::registry::Registry;
use crate::site;
use crate::tuf::{self, BINS_ROLE, CATALOG_ROLE, PUBLISHER_BIN_PREFIX, PUBLISHERS_ROLE, SECURITY_ROLE};

/// What [`sign_prepared`] signed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedReport {
    /// Roles signed, with their new versions (snapshot and timestamp included).
    pub roles: Vec<(String, u64)>,
    /// Documents checked and copied to the output (index docs, envelopes, records, ...).
    pub documents: usize,
    /// Releases whose developer signature was checked.
    pub releases: usize,
}

/// The prepared build was refused.
fn refuse(what: impl Into<String>, problem: impl Into<String>) -> BuildError {
    BuildError::Prepared { what: what.into(), problem: problem.into() }
}

/// Checks the unsigned build in `prepared` against the published site `live` and the
/// registry source `registry`, signs it with the registry's online keys and writes the
/// signed metadata (and the documents it checked) into `out`, laid out as a site: copy
/// `out` and the prepared blobs over the published site to publish it.
pub fn sign_prepared(
    registry: &Registry,
    live_dir: &Path,
    prepared: &Path,
    out: &Path,
    now: jiff::Timestamp,
) -> Result<SignedReport, BuildError> {
    let live = PreviousSite::open(live_dir)?.ok_or_else(|| {
        BuildError::Trust(format!("{} has no published site (metadata/timestamp.json)", live_dir.display()))
    })?;
    let config = &registry.config;
    let keys = &config.keys;
    let bins_keys = registry.signing_keys(&keys.bins)?;
    let publishers_keys = registry.signing_keys(&keys.publishers)?;
    let security_keys = registry.signing_keys(&keys.security)?;
    let snapshot_keys = registry.signing_keys(&keys.snapshot)?;
    let timestamp_keys = registry.signing_keys(&keys.timestamp)?;

    // The index doc aliases of the bins signed, written after the timestamp.
    let mut aliases: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    // Roots: every one the site lacks must be the registry's, byte for byte.
    let mut outputs: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for (index, root) in registry.roots.iter().enumerate() {
        let name = site::metadata_name("root", index as u64 + 1);
        match std::fs::read(live_dir.join(site::METADATA_DIR).join(&name)) {
            Ok(bytes) if bytes == root.bytes => {}
            Ok(_) => return Err(refuse(format!("metadata/{name}"), "the published root differs from the registry's")),
            Err(_) => outputs.push((PathBuf::from(site::METADATA_DIR).join(&name), root.bytes.clone())),
        }
    }

    // Publisher chains: the registry's must validly extend the published ones.
    // Every record written canonically and hashed on every core (~8 µs each, ~37k
    // records at 300k plugins).
    let canonical: Vec<(&VendorId, Vec<u8>)> = (registry.publishers.par_iter())
        .map(|(vendor, chain)| Ok((vendor, chain.to_canonical()?)))
        .collect::<Result<_, canonical::CanonicalError>>()?;
    let mut record_sha256 = BTreeMap::new();
    let mut record_bytes = BTreeMap::new();
    for (vendor, bytes) in canonical {
        record_sha256.insert(vendor.clone(), Sha256::of(&bytes));
        record_bytes.insert(site::publisher_target(vendor), bytes);
    }
    let roots: Vec<Vec<u8>> = registry.roots.iter().map(|r| r.bytes.clone()).collect();
    let published = live.published_publisher_targets()?;
    let root = publishers::newest_root(&roots);
    // Every published chain checked, whatever the registry loaded: the signer takes
    // nothing from the builder on trust.
    let every = crate::registry::PublisherScope::All;
    publishers::check_chains(&live, &published, &registry.publishers, &every, &record_sha256, root.as_ref())?;
    let blocklist_bytes = canonical::to_vec_of(&registry.blocklist)?;

    let payloads = read_payloads(prepared)?;
    if payloads.is_empty() {
        return Ok(SignedReport::default());
    }
    check_root_outlives(registry, now)?;
    let checker = Checker {
        registry,
        live: &live,
        prepared,
        record_bytes: &record_bytes,
        blocklist: &blocklist_bytes,
        envelopes: RefCell::default(),
        docs: RefCell::default(),
        signing_keys: RefCell::default(),
    };
    // The security role's entries as it will be signed, when this build changes it.
    let mut security: Option<BTreeMap<String, (Sha256, u64)>> = None;
    let mut report = SignedReport::default();
    let mut meta = live.snapshot.signed.meta.clone();
    let mut copied: BTreeSet<String> = BTreeSet::new();
    for (role, version) in payloads.iter().filter(|(role, _)| role != "snapshot") {
        let what = format!("metadata/{}", site::metadata_name(role, *version));
        let family = Family::of(role).ok_or_else(|| match role.as_str() {
            "targets" => refuse(
                &what,
                "the top-level targets role is signed with the offline targets key; \
                 re-sign it on the operator's machine (scripts/publish-offline.sh)",
            ),
            _ => refuse(&what, format!("{role} is not a role this signer signs")),
        })?;
        let Some(published) = live.role(role)? else {
            return Err(refuse(&what, format!("the published site has no role {role}")));
        };
        let expected = published.signed.version + 1;
        if *version != expected {
            return Err(refuse(
                &what,
                format!(
                    "version {version}, the published {role} is version {}; the next must be {expected}",
                    expected - 1
                ),
            ));
        }
        let payload: Envelope<Targets> = read_json(&prepared.join(&what), &what)?;
        let mut doc = payload.signed;
        if doc.version != *version || doc.type_ != "targets" {
            return Err(refuse(&what, format!("holds a {} document of version {}", doc.type_, doc.version)));
        }
        if doc.delegations != published.signed.delegations {
            return Err(refuse(&what, "its delegations differ from the published ones (other keys, other roles)"));
        }
        if !doc.extra.is_empty() || doc.spec_version != published.signed.spec_version {
            return Err(refuse(&what, "carries fields the builder never writes"));
        }
        let old: BTreeMap<&str, (Sha256, u64)> = published.signed.signed_entries().into_iter().collect();
        let new: BTreeMap<&str, (Sha256, u64)> = doc.signed_entries().into_iter().collect();
        if let Some(dropped) = old.keys().find(|t| !new.contains_key(*t)) {
            return Err(refuse(&what, format!("drops {dropped}, which the published site lists")));
        }
        for (target, file) in doc.targets.iter() {
            let head_facts = family == Family::Catalog && target == catalog::HEAD_TARGET;
            if (file.custom.is_some() && !head_facts) || !file.extra.is_empty() || file.hashes.len() != 1 {
                return Err(refuse(&what, format!("{target}: carries fields the builder never writes")));
            }
        }
        if family == Family::Catalog
            && let Some((sha256, length)) = new.get(catalog::HEAD_TARGET)
        {
            let custom = doc.targets.get(catalog::HEAD_TARGET).and_then(|file| file.custom.as_ref());
            check_head_facts(custom, &checker.document(catalog::HEAD_TARGET, sha256, *length)?)
                .map_err(|reason| refuse(&what, format!("{}: {reason}", catalog::HEAD_TARGET)))?;
        }
        for (target, (sha256, length)) in &new {
            if old.get(target) == Some(&(*sha256, *length)) {
                continue;
            }
            let bytes = checker.document(target, sha256, *length)?;
            report.releases += checker.check_target(family, role, target, &bytes)?;
            if family == Family::Bin
                && let Some(alias) = site::index_alias_of(target)
            {
                aliases.push((PathBuf::from(site::TARGETS_DIR).join(alias), bytes.clone()));
            }
            if copied.insert((*target).to_owned()) {
                outputs.push((site_path(target, sha256), bytes));
            }
        }
        if family == Family::Security {
            security = Some(new.iter().map(|(target, entry)| ((*target).to_owned(), *entry)).collect());
        }
        let signers = match family {
            Family::Bins | Family::Bin | Family::Catalog => &bins_keys,
            Family::Publishers | Family::PublisherBin => &publishers_keys,
            Family::Security => &security_keys,
        };
        doc.expires = tuf::expiry(now, config.expiry_days.delegations);
        let bytes = tuf::sign_role(role, doc, signers.as_deref(), &format!("keys of the {role} role"))?;
        outputs.push((PathBuf::from(site::METADATA_DIR).join(site::metadata_name(role, *version)), bytes));
        meta.insert(
            format!("{role}.json"),
            MetaFile { version: *version, length: None, hashes: None, extra: Default::default() },
        );
        report.roles.push((role.clone(), *version));
    }
    if let Some(security) = &security {
        levels::check(&checker, security, now)?;
    }
    check_hints(&checker.docs.borrow(), &live, config.bin_bits)?;
    // The developer envelopes checked above that the published site does not have.
    for (path, bytes) in checker.envelopes.into_inner() {
        if copied.insert(path.clone()) {
            outputs.push((PathBuf::from(site::TARGETS_DIR).join(path), bytes));
        }
    }
    report.documents = copied.len();

    let snapshot_version = live.snapshot.signed.version + 1;
    if let Some((_, version)) = payloads.iter().find(|(role, _)| role == "snapshot")
        && *version != snapshot_version
    {
        return Err(refuse(
            format!("metadata/{}", site::metadata_name("snapshot", *version)),
            format!("version {version}, the next snapshot is {snapshot_version}"),
        ));
    }
    let snapshot = Snapshot {
        type_: "snapshot".into(),
        spec_version: trellis_schema::tuf::SPEC_VERSION.into(),
        version: snapshot_version,
        expires: tuf::expiry(now, config.expiry_days.snapshot),
        meta,
        extra: Default::default(),
    };
    let snapshot_bytes = tuf::sign_role("snapshot", snapshot, snapshot_keys.as_deref(), "keys.snapshot")?;
    let timestamp_version = live.timestamp.signed.version + 1;
    let timestamp =
        super::timestamp_doc(timestamp_version, snapshot_version, &snapshot_bytes, now, config.expiry_days.timestamp);
    let timestamp_bytes = tuf::sign_role("timestamp", timestamp, timestamp_keys.as_deref(), "keys.timestamp")?;
    // The top-level targets is never the signer's (offline keys): the copy beside the
    // new snapshot is the published one it names (`crate::unversioned`).
    let top_targets = crate::unversioned::top_targets(live_dir, &snapshot_bytes)?;
    let unversioned_snapshot = snapshot_bytes.clone();
    outputs.push((
        PathBuf::from(site::METADATA_DIR).join(site::metadata_name("snapshot", snapshot_version)),
        snapshot_bytes,
    ));
    report.roles.push(("snapshot".into(), snapshot_version));
    report.roles.push(("timestamp".into(), timestamp_version));

    // Everything checked and signed: write, timestamp last.
    for (path, bytes) in &outputs {
        let path = out.join(path);
        if let Some(parent) = path.parent() {
            trellis_client::fs::create_dir_all(parent)?;
        }
        write_atomic(&path, bytes)?;
    }
    write_atomic(&site::timestamp_file(out), &timestamp_bytes)?;
    crate::unversioned::write(out, &unversioned_snapshot, &top_targets)?;
    // The aliases of the index docs checked above (not signed: see
    // `trellis_schema::target::index_alias_path`), for the publishing job to put down
    // with the rest.
    for (path, bytes) in &aliases {
        let path = out.join(path);
        if let Some(parent) = path.parent() {
            trellis_client::fs::create_dir_all(parent)?;
        }
        write_atomic(&path, bytes)?;
    }
    Ok(report)
}

/// The roles this signer signs, by the keys that sign them and what they list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// `bins`: delegates to the hash bins, lists nothing.
    Bins,
    /// `bin-…`: index docs.
    Bin,
    /// `catalog`: catalog documents.
    Catalog,
    /// `publishers`: delegates to the publisher bins, lists nothing.
    Publishers,
    /// `pub-…`: publisher records.
    PublisherBin,
    /// `security`: the blocklist.
    Security,
}

impl Family {
    fn of(role: &str) -> Option<Self> {
        match role {
            BINS_ROLE => Some(Self::Bins),
            CATALOG_ROLE => Some(Self::Catalog),
            PUBLISHERS_ROLE => Some(Self::Publishers),
            SECURITY_ROLE => Some(Self::Security),
            _ if role.starts_with(&format!("{}-", tuf::BIN_PREFIX)) => Some(Self::Bin),
            _ if role.starts_with(&format!("{PUBLISHER_BIN_PREFIX}-")) => Some(Self::PublisherBin),
            _ => None,
        }
    }
}

/// The prepared role payloads: `(role, version)` of every `metadata/V.<role>.json`
/// (roots and `timestamp.json` are not payloads: roots come from the registry, the
/// timestamp is the signer's).
fn read_payloads(prepared: &Path) -> Result<Vec<(String, u64)>, BuildError> {
    let dir = prepared.join(site::METADATA_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::new("reading", &dir, e).into()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new("reading", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "timestamp.json" {
            continue;
        }
        let parsed = name
            .strip_suffix(".json")
            .and_then(|n| n.split_once('.'))
            .and_then(|(version, role)| Some((role.to_owned(), version.parse::<u64>().ok()?)));
        let Some((role, version)) = parsed else {
            return Err(refuse(format!("metadata/{name}"), "is not named VERSION.ROLE.json"));
        };
        if role != "root" {
            out.push((role, version));
        }
    }
    out.sort();
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(refuse(format!("metadata/*.{}.json", w[0].0), "two versions of one role"));
    }
    Ok(out)
}

/// Refuses when the registry's newest root expires before the snapshot or the timestamp
/// signed at `now` would: clients stop at the root's expiry, so the signer would promise
/// a lifetime the site does not have (a root rotation is due first).
fn check_root_outlives(registry: &Registry, now: jiff::Timestamp) -> Result<(), BuildError> {
    let Some(root) = registry.roots.last() else {
        return Err(BuildError::Trust("the registry has no root/1.root.json".into()));
    };
    let root: &Root = &root.envelope.signed;
    let what = format!("root/{}", site::metadata_name("root", root.version));
    let root_expires: jiff::Timestamp =
        root.expires.parse().map_err(|e| refuse(&what, format!("expires {:?}: {e}", root.expires)))?;
    let days = &registry.config.expiry_days;
    for (role, days) in [("snapshot", days.snapshot), ("timestamp", days.timestamp)] {
        let expires = tuf::expiry(now, days);
        let outlives = expires.parse::<jiff::Timestamp>().is_ok_and(|at| at > root_expires);
        if outlives {
            return Err(refuse(
                &what,
                format!(
                    "root version {} expires at {}, before the {role} signed now would ({expires}); \
                     sign a new root first (trellis-index rotate REGISTRY root, KEY-CEREMONY.md)",
                    root.version, root.expires
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the `custom` member of the head's entry in the catalog role: exactly the
/// facts of `head` ([`catalog::HeadFacts`]), which a client ranks with instead of
/// reading the head, or none (a client then reads the head).
fn check_head_facts(custom: Option<&serde_json::Value>, head: &[u8]) -> Result<(), String> {
    let Some(custom) = custom else { return Ok(()) };
    let head = catalog::parse_head(head, &CatalogLimits::default()).map_err(|e| e.to_string())?;
    let expected = catalog::HeadFacts::of(&head).to_custom();
    match *custom == expected {
        true => Ok(()),
        false => Err(format!("the entry's custom member is {custom}, not the head's facts {expected}")),
    }
}

/// Checks a catalog document the way a client reads it: the kind its path names,
/// parsed strictly and within the bounds a client holds it to. A path of no kind the
/// builder writes is refused.
fn check_catalog_document(target: &str, bytes: &[u8]) -> Result<(), BuildError> {
    let limits = CatalogLimits::default();
    let name = target.strip_prefix("catalog/").and_then(|n| n.strip_suffix(".json")).unwrap_or_default();
    let checked = if target == catalog::HEAD_TARGET {
        catalog::parse_head(bytes, &limits).map(drop)
    } else if let Some(key) = name.strip_prefix("search-") {
        catalog::parse_shard(key, bytes, &limits).map(drop)
    } else if let Some(key) = name.strip_prefix("typo-") {
        catalog::parse_typo(key, bytes, &limits).map(drop)
    } else if name.starts_with("category-") || name.starts_with("tag-") {
        catalog::parse_page(target, bytes, &limits).map(drop)
    } else if let Some(bucket) = name.strip_prefix("records-") {
        catalog::parse_records(target, bytes).and_then(|parsed| {
            let misfiled =
                parsed.records.iter().find(|r| format!("{:02x}", catalog::record_bucket(&r.summary.id)) != bucket);
            match misfiled {
                Some(record) => Err(catalog::CatalogError::Invalid {
                    target: target.to_owned(),
                    reason: format!("holds the record of {}, which belongs in another bucket", record.summary.id),
                }),
                None => Ok(()),
            }
        })
    } else if let Some(id) = name.strip_prefix("reviews-") {
        let id: PluginId =
            id.parse().map_err(|e| refuse(target, format!("names no plugin ({e}); not a reviews document")))?;
        catalog::parse_reviews(&id, bytes, &limits).map(drop)
    } else {
        return Err(refuse(target, "is not a catalog document the builder writes"));
    };
    checked.map_err(|e| refuse(target, e.to_string()))
}

/// Refuses an index doc whose prefetch hint is not the one a build makes: the closure
/// of its likely release through the prepared docs and the published ones
/// ([`super::hints`]). A hint decides what clients fetch (never what they install), so
/// a build job that could choose it could make every client ask for 64 docs it names.
fn check_hints(docs: &BTreeMap<PluginId, IndexDoc>, live: &PreviousSite, bin_bits: u32) -> Result<(), BuildError> {
    let hints = super::hints::of_prepared(&docs.values().collect::<Vec<_>>(), live, bin_bits);
    for (id, doc) in docs {
        let made = hints.of(id);
        if doc.prefetch != made {
            let list = |ids: &[PluginId]| ids.iter().map(PluginId::as_str).collect::<Vec<_>>().join(", ");
            return Err(refuse(
                site::index_target(id),
                format!("its prefetch hint names [{}]; a build makes [{}]", list(&doc.prefetch), list(&made)),
            ));
        }
    }
    Ok(())
}

/// The deltas of `release` in `doc`: each leads from an older release of the same doc
/// (published or published with it) to `release`, at the path the layout gives it; a
/// published release (`published`) keeps exactly its published deltas or fewer (the
/// builder drops one whose base left the index, never adds one).
fn check_deltas(doc: &IndexDoc, release: &IndexRelease, published: Option<&IndexRelease>) -> Result<(), String> {
    let mut bases = BTreeSet::new();
    for delta in &release.deltas {
        let from = &delta.from;
        if !bases.insert(from) {
            return Err(format!("lists two deltas from {from}"));
        }
        if *from >= release.version || doc.release(from).is_none() {
            return Err(format!("lists a delta from {from}, which is not an older release of {}", doc.id));
        }
        let path = trellis_schema::target::delta_target(&doc.id, from, &release.version);
        if delta.blob.path != path {
            return Err(format!("the delta from {from} is at {}, not {path}", delta.blob.path));
        }
        if let Some(published) = published
            && !published.deltas.contains(delta)
        {
            return Err(format!(
                "the delta from {from} is not one the published release lists; \
                 deltas are made once, when a release is first published"
            ));
        }
    }
    Ok(())
}

fn site_path(target: &str, sha256: &Sha256) -> PathBuf {
    PathBuf::from(site::TARGETS_DIR).join(site::hashed_target_path(target, sha256))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| refuse(what, format!("cannot be read: {e}")))?;
    trellis_schema::json::from_slice(&bytes).map_err(|e| refuse(what, e.to_string()))
}

struct Checker<'a> {
    registry: &'a Registry,
    live: &'a PreviousSite,
    prepared: &'a Path,
    /// Canonical bytes of each publisher record target, from the registry source.
    record_bytes: &'a BTreeMap<String, Vec<u8>>,
    /// Canonical bytes of the registry's blocklist.
    blocklist: &'a [u8],
    /// Envelopes checked from the prepared build, by path under `targets/`.
    envelopes: RefCell<BTreeMap<String, Vec<u8>>>,
    /// The index docs checked from the prepared build, by plugin.
    docs: RefCell<BTreeMap<PluginId, IndexDoc>>,
    /// The distinct developer keys that signed each release checked above.
    signing_keys: RefCell<BTreeMap<(PluginId, semver::Version), u32>>,
}

impl Checker<'_> {
    /// The prepared file of `target`, with the listed length and hash. A document the
    /// published site already holds under that hash is read from there: a document that
    /// returns to an earlier content (a catalog record bucket once a plugin leaves it)
    /// is no new file for the build job, so it does not hand it on.
    fn document(&self, target: &str, sha256: &Sha256, length: u64) -> Result<Vec<u8>, BuildError> {
        let what = format!("targets/{}", site::hashed_target_path(target, sha256));
        let bytes = std::fs::read(self.prepared.join(&what))
            .or_else(|_| std::fs::read(self.live.dir().join(&what)))
            .map_err(|e| {
                refuse(&what, format!("listed as {target} but is neither in the prepared build nor published: {e}"))
            })?;
        if bytes.len() as u64 != length || Sha256::of(&bytes) != *sha256 {
            return Err(refuse(
                &what,
                format!("is not the {length}-byte {target} with SHA-256 {sha256} the role lists"),
            ));
        }
        Ok(bytes)
    }

    /// Checks one new or changed target of `role`; returns the releases checked.
    fn check_target(&self, family: Family, role: &str, target: &str, bytes: &[u8]) -> Result<usize, BuildError> {
        let config = &self.registry.config;
        let misplaced =
            || refuse(format!("metadata/*.{role}.json"), format!("lists {target}, which {role} does not sign"));
        match family {
            Family::Bins | Family::Publishers => Err(misplaced()),
            Family::Catalog => match target.strip_prefix("catalog/") {
                Some(rest) if !rest.is_empty() && !rest.contains('/') => {
                    check_catalog_document(target, bytes)?;
                    Ok(0)
                }
                _ => Err(misplaced()),
            },
            Family::Security if target == site::BLOCKLIST_TARGET => {
                if bytes != self.blocklist {
                    return Err(refuse(target, "is not the registry's blocklist.json"));
                }
                Ok(0)
            }
            Family::Security => {
                check_security_document(target, bytes).ok_or_else(misplaced)??;
                Ok(0)
            }
            Family::PublisherBin => {
                if site::bin_for_target(target, config.publisher_bin_bits, PUBLISHER_BIN_PREFIX) != role {
                    return Err(misplaced());
                }
                match self.record_bytes.get(target) {
                    Some(record) if record == bytes => Ok(0),
                    Some(_) => Err(refuse(target, "is not the registry's record of that publisher")),
                    None => Err(refuse(target, "the registry has no such publisher record")),
                }
            }
            Family::Bin => {
                if !target.starts_with("index/")
                    || site::bin_for_target(target, config.bin_bits, tuf::BIN_PREFIX) != role
                {
                    return Err(misplaced());
                }
                self.check_index_doc(role, target, bytes)
            }
        }
    }

    /// An index doc: every release new or changed since the published doc signed by its
    /// developer under the registry's publisher record and described as signed;
    /// published releases unchanged and kept; yanks and rollouts the registry's.
    fn check_index_doc(&self, role: &str, target: &str, bytes: &[u8]) -> Result<usize, BuildError> {
        let doc: IndexDoc = trellis_schema::json::from_slice(bytes).map_err(|e| refuse(target, e.to_string()))?;
        if site::index_target(&doc.id) != target {
            return Err(refuse(target, format!("holds the index doc of {}", doc.id)));
        }
        let published = self.published_doc(role, target)?;
        if !self.registry.publishers.contains_key(&doc.id.vendor_id()) {
            return Err(refuse(target, format!("the registry has no publisher record for {}", doc.id.vendor())));
        }
        if let Some(published) = &published {
            for old in &published.releases {
                let Some(new) = doc.release(&old.version) else {
                    return Err(refuse(
                        target,
                        format!("drops {} {}, which the published site lists", doc.id, old.version),
                    ));
                };
                if new.package != old.package || new.manifest_sha256 != old.manifest_sha256 {
                    return Err(refuse(
                        target,
                        format!(
                            "changes the published release {} {}; a published version is immutable",
                            doc.id, old.version
                        ),
                    ));
                }
            }
        }
        let mut checked = 0;
        for release in &doc.releases {
            let name = format!("{} {}", doc.id, release.version);
            check_deltas(&doc, release, published.as_ref().and_then(|p| p.release(&release.version)))
                .map_err(|problem| refuse(target, format!("{name}: {problem}")))?;
            if release.yanked != self.registry.yanks.contains(&doc.id, &release.version)
                || release.rollout != self.registry.rollouts.percent(&doc.id, &release.version)
            {
                return Err(refuse(target, format!("{name}: yank or rollout differs from the registry's")));
            }
            let unchanged = published
                .as_ref()
                .and_then(|p| p.release(&release.version))
                .is_some_and(|old| old.envelope == release.envelope);
            if unchanged {
                continue;
            }
            let DeveloperSigned { manifest, keys, payload_sha256 } = self.verify_envelope(&doc, release)?;
            if manifest.plugin_id != doc.id || manifest.version != release.version {
                return Err(refuse(target, format!("{name}: the envelope signs {}", manifest.release_name())));
            }
            if manifest.package.sha256 != release.package.sha256 || manifest.package.size != release.package.length {
                return Err(refuse(
                    target,
                    format!("{name}: the developer signed another package than the index doc lists"),
                ));
            }
            if payload_sha256 != release.manifest_sha256 {
                return Err(refuse(target, format!("{name}: manifest_sha256 is not the envelope's payload")));
            }
            if let Some(d) = manifest.index_disagreement(release) {
                return Err(refuse(
                    target,
                    format!("{name}: lists {} {} but the developer signed {}", d.field, d.index, d.signed),
                ));
            }
            self.signing_keys.borrow_mut().insert((doc.id.clone(), release.version.clone()), keys);
            checked += 1;
        }
        self.docs.borrow_mut().insert(doc.id.clone(), doc);
        Ok(checked)
    }

    /// What `release`'s developer envelope signs, verified under the registry's record
    /// of its publisher. A release the registry keeps out of new installs (yanked,
    /// blocked) may have been signed under an older record whose key was since revoked.
    fn verify_envelope(&self, doc: &IndexDoc, release: &IndexRelease) -> Result<DeveloperSigned, BuildError> {
        let target = site::index_target(&doc.id);
        let name = format!("{} {}", doc.id, release.version);
        let chain =
            self.registry.publishers.get(&doc.id.vendor_id()).ok_or_else(|| {
                refuse(&target, format!("the registry has no publisher record for {}", doc.id.vendor()))
            })?;
        let record = chain.head().map(|h| &h.signed).ok_or_else(|| refuse(&target, "empty publisher record"))?;
        let envelope_bytes = self.blob(&doc.id, &name, &release.envelope)?;
        let envelope: Dsse = trellis_schema::json::from_slice(&envelope_bytes)
            .map_err(|e| refuse(&target, format!("{name}: the envelope is not DSSE: {e}")))?;
        let kept = release.yanked
            || self.registry.blocklist.find(&doc.id, &release.version, Some(&release.package.sha256)).is_some();
        let (manifest, keys) = match record.verify_release_counted(&envelope) {
            Err(e) if kept && e.is_revocation() => chain
                .records
                .iter()
                .rev()
                .skip(1)
                .find_map(|older| older.signed.verify_release_counted(&envelope).ok())
                .ok_or(e),
            other => other,
        }
        .map_err(|e| {
            refuse(
                &target,
                format!("{name} is not signed by its developer under the record of {}: {e}", doc.id.vendor()),
            )
        })?;
        let payload_sha256 = envelope
            .payload_bytes()
            .map(|p| Sha256::of(&p))
            .map_err(|e| refuse(&target, format!("{name}: the envelope's payload is not base64: {e}")))?;
        Ok(DeveloperSigned { manifest, keys, payload_sha256 })
    }

    /// The index doc the published site lists at `target` in `role`.
    fn published_doc(&self, role: &str, target: &str) -> Result<Option<IndexDoc>, BuildError> {
        let Some(published) = self.live.role(role)? else { return Ok(None) };
        let Some(file) = published.signed.targets.get(target) else { return Ok(None) };
        let Some(sha) = file.hashes.get("sha256").and_then(|h| h.parse::<Sha256>().ok()) else {
            return Err(BuildError::Site { path: self.live.dir().into(), reason: format!("{target} has no SHA-256") });
        };
        let path = site::target_file(self.live.dir(), target, &sha);
        let bytes = self.live.read_target(target, &sha)?;
        trellis_schema::json::from_slice(&bytes).map(Some).map_err(|e| BuildError::Site { path, reason: e.to_string() })
    }

    /// A blob an index doc names (an envelope), from the prepared build or, when
    /// already published, the live site; checked against its reference.
    fn blob(&self, id: &PluginId, name: &str, blob: &trellis_schema::index::BlobRef) -> Result<Vec<u8>, BuildError> {
        if !blob.path.starts_with(&site::plugin_blob_dir(id))
            || !blob.path.ends_with(".dsse")
            || blob.path.contains("..")
        {
            return Err(refuse(site::index_target(id), format!("{name}: {} is outside the plugin's blobs", blob.path)));
        }
        let hashed = site::hashed_target_path(&blob.path, &blob.sha256);
        let what = format!("{}/{hashed}", site::TARGETS_DIR);
        let (bytes, new) = match std::fs::read(self.live.dir().join(&what)) {
            Ok(bytes) => (bytes, false),
            Err(_) => (
                std::fs::read(self.prepared.join(&what))
                    .map_err(|_| refuse(&what, format!("{name}: the developer envelope is missing")))?,
                true,
            ),
        };
        if bytes.len() as u64 != blob.length || Sha256::of(&bytes) != blob.sha256 {
            return Err(refuse(&what, format!("{name}: not the envelope the index doc lists")));
        }
        if new {
            self.envelopes.borrow_mut().insert(hashed, bytes.clone());
        }
        Ok(bytes)
    }
}

/// A release's developer envelope, verified.
struct DeveloperSigned {
    /// The release manifest it signs.
    manifest: trellis_schema::manifest::ReleaseManifest,
    /// The distinct keys of the publisher's record that signed it.
    keys: u32,
    /// SHA-256 of its payload (the manifest's bytes).
    payload_sha256: Sha256,
}

/// A security-role document other than the blocklist: the advisories and the security
/// levels, each parsed as its kind (the levels buckets: every plugin in the bucket its
/// id hashes to). `None` when `target` is no such document. What the levels say is
/// checked once every role is read ([`levels::check`]); which component advisories
/// match a release's SBOM the signer cannot recompute (it has no packages).
fn check_security_document(target: &str, bytes: &[u8]) -> Option<Result<(), BuildError>> {
    use trellis_schema::security_level::{LEVELS_FORMAT, LEVELS_HEAD_TARGET, LevelsBucket, LevelsHead, levels_target};
    let malformed = |e: &dyn std::fmt::Display| refuse(target, format!("is not a valid document of its kind: {e}"));
    if target == site::ADVISORIES_TARGET {
        return Some(
            trellis_schema::json::from_slice::<trellis_schema::advisory::Advisories>(bytes)
                .map(drop)
                .map_err(|e| malformed(&e)),
        );
    }
    if target == LEVELS_HEAD_TARGET {
        return Some(trellis_schema::json::from_slice::<LevelsHead>(bytes).map(drop).map_err(|e| malformed(&e)));
    }
    let bucket = target.strip_prefix("security/levels-")?.strip_suffix(".json")?;
    if bucket.len() != 2 || !bucket.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    Some((|| {
        let levels: LevelsBucket = trellis_schema::json::from_slice(bytes).map_err(|e| malformed(&e))?;
        if levels.format != LEVELS_FORMAT {
            return Err(refuse(target, format!("has format {}, not {LEVELS_FORMAT}", levels.format)));
        }
        if let Some(stray) = levels.plugins.keys().find(|id| levels_target(id) != target) {
            return Err(refuse(target, format!("lists {stray}, whose levels belong in {}", levels_target(stray))));
        }
        Ok(())
    })())
}
