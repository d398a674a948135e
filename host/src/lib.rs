//! percept: reconstructing seen images from fMRI activity, after Takagi & Nishimoto
//! (CVPR 2023). Voxels are decoded into Stable Diffusion latents by percept-core; this crate
//! fits those decoders, runs the models in WGSL on any GPU, and evaluates reconstructions.
#![deny(missing_docs)]

pub mod dir;
pub mod error;
pub mod eval;
pub mod fit;
pub mod gpu;
pub mod io;
pub mod nn;
pub mod ops;
pub mod paths;
pub mod pipeline;
pub mod progress;
pub mod sched;
pub mod sd;
pub mod sim;

pub use error::{Error, Result};
