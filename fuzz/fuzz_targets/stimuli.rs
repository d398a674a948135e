#![no_main]
//! Stimulus lists (CSV) and captions.json.

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file(data, "input.csv");
    if let Ok(trials) = percept::io::stimuli::read(&p) {
        let _ = percept::io::stimuli::repeats(&trials);
    }
    let _ = percept::io::stimuli::quote_spanning_lines(&String::from_utf8_lossy(data));
    let j = common::file(data, "captions.json");
    let _ = percept::io::stimuli::read_captions_json(&j);
});
