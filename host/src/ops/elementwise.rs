//! Elementwise ops (elementwise.wgsl): scale, ReLU, SiLU, GELU (exact, erf), tanh clamp,
//! add/mul with broadcasting and a fused activation, and GEGLU.

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, output, Act};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = Shader { name: "elementwise.wgsl", source: include_str!("../../../shaders/elementwise.wgsl") };

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
    _pad: [u32; 2],
}

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
    };
    let n = x.numel();
    let p = Params { n: n as u32, op, b_len: 1, act: 0, scale, span: 0, _pad: [0; 2] };
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
    let p = Params { n: n as u32, op: mul as u32, b_len: b_len as u32, act: act as u32, scale: 1.0, span: span as u32, _pad: [0; 2] };
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
    ensure(two_f % 2 == 0 && two_f > 0, "geglu", || format!("last dimension of {:?} must be even", x.shape))?;
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("non-empty") = two_f / 2;
    let y = output(enc, &shape)?;
    let n = y.numel();
    let p = Params { n: n as u32, op: 0, b_len: (two_f / 2) as u32, act: 0, scale: 1.0, span: 0, _pad: [0; 2] };
    let pipeline = enc.gpu().pipeline(SHADER, "geglu", 3, &[])?;
    enc.dispatch(&pipeline, &[x.binding(), x.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(n.div_ceil(4), 64));
    Ok(y)
}

/// CPU reference of [`unary`].
pub fn unary_ref(x: &[f32], f: Unary) -> Vec<f32> {
    x.iter()
        .map(|&v| match f {
            Unary::Scale(s) => v * s,
            Unary::Relu => v.max(0.0),
            Unary::Silu => v / (1.0 + (-v).exp()),
            Unary::Gelu => gelu_ref(v),
            Unary::TanhClamp(c) => (v / c).tanh() * c,
            Unary::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
        })
        .collect()
}

/// Exact GELU in f64: `x/2 (1 + erf(x / sqrt 2))`.
pub fn gelu_ref(v: f32) -> f32 {
    let x = v as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// The error function in f64, for the references (not libm's): its Maclaurin series
/// `2/sqrt(pi) sum (-1)^n x^(2n+1) / (n! (2n+1))` for |x| < 2.5, else `1 - erfc(x)` with erfc
/// from its continued fraction (Laplace's, evaluated by the modified Lentz method); accurate
/// to about 1e-12 for |x| < 6.
fn erf(x: f64) -> f64 {
    // Taylor series for small |x|, complementary continued fraction for large.
    let ax = x.abs();
    let r = if ax < 2.5 {
        let mut sum = ax;
        let mut term = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc by Lentz's continued fraction.
        let mut f = ax;
        let (mut c, mut d) = (ax, 0.0);
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = ax + a * d;
            d = 1.0 / d;
            c = ax + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

/// CPU reference of [`binary`].
pub fn binary_ref(a: &[f32], b: &[f32], mul: bool, act: Act) -> Vec<f32> {
    a.iter()
        .enumerate()
        .map(|(i, &v)| {
            let r = if mul { v * b[i % b.len()] } else { v + b[i % b.len()] };
            match act {
                Act::None => r,
                Act::Relu => r.max(0.0),
                Act::Silu => r / (1.0 + (-r).exp()),
            }
        })
        .collect()
}

/// CPU reference of [`geglu`]: `x (R, 2F) -> (R, F)`.
pub fn geglu_ref(x: &[f32], f: usize) -> Vec<f32> {
    let rows = x.len() / (2 * f);
    let mut y = vec![0.0; rows * f];
    for r in 0..rows {
        for j in 0..f {
            y[r * f + j] = x[r * 2 * f + j] * gelu_ref(x[r * 2 * f + f + j]);
        }
    }
    y
}
