//! Progress of long work, reported through a trait: the library says which stage it is in and
//! how far along; the caller (the CLI's bars, a notebook, nothing at all) decides how it looks.

/// Receives progress. Stages follow one another; `inc` may be called from several threads.
pub trait Progress: Sync {
    /// A new stage called `what` of `len` steps (0: not known yet).
    fn begin(&self, what: &str, len: u64);
    /// The current stage turns out to have `len` steps.
    fn set_len(&self, len: u64);
    /// `n` more steps of the current stage are done.
    fn inc(&self, n: u64);
    /// The current stage is over.
    fn done(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64) {}
    fn set_len(&self, _: u64) {}
    fn inc(&self, _: u64) {}
    fn done(&self) {}
}
