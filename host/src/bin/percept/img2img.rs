//! `percept img2img`: Stable Diffusion v1 img2img.

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{img2img, Context};

use crate::args::{OutputArgs, SamplingArgs};
use crate::bars::Bars;

/// Arguments of `percept img2img`.
#[derive(clap::Args)]
pub struct Args {
    /// A diffusers SD v1 folder (unet/, vae/, optionally text_encoder/) or an original
    /// single-file checkpoint (.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// For a single-file checkpoint: a folder with unet/config.json and vae/config.json
    /// (default: SD v1.5's sizes).
    #[arg(long)]
    configs: Option<PathBuf>,
    /// The init latent, (4, h, w) or (1, 4, h, w) .npy on SD's scale (x 0.18215).
    #[arg(long, required_unless_present = "init_image")]
    init_latent: Option<PathBuf>,
    /// Or an init image, encoded with the model's VAE (the distribution's mean).
    #[arg(long, conflicts_with = "init_latent")]
    init_image: Option<PathBuf>,
    /// Side the init image is resized to (a multiple of 8, at most 4096).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// The conditioning c: (77, 768) or (1, 77, 768) .npy.
    #[arg(long)]
    cond: PathBuf,
    /// The unconditional context for guidance (default: the empty prompt through the model's
    /// text_encoder/, which a single-file checkpoint does not provide).
    #[arg(long)]
    uncond: Option<PathBuf>,
    /// The noise added to the init latent, same shape (default: seeded Gaussian noise; to
    /// reproduce another implementation's run exactly, give its noise here).
    #[arg(long)]
    noise: Option<PathBuf>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Keep the weights in f32 on the GPU (default: packed f16, half the memory).
    #[arg(long)]
    f32: bool,
    /// Output: .npy for the latent, .png for the decoded image.
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    crate::args::check_side("--size", a.size, 4096)?;
    let init = match (&a.init_latent, &a.init_image) {
        (Some(p), _) => img2img::Init::Latent(p.clone()),
        (None, Some(p)) => img2img::Init::Image { path: p.clone(), size: a.size },
        (None, None) => anyhow::bail!("give --init-latent Z.npy or --init-image IMAGE"),
    };
    let o = img2img::Options {
        model: a.model.clone(),
        configs: a.configs.clone(),
        init,
        cond: a.cond.clone(),
        uncond: a.uncond.clone(),
        noise: a.noise.clone(),
        sampling: a.sampling.options(),
        seed: a.sampling.seed,
        f32: a.f32,
        out: a.output.out.clone(),
        force: a.output.force,
    };
    println!("{}", img2img::run(ctx, &o, &Bars::default())?);
    if let Some(p) = ctx.gpu().ok().and_then(|g| g.profile_report()) {
        eprintln!("time per kernel (PERCEPT_PROFILE: each dispatch run alone):\n{p}");
    }
    Ok(())
}
