//! Pooling on NHWC activations (pool.wgsl): max pooling (window, stride, padding; AlexNet's
//! 3/2, VGG's 2/2), adaptive average pooling (torchvision's `AdaptiveAvgPool2d`) and the global
//! mean over H and W. One kernel each, one invocation per four outputs (memory-bound).

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, output};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = shader!(["flat4.wgsl"], "pool.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    k: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { batch, h, w, c, ho, wo, k, stride, pad_top, pad_left, _pad0, _pad1 });

fn dims(x: &Tensor, op: &str) -> Result<[usize; 4]> {
    ensure(x.shape.len() == 4 && x.numel() > 0, op, || format!("input {:?} is not a non-empty (B, H, W, C)", x.shape))?;
    Ok([x.shape[0], x.shape[1], x.shape[2], x.shape[3]])
}

fn run(enc: &mut Encoder<'_>, x: &Tensor, entry: &'static str, p: Params) -> Result<Tensor> {
    let y = output(enc, &[p.batch as usize, p.ho as usize, p.wo as usize, p.c as usize])?;
    let pipeline = enc.gpu().pipeline(SHADER, entry, 2, &[])?;
    enc.dispatch(&pipeline, &[x.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(y.numel().div_ceil(4), 64));
    Ok(y)
}

/// Max pooling, `x (B, H, W, C) -> (B, Ho, Wo, C)` with `Ho = (H + 2 pad - k) / stride + 1`
/// (PyTorch's `MaxPool2d(k, stride, pad)`, floor mode; padding never wins).
pub fn max_pool(enc: &mut Encoder<'_>, x: &Tensor, k: usize, stride: usize, pad: usize) -> Result<Tensor> {
    let [b, h, w, c] = dims(x, "max_pool")?;
    ensure(k >= 1 && stride >= 1 && pad <= k / 2 && h + 2 * pad >= k && w + 2 * pad >= k, "max_pool", || format!("a {k}x{k} window (stride {stride}, padding {pad}) does not fit {:?}", x.shape))?;
    let (ho, wo) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
    let p = Params { batch: b as u32, h: h as u32, w: w as u32, c: c as u32, ho: ho as u32, wo: wo as u32, k: k as u32, stride: stride as u32, pad_top: pad as u32, pad_left: pad as u32, _pad0: 0, _pad1: 0 };
    run(enc, x, "max_pool", p)
}

/// Adaptive average pooling to `(ho, wo)`: output row `i` averages input rows
/// `floor(i H / ho) .. ceil((i + 1) H / ho)`, and columns alike (torchvision's semantics; an
/// output larger than the input replicates).
pub fn adaptive_avg_pool(enc: &mut Encoder<'_>, x: &Tensor, ho: usize, wo: usize) -> Result<Tensor> {
    let [b, h, w, c] = dims(x, "adaptive_avg_pool")?;
    ensure(ho >= 1 && wo >= 1, "adaptive_avg_pool", || format!("output size {ho}x{wo} is empty"))?;
    let p = Params { batch: b as u32, h: h as u32, w: w as u32, c: c as u32, ho: ho as u32, wo: wo as u32, k: 0, stride: 1, pad_top: 0, pad_left: 0, _pad0: 0, _pad1: 0 };
    run(enc, x, "adaptive_avg", p)
}

/// The mean over H and W: `x (B, H, W, C) -> (B, C)`.
pub fn global_mean(enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
    let [b, _, _, c] = dims(x, "global_mean")?;
    adaptive_avg_pool(enc, x, 1, 1)?.reshape(&[b, c])
}
