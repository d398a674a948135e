//! The Cholesky route of a ridge fit ([`super::ridge`]): one factorisation of `K + alpha I` per
//! alpha and training set, for the kernel route with k folds when [`cholesky_pays`].

use faer::{Mat, MatRef};

use super::eigen::product_by_columns;
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

/// The lower Cholesky factor of `K + alpha I`, factorised in place in its own buffer (the
/// upper triangle holds what was there: only the lower one is read).
pub(super) struct Factor(Mat<f32>);

impl Factor {
    /// Factorises `k + alpha I` in `buf` (or `buf + alpha I` without `k`); None where it is not
    /// positive definite in f32. The callers reuse `buf` from one factorisation to the next
    /// rather than page in fresh memory for each (`perf` on the NSD-scale benchmark: the
    /// kernel's clearing of fresh pages was 9% of its CPU time).
    fn of(k: Option<MatRef<'_, f32>>, alpha: f64, mut buf: Mat<f32>) -> Option<Factor> {
        use faer::dyn_stack::{MemBuffer, MemStack};
        use faer::linalg::cholesky::llt::factor;
        if let Some(k) = k {
            buf.copy_from(k);
        }
        for i in 0..buf.nrows() {
            buf[(i, i)] += alpha as f32;
        }
        let par = faer::get_global_parallelism();
        let mut mem = MemBuffer::new(factor::cholesky_in_place_scratch::<f32>(buf.nrows(), par, Default::default()));
        factor::cholesky_in_place(buf.as_mut(), Default::default(), par, MemStack::new(&mut mem), Default::default()).ok()?;
        Some(Factor(buf))
    }

    /// `(K + alpha I)^-1 rhs`, in place.
    fn solve_in_place(&self, rhs: faer::MatMut<'_, f32>) {
        use faer::dyn_stack::{MemBuffer, MemStack};
        use faer::linalg::cholesky::llt::solve;
        let par = faer::get_global_parallelism();
        let mut mem = MemBuffer::new(solve::solve_in_place_scratch::<f32>(self.0.nrows(), rhs.ncols(), par));
        solve::solve_in_place(self.0.as_ref(), rhs, par, MemStack::new(&mut mem));
    }

    fn solve(&self, rhs: MatRef<'_, f32>) -> Mat<f32> {
        let mut z = rhs.to_owned();
        self.solve_in_place(z.as_mut());
        z
    }
}

fn finite(m: MatRef<'_, f32>) -> bool {
    m.col_iter().all(|c| match c.try_as_col_major() {
        Some(c) => c.as_slice().iter().all(|v| v.is_finite()),
        None => c.iter().all(|v| v.is_finite()),
    })
}

/// `H_a^T = (K_tr + alpha I)^-1 K_tr,te (n_train, m)` for every alpha (the hat rows transposed:
/// the predictions are `H_a Y_train`), from `ktr (n_train, n_train)` and `k_tr_te (n_train, m)`, or
/// None if a factorisation fails or gives non-finite values. Each alpha factorises in place in
/// `buf`, reused from alpha to alpha and fold to fold (fresh copies and the transposes cost
/// 0.1 s of about 0.95 s per alpha at 6,400 training trials).
pub(super) fn cholesky_hats(ktr: MatRef<'_, f32>, k_tr_te: MatRef<'_, f32>, alphas: &[f64], buf: &mut Mat<f32>) -> Option<Vec<Mat<f32>>> {
    let t = ktr.nrows();
    alphas
        .iter()
        .map(|&alpha| {
            let scratch = if buf.shape() == (t, t) { std::mem::replace(buf, Mat::new()) } else { Mat::zeros(t, t) };
            let f = Factor::of(Some(ktr), alpha, scratch)?;
            let z = f.solve(k_tr_te);
            *buf = f.0;
            finite(z.as_ref()).then_some(z)
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
    // The factor of the alpha before, its buffer reused by the next.
    let mut buf: Option<Mat<f32>> = None;
    for (ui, &ai) in used.iter().enumerate() {
        let llt = match (ui + 1 == used.len(), gram.as_ref()) {
            (false, Some(k)) => Factor::of(Some(k.as_ref()), opts.alphas[ai], std::mem::take(&mut buf).filter(|b| b.shape() == (n, n)).unwrap_or_else(|| Mat::zeros(n, n))),
            (true, Some(_)) => Factor::of(None, opts.alphas[ai], gram.take().expect("checked")),
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
                    match &z {
                        Some(z) => product_by_columns(dst.as_mut(), z.transpose(), yk.as_ref()),
                        None => product_by_columns(dst.as_mut(), x.transpose(), llt.solve(yk.as_ref()).as_ref()),
                    }
                    if !finite(dst.as_ref()) {
                        return false;
                    }
                } else {
                    let yk = Mat::from_fn(n, cols.len(), |i, j| yk[(i, cols[j] - c0)]);
                    let w: Mat<f32> = match &z {
                        Some(z) => z.transpose() * &yk,
                        None => x.transpose() * llt.solve(yk.as_ref()),
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
        drop(z);
        buf = Some(llt.0);
    }
    true
}
