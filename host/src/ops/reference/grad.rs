//! CPU references of the input gradients (ops::grad, ops::resize): the plain scatter loops of
//! each forward's chain rule (f64 sums), not the transposed-convolution route the kernels take.

use crate::ops::Act;

/// `g * act'(y)`, `y` the forward's output (any shape).
pub fn act_backward_ref(g: &[f32], y: &[f32], act: Act) -> Vec<f32> {
    g.iter()
        .zip(y)
        .map(|(g, y)| match act {
            Act::Relu if *y <= 0.0 => 0.0,
            Act::Relu6 if *y <= 0.0 || *y >= 6.0 => 0.0,
            _ => *g,
        })
        .collect()
}

/// `g * (1 - tanh(x / c)^2)` (any shape).
pub fn tanh_clamp_backward_ref(g: &[f32], x: &[f32], c: f32) -> Vec<f32> {
    g.iter().zip(x).map(|(g, x)| g * (1.0 - (x / c).tanh().powi(2))).collect()
}

/// `g (B, 2H, 2W, C) -> (B, H, W, C)`, each 2x2 summed.
pub fn upsample2x_backward_ref(g: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut dx = vec![0.0; b * h * w * c];
    for n in 0..b {
        for y in 0..2 * h {
            for x in 0..2 * w {
                for ch in 0..c {
                    dx[((n * h + y / 2) * w + x / 2) * c + ch] += g[((n * 2 * h + y) * 2 * w + x) * c + ch];
                }
            }
        }
    }
    dx
}

/// The global mean's gradient: `g (B, C) -> (B, h, w, C)`.
pub fn global_mean_backward_ref(g: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    (0..b * h * w * c).map(|i| g[(i / (h * w * c)) * c + i % c] / (h * w) as f32).collect()
}

/// A convolution's input gradient by scattering: `g (B, Ho, Wo, Cout)` (after the activation's
/// backward), `w (Cout, Cin, kh, kw)`, input `xs = (B, H, W, Cin)`, stride and (top, left)
/// padding -> `(B, H, W, Cin)`. `depthwise` = groups of one channel (`w (C, 1, kh, kw)`).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward_ref(g: &[f32], gs: [usize; 4], w: &[f32], ws: [usize; 4], xs: [usize; 4], stride: usize, (top, left): (usize, usize), depthwise: bool) -> Vec<f32> {
    let [b, h, wd, cin] = xs;
    let [_, ho, wo, cout] = gs;
    let [_, wcin, kh, kw] = ws;
    let mut dx = vec![0.0f64; b * h * wd * cin];
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for o in 0..cout {
                    let gv = g[((n * ho + oy) * wo + ox) * cout + o] as f64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * stride + ky) as isize - top as isize;
                            let ix = (ox * stride + kx) as isize - left as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            let at = ((n * h + iy as usize) * wd + ix as usize) * cin;
                            if depthwise {
                                dx[at + o] += gv * w[(o * kh + ky) * kw + kx] as f64;
                            } else {
                                for i in 0..wcin {
                                    dx[at + i] += gv * w[((o * wcin + i) * kh + ky) * kw + kx] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// A separable square resize by the dense matrix `m (n_out, n_in)`: `x (B, n_in, n_in, C) ->
/// (B, n_out, n_out, C)`; with `transpose`, `m^T` (the gradient, `n_out` <-> `n_in`).
pub fn resize_ref(x: &[f32], b: usize, c: usize, m: &[f32], n_out: usize, n_in: usize, transpose: bool) -> Vec<f32> {
    let (no, ni) = if transpose { (n_in, n_out) } else { (n_out, n_in) };
    let at = |j: usize, i: usize| if transpose { m[i * n_in + j] } else { m[j * n_in + i] } as f64;
    let mut y = vec![0.0; b * no * no * c];
    for n in 0..b {
        for oy in 0..no {
            for ox in 0..no {
                for ch in 0..c {
                    let mut s = 0.0f64;
                    for iy in 0..ni {
                        let wy = at(oy, iy);
                        if wy == 0.0 {
                            continue;
                        }
                        for ix in 0..ni {
                            s += wy * at(ox, ix) * x[((n * ni + iy) * ni + ix) * c + ch] as f64;
                        }
                    }
                    y[((n * no + oy) * no + ox) * c + ch] = s as f32;
                }
            }
        }
    }
    y
}

/// Max pooling's gradient: `g (B, Ho, Wo, C)`, the forward's input `x (B, H, W, C)` ->
/// `(B, H, W, C)`, each window's gradient to its first maximum (scan order).
pub fn max_pool_backward_ref(g: &[f32], x: &[f32], [b, h, w, c]: [usize; 4], k: usize, stride: usize, pad: usize) -> Vec<f32> {
    let (ho, wo) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
    let mut dx = vec![0.0; x.len()];
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut best: Option<(f32, usize)> = None;
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((oy * stride + ky) as isize - pad as isize, (ox * stride + kx) as isize - pad as isize);
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let j = ((n * h + iy as usize) * w + ix as usize) * c + ch;
                            if best.is_none_or(|(m, _)| x[j] > m) {
                                best = Some((x[j], j));
                            }
                        }
                    }
                    if let Some((_, j)) = best {
                        dx[j] += g[((n * ho + oy) * wo + ox) * c + ch];
                    }
                }
            }
        }
    }
    dx
}

/// Adaptive average pooling's gradient: `g (B, ho, wo, C)` -> `(B, h, w, C)` (torchvision's
/// windows `floor(i H / ho) .. ceil((i + 1) H / ho)`).
pub fn adaptive_avg_pool_backward_ref(g: &[f32], [b, ho, wo, c]: [usize; 4], h: usize, w: usize) -> Vec<f32> {
    let mut dx = vec![0.0; b * h * w * c];
    for n in 0..b {
        for oy in 0..ho {
            let (y0, y1) = (oy * h / ho, ((oy + 1) * h).div_ceil(ho));
            for ox in 0..wo {
                let (x0, x1) = (ox * w / wo, ((ox + 1) * w).div_ceil(wo));
                let area = ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        for ch in 0..c {
                            dx[((n * h + iy) * w + ix) * c + ch] += g[((n * ho + oy) * wo + ox) * c + ch] / area;
                        }
                    }
                }
            }
        }
    }
    dx
}
