//! Deep image reconstruction (Shen, Horikawa, Majima & Kamitani, PLoS Comput Biol 2019): an
//! image, or a generator's latent, optimised until a network's features match features decoded
//! from the brain. [`optim`] holds the optimisers (their DGN gradient descent, Adam, pixel
//! gradient descent with blur) over any objective; [`output`] turns the result into pixels as
//! the lab's code does.

pub mod optim;
pub mod output;
