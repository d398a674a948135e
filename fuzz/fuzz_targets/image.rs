#![no_main]
//! PNG and JPEG decoding under the reader's limits, and the centred-square resize.

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file(data, "input.img");
    if let Ok(img) = percept::io::image::Rgb::open(&p) {
        let _ = img.resized(16);
    }
    let _ = percept::io::image::Rgb::open_square(&p, 16);
});
