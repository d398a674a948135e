//! Evaluation metrics against scikit-image (tests/fixtures/make_eval.py) and on cases whose
//! answer is known.

use percept::io::image::Rgb;
use percept::eval::{pixcorr, ssim, two_way, Scores};

fn fixture() -> (Rgb, Rgb, f64, f64) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/eval.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (h, w) = (v["height"].as_u64().unwrap() as usize, v["width"].as_u64().unwrap() as usize);
    let img = |k: &str| Rgb { height: h, width: w, data: v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
    (img("a"), img("b"), v["ssim"].as_f64().unwrap(), v["pixcorr"].as_f64().unwrap())
}

#[test]
fn ssim_and_pixcorr_match_scikit_image() {
    let (a, b, want_ssim, want_pix) = fixture();
    // f32 pixels against float64 in skimage: agreement to 1e-5 is all f32 rounding allows.
    let got = ssim(&a, &b);
    assert!((got - want_ssim).abs() < 1e-5, "SSIM {got} vs skimage {want_ssim}");
    let got = pixcorr(&a, &b);
    assert!((got - want_pix).abs() < 1e-6, "PixCorr {got} vs numpy {want_pix}");
    assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
    // A constant image carries no structure: SSIM far below that of the noisy copy.
    let flat = Rgb { data: vec![0.5; a.data.len()], ..a.clone() };
    assert!(ssim(&a, &flat) < 0.2, "{}", ssim(&a, &flat));
}

#[test]
fn two_way_identification() {
    let truth: Vec<Vec<f32>> = (0..6).map(|i| (0..50).map(|j| ((i * 7 + j * 3) % 11) as f32 + (j as f32 * 0.1 * i as f32).sin()).collect()).collect();
    assert_eq!(two_way(&truth, &truth).unwrap(), vec![1.0; 6]);
    // Every reconstruction swapped with its neighbour: never the best match.
    let swapped: Vec<Vec<f32>> = (0..6).map(|i| truth[i ^ 1].clone()).collect();
    let s = two_way(&truth, &swapped).unwrap();
    assert!(s.iter().all(|&x| x < 1.0), "{s:?}");
    let err = two_way(&truth[..1], &truth[..1]).unwrap_err().to_string();
    assert!(err.contains("at least 2"), "{err}");
    let err = two_way(&truth, &truth[..3]).unwrap_err().to_string();
    assert!(err.contains("6") && err.contains("3"), "{err}");
}

#[test]
fn scores_resize_and_refuse_mismatched_lists() {
    let (a, b, ..) = fixture();
    let s = Scores::compute(&[a.clone(), b.clone()], &[a.clone(), b.clone()], None).unwrap();
    assert!(s.pixcorr.iter().all(|&p| p > 0.999), "{:?}", s.pixcorr);
    assert_eq!(s.two_way_pixel, vec![1.0, 1.0]);
    assert!(s.two_way_latent.is_empty());
    let err = Scores::compute(std::slice::from_ref(&a), &[a.clone(), b], None).unwrap_err().to_string();
    assert!(err.contains("1 images but 2"), "{err}");
}

#[test]
fn eval_scores_each_sample_and_reports_mean_and_best_of_n() {
    use percept::io::image::Rgb;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("eval-samples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Three originals; z-only reconstructions; sample 0 is the original itself, sample 1 noise.
    let shipped = percept::paths::shipped("assets/stimuli/public-domain");
    let mut csv = String::from("original,reconstruction,samples\n");
    for (k, name) in ["astronaut.png", "coffee.png", "chelsea.png"].iter().enumerate() {
        let orig = shipped.join(name);
        let img = Rgb::open_square(&orig, 32).unwrap();
        let noisy = Rgb { data: img.data.iter().enumerate().map(|(i, v)| (v * 0.5 + ((i * 7919 + k * 31) % 97) as f32 / 194.0).min(1.0)).collect(), ..img.clone() };
        let junk = Rgb { data: (0..img.data.len()).map(|i| ((i * 104_729 + k) % 251) as f32 / 250.0).collect(), ..img.clone() };
        noisy.save_png(&dir.join(format!("r{k}.png")), true).unwrap();
        img.save_png(&dir.join(format!("r{k}_sd0.png")), true).unwrap();
        junk.save_png(&dir.join(format!("r{k}_sd1.png")), true).unwrap();
        csv.push_str(&format!("{},r{k}.png,r{k}_sd0.png|r{k}_sd1.png\n", orig.display()));
    }
    std::fs::write(dir.join("pairs.csv"), csv).unwrap();
    let out = percept::pipeline::evaluate::run(crate::common::ctx(), &dir, false, &percept::progress::Silent).unwrap();
    assert_eq!(out.samples.len(), 2);
    // Sample 0 is the original: PixCorr ~1 for every image; the best of 2 picks it.
    assert!(out.samples[0].pixcorr.iter().all(|&r| r > 0.99), "{:?}", out.samples[0].pixcorr);
    let (mean, best) = percept::eval::mean_and_best(&[&out.samples[0].pixcorr, &out.samples[1].pixcorr], true);
    assert!(best > 0.99 && mean < best - 0.2, "mean {mean}, best {best}");
    assert!(out.report.contains("mean of the 2 samples") && out.report.contains("best of 2"), "{}", out.report);
    // Rows with different numbers of samples are refused, naming pairs.csv.
    let text = std::fs::read_to_string(dir.join("pairs.csv")).unwrap().replacen("r0_sd0.png|r0_sd1.png", "r0_sd0.png", 1);
    std::fs::write(dir.join("pairs.csv"), text).unwrap();
    let e = percept::pipeline::evaluate::run(crate::common::ctx(), &dir, true, &percept::progress::Silent).unwrap_err().chain();
    assert!(e.contains("pairs.csv") && e.contains("samples"), "{e}");
}

#[test]
fn brain_diffuser_identification_and_feature_distance() {
    use percept::eval::{correlation_distance, two_way_vs_originals};
    // Reconstruction 0 is its original; 1 is closer to original 2 than to its own; 2 ties.
    let truth = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.0]];
    let recon = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 0.2, 1.0, 0.0], vec![0.0, 0.0, 0.0, 1.0]];
    let w = two_way_vs_originals(&truth, &recon).unwrap();
    assert_eq!(w, vec![1.0, 0.5, 0.5], "own vs other originals, ties half");
    let d = correlation_distance(&truth, &recon);
    assert!(d[0].abs() < 1e-12 && d[1] > 0.5 && d[2] > 1.0, "{d:?}");
    assert!(two_way_vs_originals(&truth[..1], &recon[..1]).is_err());
}

#[test]
fn effnet_lite0_judges_identical_images_perfect_and_swapped_ones_worse() {
    use percept::eval::features::Judges;
    let gpu = crate::common::gpu();
    let dir = percept::paths::shipped("assets/stimuli/public-domain");
    let truth: Vec<Rgb> = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"].iter().map(|n| Rgb::open_square(&dir.join(n), 64).unwrap()).collect();
    let judges = Judges::shipped(gpu).unwrap();
    let same = judges.score(gpu, &truth, &truth).unwrap();
    let names: Vec<&str> = same.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["EffNet-Lite0 early", "EffNet-Lite0 late", "EffNet-Lite0 distance"]);
    assert!(same[0].1.iter().chain(&same[1].1).all(|&v| v == 1.0), "{same:?}");
    assert!(same[2].1.iter().all(|&d| d.abs() < 1e-5), "{same:?}");
    // Each reconstruction is the next photo: it matches that photo's original perfectly, so it
    // loses to it in every layer, and its distances grow.
    let rotated: Vec<Rgb> = (0..truth.len()).map(|k| truth[(k + 1) % truth.len()].clone()).collect();
    let other = judges.score(gpu, &truth, &rotated).unwrap();
    assert!(other[0].1.iter().chain(&other[1].1).all(|&v| v < 1.0), "{other:?}");
    assert!(other[2].1.iter().all(|&d| d > 0.05), "{other:?}");
}
