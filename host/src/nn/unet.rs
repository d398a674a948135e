//! Stable Diffusion v1's denoiser: diffusers' UNet2DConditionModel with the SD v1 block types
//! (CrossAttnDownBlock2D x3 + DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D +
//! CrossAttnUpBlock2D x3), any widths, layer counts, head counts and norm groups, from its
//! config.json. Activations are NHWC; the time embedding is added per sample.
//!
//! Facts checked against diffusers: `attention_head_dim` in SD v1 configs is the number of
//! heads; ResNet GroupNorms use `norm_eps` (1e-5) but the transformer's GroupNorm uses 1e-6;
//! proj_in/proj_out are 1x1 convolutions (`use_linear_projection: false`).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::gpu::{DType, Encoder, Gpu, Tensor};
use crate::nn::config::Json;
use crate::nn::layers::{Attention, AttentionConfig, Conv, GroupNorm, LayerNorm, Linear, ResnetBlock, ResnetConfig};
use crate::nn::{record, Loader, Trace, Weights};
use crate::ops::conv2d::ConvSpec;
use crate::ops::Act;
use crate::ops::elementwise::{add, geglu, unary, Unary};
use crate::ops::resample::{concat, upsample2x};
use crate::ops::timestep::timestep_embedding;

/// The sizes of a UNet2DConditionModel.
#[derive(Debug, Clone, PartialEq)]
pub struct UnetConfig {
    /// Latent channels in.
    pub in_channels: usize,
    /// Channels out (the noise prediction).
    pub out_channels: usize,
    /// Width of each resolution level.
    pub block_out_channels: Vec<usize>,
    /// ResNet (and transformer) layers per down block; up blocks have one more.
    pub layers_per_block: usize,
    /// Width of the text conditioning.
    pub cross_attention_dim: usize,
    /// Attention heads per level.
    pub heads: Vec<usize>,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm epsilon of the ResNet blocks and the output norm.
    pub norm_eps: f32,
    /// Timestep embedding: cos first.
    pub flip_sin_to_cos: bool,
    /// Timestep embedding: frequency shift.
    pub freq_shift: f32,
}

impl UnetConfig {
    /// Stable Diffusion v1.x's U-Net.
    pub fn sd_v1() -> Self {
        UnetConfig {
            in_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: 2,
            cross_attention_dim: 768,
            heads: vec![8; 4],
            norm_num_groups: 32,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
        }
    }

    /// Reads a diffusers config.json (absent keys: SD v1's values); refuses block types
    /// other than SD v1's.
    pub fn from_file(path: &Path) -> Result<Self> {
        let j = Json::read(path)?;
        let d = Self::default();
        let blocks = j.uints("block_out_channels", 2..=8, 1..=8192)?;
        let n = blocks.len();
        if n < 2 {
            return Err(j.bad(format!("block_out_channels {blocks:?}: at least two levels expected")));
        }
        let down: Vec<String> = (0..n).map(|i| if i + 1 < n { "CrossAttnDownBlock2D" } else { "DownBlock2D" }.to_string()).collect();
        let up: Vec<String> = (0..n).map(|i| if i == 0 { "UpBlock2D" } else { "CrossAttnUpBlock2D" }.to_string()).collect();
        if let Some(d) = j.strings("down_block_types").filter(|d| *d != down) {
            return Err(j.bad(format!("down_block_types {d:?} are not SD v1's {down:?}")));
        }
        if let Some(u) = j.strings("up_block_types").filter(|u| *u != up) {
            return Err(j.bad(format!("up_block_types {u:?} are not SD v1's {up:?}")));
        }
        if j.flag("use_linear_projection", false) {
            return Err(j.bad("use_linear_projection is true (SD v2); SD v1 U-Nets use 1x1 convolutions"));
        }
        // diffusers: num_attention_heads defaults to attention_head_dim, which SD v1 configs
        // (mis)use for the head count.
        let heads_key = if j.v.get("num_attention_heads").is_some_and(|x| !x.is_null()) { "num_attention_heads" } else { "attention_head_dim" };
        let heads_v = j.v.get(heads_key).cloned().unwrap_or(Value::from(8));
        let heads = match heads_v {
            x @ Value::Number(_) => vec![j.in_range(heads_key, &x, &(1..=256))?; n],
            Value::Array(a) if a.len() == n => a.iter().enumerate().map(|(i, x)| j.in_range(&format!("{heads_key}[{i}]"), x, &(1..=256))).collect::<Result<_>>()?,
            other => return Err(j.bad(format!("attention heads {other} do not match {n} levels"))),
        };
        let norm_num_groups = j.uint("norm_num_groups", d.norm_num_groups, 1..=1024)?;
        j.divides("norm_num_groups", norm_num_groups, "block_out_channels", &blocks)?;
        for (h, c) in heads.iter().zip(&blocks) {
            j.divides(heads_key, *h, "block_out_channels", &[*c])?;
        }
        Ok(UnetConfig {
            in_channels: j.uint("in_channels", d.in_channels, 1..=64)?,
            out_channels: j.uint("out_channels", d.out_channels, 1..=64)?,
            block_out_channels: blocks,
            layers_per_block: j.uint("layers_per_block", d.layers_per_block, 1..=16)?,
            cross_attention_dim: j.uint("cross_attention_dim", d.cross_attention_dim, 1..=8192)?,
            heads,
            norm_num_groups,
            norm_eps: j.float("norm_eps", d.norm_eps.into(), 1e-12..=1.0)?,
            flip_sin_to_cos: j.flag("flip_sin_to_cos", d.flip_sin_to_cos),
            freq_shift: j.float("freq_shift", d.freq_shift.into(), -1e4..=1e4)?,
        })
    }

    /// The ResNet blocks' sizes: `cin` to `cout` with the time embedding and the norms.
    fn resnet(&self, cin: usize, cout: usize) -> ResnetConfig {
        ResnetConfig { cin, cout, temb: Some(4 * self.block_out_channels[0]), groups: self.norm_num_groups, eps: self.norm_eps }
    }
}

impl Default for UnetConfig {
    /// SD v1's.
    fn default() -> Self {
        Self::sd_v1()
    }
}

/// The sizes of a [`Transformer`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct TransformerConfig {
    /// Its width.
    channels: usize,
    /// Attention heads.
    heads: usize,
    /// Width of the text conditioning.
    context: usize,
    /// GroupNorm groups of its input norm.
    groups: usize,
}

/// Transformer2DModel with one BasicTransformerBlock: GroupNorm, 1x1 conv in, self-attention,
/// cross-attention, GEGLU feed-forward (each pre-LayerNorm and residual), 1x1 conv out, residual.
#[derive(Debug)]
struct Transformer {
    norm: GroupNorm,
    proj_in: Linear,
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    proj_out: Linear,
}

impl Transformer {
    fn load(w: &Loader<'_>, cfg: TransformerConfig) -> Result<Self> {
        let TransformerConfig { channels: c, heads, context, groups } = cfg;
        let b = w.pp("transformer_blocks.0");
        if w.contains("transformer_blocks.1.norm1.weight") {
            return Err(Error::Invalid(format!("{}: more than one transformer block per layer is not supported (SD v1 has one)", w.key("transformer_blocks"))));
        }
        Ok(Transformer {
            norm: GroupNorm::load(&w.pp("norm"), c, groups, 1e-6)?,
            proj_in: Linear::load(&w.pp("proj_in"), c, c, true)?,
            norm1: LayerNorm::load(&b.pp("norm1"), c, 1e-5)?,
            attn1: Attention::load(&b.pp("attn1"), AttentionConfig { dim: c, context: c, heads, ..Default::default() })?,
            norm2: LayerNorm::load(&b.pp("norm2"), c, 1e-5)?,
            attn2: Attention::load(&b.pp("attn2"), AttentionConfig { dim: c, context, heads, ..Default::default() })?,
            norm3: LayerNorm::load(&b.pp("norm3"), c, 1e-5)?,
            ff_in: Linear::load(&b.pp("ff.net.0.proj"), 8 * c, c, true)?,
            ff_out: Linear::load(&b.pp("ff.net.2"), c, 4 * c, true)?,
            proj_out: Linear::load(&w.pp("proj_out"), c, c, true)?,
        })
    }

    /// `x (B, H, W, C)`, `context (B, S, D)`.
    fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let [b, h, w, c] = x.shape[..] else { return Err(Error::Shape(format!("transformer input {:?} is not NHWC", x.shape))) };
        // Each intermediate is dropped at its last use (see ResnetBlock::forward).
        let n = self.norm.forward(enc, x, false)?.reshape(&[b, h * w, c])?;
        let mut t = self.proj_in.forward(enc, &n)?;
        drop(n);
        let a = {
            let n = self.norm1.forward(enc, &t)?;
            self.attn1.forward(enc, &n, None)?
        };
        t = add(enc, &t, &a)?;
        drop(a);
        let a = {
            let n = self.norm2.forward(enc, &t)?;
            self.attn2.forward(enc, &n, Some(context))?
        };
        t = add(enc, &t, &a)?;
        drop(a);
        let f = {
            let n = self.norm3.forward(enc, &t)?;
            let p = self.ff_in.forward(enc, &n)?;
            drop(n);
            let g = geglu(enc, &p)?;
            drop(p);
            self.ff_out.forward(enc, &g)?
        };
        t = add(enc, &t, &f)?;
        drop(f);
        let o = self.proj_out.forward(enc, &t)?.reshape(&[b, h, w, c])?;
        drop(t);
        add(enc, &o, x)
    }
}

/// One level of the down or up path.
#[derive(Debug)]
struct Level {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer>,
    /// Downsample (conv stride 2) or upsample (nearest 2x, then conv).
    resample: Option<Conv>,
}

/// The U-Net on the GPU.
#[derive(Debug)]
pub struct Unet {
    /// Its sizes.
    pub config: UnetConfig,
    conv_in: Conv,
    linear_1: Linear,
    linear_2: Linear,
    down: Vec<Level>,
    mid_resnets: [ResnetBlock; 2],
    mid_attention: Transformer,
    up: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv,
}

impl Unet {
    /// Loads `config.json` and the weights from a diffusers `unet/` folder.
    pub fn load(gpu: &Gpu, dir: &Path, dtype: DType) -> Result<Self> {
        let config = UnetConfig::from_file(&dir.join("config.json"))?;
        let w = Weights::open(&[super::model_file(dir)?])?;
        Self::from_weights(&Loader::new(gpu, &w, dtype), config)
    }

    /// Builds the U-Net from weights with diffusers' names under `w`.
    pub fn from_weights(w: &Loader<'_>, cfg: UnetConfig) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let (n, layers) = (ch.len(), cfg.layers_per_block);
        let temb = 4 * ch[0];
        let attn = |c: usize, heads: usize| TransformerConfig { channels: c, heads, context: cfg.cross_attention_dim, groups: cfg.norm_num_groups };
        let mut down = Vec::new();
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let b = w.pp(format!("down_blocks.{i}"));
            let mut level = Level { resnets: Vec::new(), attentions: Vec::new(), resample: None };
            for j in 0..layers {
                let c_in = if j == 0 { cin } else { cout };
                level.resnets.push(ResnetBlock::load(&b.pp(format!("resnets.{j}")), cfg.resnet(c_in, cout))?);
                if i + 1 < n {
                    level.attentions.push(Transformer::load(&b.pp(format!("attentions.{j}")), attn(cout, cfg.heads[i]))?);
                }
            }
            if i + 1 < n {
                level.resample = Some(Conv::load(&b.pp("downsamplers.0.conv"), cout, cout, 3, ConvSpec { stride: 2, pad_y: (1, 1), pad_x: (1, 1), act: Act::None })?);
            }
            down.push(level);
            cin = cout;
        }
        let c_mid = ch[n - 1];
        let m = w.pp("mid_block");
        let mid_resnets = [
            ResnetBlock::load(&m.pp("resnets.0"), cfg.resnet(c_mid, c_mid))?,
            ResnetBlock::load(&m.pp("resnets.1"), cfg.resnet(c_mid, c_mid))?,
        ];
        let mid_attention = Transformer::load(&m.pp("attentions.0"), attn(c_mid, cfg.heads[n - 1]))?;
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut up = Vec::new();
        let mut prev = rev[0];
        for i in 0..n {
            let cout = rev[i];
            let cskip_in = rev[(i + 1).min(n - 1)];
            let b = w.pp(format!("up_blocks.{i}"));
            let mut level = Level { resnets: Vec::new(), attentions: Vec::new(), resample: None };
            for j in 0..=layers {
                let skip = if j == layers { cskip_in } else { cout };
                let c_in = if j == 0 { prev } else { cout };
                level.resnets.push(ResnetBlock::load(&b.pp(format!("resnets.{j}")), cfg.resnet(c_in + skip, cout))?);
                if i > 0 {
                    level.attentions.push(Transformer::load(&b.pp(format!("attentions.{j}")), attn(cout, cfg.heads[n - 1 - i]))?);
                }
            }
            if i + 1 < n {
                level.resample = Some(Conv::same3(&b.pp("upsamplers.0.conv"), cout, cout)?);
            }
            up.push(level);
            prev = cout;
        }
        Ok(Unet {
            conv_in: Conv::same3(&w.pp("conv_in"), cfg.in_channels, ch[0])?,
            linear_1: Linear::load(&w.pp("time_embedding.linear_1"), temb, ch[0], true)?,
            linear_2: Linear::load(&w.pp("time_embedding.linear_2"), temb, temb, true)?,
            down,
            mid_resnets,
            mid_attention,
            up,
            conv_norm_out: GroupNorm::load(&w.pp("conv_norm_out"), ch[0], cfg.norm_num_groups, cfg.norm_eps)?,
            conv_out: Conv::same3(&w.pp("conv_out"), ch[0], cfg.out_channels)?,
            config: cfg,
        })
    }

    /// The noise prediction: `sample (B, h, w, in)`, `timesteps` one per sample, `context
    /// (B, S, cross_attention_dim)` -> `(B, h, w, out)`. h and w must be multiples of
    /// 2^(levels - 1).
    pub fn forward(&self, enc: &mut Encoder<'_>, sample: &Tensor, timesteps: &[f32], context: &Tensor, mut trace: Option<&mut Trace>) -> Result<Tensor> {
        let cfg = &self.config;
        let [b, h, w, c] = sample.shape[..] else { return Err(Error::Shape(format!("unet: sample {:?} is not (B, h, w, C)", sample.shape))) };
        let f = 1usize << (cfg.block_out_channels.len() - 1);
        if c != cfg.in_channels || h % f != 0 || w % f != 0 || timesteps.len() != b {
            return Err(Error::Shape(format!(
                "unet: sample {:?} with {} timesteps; expected {} channels, height and width multiples of {f}, one timestep per sample",
                sample.shape,
                timesteps.len(),
                cfg.in_channels
            )));
        }
        if context.shape.len() != 3 || context.shape[0] != b || context.shape[2] != cfg.cross_attention_dim {
            return Err(Error::Shape(format!("unet: context {:?} must be (B={b}, S, {})", context.shape, cfg.cross_attention_dim)));
        }
        let t = Tensor::from_f32(enc.gpu(), &[b], timesteps)?;
        let t = timestep_embedding(enc, &t, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift)?;
        let t = self.linear_1.forward(enc, &t)?;
        let t = unary(enc, &t, Unary::Silu)?;
        let temb = self.linear_2.forward(enc, &t)?;
        record(&mut trace, "time_embedding", &temb);
        let temb = unary(enc, &temb, Unary::Silu)?;
        let temb = Some(&temb);

        let mut x = self.conv_in.forward(enc, sample)?;
        record(&mut trace, "conv_in", &x);
        let mut skips = vec![x.clone()];
        for (i, level) in self.down.iter().enumerate() {
            for (j, r) in level.resnets.iter().enumerate() {
                x = r.forward(enc, &x, temb)?;
                if let Some(a) = level.attentions.get(j) {
                    x = a.forward(enc, &x, context)?;
                }
                skips.push(x.clone());
            }
            if let Some(d) = &level.resample {
                x = d.forward(enc, &x)?;
                skips.push(x.clone());
            }
            record(&mut trace, format!("down_blocks.{i}"), &x);
        }
        x = self.mid_resnets[0].forward(enc, &x, temb)?;
        x = self.mid_attention.forward(enc, &x, context)?;
        x = self.mid_resnets[1].forward(enc, &x, temb)?;
        record(&mut trace, "mid_block", &x);
        for (i, level) in self.up.iter().enumerate() {
            for (j, r) in level.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| Error::Invalid("unet: skip connections exhausted".into()))?;
                x = concat(enc, &x, &skip)?;
                x = r.forward(enc, &x, temb)?;
                if let Some(a) = level.attentions.get(j) {
                    x = a.forward(enc, &x, context)?;
                }
            }
            if let Some(u) = &level.resample {
                x = upsample2x(enc, &x)?;
                x = u.forward(enc, &x)?;
            }
            record(&mut trace, format!("up_blocks.{i}"), &x);
        }
        x = self.conv_norm_out.forward(enc, &x, true)?; // the last block's output dropped here
        self.conv_out.forward(enc, &x)
    }
}
