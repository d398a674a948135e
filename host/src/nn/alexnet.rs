//! torchvision's AlexNet (`torchvision.models.alexnet`, keys `features.0.weight`, ...,
//! `classifier.6.bias`) as a [`ClassicNet`]: input normalised with the ImageNet mean and std
//! by the caller, any size from 63x63 up; layers by torchvision name.

use crate::error::Result;
use crate::nn::classic::{ClassicNet, Feature, Head};
use crate::nn::Loader;

/// torchvision's `features`.
pub fn features() -> Vec<Feature> {
    use Feature::*;
    let conv = |cin, cout, k, stride, pad| Conv { cin, cout, k, stride, pad };
    let pool = MaxPool { k: 3, stride: 2 };
    vec![conv(3, 64, 11, 4, 2), Relu, pool, conv(64, 192, 5, 1, 2), Relu, pool, conv(192, 384, 3, 1, 1), Relu, conv(384, 256, 3, 1, 1), Relu, conv(256, 256, 3, 1, 1), Relu, pool]
}

/// torchvision's `classifier`.
pub fn classifier(classes: usize) -> Vec<Head> {
    use Head::*;
    vec![Dropout, Linear { inp: 256 * 36, out: 4096 }, Relu, Dropout, Linear { inp: 4096, out: 4096 }, Relu, Linear { inp: 4096, out: classes }]
}

/// AlexNet with `classes` outputs (1000 for ImageNet).
pub fn load(w: &Loader<'_>, classes: usize) -> Result<ClassicNet> {
    ClassicNet::load(w, &features(), 6, &classifier(classes))
}
