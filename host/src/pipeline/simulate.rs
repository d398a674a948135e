//! `percept simulate`: a simulated subject seeing the shipped photos (augmented) and drawn
//! shapes and letters, saved into one folder (see [`crate::sim`]).

use std::path::Path;

use crate::error::Result;
use crate::progress::Progress;
use crate::sim::{self, Settings, Subject};

/// Simulates a subject with `settings` and saves it into `out`; refuses to replace an
/// earlier subject unless `force`.
pub fn run(settings: &Settings, out: &Path, force: bool, progress: &dyn Progress) -> Result<Subject> {
    let marker = out.join("settings.txt");
    if marker.exists() && !force {
        return Err(crate::Error::Exists(marker));
    }
    let photos = sim::shipped_photos()?;
    let subject = sim::simulate(settings, &photos, progress)?;
    progress.begin("saving", 0);
    subject.save(out, force, progress)?;
    progress.done();
    Ok(subject)
}
