//! The target layers of deep image reconstruction: the feature decoders of a folder (decoded,
//! rescaled features at their units, or with `--oracle` the true features at those units), or
//! whole layers of the loss network named with `--layers` (true features only: the oracle).

use std::path::{Path, PathBuf};

use super::super::reconstruct::decode_voxels;
use crate::dir::objective::Objective;
use crate::error::{Error, Result};
use crate::fit::feature_targets::FeatureNet;
use crate::io::decoder::{FeatureInfo, LoadedDecoder};

/// One target layer.
pub(super) struct Layer {
    /// The loss network's name of the layer.
    pub name: String,
    /// The units compared (`None`: every unit of the layer).
    pub units: Option<Vec<u32>>,
    /// The decoder file and its feature layer, when the layer comes from a decoder.
    pub decoder: Option<(PathBuf, FeatureInfo)>,
}

impl Layer {
    /// Units compared per image (`layer_units` for a whole layer).
    pub fn width(&self, layer_units: usize) -> usize {
        self.units.as_ref().map_or(layer_units, Vec::len)
    }

    /// Its line in `features.txt`.
    pub fn describe(&self, layer_units: usize) -> String {
        match &self.decoder {
            Some((path, info)) => format!("{}\t{}\t{} of {} units\n", path.display(), info.layer, info.units.len(), info.layer_units),
            None => format!("(whole layer)\t{}\t{layer_units} of {layer_units} units\n", self.name),
        }
    }
}

/// The feature decoders of `dir`, sorted by file name, each checked to be one of `net_name`
/// and to read `voxels` voxels.
pub(super) fn from_decoders(dir: &Path, net_name: &str, voxels: usize) -> Result<Vec<Layer>> {
    let rd = std::fs::read_dir(dir).map_err(crate::error::io(dir))?;
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Invalid(format!("{}: holds no feature decoders (*.safetensors from `percept fit --target features`)", dir.display())));
    }
    let mut out = Vec::new();
    for path in paths {
        let loaded = LoadedDecoder::open(&path)?;
        let info = loaded.features()?.ok_or_else(|| Error::Invalid(format!("{}: is not a feature decoder (no feature layer in it)", path.display())))?;
        if info.net != net_name {
            return Err(Error::Invalid(format!("{}: decodes features of {}, but the loss network is {net_name}", path.display(), info.net)));
        }
        let v = loaded.decoder()?.voxels();
        if v != voxels {
            return Err(Error::Shape(format!("{}: reads {v} voxels, the data has {voxels}", path.display())));
        }
        out.push(Layer { name: info.layer.clone(), units: Some(info.units.clone()), decoder: Some((path, info)) });
    }
    Ok(out)
}

/// Whole layers `names` of `net`; an unknown name fails listing the network's layers.
pub(super) fn whole(net: &FeatureNet, names: &[String]) -> Result<Vec<Layer>> {
    let all = net.layer_names();
    let mut out: Vec<Layer> = Vec::with_capacity(names.len());
    for n in names {
        if !all.contains(n) {
            return Err(Error::Invalid(format!("--layers: {} has no layer `{n}`; its layers are {}", net.name(), all.join(", "))));
        }
        if out.iter().any(|l| &l.name == n) {
            return Err(Error::Invalid(format!("--layers: `{n}` is named twice")));
        }
        out.push(Layer { name: n.clone(), units: None, decoder: None });
    }
    Ok(out)
}

/// Per layer `(images, width)` targets: the true features of `originals` `(m, s, s, 3)` at the
/// layers' units (`oracle`), or the decoders' predictions from `x` `(m, voxels)`, rescaled.
/// Also each layer's size in units (of the loss network at the objective's input).
pub(super) fn values(objective: &Objective<'_>, layers: &[Layer], originals: Option<&[f32]>, x: &[f32], m: usize) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
    match originals {
        Some(px) => {
            let names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();
            let feats = objective.features(px, m, &names)?;
            let sizes: Vec<usize> = feats.iter().map(|f| f.len() / m).collect();
            let mut out = Vec::with_capacity(layers.len());
            for ((l, f), &size) in layers.iter().zip(feats).zip(&sizes) {
                out.push(match &l.units {
                    Some(u) => crate::fit::features::columns(&f, size, u),
                    None => f,
                });
            }
            Ok((out, sizes))
        }
        None => {
            let mut out = Vec::with_capacity(layers.len());
            let mut sizes = Vec::with_capacity(layers.len());
            for l in layers {
                let (path, info) = l.decoder.as_ref().ok_or_else(|| Error::Invalid(format!("layer `{}`: whole layers are targets of --oracle runs only", l.name)))?;
                let (d, _) = decode_voxels(path, x, m)?;
                out.push(crate::fit::features::rescale(&d, info)?);
                sizes.push(info.layer_units);
            }
            Ok((out, sizes))
        }
    }
}
