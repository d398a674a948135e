//! The percept command line: one small module per command, each a clap `Args` struct and a
//! `run` that calls one library function (`percept::pipeline`) and prints what it made.

mod args;
mod bars;
mod demo;
mod embed;
mod encode;
mod eval;
mod features;
mod fit;
mod gpu;
mod img2img;
mod inspect;
mod reconstruct;
mod simulate;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "percept", version, about = "Reconstruct seen images from fMRI activity (Takagi & Nishimoto, CVPR 2023)")]
struct Cli {
    /// Print what is being done (-v), and more detail (-vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the main job on the shipped files: simulate a subject, fit, reconstruct the held-out
    /// photos, evaluate; writes a grid PNG and a report.
    Demo(demo::Args),
    /// Encodes an image into an SD v1 latent with TAESD: writes (4, size/8, size/8) float32
    /// .npy, on the scale of SD's latents times 0.18215.
    Encode(encode::EncodeArgs),
    /// Decodes an SD v1 latent (.npy, (4, h, w) or (1, 4, h, w)) into a PNG with TAESD.
    Decode(encode::DecodeArgs),
    /// Fits a voxel -> latent decoder by ridge regression (alpha by cross-validation) and
    /// writes it in percept-core's format, with a report beside it.
    Fit(fit::Args),
    /// Embeds captions with CLIP's text encoder (SD v1's text_encoder/): writes c, the
    /// (77, 768) last hidden state, averaged over each image's captions.
    EmbedText(embed::Args),
    /// Simulates a subject seeing the shipped photos (augmented) and drawn shapes and letters:
    /// stimuli, voxels (.npy and NIfTI), stimulus lists and settings, into one folder.
    Simulate(simulate::Args),
    /// Reconstructs images from voxels: decodes z with a decoder file (percept-core) and
    /// renders it with TAESD's decoder; writes PNGs, the latents and a grid.
    Reconstruct(reconstruct::Args),
    /// Scores reconstructions against the images seen (PixCorr, SSIM, two-way identification
    /// in pixel and latent space): reads `pairs.csv` in a `percept reconstruct` folder.
    Eval(eval::Args),
    /// Stable Diffusion v1 img2img from a latent (Takagi & Nishimoto's second stage): noise the
    /// init latent to the strength's timestep, denoise with classifier-free guidance on c,
    /// write the latent (.npy) or the VAE-decoded image (.png).
    Img2img(img2img::Args),
    /// Prints what a decoder file holds: region, target, sizes and fitting settings.
    Inspect(inspect::Args),
    /// Prints the GPU adapter percept runs on (PERCEPT_ADAPTER, WGPU_BACKEND choose it); fails
    /// when there is none.
    Gpu(gpu::Args),
}

fn main() {
    // Mesa's Vulkan driver complains on stderr when this is unset; give it a private folder.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("percept-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
    // The JPEG decoder's panics are caught and reported as errors naming the file
    // (io::image::open_rgb8); every other panic is printed as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !percept::io::image::is_caught_decoder_panic(info) {
            default_hook(info);
        }
    }));
    // An interrupt (SIGINT, SIGTERM, SIGHUP) removes the temporary files and output locks in
    // flight, so that it leaves only whole outputs behind.
    if let Err(e) = ctrlc::set_handler(|| {
        percept::io::output::cleanup_in_flight();
        std::process::exit(130);
    }) {
        eprintln!("warning: cannot handle interrupts ({e}): an interrupted run may leave *.tmp and *.lock files");
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .init();
    // The one GPU of the run, opened when a command first needs it.
    let ctx = percept::pipeline::Context::new();
    match cli.command {
        Command::Demo(a) => demo::run(a, &ctx),
        Command::Encode(a) => encode::run_encode(a, &ctx),
        Command::Decode(a) => encode::run_decode(a, &ctx),
        Command::Fit(a) => fit::run(a, &ctx),
        Command::EmbedText(a) => embed::run(a, &ctx),
        Command::Simulate(a) => simulate::run(a, &ctx),
        Command::Reconstruct(a) => reconstruct::run(a, &ctx),
        Command::Eval(a) => eval::run(a, &ctx),
        Command::Img2img(a) => img2img::run(a, &ctx),
        Command::Inspect(a) => inspect::run(a),
        Command::Gpu(a) => gpu::run(a, &ctx),
    }
}
