//! The sparse decoder kind (the Kamitani lab's FastL2LiR decoders, Shen et al. 2019): each
//! output reads its own fixed number k of voxels, `y_j = sum_s w[j, s] * z[idx[j, s]] + b_j`.
//!
//! Tensors: `sparse_index (L, k)` U16 (when V <= 65536) or U32, and `sparse_weight (L, k)`
//! F16. Every index is checked to be below V at load time ([`Error::SparseIndexOutOfRange`]).
//! Summation order, fixed for bit-identical results everywhere: slot `s` of a row goes to
//! lane `s mod 4` of four f32 partial sums (each product and each sum a separate IEEE
//! operation, no fused multiply-add), then `(l0 + l1) + (l2 + l3)`, then the bias.

#![allow(clippy::assign_op_pattern)] // `a = a + b` spells out the order of every f32 operation.

use crate::blob::{Blob, Dtype, TensorView};
use crate::error::{Error, Result};
use crate::kernel::f16_to_f32;

/// The weights of a sparse decoder, borrowed from the blob.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sparse<'a> {
    /// `(L, k)` indices as little-endian u16 words: one word per index, or two (low, high)
    /// when `wide` (U32 indices).
    idx: &'a [u16],
    /// `(L, k)` f16 weights.
    w: &'a [u16],
    /// k, the voxels per output.
    k: u32,
    /// U32 indices.
    wide: bool,
}

impl<'a> Sparse<'a> {
    /// Reads and checks `sparse_index` and `sparse_weight` for `outputs` outputs and `voxels`
    /// voxels: dtypes, shapes, k >= 1, every index < V, every weight finite.
    pub(crate) fn load(blob: &Blob<'a>, outputs: usize, voxels: usize) -> Result<Self> {
        let idx_t = blob.tensor("sparse_index")?.ok_or(Error::MissingTensor { name: "sparse_index" })?;
        let w_t = blob.tensor("sparse_weight")?.ok_or(Error::MissingTensor { name: "sparse_weight" })?;
        let wide = match idx_t.dtype {
            Dtype::U16 => false,
            Dtype::U32 => true,
            found => return Err(Error::WrongDtype { name: "sparse_index", expected: Dtype::U32, found }),
        };
        if w_t.dtype != Dtype::F16 {
            return Err(Error::WrongDtype { name: "sparse_weight", expected: Dtype::F16, found: w_t.dtype });
        }
        let [l, k] = dims2(&idx_t, "sparse_index")?;
        let [l2, k2] = dims2(&w_t, "sparse_weight")?;
        same("sparse_index", 0, outputs, l)?;
        same("sparse_weight", 0, outputs, l2)?;
        same("sparse_weight", 1, k, k2)?;
        if k == 0 {
            return Err(Error::EmptyDecoder { name: "sparse_weight" });
        }
        let k32 = u32::try_from(k).map_err(|_| Error::WrongShape { name: "sparse_weight", dim: 1, expected: u32::MAX as u64, found: k as u64 })?;
        let s = Sparse { idx: words(&idx_t, "sparse_index", if wide { 4 } else { 2 })?, w: words(&w_t, "sparse_weight", 2)?, k: k32, wide };
        for j in 0..outputs {
            for slot in 0..k {
                let index = s.index(j * k + slot);
                if index >= voxels {
                    return Err(Error::SparseIndexOutOfRange { output: j, slot, index, voxels });
                }
            }
        }
        if let Some(index) = s.w.iter().position(|&b| u16::from_le(b) & 0x7c00 == 0x7c00) {
            return Err(Error::NonFiniteParameter { name: "sparse_weight", index });
        }
        Ok(s)
    }

    /// k, the voxels each output reads.
    pub(crate) fn k(&self) -> usize {
        self.k as usize
    }

    /// The voxel index at flat position `at` of `(L, k)` (`usize::MAX` past the end).
    #[inline(always)]
    fn index(&self, at: usize) -> usize {
        if self.wide {
            let lo = self.idx.get(2 * at).map_or(u16::MAX, |&v| u16::from_le(v));
            let hi = self.idx.get(2 * at + 1).map_or(u16::MAX, |&v| u16::from_le(v));
            ((hi as u32) << 16 | lo as u32) as usize
        } else {
            self.idx.get(at).map_or(usize::MAX, |&v| u16::from_le(v) as usize)
        }
    }

    /// Writes the sums (without bias) of outputs `first..first + out.len()` from the
    /// standardised voxels `z (V,)`. Indices were checked at load; a missing one reads 0.
    pub(crate) fn rows(&self, z: &[f32], first: usize, out: &mut [f32]) {
        let k = self.k as usize;
        for (r, o) in out.iter_mut().enumerate() {
            let base = (first + r) * k;
            let w = self.w.get(base..base + k).unwrap_or_default();
            *o = if self.wide {
                let idx = self.idx.get(2 * base..2 * (base + k)).unwrap_or_default();
                row(w, z, idx.chunks_exact(2).map(|p| match *p {
                    [lo, hi] => (u16::from_le(hi) as usize) << 16 | u16::from_le(lo) as usize,
                    _ => usize::MAX,
                }))
            } else {
                let idx = self.idx.get(base..base + k).unwrap_or_default();
                row(w, z, idx.iter().map(|&i| u16::from_le(i) as usize))
            };
        }
    }
}

/// One output: slot `s` into lane `s mod 4`, then `(l0 + l1) + (l2 + l3)`.
#[inline(always)]
fn row(w: &[u16], z: &[f32], mut idx: impl Iterator<Item = usize>) -> f32 {
    let mut acc = [0f32; 4];
    let term = |h: u16, i: Option<usize>| f16_to_f32(u16::from_le(h)) * i.and_then(|i| z.get(i)).copied().unwrap_or(0.0);
    let mut quads = w.chunks_exact(4);
    for q in &mut quads {
        let [h0, h1, h2, h3] = *q else { continue };
        let t0 = term(h0, idx.next());
        let t1 = term(h1, idx.next());
        let t2 = term(h2, idx.next());
        let t3 = term(h3, idx.next());
        acc[0] = acc[0] + t0;
        acc[1] = acc[1] + t1;
        acc[2] = acc[2] + t2;
        acc[3] = acc[3] + t3;
    }
    for (lane, &h) in quads.remainder().iter().enumerate() {
        if let Some(a) = acc.get_mut(lane) {
            *a = *a + term(h, idx.next());
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

fn dims2(t: &TensorView<'_>, name: &'static str) -> Result<[usize; 2]> {
    if t.shape.len() != 2 {
        return Err(Error::WrongRank { name, expected: 2, found: t.shape.len() });
    }
    let mut out = [0usize; 2];
    for (dim, (o, &d)) in out.iter_mut().zip(t.shape.iter()).enumerate() {
        *o = usize::try_from(d).map_err(|_| Error::WrongShape { name, dim, expected: usize::MAX as u64, found: d })?;
    }
    Ok(out)
}

fn same(name: &'static str, dim: usize, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::WrongShape { name, dim, expected: expected as u64, found: found as u64 })
    }
}

/// The tensor's bytes as u16 words, refusing data not aligned to `align` bytes.
fn words<'a>(t: &TensorView<'a>, name: &'static str, align: usize) -> Result<&'a [u16]> {
    // SAFETY: every bit pattern is a valid u16; align_to only returns an aligned middle part.
    let (head, mid, tail) = unsafe { t.data.align_to::<u16>() };
    if head.is_empty() && tail.is_empty() && (t.data.as_ptr() as usize).is_multiple_of(align) {
        Ok(mid)
    } else {
        Err(Error::Misaligned { name, align })
    }
}
