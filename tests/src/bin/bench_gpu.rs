//! Benchmark of the GPU runtime (issue: GPU runtime and TAESD), not a test.
//!
//! GFLOP/s of conv3x3 (64 -> 64 channels at 128x128 and 256x256) and of matmul (4096x320x320
//! and 1024^3) on the adapter, beside numpy (and PyTorch CPU when installed) measured in the
//! same run; TAESD decode of a 64x64 latent to 512x512 and encode of a 512x512 image.
//!
//! `cargo run --release -p percept-tests --bin bench-gpu [-- --write BENCHMARKS.md]`

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use percept::gpu::{DType, Gpu, Tensor};
use percept::nn::taesd::Taesd;
use percept::ops::conv2d::{conv2d, conv2d_with, ConvSpec, ConvWeight};
use percept::ops::linear::{linear, linear_with};
use percept::ops::{Act, Variant};
use percept_tests::{publish, today, machine};
use percept_tests::{repo_root, Rng};

/// Timed runs of each matmul and convolution kernel (after a warm-up).
const REPS: usize = 9;

/// Best time of `reps` runs after one warm-up (which also compiles the pipelines), seconds.
fn best(gpu: &Gpu, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut fs: [&mut dyn FnMut(); 1] = [&mut f];
    interleaved(gpu, reps, &mut fs)[0].best
}

/// Seconds per run of one kernel: the best and the median of the timed runs.
#[derive(Clone, Copy)]
struct Timing {
    best: f64,
    median: f64,
}

/// Times each of `fs` `reps` times, taking turns (f0, f1, .., f0, f1, ..) so that the load of
/// this shared machine falls on all of them alike, after one warm-up each (which also
/// compiles the pipelines).
fn interleaved(gpu: &Gpu, reps: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<Timing> {
    for f in fs.iter_mut() {
        f();
        gpu.wait().unwrap();
    }
    let mut times = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            f();
            gpu.wait().unwrap();
            t.push(start.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            Timing { best: t[0], median: t[t.len() / 2] }
        })
        .collect()
}

/// "best (median)" GFLOP/s.
fn rates(flop: f64, t: Timing) -> String {
    format!("{:.1} ({:.1})", flop / t.best / 1e9, flop / t.median / 1e9)
}

/// Seconds for the same work in Python (numpy, or torch with 2 threads); None if unavailable.
fn python(script: &str) -> Option<f64> {
    let out = Command::new("python3").args(["-c", script]).env_remove("OPENBLAS_CORETYPE").env_remove("OPENBLAS_L2_SIZE").output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn numpy_matmul(m: usize, n: usize, k: usize) -> Option<f64> {
    python(&format!(
        "import time, numpy as np\nr=np.random.default_rng(0)\nx=r.random(({m},{k}),dtype=np.float32)\nw=r.random(({n},{k}),dtype=np.float32)\ny=x@w.T\nb=1e9\nfor _ in range(5):\n t=time.perf_counter(); y=x@w.T; b=min(b,time.perf_counter()-t)\nprint(b)"
    ))
}

fn numpy_conv(h: usize, c: usize) -> Option<f64> {
    // im2col with sliding_window_view, then one tensordot: the usual numpy convolution.
    python(&format!(
        "import time, numpy as np\nfrom numpy.lib.stride_tricks import sliding_window_view as sw\nr=np.random.default_rng(0)\nx=r.random(({h}+2,{h}+2,{c}),dtype=np.float32)\nw=r.random(({c},{c},3,3),dtype=np.float32)\n\
def f():\n win=sw(x,(3,3),axis=(0,1))\n return np.tensordot(win,w,axes=([2,3,4],[1,2,3]))\nf()\nb=1e9\nfor _ in range(3):\n t=time.perf_counter(); f(); b=min(b,time.perf_counter()-t)\nprint(b)"
    ))
}

fn torch_matmul(m: usize, n: usize, k: usize) -> Option<f64> {
    python(&format!(
        "import time, torch\ntorch.set_num_threads(2)\nx=torch.rand({m},{k})\nw=torch.rand({n},{k})\ny=x@w.T\nb=1e9\nfor _ in range(5):\n t=time.perf_counter(); y=x@w.T; b=min(b,time.perf_counter()-t)\nprint(b)"
    ))
}

fn torch_conv(h: usize, c: usize) -> Option<f64> {
    python(&format!(
        "import time, torch\ntorch.set_num_threads(2)\nx=torch.rand(1,{c},{h},{h})\nw=torch.rand({c},{c},3,3)\ny=torch.nn.functional.conv2d(x,w,padding=1)\nb=1e9\nfor _ in range(3):\n t=time.perf_counter(); y=torch.nn.functional.conv2d(x,w,padding=1); b=min(b,time.perf_counter()-t)\nprint(b)"
    ))
}

fn gflops(flop: f64, s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}", flop / s / 1e9))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-gpu [-- --write BENCHMARKS.md]", &[], &["--write"])?;
    let gpu = Gpu::new()?;
    let mut rng = Rng(1);
    let mut report = String::new();
    let date = today();
    report += &format!("## GPU runtime kernels and TAESD ({date})\n\n");
    report += &format!(
        "Machine: {}. Adapter: {} (kernel variant: {:?}, 8-lane subgroups: {}).\nCommand: `cargo run --release -p percept-tests --bin bench-gpu`. Matmul and conv: best (median) of {REPS} timed runs per kernel after a warm-up, the three kernels taking turns; attention and TAESD: best of 2 and 1 runs; numpy and PyTorch (2 threads): best of 3-5 runs, in the same run.\n\n",
        machine(),
        gpu.describe(),
        gpu.kind,
        gpu.subgroup8_int64
    );
    report += "The kernel `percept` picks on this adapter is the first two columns; the third is the register-blocked CPU kernel without subgroups (every lane loading the shared operand, the previous default), f16 weights, in the same run.\n\n";
    report += "| kernel | shape | percept f32 weights GFLOP/s, best (median) | percept f16 weights, best (median) | without subgroups, f16, best (median) | numpy GFLOP/s | PyTorch CPU GFLOP/s |\n|---|---|---|---|---|---|---|\n";

    for (m, n, k) in [(4096, 320, 320), (1024, 1024, 1024)] {
        eprintln!("matmul {m}x{n}x{k} ...");
        let flop = 2.0 * (m * n * k) as f64;
        let x = Tensor::from_f32(&gpu, &[m, k], &rng.vec(m * k, 1.0))?;
        let wv = rng.vec(n * k, 1.0);
        let w16 = Tensor::from_f32_as_f16(&gpu, &[n, k], &wv)?;
        let w32 = Tensor::from_f32(&gpu, &[n, k], &wv)?;
        let run = |w: &Tensor, variant: Option<Variant>| {
            let mut enc = gpu.encoder();
            match variant {
                None => linear(&mut enc, &x, w, None).unwrap(),
                Some(v) => linear_with(&mut enc, &x, w, None, v).unwrap(),
            };
        };
        let ours = interleaved(&gpu, REPS, &mut [&mut || run(&w32, None), &mut || run(&w16, None), &mut || run(&w16, Some(Variant::Cpu))]);
        report += &format!(
            "| matmul (linear) | {m} x {k} . ({n} x {k})^T | {} | {} | {} | {} | {} |\n",
            rates(flop, ours[0]),
            rates(flop, ours[1]),
            rates(flop, ours[2]),
            gflops(flop, numpy_matmul(m, n, k)),
            gflops(flop, torch_matmul(m, n, k))
        );
    }
    for h in [128, 256] {
        eprintln!("conv3x3 {h}x{h} ...");
        let c = 64;
        let flop = 2.0 * (h * h * c * c * 9) as f64;
        let x = Tensor::from_f32(&gpu, &[1, h, h, c], &rng.vec(h * h * c, 1.0))?;
        let wv = rng.vec(c * c * 9, 0.1);
        let w16 = ConvWeight::from_torch(&gpu, &wv, [c, c, 3, 3], None, DType::F16)?;
        let w32 = ConvWeight::from_torch(&gpu, &wv, [c, c, 3, 3], None, DType::F32)?;
        let run = |w: &ConvWeight, variant: Option<Variant>| {
            let mut enc = gpu.encoder();
            match variant {
                None => conv2d(&mut enc, &x, w, ConvSpec::same(1, Act::None)).unwrap(),
                Some(v) => conv2d_with(&mut enc, &x, w, ConvSpec::same(1, Act::None), v).unwrap(),
            };
        };
        let ours = interleaved(&gpu, REPS, &mut [&mut || run(&w32, None), &mut || run(&w16, None), &mut || run(&w16, Some(Variant::Cpu))]);
        report += &format!(
            "| conv3x3 | 64 -> 64 at {h}x{h} | {} | {} | {} | {} | {} |\n",
            rates(flop, ours[0]),
            rates(flop, ours[1]),
            rates(flop, ours[2]),
            gflops(flop, numpy_conv(h, c)),
            gflops(flop, torch_conv(h, c))
        );
    }

    // Attention at SD's largest level: 4096 queries and keys, 8 heads of 40, batch 2.
    {
        eprintln!("attention ...");
        let (b, l, c, heads) = (2, 4096, 320, 8);
        let flop = 4.0 * (b * l * l * c) as f64;
        let q = Tensor::from_f32(&gpu, &[b, l, c], &rng.vec(b * l * c, 1.0))?;
        let k = Tensor::from_f32(&gpu, &[b, l, c], &rng.vec(b * l * c, 1.0))?;
        let v = Tensor::from_f32(&gpu, &[b, l, c], &rng.vec(b * l * c, 1.0))?;
        let ours = best(&gpu, 2, || {
            let mut enc = gpu.encoder();
            percept::ops::attention::attention(&mut enc, &q, &k, &v, heads, false).unwrap();
        });
        // The vec4 kernel without subgroups (the previous default on CPU adapters).
        let plain = (gpu.kind == percept::gpu::AdapterKind::Cpu).then(|| {
            best(&gpu, 1, || {
                let mut enc = gpu.encoder();
                percept::ops::attention::attention_with(&mut enc, &q, &k, &v, heads, false, Variant::Cpu).unwrap();
            })
        });
        let torch = python(&format!(
            "import time, torch\ntorch.set_num_threads(2)\nq=torch.rand({b},{heads},{l},{d})\nk=torch.rand({b},{heads},{l},{d})\nv=torch.rand({b},{heads},{l},{d})\nf=torch.nn.functional.scaled_dot_product_attention\nf(q,k,v)\nb=1e9\nfor _ in range(3):\n t=time.perf_counter(); f(q,k,v); b=min(b,time.perf_counter()-t)\nprint(b)",
            d = c / heads
        ));
        report += &format!("| attention (fused) | batch {b}, {l} x {l}, {heads} heads of {} | {} | - | {} (f32) | - | {} |\n", c / heads, gflops(flop, Some(ours)), gflops(flop, plain), gflops(flop, torch));
    }

    eprintln!("TAESD ...");
    let taesd = Taesd::load(&gpu, &repo_root().join("weights/taesd"), DType::F32).context("loading TAESD")?;
    let z = Tensor::from_f32(&gpu, &[1, 64, 64, 4], &rng.vec(64 * 64 * 4, 1.0))?;
    let t_dec = best(&gpu, 1, || {
        let mut enc = gpu.encoder();
        taesd.decode(&mut enc, &z).unwrap();
    });
    let img = Tensor::from_f32(&gpu, &[1, 512, 512, 3], &rng.vec(512 * 512 * 3, 0.5).iter().map(|v| v + 0.5).collect::<Vec<_>>())?;
    let t_enc = best(&gpu, 1, || {
        let mut enc = gpu.encoder();
        taesd.encode(&mut enc, &img).unwrap();
    });
    report += &format!("\nTAESD (f32 weights): decode 64x64 latent -> 512x512 image {t_dec:.1} s; encode 512x512 image -> 64x64 latent {t_enc:.1} s.\n");
    publish(&report, &args)
}
