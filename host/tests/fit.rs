//! Ridge fitting: recovers a known linear map, chooses alphas as brute-force cross-validation
//! does (k-fold and leave-one-out), exports working decoders, and names bad input.

use crate::common;
use common::rand;
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use percept::progress::Silent;
use percept::fit::ridge::{self, log_grid, Cv, Order, RidgeOptions, Score, Solver};
use percept::fit::{fit, FitSpec};
use percept_core::{Decoder, Target};

/// Brute-force ridge in f64: `W = (X^T X + alpha I)^-1 X^T Y`.
fn solve(x: &Mat<f64>, y: &Mat<f64>, alpha: f64) -> Mat<f64> {
    let p = x.ncols();
    let a: Mat<f64> = x.transpose() * x + Mat::<f64>::identity(p, p) * alpha;
    let b: Mat<f64> = x.transpose() * y;
    a.llt(Side::Lower).unwrap().solve(&b)
}

fn rows(m: &Mat<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), m.ncols(), |i, j| m[(idx[i], j)])
}

/// Brute-force CV score (negative MSE averaged over folds and targets) for each alpha.
fn brute_cv(x: &Mat<f64>, y: &Mat<f64>, alphas: &[f64], folds: &[(Vec<usize>, Vec<usize>)]) -> Vec<f64> {
    alphas
        .iter()
        .map(|&a| {
            let mut s = 0.0;
            for (tr, te) in folds {
                let w = solve(&rows(x, tr), &rows(y, tr), a);
                let pred: Mat<f64> = rows(x, te) * &w;
                let yt = rows(y, te);
                let mut se = 0.0;
                for j in 0..y.ncols() {
                    for i in 0..te.len() {
                        se += (yt[(i, j)] - pred[(i, j)]).powi(2) / te.len() as f64;
                    }
                }
                s -= se / folds.len() as f64;
            }
            s / y.ncols() as f64
        })
        .collect()
}

fn problem(n: usize, p: usize, l: usize, noise: f32, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = rand(n * p, seed, 1.0);
    let w = rand(p * l, seed + 1, 1.0);
    let e = rand(n * l, seed + 2, noise);
    let mut y = vec![0f32; n * l];
    for i in 0..n {
        for t in 0..l {
            y[i * l + t] = (0..p).map(|j| x[i * p + j] * w[j * l + t]).sum::<f32>() + e[i * l + t] + 0.5;
        }
    }
    (x, w, y)
}

/// Standardised inputs and centred targets, as `fit` sees them, in f64.
fn prepared(x: &[f32], y: &[f32], n: usize, p: usize, l: usize) -> (Mat<f64>, Mat<f64>) {
    let xm = Mat::from_fn(n, p, |i, j| x[i * p + j] as f64);
    let mean: Vec<f64> = (0..p).map(|j| (0..n).map(|i| xm[(i, j)]).sum::<f64>() / n as f64).collect();
    let sd: Vec<f64> = (0..p).map(|j| ((0..n).map(|i| (xm[(i, j)] - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt()).collect();
    let xs = Mat::from_fn(n, p, |i, j| (xm[(i, j)] - mean[j]) / sd[j]);
    let ym: Vec<f64> = (0..l).map(|t| (0..n).map(|i| y[i * l + t] as f64).sum::<f64>() / n as f64).collect();
    let ys = Mat::from_fn(n, l, |i, t| y[i * l + t] as f64 - ym[t]);
    (xs, ys)
}

fn ridge_on(x: &Mat<f64>, y: &Mat<f64>, opts: &RidgeOptions) -> ridge::RidgeFit {
    let xf = Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] as f32);
    let yf = Mat::from_fn(y.nrows(), y.ncols(), |i, j| y[(i, j)] as f32);
    ridge::fit(xf.as_ref(), yf.as_ref(), opts, &Silent).unwrap()
}

#[test]
fn kfold_scores_and_choice_match_brute_force_in_both_regimes() {
    // The primal route; the kernel route (more voxels than trials: the alphas scored from the
    // targets' Gram matrix unless every alpha is predicted) by each solver, with unequal folds.
    let kernel = [Solver::Eigen, Solver::Cholesky].into_iter().flat_map(|s| [(33, 80, s, false), (33, 80, s, true)]);
    for (n, p, solver, corr_every_alpha) in [(60, 12, Solver::Auto, false)].into_iter().chain(kernel) {
        let l = 3;
        let (x, _, y) = problem(n, p, l, 2.0, 7 + p as u64);
        let (xs, ys) = prepared(&x, &y, n, p, l);
        let alphas = log_grid(-2.0, 4.0, 13);
        let opts = RidgeOptions { alphas: alphas.clone(), cv: Cv::KFold(5), per_target: false, target_chunk: 2, solver, corr_every_alpha, ..Default::default() };
        let r = ridge_on(&xs, &ys, &opts);
        let what = format!("n={n} p={p} ({solver:?}, every alpha predicted: {corr_every_alpha})");
        // scikit-learn's KFold(5): contiguous folds, the first n % 5 one larger.
        let mut folds = Vec::new();
        let mut start = 0;
        for f in 0..5 {
            let size = n / 5 + usize::from(f < n % 5);
            folds.push(((0..n).filter(|i| !(start..start + size).contains(i)).collect(), (start..start + size).collect()));
            start += size;
        }
        let want = brute_cv(&xs, &ys, &alphas, &folds);
        for (a, (got, want)) in r.cv_score.iter().zip(&want).enumerate() {
            assert!((got - want).abs() <= 1e-3 * want.abs() + 1e-5, "{what} alpha {}: score {got} vs brute force {want}", alphas[a]);
        }
        let best = (0..alphas.len()).max_by(|&a, &b| want[a].total_cmp(&want[b])).unwrap();
        assert_eq!(r.alpha[0], alphas[best], "{what}: chose {} where brute force chose {}", r.alpha[0], alphas[best]);
        // The refit weights are the brute-force solution at that alpha.
        let w = solve(&xs, &ys, alphas[best]);
        for j in 0..p {
            for t in 0..l {
                assert!((r.weight(j, t) as f64 - w[(j, t)]).abs() < 1e-3 * (1.0 + w[(j, t)].abs()), "weight ({j}, {t})");
            }
        }
    }
}

#[test]
fn leave_one_out_shortcut_matches_refitting_n_times() {
    for (n, p) in [(25, 6), (15, 40)] {
        let l = 2;
        let (x, _, y) = problem(n, p, l, 1.0, 3 + p as u64);
        let (xs, ys) = prepared(&x, &y, n, p, l);
        let alphas = log_grid(-1.0, 3.0, 9);
        let opts = RidgeOptions { alphas: alphas.clone(), cv: Cv::LeaveOneOut, per_target: false, target_chunk: 8, ..Default::default() };
        let r = ridge_on(&xs, &ys, &opts);
        // Leave-one-out scores by refitting without each trial in turn (y already centred).
        let folds: Vec<(Vec<usize>, Vec<usize>)> = (0..n).map(|i| ((0..n).filter(|&k| k != i).collect(), vec![i])).collect();
        let want = brute_cv(&xs, &ys, &alphas, &folds);
        for (a, (got, want)) in r.cv_score.iter().zip(&want).enumerate() {
            assert!((got - want).abs() <= 2e-3 * want.abs() + 1e-4, "n={n} p={p} alpha {}: LOO score {got} vs refits {want}", alphas[a]);
        }
    }
}

#[test]
fn recovers_a_known_map_and_the_decoder_reproduces_it() {
    let (n, p, l) = (400, 30, 12);
    let (x, w_true, y) = problem(n, p, l, 0.05, 11);
    let spec = FitSpec {
        region: "early_visual".into(),
        target: Target::Z,
        target_shape: vec![3, 4],
        ridge: RidgeOptions { alphas: log_grid(-3.0, 3.0, 7), cv: Cv::KFold(5), per_target: true, target_chunk: 5, ..Default::default() },
        rank: None,
    };
    let f = fit(&x, n, p, &y, &spec, &Silent).unwrap();
    assert!(f.cv_r.iter().all(|&r| r > 0.99), "cross-validated r {:?}", f.cv_r);
    // Decode fresh trials through percept-core and compare with the true map.
    let bytes = f.file.to_bytes().unwrap();
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    let aligned: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) };
    aligned[..bytes.len()].copy_from_slice(&bytes);
    let dec = Decoder::from_bytes(&aligned[..bytes.len()]).unwrap();
    let xt = rand(20 * p, 99, 1.0);
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0; l];
    let mut worst = 0.0f32;
    for i in 0..20 {
        dec.decode(&xt[i * p..(i + 1) * p], &mut scratch, &mut out).unwrap();
        for t in 0..l {
            let want = (0..p).map(|j| xt[i * p + j] * w_true[j * l + t]).sum::<f32>() + 0.5;
            worst = worst.max((out[t] - want).abs());
        }
    }
    assert!(worst < 0.1, "decoded latents differ from the true map by up to {worst}");
    // A shuffled pairing of trials and targets must not be fitted.
    let mut shuffled = y.clone();
    shuffled.rotate_left(l * 37);
    let g = fit(&x, n, p, &shuffled, &spec, &Silent).unwrap();
    let mean_r = g.cv_r.iter().sum::<f32>() / l as f32;
    assert!(mean_r < 0.3, "shuffled targets gave cross-validated r {mean_r}");
}

#[test]
fn per_target_alphas_follow_the_noise() {
    // Target 0 is clean, target 1 is nearly all noise: one alpha each, far apart.
    let (n, p) = (120, 40);
    let x = rand(n * p, 5, 1.0);
    let w = rand(p, 6, 1.0);
    let e = rand(n, 7, 1.0);
    let y: Vec<f32> = (0..n).flat_map(|i| {
        let s: f32 = (0..p).map(|j| x[i * p + j] * w[j]).sum();
        [s, 0.02 * s + 5.0 * e[i]]
    }).collect();
    let (xs, ys) = prepared(&x, &y, n, p, 2);
    let opts = RidgeOptions { alphas: log_grid(-3.0, 5.0, 17), cv: Cv::KFold(5), per_target: true, target_chunk: 1, ..Default::default() };
    let r = ridge_on(&xs, &ys, &opts);
    assert!(r.alpha[1] > 100.0 * r.alpha[0], "alphas {:?}", r.alpha);
}

#[test]
fn low_rank_export_is_exact_for_a_low_rank_map() {
    let (n, p, l, k) = (300, 20, 16, 3);
    let x = rand(n * p, 21, 1.0);
    let a = rand(p * k, 22, 1.0);
    let b = rand(k * l, 23, 1.0);
    let y: Vec<f32> = (0..n).flat_map(|i| (0..l).map(move |t| (i, t))).map(|(i, t)| (0..k).map(|c| (0..p).map(|j| x[i * p + j] * a[j * k + c]).sum::<f32>() * b[c * l + t]).sum()).collect();
    let mk = |rank| FitSpec { region: "v".into(), target: Target::C, target_shape: vec![l], ridge: RidgeOptions { alphas: vec![1e-3], cv: Cv::KFold(3), per_target: false, target_chunk: 64, ..Default::default() }, rank };
    let dense = fit(&x, n, p, &y, &mk(None), &Silent).unwrap();
    let low = fit(&x, n, p, &y, &mk(Some(k)), &Silent).unwrap();
    let percept::fit::DecoderWeights::Dense(wd) = &dense.file.weights else { panic!() };
    let percept::fit::DecoderWeights::LowRank { u, vt, rank } = &low.file.weights else { panic!() };
    assert_eq!(*rank, k);
    for t in 0..l {
        for j in 0..p {
            let w = (0..k).map(|c| u[t * k + c] * vt[c * p + j]).sum::<f32>();
            assert!((w - wd[t * p + j]).abs() < 1e-3 * (1.0 + wd[t * p + j].abs()), "({t}, {j}): {w} vs {}", wd[t * p + j]);
        }
    }
    let e = fit(&x, n, p, &y, &mk(Some(50)), &Silent).unwrap_err().to_string();
    assert!(e.contains("--rank 50"), "{e}");
}

#[test]
fn bad_input_is_named() {
    let (n, p) = (10, 4);
    let spec = FitSpec { region: "v".into(), target: Target::Z, target_shape: vec![2], ridge: RidgeOptions::takagi(), rank: None };
    let bar = Silent;
    let mut x = rand(n * p, 1, 1.0);
    let y = rand(n * 2, 2, 1.0);
    for i in 0..n {
        x[i * p + 2] = 3.0;
    }
    let e = fit(&x, n, p, &y, &spec, &bar).unwrap_err().to_string();
    assert!(e.contains("voxel 2 is constant"), "{e}");
    let mut x = rand(n * p, 1, 1.0);
    x[5 * p + 1] = f32::NAN;
    let e = fit(&x, n, p, &y, &spec, &bar).unwrap_err().to_string();
    assert!(e.contains("voxel 1 of trial 5"), "{e}");
    let x = rand(n * p, 1, 1.0);
    let e = fit(&x, n, p, &y[..18], &spec, &bar).unwrap_err().to_string();
    assert!(e.contains("18 values, expected 10 trials x 2"), "{e}");
    let e = fit(&x, n, p, &y, &FitSpec { ridge: RidgeOptions { cv: Cv::KFold(20), ..RidgeOptions::takagi() }, ..spec.clone() }, &bar).unwrap_err().to_string();
    assert!(e.contains("20-fold"), "{e}");
}

/// `x (n, p)`, `y (n, l)` with `y = x w + noise`, `w` of variance `tau2`, noise of variance 1/3
/// (uniform values): the best ridge alpha is near `noise variance / tau2`.
fn prior_data(n: usize, p: usize, l: usize, tau2: f32, seed: u64) -> (Mat<f32>, Mat<f32>) {
    let xs = rand(n * p, seed, 3f32.sqrt());
    let ws = rand(p * l, seed + 1, (3.0 * tau2).sqrt());
    let es = rand(n * l, seed + 2, 1.0);
    let x = Mat::from_fn(n, p, |i, j| xs[i * p + j]);
    let y = Mat::from_fn(n, l, |i, t| (0..p).map(|j| xs[i * p + j] * ws[j * l + t]).sum::<f32>() + es[i * l + t]);
    (x, y)
}

#[test]
fn the_default_grid_finds_an_alpha_between_decades() {
    // Data whose best alpha (~3e3 here) lies between two decades.
    let (x, y) = prior_data(300, 60, 12, 1.0 / 25000.0, 41);
    let fine = RidgeOptions { alphas: log_grid(1.0, 6.0, 201), ..Default::default() };
    let best_fine = ridge::fit(x.as_ref(), y.as_ref(), &fine, &Silent).unwrap().alpha[0];
    let frac = best_fine.log10().fract();
    assert!((0.2..0.8).contains(&frac), "the data's best alpha {best_fine:e} should lie between decades");
    let chosen = ridge::fit(x.as_ref(), y.as_ref(), &RidgeOptions::default(), &Silent).unwrap().alpha[0];
    let ratio = (chosen / best_fine).max(best_fine / chosen);
    assert!(ratio <= 1.5, "default grid chose {chosen:e}, the fine grid {best_fine:e} (x{ratio:.2})");
    // A decade grid lands further away: the fine default matters.
    let decades = RidgeOptions { alphas: log_grid(-2.0, 7.0, 10), ..Default::default() };
    let coarse = ridge::fit(x.as_ref(), y.as_ref(), &decades, &Silent).unwrap().alpha[0];
    assert!((coarse / best_fine).max(best_fine / coarse) > ratio, "decade grid {coarse:e}");
}

#[test]
fn an_alpha_at_the_end_of_the_grid_warns() {
    let (x, y) = prior_data(200, 40, 6, 1.0 / 9500.0, 7);
    let (n, p, l) = (x.nrows(), x.ncols(), y.ncols());
    let xv: Vec<f32> = (0..n).flat_map(|i| (0..p).map(move |j| (i, j))).map(|(i, j)| x[(i, j)]).collect();
    let yv: Vec<f32> = (0..n).flat_map(|i| (0..l).map(move |j| (i, j))).map(|(i, j)| y[(i, j)]).collect();
    let spec = |alphas: Vec<f64>| FitSpec { region: "v".into(), target: Target::C, target_shape: vec![l], ridge: RidgeOptions { alphas, ..Default::default() }, rank: None };
    let low = spec(log_grid(-3.0, -1.0, 3));
    let f = fit(&xv, n, p, &yv, &low, &Silent).unwrap();
    let w = f.warning.clone().expect("an alpha at the top of the grid must warn");
    assert!(w.contains("largest") && w.contains("upwards"), "{w}");
    assert!(percept::fit::report(&f, &low, n, p, "test", 0.0).contains(&w));
    let high = spec(log_grid(6.0, 8.0, 3));
    let w = fit(&xv, n, p, &yv, &high, &Silent).unwrap().warning.expect("bottom of the grid");
    assert!(w.contains("smallest") && w.contains("downwards"), "{w}");
    assert!(fit(&xv, n, p, &yv, &spec(percept::fit::ridge::wide_grid()), &Silent).unwrap().warning.is_none());
}

#[test]
fn correlation_and_error_are_reported_for_every_alpha() {
    let (x, y) = prior_data(120, 30, 4, 1.0 / 100.0, 3);
    for score in [Score::NegMse, Score::Correlation] {
        let opts = RidgeOptions { alphas: log_grid(-1.0, 4.0, 11), score, ..Default::default() };
        let r = ridge::fit(x.as_ref(), y.as_ref(), &opts, &Silent).unwrap();
        assert_eq!((r.cv_score.len(), r.cv_corr.len()), (11, 11));
        let corr: Vec<f64> = r.cv_corr.iter().map(|c| c.expect("the primal route predicts every alpha")).collect();
        let pick = |v: &[f64]| opts.alphas[(0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()];
        let want = match score {
            Score::NegMse => pick(&r.cv_score),
            Score::Correlation => pick(&corr),
        };
        assert_eq!(r.alpha[0], want, "{score:?}");
        let i = opts.alphas.iter().position(|&a| a == want).unwrap();
        let mean_r = r.cv_r.iter().map(|&v| v as f64).sum::<f64>() / r.cv_r.len() as f64;
        assert!((mean_r - corr[i]).abs() < 1e-4, "cv_r at the chosen alpha {mean_r} vs {}", corr[i]);
    }
}

/// Two fits of the same problem agree: scores to 1e-4 (relative), correlations to 1e-4, weights
/// to 1e-3 (relative).
fn assert_fits_agree(a: &ridge::RidgeFit, b: &ridge::RidgeFit, what: &str) {
    for (i, (u, v)) in a.cv_score.iter().zip(&b.cv_score).enumerate() {
        assert!((u - v).abs() <= 1e-4 * u.abs() + 1e-6, "{what}: score of alpha {i}: {u} vs {v}");
    }
    for (i, (u, v)) in a.cv_corr.iter().zip(&b.cv_corr).enumerate() {
        match (u, v) {
            (Some(u), Some(v)) => assert!((u - v).abs() <= 1e-4, "{what}: correlation of alpha {i}: {u} vs {v}"),
            _ => assert_eq!(u.is_some(), v.is_some(), "{what}: correlation of alpha {i} computed in one fit only"),
        }
    }
    for (t, (u, v)) in a.cv_r.iter().zip(&b.cv_r).enumerate() {
        assert!((u - v).abs() <= 1e-4, "{what}: correlation of target {t} at the chosen alpha: {u} vs {v}");
    }
    for (i, (u, v)) in a.weights.iter().zip(&b.weights).enumerate() {
        assert!((u - v).abs() <= 1e-3 * (1.0 + u.abs()), "{what}: weight {i}: {u} vs {v}");
    }
}

#[test]
fn both_orders_of_the_target_products_agree() {
    // Kernel (n < p) and primal regimes, one alpha and one per target (columns of a chunk
    // then go to different alphas), chunks that do not divide the targets.
    for (n, p, per_target) in [(40, 90, false), (40, 90, true), (70, 15, false), (70, 15, true)] {
        let l = 7;
        let (x, _, y) = problem(n, p, l, 1.5, 11 + p as u64);
        let (xs, ys) = prepared(&x, &y, n, p, l);
        let run = |order| {
            // Every alpha predicted, so that both orders of the cross-validation's products run.
            let opts = RidgeOptions { alphas: log_grid(-1.0, 4.0, 9), cv: Cv::KFold(5), per_target, target_chunk: 3, order, corr_every_alpha: true, ..Default::default() };
            ridge_on(&xs, &ys, &opts)
        };
        let (a, b) = (run(Order::ProjectFirst), run(Order::TargetsLast));
        assert_eq!(a.alpha, b.alpha, "n={n} p={p} per_target={per_target}: alphas");
        assert_fits_agree(&a, &b, &format!("n={n} p={p}"));
    }
}

#[test]
fn cholesky_per_alpha_and_the_eigendecomposition_agree() {
    // The kernel route (n < p), one alpha and one per target, both orders of the refit.
    for (n, p, per_target, order) in [(40, 90, false, Order::Auto), (40, 90, true, Order::ProjectFirst), (45, 60, false, Order::TargetsLast), (45, 60, true, Order::TargetsLast)] {
        let l = 7;
        let (x, _, y) = problem(n, p, l, 1.5, 5 + p as u64);
        let (xs, ys) = prepared(&x, &y, n, p, l);
        let run = |solver| {
            let opts = RidgeOptions { alphas: log_grid(-1.0, 4.0, 9), cv: Cv::KFold(5), per_target, target_chunk: 3, order, solver, ..Default::default() };
            ridge_on(&xs, &ys, &opts)
        };
        let (e, c) = (run(Solver::Eigen), run(Solver::Cholesky));
        assert_eq!((e.solver, e.fallbacks, c.solver, c.fallbacks), (Solver::Eigen, 0, Solver::Cholesky, 0), "n={n} p={p}: the routes taken");
        assert_eq!(e.alpha, c.alpha, "n={n} p={p} per_target={per_target}: alphas");
        assert_fits_agree(&e, &c, &format!("n={n} p={p}"));
    }
    // Auto: Cholesky for a few alphas, the eigendecomposition for the wide grid.
    assert!(ridge::cholesky_pays(7, 8000, 5) && !ridge::cholesky_pays(46, 8000, 5));
}

#[test]
fn alphas_scored_from_the_targets_gram_matrix_agree_with_predicting_every_alpha() {
    // One alpha for all by -MSE on the kernel route: each solver, folds of unequal size,
    // chunks of targets that do not divide them.
    for (n, p, solver) in [(43, 90, Solver::Eigen), (43, 90, Solver::Cholesky), (52, 70, Solver::Auto)] {
        let l = 7;
        let (x, _, y) = problem(n, p, l, 1.5, 17 + p as u64);
        let (xs, ys) = prepared(&x, &y, n, p, l);
        let run = |corr_every_alpha| {
            let opts = RidgeOptions { alphas: log_grid(-1.0, 4.0, 9), cv: Cv::KFold(5), target_chunk: 3, solver, corr_every_alpha, ..Default::default() };
            ridge_on(&xs, &ys, &opts)
        };
        let (all, traced) = (run(true), run(false));
        let what = format!("n={n} p={p} {solver:?}");
        assert_eq!(all.alpha, traced.alpha, "{what}: alphas");
        assert!(all.cv_corr.iter().all(Option::is_some), "{what}: every alpha predicted");
        let chosen = log_grid(-1.0, 4.0, 9).iter().position(|&a| a == traced.alpha[0]).unwrap();
        let computed: Vec<usize> = (0..9).filter(|&a| traced.cv_corr[a].is_some()).collect();
        assert_eq!(computed, [chosen], "{what}: only the chosen alpha's correlation");
        let mut expected = all.cv_corr.clone();
        expected.iter_mut().enumerate().filter(|(a, _)| *a != chosen).for_each(|(_, c)| *c = None);
        assert_fits_agree(&ridge::RidgeFit { cv_corr: expected, ..all }, &traced, &what);
    }
}

#[test]
fn the_report_says_which_alphas_correlations_were_not_computed() {
    let (n, p, l) = (30, 80, 4);
    let (x, _, y) = problem(n, p, l, 1.0, 23);
    let spec = |corr_every_alpha| FitSpec { region: "v".into(), target: Target::C, target_shape: vec![l], ridge: RidgeOptions { alphas: log_grid(-1.0, 3.0, 5), corr_every_alpha, ..Default::default() }, rank: None };
    for every in [false, true] {
        let f = fit(&x, n, p, &y, &spec(every), &Silent).unwrap();
        let report = percept::fit::report(&f, &spec(every), n, p, "test", 0.0);
        let dashes = report.lines().filter(|r| r.starts_with("| ") && r.contains("| - |")).count();
        assert_eq!(dashes, if every { 0 } else { 4 }, "every alpha predicted: {every}\n{report}");
        assert_eq!(report.contains("`--corr-every-alpha`"), !every, "{report}");
    }
}

#[test]
fn cholesky_falls_back_to_the_eigendecomposition_where_k_is_singular() {
    // Two identical trials: K = [[1, 1], [1, 1]] is singular and alpha below f32's resolution,
    // so the refit's factorisation meets a zero pivot; the eigendecomposition takes over.
    let x = Mat::from_fn(2, 2, |_, j| if j == 0 { 1.0f32 } else { 0.0 });
    let y = Mat::from_fn(2, 1, |_, _| 3.0f32);
    let opts = RidgeOptions { alphas: vec![1e-30], cv: Cv::KFold(2), solver: Solver::Cholesky, ..Default::default() };
    let r = ridge::fit(x.as_ref(), y.as_ref(), &opts, &Silent).unwrap();
    assert_eq!((r.solver, r.fallbacks), (Solver::Eigen, 1));
    assert!(r.weights.iter().all(|w| w.is_finite()) && r.intercept == [3.0], "{:?} {:?}", r.weights, r.intercept);
}
