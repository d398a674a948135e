//! Optimisers for deep image reconstruction, over a host-side vector `x (batch, dim)` and an
//! objective that returns the loss of each image and `d loss / d x`. Every image keeps its own
//! state (momentum, Adam moments) and its own gradient normalisation, so a batch gives the same
//! result as its images one at a time.
//!
//! - [`Method::Dgn`]: the Kamitani lab's gradient descent through a deep generator network
//!   (`icnn_dgn_gd.py` of KamitaniLab/icnn): the gradient divided by its mean absolute value,
//!   momentum 0.9, the learning rate falling linearly from `lr_start` to `lr_end` over the
//!   iterations (`lr_t = lr_start + t (lr_end - lr_start) / T`), and after each step an L2
//!   decay `x <- (1 - decay) x` (0.01) of the latent. Their bounds on the latent (0..100 for
//!   their generator's fc7 input) have no counterpart for TAESD's latent and are left out.
//! - [`Method::Adam`]: Adam (Kingma & Ba 2015), β1 0.9, β2 0.999, ε 1e-8, constant rate.
//! - [`Method::PixelGd`]: the lab's pixel gradient descent (`icnn_gd.py`): normalised gradient,
//!   momentum 0.9, rate falling linearly from `lr_start` (2 grey levels of 255, here 2/255 on
//!   [0, 1] pixels) to ~0, a decay towards the mean image falling from 0.2 to ~0, and a Gaussian
//!   blur of each channel between steps with sigma falling linearly from 2 to 0.5 pixels.
//!
//! Optionally an anchor `lambda ||x - x0||^2` (per image) keeps `x` near a start `x0` (the z
//! decoder's prediction): added to the loss and its gradient before the normalisation.

use crate::error::{Error, Result};
use crate::progress::Progress;

/// The loss of each image and `d loss / d x` (same shape as `x`) at `x (batch, dim)`.
pub type Objective<'a> = dyn FnMut(&[f32]) -> Result<(Vec<f32>, Vec<f32>)> + 'a;

/// The lab's gradient descent with momentum (their DGN setting; rates are ours, see
/// [`Dgn::default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dgn {
    /// Rate at the first iteration.
    pub lr_start: f32,
    /// Rate the schedule falls to (reached after the last iteration).
    pub lr_end: f32,
    /// Momentum (theirs: 0.9).
    pub momentum: f32,
    /// L2 decay of the latent after each step (theirs: 0.01).
    pub decay: f32,
}

impl Default for Dgn {
    /// Momentum and decay are theirs; their starting rate of 2 diverges with TAESD's latent
    /// (the PyTorch experiment), 0.02 converges.
    fn default() -> Self {
        Dgn { lr_start: 0.02, lr_end: 1e-10, momentum: 0.9, decay: 0.01 }
    }
}

/// Adam with a constant rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// Step size.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
}

impl Default for Adam {
    fn default() -> Self {
        Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// The lab's pixel gradient descent with a blur between steps, on `(side, side, channels)`
/// NHWC images in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelGd {
    /// Image side in pixels.
    pub side: usize,
    /// Channels (3).
    pub channels: usize,
    /// Rate at the first iteration (theirs: 2 on 0-255 pixels, so 2/255 here).
    pub lr_start: f32,
    /// Rate at the end (theirs: 1e-10).
    pub lr_end: f32,
    /// Momentum (theirs: 0.9).
    pub momentum: f32,
    /// Decay towards the start image at the first iteration (theirs: 0.2 towards the mean).
    pub decay_start: f32,
    /// Decay at the end (theirs: 1e-10).
    pub decay_end: f32,
    /// Blur sigma in pixels at the first iteration (theirs: 2).
    pub sigma_start: f32,
    /// Blur sigma at the end (theirs: 0.5).
    pub sigma_end: f32,
}

impl PixelGd {
    /// Their settings for `side x side x 3` images.
    pub fn new(side: usize) -> Self {
        PixelGd { side, channels: 3, lr_start: 2.0 / 255.0, lr_end: 1e-10, momentum: 0.9, decay_start: 0.2, decay_end: 1e-10, sigma_start: 2.0, sigma_end: 0.5 }
    }
}

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The lab's SGD with momentum through a generator.
    Dgn(Dgn),
    /// Adam.
    Adam(Adam),
    /// The lab's pixel descent with blur.
    PixelGd(PixelGd),
}

/// One optimisation run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The optimiser.
    pub method: Method,
    /// Iterations (gradient evaluations).
    pub iterations: usize,
    /// Weight of the anchor `lambda ||x - x0||^2` (0: none).
    pub anchor: f32,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The objective's loss per iteration and image (without the anchor), at the `x` the
    /// iteration started from: `(iterations, batch)`.
    pub loss: Vec<Vec<f32>>,
}

/// The linear schedule of the lab's code: `start + t (end - start) / n`.
pub fn linear(start: f32, end: f32, t: usize, n: usize) -> f32 {
    start + t as f32 * (end - start) / n.max(1) as f32
}

/// Optimises `x (batch, dim)` in place from its current value; `x0` (same shape) is the
/// anchor's centre and, for [`Method::PixelGd`], the image the decay pulls towards (it
/// defaults to the start). One progress step per iteration.
pub fn optimise(x: &mut [f32], batch: usize, settings: &Settings, x0: Option<&[f32]>, objective: &mut Objective<'_>, progress: &dyn Progress) -> Result<Trace> {
    if batch == 0 || x.is_empty() || !x.len().is_multiple_of(batch) {
        return Err(Error::Shape(format!("optimiser: {} values are not a batch of {batch} non-empty vectors", x.len())));
    }
    let dim = x.len() / batch;
    if let Some(c) = x0 {
        if c.len() != x.len() {
            return Err(Error::Shape(format!("optimiser: the anchor has {} values, x has {}", c.len(), x.len())));
        }
    }
    if !(settings.anchor.is_finite() && settings.anchor >= 0.0) {
        return Err(Error::Invalid(format!("anchor weight {} must be finite and >= 0", settings.anchor)));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!("optimiser: the start value of image {} is not finite (element {})", i / dim, i % dim)));
    }
    check_method(&settings.method, dim)?;
    let centre: Vec<f32> = x0.map_or_else(|| x.to_vec(), <[f32]>::to_vec);
    let n = settings.iterations;
    let mut velocity = vec![0f32; x.len()];
    let mut second = vec![0f32; x.len()];
    let mut trace = Trace { loss: Vec::with_capacity(n) };
    progress.set_len(n as u64);
    for t in 0..n {
        let (loss, mut grad) = objective(x)?;
        if loss.len() != batch || grad.len() != x.len() {
            return Err(Error::Shape(format!("objective returned {} losses and {} gradient values for a batch of {batch} x {dim}", loss.len(), grad.len())));
        }
        for (b, l) in loss.iter().enumerate() {
            let g = &grad[b * dim..(b + 1) * dim];
            if !l.is_finite() || g.iter().any(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!("iteration {t}: the loss or gradient of image {b} is not finite (loss {l}); a smaller learning rate may help")));
            }
        }
        trace.loss.push(loss);
        if settings.anchor > 0.0 && x0.is_some() {
            let a = 2.0 * settings.anchor;
            grad.iter_mut().zip(x.iter().zip(&centre)).for_each(|(g, (v, c))| *g += a * (v - c));
        }
        match settings.method {
            Method::Dgn(s) => {
                let lr = linear(s.lr_start, s.lr_end, t, n);
                normalise(&mut grad, dim);
                for i in 0..x.len() {
                    velocity[i] = s.momentum * velocity[i] + grad[i];
                    x[i] = (1.0 - s.decay) * (x[i] - lr * velocity[i]);
                }
            }
            Method::Adam(s) => {
                let (c1, c2) = (1.0 - s.beta1.powi(t as i32 + 1), 1.0 - s.beta2.powi(t as i32 + 1));
                for i in 0..x.len() {
                    velocity[i] = s.beta1 * velocity[i] + (1.0 - s.beta1) * grad[i];
                    second[i] = s.beta2 * second[i] + (1.0 - s.beta2) * grad[i] * grad[i];
                    x[i] -= s.lr * (velocity[i] / c1) / ((second[i] / c2).sqrt() + s.eps);
                }
            }
            Method::PixelGd(s) => {
                let lr = linear(s.lr_start, s.lr_end, t, n);
                let decay = linear(s.decay_start, s.decay_end, t, n);
                let sigma = linear(s.sigma_start, s.sigma_end, t, n);
                normalise(&mut grad, dim);
                for i in 0..x.len() {
                    velocity[i] = s.momentum * velocity[i] + grad[i];
                    x[i] = centre[i] + (1.0 - decay) * (x[i] - lr * velocity[i] - centre[i]);
                }
                for img in x.chunks_exact_mut(dim) {
                    blur(img, s.side, s.channels, sigma);
                }
            }
        }
        progress.inc(1);
    }
    Ok(trace)
}

fn check_method(method: &Method, dim: usize) -> Result<()> {
    let ok = |v: f32| v.is_finite() && v >= 0.0;
    let fine = match *method {
        Method::Dgn(s) => ok(s.lr_start) && ok(s.lr_end) && (0.0..1.0).contains(&s.momentum) && (0.0..1.0).contains(&s.decay),
        Method::Adam(s) => ok(s.lr) && (0.0..1.0).contains(&s.beta1) && (0.0..1.0).contains(&s.beta2) && s.eps > 0.0,
        Method::PixelGd(s) => {
            if s.side * s.side * s.channels != dim {
                return Err(Error::Shape(format!("pixel descent: {} x {} x {} images are not {dim} values each", s.side, s.side, s.channels)));
            }
            ok(s.lr_start) && ok(s.lr_end) && (0.0..1.0).contains(&s.momentum) && (0.0..1.0).contains(&s.decay_start) && (0.0..1.0).contains(&s.decay_end) && ok(s.sigma_start) && ok(s.sigma_end)
        }
    };
    if fine {
        Ok(())
    } else {
        Err(Error::Invalid(format!("optimiser settings out of range: {method:?} (rates and sigmas finite and >= 0, momentum, betas and decays in [0, 1))")))
    }
}

/// Divides each image's gradient by its mean absolute value (left alone when that is 0).
pub fn normalise(grad: &mut [f32], dim: usize) {
    for g in grad.chunks_exact_mut(dim) {
        let m = g.iter().map(|v| v.abs()).sum::<f32>() / dim as f32;
        if m > 0.0 {
            g.iter_mut().for_each(|v| *v /= m);
        }
    }
}

/// Gaussian blur of each channel of one `(side, side, channels)` image, separable, taps to
/// 4 sigma, borders reflected with the edge repeated (`c b a | a b c d | d c b`, scipy's `reflect`, as the lab's `gaussian_blur`); sigma 0 leaves it alone.
pub fn blur(img: &mut [f32], side: usize, channels: usize, sigma: f32) {
    if sigma <= 0.0 || side < 2 {
        return;
    }
    let r = (4.0 * sigma + 0.5) as isize;
    let taps: Vec<f32> = (-r..=r).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / total).collect();
    let n = side as isize;
    let reflect = |i: isize| -> usize {
        let period = 2 * n;
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - 1 - m }) as usize
    };
    let mut tmp = vec![0f32; img.len()];
    // Along x: img -> tmp; along y: tmp -> img.
    for y in 0..side {
        for x in 0..side {
            for c in 0..channels {
                let mut acc = 0f32;
                for (k, w) in taps.iter().enumerate() {
                    acc += w * img[(y * side + reflect(x as isize + k as isize - r)) * channels + c];
                }
                tmp[(y * side + x) * channels + c] = acc;
            }
        }
    }
    for y in 0..side {
        for x in 0..side {
            for c in 0..channels {
                let mut acc = 0f32;
                for (k, w) in taps.iter().enumerate() {
                    acc += w * tmp[(reflect(y as isize + k as isize - r) * side + x) * channels + c];
                }
                img[(y * side + x) * channels + c] = acc;
            }
        }
    }
}
