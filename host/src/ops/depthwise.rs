//! Depthwise `conv2d` (groups = channels) on NHWC activations (depthwise.wgsl), with weights
//! repacked from PyTorch's (C, 1, kh, kw) to (kh, kw, C) at load ([`DepthwiseWeight`]); any
//! stride, explicit (top, left, bottom, right) padding (TensorFlow's asymmetric "SAME" too),
//! optional bias, fused activation. Two kernels, no tiles (the op reads each input about k^2
//! times and is memory-bound): `Tiled`, one invocation per four outputs, any C; `Cpu`, one
//! invocation per four channels of two adjacent output pixels as vec4s (C % 4 == 0), the
//! kernel size and stride pipeline constants: several times faster on lavapipe.

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, output, Act, Variant};
use crate::error::Result;
use crate::gpu::{Encoder, Gpu, Shader, Tensor};

/// The kernels `depthwise` has.
const VARIANTS: &[Variant] = &[Variant::Tiled, Variant::Cpu];

const SHADER: Shader = shader!(["depthwise_params.wgsl", "flat4.wgsl"], "depthwise.wgsl");
const SHADER_VEC4: Shader = shader!(["depthwise_params.wgsl"], "depthwise_vec4.wgsl");

/// A depthwise convolution's weights on the GPU (f32).
#[derive(Debug, Clone)]
pub struct DepthwiseWeight {
    /// (kh, kw, C)
    pub weight: Tensor,
    /// (C)
    pub bias: Option<Tensor>,
    /// Channels.
    pub c: usize,
    /// Kernel height and width.
    pub k: (usize, usize),
}

impl DepthwiseWeight {
    /// From PyTorch's layout `w (C, 1, kh, kw)` and `bias (C)`.
    pub fn from_torch(gpu: &Gpu, w: &[f32], shape: [usize; 4], bias: Option<&[f32]>) -> Result<Self> {
        let [c, one, kh, kw] = shape;
        ensure(one == 1 && w.len() == c * kh * kw, "depthwise", || format!("weight of shape {shape:?} with {} values is not (C, 1, kh, kw)", w.len()))?;
        let packed = repack(w, [c, kh, kw]);
        let weight = Tensor::from_f32(gpu, &[kh, kw, c], &packed)?;
        let bias = match bias {
            Some(b) => {
                ensure(b.len() == c, "depthwise", || format!("bias has {} values for {c} channels", b.len()))?;
                Some(Tensor::from_f32(gpu, &[c], b)?)
            }
            None => None,
        };
        Ok(DepthwiseWeight { weight, bias, c, k: (kh, kw) })
    }
}

/// (C, kh, kw) -> (kh, kw, C)
pub fn repack(w: &[f32], [c, kh, kw]: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for ch in 0..c {
        for t in 0..kh * kw {
            out[t * c + ch] = w[ch * kh * kw + t];
        }
    }
    out
}

/// Geometry of one depthwise convolution.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseSpec {
    /// Stride (both axes).
    pub stride: usize,
    /// Zeros (top, left, bottom, right).
    pub pad: (usize, usize, usize, usize),
    /// Fused activation.
    pub act: Act,
}

/// TensorFlow's "SAME" padding of one axis of `size` for kernel `k` and `stride`: output
/// `ceil(size / stride)`, the total padding split with the odd one after:
/// `(before, after)`.
pub fn same_pad(size: usize, k: usize, stride: usize) -> (usize, usize) {
    let o = size.div_ceil(stride);
    let pad = ((o.max(1) - 1) * stride + k).saturating_sub(size);
    (pad / 2, pad - pad / 2)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    act: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER, SHADER_VEC4];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { batch, h, w, c, ho, wo, kh, kw, stride, pad_top, pad_left, act, has_bias, _pad0, _pad1, _pad2 });

/// `x (B, H, W, C) -> (B, Ho, Wo, C)`, `Ho = (H + top + bottom - kh) / stride + 1` (and so Wo).
pub fn depthwise(enc: &mut Encoder<'_>, x: &Tensor, wt: &DepthwiseWeight, spec: DepthwiseSpec) -> Result<Tensor> {
    let v = variant(enc.gpu(), wt);
    depthwise_with(enc, x, wt, spec, v)
}

/// The kernel `depthwise` runs for these weights on this adapter (`Cpu` on CPU adapters when
/// C % 4 == 0, else `Tiled`).
pub fn variant(gpu: &Gpu, wt: &DepthwiseWeight) -> Variant {
    Variant::choose(gpu, wt.c.is_multiple_of(4), false, false)
}

/// `depthwise` with a given kernel (`Cpu` needs C % 4 == 0).
pub fn depthwise_with(enc: &mut Encoder<'_>, x: &Tensor, wt: &DepthwiseWeight, spec: DepthwiseSpec, variant: Variant) -> Result<Tensor> {
    variant.needs(enc.gpu(), "depthwise", VARIANTS)?;
    ensure(variant == Variant::Tiled || wt.c.is_multiple_of(4), "depthwise", || format!("the {variant:?} kernel needs C % 4 == 0, got {}", wt.c))?;
    ensure(x.shape.len() == 4 && x.shape[3] == wt.c, "depthwise", || format!("input {:?} is not (B, H, W, {})", x.shape, wt.c))?;
    let [b, h, w, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let (kh, kw) = wt.k;
    let (top, left, bottom, right) = spec.pad;
    let (hp, wp) = (h + top + bottom, w + left + right);
    ensure(hp >= kh && wp >= kw && spec.stride >= 1, "depthwise", || format!("input {:?} with padding {:?} too small for a {kh}x{kw} kernel", x.shape, spec.pad))?;
    let (ho, wo) = ((hp - kh) / spec.stride + 1, (wp - kw) / spec.stride + 1);
    let y = output(enc, &[b, ho, wo, c])?;
    let p = Params {
        batch: b as u32,
        h: h as u32,
        w: w as u32,
        c: c as u32,
        ho: ho as u32,
        wo: wo as u32,
        kh: kh as u32,
        kw: kw as u32,
        stride: spec.stride as u32,
        pad_top: top as u32,
        pad_left: left as u32,
        act: spec.act as u32,
        has_bias: wt.bias.is_some() as u32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    let bias = wt.bias.as_ref().unwrap_or(&wt.weight);
    let (shader, entry) = if variant == Variant::Cpu { (SHADER_VEC4, "depthwise_vec4") } else { (SHADER, "depthwise") };
    let (pipeline, items) = if variant == Variant::Cpu {
        // Four channels of two output pixels per invocation.
        let constants = [("KH", kh as f64), ("KW", kw as f64), ("STRIDE", spec.stride as f64)];
        (enc.gpu().pipeline(shader, entry, 4, &constants)?, b * ho * wo.div_ceil(2) * c / 4)
    } else {
        (enc.gpu().pipeline(shader, entry, 4, &[])?, y.numel().div_ceil(4))
    };
    enc.dispatch(&pipeline, &[x.binding(), wt.weight.binding(), bias.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(items, 64));
    Ok(y)
}
