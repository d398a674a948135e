//! Link-time proof that no panic is reachable from percept-core's public API.
//!
//! Every public entry point is called on inputs the optimiser cannot see (volatile reads).
//! The panic handler calls a function that exists nowhere, so if any panic path survived,
//! linking would fail with an undefined reference to `percept_core_panic_is_reachable`.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use cortex_m_rt::entry;
use percept_core::{Blob, Decoder, NonFinite};

static mut BYTES: [u8; 4096] = [0; 4096];
static mut X: [f32; 64] = [0.0; 64];
static mut SCRATCH: [f32; 80] = [0.0; 80];
static mut SEEN: [u32; 2] = [0; 2];
static mut OUT: [f32; 64] = [0.0; 64];
static mut SINK: usize = 0;

fn opaque(n: usize) -> usize {
    unsafe { read_volatile(&raw const SINK) ^ n }
}

fn sink(v: usize) {
    unsafe { write_volatile(&raw mut SINK, v) }
}

#[entry]
fn main() -> ! {
    // SAFETY: single-threaded firmware; nothing else touches these statics.
    let (bytes, x, scratch, seen, out) = unsafe {
        let (b, x, s, n, o) = (&raw const BYTES, &raw const X, &raw mut SCRATCH, &raw mut SEEN, &raw mut OUT);
        let (b, x, s, n, o) = (&*b, &*x, &mut *s, &mut *n, &mut *o);
        (
            &b[..opaque(4096).min(4096)],
            &x[..opaque(64).min(64)],
            &mut s[..opaque(80).min(80)],
            &mut n[..opaque(2).min(2)],
            &mut o[..opaque(64).min(64)],
        )
    };
    if let Ok(blob) = Blob::parse(bytes) {
        if let Ok(Some(t)) = blob.tensor("weight") {
            sink(t.data.len() + t.shape.len() + t.dtype.size());
        }
        if let Ok(Some(m)) = blob.metadata("region") {
            sink(m.len());
        }
    }
    if let Ok(dec) = Decoder::from_bytes(bytes) {
        let dec = if opaque(0) == 1 { dec.with_non_finite(NonFinite::UseMean) } else { dec };
        sink(dec.voxels() + dec.outputs() + dec.scratch_len() + dec.seen_len() + dec.rank().unwrap_or(0) + dec.target_shape().len() + dec.region().len());
        if let Ok(s) = dec.decode(x, scratch, out) {
            sink(s.replaced);
        }
        let (xn, hidden) = scratch.split_at_mut(opaque(40).min(scratch.len()));
        if dec.prepare(x, xn, hidden).is_ok() {
            let _ = dec.decode_rows(xn, opaque(3), out);
        }
        if let Ok(mut acc) = dec.stream(scratch, seen, out) {
            let _ = acc.push(opaque(5), &x[..opaque(9).min(x.len())]);
            let _ = acc.push(opaque(0), x);
            sink(acc.received());
            let _ = acc.finish();
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    #[cfg(not(feature = "find-panics"))]
    extern "C" {
        fn percept_core_panic_is_reachable() -> !;
    }
    #[cfg(not(feature = "find-panics"))]
    unsafe { percept_core_panic_is_reachable() }
    #[cfg(feature = "find-panics")]
    loop {
        cortex_m::asm::wfi();
    }
}
