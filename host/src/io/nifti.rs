//! NIfTI volumes (.nii, .nii.gz) and region-of-interest masks, as the Natural Scenes Dataset
//! ships its single-trial betas: one 4D file of trials, or one 3D file per trial.
//! Voxels of a mask are taken in the file's memory order (x fastest, then y, then z), so the
//! voxels of one slice are contiguous, as streaming decoding wants them.

use std::path::Path;

use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};

use crate::error::{format, Error, Result};

type Volume = ndarray::ArrayD<f32>;

/// The most values a volume may declare (its data are allocated as f32 after reading).
pub const MAX_VALUES: u64 = 1 << 31;

/// Reads and checks the header before any volume is read: the datatype is one percept reads
/// (integers and floats, not complex or RGB), `dim[0]` is 1 to 7 and the used `dim[i]` are
/// positive, the declared size is at most [`MAX_VALUES`] and, for an uncompressed `.nii`,
/// fits in the file. Returns the dimensions.
pub fn check_header(path: &Path) -> Result<Vec<usize>> {
    let bad = |what: String| Error::Invalid(format!("{}: {what}", path.display()));
    let meta = std::fs::metadata(path).map_err(crate::error::io(path))?;
    if meta.is_dir() {
        return Err(bad("is a directory, not a NIfTI file".into()));
    }
    let h = NiftiHeader::from_file(path).map_err(format(path, "cannot read the NIfTI header"))?;
    let dt = h.data_type().map_err(|_| bad(format!("datatype code {} is not a NIfTI datatype", h.datatype)))?;
    let size = match dt {
        NiftiType::Uint8 | NiftiType::Int8 => 1,
        NiftiType::Int16 | NiftiType::Uint16 => 2,
        NiftiType::Int32 | NiftiType::Uint32 | NiftiType::Float32 => 4,
        NiftiType::Int64 | NiftiType::Uint64 | NiftiType::Float64 => 8,
        other => return Err(bad(format!("datatype {other:?} (code {}) is not supported; integer or float volumes are", h.datatype))),
    };
    // nifti-rs sizes the data by bitpix: one that disagrees with the datatype makes it panic.
    if i32::from(h.bitpix) != 8 * size as i32 {
        return Err(bad(format!("header field bitpix = {} does not match datatype {dt:?} ({} bits per value)", h.bitpix, 8 * size)));
    }
    let n = usize::from(h.dim[0]);
    if n == 0 || n > 7 {
        return Err(bad(format!("header field dim[0] = {n}: the number of dimensions must be 1 to 7")));
    }
    if let Some(i) = (1..=n).find(|&i| h.dim[i] == 0) {
        return Err(bad(format!("header field dim[{i}] is 0 (dim = {:?}); every used dimension must be positive", &h.dim[..=n])));
    }
    let dims: Vec<usize> = h.dim[1..=n].iter().map(|&d| usize::from(d)).collect();
    let values = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
    if values > MAX_VALUES {
        return Err(bad(format!("header declares {dims:?} = {values} values; more than {MAX_VALUES} are refused")));
    }
    let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let single = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("nii"));
    if single && !gz {
        let need = (h.vox_offset.max(352.0) as u64).saturating_add(values * size);
        if need > meta.len() {
            return Err(bad(format!("header declares {dims:?} {dt:?} values from byte {}: {need} bytes, but the file has {}", h.vox_offset, meta.len())));
        }
    }
    Ok(dims)
}

fn read(path: &Path) -> Result<Volume> {
    check_header(path)?;
    let obj = ReaderOptions::new().read_file(path).map_err(format(path, "cannot read NIfTI"))?;
    obj.into_volume().into_ndarray::<f32>().map_err(format(path, "cannot read NIfTI data"))
}

/// The (x, y, z) coordinates of the mask's non-zero voxels, in memory order.
pub fn mask_coords(path: &Path) -> Result<(Vec<[usize; 3]>, [usize; 3])> {
    let m = read(path)?;
    let shape = m.shape().to_vec();
    let spatial = match shape[..] {
        [x, y, z] | [x, y, z, 1] => [x, y, z],
        _ => return Err(Error::Invalid(format!("{}: a mask must be a 3D volume, got shape {shape:?}", path.display()))),
    };
    let mut coords = Vec::new();
    for z in 0..spatial[2] {
        for y in 0..spatial[1] {
            for x in 0..spatial[0] {
                let v = if shape.len() == 3 { m[[x, y, z]] } else { m[[x, y, z, 0]] };
                if v != 0.0 && !v.is_nan() {
                    coords.push([x, y, z]);
                }
            }
        }
    }
    if coords.is_empty() {
        return Err(Error::Invalid(format!("{}: the mask selects no voxel", path.display())));
    }
    Ok((coords, spatial))
}

/// Reads the masked voxels of every trial: each file is one 3D trial or a 4D run of trials.
/// Returns `(trials x voxels row-major, trials, voxels)`.
pub fn load_masked(files: &[impl AsRef<Path>], mask: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let (coords, spatial) = mask_coords(mask)?;
    let mut data = Vec::new();
    let mut trials = 0;
    for f in files {
        let f = f.as_ref();
        let vol = read(f)?;
        let shape = vol.shape().to_vec();
        let t = match shape.len() {
            3 => 1,
            4 => shape[3],
            _ => return Err(Error::Invalid(format!("{}: expected a 3D or 4D volume, got shape {shape:?}", f.display()))),
        };
        if shape[..3] != spatial[..] {
            return Err(Error::Invalid(format!("{}: volume is {:?} but the mask {} is {spatial:?}", f.display(), &shape[..3], mask.display())));
        }
        for k in 0..t {
            for (j, &[x, y, z]) in coords.iter().enumerate() {
                let v = if shape.len() == 3 { vol[[x, y, z]] } else { vol[[x, y, z, k]] };
                if !v.is_finite() {
                    return Err(Error::Invalid(format!("{}: voxel ({x}, {y}, {z}) (voxel {j} of the mask) of trial {k} is {v} (not finite)", f.display())));
                }
                data.push(v);
            }
        }
        trials += t;
    }
    Ok((data, trials, coords.len()))
}

/// The volume a simulated run is laid out in: voxel `i` sits at `(i % 32, (i / 32) % 32,
/// i / 1024)`, so that [`load_masked`] returns the voxels in their original order.
fn layout(voxels: usize) -> [usize; 3] {
    [32, 32, voxels.div_ceil(1024).max(1)]
}

fn write(path: &Path, array: &ndarray::ArrayD<f32>) -> Result<()> {
    nifti::writer::WriterOptions::new(path).write_nifti(array).map_err(format(path, "cannot write NIfTI"))
}

/// Writes `x (trials, voxels)` as one 4D run (see `layout`).
pub fn write_run(path: &Path, x: &[f32], trials: usize, voxels: usize) -> Result<()> {
    let [a, b, c] = layout(voxels);
    let mut vol = ndarray::ArrayD::<f32>::zeros(vec![a, b, c, trials]);
    for t in 0..trials {
        for i in 0..voxels {
            vol[[i % a, (i / a) % b, i / (a * b), t]] = x[t * voxels + i];
        }
    }
    write(path, &vol)
}

/// Writes a 3D mask that selects voxels `range` of a run written by [`write_run`].
pub fn write_mask(path: &Path, voxels: usize, range: std::ops::Range<usize>) -> Result<()> {
    let [a, b, c] = layout(voxels);
    let mut vol = ndarray::ArrayD::<f32>::zeros(vec![a, b, c]);
    for i in range {
        vol[[i % a, (i / a) % b, i / (a * b)]] = 1.0;
    }
    write(path, &vol)
}
