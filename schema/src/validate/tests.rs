use super::*;
use serde_json::json;

fn valid() -> Value {
    json!({
        "id": "acme.clock", "name": "Clock", "version": "1.0.0",
        "vendor": {"name": "Acme", "id": "acme", "website": "https://acme.example"},
        "description": {"short": "A clock", "full": "A clock with alarms"},
        "categories": ["utility", "productivity"], "tags": ["time", "windows"],
        "icons": {"small": "resources/icon-16.png", "medium": "resources/icon-32.png", "large": "resources/icon-128.png"},
        "screenshots": [{"url": "resources/shot1.png", "caption": "Main"}],
        "permissions": [{"type": "filesystem", "scope": "plugin_directory", "reason": "Store alarms"}],
        "dependencies": [{"id": "acme.time-core", "version_requirement": ">=1.0.0"}],
        "pricing": {"model": "free", "trial_days": 0},
        "release_notes": "First release",
        "channel": "stable",
        "host": {"id": "tauri-demo", "api_version_requirement": "^1.2"},
        "platforms": ["windows-x86_64", "any"],
        "entry": {"windows-x86_64": "bin/windows-x86_64/clock.dll", "any": "bin/any/clock.js"},
        "license": "MIT OR Apache-2.0",
        "repository": "https://git.example/acme/clock",
        "x-future-field": {"kept": true}
    })
}

fn messages(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn accepts_a_complete_document_and_keeps_unknown_fields() {
    let meta = plugin_metadata(&valid()).unwrap();
    assert_eq!(meta.id.as_str(), "acme.clock");
    assert_eq!(meta.extra["x-future-field"]["kept"], true);
    assert_eq!(serde_json::to_value(&meta).unwrap()["x-future-field"]["kept"], true);
}

// The SPDX check needs the `validate` feature; without it the snapshot would lack one line.
#[cfg(feature = "validate")]
#[test]
fn reports_every_problem_at_once_with_json_paths() {
    let mut doc = valid();
    doc["id"] = json!("other.clock");
    doc["version"] = json!("1.0");
    doc["vendor"]["website"] = json!("http://acme.example");
    doc["categories"] = json!(["utility", "toys"]);
    doc["permissions"] = json!([
        {"type": "filesystem", "scope": "plugin_directory", "reason": "ok"},
        {"type": "network", "scope": "internet", "reason": " "},
        {"type": "filesystem", "scope": "everything", "reason": "all"},
        {"type": "telepathy", "scope": "x", "reason": "y"}
    ]);
    doc["dependencies"] = json!([{"id": "acme.core", "version_requirement": "one point oh"}]);
    doc["pricing"] = json!({"model": "free", "trial_days": -1});
    doc["platforms"] = json!(["windows-x86_64", "amiga"]);
    doc["license"] = json!("MIT OR");
    let problems = plugin_metadata(&doc).unwrap_err().0;
    insta::assert_snapshot!(messages(&problems).join("\n"));
}

#[test]
fn explains_unknown_scope_with_the_catalog() {
    let mut doc = valid();
    doc["permissions"][0]["scope"] = json!("everything");
    let problems = plugin_metadata(&doc).unwrap_err().0;
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].to_string().starts_with(
            "permissions[0].scope: unknown scope \"everything\" for type \"filesystem\"; expected one of plugin_directory, app_data, user_documents"
        ),
        "{}",
        problems[0]
    );
}

#[test]
fn missing_required_fields_and_wrong_types_are_named() {
    let doc = json!({"id": 7, "vendor": {"id": "acme"}, "platforms": "any"});
    let problems = messages(&plugin_metadata(&doc).unwrap_err().0);
    for expected in [
        "id: expected a string, found a number",
        "vendor.name: required field is missing",
        "name: required field is missing",
        "version: required field is missing",
        "description: required field is missing",
        "host: required field is missing",
        "platforms: expected an array, found a string",
        "license: required field is missing",
    ] {
        assert!(problems.iter().any(|p| p == expected), "missing {expected:?} in {problems:#?}");
    }
}

#[test]
fn free_plugins_have_no_trial_and_self_dependencies_are_refused() {
    let mut doc = valid();
    doc["pricing"] = json!({"model": "free", "trial_days": 14});
    doc["dependencies"] = json!([{"id": "acme.clock", "version_requirement": "*"}]);
    let problems = messages(&plugin_metadata(&doc).unwrap_err().0);
    assert!(problems.iter().any(|p| p.starts_with("pricing.trial_days: a free plugin has no trial")), "{problems:?}");
    assert!(problems.contains(&"dependencies[0].id: a plugin cannot depend on itself".to_string()), "{problems:?}");
    doc["pricing"] = json!({"model": "subscription", "trial_days": 14});
    doc["dependencies"] = json!([]);
    assert_eq!(plugin_metadata(&doc).unwrap().pricing.trial_days, 14);
}

#[test]
fn invalid_json_is_one_problem_at_the_root() {
    let problems = plugin_metadata_bytes(b"{\"id\": ").unwrap_err().0;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].to_string().starts_with("$: not valid JSON"), "{}", problems[0]);
}

fn png(w: u32, h: u32) -> PackageFile {
    let mut head = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    head.extend_from_slice(&w.to_be_bytes());
    head.extend_from_slice(&h.to_be_bytes());
    PackageFile { size: 100, head }
}

fn file() -> PackageFile {
    PackageFile { size: 10, head: b"bytes".to_vec() }
}

fn good_files() -> BTreeMap<String, PackageFile> {
    BTreeMap::from([
        ("plugin.json".into(), file()),
        ("LICENSE".into(), file()),
        ("resources/icon-16.png".into(), png(16, 16)),
        ("resources/icon-32.png".into(), png(32, 32)),
        ("resources/icon-128.png".into(), png(128, 128)),
        ("resources/shot1.png".into(), png(800, 600)),
        ("bin/windows-x86_64/clock.dll".into(), file()),
        ("bin/any/clock.js".into(), file()),
    ])
}

#[test]
fn package_contents_accepts_a_complete_package() {
    let meta = plugin_metadata(&valid()).unwrap();
    assert_eq!(package_contents(&meta, &good_files()), vec![]);
}

#[test]
fn package_contents_checks_icons_license_platforms_and_entries() {
    let meta = plugin_metadata(&valid()).unwrap();
    let mut files = good_files();
    files.remove("LICENSE");
    files.insert("resources/icon-32.png".into(), png(64, 64));
    files.insert("resources/icon-128.png".into(), file());
    files.remove("bin/windows-x86_64/clock.dll");
    files.insert("bin/macos-aarch64/clock.dylib".into(), file());
    files.insert("secrets.txt".into(), file());
    let problems = messages(&package_contents(&meta, &files));
    insta::assert_snapshot!(problems.join("\n"));
}

#[test]
fn reads_png_dimensions_and_rejects_other_formats() {
    assert_eq!(png_dimensions(&png(16, 32).head), Some((16, 32)));
    assert_eq!(png_dimensions(b"GIF89a............................"), None);
    assert_eq!(png_dimensions(&png(16, 16).head[..20]), None);
}

proptest::proptest! {
    #[test]
    fn validation_never_panics_on_arbitrary_json(doc in arbitrary_json()) {
        let _ = plugin_metadata(&doc);
    }

    #[test]
    fn validation_never_panics_when_fields_are_replaced(field in "[a-z_]{1,12}", value in arbitrary_json()) {
        let mut doc = valid();
        doc[field.as_str()] = value;
        let _ = plugin_metadata(&doc);
    }
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
