//! The `.tar.gz` reader: arbitrary bytes as `cifar-10-binary.tar.gz`.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::data::Cifar10;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    let path = dir.path().join("cifar-10-binary.tar.gz");
    if std::fs::write(&path, data).is_ok() {
        let _ = Cifar10::from_archive(&path);
    }
});
