//! Keys, key ids and signature verification, in TUF's key format.
//!
//! A public key is the TUF object `{"keytype", "scheme", "keyval": {"public"}}`; its
//! key id is the SHA-256 of that object's canonical JSON. Trellis signs everything with
//! Ed25519. Verification also accepts the other schemes found in TUF repositories
//! (ECDSA P-256 behind the `ecdsa` feature, RSA behind `rsa`), so that any conforming
//! repository can be read. A key whose type or scheme is unknown never verifies
//! anything: callers treat it as absent when counting a threshold.

use std::fmt;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical;
use crate::digest::Sha256;

/// A key id: in TUF the hex SHA-256 of the key's canonical JSON. Key ids read from
/// metadata are taken as given (they name keys; they are not re-derived).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl KeyId {
    /// The key id of `key`: SHA-256 of its canonical JSON.
    pub fn of(key: &PublicKey) -> Result<Self, canonical::CanonicalError> {
        let bytes = canonical::to_vec_of(key)?;
        Ok(Self(Sha256::of(&bytes).to_hex()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 characters, for messages.
    pub fn short(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

/// A public key in TUF's format. Unknown fields are kept so the key id and the
/// signatures over documents that contain it stay intact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublicKey {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256`, `rsa`.
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256`, `rsa-pkcs1v15-sha256`.
    pub scheme: String,
    /// Key material; `public` holds the public key (hex for Ed25519, PEM otherwise).
    pub keyval: Map<String, Value>,
    /// Fields this version does not know about.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The key type / scheme pair is not one this build verifies.
    #[error("unsupported key type {keytype:?} with scheme {scheme:?}")]
    UnsupportedScheme {
        /// Key type.
        keytype: String,
        /// Signature scheme.
        scheme: String,
    },
    /// The key material does not parse.
    #[error("malformed {keytype} public key: {reason}")]
    MalformedKey {
        /// Key type.
        keytype: String,
        /// What is wrong.
        reason: String,
    },
    /// The signature bytes do not parse.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// Well-formed, but not a signature of this message by this key.
    #[error("signature does not match the message")]
    Mismatch,
}

impl PublicKey {
    /// An Ed25519 public key.
    pub fn ed25519(key: &ed25519_dalek::VerifyingKey) -> Self {
        let mut keyval = Map::new();
        keyval.insert("public".into(), Value::String(hex::encode(key.as_bytes())));
        Self { keytype: "ed25519".into(), scheme: "ed25519".into(), keyval, extra: Map::new() }
    }

    /// The `keyval.public` string, if present.
    pub fn public_str(&self) -> Option<&str> {
        self.keyval.get("public").and_then(Value::as_str)
    }

    /// Checks that `signature` is a signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", "ed25519") => self.verify_ed25519(message, signature),
            _ => Err(SignatureError::UnsupportedScheme { keytype: self.keytype.clone(), scheme: self.scheme.clone() }),
        }
    }

    fn verify_ed25519(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let malformed =
            |reason: &str| SignatureError::MalformedKey { keytype: "ed25519".into(), reason: reason.into() };
        let public = self.public_str().ok_or_else(|| malformed("keyval.public is missing"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(public, &mut bytes).map_err(|_| malformed("keyval.public is not 64 hex digits"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| malformed("not a curve point"))?;
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| SignatureError::MalformedSignature("an ed25519 signature is 64 bytes".into()))?;
        key.verify_strict(message, &signature).map_err(|_| SignatureError::Mismatch)
    }
}

/// An Ed25519 private key: what `trellis-index keygen` writes and `sign` reads.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: PublicKey,
    key_id: KeyId,
}

/// The on-disk form of a [`SigningKey`].
#[derive(Serialize, Deserialize)]
struct SigningKeyFile {
    keytype: String,
    scheme: String,
    keyid: KeyId,
    keyval: SigningKeyVal,
}

#[derive(Serialize, Deserialize)]
struct SigningKeyVal {
    public: String,
    private: String,
}

/// A key file that does not hold a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Not JSON of the expected shape.
    #[error("not a Trellis key file: {0}")]
    Format(String),
    /// Not an Ed25519 key.
    #[error("key type {0:?} cannot sign; Trellis signs with ed25519 keys")]
    KeyType(String),
    /// The private key is not 32 bytes of hex.
    #[error("private key is not 64 hex digits")]
    Private,
    /// The public key stored beside the private one does not match it.
    #[error("public key in the file does not belong to its private key (file edited?)")]
    PublicMismatch,
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from its 32 secret bytes (for tests and deterministic fixtures).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    fn from_dalek(inner: ed25519_dalek::SigningKey) -> Self {
        let public = PublicKey::ed25519(&inner.verifying_key());
        #[allow(clippy::expect_used)]
        let key_id = KeyId::of(&public).expect("an ed25519 key object is canonicalisable");
        Self { inner, public, key_id }
    }

    /// The public half in TUF's format.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Signs `message`; 64 bytes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.inner.sign(message).to_bytes().to_vec()
    }

    /// The key file's JSON text. It contains the secret key.
    pub fn to_file_json(&self) -> String {
        let file = SigningKeyFile {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyid: self.key_id.clone(),
            keyval: SigningKeyVal {
                public: hex::encode(self.inner.verifying_key().as_bytes()),
                private: hex::encode(self.inner.to_bytes()),
            },
        };
        #[allow(clippy::expect_used)]
        let mut text = serde_json::to_string_pretty(&file).expect("plain struct serialises");
        text.push('\n');
        text
    }

    /// Reads a key file's JSON text.
    pub fn from_file_json(text: &str) -> Result<Self, KeyFileError> {
        let file: SigningKeyFile = serde_json::from_str(text).map_err(|e| KeyFileError::Format(e.to_string()))?;
        if file.keytype != "ed25519" || file.scheme != "ed25519" {
            return Err(KeyFileError::KeyType(file.keytype));
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&file.keyval.private, &mut seed).map_err(|_| KeyFileError::Private)?;
        let key = Self::from_seed(seed);
        if key.public.public_str() != Some(file.keyval.public.as_str()) {
            return Err(KeyFileError::PublicMismatch);
        }
        Ok(key)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_other_messages() {
        let key = SigningKey::from_seed([7; 32]);
        let sig = key.sign(b"hello");
        key.public().verify(b"hello", &sig).unwrap();
        assert_eq!(key.public().verify(b"hellp", &sig), Err(SignatureError::Mismatch));
        assert!(matches!(key.public().verify(b"hello", &sig[..63]), Err(SignatureError::MalformedSignature(_))));
    }

    #[test]
    fn key_id_is_sha256_of_canonical_key() {
        let key = SigningKey::from_seed([1; 32]);
        let canonical = format!(
            r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
            key.public().public_str().unwrap()
        );
        assert_eq!(key.key_id().as_str(), Sha256::of(canonical.as_bytes()).to_hex());
    }

    #[test]
    fn key_file_round_trips_and_detects_tampering() {
        let key = SigningKey::from_seed([3; 32]);
        let text = key.to_file_json();
        let back = SigningKey::from_file_json(&text).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        let other = SigningKey::from_seed([4; 32]);
        let tampered = text.replace(key.public().public_str().unwrap(), other.public().public_str().unwrap());
        assert_eq!(SigningKey::from_file_json(&tampered).unwrap_err(), KeyFileError::PublicMismatch);
    }

    #[test]
    fn unknown_scheme_never_verifies() {
        let mut public = SigningKey::from_seed([5; 32]).public().clone();
        public.scheme = "ed448".into();
        assert!(matches!(public.verify(b"x", &[0; 64]), Err(SignatureError::UnsupportedScheme { .. })));
    }
}
