//! One training pass: `for imgs, targets in train_loader: loss = criterion(model(imgs),
//! targets); optimizer.zero_grad(); loss.backward(); optimizer.step()`.

use std::time::Instant;

use burn::optim::GradientsParams;
use torchlet_data::ImageBatch;
use torchlet_data::transform::{GOLDEN_GAMMA, mix64};
use torchlet_model::ImageClassifier;

use super::parallel::Replicas;
use super::{EpochEnd, Run, TAG_TRAIN_LOSS, rng_lock};
use crate::checkpoint::PartialEpoch;
use crate::error::TrainError;
use crate::report::{Phase, Progress, StepLog};

/// splitmix64 of (seed, step): the backend's random stream (dropout masks) for one step, the
/// same after a resume.
pub(crate) fn step_seed(seed: u64, step: u64) -> u64 {
    mix64(seed ^ step.wrapping_mul(GOLDEN_GAMMA))
}

impl<M: ImageClassifier> Run<M> {
    /// Trains epoch `epoch` (1-based), skipping its first `skip` batches (already trained
    /// before a resume, their sums in `sums`).
    pub(super) fn train_epoch(
        &mut self,
        epoch: usize,
        skip: usize,
        mut sums: PartialEpoch,
    ) -> Result<EpochEnd, TrainError> {
        let steps = self.train.len();
        let mut batches = self.train.iter_epoch((epoch - 1) as u64);
        for _ in 0..skip {
            if batches.try_next().is_none() {
                break;
            }
        }
        let start = Instant::now();
        let mut batch = skip;
        let mut since_log = (0.0f64, 0usize);
        while let Some(item) = batches.try_next() {
            let item = item.map_err(|source| TrainError::Loader {
                split: "train",
                source,
            })?;
            let images = item.targets.dims()[0];
            let loss = self.step(item, epoch)?;
            batch += 1;
            sums.loss_sum += loss;
            sums.batches += 1;
            sums.images += images;
            since_log.0 += loss;
            since_log.1 += 1;
            self.tensorboard(TAG_TRAIN_LOSS, loss, self.global_step as i64);
            self.reporter().progress(&Progress {
                phase: Phase::Train,
                epoch,
                epochs: self.config.epochs,
                done: batch,
                total: steps,
                mean_loss: sums.loss_sum / sums.batches as f64,
            });
            let every = self.config.log_every;
            if every > 0 && batch.is_multiple_of(every) {
                self.reporter().step(&StepLog {
                    epoch,
                    step: batch,
                    steps_per_epoch: steps,
                    global_step: self.global_step,
                    loss,
                    mean_loss: since_log.0 / since_log.1.max(1) as f64,
                    lr: self.lr,
                    elapsed_s: self.started.elapsed().as_secs_f64(),
                });
                since_log = (0.0, 0);
            }
            if self.stop.is_stopped() {
                break;
            }
        }
        sums.seconds += start.elapsed().as_secs_f64();
        if self.stop.is_stopped() && batch < steps {
            return Ok(EpochEnd::Stopped(sums, batch));
        }
        Ok(EpochEnd::Complete(sums))
    }

    /// One optimizer step on `batch`; returns its loss. A NaN or infinite loss stops the run
    /// before the step changes any weight.
    pub(super) fn step(&mut self, batch: ImageBatch, epoch: usize) -> Result<f64, TrainError> {
        let step = self.global_step + 1;
        let seed = step_seed(self.config.seed, step);
        let (value, grads) = match &self.replicas {
            None => {
                // outputs = model(imgs): its random draws (dropout) from this step's seed,
                // under the lock, so another run in this process cannot take them.
                let logits = {
                    let _rng = rng_lock();
                    self.device.seed(seed);
                    self.model.forward(batch.images)
                };
                // loss = criterion(outputs, targets)
                let loss = self.loss.forward(logits, batch.targets);
                let value = loss.clone().into_scalar::<f64>();
                self.check_finite(value, epoch)?;
                // loss.backward() (gradients are fresh each step: no zero_grad)
                (
                    value,
                    GradientsParams::from_grads(loss.backward(), &self.model),
                )
            }
            Some(replicas) => {
                // Shard 0 draws what a one-device run draws; the others their own streams.
                let seeds = |replica: usize| match replica {
                    0 => seed,
                    r => step_seed(seed, r as u64),
                };
                let shards = replicas
                    .forward_backward(&self.model, &self.loss, batch.images, batch.targets, seeds)
                    .map_err(|f| TrainError::Replica {
                        device: f.device,
                        replica: f.replica,
                        step,
                        message: f.message,
                    })?;
                // The batch's mean loss: the shards' means weighted by their shares.
                let value = shards.iter().map(|s| s.loss * s.weight).sum::<f64>();
                self.check_finite(value, epoch)?;
                let grads = Replicas::sum_gradients(&self.model, &self.device, shards);
                (value, grads)
            }
        };
        // optimizer.step()
        let lr = self.scheduler.step();
        self.lr = lr.base();
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.global_step = step;
        Ok(value)
    }

    /// A NaN or infinite loss is an error naming the step and the last good checkpoint.
    fn check_finite(&self, loss: f64, epoch: usize) -> Result<(), TrainError> {
        if loss.is_finite() {
            return Ok(());
        }
        Err(TrainError::NonFiniteLoss {
            loss,
            epoch,
            step: self.global_step + 1,
            last_checkpoint: self.last_checkpoint.clone(),
        })
    }
}
