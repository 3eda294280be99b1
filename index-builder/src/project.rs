//! A new plugin project: `trellis-index new ID`.
//!
//! Owns the files a developer starts from, laid out so that the plugin tree (what
//! `pack` packs) is apart from the developer's own files:
//!
//! ```text
//! <dir>/README.md                        the developer journey: lint, pack, keys, sign, submit
//! <dir>/.gitignore                       keys and packed output are never committed
//! <dir>/.github/workflows/plugin.yml     CI: lint and pack on every push and pull request
//! <dir>/plugin/plugin.json               valid for `lint` as written
//! <dir>/plugin/LICENSE                   MIT, naming the vendor (change both if you pick another)
//! <dir>/plugin/bin/any/<name>.sh         the entry point
//! <dir>/plugin/docs/README.md            the user's help
//! ```
//!
//! The id is checked like every plugin id ([`PluginId`]); an existing directory is
//! never written into. Packing, signing and submitting are `pack`, `sign` and
//! [`crate::submit`]'s.

use std::path::{Path, PathBuf};

use trellis_schema::PluginId;

/// Where the plugin tree lives inside a project.
pub const PLUGIN_DIR: &str = "plugin";

/// What a new project is made from.
#[derive(Clone, Debug)]
pub struct NewProject {
    /// The plugin id (`vendor.name`).
    pub id: PluginId,
    /// Display name (default: the id's name part).
    pub name: Option<String>,
    /// The host app the plugin is for.
    pub host_id: String,
    /// The semver requirement on the host's plugin API.
    pub host_api: String,
    /// The year in the LICENSE.
    pub year: i16,
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The directory exists.
    #[error("{} already exists; refusing to write into it (choose another directory with --dir)", .0.display())]
    Exists(PathBuf),
    /// Writing failed.
    #[error(transparent)]
    Fs(#[from] trellis_client::fs::FsError),
    /// The generated `plugin.json` does not validate (a bad name or host requirement).
    #[error("the plugin.json to write is not valid: {0}")]
    Invalid(String),
}

fn short_name(id: &PluginId) -> &str {
    id.as_str().split_once('.').map_or(id.as_str(), |(_, name)| name)
}

fn plugin_json(project: &NewProject) -> serde_json::Value {
    let vendor = project.id.vendor_id();
    let short = short_name(&project.id);
    let name = project.name.clone().unwrap_or_else(|| short.to_owned());
    serde_json::json!({
        "id": project.id,
        "name": name,
        "version": "0.1.0",
        "vendor": {"name": vendor.to_string(), "id": vendor.to_string()},
        "description": {
            "short": format!("{name}: what it does, in one sentence"),
            "full": "What the plugin does, for the store page."
        },
        "categories": ["utility"],
        "tags": [],
        "permissions": [],
        "dependencies": [],
        "pricing": {"model": "free", "trial_days": 0},
        "release_notes": "First release.",
        "channel": "stable",
        "host": {"id": project.host_id, "api_version_requirement": project.host_api},
        "platforms": ["any"],
        "entry": {"any": format!("bin/any/{short}.sh")},
        "license": "MIT"
    })
}

fn developer_readme(project: &NewProject) -> String {
    let id = &project.id;
    let vendor = id.vendor_id();
    format!(
        r#"# {id}

A Trellis plugin. The plugin itself is `plugin/` (what `pack` packs); this README, the
CI workflow and your keys stay outside the package.

## Build and check

```sh
trellis-index lint plugin/                       # what the store checks, every problem at once
trellis-index pack plugin/ --out dist/{id}-0.1.0.zip
```

CI (`.github/workflows/plugin.yml`) runs both on every push and pull request.

## Keys (once)

```sh
trellis-index keygen --out ~/.trellis/{vendor}.key            # keep it off the repository
trellis-index publisher init --id {vendor} --name "Your Name" --key ~/.trellis/{vendor}.key \
    --out publishers/{vendor}.json
```

Your publisher record (`publishers/{vendor}.json`) lists the keys allowed to sign
`{vendor}.*` plugins. Later changes are new versions signed by your current keys
(`trellis-index publisher update`).

## Release

```sh
# bump "version" in plugin/plugin.json, then:
trellis-index lint plugin/
trellis-index pack plugin/ --out dist/{id}-0.1.0.zip
trellis-index sign dist/{id}-0.1.0.zip --key ~/.trellis/{vendor}.key
git clone https://github.com/OWNER/REGISTRY.git ../registry     # once
trellis-index submit dist/{id}-0.1.0.zip --registry ../registry \
    --publisher publishers/{vendor}.json --run
```

`submit` checks the signed package against your record, copies the package, its
signature and (on your first submission, or when it changed) your record into the
registry checkout, and prints the git and `gh` commands of the pull request (`--run`
runs them). The registry's check workflow lints it again; its maintainers review a
first submission; on merge the store publishes it.

## Selling it

Set `"pricing": {{"model": "paid", "trial_days": 14}}` in `plugin.json`; users get the
trial from their first install. Licenses are tokens you sign:
`trellis-index license keygen --out license.key`, list it in your record with
`trellis-index publisher update publishers/{vendor}.json --key ~/.trellis/{vendor}.key
--add-license-key license.key.pub`, then mint tokens from your payment processor's
checkout webhook with `trellis-index license issue --key license.key --webhook -`.
"#
    )
}

const WORKFLOW: &str = r#"# Lint and pack the plugin on every push and pull request; the package is uploaded
# as an artifact. Signing stays on your machine (your key never goes to CI).
name: plugin
on: [push, pull_request]
permissions:
  contents: read
jobs:
  lint-and-pack:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: Install trellis-index
        # Pin the commit you trust: set the repository variable TRELLIS_REV.
        env:
          TRELLIS_REV: ${{ vars.TRELLIS_REV }}
        run: |
          test -n "$TRELLIS_REV" || { echo "set the repository variable TRELLIS_REV to the trellis commit you trust"; exit 1; }
          cargo install --locked --git https://github.com/trellis-store/trellis --rev "$TRELLIS_REV" trellis-index
      - run: trellis-index lint plugin/
      - run: trellis-index pack plugin/ --out "dist/$(jq -r '.id + "-" + .version' plugin/plugin.json).zip"
      - uses: actions/upload-artifact@v4
        with:
          name: package
          path: dist/*.zip
"#;

fn write(path: &Path, bytes: &[u8]) -> Result<(), ProjectError> {
    if let Some(parent) = path.parent() {
        trellis_client::fs::create_dir_all(parent)?;
    }
    trellis_client::fs::write_atomic(path, bytes)?;
    Ok(())
}

/// Creates the project `project` in `dir` (which must not exist) and returns the files
/// written, relative to `dir`.
pub fn create(dir: &Path, project: &NewProject) -> Result<Vec<PathBuf>, ProjectError> {
    let metadata = plugin_json(project);
    let text = serde_json::to_string_pretty(&metadata).map_err(|e| ProjectError::Invalid(e.to_string()))?;
    if let Err(problems) = trellis_schema::validate::plugin_metadata_bytes(text.as_bytes()) {
        let problems: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        return Err(ProjectError::Invalid(problems.join("; ")));
    }
    if dir.exists() {
        return Err(ProjectError::Exists(dir.to_owned()));
    }
    let short = short_name(&project.id);
    let vendor = project.id.vendor_id();
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        (PathBuf::from("README.md"), developer_readme(project).into_bytes()),
        (PathBuf::from(".gitignore"), b"*.key\ndist/\n".to_vec()),
        (PathBuf::from(".github/workflows/plugin.yml"), WORKFLOW.as_bytes().to_vec()),
        (Path::new(PLUGIN_DIR).join("plugin.json"), format!("{text}\n").into_bytes()),
        (Path::new(PLUGIN_DIR).join("LICENSE"), mit_license(project.year, vendor.as_ref()).into_bytes()),
        (
            Path::new(PLUGIN_DIR).join(format!("bin/any/{short}.sh")),
            format!("#!/bin/sh\necho \"{} is running\"\n", project.id).into_bytes(),
        ),
        (
            Path::new(PLUGIN_DIR).join("docs/README.md"),
            format!("# {}\n\nHow to use the plugin.\n", project.name.as_deref().unwrap_or(short)).into_bytes(),
        ),
    ];
    trellis_client::fs::create_dir_all(dir)?;
    for (path, bytes) in &files {
        write(&dir.join(path), bytes)?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

fn mit_license(year: i16, holder: &str) -> String {
    format!(
        "MIT License\n\nCopyright (c) {year} {holder}\n\n\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated \
documentation files (the \"Software\"), to deal in the Software without restriction, including without limitation \
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to \
permit persons to whom the Software is furnished to do so, subject to the following conditions:\n\n\
The above copyright notice and this permission notice shall be included in all copies or substantial portions of \
the Software.\n\n\
THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO \
THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE \
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, \
TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE \
SOFTWARE.\n"
    )
}
