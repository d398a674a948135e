//! `percept fit`: a voxel -> latent decoder by ridge regression, or (`--target features`)
//! one decoder per layer of a feature network (FastL2LiR or ridge; see `features.rs`).

use std::path::PathBuf;

use anyhow::Result;
use percept::fit::{Cv, RidgeOptions, Score};
use percept::pipeline::{fit, Context};
use percept_core::Target;

use crate::args::{OutputArgs, VoxelArgs};
use crate::bars::Bars;

/// What the targets are.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TargetKind {
    /// The VAE latent z.
    Z,
    /// The text conditioning c.
    C,
    /// Layers of a feature network (Shen et al. 2019): one decoder per layer into the folder --out.
    Features,
}

/// Arguments of `percept fit`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    voxels: VoxelArgs,
    /// Targets given directly: a (trials, ...) float .npy (e.g. caption embeddings (N, 77, 768)).
    /// Without it, --stimuli is needed.
    #[arg(long, conflicts_with = "stimuli")]
    targets: Option<PathBuf>,
    /// Targets from images: a stimulus list (CSV with an `image` column, one row per trial).
    #[arg(long)]
    stimuli: Option<PathBuf>,
    /// Image side for --stimuli targets: 320 gives 4x40x40 (Takagi & Nishimoto), 512 gives 4x64x64 (a multiple of 8, at most 4096).
    #[arg(long, default_value_t = 320)]
    size: usize,
    /// TAESD weights folder for --stimuli (default: the shipped weights/taesd).
    #[arg(long)]
    encoder_weights: Option<PathBuf>,
    /// Folder for cached image latents (default: <out>.cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Region of interest, stored in the decoder.
    #[arg(long, default_value = "early_visual")]
    region: String,
    /// What the targets are.
    #[arg(long, value_enum, default_value = "z")]
    target: TargetKind,
    /// Alphas to try: comma-separated values, `wide` (1e-2 ... 1e7, 5 per decade) or `takagi`
    /// (Takagi & Nishimoto's 1e-6 ... 1, one per decade).
    #[arg(long, default_value = "wide", value_parser = parse_alphas)]
    alphas: Alphas,
    /// What the choice of alpha maximises.
    #[arg(long, value_enum, default_value = "mse")]
    score: ScoreKind,
    /// Cross-validation: a number of folds, or `loo` for the leave-one-out shortcut.
    #[arg(long, default_value = "5", value_parser = parse_cv)]
    cv: Cv,
    /// Choose one alpha per target instead of one for all.
    #[arg(long)]
    per_target: bool,
    /// Predict every alpha in every fold for the report's per-alpha mean correlations (slower
    /// with many targets; otherwise one alpha for all by MSE is scored from the targets' Gram
    /// matrix and only the chosen alpha's correlations are computed).
    #[arg(long)]
    corr_every_alpha: bool,
    /// Write a low-rank decoder of this rank.
    #[arg(long)]
    rank: Option<usize>,
    #[command(flatten)]
    features: crate::features::FeatureArgs,
    /// The decoder file to write (.safetensors); the report goes to <out>.md. With
    /// `--target features`: the folder for `<layer>.safetensors` and `report.md`.
    #[command(flatten)]
    output: OutputArgs,
}

/// The alpha grid.
#[derive(Clone)]
struct Alphas(Vec<f64>);

fn parse_alphas(s: &str) -> Result<Alphas, String> {
    match s {
        "wide" => Ok(Alphas(percept::fit::ridge::wide_grid())),
        "takagi" => Ok(Alphas(RidgeOptions::takagi().alphas)),
        list => list
            .split(',')
            .map(|v| v.trim().parse::<f64>().ok().filter(|a| a.is_finite() && *a > 0.0).ok_or_else(|| format!("--alphas {list}: `{v}` is not a positive number (or give `wide` or `takagi`)")))
            .collect::<Result<Vec<_>, _>>()
            .map(Alphas),
    }
}

/// What cross-validation maximises.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ScoreKind {
    /// The negative mean squared error of held-out predictions (himalaya's).
    Mse,
    /// The correlation of held-out predictions with the targets.
    Correlation,
}

fn parse_cv(s: &str) -> Result<Cv, String> {
    match s {
        "loo" => Ok(Cv::LeaveOneOut),
        k => k.parse().map(Cv::KFold).map_err(|_| format!("--cv {k}: expected a number of folds or `loo`")),
    }
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    if let TargetKind::Features = a.target {
        let ridge = RidgeOptions { alphas: a.alphas.0.clone(), cv: a.cv, per_target: a.per_target, ..RidgeOptions::default() };
        let Some(list) = &a.stimuli else { anyhow::bail!("--target features needs the training images: --stimuli LIST.csv") };
        let cache = a.cache.clone().unwrap_or_else(|| a.output.out.with_extension("cache"));
        return crate::features::run(&a.features, a.voxels.source()?, list, ridge, &a.region, cache, &a.output, ctx);
    }
    crate::args::check_side("--size", a.size, 4096)?;
    let out = a.output.out.clone();
    let targets = match (&a.targets, &a.stimuli) {
        (Some(p), _) => fit::Targets::Array(p.clone()),
        (None, Some(list)) => fit::Targets::Images {
            list: list.clone(),
            size: a.size,
            weights: a.encoder_weights.clone().unwrap_or_else(percept::paths::taesd),
            cache: a.cache.clone().unwrap_or_else(|| out.with_extension("cache")),
        },
        (None, None) => anyhow::bail!("give the targets with --targets Y.npy or --stimuli LIST.csv"),
    };
    let score = match a.score {
        ScoreKind::Mse => Score::NegMse,
        ScoreKind::Correlation => Score::Correlation,
    };
    let ridge = RidgeOptions { alphas: a.alphas.0.clone(), cv: a.cv, per_target: a.per_target, score, corr_every_alpha: a.corr_every_alpha, ..RidgeOptions::default() };
    let target = match a.target {
        TargetKind::Z => Target::Z,
        TargetKind::C => Target::C,
        TargetKind::Features => anyhow::bail!("--target features is fitted above"),
    };
    let o = fit::Options { voxels: a.voxels.source()?, targets, region: a.region.clone(), target, ridge, rank: a.rank, out, force: a.output.force };
    let outcome = fit::run(ctx, &o, &Bars::default())?;
    print!("{}", outcome.report);
    if let Some(w) = &outcome.fitted.warning {
        eprintln!("warning: {w}");
    }
    println!("\nwrote {} and {}", outcome.written[0].display(), outcome.written[1].display());
    Ok(())
}
