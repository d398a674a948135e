//! Benchmark of one 3x3 stride-1 convolution (issue: speed, round two), not a test: the direct
//! kernel (`ops::conv2d`, f16 weights) against Winograd F(2x2, 3x3) (`ops::winograd`) with its
//! transformed weights U in f32 and in f16, best of 3 after a warm-up, the three taking turns,
//! read-back included; with the largest difference of each Winograd output from the direct one.
//!
//! `cargo run --release -p percept-tests --bin bench-winograd -- [BxSxCINxCOUT ...]`
//! (default: the SD VAE's and U-Net's shapes).

use std::time::Instant;

use anyhow::{Context, Result};
use percept::gpu::{DType, Gpu, Tensor};
use percept::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
use percept::ops::winograd::{conv3x3, WinogradWeight};
use percept::ops::Act;
use percept_tests::{load_average, machine, Rng};

const DEFAULT: &[&str] = &["1x64x512x512", "1x128x512x512", "1x256x512x512", "1x256x512x256", "1x256x256x256", "1x512x128x128", "2x64x320x320", "2x32x640x640", "2x32x1280x640", "2x16x1280x1280", "2x8x1280x1280"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a.starts_with('-')) {
        percept_tests::check_args(&args, "cargo run --release -p percept-tests --bin bench-winograd -- [BxSxCINxCOUT ...]", &[], &[])?;
    }
    let shapes: Vec<String> = if args.is_empty() { DEFAULT.iter().map(|s| s.to_string()).collect() } else { args };
    let gpu = Gpu::new()?;
    println!("Machine: {}. Adapter: {}. Load average {} at the start.\n", machine(), gpu.describe(), load_average());
    println!("| batch x size x Cin -> Cout | direct | GFLOP/s | Winograd, U f32 | Winograd, U f16 | max difference f32 / f16 |\n|---|---|---|---|---|---|");
    for s in shapes {
        let v: Vec<usize> = s.split('x').map(|t| t.parse().with_context(|| format!("{s}: expected BxSxCINxCOUT"))).collect::<Result<_>>()?;
        let [b, hw, cin, cout] = v[..] else { anyhow::bail!("{s}: expected BxSxCINxCOUT") };
        anyhow::ensure!(cin % 4 == 0 && cout % 4 == 0 && b * hw > 0, "{s}: channels must be multiples of 4, sizes positive");
        let w = Rng(1).vec(cout * cin * 9, 0.05);
        let bias = Rng(2).vec(cout, 0.05);
        let x = Tensor::from_f32(&gpu, &[b, hw, hw, cin], &Rng(3).vec(b * hw * hw * cin, 1.0))?;
        let direct = ConvWeight::from_torch(&gpu, &w, [cout, cin, 3, 3], Some(&bias), DType::F16)?;
        let wino = [DType::F32, DType::F16].map(|d| WinogradWeight::from_torch_as(&gpu, &w, [cout, cin, 3, 3], Some(&bias), d));
        let [w32, w16] = wino;
        let (w32, w16) = (w32?, w16?);
        let spec = ConvSpec::same(1, Act::None);
        let run = |k: usize| -> Result<(f64, Vec<f32>)> {
            let t = Instant::now();
            let mut enc = gpu.encoder();
            let y = match k {
                0 => conv2d(&mut enc, &x, &direct, spec)?,
                1 => conv3x3(&mut enc, &x, &w32, Act::None, None)?,
                _ => conv3x3(&mut enc, &x, &w16, Act::None, None)?,
            };
            drop(enc);
            let v = y.to_vec(&gpu)?;
            Ok((t.elapsed().as_secs_f64(), v))
        };
        let outs: Vec<Vec<f32>> = (0..3).map(|k| run(k).map(|r| r.1)).collect::<Result<_>>()?;
        let mut best = [f64::INFINITY; 3];
        for _ in 0..3 {
            for (k, b) in best.iter_mut().enumerate() {
                *b = b.min(run(k)?.0);
            }
        }
        let diff = |a: &[f32], c: &[f32]| a.iter().zip(c).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        let gflop = 2.0 * (b * hw * hw * cin * cout * 9) as f64 / 1e9;
        println!(
            "| {b} x {hw} x {cin} -> {cout} | {:.3} s | {:.0} | {:.2}x | {:.2}x | {:.1e} / {:.1e} |",
            best[0],
            gflop / best[0],
            best[0] / best[1],
            best[0] / best[2],
            diff(&outs[0], &outs[1]),
            diff(&outs[0], &outs[2])
        );
    }
    println!("\nLoad average {} at the end.", load_average());
    Ok(())
}
