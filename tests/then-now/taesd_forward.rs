//! TAESD's forward timed the same way on any commit since 2026-11-23 (it uses only the API that
//! has not changed since: `Taesd::load`, `encode`, `decode`, `Tensor::from_f32`, `to_vec`):
//! `scripts/bench-taesd-since.sh` copies this file into an old commit's `host/examples/`,
//! builds it there and here (host/Cargo.toml declares it as an example, so clippy and the tests
//! keep it compiling) and runs both in turns.
//!
//! `taesd_forward f32|f16 REPS`: encode 64 -> 8x8, decode 8x8 -> 64, encode 128 -> 16x16,
//! decode 16x16 -> 128, batches of 8, upload and read-back included; best wall time of REPS
//! after one warm-up run, and the sum of the outputs (the same input on every commit, so equal
//! sums say the commits compute the same thing).

use std::time::Instant;

use percept::gpu::{DType, Gpu, Tensor};
use percept::nn::taesd::Taesd;

fn main() -> percept::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dtype = match args.get(1).map(String::as_str) {
        Some("f32") => DType::F32,
        Some("f16") => DType::F16,
        _ => {
            eprintln!("usage: taesd_forward f32|f16 REPS");
            std::process::exit(2);
        }
    };
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).filter(|&r| r > 0).unwrap_or(3);
    let gpu = Gpu::new()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let taesd = Taesd::load(&gpu, &root.join("weights/taesd"), dtype)?;
    let batch = 8;
    // A fixed linear congruential sequence, so every commit sees the same input.
    let mut state = 7u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut cells = Vec::new();
    for px in [64usize, 128] {
        for decode in [false, true] {
            let shape = if decode { [batch, px / 8, px / 8, 4] } else { [batch, px, px, 3] };
            let data: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| if decode { 3.0 * uniform() - 1.5 } else { uniform() }).collect();
            let run = || -> percept::Result<Vec<f32>> {
                let x = Tensor::from_f32(&gpu, &shape, &data)?;
                let mut enc = gpu.encoder();
                let y = if decode { taesd.decode(&mut enc, &x)? } else { taesd.encode(&mut enc, &x)? };
                drop(enc);
                y.to_vec(&gpu)
            };
            let sum: f64 = run()?.iter().map(|&v| f64::from(v)).sum();
            let mut best = f64::INFINITY;
            for _ in 0..reps {
                let start = Instant::now();
                run()?;
                best = best.min(start.elapsed().as_secs_f64());
            }
            let what = if decode { format!("decode {}->{px}", px / 8) } else { format!("encode {px}->{}", px / 8) };
            cells.push(format!("{what} {best:.3} s (sum {sum:.2})"));
        }
    }
    println!("{dtype:?} weights | {} | {}", cells.join(" | "), gpu.describe());
    Ok(())
}
