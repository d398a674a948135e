//! The wgpu runtime: adapter selection, tensors in GPU buffers, a pipeline cache and batched
//! dispatch. Every kernel is a WGSL file in shaders/ run by one op in `crate::ops`.

mod device;
mod encoder;
mod tensor;

pub use device::{AdapterKind, Gpu, Shader};
pub use encoder::{Encoder, MAX_PENDING_BYTES, MAX_STAGED_BYTES};
pub use tensor::{DType, Tensor};

