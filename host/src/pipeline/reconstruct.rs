//! `percept reconstruct`: voxels -> latents (percept-core, exactly as the firmware decodes
//! them) -> images (TAESD's decoder, or SD's VAE), then optionally Takagi & Nishimoto's second
//! stage (img2img conditioned on the decoded c); and grids that put originals beside
//! reconstructions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use percept_core::Target;

use super::Context;
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::io::decoder::LoadedDecoder;
use crate::io::image::Rgb;
use crate::io::output::ensure_writable;
use crate::io::voxels::VoxelSource;
use crate::io::{npy, stimuli};
use crate::nn::taesd::Taesd;
use crate::progress::{Progress, Silent};
use crate::sd::{Img2ImgInput, Img2ImgOptions, StableDiffusion};

/// The largest magnitude of a decoded value accepted (SD's scaled latents are within about
/// 10, CLIP's hidden states within about 100; a decoder giving more is broken).
pub const MAX_LATENT: f32 = 1e4;

/// Decodes every row of `voxels (n, V)` with the decoder file at `path`:
/// `(outputs (n, L), target shape)`; a NaN, infinite or absurd output is an error naming the
/// decoder file and the trial.
pub fn decode_voxels(path: &Path, voxels: &[f32], n: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    decode_voxels_as(path, voxels, n, None)
}

/// [`decode_voxels`], refusing a decoder that predicts another target than `want` (a c
/// decoder given where the z decoder belongs, or the other way round).
fn decode_voxels_as(path: &Path, voxels: &[f32], n: usize, want: Option<Target>) -> Result<(Vec<f32>, Vec<usize>)> {
    let loaded = LoadedDecoder::open(path)?;
    let dec = loaded.decoder()?;
    if let Some(want) = want.filter(|&w| w != dec.target()) {
        let name = |t: Target| match t { Target::Z => "z (the image latent)", Target::C => "c (the text conditioning)", Target::Features => "the features of a network layer" };
        return Err(Error::Invalid(format!("{}: is a decoder of {}, but a decoder of {} is expected here", path.display(), name(dec.target()), name(want))));
    }
    let (v, l) = (dec.voxels(), dec.outputs());
    if voxels.len() != n * v {
        return Err(Error::Shape(format!("{}: decodes {v} voxels, but the data has {} values for {n} trials ({} per trial)", path.display(), voxels.len(), voxels.len() / n.max(1))));
    }
    let mut scratch = vec![0f32; dec.scratch_len()];
    let mut out = vec![0f32; n * l];
    for (i, (x, y)) in voxels.chunks_exact(v).zip(out.chunks_exact_mut(l)).enumerate() {
        if let Some(j) = x.iter().position(|x| !x.is_finite()) {
            return Err(Error::Invalid(format!("voxel {j} of trial {i} is {} (not finite); the voxels must be checked before decoding with {}", x[j], path.display())));
        }
        dec.decode(x, &mut scratch, y).map_err(|source| Error::Invalid(format!("{}: trial {i}: {source}", path.display())))?;
        if let Some(k) = y.iter().position(|y| !y.is_finite() || y.abs() > MAX_LATENT) {
            return Err(Error::Invalid(format!("{}: trial {i}: decoded value {k} is {} (NaN, infinite or beyond {MAX_LATENT:e}); the decoder's weights are broken", path.display(), y[k])));
        }
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

/// The second stage's settings (Takagi & Nishimoto: SD img2img from the z image, on c).
#[derive(Debug, Clone)]
pub struct SdStage {
    /// Stable Diffusion v1: a diffusers folder or a single-file checkpoint.
    pub model: PathBuf,
    /// The c decoder (higher visual -> text conditioning).
    pub decoder_c: PathBuf,
    /// The voxels the c decoder reads, (trials, voxels) .npy, same trials as the z voxels.
    pub voxels_c: PathBuf,
    /// Unconditional context for guidance (default: the empty prompt through the model's text encoder).
    pub uncond: Option<PathBuf>,
    /// Images per trial.
    pub samples: usize,
    /// Side of the images img2img works at.
    pub size: usize,
    /// Strength, steps, guidance, sampler.
    pub sampling: Img2ImgOptions,
    /// Seed of the noise (per trial and sample).
    pub seed: u64,
}

/// What `reconstruct` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The z voxels (early visual cortex).
    pub voxels: VoxelSource,
    /// The z decoder file.
    pub decoder: PathBuf,
    /// The stimulus list of the trials: repeats are averaged and originals put beside reconstructions.
    pub stimuli: Option<PathBuf>,
    /// TAESD weights folder (for the z images when there is no second stage).
    pub taesd: PathBuf,
    /// The second stage; with it the z images come from SD's VAE.
    pub sd: Option<SdStage>,
    /// The folder to write.
    pub out: PathBuf,
    /// Replace earlier outputs.
    pub force: bool,
}

/// What `reconstruct` made.
#[derive(Debug)]
pub struct Outcome {
    /// The z-only reconstructions, one per distinct image (or trial).
    pub images: Vec<Rgb>,
    /// Every file written.
    pub written: Vec<PathBuf>,
    /// One line saying what was made.
    pub summary: String,
}

/// Output names for the distinct images: their file stems, made unique (`a.png`, `a_2.png`).
pub fn output_names(images: Option<&[PathBuf]>, m: usize) -> Vec<String> {
    let Some(images) = images else { return (0..m).map(|i| format!("trial_{i:05}.png")).collect() };
    let mut seen = HashSet::new();
    images
        .iter()
        .map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
            let mut name = format!("{stem}.png");
            let mut k = 2;
            while !seen.insert(name.clone()) {
                name = format!("{stem}_{k}.png");
                k += 1;
            }
            name
        })
        .collect()
}

/// Runs the job.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    let vox = o.voxels.load()?;
    let (n, v) = (vox.trials, vox.voxels);
    // Trials -> distinct images (repeats averaged) when the stimulus list is given.
    let (images, groups) = match &o.stimuli {
        Some(list) => {
            let trials = stimuli::read(list)?;
            vox.ensure_trials(list, trials.len(), "trials listed")?;
            let (images, groups) = stimuli::repeats(&trials);
            (Some(images), groups)
        }
        None => (None, (0..n).map(|i| vec![i]).collect()),
    };
    let m = groups.len();
    let names = output_names(images.as_deref(), m);
    let samples = o.sd.as_ref().map_or(0, |s| s.samples);
    // Every output is checked before any work.
    let mut outputs: Vec<PathBuf> = names.iter().map(|nm| o.out.join(nm)).collect();
    for nm in &names {
        outputs.extend((0..samples).map(|j| o.out.join(format!("{}_sd{j}.png", nm.trim_end_matches(".png")))));
    }
    outputs.extend(["z.npy", "grid.png"].iter().map(|f| o.out.join(f)));
    if images.is_some() {
        outputs.push(o.out.join("pairs.csv"));
    }
    for p in &outputs {
        ensure_writable(p, o.force)?;
    }

    let x = stimuli::average_rows(&vox.data, v, &groups);
    let (z, shape) = decode_voxels_as(&o.decoder, &x, m, Some(Target::Z))?;
    let [4, h, w] = shape[..] else { return Err(Error::Shape(format!("{}: decodes a target of shape {shape:?}, not an SD latent (4, h, w)", o.decoder.display()))) };
    progress.begin("rendering", 0);
    let gpu = ctx.gpu()?;
    // The z-only images: SD's VAE when SD is given, else TAESD.
    let sd = o.sd.as_ref().map(|s| StableDiffusion::load(gpu, &s.model, None, DType::F16)).transpose()?;
    let recon = match &sd {
        Some(sd) => z.chunks(4 * h * w).map(|zk| sd.decode(gpu, zk, [4, h, w])).collect::<Result<Vec<_>>>()?,
        None => Taesd::load(gpu, &o.taesd, crate::nn::taesd::WEIGHTS)?.decode_latents(gpu, &z, m, h, w)?,
    };
    progress.done();
    let mut written = Vec::new();
    for (img, name) in recon.iter().zip(&names) {
        img.save_png(&o.out.join(name), o.force)?;
        written.push(o.out.join(name));
    }
    npy::write(&o.out.join("z.npy"), &[m, 4, h, w], &z, o.force)?;
    written.push(o.out.join("z.npy"));
    let side = 8 * h.max(w);
    let originals: Vec<Rgb> = match &images {
        Some(imgs) => imgs.iter().map(|p| Rgb::open_square(p, side)).collect::<Result<_>>()?,
        None => Vec::new(),
    };
    // The second stage: Stable Diffusion img2img conditioned on the decoded c.
    let mut second: Vec<Rgb> = Vec::new();
    let mut sample_names: Vec<Vec<String>> = vec![Vec::new(); m];
    if let (Some(sd), Some(stage)) = (&sd, &o.sd) {
        let outs = second_stage(ctx, sd, stage, &recon, n, &groups, progress)?;
        for (k, imgs) in outs.into_iter().enumerate() {
            for (j, img) in imgs.into_iter().enumerate() {
                let name = format!("{}_sd{j}.png", names[k].trim_end_matches(".png"));
                let p = o.out.join(&name);
                img.save_png(&p, o.force)?;
                sample_names[k].push(name);
                written.push(p);
                if j == 0 {
                    second.push(img.resized(side));
                }
            }
        }
    }
    let mut rows: Vec<&[Rgb]> = if originals.is_empty() { vec![&recon] } else { vec![&originals, &recon] };
    if !second.is_empty() {
        rows.push(&second);
    }
    grid(&rows)?.save_png(&o.out.join("grid.png"), o.force)?;
    written.push(o.out.join("grid.png"));
    if let Some(imgs) = &images {
        write_pairs(&o.out, imgs, &names, &sample_names, o.force)?;
        written.push(o.out.join("pairs.csv"));
    }
    let summary = format!(
        "{}: {m} reconstructions of {}x{} from {}; grid.png{}",
        o.out.display(),
        8 * w,
        8 * h,
        vox.source,
        if images.is_some() { ", pairs.csv" } else { "" }
    );
    Ok(Outcome { images: recon, written, summary })
}

/// Writes `<out>/pairs.csv`: each original (canonical path) beside its reconstruction's file
/// name and the second stage's samples (`|`-separated; empty without one), what `percept eval`
/// scores.
pub fn write_pairs(out: &Path, originals: &[PathBuf], names: &[String], samples: &[Vec<String>], force: bool) -> Result<()> {
    let path = out.join("pairs.csv");
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Error::Invalid(format!("{}: {e}", path.display()));
    w.write_record(["original", "reconstruction", "samples"]).map_err(failed)?;
    for ((img, name), samples) in originals.iter().zip(names).zip(samples) {
        let original = std::fs::canonicalize(img).unwrap_or_else(|_| img.clone());
        w.write_record([original.to_string_lossy().as_ref(), name.as_str(), samples.join("|").as_str()]).map_err(failed)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    crate::io::output::write_atomic(&path, &bytes, force)
}

/// Decodes c from the higher visual voxels and runs img2img from each z image.
fn second_stage(ctx: &Context, sd: &StableDiffusion, s: &SdStage, recon: &[Rgb], n: usize, groups: &[Vec<usize>], progress: &dyn Progress) -> Result<Vec<Vec<Rgb>>> {
    let gpu = ctx.gpu()?;
    if !s.size.is_multiple_of(8) || s.size == 0 || s.size > 2048 {
        return Err(Error::Invalid(format!("second stage: image side {} is not a positive multiple of 8 up to 2048", s.size)));
    }
    let arr = npy::read(&s.voxels_c)?;
    if arr.shape.len() != 2 || arr.shape[0] != n {
        return Err(Error::Shape(format!("{}: shape {:?}; expected ({n}, voxels), the trials of the z voxels", s.voxels_c.display(), arr.shape)));
    }
    let m = groups.len();
    let xc = stimuli::average_rows(&arr.data, arr.shape[1], groups);
    let (c, cshape) = decode_voxels_as(&s.decoder_c, &xc, m, Some(Target::C))?;
    let d = sd.unet.config.cross_attention_dim;
    if cshape.len() != 2 || cshape[1] != d {
        return Err(Error::Shape(format!("{}: decodes c of shape {cshape:?}; the U-Net of {} wants (S, {d})", s.decoder_c.display(), s.model.display())));
    }
    let per = cshape.iter().product::<usize>();
    let uncond = match (&s.uncond, s.sampling.guidance > 1.0) {
        (Some(p), _) => Some(npy::read_context(p, d)?),
        (None, false) => None,
        (None, true) => Some(super::img2img::empty_prompt(gpu, sd, &s.model, s.sampling.guidance)?),
    };
    progress.begin("img2img", (m * s.samples) as u64);
    let mut out = Vec::with_capacity(m);
    for (k, init) in recon.iter().enumerate() {
        let img = init.resized(s.size);
        let (z, shape) = sd.encode(gpu, &img)?;
        let count: usize = shape.iter().product();
        let seed = s.seed.wrapping_add(k as u64);
        let mut imgs = Vec::with_capacity(s.samples);
        for j in 0..s.samples {
            let noise = crate::sched::gaussian(count, seed.wrapping_mul(1_000_003).wrapping_add(j as u64));
            let input = Img2ImgInput { init: &z, shape, cond: &c[k * per..(k + 1) * per], uncond: uncond.as_deref(), noise: &noise };
            let latent = sd.img2img(gpu, &input, &s.sampling, &Silent)?;
            imgs.push(sd.decode(gpu, &latent, shape)?);
            progress.inc(1);
        }
        out.push(imgs);
    }
    progress.done();
    Ok(out)
}
