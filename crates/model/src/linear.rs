//! The linear baseline: one fully connected layer on the flattened pixels of each image.

use std::fmt;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::conv::default_input;
use crate::size::Count;
use crate::{DEFAULT_INPUT, IMAGE_CHANNELS, IMAGE_SIZE, ImageClassifier, ModelConfigError};

/// Number of inputs of the baseline's layer for the default input: one 3×32×32 CIFAR-10
/// image, flattened (other inputs: [`LinearBaselineConfig::inputs`]).
pub const LINEAR_INPUTS: usize = IMAGE_CHANNELS * IMAGE_SIZE * IMAGE_SIZE;

/// Configuration of [`LinearBaseline`].
///
/// Serialized as JSON like a `#[derive(Config)]` struct (it implements Burn's [`Config`]);
/// written by hand so that configurations saved before `input` existed still load, as
/// 3 × 32 × 32.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LinearBaselineConfig {
    /// Number of classes, the width of the logits.
    pub num_classes: usize,
    /// The images the model takes, `[channels, height, width]`; the layer reads
    /// `channels × height × width` values. Default (and what configurations saved before
    /// this option read as): [`DEFAULT_INPUT`], CIFAR-10's `[3, 32, 32]`.
    #[serde(default = "default_input")]
    pub input: [usize; 3],
}

impl Config for LinearBaselineConfig {}

impl fmt::Display for LinearBaselineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&burn::config::config_to_json(self))
    }
}

impl Default for LinearBaselineConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LinearBaselineConfig {
    /// 10 classes, 3 × 32 × 32 images.
    pub fn new() -> Self {
        Self {
            num_classes: crate::NUM_CLASSES,
            input: DEFAULT_INPUT,
        }
    }

    /// Sets [`num_classes`](Self::num_classes) (default 10).
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Sets [`input`](Self::input), `[channels, height, width]` (default `[3, 32, 32]`).
    pub fn with_input(mut self, input: [usize; 3]) -> Self {
        self.input = input;
        self
    }

    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        if self.num_classes == 0 {
            return Err(ModelConfigError::NoClasses);
        }
        self.inputs()?;
        self.count().check("LinearBaseline")
    }

    /// Parameters of the network (`None`: more than a `u64` holds, or an invalid input).
    pub fn parameter_count(&self) -> Option<u64> {
        self.count().get()
    }

    fn count(&self) -> Count {
        match self.inputs() {
            Ok(inputs) => Count::linear(inputs, self.num_classes, true),
            Err(_) => Count::OVERFLOW,
        }
    }

    /// Inputs of the layer: `channels × height × width` of [`input`](Self::input), 3,072 for
    /// 3 × 32 × 32 ([`LINEAR_INPUTS`]). An error when a dimension is zero.
    pub fn inputs(&self) -> Result<usize, ModelConfigError> {
        let [c, h, w] = self.input;
        if c == 0 || h == 0 || w == 0 {
            return Err(ModelConfigError::InputBelowMinimum {
                model: "LinearBaseline",
                input: self.input,
                smallest: [1, 1, 1],
            });
        }
        c.checked_mul(h)
            .and_then(|n| n.checked_mul(w))
            .ok_or(ModelConfigError::InputTooLarge {
                model: "LinearBaseline",
                input: self.input,
            })
    }

    /// Builds the model on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<LinearBaseline, ModelConfigError> {
        self.validate()?;
        Ok(LinearBaseline {
            fc: LinearConfig::new(self.inputs()?, self.num_classes).init(device),
            input: self.input,
        })
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> LinearBaseline {
        match self.try_init(device) {
            Ok(model) => model,
            Err(err) => panic!("invalid LinearBaselineConfig: {err}"),
        }
    }
}

/// Per-image flatten → `Linear(3072, num_classes)`: the simplest classifier worth training
/// (`Linear(C·H·W, num_classes)` for `C × H × W` images, [`LinearBaselineConfig::input`]).
///
/// # Why not the tutorial's version
///
/// The tutorial's linear example calls `torch.flatten(imgs)` on a whole batch. Without a
/// `start_dim` that flattens *everything*, so a batch of 64 images becomes one vector of
/// 64 × 3 × 32 × 32 = 196,608 numbers, fed to `Linear(196608, 10)`: one prediction for the
/// whole batch. That layer mixes pixels of 64 different images, only works with batches of
/// exactly 64, and cannot be trained against per-image labels, because there are 64 labels
/// and one output row.
///
/// This baseline flattens each image on its own (`torch.flatten(imgs, 1)`), so a batch of
/// `N` images gives `N` rows of logits, one per image, whatever `N` is. That is the model the
/// tutorial's example was meant to be: a linear classifier on raw pixels, the floor any
/// convolutional network has to beat.
///
/// Its PyTorch counterpart is `nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))`, or a module
/// with a single `fc = nn.Linear(3072, 10)` attribute applied to `torch.flatten(x, 1)`; see
/// [`crate::interop`] for the state-dict keys of each.
#[derive(Module, Debug)]
pub struct LinearBaseline {
    /// The only layer: `[batch, 3072] -> [batch, num_classes]` for 3 × 32 × 32 images.
    pub fc: Linear,
    /// The images the model was built for, `[channels, height, width]`. Not a weight: the
    /// record's keys stay the layer's; the shape cannot be read back from `fc`, which only
    /// knows `channels × height × width`.
    #[module(skip)]
    pub input: [usize; 3],
}

impl LinearBaseline {
    /// Maps images `[batch, channels, height, width]` (the shape it was configured for) to
    /// logits `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // [batch, 3, 32, 32] -> [batch, 3072]: one row per image, never across the batch.
        let x: Tensor<2> = images.flatten(1, 3);
        // [batch, num_classes]
        self.fc.forward(x)
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        let [_, d_output] = self.fc.weight.dims();
        d_output
    }

    /// The configuration this model was built from.
    pub fn config(&self) -> LinearBaselineConfig {
        LinearBaselineConfig::new()
            .with_num_classes(self.num_classes())
            .with_input(self.input)
    }
}

impl ImageClassifier for LinearBaseline {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        LinearBaseline::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        LinearBaseline::num_classes(self)
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.input)
    }
}
