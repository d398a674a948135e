//! Elementwise ops (elementwise.wgsl): scale, ReLU, ReLU6, SiLU, GELU (exact, erf), tanh clamp,
//! add/mul with broadcasting and a fused activation, and GEGLU.

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, output, Act};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = shader!(["flat4.wgsl"], "elementwise.wgsl");

/// A unary function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    /// x * s
    Scale(f32),
    /// max(x, 0)
    Relu,
    /// x * sigmoid(x)
    Silu,
    /// x * Phi(x), exact (erf) form
    Gelu,
    /// tanh(x / c) * c: TAESD's latent clamp (c = 3)
    TanhClamp(f32),
    /// x * sigmoid(1.702 x): CLIP's quick GELU
    QuickGelu,
    /// min(max(x, 0), 6)
    Relu6,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    op: u32,
    b_len: u32,
    act: u32,
    scale: f32,
    span: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { n, op, b_len, act, scale, span, _pad0, _pad1 });

/// `y = f(x)`, any shape.
pub fn unary(enc: &mut Encoder<'_>, x: &Tensor, f: Unary) -> Result<Tensor> {
    let y = output(enc, &x.shape)?;
    let (op, scale) = match f {
        Unary::Scale(s) => (0, s),
        Unary::Relu => (1, 1.0),
        Unary::Silu => (2, 1.0),
        Unary::Gelu => (3, 1.0),
        Unary::TanhClamp(c) => (4, c),
        Unary::QuickGelu => (5, 1.0),
        Unary::Relu6 => (6, 1.0),
    };
    let n = x.numel();
    let p = Params { n: n as u32, op, b_len: 1, act: 0, scale, span: 0, _pad0: 0, _pad1: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "unary", 3, &[])?;
    enc.dispatch(&pipeline, &[x.binding(), x.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(n.div_ceil(4), 64));
    Ok(y)
}

/// `y = act(a + b)` (or `a * b` when `mul`), `b` repeating over `a`'s leading dimensions
/// (same shape, or the shape of `a`'s trailing dimensions, e.g. a bias).
pub fn binary(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor, mul: bool, act: Act) -> Result<Tensor> {
    let n = a.numel();
    let tail_ok = b.shape.len() <= a.shape.len() && a.shape.ends_with(&b.shape);
    ensure(b.numel() > 0 && (b.numel() == n || tail_ok), "add/mul", || format!("cannot broadcast {:?} onto {:?}", b.shape, a.shape))?;
    dispatch_binary(enc, a, b, mul, act, b.numel(), 0)
}

/// `y = a + b` with `b (B, C)` added to every position of sample `B` of `a (B, .., C)` (a
/// time embedding over NHWC activations). Explicit, because `(B, C)` can also be `a`'s
/// trailing shape (e.g. a width of B), where [`binary`] would broadcast it differently.
pub fn add_per_sample(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let ok = a.shape.len() >= 2 && b.shape.len() == 2 && b.shape[0] == a.shape[0] && b.shape[1] == a.shape[a.shape.len() - 1];
    ensure(ok, "add_per_sample", || format!("{:?} is not (B, C) of {:?}", b.shape, a.shape))?;
    dispatch_binary(enc, a, b, false, Act::None, b.shape[1], a.numel() / a.shape[0])
}

fn dispatch_binary(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor, mul: bool, act: Act, b_len: usize, span: usize) -> Result<Tensor> {
    let n = a.numel();
    let y = output(enc, &a.shape)?;
    let p = Params { n: n as u32, op: mul as u32, b_len: b_len as u32, act: act as u32, scale: 1.0, span: span as u32, _pad0: 0, _pad1: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "binary", 3, &[])?;
    enc.dispatch(&pipeline, &[a.binding(), b.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(n.div_ceil(4), 64));
    Ok(y)
}

/// `a + b`.
pub fn add(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(enc, a, b, false, Act::None)
}

/// GEGLU: `x (.., 2F) -> (.., F)`, first half times GELU of the second half (diffusers' order).
pub fn geglu(enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
    let two_f = *x.shape.last().unwrap_or(&0);
    ensure(two_f.is_multiple_of(2) && two_f > 0, "geglu", || format!("last dimension of {:?} must be even", x.shape))?;
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("non-empty") = two_f / 2;
    let y = output(enc, &shape)?;
    let n = y.numel();
    let p = Params { n: n as u32, op: 0, b_len: (two_f / 2) as u32, act: 0, scale: 1.0, span: 0, _pad0: 0, _pad1: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "geglu", 3, &[])?;
    enc.dispatch(&pipeline, &[x.binding(), x.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(n.div_ceil(4), 64));
    Ok(y)
}
