//! Linear image resizing on NHWC tensors (resize.wgsl) and its input gradient: the weights of
//! the `image` crate's `FilterType::Triangle` (what `Rgb::resized` uses for the judging
//! networks: bilinear when enlarging, a widened triangle when shrinking, weights renormalised
//! at the borders), as a banded tap table per axis, applied to rows then columns. The gradient
//! is the same kernel with the transposed tables. Unlike `Rgb::resized`, nothing is rounded to
//! 8 bits or clamped, so that the resize is differentiable.

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, output};
use crate::error::Result;
use crate::gpu::{Encoder, Gpu, Shader, Tensor};

const SHADER: Shader = shader!(["flat4.wgsl"], "resize.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    n_in: u32,
    n_out: u32,
    inner: u32,
    taps: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { n, n_in, n_out, inner, taps, _pad0, _pad1, _pad2 });

/// The dense resampling matrix `(n_out, n_in)` of the `image` crate's triangle filter (f32
/// arithmetic as there): output `j` centred at `(j + 0.5) r`, `r = n_in / n_out`, the filter
/// widened by `max(r, 1)`, weights normalised to sum to 1.
pub fn triangle_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let ratio = n_in as f32 / n_out as f32;
    let sratio = ratio.max(1.0);
    let support = sratio;
    let mut m = vec![0.0f32; n_out * n_in];
    for j in 0..n_out {
        let centre = (j as f32 + 0.5) * ratio;
        let left = ((centre - support).floor() as i64).clamp(0, n_in as i64 - 1) as usize;
        let right = ((centre + support).ceil() as i64).clamp(left as i64 + 1, n_in as i64) as usize;
        let centre = centre - 0.5;
        let ws: Vec<f32> = (left..right).map(|i| (1.0 - ((i as f32 - centre) / sratio).abs()).max(0.0)).collect();
        let sum: f32 = ws.iter().sum();
        for (i, w) in (left..right).zip(ws) {
            m[j * n_in + i] = w / sum;
        }
    }
    m
}

/// One axis's tap table on the GPU: per output a first input and `taps` weights.
#[derive(Debug, Clone)]
struct Taps {
    table: Tensor,
    taps: usize,
    n_in: usize,
    n_out: usize,
}

impl Taps {
    /// From a dense `(n_out, n_in)` matrix: each row's non-zero band.
    fn from_dense(gpu: &Gpu, m: &[f32], n_out: usize, n_in: usize) -> Result<Self> {
        let band = |j: usize| {
            let row = &m[j * n_in..(j + 1) * n_in];
            let first = row.iter().position(|v| *v != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|v| *v != 0.0).unwrap_or(0);
            (first, last + 1 - first.min(last + 1))
        };
        let taps = (0..n_out).map(|j| band(j).1).max().unwrap_or(1).max(1);
        let mut table = vec![0.0f32; n_out * (1 + taps)];
        for j in 0..n_out {
            let (first, len) = band(j);
            table[j] = first as f32;
            for t in 0..len {
                table[n_out + j * taps + t] = m[j * n_in + first + t];
            }
        }
        Ok(Taps { table: Tensor::from_f32(gpu, &[table.len()], &table)?, taps, n_in, n_out })
    }

    /// `x (outer, n_in, inner) -> (outer, n_out, inner)`, the output shaped `shape`.
    fn apply(&self, enc: &mut Encoder<'_>, x: &Tensor, inner: usize, shape: &[usize]) -> Result<Tensor> {
        let y = output(enc, shape)?;
        let p = Params { n: y.numel() as u32, n_in: self.n_in as u32, n_out: self.n_out as u32, inner: inner as u32, taps: self.taps as u32, _pad0: 0, _pad1: 0, _pad2: 0 };
        let pipeline = enc.gpu().pipeline(SHADER, "resize_axis", 3, &[])?;
        enc.dispatch(&pipeline, &[x.binding(), self.table.binding(), y.binding()], bytemuck::bytes_of(&p), grid_flat(y.numel().div_ceil(4), 64));
        Ok(y)
    }
}

/// A square resize `(B, n_in, n_in, C) -> (B, n_out, n_out, C)` and its gradient.
#[derive(Debug, Clone)]
pub struct Resize {
    forward: Taps,
    backward: Taps,
    /// Input side.
    pub n_in: usize,
    /// Output side.
    pub n_out: usize,
}

impl Resize {
    /// The triangle-filter resize from `n_in` to `n_out` pixels a side.
    pub fn new(gpu: &Gpu, n_in: usize, n_out: usize) -> Result<Self> {
        ensure(n_in > 0 && n_out > 0, "resize", || format!("{n_in} -> {n_out} pixels"))?;
        let m = triangle_matrix(n_in, n_out);
        let mut t = vec![0.0; m.len()];
        for j in 0..n_out {
            for i in 0..n_in {
                t[i * n_out + j] = m[j * n_in + i];
            }
        }
        Ok(Resize { forward: Taps::from_dense(gpu, &m, n_out, n_in)?, backward: Taps::from_dense(gpu, &t, n_in, n_out)?, n_in, n_out })
    }

    fn run(enc: &mut Encoder<'_>, taps: &Taps, x: &Tensor) -> Result<Tensor> {
        ensure(x.shape.len() == 4 && x.shape[1] == taps.n_in && x.shape[2] == taps.n_in, "resize", || format!("input {:?} is not (B, {n}, {n}, C)", x.shape, n = taps.n_in))?;
        let [b, _, _, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let (n_in, n_out) = (taps.n_in, taps.n_out);
        // Rows: (B, n_in, n_in C) -> (B, n_out, n_in C); columns: (B n_out, n_in, C) -> (B n_out, n_out, C).
        let rows = taps.apply(enc, x, n_in * c, &[b, n_out, n_in, c])?;
        taps.apply(enc, &rows, c, &[b, n_out, n_out, c])
    }

    /// `x (B, n_in, n_in, C) -> (B, n_out, n_out, C)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        Self::run(enc, &self.forward, x)
    }

    /// The input gradient: `g (B, n_out, n_out, C) -> (B, n_in, n_in, C)`.
    pub fn backward(&self, enc: &mut Encoder<'_>, g: &Tensor) -> Result<Tensor> {
        Self::run(enc, &self.backward, g)
    }
}
