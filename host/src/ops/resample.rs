//! Layout ops on NHWC tensors (resample.wgsl): nearest 2x upsampling and channel concat.

use bytemuck::{Pod, Zeroable};

use super::{bands, ensure, grid_flat, output};
use crate::error::Result;
use crate::gpu::{Encoder, Shader, Tensor};

const SHADER: Shader = shader!(["flat4.wgsl"], "resample.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    cb: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { n, h, w, c, cb, _pad0, _pad1, _pad2 });

/// `x (B, H, W, C) -> (B, 2H, 2W, C)`, nearest neighbour.
pub fn upsample2x(enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
    ensure(x.shape.len() == 4, "upsample2x", || format!("input {:?} is not (B, H, W, C)", x.shape))?;
    let [b, h, w, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let y = output(enc, &[b, 2 * h, 2 * w, c])?;
    let pipeline = enc.gpu().pipeline(SHADER, "upsample2x", 3, &[])?;
    let run = |enc: &mut Encoder<'_>, x: &Tensor, y: &Tensor| {
        let n = y.numel();
        let p = Params { n: n as u32, h: x.shape[1] as u32, w: w as u32, c: c as u32, cb: 0, _pad0: 0, _pad1: 0, _pad2: 0 };
        enc.dispatch(&pipeline, &[x.binding(), x.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(n.div_ceil(4), 64));
    };
    if !bands::needed(enc.gpu(), "upsample2x", &[x, &y])? {
        run(enc, x, &y);
        return Ok(y);
    }
    // Bands of input rows; each gives twice as many output rows.
    let max = enc.gpu().max_binding();
    let band = ((max / bands::row_bytes(x)).min(max / (2 * bands::row_bytes(&y)))) as usize;
    ensure(band >= 1, "upsample2x", || format!("two output rows of {:?} exceed one binding ({max} bytes)", y.shape))?;
    for s in 0..b {
        for r0 in (0..h).step_by(band) {
            let r1 = (r0 + band).min(h);
            run(enc, &bands::rows(x, s, r0, r1), &bands::rows(&y, s, 2 * r0, 2 * r1));
        }
    }
    Ok(y)
}

/// Concatenates along the last (channel) dimension: `(.., Ca) ++ (.., Cb) -> (.., Ca + Cb)`.
pub fn concat(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.shape.len(), b.shape.len());
    ensure(ra == rb && ra >= 1 && a.shape[..ra - 1] == b.shape[..rb - 1], "concat", || format!("cannot concat {:?} and {:?} along channels", a.shape, b.shape))?;
    let (ca, cb) = (a.shape[ra - 1], b.shape[rb - 1]);
    let mut shape = a.shape.clone();
    shape[ra - 1] = ca + cb;
    let y = output(enc, &shape)?;
    let n = y.numel();
    let p = Params { n: n as u32, h: 0, w: 0, c: ca as u32, cb: cb as u32, _pad0: 0, _pad1: 0, _pad2: 0 };
    let pipeline = enc.gpu().pipeline(SHADER, "concat", 3, &[])?;
    enc.dispatch(&pipeline, &[a.binding(), b.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(n.div_ceil(4), 64));
    Ok(y)
}
