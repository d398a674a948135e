//! Images as f32 RGB in [0, 1], row-major (H, W, 3): what the VAEs take and give.

use std::path::Path;

use image::{imageops::FilterType, RgbImage};

use crate::error::{format, io, Error, Result};

/// The largest width or height of an image read (larger ones are refused before decoding).
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// The largest side images are resized to.
pub const MAX_SIDE: usize = 4096;
/// The most bytes a decoder may allocate for one image.
const MAX_ALLOC: u64 = 512 << 20;

/// Reads a PNG or JPEG as 8-bit RGB. The header's size is checked against
/// [`MAX_IMAGE_SIDE`] and the decoder's allocations are bounded before any pixel is decoded;
/// a truncated or corrupt file is an error naming it (never a partly grey image).
pub fn open_rgb8(path: &Path) -> Result<RgbImage> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        return Err(Error::Invalid(format!("{}: is a directory, not an image", path.display())));
    }
    if meta.len() > MAX_ALLOC {
        return Err(Error::Invalid(format!("{}: {} bytes; images of more than {MAX_ALLOC} bytes are refused", path.display(), meta.len())));
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format().map_err(io(path))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_complete(&bytes) {
        return Err(Error::Invalid(format!("{}: truncated JPEG (no end-of-image marker after the last scan)", path.display())));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    // zune-jpeg 0.5.15 (the JPEG decoder under `image`) panics on some malformed progressive
    // JPEGs (an assertion in its AVX2 upsampler; tests/fixtures/hostile has one, found by the
    // fuzzing smoke run): such a file is an error like any other unreadable image.
    let img = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()))
        .map_err(|_| Error::Invalid(format!("{}: cannot read the image: its decoder failed on malformed data", path.display())))?
        .map_err(format(path, "cannot read the image"))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::Invalid(format!("{}: image of {}x{} pixels is empty", path.display(), img.width(), img.height())));
    }
    Ok(img.to_rgb8())
}

/// Whether a panic comes from the JPEG decoder, whose panics [`open_rgb8`] catches and reports
/// as an error naming the file: a panic hook may stay silent for these (the CLI's does, and the
/// image fuzz target's, whose default hook would otherwise abort).
pub fn is_caught_decoder_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location().is_some_and(|l| l.file().contains("zune-jpeg"))
}

/// Whether a JPEG's last scan is followed by its end-of-image marker (FF D9). The JPEG
/// decoder fills a truncated scan with grey and reports no error; inside entropy-coded data
/// 0xFF is always followed by 0x00 or a restart marker, so the last start-of-scan (FF DA)
/// is the real one and an EOI after it means the data are complete.
pub fn jpeg_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_sos.is_some_and(|s| bytes[s..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

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
        Ok(Self::from_image(&open_rgb8(path)?))
    }

    /// Reads an image, crops the largest centred square and resizes it to `size` x `size`.
    /// `size` must be a positive multiple of 8 and at most [`MAX_SIDE`].
    pub fn open_square(path: &Path, size: usize) -> Result<Self> {
        if size == 0 || size > MAX_SIDE {
            return Err(Error::Invalid(format!("{}: cannot resize to {size}x{size}: the side must be between 1 and {MAX_SIDE}", path.display())));
        }
        let img = open_rgb8(path)?;
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

    /// Its largest centred square resized to `size` x `size` ([`square`], as
    /// [`Rgb::open_square`]); itself when it already is `size` x `size`.
    pub fn squared(&self, size: usize) -> Rgb {
        if self.width == size && self.height == size {
            return self.clone();
        }
        Rgb::from_image(&square(&self.to_image(), size))
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
