//! ONNX export of a trained network, through Burn's own exporter (`burn-onnx` with its
//! `export` feature, marked experimental upstream).
//!
//! The exporter runs one forward pass on a capture device and lowers the recorded operations
//! to an ONNX graph with the weights embedded; torchlet adds the batch axis as a dynamic
//! dimension (two captures, batch 1 and 2), the validation-mode snapshot (batch norm with its
//! running statistics, no dropout) and an atomic write. Works for any [`ImageClassifier`].
//!
//! What Burn 0.22's exporter cannot lower is an error naming the operation: of the built-in
//! networks, `airbench94` fails on its GELU activation; `linear`, `conv`, `vgg11`, `vgg16`
//! and `resnet18` export.
//!
//! ```
//! use burn::tensor::Device;
//! use torchlet_model::{LinearBaselineConfig, onnx};
//!
//! let model = LinearBaselineConfig::new().init(&Device::flex());
//! let bytes = onnx::onnx_bytes(&model, [3, 32, 32])?;
//! assert!(bytes.len() > 3072 * 10 * 4); // the weights are embedded
//! # Ok::<(), onnx::OnnxError>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};

use crate::ImageClassifier;

/// Why a network could not be exported to ONNX.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// Burn's exporter could not capture or lower the network (an operation it cannot lower
    /// yet is named in the message).
    #[error("ONNX export of {model} failed: {source}")]
    Export {
        /// The network's name.
        model: String,
        /// The exporter's error.
        #[source]
        source: ExportError,
    },
    /// The input shape has a zero dimension.
    #[error("ONNX export: input shape {0:?} (channels, height, width) has a zero dimension")]
    EmptyInput([usize; 3]),
    /// Writing the `.onnx` file failed.
    #[error("cannot write ONNX model {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The ONNX model (protobuf bytes) of `model` for images `[channels, height, width]`, with a
/// dynamic batch axis named `batch`: input `[batch, channels, height, width]`, output
/// `[batch, num_classes]`, both f32.
pub fn onnx_bytes<M: ImageClassifier>(model: &M, input: [usize; 3]) -> Result<Vec<u8>, OnnxError> {
    if input.contains(&0) {
        return Err(OnnxError::EmptyInput(input));
    }
    // Burn's batch norm shares its running statistics between clones, and the exporter moves
    // a clone to its capture device: export a validation snapshot so the original stays put.
    let model = model.valid();
    let device = first_device(&model);
    let [c, h, w] = input;
    let sample = Tensor::<4>::zeros([1, c, h, w], &device);
    let validation = Tensor::<4>::zeros([2, c, h, w], &device);
    let spec = [InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ])];
    let export_error = |source| OnnxError::Export {
        model: model.name(),
        source,
    };
    let onnx = OnnxExporter::new()
        .export_dynamic(&model, sample, validation, &spec, |m: &M, x| m.forward(x))
        .map_err(export_error)?;
    Ok(onnx.into_bytes())
}

/// Writes `model` as ONNX to `path` (see [`onnx_bytes`]), through a temporary file in the
/// same folder renamed into place, so a failed export never leaves a partial `.onnx`.
pub fn export_onnx<M: ImageClassifier>(
    model: &M,
    input: [usize; 3],
    path: impl AsRef<Path>,
) -> Result<(), OnnxError> {
    let path = path.as_ref();
    let bytes = onnx_bytes(model, input)?;
    let write_error = |source| OnnxError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    file.write_all(&bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(write_error)?;
    file.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// The device of the model's first parameter (the default device for a model without any).
fn first_device<M: Module>(model: &M) -> Device {
    model.devices().into_iter().next().unwrap_or_default()
}
