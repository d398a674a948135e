//! `percept demo`: the main job on the shipped files.

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{demo, Context};

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
    /// size/8) are the decoder's targets and the reconstructions are size x size.
    #[arg(long, default_value_t = 64)]
    size: usize,
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    anyhow::ensure!(a.size.is_multiple_of(8) && (32..=percept::sim::MAX_SIZE).contains(&a.size), "--size {}: the stimulus side must be a multiple of 8 from 32 to {}", a.size, percept::sim::MAX_SIZE);
    let mut options = demo::Options::new(&a.out, a.force);
    options.settings.size = a.size;
    let outcome = demo::run(ctx, &options, &Bars::default())?;
    print!("{}", outcome.report);
    println!("\nwrote {} and {}", a.out.join("report.md").display(), a.out.join("grid.png").display());
    Ok(())
}
