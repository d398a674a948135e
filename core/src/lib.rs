#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod blob;
pub mod checksum;
mod decoder;
mod error;
mod fixed;
pub(crate) mod sparse;
pub mod kernel;

pub use blob::{Blob, Dtype, TensorView};
pub use decoder::{Accumulator, DecodeStats, Decoder, NonFinite, Target, FORMAT, FORMAT_VERSION, MIN_STD};
pub use error::{Error, Result};
pub use fixed::{FixedDecoder, Scratch};

/// Aligns bytes embedded with `include_bytes!` so that tensors can be read in place:
/// `static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!("decoder.safetensors"));`
/// then `Decoder::from_bytes(&BLOB.0)`.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct Aligned<T: ?Sized>(pub T);
