//! `percept encode` and `percept decode`: TAESD, one image <-> one latent.

use std::path::PathBuf;

use anyhow::Result;
use percept::io::{npy, output::ensure_writable};
use percept::pipeline::{encode, Context};

use crate::args::OutputArgs;

/// Arguments of `percept encode`.
#[derive(clap::Args)]
pub struct EncodeArgs {
    /// A PNG or JPEG; its largest centred square is used.
    image: PathBuf,
    /// The .npy to write.
    #[command(flatten)]
    output: OutputArgs,
    /// Side of the square the image is resized to (a multiple of 8, at most 4096).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Folder with taesd_encoder.safetensors (default: the shipped weights/taesd).
    #[arg(long)]
    weights: Option<PathBuf>,
}

/// Arguments of `percept decode`.
#[derive(clap::Args)]
pub struct DecodeArgs {
    /// The latent, (4, h, w) or (1, 4, h, w) .npy.
    latent: PathBuf,
    /// The PNG to write.
    #[command(flatten)]
    output: OutputArgs,
    /// Folder with taesd_decoder.safetensors (default: the shipped weights/taesd).
    #[arg(long)]
    weights: Option<PathBuf>,
}

pub fn run_encode(a: EncodeArgs, ctx: &Context) -> Result<()> {
    let OutputArgs { out, force } = &a.output;
    crate::args::check_side("--size", a.size, 4096)?;
    ensure_writable(out, *force)?;
    let weights = a.weights.unwrap_or_else(percept::paths::taesd);
    let (z, shape) = encode::encode_image(ctx, &weights, &a.image, a.size)?;
    npy::write(out, &shape, &z, *force)?;
    println!("{}: latent {shape:?} from {}", out.display(), a.image.display());
    Ok(())
}

pub fn run_decode(a: DecodeArgs, ctx: &Context) -> Result<()> {
    let OutputArgs { out, force } = &a.output;
    ensure_writable(out, *force)?;
    let (z, shape) = npy::read_latent(&a.latent)?;
    anyhow::ensure!(shape[0] == 4, "{}: {} channels; SD v1 latents have 4", a.latent.display(), shape[0]);
    let weights = a.weights.unwrap_or_else(percept::paths::taesd);
    let img = encode::decode_latent(ctx, &weights, &z, shape)?;
    img.save_png(out, *force)?;
    println!("{}: {}x{} image from {}", out.display(), img.width, img.height, a.latent.display());
    Ok(())
}
