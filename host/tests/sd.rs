//! Stable Diffusion's U-Net, VAE, schedulers and img2img against diffusers, on the tiny
//! random-weight models of tests/fixtures/make_sd.py (SD v1's exact block structure, few
//! channels, f16 weights, norms moved away from 1 and 0, non-square 8x16 latents).
//!
//! Tolerances: the references were computed in f32 from the same f16 weights, so differences
//! come only from summation order, our erf (|error| < 1.5e-7) and exp. A block's output is
//! accepted when its largest difference is below 3e-5 of its largest magnitude (1e-4 for the
//! time embedding, whose sines of t ~ 800 in f32 lose digits and differ between drivers);
//! measured on lavapipe: at most 3e-6 (8e-6 for the time embedding). A wrong norm,
//! swapped height and width or a missing residual is off by 1e-2 or more (a (B, C) time
//! embedding broadcast as the trailing (W, C) of a 1x2 level gave 5e-2). The 40-step img2img
//! run feeds each step back in and gets 1e-4 (measured 1e-6).

use crate::common;

use std::path::PathBuf;

use percept::io::npy::nchw_to_nhwc;
use percept::gpu::{DType, Tensor};
use percept::nn::checkpoint::{unet_key, vae_key};
use percept::nn::unet::Unet;
use percept::nn::vae::{Vae, VaeConfig};
use percept::nn::{Loader, Weights};
use percept::sched::pndm::Pndm;
use percept::sched::Schedule;
use percept::sd::{Img2ImgInput, Img2ImgOptions, Sampler, StableDiffusion};

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/sd_tiny"))
}

fn reference() -> Weights {
    Weights::open(&[dir().join("reference.safetensors")]).unwrap()
}

/// A reference tensor, NCHW converted to NHWC when it has four dimensions.
fn get(r: &Weights, name: &str) -> (Vec<f32>, Vec<usize>) {
    let (d, s) = r.get_any(name).unwrap();
    if let [n, c, h, w] = s[..] {
        (nchw_to_nhwc(&d, [n, c, h, w]), vec![n, h, w, c])
    } else {
        (d, s)
    }
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn check(name: &str, got: &Tensor, r: &Weights, key: &str, tol: f32) {
    let gpu = common::gpu();
    let (want, shape) = get(r, key);
    assert_eq!(got.shape, shape, "{name}: shape");
    let e = rel_err(&got.to_vec(gpu).unwrap(), &want);
    assert!(e < tol, "{name}: relative error {e:e} (tolerance {tol:e})");
}

#[test]
fn unet_matches_diffusers_block_by_block() {
    let gpu = common::gpu();
    let r = reference();
    for dtype in [DType::F32, DType::F16] {
        let unet = Unet::load(gpu, &dir().join("unet"), dtype).unwrap();
        assert_eq!(unet.config.heads, vec![8; 4], "attention_head_dim is the head count");
        let (x, xs) = get(&r, "unet.in.sample");
        let (t, _) = get(&r, "unet.in.timesteps");
        let (c, cs) = get(&r, "unet.in.context");
        let x = Tensor::from_f32(gpu, &xs, &x).unwrap();
        let c = Tensor::from_f32(gpu, &cs, &c).unwrap();
        let mut trace = Vec::new();
        let mut enc = gpu.encoder();
        let y = unet.forward(&mut enc, &x, &t, &c, Some(&mut trace)).unwrap();
        drop(enc);
        assert_eq!(trace.len(), 11);
        for (name, tensor) in &trace {
            // sin/cos of t ~ 800 in f32 differ between drivers more than anything else here.
            let tol = if name == "time_embedding" { 1e-4 } else { 3e-5 };
            check(name, tensor, &r, &format!("unet.{name}"), tol);
        }
        check("unet output", &y, &r, "unet.out", 3e-5);
    }
}

#[test]
fn vae_matches_diffusers_block_by_block() {
    let gpu = common::gpu();
    let r = reference();
    let vae = Vae::load(gpu, &dir().join("vae"), DType::F16).unwrap();
    let (img, s) = get(&r, "vae.in.image");
    let img = Tensor::from_f32(gpu, &s, &img).unwrap();
    let mut trace = Vec::new();
    let mut enc = gpu.encoder();
    let (mean, logvar) = vae.encode(&mut enc, &img, Some(&mut trace)).unwrap();
    let (z, zs) = get(&r, "vae.in.latent");
    let z = Tensor::from_f32(gpu, &zs, &z).unwrap();
    let y = vae.decode(&mut enc, &z, Some(&mut trace)).unwrap();
    drop(enc);
    for (name, tensor) in &trace {
        if r.contains(&format!("vae.{name}")) {
            check(name, tensor, &r, &format!("vae.{name}"), 3e-5);
        }
    }
    assert!(trace.len() >= 6);
    check("mean", &mean, &r, "vae.out.mean", 3e-5);
    check("logvar", &logvar, &r, "vae.out.logvar", 3e-5);
    check("decoded image", &y, &r, "vae.out.image", 3e-5);
}

#[test]
fn vae_by_winograd_matches_diffusers_block_by_block() {
    // The fixture's channels (below WINOGRAD_MIN_CIN) leave every conv direct by default; the
    // loader forces Winograd onto every 3x3 stride-1 conv with Cin and Cout multiples of 4.
    let gpu = common::gpu();
    let r = reference();
    let cfg = VaeConfig::from_file(&dir().join("vae/config.json")).unwrap();
    let weights = Weights::open(&[dir().join("vae/diffusion_pytorch_model.safetensors")]).unwrap();
    let default = Vae::from_weights(&Loader::new(gpu, &weights, DType::F16), cfg.clone()).unwrap();
    assert_eq!(default.winograd_convs(), 0);
    for dtype in [DType::F32, DType::F16] {
        let vae = Vae::from_weights(&Loader::new(gpu, &weights, dtype).with_winograd(Some(0)), cfg.clone()).unwrap();
        assert!(vae.winograd_convs() >= 10, "{} convs by Winograd", vae.winograd_convs());
        let (img, s) = get(&r, "vae.in.image");
        let img = Tensor::from_f32(gpu, &s, &img).unwrap();
        let (z, zs) = get(&r, "vae.in.latent");
        let z = Tensor::from_f32(gpu, &zs, &z).unwrap();
        let mut enc = gpu.encoder();
        let (mean, _) = vae.encode(&mut enc, &img, None).unwrap();
        let y = vae.decode(&mut enc, &z, None).unwrap();
        drop(enc);
        // f32: the fixtures' tolerance (measured 1.1e-6 and 4.3e-6). f16: the transformed
        // weights are rounded to f16 (the weights themselves are f16-exact in the fixture);
        // with every conv by Winograd that cost 1.4e-3 (mean) and 3.0e-3 (image), the size of
        // storing f32 weights as f16 at all.
        let tol = if dtype == DType::F32 { 3e-5 } else { 5e-3 };
        check("mean (Winograd)", &mean, &r, "vae.out.mean", tol);
        check("decoded image (Winograd)", &y, &r, "vae.out.image", tol);
    }
}

#[test]
fn img2img_matches_the_diffusers_pipeline() {
    let gpu = common::gpu();
    let r = reference();
    let sd = StableDiffusion::load(gpu, &dir(), None, DType::F16).unwrap();
    let raw = |k: &str| r.get_any(k).unwrap().0;
    let (init, noise, cond, uncond) = (raw("img2img.init"), raw("img2img.noise"), raw("img2img.cond"), raw("img2img.uncond"));
    let bar = common::Counted::default();
    let o = Img2ImgOptions { strength: 0.8, steps: 50, guidance: 5.0, sampler: Sampler::Ddim };
    let input = Img2ImgInput { init: &init, shape: [4, 8, 16], cond: &cond, uncond: Some(&uncond), noise: &noise };
    let latent = sd.img2img(gpu, &input, &o, &bar).unwrap();
    assert_eq!(bar.len.load(std::sync::atomic::Ordering::Relaxed), 40);
    assert_eq!(bar.pos.load(std::sync::atomic::Ordering::Relaxed), 40);
    let want = raw("img2img.latent");
    let e = rel_err(&latent, &want);
    assert!(e < 1e-4, "final latent: relative error {e:e}");
    let img = sd.decode(gpu, &latent, [4, 8, 16]).unwrap();
    let want_img: Vec<f32> = nchw_to_nhwc(&raw("img2img.image"), [1, 3, 64, 128]).iter().map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0)).collect();
    assert_eq!((img.height, img.width), (64, 128));
    let e = rel_err(&img.data, &want_img);
    assert!(e < 1e-4, "image: relative error {e:e}");
    // Without the unconditional context, guidance must be refused, not silently skipped.
    let err = sd.img2img(gpu, &Img2ImgInput { uncond: None, ..input }, &o, &bar).unwrap_err().to_string();
    assert!(err.contains("unconditional"), "{err}");
}

#[test]
fn pndm_matches_diffusers() {
    let r = reference();
    let raw = |k: &str| r.get_any(k).unwrap().0;
    let mut p = Pndm::new(Schedule::sd_v1(), 50);
    let want_t: Vec<usize> = raw("pndm.timesteps").iter().map(|&v| v as usize).collect();
    assert_eq!(p.timesteps(), want_t);
    let (eps, want) = (raw("pndm.eps"), raw("pndm.samples"));
    let mut x = raw("pndm.sample0");
    for i in 0..6 {
        x = p.step(&eps[i * 16..(i + 1) * 16], want_t[i], &x);
        let e = rel_err(&x, &want[i * 16..(i + 1) * 16]);
        assert!(e < 1e-5, "step {i}: {e:e}");
    }
    // img2img with PNDM skips the same share of the 51 entries as the pipeline (order 1).
    let t = Pndm::new(Schedule::sd_v1(), 50).img2img_timesteps(0.8);
    assert_eq!(t.len(), 41);
    assert_eq!(t[0], want_t[10]);
}

#[test]
fn single_file_key_names_map_onto_diffusers() {
    let path = dir().join("ldm_keys.json");
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut n = 0;
    for (diffusers, ldm) in &map {
        let ldm = ldm.as_str().unwrap();
        let got = if let Some(k) = ldm.strip_prefix("model.diffusion_model.") { unet_key(k, 2).map(|s| format!("unet.{s}")) } else { vae_key(ldm.strip_prefix("first_stage_model.").unwrap(), 4).map(|s| format!("vae.{s}")) };
        assert_eq!(got.as_deref(), Some(diffusers.as_str()), "{ldm}");
        n += 1;
    }
    assert!(n > 500, "{n} keys");
    assert_eq!(unet_key("input_blocks.99.7.weight", 2), None);
    assert_eq!(vae_key("encoder.sideways.0.weight", 4), None);
}

/// Writes `tensors` (name, shape, f32 data) as a safetensors file.
fn write_safetensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors.iter().map(|(n, s, d)| (n.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes.iter().map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn single_file_checkpoint_and_old_vae_names_load_the_same_models() {
    let gpu = common::gpu();
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&std::fs::read(dir().join("ldm_keys.json")).unwrap()).unwrap();
    let unet_w = Weights::open(&[dir().join("unet/diffusion_pytorch_model.safetensors")]).unwrap();
    let vae_w = Weights::open(&[dir().join("vae/diffusion_pytorch_model.safetensors")]).unwrap();
    let mut single = Vec::new();
    let mut old_vae = Vec::new();
    for (diffusers, ldm) in &map {
        let (src, key) = if let Some(k) = diffusers.strip_prefix("unet.") { (&unet_w, k) } else { (&vae_w, diffusers.strip_prefix("vae.").unwrap()) };
        let (d, mut s) = src.get_any(key).unwrap();
        let ldm = ldm.as_str().unwrap();
        if ldm.contains(".mid.attn_1.") && s.len() == 2 {
            s.extend([1, 1]); // the original stores these projections as 1x1 convolutions
        }
        single.push((ldm.to_string(), s.clone(), d.clone()));
        if let Some(k) = diffusers.strip_prefix("vae.") {
            let old = k.replace("to_q.", "query.").replace("to_k.", "key.").replace("to_v.", "value.").replace("to_out.0.", "proj_attn.");
            old_vae.push((old, s, d));
        }
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sd-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let ckpt = tmp.join("tiny-single-file.safetensors");
    write_safetensors(&ckpt, &single);
    let old = tmp.join("old-vae.safetensors");
    write_safetensors(&old, &old_vae);

    let r = reference();
    let configs = dir();
    let sd = StableDiffusion::load(gpu, &ckpt, Some(&configs), DType::F32).unwrap();
    let (x, xs) = get(&r, "unet.in.sample");
    let (t, _) = get(&r, "unet.in.timesteps");
    let (c, cs) = get(&r, "unet.in.context");
    let mut enc = gpu.encoder();
    let y = sd.unet.forward(&mut enc, &Tensor::from_f32(gpu, &xs, &x).unwrap(), &t, &Tensor::from_f32(gpu, &cs, &c).unwrap(), None).unwrap();
    let (z, zs) = get(&r, "vae.in.latent");
    let z = Tensor::from_f32(gpu, &zs, &z).unwrap();
    let img = sd.vae.decode(&mut enc, &z, None).unwrap();
    let old_vae = Vae::from_weights(&Loader::new(gpu, &Weights::open(&[&old]).unwrap(), DType::F32), VaeConfig::from_file(&dir().join("vae/config.json")).unwrap()).unwrap();
    let img_old = old_vae.decode(&mut enc, &z, None).unwrap();
    drop(enc);
    check("single-file unet", &y, &r, "unet.out", 3e-5);
    check("single-file vae", &img, &r, "vae.out.image", 3e-5);
    check("old-name vae", &img_old, &r, "vae.out.image", 3e-5);
    // A file that is not an SD checkpoint is named as such.
    let err = StableDiffusion::load(gpu, &old, Some(&configs), DType::F32).unwrap_err().to_string();
    assert!(err.contains("old-vae.safetensors") && err.contains("model.diffusion_model"), "{err}");
}

#[test]
fn img2img_command_reproduces_diffusers_from_files() {
    let r = reference();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let save = |name: &str, key: &str| {
        let (d, s) = r.get_any(key).unwrap();
        let p = tmp.join(name);
        percept::io::npy::write(&p, &s, &d, true).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (init, cond, uncond, noise) = (save("init.npy", "img2img.init"), save("cond.npy", "img2img.cond"), save("uncond.npy", "img2img.uncond"), save("noise.npy", "img2img.noise"));
    let out = tmp.join("out.npy");
    let model = dir();
    let run = |extra: &[&str]| {
        let mut args = vec!["img2img", "--model", model.to_str().unwrap(), "--init-latent", &init, "--cond", &cond, "--out", out.to_str().unwrap(), "--force"];
        args.extend_from_slice(extra);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_percept")).args(&args).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = run(&["--uncond", &uncond, "--noise", &noise]);
    assert!(ok, "{err}");
    let got = percept::io::npy::read(&out).unwrap();
    assert_eq!(got.shape, vec![1, 4, 8, 16]);
    let e = rel_err(&got.data, &r.get_any("img2img.latent").unwrap().0);
    assert!(e < 1e-4, "{e:e}");
    // Guidance without an unconditional context and no text encoder to make one.
    let (ok, err) = run(&["--noise", &noise]);
    assert!(!ok && err.contains("--uncond") && err.contains("text_encoder"), "{err}");
    // A context of the wrong width names the file.
    let (ok, err) = run(&["--uncond", &init, "--noise", &noise]);
    assert!(!ok && err.contains("init.npy") && err.contains("(S, 32)"), "{err}");
    let (ok, err) = run(&["--uncond", &uncond, "--noise", &cond]);
    assert!(!ok && err.contains("cond.npy"), "{err}");
}

#[test]
fn reconstruct_runs_the_second_stage_with_sd() {
    // Decoders fitted on random data (this checks the plumbing, not accuracy): z (4, 4, 4)
    // from 12 voxels, c (77, 32) for the tiny U-Net; then z image -> SD VAE -> img2img.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sd-rec-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let p = |n: &str| tmp.join(n).to_str().unwrap().to_string();
    let mut rng = 1u64;
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((rng >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let n = 20;
    percept::io::npy::write(&tmp.join("x.npy"), &[n, 12], &rand(n * 12), true).unwrap();
    percept::io::npy::write(&tmp.join("z.npy"), &[n, 4, 4, 4], &rand(n * 64), true).unwrap();
    percept::io::npy::write(&tmp.join("c.npy"), &[n, 77, 32], &rand(n * 77 * 32), true).unwrap();
    percept::io::npy::write(&tmp.join("u.npy"), &[77, 32], &rand(77 * 32), true).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_percept")).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["fit", "--voxels", &p("x.npy"), "--targets", &p("z.npy"), "--out", &p("dz.safetensors"), "--force"]);
    run(&["fit", "--voxels", &p("x.npy"), "--targets", &p("c.npy"), "--target", "c", "--region", "higher_visual", "--out", &p("dc.safetensors"), "--force"]);
    let model = dir();
    let xs = percept::io::npy::read(&tmp.join("x.npy")).unwrap();
    percept::io::npy::write(&tmp.join("x3.npy"), &[3, 12], &xs.data[..36], true).unwrap();
    run(&[
        "reconstruct", "--voxels", &p("x3.npy"), "--decoder", &p("dz.safetensors"), "--sd", model.to_str().unwrap(), "--decoder-c", &p("dc.safetensors"),
        "--voxels-c", &p("x3.npy"), "--uncond", &p("u.npy"), "--sd-size", "64", "--steps", "10", "--samples", "2", "--out", &p("rec"), "--force",
    ]);
    let a = percept::io::image::Rgb::open(&tmp.join("rec/trial_00002_sd0.png")).unwrap();
    let b = percept::io::image::Rgb::open(&tmp.join("rec/trial_00002_sd1.png")).unwrap();
    assert_eq!((a.width, a.height), (64, 64));
    assert_ne!(a.data, b.data, "two samples with different noise");
    let grid = percept::io::image::Rgb::open(&tmp.join("rec/grid.png")).unwrap();
    assert_eq!(grid.height, 2 * (32 + 4) + 4, "rows: z-only reconstructions and the SD stage");
}

#[test]
fn bad_models_and_inputs_are_named() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sd-bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // A U-Net config with other block types (e.g. SDXL's) is refused, naming the file.
    let cfg = std::fs::read_to_string(dir().join("unet/config.json")).unwrap().replace("\"CrossAttnDownBlock2D\",", "\"DownBlock2D\",");
    let path = tmp.join("config.json");
    std::fs::write(&path, cfg).unwrap();
    let err = percept::nn::unet::UnetConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("down_block_types"), "{err}");
    // A weights file cut short.
    let bytes = std::fs::read(dir().join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    let cut = tmp.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Weights::open(&[&cut]).unwrap_err().to_string();
    assert!(err.contains("cut.safetensors"), "{err}");
    // NaN in the conditioning given to the command.
    let r = reference();
    let (c, s) = r.get_any("img2img.cond").unwrap();
    let mut c = c.clone();
    c[100] = f32::NAN;
    let cond = tmp.join("nan_cond.npy");
    percept::io::npy::write(&cond, &s, &c, true).unwrap();
    let (init, is) = r.get_any("img2img.init").unwrap();
    let init_p = tmp.join("init.npy");
    percept::io::npy::write(&init_p, &is, &init, true).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_percept"))
        .args(["img2img", "--model", dir().to_str().unwrap(), "--init-latent", init_p.to_str().unwrap(), "--cond", cond.to_str().unwrap(), "--guidance", "1", "--out", tmp.join("o.npy").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nan_cond.npy") && err.contains("index 100"), "{err}");
}

#[test]
fn loader_keeps_f16_bits_and_names_key_shapes_and_file() {
    let gpu = common::gpu();
    // The tiny U-Net's weights are f16: an F16 loader uploads them unchanged (f16 -> f32 is
    // exact, so the read-back values are the stored ones bit for bit).
    let w = Weights::open(&[dir().join("unet/diffusion_pytorch_model.safetensors")]).unwrap();
    let l = Loader::new(gpu, &w, DType::F16).pp("time_embedding").pp("linear_1");
    let (want, shape) = w.get_any("time_embedding.linear_1.weight").unwrap();
    let t = l.get(&shape, "weight").unwrap();
    assert_eq!(t.dtype, DType::F16);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&t.to_vec(gpu).unwrap()), bits(&want));
    // An odd number of halves (padded to a whole word).
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sd-loader-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let odd = [1.5f32, -0.333, 65504.0];
    let bytes: Vec<u8> = odd.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![3, 1], &bytes).unwrap();
    let path = tmp.join("odd.safetensors");
    std::fs::write(&path, safetensors::serialize([("x".to_string(), view)], None).unwrap()).unwrap();
    let t = Loader::new(gpu, &Weights::open(&[&path]).unwrap(), DType::F16).get(&[3, 1], "x").unwrap();
    let halves: Vec<f32> = odd.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
    assert_eq!(bits(&t.to_vec(gpu).unwrap()), bits(&halves));
    // A misshapen tensor: the full key, both shapes and the file.
    let err = l.get(&[1, 2], "weight").unwrap_err().to_string();
    let actual = format!("{shape:?}");
    assert!(err.contains("`time_embedding.linear_1.weight`") && err.contains("[1, 2]") && err.contains(&actual) && err.contains("diffusion_pytorch_model.safetensors"), "{err}");
    // A missing one: the full key and the file.
    let err = l.pp("nope").get(&[1], "bias").unwrap_err().to_string();
    assert!(err.contains("`time_embedding.linear_1.nope.bias`") && err.contains("diffusion_pytorch_model.safetensors"), "{err}");
}
