//! Malformed, truncated and hostile safetensors blobs: each gives a named error, none panics.

mod common;
use common::*;
use percept_core::{Blob, Decoder, Dtype, Error};

fn with_header(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, data_len));
    out
}

fn parse(bytes: &[u8]) -> Result<(), Error> {
    let buf = Buf::new(bytes);
    Blob::parse(buf.bytes()).map(|_| ())
}

fn good() -> Vec<u8> {
    let s = Spec { v: 10, l: 3, rank: None, seed: 1 };
    blob(&s, &params(&s))
}

#[test]
fn valid_blob_round_trips() {
    let bytes = good();
    let buf = Buf::new(&bytes);
    let b = Blob::parse(buf.bytes()).unwrap();
    let w = b.tensor("weight").unwrap().unwrap();
    assert_eq!(w.dtype, Dtype::F16);
    assert_eq!(&w.shape[..], &[3, 10]);
    assert_eq!(w.data.len(), 60);
    assert!(b.tensor("nope").unwrap().is_none());
    assert_eq!(b.metadata("region").unwrap(), Some("early_visual"));
}

#[test]
fn truncated_anywhere_never_panics() {
    let bytes = good();
    for cut in 0..bytes.len() {
        let r = parse(&bytes[..cut]);
        assert!(r.is_err(), "cut at {cut} parsed");
        let buf = Buf::new(&bytes[..cut]);
        assert!(Decoder::from_bytes(buf.bytes()).is_err());
    }
    assert_eq!(parse(&bytes[..5]), Err(Error::TooShort { len: 5 }));
}

#[test]
fn every_single_byte_corruption_is_handled() {
    // Flip each header byte to a few values: must give Ok or an Err, never a panic.
    let bytes = good();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for i in 0..header_end {
        for v in [0u8, b'"', b'{', b'}', b'[', b',', b'9', 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let buf = Buf::new(&b);
            let _ = Decoder::from_bytes(buf.bytes());
        }
    }
}

#[test]
fn header_length_checks() {
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(parse(&b), Err(Error::HeaderTooLarge { .. })));
    // Claims 3 GB.
    let mut b = 3_000_000_000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(parse(&b), Err(Error::HeaderTooLarge { header_len: 3_000_000_000, .. })));
    let mut b = 50u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    let e = parse(&b).unwrap_err();
    assert_eq!(e, Error::HeaderPastEnd { header_len: 50, available: 2 });
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn syntax_errors_name_the_offset() {
    let cases: &[(&str, &str)] = &[
        ("", "'{' opening the header"),
        ("[]", "'{' opening the header"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "',' or a closing bracket"),
        ("{\"a\" {}}", "':'"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "a non-negative integer"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "an integer, not a fraction"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "an integer without leading zeros"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", "an integer that fits in 64 bits"),
        ("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "a shape in the tensor entry"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "',' between the two data offsets"),
        ("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "a dtype in the tensor entry"),
        ("{\"a\\q\":{}}", "a valid escape"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", "end of header"),
        ("{\"__metadata__\":{\"k\":1}}", "'\"' opening a string"),
    ];
    for (h, want) in cases {
        match parse(&with_header(h, 4)) {
            Err(Error::HeaderSyntax { expected, .. }) => assert_eq!(expected, *want, "header {h}"),
            other => panic!("header {h}: {other:?}"),
        }
    }
    assert!(matches!(parse(&with_header("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)), Err(Error::UnknownDtype { .. })));
    let deep = format!("{{\"a\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":{}{}}}}}", "[".repeat(100), "]".repeat(100));
    assert!(matches!(parse(&with_header(&deep, 4)), Err(Error::HeaderTooDeep { .. })));
    let mut bad_utf8 = with_header("{\"a\":1}", 0);
    bad_utf8[10] = 0xff;
    assert_eq!(parse(&bad_utf8), Err(Error::HeaderNotUtf8 { offset: 2 }));
}

#[test]
fn offsets_and_sizes_are_checked() {
    let t = |shape: &str, off: &str| format!("{{\"a\":{{\"dtype\":\"F32\",\"shape\":[{shape}],\"data_offsets\":[{off}]}}}}");
    assert!(matches!(parse(&with_header(&t("2", "0,8"), 4)), Err(Error::DataOutOfRange { end: 8, available: 4, .. })));
    assert!(matches!(parse(&with_header(&t("1", "8,4"), 8)), Err(Error::DataOutOfRange { .. })));
    assert!(matches!(parse(&with_header(&t("2", "0,4"), 4)), Err(Error::SizeMismatch { expected: 8, found: 4, .. })));
    assert!(matches!(
        parse(&with_header(&t("4294967296,4294967296,4294967296", "0,4"), 4)),
        Err(Error::ShapeOverflow { .. })
    ));
    assert!(matches!(parse(&with_header(&t("1,1,1,1,1,1,1,1,1", "0,4"), 4)), Err(Error::RankTooLarge { .. })));
    // Gap at the end, overlap, and a gap at the start.
    assert_eq!(parse(&with_header(&t("1", "0,4"), 8)), Err(Error::DataNotContiguous { at: 4 }));
    let two = |a: &str, b: &str| {
        format!("{{\"a\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{a}]}},\"b\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{b}]}}}}")
    };
    assert!(matches!(parse(&with_header(&two("0,4", "2,6"), 8)), Err(Error::DataNotContiguous { .. })));
    assert!(matches!(parse(&with_header(&two("4,8", "8,12"), 12)), Err(Error::DataNotContiguous { at: 0 })));
    assert!(matches!(
        parse(&with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8)),
        Err(Error::DuplicateTensor { .. })
    ));
    // More tensors than the table holds.
    let many: Vec<String> = (0..65).map(|i| format!("\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{i},{}]}}", i + 1)).collect();
    assert!(matches!(parse(&with_header(&format!("{{{}}}", many.join(",")), 65)), Err(Error::TooManyTensors { limit: 64 })));
    // Zero-sized tensors and unknown keys are fine.
    assert_eq!(parse(&with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0],\"extra\":[1,{\"x\":null}]}}", 0)), Ok(()));
}

fn decoder_err(tensors: &[T], meta: &[(&str, &str)]) -> Error {
    let buf = Buf::new(&write(tensors, meta));
    Decoder::from_bytes(buf.bytes()).unwrap_err()
}

const META: &[(&str, &str)] = &[("format", "percept-decoder"), ("region", "v1"), ("target", "z"), ("target_shape", "2")];

fn parts(v: usize, l: usize) -> Vec<T> {
    vec![
        f32s("bias", &[l as u64], &vec![0.5; l]),
        f32s("voxel_mean", &[v as u64], &vec![0.0; v]),
        f32s("voxel_std", &[v as u64], &vec![1.0; v]),
        f16s("weight", &[l as u64, v as u64], &vec![0.25; l * v]),
    ]
}

#[test]
fn decoder_files_are_checked() {
    let buf = Buf::new(&write(&parts(4, 2), META));
    assert!(Decoder::from_bytes(buf.bytes()).is_ok());

    let mut p = parts(4, 2);
    p.pop();
    assert_eq!(decoder_err(&p, META), Error::MissingTensor { name: "weight" });

    let mut p = parts(4, 2);
    p[3] = f32s("weight", &[2, 4], &[0.0; 8]);
    let e = decoder_err(&p, META);
    assert_eq!(e, Error::WrongDtype { name: "weight", expected: Dtype::F16, found: Dtype::F32 });
    assert_eq!(e.to_string(), "tensor `weight` is F32, expected F16");

    let mut p = parts(4, 2);
    p[3] = f16s("weight", &[2, 5], &[0.0; 10]);
    assert_eq!(decoder_err(&p, META), Error::WrongShape { name: "weight", dim: 1, expected: 4, found: 5 });

    let mut p = parts(4, 2);
    p[2] = f32s("voxel_std", &[4], &[1.0, 1.0, 0.0, 1.0]);
    assert_eq!(decoder_err(&p, META), Error::BadStd { index: 2 });

    let mut p = parts(4, 2);
    p[0] = f32s("bias", &[2], &[0.0, f32::NAN]);
    assert_eq!(decoder_err(&p, META), Error::NonFiniteParameter { name: "bias", index: 1 });

    let mut p = parts(4, 2);
    p[3] = f16s("weight", &[2, 4], &[0.0, 0.0, 0.0, 0.0, 0.0, f32::INFINITY, 0.0, 0.0]);
    assert_eq!(decoder_err(&p, META), Error::NonFiniteParameter { name: "weight", index: 5 });

    let mut p = parts(4, 2);
    p[1] = f32s("voxel_mean", &[2, 2], &[0.0; 4]);
    assert_eq!(decoder_err(&p, META), Error::WrongRank { name: "voxel_mean", expected: 1, found: 2 });

    assert_eq!(decoder_err(&parts(4, 2), &META[1..]), Error::MissingMetadata { key: "format" });
    let mut m = META.to_vec();
    m[3] = ("target_shape", "3");
    assert_eq!(decoder_err(&parts(4, 2), &m), Error::BadMetadata { key: "target_shape" });
    m[3] = ("target_shape", "1,x");
    assert_eq!(decoder_err(&parts(4, 2), &m), Error::BadMetadata { key: "target_shape" });
    m[3] = ("target_shape", "2");
    m[2] = ("target", "w");
    assert_eq!(decoder_err(&parts(4, 2), &m), Error::BadMetadata { key: "target" });
}

#[test]
fn misaligned_weights_are_refused() {
    // An f16 tensor with an odd element count puts the next f32 tensor at an odd-by-2 offset.
    let p = vec![
        f16s("weight", &[1, 3], &[0.0; 3]),
        f32s("bias", &[1], &[0.0]),
        f32s("voxel_mean", &[3], &[0.0; 3]),
        f32s("voxel_std", &[3], &[1.0; 3]),
    ];
    let mut m = META.to_vec();
    m[3] = ("target_shape", "1");
    let e = decoder_err(&p, &m);
    assert_eq!(e, Error::Misaligned { name: "bias", align: 4 });
    // Shifting the whole blob by one byte misaligns everything.
    let bytes = write(&parts(4, 2), META);
    let buf = Buf::new(&[&[0u8][..], &bytes].concat());
    assert!(matches!(Decoder::from_bytes(&buf.bytes()[1..]), Err(Error::Misaligned { .. })));
}

#[test]
fn format_versions_and_checksums() {
    // Version 1 (or no version): the checksum is optional, but checked when present.
    let mut m = META.to_vec();
    m.push(("format_version", "1"));
    let buf = Buf::new(&write(&parts(4, 2), &m));
    assert!(Decoder::from_bytes(buf.bytes()).is_ok());
    let buf = Buf::new(&write_v2(&parts(4, 2), META));
    assert!(Decoder::from_bytes(buf.bytes()).is_ok());
    let mut m = META.to_vec();
    m.push(("format_version", "1"));
    m.push(("checksum", "xxh32:00000000"));
    let e = decoder_err(&parts(4, 2), &m);
    let found = percept_core::checksum::of_data(&data_section(&parts(4, 2)));
    assert_eq!(e, Error::ChecksumMismatch { expected: 0, found });
    assert_eq!(e.to_string(), format!("tensor data has checksum xxh32:{found:08x} but metadata `checksum` says xxh32:00000000 (file corrupted?)"));
    // Version 2 requires it.
    let mut m = META.to_vec();
    m.push(("format_version", "2"));
    assert_eq!(decoder_err(&parts(4, 2), &m), Error::MissingMetadata { key: "checksum" });
    m.push(("checksum", "crc32:00000000"));
    assert_eq!(decoder_err(&parts(4, 2), &m), Error::BadMetadata { key: "checksum" });
    // Unknown versions.
    for v in ["3", "0", "2.0", ""] {
        let mut m = META.to_vec();
        m.push(("format_version", v));
        let e = decoder_err(&parts(4, 2), &m);
        assert_eq!(e, Error::UnsupportedFormatVersion { newest: 2 }, "version {v:?}");
        assert!(e.to_string().contains("format_version"), "{e}");
    }
}

#[test]
fn structural_errors_are_distinct() {
    let code = |e: &Error| e.code();
    let mut seen = std::collections::BTreeSet::new();

    // Dense and low-rank weights together.
    let mut p = parts(4, 2);
    p.push(f16s("weight_u", &[2, 1], &[0.5; 2]));
    p.push(f16s("weight_vt", &[1, 4], &[0.5; 4]));
    let e = decoder_err(&p, META);
    assert_eq!(e, Error::BothWeightKinds);
    assert!(e.to_string().contains("`weight`") && e.to_string().contains("`weight_u`"), "{e}");
    seen.insert(code(&e));
    let mut p = parts(4, 2);
    p.push(f16s("weight_vt", &[1, 4], &[0.5; 4]));
    assert_eq!(decoder_err(&p, META), Error::BothWeightKinds);

    // Half a low-rank pair.
    let mut p = parts(4, 2);
    p[3] = f16s("weight_u", &[2, 1], &[0.5; 2]);
    assert_eq!(decoder_err(&p, META), Error::MissingTensor { name: "weight_vt" });

    // Rank 0, and rank above min(L, V).
    let low = |r: usize, v: usize, l: usize| {
        let mut p = parts(v, l);
        p[3] = f16s("weight_u", &[l as u64, r as u64], &vec![0.5; l * r]);
        p.push(f16s("weight_vt", &[r as u64, v as u64], &vec![0.5; r * v]));
        p
    };
    let e = decoder_err(&low(0, 4, 2), META);
    assert_eq!(e, Error::BadRank { rank: 0, limit: 2 });
    assert!(e.to_string().contains("rank 0"), "{e}");
    seen.insert(code(&e));
    assert_eq!(decoder_err(&low(3, 4, 2), META), Error::BadRank { rank: 3, limit: 2 });
    let mut m = META.to_vec();
    m[3] = ("target_shape", "6");
    assert_eq!(decoder_err(&low(5, 4, 6), &m), Error::BadRank { rank: 5, limit: 4 });
    let buf = Buf::new(&write(&low(2, 4, 2), META));
    assert_eq!(Decoder::from_bytes(buf.bytes()).unwrap().rank(), Some(2));

    // No voxels, no outputs.
    let e = decoder_err(&parts(0, 2), META);
    assert_eq!(e, Error::EmptyDecoder { name: "voxel_mean" });
    assert!(e.to_string().contains("`voxel_mean` is empty"), "{e}");
    seen.insert(code(&e));
    let mut m = META.to_vec();
    m[3] = ("target_shape", "1");
    assert_eq!(decoder_err(&parts(4, 0), &m), Error::EmptyDecoder { name: "bias" });

    // Unknown version, checksum.
    seen.insert(Error::UnsupportedFormatVersion { newest: 2 }.code());
    seen.insert(Error::ChecksumMismatch { expected: 0, found: 0 }.code());
    assert_eq!(seen.len(), 5);
}

#[test]
fn parameter_values_are_checked() {
    let with = |i: usize, t: T| {
        let mut p = parts(4, 2);
        p[i] = t;
        decoder_err(&p, META)
    };
    // Tiny and subnormal stds, and the floor itself.
    for (s, want) in [
        (1e-45, Some(Error::StdTooSmall { index: 1 })),
        (f32::MIN_POSITIVE / 2.0, Some(Error::StdTooSmall { index: 1 })),
        (9e-31, Some(Error::StdTooSmall { index: 1 })),
        (-1e-45, Some(Error::BadStd { index: 1 })),
        (-0.0, Some(Error::BadStd { index: 1 })),
        (f32::NAN, Some(Error::NonFiniteParameter { name: "voxel_std", index: 1 })),
        (f32::INFINITY, Some(Error::NonFiniteParameter { name: "voxel_std", index: 1 })),
        (percept_core::MIN_STD, None),
    ] {
        let mut p = parts(4, 2);
        p[2] = f32s("voxel_std", &[4], &[1.0, s, 1.0, 1.0]);
        let buf = Buf::new(&write(&p, META));
        assert_eq!(Decoder::from_bytes(buf.bytes()).err(), want, "std {s:e}");
    }
    let e = with(2, f32s("voxel_std", &[4], &[1.0, 1.0, 1e-45, 1.0]));
    assert!(e.to_string().contains("voxel 2") && e.to_string().contains("1e-30"), "{e}");
    assert_ne!(e.code(), Error::BadStd { index: 0 }.code());
    // Non-finite bias and mean name their tensor and element.
    let e = with(0, f32s("bias", &[2], &[f32::NEG_INFINITY, 0.0]));
    assert_eq!(e, Error::NonFiniteParameter { name: "bias", index: 0 });
    assert!(e.to_string().contains("`bias`"), "{e}");
    let e = with(1, f32s("voxel_mean", &[4], &[0.0, 0.0, 0.0, f32::NAN]));
    assert_eq!(e, Error::NonFiniteParameter { name: "voxel_mean", index: 3 });
    assert!(e.to_string().contains("`voxel_mean`"), "{e}");
}

#[test]
fn every_single_data_byte_flip_is_detected() {
    // Any change of any byte of tensor data in a version-2 file is caught by the checksum
    // (before the values are looked at), dense and low-rank.
    for rank in [None, Some(2)] {
        let s = Spec { v: 10, l: 3, rank, seed: 5 };
        let bytes = blob_v2(&s, &params(&s));
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert!(Decoder::from_bytes(Buf::new(&bytes).bytes()).is_ok());
        for i in header_end..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let buf = Buf::new(&b);
                let e = Decoder::from_bytes(buf.bytes()).unwrap_err();
                assert!(matches!(e, Error::ChecksumMismatch { .. }), "byte {i} bit {bit}: {e:?}");
            }
        }
    }
}

mod flips {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random corruptions (1 to 4 bytes of the data section changed anywhere) of random
        /// version-2 decoders: always refused with ChecksumMismatch, never a panic.
        #[test]
        fn corrupted_data_is_refused(v in 1usize..300, l in 1usize..8, rank in prop::option::of(1usize..4), seed in any::<u64>(),
                                     flips in prop::collection::vec((any::<usize>(), 1u8..=255), 1..5)) {
            let rank = rank.map(|r| r.min(v).min(l));
            let s = Spec { v, l, rank, seed };
            let bytes = blob_v2(&s, &params(&s));
            let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let mut b = bytes.clone();
            let mut positions = std::collections::BTreeSet::new();
            for (at, x) in flips {
                let i = header_end + at % (bytes.len() - header_end);
                if positions.insert(i) {
                    b[i] ^= x;
                }
            }
            let buf = Buf::new(&b);
            let r = Decoder::from_bytes(buf.bytes());
            prop_assert!(matches!(r, Err(Error::ChecksumMismatch { .. })), "{:?}", r.err());
        }
    }
}
