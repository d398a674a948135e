#![no_main]
//! Host-side safetensors weights: open, then read every tensor as f32 (checked finite).

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file(data, "input.safetensors");
    if let Ok(w) = percept::nn::Weights::open(&[&p]) {
        let names: Vec<String> = w.names().map(String::from).collect();
        for n in names {
            let _ = w.get_any(&n);
        }
    }
});
