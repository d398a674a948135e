//! `conv2d` on NHWC activations, with weights repacked from PyTorch's (Cout, Cin, kh, kw) to
//! (Cout, kh, kw, Cin) at load ([`ConvWeight`]); stride 1 or 2, any padding (top/left given,
//! bottom/right implied by the output size), optional bias, fused ReLU or SiLU, and with
//! [`conv2d_add`] a residual added before the activation (one pass instead of a conv and an add).

use bytemuck::{Pod, Zeroable};

use super::elementwise::binary;
use super::{bands, ensure, grid_flat, groups, output, Act, Variant};
use crate::error::Result;
use crate::gpu::{AdapterKind, DType, Encoder, Gpu, Shader, Tensor};

/// The kernels `conv2d` has.
const VARIANTS: &[Variant] = &[Variant::Tiled, Variant::TiledF16, Variant::Cpu, Variant::Subgroup];

const SHADER: Shader = shader!(["conv2d_params.wgsl", "packed.wgsl", "im2col.wgsl"], "conv2d.wgsl");
/// The CPU variant for 8-lane subgroups (needs SUBGROUP and SHADER_INT64, hence its own file).
const SHADER_SG: Shader = shader!(["conv2d_params.wgsl", "u64.wgsl", "sg_operands.wgsl"], "conv2d_sg.wgsl");
/// Needs SHADER_F16, so apart from conv2d.wgsl.
const SHADER_F16: Shader = shader!(["enable_f16.wgsl", "conv2d_params.wgsl", "im2col.wgsl"], "conv2d_f16.wgsl");
/// (output pixels, output channels) per workgroup of `conv_cpu`, `conv_sg`, `conv_tiled`.
const CPU_TILE: (usize, usize) = (8, 64);
const SG_TILE: (usize, usize) = (32, 32);
const GPU_TILE: (usize, usize) = (16, 16);

/// A convolution's weights on the GPU, repacked for the kernels.
#[derive(Debug, Clone)]
pub struct ConvWeight {
    /// (Cout, kh, kw, Cin)
    pub weight: Tensor,
    /// (Cout)
    pub bias: Option<Tensor>,
    /// Output channels.
    pub cout: usize,
    /// Input channels.
    pub cin: usize,
    /// Input channels of the stored weight: `cin`, or on CPU adapters `cin` rounded up to a
    /// multiple of 4 with zero weights (the register-blocked kernels read vec4s of channels;
    /// `conv2d` pads the input to match). RGB inputs (Cin 3) otherwise fall back to the
    /// workgroup-tiled kernel, which is 30x slower on lavapipe.
    pub cin_stored: usize,
    /// Kernel height and width.
    pub k: (usize, usize),
}

impl ConvWeight {
    /// From PyTorch's layout `w (Cout, Cin, kh, kw)` and `bias (Cout)`, stored as `dtype`.
    pub fn from_torch(gpu: &Gpu, w: &[f32], shape: [usize; 4], bias: Option<&[f32]>, dtype: DType) -> Result<Self> {
        let [cout, cin, kh, kw] = shape;
        ensure(w.len() == cout * cin * kh * kw, "conv2d", || format!("weight of shape {shape:?} has {} values", w.len()))?;
        let cin_stored = if gpu.kind == AdapterKind::Cpu { cin.div_ceil(4) * 4 } else { cin };
        let packed = if cin_stored == cin {
            repack(w, shape)
        } else {
            let mut padded = vec![0.0; cout * cin_stored * kh * kw];
            for o in 0..cout {
                let n = cin * kh * kw;
                padded[o * cin_stored * kh * kw..][..n].copy_from_slice(&w[o * n..][..n]);
            }
            repack(&padded, [cout, cin_stored, kh, kw])
        };
        let wshape = [cout, kh, kw, cin_stored];
        let weight = match dtype {
            DType::F32 => Tensor::from_f32(gpu, &wshape, &packed)?,
            DType::F16 => Tensor::from_f32_as_f16(gpu, &wshape, &packed)?,
        };
        let bias = match bias {
            Some(b) => {
                ensure(b.len() == cout, "conv2d", || format!("bias has {} values for {cout} channels", b.len()))?;
                Some(Tensor::from_f32(gpu, &[cout], b)?)
            }
            None => None,
        };
        Ok(ConvWeight { weight, bias, cout, cin, cin_stored, k: (kh, kw) })
    }
}

/// (Cout, Cin, kh, kw) -> (Cout, kh, kw, Cin)
pub fn repack(w: &[f32], [cout, cin, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin {
            for y in 0..kh {
                for x in 0..kw {
                    out[((o * kh + y) * kw + x) * cin + i] = w[((o * cin + i) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// 1 or 2.
    pub stride: usize,
    /// Rows of zeros above, and below.
    pub pad_y: (usize, usize),
    /// Columns of zeros left, and right.
    pub pad_x: (usize, usize),
    /// Fused activation.
    pub act: Act,
}

impl ConvSpec {
    /// Stride 1, padding `p` on every side.
    pub fn same(p: usize, act: Act) -> Self {
        ConvSpec { stride: 1, pad_y: (p, p), pad_x: (p, p), act }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    h: u32,
    w: u32,
    cin: u32,
    ho: u32,
    wo: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    act: u32,
    has_bias: u32,
    has_res: u32,
    _pad1: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER, SHADER_SG, SHADER_F16];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { batch, h, w, cin, ho, wo, cout, kh, kw, stride, pad_top, pad_left, act, has_bias, has_res, _pad1 });

/// `x (B, H, W, Cin) -> (B, Ho, Wo, Cout)`.
pub fn conv2d(enc: &mut Encoder<'_>, x: &Tensor, wt: &ConvWeight, spec: ConvSpec) -> Result<Tensor> {
    let v = variant(enc.gpu(), wt);
    conv2d_with(enc, x, wt, spec, v)
}

/// The kernel `conv2d` runs for these weights on this adapter.
pub fn variant(gpu: &Gpu, wt: &ConvWeight) -> Variant {
    // The CPU kernels read vec4s of input channels.
    Variant::choose(gpu, wt.cin_stored.is_multiple_of(4), true, wt.weight.dtype == DType::F16)
}

/// `conv2d` with a given kernel (tests compare the variants; `Cpu` and `Subgroup` need
/// Cin % 4 == 0, `TiledF16` f16 weights; adapter features as `Variant::needs`).
pub fn conv2d_with(enc: &mut Encoder<'_>, x: &Tensor, wt: &ConvWeight, spec: ConvSpec, variant: Variant) -> Result<Tensor> {
    conv2d_add_with(enc, x, wt, spec, None, variant)
}

/// `act(conv(x) + bias + residual)` in one pass, with `residual (B, Ho, Wo, Cout)` (ResNet
/// blocks: the conv, the skip connection and the activation, without a separate add).
pub fn conv2d_add(enc: &mut Encoder<'_>, x: &Tensor, wt: &ConvWeight, spec: ConvSpec, residual: &Tensor) -> Result<Tensor> {
    let v = variant(enc.gpu(), wt);
    conv2d_add_with(enc, x, wt, spec, Some(residual), v)
}

/// A residual must be f32 in the output's shape.
fn check_residual(r: &Tensor, out: &[usize]) -> Result<()> {
    ensure(r.shape == out && r.dtype == DType::F32, "conv2d", || format!("residual {:?} ({:?}) is not the output's shape {out:?} in f32", r.shape, r.dtype))
}

/// [`conv2d_with`] with an optional residual added before the activation ([`conv2d_add`]).
pub fn conv2d_add_with(enc: &mut Encoder<'_>, x: &Tensor, wt: &ConvWeight, spec: ConvSpec, residual: Option<&Tensor>, variant: Variant) -> Result<Tensor> {
    variant.needs(enc.gpu(), "conv2d", VARIANTS)?;
    ensure(variant != Variant::TiledF16 || wt.weight.dtype == DType::F16, "conv2d", || "the TiledF16 kernel needs f16 weights".into())?;
    ensure(matches!(variant, Variant::Tiled | Variant::TiledF16) || wt.cin_stored.is_multiple_of(4), "conv2d", || format!("the {variant:?} kernel needs Cin % 4 == 0, got {}", wt.cin_stored))?;
    ensure(x.shape.len() == 4 && x.shape[3] == wt.cin, "conv2d", || format!("input {:?} is not (B, H, W, {})", x.shape, wt.cin))?;
    // The Subgroup kernel reads a residual as vec4s of channels: with other widths, conv, then add.
    if let (Some(r), Variant::Subgroup) = (residual, variant) {
        if !wt.cout.is_multiple_of(4) {
            let h = conv2d_add_with(enc, x, wt, ConvSpec { act: Act::None, ..spec }, None, variant)?;
            check_residual(r, &h.shape)?;
            return binary(enc, &h, r, false, spec.act);
        }
    }
    // Zero channels up to the stored weight's (whose extra weights are zero too).
    let padded;
    let x = if wt.cin_stored != wt.cin {
        let zeros = output(enc, &[x.shape[0], x.shape[1], x.shape[2], wt.cin_stored - wt.cin])?;
        padded = super::resample::concat(enc, x, &zeros)?;
        &padded
    } else {
        x
    };
    let [b, h, w, cin] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let (kh, kw) = wt.k;
    let (hp, wp) = (h + spec.pad_y.0 + spec.pad_y.1, w + spec.pad_x.0 + spec.pad_x.1);
    ensure(hp >= kh && wp >= kw && spec.stride >= 1, "conv2d", || format!("input {:?} too small for a {kh}x{kw} kernel", x.shape))?;
    let (ho, wo) = ((hp - kh) / spec.stride + 1, (wp - kw) / spec.stride + 1);
    if let Some(r) = residual {
        check_residual(r, &[b, ho, wo, wt.cout])?;
    }
    let y = output(enc, &[b, ho, wo, wt.cout])?;
    let gpu = enc.gpu();
    ensure(wt.weight.bytes() <= gpu.max_binding(), "conv2d", || format!("weight of {} bytes exceeds one binding", wt.weight.bytes()))?;
    let (shader, entry, tile) = match variant {
        Variant::Tiled => (SHADER, "conv_tiled", GPU_TILE),
        Variant::TiledF16 => (SHADER_F16, "conv_tiled_f16", GPU_TILE),
        Variant::Cpu => (SHADER, "conv_cpu", CPU_TILE),
        Variant::Subgroup => (SHADER_SG, "conv_sg", SG_TILE),
    };
    let f16 = (wt.weight.dtype == DType::F16) as u8 as f64;
    let pipeline = match variant {
        Variant::Subgroup => gpu.pipeline(shader, entry, 5, &[("W_F16", f16), ("KH", kh as f64), ("KW", kw as f64), ("RES", residual.is_some() as u8 as f64)])?,
        Variant::TiledF16 => gpu.pipeline(shader, entry, 5, &[])?,
        _ => gpu.pipeline(shader, entry, 5, &[("W_F16", f16)])?,
    };
    let p = Params {
        batch: b as u32,
        h: h as u32,
        w: w as u32,
        cin: cin as u32,
        ho: ho as u32,
        wo: wo as u32,
        cout: wt.cout as u32,
        kh: kh as u32,
        kw: kw as u32,
        stride: spec.stride as u32,
        pad_top: spec.pad_y.0 as u32,
        pad_left: spec.pad_x.0 as u32,
        act: spec.act as u32,
        has_bias: wt.bias.is_some() as u32,
        has_res: residual.is_some() as u32,
        _pad1: 0,
    };
    // Absent bias and residual bind the input (read-only, not read).
    let bias = wt.bias.as_ref().unwrap_or(x);
    let res = residual.unwrap_or(x);
    let grid = |rows: usize| {
        let gx = groups(wt.cout, tile.1);
        let [gy, gz, _] = grid_flat(rows, tile.0);
        [gx, gy, gz]
    };
    let tensors: Vec<&Tensor> = [Some(x), Some(&y), residual].into_iter().flatten().collect();
    if !bands::needed(gpu, "conv2d", &tensors)? {
        enc.dispatch(&pipeline, &[x.binding(), wt.weight.binding(), bias.binding(), res.binding(), y.binding()], bytemuck::bytes_of(&p), grid(b * ho * wo));
        return Ok(y);
    }
    // Bands of output rows, each with the input rows it reads; padding rows stay virtual.
    let max = gpu.max_binding();
    let (row_in, row_out) = (bands::row_bytes(x), bands::row_bytes(&y));
    let band = ((max / row_out) as usize).min(((max / row_in) as usize).saturating_sub(kh) / spec.stride + 1);
    ensure(band >= 1, "conv2d", || format!("one output row ({row_out} bytes) with its {kh} input rows ({row_in} bytes each) exceeds one binding ({max} bytes)"))?;
    for s in 0..b {
        for oy0 in (0..ho).step_by(band) {
            let oy1 = (oy0 + band).min(ho);
            let start = (oy0 * spec.stride) as isize - spec.pad_y.0 as isize;
            let iy0 = start.max(0) as usize;
            let iy1 = (((oy1 - 1) * spec.stride + kh) as isize - spec.pad_y.0 as isize).clamp(iy0 as isize + 1, h as isize) as usize;
            let pb = Params { batch: 1, h: (iy1 - iy0) as u32, ho: (oy1 - oy0) as u32, pad_top: (iy0 as isize - start) as u32, ..p };
            let (xv, yv) = (bands::rows(x, s, iy0, iy1), bands::rows(&y, s, oy0, oy1));
            let rv = match residual {
                Some(r) => bands::rows(r, s, oy0, oy1),
                None => xv.clone(),
            };
            enc.dispatch(&pipeline, &[xv.binding(), wt.weight.binding(), bias.binding(), rv.binding(), yv.binding()], bytemuck::bytes_of(&pb), grid((oy1 - oy0) * wo));
        }
    }
    Ok(y)
}
