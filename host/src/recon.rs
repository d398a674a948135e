//! `percept reconstruct`: voxels -> latents (percept-core, exactly as the firmware decodes
//! them) -> images (TAESD's decoder), and grids that put originals beside reconstructions.

use std::path::Path;

use crate::io::image::Rgb;
use crate::error::{Error, Result};
use crate::io::decoder::LoadedDecoder;

/// Decodes every row of `voxels (n, V)` with the decoder file at `path`:
/// `(outputs (n, L), target shape)`.
pub fn decode_voxels(path: &Path, voxels: &[f32], n: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    let loaded = LoadedDecoder::open(path)?;
    let dec = loaded.decoder()?;
    let (v, l) = (dec.voxels(), dec.outputs());
    if voxels.len() != n * v {
        return Err(Error::Shape(format!("{}: decodes {v} voxels, but the data has {} values for {n} trials ({} per trial)", path.display(), voxels.len(), voxels.len() / n.max(1))));
    }
    let mut scratch = vec![0f32; dec.scratch_len()];
    let mut out = vec![0f32; n * l];
    for (i, (x, y)) in voxels.chunks_exact(v).zip(out.chunks_exact_mut(l)).enumerate() {
        dec.decode(x, &mut scratch, y).map_err(|source| Error::Invalid(format!("{}: trial {i}: {source}", path.display())))?;
    }
    Ok((out, dec.target_shape().iter().map(|&d| d as usize).collect()))
}

/// Rows of equally sized images on a white background, 4 pixels apart.
pub fn grid(rows: &[&[Rgb]]) -> Result<Rgb> {
    let first = rows.iter().find_map(|r| r.first()).ok_or_else(|| Error::Invalid("a grid needs at least one image".into()))?;
    let (h, w) = (first.height, first.width);
    if let Some(bad) = rows.iter().flat_map(|r| r.iter()).find(|i| i.height != h || i.width != w) {
        return Err(Error::Shape(format!("grid images must share one size: {w}x{h} and {}x{}", bad.width, bad.height)));
    }
    const GAP: usize = 4;
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let (gw, gh) = (cols * (w + GAP) + GAP, rows.len() * (h + GAP) + GAP);
    let mut data = vec![1f32; gw * gh * 3];
    for (ri, row) in rows.iter().enumerate() {
        for (ci, img) in row.iter().enumerate() {
            let (x0, y0) = (GAP + ci * (w + GAP), GAP + ri * (h + GAP));
            for y in 0..h {
                let dst = ((y0 + y) * gw + x0) * 3;
                data[dst..dst + w * 3].copy_from_slice(&img.data[y * w * 3..(y + 1) * w * 3]);
            }
        }
    }
    Ok(Rgb { height: gh, width: gw, data })
}

/// Takagi & Nishimoto's second stage for one trial: the z-only reconstruction `init` is resized
/// to `size`, encoded with SD's VAE, and re-drawn by img2img conditioned on the decoded `c`
/// (`samples` times, noise seeded by `seed`, trial and sample); returns the images.
#[allow(clippy::too_many_arguments)]
pub fn takagi(
    gpu: &crate::gpu::Gpu,
    sd: &crate::sd::StableDiffusion,
    init: &Rgb,
    size: usize,
    c: &[f32],
    uncond: Option<&[f32]>,
    opts: &crate::sd::Img2ImgOptions,
    samples: usize,
    seed: u64,
    bar: &dyn crate::progress::Progress,
) -> Result<Vec<Rgb>> {
    let img = crate::eval::resize(init, size);
    let (z, shape) = sd.encode(gpu, &img)?;
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(samples);
    for k in 0..samples {
        let noise = crate::sd::gaussian(n, seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
        let latent = sd.img2img(gpu, &z, shape, c, uncond, &noise, opts, &crate::progress::Silent)?;
        out.push(sd.decode(gpu, &latent, shape)?);
        bar.inc(1);
    }
    Ok(out)
}
