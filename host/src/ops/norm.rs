//! GroupNorm (NHWC, optional fused SiLU) and LayerNorm (norm.wgsl), each with an eps per call
//! (1e-5 in SD's U-Net resnets, 1e-6 in its transformers and in the VAE).

use bytemuck::{Pod, Zeroable};

use super::{bands, ensure, grid_flat, output};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = shader!([], "norm.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    p: u32,
    c: u32,
    groups: u32,
    eps: f32,
    silu: u32,
    band: u32,
    bands: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { rows, p, c, groups, eps, silu, band, bands, total, _pad0, _pad1, _pad2 });

/// GroupNorm: `x (B, .., C)` NHWC (all middle dimensions are pixels), `gamma`, `beta (C)`.
pub fn group_norm(enc: &mut Encoder<'_>, x: &Tensor, groups: usize, gamma: &Tensor, beta: &Tensor, eps: f32, silu: bool) -> Result<Tensor> {
    ensure(x.shape.len() >= 2, "group_norm", || format!("input {:?} must be (B, .., C)", x.shape))?;
    let (b, c) = (x.shape[0], *x.shape.last().expect("rank >= 2"));
    ensure(groups > 0 && c % groups == 0, "group_norm", || format!("{c} channels do not split into {groups} groups"))?;
    ensure(gamma.numel() == c && beta.numel() == c, "group_norm", || format!("scale {:?} / shift {:?} for {c} channels", gamma.shape, beta.shape))?;
    let p = x.numel() / (b * c).max(1);
    let y = output(enc, &x.shape)?;
    let params = Params { rows: b as u32, p: p as u32, c: c as u32, groups: groups as u32, eps, silu: silu as u32, band: 0, bands: 0, total: 0, _pad0: 0, _pad1: 0, _pad2: 0 };
    if !bands::needed(enc.gpu(), "group_norm", &[x, &y])? {
        let pipeline = enc.gpu().pipeline(SHADER, "group_norm", 4, &[])?;
        enc.dispatch(&pipeline, &[x.binding(), gamma.binding(), beta.binding(), y.binding()], bytemuck::bytes_of(&params), [groups as u32, b as u32, 1]);
        return Ok(y);
    }
    // Larger than a binding: the same three passes over bands of rows of each sample.
    let (h, w) = (x.shape[1], x.shape[2]);
    let band = (enc.gpu().max_binding() / bands::row_bytes(x)) as usize;
    ensure(band >= 1, "group_norm", || format!("one row of {:?} exceeds one binding", x.shape))?;
    let ranges: Vec<(usize, usize)> = (0..h).step_by(band).map(|r0| (r0, (r0 + band).min(h))).collect();
    let (sum, sumsq, apply) = (enc.gpu().pipeline(SHADER, "gn_sum", 2, &[])?, enc.gpu().pipeline(SHADER, "gn_sq", 3, &[])?, enc.gpu().pipeline(SHADER, "gn_apply", 6, &[])?);
    for s in 0..b {
        let stats = [output(enc, &[ranges.len(), groups])?, output(enc, &[ranges.len(), groups])?];
        for pass in 0..3 {
            for (k, &(r0, r1)) in ranges.iter().enumerate() {
                let pb = Params { rows: 1, p: ((r1 - r0) * w) as u32, band: k as u32, bands: ranges.len() as u32, total: (h * w) as u32, ..params };
                let (xv, yv) = (bands::rows(x, s, r0, r1), bands::rows(&y, s, r0, r1));
                let meta = bytemuck::bytes_of(&pb);
                match pass {
                    0 => enc.dispatch(&sum, &[xv.binding(), stats[0].binding()], meta, [groups as u32, 1, 1]),
                    1 => enc.dispatch(&sumsq, &[xv.binding(), stats[0].binding(), stats[1].binding()], meta, [groups as u32, 1, 1]),
                    _ => enc.dispatch(&apply, &[xv.binding(), gamma.binding(), beta.binding(), stats[0].binding(), stats[1].binding(), yv.binding()], meta, [groups as u32, 1, 1]),
                }
            }
        }
    }
    Ok(y)
}

/// LayerNorm over the last dimension: `x (.., C)`, `gamma`, `beta (C)`.
pub fn layer_norm(enc: &mut Encoder<'_>, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
    let c = *x.shape.last().unwrap_or(&0);
    ensure(c > 0 && gamma.numel() == c && beta.numel() == c, "layer_norm", || format!("input {:?} with scale {:?} / shift {:?}", x.shape, gamma.shape, beta.shape))?;
    let rows = x.numel() / c;
    let y = output(enc, &x.shape)?;
    let params = Params { rows: rows as u32, p: 0, c: c as u32, groups: 1, eps, silu: 0, band: 0, bands: 0, total: 0, _pad0: 0, _pad1: 0, _pad2: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "layer_norm", 4, &[])?;
    enc.dispatch(&pipeline, &[x.binding(), gamma.binding(), beta.binding(), y.binding()], bytemuck::bytes_of(&params), grid_flat(rows, 1));
    Ok(y)
}
