//! The settings of a ridge fit ([`super::ridge`]): how alpha is chosen and scored, which
//! alphas, and how the products and solves are ordered.

use super::grid::{log_grid, wide_grid};

/// How alpha is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cv {
    /// k contiguous folds.
    KFold(usize),
    /// Exact leave-one-out from one decomposition of all trials.
    LeaveOneOut,
}

/// What cross-validation maximises when it chooses alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// The negative mean squared error of the held-out predictions (himalaya's default).
    #[default]
    NegMse,
    /// The correlation of the held-out predictions with the targets (less shrinkage: keeps
    /// more of the differences between images).
    Correlation,
}

/// Settings of a fit.
#[derive(Debug, Clone)]
pub struct RidgeOptions {
    /// The alphas to try (positive).
    pub alphas: Vec<f64>,
    /// Cross-validation scheme.
    pub cv: Cv,
    /// One alpha per target (true) or one for all (false).
    pub per_target: bool,
    /// Targets handled at once (bounds memory).
    pub target_chunk: usize,
    /// What the choice of alpha maximises.
    pub score: Score,
    /// The order of the products with the targets (results agree within rounding).
    pub order: Order,
    /// How the regularised systems are solved (results agree within rounding).
    pub solver: Solver,
    /// Predict every alpha in every fold, for every alpha's mean cross-validated correlation.
    /// Without it, one alpha for all targets scored by negative MSE on the kernel route (more
    /// voxels than trials) is chosen from the targets' Gram matrix and only the chosen alpha is
    /// predicted (see `fit::gram_cv`); the others' correlations are then not computed.
    pub corr_every_alpha: bool,
}

/// How the regularised systems `K + alpha I` are solved; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solver {
    /// The cheaper of the two by [`super::cholesky::cholesky_pays`].
    #[default]
    Auto,
    /// One eigendecomposition per training set, shared by every alpha.
    Eigen,
    /// One Cholesky factorisation per alpha and training set (kernel route with k-fold
    /// cross-validation only; elsewhere, and where a factorisation fails, the eigendecomposition).
    Cholesky,
}

/// The order of the products with the targets; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The one with fewer multiply-adds.
    #[default]
    Auto,
    /// Project the targets onto the eigenbasis first (`B diag(g) (Phi Y)`).
    ProjectFirst,
    /// Multiply the targets last (`(B diag(g) Phi) Y`).
    TargetsLast,
}

impl Default for RidgeOptions {
    /// [`RidgeOptions::wide`].
    fn default() -> Self {
        Self::wide()
    }
}

impl RidgeOptions {
    /// Takagi & Nishimoto's grid, 1e-6 ... 1 (wider grids suit many voxels), 5 folds.
    pub fn takagi() -> Self {
        RidgeOptions { alphas: log_grid(-6.0, 0.0, 7), cv: Cv::KFold(5), per_target: false, target_chunk: 4096, score: Score::NegMse, order: Order::Auto, solver: Solver::Auto, corr_every_alpha: false }
    }

    /// The default: 1e-2 ... 1e7 at 5 alphas per decade (46; one decomposition per fold serves
    /// them all), 5 folds, negative MSE.
    pub fn wide() -> Self {
        RidgeOptions { alphas: wide_grid(), ..Self::takagi() }
    }
}

/// Whether to multiply the targets last, given the multiply-adds of both orders.
pub(super) fn choose_last(order: Order, last: f64, first: f64) -> bool {
    match order {
        Order::Auto => last < first,
        Order::ProjectFirst => false,
        Order::TargetsLast => true,
    }
}
