//! Where deep image reconstruction starts: the z-only reconstruction, one latent for every
//! image, or a grey image; as the objective's `x` and as images.

use super::super::reconstruct::decode_voxels;
use super::{Options, Start};
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::io::image::Rgb;
use crate::io::{npy, stimuli};
use crate::nn::taesd::Taesd;
use crate::pipeline::Context;

/// The start `x (m, dim)` for the objective and the images it makes.
pub(super) fn start(ctx: &Context, o: &Options, taesd: Option<&Taesd>, m: usize, groups: &[Vec<usize>]) -> Result<(Vec<f32>, Vec<Rgb>)> {
    let gpu = ctx.gpu()?;
    let s = o.size;
    let grey = || Rgb { height: s, width: s, data: vec![0.5; s * s * 3] };
    // The start as images (at size s) or as one latent.
    let images: Vec<Rgb> = match &o.start {
        Start::Grey => vec![grey(); m],
        Start::ZDecoder { decoder, voxels } => {
            let vox = voxels.as_ref().unwrap_or(&o.voxels).load()?;
            let n = groups.iter().flatten().copied().max().map_or(0, |t| t + 1);
            if vox.trials < n {
                return Err(Error::Shape(format!("{}: {} trials, but the feature voxels have {n}", vox.source, vox.trials)));
            }
            let xz = stimuli::average_rows(&vox.data, vox.voxels, groups);
            let (z, shape) = decode_voxels(decoder, &xz, m)?;
            let [4, h, w] = shape[..] else { return Err(Error::Shape(format!("{}: decodes a target of shape {shape:?}, not a latent (4, h, w)", decoder.display()))) };
            if let (Some(t), true) = (taesd, 8 * h == s && 8 * w == s) {
                let imgs = t.decode_latents(gpu, &z, m, h, w)?;
                return Ok((npy::nchw_to_nhwc(&z, [m, 4, h, w]), imgs));
            }
            // Another size, or pixels: the z-only image (TAESD, the shipped one without a
            // generator), resized.
            let own;
            let t = match taesd {
                Some(t) => t,
                None => {
                    own = Taesd::load(gpu, &crate::paths::taesd(), DType::F32)?;
                    &own
                }
            };
            t.decode_latents(gpu, &z, m, h, w)?.iter().map(|i| i.resized(s)).collect()
        }
        Start::Latent(path) => {
            let a = npy::read(path)?;
            let per = (s / 8) * (s / 8) * 4;
            if a.data.len() != per {
                return Err(Error::Shape(format!("{}: shape {:?}; one latent (4, {}, {}) is expected for --size {s}", path.display(), a.shape, s / 8, s / 8)));
            }
            let t = taesd.ok_or_else(|| Error::Invalid(format!("{}: a start latent needs the generator (TAESD)", path.display())))?;
            let z: Vec<f32> = (0..m).flat_map(|_| a.data.iter().copied()).collect();
            let imgs = t.decode_latents(gpu, &z, m, s / 8, s / 8)?;
            return Ok((npy::nchw_to_nhwc(&z, [m, 4, s / 8, s / 8]), imgs));
        }
    };
    match taesd {
        None => Ok((images.iter().flat_map(|i| i.data.iter().copied()).collect(), images)),
        Some(t) => {
            let refs: Vec<&Rgb> = images.iter().collect();
            let z = t.encode_rgb(gpu, &refs, &crate::progress::Silent)?;
            Ok((npy::nchw_to_nhwc(&z, [m, 4, s / 8, s / 8]), images))
        }
    }
}
