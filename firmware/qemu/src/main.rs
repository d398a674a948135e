//! percept-core on a Cortex-M4F under QEMU (mps2-an386): decodes a fixed volume with weights
//! embedded in flash, prints FNV-1a checksums of the latents over semihosting (the host test
//! compares them with its own decode of the same inputs), and counts instructions per
//! multiply-accumulate with SysTick under `-icount shift=0`.
//!
//! The fixture comes from the directory in PERCEPT_FW_DIR at build time (written by
//! `percept_tests::write_firmware_fixture`): `dense.safetensors` (2000 voxels -> 256 outputs),
//! `lowrank.safetensors` (2000 -> 1024, rank 8), `odd.safetensors` (1999 -> 33: rows not
//! word-aligned), `sparse.safetensors` (2000 -> 200, 100 voxels per output) and `x.bin` (2000
//! little-endian f32 voxels).
#![no_std]
#![no_main]

use core::arch::asm;

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use percept_core::{Aligned, Decoder, FixedDecoder, Scratch};

const V: usize = 2000;
const L: usize = 256;
const L2: usize = 1024;
const R2: usize = 8;
const V3: usize = 1999;
const L3: usize = 33;
const L4: usize = 200;
const K4: usize = 100;
/// Voxels per streamed chunk (a slice's worth).
const CHUNK: usize = 80;

static DENSE: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("PERCEPT_FW_DIR"), "/dense.safetensors")));
static LOWRANK: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("PERCEPT_FW_DIR"), "/lowrank.safetensors")));
static ODD: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("PERCEPT_FW_DIR"), "/odd.safetensors")));
static SPARSE: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("PERCEPT_FW_DIR"), "/sparse.safetensors")));
static X: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("PERCEPT_FW_DIR"), "/x.bin")));

fn fnv1a(values: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// SysTick ticks elapsed while `f` runs (at most 2^24 - 1).
fn ticks(syst: &mut SYST, f: impl FnOnce()) -> u32 {
    syst.clear_current();
    let start = SYST::get_current();
    f();
    let end = SYST::get_current();
    start.wrapping_sub(end) & 0x00ff_ffff
}

fn fail(what: &str, e: percept_core::Error) -> ! {
    hprintln!("error: {}: {}", what, e);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00ff_ffff);
    cp.SYST.enable_counter();
    let syst = &mut cp.SYST;

    let mut x = [0f32; V];
    for (v, b) in x.iter_mut().zip(X.0.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }

    // Dense, sizes fixed at build time. Loading checks the checksum and every value.
    let mut loaded = None;
    let t_load = ticks(syst, || loaded = Some(FixedDecoder::<V, L>::from_bytes(&DENSE.0)));
    let dense = match loaded {
        Some(Ok(d)) => d,
        Some(Err(e)) => fail("dense decoder", e),
        None => fail("dense decoder", percept_core::Error::TooShort { len: 0 }),
    };
    // The checksum alone, over the whole file.
    let mut sum = 0;
    let t_checksum = ticks(syst, || sum = core::hint::black_box(percept_core::checksum::of_data(core::hint::black_box(&DENSE.0))));
    hprintln!("checksum {:08x}", sum);
    let mut scratch = Scratch::<V>::new();
    let mut y = [0f32; L];
    let mut result = Ok(Default::default());
    let t_dense = ticks(syst, || result = dense.decode(&x, &mut scratch, &mut y));
    if let Err(e) = result {
        fail("dense decode", e);
    }
    hprintln!("dense {:016x}", fnv1a(&y));

    // Streaming, chunks in interleaved order (odd chunks, then even ones), as slices arrive
    // in interleaved acquisition.
    let dec = dense.decoder();
    let mut flat = [0f32; V];
    let mut seen = [0u32; V.div_ceil(32)];
    let mut ys = [0f32; L];
    {
        let mut acc = match dec.stream(&mut flat, &mut seen, &mut ys) {
            Ok(a) => a,
            Err(e) => fail("stream", e),
        };
        for c in (1..V / CHUNK).step_by(2).chain((0..V / CHUNK).step_by(2)) {
            if let Err(e) = acc.push(c * CHUNK, &x[c * CHUNK..(c + 1) * CHUNK]) {
                fail("push", e);
            }
        }
        if let Err(e) = acc.finish() {
            fail("finish", e);
        }
    }
    hprintln!("stream {:016x}", fnv1a(&ys));

    // Streaming in order: how much work is left after the last chunk arrives.
    let t_last;
    {
        let mut acc = match dec.stream(&mut flat, &mut seen, &mut ys) {
            Ok(a) => a,
            Err(e) => fail("stream", e),
        };
        let last = V / CHUNK - 1;
        for c in 0..last {
            let _ = acc.push(c * CHUNK, &x[c * CHUNK..(c + 1) * CHUNK]);
        }
        let mut r = Ok(Default::default());
        t_last = ticks(syst, || {
            r = acc.push(last * CHUNK, &x[last * CHUNK..]).and_then(|_| acc.finish());
        });
        if let Err(e) = r {
            fail("in-order stream", e);
        }
    }
    hprintln!("inorder {:016x}", fnv1a(&ys));

    // Low-rank, sizes checked at load time.
    let low = match Decoder::from_bytes(&LOWRANK.0) {
        Ok(d) => d,
        Err(e) => fail("low-rank decoder", e),
    };
    let mut scratch2 = [0f32; V + R2];
    let mut y2 = [0f32; L2];
    if let Err(e) = low.decode(&x, &mut scratch2, &mut y2) {
        fail("low-rank decode", e);
    }
    hprintln!("lowrank {:016x}", fnv1a(&y2));

    // Odd voxel count: rows start at odd halves, so the portable loop runs instead of VLDM.
    let odd = match FixedDecoder::<V3, L3>::from_bytes(&ODD.0) {
        Ok(d) => d,
        Err(e) => fail("odd decoder", e),
    };
    let mut scratch3 = Scratch::<V3>::new();
    let mut y3 = [0f32; L3];
    let mut x3 = [0f32; V3];
    x3.copy_from_slice(&x[..V3]);
    let mut t_odd = 0;
    let mut r3 = Ok(Default::default());
    t_odd += ticks(syst, || r3 = odd.decode(&x3, &mut scratch3, &mut y3));
    if let Err(e) = r3 {
        fail("odd decode", e);
    }
    hprintln!("odd {:016x}", fnv1a(&y3));

    // Sparse: each output reads its own K4 voxels (standardisation of all V included).
    let sparse = match FixedDecoder::<V, L4>::from_bytes(&SPARSE.0) {
        Ok(d) => d,
        Err(e) => fail("sparse decoder", e),
    };
    let mut y4 = [0f32; L4];
    let mut r4 = Ok(Default::default());
    let t_sparse = ticks(syst, || r4 = sparse.decode(&x, &mut scratch, &mut y4));
    if let Err(e) = r4 {
        fail("sparse decode", e);
    }
    hprintln!("sparse {:016x}", fnv1a(&y4));

    // Calibrate: a loop of exactly 2 instructions per iteration.
    let n: u32 = 200_000;
    let t_cal = ticks(syst, || unsafe {
        asm!("1:", "subs {0}, {0}, #1", "bne 1b", inout(reg) n => _, options(nomem, nostack));
    });
    hprintln!(
        "ticks dense_decode={} dense_macs={} odd_decode={} odd_macs={} sparse_decode={} sparse_macs={} last_chunk={} load_dense={} checksum={} checksum_bytes={} calibration={} calibration_instructions={}",
        t_dense,
        V * L,
        t_odd,
        V3 * L3,
        t_sparse,
        L4 * K4,
        t_last,
        t_load,
        t_checksum,
        DENSE.0.len(),
        t_cal,
        2 * n
    );
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    hprintln!("panic");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
