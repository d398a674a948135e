//! The report of `percept demo --dir`, and the imagery experiment's per-category scores.

use std::fmt::Write as _;

use super::{ImageryCell, ImageryRow, Options};
use crate::eval::{cell, feature_note, mean, mean_row, table_header, Scores};
use crate::fit::features::Method;
use crate::fit::ridge::alpha_label;
use crate::pipeline::dir::{default_lr, Optimizer};
use crate::pipeline::features::Outcome as FeatOutcome;

/// The imagery categories in report order.
const KINDS: [&str; 3] = ["photo", "shape", "letter"];

/// For each imagined image, the index of the image it is paired with in the shuffled control:
/// the next image of the same category (cyclically), or the next image of any category when
/// it is the only one of its kind.
pub(super) fn shuffled_pairing(kinds: &[&str]) -> Vec<usize> {
    let n = kinds.len();
    (0..n)
        .map(|i| {
            let same: Vec<usize> = (0..n).filter(|&j| kinds[j] == kinds[i]).collect();
            if same.len() > 1 {
                let k = same.iter().position(|&j| j == i).unwrap_or(0);
                same[(k + 1) % same.len()]
            } else {
                (i + 1) % n
            }
        })
        .collect()
}

/// Per category and method: each column's mean over the category's images, against the
/// imagined images and against the shuffled pairing.
pub(super) fn per_kind(kinds: &[&'static str], scores: &[(&'static str, Scores, Scores)]) -> Vec<ImageryRow> {
    let mut rows = Vec::new();
    for kind in KINDS {
        let idx: Vec<usize> = (0..kinds.len()).filter(|&i| kinds[i] == kind).collect();
        if idx.is_empty() {
            continue;
        }
        let sub = |v: &[f64]| mean(&idx.iter().map(|&i| v[i]).collect::<Vec<_>>());
        let methods = scores
            .iter()
            .map(|(name, real, control)| {
                let cols = real.columns().iter().zip(control.columns()).map(|((c, v, pct), (_, w, _))| ImageryCell { column: c.to_string(), pct: *pct, imagined: sub(v), shuffled: sub(w) }).collect();
                (*name, cols)
            })
            .collect();
        rows.push(ImageryRow { kind, images: idx.len(), methods });
    }
    rows
}

/// What the report says besides the scores.
pub(super) struct Facts<'a> {
    pub o: &'a Options,
    pub subject: String,
    pub z_alpha: f64,
    pub features: &'a FeatOutcome,
    pub features_control: &'a FeatOutcome,
    /// Mean feature loss, first and last, of each DIR run.
    pub losses: [(&'static str, (f32, f32)); 3],
    pub kinds: &'a [&'static str],
}

fn column<'a>(s: &'a Scores, name: &str) -> Option<&'a [f64]> {
    s.columns().into_iter().find(|c| c.0 == name).map(|c| c.1)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The Markdown report.
pub(super) fn write(f: &Facts, test: &[(&str, Scores)], imagery: &[ImageryRow], times: &[(String, f64)]) -> String {
    let o = f.o;
    let s = &o.settings;
    let mut r = String::new();
    let _ = writeln!(r, "# percept demo --dir: deep image reconstruction and mental imagery from a simulated subject\n");
    let _ = writeln!(r, "![originals, z-only, DIR, z-only control, DIR control](grid.png)\n");
    let _ = writeln!(
        r,
        "Rows, top to bottom: the held-out test photos as shown ({0}x{0}); z-only (early visual voxels -> TAESD latent -> TAESD's decoder); deep image reconstruction (DIR: every voxel -> EfficientNet-Lite2 features -> an image optimised through TAESD's decoder from the z-only start until its Lite2 features match); the z-only and DIR reconstructions with every decoder fitted on shuffled voxel rows (the control).\n",
        s.size
    );
    r.push_str(&f.subject);
    let _ = writeln!(r, "## Decoders\n");
    let _ = writeln!(r, "- z: ridge from the early visual voxels, alpha {} by 5-fold CV (`decoders/early_visual_z.safetensors`, report beside it).", alpha_label(f.z_alpha));
    let method = match &o.method {
        Method::Ridge(_) => "dense ridge on every voxel (early + higher visual), alpha by 5-fold CV".to_string(),
        Method::FastL2Lir(x) => format!("FastL2LiR (per unit the {} voxels of highest |r|, alpha {})", x.select, x.alpha),
    };
    let _ = writeln!(r, "- features: EfficientNet-Lite2, {} random units per layer (seed {}), {method}, trained on perception only (`decoders/features/`, report there; the control's in `decoders/features_control/`):\n", o.units, s.seed);
    let _ = writeln!(r, "| layer | units | of | decoder bytes | CV r | held-out r (mean) | control held-out r (mean) |\n|---|---|---|---|---|---|---|");
    let avg = |t: &Option<Vec<f32>>| t.as_ref().map_or("-".into(), |t| format!("{:.3}", t.iter().map(|&v| v as f64).sum::<f64>() / t.len().max(1) as f64));
    for (l, c) in f.features.layers.iter().zip(&f.features_control.layers) {
        let _ = writeln!(r, "| {} | {} | {} | {} | {} | {} | {} |", l.layer, l.info.units.len(), l.info.layer_units, l.bytes, l.cv_r.map_or("-".into(), |c| format!("{c:.3}")), avg(&l.test_r), avg(&c.test_r));
    }
    let _ = writeln!(r, "\n## Held-out photos ({})\n", test[0].1.pixcorr.len());
    let _ = writeln!(r, "{}", table_header("", &test[0].1));
    for (name, sc) in test {
        let _ = writeln!(r, "{}", mean_row(name, sc));
    }
    let _ = writeln!(r, "\nTargets (issue 16):");
    let (z, d) = (&test[0].1, &test[1].1);
    if let (Some(zl), Some(dl)) = (column(z, "EffNet-Lite0 late"), column(d, "EffNet-Lite0 late")) {
        let _ = writeln!(r, "- DIR identifies the photos better than z-only in the judge's late layer (EffNet-Lite0 late): {:.1}% vs {:.1}% ({})", 100.0 * mean(dl), 100.0 * mean(zl), verdict(mean(dl) > mean(zl)));
    }
    let (dp, cp) = (mean(&d.two_way_pixel), mean(&test[3].1.two_way_pixel));
    let _ = writeln!(r, "- DIR stays above chance in pixel space: 2-way pixel {:.1}% (chance 50%; its shuffled control {:.1}%) ({})", 100.0 * dp, 100.0 * cp, verdict(dp > 0.5 && dp > cp));
    let _ = writeln!(r, "\nMetrics: PixCorr and SSIM at 425x425, two-way identification in pixels (425x425) and in TAESD latents.{}\n", feature_note(z));
    imagery_section(&mut r, f, imagery);
    settings_section(&mut r, f);
    let _ = writeln!(r, "\n## Time\n\n| stage | seconds |\n|---|---|");
    for (what, t) in times {
        let _ = writeln!(r, "| {what} | {t:.1} |");
    }
    let _ = writeln!(r, "| total | {:.1} |", times.iter().map(|t| t.1).sum::<f64>());
    r
}

fn imagery_section(r: &mut String, f: &Facts, rows: &[ImageryRow]) {
    let im = &f.o.settings.imagery;
    let _ = writeln!(r, "## Mental imagery\n");
    let _ = writeln!(r, "![imagined (top), z-only (middle), DIR (bottom)](imagery.png)\n");
    let _ = writeln!(
        r,
        "The subject imagined {} images ({} trials each; early visual signal x{}, higher visual x{}, early areas see the image low-passed: `sim::imagery`). Decoders trained on perception only. Each cell: against the imagined image / against the shuffled pairing (each reconstruction scored against another imagined image of its category); identification is against the other {} imagined images.\n",
        f.kinds.len(),
        im.repeats,
        im.early_gain,
        im.higher_gain,
        f.kinds.len().saturating_sub(1)
    );
    let Some(first) = rows.first().and_then(|x| x.methods.first()) else { return };
    let names: Vec<&str> = first.1.iter().map(|c| c.column.as_str()).collect();
    let _ = writeln!(r, "| category | images | method | {} |\n|{}", names.join(" | "), "---|".repeat(names.len() + 3));
    for row in rows {
        for (method, cols) in &row.methods {
            let cells: Vec<String> = cols.iter().map(|c| format!("{} / {}", cell(c.imagined, c.pct, 1), cell(c.shuffled, c.pct, 1))).collect();
            let _ = writeln!(r, "| {}s | {} | {method} | {} |", row.kind, row.images, cells.join(" | "));
        }
    }
    let _ = writeln!(r, "\nTarget (issue 16): imagery above chance for shapes.");
    match rows.iter().find(|x| x.kind == "shape") {
        Some(row) => {
            for (method, cols) in &row.methods {
                let get = |n: &str| cols.iter().find(|c| c.column == n).map(|c| (c.imagined, c.shuffled));
                if let Some((a, b)) = get("2-way pixel") {
                    let _ = writeln!(r, "- {method}, 2-way pixel: {:.1}% (shuffled pairing {:.1}%, chance 50%) ({})", 100.0 * a, 100.0 * b, verdict(a > 0.5 && a > b));
                }
                if let Some((a, b)) = get("EffNet-Lite0 late") {
                    let _ = writeln!(r, "- {method}, EffNet-Lite0 late: {:.1}% (shuffled pairing {:.1}%) ({})", 100.0 * a, 100.0 * b, verdict(a > 0.5 && a > b));
                }
            }
            let _ = writeln!(r, "\nWith {} shapes each percentage rests on few comparisons: read it as a rough sign.\n", row.images);
        }
        None => {
            let _ = writeln!(r, "- no imagined shapes in this subject\n");
        }
    }
}

fn settings_section(r: &mut String, f: &Facts) {
    let o = f.o;
    let lr = o.lr.unwrap_or_else(|| default_lr(o.optimizer, true));
    let opt = match o.optimizer {
        Optimizer::Sgd => "the lab's DGN descent (SGD, momentum 0.9, rate falling linearly to 0, gradient / mean |gradient|, L2 decay 0.01 on the latent)",
        Optimizer::Adam => "Adam",
    };
    let _ = writeln!(r, "## Settings\n");
    let _ = writeln!(r, "- DIR: loss network EfficientNet-Lite2 (images resized to 224), layers {}; generator TAESD's decoder, latent started from the z decoder's prediction; {opt}, rate {lr}, {} iterations, batch {}; output rule: clip 0.02% at each end and rescale.", o.layers.join(", "), o.iterations, o.batch);
    let _ = writeln!(r, "- Judge: EfficientNet-Lite0 (not the loss network). Size {0}x{0}.", o.settings.size);
    let _ = write!(r, "- Mean feature loss, first -> last iteration:");
    for (what, (a, b)) in &f.losses {
        let _ = write!(r, " {what} {a:.4} -> {b:.4};");
    }
    let _ = writeln!(r, "\n- Outputs: `dir/test`, `dir/control`, `dir/imagery` (each a `percept reconstruct --method dir` folder: images, grid, loss.csv, pairs.csv for `percept eval`); `voxels/` (every voxel of each split, and the training rows shuffled for the control).");
}
