//! Tensors in GPU buffers: a shape, a dtype, and the buffer range that holds them.
//! f16 tensors are packed two halves per u32 (read with `unpack2x16float`, which needs no
//! SHADER_F16); activations are f32.

use std::sync::Arc;

use super::Gpu;
use crate::error::{Error, Result};

/// Element type of a tensor in GPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 4 bytes per element.
    F32,
    /// 2 bytes per element, packed in pairs into u32 words.
    F16,
}

impl DType {
    /// Bytes of `n` elements, padded to whole u32 words.
    pub fn bytes(self, n: usize) -> u64 {
        match self {
            DType::F32 => 4 * n as u64,
            DType::F16 => 4 * n.div_ceil(2) as u64,
        }
    }
}

/// A tensor in a GPU buffer.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// The buffer (shared: views of one buffer are cheap).
    pub buffer: Arc<wgpu::Buffer>,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Byte offset of the first element in the buffer.
    pub offset: u64,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

impl Tensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes the tensor occupies.
    pub fn bytes(&self) -> u64 {
        self.dtype.bytes(self.numel())
    }

    /// The binding of the whole tensor, rounded up to 16 bytes (kernels read vec4s; buffers
    /// are allocated with that padding).
    pub fn binding(&self) -> wgpu::BufferBinding<'_> {
        let size = padded(self.bytes()).min(self.buffer.size() - self.offset);
        wgpu::BufferBinding { buffer: &self.buffer, offset: self.offset, size: wgpu::BufferSize::new(size) }
    }

    /// A view of the same data with another shape of the same size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != self.numel() {
            return Err(Error::Shape(format!("cannot view {:?} as {shape:?}", self.shape)));
        }
        Ok(Tensor { shape: shape.to_vec(), ..self.clone() })
    }

    /// A new f32 tensor from host data.
    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        check_len(shape, data.len())?;
        Ok(Self::init(gpu, shape, DType::F32, bytemuck::cast_slice(data)))
    }

    /// A new f16 tensor from f32 host data (rounded to nearest).
    pub fn from_f32_as_f16(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        check_len(shape, data.len())?;
        let halves: Vec<u16> = data.iter().map(|v| half::f16::from_f32(*v).to_bits()).collect();
        Ok(Self::init(gpu, shape, DType::F16, bytemuck::cast_slice(&halves)))
    }

    /// Uploads `bytes` (zero-padded to whole vec4s) into a new buffer. The staging copy wgpu
    /// makes lives until the next submit: [`Gpu::staged`] submits after every few tens of MiB.
    fn init(gpu: &Gpu, shape: &[usize], dtype: DType, bytes: &[u8]) -> Tensor {
        let size = padded(bytes.len() as u64);
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage: STORAGE, mapped_at_creation: true });
        {
            let mut view = buffer.get_mapped_range_mut(..).expect("a buffer mapped at creation");
            view.slice(..bytes.len()).copy_from_slice(bytes);
            view.slice(bytes.len()..).copy_from_slice(&[0; 16][..size as usize - bytes.len()]);
        }
        buffer.unmap();
        gpu.staged(size);
        Tensor { buffer: Arc::new(buffer), shape: shape.to_vec(), dtype, offset: 0 }
    }

    /// A new, uninitialised f32 tensor (for outputs).
    pub fn empty(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let bytes = DType::F32.bytes(shape.iter().product());
        if bytes > gpu.limits.max_buffer_size {
            return Err(Error::Gpu(format!("tensor {shape:?} needs {bytes} bytes, more than the adapter's largest buffer ({})", gpu.limits.max_buffer_size)));
        }
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: padded(bytes), usage: STORAGE, mapped_at_creation: false });
        Ok(Tensor { buffer: Arc::new(buffer), shape: shape.to_vec(), dtype: DType::F32, offset: 0 })
    }

    /// Copies the tensor back to the host as f32 (waits for the GPU).
    pub fn to_vec(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let size = padded(self.bytes()).min(self.buffer.size() - self.offset);
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = gpu.encoder();
        enc.copy(&self.buffer, self.offset, &staging, 0, size);
        enc.submit();
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv().map_err(|e| Error::Gpu(e.to_string()))?.map_err(|e| Error::Gpu(format!("reading back a tensor: {e}")))?;
        let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu(format!("reading back a tensor: {e}")))?;
        let n = self.numel();
        let out = match self.dtype {
            DType::F32 => bytemuck::cast_slice::<u8, f32>(&view)[..n].to_vec(),
            DType::F16 => bytemuck::cast_slice::<u8, u16>(&view)[..n].iter().map(|h| half::f16::from_bits(*h).to_f32()).collect(),
        };
        Ok(out)
    }
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let n: usize = shape.iter().product();
    if n == len {
        Ok(())
    } else {
        Err(Error::Shape(format!("shape {shape:?} holds {n} values, {len} given")))
    }
}

/// Bytes rounded up to whole 16-byte vec4s (at least one).
fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(16).max(1) * 16
}
