//! Adapter and device: picks an adapter (PERCEPT_ADAPTER, WGPU_BACKEND), asks for its real
//! limits, caches compiled pipelines, and records many dispatches into one submission.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::encoder::Profiler;
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
    pub(super) profile: Profiler,
    /// Bytes uploaded since the last flush of pending uploads ([`Gpu::staged`]).
    pub(super) staged: std::sync::atomic::AtomicU64,
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
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        // On a CPU adapter device memory is process memory: the allocator's small blocks
        // (MemoryUsage) keep freed intermediates from pinning large blocks; GPUs keep the
        // default (Performance).
        let memory_hints = if cpu { wgpu::MemoryHints::MemoryUsage } else { wgpu::MemoryHints::Performance };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("percept"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("{}: cannot open the device: {e}", info.name)))?;
        let kind = if cpu { AdapterKind::Cpu } else { AdapterKind::Gpu };
        // The CPU kernels that share operands with subgroupBroadcast assume one workgroup of 8
        // lanes is one subgroup (lavapipe with 256-bit vectors), and read buffers as u64 (half
        // the steps of lavapipe's per-lane load loop); PERCEPT_NO_SUBGROUPS=1 turns them off
        // (to compare, or on an adapter where they misbehave).
        let subgroup8_int64 = subgroups && int64 && info.subgroup_min_size == 8 && info.subgroup_max_size == 8 && std::env::var_os("PERCEPT_NO_SUBGROUPS").is_none();
        tracing::info!(adapter = %info.name, backend = ?info.backend, ?kind, shader_f16, subgroup8_int64, max_binding = limits.max_storage_buffer_binding_size, "GPU");
        let binding_cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).into();
        let profile = std::env::var_os("PERCEPT_PROFILE").map(|_| Mutex::default());
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            kind,
            shader_f16,
            subgroup8_int64,
            binding_cap,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            profile,
            staged: 0.into(),
        })
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
