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
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    let outcome = evaluate::run(ctx, &a.dir, a.force, &Bars::default())?;
    print!("{}", outcome.report);
    println!("\nwrote {}", outcome.path.display());
    Ok(())
}
