//! One Rust op per WGSL kernel: shape checks, the meta uniform (a `#[repr(C)]` struct that
//! mirrors the WGSL struct field for field, checked by a test), and the dispatch size. Ops with
//! several kernels (`linear`, `conv2d`, `attention`) share one contract: [`Variant`] names the
//! kernel, `Variant::needs` checks the adapter features, each op's `variant` makes the
//! automatic choice and its `*_with` runs a given one. Shaders are whole files of shaders/
//! concatenated (`shader!`: shaders/common/ parts, then the kernel file). The plain-loop CPU
//! references, with shape comments, are in `reference` (tests and the `reference` feature).

/// A [`Shader`](crate::gpu::Shader) of whole files of shaders/, in order: the parts from
/// shaders/common/, then the kernel file, which names it.
macro_rules! shader {
    ([$($part:literal),*], $kernel:literal) => {
        $crate::gpu::Shader {
            name: $kernel,
            parts: &[$(include_str!(concat!("../../../shaders/common/", $part)),)* include_str!(concat!("../../../shaders/", $kernel))],
        }
    };
}

/// The size and the fields' names and offsets of a `#[repr(C)]` meta struct, from
/// `offset_of!` (a test compares them with the WGSL struct at @group(1) @binding(0)); the
/// pattern makes the list of fields exhaustive.
#[cfg(test)]
macro_rules! layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {{
        #[allow(dead_code)]
        fn exhaustive(p: &$ty) {
            let $ty { $($field: _),* } = p;
        }
        $crate::ops::Layout { size: core::mem::size_of::<$ty>(), fields: &[$((stringify!($field), core::mem::offset_of!($ty, $field))),*] }
    }};
}

pub mod attention;
pub mod conv2d;
pub mod depthwise;
pub mod elementwise;
pub mod grad;
pub mod linear;
pub mod norm;
pub mod pool;
#[cfg(any(test, feature = "reference"))]
pub mod reference;
pub mod resample;
pub mod resize;
pub mod softmax;
pub mod timestep;
pub mod winograd;
#[cfg(test)]
mod tests;

/// A meta struct's layout ([`layout!`]).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Layout {
    /// `size_of`.
    pub size: usize,
    /// Names and `offset_of`s, in order.
    pub fields: &'static [(&'static str, usize)],
}

use crate::error::{Error, Result};
use crate::gpu::{AdapterKind, Encoder, Gpu, Tensor};

/// Activation fused into an op's output (conv2d, add/mul); the WGSL kernels take it as a u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None.
    None = 0,
    /// max(x, 0)
    Relu = 1,
    /// x * sigmoid(x)
    Silu = 2,
    /// min(max(x, 0), 6) (MobileNet, EfficientNet-Lite)
    Relu6 = 3,
}

/// Which kernel runs an op (`linear`/`matmul`, `conv2d`, `attention`): chosen by adapter and
/// shape (each op's `variant`), or forced with the op's `*_with` function (tests, benches).
/// An op implements some of these; `Variant::needs` refuses the others, and the kernels
/// whose adapter features are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The kernel for GPUs, which takes any shape: workgroup-memory tiles (linear, conv2d);
    /// one invocation per query with scalar loads (attention).
    Tiled,
    /// The tiled kernel reading f16 weights as WGSL `f16` (SHADER_F16; linear, conv2d).
    TiledF16,
    /// The CPU-adapter kernel: vec4 loads, register-blocked with all lanes reading the same
    /// rows (linear, conv2d) or keys four at a time (attention). Needs the vec4 dimension
    /// (K, Cin, head size) to be a multiple of 4.
    Cpu,
    /// The CPU-adapter kernel sharing operands by subgroupBroadcast and reading u64 (8-lane
    /// subgroups and SHADER_INT64, [`Gpu::subgroup8_int64`]). Same shape needs as `Cpu`.
    Subgroup,
}

impl Variant {
    /// Checks that `op`, which has the kernels `has`, has this one, and that the adapter has
    /// the features it needs; the error names the op and what is missing. Shape and dtype
    /// needs are the op's to check.
    pub(crate) fn needs(self, gpu: &Gpu, op: &str, has: &[Variant]) -> Result<()> {
        ensure(has.contains(&self), op, || format!("has no {self:?} kernel (it has {has:?})"))?;
        match self {
            Variant::TiledF16 => ensure(gpu.shader_f16, op, || format!("the {self:?} kernel needs SHADER_F16, which {} lacks", gpu.info.name)),
            Variant::Subgroup => ensure(gpu.subgroup8_int64, op, || format!("the {self:?} kernel needs 8-lane subgroups and SHADER_INT64 (64-bit integers), which {} lacks", gpu.info.name)),
            Variant::Tiled | Variant::Cpu => Ok(()),
        }
    }

    /// The automatic choice, the same for every op: on CPU adapters, when the op's shape
    /// allows vec4 loads (`vec4`), `Subgroup` where the adapter has it and the shape allows it
    /// too (`subgroup`), else `Cpu`; elsewhere `TiledF16` for f16 weights (`f16`) on adapters
    /// with SHADER_F16, else `Tiled`.
    pub(crate) fn choose(gpu: &Gpu, vec4: bool, subgroup: bool, f16: bool) -> Variant {
        if gpu.kind == AdapterKind::Cpu && vec4 {
            if gpu.subgroup8_int64 && subgroup {
                Variant::Subgroup
            } else {
                Variant::Cpu
            }
        } else if gpu.shader_f16 && f16 {
            Variant::TiledF16
        } else {
            Variant::Tiled
        }
    }
}

/// Fails with a message naming the op when `ok` is false.
pub fn ensure(ok: bool, op: &str, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Shape(format!("{op}: {}", what())))
    }
}

/// Number of workgroups to cover `n` items with `per` items each.
pub(crate) fn groups(n: usize, per: usize) -> u32 {
    n.div_ceil(per).max(1) as u32
}

/// An f32 output tensor of `shape`, checked against the adapter's buffer limit.
pub(crate) fn output(enc: &Encoder<'_>, shape: &[usize]) -> Result<Tensor> {
    Tensor::empty(enc.gpu(), shape)
}

/// A 2D grid of workgroups covering `items` invocations, `per` per workgroup, that stays
/// within the 65,535 workgroups a dimension allows; shaders flatten it back with
/// `num_workgroups`.
pub(crate) fn grid_flat(items: usize, per: usize) -> [u32; 3] {
    let total = items.div_ceil(per).max(1);
    let x = total.min(65_535);
    [x as u32, total.div_ceil(x) as u32, 1]
}

/// Row bands for tensors larger than one storage binding (lavapipe and wgpu's defaults cap a
/// binding at 128 MiB; SD's VAE decoder at 512x512 has 256-channel activations of 256 MiB).
/// An NHWC tensor's rows are contiguous, so a band of rows of one sample is a sub-range of its
/// buffer that can be bound on its own, as long as it starts at an offset the adapter allows.
pub(crate) mod bands {
    use super::ensure;
    use crate::error::Result;
    use crate::gpu::{Gpu, Tensor};

    /// Whether any of `tensors` exceeds a binding; if so, checks that each can be cut into
    /// rows at allowed offsets (a row's bytes a multiple of the offset alignment).
    pub fn needed(gpu: &Gpu, op: &str, tensors: &[&Tensor]) -> Result<bool> {
        let max = gpu.max_binding();
        if tensors.iter().all(|t| t.bytes().div_ceil(16) * 16 <= max) {
            return Ok(false);
        }
        let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment);
        for t in tensors {
            ensure(t.shape.len() == 4, op, || format!("tensor {:?} exceeds one binding ({max} bytes) and is not NHWC, so it cannot be cut into row bands", t.shape))?;
            let row = row_bytes(t);
            ensure(row.is_multiple_of(align) && t.offset.is_multiple_of(align), op, || {
                format!("tensor {:?} exceeds one binding ({max} bytes) and its rows ({row} bytes) are not multiples of the {align}-byte binding alignment", t.shape)
            })?;
        }
        Ok(true)
    }

    /// Bytes of one row (W x C) of an NHWC tensor.
    pub fn row_bytes(t: &Tensor) -> u64 {
        t.dtype.bytes(t.shape[2] * t.shape[3])
    }

    /// Rows `[r0, r1)` of sample `b` of an NHWC tensor, as a `(1, r1 - r0, W, C)` view.
    pub fn rows(t: &Tensor, b: usize, r0: usize, r1: usize) -> Tensor {
        let offset = t.offset + (b * t.shape[1] + r0) as u64 * row_bytes(t);
        Tensor { buffer: t.buffer.clone(), shape: vec![1, r1 - r0, t.shape[2], t.shape[3]], dtype: t.dtype, offset }
    }
}
