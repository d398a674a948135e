//! The wgpu runtime: adapter selection, tensors in GPU buffers, a pipeline cache and batched
//! dispatch. Every kernel is a WGSL file in shaders/ run by one op in `crate::ops`.

mod device;
mod encoder;
mod tensor;

pub use device::{AdapterKind, Gpu, Shader};
pub use encoder::{Encoder, MAX_PENDING_BYTES, MAX_STAGED_BYTES};
pub use tensor::{DType, Tensor};

/// TEMPORARY, for measuring the memory changes one by one (removed before merging): whether
/// PERCEPT_MEM_OFF (a comma-separated list) names `what`.
pub fn mem_off(what: &str) -> bool {
    std::env::var("PERCEPT_MEM_OFF").is_ok_and(|v| v.split(',').any(|x| x == what))
}
