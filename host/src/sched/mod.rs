//! Diffusion schedulers with Stable Diffusion v1's settings (scheduler/scheduler_config.json):
//! scaled-linear betas from 0.00085 to 0.012 over 1000 training steps, steps_offset 1,
//! set_alpha_to_one false, no sample clipping.

pub mod ddim;
pub mod pndm;

/// The noise schedule shared by the schedulers.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Cumulative products of (1 - beta), one per training timestep.
    pub alphas_cumprod: Vec<f64>,
    /// Added to every inference timestep (SD v1: 1).
    pub steps_offset: usize,
    /// alpha_cumprod used "before" timestep 0: 1, or `alphas_cumprod[0]` (SD v1).
    pub final_alpha_cumprod: f64,
}

impl Schedule {
    /// SD v1's schedule.
    pub fn sd_v1() -> Self {
        Self::scaled_linear(0.00085, 0.012, 1000, 1, false)
    }

    /// betas = linspace(sqrt(start), sqrt(end), n)^2, as diffusers' "scaled_linear".
    pub fn scaled_linear(beta_start: f64, beta_end: f64, n: usize, steps_offset: usize, set_alpha_to_one: bool) -> Self {
        let (a, b) = (beta_start.sqrt(), beta_end.sqrt());
        let mut cum = 1.0;
        let alphas_cumprod: Vec<f64> = (0..n)
            .map(|i| {
                let s = a + (b - a) * i as f64 / (n - 1) as f64;
                cum *= 1.0 - s * s;
                cum
            })
            .collect();
        let final_alpha_cumprod = if set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        Schedule { alphas_cumprod, steps_offset, final_alpha_cumprod }
    }

    /// Number of training timesteps.
    pub fn train_steps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// diffusers' "leading" spacing: `steps` timesteps, evenly spaced, descending, plus the
    /// offset (SD v1, 50 steps: 981, 961, ..., 1).
    pub fn timesteps(&self, steps: usize) -> Vec<usize> {
        let ratio = self.train_steps() / steps.max(1);
        (0..steps).rev().map(|i| i * ratio + self.steps_offset).collect()
    }

    /// img2img: the timesteps that remain for `strength` (SD v1, 50 steps, 0.8: 781, ..., 1).
    pub fn img2img_timesteps(&self, steps: usize, strength: f64) -> Vec<usize> {
        let all = self.timesteps(steps);
        let init = ((steps as f64 * strength) as usize).min(steps);
        all[steps - init..].to_vec()
    }

    /// `sqrt(a_t) x0 + sqrt(1 - a_t) noise`: the init latent noised to timestep t.
    pub fn add_noise(&self, x0: &[f32], noise: &[f32], t: usize) -> Vec<f32> {
        let a = self.alphas_cumprod[t];
        x0.iter().zip(noise).map(|(&x, &n)| (a.sqrt() * x as f64 + (1.0 - a).sqrt() * n as f64) as f32).collect()
    }
}

/// `n` standard normal values from a seeded ChaCha8 stream (Box-Muller). Not PyTorch's
/// generator: to reproduce a diffusers run exactly, pass its noise as a file instead.
pub fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}
