//! `percept gpu`: which adapter percept runs on, and what it can do.

use anyhow::Result;
use percept::pipeline::Context;

/// Arguments of `percept gpu`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args, ctx: &Context) -> Result<()> {
    let gpu = ctx.gpu()?;
    println!("{}", gpu.describe());
    println!("  kind               {:?}", gpu.kind);
    println!("  shader f16         {}", gpu.shader_f16);
    println!("  max binding        {} MiB", gpu.max_binding() >> 20);
    Ok(())
}
