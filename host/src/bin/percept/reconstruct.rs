//! `percept reconstruct`: voxels -> images, by the z decoder (and Takagi & Nishimoto's second
//! stage), or by deep image reconstruction (`--method dir`).

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{dir, reconstruct, Context};

use crate::args::{NetArgs, OutputArgs, SamplingArgs, VoxelArgs};
use crate::bars::Bars;

/// Arguments of `percept reconstruct`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    voxels: VoxelArgs,
    /// `z`: the z decoder's latents through TAESD (or SD); `dir`: deep image reconstruction
    /// from decoded DNN features (Shen et al. 2019).
    #[arg(long, value_enum, default_value = "z")]
    method: MethodArg,
    /// The z decoder (early visual -> VAE latent), from `percept fit`; with `--method dir` the
    /// start of the optimisation (the z-only image).
    #[arg(long)]
    decoder: Option<PathBuf>,
    #[command(flatten)]
    dir: DirArgs,
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
    #[arg(long, requires = "voxels_c", requires = "sd")]
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
    /// Side of the images the second stage works at (a multiple of 8, at most 2048).
    #[arg(long, default_value_t = 512)]
    sd_size: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The folder to write.
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Z,
    Dir,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GeneratorArg {
    Taesd,
    None,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adam,
}

/// The arguments of `--method dir`.
#[derive(clap::Args)]
struct DirArgs {
    /// The folder of feature decoders from `percept fit --target features` (one per layer);
    /// they read the voxels of --voxels / --nifti.
    #[arg(long)]
    decoders: Option<PathBuf>,
    /// With --oracle: whole layers of the loss network as the targets, comma-separated
    /// reference names (e.g. `_blocks.4,_blocks.15`; VGG19: `features.20,classifier.0`),
    /// instead of --decoders.
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// The voxels the z decoder reads (.npy, same trials), when not those of the feature decoders.
    #[arg(long, requires = "decoder")]
    voxels_z: Option<PathBuf>,
    /// A start latent (4, size/8, size/8) .npy, e.g. the mean training latent, when there is no
    /// z decoder (default: a grey image).
    #[arg(long, conflicts_with = "decoder")]
    start_latent: Option<PathBuf>,
    /// The generator: TAESD's decoder, or none (the pixels are optimised, blurred between steps).
    #[arg(long, value_enum, default_value = "taesd")]
    generator: GeneratorArg,
    /// The loss network (the feature decoders must be of the same network).
    #[command(flatten)]
    net: NetArgs,
    /// Side of the reconstructed images (a multiple of 8).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Iterations of the optimiser.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// The optimiser: the lab's SGD with momentum (rate falling linearly to 0) or Adam.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerArg,
    /// Learning rate (default: 0.02 SGD, 0.1 Adam through TAESD; 2/255 SGD on pixels).
    #[arg(long)]
    lr: Option<f32>,
    /// Weight of the anchor lambda * ||latent - start||^2 (0: none).
    #[arg(long, default_value_t = 0.0)]
    anchor: f32,
    /// Images optimised together.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// The oracle run: the targets are the true features of the --stimuli images (no brain
    /// data), at the units of --decoders or of whole --layers; a check of the optimiser and
    /// the gradients.
    #[arg(long)]
    oracle: bool,
}

fn run_dir(a: &Args, ctx: &Context) -> Result<()> {
    let d = &a.dir;
    anyhow::ensure!(a.sd.is_none(), "--sd is the z method's second stage; --method dir makes its images by optimisation");
    crate::args::check_side("--size", d.size, 1024)?;
    let start = match (&a.decoder, &d.start_latent) {
        (Some(decoder), _) => dir::Start::ZDecoder { decoder: decoder.clone(), voxels: d.voxels_z.clone().map(percept::io::voxels::VoxelSource::Npy) },
        (None, Some(p)) => dir::Start::Latent(p.clone()),
        (None, None) => dir::Start::Grey,
    };
    let net = d.net.choice()?;
    let o = dir::Options {
        voxels: a.voxels.source()?,
        decoders: d.decoders.clone(),
        layers: d.layers.clone(),
        stimuli: a.stimuli.clone(),
        start,
        taesd: match d.generator {
            GeneratorArg::Taesd => Some(a.taesd.clone().unwrap_or_else(percept::paths::taesd)),
            GeneratorArg::None => None,
        },
        net,
        size: d.size,
        optimizer: match d.optimizer {
            OptimizerArg::Sgd => dir::Optimizer::Sgd,
            OptimizerArg::Adam => dir::Optimizer::Adam,
        },
        lr: d.lr,
        iterations: d.iterations,
        anchor: d.anchor,
        batch: d.batch,
        oracle: d.oracle,
        out: a.output.out.clone(),
        force: a.output.force,
    };
    let _lock = percept::io::output::lock(&o.out)?;
    let outcome = dir::run(ctx, &o, &Bars::default())?;
    println!("{}", outcome.summary);
    Ok(())
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    if matches!(a.method, MethodArg::Dir) {
        return run_dir(&a, ctx);
    }
    let decoder = a.decoder.clone().ok_or_else(|| anyhow::anyhow!("--method z needs --decoder (the z decoder from `percept fit`)"))?;
    anyhow::ensure!(a.dir.decoders.is_none(), "--decoders belongs to --method dir");
    anyhow::ensure!(a.dir.layers.is_empty() && !a.dir.oracle, "--layers and --oracle belong to --method dir");
    crate::args::check_side("--sd-size", a.sd_size, 2048)?;
    let sd = match (&a.sd, &a.decoder_c, &a.voxels_c) {
        (Some(model), Some(decoder_c), Some(voxels_c)) => Some(reconstruct::SdStage {
            model: model.clone(),
            decoder_c: decoder_c.clone(),
            voxels_c: voxels_c.clone(),
            uncond: a.uncond.clone(),
            samples: a.samples,
            size: a.sd_size,
            sampling: a.sampling.options(),
            seed: a.sampling.seed,
        }),
        _ => None,
    };
    let o = reconstruct::Options {
        voxels: a.voxels.source()?,
        decoder,
        stimuli: a.stimuli.clone(),
        taesd: a.taesd.clone().unwrap_or_else(percept::paths::taesd),
        sd,
        out: a.output.out.clone(),
        force: a.output.force,
    };
    // One run at a time writes a folder of reconstructions.
    let _lock = percept::io::output::lock(&o.out)?;
    let outcome = reconstruct::run(ctx, &o, &Bars::default())?;
    println!("{}", outcome.summary);
    Ok(())
}
