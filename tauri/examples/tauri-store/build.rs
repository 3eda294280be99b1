//! Copies the plugin's JavaScript API (`plugin/guest-js/index.js`) into the webview's
//! assets, then runs Tauri's build step.

fn main() {
    let api = std::path::Path::new("../../plugin/guest-js/index.js");
    println!("cargo::rerun-if-changed={}", api.display());
    let vendor = std::path::Path::new("ui/vendor");
    if let Err(error) = std::fs::create_dir_all(vendor).and_then(|()| std::fs::copy(api, vendor.join("trellis.js"))) {
        panic!("cannot copy {} into ui/vendor: {error}", api.display());
    }
    // Without the `store` feature the trellis permissions do not exist: the bare app
    // has its own capability file.
    let mut attributes = tauri_build::Attributes::new();
    if std::env::var_os("CARGO_FEATURE_STORE").is_none() {
        attributes = attributes.capabilities_path_pattern("./capabilities-bare/*.json");
    }
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri build step failed: {error:#}");
    }
}
