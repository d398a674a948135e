//! The host's error type: every failure names the file, tensor or index at fault, and keeps
//! the error that caused it as its `source()` (printed once, after the context, by callers
//! that walk the chain such as the CLI's `{:#}`).

use std::path::PathBuf;

/// Any error kept as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the percept host library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what its format says (or cannot be written in it).
    #[error("{}: {what}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What was being done, e.g. "cannot read the image".
        what: String,
        /// What the format's library said.
        #[source]
        source: BoxError,
    },
    /// A decoder file is malformed (the core's checks).
    #[error("{}", path.display())]
    Decoder {
        /// The file.
        path: PathBuf,
        /// What the core found.
        #[source]
        source: percept_core::Error,
    },
    /// An output file exists and overwriting it was not asked for.
    #[error("{} exists; pass --force to overwrite it", .0.display())]
    Exists(PathBuf),
    /// Something other than a regular file is where an output goes: it is never replaced,
    /// not even with --force.
    #[error("{} is a {kind}; percept only ever replaces regular files, even with --force", path.display())]
    NotRegular {
        /// The output's name.
        path: PathBuf,
        /// What is there: "symbolic link", "folder", "FIFO", "device", ...
        kind: &'static str,
    },
    /// A folder of outputs already holds files (perhaps of an interrupted run).
    #[error("{} is not empty (it holds {holds}); pass --force to write into it", dir.display())]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
        /// One of the names in it.
        holds: String,
    },
    /// Another run holds the lock of an output.
    #[error("another percept run is writing {}; try again when it has finished (its lock: {})", output.display(), lock.display())]
    Busy {
        /// The output.
        output: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The GPU could not be opened or failed.
    #[error("GPU: {0}")]
    Gpu(String),
    /// Tensor shapes that do not fit an op.
    #[error("shape: {0}")]
    Shape(String),
    /// Data that cannot be written or used as it is.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The message with every cause after it, `context: cause: cause`, as the CLI prints it.
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            s.push_str(": ");
            s.push_str(&e.to_string());
            cur = e.source();
        }
        s
    }
}

/// The host's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Attaches a path and what was being done to a format library's error.
pub(crate) fn format<E: Into<BoxError>>(path: impl Into<PathBuf>, what: impl Into<String>) -> impl FnOnce(E) -> Error {
    let (path, what) = (path.into(), what.into());
    move |e| Error::Format { path, what, source: e.into() }
}
