//! Feature targets for DNN feature decoding (Shen et al. 2019): the activations of named
//! layers of a feature network for each training image, the image's centre square resized to
//! 224 (`io::image::square`, the crop DIR's originals and `percept eval` use; EfficientNet-Lite
//! normalises inside the model, VGG19 gets ImageNet's mean and std, torchvision's convention),
//! with the networks' own reference layer names. Layers are NHWC-flattened (unit `u` of a (H, W, C) layer is
//! `(y * W + x) * C + c`). Each (image, network, layer) is cached on disk as an .npy, keyed like
//! the TAESD latents (`fit::targets`): the image's path, size and mtime, the weights' and the side.

use std::path::{Path, PathBuf};

use super::targets::file_key;
use crate::error::{io, Error, Result};
use crate::eval::features::{EFFNET_SIZE, IMAGENET_MEAN, IMAGENET_STD};
use crate::gpu::{DType, Gpu, Tensor};
use crate::io::image::Rgb;
use crate::io::npy;
use crate::nn::classic::ClassicNet;
use crate::nn::efficientnet::EfficientNet;
use crate::nn::{Loader, Weights};
use crate::progress::Progress;

/// Images per forward pass.
const BATCH: usize = 8;
/// The side VGG19 sees (torchvision's ImageNet evaluation crop).
pub const VGG_SIZE: usize = 224;
/// The preprocessing's version in the cache key: 2 since images are centre-cropped to a
/// square (version 1 squashed a non-square image to the side; its files are not reused).
const PREPROCESSING: u64 = 2;

/// A network whose layers are decoded.
#[derive(Debug)]
pub struct FeatureNet {
    name: String,
    weights: PathBuf,
    net: Net,
}

#[derive(Debug)]
enum Net {
    Eff(Box<EfficientNet>),
    Classic(ClassicNet),
}

impl FeatureNet {
    /// EfficientNet-Lite from a folder holding `model.safetensors`, named e.g. `efficientnet-lite2`.
    pub fn efficientnet(gpu: &Gpu, dir: &Path, name: &str) -> Result<Self> {
        Ok(FeatureNet { name: name.into(), weights: dir.join("model.safetensors"), net: Net::Eff(Box::new(EfficientNet::load(gpu, dir)?)) })
    }

    /// The shipped EfficientNet-Lite2 (weights/efficientnet-lite2), DIR's default loss network.
    pub fn efficientnet_lite2(gpu: &Gpu) -> Result<Self> {
        Self::efficientnet(gpu, &crate::paths::shipped("weights/efficientnet-lite2"), "efficientnet-lite2")
    }

    /// VGG19 from torchvision's state dict converted to safetensors (scripts/convert_torchvision.py).
    pub fn vgg19(gpu: &Gpu, file: &Path) -> Result<Self> {
        let w = Weights::open(&[file])?;
        let net = crate::nn::vgg::load(&Loader::new(gpu, &w, DType::F16), crate::nn::vgg::VGG19, 1000)?;
        Ok(FeatureNet { name: "vgg19".into(), weights: file.to_path_buf(), net: Net::Classic(net) })
    }

    /// The network's name, stored in the decoders (`feature_net`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The layer names `forward_layers` accepts.
    pub fn layer_names(&self) -> Vec<String> {
        match &self.net {
            Net::Eff(e) => e.layer_names(),
            Net::Classic(c) => c.layer_names(),
        }
    }

    /// The network as the loss network of deep image reconstruction.
    pub fn loss_net(&self) -> crate::dir::objective::LossNet<'_> {
        match &self.net {
            Net::Eff(e) => crate::dir::objective::LossNet::EfficientNet(e),
            Net::Classic(c) => crate::dir::objective::LossNet::Vgg(c),
        }
    }

    /// The side images are resized to.
    pub fn side(&self) -> usize {
        match self.net {
            Net::Eff(_) => EFFNET_SIZE,
            Net::Classic(_) => VGG_SIZE,
        }
    }

    /// `[layer] -> (images, units)` row-major: the named layers' activations, NHWC-flattened,
    /// of each image's centre square at the network's side.
    pub fn features(&self, gpu: &Gpu, images: &[Rgb], layers: &[&str]) -> Result<Vec<Vec<f32>>> {
        let side = self.side();
        let mut out = vec![Vec::new(); layers.len()];
        for batch in images.chunks(BATCH) {
            let mut data = Vec::with_capacity(batch.len() * side * side * 3);
            for img in batch {
                let img = img.squared(side);
                match self.net {
                    Net::Eff(_) => data.extend_from_slice(&img.data),
                    Net::Classic(_) => data.extend(img.data.iter().enumerate().map(|(i, v)| (v - IMAGENET_MEAN[i % 3]) / IMAGENET_STD[i % 3])),
                }
            }
            let x = Tensor::from_f32(gpu, &[batch.len(), side, side, 3], &data)?;
            let mut enc = gpu.encoder();
            let ys = match &self.net {
                Net::Eff(e) => e.forward_layers(&mut enc, &x, layers)?,
                Net::Classic(c) => c.forward_layers(&mut enc, &x, layers)?,
            };
            drop(enc);
            for (l, y) in ys.iter().enumerate() {
                out[l].extend(y.to_vec(gpu)?);
            }
        }
        Ok(out)
    }

    /// `[layer] -> (images, units)` for the image files `images`, reading and filling the
    /// on-disk cache in `cache` (one .npy per image and layer).
    pub fn features_cached(&self, gpu: &Gpu, images: &[PathBuf], layers: &[&str], cache: &Path, bar: &dyn Progress) -> Result<Vec<Vec<f32>>> {
        std::fs::create_dir_all(cache).map_err(io(cache))?;
        let names = self.layer_names();
        if let Some(bad) = layers.iter().find(|l| !names.iter().any(|n| n == *l)) {
            return Err(Error::Invalid(format!("{} has no layer `{bad}`; its layers are {}", self.name, names.join(", "))));
        }
        bar.set_len(images.len() as u64);
        let mut per: Vec<Vec<Option<Vec<f32>>>> = vec![vec![None; layers.len()]; images.len()];
        let mut files = Vec::with_capacity(images.len());
        let mut todo = Vec::new();
        for (i, img) in images.iter().enumerate() {
            let key = file_key(&[img.as_path(), self.weights.as_path()], &[self.side() as u64, PREPROCESSING])?;
            let row: Vec<PathBuf> = layers.iter().map(|l| cache.join(format!("{}-{}-{key}.npy", self.name, l.replace(['/', '\\'], "_")))).collect();
            for (l, f) in row.iter().enumerate() {
                per[i][l] = npy::read(f).ok().map(|a| a.data);
            }
            if per[i].iter().any(Option::is_none) {
                todo.push(i);
            } else {
                bar.inc(1);
            }
            files.push(row);
        }
        for batch in todo.chunks(BATCH) {
            let rgbs = batch.iter().map(|&i| Rgb::open_square(&images[i], self.side())).collect::<Result<Vec<_>>>()?;
            let ys = self.features(gpu, &rgbs, layers)?;
            for (l, y) in ys.iter().enumerate() {
                let units = y.len() / batch.len();
                for (b, &i) in batch.iter().enumerate() {
                    let v = y[b * units..(b + 1) * units].to_vec();
                    npy::write(&files[i][l], &[units], &v, true)?;
                    per[i][l] = Some(v);
                }
            }
            bar.inc(batch.len() as u64);
        }
        let mut out = vec![Vec::new(); layers.len()];
        for (i, row) in per.into_iter().enumerate() {
            for (l, v) in row.into_iter().enumerate() {
                let v = v.ok_or_else(|| Error::Invalid(format!("features of {} at {} were not computed", images[i].display(), layers[l])))?;
                if !out[l].is_empty() && out[l].len() % v.len() != 0 {
                    return Err(Error::Shape(format!("{}: cached features of {} have {} units, other images {}", files[i][l].display(), layers[l], v.len(), out[l].len() / i.max(1))));
                }
                out[l].extend(v);
            }
        }
        Ok(out)
    }
}
