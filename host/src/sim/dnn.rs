//! The DNN drive of the simulated higher visual voxels. Each higher visual voxel responds, beside
//! its coarse content and word-space terms ([`super::cortex`]), to a fixed random linear
//! mixture of an ImageNet network's late features of the stimulus: the encoding-model account
//! of ventral/higher visual cortex, in which late layers of a deep network trained on object
//! recognition predict higher visual responses best (Yamins et al. 2014 PNAS; Güçlü & van
//! Gerven 2015 J Neurosci; Horikawa & Kamitani 2017 Nat Commun, who decode such features from
//! higher visual cortex). Without it the late layers of a feature network cannot be decoded
//! from the simulated subject at all.
//!
//! The network is **EfficientNet-Lite1** (`weights/efficientnet-lite1`), its `_avg_pooling`
//! output (1280 units, global), the image resized (bilinear) to [`DnnSettings::side`]. Lite1 is
//! deliberately neither the network that judges reconstructions (Lite0, `eval::features`) nor
//! deep image reconstruction's loss network (Lite2, `dir`). Caveat: all three are ImageNet
//! EfficientNets, so this subject's higher visual cortex is much closer to the loss network
//! than a human's would be; decoding and reconstruction from it are an optimistic case.
//!
//! The drive of voxel `v` over stimuli `s`: every feature z-scored over the seen stimuli (the
//! reference set, as [`super::cortex::responses_against`] standardises), then `t_v · z_s` with
//! `t_v` a Gaussian vector drawn from the subject's seed on its own ChaCha stream (stream 2: no
//! other draw of the subject moves), and the result standardised over the seen stimuli.
//! Imagined stimuli go through the same path (their images as the imagining cortex gets them)
//! and are scaled like the seen ones.

use std::path::{Path, PathBuf};

use faer::Mat;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::io::image::Rgb;
use crate::nn::efficientnet::EfficientNet;
use crate::progress::Progress;

/// The layer whose units drive the voxels.
pub const LAYER: &str = "_avg_pooling";
/// Images per forward pass.
const BATCH: usize = 16;

/// Settings of the DNN drive.
#[derive(Debug, Clone)]
pub struct DnnSettings {
    /// Share (0-1) of a higher visual voxel's signal variance from the DNN term; the rest is
    /// split 30:70 between coarse content and the word space as before. 0: the higher visual
    /// voxels are exactly those of a subject without this term (and no GPU is needed).
    pub share: f32,
    /// Side (px) the stimuli are resized to for the network.
    pub side: usize,
    /// Folder holding the network's `model.safetensors` (an EfficientNet-Lite).
    pub weights: PathBuf,
}

impl Default for DnnSettings {
    fn default() -> Self {
        DnnSettings { share: 0.5, side: 64, weights: crate::paths::shipped("weights/efficientnet-lite1") }
    }
}

impl DnnSettings {
    /// Refuses a share outside 0-1, a side the network cannot take, or (when the term is on)
    /// missing weights, naming the file.
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.share) {
            return Err(Error::Invalid(format!("higher visual DNN share {} must be between 0 and 1", self.share)));
        }
        if !(32..=512).contains(&self.side) {
            return Err(Error::Invalid(format!("DNN input side {} must be between 32 and 512 px", self.side)));
        }
        if self.share > 0.0 {
            let file = self.file();
            if !file.is_file() {
                return Err(Error::Invalid(format!("{}: not found; the higher visual voxels' DNN term (share {}) needs EfficientNet-Lite weights there (the shipped weights/efficientnet-lite1, or share 0)", file.display(), self.share)));
            }
        }
        Ok(())
    }

    /// The weights file.
    pub fn file(&self) -> PathBuf {
        self.weights.join("model.safetensors")
    }

    /// The settings as `key = value` lines.
    pub fn describe(&self) -> String {
        let net = self.weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let rest = 1.0 - self.share;
        format!(
            "higher_dnn_share = {}\nhigher_coarse_share = {}\nhigher_word_share = {}\nhigher_dnn_net = {net}\nhigher_dnn_layer = {LAYER}\nhigher_dnn_side = {}\n",
            self.share,
            0.3 * rest,
            0.7 * rest,
            self.side
        )
    }
}

/// `(images, units)` row-major: the `_avg_pooling` features of the network in `dir` for each
/// image resized to `side`, in batches; and the number of units.
pub fn features(gpu: &Gpu, dir: &Path, images: &[Rgb], side: usize, bar: &dyn Progress) -> Result<(Vec<f32>, usize)> {
    let net = EfficientNet::load(gpu, dir)?;
    bar.set_len(images.len() as u64);
    let mut out = Vec::new();
    for batch in images.chunks(BATCH) {
        let mut data = Vec::with_capacity(batch.len() * side * side * 3);
        for img in batch {
            data.extend_from_slice(&img.resized(side).data);
        }
        let x = Tensor::from_f32(gpu, &[batch.len(), side, side, 3], &data)?;
        let mut enc = gpu.encoder();
        let ys = net.forward_layers(&mut enc, &x, &[LAYER])?;
        drop(enc);
        out.extend(ys[0].to_vec(gpu)?);
        bar.inc(batch.len() as u64);
    }
    let units = out.len() / images.len().max(1);
    Ok((out, units))
}

/// The DNN term of the higher visual voxels: `drive (higher voxels, stimuli)` (in the order of
/// the higher visual voxels, see [`drive`]) and its share (0-1) of each higher
/// visual voxel's signal variance.
#[derive(Debug, Clone, Copy)]
pub struct DnnDrive<'a> {
    /// `(higher voxels, stimuli)`, each row standardised.
    pub drive: &'a [f32],
    /// Share of the signal variance.
    pub share: f32,
}

/// Each of `voxels` tuning vectors, `(voxels, units)` standard normal, from `rng`.
pub fn tuning(voxels: usize, units: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..voxels * units).map(|_| super::cortex::normal(rng)).collect()
}

/// The drive `(voxels, stimuli)` of features `(stimuli, units)` through `tuning (voxels, units)`:
/// features z-scored and each voxel's drive standardised over the first `reference` stimuli.
pub fn drive(features: &[f32], units: usize, tuning: &[f32], reference: usize) -> Vec<f32> {
    let ns = features.len() / units.max(1);
    let nv = tuning.len() / units.max(1);
    let reference = reference.clamp(1, ns.max(1));
    // (units, stimuli), each row z-scored over the reference.
    let mut z = vec![0f32; units * ns];
    for s in 0..ns {
        for u in 0..units {
            z[u * ns + s] = features[s * units + u];
        }
    }
    super::cortex::standardise_rows(&mut z, ns, reference);
    let t = Mat::from_fn(nv, units, |v, u| tuning[v * units + u]);
    let zm = Mat::from_fn(units, ns, |u, s| z[u * ns + s]);
    let d: Mat<f32> = &t * &zm;
    let mut out: Vec<f32> = (0..nv * ns).map(|i| d[(i / ns, i % ns)]).collect();
    super::cortex::standardise_rows(&mut out, ns, reference);
    out
}
