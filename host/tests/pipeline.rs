//! The command line's jobs called as library functions, no process spawned: simulate -> fit
//! (targets from the stimulus images) -> reconstruct -> evaluate, and encode/decode, on a tiny
//! simulated subject; their outputs are what the CLI would write.

use std::path::PathBuf;

use percept::io::voxels::VoxelSource;
use percept::pipeline::{encode, evaluate, fit, reconstruct, simulate};
use percept::progress::Silent;
use percept::sim::cortex::PopulationSettings;
use percept::sim::Settings;

use crate::common::ctx;

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn simulate_fit_reconstruct_evaluate_as_library_calls() {
    let dir = tmp("chain");
    let settings = Settings {
        size: 32,
        grid: 16,
        test_photos: 6,
        crops: 3,
        shapes: 30,
        letters: 20,
        population: PopulationSettings { early: 500, higher: 50, ..Settings::default().population },
        ..Settings::default()
    };
    let subj = simulate::run(&percept::pipeline::Context::new(), &settings, &dir.join("subject"), false, &Silent).unwrap();
    assert!(dir.join("subject/settings.txt").exists());
    let s = dir.join("subject");
    let o = fit::Options {
        voxels: VoxelSource::Npy(s.join("early_visual_train.npy")),
        targets: fit::Targets::Images { list: s.join("train.csv"), size: 32, weights: percept::paths::taesd(), cache: dir.join("cache") },
        region: "early_visual".into(),
        target: percept_core::Target::Z,
        ridge: Default::default(),
        rank: None,
        out: dir.join("z.safetensors"),
        force: false,
    };
    let fitted = fit::run(ctx(), &o, &Silent).unwrap();
    assert!(fitted.written.iter().all(|p| p.exists()), "{:?}", fitted.written);
    assert!(fitted.report.contains("chosen for"), "{}", fitted.report);
    // A second run without force refuses, naming the decoder, and changes nothing.
    let before = std::fs::read(dir.join("z.safetensors")).unwrap();
    let e = fit::run(ctx(), &o, &Silent).unwrap_err().chain();
    assert!(e.contains("z.safetensors") && e.contains("exists"), "{e}");
    assert_eq!(std::fs::read(dir.join("z.safetensors")).unwrap(), before);

    let r = reconstruct::Options {
        voxels: VoxelSource::Npy(s.join("early_visual_test.npy")),
        decoder: dir.join("z.safetensors"),
        stimuli: Some(s.join("test.csv")),
        taesd: percept::paths::taesd(),
        sd: None,
        out: dir.join("rec"),
        force: false,
    };
    let rec = reconstruct::run(ctx(), &r, &Silent).unwrap();
    assert_eq!(rec.images.len(), subj.test_stimuli.len());
    assert!(rec.images.iter().all(|i| i.width == 32 && i.height == 32));
    for f in ["grid.png", "pairs.csv", "z.npy"] {
        assert!(dir.join("rec").join(f).exists(), "{f}");
    }
    let ev = evaluate::run(ctx(), &dir.join("rec"), false, &Silent).unwrap();
    assert_eq!(ev.scores.pixcorr.len(), subj.test_stimuli.len());
    assert!(ev.path.exists() && ev.report.contains("PixCorr"));
    // Reconstructions from the decoder beat chance in latent space even at this size.
    let two_way = percept::eval::mean(&ev.scores.two_way_latent);
    assert!(two_way > 0.6, "two-way latent identification {two_way}");

    // encode / decode round trip of one of the stimuli.
    let (z, shape) = encode::encode_image(ctx(), &percept::paths::taesd(), &s.join("stimuli/test_000.png"), 32).unwrap();
    assert_eq!(shape, [4, 4, 4]);
    let img = encode::decode_latent(ctx(), &percept::paths::taesd(), &z, shape).unwrap();
    assert_eq!((img.width, img.height), (32, 32));
    let e = encode::encode_image(ctx(), &percept::paths::taesd(), &s.join("stimuli/test_000.png"), 12).unwrap_err().chain();
    assert!(e.contains("12"), "{e}");
}
