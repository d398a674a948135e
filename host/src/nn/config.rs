//! Reading diffusers' config.json files: values with defaults, and errors naming the file.

use std::ops::RangeInclusive;
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
        if path.is_dir() {
            return Err(Error::Invalid(format!("{}: is a directory, not a config.json", path.display())));
        }
        let v = serde_json::from_slice(&std::fs::read(path).map_err(io(path))?).map_err(crate::error::format(path, "not JSON"))?;
        Ok(Json { path: path.to_path_buf(), v })
    }

    /// An error about this file.
    pub fn bad(&self, what: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}: {what}", self.path.display()))
    }

    /// An unsigned integer in `range`, `default` when absent (or null); the error names the
    /// file, the key and the allowed range.
    pub fn uint(&self, k: &str, default: usize, range: RangeInclusive<usize>) -> Result<usize> {
        match self.v.get(k).filter(|x| !x.is_null()) {
            Some(x) => self.in_range(k, x, &range),
            None => Ok(default),
        }
    }

    /// `x` (the value of `k`) as an integer in `range`.
    pub fn in_range(&self, k: &str, x: &Value, range: &RangeInclusive<usize>) -> Result<usize> {
        match x.as_u64().and_then(|x| usize::try_from(x).ok()) {
            Some(v) if range.contains(&v) => Ok(v),
            _ => Err(self.bad(format!("`{k}` = {x}: must be an integer from {} to {}", range.start(), range.end()))),
        }
    }

    /// A list of `len` unsigned integers, each in `range` (required).
    pub fn uints(&self, k: &str, len: RangeInclusive<usize>, range: RangeInclusive<usize>) -> Result<Vec<usize>> {
        let a = self.v.get(k).and_then(Value::as_array).ok_or_else(|| self.bad(format!("missing `{k}` (a list of integers)")))?;
        if !len.contains(&a.len()) {
            return Err(self.bad(format!("`{k}` has {} entries; {} to {} expected", a.len(), len.start(), len.end())));
        }
        a.iter().enumerate().map(|(i, x)| self.in_range(&format!("{k}[{i}]"), x, &range)).collect()
    }

    /// Fails unless every one of `values` (named by `what`) is a multiple of `k` (named by `key`).
    pub fn divides(&self, key: &str, k: usize, what: &str, values: &[usize]) -> Result<()> {
        match values.iter().find(|&&v| v % k != 0) {
            Some(v) => Err(self.bad(format!("`{key}` = {k} does not divide {what} {v}"))),
            None => Ok(()),
        }
    }

    /// A list of strings, if present.
    pub fn strings(&self, k: &str) -> Option<Vec<String>> {
        self.v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
    }

    /// A number in `range`, `default` when absent (or null); the error names the file, the
    /// key and the allowed range.
    pub fn float(&self, k: &str, default: f64, range: RangeInclusive<f64>) -> Result<f32> {
        match self.v.get(k).filter(|x| !x.is_null()) {
            Some(x) => match x.as_f64() {
                Some(v) if range.contains(&v) => Ok(v as f32),
                _ => Err(self.bad(format!("`{k}` = {x}: must be a number from {:e} to {:e}", range.start(), range.end()))),
            },
            None => Ok(default as f32),
        }
    }

    /// A boolean, `default` when absent.
    pub fn flag(&self, k: &str, default: bool) -> bool {
        self.v.get(k).and_then(Value::as_bool).unwrap_or(default)
    }
}
