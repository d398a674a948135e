//! NIfTI volumes (.nii, .nii.gz) and region-of-interest masks, as the Natural Scenes Dataset
//! ships its single-trial betas: one 4D file of trials, or one 3D file per trial.
//! Voxels of a mask are taken in the file's memory order (x fastest, then y, then z), so the
//! voxels of one slice are contiguous, as streaming decoding wants them.

use std::path::Path;

use nifti::{IntoNdArray, NiftiObject, ReaderOptions};

use crate::error::{format, Error, Result};

type Volume = ndarray::ArrayD<f32>;

fn read(path: &Path) -> Result<Volume> {
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
            for &[x, y, z] in &coords {
                data.push(if shape.len() == 3 { vol[[x, y, z]] } else { vol[[x, y, z, k]] });
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
