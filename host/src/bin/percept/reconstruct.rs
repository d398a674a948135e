//! `percept reconstruct`: voxels -> images.

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{reconstruct, Context};

use crate::args::{OutputArgs, SamplingArgs, VoxelArgs};
use crate::bars::Bars;

/// Arguments of `percept reconstruct`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    voxels: VoxelArgs,
    /// The z decoder (early visual -> VAE latent), from `percept fit`.
    #[arg(long)]
    decoder: PathBuf,
    /// The stimulus list of the trials (CSV with `image`): repeats of an image are averaged
    /// before decoding, and the grid and `pairs.csv` put each original beside its reconstruction.
    #[arg(long)]
    stimuli: Option<PathBuf>,
    /// TAESD weights folder (default: the shipped weights/taesd).
    #[arg(long)]
    taesd: Option<PathBuf>,
    /// Stable Diffusion v1 (diffusers folder or single-file checkpoint): the z images come
    /// from its VAE, and Takagi & Nishimoto's second stage follows (z image -> SD VAE ->
    /// img2img on the decoded c).
    #[arg(long, requires = "decoder_c")]
    sd: Option<PathBuf>,
    /// The c decoder (higher visual -> text conditioning), from `percept fit --target c`.
    #[arg(long, requires = "voxels_c", requires = "sd")]
    decoder_c: Option<PathBuf>,
    /// The voxels the c decoder reads, (trials, voxels) .npy, same trials as --voxels.
    #[arg(long)]
    voxels_c: Option<PathBuf>,
    /// Unconditional context for guidance (default: the empty prompt via the model's text_encoder/).
    #[arg(long)]
    uncond: Option<PathBuf>,
    /// Images per trial from the second stage.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Side of the images the second stage works at (a multiple of 8, at most 2048).
    #[arg(long, default_value_t = 512)]
    sd_size: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The folder to write.
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    crate::args::check_side("--sd-size", a.sd_size, 2048)?;
    let sd = match (&a.sd, &a.decoder_c, &a.voxels_c) {
        (Some(model), Some(decoder_c), Some(voxels_c)) => Some(reconstruct::SdStage {
            model: model.clone(),
            decoder_c: decoder_c.clone(),
            voxels_c: voxels_c.clone(),
            uncond: a.uncond.clone(),
            samples: a.samples,
            size: a.sd_size,
            sampling: a.sampling.options(),
            seed: a.sampling.seed,
        }),
        _ => None,
    };
    let o = reconstruct::Options {
        voxels: a.voxels.source()?,
        decoder: a.decoder.clone(),
        stimuli: a.stimuli.clone(),
        taesd: a.taesd.clone().unwrap_or_else(percept::paths::taesd),
        sd,
        out: a.output.out.clone(),
        force: a.output.force,
    };
    // One run at a time writes a folder of reconstructions.
    let _lock = percept::io::output::lock(&o.out)?;
    let outcome = reconstruct::run(ctx, &o, &Bars::default())?;
    println!("{}", outcome.summary);
    Ok(())
}
