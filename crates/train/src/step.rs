//! Chapter three: one step of `CrossEntropyLoss` + backward, as Burn's `TrainStep` and
//! `InferenceStep`.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use torchlet_data::ImageBatch;
use torchlet_model::Model;

/// The model being trained, as Burn's `Learner` sees it.
///
/// A thin wrapper: the orphan rule forbids implementing Burn's `TrainStep` for
/// `torchlet_model::Model` outside its crate. Its weights are the model's, under `model.`.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The wrapped model.
    pub model: Model,
}

impl Classifier {
    /// Wraps `model`.
    pub fn new(model: Model) -> Self {
        Self { model }
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> Model {
        self.model
    }

    /// Logits `[batch, classes]` and the mean cross-entropy loss `[1]` of a batch:
    /// `outputs = model(imgs); loss = criterion(outputs, targets)`.
    pub fn forward_classification(
        &self,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
    ) -> ClassificationOutput {
        let logits = self.model.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), targets.clone());
        ClassificationOutput::new(loss, logits, targets)
    }
}

impl From<Model> for Classifier {
    fn from(model: Model) -> Self {
        Self::new(model)
    }
}

impl TrainStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    /// Forward, loss and `loss.backward()`; the optimizer step is the `Learner`'s.
    fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_classification(batch.images, batch.targets);
        let grads = item.loss.backward();
        TrainOutput::new(self, grads, item)
    }
}

impl InferenceStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    /// Forward and loss only; Burn calls it on `model.valid()` (no autodiff, eval mode).
    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.forward_classification(batch.images, batch.targets)
    }
}
