#![no_main]
//! The NIfTI reader: the input as a run under a fixed mask, and as the mask of itself.

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file(data, "input.nii");
    let _ = percept::io::nifti::mask_coords(&p);
    let _ = percept::io::nifti::load_masked(&[&p], &p);
});
