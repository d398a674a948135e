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
        Ok(Scores { pixcorr, ssim, two_way_pixel, two_way_latent })
    }
}

/// A Markdown table of the mean scores and of each image's.
pub fn report(s: &Scores, names: &[String]) -> String {
    use std::fmt::Write as _;
    let mut r = String::new();
    let _ = writeln!(r, "# Reconstruction scores ({} images)\n", s.pixcorr.len());
    let _ = writeln!(r, "| | PixCorr | SSIM | 2-way pixel | 2-way latent |\n|---|---|---|---|---|");
    let _ = writeln!(r, "| mean | {:.3} | {:.3} | {:.1}% | {:.1}% |", mean(&s.pixcorr), mean(&s.ssim), 100.0 * mean(&s.two_way_pixel), 100.0 * mean(&s.two_way_latent));
    for (k, name) in names.iter().enumerate() {
        let lat = s.two_way_latent.get(k).map_or("-".to_string(), |v| format!("{:.0}%", 100.0 * v));
        let _ = writeln!(r, "| {name} | {:.3} | {:.3} | {:.0}% | {lat} |", s.pixcorr[k], s.ssim[k], 100.0 * s.two_way_pixel[k]);
    }
    let _ = writeln!(r, "\nPixCorr and SSIM at {EVAL_SIZE}x{EVAL_SIZE}; SSIM grayscale with Gaussian weights (sigma 1.5); two-way identification: chance is 50%.");
    r
}

/// Mean over samples and best of n, per image then averaged: `(mean, best)` of one metric,
/// where `per_sample[j][k]` is image `k`'s value for sample `j`.
pub fn mean_and_best(per_sample: &[&[f64]]) -> (f64, f64) {
    let n = per_sample.first().map_or(0, |s| s.len());
    let (mut mean_sum, mut best_sum) = (0.0, 0.0);
    for k in 0..n {
        let v: Vec<f64> = per_sample.iter().map(|s| s[k]).collect();
        mean_sum += v.iter().sum::<f64>() / v.len() as f64;
        best_sum += v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
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
    let _ = writeln!(r, "\n## Second stage: {n} sample(s) per image\n");
    let _ = writeln!(r, "| | PixCorr | SSIM | 2-way pixel | 2-way latent |\n|---|---|---|---|---|");
    let cols: [fn(&Scores) -> &[f64]; 4] = [|s| &s.pixcorr, |s| &s.ssim, |s| &s.two_way_pixel, |s| &s.two_way_latent];
    let vals: Vec<(f64, f64)> = cols.iter().map(|f| mean_and_best(&per_sample.iter().map(f).collect::<Vec<_>>())).collect();
    let _ = writeln!(r, "| mean of the {n} samples | {:.3} | {:.3} | {:.1}% | {:.1}% |", vals[0].0, vals[1].0, 100.0 * vals[2].0, 100.0 * vals[3].0);
    let _ = writeln!(r, "| best of {n} (per image) | {:.3} | {:.3} | {:.1}% | {:.1}% |", vals[0].1, vals[1].1, 100.0 * vals[2].1, 100.0 * vals[3].1);
    let _ = writeln!(r, "\nEach sample is scored against the originals at the z-only reconstructions' size; identification of sample j compares the originals with the j-th samples of all images. \"Best of n\" takes each image's best sample for each metric separately (an upper bound that needs the original to choose; the mean is what a blind pick gives).");
    r
}
