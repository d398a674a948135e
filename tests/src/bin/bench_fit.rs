//! Benchmark of decoder fitting (issue: fitting the decoders), not a test: `percept fit`'s
//! ridge beside himalaya's RidgeCV (numpy backend) on the same synthetic data, same alphas,
//! same 5 folds, in the same run: time, peak memory, chosen alpha, agreement of predictions.
//!
//! With `--fraction F`, himalaya runs on the first L / F targets only (its time on all of them
//! is then not measured, and the report says so), and percept is timed on that fraction too
//! (the same-run ratio) as well as on all L targets (time and peak memory). The peak of
//! percept's fit is the process's resident peak from just before the fit (reset through
//! /proc/self/clear_refs), so it includes the data the fit reads (x and y, as a CLI run holds
//! them) but not earlier work of this benchmark.
//!
//! `cargo run --release -p percept-tests --bin bench-fit -- [--trials 8000] [--voxels 15724]
//!  [--targets 6400] [--fraction 1 [--fraction-only]] [--compare-orders] [--himalaya ridge,kernel] [--skip-himalaya]
//!  [--write BENCHMARKS.md]`
//!
//! himalaya is run as RidgeCV and as KernelRidgeCV (linear kernel; its faster route when there
//! are fewer trials than voxels), each in its own process, and the ratio is given to each;
//! `--himalaya ridge` or `--himalaya kernel` runs one of them.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use percept::progress::Silent;
use percept::fit::{fit, Cv, FitSpec, RidgeOptions};
use percept_core::Target;
use percept_tests::{load_average, machine, publish, today};
use percept_tests::Rng;

fn arg(args: &[String], name: &str, default: usize) -> Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).context("missing value")?.parse().with_context(|| name.to_string()),
        None => Ok(default),
    }
}

/// Resets this process's resident peak (VmHWM) to its current size (Linux 4.0 and later).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system, all threads) of this process so far.
fn cpu_seconds() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<f64> = s.rsplit(')').next()?.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
            Some(f.iter().sum::<f64>() / 100.0)
        })
        .unwrap_or(0.0)
}

/// Peak resident memory of this process so far, in GB.
fn peak_gb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1e6)
}

fn write_npy(path: &std::path::Path, shape: &[usize], data: &[f32]) -> Result<()> {
    percept::io::npy::write(path, shape, data, true)?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-fit -- [--trials 8000] [--voxels 15724] [--targets 6400] [--fraction 1 [--fraction-only]] [--compare-orders] [--himalaya ridge,kernel] [--skip-himalaya] [--write BENCHMARKS.md]", &["--fraction-only", "--compare-orders", "--skip-himalaya"], &["--trials", "--voxels", "--targets", "--fraction", "--himalaya", "--write"])?;
    let (n, p, l) = (arg(&args, "--trials", 8000)?, arg(&args, "--voxels", 15724)?, arg(&args, "--targets", 6400)?);
    let skip = args.iter().any(|a| a == "--skip-himalaya");
    let test = 200;
    let load_start = load_average();
    let kinds: Vec<String> = match args.iter().position(|a| a == "--himalaya") {
        Some(i) => args.get(i + 1).context("--himalaya needs ridge, kernel or ridge,kernel")?.split(',').map(str::to_string).collect(),
        None => vec!["ridge".into(), "kernel".into()],
    };
    for k in &kinds {
        anyhow::ensure!(k == "ridge" || k == "kernel", "--himalaya {k}: expected ridge or kernel");
    }
    eprintln!("making {n} + {test} trials x {p} voxels -> {l} targets ...");
    // Targets from a rank-20 map plus noise: like latents, only partly predictable.
    let mut rng = Rng(5);
    let rank = 20;
    let a = rng.vec(p * rank, 1.0 / (p as f32).sqrt());
    let b = rng.vec(rank * l, 1.0);
    let x = rng.vec((n + test) * p, 1.0);
    let mut y = vec![0f32; (n + test) * l];
    for i in 0..n + test {
        let h: Vec<f32> = (0..rank).map(|k| (0..p).map(|j| x[i * p + j] * a[j * rank + k]).sum()).collect();
        for t in 0..l {
            y[i * l + t] = (0..rank).map(|k| h[k] * b[k * l + t]).sum::<f32>() + 2.0 * rng.uniform(1.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("percept-bench-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    write_npy(&dir.join("x.npy"), &[n + test, p], &x)?;
    write_npy(&dir.join("y.npy"), &[n + test, l], &y)?;

    let frac = arg(&args, "--fraction", 1)?.max(1);
    let lf = l / frac;
    let ridge = RidgeOptions { cv: Cv::KFold(5), per_target: false, ..RidgeOptions::takagi() };
    let alphas: Vec<String> = ridge.alphas.iter().map(|a| format!("{a:.17e}")).collect();
    let spec = |targets: usize| FitSpec { region: "bench".into(), target: Target::Z, target_shape: vec![targets], ridge: ridge.clone(), rank: None };
    // Held-out predictions `(test, targets)` of a fitted dense decoder, by one product.
    let predict = |f: &percept::fit::Fitted, targets: usize| -> Result<Vec<f32>> {
        let percept::fit::DecoderWeights::Dense(w) = &f.file.weights else { bail!("dense expected") };
        let z = faer::Mat::from_fn(test, p, |i, j| (x[(n + i) * p + j] - f.file.voxel_mean[j]) / f.file.voxel_std[j]);
        let wm = faer::MatRef::from_column_major_slice(w, p, targets);
        let pr: faer::Mat<f32> = &z * wm;
        Ok((0..test * targets).map(|k| pr[(k / targets, k % targets)] + f.file.bias[k % targets]).collect())
    };

    // Percept on the fraction himalaya runs on (the same-run ratio), then on all targets.
    let (mut ours_frac, mut alpha_frac) = (None, 0.0);
    if frac > 1 {
        eprintln!("percept fit, {lf} targets ...");
        let yf: Vec<f32> = (0..n).flat_map(|i| y[i * l..i * l + lf].iter().copied()).collect();
        let (t, c) = (Instant::now(), cpu_seconds());
        let f = fit(&x[..n * p], n, p, &yf, &spec(lf), &Silent)?;
        ours_frac = Some((t.elapsed().as_secs_f64(), cpu_seconds() - c));
        alpha_frac = f.alpha[0];
        eprintln!("  {:?} s", ours_frac);
        write_npy(&dir.join("pred.npy"), &[test, lf], &predict(&f, lf)?)?;
    }
    // --fraction-only: only the fraction (percept and himalaya), not percept on all targets.
    let fraction_only = frac > 1 && args.iter().any(|a| a == "--fraction-only");
    anyhow::ensure!(!(fraction_only && args.iter().any(|a| a == "--compare-orders")), "--compare-orders needs the fit on all targets (drop --fraction-only)");
    let (mut ours, mut ours_cpu) = (f64::NAN, f64::NAN);
    let mut all_row = format!("| percept fit (faer, f32), {l} targets | not run (--fraction-only) | | | | |\n");
    if !fraction_only {
        eprintln!("percept fit, {l} targets ...");
        let before = peak_gb();
        reset_peak();
        let (t, c) = (Instant::now(), cpu_seconds());
        let f = fit(&x[..n * p], n, p, &y[..n * l], &spec(l), &Silent)?;
        (ours, ours_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        let ours_peak = peak_gb();
        eprintln!("  {ours:.1} s ({ours_cpu:.1} CPU s), peak {ours_peak:.1} GB");
        if frac == 1 {
            alpha_frac = f.alpha[0];
            write_npy(&dir.join("pred.npy"), &[test, l], &predict(&f, l)?)?;
        }
        all_row = format!("| percept fit (faer, f32), {l} targets | {ours:.1} s | {ours_cpu:.1} s | {ours_peak:.1} GB (before the fit {before:.1} GB) | {:e} | |\n", f.alpha[0]);
    }
    // --compare-orders: the same fit with the targets projected first in every fold (the
    // order of the products before 2026-12-02), for the same-run ratio.
    let mut orders = String::new();
    if args.iter().any(|a| a == "--compare-orders") {
        eprintln!("percept fit, {l} targets, projected first ...");
        let mut s = spec(l);
        s.ridge.order = percept::fit::Order::ProjectFirst;
        let (t, c) = (Instant::now(), cpu_seconds());
        let g = fit(&x[..n * p], n, p, &y[..n * l], &s, &Silent)?;
        let (sec, csec) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        eprintln!("  {sec:.1} s ({csec:.1} CPU s)");
        orders = format!("| percept fit, {l} targets, targets projected first (the order before) | {sec:.1} s | {csec:.1} s | | {:e} | |\n| ratio projected first / new | {:.2} | {:.2} | | | |\n", g.alpha[0], sec / ours, csec / ours_cpu);
    }
    if frac > 1 {
        let yf: Vec<f32> = (0..n + test).flat_map(|i| y[i * l..i * l + lf].iter().copied()).collect();
        write_npy(&dir.join("y.npy"), &[n + test, lf], &yf)?;
    }
    let (ours_cmp, ours_cmp_cpu) = ours_frac.unwrap_or((ours, ours_cpu));

    let mut him = String::new();
    if skip {
        him += "| himalaya (numpy) | not run | | | | |\n";
    }
    for kind in kinds.iter().filter(|_| !skip) {
        let (name, model) = if kind == "ridge" {
            ("RidgeCV", "from himalaya.ridge import RidgeCV\nm=RidgeCV(alphas=al, cv=5, fit_intercept=False, solver_params=dict(local_alpha=False, n_targets_batch=4096, warn=False))")
        } else {
            ("KernelRidgeCV (linear kernel)", "from himalaya.kernel_ridge import KernelRidgeCV\nm=KernelRidgeCV(alphas=al, kernel='linear', cv=5, fit_intercept=False, solver_params=dict(local_alpha=False, n_targets_batch=4096))")
        };
        eprintln!("himalaya {name}, {lf} targets ...");
        let script = format!(
            "import time, resource, numpy as np\nfrom himalaya.backend import set_backend\nfrom himalaya.ridge import RidgeCV\nfrom sklearn.preprocessing import StandardScaler\n\
             set_backend('numpy')\nx=np.load('{d}/x.npy'); y=np.load('{d}/y.npy'); n={n}\nxtr, ytr = x[:n], y[:n]\nal=np.array([{al}])\n\
             cpu=lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\nt=time.perf_counter(); c=cpu()\ns=StandardScaler().fit(xtr); xs=s.transform(xtr).astype(np.float32); ym=ytr.mean(0); yc=(ytr-ym).astype(np.float32)\n\
             {model}\nm.fit(xs, yc)\nsec=time.perf_counter()-t; csec=cpu()-c\n\
             ph=np.asarray(m.predict(s.transform(x[n:]).astype(np.float32)))+ym\npp=np.load('{d}/pred.npy')\nr=np.corrcoef(ph.ravel(), pp.ravel())[0,1]\n\
             print(sec, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1e6, float(np.unique(np.asarray(m.best_alphas_))[0]), r, csec)",
            d = dir.display(),
            al = alphas.join(",")
        );
        let out = Command::new("python3").args(["-c", &script]).env_remove("OPENBLAS_CORETYPE").env_remove("OPENBLAS_L2_SIZE").output()?;
        if out.status.success() {
            let v: Vec<f64> = String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse().ok()).collect();
            if let [sec, gb, alpha, r, csec] = v[..] {
                eprintln!("  {sec:.1} s ({csec:.1} CPU s)");
                him += &format!(
                    "| himalaya {name} (numpy), {lf} targets | {sec:.1} s | {csec:.1} s | {gb:.1} GB | {alpha:e} | {r:.6} |\n| ratio himalaya {name} / percept, {lf} targets | {:.2} | {:.2} | | | |\n",
                    sec / ours_cmp,
                    csec / ours_cmp_cpu
                );
            }
        } else {
            eprintln!("himalaya {name} failed: {}", String::from_utf8_lossy(&out.stderr));
            him += &format!("| himalaya {name} (numpy), {lf} targets | failed (see the benchmark's stderr) | | | | |\n");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let date = today();
    let frac_row = match ours_frac {
        Some((sec, csec)) => format!("| percept fit (faer, f32), {lf} targets | {sec:.1} s | {csec:.1} s | | {alpha_frac:e} | 1 |\n"),
        None => String::new(),
    };
    let frac_arg = if frac > 1 { format!(" --fraction {frac}{}", if fraction_only { " --fraction-only" } else { "" }) } else { String::new() };
    let him_arg = if skip { " --skip-himalaya".to_string() } else if kinds.len() == 1 { format!(" --himalaya {}", kinds[0]) } else { String::new() };
    let report = format!(
        "## Decoder fitting ({date})\n\nMachine: {}; load average {load_start} at the start, {} at the end. Synthetic data: {n} training trials x {p} voxels -> {l} targets, 7 alphas (1e-6 ... 1), 5-fold CV, one alpha for all targets (as `percept fit` does unless `--per-target`); predictions compared on 200 held-out trials{}.\n\
         Command: `cargo run --release -p percept-tests --bin bench-fit -- --trials {n} --voxels {p} --targets {l}{}`.\n\n\
         | | time | CPU time (user + system, all threads) | peak memory (process, incl. data) | alpha chosen | prediction r vs percept |\n|---|---|---|---|---|---|\n\
         {all_row}{orders}{frac_row}{him}",
        machine(),
        load_average(),
        if frac > 1 { format!("; himalaya on the first {lf} targets (1/{frac}) only, percept on those and on all") } else { String::new() },
        frac_arg + &him_arg,
    );
    publish(&report, &args)
}
