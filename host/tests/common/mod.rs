//! Shared helpers of the GPU tests: one device per test binary, seeded data, assert_close.
#![allow(dead_code)]

use std::sync::OnceLock;

use percept::gpu::Gpu;

/// The process-wide device (lavapipe on machines without a GPU).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|e| panic!("{e}")))
}

/// Seeded uniform values in [-scale, scale) (SplitMix64).
pub fn rand(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Fails naming the first element with |got - want| > atol + rtol |want|, and the largest errors.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    let (mut max_abs, mut max_rel, mut first_bad) = (0.0f32, 0.0f32, None);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let abs = (g - w).abs();
        let rel = abs / w.abs().max(1e-12);
        if abs.is_nan() || abs > atol + rtol * w.abs() {
            first_bad.get_or_insert(i);
        }
        if !abs.is_nan() {
            max_abs = max_abs.max(abs);
            max_rel = max_rel.max(rel);
        }
    }
    if let Some(i) = first_bad {
        panic!("{what}: first bad index {i}: got {} want {} (max abs err {max_abs:e}, max rel err {max_rel:e}, atol {atol:e}, rtol {rtol:e})", got[i], want[i]);
    }
}

/// Progress that remembers the last stage's length and steps.
#[derive(Default)]
pub struct Counted {
    /// The length last set.
    pub len: std::sync::atomic::AtomicU64,
    /// Steps since the last `begin`.
    pub pos: std::sync::atomic::AtomicU64,
}

impl percept::progress::Progress for Counted {
    fn begin(&self, _: &str, len: u64) {
        self.len.store(len, std::sync::atomic::Ordering::Relaxed);
        self.pos.store(0, std::sync::atomic::Ordering::Relaxed);
    }
    fn set_len(&self, len: u64) {
        self.len.store(len, std::sync::atomic::Ordering::Relaxed);
    }
    fn inc(&self, n: u64) {
        self.pos.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn done(&self) {}
}

/// A pipeline context around the process-wide device.
pub fn ctx() -> &'static percept::pipeline::Context {
    static CTX: OnceLock<percept::pipeline::Context> = OnceLock::new();
    CTX.get_or_init(|| percept::pipeline::Context::with_gpu(Gpu::new().unwrap_or_else(|e| panic!("{e}"))))
}

/// Runs the `percept` command: (whether it succeeded, its stderr).
pub fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_percept")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}
