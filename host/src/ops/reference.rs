//! Plain-loop CPU references of the ops (f64 sums), which the tests compare the WGSL kernels
//! against; each states its shapes. Compiled for the crate's tests and with the `reference`
//! feature (the host integration tests enable it through a dev-dependency on this crate), not
//! part of the library otherwise.

use super::conv2d::ConvSpec;
use super::elementwise::Unary;
use super::Act;

mod features;
mod grad;
pub use features::{adaptive_avg_pool_ref, depthwise_ref, max_pool_ref};
pub use grad::{act_backward_ref, adaptive_avg_pool_backward_ref, conv_backward_ref, max_pool_backward_ref, global_mean_backward_ref, resize_ref, tanh_clamp_backward_ref, upsample2x_backward_ref};

// linear


/// CPU reference: `y (M, N) = x (M, K) . w^T (N, K) + bias (N)`.
pub fn linear_ref(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for t in 0..k {
                s += x[i * k + t] as f64 * w[j * k + t] as f64;
            }
            y[i * n + j] = s as f32 + bias.map_or(0.0, |b| b[j]);
        }
    }
    y
}

/// CPU reference: `c (B, M, N) = a (B, M, K) . b (B, K, N)`, or `. b^T` with `b (B, N, K)`.
pub fn matmul_ref(a: &[f32], b: &[f32], batch: usize, m: usize, n: usize, k: usize, transpose_b: bool) -> Vec<f32> {
    let mut c = vec![0.0; batch * m * n];
    for z in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for t in 0..k {
                    let bv = if transpose_b { b[z * n * k + j * k + t] } else { b[z * k * n + t * n + j] };
                    s += a[z * m * k + i * k + t] as f64 * bv as f64;
                }
                c[z * m * n + i * n + j] = s as f32;
            }
        }
    }
    c
}

// conv2d


/// CPU reference. `x (B, H, W, Cin)`, `w (Cout, Cin, kh, kw)` (PyTorch layout), `bias (Cout)`
/// -> `(B, Ho, Wo, Cout)`.
pub fn conv2d_ref(x: &[f32], xs: [usize; 4], w: &[f32], ws: [usize; 4], bias: Option<&[f32]>, spec: ConvSpec) -> (Vec<f32>, [usize; 4]) {
    let [b, h, wd, cin] = xs;
    let [cout, _, kh, kw] = ws;
    let ho = (h + spec.pad_y.0 + spec.pad_y.1 - kh) / spec.stride + 1;
    let wo = (wd + spec.pad_x.0 + spec.pad_x.1 - kw) / spec.stride + 1;
    let mut y = vec![0.0; b * ho * wo * cout];
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for o in 0..cout {
                    let mut s = bias.map_or(0.0, |bb| bb[o] as f64);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * spec.stride + ky) as isize - spec.pad_y.0 as isize;
                            let ix = (ox * spec.stride + kx) as isize - spec.pad_x.0 as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            for i in 0..cin {
                                s += x[((n * h + iy as usize) * wd + ix as usize) * cin + i] as f64 * w[((o * cin + i) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                    let v = s as f32;
                    y[((n * ho + oy) * wo + ox) * cout + o] = match spec.act {
                        Act::None => v,
                        Act::Relu => v.max(0.0),
                        Act::Silu => v / (1.0 + (-v).exp()),
                        Act::Relu6 => v.clamp(0.0, 6.0),
                    };
                }
            }
        }
    }
    (y, [b, ho, wo, cout])
}

// attention


/// CPU reference with the whole score matrix: shapes as [`attention`](super::attention::attention).
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(q: &[f32], k: &[f32], v: &[f32], b: usize, lq: usize, lk: usize, heads: usize, d: usize, causal: bool) -> Vec<f32> {
    let width = heads * d;
    let scale = 1.0 / (d as f64).sqrt();
    let mut o = vec![0.0; b * lq * width];
    for n in 0..b {
        for h in 0..heads {
            for i in 0..lq {
                let last = if causal { (i + 1).min(lk) } else { lk };
                let s: Vec<f64> = (0..last)
                    .map(|j| (0..d).map(|t| q[(n * lq + i) * width + h * d + t] as f64 * k[(n * lk + j) * width + h * d + t] as f64).sum::<f64>() * scale)
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for t in 0..d {
                    o[(n * lq + i) * width + h * d + t] = (e.iter().enumerate().map(|(j, p)| p * v[(n * lk + j) * width + h * d + t] as f64).sum::<f64>() / z) as f32;
                }
            }
        }
    }
    o
}

// elementwise


/// CPU reference of [`unary`](super::elementwise::unary).
pub fn unary_ref(x: &[f32], f: Unary) -> Vec<f32> {
    x.iter()
        .map(|&v| match f {
            Unary::Scale(s) => v * s,
            Unary::Relu => v.max(0.0),
            Unary::Silu => v / (1.0 + (-v).exp()),
            Unary::Gelu => gelu_ref(v),
            Unary::TanhClamp(c) => (v / c).tanh() * c,
            Unary::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
            Unary::Relu6 => v.clamp(0.0, 6.0),
        })
        .collect()
}

/// Exact GELU in f64: `x/2 (1 + erf(x / sqrt 2))`.
pub fn gelu_ref(v: f32) -> f32 {
    let x = v as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// The error function in f64, for the references (not libm's): its Maclaurin series
/// `2/sqrt(pi) sum (-1)^n x^(2n+1) / (n! (2n+1))` for |x| < 2.5, else `1 - erfc(x)` with erfc
/// from its continued fraction (Laplace's, evaluated by the modified Lentz method); accurate
/// to about 1e-12 for |x| < 6.
fn erf(x: f64) -> f64 {
    // Taylor series for small |x|, complementary continued fraction for large.
    let ax = x.abs();
    let r = if ax < 2.5 {
        let mut sum = ax;
        let mut term = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc by Lentz's continued fraction.
        let mut f = ax;
        let (mut c, mut d) = (ax, 0.0);
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = ax + a * d;
            d = 1.0 / d;
            c = ax + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

/// CPU reference of [`binary`](super::elementwise::binary).
pub fn binary_ref(a: &[f32], b: &[f32], mul: bool, act: Act) -> Vec<f32> {
    a.iter()
        .enumerate()
        .map(|(i, &v)| {
            let r = if mul { v * b[i % b.len()] } else { v + b[i % b.len()] };
            match act {
                Act::None => r,
                Act::Relu => r.max(0.0),
                Act::Silu => r / (1.0 + (-r).exp()),
                Act::Relu6 => r.clamp(0.0, 6.0),
            }
        })
        .collect()
}

/// CPU reference of [`geglu`](super::elementwise::geglu): `x (R, 2F) -> (R, F)`.
pub fn geglu_ref(x: &[f32], f: usize) -> Vec<f32> {
    let rows = x.len() / (2 * f);
    let mut y = vec![0.0; rows * f];
    for r in 0..rows {
        for j in 0..f {
            y[r * f + j] = x[r * 2 * f + j] * gelu_ref(x[r * 2 * f + f + j]);
        }
    }
    y
}

// norm


/// CPU reference: `x (B, P, C)` -> GroupNorm with G groups (biased variance).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_ref(x: &[f32], b: usize, p: usize, c: usize, groups: usize, gamma: &[f32], beta: &[f32], eps: f32, silu: bool) -> Vec<f32> {
    let cg = c / groups;
    let mut y = vec![0.0; x.len()];
    for n in 0..b {
        for g in 0..groups {
            let idx = |pix: usize, k: usize| (n * p + pix) * c + g * cg + k;
            let cnt = (p * cg) as f64;
            let mean: f64 = (0..p).flat_map(|pix| (0..cg).map(move |k| (pix, k))).map(|(pix, k)| x[idx(pix, k)] as f64).sum::<f64>() / cnt;
            let var: f64 = (0..p).flat_map(|pix| (0..cg).map(move |k| (pix, k))).map(|(pix, k)| (x[idx(pix, k)] as f64 - mean).powi(2)).sum::<f64>() / cnt;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for pix in 0..p {
                for k in 0..cg {
                    let ch = g * cg + k;
                    let v = ((x[idx(pix, k)] as f64 - mean) * inv * gamma[ch] as f64 + beta[ch] as f64) as f32;
                    y[idx(pix, k)] = if silu { v / (1.0 + (-v).exp()) } else { v };
                }
            }
        }
    }
    y
}

/// CPU reference: `x (R, C)` -> LayerNorm per row.
pub fn layer_norm_ref(x: &[f32], c: usize, gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    x.chunks(c)
        .flat_map(|row| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            row.iter().enumerate().map(move |(i, &v)| ((v as f64 - mean) * inv * gamma[i] as f64 + beta[i] as f64) as f32).collect::<Vec<_>>()
        })
        .collect()
}

// resample


/// CPU reference: `x (B, H, W, C) -> (B, 2H, 2W, C)`.
pub fn upsample2x_ref(x: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0.0; b * 4 * h * w * c];
    for n in 0..b {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                for k in 0..c {
                    y[((n * 2 * h + oy) * 2 * w + ox) * c + k] = x[((n * h + oy / 2) * w + ox / 2) * c + k];
                }
            }
        }
    }
    y
}

/// CPU reference: `(P, Ca) ++ (P, Cb) -> (P, Ca + Cb)`.
pub fn concat_ref(a: &[f32], ca: usize, b: &[f32], cb: usize) -> Vec<f32> {
    let p = a.len() / ca.max(1);
    let mut y = Vec::with_capacity(a.len() + b.len());
    for i in 0..p {
        y.extend_from_slice(&a[i * ca..(i + 1) * ca]);
        y.extend_from_slice(&b[i * cb..(i + 1) * cb]);
    }
    y
}

// softmax


/// CPU reference: `x (R, N)` -> softmax of each row of `scale * x`.
pub fn softmax_ref(x: &[f32], n: usize, scale: f32) -> Vec<f32> {
    x.chunks(n)
        .flat_map(|row| {
            let m = row.iter().map(|&v| (v * scale) as f64).fold(f64::MIN, f64::max);
            let e: Vec<f64> = row.iter().map(|&v| ((v * scale) as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}

// timestep


/// CPU reference: `t (B)` -> `(B, dim)`.
pub fn timestep_embedding_ref(t: &[f32], dim: usize, flip_sin_to_cos: bool, shift: f32) -> Vec<f32> {
    let half = dim / 2;
    let mut y = vec![0.0; t.len() * dim];
    for (b, &tv) in t.iter().enumerate() {
        for j in 0..half {
            let f = (-(10000f64.ln()) * j as f64 / (half as f64 - shift as f64)).exp();
            let a = tv as f64 * f;
            let (first, second) = if flip_sin_to_cos { (a.cos(), a.sin()) } else { (a.sin(), a.cos()) };
            y[b * dim + j] = first as f32;
            y[b * dim + half + j] = second as f32;
        }
    }
    y
}

