//! PyTorch interop: load PyTorch `state_dict`s and export safetensors PyTorch can load.
//!
//! Built on `burn::store` ([`PytorchStore`] to read `.pt`/`.pth` files, [`SafetensorsStore`]
//! to read and write `.safetensors`). Files are always in PyTorch's conventions: `Linear`
//! weights are `[out, in]` (Burn keeps them `[in, out]`), batch-norm parameters are
//! `weight`/`bias` (Burn's `gamma`/`beta`); the conversion happens on the way in and out.
//!
//! # Key layouts
//!
//! A model's weights can be named in two ways ([`KeyLayout`]):
//!
//! * [`KeyLayout::Tutorial`]: the keys of the tutorial's modules, which keep their layers in
//!   `self.model = nn.Sequential(...)`. For `MyConvModel` those are `model.0.*` (conv1),
//!   `model.2.*` (conv2), `model.4.*` (conv3), `model.7.*` (fc1) and `model.8.*` (fc2): the
//!   Sequential's own indices, gaps for `MaxPool2d`/`Flatten` included. For
//!   [`LinearBaseline`] the Sequential is
//!   `nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))`, so its keys are `model.1.*`.
//!   The indices are read as they are: burn-store's PyTorch reader would by default renumber
//!   `0, 2, 4, 7, 8` to `0, 1, 2, 3, 4` ("contiguous indices"); that is turned off here, so a
//!   file from a Sequential with other layers in between is rejected instead of loaded into
//!   the wrong layers.
//! * [`KeyLayout::Plain`]: the field names of the Burn model (`conv1.weight`, `fc2.bias`,
//!   `bn1.running_mean`, `fc.weight`, ...), which are also the keys of a PyTorch module that
//!   stores its layers as attributes with those names.
//!
//! Loading detects the layout from the keys unless told ([`LoadOptions::with_layout`]).
//! Saving writes the tutorial layout by default ([`save_safetensors`]), so that
//! `MyConvModel().load_state_dict(safetensors.torch.load_file(path))` works with the
//! tutorial's own class; [`save_safetensors_with`] writes either layout.
//!
//! With the optional layers of [`SeedConvNetConfig`](crate::SeedConvNetConfig), the tutorial
//! layout is that of the Sequential built in this order (only layers with weights get keys):
//! for each block `Conv2d`, `BatchNorm2d` (if enabled), `ReLU` (if enabled), `MaxPool2d`;
//! then `Flatten`, `Dropout` (if enabled), `Linear(1024, 64)`, `ReLU` (if enabled),
//! `Dropout` (if enabled), `Linear(64, num_classes)`.
//!
//! # Strictness
//!
//! Like PyTorch's `load_state_dict(strict=True)`, loading fails when the file lacks any of
//! the model's tensors or has tensors the model does not know; the error lists every
//! offending key with its shape ([`Mismatch`]). A tensor of the wrong shape or of a
//! non-float type is always an error. [`LoadOptions::allow_partial`] accepts missing and
//! unknown keys (leaving the missing weights as initialized, like `strict=False`); nothing
//! else does. A batch norm's `num_batches_tracked` counter, which Burn does not keep, is
//! ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot,
    ModuleStore, PyTorchToBurnAdapter, PytorchStore, PytorchStoreError, SafetensorsStore,
    SafetensorsStoreError,
};
use burn::tensor::DType;

use crate::{Activation, LinearBaseline, Model, SeedConvNet};

/// The prefix of the tutorial's keys: its modules keep their layers in `self.model`.
pub const TUTORIAL_PREFIX: &str = "model";

/// Suffix of batch norm's step counter, which PyTorch saves and Burn does not need.
const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

/// How the tensors of a model are named in a PyTorch `state_dict` (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyLayout {
    /// `conv1.weight`, ...: the Burn model's field names.
    Plain,
    /// `model.0.weight`, ...: the tutorial's `self.model = nn.Sequential(...)` indices.
    Tutorial,
}

impl KeyLayout {
    /// A short name of the layout (`plain` or `tutorial`).
    pub fn name(self) -> &'static str {
        match self {
            KeyLayout::Plain => "plain",
            KeyLayout::Tutorial => "tutorial",
        }
    }

    /// Guesses the layout of a file from its keys: tutorial if any key is `model.<index>.*`.
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str>) -> KeyLayout {
        let tutorial = keys.into_iter().any(|key| tutorial_index(key).is_some());
        if tutorial {
            KeyLayout::Tutorial
        } else {
            KeyLayout::Plain
        }
    }
}

impl fmt::Display for KeyLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The index of a `model.<index>.<rest>` key, if it is one.
fn tutorial_index(key: &str) -> Option<usize> {
    let rest = key.strip_prefix(TUTORIAL_PREFIX)?.strip_prefix('.')?;
    let (index, _) = rest.split_once('.')?;
    index.parse().ok()
}

/// A layer with weights, as PyTorch names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchLayer {
    /// The field name in the Burn model, also the attribute name in a plain PyTorch module.
    pub name: &'static str,
    /// The layer's index in the equivalent tutorial-style `nn.Sequential`.
    pub index: usize,
}

/// A model whose weights can be exchanged with PyTorch.
pub trait TorchLayout: Module {
    /// The layers with weights, in forward order, with their Sequential indices.
    fn torch_layers(&self) -> Vec<TorchLayer>;
}

impl TorchLayout for LinearBaseline {
    fn torch_layers(&self) -> Vec<TorchLayer> {
        // nn.Sequential(nn.Flatten(), nn.Linear(3072, num_classes))
        vec![TorchLayer {
            name: "fc",
            index: 1,
        }]
    }
}

impl TorchLayout for SeedConvNet {
    fn torch_layers(&self) -> Vec<TorchLayer> {
        let relu = self.activation != Activation::None;
        let mut layers = Vec::new();
        let mut index = 0;
        let blocks = [
            ("conv1", "bn1", self.bn1.is_some()),
            ("conv2", "bn2", self.bn2.is_some()),
            ("conv3", "bn3", self.bn3.is_some()),
        ];
        for (conv, bn, has_bn) in blocks {
            layers.push(TorchLayer { name: conv, index });
            index += 1;
            if has_bn {
                layers.push(TorchLayer { name: bn, index });
                index += 1;
            }
            index += usize::from(relu); // ReLU
            index += 1; // MaxPool2d
        }
        index += 1; // Flatten
        let dropout = self.dropout.is_some();
        index += usize::from(dropout);
        layers.push(TorchLayer { name: "fc1", index });
        index += 1;
        index += usize::from(relu);
        index += usize::from(dropout);
        layers.push(TorchLayer { name: "fc2", index });
        layers
    }
}

impl TorchLayout for Model {
    fn torch_layers(&self) -> Vec<TorchLayer> {
        match self {
            Model::Linear(m) => m.torch_layers(),
            Model::Conv(m) => m.torch_layers(),
            Model::Vgg11(m) | Model::Vgg16(m) => m.torch_layers(),
            Model::Resnet18(m) => m.torch_layers(),
            Model::Airbench94(m) => m.torch_layers(),
        }
    }
}

/// A tensor's key and shape, in PyTorch's conventions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TensorInfo {
    /// The `state_dict` key.
    pub key: String,
    /// The shape, PyTorch layout (`Linear` weights `[out, in]`).
    pub shape: Vec<usize>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.key, self.shape)
    }
}

/// A tensor whose shape in the file differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The `state_dict` key.
    pub key: String,
    /// The shape the model needs (PyTorch layout).
    pub expected: Vec<usize>,
    /// The shape in the file.
    pub found: Vec<usize>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: model has {:?}, file has {:?}",
            self.key, self.expected, self.found
        )
    }
}

/// A tensor that is not floating point where the model has a float parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtypeMismatch {
    /// The `state_dict` key.
    pub key: String,
    /// The element type in the file.
    pub found: String,
}

/// Everything that keeps a file's tensors from fitting a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The key layout the file was read with.
    pub layout: KeyLayout,
    /// Tensors the model needs that the file lacks, with the shape the model needs.
    pub missing: Vec<TensorInfo>,
    /// Tensors in the file that the model does not have, with their shape in the file.
    pub unexpected: Vec<TensorInfo>,
    /// Tensors whose shapes differ.
    pub misshaped: Vec<ShapeMismatch>,
    /// Tensors of a non-float element type.
    pub wrong_dtype: Vec<DtypeMismatch>,
    /// The key prefix under which the file seems to hold the model's tensors, if the
    /// unknown keys look like `<prefix>.<one of the model's keys>` (a checkpoint dict or a
    /// wrapped module).
    pub nested_under: Option<String>,
}

impl Mismatch {
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.misshaped.is_empty()
            && self.wrong_dtype.is_empty()
    }

    /// Whether only missing or unknown keys are wrong, which a partial load accepts.
    fn only_keys(&self) -> bool {
        self.misshaped.is_empty() && self.wrong_dtype.is_empty()
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  key layout: {}", self.layout)?;
        fn list<T: fmt::Display>(
            f: &mut fmt::Formatter<'_>,
            title: &str,
            items: &[T],
        ) -> fmt::Result {
            if items.is_empty() {
                return Ok(());
            }
            write!(f, "\n  {title} ({}):", items.len())?;
            for item in items {
                write!(f, "\n    {item}")?;
            }
            Ok(())
        }
        list(f, "missing from the file", &self.missing)?;
        list(f, "not in the model", &self.unexpected)?;
        list(f, "wrong shape", &self.misshaped)?;
        let dtypes: Vec<String> = self
            .wrong_dtype
            .iter()
            .map(|d| format!("{}: {} (expected a float type)", d.key, d.found))
            .collect();
        list(f, "wrong element type", &dtypes)?;
        if let Some(prefix) = &self.nested_under {
            write!(
                f,
                "\n  (the model's tensors seem to be nested under {prefix:?}: for a .pth \
                 checkpoint dict, load with LoadOptions::with_top_level_key({prefix:?}))"
            )?;
        } else if !self.missing.is_empty()
            && !self.unexpected.is_empty()
            && self.misshaped.is_empty()
        {
            write!(
                f,
                "\n  (a file for another architecture, another configuration or another key \
                 layout?)"
            )?;
        }
        Ok(())
    }
}

/// Why weights could not be read, applied or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InteropError {
    /// The PyTorch file could not be read.
    #[error("cannot read PyTorch weights from {}: {source}", .path.display())]
    ReadPytorch {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: PytorchStoreError,
    },
    /// The safetensors file could not be read.
    #[error("cannot read safetensors weights from {}: {source}", .path.display())]
    ReadSafetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: SafetensorsStoreError,
    },
    /// The safetensors file could not be written.
    #[error("cannot write safetensors weights to {}: {source}", .path.display())]
    WriteSafetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: SafetensorsStoreError,
    },
    /// The file's tensors do not fit the model.
    #[error("weights in {} do not fit the model:\n{mismatch}", .path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every offending key.
        mismatch: Box<Mismatch>,
    },
    /// Tensors matched by key and shape still failed to load.
    #[error("cannot load the weights in {}: {}", .path.display(), .messages.join("; "))]
    Apply {
        /// The file.
        path: PathBuf,
        /// One message per failed tensor.
        messages: Vec<String>,
    },
}

impl InteropError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InteropError::ReadPytorch { path, .. }
            | InteropError::ReadSafetensors { path, .. }
            | InteropError::WriteSafetensors { path, .. }
            | InteropError::Mismatch { path, .. }
            | InteropError::Apply { path, .. } => path,
        }
    }

    /// The key-by-key mismatch, if that is what went wrong.
    pub fn mismatch(&self) -> Option<&Mismatch> {
        match self {
            InteropError::Mismatch { mismatch, .. } => Some(mismatch),
            _ => None,
        }
    }
}

/// Options of [`load_pytorch_with`] and [`load_safetensors_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The file's key layout; `None` (the default) detects it with [`KeyLayout::detect`].
    pub layout: Option<KeyLayout>,
    /// Accept missing and unknown keys, leaving missing weights as initialized (default:
    /// `false`). Shape and type mismatches are errors either way.
    pub allow_partial: bool,
    /// For `.pth` files holding a dict of several things (`{"model": state_dict, ...}`): the
    /// key of the `state_dict` to read.
    pub top_level_key: Option<String>,
}

impl LoadOptions {
    /// Strict loading with the layout detected from the file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the file with this key layout instead of detecting it.
    pub fn with_layout(mut self, layout: KeyLayout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// Accepts (`true`) a file that lacks some of the model's tensors or has extra ones.
    pub fn allow_partial(mut self, allow: bool) -> Self {
        self.allow_partial = allow;
        self
    }

    /// Reads the `state_dict` stored under `key` of a `.pth` checkpoint dict.
    pub fn with_top_level_key(mut self, key: impl Into<String>) -> Self {
        self.top_level_key = Some(key.into());
        self
    }
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The key layout the file was read with.
    pub layout: KeyLayout,
    /// Keys loaded into the model.
    pub loaded: Vec<String>,
    /// Keys the model needs that the file lacks (only with [`LoadOptions::allow_partial`]):
    /// those weights kept their initial values.
    pub missing: Vec<TensorInfo>,
    /// Keys in the file the model does not have (only with [`LoadOptions::allow_partial`]).
    pub unexpected: Vec<TensorInfo>,
    /// Keys deliberately skipped (batch norm's `num_batches_tracked`).
    pub ignored: Vec<String>,
}

/// A model tensor as PyTorch names it.
struct Expected {
    /// The Burn path with PyTorch parameter names (`bn1.weight`, not `bn1.gamma`).
    burn_key: String,
    shape: Vec<usize>,
}

/// The state-dict keys and shapes (PyTorch layout) of `model` in `layout`, in forward order.
pub fn state_dict_shapes<M: TorchLayout>(model: &M, layout: KeyLayout) -> Vec<TensorInfo> {
    expected_tensors(model, layout)
        .into_iter()
        .map(|(key, e)| TensorInfo {
            key,
            shape: e.shape,
        })
        .collect()
}

/// The number of parameters PyTorch counts for the equivalent module
/// (`sum(p.numel() for p in model.parameters())`): every tensor of the state dict but the
/// batch norms' running statistics, which PyTorch keeps as buffers.
///
/// Burn's [`Module::num_params`] counts those running statistics too (as `2 × channels` per
/// batch norm), so the two differ for models with batch norm.
pub fn pytorch_num_params<M: TorchLayout>(model: &M) -> usize {
    state_dict_shapes(model, KeyLayout::Plain)
        .iter()
        .filter(|t| !t.key.ends_with(".running_mean") && !t.key.ends_with(".running_var"))
        .map(|t| t.shape.iter().product::<usize>())
        .sum()
}

/// The model's tensors by state-dict key, in forward order.
fn expected_tensors<M: TorchLayout>(model: &M, layout: KeyLayout) -> Vec<(String, Expected)> {
    let layers = model.torch_layers();
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| {
            let key = torch_key(&t.name, &layers, layout);
            let expected = Expected {
                burn_key: t.name,
                shape: t.shape.to_vec(),
            };
            (key, expected)
        })
        .collect()
}

/// The float type of the model's parameters (f32 unless the device says otherwise).
fn model_float_dtype<M: Module>(model: &M) -> DType {
    model
        .collect(None, None, true)
        .iter()
        .map(|t| t.dtype)
        .find(DType::is_float)
        .unwrap_or(DType::F32)
}

/// `conv1.weight` → `model.0.weight` in the tutorial layout.
fn torch_key(burn_key: &str, layers: &[TorchLayer], layout: KeyLayout) -> String {
    match layout {
        KeyLayout::Plain => burn_key.to_string(),
        KeyLayout::Tutorial => {
            let (layer, rest) = burn_key.split_once('.').unwrap_or((burn_key, ""));
            match layers.iter().find(|l| l.name == layer) {
                Some(l) => format!("{TUTORIAL_PREFIX}.{}.{rest}", l.index),
                None => burn_key.to_string(),
            }
        }
    }
}

/// Loads a PyTorch `state_dict` file (`torch.save(model.state_dict(), path)`) into `model`.
///
/// Strict (see the [module docs](self)): every tensor of the model must be in the file with
/// the right shape, and nothing else may be.
pub fn load_pytorch<M: TorchLayout>(model: M, path: impl AsRef<Path>) -> Result<M, InteropError> {
    load_pytorch_with(model, path, &LoadOptions::new()).map(|(model, _)| model)
}

/// [`load_pytorch`] with options; also returns what was loaded.
pub fn load_pytorch_with<M: TorchLayout>(
    model: M,
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<(M, LoadReport), InteropError> {
    let path = path.as_ref();
    let read_error = |source| InteropError::ReadPytorch {
        path: path.to_path_buf(),
        source,
    };
    // Keep the Sequential indices as they are: `model.7` must stay `model.7`.
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    if let Some(key) = &options.top_level_key {
        store = store.with_top_level_key(key.clone());
    }
    let tensors: Vec<PackTensor> = store
        .get_all_tensors()
        .map_err(read_error)?
        .values()
        .cloned()
        .collect();
    apply_tensors(model, path, tensors, options)
}

/// Loads a safetensors file written by PyTorch (`safetensors.torch.save_file`) or by
/// [`save_safetensors`] into `model`. Strict, like [`load_pytorch`].
pub fn load_safetensors<M: TorchLayout>(
    model: M,
    path: impl AsRef<Path>,
) -> Result<M, InteropError> {
    load_safetensors_with(model, path, &LoadOptions::new()).map(|(model, _)| model)
}

/// [`load_safetensors`] with options; also returns what was loaded.
pub fn load_safetensors_with<M: TorchLayout>(
    model: M,
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<(M, LoadReport), InteropError> {
    let path = path.as_ref();
    let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
    let tensors: Vec<PackTensor> = store
        .get_all_tensors()
        .map_err(|source| InteropError::ReadSafetensors {
            path: path.to_path_buf(),
            source,
        })?
        .values()
        .cloned()
        .collect();
    apply_tensors(model, path, tensors, options)
}

/// Checks `tensors` (named by state-dict key) against `model`, then loads them.
fn apply_tensors<M: TorchLayout>(
    mut model: M,
    path: &Path,
    tensors: Vec<PackTensor>,
    options: &LoadOptions,
) -> Result<(M, LoadReport), InteropError> {
    let layout = options
        .layout
        .unwrap_or_else(|| KeyLayout::detect(tensors.iter().map(|t| t.name.as_str())));
    let expected = expected_tensors(&model, layout);
    let by_key: BTreeMap<&str, &Expected> = expected.iter().map(|(k, e)| (k.as_str(), e)).collect();

    let mut mismatch = Mismatch {
        layout,
        missing: Vec::new(),
        unexpected: Vec::new(),
        misshaped: Vec::new(),
        wrong_dtype: Vec::new(),
        nested_under: None,
    };
    let mut ignored = Vec::new();
    let mut found = BTreeSet::new();
    let mut to_apply = Vec::new();
    for mut tensor in tensors {
        let key = tensor.name.clone();
        let shape = tensor.shape.to_vec();
        let Some(e) = by_key.get(key.as_str()) else {
            if is_ignored(&key, &by_key) {
                ignored.push(key);
            } else {
                mismatch.unexpected.push(TensorInfo { key, shape });
            }
            continue;
        };
        found.insert(key.clone());
        if shape != e.shape {
            mismatch.misshaped.push(ShapeMismatch {
                key,
                expected: e.shape.clone(),
                found: shape,
            });
        } else if !tensor.dtype.is_float() {
            mismatch.wrong_dtype.push(DtypeMismatch {
                key,
                found: format!("{:?}", tensor.dtype),
            });
        } else {
            tensor.name = e.burn_key.clone();
            to_apply.push((key, tensor));
        }
    }
    mismatch.missing = expected
        .iter()
        .filter(|(key, _)| !found.contains(key))
        .map(|(key, e)| TensorInfo {
            key: key.clone(),
            shape: e.shape.clone(),
        })
        .collect();

    mismatch.nested_under = nested_prefix(&model, &mismatch.unexpected);
    let acceptable = mismatch.is_empty() || (options.allow_partial && mismatch.only_keys());
    if !acceptable {
        return Err(InteropError::Mismatch {
            path: path.to_path_buf(),
            mismatch: Box::new(mismatch),
        });
    }

    // PyTorch → Burn layout (transposed Linear weights, gamma/beta), then the model's float
    // type: burn-store would otherwise keep an f64 or f16 file's type in the parameters.
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(model_float_dtype(&model))));
    let (loaded, tensors): (Vec<String>, Vec<PackTensor>) = to_apply.into_iter().unzip();
    let result = model.apply(tensors, None, Some(adapter), true);

    let mut messages: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
    messages.extend(
        result
            .unused
            .iter()
            .map(|key| format!("tensor {key} matched no parameter")),
    );
    if !options.allow_partial {
        messages.extend(
            result
                .missing
                .iter()
                .map(|(key, _)| format!("parameter {key} was not loaded")),
        );
    }
    if !messages.is_empty() {
        return Err(InteropError::Apply {
            path: path.to_path_buf(),
            messages,
        });
    }

    let report = LoadReport {
        layout,
        loaded,
        missing: mismatch.missing,
        unexpected: mismatch.unexpected,
        ignored,
    };
    Ok((model, report))
}

/// The first key segment of an unknown key that is `<prefix>.<a key of the model>` in
/// either layout.
fn nested_prefix<M: TorchLayout>(model: &M, unexpected: &[TensorInfo]) -> Option<String> {
    if unexpected.is_empty() {
        return None;
    }
    let known: BTreeSet<String> = [KeyLayout::Plain, KeyLayout::Tutorial]
        .into_iter()
        .flat_map(|layout| {
            expected_tensors(model, layout)
                .into_iter()
                .map(|(key, _)| key)
        })
        .collect();
    unexpected.iter().find_map(|t| {
        let (prefix, rest) = t.key.split_once('.')?;
        known.contains(rest).then(|| prefix.to_string())
    })
}

/// Whether `key` is a batch norm's `num_batches_tracked` for a batch norm of the model.
fn is_ignored(key: &str, by_key: &BTreeMap<&str, &Expected>) -> bool {
    key.strip_suffix(NUM_BATCHES_TRACKED)
        .is_some_and(|prefix| by_key.contains_key(format!("{prefix}running_mean").as_str()))
}

/// Writes `model`'s weights as a safetensors file in the tutorial layout ([`KeyLayout`]),
/// in PyTorch's conventions, replacing any file at `path`.
///
/// For [`SeedConvNet`] with the default configuration, the tutorial's `MyConvModel` loads it
/// with `model.load_state_dict(safetensors.torch.load_file(path))` (strict).
pub fn save_safetensors<M: TorchLayout>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<(), InteropError> {
    save_safetensors_with(model, path, KeyLayout::Tutorial)
}

/// [`save_safetensors`] with the key layout of your choice.
pub fn save_safetensors_with<M: TorchLayout>(
    model: &M,
    path: impl AsRef<Path>,
    layout: KeyLayout,
) -> Result<(), InteropError> {
    let path = path.as_ref();
    let write_error = |source| InteropError::WriteSafetensors {
        path: path.to_path_buf(),
        source,
    };
    let mut remapper = KeyRemapper::new();
    if layout == KeyLayout::Tutorial {
        for layer in model.torch_layers() {
            remapper = remapper
                .add_pattern(
                    format!(r"^{}\.", layer.name),
                    format!("{TUTORIAL_PREFIX}.{}.", layer.index),
                )
                .map_err(|e| write_error(SafetensorsStoreError::Other(e.to_string())))?;
        }
    }
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .overwrite(true)
        .metadata("format", "pt")
        .metadata("torchlet.key_layout", layout.name())
        .remap(remapper);
    model.save_into(&mut store).map_err(write_error)
}
