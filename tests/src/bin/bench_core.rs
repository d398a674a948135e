//! Benchmark of percept-core (issue: the no_std decoding core), not a test.
//!
//! Host, at Natural Scenes Dataset sizes (dense f16 decoders): our decode time beside the
//! time just to stream W's bytes from memory (the floor) and numpy's float32 `W @ x` of the
//! same size, all measured in this run. Cortex-M4 (firmware under QEMU with `-icount shift=0`):
//! instructions per multiply-accumulate, counted with SysTick.
//!
//! `cargo run --release -p percept-tests --bin bench-core [-- --write BENCHMARKS.md]`

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

/// Reads every byte of `w` once (sum of u64 words): the memory floor of a matrix-vector product.
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
    ours: [f64; 2],
    floor: [f64; 2],
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
    let x = Rng(8).vec(v, 2.0);
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0f32; l];

    eprintln!("host: timing {l}x{v} ...");
    let ours1 = best(reps, || {
        dec.decode(&x, &mut scratch, &mut out).unwrap();
        black_box(&out);
    });
    let one = out.clone();
    let ours2 = best(reps, || {
        let mut xn = vec![0.0; v];
        dec.prepare(&x, &mut xn, &mut []).unwrap();
        split(l, 2, &mut out, |first, o| dec.decode_rows(&xn, first, o).unwrap());
        black_box(&out);
    });
    assert_eq!(one, out, "two threads must give the same bits as one");
    let floor1 = best(reps, || {
        black_box(stream(w));
    });
    let floor2 = best(reps, || {
        let half = (w.len() / 2) & !63;
        std::thread::scope(|s| {
            let a = s.spawn(|| stream(&w[..half]));
            let b = s.spawn(|| stream(&w[half..]));
            black_box(a.join().unwrap().wrapping_add(b.join().unwrap()));
        });
    });
    let numpy = numpy_matvec(v, l, reps);
    Ok(Row { name: format!("{v} -> {l}"), ours: [ours1, ours2], floor: [floor1, floor2], numpy, bytes: w_bytes })
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
    let reps = 5;
    let mut report = String::new();
    let date = today();
    report += &format!("## percept-core decode ({date})\n\n");
    report += &format!("Machine: {}, {}. numpy: {}.\n", machine(), std::env::consts::ARCH, numpy_version());
    report += "Command: `cargo run --release -p percept-tests --bin bench-core`. Best of 5 runs each, all in one run.\n\n";
    report += "| decoder (V -> L, f16) | W bytes | ours 1 thread | floor 1 thread | ours / floor | ours 2 threads | floor 2 threads | ours / floor | numpy f32 W@x | numpy / ours (2 threads) |\n";
    report += "|---|---|---|---|---|---|---|---|---|---|\n";
    for (v, l) in [(5000, 6400), (15724, 59136)] {
        let r = host_case(v, l, reps)?;
        let ms = |s: f64| format!("{:.2} ms", s * 1e3);
        report += &format!(
            "| {} | {:.0} MB | {} | {} | {:.2} | {} | {} | {:.2} | {} | {} |\n",
            r.name,
            r.bytes as f64 / 1e6,
            ms(r.ours[0]),
            ms(r.floor[0]),
            r.ours[0] / r.floor[0],
            ms(r.ours[1]),
            ms(r.floor[1]),
            r.ours[1] / r.floor[1],
            r.numpy.map_or("-".into(), ms),
            r.numpy.map_or("-".into(), |n| format!("{:.2}", n / r.ours[1])),
        );
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
