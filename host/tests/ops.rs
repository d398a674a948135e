//! Every WGSL op against its plain-loop CPU reference on seeded random input, at several
//! shapes, including sizes that do not divide the workgroup size. f32: 1e-4; f16 weights are
//! compared with the same f16-rounded weights on the CPU.

use crate::common;
use common::*;
use percept::gpu::{Gpu, Tensor};
use percept::ops::reference::*;
use percept::ops::{linear, Variant};

fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect()
}

#[test]
fn linear_matches_reference() {
    let gpu = gpu();
    for (m, n, k, f16, with_bias) in [(1, 1, 4, false, false), (17, 9, 12, false, true), (33, 70, 64, true, true), (5, 3, 7, false, true), (40, 130, 36, true, false), (3, 5, 9, true, true)] {
        let x = rand(m * k, 1, 1.0);
        let w = rand(n * k, 2, 0.5);
        let b = rand(n, 3, 1.0);
        let wq = if f16 { round_f16(&w) } else { w.clone() };
        let want = linear_ref(&x, &wq, with_bias.then_some(&b[..]), m, n, k);
        let xt = Tensor::from_f32(gpu, &[m, k], &x).unwrap();
        let wt = if f16 { Tensor::from_f32_as_f16(gpu, &[n, k], &w) } else { Tensor::from_f32(gpu, &[n, k], &w) }.unwrap();
        let bt = Tensor::from_f32(gpu, &[n], &b).unwrap();
        let mut enc = gpu.encoder();
        let y = linear::linear(&mut enc, &xt, &wt, with_bias.then_some(&bt)).unwrap();
        drop(enc);
        assert_eq!(y.shape, vec![m, n]);
        assert_close(&format!("linear m={m} n={n} k={k} f16={f16}"), &y.to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
    }
}

#[test]
fn lavapipe_gets_the_subgroup_kernels() {
    // The variant tests below check the subgroup kernels only where the adapter qualifies; on
    // lavapipe (what CI runs) it must, or those kernels would go unchecked without a word.
    let gpu = gpu();
    if gpu.info.name.contains("llvmpipe") && std::env::var_os("PERCEPT_NO_SUBGROUPS").is_none() {
        assert!(gpu.subgroup8_int64, "{} has no 8-lane subgroups with 64-bit integers: the *_sg kernels would not run", gpu.describe());
    }
}

#[test]
fn linear_kernel_variants_match_reference() {
    // Every kernel on this adapter, whatever `linear` would pick: the workgroup-tiled one, the
    // register-blocked CPU one, and (where subgroups are 8 lanes) the subgroupBroadcast one.
    // Shapes straddle its 32 x 32 tiles; M = 1 leaves 7 lanes loading a clamped row.
    let gpu = gpu();
    let mut variants = vec![Variant::Tiled, Variant::Cpu];
    if gpu.subgroup8_int64 {
        variants.push(Variant::Subgroup);
    } else {
        eprintln!("no 8-lane subgroups on {}: the Subgroup kernel is not checked", gpu.describe());
    }
    if gpu.shader_f16 {
        variants.push(Variant::TiledF16);
    } else {
        eprintln!("no SHADER_F16 on {}: the TiledF16 kernel is not checked", gpu.describe());
    }
    // Odd N goes to the other kernels (the subgroup kernel stores pairs) and is refused by it.
    for (m, n, k, f16) in [(1, 5, 8, false), (1, 6, 8, false), (33, 31, 20, true), (33, 34, 20, true), (64, 64, 64, false), (70, 100, 36, true), (9, 129, 4, false), (9, 130, 4, false)] {
        let x = rand(m * k, 11, 1.0);
        let w = rand(n * k, 12, 0.5);
        let b = rand(n, 13, 1.0);
        let wq = if f16 { round_f16(&w) } else { w.clone() };
        let want = linear_ref(&x, &wq, Some(&b), m, n, k);
        let xt = Tensor::from_f32(gpu, &[m, k], &x).unwrap();
        let wt = if f16 { Tensor::from_f32_as_f16(gpu, &[n, k], &w) } else { Tensor::from_f32(gpu, &[n, k], &w) }.unwrap();
        let bt = Tensor::from_f32(gpu, &[n], &b).unwrap();
        for &v in &variants {
            let mut enc = gpu.encoder();
            let y = linear::linear_with(&mut enc, &xt, &wt, Some(&bt), v);
            drop(enc);
            if v == Variant::Subgroup && n % 2 == 1 {
                let e = y.expect_err("odd N refused").to_string();
                assert!(e.contains("N must be even"), "{e}");
                continue;
            }
            if v == Variant::TiledF16 && !f16 {
                let e = y.expect_err("f32 weights refused").to_string();
                assert!(e.contains("f16 weights"), "{e}");
                continue;
            }
            assert_close(&format!("{v:?} linear m={m} n={n} k={k} f16={f16}"), &y.unwrap().to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
        }
    }
}

#[test]
fn linear_splits_weights_larger_than_a_binding() {
    // A device of its own, with bindings capped at 4 KiB: a 100 x 64 f32 weight (25 KiB) and
    // its f16 form must be split into ranges of rows.
    let gpu = Gpu::new().unwrap();
    gpu.cap_binding(4096);
    let (m, n, k) = (19, 100, 64);
    let x = rand(m * k, 4, 1.0);
    let w = rand(n * k, 5, 0.5);
    let b = rand(n, 6, 1.0);
    for f16 in [false, true] {
        let wq = if f16 { round_f16(&w) } else { w.clone() };
        let want = linear_ref(&x, &wq, Some(&b), m, n, k);
        let xt = Tensor::from_f32(&gpu, &[m, k], &x).unwrap();
        let wt = if f16 { Tensor::from_f32_as_f16(&gpu, &[n, k], &w) } else { Tensor::from_f32(&gpu, &[n, k], &w) }.unwrap();
        let bt = Tensor::from_f32(&gpu, &[n], &b).unwrap();
        let mut enc = gpu.encoder();
        let y = linear::linear(&mut enc, &xt, &wt, Some(&bt)).unwrap();
        drop(enc);
        assert_close(&format!("split linear f16={f16}"), &y.to_vec(&gpu).unwrap(), &want, 1e-4, 1e-4);
    }
}

#[test]
fn activations_larger_than_a_binding_run_in_row_bands() {
    // A device of its own with bindings capped at 16 KiB: (2, 20, 32, 16) activations (40 KiB
    // per sample, 2 KiB rows) go through conv2d, upsample2x and group_norm in bands of rows,
    // as SD's VAE decoder at 512x512 does on lavapipe (256 MiB tensors, 128 MiB bindings).
    use percept::gpu::DType;
    use percept::ops::conv2d::{conv2d, conv2d_add, ConvSpec, ConvWeight};
    use percept::ops::Act;
    use percept::ops::norm::group_norm;
    use percept::ops::resample::upsample2x;
    let gpu = Gpu::new().unwrap();
    gpu.cap_binding(16384);
    let (b, h, w, c) = (2, 20, 32, 16);
    let x = rand(b * h * w * c, 70, 1.0);
    let xt = Tensor::from_f32(&gpu, &[b, h, w, c], &x).unwrap();
    for (i, (cout, k, spec)) in [
        (16, 3, ConvSpec::same(1, Act::Silu)),
        (16, 3, ConvSpec { stride: 2, pad_y: (0, 1), pad_x: (0, 1), act: Act::None }),
        (16, 3, ConvSpec { stride: 2, pad_y: (1, 1), pad_x: (1, 1), act: Act::None }),
        (32, 1, ConvSpec::same(0, Act::None)),
    ]
    .into_iter()
    .enumerate()
    {
        let wt = rand(cout * c * k * k, 71 + i as u64, 0.3);
        let bias = rand(cout, 75, 0.5);
        let (want, shape) = conv2d_ref(&x, [b, h, w, c], &wt, [cout, c, k, k], Some(&bias), spec);
        let cw = ConvWeight::from_torch(&gpu, &wt, [cout, c, k, k], Some(&bias), DType::F32).unwrap();
        let mut enc = gpu.encoder();
        let y = conv2d(&mut enc, &xt, &cw, spec).unwrap();
        drop(enc);
        assert_eq!(y.shape, shape.to_vec());
        assert_close(&format!("banded conv2d case {i}"), &y.to_vec(&gpu).unwrap(), &want, 1e-4, 1e-4);
        // With a residual: its bands are cut like the output's.
        let res = rand(want.len(), 78 + i as u64, 1.0);
        let (conv, _) = conv2d_ref(&x, [b, h, w, c], &wt, [cout, c, k, k], Some(&bias), ConvSpec { act: Act::None, ..spec });
        let rt = Tensor::from_f32(&gpu, &shape, &res).unwrap();
        let mut enc = gpu.encoder();
        let y = conv2d_add(&mut enc, &xt, &cw, spec, &rt).unwrap();
        drop(enc);
        assert_close(&format!("banded conv2d_add case {i}"), &y.to_vec(&gpu).unwrap(), &binary_ref(&conv, &res, false, spec.act), 1e-4, 1e-4);
    }
    let mut enc = gpu.encoder();
    let up = upsample2x(&mut enc, &xt).unwrap();
    drop(enc);
    assert_close("banded upsample2x", &up.to_vec(&gpu).unwrap(), &upsample2x_ref(&x, [b, h, w, c]), 0.0, 0.0);
    let shifted: Vec<f32> = x.iter().map(|v| v + 20.0).collect();
    let st = Tensor::from_f32(&gpu, &[b, h, w, c], &shifted).unwrap();
    let gamma = rand(c, 76, 1.0);
    let beta = rand(c, 77, 1.0);
    let (gt, bt) = (Tensor::from_f32(&gpu, &[c], &gamma).unwrap(), Tensor::from_f32(&gpu, &[c], &beta).unwrap());
    let mut enc = gpu.encoder();
    let y = group_norm(&mut enc, &st, 4, &gt, &bt, 1e-6, true).unwrap();
    drop(enc);
    assert_close("banded group_norm", &y.to_vec(&gpu).unwrap(), &group_norm_ref(&shifted, b, h * w, c, 4, &gamma, &beta, 1e-6, true), 1e-4, 1e-4);
    // Rows that cannot start at an allowed offset are refused with a message, not mis-bound.
    let odd = Tensor::from_f32(&gpu, &[1, 40, 9, 7], &vec![0.0; 40 * 63]).unwrap();
    let err = upsample2x(&mut gpu.encoder(), &odd).unwrap_err().to_string();
    assert!(err.contains("upsample2x") && err.contains("alignment"), "{err}");
}

#[test]
fn batched_matmul_matches_reference() {
    let gpu = gpu();
    for (batch, m, n, k, tb) in [(3, 17, 9, 12, false), (3, 17, 9, 12, true), (2, 40, 33, 8, true), (1, 1, 1, 1, false)] {
        let a = rand(batch * m * k, 7, 1.0);
        let b = rand(batch * n * k, 8, 1.0);
        let want = matmul_ref(&a, &b, batch, m, n, k, tb);
        let at = Tensor::from_f32(gpu, &[batch, m, k], &a).unwrap();
        let bshape = if tb { [batch, n, k] } else { [batch, k, n] };
        let bt = Tensor::from_f32(gpu, &bshape, &b).unwrap();
        let mut enc = gpu.encoder();
        let y = linear::matmul(&mut enc, &at, &bt, tb).unwrap();
        drop(enc);
        assert_close(&format!("matmul b={batch} m={m} n={n} k={k} tb={tb}"), &y.to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
    }
}

#[test]
fn shape_errors_name_the_op() {
    let gpu = gpu();
    let x = Tensor::from_f32(gpu, &[2, 3], &[0.0; 6]).unwrap();
    let w = Tensor::from_f32(gpu, &[4, 5], &[0.0; 20]).unwrap();
    let e = linear::linear(&mut gpu.encoder(), &x, &w, None).unwrap_err().to_string();
    assert!(e.contains("linear") && e.contains("3 features"), "{e}");
    let e = Tensor::from_f32(gpu, &[2, 2], &[0.0; 3]).unwrap_err().to_string();
    assert!(e.contains("[2, 2]") && e.contains("3 given"), "{e}");
}

#[test]
fn conv2d_matches_reference() {
    use percept::ops::conv2d::{conv2d, conv2d_add, conv2d_add_with, conv2d_with, ConvSpec, ConvWeight};
    use percept::ops::Act;
    use percept::gpu::DType;
    let gpu = gpu();
    let cases = [
        // (B, H, W, Cin, Cout, k, spec, f16)
        (1, 9, 7, 8, 12, 3, ConvSpec::same(1, Act::None), false),
        (2, 8, 10, 4, 9, 3, ConvSpec::same(1, Act::Relu), true),
        (1, 11, 6, 3, 5, 3, ConvSpec::same(1, Act::Silu), false),
        (1, 9, 8, 8, 8, 3, ConvSpec { stride: 2, pad_y: (1, 1), pad_x: (1, 1), act: Act::None }, false),
        (1, 8, 10, 4, 6, 3, ConvSpec { stride: 2, pad_y: (0, 1), pad_x: (0, 1), act: Act::None }, true),
        (1, 5, 7, 12, 20, 1, ConvSpec::same(0, Act::None), false),
        (1, 6, 6, 5, 7, 1, ConvSpec::same(0, Act::Relu), true),
        // The U-Net's lowest level at a 64x128 image: 1x2 pixels.
        (2, 1, 2, 32, 32, 3, ConvSpec::same(1, Act::None), true),
        (2, 2, 1, 16, 8, 3, ConvSpec::same(1, Act::None), false),
        // More than one 32 x 32 tile of the Subgroup kernel, ragged in pixels and channels.
        (1, 12, 11, 16, 40, 3, ConvSpec::same(1, Act::Silu), true),
        (2, 7, 9, 8, 33, 3, ConvSpec { stride: 2, pad_y: (0, 1), pad_x: (0, 1), act: Act::Relu }, false),
        // EfficientNet-Lite's ReLU6 stem (TF-SAME, stride 2) and AlexNet's 11x11 stride 4.
        (2, 10, 9, 3, 8, 3, ConvSpec { stride: 2, pad_y: (0, 1), pad_x: (0, 1), act: Act::Relu6 }, false),
        (1, 19, 17, 3, 8, 11, ConvSpec { stride: 4, pad_y: (2, 2), pad_x: (2, 2), act: Act::Relu }, false),
    ];
    // Every kernel this adapter can run (whatever conv2d would pick), on every case it takes.
    let mut variants = vec![Variant::Tiled, Variant::Cpu];
    if gpu.subgroup8_int64 {
        variants.push(Variant::Subgroup);
    }
    if gpu.shader_f16 {
        variants.push(Variant::TiledF16);
    }
    for (i, &(b, h, w, cin, cout, k, spec, f16)) in cases.iter().enumerate() {
        let x = rand(b * h * w * cin, 10 + i as u64, 1.0);
        let wt = rand(cout * cin * k * k, 20 + i as u64, 0.3);
        let bias = rand(cout, 30 + i as u64, 0.5);
        let use_bias = i % 3 != 2;
        let wq = if f16 { round_f16(&wt) } else { wt.clone() };
        let (want, shape) = conv2d_ref(&x, [b, h, w, cin], &wq, [cout, cin, k, k], use_bias.then_some(&bias[..]), spec);
        let dtype = if f16 { DType::F16 } else { DType::F32 };
        let cw = ConvWeight::from_torch(gpu, &wt, [cout, cin, k, k], use_bias.then_some(&bias[..]), dtype).unwrap();
        let xt = Tensor::from_f32(gpu, &[b, h, w, cin], &x).unwrap();
        let mut enc = gpu.encoder();
        let y = conv2d(&mut enc, &xt, &cw, spec).unwrap();
        drop(enc);
        assert_eq!(y.shape, shape.to_vec(), "case {i}");
        assert_close(&format!("conv2d case {i} {:?}", (b, h, w, cin, cout, k, spec.stride, f16)), &y.to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
        // TiledF16 takes f16 weights only (refusal tested with linear).
        for &v in variants.iter().filter(|&&v| v == Variant::Tiled || (v == Variant::TiledF16 && f16) || (v != Variant::TiledF16 && cin % 4 == 0)) {
            let mut enc = gpu.encoder();
            let y = conv2d_with(&mut enc, &xt, &cw, spec, v).unwrap();
            drop(enc);
            assert_close(&format!("{v:?} conv2d case {i} {:?}", (b, h, w, cin, cout, k, spec.stride, f16)), &y.to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
        }
        // A residual added before the activation, on every kernel: act(conv + bias + res).
        let res = rand(want.len(), 40 + i as u64, 1.0);
        let (conv, _) = conv2d_ref(&x, [b, h, w, cin], &wq, [cout, cin, k, k], use_bias.then_some(&bias[..]), ConvSpec { act: Act::None, ..spec });
        let want_res = binary_ref(&conv, &res, false, spec.act);
        let rt = Tensor::from_f32(gpu, &shape, &res).unwrap();
        let mut enc = gpu.encoder();
        let y = conv2d_add(&mut enc, &xt, &cw, spec, &rt).unwrap();
        drop(enc);
        let fused = y.to_vec(gpu).unwrap();
        assert_close(&format!("conv2d_add case {i}"), &fused, &want_res, 1e-4, 1e-4);
        // The same bits as the conv, then the add (ResNet blocks rely on it: fixtures unchanged).
        let mut enc = gpu.encoder();
        let h = conv2d(&mut enc, &xt, &cw, ConvSpec { act: Act::None, ..spec }).unwrap();
        let two_pass = percept::ops::elementwise::binary(&mut enc, &h, &rt, false, spec.act).unwrap();
        drop(enc);
        assert!(fused.iter().zip(two_pass.to_vec(gpu).unwrap()).all(|(a, b)| a.to_bits() == b.to_bits()), "conv2d_add case {i}: not the bits of conv2d then add");
        for &v in variants.iter().filter(|&&v| v == Variant::Tiled || (v == Variant::TiledF16 && f16) || (v != Variant::TiledF16 && cin % 4 == 0)) {
            let mut enc = gpu.encoder();
            let y = conv2d_add_with(&mut enc, &xt, &cw, spec, Some(&rt), v).unwrap();
            drop(enc);
            assert_close(&format!("{v:?} conv2d_add case {i}"), &y.to_vec(gpu).unwrap(), &want_res, 1e-4, 1e-4);
        }
    }
    // A residual of another shape is refused, naming both shapes.
    let cw = ConvWeight::from_torch(gpu, &[0.0; 4 * 4 * 9], [4, 4, 3, 3], None, DType::F32).unwrap();
    let xt = Tensor::from_f32(gpu, &[1, 5, 5, 4], &[0.0; 100]).unwrap();
    let bad = Tensor::from_f32(gpu, &[1, 5, 4, 4], &[0.0; 80]).unwrap();
    let e = conv2d_add(&mut gpu.encoder(), &xt, &cw, ConvSpec::same(1, Act::None), &bad).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("[1, 5, 4, 4]") && e.contains("[1, 5, 5, 4]"), "{e}");
    // So is one in f16, naming its dtype.
    let half = Tensor::from_f32_as_f16(gpu, &[1, 5, 5, 4], &[0.0; 100]).unwrap();
    let e = conv2d_add(&mut gpu.encoder(), &xt, &cw, ConvSpec::same(1, Act::None), &half).unwrap_err().to_string();
    assert!(e.contains("residual") && e.contains("F16") && e.contains("f32"), "{e}");
}

#[test]
fn elementwise_matches_reference() {
    use percept::ops::Act;
    use percept::ops::elementwise::*;
    let gpu = gpu();
    assert!((gelu_ref(1.0) - 0.841_344_7).abs() < 1e-6 && (gelu_ref(-3.0) + 0.004_049_6).abs() < 1e-6, "erf reference");
    for n in [1usize, 7, 64, 257, 1000] {
        let x = rand(n, 40 + n as u64, 4.0);
        let xt = Tensor::from_f32(gpu, &[n], &x).unwrap();
        for f in [Unary::Scale(0.18215), Unary::Relu, Unary::Silu, Unary::Gelu, Unary::TanhClamp(3.0), Unary::QuickGelu, Unary::Relu6] {
            let mut enc = gpu.encoder();
            let y = unary(&mut enc, &xt, f).unwrap();
            drop(enc);
            assert_close(&format!("{f:?} n={n}"), &y.to_vec(gpu).unwrap(), &unary_ref(&x, f), 1e-5, 1e-4);
        }
        let b = rand(n, 50 + n as u64, 1.0);
        let bt = Tensor::from_f32(gpu, &[n], &b).unwrap();
        for (mul, act) in [(false, Act::None), (true, Act::None), (false, Act::Relu), (true, Act::Silu), (false, Act::Relu6)] {
            let mut enc = gpu.encoder();
            let y = binary(&mut enc, &xt, &bt, mul, act).unwrap();
            drop(enc);
            assert_close(&format!("binary mul={mul} {act:?} n={n}"), &y.to_vec(gpu).unwrap(), &binary_ref(&x, &b, mul, act), 1e-5, 1e-5);
        }
    }
    // Broadcast a (3, 5) bias over (4, 3, 5); refuse (4,) onto (4, 3, 5).
    let a = rand(60, 60, 1.0);
    let b = rand(15, 61, 1.0);
    let (at, bt) = (Tensor::from_f32(gpu, &[4, 3, 5], &a).unwrap(), Tensor::from_f32(gpu, &[3, 5], &b).unwrap());
    let mut enc = gpu.encoder();
    let y = add(&mut enc, &at, &bt).unwrap();
    drop(enc);
    assert_close("broadcast add", &y.to_vec(gpu).unwrap(), &binary_ref(&a, &b, false, Act::None), 1e-6, 0.0);
    let bad = Tensor::from_f32(gpu, &[4], &[0.0; 4]).unwrap();
    let e = add(&mut gpu.encoder(), &at, &bad).unwrap_err().to_string();
    assert!(e.contains("cannot broadcast [4] onto [4, 3, 5]"), "{e}");
    // GEGLU on (5, 2 * 6) and (3, 2 * 7).
    for (r, f) in [(5, 6), (3, 7)] {
        let x = rand(r * 2 * f, 70 + f as u64, 3.0);
        let xt = Tensor::from_f32(gpu, &[r, 2 * f], &x).unwrap();
        let mut enc = gpu.encoder();
        let y = geglu(&mut enc, &xt).unwrap();
        drop(enc);
        assert_eq!(y.shape, vec![r, f]);
        assert_close("geglu", &y.to_vec(gpu).unwrap(), &geglu_ref(&x, f), 1e-5, 1e-4);
    }
}

#[test]
fn upsample_and_concat_match_reference() {
    use percept::ops::resample::*;
    let gpu = gpu();
    for shape in [[1usize, 3, 5, 4], [2, 4, 4, 3], [1, 1, 1, 1]] {
        let x = rand(shape.iter().product(), 80, 1.0);
        let xt = Tensor::from_f32(gpu, &shape, &x).unwrap();
        let mut enc = gpu.encoder();
        let y = upsample2x(&mut enc, &xt).unwrap();
        drop(enc);
        assert_eq!(y.shape, vec![shape[0], 2 * shape[1], 2 * shape[2], shape[3]]);
        assert_close(&format!("upsample {shape:?}"), &y.to_vec(gpu).unwrap(), &upsample2x_ref(&x, shape), 0.0, 0.0);
    }
    let (p, ca, cb) = (13, 5, 3);
    let a = rand(p * ca, 81, 1.0);
    let b = rand(p * cb, 82, 1.0);
    let mut enc = gpu.encoder();
    let y = concat(&mut enc, &Tensor::from_f32(gpu, &[p, ca], &a).unwrap(), &Tensor::from_f32(gpu, &[p, cb], &b).unwrap()).unwrap();
    drop(enc);
    assert_eq!(y.shape, vec![p, ca + cb]);
    assert_close("concat", &y.to_vec(gpu).unwrap(), &concat_ref(&a, ca, &b, cb), 0.0, 0.0);
}

#[test]
fn norms_match_reference() {
    use percept::ops::norm::*;
    let gpu = gpu();
    // Channels per group: 1 to 8, 5 and 40 (not dividing the 64 lanes), 80 (more than them).
    for (b, p, c, g, eps, silu) in [(1, 17, 8, 2, 1e-5, false), (2, 64, 32, 32, 1e-6, true), (1, 3, 12, 3, 1e-5, true), (2, 100, 20, 4, 1e-6, false), (2, 2, 32, 4, 1e-5, true), (2, 1, 16, 4, 1e-5, false), (1, 5, 160, 2, 1e-5, true), (2, 3, 40, 1, 1e-6, false)] {
        // An offset mean: the two-pass variance must stay accurate.
        let x: Vec<f32> = rand(b * p * c, 90, 1.0).into_iter().map(|v| v + 30.0).collect();
        let gamma = rand(c, 91, 1.0).into_iter().map(|v| v + 1.5).collect::<Vec<_>>();
        let beta = rand(c, 92, 1.0);
        let want = group_norm_ref(&x, b, p, c, g, &gamma, &beta, eps, silu);
        let (xt, gt, bt) = (Tensor::from_f32(gpu, &[b, p, c], &x).unwrap(), Tensor::from_f32(gpu, &[c], &gamma).unwrap(), Tensor::from_f32(gpu, &[c], &beta).unwrap());
        let mut enc = gpu.encoder();
        let y = group_norm(&mut enc, &xt, g, &gt, &bt, eps, silu).unwrap();
        drop(enc);
        assert_close(&format!("group_norm {:?}", (b, p, c, g, silu)), &y.to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
    }
    for (r, c) in [(1, 8), (7, 77), (3, 768)] {
        let x = rand(r * c, 93, 2.0);
        let gamma = rand(c, 94, 1.0);
        let beta = rand(c, 95, 1.0);
        let want = layer_norm_ref(&x, c, &gamma, &beta, 1e-5);
        let (xt, gt, bt) = (Tensor::from_f32(gpu, &[r, c], &x).unwrap(), Tensor::from_f32(gpu, &[c], &gamma).unwrap(), Tensor::from_f32(gpu, &[c], &beta).unwrap());
        let mut enc = gpu.encoder();
        let y = layer_norm(&mut enc, &xt, &gt, &bt, 1e-5).unwrap();
        drop(enc);
        assert_close(&format!("layer_norm {r}x{c}"), &y.to_vec(gpu).unwrap(), &want, 1e-4, 1e-4);
    }
    let xt = Tensor::from_f32(gpu, &[1, 4, 6], &[0.0; 24]).unwrap();
    let gt = Tensor::from_f32(gpu, &[6], &[1.0; 6]).unwrap();
    let e = group_norm(&mut gpu.encoder(), &xt, 4, &gt, &gt, 1e-5, false).unwrap_err().to_string();
    assert!(e.contains("6 channels do not split into 4 groups"), "{e}");
}

#[test]
fn softmax_matches_reference() {
    use percept::ops::softmax::*;
    let gpu = gpu();
    for (r, n, scale) in [(1, 1, 1.0), (5, 77, 0.125), (3, 300, 2.0)] {
        let x = rand(r * n, 96, 10.0);
        let xt = Tensor::from_f32(gpu, &[r, n], &x).unwrap();
        let mut enc = gpu.encoder();
        let y = softmax(&mut enc, &xt, scale).unwrap();
        drop(enc);
        assert_close(&format!("softmax {r}x{n}"), &y.to_vec(gpu).unwrap(), &softmax_ref(&x, n, scale), 1e-6, 1e-4);
    }
}

#[test]
fn attention_matches_reference() {
    use percept::ops::attention::*;
    let gpu = gpu();
    // (B, Lq, Lk, heads, D, causal): self, cross (context of another length), one big head.
    let mut variants = vec![Variant::Tiled, Variant::Cpu];
    if gpu.subgroup8_int64 {
        variants.push(Variant::Subgroup);
    }
    // Also: causal with queries and keys not multiples of 8 (the Subgroup kernel's blocks),
    // and a head of 160 (SD's lowest level) whose loops are longer than compilers unroll.
    for (b, lq, lk, h, d, causal) in [(1, 5, 5, 1, 4, false), (2, 70, 13, 8, 5, false), (1, 9, 9, 2, 8, true), (1, 33, 33, 1, 512, false), (2, 16, 77, 8, 40, false), (1, 21, 21, 3, 12, true), (1, 19, 10, 2, 160, false)] {
        let q = rand(b * lq * h * d, 97, 1.0);
        let k = rand(b * lk * h * d, 98, 1.0);
        let v = rand(b * lk * h * d, 99, 1.0);
        let want = attention_ref(&q, &k, &v, b, lq, lk, h, d, causal);
        let qt = Tensor::from_f32(gpu, &[b, lq, h * d], &q).unwrap();
        let kt = Tensor::from_f32(gpu, &[b, lk, h * d], &k).unwrap();
        let vt = Tensor::from_f32(gpu, &[b, lk, h * d], &v).unwrap();
        let mut enc = gpu.encoder();
        let y = attention(&mut enc, &qt, &kt, &vt, h, causal).unwrap();
        drop(enc);
        assert_close(&format!("attention {:?}", (b, lq, lk, h, d, causal)), &y.to_vec(gpu).unwrap(), &want, 1e-5, 1e-4);
        for &v in variants.iter().filter(|&&v| v == Variant::Tiled || d % 4 == 0) {
            let mut enc = gpu.encoder();
            let y = attention_with(&mut enc, &qt, &kt, &vt, h, causal, v).unwrap();
            drop(enc);
            assert_close(&format!("{v:?} attention {:?}", (b, lq, lk, h, d, causal)), &y.to_vec(gpu).unwrap(), &want, 1e-5, 1e-4);
        }
    }
}

#[test]
fn timestep_embedding_matches_reference() {
    use percept::ops::timestep::*;
    let gpu = gpu();
    let t = vec![0.0, 1.0, 781.0, 999.0];
    for (dim, flip) in [(320, true), (8, false), (7, true)] {
        let tt = Tensor::from_f32(gpu, &[4], &t).unwrap();
        let mut enc = gpu.encoder();
        let y = timestep_embedding(&mut enc, &tt, dim, flip, 0.0).unwrap();
        drop(enc);
        // sin/cos of arguments up to 999 rad in f32: absolute error ~1e-4.
        assert_close(&format!("timestep dim={dim}"), &y.to_vec(gpu).unwrap(), &timestep_embedding_ref(&t, dim, flip, 0.0), 5e-4, 0.0);
    }
}

#[test]
fn gpu_variants_match_reference_too() {
    // The kernels meant for discrete GPUs (workgroup tiling), run here on whatever adapter
    // there is, so that both variants are checked on every machine.
    use percept::gpu::{AdapterKind, DType};
    use percept::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
    use percept::ops::Act;
    let mut gpu = Gpu::new().unwrap();
    gpu.kind = AdapterKind::Gpu;
    let (m, n, k) = (37, 45, 52);
    let x = rand(m * k, 100, 1.0);
    let w = rand(n * k, 101, 0.5);
    let b = rand(n, 102, 1.0);
    let want = linear_ref(&x, &round_f16(&w), Some(&b), m, n, k);
    let mut enc = gpu.encoder();
    let y = linear::linear(&mut enc, &Tensor::from_f32(&gpu, &[m, k], &x).unwrap(), &Tensor::from_f32_as_f16(&gpu, &[n, k], &w).unwrap(), Some(&Tensor::from_f32(&gpu, &[n], &b).unwrap())).unwrap();
    drop(enc);
    assert_close("tiled linear", &y.to_vec(&gpu).unwrap(), &want, 1e-4, 1e-4);

    // Attention: the scalar kernel (the vec4 one is what CPU adapters get for D % 4 == 0).
    {
        use percept::ops::attention::attention;
        let (b, lq, lk, h, d) = (2, 16, 77, 8, 40);
        let (q, k, v) = (rand(b * lq * h * d, 105, 1.0), rand(b * lk * h * d, 106, 1.0), rand(b * lk * h * d, 107, 1.0));
        let t = |x: &[f32], l: usize| Tensor::from_f32(&gpu, &[b, l, h * d], x).unwrap();
        let mut enc = gpu.encoder();
        let y = attention(&mut enc, &t(&q, lq), &t(&k, lk), &t(&v, lk), h, false).unwrap();
        drop(enc);
        assert_close("scalar attention", &y.to_vec(&gpu).unwrap(), &attention_ref(&q, &k, &v, b, lq, lk, h, d, false), 1e-5, 1e-4);
    }

    // Cin 3 (an RGB input): on a GPU the weight is stored unpadded and the tiled kernel runs.
    let (bb, h, wd, cin, cout) = (1, 10, 9, 3, 19);
    let xs = rand(bb * h * wd * cin, 103, 1.0);
    let ws = rand(cout * cin * 9, 104, 0.3);
    let spec = ConvSpec { stride: 2, pad_y: (0, 1), pad_x: (0, 1), act: Act::Silu };
    let (want, _) = conv2d_ref(&xs, [bb, h, wd, cin], &ws, [cout, cin, 3, 3], Some(&b[..cout]), spec);
    let cw = ConvWeight::from_torch(&gpu, &ws, [cout, cin, 3, 3], Some(&b[..cout]), DType::F32).unwrap();
    let mut enc = gpu.encoder();
    let y = conv2d(&mut enc, &Tensor::from_f32(&gpu, &[bb, h, wd, cin], &xs).unwrap(), &cw, spec).unwrap();
    drop(enc);
    assert_close("tiled conv2d", &y.to_vec(&gpu).unwrap(), &want, 1e-4, 1e-4);

    // f16 weights: where the adapter has SHADER_F16, conv2d and linear pick the kernels that
    // read them as WGSL f16 (the linear above did too).
    let w16 = Tensor::from_f32_as_f16(&gpu, &[n, k], &w).unwrap();
    assert_eq!(linear::variant(&gpu, &w16, true), if gpu.shader_f16 { Variant::TiledF16 } else { Variant::Tiled });
    let (want, _) = conv2d_ref(&xs, [bb, h, wd, cin], &round_f16(&ws), [cout, cin, 3, 3], Some(&b[..cout]), spec);
    let cw = ConvWeight::from_torch(&gpu, &ws, [cout, cin, 3, 3], Some(&b[..cout]), DType::F16).unwrap();
    let mut enc = gpu.encoder();
    let y = conv2d(&mut enc, &Tensor::from_f32(&gpu, &[bb, h, wd, cin], &xs).unwrap(), &cw, spec).unwrap();
    drop(enc);
    assert_close("tiled conv2d, f16 weights", &y.to_vec(&gpu).unwrap(), &want, 1e-4, 1e-4);
}

#[test]
fn large_grids_cover_every_element() {
    // More workgroups than one dispatch dimension allows (65,535): the grid folds over y/z.
    use percept::gpu::DType;
    use percept::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
    use percept::ops::Act;
    use percept::ops::elementwise::{unary, Unary};
    let gpu = gpu();
    let n = 65_536 * 4 * 64 + 5;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let mut enc = gpu.encoder();
    let y = unary(&mut enc, &Tensor::from_f32(gpu, &[n], &x).unwrap(), Unary::Scale(2.0)).unwrap();
    drop(enc);
    let y = y.to_vec(gpu).unwrap();
    if let Some(i) = (0..n).find(|&i| y[i] != 2.0 * x[i]) {
        panic!("element {i} of {n}: {} != {}", y[i], 2.0 * x[i]);
    }
    let (h, w, c) = (1024, 600, 4);
    let xs = rand(h * w * c, 110, 1.0);
    let ws = rand(c * c, 111, 1.0);
    let spec = ConvSpec::same(0, Act::None);
    let (want, _) = conv2d_ref(&xs, [1, h, w, c], &ws, [c, c, 1, 1], None, spec);
    let cw = ConvWeight::from_torch(gpu, &ws, [c, c, 1, 1], None, DType::F32).unwrap();
    let mut enc = gpu.encoder();
    let y = conv2d(&mut enc, &Tensor::from_f32(gpu, &[1, h, w, c], &xs).unwrap(), &cw, spec).unwrap();
    drop(enc);
    assert_close("conv over a folded grid", &y.to_vec(gpu).unwrap(), &want, 1e-5, 1e-5);
}

#[test]
fn depthwise_matches_reference() {
    use percept::ops::depthwise::{depthwise, depthwise_with, same_pad, DepthwiseSpec, DepthwiseWeight};
    use percept::ops::Act;
    let gpu = gpu();
    // TF "SAME" at 224: stride-2 3x3 pads (0, 1), stride-2 5x5 (1, 2), stride 1 (k-1)/2 each side.
    assert_eq!(same_pad(224, 3, 2), (0, 1));
    assert_eq!(same_pad(224, 5, 2), (1, 2));
    assert_eq!(same_pad(56, 5, 1), (2, 2));
    assert_eq!(same_pad(7, 3, 2), (1, 1));
    for (i, &(b, h, w, c, k, stride, act, bias)) in [
        (1, 7, 9, 5, 3, 1, Act::None, true),
        (2, 8, 8, 16, 3, 2, Act::Relu6, true),
        (1, 9, 12, 7, 5, 1, Act::Relu6, false),
        (2, 10, 7, 12, 5, 2, Act::Relu, true),
        (1, 1, 2, 4, 5, 1, Act::None, true),
        // Odd output widths (the vec4 kernel writes pixel pairs).
        (1, 5, 7, 8, 3, 1, Act::Relu6, true),
        (2, 9, 9, 4, 5, 2, Act::None, true),
        (1, 3, 1, 4, 3, 1, Act::Relu, false),
    ]
    .iter()
    .enumerate()
    {
        let (t, bo) = same_pad(h, k, stride);
        let (l, r) = same_pad(w, k, stride);
        let spec = DepthwiseSpec { stride, pad: (t, l, bo, r), act };
        let x = rand(b * h * w * c, 300 + i as u64, 2.0);
        let wt = rand(c * k * k, 310 + i as u64, 1.0);
        let bs = rand(c, 320 + i as u64, 1.0);
        let (want, shape) = depthwise_ref(&x, [b, h, w, c], &wt, (k, k), bias.then_some(&bs[..]), spec);
        assert_eq!(shape, [b, h.div_ceil(stride), w.div_ceil(stride), c]);
        let dw = DepthwiseWeight::from_torch(gpu, &wt, [c, 1, k, k], bias.then_some(&bs[..])).unwrap();
        let xt = Tensor::from_f32(gpu, &[b, h, w, c], &x).unwrap();
        let mut enc = gpu.encoder();
        let y = depthwise(&mut enc, &xt, &dw, spec).unwrap();
        drop(enc);
        assert_eq!(y.shape, shape.to_vec());
        assert_close(&format!("depthwise case {i}"), &y.to_vec(gpu).unwrap(), &want, 1e-5, 1e-4);
        // Both kernels, whatever `depthwise` picks; the vec4 one refuses C % 4 != 0.
        for v in [Variant::Tiled, Variant::Cpu] {
            let mut enc = gpu.encoder();
            let y = depthwise_with(&mut enc, &xt, &dw, spec, v);
            drop(enc);
            if v == Variant::Cpu && c % 4 != 0 {
                let e = y.unwrap_err().to_string();
                assert!(e.contains("C % 4 == 0"), "{e}");
                continue;
            }
            assert_close(&format!("{v:?} depthwise case {i}"), &y.unwrap().to_vec(gpu).unwrap(), &want, 1e-5, 1e-4);
        }
    }
    let dw = DepthwiseWeight::from_torch(gpu, &[0.0; 9], [1, 1, 3, 3], None).unwrap();
    let e = depthwise(&mut gpu.encoder(), &Tensor::from_f32(gpu, &[1, 2, 2, 2], &[0.0; 8]).unwrap(), &dw, DepthwiseSpec { stride: 1, pad: (1, 1, 1, 1), act: Act::None }).unwrap_err().to_string();
    assert!(e.contains("is not (B, H, W, 1)"), "{e}");
}

#[test]
fn pooling_matches_reference() {
    use percept::ops::pool::{adaptive_avg_pool, global_mean, max_pool};
    let gpu = gpu();
    // (B, H, W, C, k, stride, pad): AlexNet's 3/2, VGG's 2/2, odd sizes, padding.
    for (i, &(b, h, w, c, k, stride, pad)) in [(2, 15, 15, 5, 3, 2, 0), (1, 8, 6, 7, 2, 2, 0), (2, 7, 9, 3, 3, 2, 1), (1, 3, 3, 4, 3, 2, 0)].iter().enumerate() {
        let x = rand(b * h * w * c, 400 + i as u64, 3.0);
        let (want, shape) = max_pool_ref(&x, [b, h, w, c], k, stride, pad);
        let xt = Tensor::from_f32(gpu, &[b, h, w, c], &x).unwrap();
        let mut enc = gpu.encoder();
        let y = max_pool(&mut enc, &xt, k, stride, pad).unwrap();
        drop(enc);
        assert_eq!(y.shape, shape.to_vec());
        assert_close(&format!("max_pool case {i}"), &y.to_vec(gpu).unwrap(), &want, 0.0, 0.0);
    }
    // Adaptive: shrink unevenly (overlapping windows), replicate 1x1 to 6x6, and the identity.
    for (i, &(b, h, w, c, ho, wo)) in [(2, 13, 10, 3, 6, 4), (1, 1, 1, 5, 6, 6), (2, 3, 2, 4, 7, 7), (1, 6, 6, 2, 6, 6), (2, 7, 5, 9, 1, 1)].iter().enumerate() {
        let x = rand(b * h * w * c, 500 + i as u64, 3.0);
        let want = adaptive_avg_pool_ref(&x, [b, h, w, c], ho, wo);
        let xt = Tensor::from_f32(gpu, &[b, h, w, c], &x).unwrap();
        let mut enc = gpu.encoder();
        let y = adaptive_avg_pool(&mut enc, &xt, ho, wo).unwrap();
        let g = global_mean(&mut enc, &xt).unwrap();
        drop(enc);
        assert_eq!(y.shape, vec![b, ho, wo, c]);
        assert_close(&format!("adaptive_avg_pool case {i}"), &y.to_vec(gpu).unwrap(), &want, 1e-6, 1e-5);
        assert_eq!(g.shape, vec![b, c]);
        assert_close(&format!("global_mean case {i}"), &g.to_vec(gpu).unwrap(), &adaptive_avg_pool_ref(&x, [b, h, w, c], 1, 1), 1e-6, 1e-5);
    }
}

#[test]
fn winograd_conv3x3_matches_reference() {
    // F(2x2, 3x3) against the direct plain-loop convolution, with bias, activation and the
    // residual added before it; odd sizes leave half tiles at the bottom and right. The
    // products run on every matmul kernel the adapter has (the workgroup-tiled one is what
    // GPUs get); with bindings capped, the batch runs in chunks.
    use percept::ops::conv2d::ConvSpec;
    use percept::ops::winograd::{conv3x3, conv3x3_with, WinogradWeight};
    use percept::ops::Act;
    let mut variants = vec![Variant::Tiled, Variant::Cpu];
    let gpu = gpu();
    if gpu.subgroup8_int64 {
        variants.push(Variant::Subgroup);
    }
    let capped = Gpu::new().unwrap();
    capped.cap_binding(16384);
    let cases = [
        // (B, H, W, Cin, Cout, act, bias, residual)
        (1, 5, 7, 4, 8, Act::None, true, false),
        (2, 8, 8, 64, 64, Act::Relu, true, true),
        (3, 6, 9, 12, 4, Act::Relu, false, true),
        (1, 1, 2, 8, 12, Act::Silu, true, false),
        (2, 16, 12, 16, 20, Act::Relu6, true, true),
    ];
    for (i, &(b, h, w, cin, cout, act, use_bias, use_res)) in cases.iter().enumerate() {
        let x = rand(b * h * w * cin, 200 + i as u64, 1.0);
        let wt = rand(cout * cin * 9, 210 + i as u64, 0.3);
        let bias = rand(cout, 220 + i as u64, 0.5);
        let res = rand(b * h * w * cout, 230 + i as u64, 1.0);
        let (conv, _) = conv2d_ref(&x, [b, h, w, cin], &wt, [cout, cin, 3, 3], use_bias.then_some(&bias[..]), ConvSpec::same(1, Act::None));
        let added = if use_res { res.clone() } else { vec![0.0; conv.len()] };
        let want = binary_ref(&conv, &added, false, act);
        let what = format!("winograd case {i} {:?}", (b, h, w, cin, cout, act, use_bias, use_res));
        for (g, label) in [(gpu, "auto"), (&capped, "chunked")] {
            let ww = WinogradWeight::from_torch(g, &wt, [cout, cin, 3, 3], use_bias.then_some(&bias[..])).unwrap();
            let xt = Tensor::from_f32(g, &[b, h, w, cin], &x).unwrap();
            let rt = Tensor::from_f32(g, &[b, h, w, cout], &res).unwrap();
            let mut enc = g.encoder();
            let y = match conv3x3(&mut enc, &xt, &ww, act, use_res.then_some(&rt)) {
                // Samples of 2,592 bytes cannot start at an allowed offset: refused, not mis-bound.
                Err(e) if label == "chunked" && i == 2 && g.limits.min_storage_buffer_offset_alignment > 32 => {
                    assert!(e.to_string().contains("alignment"), "{e}");
                    continue;
                }
                y => y.unwrap(),
            };
            drop(enc);
            assert_eq!(y.shape, vec![b, h, w, cout]);
            assert_close(&format!("{label} {what}"), &y.to_vec(g).unwrap(), &want, 1e-4, 1e-4);
            if label == "chunked" {
                continue;
            }
            for &v in &variants {
                let mut enc = g.encoder();
                let y = conv3x3_with(&mut enc, &xt, &ww, act, use_res.then_some(&rt), v).unwrap();
                drop(enc);
                assert_close(&format!("{v:?} {what}"), &y.to_vec(g).unwrap(), &want, 1e-4, 1e-4);
            }
        }
    }
    let ww = WinogradWeight::from_torch(gpu, &rand(8 * 4 * 9, 1, 1.0), [8, 4, 3, 3], None).unwrap();
    let bad = Tensor::from_f32(gpu, &[1, 4, 4, 8], &[0.0; 128]).unwrap();
    let e = conv3x3(&mut gpu.encoder(), &bad, &ww, Act::None, None).unwrap_err().to_string();
    assert!(e.contains("winograd") && e.contains("[1, 4, 4, 8]"), "{e}");
    let e = WinogradWeight::from_torch(gpu, &[0.0; 27], [1, 3, 3, 3], None).unwrap_err().to_string();
    assert!(e.contains("winograd") && e.contains("multiples of 4"), "{e}");
}
