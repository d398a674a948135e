//! `percept fit`: voxels and targets (an array, or the TAESD latents of the images a stimulus
//! list names) -> a decoder file in percept-core's format, with a report beside it.

use std::path::PathBuf;
use std::time::Instant;

use percept_core::Target;

use super::Context;
use crate::error::{Error, Result};
use crate::fit::{fit, report, FitSpec, Fitted, RidgeOptions};
use crate::io::output::{ensure_writable, lock, write_all_atomic};
use crate::io::voxels::VoxelSource;
use crate::io::{npy, stimuli};
use crate::progress::Progress;

/// Where the targets come from.
#[derive(Debug, Clone)]
pub enum Targets {
    /// A (trials, ...) float .npy, e.g. caption embeddings (N, 77, 768).
    Array(PathBuf),
    /// The images of a stimulus list (one row per trial), encoded with TAESD at `size`.
    Images {
        /// The stimulus list.
        list: PathBuf,
        /// Image side: 320 gives 4x40x40 (Takagi & Nishimoto).
        size: usize,
        /// TAESD weights folder.
        weights: PathBuf,
        /// Folder for cached latents.
        cache: PathBuf,
    },
}

/// What `fit` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The voxels.
    pub voxels: VoxelSource,
    /// The targets.
    pub targets: Targets,
    /// Region of interest, stored in the decoder.
    pub region: String,
    /// z or c.
    pub target: Target,
    /// Ridge settings.
    pub ridge: RidgeOptions,
    /// Export a low-rank decoder of this rank.
    pub rank: Option<usize>,
    /// The decoder file; the report goes to `<out>.md`.
    pub out: PathBuf,
    /// Replace existing outputs.
    pub force: bool,
}

/// What `fit` made.
#[derive(Debug)]
pub struct Outcome {
    /// The fit.
    pub fitted: Fitted,
    /// The Markdown report.
    pub report: String,
    /// The decoder file and the report.
    pub written: [PathBuf; 2],
}

/// Reads `(targets (n, L), shape of one target)` for `n` trials of `voxels`.
fn load_targets(ctx: &Context, t: &Targets, vox: &crate::io::voxels::Voxels, progress: &dyn Progress) -> Result<(Vec<f32>, Vec<usize>)> {
    let n = vox.trials;
    match t {
        Targets::Array(p) => {
            let arr = npy::read(p)?;
            if arr.shape.len() < 2 || arr.shape[1..].contains(&0) {
                return Err(Error::Shape(format!("{}: targets must be (trials, ...) with no dimension 0, got shape {:?}", p.display(), arr.shape)));
            }
            vox.ensure_trials(p, arr.shape[0], "rows of targets")?;
            Ok((arr.data, arr.shape[1..].to_vec()))
        }
        Targets::Images { list, size, weights, cache } => {
            let trials = stimuli::read(list)?;
            vox.ensure_trials(list, trials.len(), "trials listed")?;
            let (images, rows) = stimuli::repeats(&trials);
            progress.begin("encoding", images.len() as u64);
            let per_image = crate::fit::targets::encode_images(ctx.gpu()?, weights, &images, *size, cache, progress)?;
            progress.done();
            let l = per_image.len() / images.len().max(1);
            let mut y = vec![0f32; n * l];
            for (k, rs) in rows.iter().enumerate() {
                for &r in rs {
                    y[r * l..(r + 1) * l].copy_from_slice(&per_image[k * l..(k + 1) * l]);
                }
            }
            Ok((y, vec![4, size / 8, size / 8]))
        }
    }
}

/// Runs the job.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    let report_path = o.out.with_extension("md");
    if report_path == o.out {
        return Err(Error::Invalid(format!("{}: the decoder file needs another extension than .md (its report is written to <out>.md)", o.out.display())));
    }
    // The decoder and its report are one unit: written together under the lock of the
    // decoder's name, so that two runs never leave the decoder of one and the report of the other.
    let _lock = lock(&o.out)?;
    ensure_writable(&o.out, o.force)?;
    ensure_writable(&report_path, o.force)?;
    let vox = o.voxels.load()?;
    let (targets, shape) = load_targets(ctx, &o.targets, &vox, progress)?;
    let spec = FitSpec { region: o.region.clone(), target: o.target, target_shape: shape, ridge: o.ridge.clone(), rank: o.rank };
    progress.begin("fitting", 0);
    let t0 = Instant::now();
    let fitted = fit(&vox.data, vox.trials, vox.voxels, &targets, &spec, progress)?;
    progress.done();
    let report = report(&fitted, &spec, vox.trials, vox.voxels, &vox.source, t0.elapsed().as_secs_f64());
    let bytes = fitted.file.to_bytes()?;
    write_all_atomic(&[(&o.out, &bytes), (&report_path, report.as_bytes())], o.force)?;
    Ok(Outcome { fitted, report, written: [o.out.clone(), report_path] })
}
