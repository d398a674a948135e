//! The command line refuses bad input before any long work, naming the file and what is wrong.

use std::path::PathBuf;

use crate::common::cli as percept;

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn decode_refuses_bad_latents() {
    let three = tmp("three.npy");
    percept::io::npy::write(&three, &[3, 8, 8], &[0.0; 192], true).unwrap();
    let (ok, err) = percept(&["decode", three.to_str().unwrap(), "--out", tmp("a.png").to_str().unwrap()]);
    assert!(!ok && err.contains("three.npy") && err.contains("3 channels"), "{err}");
    let flat = tmp("flat.npy");
    percept::io::npy::write(&flat, &[256], &[0.0; 256], true).unwrap();
    let (ok, err) = percept(&["decode", flat.to_str().unwrap(), "--out", tmp("b.png").to_str().unwrap()]);
    assert!(!ok && err.contains("flat.npy") && err.contains("[256]"), "{err}");
    let nan = tmp("nan.npy");
    let mut v = vec![0.0f32; 256];
    v[17] = f32::NAN;
    percept::io::npy::write(&nan, &[4, 8, 8], &v, true).unwrap();
    let (ok, err) = percept(&["decode", nan.to_str().unwrap(), "--out", tmp("c.png").to_str().unwrap()]);
    assert!(!ok && err.contains("nan.npy") && err.contains("index 17"), "{err}");
}

#[test]
fn encode_and_fit_refuse_bad_arguments() {
    let (ok, err) = percept(&["encode", "x.png", "--out", tmp("z.npy").to_str().unwrap(), "--size", "12"]);
    assert!(!ok && err.contains("--size 12"), "{err}");
    let (ok, err) = percept(&["encode", tmp("missing.png").to_str().unwrap(), "--out", tmp("z2.npy").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.png"), "{err}");
    let (x, y) = (tmp("x.npy"), tmp("y.npy"));
    percept::io::npy::write(&x, &[10, 4], &[1.0; 40], true).unwrap();
    percept::io::npy::write(&y, &[9, 2], &[1.0; 18], true).unwrap();
    let out = tmp("d.safetensors");
    let (ok, err) = percept(&["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("y.npy") && err.contains("9 rows of targets but 10 trials"), "{err}");
    assert!(!out.exists(), "no output may be written on error");
    let (ok, err) = percept(&["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cv", "ten"]);
    assert!(!ok && err.contains("--cv ten"), "{err}");
    let (ok, err) = percept(&["demo", "--out", tmp("demo").to_str().unwrap(), "--size", "60"]);
    assert!(!ok && err.contains("--size 60") && err.contains("multiple of 8"), "{err}");
}

#[test]
fn reconstruct_and_eval_refuse_bad_input() {
    // A decoder of 6 voxels -> (4, 1, 1), then voxels of the wrong width.
    let dec = tmp("six.safetensors");
    let (x, y) = (tmp("x6.npy"), tmp("y6.npy"));
    let xs: Vec<f32> = (0..60).map(|i| ((i * 7919) % 13) as f32).collect();
    percept::io::npy::write(&x, &[10, 6], &xs, true).unwrap();
    percept::io::npy::write(&y, &[10, 4, 1, 1], &xs[..40], true).unwrap();
    let (ok, err) = percept(&["fit", "--voxels", x.to_str().unwrap(), "--targets", y.to_str().unwrap(), "--out", dec.to_str().unwrap(), "--force"]);
    assert!(ok, "{err}");
    let wide = tmp("wide.npy");
    percept::io::npy::write(&wide, &[2, 7], &[0.0; 14], true).unwrap();
    let out = tmp("rec");
    let (ok, err) = percept(&["reconstruct", "--voxels", wide.to_str().unwrap(), "--decoder", dec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("six.safetensors") && err.contains("decodes 6 voxels"), "{err}");
    let list = tmp("list.csv");
    std::fs::write(&list, "image\na.png\n").unwrap();
    let (ok, err) = percept(&["reconstruct", "--voxels", x.to_str().unwrap(), "--decoder", dec.to_str().unwrap(), "--stimuli", list.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("list.csv") && err.contains("1 trials listed but 10"), "{err}");
    let (ok, err) = percept(&["eval", tmp("nowhere").to_str().unwrap()]);
    assert!(!ok && err.contains("pairs.csv"), "{err}");
    let (ok, err) = percept(&["simulate", "--out", tmp("sim").to_str().unwrap(), "--size", "20"]);
    assert!(!ok && err.contains("size 20"), "{err}");
}

#[test]
fn reconstruct_dir_refuses_bad_arguments_before_any_work() {
    let x = tmp("dirx.npy");
    percept::io::npy::write(&x, &[3, 5], &[0.5; 15], true).unwrap();
    let decs = tmp("dir-decoders");
    std::fs::create_dir_all(&decs).unwrap();
    let out = tmp("dir-out");
    let missing = tmp("no-such-folder");
    let (xs, ds, os, ms) = (x.to_str().unwrap(), decs.to_str().unwrap(), out.to_str().unwrap(), missing.to_str().unwrap());
    let base = ["reconstruct", "--method", "dir", "--voxels", xs, "--out", os];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        percept(&a)
    };
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["--method dir needs --decoders"]),
        (&["--decoders", ds, "--optimizer", "rmsprop"], &["rmsprop", "--optimizer"]),
        (&["--decoders", ds, "--lr", "0"], &["--lr 0", "above 0"]),
        (&["--decoders", ds, "--lr=-0.5"], &["--lr -0.5"]),
        (&["--decoders", ds, "--lr", "NaN"], &["--lr NaN"]),
        (&["--decoders", ds, "--lr", "inf"], &["--lr inf"]),
        (&["--decoders", ds, "--iterations", "0"], &["iterations 0", "at least 1"]),
        (&["--decoders", ds, "--batch", "0"], &["batch 0", "at least 1"]),
        (&["--decoders", ds, "--size", "60"], &["--size 60", "multiple of 8"]),
        (&["--decoders", ds, "--size", "0"], &["--size 0"]),
        (&["--decoders", ds, "--anchor=-1"], &["--anchor -1"]),
        (&["--decoders", ds, "--anchor", "NaN"], &["--anchor NaN"]),
        (&["--decoders", ds, "--oracle"], &["--oracle needs --stimuli"]),
        (&["--decoders", ds, "--generator", "none", "--start-latent", xs], &["dirx.npy", "needs the generator"]),
        (&["--decoders", ds, "--voxels-z", xs], &["--decoder"]),
        (&["--decoders", ds, "--start-latent", xs, "--decoder", xs], &["--start-latent", "--decoder"]),
        (&["--decoders", ds, "--sd", xs], &["--sd"]),
        (&["--decoders", ms], &["no-such-folder"]),
        // An empty folder: no feature decoders in it.
        (&["--decoders", ds], &["dir-decoders", "holds no feature decoders"]),
    ];
    for (extra, want) in cases {
        let (ok, err) = run(extra);
        assert!(!ok, "{extra:?} was accepted");
        for w in *want {
            assert!(err.contains(w), "{extra:?}: no `{w}` in: {err}");
        }
    }
    // The lock may leave the folder; nothing in it.
    assert!(std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_none()), "nothing may be written on error");
}

#[test]
fn demo_dir_refuses_to_overwrite_and_bad_arguments() {
    let out = tmp("demo-dir");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("report.md"), b"an earlier run").unwrap();
    let os = out.to_str().unwrap();
    let (ok, err) = percept(&["demo", "--dir", "--out", os]);
    assert!(!ok && err.contains("report.md") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(out.join("report.md")).unwrap(), b"an earlier run");
    let (ok, err) = percept(&["demo", "--out", os, "--iterations", "5"]);
    assert!(!ok && err.contains("--dir"), "{err}");
    let (ok, err) = percept(&["demo", "--dir", "--out", os, "--iterations", "0", "--force"]);
    assert!(!ok && err.contains("--iterations 0"), "{err}");
    let (ok, err) = percept(&["demo", "--dir", "--out", os, "--units", "0", "--force"]);
    assert!(!ok && err.contains("--units 0"), "{err}");
    let (ok, err) = percept(&["demo", "--dir", "--out", os, "--size", "44", "--force"]);
    assert!(!ok && err.contains("--size 44"), "{err}");
    assert_eq!(std::fs::read(out.join("report.md")).unwrap(), b"an earlier run");
}
