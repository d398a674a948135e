//! Decoding: agreement with an f64 reference, with the documented summation order bit for bit,
//! low-rank decoders, fixed sizes and the NaN policy.

mod common;
use common::*;
use percept_core::{Decoder, Error, FixedDecoder, NonFinite, Scratch};

/// `y (L,) = W (L,V) . ((x - mean) / std) + b` in f64.
fn reference(s: &Spec, p: &Params, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let xn: Vec<f64> = (0..s.v).map(|i| ((x[i] - p.mean[i]) / p.std[i]) as f64).collect();
    let dense: Vec<f64> = match s.rank {
        None => p.w.iter().map(|&w| w as f64).collect(),
        Some(k) => {
            // W (L,V) = U (L,k) . Vt (k,V)
            let mut w = vec![0f64; s.l * s.v];
            for r in 0..s.l {
                for j in 0..k {
                    for i in 0..s.v {
                        w[r * s.v + i] += p.u[r * k + j] as f64 * p.vt[j * s.v + i] as f64;
                    }
                }
            }
            w
        }
    };
    let mut y = vec![0f64; s.l];
    let mut mag = vec![0f64; s.l];
    for r in 0..s.l {
        y[r] = p.bias[r] as f64;
        mag[r] = (p.bias[r] as f64).abs();
        for i in 0..s.v {
            y[r] += dense[r * s.v + i] * xn[i];
            mag[r] += (dense[r * s.v + i] * xn[i]).abs();
        }
    }
    (y, mag)
}

/// The summation order that kernel.rs documents, written as plain scalar loops.
fn canonical_row(w: &[f32], x: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (wb, xb) in w.chunks(256).zip(x.chunks(256)) {
        let mut lanes = [0.0f32; 16];
        for i in 0..wb.len() {
            lanes[i % 16] += wb[i] * xb[i];
        }
        for width in [8, 4, 2, 1] {
            for k in 0..width {
                lanes[k] += lanes[k + width];
            }
        }
        total += lanes[0];
    }
    total
}

fn decode(s: &Spec, x: &[f32]) -> Result<Vec<f32>, Error> {
    let p = params(s);
    let buf = Buf::new(&blob(s, &p));
    let dec = Decoder::from_bytes(buf.bytes())?;
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0; dec.outputs()];
    dec.decode(x, &mut scratch, &mut out)?;
    Ok(out)
}

#[test]
fn dense_matches_f64_reference_and_canonical_order() {
    for (v, l) in [(1, 1), (15, 3), (16, 2), (17, 5), (255, 4), (256, 4), (257, 7), (1000, 33), (5000, 8)] {
        let s = Spec { v, l, rank: None, seed: v as u64 * 31 + l as u64 };
        let p = params(&s);
        let x = Rng(99).vec(v, 3.0);
        let y = decode(&s, &x).unwrap();
        let (want, mag) = reference(&s, &p, &x);
        let xn: Vec<f32> = (0..v).map(|i| (x[i] - p.mean[i]) / p.std[i]).collect();
        for r in 0..l {
            let err = (y[r] as f64 - want[r]).abs();
            assert!(err <= 1e-6 * mag[r] + 1e-6, "V={v} L={l} row {r}: {} vs {} (err {err})", y[r], want[r]);
            let exact = canonical_row(&p.w[r * v..(r + 1) * v], &xn) + p.bias[r];
            assert_eq!(y[r].to_bits(), exact.to_bits(), "V={v} L={l} row {r}: not in the documented order");
        }
    }
}

#[test]
fn low_rank_matches_reference() {
    for (v, l, k) in [(10, 6, 1), (300, 50, 4), (1000, 77, 16)] {
        let s = Spec { v, l, rank: Some(k), seed: 5 + v as u64 };
        let p = params(&s);
        let x = Rng(7).vec(v, 3.0);
        let y = decode(&s, &x).unwrap();
        let (want, mag) = reference(&s, &p, &x);
        for r in 0..l {
            let err = (y[r] as f64 - want[r]).abs();
            assert!(err <= 1e-5 * mag[r] + 1e-5, "V={v} L={l} r={k} row {r}: {} vs {}", y[r], want[r]);
        }
    }
}

#[test]
fn f16_conversion_is_exact_for_every_finite_half() {
    for bits in 0..=u16::MAX {
        let h = half::f16::from_bits(bits);
        if !h.is_finite() {
            continue;
        }
        let got = percept_core::kernel::f16_to_f32(bits);
        assert_eq!(got.to_bits(), h.to_f32().to_bits(), "f16 bits {bits:#06x}");
    }
}

#[test]
fn non_finite_voxels_rejected_or_replaced_by_mean() {
    let s = Spec { v: 40, l: 3, rank: None, seed: 1 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let dec = Decoder::from_bytes(buf.bytes()).unwrap();
    let mut x = Rng(2).vec(40, 1.0);
    x[17] = f32::NAN;
    x[30] = f32::INFINITY;
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0; 3];
    let err = dec.decode(&x, &mut scratch, &mut out).unwrap_err();
    assert_eq!(err, Error::NonFiniteVoxel { index: 17 });
    assert!(err.to_string().contains("voxel 17"), "{err}");

    let lenient = dec.clone().with_non_finite(NonFinite::UseMean);
    let stats = lenient.decode(&x, &mut scratch, &mut out).unwrap();
    assert_eq!((stats.replaced, stats.first_replaced), (2, Some(17)));
    // Replacing by the mean is the same as giving the mean.
    let mut y = x.clone();
    y[17] = p.mean[17];
    y[30] = p.mean[30];
    let mut out2 = vec![0.0; 3];
    dec.decode(&y, &mut scratch, &mut out2).unwrap();
    assert_eq!(out, out2);
}

#[test]
fn buffer_lengths_are_checked() {
    let s = Spec { v: 40, l: 3, rank: Some(2), seed: 1 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let dec = Decoder::from_bytes(buf.bytes()).unwrap();
    assert_eq!(dec.scratch_len(), 42);
    let x = vec![0.0; 40];
    let mut out = vec![0.0; 3];
    let e = dec.decode(&x, &mut [0.0; 40], &mut out).unwrap_err();
    assert_eq!(e, Error::BufferLength { what: "scratch", expected: 42, found: 40 });
    let e = dec.decode(&x[..39], &mut [0.0; 42], &mut out).unwrap_err();
    assert_eq!(e, Error::BufferLength { what: "voxels", expected: 40, found: 39 });
    let e = dec.decode(&x, &mut [0.0; 42], &mut [0.0; 4]).unwrap_err();
    assert_eq!(e, Error::BufferLength { what: "output", expected: 3, found: 4 });
    let e = dec.decode_rows(&[0.0; 2], 2, &mut [0.0; 2]).unwrap_err();
    assert!(matches!(e, Error::BufferLength { what: "output", .. }));
}

#[test]
fn decode_rows_split_is_bit_identical() {
    for rank in [None, Some(3)] {
        let s = Spec { v: 700, l: 50, rank, seed: 11 };
        let p = params(&s);
        let buf = Buf::new(&blob(&s, &p));
        let dec = Decoder::from_bytes(buf.bytes()).unwrap();
        let x = Rng(3).vec(700, 2.0);
        let mut scratch = vec![0.0; dec.scratch_len()];
        let mut whole = vec![0.0; 50];
        dec.decode(&x, &mut scratch, &mut whole).unwrap();
        let mut xn = vec![0.0; 700];
        let mut hidden = vec![0.0; rank.unwrap_or(0)];
        dec.prepare(&x, &mut xn, &mut hidden).unwrap();
        let h = if rank.is_some() { &hidden } else { &xn };
        let mut parts = vec![0.0; 50];
        let (a, b) = parts.split_at_mut(17);
        dec.decode_rows(h, 0, a).unwrap();
        dec.decode_rows(h, 17, b).unwrap();
        assert_eq!(whole, parts);
    }
}

#[test]
fn fixed_sizes_checked_at_load() {
    let s = Spec { v: 64, l: 8, rank: None, seed: 4 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let fixed = FixedDecoder::<64, 8>::from_bytes(buf.bytes()).unwrap();
    let x: [f32; 64] = Rng(5).vec(64, 1.0).try_into().unwrap();
    let mut scratch = Scratch::<64>::new();
    let mut out = [0.0f32; 8];
    fixed.decode(&x, &mut scratch, &mut out).unwrap();
    assert_eq!(out.to_vec(), decode(&s, &x).unwrap());
    let e = FixedDecoder::<65, 8>::from_bytes(buf.bytes()).unwrap_err();
    assert_eq!(e, Error::SizeNotAsBuilt { what: "voxels", expected: 65, found: 64 });
    let e = FixedDecoder::<64, 8, 2>::from_bytes(buf.bytes()).unwrap_err();
    assert_eq!(e, Error::SizeNotAsBuilt { what: "rank", expected: 2, found: 0 });

    let s = Spec { v: 64, l: 8, rank: Some(2), seed: 4 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let fixed = FixedDecoder::<64, 8, 2>::from_bytes(buf.bytes()).unwrap();
    let mut scratch = Scratch::<64, 2>::new();
    fixed.decode(&x, &mut scratch, &mut out).unwrap();
    assert_eq!(out.to_vec(), decode(&s, &x).unwrap());
}

#[test]
fn metadata_is_exposed() {
    let s = Spec { v: 4, l: 2, rank: None, seed: 4 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let dec = Decoder::from_bytes(buf.bytes()).unwrap();
    assert_eq!(dec.region(), "early_visual");
    assert_eq!(dec.target(), percept_core::Target::Z);
    assert_eq!(dec.target_shape(), &[2]);
    assert_eq!(dec.rank(), None);
}
