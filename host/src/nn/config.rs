//! Reading diffusers' config.json files: values with defaults, and errors naming the file.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{io, Error, Result};

/// A parsed config.json and where it came from.
#[derive(Debug)]
pub struct Json {
    path: PathBuf,
    /// The parsed document.
    pub v: Value,
}

impl Json {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let v = serde_json::from_slice(&std::fs::read(path).map_err(io(path))?).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Ok(Json { path: path.to_path_buf(), v })
    }

    /// An error about this file.
    pub fn bad(&self, what: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}: {what}", self.path.display()))
    }

    /// An unsigned integer, `default` when absent.
    pub fn uint(&self, k: &str, default: usize) -> Result<usize> {
        match self.v.get(k) {
            Some(x) => x.as_u64().map(|x| x as usize).ok_or_else(|| self.bad(format!("`{k}` must be an integer"))),
            None => Ok(default),
        }
    }

    /// A list of unsigned integers (required).
    pub fn uints(&self, k: &str) -> Result<Vec<usize>> {
        self.v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect()).ok_or_else(|| self.bad(format!("missing `{k}`")))
    }

    /// A list of strings, if present.
    pub fn strings(&self, k: &str) -> Option<Vec<String>> {
        self.v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
    }

    /// A number, `default` when absent.
    pub fn float(&self, k: &str, default: f64) -> f32 {
        self.v.get(k).and_then(Value::as_f64).unwrap_or(default) as f32
    }

    /// A boolean, `default` when absent.
    pub fn flag(&self, k: &str, default: bool) -> bool {
        self.v.get(k).and_then(Value::as_bool).unwrap_or(default)
    }
}
