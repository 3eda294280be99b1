//! JSON Schemas of the documents, generated from the types.
//!
//! The schemas are checked into `schema/json/` for tools outside Rust (editors, CI
//! linters of registry repositories); a test fails when they drift from the types. Run
//! `TRELLIS_UPDATE_SCHEMAS=1 cargo test -p trellis-schema json_schema` to rewrite them.

use serde_json::Value;

/// `(file stem, schema)` of every published document type.
pub fn all() -> Vec<(&'static str, Value)> {
    fn schema<T: schemars::JsonSchema>() -> Value {
        schemars::schema_for!(T).to_value()
    }
    vec![
        ("plugin", schema::<crate::plugin::PluginMetadata>()),
        ("content-manifest", schema::<crate::manifest::ContentManifest>()),
        ("release-manifest", schema::<crate::manifest::ReleaseManifest>()),
        ("dsse-envelope", schema::<crate::dsse::Envelope>()),
        ("publisher", schema::<crate::publisher::PublisherChain>()),
        ("index-doc", schema::<crate::index::IndexDoc>()),
        ("advisories", schema::<crate::advisory::Advisories>()),
        ("blocklist", schema::<crate::blocklist::Blocklist>()),
        ("delta-header", schema::<crate::delta::DeltaHeader>()),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn checked_in_schemas_match_the_types() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
        let update = std::env::var_os("TRELLIS_UPDATE_SCHEMAS").is_some();
        let mut drifted = Vec::new();
        for (name, schema) in super::all() {
            let path = dir.join(format!("{name}.schema.json"));
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(path.display().to_string());
            }
        }
        assert!(
            drifted.is_empty(),
            "JSON Schemas out of date: {drifted:?}; run TRELLIS_UPDATE_SCHEMAS=1 cargo test -p trellis-schema json_schema"
        );
    }

    #[test]
    fn plugin_schema_requires_the_core_fields() {
        let (_, schema) = super::all().into_iter().find(|(n, _)| *n == "plugin").unwrap();
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        for field in ["id", "name", "version", "vendor", "description", "host", "platforms", "license"] {
            assert!(required.contains(&field), "{field} not required in {required:?}");
        }
    }
}
