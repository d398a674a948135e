//! Mental imagery trials: the simulated subject imagines some of the held-out photos and new
//! drawn shapes and letters (Shen, Horikawa, Majima & Kamitani 2019, second experiment).
//!
//! What the literature reports, and how it is modelled:
//! - Imagery drives early visual cortex (V1-V3) much more weakly than seeing, and what it
//!   carries there is coarse: Naselaris et al. (2015, NeuroImage 105) identified imagined
//!   artworks from early visual activity with encoding models fitted to perception (so the
//!   retinotopic tuning survives, at a much lower signal); Breedlove et al. (2020, Curr Biol 30)
//!   found imagery's receptive fields in early areas larger and its spatial-frequency tuning
//!   shifted to lower frequencies, with imagery and perception codes converging up the
//!   hierarchy. Model: early visual voxels respond to a low-passed copy of the imagined image
//!   (Gaussian, sigma [`ImagerySettings::blur`] of the side) with their signal scaled by
//!   [`ImagerySettings::early_gain`] (0.25) while the trial noise stays as in perception, so
//!   their single-trial SNR is a quarter of seeing's.
//! - Higher visual cortex is closer to perception: Horikawa & Kamitani (2017, Nat Commun 8)
//!   decoded imagined objects' DNN features better from higher visual areas and for higher
//!   layers than from V1-V3 and low layers. Model: higher visual voxels keep their semantic
//!   and coarse drive at [`ImagerySettings::higher_gain`] (0.7) of perception.
//! - Shen et al. (2019) reconstructed imagined shapes and colours recognisably but imagined
//!   natural photos hardly at all; with these factors the simulation asks the same of percept.
//!
//! The factors are this simulation's choices within those reports, not values measured in
//! them. Imagined stimuli do not change the perception trials: responses are standardised on
//! the seen stimuli alone, and the imagery draws use their own random stream.

use rand_chacha::ChaCha8Rng;

use super::{draw, Stimulus};
use crate::error::{Error, Result};
use crate::io::image::Rgb;
use cortex::{Area, Voxel};

use super::cortex;

/// The imagery part of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagerySettings {
    /// Held-out test photos imagined (the first ones of the test split; at most `test_photos`).
    pub photos: usize,
    /// New drawn shapes imagined (never training stimuli).
    pub shapes: usize,
    /// New drawn letters imagined.
    pub letters: usize,
    /// Trials per imagined image.
    pub repeats: usize,
    /// Signal of early visual voxels during imagery, as a share of perception's (0-1).
    pub early_gain: f32,
    /// Signal of higher visual voxels during imagery, as a share of perception's (0-1).
    pub higher_gain: f32,
    /// Sigma of the low-pass the early areas see the imagined image through, as a share of the
    /// stimulus side (0-0.25).
    pub blur: f32,
}

impl Default for ImagerySettings {
    fn default() -> Self {
        ImagerySettings { photos: 6, shapes: 6, letters: 4, repeats: 4, early_gain: 0.25, higher_gain: 0.7, blur: 1.0 / 32.0 }
    }
}

impl ImagerySettings {
    /// Imagined images.
    pub fn images(&self) -> usize {
        self.photos.saturating_add(self.shapes).saturating_add(self.letters)
    }

    /// Imagery trials.
    pub fn trials(&self) -> usize {
        self.images().saturating_mul(self.repeats)
    }

    /// Checks the settings against the test split's size.
    pub fn check(&self, test_photos: usize) -> Result<()> {
        if self.photos > test_photos {
            return Err(Error::Invalid(format!("{} imagined photos asked for but only {test_photos} photos are held out", self.photos)));
        }
        if self.images() > 0 && self.repeats == 0 {
            return Err(Error::Invalid("imagery repeats must be at least 1".into()));
        }
        let share = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !share(self.early_gain) || !share(self.higher_gain) {
            return Err(Error::Invalid(format!("imagery gains {} (early) and {} (higher) must be between 0 and 1", self.early_gain, self.higher_gain)));
        }
        if !(self.blur.is_finite() && (0.0..=0.25).contains(&self.blur)) {
            return Err(Error::Invalid(format!("imagery blur {} must be between 0 and 0.25 of the side", self.blur)));
        }
        Ok(())
    }

    /// The key = value lines of [`super::Settings::describe`].
    pub fn describe(&self) -> String {
        format!(
            "imagery_photos = {}\nimagery_shapes = {}\nimagery_letters = {}\nimagery_repeats = {}\nimagery_early_gain = {}\nimagery_higher_gain = {}\nimagery_blur = {}\n",
            self.photos, self.shapes, self.letters, self.repeats, self.early_gain, self.higher_gain, self.blur
        )
    }

    /// The share of a voxel's perception signal it keeps during imagery.
    pub fn gain(&self, voxel: &Voxel) -> f32 {
        match voxel.area {
            Area::Early(_) => self.early_gain,
            Area::Higher => self.higher_gain,
        }
    }
}

/// The imagined images (what the subject was asked to imagine, saved as `imagery_NNN.png`):
/// the first `photos` test photos, then new shapes and letters drawn with `rng`.
pub fn stimuli(s: &ImagerySettings, test: &[Stimulus], size: usize, rng: &mut ChaCha8Rng) -> Vec<Stimulus> {
    let mut out: Vec<Stimulus> = Vec::with_capacity(s.images());
    for t in test.iter().take(s.photos) {
        out.push(Stimulus { name: format!("imagery_{:03}.png", out.len()), how: format!("imagined {}", t.name), ..t.clone() });
    }
    for k in 0..s.shapes + s.letters {
        let (image, caption) = if k < s.shapes { draw::shape(size, rng) } else { draw::letter(size, rng) };
        let how = if k < s.shapes { "imagined shape" } else { "imagined letter" };
        out.push(Stimulus { image, name: format!("imagery_{:03}.png", out.len()), captions: vec![caption], source: "drawn".into(), how: how.into() });
    }
    out
}

/// What the cortex model is shown for an imagined image: the image low-passed with a Gaussian
/// of `blur` of its side.
pub fn as_imagined(img: &Rgb, blur: f32) -> Rgb {
    let sigma = blur * img.width as f32;
    if sigma <= 0.0 {
        return img.clone();
    }
    Rgb::from_image(&image::imageops::blur(&img.to_image(), sigma))
}

/// The kind of an imagined stimulus: "photo", "shape" or "letter" (from its `how`).
pub fn kind(stimulus: &Stimulus) -> &'static str {
    match stimulus.how.as_str() {
        "imagined shape" => "shape",
        "imagined letter" => "letter",
        _ => "photo",
    }
}
