//! `batches.meta.txt`: the class-name list.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use torchlet::data::cifar10::parse_class_names;

fuzz_target!(|data: &[u8]| {
    let _ = parse_class_names(Path::new("batches.meta.txt"), data);
});
