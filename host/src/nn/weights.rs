//! Memory-mapped safetensors files with prefixed, shape-checked host access:
//! `w.pp("decoder").pp(3).get(&[64, 64, 3, 3], "conv.0.weight")`. A missing or misshapen
//! tensor fails with its full key, the expected and the actual shape, and the file. Models
//! load through [`crate::nn::Loader`], which adds the GPU and the dtype.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
#[cfg(unix)]
use memmap2::UncheckedAdvice;
use safetensors::{Dtype, SafeTensors};

use crate::error::{io, Error, Result};

/// Where a tensor lives: its file, dtype, shape and byte range in the map.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

/// Memory-mapped safetensors files, indexed once when opened (first file wins on a name).
#[derive(Debug, Clone)]
pub struct Weights {
    files: Arc<Vec<(PathBuf, Mmap)>>,
    index: Arc<HashMap<String, Entry>>,
    prefix: String,
}

impl Weights {
    /// Maps the files, checks each is valid safetensors and indexes its tensors.
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<Self> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for p in paths {
            let p = p.as_ref();
            if p.is_dir() {
                return Err(Error::Invalid(format!("{}: is a directory, not a safetensors file", p.display())));
            }
            let file = std::fs::File::open(p).map_err(io(p))?;
            // SAFETY: read-only map of a weights file that percept never writes.
            let map = unsafe { Mmap::map(&file) }.map_err(io(p))?;
            let st = SafeTensors::deserialize(&map).map_err(crate::error::format(p, "not a safetensors file"))?;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - map.as_ptr() as usize;
                let entry = Entry { file: files.len(), dtype: view.dtype(), shape: view.shape().to_vec(), range: start..start + view.data().len() };
                index.entry(name).or_insert(entry);
            }
            files.push((p.to_path_buf(), map));
        }
        Ok(Weights { files: Arc::new(files), index: Arc::new(index), prefix: String::new() })
    }

    /// The same tensors under other names: `rename` maps each stored name to the name models
    /// ask for, or to None to leave the tensor out (e.g. a single-file checkpoint's
    /// `model.diffusion_model.input_blocks.0.0.weight` -> `conv_in.weight`).
    pub fn renamed(&self, rename: impl Fn(&str) -> Option<String>) -> Weights {
        let index = self.index.iter().filter_map(|(k, e)| rename(k).map(|n| (n, e.clone()))).collect();
        Weights { files: self.files.clone(), index: Arc::new(index), prefix: self.prefix.clone() }
    }

    /// Every stored name (unordered).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The same files under `prefix.` (appended to the current prefix).
    pub fn pp(&self, name: impl std::fmt::Display) -> Weights {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        Weights { files: self.files.clone(), index: self.index.clone(), prefix }
    }

    /// The current prefix (empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full key of `name` under the current prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(&self.key(name))
    }

    /// The stored tensor `name`: its dtype, shape and bytes. When `shapes` is
    /// not empty the stored shape must be one of them; the error names the key, the shapes
    /// and the file.
    pub(crate) fn raw(&self, name: &str, shapes: &[&[usize]]) -> Result<Raw<'_>> {
        let key = self.key(name);
        let Some(e) = self.index.get(&key) else {
            let files: Vec<String> = self.files.iter().map(|(p, _)| p.display().to_string()).collect();
            return Err(Error::Invalid(format!("tensor `{key}` not found in {}", files.join(", "))));
        };
        let (path, map) = &self.files[e.file];
        if !shapes.is_empty() && !shapes.contains(&e.shape.as_slice()) {
            let want: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
            return Err(Error::Shape(format!("tensor `{key}` has shape {:?}, expected {} (in {})", e.shape, want.join(" or "), path.display())));
        }
        if !matches!(e.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(Error::Invalid(format!("{}: tensor `{key}` has dtype {:?}; f32, f16 or bf16 expected", path.display(), e.dtype)));
        }
        Ok(Raw { dtype: e.dtype, shape: &e.shape, bytes: &map[e.range.clone()], path, key })
    }

    /// Drops the resident pages of tensor `name` from this process (madvise DONTNEED); a
    /// later read maps them in again from the file. The loader calls it once a tensor is on
    /// the GPU, so a loaded model does not also hold its file in memory. Unknown names are
    /// ignored, as is a refusal of the advice (it only saves memory).
    pub fn evict(&self, name: &str) {
        let Some(e) = self.index.get(&self.key(name)) else { return };
        let (path, map) = &self.files[e.file];
        // SAFETY: DONTNEED on a read-only file mapping loses nothing: the pages are read
        // again from the file on the next access (as they were on the first).
        #[cfg(unix)]
        if let Err(err) = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, e.range.start, e.range.len()) } {
            tracing::debug!("{}: evicting `{}`: {err}", path.display(), self.key(name));
        }
        #[cfg(not(unix))]
        let _ = (path, map);
    }

    /// The tensor as f32 (from f32, f16 or bf16), checked against `shape`.
    pub fn get(&self, shape: &[usize], name: &str) -> Result<Vec<f32>> {
        self.raw(name, &[shape])?.to_f32()
    }

    /// The tensor as f32 with whatever shape it has.
    pub fn get_any(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let r = self.raw(name, &[])?;
        Ok((r.to_f32()?, r.shape.to_vec()))
    }
}

/// A stored tensor, borrowed from the map.
#[derive(Debug)]
pub(crate) struct Raw<'a> {
    /// Its stored dtype (f32, f16 or bf16).
    pub dtype: Dtype,
    /// Its stored shape.
    pub shape: &'a [usize],
    /// Its little-endian bytes.
    pub bytes: &'a [u8],
    /// The file it is stored in.
    pub path: &'a Path,
    /// Its full key.
    pub key: String,
}

impl Raw<'_> {
    /// The values as f32 (exact from f16 and bf16); a NaN or infinite value is an error
    /// naming the file, the key and the index (the GPU kernels would mask it).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let b = self.bytes;
        let v: Vec<f32> = match self.dtype {
            Dtype::F16 => b.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => b.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            _ => b.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        };
        match v.iter().position(|x| !x.is_finite()) {
            Some(i) => Err(self.not_finite(i, v[i])),
            None => Ok(v),
        }
    }

    /// Fails naming the first NaN or infinite value of an f16 tensor (checked on the bits:
    /// exponent all ones), without converting it.
    pub fn check_f16(&self) -> Result<()> {
        match self.bytes.chunks_exact(2).position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00) {
            Some(i) => Err(self.not_finite(i, half::f16::from_le_bytes([self.bytes[2 * i], self.bytes[2 * i + 1]]).to_f32())),
            None => Ok(()),
        }
    }

    fn not_finite(&self, i: usize, x: f32) -> Error {
        Error::Invalid(format!("{}: tensor `{}` has a value that is not finite ({x}) at flat index {i}", self.path.display(), self.key))
    }
}
