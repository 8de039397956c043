//! The test pass: `model.eval()` + `torch.no_grad()`, mean loss and accuracy over the test set.

use std::time::Instant;

use burn::tensor::{Int, Tensor};
use torchlet_data::DataLoader;
use torchlet_model::ImageClassifier;

use super::{Evaluation, Run};
use crate::error::TrainError;
use crate::report::{Phase, Progress};

impl<M: ImageClassifier> Run<M> {
    /// Evaluates the current model on the whole test set (eval mode, no autodiff).
    pub(super) fn evaluate(&mut self, epoch: usize) -> Result<Evaluation, TrainError> {
        let start = Instant::now();
        let model = self.model.valid();
        let total = self.test.len();
        let (mut loss_sum, mut correct, mut seen, mut done) = (0.0f64, 0i64, 0usize, 0usize);
        let mut batches = self.test.iter_epoch(0);
        while let Some(item) = batches.try_next() {
            let item = item.map_err(|source| TrainError::Loader {
                split: "test",
                source,
            })?;
            let n = item.targets.dims()[0];
            let logits = model.forward(item.images);
            let loss = self
                .loss
                .forward(logits.clone(), item.targets.clone())
                .into_scalar::<f64>();
            correct += count_correct(logits, item.targets);
            loss_sum += loss * n as f64;
            seen += n;
            done += 1;
            self.reporter().progress(&Progress {
                phase: Phase::Test,
                epoch,
                epochs: self.config.epochs,
                done,
                total,
                mean_loss: loss_sum / seen.max(1) as f64,
            });
        }
        Ok(Evaluation {
            loss: loss_sum / seen.max(1) as f64,
            accuracy: correct as f64 / seen.max(1) as f64,
            images: seen,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// `(outputs.argmax(1) == targets).sum()`.
fn count_correct(logits: Tensor<2>, targets: Tensor<1, Int>) -> i64 {
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    predicted.equal(targets).int().sum().into_scalar::<i64>()
}

/// Every test image's target and predicted class, in the loader's order (for the confusion
/// matrix and the sample grid).
pub(crate) fn predict_all<M: ImageClassifier>(
    model: &M,
    loader: &DataLoader,
) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
    let model = model.valid();
    let mut targets = Vec::with_capacity(loader.num_images());
    let mut predictions = Vec::with_capacity(loader.num_images());
    let read = |what: &'static str, t: Tensor<1, Int>| {
        t.into_data()
            .try_into_vec_as::<i64>()
            .map_err(|e| TrainError::ReadBack {
                what,
                reason: format!("{e:?}"),
            })
    };
    let mut batches = loader.iter_epoch(0);
    while let Some(item) = batches.try_next() {
        let item = item.map_err(|source| TrainError::Loader {
            split: "test",
            source,
        })?;
        let predicted = model.forward(item.images).argmax(1).flatten::<1>(0, 1);
        predictions.extend(read("predictions", predicted)?);
        targets.extend(read("targets", item.targets)?);
    }
    Ok((targets, predictions))
}
