//! A model of visual cortex that turns images into voxel responses.
//!
//! Early visual voxels follow the population receptive field model (Dumoulin & Wandell 2008)
//! with the Gabor-energy features of Kay et al. (2008): each image is reduced to contrast
//! energy at [`SCALES`] spatial frequencies and [`ORIENTATIONS`] orientations (quadrature Gabor
//! pairs on a luminance pyramid), plus local luminance and two colour-opponent channels; a
//! voxel pools these with its Gaussian field, compresses the pooled energy (exponent 0.5,
//! Kay et al. 2013) and mixes in its luminance and colour terms. Higher visual voxels have
//! large foveal fields and respond to coarse content, to what the image shows (its caption's
//! words) and, when a DNN drive is given, to a random mixture of an ImageNet network's late
//! features ([`super::dnn`]). Nothing here sees the latents a decoder will be asked to predict.

use faer::Mat;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::io::image::Rgb;
use super::dnn::DnnDrive;
pub use super::words::semantic;

/// Gabor orientations (0, 45, 90, 135 degrees).
pub const ORIENTATIONS: usize = 4;
/// Pyramid levels: wavelengths 4, 8 and 16 pixels of the stimulus.
pub const SCALES: usize = 3;
/// Feature maps per image: energy at each scale and orientation, luminance, red-green, blue-yellow.
pub const FEATURES: usize = SCALES * ORIENTATIONS + 3;
/// Dimensions of the word space of higher visual voxels.
pub const SEMANTIC_DIM: usize = 32;

/// Gabor wavelength in pixels at every pyramid level, and its envelope's sigma.
const WAVELENGTH: f32 = 4.0;
const GABOR_SIGMA: f32 = 2.0;
const GABOR_RADIUS: isize = 5;

/// `FEATURES` maps of `grid x grid` for one image: `(FEATURES, grid * grid)`.
pub fn features(img: &Rgb, grid: usize) -> Vec<f32> {
    let s = img.width;
    let px = |i: usize, c: usize| img.data[i * 3 + c];
    let lum: Vec<f32> = (0..s * s).map(|i| 0.299 * px(i, 0) + 0.587 * px(i, 1) + 0.114 * px(i, 2)).collect();
    let rg: Vec<f32> = (0..s * s).map(|i| px(i, 0) - px(i, 1)).collect();
    let by: Vec<f32> = (0..s * s).map(|i| px(i, 2) - 0.5 * (px(i, 0) + px(i, 1))).collect();
    let kernels = gabor_kernels();
    let mut out = Vec::with_capacity(FEATURES * grid * grid);
    let mut level = lum.clone();
    let mut r = s;
    for k in 0..SCALES {
        if k > 0 {
            level = halve(&level, r);
            r /= 2;
        }
        for (even, odd) in &kernels {
            let e = convolve(&level, r, even);
            let o = convolve(&level, r, odd);
            let energy: Vec<f32> = e.iter().zip(&o).map(|(a, b)| (a * a + b * b).sqrt()).collect();
            out.extend(resize(&energy, r, grid));
        }
    }
    out.extend(resize(&lum, s, grid).into_iter().map(|v| v - 0.5));
    out.extend(resize(&rg, s, grid));
    out.extend(resize(&by, s, grid));
    out
}

/// Quadrature pairs `(even, odd)` per orientation, `(2R+1)^2` taps; the even one has zero mean.
fn gabor_kernels() -> Vec<(Vec<f32>, Vec<f32>)> {
    let n = (2 * GABOR_RADIUS + 1) as usize;
    (0..ORIENTATIONS)
        .map(|o| {
            let th = std::f32::consts::PI * o as f32 / ORIENTATIONS as f32;
            let (mut even, mut odd, mut env) = (vec![0f32; n * n], vec![0f32; n * n], vec![0f32; n * n]);
            for dy in -GABOR_RADIUS..=GABOR_RADIUS {
                for dx in -GABOR_RADIUS..=GABOR_RADIUS {
                    let (x, y) = (dx as f32, dy as f32);
                    let g = (-(x * x + y * y) / (2.0 * GABOR_SIGMA * GABOR_SIGMA)).exp();
                    let ph = std::f32::consts::TAU * (x * th.cos() + y * th.sin()) / WAVELENGTH;
                    let i = ((dy + GABOR_RADIUS) as usize) * n + (dx + GABOR_RADIUS) as usize;
                    even[i] = g * ph.cos();
                    odd[i] = g * ph.sin();
                    env[i] = g;
                }
            }
            let dc = even.iter().sum::<f32>() / env.iter().sum::<f32>();
            even.iter_mut().zip(&env).for_each(|(e, g)| *e -= dc * g);
            let norm = even.iter().map(|v| v * v).sum::<f32>().sqrt();
            even.iter_mut().for_each(|v| *v /= norm);
            let norm = odd.iter().map(|v| v * v).sum::<f32>().sqrt();
            odd.iter_mut().for_each(|v| *v /= norm);
            (even, odd)
        })
        .collect()
}

/// `x (r, r)` convolved with a square kernel, borders replicated.
fn convolve(img: &[f32], r: usize, k: &[f32]) -> Vec<f32> {
    let rad = GABOR_RADIUS;
    let n = (2 * rad + 1) as usize;
    let mut out = vec![0f32; r * r];
    let clamp = |v: isize| v.clamp(0, r as isize - 1) as usize;
    for y in 0..r {
        for x in 0..r {
            let mut acc = 0f32;
            for dy in -rad..=rad {
                let row = clamp(y as isize + dy) * r;
                let krow = &k[((dy + rad) as usize) * n..][..n];
                for (kx, dx) in (-rad..=rad).enumerate() {
                    acc += krow[kx] * img[row + clamp(x as isize + dx)];
                }
            }
            out[y * r + x] = acc;
        }
    }
    out
}

/// 2x2 box average: `(r, r) -> (r/2, r/2)`.
fn halve(x: &[f32], r: usize) -> Vec<f32> {
    let h = r / 2;
    (0..h * h).map(|i| {
        let (y, xx) = (2 * (i / h), 2 * (i % h));
        0.25 * (x[y * r + xx] + x[y * r + xx + 1] + x[(y + 1) * r + xx] + x[(y + 1) * r + xx + 1])
    }).collect()
}

/// `(r, r) -> (g, g)`: the mean over each cell when shrinking, nearest sample when growing.
fn resize(x: &[f32], r: usize, g: usize) -> Vec<f32> {
    let mut out = vec![0f32; g * g];
    for i in 0..g {
        for j in 0..g {
            out[i * g + j] = if r >= g {
                let (y0, y1, x0, x1) = (i * r / g, ((i + 1) * r / g).max(i * r / g + 1), j * r / g, ((j + 1) * r / g).max(j * r / g + 1));
                let mut s = 0f32;
                for y in y0..y1 {
                    s += x[y * r + x0..y * r + x1].iter().sum::<f32>();
                }
                s / ((y1 - y0) * (x1 - x0)) as f32
            } else {
                x[(i * r / g) * r + j * r / g]
            };
        }
    }
    out
}

/// Which part of visual cortex a voxel is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// V1, V2 or V3 (1, 2, 3).
    Early(u8),
    /// Higher visual cortex (ventral/lateral, large fields, semantic).
    Higher,
}

/// One simulated voxel.
#[derive(Debug, Clone)]
pub struct Voxel {
    /// Where it is.
    pub area: Area,
    /// pRF centre in image units (the image spans [-1, 1], y down).
    pub centre: (f32, f32),
    /// pRF size (Gaussian sigma), image units.
    pub sigma: f32,
    /// Weights on the energy maps (>= 0), then luminance, red-green, blue-yellow.
    pub weights: [f32; FEATURES],
    /// Share of variance from luminance and colour (early) or from coarse image content
    /// (higher; the rest is semantic).
    pub mix: f32,
    /// Word-space tuning (higher visual only).
    pub semantic: [f32; SEMANTIC_DIM],
    /// Signal-to-noise ratio of a single trial (signal std / noise std).
    pub snr: f32,
    /// Response gain (arbitrary units) and baseline.
    pub gain: f32,
    /// Baseline.
    pub baseline: f32,
    /// Loading on the trial-wide shared fluctuation.
    pub shared: f32,
}

/// Settings of the voxel population.
#[derive(Debug, Clone)]
pub struct PopulationSettings {
    /// Early visual voxels (V1-V3, shared equally).
    pub early: usize,
    /// Higher visual voxels.
    pub higher: usize,
    /// Median single-trial SNR of early visual voxels.
    pub snr_early: f32,
    /// Median single-trial SNR of higher visual voxels.
    pub snr_higher: f32,
    /// Share of voxels in the mask with almost no signal (SNR / 10).
    pub dead: f32,
}

pub(super) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Draws the voxel population.
pub fn population(s: &PopulationSettings, rng: &mut ChaCha8Rng) -> Vec<Voxel> {
    let mut out = Vec::with_capacity(s.early + s.higher);
    for i in 0..s.early + s.higher {
        let early = i < s.early;
        let area = if early { Area::Early(1 + (3 * i / s.early.max(1)) as u8) } else { Area::Higher };
        // Denser near the fovea: eccentricity ~ u^1.7; some fields fall partly off the screen.
        let (ecc, sigma) = match area {
            Area::Early(a) => {
                let ecc = 1.2 * rng.random::<f32>().powf(1.7);
                (ecc, (0.04 + 0.12 * ecc) * [1.0, 1.6, 2.4][a as usize - 1] * rng.random_range(0.8..1.25))
            }
            Area::Higher => (0.4 * rng.random::<f32>(), rng.random_range(0.4..1.0)),
        };
        let th: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        // Larger fields prefer coarser scales.
        let pref = ((sigma / 0.05).log2() * 0.8 + normal(rng) * 0.4).clamp(0.0, (SCALES - 1) as f32);
        let ori_pref: f32 = rng.random_range(0.0..std::f32::consts::PI);
        let mut weights = [0f32; FEATURES];
        for k in 0..SCALES {
            for o in 0..ORIENTATIONS {
                let ori = std::f32::consts::PI * o as f32 / ORIENTATIONS as f32;
                let sf = (-(k as f32 - pref).powi(2) / (2.0 * 0.8 * 0.8)).exp();
                weights[k * ORIENTATIONS + o] = sf * (1.0 + 0.3 * (2.0 * (ori - ori_pref)).cos());
            }
        }
        weights[SCALES * ORIENTATIONS] = normal(rng);
        weights[SCALES * ORIENTATIONS + 1] = 0.6 * normal(rng);
        weights[SCALES * ORIENTATIONS + 2] = 0.6 * normal(rng);
        let mut semantic = [0f32; SEMANTIC_DIM];
        if !early {
            semantic.iter_mut().for_each(|w| *w = normal(rng));
        }
        let median = if early { s.snr_early } else { s.snr_higher };
        let dead = if rng.random::<f32>() < s.dead { 0.1 } else { 1.0 };
        out.push(Voxel {
            area,
            centre: (ecc * th.cos(), ecc * th.sin()),
            sigma,
            weights,
            mix: if early { rng.random_range(0.1..0.5) } else { 0.3 },
            semantic,
            snr: median * (0.5 * normal(rng)).exp() * dead,
            gain: (0.3 * normal(rng)).exp(),
            baseline: normal(rng),
            shared: 0.3 * normal(rng),
        });
    }
    out
}

/// Pooling weights under this are 0: their subnormal products took most of `simulate`'s time.
const POOL_FLOOR: f32 = 1e-30;

/// Pooling weights `(voxels, grid^2)`: each field's Gaussian, sampled at the cell centres and
/// scaled so that a field partly off the screen sees the blank screen (0) there.
fn pooling(voxels: &[Voxel], grid: usize) -> Mat<f32> {
    let cell = 2.0 / grid as f32;
    Mat::from_fn(voxels.len(), grid * grid, |v, g| {
        let vx = &voxels[v];
        let (u, w) = ((g % grid) as f32 * cell + cell / 2.0 - 1.0, (g / grid) as f32 * cell + cell / 2.0 - 1.0);
        let d2 = (u - vx.centre.0).powi(2) + (w - vx.centre.1).powi(2);
        let w = (-d2 / (2.0 * vx.sigma * vx.sigma)).exp() * cell * cell / (std::f32::consts::TAU * vx.sigma * vx.sigma);
        if w < POOL_FLOOR { 0.0 } else { w }
    })
}

/// Standardises each row of `x (rows, n)` with the mean and std of its first `reference`
/// values (rows without variance there become 0).
pub(super) fn standardise_rows(x: &mut [f32], n: usize, reference: usize) {
    for row in x.chunks_mut(n) {
        let r = &row[..reference];
        let m = r.iter().sum::<f32>() / reference as f32;
        let sd = (r.iter().map(|v| (v - m).powi(2)).sum::<f32>() / reference as f32).sqrt();
        row.iter_mut().for_each(|v| *v = if sd > 1e-12 { (*v - m) / sd } else { 0.0 });
    }
}

/// Noise-free responses `(voxels, stimuli)`, each voxel standardised over the stimuli.
/// `maps`: every stimulus's [`features`]; `semantic`: every stimulus's word vector.
pub fn responses(voxels: &[Voxel], maps: &[Vec<f32>], semantic: &[[f32; SEMANTIC_DIM]], grid: usize, bar: &dyn crate::progress::Progress) -> Vec<f32> {
    responses_against(voxels, maps, semantic, grid, maps.len(), None, bar)
}

/// [`responses`] with every standardisation measured on the first `reference` stimuli only
/// (the ones seen; imagined stimuli after them are scaled like them and do not change them).
/// With `dnn`, a higher visual voxel's signal is `sqrt(mix (1 - d)) coarse + sqrt((1 - mix)
/// (1 - d)) words + sqrt(d) dnn` (`d` the DNN share); without it, or with `d = 0`, exactly the
/// responses without the term. Early visual voxels never depend on `dnn`.
#[allow(clippy::too_many_arguments)]
pub fn responses_against(voxels: &[Voxel], maps: &[Vec<f32>], semantic: &[[f32; SEMANTIC_DIM]], grid: usize, reference: usize, dnn: Option<DnnDrive<'_>>, bar: &dyn crate::progress::Progress) -> Vec<f32> {
    let (nv, ns, g2) = (voxels.len(), maps.len(), grid * grid);
    let reference = reference.clamp(1, ns.max(1));
    let pool = pooling(voxels, grid);
    let ne = SCALES * ORIENTATIONS;
    // Term 1 (contrast energy, compressed) and term 2 (luminance and colour, or coarse content).
    let mut energy = vec![0f32; nv * ns];
    let mut linear = vec![0f32; nv * ns];
    const CHUNK: usize = 32;
    bar.set_len(ns as u64);
    // Chunks never straddle the reference boundary, so the seen stimuli's values do not
    // depend on the stimuli after them.
    let starts: Vec<usize> = (0..reference).step_by(CHUNK).chain((reference..ns).step_by(CHUNK)).collect();
    for start in starts {
        let end = (start + CHUNK).min(if start < reference { reference } else { ns });
        let chunk = &maps[start..end];
        // (grid^2, FEATURES * stimuli of the chunk)
        let m = Mat::from_fn(g2, FEATURES * chunk.len(), |g, j| chunk[j / FEATURES][(j % FEATURES) * g2 + g]);
        let pooled: Mat<f32> = &pool * &m;
        let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..nv)
            .into_par_iter()
            .map(|v| {
                let w = &voxels[v].weights;
                (0..chunk.len())
                    .map(|s| {
                        let p = |f: usize| pooled[(v, s * FEATURES + f)];
                        let e: f32 = (0..ne).map(|f| w[f] * p(f)).sum();
                        let l: f32 = (ne..FEATURES).map(|f| w[f] * p(f)).sum();
                        (e.max(0.0).sqrt(), l)
                    })
                    .unzip()
            })
            .collect();
        for (v, (e, l)) in rows.into_iter().enumerate() {
            energy[v * ns + start..][..e.len()].copy_from_slice(&e);
            linear[v * ns + start..][..l.len()].copy_from_slice(&l);
        }
        bar.inc(chunk.len() as u64);
    }
    standardise_rows(&mut energy, ns, reference);
    standardise_rows(&mut linear, ns, reference);
    let mut out = vec![0f32; nv * ns];
    let d = dnn.map_or(0.0, |x| x.share);
    let mut higher = 0;
    for (v, vx) in voxels.iter().enumerate() {
        let row = &mut out[v * ns..(v + 1) * ns];
        match vx.area {
            Area::Early(_) => {
                let (a, b) = ((1.0 - vx.mix).sqrt(), vx.mix.sqrt());
                row.iter_mut().enumerate().for_each(|(s, r)| *r = a * energy[v * ns + s] + b * linear[v * ns + s]);
            }
            Area::Higher => {
                // Coarse content (energy and colour of the large field) plus the semantic drive
                // (plus the DNN drive).
                for (s, r) in row.iter_mut().enumerate() {
                    *r = vx.semantic.iter().zip(&semantic[s]).map(|(a, b)| a * b).sum();
                }
                standardise_rows(row, ns, reference);
                let (a, b) = ((vx.mix * (1.0 - d)).sqrt(), ((1.0 - vx.mix) * (1.0 - d)).sqrt());
                for (s, r) in row.iter_mut().enumerate() {
                    let coarse = std::f32::consts::FRAC_1_SQRT_2 * (energy[v * ns + s] + linear[v * ns + s]);
                    *r = a * coarse + b * *r;
                }
                if let Some(x) = dnn.filter(|x| x.share > 0.0) {
                    let (c, drive) = (x.share.sqrt(), &x.drive[higher * ns..(higher + 1) * ns]);
                    row.iter_mut().zip(drive).for_each(|(r, g)| *r += c * g);
                }
                higher += 1;
            }
        }
    }
    standardise_rows(&mut out, ns, reference);
    out
}

/// Single-trial voxel values `(trials, voxels)` from the noise-free responses
/// `(voxels, stimuli)`: `baseline + gain * (signal + noise / snr)`, where the noise is
/// independent per voxel plus a fluctuation shared by all voxels of the trial.
pub fn trials(voxels: &[Voxel], signal: &[f32], stimuli: usize, shown: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
    trials_scaled(voxels, signal, stimuli, shown, &|_| 1.0, rng)
}

/// [`trials`] with each voxel's signal scaled by `scale(voxel)` (the noise is not): mental
/// imagery's weaker responses.
pub fn trials_scaled(voxels: &[Voxel], signal: &[f32], stimuli: usize, shown: &[usize], scale: &dyn Fn(&Voxel) -> f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let nv = voxels.len();
    let mut out = vec![0f32; shown.len() * nv];
    for (t, &s) in shown.iter().enumerate() {
        let common = normal(rng);
        for (v, vx) in voxels.iter().enumerate() {
            let noise = (normal(rng) + vx.shared * common) / vx.snr.max(1e-6);
            out[t * nv + v] = vx.baseline + vx.gain * (scale(vx) * signal[v * stimuli + s] + noise);
        }
    }
    out
}

/// Features of many images in parallel.
pub fn all_features(images: &[Rgb], grid: usize, bar: &dyn crate::progress::Progress) -> Vec<Vec<f32>> {
    bar.set_len(images.len() as u64);
    images
        .par_iter()
        .map(|img| {
            let f = features(img, grid);
            bar.inc(1);
            f
        })
        .collect()
}
