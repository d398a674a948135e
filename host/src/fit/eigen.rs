//! The parts of a ridge fit ([`super::ridge`]): the eigendecomposition of a training set's Gram
//! matrix and the products built on it, and the running sums over cross-validated predictions.

use faer::{Mat, MatRef, Side};

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
