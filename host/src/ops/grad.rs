//! Input gradients (backward passes with frozen weights) of the ops the feature networks and
//! TAESD's decoder use, for deep image reconstruction (Shen et al. 2019), which optimises an
//! image (or a generator's latent) by gradient descent on a feature loss.
//!
//! Elementwise, layout and pooling backwards are kernels of grad.wgsl ([`act_backward`],
//! [`tanh_clamp_backward`], [`upsample2x_backward`], [`global_mean_backward`], [`dilate2x`],
//! [`max_pool_backward`], [`adaptive_avg_pool_backward`]). A linear layer's input gradient
//! `g (M, N) . W (N, K)` is `ops::linear::matmul` with the stored weight untransposed, in
//! bands of its rows when the weight is larger than one binding.
//! A convolution's input gradient is itself a convolution, so it runs on the fast forward
//! kernels (every `Variant` of conv2d and depthwise): the output gradient, zero-interleaved
//! first when the stride is 2 ([`dilate2x`]), convolved at stride 1 with the spatially
//! flipped weights, in and out channels swapped ([`conv_back_weight`],
//! [`depthwise_back_weight`], repacked once at load), with padding `(k - 1 - top,
//! H - Hd + top)` so that the result has the input's size ([`conv2d_backward`],
//! [`depthwise_backward`]).

use bytemuck::{Pod, Zeroable};

use super::conv2d::{conv2d, ConvSpec, ConvWeight};
use super::depthwise::{depthwise, DepthwiseSpec, DepthwiseWeight};
use super::{ensure, grid_flat, output, Act};
use crate::error::Result;
use crate::gpu::{DType, Encoder, Gpu, Shader, Tensor};

const SHADER: Shader = shader!(["flat4.wgsl"], "grad.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    act: u32,
    scale: f32,
    k: u32,
    stride: u32,
    pad: u32,
    _pad0: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { n, h, w, c, ho, wo, act, scale, k, stride, pad, _pad0 });

fn run(enc: &mut Encoder<'_>, entry: &'static str, a: &Tensor, b: &Tensor, shape: &[usize], p: Params) -> Result<Tensor> {
    let y = output(enc, shape)?;
    let p = Params { n: y.numel() as u32, ..p };
    let pipeline = enc.gpu().pipeline(SHADER, entry, 3, &[])?;
    enc.dispatch(&pipeline, &[a.binding(), b.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(y.numel().div_ceil(4), 64));
    Ok(y)
}

const P0: Params = Params { n: 0, h: 0, w: 0, c: 1, ho: 0, wo: 0, act: 0, scale: 1.0, k: 1, stride: 1, pad: 0, _pad0: 0 };

fn nhwc(t: &Tensor, op: &str) -> Result<[usize; 4]> {
    ensure(t.shape.len() == 4 && t.numel() > 0, op, || format!("tensor {:?} is not a non-empty (B, H, W, C)", t.shape))?;
    Ok([t.shape[0], t.shape[1], t.shape[2], t.shape[3]])
}

/// `g * act'(y)` for a fused activation, masked by the forward's output `y` (same shape):
/// ReLU passes where `y > 0`, ReLU6 where `0 < y < 6`, `Act::None` passes all; SiLU refused.
pub fn act_backward(enc: &mut Encoder<'_>, g: &Tensor, y: &Tensor, act: Act) -> Result<Tensor> {
    ensure(g.shape == y.shape, "act_backward", || format!("gradient {:?} and output {:?} differ", g.shape, y.shape))?;
    ensure(act != Act::Silu, "act_backward", || "SiLU's gradient needs the input, not the output".into())?;
    if act == Act::None {
        return Ok(g.clone());
    }
    run(enc, "act_back", g, y, &g.shape, Params { act: act as u32, ..P0 })
}

/// `g * (1 - tanh(x / c)^2)`: the gradient of `tanh(x / c) c` at the forward's input `x`.
pub fn tanh_clamp_backward(enc: &mut Encoder<'_>, g: &Tensor, x: &Tensor, c: f32) -> Result<Tensor> {
    ensure(g.shape == x.shape, "tanh_clamp_backward", || format!("gradient {:?} and input {:?} differ", g.shape, x.shape))?;
    run(enc, "tanh_clamp_back", g, x, &g.shape, Params { scale: c, ..P0 })
}

/// Nearest 2x upsampling's input gradient: `g (B, 2H, 2W, C) -> (B, H, W, C)`, each 2x2 summed.
pub fn upsample2x_backward(enc: &mut Encoder<'_>, g: &Tensor) -> Result<Tensor> {
    let [b, h2, w2, c] = nhwc(g, "upsample2x_backward")?;
    ensure(h2 % 2 == 0 && w2 % 2 == 0, "upsample2x_backward", || format!("gradient {:?} has an odd side", g.shape))?;
    let (h, w) = (h2 / 2, w2 / 2);
    run(enc, "upsample2x_back", g, g, &[b, h, w, c], Params { h: h as u32, w: w as u32, c: c as u32, ..P0 })
}

/// The global mean's input gradient: `g (B, C) -> (B, h, w, C)`, `g / (h w)` everywhere.
pub fn global_mean_backward(enc: &mut Encoder<'_>, g: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    ensure(g.shape.len() == 2 && h * w > 0, "global_mean_backward", || format!("gradient {:?} is not (B, C), or {h}x{w} is empty", g.shape))?;
    let (b, c) = (g.shape[0], g.shape[1]);
    run(enc, "mean_back", g, g, &[b, h, w, c], Params { h: h as u32, w: w as u32, c: c as u32, scale: 1.0 / (h * w) as f32, ..P0 })
}

/// Max pooling's input gradient: `g (B, Ho, Wo, C)` and the forward's input `x (B, H, W, C)`
/// (window `k`, `stride`, `pad` as [`max_pool`](super::pool::max_pool)) -> `(B, H, W, C)`,
/// each window's gradient to its first maximum (PyTorch's rule for ties).
pub fn max_pool_backward(enc: &mut Encoder<'_>, g: &Tensor, x: &Tensor, k: usize, stride: usize, pad: usize) -> Result<Tensor> {
    let [b, ho, wo, c] = nhwc(g, "max_pool_backward")?;
    let [bx, h, w, cx] = nhwc(x, "max_pool_backward")?;
    ensure(b == bx && c == cx && k >= 1 && stride >= 1 && h + 2 * pad >= k && ho == (h + 2 * pad - k) / stride + 1 && wo == (w + 2 * pad - k) / stride + 1, "max_pool_backward", || {
        format!("gradient {:?} is not the output of a {k}x{k} (stride {stride}, padding {pad}) pool of {:?}", g.shape, x.shape)
    })?;
    let p = Params { h: h as u32, w: w as u32, c: c as u32, ho: ho as u32, wo: wo as u32, k: k as u32, stride: stride as u32, pad: pad as u32, ..P0 };
    run(enc, "max_pool_back", g, x, &x.shape, p)
}

/// Adaptive average pooling's input gradient: `g (B, ho, wo, C) -> (B, h, w, C)`.
pub fn adaptive_avg_pool_backward(enc: &mut Encoder<'_>, g: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let [b, ho, wo, c] = nhwc(g, "adaptive_avg_pool_backward")?;
    ensure(h * w > 0, "adaptive_avg_pool_backward", || format!("input {h}x{w} is empty"))?;
    run(enc, "adaptive_avg_back", g, g, &[b, h, w, c], Params { h: h as u32, w: w as u32, c: c as u32, ho: ho as u32, wo: wo as u32, ..P0 })
}

/// A linear layer's input gradient: `g (M, N)` and its weight `w (N, K)` (as stored for
/// `linear`) -> `g . w (M, K)`. A weight larger than one storage binding (VGG19's fc6 in f16 is
/// 205 MB, lavapipe binds 128 MiB) is taken in bands of its rows (the forward's output rows,
/// as `linear` splits it): `sum over bands of g[:, band] . w[band, :]`, each band's columns of
/// `g` copied out first.
pub fn linear_backward(enc: &mut Encoder<'_>, g: &Tensor, w: &Tensor) -> Result<Tensor> {
    let v = super::Variant::choose(enc.gpu(), false, false, w.dtype == DType::F16);
    linear_backward_with(enc, g, w, v)
}

/// [`linear_backward`] with a given kernel of `ops::linear::matmul` (`Tiled`, or `TiledF16`
/// for f16 weights: the untransposed weight has no CPU kernels).
pub fn linear_backward_with(enc: &mut Encoder<'_>, g: &Tensor, w: &Tensor, variant: super::Variant) -> Result<Tensor> {
    ensure(g.shape.len() == 2 && w.shape.len() == 2 && g.shape[1] == w.shape[0], "linear_backward", || format!("gradient {:?} does not match weight {:?}", g.shape, w.shape))?;
    ensure(g.dtype == DType::F32, "linear_backward", || "the gradient must be f32".into())?;
    let (m, n, k) = (g.shape[0], w.shape[0], w.shape[1]);
    let gpu = enc.gpu();
    let elem = if w.dtype == DType::F16 { 2 } else { 4 };
    let row_bytes = (k * elem) as u64;
    if w.bytes() <= gpu.max_binding() {
        let y = super::linear::matmul_with(enc, &g.reshape(&[1, m, n])?, &w.reshape(&[1, n, k])?, false, variant)?;
        return y.reshape(&[m, k]);
    }
    // Bands of whole rows, each bound from the aligned offset below its start.
    let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment).max(16);
    let rows = (gpu.max_binding().saturating_sub(align + 16) / row_bytes.max(1)) as usize;
    ensure(rows > 0, "linear_backward", || format!("weight {:?}: a row of {row_bytes} bytes does not fit a binding of {} bytes", w.shape, gpu.max_binding()))?;
    let mut sum: Option<Tensor> = None;
    let mut n0 = 0;
    while n0 < n {
        let r = rows.min(n - n0);
        let gb = output(enc, &[1, m, r])?;
        for i in 0..m {
            enc.copy(&g.buffer, g.offset + ((i * n + n0) * 4) as u64, &gb.buffer, gb.offset + (i * r * 4) as u64, (r * 4) as u64);
        }
        let part = super::linear::matmul_rows(enc, &gb, w, n0, r, variant)?;
        sum = Some(match sum {
            Some(s) => super::elementwise::add(enc, &s, &part)?,
            None => part,
        });
        n0 += r;
    }
    sum.expect("n > 0 rows give a band").reshape(&[m, k])
}

/// Zero interleaving: `g (B, H, W, C) -> (B, ho, wo, C)` with `g[b, i, j]` at `(2i, 2j)` and
/// zeros elsewhere (`ho >= 2H - 1`, `wo >= 2W - 1`).
pub fn dilate2x(enc: &mut Encoder<'_>, g: &Tensor, ho: usize, wo: usize) -> Result<Tensor> {
    let [b, h, w, c] = nhwc(g, "dilate2x")?;
    ensure(ho + 1 >= 2 * h && wo + 1 >= 2 * w, "dilate2x", || format!("{ho}x{wo} cannot hold {:?} dilated", g.shape))?;
    run(enc, "dilate2x", g, g, &[b, ho, wo, c], Params { h: h as u32, w: w as u32, c: c as u32, ho: ho as u32, wo: wo as u32, ..P0 })
}

/// The input-gradient weights of a convolution with PyTorch-layout `w (Cout, Cin, kh, kw)`:
/// `w' (Cin, Cout, kh, kw)`, `w'[i, o, y, x] = w[o, i, kh - 1 - y, kw - 1 - x]`, no bias.
pub fn conv_back_weight(gpu: &Gpu, w: &[f32], [cout, cin, kh, kw]: [usize; 4], dtype: DType) -> Result<ConvWeight> {
    ensure(w.len() == cout * cin * kh * kw, "conv_back_weight", || format!("weight of shape {:?} has {} values", [cout, cin, kh, kw], w.len()))?;
    let mut t = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin {
            for y in 0..kh {
                for x in 0..kw {
                    t[((i * cout + o) * kh + y) * kw + x] = w[((o * cin + i) * kh + kh - 1 - y) * kw + kw - 1 - x];
                }
            }
        }
    }
    ConvWeight::from_torch(gpu, &t, [cin, cout, kh, kw], None, dtype)
}

/// The input-gradient weights of a depthwise convolution `w (C, 1, kh, kw)`: flipped.
pub fn depthwise_back_weight(gpu: &Gpu, w: &[f32], [c, one, kh, kw]: [usize; 4]) -> Result<DepthwiseWeight> {
    ensure(one == 1 && w.len() == c * kh * kw, "depthwise_back_weight", || format!("weight of shape {:?} has {} values", [c, one, kh, kw], w.len()))?;
    let t: Vec<f32> = (0..w.len()).map(|i| w[i - i % (kh * kw) + kh * kw - 1 - i % (kh * kw)]).collect();
    DepthwiseWeight::from_torch(gpu, &t, [c, 1, kh, kw], None)
}

/// The output gradient ready for a stride-1 convolution, and its `(pad_y, pad_x)`.
type Transposed = (Tensor, (usize, usize), (usize, usize));

/// The gradient's stride-1 geometry for a forward over `(h, w)` with padding (top, left) and
/// stride, kernel `(kh, kw)`: the dilated gradient and `(pad_y, pad_x)`.
fn transpose_geometry(enc: &mut Encoder<'_>, g: &Tensor, (h, w): (usize, usize), (kh, kw): (usize, usize), (top, left): (usize, usize), stride: usize, op: &str) -> Result<Transposed> {
    let [_, ho, wo, _] = nhwc(g, op)?;
    ensure(stride == 1 || stride == 2, op, || format!("stride {stride} (1 or 2 only)"))?;
    ensure(top < kh && left < kw, op, || format!("padding ({top}, {left}) of a {kh}x{kw} kernel"))?;
    let (hd, wd) = ((ho - 1) * stride + 1, (wo - 1) * stride + 1);
    ensure(h + top >= hd && w + left >= wd, op, || format!("gradient {:?} does not fit an input of {h}x{w}", g.shape))?;
    let g = if stride == 2 { dilate2x(enc, g, hd, wd)? } else { g.clone() };
    Ok((g, (kh - 1 - top, h + top - hd), (kw - 1 - left, w + left - wd)))
}

/// A convolution's input gradient: `g (B, Ho, Wo, Cout)` (after the activation's backward)
/// -> `(B, h, w, Cin)` for a forward over `(h, w)` with `spec` (its act ignored), `back` from
/// [`conv_back_weight`].
pub fn conv2d_backward(enc: &mut Encoder<'_>, g: &Tensor, back: &ConvWeight, (h, w): (usize, usize), spec: ConvSpec) -> Result<Tensor> {
    let (g, pad_y, pad_x) = transpose_geometry(enc, g, (h, w), back.k, (spec.pad_y.0, spec.pad_x.0), spec.stride, "conv2d_backward")?;
    conv2d(enc, &g, back, ConvSpec { stride: 1, pad_y, pad_x, act: Act::None })
}

/// A depthwise convolution's input gradient, as [`conv2d_backward`].
pub fn depthwise_backward(enc: &mut Encoder<'_>, g: &Tensor, back: &DepthwiseWeight, (h, w): (usize, usize), spec: DepthwiseSpec) -> Result<Tensor> {
    let (g, pad_y, pad_x) = transpose_geometry(enc, g, (h, w), back.k, (spec.pad.0, spec.pad.1), spec.stride, "depthwise_backward")?;
    depthwise(enc, &g, back, DepthwiseSpec { stride: 1, pad: (pad_y.0, pad_x.0, pad_y.1, pad_x.1), act: Act::None })
}
