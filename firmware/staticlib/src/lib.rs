//! percept-core for C firmware: a `no_std` static library with `panic = "abort"`.
//!
//! The C declarations are in `include/percept_core.h`:
//!
//! ```c
//! percept_decoder d;                      /* caller-owned, no allocation */
//! if (percept_decoder_init(&d, blob, blob_len) != 0) { ... }  /* blob 8-byte aligned */
//! size_t voxels, outputs, scratch_len;
//! percept_sizes(&d, &voxels, &outputs, &scratch_len);
//! percept_decode(&d, x, voxels, scratch, scratch_len, out, outputs);
//! ```
//! `percept_decoder_init` and `percept_decode` return 0 on success or `-(error code)` (see
//! `percept_core::Error::code`; 1 is a null pointer or a decoder not loaded); `percept_sizes`
//! gives 0 for a decoder not loaded. `percept_decoder_size` and `percept_decoder_align` give
//! the layout of `percept_decoder`, for a C program to check against the header's.
#![no_std]

use core::mem::{align_of, size_of, MaybeUninit};
use core::slice;

use percept_core::Decoder;

/// Opaque storage for a loaded decoder; the blob it was loaded from must outlive it.
#[repr(C, align(8))]
pub struct PerceptDecoder {
    storage: MaybeUninit<[u8; 192]>,
    loaded: u32,
}

const _: () = assert!(size_of::<Decoder<'static>>() <= 192 && align_of::<Decoder<'static>>() <= 8);

/// The C header, whose `percept_decoder` must have the layout of [`PerceptDecoder`].
const HEADER: &[u8] = include_bytes!("../include/percept_core.h");

/// The number after `#define <name> ` in `header`; evaluated at compile time only, where a
/// missing define fails the build.
const fn define(header: &[u8], name: &[u8]) -> usize {
    const PREFIX: &[u8] = b"#define ";
    let mut i = 0;
    'search: while i + PREFIX.len() + name.len() < header.len() {
        let mut j = 0;
        while j < PREFIX.len() {
            if header[i + j] != PREFIX[j] {
                i += 1;
                continue 'search;
            }
            j += 1;
        }
        let mut k = 0;
        while k < name.len() {
            if header[i + j + k] != name[k] {
                i += 1;
                continue 'search;
            }
            k += 1;
        }
        let mut at = i + j + k;
        if header[at] != b' ' {
            i += 1;
            continue 'search;
        }
        while header[at] == b' ' {
            at += 1;
        }
        let mut n = 0;
        while at < header.len() && header[at].is_ascii_digit() {
            n = n * 10 + (header[at] - b'0') as usize;
            at += 1;
        }
        return n;
    }
    panic!("a #define is missing from include/percept_core.h")
}

// The header's struct and its size constants describe this struct.
const _: () = assert!(define(HEADER, b"PERCEPT_DECODER_SIZE") == size_of::<PerceptDecoder>());
const _: () = assert!(define(HEADER, b"PERCEPT_DECODER_ALIGN") == align_of::<PerceptDecoder>());
const _: () = assert!(define(HEADER, b"PERCEPT_ERR_NULL_POINTER") == 1);

fn get(d: &PerceptDecoder) -> Option<&Decoder<'static>> {
    // SAFETY: `loaded` is set only after a Decoder was written into `storage`.
    (d.loaded == 1).then(|| unsafe { &*(d.storage.as_ptr() as *const Decoder<'static>) })
}

/// Loads and checks the decoder in `blob` (8-byte aligned, kept alive by the caller).
///
/// # Safety
/// `d` must be valid for writes; `blob` must point to `len` readable bytes that outlive `d`.
#[no_mangle]
pub unsafe extern "C" fn percept_decoder_init(d: *mut PerceptDecoder, blob: *const u8, len: usize) -> i32 {
    let Some(d) = d.as_mut() else { return -1 };
    d.loaded = 0;
    if blob.is_null() {
        return -1;
    }
    match Decoder::from_bytes(slice::from_raw_parts(blob, len)) {
        Ok(dec) => {
            (d.storage.as_mut_ptr() as *mut Decoder<'static>).write(dec);
            d.loaded = 1;
            0
        }
        Err(e) => -i32::from(e.code()),
    }
}

/// Voxels, outputs and scratch floats of a loaded decoder (0 when not loaded).
///
/// # Safety
/// `d` must point to a `PerceptDecoder`.
#[no_mangle]
pub unsafe extern "C" fn percept_sizes(d: *const PerceptDecoder, voxels: *mut usize, outputs: *mut usize, scratch: *mut usize) {
    let dec = d.as_ref().and_then(get);
    if let Some(p) = voxels.as_mut() {
        *p = dec.map_or(0, |d| d.voxels());
    }
    if let Some(p) = outputs.as_mut() {
        *p = dec.map_or(0, |d| d.outputs());
    }
    if let Some(p) = scratch.as_mut() {
        *p = dec.map_or(0, |d| d.scratch_len());
    }
}

/// Decodes one volume `x (voxels,)` into `out (outputs,)`.
///
/// # Safety
/// Each pointer must be valid for its length; `d` must have been initialised.
#[no_mangle]
pub unsafe extern "C" fn percept_decode(
    d: *const PerceptDecoder,
    x: *const f32,
    voxels: usize,
    scratch: *mut f32,
    scratch_len: usize,
    out: *mut f32,
    outputs: usize,
) -> i32 {
    let Some(dec) = d.as_ref().and_then(get) else { return -1 };
    if x.is_null() || scratch.is_null() || out.is_null() {
        return -1;
    }
    let (x, s, o) = (
        slice::from_raw_parts(x, voxels),
        slice::from_raw_parts_mut(scratch, scratch_len),
        slice::from_raw_parts_mut(out, outputs),
    );
    match dec.decode(x, s, o) {
        Ok(_) => 0,
        Err(e) => -i32::from(e.code()),
    }
}

/// `sizeof(percept_decoder)` as this library was built (the header's `PERCEPT_DECODER_SIZE`).
#[no_mangle]
pub extern "C" fn percept_decoder_size() -> usize {
    size_of::<PerceptDecoder>()
}

/// Alignment of `percept_decoder` as this library was built (the header's `PERCEPT_DECODER_ALIGN`).
#[no_mangle]
pub extern "C" fn percept_decoder_align() -> usize {
    align_of::<PerceptDecoder>()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
