//! DNN feature decoders (Shen, Horikawa, Majima & Kamitani, PLoS Comput Biol 2019): one
//! decoder per layer from voxels to a chosen subset of the layer's units, by FastL2LiR
//! (sparse decoder, [`super::fastl2lir`]) or percept's dense ridge ([`super::ridge`]); the
//! training statistics of the true features for the lab's rescaling ([`rescale`]).

use percept_core::Target;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::fastl2lir::{self, FastL2LirOptions};
use super::{fit, FitSpec, RidgeOptions};
use crate::error::{Error, Result};
use crate::io::decoder::{DecoderFile, DecoderWeights, FeatureInfo};
use crate::progress::Progress;

/// How a layer's decoder is fitted.
#[derive(Debug, Clone)]
pub enum Method {
    /// Per unit the `select` voxels of highest |r|, ridge with `alpha` (a sparse decoder).
    FastL2Lir(FastL2LirOptions),
    /// Dense ridge on all voxels, alpha by cross-validation (`percept fit`'s).
    Ridge(RidgeOptions),
}

/// The units of a layer with `total` units to decode: all (`None`, or `n >= total`), or `n`
/// drawn at random with `seed` (the lab's configs decode random subsets), ascending.
pub fn choose_units(total: usize, n: Option<usize>, seed: u64) -> Vec<u32> {
    match n {
        Some(n) if n < total => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut u: Vec<u32> = sample(&mut rng, total, n).into_iter().map(|i| i as u32).collect();
            u.sort_unstable();
            u
        }
        _ => (0..total as u32).collect(),
    }
}

/// `(n, units.len())`: the columns `units` of `all (n, total)`.
pub fn columns(all: &[f32], total: usize, units: &[u32]) -> Vec<f32> {
    all.chunks_exact(total).flat_map(|row| units.iter().map(move |&u| row[u as usize])).collect()
}

/// Per column of `y (n, l)`: the mean and the standard deviation with ddof 1 (0 when n < 2).
pub fn column_stats(y: &[f32], n: usize, l: usize) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0f64; l];
    for row in y.chunks_exact(l) {
        row.iter().zip(&mut mean).for_each(|(&v, m)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let mut sq = vec![0f64; l];
    for row in y.chunks_exact(l) {
        row.iter().zip(&mean).zip(&mut sq).for_each(|((&v, m), s)| *s += (v as f64 - m).powi(2));
    }
    let std = sq.iter().map(|s| if n < 2 { 0.0 } else { (s / (n - 1) as f64).sqrt() as f32 }).collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

/// The lab's rescaling of decoded features before reconstruction ("feature_std_train_mean_center"
/// in their reconstruction code, with `std_ddof=1`), for each row (image) of `decoded (B, L)`
/// of one layer, over the layer's decoded units:
///
/// `d = x - mean_train`; `x' = (d - mean(d)) / std(d) * mean_u(std_train) + mean(d) + mean_train`
///
/// where `mean(d)` and `std(d)` (ddof 1) are taken over the L units of that one image, and
/// `mean_u(std_train)` is the mean over units of each unit's standard deviation over the
/// training images. So the spread of the decoded values across units matches the true
/// features' typical spread. A row whose spread is 0 is only re-centred.
pub fn rescale(decoded: &[f32], stats: &FeatureInfo) -> Result<Vec<f32>> {
    let l = stats.mean.len();
    if l == 0 || !decoded.len().is_multiple_of(l) || stats.std.len() != l {
        return Err(Error::Shape(format!("rescale: {} decoded values are not rows of the {l} units of {}", decoded.len(), stats.layer)));
    }
    let scale = stats.std.iter().map(|&s| s as f64).sum::<f64>() / l as f64;
    let mut out = Vec::with_capacity(decoded.len());
    for row in decoded.chunks_exact(l) {
        let d: Vec<f64> = row.iter().zip(&stats.mean).map(|(&x, &m)| x as f64 - m as f64).collect();
        let mu = d.iter().sum::<f64>() / l as f64;
        let sd = if l > 1 { (d.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (l - 1) as f64).sqrt() } else { 0.0 };
        let k = if sd > 0.0 { scale / sd } else { 1.0 };
        out.extend(d.iter().zip(&stats.mean).map(|(&v, &m)| ((v - mu) * k + mu + m as f64) as f32));
    }
    Ok(out)
}

/// One fitted layer decoder.
#[derive(Debug)]
pub struct LayerFit {
    /// The decoder file (outputs in the features' own units, not standardised).
    pub file: DecoderFile,
    /// Voxels each output reads (V for dense ridge).
    pub voxels_per_unit: usize,
    /// Mean cross-validated correlation (dense ridge only).
    pub cv_r: Option<f32>,
}

/// Fits a decoder of `y (n, L)` (the chosen units of one layer) from `x (n, V)`, both raw;
/// `info` names the layer and units (its statistics are filled in here).
pub fn fit_layer(x: &[f32], v: usize, y: &[f32], region: &str, mut info: FeatureInfo, method: &Method, bar: &dyn Progress) -> Result<LayerFit> {
    let l = info.units.len();
    let n = x.len() / v.max(1);
    if n < 2 || v == 0 || l == 0 || x.len() != n * v || y.len() != n * l {
        return Err(Error::Shape(format!("feature fit of {}: {} voxel values for {n} trials x {v} voxels, {} feature values for {l} units", info.layer, x.len(), y.len())));
    }
    if let Some(i) = x.iter().position(|a| !a.is_finite()) {
        return Err(Error::Invalid(format!("voxel {} of trial {} is {} (NaN or infinite)", i % v, i / v, x[i])));
    }
    if let Some(i) = y.iter().position(|a| !a.is_finite()) {
        return Err(Error::Invalid(format!("feature unit {} of {} for trial {} is {}", info.units[i % l], info.layer, i / l, y[i])));
    }
    let (ymean, ystd) = column_stats(y, n, l);
    info.mean = ymean.clone();
    info.std = ystd.clone();
    let (file, per, cv_r) = match method {
        Method::FastL2Lir(o) => {
            // Standardise with training statistics (population std, as the lab's
            // preprocessing); a constant voxel or unit becomes 0 (std stored as 1).
            let (vm, vs) = pop_stats(x, n, v);
            let (ym, ys) = pop_stats(y, n, l);
            let xz: Vec<f32> = x.chunks_exact(v).flat_map(|r| r.iter().zip(&vm).zip(&vs).map(|((&a, m), s)| (a - m) / s)).collect();
            let yz: Vec<f32> = y.chunks_exact(l).flat_map(|r| r.iter().zip(&ym).zip(&ys).map(|((&a, m), s)| (a - m) / s)).collect();
            let s = fastl2lir::fit(&xz, n, v, &yz, l, o, bar)?;
            // Back to the features' units: y = ys * (w . z + b) + ym.
            let weight = s.weight.iter().enumerate().map(|(i, &w)| (w * ys[i / s.k] as f64) as f32).collect();
            let bias = s.bias.iter().zip(&ys).zip(&ym).map(|((&b, &sd), &m)| (b * sd as f64 + m as f64) as f32).collect();
            let settings = vec![
                ("method".to_string(), "fastl2lir".to_string()),
                ("select".to_string(), o.select.to_string()),
                ("alpha".to_string(), format!("{:e}", o.alpha)),
                ("trials".to_string(), n.to_string()),
            ];
            let file = DecoderFile { region: region.into(), target: Target::Features, target_shape: vec![l], voxels: v, weights: DecoderWeights::Sparse { index: s.index, weight, k: s.k }, bias, voxel_mean: vm, voxel_std: vs, settings, features: None };
            (file, s.k, None)
        }
        Method::Ridge(r) => {
            let spec = FitSpec { region: region.into(), target: Target::Features, target_shape: vec![l], ridge: r.clone(), rank: None };
            let f = fit(x, n, v, y, &spec, bar)?;
            let mean_r = f.cv_r.iter().sum::<f32>() / l as f32;
            (f.file, v, Some(mean_r))
        }
    };
    let mut file = file;
    file.features = Some(info);
    Ok(LayerFit { file, voxels_per_unit: per, cv_r })
}

/// Per column of `a (n, c)`: mean and population std, a std below 1e-6 (relative) made 1.
fn pop_stats(a: &[f32], n: usize, c: usize) -> (Vec<f32>, Vec<f32>) {
    let (mean, std) = column_stats(a, n, c);
    let std = std.iter().zip(&mean).map(|(&s, &m)| {
        let pop = s * (((n - 1) as f32) / n as f32).sqrt();
        if pop > 1e-6 * (1.0 + m.abs()) { pop } else { 1.0 }
    });
    (mean.clone(), std.collect())
}

/// `(m, L)`: decodes the rows of `x (m, V)` with the decoder file `bytes`, through percept-core
/// (so the f16 weights are the ones used).
pub fn predict(bytes: &[u8], x: &[f32], m: usize) -> Result<Vec<f32>> {
    // The core reads tensors in place and needs them aligned: copy into 8-byte words.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (w, c) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        *w = u64::from_le_bytes(b);
    }
    // SAFETY: `words` holds `bytes.len()` initialised bytes (and more); u8 has no alignment.
    let aligned: &[u8] = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), bytes.len()) };
    let dec = percept_core::Decoder::from_bytes(aligned).map_err(|e| Error::Invalid(format!("feature decoder: {e}")))?;
    let (v, l) = (dec.voxels(), dec.outputs());
    if x.len() != m * v {
        return Err(Error::Shape(format!("feature decoder reads {v} voxels; {} values for {m} rows", x.len())));
    }
    let mut scratch = vec![0f32; dec.scratch_len()];
    let mut out = vec![0f32; m * l];
    for (i, (xr, yr)) in x.chunks_exact(v).zip(out.chunks_exact_mut(l)).enumerate() {
        dec.decode(xr, &mut scratch, yr).map_err(|e| Error::Invalid(format!("feature decoder: row {i}: {e}")))?;
    }
    Ok(out)
}

/// Per column of `a` and `b` (both `(m, l)`): the Pearson correlation over the m rows (0 for a
/// constant column).
pub fn unit_correlations(a: &[f32], b: &[f32], m: usize, l: usize) -> Vec<f32> {
    (0..l)
        .map(|j| {
            let (ma, mb) = (0..m).fold((0.0, 0.0), |(x, y), i| (x + a[i * l + j] as f64, y + b[i * l + j] as f64));
            let (ma, mb) = (ma / m as f64, mb / m as f64);
            let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
            for i in 0..m {
                let (da, db) = (a[i * l + j] as f64 - ma, b[i * l + j] as f64 - mb);
                sab += da * db;
                saa += da * da;
                sbb += db * db;
            }
            if saa > 0.0 && sbb > 0.0 { (sab / (saa * sbb).sqrt()) as f32 } else { 0.0 }
        })
        .collect()
}

/// A feature decoder file opened for decoding (what `percept reconstruct --method dir` reads).
#[derive(Debug)]
pub struct FeatureDecoder {
    loaded: crate::io::decoder::LoadedDecoder,
    /// The layer, its units and their training statistics.
    pub info: FeatureInfo,
}

impl FeatureDecoder {
    /// Opens and checks a decoder written by `percept fit --target features`.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let loaded = crate::io::decoder::LoadedDecoder::open(path)?;
        let info = loaded.features()?.ok_or_else(|| Error::Invalid(format!("{}: not a feature decoder (no `feature_layer` metadata)", path.display())))?;
        Ok(FeatureDecoder { loaded, info })
    }

    /// `(n, L)` decoded features (in the layer's own units) of `x (n, V)`.
    pub fn decode(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        predict(self.loaded.bytes(), x, n)
    }

    /// `(n, L)` decoded features after the lab's [`rescale`].
    pub fn decode_rescaled(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        rescale(&self.decode(x, n)?, &self.info)
    }
}

/// Every `*.safetensors` feature decoder in `dir`, in the order of their file names.
pub fn open_dir(dir: &std::path::Path) -> Result<Vec<FeatureDecoder>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(crate::error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Invalid(format!("{}: holds no .safetensors feature decoder", dir.display())));
    }
    paths.iter().map(|p| FeatureDecoder::open(p)).collect()
}
