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
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    let outcome = demo::run(ctx, &demo::Options::new(&a.out, a.force), &Bars::default())?;
    print!("{}", outcome.report);
    println!("\nwrote {} and {}", a.out.join("report.md").display(), a.out.join("grid.png").display());
    Ok(())
}
