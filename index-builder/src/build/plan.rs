//! The targets roles of a build and their versions.
//!
//! Owns each role's entries (compact: path → SHA-256 and length), merging a bin with
//! its published version (refusing removed plugins), deciding whether a
//! role keeps its published version, and the signed bytes of a new version, with a
//! direct canonical-JSON writer for plain documents (every hash bin; the catalog
//! role, whose head entry alone carries a `custom` member). The rules
//! themselves are [`crate::tuf`]'s.

use std::collections::{BTreeMap, BTreeSet};

use trellis_schema::tuf::{Delegations, Envelope, Targets};
use trellis_schema::{Sha256, SigningKey, canonical};

use super::BuildError;
use super::documents::target_file;
use crate::tuf::{self, SignError};

/// Target entries of one role, compactly: target path → (SHA-256, length). At 10^6
/// releases a full `TargetFile` per entry would cost gigabytes; documents are made
/// from these one role at a time, when deciding and when signing.
pub(super) type Entries = BTreeMap<String, (Sha256, u64)>;

/// Target path → the `custom` member of its entry, for the entries that have one.
pub(super) type Custom = BTreeMap<String, serde_json::Value>;

/// Whether a role keeps its published version or gets a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Keep(u64),
    New { version: u64, expires: String },
}

/// One targets role of the site being built.
pub(super) struct RolePlan<'a> {
    pub(super) name: String,
    pub(super) entries: Entries,
    pub(super) delegations: Option<Delegations>,
    /// The TUF `custom` member of the few entries that carry one (the catalog head's
    /// facts, `trellis_schema::catalog::HeadFacts`), by target path.
    pub(super) custom: Custom,
    pub(super) keys: Option<&'a [SigningKey]>,
    pub(super) days: u32,
    pub(super) decision: Decision,
    /// Planned by a build without keys ([`super::Signing::Unsigned`]) for a role whose
    /// keys are online: decided as if they were here, written without signatures for
    /// the signing job ([`super::prepared`]) to check and sign.
    pub(super) unsigned: bool,
}

impl<'a> RolePlan<'a> {
    pub(super) fn new(
        name: &str,
        entries: Entries,
        delegations: Option<Delegations>,
        keys: Option<&'a [SigningKey]>,
        days: u32,
    ) -> Self {
        Self {
            name: name.to_owned(),
            entries,
            delegations,
            custom: Custom::new(),
            keys,
            days,
            decision: Decision::Keep(0),
            unsigned: false,
        }
    }

    /// The same role, whose entries of the paths `custom` names carry that `custom`
    /// member (a path it lists no entry for gets none).
    #[must_use]
    pub(super) fn with_custom(mut self, custom: Custom) -> Self {
        self.custom = custom;
        self
    }

    /// Keeps the published version when nothing changed (same entries, delegations
    /// and signing keys, fresh enough), else the next version: [`tuf::settle`] over
    /// compact entries, without materialising documents.
    ///
    /// Fresh enough: a role whose keys are here is re-signed at half its lifetime; one
    /// whose keys are offline (the top-level targets in CI) is kept unchanged until it
    /// expires, since re-signing it early is impossible here and refusing the build
    /// would only stop every publish ([`tuf::needs_offline_refresh`]). Its coming expiry
    /// is what `trellis-index status` and the build's warnings are for.
    pub(super) fn decide(&self, published: Option<&Envelope<Targets>>, now: jiff::Timestamp) -> Decision {
        let online = self.keys.is_some() || self.unsigned;
        let stale = |expires: &str| match online {
            true => tuf::needs_refresh(expires, now, self.days),
            false => tuf::needs_offline_refresh(expires, now),
        };
        if let Some(published) = published
            && is_plain(&published.signed, &self.custom)
            && published.signed.delegations == self.delegations
            && tuf::signed_by_same_keys(published, self.keys)
            && !stale(&published.signed.expires)
            && published.signed.targets.len() == self.entries.len()
            && published
                .signed
                .signed_entries()
                .into_iter()
                .zip(&self.entries)
                .all(|((p, e), (q, f))| p == q && e == *f)
        {
            return Decision::Keep(published.signed.version);
        }
        Decision::New { version: published.map_or(1, |p| p.signed.version + 1), expires: tuf::expiry(now, self.days) }
    }

    /// The signed file of this role at `version`: the fast canonical writer for plain
    /// documents (every hash bin), the generic one otherwise.
    pub(super) fn sign(&self, version: u64, expires: &str) -> Result<Vec<u8>, BuildError> {
        let none: &[SigningKey] = &[];
        let keys = self.keys.or(self.unsigned.then_some(none)).ok_or_else(|| SignError::MissingKey {
            role: self.name.clone(),
            hint: "check the key files in trellis-registry.json".into(),
        })?;
        if self.delegations.is_none() {
            let custom = (self.custom.iter())
                .map(|(path, value)| Ok((path.as_str(), canonical::to_vec(value)?)))
                .collect::<Result<BTreeMap<&str, Vec<u8>>, BuildError>>()?;
            let signed = plain_targets_canonical(&self.entries, &custom, version, expires);
            return Ok(envelope_canonical(&signed, keys));
        }
        let mut doc = self.doc();
        doc.version = version;
        doc.expires = expires.to_owned();
        Ok(tuf::sign_role(&self.name, doc, Some(keys), "")?)
    }

    /// The role's document, without version and expiry.
    pub(super) fn doc(&self) -> Targets {
        let targets = (self.entries.iter())
            .map(|(path, (sha, length))| {
                let mut file = target_file(sha, *length);
                file.custom = self.custom.get(path).cloned();
                (path.clone(), file)
            })
            .collect();
        tuf::targets_doc(targets, self.delegations.clone())
    }
}

/// Brings the published entries of a bin into `entries`: index docs of plugins this
/// build did not load are kept as published; a published index doc of a plugin this
/// build owns (all of them in a full build) must still be there, as plugins are never
/// removed. Entries other than index docs (blobs a bin listed before bins signed only
/// index docs) are dropped. Whether the releases a published doc lists are unchanged is
/// [`super::previous::check_published_releases`]'.
pub(super) fn merge_bin(
    entries: &mut Entries,
    published: &Targets,
    full: bool,
    changed: &BTreeSet<String>,
) -> Result<(), BuildError> {
    for (target, file) in &published.signed_entries() {
        let Some(owner) = index_doc_owner(target) else { continue };
        if !(full || changed.contains(owner)) {
            entries.insert((*target).to_owned(), *file);
        } else if !entries.contains_key(*target) {
            return Err(BuildError::Removed { target: (*target).to_owned() });
        }
    }
    Ok(())
}

/// Whether a published targets document is one this builder writes: nothing but
/// SHA-256 hashes and lengths, no unknown fields, and custom data exactly where
/// `custom` puts it.
fn is_plain(doc: &Targets, custom: &Custom) -> bool {
    doc.type_ == "targets"
        && doc.spec_version == trellis_schema::tuf::SPEC_VERSION
        && doc.extra.is_empty()
        && doc.targets.iter().all(|(path, f)| {
            f.custom.as_ref() == custom.get(path)
                && f.extra.is_empty()
                && f.hashes.len() == 1
                && f.hashes.contains_key("sha256")
        })
}

/// Canonical JSON of a targets document without delegations, written directly: at
/// 10^6 entries going through `serde_json::Value` costs more than everything else.
/// Keys in code-point order: `_type`, `expires`, `spec_version`, `targets`, `version`;
/// per target `custom` (the few entries `custom` names, given in canonical JSON), `hashes`,
/// `length`. Strings escape only `"` and `\`, as [`trellis_schema::canonical`] does.
fn plain_targets_canonical(
    entries: &Entries,
    custom: &BTreeMap<&str, Vec<u8>>,
    version: u64,
    expires: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 160);
    out.extend_from_slice(b"{\"_type\":\"targets\",\"expires\":");
    canonical_string(expires, &mut out);
    out.extend_from_slice(b",\"spec_version\":");
    canonical_string(trellis_schema::tuf::SPEC_VERSION, &mut out);
    out.extend_from_slice(b",\"targets\":{");
    for (index, (path, (sha, length))) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        canonical_string(path, &mut out);
        out.extend_from_slice(b":{");
        if let Some(custom) = custom.get(path.as_str()) {
            out.extend_from_slice(b"\"custom\":");
            out.extend_from_slice(custom);
            out.push(b',');
        }
        out.extend_from_slice(b"\"hashes\":{\"sha256\":\"");
        out.extend_from_slice(sha.to_hex().as_bytes());
        out.extend_from_slice(b"\"},\"length\":");
        out.extend_from_slice(length.to_string().as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"},\"version\":");
    out.extend_from_slice(version.to_string().as_bytes());
    out.push(b'}');
    out
}

fn canonical_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in text.as_bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

/// Canonical JSON of `{"signatures": [...], "signed": <signed>}` with a signature of
/// `signed` by each key, in order (the same bytes as [`tuf::sign_role`]).
fn envelope_canonical(signed: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(signed.len() + 64 + keys.len() * 220);
    out.extend_from_slice(b"{\"signatures\":[");
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"keyid\":");
        canonical_string(key.key_id().as_str(), &mut out);
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(hex::encode(key.sign(signed)).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"],\"signed\":");
    out.extend_from_slice(signed);
    out.push(b'}');
    out
}

/// Compact entries of a published targets document.
pub(super) trait SignedEntries {
    fn signed_entries(&self) -> Vec<(&str, (Sha256, u64))>;
}

impl SignedEntries for Targets {
    fn signed_entries(&self) -> Vec<(&str, (Sha256, u64))> {
        self.targets
            .iter()
            .map(|(path, file)| {
                let sha = file.hashes.get("sha256").and_then(|h| h.parse().ok()).unwrap_or(Sha256::from_bytes([0; 32]));
                (path.as_str(), (sha, file.length))
            })
            .collect()
    }
}

/// The id of the plugin whose index doc is `target` (`index/<shard>/<id>.json`).
fn index_doc_owner(target: &str) -> Option<&str> {
    target.strip_prefix("index/")?.rsplit('/').next()?.strip_suffix(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_canonical_bin_equals_the_generic_signed_document() {
        let key = SigningKey::from_seed([3; 32]);
        let mut entries = Entries::new();
        entries.insert("index/0a/acme.clock.json".into(), (Sha256::of(b"a"), 12));
        entries.insert("plugins/acme/acme.clock/acme.clock-1.0.0.zip".into(), (Sha256::of(b"b"), 4096));
        entries.insert("plugins/q\"uote/x\\y.zip".into(), (Sha256::of(b"c"), 0));
        let keys = [key.clone()];
        let plan = RolePlan::new("bin-0", entries, None, Some(&keys), 90);
        let fast = plan.sign(7, "2027-01-01T00:00:00Z").unwrap();
        let mut doc = plan.doc();
        doc.version = 7;
        doc.expires = "2027-01-01T00:00:00Z".into();
        let generic = tuf::sign_role("bin-0", doc, Some(&keys), "").unwrap();
        assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(generic).unwrap());
    }

    #[test]
    fn fast_canonical_role_with_custom_entries_equals_the_generic_signed_document_and_keeps_only_the_same_custom() {
        let key = SigningKey::from_seed([3; 32]);
        let keys = [key];
        let entries = Entries::from([
            ("catalog/head.json".to_owned(), (Sha256::of(b"h"), 900)),
            ("catalog/search-cl.json".to_owned(), (Sha256::of(b"s"), 4000)),
        ]);
        let facts = |plugins: u32| {
            Custom::from([(
                "catalog/head.json".to_owned(),
                serde_json::json!({"plugins": plugins, "generated": "x\"y"}),
            )])
        };
        let plan = RolePlan::new("catalog", entries.clone(), None, Some(&keys), 90).with_custom(facts(7));
        let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let fast = plan.sign(4, &tuf::expiry(now, 90)).unwrap();
        let mut doc = plan.doc();
        doc.version = 4;
        doc.expires = tuf::expiry(now, 90);
        let generic = tuf::sign_role("catalog", doc, Some(&keys), "").unwrap();
        assert_eq!(String::from_utf8(fast.clone()).unwrap(), String::from_utf8(generic).unwrap());
        let published: Envelope<Targets> = serde_json::from_slice(&fast).unwrap();
        assert_eq!(published.signed.targets["catalog/head.json"].custom, Some(facts(7)["catalog/head.json"].clone()));
        assert_eq!(published.signed.targets["catalog/search-cl.json"].custom, None);

        let same = RolePlan::new("catalog", entries.clone(), None, Some(&keys), 90).with_custom(facts(7));
        assert_eq!(same.decide(Some(&published), now), Decision::Keep(4));
        // The same entries with other facts, or none, are a new version.
        let moved = RolePlan::new("catalog", entries.clone(), None, Some(&keys), 90).with_custom(facts(8));
        assert!(matches!(moved.decide(Some(&published), now), Decision::New { version: 5, .. }));
        let without = RolePlan::new("catalog", entries, None, Some(&keys), 90);
        assert!(matches!(without.decide(Some(&published), now), Decision::New { version: 5, .. }));
    }

    #[test]
    fn unchanged_bin_keeps_its_version_and_a_changed_one_moves() {
        let key = SigningKey::from_seed([3; 32]);
        let keys = [key];
        let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let entries = Entries::from([("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"a"), 12))]);
        let plan = RolePlan::new("bin-0", entries.clone(), None, Some(&keys), 90);
        let bytes = plan.sign(3, &tuf::expiry(now, 90)).unwrap();
        let published: Envelope<Targets> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(plan.decide(Some(&published), now), Decision::Keep(3));
        let mut grown = entries;
        grown.insert("index/0a/acme.alarm.json".to_owned(), (Sha256::of(b"b"), 1));
        let plan = RolePlan::new("bin-0", grown, None, Some(&keys), 90);
        assert!(matches!(plan.decide(Some(&published), now), Decision::New { version: 4, .. }));
    }

    #[test]
    fn an_offline_role_is_kept_past_half_life_until_it_expires() {
        let key = SigningKey::from_seed([4; 32]);
        let signed_at: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let plan = RolePlan::new("targets", Entries::new(), None, Some(std::slice::from_ref(&key)), 180);
        let published: Envelope<Targets> =
            serde_json::from_slice(&plan.sign(1, &tuf::expiry(signed_at, 180)).unwrap()).unwrap();
        let at = |days: i64| jiff::Timestamp::from_second(signed_at.as_second() + days * 86_400).unwrap();
        let offline = RolePlan::new("targets", Entries::new(), None, None, 180);
        assert_eq!(offline.decide(Some(&published), at(95)), Decision::Keep(1), "past half-life, key offline");
        assert_eq!(offline.decide(Some(&published), at(179)), Decision::Keep(1));
        assert!(matches!(offline.decide(Some(&published), at(180)), Decision::New { version: 2, .. }), "expired");
        // With its key here, the role is re-signed at half-life as before.
        assert!(matches!(plan.decide(Some(&published), at(95)), Decision::New { version: 2, .. }));
    }

    #[test]
    fn merging_a_published_bin_keeps_other_plugins_docs_drops_blob_entries_and_refuses_a_removed_plugin() {
        let mut published = tuf::targets_doc(BTreeMap::new(), None);
        for (path, byte) in [
            ("index/0a/acme.clock.json", b'a'),
            ("index/0b/acme.alarm.json", b'b'),
            ("plugins/acme/acme.clock/acme.clock-1.0.0.zip", b'c'),
            ("deltas/acme.clock/1.0.0_1.1.0.delta", b'd'),
        ] {
            published.targets.insert(path.to_owned(), target_file(&Sha256::of(&[byte]), 1));
        }
        let changed = BTreeSet::from(["acme.clock".to_owned()]);
        let mut entries = Entries::from([("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2))]);
        merge_bin(&mut entries, &published, false, &changed).unwrap();
        assert_eq!(
            entries,
            Entries::from([
                ("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2)),
                ("index/0b/acme.alarm.json".to_owned(), (Sha256::of(b"b"), 1)),
            ])
        );

        let mut entries = Entries::from([("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2))]);
        match merge_bin(&mut entries, &published, true, &changed) {
            Err(BuildError::Removed { target }) => assert_eq!(target, "index/0b/acme.alarm.json"),
            other => panic!("a full build without acme.alarm must be refused, got {other:?}"),
        }
    }
}
