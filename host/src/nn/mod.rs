//! Models as code: blocks are structs of sub-layers named like the weight keys, each with a
//! loader and a `forward` that records GPU dispatches.

pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod layers;
pub mod taesd;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

use std::path::{Path, PathBuf};

pub use weights::Weights;

use crate::error::{Error, Result};

/// The weights file of a diffusers model folder: `diffusion_pytorch_model.safetensors`, or
/// its `.fp16` variant.
pub fn model_file(dir: &Path) -> Result<PathBuf> {
    ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| Error::Invalid(format!("{}: no diffusion_pytorch_model.safetensors (or .fp16.safetensors); .bin checkpoints are not read, convert them to safetensors", dir.display())))
}
