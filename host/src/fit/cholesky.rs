//! The Cholesky route of a ridge fit ([`super::ridge`]): one factorisation of `K + alpha I` per
//! alpha and training set, for the kernel route with k folds when [`cholesky_pays`].

use faer::linalg::solvers::{Llt, Solve};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Side};

use super::options::{choose_last, RidgeOptions};
use crate::progress::Progress;

/// Centred targets: `(rows, first column, end column, out)` fills `out (rows, columns)`.
pub(super) type Centred<'a> = dyn Fn(&[usize], usize, usize, &mut Mat<f32>) + 'a;

/// Whether one Cholesky factorisation per alpha and training set costs less than one
/// eigendecomposition per training set, for `na` alphas, `n` trials and `k` folds (kernel
/// route). Counted in multiply-adds at the speed of a matrix product, with `t` training trials
/// and `m` held out per fold: a factorisation costs `t^3 / 3`, the solve for the held-out
/// kernel rows `t^2 m`; an eigendecomposition about `7 t^3` (measured with faer 0.24, f32, 2
/// cores: 10.2 s at t = 6,400 against 0.42 s for the factorisation and 0.36 s for a product of
/// 1,600 x 6,400 x 6,400) and then `t^2 m` for the test basis and for each alpha. The refit
/// follows the same choice (one factorisation per alpha used against one eigendecomposition).
pub fn cholesky_pays(na: usize, n: usize, k: usize) -> bool {
    const EIGEN: f64 = 7.0;
    let (m, na) = (n as f64 / k.max(1) as f64, na as f64);
    let t = n as f64 - m;
    na * (t * t * t / 3.0 + t * t * m) < EIGEN * t * t * t + (na + 1.0) * t * t * m
}

/// `K + alpha I` factorised, or None where it is not positive definite in f32.
fn factor(k: MatRef<'_, f32>, alpha: f64) -> Option<Llt<f32>> {
    let mut ka = k.to_owned();
    for i in 0..ka.nrows() {
        ka[(i, i)] += alpha as f32;
    }
    ka.llt(Side::Lower).ok()
}

fn finite(m: MatRef<'_, f32>) -> bool {
    m.col_iter().all(|c| match c.try_as_col_major() {
        Some(c) => c.as_slice().iter().all(|v| v.is_finite()),
        None => c.iter().all(|v| v.is_finite()),
    })
}

/// `H_a = K_te (K_tr + alpha I)^-1 (m, n_train)` for every alpha, or None if a factorisation
/// fails or gives non-finite values.
pub(super) fn cholesky_hats(ktr: MatRef<'_, f32>, kte: MatRef<'_, f32>, alphas: &[f64]) -> Option<Vec<Mat<f32>>> {
    alphas
        .iter()
        .map(|&alpha| {
            let z: Mat<f32> = factor(ktr, alpha)?.solve(kte.transpose());
            finite(z.as_ref()).then(|| z.transpose().to_owned())
        })
        .collect()
}

/// The refit by one Cholesky factorisation of `K + alpha I` per alpha used: the weights of the
/// targets that chose alpha are `X^T (K + alpha I)^-1 Y`, multiplied in the cheaper order
/// (`Z = (K + alpha I)^-1 X` once, then `Z^T Y`; or `(K + alpha I)^-1 Y` per chunk, then `X^T`).
/// False if a factorisation fails (the caller then refits by the eigendecomposition; weights
/// written so far are overwritten). The last alpha's factorisation takes the Gram matrix and
/// leaves `None` (at NSD scale 0.5 GB less at the refit's peak: no copy, no Gram beside it).
#[allow(clippy::too_many_arguments)]
pub(super) fn refit_cholesky(
    x: MatRef<'_, f32>,
    gram: &mut Option<Mat<f32>>,
    opts: &RidgeOptions,
    used: &[usize],
    best: &[usize],
    centred: &Centred<'_>,
    mut wmat: faer::MatMut<'_, f32>,
    bar: &dyn Progress,
) -> bool {
    let (n, p, l) = (x.nrows(), x.ncols(), best.len());
    let chunk = opts.target_chunk.max(1);
    let all: Vec<usize> = (0..n).collect();
    for (ui, &ai) in used.iter().enumerate() {
        let llt = match (ui + 1 == used.len(), gram.as_ref()) {
            (false, Some(k)) => factor(k.as_ref(), opts.alphas[ai]),
            (true, Some(_)) => {
                let mut k = gram.take().expect("checked");
                for i in 0..n {
                    k[(i, i)] += opts.alphas[ai] as f32;
                }
                k.llt(Side::Lower).ok()
            }
            (_, None) => None,
        };
        let Some(llt) = llt else {
            return false;
        };
        let count = best.iter().filter(|&&b| b == ai).count();
        let (nf, pf) = (n as f64, p as f64);
        let z: Option<Mat<f32>> = choose_last(opts.order, nf * nf * pf, nf * nf * count as f64).then(|| llt.solve(x));
        if z.as_ref().is_some_and(|z| !finite(z.as_ref())) {
            return false;
        }
        let mut yk = Mat::new();
        for c0 in (0..l).step_by(chunk) {
            let c1 = (c0 + chunk).min(l);
            let cols: Vec<usize> = (c0..c1).filter(|&j| best[j] == ai).collect();
            if !cols.is_empty() {
                centred(&all, c0, c1, &mut yk);
                if cols.len() == c1 - c0 {
                    // Straight into the weights (no copy of the chunk's weights).
                    let mut dst = wmat.as_mut().subcols_mut(c0, c1 - c0);
                    let par = faer::get_global_parallelism();
                    match &z {
                        Some(z) => matmul(dst.as_mut(), Accum::Replace, z.transpose(), &yk, 1.0, par),
                        None => matmul(dst.as_mut(), Accum::Replace, x.transpose(), llt.solve(&yk), 1.0, par),
                    }
                    if !finite(dst.as_ref()) {
                        return false;
                    }
                } else {
                    let yk = Mat::from_fn(n, cols.len(), |i, j| yk[(i, cols[j] - c0)]);
                    let w: Mat<f32> = match &z {
                        Some(z) => z.transpose() * &yk,
                        None => x.transpose() * llt.solve(&yk),
                    };
                    if !finite(w.as_ref()) {
                        return false;
                    }
                    for (j, &col) in cols.iter().enumerate() {
                        wmat.as_mut().col_mut(col).copy_from(w.col(j));
                    }
                }
            }
            bar.inc(1);
        }
    }
    true
}
