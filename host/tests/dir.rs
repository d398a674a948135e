//! Deep image reconstruction's optimisers on synthetic objectives with a known minimum, and
//! the output rule (clip the extremes, rescale to 0-255).

use percept::dir::optim::{self, Adam, Dgn, Method, PixelGd, Settings};
use percept::dir::output;
use percept::progress::Silent;

/// `sum_i a_i (x_i - m_i)^2` per image of `dim` values, and its gradient.
fn quadratic(a: Vec<f32>, m: Vec<f32>) -> impl FnMut(&[f32]) -> percept::Result<(Vec<f32>, Vec<f32>)> {
    move |x: &[f32]| {
        let dim = a.len();
        let grad: Vec<f32> = x.iter().enumerate().map(|(i, v)| 2.0 * a[i % dim] * (v - m[i])).collect();
        let loss = x.chunks(dim).enumerate().map(|(b, xs)| xs.iter().enumerate().map(|(i, v)| a[i] * (v - m[b * dim + i]).powi(2)).sum()).collect();
        Ok((loss, grad))
    }
}

fn seeded(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32 + 1000 * seed).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0).collect()
}

/// Runs `method` on the quadratic of minimum `m` and curvatures `a`; `anchor`: its weight and centre.
fn run(x: &mut [f32], batch: usize, method: Method, iterations: usize, anchor: Option<(f32, &[f32])>, m: &[f32], a: &[f32]) -> optim::Trace {
    let mut f = quadratic(a.to_vec(), m.to_vec());
    let s = Settings { method, iterations, anchor: anchor.map_or(0.0, |a| a.0) };
    optim::optimise(x, batch, &s, anchor.map(|a| a.1), &mut f, &Silent).unwrap()
}

#[test]
fn dgn_descends_to_the_minimum_and_images_are_independent() {
    let dim = 64;
    let a: Vec<f32> = (0..dim).map(|i| 0.5 + (i % 7) as f32 / 4.0).collect();
    let m = seeded(2 * dim, 1);
    let method = Method::Dgn(Dgn { lr_start: 0.02, lr_end: 0.0, momentum: 0.9, decay: 0.0 });
    let mut x = vec![0f32; 2 * dim];
    let trace = run(&mut x, 2, method, 300, None, &m, &a);
    let (first, last) = (&trace.loss[0], trace.loss.last().unwrap());
    for b in 0..2 {
        assert!(last[b] < 1e-2 * first[b], "image {b}: loss {} -> {}", first[b], last[b]);
    }
    // The second image alone ends where it ended in the batch.
    let mut alone = vec![0f32; dim];
    run(&mut alone, 1, method, 300, None, &m[dim..], &a);
    assert_eq!(alone, x[dim..], "an image's result depends on the other images of its batch");
}

#[test]
fn dgn_decay_shrinks_the_latent_by_its_factor_per_step() {
    // A flat objective (gradient 0): only the decay acts, x_T = (1 - d)^T x_0.
    let dim = 16;
    let x0 = seeded(dim, 3);
    let mut x = x0.clone();
    let mut flat = |x: &[f32]| Ok((vec![0.0], vec![0.0; x.len()]));
    let s = Settings { method: Method::Dgn(Dgn::default()), iterations: 50, anchor: 0.0 };
    optim::optimise(&mut x, 1, &s, None, &mut flat, &Silent).unwrap();
    for (v, v0) in x.iter().zip(&x0) {
        assert!((v - v0 * 0.99f32.powi(50)).abs() < 1e-5, "{v} vs {}", v0 * 0.99f32.powi(50));
    }
}

#[test]
fn dgn_learning_rate_falls_linearly() {
    assert_eq!(optim::linear(2.0, 0.0, 0, 200), 2.0);
    assert_eq!(optim::linear(2.0, 0.0, 100, 200), 1.0);
    assert!((optim::linear(2.0, 1e-10, 199, 200) - 0.01).abs() < 1e-6);
    // One step from 0 with a constant gradient moves each value by lr * sign(grad).
    let mut x = vec![0f32; 4];
    let mut f = |x: &[f32]| Ok((vec![0.0], x.iter().enumerate().map(|(i, _)| if i % 2 == 0 { 3.0 } else { -1.0 }).collect()));
    let s = Settings { method: Method::Dgn(Dgn { lr_start: 0.5, lr_end: 0.0, momentum: 0.9, decay: 0.0 }), iterations: 1, anchor: 0.0 };
    optim::optimise(&mut x, 1, &s, None, &mut f, &Silent).unwrap();
    // Mean |g| = 2: normalised gradient (1.5, -0.5, ...), step -0.5 * that.
    assert_eq!(x, [-0.75, 0.25, -0.75, 0.25]);
}

#[test]
fn adam_reaches_the_minimum() {
    let dim = 32;
    let a: Vec<f32> = (0..dim).map(|i| 0.1 + i as f32).collect();
    let m = seeded(3 * dim, 5);
    let mut x = vec![0f32; 3 * dim];
    run(&mut x, 3, Method::Adam(Adam { lr: 0.05, ..Adam::default() }), 600, None, &m, &a);
    let err = x.iter().zip(&m).map(|(v, t)| (v - t).abs()).fold(0f32, f32::max);
    assert!(err < 0.02, "Adam ended {err} from the minimum");
}

#[test]
fn anchor_moves_the_minimum_towards_the_start() {
    // ||x - m||^2 + lambda ||x - x0||^2 has its minimum at (m + lambda x0) / (1 + lambda).
    let dim = 16;
    let a = vec![1f32; dim];
    let m = seeded(dim, 7);
    let x0 = seeded(dim, 8);
    let lambda = 0.5;
    let mut x = x0.clone();
    let trace = run(&mut x, 1, Method::Adam(Adam { lr: 0.02, ..Adam::default() }), 1500, Some((lambda, &x0)), &m, &a);
    for i in 0..dim {
        let want = (m[i] + lambda * x0[i]) / (1.0 + lambda);
        assert!((x[i] - want).abs() < 5e-3, "element {i}: {} vs {want}", x[i]);
    }
    // The trace holds the objective's loss alone: at the anchored minimum it is not 0.
    assert!(trace.loss.last().unwrap()[0] > 1e-3);
}

#[test]
fn blur_keeps_constants_and_the_mean_and_smooths() {
    let side = 12;
    let mut flat = vec![0.3f32; side * side * 3];
    optim::blur(&mut flat, side, 3, 2.0);
    assert!(flat.iter().all(|v| (v - 0.3).abs() < 1e-6));
    // A single bright pixel in the middle of channel 1 spreads symmetrically and keeps its mass.
    let mut dot = vec![0f32; side * side * 3];
    let c = (6 * side + 6) * 3 + 1;
    dot[c] = 1.0;
    optim::blur(&mut dot, side, 3, 1.0);
    let total: f32 = dot.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "mass {total}");
    assert!(dot[c] < 0.2 && dot[c] > 0.1, "peak {}", dot[c]);
    assert!((dot[c - 3] - dot[c + 3]).abs() < 1e-6 && (dot[c - 3 * side] - dot[c + 3 * side]).abs() < 1e-6);
    assert!(dot.iter().enumerate().all(|(i, v)| i % 3 == 1 || *v == 0.0), "the blur mixed channels");
}

#[test]
fn pixel_descent_lowers_the_loss_towards_a_smooth_image() {
    // Target: a smooth gradient image; start: the mean grey.
    let side = 16;
    let dim = side * side * 3;
    let m: Vec<f32> = (0..dim).map(|i| ((i / 3) % side) as f32 / side as f32).collect();
    let a = vec![1f32; dim];
    let mut x = vec![0.5f32; dim];
    let centre = x.clone();
    let mut s = PixelGd::new(side);
    s.lr_start = 0.05;
    let trace = run(&mut x, 1, Method::PixelGd(s), 100, Some((0.0, &centre)), &m, &a);
    let (first, last) = (trace.loss[0][0], trace.loss.last().unwrap()[0]);
    assert!(last < 0.2 * first, "loss {first} -> {last}");
}

#[test]
fn bad_inputs_and_a_diverging_objective_are_errors() {
    let mut x = vec![0f32; 10];
    let mut f = quadratic(vec![1.0; 5], vec![0.0; 10]);
    let s = Settings { method: Method::Adam(Adam::default()), iterations: 3, anchor: 0.0 };
    assert!(optim::optimise(&mut x, 3, &s, None, &mut f, &Silent).is_err(), "10 values are no batch of 3");
    let bad = Settings { anchor: -1.0, ..s.clone() };
    assert!(optim::optimise(&mut x, 2, &bad, None, &mut f, &Silent).unwrap_err().to_string().contains("anchor"));
    let px = Settings { method: Method::PixelGd(PixelGd::new(4)), ..s.clone() };
    assert!(optim::optimise(&mut x, 2, &px, None, &mut f, &Silent).is_err(), "5 values are not a 4x4x3 image");
    let mut nan = |x: &[f32]| Ok((vec![1.0, f32::NAN], vec![0.0; x.len()]));
    let e = optim::optimise(&mut x, 2, &s, None, &mut nan, &Silent).unwrap_err().to_string();
    assert!(e.contains("iteration 0") && e.contains("image 1"), "{e}");
    let mut short = |_: &[f32]| Ok((vec![1.0, 1.0], vec![0.0; 3]));
    assert!(optim::optimise(&mut x, 2, &s, None, &mut short, &Silent).is_err());
}

#[test]
fn output_clips_the_extremes_and_rescales_to_255() {
    // 0..9999 plus one huge outlier: the 0.02th / 99.98th percentiles (numpy, linear) of the
    // 10001 values are 2.0 and 9998.0 (ranks 2 and 9998), so the outlier is clipped to 9998.
    let mut v: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
    v.push(1e9);
    let mut sorted = v.clone();
    sorted.sort_by(f32::total_cmp);
    assert!((output::percentile(&sorted, 0.02) - 2.0).abs() < 1e-3);
    assert!((output::percentile(&sorted, 99.98) - 9998.0).abs() < 1e-3);
    let p = output::to_pixels(&v, output::CLIP_PERCENT);
    assert_eq!((p[0], p[2], p[9998], p[10_000]), (0, 0, 255, 255));
    // 5000 is (5000 - 2) / 9996 of the range: 127.5... truncated.
    assert_eq!(p[5000], ((5000.0f64 - 2.0) * 255.0 / 9996.0) as u8);
    // Without an outlier the range maps to 0-255 unchanged in order; a constant image is 0.
    let small = output::to_pixels(&[0.25, 0.5, 1.0], 0.0);
    assert_eq!(small, [0, 85, 255]);
    assert!(output::to_pixels(&[0.7; 12], output::CLIP_PERCENT).iter().all(|&x| x == 0));
    // NaN and infinities do not poison the image.
    let odd = output::to_pixels(&[f32::NAN, 0.0, 0.5, 1.0, f32::INFINITY], 0.0);
    assert_eq!(odd.len(), 5);
    let rgb = output::to_rgb(&[0.5; 4 * 4 * 3], 4);
    assert_eq!((rgb.width, rgb.height, rgb.data.len()), (4, 4, 48));
}
