//! `percept reconstruct --method dir`: deep image reconstruction (Shen, Horikawa, Majima &
//! Kamitani 2019). Voxels -> each layer's features (the feature decoders of `percept fit
//! --target features`, percept-core) -> the lab's rescaling -> an image optimised, through
//! TAESD's decoder or directly in pixels, until the loss network's features match ->
//! the lab's output rule (clip 0.02% at each end, rescale to 0-255). The start is the z-only
//! reconstruction (a z decoder given), a latent from a file, or a grey image. The oracle run
//! takes the TRUE features of the images seen instead: at the decoders' units, or whole layers
//! of the loss network (`layers`, no decoders needed). The loss network is EfficientNet-Lite
//! (Lite2 by default) or VGG19.

mod start;
mod targets;

use std::path::PathBuf;

use super::features::NetChoice;
use super::reconstruct::grid;
use super::Context;
use crate::dir::objective::{Generator, LayerTarget, Objective};
use crate::dir::optim::{self, Adam, Dgn, Method, PixelGd, Settings};
use crate::dir::output;
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::io::image::Rgb;
use crate::io::output::{ensure_writable, write_atomic};
use crate::io::stimuli;
use crate::io::voxels::VoxelSource;
use crate::nn::taesd::Taesd;
use crate::progress::Progress;

/// The optimiser of the command line (rates default per optimiser and generator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// The lab's SGD with momentum, normalised gradient, falling rate, L2 decay.
    Sgd,
    /// Adam.
    Adam,
}

/// Where the optimisation starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// The z-only reconstruction: the z decoder and the voxels it reads (same trials).
    ZDecoder {
        /// The z decoder file.
        decoder: PathBuf,
        /// Its voxels (default: the feature decoders' voxels).
        voxels: Option<VoxelSource>,
    },
    /// One TAESD latent `(4, h, w)` for every image (e.g. the mean training latent), .npy.
    Latent(PathBuf),
    /// A mid-grey image (encoded by TAESD's encoder when there is a generator).
    Grey,
}

/// What the job does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The voxels the feature decoders read.
    pub voxels: VoxelSource,
    /// The folder of feature decoders (`*.safetensors`, one per layer); `None` with `layers`.
    pub decoders: Option<PathBuf>,
    /// Whole layers of the loss network as the targets (the oracle only, instead of
    /// `decoders`): reference names such as `_blocks.4` or `features.20`.
    pub layers: Vec<String>,
    /// The stimulus list of the trials (repeats averaged; originals beside reconstructions).
    pub stimuli: Option<PathBuf>,
    /// The start.
    pub start: Start,
    /// TAESD weights folder; `None`: optimise the pixels (no generator).
    pub taesd: Option<PathBuf>,
    /// The loss network (must be the decoders' network): EfficientNet-Lite or VGG19.
    pub net: NetChoice,
    /// Side of the reconstructed images (a multiple of 8).
    pub size: usize,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Its rate (`None`: [`default_lr`]).
    pub lr: Option<f32>,
    /// Iterations.
    pub iterations: usize,
    /// Weight of the anchor keeping the latent near its start (0: none).
    pub anchor: f32,
    /// Images optimised together.
    pub batch: usize,
    /// The folder to write.
    pub out: PathBuf,
    /// Replace earlier outputs.
    pub force: bool,
    /// The oracle run: the targets are the TRUE features of the stimuli (the loss network on
    /// the originals, needs `stimuli`), not decoded ones; a check of the optimiser and the
    /// gradients without brain data.
    pub oracle: bool,
}

/// The default rate: their DGN descent diverges at their 2 with TAESD's latent; 0.02 (SGD)
/// and 0.1 (Adam) converge (the PyTorch experiment), and each gave the lowest final
/// feature loss of a sweep over 5 rates per optimiser on decoded features (never scored
/// against the images; BENCHMARKS.md, "choosing the learning rates"). Pixels: their 2 grey
/// levels.
pub fn default_lr(optimizer: Optimizer, generator: bool) -> f32 {
    match (optimizer, generator) {
        (Optimizer::Sgd, true) => 0.02,
        (Optimizer::Adam, true) => 0.1,
        (Optimizer::Sgd, false) => 2.0 / 255.0,
        (Optimizer::Adam, false) => 0.01,
    }
}

/// What the job made.
#[derive(Debug)]
pub struct Outcome {
    /// The reconstructions after the output rule.
    pub images: Vec<Rgb>,
    /// The starting images (the z-only reconstructions when a z decoder is given).
    pub starts: Vec<Rgb>,
    /// Mean feature loss over the images at each iteration, and after the last.
    pub loss: Vec<f32>,
    /// Every file written.
    pub written: Vec<PathBuf>,
    /// One line saying what was made.
    pub summary: String,
}

/// Runs the job.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    if o.size == 0 || !o.size.is_multiple_of(8) || o.size > 1024 {
        return Err(Error::Invalid(format!("--size {}: a positive multiple of 8 up to 1024", o.size)));
    }
    if o.batch == 0 || o.iterations == 0 {
        return Err(Error::Invalid(format!("batch {} and iterations {} must be at least 1", o.batch, o.iterations)));
    }
    if let Some(lr) = o.lr.filter(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(Error::Invalid(format!("--lr {lr}: the learning rate must be finite and above 0")));
    }
    if !(o.anchor.is_finite() && o.anchor >= 0.0) {
        return Err(Error::Invalid(format!("--anchor {}: the anchor weight must be finite and at least 0", o.anchor)));
    }
    if o.oracle && o.stimuli.is_none() {
        return Err(Error::Invalid("--oracle needs --stimuli (its targets are the true features of the images seen)".into()));
    }
    match (&o.decoders, o.layers.is_empty()) {
        (Some(d), false) => return Err(Error::Invalid(format!("--layers and --decoders {}: give one (whole layers, or the decoders' units)", d.display()))),
        (None, false) if !o.oracle => return Err(Error::Invalid("--layers (whole layers as targets) needs --oracle: only the true features of the images give whole layers; without --oracle give --decoders".into())),
        (None, true) => return Err(Error::Invalid("--method dir needs --decoders (a folder of feature decoders from `percept fit --target features`), or --oracle with --layers".into())),
        _ => {}
    }
    if let (Start::Latent(p), None) = (&o.start, &o.taesd) {
        return Err(Error::Invalid(format!("{}: a start latent needs the generator (TAESD), not --generator none", p.display())));
    }
    let vox = o.voxels.load()?;
    let (images, groups) = match &o.stimuli {
        Some(list) => {
            let trials = stimuli::read(list)?;
            vox.ensure_trials(list, trials.len(), "trials listed")?;
            let (images, groups) = stimuli::repeats(&trials);
            (Some(images), groups)
        }
        None => (None, (0..vox.trials).map(|i| vec![i]).collect()),
    };
    let m = groups.len();
    let names = super::reconstruct::output_names(images.as_deref(), m);
    let mut outputs: Vec<PathBuf> = names.iter().map(|nm| o.out.join(nm)).collect();
    outputs.extend(["grid.png", "loss.csv", "features.txt"].iter().map(|f| o.out.join(f)));
    if images.is_some() {
        outputs.push(o.out.join("pairs.csv"));
    }
    for p in &outputs {
        ensure_writable(p, o.force)?;
    }
    let net = o.net.load(ctx)?;
    let layers = match &o.decoders {
        Some(d) => targets::from_decoders(d, net.name(), vox.voxels)?,
        None => targets::whole(&net, &o.layers)?,
    };
    let gpu = ctx.gpu()?;
    let taesd = o.taesd.as_ref().map(|d| Taesd::load(gpu, d, DType::F32)).transpose()?;
    let s = o.size;

    // Decoded, rescaled features of every image, per layer (or, for the oracle, the true ones).
    let x = stimuli::average_rows(&vox.data, vox.voxels, &groups);
    let originals: Option<Vec<f32>> = match (&images, o.oracle) {
        (Some(paths), true) => Some(paths.iter().map(|p| Rgb::open_square(p, s)).collect::<Result<Vec<_>>>()?.into_iter().flat_map(|i| i.data).collect()),
        _ => None,
    };
    let (targets, sizes) = targets::values(&Objective::new(gpu, Generator::Pixels, net.loss_net(), s)?, &layers, originals.as_deref(), &x, m)?;
    progress.begin("start", 0);
    let (x0, starts) = start::start(ctx, o, taesd.as_ref(), m, &groups)?;
    progress.done();
    let generator = match &taesd {
        Some(t) => Generator::Taesd(&t.decoder),
        None => Generator::Pixels,
    };
    let objective = Objective::new(gpu, generator, net.loss_net(), s)?;
    let dim = x0.len() / m;
    let lr = o.lr.unwrap_or_else(|| default_lr(o.optimizer, taesd.is_some()));
    let method = match (o.optimizer, taesd.is_some()) {
        (Optimizer::Sgd, true) => Method::Dgn(Dgn { lr_start: lr, ..Dgn::default() }),
        (Optimizer::Sgd, false) => Method::PixelGd(PixelGd { lr_start: lr, ..PixelGd::new(s) }),
        (Optimizer::Adam, _) => Method::Adam(Adam { lr, ..Adam::default() }),
    };
    let settings = Settings { method, iterations: o.iterations, anchor: o.anchor };
    let mut result = vec![0f32; m * s * s * 3];
    let mut loss = vec![0f32; o.iterations + 1];
    let batches = m.div_ceil(o.batch);
    for (k, first) in (0..m).step_by(o.batch).enumerate() {
        let b = o.batch.min(m - first);
        let t: Vec<LayerTarget> = layers
            .iter()
            .zip(&targets)
            .zip(&sizes)
            .map(|((l, v), &size)| {
                let u = l.width(size);
                LayerTarget { layer: l.name.clone(), units: l.units.clone(), values: v[first * u..(first + b) * u].to_vec() }
            })
            .collect();
        let mut xb = x0[first * dim..(first + b) * dim].to_vec();
        let start_b = xb.clone();
        progress.begin(&format!("optimising {}/{batches}", k + 1), o.iterations as u64);
        let mut f = |x: &[f32]| objective.loss_and_grad(x, b, &t).map(|e| (e.loss, e.grad));
        let trace = optim::optimise(&mut xb, b, &settings, Some(&start_b), &mut f, progress)?;
        progress.done();
        let last = objective.loss_and_grad(&xb, b, &t)?;
        for (i, l) in trace.loss.iter().chain([&last.loss]).enumerate() {
            loss[i] += l.iter().sum::<f32>() / m as f32;
        }
        result[first * s * s * 3..(first + b) * s * s * 3].copy_from_slice(&last.images);
    }
    let recon: Vec<Rgb> = result.chunks(s * s * 3).map(|img| output::to_rgb(img, s)).collect();
    let described: String = layers.iter().zip(&sizes).map(|(l, &n)| l.describe(n)).collect();
    write_outputs(o, &names, images.as_deref(), &recon, &starts, &loss, &described)?;
    let summary = format!(
        "{}: {m} reconstructions of {s}x{s} by deep image reconstruction{} ({} layers, {} iterations, feature loss {:.4} -> {:.4}); grid.png, loss.csv{}",
        o.out.display(),
        if o.oracle { " from the TRUE features (oracle)" } else { "" },
        layers.len(),
        o.iterations,
        loss[0],
        loss[o.iterations],
        if images.is_some() { ", pairs.csv" } else { "" }
    );
    Ok(Outcome { images: recon, starts, loss, written: outputs, summary })
}

fn write_outputs(o: &Options, names: &[String], original_paths: Option<&[PathBuf]>, recon: &[Rgb], starts: &[Rgb], loss: &[f32], layers: &str) -> Result<()> {
    let s = o.size;
    for (img, name) in recon.iter().zip(names) {
        img.save_png(&o.out.join(name), o.force)?;
    }
    let originals: Vec<Rgb> = match original_paths {
        Some(p) => p.iter().map(|p| Rgb::open_square(p, s)).collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let starts: Vec<Rgb> = starts.iter().map(|i| if i.width == s { i.clone() } else { i.resized(s) }).collect();
    let rows: Vec<&[Rgb]> = if originals.is_empty() { vec![&starts, recon] } else { vec![&originals, &starts, recon] };
    grid(&rows)?.save_png(&o.out.join("grid.png"), o.force)?;
    let mut csv = String::from("iteration,mean_feature_loss\n");
    for (i, l) in loss.iter().enumerate() {
        csv.push_str(&format!("{i},{l}\n"));
    }
    write_atomic(&o.out.join("loss.csv"), csv.as_bytes(), o.force)?;
    write_atomic(&o.out.join("features.txt"), layers.as_bytes(), o.force)?;
    if let Some(p) = original_paths {
        super::reconstruct::write_pairs(&o.out, p, names, &vec![Vec::new(); names.len()], o.force)?;
    }
    Ok(())
}
