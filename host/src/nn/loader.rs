//! The weight loader the models are built with (after candle's `VarBuilder`): a [`Weights`]
//! view under a prefix plus the GPU and the dtype weight matrices are stored in, so a block's
//! constructor takes the loader and its config and nothing else:
//! `w.pp("down_blocks").pp(i).get(&[c, c], "weight")`. Every get checks the stored shape;
//! a missing or misshapen tensor fails naming its full key, the expected and the actual
//! shape, and the file.
//!
//! Matrices (`get`) are uploaded at the loader's dtype straight from the stored one: f16
//! files into f16 tensors byte for byte, f32 and bf16 converted (bf16 through f32, exactly,
//! then rounded to f16 when the dtype is F16). Biases and norm parameters (`get_f32`) are f32.
//! Every get evicts the tensor's pages of the memory map once it is read ([`Weights::evict`]).

use std::fmt;

use safetensors::Dtype;

use crate::error::Result;
use crate::gpu::{DType, Gpu, Tensor};
use crate::nn::weights::Raw;
use crate::nn::Weights;

/// Weights under a prefix, with the GPU they are uploaded to and the dtype of matrices.
#[derive(Clone)]
pub struct Loader<'g> {
    gpu: &'g Gpu,
    dtype: DType,
    w: Weights,
    /// 3x3 stride-1 convolutions with at least this many input channels are loaded for
    /// Winograd F(2x2, 3x3) (`layers::Conv`); None: none are.
    winograd: Option<usize>,
}

impl fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader").field("dtype", &self.dtype).field("prefix", &self.w.prefix()).finish_non_exhaustive()
    }
}

impl<'g> Loader<'g> {
    /// Loads from `w` (and its prefix) onto `gpu`, matrices as `dtype`.
    pub fn new(gpu: &'g Gpu, w: &Weights, dtype: DType) -> Self {
        Loader { gpu, dtype, w: w.clone(), winograd: None }
    }

    /// The same loader under `prefix.name`.
    pub fn pp(&self, name: impl fmt::Display) -> Self {
        Loader { w: self.w.pp(name), ..self.clone() }
    }

    /// The same loader with matrices stored as `dtype`.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        Loader { dtype, ..self.clone() }
    }

    /// The same loader with 3x3 stride-1 convolutions of at least `min_cin` input channels
    /// (None: none) loaded for Winograd F(2x2, 3x3) ([`crate::nn::layers::Conv`]).
    pub fn with_winograd(&self, min_cin: Option<usize>) -> Self {
        Loader { winograd: min_cin, ..self.clone() }
    }

    /// See [`Loader::with_winograd`].
    pub fn winograd(&self) -> Option<usize> {
        self.winograd
    }

    /// The GPU tensors go to.
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// The dtype of matrices.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The weights under the current prefix.
    pub fn weights(&self) -> &Weights {
        &self.w
    }

    /// The full key of `name` under the current prefix.
    pub fn key(&self, name: &str) -> String {
        self.w.key(name)
    }

    /// Whether the tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.w.contains(name)
    }

    /// A matrix of `shape`, stored at the loader's dtype.
    pub fn get(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        self.get_as(&[shape], name)
    }

    /// A matrix stored with any of `shapes` (e.g. a linear map saved as a 1x1 convolution),
    /// uploaded with the first, at the loader's dtype.
    pub fn get_as(&self, shapes: &[&[usize]], name: &str) -> Result<Tensor> {
        let t = upload(self.gpu, shapes[0], &self.w.raw(name, shapes)?, self.dtype)?;
        self.w.evict(name);
        Ok(t)
    }

    /// A tensor of `shape` stored as f32 whatever the loader's dtype (biases, norms).
    pub fn get_f32(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        let t = Tensor::from_f32(self.gpu, shape, &self.w.get(shape, name)?)?;
        self.w.evict(name);
        Ok(t)
    }

    /// A tensor of `shape` on the host, as f32 (for layouts the ops repack, and embeddings).
    pub fn host(&self, shape: &[usize], name: &str) -> Result<Vec<f32>> {
        let v = self.w.get(shape, name)?;
        self.w.evict(name);
        Ok(v)
    }
}

/// `raw` as a `dtype` tensor of `shape` (f16 bytes go up unconverted).
fn upload(gpu: &Gpu, shape: &[usize], raw: &Raw<'_>, dtype: DType) -> Result<Tensor> {
    match (dtype, raw.dtype) {
        (DType::F16, Dtype::F16) => {
            raw.check_f16()?;
            f16_bytes(gpu, shape, raw.bytes)
        }
        (DType::F16, _) => Tensor::from_f32_as_f16(gpu, shape, &raw.to_f32()?),
        (DType::F32, _) => Tensor::from_f32(gpu, shape, &raw.to_f32()?),
    }
}

/// An f16 tensor from little-endian f16 bytes. GPU f16 tensors are halves packed two per
/// u32 word, low half first, which is the byte order of the file: the bytes are uploaded as
/// they are, as words (reinterpreted, never converted; `gpu` has no constructor from bits).
fn f16_bytes(gpu: &Gpu, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
    let words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    let t = Tensor::from_f32(gpu, &[words.len()], bytemuck::cast_slice::<u32, f32>(&words))?;
    Ok(Tensor { shape: shape.to_vec(), dtype: DType::F16, ..t })
}
