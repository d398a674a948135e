//! Stable Diffusion v1's VAE: diffusers' AutoencoderKL from its config.json. The encoder maps
//! an image in [-1, 1] to the mean and log-variance of the latent (before the 0.18215
//! scaling); the decoder maps an (unscaled) latent back to an image in [-1, 1]. All GroupNorms
//! use eps 1e-6; the encoder's downsamplers pad right and bottom by one and convolve with
//! stride 2 and no padding. The mid-block attention loads from either naming scheme
//! (`to_q/to_k/to_v/to_out.0` or the older `query/key/value/proj_attn`), with linear or 1x1
//! convolution weights.

use std::path::Path;

use crate::error::{Error, Result};
use crate::gpu::{AdapterKind, DType, Encoder, Gpu, Tensor};
use crate::nn::config::Json;
use crate::nn::layers::{Attention, AttentionConfig, Conv, GroupNorm, ResnetBlock, ResnetConfig};
use crate::nn::{record, Loader, Trace, Weights};
use crate::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
use crate::ops::Act;
use crate::ops::elementwise::add;
use crate::ops::resample::upsample2x;

const EPS: f32 = 1e-6;

/// On CPU adapters, the VAE's 3x3 stride-1 convolutions with at least this many input channels
/// run by Winograd F(2x2, 3x3): measured on lavapipe (Mesa 25, AMD EPYC, BENCHMARKS.md) 1.3-1.6x
/// faster than the direct kernel from 320 channels up, about even at 256, slower at 128.
pub const WINOGRAD_MIN_CIN: usize = 320;

/// The sizes of an AutoencoderKL.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Output image channels.
    pub out_channels: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// Width of each level.
    pub block_out_channels: Vec<usize>,
    /// ResNet blocks per encoder level (decoder levels have one more).
    pub layers_per_block: usize,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// Latents are multiplied by this after encoding (SD v1: 0.18215).
    pub scaling_factor: f32,
}

impl VaeConfig {
    /// SD v1's VAE.
    pub fn sd_v1() -> Self {
        VaeConfig { in_channels: 3, out_channels: 3, latent_channels: 4, block_out_channels: vec![128, 256, 512, 512], layers_per_block: 2, norm_num_groups: 32, scaling_factor: 0.18215 }
    }

    /// Reads a diffusers config.json (absent keys: SD v1's values).
    pub fn from_file(path: &Path) -> Result<Self> {
        let j = Json::read(path)?;
        let d = Self::default();
        let blocks = j.uints("block_out_channels", 1..=8, 1..=8192)?;
        let norm_num_groups = j.uint("norm_num_groups", d.norm_num_groups, 1..=1024)?;
        j.divides("norm_num_groups", norm_num_groups, "block_out_channels", &blocks)?;
        for (k, want) in [("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")] {
            if let Some(a) = j.strings(k) {
                if a.len() != blocks.len() || a.iter().any(|s| s != want) {
                    return Err(j.bad(format!("`{k}` must be {} x {want}", blocks.len())));
                }
            }
        }
        Ok(VaeConfig {
            in_channels: j.uint("in_channels", d.in_channels, 1..=64)?,
            out_channels: j.uint("out_channels", d.out_channels, 1..=64)?,
            latent_channels: j.uint("latent_channels", d.latent_channels, 1..=64)?,
            block_out_channels: blocks,
            layers_per_block: j.uint("layers_per_block", d.layers_per_block, 1..=16)?,
            norm_num_groups,
            scaling_factor: j.float("scaling_factor", d.scaling_factor.into(), 1e-6..=1e6)?,
        })
    }

    /// The ResNet blocks' sizes: `cin` to `cout`, no time embedding, eps 1e-6.
    fn resnet(&self, cin: usize, cout: usize) -> ResnetConfig {
        ResnetConfig { cin, cout, temb: None, groups: self.norm_num_groups, eps: EPS }
    }
}

impl Default for VaeConfig {
    /// SD v1's.
    fn default() -> Self {
        Self::sd_v1()
    }
}

/// The mid block: ResNet, single-head self-attention with GroupNorm and residual, ResNet.
#[derive(Debug)]
struct Mid {
    resnets: [ResnetBlock; 2],
    norm: GroupNorm,
    attention: Attention,
}

impl Mid {
    /// `cfg`: the sizes of its ResNet blocks (`cin == cout`).
    fn load(w: &Loader<'_>, cfg: ResnetConfig) -> Result<Self> {
        let c = cfg.cout;
        let a = w.pp("attentions.0");
        let names = if a.contains("to_q.weight") {
            ["to_q", "to_k", "to_v", "to_out.0"]
        } else if a.contains("query.weight") {
            ["query", "key", "value", "proj_attn"]
        } else {
            return Err(Error::Invalid(format!("neither `{}` nor `{}` found: unknown VAE attention naming", a.key("to_q.weight"), a.key("query.weight"))));
        };
        Ok(Mid {
            resnets: [ResnetBlock::load(&w.pp("resnets.0"), cfg)?, ResnetBlock::load(&w.pp("resnets.1"), cfg)?],
            norm: GroupNorm::load(&a.pp("group_norm"), c, cfg.groups, cfg.eps)?,
            attention: Attention::load(&a, AttentionConfig { names, dim: c, context: c, heads: 1, qkv_bias: true })?,
        })
    }

    fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        let x = self.resnets[0].forward(enc, x, None)?;
        let [b, h, w, c] = x.shape[..] else { unreachable!("conv output is NHWC") };
        let n = self.norm.forward(enc, &x, false)?.reshape(&[b, h * w, c])?;
        let a = self.attention.forward(enc, &n, None)?.reshape(&[b, h, w, c])?;
        let x = add(enc, &a, &x)?;
        self.resnets[1].forward(enc, &x, None)
    }
}

#[derive(Debug)]
struct Level {
    resnets: Vec<ResnetBlock>,
    resample: Option<Conv>,
}

/// The encoder half.
#[derive(Debug)]
pub struct VaeEncoder {
    conv_in: Conv,
    down: Vec<Level>,
    mid: Mid,
    conv_norm_out: GroupNorm,
    conv_out: Conv,
    /// quant_conv split into the rows that give the mean and those that give the log-variance.
    quant_mean: ConvWeight,
    quant_logvar: ConvWeight,
}

/// The decoder half.
#[derive(Debug)]
pub struct VaeDecoder {
    post_quant_conv: Conv,
    conv_in: Conv,
    mid: Mid,
    up: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv,
}

/// AutoencoderKL on the GPU.
#[derive(Debug)]
pub struct Vae {
    /// Its sizes.
    pub config: VaeConfig,
    /// Image -> latent distribution.
    pub encoder: VaeEncoder,
    /// Latent -> image.
    pub decoder: VaeDecoder,
}

impl Vae {
    /// Loads `config.json` and the weights from a diffusers `vae/` folder.
    pub fn load(gpu: &Gpu, dir: &Path, dtype: DType) -> Result<Self> {
        let config = VaeConfig::from_file(&dir.join("config.json"))?;
        let w = Weights::open(&[super::model_file(dir)?])?;
        Self::from_weights(&Loader::new(gpu, &w, dtype), config)
    }

    /// Builds the VAE from weights with diffusers' names under `w` (quant_conv and
    /// post_quant_conv stay f32 whatever its dtype).
    ///
    /// On CPU adapters the 3x3 stride-1 convolutions with at least [`WINOGRAD_MIN_CIN`] input
    /// channels run by Winograd F(2x2, 3x3), unless the loader says otherwise
    /// ([`Loader::with_winograd`]; `Some(usize::MAX)`: none).
    pub fn from_weights(w: &Loader<'_>, cfg: VaeConfig) -> Result<Self> {
        let chosen;
        let w = match w.winograd() {
            Some(_) => w,
            None => {
                chosen = w.with_winograd((w.gpu().kind == AdapterKind::Cpu).then_some(WINOGRAD_MIN_CIN));
                &chosen
            }
        };
        let ch = &cfg.block_out_channels;
        let (n, layers, g, lat) = (ch.len(), cfg.layers_per_block, cfg.norm_num_groups, cfg.latent_channels);
        let e = w.pp("encoder");
        let mut down = Vec::new();
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let b = e.pp(format!("down_blocks.{i}"));
            let resnets = (0..layers).map(|j| ResnetBlock::load(&b.pp(format!("resnets.{j}")), cfg.resnet(if j == 0 { cin } else { cout }, cout))).collect::<Result<_>>()?;
            let resample = if i + 1 < n { Some(Conv::load(&b.pp("downsamplers.0.conv"), cout, cout, 3, ConvSpec { stride: 2, pad_y: (0, 1), pad_x: (0, 1), act: Act::None })?) } else { None };
            down.push(Level { resnets, resample });
            cin = cout;
        }
        let c_top = ch[n - 1];
        let q = w.pp("quant_conv");
        let (qw, qb) = (q.host(&[2 * lat, 2 * lat, 1, 1], "weight")?, q.host(&[2 * lat], "bias")?);
        let half = lat * 2 * lat;
        let encoder = VaeEncoder {
            conv_in: Conv::same3(&e.pp("conv_in"), cfg.in_channels, ch[0])?,
            down,
            mid: Mid::load(&e.pp("mid_block"), cfg.resnet(c_top, c_top))?,
            conv_norm_out: GroupNorm::load(&e.pp("conv_norm_out"), c_top, g, EPS)?,
            conv_out: Conv::same3(&e.pp("conv_out"), c_top, 2 * lat)?,
            quant_mean: ConvWeight::from_torch(w.gpu(), &qw[..half], [lat, 2 * lat, 1, 1], Some(&qb[..lat]), DType::F32)?,
            quant_logvar: ConvWeight::from_torch(w.gpu(), &qw[half..], [lat, 2 * lat, 1, 1], Some(&qb[lat..]), DType::F32)?,
        };
        let d = w.pp("decoder");
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut up = Vec::new();
        let mut prev = rev[0];
        for (i, &cout) in rev.iter().enumerate() {
            let b = d.pp(format!("up_blocks.{i}"));
            let resnets = (0..=layers).map(|j| ResnetBlock::load(&b.pp(format!("resnets.{j}")), cfg.resnet(if j == 0 { prev } else { cout }, cout))).collect::<Result<_>>()?;
            let resample = if i + 1 < n { Some(Conv::same3(&b.pp("upsamplers.0.conv"), cout, cout)?) } else { None };
            up.push(Level { resnets, resample });
            prev = cout;
        }
        let decoder = VaeDecoder {
            post_quant_conv: Conv::load(&w.pp("post_quant_conv").with_dtype(DType::F32), lat, lat, 1, ConvSpec::same(0, Act::None))?,
            conv_in: Conv::same3(&d.pp("conv_in"), lat, c_top)?,
            mid: Mid::load(&d.pp("mid_block"), cfg.resnet(c_top, c_top))?,
            up,
            conv_norm_out: GroupNorm::load(&d.pp("conv_norm_out"), ch[0], g, EPS)?,
            conv_out: Conv::same3(&d.pp("conv_out"), ch[0], cfg.out_channels)?,
        };
        Ok(Vae { config: cfg, encoder, decoder })
    }

    /// How many of its convolutions run by Winograd F(2x2, 3x3).
    pub fn winograd_convs(&self) -> usize {
        let (e, d) = (&self.encoder, &self.decoder);
        let mut convs: Vec<&Conv> = vec![&e.conv_in, &e.conv_out, &d.post_quant_conv, &d.conv_in, &d.conv_out];
        for level in e.down.iter().chain(&d.up) {
            convs.extend(level.resnets.iter().flat_map(|r| r.convs()));
            convs.extend(level.resample.as_ref());
        }
        convs.extend(e.mid.resnets.iter().chain(&d.mid.resnets).flat_map(|r| r.convs()));
        convs.iter().filter(|c| c.is_winograd()).count()
    }

    /// `image (B, H, W, 3)` in [-1, 1] (H, W multiples of 2^(levels-1)) -> `(mean, logvar)`,
    /// each `(B, H/8, W/8, latent)` for SD, unscaled.
    pub fn encode(&self, enc: &mut Encoder<'_>, image: &Tensor, mut trace: Option<&mut Trace>) -> Result<(Tensor, Tensor)> {
        let f = 1usize << (self.config.block_out_channels.len() - 1);
        if image.shape.len() != 4 || image.shape[3] != self.config.in_channels || !image.shape[1].is_multiple_of(f) || !image.shape[2].is_multiple_of(f) {
            return Err(Error::Shape(format!("vae encode: image {:?} must be (B, H, W, {}) with H and W multiples of {f}", image.shape, self.config.in_channels)));
        }
        let e = &self.encoder;
        let mut x = e.conv_in.forward(enc, image)?;
        for (i, level) in e.down.iter().enumerate() {
            for r in &level.resnets {
                x = r.forward(enc, &x, None)?;
            }
            if let Some(d) = &level.resample {
                x = d.forward(enc, &x)?;
            }
            record(&mut trace, format!("encoder.down_blocks.{i}"), &x);
        }
        x = e.mid.forward(enc, &x)?;
        record(&mut trace, "encoder.mid_block", &x);
        let x = e.conv_norm_out.forward(enc, &x, true)?;
        let x = e.conv_out.forward(enc, &x)?;
        let one = ConvSpec::same(0, Act::None);
        Ok((conv2d(enc, &x, &e.quant_mean, one)?, conv2d(enc, &x, &e.quant_logvar, one)?))
    }

    /// `latent (B, h, w, latent)`, unscaled (divide SD latents by the scaling factor first)
    /// -> `image (B, h*2^(levels-1), .., out)` in about [-1, 1].
    pub fn decode(&self, enc: &mut Encoder<'_>, latent: &Tensor, mut trace: Option<&mut Trace>) -> Result<Tensor> {
        if latent.shape.len() != 4 || latent.shape[3] != self.config.latent_channels {
            return Err(Error::Shape(format!("vae decode: latent {:?} must be (B, h, w, {})", latent.shape, self.config.latent_channels)));
        }
        let d = &self.decoder;
        let x = d.post_quant_conv.forward(enc, latent)?;
        let x = d.conv_in.forward(enc, &x)?;
        let mut x = d.mid.forward(enc, &x)?;
        record(&mut trace, "decoder.mid_block", &x);
        for (i, level) in d.up.iter().enumerate() {
            for r in &level.resnets {
                x = r.forward(enc, &x, None)?;
            }
            if let Some(u) = &level.resample {
                x = upsample2x(enc, &x)?;
                x = u.forward(enc, &x)?;
            }
            record(&mut trace, format!("decoder.up_blocks.{i}"), &x);
        }
        x = d.conv_norm_out.forward(enc, &x, true)?; // the block's output dropped here, not at the end
        d.conv_out.forward(enc, &x)
    }
}
