//! The sparse decoder kind (`sparse_index`, `sparse_weight`): the documented summation order
//! bit for bit, U16 and U32 indices, streaming, and every way a hostile file can be wrong.

mod common;
use common::*;
use half::f16;
use percept_core::{Decoder, Error, FixedDecoder, Scratch, Target};
use proptest::prelude::*;

struct Sp {
    v: usize,
    l: usize,
    k: usize,
    idx: Vec<u32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    mean: Vec<f32>,
    std: Vec<f32>,
}

fn sparse(v: usize, l: usize, k: usize, seed: u64) -> Sp {
    let mut r = Rng(seed);
    let idx = (0..l * k).map(|_| (r.next_u64() % v as u64) as u32).collect();
    let w = r.vec(l * k, 0.5).into_iter().map(|x| f16::from_f32(x).to_f32()).collect();
    let bias = r.vec(l, 1.0);
    let mean = r.vec(v, 2.0);
    let std = r.vec(v, 0.5).into_iter().map(|x| x.abs() + 0.5).collect();
    Sp { v, l, k, idx, w, bias, mean, std }
}

fn idx_tensor(name: &str, dtype: &'static str, shape: &[u64], idx: &[u32]) -> T {
    let data = match dtype {
        "U16" => idx.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect(),
        _ => idx.iter().flat_map(|&i| i.to_le_bytes()).collect(),
    };
    T { name: name.into(), dtype, shape: shape.to_vec(), data }
}

fn tensors(s: &Sp, dtype: &'static str) -> Vec<T> {
    let (v, l, k) = (s.v as u64, s.l as u64, s.k as u64);
    vec![
        f32s("bias", &[l], &s.bias),
        f32s("voxel_mean", &[v], &s.mean),
        f32s("voxel_std", &[v], &s.std),
        idx_tensor("sparse_index", dtype, &[l, k], &s.idx),
        f16s("sparse_weight", &[l, k], &s.w),
    ]
}

fn meta(l: usize) -> (String, [(&'static str, &'static str); 3]) {
    (l.to_string(), [("format", "percept-decoder"), ("region", "early_visual"), ("target", "features")])
}

fn file(ts: &[T], l: usize) -> Buf {
    let (shape, m) = meta(l);
    let mut all: Vec<(&str, &str)> = m.to_vec();
    all.push(("target_shape", &shape));
    all.push(("kind", "sparse"));
    Buf::new(&write_v2(ts, &all))
}

/// The order sparse.rs documents: slot s into lane s mod 4, then (l0 + l1) + (l2 + l3), + bias.
fn canonical(s: &Sp, x: &[f32]) -> Vec<f32> {
    let z: Vec<f32> = (0..s.v).map(|i| (x[i] - s.mean[i]) / s.std[i]).collect();
    (0..s.l)
        .map(|j| {
            let mut lanes = [0f32; 4];
            for slot in 0..s.k {
                lanes[slot % 4] += s.w[j * s.k + slot] * z[s.idx[j * s.k + slot] as usize];
            }
            (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + s.bias[j]
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn decodes_in_the_documented_order_with_u16_and_u32_indices() {
    for (v, l, k, dtype) in [(50, 7, 5, "U16"), (300, 3, 17, "U32"), (70_000, 2, 9, "U32"), (1, 1, 1, "U16")] {
        let s = sparse(v, l, k, v as u64);
        let buf = file(&tensors(&s, dtype), l);
        let dec = Decoder::from_bytes(buf.bytes()).unwrap();
        assert_eq!((dec.sparse_k(), dec.rank(), dec.target(), dec.scratch_len()), (Some(k), None, Target::Features, v));
        let x = Rng(9).vec(v, 3.0);
        let mut out = vec![0f32; l];
        dec.decode(&x, &mut vec![0f32; v], &mut out).unwrap();
        assert_eq!(bits(&out), bits(&canonical(&s, &x)), "V {v} L {l} k {k} {dtype}");
        // prepare + decode_rows, one output at a time.
        let mut xn = vec![0f32; v];
        dec.prepare(&x, &mut xn, &mut []).unwrap();
        for (j, want) in out.iter().enumerate() {
            let mut o = [0f32];
            dec.decode_rows(&xn, j, &mut o).unwrap();
            assert_eq!(o[0].to_bits(), want.to_bits());
        }
    }
}

#[test]
fn streaming_in_any_order_is_bit_identical() {
    let s = sparse(700, 5, 33, 4);
    let buf = file(&tensors(&s, "U16"), 5);
    let dec = Decoder::from_bytes(buf.bytes()).unwrap();
    let x = Rng(5).vec(700, 2.0);
    let mut want = vec![0f32; 5];
    dec.decode(&x, &mut vec![0f32; 700], &mut want).unwrap();
    let (mut scratch, mut seen, mut out) = (vec![0f32; 700], vec![0u32; dec.seen_len()], vec![0f32; 5]);
    let mut acc = dec.stream(&mut scratch, &mut seen, &mut out).unwrap();
    for start in [600, 0, 300, 100, 500, 200, 400] {
        acc.push(start, &x[start..start + 100]).unwrap();
    }
    acc.finish().unwrap();
    assert_eq!(bits(&out), bits(&want));
    let mut acc = dec.stream(&mut scratch, &mut seen, &mut out).unwrap();
    acc.push(0, &x[..699]).unwrap();
    assert_eq!(acc.finish().unwrap_err(), Error::Incomplete { first_missing: 699 });
    // A fixed-size build of the same decoder.
    let fixed = FixedDecoder::<700, 5, 0>::from_bytes(buf.bytes()).unwrap();
    let mut sc = Scratch::<700, 0>::new();
    let mut o = [0f32; 5];
    fixed.decode(x.as_slice().try_into().unwrap(), &mut sc, &mut o).unwrap();
    assert_eq!(bits(&o), bits(&want));
}

#[test]
fn hostile_sparse_files_are_refused_with_their_own_errors() {
    let s = sparse(40, 3, 4, 8);
    let l = 3;
    let load = |ts: &[T]| Decoder::from_bytes(file(ts, l).bytes()).map(|_| ()).unwrap_err();
    // An index at V, at the last output's last slot; U16 and U32.
    for dtype in ["U16", "U32"] {
        let mut bad = s.idx.clone();
        bad[l * 4 - 1] = 40;
        let mut ts = tensors(&s, dtype);
        ts[3] = idx_tensor("sparse_index", dtype, &[3, 4], &bad);
        assert_eq!(load(&ts), Error::SparseIndexOutOfRange { output: 2, slot: 3, index: 40, voxels: 40 });
        assert_eq!(Error::SparseIndexOutOfRange { output: 2, slot: 3, index: 40, voxels: 40 }.code(), 37);
    }
    let mut ts = tensors(&s, "U16");
    ts[3] = idx_tensor("sparse_index", "U32", &[3, 4], &[u32::MAX; 12]);
    assert!(matches!(load(&ts), Error::SparseIndexOutOfRange { output: 0, slot: 0, .. }));
    // Wrong dtypes, shapes and k = 0.
    let mut ts = tensors(&s, "U16");
    ts[3].dtype = "I16";
    assert!(matches!(load(&ts), Error::WrongDtype { name: "sparse_index", .. }));
    let mut ts = tensors(&s, "U16");
    ts[4] = f32s("sparse_weight", &[3, 2], &[0.0; 6]);
    assert!(matches!(load(&ts), Error::WrongDtype { name: "sparse_weight", .. }));
    let mut ts = tensors(&s, "U16");
    ts[4] = f16s("sparse_weight", &[3, 3], &[0.0; 9]);
    ts[3] = idx_tensor("sparse_index", "U16", &[3, 3], &[0; 9]);
    ts[4] = f16s("sparse_weight", &[3, 4], &s.w);
    assert!(matches!(load(&ts), Error::WrongShape { name: "sparse_weight", dim: 1, .. }));
    let mut ts = tensors(&s, "U16");
    ts[3] = idx_tensor("sparse_index", "U16", &[4, 3], &s.idx);
    assert!(matches!(load(&ts), Error::WrongShape { name: "sparse_index", dim: 0, .. }));
    let mut ts = tensors(&s, "U16");
    ts[3] = idx_tensor("sparse_index", "U16", &[3, 0], &[]);
    ts[4] = f16s("sparse_weight", &[3, 0], &[]);
    assert_eq!(load(&ts), Error::EmptyDecoder { name: "sparse_weight" });
    let mut ts = tensors(&s, "U16");
    ts[3] = idx_tensor("sparse_index", "U16", &[12], &s.idx);
    assert!(matches!(load(&ts), Error::WrongRank { name: "sparse_index", .. }));
    // One half without the other, or beside dense weights.
    let ts = tensors(&s, "U16");
    assert_eq!(load(&[ts[0].clone_t(), ts[1].clone_t(), ts[2].clone_t(), ts[3].clone_t()]), Error::MissingTensor { name: "sparse_weight" });
    let mut ts = tensors(&s, "U16");
    ts.push(f16s("weight", &[3, 40], &[0.0; 120]));
    assert_eq!(load(&ts), Error::BothWeightKinds);
    // A non-finite weight names its element.
    let mut ts = tensors(&s, "U16");
    ts[4].data[2 * 5 + 1] = 0x7c;
    ts[4].data[2 * 5] = 0x00;
    assert_eq!(load(&ts), Error::NonFiniteParameter { name: "sparse_weight", index: 5 });
}

#[test]
fn every_flipped_bit_of_the_sparse_tensors_is_caught_by_the_checksum() {
    let s = sparse(20, 2, 3, 3);
    let ts = tensors(&s, "U16");
    let good = file(&ts, 2).bytes().to_vec();
    let start = good.len() - (2 * 3 * 2 + 2 * 3 * 2);
    for byte in start..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[byte] ^= 1 << bit;
            let e = Decoder::from_bytes(Buf::new(&b).bytes()).map(|_| ()).unwrap_err();
            assert!(matches!(e, Error::ChecksumMismatch { .. }), "byte {byte} bit {bit}: {e:?}");
        }
    }
}

trait CloneT {
    fn clone_t(&self) -> T;
}
impl CloneT for T {
    fn clone_t(&self) -> T {
        T { name: self.name.clone(), dtype: self.dtype, shape: self.shape.clone(), data: self.data.clone() }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any shape and any indices: loading never panics, and in-range decoders decode in the
    /// documented order.
    #[test]
    fn random_sparse_decoders_decode_or_are_refused(v in 1usize..300, l in 1usize..6, k in 1usize..40, seed in 0u64..1000, wide in any::<bool>(), bad in any::<bool>()) {
        let mut s = sparse(v, l, k, seed);
        if bad {
            s.idx[(seed as usize) % (l * k)] = v as u32 + (seed as u32 % 3);
        }
        let buf = file(&tensors(&s, if wide { "U32" } else { "U16" }), l);
        match Decoder::from_bytes(buf.bytes()) {
            Ok(dec) => {
                prop_assert!(!bad);
                let x = Rng(seed + 1).vec(v, 2.0);
                let mut out = vec![0f32; l];
                dec.decode(&x, &mut vec![0f32; v], &mut out).unwrap();
                prop_assert_eq!(bits(&out), bits(&canonical(&s, &x)));
            }
            Err(e) => prop_assert!(bad && matches!(e, Error::SparseIndexOutOfRange { .. }), "{e:?}"),
        }
    }
}
