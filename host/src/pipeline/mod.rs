//! Whole jobs as library functions: each takes an options struct, a [`Context`] (the GPU,
//! opened once, on first use) and a [`Progress`](crate::progress::Progress), writes its
//! outputs, and returns what it made. The command line is a thin layer over these; tests and
//! other programs call them directly.

pub mod demo;
pub mod demo_dir;
pub mod dir;
pub mod embed;
pub mod encode;
pub mod evaluate;
pub mod features;
pub mod fit;
pub mod img2img;
pub mod reconstruct;
pub mod simulate;

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// What the jobs share: the GPU, opened on first use (jobs that need none never open one).
#[derive(Debug, Default)]
pub struct Context {
    gpu: OnceLock<Gpu>,
}

impl Context {
    /// A context that opens the adapter `Gpu::new` picks when a job first needs it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context around a device already open.
    pub fn with_gpu(gpu: Gpu) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(gpu);
        Context { gpu: cell }
    }

    /// The GPU, opened now if it is not yet (and its adapter logged).
    pub fn gpu(&self) -> Result<&Gpu> {
        if self.gpu.get().is_none() {
            let gpu = Gpu::new()?;
            tracing::info!("adapter: {}", gpu.describe());
            let _ = self.gpu.set(gpu);
        }
        self.gpu.get().ok_or_else(|| Error::Gpu("the device could not be kept".into()))
    }
}
