//! Seed corpora, generated from the [`fixture`](crate::fixture): genuine signed TUF
//! metadata, a publisher record and release envelopes, an index doc, a real delta and
//! patch, and names for the path policy. (Packages come from the builder's own
//! `pack`, which this crate does not depend on: the seed writer in
//! `tests/tests/fuzz_corpora.rs` adds them.)

use std::io::Write as _;

use flate2::Compression as Level;
use flate2::write::DeflateEncoder;
use trellis_schema::delta::{Compression, DataRange, DeltaFile, DeltaHeader, DeltaOp, encode};
use trellis_schema::digest::Sha256;

use crate::fixture::{self, seed};
use crate::tuf_metadata::Mode;

/// One seed: the target it belongs to, a file name and its bytes.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The target (corpus directory).
    pub target: &'static str,
    /// The file name inside it.
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed { target, name: name.into(), bytes }
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    [&[mode][..], bytes].concat()
}

/// Every generated seed.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    out.extend(canonical_json());
    out.extend(path_policy());
    out.extend(tuf_metadata());
    out.push(seed("index_doc", "genuine", fixture::index_doc()));
    out.extend(publisher_release());
    out.extend(delta());
    out
}

fn canonical_json() -> Vec<Seed> {
    let texts: [(&str, &[u8]); 6] = [
        ("escapes", br#"{"b":"\u00e9\"\\\/","a":[1,-2,18446744073709551615,-9223372036854775808],"\u0000":null}"#),
        ("nested", br#"[{"z":{"y":[true,false,null]},"Z":{},"":""}]"#),
        ("float", br#"{"x":1.5,"y":1e3}"#),
        ("unicode-keys", "{\"é\":1,\"e\u{301}\":2,\"😀\":3,\"\u{ffff}\":4}".as_bytes()),
        ("duplicate", br#"{"a":1,"a":2}"#),
        ("control", b"{\"a\":\"line\\nbreak\"}"),
    ];
    let mut out: Vec<Seed> = texts.iter().map(|(name, text)| seed("canonical_json", *name, text.to_vec())).collect();
    out.push(seed("canonical_json", "root", fixture::root()));
    out.push(seed("canonical_json", "index-doc", fixture::index_doc()));
    out
}

fn path_policy() -> Vec<Seed> {
    let pairs: [(&str, &str); 10] = [
        ("plain", "lib/data.txt\0lib/other.txt"),
        ("case", "bin/Run\0BIN/run"),
        ("normalization", "r\u{e9}sum\u{e9}.txt\0re\u{301}sume\u{301}.txt"),
        ("file-and-dir", "lib\0lib/x"),
        ("device", "docs/nul.txt\0COM1"),
        ("device-space", "aux .txt\0CONIN$"),
        ("dots", "a/../b\0./a"),
        ("trailing", "a.\0b /c"),
        ("unicode-case", "\u{130}\0i\u{307}"),
        ("sharp-s", "stra\u{df}e\0STRASSE"),
    ];
    pairs.iter().map(|(name, text)| seed("path_policy", *name, text.as_bytes().to_vec())).collect()
}

fn tuf_metadata() -> Vec<Seed> {
    let root_v2 = fixture::sign_metadata(&fixture::root_signed(2), &[&fixture::key(seed::ROOT)]).unwrap_or_default();
    let docs = [
        (Mode::Root, "root-v2", root_v2, fixture::root_signed(2)),
        (Mode::Timestamp, "timestamp", fixture::timestamp(), fixture::timestamp_signed()),
        (Mode::Snapshot, "snapshot", fixture::snapshot(), fixture::snapshot_signed()),
        (Mode::Targets, "targets", fixture::targets(), fixture::targets_signed()),
        (Mode::Bins, "bins", fixture::bins(), fixture::bins_signed()),
        (Mode::Bin, "bin", fixture::bin(), fixture::bin_signed()),
        (Mode::StoredBin, "stored-bin", fixture::bin(), fixture::bin_signed()),
    ];
    let mut out = Vec::new();
    for (mode, name, signed_doc, signed_part) in docs {
        out.push(seed("tuf_metadata", format!("{name}-signed"), with_mode(mode.byte(false), &signed_doc)));
        let text = serde_json::to_vec_pretty(&signed_part).unwrap_or_default();
        out.push(seed("tuf_metadata", format!("{name}-resign"), with_mode(mode.byte(true), &text)));
    }
    out
}

fn publisher_release() -> Vec<Seed> {
    let record = serde_json::to_vec_pretty(&fixture::publisher_record_json()).unwrap_or_default();
    let payload = fixture::manifest_payload(&fixture::target_manifest());
    let both = fixture::envelope_bytes(&payload, &[&fixture::key(seed::PUBLISHER), &fixture::key(seed::PUBLISHER_2)]);
    let one = fixture::release_envelope(&fixture::base_manifest());
    vec![
        seed("publisher_release", "record", with_mode(0, &record)),
        seed("publisher_release", "envelope", with_mode(1, &both)),
        seed("publisher_release", "payload", with_mode(2, &payload)),
        seed("publisher_release", "record-and-envelope", with_mode(3, &[&record[..], &[0], &one[..]].concat())),
        seed("publisher_release", "record-signed-as-listed", with_mode(4, &record)),
    ]
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Level::best());
    if encoder.write_all(bytes).is_err() {
        return Vec::new();
    }
    encoder.finish().unwrap_or_default()
}

/// A bsdiff patch (the format `trellis_schema::delta` documents) turning `old` into
/// `new`: one control adding the common prefix bytewise, then the rest as new bytes.
pub fn patch(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mix = old.len().min(new.len());
    let mut out = Vec::new();
    out.extend_from_slice(&(mix as u64).to_le_bytes());
    out.extend_from_slice(&((new.len() - mix) as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend(new[..mix].iter().zip(old).map(|(n, o)| n.wrapping_sub(*o)));
    out.extend_from_slice(&new[mix..]);
    out
}

/// The fixture's genuine delta from `acme.clock 1.0.0` to `1.1.0`: a literal, a copy,
/// a patch and the content manifest.
pub fn genuine_delta() -> Vec<u8> {
    let (base, target) = (fixture::base_manifest(), fixture::target_manifest());
    let old = fixture::base_files();
    let old_data = old.iter().find(|f| f.0 == "lib/data.txt").map(|f| f.1.clone()).unwrap_or_default();
    let mut files = Vec::new();
    let mut data = Vec::new();
    let push_data = |bytes: Vec<u8>, data: &mut Vec<u8>| {
        let range = DataRange { offset: data.len() as u64, length: bytes.len() as u64 };
        data.extend_from_slice(&bytes);
        range
    };
    let mut new_files = fixture::target_files();
    let content = fixture::content_manifest(&target);
    new_files.push((fixture::CONTENT_MANIFEST, content, false));
    new_files.sort_by(|a, b| a.0.cmp(b.0));
    for (path, bytes, _) in new_files {
        let op = match path {
            "bin/run" => DeltaOp::Copy { source: path.to_owned() },
            "lib/data.txt" => DeltaOp::Patch {
                source: path.to_owned(),
                data: push_data(deflate(&patch(&old_data, &bytes)), &mut data),
            },
            _ => DeltaOp::Literal { data: push_data(deflate(&bytes), &mut data) },
        };
        files.push(DeltaFile { path: path.to_owned(), op });
    }
    let header = DeltaHeader {
        plugin_id: target.plugin_id.clone(),
        from: base.version.clone(),
        to: target.version.clone(),
        from_manifest_sha256: Sha256::of(&fixture::manifest_payload(&base)),
        to_manifest_sha256: Sha256::of(&fixture::manifest_payload(&target)),
        compression: Compression::Deflate,
        files,
    };
    encode(&header, &data).unwrap_or_default()
}

fn delta() -> Vec<Seed> {
    let delta = genuine_delta();
    let old = b"the quick brown fox".to_vec();
    let new = b"the quick brown cat jumps".to_vec();
    let mut patch_input = Vec::new();
    patch_input.extend_from_slice(&(new.len() as u16).to_le_bytes());
    patch_input.extend_from_slice(&(old.len() as u16).to_le_bytes());
    patch_input.extend_from_slice(&old);
    patch_input.extend_from_slice(&patch(&old, &new));
    vec![
        seed("delta", "parse-genuine", with_mode(0, &delta)),
        seed("delta", "apply-genuine", with_mode(1, &delta)),
        seed("delta", "patch", with_mode(2, &patch_input)),
    ]
}
