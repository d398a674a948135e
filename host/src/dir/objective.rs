//! The DIR objective (Shen et al. 2019): `sum over layers l of w_l ||f_l(G(x)) - t_l||^2` over
//! the chosen units, `w_l = 1 / ||t_l||^2` normalised to sum to 1 per image, with `G` TAESD's
//! decoder (the latent `x`) or the identity (pixels `x`) and `f` a loss network's features of
//! the image resized (triangle filter, as `eval::features`) to the network's input; and its
//! gradient with respect to `x`: one taped forward on the GPU (nn::tape), the loss and its
//! output gradients on the host, one backward on the GPU.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::nn::classic::ClassicNet;
use crate::nn::efficientnet::EfficientNet;
use crate::nn::taesd::TaesdPart;
use crate::nn::tape::Tape;
use crate::ops::elementwise::binary;
use crate::ops::resize::Resize;
use crate::ops::Act;

/// Images per forward pass in [`Objective::features`].
const BATCH: usize = 8;

/// The decoded (target) features of one layer for a batch of images.
#[derive(Debug, Clone)]
pub struct LayerTarget {
    /// A `forward_layers` name, e.g. `_blocks.3`, `head`, `_avg_pooling`.
    pub layer: String,
    /// Indices into the layer's flattened NHWC features of one image; `None` = all.
    pub units: Option<Vec<u32>>,
    /// `(B, units.len() or all units)`, row-major.
    pub values: Vec<f32>,
}

/// What makes the image from `x`.
#[derive(Debug, Clone, Copy)]
pub enum Generator<'a> {
    /// TAESD's decoder: `x` a latent `(B, s/8, s/8, 4)`.
    Taesd(&'a TaesdPart),
    /// None: `x` is the image `(B, s, s, 3)` in [0, 1].
    Pixels,
}

/// The network whose features the loss compares.
#[derive(Debug, Clone, Copy)]
pub enum LossNet<'a> {
    /// EfficientNet-Lite (Lite2 by default for DIR; Lite0 judges), input 224, normalised
    /// inside the model.
    EfficientNet(&'a EfficientNet),
    /// VGG19 (or any of torchvision's plain CNNs, `nn::classic`), input 224, normalised with
    /// ImageNet's mean and std (as `eval::features` feeds AlexNet).
    Vgg(&'a ClassicNet),
}

impl LossNet<'_> {
    /// The side images are resized to for this network.
    pub fn input_size(&self) -> usize {
        match self {
            LossNet::EfficientNet(_) | LossNet::Vgg(_) => crate::eval::features::EFFNET_SIZE,
        }
    }
}

/// The loss, its gradient and the generated images for a batch.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Per image.
    pub loss: Vec<f32>,
    /// `d loss / d x`, the shape of `x`.
    pub grad: Vec<f32>,
    /// The generator's raw output `(B, s, s, 3)`, not clipped.
    pub images: Vec<f32>,
}

/// The feature loss of one generator and one loss network at one image size.
#[derive(Debug)]
pub struct Objective<'a> {
    gpu: &'a Gpu,
    generator: Generator<'a>,
    net: LossNet<'a>,
    image_size: usize,
    resize: Option<Resize>,
    /// ImageNet's `1 / std` and `-mean / std` per channel (for `Vgg`).
    imagenet: (Tensor, Tensor),
}

impl<'a> Objective<'a> {
    /// `image_size`: the generated image's side (a multiple of 8 for TAESD).
    pub fn new(gpu: &'a Gpu, generator: Generator<'a>, net: LossNet<'a>, image_size: usize) -> Result<Self> {
        if image_size == 0 || (matches!(generator, Generator::Taesd(_)) && !image_size.is_multiple_of(8)) {
            return Err(Error::Invalid(format!("dir objective: image size {image_size} (TAESD needs a positive multiple of 8)")));
        }
        let n = net.input_size();
        let resize = if n == image_size { None } else { Some(Resize::new(gpu, image_size, n)?) };
        let (mean, std) = (crate::eval::features::IMAGENET_MEAN, crate::eval::features::IMAGENET_STD);
        let scale: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        let shift: Vec<f32> = mean.iter().zip(&std).map(|(m, s)| -m / s).collect();
        let imagenet = (Tensor::from_f32(gpu, &[3], &scale)?, Tensor::from_f32(gpu, &[3], &shift)?);
        Ok(Objective { gpu, generator, net, image_size, resize, imagenet })
    }

    /// The shape of `x` for `batch` images.
    pub fn x_shape(&self, batch: usize) -> [usize; 4] {
        match self.generator {
            Generator::Taesd(_) => [batch, self.image_size / 8, self.image_size / 8, 4],
            Generator::Pixels => [batch, self.image_size, self.image_size, 3],
        }
    }

    /// `x`: `(B, s/8, s/8, 4)` NHWC latents for TAESD, or `(B, s, s, 3)` NHWC pixels in
    /// [0, 1]. The loss per image, `d loss / d x`, and the generated images.
    pub fn loss_and_grad(&self, x: &[f32], batch: usize, targets: &[LayerTarget]) -> Result<Evaluation> {
        let gpu = self.gpu;
        let shape = self.x_shape(batch);
        if batch == 0 || x.len() != shape.iter().product::<usize>() {
            return Err(Error::Shape(format!("dir objective: {} values of x for {batch} images of {:?}", x.len(), &shape[1..])));
        }
        if targets.is_empty() {
            return Err(Error::Invalid("dir objective: no target layers".into()));
        }
        let names: Vec<&str> = targets.iter().map(|t| t.layer.as_str()).collect();
        let mut tape = Tape::new();
        let mut enc = gpu.encoder();
        let x0 = tape.input(Tensor::from_f32(gpu, &shape, x)?);
        let img = match self.generator {
            Generator::Taesd(d) => d.forward_taped(&mut enc, &mut tape, x0)?,
            Generator::Pixels => x0,
        };
        let input = match &self.resize {
            Some(r) => tape.resize(&mut enc, img, r)?,
            None => img,
        };
        let nodes = match self.net {
            LossNet::EfficientNet(n) => n.forward_taped(&mut enc, &mut tape, input, &names)?,
            LossNet::Vgg(n) => {
                let x = tape.channel_affine(&mut enc, input, &self.imagenet.0, &self.imagenet.1)?;
                n.forward_taped(&mut enc, &mut tape, x, &names)?
            }
        };
        drop(enc);
        let images = tape.value(img).to_vec(gpu)?;
        let mut feats = Vec::with_capacity(nodes.len());
        for n in &nodes {
            feats.push(tape.value(*n).to_vec(gpu)?);
        }
        let (loss, grads) = loss_and_output_grads(&feats, targets, batch)?;
        let mut seeds = Vec::with_capacity(nodes.len());
        for (n, g) in nodes.iter().zip(grads) {
            seeds.push((*n, Tensor::from_f32(gpu, &tape.value(*n).shape, &g)?));
        }
        let mut enc = gpu.encoder();
        let g = tape.backward(&mut enc, seeds, x0)?;
        drop(enc);
        Ok(Evaluation { loss, grad: g.to_vec(gpu)?, images })
    }

    /// Features of the chosen layers for images `(B, s, s, 3)` (resized and normalised as in
    /// the loss): per layer, `(B, units)` row-major over all the layer's units.
    pub fn features(&self, images: &[f32], batch: usize, layers: &[String]) -> Result<Vec<Vec<f32>>> {
        let s = self.image_size;
        if images.len() != batch * s * s * 3 {
            return Err(Error::Shape(format!("dir features: {} values for {batch} images of ({s}, {s}, 3)", images.len())));
        }
        let names: Vec<&str> = layers.iter().map(String::as_str).collect();
        let mut out = vec![Vec::new(); layers.len()];
        for chunk in images.chunks(BATCH * s * s * 3) {
            let b = chunk.len() / (s * s * 3);
            let mut enc = self.gpu.encoder();
            let x = Tensor::from_f32(self.gpu, &[b, s, s, 3], chunk)?;
            let x = match &self.resize {
                Some(r) => r.forward(&mut enc, &x)?,
                None => x,
            };
            let ys = match self.net {
                LossNet::EfficientNet(n) => n.forward_layers(&mut enc, &x, &names)?,
                LossNet::Vgg(n) => {
                    let x = binary(&mut enc, &x, &self.imagenet.0, true, Act::None)?;
                    let x = binary(&mut enc, &x, &self.imagenet.1, false, Act::None)?;
                    n.forward_layers(&mut enc, &x, &names)?
                }
            };
            drop(enc);
            for (o, y) in out.iter_mut().zip(ys) {
                o.extend(y.to_vec(self.gpu)?);
            }
        }
        Ok(out)
    }
}

/// Per image, the weighted loss over `targets` of the layers' features `feats` (each `(B,
/// all units)`), and each layer's output gradient (all units, zero off the chosen ones).
pub fn loss_and_output_grads(feats: &[Vec<f32>], targets: &[LayerTarget], batch: usize) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let mut grads: Vec<Vec<f32>> = feats.iter().map(|f| vec![0.0; f.len()]).collect();
    let mut loss = vec![0.0f32; batch];
    // Per layer the chosen units, and per (image, layer) ||t||^2.
    let mut chosen = Vec::with_capacity(targets.len());
    for (f, t) in feats.iter().zip(targets) {
        let per = f.len() / batch;
        let units: Vec<usize> = match &t.units {
            Some(u) => u.iter().map(|&u| u as usize).collect(),
            None => (0..per).collect(),
        };
        if let Some(bad) = units.iter().find(|&&u| u >= per) {
            return Err(Error::Shape(format!("dir target `{}`: unit {bad} is past the layer's {per} units", t.layer)));
        }
        if t.values.len() != batch * units.len() {
            return Err(Error::Shape(format!("dir target `{}`: {} values for {batch} images of {} units", t.layer, t.values.len(), units.len())));
        }
        chosen.push(units);
    }
    for b in 0..batch {
        let inv: Vec<f64> = targets
            .iter()
            .zip(&chosen)
            .map(|(t, u)| {
                let n: f64 = t.values[b * u.len()..(b + 1) * u.len()].iter().map(|v| (*v as f64).powi(2)).sum();
                1.0 / n.max(1e-12)
            })
            .collect();
        let total: f64 = inv.iter().sum();
        for (l, t) in targets.iter().enumerate() {
            let w = inv[l] / total;
            let (units, f) = (&chosen[l], &feats[l]);
            let per = f.len() / batch;
            let mut sq = 0.0f64;
            for (k, &u) in units.iter().enumerate() {
                let d = f[b * per + u] as f64 - t.values[b * units.len() + k] as f64;
                sq += d * d;
                grads[l][b * per + u] += (2.0 * w * d) as f32;
            }
            loss[b] += (w * sq) as f32;
        }
    }
    Ok((loss, grads))
}
