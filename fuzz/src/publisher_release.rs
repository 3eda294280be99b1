//! Publisher records, DSSE envelopes and `PublisherRecord::verify_release`.
//!
//! The first byte chooses what is fuzzed (its value modulo 4):
//!
//! | mode | record | envelope |
//! |---|---|---|
//! | 0 | the rest, as JSON | genuine (1.1.0, signed by both publisher keys) |
//! | 1 | genuine | the rest, as JSON |
//! | 2 | genuine | the rest as the payload, signed by the harness with a genuine key |
//! | 3 | the rest up to the first NUL | the rest after it |
//! | 4 | the rest, as JSON | 1.1.0 signed by the harness with both publisher keys, each under every id the record lists its key material under |
//!
//! Properties: nothing panics; an envelope that parses round-trips through serde, and
//! its PAE is `DSSEv1 <len> <type> <len> <payload>`; `Envelope::sign` of any payload
//! decodes back to it; an accepted release was signed, over the PAE of its payload, by
//! at least `max(threshold, 1)` distinct keys of the record (by decoded key material,
//! so one key under two ids counts once), none of them revoked (by id, nor by
//! material under another id); its plugin is in the record's namespace; the manifest
//! returned is the payload's.

use std::collections::HashSet;

use trellis_schema::dsse::{self, Envelope, EnvelopeSignature, RELEASE_PAYLOAD_TYPE};
use trellis_schema::key::KeyId;
use trellis_schema::manifest::ReleaseManifest;
use trellis_schema::publisher::PublisherRecord;

use crate::fixture::{self, seed};

/// The target body.
pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let genuine_envelope = || {
        let payload = fixture::manifest_payload(&fixture::target_manifest());
        fixture::envelope_bytes(&payload, &[&fixture::key(seed::PUBLISHER), &fixture::key(seed::PUBLISHER_2)])
    };
    let genuine_record = || serde_json::to_vec(&fixture::publisher_record_json()).unwrap_or_default();
    let (record, envelope) = match first % 5 {
        0 => (rest.to_vec(), genuine_envelope()),
        1 => (genuine_record(), rest.to_vec()),
        2 => (genuine_record(), fixture::envelope_bytes(rest, &[&fixture::key(seed::PUBLISHER)])),
        3 => match rest.iter().position(|b| *b == 0) {
            Some(at) => (rest[..at].to_vec(), rest[at + 1..].to_vec()),
            None => return,
        },
        _ => (rest.to_vec(), signed_as_listed(rest)),
    };
    check(&record, &envelope);
}

/// The genuine 1.1.0 payload signed by each publisher key under every id `record`
/// lists its material under (hex compared without regard to case), so a key listed
/// twice, or revoked under one id and listed under another, can be tried.
fn signed_as_listed(record: &[u8]) -> Vec<u8> {
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(record) else { return Vec::new() };
    let Some(keys) = record.get("keys").and_then(serde_json::Value::as_object) else { return Vec::new() };
    let payload = fixture::manifest_payload(&fixture::target_manifest());
    let mut envelope = Envelope::sign(RELEASE_PAYLOAD_TYPE, &payload, &[]);
    let message = dsse::pae(RELEASE_PAYLOAD_TYPE, &payload);
    for key in [fixture::key(seed::PUBLISHER), fixture::key(seed::PUBLISHER_2)] {
        let own = key.public().public_str().unwrap_or_default().to_ascii_lowercase();
        let sig = base64_encode(&key.sign(&message));
        for (id, listed) in keys {
            let public = listed.pointer("/keyval/public").and_then(serde_json::Value::as_str).unwrap_or_default();
            if public.to_ascii_lowercase() == own {
                envelope.signatures.push(EnvelopeSignature { keyid: KeyId(id.clone()), sig: sig.clone() });
            }
        }
    }
    serde_json::to_vec(&envelope).unwrap_or_default()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Verifies `envelope` under `record` and checks the properties.
pub fn check(record: &[u8], envelope: &[u8]) {
    let envelope = serde_json::from_slice::<Envelope>(envelope).ok();
    if let Some(envelope) = &envelope {
        check_envelope(envelope);
    }
    let Ok(record) = serde_json::from_slice::<PublisherRecord>(record) else { return };
    let Some(envelope) = envelope else { return };
    let Ok(manifest) = record.verify_release(&envelope) else { return };
    assert!(
        manifest.plugin_id.belongs_to(&record.id),
        "accepted {} under the record of {}",
        manifest.plugin_id,
        record.id
    );
    let payload = envelope.payload_bytes().expect("an accepted envelope's payload decodes");
    let parsed: ReleaseManifest = serde_json::from_slice(&payload).expect("an accepted payload parses");
    assert_eq!(parsed, manifest, "verify_release returned another manifest than the payload's");
    let message = dsse::pae(&envelope.payload_type, &payload);
    let revoked_material: HashSet<Vec<u8>> = record
        .revoked
        .iter()
        .filter_map(|r| record.keys.get(&r.keyid))
        .map(|k| material(k.public_str().unwrap_or_default()))
        .collect();
    let mut signers = HashSet::new();
    for signature in &envelope.signatures {
        if record.revocation(&signature.keyid).is_some() {
            continue;
        }
        let Some(key) = record.keys.get(&signature.keyid) else { continue };
        let Ok(sig) = Envelope::signature_bytes(signature) else { continue };
        if key.verify(&message, &sig).is_ok() {
            let material = material(key.public_str().unwrap_or_default());
            // A revoked key's signature never counts, whatever id it is listed under:
            // the threshold check below must hold without it.
            if !revoked_material.contains(&material) {
                signers.insert(material);
            }
        }
    }
    assert!(
        signers.len() as u64 >= u64::from(record.threshold.max(1)),
        "{} accepted with {} distinct keys for threshold {}",
        manifest.release_name(),
        signers.len(),
        record.threshold
    );
}

/// Properties of any envelope that parses.
fn check_envelope(envelope: &Envelope) {
    let bytes = serde_json::to_vec(envelope).expect("an envelope serializes");
    let again: Envelope = serde_json::from_slice(&bytes).expect("a serialized envelope parses");
    assert_eq!(&again, envelope, "an envelope changed in a round trip");
    let Ok(payload) = envelope.payload_bytes() else { return };
    let message = envelope.signed_message().expect("the payload decoded once");
    let expected = [
        format!("DSSEv1 {} {} {} ", envelope.payload_type.len(), envelope.payload_type, payload.len()).as_bytes(),
        payload.as_slice(),
    ]
    .concat();
    assert_eq!(message, expected, "PAE is not the DSSE encoding");
    let resigned = Envelope::sign(RELEASE_PAYLOAD_TYPE, &payload, &[&fixture::key(seed::PUBLISHER)]);
    assert_eq!(
        resigned.payload_bytes().ok().as_deref(),
        Some(payload.as_slice()),
        "a signed payload does not decode back"
    );
}

/// Key material with hex decoded (case makes no other key), else as written.
fn material(public: &str) -> Vec<u8> {
    hex::decode(public.trim()).unwrap_or_else(|_| public.split_whitespace().collect::<String>().into_bytes())
}
