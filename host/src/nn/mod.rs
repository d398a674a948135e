//! Models as code: blocks are structs of sub-layers named like the weight keys, each with a
//! constructor `load(&Loader, config)` and a `forward` that records GPU dispatches. A
//! [`Loader`] is a [`Weights`] view under a key prefix carrying the GPU and the dtype of
//! weight matrices; model configs (`UnetConfig`, `VaeConfig`, `ClipConfig`) are `Default`
//! (SD v1's) and read from config.json by [`config`].

pub mod alexnet;
pub mod checkpoint;
pub mod classic;
pub mod clip;
pub mod config;
pub mod efficientnet;
pub mod layers;
pub mod loader;
pub mod taesd;
pub mod tape;
pub mod tokenizer;
pub mod unet;
pub mod vgg;
pub mod vae;
pub mod weights;

use std::path::{Path, PathBuf};

pub use loader::Loader;
pub use weights::Weights;

use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// Intermediate outputs of a forward pass by name (the U-Net's `conv_in`, `time_embedding`,
/// `down_blocks.i`, `mid_block`, `up_blocks.i`; the VAE's `encoder.down_blocks.i`, ...), for
/// tests that compare block by block.
pub type Trace = Vec<(String, Tensor)>;

/// Appends `t` to the trace as `name`, when there is a trace.
pub fn record(trace: &mut Option<&mut Trace>, name: impl Into<String>, t: &Tensor) {
    if let Some(tr) = trace.as_deref_mut() {
        tr.push((name.into(), t.clone()));
    }
}

/// The weights file of a diffusers model folder: `diffusion_pytorch_model.safetensors`, or
/// its `.fp16` variant.
pub fn model_file(dir: &Path) -> Result<PathBuf> {
    ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| Error::Invalid(format!("{}: no diffusion_pytorch_model.safetensors (or .fp16.safetensors); .bin checkpoints are not read, convert them to safetensors", dir.display())))
}
