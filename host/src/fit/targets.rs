//! Targets from images: each image's TAESD latent (4, size/8, size/8), flattened in that order,
//! cached on disk so that a second fit does not encode again.

use std::path::{Path, PathBuf};


use crate::io::image::Rgb;
use crate::io::npy;
use crate::error::{io, Error, Result};
use crate::gpu::Gpu;
use crate::nn::taesd::Taesd;
use crate::progress::Progress;

/// FNV-1a, for cache keys (stable across builds, unlike std's hasher).
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A key that changes when the image file, the size or the encoder weights change.
fn cache_key(image: &Path, size: usize, weights: &Path) -> Result<String> {
    let h = file_key(&[image, &weights.join("taesd_encoder.safetensors")], &[size as u64])?;
    Ok(format!("taesd-{size}-{h}.npy"))
}

/// 16 hex digits that change when any of `files` (canonical path, length, mtime) or `extra` change.
pub fn file_key(files: &[&Path], extra: &[u64]) -> Result<String> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &p in files {
        let p = p.to_path_buf();
        let meta = std::fs::metadata(&p).map_err(io(&p))?;
        let canon = std::fs::canonicalize(&p).unwrap_or(p.clone());
        h = fnv(canon.to_string_lossy().as_bytes(), h);
        h = fnv(&meta.len().to_le_bytes(), h);
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        h = fnv(&mtime.to_le_bytes(), h);
    }
    for x in extra {
        h = fnv(&x.to_le_bytes(), h);
    }
    Ok(format!("{h:016x}"))
}

/// Latents of `images` at `size` x `size` (centre square): `(images, 4 * (size/8)^2)`.
/// Images already encoded at this size with these weights are read from `cache`.
pub fn encode_images(gpu: &Gpu, weights: &Path, images: &[PathBuf], size: usize, cache: &Path, bar: &dyn Progress) -> Result<Vec<f32>> {
    if !size.is_multiple_of(8) || size == 0 {
        return Err(Error::Invalid(format!("image size {size} is not a positive multiple of 8")));
    }
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let l = 4 * (size / 8) * (size / 8);
    let mut out = vec![0f32; images.len() * l];
    let mut todo = Vec::new();
    bar.set_len(images.len() as u64);
    for (i, img) in images.iter().enumerate() {
        let file = cache.join(cache_key(img, size, weights)?);
        match npy::read(&file) {
            Ok(a) if a.data.len() == l => {
                out[i * l..(i + 1) * l].copy_from_slice(&a.data);
                bar.inc(1);
            }
            _ => todo.push((i, file)),
        }
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let taesd = Taesd::load(gpu, weights, crate::nn::taesd::WEIGHTS)?;
    for batch in todo.chunks(crate::nn::taesd::BATCH) {
        let rgbs = batch.iter().map(|(i, _)| Rgb::open_square(&images[*i], size)).collect::<Result<Vec<_>>>()?;
        let z = taesd.encode_rgb(gpu, &rgbs.iter().collect::<Vec<_>>(), &crate::progress::Silent)?;
        for ((i, file), z) in batch.iter().zip(z.chunks(l)) {
            npy::write(file, &[4, size / 8, size / 8], z, true)?;
            out[i * l..(i + 1) * l].copy_from_slice(z);
        }
        bar.inc(batch.len() as u64);
    }
    Ok(out)
}

