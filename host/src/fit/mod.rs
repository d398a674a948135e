//! Fitting voxel -> latent decoders (ridge regression on standardised voxels, alpha by
//! cross-validation) and writing them in percept-core's file format.

pub mod fastl2lir;
pub mod feature_targets;
pub mod features;
mod cholesky;
mod eigen;
mod gram_cv;
pub mod grid;
mod options;
pub mod ridge;
pub mod targets;

use faer::{Mat, MatRef};
use percept_core::Target;

pub use crate::io::decoder::{DecoderFile, DecoderWeights};
pub use ridge::{Cv, Order, RidgeOptions, Score, Solver};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// What to fit.
#[derive(Debug, Clone)]
pub struct FitSpec {
    /// Region of interest name stored in the decoder.
    pub region: String,
    /// z or c.
    pub target: Target,
    /// Shape of one target, e.g. [4, 40, 40].
    pub target_shape: Vec<usize>,
    /// Ridge settings.
    pub ridge: RidgeOptions,
    /// Export a low-rank decoder of this rank.
    pub rank: Option<usize>,
}

/// A fitted decoder and what the fit found.
#[derive(Debug)]
pub struct Fitted {
    /// The decoder, ready to save.
    pub file: DecoderFile,
    /// Correlation of cross-validated predictions with each target.
    pub cv_r: Vec<f32>,
    /// Alpha chosen per target.
    pub alpha: Vec<f64>,
    /// Mean cross-validated score (negative MSE) per alpha tried.
    pub cv_score: Vec<f64>,
    /// Mean cross-validated correlation per alpha tried (None where not computed: only the
    /// chosen alpha's is when the alphas were scored from the targets' Gram matrix).
    pub cv_corr: Vec<Option<f64>>,
    /// Set when the chosen alpha is at an end of the grid: what to widen.
    pub warning: Option<String>,
}

/// Fits `targets (n, L)` from `voxels (n, V)`, both row-major.
pub fn fit(voxels: &[f32], n: usize, v: usize, targets: &[f32], spec: &FitSpec, bar: &dyn Progress) -> Result<Fitted> {
    let l: usize = spec.target_shape.iter().product();
    if v == 0 {
        return Err(Error::Shape(format!("voxels: {n} trials x 0 voxels; at least one voxel is needed")));
    }
    if l == 0 {
        return Err(Error::Shape(format!("targets: shape {:?} per trial has no value (a dimension is 0)", spec.target_shape)));
    }
    if n < 2 {
        return Err(Error::Shape(format!("voxels: {n} trials; at least 2 are needed to fit")));
    }
    if voxels.len() != n * v {
        return Err(Error::Shape(format!("voxels: {} values for {n} trials x {v} voxels", voxels.len())));
    }
    if targets.len() != n * l {
        return Err(Error::Shape(format!("targets: {} values, expected {n} trials x {l} ({:?})", targets.len(), spec.target_shape)));
    }
    if let Some(i) = voxels.iter().position(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!("voxel {} of trial {} is {} (NaN or infinite)", i % v, i / v, voxels[i])));
    }
    if let Some(i) = targets.iter().position(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!("target value {} of trial {} is {}", i % l, i / l, targets[i])));
    }
    // Standardise each voxel with the training mean and (population) standard deviation.
    let mut mean = vec![0f64; v];
    let mut sq = vec![0f64; v];
    for row in voxels.chunks_exact(v) {
        for (j, &x) in row.iter().enumerate() {
            mean[j] += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    for row in voxels.chunks_exact(v) {
        for (j, &x) in row.iter().enumerate() {
            sq[j] += (x as f64 - mean[j]).powi(2);
        }
    }
    let std: Vec<f64> = sq.iter().map(|s| (s / n as f64).sqrt()).collect();
    // NaN counts as constant too: anything not clearly above the floor.
    if let Some(j) = (0..v).find(|&j| std[j].partial_cmp(&(1e-12 * (1.0 + mean[j].abs()))) != Some(std::cmp::Ordering::Greater)) {
        return Err(Error::Invalid(format!("voxel {j} is constant over the {n} training trials (std 0); remove it from the mask")));
    }
    let x = Mat::from_fn(n, v, |i, j| ((voxels[i * v + j] as f64 - mean[j]) / std[j]) as f32);
    // The targets are read in place: a row-major (n, L) view, no copy.
    let y = MatRef::from_row_major_slice(targets, n, l);
    let mut r = ridge::fit(x.as_ref(), y, &spec.ridge, bar)?;

    // The ridge writes the weights in the decoder's (L, V) layout already.
    let weights = match spec.rank {
        None => DecoderWeights::Dense(std::mem::take(&mut r.weights)),
        Some(k) => {
            let (u, vt) = low_rank(MatRef::from_column_major_slice(&r.weights, v, l), k)?;
            DecoderWeights::LowRank { u, vt, rank: k }
        }
    };
    let alphas: Vec<String> = spec.ridge.alphas.iter().map(|a| format!("{a:e}")).collect();
    let mut sorted_r = r.cv_r.clone();
    sorted_r.sort_by(f32::total_cmp);
    let median_r = sorted_r[sorted_r.len() / 2];
    let mean_r = r.cv_r.iter().sum::<f32>() / l as f32;
    let settings = vec![
        ("method".to_string(), "ridge on standardised voxels".to_string()),
        ("alphas".to_string(), alphas.join(",")),
        ("alpha".to_string(), if spec.ridge.per_target { "per target".into() } else { format!("{:e}", r.alpha[0]) }),
        ("cv".to_string(), match spec.ridge.cv { Cv::KFold(k) => format!("{k}-fold"), Cv::LeaveOneOut => "leave-one-out".into() }),
        ("solver".to_string(), match (r.solver, r.fallbacks) {
            (ridge::Solver::Cholesky, _) => "Cholesky per alpha".into(),
            (_, 0) => "eigendecomposition".into(),
            (_, f) => format!("eigendecomposition ({f} Cholesky factorisations not positive definite)"),
        }),
        ("score".to_string(), match spec.ridge.score { Score::NegMse => "negative MSE".into(), Score::Correlation => "correlation".into() }),
        ("trials".to_string(), n.to_string()),
        ("cv_r_mean".to_string(), format!("{mean_r:.4}")),
        ("cv_r_median".to_string(), format!("{median_r:.4}")),
    ];
    let file = DecoderFile {
        region: spec.region.clone(),
        target: spec.target,
        target_shape: spec.target_shape.clone(),
        voxels: v,
        weights,
        bias: r.intercept.clone(),
        voxel_mean: mean.iter().map(|&m| m as f32).collect(),
        voxel_std: std.iter().map(|&s| s as f32).collect(),
        settings,
        features: None,
    };
    let warning = ridge::edge_warning(&spec.ridge.alphas, &r.alpha);
    Ok(Fitted { file, cv_r: r.cv_r, alpha: r.alpha, cv_score: r.cv_score, cv_corr: r.cv_corr, warning })
}

/// Best rank-k factors of `w (V, L)` as the decoder stores them: `u (L, k)` (singular values
/// folded in) and `vt (k, V)`, row-major.
fn low_rank(w: MatRef<'_, f32>, k: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let (v, l) = (w.nrows(), w.ncols());
    if k == 0 || k > v.min(l) {
        return Err(Error::Invalid(format!("--rank {k} must be between 1 and {}", v.min(l))));
    }
    let svd = w.thin_svd().map_err(|e| Error::Invalid(format!("SVD of the weights failed: {e:?}")))?;
    let (uu, s, vv) = (svd.U(), svd.S().column_vector(), svd.V());
    // w = U S V^T with U (V, m), V (L, m): decoder weight (L, V) = w^T = V S U^T.
    let u: Vec<f32> = (0..l).flat_map(|t| (0..k).map(move |c| (t, c))).map(|(t, c)| vv[(t, c)] * s[c]).collect();
    let vt: Vec<f32> = (0..k).flat_map(|c| (0..v).map(move |j| (c, j))).map(|(c, j)| uu[(j, c)]).collect();
    Ok((u, vt))
}

/// A Markdown report of a fit: data, settings, chosen alpha(s) and cross-validated accuracy.
pub fn report(f: &Fitted, spec: &FitSpec, n: usize, v: usize, source: &str, seconds: f64) -> String {
    use std::fmt::Write as _;
    let mut r = String::new();
    let mut sorted = f.cv_r.clone();
    sorted.sort_by(f32::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let _ = writeln!(r, "# Decoder fit: {} -> {:?} {:?}\n", spec.region, spec.target, spec.target_shape);
    let _ = writeln!(r, "- voxels: {source}: {n} trials x {v} voxels, standardised");
    let _ = writeln!(r, "- targets: {} values per trial", sorted.len());
    let cv = match spec.ridge.cv {
        Cv::KFold(k) => format!("{k}-fold (contiguous)"),
        Cv::LeaveOneOut => "leave-one-out (exact shortcut)".into(),
    };
    let score = match spec.ridge.score {
        Score::NegMse => "the lowest prediction error (-MSE, himalaya's score)",
        Score::Correlation => "the highest correlation of predictions with the targets",
    };
    let _ = writeln!(r, "- ridge, alpha by {cv} cross-validation for {score}, {}", if spec.ridge.per_target { "one alpha per target" } else { "one alpha for all targets" });
    let _ = writeln!(r, "- fitted in {seconds:.1} s\n");
    if let Some(w) = &f.warning {
        let _ = writeln!(r, "**Warning:** {w}.\n");
    }
    let _ = writeln!(r, "| alpha | mean CV score (-MSE) | mean CV correlation | |\n|---|---|---|---|");
    for ((a, s), c) in spec.ridge.alphas.iter().zip(&f.cv_score).zip(&f.cv_corr) {
        let chosen = f.alpha.iter().filter(|&&x| x == *a).count();
        let c = c.map_or("-".to_string(), |c| format!("{c:.4}"));
        let _ = writeln!(r, "| {} | {s:.6} | {c} | {} |", ridge::alpha_label(*a), if chosen > 0 { format!("chosen for {chosen} targets") } else { String::new() });
    }
    if f.cv_corr.iter().any(Option::is_none) {
        let _ = writeln!(r, "\nThe alphas were scored by their squared error from the targets' Gram matrix and only the chosen one was predicted target by target, so the other alphas' correlations (-) were not computed (`--corr-every-alpha` computes them, at the cost of predicting every alpha).");
    }
    let mean = f.cv_r.iter().sum::<f32>() / f.cv_r.len().max(1) as f32;
    let _ = writeln!(r, "\nCross-validated correlation of predicted and true targets: mean {mean:.3}, median {:.3}, 10th percentile {:.3}, 90th percentile {:.3}.", q(0.5), q(0.1), q(0.9));
    r
}
