//! Benchmark of TAESD's encoder and decoder (issue 18), not a test: batches of 8 at 64 and 128
//! pixels, direct convolution (`ops::conv2d` for every conv, the default) against Winograd
//! F(2x2, 3x3) for the stride-1 convs (`ops::winograd`, `TaesdPart::winograd`), taking turns
//! in the same run; upload and read-back included. With PERCEPT_PROFILE set, instead one run
//! of the forward named by `--profile direct|winograd` at each size and the time per kernel
//! (each dispatch run alone).
//!
//! `cargo run --release -p percept-tests --bin bench-taesd [-- --reps 3]`
//! `PERCEPT_PROFILE=1 cargo run --release -p percept-tests --bin bench-taesd -- --profile winograd`

use std::time::Instant;

use anyhow::{Context, Result};
use percept::gpu::{DType, Gpu, Tensor};
use percept::nn::taesd::Taesd;
use percept_tests::{repo_root, Rng};

/// Images per forward pass, as the demo's encoding.
const BATCH: usize = 8;

fn load(gpu: &Gpu, winograd: bool) -> Result<Taesd> {
    let mut t = Taesd::load(gpu, &repo_root().join("weights/taesd"), DType::F32).context("loading TAESD")?;
    t.encoder.winograd = winograd;
    t.decoder.winograd = winograd;
    Ok(t)
}

/// One encode (`px` x `px` images) or decode (latents of `px / 8`), uploaded and read back.
fn run(gpu: &Gpu, t: &Taesd, decode: bool, px: usize, data: &[f32]) -> Result<Vec<f32>> {
    let shape = if decode { [BATCH, px / 8, px / 8, 4] } else { [BATCH, px, px, 3] };
    let x = Tensor::from_f32(gpu, &shape, data)?;
    let mut enc = gpu.encoder();
    let y = if decode { t.decode(&mut enc, &x)? } else { t.encode(&mut enc, &x)? };
    drop(enc);
    Ok(y.to_vec(gpu)?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let reps = args.iter().position(|a| a == "--reps").and_then(|i| args.get(i + 1)).map(|v| v.parse()).transpose()?.unwrap_or(3);
    let gpu = Gpu::new()?;
    eprintln!("adapter: {} ({:?})", gpu.info.name, gpu.kind);
    let (old, new) = (load(&gpu, false)?, load(&gpu, true)?);
    let mut rng = Rng(7);
    let profile = std::env::var_os("PERCEPT_PROFILE").is_some();
    let only = args.iter().position(|a| a == "--profile").and_then(|i| args.get(i + 1)).map(|v| v == "winograd");
    println!("| TAESD, batch {BATCH} | direct conv2d | Winograd | ratio | max abs difference |\n|---|---|---|---|---|");
    for px in [64, 128] {
        for decode in [false, true] {
            let n = if decode { BATCH * (px / 8) * (px / 8) * 4 } else { BATCH * px * px * 3 };
            let data: Vec<f32> = if decode { rng.vec(n, 1.5) } else { rng.vec(n, 0.5).iter().map(|v| v + 0.5).collect() };
            let what = if decode { format!("decode {}x{} -> {px}x{px}", px / 8, px / 8) } else { format!("encode {px}x{px} -> {}x{}", px / 8, px / 8) };
            // Warm-up: compiles the pipelines.
            if profile {
                run(&gpu, if only == Some(true) { &new } else { &old }, decode, px, &data)?;
                continue;
            }
            let a = run(&gpu, &old, decode, px, &data)?;
            let b = run(&gpu, &new, decode, px, &data)?;
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            let mut best = [f64::INFINITY; 2];
            for _ in 0..reps {
                for (i, t) in [&old, &new].into_iter().enumerate() {
                    let start = Instant::now();
                    run(&gpu, t, decode, px, &data)?;
                    best[i] = best[i].min(start.elapsed().as_secs_f64());
                }
            }
            println!("| {what} | {:.2} s | {:.2} s | {:.2}x | {diff:.1e} |", best[0], best[1], best[0] / best[1]);
        }
    }
    if let Some(p) = gpu.profile_report() {
        println!("\nPer kernel (PERCEPT_PROFILE; one run of each encode and decode at 64 and 128 px, pipelines compiled in it):\n{p}");
    }
    Ok(())
}
