//! The image-folder decoder: arbitrary bytes as a PNG and as a JPEG file.
//!
//! Decoding time grows with the pixels a header claims (an 882-byte progressive JPEG claiming
//! 65,292 × 244 pixels took 8 s under AddressSanitizer), so the target lowers the pixel limit
//! to 512 × 512 through the public option; the refusal above it is tested in
//! `tests/reliability.rs`. libFuzzer's one-second timeout then finds loops, not large images.
#![no_main]

mod common;

use common::scratch;
use libfuzzer_sys::fuzz_target;
use torchlet::data::image_folder::{Channels, ImageFolder};

/// The pixel limit of this target: 512 × 512.
const MAX_PIXELS: u64 = 1 << 18;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    let folder = ImageFolder::new(dir.path())
        .channels(Channels::Auto)
        .max_pixels(MAX_PIXELS);
    for name in ["image.png", "image.jpg"] {
        let path = dir.path().join(name);
        if std::fs::write(&path, data).is_ok() {
            let _ = folder.decode_file(&path);
        }
    }
});
