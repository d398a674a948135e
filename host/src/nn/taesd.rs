//! TAESD, the tiny autoencoder for Stable Diffusion v1 latents (madebyollin/taesd, MIT).
//! Encoder: image in [0, 1] (B, H, W, 3) -> latent (B, H/8, W/8, 4) on the scale of SD's
//! latents times 0.18215. Decoder: the reverse, starting with `tanh(z / 3) * 3`.
//! Weight keys are the indices of the original `nn.Sequential`s (`3.conv.0.weight`, ...).

use crate::io::image::Rgb;
use crate::io::npy;
use crate::error::{Error, Result};
use crate::gpu::{DType, Encoder, Gpu, Tensor};
use crate::nn::{Loader, Weights};
use crate::progress::Progress;
use crate::nn::tape::{Node, Tape};
use crate::ops::conv2d::{conv2d, conv2d_add, ConvSpec, ConvWeight};
use crate::ops::grad::conv_back_weight;
use crate::ops::elementwise::{unary, Unary};
#[cfg(any(test, feature = "reference"))]
use crate::ops::reference::{conv2d_ref, unary_ref, upsample2x_ref};
use crate::ops::resample::upsample2x;
use crate::ops::winograd::{conv3x3, WinogradWeight};
use crate::ops::Act;

/// Latent channels of SD v1.
pub const LATENT_CHANNELS: usize = 4;
/// Images encoded per GPU submission (16 measured no faster per image than 8, BENCHMARKS.md).
pub const BATCH: usize = 8;
/// How the conv weights are kept on the GPU where the caller has no reason to choose: f16
/// (the shipped files are bf16, so nothing is lost but values below f16's normal range; outputs
/// agree with f32 weights to 8e-6). On lavapipe (Mesa 22.3 and 25.0) faster than f32 weights
/// in 25 of 28 measured cases, median 1.10x (BENCHMARKS.md, issue 18).
pub const WEIGHTS: DType = DType::F16;
/// Width of every hidden layer.
const C: usize = 64;

/// One layer of the `nn.Sequential`, by its index.
#[derive(Debug, Clone, Copy)]
enum Layer {
    /// 3x3 conv, padding 1; stride; bias; fused ReLU (for `conv` then `nn.ReLU`).
    Conv { cin: usize, cout: usize, stride: usize, bias: bool, relu: bool },
    /// `Block(64, 64)`: conv ReLU conv ReLU conv, plus the input, then ReLU.
    Block,
    /// Nearest 2x.
    Upsample,
    /// `tanh(x / 3) * 3`.
    Clamp,
}

/// `(index in the Sequential, layer)`; indices with no weights (ReLU) are fused or skipped.
fn encoder_layers() -> Vec<(usize, Layer)> {
    use Layer::*;
    let down = |_| Conv { cin: C, cout: C, stride: 2, bias: false, relu: false };
    vec![
        (0, Conv { cin: 3, cout: C, stride: 1, bias: true, relu: false }),
        (1, Block),
        (2, down(())),
        (3, Block),
        (4, Block),
        (5, Block),
        (6, down(())),
        (7, Block),
        (8, Block),
        (9, Block),
        (10, down(())),
        (11, Block),
        (12, Block),
        (13, Block),
        (14, Conv { cin: C, cout: LATENT_CHANNELS, stride: 1, bias: true, relu: false }),
    ]
}

fn decoder_layers() -> Vec<(usize, Layer)> {
    use Layer::*;
    let up_conv = Conv { cin: C, cout: C, stride: 1, bias: false, relu: false };
    vec![
        (0, Clamp),
        (1, Conv { cin: LATENT_CHANNELS, cout: C, stride: 1, bias: true, relu: true }), // 2 is ReLU
        (3, Block),
        (4, Block),
        (5, Block),
        (6, Upsample),
        (7, up_conv),
        (8, Block),
        (9, Block),
        (10, Block),
        (11, Upsample),
        (12, up_conv),
        (13, Block),
        (14, Block),
        (15, Block),
        (16, Upsample),
        (17, up_conv),
        (18, Block),
        (19, Conv { cin: C, cout: 3, stride: 1, bias: true, relu: false }),
    ]
}

/// A convolution's PyTorch-layout weight, its shape and its bias, on the host.
type HostConv = (Vec<f32>, [usize; 4], Option<Vec<f32>>);

/// The weights of one layer, on the host (for the CPU reference) and on the GPU.
#[derive(Debug)]
struct Loaded {
    layer: Layer,
    /// PyTorch-layout weights and biases of the layer's convs (1 or 3), for the CPU reference
    /// and for the Winograd weights made when Winograd is switched on.
    host: Vec<HostConv>,
    gpu: Vec<ConvWeight>,
    /// Input-gradient weights of the convs (the decoder's only), for `forward_taped`.
    back: Vec<ConvWeight>,
    /// The same convs transformed for Winograd F(2x2, 3x3) where they qualify (stride 1,
    /// Cin and Cout multiples of 4); empty until [`TaesdPart::set_winograd`] makes them.
    wino: Vec<Option<WinogradWeight>>,
}

/// Half of TAESD: the encoder or the decoder.
#[derive(Debug)]
pub struct TaesdPart {
    layers: Vec<Loaded>,
    /// Run the stride-1 convs by Winograd F(2x2, 3x3) (`ops::winograd`) instead of direct
    /// convolution (`ops::conv2d`, the default: on lavapipe the Winograd forward measured
    /// 0.83-0.96x the direct one's speed, BENCHMARKS.md). Set by [`TaesdPart::set_winograd`].
    winograd: bool,
}

impl TaesdPart {
    /// `layers`: the Sequential's layers, by index; `grad`: with input-gradient weights.
    fn load(w: &Loader<'_>, layers: Vec<(usize, Layer)>, grad: bool) -> Result<Self> {
        let mut out = Vec::new();
        for (i, layer) in layers {
            let convs: Vec<(Loader<'_>, usize, usize, bool)> = match layer {
                Layer::Conv { cin, cout, bias, .. } => vec![(w.pp(i), cin, cout, bias)],
                Layer::Block => (0..3).map(|j| (w.pp(i).pp("conv").pp(2 * j), C, C, true)).collect(),
                Layer::Upsample | Layer::Clamp => vec![],
            };
            let mut host = Vec::new();
            let mut dev = Vec::new();
            let mut back = Vec::new();
            for (lw, cin, cout, has_bias) in convs {
                let shape = [cout, cin, 3, 3];
                let weight = lw.host(&shape, "weight")?;
                let bias = if has_bias { Some(lw.host(&[cout], "bias")?) } else { None };
                dev.push(ConvWeight::from_torch(w.gpu(), &weight, shape, bias.as_deref(), w.dtype())?);
                if grad {
                    back.push(conv_back_weight(w.gpu(), &weight, shape, w.dtype())?);
                }
                host.push((weight, shape, bias));
            }
            out.push(Loaded { layer, host, gpu: dev, back, wino: Vec::new() });
        }
        Ok(TaesdPart { layers: out, winograd: false })
    }

    /// Switches the stride-1 convs to Winograd F(2x2, 3x3) (`on`) or back to direct
    /// convolution. The Winograd weights (U = G g G^T, f32) are made on the first switch-on, so
    /// a part that never uses Winograd never builds them.
    pub fn set_winograd(&mut self, gpu: &Gpu, on: bool) -> Result<()> {
        if on {
            for l in self.layers.iter_mut().filter(|l| l.wino.len() != l.host.len()) {
                let stride1 = matches!(l.layer, Layer::Block | Layer::Conv { stride: 1, .. });
                l.wino = l
                    .host
                    .iter()
                    .map(|(weight, shape, bias)| {
                        let fits = stride1 && shape[0].is_multiple_of(4) && shape[1].is_multiple_of(4);
                        fits.then(|| WinogradWeight::from_torch(gpu, weight, *shape, bias.as_deref())).transpose()
                    })
                    .collect::<Result<_>>()?;
            }
        }
        self.winograd = on;
        Ok(())
    }

    /// Whether the stride-1 convs run by Winograd ([`TaesdPart::set_winograd`]).
    pub fn winograd(&self) -> bool {
        self.winograd
    }

    /// Runs the part on the GPU: `x (B, H, W, C) -> (B, H', W', C')`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        // Conv j of layer l with stride 1, the activation and a residual added before it.
        let conv = |enc: &mut Encoder<'_>, l: &Loaded, j: usize, x: &Tensor, act: Act, res: Option<&Tensor>| -> Result<Tensor> {
            match (l.wino.get(j), self.winograd) {
                (Some(Some(wt)), true) => conv3x3(enc, x, wt, act, res),
                _ => match res {
                    None => conv2d(enc, x, &l.gpu[j], ConvSpec::same(1, act)),
                    Some(r) => conv2d_add(enc, x, &l.gpu[j], ConvSpec::same(1, act), r),
                },
            }
        };
        for l in &self.layers {
            x = match l.layer {
                Layer::Conv { stride, relu, .. } => {
                    let act = if relu { Act::Relu } else { Act::None };
                    if stride == 1 {
                        conv(enc, l, 0, &x, act, None)?
                    } else {
                        conv2d(enc, &x, &l.gpu[0], ConvSpec { stride, pad_y: (1, 1), pad_x: (1, 1), act })?
                    }
                }
                Layer::Block => {
                    let h = conv(enc, l, 0, &x, Act::Relu, None)?;
                    let h = conv(enc, l, 1, &h, Act::Relu, None)?;
                    conv(enc, l, 2, &h, Act::Relu, Some(&x))?
                }
                Layer::Upsample => upsample2x(enc, &x)?,
                Layer::Clamp => unary(enc, &x, Unary::TanhClamp(3.0))?,
            };
        }
        Ok(x)
    }

    /// [`TaesdPart::forward`] recorded on `tape` from node `x` (the decoder only: the encoder
    /// has no input-gradient weights).
    pub fn forward_taped<'w>(&'w self, enc: &mut Encoder<'_>, tape: &mut Tape<'w>, x: Node) -> Result<Node> {
        let mut x = x;
        for l in &self.layers {
            let n_convs = l.gpu.len();
            if l.back.len() != n_convs {
                return Err(Error::Invalid("taesd: this part was loaded without input-gradient weights (only the decoder has them)".into()));
            }
            x = match l.layer {
                Layer::Conv { stride, relu, .. } => {
                    let act = if relu { Act::Relu } else { Act::None };
                    tape.conv(enc, x, &l.gpu[0], &l.back[0], ConvSpec { stride, pad_y: (1, 1), pad_x: (1, 1), act })?
                }
                Layer::Block => {
                    let h = tape.conv(enc, x, &l.gpu[0], &l.back[0], ConvSpec::same(1, Act::Relu))?;
                    let h = tape.conv(enc, h, &l.gpu[1], &l.back[1], ConvSpec::same(1, Act::Relu))?;
                    let h = tape.conv(enc, h, &l.gpu[2], &l.back[2], ConvSpec::same(1, Act::None))?;
                    tape.add(enc, h, x, Act::Relu)?
                }
                Layer::Upsample => tape.upsample2x(enc, x)?,
                Layer::Clamp => tape.tanh_clamp(enc, x, 3.0)?,
            };
        }
        Ok(x)
    }

    /// The same computation in plain loops on the CPU (f64 sums), for tests.
    #[cfg(any(test, feature = "reference"))]
    pub fn forward_ref(&self, x: &[f32], shape: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
        let (mut x, mut s) = (x.to_vec(), shape);
        let conv = |x: &[f32], s: [usize; 4], h: &HostConv, spec: ConvSpec| conv2d_ref(x, s, &h.0, h.1, h.2.as_deref(), spec);
        for l in &self.layers {
            (x, s) = match l.layer {
                Layer::Conv { stride, relu, .. } => {
                    let act = if relu { Act::Relu } else { Act::None };
                    conv(&x, s, &l.host[0], ConvSpec { stride, pad_y: (1, 1), pad_x: (1, 1), act })
                }
                Layer::Block => {
                    let (h, hs) = conv(&x, s, &l.host[0], ConvSpec::same(1, Act::Relu));
                    let (h, hs) = conv(&h, hs, &l.host[1], ConvSpec::same(1, Act::Relu));
                    let (h, hs) = conv(&h, hs, &l.host[2], ConvSpec::same(1, Act::None));
                    (h.iter().zip(&x).map(|(a, b)| (a + b).max(0.0)).collect(), hs)
                }
                Layer::Upsample => (upsample2x_ref(&x, s), [s[0], 2 * s[1], 2 * s[2], s[3]]),
                Layer::Clamp => (unary_ref(&x, Unary::TanhClamp(3.0)), s),
            };
        }
        (x, s)
    }
}

/// TAESD's encoder and decoder.
#[derive(Debug)]
pub struct Taesd {
    /// Image -> latent.
    pub encoder: TaesdPart,
    /// Latent -> image.
    pub decoder: TaesdPart,
}

impl Taesd {
    /// Loads `taesd_encoder.safetensors` and `taesd_decoder.safetensors` from `dir`.
    pub fn load(gpu: &Gpu, dir: &std::path::Path, dtype: DType) -> Result<Self> {
        let enc = Weights::open(&[dir.join("taesd_encoder.safetensors")])?;
        let dec = Weights::open(&[dir.join("taesd_decoder.safetensors")])?;
        Ok(Taesd { encoder: TaesdPart::load(&Loader::new(gpu, &enc, dtype), encoder_layers(), false)?, decoder: TaesdPart::load(&Loader::new(gpu, &dec, dtype), decoder_layers(), true)? })
    }

    /// `image (B, H, W, 3)` in [0, 1], H and W multiples of 8 -> `latent (B, H/8, W/8, 4)`.
    pub fn encode(&self, enc: &mut Encoder<'_>, image: &Tensor) -> Result<Tensor> {
        crate::ops::ensure(image.shape.len() == 4 && image.shape[3] == 3 && image.shape[1].is_multiple_of(8) && image.shape[2].is_multiple_of(8), "taesd encode", || {
            format!("image {:?} must be (B, H, W, 3) with H and W multiples of 8", image.shape)
        })?;
        self.encoder.forward(enc, image)
    }

    /// `latent (B, h, w, 4)` -> `image (B, 8h, 8w, 3)`, nominally in [0, 1] (not clamped).
    pub fn decode(&self, enc: &mut Encoder<'_>, latent: &Tensor) -> Result<Tensor> {
        crate::ops::ensure(latent.shape.len() == 4 && latent.shape[3] == LATENT_CHANNELS, "taesd decode", || format!("latent {:?} must be (B, h, w, 4)", latent.shape))?;
        self.decoder.forward(enc, latent)
    }

    /// TAESD latents of same-size images, `(images, 4, h/8, w/8)` flattened (NCHW, as .npy files
    /// store them), in forward passes of [`BATCH`] images; `progress` advances per image.
    pub fn encode_rgb(&self, gpu: &Gpu, images: &[&Rgb], progress: &dyn Progress) -> Result<Vec<f32>> {
        let Some(first) = images.first() else { return Ok(Vec::new()) };
        let (h, w) = (first.height, first.width);
        if let Some(bad) = images.iter().find(|i| i.height != h || i.width != w) {
            return Err(Error::Shape(format!("images to encode must have one size: {}x{} and {}x{}", w, h, bad.width, bad.height)));
        }
        let mut out = Vec::with_capacity(images.len() * 4 * (h / 8) * (w / 8));
        for batch in images.chunks(BATCH) {
            let data: Vec<f32> = batch.iter().flat_map(|i| i.data.iter().copied()).collect();
            let x = Tensor::from_f32(gpu, &[batch.len(), h, w, 3], &data)?;
            let mut enc = gpu.encoder();
            let z = self.encode(&mut enc, &x)?;
            drop(enc);
            out.extend(npy::nhwc_to_nchw(&z.to_vec(gpu)?, [batch.len(), h / 8, w / 8, 4]));
            progress.inc(batch.len() as u64);
        }
        Ok(out)
    }

    /// Images from TAESD latents `(n, 4, h, w)` (NCHW, flattened): `n` images of `8h x 8w`.
    pub fn decode_latents(&self, gpu: &Gpu, z: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<Rgb>> {
        if z.len() != n * 4 * h * w {
            return Err(Error::Shape(format!("{} latent values for {n} latents of (4, {h}, {w})", z.len())));
        }
        let mut out = Vec::with_capacity(n);
        for chunk in z.chunks(BATCH * 4 * h * w) {
            let b = chunk.len() / (4 * h * w);
            let x = Tensor::from_f32(gpu, &[b, h, w, 4], &npy::nchw_to_nhwc(chunk, [b, 4, h, w]))?;
            let mut enc = gpu.encoder();
            let y = self.decode(&mut enc, &x)?;
            drop(enc);
            let y = y.to_vec(gpu)?;
            let px = 64 * h * w * 3;
            out.extend((0..b).map(|i| Rgb { height: 8 * h, width: 8 * w, data: y[i * px..(i + 1) * px].to_vec() }));
        }
        Ok(out)
    }
}
