//! `percept eval`: scores a reconstruction folder.

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{evaluate, Context};

use crate::bars::Bars;

/// Arguments of `percept eval`.
#[derive(clap::Args)]
pub struct Args {
    /// The folder `percept reconstruct --stimuli` wrote.
    dir: PathBuf,
    /// Replace an earlier report.
    #[arg(long)]
    force: bool,
    /// torchvision's AlexNet converted to safetensors (scripts/convert_torchvision.py), for the
    /// AlexNet(2) and AlexNet(5) columns.
    #[arg(long)]
    alexnet: Option<PathBuf>,
    /// Leave out the feature-network columns (EffNet-Lite0 and AlexNet).
    #[arg(long)]
    no_features: bool,
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    let o = evaluate::Options { alexnet: a.alexnet.clone(), no_features: a.no_features };
    let outcome = evaluate::run_with(ctx, &a.dir, a.force, &o, &Bars::default())?;
    print!("{}", outcome.report);
    println!("\nwrote {}", outcome.path.display());
    Ok(())
}
