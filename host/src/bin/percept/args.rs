//! Argument groups shared by several commands.

use std::path::PathBuf;

use percept::io::voxels::VoxelSource;
use percept::pipeline::features::NetChoice;
use percept::sd::{Img2ImgOptions, Sampler};

/// A feature network by name.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Net {
    /// EfficientNet-Lite0 (shipped, weights/efficientnet-lite0; percept eval's judge).
    EfficientnetLite0,
    /// EfficientNet-Lite1 (shipped, weights/efficientnet-lite1; the simulated subject's drive).
    EfficientnetLite1,
    /// EfficientNet-Lite2 (shipped, weights/efficientnet-lite2).
    EfficientnetLite2,
    /// VGG19 from torchvision's weights converted to safetensors (--weights FILE).
    Vgg19,
}

/// The feature network (`fit --target features`) or loss network (`reconstruct --method dir`).
#[derive(clap::Args)]
pub struct NetArgs {
    /// Feature network (fit --target features; the loss network of reconstruct --method dir).
    #[arg(long, value_enum, default_value = "efficientnet-lite2")]
    pub net: Net,
    /// Weights of --net: a folder with model.safetensors (EfficientNet-Lite; default the shipped one), a safetensors file (VGG19, required).
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

impl NetArgs {
    /// The network the library loads.
    pub fn choice(&self) -> anyhow::Result<NetChoice> {
        let lite = |name: &str| {
            let dir = self.weights.clone().unwrap_or_else(|| percept::paths::shipped(&format!("weights/{name}")));
            NetChoice::EfficientNet { dir, name: name.into() }
        };
        Ok(match self.net {
            Net::EfficientnetLite0 => lite("efficientnet-lite0"),
            Net::EfficientnetLite1 => lite("efficientnet-lite1"),
            Net::EfficientnetLite2 => lite("efficientnet-lite2"),
            Net::Vgg19 => match &self.weights {
                Some(file) => NetChoice::Vgg19(file.clone()),
                None => anyhow::bail!("--net vgg19 needs its weights: --weights vgg19.safetensors (torchvision's, converted by scripts/convert_torchvision.py)"),
            },
        })
    }
}

/// Voxel inputs: a .npy, or NIfTI volumes under a mask.
#[derive(clap::Args)]
pub struct VoxelArgs {
    /// Voxels: a (trials, voxels) float .npy.
    #[arg(long, conflicts_with = "nifti", required_unless_present = "nifti")]
    pub voxels: Option<PathBuf>,
    /// Voxels: NIfTI volumes (.nii/.nii.gz), one 4D file or one 3D file per trial, in order.
    #[arg(long, num_args = 1.., requires = "mask")]
    pub nifti: Vec<PathBuf>,
    /// Region-of-interest mask for --nifti (non-zero voxels are used).
    #[arg(long)]
    pub mask: Option<PathBuf>,
}

impl VoxelArgs {
    /// The source the library reads.
    pub fn source(&self) -> anyhow::Result<VoxelSource> {
        match (&self.voxels, &self.mask) {
            (Some(p), _) => Ok(VoxelSource::Npy(p.clone())),
            (None, Some(mask)) if !self.nifti.is_empty() => Ok(VoxelSource::Nifti { files: self.nifti.clone(), mask: mask.clone() }),
            _ => anyhow::bail!("give the voxels with --voxels X.npy or --nifti FILES --mask MASK"),
        }
    }
}

/// Where the outputs go, and whether earlier ones may be replaced.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Where to write (a file or a folder: the command's help says which).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace earlier outputs (never anything else).
    #[arg(long)]
    pub force: bool,
}

/// The sampler.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Scheduler {
    /// DDIM, eta 0 (Takagi & Nishimoto).
    Ddim,
    /// PNDM / PLMS (SD v1.5's default).
    Pndm,
}

/// img2img settings shared by `img2img` and `reconstruct --sd`.
#[derive(clap::Args)]
pub struct SamplingArgs {
    /// Share of the schedule re-done.
    #[arg(long, default_value_t = 0.8)]
    pub strength: f64,
    /// Inference steps of the whole schedule.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Classifier-free guidance scale (1: none).
    #[arg(long, default_value_t = 5.0)]
    pub guidance: f32,
    /// The sampler.
    #[arg(long, value_enum, default_value = "ddim")]
    pub scheduler: Scheduler,
    /// Seed of the noise (when not given as a file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The library's options.
    pub fn options(&self) -> Img2ImgOptions {
        let sampler = match self.scheduler {
            Scheduler::Ddim => Sampler::Ddim,
            Scheduler::Pndm => Sampler::Pndm,
        };
        Img2ImgOptions { strength: self.strength, steps: self.steps, guidance: self.guidance, sampler }
    }
}

/// Checks an image side option: a positive multiple of 8, at most `max` (so that a typo such
/// as `--size 100000` is refused before any allocation).
pub fn check_side(flag: &str, value: usize, max: usize) -> anyhow::Result<()> {
    anyhow::ensure!(value.is_multiple_of(8) && value > 0, "{flag} {value} is not a positive multiple of 8");
    anyhow::ensure!(value <= max, "{flag} {value} is more than {max}");
    Ok(())
}
