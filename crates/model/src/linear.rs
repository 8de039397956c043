//! The linear baseline: one fully connected layer on the flattened pixels of each image.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::{IMAGE_CHANNELS, IMAGE_SIZE, ImageClassifier, ModelConfigError};

/// Number of inputs of the baseline's layer: one 3×32×32 CIFAR-10 image, flattened.
pub const LINEAR_INPUTS: usize = IMAGE_CHANNELS * IMAGE_SIZE * IMAGE_SIZE;

/// Configuration of [`LinearBaseline`].
#[derive(Config, Debug)]
pub struct LinearBaselineConfig {
    /// Number of classes, the width of the logits.
    #[config(default = "crate::NUM_CLASSES")]
    pub num_classes: usize,
}

impl LinearBaselineConfig {
    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        if self.num_classes == 0 {
            return Err(ModelConfigError::NoClasses);
        }
        Ok(())
    }

    /// Builds the model on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<LinearBaseline, ModelConfigError> {
        self.validate()?;
        Ok(LinearBaseline {
            fc: LinearConfig::new(LINEAR_INPUTS, self.num_classes).init(device),
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

/// Per-image flatten → `Linear(3072, num_classes)`: the simplest classifier worth training.
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
    /// The only layer: `[batch, 3072] -> [batch, num_classes]`.
    pub fc: Linear,
}

impl LinearBaseline {
    /// Maps images `[batch, 3, 32, 32]` to logits `[batch, num_classes]`.
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
}

impl ImageClassifier for LinearBaseline {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        LinearBaseline::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        LinearBaseline::num_classes(self)
    }
}
