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
    pub(super) fn decide(&self, published: Option<&PublishedRole>, now: jiff::Timestamp) -> Decision {
        let online = self.keys.is_some() || self.unsigned;
        let stale = |expires: &str| match online {
            true => tuf::needs_refresh(expires, now, self.days),
            false => tuf::needs_offline_refresh(expires, now),
        };
        let same_keys = |published: &PublishedRole| {
            self.keys.is_none_or(|keys| {
                published.keyids == keys.iter().map(|k| k.key_id().as_str().to_owned()).collect::<BTreeSet<_>>()
            })
        };
        if let Some(published) = published
            && published.plain
            && published.custom == self.custom
            && published.delegations == self.delegations
            && same_keys(published)
            && !stale(&published.expires)
            && published.entries == self.entries
        {
            return Decision::Keep(published.version);
        }
        Decision::New { version: published.map_or(1, |p| p.version + 1), expires: tuf::expiry(now, self.days) }
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
///
/// A kept entry must have a valid SHA-256 in the published bin (`path`): one listed
/// without (a tampered or damaged site) would be signed again with an all-zero digest
/// in its place, and that plugin's installs would fail their hash check.
pub(super) fn merge_bin(
    entries: &mut Entries,
    published: &PublishedRole,
    path: &std::path::Path,
    full: bool,
    changed: &BTreeSet<String>,
) -> Result<(), BuildError> {
    for (target, file) in &published.entries {
        let Some(owner) = index_doc_owner(target) else { continue };
        if !(full || changed.contains(owner)) {
            if published.invalid.contains(target) {
                return Err(BuildError::Site {
                    path: path.to_owned(),
                    reason: format!(
                        "lists {target} without a valid SHA-256, and this build does not load {owner} to \
                         list it again; rebuild in full (`trellis-index build` without --only)"
                    ),
                });
            }
            entries.insert(target.clone(), *file);
        } else if !entries.contains_key(target) {
            return Err(BuildError::Removed { target: target.clone() });
        }
    }
    Ok(())
}

/// Whether a published targets document is one this builder writes: nothing but
/// SHA-256 hashes, lengths and custom data (compared with the plan's by
/// [`RolePlan::decide`]), no unknown fields.
fn is_plain(doc: &Targets) -> bool {
    doc.type_ == "targets"
        && doc.spec_version == trellis_schema::tuf::SPEC_VERSION
        && doc.extra.is_empty()
        && doc.targets.values().all(|f| f.extra.is_empty() && f.hashes.len() == 1 && f.hashes.contains_key("sha256"))
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

/// A published targets role as the planner compares it: version, expiry, the key ids
/// of its signatures, delegations and compact entries. A role this builder wrote
/// without delegations (every hash bin, publisher bin, `security`, `catalog`) is read
/// by a scan of its canonical bytes ([`PublishedRole::scan`]): the catalog role lists
/// every catalog document (2.4 MB at 300k plugins), and a strict parse into a
/// [`Targets`] document (a map of `TargetFile`s, each with its own hash map) cost more
/// than the rest of a one-release build.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PublishedRole {
    pub(crate) version: u64,
    pub(crate) expires: String,
    /// Key ids of its signatures.
    pub(crate) keyids: BTreeSet<String>,
    pub(crate) delegations: Option<Delegations>,
    /// Whether it is a document this builder writes ([`is_plain`]); a role that is
    /// not always gets a new version.
    pub(crate) plain: bool,
    /// The `custom` members of its entries that have one (the catalog head's facts).
    pub(crate) custom: Custom,
    /// Its targets; a target whose SHA-256 is not valid hex is listed with an all-zero
    /// digest and named in `invalid`.
    pub(crate) entries: Entries,
    /// The targets listed without a valid SHA-256.
    pub(crate) invalid: BTreeSet<String>,
}

impl PublishedRole {
    /// The role of a parsed document.
    pub(crate) fn of(envelope: &Envelope<Targets>) -> Self {
        let mut invalid = BTreeSet::new();
        let entries = envelope
            .signed
            .targets
            .iter()
            .map(|(path, file)| {
                let sha = file.hashes.get("sha256").and_then(|h| h.parse().ok());
                if sha.is_none() {
                    invalid.insert(path.clone());
                }
                (path.clone(), (sha.unwrap_or(Sha256::from_bytes([0; 32])), file.length))
            })
            .collect();
        Self {
            version: envelope.signed.version,
            expires: envelope.signed.expires.clone(),
            keyids: envelope.signatures.iter().map(|s| s.keyid.as_str().to_owned()).collect(),
            delegations: envelope.signed.delegations.clone(),
            plain: is_plain(&envelope.signed),
            custom: (envelope.signed.targets.iter())
                .filter_map(|(path, file)| Some((path.clone(), file.custom.clone()?)))
                .collect(),
            entries,
            invalid,
        }
    }

    /// The role published as `bytes`: scanned when laid out exactly as
    /// [`RolePlan::sign`] writes a role without delegations, else parsed strictly
    /// (refused when that fails).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, trellis_schema::json::JsonError> {
        if let Some(role) = Self::scan(bytes) {
            return Ok(role);
        }
        let envelope: Envelope<Targets> = trellis_schema::json::from_slice(bytes)?;
        Ok(Self::of(&envelope))
    }

    /// The role of `bytes` when they are exactly what [`RolePlan::sign`] writes for a
    /// role without delegations: the canonical envelope, signatures of hex key ids,
    /// `_type`, `expires`, `spec_version` (this builder's), `targets` (in canonical
    /// order, each a `custom` member in canonical JSON or none, a SHA-256 of lowercase
    /// hex and a length) and `version`, nothing else. `None` otherwise: the caller parses the document strictly, so a scan
    /// never accepts what the strict parser would refuse, nor reads it differently.
    pub(crate) fn scan(bytes: &[u8]) -> Option<Self> {
        let mut at = Cursor { bytes, at: 0 };
        at.literal(b"{\"signatures\":[")?;
        let mut keyids = BTreeSet::new();
        if at.peek()? != b']' {
            loop {
                at.literal(b"{\"keyid\":")?;
                let keyid = at.string()?;
                if keyid.is_empty() || !keyid.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return None;
                }
                at.literal(b",\"sig\":")?;
                let sig = at.string()?;
                if !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                at.literal(b"}")?;
                keyids.insert(keyid.into_owned());
                if !at.comma() {
                    break;
                }
            }
        }
        at.literal(b"],\"signed\":{\"_type\":\"targets\",\"expires\":")?;
        let expires = at.string()?.into_owned();
        at.literal(b",\"spec_version\":")?;
        if at.string()? != trellis_schema::tuf::SPEC_VERSION {
            return None;
        }
        at.literal(b",\"targets\":{")?;
        // In order (checked), so the map is built in one pass at the end.
        let mut entries: Vec<(String, (Sha256, u64))> = Vec::new();
        let mut custom = Custom::new();
        if at.peek()? != b'}' {
            loop {
                let path = at.string()?.into_owned();
                if entries.last().is_some_and(|(last, _)| *last >= path) {
                    return None;
                }
                at.literal(b":{")?;
                if at.literal(b"\"custom\":").is_some() {
                    custom.insert(path.clone(), at.canonical_value()?);
                    at.literal(b",")?;
                }
                at.literal(b"\"hashes\":{\"sha256\":")?;
                let sha: Sha256 = at.string()?.parse().ok()?;
                at.literal(b"},\"length\":")?;
                let length = at.integer()?;
                at.literal(b"}")?;
                entries.push((path, (sha, length)));
                if !at.comma() {
                    break;
                }
            }
        }
        at.literal(b"},\"version\":")?;
        let version = at.integer()?;
        at.literal(b"}}")?;
        (at.at == bytes.len()).then_some(Self {
            version,
            expires,
            keyids,
            delegations: None,
            plain: true,
            custom,
            entries: entries.into_iter().collect(),
            invalid: BTreeSet::new(),
        })
    }
}

/// A position in canonical JSON bytes, for [`PublishedRole::scan`].
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let rest = self.bytes.get(self.at..)?;
        rest.starts_with(expected).then(|| self.at += expected.len())
    }

    fn comma(&mut self) -> bool {
        self.literal(b",").is_some()
    }

    /// A string as canonical JSON writes it: only `"` and `\` escaped. A control
    /// character, another escape or invalid UTF-8 ends the scan (a strict parser
    /// refuses the first, reads the second otherwise, and the third is not JSON).
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        self.literal(b"\"")?;
        let start = self.at;
        let mut escaped = false;
        loop {
            let byte = self.peek()?;
            match byte {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(self.at + 1)? {
                        b'"' | b'\\' => self.at += 2,
                        _ => return None,
                    }
                }
                0..0x20 => return None,
                _ => self.at += 1,
            }
        }
        let raw = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        self.at += 1;
        Some(match escaped {
            false => std::borrow::Cow::Borrowed(raw),
            true => {
                let mut out = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    out.push(if c == '\\' { chars.next()? } else { c });
                }
                std::borrow::Cow::Owned(out)
            }
        })
    }

    /// A JSON value exactly as canonical JSON writes it, read by the strict parser
    /// (`None` for anything else: the caller then parses the whole document strictly).
    fn canonical_value(&mut self) -> Option<serde_json::Value> {
        let rest = self.bytes.get(self.at..)?;
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
        stream.next()?.ok()?;
        let raw = &rest[..stream.byte_offset()];
        let value: serde_json::Value = trellis_schema::json::from_slice(raw).ok()?;
        (trellis_schema::canonical::to_vec(&value).ok()? == raw).then(|| {
            self.at += raw.len();
            value
        })
    }

    /// A non-negative integer as canonical JSON writes it (no sign, no leading zero).
    fn integer(&mut self) -> Option<u64> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.bytes[start..self.at];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    }
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

    /// A catalog-like role as [`RolePlan::sign`] writes it, with paths that need
    /// escapes, signed by two keys.
    fn signed_role() -> (Vec<u8>, Envelope<Targets>) {
        let keys = [SigningKey::from_seed([5; 32]), SigningKey::from_seed([6; 32])];
        let mut entries = Entries::new();
        for n in 0..50u64 {
            entries.insert(format!("catalog/search-{n:02}.json"), (Sha256::of(&n.to_le_bytes()), n * 1000));
        }
        entries.insert("catalog/q\"uote\\x.json".into(), (Sha256::of(b"q"), 0));
        entries.insert("catalog/\u{e9}t\u{e9}.json".into(), (Sha256::of(b"e"), 7));
        let plan = RolePlan::new("catalog", entries, None, Some(&keys), 90);
        let bytes = plan.sign(12, "2027-01-01T00:00:00Z").unwrap();
        let envelope = trellis_schema::json::from_slice(&bytes).unwrap();
        (bytes, envelope)
    }

    #[test]
    fn a_role_this_builder_signed_is_scanned_as_the_strict_parser_reads_it() {
        let (bytes, envelope) = signed_role();
        let scanned = PublishedRole::scan(&bytes).expect("the builder's own layout is scanned");
        assert_eq!(scanned, PublishedRole::of(&envelope));
        assert_eq!(scanned.entries.len(), 52);
        assert_eq!(scanned.keyids.len(), 2);
        assert_eq!(scanned.entries["catalog/q\"uote\\x.json"], (Sha256::of(b"q"), 0));
        assert!(scanned.plain && scanned.invalid.is_empty());
        // An empty role, unsigned, too.
        let plan = RolePlan::new("catalog", Entries::new(), None, Some(&[]), 90);
        let empty = plan.sign(1, "2027-01-01T00:00:00Z").unwrap();
        let parsed: Envelope<Targets> = trellis_schema::json::from_slice(&empty).unwrap();
        assert_eq!(PublishedRole::scan(&empty).unwrap(), PublishedRole::of(&parsed));
    }

    #[test]
    fn a_role_in_any_other_layout_is_parsed_strictly_or_refused() {
        let (bytes, envelope) = signed_role();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let strict = PublishedRole::of(&envelope);
        // Valid JSON the scan does not take: read by the strict parser, the same role.
        let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
        for (what, variant) in [
            ("pretty-printed", pretty),
            ("a trailing newline", [bytes.as_slice(), b"\n"].concat()),
            ("an escaped solidus", text.replacen("catalog/search-01.json", "catalog\\/search-01.json", 1).into_bytes()),
        ] {
            assert!(PublishedRole::scan(&variant).is_none(), "{what}: not the builder's layout");
            let read = PublishedRole::from_bytes(&variant).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(read, strict, "{what}");
        }
        // What the builder never writes: not scanned, read as the strict parser does.
        let q = Sha256::of(b"q").to_hex();
        let upper = text.replacen(&q, &q.to_uppercase(), 1);
        assert!(PublishedRole::scan(upper.as_bytes()).is_none());
        let read = PublishedRole::from_bytes(upper.as_bytes()).unwrap();
        assert_eq!(read.invalid, BTreeSet::from(["catalog/q\"uote\\x.json".to_owned()]), "not a digest");
        // Custom data out of canonical order: read strictly, kept for the plan to compare.
        let custom = text.replacen("\"length\":7}", "\"length\":7,\"custom\":{\"b\":1,\"a\":[]}}", 1);
        assert!(PublishedRole::scan(custom.as_bytes()).is_none());
        let read = PublishedRole::from_bytes(custom.as_bytes()).unwrap();
        assert_eq!(read.custom["catalog/\u{e9}t\u{e9}.json"], serde_json::json!({"a": [], "b": 1}));
        // In canonical order and layout, scanned, and read as the strict parser reads it.
        let canonical = text.replacen(":{\"hashes\"", ":{\"custom\":{\"a\":[],\"b\":\"q\\\"\"},\"hashes\"", 1);
        let scanned = PublishedRole::scan(canonical.as_bytes()).expect("canonical custom data is scanned");
        assert_eq!(scanned, PublishedRole::from_bytes(&canonical.clone().into_bytes()).unwrap());
        assert_eq!(scanned.custom.len(), 1);
        // Custom data not in canonical form (spaces, keys out of order, a repeated key):
        // never scanned; the repeated key refused by the strict parser.
        for (what, value, parses) in [
            ("spaces", "{\"a\": []}", true),
            ("keys out of order", "{\"b\":1,\"a\":2}", true),
            ("a repeated key", "{\"a\":1,\"a\":2}", false),
        ] {
            let variant = text.replacen(":{\"hashes\"", &format!(":{{\"custom\":{value},\"hashes\""), 1);
            assert!(PublishedRole::scan(variant.as_bytes()).is_none(), "{what}");
            assert_eq!(PublishedRole::from_bytes(variant.as_bytes()).is_ok(), parses, "{what}");
        }
        let spec = text.replacen(trellis_schema::tuf::SPEC_VERSION, "1.0.0", 1);
        assert!(PublishedRole::scan(spec.as_bytes()).is_none());
        assert!(!PublishedRole::from_bytes(spec.as_bytes()).unwrap().plain);
        let zero = text.replacen("\"length\":7}", "\"length\":07}", 1);
        assert!(PublishedRole::scan(zero.as_bytes()).is_none());
        assert!(PublishedRole::from_bytes(zero.as_bytes()).is_err(), "a leading zero is not JSON");
        // Targets out of order or repeated: never scanned; a repeated member refused.
        let (a, b) = ("\"catalog/search-01.json\"", "\"catalog/search-02.json\"");
        let swapped = text.replacen(a, "@", 1).replacen(b, a, 1).replacen('@', b, 1);
        assert!(PublishedRole::scan(swapped.as_bytes()).is_none());
        assert_eq!(PublishedRole::from_bytes(swapped.as_bytes()).unwrap().entries.len(), 52);
        let repeated = text.replacen(b, a, 1);
        assert!(PublishedRole::scan(repeated.as_bytes()).is_none());
        let error = PublishedRole::from_bytes(repeated.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("duplicate member"), "{error}");
        // Truncated anywhere, or a control character in a path: refused.
        for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(PublishedRole::scan(&bytes[..cut]).is_none(), "cut at {cut}");
            assert!(PublishedRole::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let control = text.replacen("search-03", "search\u{1}03", 1);
        assert!(PublishedRole::scan(control.as_bytes()).is_none());
        assert!(PublishedRole::from_bytes(control.as_bytes()).is_err());
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
        // The builder's own role with custom data is scanned (not parsed strictly), as
        // the strict parser reads it.
        let scanned = PublishedRole::scan(&fast).expect("the builder's layout with custom data is scanned");
        assert_eq!(scanned, PublishedRole::of(&published));
        assert_eq!(scanned.custom, facts(7));
        let published = scanned;

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
        let published = PublishedRole::from_bytes(&bytes).unwrap();
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
        let published = PublishedRole::from_bytes(&plan.sign(1, &tuf::expiry(signed_at, 180)).unwrap()).unwrap();
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
        let bin = std::path::Path::new("site/metadata/1.bin-0.json");
        let published = PublishedRole::of(&Envelope { signatures: Vec::new(), signed: published });
        merge_bin(&mut entries, &published, bin, false, &changed).unwrap();
        assert_eq!(
            entries,
            Entries::from([
                ("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2)),
                ("index/0b/acme.alarm.json".to_owned(), (Sha256::of(b"b"), 1)),
            ])
        );

        let mut entries = Entries::from([("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2))]);
        match merge_bin(&mut entries, &published, bin, true, &changed) {
            Err(BuildError::Removed { target }) => assert_eq!(target, "index/0b/acme.alarm.json"),
            other => panic!("a full build without acme.alarm must be refused, got {other:?}"),
        }

        // acme.alarm's digest not valid hex: refused when carried, naming the bin and
        // the entry; not when this build lists acme.alarm again itself.
        let mut tampered = published.clone();
        tampered.invalid.insert("index/0b/acme.alarm.json".to_owned());
        let mut entries = Entries::from([("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2))]);
        match merge_bin(&mut entries, &tampered, bin, false, &changed) {
            Err(BuildError::Site { path, reason }) => {
                assert_eq!(path, bin);
                assert!(reason.contains("index/0b/acme.alarm.json") && reason.contains("valid SHA-256"), "{reason}");
            }
            other => panic!("an entry without a digest must not be carried, got {other:?}"),
        }
        let mut entries = Entries::from([
            ("index/0a/acme.clock.json".to_owned(), (Sha256::of(b"new"), 2)),
            ("index/0b/acme.alarm.json".to_owned(), (Sha256::of(b"b2"), 2)),
        ]);
        merge_bin(&mut entries, &tampered, bin, true, &changed).unwrap();
        assert_eq!(entries["index/0b/acme.alarm.json"], (Sha256::of(b"b2"), 2));
    }
}
