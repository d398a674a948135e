//! `percept simulate`: a simulated subject.

use anyhow::Result;
use percept::pipeline::Context;
use percept::sim::{cortex::PopulationSettings, dnn::DnnSettings, imagery::ImagerySettings, Settings};

use crate::args::OutputArgs;
use crate::bars::Bars;

/// Arguments of `percept simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// The folder to write.
    #[command(flatten)]
    output: OutputArgs,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 2023)]
    seed: u64,
    /// Stimulus side in pixels (a multiple of 8, 32 to 1024).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Early visual voxels.
    #[arg(long, default_value_t = 3000)]
    early: usize,
    /// Higher visual voxels.
    #[arg(long, default_value_t = 1000)]
    higher: usize,
    /// Median single-trial signal-to-noise ratio of early visual voxels.
    #[arg(long, default_value_t = 0.5)]
    snr_early: f32,
    /// Median single-trial signal-to-noise ratio of higher visual voxels.
    #[arg(long, default_value_t = 0.3)]
    snr_higher: f32,
    /// Photos held out whole for testing.
    #[arg(long, default_value_t = 12)]
    test_photos: usize,
    /// Augmented crops per training photo.
    #[arg(long, default_value_t = 16)]
    crops: usize,
    /// Drawn shapes.
    #[arg(long, default_value_t = 300)]
    shapes: usize,
    /// Drawn letters.
    #[arg(long, default_value_t = 200)]
    letters: usize,
    /// Repeats of each test photo.
    #[arg(long, default_value_t = 3)]
    test_repeats: usize,
    /// Held-out photos the subject also imagines (mental imagery trials) [default: 6, or every
    /// held-out photo when fewer are held out].
    #[arg(long)]
    imagery_photos: Option<usize>,
    /// New drawn shapes the subject imagines.
    #[arg(long, default_value_t = 6)]
    imagery_shapes: usize,
    /// New drawn letters the subject imagines.
    #[arg(long, default_value_t = 4)]
    imagery_letters: usize,
    /// Trials per imagined image.
    #[arg(long, default_value_t = 4)]
    imagery_repeats: usize,
    /// Early visual signal during imagery as a share of seeing's (0-1).
    #[arg(long, default_value_t = 0.25)]
    imagery_early_gain: f32,
    /// Higher visual signal during imagery as a share of seeing's (0-1).
    #[arg(long, default_value_t = 0.7)]
    imagery_higher_gain: f32,
    /// Share (0-1) of each higher visual voxel's signal variance driven by a random mixture of
    /// EfficientNet-Lite1's late features (weights/efficientnet-lite1; runs on the GPU); the rest
    /// is coarse content and words, 30:70. 0: higher visual voxels as without this term.
    #[arg(long, default_value_t = 0.5)]
    higher_dnn_share: f32,
    /// Side (px) the stimuli are resized to for EfficientNet-Lite1.
    #[arg(long, default_value_t = 64)]
    dnn_side: usize,
}

pub fn run(a: Args, ctx: &Context) -> Result<()> {
    anyhow::ensure!(a.size <= percept::sim::MAX_SIZE, "--size {} is more than {}", a.size, percept::sim::MAX_SIZE);
    anyhow::ensure!(a.early > 0 && a.higher > 0, "--early {} --higher {}: each region needs at least one voxel", a.early, a.higher);
    let settings = Settings {
        seed: a.seed,
        size: a.size,
        test_photos: a.test_photos,
        crops: a.crops,
        shapes: a.shapes,
        letters: a.letters,
        test_repeats: a.test_repeats,
        population: PopulationSettings { early: a.early, higher: a.higher, snr_early: a.snr_early, snr_higher: a.snr_higher, ..Settings::default().population },
        imagery: ImagerySettings {
            photos: a.imagery_photos.unwrap_or(6.min(a.test_photos)),
            shapes: a.imagery_shapes,
            letters: a.imagery_letters,
            repeats: a.imagery_repeats,
            early_gain: a.imagery_early_gain,
            higher_gain: a.imagery_higher_gain,
            ..ImagerySettings::default()
        },
        dnn: DnnSettings { share: a.higher_dnn_share, side: a.dnn_side, ..DnnSettings::default() },
        ..Settings::default()
    };
    let out = &a.output.out;
    let subject = percept::pipeline::simulate::run(ctx, &settings, out, a.output.force, &Bars::default())?;
    println!(
        "{}: {} training trials, {} test trials ({} photos held out), {} imagery trials ({} images imagined: {} photos, {} shapes, {} letters), {} voxels",
        out.display(),
        subject.train.shown.len(),
        subject.test.shown.len(),
        subject.test_stimuli.len(),
        subject.imagery.shown.len(),
        subject.imagery_stimuli.len(),
        settings.imagery.photos,
        settings.imagery.shapes,
        settings.imagery.letters,
        subject.voxels.len()
    );
    Ok(())
}
