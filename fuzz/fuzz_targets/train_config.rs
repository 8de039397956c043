//! `config.json`: a run's configuration, parsed and validated as `--resume` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchlet::train::TrainConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = serde_json::from_slice::<TrainConfig>(data) {
        let _ = config.validate();
    }
});
