//! Where the CLI's settings come from: flags, then environment variables, then the
//! config file, then built-in defaults; and where its data dir is.
//!
//! The config file is TOML, at `--config FILE`, `$TRELLIS_CONFIG`, or
//! `<config dir>/trellis/config.toml` (`~/.config` on Linux, `%APPDATA%` on Windows,
//! `~/Library/Application Support` on macOS); a missing default file is no error, a
//! missing named one is. Unknown keys are refused, naming the file and the key. The
//! data dir defaults to `<local data dir>/trellis` (`~/.local/share` or
//! `$XDG_DATA_HOME` on Linux, `%LOCALAPPDATA%` on Windows), found with the `dirs`
//! crate; when the platform has no such directory the command stops with an error
//! saying how to set one, never falling back to the working directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Failure;
use crate::output::ColorChoice;

/// The settings a config file may hold; each is overridden by its flag or variable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The data dir (`--data-dir`, `TRELLIS_DATA_DIR`).
    pub(crate) data_dir: Option<PathBuf>,
    /// The host app id (`--host-id`, `TRELLIS_HOST_ID`).
    pub(crate) host_id: Option<String>,
    /// The host app's plugin API version (`--host-api`, `TRELLIS_HOST_API`).
    pub(crate) host_api: Option<semver::Version>,
    /// Colour (`--color`, `TRELLIS_COLOR`).
    pub(crate) color: Option<ColorChoice>,
}

/// The default config file, if the platform has a config dir.
pub(crate) fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("trellis").join("config.toml"))
}

/// Reads the config file: `explicit` (from `--config` or `TRELLIS_CONFIG`) must exist;
/// the default one may be missing.
pub(crate) fn load(explicit: Option<&Path>) -> Result<ConfigFile, Failure> {
    let (path, required) = match explicit {
        Some(path) => (path.to_owned(), true),
        None => match default_config_path() {
            Some(path) => (path, false),
            None => return Ok(ConfigFile::default()),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(ConfigFile::default()),
        Err(e) => return Err(Failure::Usage(format!("cannot read the config file {}: {e}", path.display()))),
    };
    toml::from_str(&text).map_err(|e| {
        let message = e.message().trim_end();
        Failure::Usage(format!(
            "the config file {} is not valid: {message}; the keys are data_dir, host_id, host_api and color",
            path.display()
        ))
    })
}

/// The data dir when neither `--data-dir`, `TRELLIS_DATA_DIR` nor the config file
/// names one: the platform's local data dir + `trellis`.
pub(crate) fn default_data_dir() -> Result<PathBuf, String> {
    dirs::data_local_dir().map(|dir| dir.join("trellis")).ok_or_else(|| {
        "cannot tell where to keep trellis's data: this system has no home or local data directory; set TRELLIS_DATA_DIR or pass --data-dir DIR".into()
    })
}
