//! A checkpoint folder, found and loaded as `--resume` would. The input holds its four files:
//! three little-endian `u32` lengths (state.json, model.bpk, optim.bpk), then those files,
//! then scheduler.bpk (the rest); lengths past the end are cut to what is there.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::burn::tensor::Device;
use torchlet::train::SavedCheckpoint;

/// The four files of one input.
fn split(data: &[u8]) -> [&[u8]; 4] {
    let len = |i: usize| {
        data.get(4 * i..4 * i + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut rest = data.get(12..).unwrap_or(&[]);
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        head
    };
    let (a, b, c) = (take(len(0)), take(len(1)), take(len(2)));
    [a, b, c, rest]
}

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    let folder = dir.path().join("checkpoints").join("epoch-0001");
    if std::fs::create_dir_all(&folder).is_err() {
        return;
    }
    let names = ["state.json", "model.bpk", "optim.bpk", "scheduler.bpk"];
    for (name, bytes) in names.iter().zip(split(data)) {
        if std::fs::write(folder.join(name), bytes).is_err() {
            return;
        }
    }
    if let Ok(saved) = SavedCheckpoint::find(dir.path()) {
        if let Ok(model) = saved.state.config.model.try_init(&Device::flex()) {
            let _ = saved.load_into(model);
        }
    }
});
