//! Ridge regression with the regularisation chosen by cross-validation, as Takagi & Nishimoto
//! fitted their decoders with himalaya's RidgeCV after standardising the voxels.
//!
//! One eigendecomposition per training set serves every alpha: with more voxels than trials
//! the kernel `X X^T = U L U^T` is decomposed (n x n), otherwise `X^T X = V L V^T` (p x p).
//! Either way the weights and predictions for alpha are `Wb diag(1 / (l + alpha)) A` with
//! `A = U^T Y` (kernel) or `V^T X^T Y` (primal), so trying another alpha costs one product.
//! With few alphas (Takagi & Nishimoto's 7) and k folds, the kernel route instead factorises
//! `K + alpha I` once per alpha and training set (Cholesky): `H_a = K_te (K + alpha I)^-1`
//! and the refit's weights `X^T (K + alpha I)^-1 Y`. A factorisation costs a small part of an
//! eigendecomposition and, unlike it, runs at the speed of matrix products; [`cholesky_pays`]
//! counts both and [`Solver::Auto`] takes the cheaper. Where a factorisation fails (`K + alpha
//! I` not positive definite in f32) that training set goes back to the eigendecomposition, and
//! [`RidgeFit::fallbacks`] counts it.
//! Alpha is chosen by k-fold cross-validation (contiguous folds, as scikit-learn's KFold, the
//! splitter himalaya uses) or by the exact leave-one-out shortcut `(y - yhat) / (1 - H_ii)`;
//! the score is the negative mean squared error, averaged over folds, with himalaya's tiny
//! preference for larger alphas on ties; one alpha for all targets or one per target.
//! With one alpha for all targets, that score and the kernel route, the alphas are scored
//! from the targets' Gram matrix instead of from every alpha's predictions, and only the
//! chosen alpha is predicted (`fit::gram_cv`; at NSD scale 7e12 multiply-adds where predicting
//! every alpha took 2.1e13), unless [`RidgeOptions::corr_every_alpha`] asks for every alpha's
//! correlations.
//!
//! With many targets (a c decoder: 59,136) the products with the targets dominate, and their
//! order matters: `B diag(g) (Phi Y)` projects the targets once per fold and then costs one
//! `(m, r) x (r, T)` product per alpha, while `(B diag(g) Phi) Y` forms a `(m, n_train)` matrix
//! per alpha (cheap) and then one `(m, n_train) x (n_train, T)` product per alpha, skipping the
//! projection (`Phi`: `U^T`, or `V^T X^T`). The refit likewise multiplies the targets once by
//! `Wb diag(g) Phi (p, n)` instead of projecting them first. [`Order::Auto`] takes the order
//! with fewer multiply-adds. The targets are read in place (no centred copy: the mean is taken
//! off each chunk as it is gathered) and the weights are written straight into the decoder's
//! `(L, p)` layout.

use faer::{Mat, MatRef};

use super::eigen::{decompose_gram, gather_centred, outer, scaled_product, Decomp, Stats};
use super::cholesky::{cholesky_hats, refit_cholesky};
use super::gram_cv::{fold_blocks, fold_ranges, score_alphas, Targets};
pub use super::cholesky::cholesky_pays;
pub use super::grid::{alpha_label, edge_warning, log_grid, wide_grid};
use super::options::choose_last;
pub use super::options::{Cv, Order, RidgeOptions, Score, Solver};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// A fitted ridge model on standardised inputs.
#[derive(Debug)]
pub struct RidgeFit {
    /// `(L, p)` row-major: target t's weights are `weights[t * p..(t + 1) * p]`.
    pub weights: Vec<f32>,
    /// `(L)`: the mean of each target.
    pub intercept: Vec<f32>,
    /// `(L)`: the alpha chosen for each target.
    pub alpha: Vec<f64>,
    /// `(L)`: correlation of cross-validated predictions with the targets, at the chosen alpha.
    pub cv_r: Vec<f32>,
    /// `(n_alphas)`: cross-validated score (negative MSE) averaged over targets, per alpha.
    pub cv_score: Vec<f64>,
    /// `(n_alphas)`: correlation of cross-validated predictions with the targets, averaged over
    /// targets, per alpha; None for the alphas not predicted (only the chosen one is when the
    /// alphas were scored from the targets' Gram matrix: [`RidgeOptions::corr_every_alpha`]).
    pub cv_corr: Vec<Option<f64>>,
    /// How the refit's systems were solved ([`Solver::Eigen`] or [`Solver::Cholesky`]).
    pub solver: Solver,
    /// Training sets (folds, then the refit) where a Cholesky factorisation failed (`K + alpha
    /// I` not positive definite in f32) and the eigendecomposition was used instead.
    pub fallbacks: usize,
}

impl RidgeFit {
    /// The weight of input `j` for target `t`.
    pub fn weight(&self, j: usize, t: usize) -> f32 {
        let p = self.weights.len() / self.intercept.len().max(1);
        self.weights[t * p + j]
    }
}


/// Fits `y (n, L)` from standardised `x (n, p)`; `y` is centred here (the intercept).
pub fn fit(x: MatRef<'_, f32>, y: MatRef<'_, f32>, opts: &RidgeOptions, bar: &dyn Progress) -> Result<RidgeFit> {
    let (n, p, l) = (x.nrows(), x.ncols(), y.ncols());
    if y.nrows() != n {
        return Err(Error::Shape(format!("ridge: {n} trials of voxels but {} of targets", y.nrows())));
    }
    if opts.alphas.is_empty() || opts.alphas.iter().any(|a| !(a.is_finite() && *a > 0.0)) {
        return Err(Error::Invalid(format!("ridge: alphas must be positive and finite, got {:?}", opts.alphas)));
    }
    let folds = match opts.cv {
        Cv::KFold(k) if k < 2 || k > n => return Err(Error::Invalid(format!("ridge: {k}-fold cross-validation needs 2 <= k <= {n} trials"))),
        Cv::KFold(k) => k,
        Cv::LeaveOneOut => 1,
    };
    if n < 2 || p == 0 {
        return Err(Error::Invalid(format!("ridge: need at least 2 trials and 1 voxel, got {n} x {p}")));
    }
    let intercept: Vec<f32> = (0..l).map(|j| ((0..n).map(|i| y[(i, j)] as f64).sum::<f64>() / n as f64) as f32).collect();
    // Centred targets `rows x (c0..c1)`, gathered chunk by chunk (no copy of all of `y`).
    let centred = |rows: &[usize], c0: usize, c1: usize, out: &mut Mat<f32>| gather_centred(y, &intercept, rows, c0, c1, out);
    // Chunks of centred targets, reused from chunk to chunk.
    let (mut ytr, mut yte, mut yk) = (Mat::new(), Mat::new(), Mat::new());
    let all: Vec<usize> = (0..n).collect();
    let na = opts.alphas.len();
    let chunk = opts.target_chunk.max(1);
    let mut stats = Stats::new(na, l);
    // One alpha for all by -MSE on the kernel route: alphas scored from the targets' Gram matrix.
    let traced = matches!(opts.cv, Cv::KFold(_)) && n <= p && !opts.per_target && opts.score == Score::NegMse && !opts.corr_every_alpha;
    let mut traced_score = Vec::new();
    // Progress: the cross-validation's steps (the targets' Gram matrix, each fold's scores and
    // predictions when traced, else one per fold and chunk), then the refit's.
    let chunks = l.div_ceil(chunk);
    let cv_ticks = if traced { (folds + 1) * chunks + folds } else { folds * chunks };
    bar.set_len((cv_ticks + chunks) as u64);
    // Himalaya's tiny preference for larger alphas on ties.
    let tie = |ai: usize| opts.alphas[ai].log10() * 1e-10;
    let argmax = |score: &[f64]| (0..score.len()).max_by(|&a, &b| (score[a] + tie(a)).total_cmp(&(score[b] + tie(b)))).unwrap_or(0);
    let g_of = |d: &Decomp, alpha: f64| -> Vec<f32> { d.lam.iter().map(|&lam| (1.0 / (lam as f64 + alpha)) as f32).collect() };

    // The Gram matrix of all trials, formed once: each fold's is a part of it (kernel) or it
    // minus the held-out trials' outer products (primal).
    let kernel = n <= p;
    let gram: Mat<f32> = if kernel { outer(x) } else { outer(x.transpose()) };
    let cholesky = kernel
        && match (opts.solver, opts.cv) {
            (Solver::Eigen, _) | (_, Cv::LeaveOneOut) => false,
            (Solver::Cholesky, _) => true,
            (Solver::Auto, Cv::KFold(k)) => cholesky_pays(na, n, k),
        };
    let mut fallbacks = 0;
    // The eigendecomposition of all trials: leave-one-out needs it, the refit unless Cholesky.
    let mut full = match opts.cv {
        Cv::LeaveOneOut => Some(decompose_gram(gram.clone(), kernel)?),
        Cv::KFold(_) => None,
    };
    match opts.cv {
        Cv::KFold(k) if traced => {
            // Every alpha scored from the targets' Gram matrix, then predicted at the best only.
            let targets = Targets { centred: &centred, n, l, chunk };
            let t = score_alphas(gram.as_ref(), &targets, k, &opts.alphas, cholesky, bar)?;
            fallbacks += t.fallbacks;
            let a = argmax(&t.cv_score);
            traced_score = t.cv_score.clone();
            t.predict(a, opts.alphas[a], &targets, &mut stats, bar);
        }
        Cv::KFold(k) => {
            for te in fold_ranges(n, k) {
                let test: Vec<usize> = te.clone().collect();
                let train: Vec<usize> = (0..n).filter(|i| !te.contains(i)).collect();
                if cholesky {
                    // H_a^T = (K_tr + alpha I)^-1 K_tr,te per alpha, then the targets (targets last).
                    let (ktr, k_tr_te) = fold_blocks(gram.as_ref(), &train, &test);
                    if let Some(hats) = cholesky_hats(ktr.as_ref(), k_tr_te.as_ref(), &opts.alphas, &mut Mat::new()) {
                        drop((ktr, k_tr_te));
                        for c0 in (0..l).step_by(chunk) {
                            let c1 = (c0 + chunk).min(l);
                            centred(&train, c0, c1, &mut ytr);
                            centred(&test, c0, c1, &mut yte);
                            for (ai, h) in hats.iter().enumerate() {
                                let pred: Mat<f32> = h.transpose() * &ytr;
                                stats.add(ai, c0, yte.as_ref(), pred.as_ref(), 1.0 / k as f64);
                            }
                            bar.inc(1);
                        }
                        continue;
                    }
                    fallbacks += 1;
                }
                // The kernel route reads only the Gram matrix: no copies of the voxels.
                let rows = |idx: &[usize]| if kernel { Mat::zeros(0, 0) } else { Mat::from_fn(idx.len(), p, |i, j| x[(idx[i], j)]) };
                let (xtr, xte): (Mat<f32>, Mat<f32>) = (rows(&train), rows(&test));
                let (d, b) = if kernel {
                    let (ktr, k_tr_te) = fold_blocks(gram.as_ref(), &train, &test);
                    let d = decompose_gram(ktr, true)?;
                    let b = d.test_basis_from_kernel(k_tr_te.transpose());
                    (d, b)
                } else {
                    let held: Mat<f32> = xte.transpose() * &xte;
                    let d = decompose_gram(&gram - &held, false)?;
                    let b = d.test_basis(xtr.as_ref(), xte.as_ref());
                    (d, b)
                };
                // Multiply-adds of the two orders (see the module docs).
                let (m, r, nt, lf) = (test.len() as f64, d.lam.len() as f64, train.len() as f64, l as f64);
                let phi_cost = if kernel { 0.0 } else { r * p as f64 * nt };
                let last = na as f64 * (m * r * nt + m * nt * lf) + phi_cost;
                let first = if kernel { r * nt * lf } else { p as f64 * nt * lf + r * p as f64 * lf } + na as f64 * m * r * lf;
                if choose_last(opts.order, last, first) {
                    // Predictions for a batch of alphas at once: [H_a1; H_a2; ...] Y_train,
                    // H_a = B diag(g_a) Phi (m, n_train); batches of at most 256 MiB of H.
                    let phi = d.phi(xtr.as_ref());
                    let per = ((256usize << 20) / (4 * test.len().max(1) * train.len().max(1))).clamp(1, na);
                    let batches: Vec<(usize, usize)> = (0..na).step_by(per).map(|a0| (a0, (a0 + per).min(na))).collect();
                    let hs: Vec<Mat<f32>> = batches
                        .iter()
                        .map(|&(a0, a1)| {
                            let mut h = Mat::<f32>::zeros((a1 - a0) * test.len(), train.len());
                            for ai in a0..a1 {
                                let part = scaled_product(b.as_ref(), &g_of(&d, opts.alphas[ai]), phi.as_ref());
                                h.as_mut().subrows_mut((ai - a0) * test.len(), test.len()).copy_from(&part);
                            }
                            h
                        })
                        .collect();
                    drop(phi);
                    for c0 in (0..l).step_by(chunk) {
                        let c1 = (c0 + chunk).min(l);
                        centred(&train, c0, c1, &mut ytr);
                        centred(&test, c0, c1, &mut yte);
                        for (&(a0, a1), h) in batches.iter().zip(&hs) {
                            let pred: Mat<f32> = h * &ytr;
                            for ai in a0..a1 {
                                let part = pred.as_ref().subrows((ai - a0) * test.len(), test.len());
                                stats.add(ai, c0, yte.as_ref(), part, 1.0 / k as f64);
                            }
                        }
                        bar.inc(1);
                    }
                } else {
                    for c0 in (0..l).step_by(chunk) {
                        let c1 = (c0 + chunk).min(l);
                        centred(&train, c0, c1, &mut ytr);
                        centred(&test, c0, c1, &mut yte);
                        let a = d.project(xtr.as_ref(), ytr.as_ref());
                        for (ai, &alpha) in opts.alphas.iter().enumerate() {
                            let pred = scaled_product(b.as_ref(), &g_of(&d, alpha), a.as_ref());
                            stats.add(ai, c0, yte.as_ref(), pred.as_ref(), 1.0 / k as f64);
                        }
                        bar.inc(1);
                    }
                }
            }
        }
        Cv::LeaveOneOut => {
            let full = full.as_ref().expect("decomposed above");
            // Training predictions T diag(g) A and leverages H_ii = sum_k T_ik^2 g_k, with
            // T = U, g = l / (l + alpha) (kernel) or T = X V, g = 1 / (l + alpha) (primal).
            let t: Mat<f32> = if full.kernel { full.basis.clone() } else { x * &full.basis };
            for c0 in (0..l).step_by(chunk) {
                let c1 = (c0 + chunk).min(l);
                centred(&all, c0, c1, &mut yk);
                let a = full.project(x, yk.as_ref());
                for (ai, &alpha) in opts.alphas.iter().enumerate() {
                    let g: Vec<f32> = full.lam.iter().map(|&lam| if full.kernel { lam as f64 / (lam as f64 + alpha) } else { 1.0 / (lam as f64 + alpha) } as f32).collect();
                    let fitted = scaled_product(t.as_ref(), &g, a.as_ref());
                    let h: Vec<f64> = (0..n).map(|i| (0..g.len()).map(|k| (t[(i, k)] as f64).powi(2) * g[k] as f64).sum()).collect();
                    // Leave-one-out prediction: y - (y - yhat) / (1 - h).
                    let loo = Mat::from_fn(n, c1 - c0, |i, j| {
                        let r = (yk[(i, j)] - fitted[(i, j)]) as f64 / (1.0 - h[i]).max(1e-12);
                        (yk[(i, j)] as f64 - r) as f32
                    });
                    stats.add(ai, c0, yk.as_ref(), loo.as_ref(), 1.0);
                }
                bar.inc(1);
            }
        }
    }


    // Correlation of the pooled cross-validated predictions, per alpha and target.
    let (sy, syy): (Vec<f64>, Vec<f64>) = (0..l)
        .map(|j| {
            (0..n).fold((0.0, 0.0), |(s, ss), i| {
                let v = (y[(i, j)] - intercept[j]) as f64;
                (s + v, ss + v * v)
            })
        })
        .unzip();
    let nf = n as f64;
    let corr = |a: usize, j: usize| {
        let cov = stats.spy[a][j] - stats.sp[a][j] * sy[j] / nf;
        let vp = stats.spp[a][j] - stats.sp[a][j].powi(2) / nf;
        let vy = syy[j] - sy[j] * sy[j] / nf;
        cov / (vp * vy).sqrt().max(1e-30)
    };
    let value = |a: usize, j: usize| match opts.score {
        Score::NegMse => stats.score[a][j],
        Score::Correlation => corr(a, j),
    };

    // Choose alphas: mean score over folds, plus himalaya's slope towards larger alphas.
    let best: Vec<usize> = if traced {
        vec![argmax(&traced_score); l]
    } else if opts.per_target {
        (0..l).map(|j| (0..na).max_by(|&a, &b| (value(a, j) + tie(a)).total_cmp(&(value(b, j) + tie(b)))).unwrap_or(0)).collect()
    } else {
        let means: Vec<f64> = (0..na).map(|a| (0..l).map(|j| value(a, j)).sum::<f64>() / l.max(1) as f64).collect();
        vec![argmax(&means); l]
    };
    let cv_r: Vec<f32> = (0..l).map(|j| corr(best[j], j) as f32).collect();
    let cv_corr: Vec<Option<f64>> = (0..na).map(|a| (!traced || a == best[0]).then(|| (0..l).map(|j| corr(a, j)).sum::<f64>() / l.max(1) as f64)).collect();

    // Refit on all trials with the chosen alphas, straight into the (L, p) layout: a
    // column-major (p, L) matrix over the same memory.
    let mut weights = vec![0f32; p * l];
    let mut wmat = faer::MatMut::from_column_major_slice_mut(&mut weights, p, l);
    let used: Vec<usize> = (0..na).filter(|a| best.contains(a)).collect();
    if cholesky {
        bar.set_len((cv_ticks + used.len() * chunks) as u64);
    }
    let mut gram_slot = Some(gram);
    let solver = if cholesky && refit_cholesky(x, &mut gram_slot, opts, &used, &best, &centred, wmat.as_mut(), bar) {
        Solver::Cholesky
    } else {
        if cholesky {
            fallbacks += 1;
            bar.set_len((cv_ticks + (used.len() + 1) * chunks) as u64);
        }
        Solver::Eigen
    };
    let cv_score: Vec<f64> = if traced { traced_score } else { (0..na).map(|a| stats.score[a].iter().sum::<f64>() / l.max(1) as f64).collect() };
    if solver == Solver::Cholesky {
        return Ok(RidgeFit { weights, intercept, alpha: best.iter().map(|&a| opts.alphas[a]).collect(), cv_r, cv_score, cv_corr, solver, fallbacks });
    }
    // The Gram matrix (formed again if a failed Cholesky refit used it up) is not needed once
    // decomposed (at NSD scale 0.26 GB less at the refit).
    let gram = gram_slot.take().unwrap_or_else(|| if kernel { outer(x) } else { outer(x.transpose()) });
    let full = match full.take() {
        Some(d) => {
            drop(gram);
            d
        }
        None => decompose_gram(gram, kernel)?,
    };
    let wb = full.weight_basis(x);
    let (r, nf_, pf, lf) = (full.lam.len() as f64, n as f64, p as f64, l as f64);
    let last = used.len() as f64 * (pf * r * nf_) + pf * nf_ * lf + if kernel { 0.0 } else { r * pf * nf_ };
    let first = if kernel { r * nf_ * lf } else { pf * nf_ * lf + r * pf * lf } + pf * r * lf;
    let targets_last = choose_last(opts.order, last, first);
    // Targets last: M_a = Wb diag(g_a) Phi (p, n) per alpha used, weights M_a Y; the basis Wb
    // is then not needed while the weights fill (at NSD scale 0.5 GB less at the peak).
    let (ms, wb): (Vec<Mat<f32>>, Option<Mat<f32>>) = if targets_last {
        let phi = full.phi(x);
        let ms = used.iter().map(|&ai| scaled_product(wb.as_ref(), &g_of(&full, opts.alphas[ai]), phi.as_ref())).collect();
        drop(wb);
        (ms, None)
    } else {
        (Vec::new(), Some(wb))
    };
    for c0 in (0..l).step_by(chunk) {
        let c1 = (c0 + chunk).min(l);
        centred(&all, c0, c1, &mut yk);
        let a = wb.as_ref().map(|wb| (wb, full.project(x, yk.as_ref())));
        for (ui, &ai) in used.iter().enumerate() {
            let cols: Vec<usize> = (c0..c1).filter(|&j| best[j] == ai).collect();
            if cols.is_empty() {
                continue;
            }
            let contiguous = cols.len() == c1 - c0;
            let w: Mat<f32> = match &a {
                None if contiguous => &ms[ui] * &yk,
                None => &ms[ui] * Mat::from_fn(n, cols.len(), |i, j| yk[(i, cols[j] - c0)]),
                Some((wb, a)) => {
                    let sub = Mat::from_fn(a.nrows(), cols.len(), |k, j| a[(k, cols[j] - c0)]);
                    scaled_product(wb.as_ref(), &g_of(&full, opts.alphas[ai]), sub.as_ref())
                }
            };
            for (j, &col) in cols.iter().enumerate() {
                wmat.as_mut().col_mut(col).copy_from(w.col(j));
            }
        }
        bar.inc(1);
    }
    Ok(RidgeFit { weights, intercept, alpha: best.iter().map(|&a| opts.alphas[a]).collect(), cv_r, cv_score, cv_corr, solver, fallbacks })
}
