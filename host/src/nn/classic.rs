//! torchvision's plain CNN classifiers (`features` Sequential, `avgpool`, flatten,
//! `classifier` Sequential), shared by [`alexnet`](super::alexnet) and [`vgg`](super::vgg):
//! every module's output can be asked for by its torchvision name (`features.4`, `avgpool`,
//! `classifier.1`) in one pass ([`ClassicNet::forward_layers`]).
//!
//! Maps are NHWC. The flatten before the classifier is in NHWC order (index `(y W + x) C + c`,
//! not torchvision's `c H W + y W + x`): the first Linear's weight is permuted to match at
//! load, so the classifier's outputs are torchvision's, but a flattened input asked for by
//! name (AlexNet's `classifier.0`, a Dropout) is in NHWC order.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{DType, Encoder, Tensor};
use crate::nn::Loader;
use crate::nn::tape::{Node, Tape};
use crate::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
use crate::ops::grad::conv_back_weight;
use crate::ops::elementwise::{unary, Unary};
use crate::ops::linear::linear;
use crate::ops::pool::{adaptive_avg_pool, max_pool};
use crate::ops::Act;

/// A module of `features`.
#[derive(Debug, Clone, Copy)]
pub enum Feature {
    /// `Conv2d(cin, cout, k, stride, pad)` with bias.
    Conv {
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zeros on every side.
        pad: usize,
    },
    /// `ReLU`.
    Relu,
    /// `MaxPool2d(k, stride)`.
    MaxPool {
        /// Window side.
        k: usize,
        /// Stride.
        stride: usize,
    },
}

/// A module of `classifier`.
#[derive(Debug, Clone, Copy)]
pub enum Head {
    /// `Dropout` (identity in eval).
    Dropout,
    /// `Linear(inp, out)` with bias.
    Linear {
        /// Input features.
        inp: usize,
        /// Output features.
        out: usize,
    },
    /// `ReLU`.
    Relu,
}

/// A module's weights on the GPU.
#[derive(Debug)]
enum Loaded {
    /// The conv, its input-gradient weights, its geometry.
    Conv(Box<ConvWeight>, Box<ConvWeight>, Feature),
    Linear(Tensor, Tensor),
    Plain,
}

/// The network: `features`, `AdaptiveAvgPool2d(pool)`, flatten, `classifier`.
#[derive(Debug)]
pub struct ClassicNet {
    features: Vec<(Feature, Loaded)>,
    pool: usize,
    classifier: Vec<(Head, Loaded)>,
}

impl ClassicNet {
    /// Loads `features.i.{weight,bias}` and `classifier.i.{weight,bias}` (PyTorch layouts);
    /// weights at the loader's dtype, biases f32.
    pub fn load(w: &Loader<'_>, features: &[Feature], pool: usize, classifier: &[Head]) -> Result<Self> {
        let gpu = w.gpu();
        let mut f = Vec::new();
        let mut channels = 3;
        for (i, &m) in features.iter().enumerate() {
            let loaded = match m {
                Feature::Conv { cin, cout, k, .. } => {
                    let lw = w.pp("features").pp(i);
                    let bias = lw.host(&[cout], "bias")?;
                    channels = cout;
                    let wt = lw.host(&[cout, cin, k, k], "weight")?;
                    Loaded::Conv(Box::new(ConvWeight::from_torch(gpu, &wt, [cout, cin, k, k], Some(&bias), w.dtype())?), Box::new(conv_back_weight(gpu, &wt, [cout, cin, k, k], w.dtype())?), m)
                }
                _ => Loaded::Plain,
            };
            f.push((m, loaded));
        }
        let mut c = Vec::new();
        let mut first = true;
        for (i, &m) in classifier.iter().enumerate() {
            let loaded = match m {
                Head::Linear { inp, out } => {
                    let lw = w.pp("classifier").pp(i);
                    let mut weight = lw.host(&[out, inp], "weight")?;
                    if first {
                        let hw = pool * pool;
                        if inp != channels * hw {
                            return Err(Error::Shape(format!("{}: {inp} inputs, but the features give {channels} x {pool} x {pool}", lw.key("weight"))));
                        }
                        // (out, C, H, W) -> (out, H, W, C): the NHWC flatten.
                        let src = weight.clone();
                        for o in 0..out {
                            for ch in 0..channels {
                                for p in 0..hw {
                                    weight[o * inp + p * channels + ch] = src[o * inp + ch * hw + p];
                                }
                            }
                        }
                        first = false;
                    }
                    let wt = match w.dtype() {
                        DType::F32 => Tensor::from_f32(gpu, &[out, inp], &weight)?,
                        DType::F16 => Tensor::from_f32_as_f16(gpu, &[out, inp], &weight)?,
                    };
                    Loaded::Linear(wt, w.pp("classifier").pp(i).get_f32(&[out], "bias")?)
                }
                _ => Loaded::Plain,
            };
            c.push((m, loaded));
        }
        Ok(ClassicNet { features: f, pool, classifier: c })
    }

    /// Every name `forward_layers` takes, in network order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.features.len()).map(|i| format!("features.{i}")).collect();
        names.push("avgpool".into());
        names.extend((0..self.classifier.len()).map(|i| format!("classifier.{i}")));
        names
    }

    /// The named outputs for normalised images `x (B, H, W, 3)`, in the order of `names`, in
    /// one pass that stops after the last one asked for. A conv's ReLU is fused into it unless
    /// the conv's own output is asked for.
    pub fn forward_layers(&self, enc: &mut Encoder<'_>, x: &Tensor, names: &[&str]) -> Result<Vec<Tensor>> {
        if x.shape.len() != 4 || x.shape[3] != 3 {
            return Err(Error::Shape(format!("input {:?} is not (B, H, W, 3)", x.shape)));
        }
        let all = self.layer_names();
        let pos = |n: &str| all.iter().position(|a| a == n);
        let mut want = Vec::new();
        for n in names {
            want.push(pos(n).ok_or_else(|| Error::Invalid(format!("no layer `{n}` (it has features.0 .. features.{}, avgpool, classifier.0 .. classifier.{})", self.features.len() - 1, self.classifier.len() - 1)))?);
        }
        let last = want.iter().copied().max().unwrap_or(0);
        let mut got: HashMap<usize, Tensor> = HashMap::new();
        let mut h = x.clone();
        let mut fused = false;
        for i in 0..=last {
            let nf = self.features.len();
            if i < nf {
                match &self.features[i] {
                    (_, Loaded::Conv(cw, _, Feature::Conv { stride, pad, .. })) => {
                        let relu_next = matches!(self.features.get(i + 1), Some((Feature::Relu, _))) && !want.contains(&i);
                        let act = if relu_next { Act::Relu } else { Act::None };
                        h = conv2d(enc, &h, cw, ConvSpec { stride: *stride, pad_y: (*pad, *pad), pad_x: (*pad, *pad), act })?;
                        fused = relu_next;
                    }
                    (Feature::Relu, _) => {
                        if !fused {
                            h = unary(enc, &h, Unary::Relu)?;
                        }
                        fused = false;
                    }
                    (Feature::MaxPool { k, stride }, _) => h = max_pool(enc, &h, *k, *stride, 0)?,
                    (Feature::Conv { .. }, _) => unreachable!("convs are loaded as Conv"),
                }
            } else if i == nf {
                h = adaptive_avg_pool(enc, &h, self.pool, self.pool)?;
            } else {
                if i == nf + 1 {
                    let b = h.shape[0];
                    h = h.reshape(&[b, h.numel() / b])?;
                }
                match &self.classifier[i - nf - 1] {
                    (_, Loaded::Linear(w, b)) => h = linear(enc, &h, w, Some(b))?,
                    (Head::Relu, _) => h = unary(enc, &h, Unary::Relu)?,
                    _ => {}
                }
            }
            if want.contains(&i) {
                got.insert(i, h.clone());
            }
        }
        Ok(want.iter().map(|i| got[i].clone()).collect())
    }

    /// [`ClassicNet::forward_layers`] recorded on `tape` from node `x` (ReLUs unfused, so
    /// every named layer is the module's own output): the nodes of `names`, in their order.
    pub fn forward_taped<'w>(&'w self, enc: &mut Encoder<'_>, tape: &mut Tape<'w>, x: Node, names: &[&str]) -> Result<Vec<Node>> {
        let all = self.layer_names();
        let mut want = Vec::new();
        for n in names {
            want.push(all.iter().position(|a| a == n).ok_or_else(|| Error::Invalid(format!("no layer `{n}` (it has features.0 .. features.{}, avgpool, classifier.0 .. classifier.{})", self.features.len() - 1, self.classifier.len() - 1)))?);
        }
        let last = want.iter().copied().max().unwrap_or(0);
        let nf = self.features.len();
        let mut nodes = vec![x; last + 1];
        let mut h = x;
        for (i, node) in nodes.iter_mut().enumerate() {
            if i < nf {
                h = match &self.features[i] {
                    (_, Loaded::Conv(cw, back, Feature::Conv { stride, pad, .. })) => tape.conv(enc, h, cw, back, ConvSpec { stride: *stride, pad_y: (*pad, *pad), pad_x: (*pad, *pad), act: Act::None })?,
                    (Feature::Relu, _) => tape.relu(enc, h)?,
                    (Feature::MaxPool { k, stride }, _) => tape.max_pool(enc, h, *k, *stride, 0)?,
                    (Feature::Conv { .. }, _) => unreachable!("convs are loaded as Conv"),
                };
            } else if i == nf {
                h = tape.adaptive_avg_pool(enc, h, self.pool, self.pool)?;
            } else {
                if i == nf + 1 {
                    let shape = &tape.value(h).shape;
                    let b = shape[0];
                    let per = shape.iter().product::<usize>() / b;
                    h = tape.reshape(h, &[b, per])?;
                }
                h = match &self.classifier[i - nf - 1] {
                    (_, Loaded::Linear(w, b)) => tape.linear(enc, h, w, Some(b))?,
                    (Head::Relu, _) => tape.relu(enc, h)?,
                    _ => h,
                };
            }
            *node = h;
        }
        Ok(want.iter().map(|i| nodes[*i]).collect())
    }
}
