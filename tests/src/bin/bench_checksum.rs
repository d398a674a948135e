//! What the decoder-file checksum (XXH32 of the tensor data, checked by `Decoder::from_bytes`)
//! costs, not a test. Host: a dense 15,724 x 6,400 f16 decoder (201 MB of weights): the
//! checksum alone, the whole load (checksum + finiteness checks) and one decode, best of 3.
//! Cortex-M4 (firmware under QEMU, `-icount shift=0`): instructions per byte of the checksum
//! and of the whole load of the 2000 -> 256 fixture.
//!
//! `cargo run --release -p percept-tests --bin bench-checksum [-- --write BENCHMARKS.md]`

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result};
use percept_core::{checksum, Decoder};
use percept_tests::*;

fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    percept_tests::check_args(&args[1..], "cargo run --release -p percept-tests --bin bench-checksum [-- --write BENCHMARKS.md]", &[], &["--write"])?;
    let (v, l) = (15724, 6400);
    eprintln!("host: making a random {l}x{v} f16 decoder ...");
    let bytes = random_decoder(v, &[l], None, 7).to_bytes()?;
    // 8-byte aligned, as a memory map gives it.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: u64 storage viewed as bytes, within the allocation.
    let blob: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), bytes.len()) };
    blob.copy_from_slice(&bytes);
    drop(bytes);
    let blob: &[u8] = blob;
    let data = percept_core::Blob::parse(blob)?.data();
    let reps = 3;
    let t_sum = best(reps, || {
        black_box(checksum::of_data(black_box(data)));
    });
    let t_load = best(reps, || {
        black_box(Decoder::from_bytes(black_box(blob)).unwrap());
    });
    let dec = Decoder::from_bytes(blob)?;
    let x = Rng(8).vec(v, 2.0);
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0f32; l];
    let t_decode = best(reps, || {
        dec.decode(&x, &mut scratch, &mut out).unwrap();
        black_box(&out);
    });

    eprintln!("cortex-m4: building and running the firmware under QEMU ...");
    let fixture = std::env::temp_dir().join(format!("percept-bench-sum-{}", std::process::id()));
    write_firmware_fixture(&fixture)?;
    let image = build_firmware(&fixture)?;
    let text = run_qemu(&image)?;
    let _ = std::fs::remove_dir_all(&fixture);
    let t = |k: &str| ticks(&text, k).with_context(|| format!("firmware printed no {k}:\n{text}"));
    let per_tick = t("calibration_instructions")? as f64 / t("calibration")? as f64;
    let fw_bytes = t("checksum_bytes")? as f64;
    let ipb_sum = t("checksum")? as f64 * per_tick / fw_bytes;
    let ipb_load = t("load_dense")? as f64 * per_tick / fw_bytes;
    let ipm_decode = t("dense_decode")? as f64 * per_tick / t("dense_macs")? as f64;

    let ms = |s: f64| format!("{:.1} ms", s * 1e3);
    let mb = data.len() as f64 / 1e6;
    let report = format!(
        "## Decoder-file checksum, XXH32 of the tensor data ({date})\n\n\
         Machine: {machine}. Command: `cargo run --release -p percept-tests --bin bench-checksum`, run once; best of {reps} each.\n\n\
         | host, dense {v} -> {l} f16 ({mb:.0} MB of tensor data) | time |\n|---|---|\n\
         | XXH32 of the tensor data alone | {sum} ({gbs:.1} GB/s) |\n\
         | `Decoder::from_bytes` (parse, checksum, finiteness of every value) | {load} |\n\
         | one decode, 1 thread (for scale) | {decode} |\n\n\
         Cortex-M4F (QEMU mps2-an386, `-icount shift=0`; the {fwkb:.0} kB 2000 -> 256 fixture): XXH32 {ipb_sum:.2} instructions per byte; \
         the whole load {ipb_load:.2} instructions per byte; a decode {ipm_decode:.2} instructions per multiply-accumulate ({ipb_decode:.2} per weight byte).\n",
        date = today(),
        machine = machine(),
        sum = ms(t_sum),
        gbs = data.len() as f64 / t_sum / 1e9,
        load = ms(t_load),
        decode = ms(t_decode),
        fwkb = fw_bytes / 1e3,
        ipb_decode = ipm_decode / 2.0,
    );
    publish(&report, &args)
}
