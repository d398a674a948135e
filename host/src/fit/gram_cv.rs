//! Cross-validation scored from the targets' Gram matrix ([`super::ridge`]): with one alpha for
//! all targets, the negative-MSE score and the kernel route, the squared error summed over the
//! targets of each alpha and fold follows from `G = Yc Yc^T (n, n)`, `Yc` the centred targets:
//!
//! `SSE = tr(G_te) - 2 <H_a, G_te,tr> + <H_a G_tr, H_a>`
//!
//! with `H_a (m, n_train)` the fold's hat rows (predictions `H_a Y_train`) and `<A, B>` the sum of
//! the elementwise products. Forming `G` costs `n^2 L / 2` multiply-adds once, where predicting
//! every alpha in every fold costs `alphas x n x n_train x L` (at NSD scale, 59,136 targets, 7
//! alphas and 5 folds: 1.9e12 against 2.1e13). The per-target correlations are then predicted at
//! the chosen alpha only.
//!
//! `H_a` is `K_te (K_tr + alpha I)^-1` from one Cholesky factorisation per alpha, or
//! `B diag(g_a) U^T` from the eigendecomposition `K_tr = U L U^T` (`B = K_te U`,
//! `g_a = 1 / (l + alpha)`); there each alpha costs `r^2`:
//! `<H G_tr, H> = sum_ij g_i g_j (B^T B)_ij (U^T G_tr U)_ij`, `<H, G_te,tr> = sum_i g_i (U^T
//! G_tr,te B)_ii`.

use std::ops::Range;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};

use super::cholesky::{cholesky_hats, Centred};
use super::eigen::{add_outer_lower, decompose_gram, mirror_lower, scaled_product, Stats};
use crate::error::Result;
use crate::progress::Progress;

/// The test trials of each of k contiguous folds (scikit-learn's KFold: the first `n % k` folds
/// have one trial more).
pub(super) fn fold_ranges(n: usize, k: usize) -> Vec<Range<usize>> {
    let mut start = 0;
    (0..k)
        .map(|f| {
            let size = n / k + usize::from(f < n % k);
            start += size;
            start - size..start
        })
        .collect()
}

/// The centred targets (`n` trials, `l` targets) and how many are read at once.
pub(super) struct Targets<'a, 'b> {
    pub(super) centred: &'a Centred<'b>,
    pub(super) n: usize,
    pub(super) l: usize,
    pub(super) chunk: usize,
}

/// One fold's blocks of a square matrix over all trials (a Gram matrix): `(train, train)` and
/// `(train, test)`.
pub(super) fn fold_blocks(g: MatRef<'_, f32>, train: &[usize], test: &[usize]) -> (Mat<f32>, Mat<f32>) {
    let (mut tr, mut tr_te) = (Mat::new(), Mat::new());
    block_into(g, train, train, &mut tr);
    block_into(g, train, test, &mut tr_te);
    (tr, tr_te)
}

/// `g[rows, cols]` into `out`, reused when its shape fits (fresh memory is slow to page in:
/// [`super::cholesky::Factor::of`]).
fn block_into(g: MatRef<'_, f32>, rows: &[usize], cols: &[usize], out: &mut Mat<f32>) {
    if out.shape() != (rows.len(), cols.len()) {
        *out = Mat::zeros(rows.len(), cols.len());
    }
    for (j, &c) in cols.iter().enumerate() {
        let src = g.col(c);
        for (o, &r) in out.col_mut(j).iter_mut().zip(rows) {
            *o = src[r];
        }
    }
}

/// One fold's hat rows for every alpha, transposed: `H_a^T (n_train, m)`.
enum Hats {
    /// `H_a^T` per alpha.
    Cholesky(Vec<Mat<f32>>),
    /// `H_a^T = U diag(1 / (l + alpha)) B^T`.
    Eigen { b: Mat<f32>, u: Mat<f32>, lam: Vec<f32> },
}

impl Hats {
    /// `H_a^T` at alpha index `ai` (value `alpha`); the others are dropped.
    fn into_hat(self, ai: usize, alpha: f64) -> Mat<f32> {
        match self {
            Hats::Cholesky(mut hs) => hs.swap_remove(ai),
            Hats::Eigen { b, u, lam } => {
                let g: Vec<f32> = lam.iter().map(|&l| (1.0 / (l as f64 + alpha)) as f32).collect();
                scaled_product(u.as_ref(), &g, b.transpose())
            }
        }
    }
}

/// `tr(H G H^T) = <H G, H>` for a symmetric `g (t, t)` and `ht = H^T (t, m)`: with `G = L + D +
/// L^T` (`L` strictly lower), `2 <H L, H> + <H D, H>`; the triangular product has half the
/// multiply-adds of `H G` (0.19 s against 0.34 s at t = 6,400, m = 1,600). `hg (t, m)` is scratch.
fn quadratic_trace(g: MatRef<'_, f32>, ht: MatRef<'_, f32>, hg: &mut Mat<f32>) -> f64 {
    use faer::linalg::matmul::triangular::{matmul as tmatmul, BlockStructure};
    // (H L)^T = L^T H^T: L^T is the strictly upper part of g^T, which equals g.
    tmatmul(hg.as_mut(), BlockStructure::Rectangular, Accum::Replace, g.transpose(), BlockStructure::StrictTriangularUpper, ht, BlockStructure::Rectangular, 1.0, faer::get_global_parallelism());
    let diag: f64 = ht.col_iter().map(|h| h.iter().enumerate().map(|(j, &v)| g[(j, j)] as f64 * v as f64 * v as f64).sum::<f64>()).sum();
    2.0 * dot(hg.as_ref(), ht) + diag
}

/// `<a, b>`: the sum of the elementwise products, accumulated in f64.
fn dot(a: MatRef<'_, f32>, b: MatRef<'_, f32>) -> f64 {
    a.col_iter().zip(b.col_iter()).map(|(u, v)| u.iter().zip(v.iter()).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>()).sum()
}

/// The alphas scored over every fold, with each fold's hat rows kept for the predictions at
/// the chosen alpha ([`TracedCv::predict`]).
pub(super) struct TracedCv {
    /// `(n_alphas)`: the negative MSE, averaged over folds and targets.
    pub(super) cv_score: Vec<f64>,
    /// Folds where a Cholesky factorisation failed and the eigendecomposition was used.
    pub(super) fallbacks: usize,
    folds: Vec<(Range<usize>, Hats)>,
}

/// Scores every alpha of `opts` over `k` folds from the kernel `kgram = X X^T (n, n)` and the
/// targets' Gram matrix, formed here chunk by chunk. The progress bar advances once per chunk
/// of targets and once per fold.
pub(super) fn score_alphas(kgram: MatRef<'_, f32>, y: &Targets<'_, '_>, k: usize, alphas: &[f64], cholesky: bool, bar: &dyn Progress) -> Result<TracedCv> {
    let (n, l, chunk, centred) = (y.n, y.l, y.chunk, y.centred);
    let all: Vec<usize> = (0..n).collect();
    // G = Yc Yc^T, its lower half accumulated over chunks of targets, then mirrored.
    let mut g = Mat::<f32>::zeros(n, n);
    let mut yk = Mat::new();
    for c0 in (0..l).step_by(chunk) {
        centred(&all, c0, (c0 + chunk).min(l), &mut yk);
        add_outer_lower(g.as_mut(), yk.as_ref());
        bar.inc(1);
    }
    mirror_lower(&mut g);
    let mut cv_score = vec![0.0; alphas.len()];
    let mut fallbacks = 0;
    let mut folds = Vec::with_capacity(k);
    // Each fold's blocks and the factorisations' buffer, reused from fold to fold.
    let (mut ktr, mut k_tr_te, mut gtr, mut g_tr_te, mut buf, mut hg) = (Mat::new(), Mat::new(), Mat::new(), Mat::new(), Mat::new(), Mat::new());
    for te in fold_ranges(n, k) {
        let train: Vec<usize> = (0..n).filter(|i| !te.contains(i)).collect();
        let test: Vec<usize> = te.clone().collect();
        let m = te.len();
        block_into(kgram, &train, &train, &mut ktr);
        block_into(kgram, &train, &test, &mut k_tr_te);
        let chol = if cholesky { cholesky_hats(ktr.as_ref(), k_tr_te.as_ref(), alphas, &mut buf) } else { None };
        fallbacks += usize::from(cholesky && chol.is_none());
        block_into(g.as_ref(), &train, &train, &mut gtr);
        block_into(g.as_ref(), &train, &test, &mut g_tr_te);
        let tete: f64 = te.clone().map(|i| g[(i, i)] as f64).sum();
        let (hats, sse): (Hats, Vec<f64>) = match chol {
            Some(hs) => {
                if hg.shape() != (train.len(), m) {
                    hg = Mat::zeros(train.len(), m);
                }
                let sse = hs.iter().map(|ht| tete - 2.0 * dot(ht.as_ref(), g_tr_te.as_ref()) + quadratic_trace(gtr.as_ref(), ht.as_ref(), &mut hg)).collect();
                (Hats::Cholesky(hs), sse)
            }
            None => {
                let d = decompose_gram(ktr.clone(), true)?;
                let b = d.test_basis_from_kernel(k_tr_te.transpose());
                let ut = d.basis.transpose();
                let p: Mat<f32> = ut * (&gtr * &d.basis);
                let bb: Mat<f32> = b.transpose() * &b;
                let q: Mat<f32> = ut * &g_tr_te;
                let r = d.lam.len();
                let qb: Vec<f64> = (0..r).map(|i| (0..m).map(|s| q[(i, s)] as f64 * b[(s, i)] as f64).sum()).collect();
                // Every alpha's quadratic term at once: g_a^T W g_a, W = (B^T B) o (U^T G_tr U).
                let w = Mat::<f64>::from_fn(r, r, |i, j| bb[(i, j)] as f64 * p[(i, j)] as f64);
                let gs = Mat::<f64>::from_fn(r, alphas.len(), |i, a| 1.0 / (d.lam[i] as f64 + alphas[a]));
                let wg: Mat<f64> = &w * &gs;
                let sse = (0..alphas.len())
                    .map(|a| {
                        let quad: f64 = (0..r).map(|i| gs[(i, a)] * wg[(i, a)]).sum();
                        let cross: f64 = (0..r).map(|i| gs[(i, a)] * qb[i]).sum();
                        tete - 2.0 * cross + quad
                    })
                    .collect();
                (Hats::Eigen { b, u: d.basis, lam: d.lam }, sse)
            }
        };
        for (s, e) in cv_score.iter_mut().zip(sse) {
            *s -= e / (m as f64 * k as f64 * l.max(1) as f64);
        }
        folds.push((te, hats));
        bar.inc(1);
    }
    Ok(TracedCv { cv_score, fallbacks, folds })
}

impl TracedCv {
    /// Predicts every target at alpha `ai` in every fold, into `stats` (per-target correlations).
    /// Each chunk of targets is gathered once for all folds: a fold's training trials are the
    /// rows before and after its test rows, two products over views (gathering them per fold
    /// copied five times as much). The progress bar advances once per fold and chunk of targets.
    pub(super) fn predict(self, ai: usize, alpha: f64, y: &Targets<'_, '_>, stats: &mut Stats, bar: &dyn Progress) {
        let (n, l, chunk, centred, k) = (y.n, y.l, y.chunk, y.centred, self.folds.len());
        let folds: Vec<(Range<usize>, Mat<f32>)> = self.folds.into_iter().map(|(te, hats)| (te, hats.into_hat(ai, alpha))).collect();
        let all: Vec<usize> = (0..n).collect();
        let (mut yk, mut pred) = (Mat::new(), Mat::new());
        for c0 in (0..l).step_by(chunk) {
            let c1 = (c0 + chunk).min(l);
            centred(&all, c0, c1, &mut yk);
            for (te, ht) in &folds {
                if pred.shape() != (te.len(), c1 - c0) {
                    pred = Mat::zeros(te.len(), c1 - c0);
                }
                // H^T's rows are the training trials in order: those before the test rows, then after.
                let parts = [(ht.as_ref().subrows(0, te.start), 0), (ht.as_ref().subrows(te.start, n - te.end), te.end)];
                pred.fill(0.0);
                for (h, first) in parts.into_iter().filter(|(h, _)| h.nrows() > 0) {
                    matmul(pred.as_mut(), Accum::Add, h.transpose(), yk.as_ref().subrows(first, h.nrows()), 1.0, faer::get_global_parallelism());
                }
                stats.add(ai, c0, yk.as_ref().subrows(te.start, te.len()), pred.as_ref(), 1.0 / k as f64);
                bar.inc(1);
            }
        }
    }
}
