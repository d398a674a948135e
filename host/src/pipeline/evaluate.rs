//! `percept eval`: scores the reconstructions of a `percept reconstruct` folder (its
//! `pairs.csv`) against the images seen, and writes `eval.md`.

use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{io, Error, Result};
use crate::eval::features::Judges;
use crate::eval::{report, Scores};
use crate::io::image::Rgb;
use crate::io::output::{ensure_writable, write_atomic};
use crate::nn::taesd::Taesd;
use crate::progress::{Progress, Silent};

/// What `eval` made.
#[derive(Debug)]
pub struct Outcome {
    /// The scores, in the order of pairs.csv.
    pub scores: Scores,
    /// With a second stage (pairs.csv's `samples`): the scores of each sample index.
    pub samples: Vec<Scores>,
    /// The Markdown report (also in `eval.md`).
    pub report: String,
    /// Where the report went.
    pub path: PathBuf,
}

/// One row of `pairs.csv`: the original, the (z-only) reconstruction and the second stage's
/// samples (reconstructions relative to the folder).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The image seen.
    pub original: PathBuf,
    /// Its reconstruction.
    pub reconstruction: PathBuf,
    /// The second stage's images for it (may be empty).
    pub samples: Vec<PathBuf>,
}

/// The rows of `dir/pairs.csv`.
pub fn read_pairs(dir: &Path) -> Result<Vec<Pair>> {
    let path = dir.join("pairs.csv");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let bad = |line: u64, what: String| Error::Invalid(format!("{}:{line}: {what}", path.display()));
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let col = |name: &str| header.iter().position(|c| c == name).ok_or_else(|| bad(1, format!("no `{name}` column (written by `percept reconstruct --stimuli`)")));
    let (a, b) = (col("original")?, col("reconstruction")?);
    let c = header.iter().position(|c| c == "samples");
    let mut pairs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        match (record.get(a).filter(|s| !s.is_empty()), record.get(b).filter(|s| !s.is_empty())) {
            (Some(o), Some(r)) => {
                let samples = c.and_then(|c| record.get(c)).map(|s| s.split('|').filter(|x| !x.is_empty()).map(|x| dir.join(x)).collect()).unwrap_or_default();
                pairs.push(Pair { original: PathBuf::from(o), reconstruction: dir.join(r), samples });
            }
            _ => return Err(bad(line, "expected an original and a reconstruction".into())),
        }
    }
    Ok(pairs)
}

/// What `eval` does.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// torchvision's AlexNet as safetensors (scripts/convert_torchvision.py), for the
    /// AlexNet(2)/(5) columns.
    pub alexnet: Option<PathBuf>,
    /// Leave out the feature-network columns (EffNet-Lite0, AlexNet).
    pub no_features: bool,
}

/// Scores the folder `dir`; refuses to replace an earlier `eval.md` unless `force`.
pub fn run(ctx: &Context, dir: &Path, force: bool, progress: &dyn Progress) -> Result<Outcome> {
    run_with(ctx, dir, force, &Options::default(), progress)
}

/// [`run`] with the judging networks chosen.
pub fn run_with(ctx: &Context, dir: &Path, force: bool, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    let report_path = dir.join("eval.md");
    ensure_writable(&report_path, force)?;
    let pairs = read_pairs(dir)?;
    if pairs.len() < 2 {
        return Err(Error::Invalid(format!("{}: two-way identification needs at least 2 pairs, found {}", dir.join("pairs.csv").display(), pairs.len())));
    }
    let n_samples = pairs[0].samples.len();
    if let Some(p) = pairs.iter().find(|p| p.samples.len() != n_samples) {
        return Err(Error::Invalid(format!("{}: {} has {} samples, the first row {n_samples}", dir.join("pairs.csv").display(), p.reconstruction.display(), p.samples.len())));
    }
    let open = |r: &Path| -> Result<Rgb> {
        let img = Rgb::open(r)?;
        if !img.width.is_multiple_of(8) || img.height != img.width || img.width > 2048 {
            return Err(Error::Shape(format!("{}: reconstructions must be square with a side that is a multiple of 8 (at most 2048), got {}x{}", r.display(), img.width, img.height)));
        }
        Ok(img)
    };
    let mut truth = Vec::new();
    let mut recon = Vec::new();
    let mut names = Vec::new();
    let mut samples: Vec<Vec<Rgb>> = vec![Vec::new(); n_samples];
    for p in &pairs {
        let img = open(&p.reconstruction)?;
        truth.push(Rgb::open_square(&p.original, img.width)?);
        names.push(p.reconstruction.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
        for (j, s) in p.samples.iter().enumerate() {
            // Samples are scored at the z-only reconstructions' size, against the same originals.
            samples[j].push(open(s)?.resized(img.width));
        }
        recon.push(img);
    }
    progress.begin("evaluating", 3 + 2 * n_samples as u64);
    let gpu = ctx.gpu()?;
    let taesd = Taesd::load(gpu, &crate::paths::taesd(), crate::nn::taesd::WEIGHTS)?;
    let latents = |imgs: &[Rgb]| -> Result<Vec<Vec<f32>>> {
        let l = 4 * (imgs[0].width / 8) * (imgs[0].height / 8);
        let z = taesd.encode_rgb(gpu, &imgs.iter().collect::<Vec<_>>(), &Silent)?;
        progress.inc(1);
        Ok(z.chunks(l).map(<[f32]>::to_vec).collect())
    };
    let (lt, lr) = (latents(&truth)?, latents(&recon)?);
    let judges = if o.no_features { None } else { Some(Judges::load(gpu, &crate::paths::shipped("weights/efficientnet-lite0"), o.alexnet.as_deref())?) };
    let score = |imgs: &[Rgb], l: &[Vec<f32>]| -> Result<Scores> {
        let mut s = Scores::compute(&truth, imgs, Some((&lt, l)))?;
        if let Some(j) = &judges {
            s.features = j.score(gpu, &truth, imgs)?;
        }
        progress.inc(1);
        Ok(s)
    };
    let scores = score(&recon, &lr)?;
    let mut per_sample = Vec::with_capacity(n_samples);
    for imgs in &samples {
        let ls = latents(imgs)?;
        per_sample.push(score(imgs, &ls)?);
    }
    progress.done();
    let mut report = report(&scores, &names);
    if !per_sample.is_empty() {
        report.push_str(&crate::eval::report_samples(&per_sample));
    }
    write_atomic(&report_path, report.as_bytes(), force)?;
    Ok(Outcome { scores, samples: per_sample, report, path: report_path })
}
