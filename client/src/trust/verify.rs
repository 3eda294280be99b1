//! Parsing a metadata file and checking its signatures, type, version and expiry.
//!
//! Signatures are verified over the canonical JSON of the `signed` value *as
//! received* (a `serde_json::Value`), so fields this version does not model are
//! covered too. Only after that does the value become a typed document, wrapped in
//! [`Verified`], which nothing outside `trust` can construct.
//!
//! # Receipts: reading our own trusted store without re-verifying
//!
//! Every document the updater persists was verified first; beside it goes a
//! [`Receipt`]: the SHA-256 of the bytes and the keys (id and key fingerprint) whose
//! signatures over those bytes verified. A document read back from the store with a
//! receipt that still applies is typed without parsing it into a `Value`,
//! canonicalising it and checking signatures again (`from_receipt`): that work
//! dominated opening the store (30 hash bins of a 100k-plugin registry are ~2 MB).
//!
//! Why this is sound: signature verification is a pure function of (bytes, key). The
//! receipt applies only when the bytes hash to the recorded SHA-256 *and* a threshold
//! of distinct keys recorded as valid signers is still authorised for the role by the
//! *current* delegator (same key id, same key material), so a key rotation in root, a
//! revoked or replaced delegated key, or a raised threshold all fall back to full
//! verification, which is the spec's rule for trusted metadata after a rotation
//! (§5.3.11). Every other check (type, spec version, version against the referring
//! document, length and hashes named by snapshot or timestamp, rollback, expiry,
//! delegation rules) still runs on every load. A delegated role without delegations of
//! its own (a hash bin) that loads by receipt is not even typed: it stays bytes
//! ([`TrustedLeaf`]) and each lookup reads only the one entry it asks for. What a
//! receipt cannot protect against
//! is someone who can write the data dir: they could equally replace the trusted root
//! or the installed plugins, so re-verifying our own files never defended that.
//! Metadata from a mirror is always verified in full.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_schema::canonical;
use trellis_schema::json;
use trellis_schema::key::{KeyId, KeyMaterial, PublicKey};
use trellis_schema::tuf::{Signature, TargetFile};

use super::TrustError;

/// A document whose signatures met its role's threshold. Only the `trust` module
/// constructs it, so unverified metadata cannot reach a resolver by accident.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    signed: T,
    version: u64,
    expires: jiff::Timestamp,
    signers: Vec<Signer>,
    /// Whether a receipt stood in for the signature checks of this load.
    by_receipt: bool,
}

/// A key whose signature verified: its id and the fingerprint of its key material
/// ([`KeyId::of`], the SHA-256 of its canonical JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signer {
    /// The key id the document's delegator lists it under.
    pub keyid: KeyId,
    /// SHA-256 of the key's canonical JSON.
    pub fingerprint: KeyId,
}

/// Proof kept beside a stored document that its signatures were verified: the SHA-256
/// of its bytes and the keys whose signatures over them verified (see the module docs
/// for when it lets a load skip signature checks).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// SHA-256 of the document's bytes, hex.
    pub sha256: String,
    /// Keys whose signatures verified.
    pub signers: Vec<Signer>,
    /// Which rules the full verification that issued it applied ([`RECEIPT_FORMAT`]);
    /// a receipt of another format never applies, so documents verified under older,
    /// laxer rules are verified again in full.
    #[serde(default)]
    pub format: u32,
}

/// The rules a [`Receipt`] vouches for: 2 = strict JSON (no duplicate members,
/// [`trellis_schema::json`]) and thresholds counted by decoded key material; 3 = also,
/// a hash bin lists only targets that fall in it (`TrustError::ForeignTarget`: clients
/// before it stored another bin served under a bin's name, which signatures and the
/// snapshot's version cannot tell apart).
pub const RECEIPT_FORMAT: u32 = 3;

impl Receipt {
    /// The receipt for `bytes`, verified as `doc`.
    pub fn new<T>(bytes: &[u8], doc: &Verified<T>) -> Self {
        Self { sha256: sha256_hex(bytes), signers: doc.signers.clone(), format: RECEIPT_FORMAT }
    }

    /// Whether this receipt proves that a threshold of the keys `keyids` (looked up in
    /// `keys`) signed `bytes`: distinct key material, exactly as full verification counts.
    fn applies(&self, bytes: &[u8], keys: &BTreeMap<KeyId, PublicKey>, keyids: &[KeyId], threshold: u32) -> bool {
        if threshold == 0 || self.format != RECEIPT_FORMAT || self.sha256 != sha256_hex(bytes) {
            return false;
        }
        let mut counted: HashSet<KeyMaterial> = HashSet::new();
        for signer in &self.signers {
            let Some(key) = keys.get(&signer.keyid) else { continue };
            if keyids.contains(&signer.keyid)
                && KeyId::of(key).is_ok_and(|f| f == signer.fingerprint)
                && let Ok(material) = key.material()
            {
                counted.insert(material_identity(material));
            }
        }
        counted.len() as u32 >= threshold
    }
}

/// What one signer counts as: the key's family and bytes, not its scheme.
fn material_identity(material: KeyMaterial) -> KeyMaterial {
    KeyMaterial { scheme: String::new(), ..material }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The fields every role's `signed` has, read without building the rest.
#[derive(serde::Deserialize)]
struct Header {
    #[serde(rename = "_type", default)]
    type_: String,
    #[serde(default)]
    spec_version: String,
    #[serde(default)]
    version: Value,
    #[serde(default)]
    expires: String,
}

#[derive(serde::Deserialize)]
struct Outer<T> {
    signed: T,
}

/// The keys allowed to sign a role: the delegator's key table, the ids it authorises
/// for the role, and its threshold.
pub(crate) type Authorised<'a> = (&'a BTreeMap<KeyId, PublicKey>, &'a [KeyId], u32);

/// Types a document of our trusted store when `receipt` proves its signatures (see
/// the module docs): `None` when the receipt does not apply, and the caller must
/// verify in full. The common fields are checked exactly like [`Unverified::parse`].
pub(crate) fn from_receipt<T: Signed>(
    bytes: &[u8],
    role: &str,
    expected_type: &str,
    receipt: Option<&Receipt>,
    authorised: Authorised<'_>,
) -> Option<Result<Verified<T>, TrustError>> {
    let receipt = receipt?;
    let (keys, keyids, threshold) = authorised;
    if !receipt.applies(bytes, keys, keyids, threshold) {
        return None;
    }
    // Whatever this path cannot type, full verification judges (and it refuses or
    // accepts exactly as it would without a receipt): a receipt never makes a trusted
    // document unreadable, so it never drops a version floor.
    match typed_trusted(bytes, role, expected_type, receipt) {
        Ok(doc) => Some(Ok(doc)),
        Err(e) => {
            tracing::debug!(role, error = %e, "receipt path could not type the document; verifying in full");
            None
        }
    }
}

fn typed_trusted<T: Signed>(
    bytes: &[u8],
    role: &str,
    expected_type: &str,
    receipt: &Receipt,
) -> Result<Verified<T>, TrustError> {
    let header: Outer<Header> =
        serde_json::from_slice(bytes).map_err(|e| TrustError::malformed(role, format!("not metadata: {e}")))?;
    let (version, expires) = check_header(
        role,
        expected_type,
        &header.signed.type_,
        &header.signed.spec_version,
        &header.signed.version,
        &header.signed.expires,
    )?;
    let signed = T::from_document(bytes).map_err(|e| TrustError::malformed(role, e.to_string()))?;
    Ok(Verified { signed, version, expires, signers: receipt.signers.clone(), by_receipt: true })
}

/// A role's `signed` document, typed straight from the file's bytes.
pub(crate) trait Signed: DeserializeOwned {
    /// The `signed` member of `bytes`, typed.
    fn from_document(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<Outer<Self>>(bytes).map(|doc| doc.signed)
    }
}

impl Signed for trellis_schema::tuf::Timestamp {}

impl Signed for trellis_schema::tuf::Targets {}

impl Signed for trellis_schema::tuf::Snapshot {
    /// A snapshot of a large registry lists thousands of roles, and serde's buffering
    /// of the `#[serde(flatten)]` unknown-field maps costs more than the parse itself.
    /// A document without unknown fields (what Trellis and most TUF repositories
    /// write) is read into plain structs instead; any other falls back to the full
    /// parse, so the result is the same either way.
    fn from_document(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        use trellis_schema::tuf::{MetaFile, Snapshot};
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PlainMeta {
            version: u64,
            #[serde(default)]
            length: Option<u64>,
            #[serde(default)]
            hashes: Option<BTreeMap<String, String>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PlainSnapshot {
            #[serde(rename = "_type")]
            type_: String,
            spec_version: String,
            version: u64,
            expires: String,
            meta: BTreeMap<String, PlainMeta>,
        }
        let Ok(plain) = serde_json::from_slice::<Outer<PlainSnapshot>>(bytes) else {
            return serde_json::from_slice::<Outer<Snapshot>>(bytes).map(|doc| doc.signed);
        };
        let plain = plain.signed;
        Ok(Snapshot {
            type_: plain.type_,
            spec_version: plain.spec_version,
            version: plain.version,
            expires: plain.expires,
            meta: plain
                .meta
                .into_iter()
                .map(|(name, m)| {
                    (
                        name,
                        MetaFile { version: m.version, length: m.length, hashes: m.hashes, extra: Default::default() },
                    )
                })
                .collect(),
            extra: Default::default(),
        })
    }
}

/// A delegated targets role without delegations, read back from our store under a
/// [`Receipt`] that applied and checked like any trusted copy (version and expiry are
/// those of its header), kept as bytes: a hash bin of a large registry lists hundreds
/// of targets and a resolution needs one of them. Only [`super::TrustedSet::verify_local_leaf`] makes one.
///
/// The first [`TrustedLeaf::target`] after the load indexes every entry (the one pass
/// a lookup makes anyway, kept), so a role asked many times (the catalog role: the
/// head and each query's shards, ~800 KB at 100k plugins) is read once, not per lookup.
#[derive(Debug)]
pub struct TrustedLeaf {
    bytes: Vec<u8>,
    role: String,
    version: u64,
    expires: jiff::Timestamp,
    entries: std::sync::OnceLock<Result<HashMap<String, TargetFile>, String>>,
}

impl TrustedLeaf {
    /// The document's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it expires.
    pub fn expires(&self) -> jiff::Timestamp {
        self.expires
    }

    /// The signed entry of `path`, reading only that entry (a receipt applies only to
    /// bytes full verification accepted, so no member repeats).
    pub fn target(&self, path: &str) -> Result<Option<TargetFile>, TrustError> {
        let entries = self.entries.get_or_init(|| {
            let mut deserializer = serde_json::Deserializer::from_slice(&self.bytes);
            serde::de::DeserializeSeed::deserialize(
                Section { key: "signed", inner: Section { key: "targets", inner: AllEntries } },
                &mut deserializer,
            )
            .map(|found| found.flatten().unwrap_or_default())
            .map_err(|e| e.to_string())
        });
        match entries {
            Ok(entries) => Ok(entries.get(path).cloned()),
            Err(e) => Err(TrustError::malformed(&self.role, e.clone())),
        }
    }
}

/// What one skimming pass over a leaf's `signed` reads: the common fields, whether
/// `delegations` is present, and the entry of one target path.
#[derive(Default)]
struct LeafScan {
    type_: String,
    spec_version: String,
    version: Value,
    expires: String,
    delegates: bool,
    /// Whether the document has its `targets` member (full verification requires it).
    has_targets: bool,
    found: Option<TargetFile>,
}

/// Types a targets role of our trusted store as a [`TrustedLeaf`] when `receipt`
/// proves its signatures and it delegates nothing, and looks up `path` in the same
/// pass: `None` when either is not so (the caller then loads it in full).
pub(crate) fn verify_leaf(
    bytes: Vec<u8>,
    role: &str,
    receipt: Option<&Receipt>,
    authorised: Authorised<'_>,
    path: &str,
) -> Option<Result<(TrustedLeaf, Option<TargetFile>), TrustError>> {
    let receipt = receipt?;
    let (keys, keyids, threshold) = authorised;
    if !receipt.applies(&bytes, keys, keyids, threshold) {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let scan =
        serde::de::DeserializeSeed::deserialize(Section { key: "signed", inner: ScanLeaf(path) }, &mut deserializer);
    let scan = match scan {
        Ok(scan) => scan.unwrap_or_default(),
        Err(e) => {
            // Full verification judges what this skim cannot read (see `from_receipt`).
            tracing::debug!(role, error = %e, "receipt path could not read the document; verifying in full");
            return None;
        }
    };
    if scan.delegates || !scan.has_targets {
        return None;
    }
    Some(check_header(role, "targets", &scan.type_, &scan.spec_version, &scan.version, &scan.expires).map(
        |(version, expires)| {
            let leaf = TrustedLeaf { bytes, role: role.to_owned(), version, expires, entries: Default::default() };
            (leaf, scan.found)
        },
    ))
}

/// Reads a [`LeafScan`] from a `signed` object.
#[derive(Clone, Copy)]
struct ScanLeaf<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for ScanLeaf<'_> {
    type Value = LeafScan;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<LeafScan, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ScanLeaf<'_> {
    type Value = LeafScan;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a targets document")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LeafScan, A::Error> {
        let mut scan = LeafScan::default();
        while let Some(key) = map.next_key::<LeafKey>()? {
            match key {
                LeafKey::Type => scan.type_ = map.next_value()?,
                LeafKey::SpecVersion => scan.spec_version = map.next_value()?,
                LeafKey::Version => scan.version = map.next_value()?,
                LeafKey::Expires => scan.expires = map.next_value()?,
                LeafKey::Delegations => {
                    scan.delegates = !map.next_value::<Value>()?.is_null();
                }
                LeafKey::Targets => {
                    scan.has_targets = true;
                    scan.found = map.next_value_seed(Entry(self.0))?;
                }
                LeafKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(scan)
    }
}

/// The members of a targets document a leaf scan reads.
enum LeafKey {
    Type,
    SpecVersion,
    Version,
    Expires,
    Delegations,
    Targets,
    Other,
}

impl<'de> serde::Deserialize<'de> for LeafKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = LeafKey;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<LeafKey, E> {
                Ok(match value {
                    "_type" => LeafKey::Type,
                    "spec_version" => LeafKey::SpecVersion,
                    "version" => LeafKey::Version,
                    "expires" => LeafKey::Expires,
                    "delegations" => LeafKey::Delegations,
                    "targets" => LeafKey::Targets,
                    _ => LeafKey::Other,
                })
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// Finds the value of `key` in a JSON object and hands it to `inner`, skipping every
/// other member without building it. `None` when the key is absent.
struct Section<S> {
    key: &'static str,
    inner: S,
}

impl<'de, S> serde::de::DeserializeSeed<'de> for Section<S>
where
    S: serde::de::DeserializeSeed<'de> + Copy,
{
    type Value = Option<S::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S> serde::de::Visitor<'de> for Section<S>
where
    S: serde::de::DeserializeSeed<'de> + Copy,
{
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object with {:?}", self.key)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.key))? {
            if matches {
                found = Some(map.next_value_seed(self.inner)?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The entry `path` of a `targets` object. Every entry is typed (so the skim refuses
/// exactly the entries full verification refuses), only `path`'s is kept.
#[derive(Clone, Copy)]
struct Entry<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for Entry<'_> {
    type Value = Option<TargetFile>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Entry<'_> {
    type Value = Option<TargetFile>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of target paths")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.0))? {
            let entry = map.next_value::<TargetFile>()?;
            if matches {
                found = Some(entry);
            }
        }
        Ok(found)
    }
}

/// Every entry of a `targets` object, typed as full verification types them.
#[derive(Clone, Copy)]
struct AllEntries;

impl<'de> serde::de::DeserializeSeed<'de> for AllEntries {
    type Value = HashMap<String, TargetFile>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }
}

impl<S: Copy> Clone for Section<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Copy> Copy for Section<S> {}

/// Whether an object key equals the given string (no allocation when unescaped).
#[derive(Clone, Copy)]
struct KeyIs<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<bool, E> {
        Ok(value == self.0)
    }
}

fn check_header(
    role: &str,
    expected_type: &str,
    actual: &str,
    spec: &str,
    version: &Value,
    expires_text: &str,
) -> Result<(u64, jiff::Timestamp), TrustError> {
    if actual != expected_type {
        return Err(TrustError::WrongType {
            role: role.to_owned(),
            expected: expected_type.to_owned(),
            actual: actual.to_owned(),
        });
    }
    let parts: Vec<&str> = spec.split('.').collect();
    if !(2..=3).contains(&parts.len()) || parts[0] != "1" || parts.iter().any(|p| p.parse::<u32>().is_err()) {
        return Err(TrustError::malformed(role, format!("unsupported spec_version {spec:?}")));
    }
    let version = version
        .as_u64()
        .filter(|v| *v >= 1)
        .ok_or_else(|| TrustError::malformed(role, "version is missing or not a positive integer"))?;
    let expires = parse_expiry(expires_text)
        .ok_or_else(|| TrustError::malformed(role, format!("expires {expires_text:?} is not YYYY-MM-DDTHH:MM:SSZ")))?;
    Ok((version, expires))
}

impl<T> Verified<T> {
    /// The keys whose signatures verified.
    pub fn signers(&self) -> &[Signer] {
        &self.signers
    }

    /// Whether this load relied on a stored [`Receipt`] instead of checking
    /// signatures (then there is no new receipt to record).
    pub fn by_receipt(&self) -> bool {
        self.by_receipt
    }

    /// The document's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it expires.
    pub fn expires(&self) -> jiff::Timestamp {
        self.expires
    }

    /// Whether it is expired at `now`.
    pub fn is_expired(&self, now: jiff::Timestamp) -> bool {
        self.expires <= now
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.signed
    }
}

/// A parsed but not yet verified metadata file.
pub(crate) struct Unverified {
    role: String,
    signed: Value,
    signatures: Vec<Signature>,
    version: u64,
    expires: jiff::Timestamp,
    /// Keys whose signatures verified so far.
    signers: Vec<Signer>,
}

impl Unverified {
    /// Parses `bytes` as metadata of `role` with `_type` `expected_type`, checking
    /// the fields common to every role (type, spec version, version, expiry format,
    /// unique signature key ids).
    pub(crate) fn parse(bytes: &[u8], role: &str, expected_type: &str) -> Result<Self, TrustError> {
        let mut value: Value = json::from_slice(bytes).map_err(|e| match e {
            json::JsonError::DuplicateMember { .. } => TrustError::malformed(role, e.to_string()),
            json::JsonError::Invalid(_) => TrustError::malformed(role, format!("not JSON: {e}")),
        })?;
        let object = value.as_object_mut().ok_or_else(|| TrustError::malformed(role, "not a JSON object"))?;
        let signed = object.remove("signed").ok_or_else(|| TrustError::malformed(role, "no \"signed\" field"))?;
        let signatures: Vec<Signature> = object
            .remove("signatures")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| TrustError::malformed(role, format!("bad \"signatures\": {e}")))?
            .ok_or_else(|| TrustError::malformed(role, "no \"signatures\" field"))?;
        let mut seen = HashSet::new();
        if let Some(dup) = signatures.iter().find(|s| !seen.insert(&s.keyid)) {
            return Err(TrustError::malformed(role, format!("two signatures by key {}", dup.keyid)));
        }
        let (version, expires) = check_header(
            role,
            expected_type,
            signed.get("_type").and_then(Value::as_str).unwrap_or_default(),
            signed.get("spec_version").and_then(Value::as_str).unwrap_or_default(),
            signed.get("version").unwrap_or(&Value::Null),
            signed.get("expires").and_then(Value::as_str).unwrap_or_default(),
        )?;
        Ok(Self { role: role.to_owned(), signed, signatures, version, expires, signers: Vec::new() })
    }

    /// The version field.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Checks that `threshold` distinct keys among `keyids` (looked up in `keys`)
    /// signed, then types the document.
    pub(crate) fn verify<T: DeserializeOwned>(
        mut self,
        keys: &BTreeMap<KeyId, PublicKey>,
        keyids: &[KeyId],
        threshold: u32,
    ) -> Result<Verified<T>, TrustError> {
        self.check_signatures(keys, keyids, threshold)?;
        self.into_typed()
    }

    /// Checks the threshold without consuming (root must be signed by old and new),
    /// remembering the keys whose signatures verified.
    pub(crate) fn check_signatures(
        &mut self,
        keys: &BTreeMap<KeyId, PublicKey>,
        keyids: &[KeyId],
        threshold: u32,
    ) -> Result<(), TrustError> {
        let message = canonical::to_vec(&self.signed).map_err(|e| TrustError::malformed(&self.role, e.to_string()))?;
        // Counted by key id *and* by decoded key material: one key listed under two
        // ids (other `keyid_hash_algorithms`, hex in upper and lower case, PEM with
        // other line breaks) still counts once.
        let mut counted_ids: HashSet<&KeyId> = HashSet::new();
        let mut counted_keys: HashSet<KeyMaterial> = HashSet::new();
        for keyid in keyids {
            if counted_ids.contains(keyid) {
                continue;
            }
            let (Some(key), Some(signature)) = (keys.get(keyid), self.signatures.iter().find(|s| &s.keyid == keyid))
            else {
                continue;
            };
            let Ok(sig) = hex::decode(&signature.sig) else { continue };
            // A key that verifies has material that decodes.
            match key.verify(&message, &sig).and_then(|()| key.material()) {
                Ok(material) => {
                    counted_ids.insert(keyid);
                    counted_keys.insert(material_identity(material));
                    if let Ok(fingerprint) = KeyId::of(key) {
                        let signer = Signer { keyid: keyid.clone(), fingerprint };
                        if !self.signers.contains(&signer) {
                            self.signers.push(signer);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(role = %self.role, key = %keyid.short(), error = %e, "signature does not count")
                }
            }
        }
        let valid = counted_keys.len() as u32;
        if threshold == 0 || valid < threshold {
            return Err(TrustError::Threshold { role: self.role.clone(), valid, threshold });
        }
        Ok(())
    }

    /// Types the document (after the signatures were checked).
    pub(super) fn into_typed<T: DeserializeOwned>(self) -> Result<Verified<T>, TrustError> {
        let signed =
            serde_json::from_value(self.signed).map_err(|e| TrustError::malformed(&self.role, e.to_string()))?;
        Ok(Verified { signed, version: self.version, expires: self.expires, signers: self.signers, by_receipt: false })
    }

    /// Types the document without consuming it, to read the keys a root signs itself
    /// with before its signatures are checked. The result is *not* trusted.
    pub(super) fn peek<T: DeserializeOwned>(&self) -> Result<T, TrustError> {
        T::deserialize(&self.signed).map_err(|e| TrustError::malformed(&self.role, e.to_string()))
    }

    /// Wraps `signed` (obtained by [`Unverified::peek`]) once the caller has checked
    /// every signature it requires.
    pub(super) fn into_verified<T>(self, signed: T) -> Verified<T> {
        Verified { signed, version: self.version, expires: self.expires, signers: self.signers, by_receipt: false }
    }
}

/// Parses TUF's `expires` format (RFC 3339 in UTC).
pub(crate) fn parse_expiry(text: &str) -> Option<jiff::Timestamp> {
    if !text.ends_with('Z') {
        return None;
    }
    text.parse().ok()
}

/// Checks `bytes` against a length and a map of hash algorithm → hex digest.
/// An algorithm this client cannot compute fails the check (fail closed).
pub(crate) fn check_length_and_hashes(
    what: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), TrustError> {
    use sha2::Digest as _;
    let mismatch = |reason: String| TrustError::HashMismatch { what: what.to_owned(), reason };
    if let Some(length) = length
        && length != bytes.len() as u64
    {
        return Err(mismatch(format!("length is {} bytes, expected {length}", bytes.len())));
    }
    for (algorithm, expected) in hashes.into_iter().flatten() {
        let actual = match algorithm.as_str() {
            "sha224" => hex::encode(sha2::Sha224::digest(bytes)),
            "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
            "sha384" => hex::encode(sha2::Sha384::digest(bytes)),
            "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
            other => return Err(mismatch(format!("unsupported hash algorithm {other:?}"))),
        };
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(mismatch(format!("{algorithm} is {actual}, expected {expected}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_check_refuses_unknown_algorithms_and_wrong_lengths() {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"abc"));
        let ok = BTreeMap::from([("sha256".to_owned(), sha256.clone())]);
        check_length_and_hashes("t", b"abc", Some(3), Some(&ok)).unwrap();
        assert!(check_length_and_hashes("t", b"abc", Some(4), Some(&ok)).is_err());
        let unknown = BTreeMap::from([("md5".to_owned(), sha256)]);
        let err = check_length_and_hashes("t", b"abc", None, Some(&unknown)).unwrap_err();
        assert!(err.to_string().contains("unsupported hash algorithm"), "{err}");
    }

    #[test]
    fn parse_refuses_wrong_type_bad_spec_version_and_duplicate_signatures() {
        let doc = |ty: &str, spec: &str, sigs: &str| {
            format!(
                r#"{{"signed":{{"_type":"{ty}","spec_version":"{spec}","version":1,"expires":"2030-01-01T00:00:00Z"}},"signatures":{sigs}}}"#
            )
        };
        assert!(Unverified::parse(doc("timestamp", "1.0.31", "[]").as_bytes(), "timestamp", "timestamp").is_ok());
        assert!(matches!(
            Unverified::parse(doc("snapshot", "1.0.31", "[]").as_bytes(), "timestamp", "timestamp"),
            Err(TrustError::WrongType { .. })
        ));
        assert!(Unverified::parse(doc("timestamp", "2.0.0", "[]").as_bytes(), "timestamp", "timestamp").is_err());
        let dup = r#"[{"keyid":"ab","sig":"00"},{"keyid":"ab","sig":"00"}]"#;
        assert!(Unverified::parse(doc("timestamp", "1.0", dup).as_bytes(), "timestamp", "timestamp").is_err());
    }

    #[test]
    fn leaf_under_a_receipt_reads_only_the_entry_asked_for_and_refuses_delegating_roles() {
        let key = trellis_schema::SigningKey::from_seed([3; 32]);
        let keys = BTreeMap::from([(key.key_id().clone(), key.public().clone())]);
        let keyids = vec![key.key_id().clone()];
        let entry = |n: u64| format!(r#"{{"hashes":{{"sha256":"{:064x}"}},"length":{n}}}"#, n);
        let doc = |extra: &str| {
            format!(
                r#"{{"signatures":[],"signed":{{"_type":"targets","spec_version":"1.0.31","version":4,"expires":"2030-01-01T00:00:00Z"{extra},"targets":{{"a/x.json":{},"b\/y.json":{},"c/z.json":{}}}}}}}"#,
                entry(1),
                entry(2),
                entry(3)
            )
            .into_bytes()
        };
        let bytes = doc("");
        let signer = Signer { keyid: key.key_id().clone(), fingerprint: KeyId::of(key.public()).unwrap() };
        let receipt = Receipt { sha256: sha256_hex(&bytes), signers: vec![signer], format: RECEIPT_FORMAT };
        let (leaf, found) =
            verify_leaf(bytes.clone(), "bin-1", Some(&receipt), (&keys, &keyids, 1), "a/x.json").unwrap().unwrap();
        assert_eq!(found.unwrap().length, 1);
        assert_eq!(leaf.version(), 4);
        assert_eq!(leaf.target("c/z.json").unwrap().unwrap().length, 3);
        assert_eq!(leaf.target("b/y.json").unwrap().unwrap().length, 2, "escaped keys compare unescaped");
        assert!(leaf.target("d/none.json").unwrap().is_none());
        // No receipt, another document, or a role that delegates: loaded in full instead.
        assert!(verify_leaf(bytes, "bin-1", None, (&keys, &keyids, 1), "a/x.json").is_none());
        assert!(verify_leaf(doc(r#","x":1"#), "bin-1", Some(&receipt), (&keys, &keyids, 1), "a/x.json").is_none());
        let delegating = doc(r#","delegations":{"keys":{},"roles":[]}"#);
        let receipt = Receipt { sha256: sha256_hex(&delegating), ..receipt };
        assert!(verify_leaf(delegating.clone(), "bin-1", Some(&receipt), (&keys, &keyids, 1), "a/x.json").is_none());
        assert!(verify_leaf(delegating, "bin-1", Some(&receipt), (&keys, &keyids, 2), "a/x.json").is_none());
    }

    #[test]
    fn snapshot_reads_the_same_with_and_without_unknown_fields() {
        let plain = br#"{"signed":{"_type":"snapshot","spec_version":"1.0.31","version":2,"expires":"2030-01-01T00:00:00Z","meta":{"targets.json":{"version":1},"bin-0.json":{"version":3,"length":10,"hashes":{"sha256":"ab"}}}},"signatures":[]}"#;
        let unknown = br#"{"signed":{"_type":"snapshot","spec_version":"1.0.31","version":2,"expires":"2030-01-01T00:00:00Z","x":1,"meta":{"targets.json":{"version":1,"y":[1]}}},"signatures":[]}"#;
        for bytes in [&plain[..], &unknown[..]] {
            let fast = <trellis_schema::tuf::Snapshot as Signed>::from_document(bytes).unwrap();
            let full: Outer<trellis_schema::tuf::Snapshot> = serde_json::from_slice(bytes).unwrap();
            assert_eq!(fast, full.signed);
        }
        let fast = <trellis_schema::tuf::Snapshot as Signed>::from_document(unknown).unwrap();
        assert_eq!(fast.extra["x"], 1);
        assert_eq!(fast.meta["targets.json"].extra["y"], serde_json::json!([1]));
    }
}
