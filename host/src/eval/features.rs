//! Scores in the feature spaces of image networks, as the NSD reconstruction papers print
//! them: two-way identification at an early and a late layer of each judging network
//! (Brain-Diffuser's definition, [`two_way_vs_originals`]) and a feature distance
//! ([`correlation_distance`] of pooled features, as MindEye's EffNet-B column).
//!
//! Judges: EfficientNet-Lite0 (shipped, weights/efficientnet-lite0; early `_blocks.2`, late
//! `_avg_pooling`, distance on `_avg_pooling`) — named EffNet-Lite0, not EffNet-B, since it
//! is another network — and AlexNet when the user gives torchvision's weights (AlexNet(2) at
//! `features.4` and AlexNet(5) at `features.11`, as Brain-Diffuser and MindEye read them).
//! Images are resized (bilinear) to 256 x 256 and normalised with ImageNet's mean and std for
//! AlexNet (as MindEye's evaluation does), to 224 x 224 for EfficientNet-Lite (normalised as
//! the TF models do it, inside the model).

use std::path::Path;

use super::{correlation_distance, two_way_vs_originals};
use crate::error::Result;
use crate::gpu::{DType, Gpu, Tensor};
use crate::io::image::Rgb;
use crate::nn::classic::ClassicNet;
use crate::nn::efficientnet::EfficientNet;
use crate::nn::{Loader, Weights};

/// The side images are resized to for EfficientNet-Lite0.
pub const EFFNET_SIZE: usize = 224;
/// The side images are resized to for AlexNet.
pub const ALEXNET_SIZE: usize = 256;
/// Images per forward pass.
const BATCH: usize = 8;
/// ImageNet's channel means (torchvision's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's channel standard deviations (torchvision's).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One column of the table: its name and a value per image.
pub type Column = (String, Vec<f64>);

/// The networks that judge reconstructions.
#[derive(Debug)]
pub struct Judges {
    effnet: EfficientNet,
    alexnet: Option<ClassicNet>,
}

impl Judges {
    /// EfficientNet-Lite0 from `effnet_dir` (`model.safetensors`), and AlexNet from a
    /// torchvision state dict converted to safetensors (scripts/convert_torchvision.py).
    pub fn load(gpu: &Gpu, effnet_dir: &Path, alexnet: Option<&Path>) -> Result<Self> {
        let effnet = EfficientNet::load(gpu, effnet_dir)?;
        let alexnet = match alexnet {
            Some(p) => {
                let w = Weights::open(&[p])?;
                Some(crate::nn::alexnet::load(&Loader::new(gpu, &w, DType::F16), 1000)?)
            }
            None => None,
        };
        Ok(Judges { effnet, alexnet })
    }

    /// Judges from networks already loaded (AlexNet: torchvision's layout, ImageNet classes).
    pub fn new(effnet: EfficientNet, alexnet: Option<ClassicNet>) -> Self {
        Judges { effnet, alexnet }
    }

    /// The shipped judge: EfficientNet-Lite0 alone.
    pub fn shipped(gpu: &Gpu) -> Result<Self> {
        Self::load(gpu, &crate::paths::shipped("weights/efficientnet-lite0"), None)
    }

    /// The columns for `recon` against `truth` (same order): AlexNet(2), AlexNet(5) when
    /// AlexNet is loaded, then EffNet-Lite0 early and late identification and its distance.
    pub fn score(&self, gpu: &Gpu, truth: &[Rgb], recon: &[Rgb]) -> Result<Vec<Column>> {
        let mut cols = Vec::new();
        if let Some(alex) = &self.alexnet {
            let layers = ["features.4", "features.11"];
            let t = self.features(gpu, truth, &layers, Net::Alex(alex))?;
            let r = self.features(gpu, recon, &layers, Net::Alex(alex))?;
            cols.push(("AlexNet(2)".to_string(), two_way_vs_originals(&t[0], &r[0])?));
            cols.push(("AlexNet(5)".to_string(), two_way_vs_originals(&t[1], &r[1])?));
        }
        let layers = ["_blocks.2", "_avg_pooling"];
        let t = self.features(gpu, truth, &layers, Net::Eff)?;
        let r = self.features(gpu, recon, &layers, Net::Eff)?;
        cols.push(("EffNet-Lite0 early".to_string(), two_way_vs_originals(&t[0], &r[0])?));
        cols.push(("EffNet-Lite0 late".to_string(), two_way_vs_originals(&t[1], &r[1])?));
        cols.push(("EffNet-Lite0 distance".to_string(), correlation_distance(&t[1], &r[1])));
        Ok(cols)
    }

    /// `[layer][image] -> features` of `images` at the named layers.
    fn features(&self, gpu: &Gpu, images: &[Rgb], layers: &[&str], net: Net<'_>) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(images.len()); layers.len()];
        let side = match net {
            Net::Eff => EFFNET_SIZE,
            Net::Alex(_) => ALEXNET_SIZE,
        };
        for batch in images.chunks(BATCH) {
            let mut data = Vec::with_capacity(batch.len() * side * side * 3);
            for img in batch {
                let img = img.resized(side);
                match net {
                    Net::Eff => data.extend_from_slice(&img.data),
                    Net::Alex(_) => data.extend(img.data.iter().enumerate().map(|(i, v)| (v - IMAGENET_MEAN[i % 3]) / IMAGENET_STD[i % 3])),
                }
            }
            let x = Tensor::from_f32(gpu, &[batch.len(), side, side, 3], &data)?;
            let mut enc = gpu.encoder();
            let ys = match net {
                Net::Eff => self.effnet.forward_layers(&mut enc, &x, layers)?,
                Net::Alex(a) => a.forward_layers(&mut enc, &x, layers)?,
            };
            drop(enc);
            for (l, y) in ys.iter().enumerate() {
                let v = y.to_vec(gpu)?;
                let per = v.len() / batch.len();
                out[l].extend(v.chunks(per).map(<[f32]>::to_vec));
            }
        }
        Ok(out)
    }
}

/// Which network a forward pass runs.
#[derive(Clone, Copy)]
enum Net<'a> {
    Eff,
    Alex(&'a ClassicNet),
}
