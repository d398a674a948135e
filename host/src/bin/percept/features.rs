//! `percept fit --target features`: the arguments of DNN feature decoding (Shen et al. 2019)
//! and the call of `pipeline::features`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use percept::fit::fastl2lir::FastL2LirOptions;
use percept::fit::features::Method;
use percept::fit::RidgeOptions;
use percept::io::voxels::VoxelSource;
use percept::pipeline::features::{self, Trials};
use percept::pipeline::Context;

use crate::args::{NetArgs, OutputArgs};
use crate::bars::Bars;

/// How each layer's decoder is fitted.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FeatMethod {
    /// Per unit the --select voxels of highest |r|, ridge with --alpha (the Kamitani lab's; sparse decoder).
    Fastl2lir,
    /// Dense ridge on all voxels, alpha by cross-validation over --alphas (percept fit's).
    Ridge,
}

/// Arguments used with `--target features`.
#[derive(clap::Args)]
pub struct FeatureArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Layers to decode, comma-separated reference names (e.g. `_blocks.2,_blocks.9,_avg_pooling`; VGG19: `features.3,classifier.0`).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// Units per layer, drawn at random with --seed (default: every unit of the layer).
    #[arg(long)]
    units: Option<usize>,
    /// Seed of the unit draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How each decoder is fitted.
    #[arg(long, value_enum, default_value = "fastl2lir")]
    method: FeatMethod,
    /// FastL2LiR: voxels per unit.
    #[arg(long, default_value_t = 500)]
    select: usize,
    /// FastL2LiR: ridge penalty.
    #[arg(long, default_value_t = 100.0)]
    alpha: f64,
    /// Held-out voxels (a (trials, voxels) .npy) for the report's correlations; needs --test-stimuli.
    #[arg(long, requires = "test_stimuli")]
    test_voxels: Option<PathBuf>,
    /// The stimulus list of --test-voxels.
    #[arg(long, requires = "test_voxels")]
    test_stimuli: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
pub fn run(a: &FeatureArgs, voxels: VoxelSource, list: &Path, ridge: RidgeOptions, region: &str, cache: PathBuf, out: &OutputArgs, ctx: &Context) -> Result<()> {
    let net = a.net.choice()?;
    if a.layers.is_empty() {
        anyhow::bail!("--target features needs --layers: comma-separated layer names of the network");
    }
    let method = match a.method {
        FeatMethod::Fastl2lir => Method::FastL2Lir(FastL2LirOptions { select: a.select, alpha: a.alpha }),
        FeatMethod::Ridge => Method::Ridge(ridge),
    };
    let test = match (&a.test_voxels, &a.test_stimuli) {
        (Some(v), Some(s)) => Some(Trials { voxels: VoxelSource::Npy(v.clone()), stimuli: s.clone() }),
        _ => None,
    };
    let o = features::Options {
        train: Trials { voxels, stimuli: list.to_path_buf() },
        test,
        net,
        layers: a.layers.clone(),
        units: a.units,
        seed: a.seed,
        method,
        region: region.into(),
        out: out.out.clone(),
        cache,
        force: out.force,
    };
    let outcome = features::run(ctx, &o, &Bars::default())?;
    print!("{}", outcome.report);
    println!("\nwrote {} files into {}", outcome.written.len(), out.out.display());
    Ok(())
}
