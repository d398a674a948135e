//! `percept demo`, the README's main command: on the shipped files only, simulate a subject,
//! fit the early visual -> z decoder, reconstruct the held-out test photos, evaluate them
//! against a shuffled-voxel control, and write a grid and a report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use percept_core::Target;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::io::image::Rgb;
use crate::error::Result;
use crate::eval::features::Judges;
use crate::eval::{mean, Scores};
use crate::io::output::{ensure_fresh_dir, ensure_writable, lock, write_atomic};
use crate::fit::ridge::alpha_label;
use crate::fit::{fit, FitSpec, RidgeOptions};
use crate::nn::taesd::Taesd;
use crate::progress::{Progress, Silent};
use crate::sim::{self, Settings, Subject};

/// What the demo does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder for every output.
    pub out: PathBuf,
    /// Replace the outputs of an earlier run.
    pub force: bool,
    /// The simulated subject.
    pub settings: Settings,
    /// TAESD weights folder.
    pub taesd: PathBuf,
    /// Score in EfficientNet-Lite0's feature space too (the papers' feature columns).
    pub feature_columns: bool,
}

impl Options {
    /// The defaults: the shipped TAESD, the default subject.
    pub fn new(out: &Path, force: bool) -> Self {
        Options { out: out.to_path_buf(), force, settings: Settings::default(), taesd: crate::paths::taesd(), feature_columns: true }
    }
}

/// The targets set for the held-out photos at the default noise.
const TARGET_TWO_WAY_LATENT: f64 = 0.90;
const TARGET_TWO_WAY_PIXEL: f64 = 0.80;
const TARGET_PIXCORR: f64 = 0.25;

/// Outcome of a demo run.
#[derive(Debug)]
pub struct Outcome {
    /// The Markdown report (also in `out/report.md`).
    pub report: String,
    /// Scores of the decoder's reconstructions.
    pub scores: Scores,
    /// Scores of the shuffled-voxel control.
    pub control: Scores,
}

/// Per-stage wall-clock times.
pub(crate) struct Clock(pub(crate) Vec<(String, f64)>, Instant);

impl Clock {
    /// A clock started now.
    pub(crate) fn start() -> Self {
        Clock(Vec::new(), Instant::now())
    }

    /// Records the time since the last lap under `what`.
    pub(crate) fn lap(&mut self, what: &str) {
        let t = self.1.elapsed().as_secs_f64();
        tracing::info!("{what}: {t:.1} s");
        self.0.push((what.to_string(), t));
        self.1 = Instant::now();
    }
}

/// The demo's first stages, shared with `percept demo --dir` (`super::demo_dir`): the subject
/// (saved in `out/subject`), TAESD, the latents of its stimuli, and the early visual -> z
/// decoder with its shuffled-voxel control (in `out/decoders`).
pub(crate) struct ZStage {
    /// The simulated subject.
    pub subject: Subject,
    /// TAESD (f32).
    pub taesd: Taesd,
    /// `(test photos, l)` TAESD latents of the test photos.
    pub test_z: Vec<f32>,
    /// The z decoder.
    pub fitted: crate::fit::Fitted,
    /// Seconds its fit took.
    pub fit_seconds: f64,
    /// Its file.
    pub dec_path: PathBuf,
    /// The shuffled control's file.
    pub control_path: PathBuf,
    /// The permutation of training trials the control's voxel rows were shuffled by.
    pub perm: Vec<usize>,
}

/// Simulates and saves the subject, encodes its stimuli and fits the z decoder and its
/// shuffled-voxel control; one lap of `clock` per stage.
pub(crate) fn z_stage(ctx: &super::Context, out: &Path, force: bool, s: &Settings, taesd_dir: &Path, clock: &mut Clock, b: &dyn Progress) -> Result<ZStage> {
    let gpu = ctx.gpu()?;
    let taesd = Taesd::load(gpu, taesd_dir, crate::nn::taesd::WEIGHTS)?;

    // 1. The subject.
    let photos = sim::shipped_photos()?;
    let subject = sim::simulate(s, &photos, Some(gpu), b)?;
    b.begin("saving", 0);
    subject.save(&out.join("subject"), force, b)?;
    b.done();
    clock.lap("simulate the subject and save it");

    // 2. Targets: the TAESD latent of every training stimulus; and of the test photos.
    let l = 4 * (s.size / 8) * (s.size / 8);
    b.begin("encoding", (subject.train_stimuli.len() + subject.test_stimuli.len()) as u64);
    let all: Vec<&Rgb> = subject.train_stimuli.iter().chain(&subject.test_stimuli).map(|st| &st.image).collect();
    let latents = taesd.encode_rgb(gpu, &all, b)?;
    b.done();
    let (train_z, test_z) = latents.split_at(subject.train_stimuli.len() * l);
    clock.lap("encode the stimuli with TAESD (targets)");

    // 3. Decoders: the real one, and a control fitted on shuffled voxel rows.
    let (region, range) = sim::regions(&subject).swap_remove(0);
    let nv = subject.voxels.len();
    let v = range.len();
    let n = subject.train.shown.len();
    let x = sim::columns(&subject.train.voxels, nv, range);
    let y: Vec<f32> = subject.train.shown.iter().flat_map(|&i| train_z[i * l..(i + 1) * l].iter().copied()).collect();
    let spec = FitSpec {
        region: region.to_string(),
        target: Target::Z,
        target_shape: vec![4, s.size / 8, s.size / 8],
        ridge: RidgeOptions::default(),
        rank: None,
    };
    let dec_dir = out.join("decoders");
    b.begin("fitting", 0);
    let t = Instant::now();
    let fitted = fit(&x, n, v, &y, &spec, b)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    b.done();
    let dec_path = dec_dir.join("early_visual_z.safetensors");
    fitted.file.save(&dec_path, true)?;
    write_atomic(&dec_path.with_extension("md"), crate::fit::report(&fitted, &spec, n, v, "simulated subject", fit_seconds).as_bytes(), true)?;
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut ChaCha8Rng::seed_from_u64(s.seed ^ 0x5EED));
    let shuffled: Vec<f32> = perm.iter().flat_map(|&i| x[i * v..(i + 1) * v].iter().copied()).collect();
    b.begin("control", 0);
    let control_fit = fit(&shuffled, n, v, &y, &spec, b)?;
    b.done();
    let control_path = dec_dir.join("control_shuffled_z.safetensors");
    control_fit.file.save(&control_path, true)?;
    clock.lap("fit the decoder and the shuffled control");
    let test_z = test_z.to_vec();
    Ok(ZStage { subject, taesd, test_z, fitted, fit_seconds, dec_path, control_path, perm })
}

/// Scores images against one set of originals: pixel and latent metrics, and the judging
/// network's columns when `judges` is given.
pub(crate) struct Scorer<'a> {
    gpu: &'a crate::gpu::Gpu,
    taesd: &'a Taesd,
    judges: Option<&'a Judges>,
    truth: Vec<Rgb>,
    truth_z: Vec<Vec<f32>>,
}

impl<'a> Scorer<'a> {
    /// A scorer of reconstructions of `truth`, whose TAESD latents are `truth_z` (`None`: encoded here).
    pub(crate) fn new(gpu: &'a crate::gpu::Gpu, taesd: &'a Taesd, judges: Option<&'a Judges>, truth: Vec<Rgb>, truth_z: Option<&[f32]>) -> Result<Self> {
        let l = 4 * (truth[0].width / 8) * (truth[0].height / 8);
        let z = match truth_z {
            Some(z) => z.to_vec(),
            None => taesd.encode_rgb(gpu, &truth.iter().collect::<Vec<_>>(), &Silent)?,
        };
        let truth_z = z.chunks(l).map(<[f32]>::to_vec).collect();
        Ok(Scorer { gpu, taesd, judges, truth, truth_z })
    }

    /// The originals.
    pub(crate) fn truth(&self) -> &[Rgb] {
        &self.truth
    }

    /// The scores of `imgs` (one per original, same order).
    pub(crate) fn score(&self, imgs: &[Rgb]) -> Result<Scores> {
        let l = self.truth_z[0].len();
        let zs = self.taesd.encode_rgb(self.gpu, &imgs.iter().collect::<Vec<_>>(), &Silent)?;
        let zs: Vec<Vec<f32>> = zs.chunks(l).map(<[f32]>::to_vec).collect();
        let mut r = Scores::compute(&self.truth, imgs, Some((&self.truth_z, &zs)))?;
        if let Some(j) = self.judges {
            r.features = j.score(self.gpu, &self.truth, imgs)?;
        }
        Ok(r)
    }
}

/// Runs the demo.
pub fn run(ctx: &super::Context, o: &Options, progress: &dyn Progress) -> Result<Outcome> {
    let b = progress;
    let (out, s) = (&o.out, &o.settings);
    let report_path = out.join("report.md");
    let grid_path = out.join("grid.png");
    let _lock = lock(out)?;
    for p in [&report_path, &grid_path] {
        ensure_writable(p, o.force)?;
    }
    // A folder with files but no report (an interrupted run) is refused too.
    ensure_fresh_dir(out, o.force)?;
    let mut clock = Clock::start();
    let gpu = ctx.gpu()?;
    let z = z_stage(ctx, out, o.force, s, &o.taesd, &mut clock, b)?;
    let (subject, taesd) = (&z.subject, &z.taesd);

    // 4. Reconstruct the test photos from their averaged repeats.
    let (range, nv) = (sim::regions(subject).swap_remove(0).1, subject.voxels.len());
    let v = range.len();
    let groups: Vec<Vec<usize>> = (0..subject.test_stimuli.len()).map(|k| subject.test.shown.iter().enumerate().filter(|(_, &i)| i == k).map(|(t, _)| t).collect()).collect();
    let test_x = crate::io::stimuli::average_rows(&sim::columns(&subject.test.voxels, nv, range), v, &groups);
    let nt = groups.len();
    let h = s.size / 8;
    b.begin("reconstruct", 3);
    let (zp, _) = crate::pipeline::reconstruct::decode_voxels(&z.dec_path, &test_x, nt)?;
    let recon = taesd.decode_latents(gpu, &zp, nt, h, h)?;
    b.inc(1);
    let (zc, _) = crate::pipeline::reconstruct::decode_voxels(&z.control_path, &test_x, nt)?;
    let control = taesd.decode_latents(gpu, &zc, nt, h, h)?;
    b.inc(1);
    let ceiling = taesd.decode_latents(gpu, &z.test_z, nt, h, h)?;
    b.done();
    let rec_dir = out.join("reconstructions");
    for (k, st) in subject.test_stimuli.iter().enumerate() {
        recon[k].save_png(&rec_dir.join(&st.name), true)?;
        control[k].save_png(&rec_dir.join(st.name.replace("test_", "control_")), true)?;
    }
    clock.lap("reconstruct the test photos");

    // 5. Evaluate.
    b.begin("evaluating", 3);
    let truth: Vec<Rgb> = subject.test_stimuli.iter().map(|st| st.image.clone()).collect();
    // The judging network (EfficientNet-Lite0, shipped) adds the feature columns.
    let judges = if o.feature_columns { Some(Judges::shipped(gpu)?) } else { None };
    let scorer = Scorer::new(gpu, taesd, judges.as_ref(), truth, Some(&z.test_z))?;
    let score = |imgs: &[Rgb]| -> Result<Scores> {
        let r = scorer.score(imgs);
        b.inc(1);
        r
    };
    let scores = score(&recon)?;
    let control_scores = score(&control)?;
    let ceiling_scores = score(&ceiling)?;
    b.done();
    let g = crate::pipeline::reconstruct::grid(&[scorer.truth(), &recon, &control])?;
    g.save_png(&grid_path, true)?;
    clock.lap("evaluate and draw the grid");

    let report = write_report(o, subject, &z.fitted, z.fit_seconds, &[("decoder", &scores), ("shuffled control", &control_scores), ("TAESD round trip (ceiling)", &ceiling_scores)], &clock.0);
    write_atomic(&report_path, report.as_bytes(), true)?;
    Ok(Outcome { report, scores, control: control_scores })
}

fn write_report(o: &Options, subject: &Subject, fitted: &crate::fit::Fitted, fit_seconds: f64, rows: &[(&str, &Scores)], times: &[(String, f64)]) -> String {
    let s = &o.settings;
    let mut r = String::new();
    let _ = writeln!(r, "# percept demo: reconstruction from a simulated subject\n");
    let _ = writeln!(r, "![originals (top), reconstructions (middle), shuffled-voxel control (bottom)](grid.png)\n");
    let _ = writeln!(r, "Top row: the held-out test photos as shown ({0}x{0}); middle: reconstructed from early visual voxels (averaged over {1} repeats) through the ridge decoder and TAESD's decoder; bottom: the same with a decoder fitted on shuffled voxel rows.\n", s.size, s.test_repeats);
    r.push_str(&subject_section(subject));
    let _ = writeln!(r, "## Decoder\n");
    let mean_r = fitted.cv_r.iter().sum::<f32>() / fitted.cv_r.len().max(1) as f32;
    let grid = &RidgeOptions::default().alphas;
    let _ = writeln!(
        r,
        "Ridge from {} early visual voxels to z (4x{}x{}), alpha chosen by 5-fold CV (lowest prediction error) from the default grid ({} alphas, {} ... {}): **alpha {}**; fitted in {fit_seconds:.1} s; cross-validated correlation with the true latents: mean {mean_r:.3}. File: `decoders/early_visual_z.safetensors` (report beside it, with the score of every alpha).\n",
        fitted.file.voxels,
        s.size / 8,
        s.size / 8,
        grid.len(),
        alpha_label(grid[0]),
        alpha_label(grid[grid.len() - 1]),
        alpha_label(fitted.alpha[0])
    );
    if let Some(w) = &fitted.warning {
        let _ = writeln!(r, "**Warning:** {w}.\n");
    }
    let _ = writeln!(r, "## Scores on the {} held-out photos\n", rows[0].1.pixcorr.len());
    let _ = writeln!(r, "{}", crate::eval::table_header("", rows[0].1));
    for (name, sc) in rows {
        let _ = writeln!(r, "{}", crate::eval::mean_row(name, sc));
    }
    let sc = rows[0].1;
    let checks = [
        ("2-way latent", mean(&sc.two_way_latent), TARGET_TWO_WAY_LATENT, true),
        ("2-way pixel", mean(&sc.two_way_pixel), TARGET_TWO_WAY_PIXEL, true),
        ("PixCorr", mean(&sc.pixcorr), TARGET_PIXCORR, false),
    ];
    let _ = writeln!(r, "\nTargets:");
    for (name, got, want, pct) in checks {
        let f = |x: f64| if pct { format!("{:.1}%", 100.0 * x) } else { format!("{x:.3}") };
        let _ = writeln!(r, "- {name} >= {}: {} ({})", f(want), f(got), if got >= want { "met" } else { "NOT met" });
    }
    let c = rows[1].1;
    let _ = writeln!(r, "- shuffled control near chance (50%): 2-way latent {:.1}%, pixel {:.1}%", 100.0 * mean(&c.two_way_latent), 100.0 * mean(&c.two_way_pixel));
    let _ = writeln!(r, "\nMetrics: PixCorr and SSIM at 425x425 (bilinear), SSIM on grayscale with a Gaussian window (sigma 1.5); two-way identification = for each photo, the share of other test reconstructions that correlate less with it than its own (pixels at 425x425, or TAESD latents of the {0}x{0} images).{1}\n", s.size, crate::eval::feature_note(rows[0].1));
    let _ = writeln!(r, "{}", crate::eval::table_header("photo | source", sc).replacen("|---|", "|---|---|", 1));
    for (k, st) in subject.test_stimuli.iter().enumerate() {
        let cells: Vec<String> = sc.columns().iter().map(|(_, v, pct)| crate::eval::cell(v[k], *pct, 0)).collect();
        let _ = writeln!(r, "| {} | {} | {} |", st.name, st.source, cells.join(" | "));
    }
    let _ = writeln!(r, "\n## Time\n\n| stage | seconds |\n|---|---|");
    for (what, t) in times {
        let _ = writeln!(r, "| {what} | {t:.1} |");
    }
    let _ = writeln!(r, "| total | {:.1} |", times.iter().map(|t| t.1).sum::<f64>());
    r
}

/// The report's "Subject" section.
pub(crate) fn subject_section(subject: &Subject) -> String {
    let s = &subject.settings;
    let mut r = String::new();
    let _ = writeln!(r, "## Subject\n");
    let p = &s.population;
    let photos = subject.train_stimuli.iter().filter(|st| st.source != "drawn").map(|st| &st.source).collect::<std::collections::BTreeSet<_>>().len();
    let _ = writeln!(r, "- {} early visual voxels (V1-V3: population receptive fields with Gabor-energy, luminance and colour tuning) and {} higher visual voxels (large fields, driven by coarse content, the captions' words and, with share {}, a random mixture of EfficientNet-Lite1's late features); median single-trial SNR {} and {}, {:.0}% of voxels nearly signal-free.", p.early, p.higher, s.dnn.share, p.snr_early, p.snr_higher, p.dead * 100.0);
    let _ = writeln!(r, "- Training: {} stimuli ({} crops of {photos} photos, {} shapes, {} letters), {} trial(s) each. Test: {} whole photos never cropped into training, {} trials each.", subject.train_stimuli.len(), photos * s.crops, s.shapes, s.letters, s.train_repeats, subject.test_stimuli.len(), s.test_repeats);
    let _ = writeln!(r, "- Seed {}; everything is in `subject/` (stimuli, voxels as .npy and NIfTI, settings).\n", s.seed);
    r
}
