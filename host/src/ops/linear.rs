//! `linear`: y (M, N) = x (M, K) . W^T (+ bias), W (N, K) as in torch.nn.Linear, f32 or f16;
//! and batched `matmul` for attention. Weights larger than one storage binding are split
//! into ranges of output rows, each bound separately.

use bytemuck::{Pod, Zeroable};

use super::{ensure, groups, output, Variant};
use crate::error::Result;
use crate::gpu::{DType, Encoder, Gpu, Shader, Tensor};

const SHADER: Shader = shader!(["linear_params.wgsl", "packed.wgsl"], "linear.wgsl");
/// The CPU variant for 8-lane subgroups (needs SUBGROUP and SHADER_INT64, hence its own file).
const SHADER_SG: Shader = shader!(["linear_params.wgsl", "u64.wgsl", "sg_operands.wgsl"], "linear_sg.wgsl");
/// Needs SHADER_F16, so apart from linear.wgsl.
const SHADER_F16: Shader = shader!(["enable_f16.wgsl", "linear_params.wgsl"], "linear_f16.wgsl");
/// Output rows per workgroup and columns per workgroup in `linear_cpu`.
const CPU_TILE: (usize, usize) = (8, 64);
/// The same in `linear_sg`.
const SG_TILE: (usize, usize) = (32, 32);

/// The kernels `linear` and `matmul` have.
const VARIANTS: &[Variant] = &[Variant::Tiled, Variant::TiledF16, Variant::Cpu, Variant::Subgroup];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct Meta {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    x_batch: u32,
    w_batch: u32,
    y_batch: u32,
    has_bias: u32,
    w_offset: u32,
    n_offset: u32,
    n_total: u32,
    _pad: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER, SHADER_SG, SHADER_F16];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Meta { batch, m, n, k, x_batch, w_batch, y_batch, has_bias, w_offset, n_offset, n_total, _pad });

/// `x (.., K) -> y (.., N)` with `w (N, K)` and optional `bias (N)`.
pub fn linear(enc: &mut Encoder<'_>, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    ensure(w.shape.len() == 2, "linear", || format!("weight must be (N, K), got {:?}", w.shape))?;
    let (n, k) = (w.shape[0], w.shape[1]);
    let kx = *x.shape.last().unwrap_or(&0);
    ensure(kx == k, "linear", || format!("input {:?} has {kx} features, weight {:?} expects {k}", x.shape, w.shape))?;
    ensure(x.dtype == DType::F32, "linear", || "input must be f32".into())?;
    if let Some(b) = bias {
        ensure(b.numel() == n && b.dtype == DType::F32, "linear", || format!("bias {:?} for {n} outputs", b.shape))?;
    }
    let m = x.numel() / k.max(1);
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a dimension") = n;
    let y = output(enc, &shape)?;
    run(enc, x, w, bias, &y, Dims { batch: 1, m, n, k, x_batch: 0, w_batch: 0, y_batch: 0 }, true)?;
    Ok(y)
}

/// Batched `a (B, M, K) . b (B, K, N) -> (B, M, N)`, or `. b^T` with `b (B, N, K)` when
/// `transpose_b`. f32 only.
pub fn matmul(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor, transpose_b: bool) -> Result<Tensor> {
    ensure(a.shape.len() == 3 && b.shape.len() == 3 && a.shape[0] == b.shape[0], "matmul", || format!("expects (B, M, K) and (B, ., .), got {:?} and {:?}", a.shape, b.shape))?;
    let (batch, m, k) = (a.shape[0], a.shape[1], a.shape[2]);
    let (kb, n) = if transpose_b { (b.shape[2], b.shape[1]) } else { (b.shape[1], b.shape[2]) };
    ensure(k == kb, "matmul", || format!("inner sizes differ: {:?} . {:?} (transpose_b {transpose_b})", a.shape, b.shape))?;
    let y = output(enc, &[batch, m, n])?;
    run(enc, a, b, None, &y, Dims { batch, m, n, k, x_batch: m * k, w_batch: k * n, y_batch: m * n }, transpose_b)?;
    Ok(y)
}

/// [`matmul`] with a given kernel (tests and benchmarks; the needs of [`linear_with`], with
/// `Cpu` and `Subgroup` for `transpose_b` only).
pub fn matmul_with(enc: &mut Encoder<'_>, a: &Tensor, b: &Tensor, transpose_b: bool, variant: Variant) -> Result<Tensor> {
    ensure(a.shape.len() == 3 && b.shape.len() == 3 && a.shape[0] == b.shape[0], "matmul", || format!("expects (B, M, K) and (B, ., .), got {:?} and {:?}", a.shape, b.shape))?;
    let (batch, m, k) = (a.shape[0], a.shape[1], a.shape[2]);
    let (kb, n) = if transpose_b { (b.shape[2], b.shape[1]) } else { (b.shape[1], b.shape[2]) };
    ensure(k == kb, "matmul", || format!("inner sizes differ: {:?} . {:?} (transpose_b {transpose_b})", a.shape, b.shape))?;
    variant.needs(enc.gpu(), "matmul", VARIANTS)?;
    ensure(variant != Variant::TiledF16 || b.dtype == DType::F16, "matmul", || "the TiledF16 kernel needs f16 weights".into())?;
    ensure(matches!(variant, Variant::Tiled | Variant::TiledF16) || (transpose_b && k % 4 == 0), "matmul", || format!("the {variant:?} kernel needs b transposed and K % 4 == 0, got K {k}"))?;
    ensure(variant != Variant::Subgroup || n % 2 == 0, "matmul", || format!("the Subgroup kernel stores pairs of outputs: N must be even, got {n}"))?;
    let y = output(enc, &[batch, m, n])?;
    run_variant(enc, a, b, None, &y, Dims { batch, m, n, k, x_batch: m * k, w_batch: k * n, y_batch: m * n }, transpose_b, variant)?;
    Ok(y)
}

/// `a (1, M, rows) . w[n0 .. n0 + rows, :] -> (1, M, K)` for `w (N, K)` untransposed (the
/// input gradient of `linear`, `ops::grad::linear_backward`): a band of the rows of a weight
/// larger than one binding, bound from the aligned offset below it (`Tiled` and `TiledF16`,
/// the kernels that read W untransposed).
pub(crate) fn matmul_rows(enc: &mut Encoder<'_>, a: &Tensor, w: &Tensor, n0: usize, rows: usize, v: Variant) -> Result<Tensor> {
    ensure(w.shape.len() == 2 && n0 + rows <= w.shape[0] && rows > 0, "matmul_rows", || format!("rows {n0}..{} of weight {:?}", n0 + rows, w.shape))?;
    let (m, k) = (a.numel() / rows, w.shape[1]);
    ensure(a.shape.last() == Some(&rows), "matmul_rows", || format!("gradient band {:?} for {rows} rows", a.shape))?;
    ensure(matches!(v, Variant::Tiled | Variant::TiledF16), "matmul_rows", || format!("the {v:?} kernel reads W transposed only"))?;
    ensure(v != Variant::TiledF16 || w.dtype == DType::F16, "matmul_rows", || "the TiledF16 kernel needs f16 weights".into())?;
    v.needs(enc.gpu(), "matmul", VARIANTS)?;
    let gpu = enc.gpu();
    let f16 = w.dtype == DType::F16;
    let elem = if f16 { 2 } else { 4 };
    let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment).max(16);
    let start = w.offset + (n0 * k * elem) as u64;
    let aligned = start / align * align;
    let size = (start - aligned + (rows * k * elem) as u64).div_ceil(16) * 16;
    ensure(size <= gpu.max_binding(), "matmul_rows", || format!("{rows} rows of weight {:?} take {size} bytes, more than a binding ({})", w.shape, gpu.max_binding()))?;
    let binding = wgpu::BufferBinding { buffer: &w.buffer, offset: aligned, size: wgpu::BufferSize::new(size) };
    let (shader, entry, constants): (Shader, &str, &[(&str, f64)]) = match v {
        Variant::TiledF16 => (SHADER_F16, "linear_tiled_f16", &[("TRANS_B", 0.0)]),
        _ => (SHADER, "linear_tiled", if f16 { &[("W_F16", 1.0), ("TRANS_B", 0.0)] } else { &[("W_F16", 0.0), ("TRANS_B", 0.0)] }),
    };
    let pipeline = gpu.pipeline(shader, entry, 4, constants)?;
    let y = output(enc, &[1, m, k])?;
    let meta = Meta {
        batch: 1,
        m: m as u32,
        n: k as u32,
        k: rows as u32,
        x_batch: 0,
        w_batch: 0,
        y_batch: 0,
        has_bias: 0,
        w_offset: ((start - aligned) / elem as u64) as u32,
        n_offset: 0,
        n_total: k as u32,
        _pad: 0,
    };
    enc.dispatch(&pipeline, &[a.binding(), binding, a.binding(), y.binding()], bytemuck::bytes_of(&meta), [groups(k, 16), groups(m, 16), 1]);
    Ok(y)
}

struct Dims {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    x_batch: usize,
    w_batch: usize,
    y_batch: usize,
}

/// The kernel `linear` (`w (N, K)`, `trans_b`) or `matmul` (`b (B, K, N)`, or `(B, N, K)`
/// with `trans_b`) runs for this weight on this adapter.
pub fn variant(gpu: &Gpu, w: &Tensor, trans_b: bool) -> Variant {
    // The CPU kernels read vec4s along K (W as (N, K) only): K, and with it the batch strides
    // (M K and K N), must be multiples of 4. The subgroup kernel stores pairs of outputs: N
    // must be even.
    let r = w.shape.len();
    let (n, k) = if r >= 2 { (w.shape[r - 2], w.shape[r - 1]) } else { (0, 0) };
    Variant::choose(gpu, trans_b && r >= 2 && k.is_multiple_of(4), n.is_multiple_of(2), w.dtype == DType::F16)
}

/// `linear` with a given kernel (tests compare the variants; `Cpu` and `Subgroup` need
/// K % 4 == 0, `Subgroup` an even N, `TiledF16` f16 weights; adapter features as
/// `Variant::needs`).
pub fn linear_with(enc: &mut Encoder<'_>, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, variant: Variant) -> Result<Tensor> {
    let (n, k) = (w.shape[0], w.shape[1]);
    variant.needs(enc.gpu(), "linear", VARIANTS)?;
    ensure(variant != Variant::TiledF16 || w.dtype == DType::F16, "linear", || "the TiledF16 kernel needs f16 weights".into())?;
    ensure(matches!(variant, Variant::Tiled | Variant::TiledF16) || k % 4 == 0, "linear", || format!("the {variant:?} kernel needs K % 4 == 0, got {k}"))?;
    ensure(variant != Variant::Subgroup || n % 2 == 0, "linear", || format!("the Subgroup kernel stores pairs of outputs: N must be even, got {n}"))?;
    let m = x.numel() / k.max(1);
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a dimension") = n;
    let y = output(enc, &shape)?;
    run_variant(enc, x, w, bias, &y, Dims { batch: 1, m, n, k, x_batch: 0, w_batch: 0, y_batch: 0 }, true, variant)?;
    Ok(y)
}

fn run(enc: &mut Encoder<'_>, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, y: &Tensor, d: Dims, trans_b: bool) -> Result<()> {
    let v = variant(enc.gpu(), w, trans_b);
    run_variant(enc, x, w, bias, y, d, trans_b, v)
}

#[allow(clippy::too_many_arguments)]
fn run_variant(enc: &mut Encoder<'_>, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, y: &Tensor, d: Dims, trans_b: bool, v: Variant) -> Result<()> {
    let gpu = enc.gpu();
    let f16 = w.dtype == DType::F16;
    let cpu = matches!(v, Variant::Cpu | Variant::Subgroup);
    let (shader, entry) = match v {
        Variant::Tiled => (SHADER, "linear_tiled"),
        Variant::TiledF16 => (SHADER_F16, "linear_tiled_f16"),
        Variant::Cpu => (SHADER, "linear_cpu"),
        Variant::Subgroup => (SHADER_SG, "linear_sg"),
    };
    let constants: &[(&str, f64)] = match v {
        Variant::Subgroup => &[("W_F16", f16 as u8 as f64)],
        Variant::TiledF16 => &[("TRANS_B", trans_b as u8 as f64)],
        _ => &[("W_F16", f16 as u8 as f64), ("TRANS_B", trans_b as u8 as f64)],
    };
    let pipeline = gpu.pipeline(shader, entry, 4, constants)?;
    // Split the weight into ranges of output rows that fit one binding (linear only).
    let elem = if f16 { 2 } else { 4 };
    let row_bytes = (d.k * elem) as u64;
    let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment).max(16);
    let mut max_rows = if d.batch == 1 && trans_b { ((gpu.max_binding() - align) / row_bytes.max(1)).max(1) as usize } else { d.n };
    if max_rows < d.n && v == Variant::Subgroup {
        // Ranges start at even columns (the kernel stores pairs).
        max_rows = (max_rows / 2 * 2).max(2);
    }
    let bias_binding = bias.unwrap_or(x).binding();
    let mut n0 = 0;
    while n0 < d.n {
        let rows = max_rows.min(d.n - n0);
        let (w_binding, w_offset) = if rows == d.n {
            (w.binding(), 0)
        } else {
            let start = w.offset + n0 as u64 * row_bytes;
            let aligned = start / align * align;
            let size = (start - aligned + rows as u64 * row_bytes).div_ceil(16) * 16;
            let binding = wgpu::BufferBinding { buffer: &w.buffer, offset: aligned, size: wgpu::BufferSize::new(size) };
            // In elements for linear_tiled, in vec4 groups for linear_cpu.
            let offset = (start - aligned) / elem as u64;
            (binding, if cpu { offset / 4 } else { offset } as u32)
        };
        let meta = Meta {
            batch: d.batch as u32,
            m: d.m as u32,
            n: rows as u32,
            k: d.k as u32,
            x_batch: d.x_batch as u32,
            w_batch: d.w_batch as u32,
            y_batch: d.y_batch as u32,
            has_bias: bias.is_some() as u32,
            w_offset,
            n_offset: n0 as u32,
            n_total: d.n as u32,
            _pad: 0,
        };
        let grid = match v {
            Variant::Tiled | Variant::TiledF16 => [groups(rows, 16), groups(d.m, 16), d.batch as u32],
            Variant::Cpu => [groups(rows, CPU_TILE.1), groups(d.m, CPU_TILE.0), d.batch as u32],
            Variant::Subgroup => [groups(rows, SG_TILE.1), groups(d.m, SG_TILE.0), d.batch as u32],
        };
        enc.dispatch(&pipeline, &[x.binding(), w_binding, bias_binding.clone(), y.binding()], bytemuck::bytes_of(&meta), grid);
        n0 += rows;
    }
    Ok(())
}
