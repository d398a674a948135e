//! Decoder files: writing the safetensors layout that percept-core reads (core/README.md).
//!
//! f32 tensors come first so that every tensor is aligned to its element size once the blob
//! itself is 8-byte aligned (a memory map, or `percept_core::Aligned` in firmware).

use std::fs;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;
use percept_core::{checksum, Decoder, Target, FORMAT, FORMAT_VERSION, MIN_STD};
use serde_json::{json, Map, Value};

use super::output::write_atomic;
use crate::error::{io, Error, Result};

/// The weights of a decoder, in f32 before rounding to f16.
#[derive(Debug, Clone)]
pub enum DecoderWeights {
    /// `w (L, V)`, row-major.
    Dense(Vec<f32>),
    /// `u (L, r)` and `vt (r, V)`, row-major, with `W ~= u . vt`.
    LowRank {
        /// `(L, r)`
        u: Vec<f32>,
        /// `(r, V)`
        vt: Vec<f32>,
        /// r
        rank: usize,
    },
}

/// Everything a decoder file holds.
#[derive(Debug, Clone)]
pub struct DecoderFile {
    /// Region of interest, e.g. `early_visual`.
    pub region: String,
    /// What is predicted.
    pub target: Target,
    /// Shape of the latent, e.g. `[4, 40, 40]`.
    pub target_shape: Vec<usize>,
    /// V
    pub voxels: usize,
    /// The weights.
    pub weights: DecoderWeights,
    /// `(L,)`
    pub bias: Vec<f32>,
    /// `(V,)` training mean of each voxel.
    pub voxel_mean: Vec<f32>,
    /// `(V,)` training standard deviation of each voxel (> 0).
    pub voxel_std: Vec<f32>,
    /// Fitting settings, stored as metadata `fit.<key>`.
    pub settings: Vec<(String, String)>,
}

impl DecoderFile {
    /// L, the number of outputs.
    pub fn outputs(&self) -> usize {
        self.target_shape.iter().product()
    }

    /// Refuses what percept-core would refuse at load time, naming the tensor or field.
    fn check(&self) -> Result<()> {
        let (v, l) = (self.voxels, self.outputs());
        let bad = |msg: String| Err(Error::Invalid(msg));
        if self.target_shape.is_empty() || self.target_shape.len() > 4 || self.target_shape.contains(&0) || self.target_shape.iter().any(|&d| u32::try_from(d).is_err()) {
            return bad(format!("decoder target_shape {:?} must have 1 to 4 dimensions, each from 1 to 2^32 - 1", self.target_shape));
        }
        if v == 0 {
            return bad("decoder has no voxels (`voxel_mean` would be empty)".into());
        }
        let len = |name: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(Error::Invalid(format!("decoder tensor `{name}` has {got} values, expected {want}")))
            }
        };
        len("bias", self.bias.len(), l)?;
        len("voxel_mean", self.voxel_mean.len(), v)?;
        len("voxel_std", self.voxel_std.len(), v)?;
        match &self.weights {
            DecoderWeights::Dense(w) => len("weight", w.len(), l * v)?,
            DecoderWeights::LowRank { u, vt, rank } => {
                if *rank == 0 || *rank > l.min(v) {
                    return bad(format!("low-rank decoder (`weight_u`, `weight_vt`) has rank {rank}; it must be 1 to min(outputs {l}, voxels {v})"));
                }
                len("weight_u", u.len(), l * rank)?;
                len("weight_vt", vt.len(), rank * v)?;
            }
        }
        for (name, xs) in [("bias", &self.bias), ("voxel_mean", &self.voxel_mean)] {
            if let Some(i) = xs.iter().position(|x| !x.is_finite()) {
                return bad(format!("decoder tensor `{name}` has the non-finite value {} at element {i}", xs[i]));
            }
        }
        if let Some(i) = self.voxel_std.iter().position(|s| !(s.is_finite() && *s >= MIN_STD)) {
            return bad(format!("voxel {i} has standard deviation {:e} in `voxel_std` (must be finite and at least {MIN_STD:e})", self.voxel_std[i]));
        }
        Ok(())
    }

    /// The safetensors bytes of the file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check()?;
        let (v, l) = (self.voxels, self.outputs());
        let f32_bytes = |x: &[f32]| x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        let f16_bytes = |name: &str, x: &[f32], cols: usize| -> Result<Vec<u8>> {
            let mut out = Vec::with_capacity(x.len() * 2);
            for (i, &v) in x.iter().enumerate() {
                let h = f16::from_f32(v);
                if !h.is_finite() {
                    return Err(Error::Invalid(format!(
                        "decoder tensor `{name}` value {v} at ({}, {}) does not fit in f16",
                        i / cols.max(1),
                        i % cols.max(1)
                    )));
                }
                out.extend_from_slice(&h.to_le_bytes());
            }
            Ok(out)
        };
        let mut tensors: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = vec![
            ("bias", "F32", vec![l], f32_bytes(&self.bias)),
            ("voxel_mean", "F32", vec![v], f32_bytes(&self.voxel_mean)),
            ("voxel_std", "F32", vec![v], f32_bytes(&self.voxel_std)),
        ];
        let kind = match &self.weights {
            DecoderWeights::Dense(w) => {
                tensors.push(("weight", "F16", vec![l, v], f16_bytes("weight", w, v)?));
                "dense".to_string()
            }
            DecoderWeights::LowRank { u, vt, rank } => {
                tensors.push(("weight_u", "F16", vec![l, *rank], f16_bytes("weight_u", u, *rank)?));
                tensors.push(("weight_vt", "F16", vec![*rank, v], f16_bytes("weight_vt", vt, v)?));
                format!("low_rank:{rank}")
            }
        };
        // The data section (tensors in file order) and its checksum, then the header.
        let mut data = Vec::with_capacity(tensors.iter().map(|t| t.3.len()).sum());
        let mut entries = Vec::with_capacity(tensors.len());
        for (name, dtype, shape, bytes) in tensors {
            entries.push((name, json!({"dtype": dtype, "shape": shape, "data_offsets": [data.len(), data.len() + bytes.len()]})));
            data.extend_from_slice(&bytes);
        }
        let sum = checksum::of_data(&data);
        let shape: Vec<String> = self.target_shape.iter().map(|d| d.to_string()).collect();
        let mut meta = Map::new();
        meta.insert("format".into(), json!(FORMAT));
        meta.insert("format_version".into(), json!(FORMAT_VERSION));
        meta.insert("checksum".into(), json!(format!("{}{sum:08x}", checksum::PREFIX)));
        meta.insert("region".into(), json!(self.region));
        meta.insert("target".into(), json!(match self.target { Target::Z => "z", Target::C => "c" }));
        meta.insert("target_shape".into(), json!(shape.join(",")));
        meta.insert("kind".into(), json!(kind));
        for (k, val) in &self.settings {
            meta.insert(format!("fit.{k}"), json!(val));
        }
        let mut header = Map::new();
        header.insert("__metadata__".into(), Value::Object(meta));
        for (name, entry) in entries {
            header.insert(name.into(), entry);
        }
        let mut header = serde_json::to_vec(&Value::Object(header)).map_err(|e| Error::Invalid(format!("decoder header: {e}")))?;
        while (8 + header.len()) % 8 != 0 {
            header.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + data.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Writes the file atomically (temporary file, then rename); refuses to replace an
    /// existing file unless `overwrite`.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes, overwrite)
    }
}

/// A decoder file mapped into memory; [`LoadedDecoder::decoder`] reads it in place.
#[derive(Debug)]
pub struct LoadedDecoder {
    path: PathBuf,
    map: Mmap,
}

impl LoadedDecoder {
    /// Maps the file and checks it once.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(crate::Error::Invalid(format!("{}: is a directory, not a decoder file", path.display())));
        }
        let file = fs::File::open(path).map_err(io(path))?;
        // SAFETY: the map is read-only; percept never writes decoder files in place (they are
        // replaced by rename), so the mapped bytes do not change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
        let loaded = LoadedDecoder { path: path.to_path_buf(), map };
        loaded.decoder()?;
        Ok(loaded)
    }

    /// The decoder (checked again on each call, which reads every weight once).
    pub fn decoder(&self) -> Result<Decoder<'_>> {
        Decoder::from_bytes(&self.map).map_err(|source| Error::Decoder { path: self.path.clone(), source })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// What the decoder file at `path` holds, one field a line: region, target, sizes, weights,
/// the checksum of its tensor data (verified on opening) and the fitting settings in its metadata.
pub fn describe(path: &Path) -> Result<String> {
    use std::fmt::Write as _;
    let loaded = LoadedDecoder::open(path)?;
    let dec = loaded.decoder()?;
    let mut r = String::new();
    let _ = writeln!(r, "{}", path.display());
    let _ = writeln!(r, "  region        {}", dec.region());
    let _ = writeln!(r, "  target        {:?} {:?}", dec.target(), dec.target_shape());
    let _ = writeln!(r, "  voxels        {}", dec.voxels());
    let _ = writeln!(r, "  outputs       {}", dec.outputs());
    match dec.rank() {
        Some(k) => { let _ = writeln!(r, "  weights       low-rank, rank {k}"); }
        None => { let _ = writeln!(r, "  weights       dense f16"); }
    }
    let blob = percept_core::Blob::parse(loaded.bytes()).map_err(|source| Error::Decoder { path: path.to_path_buf(), source })?;
    let checksum = match blob.metadata("checksum").map_err(|source| Error::Decoder { path: path.to_path_buf(), source })? {
        Some(c) => format!("{c} (verified)"),
        None => "none (format version 1 file, written before checksums)".into(),
    };
    let _ = writeln!(r, "  checksum      {checksum}");
    for key in ["kind", "format_version", "fit.alpha", "fit.cv", "fit.trials", "fit.cv_r_mean", "fit.cv_r_median", "fit.note"] {
        if let Some(v) = blob.metadata(key).map_err(|source| Error::Decoder { path: path.to_path_buf(), source })? {
            let _ = writeln!(r, "  {key:<13} {v}");
        }
    }
    Ok(r)
}
