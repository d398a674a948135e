//! TAESD on the GPU: agrees with the plain-loop CPU reference, and round-trips real photos.

use crate::common;
use std::path::PathBuf;

use common::*;
use percept::io::image::Rgb;
use percept::gpu::{DType, Tensor};
use percept::nn::taesd::Taesd;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn taesd() -> Taesd {
    Taesd::load(gpu(), &root().join("weights/taesd"), DType::F32).unwrap()
}

#[test]
fn gpu_matches_cpu_reference_at_64px() {
    let gpu = gpu();
    let t = taesd();
    let img = Rgb::open_square(&root().join("assets/stimuli/public-domain/chelsea.png"), 64).unwrap();
    let shape = [1, 64, 64, 3];
    let x = Tensor::from_f32(gpu, &shape, &img.data).unwrap();
    let mut enc = gpu.encoder();
    let z = t.encode(&mut enc, &x).unwrap();
    drop(enc);
    let z_gpu = z.to_vec(gpu).unwrap();
    let (z_cpu, zs) = t.encoder.forward_ref(&img.data, shape);
    assert_eq!(z.shape, zs.to_vec());
    assert_close("taesd encoder 64px", &z_gpu, &z_cpu, 2e-4, 1e-4);

    let mut enc = gpu.encoder();
    let y = t.decode(&mut enc, &z).unwrap();
    drop(enc);
    let (y_cpu, ys) = t.decoder.forward_ref(&z_cpu, zs);
    assert_eq!(y.shape, ys.to_vec());
    assert_close("taesd decoder 64px", &y.to_vec(gpu).unwrap(), &y_cpu, 2e-4, 1e-4);

    // The same with the stride-1 convs by Winograd F(2x2, 3x3), same tolerances.
    let mut t = t;
    t.encoder.set_winograd(gpu, true).unwrap();
    t.decoder.set_winograd(gpu, true).unwrap();
    let mut enc = gpu.encoder();
    let zw = t.encode(&mut enc, &x).unwrap();
    let yw = t.decode(&mut enc, &z).unwrap();
    drop(enc);
    assert_close("taesd encoder 64px, Winograd", &zw.to_vec(gpu).unwrap(), &z_cpu, 2e-4, 1e-4);
    assert_close("taesd decoder 64px, Winograd", &yw.to_vec(gpu).unwrap(), &y_cpu, 2e-4, 1e-4);

    // f16 weights (`taesd::WEIGHTS`, the default; the shipped files are bf16, which f16 holds but for values below
    // its normal range), same reference, same tolerances.
    let t16 = Taesd::load(gpu, &root().join("weights/taesd"), DType::F16).unwrap();
    let mut enc = gpu.encoder();
    let z16 = t16.encode(&mut enc, &x).unwrap();
    let y16 = t16.decode(&mut enc, &z).unwrap();
    drop(enc);
    assert_close("taesd encoder 64px, f16 weights", &z16.to_vec(gpu).unwrap(), &z_cpu, 2e-4, 1e-4);
    assert_close("taesd decoder 64px, f16 weights", &y16.to_vec(gpu).unwrap(), &y_cpu, 2e-4, 1e-4);
}

#[test]
fn round_trip_of_photos_reaches_25_db_and_random_latents_do_not() {
    let gpu = gpu();
    let t = taesd();
    let mut scores = Vec::new();
    for name in ["astronaut.png", "coffee.png", "chelsea.png"] {
        let img = Rgb::open_square(&root().join("assets/stimuli/public-domain").join(name), 512).unwrap();
        let x = Tensor::from_f32(gpu, &[1, 512, 512, 3], &img.data).unwrap();
        let mut enc = gpu.encoder();
        let z = t.encode(&mut enc, &x).unwrap();
        let y = t.decode(&mut enc, &z).unwrap();
        drop(enc);
        assert_eq!(z.shape, vec![1, 64, 64, 4]);
        let out = Rgb { height: 512, width: 512, data: y.to_vec(gpu).unwrap() };
        let psnr = img.psnr(&out);
        println!("{name}: {psnr:.2} dB");
        scores.push((name, psnr));
    }
    for (name, psnr) in &scores {
        assert!(*psnr >= 25.0, "{name}: round trip {psnr:.2} dB < 25 dB");
    }
    // Random latents of the same scale decode to something unlike the photo.
    let img = Rgb::open_square(&root().join("assets/stimuli/public-domain/astronaut.png"), 512).unwrap();
    let z = rand(64 * 64 * 4, 99, 1.5);
    let zt = Tensor::from_f32(gpu, &[1, 64, 64, 4], &z).unwrap();
    let mut enc = gpu.encoder();
    let y = t.decode(&mut enc, &zt).unwrap();
    drop(enc);
    let psnr = img.psnr(&Rgb { height: 512, width: 512, data: y.to_vec(gpu).unwrap() });
    println!("random latent: {psnr:.2} dB");
    assert!(psnr < 15.0, "random latents scored {psnr:.2} dB");
}

#[test]
fn bad_inputs_are_named() {
    let gpu = gpu();
    let t = taesd();
    let x = Tensor::from_f32(gpu, &[1, 20, 16, 3], &vec![0.5; 20 * 16 * 3]).unwrap();
    let e = t.encode(&mut gpu.encoder(), &x).unwrap_err().to_string();
    assert!(e.contains("[1, 20, 16, 3]") && e.contains("multiples of 8"), "{e}");
    let e = Taesd::load(gpu, &root().join("weights/nope"), DType::F32).unwrap_err().to_string();
    assert!(e.contains("taesd_encoder.safetensors"), "{e}");
}

#[test]
fn image_targets_are_cached() {
    let gpu = gpu();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let images = vec![root().join("assets/stimuli/public-domain/coffee.png"), root().join("assets/stimuli/public-domain/chelsea.png")];
    let weights = root().join("weights/taesd");
    let bar = percept::progress::Silent;
    let first = percept::fit::targets::encode_images(gpu, &weights, &images, 64, &dir, &bar).unwrap();
    assert_eq!(first.len(), 2 * 4 * 8 * 8);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // Mark one cache entry: a second run must return what the cache holds, not re-encode.
    percept::io::npy::write(&files[0], &[4, 8, 8], &[7.0; 256], true).unwrap();
    let second = percept::fit::targets::encode_images(gpu, &weights, &images, 64, &dir, &bar).unwrap();
    assert!(second.chunks(256).any(|c| c.iter().all(|&v| v == 7.0)), "the cache was not used");
    assert!(second.chunks(256).any(|c| c == &first[..256] || c == &first[256..]), "the other entry changed");
    let e = percept::fit::targets::encode_images(gpu, &weights, &[root().join("assets/nope.png")], 64, &dir, &bar).unwrap_err().to_string();
    assert!(e.contains("nope.png"), "{e}");
}
