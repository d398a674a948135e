//! The portable loops (used where no SIMD path applies) give the same bits as the SIMD path.
//! A test binary of its own, because switching paths is process-wide.

mod common;
use common::*;
use percept_core::kernel;

#[test]
fn portable_and_simd_paths_agree_bit_for_bit() {
    let cases = [(1usize, 1usize), (17, 3), (256, 5), (1000, 9), (5000, 13)];
    let mut simd = Vec::new();
    let inputs: Vec<(Vec<u16>, Vec<f32>)> = cases
        .iter()
        .map(|&(n, rows)| {
            let mut r = Rng(n as u64 * 7 + rows as u64);
            // Every finite half appears: normals, subnormals, zeros of both signs.
            let w: Vec<u16> = (0..n * rows).map(|_| (r.next_u64() as u16) & !0x4000).collect();
            (w, r.vec(n, 4.0))
        })
        .collect();
    // One block of columns folded into all rows (streaming): begin at the second block.
    let blocks = |w: &[u16], x: &[f32], n: usize, rows: usize| {
        let mut sums = vec![0.5f32; rows];
        if n > 256 {
            let end = n.min(512);
            kernel::add_block(w, n, 256, &x[256..end], &mut sums);
        }
        sums
    };
    let mut simd_blocks = Vec::new();
    for ((w, x), &(n, rows)) in inputs.iter().zip(&cases) {
        let mut y = vec![0.0; rows];
        kernel::matvec(w, x, &mut y);
        simd.push(y);
        simd_blocks.push(blocks(w, x, n, rows));
    }
    kernel::force_portable();
    for (((w, x), &(n, rows)), want) in inputs.iter().zip(&cases).zip(&simd_blocks) {
        let got = blocks(w, x, n, rows);
        assert!(got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "add_block n={n}: {got:?} vs {want:?}");
    }
    for (((w, x), &(n, rows)), want) in inputs.iter().zip(&cases).zip(&simd) {
        let mut y = vec![0.0; rows];
        kernel::matvec(w, x, &mut y);
        let same = y.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "n={n} rows={rows}: portable {y:?} vs simd {want:?}");
        assert!(y.iter().all(|v| v.is_finite()));
    }
}
