//! torchvision's VGG without batch norm (`torchvision.models.vgg11/13/16/19`, keys
//! `features.0.weight`, ..., `classifier.6.bias`) as a [`ClassicNet`]: input normalised with the
//! ImageNet mean and std by the caller, any size from 32x32 up; layers by torchvision name.

use crate::error::Result;
use crate::nn::classic::{ClassicNet, Feature, Head};
use crate::nn::Loader;

/// `cfgs["E"]` (VGG19): conv widths, 0 for a max pool.
pub const VGG19: &[usize] = &[64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0];
/// `cfgs["D"]` (VGG16).
pub const VGG16: &[usize] = &[64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];

/// torchvision's `make_layers(cfg)` without batch norm.
pub fn features(cfg: &[usize]) -> Vec<Feature> {
    let mut f = Vec::new();
    let mut cin = 3;
    for &c in cfg {
        if c == 0 {
            f.push(Feature::MaxPool { k: 2, stride: 2 });
        } else {
            f.push(Feature::Conv { cin, cout: c, k: 3, stride: 1, pad: 1 });
            f.push(Feature::Relu);
            cin = c;
        }
    }
    f
}

/// torchvision's `classifier`.
pub fn classifier(classes: usize) -> Vec<Head> {
    use Head::*;
    vec![Linear { inp: 512 * 49, out: 4096 }, Relu, Dropout, Linear { inp: 4096, out: 4096 }, Relu, Dropout, Linear { inp: 4096, out: classes }]
}

/// VGG of `cfg` ([`VGG19`], [`VGG16`]) with `classes` outputs.
pub fn load(w: &Loader<'_>, cfg: &[usize], classes: usize) -> Result<ClassicNet> {
    ClassicNet::load(w, &features(cfg), 7, &classifier(classes))
}
