//! `percept fit --target features`: DNN feature decoders (Shen et al. 2019). For each chosen
//! layer of the feature network, the activations of every training image (cached), a subset
//! of its units, and one decoder (FastL2LiR, sparse; or dense ridge) written into a folder,
//! `<out>/<layer>.safetensors`, with `<out>/report.md`. With held-out trials, the report gives
//! each layer's held-out correlation of decoded and true features.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Context;
use crate::error::{Error, Result};
use crate::fit::feature_targets::FeatureNet;
use crate::fit::features::{choose_units, columns, fit_layer, predict, unit_correlations, Method};
use crate::io::decoder::FeatureInfo;
use crate::io::output::{ensure_writable, lock, write_all_atomic};
use crate::io::stimuli;
use crate::io::voxels::VoxelSource;
use crate::progress::Progress;

/// The feature network.
#[derive(Debug, Clone)]
pub enum NetChoice {
    /// EfficientNet-Lite from a folder with `model.safetensors` (default: the shipped Lite2).
    EfficientNet {
        /// The folder.
        dir: PathBuf,
        /// Its name in the decoders, e.g. `efficientnet-lite2`.
        name: String,
    },
    /// VGG19 from torchvision's weights converted to safetensors.
    Vgg19(PathBuf),
}

impl NetChoice {
    /// The shipped EfficientNet-Lite2.
    pub fn lite2() -> Self {
        NetChoice::EfficientNet { dir: crate::paths::shipped("weights/efficientnet-lite2"), name: "efficientnet-lite2".into() }
    }

    /// Loads the network.
    pub fn load(&self, ctx: &Context) -> Result<FeatureNet> {
        match self {
            NetChoice::EfficientNet { dir, name } => FeatureNet::efficientnet(ctx.gpu()?, dir, name),
            NetChoice::Vgg19(p) => FeatureNet::vgg19(ctx.gpu()?, p),
        }
    }
}

/// Voxels and the stimulus list (one row per trial) of one set of trials.
#[derive(Debug, Clone)]
pub struct Trials {
    /// The voxels.
    pub voxels: VoxelSource,
    /// The stimulus list.
    pub stimuli: PathBuf,
}

/// What the job does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The training trials.
    pub train: Trials,
    /// Held-out trials, for the report's correlations (repeats of an image are averaged).
    pub test: Option<Trials>,
    /// The feature network.
    pub net: NetChoice,
    /// The layers (the network's reference names).
    pub layers: Vec<String>,
    /// Units per layer, drawn at random with `seed` (`None`: all).
    pub units: Option<usize>,
    /// Seed of the unit draw.
    pub seed: u64,
    /// FastL2LiR or dense ridge.
    pub method: Method,
    /// Region of interest, stored in the decoders.
    pub region: String,
    /// The output folder.
    pub out: PathBuf,
    /// Folder for cached features.
    pub cache: PathBuf,
    /// Replace earlier outputs.
    pub force: bool,
}

/// One layer's decoder and its numbers.
#[derive(Debug, Clone)]
pub struct LayerOutcome {
    /// Layer name.
    pub layer: String,
    /// The decoder file.
    pub path: PathBuf,
    /// The decoder's statistics, units and layer size.
    pub info: FeatureInfo,
    /// Voxels each unit reads.
    pub voxels_per_unit: usize,
    /// Size of the decoder file in bytes.
    pub bytes: usize,
    /// Mean cross-validated correlation (dense ridge).
    pub cv_r: Option<f32>,
    /// Per unit held-out correlation of decoded and true features (with `test`).
    pub test_r: Option<Vec<f32>>,
}

/// What the job made.
#[derive(Debug)]
pub struct Outcome {
    /// Per layer.
    pub layers: Vec<LayerOutcome>,
    /// The Markdown report.
    pub report: String,
    /// Every file written.
    pub written: Vec<PathBuf>,
}

/// The features of the distinct images of a stimulus list.
struct ListFeatures {
    /// `[layer] -> (images, units)`
    per_image: Vec<Vec<f32>>,
    /// The trials (rows of the list) that showed each image.
    rows: Vec<Vec<usize>>,
    /// Rows of the list.
    trials: usize,
}

fn features_of(ctx: &Context, net: &FeatureNet, list: &Path, layers: &[&str], cache: &Path, progress: &dyn Progress) -> Result<ListFeatures> {
    let trials = stimuli::read(list)?;
    let (images, rows) = stimuli::repeats(&trials);
    progress.begin("features", images.len() as u64);
    let per_image = net.features_cached(ctx.gpu()?, &images, layers, cache, progress)?;
    progress.done();
    Ok(ListFeatures { per_image, rows, trials: trials.len() })
}

/// A layer name as a file name.
fn file_name(layer: &str) -> String {
    layer.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Runs the job.
pub fn run(ctx: &Context, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    if o.layers.is_empty() {
        return Err(Error::Invalid("--layers: name at least one layer of the feature network".into()));
    }
    let _lock = lock(&o.out)?;
    std::fs::create_dir_all(&o.out).map_err(crate::error::io(&o.out))?;
    let paths: Vec<PathBuf> = o.layers.iter().map(|l| o.out.join(format!("{}.safetensors", file_name(l)))).collect();
    let report_path = o.out.join("report.md");
    for p in paths.iter().chain([&report_path]) {
        ensure_writable(p, o.force)?;
    }
    let t0 = Instant::now();
    let vox = o.train.voxels.load()?;
    let net = o.net.load(ctx)?;
    let layers: Vec<&str> = o.layers.iter().map(String::as_str).collect();
    let ListFeatures { per_image, rows, trials: n_trials } = features_of(ctx, &net, &o.train.stimuli, &layers, &o.cache, progress)?;
    vox.ensure_trials(&o.train.stimuli, n_trials, "trials listed")?;
    let test = match &o.test {
        Some(t) => {
            let tv = t.voxels.load()?;
            if tv.voxels != vox.voxels {
                return Err(Error::Shape(format!("{}: held-out voxels have {} columns, the training voxels {}", tv.source, tv.voxels, vox.voxels)));
            }
            let f = features_of(ctx, &net, &t.stimuli, &layers, &o.cache, progress)?;
            tv.ensure_trials(&t.stimuli, f.trials, "trials listed")?;
            Some((stimuli::average_rows(&tv.data, tv.voxels, &f.rows), f.rows.len(), f.per_image))
        }
        None => None,
    };
    let mut outs = Vec::new();
    let mut bytes = Vec::new();
    for (li, layer) in o.layers.iter().enumerate() {
        let total = per_image[li].len() / rows.len().max(1);
        let units = choose_units(total, o.units, o.seed.wrapping_add(li as u64));
        let chosen = columns(&per_image[li], total, &units);
        // One row per trial: an image shown r times gives r rows.
        let mut y = vec![0f32; vox.trials * units.len()];
        for (k, rs) in rows.iter().enumerate() {
            for &r in rs {
                y[r * units.len()..(r + 1) * units.len()].copy_from_slice(&chosen[k * units.len()..(k + 1) * units.len()]);
            }
        }
        let info = FeatureInfo { net: net.name().into(), layer: layer.clone(), layer_units: total, units: units.clone(), mean: vec![], std: vec![] };
        progress.begin(&format!("fitting {layer}"), 0);
        let f = fit_layer(&vox.data, vox.voxels, &y, &o.region, info, &o.method, progress)?;
        progress.done();
        let b = f.file.to_bytes()?;
        let test_r = match &test {
            Some((x, m, feats)) => {
                let pred = predict(&b, x, *m)?;
                Some(unit_correlations(&pred, &columns(&feats[li], total, &units), *m, units.len()))
            }
            None => None,
        };
        let info = f.file.features.clone().ok_or_else(|| Error::Invalid("feature decoder without its features".into()))?;
        outs.push(LayerOutcome { layer: layer.clone(), path: paths[li].clone(), info, voxels_per_unit: f.voxels_per_unit, bytes: b.len(), cv_r: f.cv_r, test_r });
        bytes.push(b);
    }
    let report = report(o, &vox.source, vox.trials, vox.voxels, net.name(), &outs, t0.elapsed().as_secs_f64());
    let mut files: Vec<(&Path, &[u8])> = paths.iter().map(PathBuf::as_path).zip(bytes.iter().map(Vec::as_slice)).collect();
    files.push((&report_path, report.as_bytes()));
    write_all_atomic(&files, o.force)?;
    let mut written = paths.clone();
    written.push(report_path);
    Ok(Outcome { layers: outs, report, written })
}

fn report(o: &Options, source: &str, n: usize, v: usize, net: &str, layers: &[LayerOutcome], seconds: f64) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# Feature decoders: {} -> {net}\n", o.region);
    let _ = writeln!(r, "- voxels: {source}: {n} trials x {v} voxels, standardised with training statistics");
    let method = match &o.method {
        Method::FastL2Lir(f) => format!("FastL2LiR: per unit the {} voxels of highest |r|, ridge alpha {}", f.select, f.alpha),
        Method::Ridge(_) => "dense ridge on all voxels, alpha by cross-validation".into(),
    };
    let _ = writeln!(r, "- method: {method}");
    let _ = writeln!(r, "- units: {} per layer (seed {}), NHWC-flattened indices stored in each decoder (`feature_unit`)", o.units.map_or("all".into(), |u| u.to_string()), o.seed);
    let _ = writeln!(r, "- took {seconds:.1} s (features of the images, cached, and the fits)\n");
    let _ = writeln!(r, "| layer | units | of | voxels per unit | decoder bytes | CV r | held-out r (mean) | held-out r (median) | true mean (avg) | true std (avg) |\n|---|---|---|---|---|---|---|---|---|---|");
    for l in layers {
        let avg = |x: &[f32]| x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64;
        let (tm, tmed) = match &l.test_r {
            Some(t) => {
                let mut s = t.clone();
                s.sort_by(f32::total_cmp);
                (format!("{:.3}", avg(t)), format!("{:.3}", s[s.len() / 2]))
            }
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} | {tm} | {tmed} | {:.4} | {:.4} |",
            l.layer,
            l.info.units.len(),
            l.info.layer_units,
            l.voxels_per_unit,
            l.bytes,
            l.cv_r.map_or("-".into(), |c| format!("{c:.3}")),
            avg(&l.info.mean),
            avg(&l.info.std)
        );
    }
    let _ = writeln!(r, "\nThe per-unit training mean and standard deviation (ddof 1) of the true features are stored in each decoder (`feature_mean`, `feature_std`) for the rescaling before reconstruction (`fit::features::rescale`).");
    r
}
