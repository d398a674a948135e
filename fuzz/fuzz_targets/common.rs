//! Writes the fuzzer's bytes to a file (the readers take paths) in a per-process folder.

use std::path::PathBuf;

pub fn file(data: &[u8], name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("percept-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}
