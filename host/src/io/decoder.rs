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
    /// Per output k voxels and their weights (percept-core's sparse kind): `index (L, k)`
    /// voxel indices (each < V) and `weight (L, k)`, row-major. Stored as `sparse_index`
    /// (U16 when V <= 65536, else U32) and `sparse_weight` (F16).
    Sparse {
        /// `(L, k)`
        index: Vec<u32>,
        /// `(L, k)`
        weight: Vec<f32>,
        /// k
        k: usize,
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
    /// For a decoder of network features: which layer and units, and their training
    /// statistics (for the rescaling before reconstruction).
    pub features: Option<FeatureInfo>,
}

/// What a feature decoder's outputs are (Shen et al. 2019's DNN feature decoding), stored as
/// tensors `feature_unit (L)` U32, `feature_mean (L)` and `feature_std (L)` F32 (covered by the
/// checksum; percept-core ignores them) and metadata `feature_net`, `feature_layer`,
/// `feature_layer_units`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureInfo {
    /// The feature network, e.g. `efficientnet-lite2`.
    pub net: String,
    /// The layer's reference name, e.g. `_blocks.3`.
    pub layer: String,
    /// Units in the whole layer (NHWC-flattened).
    pub layer_units: usize,
    /// `(L,)` which unit of the NHWC-flattened layer each output is, ascending.
    pub units: Vec<u32>,
    /// `(L,)` mean of each unit's true feature over the training images.
    pub mean: Vec<f32>,
    /// `(L,)` standard deviation (ddof 1) of each unit's true feature over the training images.
    pub std: Vec<f32>,
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
        if let Some(f) = &self.features {
            len("feature_unit", f.units.len(), l)?;
            len("feature_mean", f.mean.len(), l)?;
            len("feature_std", f.std.len(), l)?;
            if let Some(i) = f.units.iter().position(|&u| u as usize >= f.layer_units) {
                return bad(format!("decoder tensor `feature_unit` names unit {} at output {i}; layer {} has {} units", f.units[i], f.layer, f.layer_units));
            }
        }
        match &self.weights {
            DecoderWeights::Dense(w) => len("weight", w.len(), l * v)?,
            DecoderWeights::LowRank { u, vt, rank } => {
                if *rank == 0 || *rank > l.min(v) {
                    return bad(format!("low-rank decoder (`weight_u`, `weight_vt`) has rank {rank}; it must be 1 to min(outputs {l}, voxels {v})"));
                }
                len("weight_u", u.len(), l * rank)?;
                len("weight_vt", vt.len(), rank * v)?;
            }
            DecoderWeights::Sparse { index, weight, k } => {
                if *k == 0 {
                    return bad("sparse decoder (`sparse_index`, `sparse_weight`) has k = 0 voxels per output".into());
                }
                len("sparse_index", index.len(), l * k)?;
                len("sparse_weight", weight.len(), l * k)?;
                if let Some(i) = index.iter().position(|&x| x as usize >= v) {
                    return bad(format!("decoder tensor `sparse_index` names voxel {} at output {}, slot {}; there are {v} voxels", index[i], i / k, i % k));
                }
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

    /// The safetensors bytes of the file, made in one buffer: the tensors are encoded straight
    /// into it (no per-tensor copies), and the header, whose length does not depend on the
    /// checksum's value, is written in front once the checksum is known. At NSD scale (59,136 x
    /// 15,724 f16 weights) this holds 1.9 GB beside the caller's f32 weights instead of three
    /// copies of them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check()?;
        let (v, l) = (self.voxels, self.outputs());
        // Tensors in file order: name, dtype, shape, values.
        let mut tensors: Vec<(&str, &str, Vec<usize>, Values<'_>)> = vec![
            ("bias", "F32", vec![l], Values::F32(&self.bias)),
            ("voxel_mean", "F32", vec![v], Values::F32(&self.voxel_mean)),
            ("voxel_std", "F32", vec![v], Values::F32(&self.voxel_std)),
        ];
        if let Some(f) = &self.features {
            tensors.push(("feature_mean", "F32", vec![l], Values::F32(&f.mean)));
            tensors.push(("feature_std", "F32", vec![l], Values::F32(&f.std)));
            tensors.push(("feature_unit", "U32", vec![l], Values::U32(&f.units)));
        }
        let kind = match &self.weights {
            DecoderWeights::Dense(w) => {
                tensors.push(("weight", "F16", vec![l, v], Values::F16(w, v)));
                "dense".to_string()
            }
            DecoderWeights::LowRank { u, vt, rank } => {
                tensors.push(("weight_u", "F16", vec![l, *rank], Values::F16(u, *rank)));
                tensors.push(("weight_vt", "F16", vec![*rank, v], Values::F16(vt, v)));
                format!("low_rank:{rank}")
            }
            DecoderWeights::Sparse { index, weight, k } => {
                if v <= 1 << 16 {
                    tensors.push(("sparse_index", "U16", vec![l, *k], Values::U16(index)));
                } else {
                    tensors.push(("sparse_index", "U32", vec![l, *k], Values::U32(index)));
                }
                tensors.push(("sparse_weight", "F16", vec![l, *k], Values::F16(weight, *k)));
                format!("sparse:{k}")
            }
        };
        let mut offset = 0;
        let mut entries = Vec::with_capacity(tensors.len());
        for (name, dtype, shape, values) in &tensors {
            let end = offset + values.bytes();
            entries.push((*name, json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]})));
            offset = end;
        }
        let header = |sum: u32| -> Result<Vec<u8>> { self.header(&kind, sum, &entries) };
        let head_len = header(0)?.len();
        let mut out = Vec::with_capacity(head_len + offset);
        out.resize(head_len, 0);
        for (name, _, _, values) in &tensors {
            values.append(name, &mut out)?;
        }
        let sum = checksum::of_data(&out[head_len..]);
        let head = header(sum)?;
        if head.len() != head_len {
            return Err(Error::Invalid(format!("decoder header: {} bytes with the checksum, {head_len} without", head.len())));
        }
        out[..head_len].copy_from_slice(&head);
        Ok(out)
    }

    /// The length prefix and the JSON header (padded to a multiple of 8 bytes in all) for the
    /// data's checksum `sum` and the tensors' `entries`.
    fn header(&self, kind: &str, sum: u32, entries: &[(&str, Value)]) -> Result<Vec<u8>> {
        let shape: Vec<String> = self.target_shape.iter().map(|d| d.to_string()).collect();
        let mut meta = Map::new();
        meta.insert("format".into(), json!(FORMAT));
        meta.insert("format_version".into(), json!(FORMAT_VERSION));
        meta.insert("checksum".into(), json!(format!("{}{sum:08x}", checksum::PREFIX)));
        meta.insert("region".into(), json!(self.region));
        meta.insert("target".into(), json!(match self.target { Target::Z => "z", Target::C => "c", Target::Features => "features" }));
        meta.insert("target_shape".into(), json!(shape.join(",")));
        meta.insert("kind".into(), json!(kind));
        if let Some(f) = &self.features {
            meta.insert("feature_net".into(), json!(f.net));
            meta.insert("feature_layer".into(), json!(f.layer));
            meta.insert("feature_layer_units".into(), json!(f.layer_units.to_string()));
        }
        for (k, val) in &self.settings {
            meta.insert(format!("fit.{k}"), json!(val));
        }
        let mut header = Map::new();
        header.insert("__metadata__".into(), Value::Object(meta));
        for (name, entry) in entries {
            header.insert((*name).into(), entry.clone());
        }
        let mut header = serde_json::to_vec(&Value::Object(header)).map_err(|e| Error::Invalid(format!("decoder header: {e}")))?;
        while (8 + header.len()) % 8 != 0 {
            header.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + header.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        Ok(out)
    }

    /// Writes the file atomically (temporary file, then rename); refuses to replace an
    /// existing file unless `overwrite`.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes, overwrite)
    }
}

/// A tensor's values as the file stores them, encoded by [`Values::append`].
enum Values<'a> {
    F32(&'a [f32]),
    /// Values stored as f16; the row length, to name a value that does not fit.
    F16(&'a [f32], usize),
    U16(&'a [u32]),
    U32(&'a [u32]),
}

impl Values<'_> {
    /// Bytes in the file.
    fn bytes(&self) -> usize {
        match self {
            Values::F32(x) => 4 * x.len(),
            Values::F16(x, _) => 2 * x.len(),
            Values::U16(x) => 2 * x.len(),
            Values::U32(x) => 4 * x.len(),
        }
    }

    /// Appends the little-endian values to `out`; an error names the tensor and the value
    /// that f16 cannot hold.
    fn append(&self, name: &str, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Values::F32(x) => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Values::U16(x) => x.iter().for_each(|&v| out.extend_from_slice(&(v as u16).to_le_bytes())),
            Values::U32(x) => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Values::F16(x, cols) => {
                for (i, &v) in x.iter().enumerate() {
                    let h = f16::from_f32(v);
                    if !h.is_finite() {
                        return Err(Error::Invalid(format!(
                            "decoder tensor `{name}` value {v} at ({}, {}) does not fit in f16",
                            i / cols.max(&1),
                            i % cols.max(&1)
                        )));
                    }
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
        }
        Ok(())
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
    match (dec.rank(), dec.sparse_k()) {
        (Some(k), _) => { let _ = writeln!(r, "  weights       low-rank, rank {k}"); }
        (None, Some(k)) => { let _ = writeln!(r, "  weights       sparse, {k} voxels per output (f16 weights)"); }
        (None, None) => { let _ = writeln!(r, "  weights       dense f16"); }
    }
    let _ = writeln!(r, "  size          {} bytes", loaded.bytes().len());
    let blob = percept_core::Blob::parse(loaded.bytes()).map_err(|source| Error::Decoder { path: path.to_path_buf(), source })?;
    let checksum = match blob.metadata("checksum").map_err(|source| Error::Decoder { path: path.to_path_buf(), source })? {
        Some(c) => format!("{c} (verified)"),
        None => "none (format version 1 file, written before checksums)".into(),
    };
    let _ = writeln!(r, "  checksum      {checksum}");
    for key in ["kind", "format_version", "feature_net", "feature_layer", "feature_layer_units", "fit.method", "fit.select", "fit.alpha", "fit.cv", "fit.trials", "fit.cv_r_mean", "fit.cv_r_median", "fit.note"] {
        if let Some(v) = blob.metadata(key).map_err(|source| Error::Decoder { path: path.to_path_buf(), source })? {
            let _ = writeln!(r, "  {key:<13} {v}");
        }
    }
    Ok(r)
}

impl LoadedDecoder {
    /// The feature layer, units and training statistics of a feature decoder (`None` for a
    /// decoder of z or c). The tensors were covered by the checksum when the file was opened.
    pub fn features(&self) -> Result<Option<FeatureInfo>> {
        let path = &self.path;
        let core = |source| Error::Decoder { path: path.clone(), source };
        let blob = percept_core::Blob::parse(&self.map).map_err(core)?;
        let meta = |key: &str| blob.metadata(key).map_err(core);
        let (Some(net), Some(layer), Some(total)) = (meta("feature_net")?, meta("feature_layer")?, meta("feature_layer_units")?) else {
            return Ok(None);
        };
        let bad = |what: &str| Error::Invalid(format!("{}: feature decoder: {what}", path.display()));
        let layer_units: usize = total.parse().map_err(|_| bad("metadata `feature_layer_units` is not a number"))?;
        let l = self.decoder()?.outputs();
        let read = |name: &str, dtype: percept_core::Dtype| -> Result<Vec<u32>> {
            let t = blob.tensor(name).map_err(core)?.ok_or_else(|| bad(&format!("tensor `{name}` is missing")))?;
            if t.dtype != dtype || t.shape.len() != 1 || t.shape[0] != l as u64 {
                return Err(bad(&format!("tensor `{name}` must be {} of shape ({l})", dtype.name())));
            }
            Ok(t.data.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let units = read("feature_unit", percept_core::Dtype::U32)?;
        if let Some(i) = units.iter().position(|&u| u as usize >= layer_units) {
            return Err(bad(&format!("`feature_unit` names unit {} at output {i}, past the layer's {layer_units} units", units[i])));
        }
        let mean: Vec<f32> = read("feature_mean", percept_core::Dtype::F32)?.into_iter().map(f32::from_bits).collect();
        let std: Vec<f32> = read("feature_std", percept_core::Dtype::F32)?.into_iter().map(f32::from_bits).collect();
        Ok(Some(FeatureInfo { net: net.to_string(), layer: layer.to_string(), layer_units, units, mean, std }))
    }
}
