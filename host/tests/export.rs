//! Writing decoder files: round trip through percept-core, and the errors for bad input.

use percept::io::decoder::LoadedDecoder;
use percept::fit::{DecoderFile, DecoderWeights};
use percept::Error;
use percept_core::Target;

fn file(v: usize, shape: &[usize]) -> DecoderFile {
    let l: usize = shape.iter().product();
    DecoderFile {
        features: None,
        region: "higher_visual".into(),
        target: Target::C,
        target_shape: shape.to_vec(),
        voxels: v,
        weights: DecoderWeights::Dense((0..l * v).map(|i| (i % 7) as f32 * 0.125 - 0.25).collect()),
        bias: vec![0.5; l],
        voxel_mean: vec![1.0; v],
        voxel_std: vec![2.0; v],
        settings: vec![("alpha".into(), "0.01".into())],
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn round_trip_through_the_core() {
    let path = tmp("c.safetensors");
    let f = file(5, &[3, 2]);
    f.save(&path, true).unwrap();
    let loaded = LoadedDecoder::open(&path).unwrap();
    let dec = loaded.decoder().unwrap();
    assert_eq!((dec.voxels(), dec.outputs(), dec.target(), dec.target_shape()), (5, 6, Target::C, &[3u32, 2][..]));
    assert_eq!(dec.region(), "higher_visual");
    let blob = percept_core::Blob::parse(loaded.bytes()).unwrap();
    assert_eq!(blob.metadata("fit.alpha").unwrap(), Some("0.01"));
    // x = mean + std * 1 -> z = 1 for every voxel: y_r = sum_i w_ri + 0.5
    let x = vec![3.0f32; 5];
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut y = vec![0.0; 6];
    dec.decode(&x, &mut scratch, &mut y).unwrap();
    let DecoderWeights::Dense(w) = &f.weights else { unreachable!() };
    for r in 0..6 {
        let want: f32 = w[r * 5..(r + 1) * 5].iter().sum::<f32>() + 0.5;
        assert!((y[r] - want).abs() < 1e-6, "row {r}: {} vs {want}", y[r]);
    }
}

#[test]
fn low_rank_round_trip() {
    let path = tmp("lr.safetensors");
    let mut f = file(4, &[6]);
    f.weights = DecoderWeights::LowRank { u: vec![1.0; 12], vt: vec![0.5; 8], rank: 2 };
    f.save(&path, true).unwrap();
    let dec_file = LoadedDecoder::open(&path).unwrap();
    assert_eq!(dec_file.decoder().unwrap().rank(), Some(2));
}

#[test]
fn refuses_to_overwrite_and_names_the_file() {
    let path = tmp("keep.safetensors");
    std::fs::write(&path, b"precious").unwrap();
    let e = file(2, &[2]).save(&path, false).unwrap_err();
    assert!(matches!(e, Error::Exists(_)));
    assert!(e.to_string().contains("keep.safetensors") && e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn bad_values_are_named() {
    let mut f = file(3, &[2]);
    f.voxel_std[1] = 0.0;
    let e = f.to_bytes().unwrap_err().to_string();
    assert!(e.contains("voxel 1") && e.contains("standard deviation"), "{e}");

    let mut f = file(3, &[2]);
    if let DecoderWeights::Dense(w) = &mut f.weights {
        w[4] = 1e6;
    }
    let e = f.to_bytes().unwrap_err().to_string();
    assert!(e.contains("`weight`") && e.contains("(1, 1)") && e.contains("f16"), "{e}");

    let mut f = file(3, &[2]);
    f.bias.push(0.0);
    let e = f.to_bytes().unwrap_err().to_string();
    assert!(e.contains("`bias` has 3 values, expected 2"), "{e}");
}

#[test]
fn truncated_file_gives_a_named_error() {
    let path = tmp("trunc.safetensors");
    let bytes = file(4, &[3]).to_bytes().unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let e = LoadedDecoder::open(&path).unwrap_err().chain();
    assert!(e.contains("trunc.safetensors") && e.contains("truncated"), "{e}");
}

#[test]
fn files_carry_a_checksum_that_the_core_checks() {
    let path = tmp("sum.safetensors");
    let f = file(5, &[3, 2]);
    f.save(&path, true).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let blob = percept_core::Blob::parse(&bytes).unwrap();
    assert_eq!(blob.metadata("format_version").unwrap(), Some(percept_core::FORMAT_VERSION));
    let want = format!("xxh32:{:08x}", percept_core::checksum::of_data(blob.data()));
    assert_eq!(blob.metadata("checksum").unwrap(), Some(want.as_str()));
    let text = percept::io::decoder::describe(&path).unwrap();
    assert!(text.contains(&format!("checksum      {want} (verified)")), "{text}");
    // One flipped weight bit: refused at load, naming the file and the checksum.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x10;
    let path = tmp("flipped.safetensors");
    std::fs::write(&path, &bad).unwrap();
    let e = LoadedDecoder::open(&path).unwrap_err().chain();
    assert!(e.contains("flipped.safetensors") && e.contains("checksum"), "{e}");
}

#[test]
fn what_the_core_refuses_is_not_written() {
    let err = |f: &DecoderFile| f.to_bytes().unwrap_err().to_string();
    let mut f = file(3, &[2]);
    f.voxel_std[2] = 1e-45;
    let e = err(&f);
    assert!(e.contains("voxel 2") && e.contains("`voxel_std`"), "{e}");
    let mut f = file(3, &[2]);
    f.voxel_std[0] = f32::INFINITY;
    assert!(err(&f).contains("voxel 0"));
    let mut f = file(3, &[2]);
    f.bias[1] = f32::NAN;
    let e = err(&f);
    assert!(e.contains("`bias`") && e.contains("element 1"), "{e}");
    let mut f = file(3, &[2]);
    f.voxel_mean[0] = f32::NEG_INFINITY;
    assert!(err(&f).contains("`voxel_mean`"));
    for rank in [0, 3] {
        let mut f = file(3, &[2]);
        f.weights = DecoderWeights::LowRank { u: vec![1.0; 2 * rank], vt: vec![0.5; rank * 3], rank };
        let e = err(&f);
        assert!(e.contains(&format!("rank {rank}")), "{e}");
    }
    let e = err(&file(0, &[2]));
    assert!(e.contains("no voxels"), "{e}");
    for shape in [&[][..], &[0, 2][..], &[1, 1, 1, 1, 2][..]] {
        let e = err(&file(3, shape));
        assert!(e.contains("target_shape"), "{e}");
    }
}
