#![no_main]
//! PNG and JPEG decoding under the reader's limits, and the centred-square resize.

#[path = "common.rs"]
mod common;

static QUIET_DECODER_PANICS: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // libFuzzer's panic hook aborts on every panic, also on the JPEG decoder's, which
    // `open_rgb8` catches and returns as an error; those pass, all others still abort.
    QUIET_DECODER_PANICS.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !percept::io::image::is_caught_decoder_panic(info) {
                abort_hook(info);
            }
        }));
    });
    let p = common::file(data, "input.img");
    if let Ok(img) = percept::io::image::Rgb::open(&p) {
        let _ = img.resized(16);
    }
    let _ = percept::io::image::Rgb::open_square(&p, 16);
});
