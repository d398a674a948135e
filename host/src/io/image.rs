//! Images as f32 RGB in [0, 1], row-major (H, W, 3): what the VAEs take and give.

use std::path::Path;

use image::{imageops::FilterType, RgbImage};

use crate::error::{format, Result};

/// An RGB image in [0, 1]: `data (H, W, 3)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `(H, W, 3)` values in [0, 1].
    pub data: Vec<f32>,
}

impl Rgb {
    /// Reads a PNG or JPEG.
    pub fn open(path: &Path) -> Result<Self> {
        let img = image::open(path).map_err(format(path, "cannot read the image"))?;
        Ok(Self::from_image(&img.to_rgb8()))
    }

    /// Reads an image, crops the largest centred square and resizes it to `size` x `size`.
    pub fn open_square(path: &Path, size: usize) -> Result<Self> {
        let img = image::open(path).map_err(format(path, "cannot read the image"))?.to_rgb8();
        Ok(Self::from_image(&square(&img, size)))
    }

    /// From an 8-bit image.
    pub fn from_image(img: &RgbImage) -> Self {
        Rgb { height: img.height() as usize, width: img.width() as usize, data: img.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect() }
    }

    /// To an 8-bit image (values clamped to [0, 1], rounded).
    pub fn to_image(&self) -> RgbImage {
        let raw = self.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        RgbImage::from_raw(self.width as u32, self.height as u32, raw).expect("buffer matches the size")
    }

    /// Writes a PNG (atomically; refuses to replace a file unless `overwrite`).
    pub fn save_png(&self, path: &Path, overwrite: bool) -> Result<()> {
        let mut bytes = Vec::new();
        self.to_image()
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(format(path, "cannot encode PNG"))?;
        super::output::write_atomic(path, &bytes, overwrite)
    }

    /// Resized (bilinear) to `size` x `size`.
    pub fn resized(&self, size: usize) -> Rgb {
        if self.width == size && self.height == size {
            return self.clone();
        }
        Rgb::from_image(&image::imageops::resize(&self.to_image(), size as u32, size as u32, FilterType::Triangle))
    }

    /// Peak signal-to-noise ratio in dB against `other` (values in [0, 1], clamped).
    pub fn psnr(&self, other: &Rgb) -> f64 {
        let mse: f64 = self.data.iter().zip(&other.data).map(|(a, b)| ((a.clamp(0.0, 1.0) - b.clamp(0.0, 1.0)) as f64).powi(2)).sum::<f64>() / self.data.len() as f64;
        10.0 * (1.0 / mse.max(1e-12)).log10()
    }
}

/// The largest centred square of `img`, resized to `size` (Lanczos).
pub fn square(img: &RgbImage, size: usize) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = w.min(h);
    let cropped = image::imageops::crop_imm(img, (w - s) / 2, (h - s) / 2, s, s).to_image();
    if s as usize == size {
        cropped
    } else {
        image::imageops::resize(&cropped, size as u32, size as u32, FilterType::Lanczos3)
    }
}
