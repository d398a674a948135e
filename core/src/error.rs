//! The one error type of percept-core: every way a blob, a decoder or an input can be wrong.

use core::fmt;

use crate::blob::Dtype;

/// Everything that can go wrong in percept-core. No public function panics; they return this.
///
/// Tensor and metadata names are `&'static str` because the core only ever asks for names it
/// knows (`weight`, `bias`, ...); positions inside a hostile header are given as byte offsets.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The blob is shorter than the 8-byte header length prefix.
    TooShort {
        /// Length of the blob in bytes.
        len: usize,
    },
    /// The header length prefix is larger than the limit the core accepts.
    HeaderTooLarge {
        /// The length the prefix claims.
        header_len: u64,
        /// The largest header the core accepts.
        limit: usize,
    },
    /// The header length prefix points past the end of the blob.
    HeaderPastEnd {
        /// The length the prefix claims.
        header_len: u64,
        /// Bytes available after the prefix.
        available: usize,
    },
    /// The header is not valid UTF-8.
    HeaderNotUtf8 {
        /// Byte offset inside the header of the first invalid byte.
        offset: usize,
    },
    /// The header is not the JSON a safetensors header must be.
    HeaderSyntax {
        /// Byte offset inside the header where parsing failed.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// The header nests objects or arrays deeper than the parser allows.
    HeaderTooDeep {
        /// Byte offset inside the header.
        offset: usize,
    },
    /// The header names more tensors than the core's fixed table holds.
    TooManyTensors {
        /// The most the core accepts.
        limit: usize,
    },
    /// Two tensors in the header have the same name.
    DuplicateTensor {
        /// Byte offset inside the header of the second entry.
        offset: usize,
    },
    /// A dtype string that safetensors does not define.
    UnknownDtype {
        /// Byte offset inside the header of the dtype string.
        offset: usize,
    },
    /// A tensor has more dimensions than the core supports.
    RankTooLarge {
        /// Byte offset inside the header of the shape.
        offset: usize,
        /// The most dimensions the core accepts.
        limit: usize,
    },
    /// A tensor's element count or byte size overflows.
    ShapeOverflow {
        /// Byte offset inside the header of the tensor entry.
        offset: usize,
    },
    /// A tensor's data offsets are reversed or point past the end of the data section.
    DataOutOfRange {
        /// Byte offset inside the header of the tensor entry.
        offset: usize,
        /// Claimed end of the tensor's data, relative to the data section.
        end: u64,
        /// Size of the data section.
        available: usize,
    },
    /// A tensor's byte range does not match its shape and dtype.
    SizeMismatch {
        /// Byte offset inside the header of the tensor entry.
        offset: usize,
        /// Bytes that shape and dtype require.
        expected: u64,
        /// Bytes that the data offsets give.
        found: u64,
    },
    /// Tensor byte ranges overlap, leave a gap, or do not cover the data section.
    DataNotContiguous {
        /// Position in the data section where the problem starts.
        at: u64,
    },
    /// A tensor the decoder needs is not in the blob.
    MissingTensor {
        /// Its name.
        name: &'static str,
    },
    /// A tensor has the wrong dtype.
    WrongDtype {
        /// Its name.
        name: &'static str,
        /// The dtype the decoder needs.
        expected: Dtype,
        /// The dtype in the blob.
        found: Dtype,
    },
    /// A tensor has the wrong number of dimensions.
    WrongRank {
        /// Its name.
        name: &'static str,
        /// The number of dimensions the decoder needs.
        expected: usize,
        /// The number in the blob.
        found: usize,
    },
    /// A tensor dimension disagrees with the rest of the decoder.
    WrongShape {
        /// Its name.
        name: &'static str,
        /// Which dimension.
        dim: usize,
        /// The size the rest of the decoder implies.
        expected: u64,
        /// The size in the blob.
        found: u64,
    },
    /// A tensor's data is not aligned to its element size in memory (see [`crate::Aligned`]).
    Misaligned {
        /// Its name.
        name: &'static str,
        /// The alignment it needs, in bytes.
        align: usize,
    },
    /// A weight, bias, mean or std value is NaN or infinite.
    NonFiniteParameter {
        /// The tensor.
        name: &'static str,
        /// Flat index of the first bad element.
        index: usize,
    },
    /// A voxel standard deviation is zero or negative.
    BadStd {
        /// The voxel.
        index: usize,
    },
    /// A metadata key the decoder needs is missing.
    MissingMetadata {
        /// The key.
        key: &'static str,
    },
    /// A metadata value cannot be understood.
    BadMetadata {
        /// The key.
        key: &'static str,
    },
    /// The decoder has another size than the integrator fixed at build time.
    SizeNotAsBuilt {
        /// `"voxels"` or `"outputs"`.
        what: &'static str,
        /// The size fixed at build time.
        expected: usize,
        /// The size in the blob.
        found: usize,
    },
    /// An input, scratch or output slice has the wrong length.
    BufferLength {
        /// Which buffer: `"voxels"`, `"scratch"`, `"seen"` or `"output"`.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A voxel value is NaN or infinite (and the decoder rejects such voxels).
    NonFiniteVoxel {
        /// Index of the first bad voxel in the decoder's voxel order.
        index: usize,
    },
    /// A streamed chunk reaches past the last voxel.
    ChunkOutOfRange {
        /// First voxel of the chunk.
        start: usize,
        /// Number of voxels in the chunk.
        len: usize,
        /// Number of voxels of the decoder.
        voxels: usize,
    },
    /// A streamed chunk contains a voxel that an earlier chunk already delivered.
    ChunkOverlap {
        /// The first voxel delivered twice.
        index: usize,
    },
    /// `finish` was called before every voxel arrived.
    Incomplete {
        /// The first voxel that has not arrived.
        first_missing: usize,
    },
    /// The tensor data does not have the checksum the metadata `checksum` records: the file
    /// was corrupted after it was written (see [`crate::checksum`]).
    ChecksumMismatch {
        /// The checksum in the metadata.
        expected: u32,
        /// The checksum of the data in the blob.
        found: u32,
    },
    /// The metadata `format_version` is not a version this build reads.
    UnsupportedFormatVersion {
        /// The newest version this build reads (it reads 1 up to this).
        newest: u32,
    },
    /// The blob holds both a dense `weight` and low-rank `weight_u`/`weight_vt`.
    BothWeightKinds,
    /// A low-rank decoder's rank is 0 or larger than min(outputs, voxels).
    BadRank {
        /// The rank in the blob (columns of `weight_u`).
        rank: usize,
        /// min(outputs, voxels), the largest useful rank.
        limit: usize,
    },
    /// The decoder has no voxels or no outputs.
    EmptyDecoder {
        /// The empty tensor: `voxel_mean` (no voxels) or `bias` (no outputs).
        name: &'static str,
    },
    /// A voxel standard deviation is positive but below [`crate::MIN_STD`] (tiny or subnormal:
    /// z-scores would overflow).
    StdTooSmall {
        /// The voxel.
        index: usize,
    },
    /// A sparse decoder's `sparse_index` names a voxel at or past V.
    SparseIndexOutOfRange {
        /// The output (row of `sparse_index`).
        output: usize,
        /// The slot in that row.
        slot: usize,
        /// The index found there.
        index: usize,
        /// V, the number of voxels.
        voxels: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            TooShort { len } => write!(f, "blob of {len} bytes is shorter than the 8-byte safetensors header prefix"),
            HeaderTooLarge { header_len, limit } => write!(f, "safetensors header claims {header_len} bytes, more than the limit of {limit}"),
            HeaderPastEnd { header_len, available } => write!(f, "safetensors header claims {header_len} bytes but only {available} follow the prefix (truncated file?)"),
            HeaderNotUtf8 { offset } => write!(f, "safetensors header is not UTF-8 (byte {offset})"),
            HeaderSyntax { offset, expected } => write!(f, "safetensors header: expected {expected} at byte {offset}"),
            HeaderTooDeep { offset } => write!(f, "safetensors header nests too deeply at byte {offset}"),
            TooManyTensors { limit } => write!(f, "blob holds more than {limit} tensors"),
            DuplicateTensor { offset } => write!(f, "tensor name at header byte {offset} is used twice"),
            UnknownDtype { offset } => write!(f, "unknown dtype at header byte {offset}"),
            RankTooLarge { offset, limit } => write!(f, "tensor shape at header byte {offset} has more than {limit} dimensions"),
            ShapeOverflow { offset } => write!(f, "tensor at header byte {offset}: element count or byte size overflows"),
            DataOutOfRange { offset, end, available } => write!(f, "tensor at header byte {offset}: data ends at {end} but the data section has {available} bytes (truncated file?)"),
            SizeMismatch { offset, expected, found } => write!(f, "tensor at header byte {offset}: shape and dtype need {expected} bytes, data offsets give {found}"),
            DataNotContiguous { at } => write!(f, "tensor data overlaps, leaves a gap or misses the end at data byte {at}"),
            MissingTensor { name } => write!(f, "tensor `{name}` is missing"),
            WrongDtype { name, expected, found } => write!(f, "tensor `{name}` is {}, expected {}", found.name(), expected.name()),
            WrongRank { name, expected, found } => write!(f, "tensor `{name}` has {found} dimensions, expected {expected}"),
            WrongShape { name, dim, expected, found } => write!(f, "tensor `{name}` has size {found} in dimension {dim}, expected {expected}"),
            Misaligned { name, align } => write!(f, "tensor `{name}` is not {align}-byte aligned in memory (wrap embedded blobs in percept_core::Aligned)"),
            NonFiniteParameter { name, index } => write!(f, "tensor `{name}` has a NaN or infinite value at element {index}"),
            BadStd { index } => write!(f, "voxel_std of voxel {index} is not positive"),
            MissingMetadata { key } => write!(f, "metadata `{key}` is missing"),
            BadMetadata { key } => write!(f, "metadata `{key}` has a value that cannot be understood"),
            SizeNotAsBuilt { what, expected, found } => write!(f, "decoder has {found} {what}, this build fixes {expected}"),
            BufferLength { what, expected, found } => write!(f, "{what} buffer has length {found}, expected {expected}"),
            NonFiniteVoxel { index } => write!(f, "voxel {index} is NaN or infinite"),
            ChunkOutOfRange { start, len, voxels } => write!(f, "chunk of {len} voxels at {start} reaches past the {voxels} voxels of the decoder"),
            ChunkOverlap { index } => write!(f, "voxel {index} was delivered twice"),
            Incomplete { first_missing } => write!(f, "volume incomplete: voxel {first_missing} has not arrived"),
            ChecksumMismatch { expected, found } => write!(f, "tensor data has checksum xxh32:{found:08x} but metadata `checksum` says xxh32:{expected:08x} (file corrupted?)"),
            UnsupportedFormatVersion { newest } => write!(f, "metadata `format_version` is not a version this build reads (1 to {newest}; written by a newer percept?)"),
            BothWeightKinds => write!(f, "blob holds both dense `weight` and low-rank `weight_u`/`weight_vt`; a decoder has one or the other"),
            BadRank { rank, limit } => write!(f, "low-rank tensors `weight_u`/`weight_vt` have rank {rank}; it must be 1 to min(outputs, voxels) = {limit}"),
            EmptyDecoder { name } => write!(f, "tensor `{name}` is empty: a decoder needs at least one voxel and one output"),
            StdTooSmall { index } => write!(f, "voxel_std of voxel {index} is below {:e} (tiny or subnormal)", crate::MIN_STD),
            SparseIndexOutOfRange { output, slot, index, voxels } => write!(f, "tensor `sparse_index` names voxel {index} at output {output}, slot {slot}; the decoder has {voxels} voxels"),
        }
    }
}

impl Error {
    /// A stable number for C callers (`percept_decode` returns its negation); 1 is reserved
    /// for a null pointer.
    pub fn code(&self) -> u16 {
        use Error::*;
        match self {
            TooShort { .. } => 2,
            HeaderTooLarge { .. } => 3,
            HeaderPastEnd { .. } => 4,
            HeaderNotUtf8 { .. } => 5,
            HeaderSyntax { .. } => 6,
            HeaderTooDeep { .. } => 7,
            TooManyTensors { .. } => 8,
            DuplicateTensor { .. } => 9,
            UnknownDtype { .. } => 10,
            RankTooLarge { .. } => 11,
            ShapeOverflow { .. } => 12,
            DataOutOfRange { .. } => 13,
            SizeMismatch { .. } => 14,
            DataNotContiguous { .. } => 15,
            MissingTensor { .. } => 16,
            WrongDtype { .. } => 17,
            WrongRank { .. } => 18,
            WrongShape { .. } => 19,
            Misaligned { .. } => 20,
            NonFiniteParameter { .. } => 21,
            BadStd { .. } => 22,
            MissingMetadata { .. } => 23,
            BadMetadata { .. } => 24,
            SizeNotAsBuilt { .. } => 25,
            BufferLength { .. } => 26,
            NonFiniteVoxel { .. } => 27,
            ChunkOutOfRange { .. } => 28,
            ChunkOverlap { .. } => 29,
            Incomplete { .. } => 30,
            ChecksumMismatch { .. } => 31,
            UnsupportedFormatVersion { .. } => 32,
            BothWeightKinds => 33,
            BadRank { .. } => 34,
            EmptyDecoder { .. } => 35,
            StdTooSmall { .. } => 36,
            SparseIndexOutOfRange { .. } => 37,
        }
    }
}

impl core::error::Error for Error {}

/// The result type of percept-core.
pub type Result<T> = core::result::Result<T, Error>;
