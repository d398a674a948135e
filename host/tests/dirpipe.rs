//! `percept reconstruct --method dir` end to end on a tiny simulated subject: runs, writes its
//! outputs, lowers the feature loss, refuses to overwrite, and names the file at fault for
//! hostile inputs.

use std::path::{Path, PathBuf};

use percept::fit::fastl2lir::FastL2LirOptions;
use percept::fit::features::Method;
use percept::io::voxels::VoxelSource;
use percept::pipeline::dir::{self, Optimizer, Start};
use percept::pipeline::features::{self as featjob, NetChoice, Trials};
use percept::pipeline::simulate;
use percept::progress::Silent;
use percept::sim::cortex::PopulationSettings;
use percept::sim::Settings;

use crate::common::ctx;

/// A subject and two layers' feature decoders (early visual voxels), made once per run.
fn subject_and_decoders(dir: &Path) -> (PathBuf, PathBuf) {
    let settings = Settings {
        size: 32,
        grid: 16,
        test_photos: 6,
        crops: 1,
        shapes: 30,
        letters: 10,
        population: PopulationSettings { early: 400, higher: 50, ..Settings::default().population },
        imagery: percept::sim::imagery::ImagerySettings { photos: 2, shapes: 2, letters: 1, repeats: 1, ..Default::default() },
        ..Settings::default()
    };
    let s = dir.join("subject");
    simulate::run(&percept::pipeline::Context::new(), &settings, &s, false, &Silent).unwrap();
    let o = featjob::Options {
        train: Trials { voxels: VoxelSource::Npy(s.join("early_visual_train.npy")), stimuli: s.join("train.csv") },
        test: None,
        net: NetChoice::lite2(),
        layers: vec!["_blocks.2".into(), "_avg_pooling".into()],
        units: Some(40),
        seed: 3,
        method: Method::FastL2Lir(FastL2LirOptions { select: 100, alpha: 100.0 }),
        region: "early_visual".into(),
        out: dir.join("decoders"),
        cache: dir.join("cache"),
        force: false,
    };
    featjob::run(ctx(), &o, &Silent).unwrap();
    (s, dir.join("decoders"))
}

fn options(s: &Path, decoders: &Path, out: &Path) -> dir::Options {
    dir::Options {
        voxels: VoxelSource::Npy(s.join("early_visual_test.npy")),
        decoders: Some(decoders.to_path_buf()),
        layers: Vec::new(),
        stimuli: Some(s.join("test.csv")),
        start: Start::Grey,
        taesd: Some(percept::paths::taesd()),
        net: NetChoice::lite2(),
        size: 32,
        optimizer: Optimizer::Adam,
        lr: Some(0.01),
        iterations: 4,
        anchor: 0.0,
        batch: 4,
        out: out.to_path_buf(),
        force: false,
        oracle: false,
    }
}

#[test]
fn dir_reconstructs_a_simulated_subject_and_refuses_hostile_inputs() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dirpipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (s, decoders) = subject_and_decoders(&root);
    let out = root.join("recon");
    let o = options(&s, &decoders, &out);
    let r = dir::run(ctx(), &o, &Silent).unwrap();
    assert_eq!(r.images.len(), 6);
    assert_eq!(r.loss.len(), 5);
    assert!(r.loss[4] < r.loss[0], "the feature loss did not fall: {:?}", r.loss);
    for f in ["grid.png", "pairs.csv", "loss.csv", "features.txt", "test_000.png"] {
        assert!(out.join(f).exists(), "{f} was not written");
    }
    // The output rule: every image spans 0-255.
    for img in &r.images {
        let (lo, hi) = img.data.iter().fold((1f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(lo == 0.0 && hi == 1.0, "an image spans {lo}..{hi}");
    }
    let pairs = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    assert_eq!(pairs.lines().count(), 7);
    // No overwrite without force.
    let e = dir::run(ctx(), &o, &Silent).unwrap_err().to_string();
    assert!(e.contains("exists") && e.contains("--force"), "{e}");

    // Pixels, the lab's SGD with blur: runs too.
    let px = dir::Options { taesd: None, optimizer: Optimizer::Sgd, lr: None, iterations: 2, out: root.join("px"), ..options(&s, &decoders, &out) };
    assert_eq!(dir::run(ctx(), &px, &Silent).unwrap().images.len(), 6);

    // Hostile inputs name what is at fault.
    let err = |o: dir::Options| dir::run(ctx(), &o, &Silent).unwrap_err().to_string();
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = err(dir::Options { decoders: Some(empty.clone()), out: root.join("o1"), ..options(&s, &decoders, &out) });
    assert!(e.contains("empty") && e.contains("no feature decoders"), "{e}");
    let e = err(dir::Options { decoders: Some(root.join("missing")), out: root.join("o2"), ..options(&s, &decoders, &out) });
    assert!(e.contains("missing"), "{e}");
    let other = NetChoice::EfficientNet { dir: percept::paths::shipped("weights/efficientnet-lite2"), name: "efficientnet-lite0".into() };
    let e = err(dir::Options { net: other, out: root.join("o3"), ..options(&s, &decoders, &out) });
    assert!(e.contains("decodes features of efficientnet-lite2") && e.contains("efficientnet-lite0"), "{e}");
    let higher = VoxelSource::Npy(s.join("higher_visual_test.npy"));
    let e = err(dir::Options { voxels: higher, out: root.join("o4"), ..options(&s, &decoders, &out) });
    assert!(e.contains("reads 400 voxels") && e.contains("50"), "{e}");
    let mut arr = percept::io::npy::read(&s.join("early_visual_test.npy")).unwrap();
    arr.data[5 * 400 + 17] = f32::NAN;
    let nan = root.join("nan.npy");
    percept::io::npy::write(&nan, &arr.shape, &arr.data, false).unwrap();
    let e = err(dir::Options { voxels: VoxelSource::Npy(nan), out: root.join("o5"), ..options(&s, &decoders, &out) });
    assert!(e.contains("voxel 17") && e.contains("not finite"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
