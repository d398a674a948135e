//! PNDM with `skip_prk_steps` (pseudo linear multistep, Liu et al. 2022), as diffusers'
//! PNDMScheduler with SD v1.5's scheduler_config: the timesteps repeat the second one
//! (50 steps: 981, 961, 961, 941, ..., 1: 51 entries); the first two calls form a
//! second-order (Heun-like) start from the same sample, later calls combine the last up to
//! four noise predictions with the Adams-Bashforth weights (1; 3, -1; 23, -16, 5; 55, -59,
//! 37, -9).

use super::Schedule;

/// A PNDM sampler; it keeps the previous noise predictions, so use one per run.
#[derive(Debug, Clone)]
pub struct Pndm {
    /// The noise schedule.
    pub schedule: Schedule,
    /// Inference steps the timesteps were spaced for.
    pub steps: usize,
    ets: Vec<Vec<f64>>,
    counter: usize,
    cur_sample: Option<Vec<f32>>,
}

impl Pndm {
    /// PNDM over `steps` inference steps.
    pub fn new(schedule: Schedule, steps: usize) -> Self {
        Pndm { schedule, steps, ets: Vec::new(), counter: 0, cur_sample: None }
    }

    /// The timesteps to call [`Pndm::step`] with, in order.
    pub fn timesteps(&self) -> Vec<usize> {
        let t = self.schedule.timesteps(self.steps); // descending
        if t.len() < 2 {
            return t;
        }
        let mut out = vec![t[0], t[1], t[1]];
        out.extend_from_slice(&t[2..]);
        out
    }

    /// img2img: the timesteps that remain for `strength` (the first `steps - steps*strength`
    /// entries are skipped, as StableDiffusionImg2ImgPipeline does with order 1).
    pub fn img2img_timesteps(&self, strength: f64) -> Vec<usize> {
        let all = self.timesteps();
        let init = ((self.steps as f64 * strength) as usize).min(self.steps);
        all[self.steps - init..].to_vec()
    }

    /// One call at timestep `t` with the model's noise prediction `eps` for `sample`.
    pub fn step(&mut self, eps: &[f32], t: usize, sample: &[f32]) -> Vec<f32> {
        let ratio = self.schedule.train_steps() / self.steps.max(1);
        let (mut t, mut prev) = (t as isize, t as isize - ratio as isize);
        let e: Vec<f64> = eps.iter().map(|&v| v as f64).collect();
        if self.counter != 1 {
            if self.ets.len() > 3 {
                self.ets.remove(0);
            }
            self.ets.push(e.clone());
        } else {
            prev = t;
            t += ratio as isize;
        }
        let n = self.ets.len();
        let mut sample = sample.to_vec();
        let model: Vec<f64> = if n == 1 && self.counter == 0 {
            self.cur_sample = Some(sample.clone());
            e
        } else if n == 1 && self.counter == 1 {
            sample = self.cur_sample.take().unwrap_or(sample);
            e.iter().zip(&self.ets[0]).map(|(a, b)| (a + b) / 2.0).collect()
        } else {
            let w: &[f64] = match n {
                2 => &[3.0 / 2.0, -1.0 / 2.0],
                3 => &[23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0],
                _ => &[55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
            };
            (0..e.len()).map(|i| w.iter().enumerate().map(|(k, wk)| wk * self.ets[n - 1 - k][i]).sum()).collect()
        };
        self.counter += 1;
        let s = &self.schedule;
        let a_t = s.alphas_cumprod[t as usize];
        let a_prev = if prev >= 0 { s.alphas_cumprod[prev as usize] } else { s.final_alpha_cumprod };
        let (b_t, b_prev) = (1.0 - a_t, 1.0 - a_prev);
        let sample_coeff = (a_prev / a_t).sqrt();
        let denom = a_t * b_prev.sqrt() + (a_t * b_t * a_prev).sqrt();
        sample.iter().zip(&model).map(|(&x, &m)| (sample_coeff * x as f64 - (a_prev - a_t) * m / denom) as f32).collect()
    }
}
