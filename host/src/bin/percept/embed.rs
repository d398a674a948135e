//! `percept embed-text`: captions -> CLIP text conditioning c.

use std::path::PathBuf;

use anyhow::Result;
use percept::pipeline::{embed, Context};

use crate::args::OutputArgs;
use crate::bars::Bars;

/// Arguments of `percept embed-text`.
#[derive(clap::Args)]
pub struct Args {
    /// Captions to embed together (averaged into one c).
    captions: Vec<String>,
    /// Stable Diffusion v1: the diffusers folder (its text_encoder/ and tokenizer/ are used), or
    /// the text encoder folder itself (config.json and model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The tokenizer folder (vocab.json, merges.txt); default: the model's own tokenizer/, else
    /// the shipped weights/clip-tokenizer.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Batch mode: a stimulus list (CSV with `image` and `captions` columns); writes one c per
    /// trial, (trials, 77, 768), ready for `percept fit --targets`.
    #[arg(long, conflicts_with = "captions")]
    stimuli: Option<PathBuf>,
    /// Batch mode: a COCO-style JSON list of {"file": ..., "captions": [...]}; writes one c per
    /// image, (images, 77, 768), in the list's order.
    #[arg(long, conflicts_with_all = ["captions", "stimuli"])]
    captions_json: Option<PathBuf>,
    /// The .npy to write.
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    let captions = match (&a.stimuli, &a.captions_json) {
        (Some(list), _) => embed::Captions::Stimuli(list.clone()),
        (None, Some(json)) => embed::Captions::Json(json.clone()),
        (None, None) => {
            anyhow::ensure!(!a.captions.is_empty(), "give captions, or --stimuli LIST.csv, or --captions-json FILE");
            embed::Captions::Inline(a.captions.clone())
        }
    };
    let o = embed::Options {
        model: a.model.clone(),
        tokenizer: a.tokenizer.clone(),
        captions,
        out: a.output.out.clone(),
        force: a.output.force,
    };
    let shape = embed::run(ctx, &o, &Bars::default())?;
    println!("{}: c of shape {shape:?}", o.out.display());
    Ok(())
}
