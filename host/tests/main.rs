//! percept's host integration tests, one module per part, in one test binary (so that CI links
//! wgpu once, not once per file). GPU tests share one device (`common::gpu`).

mod common;

mod cli;
mod clip;
mod data;
mod dir;
mod dirnet;
mod dirpipe;
mod demodir;
mod eval;
mod export;
mod featdec;
mod features;
mod fit;
mod grad;
mod hostile;
mod layering;
mod ops;
mod pipeline;
mod outputs;
mod sched;
mod sd;
mod sim;
mod taesd;
