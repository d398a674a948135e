//! `percept inspect`: what a decoder file holds.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `percept inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// A decoder file (.safetensors).
    decoder: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    print!("{}", percept::io::decoder::describe(&a.decoder)?);
    Ok(())
}
