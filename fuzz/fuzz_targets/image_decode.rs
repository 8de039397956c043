//! The image-folder decoder: arbitrary bytes as a PNG and as a JPEG file.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::data::image_folder::{Channels, load_image_chw_as};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    for name in ["image.png", "image.jpg"] {
        let path = dir.path().join(name);
        if std::fs::write(&path, data).is_ok() {
            let _ = load_image_chw_as(&path, Channels::Auto);
        }
    }
});
