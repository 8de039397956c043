//! CIFAR-10 in its official binary layout: `torchvision.datasets.CIFAR10` for Rust.
//!
//! Reads `cifar-10-binary.tar.gz` by streaming it (nothing is extracted to disk) or an
//! extracted `cifar-10-batches-bin/` folder. A record is 1 label byte followed by 1,024 red,
//! 1,024 green and 1,024 blue bytes (32x32, row-major), i.e. already CHW.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::dataset::{ImageDataset, ImageShape};
use crate::download::Download;
use crate::error::{DataError, Result};

/// Bytes in one CIFAR-10 record: one label byte and 3,072 pixel bytes.
pub const RECORD_BYTES: usize = 1 + 3 * 32 * 32;

/// The ten CIFAR-10 class names, in label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The folder name inside the official archive.
pub const FOLDER: &str = "cifar-10-batches-bin";

/// File names of the five training batches, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// File name of the test batch.
pub const TEST_FILE: &str = "test_batch.bin";

/// File name of the class-name list.
pub const META_FILE: &str = "batches.meta.txt";

/// Which half of CIFAR-10 (`train=True` / `train=False` in torchvision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The 50,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

/// Both splits of CIFAR-10, each one contiguous buffer.
#[derive(Clone, Debug)]
pub struct Cifar10 {
    /// The 50,000 training images (`data_batch_1` … `data_batch_5`, in order).
    pub train: ImageDataset,
    /// The 10,000 test images (`test_batch`).
    pub test: ImageDataset,
}

impl Cifar10 {
    /// Reads an archive (`.tar.gz`) or an extracted folder, whichever `path` is.
    ///
    /// A folder may be `cifar-10-batches-bin/` itself or the folder that contains it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        if meta.is_dir() {
            Self::from_dir(path)
        } else {
            Self::from_archive(path)
        }
    }

    /// Reads the official `cifar-10-binary.tar.gz`, streaming it through gzip and tar.
    pub fn from_archive(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Self::from_archive_reader(path, BufReader::with_capacity(1 << 20, file))
    }

    /// Reads an extracted `cifar-10-batches-bin/` folder (or the folder that contains it).
    pub fn from_dir(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let dir = if path.join(FOLDER).is_dir() {
            path.join(FOLDER)
        } else {
            path.to_path_buf()
        };
        let mut members = Members::default();
        for (slot, name) in members.names() {
            let file = dir.join(name);
            let bytes = std::fs::read(&file).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DataError::MissingMember {
                    path: dir.clone(),
                    member: name.to_string(),
                },
                _ => DataError::io(&file, e),
            })?;
            members.set(slot, file, bytes);
        }
        members.assemble(&dir)
    }

    /// Downloads the official archive into `root` unless a verified copy is there, then reads it.
    ///
    /// Like `torchvision.datasets.CIFAR10(root, download=True)`.
    pub fn download(root: impl AsRef<Path>) -> Result<Self> {
        let archive = Download::cifar10().fetch(root.as_ref())?;
        Self::from_archive(archive)
    }

    /// The split asked for.
    pub fn split(&self, split: Split) -> &ImageDataset {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Class names, from `batches.meta.txt`.
    pub fn classes(&self) -> &[String] {
        self.train.classes()
    }

    fn from_archive_reader(path: &Path, reader: impl Read) -> Result<Self> {
        let corrupt = |e: std::io::Error| DataError::CorruptArchive {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut archive = tar::Archive::new(GzDecoder::new(reader));
        let mut members = Members::default();
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let member_path = entry.path().map_err(corrupt)?.into_owned();
            let Some(slot) = member_path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Members::slot_of)
            else {
                continue;
            };
            let size = entry.size();
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry.read_to_end(&mut bytes).map_err(corrupt)?;
            let label = path.join(&member_path);
            if members.is_set(slot) {
                return Err(DataError::CorruptArchive {
                    path: path.to_path_buf(),
                    reason: format!("member `{}` appears twice", member_path.display()),
                });
            }
            members.set(slot, label, bytes);
        }
        // Read to the end so a damaged gzip trailer (CRC, length) is noticed.
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(corrupt)?;
        members.assemble(path)
    }
}

/// The seven member files, gathered in any order, then checked and assembled.
#[derive(Default)]
struct Members {
    // 0..5 train batches, 5 test batch, 6 meta.
    files: [Option<(PathBuf, Vec<u8>)>; 7],
}

impl Members {
    fn names(&self) -> impl Iterator<Item = (usize, &'static str)> + use<> {
        TRAIN_FILES
            .into_iter()
            .chain([TEST_FILE, META_FILE])
            .enumerate()
    }

    fn slot_of(name: &str) -> Option<usize> {
        TRAIN_FILES
            .iter()
            .chain([TEST_FILE, META_FILE].iter())
            .position(|&n| n == name)
    }

    fn is_set(&self, slot: usize) -> bool {
        self.files[slot].is_some()
    }

    fn set(&mut self, slot: usize, path: PathBuf, bytes: Vec<u8>) {
        self.files[slot] = Some((path, bytes));
    }

    fn assemble(mut self, source: &Path) -> Result<Cifar10> {
        let mut take = |slot: usize| -> Result<(PathBuf, Vec<u8>)> {
            self.files[slot]
                .take()
                .ok_or_else(|| DataError::MissingMember {
                    path: source.to_path_buf(),
                    member: format!("{FOLDER}/{}", Self::name_of(slot)),
                })
        };
        let (meta_path, meta) = take(6)?;
        let classes = parse_class_names(&meta_path, &meta)?;
        let mut train_parts = Vec::with_capacity(5);
        for slot in 0..5 {
            train_parts.push(take(slot)?);
        }
        let test_part = take(5)?;
        let train = parse_batches(&train_parts, &classes)?;
        let test = parse_batches(std::slice::from_ref(&test_part), &classes)?;
        Ok(Cifar10 { train, test })
    }

    fn name_of(slot: usize) -> &'static str {
        match slot {
            0..5 => TRAIN_FILES[slot],
            5 => TEST_FILE,
            _ => META_FILE,
        }
    }
}

/// Parses `batches.meta.txt`: one class name a line, blank lines ignored, exactly ten names.
pub fn parse_class_names(path: &Path, bytes: &[u8]) -> Result<Vec<String>> {
    let text = String::from_utf8_lossy(bytes);
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != CLASSES.len() {
        return Err(DataError::ClassNames {
            path: path.to_path_buf(),
            expected: CLASSES.len(),
            found: names.len(),
        });
    }
    Ok(names)
}

/// Parses one or more CIFAR-10 batch files (`(path, bytes)`, in order) into one dataset.
///
/// Each file must be a whole number of 3,073-byte records and every label must name a class.
pub fn parse_batches(parts: &[(PathBuf, Vec<u8>)], classes: &[String]) -> Result<ImageDataset> {
    let shape = ImageShape::CIFAR;
    let image_bytes = shape.numel();
    let mut total = 0usize;
    for (path, bytes) in parts {
        if bytes.len() % RECORD_BYTES != 0 {
            return Err(DataError::TruncatedRecords {
                path: path.clone(),
                len: bytes.len() as u64,
                record: RECORD_BYTES,
            });
        }
        total += bytes.len() / RECORD_BYTES;
    }
    let mut pixels = vec![0u8; total * image_bytes];
    let mut labels = Vec::with_capacity(total);
    let mut out = pixels.chunks_exact_mut(image_bytes);
    for (path, bytes) in parts {
        for (record, (chunk, dst)) in bytes
            .chunks_exact(RECORD_BYTES)
            .zip(out.by_ref())
            .enumerate()
        {
            let label = chunk[0];
            if usize::from(label) >= classes.len() {
                return Err(DataError::BadLabel {
                    path: path.clone(),
                    record,
                    label,
                    classes: classes.len(),
                });
            }
            labels.push(u16::from(label));
            dst.copy_from_slice(&chunk[1..]);
        }
    }
    ImageDataset::new(pixels, labels, shape, classes.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        CLASSES.iter().map(|s| s.to_string()).collect()
    }

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD_BYTES];
        r[0] = label;
        r
    }

    #[test]
    fn parses_records_in_order() {
        let a: Vec<u8> = [record(3, 7), record(9, 8)].concat();
        let b = record(0, 9);
        let ds = parse_batches(
            &[(PathBuf::from("a"), a), (PathBuf::from("b"), b)],
            &classes(),
        )
        .unwrap();
        assert_eq!(ds.labels(), &[3, 9, 0]);
        assert!(ds.image(1).unwrap().iter().all(|&p| p == 8));
        assert_eq!(ds.pixels().len(), 3 * 3072);
    }

    #[test]
    fn rejects_partial_record() {
        let mut a = record(1, 0);
        a.pop();
        let err = parse_batches(&[(PathBuf::from("x.bin"), a)], &classes()).unwrap_err();
        assert!(
            matches!(err, DataError::TruncatedRecords { len: 3072, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("x.bin"));
    }

    #[test]
    fn rejects_label_over_nine() {
        let a = [record(1, 0), record(10, 0)].concat();
        let err = parse_batches(&[(PathBuf::from("x.bin"), a)], &classes()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadLabel {
                    record: 1,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn class_names_need_ten_lines() {
        let ok = parse_class_names(Path::new("m"), CLASSES.join("\n").as_bytes()).unwrap();
        assert_eq!(ok[9], "truck");
        let with_blanks = format!("{}\n\n\n", CLASSES.join("\r\n"));
        assert_eq!(
            parse_class_names(Path::new("m"), with_blanks.as_bytes())
                .unwrap()
                .len(),
            10
        );
        let err = parse_class_names(Path::new("m.txt"), b"cat\ndog\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::ClassNames {
                expected: 10,
                found: 2,
                ..
            }
        ));
    }
}
