//! `percept demo --dir`: the demo with deep image reconstruction (Shen, Horikawa, Majima &
//! Kamitani, PLoS Comput Biol 2019) beside z-only, and their mental-imagery experiment. On the
//! shipped files only: the demo's subject, z decoder and shuffled control ([`super::demo`]);
//! feature decoders of a few EfficientNet-Lite2 layers on every voxel ([`super::features`]),
//! and the same fitted on shuffled voxel rows; DIR reconstructions of the held-out photos and
//! of the imagery trials from the z-only start ([`super::dir`]); every set scored by the
//! evaluation issue's metrics with EfficientNet-Lite0 as the judge (not the loss network).
//! Imagery is scored against the imagined images and against a shuffled pairing (each
//! reconstruction against another imagined image of its category), per category.

use std::path::{Path, PathBuf};

use super::demo::{subject_section, z_stage, Clock, Scorer};
use super::dir::{self as dirjob, Optimizer, Start};
use super::features::{self as featjob, NetChoice, Trials};
use super::Context;
use crate::error::Result;
use crate::eval::features::Judges;
use crate::eval::Scores;
use crate::fit::features::Method;
use crate::fit::RidgeOptions;
use crate::io::image::Rgb;
use crate::io::output::{ensure_fresh_dir, ensure_writable, lock, write_atomic};
use crate::io::voxels::VoxelSource;
use crate::io::{npy, stimuli};
use crate::progress::Progress;
use crate::sim::{self, Settings};

mod report;

/// What `percept demo --dir` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder for every output.
    pub out: PathBuf,
    /// Replace the outputs of an earlier run.
    pub force: bool,
    /// The simulated subject.
    pub settings: Settings,
    /// TAESD weights folder (the generator, and the z decoder's targets).
    pub taesd: PathBuf,
    /// EfficientNet-Lite2 layers decoded (early to late).
    pub layers: Vec<String>,
    /// Random units per layer.
    pub units: usize,
    /// How each feature decoder is fitted.
    pub method: Method,
    /// DIR iterations.
    pub iterations: usize,
    /// DIR optimiser.
    pub optimizer: Optimizer,
    /// Its rate (`None`: [`dirjob::default_lr`]).
    pub lr: Option<f32>,
    /// Images optimised together.
    pub batch: usize,
    /// Score in EfficientNet-Lite0's feature space too.
    pub feature_columns: bool,
}

/// The layers decoded by default: early, middle, late and pooled.
pub const DEFAULT_LAYERS: [&str; 4] = ["_blocks.2", "_blocks.10", "_blocks.16", "_avg_pooling"];
/// Units per layer by default.
pub const DEFAULT_UNITS: usize = 300;
/// DIR iterations by default, with the lab's DGN descent (its rate falls linearly to 0 over
/// them). On the default subject DGN ended 10 iterations at a lower feature loss than Adam
/// (held-out photos 274.3 against 278.6, imagery 182.1 against 200.7; BENCHMARKS.md).
pub const DEFAULT_ITERATIONS: usize = 10;

impl Options {
    /// The defaults: the shipped TAESD and networks, the default subject, dense ridge on all
    /// voxels, [`DEFAULT_LAYERS`], [`DEFAULT_UNITS`], the lab's DGN descent for
    /// [`DEFAULT_ITERATIONS`].
    pub fn new(out: &Path, force: bool) -> Self {
        Options {
            out: out.to_path_buf(),
            force,
            settings: Settings::default(),
            taesd: crate::paths::taesd(),
            layers: DEFAULT_LAYERS.iter().map(|s| s.to_string()).collect(),
            units: DEFAULT_UNITS,
            method: Method::Ridge(RidgeOptions::default()),
            iterations: DEFAULT_ITERATIONS,
            optimizer: Optimizer::Sgd,
            lr: None,
            batch: 12,
            feature_columns: true,
        }
    }
}

/// The scores of one imagery category.
#[derive(Debug, Clone)]
pub struct ImageryRow {
    /// "photo", "shape" or "letter".
    pub kind: &'static str,
    /// Imagined images of this kind.
    pub images: usize,
    /// Per method (`z-only`, `DIR`): every column's means.
    pub methods: Vec<(&'static str, Vec<ImageryCell>)>,
}

/// One column's means over an imagery category.
#[derive(Debug, Clone)]
pub struct ImageryCell {
    /// The column (as in [`Scores::columns`]).
    pub column: String,
    /// Shown as a percentage.
    pub pct: bool,
    /// Mean against the imagined images.
    pub imagined: f64,
    /// Mean against the shuffled pairing.
    pub shuffled: f64,
}

/// What a run made.
#[derive(Debug)]
pub struct Outcome {
    /// The Markdown report (also in `out/report.md`).
    pub report: String,
    /// Held-out photos: z-only, DIR, z-only control, DIR control.
    pub test: Vec<(&'static str, Scores)>,
    /// Imagery, per category.
    pub imagery: Vec<ImageryRow>,
    /// Wall time of each stage.
    pub times: Vec<(String, f64)>,
}

/// One DIR run's images and starts, with the originals in the job's order.
struct DirSet {
    originals: Vec<Rgb>,
    names: Vec<String>,
    zonly: Vec<Rgb>,
    dir: Vec<Rgb>,
    loss: (f32, f32),
}

/// Runs the demo with DIR and imagery.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    let b = progress;
    let (out, s) = (&o.out, &o.settings);
    let outputs = [out.join("report.md"), out.join("grid.png"), out.join("imagery.png")];
    let _lock = lock(out)?;
    for p in &outputs {
        ensure_writable(p, o.force)?;
    }
    ensure_fresh_dir(out, o.force)?;
    if s.imagery.images() == 0 {
        return Err(crate::error::Error::Invalid("percept demo --dir reconstructs imagery trials: the subject must imagine some images".into()));
    }
    let mut clock = Clock::start();
    let gpu = ctx.gpu()?;
    let z = z_stage(ctx, out, o.force, s, &o.taesd, &mut clock, b)?;
    let subject = &z.subject;

    // Every voxel (early + higher) of each split, and the training rows shuffled as the z control's.
    let nv = subject.voxels.len();
    let vox_dir = out.join("voxels");
    let all = |name: &str, x: &[f32]| -> Result<VoxelSource> {
        let p = vox_dir.join(format!("{name}.npy"));
        npy::write(&p, &[x.len() / nv, nv], x, true)?;
        Ok(VoxelSource::Npy(p))
    };
    let train = all("all_train", &subject.train.voxels)?;
    let shuffled: Vec<f32> = z.perm.iter().flat_map(|&i| subject.train.voxels[i * nv..(i + 1) * nv].iter().copied()).collect();
    let train_shuffled = all("all_train_shuffled", &shuffled)?;
    let test = all("all_test", &subject.test.voxels)?;
    let imagery = all("all_imagery", &subject.imagery.voxels)?;
    let subj = out.join("subject");

    // Feature decoders (cached features are shared by the real and the control fit).
    let cache = out.join("cache");
    let feat = |voxels: VoxelSource, folder: &str| -> Result<featjob::Outcome> {
        let fo = featjob::Options {
            train: Trials { voxels, stimuli: subj.join("train.csv") },
            test: Some(Trials { voxels: test.clone(), stimuli: subj.join("test.csv") }),
            net: NetChoice::lite2(),
            layers: o.layers.clone(),
            units: Some(o.units),
            seed: s.seed,
            method: o.method.clone(),
            region: "early_and_higher_visual".into(),
            out: out.join("decoders").join(folder),
            cache: cache.clone(),
            force: true,
        };
        featjob::run(ctx, &fo, b)
    };
    let features = feat(train, "features")?;
    clock.lap("feature decoders (EfficientNet-Lite2 features of the stimuli, fits)");
    let features_control = feat(train_shuffled, "features_control")?;
    // The cache holds whole layers of every training image (hundreds of MB): not an output.
    std::fs::remove_dir_all(&cache).map_err(crate::error::io(&cache))?;
    clock.lap("feature decoders of the shuffled control");

    // DIR from the z-only start: the held-out photos, their control, the imagery trials.
    let dir = |voxels: &VoxelSource, split: &str, decoders: &str, zdec: &Path, folder: &str| -> Result<DirSet> {
        let list = subj.join(format!("{split}.csv"));
        let dopts = dirjob::Options {
            voxels: voxels.clone(),
            decoders: Some(out.join("decoders").join(decoders)),
            layers: Vec::new(),
            stimuli: Some(list.clone()),
            start: Start::ZDecoder { decoder: zdec.to_path_buf(), voxels: Some(VoxelSource::Npy(subj.join(format!("early_visual_{split}.npy")))) },
            taesd: Some(o.taesd.clone()),
            net: NetChoice::lite2(),
            size: s.size,
            optimizer: o.optimizer,
            lr: o.lr,
            iterations: o.iterations,
            anchor: 0.0,
            batch: o.batch,
            out: out.join("dir").join(folder),
            force: true,
            oracle: false,
        };
        let r = dirjob::run(ctx, &dopts, b)?;
        let (paths, _) = stimuli::repeats(&stimuli::read(&list)?);
        let originals = paths.iter().map(|p| Rgb::open_square(p, s.size)).collect::<Result<Vec<_>>>()?;
        let names = paths.iter().map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()).collect();
        let loss = (r.loss[0], r.loss[r.loss.len() - 1]);
        Ok(DirSet { originals, names, zonly: r.starts, dir: r.images, loss })
    };
    let photos = dir(&test, "test", "features", &z.dec_path, "test")?;
    clock.lap("DIR: the held-out photos");
    let control = dir(&test, "test", "features_control", &z.control_path, "control")?;
    clock.lap("DIR: the shuffled control");
    let imag = dir(&imagery, "imagery", "features", &z.dec_path, "imagery")?;
    clock.lap("DIR: the imagery trials");

    // Scores.
    b.begin("evaluating", 8);
    let judges = if o.feature_columns { Some(Judges::shipped(gpu)?) } else { None };
    let scorer = Scorer::new(gpu, &z.taesd, judges.as_ref(), photos.originals.clone(), None)?;
    let mut test_scores = Vec::new();
    for (name, imgs) in [("z-only", &photos.zonly), ("DIR", &photos.dir), ("z-only, shuffled control", &control.zonly), ("DIR, shuffled control", &control.dir)] {
        test_scores.push((name, scorer.score(imgs)?));
        b.inc(1);
    }
    let kinds: Vec<&'static str> = imag.names.iter().map(|n| subject.imagery_stimuli.iter().find(|st| &st.name == n).map_or("photo", sim::imagery::kind)).collect();
    let pairing = report::shuffled_pairing(&kinds);
    let imagined = Scorer::new(gpu, &z.taesd, judges.as_ref(), imag.originals.clone(), None)?;
    let paired = Scorer::new(gpu, &z.taesd, judges.as_ref(), pairing.iter().map(|&j| imag.originals[j].clone()).collect(), None)?;
    let mut imagery_scores = Vec::new();
    for (name, imgs) in [("z-only", &imag.zonly), ("DIR", &imag.dir)] {
        imagery_scores.push((name, imagined.score(imgs)?, paired.score(imgs)?));
        b.inc(2);
    }
    let rows = report::per_kind(&kinds, &imagery_scores);
    let grid = crate::pipeline::reconstruct::grid(&[&photos.originals, &photos.zonly, &photos.dir, &control.zonly, &control.dir])?;
    grid.save_png(&outputs[1], true)?;
    let igrid = crate::pipeline::reconstruct::grid(&[&imag.originals, &imag.zonly, &imag.dir])?;
    igrid.save_png(&outputs[2], true)?;
    b.done();
    clock.lap("evaluate and draw the grids");

    let facts = report::Facts { o, subject: subject_section(subject), z_alpha: z.fitted.alpha[0], features: &features, features_control: &features_control, losses: [("held-out photos", photos.loss), ("shuffled control", control.loss), ("imagery", imag.loss)], kinds: &kinds };
    let text = report::write(&facts, &test_scores, &rows, &clock.0);
    write_atomic(&outputs[0], text.as_bytes(), true)?;
    Ok(Outcome { report: text, test: test_scores, imagery: rows, times: clock.0 })
}
