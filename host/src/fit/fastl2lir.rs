//! FastL2LiR, the Kamitani lab's per-unit voxel selection and ridge (PyFastL2LiR; Shen,
//! Horikawa, Majima & Kamitani, PLoS Comput Biol 2019): for each output unit, the `select`
//! voxels with the highest |Pearson r| with that unit over the training trials, then ridge
//! with `alpha` on those voxels and a bias column (the bias is penalised too, as theirs is).
//! The Gram matrix `[X 1]'[X 1] + alpha I` is computed once; each unit solves its own
//! (k+1) x (k+1) slice of it (Cholesky, f64), in parallel over units (rayon).
//!
//! Inputs are standardised already (voxels and units z-scored with training statistics, see
//! [`super::features`]); voxels that are constant over the training trials have r = 0 (theirs
//! zero the correlation of voxels with variance below 1e-8), so they are chosen only when
//! k >= V. With k >= V every unit uses all voxels (their "no feature selection" case).

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Side};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// FastL2LiR's two settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastL2LirOptions {
    /// Voxels per unit (their `n_feat`; the lab's configs use 500).
    pub select: usize,
    /// Ridge penalty (the lab's configs use 100).
    pub alpha: f64,
}

impl Default for FastL2LirOptions {
    fn default() -> Self {
        FastL2LirOptions { select: 500, alpha: 100.0 }
    }
}

/// Per unit k voxels and their weights, in the units of the (standardised) inputs.
#[derive(Debug, Clone)]
pub struct SparseFit {
    /// k = min(select, V).
    pub k: usize,
    /// `(L, k)` voxel indices, ascending within each unit.
    pub index: Vec<u32>,
    /// `(L, k)` weights of those voxels.
    pub weight: Vec<f64>,
    /// `(L,)` bias of each unit.
    pub bias: Vec<f64>,
}

/// Fits `y (n, L)` from `x (n, V)`, both standardised, row-major.
pub fn fit(x: &[f32], n: usize, v: usize, y: &[f32], l: usize, opts: &FastL2LirOptions, bar: &dyn Progress) -> Result<SparseFit> {
    if x.len() != n * v || y.len() != n * l {
        return Err(Error::Shape(format!("fastl2lir: {} voxel values for {n} x {v}, {} target values for {n} x {l}", x.len(), y.len())));
    }
    if opts.select == 0 || !(opts.alpha > 0.0 && opts.alpha.is_finite()) {
        return Err(Error::Invalid(format!("fastl2lir: --select {} must be at least 1 and --alpha {} positive", opts.select, opts.alpha)));
    }
    if v > u32::MAX as usize {
        return Err(Error::Invalid(format!("fastl2lir: {v} voxels do not fit the decoder's u32 indices")));
    }
    let k = opts.select.min(v);
    let xm = MatRef::from_row_major_slice(x, n, v);
    let ym = MatRef::from_row_major_slice(y, n, l);
    let xd: Mat<f64> = Mat::from_fn(n, v, |i, j| xm[(i, j)] as f64);
    let yd: Mat<f64> = Mat::from_fn(n, l, |i, j| ym[(i, j)] as f64);
    // [X 1]'[X 1] + alpha I, (V+1, V+1); the last row and column are the bias column's.
    let mut gram: Mat<f64> = Mat::zeros(v + 1, v + 1);
    gram.as_mut().submatrix_mut(0, 0, v, v).copy_from(xd.transpose() * &xd);
    for j in 0..v {
        let s: f64 = (0..n).map(|i| xd[(i, j)]).sum();
        gram[(j, v)] = s;
        gram[(v, j)] = s;
    }
    gram[(v, v)] = n as f64;
    for j in 0..=v {
        gram[(j, j)] += opts.alpha;
    }
    // X'y per unit (V, L), and the sums of y (the bias column's right-hand side).
    let xty: Mat<f64> = xd.transpose() * &yd;
    let ysum: Vec<f64> = (0..l).map(|t| (0..n).map(|i| yd[(i, t)]).sum()).collect();
    // Pearson r up to one positive factor per unit: the |r| order of voxels for a unit is the
    // order of |cov(x_j, y)| / std(x_j) (population statistics).
    let xs: Vec<f64> = (0..v)
        .map(|j| {
            let (s, ss) = (0..n).fold((0.0, 0.0), |(s, ss), i| (s + xd[(i, j)], ss + xd[(i, j)] * xd[(i, j)]));
            let var = ss / n as f64 - (s / n as f64).powi(2);
            if var < 1e-8 { 0.0 } else { var.sqrt() }
        })
        .collect();
    let xmean: Vec<f64> = (0..v).map(|j| (0..n).map(|i| xd[(i, j)]).sum::<f64>() / n as f64).collect();

    bar.set_len(l as u64);
    let done = std::sync::atomic::AtomicU64::new(0);
    let units: Vec<Result<Unit>> = (0..l)
        .into_par_iter()
        .map(|t| {
            let chosen = select(&xty, n as f64, &xmean, &xs, ysum[t] / n as f64, t, k);
            let m = chosen.len() + 1;
            let at = |a: usize| if a < chosen.len() { chosen[a] } else { v };
            let sub = Mat::from_fn(m, m, |a, b| gram[(at(a), at(b))]);
            let rhs = Mat::from_fn(m, 1, |a, _| if a < chosen.len() { xty[(chosen[a], t)] } else { ysum[t] });
            let llt = sub.llt(Side::Lower).map_err(|e| Error::Invalid(format!("fastl2lir: unit {t}: the {m} x {m} system is not positive definite ({e:?})")))?;
            let wb = llt.solve(&rhs);
            let c = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if c % 64 == 63 {
                bar.inc(64);
            }
            Ok((chosen.iter().map(|&j| j as u32).collect(), (0..chosen.len()).map(|a| wb[(a, 0)]).collect(), wb[(m - 1, 0)]))
        })
        .collect();
    bar.inc(l as u64 % 64);
    let mut out = SparseFit { k, index: Vec::with_capacity(l * k), weight: Vec::with_capacity(l * k), bias: Vec::with_capacity(l) };
    for u in units {
        let (idx, w, b) = u?;
        out.index.extend(idx);
        out.weight.extend(w);
        out.bias.push(b);
    }
    Ok(out)
}

/// One unit's fit: its voxels, their weights and its bias.
type Unit = (Vec<u32>, Vec<f64>, f64);

/// The k voxels of unit `t` with the highest |r|, ascending; ties go to the lower index.
fn select(xty: &Mat<f64>, n: f64, xmean: &[f64], xs: &[f64], ymean: f64, t: usize, k: usize) -> Vec<usize> {
    let v = xs.len();
    if k >= v {
        return (0..v).collect();
    }
    // |cov(x_j, y)| / std(x_j); the std of y is the same for every voxel and drops out.
    let score: Vec<f64> = (0..v).map(|j| if xs[j] == 0.0 { 0.0 } else { (xty[(j, t)] / n - xmean[j] * ymean).abs() / xs[j] }).collect();
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut chosen = order[..k].to_vec();
    chosen.sort_unstable();
    chosen
}
