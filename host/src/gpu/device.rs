//! Adapter and device: picks an adapter (PERCEPT_ADAPTER, WGPU_BACKEND), asks for its real
//! limits, caches compiled pipelines, and records many dispatches into one submission.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};

/// What kind of processor runs the kernels; ops pick kernel variants by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    /// A CPU implementation such as Mesa's lavapipe: no gain from workgroup memory.
    Cpu,
    /// A GPU: workgroup tiling pays.
    Gpu,
}

/// A WGSL kernel, composed of whole files of shaders/ and compiled once per process: shared
/// parts from shaders/common/ first (enable directives, when needed, in the first part, as
/// WGSL wants them before any declaration), then the kernel file. Plain concatenation: no
/// templating; WGSL's module-scope declarations may come in any order.
#[derive(Debug, Clone, Copy)]
pub struct Shader {
    /// The kernel's file name in shaders/, for messages and the cache key.
    pub name: &'static str,
    /// The WGSL text of the parts, in order (`include_str!`), the kernel file last.
    pub parts: &'static [&'static str],
}

impl Shader {
    /// The composed WGSL text.
    pub fn source(&self) -> String {
        self.parts.join("\n")
    }
}

type PipelineKey = (&'static str, &'static str, String);

/// The device and everything shared by the ops.
pub struct Gpu {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend and type.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with: the adapter's own.
    pub limits: wgpu::Limits,
    /// CPU or GPU, for choosing kernel variants.
    pub kind: AdapterKind,
    /// Whether WGSL `f16` (SHADER_F16) is enabled.
    pub shader_f16: bool,
    /// Whether SUBGROUP is enabled with subgroups of exactly 8 lanes, and SHADER_INT64, as the
    /// `*_sg` CPU kernels need.
    pub subgroup8_int64: bool,
    binding_cap: std::sync::atomic::AtomicU64,
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    /// With PERCEPT_PROFILE set: each dispatch runs alone and its wall time is added here,
    /// by `shader:entry` (pipelines are found by address).
    profile: Option<Mutex<Profile>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({} via {:?}, {:?})", self.info.name, self.info.backend, self.kind)
    }
}

impl Gpu {
    /// Opens the adapter chosen by `PERCEPT_ADAPTER` (a part of its name, case-insensitive) or,
    /// without it, the highest-performance one of the backends `WGPU_BACKEND` allows.
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::open())
    }

    async fn open() -> Result<Self> {
        // Vulkan, Metal and DX12 unless WGPU_BACKEND says otherwise (GL probes for a display).
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = instance.enumerate_adapters(backends).await;
        let names: Vec<String> = adapters.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend)).collect();
        let adapter = match std::env::var("PERCEPT_ADAPTER") {
            Ok(want) => adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&want.to_lowercase()))
                .ok_or_else(|| Error::Gpu(format!("PERCEPT_ADAPTER={want} matches none of the adapters: {}", names.join(", "))))?,
            Err(_) => instance
                .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
                .await
                .map_err(|e| {
                    Error::Gpu(format!(
                        "no GPU adapter found ({e}). On Linux without a GPU, install Mesa's CPU driver: \
                         apt-get install mesa-vulkan-drivers"
                    ))
                })?,
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP);
        let int64 = adapter.features().contains(wgpu::Features::SHADER_INT64);
        let mut features = if shader_f16 { wgpu::Features::SHADER_F16 } else { wgpu::Features::empty() };
        if subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        if int64 {
            features |= wgpu::Features::SHADER_INT64;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("percept"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("{}: cannot open the device: {e}", info.name)))?;
        let kind = if info.device_type == wgpu::DeviceType::Cpu { AdapterKind::Cpu } else { AdapterKind::Gpu };
        // The CPU kernels that share operands with subgroupBroadcast assume one workgroup of 8
        // lanes is one subgroup (lavapipe with 256-bit vectors), and read buffers as u64 (half
        // the steps of lavapipe's per-lane load loop); PERCEPT_NO_SUBGROUPS=1 turns them off
        // (to compare, or on an adapter where they misbehave).
        let subgroup8_int64 = subgroups && int64 && info.subgroup_min_size == 8 && info.subgroup_max_size == 8 && std::env::var_os("PERCEPT_NO_SUBGROUPS").is_none();
        tracing::info!(adapter = %info.name, backend = ?info.backend, ?kind, shader_f16, subgroup8_int64, max_binding = limits.max_storage_buffer_binding_size, "GPU");
        let binding_cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).into();
        let profile = std::env::var_os("PERCEPT_PROFILE").map(|_| Mutex::default());
        Ok(Gpu { device, queue, info, limits, kind, shader_f16, subgroup8_int64, binding_cap, modules: Mutex::default(), pipelines: Mutex::default(), profile })
    }

    /// One line naming the adapter, for `-v` and reports.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?}, driver {})", self.info.name, self.info.backend, self.info.device_type, self.info.driver_info)
    }

    /// The largest storage binding ops may use, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.binding_cap.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes ops split tensors as if bindings were at most `bytes` (tests of the splitting
    /// path without gigabytes of data). Cannot raise the adapter's limit.
    pub fn cap_binding(&self, bytes: u64) {
        let hw = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        self.binding_cap.store(bytes.min(hw), std::sync::atomic::Ordering::Relaxed);
    }

    /// The compiled pipeline for `entry` of `shader` with these override constants (cached).
    /// A shader that does not compile is an error naming the file and what is wrong.
    /// `buffers` is the number of storage buffers at group(0): read-only inputs, then one
    /// read-write output; group(1) holds the meta uniform. The layout is explicit, so an entry
    /// point need not use every binding.
    pub fn pipeline(&self, shader: Shader, entry: &'static str, buffers: usize, constants: &[(&str, f64)]) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = (shader.name, entry, format!("{buffers} {constants:?}"));
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let cached = self.modules.lock().expect("module cache").get(shader.name).cloned();
        let module = match cached {
            Some(m) => m,
            None => {
                // naga's loop bounding adds a hidden counter and exit test to every loop, against
                // infinite loops; on lavapipe it made linear_sg 0-18% slower (one A/B, medians;
                // BENCHMARKS.md). Every loop in shaders/ is bounded by a counter against a
                // uniform or constant limit, so it is turned off; buffer bounds checks stay.
                let mut checks = wgpu::ShaderRuntimeChecks::checked();
                checks.force_loop_bounding = false;
                let desc = wgpu::ShaderModuleDescriptor { label: Some(shader.name), source: wgpu::ShaderSource::Wgsl(shader.source().into()) };
                // SAFETY: the only check turned off is loop bounding, whose precondition (no
                // infinite loops) holds for the shaders in shaders/, the only ones compiled here.
                let m = Arc::new(unsafe { self.device.create_shader_module_trusted(desc, checks) });
                self.modules.lock().expect("module cache").insert(shader.name, m.clone());
                m
            }
        };
        let layout = self.layout(buffers);
        let pipeline = Arc::new(self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants, zero_initialize_workgroup_memory: false },
            cache: None,
        }));
        if let Some(e) = pollster::block_on(scope.pop()) {
            self.modules.lock().expect("module cache").remove(shader.name);
            return Err(Error::Gpu(format!("{} ({entry}): {e}", shader.name)));
        }
        self.pipelines.lock().expect("pipeline cache").insert(key, pipeline.clone());
        if let Some(p) = &self.profile {
            p.lock().expect("profile").names.insert(Arc::as_ptr(&pipeline) as usize, format!("{}:{entry}", shader.name));
        }
        Ok(pipeline)
    }

    fn layout(&self, buffers: usize) -> wgpu::PipelineLayout {
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        };
        let entries: Vec<_> = (0..buffers).map(|i| storage(i as u32, i + 1 < buffers)).collect();
        let g0 = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("buffers"), entries: &entries });
        let g1 = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("meta"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
                count: None,
            }],
        });
        self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: None, bind_group_layouts: &[Some(&g0), Some(&g1)], immediate_size: 0 })
    }

    /// A new command recorder.
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder { gpu: self, inner: None, pending: 0, pending_bytes: 0 }
    }

    /// With PERCEPT_PROFILE set, the time spent per kernel since the start (a Markdown table,
    /// largest first); None otherwise.
    pub fn profile_report(&self) -> Option<String> {
        let p = self.profile.as_ref()?.lock().expect("profile");
        let total: f64 = p.times.values().map(|t| t.0).sum();
        let mut rows: Vec<_> = p.times.iter().collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let mut out = String::from("| kernel | dispatches | seconds | share |\n|---|---|---|---|\n");
        for (name, (t, n)) in rows {
            out += &format!("| {name} | {n} | {t:.2} | {:.1}% |\n", 100.0 * t / total.max(1e-12));
        }
        Some(out)
    }

    /// Waits until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        Ok(())
    }
}

/// Per-kernel wall time (PERCEPT_PROFILE).
#[derive(Debug, Default)]
struct Profile {
    names: HashMap<usize, String>,
    times: HashMap<String, (f64, usize)>,
}

/// Records dispatches; submits them together (and after every few hundred dispatches or 512 MiB
/// of outputs, to bound memory).
pub struct Encoder<'g> {
    gpu: &'g Gpu,
    inner: Option<wgpu::CommandEncoder>,
    pending: usize,
    pending_bytes: u64,
}

/// Dispatches recorded before an automatic submit.
const MAX_PENDING: usize = 512;
/// Bytes written by the recorded dispatches before an automatic submit: intermediates stay
/// alive until their commands are submitted and done, so this bounds the memory a long
/// forward pass holds (SD's VAE decoder at 512x512 writes 128-256 MiB per dispatch).
const MAX_PENDING_BYTES: u64 = 512 << 20;

impl<'g> Encoder<'g> {
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
            self.submit();
        }
    }

    /// Records a buffer copy.
    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, size: u64) {
        self.raw().copy_buffer_to_buffer(src, src_offset, dst, dst_offset, size);
    }

    /// Submits what was recorded.
    pub fn submit(&mut self) {
        if let Some(enc) = self.inner.take() {
            self.gpu.queue.submit([enc.finish()]);
        }
        self.pending = 0;
        self.pending_bytes = 0;
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        self.submit();
    }
}
