//! License tokens: vendor-signed, compact, pasteable, verified offline.
//!
//! A token is one line of text a buyer pastes into the store:
//!
//! ```text
//! trellis-license-v1.<payload, base64url without padding>.<Ed25519 signature, base64url>
//! ```
//!
//! The payload is the canonical JSON ([`crate::canonical`]) of a [`LicensePayload`]:
//! the plugin, the licensee, when it was issued and when it expires, the seats, the
//! features it unlocks, the id of the key that signed it and an optional order
//! reference. The signature covers `trellis-license-v1.<payload>` (the version is
//! signed too). A token is parsed strictly ([`LicenseToken::parse`]): bounded sizes
//! ([`LicenseLimits`]), [`crate::json::from_slice`] (no duplicated members), no unknown
//! fields, and the payload bytes must be the canonical form of what they say, so one
//! license has exactly one encoding.
//!
//! [`LicenseToken::verify`] checks a token against a vendor's publisher record as a
//! client has pinned it: the signing key must be one of the record's `license_keys`
//! (keys meant for a payment webhook, which sign nothing else) or release `keys`, bound
//! to its key id, and neither revoked nor removed; the plugin must be in the vendor's
//! namespace. So a key the vendor revokes or drops in a later record version
//! invalidates every token it signed once the client pins that version. Expiry is
//! judged against a time the caller passes. This module does no I/O: the client keeps
//! the tokens and the pins, `trellis-index license issue` mints tokens.
//!
//! What an offline token cannot do: it cannot stop a token from being copied to another
//! machine, and `seats` is a number the vendor signs and the host app may show or
//! enforce locally; nothing counts installs without a server.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::{Deserialize, Serialize};

use crate::id::PluginId;
use crate::key::{KeyId, PublicKey, SigningKey};
use crate::publisher::PublisherRecord;

/// The first dot-separated part of every token of this format.
pub const TOKEN_PREFIX: &str = "trellis-license-v1";

/// Size bounds a token must keep, checked before anything is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LicenseLimits {
    /// Characters of the whole token (default 4096: fits in a text field or a mail).
    pub max_token_len: usize,
    /// Characters of the licensee (default 256).
    pub max_licensee_len: usize,
    /// Features listed (default 32).
    pub max_features: usize,
    /// Characters of one feature name (default 64).
    pub max_feature_len: usize,
    /// Characters of the order reference (default 128).
    pub max_order_len: usize,
    /// Seats (default 1,000,000).
    pub max_seats: u32,
}

impl Default for LicenseLimits {
    fn default() -> Self {
        Self {
            max_token_len: 4096,
            max_licensee_len: 256,
            max_features: 32,
            max_feature_len: 64,
            max_order_len: 128,
            max_seats: 1_000_000,
        }
    }
}

/// What a token grants. Its canonical JSON is what the vendor signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LicensePayload {
    /// The plugin licensed.
    pub plugin: PluginId,
    /// Who bought it (a name or an e-mail address), shown to the user.
    pub licensee: String,
    /// When it was issued.
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    pub issued: jiff::Timestamp,
    /// When it stops being valid; absent for a perpetual license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "json-schema", schemars(with = "Option<String>"))]
    pub expires: Option<jiff::Timestamp>,
    /// How many machines the licensee may use it on (not counted without a server).
    pub seats: u32,
    /// Features it unlocks, for the host app to gate (empty: the plugin as a whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The key that signed it: one of the vendor's license keys (or release keys).
    pub keyid: KeyId,
    /// The payment processor's reference (checkout session, order), for support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// A parsed token: its payload, and the encoded parts its signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseToken {
    payload: LicensePayload,
    encoded_payload: String,
    signature: Vec<u8>,
}

/// Why a token is refused. Each message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// Not a token of this format at all.
    #[error(
        "not a Trellis license token: {problem}; a token looks like `{TOKEN_PREFIX}.<payload>.<signature>` (paste it whole, on one line)"
    )]
    Format {
        /// What is wrong.
        problem: String,
    },
    /// The payload or one of its fields is out of bounds or malformed.
    #[error("license token payload is invalid: {problem}; ask the vendor for a new token")]
    Payload {
        /// What is wrong.
        problem: String,
    },
    /// The token is for another plugin than the one it is used for.
    #[error("this license token is for {token_plugin}, not {plugin}")]
    WrongPlugin {
        /// The plugin the token names.
        token_plugin: PluginId,
        /// The plugin it was offered for.
        plugin: PluginId,
    },
    /// The plugin is not in the namespace of the publisher whose record was used.
    #[error("the license token is for {plugin}, which publisher {publisher} does not publish")]
    Namespace {
        /// The plugin.
        plugin: PluginId,
        /// The publisher.
        publisher: String,
    },
    /// The signing key was revoked by the vendor.
    #[error(
        "the license token for {plugin} is signed by key {keyid}…, which {publisher} revoked on {at}{}; ask the vendor for a new token",
        if reason.is_empty() { String::new() } else { format!(" ({reason})") }
    )]
    Revoked {
        /// The plugin.
        plugin: PluginId,
        /// The publisher.
        publisher: String,
        /// The key (short form).
        keyid: String,
        /// When.
        at: String,
        /// Why.
        reason: String,
    },
    /// The signing key is not (or no longer) in the vendor's record.
    #[error(
        "the license token for {plugin} is signed by key {keyid}…, which is not a key of publisher {publisher} (version {version} of its record); ask the vendor for a new token"
    )]
    UnknownKey {
        /// The plugin.
        plugin: PluginId,
        /// The publisher.
        publisher: String,
        /// The record version checked.
        version: u64,
        /// The key (short form).
        keyid: String,
    },
    /// The signature does not verify: forged, or the token was edited.
    #[error(
        "the license token for {plugin} has an invalid signature (forged, or edited after it was signed); paste the token exactly as the vendor sent it"
    )]
    Signature {
        /// The plugin.
        plugin: PluginId,
    },
    /// The license has expired.
    #[error("the license of {plugin} for {licensee} expired on {expired}; renew it with the vendor")]
    Expired {
        /// The plugin.
        plugin: PluginId,
        /// The licensee.
        licensee: String,
        /// When it expired.
        expired: jiff::Timestamp,
    },
}

fn format_error(problem: impl Into<String>) -> LicenseError {
    LicenseError::Format { problem: problem.into() }
}

fn payload_error(problem: impl Into<String>) -> LicenseError {
    LicenseError::Payload { problem: problem.into() }
}

impl LicensePayload {
    /// The problems of this payload against `limits`, as one error (the first found).
    pub fn check(&self, limits: &LicenseLimits) -> Result<(), LicenseError> {
        let licensee = self.licensee.trim();
        if licensee.is_empty() {
            return Err(payload_error("the licensee is empty"));
        }
        if self.licensee.chars().count() > limits.max_licensee_len {
            return Err(payload_error(format!("the licensee is longer than {} characters", limits.max_licensee_len)));
        }
        if self.licensee.chars().any(char::is_control) {
            return Err(payload_error("the licensee holds control characters"));
        }
        if self.seats == 0 || self.seats > limits.max_seats {
            return Err(payload_error(format!(
                "seats is {}; it must be between 1 and {}",
                self.seats, limits.max_seats
            )));
        }
        if self.features.len() > limits.max_features {
            return Err(payload_error(format!(
                "{} features listed, over the limit of {}",
                self.features.len(),
                limits.max_features
            )));
        }
        let mut seen = BTreeSet::new();
        for feature in &self.features {
            let valid = !feature.is_empty()
                && feature.len() <= limits.max_feature_len
                && feature.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid {
                return Err(payload_error(format!(
                    "feature {feature:?} is not 1 to {} lowercase letters, digits, `-` or `_`",
                    limits.max_feature_len
                )));
            }
            if !seen.insert(feature) {
                return Err(payload_error(format!("feature {feature:?} is listed twice")));
            }
        }
        if let Some(order) = &self.order
            && (order.chars().count() > limits.max_order_len || order.chars().any(char::is_control))
        {
            return Err(payload_error(format!(
                "the order reference is longer than {} characters or holds control characters",
                limits.max_order_len
            )));
        }
        if let Some(expires) = self.expires
            && expires <= self.issued
        {
            return Err(payload_error(format!("it expires ({expires}) before it was issued ({})", self.issued)));
        }
        Ok(())
    }

    /// Whether the license has expired at `now`.
    pub fn is_expired(&self, now: jiff::Timestamp) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }
}

fn message(encoded_payload: &str) -> Vec<u8> {
    format!("{TOKEN_PREFIX}.{encoded_payload}").into_bytes()
}

impl LicenseToken {
    /// Signs `payload` with `key` (whose id must be `payload.keyid`).
    pub fn issue(payload: LicensePayload, key: &SigningKey) -> Result<Self, LicenseError> {
        if &payload.keyid != key.key_id() {
            return Err(payload_error(format!(
                "the payload names key {}, but the signing key is {}",
                payload.keyid,
                key.key_id()
            )));
        }
        payload.check(&LicenseLimits::default())?;
        let bytes = crate::canonical::to_vec_of(&payload).map_err(|e| payload_error(e.to_string()))?;
        let encoded_payload = BASE64URL.encode(bytes);
        let signature = key.sign(&message(&encoded_payload));
        let token = Self { payload, encoded_payload, signature };
        let limit = LicenseLimits::default().max_token_len;
        let length = token.to_string().len();
        if length > limit {
            return Err(payload_error(format!("the token would be {length} characters, over the limit of {limit}")));
        }
        Ok(token)
    }

    /// Parses a pasted token (surrounding whitespace is ignored) with the default limits.
    pub fn parse(text: &str) -> Result<Self, LicenseError> {
        Self::parse_with(text, &LicenseLimits::default())
    }

    /// Parses a pasted token under `limits`. Checks the form and the payload, not the
    /// signature ([`LicenseToken::verify`] does).
    pub fn parse_with(text: &str, limits: &LicenseLimits) -> Result<Self, LicenseError> {
        let text = text.trim();
        if text.len() > limits.max_token_len {
            return Err(format_error(format!(
                "it is {} characters long, over the limit of {}",
                text.len(),
                limits.max_token_len
            )));
        }
        let mut parts = text.split('.');
        let (Some(prefix), Some(encoded_payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format_error("it does not have three parts separated by `.`"));
        };
        if prefix != TOKEN_PREFIX {
            let shown: String = prefix.chars().take(32).collect();
            return Err(format_error(format!("it starts with {shown:?}, not {TOKEN_PREFIX:?}")));
        }
        let payload_bytes = BASE64URL
            .decode(encoded_payload)
            .map_err(|e| format_error(format!("the payload is not base64url: {e}")))?;
        let signature =
            BASE64URL.decode(signature).map_err(|e| format_error(format!("the signature is not base64url: {e}")))?;
        if signature.len() != 64 {
            return Err(format_error(format!(
                "the signature is {} bytes, an Ed25519 signature is 64",
                signature.len()
            )));
        }
        let payload: LicensePayload =
            crate::json::from_slice(&payload_bytes).map_err(|e| payload_error(e.to_string()))?;
        let canonical = crate::canonical::to_vec_of(&payload).map_err(|e| payload_error(e.to_string()))?;
        if canonical != payload_bytes {
            return Err(payload_error("the payload is not in canonical JSON form"));
        }
        payload.check(limits)?;
        Ok(Self { payload, encoded_payload: encoded_payload.to_owned(), signature })
    }

    /// What the token says (not yet verified: see [`LicenseToken::verify`]).
    pub fn payload(&self) -> &LicensePayload {
        &self.payload
    }

    /// Verifies the signature under `record` (the vendor's record as the client has
    /// pinned it) and that the license has not expired at `now`. See the module docs.
    pub fn verify(&self, record: &PublisherRecord, now: jiff::Timestamp) -> Result<&LicensePayload, LicenseError> {
        self.verify_signature(record)?;
        if self.payload.is_expired(now) {
            return Err(LicenseError::Expired {
                plugin: self.payload.plugin.clone(),
                licensee: self.payload.licensee.clone(),
                expired: self.payload.expires.unwrap_or(now),
            });
        }
        Ok(&self.payload)
    }

    /// Verifies the signature under `record`, whatever the time (a license shown as
    /// expired is still the vendor's).
    pub fn verify_signature(&self, record: &PublisherRecord) -> Result<&LicensePayload, LicenseError> {
        let plugin = &self.payload.plugin;
        if !plugin.belongs_to(&record.id) {
            return Err(LicenseError::Namespace { plugin: plugin.clone(), publisher: record.id.to_string() });
        }
        let keyid = &self.payload.keyid;
        let key: Option<&PublicKey> = record.license_keys.get(keyid).or_else(|| record.keys.get(keyid));
        let material = key.and_then(crate::publisher::chain::key_material);
        let revoked = record.revoked_materials();
        let revocation = record.revocation(keyid).or_else(|| material.as_ref().and_then(|m| revoked.get(m).copied()));
        if let Some(revocation) = revocation {
            return Err(LicenseError::Revoked {
                plugin: plugin.clone(),
                publisher: record.id.to_string(),
                keyid: keyid.short().to_owned(),
                at: revocation.revoked_at.clone(),
                reason: revocation.reason.clone(),
            });
        }
        let Some(key) = key.filter(|key| crate::publisher::chain::id_is_bound(keyid, key)) else {
            return Err(LicenseError::UnknownKey {
                plugin: plugin.clone(),
                publisher: record.id.to_string(),
                version: record.version,
                keyid: keyid.short().to_owned(),
            });
        };
        key.verify(&message(&self.encoded_payload), &self.signature)
            .map_err(|_| LicenseError::Signature { plugin: plugin.clone() })?;
        Ok(&self.payload)
    }
}

impl std::fmt::Display for LicenseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{TOKEN_PREFIX}.{}.{}", self.encoded_payload, BASE64URL.encode(&self.signature))
    }
}

impl std::str::FromStr for LicenseToken {
    type Err = LicenseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::publisher::RevokedKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    fn record(release: &SigningKey, license: &SigningKey) -> PublisherRecord {
        PublisherRecord {
            id: "acme".parse().unwrap(),
            version: 2,
            name: "Acme".into(),
            website: None,
            contact: None,
            keys: BTreeMap::from([(release.key_id().clone(), release.public().clone())]),
            threshold: 1,
            revoked: vec![],
            license_keys: BTreeMap::from([(license.key_id().clone(), license.public().clone())]),
        }
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn payload(signer: &SigningKey) -> LicensePayload {
        LicensePayload {
            plugin: "acme.clock".parse().unwrap(),
            licensee: "Ada Lovelace <ada@example.com>".into(),
            issued: at("2026-12-01T00:00:00Z"),
            expires: Some(at("2027-12-01T00:00:00Z")),
            seats: 3,
            features: vec!["pro".into(), "export".into()],
            keyid: signer.key_id().clone(),
            order: Some("cs_test_123".into()),
        }
    }

    #[test]
    fn an_issued_token_round_trips_and_verifies_until_it_expires() {
        let (release, license) = (key(1), key(2));
        let token = LicenseToken::issue(payload(&license), &license).unwrap();
        let text = token.to_string();
        assert!(text.starts_with("trellis-license-v1.") && !text.contains(['\n', ' ', '=', '+', '/']), "{text}");
        let parsed = LicenseToken::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(parsed, token);
        let record = record(&release, &license);
        assert_eq!(parsed.verify(&record, at("2027-01-01T00:00:00Z")).unwrap().seats, 3);
        let err = parsed.verify(&record, at("2027-12-01T00:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("expired on 2027-12-01T00:00:00Z; renew it"), "{err}");
        // A release key of the record may sign tokens too.
        let by_release = LicenseToken::issue(payload(&release), &release).unwrap();
        assert!(by_release.verify(&record, at("2027-01-01T00:00:00Z")).is_ok());
    }

    #[test]
    fn edited_forged_and_foreign_tokens_are_refused() {
        let (release, license) = (key(1), key(2));
        let record = record(&release, &license);
        let now = at("2027-01-01T00:00:00Z");
        let token = LicenseToken::issue(payload(&license), &license).unwrap().to_string();
        // Edited after signing: seats 3 → 300, re-encoded canonically.
        let parts: Vec<&str> = token.split('.').collect();
        let mut edited = payload(&license);
        edited.seats = 300;
        let edited_payload = BASE64URL.encode(crate::canonical::to_vec_of(&edited).unwrap());
        let edited = format!("{}.{edited_payload}.{}", parts[0], parts[2]);
        let err = LicenseToken::parse(&edited).unwrap().verify(&record, now).unwrap_err();
        assert!(matches!(err, LicenseError::Signature { .. }), "{err}");
        assert!(err.to_string().contains("forged, or edited after it was signed"), "{err}");
        // Forged: signed by a key that claims the license key's id.
        let forger = key(9);
        let forged_sig = BASE64URL.encode(forger.sign(&message(parts[1])));
        let forged = format!("{}.{}.{forged_sig}", parts[0], parts[1]);
        assert!(matches!(
            LicenseToken::parse(&forged).unwrap().verify(&record, now),
            Err(LicenseError::Signature { .. })
        ));
        // Signed by a key the vendor does not list.
        let stranger = LicenseToken::issue(payload(&forger), &forger).unwrap();
        let err = stranger.verify(&record, now).unwrap_err();
        assert!(err.to_string().contains("which is not a key of publisher acme (version 2"), "{err}");
        // Another vendor's record.
        let mut other = record.clone();
        other.id = "globex".parse().unwrap();
        let err = LicenseToken::parse(&token).unwrap().verify(&other, now).unwrap_err();
        assert!(matches!(err, LicenseError::Namespace { .. }), "{err}");
    }

    #[test]
    fn a_revoked_or_removed_key_invalidates_its_tokens() {
        let (release, license) = (key(1), key(2));
        let token = LicenseToken::issue(payload(&license), &license).unwrap();
        let now = at("2027-01-01T00:00:00Z");
        let mut revoked = record(&release, &license);
        let key = revoked.license_keys.remove(license.key_id()).unwrap();
        revoked.version = 3;
        revoked.revoked.push(RevokedKey {
            keyid: license.key_id().clone(),
            revoked_at: "2026-12-24".into(),
            reason: "webhook secret leaked".into(),
            key: Some(key),
        });
        let err = token.verify(&revoked, now).unwrap_err();
        assert!(err.to_string().contains("which acme revoked on 2026-12-24 (webhook secret leaked)"), "{err}");
        let mut removed = record(&release, &license);
        removed.license_keys.clear();
        assert!(matches!(token.verify(&removed, now), Err(LicenseError::UnknownKey { .. })));
    }

    #[test]
    fn garbage_is_refused_with_what_is_wrong() {
        let license = key(2);
        let good = LicenseToken::issue(payload(&license), &license).unwrap().to_string();
        let parts: Vec<&str> = good.split('.').collect();
        let long = "a".repeat(5000);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "three parts"),
            ("hello".into(), "three parts"),
            (format!("{good}.extra"), "three parts"),
            (good.replacen("trellis-license-v1", "jwt", 1), "starts with \"jwt\""),
            (format!("{}.{}!.{}", parts[0], parts[1], parts[2]), "payload is not base64url"),
            (format!("{}.{}.AAAA", parts[0], parts[1]), "signature is 3 bytes"),
            (format!("{}.{}.{}", parts[0], BASE64URL.encode("[1]"), parts[2]), "payload is invalid"),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    BASE64URL.encode(r#"{"plugin":"acme.clock","plugin":"acme.x"}"#),
                    parts[2]
                ),
                "duplicate member",
            ),
            (long, "over the limit of 4096"),
        ];
        for (text, expected) in cases {
            let err = LicenseToken::parse(&text).unwrap_err();
            assert!(err.to_string().contains(expected), "{text:?}: {err}");
        }
        // Not canonical (pretty-printed) and unknown fields.
        let mut value = serde_json::to_value(payload(&license)).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let err = LicenseToken::parse(&format!("{}.{}.{}", parts[0], BASE64URL.encode(pretty), parts[2])).unwrap_err();
        assert!(err.to_string().contains("not in canonical JSON form"), "{err}");
        value["admin"] = true.into();
        let extra = crate::canonical::to_vec(&value).unwrap();
        let err = LicenseToken::parse(&format!("{}.{}.{}", parts[0], BASE64URL.encode(extra), parts[2])).unwrap_err();
        assert!(err.to_string().contains("unknown field `admin`"), "{err}");
    }

    #[test]
    fn payload_bounds_hold() {
        let license = key(2);
        let mut bad = payload(&license);
        bad.seats = 0;
        assert!(LicenseToken::issue(bad, &license).unwrap_err().to_string().contains("seats is 0"));
        let mut bad = payload(&license);
        bad.features = vec!["Pro Features".into()];
        assert!(LicenseToken::issue(bad, &license).unwrap_err().to_string().contains("feature \"Pro Features\""));
        let mut bad = payload(&license);
        bad.expires = Some(at("2020-01-01T00:00:00Z"));
        assert!(LicenseToken::issue(bad, &license).unwrap_err().to_string().contains("before it was issued"));
        let mut bad = payload(&license);
        bad.licensee = "x".repeat(300);
        assert!(LicenseToken::issue(bad, &license).unwrap_err().to_string().contains("longer than 256"));
        assert!(LicenseToken::issue(payload(&license), &key(3)).unwrap_err().to_string().contains("names key"));
    }
}
