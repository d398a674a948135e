//! Benchmark of deep image reconstruction's inner loop, not a test: one
//! `dir::objective::Objective::loss_and_grad` (TAESD's decoder -> 128 px images -> resized to
//! 224 -> EfficientNet-Lite2 at five layers -> the feature loss -> d loss / d latent) at batch
//! 10 on the adapter, beside the same loop in PyTorch CPU (scripts/bench_dir_torch.py, 2
//! threads) run in the same process.
//!
//! `cargo run --release -p percept-tests --bin bench-dir [-- --write BENCHMARKS.md]`

use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use percept::dir::objective::{Generator, LayerTarget, LossNet, Objective};
use percept::gpu::{DType, Gpu};
use percept::nn::efficientnet::EfficientNet;
use percept::nn::taesd::Taesd;
use percept_tests::{machine, publish, repo_root, today, Rng};

/// Timed iterations after one warm-up.
const REPS: usize = 3;
const BATCH: usize = 10;
const SIZE: usize = 128;
const LAYERS: [&str; 5] = ["_blocks.1", "_blocks.4", "_blocks.9", "_blocks.15", "_blocks.20"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-dir [-- --write BENCHMARKS.md]", &[], &["--write"])?;
    let gpu = Gpu::new()?;
    let net = EfficientNet::load(&gpu, &repo_root().join("weights/efficientnet-lite2"))?;
    let taesd = Taesd::load(&gpu, &repo_root().join("weights/taesd"), DType::F32)?;
    let obj = Objective::new(&gpu, Generator::Taesd(&taesd.decoder), LossNet::EfficientNet(&net), SIZE)?;
    let mut rng = Rng(1);
    let n: usize = obj.x_shape(BATCH).iter().product();
    // Targets: the features of other latents' images, every unit.
    let other = taesd.decode_latents(&gpu, &rng.vec(n, 1.0), BATCH, SIZE / 8, SIZE / 8)?;
    let images: Vec<f32> = other.iter().flat_map(|i| i.data.iter().copied()).collect();
    let layers: Vec<String> = LAYERS.map(String::from).to_vec();
    let feats = obj.features(&images, BATCH, &layers)?;
    let targets: Vec<LayerTarget> = layers.iter().zip(feats).map(|(l, v)| LayerTarget { layer: l.clone(), units: None, values: v }).collect();
    let x = rng.vec(n, 1.0);
    eprintln!("percept dir loss_and_grad ...");
    obj.loss_and_grad(&x, BATCH, &targets)?;
    let mut times = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        obj.loss_and_grad(&x, BATCH, &targets)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let (best, median) = (times[0], times[REPS / 2]);
    eprintln!("percept: {best:.2} s per iteration (median {median:.2})");
    let torch = if std::env::var_os("PERCEPT_NO_TORCH").is_some() {
        "not run (PERCEPT_NO_TORCH)".to_string()
    } else {
        eprintln!("pytorch ...");
        Command::new("python3")
            .arg(repo_root().join("scripts/bench_dir_torch.py"))
            .output()
            .map(|o| if o.status.success() { String::from_utf8_lossy(&o.stdout).trim().to_string() } else { format!("failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")) })
            .unwrap_or_else(|e| format!("not run: {e}"))
    };
    let mesa = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "mesa-vulkan-drivers"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut report = format!("## DIR loss and gradient ({})\n\n", today());
    report += &format!(
        "Machine: {}. Adapter: {} (Mesa {mesa}). Command: `cargo run --release -p percept-tests --bin bench-dir`. One `Objective::loss_and_grad`: TAESD decoder (f32) on {BATCH} latents -> {SIZE} px -> triangle resize to 224 -> EfficientNet-Lite2 at {} -> loss -> d loss / d latent, read back; best (median) of {REPS} after a warm-up.\n\n",
        machine(),
        gpu.describe(),
        LAYERS.join(", ")
    );
    report += "| implementation | s per iteration, best (median) | s per image per iteration |\n|---|---|---|\n";
    report += &format!("| percept (WGSL on the adapter) | {best:.2} ({median:.2}) | {:.3} |\n", best / BATCH as f64);
    report += &format!("\nPyTorch CPU, same run (`python3 scripts/bench_dir_torch.py`): {torch}\n");
    publish(&report, &args)
}
