//! `percept simulate`: a simulated subject.

use anyhow::Result;
use percept::sim::{cortex::PopulationSettings, Settings};

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
}

pub fn run(a: Args) -> Result<()> {
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
        ..Settings::default()
    };
    let out = &a.output.out;
    let subject = percept::pipeline::simulate::run(&settings, out, a.output.force, &Bars::default())?;
    println!(
        "{}: {} training trials, {} test trials ({} photos held out), {} voxels",
        out.display(),
        subject.train.shown.len(),
        subject.test.shown.len(),
        subject.test_stimuli.len(),
        subject.voxels.len()
    );
    Ok(())
}
