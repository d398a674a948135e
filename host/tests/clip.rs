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
