//! Sinusoidal timestep embedding (timestep.wgsl), as diffusers' `get_timestep_embedding`
//! (SD v1: flip_sin_to_cos = true, downscale_freq_shift = 0, max_period 10000).

use bytemuck::{Pod, Zeroable};

use super::{ensure, groups, output};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = shader!([], "timestep.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    dim: u32,
    flip: u32,
    _pad0: u32,
    shift: f32,
    max_period: f32,
    _pad1: u32,
    _pad2: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { batch, dim, flip, _pad0, shift, max_period, _pad1, _pad2 });

/// `t (B)` -> `(B, dim)`.
pub fn timestep_embedding(enc: &mut Encoder<'_>, t: &Tensor, dim: usize, flip_sin_to_cos: bool, shift: f32) -> Result<Tensor> {
    ensure(t.shape.len() == 1 && dim >= 2, "timestep_embedding", || format!("timesteps {:?} must be (B) and dim {dim} >= 2", t.shape))?;
    let b = t.shape[0];
    let y = output(enc, &[b, dim])?;
    let p = Params { batch: b as u32, dim: dim as u32, flip: flip_sin_to_cos as u32, _pad0: 0, shift, max_period: 10000.0, _pad1: 0, _pad2: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "timestep", 2, &[])?;
    enc.dispatch(&pipeline, &[t.binding(), y.binding()], bytemuck::bytes_of(&p), [groups(b * dim, 64), 1, 1]);
    Ok(y)
}
