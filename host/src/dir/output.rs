//! The reconstruction's pixels as the lab's code makes them (DeepImageReconstruction's
//! `normalise_img(clip_extreme_value(img, pct=0.04))`): the values below the 0.02th and above
//! the 99.98th percentile of the image (all channels together, numpy's linear interpolation)
//! are clipped, then the image is shifted to a minimum of 0 and scaled to a maximum of 255, and
//! truncated to 8 bits (`np.uint8`). Each image on its own.

use crate::io::image::Rgb;

/// Share of the pixel values clipped at each end, in percent (theirs: 0.02).
pub const CLIP_PERCENT: f32 = 0.02;

/// The `q`-th percentile (0-100) of `sorted`, linear between the nearest ranks (numpy's default).
pub fn percentile(sorted: &[f32], q: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = (q.clamp(0.0, 100.0) / 100.0) as f64 * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(sorted.len() - 1);
    (sorted[lo] as f64 + frac * (sorted[hi] as f64 - sorted[lo] as f64)) as f32
}

/// One image's values (any layout, any range) to 0-255: clipped at `percent` at each end, then
/// min-max rescaled and truncated. A constant image becomes 0. Non-finite values count as the
/// extremes they are (NaN as the low end).
pub fn to_pixels(img: &[f32], percent: f32) -> Vec<u8> {
    let clean: Vec<f32> = img.iter().map(|&v| if v.is_nan() { f32::MIN } else { v.clamp(f32::MIN, f32::MAX) }).collect();
    let mut sorted = clean.clone();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = (percentile(&sorted, percent), percentile(&sorted, 100.0 - percent));
    let clipped: Vec<f64> = clean.iter().map(|&v| f64::from(v.clamp(lo, hi))).collect();
    let min = clipped.iter().copied().fold(f64::INFINITY, f64::min);
    let max = clipped.iter().map(|v| v - min).fold(0.0, f64::max);
    clipped.iter().map(|v| if max > 0.0 { ((v - min) * (255.0 / max)) as u8 } else { 0 }).collect()
}

/// One `(side, side, 3)` image through [`to_pixels`] with the lab's [`CLIP_PERCENT`], as an
/// [`Rgb`] (values k/255).
pub fn to_rgb(img: &[f32], side: usize) -> Rgb {
    Rgb { height: side, width: side, data: to_pixels(img, CLIP_PERCENT).into_iter().map(|v| f32::from(v) / 255.0).collect() }
}
