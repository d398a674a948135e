//! Benchmark of percept-core (issue: the no_std decoding core), not a test.
//!
//! Host, at Natural Scenes Dataset sizes (dense f16 decoders): our decode time beside the
//! time just to stream W's bytes from memory (the floor) and numpy's float32 `W @ x` of the
//! same size, all measured in this run. The floor is the fastest of three plain reads of W
//! (sums of its words): one sequential stream, and four rows side by side in 32-byte loads
//! (the access pattern of the kernel; on a Xeon the hardware prefetchers serve four streams
//! faster than one), without and with the kernel's software prefetch. Beside it, the kernel as it was before 2026-12-02 ([`old`], a copy) and as it is
//! now, on the same matrix in the same rounds, with their outputs compared bit for bit.
//! Cortex-M4 (firmware under QEMU with `-icount shift=0`): instructions per
//! multiply-accumulate, counted with SysTick.
//!
//! `cargo run --release -p percept-tests --bin bench-core [-- --write BENCHMARKS.md] [--no-firmware]`

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use percept_core::Decoder;
use percept_tests::{publish, today, machine};
use percept_tests::*;

/// Bytes in 8-byte aligned memory, as a memory map gives them.
struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: u64 storage viewed as bytes; the length is within the allocation.
        let dst: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) };
        dst[..bytes.len()].copy_from_slice(bytes);
        Aligned { words, len: bytes.len() }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }
}

/// Best of `reps` runs, in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Reads every byte of `w` once in one sequential stream (sum of u64 words): a memory floor
/// of a matrix-vector product.
fn stream(w: &[u8]) -> u64 {
    let (_, mid, _) = unsafe { w.align_to::<u64>() };
    let mut acc = [0u64; 8];
    for c in mid.chunks_exact(8) {
        for k in 0..8 {
            acc[k] = acc[k].wrapping_add(c[k]);
        }
    }
    acc.iter().fold(0, |a, b| a.wrapping_add(*b))
}

/// Reads every byte of `w` once, rows of `n` halves four at a time side by side in 32-byte
/// loads (sum of u64 lanes): the other memory floor. With `prefetch` (x86-64), each row is
/// also prefetched 1 KiB ahead as the kernel does. Portable code, vectorised by the compiler.
#[allow(clippy::needless_range_loop)]
fn stream_rows(w: &[u16], n: usize, prefetch: bool) -> u64 {
    const R: usize = 4;
    let mut acc = [[0u64; 4]; R];
    for rows in w.chunks_exact(n * R) {
        let parts: [&[u16]; R] = std::array::from_fn(|k| &rows[k * n..(k + 1) * n]);
        let words: [&[[u16; 16]]; R] = std::array::from_fn(|k| parts[k].as_chunks::<16>().0);
        for g in 0..words[0].len() {
            for k in 0..R {
                #[cfg(target_arch = "x86_64")]
                if prefetch && g % 2 == 0 {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    // SAFETY: a hint; any address is allowed and nothing is read.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(words[k][g].as_ptr().wrapping_add(512).cast()) };
                }
                // SAFETY: 16 halves are 32 bytes, read unaligned as four u64 words.
                let v: [u64; 4] = unsafe { std::ptr::read_unaligned(words[k][g].as_ptr().cast()) };
                for (a, b) in acc[k].iter_mut().zip(v) {
                    *a = a.wrapping_add(b);
                }
            }
        }
    }
    let _ = prefetch;
    acc.iter().flatten().fold(0, |a, b| a.wrapping_add(*b))
}

fn split<T: Send>(n: usize, threads: usize, out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

struct Row {
    name: String,
    /// Whole decodes, one and two threads.
    ours: [f64; 2],
    /// `W . x` alone: the old kernel and the new one, one thread.
    old: f64,
    new: f64,
    /// One thread: sequential, four row streams (the better of without and with prefetch);
    /// two threads: sequential halves.
    floor: [f64; 3],
    numpy: Option<f64>,
    bytes: usize,
}

fn host_case(v: usize, l: usize, reps: usize) -> Result<Row> {
    eprintln!("host: making a random {l}x{v} f16 decoder ...");
    let file = random_decoder(v, &[l], None, 7);
    let blob = Aligned::new(&file.to_bytes()?);
    drop(file);
    let dec = Decoder::from_bytes(blob.bytes())?;
    let w_bytes = l * v * 2;
    let w = &blob.bytes()[blob.len - w_bytes..];
    // SAFETY: the weights are the last tensor, 2-byte aligned in 8-byte aligned memory.
    let (_, wh, _) = unsafe { w.align_to::<u16>() };
    anyhow::ensure!(wh.len() == l * v, "the weights are not 2-byte aligned");
    let x = Rng(8).vec(v, 2.0);
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0f32; l];
    let mut xn = vec![0.0; v];
    dec.prepare(&x, &mut xn, &mut [])?;

    eprintln!("host: timing {l}x{v} ...");
    let (mut ours1, mut old, mut new, mut floor_seq, mut floor_rows) = [f64::INFINITY; 5].into();
    let (mut y_old, mut y_new) = (vec![0.0f32; l], vec![0.0f32; l]);
    // Interleaved rounds, so that the machine's other load falls on every variant alike.
    for _ in 0..reps {
        ours1 = ours1.min(best(1, || {
            dec.decode(&x, &mut scratch, &mut out).unwrap();
            black_box(&out);
        }));
        old = old.min(best(1, || {
            old::matvec(wh, &xn, &mut y_old);
            black_box(&y_old);
        }));
        new = new.min(best(1, || {
            percept_core::kernel::matvec(wh, &xn, &mut y_new);
            black_box(&y_new);
        }));
        floor_seq = floor_seq.min(best(1, || {
            black_box(stream(w));
        }));
        floor_rows = floor_rows.min(best(1, || {
            black_box(stream_rows(wh, v, false));
        }));
        floor_rows = floor_rows.min(best(1, || {
            black_box(stream_rows(wh, v, true));
        }));
    }
    anyhow::ensure!(y_old.iter().zip(&y_new).all(|(a, b)| a.to_bits() == b.to_bits()), "the old and the new kernel differ");
    let one = out.clone();
    let ours2 = best(reps, || {
        let mut xn = vec![0.0; v];
        dec.prepare(&x, &mut xn, &mut []).unwrap();
        split(l, 2, &mut out, |first, o| dec.decode_rows(&xn, first, o).unwrap());
        black_box(&out);
    });
    assert_eq!(one, out, "two threads must give the same bits as one");
    let floor2 = best(reps, || {
        let half = (w.len() / 2) & !63;
        std::thread::scope(|s| {
            let a = s.spawn(|| stream(&w[..half]));
            let b = s.spawn(|| stream(&w[half..]));
            black_box(a.join().unwrap().wrapping_add(b.join().unwrap()));
        });
    });
    let numpy = numpy_matvec(v, l, reps);
    Ok(Row { name: format!("{v} -> {l}"), ours: [ours1, ours2], old, new, floor: [floor_seq, floor_rows, floor2], numpy, bytes: w_bytes })
}

/// The x86-64 `W . x` of percept-core before 2026-12-02, copied unchanged for the side-by-side:
/// four rows at a time, W prefetched 1 KiB ahead with the non-temporal hint. Its outputs must
/// equal the current kernel's bit for bit. Elsewhere than x86-64, the current kernel.
mod old {
    #[cfg(target_arch = "x86_64")]
    pub fn matvec(w: &[u16], x: &[f32], y: &mut [f32]) {
        assert!(std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("f16c"), "the old kernel needs AVX and F16C");
        assert!(!x.is_empty() && y.len() * x.len() <= w.len());
        // SAFETY: AVX and F16C are present (checked); every row lies inside `w` (checked).
        unsafe { x86::matvec(w, x, y) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn matvec(w: &[u16], x: &[f32], y: &mut [f32]) {
        percept_core::kernel::matvec(w, x, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::assign_op_pattern, clippy::needless_range_loop)]
    mod x86 {
        use std::arch::x86_64::*;

        use percept_core::kernel::{f16_to_f32, BLOCK, LANES};

        fn finish_block(mut acc: [f32; LANES], wt: &[u16], xt: &[f32]) -> f32 {
            for ((a, &wv), &xv) in acc.iter_mut().zip(wt).zip(xt) {
                *a = *a + f16_to_f32(u16::from_le(wv)) * xv;
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

        #[target_feature(enable = "avx,f16c")]
        unsafe fn lanes_rows<const R: usize>(acc: &mut [[f32; LANES]; R], w: [&[[u16; LANES]]; R], x: &[[f32; LANES]], ahead: usize) {
            let mut a0 = [_mm256_setzero_ps(); R];
            let mut a1 = [_mm256_setzero_ps(); R];
            for (g, xb) in x.iter().enumerate() {
                let (x0, x1) = (load_x(xb, 0), load_x(xb, 1));
                for r in 0..R {
                    let wb = w[r].get_unchecked(g);
                    if g % 2 == 0 {
                        _mm_prefetch::<_MM_HINT_NTA>(wb.as_ptr().wrapping_add(ahead).cast());
                    }
                    a0[r] = _mm256_add_ps(a0[r], _mm256_mul_ps(load_w(wb, 0), x0));
                    a1[r] = _mm256_add_ps(a1[r], _mm256_mul_ps(load_w(wb, 1), x1));
                }
            }
            for r in 0..R {
                store(&mut acc[r], a0[r], a1[r]);
            }
        }

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
                lanes_rows::<R>(&mut acc, wc, xc, ahead);
                for r in 0..R {
                    y[r] = y[r] + finish_block(acc[r], w[r].get_unchecked(split..end), xt);
                }
                start = end;
            }
            y
        }

        const ROWS: usize = 4;
        const AHEAD: usize = 512;

        #[target_feature(enable = "avx,f16c")]
        pub unsafe fn matvec(w: &[u16], x: &[f32], y: &mut [f32]) {
            let n = x.len();
            let rows = y.len().min(w.len() / n);
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
}

/// numpy's float32 `W @ x` (best of `reps`), with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset
/// for that command alone (they slow a current numpy; see the machine notes).
fn numpy_matvec(v: usize, l: usize, reps: usize) -> Option<f64> {
    let script = format!(
        "import time, numpy as np\n\
         W = np.random.default_rng(0).random(({l}, {v}), dtype=np.float32)\n\
         x = np.random.default_rng(1).random({v}, dtype=np.float32)\n\
         y = W @ x\n\
         b = 1e9\n\
         for _ in range({reps}):\n    t = time.perf_counter(); y = W @ x; b = min(b, time.perf_counter() - t)\n\
         print(b)\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("numpy not measured: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn numpy_version() -> String {
    Command::new("python3")
        .args(["-c", "import numpy, threadpoolctl as t; i=t.threadpool_info(); print(numpy.__version__, ', '.join(f\"{d.get('internal_api')} {d.get('architecture')} {d.get('num_threads')} threads\" for d in i))"])
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| {
            Command::new("python3")
                .args(["-c", "import numpy; print(numpy.__version__)"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "not installed".into())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-core [-- --write BENCHMARKS.md] [--no-firmware]", &["--no-firmware"], &["--write"])?;
    let reps = 7;
    let mut report = String::new();
    let date = today();
    report += &format!("## percept-core decode ({date})\n\n");
    report += &format!("Machine: {}, {}. numpy: {}.\n", machine(), std::env::consts::ARCH, numpy_version());
    report += "Command: `cargo run --release -p percept-tests --bin bench-core`. Best of 7 interleaved rounds, all in one run. \
               The machine was shared with other helpers' builds and benchmarks.\n\n";
    report += "Floor: the fastest plain read of W: one sequential stream, or four rows side by side (the better of without and with the kernel's prefetch). \
               Old / new kernel: `W . x` alone (percept-core's `kernel::matvec`) before and after this change, \
               bit-identical outputs (checked); decode: the whole `Decoder::decode` with the new kernel.\n\n";
    let mut threads2 = String::from("| decoder (V -> L, f16) | ours 2 threads | floor 2 threads | ours / floor | numpy f32 W@x | numpy / ours (2 threads) |\n|---|---|---|---|---|---|\n");
    report += "| decoder (V -> L, f16) | W bytes | decode 1 thread | old kernel | new kernel | floor: 1 stream | floor: 4 row streams | decode / floor | old / floor | new / floor | old / new |\n";
    report += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (v, l) in [(5000, 6400), (15724, 59136)] {
        let r = host_case(v, l, reps)?;
        let ms = |s: f64| format!("{:.2} ms", s * 1e3);
        let floor = r.floor[0].min(r.floor[1]);
        report += &format!(
            "| {} | {:.0} MB | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            r.name,
            r.bytes as f64 / 1e6,
            ms(r.ours[0]),
            ms(r.old),
            ms(r.new),
            ms(r.floor[0]),
            ms(r.floor[1]),
            r.ours[0] / floor,
            r.old / floor,
            r.new / floor,
            r.old / r.new,
        );
        threads2 += &format!(
            "| {} | {} | {} | {:.2} | {} | {} |\n",
            r.name,
            ms(r.ours[1]),
            ms(r.floor[2]),
            r.ours[1] / r.floor[2],
            r.numpy.map_or("-".into(), ms),
            r.numpy.map_or("-".into(), |n| format!("{:.2}", n / r.ours[1])),
        );
    }
    report += "\nTwo threads (outputs split in halves; floor: W read in two sequential halves):\n\n";
    report += &threads2;
    if args.iter().any(|a| a == "--no-firmware") {
        return publish(&report, &args);
    }

    eprintln!("cortex-m4: building and running the firmware under QEMU ...");
    let fixture = std::env::temp_dir().join(format!("percept-bench-fw-{}", std::process::id()));
    write_firmware_fixture(&fixture)?;
    let image = build_firmware(&fixture)?;
    let text = run_qemu(&image)?;
    let _ = std::fs::remove_dir_all(&fixture);
    let t = |k: &str| ticks(&text, k).with_context(|| format!("firmware printed no {k}:\n{text}"));
    let per_tick = t("calibration_instructions")? as f64 / t("calibration")? as f64;
    let ipm_dense = t("dense_decode")? as f64 * per_tick / t("dense_macs")? as f64;
    let ipm_odd = t("odd_decode")? as f64 * per_tick / t("odd_macs")? as f64;
    let ipo_sparse = t("sparse_decode")? as f64 * per_tick / fw::L4 as f64;
    let last = t("last_chunk")? as f64 / t("dense_decode")? as f64;
    report += &format!(
        "\nCortex-M4F (QEMU mps2-an386, `-icount shift=0`, SysTick; {per_tick:.1} instructions per tick from a calibration loop):\n\n\
         | case | instructions per multiply-accumulate |\n|---|---|\n\
         | {v} -> {l} dense, rows word-aligned (VCVTB/VCVTT + VMLA path), whole decode incl. standardisation | {ipm_dense:.2} |\n\
         | {v3} -> {l3} dense, odd V (portable branch-free conversion) | {ipm_odd:.2} |\n\
         | {v} -> {l4} sparse, {k4} voxels per output (U16 indices), whole decode incl. standardising all {v} voxels | {ipm_sparse:.2} ({ipo_sparse:.0} per output) |\n\n\
         Streaming in order in chunks of 80 voxels: the last chunk plus `finish` take {pct:.1}% of a whole decode.\n",
        v = fw::V,
        l = fw::L,
        v3 = fw::V3,
        l3 = fw::L3,
        l4 = fw::L4,
        k4 = fw::K4,
        ipm_sparse = ipo_sparse / fw::K4 as f64,
        pct = last * 100.0
    );
    publish(&report, &args)
}
