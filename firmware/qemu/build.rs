//! Puts memory.x where the linker finds it, and rebuilds when the fixture changes.
//!
//! The firmware embeds files from the directory in PERCEPT_FW_DIR (`include_bytes!` in
//! src/main.rs); the build watches the whole directory, so any file added to it or changed
//! in it (dense, lowrank, odd, x.bin, ...) reruns the build without a list to keep in step.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=PERCEPT_FW_DIR");
    if let Some(dir) = env::var_os("PERCEPT_FW_DIR") {
        // A directory: cargo scans everything in it for modifications.
        println!("cargo:rerun-if-changed={}", PathBuf::from(dir).display());
    }
}
