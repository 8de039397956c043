//! A TensorBoard event file, read back as `torchlet::train::tensorboard::read_scalars` does
//! (TFRecord framing with both CRCs, then the `Event` protocol buffer of each record).
//!
//! An input whose first byte is even is the file itself. One whose first byte is odd is a list
//! of record payloads (each a `u8` length, then that many bytes), framed here with correct
//! CRCs, so the fuzzer reaches the protocol-buffer decoder without having to solve CRC-32C.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::train::tensorboard::read_scalars;

fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames each `u8`-length-prefixed payload of `data` as a TFRecord.
fn framed(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let (payload, tail) = rest.split_at(usize::from(len).min(rest.len()));
        let len = (payload.len() as u64).to_le_bytes();
        out.extend_from_slice(&len);
        out.extend_from_slice(&masked_crc(&len).to_le_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&masked_crc(payload).to_le_bytes());
        data = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 { rest.to_vec() } else { framed(rest) };
    let Ok(dir) = scratch() else { return };
    let path = dir.path().join("events.out.tfevents.fuzz");
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let _ = read_scalars(&path);
});
