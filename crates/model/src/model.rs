//! Choosing a model by name: [`ModelConfig`] and the [`Model`] it builds.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::{
    Airbench94, Airbench94Config, ImageClassifier, LinearBaseline, LinearBaselineConfig,
    ModelConfigError, Resnet18, Resnet18Config, SeedConvNet, SeedConvNetConfig, Vgg, Vgg11Config,
    Vgg16Config, VggDepth,
};

/// The architectures this crate provides, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// `linear`: [`LinearBaseline`].
    Linear,
    /// `conv`: [`SeedConvNet`].
    Conv,
    /// `vgg11`: [`Vgg`] with [`Vgg11Config`].
    Vgg11,
    /// `vgg16`: [`Vgg`] with [`Vgg16Config`].
    Vgg16,
    /// `resnet18`: [`Resnet18`].
    Resnet18,
    /// `airbench94`: [`Airbench94`].
    Airbench94,
    /// A network written outside this crate ([`ModelConfig::Custom`]); it has no command-line
    /// name.
    Custom,
}

impl ModelKind {
    /// Every kind, in the order of [`NAMES`](Self::NAMES).
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Linear,
        ModelKind::Conv,
        ModelKind::Vgg11,
        ModelKind::Vgg16,
        ModelKind::Resnet18,
        ModelKind::Airbench94,
    ];
    /// The accepted names, for help texts.
    pub const NAMES: [&'static str; 6] =
        ["linear", "conv", "vgg11", "vgg16", "resnet18", "airbench94"];

    /// The command-line name of this kind.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Conv => "conv",
            ModelKind::Vgg11 => "vgg11",
            ModelKind::Vgg16 => "vgg16",
            ModelKind::Resnet18 => "resnet18",
            ModelKind::Airbench94 => "airbench94",
            ModelKind::Custom => "custom",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = ModelConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linear" => Ok(ModelKind::Linear),
            "conv" => Ok(ModelKind::Conv),
            "vgg11" => Ok(ModelKind::Vgg11),
            "vgg16" => Ok(ModelKind::Vgg16),
            "resnet18" => Ok(ModelKind::Resnet18),
            "airbench94" => Ok(ModelKind::Airbench94),
            _ => Err(ModelConfigError::UnknownModel(s.to_string())),
        }
    }
}

/// Which model to build, with its configuration; serializes into a run's `config.json`.
///
/// Parse one from a command-line name (one of [`ModelKind::NAMES`], default options) with
/// [`str::parse`], then adjust it with the variant's `with_*` builders.
///
/// ```
/// use torchlet_model::{ModelConfig, ModelKind};
///
/// let config: ModelConfig = "conv".parse()?;
/// assert_eq!(config.kind(), ModelKind::Conv);
/// # Ok::<(), torchlet_model::ModelConfigError>(())
/// ```
#[derive(Config, Debug)]
pub enum ModelConfig {
    /// [`LinearBaseline`].
    Linear(LinearBaselineConfig),
    /// [`SeedConvNet`].
    Conv(SeedConvNetConfig),
    /// [`Vgg`] VGG-11.
    Vgg11(Vgg11Config),
    /// [`Vgg`] VGG-16.
    Vgg16(Vgg16Config),
    /// [`Resnet18`].
    Resnet18(Resnet18Config),
    /// [`Airbench94`].
    Airbench94(Airbench94Config),
    /// A network of your own, trained through `Trainer::model`: only what identifies it is
    /// recorded, since your code builds it.
    Custom(CustomModelConfig),
}

/// What a run's `config.json` records of a network written outside this crate.
#[derive(Config, Debug)]
pub struct CustomModelConfig {
    /// Its [`ImageClassifier::name`].
    pub name: String,
    /// Width of its logits.
    pub num_classes: usize,
    /// The image shape it takes, when it declares one.
    pub input: Option<[usize; 3]>,
}

impl ModelConfig {
    /// The default configuration of `kind`.
    pub fn default_for(kind: ModelKind) -> Self {
        match kind {
            ModelKind::Linear => ModelConfig::Linear(LinearBaselineConfig::new()),
            ModelKind::Conv => ModelConfig::Conv(SeedConvNetConfig::new()),
            ModelKind::Vgg11 => ModelConfig::Vgg11(Vgg11Config::new()),
            ModelKind::Vgg16 => ModelConfig::Vgg16(Vgg16Config::new()),
            ModelKind::Resnet18 => ModelConfig::Resnet18(Resnet18Config::new()),
            ModelKind::Airbench94 => ModelConfig::Airbench94(Airbench94Config::new()),
            ModelKind::Custom => {
                ModelConfig::Custom(CustomModelConfig::new("custom".into(), crate::NUM_CLASSES))
            }
        }
    }

    /// Which architecture this configures.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::Linear(_) => ModelKind::Linear,
            ModelConfig::Conv(_) => ModelKind::Conv,
            ModelConfig::Vgg11(_) => ModelKind::Vgg11,
            ModelConfig::Vgg16(_) => ModelKind::Vgg16,
            ModelConfig::Resnet18(_) => ModelKind::Resnet18,
            ModelConfig::Airbench94(_) => ModelKind::Airbench94,
            ModelConfig::Custom(_) => ModelKind::Custom,
        }
    }

    /// Number of classes of the configured model.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::Linear(c) => c.num_classes,
            ModelConfig::Conv(c) => c.num_classes,
            ModelConfig::Vgg11(c) => c.num_classes,
            ModelConfig::Vgg16(c) => c.num_classes,
            ModelConfig::Resnet18(c) => c.num_classes,
            ModelConfig::Airbench94(c) => c.num_classes,
            ModelConfig::Custom(c) => c.num_classes,
        }
    }

    /// Parameters of the configured network as PyTorch counts them (`None` for a custom
    /// model, whose size only its code knows, or for more than a `u64` holds).
    pub fn parameter_count(&self) -> Option<u64> {
        match self {
            ModelConfig::Linear(c) => c.parameter_count(),
            ModelConfig::Conv(c) => c.parameter_count(),
            ModelConfig::Vgg11(c) => c.parameter_count(),
            ModelConfig::Vgg16(c) => c.parameter_count(),
            ModelConfig::Resnet18(c) => c.parameter_count(),
            ModelConfig::Airbench94(c) => c.parameter_count(),
            ModelConfig::Custom(_) => None,
        }
    }

    /// Checks the configuration without building anything, its size included
    /// ([`MAX_PARAMETERS`](crate::MAX_PARAMETERS)).
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        match self {
            ModelConfig::Linear(c) => c.validate(),
            ModelConfig::Conv(c) => c.validate(),
            ModelConfig::Vgg11(c) => c.validate(),
            ModelConfig::Vgg16(c) => c.validate(),
            ModelConfig::Resnet18(c) => c.validate(),
            ModelConfig::Airbench94(c) => c.validate(),
            ModelConfig::Custom(_) => Ok(()),
        }
    }

    /// Builds the model on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<Model, ModelConfigError> {
        Ok(match self {
            ModelConfig::Linear(c) => Model::Linear(c.try_init(device)?),
            ModelConfig::Conv(c) => Model::Conv(c.try_init(device)?),
            ModelConfig::Vgg11(c) => Model::Vgg11(c.try_init(device)?),
            ModelConfig::Vgg16(c) => Model::Vgg16(c.try_init(device)?),
            ModelConfig::Resnet18(c) => Model::Resnet18(c.try_init(device)?),
            ModelConfig::Airbench94(c) => Model::Airbench94(c.try_init(device)?),
            ModelConfig::Custom(c) => {
                return Err(ModelConfigError::CustomModel(c.name.clone()));
            }
        })
    }

    /// This configuration for images of `input` (`[channels, height, width]`) and
    /// `num_classes` classes: what `Trainer::new` builds for a dataset. A custom model's
    /// record is left as it is.
    pub fn fitted(self, input: [usize; 3], num_classes: usize) -> Self {
        match self {
            ModelConfig::Linear(c) => {
                ModelConfig::Linear(c.with_input(input).with_num_classes(num_classes))
            }
            ModelConfig::Conv(c) => {
                ModelConfig::Conv(c.with_input(input).with_num_classes(num_classes))
            }
            ModelConfig::Vgg11(c) => {
                ModelConfig::Vgg11(c.with_input(input).with_num_classes(num_classes))
            }
            ModelConfig::Vgg16(c) => {
                ModelConfig::Vgg16(c.with_input(input).with_num_classes(num_classes))
            }
            ModelConfig::Resnet18(c) => {
                ModelConfig::Resnet18(c.with_input(input).with_num_classes(num_classes))
            }
            ModelConfig::Airbench94(c) => {
                ModelConfig::Airbench94(c.with_input(input).with_num_classes(num_classes))
            }
            custom @ ModelConfig::Custom(_) => custom,
        }
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> Model {
        match self.try_init(device) {
            Ok(model) => model,
            Err(err) => panic!("invalid ModelConfig: {err}"),
        }
    }
}

impl FromStr for ModelConfig {
    type Err = ModelConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::default_for(s.parse()?))
    }
}

impl From<LinearBaselineConfig> for ModelConfig {
    fn from(config: LinearBaselineConfig) -> Self {
        ModelConfig::Linear(config)
    }
}

impl From<SeedConvNetConfig> for ModelConfig {
    fn from(config: SeedConvNetConfig) -> Self {
        ModelConfig::Conv(config)
    }
}

impl From<Vgg11Config> for ModelConfig {
    fn from(config: Vgg11Config) -> Self {
        ModelConfig::Vgg11(config)
    }
}

impl From<Vgg16Config> for ModelConfig {
    fn from(config: Vgg16Config) -> Self {
        ModelConfig::Vgg16(config)
    }
}

impl From<Resnet18Config> for ModelConfig {
    fn from(config: Resnet18Config) -> Self {
        ModelConfig::Resnet18(config)
    }
}

impl From<Airbench94Config> for ModelConfig {
    fn from(config: Airbench94Config) -> Self {
        ModelConfig::Airbench94(config)
    }
}

/// Any of this crate's models, chosen at run time (see [`ModelConfig`]).
///
/// Its weights have the same names as the wrapped model's: the interop functions and
/// burn-store's PyTorch and safetensors stores leave the variant name out of the keys.
// A model is built once and moved a handful of times per training step at most; boxing the
// conv net would only add an indirection (and Burn's `Module` derive does not see through
// `Box`).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model {
    /// [`LinearBaseline`].
    Linear(LinearBaseline),
    /// [`SeedConvNet`].
    Conv(SeedConvNet),
    /// [`Vgg`] VGG-11.
    Vgg11(Vgg),
    /// [`Vgg`] VGG-16.
    Vgg16(Vgg),
    /// [`Resnet18`].
    Resnet18(Resnet18),
    /// [`Airbench94`].
    Airbench94(Airbench94),
}

impl Model {
    /// Maps images `[batch, channels, height, width]` to logits `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Model::Linear(m) => m.forward(images),
            Model::Conv(m) => m.forward(images),
            Model::Vgg11(m) | Model::Vgg16(m) => m.forward(images),
            Model::Resnet18(m) => m.forward(images),
            Model::Airbench94(m) => m.forward(images),
        }
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        match self {
            Model::Linear(m) => m.num_classes(),
            Model::Conv(m) => m.num_classes(),
            Model::Vgg11(m) | Model::Vgg16(m) => m.num_classes(),
            Model::Resnet18(m) => m.num_classes(),
            Model::Airbench94(m) => m.num_classes(),
        }
    }

    /// Which architecture this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Linear(_) => ModelKind::Linear,
            Model::Conv(_) => ModelKind::Conv,
            Model::Vgg11(_) => ModelKind::Vgg11,
            Model::Vgg16(_) => ModelKind::Vgg16,
            Model::Resnet18(_) => ModelKind::Resnet18,
            Model::Airbench94(_) => ModelKind::Airbench94,
        }
    }
}

impl ImageClassifier for Model {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Model::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        Model::num_classes(self)
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        match self {
            Model::Linear(m) => m.input_shape(),
            Model::Conv(m) => m.input_shape(),
            Model::Vgg11(m) | Model::Vgg16(m) => m.input_shape(),
            Model::Resnet18(m) => m.input_shape(),
            Model::Airbench94(m) => m.input_shape(),
        }
    }

    fn name(&self) -> String {
        self.kind().name().to_string()
    }
}

impl From<LinearBaseline> for Model {
    fn from(model: LinearBaseline) -> Self {
        Model::Linear(model)
    }
}

impl From<SeedConvNet> for Model {
    fn from(model: SeedConvNet) -> Self {
        Model::Conv(model)
    }
}

impl From<Vgg> for Model {
    fn from(model: Vgg) -> Self {
        match model.depth {
            VggDepth::Vgg11 => Model::Vgg11(model),
            VggDepth::Vgg16 => Model::Vgg16(model),
        }
    }
}

impl From<Resnet18> for Model {
    fn from(model: Resnet18) -> Self {
        Model::Resnet18(model)
    }
}

impl From<Airbench94> for Model {
    fn from(model: Airbench94) -> Self {
        Model::Airbench94(model)
    }
}
