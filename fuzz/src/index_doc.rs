//! Index docs (`trellis_schema::index::IndexDoc`), parsed as the client parses them.
//!
//! Properties: nothing panics; a doc that parses serializes, and what it serializes to
//! parses back to an equal doc (no field is lost or reinterpreted on the way, so the
//! builder and the client read the same document); every release, delta and blob
//! reference survives; `IndexDoc::release` finds each listed version.

use trellis_schema::index::IndexDoc;

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<IndexDoc>(data) else { return };
    let bytes = match serde_json::to_vec(&doc) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a parsed index doc does not serialize: {e}"),
    };
    let again: IndexDoc = match serde_json::from_slice(&bytes) {
        Ok(again) => again,
        Err(e) => panic!("a serialized index doc does not parse ({e}): {}", String::from_utf8_lossy(&bytes)),
    };
    assert_eq!(again, doc, "an index doc changed in a serialize/parse round trip");
    for release in &doc.releases {
        let found = doc.release(&release.version);
        assert!(found.is_some_and(|r| r.version == release.version), "release {} not found", release.version);
    }
    // The canonical form (what a builder would hash or sign) parses back too.
    if let Ok(canonical) = trellis_schema::canonical::to_vec_of(&doc)
        && !canonical.iter().any(|b| *b < 0x20)
    {
        let back: IndexDoc = match serde_json::from_slice(&canonical) {
            Ok(back) => back,
            Err(e) => panic!("the canonical form of an index doc does not parse: {e}"),
        };
        assert_eq!(back, doc, "an index doc changed in a canonical round trip");
    }
}
