//! Outputs: every file percept writes goes through here. A file is written to a temporary file
//! in the same folder and then published under its name, so that a crash never leaves a
//! half-written file:
//!
//! - without `overwrite`, publishing creates the name or fails (a hard link, which the OS
//!   refuses if the name exists), so two runs can never both create the same output;
//! - with `overwrite` (`--force`), only a regular file is ever replaced: a symbolic link, a
//!   folder, a device, a FIFO or a socket at the output's name is refused, never written
//!   through or over.
//!
//! A job whose outputs form one unit takes an [`OutputLock`] ([`lock`]) for the length of the
//! job, checks every output up front, and writes them together with [`write_all_atomic`]: both
//! or neither, from the same run.
//!
//! The temporary files and lock files in flight are kept in a process-wide list, so that a
//! signal handler can remove them before the process exits ([`cleanup_in_flight`]); the library
//! installs no handler itself (the command line does).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{io, Error, Result};

/// Temporary files and lock files this process has on disk for the moment.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set once [`cleanup_in_flight`] has run.
static CLEANED: AtomicBool = AtomicBool::new(false);

fn in_flight() -> MutexGuard<'static, Vec<PathBuf>> {
    IN_FLIGHT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn register(path: &Path) {
    in_flight().push(path.to_path_buf());
}

fn deregister(path: &Path) {
    let mut list = in_flight();
    if let Some(i) = list.iter().rposition(|p| p == path) {
        list.swap_remove(i);
    }
}

/// Removes every temporary file and lock file this process has in flight: for a signal handler
/// (SIGINT, SIGTERM) that exits right after. From then on, any thread of the process that starts
/// or finishes an output waits for that exit, so nothing new is left behind. Only the first
/// call does anything.
pub fn cleanup_in_flight() {
    if CLEANED.swap(true, Ordering::SeqCst) {
        return;
    }
    let list = in_flight();
    for p in list.iter() {
        let _ = fs::remove_file(p);
    }
    // Keep the list held until the process exits.
    std::mem::forget(list);
}

/// The paths in flight now (temporary and lock files), for tests.
pub fn in_flight_now() -> Vec<PathBuf> {
    in_flight().clone()
}

/// `path` with `suffix` appended to its last component (`a/b.npy` -> `a/b.npy.lock`); a
/// trailing `/` is dropped first.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let clean: PathBuf = path.components().collect();
    let mut s: OsString = clean.into_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// What a file type is, in words.
fn kind(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        return "folder";
    }
    if t.is_symlink() {
        return "symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    "special file"
}

/// Whether a regular file is at `path` (true) or nothing (false); anything else there, a link
/// included (it is not followed), is refused.
fn existing_file(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(true),
        Ok(m) => Err(Error::NotRegular { path: path.to_path_buf(), kind: kind(&m.file_type()) }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Checks a file can be created before long work starts: nothing is at `path` (or a regular
/// file, with `overwrite`), and its folder exists or can be made. Anything but a regular file
/// at `path` (a link, a folder, a device, a FIFO) is refused even with `overwrite`.
pub fn ensure_writable(path: &Path, overwrite: bool) -> Result<()> {
    if existing_file(path)? && !overwrite {
        return Err(Error::Exists(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// Checks a job that writes a folder of outputs can start: `dir` does not exist, or is an empty
/// folder, or `force` (then files of an earlier run in it are replaced). A folder holding
/// anything, such as the part an interrupted run wrote, is refused without `force`.
pub fn ensure_fresh_dir(dir: &Path, force: bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(Error::Invalid(format!("{}: not a folder", dir.display()))),
        Ok(_) if force => Ok(()),
        Ok(_) => match fs::read_dir(dir).map_err(io(dir))?.next() {
            Some(entry) => Err(Error::NotEmpty { dir: dir.to_path_buf(), holds: entry.map_err(io(dir))?.file_name().to_string_lossy().into_owned() }),
            None => Ok(()),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, so that a crash
/// never leaves a half-written file; refuses to replace an existing file unless `overwrite`
/// (and even then replaces only a regular file). Without `overwrite`, the file is created
/// atomically: of two runs creating it at once, one fails with [`Error::Exists`].
pub fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    write_all_atomic(&[(path, bytes)], overwrite)
}

/// Writes several files that belong together: every one is checked and written to its
/// temporary file first, then they are published one after the other; if one fails, those
/// already published by this call are removed again, so that the set is there whole or not at
/// all. Hold the job's [`OutputLock`] so that another run cannot interleave its own set.
pub fn write_all_atomic(files: &[(&Path, &[u8])], overwrite: bool) -> Result<()> {
    for (path, _) in files {
        ensure_writable(path, overwrite)?;
    }
    let mut staged = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        staged.push(Staged::write(path, bytes)?);
    }
    let mut published: Vec<&Staged> = Vec::new();
    for s in &staged {
        if let Err(e) = s.publish(overwrite) {
            for p in published {
                p.unpublish();
            }
            return Err(e);
        }
        published.push(s);
    }
    Ok(())
}

/// A temporary file written in full, not yet published under its name. Dropping it removes
/// the temporary file.
struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    /// The temporary file's identity (device, inode) once written.
    id: Option<(u64, u64)>,
}

impl Staged {
    fn write(path: &Path, bytes: &[u8]) -> Result<Staged> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = with_suffix(path, &format!(".{}-{n}.tmp", std::process::id()));
        register(&tmp);
        let mut s = Staged { path: path.to_path_buf(), tmp, id: None };
        let mut f = OpenOptions::new().write(true).create_new(true).open(&s.tmp).map_err(io(&s.tmp))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&s.tmp))?;
        s.id = f.metadata().ok().and_then(|m| identity(&m));
        Ok(s)
    }

    /// Puts the temporary file under its name: created new (refused if the name exists) unless
    /// `overwrite`, else replacing a regular file only.
    fn publish(&self, overwrite: bool) -> Result<()> {
        if overwrite {
            existing_file(&self.path)?;
            return fs::rename(&self.tmp, &self.path).map_err(io(&self.path));
        }
        match fs::hard_link(&self.tmp, &self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::Exists(self.path.clone())),
            // A file system without hard links: claim the name, then rename over the claim.
            Err(link_err) => match OpenOptions::new().write(true).create_new(true).open(&self.path) {
                Ok(_) => fs::rename(&self.tmp, &self.path).map_err(|e| {
                    let _ = fs::remove_file(&self.path);
                    io(&self.path)(e)
                }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::Exists(self.path.clone())),
                Err(_) => Err(io(&self.path)(link_err)),
            },
        }
    }

    /// Removes the published file again, if what is at its name is still the one this wrote.
    fn unpublish(&self) {
        let ours = match (fs::symlink_metadata(&self.path).ok().and_then(|m| identity(&m)), self.id) {
            (Some(now), Some(id)) => now == id,
            (None, _) => false,
            (Some(_), None) => true,
        };
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a rename the temporary name is gone already; after a hard link it is a second
        // name of the published file.
        let _ = fs::remove_file(&self.tmp);
        deregister(&self.tmp);
    }
}

/// (device, inode) of a file, where the platform has them.
fn identity(m: &fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// An exclusive lock on one output of a job (a file, or a folder of outputs), held from the
/// up-front checks to the last write, so that two runs writing the same output never mix
/// their files: the second fails at once with [`Error::Busy`]. The lock is an OS file lock
/// (`flock`) on `<output>.lock`, which is removed when the lock is dropped (and by
/// [`cleanup_in_flight`] on a signal); the OS releases the lock of a run that dies, so a
/// leftover lock file never blocks later runs.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl OutputLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked: a run that opened it meanwhile sees, once it holds the
        // lock, that the name is gone, and takes a fresh file.
        let _ = fs::remove_file(&self.path);
        deregister(&self.path);
    }
}

/// Takes the lock of `output` (see [`OutputLock`]) or fails with [`Error::Busy`] if another
/// run holds it. Makes the folder of the lock file if needed.
pub fn lock(output: &Path) -> Result<OutputLock> {
    let path = with_suffix(output, ".lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    loop {
        existing_file(&path)?;
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io(&path))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => return Err(Error::Busy { output: output.to_path_buf(), lock: path }),
            Err(fs4::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // The run that held it before removes the file before releasing it: only the file at
        // the name now is the lock.
        let held = file.metadata().ok().and_then(|m| identity(&m));
        match fs::symlink_metadata(&path) {
            Ok(m) if identity(&m) == held => {
                register(&path);
                return Ok(OutputLock { path, _file: file });
            }
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        }
    }
}
