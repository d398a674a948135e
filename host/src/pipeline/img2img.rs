//! `percept img2img`: Stable Diffusion v1 img2img from a latent or an image, conditioned on a
//! context c, written as a latent (.npy) or the VAE-decoded image (.png).

use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu};
use crate::io::image::Rgb;
use crate::io::npy;
use crate::io::output::ensure_writable;
use crate::nn::clip::ClipTextModel;
use crate::nn::tokenizer::Tokenizer;
use crate::progress::Progress;
use crate::sd::{Img2ImgInput, Img2ImgOptions, StableDiffusion};

/// Where img2img starts.
#[derive(Debug, Clone)]
pub enum Init {
    /// A (4, h, w) or (1, 4, h, w) .npy on SD's scale (x 0.18215).
    Latent(PathBuf),
    /// An image, resized to `size` and encoded with the model's VAE (the distribution's mean).
    Image {
        /// The image.
        path: PathBuf,
        /// Side it is resized to (a multiple of 8).
        size: usize,
    },
}

/// What `img2img` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// A diffusers SD v1 folder or a single-file checkpoint.
    pub model: PathBuf,
    /// For a single-file checkpoint: a folder with unet/config.json and vae/config.json.
    pub configs: Option<PathBuf>,
    /// The start.
    pub init: Init,
    /// The conditioning c, (S, D) or (1, S, D) .npy.
    pub cond: PathBuf,
    /// The unconditional context (default: the empty prompt through the model's text encoder).
    pub uncond: Option<PathBuf>,
    /// The noise added to the init latent (default: seeded Gaussian noise).
    pub noise: Option<PathBuf>,
    /// Strength, steps, guidance, sampler.
    pub sampling: Img2ImgOptions,
    /// Seed of the noise when it is not given.
    pub seed: u64,
    /// Weights on the GPU as f32 (default f16).
    pub f32: bool,
    /// Output: .npy (the latent) or .png (the image).
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
}

/// The empty prompt through the model's text encoder: SD's unconditional context.
pub fn empty_prompt(gpu: &Gpu, sd: &StableDiffusion, model: &Path, guidance: f32) -> Result<Vec<f32>> {
    let te = sd.text_encoder.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "guidance {guidance} needs an unconditional context: pass --uncond u.npy (the model {} has no text_encoder/ to embed the empty prompt)",
            model.display()
        ))
    })?;
    let (_, tok) = crate::paths::text_encoder(model, None);
    let tok = Tokenizer::load(&tok)?;
    let clip = ClipTextModel::load(gpu, &te, DType::F16)?;
    let mut enc = gpu.encoder();
    let y = clip.forward(&mut enc, &[tok.encode("")])?;
    drop(enc);
    y.to_vec(gpu)
}

/// Runs the job; returns one line saying what was written.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<String> {
    ensure_writable(&o.out, o.force)?;
    let png = match o.out.extension().and_then(|e| e.to_str()) {
        Some("png") => true,
        Some("npy") => false,
        _ => return Err(Error::Invalid(format!("{}: the output must be a .npy (latent) or .png (image)", o.out.display()))),
    };
    let dtype = if o.f32 { DType::F32 } else { DType::F16 };
    progress.begin("loading", 0);
    let gpu = ctx.gpu()?;
    let sd = StableDiffusion::load(gpu, &o.model, o.configs.as_deref(), dtype)?;
    progress.done();
    let (init, shape) = match &o.init {
        Init::Latent(p) => npy::read_latent(p)?,
        Init::Image { path, size } => {
            if size % 8 != 0 || *size == 0 {
                return Err(Error::Invalid(format!("image side {size} is not a positive multiple of 8")));
            }
            sd.encode(gpu, &Rgb::open_square(path, *size)?)?
        }
    };
    if shape[0] != sd.unet.config.in_channels {
        return Err(Error::Shape(format!("init latent has {} channels; the U-Net takes {}", shape[0], sd.unet.config.in_channels)));
    }
    let d = sd.unet.config.cross_attention_dim;
    let cond = npy::read_context(&o.cond, d)?;
    let uncond = match (&o.uncond, o.sampling.guidance > 1.0) {
        (Some(p), _) => Some(npy::read_context(p, d)?),
        (None, false) => None,
        (None, true) => Some(empty_prompt(gpu, &sd, &o.model, o.sampling.guidance)?),
    };
    let n: usize = shape.iter().product();
    let noise = match &o.noise {
        Some(p) => {
            let (v, s) = npy::read_latent(p)?;
            if s != shape {
                return Err(Error::Shape(format!("{}: noise of shape {s:?} for a latent of {shape:?}", p.display())));
            }
            v
        }
        None => crate::sched::gaussian(n, o.seed),
    };
    progress.begin("denoising", 0);
    let input = Img2ImgInput { init: &init, shape, cond: &cond, uncond: uncond.as_deref(), noise: &noise };
    let latent = sd.img2img(gpu, &input, &o.sampling, progress)?;
    progress.done();
    if png {
        sd.decode(gpu, &latent, shape)?.save_png(&o.out, o.force)?;
    } else {
        npy::write(&o.out, &[1, shape[0], shape[1], shape[2]], &latent, o.force)?;
    }
    let s = &o.sampling;
    Ok(format!("{}: img2img, {} steps at strength {}, guidance {}", o.out.display(), s.steps, s.strength, s.guidance))
}
