//! percept from Python: the percept library's jobs on numpy arrays.
//!
//! Arrays come in as float32 or float64, C or Fortran order (a C-ordered float32 array is read
//! in place; anything else is converted once); results go out as new float32 arrays. Long calls
//! release the GIL and report progress through an optional `progress(stage, done, total)`
//! callable. Every library error becomes a `percept.PerceptError` whose message is the error's
//! chain, worded exactly as the command line prints it.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use percept::eval::{mean, Scores};
use percept::fit::{Cv, FitSpec, RidgeOptions};
use percept::gpu::DType;
use percept::io::image::Rgb;
use percept::io::output::write_atomic;
use percept::nn::taesd::{Taesd, LATENT_CHANNELS};
use percept::pipeline::Context;
use percept::progress::Progress;
use percept_core::Target;

pyo3::create_exception!(_native, PerceptError, PyException, "An error of the percept library; the message is its whole chain of causes.");

/// The library's error as a Python exception, with the message the CLI prints.
fn err(e: percept::Error) -> PyErr {
    PerceptError::new_err(e.chain())
}

fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// The jobs' shared context: the GPU, opened on first use, once per process.
fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(Context::new)
}

// ---------------------------------------------------------------------------------------------
// Arrays in and out.

enum Data<'py> {
    /// A C-contiguous float32 array, read in place.
    Borrowed(PyReadonlyArrayDyn<'py, f32>),
    /// A converted copy (float64, Fortran order, strided views, lists...).
    Owned(Vec<f32>),
}

/// A float array in C order: `shape` and row-major values.
struct Floats<'py> {
    shape: Vec<usize>,
    data: Data<'py>,
}

impl Floats<'_> {
    fn slice(&self) -> &[f32] {
        match &self.data {
            Data::Borrowed(a) => a.as_slice().unwrap_or(&[]),
            Data::Owned(v) => v,
        }
    }
}

/// Reads `obj` (named `name` in errors) as float32 values in C order, copying only when the
/// array is not already C-contiguous float32.
fn floats<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Floats<'py>> {
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        let shape = a.shape().to_vec();
        if a.is_c_contiguous() && a.as_slice().is_ok() {
            return Ok(Floats { shape, data: Data::Borrowed(a) });
        }
        // Logical (C) order, whatever the memory layout.
        let v = a.as_array().iter().copied().collect();
        return Ok(Floats { shape, data: Data::Owned(v) });
    }
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, f64>>() {
        let shape = a.shape().to_vec();
        let v = a.as_array().iter().map(|&x| x as f32).collect();
        return Ok(Floats { shape, data: Data::Owned(v) });
    }
    // Anything else numpy reads as numbers (lists, integers, float16).
    let np = obj.py().import("numpy")?;
    let converted = np
        .call_method1("asarray", (obj, "float32"))
        .map_err(|e| PyTypeError::new_err(format!("{name}: expected an array of numbers (float32 or float64): {e}")))?;
    let a = converted.extract::<PyReadonlyArrayDyn<'py, f32>>().map_err(|_| PyTypeError::new_err(format!("{name}: expected an array of numbers")))?;
    let shape = a.shape().to_vec();
    let v = a.as_array().iter().copied().collect();
    Ok(Floats { shape, data: Data::Owned(v) })
}

/// A new float32 array of `shape` holding `data`.
fn array<'py>(py: Python<'py>, shape: &[usize], data: Vec<f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| value_error(format!("result of shape {shape:?}: {e}")))?;
    Ok(a.into_pyarray(py))
}

fn array_f64<'py>(py: Python<'py>, data: Vec<f64>) -> Bound<'py, PyArrayDyn<f64>> {
    let n = data.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), data).expect("a vector").into_pyarray(py)
}

/// Images `(n, H, W, 3)` (or one `(H, W, 3)`, then `single`) as `Rgb`s.
fn images(x: &Floats<'_>, name: &str) -> PyResult<(Vec<Rgb>, bool)> {
    let (n, h, w, single) = match x.shape[..] {
        [h, w, 3] => (1, h, w, true),
        [n, h, w, 3] => (n, h, w, false),
        _ => return Err(value_error(format!("{name}: images must be (n, H, W, 3) or (H, W, 3) RGB in [0, 1], got shape {:?}", x.shape))),
    };
    let data = x.slice();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let px = i / 3;
        return Err(value_error(format!("{name}: image {}, pixel ({}, {}) is {} (NaN or infinite)", px / (h * w), px % (h * w) / w, px % w, data[i])));
    }
    let per = h * w * 3;
    let imgs = (0..n).map(|k| Rgb { height: h, width: w, data: data[k * per..(k + 1) * per].to_vec() }).collect();
    Ok((imgs, single))
}

/// `Rgb`s of one size as `(n, H, W, 3)`, values clamped to [0, 1].
fn images_out<'py>(py: Python<'py>, imgs: &[Rgb], single: bool) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (h, w) = imgs.first().map_or((0, 0), |i| (i.height, i.width));
    let data: Vec<f32> = imgs.iter().flat_map(|i| i.data.iter().map(|v| v.clamp(0.0, 1.0))).collect();
    if single && imgs.len() == 1 {
        array(py, &[h, w, 3], data)
    } else {
        array(py, &[imgs.len(), h, w, 3], data)
    }
}

// ---------------------------------------------------------------------------------------------
// Progress through a Python callable.

struct Stage {
    name: String,
    len: u64,
    done: u64,
    last: Option<Instant>,
}

/// Calls `progress(stage, done, total)` (total 0: not known yet) at most every 0.1 s within a
/// stage, and always when a stage begins and ends (the end as `done == total > 0`); the first exception the callable raises is
/// re-raised once the work is over.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    stage: Mutex<Stage>,
    error: Mutex<Option<PyErr>>,
}

impl PyProgress {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        PyProgress { callback, stage: Mutex::new(Stage { name: String::new(), len: 0, done: 0, last: None }), error: Mutex::new(None) }
    }

    fn update(&self, force: bool, f: impl FnOnce(&mut Stage)) {
        let Some(cb) = &self.callback else { return };
        let report = {
            let mut s = self.stage.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s);
            let due = force || s.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
            if !due {
                return;
            }
            s.last = Some(Instant::now());
            (s.name.clone(), s.done, s.len)
        };
        Python::attach(|py| {
            if let Err(e) = cb.call1(py, report) {
                let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(e);
                }
            }
        });
    }

    /// The callable's first exception, if it raised.
    fn finish(self) -> PyResult<()> {
        match self.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Progress for PyProgress {
    fn begin(&self, what: &str, len: u64) {
        self.update(true, |s| {
            s.name = what.to_string();
            s.len = len;
            s.done = 0;
        });
    }
    fn set_len(&self, len: u64) {
        self.update(true, |s| s.len = len);
    }
    fn inc(&self, n: u64) {
        self.update(false, |s| s.done += n);
    }
    fn done(&self) {
        self.update(true, |s| {
            s.len = s.len.max(s.done).max(1);
            s.done = s.len;
        });
    }
}

fn progress_of(progress: Option<Bound<'_, PyAny>>) -> PyResult<PyProgress> {
    match progress {
        Some(p) if p.is_none() => Ok(PyProgress::new(None)),
        Some(p) if !p.is_callable() => Err(PyTypeError::new_err("progress must be a callable progress(stage, done, total) or None")),
        Some(p) => Ok(PyProgress::new(Some(p.unbind()))),
        None => Ok(PyProgress::new(None)),
    }
}

/// Runs `work` without the GIL, then re-raises the progress callable's exception if any.
fn run_detached<T: Send>(py: Python<'_>, bar: PyProgress, work: impl FnOnce(&PyProgress) -> percept::Result<T> + Send) -> PyResult<T> {
    let out = py.detach(|| work(&bar));
    bar.finish()?;
    out.map_err(err)
}

// ---------------------------------------------------------------------------------------------
// Decoders.

/// A voxel -> latent decoder in percept-core's file format (what `percept fit` writes).
///
/// From `percept.fit(...)` (then `alpha`, `cv_scores` and `cv_r` say what the fit found) or
/// `Decoder.load(path)`. `decode(voxels)` runs percept-core, exactly as the firmware does.
#[pyclass(module = "percept", name = "Decoder", frozen)]
struct Decoder {
    /// The file's bytes in 8-byte aligned storage (the core reads tensors in place).
    words: Vec<u64>,
    len: usize,
    /// Where it was loaded from (named in errors).
    path: Option<PathBuf>,
    fit: Option<FitInfo>,
}

struct FitInfo {
    alphas: Vec<f64>,
    alpha: Vec<f64>,
    per_target: bool,
    cv_scores: Vec<f64>,
    cv_r: Vec<f32>,
    report: String,
}

impl Decoder {
    fn from_vec(bytes: &[u8], path: Option<PathBuf>, fit: Option<FitInfo>) -> percept::Result<Self> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        let dst: &mut [u8] = bytemuck_bytes_mut(&mut words);
        dst[..bytes.len()].copy_from_slice(bytes);
        let d = Decoder { words, len: bytes.len(), path, fit };
        d.core()?;
        Ok(d)
    }

    fn bytes(&self) -> &[u8] {
        let all: &[u8] = bytemuck_bytes(&self.words);
        &all[..self.len]
    }

    fn name(&self) -> String {
        self.path.as_ref().map_or_else(|| "decoder".to_string(), |p| p.display().to_string())
    }

    fn core(&self) -> percept::Result<percept_core::Decoder<'_>> {
        percept_core::Decoder::from_bytes(self.bytes()).map_err(|source| percept::Error::Decoder { path: PathBuf::from(self.name()), source })
    }

    fn metadata(&self, key: &str) -> Option<String> {
        let blob = percept_core::Blob::parse(self.bytes()).ok()?;
        blob.metadata(key).ok().flatten().map(str::to_string)
    }

    /// `voxels (n, V)` -> `(n, L)`, on the core.
    fn decode_rows(&self, x: &[f32], n: usize) -> percept::Result<Vec<f32>> {
        let dec = self.core()?;
        let (v, l) = (dec.voxels(), dec.outputs());
        let mut scratch = vec![0f32; dec.scratch_len()];
        let mut out = vec![0f32; n * l];
        for (i, (x, y)) in x.chunks_exact(v).zip(out.chunks_exact_mut(l)).enumerate() {
            dec.decode(x, &mut scratch, y).map_err(|source| percept::Error::Invalid(format!("{}: trial {i}: {source}", self.name())))?;
        }
        Ok(out)
    }
}

fn bytemuck_bytes(w: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and u8 has alignment 1; the length is the same memory.
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), w.len() * 8) }
}

fn bytemuck_bytes_mut(w: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), w.len() * 8) }
}

const SETTINGS: [&str; 7] = ["method", "alphas", "alpha", "cv", "trials", "cv_r_mean", "cv_r_median"];

#[pymethods]
impl Decoder {
    /// Loads a decoder file (checked by percept-core).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| {
            let loaded = percept::io::decoder::LoadedDecoder::open(&path)?;
            Decoder::from_vec(loaded.bytes(), Some(path.clone()), None)
        })
        .map_err(err)
    }

    /// A decoder from the bytes of a decoder file.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Decoder::from_vec(data, None, None).map_err(err)
    }

    /// The decoder file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.bytes())
    }

    /// Writes the decoder file (atomically); refuses to replace a file unless `force`.
    #[pyo3(signature = (path, force = false))]
    fn save(&self, py: Python<'_>, path: PathBuf, force: bool) -> PyResult<()> {
        py.detach(|| write_atomic(&path, self.bytes(), force)).map_err(err)
    }

    /// Decodes `voxels (n, V)` (or one trial `(V,)`) into `(n, *target_shape)` (or `target_shape`).
    #[pyo3(signature = (voxels, progress = None))]
    fn decode<'py>(&self, py: Python<'py>, voxels: &Bound<'py, PyAny>, progress: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let x = floats(voxels, "voxels")?;
        let dec = self.core().map_err(err)?;
        let (v, shape) = (dec.voxels(), dec.target_shape().iter().map(|&d| d as usize).collect::<Vec<_>>());
        drop(dec);
        let (n, single) = match x.shape[..] {
            [m] if m == v => (1, true),
            [n, m] if m == v => (n, false),
            [_] | [_, _] => return Err(value_error(format!("{}: decodes {v} voxels, but the voxels have shape {:?} ({} per trial)", self.name(), x.shape, x.shape.last().copied().unwrap_or(0)))),
            _ => return Err(value_error(format!("voxels must be (trials, voxels) or (voxels,), got shape {:?}", x.shape))),
        };
        let data = x.slice();
        let bar = progress_of(progress)?;
        let out = run_detached(py, bar, |bar| {
            bar.begin("decoding", 0);
            let out = self.decode_rows(data, n);
            bar.done();
            out
        })?;
        let mut full = if single { Vec::new() } else { vec![n] };
        full.extend(&shape);
        array(py, &full, out)
    }

    /// Voxels read per trial.
    #[getter]
    fn voxels(&self) -> PyResult<usize> {
        Ok(self.core().map_err(err)?.voxels())
    }

    /// Values decoded per trial.
    #[getter]
    fn outputs(&self) -> PyResult<usize> {
        Ok(self.core().map_err(err)?.outputs())
    }

    /// Shape of one decoded target, e.g. (4, 8, 8).
    #[getter]
    fn target_shape(&self) -> PyResult<Vec<usize>> {
        Ok(self.core().map_err(err)?.target_shape().iter().map(|&d| d as usize).collect())
    }

    /// "z", "c" or "features".
    #[getter]
    fn target(&self) -> PyResult<&'static str> {
        Ok(match self.core().map_err(err)?.target() {
            Target::Z => "z",
            Target::C => "c",
            Target::Features => "features",
        })
    }

    /// The region of interest stored in the file.
    #[getter]
    fn region(&self) -> PyResult<String> {
        Ok(self.core().map_err(err)?.region().to_string())
    }

    /// Rank of a low-rank decoder (None: dense).
    #[getter]
    fn rank(&self) -> PyResult<Option<usize>> {
        Ok(self.core().map_err(err)?.rank())
    }

    /// The fitting settings stored in the file (`fit.*` metadata).
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for k in SETTINGS {
            if let Some(v) = self.metadata(&format!("fit.{k}")) {
                d.set_item(k, v)?;
            }
        }
        Ok(d)
    }

    /// The alpha chosen: a float (one for all targets), an array (per target), or None for a
    /// loaded decoder.
    #[getter]
    fn alpha<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(f) = &self.fit else { return Ok(None) };
        if f.per_target {
            Ok(Some(array_f64(py, f.alpha.clone()).into_any()))
        } else {
            Ok(Some(f.alpha.first().copied().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()))
        }
    }

    /// The alphas tried (None for a loaded decoder).
    #[getter]
    fn alphas<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArrayDyn<f64>>> {
        self.fit.as_ref().map(|f| array_f64(py, f.alphas.clone()))
    }

    /// Mean cross-validated score (negative MSE) per alpha tried (None for a loaded decoder).
    #[getter]
    fn cv_scores<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArrayDyn<f64>>> {
        self.fit.as_ref().map(|f| array_f64(py, f.cv_scores.clone()))
    }

    /// Correlation of the cross-validated predictions with each target, shaped like one
    /// target (None for a loaded decoder).
    #[getter]
    fn cv_r<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArrayDyn<f32>>>> {
        let Some(f) = &self.fit else { return Ok(None) };
        let shape = self.target_shape()?;
        Ok(Some(array(py, &shape, f.cv_r.clone())?))
    }

    /// The fit's Markdown report, as `percept fit` writes it beside the decoder (None for a
    /// loaded decoder).
    #[getter]
    fn report(&self) -> Option<String> {
        self.fit.as_ref().map(|f| f.report.clone())
    }

    fn __repr__(&self) -> String {
        match self.core() {
            Ok(d) => format!(
                "Decoder(region={:?}, target={:?}, voxels={}, target_shape={:?}{})",
                d.region(),
                match d.target() {
                    Target::Z => "z",
                    Target::C => "c",
                    Target::Features => "features",
                },
                d.voxels(),
                d.target_shape(),
                d.rank().map_or(String::new(), |r| format!(", rank={r}"))
            ),
            Err(e) => format!("Decoder(<invalid: {}>)", e.chain()),
        }
    }
}

/// A decoder argument: a `Decoder` or the path of a decoder file.
fn decoder_arg(py: Python<'_>, d: &Bound<'_, PyAny>) -> PyResult<Py<Decoder>> {
    if let Ok(dec) = d.extract::<Py<Decoder>>() {
        return Ok(dec);
    }
    let path: PathBuf = d.extract().map_err(|_| PyTypeError::new_err("decoder must be a percept.Decoder or the path of a decoder file"))?;
    Py::new(py, Decoder::load(py, path)?)
}

fn parse_target(target: &str) -> PyResult<Target> {
    match target {
        "z" => Ok(Target::Z),
        "c" => Ok(Target::C),
        t => Err(value_error(format!("target {t:?}: expected \"z\" (the VAE latent) or \"c\" (the text conditioning)"))),
    }
}

fn parse_cv(cv: &Bound<'_, PyAny>) -> PyResult<Cv> {
    if let Ok(s) = cv.extract::<String>() {
        return match s.as_str() {
            "loo" => Ok(Cv::LeaveOneOut),
            k => k.parse().map(Cv::KFold).map_err(|_| value_error(format!("cv {k:?}: expected a number of folds or \"loo\""))),
        };
    }
    cv.extract::<usize>().map(Cv::KFold).map_err(|_| value_error("cv: expected a number of folds or \"loo\""))
}

/// Fits a voxel -> target decoder by ridge regression on standardised voxels, alpha by
/// cross-validation (`percept fit --targets`): `voxels (n, V)`, `targets (n, ...)`.
#[pyfunction]
#[pyo3(signature = (voxels, targets, alphas = None, cv = None, per_target = false, rank = None, region = "early_visual", target = "z", target_shape = None, progress = None))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    voxels: &Bound<'py, PyAny>,
    targets: &Bound<'py, PyAny>,
    alphas: Option<Vec<f64>>,
    cv: Option<Bound<'py, PyAny>>,
    per_target: bool,
    rank: Option<usize>,
    region: &str,
    target: &str,
    target_shape: Option<Vec<usize>>,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Decoder> {
    let x = floats(voxels, "voxels")?;
    let y = floats(targets, "targets")?;
    let [n, v] = x.shape[..] else { return Err(value_error(format!("voxels must be (trials, voxels), got shape {:?}", x.shape))) };
    if y.shape.len() < 2 {
        return Err(value_error(format!("targets must be (trials, ...), got shape {:?}", y.shape)));
    }
    if y.shape[0] != n {
        return Err(value_error(format!("targets: {} rows but {n} trials of voxels", y.shape[0])));
    }
    let per: usize = y.shape[1..].iter().product();
    let shape = match target_shape {
        Some(s) if s.iter().product::<usize>() != per => {
            return Err(value_error(format!("target_shape {s:?} holds {} values, but each row of targets has {per} ({:?})", s.iter().product::<usize>(), &y.shape[1..])))
        }
        Some(s) => s,
        None => y.shape[1..].to_vec(),
    };
    let mut ridge = RidgeOptions { per_target, ..RidgeOptions::takagi() };
    if let Some(cv) = cv {
        ridge.cv = parse_cv(&cv)?;
    }
    if let Some(a) = alphas {
        ridge.alphas = a;
    }
    let spec = FitSpec { region: region.to_string(), target: parse_target(target)?, target_shape: shape, ridge, rank };
    let (xs, ys) = (x.slice(), y.slice());
    let bar = progress_of(progress)?;
    run_detached(py, bar, |bar| {
        bar.begin("fitting", 0);
        let t0 = Instant::now();
        let fitted = percept::fit::fit(xs, n, v, ys, &spec, bar)?;
        bar.done();
        let report = percept::fit::report(&fitted, &spec, n, v, "numpy array", t0.elapsed().as_secs_f64());
        let bytes = fitted.file.to_bytes()?;
        let info = FitInfo { alphas: spec.ridge.alphas.clone(), alpha: fitted.alpha, per_target, cv_scores: fitted.cv_score, cv_r: fitted.cv_r, report };
        Decoder::from_vec(&bytes, None, Some(info))
    })
}

// ---------------------------------------------------------------------------------------------
// TAESD.

fn taesd_dir(weights: Option<PathBuf>) -> PathBuf {
    weights.unwrap_or_else(percept::paths::taesd)
}

fn encode_batches(taesd: &Taesd, gpu: &percept::gpu::Gpu, imgs: &[Rgb], bar: &dyn Progress) -> percept::Result<Vec<f32>> {
    taesd.encode_rgb(gpu, &imgs.iter().collect::<Vec<_>>(), bar)
}

/// TAESD's latents of `images (n, H, W, 3)` in [0, 1] (H, W multiples of 8): `(n, 4, H/8, W/8)`
/// on the scale of SD's latents times 0.18215 (`percept encode`). One image `(H, W, 3)` gives
/// `(4, H/8, W/8)`.
#[pyfunction]
#[pyo3(signature = (images, weights = None, progress = None))]
fn encode<'py>(py: Python<'py>, images: &Bound<'py, PyAny>, weights: Option<PathBuf>, progress: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let x = floats(images, "images")?;
    let (imgs, single) = self::images(&x, "images")?;
    let (h, w) = imgs.first().map_or((0, 0), |i| (i.height, i.width));
    if h % 8 != 0 || w % 8 != 0 || h == 0 || w == 0 {
        return Err(value_error(format!("images: {w}x{h}; TAESD needs sides that are positive multiples of 8")));
    }
    let dir = taesd_dir(weights);
    let n = imgs.len();
    let z = run_detached(py, progress_of(progress)?, |bar| {
        let gpu = ctx().gpu()?;
        let taesd = Taesd::load(gpu, &dir, DType::F32)?;
        bar.begin("encoding", n as u64);
        let z = encode_batches(&taesd, gpu, &imgs, bar)?;
        bar.done();
        Ok(z)
    })?;
    let shape = if single { vec![LATENT_CHANNELS, h / 8, w / 8] } else { vec![n, LATENT_CHANNELS, h / 8, w / 8] };
    array(py, &shape, z)
}

fn latents_of(z: &Floats<'_>) -> PyResult<(usize, usize, usize, bool)> {
    match z.shape[..] {
        [c, h, w] if c == LATENT_CHANNELS => Ok((1, h, w, true)),
        [n, c, h, w] if c == LATENT_CHANNELS => Ok((n, h, w, false)),
        _ => Err(value_error(format!("latents must be (n, 4, h, w) or (4, h, w) (SD v1 latents have 4 channels), got shape {:?}", z.shape))),
    }
}

/// Images TAESD decodes from `latents (n, 4, h, w)` (or one `(4, h, w)`): `(n, 8h, 8w, 3)`
/// clamped to [0, 1] (`percept decode`, before rounding to 8 bits).
#[pyfunction]
#[pyo3(signature = (latents, weights = None, progress = None))]
fn decode<'py>(py: Python<'py>, latents: &Bound<'py, PyAny>, weights: Option<PathBuf>, progress: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let z = floats(latents, "latents")?;
    let (n, h, w, single) = latents_of(&z)?;
    let data = z.slice();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(value_error(format!("latents: value {i} is {} (NaN or infinite)", data[i])));
    }
    let dir = taesd_dir(weights);
    let imgs = run_detached(py, progress_of(progress)?, |bar| {
        let gpu = ctx().gpu()?;
        let taesd = Taesd::load(gpu, &dir, DType::F32)?;
        bar.begin("decoding", 0);
        let imgs = taesd.decode_latents(gpu, data, n, h, w)?;
        bar.done();
        Ok(imgs)
    })?;
    images_out(py, &imgs, single)
}

/// Reads a PNG or JPEG as `(H, W, 3)` float32 in [0, 1]; with `size`, its largest centred
/// square resized to `size` x `size` (as `percept encode --size` and `percept eval` read images).
#[pyfunction]
#[pyo3(signature = (path, size = None))]
fn load_image<'py>(py: Python<'py>, path: PathBuf, size: Option<usize>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let img = py
        .detach(|| match size {
            Some(0) => Err(percept::Error::Invalid("size must be positive".into())),
            Some(s) => Rgb::open_square(&path, s),
            None => Rgb::open(&path),
        })
        .map_err(err)?;
    images_out(py, &[img], true)
}

/// Writes `image (H, W, 3)` in [0, 1] as an 8-bit PNG (atomically; refuses to replace a file
/// unless `force`).
#[pyfunction]
#[pyo3(signature = (path, image, force = false))]
fn save_image(py: Python<'_>, path: PathBuf, image: &Bound<'_, PyAny>, force: bool) -> PyResult<()> {
    let x = floats(image, "image")?;
    if x.shape.len() != 3 {
        return Err(value_error(format!("image must be (H, W, 3), got shape {:?}", x.shape)));
    }
    let (imgs, _) = images(&x, "image")?;
    py.detach(|| imgs[0].save_png(&path, force)).map_err(err)
}

// ---------------------------------------------------------------------------------------------
// Reconstruction and evaluation.

/// A fresh private folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> percept::Result<Self> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("percept-py-{}-{nanos}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).map_err(|source| percept::Error::Io { path: dir.clone(), source })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The decoder file for the pipeline: its own path when loaded from one, else its bytes
/// written into `tmp`.
fn decoder_file(dec: &Decoder, tmp: &std::path::Path, name: &str) -> percept::Result<PathBuf> {
    match &dec.path {
        Some(p) => Ok(p.clone()),
        None => {
            let p = tmp.join(name);
            write_atomic(&p, dec.bytes(), true)?;
            Ok(p)
        }
    }
}

/// Reconstructs images from `voxels (n, V)` with a z `decoder` (a `Decoder` or a decoder file):
/// percept-core decodes the latents, TAESD renders them (`percept reconstruct` without
/// `--stimuli`). Returns `(n, 8h, 8w, 3)` in [0, 1], or `(images, latents)` with
/// `return_latents=True`.
///
/// With `sd` (a Stable Diffusion v1 folder or checkpoint), Takagi & Nishimoto's second stage
/// follows as `percept reconstruct --sd` runs it: the z images come from SD's VAE, and img2img
/// conditioned on c decoded by `decoder_c` from `voxels_c` gives `samples` images per trial of
/// `size` x `size`; returns `(images, sd_images (n, samples, size, size, 3))` (and the latents
/// last with `return_latents`). `uncond`: the unconditional context (an array (77, D) or a .npy;
/// default the empty prompt through the model's text encoder). `out`: keep the folder the
/// pipeline writes (PNGs, z.npy, grid.png) there instead of a temporary one.
#[pyfunction]
#[pyo3(signature = (decoder, voxels, taesd = None, return_latents = false, sd = None, decoder_c = None, voxels_c = None, uncond = None, samples = 1, size = 512, strength = 0.8, steps = 50, guidance = 5.0, scheduler = "ddim", seed = 0, out = None, force = false, progress = None))]
#[allow(clippy::too_many_arguments)]
fn reconstruct<'py>(
    py: Python<'py>,
    decoder: &Bound<'py, PyAny>,
    voxels: &Bound<'py, PyAny>,
    taesd: Option<PathBuf>,
    return_latents: bool,
    sd: Option<PathBuf>,
    decoder_c: Option<Bound<'py, PyAny>>,
    voxels_c: Option<Bound<'py, PyAny>>,
    uncond: Option<Bound<'py, PyAny>>,
    samples: usize,
    size: usize,
    strength: f64,
    steps: usize,
    guidance: f32,
    scheduler: &str,
    seed: u64,
    out: Option<PathBuf>,
    force: bool,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let dec = decoder_arg(py, decoder)?;
    let dec = dec.get();
    let x = floats(voxels, "voxels")?;
    let v = dec.voxels()?;
    let shape = dec.target_shape()?;
    let [n, m] = x.shape[..] else { return Err(value_error(format!("voxels must be (trials, voxels), got shape {:?}", x.shape))) };
    if m != v {
        return Err(value_error(format!("{}: decodes {v} voxels, but the voxels have shape {:?} ({m} per trial)", dec.name(), x.shape)));
    }
    let [4, h, w] = shape[..] else { return Err(value_error(format!("{}: decodes a target of shape {shape:?}, not an SD latent (4, h, w)", dec.name()))) };
    let dir = taesd_dir(taesd);
    let data = x.slice();
    let Some(model) = sd else {
        if decoder_c.is_some() || voxels_c.is_some() || out.is_some() {
            return Err(value_error("decoder_c, voxels_c and out belong to the second stage: give sd (a Stable Diffusion model) too"));
        }
        let (z, imgs) = run_detached(py, progress_of(progress)?, |bar| {
            bar.begin("decoding", 0);
            let z = dec.decode_rows(data, n)?;
            bar.done();
            bar.begin("rendering", 0);
            let gpu = ctx().gpu()?;
            let imgs = Taesd::load(gpu, &dir, DType::F32)?.decode_latents(gpu, &z, n, h, w)?;
            bar.done();
            Ok((z, imgs))
        })?;
        let images = images_out(py, &imgs, false)?;
        return if return_latents { Ok((images, array(py, &[n, 4, h, w], z)?).into_pyobject(py)?.into_any()) } else { Ok(images.into_any()) };
    };
    // The second stage, through the pipeline (files in a temporary folder).
    let (Some(decoder_c), Some(voxels_c)) = (decoder_c, voxels_c) else { return Err(value_error("the second stage (sd) needs decoder_c and voxels_c")) };
    let dec_c = decoder_arg(py, &decoder_c)?;
    let dec_c = dec_c.get();
    let xc = floats(&voxels_c, "voxels_c")?;
    if xc.shape.len() != 2 || xc.shape[0] != n {
        return Err(value_error(format!("voxels_c: shape {:?}; expected ({n}, voxels), the trials of the z voxels", xc.shape)));
    }
    let uncond = match uncond {
        None => None,
        Some(u) if u.extract::<PathBuf>().is_ok() => Some(Err(u.extract::<PathBuf>()?)),
        Some(u) => Some(Ok(floats(&u, "uncond")?)),
    };
    let sampler = match scheduler {
        "ddim" => percept::sd::Sampler::Ddim,
        "pndm" => percept::sd::Sampler::Pndm,
        s => return Err(value_error(format!("scheduler {s:?}: expected \"ddim\" or \"pndm\""))),
    };
    let sampling = percept::sd::Img2ImgOptions { strength, steps, guidance, sampler };
    let xc_data = (xc.slice(), xc.shape.clone());
    let uncond_data = match &uncond {
        None => None,
        Some(Err(p)) => Some(Err(p.clone())),
        Some(Ok(f)) => Some(Ok((f.slice(), f.shape.clone()))),
    };
    let (z, imgs, sd_imgs) = run_detached(py, progress_of(progress)?, |bar| {
        use percept::pipeline::reconstruct as rec;
        let tmp = TempDir::new()?;
        let out_dir = out.clone().unwrap_or_else(|| tmp.0.join("out"));
        let npy = |name: &str, shape: &[usize], data: &[f32]| -> percept::Result<PathBuf> {
            let p = tmp.0.join(name);
            percept::io::npy::write(&p, shape, data, true)?;
            Ok(p)
        };
        let xz = npy("voxels.npy", &[n, v], data)?;
        let xcp = npy("voxels_c.npy", &xc_data.1, xc_data.0)?;
        let uncond = match uncond_data {
            None => None,
            Some(Err(p)) => Some(p),
            Some(Ok((d, s))) => Some(npy("uncond.npy", &s, d)?),
        };
        let o = rec::Options {
            voxels: percept::io::voxels::VoxelSource::Npy(xz),
            decoder: decoder_file(dec, &tmp.0, "decoder_z.safetensors")?,
            stimuli: None,
            taesd: dir.clone(),
            sd: Some(rec::SdStage { model: model.clone(), decoder_c: decoder_file(dec_c, &tmp.0, "decoder_c.safetensors")?, voxels_c: xcp, uncond, samples, size, sampling, seed }),
            out: out_dir.clone(),
            force: force || out.is_none(),
        };
        let outcome = rec::run(ctx(), &o, bar)?;
        let z = percept::io::npy::read(&out_dir.join("z.npy"))?.data;
        let mut sd_imgs = Vec::with_capacity(n * samples);
        for i in 0..n {
            for j in 0..samples {
                sd_imgs.push(Rgb::open(&out_dir.join(format!("trial_{i:05}_sd{j}.png")))?);
            }
        }
        Ok((z, outcome.images, sd_imgs))
    })?;
    let images = images_out(py, &imgs, false)?;
    let side = sd_imgs.first().map_or(size, |i| i.width);
    let data: Vec<f32> = sd_imgs.iter().flat_map(|i| i.data.iter().copied()).collect();
    let sd_images = array(py, &[n, samples, side, side, 3], data)?;
    if return_latents {
        Ok((images, sd_images, array(py, &[n, 4, h, w], z)?).into_pyobject(py)?.into_any())
    } else {
        Ok((images, sd_images).into_pyobject(py)?.into_any())
    }
}

/// Scores `reconstructions (n, S, S, 3)` against `originals (n, H, W, 3)` (same order) as
/// `percept eval` does: PixCorr, SSIM, two-way identification in pixel space and in TAESD's
/// latent space. Originals of another size are centre-cropped and resized to S. Returns a dict
/// of the means and, under "per_image", arrays of each image's scores.
#[pyfunction]
#[pyo3(signature = (originals, reconstructions, progress = None))]
fn evaluate<'py>(py: Python<'py>, originals: &Bound<'py, PyAny>, reconstructions: &Bound<'py, PyAny>, progress: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyDict>> {
    let (ta, ra) = (floats(originals, "originals")?, floats(reconstructions, "reconstructions")?);
    let (truth, _) = images(&ta, "originals")?;
    let (recon, _) = images(&ra, "reconstructions")?;
    if ta.shape.len() != 4 || ra.shape.len() != 4 {
        return Err(value_error("originals and reconstructions must be (n, H, W, 3) stacks of images"));
    }
    if truth.len() != recon.len() {
        return Err(value_error(format!("{} originals but {} reconstructions", truth.len(), recon.len())));
    }
    if recon.len() < 2 {
        return Err(value_error(format!("two-way identification needs at least 2 pairs, found {}", recon.len())));
    }
    let side = recon[0].width;
    if side % 8 != 0 || recon[0].height != side {
        return Err(value_error(format!("reconstructions must be square with a side that is a multiple of 8, got {}x{}", recon[0].width, recon[0].height)));
    }
    let scores = run_detached(py, progress_of(progress)?, |bar| {
        let truth: Vec<Rgb> = truth
            .into_iter()
            .map(|t| if t.width == side && t.height == side { t } else { Rgb::from_image(&percept::io::image::square(&t.to_image(), side)) })
            .collect();
        bar.begin("evaluating", 2);
        let gpu = ctx().gpu()?;
        let taesd = Taesd::load(gpu, &percept::paths::taesd(), DType::F32)?;
        let l = 4 * (side / 8) * (side / 8);
        let latents = |imgs: &[Rgb]| -> percept::Result<Vec<Vec<f32>>> {
            let z = encode_batches(&taesd, gpu, imgs, &percept::progress::Silent)?;
            bar.inc(1);
            Ok(z.chunks(l).map(<[f32]>::to_vec).collect())
        };
        let (lt, lr) = (latents(&truth)?, latents(&recon)?);
        let scores = Scores::compute(&truth, &recon, Some((&lt, &lr)))?;
        bar.done();
        Ok(scores)
    })?;
    let d = PyDict::new(py);
    d.set_item("pixcorr", mean(&scores.pixcorr))?;
    d.set_item("ssim", mean(&scores.ssim))?;
    d.set_item("two_way_pixel", mean(&scores.two_way_pixel))?;
    d.set_item("two_way_latent", mean(&scores.two_way_latent))?;
    let per = PyDict::new(py);
    per.set_item("pixcorr", array_f64(py, scores.pixcorr.clone()))?;
    per.set_item("ssim", array_f64(py, scores.ssim.clone()))?;
    per.set_item("two_way_pixel", array_f64(py, scores.two_way_pixel.clone()))?;
    per.set_item("two_way_latent", array_f64(py, scores.two_way_latent.clone()))?;
    d.set_item("per_image", per)?;
    d.set_item("report", percept::eval::report(&scores, &(0..scores.pixcorr.len()).map(|i| format!("{i}")).collect::<Vec<_>>()))?;
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Text and simulation.

/// CLIP's text conditioning c (`percept embed-text`): `captions` a string or a list of strings
/// (one set, averaged: `(77, D)`), or a list of lists (one c per set: `(n, 77, D)`). `model`: a
/// Stable Diffusion folder or its text_encoder/ folder; `tokenizer`: default the model's own,
/// else the shipped CLIP tokenizer.
#[pyfunction]
#[pyo3(signature = (captions, model, tokenizer = None, progress = None))]
fn embed_text<'py>(py: Python<'py>, captions: &Bound<'py, PyAny>, model: PathBuf, tokenizer: Option<PathBuf>, progress: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (sets, single): (Vec<Vec<String>>, bool) = if let Ok(s) = captions.extract::<String>() {
        (vec![vec![s]], true)
    } else if let Ok(list) = captions.cast::<PyList>() {
        if list.iter().all(|i| i.extract::<String>().is_ok()) {
            (vec![list.extract::<Vec<String>>()?], true)
        } else {
            let sets = list
                .iter()
                .enumerate()
                .map(|(i, s)| if s.extract::<String>().is_ok() { Ok(vec![s.extract::<String>()?]) } else { s.extract::<Vec<String>>().map_err(|_| PyTypeError::new_err(format!("captions[{i}]: expected a string or a list of strings"))) })
                .collect::<PyResult<Vec<_>>>()?;
            (sets, false)
        }
    } else {
        return Err(PyTypeError::new_err("captions: expected a string, a list of strings (one set) or a list of lists of strings (one c per set)"));
    };
    let (out, l, h) = run_detached(py, progress_of(progress)?, |bar| percept::pipeline::embed::embed(ctx(), &model, tokenizer.as_deref(), &sets, bar))?;
    let shape = if single { vec![l, h] } else { vec![sets.len(), l, h] };
    array(py, &shape, out)
}

fn split_dict<'py>(py: Python<'py>, subject: &percept::sim::Subject, stimuli: &[percept::sim::Stimulus], trials: &percept::sim::Trials) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let n = trials.shown.len();
    let nv = subject.voxels.len();
    let vox = PyDict::new(py);
    for (name, range) in percept::sim::regions(subject) {
        let w = range.len();
        vox.set_item(name, array(py, &[n, w], percept::sim::columns(&trials.voxels, nv, range))?)?;
    }
    d.set_item("voxels", vox)?;
    let list = PyList::empty(py);
    for &i in &trials.shown {
        let st = &stimuli[i];
        let row = PyDict::new(py);
        row.set_item("stimulus", i)?;
        row.set_item("image", format!("stimuli/{}", st.name))?;
        row.set_item("captions", st.captions.clone())?;
        row.set_item("source", st.source.clone())?;
        row.set_item("how", st.how.clone())?;
        list.append(row)?;
    }
    d.set_item("trials", list)?;
    let shown: Vec<i64> = trials.shown.iter().map(|&i| i as i64).collect();
    d.set_item("shown", ArrayD::from_shape_vec(IxDyn(&[n]), shown).expect("a vector").into_pyarray(py))?;
    let imgs: Vec<Rgb> = stimuli.iter().map(|s| s.image.clone()).collect();
    d.set_item("images", images_out(py, &imgs, false)?)?;
    Ok(d)
}

/// Simulates a subject seeing the shipped photos (augmented) and drawn shapes and letters
/// (`percept simulate`). Returns a dict: "train" and "test", each with "voxels" (a dict of
/// region -> (trials, voxels)), "trials" (the stimulus list: one dict per trial), "shown"
/// (stimulus index per trial) and "images" (the split's distinct stimuli, (m, size, size, 3));
/// and "settings". With `out`, also writes the subject's folder as the CLI does.
/// `higher_dnn_share`: share of the higher visual voxels' signal from EfficientNet-Lite1's late
/// features (runs on the GPU; 0: none, as before).
#[pyfunction]
#[pyo3(signature = (seed = 2023, size = 64, early = 3000, higher = 1000, snr_early = 0.5, snr_higher = 0.3, test_photos = 12, crops = 16, shapes = 300, letters = 200, test_repeats = 3, out = None, force = false, progress = None, higher_dnn_share = 0.5))]
#[allow(clippy::too_many_arguments)]
fn simulate<'py>(
    py: Python<'py>,
    seed: u64,
    size: usize,
    early: usize,
    higher: usize,
    snr_early: f32,
    snr_higher: f32,
    test_photos: usize,
    crops: usize,
    shapes: usize,
    letters: usize,
    test_repeats: usize,
    out: Option<PathBuf>,
    force: bool,
    progress: Option<Bound<'py, PyAny>>,
    higher_dnn_share: f32,
) -> PyResult<Bound<'py, PyDict>> {
    use percept::sim::{cortex::PopulationSettings, dnn::DnnSettings, Settings};
    let settings = Settings {
        seed,
        size,
        test_photos,
        crops,
        shapes,
        letters,
        test_repeats,
        population: PopulationSettings { early, higher, snr_early, snr_higher, ..Settings::default().population },
        // The default imagery photos, or every held-out photo when fewer are held out.
        imagery: percept::sim::imagery::ImagerySettings { photos: Settings::default().imagery.photos.min(test_photos), ..Settings::default().imagery },
        dnn: DnnSettings { share: higher_dnn_share, ..DnnSettings::default() },
        ..Settings::default()
    };
    let subject = run_detached(py, progress_of(progress)?, |bar| match &out {
        Some(dir) => percept::pipeline::simulate::run(ctx(), &settings, dir, force, bar),
        None => {
            settings.dnn.check()?;
            let gpu = if settings.dnn.share > 0.0 { Some(ctx().gpu()?) } else { None };
            percept::sim::simulate(&settings, &percept::sim::shipped_photos()?, gpu, bar)
        }
    })?;
    let d = PyDict::new(py);
    d.set_item("train", split_dict(py, &subject, &subject.train_stimuli, &subject.train)?)?;
    d.set_item("test", split_dict(py, &subject, &subject.test_stimuli, &subject.test)?)?;
    d.set_item("settings", subject.settings.describe())?;
    let regions = PyDict::new(py);
    for (name, range) in percept::sim::regions(&subject) {
        regions.set_item(name, (range.start, range.end))?;
    }
    d.set_item("regions", regions)?;
    Ok(d)
}

/// Where percept finds its shipped files (weights/taesd, the stimuli).
#[pyfunction]
fn shipped(rel: &str) -> PathBuf {
    percept::paths::shipped(rel)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Mesa's Vulkan driver complains on stderr when this is unset; give it a private folder
    // (as the command line does).
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("percept-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
    m.add("PerceptError", m.py().get_type::<PerceptError>())?;
    m.add_class::<Decoder>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(load_image, m)?)?;
    m.add_function(wrap_pyfunction!(save_image, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(embed_text, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(shipped, m)?)?;
    Ok(())
}
