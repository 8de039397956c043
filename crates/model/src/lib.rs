//! The PyTorch CIFAR-10 tutorial's models and a CIFAR model zoo for Burn, with PyTorch weight
//! interop.
//!
//! * [`LinearBaseline`]: per-image flatten → `Linear(3072, 10)`, the floor to beat (and the
//!   correct version of the tutorial's batch-flattening linear example).
//! * [`SeedConvNet`]: exactly the tutorial's `MyConvModel` (145,578 parameters), with
//!   optional ReLU, batch norm and dropout ([`SeedConvNetConfig`]).
//! * [`nn`]: layers named as in `torch.nn` ([`nn::Conv2d`], [`nn::BatchNorm2d`],
//!   [`nn::BasicBlock`], ...), to write models the way PyTorch code writes them.
//! * [`zoo`]: CIFAR networks written with them, with PyTorch's parameter names:
//!   [`Vgg`] (VGG-11 and VGG-16 with batch norm, [`Vgg11Config`], [`Vgg16Config`]),
//!   [`Resnet18`] and [`Airbench94`] (the network of `cifar10-airbench`).
//! * [`ModelConfig`] / [`Model`]: pick one of them by name (`linear`, `conv`, `vgg11`,
//!   `vgg16`, `resnet18`, `airbench94`) at run time.
//!
//! The built-in models take CIFAR-10's 3 × 32 × 32 images by default; `with_input([channels,
//! height, width])` sizes them for other images (28 × 28 grayscale, 64 × 64 RGB, ...), and
//! `ModelConfig::fitted` does it for a dataset.
//! * [`interop`]: load `state_dict`s saved by PyTorch (`.pth`, `.safetensors`) and export
//!   safetensors that PyTorch's `load_state_dict(strict=True)` accepts.
//!
//! * [`onnx`] (with the `onnx` feature): export a trained network to ONNX through Burn's
//!   exporter.
//! * `cpu` (with the default `flex` feature): torchlet's own CPU kernels for the conv net's
//!   convolution + pooling blocks (forward and backward), used by [`SeedConvNet`] on Flex
//!   devices ([`CpuKernels`]).
//!
//! The models run on whatever [`Device`](burn::tensor::Device) the tensors live on (Flex,
//! NdArray, wgpu, CUDA, ...); only the `cpu` kernels are tied to one (Flex).
//!
//! ```
//! use burn::module::Module;
//! use burn::tensor::{Device, Tensor};
//! use torchlet_model::SeedConvNetConfig;
//!
//! let device = Device::flex();
//! let model = SeedConvNetConfig::new().init(&device);
//! assert_eq!(model.num_params(), 145_578);
//!
//! let images = Tensor::<4>::zeros([2, 3, 32, 32], &device);
//! let logits = model.forward(images);
//! assert_eq!(logits.dims(), [2, 10]);
//! ```

use burn::module::Module;
use burn::tensor::Tensor;

mod conv;
#[cfg(feature = "flex")]
pub mod cpu;
pub mod init;
pub mod interop;
mod linear;
mod model;
pub mod nn;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod precision;
mod size;
pub mod zoo;

pub use conv::{
    Activation, CONV_CHANNELS, CpuKernels, FC1_INPUTS, FC1_OUTPUTS, KERNEL_INPUT, KERNEL_SIZE,
    MIN_INPUT_SIDE, SeedConvNet, SeedConvNetConfig,
};
pub use interop::{
    InteropError, KeyLayout, LoadOptions, LoadReport, load_pytorch, load_safetensors,
    save_safetensors,
};
pub use linear::{LINEAR_INPUTS, LinearBaseline, LinearBaselineConfig};
pub use model::{CustomModelConfig, Model, ModelConfig, ModelKind};
pub use precision::{Precision, set_precision};
pub use size::MAX_PARAMETERS;
pub use zoo::{
    Airbench94, Airbench94Config, Resnet18, Resnet18Config, Vgg, Vgg11Config, Vgg16Config, VggDepth,
};

/// Channels of a CIFAR-10 image.
pub const IMAGE_CHANNELS: usize = 3;
/// Height and width of a CIFAR-10 image.
pub const IMAGE_SIZE: usize = 32;
/// The built-in models' default input `[channels, height, width]`: a CIFAR-10 image.
pub const DEFAULT_INPUT: [usize; 3] = [IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE];
/// Number of CIFAR-10 classes, the default width of the logits.
pub const NUM_CLASSES: usize = 10;

/// A network that maps a batch of images to one row of class logits per image: what
/// `torchlet_train::Trainer` trains, checkpoints, resumes and evaluates.
///
/// Implement it for your own `#[derive(Module)]` struct (PyTorch's `nn.Module` with its
/// `forward`); the built-in models implement it the same way.
///
/// ```
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Tensor};
/// use torchlet_model::ImageClassifier;
///
/// #[derive(Module, Debug)]
/// struct Tiny {
///     fc: Linear,
/// }
///
/// impl ImageClassifier for Tiny {
///     fn forward(&self, images: Tensor<4>) -> Tensor<2> {
///         self.fc.forward(images.flatten(1, 3)) // [batch, 3 * 8 * 8] -> [batch, 2]
///     }
///     fn num_classes(&self) -> usize {
///         2
///     }
///     fn input_shape(&self) -> Option<[usize; 3]> {
///         Some([3, 8, 8])
///     }
/// }
///
/// let device = Device::flex();
/// let net = Tiny { fc: LinearConfig::new(3 * 8 * 8, 2).init(&device) };
/// let logits = net.forward(Tensor::zeros([4, 3, 8, 8], &device));
/// assert_eq!(logits.dims(), [4, 2]);
/// ```
pub trait ImageClassifier: Module + 'static {
    /// Maps images `[batch, channels, height, width]` to logits `[batch, num_classes]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;

    /// Width of the logits.
    fn num_classes(&self) -> usize;

    /// The image shape `[channels, height, width]` the network takes, when it takes only one.
    ///
    /// The trainer compares it with the data before the first step. `None` (the default)
    /// means the trainer finds out with one forward pass on one image instead.
    fn input_shape(&self) -> Option<[usize; 3]> {
        None
    }

    /// A short name for the architecture, shown when a run starts (default: the type's name).
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }
}

/// Why a model configuration cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelConfigError {
    /// `num_classes` is zero.
    #[error("num_classes must be at least 1")]
    NoClasses,
    /// The dropout probability is outside `[0, 1)`.
    #[error("dropout must be a probability in [0, 1), got {0}")]
    Dropout(f64),
    /// A [`ModelConfig::Custom`] was asked to build its model: only your code can.
    #[error(
        "{0} is a network of your own: build it in your code and pass it to Trainer::model \
         (or load a checkpoint into it with SavedCheckpoint::load_into)"
    )]
    CustomModel(String),
    /// A model name that is not one of [`ModelKind::NAMES`].
    #[error(
        "unknown model {0:?}: expected one of linear, conv, vgg11, vgg16, resnet18, airbench94"
    )]
    UnknownModel(String),
    /// A layer of the model cannot be built with these settings.
    #[error("{0}")]
    Layer(#[from] nn::LayerConfigError),
    /// The configured image shape has a zero dimension.
    #[error(
        "{model}: input shape {input:?} (channels, height, width) has a zero dimension; set \
         it with with_input([channels, height, width])"
    )]
    EmptyInput {
        /// The model's name.
        model: &'static str,
        /// The configured `[channels, height, width]`.
        input: [usize; 3],
    },
    /// The configured images are too small for the model's downsampling.
    #[error(
        "{model}: images of {}x{} pixels are too small: {why}, so it needs at least \
         {}x{}; use larger (or upscaled) images with with_input, or another model",
        .input[1], .input[2], .min_size[0], .min_size[1]
    )]
    InputTooSmall {
        /// The model's name.
        model: &'static str,
        /// The configured `[channels, height, width]`.
        input: [usize; 3],
        /// The smallest `[height, width]` the model takes.
        min_size: [usize; 2],
        /// What shrinks the images.
        why: &'static str,
    },
    /// An initialisation ([`init`]) cannot use what it was given.
    #[error("{model} initialisation: {reason}")]
    Invalid {
        /// What was being initialised.
        model: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A width setting (channels of a layer) is zero.
    #[error("{model}: {setting} must be at least 1, got {value}")]
    ZeroWidth {
        /// The model's name.
        model: &'static str,
        /// The setting (`base_width`, `widths`).
        setting: &'static str,
        /// The value given.
        value: String,
    },
    /// An input shape the model cannot take: too small in some dimension (or zero).
    #[error(
        "{model} cannot take {} images (channels x height x width): \
         the smallest input it accepts is {}",
        shape_text(.input),
        shape_text(.smallest)
    )]
    InputBelowMinimum {
        /// The model, as in its configuration's name (`SeedConvNet`, `LinearBaseline`).
        model: &'static str,
        /// The input asked for, `[channels, height, width]`.
        input: [usize; 3],
        /// The smallest input accepted, `[channels, height, width]`.
        smallest: [usize; 3],
    },
    /// The configuration asks for more parameters than [`MAX_PARAMETERS`] (a configuration
    /// read from an untrusted file is refused before anything is allocated).
    #[error(
        "{model}: this configuration asks for {} parameters, more than the {limit} torchlet \
         builds (check num_classes, input and the widths)",
        .count.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
    )]
    TooManyParameters {
        /// The model's name.
        model: &'static str,
        /// The parameters it would have (`None`: more than a `u64` holds).
        count: Option<u64>,
        /// [`MAX_PARAMETERS`].
        limit: u64,
    },
    /// An input shape whose number of values overflows `usize`.
    #[error(
        "{model} cannot take {} images (channels x height x width): too many values per image",
        shape_text(.input)
    )]
    InputTooLarge {
        /// The model, as in its configuration's name.
        model: &'static str,
        /// The input asked for, `[channels, height, width]`.
        input: [usize; 3],
    },
}

/// `[c, h, w]` as `cxhxw`, for messages.
fn shape_text(shape: &[usize; 3]) -> String {
    let [c, h, w] = shape;
    format!("{c}x{h}x{w}")
}
