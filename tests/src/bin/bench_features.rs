//! Benchmark of the image feature networks, not a test: images/s of EfficientNet-Lite0 at
//! 224x224, batch 8, on the adapter, beside PyTorch CPU (scripts/bench_efficientnet_torch.py,
//! 2 threads) run in the same process.
//!
//! `cargo run --release -p percept-tests --bin bench-features [-- --write BENCHMARKS.md]`
//! (`PERCEPT_PROFILE=1` prints the time per kernel to stderr; it slows the run down.)

use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use percept::gpu::{Gpu, Tensor};
use percept::nn::efficientnet::{EfficientNet, BATCH};
use percept_tests::{machine, publish, repo_root, today, Rng};

/// Timed batches after one warm-up batch.
const REPS: usize = 5;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-features [-- --write BENCHMARKS.md]", &[], &["--write"])?;
    let gpu = Gpu::new()?;
    let net = EfficientNet::load(&gpu, &repo_root().join("weights/efficientnet-lite0"))?;
    let mut rng = Rng(1);
    let x: Vec<f32> = rng.vec(BATCH * 224 * 224 * 3, 0.5).iter().map(|v| v + 0.5).collect();
    let x = Tensor::from_f32(&gpu, &[BATCH, 224, 224, 3], &x)?;
    let run = || -> Result<()> {
        let mut enc = gpu.encoder();
        let y = net.forward(&mut enc, &x)?;
        drop(enc);
        y.to_vec(&gpu)?;
        Ok(())
    };
    eprintln!("percept efficientnet-lite0 ...");
    run()?;
    let mut times = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    if let Some(profile) = gpu.profile_report() {
        eprintln!("{profile}");
    }
    let (best, median) = (times[0], times[REPS / 2]);
    if std::env::var_os("PERCEPT_NO_TORCH").is_some() {
        return Ok(());
    }
    eprintln!("pytorch ...");
    let torch = Command::new("python3")
        .arg(repo_root().join("scripts/bench_efficientnet_torch.py"))
        .output()
        .map(|o| if o.status.success() { String::from_utf8_lossy(&o.stdout).trim().to_string() } else { format!("failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")) })
        .unwrap_or_else(|e| format!("not run: {e}"));
    let mesa = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "mesa-vulkan-drivers"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut report = format!("## EfficientNet-Lite0 throughput ({})\n\n", today());
    report += &format!(
        "Machine: {}. Adapter: {} (Mesa {mesa}). Command: `cargo run --release -p percept-tests --bin bench-features`. Batch {BATCH} at 224x224, f32 (BN folded at load), logits read back; best (median) of {REPS} batches after a warm-up.\n\n",
        machine(),
        gpu.describe()
    );
    report += "| implementation | images/s, best (median) | ms per batch, best |\n|---|---|---|\n";
    report += &format!("| percept (WGSL on the adapter) | {:.1} ({:.1}) | {:.0} |\n", BATCH as f64 / best, BATCH as f64 / median, best * 1e3);
    report += &format!("\nPyTorch CPU, same run (`python3 scripts/bench_efficientnet_torch.py`): {torch}\n");
    publish(&report, &args)
}
