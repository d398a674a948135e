//! Softmax over the last dimension (softmax.wgsl), with an input scale.

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, output};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = shader!([], "softmax.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    scale: f32,
    _pad: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { rows, n, scale, _pad });

/// `y = softmax(scale * x)` along the last dimension of `x (.., N)`.
pub fn softmax(enc: &mut Encoder<'_>, x: &Tensor, scale: f32) -> Result<Tensor> {
    let n = *x.shape.last().unwrap_or(&0);
    ensure(n > 0, "softmax", || format!("input {:?} has an empty last dimension", x.shape))?;
    let rows = x.numel() / n;
    let y = output(enc, &x.shape)?;
    let p = Params { rows: rows as u32, n: n as u32, scale, _pad: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "softmax", 2, &[])?;
    enc.dispatch(&pipeline, &[x.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(rows, 1));
    Ok(y)
}
