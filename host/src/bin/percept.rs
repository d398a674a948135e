//! The percept command line: thin, it parses arguments, calls the library and prints results.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "percept", version, about = "Reconstruct seen images from fMRI activity (Takagi & Nishimoto, CVPR 2023)")]
struct Cli {
    /// Print what is being done (-v), and more detail (-vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the main job on the shipped files: simulate a subject, fit, reconstruct the held-out
    /// photos, evaluate; writes a grid PNG and a report.
    Demo {
        /// Folder for the outputs.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Replace the outputs of an earlier run.
        #[arg(long)]
        force: bool,
    },
    /// Encodes an image into an SD v1 latent with TAESD: writes (4, size/8, size/8) float32
    /// .npy, on the scale of SD's latents times 0.18215.
    Encode {
        /// A PNG or JPEG; its largest centred square is used.
        image: PathBuf,
        /// The .npy to write.
        #[arg(long)]
        out: PathBuf,
        /// Side of the square the image is resized to (a multiple of 8).
        #[arg(long, default_value_t = 512)]
        size: usize,
        /// Folder with taesd_encoder.safetensors (default: the shipped weights/taesd).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Decodes an SD v1 latent (.npy, (4, h, w) or (1, 4, h, w)) into a PNG with TAESD.
    Decode {
        /// The latent.
        latent: PathBuf,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Folder with taesd_decoder.safetensors (default: the shipped weights/taesd).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Fits a voxel -> latent decoder by ridge regression (alpha by cross-validation) and
    /// writes it in percept-core's format, with a report beside it.
    Fit(FitArgs),
    /// Embeds captions with CLIP's text encoder (SD v1's text_encoder/): writes c, the
    /// (77, 768) last hidden state, averaged over each image's captions.
    EmbedText(EmbedArgs),
    /// Simulates a subject seeing the shipped photos (augmented) and drawn shapes and letters:
    /// stimuli, voxels (.npy and NIfTI), stimulus lists and settings, into one folder.
    Simulate(SimulateArgs),
    /// Reconstructs images from voxels: decodes z with a decoder file (percept-core) and
    /// renders it with TAESD's decoder; writes PNGs, the latents and a grid.
    Reconstruct(ReconstructArgs),
    /// Scores reconstructions against the images seen (PixCorr, SSIM, two-way identification
    /// in pixel and latent space): reads `pairs.csv` in a `percept reconstruct` folder.
    Eval {
        /// The folder `percept reconstruct --stimuli` wrote.
        dir: PathBuf,
        /// Replace an earlier report.
        #[arg(long)]
        force: bool,
    },
    /// Stable Diffusion v1 img2img from a latent (Takagi & Nishimoto's second stage): noise the
    /// init latent to the strength's timestep, denoise with classifier-free guidance on c,
    /// write the latent (.npy) or the VAE-decoded image (.png).
    Img2img(Img2ImgArgs),
    /// Prints what a decoder file holds: region, target, sizes and fitting settings.
    Inspect {
        /// A decoder file (.safetensors).
        decoder: PathBuf,
    },
}

use percept::progress::Progress;

/// A progress bar of `len` steps labelled `msg` (0: set later).
fn bar(len: usize, msg: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len as u64);
    b.set_style(indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    b.set_message(msg.to_string());
    b
}

/// A spinner for work of unknown length.
fn spinner(msg: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new_spinner();
    b.set_message(msg.to_string());
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    b
}

/// The library's progress drawn as one bar per stage.
#[derive(Default)]
struct Bars(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl Progress for Bars {
    fn begin(&self, what: &str, len: u64) {
        let mut cur = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cur.take() {
            b.finish_and_clear();
        }
        *cur = Some(bar(len as usize, what));
    }
    fn set_len(&self, len: u64) {
        if let Some(b) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            b.set_length(len);
        }
    }
    fn inc(&self, n: u64) {
        if let Some(b) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            b.inc(n);
        }
    }
    fn done(&self) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

#[derive(clap::Args)]
struct EmbedArgs {
    /// Captions to embed together (averaged into one c).
    captions: Vec<String>,
    /// The text encoder folder (config.json and model.safetensors), e.g. <SD v1>/text_encoder.
    #[arg(long)]
    model: PathBuf,
    /// The tokenizer folder (vocab.json, merges.txt); default: the shipped weights/clip-tokenizer.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Batch mode: a stimulus list (CSV with `image` and `captions` columns); writes one c per
    /// trial, (trials, 77, 768), ready for `percept fit --targets`.
    #[arg(long, conflicts_with = "captions")]
    stimuli: Option<PathBuf>,
    /// Batch mode: a COCO-style JSON list of {"file": ..., "captions": [...]}; writes one c per
    /// image, (images, 77, 768), in the list's order.
    #[arg(long, conflicts_with_all = ["captions", "stimuli"])]
    captions_json: Option<PathBuf>,
    /// The .npy to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 2023)]
    seed: u64,
    /// Stimulus side in pixels (a multiple of 8).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Early visual voxels.
    #[arg(long, default_value_t = 3000)]
    early: usize,
    /// Higher visual voxels.
    #[arg(long, default_value_t = 1000)]
    higher: usize,
    /// Median single-trial signal-to-noise ratio of early visual voxels.
    #[arg(long, default_value_t = 0.5)]
    snr_early: f32,
    /// Median single-trial signal-to-noise ratio of higher visual voxels.
    #[arg(long, default_value_t = 0.3)]
    snr_higher: f32,
    /// Photos held out whole for testing.
    #[arg(long, default_value_t = 12)]
    test_photos: usize,
    /// Augmented crops per training photo.
    #[arg(long, default_value_t = 16)]
    crops: usize,
    /// Drawn shapes.
    #[arg(long, default_value_t = 300)]
    shapes: usize,
    /// Drawn letters.
    #[arg(long, default_value_t = 200)]
    letters: usize,
    /// Repeats of each test photo.
    #[arg(long, default_value_t = 3)]
    test_repeats: usize,
    /// Replace an earlier subject in the folder.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct VoxelArgs {
    /// Voxels: a (trials, voxels) float .npy.
    #[arg(long, conflicts_with = "nifti")]
    voxels: Option<PathBuf>,
    /// Voxels: NIfTI volumes (.nii/.nii.gz), one 4D file or one 3D file per trial, in order.
    #[arg(long, num_args = 1.., requires = "mask")]
    nifti: Vec<PathBuf>,
    /// Region-of-interest mask for --nifti (non-zero voxels are used).
    #[arg(long)]
    mask: Option<PathBuf>,
}

impl VoxelArgs {
    /// `(trials x voxels, trials, voxels, description)`.
    fn load(&self) -> Result<(Vec<f32>, usize, usize, String)> {
        if let Some(p) = &self.voxels {
            let arr = percept::io::npy::read(p)?;
            anyhow::ensure!(arr.shape.len() == 2, "{}: voxels must be (trials, voxels), got shape {:?}", p.display(), arr.shape);
            Ok((arr.data, arr.shape[0], arr.shape[1], p.display().to_string()))
        } else if !self.nifti.is_empty() {
            let mask = self.mask.as_ref().expect("clap requires --mask");
            let (d, n, v) = percept::io::nifti::load_masked(&self.nifti, mask)?;
            Ok((d, n, v, format!("{} NIfTI file(s) masked by {}", self.nifti.len(), mask.display())))
        } else {
            anyhow::bail!("give the voxels with --voxels X.npy or --nifti FILES --mask MASK");
        }
    }
}

#[derive(clap::Args)]
struct ReconstructArgs {
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
    #[arg(long, requires = "voxels_c")]
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
    /// Side of the images the second stage works at.
    #[arg(long, default_value_t = 512)]
    sd_size: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace earlier outputs in the folder.
    #[arg(long)]
    force: bool,
}

/// img2img settings shared by `img2img` and `reconstruct --sd`.
#[derive(clap::Args)]
struct SamplingArgs {
    /// Share of the schedule re-done.
    #[arg(long, default_value_t = 0.8)]
    strength: f64,
    /// Inference steps of the whole schedule.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Classifier-free guidance scale (1: none).
    #[arg(long, default_value_t = 5.0)]
    guidance: f32,
    /// ddim (Takagi & Nishimoto) or pndm (SD v1.5's default).
    #[arg(long, default_value = "ddim")]
    scheduler: String,
    /// Seed of the noise (when not given as a file).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SamplingArgs {
    fn options(&self) -> Result<percept::sd::Img2ImgOptions> {
        let sampler = match self.scheduler.as_str() {
            "ddim" => percept::sd::Sampler::Ddim,
            "pndm" => percept::sd::Sampler::Pndm,
            other => anyhow::bail!("--scheduler {other}: expected ddim or pndm"),
        };
        Ok(percept::sd::Img2ImgOptions { strength: self.strength, steps: self.steps, guidance: self.guidance, sampler })
    }
}

#[derive(clap::Args)]
struct Img2ImgArgs {
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
    /// Side the init image is resized to (a multiple of 8).
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
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

/// A (C, h, w) or (1, C, h, w) .npy with finite values: `(data, [C, h, w])`.
fn read_latent(p: &std::path::Path) -> Result<(Vec<f32>, [usize; 3])> {
    let a = percept::io::npy::read(p)?;
    let s = match a.shape[..] {
        [c, h, w] | [1, c, h, w] => [c, h, w],
        _ => anyhow::bail!("{}: shape {:?}; expected (C, h, w) or (1, C, h, w)", p.display(), a.shape),
    };
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        anyhow::bail!("{}: value {} at flat index {i} is not finite", p.display(), a.data[i]);
    }
    Ok((a.data, s))
}

/// A (S, D) or (1, S, D) .npy context with finite values.
fn read_context(p: &std::path::Path, d: usize) -> Result<Vec<f32>> {
    let a = percept::io::npy::read(p)?;
    let ok = matches!(a.shape[..], [_, dd] | [1, _, dd] if dd == d);
    anyhow::ensure!(ok, "{}: shape {:?}; expected (S, {d}) or (1, S, {d}) for this U-Net", p.display(), a.shape);
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        anyhow::bail!("{}: value {} at flat index {i} is not finite", p.display(), a.data[i]);
    }
    Ok(a.data)
}

/// The empty prompt through the model's text encoder: SD's unconditional context.
fn empty_prompt(gpu: &percept::gpu::Gpu, sd: &percept::sd::StableDiffusion, model: &std::path::Path, guidance: f32) -> Result<Vec<f32>> {
    let te = sd.text_encoder.clone().with_context(|| format!("guidance {guidance} needs an unconditional context: pass --uncond u.npy (the model {} has no text_encoder/ to embed the empty prompt)", model.display()))?;
    let tok = percept::nn::tokenizer::Tokenizer::load(&percept::paths::shipped("weights/clip-tokenizer"))?;
    let clip = percept::nn::clip::ClipTextModel::load(gpu, &te, percept::gpu::DType::F16)?;
    let mut enc = gpu.encoder();
    let y = clip.forward(&mut enc, &[tok.encode("")])?;
    drop(enc);
    Ok(y.to_vec(gpu)?)
}

fn run_img2img(a: Img2ImgArgs) -> Result<()> {
    use percept::sd::StableDiffusion;
    percept::io::output::ensure_writable(&a.out, a.force)?;
    let png = match a.out.extension().and_then(|e| e.to_str()) {
        Some("png") => true,
        Some("npy") => false,
        _ => anyhow::bail!("--out {}: expected a .npy (latent) or .png (image)", a.out.display()),
    };
    let o = a.sampling.options()?;
    let dtype = if a.f32 { percept::gpu::DType::F32 } else { percept::gpu::DType::F16 };
    let spin = spinner("loading");
    let gpu = percept::gpu::Gpu::new()?;
    tracing::info!("adapter: {}", gpu.describe());
    let sd = StableDiffusion::load(&gpu, &a.model, a.configs.as_deref(), dtype)?;
    spin.finish_and_clear();
    let (init, shape) = match (&a.init_latent, &a.init_image) {
        (Some(p), _) => read_latent(p)?,
        (None, Some(img)) => {
            anyhow::ensure!(a.size % 8 == 0 && a.size > 0, "--size {} is not a positive multiple of 8", a.size);
            sd.encode(&gpu, &percept::io::image::Rgb::open_square(img, a.size)?)?
        }
        (None, None) => unreachable!("clap requires one"),
    };
    anyhow::ensure!(shape[0] == sd.unet.config.in_channels, "init latent has {} channels; the U-Net takes {}", shape[0], sd.unet.config.in_channels);
    let d = sd.unet.config.cross_attention_dim;
    let cond = read_context(&a.cond, d)?;
    let uncond = match (&a.uncond, o.guidance > 1.0) {
        (Some(p), _) => Some(read_context(p, d)?),
        (None, false) => None,
        (None, true) => Some(empty_prompt(&gpu, &sd, &a.model, o.guidance)?),
    };
    let n: usize = shape.iter().product();
    let noise = match &a.noise {
        Some(p) => {
            let (v, s) = read_latent(p)?;
            anyhow::ensure!(s == shape, "{}: noise of shape {s:?} for a latent of {shape:?}", p.display());
            v
        }
        None => percept::sd::gaussian(n, a.sampling.seed),
    };
    let b = Bars::default();
    b.begin("denoising", 0);
    let latent = sd.img2img(&gpu, &init, shape, &cond, uncond.as_deref(), &noise, &o, &b)?;
    b.done();
    if png {
        sd.decode(&gpu, &latent, shape)?.save_png(&a.out, a.force)?;
    } else {
        percept::io::npy::write(&a.out, &[1, shape[0], shape[1], shape[2]], &latent, a.force)?;
    }
    println!("{}: img2img, steps of {} at strength {}, guidance {}", a.out.display(), o.steps, o.strength, o.guidance);
    if let Some(p) = gpu.profile_report() {
        eprintln!("time per kernel (PERCEPT_PROFILE: each dispatch run alone):\n{p}");
    }
    Ok(())
}

#[derive(clap::Args)]
struct FitArgs {
    #[command(flatten)]
    voxels: VoxelArgs,
    /// Targets given directly: a (trials, ...) float .npy (e.g. caption embeddings (N, 77, 768)).
    #[arg(long, conflicts_with = "stimuli")]
    targets: Option<PathBuf>,
    /// Targets from images: a stimulus list (CSV with an `image` column, one row per trial).
    #[arg(long)]
    stimuli: Option<PathBuf>,
    /// Image side for --stimuli targets: 320 gives 4x40x40 (Takagi & Nishimoto), 512 gives 4x64x64.
    #[arg(long, default_value_t = 320)]
    size: usize,
    /// TAESD weights folder for --stimuli (default: the shipped weights/taesd).
    #[arg(long)]
    encoder_weights: Option<PathBuf>,
    /// Folder for cached image latents (default: <out>.cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Region of interest, stored in the decoder.
    #[arg(long, default_value = "early_visual")]
    region: String,
    /// What the targets are: z (VAE latent) or c (text conditioning).
    #[arg(long, default_value = "z")]
    target: String,
    /// Alphas to try, comma-separated (default: 1e-6 ... 1, Takagi & Nishimoto's grid).
    #[arg(long, value_delimiter = ',')]
    alphas: Vec<f64>,
    /// Cross-validation: a number of folds, or `loo` for the leave-one-out shortcut.
    #[arg(long, default_value = "5")]
    cv: String,
    /// Choose one alpha per target instead of one for all.
    #[arg(long)]
    per_target: bool,
    /// Write a low-rank decoder of this rank.
    #[arg(long)]
    rank: Option<usize>,
    /// The decoder file to write (.safetensors); the report goes to <out>.md.
    #[arg(long)]
    out: PathBuf,
    /// Replace existing outputs.
    #[arg(long)]
    force: bool,
}

fn run_fit(a: FitArgs) -> Result<()> {
    use percept::fit::{Cv, FitSpec, RidgeOptions};
    let report_path = a.out.with_extension("md");
    percept::io::output::ensure_writable(&a.out, a.force)?;
    percept::io::output::ensure_writable(&report_path, a.force)?;
    let target = match a.target.as_str() {
        "z" => percept_core::Target::Z,
        "c" => percept_core::Target::C,
        other => anyhow::bail!("--target {other}: expected z or c"),
    };
    let cv = match a.cv.as_str() {
        "loo" => Cv::LeaveOneOut,
        k => Cv::KFold(k.parse().with_context(|| format!("--cv {k}: expected a number of folds or `loo`"))?),
    };
    let (voxels, n, v, source) = a.voxels.load()?;
    // Targets.
    let (targets, shape) = if let Some(p) = &a.targets {
        let arr = percept::io::npy::read(p)?;
        anyhow::ensure!(arr.shape.len() >= 2, "{}: targets must be (trials, ...), got shape {:?}", p.display(), arr.shape);
        anyhow::ensure!(arr.shape[0] == n, "{}: {} rows of targets but {n} trials of voxels ({source})", p.display(), arr.shape[0]);
        (arr.data, arr.shape[1..].to_vec())
    } else if let Some(list) = &a.stimuli {
        let trials = percept::io::stimuli::read(list)?;
        anyhow::ensure!(trials.len() == n, "{}: {} trials listed but {n} trials of voxels ({source})", list.display(), trials.len());
        let (images, rows) = percept::io::stimuli::repeats(&trials);
        let gpu = percept::gpu::Gpu::new()?;
        tracing::info!("adapter: {}", gpu.describe());
        let cache = a.cache.clone().unwrap_or_else(|| a.out.with_extension("cache"));
        let weights = a.encoder_weights.clone().unwrap_or_else(percept::paths::taesd);
        let b = Bars::default();
        b.begin("encoding", images.len() as u64);
        let per_image = percept::fit::targets::encode_images(&gpu, &weights, &images, a.size, &cache, &b)?;
        b.done();
        let l = per_image.len() / images.len().max(1);
        let mut t = vec![0f32; n * l];
        for (k, rs) in rows.iter().enumerate() {
            for &r in rs {
                t[r * l..(r + 1) * l].copy_from_slice(&per_image[k * l..(k + 1) * l]);
            }
        }
        (t, vec![4, a.size / 8, a.size / 8])
    } else {
        anyhow::bail!("give the targets with --targets Y.npy or --stimuli LIST.csv");
    };
    let mut ridge = RidgeOptions::takagi();
    if !a.alphas.is_empty() {
        ridge.alphas = a.alphas.clone();
    }
    ridge.cv = cv;
    ridge.per_target = a.per_target;
    let spec = FitSpec { region: a.region.clone(), target, target_shape: shape.clone(), ridge, rank: a.rank };
    let b = Bars::default();
    b.begin("fitting", 0);
    let t0 = std::time::Instant::now();
    let fitted = percept::fit::fit(&voxels, n, v, &targets, &spec, &b)?;
    b.done();
    fitted.file.save(&a.out, a.force)?;
    let report = percept::fit::report(&fitted, &spec, n, v, &source, t0.elapsed().as_secs_f64());
    percept::io::output::write_atomic(&report_path, report.as_bytes(), a.force)?;
    print!("{report}");
    println!("\nwrote {} and {}", a.out.display(), report_path.display());
    Ok(())
}

fn run_simulate(a: SimulateArgs) -> Result<()> {
    use percept::sim::{cortex::PopulationSettings, Settings};
    let settings = Settings {
        seed: a.seed,
        size: a.size,
        test_photos: a.test_photos,
        crops: a.crops,
        shapes: a.shapes,
        letters: a.letters,
        test_repeats: a.test_repeats,
        population: PopulationSettings { early: a.early, higher: a.higher, snr_early: a.snr_early, snr_higher: a.snr_higher, ..Settings::default().population },
        ..Settings::default()
    };
    let marker = a.out.join("settings.txt");
    anyhow::ensure!(a.force || !marker.exists(), "{} exists; pass --force to overwrite it", marker.display());
    let photos = percept::sim::shipped_photos()?;
    let b = Bars::default();
    let subject = percept::sim::simulate(&settings, &photos, &b)?;
    b.begin("saving", 0);
    subject.save(&a.out, a.force, &b)?;
    b.done();
    println!(
        "{}: {} training trials, {} test trials ({} photos held out), {} voxels",
        a.out.display(),
        subject.train.shown.len(),
        subject.test.shown.len(),
        subject.test_stimuli.len(),
        subject.voxels.len()
    );
    Ok(())
}

fn run_reconstruct(a: ReconstructArgs) -> Result<()> {
    use percept::io::{image::Rgb, stimuli};
    let (x, n, v, source) = a.voxels.load()?;
    let grid_path = a.out.join("grid.png");
    percept::io::output::ensure_writable(&grid_path, a.force)?;
    // Trials -> distinct images (repeats averaged) when the stimulus list is given.
    let (images, groups) = match &a.stimuli {
        Some(list) => {
            let trials = stimuli::read(list)?;
            anyhow::ensure!(trials.len() == n, "{}: {} trials listed but {n} trials of voxels ({source})", list.display(), trials.len());
            let (images, groups) = stimuli::repeats(&trials);
            (Some(images), groups)
        }
        None => (None, (0..n).map(|i| vec![i]).collect()),
    };
    let x = stimuli::average_rows(&x, v, &groups);
    let m = groups.len();
    let (z, shape) = percept::recon::decode_voxels(&a.decoder, &x, m)?;
    let [4, h, w] = shape[..] else { anyhow::bail!("{}: decodes a target of shape {shape:?}, not an SD latent (4, h, w)", a.decoder.display()) };
    let spin = spinner("rendering");
    let gpu = percept::gpu::Gpu::new()?;
    tracing::info!("adapter: {}", gpu.describe());
    // The z-only images: SD's VAE when SD is given, else TAESD.
    let sd = a.sd.as_ref().map(|model| percept::sd::StableDiffusion::load(&gpu, model, None, percept::gpu::DType::F16)).transpose()?;
    let recon = match &sd {
        Some(sd) => z.chunks(4 * h * w).map(|zk| sd.decode(&gpu, zk, [4, h, w])).collect::<percept::Result<Vec<_>>>()?,
        None => {
            let taesd = percept::nn::taesd::Taesd::load(&gpu, &a.taesd.clone().unwrap_or_else(percept::paths::taesd), percept::gpu::DType::F32)?;
            taesd.decode_latents(&gpu, &z, m, h, w)?
        }
    };
    spin.finish_and_clear();
    let names: Vec<String> = match &images {
        Some(imgs) => imgs.iter().map(|p| format!("{}.png", p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())).collect(),
        None => (0..m).map(|i| format!("trial_{i:05}.png")).collect(),
    };
    let mut pairs = String::from("original,reconstruction\n");
    for (k, img) in recon.iter().enumerate() {
        img.save_png(&a.out.join(&names[k]), a.force)?;
        if let Some(imgs) = &images {
            pairs.push_str(&format!("{},{}\n", std::fs::canonicalize(&imgs[k]).unwrap_or(imgs[k].clone()).display(), names[k]));
        }
    }
    percept::io::npy::write(&a.out.join("z.npy"), &[m, 4, h, w], &z, a.force)?;
    let originals: Vec<Rgb> = match &images {
        Some(imgs) => imgs.iter().map(|p| Rgb::open_square(p, 8 * h.max(w))).collect::<percept::Result<_>>()?,
        None => Vec::new(),
    };
    // The second stage: Stable Diffusion img2img conditioned on the decoded c.
    let mut second: Vec<Rgb> = Vec::new();
    if let (Some(sd), Some(model), Some(dec_c), Some(vc)) = (&sd, &a.sd, &a.decoder_c, &a.voxels_c) {
        anyhow::ensure!(a.sd_size % 8 == 0 && a.sd_size > 0, "--sd-size {} is not a positive multiple of 8", a.sd_size);
        let arr = percept::io::npy::read(vc)?;
        anyhow::ensure!(arr.shape.len() == 2 && arr.shape[0] == n, "{}: shape {:?}; expected ({n}, voxels), the trials of --voxels", vc.display(), arr.shape);
        let xc = stimuli::average_rows(&arr.data, arr.shape[1], &groups);
        let (c, cshape) = percept::recon::decode_voxels(dec_c, &xc, m)?;
        let d = sd.unet.config.cross_attention_dim;
        anyhow::ensure!(cshape.len() == 2 && cshape[1] == d, "{}: decodes c of shape {cshape:?}; the U-Net of {} wants (S, {d})", dec_c.display(), model.display());
        let per = cshape.iter().product::<usize>();
        let o = a.sampling.options()?;
        let uncond = match (&a.uncond, o.guidance > 1.0) {
            (Some(p), _) => Some(read_context(p, d)?),
            (None, false) => None,
            (None, true) => Some(empty_prompt(&gpu, sd, model, o.guidance)?),
        };
        let b = Bars::default();
        b.begin("img2img", (m * a.samples) as u64);
        for k in 0..m {
            let imgs = percept::recon::takagi(&gpu, sd, &recon[k], a.sd_size, &c[k * per..(k + 1) * per], uncond.as_deref(), &o, a.samples, a.sampling.seed.wrapping_add(k as u64), &b)?;
            for (j, img) in imgs.into_iter().enumerate() {
                img.save_png(&a.out.join(format!("{}_sd{j}.png", names[k].trim_end_matches(".png"))), a.force)?;
                if j == 0 {
                    second.push(percept::eval::resize(&img, 8 * h.max(w)));
                }
            }
        }
        b.done();
    }
    let mut rows: Vec<&[Rgb]> = if originals.is_empty() { vec![&recon] } else { vec![&originals, &recon] };
    if !second.is_empty() {
        rows.push(&second);
    }
    percept::recon::grid(&rows)?.save_png(&grid_path, a.force)?;
    if images.is_some() {
        percept::io::output::write_atomic(&a.out.join("pairs.csv"), pairs.as_bytes(), a.force)?;
    }
    println!("{}: {m} reconstructions of {}x{} from {source}; grid.png{}", a.out.display(), 8 * w, 8 * h, if images.is_some() { ", pairs.csv" } else { "" });
    Ok(())
}

fn run_eval(dir: &std::path::Path, force: bool) -> Result<()> {
    use percept::io::image::Rgb;
    let report_path = dir.join("eval.md");
    percept::io::output::ensure_writable(&report_path, force)?;
    let pairs = dir.join("pairs.csv");
    let text = std::fs::read_to_string(&pairs).with_context(|| format!("reading {} (written by `percept reconstruct --stimuli`)", pairs.display()))?;
    let mut truth = Vec::new();
    let mut recon = Vec::new();
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let (a, b) = line.split_once(',').with_context(|| format!("{}:{}: expected `original,reconstruction`", pairs.display(), i + 1))?;
        let r = Rgb::open(&dir.join(b.trim()))?;
        anyhow::ensure!(r.width % 8 == 0 && r.height == r.width, "{}: reconstructions must be square with a side that is a multiple of 8, got {}x{}", b, r.width, r.height);
        truth.push(Rgb::open_square(std::path::Path::new(a.trim()), r.width)?);
        recon.push(r);
        names.push(b.trim().to_string());
    }
    anyhow::ensure!(truth.len() >= 2, "{}: two-way identification needs at least 2 pairs, found {}", pairs.display(), truth.len());
    let spin = spinner("evaluating");
    let gpu = percept::gpu::Gpu::new()?;
    let taesd = percept::nn::taesd::Taesd::load(&gpu, &percept::paths::taesd(), percept::gpu::DType::F32)?;
    let lat = |imgs: &[Rgb]| -> Result<Vec<Vec<f32>>> {
        let l = 4 * (imgs[0].width / 8) * (imgs[0].height / 8);
        let mut out = Vec::new();
        for b in imgs.chunks(percept::nn::taesd::BATCH) {
            out.extend(taesd.encode_rgb(&gpu, &b.iter().collect::<Vec<_>>())?.chunks(l).map(<[f32]>::to_vec));
        }
        Ok(out)
    };
    let (lt, lr) = (lat(&truth)?, lat(&recon)?);
    let scores = percept::eval::Scores::compute(&truth, &recon, Some((&lt, &lr)))?;
    spin.finish_and_clear();
    let report = percept::eval::report(&scores, &names);
    percept::io::output::write_atomic(&report_path, report.as_bytes(), force)?;
    print!("{report}");
    println!("\nwrote {}", report_path.display());
    Ok(())
}

fn run_embed(a: EmbedArgs) -> Result<()> {
    use percept::nn::clip::ClipTextModel;
    use percept::nn::tokenizer::Tokenizer;
    percept::io::output::ensure_writable(&a.out, a.force)?;
    let tok = Tokenizer::load(&a.tokenizer.clone().unwrap_or_else(|| percept::paths::shipped("weights/clip-tokenizer")))?;
    // The caption sets to embed: one set per output row.
    let sets: Vec<Vec<String>> = match (&a.stimuli, &a.captions_json) {
        (None, Some(path)) => {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            let items = v.as_array().with_context(|| format!("{}: expected a list of {{file, captions}}", path.display()))?;
            let mut sets = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let caps: Vec<String> = item["captions"].as_array().map(|c| c.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default();
                anyhow::ensure!(!caps.is_empty(), "{}: entry {i} ({}) has no captions", path.display(), item["file"]);
                sets.push(caps);
            }
            sets
        }
        (Some(list), _) => {
            let trials = percept::io::stimuli::read(list)?;
            if let Some((i, t)) = trials.iter().enumerate().find(|(_, t)| t.captions.is_empty()) {
                anyhow::bail!("{}: trial {i} ({}) has no captions", list.display(), t.image.display());
            }
            trials.into_iter().map(|t| t.captions).collect()
        }
        (None, None) => {
            anyhow::ensure!(!a.captions.is_empty(), "give captions, or --stimuli LIST.csv, or --captions-json FILE");
            vec![a.captions.clone()]
        }
    };
    let gpu = percept::gpu::Gpu::new()?;
    tracing::info!("adapter: {}", gpu.describe());
    let model = ClipTextModel::load(&gpu, &a.model, percept::gpu::DType::F16)?;
    let (l, h) = (percept::nn::tokenizer::MAX_LEN, model.config.hidden);
    let mut cache: std::collections::HashMap<Vec<String>, Vec<f32>> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(sets.len() * l * h);
    let b = bar(sets.len(), "embedding");
    for set in &sets {
        if !cache.contains_key(set) {
            let ids: Vec<Vec<u32>> = set.iter().map(|c| tok.encode(c)).collect();
            let mut enc = gpu.encoder();
            let y = model.forward(&mut enc, &ids)?;
            drop(enc);
            let y = y.to_vec(&gpu)?;
            let mut mean = vec![0f32; l * h];
            for chunk in y.chunks(l * h) {
                mean.iter_mut().zip(chunk).for_each(|(m, v)| *m += v / set.len() as f32);
            }
            cache.insert(set.clone(), mean);
        }
        out.extend_from_slice(&cache[set]);
        b.inc(1);
    }
    b.finish_and_clear();
    let shape = if a.stimuli.is_some() || a.captions_json.is_some() { vec![sets.len(), l, h] } else { vec![l, h] };
    percept::io::npy::write(&a.out, &shape, &out, a.force)?;
    println!("{}: c of shape {shape:?} from {} caption set(s)", a.out.display(), sets.len());
    Ok(())
}

fn main() {
    // Mesa's Vulkan driver complains on stderr when this is unset; give it a private folder.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("percept-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Demo { out, force } => {
            let outcome = percept::demo::run(&percept::demo::Options::new(&out, force), &Bars::default())?;
            print!("{}", outcome.report);
            println!("\nwrote {} and {}", out.join("report.md").display(), out.join("grid.png").display());
        }
        Command::Encode { image, out, size, weights, force } => {
            anyhow::ensure!(size % 8 == 0 && size > 0, "--size {size} is not a positive multiple of 8");
            percept::io::output::ensure_writable(&out, force)?;
            let img = percept::io::image::Rgb::open_square(&image, size)?;
            let spin = spinner("encoding");
            let gpu = percept::gpu::Gpu::new()?;
            tracing::info!("adapter: {}", gpu.describe());
            let taesd = percept::nn::taesd::Taesd::load(&gpu, &weights.unwrap_or_else(percept::paths::taesd), percept::gpu::DType::F32)?;
            let x = percept::gpu::Tensor::from_f32(&gpu, &[1, size, size, 3], &img.data)?;
            let mut enc = gpu.encoder();
            let z = taesd.encode(&mut enc, &x)?;
            drop(enc);
            let data = z.to_vec(&gpu)?;
            spin.finish_and_clear();
            let h = size / 8;
            let nchw = percept::io::npy::nhwc_to_nchw(&data, [1, h, h, 4]);
            percept::io::npy::write(&out, &[4, h, h], &nchw, force)?;
            println!("{}: latent (4, {h}, {h}) from {}", out.display(), image.display());
        }
        Command::Decode { latent, out, weights, force } => {
            percept::io::output::ensure_writable(&out, force)?;
            let arr = percept::io::npy::read(&latent)?;
            let (c, h, w) = match arr.shape[..] {
                [c, h, w] | [1, c, h, w] => (c, h, w),
                _ => anyhow::bail!("{}: shape {:?}; expected (4, h, w) or (1, 4, h, w)", latent.display(), arr.shape),
            };
            anyhow::ensure!(c == 4, "{}: {c} channels; SD v1 latents have 4", latent.display());
            if let Some(i) = arr.data.iter().position(|v| !v.is_finite()) {
                anyhow::bail!("{}: value {} at flat index {i} is not finite", latent.display(), arr.data[i]);
            }
            let spin = spinner("decoding");
            let gpu = percept::gpu::Gpu::new()?;
            tracing::info!("adapter: {}", gpu.describe());
            let taesd = percept::nn::taesd::Taesd::load(&gpu, &weights.unwrap_or_else(percept::paths::taesd), percept::gpu::DType::F32)?;
            let nhwc = percept::io::npy::nchw_to_nhwc(&arr.data, [1, 4, h, w]);
            let z = percept::gpu::Tensor::from_f32(&gpu, &[1, h, w, 4], &nhwc)?;
            let mut enc = gpu.encoder();
            let y = taesd.decode(&mut enc, &z)?;
            drop(enc);
            let img = percept::io::image::Rgb { height: 8 * h, width: 8 * w, data: y.to_vec(&gpu)? };
            spin.finish_and_clear();
            img.save_png(&out, force)?;
            println!("{}: {}x{} image from {}", out.display(), 8 * w, 8 * h, latent.display());
        }
        Command::Fit(args) => run_fit(args)?,
        Command::EmbedText(args) => run_embed(args)?,
        Command::Simulate(a) => run_simulate(a)?,
        Command::Reconstruct(a) => run_reconstruct(a)?,
        Command::Eval { dir, force } => run_eval(&dir, force)?,
        Command::Img2img(a) => run_img2img(a)?,
        Command::Inspect { decoder } => {
            let loaded = percept::io::decoder::LoadedDecoder::open(&decoder)?;
            let dec = loaded.decoder()?;
            println!("{}", decoder.display());
            println!("  region        {}", dec.region());
            println!("  target        {:?} {:?}", dec.target(), dec.target_shape());
            println!("  voxels        {}", dec.voxels());
            println!("  outputs       {}", dec.outputs());
            match dec.rank() {
                Some(r) => println!("  weights       low-rank, rank {r}"),
                None => println!("  weights       dense f16"),
            }
            let blob = percept_core::Blob::parse(loaded.bytes()).context("re-reading the header")?;
            for key in ["kind", "format_version", "fit.alpha", "fit.cv", "fit.trials", "fit.cv_r_mean", "fit.cv_r_median", "fit.note"] {
                if let Some(v) = blob.metadata(key)? {
                    println!("  {key:<13} {v}");
                }
            }
        }
    }
    Ok(())
}
