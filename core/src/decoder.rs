//! The linear decoder of Takagi & Nishimoto (CVPR 2023): `y = W . ((x - mean) / std) + b`,
//! with `W` in f16 (dense, or low-rank `U . V^T`) and everything else in f32.

#![allow(clippy::assign_op_pattern)] // `a = a + b` spells out the order of every f32 operation.

use heapless::Vec;

use crate::blob::{Blob, Dtype, TensorView};
use crate::checksum;
use crate::error::{Error, Result};
use crate::kernel::{self, le_f32, BLOCK};
use crate::sparse::Sparse;

/// The value of the `format` metadata key of a decoder file.
pub const FORMAT: &str = "percept-decoder";
/// The `format_version` this build writes; it reads `1` (checksum optional) and `2`
/// (checksum required). A file without `format_version` is read as version 1.
pub const FORMAT_VERSION: &str = "2";
/// The newest `format_version` this build reads.
const NEWEST_VERSION: u32 = 2;
/// The smallest `voxel_std` accepted. Anything smaller (and every subnormal) would turn an
/// ordinary voxel deviation into a z-score near or past the f32 range.
pub const MIN_STD: f32 = 1e-30;
/// The most dimensions a target shape may have.
pub const MAX_TARGET_RANK: usize = 4;

/// What the decoder does with a voxel that is NaN or infinite (or whose z-score is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Refuse the volume with [`Error::NonFiniteVoxel`] naming the first bad voxel.
    #[default]
    Reject,
    /// Treat the voxel as if it had its training mean (z-score 0), and count it.
    UseMean,
}

/// The latent a decoder predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The VAE latent of the seen image (from early visual cortex).
    Z,
    /// The CLIP text conditioning of the image's captions (from higher visual cortex).
    C,
    /// Units of one layer of a feature network (Shen et al. 2019's DNN feature decoding);
    /// metadata `features`, the layer and units in the `fit.*` metadata.
    Features,
}

/// What happened to the voxels of one decoded volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeStats {
    /// Voxels that were NaN or infinite and replaced by their mean ([`NonFinite::UseMean`]).
    pub replaced: usize,
    /// The first such voxel.
    pub first_replaced: Option<usize>,
}

impl DecodeStats {
    fn note(&mut self, index: usize) {
        self.replaced += 1;
        if self.first_replaced.is_none() {
            self.first_replaced = Some(index);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Weights<'a> {
    /// `weight (L, V)`
    Dense { w: &'a [u16] },
    /// `weight_u (L, r)` and `weight_vt (r, V)`
    LowRank { u: &'a [u16], vt: &'a [u16], rank: usize },
    /// `sparse_index (L, k)` and `sparse_weight (L, k)` (see the `sparse` module).
    Sparse(Sparse<'a>),
}

/// A decoder borrowed from a safetensors blob; sizes are checked at load time.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    voxels: usize,
    outputs: usize,
    weights: Weights<'a>,
    bias: &'a [u32],
    mean: &'a [u32],
    std: &'a [u32],
    region: &'a str,
    target: Target,
    target_shape: Vec<u32, MAX_TARGET_RANK>,
    non_finite: NonFinite,
}

impl<'a> Decoder<'a> {
    /// Loads and checks a decoder from the bytes of its safetensors file. The bytes must stay
    /// where they are (flash, a memory map): the weights are read in place, never copied.
    /// The tensor data is checked against the metadata `checksum` (required from format
    /// version 2 on) and every weight is checked to be finite, so loading reads the data twice.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let blob = Blob::parse(bytes)?;
        match blob.metadata("format")? {
            Some(FORMAT) => {}
            Some(_) => return Err(Error::BadMetadata { key: "format" }),
            None => return Err(Error::MissingMetadata { key: "format" }),
        }
        let version = match blob.metadata("format_version")? {
            None | Some("1") => 1,
            Some("2") => 2,
            Some(_) => return Err(Error::UnsupportedFormatVersion { newest: NEWEST_VERSION }),
        };
        match blob.metadata("checksum")? {
            Some(text) => {
                let expected = checksum::parse(text).ok_or(Error::BadMetadata { key: "checksum" })?;
                let found = checksum::of_data(blob.data());
                if found != expected {
                    return Err(Error::ChecksumMismatch { expected, found });
                }
            }
            None if version >= 2 => return Err(Error::MissingMetadata { key: "checksum" }),
            None => {}
        }
        let region = blob.metadata("region")?.ok_or(Error::MissingMetadata { key: "region" })?;
        let target = match blob.metadata("target")? {
            Some("z") => Target::Z,
            Some("c") => Target::C,
            Some("features") => Target::Features,
            Some(_) => return Err(Error::BadMetadata { key: "target" }),
            None => return Err(Error::MissingMetadata { key: "target" }),
        };
        let shape_text = blob.metadata("target_shape")?.ok_or(Error::MissingMetadata { key: "target_shape" })?;
        let target_shape = parse_shape(shape_text).ok_or(Error::BadMetadata { key: "target_shape" })?;

        let bias_t = required(&blob, "bias")?;
        let [outputs] = dims::<1>(&bias_t, "bias", Dtype::F32)?;
        if outputs == 0 {
            return Err(Error::EmptyDecoder { name: "bias" });
        }
        let mean_t = required(&blob, "voxel_mean")?;
        let [voxels] = dims::<1>(&mean_t, "voxel_mean", Dtype::F32)?;
        if voxels == 0 {
            return Err(Error::EmptyDecoder { name: "voxel_mean" });
        }
        let std_t = required(&blob, "voxel_std")?;
        let [std_len] = dims::<1>(&std_t, "voxel_std", Dtype::F32)?;
        same("voxel_std", 0, voxels, std_len)?;

        let sparse = blob.tensor("sparse_index")?.is_some() || blob.tensor("sparse_weight")?.is_some();
        let weights = match (blob.tensor("weight")?, blob.tensor("weight_u")?, blob.tensor("weight_vt")?) {
            (None, None, None) if sparse => Weights::Sparse(Sparse::load(&blob, outputs, voxels)?),
            _ if sparse => return Err(Error::BothWeightKinds),
            (Some(w_t), None, None) => {
                let [l, v] = dims::<2>(&w_t, "weight", Dtype::F16)?;
                same("weight", 0, outputs, l)?;
                same("weight", 1, voxels, v)?;
                Weights::Dense { w: cast_u16(&w_t, "weight")? }
            }
            (Some(_), _, _) => return Err(Error::BothWeightKinds),
            (None, Some(u_t), Some(vt_t)) => {
                let [l, rank] = dims::<2>(&u_t, "weight_u", Dtype::F16)?;
                same("weight_u", 0, outputs, l)?;
                let [r2, v] = dims::<2>(&vt_t, "weight_vt", Dtype::F16)?;
                same("weight_vt", 0, rank, r2)?;
                same("weight_vt", 1, voxels, v)?;
                let limit = outputs.min(voxels);
                if rank == 0 || rank > limit {
                    return Err(Error::BadRank { rank, limit });
                }
                Weights::LowRank { u: cast_u16(&u_t, "weight_u")?, vt: cast_u16(&vt_t, "weight_vt")?, rank }
            }
            (None, Some(_), None) => return Err(Error::MissingTensor { name: "weight_vt" }),
            (None, None, Some(_)) => return Err(Error::MissingTensor { name: "weight_u" }),
            (None, None, None) => return Err(Error::MissingTensor { name: "weight" }),
        };

        let product = target_shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d as usize));
        if product != Some(outputs) {
            return Err(Error::BadMetadata { key: "target_shape" });
        }

        let dec = Decoder {
            voxels,
            outputs,
            weights,
            bias: cast_u32(&bias_t, "bias")?,
            mean: cast_u32(&mean_t, "voxel_mean")?,
            std: cast_u32(&std_t, "voxel_std")?,
            region,
            target,
            target_shape,
            non_finite: NonFinite::Reject,
        };
        dec.check_values()?;
        Ok(dec)
    }

    fn check_values(&self) -> Result<()> {
        let finite_f32 = |name: &'static str, xs: &[u32]| match xs.iter().position(|&b| !le_f32(b).is_finite()) {
            Some(index) => Err(Error::NonFiniteParameter { name, index }),
            None => Ok(()),
        };
        // f16 is infinite or NaN exactly when all five exponent bits are set.
        let finite_f16 = |name: &'static str, xs: &[u16]| match xs.iter().position(|&b| u16::from_le(b) & 0x7c00 == 0x7c00) {
            Some(index) => Err(Error::NonFiniteParameter { name, index }),
            None => Ok(()),
        };
        finite_f32("bias", self.bias)?;
        finite_f32("voxel_mean", self.mean)?;
        finite_f32("voxel_std", self.std)?;
        if let Some(index) = self.std.iter().position(|&b| le_f32(b) <= 0.0) {
            return Err(Error::BadStd { index });
        }
        if let Some(index) = self.std.iter().position(|&b| le_f32(b) < MIN_STD) {
            return Err(Error::StdTooSmall { index });
        }
        match self.weights {
            Weights::Dense { w } => finite_f16("weight", w),
            Weights::LowRank { u, vt, .. } => {
                finite_f16("weight_u", u)?;
                finite_f16("weight_vt", vt)
            }
            Weights::Sparse(_) => Ok(()), // checked by Sparse::load
        }
    }

    /// The same decoder with another policy for NaN or infinite voxels.
    pub fn with_non_finite(mut self, policy: NonFinite) -> Self {
        self.non_finite = policy;
        self
    }

    /// Number of voxels V the decoder reads.
    pub fn voxels(&self) -> usize {
        self.voxels
    }

    /// Number of latent values L the decoder writes.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Rank r of a low-rank decoder, `None` for a dense one.
    pub fn rank(&self) -> Option<usize> {
        match self.weights {
            Weights::Dense { .. } | Weights::Sparse(_) => None,
            Weights::LowRank { rank, .. } => Some(rank),
        }
    }

    /// Voxels per output k of a sparse decoder, `None` for a dense or low-rank one.
    pub fn sparse_k(&self) -> Option<usize> {
        match self.weights {
            Weights::Sparse(s) => Some(s.k()),
            _ => None,
        }
    }

    /// The region of interest the decoder was fitted on (metadata `region`).
    pub fn region(&self) -> &'a str {
        self.region
    }

    /// What the decoder predicts (metadata `target`).
    pub fn target(&self) -> Target {
        self.target
    }

    /// Shape of the predicted latent (metadata `target_shape`), e.g. `[4, 40, 40]`.
    pub fn target_shape(&self) -> &[u32] {
        &self.target_shape
    }

    /// Length of the `f32` scratch buffer that [`Decoder::decode`] and [`Decoder::stream`] need:
    /// V for a dense decoder, V + r for a low-rank one.
    pub fn scratch_len(&self) -> usize {
        self.voxels + self.hidden_len()
    }

    /// Length of the `u32` bitmap that [`Decoder::stream`] needs: one bit per voxel.
    pub fn seen_len(&self) -> usize {
        self.voxels.div_ceil(32)
    }

    /// Length of the input of the output layer: V (dense) or r (low-rank).
    fn hidden_len(&self) -> usize {
        match self.weights {
            Weights::Dense { .. } | Weights::Sparse(_) => 0,
            Weights::LowRank { rank, .. } => rank,
        }
    }

    /// Decodes one volume: `x (V,)` voxel responses -> `out (L,)` latent.
    /// `scratch` must have [`Decoder::scratch_len`] elements; its contents are overwritten.
    pub fn decode(&self, x: &[f32], scratch: &mut [f32], out: &mut [f32]) -> Result<DecodeStats> {
        check_len("voxels", self.voxels, x.len())?;
        check_len("scratch", self.scratch_len(), scratch.len())?;
        check_len("output", self.outputs, out.len())?;
        let (xn, t) = scratch.split_at_mut_checked(self.voxels).ok_or(Error::BufferLength { what: "scratch", expected: self.voxels, found: 0 })?;
        let mut stats = DecodeStats::default();
        self.normalize(0, x, xn, &mut stats)?;
        let h: &[f32] = match self.weights {
            Weights::Dense { .. } | Weights::Sparse(_) => xn,
            Weights::LowRank { vt, .. } => {
                kernel::matvec(vt, xn, t);
                t
            }
        };
        self.output_rows(h, 0, out);
        Ok(stats)
    }

    /// Standardises `x`, the voxels `first..first + x.len()`, into `xn`.
    fn normalize(&self, first: usize, x: &[f32], xn: &mut [f32], stats: &mut DecodeStats) -> Result<()> {
        let mean = self.mean.get(first..).unwrap_or_default();
        let std = self.std.get(first..).unwrap_or_default();
        for (i, (((&v, o), &m), &s)) in x.iter().zip(xn.iter_mut()).zip(mean).zip(std).enumerate() {
            let z = (v - le_f32(m)) / le_f32(s);
            *o = if z.is_finite() {
                z
            } else if self.non_finite == NonFinite::UseMean {
                stats.note(first + i);
                0.0
            } else {
                return Err(Error::NonFiniteVoxel { index: first + i });
            };
        }
        Ok(())
    }

    /// Writes outputs `first..first + out.len()` from the output layer's input `h`:
    /// the standardised voxels (dense) or the rank-r projection (low-rank).
    fn output_rows(&self, h: &[f32], first: usize, out: &mut [f32]) {
        let (w, n) = match self.weights {
            Weights::Dense { w } => (w, self.voxels),
            Weights::LowRank { u, rank, .. } => (u, rank),
            Weights::Sparse(s) => (&[][..], s.k()),
        };
        if let Weights::Sparse(s) = self.weights {
            s.rows(h, first, out);
        } else {
            let w = w.get(first.saturating_mul(n)..).unwrap_or_default();
            kernel::matvec(w, h, out);
        }
        let bias = self.bias.get(first..).unwrap_or_default();
        for (o, &b) in out.iter_mut().zip(bias) {
            *o = canonical(*o + le_f32(b));
        }
    }

    /// Starts a streaming decode of one volume into `out (L,)`. Chunks of voxels may then
    /// arrive in any order; the result is bit-identical to [`Decoder::decode`].
    pub fn stream<'d, 'b>(&'d self, scratch: &'b mut [f32], seen: &'b mut [u32], out: &'b mut [f32]) -> Result<Accumulator<'d, 'a, 'b>> {
        check_len("scratch", self.scratch_len(), scratch.len())?;
        check_len("seen", self.seen_len(), seen.len())?;
        check_len("output", self.outputs, out.len())?;
        let (xn, t) = scratch.split_at_mut_checked(self.voxels).ok_or(Error::BufferLength { what: "scratch", expected: self.voxels, found: 0 })?;
        seen.iter_mut().for_each(|b| *b = 0);
        t.iter_mut().for_each(|v| *v = 0.0);
        out.iter_mut().for_each(|v| *v = 0.0);
        Ok(Accumulator { dec: self, xn, t, seen, out, next_block: 0, stats: DecodeStats::default() })
    }

    /// Standardises a whole volume into `xn (V,)` for [`Decoder::decode_rows`]. Lets a host
    /// split the outputs of one volume between threads; `hidden` must have r elements for a
    /// low-rank decoder (and is unused, may be empty, for a dense one).
    pub fn prepare(&self, x: &[f32], xn: &mut [f32], hidden: &mut [f32]) -> Result<DecodeStats> {
        check_len("voxels", self.voxels, x.len())?;
        check_len("scratch", self.voxels, xn.len())?;
        let mut stats = DecodeStats::default();
        self.normalize(0, x, xn, &mut stats)?;
        if let Weights::LowRank { vt, rank, .. } = self.weights {
            check_len("scratch", rank, hidden.len())?;
            kernel::matvec(vt, xn, hidden);
        }
        Ok(stats)
    }

    /// Writes outputs `first..first + out.len()` after [`Decoder::prepare`]; `h` is `xn` for a
    /// dense decoder and `hidden` for a low-rank one. Bit-identical to [`Decoder::decode`].
    pub fn decode_rows(&self, h: &[f32], first: usize, out: &mut [f32]) -> Result<()> {
        let n = match self.weights {
            Weights::Dense { .. } | Weights::Sparse(_) => self.voxels,
            Weights::LowRank { rank, .. } => rank,
        };
        check_len("scratch", n, h.len())?;
        if first.checked_add(out.len()).is_none_or(|end| end > self.outputs) {
            return Err(Error::BufferLength { what: "output", expected: self.outputs.saturating_sub(first), found: out.len() });
        }
        self.output_rows(h, first, out);
        Ok(())
    }
}

/// A volume being decoded chunk by chunk ([`Decoder::stream`]).
///
/// Chunks are standardised as they arrive. Whole blocks of [`BLOCK`] voxels are folded into
/// the outputs as soon as every block before them has arrived too, so with chunks in voxel
/// order nearly all the work is done before the last chunk; chunks out of order wait (in the
/// scratch buffer) until the gap before them is filled.
#[derive(Debug)]
pub struct Accumulator<'d, 'a, 'b> {
    dec: &'d Decoder<'a>,
    xn: &'b mut [f32],
    t: &'b mut [f32],
    seen: &'b mut [u32],
    out: &'b mut [f32],
    next_block: usize,
    stats: DecodeStats,
}

impl Accumulator<'_, '_, '_> {
    /// Delivers voxels `start..start + values.len()`. A chunk that reaches past the last voxel,
    /// repeats a voxel, or holds a rejected NaN/infinite voxel is refused whole, and the
    /// accumulator stays as it was.
    pub fn push(&mut self, start: usize, values: &[f32]) -> Result<()> {
        let voxels = self.dec.voxels;
        let end = start
            .checked_add(values.len())
            .filter(|&e| e <= voxels)
            .ok_or(Error::ChunkOutOfRange { start, len: values.len(), voxels })?;
        if let Some(index) = (start..end).find(|&i| self.is_seen(i)) {
            return Err(Error::ChunkOverlap { index });
        }
        let mut stats = self.stats;
        let xn = self.xn.get_mut(start..end).unwrap_or_default();
        self.dec.normalize(start, values, xn, &mut stats)?;
        self.stats = stats;
        for i in start..end {
            if let Some(word) = self.seen.get_mut(i / 32) {
                *word |= 1 << (i % 32);
            }
        }
        self.fold_ready();
        Ok(())
    }

    /// Number of voxels that have arrived.
    pub fn received(&self) -> usize {
        self.seen.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn is_seen(&self, i: usize) -> bool {
        self.seen.get(i / 32).is_some_and(|w| w & (1 << (i % 32)) != 0)
    }

    fn first_missing(&self, from: usize) -> Option<usize> {
        (from..self.dec.voxels).find(|&i| !self.is_seen(i))
    }

    /// Folds every complete block at the front into the running sums.
    fn fold_ready(&mut self) {
        let voxels = self.dec.voxels;
        loop {
            let begin = self.next_block * BLOCK;
            if begin >= voxels {
                return;
            }
            let end = (begin + BLOCK).min(voxels);
            if self.first_missing(begin).is_some_and(|m| m < end) {
                return;
            }
            let x = self.xn.get(begin..end).unwrap_or_default();
            let (w, sums): (&[u16], &mut [f32]) = match self.dec.weights {
                Weights::Dense { w } => (w, &mut *self.out),
                Weights::LowRank { vt, .. } => (vt, &mut *self.t),
                // Any output may read any voxel: all the work waits for `finish`.
                Weights::Sparse(_) => return,
            };
            kernel::add_block(w, voxels, begin, x, sums);
            self.next_block += 1;
        }
    }

    /// Completes the latent once every voxel has arrived; the error names the first missing one.
    pub fn finish(self) -> Result<DecodeStats> {
        if let Some(first_missing) = self.first_missing(self.next_block * BLOCK) {
            return Err(Error::Incomplete { first_missing });
        }
        let dec = self.dec;
        match dec.weights {
            Weights::Dense { .. } => {
                for (o, &b) in self.out.iter_mut().zip(dec.bias) {
                    *o = canonical(*o + le_f32(b));
                }
            }
            Weights::LowRank { .. } => dec.output_rows(self.t, 0, self.out),
            Weights::Sparse(_) => dec.output_rows(self.xn, 0, self.out),
        }
        Ok(self.stats)
    }
}

/// NaN bits differ between processors (x86 makes negative NaNs, Arm positive ones); outputs
/// use one NaN so that results stay bit-identical even for absurd inputs that overflow.
#[inline(always)]
fn canonical(v: f32) -> f32 {
    if v.is_nan() {
        f32::from_bits(0x7fc0_0000)
    } else {
        v
    }
}

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::BufferLength { what, expected, found })
    }
}

fn same(name: &'static str, dim: usize, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::WrongShape { name, dim, expected: expected as u64, found: found as u64 })
    }
}

fn required<'a>(blob: &Blob<'a>, name: &'static str) -> Result<TensorView<'a>> {
    blob.tensor(name)?.ok_or(Error::MissingTensor { name })
}

/// Checks dtype and rank, and returns the dimensions as `usize`.
fn dims<const N: usize>(t: &TensorView<'_>, name: &'static str, dtype: Dtype) -> Result<[usize; N]> {
    if t.dtype != dtype {
        return Err(Error::WrongDtype { name, expected: dtype, found: t.dtype });
    }
    if t.shape.len() != N {
        return Err(Error::WrongRank { name, expected: N, found: t.shape.len() });
    }
    let mut out = [0usize; N];
    for (dim, (o, &d)) in out.iter_mut().zip(t.shape.iter()).enumerate() {
        // A dimension that does not fit in usize cannot match the data, which does.
        *o = usize::try_from(d).map_err(|_| Error::WrongShape { name, dim, expected: usize::MAX as u64, found: d })?;
    }
    Ok(out)
}

fn cast_u16<'a>(t: &TensorView<'a>, name: &'static str) -> Result<&'a [u16]> {
    // SAFETY: every bit pattern is a valid u16; align_to only returns an aligned middle part.
    let (head, mid, tail) = unsafe { t.data.align_to::<u16>() };
    if head.is_empty() && tail.is_empty() {
        Ok(mid)
    } else {
        Err(Error::Misaligned { name, align: 2 })
    }
}

fn cast_u32<'a>(t: &TensorView<'a>, name: &'static str) -> Result<&'a [u32]> {
    // SAFETY: every bit pattern is a valid u32; align_to only returns an aligned middle part.
    let (head, mid, tail) = unsafe { t.data.align_to::<u32>() };
    if head.is_empty() && tail.is_empty() {
        Ok(mid)
    } else {
        Err(Error::Misaligned { name, align: 4 })
    }
}

/// `"4,40,40"` -> `[4, 40, 40]`; no empty or zero dimension, at most [`MAX_TARGET_RANK`].
fn parse_shape(text: &str) -> Option<Vec<u32, MAX_TARGET_RANK>> {
    let mut dims = Vec::new();
    for part in text.split(',') {
        let d: u32 = part.trim().parse().ok().filter(|&d| d > 0)?;
        dims.push(d).ok()?;
    }
    Some(dims)
}
