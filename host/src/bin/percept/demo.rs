//! `percept demo`: the main job on the shipped files; `--dir` adds deep image reconstruction
//! and mental imagery (`pipeline::demo_dir`).

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{demo, demo_dir, Context};

use crate::bars::Bars;

/// Arguments of `percept demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder for the outputs.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Replace the outputs of an earlier run.
    #[arg(long)]
    force: bool,
    /// Stimulus side in pixels (a multiple of 8, at least 32): TAESD latents of (4, size/8,
    /// size/8) are the decoder's targets and the reconstructions are size x size [default: 128;
    /// 64 with --dir, whose optimisation costs four times as much at 128].
    #[arg(long)]
    size: Option<usize>,
    /// Add deep image reconstruction (EfficientNet-Lite2 feature decoders on every voxel, an
    /// image optimised through TAESD's decoder from the z-only start) and the imagery trials
    /// (both methods); takes far longer (see the README).
    #[arg(long)]
    dir: bool,
    /// --dir: iterations of the optimisation.
    #[arg(long, requires = "dir", default_value_t = demo_dir::DEFAULT_ITERATIONS)]
    iterations: usize,
    /// --dir: random units decoded per layer.
    #[arg(long, requires = "dir", default_value_t = demo_dir::DEFAULT_UNITS)]
    units: usize,
    /// --dir: EfficientNet-Lite2 layers decoded, comma-separated (default: _blocks.2,_blocks.10,_blocks.16,_avg_pooling).
    #[arg(long, requires = "dir", value_delimiter = ',')]
    layers: Vec<String>,
}

/// The demo's stimulus side without `--size`.
pub const DEFAULT_SIZE: usize = 128;
/// `demo --dir`'s stimulus side without `--size`.
pub const DEFAULT_SIZE_DIR: usize = 64;

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    let size = a.size.unwrap_or(if a.dir { DEFAULT_SIZE_DIR } else { DEFAULT_SIZE });
    anyhow::ensure!(size.is_multiple_of(8) && (32..=percept::sim::MAX_SIZE).contains(&size), "--size {size}: the stimulus side must be a multiple of 8 from 32 to {}", percept::sim::MAX_SIZE);
    if a.dir {
        anyhow::ensure!(a.iterations >= 1, "--iterations {}: at least 1", a.iterations);
        anyhow::ensure!(a.units >= 1, "--units {}: at least 1", a.units);
        let mut o = demo_dir::Options::new(&a.out, a.force);
        o.settings.size = size;
        o.iterations = a.iterations;
        o.units = a.units;
        if !a.layers.is_empty() {
            o.layers = a.layers;
        }
        let outcome = demo_dir::run(ctx, &o, &Bars::default())?;
        print!("{}", outcome.report);
        println!("\nwrote {}, {} and {}", a.out.join("report.md").display(), a.out.join("grid.png").display(), a.out.join("imagery.png").display());
        return Ok(());
    }
    let mut options = demo::Options::new(&a.out, a.force);
    options.settings.size = size;
    let outcome = demo::run(ctx, &options, &Bars::default())?;
    print!("{}", outcome.report);
    println!("\nwrote {} and {}", a.out.join("report.md").display(), a.out.join("grid.png").display());
    Ok(())
}
