//! `percept encode` / `percept decode`: one image to an SD v1 latent with TAESD, and back.

use std::path::Path;

use super::Context;
use crate::error::{Error, Result};
use crate::io::image::Rgb;
use crate::nn::taesd::{Taesd, LATENT_CHANNELS};

/// TAESD's latent of the image's centred square resized to `size`: NCHW `(4, size/8, size/8)`
/// flattened, on the scale of SD's latents times 0.18215.
pub fn encode_image(ctx: &Context, weights: &Path, image: &Path, size: usize) -> Result<(Vec<f32>, [usize; 3])> {
    if !size.is_multiple_of(8) || size == 0 {
        return Err(Error::Invalid(format!("image side {size} is not a positive multiple of 8")));
    }
    let img = Rgb::open_square(image, size)?;
    let gpu = ctx.gpu()?;
    let taesd = Taesd::load(gpu, weights, crate::nn::taesd::WEIGHTS)?;
    let z = taesd.encode_rgb(gpu, &[&img], &crate::progress::Silent)?;
    Ok((z, [LATENT_CHANNELS, size / 8, size / 8]))
}

/// The image TAESD decodes from `latent` NCHW `(4, h, w)`: `8h x 8w`.
pub fn decode_latent(ctx: &Context, weights: &Path, latent: &[f32], [c, h, w]: [usize; 3]) -> Result<Rgb> {
    if c != LATENT_CHANNELS {
        return Err(Error::Shape(format!("a latent of {c} channels; SD v1 latents have {LATENT_CHANNELS}")));
    }
    let gpu = ctx.gpu()?;
    let taesd = Taesd::load(gpu, weights, crate::nn::taesd::WEIGHTS)?;
    let mut imgs = taesd.decode_latents(gpu, latent, 1, h, w)?;
    imgs.pop().ok_or_else(|| Error::Invalid("TAESD decoded no image".into()))
}
