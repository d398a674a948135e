#![no_main]
//! The .npy reader, and the latent and voxel readers built on it.

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file(data, "input.npy");
    let _ = percept::io::npy::read(&p);
    let _ = percept::io::npy::read_latent(&p);
    let _ = percept::io::voxels::VoxelSource::Npy(p).load();
});
