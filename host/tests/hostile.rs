//! Hostile input: broken files written at test time (zero sizes, huge declared sizes, NaN,
//! truncated files, wrong datatypes, directories, RGB NIfTI, bad configs, NaN weights) fed to
//! every command that reads files. Each run must exit with code 1 (not 101: no panic; not
//! 134: no abort), say which file is at fault, and leave the outputs it was given untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn percept(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_percept")).args(args).output().unwrap()
}

/// Runs `args` and checks a clean refusal whose message contains every one of `names`.
#[track_caller]
fn refused(args: &[&str], names: &[&str]) -> String {
    check(percept(args), args, names)
}

#[track_caller]
fn check(out: Output, args: &[&str], names: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "percept {args:?} panicked:\n{err}");
    assert_eq!(out.status.code(), Some(1), "percept {args:?}: exit {:?} (1 expected)\n{err}", out.status);
    for n in names {
        assert!(err.contains(n), "percept {args:?}: the message does not name `{n}`:\n{err}");
    }
    err
}

/// An output that already exists (the runs pass --force): it must be left as it is.
fn sentinel(p: PathBuf) -> PathBuf {
    std::fs::write(&p, b"sentinel").unwrap();
    p
}

#[track_caller]
fn untouched(p: &Path) {
    assert_eq!(std::fs::read(p).unwrap(), b"sentinel", "{} was changed by a failed run", p.display());
}

fn npy(p: &Path, shape: &[usize], data: &[f32]) -> PathBuf {
    percept::io::npy::write(p, shape, data, true).unwrap();
    p.to_path_buf()
}

/// A .npy with a hand-written header (any dtype and shape) and `data` bytes after it.
fn raw_npy(p: &Path, descr: &str, shape: &str, data: &[u8]) -> PathBuf {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    std::fs::write(p, b).unwrap();
    p.to_path_buf()
}

/// Good voxels (10 trials x 6) and targets (10 x 4x1x1), and a decoder fitted on them.
fn good(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let xs: Vec<f32> = (0..60).map(|i| ((i * 7919) % 13) as f32).collect();
    let x = npy(&d.join("x.npy"), &[10, 6], &xs);
    let y = npy(&d.join("y.npy"), &[10, 4, 1, 1], &xs[..40]);
    let dec = d.join("dec.safetensors");
    let out = percept(&["fit", "--voxels", s(&x), "--targets", s(&y), "--out", s(&dec), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (x, y, dec)
}

#[test]
fn npy_inputs() {
    let d = dir("npy");
    let (x, y, dec) = good(&d);
    let out = &sentinel(d.join("out.safetensors"));
    let fit = |vox: &Path, tgt: &Path, names: &[&str]| {
        refused(&["fit", "--voxels", s(vox), "--targets", s(tgt), "--out", s(out), "--force"], names);
        untouched(out);
    };
    fit(&npy(&d.join("x0.npy"), &[10, 0], &[]), &y, &["x0.npy", "voxels"]);
    fit(&x, &npy(&d.join("y0.npy"), &[10, 0], &[]), &["y0.npy", "dimension 0"]);
    fit(&x, &npy(&d.join("y00.npy"), &[10, 4, 0], &[]), &["y00.npy"]);
    let mut nan = vec![1.0f32; 60];
    nan[3 * 6 + 2] = f32::NAN;
    fit(&npy(&d.join("xnan.npy"), &[10, 6], &nan), &y, &["xnan.npy", "voxel 2 of trial 3"]);
    fit(&raw_npy(&d.join("huge.npy"), "<f4", "(1099511627776, 1048576)", &[0; 64]), &y, &["huge.npy"]);
    fit(&raw_npy(&d.join("trunc.npy"), "<f4", "(10, 6)", &[0; 100]), &y, &["trunc.npy"]);
    fit(&raw_npy(&d.join("ints.npy"), "<i8", "(10, 6)", &[0; 480]), &y, &["ints.npy"]);
    fit(&raw_npy(&d.join("garbage.npy"), "<f4", "(10, 6", &[0; 240]), &y, &["garbage.npy"]);
    std::fs::create_dir_all(d.join("folder.npy")).unwrap();
    fit(&d.join("folder.npy"), &y, &["folder.npy"]);
    fit(&d.join("missing.npy"), &y, &["missing.npy"]);

    // Latents and contexts.
    let png = &sentinel(d.join("out.png"));
    for (name, shape) in [("l0.npy", vec![4, 0, 8]), ("l00.npy", vec![1, 4, 8, 0])] {
        let l = npy(&d.join(name), &shape, &[]);
        refused(&["decode", s(&l), "--out", s(png), "--force"], &[name, "empty"]);
    }
    refused(&["decode", s(&raw_npy(&d.join("lt.npy"), "<f4", "(4, 8, 8)", &[0; 12])), "--out", s(png), "--force"], &["lt.npy"]);
    untouched(png);

    // Reconstruct: NaN voxels are blamed on the voxel file, not the decoder.
    let rec = d.join("rec");
    let err = refused(&["reconstruct", "--voxels", s(&npy(&d.join("vnan.npy"), &[10, 6], &nan)), "--decoder", s(&dec), "--out", s(&rec)], &["vnan.npy", "trial 3"]);
    assert!(!err.contains("dec.safetensors"), "{err}");
    refused(&["reconstruct", "--voxels", s(&npy(&d.join("v0.npy"), &[0, 6], &[])), "--decoder", s(&dec), "--out", s(&rec)], &["v0.npy"]);
    assert!(!rec.exists() || std::fs::read_dir(&rec).unwrap().next().is_none(), "reconstruct wrote into its output folder");
}

#[test]
fn size_options_and_simulate() {
    let d = dir("sizes");
    let sim = d.join("sim");
    refused(&["simulate", "--out", s(&sim), "--early", "0"], &["--early 0"]);
    refused(&["simulate", "--out", s(&sim), "--higher", "0"], &["--higher 0"]);
    refused(&["simulate", "--out", s(&sim), "--size", "100000"], &["--size 100000"]);
    refused(&["simulate", "--out", s(&sim), "--crops", "100000000000"], &["more than"]);
    assert!(!sim.exists(), "simulate wrote a refused subject");
    let out = &sentinel(d.join("z.npy"));
    let img = percept::paths::shipped("assets/stimuli/public-domain/astronaut.png");
    refused(&["encode", s(&img), "--out", s(out), "--force", "--size", "100000"], &["--size 100000"]);
    refused(&["encode", s(&img), "--out", s(out), "--force", "--size", "0"], &["--size 0"]);
    untouched(out);
}

/// NIfTI-1 header fields (little-endian, as nifti-rs writes them).
const DIM: usize = 40;
const DATATYPE: usize = 70;
const BITPIX: usize = 72;

fn patch_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn nifti_inputs() {
    let d = dir("nifti");
    let (_, y, _) = good(&d);
    let run = d.join("run.nii");
    let xs: Vec<f32> = (0..60).map(|i| ((i * 7919) % 13) as f32).collect();
    percept::io::nifti::write_run(&run, &xs, 10, 6).unwrap();
    let mask = d.join("mask.nii");
    percept::io::nifti::write_mask(&mask, 6, 0..6).unwrap();
    let good_run = std::fs::read(&run).unwrap();
    let good_mask = std::fs::read(&mask).unwrap();
    let out = &sentinel(d.join("out.safetensors"));
    let fit = |nii: &Path, m: &Path, names: &[&str]| {
        refused(&["fit", "--nifti", s(nii), "--mask", s(m), "--targets", s(&y), "--out", s(out), "--force"], names);
        untouched(out);
    };
    let variant = |name: &str, from: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = from.to_vec();
        f(&mut b);
        let p = d.join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    // RGB24, RGBA32 and complex64 runs and masks.
    for (name, code, bits, what) in [("rgb.nii", 128, 24, "Rgb24"), ("rgba.nii", 2304, 32, "Rgba32"), ("complex.nii", 32, 64, "Complex64")] {
        let bad = variant(name, &good_run, &|b| {
            patch_i16(b, DATATYPE, code);
            patch_i16(b, BITPIX, bits);
        });
        fit(&bad, &mask, &[name, what]);
        let bad_mask = variant(&format!("mask-{name}"), &good_mask, &|b| {
            patch_i16(b, DATATYPE, code);
            patch_i16(b, BITPIX, bits);
        });
        fit(&run, &bad_mask, &[&format!("mask-{name}"), what]);
    }
    fit(&variant("code.nii", &good_run, &|b| patch_i16(b, DATATYPE, 12345)), &mask, &["code.nii", "12345"]);
    // A bitpix that disagrees with the datatype (found by the fuzzer: nifti-rs panicked).
    fit(&variant("bitpix.nii", &good_run, &|b| patch_i16(b, BITPIX, 22)), &mask, &["bitpix.nii", "bitpix = 22"]);
    fit(&run, &variant("mask-bitpix.nii", &good_mask, &|b| patch_i16(b, BITPIX, 22)), &["mask-bitpix.nii", "bitpix"]);
    fit(&variant("t0.nii", &good_run, &|b| patch_i16(b, DIM + 8, 0)), &mask, &["t0.nii", "dim[4]"]);
    fit(&variant("d0.nii", &good_run, &|b| patch_i16(b, DIM, 0)), &mask, &["d0.nii", "dim[0]"]);
    // dim[0] out of 1..=7 makes nifti-rs read the header as big-endian: any refusal will do.
    fit(&variant("d9.nii", &good_run, &|b| patch_i16(b, DIM, 9)), &mask, &["d9.nii"]);
    // Huge declared sizes: uncompressed (checked against the file) and compressed (bounded).
    let huge = |b: &mut Vec<u8>| {
        patch_i16(b, DIM, 7);
        for i in 1..=7 {
            patch_i16(b, DIM + 2 * i, -1); // 65535
        }
    };
    fit(&variant("huge.nii", &good_run, &huge), &mask, &["huge.nii"]);
    fit(&variant("big.nii", &good_run, &|b| patch_i16(b, DIM + 8, 30000)), &mask, &["big.nii", "bytes"]);
    let hugegz = variant("hugegz.nii", &good_run, &huge);
    if Command::new("gzip").arg("-kf").arg(&hugegz).status().is_ok_and(|s| s.success()) {
        fit(&d.join("hugegz.nii.gz"), &mask, &["hugegz.nii.gz", "values"]);
    }
    let trunc = variant("trunc.nii", &good_run, &|b| b.truncate(b.len() / 2));
    fit(&trunc, &mask, &["trunc.nii"]);
    fit(&variant("short.nii", &good_run, &|b| b.truncate(100)), &mask, &["short.nii"]);
    std::fs::create_dir_all(d.join("folder.nii")).unwrap();
    fit(&d.join("folder.nii"), &mask, &["folder.nii", "directory"]);
    fit(&run, &d.join("folder.nii"), &["folder.nii", "directory"]);
    // NaN in a run is blamed on the run.
    let mut nan = xs.clone();
    nan[7] = f32::NAN;
    let nan_run = d.join("nan.nii");
    percept::io::nifti::write_run(&nan_run, &nan, 10, 6).unwrap();
    fit(&nan_run, &mask, &["nan.nii", "trial 1"]);
}

/// A PNG's CRC-32 (the chunk type and data).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A small PNG whose header declares `w` x `h` pixels.
fn png_declaring(p: &Path, w: u32, h: u32) -> PathBuf {
    let src = percept::io::image::Rgb { height: 8, width: 8, data: vec![0.5; 192] };
    src.save_png(p, true).unwrap();
    let mut b = std::fs::read(p).unwrap();
    // Signature (8), IHDR length (4), "IHDR" (4), width, height, ...; CRC after 13 data bytes.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(p, b).unwrap();
    p.to_path_buf()
}

#[test]
fn image_inputs() {
    let d = dir("images");
    let out = &sentinel(d.join("z.npy"));
    let encode = |img: &Path, names: &[&str]| {
        refused(&["encode", s(img), "--out", s(out), "--force", "--size", "64"], names);
        untouched(out);
    };
    encode(&png_declaring(&d.join("wide.png"), 20000, 20000), &["wide.png"]);
    encode(&png_declaring(&d.join("zero.png"), 0, 8), &["zero.png"]);
    let jpg = std::fs::read(percept::paths::shipped("assets/stimuli/coco/000000358083.jpg")).unwrap();
    for (name, keep) in [("half.jpg", jpg.len() / 2), ("most.jpg", jpg.len() * 9 / 10), ("nearly.jpg", jpg.len() - 2), ("header.jpg", 300)] {
        std::fs::write(d.join(name), &jpg[..keep]).unwrap();
        encode(&d.join(name), &[name]);
    }
    let png = std::fs::read(percept::paths::shipped("assets/stimuli/public-domain/astronaut.png")).unwrap();
    std::fs::write(d.join("half.png"), &png[..png.len() / 2]).unwrap();
    encode(&d.join("half.png"), &["half.png"]);
    std::fs::write(d.join("text.png"), b"not an image at all").unwrap();
    encode(&d.join("text.png"), &["text.png"]);
    std::fs::create_dir_all(d.join("folder.png")).unwrap();
    encode(&d.join("folder.png"), &["folder.png", "directory"]);
}

#[test]
fn truncated_jpeg_is_an_error_in_the_library() {
    let d = dir("jpeg");
    let jpg = std::fs::read(percept::paths::shipped("assets/stimuli/coco/000000358083.jpg")).unwrap();
    std::fs::write(d.join("cut.jpg"), &jpg[..jpg.len() * 3 / 4]).unwrap();
    let e = percept::io::image::Rgb::open(&d.join("cut.jpg")).unwrap_err().to_string();
    assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
    std::fs::write(d.join("whole.jpg"), &jpg).unwrap();
    percept::io::image::Rgb::open(&d.join("whole.jpg")).unwrap();
}

#[test]
fn a_jpeg_that_panics_its_decoder_is_an_error() {
    // Found by the fuzzing smoke run: zune-jpeg 0.5.15 asserts in its AVX2 upsampler on it
    // (other CPUs take another path, where it may decode or fail; it must not panic anywhere).
    let p = percept::paths::shipped("tests/fixtures/hostile/zune_jpeg_upsample_panic.jpg");
    if let Err(e) = percept::io::image::Rgb::open(&p) {
        assert!(e.to_string().contains("zune_jpeg_upsample_panic.jpg"), "{e}");
    }
    let d = dir("jpeg_panic");
    refused(&["encode", s(&p), "--out", s(&d.join("z.npy"))], &["zune_jpeg_upsample_panic.jpg"]);
}

#[test]
fn stimulus_lists_and_decoders() {
    let d = dir("csv");
    let (x, _, dec) = good(&d);
    let rec = d.join("rec");
    let reconstruct = |list: &Path, decoder: &Path, names: &[&str]| {
        refused(&["reconstruct", "--voxels", s(&x), "--decoder", s(decoder), "--stimuli", s(list), "--out", s(&rec)], names)
    };
    let list = |name: &str, text: &str| {
        std::fs::write(d.join(name), text).unwrap();
        d.join(name)
    };
    let ok = list("ok.csv", &format!("image\n{}", "a.png\n".repeat(10)));
    reconstruct(&list("dup.csv", "image,image\na.png,b.png\n"), &dec, &["dup.csv", "`image` appears twice"]);
    reconstruct(&list("quote.csv", "image,captions\na.png,\"a cat\nb.png,x\nc.png,y\nd.png,z\n"), &dec, &["quote.csv:2", "quote"]);
    reconstruct(&list("empty.csv", ""), &dec, &["empty.csv"]);
    reconstruct(&list("binary.csv", "\u{0}\u{1}\u{2}\n\u{ff}"), &dec, &["binary.csv"]);
    std::fs::create_dir_all(d.join("folder.csv")).unwrap();
    reconstruct(&d.join("folder.csv"), &dec, &["folder.csv", "directory"]);
    // Decoder files: a directory, truncated, garbage.
    std::fs::create_dir_all(d.join("folder.safetensors")).unwrap();
    reconstruct(&ok, &d.join("folder.safetensors"), &["folder.safetensors", "directory"]);
    refused(&["inspect", s(&d.join("folder.safetensors"))], &["folder.safetensors", "directory"]);
    let bytes = std::fs::read(&dec).unwrap();
    std::fs::write(d.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    reconstruct(&ok, &d.join("cut.safetensors"), &["cut.safetensors"]);
    refused(&["inspect", s(&d.join("cut.safetensors"))], &["cut.safetensors"]);
    std::fs::write(d.join("junk.safetensors"), [0xffu8; 64]).unwrap();
    refused(&["inspect", s(&d.join("junk.safetensors"))], &["junk.safetensors"]);
    // eval: a pairs.csv naming a directory as an image.
    let ev = d.join("ev");
    std::fs::create_dir_all(ev.join("r.png")).unwrap();
    std::fs::write(ev.join("pairs.csv"), "original,reconstruction\nr.png,r.png\nr.png,r.png\n").unwrap();
    refused(&["eval", s(&ev)], &["r.png"]);
    assert!(!ev.join("eval.md").exists());
}

/// The shipped TAESD folder with one value of `key` in `file` replaced by NaN.
fn taesd_with_nan(d: &Path, file: &str) -> (PathBuf, String) {
    let src = percept::paths::taesd();
    let dst = d.join("taesd");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["taesd_encoder.safetensors", "taesd_decoder.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join(file)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st.tensors().into_iter().map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let t = tensors.iter_mut().find(|t| t.2.len() == 4).unwrap();
    let key = t.0.clone();
    match t.1 {
        safetensors::Dtype::F32 => t.3[20..24].copy_from_slice(&f32::NAN.to_le_bytes()),
        safetensors::Dtype::F16 => t.3[10..12].copy_from_slice(&[0x00, 0x7e]),
        safetensors::Dtype::BF16 => t.3[10..12].copy_from_slice(&[0xc0, 0x7f]),
        other => panic!("{other:?}"),
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors.iter().map(|(k, dt, sh, data)| (k.clone(), safetensors::tensor::TensorView::new(*dt, sh.clone(), data).unwrap())).collect();
    std::fs::write(dst.join(file), safetensors::serialize(views, None).unwrap()).unwrap();
    (dst, key)
}

#[test]
fn nan_weights_are_refused_at_load() {
    let d = dir("weights");
    let (taesd, key) = taesd_with_nan(&d, "taesd_decoder.safetensors");
    let lat = npy(&d.join("lat.npy"), &[4, 8, 8], &[0.1; 256]);
    let png = &sentinel(d.join("out.png"));
    refused(&["decode", s(&lat), "--out", s(png), "--force", "--weights", s(&taesd)], &["taesd_decoder.safetensors", &key, "not finite"]);
    untouched(png);
    // The library names the file, the key and the index, for f32 and f16 tensors.
    for (dt, bytes) in [(safetensors::Dtype::F32, [0u8, 0, 0, 0, 0, 0, 0xc0, 0x7f].to_vec()), (safetensors::Dtype::F16, vec![0, 0, 0, 0x7c])] {
        let n = bytes.len() * 8 / dt.bitsize();
        let view = safetensors::tensor::TensorView::new(dt, vec![n], &bytes).unwrap();
        let p = d.join(format!("w-{dt:?}.safetensors"));
        std::fs::write(&p, safetensors::serialize(vec![("layer.weight".to_string(), view)], None).unwrap()).unwrap();
        let w = percept::nn::Weights::open(&[&p]).unwrap();
        let e = w.get(&[n], "layer.weight").unwrap_err().to_string();
        assert!(e.contains(&format!("w-{dt:?}.safetensors")) && e.contains("layer.weight") && e.contains("index 1"), "{e}");
    }
    // A directory where a weights file should be.
    let enc = d.join("enc");
    std::fs::create_dir_all(enc.join("taesd_encoder.safetensors")).unwrap();
    let img = percept::paths::shipped("assets/stimuli/public-domain/astronaut.png");
    let out = &sentinel(d.join("z.npy"));
    refused(&["encode", s(&img), "--out", s(out), "--force", "--size", "64", "--weights", s(&enc)], &["taesd_encoder.safetensors", "directory"]);
    untouched(out);
}

#[test]
fn config_integers_are_range_checked() {
    let d = dir("configs");
    let write = |name: &str, json: &str| {
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, json).unwrap();
        p
    };
    let sd15 = percept::paths::shipped("weights/sd15-configs");
    let unet = std::fs::read_to_string(sd15.join("unet/config.json")).unwrap();
    let vae = std::fs::read_to_string(sd15.join("vae/config.json")).unwrap();
    let set = |json: &str, key: &str, value: &str| {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v[key] = serde_json::from_str(value).unwrap();
        v.to_string()
    };
    let huge = "18446744073709551615";
    for (key, value) in [("layers_per_block", huge), ("layers_per_block", "0"), ("norm_num_groups", "0"), ("norm_num_groups", "7"), ("in_channels", "-1"), ("cross_attention_dim", "1e300"), ("block_out_channels", "[320, 0]"), ("block_out_channels", "[]"), ("attention_head_dim", "0"), ("norm_eps", "-1")] {
        let p = write("bad/unet/config.json", &set(&unet, key, value));
        let e = percept::nn::unet::UnetConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains(key), "{key} = {value}: {e}");
    }
    for (key, value) in [("layers_per_block", huge), ("latent_channels", "0"), ("block_out_channels", "[128, 99999999]"), ("scaling_factor", "0"), ("scaling_factor", "\"x\"")] {
        let p = write("bad/vae/config.json", &set(&vae, key, value));
        let e = percept::nn::vae::VaeConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains(key), "{key} = {value}: {e}");
    }
    for (key, value) in [("hidden_size", "0"), ("num_hidden_layers", huge), ("num_attention_heads", "7"), ("vocab_size", "1e20")] {
        let p = write("bad/te/config.json", &format!("{{\"{key}\": {value}}}"));
        let e = percept::nn::clip::ClipConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains(key), "{key} = {value}: {e}");
    }
    // Through the command line: a single-file checkpoint with a broken --configs folder.
    let p = write("cli/unet/config.json", &set(&unet, "layers_per_block", huge));
    write("cli/vae/config.json", &vae);
    let ckpt = d.join("model.safetensors");
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4]).unwrap();
    std::fs::write(&ckpt, safetensors::serialize(vec![("x".to_string(), view)], None).unwrap()).unwrap();
    let lat = npy(&d.join("lat.npy"), &[4, 8, 8], &[0.1; 256]);
    let cond = npy(&d.join("cond.npy"), &[77, 768], &vec![0.0; 77 * 768]);
    let out = &sentinel(d.join("out.npy"));
    refused(&["img2img", "--model", s(&ckpt), "--configs", s(p.parent().unwrap().parent().unwrap()), "--init-latent", s(&lat), "--cond", s(&cond), "--uncond", s(&cond), "--out", s(out), "--force"], &["config.json", "layers_per_block"]);
    untouched(out);
}

/// Under a 4 GB address-space limit the readers refuse huge declared sizes instead of
/// aborting on a failed allocation. (GPU commands start under this limit with Mesa's lavapipe,
/// so one is run too; a hardware driver may need more address space.)
#[test]
fn no_abort_under_a_memory_limit() {
    if Command::new("sh").arg("-c").arg("ulimit -v 4000000").status().map_or(true, |s| !s.success()) {
        return;
    }
    let d = dir("ulimit");
    let (_, y, _) = good(&d);
    let limited = |args: &[&str], names: &[&str]| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("ulimit -v 4000000; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_percept")).args(args);
        check(cmd.output().unwrap(), args, names);
    };
    let out = &sentinel(d.join("out.safetensors"));
    let huge = raw_npy(&d.join("huge.npy"), "<f4", "(1099511627776, 1048576)", &[0; 64]);
    limited(&["fit", "--voxels", s(&huge), "--targets", s(&y), "--out", s(out), "--force"], &["huge.npy"]);
    let big = raw_npy(&d.join("big.npy"), "<f4", "(100000, 10000)", &[0; 64]);
    limited(&["fit", "--voxels", s(&big), "--targets", s(&y), "--out", s(out), "--force"], &["big.npy"]);
    let run = d.join("run.nii");
    percept::io::nifti::write_run(&run, &[0.5; 60], 10, 6).unwrap();
    let mask = d.join("mask.nii");
    percept::io::nifti::write_mask(&mask, 6, 0..6).unwrap();
    let mut b = std::fs::read(&run).unwrap();
    patch_i16(&mut b, DIM, 7);
    for i in 1..=7 {
        patch_i16(&mut b, DIM + 2 * i, -1);
    }
    std::fs::write(d.join("huge.nii"), &b).unwrap();
    limited(&["fit", "--nifti", s(&d.join("huge.nii")), "--mask", s(&mask), "--targets", s(&y), "--out", s(out), "--force"], &["huge.nii"]);
    limited(&["fit", "--nifti", s(&run), "--mask", s(&d.join("huge.nii")), "--targets", s(&y), "--out", s(out), "--force"], &["huge.nii"]);
    limited(&["simulate", "--out", s(&d.join("sim")), "--size", "100000"], &["--size"]);
    limited(&["simulate", "--out", s(&d.join("sim")), "--early", "4000000000"], &["voxels"]);
    let list = d.join("quote.csv");
    std::fs::write(&list, "image\n\"a.png\n").unwrap();
    limited(&["fit", "--voxels", s(&d.join("x.npy")), "--stimuli", s(&list), "--out", s(out), "--force"], &["quote.csv"]);
    limited(&["inspect", s(&huge)], &["huge.npy"]);
    let wide = png_declaring(&d.join("wide.png"), 20000, 20000);
    limited(&["encode", s(&wide), "--out", s(out), "--force", "--size", "64"], &["wide.png"]);
    let lat = npy(&d.join("lat.npy"), &[4, 8, 8], &[0.1; 256]);
    let (taesd, _) = taesd_with_nan(&d, "taesd_decoder.safetensors");
    // The GPU opens first: a driver that cannot start under the limit must fail cleanly too.
    let args = ["decode", s(&lat), "--out", s(out), "--force", "--weights", s(&taesd)];
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -v 4000000; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_percept")).args(args);
    let err = check(cmd.output().unwrap(), &args, &[]);
    assert!(err.contains("taesd_decoder.safetensors") || err.contains("GPU"), "{err}");
    untouched(out);
}
