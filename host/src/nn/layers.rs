//! Layers shared by the models, loaded from weights under a prefix (candle style): linear,
//! normalisations, convolutions, ResNet blocks and multi-head attention.

use crate::error::{Error, Result};
use crate::gpu::{DType, Encoder, Gpu, Tensor};
use crate::nn::Weights;
use crate::ops::attention::attention;
use crate::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
use crate::ops::Act;
use crate::ops::elementwise::{add, add_per_sample};
use crate::ops::linear::linear;
use crate::ops::norm::{group_norm, layer_norm};

/// Uploads weights as f32 or packed f16.
pub fn upload(gpu: &Gpu, shape: &[usize], data: &[f32], dtype: DType) -> Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::from_f32(gpu, shape, data),
        DType::F16 => Tensor::from_f32_as_f16(gpu, shape, data),
    }
}

/// `y = x W^T (+ b)` over the last dimension.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight (out, inp)` (or a 1x1 convolution's `(out, inp, 1, 1)`, which is the same
    /// map) and, when `bias`, `bias (out)`.
    pub fn load(gpu: &Gpu, w: &Weights, out: usize, inp: usize, bias: bool, dtype: DType) -> Result<Self> {
        let (weight, shape) = w.get_any("weight")?;
        if shape != [out, inp] && shape != [out, inp, 1, 1] {
            return Err(Error::Shape(format!("tensor `{}` has shape {shape:?}, expected [{out}, {inp}] (or [{out}, {inp}, 1, 1])", w.key("weight"))));
        }
        let bias = if bias { Some(Tensor::from_f32(gpu, &[out], &w.get("bias", &[out])?)?) } else { None };
        Ok(Linear { weight: upload(gpu, &[out, inp], &weight, dtype)?, bias })
    }

    /// `x (.., inp) -> (.., out)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        linear(enc, x, &self.weight, self.bias.as_ref())
    }
}

/// Scale and shift of a normalisation.
#[derive(Debug)]
pub struct Affine {
    /// gamma (C).
    pub weight: Tensor,
    /// beta (C).
    pub bias: Tensor,
}

impl Affine {
    /// Loads `weight` and `bias`, both `(c)`.
    pub fn load(gpu: &Gpu, w: &Weights, c: usize) -> Result<Self> {
        Ok(Affine { weight: Tensor::from_f32(gpu, &[c], &w.get("weight", &[c])?)?, bias: Tensor::from_f32(gpu, &[c], &w.get("bias", &[c])?)? })
    }
}

/// GroupNorm with its group count and epsilon.
#[derive(Debug)]
pub struct GroupNorm {
    affine: Affine,
    groups: usize,
    eps: f32,
}

impl GroupNorm {
    /// Loads a GroupNorm over `c` channels.
    pub fn load(gpu: &Gpu, w: &Weights, c: usize, groups: usize, eps: f32) -> Result<Self> {
        if groups == 0 || c % groups != 0 {
            return Err(Error::Invalid(format!("{}: {c} channels do not split into {groups} norm groups", w.key("weight"))));
        }
        Ok(GroupNorm { affine: Affine::load(gpu, w, c)?, groups, eps })
    }

    /// `x (B, .., C)`, then SiLU when `silu`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor, silu: bool) -> Result<Tensor> {
        group_norm(enc, x, self.groups, &self.affine.weight, &self.affine.bias, self.eps, silu)
    }
}

/// LayerNorm over the last dimension.
#[derive(Debug)]
pub struct LayerNorm {
    affine: Affine,
    eps: f32,
}

impl LayerNorm {
    /// Loads a LayerNorm over `c` features.
    pub fn load(gpu: &Gpu, w: &Weights, c: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm { affine: Affine::load(gpu, w, c)?, eps })
    }

    /// `x (.., C)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        layer_norm(enc, x, &self.affine.weight, &self.affine.bias, self.eps)
    }
}

/// A 2D convolution with bias (NHWC activations).
#[derive(Debug)]
pub struct Conv {
    weight: ConvWeight,
    spec: ConvSpec,
}

impl Conv {
    /// Loads `weight (cout, cin, k, k)` and `bias (cout)`; `spec` says stride and padding.
    pub fn load(gpu: &Gpu, w: &Weights, cin: usize, cout: usize, k: usize, spec: ConvSpec, dtype: DType) -> Result<Self> {
        let shape = [cout, cin, k, k];
        let weight = w.get("weight", &shape)?;
        let bias = w.get("bias", &[cout])?;
        Ok(Conv { weight: ConvWeight::from_torch(gpu, &weight, shape, Some(&bias), dtype)?, spec })
    }

    /// A 3x3 convolution, stride 1, padding 1.
    pub fn same3(gpu: &Gpu, w: &Weights, cin: usize, cout: usize, dtype: DType) -> Result<Self> {
        Self::load(gpu, w, cin, cout, 3, ConvSpec::same(1, Act::None), dtype)
    }

    /// `x (B, H, W, cin) -> (B, H', W', cout)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        conv2d(enc, x, &self.weight, self.spec)
    }
}

/// diffusers' ResnetBlock2D: GroupNorm+SiLU, conv, (+ time embedding), GroupNorm+SiLU, conv,
/// plus the input (through a 1x1 conv when the width changes).
#[derive(Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv,
    conv_shortcut: Option<Conv>,
}

impl ResnetBlock {
    /// `temb`: the width of the time embedding (U-Net), or None (VAE).
    #[allow(clippy::too_many_arguments)]
    pub fn load(gpu: &Gpu, w: &Weights, cin: usize, cout: usize, temb: Option<usize>, groups: usize, eps: f32, dtype: DType) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: GroupNorm::load(gpu, &w.pp("norm1"), cin, groups, eps)?,
            conv1: Conv::same3(gpu, &w.pp("conv1"), cin, cout, dtype)?,
            time_emb_proj: temb.map(|t| Linear::load(gpu, &w.pp("time_emb_proj"), cout, t, true, dtype)).transpose()?,
            norm2: GroupNorm::load(gpu, &w.pp("norm2"), cout, groups, eps)?,
            conv2: Conv::same3(gpu, &w.pp("conv2"), cout, cout, dtype)?,
            conv_shortcut: if cin != cout { Some(Conv::load(gpu, &w.pp("conv_shortcut"), cin, cout, 1, ConvSpec::same(0, Act::None), dtype)?) } else { None },
        })
    }

    /// `x (B, H, W, cin)`; `temb_silu (B, T)`: SiLU of the time embedding (U-Net only).
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor, temb_silu: Option<&Tensor>) -> Result<Tensor> {
        let h = self.norm1.forward(enc, x, true)?;
        let mut h = self.conv1.forward(enc, &h)?;
        if let (Some(p), Some(t)) = (&self.time_emb_proj, temb_silu) {
            let t = p.forward(enc, t)?;
            h = add_per_sample(enc, &h, &t)?;
        }
        let h = self.norm2.forward(enc, &h, true)?;
        let h = self.conv2.forward(enc, &h)?;
        match &self.conv_shortcut {
            Some(c) => {
                let s = c.forward(enc, x)?;
                add(enc, &s, &h)
            }
            None => add(enc, x, &h),
        }
    }
}

/// diffusers' Attention: projections of the query from `x` and of keys and values from the
/// context (or `x`), multi-head scaled dot-product attention, and the output projection.
#[derive(Debug)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    /// `names`: the four projections' names (`to_q`, `to_k`, `to_v`, `to_out.0`, or the VAE's
    /// older `query`, `key`, `value`, `proj_attn`); `qkv_bias`: whether q, k and v have biases.
    #[allow(clippy::too_many_arguments)]
    pub fn load(gpu: &Gpu, w: &Weights, names: [&str; 4], dim: usize, context: usize, heads: usize, qkv_bias: bool, dtype: DType) -> Result<Self> {
        if heads == 0 || dim % heads != 0 {
            return Err(Error::Invalid(format!("{}: width {dim} does not split into {heads} heads", w.key(names[0]))));
        }
        Ok(Attention {
            to_q: Linear::load(gpu, &w.pp(names[0]), dim, dim, qkv_bias, dtype)?,
            to_k: Linear::load(gpu, &w.pp(names[1]), dim, context, qkv_bias, dtype)?,
            to_v: Linear::load(gpu, &w.pp(names[2]), dim, context, qkv_bias, dtype)?,
            to_out: Linear::load(gpu, &w.pp(names[3]), dim, dim, true, dtype)?,
            heads,
        })
    }

    /// `x (B, L, dim)`, `context (B, S, context)` (None: self-attention) -> `(B, L, dim)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(enc, x)?;
        let k = self.to_k.forward(enc, ctx)?;
        let v = self.to_v.forward(enc, ctx)?;
        let a = attention(enc, &q, &k, &v, self.heads, false)?;
        self.to_out.forward(enc, &a)
    }
}
