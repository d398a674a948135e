//! Deep image reconstruction (Shen, Horikawa, Majima & Kamitani, PLoS Comput Biol 2019): an
//! image, or a generator's latent, optimised until the image's DNN features match features
//! decoded from the brain. [`objective`]: the feature loss and its gradient on the GPU;
//! [`optim`]: the optimisers (their DGN gradient descent, Adam, pixel gradient descent with
//! blur) over any objective; [`output`]: the result as pixels, as the lab's code makes them.

pub mod objective;
pub mod optim;
pub mod output;
