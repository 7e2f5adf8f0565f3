//! `minivgg._minivgg`: the engine as `minivgg.keras` calls it. A thin layer: numpy arrays in
//! and out, Python's exceptions for the library's errors, the GIL released while the engine
//! computes. The training epoch, evaluation, model files, data sets and the command line are
//! the library's own functions, the same the `minivgg` binary calls.

use minivgg::data::source::{self, Cifar100Labels, DataRequest, ImageSize};
use minivgg::data::{Dataset, ImageShape, PixelEncoding, Split};
use minivgg::engine::sgd::{Sgd, SgdConfig};
use minivgg::engine::{Network, Precision};
use minivgg::model::{network_file, Shape};
use minivgg::report::tensorboard::EventWriter as TensorBoardWriter;
use minivgg::run::{RunControl, SavedEpoch};
use minivgg::store::model_file;
use minivgg::train::checkpoint;
use minivgg::train::fit::{
    evaluate, finish_epoch, predict_probabilities, train_epoch, FitConfig, Outcome, Progress,
};
use minivgg::train::history::EpochRecord;
use minivgg::train::plan::MemoryPlan;
use numpy::ndarray::{ArrayViewD, Axis};
use numpy::{
    Element, PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A library error as Python's: ValueError for what the caller gave (the command line's
/// exit code 2), RuntimeError for the rest; the message is the whole chain.
fn py_err(err: anyhow::Error) -> PyErr {
    let message = format!("{err:#}");
    if minivgg::run::is_bad_input(&err) {
        PyValueError::new_err(message)
    } else {
        PyRuntimeError::new_err(message)
    }
}

fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// Images and labels converted once for the engine (see `_minivgg.pyi`).
#[pyclass(module = "minivgg._minivgg", frozen)]
struct Images {
    split: Split,
    has_labels: bool,
}

/// An image's values as stored bytes: bytes k where every value is k/255 exactly as the
/// engine would read them (`None` if one is not), else little-endian f32.
trait Pixel: Element + Copy + Send + Sync {
    fn as_f32(self) -> f32;
    /// uint8 arrays are their own values, as Keras takes them.
    const ENCODING: Option<PixelEncoding>;
}

impl Pixel for u8 {
    fn as_f32(self) -> f32 {
        f32::from(self)
    }
    const ENCODING: Option<PixelEncoding> = Some(PixelEncoding::Raw);
}

impl Pixel for f32 {
    fn as_f32(self) -> f32 {
        self
    }
    const ENCODING: Option<PixelEncoding> = None;
}

impl Pixel for f64 {
    fn as_f32(self) -> f32 {
        // Keras casts float64 input to the model's float32 the same way.
        self as f32
    }
    const ENCODING: Option<PixelEncoding> = None;
}

/// The byte k with k/255 == `value` in the engine's arithmetic, if there is one.
fn on_byte_grid(value: f32) -> Option<u8> {
    let k = (value * 255.0).round();
    if !(0.0..=255.0).contains(&k) {
        return None;
    }
    let byte = k as u8;
    (f32::from(byte) / 255.0 == value).then_some(byte)
}

/// The first image (its index) that holds a value that is not finite, and that value.
fn first_not_finite<T: Pixel>(x: &ArrayViewD<T>) -> Option<(usize, f32)> {
    (0..x.shape()[0]).into_par_iter().find_map_first(|i| {
        x.index_axis(Axis(0), i)
            .iter()
            .map(|v| v.as_f32())
            .find(|v| !v.is_finite())
            .map(|v| (i, v))
    })
}

/// `x`'s images in the most compact encoding that gives the engine the very same values.
fn encode<T: Pixel>(x: &ArrayViewD<T>) -> Result<(PixelEncoding, Vec<u8>), String> {
    let n = x.shape()[0];
    let per_image: usize = x.shape()[1..].iter().product();
    if let Some(encoding) = T::ENCODING {
        let mut bytes = vec![0u8; n * per_image];
        bytes
            .par_chunks_mut(per_image.max(1))
            .enumerate()
            .for_each(|(i, out)| {
                for (o, v) in out.iter_mut().zip(x.index_axis(Axis(0), i).iter()) {
                    *o = v.as_f32() as u8;
                }
            });
        return Ok((encoding, bytes));
    }
    // A value on the grid is finite: the scan for NaN and infinities is needed only off it.
    let mut bytes = vec![0u8; n * per_image];
    let on_grid = bytes
        .par_chunks_mut(per_image.max(1))
        .enumerate()
        .all(|(i, out)| {
            out.iter_mut()
                .zip(x.index_axis(Axis(0), i).iter())
                .all(|(o, v)| on_byte_grid(v.as_f32()).map(|b| *o = b).is_some())
        });
    if on_grid {
        return Ok((PixelEncoding::Scaled, bytes));
    }
    drop(bytes);
    if let Some((i, value)) = first_not_finite(x) {
        return Err(format!(
            "x: image {i} holds a pixel that is not finite ({value}); the engine trains on finite values only"
        ));
    }
    let mut bytes = vec![0u8; n * per_image * 4];
    bytes
        .par_chunks_mut((per_image * 4).max(1))
        .enumerate()
        .for_each(|(i, out)| {
            for (o, v) in out.chunks_exact_mut(4).zip(x.index_axis(Axis(0), i).iter()) {
                o.copy_from_slice(&v.as_f32().to_le_bytes());
            }
        });
    Ok((PixelEncoding::Float32, bytes))
}

fn encode_array<T: Pixel>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
) -> PyResult<(PixelEncoding, Vec<u8>)> {
    let array: PyReadonlyArrayDyn<T> = x.extract()?;
    let view = array.as_array();
    py.detach(|| encode(&view)).map_err(value_error)
}

/// The labels as bytes: an integer array of one dimension, values 0 to 255.
fn label_bytes(labels: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<u8>> {
    let values: Vec<i64> = if let Ok(bytes) = labels.extract::<PyReadonlyArray1<u8>>() {
        bytes.as_array().iter().map(|&b| i64::from(b)).collect()
    } else if let Ok(ints) = labels.extract::<PyReadonlyArray1<i64>>() {
        ints.as_array().to_vec()
    } else {
        return Err(value_error(
            "labels: expected a one-dimensional uint8 or int64 array",
        ));
    };
    if values.len() != n {
        return Err(value_error(format!(
            "x and y have different lengths: {n} images and {} labels",
            values.len()
        )));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u8::try_from(v).map_err(|_| {
                value_error(format!("y: label {i} is {v}; labels are classes 0 to 255"))
            })
        })
        .collect()
}

#[pymethods]
impl Images {
    #[new]
    #[pyo3(signature = (x, labels=None))]
    fn new(
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let array = x
            .cast::<PyUntypedArray>()
            .map_err(|_| value_error("x: expected a numpy array of images"))?;
        let shape = array.shape().to_vec();
        if shape.len() != 4 {
            return Err(value_error(format!(
                "x: expected images as (N, height, width, channels), got an array of shape {shape:?}"
            )));
        }
        let dtype = array.dtype().to_string();
        let (encoding, bytes) = match dtype.as_str() {
            "uint8" => encode_array::<u8>(py, x)?,
            "float32" => encode_array::<f32>(py, x)?,
            "float64" => encode_array::<f64>(py, x)?,
            other => {
                return Err(value_error(format!(
                    "x: images of dtype {other}; expected uint8, float32 or float64"
                )))
            }
        };
        let n = shape[0];
        let has_labels = labels.is_some();
        let labels = match labels {
            Some(labels) => label_bytes(labels, n)?,
            None => vec![0; n],
        };
        let image = ImageShape {
            height: shape[1],
            width: shape[2],
            channels: shape[3],
        };
        Ok(Images {
            split: Split::encoded(image, encoding, bytes, labels),
            has_labels,
        })
    }

    fn __len__(&self) -> usize {
        self.split.len()
    }

    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let s = self.split.shape();
        (s.height, s.width, s.channels)
    }

    /// The bytes the converted images and labels take.
    #[getter]
    fn nbytes(&self) -> u64 {
        self.split.resident_bytes()
    }
}

impl Images {
    /// The largest label (-1 without labels or images).
    fn max_label(&self) -> i64 {
        match self.has_labels {
            true => self
                .split
                .labels()
                .iter()
                .max()
                .map_or(-1, |&m| i64::from(m)),
            false => -1,
        }
    }
}

/// A network, its optimizer and where its training stands (see `_minivgg.pyi`).
#[pyclass(name = "Network", module = "minivgg._minivgg")]
struct Model {
    net: Network,
    sgd: Option<Sgd>,
    progress: Progress,
    seed: u64,
}

/// The batch a new network is planned for before `fit` says (Keras' fit would take 32; the
/// tutorial's 64).
const FIRST_CAPACITY: usize = 64;

impl Model {
    fn new(net: Network, seed: u64) -> Model {
        Model {
            net,
            sgd: None,
            progress: Progress::default(),
            seed,
        }
    }

    /// Refuses images of another shape than the network takes, naming both.
    fn check_images(&self, data: &Images, what: &str) -> PyResult<()> {
        let images = Shape::from(data.split.shape());
        if images != self.net.spec.input {
            return Err(value_error(format!(
                "{what}: the model takes {} inputs; these images are {images}",
                self.net.spec.input
            )));
        }
        Ok(())
    }

    /// Refuses data without labels or with a label past the model's classes.
    fn check_labels(&self, data: &Images, what: &str) -> PyResult<()> {
        if !data.has_labels {
            return Err(value_error(format!("{what}: labels are needed")));
        }
        let classes = self.net.classes() as i64;
        if data.max_label() >= classes {
            return Err(value_error(format!(
                "{what}: a label is {}, but the model has {classes} outputs (classes 0 to {})",
                data.max_label(),
                classes - 1
            )));
        }
        Ok(())
    }

    /// The network planned for batches of `batch_size` (at most the `n` samples).
    fn plan_batches(&mut self, batch_size: usize, n: usize) -> PyResult<()> {
        if batch_size == 0 {
            return Err(value_error("batch_size must be at least 1"));
        }
        let capacity = batch_size.min(n).max(1);
        if capacity != self.net.capacity() {
            self.net = self.net.with_capacity(capacity).map_err(py_err)?;
        }
        Ok(())
    }
}

#[pymethods]
impl Model {
    #[staticmethod]
    fn from_json(spec_json: &str, seed: u64) -> PyResult<Model> {
        let spec = network_file::parse(spec_json, "sequential")
            .map_err(|e| value_error(format!("{e:#}")))?;
        let net = Network::with_precision(&spec, FIRST_CAPACITY, seed, Precision::Fp32)
            .map_err(py_err)?;
        Ok(Model::new(net, seed))
    }

    /// `seed` decides the shuffles and dropout of further training: the file keeps none.
    #[staticmethod]
    #[pyo3(signature = (path, seed=0))]
    fn load(path: PathBuf, seed: u64) -> PyResult<Model> {
        let file = checkpoint::load_model(&path, FIRST_CAPACITY, Precision::Fp32, |_| Ok(()))
            .map_err(|e| value_error(format!("{e:#}")))?;
        Ok(Model::new(file.model, seed))
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| model_file::save(&self.net, &path))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{e:#}")))
    }

    /// The architecture as a network file's JSON (docs/network-files.md), which
    /// `minivgg train --model FILE.json` reads.
    #[getter]
    fn spec_json(&self) -> PyResult<String> {
        let spec = &self.net.spec;
        let s = spec.image_shape().map_err(py_err)?;
        let file = serde_json::json!({
            "name": spec.name,
            "input": [s.height, s.width, s.channels],
            "classes": spec.classes,
            "layers": spec.layers,
        });
        serde_json::to_string_pretty(&file).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    #[getter]
    fn name(&self) -> String {
        self.net.spec.name.clone()
    }

    #[getter]
    fn classes(&self) -> usize {
        self.net.classes()
    }

    #[getter]
    fn get_class_names(&self) -> Option<Vec<String>> {
        let names = &self.net.spec.class_names;
        (!names.is_empty()).then(|| names.clone())
    }

    #[setter]
    fn set_class_names(&mut self, names: Option<Vec<String>>) -> PyResult<()> {
        let names = names.unwrap_or_default();
        if !names.is_empty() && names.len() != self.net.classes() {
            return Err(value_error(format!(
                "class_names: {} names for a model of {} classes",
                names.len(),
                self.net.classes()
            )));
        }
        self.net.spec.class_names = names;
        Ok(())
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }

    fn summary(&self) -> PyResult<String> {
        self.net.spec.summary().map_err(py_err)
    }

    fn count_params(&self) -> usize {
        self.net.params.len() + self.net.moving.len()
    }

    fn layer_names(&self) -> Vec<String> {
        self.net.placed().iter().map(|l| l.name.clone()).collect()
    }

    fn get_weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.net
            .tensors()
            .iter()
            .map(|t| {
                let flat = PyArray1::from_slice(py, self.net.values(t));
                Ok(flat.reshape(t.shape.clone())?.into_any())
            })
            .collect()
    }

    fn set_weights(&mut self, weights: Vec<PyReadonlyArrayDyn<'_, f32>>) -> PyResult<()> {
        let tensors = self.net.tensors().to_vec();
        if weights.len() != tensors.len() {
            return Err(value_error(format!(
                "set_weights: the model has {} weight arrays, got {}",
                tensors.len(),
                weights.len()
            )));
        }
        for (t, w) in tensors.iter().zip(&weights) {
            if w.shape() != t.shape.as_slice() {
                return Err(value_error(format!(
                    "set_weights: {} has shape {:?}, got {:?}",
                    t.name,
                    t.shape,
                    w.shape()
                )));
            }
        }
        for (t, w) in tensors.iter().zip(&weights) {
            let values = self.net.values_mut(t);
            for (v, w) in values.iter_mut().zip(w.as_array().iter()) {
                *v = *w;
            }
        }
        Ok(())
    }

    fn compile(&mut self, lr: f32, momentum: f32, nesterov: bool, decay: f32) -> PyResult<()> {
        // Keras' own bounds: a rate of 0 and a momentum of 1 are allowed.
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(value_error(format!(
                "learning_rate must be a non-negative number, got {lr}"
            )));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(value_error(format!(
                "momentum must be between [0, 1], got {momentum}"
            )));
        }
        if !(decay.is_finite() && decay >= 0.0) {
            return Err(value_error(format!(
                "decay must be a non-negative number, got {decay}"
            )));
        }
        let config = SgdConfig {
            lr,
            momentum,
            nesterov,
            decay,
            anneal_updates: 0,
            weight_decay: 0.0,
        };
        self.sgd = Some(Sgd::new(config, self.net.params.len()));
        Ok(())
    }

    #[getter]
    fn get_lr(&self) -> PyResult<f32> {
        Ok(self.optimizer()?.config.lr)
    }

    #[setter]
    fn set_lr(&mut self, lr: f32) -> PyResult<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(value_error(format!(
                "learning_rate must be a non-negative number, got {lr}"
            )));
        }
        self.optimizer_mut()?.config.lr = lr;
        Ok(())
    }

    #[getter]
    fn current_lr(&self) -> PyResult<f32> {
        Ok(self.optimizer()?.current_lr())
    }

    #[getter]
    fn iterations(&self) -> u64 {
        self.sgd.as_ref().map_or(0, |s| s.iterations)
    }

    fn check_memory(&self, batch_size: usize, data_bytes: u64) -> PyResult<()> {
        let plan = MemoryPlan::for_training(&self.net.spec, batch_size.max(1), 1, data_bytes)
            .map_err(py_err)?;
        plan.check_here().map_err(|e| value_error(e.to_string()))
    }

    #[pyo3(signature = (train, batch_size, shuffle, on_batch=None))]
    fn fit_epoch(
        &mut self,
        py: Python<'_>,
        train: &Images,
        batch_size: usize,
        shuffle: bool,
        on_batch: Option<Py<PyAny>>,
    ) -> PyResult<(f64, f64)> {
        self.optimizer()?;
        self.check_images(train, "fit")?;
        self.check_labels(train, "fit")?;
        if train.split.is_empty() {
            return Err(value_error("fit: x holds no images"));
        }
        self.plan_batches(batch_size, train.split.len())?;
        let config = FitConfig {
            epochs: self.progress.epoch(),
            seed: self.seed,
            progress: false,
            stop: None,
            augment: false,
            shuffle,
        };
        let Model {
            net, sgd, progress, ..
        } = self;
        let sgd = sgd.as_mut().expect("compiled");
        let mut raised: Option<PyErr> = None;
        let trained = py.detach(|| {
            train_epoch(net, sgd, &train.split, &config, progress, |p| {
                Python::attach(|py| {
                    // Ctrl-C raises KeyboardInterrupt here, after a whole batch.
                    py.check_signals()?;
                    if let Some(on_batch) = &on_batch {
                        let metrics = (
                            p.batches_done - 1,
                            p.partial.mean_loss(),
                            p.partial.accuracy(),
                        );
                        on_batch.call1(py, metrics)?;
                    }
                    Ok(())
                })
                .map_err(|e: PyErr| {
                    raised = Some(e);
                    anyhow::anyhow!("stopped from Python")
                })
            })
        });
        let (loss, acc) = (progress.partial.mean_loss(), progress.partial.accuracy());
        // A new epoch starts afresh, whether this one ended or was stopped.
        let record = EpochRecord {
            epoch: progress.epoch(),
            seconds: 0.0,
            loss,
            acc,
            val_loss: f64::NAN,
            val_acc: f64::NAN,
        };
        match trained {
            Ok(Outcome::Finished) => {
                finish_epoch(progress, record);
                Ok((loss, acc))
            }
            Ok(Outcome::Interrupted) => Err(PyKeyboardInterrupt::new_err("")),
            Err(err) => {
                *progress = Progress {
                    history: std::mem::take(&mut progress.history),
                    ..Progress::default()
                };
                Err(raised.take().unwrap_or_else(|| py_err(err)))
            }
        }
    }

    fn evaluate(
        &mut self,
        py: Python<'_>,
        data: &Images,
        batch_size: usize,
    ) -> PyResult<(f64, f64)> {
        self.check_images(data, "evaluate")?;
        self.check_labels(data, "evaluate")?;
        if data.split.is_empty() {
            return Err(value_error("evaluate: x holds no images"));
        }
        self.plan_batches(batch_size.max(self.net.capacity()), data.split.len())?;
        let net = &mut self.net;
        let (metrics, _) = py.detach(|| evaluate(net, &data.split));
        Ok((metrics.mean_loss(), metrics.accuracy()))
    }

    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        data: &Images,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_images(data, "predict")?;
        let n = data.split.len();
        self.plan_batches(batch_size.max(self.net.capacity()), n.max(1))?;
        let classes = self.net.classes();
        let net = &mut self.net;
        let flat: Vec<f32> = py.detach(|| predict_probabilities(net, &data.split).concat());
        Ok(PyArray1::from_vec(py, flat)
            .reshape([n, classes])?
            .into_any())
    }
}

impl Model {
    fn optimizer(&self) -> PyResult<&Sgd> {
        self.sgd.as_ref().ok_or_else(not_compiled)
    }

    fn optimizer_mut(&mut self) -> PyResult<&mut Sgd> {
        self.sgd.as_mut().ok_or_else(not_compiled)
    }
}

fn not_compiled() -> PyErr {
    value_error(
        "the model is not compiled: call compile() first (minivgg's model file keeps no optimizer state)",
    )
}

type Arrays<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Vec<String>,
);

/// A data set's splits as numpy arrays: images (N, H, W, C) and labels (N,), uint8.
fn arrays(py: Python<'_>, data: Dataset) -> PyResult<Arrays<'_>> {
    let images = |split: &Split| -> PyResult<Bound<'_, PyAny>> {
        let s = split.shape();
        let flat = PyArray1::from_slice(py, split.images());
        Ok(flat
            .reshape([split.len(), s.height, s.width, s.channels])?
            .into_any())
    };
    let labels = |split: &Split| PyArray1::from_slice(py, split.labels()).into_any();
    Ok((
        images(&data.train)?,
        labels(&data.train),
        images(&data.test)?,
        labels(&data.test),
        data.class_names,
    ))
}

fn load(py: Python<'_>, request: DataRequest) -> PyResult<Arrays<'_>> {
    let data = py.detach(|| source::load(&request)).map_err(py_err)?;
    arrays(py, data)
}

#[pyfunction]
#[pyo3(signature = (name, label_mode="fine"))]
fn load_dataset<'py>(py: Python<'py>, name: &str, label_mode: &str) -> PyResult<Arrays<'py>> {
    let labels = match label_mode {
        "fine" => Cifar100Labels::Fine,
        "coarse" => Cifar100Labels::Coarse,
        other => {
            return Err(value_error(format!(
                "label_mode must be \"fine\" or \"coarse\", got {other:?}"
            )))
        }
    };
    let data = match name {
        // CIFAR-10 is found as the command line's default is: $MINIVGG_DATA, then the cache.
        "cifar10" => None,
        "cifar100" | "mnist" => Some(PathBuf::from(name)),
        "fashion_mnist" => Some(PathBuf::from("fashion-mnist")),
        other => {
            return Err(value_error(format!(
                "no data set {other:?}: cifar10, cifar100, mnist or fashion_mnist"
            )))
        }
    };
    load(
        py,
        DataRequest {
            data,
            labels,
            ..DataRequest::default()
        },
    )
}

#[pyfunction]
#[pyo3(signature = (directory, image_size=(32, 32), grayscale=false, validation_split=None, skip_bad_images=false))]
fn load_image_folder(
    py: Python<'_>,
    directory: PathBuf,
    image_size: (u32, u32),
    grayscale: bool,
    validation_split: Option<f64>,
    skip_bad_images: bool,
) -> PyResult<Arrays<'_>> {
    let (height, width) = image_size;
    let size: ImageSize = format!("{width}x{height}")
        .parse()
        .map_err(|e| value_error(format!("image_size: {e}")))?;
    if !directory.is_dir() {
        return Err(value_error(format!(
            "{}: not a directory of class folders",
            directory.display()
        )));
    }
    load(
        py,
        DataRequest {
            data: Some(directory),
            image_size: Some(size),
            grayscale,
            val_split: validation_split,
            skip_bad_images,
            ..DataRequest::default()
        },
    )
}

/// The `minivgg` command (the package's console script).
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    minivgg::cli::restore_sigpipe();
    py.detach(|| minivgg::cli::main(argv.into_iter().map(Into::into)))
}

/// `minivgg train` with `flags` in this process, steered by Python (see `_minivgg.pyi`).
#[pyfunction]
fn train(py: Python<'_>, flags: Vec<String>, on_epoch: Py<PyAny>) -> PyResult<()> {
    let mut raised: Option<PyErr> = None;
    let on_saved_epoch = |saved: &SavedEpoch| {
        Python::attach(|py| {
            let record = saved.record;
            let figures = PyDict::new(py);
            figures.set_item("epoch", record.epoch)?;
            figures.set_item("epochs", saved.epochs)?;
            figures.set_item("loss", record.loss)?;
            figures.set_item("accuracy", record.acc)?;
            figures.set_item("val_loss", record.val_loss)?;
            figures.set_item("val_accuracy", record.val_acc)?;
            figures.set_item("lr", saved.lr)?;
            figures.set_item("seconds", record.seconds)?;
            figures.set_item("checkpoint", saved.checkpoint)?;
            on_epoch.call1(py, (figures,))?;
            // Ctrl-C in the calling script ends the run here, its checkpoint written.
            py.check_signals()
        })
        .map_err(|err| {
            raised = Some(err);
            anyhow::anyhow!("stopped by the on_epoch callback")
        })
    };
    let control = RunControl {
        stop: Default::default(),
        on_saved_epoch: Some(Box::new(on_saved_epoch)),
    };
    let trained = py.detach(|| minivgg::cli::train::train_watched(&flags, control));
    match (trained, raised) {
        (Err(_), Some(err)) => Err(err),
        (trained, _) => trained.map_err(py_err),
    }
}

/// Refuses what `minivgg train` with `flags` would refuse before loading data.
#[pyfunction]
fn check_train_flags(flags: Vec<String>) -> PyResult<()> {
    minivgg::cli::train::check_flags_of(&flags).map_err(py_err)
}

/// A TensorBoard event file (see `_minivgg.pyi`).
#[pyclass(module = "minivgg._minivgg")]
struct EventWriter(TensorBoardWriter);

#[pymethods]
impl EventWriter {
    #[new]
    fn new(log_dir: PathBuf) -> PyResult<Self> {
        TensorBoardWriter::create(&log_dir)
            .map(EventWriter)
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{e:#}")))
    }

    fn write(&mut self, step: u64, scalars: BTreeMap<String, f64>) -> PyResult<()> {
        self.0
            .write_scalars(step, scalars.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{e:#}")))
    }
}

#[pymodule]
fn _minivgg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Images>()?;
    m.add_class::<Model>()?;
    m.add_class::<EventWriter>()?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(load_image_folder, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(check_train_flags, m)?)?;
    Ok(())
}
