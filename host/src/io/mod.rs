//! Files in and out, with no GPU and no model: numpy arrays, NIfTI volumes, images, stimulus
//! lists, decoder files, and atomic outputs. Every reader names the file at fault.

pub mod decoder;
pub mod image;
pub mod nifti;
pub mod npy;
pub mod output;
pub mod stimuli;
pub mod voxels;
