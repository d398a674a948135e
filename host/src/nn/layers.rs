//! Layers shared by the models, loaded from weights under a prefix (candle style): linear,
//! normalisations, convolutions, ResNet blocks and multi-head attention.

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Tensor};
use crate::nn::Loader;
use crate::ops::attention::attention;
use crate::ops::conv2d::{conv2d, conv2d_add, ConvSpec, ConvWeight};
use crate::ops::winograd::{conv3x3, WinogradWeight};
use crate::ops::Act;
use crate::ops::elementwise::add_per_sample;
use crate::ops::linear::linear;
use crate::ops::norm::{group_norm, layer_norm};

/// `y = x W^T (+ b)` over the last dimension.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight (out, inp)` (or a 1x1 convolution's `(out, inp, 1, 1)`, which is the same
    /// map) and, when `bias`, `bias (out)`.
    pub fn load(w: &Loader<'_>, out: usize, inp: usize, bias: bool) -> Result<Self> {
        let weight = w.get_as(&[&[out, inp], &[out, inp, 1, 1]], "weight")?;
        let bias = if bias { Some(w.get_f32(&[out], "bias")?) } else { None };
        Ok(Linear { weight, bias })
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
    pub fn load(w: &Loader<'_>, c: usize) -> Result<Self> {
        Ok(Affine { weight: w.get_f32(&[c], "weight")?, bias: w.get_f32(&[c], "bias")? })
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
    pub fn load(w: &Loader<'_>, c: usize, groups: usize, eps: f32) -> Result<Self> {
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(Error::Invalid(format!("{}: {c} channels do not split into {groups} norm groups", w.key("weight"))));
        }
        Ok(GroupNorm { affine: Affine::load(w, c)?, groups, eps })
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
    pub fn load(w: &Loader<'_>, c: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm { affine: Affine::load(w, c)?, eps })
    }

    /// `x (.., C)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        layer_norm(enc, x, &self.affine.weight, &self.affine.bias, self.eps)
    }
}

/// A 2D convolution with bias (NHWC activations): direct (`ops::conv2d`), or for 3x3 stride-1
/// convolutions that the loader asks for ([`Loader::with_winograd`]) Winograd F(2x2, 3x3)
/// (`ops::winograd`, its transformed weights stored in the loader's dtype: with f16 they are
/// rounded after the transform: see `WinogradWeight::from_torch_as`).
#[derive(Debug)]
pub struct Conv {
    weight: ConvKind,
    spec: ConvSpec,
}

#[derive(Debug)]
enum ConvKind {
    Direct(ConvWeight),
    Winograd(WinogradWeight),
}

impl Conv {
    /// Loads `weight (cout, cin, k, k)` and `bias (cout)`; `spec` says stride and padding.
    /// The weight goes through the host as f32 for the kernels' layout (exact from f16:
    /// an f16 file gives the same f16 bits on the GPU).
    pub fn load(w: &Loader<'_>, cin: usize, cout: usize, k: usize, spec: ConvSpec) -> Result<Self> {
        let shape = [cout, cin, k, k];
        let weight = w.host(&shape, "weight")?;
        let bias = w.host(&[cout], "bias")?;
        let same3 = k == 3 && spec.stride == 1 && spec.pad_y == (1, 1) && spec.pad_x == (1, 1);
        let winograd = same3 && cin.is_multiple_of(4) && cout.is_multiple_of(4) && w.winograd().is_some_and(|min| cin >= min);
        let weight = if winograd {
            ConvKind::Winograd(WinogradWeight::from_torch_as(w.gpu(), &weight, shape, Some(&bias), w.dtype())?)
        } else {
            ConvKind::Direct(ConvWeight::from_torch(w.gpu(), &weight, shape, Some(&bias), w.dtype())?)
        };
        Ok(Conv { weight, spec })
    }

    /// Whether it runs by Winograd F(2x2, 3x3).
    pub fn is_winograd(&self) -> bool {
        matches!(self.weight, ConvKind::Winograd(_))
    }

    /// A 3x3 convolution, stride 1, padding 1.
    pub fn same3(w: &Loader<'_>, cin: usize, cout: usize) -> Result<Self> {
        Self::load(w, cin, cout, 3, ConvSpec::same(1, Act::None))
    }

    /// `x (B, H, W, cin) -> (B, H', W', cout)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            ConvKind::Direct(wt) => conv2d(enc, x, wt, self.spec),
            ConvKind::Winograd(wt) => conv3x3(enc, x, wt, self.spec.act, None),
        }
    }

    /// `act(conv(x) + residual)` in one pass, `residual` of the output's shape (a ResNet
    /// block's skip connection; the same f32 sums as a conv then an add, so the same bits).
    pub fn forward_add(&self, enc: &mut Encoder<'_>, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match &self.weight {
            ConvKind::Direct(wt) => conv2d_add(enc, x, wt, self.spec, residual),
            ConvKind::Winograd(wt) => conv3x3(enc, x, wt, self.spec.act, Some(residual)),
        }
    }
}

/// The sizes of a [`ResnetBlock`]; the default is SD's GroupNorm (32 groups, eps 1e-5) with
/// no time embedding, widths to be set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResnetConfig {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// The width of the time embedding (U-Net), or None (VAE).
    pub temb: Option<usize>,
    /// GroupNorm groups.
    pub groups: usize,
    /// GroupNorm epsilon.
    pub eps: f32,
}

impl Default for ResnetConfig {
    fn default() -> Self {
        ResnetConfig { cin: 0, cout: 0, temb: None, groups: 32, eps: 1e-5 }
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
    /// Loads `norm1`, `conv1`, (`time_emb_proj`), `norm2`, `conv2` (and `conv_shortcut`).
    pub fn load(w: &Loader<'_>, cfg: ResnetConfig) -> Result<Self> {
        let ResnetConfig { cin, cout, temb, groups, eps } = cfg;
        Ok(ResnetBlock {
            norm1: GroupNorm::load(&w.pp("norm1"), cin, groups, eps)?,
            conv1: Conv::same3(&w.pp("conv1"), cin, cout)?,
            time_emb_proj: temb.map(|t| Linear::load(&w.pp("time_emb_proj"), cout, t, true)).transpose()?,
            norm2: GroupNorm::load(&w.pp("norm2"), cout, groups, eps)?,
            conv2: Conv::same3(&w.pp("conv2"), cout, cout)?,
            conv_shortcut: if cin != cout { Some(Conv::load(&w.pp("conv_shortcut"), cin, cout, 1, ConvSpec::same(0, Act::None))?) } else { None },
        })
    }

    /// Its convolutions.
    pub fn convs(&self) -> Vec<&Conv> {
        [Some(&self.conv1), Some(&self.conv2), self.conv_shortcut.as_ref()].into_iter().flatten().collect()
    }

    /// `x (B, H, W, cin)`; `temb_silu (B, T)`: SiLU of the time embedding (U-Net only).
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor, temb_silu: Option<&Tensor>) -> Result<Tensor> {
        // Each intermediate is dropped at its last use, so that an automatic submit within
        // the block can free it (a shadowed binding would live to the end of the block).
        let n = self.norm1.forward(enc, x, true)?;
        let mut h = self.conv1.forward(enc, &n)?;
        drop(n);
        if let (Some(p), Some(t)) = (&self.time_emb_proj, temb_silu) {
            let t = p.forward(enc, t)?;
            h = add_per_sample(enc, &h, &t)?;
        }
        let n = self.norm2.forward(enc, &h, true)?;
        drop(h);
        // conv2 adds the skip connection as it stores its output (no separate add).
        match &self.conv_shortcut {
            Some(c) => {
                let s = c.forward(enc, x)?;
                self.conv2.forward_add(enc, &n, &s)
            }
            None => self.conv2.forward_add(enc, &n, x),
        }
    }
}

/// The sizes of an [`Attention`]; the default names are diffusers' current ones, with one
/// head and no q/k/v biases, widths to be set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionConfig {
    /// The four projections' names: `to_q`, `to_k`, `to_v`, `to_out.0`, or the VAE's older
    /// `query`, `key`, `value`, `proj_attn`.
    pub names: [&'static str; 4],
    /// Width of the queries and the output.
    pub dim: usize,
    /// Width of the context keys and values are projected from.
    pub context: usize,
    /// Attention heads.
    pub heads: usize,
    /// Whether q, k and v have biases.
    pub qkv_bias: bool,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        AttentionConfig { names: ["to_q", "to_k", "to_v", "to_out.0"], dim: 0, context: 0, heads: 1, qkv_bias: false }
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
    /// Loads the four projections (the output one always has a bias).
    pub fn load(w: &Loader<'_>, cfg: AttentionConfig) -> Result<Self> {
        let AttentionConfig { names, dim, context, heads, qkv_bias } = cfg;
        if heads == 0 || dim % heads != 0 {
            return Err(Error::Invalid(format!("{}: width {dim} does not split into {heads} heads", w.key(names[0]))));
        }
        Ok(Attention {
            to_q: Linear::load(&w.pp(names[0]), dim, dim, qkv_bias)?,
            to_k: Linear::load(&w.pp(names[1]), dim, context, qkv_bias)?,
            to_v: Linear::load(&w.pp(names[2]), dim, context, qkv_bias)?,
            to_out: Linear::load(&w.pp(names[3]), dim, dim, true)?,
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
        drop((q, k, v));
        self.to_out.forward(enc, &a)
    }
}
