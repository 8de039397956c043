//! A minimal TensorBoard event-file writer and reader for scalar summaries.
//!
//! Event files are a sequence of TFRecord-framed `tensorflow.Event` protocol
//! buffers. Each record is laid out as
//!
//! ```text
//! u64 (little endian)  length of the data
//! u32 (little endian)  masked CRC-32C of the 8 length bytes
//! [u8; length]         data (an encoded `Event`)
//! u32 (little endian)  masked CRC-32C of the data
//! ```
//!
//! The protocol buffer encoding is written by hand; only the fields needed for
//! scalars are produced (`Event.wall_time`, `Event.step`,
//! `Event.file_version`, `Event.summary` with `Summary.Value.tag` and
//! `Summary.Value.simple_value`). The reader skips any other field, so it can
//! also extract `simple_value` scalars from files written by other tools.
//!
//! The writer appends each record to the file with a single write as soon as
//! it is added, so TensorBoard can follow a run while it trains.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
        writer.write_event(&encode_event(now, 0, Some(FILE_VERSION), None))?;
        tracing::debug!(path = %writer.path.display(), "created TensorBoard event file");
        Ok(writer)
    }

    /// The path of the event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a scalar summary `tag = value` at `step`.
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<(), TensorBoardError> {
        let summary = encode_summary_scalar(tag, value);
        self.write_event(&encode_event(wall_time(), step, None, Some(&summary)))
    }

    /// Marks a restart at `step`, as PyTorch's `SummaryWriter(purge_step=step)` does.
    ///
    /// Writes an event holding `SessionLog { status: START }` at `step`: when TensorBoard
    /// reads it, it drops every event of earlier files in the run whose step is `>= step`
    /// (the steps a crashed run logged after its last checkpoint), so a resumed run's curve
    /// shows each step once.
    pub fn purge_from(&mut self, step: i64) -> Result<(), TensorBoardError> {
        self.write_event(&encode_session_start(wall_time(), step))
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

    fn write_event(&mut self, event: &[u8]) -> Result<(), TensorBoardError> {
        let record = frame_record(event);
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
    let mut scalars = Vec::new();
    let bytes = read_file(path)?;
    for (offset, data) in split_records(path, &bytes)? {
        let event = decode_event(data).map_err(|reason| TensorBoardError::Malformed {
            path: path.to_path_buf(),
            offset,
            reason,
        })?;
        for (tag, value) in event.scalars {
            scalars.push(ScalarEvent {
                tag,
                step: event.step,
                value,
                wall_time: event.wall_time,
            });
        }
    }
    Ok(scalars)
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

// ---------------------------------------------------------------------------
// Record framing
// ---------------------------------------------------------------------------

const MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a CRC the way TFRecord does, so that CRCs of CRCs stay well mixed.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn read_u32_le(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

/// Splits the contents of an event file into records, verifying both CRCs of
/// each, and returns every record's start offset and data.
fn split_records<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<Vec<(u64, &'a [u8])>, TensorBoardError> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let truncated = |needed: u64| TensorBoardError::Truncated {
            path: path.to_path_buf(),
            offset,
            needed,
            available: rest.len() as u64,
        };
        if rest.len() < 12 {
            return Err(truncated(12));
        }
        let len_bytes = &rest[..8];
        let stored = read_u32_le(&rest[8..12]);
        let computed = masked_crc(len_bytes);
        if stored != computed {
            return Err(TensorBoardError::CrcMismatch {
                path: path.to_path_buf(),
                offset,
                part: "length",
                stored,
                computed,
            });
        }
        let mut len_arr = [0u8; 8];
        len_arr.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(len_arr);
        let needed = len.saturating_add(16);
        if needed > rest.len() as u64 {
            return Err(truncated(needed));
        }
        // `needed <= rest.len()`, so these conversions cannot overflow.
        let len = len as usize;
        let data = &rest[12..12 + len];
        let stored = read_u32_le(&rest[12 + len..16 + len]);
        let computed = masked_crc(data);
        if stored != computed {
            return Err(TensorBoardError::CrcMismatch {
                path: path.to_path_buf(),
                offset,
                part: "data",
                stored,
                computed,
            });
        }
        records.push((offset, data));
        pos += 16 + len;
    }
    Ok(records)
}

fn read_file(path: &Path) -> Result<Vec<u8>, TensorBoardError> {
    fs::read(path).map_err(|source| TensorBoardError::Io {
        path: path.to_path_buf(),
        source,
    })
}

// ---------------------------------------------------------------------------
// Protocol buffer encoding
// ---------------------------------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_len_delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes `Summary { value: [Value { tag, simple_value }] }`.
fn encode_summary_scalar(tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::with_capacity(tag.len() + 8);
    put_len_delimited(&mut v, 1, tag.as_bytes());
    // `simple_value` is part of a oneof, so it is written even when zero.
    put_key(&mut v, 2, WIRE_FIXED32);
    v.extend_from_slice(&value.to_le_bytes());
    let mut summary = Vec::with_capacity(v.len() + 4);
    put_len_delimited(&mut summary, 1, &v);
    summary
}

/// Encodes `Event { wall_time, step, session_log: SessionLog { status: START } }`.
fn encode_session_start(wall_time: f64, step: i64) -> Vec<u8> {
    let mut event = encode_event(wall_time, step, None, None);
    // `Event.session_log` is field 7; `SessionLog.status` is field 1 and START is 1.
    put_len_delimited(&mut event, 7, &[0x08, 0x01]);
    event
}

/// Encodes an `Event`; `wall_time` and `step` are omitted when zero (the
/// proto3 default), as protobuf's own serialiser does.
fn encode_event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    summary: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + summary.map_or(0, <[u8]>::len));
    if wall_time.to_bits() != 0 {
        put_key(&mut out, 1, WIRE_FIXED64);
        out.extend_from_slice(&wall_time.to_le_bytes());
    }
    if step != 0 {
        put_key(&mut out, 2, WIRE_VARINT);
        // int64 is encoded as the two's complement bit pattern.
        put_varint(&mut out, step as u64);
    }
    if let Some(version) = file_version {
        put_len_delimited(&mut out, 3, version.as_bytes());
    }
    if let Some(summary) = summary {
        put_len_delimited(&mut out, 5, summary);
    }
    out
}

// ---------------------------------------------------------------------------
// Protocol buffer decoding
// ---------------------------------------------------------------------------

/// The parts of an `Event` this module understands.
#[derive(Debug, Default, PartialEq)]
struct DecodedEvent {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    scalars: Vec<(String, f32)>,
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{what} needs {n} bytes at data offset {} but only {} remain",
                    self.pos,
                    self.bytes.len() - self.pos
                )
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| format!("varint runs past the end at data offset {}", self.pos))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!(
            "varint longer than 10 bytes ending at data offset {}",
            self.pos
        ))
    }

    fn key(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    fn fixed64(&mut self) -> Result<[u8; 8], String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, "fixed64 field")?);
        Ok(b)
    }

    fn fixed32(&mut self) -> Result<[u8; 4], String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, "fixed32 field")?);
        Ok(b)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let len =
            usize::try_from(len).map_err(|_| format!("length {len} does not fit in memory"))?;
        self.take(len, "length-delimited field")
    }

    fn skip(&mut self, field: u64, wire: u8) -> Result<(), String> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8, "fixed64 field").map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_FIXED32 => self.take(4, "fixed32 field").map(drop),
            other => Err(format!("field {field} has unsupported wire type {other}")),
        }
    }
}

fn expect_wire(field: u64, wire: u8, expected: u8) -> Result<(), String> {
    if wire == expected {
        Ok(())
    } else {
        Err(format!(
            "field {field} has wire type {wire}, expected {expected}"
        ))
    }
}

fn decode_event(bytes: &[u8]) -> Result<DecodedEvent, String> {
    let mut event = DecodedEvent::default();
    let mut d = Decoder::new(bytes);
    while !d.is_empty() {
        let (field, wire) = d.key()?;
        match field {
            1 => {
                expect_wire(field, wire, WIRE_FIXED64)?;
                event.wall_time = f64::from_le_bytes(d.fixed64()?);
            }
            2 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                event.step = d.varint()? as i64;
            }
            3 => {
                expect_wire(field, wire, WIRE_LEN)?;
                let raw = d.len_delimited()?;
                let version = std::str::from_utf8(raw)
                    .map_err(|e| format!("file_version is not UTF-8: {e}"))?;
                event.file_version = Some(version.to_string());
            }
            5 => {
                expect_wire(field, wire, WIRE_LEN)?;
                decode_summary(d.len_delimited()?, &mut event.scalars)?;
            }
            _ => d.skip(field, wire)?,
        }
    }
    Ok(event)
}

fn decode_summary(bytes: &[u8], scalars: &mut Vec<(String, f32)>) -> Result<(), String> {
    let mut d = Decoder::new(bytes);
    while !d.is_empty() {
        let (field, wire) = d.key()?;
        if field == 1 {
            expect_wire(field, wire, WIRE_LEN)?;
            if let Some(scalar) = decode_value(d.len_delimited()?)? {
                scalars.push(scalar);
            }
        } else {
            d.skip(field, wire)?;
        }
    }
    Ok(())
}

/// Decodes a `Summary.Value`, returning `(tag, simple_value)` if it is a
/// `simple_value` scalar.
fn decode_value(bytes: &[u8]) -> Result<Option<(String, f32)>, String> {
    let mut d = Decoder::new(bytes);
    let mut tag = String::new();
    let mut value = None;
    while !d.is_empty() {
        let (field, wire) = d.key()?;
        match field {
            1 => {
                expect_wire(field, wire, WIRE_LEN)?;
                let raw = d.len_delimited()?;
                tag = std::str::from_utf8(raw)
                    .map_err(|e| format!("summary tag is not UTF-8: {e}"))?
                    .to_string();
            }
            2 => {
                expect_wire(field, wire, WIRE_FIXED32)?;
                value = Some(f32::from_le_bytes(d.fixed32()?));
            }
            _ => d.skip(field, wire)?,
        }
    }
    Ok(value.map(|v| (tag, v)))
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
        assert_eq!(encode_session_start(1.5, 300), expected);
    }

    #[test]
    fn masked_crc_matches_known_vector() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xa282ead8 (mod 2^32).
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn varint_encoding_matches_protobuf_examples() {
        let enc = |v: u64| {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(150), [0x96, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        // int64 -1 takes ten bytes.
        assert_eq!(
            enc(-1i64 as u64),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let bytes = enc(v);
            let mut d = Decoder::new(&bytes);
            assert_eq!(d.varint().unwrap(), v);
            assert!(d.is_empty());
        }
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
        let header = frame_record(&encode_event(1.5, 0, Some(FILE_VERSION), None));
        assert_eq!(header, GOLDEN_HEADER_RECORD);
        let summary = encode_summary_scalar("loss", 0.25);
        let scalar = frame_record(&encode_event(2.0, 300, None, Some(&summary)));
        assert_eq!(scalar, GOLDEN_SCALAR_RECORD);
        let summary = encode_summary_scalar("neg", -3.0);
        let negative_step = frame_record(&encode_event(0.0, -2, None, Some(&summary)));
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
        let records = split_records(&path, &bytes).unwrap();
        assert_eq!(records.len(), 1 + sample_scalars().len());
        let first = decode_event(records[0].1).unwrap();
        assert_eq!(first.file_version.as_deref(), Some("brain.Event:2"));
        assert!(first.scalars.is_empty());

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
        let records = split_records(&path, &bytes).unwrap();
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
        let records = split_records(&path, &bytes).unwrap();
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
        fs::write(&path, frame_record(&[0x2a, 100, 0])).unwrap();
        let err = read_scalars(&path).unwrap_err();
        assert!(
            matches!(err, TensorBoardError::Malformed { offset: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // Event with an extra varint (field 4), a fixed32 and a nested
        // unknown message inside Summary.Value (field 9 = metadata).
        let mut value = Vec::new();
        put_len_delimited(&mut value, 9, b"\x0a\x03abc");
        put_len_delimited(&mut value, 1, b"t");
        put_key(&mut value, 2, WIRE_FIXED32);
        value.extend_from_slice(&4.5f32.to_le_bytes());
        let mut summary = Vec::new();
        put_len_delimited(&mut summary, 1, &value);
        let mut event = encode_event(3.0, 9, None, Some(&summary));
        put_key(&mut event, 4, WIRE_VARINT);
        put_varint(&mut event, 12345);
        put_key(&mut event, 15, WIRE_FIXED32);
        event.extend_from_slice(&[1, 2, 3, 4]);
        let decoded = decode_event(&event).unwrap();
        assert_eq!(decoded.step, 9);
        assert_eq!(decoded.wall_time, 3.0);
        assert_eq!(decoded.scalars, vec![("t".to_string(), 4.5)]);
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
