//! Resource limits for opening a package.

/// The most a package may cost to open and extract. Checked on declared sizes before
/// anything is inflated, and again on the bytes actually inflated while streaming.
///
/// The defaults suit desktop plugins (binaries for a few platforms, icons, docs):
///
/// | limit | default |
/// |---|---|
/// | [`max_package_size`](Self::max_package_size) | 1 GiB |
/// | [`max_entries`](Self::max_entries) | 10 000 |
/// | [`max_file_size`](Self::max_file_size) | 512 MiB |
/// | [`max_total_size`](Self::max_total_size) | 2 GiB |
/// | [`max_compression_ratio`](Self::max_compression_ratio) | 250 : 1 |
/// | [`ratio_check_floor`](Self::ratio_check_floor) | 1 MiB |
/// | [`max_manifest_size`](Self::max_manifest_size) | 8 MiB |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest package (the ZIP blob) accepted, in bytes.
    pub max_package_size: u64,
    /// Most entries (files and directories) in one package. Also bounds the central
    /// directory, the one part of a package held in memory while it is open: at most
    /// this many times [`MAX_DIRECTORY_RECORD`](super::archive::MAX_DIRECTORY_RECORD)
    /// bytes (10 MiB by default).
    pub max_entries: usize,
    /// Largest single file once inflated, in bytes.
    pub max_file_size: u64,
    /// Largest sum of all files once inflated, in bytes.
    pub max_total_size: u64,
    /// Highest inflated-to-compressed ratio of one entry. Deflate tops out near
    /// 1032 : 1; real files rarely pass 20 : 1.
    pub max_compression_ratio: u64,
    /// Entries that inflate to at most this many bytes are exempt from the ratio
    /// limit: a small file of zeros compresses far better than 250 : 1 and harms nobody.
    pub ratio_check_floor: u64,
    /// Largest `trellis-manifest.json` or `plugin.json` read into memory, in bytes.
    pub max_manifest_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        const MIB: u64 = 1 << 20;
        Self {
            max_package_size: 1024 * MIB,
            max_entries: 10_000,
            max_file_size: 512 * MIB,
            max_total_size: 2048 * MIB,
            max_compression_ratio: 250,
            ratio_check_floor: MIB,
            max_manifest_size: 8 * MIB,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_package_size`].
    #[must_use]
    pub fn with_max_package_size(self, bytes: u64) -> Self {
        Self { max_package_size: bytes, ..self }
    }

    /// Sets [`Limits::max_entries`].
    #[must_use]
    pub fn with_max_entries(self, entries: usize) -> Self {
        Self { max_entries: entries, ..self }
    }

    /// Sets [`Limits::max_file_size`].
    #[must_use]
    pub fn with_max_file_size(self, bytes: u64) -> Self {
        Self { max_file_size: bytes, ..self }
    }

    /// Sets [`Limits::max_total_size`].
    #[must_use]
    pub fn with_max_total_size(self, bytes: u64) -> Self {
        Self { max_total_size: bytes, ..self }
    }

    /// Sets [`Limits::max_compression_ratio`].
    #[must_use]
    pub fn with_max_compression_ratio(self, ratio: u64) -> Self {
        Self { max_compression_ratio: ratio, ..self }
    }

    /// Sets [`Limits::ratio_check_floor`].
    #[must_use]
    pub fn with_ratio_check_floor(self, bytes: u64) -> Self {
        Self { ratio_check_floor: bytes, ..self }
    }

    /// Sets [`Limits::max_manifest_size`].
    #[must_use]
    pub fn with_max_manifest_size(self, bytes: u64) -> Self {
        Self { max_manifest_size: bytes, ..self }
    }
}
