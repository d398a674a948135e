//! numpy `.npy` arrays of f32 (little-endian, C order), with shapes.

use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{io, Error, Result};

/// An f32 array and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f32>,
}

/// The largest .npy header read (numpy writes a few hundred bytes; version 2 allows 4 GiB).
const MAX_HEADER: u64 = 1 << 20;

/// Reads an `.npy` file of float32, float64 or float16 (converted to f32), either byte order,
/// C or Fortran order (returned in C order). The header is checked against the file's real
/// length before any allocation: a truncated file, trailing bytes, a shape whose size overflows
/// or an allocation that fails are errors naming the file, never an abort.
pub fn read(path: &Path) -> Result<Array> {
    use std::io::Read;
    let bad = |what: String| Error::Invalid(format!("{}: {what}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let meta = f.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let len = meta.len();
    let mut pre = [0u8; 12];
    if len < 10 {
        return Err(bad(format!("not a .npy file ({len} bytes)")));
    }
    f.read_exact(&mut pre[..10]).map_err(io(path))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (prefix, header_len) = match pre[6] {
        1 => (10u64, u64::from(u16::from_le_bytes([pre[8], pre[9]]))),
        2 | 3 => {
            if len < 12 {
                return Err(bad(format!("not a .npy file ({len} bytes)")));
            }
            f.read_exact(&mut pre[10..12]).map_err(io(path))?;
            (12, u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])))
        }
        v => return Err(bad(format!(".npy format version {v} is not supported (1, 2 or 3)"))),
    };
    if header_len > MAX_HEADER || prefix + header_len > len {
        return Err(bad(format!("header of {header_len} bytes, but the file has {len} bytes (limit {MAX_HEADER})")));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(io(path))?;
    let header = String::from_utf8_lossy(&header);
    let h = parse_header(&header).map_err(|what| bad(format!("header `{}`: {what}", header.trim())))?;
    let count = h.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| bad(format!("shape {:?} has more elements than this machine can address", h.shape)))?;
    let bytes = count.checked_mul(h.size).filter(|&b| (b as u64) < u64::MAX / 2).ok_or_else(|| bad(format!("shape {:?} is too large", h.shape)))? as u64;
    let have = len - prefix - header_len;
    if have < bytes {
        return Err(bad(format!("truncated: shape {:?} of {} needs {bytes} bytes of data, the file has {have}", h.shape, h.descr)));
    }
    if have > bytes {
        return Err(bad(format!("{} bytes after the data of shape {:?} ({} dtype); the file is not one array", have - bytes, h.shape, h.descr)));
    }
    let mut raw: Vec<u8> = Vec::new();
    raw.try_reserve_exact(bytes as usize).map_err(|_| bad(format!("cannot allocate {bytes} bytes for shape {:?}", h.shape)))?;
    raw.resize(bytes as usize, 0);
    f.read_exact(&mut raw).map_err(io(path))?;
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(count).map_err(|_| bad(format!("cannot allocate {count} values for shape {:?}", h.shape)))?;
    let word = |c: &[u8]| -> [u8; 8] {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        if h.big_endian {
            w[..c.len()].reverse();
        }
        w
    };
    match h.size {
        4 => data.extend(raw.chunks_exact(4).map(|c| { let w = word(c); f32::from_le_bytes([w[0], w[1], w[2], w[3]]) })),
        8 => data.extend(raw.chunks_exact(8).map(|c| f64::from_le_bytes(word(c)) as f32)),
        _ => data.extend(raw.chunks_exact(2).map(|c| { let w = word(c); half::f16::from_le_bytes([w[0], w[1]]).to_f32() })),
    }
    if h.fortran && h.shape.len() > 1 {
        data = fortran_to_c(&data, &h.shape);
    }
    Ok(Array { shape: h.shape, data })
}

/// What a .npy header says.
struct Header {
    descr: String,
    size: usize,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
}

/// Parses numpy's header dict, `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(h: &str) -> std::result::Result<Header, String> {
    let value = |key: &str| -> std::result::Result<&str, String> {
        let k = h.find(&format!("'{key}'")).ok_or_else(|| format!("no '{key}'"))?;
        let rest = h[k + key.len() + 2..].trim_start();
        rest.strip_prefix(':').map(str::trim_start).ok_or_else(|| format!("no value for '{key}'"))
    };
    let d = value("descr")?;
    let descr: String = d.strip_prefix('\'').and_then(|r| r.split('\'').next()).ok_or_else(|| "descr is not a string".to_string())?.to_string();
    let (big_endian, size) = match descr.as_str() {
        "<f4" | "=f4" | "|f4" => (false, 4),
        ">f4" => (true, 4),
        "<f8" | "=f8" | "|f8" => (false, 8),
        ">f8" => (true, 8),
        "<f2" | "=f2" | "|f2" => (false, 2),
        ">f2" => (true, 2),
        other => return Err(format!("dtype {other}; expected float32 (<f4), float64 (<f8) or float16 (<f2)")),
    };
    let fo = value("fortran_order")?;
    let fortran = if fo.starts_with("True") {
        true
    } else if fo.starts_with("False") {
        false
    } else {
        return Err("fortran_order is not True or False".into());
    };
    let sh = value("shape")?;
    let inner = sh.strip_prefix('(').and_then(|r| r.split(')').next()).ok_or_else(|| "shape is not a tuple".to_string())?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches('L').parse::<usize>().map_err(|_| format!("shape entry `{t}` is not a size")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Header { descr, size, big_endian, fortran, shape })
}

/// Values of a Fortran-order (first index fastest) array of `shape`, in C order.
fn fortran_to_c(x: &[f32], shape: &[usize]) -> Vec<f32> {
    let n = x.len();
    let mut out = vec![0f32; n];
    let mut idx = vec![0usize; shape.len()];
    for v in out.iter_mut() {
        // idx walks C order (last index fastest); its Fortran offset is sum idx_k * prod_{j<k} shape_j.
        let (mut off, mut stride) = (0, 1);
        for (k, &i) in idx.iter().enumerate() {
            off += i * stride;
            stride *= shape[k];
        }
        *v = x[off];
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Writes `data` with `shape` as an f32 `.npy` (atomically; refuses to replace a file unless
/// `overwrite`).
pub fn write(path: &Path, shape: &[usize], data: &[f32], overwrite: bool) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::Shape(format!("{}: shape {shape:?} does not hold {} values", path.display(), data.len())));
    }
    let mut bytes = Vec::new();
    {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
            .writer(&mut bytes)
            .begin_nd()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        w.extend(data.iter().copied()).map_err(|e| Error::Invalid(e.to_string()))?;
        w.finish().map_err(|e| Error::Invalid(e.to_string()))?;
    }
    crate::io::output::write_atomic(path, &bytes, overwrite)
}

/// A latent: a (C, h, w) or (1, C, h, w) .npy with finite values: `(data, [C, h, w])`.
pub fn read_latent(path: &Path) -> Result<(Vec<f32>, [usize; 3])> {
    let a = read(path)?;
    let shape = match a.shape[..] {
        [c, h, w] | [1, c, h, w] => [c, h, w],
        _ => return Err(Error::Shape(format!("{}: shape {:?}; expected (C, h, w) or (1, C, h, w)", path.display(), a.shape))),
    };
    if shape.contains(&0) {
        return Err(Error::Shape(format!("{}: latent of shape {:?} is empty (a dimension is 0)", path.display(), a.shape)));
    }
    ensure_finite(path, &a.data)?;
    Ok((a.data, shape))
}

/// A context (conditioning) of `d` features per token: a (S, d) or (1, S, d) .npy with finite
/// values.
pub fn read_context(path: &Path, d: usize) -> Result<Vec<f32>> {
    let a = read(path)?;
    if !matches!(a.shape[..], [_, dd] | [1, _, dd] if dd == d) {
        return Err(Error::Shape(format!("{}: shape {:?}; expected (S, {d}) or (1, S, {d})", path.display(), a.shape)));
    }
    if a.data.is_empty() {
        return Err(Error::Shape(format!("{}: context of shape {:?} is empty (a dimension is 0)", path.display(), a.shape)));
    }
    ensure_finite(path, &a.data)?;
    Ok(a.data)
}

/// Fails naming the first value of `data` (read from `path`) that is NaN or infinite.
pub fn ensure_finite(path: &Path, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::Invalid(format!("{}: value {} at flat index {i} is not finite", path.display(), data[i]))),
        None => Ok(()),
    }
}

/// `(N, H, W, C) -> (N, C, H, W)` (GPU layout to numpy/diffusers layout).
pub fn nhwc_to_nchw(x: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for i in 0..h * w {
            for k in 0..c {
                y[(b * c + k) * h * w + i] = x[(b * h * w + i) * c + k];
            }
        }
    }
    y
}

/// `(N, C, H, W) -> (N, H, W, C)`.
pub fn nchw_to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for k in 0..c {
            for i in 0..h * w {
                y[(b * h * w + i) * c + k] = x[(b * c + k) * h * w + i];
            }
        }
    }
    y
}
