//! Memory bounds of the GPU runtime, in a process of their own (the host's test binary runs
//! its tests in parallel threads, whose memory would mix with these). On a CPU adapter
//! (lavapipe) GPU buffers are process memory, so the process's resident memory shows them.
//!
//! - Loading many tensors from a safetensors file: the upload staging is flushed every
//!   `MAX_STAGED_BYTES` and the file's pages are evicted once read, so the peak stays near the
//!   tensors' own size (without either, staging and mapped pages each add about as much).
//! - A chain of ops writing 8 x `MAX_PENDING_BYTES`: automatic submits let the dropped
//!   intermediates go, and each waits for the previous one, so at most two batches of them are
//!   alive (without automatic submits all 2 GiB would be). On lavapipe with Mesa 22.3 a submit
//!   runs in the submitting thread (measured: the same peak without the wait, also with
//!   MESA_VK_ENABLE_SUBMIT_THREAD=1), so there the wait changes nothing; where submits run
//!   asynchronously, recording could run ahead of the device, and this bound is what would
//!   catch it (not observed on this machine, which has no such adapter).

use percept::gpu::{DType, Gpu, Tensor, MAX_PENDING_BYTES};
use percept::nn::{Loader, Weights};
use percept::ops::elementwise::{unary, Unary};
use percept_tests::{memory, reset_peak};
use safetensors::tensor::TensorView;

const MIB: u64 = 1 << 20;

/// Peak and resident memory since the last reset, above `base`, in MiB.
fn above(base: u64) -> (f64, f64) {
    let (rss, peak) = memory().expect("/proc/self/status");
    (peak.saturating_sub(base) as f64 / MIB as f64, rss.saturating_sub(base) as f64 / MIB as f64)
}

#[test]
fn loading_and_long_chains_keep_memory_bounded() {
    if memory().is_none() || !reset_peak() {
        eprintln!("skipped: no /proc/self/status or clear_refs (not Linux)");
        return;
    }
    let gpu = Gpu::new().expect("a GPU adapter (lavapipe)");
    if gpu.kind != percept::gpu::AdapterKind::Cpu {
        eprintln!("skipped: {} keeps buffers outside the process", gpu.describe());
        return;
    }

    // 48 f16 tensors of 8 MiB (384 MiB), all views of one host buffer.
    let dir = std::env::temp_dir().join(format!("percept-memory-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("many.safetensors");
    let (count, side) = (48usize, 2048usize);
    let payload = count as u64 * (2 * side * side) as u64;
    {
        let bytes: Vec<u8> = (0..side * side).flat_map(|i| half::f16::from_f32((i % 1000) as f32 / 1000.0).to_le_bytes()).collect();
        let views: Vec<(String, TensorView<'_>)> = (0..count).map(|i| (format!("t{i}"), TensorView::new(safetensors::Dtype::F16, vec![side, side], &bytes).expect("view"))).collect();
        safetensors::serialize_to_file(views, None, &file).expect("writing the test weights");
    }
    let base = memory().expect("memory").0;
    reset_peak();
    let w = Weights::open(&[&file]).expect("opening the test weights");
    let loader = Loader::new(&gpu, &w, DType::F16);
    let tensors: Vec<Tensor> = (0..count).map(|i| loader.get(&[side, side], &format!("t{i}")).expect("tensor")).collect();
    gpu.flush().expect("flush");
    let (peak, resident) = above(base);
    let payload_mib = payload as f64 / MIB as f64;
    eprintln!("load: {payload_mib:.0} MiB of tensors: peak +{peak:.0} MiB, resident after +{resident:.0} MiB");
    assert!(peak < 1.5 * payload_mib, "loading {payload_mib:.0} MiB of tensors peaked at +{peak:.0} MiB (bound {:.0}): upload staging or mapped pages accumulate", 1.5 * payload_mib);
    assert!(resident < 1.25 * payload_mib, "after loading {payload_mib:.0} MiB of tensors +{resident:.0} MiB stay resident (bound {:.0}): the file's pages were not evicted", 1.25 * payload_mib);
    // The data arrived intact (the last tensor, first values).
    let back = tensors[count - 1].to_vec(&gpu).expect("read back");
    assert_eq!(back[..3], [0.0, half::f16::from_f32(0.001).to_f32(), half::f16::from_f32(0.002).to_f32()]);
    drop((tensors, loader, w));
    let _ = std::fs::remove_dir_all(&dir);

    // A chain of 16-MiB outputs writing 8 x MAX_PENDING_BYTES in all.
    let n = 4 << 20;
    let x0 = Tensor::from_f32(&gpu, &[n], &vec![0.5; n]).expect("input");
    let x0_copy = x0.to_vec(&gpu).expect("warm-up read");
    gpu.flush().expect("flush");
    let base = memory().expect("memory").0;
    reset_peak();
    let steps = (8 * MAX_PENDING_BYTES / (4 * n as u64)) as usize;
    let mut enc = gpu.encoder();
    let mut x = x0;
    for _ in 0..steps {
        x = unary(&mut enc, &x, Unary::Scale(1.0)).expect("scale");
    }
    drop(enc);
    let y = x.to_vec(&gpu).expect("read back");
    let (peak, _) = above(base);
    // Two batches (the one running and the one being recorded) and the op in hand.
    let bound = (2 * MAX_PENDING_BYTES + 64 * MIB) as f64 / MIB as f64;
    eprintln!("chain: {steps} ops, {:.0} MiB of outputs: peak +{peak:.0} MiB (bound {bound:.0})", steps as f64 * 16.0);
    assert_eq!(y, x0_copy, "a chain of x * 1 changed the values");
    assert!(peak < bound, "a chain of {steps} ops writing {:.0} MiB peaked at +{peak:.0} MiB (bound {bound:.0} = 2 x MAX_PENDING_BYTES + 64 MiB): automatic submits do not bound the intermediates alive", steps as f64 * 16.0);
}
