//! Parsing a metadata file and checking its signatures, type, version and expiry.
//!
//! Signatures are verified over the canonical JSON of the `signed` value *as
//! received* (a `serde_json::Value`), so fields this version does not model are
//! covered too. Only after that does the value become a typed document, wrapped in
//! [`Verified`], which nothing outside `trust` can construct.

use std::collections::{BTreeMap, HashSet};
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_schema::canonical;
use trellis_schema::key::{KeyId, PublicKey};
use trellis_schema::tuf::Signature;

use super::TrustError;

/// A document whose signatures met its role's threshold. Only the `trust` module
/// constructs it, so unverified metadata cannot reach a resolver by accident.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    signed: T,
    version: u64,
    expires: jiff::Timestamp,
}

impl<T> Verified<T> {
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
}

impl Unverified {
    /// Parses `bytes` as metadata of `role` with `_type` `expected_type`, checking
    /// the fields common to every role (type, spec version, version, expiry format,
    /// unique signature key ids).
    pub(crate) fn parse(bytes: &[u8], role: &str, expected_type: &str) -> Result<Self, TrustError> {
        let mut value: Value =
            serde_json::from_slice(bytes).map_err(|e| TrustError::malformed(role, format!("not JSON: {e}")))?;
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
        let actual = signed.get("_type").and_then(Value::as_str).unwrap_or_default();
        if actual != expected_type {
            return Err(TrustError::WrongType {
                role: role.to_owned(),
                expected: expected_type.to_owned(),
                actual: actual.to_owned(),
            });
        }
        let spec = signed.get("spec_version").and_then(Value::as_str).unwrap_or_default();
        let parts: Vec<&str> = spec.split('.').collect();
        if !(2..=3).contains(&parts.len()) || parts[0] != "1" || parts.iter().any(|p| p.parse::<u32>().is_err()) {
            return Err(TrustError::malformed(role, format!("unsupported spec_version {spec:?}")));
        }
        let version = signed
            .get("version")
            .and_then(Value::as_u64)
            .filter(|v| *v >= 1)
            .ok_or_else(|| TrustError::malformed(role, "version is missing or not a positive integer"))?;
        let expires_text = signed.get("expires").and_then(Value::as_str).unwrap_or_default();
        let expires = parse_expiry(expires_text).ok_or_else(|| {
            TrustError::malformed(role, format!("expires {expires_text:?} is not YYYY-MM-DDTHH:MM:SSZ"))
        })?;
        Ok(Self { role: role.to_owned(), signed, signatures, version, expires })
    }

    /// The version field.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Checks that `threshold` distinct keys among `keyids` (looked up in `keys`)
    /// signed, then types the document.
    pub(crate) fn verify<T: DeserializeOwned>(
        self,
        keys: &BTreeMap<KeyId, PublicKey>,
        keyids: &[KeyId],
        threshold: u32,
    ) -> Result<Verified<T>, TrustError> {
        self.check_signatures(keys, keyids, threshold)?;
        self.into_typed()
    }

    /// Checks the threshold without consuming (root must be signed by old and new).
    pub(crate) fn check_signatures(
        &self,
        keys: &BTreeMap<KeyId, PublicKey>,
        keyids: &[KeyId],
        threshold: u32,
    ) -> Result<(), TrustError> {
        let message = canonical::to_vec(&self.signed).map_err(|e| TrustError::malformed(&self.role, e.to_string()))?;
        // Counted by key id *and* by key material: one key listed under two ids
        // (e.g. with different `keyid_hash_algorithms`) still counts once.
        let mut counted_ids: HashSet<&KeyId> = HashSet::new();
        let mut counted_keys: HashSet<(&str, Option<&str>)> = HashSet::new();
        for keyid in keyids {
            if counted_ids.contains(keyid) {
                continue;
            }
            let (Some(key), Some(signature)) = (keys.get(keyid), self.signatures.iter().find(|s| &s.keyid == keyid))
            else {
                continue;
            };
            let Ok(sig) = hex::decode(&signature.sig) else { continue };
            match key.verify(&message, &sig) {
                Ok(()) => {
                    counted_ids.insert(keyid);
                    counted_keys.insert((key.keytype.as_str(), key.public_str()));
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
        Ok(Verified { signed, version: self.version, expires: self.expires })
    }

    /// Types the document without consuming it, to read the keys a root signs itself
    /// with before its signatures are checked. The result is *not* trusted.
    pub(super) fn peek<T: DeserializeOwned>(&self) -> Result<T, TrustError> {
        T::deserialize(&self.signed).map_err(|e| TrustError::malformed(&self.role, e.to_string()))
    }

    /// Wraps `signed` (obtained by [`Unverified::peek`]) once the caller has checked
    /// every signature it requires.
    pub(super) fn into_verified<T>(self, signed: T) -> Verified<T> {
        Verified { signed, version: self.version, expires: self.expires }
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
}
