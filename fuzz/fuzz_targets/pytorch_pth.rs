//! PyTorch `.pth` loading into the tutorial's conv net.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::burn::tensor::Device;
use torchlet::model::{SeedConvNetConfig, load_pytorch};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    let path = dir.path().join("model.pth");
    if std::fs::write(&path, data).is_ok() {
        let model = SeedConvNetConfig::new().init(&Device::flex());
        let _ = load_pytorch(model, &path);
    }
});
