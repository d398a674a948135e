//! Benchmark of TAESD's encoder and decoder (issue 18), not a test: encode and decode at 64 and
//! 128 pixels in batches of `--batch` images (a comma list, default 8), with f32 weights
//! (`ops::conv2d`'s direct convolution, the previous default), f16 weights (the default since
//! issue 18) and, with `--winograd`, Winograd F(2x2, 3x3) for the stride-1 convs
//! (`TaesdPart::set_winograd`, f32 transformed weights), taking turns in the same run; upload
//! and read-back included. Times are per forward of one batch (best wall time, and best CPU time
//! of the process's threads, which load from other jobs on the machine inflates less) and wall
//! time per image. With
//! PERCEPT_PROFILE set, instead one run of the forward named by `--profile f32|f16|winograd` at
//! each size and the time per kernel (each dispatch run alone).
//!
//! `cargo run --release -p percept-tests --bin bench-taesd [-- --reps 3 --batch 8,16 --winograd]`
//! `PERCEPT_PROFILE=1 cargo run --release -p percept-tests --bin bench-taesd -- --profile winograd`

use std::time::Instant;

use anyhow::{Context, Result};
use percept::gpu::{DType, Gpu, Tensor};
use percept::nn::taesd::Taesd;
use percept_tests::{repo_root, Rng};

/// One way to run TAESD: its name and the loaded model.
struct Variant {
    name: &'static str,
    taesd: Taesd,
}

fn load(gpu: &Gpu, dtype: DType, winograd: bool) -> Result<Taesd> {
    let mut t = Taesd::load(gpu, &repo_root().join("weights/taesd"), dtype).context("loading TAESD")?;
    t.encoder.set_winograd(gpu, winograd)?;
    t.decoder.set_winograd(gpu, winograd)?;
    Ok(t)
}

/// One encode (`px` x `px` images) or decode (latents of `px / 8`) of `batch` images, uploaded
/// and read back.
fn run(gpu: &Gpu, t: &Taesd, decode: bool, px: usize, batch: usize, data: &[f32]) -> Result<Vec<f32>> {
    let shape = if decode { [batch, px / 8, px / 8, 4] } else { [batch, px, px, 3] };
    let x = Tensor::from_f32(gpu, &shape, data)?;
    let mut enc = gpu.encoder();
    let y = if decode { t.decode(&mut enc, &x)? } else { t.encode(&mut enc, &x)? };
    drop(enc);
    Ok(y.to_vec(gpu)?)
}

/// CPU seconds (user + system) this process has used so far, all threads (lavapipe's workers
/// included): with other jobs on the machine, a measure of the work that wall time is not.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th
    // and 13th of them, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-taesd [-- --reps 3 --batch 8,16 --winograd] [--profile f32|f16|winograd]", &["--winograd"], &["--reps", "--batch", "--profile"])?;
    let reps: usize = arg(&args, "--reps").map(str::parse).transpose()?.unwrap_or(3);
    let batches: Vec<usize> = arg(&args, "--batch").unwrap_or("8").split(',').map(str::parse).collect::<Result<_, _>>()?;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let mut variants = vec![Variant { name: "f32 weights", taesd: load(&gpu, DType::F32, false)? }, Variant { name: "f16 weights", taesd: load(&gpu, DType::F16, false)? }];
    if args.iter().any(|a| a == "--winograd") {
        variants.push(Variant { name: "Winograd (f32)", taesd: load(&gpu, DType::F32, true)? });
    }
    let mut rng = Rng(7);
    let profile = std::env::var_os("PERCEPT_PROFILE").is_some();
    let only = match arg(&args, "--profile").unwrap_or("f16") {
        "f32" => 0,
        "f16" => 1,
        "winograd" if variants.len() == 3 => 2,
        "winograd" => {
            variants.push(Variant { name: "Winograd (f32)", taesd: load(&gpu, DType::F32, true)? });
            2
        }
        other => anyhow::bail!("--profile {other}: expected f32, f16 or winograd"),
    };
    let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
    println!("| TAESD | batch | {} | ratios to f32 | max abs difference to f32 |", names.join(" | "));
    println!("|---|---|{}---|---|", "---|".repeat(names.len()));
    for px in [64, 128] {
        for decode in [false, true] {
            for &batch in &batches {
                let n = if decode { batch * (px / 8) * (px / 8) * 4 } else { batch * px * px * 3 };
                let data: Vec<f32> = if decode { rng.vec(n, 1.5) } else { rng.vec(n, 0.5).iter().map(|v| v + 0.5).collect() };
                let what = if decode { format!("decode {}x{} -> {px}x{px}", px / 8, px / 8) } else { format!("encode {px}x{px} -> {}x{}", px / 8, px / 8) };
                if profile {
                    run(&gpu, &variants[only].taesd, decode, px, batch, &data)?;
                    continue;
                }
                // Warm-up (compiles the pipelines) and the outputs' agreement.
                let outs: Vec<Vec<f32>> = variants.iter().map(|v| run(&gpu, &v.taesd, decode, px, batch, &data)).collect::<Result<_>>()?;
                let diffs: Vec<String> = outs[1..].iter().map(|o| format!("{:.1e}", o.iter().zip(&outs[0]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max))).collect();
                let (mut best, mut cpu) = (vec![f64::INFINITY; variants.len()], vec![f64::INFINITY; variants.len()]);
                for _ in 0..reps {
                    for (i, v) in variants.iter().enumerate() {
                        let (start, cpu0) = (Instant::now(), cpu_seconds());
                        run(&gpu, &v.taesd, decode, px, batch, &data)?;
                        best[i] = best[i].min(start.elapsed().as_secs_f64());
                        cpu[i] = cpu[i].min(cpu_seconds() - cpu0);
                    }
                }
                let times: Vec<String> = best.iter().zip(&cpu).map(|(t, c)| format!("{t:.2} s, CPU {c:.2} s ({:.0} ms/image)", 1e3 * t / batch as f64)).collect();
                let ratios: Vec<String> = best[1..].iter().map(|t| format!("{:.2}x", best[0] / t)).collect();
                println!("| {what} | {batch} | {} | {} | {} |", times.join(" | "), ratios.join(", "), diffs.join(", "));
            }
        }
    }
    if let Some(p) = gpu.profile_report() {
        println!("\nPer kernel (PERCEPT_PROFILE, {}; one run of each encode and decode at 64 and 128 px, pipelines compiled in it):\n{p}", variants[only].name);
    }
    Ok(())
}
