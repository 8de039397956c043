//! A TensorBoard event-file writer and reader for scalar summaries.
//!
//! Event files are a sequence of TFRecord-framed `tensorflow.Event` protocol buffers
//! (`record.rs` frames them, with the masked CRC-32C no maintained crate provides). The
//! messages are `prost` structs ([`proto`]); the reader lets `prost` skip any field it does
//! not know, so it also extracts `simple_value` scalars from files written by other tools.
//!
//! The writer appends each record to the file with a single write as soon as it is added,
//! so TensorBoard can follow a run while it trains.

pub mod proto;
mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use proto::{Event, Kind, SessionLog, Summary, Value, What};
/// The `file_version` TensorBoard expects in the first event of a file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Errors raised while writing or reading TensorBoard event files.
#[derive(Debug, thiserror::Error)]
pub enum TensorBoardError {
    /// Creating the log directory failed.
    #[error("cannot create TensorBoard log directory {path}: {source}")]
    CreateDir {
        /// The log directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Opening, writing, syncing or reading an event file failed.
    #[error("I/O error on TensorBoard event file {path}: {source}")]
    Io {
        /// The event file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file ends in the middle of a record.
    #[error(
        "TensorBoard event file {path} is truncated: the record at byte {offset} needs {needed} bytes but only {available} remain"
    )]
    Truncated {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the start of the incomplete record.
        offset: u64,
        /// Bytes needed to complete the part of the record being read.
        needed: u64,
        /// Bytes left in the file from the record start.
        available: u64,
    },
    /// A stored CRC does not match the record's contents.
    #[error(
        "TensorBoard event file {path}: CRC mismatch in the {part} of the record at byte {offset} (stored {stored:#010x}, computed {computed:#010x})"
    )]
    CrcMismatch {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the start of the corrupt record.
        offset: u64,
        /// Which checksum failed: `"length"` or `"data"`.
        part: &'static str,
        /// The masked CRC stored in the file.
        stored: u32,
        /// The masked CRC computed from the bytes read.
        computed: u32,
    },
    /// A record's data is not a valid `Event` protocol buffer.
    #[error(
        "TensorBoard event file {path}: malformed event in the record at byte {offset}: {reason}"
    )]
    Malformed {
        /// The event file.
        path: PathBuf,
        /// Byte offset of the start of the record.
        offset: u64,
        /// What is wrong with the encoding.
        reason: String,
    },
}

/// One scalar value read back from an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarEvent {
    /// The summary tag, e.g. `"loss/train"`.
    pub tag: String,
    /// The global step the value was recorded at.
    pub step: i64,
    /// The scalar value.
    pub value: f32,
    /// Seconds since the Unix epoch when the event was written.
    pub wall_time: f64,
}

/// Writes scalar summaries to a TensorBoard event file.
#[derive(Debug)]
pub struct SummaryWriter {
    path: PathBuf,
    file: File,
}

impl SummaryWriter {
    /// Creates `log_dir` if needed and starts a new event file in it.
    ///
    /// The file is named
    /// `events.out.tfevents.<unix-secs>.<hostname>.<pid>.torchlet`; if such a
    /// file already exists a counter is added before `.torchlet`.
    pub fn new(log_dir: impl AsRef<Path>) -> Result<Self, TensorBoardError> {
        let log_dir = log_dir.as_ref();
        fs::create_dir_all(log_dir).map_err(|source| TensorBoardError::CreateDir {
            path: log_dir.to_path_buf(),
            source,
        })?;
        let now = wall_time();
        let base = format!(
            "events.out.tfevents.{}.{}.{}",
            now.floor() as u64,
            hostname(),
            std::process::id()
        );
        let mut attempt = 0u32;
        let (path, file) = loop {
            let name = if attempt == 0 {
                format!("{base}.torchlet")
            } else {
                format!("{base}.{attempt}.torchlet")
            };
            let path = log_dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1;
                }
                Err(source) => return Err(TensorBoardError::Io { path, source }),
            }
        };
        let mut writer = Self { path, file };
        writer.write_event(&event(now, 0, What::FileVersion(FILE_VERSION.to_string())))?;
        tracing::debug!(path = %writer.path.display(), "created TensorBoard event file");
        Ok(writer)
    }

    /// The path of the event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a scalar summary `tag = value` at `step`.
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<(), TensorBoardError> {
        self.write_event(&event(wall_time(), step, scalar_summary(tag, value)))
    }

    /// Marks a restart at `step`, as PyTorch's `SummaryWriter(purge_step=step)` does.
    ///
    /// Writes an event holding `SessionLog { status: START }` at `step`: when TensorBoard
    /// reads it, it drops every event of earlier files in the run whose step is `>= step`
    /// (the steps a crashed run logged after its last checkpoint), so a resumed run's curve
    /// shows each step once.
    pub fn purge_from(&mut self, step: i64) -> Result<(), TensorBoardError> {
        self.write_event(&event(wall_time(), step, session_start()))
    }

    /// Flushes written records to stable storage (`fsync`).
    ///
    /// Records are already visible to readers as soon as they are added; this
    /// only makes them durable across a crash of the machine.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.file
            .flush()
            .and_then(|()| self.file.sync_data())
            .map_err(|source| TensorBoardError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn write_event(&mut self, event: &Event) -> Result<(), TensorBoardError> {
        let record = record::frame(&event.encode_to_vec());
        self.file
            .write_all(&record)
            .map_err(|source| TensorBoardError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads every `simple_value` scalar from an event file, verifying all CRCs.
pub fn read_scalars(path: impl AsRef<Path>) -> Result<Vec<ScalarEvent>, TensorBoardError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| TensorBoardError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut scalars = Vec::new();
    for (offset, data) in record::split(path, &bytes)? {
        let event = Event::decode(data).map_err(|e| TensorBoardError::Malformed {
            path: path.to_path_buf(),
            offset,
            reason: e.to_string(),
        })?;
        let Some(What::Summary(summary)) = event.what else {
            continue;
        };
        for value in summary.value {
            if let Some(Kind::SimpleValue(v)) = value.kind {
                scalars.push(ScalarEvent {
                    tag: value.tag,
                    step: event.step,
                    value: v,
                    wall_time: event.wall_time,
                });
            }
        }
    }
    Ok(scalars)
}

fn event(wall_time: f64, step: i64, what: What) -> Event {
    Event {
        wall_time,
        step,
        what: Some(what),
    }
}

/// `Summary { value: [Value { tag, simple_value }] }`.
fn scalar_summary(tag: &str, value: f32) -> What {
    What::Summary(Summary {
        value: vec![Value {
            tag: tag.to_string(),
            kind: Some(Kind::SimpleValue(value)),
        }],
    })
}

/// `SessionLog { status: START }`.
fn session_start() -> What {
    What::SessionLog(SessionLog {
        status: proto::SESSION_START,
    })
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn hostname() -> String {
    let raw = fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn only_event_file(dir: &Path) -> PathBuf {
        let files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.into_iter().next().unwrap()
    }

    /// Values that are not exactly representable in decimal, extremes, and a
    /// step that goes back (`accuracy/test` at step 1 after `loss/train` at
    /// step 3) as when test metrics are logged per epoch.
    fn sample_scalars() -> Vec<(&'static str, i64, f32)> {
        vec![
            ("loss/train", 1, std::f32::consts::LN_10),
            ("loss/train", 2, 0.1),
            ("loss/train", 3, 0.0),
            ("accuracy/test", 1, -1.5),
            ("accuracy/test", 1 << 40, 1.0e-30),
            ("lr", 7, f32::MAX),
            ("lr", 8, f32::MIN_POSITIVE / 8.0),
        ]
    }

    #[test]
    fn session_start_matches_protobuf() {
        // from tensorboard.compat.proto import event_pb2
        // e = event_pb2.Event(wall_time=1.5, step=300,
        //         session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
        // list(e.SerializeToString())
        let expected = [9u8, 0, 0, 0, 0, 0, 0, 248, 63, 16, 172, 2, 58, 2, 8, 1];
        assert_eq!(event(1.5, 300, session_start()).encode_to_vec(), expected);
    }

    #[test]
    fn masked_crc_matches_known_vector() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xa282ead8 (mod 2^32).
        assert_eq!(record::masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    // Reference records: serialised with TensorBoard's protobuf classes
    // (tensorboard.compat.proto.event_pb2) and framed by its `RecordWriter`
    // (tensorboard.summary.writer.record_writer).
    const GOLDEN_HEADER_RECORD: &[u8] = &[
        0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa3, 0x7f, 0x4b, 0x22, 0x09, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f, 0x1a, 0x0d, 0x62, 0x72, 0x61, 0x69, 0x6e, 0x2e, 0x45,
        0x76, 0x65, 0x6e, 0x74, 0x3a, 0x32, 0x2a, 0x28, 0x64, 0x6c,
    ];
    const GOLDEN_SCALAR_RECORD: &[u8] = &[
        0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1a, 0x0d, 0x9e, 0x13, 0x09, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x10, 0xac, 0x02, 0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04,
        0x6c, 0x6f, 0x73, 0x73, 0x15, 0x00, 0x00, 0x80, 0x3e, 0x2f, 0xb3, 0xdf, 0xf0,
    ];
    const GOLDEN_NEGATIVE_STEP_RECORD: &[u8] = &[
        0x19, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8b, 0xf1, 0x08, 0x28, 0x10, 0xfe, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x2a, 0x0c, 0x0a, 0x0a, 0x0a, 0x03, 0x6e,
        0x65, 0x67, 0x15, 0x00, 0x00, 0x40, 0xc0, 0xeb, 0x94, 0x2c, 0x6a,
    ];

    #[test]
    fn event_encoding_matches_reference_bytes() {
        let framed = |e: Event| record::frame(&e.encode_to_vec());
        let header = framed(event(1.5, 0, What::FileVersion(FILE_VERSION.to_string())));
        assert_eq!(header, GOLDEN_HEADER_RECORD);
        let scalar = framed(event(2.0, 300, scalar_summary("loss", 0.25)));
        assert_eq!(scalar, GOLDEN_SCALAR_RECORD);
        let negative_step = framed(event(0.0, -2, scalar_summary("neg", -3.0)));
        assert_eq!(negative_step, GOLDEN_NEGATIVE_STEP_RECORD);
    }

    #[test]
    fn write_then_read_back_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("runs").join("exp1");
        let before = wall_time();
        let mut writer = SummaryWriter::new(&log_dir).unwrap();
        for (tag, step, value) in sample_scalars() {
            writer.add_scalar(tag, value, step).unwrap();
        }
        writer.flush().unwrap();
        let after = wall_time();

        let path = only_event_file(&log_dir);
        assert_eq!(path, writer.path());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert!(
            name.ends_with(&format!(".{}.torchlet", std::process::id())),
            "{name}"
        );

        // The first record is the file-version event.
        let bytes = fs::read(&path).unwrap();
        let records = record::split(&path, &bytes).unwrap();
        assert_eq!(records.len(), 1 + sample_scalars().len());
        let first = Event::decode(records[0].1).unwrap();
        assert_eq!(first.what, Some(What::FileVersion("brain.Event:2".into())));

        let read = read_scalars(&path).unwrap();
        assert_eq!(read.len(), sample_scalars().len());
        for (got, (tag, step, value)) in read.iter().zip(sample_scalars()) {
            assert_eq!(got.tag, tag);
            assert_eq!(got.step, step);
            assert_eq!(got.value.to_bits(), value.to_bits());
            assert!(got.wall_time >= before.floor() && got.wall_time <= after + 1.0);
        }
    }

    #[test]
    fn nan_and_negative_step_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SummaryWriter::new(dir.path()).unwrap();
        writer.add_scalar("x", f32::NAN, -5).unwrap();
        writer.add_scalar("y", f32::NEG_INFINITY, 0).unwrap();
        let read = read_scalars(writer.path()).unwrap();
        assert_eq!(read.len(), 2);
        assert!(read[0].value.is_nan());
        assert_eq!(read[0].step, -5);
        assert_eq!(read[1].value, f32::NEG_INFINITY);
        assert_eq!(read[1].step, 0);
    }

    #[test]
    fn two_writers_in_one_directory_get_distinct_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = SummaryWriter::new(dir.path()).unwrap();
        let b = SummaryWriter::new(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(b.path().to_str().unwrap().contains("tfevents"));
    }

    #[test]
    fn flipped_data_byte_is_a_crc_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SummaryWriter::new(dir.path()).unwrap();
        writer.add_scalar("loss", 1.0, 1).unwrap();
        writer.add_scalar("loss", 2.0, 2).unwrap();
        let path = writer.path().to_path_buf();
        let mut bytes = fs::read(&path).unwrap();
        let records = record::split(&path, &bytes).unwrap();
        let third = records[2].0 as usize;
        // Flip a bit inside the data of the third record.
        bytes[third + 14] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = read_scalars(&path).unwrap_err();
        match &err {
            TensorBoardError::CrcMismatch { offset, part, .. } => {
                assert_eq!(*offset, third as u64);
                assert_eq!(*part, "data");
            }
            other => panic!("unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(path.to_str().unwrap()), "{msg}");
        assert!(msg.contains(&format!("byte {third}")), "{msg}");
    }

    #[test]
    fn flipped_length_byte_is_a_crc_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SummaryWriter::new(dir.path()).unwrap();
        writer.add_scalar("loss", 1.0, 1).unwrap();
        let path = writer.path().to_path_buf();
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 0x02;
        fs::write(&path, &bytes).unwrap();
        let err = read_scalars(&path).unwrap_err();
        assert!(
            matches!(
                err,
                TensorBoardError::CrcMismatch {
                    offset: 0,
                    part: "length",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SummaryWriter::new(dir.path()).unwrap();
        writer.add_scalar("loss", 1.0, 1).unwrap();
        let path = writer.path().to_path_buf();
        let bytes = fs::read(&path).unwrap();
        let records = record::split(&path, &bytes).unwrap();
        let last = records[1].0;
        let full = bytes.len() as u64;
        // Cut inside the data and inside the header of the last record.
        for cut in [full - 1, last + 5] {
            fs::write(&path, &bytes[..cut as usize]).unwrap();
            let err = read_scalars(&path).unwrap_err();
            match &err {
                TensorBoardError::Truncated {
                    offset, available, ..
                } => {
                    assert_eq!(*offset, last);
                    assert_eq!(*available, cut - last);
                }
                other => panic!("unexpected error {other:?}"),
            }
            assert!(err.to_string().contains("truncated"));
        }
        // Cutting exactly at a record boundary leaves a valid file.
        fs::write(&path, &bytes[..last as usize]).unwrap();
        assert!(read_scalars(&path).unwrap().is_empty());
    }

    #[test]
    fn malformed_protobuf_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.bad");
        // A length-delimited field claiming 100 bytes with only 1 present.
        fs::write(&path, record::frame(&[0x2a, 100, 0])).unwrap();
        let err = read_scalars(&path).unwrap_err();
        assert!(
            matches!(err, TensorBoardError::Malformed { offset: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // Event with an unknown varint (field 4), an unknown fixed32 (field 15) and an
        // unknown nested message inside Summary.Value (field 9 = metadata), written by hand.
        let value = [
            &[0x4a, 5, 0x0a, 3, b'a', b'b', b'c', 0x0a, 1, b't', 0x15][..],
            &4.5f32.to_le_bytes(),
        ]
        .concat();
        let summary = [&[0x0a, value.len() as u8][..], &value].concat();
        let mut bytes = Event {
            wall_time: 3.0,
            step: 9,
            what: None,
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x2a, summary.len() as u8]);
        bytes.extend_from_slice(&summary);
        bytes.extend_from_slice(&[0x20, 0xb9, 0x60, 0x7d, 1, 2, 3, 4]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.other");
        fs::write(&path, record::frame(&bytes)).unwrap();
        let read = read_scalars(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].tag.as_str(), read[0].step), ("t", 9));
        assert_eq!((read[0].value, read[0].wall_time), (4.5, 3.0));
    }

    /// Writes an event file plus `expected.json` for
    /// `scripts/check_tensorboard.py` into `$TORCHLET_TB_OUT` when set.
    #[test]
    fn writes_file_for_external_check() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("TORCHLET_TB_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| tmp.path().to_path_buf());
        let mut writer = SummaryWriter::new(&dir).unwrap();
        let mut expected = Vec::new();
        for (tag, step, value) in sample_scalars() {
            writer.add_scalar(tag, value, step).unwrap();
            expected.push(serde_json::json!({"tag": tag, "step": step, "value": value}));
        }
        writer.flush().unwrap();
        let json = serde_json::to_string_pretty(&expected).unwrap();
        fs::write(dir.join("expected.json"), json).unwrap();
        assert_eq!(read_scalars(writer.path()).unwrap().len(), expected.len());
    }
}
