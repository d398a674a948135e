//! Multi-head scaled dot-product attention, fused with an online softmax (attention.wgsl):
//! the (Lq, Lk) score matrix never exists, so 8 heads x 4096^2 at SD's 64x64 latents need no
//! 512 MiB buffer. Queries and context may differ in length (cross-attention).

use bytemuck::{Pod, Zeroable};

use super::{ensure, groups, output, Variant};
use crate::error::Result;
use crate::gpu::{Encoder, Gpu, Shader, Tensor};

const SHADER: Shader = shader!(["attention_params.wgsl"], "attention.wgsl");
/// The CPU variant for 8-lane subgroups (needs SUBGROUP and SHADER_INT64, hence its own file).
const SHADER_SG: Shader = shader!(["attention_params.wgsl", "u64.wgsl"], "attention_sg.wgsl");

/// The kernels `attention` has: `Tiled` (one invocation per query, scalar loads; GPUs, any
/// head size), `Cpu` (the same with vec4 loads and keys four at a time; CPU adapters), and
/// `Subgroup` (8 queries per subgroup sharing each key and value by subgroupBroadcast).
const VARIANTS: &[Variant] = &[Variant::Tiled, Variant::Cpu, Variant::Subgroup];
/// Largest head size the kernel holds in private memory.
pub const D_MAX: usize = 512;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    lq: u32,
    lk: u32,
    heads: u32,
    d: u32,
    scale: f32,
    causal: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The kernels' files and their uniform's layout, for the test against the WGSL.
#[cfg(test)]
pub(crate) const SHADERS: &[Shader] = &[SHADER, SHADER_SG];
#[cfg(test)]
pub(crate) const META_LAYOUT: super::Layout = layout!(Params { lq, lk, heads, d, scale, causal, _pad0, _pad1 });

/// `q (B, Lq, H*D)`, `k`, `v (B, Lk, H*D)` -> `(B, Lq, H*D)`, scale `1/sqrt(D)`; `causal`
/// masks keys after the query (CLIP text encoder).
pub fn attention(enc: &mut Encoder<'_>, q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: bool) -> Result<Tensor> {
    let variant = variant(enc.gpu(), q, heads);
    attention_with(enc, q, k, v, heads, causal, variant)
}

/// The kernel `attention` runs for these queries and heads on this adapter.
pub fn variant(gpu: &Gpu, q: &Tensor, heads: usize) -> Variant {
    // The CPU kernels read vec4s along the head.
    let d = q.shape.last().copied().unwrap_or(0).checked_div(heads).unwrap_or(0);
    Variant::choose(gpu, d.is_multiple_of(4), true, false)
}

/// `attention` with a given kernel (tests compare the variants; `Cpu` and `Subgroup` need
/// D % 4 == 0; adapter features as `Variant::needs`).
pub fn attention_with(enc: &mut Encoder<'_>, q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: bool, variant: Variant) -> Result<Tensor> {
    ensure(q.shape.len() == 3 && k.shape.len() == 3 && v.shape == k.shape, "attention", || format!("q {:?}, k {:?}, v {:?} must be (B, L, H*D) with k and v alike", q.shape, k.shape, v.shape))?;
    let (b, lq, width) = (q.shape[0], q.shape[1], q.shape[2]);
    ensure(k.shape[0] == b && k.shape[2] == width, "attention", || format!("q {:?} and k {:?} differ in batch or width", q.shape, k.shape))?;
    ensure(heads > 0 && width % heads == 0 && width / heads <= D_MAX, "attention", || format!("width {width} does not split into {heads} heads of at most {D_MAX}"))?;
    let d = width / heads;
    let y = output(enc, &q.shape)?;
    let p = Params { lq: lq as u32, lk: k.shape[1] as u32, heads: heads as u32, d: d as u32, scale: 1.0 / (d as f32).sqrt(), causal: causal as u32, _pad0: 0, _pad1: 0 };
    variant.needs(enc.gpu(), "attention", VARIANTS)?;
    ensure(variant == Variant::Tiled || d.is_multiple_of(4), "attention", || format!("the {variant:?} kernel needs a head size divisible by 4, got {d}"))?;
    let bindings = [q.binding(), k.binding(), v.binding(), y.binding()];
    match variant {
        Variant::Subgroup => {
            // Short heads (SD's 40 at its largest level) keep a whole key in registers.
            let entry = if d <= 48 { "attention_sg_short" } else { "attention_sg" };
            let pipeline = enc.gpu().pipeline(SHADER_SG, entry, 4, &[("D4", (d / 4) as f64)])?;
            enc.dispatch(&pipeline, &bindings, bytemuck::bytes_of(&p), [groups(lq, 8), heads as u32, b as u32]);
        }
        _ => {
            let entry = if variant == Variant::Cpu { "attention_v4" } else { "attention" };
            let pipeline = enc.gpu().pipeline(SHADER, entry, 4, &[])?;
            enc.dispatch(&pipeline, &bindings, bytemuck::bytes_of(&p), [groups(lq, 64), heads as u32, b as u32]);
        }
    }
    Ok(y)
}
