//! `percept embed-text`: captions -> CLIP's text conditioning c, the (77, 768) last hidden
//! state, averaged over each image's captions (identical caption sets are embedded once).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::io::output::ensure_writable;
use crate::io::{npy, stimuli};
use crate::nn::clip::ClipTextModel;
use crate::nn::tokenizer::{Tokenizer, MAX_LEN};
use crate::progress::Progress;

/// The captions to embed.
#[derive(Debug, Clone)]
pub enum Captions {
    /// One set, averaged into one c of shape (77, D).
    Inline(Vec<String>),
    /// A stimulus list: one c per trial, (trials, 77, D).
    Stimuli(PathBuf),
    /// A COCO-style JSON list of {"file", "captions"}: one c per image, (images, 77, D).
    Json(PathBuf),
}

/// What `embed-text` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// A Stable Diffusion folder (its text_encoder/ and tokenizer/ are used) or the text
    /// encoder folder itself (config.json and model.safetensors).
    pub model: PathBuf,
    /// The tokenizer folder (vocab.json, merges.txt); default: the model's own tokenizer/, else
    /// the shipped CLIP tokenizer.
    pub tokenizer: Option<PathBuf>,
    /// The captions.
    pub captions: Captions,
    /// The .npy to write.
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
}

/// The caption sets to embed, one per output row.
fn caption_sets(c: &Captions) -> Result<Vec<Vec<String>>> {
    match c {
        Captions::Inline(caps) if caps.is_empty() => Err(Error::Invalid("no captions to embed".into())),
        Captions::Inline(caps) => Ok(vec![caps.clone()]),
        Captions::Json(path) => {
            let items = stimuli::read_captions_json(path)?;
            if let Some((i, it)) = items.iter().enumerate().find(|(_, it)| it.captions.is_empty()) {
                return Err(Error::Invalid(format!("{}: entry {i} ({}) has no captions", path.display(), it.path.display())));
            }
            Ok(items.into_iter().map(|it| it.captions).collect())
        }
        Captions::Stimuli(list) => {
            let trials = stimuli::read(list)?;
            if let Some((i, t)) = trials.iter().enumerate().find(|(_, t)| t.captions.is_empty()) {
                return Err(Error::Invalid(format!("{}: trial {i} ({}) has no captions", list.display(), t.image.display())));
            }
            Ok(trials.into_iter().map(|t| t.captions).collect())
        }
    }
}

/// CLIP's text conditioning of each caption set, averaged over the set's captions (identical
/// sets are embedded once): `(values (sets, 77, D) row-major, 77, D)`. `model` and
/// `tokenizer` as in [`Options`]. Writes nothing.
pub fn embed(ctx: &Context, model: &Path, tokenizer: Option<&Path>, sets: &[Vec<String>], progress: &dyn Progress) -> Result<(Vec<f32>, usize, usize)> {
    if sets.is_empty() {
        return Err(Error::Invalid("no captions to embed".into()));
    }
    if let Some(i) = sets.iter().position(|s| s.is_empty()) {
        return Err(Error::Invalid(format!("caption set {i} has no captions")));
    }
    let (te, tok) = crate::paths::text_encoder(model, tokenizer);
    let tok = Tokenizer::load(&tok)?;
    let gpu = ctx.gpu()?;
    let model = ClipTextModel::load(gpu, &te, DType::F16)?;
    let (l, h) = (MAX_LEN, model.config.hidden);
    let mut cache: HashMap<&[String], Vec<f32>> = HashMap::new();
    let mut out = Vec::with_capacity(sets.len() * l * h);
    progress.begin("embedding", sets.len() as u64);
    for set in sets {
        if !cache.contains_key(set.as_slice()) {
            let ids: Vec<Vec<u32>> = set.iter().map(|c| tok.encode(c)).collect();
            let mut enc = gpu.encoder();
            let y = model.forward(&mut enc, &ids)?;
            drop(enc);
            let y = y.to_vec(gpu)?;
            let mut mean = vec![0f32; l * h];
            for chunk in y.chunks(l * h) {
                mean.iter_mut().zip(chunk).for_each(|(m, v)| *m += v / set.len() as f32);
            }
            cache.insert(set, mean);
        }
        out.extend_from_slice(&cache[set.as_slice()]);
        progress.inc(1);
    }
    progress.done();
    Ok((out, l, h))
}

/// Runs the job; returns the shape written.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<Vec<usize>> {
    ensure_writable(&o.out, o.force)?;
    let sets = caption_sets(&o.captions)?;
    let (out, l, h) = embed(ctx, &o.model, o.tokenizer.as_deref(), &sets, progress)?;
    let shape = match o.captions {
        Captions::Inline(_) => vec![l, h],
        _ => vec![sets.len(), l, h],
    };
    npy::write(&o.out, &shape, &out, o.force)?;
    Ok(shape)
}
