//! Where percept finds the files it ships (weights, stimuli) when no path is given.

use std::path::PathBuf;

/// The first of: `$PERCEPT_HOME/<rel>`, `./<rel>`, and `<rel>` in the source tree this binary
/// was built from.
pub fn shipped(rel: &str) -> PathBuf {
    let candidates = [
        std::env::var_os("PERCEPT_HOME").map(|h| PathBuf::from(h).join(rel)),
        Some(PathBuf::from(rel)),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)),
    ];
    candidates.iter().flatten().find(|p| p.exists()).cloned().unwrap_or_else(|| PathBuf::from(rel))
}

/// The TAESD weights folder.
pub fn taesd() -> PathBuf {
    shipped("weights/taesd")
}

/// The text encoder and tokenizer folders for `model`, which may be a Stable Diffusion folder
/// (`text_encoder/`, `tokenizer/` inside it) or the text encoder folder itself. The tokenizer
/// is the one given, else the model's own (`tokenizer/` beside or inside), else the shipped
/// CLIP tokenizer.
pub fn text_encoder(model: &std::path::Path, tokenizer: Option<&std::path::Path>) -> (PathBuf, PathBuf) {
    let nested = model.join("text_encoder");
    let (te, root) = if nested.join("config.json").exists() { (nested, Some(model.to_path_buf())) } else { (model.to_path_buf(), model.parent().map(PathBuf::from)) };
    let own = [root.map(|r| r.join("tokenizer")), Some(model.join("tokenizer"))].into_iter().flatten().find(|d| d.join("vocab.json").exists() && d.join("merges.txt").exists());
    let tok = tokenizer.map(PathBuf::from).or(own).unwrap_or_else(|| shipped("weights/clip-tokenizer"));
    (te, tok)
}
