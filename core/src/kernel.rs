//! The arithmetic of decoding: f16 weights times f32 inputs, summed in f32 in one fixed order.
//!
//! Bit-identical results on every target come from three rules:
//! 1. f16 -> f32 conversion is exact (any correct method gives the same bits);
//! 2. every product and every sum is a separate IEEE f32 operation (Rust never fuses `a * b + c`);
//! 3. the order of the sums is fixed by this file, not by the compiler or the hardware:
//!    a row is cut into blocks of [`BLOCK`] inputs; inside a block, input `i` goes to lane
//!    `i % LANES` of [`LANES`] partial sums, which are then added pairwise (8+8, 4+4, 2+2, 1+1);
//!    the block sums are added to the row's total in block order.
//!
//! The lanes let the compiler use SIMD on hosts while the order stays that of the scalar code;
//! the blocks let a streaming decoder ([`crate::Accumulator`]) keep one f32 per output.
#![allow(clippy::assign_op_pattern)] // `a = a + b` spells out the order of every f32 operation.

/// Inputs per block; a multiple of [`LANES`].
pub const BLOCK: usize = 256;
/// Independent partial sums inside a block.
pub const LANES: usize = 16;

/// Exact f16 (as bits) -> f32 conversion for finite values, branch-free so that it vectorises:
/// normal numbers by re-biasing the exponent, subnormals (magnitude below 2^-14) as integer
/// mantissa times 2^-24, which is exact in f32. Infinities and NaNs never reach it: the decoder
/// rejects them when it loads the weights.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let mag = h & 0x7fff;
    let normal = (mag << 13) + (112 << 23);
    let sub = (mag as f32 * f32::from_bits((127 - 24) << 23)).to_bits();
    let bits = if mag < 0x400 { sub } else { normal };
    f32::from_bits(bits | sign)
}

/// Reads little-endian f16 bits.
#[inline(always)]
fn le16(v: u16) -> u16 {
    u16::from_le(v)
}

/// Reads a little-endian f32.
#[inline(always)]
pub(crate) fn le_f32(v: u32) -> f32 {
    f32::from_bits(u32::from_le(v))
}

/// Makes this process use the portable loops from now on, even where the processor has a
/// faster path (x86-64 AVX + F16C). Results do not change; this exists so that tests can
/// check exactly that.
#[doc(hidden)]
pub fn force_portable() {
    #[cfg(target_arch = "x86_64")]
    x86::disable();
}

/// The lane loop over whole groups of 16: `acc[k] += f32(w[16g + k]) * x[16g + k]`.
#[inline(always)]
fn lanes(acc: &mut [f32; LANES], w: &[[u16; LANES]], x: &[[f32; LANES]]) {
    #[cfg(all(target_arch = "arm", target_os = "none", target_abi = "eabihf"))]
    if arm::lanes(acc, w, x) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the processor has AVX and F16C (checked at run time).
        unsafe { x86::lanes(acc, w, x) };
        return;
    }
    lanes_portable(acc, w, x);
}

#[inline(always)]
fn lanes_portable(acc: &mut [f32; LANES], w: &[[u16; LANES]], x: &[[f32; LANES]]) {
    for (wb, xb) in w.iter().zip(x) {
        for k in 0..LANES {
            acc[k] = acc[k] + f16_to_f32(le16(wb[k])) * xb[k];
        }
    }
}

/// Ends a block: the last `n % 16` products go to lanes `0..n % 16`, then the lanes are added
/// pairwise (k + 8, k + 4, k + 2, k + 1).
#[inline(always)]
fn finish_block(mut acc: [f32; LANES], wt: &[u16], xt: &[f32]) -> f32 {
    for ((a, &wv), &xv) in acc.iter_mut().zip(wt).zip(xt) {
        *a = *a + f16_to_f32(le16(wv)) * xv;
    }
    let mut width = LANES / 2;
    while width > 0 {
        for k in 0..width {
            acc[k] = acc[k] + acc[k + width];
        }
        width /= 2;
    }
    acc[0]
}

/// Dot product of one block: `w (n,) f16 bits . x (n,) f32 -> f32`, `n <= BLOCK`.
#[inline(always)]
pub fn block_dot(w: &[u16], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (wc, wt) = w.as_chunks::<LANES>();
    let (xc, xt) = x.as_chunks::<LANES>();
    lanes(&mut acc, wc, xc);
    finish_block(acc, wt, xt)
}

/// Adds the blocks of one row: `total + sum_j block_dot(w_j, x_j)` in block order.
/// `w` and `x` must start at a block boundary of the row.
#[inline(always)]
pub fn row_dot_from(total: f32, w: &[u16], x: &[f32]) -> f32 {
    let mut y = total;
    for (wb, xb) in w.chunks(BLOCK).zip(x.chunks(BLOCK)) {
        y = y + block_dot(wb, xb);
    }
    y
}

/// `y (rows,) = W (rows, n) f16 . x (n,)`, each row from a zero total; `W` row-major.
pub fn matvec(w: &[u16], x: &[f32], y: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        y.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the processor has AVX and F16C (checked at run time).
        unsafe { x86::matvec(w, x, y) };
        return;
    }
    for (row, out) in w.chunks_exact(n).zip(y.iter_mut()) {
        *out = row_dot_from(0.0, row, x);
    }
}

/// `sums[r] += block_dot(W[r, begin..begin + x.len()], x)` for every row r of `W (rows, n)`:
/// one block of a streamed volume folded into all outputs.
pub fn add_block(w: &[u16], n: usize, begin: usize, x: &[f32], sums: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() && begin.checked_add(x.len()).is_some_and(|e| e <= n) && sums.len().checked_mul(n).is_some_and(|m| m <= w.len()) {
        // SAFETY: AVX and F16C are present; every row's range begin..begin + x.len() lies
        // inside the row (checked above), and every row lies inside `w`.
        unsafe { x86::add_block(w, n, begin, x, sums) };
        return;
    }
    if n == 0 {
        return;
    }
    for (row, s) in w.chunks_exact(n).zip(sums.iter_mut()) {
        let wb = row.get(begin..begin.saturating_add(x.len())).unwrap_or_default();
        *s = *s + block_dot(wb, x);
    }
}

/// x86-64 with AVX and F16C (detected at run time with CPUID, so one binary runs anywhere):
/// VCVTPH2PS converts 8 halves exactly, VMULPS and VADDPS round separately like the portable
/// code (no FMA), and lanes 0..7 / 8..15 are the two halves of the 16 lanes. Rows go four at
/// a time, so each group of `x` is loaded once for four rows and four streams of `W` are in
/// flight; each row's own order of operations is unchanged.
///
/// Prefetching (BENCHMARKS.md, "percept-core decode", 2026-12-02): a whole decode prefetches
/// `W` 1 KiB ahead in each row into all cache levels (T0). The non-temporal hint used before
/// (meant to keep `x` in L1) made a 15,724 -> 59,136 decode 1.5x slower on a Xeon, and
/// blocking over outputs so that `x` stays in L1 gained nothing there: the time is `W`'s
/// stream from memory, not `x`'s reloads from L2. The streaming path ([`add_block`]) reads
/// short row pieces and keeps the non-temporal hint.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use core::sync::atomic::{AtomicU8, Ordering};

    use super::{finish_block, BLOCK, LANES};

    static STATE: AtomicU8 = AtomicU8::new(0);

    /// Makes every later call use the portable loop (for tests of that path).
    pub fn disable() {
        STATE.store(1, Ordering::Relaxed);
    }

    /// Whether AVX and F16C can be used (and the OS saves the AVX registers).
    #[inline(always)]
    pub fn available() -> bool {
        match STATE.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let ok = detect();
                STATE.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
                ok
            }
        }
    }

    #[allow(unused_unsafe)]
    fn detect() -> bool {
        // SAFETY: CPUID exists on every x86-64 processor.
        let leaf1 = unsafe { __cpuid(1) };
        let (osxsave, avx, f16c) = (leaf1.ecx & (1 << 27) != 0, leaf1.ecx & (1 << 28) != 0, leaf1.ecx & (1 << 29) != 0);
        // SAFETY: XGETBV exists when OSXSAVE is set.
        osxsave && avx && f16c && unsafe { xcr0() } & 0b110 == 0b110
    }

    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        _xgetbv(0)
    }

    #[inline(always)]
    unsafe fn load_w(w: &[u16; LANES], half: usize) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(half * 8).cast()))
    }

    #[inline(always)]
    unsafe fn load_x(x: &[f32; LANES], half: usize) -> __m256 {
        _mm256_loadu_ps(x.as_ptr().add(half * 8))
    }

    #[inline(always)]
    unsafe fn store(acc: &mut [f32; LANES], a0: __m256, a1: __m256) {
        _mm256_storeu_ps(acc.as_mut_ptr(), a0);
        _mm256_storeu_ps(acc.as_mut_ptr().add(8), a1);
    }

    /// The lane loop for one row.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn lanes(acc: &mut [f32; LANES], w: &[[u16; LANES]], x: &[[f32; LANES]]) {
        let mut a0 = _mm256_loadu_ps(acc.as_ptr());
        let mut a1 = _mm256_loadu_ps(acc.as_ptr().add(8));
        for (wb, xb) in w.iter().zip(x) {
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(load_w(wb, 0), load_x(xb, 0)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(load_w(wb, 1), load_x(xb, 1)));
        }
        store(acc, a0, a1);
    }

    /// The lane loop for R rows sharing `x`: each group of `x` is loaded once for R rows.
    /// `ahead` (in halves) is where the weights to prefetch are, relative to those in use,
    /// and `HINT` the cache hint (`_MM_HINT_T0` or `_MM_HINT_NTA`); one prefetch per row and
    /// 64-byte line.
    ///
    /// SAFETY (caller): every `w[r]` has at least `x.len()` groups.
    #[target_feature(enable = "avx,f16c")]
    unsafe fn lanes_rows<const R: usize, const HINT: i32>(acc: &mut [[f32; LANES]; R], w: [&[[u16; LANES]]; R], x: &[[f32; LANES]], ahead: usize) {
        let mut a0 = [_mm256_setzero_ps(); R];
        let mut a1 = [_mm256_setzero_ps(); R];
        for (g, xb) in x.iter().enumerate() {
            let (x0, x1) = (load_x(xb, 0), load_x(xb, 1));
            for r in 0..R {
                let wb = w[r].get_unchecked(g);
                if g % 2 == 0 {
                    // A hint only: any address is allowed, nothing is read architecturally.
                    _mm_prefetch::<HINT>(wb.as_ptr().wrapping_add(ahead).cast());
                }
                a0[r] = _mm256_add_ps(a0[r], _mm256_mul_ps(load_w(wb, 0), x0));
                a1[r] = _mm256_add_ps(a1[r], _mm256_mul_ps(load_w(wb, 1), x1));
            }
        }
        for r in 0..R {
            store(&mut acc[r], a0[r], a1[r]);
        }
    }

    /// R rows at a time through the blocks; each row's order of operations is unchanged.
    ///
    /// SAFETY (caller): every `w[r]` has `x.len()` elements.
    #[target_feature(enable = "avx,f16c")]
    unsafe fn rows<const R: usize>(w: [&[u16]; R], x: &[f32], ahead: usize) -> [f32; R] {
        let mut y = [0.0f32; R];
        let mut start = 0;
        while start < x.len() {
            let end = (start + BLOCK).min(x.len());
            let (xc, xt) = x.get_unchecked(start..end).as_chunks::<LANES>();
            let split = start + xc.len() * LANES;
            let wc: [&[[u16; LANES]]; R] = core::array::from_fn(|r| w[r].get_unchecked(start..split).as_chunks::<LANES>().0);
            let mut acc = [[0.0f32; LANES]; R];
            lanes_rows::<R, _MM_HINT_T0>(&mut acc, wc, xc, ahead);
            for r in 0..R {
                y[r] = y[r] + finish_block(acc[r], w[r].get_unchecked(split..end), xt);
            }
            start = end;
        }
        y
    }

    /// `sums[r] += block_dot(W[r, begin..begin + x.len()], x)`, four rows at a time.
    ///
    /// SAFETY (caller): `begin + x.len() <= n` and `sums.len() * n <= w.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn add_block(w: &[u16], n: usize, begin: usize, x: &[f32], sums: &mut [f32]) {
        let end = begin + x.len();
        let part = |r: usize| w.get_unchecked(r * n + begin..r * n + end);
        let (xc, xt) = x.as_chunks::<LANES>();
        let split = xc.len() * LANES;
        let rows = sums.len();
        let mut r = 0;
        while r < rows {
            if r + ROWS <= rows {
                let ws: [&[u16]; ROWS] = core::array::from_fn(|k| part(r + k));
                let mut acc = [[0.0f32; LANES]; ROWS];
                lanes_rows::<ROWS, _MM_HINT_NTA>(&mut acc, core::array::from_fn(|k| ws[k].get_unchecked(..split).as_chunks::<LANES>().0), xc, ROWS * n);
                for k in 0..ROWS {
                    let s = sums.get_unchecked_mut(r + k);
                    *s = *s + finish_block(acc[k], ws[k].get_unchecked(split..), xt);
                }
                r += ROWS;
            } else {
                let s = sums.get_unchecked_mut(r);
                *s = *s + super::block_dot(part(r), x);
                r += 1;
            }
        }
    }

    /// Rows processed together (8 of the 16 AVX registers hold their lanes).
    const ROWS: usize = 4;
    /// Prefetch distance of a whole decode in halves (1 KiB ahead in each row).
    const AHEAD: usize = 512;

    /// `y (rows,) = W (rows, n) . x (n,)`; bit-identical to the portable loop.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn matvec(w: &[u16], x: &[f32], y: &mut [f32]) {
        let n = x.len();
        let rows = y.len().min(w.len() / n);
        // SAFETY: row r < rows spans w[r * n..(r + 1) * n], inside w since rows * n <= w.len().
        let row = |r: usize| w.get_unchecked(r * n..(r + 1) * n);
        let mut r = 0;
        while r + ROWS <= rows {
            let out = self::rows::<ROWS>(core::array::from_fn(|k| row(r + k)), x, AHEAD);
            y.get_unchecked_mut(r..r + ROWS).copy_from_slice(&out);
            r += ROWS;
        }
        while r < rows {
            *y.get_unchecked_mut(r) = self::rows::<1>([row(r)], x, AHEAD)[0];
            r += 1;
        }
    }
}

/// Cortex-M4F and later (FPv4-SP and up): the lane loop in assembly, converting halves with
/// VCVTB/VCVTT (one instruction each, exact) and accumulating with VMLA, which rounds the
/// product before the addition exactly like `acc + w * x` (VFMA would fuse; it is not used).
/// The order of operations is the portable loop's, so results are bit-identical.
#[cfg(all(target_arch = "arm", target_os = "none", target_abi = "eabihf"))]
mod arm {
    use super::LANES;

    /// Runs the lane loop over whole groups of 16; false (nothing done) when the weights are
    /// not 4-byte aligned, which VLDM needs (rows of an odd voxel count start at odd halves).
    #[inline(always)]
    pub fn lanes(acc: &mut [f32; LANES], w: &[[u16; LANES]], x: &[[f32; LANES]]) -> bool {
        let groups = w.len().min(x.len());
        if !(w.as_ptr() as usize).is_multiple_of(4) {
            return false;
        }
        // SAFETY: `groups` groups of 16 halves and 16 floats are readable at `w` and `x`, `w`
        // is 4-byte aligned (checked) and `x` is 4-byte aligned (f32); `acc` is 16 floats.
        unsafe { lanes16(acc.as_mut_ptr(), w.as_ptr().cast(), x.as_ptr().cast(), groups) };
        true
    }

    /// acc[k] += f32(w[16g + k]) * x[16g + k] for every group g < groups, k < 16.
    /// r0 = acc, r1 = w, r2 = x, r3 = groups; lanes 0..15 live in s16..s31.
    #[unsafe(naked)]
    unsafe extern "C" fn lanes16(acc: *mut f32, w: *const u16, x: *const f32, groups: usize) {
        core::arch::naked_asm!(
            // The target has this FPU (eabihf on an M4F); rustc does not tell the assembler.
            ".fpu fpv4-sp-d16",
            "vpush {{s16-s31}}",
            "vldmia r0, {{s16-s31}}",
            "cmp r3, #0",
            "beq 2f",
            "1:",
            // lanes 0..7
            "vldmia r2!, {{s0-s7}}",
            "vldmia r1!, {{s8-s11}}",
            "vcvtb.f32.f16 s12, s8",
            "vcvtt.f32.f16 s13, s8",
            "vcvtb.f32.f16 s14, s9",
            "vcvtt.f32.f16 s15, s9",
            "vmla.f32 s16, s12, s0",
            "vmla.f32 s17, s13, s1",
            "vmla.f32 s18, s14, s2",
            "vmla.f32 s19, s15, s3",
            "vcvtb.f32.f16 s12, s10",
            "vcvtt.f32.f16 s13, s10",
            "vcvtb.f32.f16 s14, s11",
            "vcvtt.f32.f16 s15, s11",
            "vmla.f32 s20, s12, s4",
            "vmla.f32 s21, s13, s5",
            "vmla.f32 s22, s14, s6",
            "vmla.f32 s23, s15, s7",
            // lanes 8..15
            "vldmia r2!, {{s0-s7}}",
            "vldmia r1!, {{s8-s11}}",
            "vcvtb.f32.f16 s12, s8",
            "vcvtt.f32.f16 s13, s8",
            "vcvtb.f32.f16 s14, s9",
            "vcvtt.f32.f16 s15, s9",
            "vmla.f32 s24, s12, s0",
            "vmla.f32 s25, s13, s1",
            "vmla.f32 s26, s14, s2",
            "vmla.f32 s27, s15, s3",
            "vcvtb.f32.f16 s12, s10",
            "vcvtt.f32.f16 s13, s10",
            "vcvtb.f32.f16 s14, s11",
            "vcvtt.f32.f16 s15, s11",
            "vmla.f32 s28, s12, s4",
            "vmla.f32 s29, s13, s5",
            "vmla.f32 s30, s14, s6",
            "vmla.f32 s31, s15, s7",
            "subs r3, r3, #1",
            "bne 1b",
            "2:",
            "vstmia r0, {{s16-s31}}",
            "vpop {{s16-s31}}",
            "bx lr",
        )
    }
}
