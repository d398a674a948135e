//! The original single-file Stable Diffusion v1 checkpoint (e.g.
//! `v1-5-pruned-emaonly.safetensors`): its key names (CompVis latent-diffusion's) mapped onto
//! diffusers' names, so that the same U-Net and VAE structs load it.
//!
//! U-Net (`model.diffusion_model.`): `input_blocks.k` holds level `(k-1)/(L+1)`'s ResNet
//! (`.0`) and transformer (`.1`), or its downsampler (`.0.op`) when `(k-1) % (L+1) == L`;
//! `middle_block.0/1/2` are ResNet, transformer, ResNet; `output_blocks.k` holds level
//! `k/(L+1)`'s ResNet (`.0`), transformer (`.1`) and upsampler (`.1.conv` or `.2.conv`);
//! ResNets name their layers `in_layers.0/2`, `emb_layers.1`, `out_layers.0/3`,
//! `skip_connection`. VAE (`first_stage_model.`): `encoder.down.i.block.j`,
//! `decoder.up.i.block.j` with the up levels numbered from the bottom, `mid.block_1/2`,
//! `mid.attn_1.{norm,q,k,v,proj_out}` (1x1 convolutions), `norm_out`, `nin_shortcut`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::nn::Weights;

/// The U-Net key `name` (without `model.diffusion_model.`) in diffusers' naming; `layers`
/// is layers_per_block.
pub fn unet_key(name: &str, layers: usize) -> Option<String> {
    let p: Vec<&str> = name.split('.').collect();
    let rest = |from: usize| p.get(from..).map(|r| r.join("."));
    let per = layers + 1;
    match *p.first()? {
        "time_embed" => Some(format!("time_embedding.{}.{}", match *p.get(1)? { "0" => "linear_1", "2" => "linear_2", _ => return None }, rest(2)?)),
        "out" => Some(format!("{}.{}", match *p.get(1)? { "0" => "conv_norm_out", "2" => "conv_out", _ => return None }, rest(2)?)),
        "input_blocks" => {
            let k: usize = p.get(1)?.parse().ok()?;
            if k == 0 {
                return if *p.get(2)? == "0" { Some(format!("conv_in.{}", rest(3)?)) } else { None };
            }
            let (i, j) = ((k - 1) / per, (k - 1) % per);
            match (*p.get(2)?, j == layers) {
                ("0", true) if *p.get(3)? == "op" => Some(format!("down_blocks.{i}.downsamplers.0.conv.{}", rest(4)?)),
                ("0", false) => Some(format!("down_blocks.{i}.resnets.{j}.{}", resnet_key(&rest(3)?)?)),
                ("1", false) => Some(format!("down_blocks.{i}.attentions.{j}.{}", rest(3)?)),
                _ => None,
            }
        }
        "middle_block" => match *p.get(1)? {
            "0" => Some(format!("mid_block.resnets.0.{}", resnet_key(&rest(2)?)?)),
            "1" => Some(format!("mid_block.attentions.0.{}", rest(2)?)),
            "2" => Some(format!("mid_block.resnets.1.{}", resnet_key(&rest(2)?)?)),
            _ => None,
        },
        "output_blocks" => {
            let k: usize = p.get(1)?.parse().ok()?;
            let (i, j) = (k / per, k % per);
            match *p.get(2)? {
                "0" => Some(format!("up_blocks.{i}.resnets.{j}.{}", resnet_key(&rest(3)?)?)),
                "1" | "2" if *p.get(3)? == "conv" && j == layers => Some(format!("up_blocks.{i}.upsamplers.0.conv.{}", rest(4)?)),
                "1" => Some(format!("up_blocks.{i}.attentions.{j}.{}", rest(3)?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A ResNet block's inner names.
fn resnet_key(rest: &str) -> Option<String> {
    const MAP: [(&str, &str); 6] = [
        ("in_layers.0.", "norm1."),
        ("in_layers.2.", "conv1."),
        ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."),
        ("out_layers.3.", "conv2."),
        ("skip_connection.", "conv_shortcut."),
    ];
    MAP.iter().find_map(|(a, b)| rest.strip_prefix(a).map(|r| format!("{b}{r}")))
}

/// The VAE key `name` (without `first_stage_model.`) in diffusers' naming; `levels` is the
/// number of entries of block_out_channels.
pub fn vae_key(name: &str, levels: usize) -> Option<String> {
    if name.starts_with("quant_conv.") || name.starts_with("post_quant_conv.") {
        return Some(name.to_string());
    }
    let (part, rest) = name.split_once('.')?;
    if part != "encoder" && part != "decoder" {
        return None;
    }
    let p: Vec<&str> = rest.split('.').collect();
    let tail = |from: usize| p.get(from..).map(|r| r.join("."));
    let block = |r: &str| -> Option<String> {
        let (layer, param) = r.split_once('.')?;
        let layer = match layer {
            "norm1" | "conv1" | "norm2" | "conv2" => layer,
            "nin_shortcut" => "conv_shortcut",
            _ => return None,
        };
        Some(format!("{layer}.{param}"))
    };
    let mapped = match *p.first()? {
        "conv_in" | "conv_out" => rest.to_string(),
        "norm_out" => format!("conv_norm_out.{}", tail(1)?),
        "mid" => match *p.get(1)? {
            "block_1" => format!("mid_block.resnets.0.{}", block(&tail(2)?)?),
            "block_2" => format!("mid_block.resnets.1.{}", block(&tail(2)?)?),
            "attn_1" => {
                let layer = match *p.get(2)? {
                    "norm" => "group_norm",
                    "q" => "to_q",
                    "k" => "to_k",
                    "v" => "to_v",
                    "proj_out" => "to_out.0",
                    _ => return None,
                };
                format!("mid_block.attentions.0.{layer}.{}", tail(3)?)
            }
            _ => return None,
        },
        "down" | "up" => {
            let i: usize = p.get(1)?.parse().ok()?;
            let (blocks, level) = if part == "encoder" { ("down_blocks", i) } else { ("up_blocks", levels.checked_sub(1 + i)?) };
            match *p.get(2)? {
                "block" => format!("{blocks}.{level}.resnets.{}.{}", p.get(3)?, block(&tail(4)?)?),
                "downsample" | "upsample" => format!("{blocks}.{level}.{}samplers.0.conv.{}", if part == "encoder" { "down" } else { "up" }, tail(4)?),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(format!("{part}.{mapped}"))
}

/// The U-Net's and the VAE's weights of a single-file checkpoint, under diffusers' names.
/// `layers`: the U-Net's layers_per_block; `vae_levels`: the VAE's number of levels.
pub fn open_single_file(path: &Path, layers: usize, vae_levels: usize) -> Result<(Weights, Weights)> {
    let all = Weights::open(&[path])?;
    if !all.names().any(|n| n.starts_with("model.diffusion_model.")) {
        return Err(Error::Invalid(format!("{}: no `model.diffusion_model.*` tensors; not an original Stable Diffusion checkpoint (a diffusers folder has unet/ and vae/)", path.display())));
    }
    let unet = all.renamed(|k| k.strip_prefix("model.diffusion_model.").and_then(|k| unet_key(k, layers)));
    let vae = all.renamed(|k| k.strip_prefix("first_stage_model.").and_then(|k| vae_key(k, vae_levels)));
    Ok((unet, vae))
}
