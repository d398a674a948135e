//! Input gradients (ops::grad, ops::resize, nn::tape, dir::objective): every backward kernel
//! against its plain-loop CPU reference, every reference against finite differences of the
//! forward reference (or, for linear ops, the adjoint identity <A x, g> = <x, A^T g>), the
//! whole DIR objective's gradient against finite differences along directions, and a few
//! descent steps lowering the loss.

use std::path::PathBuf;

use crate::common;
use common::*;
use percept::gpu::{DType, Tensor};
use percept::ops::conv2d::ConvSpec;
use percept::ops::depthwise::{same_pad, DepthwiseSpec};
use percept::ops::elementwise::Unary;
use percept::ops::grad::*;
use percept::ops::reference::*;
use percept::ops::resize::{triangle_matrix, Resize};
use percept::ops::Act;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(gpu(), shape, v).unwrap()
}

#[test]
fn elementwise_backwards_match_reference() {
    let gpu = gpu();
    let shape = [2, 5, 3, 7];
    let n: usize = shape.iter().product();
    let g = rand(n, 1, 1.0);
    // Forward outputs with values below 0, inside (0, 6) and above 6, and exact zeros.
    let mut y = rand(n, 2, 8.0);
    y.iter_mut().step_by(5).for_each(|v| *v = 0.0);
    for act in [Act::Relu, Act::Relu6, Act::None] {
        let mut enc = gpu.encoder();
        let got = act_backward(&mut enc, &t(&shape, &g), &t(&shape, &y), act).unwrap();
        drop(enc);
        assert_close(&format!("act_backward {act:?}"), &got.to_vec(gpu).unwrap(), &act_backward_ref(&g, &y, act), 0.0, 0.0);
    }
    let x = rand(n, 3, 9.0);
    let mut enc = gpu.encoder();
    let got = tanh_clamp_backward(&mut enc, &t(&shape, &g), &t(&shape, &x), 3.0).unwrap();
    let up = upsample2x_backward(&mut enc, &t(&[2, 10, 6, 7], &rand(4 * n, 4, 1.0))).unwrap();
    let mean = global_mean_backward(&mut enc, &t(&[2, 7], &g[..14]), 5, 3).unwrap();
    drop(enc);
    assert_close("tanh_clamp_backward", &got.to_vec(gpu).unwrap(), &tanh_clamp_backward_ref(&g, &x, 3.0), 1e-6, 1e-5);
    assert_close("upsample2x_backward", &up.to_vec(gpu).unwrap(), &upsample2x_backward_ref(&rand(4 * n, 4, 1.0), shape), 1e-6, 1e-6);
    assert_close("global_mean_backward", &mean.to_vec(gpu).unwrap(), &global_mean_backward_ref(&g[..14], shape), 1e-7, 1e-6);
}

#[test]
fn elementwise_backward_references_match_finite_differences() {
    let shape = [1, 4, 6, 3];
    let n: usize = shape.iter().product();
    let x = rand(n, 5, 8.0);
    let g = rand(n, 6, 1.0);
    // tanh clamp: the derivative at each point by a central difference (f64 of the f32 ref).
    let dx = tanh_clamp_backward_ref(&g, &x, 3.0);
    for i in 0..n {
        let e = 1e-2f32;
        let f = |v: f32| unary_ref(&[v], Unary::TanhClamp(3.0))[0] as f64;
        let fd = (f(x[i] + e) - f(x[i] - e)) / (2.0 * e as f64) * g[i] as f64;
        assert!((fd - dx[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()), "tanh clamp at {i}: {} vs finite difference {fd}", dx[i]);
    }
    // ReLU / ReLU6: away from the kinks, the derivative of clamp by a central difference.
    for (act, un) in [(Act::Relu, Unary::Relu), (Act::Relu6, Unary::Relu6)] {
        let y = unary_ref(&x, un);
        let dx = act_backward_ref(&g, &y, act);
        for i in (0..n).filter(|&i| x[i].abs() > 0.1 && (x[i] - 6.0).abs() > 0.1) {
            let fd = (unary_ref(&[x[i] + 0.05], un)[0] - unary_ref(&[x[i] - 0.05], un)[0]) / 0.1 * g[i];
            assert!((fd - dx[i]).abs() < 1e-4, "{act:?} at {i} (x = {}): {} vs finite difference {fd}", x[i], dx[i]);
        }
    }
    // Upsample and mean are linear: <A x, g> = <x, A^T g>.
    let gu = rand(4 * n, 7, 1.0);
    let lhs = dot(&upsample2x_ref(&x, shape), &gu);
    let rhs = dot(&x, &upsample2x_backward_ref(&gu, shape));
    assert!((lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0), "upsample adjoint: {lhs} vs {rhs}");
    let gm = rand(3, 8, 1.0);
    let mean: Vec<f32> = (0..3).map(|c| (0..24).map(|p| x[p * 3 + c]).sum::<f32>() / 24.0).collect();
    let (lhs, rhs) = (dot(&mean, &gm), dot(&x, &global_mean_backward_ref(&gm, shape)));
    assert!((lhs - rhs).abs() < 1e-5 * lhs.abs().max(1.0), "mean adjoint: {lhs} vs {rhs}");
}

#[test]
fn pooling_and_linear_backwards_match_reference_and_finite_differences() {
    // VGG's 2/2 and AlexNet's 3/2 max pools (distinct values: no ties), adaptive averages that
    // shrink and grow, and a linear layer.
    let gpu = gpu();
    for (i, (xs, k, stride, pad)) in [([2, 8, 6, 5], 2, 2, 0), ([1, 13, 11, 4], 3, 2, 0), ([2, 7, 7, 3], 3, 2, 1)].into_iter().enumerate() {
        let n: usize = xs.iter().product();
        let x = rand(n, 70 + i as u64, 1.0);
        let (y, ys) = max_pool_ref(&x, xs, k, stride, pad);
        let g = rand(y.len(), 80 + i as u64, 1.0);
        let want = max_pool_backward_ref(&g, &x, xs, k, stride, pad);
        let mut enc = gpu.encoder();
        let got = max_pool_backward(&mut enc, &t(&ys, &g), &t(&xs, &x), k, stride, pad).unwrap();
        drop(enc);
        assert_close(&format!("max_pool_backward case {i}"), &got.to_vec(gpu).unwrap(), &want, 1e-6, 1e-6);
        // Finite differences of <g, pool(x)> (piecewise linear; a step below the gaps between
        // values, divided by the step as rounded to f32).
        for j in (0..n).step_by(3) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += 1e-5;
            xm[j] -= 1e-5;
            let fd = (dot(&max_pool_ref(&xp, xs, k, stride, pad).0, &g) - dot(&max_pool_ref(&xm, xs, k, stride, pad).0, &g)) / (xp[j] as f64 - xm[j] as f64);
            assert!((fd - want[j] as f64).abs() < 1e-4 * (1.0 + fd.abs()), "max pool case {i} at {j}: {} vs finite difference {fd}", want[j]);
        }
    }
    for (i, (xs, ho, wo)) in [([2, 13, 13, 4], 6, 6), ([1, 5, 3, 3], 7, 7), ([1, 14, 14, 2], 7, 7)].into_iter().enumerate() {
        let [b, h, w, c] = xs;
        let x = rand(xs.iter().product(), 90 + i as u64, 1.0);
        let g = rand(b * ho * wo * c, 95 + i as u64, 1.0);
        let want = adaptive_avg_pool_backward_ref(&g, [b, ho, wo, c], h, w);
        let mut enc = gpu.encoder();
        let got = adaptive_avg_pool_backward(&mut enc, &t(&[b, ho, wo, c], &g), h, w).unwrap();
        drop(enc);
        assert_close(&format!("adaptive_avg_pool_backward case {i}"), &got.to_vec(gpu).unwrap(), &want, 1e-6, 1e-5);
        let (lhs, rhs) = (dot(&adaptive_avg_pool_ref(&x, xs, ho, wo), &g), dot(&x, &want));
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "adaptive avg case {i} adjoint: {lhs} vs {rhs}");
    }
    let (m, nn, k) = (3, 10, 37);
    let (wt, g, x) = (rand(nn * k, 100, 1.0), rand(m * nn, 101, 1.0), rand(m * k, 102, 1.0));
    let mut enc = gpu.encoder();
    let got = linear_backward(&mut enc, &t(&[m, nn], &g), &t(&[nn, k], &wt)).unwrap();
    drop(enc);
    let want = matmul_ref(&g, &wt, 1, m, k, nn, false);
    assert_close("linear_backward", &got.to_vec(gpu).unwrap(), &want, 1e-5, 1e-4);
    let (lhs, rhs) = (dot(&linear_ref(&x, &wt, None, m, nn, k), &g), dot(&x, &want));
    assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "linear adjoint: {lhs} vs {rhs}");
}

/// (input shape, Cout, kernel, stride, (top, left, bottom, right) padding, depthwise).
type ConvCase = ([usize; 4], usize, usize, usize, (usize, usize, usize, usize), bool);

fn conv_cases() -> Vec<ConvCase> {
    let same = |h: usize, w: usize, k: usize, s: usize| {
        let (t, b) = same_pad(h, k, s);
        let (l, r) = same_pad(w, k, s);
        (t, l, b, r)
    };
    vec![
        ([2, 7, 6, 8], 12, 3, 1, (1, 1, 1, 1), false),  // TAESD's convs
        ([1, 8, 10, 3], 8, 3, 2, same(8, 10, 3, 2), false), // the stem: RGB, TF-SAME (0, 1)
        ([2, 9, 7, 4], 4, 3, 2, same(9, 7, 3, 2), false),  // odd sides: SAME (1, 1)
        ([1, 5, 5, 12], 8, 1, 1, (0, 0, 0, 0), false),     // pointwise
        ([2, 11, 8, 5], 6, 5, 2, (1, 2, 2, 1), false),     // asymmetric, 5x5, stride 2
        ([2, 9, 8, 8], 8, 3, 1, same(9, 8, 3, 1), true),   // depthwise
        ([1, 12, 10, 16], 16, 5, 2, same(12, 10, 5, 2), true),
        ([2, 7, 9, 6], 6, 3, 2, same(7, 9, 3, 2), true),   // C % 4 != 0: the Tiled kernel
    ]
}

#[test]
fn conv_backwards_match_reference() {
    let gpu = gpu();
    for (i, (xs, cout, k, stride, pad, dw)) in conv_cases().into_iter().enumerate() {
        let [b, h, w, cin] = xs;
        let ws = if dw { [cin, 1, k, k] } else { [cout, cin, k, k] };
        let wt = rand(ws.iter().product(), 10 + i as u64, 0.5);
        let (ho, wo) = ((h + pad.0 + pad.2 - k) / stride + 1, (w + pad.1 + pad.3 - k) / stride + 1);
        let gs = [b, ho, wo, if dw { cin } else { cout }];
        let g = rand(gs.iter().product(), 20 + i as u64, 1.0);
        let want = conv_backward_ref(&g, gs, &wt, ws, xs, stride, (pad.0, pad.1), dw);
        let mut enc = gpu.encoder();
        let got = if dw {
            let back = depthwise_back_weight(gpu, &wt, ws).unwrap();
            depthwise_backward(&mut enc, &t(&gs, &g), &back, (h, w), DepthwiseSpec { stride, pad, act: Act::None }).unwrap()
        } else {
            let back = conv_back_weight(gpu, &wt, ws, DType::F32).unwrap();
            conv2d_backward(&mut enc, &t(&gs, &g), &back, (h, w), ConvSpec { stride, pad_y: (pad.0, pad.2), pad_x: (pad.1, pad.3), act: Act::None }).unwrap()
        };
        drop(enc);
        assert_eq!(got.shape, xs.to_vec(), "case {i}");
        assert_close(&format!("conv backward case {i} ({xs:?}, k {k}, stride {stride}, pad {pad:?}, depthwise {dw})"), &got.to_vec(gpu).unwrap(), &want, 1e-5, 1e-4);
    }
}

#[test]
fn conv_backward_reference_matches_finite_differences() {
    // The convolution is linear in x, so the central difference of <g, conv(x)> along each
    // coordinate is the exact derivative up to f32 rounding of the forward reference.
    for (i, (xs, cout, k, stride, pad, dw)) in conv_cases().into_iter().enumerate() {
        let [b, h, w, cin] = xs;
        let ws = if dw { [cin, 1, k, k] } else { [cout, cin, k, k] };
        let wt = rand(ws.iter().product(), 10 + i as u64, 0.5);
        let x = rand(xs.iter().product(), 30 + i as u64, 1.0);
        let fwd = |x: &[f32]| {
            if dw {
                depthwise_ref(x, xs, &wt, (k, k), None, DepthwiseSpec { stride, pad, act: Act::None })
            } else {
                conv2d_ref(x, xs, &wt, ws, None, ConvSpec { stride, pad_y: (pad.0, pad.2), pad_x: (pad.1, pad.3), act: Act::None })
            }
        };
        let (y, ys) = fwd(&x);
        let g = rand(y.len(), 20 + i as u64, 1.0);
        let dx = conv_backward_ref(&g, ys, &wt, ws, xs, stride, (pad.0, pad.1), dw);
        // Every coordinate of the first and the last image row (the padded borders), and a stride.
        let at = |yy: usize, xx: usize, c: usize| ((b - 1) * h * w + yy * w + xx) * cin + c;
        let mut coords: Vec<usize> = (0..w).flat_map(|xx| (0..cin).flat_map(move |c| [at(0, xx, c), at(h - 1, xx, c)])).collect();
        coords.extend((0..x.len()).step_by(7));
        for j in coords {
            let e = 0.25f32;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += e;
            xm[j] -= e;
            let fd = (dot(&fwd(&xp).0, &g) - dot(&fwd(&xm).0, &g)) / (2.0 * e as f64);
            assert!((fd - dx[j] as f64).abs() < 1e-4 * (1.0 + fd.abs()), "case {i} at {j}: {} vs finite difference {fd}", dx[j]);
        }
        let _ = ys;
    }
}

#[test]
fn resize_and_its_backward_match_reference() {
    let gpu = gpu();
    for (n_in, n_out, c) in [(16, 28, 3), (12, 7, 2), (128, 224, 3), (8, 8, 1)] {
        let m = triangle_matrix(n_in, n_out);
        for j in 0..n_out {
            let s: f32 = m[j * n_in..(j + 1) * n_in].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{n_in} -> {n_out}: row {j} sums to {s}");
        }
        let x = rand(2 * n_in * n_in * c, 40, 1.0);
        let g = rand(2 * n_out * n_out * c, 41, 1.0);
        let r = Resize::new(gpu, n_in, n_out).unwrap();
        let mut enc = gpu.encoder();
        let y = r.forward(&mut enc, &t(&[2, n_in, n_in, c], &x)).unwrap();
        let dx = r.backward(&mut enc, &t(&[2, n_out, n_out, c], &g)).unwrap();
        drop(enc);
        let (y, dx) = (y.to_vec(gpu).unwrap(), dx.to_vec(gpu).unwrap());
        assert_close(&format!("resize {n_in} -> {n_out}"), &y, &resize_ref(&x, 2, c, &m, n_out, n_in, false), 1e-5, 1e-4);
        assert_close(&format!("resize backward {n_in} -> {n_out}"), &dx, &resize_ref(&g, 2, c, &m, n_out, n_in, true), 1e-5, 1e-4);
        // The gradient is the adjoint.
        let (lhs, rhs) = (dot(&y, &g), dot(&x, &dx));
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "resize {n_in} -> {n_out} adjoint: {lhs} vs {rhs}");
    }
}

#[test]
fn resize_is_the_judges_resize() {
    // eval::features resizes photos with Rgb::resized (the image crate's triangle filter, to
    // 8 bits): the differentiable resize agrees within rounding.
    let (n_in, n_out) = (40, 56);
    let data: Vec<f32> = rand(n_in * n_in * 3, 50, 0.5).iter().map(|v| ((v + 0.5) * 255.0).round() / 255.0).collect();
    let img = percept::io::image::Rgb { height: n_in, width: n_in, data: data.clone() };
    let want = img.resized(n_out).data;
    let got = resize_ref(&data, 1, 3, &triangle_matrix(n_in, n_out), n_out, n_in, false);
    assert_close("resize vs Rgb::resized", &got, &want, 1.01 / 255.0, 0.0);
}

/// A fixture of tests/fixtures/grad/ (all f32, made by tests/fixtures/make_grad.py).
fn fixture(name: &str) -> std::collections::HashMap<String, (Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(root().join("tests/fixtures/grad").join(name)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name}: {k}");
            (k, (v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(), v.shape().to_vec()))
        })
        .collect()
}

/// Max |got - want| over max |want|.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

#[test]
fn conv_backwards_match_pytorch_autograd() {
    // Stride 2 with TF-SAME padding: a conv, a depthwise 5x5, and an RGB stem with ReLU6.
    let gpu = gpu();
    let f = fixture("ops.safetensors");
    for name in ["conv", "dw", "stem"] {
        let get = |k: &str| f[&format!("{name}.{k}")].clone();
        let ((_, xs), (w, ws), (g, gs), (dx, _)) = (get("x"), get("w"), get("g"), get("dx"));
        let (h, wd) = (xs[1], xs[2]);
        let k = ws[2];
        let (t, b) = same_pad(h, k, 2);
        let (l, r) = same_pad(wd, k, 2);
        let mut enc = gpu.encoder();
        let mut gt = Tensor::from_f32(gpu, &gs, &g).unwrap();
        if name == "stem" {
            let (y, ys) = get("y");
            gt = act_backward(&mut enc, &gt, &Tensor::from_f32(gpu, &ys, &y).unwrap(), Act::Relu6).unwrap();
        }
        let got = if name == "dw" {
            let back = depthwise_back_weight(gpu, &w, [ws[0], ws[1], ws[2], ws[3]]).unwrap();
            depthwise_backward(&mut enc, &gt, &back, (h, wd), DepthwiseSpec { stride: 2, pad: (t, l, b, r), act: Act::None }).unwrap()
        } else {
            let back = conv_back_weight(gpu, &w, [ws[0], ws[1], ws[2], ws[3]], DType::F32).unwrap();
            conv2d_backward(&mut enc, &gt, &back, (h, wd), ConvSpec { stride: 2, pad_y: (t, b), pad_x: (l, r), act: Act::None }).unwrap()
        };
        drop(enc);
        assert_close(&format!("{name} input gradient vs autograd"), &got.to_vec(gpu).unwrap(), &dx, 1e-4, 1e-4);
    }
}

mod objective {
    use super::*;
    use percept::dir::objective::{Generator, LayerTarget, LossNet, Objective};
    use percept::nn::efficientnet::EfficientNet;
    use percept::nn::taesd::Taesd;

    fn lite0() -> EfficientNet {
        EfficientNet::load(gpu(), &root().join("weights/efficientnet-lite0")).unwrap()
    }

    fn taesd() -> Taesd {
        Taesd::load(gpu(), &root().join("weights/taesd"), DType::F32).unwrap()
    }

    /// Targets: the features of other latents' images at three layers, some on chosen units.
    fn targets(obj: &Objective<'_>, batch: usize, side: usize) -> Vec<LayerTarget> {
        let other: Vec<f32> = rand(batch * side * side * 3, 60, 0.5).iter().map(|v| v + 0.5).collect();
        let layers: Vec<String> = ["_blocks.1", "_blocks.5", "_avg_pooling"].map(String::from).to_vec();
        let f = obj.features(&other, batch, &layers).unwrap();
        let mut out = Vec::new();
        for (l, v) in layers.into_iter().zip(f) {
            let per = v.len() / batch;
            if l == "_blocks.5" {
                let units: Vec<u32> = (0..per as u32).step_by(3).collect();
                let values = (0..batch).flat_map(|b| units.iter().map(|&u| v[b * per + u as usize]).collect::<Vec<_>>()).collect();
                out.push(LayerTarget { layer: l, units: Some(units), values });
            } else {
                out.push(LayerTarget { layer: l, units: None, values: v });
            }
        }
        out
    }

    #[test]
    fn objective_gradient_matches_finite_differences() {
        let gpu = gpu();
        let (net, vae) = (lite0(), taesd());
        let (batch, side) = (2, 64);
        for (name, gen) in [("taesd", Generator::Taesd(&vae.decoder)), ("pixels", Generator::Pixels)] {
            let obj = Objective::new(gpu, gen, LossNet::EfficientNet(&net), side).unwrap();
            let tg = targets(&obj, batch, side);
            let shape = obj.x_shape(batch);
            let n: usize = shape.iter().product();
            let x: Vec<f32> = match gen {
                Generator::Taesd(_) => rand(n, 61, 1.5),
                Generator::Pixels => rand(n, 61, 0.4).iter().map(|v| v + 0.5).collect(),
            };
            let ev = obj.loss_and_grad(&x, batch, &tg).unwrap();
            assert_eq!((ev.loss.len(), ev.grad.len(), ev.images.len()), (batch, n, batch * side * side * 3));
            assert!(ev.loss.iter().all(|l| *l > 0.0 && l.is_finite()), "{:?}", ev.loss);
            // Along the gradient and along a random direction (per image: each loss depends
            // only on its own image's x).
            // (A purely random direction in pixel space has a derivative near the f32 noise of
            // the loss: half along the gradient keeps the test above it.)
            let gn = dot(&ev.grad, &ev.grad).sqrt();
            let r = rand(n, 62, 1.0);
            let rn = dot(&r, &r).sqrt();
            let mixed: Vec<f32> = ev.grad.iter().zip(&r).map(|(g, r)| (*g as f64 / gn + *r as f64 / rn) as f32).collect();
            for (k, dir) in [ev.grad.clone(), r.clone(), mixed].into_iter().enumerate() {
                if name == "pixels" && k == 1 {
                    continue;
                }
                let norm = dot(&dir, &dir).sqrt();
                let v: Vec<f32> = dir.iter().map(|d| (*d as f64 / norm) as f32).collect();
                // Along the gradient the loss moves fast (a small step); along a random
                // direction slowly (a larger step, above the f32 noise of the loss).
                let h = if k == 1 { 1e-2 } else { 1e-3 };
                let at = |s: f32| {
                    let xs: Vec<f32> = x.iter().zip(&v).map(|(a, d)| a + s * d).collect();
                    obj.loss_and_grad(&xs, batch, &tg).unwrap().loss
                };
                let (lp, lm) = (at(h), at(-h));
                let fd: f64 = lp.iter().zip(&lm).map(|(p, m)| (*p as f64 - *m as f64) / (2.0 * h as f64)).sum();
                let an = dot(&ev.grad, &v);
                assert!((fd - an).abs() < 0.02 * an.abs().max(fd.abs()) + 1e-6, "{name} direction {k}: d loss along v {an} vs finite difference {fd}");
            }
        }
    }

    #[test]
    fn objective_gradient_matches_pytorch_autograd() {
        // TAESD decoder -> triangle resize 64 -> 224 -> EfficientNet-Lite0 (real weights) at
        // three layers, two of them on chosen units, batch 2 (tests/fixtures/make_grad.py).
        let gpu = gpu();
        let (net, vae) = (lite0(), taesd());
        let f = fixture("objective.safetensors");
        let obj = Objective::new(gpu, Generator::Taesd(&vae.decoder), LossNet::EfficientNet(&net), 64).unwrap();
        let mut targets = Vec::new();
        for layer in ["_blocks.2", "_blocks.8", "_avg_pooling"] {
            let units = f.get(&format!("units.{layer}")).map(|u| u.0.iter().map(|v| *v as u32).collect());
            targets.push(LayerTarget { layer: layer.into(), units, values: f[&format!("target.{layer}")].0.clone() });
        }
        let ev = obj.loss_and_grad(&f["latent"].0, 2, &targets).unwrap();
        let (images, loss, grad) = (rel_err(&ev.images, &f["images"].0), rel_err(&ev.loss, &f["loss"].0), rel_err(&ev.grad, &f["grad"].0));
        eprintln!("vs autograd, max error / max value: images {images:.2e}, loss {loss:.2e}, d loss / d latent {grad:.2e}");
        assert!(images < 1e-4 && loss < 1e-3 && grad < 1e-2, "vs autograd: images {images}, loss {loss}, gradient {grad} (max error / max value)");
        let cos = dot(&ev.grad, &f["grad"].0) / (dot(&ev.grad, &ev.grad) * dot(&f["grad"].0, &f["grad"].0)).sqrt();
        assert!(cos > 0.9999, "gradient direction vs autograd: cosine {cos}");
    }

    #[test]
    fn gradient_descent_lowers_the_loss() {
        let gpu = gpu();
        let (net, vae) = (lite0(), taesd());
        let (batch, side) = (2, 64);
        let obj = Objective::new(gpu, Generator::Taesd(&vae.decoder), LossNet::EfficientNet(&net), side).unwrap();
        let tg = targets(&obj, batch, side);
        let mut x = rand(obj.x_shape(batch).iter().product(), 63, 1.0);
        let mut ev = obj.loss_and_grad(&x, batch, &tg).unwrap();
        let first = ev.loss.clone();
        for step in 0..4 {
            // Normalised steps (the DGN optimiser divides the gradient by its mean |g|).
            let mean = ev.grad.iter().map(|g| g.abs()).sum::<f32>() / ev.grad.len() as f32;
            x.iter_mut().zip(&ev.grad).for_each(|(x, g)| *x -= 0.002 * g / mean);
            let next = obj.loss_and_grad(&x, batch, &tg).unwrap();
            for b in 0..batch {
                assert!(next.loss[b] < ev.loss[b], "image {b}: loss {} after step {step}, {} before", next.loss[b], ev.loss[b]);
            }
            ev = next;
        }
        for (b, (now, before)) in ev.loss.iter().zip(&first).enumerate() {
            assert!(*now < 0.97 * before, "image {b}: loss {now} after 4 steps, {before} before");
        }
    }

    /// A small VGG-shaped net (convs, ReLUs, max pools, adaptive average, linear layers) with
    /// seeded f32 weights, through the torchvision-layout loader.
    fn tiny_vgg() -> percept::nn::classic::ClassicNet {
        use percept::nn::classic::{ClassicNet, Feature, Head};
        let features = [
            Feature::Conv { cin: 3, cout: 8, k: 3, stride: 1, pad: 1 },
            Feature::Relu,
            Feature::MaxPool { k: 2, stride: 2 },
            Feature::Conv { cin: 8, cout: 12, k: 3, stride: 2, pad: 1 },
            Feature::Relu,
            Feature::MaxPool { k: 3, stride: 2 },
        ];
        let classifier = [Head::Linear { inp: 12 * 4, out: 16 }, Head::Relu, Head::Dropout, Head::Linear { inp: 16, out: 5 }];
        let params: Vec<(String, Vec<usize>)> = vec![
            ("features.0.weight".into(), vec![8, 3, 3, 3]),
            ("features.0.bias".into(), vec![8]),
            ("features.3.weight".into(), vec![12, 8, 3, 3]),
            ("features.3.bias".into(), vec![12]),
            ("classifier.0.weight".into(), vec![16, 48]),
            ("classifier.0.bias".into(), vec![16]),
            ("classifier.3.weight".into(), vec![5, 16]),
            ("classifier.3.bias".into(), vec![5]),
        ];
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = params
            .iter()
            .enumerate()
            .map(|(k, (key, shape))| {
                let n: usize = shape.iter().product();
                let scale = if key.ends_with("bias") { 0.05 } else { 1.5 / ((n / shape[0]) as f32).sqrt() };
                (key.clone(), shape.clone(), rand(n, 110 + k as u64, scale).iter().flat_map(|v| v.to_le_bytes()).collect())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data.iter().map(|(k, s, b)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
        let path = std::env::temp_dir().join(format!("percept-test-tiny-vgg-{}.safetensors", std::process::id()));
        safetensors::serialize_to_file(views, None, &path).unwrap();
        let w = percept::nn::Weights::open(&[&path]).unwrap();
        std::fs::remove_file(&path).unwrap();
        ClassicNet::load(&percept::nn::Loader::new(gpu(), &w, DType::F32), &features, 2, &classifier).unwrap()
    }

    #[test]
    fn vgg_objective_gradient_matches_finite_differences() {
        // Pixels -> resize 48 -> 224 -> ImageNet normalisation -> conv, ReLU, max pools,
        // adaptive average, linear layers: d loss / d pixels against central differences.
        let gpu = gpu();
        let net = tiny_vgg();
        let (batch, side) = (2, 48);
        let obj = Objective::new(gpu, Generator::Pixels, LossNet::Vgg(&net), side).unwrap();
        let layers: Vec<String> = ["features.1", "features.4", "avgpool", "classifier.1", "classifier.3"].map(String::from).to_vec();
        let other: Vec<f32> = rand(batch * side * side * 3, 64, 0.5).iter().map(|v| v + 0.5).collect();
        let tg: Vec<LayerTarget> = layers.iter().zip(obj.features(&other, batch, &layers).unwrap()).map(|(l, v)| LayerTarget { layer: l.clone(), units: None, values: v }).collect();
        let n = batch * side * side * 3;
        let x: Vec<f32> = rand(n, 65, 0.4).iter().map(|v| v + 0.5).collect();
        let ev = obj.loss_and_grad(&x, batch, &tg).unwrap();
        let gn = dot(&ev.grad, &ev.grad).sqrt();
        let r = rand(n, 66, 1.0);
        let rn = dot(&r, &r).sqrt();
        let mixed: Vec<f32> = ev.grad.iter().zip(&r).map(|(g, r)| (*g as f64 / gn + *r as f64 / rn) as f32).collect();
        for (k, dir) in [ev.grad.clone(), mixed].into_iter().enumerate() {
            let norm = dot(&dir, &dir).sqrt();
            let v: Vec<f32> = dir.iter().map(|d| (*d as f64 / norm) as f32).collect();
            let h = 1e-3;
            let at = |s: f32| obj.loss_and_grad(&x.iter().zip(&v).map(|(a, d)| a + s * d).collect::<Vec<_>>(), batch, &tg).unwrap().loss;
            let (lp, lm) = (at(h), at(-h));
            let fd: f64 = lp.iter().zip(&lm).map(|(p, m)| (*p as f64 - *m as f64) / (2.0 * h as f64)).sum();
            let an = dot(&ev.grad, &v);
            assert!((fd - an).abs() < 0.02 * an.abs().max(fd.abs()), "vgg direction {k}: d loss along v {an} vs finite difference {fd}");
        }
    }

    #[test]
    fn objective_errors_name_the_layer() {
        let gpu = gpu();
        let net = lite0();
        let obj = Objective::new(gpu, Generator::Pixels, LossNet::EfficientNet(&net), 32).unwrap();
        let x = vec![0.5; 32 * 32 * 3];
        let bad = [LayerTarget { layer: "_blocks.2".into(), units: Some(vec![0, 1_000_000]), values: vec![0.0; 2] }];
        let e = obj.loss_and_grad(&x, 1, &bad).unwrap_err().to_string();
        assert!(e.contains("_blocks.2") && e.contains("1000000"), "{e}");
        let bad = [LayerTarget { layer: "_fc".into(), units: None, values: vec![0.0; 1000] }];
        let e = obj.loss_and_grad(&x, 1, &bad).unwrap_err().to_string();
        assert!(e.contains("`_fc`"), "{e}");
        let e = obj.loss_and_grad(&x[1..], 1, &bad).unwrap_err().to_string();
        assert!(e.contains("3071 values"), "{e}");
    }
}
