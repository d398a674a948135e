//! Stable Diffusion v1 img2img, as diffusers' StableDiffusionImg2ImgPipeline runs it and
//! Takagi & Nishimoto use it: the init latent is noised to the first of the remaining
//! timesteps (strength 0.8 of 50 steps: t = 781, 761, ..., 1 with DDIM), then denoised with
//! classifier-free guidance (the unconditional half of the batch first:
//! `eps = eps_u + g (eps_c - eps_u)`), and the VAE decodes `latent / 0.18215`.
//! Latents here are NCHW `(1, 4, h, w)` flattened, as .npy files hold them.

use std::path::{Path, PathBuf};


use crate::io::npy;
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};
use crate::nn::{checkpoint, Loader};
use crate::nn::unet::{Unet, UnetConfig};
use crate::nn::vae::{Vae, VaeConfig};
use crate::sched::ddim::Ddim;
use crate::sched::pndm::Pndm;
use crate::sched::Schedule;
use crate::progress::Progress;

/// Which sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    /// DDIM, eta 0 (Takagi & Nishimoto).
    Ddim,
    /// PNDM / PLMS with skip_prk_steps (SD v1.5's default).
    Pndm,
}

/// img2img settings.
#[derive(Debug, Clone)]
pub struct Img2ImgOptions {
    /// Share of the schedule that is re-done (0.8).
    pub strength: f64,
    /// Inference steps for the whole schedule (50).
    pub steps: usize,
    /// Classifier-free guidance scale (5.0); 1 or less: no guidance.
    pub guidance: f32,
    /// The sampler.
    pub sampler: Sampler,
}

impl Default for Img2ImgOptions {
    fn default() -> Self {
        Img2ImgOptions { strength: 0.8, steps: 50, guidance: 5.0, sampler: Sampler::Ddim }
    }
}

/// What img2img starts from and is conditioned on.
#[derive(Debug, Clone, Copy)]
pub struct Img2ImgInput<'a> {
    /// The scaled init latent, NCHW `(1, C, h, w)` flattened.
    pub init: &'a [f32],
    /// `[C, h, w]`.
    pub shape: [usize; 3],
    /// The conditioning `(S, D)`.
    pub cond: &'a [f32],
    /// The unconditional context `(S, D)`, needed for guidance.
    pub uncond: Option<&'a [f32]>,
    /// Noise of the latent's shape.
    pub noise: &'a [f32],
}

/// Stable Diffusion's U-Net and VAE.
#[derive(Debug)]
pub struct StableDiffusion {
    /// The denoiser.
    pub unet: Unet,
    /// The autoencoder.
    pub vae: Vae,
    /// Where the text encoder is, when the model has one (for the empty-prompt context).
    pub text_encoder: Option<PathBuf>,
}

impl StableDiffusion {
    /// Loads a diffusers folder (`unet/`, `vae/`, optionally `text_encoder/`), or a single-file
    /// original checkpoint (`.safetensors`) with the SD v1 configs (`configs`: a folder with
    /// `unet/config.json` and `vae/config.json`; default: SD v1.5's).
    pub fn load(gpu: &Gpu, model: &Path, configs: Option<&Path>, dtype: DType) -> Result<Self> {
        if model.is_dir() {
            let unet = Unet::load(gpu, &model.join("unet"), dtype)?;
            let vae = Vae::load(gpu, &model.join("vae"), dtype)?;
            let te = model.join("text_encoder");
            return Ok(StableDiffusion { unet, vae, text_encoder: te.join("config.json").exists().then_some(te) });
        }
        if !model.exists() {
            return Err(Error::Invalid(format!("{}: no such model folder or checkpoint file", model.display())));
        }
        let (ucfg, vcfg) = match configs {
            Some(dir) => (UnetConfig::from_file(&dir.join("unet/config.json"))?, VaeConfig::from_file(&dir.join("vae/config.json"))?),
            None => (UnetConfig::sd_v1(), VaeConfig::sd_v1()),
        };
        let (uw, vw) = checkpoint::open_single_file(model, ucfg.layers_per_block, vcfg.block_out_channels.len())?;
        Ok(StableDiffusion { unet: Unet::from_weights(&Loader::new(gpu, &uw, dtype), ucfg)?, vae: Vae::from_weights(&Loader::new(gpu, &vw, dtype), vcfg)?, text_encoder: None })
    }

    /// Runs img2img from `init` (scaled latent, NCHW `(1, C, h, w)`) with `cond (S, D)` and,
    /// for guidance, `uncond (S, D)`; `noise` has the latent's shape. Returns the final
    /// (scaled) latent, NCHW. `bar` advances once per denoising step.
    pub fn img2img(&self, gpu: &Gpu, input: &Img2ImgInput<'_>, o: &Img2ImgOptions, bar: &dyn Progress) -> Result<Vec<f32>> {
        let Img2ImgInput { init, shape: [c, h, w], cond, uncond, noise } = *input;
        let d = self.unet.config.cross_attention_dim;
        let n = c * h * w;
        if init.len() != n || noise.len() != n {
            return Err(Error::Shape(format!("img2img: init latent has {} values and noise {}, expected {n} ({c}x{h}x{w})", init.len(), noise.len())));
        }
        if cond.is_empty() || !cond.len().is_multiple_of(d) {
            return Err(Error::Shape(format!("img2img: the conditioning has {} values, not a whole number of rows of {d}", cond.len())));
        }
        let s = cond.len() / d;
        let guided = o.guidance > 1.0;
        let uncond = match (guided, uncond) {
            (true, Some(u)) if u.len() == cond.len() => Some(u),
            (true, Some(u)) => return Err(Error::Shape(format!("img2img: unconditional context has {} values, the conditioning {}", u.len(), cond.len()))),
            (true, None) => return Err(Error::Invalid("img2img: guidance > 1 needs an unconditional context".into())),
            (false, _) => None,
        };
        if !(0.0..=1.0).contains(&o.strength) || o.steps == 0 {
            return Err(Error::Invalid(format!("img2img: strength {} must be in [0, 1] and steps ({}) positive", o.strength, o.steps)));
        }
        let schedule = Schedule::sd_v1();
        let mut pndm = Pndm::new(schedule.clone(), o.steps);
        let ddim = Ddim::new(schedule.clone(), o.steps);
        let timesteps = match o.sampler {
            Sampler::Ddim => schedule.img2img_timesteps(o.steps, o.strength),
            Sampler::Pndm => pndm.img2img_timesteps(o.strength),
        };
        let Some(&t0) = timesteps.first() else { return Ok(init.to_vec()) };
        let mut latent = schedule.add_noise(init, noise, t0);
        let batch = if guided { 2 } else { 1 };
        let ctx: Vec<f32> = match uncond {
            Some(u) => u.iter().chain(cond).copied().collect(),
            None => cond.to_vec(),
        };
        let ctx = Tensor::from_f32(gpu, &[batch, s, d], &ctx)?;
        bar.set_len(timesteps.len() as u64);
        for &t in &timesteps {
            let x = npy::nchw_to_nhwc(&latent, [1, c, h, w]);
            let x: Vec<f32> = (0..batch).flat_map(|_| x.iter().copied()).collect();
            let x = Tensor::from_f32(gpu, &[batch, h, w, c], &x)?;
            let mut enc = gpu.encoder();
            let eps = self.unet.forward(&mut enc, &x, &vec![t as f32; batch], &ctx, None)?;
            drop(enc);
            let eps = eps.to_vec(gpu)?;
            let eps = if guided {
                let (eu, ec) = eps.split_at(n);
                eu.iter().zip(ec).map(|(u, c)| u + o.guidance * (c - u)).collect()
            } else {
                eps
            };
            let eps = npy::nhwc_to_nchw(&eps, [1, h, w, c]);
            latent = match o.sampler {
                Sampler::Ddim => ddim.step(&eps, t, &latent),
                Sampler::Pndm => pndm.step(&eps, t, &latent),
            };
            bar.inc(1);
        }
        Ok(latent)
    }

    /// The VAE decode of a scaled latent NCHW `(1, C, h, w)` into an image in [0, 1], (H, W, 3).
    pub fn decode(&self, gpu: &Gpu, latent: &[f32], [c, h, w]: [usize; 3]) -> Result<crate::io::image::Rgb> {
        let sf = self.vae.config.scaling_factor;
        let z: Vec<f32> = npy::nchw_to_nhwc(latent, [1, c, h, w]).iter().map(|v| v / sf).collect();
        let z = Tensor::from_f32(gpu, &[1, h, w, c], &z)?;
        let mut enc = gpu.encoder();
        let y = self.vae.decode(&mut enc, &z, None)?;
        drop(enc);
        let (hh, ww) = (y.shape[1], y.shape[2]);
        let data = y.to_vec(gpu)?.iter().map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0)).collect();
        Ok(crate::io::image::Rgb { height: hh, width: ww, data })
    }

    /// The VAE encode of an image in [0, 1] into a scaled latent (the distribution's mean
    /// times the scaling factor), NCHW `(1, C, h, w)` flattened, and its `[C, h, w]`.
    pub fn encode(&self, gpu: &Gpu, image: &crate::io::image::Rgb) -> Result<(Vec<f32>, [usize; 3])> {
        let x: Vec<f32> = image.data.iter().map(|v| v * 2.0 - 1.0).collect();
        let x = Tensor::from_f32(gpu, &[1, image.height, image.width, 3], &x)?;
        let mut enc = gpu.encoder();
        let (mean, _) = self.vae.encode(&mut enc, &x, None)?;
        drop(enc);
        let [_, h, w, c] = mean.shape[..] else { unreachable!("vae encode returns NHWC") };
        let sf = self.vae.config.scaling_factor;
        let z = npy::nhwc_to_nchw(&mean.to_vec(gpu)?, [1, h, w, c]).iter().map(|v| v * sf).collect();
        Ok((z, [c, h, w]))
    }
}
