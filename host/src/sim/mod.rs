//! `percept simulate`: a simulated subject. Stimuli (augmented photos, drawn shapes and
//! letters) are shown to a model of visual cortex ([`cortex`]); the voxel responses, with
//! noise and repeats, are what a scanner would record. Whole photos are held out for testing:
//! no crop of a test photo is ever a training stimulus. The subject also imagines some of the
//! held-out photos and new shapes and letters ([`imagery`]): a third split of trials. The
//! higher visual voxels also carry a random mixture of EfficientNet-Lite1's late features
//! ([`dnn`]; computed on the GPU, so [`simulate`] takes one when that term is on).

pub mod cortex;
pub mod dnn;
pub mod draw;
pub mod imagery;
pub mod words;

use std::fmt::Write as _;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::io::image::Rgb;
use crate::error::{io, Error, Result};
use crate::gpu::Gpu;
use crate::io::output::write_atomic;
use crate::progress::Progress;
use cortex::{Area, PopulationSettings, Voxel};

/// Everything that defines a simulated subject.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seed of every random draw.
    pub seed: u64,
    /// Stimulus side in pixels (a multiple of 8 and of 4).
    pub size: usize,
    /// Side of the grid the cortex model samples the visual field on.
    pub grid: usize,
    /// Photos held out whole for testing.
    pub test_photos: usize,
    /// Augmented crops per training photo.
    pub crops: usize,
    /// Drawn shapes.
    pub shapes: usize,
    /// Drawn letters.
    pub letters: usize,
    /// Repeats of each training stimulus.
    pub train_repeats: usize,
    /// Repeats of each test photo (NSD shows each image 3 times).
    pub test_repeats: usize,
    /// The voxels.
    pub population: PopulationSettings,
    /// Mental imagery trials.
    pub imagery: imagery::ImagerySettings,
    /// The higher visual voxels' DNN term.
    pub dnn: dnn::DnnSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seed: 2023,
            size: 64,
            grid: 32,
            test_photos: 12,
            crops: 16,
            shapes: 300,
            letters: 200,
            train_repeats: 1,
            test_repeats: 3,
            population: PopulationSettings { early: 3000, higher: 1000, snr_early: 0.5, snr_higher: 0.3, dead: 0.15 },
            imagery: imagery::ImagerySettings::default(),
            dnn: dnn::DnnSettings::default(),
        }
    }
}

impl Settings {
    /// The settings as `key = value` lines (written beside the data).
    pub fn describe(&self) -> String {
        let p = &self.population;
        let mut s = String::new();
        let _ = writeln!(s, "seed = {}\nsize = {}\ngrid = {}\ntest_photos = {}\ncrops_per_photo = {}\nshapes = {}\nletters = {}", self.seed, self.size, self.grid, self.test_photos, self.crops, self.shapes, self.letters);
        let _ = writeln!(s, "train_repeats = {}\ntest_repeats = {}", self.train_repeats, self.test_repeats);
        let _ = writeln!(s, "early_visual_voxels = {}\nhigher_visual_voxels = {}\nsnr_early_median = {}\nsnr_higher_median = {}\nlow_signal_share = {}", p.early, p.higher, p.snr_early, p.snr_higher, p.dead);
        s.push_str(&self.imagery.describe());
        s.push_str(&self.dnn.describe());
        s
    }
}

/// A source photograph and what it shows.
pub type Photo = crate::io::stimuli::Captioned;

/// Reads a `captions.json` (a list of `{"file", "captions"}`) and returns its photos.
pub fn read_photos(captions_json: &Path) -> Result<Vec<Photo>> {
    crate::io::stimuli::read_captions_json(captions_json)
}

/// The shipped photos: COCO and public-domain.
pub fn shipped_photos() -> Result<Vec<Photo>> {
    let mut p = read_photos(&crate::paths::shipped("assets/stimuli/coco/captions.json"))?;
    p.extend(read_photos(&crate::paths::shipped("assets/stimuli/public-domain/captions.json"))?);
    Ok(p)
}

/// One distinct stimulus.
#[derive(Debug, Clone)]
pub struct Stimulus {
    /// The image shown, `size x size`.
    pub image: Rgb,
    /// File name it is saved under (in `stimuli/`).
    pub name: String,
    /// What it shows.
    pub captions: Vec<String>,
    /// The source photo, or `drawn`.
    pub source: String,
    /// How it was made (crop, flip, shape...).
    pub how: String,
}

/// Trials of one split: which stimulus each showed, and the voxels recorded.
#[derive(Debug, Clone)]
pub struct Trials {
    /// Index into the split's stimuli for each trial.
    pub shown: Vec<usize>,
    /// `(trials, voxels)`, all voxels (early visual first).
    pub voxels: Vec<f32>,
}

/// A simulated subject and its experiment.
#[derive(Debug)]
pub struct Subject {
    /// How it was made.
    pub settings: Settings,
    /// Its voxels (early visual first, then higher visual).
    pub voxels: Vec<Voxel>,
    /// Training stimuli.
    pub train_stimuli: Vec<Stimulus>,
    /// Test stimuli (whole held-out photos, centre square).
    pub test_stimuli: Vec<Stimulus>,
    /// Training trials.
    pub train: Trials,
    /// Test trials.
    pub test: Trials,
    /// Imagined images (see [`imagery`]).
    pub imagery_stimuli: Vec<Stimulus>,
    /// Imagery trials.
    pub imagery: Trials,
}

/// The largest stimulus side [`simulate`] makes.
pub const MAX_SIZE: usize = 1024;
/// The most voxels (both regions) [`simulate`] makes.
pub const MAX_VOXELS: usize = 1 << 20;
/// The most voxel values (trials x voxels) or stimulus pixel values [`simulate`] makes.
pub const MAX_VALUES: usize = 1 << 31;

/// Simulates a subject seeing `photos` (plus drawn stimuli). `gpu` runs the higher visual
/// voxels' DNN ([`dnn`]); it may be `None` only when the DNN share is 0.
pub fn simulate(settings: &Settings, photos: &[Photo], gpu: Option<&Gpu>, progress: &dyn Progress) -> Result<Subject> {
    let s = settings;
    if !s.size.is_multiple_of(8) || s.size < 32 {
        return Err(Error::Invalid(format!("stimulus size {} must be a multiple of 8 and at least 32", s.size)));
    }
    if s.size > MAX_SIZE {
        return Err(Error::Invalid(format!("stimulus size {} is more than {MAX_SIZE}", s.size)));
    }
    if s.population.early == 0 || s.population.higher == 0 {
        return Err(Error::Invalid(format!("{} early and {} higher visual voxels: each region needs at least one voxel", s.population.early, s.population.higher)));
    }
    if s.population.early.saturating_add(s.population.higher) > MAX_VOXELS {
        return Err(Error::Invalid(format!("{} + {} voxels is more than {MAX_VOXELS}", s.population.early, s.population.higher)));
    }
    if s.grid == 0 || s.grid > s.size {
        return Err(Error::Invalid(format!("grid {} must be between 1 and the stimulus size {}", s.grid, s.size)));
    }
    if s.test_photos >= photos.len() {
        return Err(Error::Invalid(format!("{} test photos asked for but only {} photos given; some must remain for training", s.test_photos, photos.len())));
    }
    if s.test_repeats == 0 || s.train_repeats == 0 {
        return Err(Error::Invalid("repeats must be at least 1".into()));
    }
    s.imagery.check(s.test_photos)?;
    s.dnn.check()?;
    let gpu = match gpu {
        None if s.dnn.share > 0.0 => return Err(Error::Invalid(format!("the higher visual voxels' DNN term (share {}) runs EfficientNet-Lite on a GPU, and none was given", s.dnn.share))),
        g => g,
    };
    let train = (photos.len() - s.test_photos).checked_mul(s.crops).and_then(|c| c.checked_add(s.shapes)).and_then(|c| c.checked_add(s.letters));
    let trials = train.and_then(|t| t.checked_mul(s.train_repeats)).and_then(|t| t.checked_add(s.test_photos.checked_mul(s.test_repeats)?)).and_then(|t| t.checked_add(s.imagery.images().checked_mul(s.imagery.repeats)?));
    let values = trials.and_then(|t| t.checked_mul(s.population.early + s.population.higher));
    let pixels = train.and_then(|t| t.checked_add(s.test_photos)?.checked_add(s.imagery.images())).and_then(|t| t.checked_mul(s.size * s.size * 3));
    if !matches!((values, pixels), (Some(v), Some(p)) if v <= MAX_VALUES && p <= MAX_VALUES) {
        return Err(Error::Invalid(format!("these settings make more than {MAX_VALUES} voxel values or stimulus pixels; fewer crops, shapes, letters, repeats or voxels, or a smaller size")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut order: Vec<usize> = (0..photos.len()).collect();
    order.shuffle(&mut rng);
    let (test_ids, train_ids) = order.split_at(s.test_photos);

    // Stimuli.
    let bar = progress;
    bar.begin("stimuli", (train_ids.len() * s.crops + s.shapes + s.letters + test_ids.len()) as u64);
    let stem = |p: &Path| p.file_stem().map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
    let mut test_stimuli = Vec::new();
    for (k, &i) in test_ids.iter().enumerate() {
        let img = open_rgb8(&photos[i].path)?;
        let crop = draw::Crop::centre(img.width(), img.height());
        test_stimuli.push(Stimulus { image: crop.apply(&img, s.size), name: format!("test_{k:03}.png"), captions: photos[i].captions.clone(), source: stem(&photos[i].path), how: "centre square".into() });
        bar.inc(1);
    }
    let mut train_stimuli = Vec::new();
    for &i in train_ids {
        let img = open_rgb8(&photos[i].path)?;
        for _ in 0..s.crops {
            let crop = draw::Crop::random(img.width(), img.height(), &mut rng);
            let name = format!("train_{:05}.png", train_stimuli.len());
            train_stimuli.push(Stimulus { image: crop.apply(&img, s.size), name, captions: photos[i].captions.clone(), source: stem(&photos[i].path), how: crop.describe() });
            bar.inc(1);
        }
    }
    for k in 0..s.shapes + s.letters {
        let (image, caption) = if k < s.shapes { draw::shape(s.size, &mut rng) } else { draw::letter(s.size, &mut rng) };
        let name = format!("train_{:05}.png", train_stimuli.len());
        train_stimuli.push(Stimulus { image, name, captions: vec![caption], source: "drawn".into(), how: if k < s.shapes { "shape" } else { "letter" }.into() });
        bar.inc(1);
    }
    bar.done();

    // Imagined images, from their own random stream (the perception trials stay as they were).
    let mut rng_imagery = ChaCha8Rng::seed_from_u64(s.seed);
    rng_imagery.set_stream(1);
    let imagery_stimuli = imagery::stimuli(&s.imagery, &test_stimuli, s.size, &mut rng_imagery);

    // Noise-free responses to every distinct stimulus (training, test, then the imagined ones as
    // the imagining cortex gets them), standardised on the seen ones.
    let voxels = cortex::population(&s.population, &mut rng);
    let seen: Vec<&Stimulus> = train_stimuli.iter().chain(&test_stimuli).collect();
    let mut images: Vec<Rgb> = seen.iter().map(|st| st.image.clone()).collect();
    images.extend(imagery_stimuli.iter().map(|st| imagery::as_imagined(&st.image, s.imagery.blur)));
    bar.begin("features", 0);
    let maps = cortex::all_features(&images, s.grid, bar);
    bar.done();
    let sem: Vec<_> = seen.iter().copied().chain(&imagery_stimuli).map(|st| cortex::semantic(&st.captions)).collect();
    // The DNN term, its tuning from its own random stream (every other draw stays as it was).
    let drive = match gpu {
        Some(gpu) if s.dnn.share > 0.0 => {
            bar.begin("dnn features", 0);
            let (f, units) = dnn::features(gpu, &s.dnn.weights, &images, s.dnn.side, bar)?;
            bar.done();
            let mut rng_dnn = ChaCha8Rng::seed_from_u64(s.seed);
            rng_dnn.set_stream(2);
            let higher = voxels.iter().filter(|v| v.area == Area::Higher).count();
            Some(dnn::drive(&f, units, &dnn::tuning(higher, units, &mut rng_dnn), seen.len()))
        }
        _ => None,
    };
    let dnn_drive = drive.as_deref().map(|d| dnn::DnnDrive { drive: d, share: s.dnn.share });
    bar.begin("voxels", 0);
    let signal = cortex::responses_against(&voxels, &maps, &sem, s.grid, seen.len(), dnn_drive, bar);
    bar.done();

    // Trials: training stimuli in a random order, test photos repeated.
    let ns = images.len();
    let mut shown_train: Vec<usize> = (0..train_stimuli.len()).flat_map(|i| std::iter::repeat_n(i, s.train_repeats)).collect();
    shown_train.shuffle(&mut rng);
    let mut shown_test: Vec<usize> = (0..test_stimuli.len()).flat_map(|i| std::iter::repeat_n(i, s.test_repeats)).collect();
    shown_test.shuffle(&mut rng);
    let offset = train_stimuli.len();
    let train_voxels = cortex::trials(&voxels, &signal, ns, &shown_train, &mut rng);
    let test_global: Vec<usize> = shown_test.iter().map(|i| i + offset).collect();
    let test_voxels = cortex::trials(&voxels, &signal, ns, &test_global, &mut rng);
    let mut shown_imagery: Vec<usize> = (0..imagery_stimuli.len()).flat_map(|i| std::iter::repeat_n(i, s.imagery.repeats)).collect();
    shown_imagery.shuffle(&mut rng_imagery);
    let imagery_global: Vec<usize> = shown_imagery.iter().map(|i| i + seen.len()).collect();
    let imagery_voxels = cortex::trials_scaled(&voxels, &signal, ns, &imagery_global, &|v| s.imagery.gain(v), &mut rng_imagery);
    Ok(Subject {
        settings: s.clone(),
        voxels,
        train_stimuli,
        test_stimuli,
        train: Trials { shown: shown_train, voxels: train_voxels },
        test: Trials { shown: shown_test, voxels: test_voxels },
        imagery_stimuli,
        imagery: Trials { shown: shown_imagery, voxels: imagery_voxels },
    })
}

fn open_rgb8(path: &Path) -> Result<image::RgbImage> {
    crate::io::image::open_rgb8(path)
}

/// The regions of interest: name and voxel range.
pub fn regions(subject: &Subject) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let early = subject.voxels.iter().take_while(|v| matches!(v.area, Area::Early(_))).count();
    vec![("early_visual", 0..early), ("higher_visual", early..subject.voxels.len())]
}

/// Columns `range` of `x (rows, width)`.
pub fn columns(x: &[f32], width: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    x.chunks_exact(width).flat_map(|row| row[range.clone()].iter().copied()).collect()
}

impl Subject {
    /// Writes the subject into `dir`: `stimuli/*.png`, `train.csv`, `test.csv` and (when it
    /// imagines anything) `imagery.csv` (one row per trial; an imagery row's `how` says
    /// `imagined test_NNN.png`, `imagined shape` or `imagined letter`), `<region>_<split>.npy`
    /// (trials, voxels), `nifti/` (4D runs and region masks),
    /// `voxels.csv` (each voxel's area, field and SNR) and `settings.txt`.
    /// Refuses to write into a folder that holds anything (an earlier subject, or the part an
    /// interrupted save wrote) unless `force`.
    pub fn save(&self, dir: &Path, force: bool, bar: &dyn Progress) -> Result<()> {
        let marker = dir.join("settings.txt");
        if marker.exists() && !force {
            return Err(Error::Exists(marker));
        }
        crate::io::output::ensure_fresh_dir(dir, force)?;
        let stim_dir = dir.join("stimuli");
        std::fs::create_dir_all(&stim_dir).map_err(io(&stim_dir))?;
        std::fs::create_dir_all(dir.join("nifti")).map_err(io(dir.join("nifti")))?;
        bar.set_len((self.train_stimuli.len() + self.test_stimuli.len() + self.imagery_stimuli.len()) as u64);
        for st in self.train_stimuli.iter().chain(&self.test_stimuli).chain(&self.imagery_stimuli) {
            st.image.save_png(&stim_dir.join(&st.name), true)?;
            bar.inc(1);
        }
        let nv = self.voxels.len();
        let mut splits = vec![("train", &self.train_stimuli, &self.train), ("test", &self.test_stimuli, &self.test)];
        if !self.imagery.shown.is_empty() {
            splits.push(("imagery", &self.imagery_stimuli, &self.imagery));
        }
        for (split, stimuli, trials) in splits {
            let rows: Vec<_> = trials.shown.iter().map(|&i| {
                let st = &stimuli[i];
                (format!("stimuli/{}", st.name), st.captions.clone(), vec![st.source.to_string(), st.how.to_string()])
            }).collect();
            let csv = crate::io::stimuli::write_csv(&rows, &["source", "how"])?;
            write_atomic(&dir.join(format!("{split}.csv")), &csv, true)?;
            let n = trials.shown.len();
            for (name, range) in regions(self) {
                let x = columns(&trials.voxels, nv, range.clone());
                crate::io::npy::write(&dir.join(format!("{name}_{split}.npy")), &[n, range.len()], &x, true)?;
            }
            crate::io::nifti::write_run(&dir.join("nifti").join(format!("{split}.nii.gz")), &trials.voxels, n, nv)?;
        }
        for (name, range) in regions(self) {
            crate::io::nifti::write_mask(&dir.join("nifti").join(format!("mask_{name}.nii.gz")), nv, range)?;
        }
        let mut csv = String::from("voxel,area,x,y,sigma,snr\n");
        for (i, v) in self.voxels.iter().enumerate() {
            let area = match v.area {
                Area::Early(a) => format!("V{a}"),
                Area::Higher => "higher".into(),
            };
            let _ = writeln!(csv, "{i},{area},{:.4},{:.4},{:.4},{:.4}", v.centre.0, v.centre.1, v.sigma, v.snr);
        }
        write_atomic(&dir.join("voxels.csv"), csv.as_bytes(), true)?;
        write_atomic(&marker, self.settings.describe().as_bytes(), true)?;
        Ok(())
    }
}
