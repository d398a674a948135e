//! percept-core on a Cortex-M4 under QEMU decodes bit-identically to the host, and no panic
//! is reachable from its public API (the firmware build links `nopanic`).
//!
//! Needs qemu-system-arm and the thumbv7em-none-eabihf target (.ci/run installs both).

use percept_core::{Decoder, Dtype, Error};
use percept_tests::*;

/// Calls `f` with a copy of `bytes` that starts `shift` bytes past an 8-byte boundary (0: as a
/// memory map would give it).
fn with_copy<R>(bytes: &[u8], shift: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut words = vec![0u64; (bytes.len() + shift).div_ceil(8)];
    let all: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) };
    all[shift..shift + bytes.len()].copy_from_slice(bytes);
    f(&all[shift..shift + bytes.len()])
}

fn host_hash(file: &percept::fit::DecoderFile, x: &[f32]) -> String {
    let bytes = file.to_bytes().unwrap();
    with_copy(&bytes, 0, |aligned| host_hash_of(aligned, x))
}

fn host_hash_of(aligned: &[u8], x: &[f32]) -> String {
    let dec = Decoder::from_bytes(aligned).unwrap();
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0; dec.outputs()];
    dec.decode(&x[..dec.voxels()], &mut scratch, &mut out).unwrap();
    format!("{:016x}", fnv1a(&out))
}

#[test]
fn cortex_m4_decode_is_bit_identical_to_host() {
    let fixture = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("firmware-fixture");
    write_firmware_fixture(&fixture).unwrap();
    let image = build_firmware(&fixture).unwrap_or_else(|e| panic!("{e:#}"));
    let text = run_qemu(&image).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{text}");

    let (dense, low, odd, x) = firmware_fixture();
    let want_dense = host_hash(&dense, &x);
    let sum = format!("{:08x}", percept_core::checksum::of_data(&dense.to_bytes().unwrap()));
    assert_eq!(field(&text, "checksum"), Some(sum.as_str()), "XXH32 on the M4 differs from the host's");
    assert_eq!(field(&text, "dense"), Some(want_dense.as_str()), "one-shot dense decode differs from the host's");
    assert_eq!(field(&text, "stream"), Some(want_dense.as_str()), "interleaved streaming differs from the host's one-shot");
    assert_eq!(field(&text, "inorder"), Some(want_dense.as_str()), "in-order streaming differs from the host's one-shot");
    assert_eq!(field(&text, "lowrank"), Some(host_hash(&low, &x).as_str()), "low-rank decode differs from the host's");
    assert_eq!(field(&text, "odd"), Some(host_hash(&odd, &x).as_str()), "odd-sized decode differs from the host's");
    assert_eq!(field(&text, "sparse"), Some(host_hash(&sparse_fixture(), &x).as_str()), "sparse decode differs from the host's");
    // The checksums must depend on the data: another input gives another hash.
    let mut y = x.clone();
    y[0] += 1.0;
    assert_ne!(host_hash(&dense, &y), want_dense);
}

#[test]
fn staticlib_builds_without_std() {
    // For the M4 (no std exists there), and for the host with panic = "abort": its archive
    // must hold no symbol of std.
    build_staticlib("thumbv7em-none-eabihf").unwrap_or_else(|e| panic!("{e:#}"));
    let lib = build_staticlib("x86_64-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e:#}"));
    let nm = std::process::Command::new("nm").arg("-C").arg(&lib).output().unwrap();
    assert!(nm.status.success());
    let syms = String::from_utf8_lossy(&nm.stdout);
    assert!(syms.contains("percept_decode"), "the C entry points are missing");
    let std_syms: Vec<&str> = syms.lines().filter(|l| l.contains(" std::")).take(5).collect();
    assert!(std_syms.is_empty(), "std is linked into the staticlib: {std_syms:?}");
}

/// `-(code)` of the error `Decoder::from_bytes` gives for `bytes` copied `shift` bytes past
/// 8-byte alignment, as the C functions return it.
fn init_code(bytes: &[u8], shift: usize) -> String {
    with_copy(bytes, shift, |b| (-i32::from(Decoder::from_bytes(b).unwrap_err().code())).to_string())
}

#[test]
fn c_program_decodes_like_host() {
    // decode.c, compiled against include/percept_core.h and the host staticlib, decodes each
    // fixture decoder as percept-core does in Rust, and its error paths return the codes the
    // Rust errors have.
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let fixture = tmp.join("c-fixture");
    write_firmware_fixture(&fixture).unwrap();
    let lib = build_staticlib("x86_64-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e:#}"));
    let exe = build_c_example(&lib, &tmp.join("c")).unwrap_or_else(|e| panic!("{e:#}"));

    let (dense, low, odd, x) = firmware_fixture();
    let sparse = sparse_fixture();
    for (name, file) in [("dense", &dense), ("lowrank", &low), ("odd", &odd), ("sparse", &sparse)] {
        let blob = fixture.join(format!("{name}.safetensors"));
        let out = std::process::Command::new(&exe).arg(&blob).arg(fixture.join("x.bin")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "decode.c on {name} failed ({}):\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        println!("{name}:\n{text}");

        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(bytes, file.to_bytes().unwrap(), "{name}: the fixture on disk is not the fixture");
        with_copy(&bytes, 0, |aligned| {
            let dec = Decoder::from_bytes(aligned).unwrap();
            let sizes = format!("{} {} {}", dec.voxels(), dec.outputs(), dec.scratch_len());
            assert_eq!(field(&text, "sizes"), Some(sizes.as_str()), "{name}: percept_sizes");
            assert_eq!(field(&text, "hash"), Some(host_hash_of(aligned, &x).as_str()), "{name}: C decode differs from the host's");
        });
        assert_eq!(field(&text, "truncated"), Some(init_code(&bytes[..bytes.len() - 1], 0).as_str()), "{name}: truncated blob");
        assert_eq!(field(&text, "short"), Some(init_code(&bytes[..4], 0).as_str()), "{name}: 4-byte blob");
        assert_eq!(field(&text, "misaligned"), Some(init_code(&bytes, 1).as_str()), "{name}: misaligned blob");
        let buffer_length = Error::BufferLength { what: "scratch", expected: 0, found: 0 }.code();
        assert_eq!(field(&text, "scratch_short"), Some(format!("-{buffer_length}").as_str()), "{name}: short scratch");
        assert_eq!(field(&text, "null"), Some("-1"), "{name}: null blob");
        assert_eq!(field(&text, "unloaded"), Some("-1 0"), "{name}: decoder left by a failed init");
        for key in ["truncated", "short", "misaligned"] {
            assert!(field(&text, key).unwrap().starts_with('-'), "{name}: {key} must fail");
        }
    }
}

#[test]
fn c_header_error_codes_match_core() {
    // Every PERCEPT_ERR_ define in include/percept_core.h is the code of the error it names.
    let header = std::fs::read_to_string(repo_root().join("firmware/staticlib/include/percept_core.h")).unwrap();
    let defines: std::collections::BTreeMap<&str, u16> = header
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("#define PERCEPT_ERR_")?.split_whitespace();
            Some((w.next()?, w.next()?.parse().ok()?))
        })
        .collect();
    let (s, n) = ("x", 0);
    let errors = [
        ("TOO_SHORT", Error::TooShort { len: n }),
        ("HEADER_TOO_LARGE", Error::HeaderTooLarge { header_len: 0, limit: n }),
        ("HEADER_PAST_END", Error::HeaderPastEnd { header_len: 0, available: n }),
        ("HEADER_NOT_UTF8", Error::HeaderNotUtf8 { offset: n }),
        ("HEADER_SYNTAX", Error::HeaderSyntax { offset: n, expected: s }),
        ("HEADER_TOO_DEEP", Error::HeaderTooDeep { offset: n }),
        ("TOO_MANY_TENSORS", Error::TooManyTensors { limit: n }),
        ("DUPLICATE_TENSOR", Error::DuplicateTensor { offset: n }),
        ("UNKNOWN_DTYPE", Error::UnknownDtype { offset: n }),
        ("RANK_TOO_LARGE", Error::RankTooLarge { offset: n, limit: n }),
        ("SHAPE_OVERFLOW", Error::ShapeOverflow { offset: n }),
        ("DATA_OUT_OF_RANGE", Error::DataOutOfRange { offset: n, end: 0, available: n }),
        ("SIZE_MISMATCH", Error::SizeMismatch { offset: n, expected: 0, found: 0 }),
        ("DATA_NOT_CONTIGUOUS", Error::DataNotContiguous { at: 0 }),
        ("MISSING_TENSOR", Error::MissingTensor { name: s }),
        ("WRONG_DTYPE", Error::WrongDtype { name: s, expected: Dtype::F32, found: Dtype::F16 }),
        ("WRONG_RANK", Error::WrongRank { name: s, expected: n, found: n }),
        ("WRONG_SHAPE", Error::WrongShape { name: s, dim: n, expected: 0, found: 0 }),
        ("MISALIGNED", Error::Misaligned { name: s, align: n }),
        ("NON_FINITE_PARAMETER", Error::NonFiniteParameter { name: s, index: n }),
        ("BAD_STD", Error::BadStd { index: n }),
        ("MISSING_METADATA", Error::MissingMetadata { key: s }),
        ("BAD_METADATA", Error::BadMetadata { key: s }),
        ("SIZE_NOT_AS_BUILT", Error::SizeNotAsBuilt { what: s, expected: n, found: n }),
        ("BUFFER_LENGTH", Error::BufferLength { what: s, expected: n, found: n }),
        ("NON_FINITE_VOXEL", Error::NonFiniteVoxel { index: n }),
        ("CHUNK_OUT_OF_RANGE", Error::ChunkOutOfRange { start: n, len: n, voxels: n }),
        ("CHUNK_OVERLAP", Error::ChunkOverlap { index: n }),
        ("INCOMPLETE", Error::Incomplete { first_missing: n }),
        ("CHECKSUM_MISMATCH", Error::ChecksumMismatch { expected: 0, found: 0 }),
        ("UNSUPPORTED_FORMAT_VERSION", Error::UnsupportedFormatVersion { newest: 0 }),
        ("BOTH_WEIGHT_KINDS", Error::BothWeightKinds),
        ("BAD_RANK", Error::BadRank { rank: n, limit: n }),
        ("EMPTY_DECODER", Error::EmptyDecoder { name: s }),
        ("STD_TOO_SMALL", Error::StdTooSmall { index: n }),
        ("SPARSE_INDEX_OUT_OF_RANGE", Error::SparseIndexOutOfRange { output: n, slot: n, index: n, voxels: n }),
    ];
    let mut want: std::collections::BTreeMap<&str, u16> = errors.iter().map(|(k, e)| (*k, e.code())).collect();
    want.insert("NULL_POINTER", 1);
    assert_eq!(defines, want, "the header's PERCEPT_ERR_ defines differ from percept_core::Error::code");
}
