//! TFRecord framing of event files: each record is
//!
//! ```text
//! u64 (little endian)  length of the data
//! u32 (little endian)  masked CRC-32C of the 8 length bytes
//! [u8; length]         data (an encoded `Event`)
//! u32 (little endian)  masked CRC-32C of the data
//! ```
//!
//! Written by hand: no maintained crate writes TFRecord framing without TensorFlow itself;
//! the CRC is the `crc32c` crate's.

use std::path::Path;

use super::TensorBoardError;

const MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a CRC the way TFRecord does, so that CRCs of CRCs stay well mixed.
pub(super) fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(MASK_DELTA)
}

/// Frames `data` as one record.
pub(super) fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Splits an event file's bytes into records, verifying both CRCs of each, and returns every
/// record's start offset and data. `path` only names the file in errors.
pub(super) fn split<'a>(
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
        let crc_error = |part, stored, computed| TensorBoardError::CrcMismatch {
            path: path.to_path_buf(),
            offset,
            part,
            stored,
            computed,
        };
        if rest.len() < 12 {
            return Err(truncated(12));
        }
        let (stored, computed) = (u32_at(rest, 8), masked_crc(&rest[..8]));
        if stored != computed {
            return Err(crc_error("length", stored, computed));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&rest[..8]);
        let len = u64::from_le_bytes(len);
        let needed = len.saturating_add(16);
        if needed > rest.len() as u64 {
            return Err(truncated(needed));
        }
        // `needed <= rest.len()`, so this cannot truncate.
        let len = len as usize;
        let data = &rest[12..12 + len];
        let (stored, computed) = (u32_at(rest, 12 + len), masked_crc(data));
        if stored != computed {
            return Err(crc_error("data", stored, computed));
        }
        records.push((offset, data));
        pos += 16 + len;
    }
    Ok(records)
}
