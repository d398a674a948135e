//! Voxel responses, from a (trials, voxels) .npy or from NIfTI volumes under a mask: the two
//! forms every command that reads brain data accepts.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the voxels come from.
#[derive(Debug, Clone)]
pub enum VoxelSource {
    /// A (trials, voxels) float .npy.
    Npy(PathBuf),
    /// NIfTI volumes (one 4D run, or one 3D file per trial, in order) and a region mask.
    Nifti {
        /// The volumes.
        files: Vec<PathBuf>,
        /// Non-zero voxels of the mask are used.
        mask: PathBuf,
    },
}

/// Voxel responses, row-major `(trials, voxels)`.
#[derive(Debug, Clone)]
pub struct Voxels {
    /// `(trials, voxels)` values.
    pub data: Vec<f32>,
    /// Rows.
    pub trials: usize,
    /// Columns.
    pub voxels: usize,
    /// Where they came from, for messages and reports.
    pub source: String,
}

impl VoxelSource {
    /// Reads the voxels.
    pub fn load(&self) -> Result<Voxels> {
        match self {
            VoxelSource::Npy(p) => {
                let arr = super::npy::read(p)?;
                let [trials, voxels] = arr.shape[..] else {
                    return Err(Error::Invalid(format!("{}: voxels must be (trials, voxels), got shape {:?}", p.display(), arr.shape)));
                };
                if trials == 0 || voxels == 0 {
                    return Err(Error::Invalid(format!("{}: voxels of shape {:?}: {} is 0", p.display(), arr.shape, if trials == 0 { "trials (dimension 0)" } else { "voxels (dimension 1)" })));
                }
                ensure_finite(p, &arr.data, voxels)?;
                Ok(Voxels { data: arr.data, trials, voxels, source: p.display().to_string() })
            }
            VoxelSource::Nifti { files, mask } => {
                let (data, trials, voxels) = super::nifti::load_masked(files, mask)?;
                Ok(Voxels { data, trials, voxels, source: format!("{} NIfTI file(s) masked by {}", files.len(), mask.display()) })
            }
        }
    }
}

/// Fails naming the file, the trial and the voxel of the first value of `data (trials,
/// voxels)` that is NaN or infinite.
pub(crate) fn ensure_finite(path: &Path, data: &[f32], voxels: usize) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::Invalid(format!("{}: voxel {} of trial {} is {} (not finite)", path.display(), i % voxels.max(1), i / voxels.max(1), data[i]))),
        None => Ok(()),
    }
}

impl Voxels {
    /// Checks that `rows` rows were given for each trial of these voxels (`what` names them).
    pub fn ensure_trials(&self, path: &Path, rows: usize, what: &str) -> Result<()> {
        if rows == self.trials {
            Ok(())
        } else {
            Err(Error::Invalid(format!("{}: {rows} {what} but {} trials of voxels ({})", path.display(), self.trials, self.source)))
        }
    }
}
