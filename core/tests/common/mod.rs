//! Test helpers: a minimal safetensors writer and seeded random decoders.
#![allow(dead_code)]

use half::f16;

/// Bytes with 8-byte alignment, as a memory map or `Aligned` gives them.
pub struct Buf {
    words: Vec<u64>,
    len: usize,
}

impl Buf {
    pub fn new(bytes: &[u8]) -> Buf {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (i, b) in bytes.iter().enumerate() {
            words[i / 8] |= (*b as u64) << (8 * (i % 8));
        }
        Buf { words, len: bytes.len() }
    }
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.words.len() * 8) };
        &all[..self.len]
    }
}

pub struct T {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

pub fn f32s(name: &str, shape: &[u64], v: &[f32]) -> T {
    T { name: name.into(), dtype: "F32", shape: shape.to_vec(), data: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
}

pub fn f16s(name: &str, shape: &[u64], v: &[f32]) -> T {
    T { name: name.into(), dtype: "F16", shape: shape.to_vec(), data: v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect() }
}

/// Writes a safetensors blob with the tensors in the given order and the header padded to 8.
pub fn write(tensors: &[T], meta: &[(&str, &str)]) -> Vec<u8> {
    let mut entries = Vec::new();
    if !meta.is_empty() {
        let m: Vec<String> = meta.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
        entries.push(format!("\"__metadata__\":{{{}}}", m.join(",")));
    }
    let mut off = 0usize;
    for t in tensors {
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        entries.push(format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            t.name,
            t.dtype,
            shape.join(","),
            off,
            off + t.data.len()
        ));
        off += t.data.len();
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    while (8 + header.len()) % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// A small deterministic generator (SplitMix64) so tests need no extra crates.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// uniform in [-1, 1)
    pub fn f(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

pub struct Spec {
    pub v: usize,
    pub l: usize,
    pub rank: Option<usize>,
    pub seed: u64,
}

/// The parameters of a random decoder, in f32 (weights already rounded to f16).
pub struct Params {
    pub w: Vec<f32>,
    pub u: Vec<f32>,
    pub vt: Vec<f32>,
    pub bias: Vec<f32>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

fn round16(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| f16::from_f32(x).to_f32()).collect()
}

pub fn params(s: &Spec) -> Params {
    let mut r = Rng(s.seed);
    let (w, u, vt) = match s.rank {
        None => (round16(r.vec(s.l * s.v, 0.05)), vec![], vec![]),
        Some(k) => (vec![], round16(r.vec(s.l * k, 0.3)), round16(r.vec(k * s.v, 0.05))),
    };
    let bias = r.vec(s.l, 1.0);
    let mean = r.vec(s.v, 2.0);
    let std: Vec<f32> = r.vec(s.v, 0.5).into_iter().map(|x| x.abs() + 0.5).collect();
    Params { w, u, vt, bias, mean, std }
}

/// The tensors of a decoder of `s` with parameters `p`, in file order.
fn tensors(s: &Spec, p: &Params) -> Vec<T> {
    let (v, l) = (s.v as u64, s.l as u64);
    let mut ts = vec![f32s("bias", &[l], &p.bias), f32s("voxel_mean", &[v], &p.mean), f32s("voxel_std", &[v], &p.std)];
    match s.rank {
        None => ts.push(f16s("weight", &[l, v], &p.w)),
        Some(k) => {
            ts.push(f16s("weight_u", &[l, k as u64], &p.u));
            ts.push(f16s("weight_vt", &[k as u64, v], &p.vt));
        }
    }
    ts
}

pub fn blob(s: &Spec, p: &Params) -> Vec<u8> {
    let shape = format!("{}", s.l);
    write(&tensors(s, p), &[("format", "percept-decoder"), ("region", "early_visual"), ("target", "z"), ("target_shape", &shape)])
}

/// The tensors' data section, as `write` lays it out.
pub fn data_section(tensors: &[T]) -> Vec<u8> {
    tensors.iter().flat_map(|t| t.data.iter().copied()).collect()
}

/// Writes a format-version-2 blob: `meta` plus `format_version = 2` and the checksum of the data.
pub fn write_v2(tensors: &[T], meta: &[(&str, &str)]) -> Vec<u8> {
    let sum = format!("xxh32:{:08x}", percept_core::checksum::of_data(&data_section(tensors)));
    let mut m = meta.to_vec();
    m.push(("format_version", "2"));
    m.push(("checksum", &sum));
    write(tensors, &m)
}

/// `blob` as the host writes it today: format version 2 with a checksum.
pub fn blob_v2(s: &Spec, p: &Params) -> Vec<u8> {
    let shape = format!("{}", s.l);
    write_v2(&tensors(s, p), &[("format", "percept-decoder"), ("region", "early_visual"), ("target", "z"), ("target_shape", &shape)])
}
