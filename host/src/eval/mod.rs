//! `percept eval`: how close reconstructions are to the images that were seen, with the
//! metrics of the NSD reconstruction literature (Brain-Diffuser, MindEye):
//! - PixCorr: Pearson correlation over all pixel values after resizing both images to 425x425;
//! - SSIM: grayscale (ITU-R 709 luma, as skimage's rgb2gray), Gaussian window sigma 1.5
//!   truncated at 3.5 sigma (11x11), population covariances, data range 1, borders of half a
//!   window left out of the mean, as skimage's `structural_similarity(gaussian_weights=True,
//!   sigma=1.5, use_sample_covariance=False)` computes it;
//! - two-way identification: for each test image, the fraction of the other test images
//!   whose reconstruction correlates less with it than its own reconstruction does; chance is
//!   50%. In pixel space and in any feature space (percept uses TAESD's latent space).

pub mod features;

use crate::io::image::Rgb;
use crate::error::{Error, Result};

/// The side both images are resized to for PixCorr and SSIM.
pub const EVAL_SIZE: usize = 425;

/// Pearson correlation of two equally long vectors (0 when either is constant).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// PixCorr of two images already at the evaluation size.
pub fn pixcorr(a: &Rgb, b: &Rgb) -> f64 {
    pearson(&a.data, &b.data)
}

/// Grayscale as skimage's `rgb2gray`.
fn gray(img: &Rgb) -> Vec<f32> {
    img.data.chunks_exact(3).map(|p| 0.2125 * p[0].clamp(0.0, 1.0) + 0.7154 * p[1].clamp(0.0, 1.0) + 0.0721 * p[2].clamp(0.0, 1.0)).collect()
}

/// Separable Gaussian filter with scipy's `reflect` borders (d c b a | a b c d).
fn gaussian(x: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let r = (k.len() / 2) as isize;
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        loop {
            if i < 0 {
                i = -i - 1;
            } else if i >= n {
                i = 2 * n - i - 1;
            } else {
                return i as usize;
            }
        }
    };
    let mut rows = vec![0f64; w * h];
    for y in 0..h {
        for xx in 0..w {
            let mut s = 0f64;
            for (j, kv) in k.iter().enumerate() {
                s += kv * x[y * w + reflect(xx as isize + j as isize - r, w)];
            }
            rows[y * w + xx] = s;
        }
    }
    let mut out = vec![0f64; w * h];
    for y in 0..h {
        for xx in 0..w {
            let mut s = 0f64;
            for (j, kv) in k.iter().enumerate() {
                s += kv * rows[reflect(y as isize + j as isize - r, h) * w + xx];
            }
            out[y * w + xx] = s;
        }
    }
    out
}

/// SSIM of two images already at the evaluation size (see the module's description).
pub fn ssim(a: &Rgb, b: &Rgb) -> f64 {
    let (w, h) = (a.width, a.height);
    let (x, y): (Vec<f64>, Vec<f64>) = (gray(a).into_iter().map(f64::from).collect(), gray(b).into_iter().map(f64::from).collect());
    let sigma = 1.5f64;
    let r = (3.5 * sigma + 0.5) as isize;
    let mut k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let prod = |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(a, b)| a * b).collect() };
    let (ux, uy) = (gaussian(&x, w, h, &k), gaussian(&y, w, h, &k));
    let (uxx, uyy, uxy) = (gaussian(&prod(&x, &x), w, h, &k), gaussian(&prod(&y, &y), w, h, &k), gaussian(&prod(&x, &y), w, h, &k));
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let pad = r as usize;
    let mut total = 0f64;
    let mut count = 0usize;
    for yy in pad..h.saturating_sub(pad) {
        for xx in pad..w.saturating_sub(pad) {
            let i = yy * w + xx;
            let (vx, vy, vxy) = (uxx[i] - ux[i] * ux[i], uyy[i] - uy[i] * uy[i], uxy[i] - ux[i] * uy[i]);
            total += ((2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2)) / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    total / count.max(1) as f64
}

/// Two-way identification per test image: `truth[i]` against every reconstruction.
/// Returns each image's fraction of others beaten; needs at least two images.
pub fn two_way(truth: &[Vec<f32>], recon: &[Vec<f32>]) -> Result<Vec<f64>> {
    let n = truth.len();
    if n < 2 || recon.len() != n {
        return Err(Error::Invalid(format!("two-way identification needs at least 2 images and as many reconstructions (got {n} and {})", recon.len())));
    }
    Ok((0..n)
        .map(|i| {
            let own = pearson(&truth[i], &recon[i]);
            let beaten = (0..n).filter(|&j| j != i && pearson(&truth[i], &recon[j]) < own).count();
            beaten as f64 / (n - 1) as f64
        })
        .collect())
}

/// Two-way identification as Brain-Diffuser (Ozcelik & VanRullen) computes its AlexNet,
/// Inception and CLIP columns: for reconstruction `i`, the share of other originals `j` with
/// `corr(recon_i, truth_i) > corr(recon_i, truth_j)`, ties counted half. (The pixel and latent
/// columns of [`Scores`] compare `truth_i` with every reconstruction instead.)
pub fn two_way_vs_originals(truth: &[Vec<f32>], recon: &[Vec<f32>]) -> Result<Vec<f64>> {
    let n = truth.len();
    if n < 2 || recon.len() != n {
        return Err(Error::Invalid(format!("two-way identification needs at least 2 images and as many reconstructions (got {n} and {})", recon.len())));
    }
    Ok((0..n)
        .map(|i| {
            let own = pearson(&recon[i], &truth[i]);
            let score: f64 = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let other = pearson(&recon[i], &truth[j]);
                    if own > other {
                        1.0
                    } else if own == other {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum();
            score / (n - 1) as f64
        })
        .collect())
}

/// MindEye's feature distance (its EffNet-B and SwAV columns): the correlation distance
/// `1 - r` between the pooled features of each original and its reconstruction.
pub fn correlation_distance(truth: &[Vec<f32>], recon: &[Vec<f32>]) -> Vec<f64> {
    truth.iter().zip(recon).map(|(a, b)| 1.0 - pearson(a, b)).collect()
}

/// Per-image and mean scores of a set of reconstructions.
#[derive(Debug, Clone)]
pub struct Scores {
    /// PixCorr per image.
    pub pixcorr: Vec<f64>,
    /// SSIM per image.
    pub ssim: Vec<f64>,
    /// Two-way identification in pixel space, per image.
    pub two_way_pixel: Vec<f64>,
    /// Two-way identification in the latent space, per image (empty when not computed).
    pub two_way_latent: Vec<f64>,
    /// Columns in the feature spaces of judging networks ([`features::Judges`]), empty unless
    /// added: `(name, value per image)`.
    pub features: Vec<features::Column>,
}

/// Feature vectors of the originals and of the reconstructions, for identification.
pub type Latents<'a> = (&'a [Vec<f32>], &'a [Vec<f32>]);

/// The mean of a list (NaN when empty).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

impl Scores {
    /// Scores `recon` against `truth` (same order). `latents`: the encoder's latents of the
    /// truths and of the reconstructions, for latent-space identification.
    pub fn compute(truth: &[Rgb], recon: &[Rgb], latents: Option<Latents<'_>>) -> Result<Self> {
        if truth.len() != recon.len() {
            return Err(Error::Invalid(format!("{} images but {} reconstructions", truth.len(), recon.len())));
        }
        let t: Vec<Rgb> = truth.iter().map(|i| i.resized(EVAL_SIZE)).collect();
        let r: Vec<Rgb> = recon.iter().map(|i| i.resized(EVAL_SIZE)).collect();
        let pixcorr = t.iter().zip(&r).map(|(a, b)| pixcorr(a, b)).collect();
        let ssim = t.iter().zip(&r).map(|(a, b)| ssim(a, b)).collect();
        let tp: Vec<Vec<f32>> = t.into_iter().map(|i| i.data).collect();
        let rp: Vec<Vec<f32>> = r.into_iter().map(|i| i.data).collect();
        let two_way_pixel = two_way(&tp, &rp)?;
        let two_way_latent = match latents {
            Some((a, b)) => two_way(a, b)?,
            None => Vec::new(),
        };
        Ok(Scores { pixcorr, ssim, two_way_pixel, two_way_latent, features: Vec::new() })
    }
}

impl Scores {
    /// Every column: `(name, value per image, shown as a percentage)`, in table order.
    pub fn columns(&self) -> Vec<(&str, &[f64], bool)> {
        let mut c: Vec<(&str, &[f64], bool)> = vec![("PixCorr", &self.pixcorr, false), ("SSIM", &self.ssim, false), ("2-way pixel", &self.two_way_pixel, true)];
        if !self.two_way_latent.is_empty() {
            c.push(("2-way latent", &self.two_way_latent, true));
        }
        for (name, v) in &self.features {
            c.push((name.as_str(), v, !name.ends_with("distance")));
        }
        c
    }
}

/// A value as the tables print it: `0.412`, or `93.9%` with `pct` (`digits` after the point).
pub fn cell(v: f64, pct: bool, digits: usize) -> String {
    if pct {
        format!("{:.*}%", digits, 100.0 * v)
    } else {
        format!("{v:.3}")
    }
}

/// A Markdown table header for these columns: `| | A | B |` and the rule below it.
pub fn table_header(first: &str, s: &Scores) -> String {
    let cols = s.columns();
    let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
    format!("| {first} | {} |\n|{}", names.join(" | "), "---|".repeat(cols.len() + 1))
}

/// One table row of the mean of every column.
pub fn mean_row(label: &str, s: &Scores) -> String {
    let cells: Vec<String> = s.columns().iter().map(|(_, v, pct)| cell(mean(v), *pct, 1)).collect();
    format!("| {label} | {} |", cells.join(" | "))
}

/// What the feature columns mean, for the reports (empty without them).
pub fn feature_note(s: &Scores) -> &'static str {
    if s.features.is_empty() {
        ""
    } else {
        " Feature columns: two-way identification as Brain-Diffuser computes it (each reconstruction against its own and every other original, ties half) in a judging network's features (EffNet-Lite0: EfficientNet-Lite0, early = `_blocks.2`, late = pooled `_avg_pooling`; AlexNet(2)/(5) = `features.4`/`features.11`, MindEye's layers), images resized to 224 (EffNet-Lite0) or 256 (AlexNet); EffNet-Lite0 distance = 1 - correlation of the pooled features (lower is better, as MindEye's EffNet-B column)."
    }
}

/// A Markdown table of the mean scores and of each image's.
pub fn report(s: &Scores, names: &[String]) -> String {
    use std::fmt::Write as _;
    let mut r = String::new();
    let _ = writeln!(r, "# Reconstruction scores ({} images)\n", s.pixcorr.len());
    let _ = writeln!(r, "{}", table_header("", s));
    let _ = writeln!(r, "{}", mean_row("mean", s));
    for (k, name) in names.iter().enumerate() {
        let cells: Vec<String> = s.columns().iter().map(|(_, v, pct)| v.get(k).map_or("-".into(), |x| cell(*x, *pct, 0))).collect();
        let _ = writeln!(r, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(r, "\nPixCorr and SSIM at {EVAL_SIZE}x{EVAL_SIZE}; SSIM grayscale with Gaussian weights (sigma 1.5); two-way identification in pixels and TAESD latents: each original against its own and every other reconstruction; chance is 50%.{}", feature_note(s));
    r
}

/// Mean over samples and best of n, per image then averaged: `(mean, best)` of one metric,
/// where `per_sample[j][k]` is image `k`'s value for sample `j`; the best is the largest value,
/// or the smallest unless `higher_is_better` (a distance).
pub fn mean_and_best(per_sample: &[&[f64]], higher_is_better: bool) -> (f64, f64) {
    let n = per_sample.first().map_or(0, |s| s.len());
    let (mut mean_sum, mut best_sum) = (0.0, 0.0);
    for k in 0..n {
        let v: Vec<f64> = per_sample.iter().map(|s| s[k]).collect();
        mean_sum += v.iter().sum::<f64>() / v.len() as f64;
        best_sum += if higher_is_better { v.iter().copied().fold(f64::NEG_INFINITY, f64::max) } else { v.iter().copied().fold(f64::INFINITY, f64::min) };
    }
    (mean_sum / n.max(1) as f64, best_sum / n.max(1) as f64)
}

/// A Markdown table of the second stage's samples: for each metric the mean over the samples
/// and the best of the n samples (per image, then averaged over images), as Takagi & Nishimoto
/// report both.
pub fn report_samples(per_sample: &[Scores]) -> String {
    use std::fmt::Write as _;
    let n = per_sample.len();
    let mut r = String::new();
    let Some(first) = per_sample.first() else { return r };
    let _ = writeln!(r, "\n## Second stage: {n} sample(s) per image\n");
    let _ = writeln!(r, "{}", table_header("", first));
    let k = first.columns().len();
    let vals: Vec<(f64, f64, bool)> = (0..k)
        .map(|c| {
            let cols: Vec<&[f64]> = per_sample.iter().map(|s| s.columns()[c].1).collect();
            let (name, _, pct) = first.columns()[c];
            let (m, b) = mean_and_best(&cols, !name.ends_with("distance"));
            (m, b, pct)
        })
        .collect();
    let row = |best: bool| vals.iter().map(|&(m, b, pct)| cell(if best { b } else { m }, pct, 1)).collect::<Vec<_>>().join(" | ");
    let _ = writeln!(r, "| mean of the {n} samples | {} |", row(false));
    let _ = writeln!(r, "| best of {n} (per image) | {} |", row(true));
    let _ = writeln!(r, "\nEach sample is scored against the originals at the z-only reconstructions' size; identification of sample j compares the originals with the j-th samples of all images. \"Best of n\" takes each image's best sample for each metric separately (for a distance, the smallest); it is an upper bound that needs the original to choose, the mean is what a blind pick gives.");
    r
}
