//! safetensors loading into the tutorial's conv net.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::burn::tensor::Device;
use torchlet::model::{SeedConvNetConfig, load_safetensors};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    let path = dir.path().join("model.safetensors");
    if std::fs::write(&path, data).is_ok() {
        let model = SeedConvNetConfig::new().init(&Device::flex());
        let _ = load_safetensors(model, &path);
    }
});
