//! Deep image reconstruction's targets and loss networks: the whole-layer oracle (`--oracle
//! --layers`, no feature decoders), VGG19 as the loss network (random weights; its fc6 in f16,
//! 205 MB, is past lavapipe's 128 MiB binding), linear's input gradient in bands of rows, and
//! the command line's refusals.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use percept::gpu::{DType, Gpu, Tensor};
use percept::io::voxels::VoxelSource;
use percept::ops::grad::{linear_backward, linear_backward_with};
use percept::ops::reference::matmul_ref;
use percept::ops::Variant;
use percept::pipeline::dir::{self, Optimizer, Start};
use percept::pipeline::features::NetChoice;
use percept::progress::Silent;

use crate::common::{assert_close, cli as percept, ctx, gpu, rand};

fn root(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dirnet-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` smooth random 64 x 64 photos in `dir`, their stimulus list and `(n, 5)` voxels.
fn photos(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let mut csv = String::from("image\n");
    for i in 0..n {
        let p = rand(9, 300 + i as u64, 1.0);
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            let (x, y) = (x as f32 / 64.0, y as f32 / 64.0);
            image::Rgb(std::array::from_fn(|c| {
                let v = (6.0 * p[3 * c] * x + 6.0 * p[3 * c + 1] * y + 3.0 * p[3 * c + 2]).sin();
                (128.0 + 100.0 * v) as u8
            }))
        });
        let name = format!("photo{i}.png");
        img.save(dir.join(&name)).unwrap();
        csv.push_str(&format!("{name}\n"));
    }
    std::fs::write(dir.join("list.csv"), csv).unwrap();
    percept::io::npy::write(&dir.join("voxels.npy"), &[n, 5], &rand(n * 5, 7, 1.0), true).unwrap();
    (dir.join("list.csv"), dir.join("voxels.npy"))
}

/// A whole-layer oracle run of 2 Adam iterations from grey at 64 px.
fn oracle(list: &Path, voxels: &Path, out: PathBuf, net: NetChoice, layers: &[&str]) -> dir::Options {
    dir::Options {
        voxels: VoxelSource::Npy(voxels.to_path_buf()),
        decoders: None,
        layers: layers.iter().map(|l| l.to_string()).collect(),
        stimuli: Some(list.to_path_buf()),
        start: Start::Grey,
        taesd: Some(percept::paths::taesd()),
        net,
        size: 64,
        optimizer: Optimizer::Adam,
        lr: Some(0.1),
        iterations: 2,
        anchor: 0.0,
        batch: 4,
        out,
        force: false,
        oracle: true,
    }
}

#[test]
fn whole_layer_oracle_lowers_the_loss_without_decoders_and_refuses_bad_layers() {
    let d = root("whole");
    let (list, voxels) = photos(&d, 3);
    let o = oracle(&list, &voxels, d.join("out"), NetChoice::lite2(), &["_blocks.1", "_blocks.9"]);
    let r = dir::run(ctx(), &o, &Silent).unwrap();
    assert_eq!((r.images.len(), r.loss.len()), (3, 3));
    assert!(r.loss.iter().all(|l| l.is_finite()) && r.loss[2] < r.loss[0], "the whole-layer feature loss did not fall: {:?}", r.loss);
    let f = std::fs::read_to_string(d.join("out/features.txt")).unwrap();
    // Lite2's _blocks.1 at 224: 56 x 56 x 24 units.
    assert!(f.contains("(whole layer)\t_blocks.1\t75264 of 75264 units"), "{f}");

    let err = |o: dir::Options| dir::run(ctx(), &o, &Silent).unwrap_err().to_string();
    let e = err(dir::Options { oracle: false, ..oracle(&list, &voxels, d.join("o1"), NetChoice::lite2(), &["_blocks.1"]) });
    assert!(e.contains("--layers") && e.contains("--oracle"), "{e}");
    let e = err(oracle(&list, &voxels, d.join("o2"), NetChoice::lite2(), &["_blocks.1", "_blocks.99"]));
    assert!(e.contains("`_blocks.99`") && e.contains("efficientnet-lite2") && e.contains("_blocks.0, _blocks.1") && e.contains("_avg_pooling"), "{e}");
    let e = err(dir::Options { decoders: Some(d.clone()), ..oracle(&list, &voxels, d.join("o3"), NetChoice::lite2(), &["_blocks.1"]) });
    assert!(e.contains("--layers") && e.contains("--decoders"), "{e}");
    let e = err(oracle(&list, &voxels, d.join("o4"), NetChoice::lite2(), &[]));
    assert!(e.contains("--decoders") && e.contains("--layers"), "{e}");
    let e = err(oracle(&list, &voxels, d.join("o5"), NetChoice::lite2(), &["_blocks.1", "_blocks.1"]));
    assert!(e.contains("`_blocks.1` is named twice"), "{e}");
}

/// torchvision's VGG19 state dict with the fixtures' generated values, written once per test
/// binary (287 MB in f16).
fn vgg19_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        use percept::nn::vgg;
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vgg19-random-{}.safetensors", std::process::id()));
        crate::features::write_generated(&path, &crate::features::state_dict(&vgg::features(vgg::VGG19), &vgg::classifier(1000)));
        path
    })
}

#[test]
fn vgg19_is_a_loss_network_of_the_whole_layer_oracle() {
    // conv3_4's ReLU and fc6 (its input gradient in bands of rows on lavapipe), from the
    // command line: the network by name, its weights in --weights.
    let d = root("vgg");
    let (list, voxels) = photos(&d, 2);
    let out = d.join("cli");
    let (ok, err) = percept(&[
        "reconstruct", "--method", "dir", "--oracle", "--layers", "features.17,classifier.0", "--net", "vgg19", "--weights", vgg19_file().to_str().unwrap(),
        "--voxels", voxels.to_str().unwrap(), "--stimuli", list.to_str().unwrap(), "--size", "64", "--iterations", "2", "--optimizer", "adam", "--lr", "0.1", "--out", out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let loss: Vec<f32> = std::fs::read_to_string(out.join("loss.csv")).unwrap().lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    assert!(loss.len() == 3 && loss.iter().all(|l| l.is_finite()) && loss[2] < loss[0], "the VGG19 feature loss did not fall: {loss:?}");
    let f = std::fs::read_to_string(out.join("features.txt")).unwrap();
    assert!(f.contains("classifier.0\t4096 of 4096 units"), "{f}");
    let e = dir::run(ctx(), &oracle(&list, &voxels, d.join("o1"), NetChoice::Vgg19(vgg19_file().to_path_buf()), &["features.99"]), &Silent).unwrap_err().to_string();
    assert!(e.contains("vgg19 has no layer `features.99`") && e.contains("features.36, avgpool, classifier.0"), "{e}");
}

#[test]
fn reconstruct_dir_refuses_bad_net_and_layer_arguments_naming_them() {
    let d = root("cli");
    let (list, voxels) = photos(&d, 2);
    let base = ["reconstruct", "--method", "dir", "--voxels", voxels.to_str().unwrap(), "--stimuli", list.to_str().unwrap(), "--size", "64", "--iterations", "1"];
    let run = |extra: &[&str], out: &str| {
        let o = d.join(out);
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        a.extend(["--out", o.to_str().unwrap()]);
        let r = percept(&a);
        (r, o)
    };
    let ((ok, err), _) = run(&["--oracle", "--layers", "_blocks.1", "--net", "resnet50"], "o1");
    assert!(!ok && err.contains("resnet50") && err.contains("efficientnet-lite0") && err.contains("efficientnet-lite1") && err.contains("efficientnet-lite2") && err.contains("vgg19"), "{err}");
    let ((ok, err), _) = run(&["--layers", "_blocks.1"], "o2");
    assert!(!ok && err.contains("--layers") && err.contains("--oracle"), "{err}");
    let ((ok, err), _) = run(&["--oracle", "--layers", "_blocks.1,nope"], "o3");
    assert!(!ok && err.contains("`nope`") && err.contains("_blocks.0, _blocks.1"), "{err}");
    let ((ok, err), _) = run(&["--oracle", "--layers", "features.3", "--net", "vgg19"], "o4");
    assert!(!ok && err.contains("--net vgg19 needs its weights"), "{err}");
    let ((ok, err), _) = run(&["--oracle"], "o5");
    assert!(!ok && err.contains("--decoders") && err.contains("--layers"), "{err}");
    // Another shipped EfficientNet-Lite by name: Lite0's layers.
    let ((ok, err), o) = run(&["--oracle", "--layers", "_blocks.2", "--net", "efficientnet-lite0"], "o6");
    assert!(ok, "{err}");
    assert!(std::fs::read_to_string(o.join("features.txt")).unwrap().contains("_blocks.2"));
}

/// `g (m, n) . w (n, k)` by `linear_backward` on a device whose bindings hold a few rows of
/// `w`, against the CPU reference and the unsplit result.
#[test]
fn linear_backward_in_bands_of_rows_matches_the_reference() {
    let capped = Gpu::new().unwrap();
    capped.cap_binding(4096);
    // k = 37: rows of 148 (f32) and 74 (f16) bytes, bands of whole rows starting aligned.
    for (m, n, k) in [(3, 100, 37), (2, 70, 64), (1, 9, 300)] {
        let w = rand(n * k, 40 + n as u64, 0.5);
        let g = rand(m * n, 41 + n as u64, 1.0);
        for f16 in [false, true] {
            let wq: Vec<f32> = if f16 { w.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect() } else { w.clone() };
            let want = matmul_ref(&g, &wq, 1, m, k, n, false);
            let mut variants = vec![Variant::Tiled];
            if f16 && capped.shader_f16 {
                variants.push(Variant::TiledF16);
            }
            for (dev, label) in [(gpu(), "whole"), (&capped, "bands")] {
                let wt = if f16 { Tensor::from_f32_as_f16(dev, &[n, k], &w) } else { Tensor::from_f32(dev, &[n, k], &w) }.unwrap();
                assert_eq!(wt.dtype, if f16 { DType::F16 } else { DType::F32 });
                let gt = Tensor::from_f32(dev, &[m, n], &g).unwrap();
                for &v in &variants {
                    let mut enc = dev.encoder();
                    let got = linear_backward_with(&mut enc, &gt, &wt, v).unwrap();
                    drop(enc);
                    assert_eq!(got.shape, vec![m, k]);
                    assert_close(&format!("{label} linear_backward {v:?} m={m} n={n} k={k} f16={f16}"), &got.to_vec(dev).unwrap(), &want, 1e-5, 1e-4);
                }
                let mut enc = dev.encoder();
                let got = linear_backward(&mut enc, &gt, &wt).unwrap();
                drop(enc);
                assert_close(&format!("{label} linear_backward auto m={m} n={n} k={k} f16={f16}"), &got.to_vec(dev).unwrap(), &want, 1e-5, 1e-4);
            }
        }
    }
    // A row larger than a binding cannot be banded: an error naming the weight.
    let w = Tensor::from_f32(&capped, &[2, 2000], &vec![0.0; 4000]).unwrap();
    let g = Tensor::from_f32(&capped, &[1, 2], &[1.0, 1.0]).unwrap();
    let mut enc = capped.encoder();
    let e = linear_backward(&mut enc, &g, &w).unwrap_err().to_string();
    assert!(e.contains("linear_backward") && e.contains("[2, 2000]"), "{e}");
}
