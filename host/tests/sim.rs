//! The simulated subject, reconstruction and the demo, at tiny sizes.

use percept::io::image::Rgb;
use percept::sim::cortex::{self, Area, ORIENTATIONS, PopulationSettings};
use percept::sim::dnn::DnnSettings;
use percept::sim::{self, Settings};

fn tiny() -> Settings {
    Settings {
        size: 32,
        grid: 16,
        test_photos: 8,
        crops: 3,
        shapes: 30,
        letters: 20,
        population: PopulationSettings { early: 600, higher: 100, ..Settings::default().population },
        dnn: DnnSettings { share: 0.0, ..DnnSettings::default() },
        ..Settings::default()
    }
}

static QUIET: percept::progress::Silent = percept::progress::Silent;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn test_photos_are_held_out_whole_and_runs_are_seeded() {
    let photos = sim::shipped_photos().unwrap();
    assert_eq!(photos.len(), 56);
    let s = tiny();
    let a = sim::simulate(&s, &photos, None, &QUIET).unwrap();
    let train_sources: std::collections::HashSet<&str> = a.train_stimuli.iter().map(|st| st.source.as_str()).collect();
    assert_eq!(a.test_stimuli.len(), 8);
    for st in &a.test_stimuli {
        assert!(!train_sources.contains(st.source.as_str()), "{} is both a test photo and a training source", st.source);
    }
    assert_eq!(a.train_stimuli.len(), 48 * 3 + 30 + 20);
    assert_eq!(a.train.shown.len(), a.train_stimuli.len());
    assert_eq!(a.test.shown.len(), 8 * 3);
    assert_eq!(a.train.voxels.len(), a.train.shown.len() * 700);
    assert!(a.train.voxels.iter().all(|v| v.is_finite()));
    let b = sim::simulate(&s, &photos, None, &QUIET).unwrap();
    assert_eq!(a.train.voxels, b.train.voxels);
    let c = sim::simulate(&Settings { seed: 7, ..s.clone() }, &photos, None, &QUIET).unwrap();
    assert_ne!(a.train.voxels, c.train.voxels);
    let err = sim::simulate(&Settings { test_photos: 56, ..s }, &photos, None, &QUIET).unwrap_err().to_string();
    assert!(err.contains("56 test photos") && err.contains("only 56"), "{err}");
}

#[test]
fn gabor_energy_is_tuned_to_orientation_and_blank_screens_are_silent() {
    let size = 32;
    // A vertical grating of wavelength 4 px: luminance varies along x.
    let data: Vec<f32> = (0..size * size).flat_map(|i| {
        let v = 0.5 + 0.4 * (std::f32::consts::TAU * (i % size) as f32 / 4.0).cos();
        [v, v, v]
    }).collect();
    let img = Rgb { height: size, width: size, data };
    let g = 8;
    let f = cortex::features(&img, g);
    let energy = |o: usize| f[o * g * g..(o + 1) * g * g].iter().sum::<f32>();
    let e: Vec<f32> = (0..ORIENTATIONS).map(energy).collect();
    assert!(e[0] > 5.0 * e[2] && e[0] > 2.0 * e[1], "orientation energies at the finest scale {e:?}");
    let blank = Rgb { height: size, width: size, data: vec![0.5; size * size * 3] };
    assert!(cortex::features(&blank, g).iter().all(|v| v.abs() < 1e-5));
    // Words: the same caption words give the same vector; other words another.
    let a = cortex::semantic(&["A red circle".into()]);
    assert_eq!(a, cortex::semantic(&["a RED circle".into()]));
    let b = cortex::semantic(&["the letter K".into()]);
    let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!(dot.abs() < 0.9, "{dot}");
}

#[test]
fn voxels_follow_their_receptive_fields() {
    // A voxel whose field sits on the left half responds to a patch there, not on the right.
    let photos = sim::shipped_photos().unwrap();
    let s = tiny();
    let subj = sim::simulate(&s, &photos, None, &QUIET).unwrap();
    assert!(subj.voxels.iter().filter(|v| v.area == Area::Higher).count() == 100);
    let size = 32;
    let patch = |left: bool| {
        let data = (0..size * size).flat_map(|i| {
            let (x, y) = (i % size, i / size);
            let on = if left { x < 12 } else { x >= 20 } && (10..22).contains(&y) && (x + y) % 4 < 2;
            let v = if on { 1.0 } else { 0.5 };
            [v, v, v]
        });
        Rgb { height: size, width: size, data: data.collect() }
    };
    let maps = vec![cortex::features(&patch(true), s.grid), cortex::features(&patch(false), s.grid), cortex::features(&Rgb { height: size, width: size, data: vec![0.5; size * size * 3] }, s.grid)];
    let sem = vec![[0f32; cortex::SEMANTIC_DIM]; 3];
    let small: Vec<_> = subj.voxels.iter().filter(|v| matches!(v.area, Area::Early(1)) && v.sigma < 0.15 && (v.centre.1).abs() < 0.2).cloned().collect();
    let left: Vec<_> = small.iter().filter(|v| v.centre.0 < -0.4).cloned().collect();
    let right: Vec<_> = small.iter().filter(|v| v.centre.0 > 0.4).cloned().collect();
    assert!(left.len() >= 3 && right.len() >= 3, "{} {}", left.len(), right.len());
    for (group, stim) in [(&left, 0usize), (&right, 1usize)] {
        let r = cortex::responses(group, &maps, &sem, s.grid, &QUIET);
        let mean = |k: usize| group.iter().enumerate().map(|(v, _)| r[v * 3 + k]).sum::<f32>() / group.len() as f32;
        let other = 1 - stim;
        assert!(mean(stim) > mean(other) + 0.5, "stimulus {stim}: {} vs {}", mean(stim), mean(other));
    }
}

#[test]
fn saved_subject_reads_back_as_npy_and_nifti() {
    let photos = sim::shipped_photos().unwrap();
    let s = Settings { crops: 1, shapes: 4, letters: 4, ..tiny() };
    let subj = sim::simulate(&s, &photos, None, &QUIET).unwrap();
    let dir = tmp("save");
    subj.save(&dir, false, &QUIET).unwrap();
    let npy = percept::io::npy::read(&dir.join("early_visual_train.npy")).unwrap();
    assert_eq!(npy.shape, vec![subj.train.shown.len(), 600]);
    let (nii, n, v) = percept::io::nifti::load_masked(&[dir.join("nifti/train.nii.gz")], &dir.join("nifti/mask_early_visual.nii.gz")).unwrap();
    assert_eq!((n, v), (subj.train.shown.len(), 600));
    assert_eq!(nii, npy.data);
    let higher = percept::io::npy::read(&dir.join("higher_visual_test.npy")).unwrap();
    assert_eq!(higher.shape, vec![24, 100]);
    let trials = percept::io::stimuli::read(&dir.join("test.csv")).unwrap();
    assert_eq!(trials.len(), 24);
    assert!(trials.iter().all(|t| t.image.exists() && !t.captions.is_empty()));
    // The captions read back are the subject's own, commas included (quoted CSV; line
    // breaks become spaces, `|` becomes `/`).
    for (t, &i) in trials.iter().zip(&subj.test.shown) {
        let want: Vec<String> = subj.test_stimuli[i].captions.iter().map(|c| c.replace('|', "/").replace('\n', " ").trim().to_string()).collect();
        assert_eq!(t.captions, want);
    }
    let err = subj.save(&dir, false, &QUIET).unwrap_err().to_string();
    assert!(err.contains("settings.txt") && err.contains("--force"), "{err}");
    subj.save(&dir, true, &QUIET).unwrap();
}

#[test]
fn demo_end_to_end_beats_the_shuffled_control() {
    let dir = tmp("demo");
    let mut o = percept::pipeline::demo::Options::new(&dir, false);
    o.settings = tiny();
    let out = percept::pipeline::demo::run(crate::common::ctx(), &o, &QUIET).unwrap();
    let mean = percept::eval::mean;
    let (dec, ctl) = (mean(&out.scores.two_way_latent), mean(&out.control.two_way_latent));
    // 8 test photos: identification steps of 1/7 per photo; the control sits near 50%.
    assert!(dec > 0.7 && dec > ctl + 0.15, "decoder {dec} vs control {ctl}");
    assert!(mean(&out.scores.pixcorr) > mean(&out.control.pixcorr), "{}", out.report);
    for f in ["report.md", "grid.png", "decoders/early_visual_z.safetensors", "subject/settings.txt", "reconstructions/test_000.png"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let err = percept::pipeline::demo::run(crate::common::ctx(), &percept::pipeline::demo::Options { settings: tiny(), ..percept::pipeline::demo::Options::new(&dir, false) }, &QUIET).unwrap_err().to_string();
    assert!(err.contains("report.md") && err.contains("--force"), "{err}");
}

/// Pearson correlation.
fn corr(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() as f32;
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut ab, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    ab / (aa * bb).sqrt().max(1e-12)
}

/// Mean voxel pattern `(voxels in range,)` of the trials that showed stimulus `i`.
fn mean_pattern(t: &sim::Trials, nv: usize, i: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    let rows: Vec<&[f32]> = t.shown.iter().zip(t.voxels.chunks(nv)).filter(|(s, _)| **s == i).map(|(_, r)| &r[range.clone()]).collect();
    (0..range.len()).map(|v| rows.iter().map(|r| r[v]).sum::<f32>() / rows.len() as f32).collect()
}

#[test]
fn imagery_leaves_perception_alone_and_is_weak_early_and_closer_higher() {
    let photos = sim::shipped_photos().unwrap();
    let mut s = tiny();
    s.test_repeats = 6;
    s.imagery = sim::imagery::ImagerySettings { photos: 8, shapes: 3, letters: 2, repeats: 6, ..Default::default() };
    let a = sim::simulate(&s, &photos, None, &QUIET).unwrap();
    let none = sim::simulate(&Settings { imagery: sim::imagery::ImagerySettings { photos: 0, shapes: 0, letters: 0, ..Default::default() }, ..s.clone() }, &photos, None, &QUIET).unwrap();
    assert_eq!((a.train.voxels == none.train.voxels, a.test.voxels == none.test.voxels), (true, true), "imagining changed the perception trials");
    assert!(none.imagery.shown.is_empty());
    assert_eq!((a.imagery_stimuli.len(), a.imagery.shown.len()), (13, 13 * 6));
    assert!(a.imagery.voxels.iter().all(|v| v.is_finite()));
    // Imagined photo k is test photo k; shapes and letters are new.
    assert_eq!(a.imagery_stimuli[3].image, a.test_stimuli[3].image);
    let kinds: Vec<_> = a.imagery_stimuli.iter().map(sim::imagery::kind).collect();
    assert_eq!(kinds[7..], ["photo", "shape", "shape", "shape", "letter", "letter"]);
    assert!(a.imagery_stimuli[8..].iter().all(|st| !a.train_stimuli.iter().any(|t| t.image == st.image)));
    // Each imagined photo's mean pattern against the same photo's seen pattern: matching pairs
    // correlate more than mismatched ones, and more so in higher than in early visual cortex.
    let nv = a.voxels.len();
    let regions = sim::regions(&a);
    let mut gap = Vec::new();
    for (name, range) in &regions {
        // Each voxel z-scored with its mean and std over the test trials (baseline and gain out,
        // and the nearly dead voxels' noise no longer dominates).
        let seen: Vec<Vec<f32>> = (0..8).map(|j| mean_pattern(&a.test, nv, j, range.clone())).collect();
        let stat = |v: usize| {
            let col: Vec<f32> = a.test.voxels.chunks(nv).map(|r| r[range.start + v]).collect();
            let m = col.iter().sum::<f32>() / col.len() as f32;
            (m, (col.iter().map(|x| (x - m).powi(2)).sum::<f32>() / col.len() as f32).sqrt().max(1e-6))
        };
        let stats: Vec<(f32, f32)> = (0..range.len()).map(stat).collect();
        let centred = |p: Vec<f32>| -> Vec<f32> { p.iter().zip(&stats).map(|(x, (m, sd))| (x - m) / sd).collect() };
        let seen: Vec<Vec<f32>> = seen.into_iter().map(centred).collect();
        let (mut same, mut other) = (0f32, 0f32);
        for i in 0..8 {
            let im = centred(mean_pattern(&a.imagery, nv, i, range.clone()));
            for (j, seen_j) in seen.iter().enumerate() {
                let r = corr(&im, seen_j);
                if i == j { same += r / 8.0 } else { other += r / 56.0 }
            }
        }
        assert!(same > other, "{name}: imagined photos do not resemble their seen selves ({same} vs {other})");
        gap.push(same - other);
    }
    assert!(gap[1] > gap[0], "higher visual ({}) should be closer to perception than early visual ({})", gap[1], gap[0]);
    // Bounds.
    for bad in [
        sim::imagery::ImagerySettings { photos: 9, ..Default::default() },
        sim::imagery::ImagerySettings { early_gain: 1.5, ..Default::default() },
        sim::imagery::ImagerySettings { higher_gain: f32::NAN, ..Default::default() },
        sim::imagery::ImagerySettings { repeats: 0, ..Default::default() },
        sim::imagery::ImagerySettings { blur: 0.5, ..Default::default() },
    ] {
        assert!(sim::simulate(&Settings { imagery: bad.clone(), ..s.clone() }, &photos, None, &QUIET).is_err(), "{bad:?} was accepted");
    }
    // Saved as a third split.
    let dir = tmp("imagery");
    a.save(&dir, false, &QUIET).unwrap();
    let higher = percept::io::npy::read(&dir.join("higher_visual_imagery.npy")).unwrap();
    assert_eq!(higher.shape, vec![13 * 6, 100]);
    let trials = percept::io::stimuli::read(&dir.join("imagery.csv")).unwrap();
    assert_eq!(trials.len(), 13 * 6);
    assert!(trials.iter().all(|t| t.image.exists()));
    assert!(std::fs::read_to_string(dir.join("settings.txt")).unwrap().contains("imagery_early_gain = 0.25"));
}

#[test]
fn dnn_term_drives_higher_voxels_and_leaves_early_voxels_alone() {
    let gpu = crate::common::gpu();
    let photos = sim::shipped_photos().unwrap();
    let off = Settings { crops: 2, shapes: 10, letters: 10, ..tiny() };
    let on = Settings { dnn: DnnSettings { share: 0.5, side: 64, ..DnnSettings::default() }, ..off.clone() };
    let a = sim::simulate(&off, &photos, None, &QUIET).unwrap();
    let b = sim::simulate(&on, &photos, Some(gpu), &QUIET).unwrap();
    let zero = sim::simulate(&Settings { dnn: DnnSettings { share: 0.0, ..on.dnn.clone() }, ..off.clone() }, &photos, Some(gpu), &QUIET).unwrap();
    // Early visual voxels are bit-identical; higher visual ones move; share 0 is exactly "off".
    let nv = a.voxels.len();
    let (early, higher) = (sim::regions(&a)[0].1.clone(), sim::regions(&a)[1].1.clone());
    for (x, y) in [(&a.train, &b.train), (&a.test, &b.test), (&a.imagery, &b.imagery)] {
        assert_eq!(sim::columns(&x.voxels, nv, early.clone()), sim::columns(&y.voxels, nv, early.clone()), "the DNN share moved early visual voxels");
        assert_ne!(sim::columns(&x.voxels, nv, higher.clone()), sim::columns(&y.voxels, nv, higher.clone()));
        assert_eq!(x.shown, y.shown);
    }
    assert_eq!((a.train.voxels == zero.train.voxels, a.imagery.voxels == zero.imagery.voxels), (true, true));
    assert!(b.settings.describe().contains("higher_dnn_share = 0.5") && b.settings.describe().contains("higher_dnn_net = efficientnet-lite1"));

    // The noise-free responses: with share d each higher voxel correlates about sqrt(d) with
    // its drive, a linear read-out of Lite1's features; without the term, about 0.
    let images: Vec<Rgb> = b.train_stimuli.iter().chain(&b.test_stimuli).map(|st| st.image.clone()).collect();
    let (f, units) = sim::dnn::features(gpu, &on.dnn.weights, &images, on.dnn.side, &QUIET).unwrap();
    assert_eq!(units, 1280);
    let nh = higher.len();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(11);
    let drive = sim::dnn::drive(&f, units, &sim::dnn::tuning(nh, units, &mut rng), images.len());
    let maps = cortex::all_features(&images, on.grid, &QUIET);
    let sem: Vec<_> = b.train_stimuli.iter().chain(&b.test_stimuli).map(|st| cortex::semantic(&st.captions)).collect();
    let ns = images.len();
    let mean_r = |share: f32| {
        let dd = sim::dnn::DnnDrive { drive: &drive, share };
        let r = cortex::responses_against(&b.voxels, &maps, &sem, on.grid, ns, Some(dd), &QUIET);
        (0..nh).map(|h| corr(&r[(early.len() + h) * ns..][..ns], &drive[h * ns..][..ns])).sum::<f32>() / nh as f32
    };
    let (r0, r5, r1) = (mean_r(0.0), mean_r(0.5), mean_r(1.0));
    assert!(r0.abs() < 0.15 && (0.5..0.85).contains(&r5) && r1 > 0.999, "mean correlation with the drive at shares 0, 0.5, 1: {r0} {r5} {r1}");
    // The drive carries image content: two crops of one photo are closer in the (share 1)
    // higher visual pattern than crops of different photos.
    let pattern = |i: usize| (0..nh).map(|h| drive[h * ns + i]).collect::<Vec<f32>>();
    let (mut same, mut other, mut n_same, mut n_other) = (0f32, 0f32, 0, 0);
    for i in 0..48 * 2 {
        for j in i + 1..48 * 2 {
            let r = corr(&pattern(i), &pattern(j));
            if b.train_stimuli[i].source == b.train_stimuli[j].source { same += r; n_same += 1 } else { other += r; n_other += 1 }
        }
    }
    let (same, other) = (same / n_same as f32, other / n_other as f32);
    assert!(same > other + 0.2, "crops of one photo {same} vs of different photos {other}");
}

#[test]
fn dnn_term_refuses_missing_weights_and_bad_settings() {
    let photos = sim::shipped_photos().unwrap();
    let gpu = crate::common::gpu();
    let missing = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-lite1");
    let s = Settings { dnn: DnnSettings { share: 0.5, weights: missing.clone(), ..DnnSettings::default() }, ..tiny() };
    let e = sim::simulate(&s, &photos, Some(gpu), &QUIET).unwrap_err().to_string();
    assert!(e.contains(&missing.join("model.safetensors").display().to_string()) && e.contains("not found"), "{e}");
    // The pipeline job refuses before it writes anything.
    let out = tmp("dnn-missing");
    let e = percept::pipeline::simulate::run(&percept::pipeline::Context::new(), &s, &out, false, &QUIET).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    assert!(!out.exists(), "a refused subject was written");
    // A share outside 0-1, an unusable side, and a DNN term without a GPU.
    for bad in [DnnSettings { share: 1.5, ..DnnSettings::default() }, DnnSettings { share: f32::NAN, ..DnnSettings::default() }, DnnSettings { side: 8, ..DnnSettings::default() }] {
        assert!(sim::simulate(&Settings { dnn: bad.clone(), ..tiny() }, &photos, Some(gpu), &QUIET).is_err(), "{bad:?} was accepted");
    }
    let e = sim::simulate(&Settings { dnn: DnnSettings::default(), ..tiny() }, &photos, None, &QUIET).unwrap_err().to_string();
    assert!(e.contains("GPU"), "{e}");
}
