//! CLIP's text encoder (transformers' CLIPTextModel, as SD v1's text_encoder/): token and
//! position embeddings, pre-LayerNorm transformer layers with causal attention and a quick-GELU
//! MLP, and a final LayerNorm; the output is `last_hidden_state` (77 x 768 for SD v1), the
//! conditioning `c` that Takagi & Nishimoto decode from higher visual cortex.

use std::path::Path;

use crate::error::{Error, Result};
use crate::gpu::{DType, Encoder, Gpu, Tensor};
use crate::nn::config::Json;
use crate::nn::layers::{LayerNorm, Linear};
use crate::nn::{Loader, Weights};
use crate::ops::attention::attention;
use crate::ops::elementwise::{add, unary, Unary};

/// The sizes of a CLIPTextModel (from its config.json).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    /// Width of the hidden states.
    pub hidden: usize,
    /// Width of the MLP.
    pub intermediate: usize,
    /// Attention heads.
    pub heads: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Context length.
    pub max_positions: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

impl ClipConfig {
    /// SD v1.x's text encoder (openai/clip-vit-large-patch14).
    pub fn sd_v1() -> Self {
        ClipConfig { hidden: 768, intermediate: 3072, heads: 12, layers: 12, max_positions: 77, vocab: 49408, eps: 1e-5 }
    }

    /// Reads a transformers config.json (absent keys: SD v1's values); only quick_gelu
    /// models are supported.
    pub fn from_file(path: &Path) -> Result<Self> {
        let j = Json::read(path)?;
        let d = Self::default();
        if let Some(act) = j.v.get("hidden_act").and_then(|a| a.as_str()) {
            if act != "quick_gelu" {
                return Err(j.bad(format!("hidden_act {act} is not supported (quick_gelu is)")));
            }
        }
        let hidden = j.uint("hidden_size", d.hidden, 1..=16384)?;
        let heads = j.uint("num_attention_heads", d.heads, 1..=256)?;
        j.divides("num_attention_heads", heads, "hidden_size", &[hidden])?;
        Ok(ClipConfig {
            hidden,
            intermediate: j.uint("intermediate_size", d.intermediate, 1..=65536)?,
            heads,
            layers: j.uint("num_hidden_layers", d.layers, 1..=128)?,
            max_positions: j.uint("max_position_embeddings", d.max_positions, 1..=4096)?,
            vocab: j.uint("vocab_size", d.vocab, 1..=1_000_000)?,
            eps: j.float("layer_norm_eps", d.eps.into(), 1e-12..=1.0)?,
        })
    }
}

impl Default for ClipConfig {
    /// SD v1's.
    fn default() -> Self {
        Self::sd_v1()
    }
}

/// One pre-LayerNorm transformer layer; fields named as the weight keys.
#[derive(Debug)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The text encoder on the GPU (embedding tables stay on the host: a gather of 77 rows).
#[derive(Debug)]
pub struct ClipTextModel {
    /// Its sizes.
    pub config: ClipConfig,
    token_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
}

impl ClipTextModel {
    /// Loads `config.json` and `model.safetensors` (transformers' names, with or without the
    /// `text_model.` prefix) from `dir`, e.g. an SD v1 folder's text_encoder/.
    pub fn load(gpu: &Gpu, dir: &Path, dtype: DType) -> Result<Self> {
        let config = ClipConfig::from_file(&dir.join("config.json"))?;
        let files: Vec<_> = ["model.safetensors", "diffusion_pytorch_model.safetensors"].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!("{}: no model.safetensors", dir.display())));
        }
        let root = Weights::open(&files)?;
        let w = if root.contains("text_model.embeddings.token_embedding.weight") { root.pp("text_model") } else { root };
        Self::from_weights(&Loader::new(gpu, &w, dtype), config)
    }

    /// Builds the model from weights under `w` (keys `embeddings.…`, `encoder.layers.N.…`).
    pub fn from_weights(w: &Loader<'_>, config: ClipConfig) -> Result<Self> {
        let (h, m, eps) = (config.hidden, config.intermediate, config.eps);
        if config.heads == 0 || h % config.heads != 0 {
            return Err(Error::Invalid(format!("hidden size {h} does not split into {} heads", config.heads)));
        }
        let e = w.pp("embeddings");
        let token_embedding = e.pp("token_embedding").host(&[config.vocab, h], "weight")?;
        let position_embedding = e.pp("position_embedding").host(&[config.max_positions, h], "weight")?;
        let mut layers = Vec::new();
        for i in 0..config.layers {
            let l = w.pp("encoder").pp("layers").pp(i);
            let a = l.pp("self_attn");
            layers.push(EncoderLayer {
                layer_norm1: LayerNorm::load(&l.pp("layer_norm1"), h, eps)?,
                q_proj: Linear::load(&a.pp("q_proj"), h, h, true)?,
                k_proj: Linear::load(&a.pp("k_proj"), h, h, true)?,
                v_proj: Linear::load(&a.pp("v_proj"), h, h, true)?,
                out_proj: Linear::load(&a.pp("out_proj"), h, h, true)?,
                layer_norm2: LayerNorm::load(&l.pp("layer_norm2"), h, eps)?,
                fc1: Linear::load(&l.pp("mlp").pp("fc1"), m, h, true)?,
                fc2: Linear::load(&l.pp("mlp").pp("fc2"), h, m, true)?,
            });
        }
        let final_layer_norm = LayerNorm::load(&w.pp("final_layer_norm"), h, eps)?;
        Ok(ClipTextModel { config, token_embedding, position_embedding, layers, final_layer_norm })
    }

    /// `ids (B, L)` (L <= max positions) -> `last_hidden_state (B, L, hidden)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, ids: &[Vec<u32>]) -> Result<Tensor> {
        let c = &self.config;
        let h = c.hidden;
        let len = ids.first().map_or(0, Vec::len);
        if ids.is_empty() || len == 0 || len > c.max_positions || ids.iter().any(|s| s.len() != len) {
            return Err(Error::Shape(format!("clip: token sequences must share one length of 1..={}", c.max_positions)));
        }
        let mut x = Vec::with_capacity(ids.len() * len * h);
        for seq in ids {
            for (pos, &t) in seq.iter().enumerate() {
                let t = t as usize;
                if t >= c.vocab {
                    return Err(Error::Invalid(format!("clip: token id {t} at position {pos} is outside the vocabulary of {}", c.vocab)));
                }
                x.extend((0..h).map(|j| self.token_embedding[t * h + j] + self.position_embedding[pos * h + j]));
            }
        }
        let mut x = Tensor::from_f32(enc.gpu(), &[ids.len(), len, h], &x)?;
        for l in &self.layers {
            let n = l.layer_norm1.forward(enc, &x)?;
            let (q, k, v) = (l.q_proj.forward(enc, &n)?, l.k_proj.forward(enc, &n)?, l.v_proj.forward(enc, &n)?);
            let a = attention(enc, &q, &k, &v, c.heads, true)?;
            let o = l.out_proj.forward(enc, &a)?;
            x = add(enc, &x, &o)?;
            let n = l.layer_norm2.forward(enc, &x)?;
            let f = l.fc1.forward(enc, &n)?;
            let m = unary(enc, &f, Unary::QuickGelu)?;
            let o = l.fc2.forward(enc, &m)?;
            x = add(enc, &x, &o)?;
        }
        self.final_layer_norm.forward(enc, &x)
    }
}
