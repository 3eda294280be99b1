//! `pack`: a plugin source tree → a deterministic package.
//!
//! The same tree always gives the same bytes: entries sorted by path, a fixed
//! timestamp (1980-01-01 00:00), fixed modes (0755 under `bin/`, 0644 elsewhere, see
//! [`is_executable`]), one compression setting, no directory entries. The content
//! manifest (`trellis-manifest.json`, format
//! [`MANIFEST_FORMAT`](trellis_schema::manifest::MANIFEST_FORMAT): every file's path,
//! size, SHA-256 and mode) is written last, and
//! the whole package is written to a temp file and renamed into place only when every
//! check passed. A tree that extraction would refuse is refused here, with every
//! problem listed.
//!
//! Signing the result is [`crate::sign`]; checking a package is [`crate::lint`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use trellis_client::package::Limits;
use trellis_schema::digest::{Hasher, Sha256};
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, ManifestFormat, PackageDigest};
use trellis_schema::plugin::{METADATA_PATH, PluginMetadata};
use trellis_schema::validate::{self, PackageFile, Problem, Problems, Severity};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::source_tree::{self, ScanError};

/// Bytes of each file kept for format checks (PNG header and the like).
const HEAD_LEN: usize = 32;
/// Bytes read from the start of each file to decide whether deflating it pays off.
const SAMPLE_LEN: usize = 256 * 1024;
/// Deflate level used for every compressed entry.
const DEFLATE_LEVEL: i64 = 6;
/// Extensions stored without compression: they are compressed already.
const STORED_EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "gif", "webp", "zip", "gz", "zst", "woff2"];

/// A package written by [`pack_dir`].
#[derive(Clone, Debug)]
pub struct Packed {
    /// Where it was written.
    pub path: PathBuf,
    /// Its SHA-256 and size.
    pub digest: PackageDigest,
    /// The content manifest written into it.
    pub manifest: ContentManifest,
    /// Its validated metadata.
    pub metadata: PluginMetadata,
    /// Warnings that did not stop packing.
    pub warnings: Vec<Problem>,
}

/// Why a tree was not packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The source is not a directory.
    #[error("{} is not a directory; pack takes the plugin's source tree", .0.display())]
    NotADirectory(PathBuf),
    /// The tree has no readable plugin.json.
    #[error("{}: {source}", path.display())]
    Metadata {
        /// The plugin.json path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// plugin.json or the tree has problems.
    #[error("{} cannot be packed; {problems}", root.display())]
    Problems {
        /// The tree.
        root: PathBuf,
        /// Every problem.
        problems: Problems,
    },
    /// The tree could not be walked.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// Reading a file or writing the package failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The ZIP writer failed.
    #[error("writing package {}: {source}", path.display())]
    Zip {
        /// The package.
        path: PathBuf,
        /// Why.
        #[source]
        source: zip::result::ZipError,
    },
}

/// The default file name of a package: `<id>-<version>.zip`.
pub fn default_file_name(metadata: &PluginMetadata) -> String {
    format!("{}-{}.zip", metadata.id, metadata.version)
}

/// Reads and validates `root/plugin.json`.
pub fn read_metadata(root: &Path) -> Result<PluginMetadata, PackError> {
    let path = root.join(METADATA_PATH);
    let bytes = std::fs::read(&path).map_err(|source| PackError::Metadata { path: path.clone(), source })?;
    validate::plugin_metadata_bytes(&bytes).map_err(|problems| PackError::Problems {
        root: root.to_owned(),
        problems: Problems(problems.0.into_iter().map(|p| p.in_file(METADATA_PATH)).collect()),
    })
}

/// Packs the tree at `root` into `out` (replaced atomically; nothing is written on error).
pub fn pack_dir(root: &Path, out: &Path) -> Result<Packed, PackError> {
    pack_dir_with_limits(root, out, &Limits::default())
}

/// Like [`pack_dir`], refusing trees over `limits` (those the client would refuse).
pub fn pack_dir_with_limits(root: &Path, out: &Path, limits: &Limits) -> Result<Packed, PackError> {
    if !root.is_dir() {
        return Err(PackError::NotADirectory(root.to_owned()));
    }
    let metadata = read_metadata(root)?;
    let mut scan = source_tree::scan(root)?;
    let over_limits = scan.limit_problems(limits);
    scan.problems.extend(over_limits);
    if !scan.problems.is_empty() {
        return Err(PackError::Problems { root: root.to_owned(), problems: Problems(scan.problems) });
    }

    let out_dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(out_dir).map_err(|source| PackError::Io {
        action: "creating",
        path: out_dir.to_owned(),
        source,
    })?;
    let temp = trellis_client::fs::temp_builder(".trellis-pack-")
        .tempfile_in(out_dir)
        .map_err(|source| PackError::Io { action: "creating a temp file in", path: out_dir.to_owned(), source })?;
    let zip_err = |source| PackError::Zip { path: out.to_owned(), source };

    let mut zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, temp.as_file()));
    let mut entries = Vec::with_capacity(scan.files.len());
    let mut heads = BTreeMap::new();
    let mut buffer = vec![0u8; 1 << 16];
    for file in &scan.files {
        let io_err = |action| {
            let path = file.disk_path.clone();
            move |source| PackError::Io { action, path, source }
        };
        let mut source = File::open(&file.disk_path).map_err(io_err("opening"))?;
        let sample = read_sample(&mut source).map_err(io_err("reading"))?;
        zip.start_file(file.package_path.as_str(), entry_options(&file.package_path, &sample)).map_err(zip_err)?;
        let (digest, size, head) =
            copy_hashing(&sample, &mut source, &mut zip, &mut buffer).map_err(io_err("packing"))?;
        let executable = is_executable(&file.package_path);
        entries.push(FileEntry { path: file.package_path.clone(), size, sha256: digest, executable });
        heads.insert(file.package_path.clone(), PackageFile { size, head });
    }

    let problems: Vec<Problem> = validate::package_contents(&metadata, &heads);
    let (errors, warnings): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| p.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(PackError::Problems { root: root.to_owned(), problems: Problems(errors) });
    }

    let manifest = ContentManifest {
        format: ManifestFormat::CURRENT,
        plugin_id: metadata.id.clone(),
        version: metadata.version.clone(),
        files: entries,
    };
    let manifest_json = content_manifest_bytes(&manifest);
    zip.start_file(CONTENT_MANIFEST_PATH, entry_options(CONTENT_MANIFEST_PATH, &manifest_json)).map_err(zip_err)?;
    zip.write_all(&manifest_json).map_err(|source| PackError::Io {
        action: "writing",
        path: out.to_owned(),
        source,
    })?;
    let mut writer = zip.finish().map_err(zip_err)?;
    writer.flush().map_err(|source| PackError::Io { action: "writing", path: out.to_owned(), source })?;
    drop(writer);

    let mut file = temp.as_file();
    file.sync_all().map_err(|source| PackError::Io { action: "syncing", path: temp.path().to_owned(), source })?;
    file.rewind().map_err(|source| PackError::Io { action: "reading back", path: temp.path().to_owned(), source })?;
    let mut hasher = Hasher::new();
    io::copy(&mut file, &mut hasher).map_err(|source| PackError::Io {
        action: "reading back",
        path: temp.path().to_owned(),
        source,
    })?;
    let digest = PackageDigest { size: hasher.len(), sha256: hasher.finish() };
    temp.persist(out).map_err(|e| PackError::Io {
        action: "renaming into place",
        path: out.to_owned(),
        source: e.error,
    })?;
    Ok(Packed { path: out.to_owned(), digest, manifest, metadata, warnings })
}

/// The exact bytes of a content manifest inside a package.
pub fn content_manifest_bytes(manifest: &ContentManifest) -> Vec<u8> {
    // Pretty, for people who unzip a package; deterministic because the type has a
    // fixed field order and the files are sorted.
    let mut bytes = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The mode `pack` gives a file, recorded in the content manifest (and so signed) and
/// written as the ZIP entry's Unix mode: executable under `bin/` (where the binaries
/// per platform live), not elsewhere. It depends on the path only, so a package packed
/// on Windows (no executable bit) is the same as one packed on Unix.
pub fn is_executable(package_path: &str) -> bool {
    package_path.starts_with("bin/")
}

/// Whether deflating is worth it: known compressed formats are stored, and so is any
/// file whose first [`SAMPLE_LEN`] bytes do not shrink by at least a tenth at a fast
/// setting (random data, encrypted blobs, packed executables). The decision depends only
/// on the path and the content, so packing stays deterministic.
fn entry_options(path: &str, sample: &[u8]) -> SimpleFileOptions {
    let extension = path.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    let options = SimpleFileOptions::default()
        .last_modified_time(DateTime::default())
        .unix_permissions(if is_executable(path) { 0o755 } else { 0o644 });
    if STORED_EXTENSIONS.contains(&extension.as_str()) || !compresses(sample) {
        options.compression_method(CompressionMethod::Stored)
    } else {
        options.compression_method(CompressionMethod::Deflated).compression_level(Some(DEFLATE_LEVEL))
    }
}

fn compresses(sample: &[u8]) -> bool {
    if sample.len() < 512 {
        return true;
    }
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::with_capacity(sample.len()), flate2::Compression::fast());
    let compressed = encoder.write_all(sample).and_then(|()| encoder.finish()).map(|out| out.len());
    compressed.is_ok_and(|len| len * 10 < sample.len() * 9)
}

/// Reads up to [`SAMPLE_LEN`] bytes from the start of a file.
fn read_sample(file: &mut File) -> io::Result<Vec<u8>> {
    let mut sample = Vec::with_capacity(SAMPLE_LEN);
    Read::by_ref(file).take(SAMPLE_LEN as u64).read_to_end(&mut sample)?;
    Ok(sample)
}

/// Writes `sample` and then the rest of `file` to `out`, hashing everything.
fn copy_hashing(
    sample: &[u8],
    file: &mut File,
    out: &mut impl Write,
    buffer: &mut [u8],
) -> io::Result<(Sha256, u64, Vec<u8>)> {
    let mut hasher = Hasher::new();
    hasher.update(sample);
    out.write_all(sample)?;
    let head = sample[..sample.len().min(HEAD_LEN)].to_vec();
    loop {
        let n = file.read(buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
    }
    let size = hasher.len();
    Ok((hasher.finish(), size, head))
}
