//! numpy `.npy` arrays of f32 (little-endian, C order), with shapes.

use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{io, Error, Result};

/// An f32 array and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f32>,
}

/// Reads an `.npy` file of f32 (f64 and f16 are converted), C order.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| Error::Invalid(format!("{}: not a .npy file: {e}", path.display())))?;
    if npy.order() != npyz::Order::C {
        return Err(Error::Invalid(format!("{}: Fortran-order arrays are not supported; save with np.ascontiguousarray", path.display())));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype();
    let bad = |e: std::io::Error| Error::Invalid(format!("{}: {e}", path.display()));
    let descr = dtype.descr();
    let data: Vec<f32> = match descr.trim_matches('\'') {
        "<f4" => npy.into_vec::<f32>().map_err(bad)?,
        "<f8" => npy.into_vec::<f64>().map_err(bad)?.into_iter().map(|v| v as f32).collect(),
        other => return Err(Error::Invalid(format!("{}: dtype {other}; expected float32 (<f4) or float64 (<f8)", path.display()))),
    };
    if data.len() != shape.iter().product::<usize>() {
        return Err(Error::Invalid(format!("{}: truncated: shape {shape:?} but {} values", path.display(), data.len())));
    }
    Ok(Array { shape, data })
}

/// Writes `data` with `shape` as an f32 `.npy` (atomically; refuses to replace a file unless
/// `overwrite`).
pub fn write(path: &Path, shape: &[usize], data: &[f32], overwrite: bool) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::Shape(format!("{}: shape {shape:?} does not hold {} values", path.display(), data.len())));
    }
    let mut bytes = Vec::new();
    {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
            .writer(&mut bytes)
            .begin_nd()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        w.extend(data.iter().copied()).map_err(|e| Error::Invalid(e.to_string()))?;
        w.finish().map_err(|e| Error::Invalid(e.to_string()))?;
    }
    crate::io::output::write_atomic(path, &bytes, overwrite)
}

/// A latent: a (C, h, w) or (1, C, h, w) .npy with finite values: `(data, [C, h, w])`.
pub fn read_latent(path: &Path) -> Result<(Vec<f32>, [usize; 3])> {
    let a = read(path)?;
    let shape = match a.shape[..] {
        [c, h, w] | [1, c, h, w] => [c, h, w],
        _ => return Err(Error::Shape(format!("{}: shape {:?}; expected (C, h, w) or (1, C, h, w)", path.display(), a.shape))),
    };
    ensure_finite(path, &a.data)?;
    Ok((a.data, shape))
}

/// A context (conditioning) of `d` features per token: a (S, d) or (1, S, d) .npy with finite
/// values.
pub fn read_context(path: &Path, d: usize) -> Result<Vec<f32>> {
    let a = read(path)?;
    if !matches!(a.shape[..], [_, dd] | [1, _, dd] if dd == d) {
        return Err(Error::Shape(format!("{}: shape {:?}; expected (S, {d}) or (1, S, {d})", path.display(), a.shape)));
    }
    ensure_finite(path, &a.data)?;
    Ok(a.data)
}

/// Fails naming the first value of `data` (read from `path`) that is NaN or infinite.
pub fn ensure_finite(path: &Path, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::Invalid(format!("{}: value {} at flat index {i} is not finite", path.display(), data[i]))),
        None => Ok(()),
    }
}

/// `(N, H, W, C) -> (N, C, H, W)` (GPU layout to numpy/diffusers layout).
pub fn nhwc_to_nchw(x: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for i in 0..h * w {
            for k in 0..c {
                y[(b * c + k) * h * w + i] = x[(b * h * w + i) * c + k];
            }
        }
    }
    y
}

/// `(N, C, H, W) -> (N, H, W, C)`.
pub fn nchw_to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for k in 0..c {
            for i in 0..h * w {
                y[(b * h * w + i) * c + k] = x[(b * c + k) * h * w + i];
            }
        }
    }
    y
}
