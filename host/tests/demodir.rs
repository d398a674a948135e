//! `percept demo --dir` (pipeline::demo_dir) end to end on a tiny subject.

use percept::pipeline::demo_dir;
use percept::sim::cortex::PopulationSettings;
use percept::sim::imagery::ImagerySettings;
use percept::sim::Settings;

static QUIET: percept::progress::Silent = percept::progress::Silent;

fn tiny() -> Settings {
    Settings {
        size: 32,
        grid: 16,
        test_photos: 4,
        crops: 1,
        shapes: 6,
        letters: 4,
        population: PopulationSettings { early: 200, higher: 60, ..Settings::default().population },
        imagery: ImagerySettings { photos: 2, shapes: 3, letters: 2, repeats: 2, ..ImagerySettings::default() },
        ..Settings::default()
    }
}

#[test]
fn demo_dir_writes_every_output_with_both_methods_and_refuses_to_overwrite() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("demodir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = demo_dir::Options::new(&dir, false);
    o.settings = tiny();
    o.layers = vec!["_blocks.2".into(), "_avg_pooling".into()];
    o.units = 16;
    o.iterations = 2;
    o.batch = 8;
    // The judge's columns are tested with the demo and eval; here they would double the time.
    o.feature_columns = false;
    let out = demo_dir::run(crate::common::ctx(), &o, &QUIET).unwrap();
    for f in [
        "report.md",
        "grid.png",
        "imagery.png",
        "subject/settings.txt",
        "subject/imagery.csv",
        "decoders/early_visual_z.safetensors",
        "decoders/control_shuffled_z.safetensors",
        "decoders/features/_blocks.2.safetensors",
        "decoders/features/_avg_pooling.safetensors",
        "decoders/features_control/_avg_pooling.safetensors",
        "dir/test/grid.png",
        "dir/test/pairs.csv",
        "dir/control/loss.csv",
        "dir/imagery/pairs.csv",
        "voxels/all_train_shuffled.npy",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert!(!dir.join("cache").exists(), "the feature cache is not an output");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(report, out.report);
    for row in ["| z-only |", "| DIR |", "| z-only, shuffled control |", "| DIR, shuffled control |", "| shapes | 3 | DIR |", "| letters | 2 | z-only |", "| photos | 2 | DIR |", "2-way latent", "## Time", "imagery above chance for shapes", "_blocks.2"] {
        assert!(report.contains(row), "no `{row}` in the report:\n{report}");
    }
    let names: Vec<&str> = out.test.iter().map(|t| t.0).collect();
    assert_eq!(names, ["z-only", "DIR", "z-only, shuffled control", "DIR, shuffled control"]);
    for (name, s) in &out.test {
        assert_eq!(s.pixcorr.len(), 4, "{name}");
        assert!(s.pixcorr.iter().chain(&s.two_way_pixel).all(|v| v.is_finite()), "{name}");
    }
    // DIR moved the images away from their z-only start.
    assert_ne!(out.test[0].1.pixcorr, out.test[1].1.pixcorr);
    let kinds: Vec<(&str, usize)> = out.imagery.iter().map(|r| (r.kind, r.images)).collect();
    assert_eq!(kinds, [("photo", 2), ("shape", 3), ("letter", 2)]);
    // The grid: 5 rows of 4 photos; the imagery grid: 3 rows of 7 imagined images.
    let g = percept::io::image::Rgb::open(&dir.join("grid.png")).unwrap();
    let i = percept::io::image::Rgb::open(&dir.join("imagery.png")).unwrap();
    assert!(g.height > i.height && i.width > g.width, "grid {}x{}, imagery {}x{}", g.width, g.height, i.width, i.height);
    // A second run refuses to overwrite without --force.
    let err = demo_dir::run(crate::common::ctx(), &demo_dir::Options { settings: tiny(), ..demo_dir::Options::new(&dir, false) }, &QUIET).unwrap_err().to_string();
    assert!(err.contains("report.md") && err.contains("--force"), "{err}");
}
