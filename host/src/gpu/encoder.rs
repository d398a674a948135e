//! The command recorder: dispatches are recorded into one command encoder and submitted
//! together, with automatic submits that bound the memory a long forward pass holds.
//!
//! An intermediate tensor's buffer lives until the Rust side has dropped it and the last
//! submission that uses it has finished. Recording is much faster than lavapipe's execution,
//! so without a bound a whole forward pass would be recorded and submitted in chunks, every
//! chunk's intermediates alive at once. The encoder submits after a byte count of outputs
//! and, before each such submit, waits for the previous one: at most two chunks (the one
//! executing and the one being recorded) hold intermediates.

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use super::Gpu;

/// Per-kernel wall time (PERCEPT_PROFILE).
#[derive(Debug, Default)]
pub(super) struct Profile {
    pub(super) names: HashMap<usize, String>,
    pub(super) times: HashMap<String, (f64, usize)>,
}

/// Records dispatches; submits them together, and automatically after a few hundred
/// dispatches or [`MAX_PENDING_BYTES`] of outputs, waiting for the previous automatic submit
/// first (so at most two batches of intermediates are alive).
pub struct Encoder<'g> {
    gpu: &'g Gpu,
    inner: Option<wgpu::CommandEncoder>,
    pending: usize,
    pending_bytes: u64,
    /// The previous automatic submit, waited for before the next.
    previous: Option<wgpu::SubmissionIndex>,
}

/// Dispatches recorded before an automatic submit.
const MAX_PENDING: usize = 512;
/// Bytes written by the recorded dispatches before an automatic submit. 128 MiB: a U-Net
/// step peaks 0.22 GB lower than with 256 MiB at no measurable cost in time (BENCHMARKS.md,
/// "Peak memory" and "the auto-submit threshold"); SD's VAE decoder at 512x512 writes
/// 128-256 MiB per dispatch, so it submits about every dispatch there.
pub const MAX_PENDING_BYTES: u64 = 128 << 20;

impl<'g> Encoder<'g> {
    pub(super) fn new(gpu: &'g Gpu) -> Self {
        Encoder { gpu, inner: None, pending: 0, pending_bytes: 0, previous: None }
    }

    /// The device this records for.
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    fn raw(&mut self) -> &mut wgpu::CommandEncoder {
        self.inner.get_or_insert_with(|| self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("percept") }))
    }

    /// Records one dispatch: `buffers` bound in order at group(0) (inputs first, output last),
    /// `meta` as the uniform at group(1) binding 0 (skipped when empty).
    pub fn dispatch(&mut self, pipeline: &wgpu::ComputePipeline, buffers: &[wgpu::BufferBinding<'_>], meta: &[u8], groups: [u32; 3]) {
        let device = &self.gpu.device;
        let started = self.gpu.profile.as_ref().map(|_| {
            self.submit();
            // An empty submit flushes pending queue writes (uploads), which the dispatch's own
            // submit would otherwise run inside its timing.
            self.gpu.queue.submit([]);
            let _ = self.gpu.wait();
            std::time::Instant::now()
        });
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: wgpu::BindingResource::Buffer(b.clone()) })
            .collect();
        let group0 = device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &pipeline.get_bind_group_layout(0), entries: &entries });
        let uniform;
        let group1 = if meta.is_empty() {
            None
        } else {
            uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("meta"), contents: meta, usage: wgpu::BufferUsages::UNIFORM });
            Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(1),
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }],
            }))
        };
        {
            let mut pass = self.raw().begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &group0, &[]);
            if let Some(g) = &group1 {
                pass.set_bind_group(1, g, &[]);
            }
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.pending += 1;
        self.pending_bytes += buffers.last().and_then(|b| b.size).map_or(0, |s| s.get());
        if let (Some(t0), Some(p)) = (started, &self.gpu.profile) {
            self.submit();
            let _ = self.gpu.wait();
            let dt = t0.elapsed().as_secs_f64();
            let mut p = p.lock().expect("profile");
            let name = p.names.get(&(std::ptr::from_ref(pipeline) as usize)).cloned().unwrap_or_else(|| "?".into());
            let e = p.times.entry(name).or_insert((0.0, 0));
            e.0 += dt;
            e.1 += 1;
        }
        if self.pending >= MAX_PENDING || self.pending_bytes >= MAX_PENDING_BYTES {
            self.auto_submit();
        }
    }

    /// Records a buffer copy.
    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, size: u64) {
        self.raw().copy_buffer_to_buffer(src, src_offset, dst, dst_offset, size);
    }

    /// Waits for the previous automatic submit, then submits what was recorded: the buffers
    /// the finished batch alone used (and the Rust side dropped) are freed meanwhile.
    fn auto_submit(&mut self) {
        if let Some(previous) = self.previous.take() {
            let wait = wgpu::PollType::Wait { submission_index: Some(previous), timeout: None };
            if let Err(e) = self.gpu.device.poll(wait) {
                tracing::warn!("waiting for an automatic submit: {e}");
            }
        }
        self.previous = self.submit_index();
    }

    fn submit_index(&mut self) -> Option<wgpu::SubmissionIndex> {
        self.pending = 0;
        self.pending_bytes = 0;
        self.inner.take().map(|enc| self.gpu.queue.submit([enc.finish()]))
    }

    /// Submits what was recorded.
    pub fn submit(&mut self) {
        self.submit_index();
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        self.submit();
    }
}

/// Memory given to pending uploads before [`Gpu::staged`] flushes them.
pub const MAX_STAGED_BYTES: u64 = 64 << 20;

impl Gpu {
    /// A new command recorder.
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder::new(self)
    }

    /// Counts `bytes` of a new upload. An upload's staging copy lives until the next queue
    /// submit has run; after [`MAX_STAGED_BYTES`] of them this submits and waits, so loading
    /// a model never holds all its weights twice.
    pub fn staged(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.staged.fetch_add(bytes, Relaxed) + bytes >= MAX_STAGED_BYTES {
            self.staged.store(0, Relaxed);
            if let Err(e) = self.flush() {
                tracing::warn!("flushing uploads: {e}");
            }
        }
    }

    /// Submits pending uploads and waits until they are done (their staging memory is then
    /// freed); work submitted before them is waited for too.
    pub fn flush(&self) -> crate::error::Result<()> {
        let index = self.queue.submit([]);
        let wait = wgpu::PollType::Wait { submission_index: Some(index), timeout: None };
        self.device.poll(wait).map_err(|e| crate::error::Error::Gpu(format!("flushing uploads: {e}")))?;
        Ok(())
    }
}

/// A mutex-held profile, as `Gpu` keeps it.
pub(super) type Profiler = Option<Mutex<Profile>>;
