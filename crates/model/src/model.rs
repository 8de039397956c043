//! Choosing a model by name: [`ModelConfig`] and the [`Model`] it builds.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::{
    ImageClassifier, LinearBaseline, LinearBaselineConfig, ModelConfigError, SeedConvNet,
    SeedConvNetConfig,
};

/// The architectures this crate provides, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// `linear`: [`LinearBaseline`].
    Linear,
    /// `conv`: [`SeedConvNet`].
    Conv,
    /// A network written outside this crate ([`ModelConfig::Custom`]); it has no command-line
    /// name.
    Custom,
}

impl ModelKind {
    /// Every kind, in the order of [`NAMES`](Self::NAMES).
    pub const ALL: [ModelKind; 2] = [ModelKind::Linear, ModelKind::Conv];
    /// The accepted names, for help texts.
    pub const NAMES: [&'static str; 2] = ["linear", "conv"];

    /// The command-line name of this kind.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Conv => "conv",
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
            _ => Err(ModelConfigError::UnknownModel(s.to_string())),
        }
    }
}

/// Which model to build, with its configuration; serializes into a run's `config.json`.
///
/// Parse one from a command-line name (`"linear"` or `"conv"`, default options) with
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
            ModelConfig::Custom(_) => ModelKind::Custom,
        }
    }

    /// Number of classes of the configured model.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::Linear(c) => c.num_classes,
            ModelConfig::Conv(c) => c.num_classes,
            ModelConfig::Custom(c) => c.num_classes,
        }
    }

    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        match self {
            ModelConfig::Linear(c) => c.validate(),
            ModelConfig::Conv(c) => c.validate(),
            ModelConfig::Custom(_) => Ok(()),
        }
    }

    /// Builds the model on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<Model, ModelConfigError> {
        Ok(match self {
            ModelConfig::Linear(c) => Model::Linear(c.try_init(device)?),
            ModelConfig::Conv(c) => Model::Conv(c.try_init(device)?),
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
}

impl Model {
    /// Maps images `[batch, 3, 32, 32]` to logits `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Model::Linear(m) => m.forward(images),
            Model::Conv(m) => m.forward(images),
        }
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        match self {
            Model::Linear(m) => m.num_classes(),
            Model::Conv(m) => m.num_classes(),
        }
    }

    /// Which architecture this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Linear(_) => ModelKind::Linear,
            Model::Conv(_) => ModelKind::Conv,
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
