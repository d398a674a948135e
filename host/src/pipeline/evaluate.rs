//! `percept eval`: scores the reconstructions of a `percept reconstruct` folder (its
//! `pairs.csv`) against the images seen, and writes `eval.md`.

use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{io, Error, Result};
use crate::eval::{report, Scores};
use crate::gpu::DType;
use crate::io::image::Rgb;
use crate::io::output::{ensure_writable, write_atomic};
use crate::nn::taesd::Taesd;
use crate::progress::{Progress, Silent};

/// What `eval` made.
#[derive(Debug)]
pub struct Outcome {
    /// The scores, in the order of pairs.csv.
    pub scores: Scores,
    /// The Markdown report (also in `eval.md`).
    pub report: String,
    /// Where the report went.
    pub path: PathBuf,
}

/// `(original, reconstruction)` paths listed in `dir/pairs.csv` (reconstructions relative to `dir`).
pub fn read_pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let path = dir.join("pairs.csv");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let bad = |line: u64, what: String| Error::Invalid(format!("{}:{line}: {what}", path.display()));
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let col = |name: &str| header.iter().position(|c| c == name).ok_or_else(|| bad(1, format!("no `{name}` column (written by `percept reconstruct --stimuli`)")));
    let (a, b) = (col("original")?, col("reconstruction")?);
    let mut pairs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        match (record.get(a).filter(|s| !s.is_empty()), record.get(b).filter(|s| !s.is_empty())) {
            (Some(o), Some(r)) => pairs.push((PathBuf::from(o), dir.join(r))),
            _ => return Err(bad(line, "expected an original and a reconstruction".into())),
        }
    }
    Ok(pairs)
}

/// Scores the folder `dir`; refuses to replace an earlier `eval.md` unless `force`.
pub fn run(ctx: &Context, dir: &Path, force: bool, progress: &dyn Progress) -> Result<Outcome> {
    let report_path = dir.join("eval.md");
    ensure_writable(&report_path, force)?;
    let pairs = read_pairs(dir)?;
    if pairs.len() < 2 {
        return Err(Error::Invalid(format!("{}: two-way identification needs at least 2 pairs, found {}", dir.join("pairs.csv").display(), pairs.len())));
    }
    let mut truth = Vec::new();
    let mut recon = Vec::new();
    let mut names = Vec::new();
    for (original, r) in &pairs {
        let img = Rgb::open(r)?;
        if img.width % 8 != 0 || img.height != img.width || img.width > 2048 {
            return Err(Error::Shape(format!("{}: reconstructions must be square with a side that is a multiple of 8 (at most 2048), got {}x{}", r.display(), img.width, img.height)));
        }
        truth.push(Rgb::open_square(original, img.width)?);
        recon.push(img);
        names.push(r.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
    }
    progress.begin("evaluating", 2);
    let gpu = ctx.gpu()?;
    let taesd = Taesd::load(gpu, &crate::paths::taesd(), DType::F32)?;
    let latents = |imgs: &[Rgb]| -> Result<Vec<Vec<f32>>> {
        let l = 4 * (imgs[0].width / 8) * (imgs[0].height / 8);
        let z = taesd.encode_rgb(gpu, &imgs.iter().collect::<Vec<_>>(), &Silent)?;
        progress.inc(1);
        Ok(z.chunks(l).map(<[f32]>::to_vec).collect())
    };
    let (lt, lr) = (latents(&truth)?, latents(&recon)?);
    let scores = Scores::compute(&truth, &recon, Some((&lt, &lr)))?;
    progress.done();
    let report = report(&scores, &names);
    write_atomic(&report_path, report.as_bytes(), force)?;
    Ok(Outcome { scores, report, path: report_path })
}
