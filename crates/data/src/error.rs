//! The one error type of `torchlet-data`.

use std::path::PathBuf;

/// Everything that can go wrong while reading, downloading or loading image data.
///
/// Every variant names the file (or URL) involved and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// The gzip stream or the tar structure of an archive is damaged.
    #[error("{path}: corrupt archive: {reason}")]
    CorruptArchive {
        /// The archive.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },

    /// A file the dataset needs is not in the archive or folder.
    #[error("{path}: missing `{member}`")]
    MissingMember {
        /// The archive or folder that was searched.
        path: PathBuf,
        /// The member that was not found.
        member: String,
    },

    /// A CIFAR-10 batch file whose size is not a whole number of 3,073-byte records.
    #[error("{path}: {len} bytes is not a multiple of the {record}-byte CIFAR-10 record")]
    TruncatedRecords {
        /// The batch file (or archive member).
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
        /// The record size (3,073).
        record: usize,
    },

    /// A record whose label byte is not a valid class index.
    #[error("{path}: record {record} has label {label}, but there are only {classes} classes")]
    BadLabel {
        /// The batch file (or archive member).
        path: PathBuf,
        /// Zero-based index of the record in that file.
        record: usize,
        /// The label byte found.
        label: u8,
        /// The number of classes.
        classes: usize,
    },

    /// A class-name file with the wrong number of names.
    #[error("{path}: expected {expected} class names, found {found}")]
    ClassNames {
        /// The class-name file.
        path: PathBuf,
        /// How many names the dataset has.
        expected: usize,
        /// How many non-empty lines were found.
        found: usize,
    },

    /// A download failed (connection, HTTP status, or the body ended early).
    #[error("downloading {url}: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A downloaded or cached file does not have the expected size or checksum.
    #[error("{path}: {what} is {actual}, expected {expected}")]
    Checksum {
        /// The file that was checked.
        path: PathBuf,
        /// `"md5"` or `"size"`.
        what: &'static str,
        /// The expected value.
        expected: String,
        /// The value found.
        actual: String,
    },

    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    ImageDecode {
        /// The image file.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },

    /// An image file whose header claims more pixels than the limit
    /// (`ImageFolder::max_pixels`).
    #[error(
        "{path}: image claims {width}x{height} (width x height) pixels, over the limit of \
         {limit} pixels per image; raise it with ImageFolder::max_pixels if the file is trusted"
    )]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Width its header claims.
        width: u32,
        /// Height its header claims.
        height: u32,
        /// The limit, in pixels.
        limit: u64,
    },

    /// An image whose size differs from the first image of its folder (and no resize was
    /// asked for).
    #[error(
        "{path}: image is {found_w}x{found_h} (width x height), but the first image, {first}, \
         is {expected_w}x{expected_h}; resize them to one size to load images of mixed sizes"
    )]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// Width found.
        found_w: u32,
        /// Height found.
        found_h: u32,
        /// Width expected.
        expected_w: u32,
        /// Height expected.
        expected_h: u32,
        /// The file whose size is expected: the folder's first image.
        first: PathBuf,
    },

    /// A per-channel step (`Normalize`) with another number of channels than the images.
    #[error(
        "{step} has {step_channels} channel(s) but the images have {image_channels}: \
         give one mean and one std per image channel"
    )]
    ChannelMismatch {
        /// The step, e.g. `"Normalize"`.
        step: &'static str,
        /// Channels the step has values for.
        step_channels: usize,
        /// Channels of the images.
        image_channels: usize,
    },

    /// A dataset with no items, or a folder with no classes.
    #[error("{path}: {reason}")]
    Empty {
        /// The folder or file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },

    /// A transform or loader setting that cannot work.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),

    /// An index past the end of a dataset.
    #[error("index {index} is out of range for a dataset of {len} items")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },

    /// A loader worker thread stopped unexpectedly.
    #[error("data loader worker failed: {0}")]
    Worker(String),
}

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for `Result<T, DataError>`.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
