//! DSSE envelopes (Dead Simple Signing Envelope, v1): developer signatures.
//!
//! The signature covers `PAE(payloadType, payload)`, never the JSON around it, so the
//! envelope can be re-serialised freely. Counting signatures against a threshold and
//! checking revocation is [`crate::publisher`]'s job. Envelopes and their payloads are
//! read with the strict parser, [`crate::json::from_slice`], which refuses a member
//! named twice.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::key::{KeyId, SigningKey};

/// Payload type of a Trellis release manifest.
pub const RELEASE_PAYLOAD_TYPE: &str = "application/vnd.trellis.release+json";

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// What the payload is.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures over `PAE(payloadType, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct EnvelopeSignature {
    /// Key id of the signer.
    pub keyid: KeyId,
    /// Signature, base64.
    pub sig: String,
}

/// An envelope whose fields do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// `payload` is not base64.
    #[error("DSSE payload is not valid base64")]
    Payload,
    /// A signature is not base64.
    #[error("DSSE signature by key {0} is not valid base64")]
    Signature(KeyId),
}

/// The DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` with each of `keys`.
    pub fn sign(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Self {
        let message = pae(payload_type, payload);
        let signatures = keys
            .iter()
            .map(|key| EnvelopeSignature { keyid: key.key_id().clone(), sig: BASE64.encode(key.sign(&message)) })
            .collect();
        Self { payload: BASE64.encode(payload), payload_type: payload_type.to_owned(), signatures }
    }

    /// Adds a signature by `key` (a co-signer, for thresholds above one).
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), EnvelopeError> {
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        self.signatures.retain(|s| &s.keyid != key.key_id());
        self.signatures.push(EnvelopeSignature { keyid: key.key_id().clone(), sig: BASE64.encode(key.sign(&message)) });
        Ok(())
    }

    /// The decoded payload.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        BASE64.decode(&self.payload).map_err(|_| EnvelopeError::Payload)
    }

    /// The message each signature must cover.
    pub fn signed_message(&self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// Decoded signature bytes of one entry.
    pub fn signature_bytes(signature: &EnvelopeSignature) -> Result<Vec<u8>, EnvelopeError> {
        BASE64.decode(&signature.sig).map_err(|_| EnvelopeError::Signature(signature.keyid.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE specification (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn an_envelope_naming_its_payload_twice_is_refused_by_the_strict_parser() {
        let text = br#"{"payload":"e30=","payloadType":"x","payload":"W10=","signatures":[]}"#;
        let err = crate::json::from_slice::<Envelope>(text).unwrap_err();
        assert!(err.to_string().starts_with(r#"duplicate member "payload" in $"#), "{err}");
    }

    #[test]
    fn signatures_cover_type_and_payload() {
        let key = SigningKey::from_seed([2; 32]);
        let env = Envelope::sign(RELEASE_PAYLOAD_TYPE, b"{}", &[&key]);
        let sig = Envelope::signature_bytes(&env.signatures[0]).unwrap();
        key.public().verify(&env.signed_message().unwrap(), &sig).unwrap();
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(key.public().verify(&retyped.signed_message().unwrap(), &sig).is_err());
    }
}
