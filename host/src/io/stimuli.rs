//! Stimulus lists: which image (and which captions) each trial showed.
//!
//! A CSV file with a header; column `image` (a path, relative to the list's folder) is
//! required, column `captions` (several separated by `|`) is optional; one row per trial, in
//! the order of the voxel rows. Repeats of an image are rows with the same path.

use std::path::{Path, PathBuf};

use crate::error::{format, io, Error, Result};

/// One trial's stimulus.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The image shown.
    pub image: PathBuf,
    /// Its captions, if any.
    pub captions: Vec<String>,
}

/// Reads a stimulus list (RFC 4180 CSV: fields with commas or quotes are quoted).
/// Quoted fields may not span lines.
pub fn read(path: &Path) -> Result<Vec<Trial>> {
    if path.is_dir() {
        return Err(Error::Invalid(format!("{}: is a directory, not a stimulus list", path.display())));
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let bad = |line: usize, what: String| Error::Invalid(format!("{}:{line}: {what}", path.display()));
    if let Some(line) = quote_spanning_lines(&text) {
        return Err(bad(line, "a quoted field opens on this line and is not closed on it (an unbalanced quote?)".into()));
    }
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    if header.iter().all(str::is_empty) {
        return Err(Error::Invalid(format!("{}: empty stimulus list", path.display())));
    }
    if let Some((i, c)) = header.iter().enumerate().find(|&(i, c)| !c.is_empty() && header.iter().take(i).any(|d| d == c)) {
        return Err(bad(1, format!("column `{c}` appears twice (column {} and an earlier one)", i + 1)));
    }
    let image_col = header.iter().position(|c| c == "image").ok_or_else(|| Error::Invalid(format!("{}: no `image` column in the header `{}`", path.display(), header.iter().collect::<Vec<_>>().join(","))))?;
    let caption_col = header.iter().position(|c| c == "captions");
    let mut trials = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.position().map_or(0, |p| p.line() as usize), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let image = record.get(image_col).filter(|s| !s.is_empty()).ok_or_else(|| bad(line, "no image".into()))?;
        let captions = caption_col.and_then(|c| record.get(c)).map(|s| s.split('|').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()).unwrap_or_default();
        trials.push(Trial { image: dir.join(image), captions });
    }
    Ok(trials)
}

/// The line (1-based) of the first quoted field that is not closed on the line it opens on,
/// if any: the csv reader would take the newlines into the field and merge rows.
pub fn quote_spanning_lines(text: &str) -> Option<usize> {
    #[derive(PartialEq)]
    enum S {
        Start,
        Plain,
        Quoted(usize),
        Closed,
    }
    let mut s = S::Start;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (&s, c) {
            (S::Quoted(open), '"') => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else if *open != line {
                    return Some(*open);
                } else {
                    s = S::Closed;
                }
            }
            (S::Quoted(_), '\n') => line += 1,
            (S::Quoted(_), _) => {}
            (_, '\n') => {
                line += 1;
                s = S::Start;
            }
            (_, ',') => s = S::Start,
            (S::Start, '"') => s = S::Quoted(line),
            (S::Start, ' ' | '\t' | '\r') => {}
            (S::Start | S::Closed, _) => s = S::Plain,
            (S::Plain, _) => {}
        }
    }
    match s {
        S::Quoted(open) => Some(open),
        _ => None,
    }
}

/// Writes a stimulus list that [`read`] reads back: columns `image` (as given, usually
/// relative to the list's folder), `captions` (joined with `|`; a `|` inside a caption becomes
/// `/`) and any extra columns, quoted where needed.
pub fn write_csv(rows: &[(String, Vec<String>, Vec<String>)], extra_columns: &[&str]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Error::Invalid(format!("writing a stimulus list: {e}"));
    let mut header = vec!["image", "captions"];
    header.extend_from_slice(extra_columns);
    w.write_record(&header).map_err(failed)?;
    for (image, captions, extra) in rows {
        let caps: Vec<String> = captions.iter().map(|c| c.replace('|', "/").replace('\n', " ")).collect();
        let mut record = vec![image.clone(), caps.join("|")];
        record.extend(extra.iter().cloned());
        w.write_record(&record).map_err(failed)?;
    }
    w.into_inner().map_err(|e| Error::Invalid(format!("writing a stimulus list: {e}")))
}

/// An image and its captions, as a `captions.json` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Captioned {
    /// The file (relative paths are taken from the JSON file's folder).
    pub path: PathBuf,
    /// Its captions (may be empty).
    pub captions: Vec<String>,
}

/// Reads a COCO-style `captions.json`: a list of `{"file": ..., "captions": [...]}`.
pub fn read_captions_json(path: &Path) -> Result<Vec<Captioned>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(format(path, "not JSON"))?;
    let items = v.as_array().ok_or_else(|| Error::Invalid(format!("{}: expected a list of {{file, captions}}", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let file = item["file"].as_str().ok_or_else(|| Error::Invalid(format!("{}: entry {i} has no `file`", path.display())))?;
            let captions = match &item["captions"] {
                serde_json::Value::Null => Vec::new(),
                serde_json::Value::Array(c) => c
                    .iter()
                    .map(|s| s.as_str().map(String::from).ok_or_else(|| Error::Invalid(format!("{}: entry {i} ({file}): a caption that is not a string: {s}", path.display()))))
                    .collect::<Result<_>>()?,
                other => return Err(Error::Invalid(format!("{}: entry {i} ({file}): `captions` must be a list of strings, got {other}", path.display()))),
            };
            Ok(Captioned { path: dir.join(file), captions })
        })
        .collect()
}

/// Groups trials by image: `(distinct images in first-seen order, for each the trial rows)`.
pub fn repeats(trials: &[Trial]) -> (Vec<PathBuf>, Vec<Vec<usize>>) {
    let mut images: Vec<PathBuf> = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for (i, t) in trials.iter().enumerate() {
        match images.iter().position(|p| *p == t.image) {
            Some(k) => rows[k].push(i),
            None => {
                images.push(t.image.clone());
                rows.push(vec![i]);
            }
        }
    }
    (images, rows)
}

/// Averages the rows of `x (trials, width)` over each group of repeats (as NSD users do for
/// the test set): `(groups, width)`.
pub fn average_rows(x: &[f32], width: usize, groups: &[Vec<usize>]) -> Vec<f32> {
    let mut out = vec![0f32; groups.len() * width];
    for (g, rows) in groups.iter().enumerate() {
        for &r in rows {
            for j in 0..width {
                out[g * width + j] += x[r * width + j] / rows.len() as f32;
            }
        }
    }
    out
}
