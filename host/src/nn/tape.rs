//! A recorded forward pass (a tape) that runs backwards: each taped op runs its forward kernel
//! and records its inputs, its output and what its input gradient needs (the input-gradient
//! weights of a convolution, the forward's output for an activation's mask). [`Tape::backward`]
//! walks the ops in reverse through the kernels of `ops::grad` (weights frozen), with output
//! gradients injected at any recorded node (a feature loss reads several layers), gradients
//! summed where a value fans out (residual adds), batched over images as the forward was.
//! Used by deep image reconstruction (`dir`): d loss / d image or d loss / d latent.

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Tensor};
use crate::ops::conv2d::{conv2d, ConvSpec, ConvWeight};
use crate::ops::depthwise::{depthwise, DepthwiseSpec, DepthwiseWeight};
use crate::ops::elementwise::{add, binary, unary, Unary};
use crate::ops::grad::{act_backward, adaptive_avg_pool_backward, conv2d_backward, depthwise_backward, global_mean_backward, linear_backward, max_pool_backward, tanh_clamp_backward, upsample2x_backward};
use crate::ops::pool::global_mean;
use crate::ops::resample::upsample2x;
use crate::ops::resize::Resize;
use crate::ops::Act;

/// A value on the tape (its index).
pub type Node = usize;

/// A recorded op: its inputs and what its backward needs.
enum Op<'w> {
    Input,
    Conv { x: Node, back: &'w ConvWeight, spec: ConvSpec },
    Depthwise { x: Node, back: &'w DepthwiseWeight, spec: DepthwiseSpec },
    /// `act(a + b)`, same shapes.
    Add { a: Node, b: Node, act: Act },
    /// `x s`.
    Scale { x: Node, s: f32 },
    /// `x + constant` (broadcast).
    Shift { x: Node },
    TanhClamp { x: Node, c: f32 },
    Upsample { x: Node },
    GlobalMean { x: Node },
    Resize { x: Node, r: &'w Resize },
    /// `x * scale` per channel (the last dimension), `scale (C)`.
    ChannelScale { x: Node, scale: Tensor },
    /// `max(x, 0)` on its own (not fused into a conv).
    Relu { x: Node },
    MaxPool { x: Node, k: usize, stride: usize, pad: usize },
    AdaptiveAvg { x: Node },
    /// A reshape (the flatten before a classifier).
    Reshape { x: Node },
    /// `x (M, K) . w^T + b`, `w (N, K)`.
    Linear { x: Node, w: &'w Tensor },
}

/// A forward pass recorded for its backward; weights borrowed for `'w`.
#[derive(Default)]
pub struct Tape<'w> {
    ops: Vec<Op<'w>>,
    values: Vec<Tensor>,
}

impl<'w> Tape<'w> {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, op: Op<'w>, y: Tensor) -> Node {
        self.ops.push(op);
        self.values.push(y);
        self.values.len() - 1
    }

    /// The value of a node.
    pub fn value(&self, n: Node) -> &Tensor {
        &self.values[n]
    }

    /// An input (a leaf whose gradient [`Tape::backward`] returns).
    pub fn input(&mut self, x: Tensor) -> Node {
        self.push(Op::Input, x)
    }

    /// `conv2d(x, w, spec)`; `back` its input-gradient weights (`ops::grad::conv_back_weight`).
    pub fn conv(&mut self, enc: &mut Encoder<'_>, x: Node, w: &ConvWeight, back: &'w ConvWeight, spec: ConvSpec) -> Result<Node> {
        let y = conv2d(enc, &self.values[x], w, spec)?;
        Ok(self.push(Op::Conv { x, back, spec }, y))
    }

    /// `depthwise(x, w, spec)`; `back` from `ops::grad::depthwise_back_weight`.
    pub fn depthwise(&mut self, enc: &mut Encoder<'_>, x: Node, w: &DepthwiseWeight, back: &'w DepthwiseWeight, spec: DepthwiseSpec) -> Result<Node> {
        let y = depthwise(enc, &self.values[x], w, spec)?;
        Ok(self.push(Op::Depthwise { x, back, spec }, y))
    }

    /// `act(a + b)`, `a` and `b` of one shape.
    pub fn add(&mut self, enc: &mut Encoder<'_>, a: Node, b: Node, act: Act) -> Result<Node> {
        crate::ops::ensure(self.values[a].shape == self.values[b].shape, "tape add", || format!("{:?} + {:?}: a taped add needs one shape", self.values[a].shape, self.values[b].shape))?;
        let y = binary(enc, &self.values[a], &self.values[b], false, act)?;
        Ok(self.push(Op::Add { a, b, act }, y))
    }

    /// `x s + shift` (an input normalisation; `shift` broadcast over the trailing dimensions).
    pub fn affine(&mut self, enc: &mut Encoder<'_>, x: Node, s: f32, shift: &Tensor) -> Result<Node> {
        let y = unary(enc, &self.values[x], Unary::Scale(s))?;
        let n = self.push(Op::Scale { x, s }, y);
        let y = add(enc, &self.values[n], shift)?;
        Ok(self.push(Op::Shift { x: n }, y))
    }

    /// `tanh(x / c) c`.
    pub fn tanh_clamp(&mut self, enc: &mut Encoder<'_>, x: Node, c: f32) -> Result<Node> {
        let y = unary(enc, &self.values[x], Unary::TanhClamp(c))?;
        Ok(self.push(Op::TanhClamp { x, c }, y))
    }

    /// Nearest 2x upsampling.
    pub fn upsample2x(&mut self, enc: &mut Encoder<'_>, x: Node) -> Result<Node> {
        let y = upsample2x(enc, &self.values[x])?;
        Ok(self.push(Op::Upsample { x }, y))
    }

    /// The mean over H and W: `(B, H, W, C) -> (B, C)`.
    pub fn global_mean(&mut self, enc: &mut Encoder<'_>, x: Node) -> Result<Node> {
        let y = global_mean(enc, &self.values[x])?;
        Ok(self.push(Op::GlobalMean { x }, y))
    }

    /// A square resize.
    pub fn resize(&mut self, enc: &mut Encoder<'_>, x: Node, r: &'w Resize) -> Result<Node> {
        let y = r.forward(enc, &self.values[x])?;
        Ok(self.push(Op::Resize { x, r }, y))
    }

    /// `x * scale + shift` per channel: `scale` and `shift` of shape `(C)` (ImageNet's
    /// normalisation, `scale = 1 / std`, `shift = -mean / std`).
    pub fn channel_affine(&mut self, enc: &mut Encoder<'_>, x: Node, scale: &Tensor, shift: &Tensor) -> Result<Node> {
        let y = binary(enc, &self.values[x], scale, true, Act::None)?;
        let n = self.push(Op::ChannelScale { x, scale: scale.clone() }, y);
        let y = add(enc, &self.values[n], shift)?;
        Ok(self.push(Op::Shift { x: n }, y))
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, enc: &mut Encoder<'_>, x: Node) -> Result<Node> {
        let y = unary(enc, &self.values[x], Unary::Relu)?;
        Ok(self.push(Op::Relu { x }, y))
    }

    /// Max pooling (`ops::pool::max_pool`).
    pub fn max_pool(&mut self, enc: &mut Encoder<'_>, x: Node, k: usize, stride: usize, pad: usize) -> Result<Node> {
        let y = crate::ops::pool::max_pool(enc, &self.values[x], k, stride, pad)?;
        Ok(self.push(Op::MaxPool { x, k, stride, pad }, y))
    }

    /// Adaptive average pooling to `(ho, wo)`.
    pub fn adaptive_avg_pool(&mut self, enc: &mut Encoder<'_>, x: Node, ho: usize, wo: usize) -> Result<Node> {
        let y = crate::ops::pool::adaptive_avg_pool(enc, &self.values[x], ho, wo)?;
        Ok(self.push(Op::AdaptiveAvg { x }, y))
    }

    /// The same values in another shape.
    pub fn reshape(&mut self, x: Node, shape: &[usize]) -> Result<Node> {
        let y = self.values[x].reshape(shape)?;
        Ok(self.push(Op::Reshape { x }, y))
    }

    /// `linear(x, w, bias)`: `x (M, K)`, `w (N, K)`.
    pub fn linear(&mut self, enc: &mut Encoder<'_>, x: Node, w: &'w Tensor, bias: Option<&Tensor>) -> Result<Node> {
        let y = crate::ops::linear::linear(enc, &self.values[x], w, bias)?;
        Ok(self.push(Op::Linear { x, w }, y))
    }

    /// The gradient at `input` of `sum over seeds (node, g) of <g, value(node)>`: each seed
    /// `g` is an output gradient of its node's shape. Ops no seed reaches are skipped.
    pub fn backward(&self, enc: &mut Encoder<'_>, seeds: Vec<(Node, Tensor)>, input: Node) -> Result<Tensor> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.values.len()];
        for (n, g) in seeds {
            crate::ops::ensure(n < self.values.len() && g.shape == self.values[n].shape, "tape backward", || format!("seed of shape {:?} for node {n} of {:?}", g.shape, self.values.get(n).map(|v| &v.shape)))?;
            accumulate(enc, &mut grads, n, g)?;
        }
        for i in (0..self.ops.len()).rev() {
            if i == input {
                break;
            }
            let Some(g) = grads[i].take() else { continue };
            let y = &self.values[i];
            let hw = |x: Node| (self.values[x].shape[1], self.values[x].shape[2]);
            match &self.ops[i] {
                Op::Input => {
                    grads[i] = Some(g);
                }
                Op::Conv { x, back, spec } => {
                    let g = act_backward(enc, &g, y, spec.act)?;
                    let dx = conv2d_backward(enc, &g, back, hw(*x), *spec)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Depthwise { x, back, spec } => {
                    let g = act_backward(enc, &g, y, spec.act)?;
                    let dx = depthwise_backward(enc, &g, back, hw(*x), *spec)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Add { a, b, act } => {
                    let g = act_backward(enc, &g, y, *act)?;
                    accumulate(enc, &mut grads, *a, g.clone())?;
                    accumulate(enc, &mut grads, *b, g)?;
                }
                Op::Scale { x, s } => {
                    let dx = unary(enc, &g, Unary::Scale(*s))?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Shift { x } => accumulate(enc, &mut grads, *x, g)?,
                Op::TanhClamp { x, c } => {
                    let dx = tanh_clamp_backward(enc, &g, &self.values[*x], *c)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Upsample { x } => {
                    let dx = upsample2x_backward(enc, &g)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::GlobalMean { x } => {
                    let (h, w) = hw(*x);
                    let dx = global_mean_backward(enc, &g, h, w)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Resize { x, r } => {
                    let dx = r.backward(enc, &g)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::ChannelScale { x, scale } => {
                    let dx = binary(enc, &g, scale, true, Act::None)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Relu { x } => {
                    let dx = act_backward(enc, &g, y, Act::Relu)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::MaxPool { x, k, stride, pad } => {
                    let dx = max_pool_backward(enc, &g, &self.values[*x], *k, *stride, *pad)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::AdaptiveAvg { x } => {
                    let (h, w) = hw(*x);
                    let dx = adaptive_avg_pool_backward(enc, &g, h, w)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Reshape { x } => {
                    let dx = g.reshape(&self.values[*x].shape)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
                Op::Linear { x, w } => {
                    let dx = linear_backward(enc, &g, w)?;
                    accumulate(enc, &mut grads, *x, dx)?;
                }
            }
        }
        match grads.get_mut(input).and_then(Option::take) {
            Some(g) => Ok(g),
            None => Err(Error::Invalid(format!("tape backward: no seed reaches node {input} (the tape has {} nodes)", self.values.len()))),
        }
    }
}

/// `grads[n] += g`.
fn accumulate(enc: &mut Encoder<'_>, grads: &mut [Option<Tensor>], n: Node, g: Tensor) -> Result<()> {
    grads[n] = Some(match grads[n].take() {
        Some(t) => add(enc, &t, &g)?,
        None => g,
    });
    Ok(())
}
