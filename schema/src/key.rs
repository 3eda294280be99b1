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
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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

/// The family of a public key, as far as key identity goes (the schemes of one RSA
/// key are still one key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlgorithm {
    /// Ed25519.
    Ed25519,
    /// ECDSA over P-256.
    EcdsaP256,
    /// RSA.
    Rsa,
}

/// Decoded public key material ([`PublicKey::material`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyMaterial {
    /// The key family.
    pub algorithm: KeyAlgorithm,
    /// The signature scheme the key object names.
    pub scheme: String,
    /// The decoded key bytes (see [`PublicKey::material`]).
    pub bytes: Vec<u8>,
}

impl KeyMaterial {
    /// What counts toward a threshold: family and bytes, not the scheme (one RSA key
    /// listed for two schemes is still one signer).
    pub fn identity(&self) -> (KeyAlgorithm, &[u8]) {
        (self.algorithm, &self.bytes)
    }
}

/// The DER bytes inside a PEM block (header and footer lines dropped, whitespace
/// ignored); `None` when it is not one base64 block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let mut lines = pem.lines().map(str::trim).filter(|line| !line.is_empty());
    if !lines.next()?.starts_with("-----BEGIN ") {
        return None;
    }
    let mut body = String::new();
    for line in lines {
        if line.starts_with("-----END ") {
            return base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).ok();
        }
        body.push_str(line);
    }
    None
}

#[cfg(feature = "ecdsa")]
fn normalise_ecdsa(der: Vec<u8>) -> Vec<u8> {
    use p256::pkcs8::DecodePublicKey as _;
    match p256::ecdsa::VerifyingKey::from_public_key_der(&der) {
        Ok(key) => key.to_encoded_point(false).as_bytes().to_vec(),
        Err(_) => der,
    }
}

#[cfg(not(feature = "ecdsa"))]
fn normalise_ecdsa(der: Vec<u8>) -> Vec<u8> {
    der
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

    /// The decoded key material: what makes two key objects the same key, whatever
    /// their key ids, hex case, PEM line breaks or unknown fields. Thresholds count
    /// distinct [`KeyMaterial::identity`] values, never key ids or strings.
    ///
    /// Ed25519: the 32 bytes of `keyval.public` (hex in either case). ECDSA and RSA: the
    /// DER bytes of the PEM `SubjectPublicKeyInfo` (with the `ecdsa` feature, an ECDSA
    /// key is reduced to its uncompressed point, so compressed and uncompressed
    /// encodings of one key are one key).
    pub fn material(&self) -> Result<KeyMaterial, SignatureError> {
        let malformed =
            |reason: &str| SignatureError::MalformedKey { keytype: self.keytype.clone(), reason: reason.into() };
        let public = self.public_str().ok_or_else(|| malformed("keyval.public is missing"))?;
        let (algorithm, bytes) = match self.keytype.as_str() {
            "ed25519" => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(public, &mut bytes)
                    .map_err(|_| malformed("keyval.public is not 64 hex digits"))?;
                (KeyAlgorithm::Ed25519, bytes.to_vec())
            }
            "ecdsa" | "ecdsa-sha2-nistp256" => {
                let der = pem_body(public).ok_or_else(|| malformed("keyval.public is not a PEM public key"))?;
                (KeyAlgorithm::EcdsaP256, normalise_ecdsa(der))
            }
            "rsa" => {
                let der = pem_body(public).ok_or_else(|| malformed("keyval.public is not a PEM public key"))?;
                (KeyAlgorithm::Rsa, der)
            }
            _ => {
                return Err(SignatureError::UnsupportedScheme {
                    keytype: self.keytype.clone(),
                    scheme: self.scheme.clone(),
                });
            }
        };
        Ok(KeyMaterial { algorithm, scheme: self.scheme.clone(), bytes })
    }

    /// Checks that `signature` is a signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", "ed25519") => self.verify_ed25519(message, signature),
            #[cfg(feature = "ecdsa")]
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => self.verify_ecdsa_p256(message, signature),
            #[cfg(feature = "rsa")]
            ("rsa", "rsassa-pss-sha256" | "rsa-pkcs1v15-sha256") => self.verify_rsa(message, signature),
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

    /// ECDSA over P-256 with SHA-256: `keyval.public` is a PEM SubjectPublicKeyInfo,
    /// the signature is DER (what securesystemslib and sigstore write).
    #[cfg(feature = "ecdsa")]
    fn verify_ecdsa_p256(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        use p256::ecdsa::signature::Verifier as _;
        use p256::pkcs8::DecodePublicKey as _;
        let malformed = |reason: String| SignatureError::MalformedKey { keytype: self.keytype.clone(), reason };
        let public = self.public_str().ok_or_else(|| malformed("keyval.public is missing".into()))?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public)
            .map_err(|e| malformed(format!("not a PEM P-256 public key: {e}")))?;
        let signature = p256::ecdsa::DerSignature::from_bytes(signature)
            .map_err(|_| SignatureError::MalformedSignature("not a DER-encoded ECDSA signature".into()))?;
        key.verify(message, &signature).map_err(|_| SignatureError::Mismatch)
    }

    /// RSA with SHA-256, PSS (salt length = digest length, as securesystemslib signs)
    /// or PKCS#1 v1.5. `keyval.public` is a PEM SubjectPublicKeyInfo. Verification only.
    #[cfg(feature = "rsa")]
    fn verify_rsa(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::signature::Verifier as _;
        let malformed = |reason: String| SignatureError::MalformedKey { keytype: "rsa".into(), reason };
        let public = self.public_str().ok_or_else(|| malformed("keyval.public is missing".into()))?;
        let key = rsa::RsaPublicKey::from_public_key_pem(public)
            .map_err(|e| malformed(format!("not a PEM RSA public key: {e}")))?;
        let empty = |_| SignatureError::MalformedSignature("empty RSA signature".into());
        let result = if self.scheme == "rsassa-pss-sha256" {
            let signature = rsa::pss::Signature::try_from(signature).map_err(empty)?;
            rsa::pss::VerifyingKey::<sha2::Sha256>::new(key).verify(message, &signature)
        } else {
            let signature = rsa::pkcs1v15::Signature::try_from(signature).map_err(empty)?;
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(message, &signature)
        };
        result.map_err(|_| SignatureError::Mismatch)
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
    fn material_is_the_same_for_either_hex_case_and_differs_between_keys() {
        let key = SigningKey::from_seed([6; 32]);
        let mut upper = key.public().clone();
        upper.keyval.insert("public".into(), Value::String(key.public().public_str().unwrap().to_uppercase()));
        upper.extra.insert("x-note".into(), Value::from(1));
        assert_ne!(KeyId::of(&upper).unwrap(), *key.key_id());
        assert_eq!(upper.material().unwrap().identity(), key.public().material().unwrap().identity());
        let other = SigningKey::from_seed([7; 32]);
        assert_ne!(other.public().material().unwrap(), key.public().material().unwrap());
        let mut short = key.public().clone();
        short.keyval.insert("public".into(), Value::String("abcd".into()));
        assert!(matches!(short.material(), Err(SignatureError::MalformedKey { .. })));
    }

    #[test]
    fn pem_material_ignores_line_breaks() {
        let one = "-----BEGIN PUBLIC KEY-----\nAAECAwQF\nBgc=\n-----END PUBLIC KEY-----\n";
        let two = "-----BEGIN PUBLIC KEY-----\r\nAAECAwQFBgc=\r\n-----END PUBLIC KEY-----";
        assert_eq!(pem_body(one).unwrap(), vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(pem_body(one), pem_body(two));
        assert!(pem_body("AAEC").is_none() && pem_body("-----BEGIN X-----\nAA").is_none());
    }

    #[test]
    fn unknown_scheme_never_verifies() {
        let mut public = SigningKey::from_seed([5; 32]).public().clone();
        public.scheme = "ed448".into();
        assert!(matches!(public.verify(b"x", &[0; 64]), Err(SignatureError::UnsupportedScheme { .. })));
    }

    #[cfg(any(feature = "ecdsa", feature = "rsa"))]
    fn pem_key(keytype: &str, scheme: &str, pem: &str) -> PublicKey {
        let mut keyval = Map::new();
        keyval.insert("public".into(), Value::String(pem.into()));
        PublicKey { keytype: keytype.into(), scheme: scheme.into(), keyval, extra: Map::new() }
    }

    /// Signed with python `cryptography` (what the TUF conformance suite uses).
    #[cfg(feature = "ecdsa")]
    #[test]
    fn verifies_ecdsa_p256_der_signatures_from_securesystemslib() {
        const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEV5xTc1ARF0Na+Dz54jq7RV03+tq6\nu6lqhOde3hNdp5hODPbQy8ZMUqOYzGQgreyl8bYeAaC5Zf5L4QKsqNb0bw==\n-----END PUBLIC KEY-----\n";
        const SIG: &str = "3045022100bce535c57ab6b6040f294ead3caa12cf2d0cf59047754ca59e5f02e1dcfe45ba02201a95d4347b41035f26e7c3c4f1496f85d00a082d01db741c214cb2a84a5b0e3d";
        let sig = hex::decode(SIG).unwrap();
        for keytype in ["ecdsa", "ecdsa-sha2-nistp256"] {
            let key = pem_key(keytype, "ecdsa-sha2-nistp256", PEM);
            key.verify(b"trellis test message", &sig).unwrap();
            assert_eq!(key.verify(b"trellis test messagE", &sig), Err(SignatureError::Mismatch));
            assert!(matches!(key.verify(b"x", &sig[..10]), Err(SignatureError::MalformedSignature(_))));
        }
        let garbage =
            pem_key("ecdsa", "ecdsa-sha2-nistp256", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        assert!(matches!(garbage.verify(b"x", &sig), Err(SignatureError::MalformedKey { .. })));
    }

    #[cfg(feature = "rsa")]
    #[test]
    fn verifies_rsa_pss_and_pkcs1v15_signatures_and_keeps_schemes_apart() {
        const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoOwpDuqqrzIOm9TsLYM/\nHtxAhBUIySIWIqZqrLVn0dGC7Q5wyndRceGrSu2OnqvScKWM0/gq/TN79mrcGQLM\nBzJBwtNCf198zUn8Q/7Vu52l/dIn9RHFuqR7a3iIKDYM5Aru/HMNUHAP+DY/plLP\nrjh4cpe1LD52m8iRRmDRvjo8+yF7UaDYnzyFtpG1Mev/1VATf51Zaz2/8XRJ8LNA\nOYdpOLwAdx9She5lvH/6GVvIW5lNN1GmBZTxyfmNEm8WBfwMrcudUuHh05PMXRkF\nzZAMSdlh1oUbQv/ntAsOop+hJ2aUz79uigdFc1GFRpig3PPu1yx2/B4NV9IIpQSf\newIDAQAB\n-----END PUBLIC KEY-----\n";
        const PSS: &str = "950315a36f587781c47eed4a5d3cb7482b1210b1054a400648977aade729357b5799f0d75729696dba02004f7d895877d2c9f0b3e0aa16b994629e4d731847119fb9ddc5165dbeb277f8b3bc962ec304d06ad9fabc8a0f8d663469971b05a52642edc31fc14dcc09100d0afa7dd280bfd15be7fa99432ded2c4d974081835064c7c88452d696ec1af3a2f69c98b17446ee9e134bbd01b2f328446f07007c289f2f9f848470c63372fe28509f8b441e0966f98ccf47fd5a6e47ad478916a4badb7f83984dadea4482e7b56119fc66f8044d80ec5eb038cb52ab8266ce020aefef9336d59582c32d1db0e59ba11602bc8a5850c400be795b01d7e7d0ee99fb38f9";
        const PKCS1: &str = "22329030a3a41139ea4863e855e07dbbf5380c1476ecc38c61267dcc7f175e171e9474b45c975c15e3133906e7a45ea9fdbd4699b962860e6eafb548be85af84ac26b62cb08eabfd306d1f71ca71346fe8b65bf8c33d21f41b9b8dab751dcccc15ab5cb23b501333392800fad7dff0f6f1983d772f437f65e818d3afff8ec1548eb64f9553d811f6f88c10777e9f0bed4386e45a25c7d24df9828e73f0e5af19b70d43f6a759f73537289f5219be5c07c2387726fb3e6ac20e553694f802502061d3c174cc16bd9a2aaab7a3a947201dd60d0978311693874efc2d9953a0cab8dee5153f5278b837c8589618acf0203ba049c43e8a9187bcd91b7cb10580245f";
        let msg = b"trellis test message";
        let pss_key = pem_key("rsa", "rsassa-pss-sha256", PEM);
        let pkcs_key = pem_key("rsa", "rsa-pkcs1v15-sha256", PEM);
        let pss = hex::decode(PSS).unwrap();
        let pkcs1 = hex::decode(PKCS1).unwrap();
        pss_key.verify(msg, &pss).unwrap();
        pkcs_key.verify(msg, &pkcs1).unwrap();
        assert_eq!(pss_key.verify(msg, &pkcs1), Err(SignatureError::Mismatch));
        assert_eq!(pkcs_key.verify(msg, &pss), Err(SignatureError::Mismatch));
        assert_eq!(pss_key.verify(b"other", &pss), Err(SignatureError::Mismatch));
    }
}
