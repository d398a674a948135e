//! The parts of a ridge fit ([`super::ridge`]): the eigendecomposition of a training set's Gram
//! matrix and the products built on it, and the running sums over cross-validated predictions.

use faer::{Mat, MatMut, MatRef, Side};

use crate::error::{Error, Result};

/// The decomposition of one training set; see the docs of [`super::ridge`].
pub(super) struct Decomp {
    /// Eigenvalues, clamped at 0 (float rounding can make tiny ones negative).
    pub(super) lam: Vec<f32>,
    /// Kernel route: `U (n, r)`; primal route: `V (p, r)`.
    pub(super) basis: Mat<f32>,
    pub(super) kernel: bool,
}

/// Decomposes a Gram matrix already formed: `X X^T` (kernel) or `X^T X` (primal).
pub(super) fn decompose_gram(gram: Mat<f32>, kernel: bool) -> Result<Decomp> {
    let eig = gram.self_adjoint_eigen(Side::Lower).map_err(|e| Error::Invalid(format!("ridge: eigendecomposition failed: {e:?}")))?;
    let lam = eig.S().column_vector().iter().map(|&l| l.max(0.0)).collect();
    Ok(Decomp { lam, basis: eig.U().to_owned(), kernel })
}

impl Decomp {
    /// `A (r, T)` for the targets `y (n_train, T)` of training inputs `x`.
    pub(super) fn project(&self, x: MatRef<'_, f32>, y: MatRef<'_, f32>) -> Mat<f32> {
        if self.kernel {
            self.basis.transpose() * y
        } else {
            let xty: Mat<f32> = x.transpose() * y;
            self.basis.transpose() * &xty
        }
    }

    /// `Phi (r, n_train)`, with `A = Phi Y`: `U^T` (kernel) or `V^T X^T` (primal).
    pub(super) fn phi(&self, x: MatRef<'_, f32>) -> Mat<f32> {
        if self.kernel {
            self.basis.transpose().to_owned()
        } else {
            self.basis.transpose() * x.transpose()
        }
    }

    /// `(Wb (p, r), g)`: weights are `Wb diag(g_k(alpha)) A` with `g_k = 1 / (l_k + alpha)`.
    pub(super) fn weight_basis(&self, x: MatRef<'_, f32>) -> Mat<f32> {
        if self.kernel {
            x.transpose() * &self.basis
        } else {
            self.basis.clone()
        }
    }

    /// `B (m, r)` such that predictions for inputs `xt (m, p)` are `B diag(1 / (l + alpha)) A`.
    /// [`Decomp::test_basis`] from the kernel rows `k (m, n_train) = xt x^T` already formed.
    pub(super) fn test_basis_from_kernel(&self, k: MatRef<'_, f32>) -> Mat<f32> {
        k * &self.basis
    }

    pub(super) fn test_basis(&self, x: MatRef<'_, f32>, xt: MatRef<'_, f32>) -> Mat<f32> {
        if self.kernel {
            let k: Mat<f32> = xt * x.transpose();
            k * &self.basis
        } else {
            xt * &self.basis
        }
    }
}

/// `out (m, T) = b (m, r) diag(s) a (r, T)`.
pub(super) fn scaled_product(b: MatRef<'_, f32>, s: &[f32], a: MatRef<'_, f32>) -> Mat<f32> {
    let sa = Mat::from_fn(a.nrows(), a.ncols(), |k, j| s[k] * a[(k, j)]);
    b * &sa
}

/// `a a^T`, from the lower half's products (half the multiply-adds of the full product).
pub(super) fn outer(a: MatRef<'_, f32>) -> Mat<f32> {
    let mut g = Mat::<f32>::zeros(a.nrows(), a.nrows());
    add_outer_lower(g.as_mut(), a);
    mirror_lower(&mut g);
    g
}

/// `dst = lhs rhs`, the columns of `dst` and `rhs` split between the threads, each part one
/// single-threaded product. For the refit's tall products (15,724 x 8,000 times 8,000 x 4,096:
/// `Z^T Y`) faer's own two-thread split ran at 1.5-1.6e11 multiply-adds/s on this project's
/// 2-core machine, two halves side by side at 1.85-1.95e11; shorter products (1,600 rows) ran
/// alike either way, so only the refit uses this.
pub(super) fn product_by_columns(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    use faer::linalg::matmul::matmul;
    fn split(dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, parts: usize) {
        let c = dst.ncols();
        if parts <= 1 || c < 2 {
            return matmul(dst, faer::Accum::Replace, lhs, rhs, 1.0, faer::Par::Seq);
        }
        let half = c * (parts / 2) / parts;
        let (d0, d1) = dst.split_at_col_mut(half);
        let (r0, r1) = rhs.split_at_col(half);
        rayon::join(|| split(d0, lhs, r0, parts / 2), || split(d1, lhs, r1, parts - parts / 2));
    }
    split(dst, lhs, rhs, rayon::current_num_threads().min(faer::get_global_parallelism().degree()).max(1));
}

/// `g += a a^T` on the lower triangle of `g` (diagonal included); [`mirror_lower`] then fills
/// the upper one.
pub(super) fn add_outer_lower(g: MatMut<'_, f32>, a: MatRef<'_, f32>) {
    use faer::linalg::matmul::triangular::{matmul, BlockStructure};
    matmul(g, BlockStructure::TriangularLower, faer::Accum::Add, a, BlockStructure::Rectangular, a.transpose(), BlockStructure::Rectangular, 1.0, faer::get_global_parallelism());
}

/// Copies the lower triangle of a square `g` onto the upper, in tiles of 64 x 64.
pub(super) fn mirror_lower(g: &mut Mat<f32>) {
    const TILE: usize = 64;
    let n = g.nrows();
    for j0 in (0..n).step_by(TILE) {
        for i0 in (0..=j0).step_by(TILE) {
            for j in j0..(j0 + TILE).min(n) {
                for i in i0..(i0 + TILE).min(j) {
                    g[(i, j)] = g[(j, i)];
                }
            }
        }
    }
}

/// The centred targets `y[rows, c0..c1] - mean[c0..c1]`, into `out` (reused when its shape
/// fits: a fresh chunk of 131 MB at NSD scale was a fresh mapping to page in). A row-major `y` with many targets (a
/// c decoder: 236 KB per trial) is copied 64 trials at a time, each column of the 64 from the
/// same 64 rows (pages): filling whole columns touched a new page per value and took as long
/// as the product that follows.
pub(super) fn gather_centred(y: MatRef<'_, f32>, mean: &[f32], rows: &[usize], c0: usize, c1: usize, out: &mut Mat<f32>) {
    const TILE: usize = 64;
    let Some(yr) = y.try_as_row_major() else {
        *out = Mat::from_fn(rows.len(), c1 - c0, |i, j| y[(rows[i], c0 + j)] - mean[c0 + j]);
        return;
    };
    if out.shape() != (rows.len(), c1 - c0) {
        *out = Mat::zeros(rows.len(), c1 - c0);
    }
    // Columns `first..` of the chunk into `part`; two halves on two threads.
    let fill = |mut part: MatMut<'_, f32>, first: usize| {
        for i0 in (0..rows.len()).step_by(TILE) {
            let tile: Vec<&[f32]> = rows[i0..(i0 + TILE).min(rows.len())].iter().map(|&r| yr.row(r).as_slice()).collect();
            for c in 0..part.ncols() {
                let j = first + c;
                let col = part.as_mut().col_mut(c).try_as_col_major_mut().expect("a Mat's columns are contiguous").as_slice_mut();
                for (o, row) in col[i0..i0 + tile.len()].iter_mut().zip(&tile) {
                    *o = row[j] - mean[j];
                }
            }
        }
    };
    let half = (c1 - c0) / 2;
    let (left, right) = out.as_mut().split_at_col_mut(half);
    rayon::join(|| fill(left, c0), || fill(right, c0 + half));
}

/// Per-alpha, per-target sums over cross-validated predictions.
pub(super) struct Stats {
    pub(super) score: Vec<Vec<f64>>, // [alpha][target] sum of -MSE over folds
    pub(super) sp: Vec<Vec<f64>>,    // sum of predictions
    pub(super) spp: Vec<Vec<f64>>,   // sum of squared predictions
    pub(super) spy: Vec<Vec<f64>>,   // sum of prediction * target
}

impl Stats {
    pub(super) fn new(n_alphas: usize, l: usize) -> Self {
        let z = || vec![vec![0.0; l]; n_alphas];
        Stats { score: z(), sp: z(), spp: z(), spy: z() }
    }

    /// Adds predictions `pred (m, T)` of targets `y (m, T)` (columns `first..`) at alpha `a`.
    pub(super) fn add(&mut self, a: usize, first: usize, y: MatRef<'_, f32>, pred: MatRef<'_, f32>, weight: f64) {
        let m = y.nrows() as f64;
        for j in 0..y.ncols() {
            let (mut se, mut sp, mut spp, mut spy) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..y.nrows() {
                let (yv, pv) = (y[(i, j)] as f64, pred[(i, j)] as f64);
                se += (yv - pv) * (yv - pv);
                sp += pv;
                spp += pv * pv;
                spy += pv * yv;
            }
            let t = first + j;
            self.score[a][t] -= weight * se / m;
            self.sp[a][t] += sp;
            self.spp[a][t] += spp;
            self.spy[a][t] += spy;
        }
    }
}
