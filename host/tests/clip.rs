//! CLIP: the tokenizer against transformers' ids (COCO captions and hard cases), and the text
//! encoder against transformers' last_hidden_state for a tiny random model (fixtures made by
//! tests/fixtures/make_clip.py).

use crate::common;
use std::path::PathBuf;

use common::*;
use percept::gpu::DType;
use percept::nn::clip::ClipTextModel;
use percept::nn::tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn tokenizer_matches_transformers() {
    let tok = Tokenizer::load(&root().join("weights/clip-tokenizer")).unwrap();
    let cases: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/clip_tokens.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() > 250, "{} cases", cases.len());
    let mut bad = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got = tok.encode(text);
        if got != want {
            bad.push(format!("{text:?}:\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{} of {} texts differ:\n{}", bad.len(), cases.len(), bad.join("\n"));
}

#[test]
fn tiny_text_encoder_matches_transformers() {
    let gpu = gpu();
    let dir = root().join("tests/fixtures/clip_tiny");
    let model = ClipTextModel::load(gpu, &dir, DType::F32).unwrap();
    let ids = percept::io::npy::read(&dir.join("input_ids.npy")).unwrap();
    let want = percept::io::npy::read(&dir.join("last_hidden_state.npy")).unwrap();
    let (b, l) = (ids.shape[0], ids.shape[1]);
    let seqs: Vec<Vec<u32>> = (0..b).map(|i| ids.data[i * l..(i + 1) * l].iter().map(|&v| v as u32).collect()).collect();
    let mut enc = gpu.encoder();
    let y = model.forward(&mut enc, &seqs).unwrap();
    drop(enc);
    assert_eq!(y.shape, want.shape);
    // f32 through 2 layers: both sides compute from the same f16-rounded weights.
    assert_close("clip last_hidden_state", &y.to_vec(gpu).unwrap(), &want.data, 1e-4, 1e-3);
    // Out-of-vocabulary ids are named.
    let e = model.forward(&mut gpu.encoder(), &[vec![5, 1000]]).unwrap_err().to_string();
    assert!(e.contains("token id 1000 at position 1"), "{e}");
}

#[test]
fn embed_text_takes_the_sd_folder_and_its_own_tokenizer() {
    use percept::pipeline::embed::{run, Captions, Options};
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("embed-{}", std::process::id()));
    let sd = base.join("sd");
    let fixture = root().join("tests/fixtures/clip_tiny");
    std::fs::create_dir_all(sd.join("text_encoder")).unwrap();
    std::fs::create_dir_all(sd.join("tokenizer")).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), sd.join("text_encoder").join(f)).unwrap();
    }
    // The tiny model has 1,000 token ids: a tokenizer of its own keeps every id below that.
    std::fs::write(sd.join("tokenizer/vocab.json"), r#"{"a</w>": 5, "c": 6, "t</w>": 7, "<|startoftext|>": 998, "<|endoftext|>": 999}"#).unwrap();
    std::fs::write(sd.join("tokenizer/merges.txt"), "#version: 0.2\n").unwrap();
    let opts = |model: PathBuf, tokenizer: Option<PathBuf>, out: &str| Options {
        model,
        tokenizer,
        captions: Captions::Inline(vec!["a cat".into(), "A CAT!".into()]),
        out: base.join(out),
        force: true,
    };
    let ctx = ctx();
    let q = percept::progress::Silent;
    assert_eq!(run(ctx, &opts(sd.clone(), None, "c1.npy"), &q).unwrap(), vec![77, 32]);
    run(ctx, &opts(sd.join("text_encoder"), None, "c2.npy"), &q).unwrap();
    let (c1, c2) = (percept::io::npy::read(&base.join("c1.npy")).unwrap(), percept::io::npy::read(&base.join("c2.npy")).unwrap());
    assert_eq!(c1, c2, "the SD folder and its text_encoder/ must give the same c");
    // The shipped tokenizer's ids do not fit this model: so the model's own was used above.
    let e = run(ctx, &opts(sd.clone(), Some(root().join("weights/clip-tokenizer")), "c3.npy"), &q).unwrap_err().chain();
    assert!(e.contains("token id 49406"), "{e}");
    // A folder that is neither: the missing file is named, and the OS's words appear once.
    let e = run(ctx, &opts(base.join("nothing"), None, "c4.npy"), &q).unwrap_err().chain();
    assert!(e.contains("config.json") && e.matches("No such file").count() == 1, "{e}");
}
