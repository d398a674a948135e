//! `percept simulate`: a simulated subject seeing the shipped photos (augmented) and drawn
//! shapes and letters, saved into one folder (see [`crate::sim`]). The GPU is opened only when
//! the higher visual voxels' DNN term is on.

use std::path::Path;

use crate::error::Result;
use crate::io::output::{ensure_fresh_dir, lock};
use crate::progress::Progress;
use crate::sim::{self, Settings, Subject};

/// Simulates a subject with `settings` and saves it into `out`; refuses to write into a folder
/// that holds anything (an earlier subject, or the part an interrupted run wrote) unless
/// `force`. Holds the lock of `out` throughout (another run on `out` fails at once).
pub fn run(ctx: &super::Context, settings: &Settings, out: &Path, force: bool, progress: &dyn Progress) -> Result<Subject> {
    settings.dnn.check()?;
    let _lock = lock(out)?;
    let marker = out.join("settings.txt");
    if marker.exists() && !force {
        return Err(crate::Error::Exists(marker));
    }
    ensure_fresh_dir(out, force)?;
    let photos = sim::shipped_photos()?;
    let gpu = if settings.dnn.share > 0.0 { Some(ctx.gpu()?) } else { None };
    let subject = sim::simulate(settings, &photos, gpu, progress)?;
    progress.begin("saving", 0);
    subject.save(out, force, progress)?;
    progress.done();
    Ok(subject)
}
