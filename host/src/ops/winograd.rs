//! 3x3 convolutions with stride 1 and padding 1 by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin and Gray 2016, "Fast algorithms for convolutional neural networks"): 16 products
//! per 2 x 2 output tile instead of 36, so 2.25x fewer multiplications than `conv2d`.
//!
//! Three passes: `winograd_in.wgsl` transforms 4 x 4 input patches (`x (B, H, W, C) -> V (16,
//! tiles, C)`); the batched [`matmul`](super::linear::matmul) multiplies each of the 16 tile-by-channel matrices by
//! the weights transformed once at load (`U (16, Cout, C)`, [`WinogradWeight`]), with the
//! matmul's own kernel variants (subgroup / vec4 kernels on CPU adapters, workgroup-tiled on
//! GPUs); `winograd_out.wgsl` transforms back, adds the bias and an optional residual and
//! applies the activation. V and M are 4x the input and output: the batch is cut into chunks
//! of samples, or a sample into bands of tile rows, whose V and M fit one storage binding.

use bytemuck::{Pod, Zeroable};

use super::{ensure, grid_flat, linear, output, Act, Variant};
use crate::error::Result;
use crate::gpu::{DType, Encoder, Gpu, Shader, Tensor};

const SHADER_IN: Shader = shader!(["winograd_params.wgsl"], "winograd_in.wgsl");
const SHADER_OUT: Shader = shader!(["winograd_params.wgsl"], "winograd_out.wgsl");

/// G of F(2x2, 3x3): the weight transform `U = G g G^T`.
const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// A 3x3 convolution's weights transformed for F(2x2, 3x3), on the GPU (f32 or f16).
#[derive(Debug, Clone)]
pub struct WinogradWeight {
    /// (16, Cout, Cin): `U[4i + j][o][c] = (G g[o][c] G^T)[i][j]`.
    pub u: Tensor,
    /// (Cout)
    pub bias: Option<Tensor>,
    /// Output channels.
    pub cout: usize,
    /// Input channels.
    pub cin: usize,
}

/// `w (Cout, Cin, 3, 3)` (PyTorch's layout) -> `U (16, Cout, Cin)`.
pub fn transform_weight(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0.0; 16 * cout * cin];
    for o in 0..cout {
        for c in 0..cin {
            let g = &w[(o * cin + c) * 9..][..9];
            // G g (4 x 3), then (G g) G^T (4 x 4).
            let mut gg = [[0.0f32; 3]; 4];
            for (i, row) in gg.iter_mut().enumerate() {
                for (l, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|k| G[i][k] * g[k * 3 + l]).sum();
                }
            }
            for i in 0..4 {
                for j in 0..4 {
                    u[((4 * i + j) * cout + o) * cin + c] = (0..3).map(|l| gg[i][l] * G[j][l]).sum();
                }
            }
        }
    }
    u
}

impl WinogradWeight {
    /// From PyTorch's layout `w (Cout, Cin, 3, 3)` and `bias (Cout)`; Cin and Cout multiples of 4.
    pub fn from_torch(gpu: &Gpu, w: &[f32], shape: [usize; 4], bias: Option<&[f32]>) -> Result<Self> {
        Self::from_torch_as(gpu, w, shape, bias, DType::F32)
    }

    /// [`WinogradWeight::from_torch`] with `U` stored as `dtype`. With f16, `U` is rounded after
    /// the transform, so even weights exact in f16 are not exact in `U` (the SD fixture's VAE
    /// with every conv by Winograd: 3e-3 of the image's largest value; f32 keeps them exact
    /// (4e-6), at twice the memory).
    pub fn from_torch_as(gpu: &Gpu, w: &[f32], shape: [usize; 4], bias: Option<&[f32]>, dtype: DType) -> Result<Self> {
        let [cout, cin, kh, kw] = shape;
        ensure(kh == 3 && kw == 3 && w.len() == cout * cin * 9, "winograd", || format!("weight of shape {shape:?} with {} values is not a 3x3 kernel", w.len()))?;
        ensure(cin % 4 == 0 && cout % 4 == 0, "winograd", || format!("weight {shape:?}: Cin and Cout must be multiples of 4"))?;
        let u = match dtype {
            DType::F32 => Tensor::from_f32(gpu, &[16, cout, cin], &transform_weight(w, cout, cin))?,
            DType::F16 => Tensor::from_f32_as_f16(gpu, &[16, cout, cin], &transform_weight(w, cout, cin))?,
        };
        let bias = match bias {
            Some(b) => {
                ensure(b.len() == cout, "winograd", || format!("bias has {} values for {cout} channels", b.len()))?;
                Some(Tensor::from_f32(gpu, &[cout], b)?)
            }
            None => None,
        };
        Ok(WinogradWeight { u, bias, cout, cin })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    h: u32,
    w: u32,
    c4: u32,
    th: u32,
    tw: u32,
    tiles: u32,
    act: u32,
    has_bias: u32,
    has_res: u32,
    ty0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER_IN, SHADER_OUT];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { h, w, c4, th, tw, tiles, act, has_bias, has_res, ty0, _pad1, _pad2 });

/// `act(conv3x3(x) + bias [+ residual])`, stride 1, padding 1: `x (B, H, W, Cin) -> (B, H, W,
/// Cout)`, with `residual (B, H, W, Cout)`; the products on the matmul's automatic kernel.
pub fn conv3x3(enc: &mut Encoder<'_>, x: &Tensor, wt: &WinogradWeight, act: Act, residual: Option<&Tensor>) -> Result<Tensor> {
    let v = linear::variant(enc.gpu(), &wt.u, true);
    conv3x3_with(enc, x, wt, act, residual, v)
}

/// Slice of samples `[s0, s1)` of an NHWC tensor, as a view.
fn samples(t: &Tensor, s0: usize, s1: usize) -> Tensor {
    let per = t.dtype.bytes(t.numel() / t.shape[0]);
    Tensor { buffer: t.buffer.clone(), shape: [&[s1 - s0], &t.shape[1..]].concat(), dtype: t.dtype, offset: t.offset + s0 as u64 * per }
}

/// [`conv3x3`] with the products on a given matmul kernel (tests and benchmarks).
pub fn conv3x3_with(enc: &mut Encoder<'_>, x: &Tensor, wt: &WinogradWeight, act: Act, residual: Option<&Tensor>, variant: Variant) -> Result<Tensor> {
    ensure(x.shape.len() == 4 && x.shape[3] == wt.cin, "winograd", || format!("input {:?} is not (B, H, W, {})", x.shape, wt.cin))?;
    let [b, h, w, cin] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let cout = wt.cout;
    if let Some(r) = residual {
        ensure(r.shape == [b, h, w, cout], "winograd", || format!("residual {:?} is not the output's shape {:?}", r.shape, [b, h, w, cout]))?;
    }
    let y = output(enc, &[b, h, w, cout])?;
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Work units: whole samples when V (16, tiles, Cin) and M (16, tiles, Cout) of one fit a
    // binding, else bands of tile rows of one sample.
    let gpu = enc.gpu();
    let max = gpu.max_binding() as usize;
    let row_bytes = 16 * tw * 4 * cin.max(cout);
    let rows_fit = max / row_bytes;
    ensure(rows_fit >= 1, "winograd", || format!("one row of tiles of {:?} transformed ({row_bytes} bytes) exceeds one binding ({max} bytes)", x.shape))?;
    let chunks: Vec<(usize, usize, usize, usize)> = if rows_fit >= th {
        let per = (rows_fit / th).min(b);
        (0..b).step_by(per).map(|s0| (s0, (s0 + per).min(b), 0, th)).collect()
    } else {
        (0..b).flat_map(|s| (0..th).step_by(rows_fit).map(move |r0| (s, s + 1, r0, (r0 + rows_fit).min(th)))).collect()
    };
    let p_in = gpu.pipeline(SHADER_IN, "winograd_in", 2, &[])?;
    let p_out = gpu.pipeline(SHADER_OUT, "winograd_out", 4, &[])?;
    for (s0, s1, r0, r1) in chunks {
        let tiles = (s1 - s0) * (r1 - r0) * tw;
        let (xs, ys) = (samples(x, s0, s1), samples(&y, s0, s1));
        ensure(xs.bytes() <= max as u64 && ys.bytes() <= max as u64, "winograd", || format!("one sample of {:?} or of the output exceeds one binding ({max} bytes)", x.shape))?;
        let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment);
        let rs = residual.map(|r| samples(r, s0, s1));
        ensure([Some(&xs), Some(&ys), rs.as_ref()].iter().flatten().all(|t| t.offset % align == 0), "winograd", || format!("input {:?} is cut into chunks of samples whose offsets are not multiples of the {align}-byte binding alignment", x.shape))?;
        let vt = output(enc, &[16, tiles, cin])?;
        let p = |c: usize, has_bias: bool, has_res: bool| Params {
            h: h as u32,
            w: w as u32,
            c4: (c / 4) as u32,
            th: (r1 - r0) as u32,
            tw: tw as u32,
            tiles: tiles as u32,
            act: act as u32,
            has_bias: has_bias as u32,
            has_res: has_res as u32,
            ty0: r0 as u32,
            _pad1: 0,
            _pad2: 0,
        };
        enc.dispatch(&p_in, &[xs.binding(), vt.binding()], bytemuck::bytes_of(&p(cin, false, false)), grid_flat(tiles * cin / 4, 64));
        let m = linear::matmul_with(enc, &vt, &wt.u, true, variant)?;
        drop(vt);
        let bias = wt.bias.as_ref().unwrap_or(&m);
        let res = rs.as_ref().unwrap_or(&m);
        let po = p(cout, wt.bias.is_some(), residual.is_some());
        enc.dispatch(&p_out, &[m.binding(), bias.binding(), res.binding(), ys.binding()], bytemuck::bytes_of(&po), grid_flat(tiles * cout / 4, 64));
    }
    Ok(y)
}
