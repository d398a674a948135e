/*
 * percept_core.h: the C interface of libpercept_core_c.a (firmware/staticlib), percept-core
 * as a no_std static library: no allocation, no panic, no libc beyond memset and bcmp.
 *
 *     percept_decoder d;                          caller-owned, no allocation
 *     if (percept_decoder_init(&d, blob, blob_len) != 0) { ... }
 *     size_t voxels, outputs, scratch_len;
 *     percept_sizes(&d, &voxels, &outputs, &scratch_len);
 *     int rc = percept_decode(&d, x, voxels, scratch, scratch_len, out, outputs);
 *
 * Functions that can fail return 0 on success or the negated error code (-PERCEPT_ERR_...).
 * The blob must be 8-byte aligned and outlive the decoder loaded from it.
 *
 * Hand-written; keep in step with firmware/staticlib/src/lib.rs (which checks
 * PERCEPT_DECODER_SIZE and PERCEPT_DECODER_ALIGN against the Rust struct at compile time) and
 * with percept_core::Error::code (tests/firmware.rs checks every PERCEPT_ERR_ value).
 */
#ifndef PERCEPT_CORE_H
#define PERCEPT_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size and alignment in bytes of percept_decoder. */
#define PERCEPT_DECODER_SIZE 200
#define PERCEPT_DECODER_ALIGN 8

#if defined(__cplusplus)
#define PERCEPT_ALIGNAS(n) alignas(n)
#else
#define PERCEPT_ALIGNAS(n) _Alignas(n)
#endif

/*
 * Opaque storage for a loaded decoder; the blob it was loaded from must outlive it.
 * Do not touch the fields; declare one (static, on the stack, anywhere) and pass its address.
 */
typedef struct percept_decoder {
    PERCEPT_ALIGNAS(8) unsigned char _storage[192];
    uint32_t _loaded;
} percept_decoder;

#if defined(__cplusplus)
static_assert(sizeof(percept_decoder) == PERCEPT_DECODER_SIZE, "percept_decoder size");
static_assert(alignof(percept_decoder) == PERCEPT_DECODER_ALIGN, "percept_decoder alignment");
#else
_Static_assert(sizeof(percept_decoder) == PERCEPT_DECODER_SIZE, "percept_decoder size");
_Static_assert(_Alignof(percept_decoder) == PERCEPT_DECODER_ALIGN, "percept_decoder alignment");
#endif

/* Error codes (percept_core::Error::code); functions return their negation. */
#define PERCEPT_ERR_NULL_POINTER          1  /* a null pointer, or a decoder not loaded */
#define PERCEPT_ERR_TOO_SHORT             2  /* blob shorter than the 8-byte header prefix */
#define PERCEPT_ERR_HEADER_TOO_LARGE      3  /* header length prefix above the core's limit */
#define PERCEPT_ERR_HEADER_PAST_END       4  /* header runs past the end of the blob (truncated?) */
#define PERCEPT_ERR_HEADER_NOT_UTF8       5  /* header is not UTF-8 */
#define PERCEPT_ERR_HEADER_SYNTAX         6  /* header is not valid safetensors JSON */
#define PERCEPT_ERR_HEADER_TOO_DEEP       7  /* header nests too deeply */
#define PERCEPT_ERR_TOO_MANY_TENSORS      8  /* more tensors than the core's fixed table holds */
#define PERCEPT_ERR_DUPLICATE_TENSOR      9  /* two tensors with the same name */
#define PERCEPT_ERR_UNKNOWN_DTYPE        10  /* dtype safetensors does not define */
#define PERCEPT_ERR_RANK_TOO_LARGE       11  /* tensor with too many dimensions */
#define PERCEPT_ERR_SHAPE_OVERFLOW       12  /* element count or byte size overflows */
#define PERCEPT_ERR_DATA_OUT_OF_RANGE    13  /* tensor data past the end of the blob (truncated?) */
#define PERCEPT_ERR_SIZE_MISMATCH        14  /* tensor byte range does not match shape and dtype */
#define PERCEPT_ERR_DATA_NOT_CONTIGUOUS  15  /* tensor data overlaps, leaves a gap or misses the end */
#define PERCEPT_ERR_MISSING_TENSOR       16  /* a tensor the decoder needs is missing */
#define PERCEPT_ERR_WRONG_DTYPE          17  /* a tensor has the wrong dtype */
#define PERCEPT_ERR_WRONG_RANK           18  /* a tensor has the wrong number of dimensions */
#define PERCEPT_ERR_WRONG_SHAPE          19  /* a tensor dimension disagrees with the rest */
#define PERCEPT_ERR_MISALIGNED           20  /* tensor data not aligned in memory (align the blob to 8) */
#define PERCEPT_ERR_NON_FINITE_PARAMETER 21  /* NaN or infinity in a weight, bias, mean or std */
#define PERCEPT_ERR_BAD_STD              22  /* a voxel standard deviation is not positive */
#define PERCEPT_ERR_MISSING_METADATA     23  /* a metadata key the decoder needs is missing */
#define PERCEPT_ERR_BAD_METADATA         24  /* a metadata value cannot be understood */
#define PERCEPT_ERR_SIZE_NOT_AS_BUILT    25  /* decoder size differs from the one fixed at build time */
#define PERCEPT_ERR_BUFFER_LENGTH        26  /* input, scratch or output buffer of the wrong length */
#define PERCEPT_ERR_NON_FINITE_VOXEL     27  /* a voxel value is NaN or infinite */
#define PERCEPT_ERR_CHUNK_OUT_OF_RANGE   28  /* a streamed chunk reaches past the last voxel */
#define PERCEPT_ERR_CHUNK_OVERLAP        29  /* a streamed voxel was delivered twice */
#define PERCEPT_ERR_INCOMPLETE           30  /* a stream finished before every voxel arrived */
#define PERCEPT_ERR_CHECKSUM_MISMATCH    31  /* tensor data differs from the metadata checksum (corrupted file) */
#define PERCEPT_ERR_UNSUPPORTED_FORMAT_VERSION 32  /* format_version newer than this build reads */
#define PERCEPT_ERR_BOTH_WEIGHT_KINDS    33  /* both dense and low-rank weights in one file */
#define PERCEPT_ERR_BAD_RANK             34  /* low-rank rank is 0 or above min(outputs, voxels) */
#define PERCEPT_ERR_EMPTY_DECODER        35  /* no voxels or no outputs */
#define PERCEPT_ERR_STD_TOO_SMALL        36  /* a voxel standard deviation is below 1e-30 (tiny or subnormal) */
#define PERCEPT_ERR_SPARSE_INDEX_OUT_OF_RANGE 37  /* a sparse decoder's sparse_index names a voxel >= V */

/*
 * Loads and checks the decoder in `blob` (8-byte aligned, kept alive by the caller).
 *
 * Safety: `d` must be valid for writes; `blob` must point to `len` readable bytes that outlive `d`.
 * Returns 0, -PERCEPT_ERR_NULL_POINTER if `d` or `blob` is null, or -(error code) if the blob is
 * not a valid decoder; on failure `d` is left not loaded.
 */
int32_t percept_decoder_init(percept_decoder *d, const uint8_t *blob, size_t len);

/*
 * Voxels, outputs and scratch floats of a loaded decoder (0 when not loaded).
 *
 * Safety: `d` must point to a `percept_decoder`. Any of the out pointers may be null.
 */
void percept_sizes(const percept_decoder *d, size_t *voxels, size_t *outputs, size_t *scratch);

/*
 * Decodes one volume `x (voxels,)` into `out (outputs,)`.
 *
 * Safety: each pointer must be valid for its length; `d` must have been initialised.
 * `scratch` (scratch_len floats, see percept_sizes) is overwritten. Returns 0,
 * -PERCEPT_ERR_NULL_POINTER for a null pointer or a decoder not loaded, or -(error code),
 * e.g. -PERCEPT_ERR_BUFFER_LENGTH when a length differs from percept_sizes'.
 */
int32_t percept_decode(const percept_decoder *d, const float *x, size_t voxels, float *scratch,
                       size_t scratch_len, float *out, size_t outputs);

/* sizeof(percept_decoder) as the library was built (PERCEPT_DECODER_SIZE). */
size_t percept_decoder_size(void);

/* Alignment of percept_decoder as the library was built (PERCEPT_DECODER_ALIGN). */
size_t percept_decoder_align(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCEPT_CORE_H */
