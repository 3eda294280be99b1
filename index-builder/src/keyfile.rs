//! Key files: Ed25519 signing keys on disk.
//!
//! A key file is the JSON of [`SigningKey::to_file_json`], created with mode 0600 and
//! never overwritten silently. Developer keys sign release manifests; registry role keys
//! sign TUF metadata. Both are read through [`read`].

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use trellis_schema::key::{KeyFileError, SigningKey};

/// A key file that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileIoError {
    /// The file exists and overwriting was not asked for.
    #[error("{} already exists; refusing to overwrite a key (delete it first if you mean it)", .0.display())]
    Exists(PathBuf),
    /// I/O failure.
    #[error("{action} key file {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a key.
    #[error("key file {}: {source}", path.display())]
    Invalid {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: KeyFileError,
    },
}

/// Generates a new key and writes it to `path` (mode 0600 on Unix). Refuses to
/// overwrite an existing file.
pub fn generate(path: &Path) -> Result<SigningKey, KeyFileIoError> {
    let key = SigningKey::generate();
    write_new(path, &key)?;
    Ok(key)
}

/// Writes `key` to a new file at `path` (mode 0600 on Unix).
pub fn write_new(path: &Path, key: &SigningKey) -> Result<(), KeyFileIoError> {
    let io = |action| move |source| KeyFileIoError::Io { action, path: path.to_owned(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("creating the directory of"))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileIoError::Exists(path.to_owned())
        } else {
            KeyFileIoError::Io { action: "creating", path: path.to_owned(), source }
        }
    })?;
    file.write_all(key.to_file_json().as_bytes()).map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))?;
    Ok(())
}

/// Reads a key file.
pub fn read(path: &Path) -> Result<SigningKey, KeyFileIoError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileIoError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    SigningKey::from_file_json(&text).map_err(|source| KeyFileIoError::Invalid { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_private_readable_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/dev.key");
        let key = generate(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(read(&path).unwrap().key_id(), key.key_id());
        assert!(matches!(generate(&path), Err(KeyFileIoError::Exists(_))));
        assert_eq!(read(&path).unwrap().key_id(), key.key_id(), "refused overwrite must keep the key");
    }

    #[test]
    fn corrupt_key_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "{").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("bad.key") && err.contains("not a Trellis key file"), "{err}");
    }
}
