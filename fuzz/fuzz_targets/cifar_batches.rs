//! CIFAR-10 binary records: one batch file of arbitrary bytes, with the official class names.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use torchlet::data::cifar10::{CLASSES, parse_batches};

fuzz_target!(|data: &[u8]| {
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    let parts = vec![(PathBuf::from("data_batch_1.bin"), data.to_vec())];
    let _ = parse_batches(&parts, &classes);
});
