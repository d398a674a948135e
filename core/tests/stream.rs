//! Streaming: chunks in any order give the one-shot latent bit for bit (property tests).

mod common;
use common::*;
use percept_core::{Decoder, Error};
use proptest::prelude::*;

fn one_shot(dec: &Decoder, x: &[f32]) -> Vec<f32> {
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut out = vec![0.0; dec.outputs()];
    dec.decode(x, &mut scratch, &mut out).unwrap();
    out
}

/// Cuts 0..v into chunks at the given points, in the given order.
fn chunks(v: usize, cuts: &[usize], order_seed: u64) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (v + 1)).collect();
    points.push(0);
    points.push(v);
    points.sort();
    points.dedup();
    let mut cs: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
    let mut r = Rng(order_seed);
    for i in (1..cs.len()).rev() {
        let j = (r.next_u64() % (i as u64 + 1)) as usize;
        cs.swap(i, j);
    }
    cs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn streaming_equals_one_shot(v in 1usize..1200, l in 1usize..24, rank in prop::option::of(1usize..6),
                                 cuts in prop::collection::vec(0usize..2000, 0..12), seed in any::<u64>()) {
        let rank = rank.map(|r| r.min(v).min(l)); // a larger rank is refused (Error::BadRank)
        let s = Spec { v, l, rank, seed };
        let p = params(&s);
        let buf = Buf::new(&blob(&s, &p));
        let dec = Decoder::from_bytes(buf.bytes()).unwrap();
        let x = Rng(seed ^ 1).vec(v, 3.0);
        let want = one_shot(&dec, &x);
        let mut scratch = vec![0.0; dec.scratch_len()];
        let mut seen = vec![0u32; dec.seen_len()];
        let mut out = vec![0.0; l];
        let mut acc = dec.stream(&mut scratch, &mut seen, &mut out).unwrap();
        for (a, b) in chunks(v, &cuts, seed) {
            acc.push(a, &x[a..b]).unwrap();
        }
        prop_assert_eq!(acc.received(), v);
        acc.finish().unwrap();
        let same = want.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
        prop_assert!(same, "streamed {:?} one-shot {:?}", out, want);
    }
}

#[test]
fn in_order_chunks_leave_only_the_last_block_for_the_end() {
    // With chunks in order, all whole blocks are folded as they complete: check via a
    // missing last chunk, which must still let the first blocks be done (no error until finish).
    let s = Spec { v: 1000, l: 4, rank: None, seed: 3 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let dec = Decoder::from_bytes(buf.bytes()).unwrap();
    let x = Rng(8).vec(1000, 1.0);
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut seen = vec![0u32; dec.seen_len()];
    let mut out = vec![0.0; 4];
    let mut acc = dec.stream(&mut scratch, &mut seen, &mut out).unwrap();
    acc.push(0, &x[..990]).unwrap();
    let e = acc.finish().unwrap_err();
    assert_eq!(e, Error::Incomplete { first_missing: 990 });
    assert!(e.to_string().contains("voxel 990"));
}

#[test]
fn bad_chunks_are_refused_and_leave_no_trace() {
    let s = Spec { v: 100, l: 3, rank: Some(2), seed: 3 };
    let p = params(&s);
    let buf = Buf::new(&blob(&s, &p));
    let dec = Decoder::from_bytes(buf.bytes()).unwrap();
    let x = Rng(8).vec(100, 1.0);
    let want = one_shot(&dec, &x);
    let mut scratch = vec![0.0; dec.scratch_len()];
    let mut seen = vec![0u32; dec.seen_len()];
    let mut out = vec![0.0; 3];
    let mut acc = dec.stream(&mut scratch, &mut seen, &mut out).unwrap();
    acc.push(50, &x[50..]).unwrap();
    assert_eq!(acc.push(95, &x[..10]), Err(Error::ChunkOutOfRange { start: 95, len: 10, voxels: 100 }));
    assert_eq!(acc.push(usize::MAX, &x[..2]), Err(Error::ChunkOutOfRange { start: usize::MAX, len: 2, voxels: 100 }));
    assert_eq!(acc.push(40, &x[40..60]), Err(Error::ChunkOverlap { index: 50 }));
    let mut bad = x[0..50].to_vec();
    bad[7] = f32::NAN;
    assert_eq!(acc.push(0, &bad), Err(Error::NonFiniteVoxel { index: 7 }));
    assert_eq!(acc.received(), 50);
    acc.push(0, &[]).unwrap();
    acc.push(0, &x[..50]).unwrap();
    acc.finish().unwrap();
    assert_eq!(out, want);

    let e = dec.stream(&mut scratch, &mut [0u32; 3], &mut out).unwrap_err();
    assert_eq!(e, Error::BufferLength { what: "seen", expected: 4, found: 3 });
}
