//! CPU references of the feature networks' ops: depthwise convolution and pooling.

use crate::ops::Act;

// depthwise


/// CPU reference of [`depthwise`](crate::ops::depthwise::depthwise). `x (B, H, W, C)`,
/// `w (C, 1, kh, kw)` (PyTorch layout), `bias (C)` -> `(B, Ho, Wo, C)`.
pub fn depthwise_ref(x: &[f32], xs: [usize; 4], w: &[f32], k: (usize, usize), bias: Option<&[f32]>, spec: crate::ops::depthwise::DepthwiseSpec) -> (Vec<f32>, [usize; 4]) {
    let [b, h, wd, c] = xs;
    let (kh, kw) = k;
    let (top, left, bottom, right) = spec.pad;
    let ho = (h + top + bottom - kh) / spec.stride + 1;
    let wo = (wd + left + right - kw) / spec.stride + 1;
    let mut y = vec![0.0; b * ho * wo * c];
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut s = bias.map_or(0.0, |bb| bb[ch] as f64);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * spec.stride + ky) as isize - top as isize;
                            let ix = (ox * spec.stride + kx) as isize - left as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            s += x[((n * h + iy as usize) * wd + ix as usize) * c + ch] as f64 * w[(ch * kh + ky) * kw + kx] as f64;
                        }
                    }
                    let v = s as f32;
                    y[((n * ho + oy) * wo + ox) * c + ch] = match spec.act {
                        Act::None => v,
                        Act::Relu => v.max(0.0),
                        Act::Silu => v / (1.0 + (-v).exp()),
                        Act::Relu6 => v.clamp(0.0, 6.0),
                    };
                }
            }
        }
    }
    (y, [b, ho, wo, c])
}

// pool


/// CPU reference of [`max_pool`](crate::ops::pool::max_pool): `x (B, H, W, C) -> (B, Ho, Wo, C)`.
pub fn max_pool_ref(x: &[f32], [b, h, w, c]: [usize; 4], k: usize, stride: usize, pad: usize) -> (Vec<f32>, [usize; 4]) {
    let (ho, wo) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
    let mut y = vec![0.0; b * ho * wo * c];
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                m = m.max(x[((n * h + iy as usize) * w + ix as usize) * c + ch]);
                            }
                        }
                    }
                    y[((n * ho + oy) * wo + ox) * c + ch] = m;
                }
            }
        }
    }
    (y, [b, ho, wo, c])
}

/// CPU reference of [`adaptive_avg_pool`](crate::ops::pool::adaptive_avg_pool):
/// `x (B, H, W, C) -> (B, ho, wo, C)`, windows `floor(i H / ho) .. ceil((i + 1) H / ho)`.
pub fn adaptive_avg_pool_ref(x: &[f32], [b, h, w, c]: [usize; 4], ho: usize, wo: usize) -> Vec<f32> {
    let mut y = vec![0.0; b * ho * wo * c];
    for n in 0..b {
        for oy in 0..ho {
            let (y0, y1) = (oy * h / ho, ((oy + 1) * h).div_ceil(ho));
            for ox in 0..wo {
                let (x0, x1) = (ox * w / wo, ((ox + 1) * w).div_ceil(wo));
                for ch in 0..c {
                    let mut s = 0.0f64;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            s += x[((n * h + iy) * w + ix) * c + ch] as f64;
                        }
                    }
                    y[((n * ho + oy) * wo + ox) * c + ch] = (s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
                }
            }
        }
    }
    y
}
