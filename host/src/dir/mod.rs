//! Deep image reconstruction (Shen, Horikawa, Majima & Kamitani, PLoS Comput Biol 2019): an
//! image, or a generator's latent, optimised until the image's DNN features match features
//! decoded from the brain. `objective`: the feature loss and its gradient on the GPU.

pub mod objective;
