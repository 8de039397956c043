//! Chapter five's loop as a Burn [`SupervisedLearningStrategy`].
//!
//! Burn's single-device strategy runs the right steps (`Learner::train_step`, `lr_step`,
//! `optimizer_step`, evaluation on `model.valid()` without autodiff), but it cannot do what
//! the tutorial and a resumable run need:
//!
//! * read each step's loss (for the `step, loss, elapsed` lines, the epoch's loss sum and
//!   TensorBoard), and stop *before* the optimizer step when it is NaN or infinite;
//! * set the data loader's epoch, so a resumed run sees the same shuffles and
//!   augmentations as an uninterrupted one, and skip the batches already trained when it
//!   resumes inside an epoch;
//! * write a checkpoint when a stop is requested in the middle of an epoch (Burn's skips
//!   checkpointing then);
//! * hand the checkpointer the state (epoch, losses, history) along with the records.
//!
//! So this strategy is Burn's single-device loop with those additions; everything else —
//! the `Learner`, the `TrainStep`/`InferenceStep` implementations, the event processor,
//! the `LearningCheckpointer` and the `Interrupter` — is Burn's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use burn::train::{
    EventProcessorTraining, InferenceStep, Learner, LearnerEvent, LearningCheckpointer,
    SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader, TrainingComponents,
    TrainingItem, ValidLoader,
};

use crate::checkpoint::{CheckpointState, CheckpointStore, PartialEpoch, STATE_FORMAT};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::metrics_csv::write_metrics_csv;
use crate::plot::{Series, write_line_chart};
use crate::report::{CheckpointSaved, EpochSummary, Observer, Phase, Progress, Reporter, StepLog};
use crate::step::Classifier;
use crate::tensorboard::SummaryWriter;

/// TensorBoard tag of the per-step training loss.
pub const TAG_TRAIN_LOSS: &str = "train_loss";
/// TensorBoard tag of the per-epoch test loss.
pub const TAG_TEST_LOSS: &str = "test_loss";
/// TensorBoard tag of the per-epoch test accuracy.
pub const TAG_TEST_ACCURACY: &str = "test_accuracy";

/// Serializes "seed the backend, then draw random numbers" sections: backends keep one RNG
/// per process, so two runs in one process (tests) would otherwise interleave their draws.
pub(crate) static RNG_LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn rng_lock() -> MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything the loop needs besides what Burn hands it.
pub(crate) struct Plan {
    pub config: TrainConfig,
    pub first_epoch: usize,
    pub skip_batches: usize,
    pub partial: Option<PartialEpoch>,
    pub global_step: u64,
    pub history: Vec<EpochSummary>,
    pub loader: torchlet_data::DataLoader,
    pub steps_per_epoch: usize,
    pub class_names: Vec<String>,
    pub out_dir: PathBuf,
    pub store: Arc<CheckpointStore>,
    pub observer: Arc<dyn Observer>,
    pub tensorboard: SummaryWriter,
    pub last_checkpoint: Option<PathBuf>,
    pub seed_per_step: bool,
}

/// What the loop leaves for the caller of `launch`.
#[derive(Default)]
pub(crate) struct Outcome {
    pub history: Vec<EpochSummary>,
    pub last_checkpoint: Option<PathBuf>,
    pub error: Option<TrainError>,
    pub stopped_by_request: bool,
}

pub(crate) struct TutorialStrategy {
    device: Device,
    plan: Mutex<Option<Plan>>,
    outcome: Arc<Mutex<Outcome>>,
}

impl TutorialStrategy {
    pub fn new(device: Device, plan: Plan, outcome: Arc<Mutex<Outcome>>) -> Self {
        Self {
            device: device.autodiff(),
            plan: Mutex::new(Some(plan)),
            outcome,
        }
    }
}

fn step_seed(seed: u64, step: u64) -> u64 {
    // splitmix64 of (seed, step): independent streams per step, the same after a resume.
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SupervisedLearningStrategy<Classifier> for TutorialStrategy {
    fn fit(
        &self,
        components: TrainingComponents<Classifier>,
        mut learner: Learner<Classifier>,
        dataloader_train: TrainLoader<Classifier>,
        dataloader_valid: ValidLoader<Classifier>,
        _starting_epoch: usize,
    ) -> (Classifier, SupervisedTrainingEventProcessor<Classifier>) {
        let plan = self.plan.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut processor = components.event_processor;
        let Some(mut plan) = plan else {
            let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
            outcome.error = Some(TrainError::Training("the loop was launched twice".into()));
            return (learner.model(), processor);
        };
        let train_dl = dataloader_train.to_device(&self.device);
        let valid_dl = dataloader_valid.to_device(&self.device.clone().inner());
        learner.fork(&self.device);
        let mut checkpointer = components.checkpointer;
        let event_store = components.event_store;
        let interrupter = components.interrupter;
        let num_epochs = components.num_epochs;
        let observer = plan.observer.clone();
        let reporter = Reporter {
            observer: observer.as_ref(),
        };
        let mut loop_ = Loop {
            plan: &mut plan,
            reporter: &reporter,
            num_epochs,
            started: Instant::now(),
            error: None,
            stopped_by_request: false,
        };

        for epoch in loop_.plan.first_epoch..=num_epochs {
            // ---------------- training ----------------
            let skip = if epoch == loop_.plan.first_epoch {
                loop_.plan.skip_batches
            } else {
                0
            };
            let mut sums = if skip > 0 {
                loop_.plan.partial.take().unwrap_or_default()
            } else {
                PartialEpoch::default()
            };
            loop_.plan.loader.set_epoch((epoch - 1) as u64);
            let train_items = train_dl.num_items();
            interrupter.fail_on_error(processor.process_train(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: train_items,
            }));
            let mut iterator = train_dl.iter();
            let mut batch = 0usize;
            while batch < skip {
                if iterator.next().is_none() {
                    break;
                }
                batch += 1;
            }
            let prior_seconds = sums.seconds;
            let train_start = Instant::now();
            let mut since_log = (0.0f64, 0usize);
            let mut last_lr = 0.0;
            while let Some(item) = iterator.next() {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        loop_.error = Some(TrainError::Training(format!("data loader: {e}")));
                        interrupter.stop(Some("data loader failed"));
                        break;
                    }
                };
                let images = item.targets.dims()[0];
                let progress = iterator.progress();
                let output = if loop_.plan.seed_per_step {
                    let _rng = rng_lock();
                    self.device.seed(step_seed(
                        loop_.plan.config.seed,
                        loop_.plan.global_step + 1,
                    ));
                    learner.train_step(item)
                } else {
                    learner.train_step(item)
                };
                let loss = output.item.loss.clone().into_scalar::<f64>();
                if !loss.is_finite() {
                    loop_.error = Some(TrainError::NonFiniteLoss {
                        loss,
                        epoch,
                        step: loop_.plan.global_step + 1,
                        last_checkpoint: loop_.plan.last_checkpoint.clone(),
                    });
                    interrupter.stop(Some("non-finite loss"));
                    break;
                }
                learner.lr_step();
                let lr = learner.lr_current();
                last_lr = lr.base();
                learner.optimizer_step(output.grads);
                loop_.plan.global_step += 1;
                batch += 1;
                sums.loss_sum += loss;
                sums.batches += 1;
                sums.images += images;
                since_log.0 += loss;
                since_log.1 += 1;
                interrupter.fail_on_error(processor.process_train(LearnerEvent::ProcessedItem(
                    TrainingItem::new(output.item, progress, Some(batch), Some(lr)),
                )));
                loop_.tensorboard(TAG_TRAIN_LOSS, loss, loop_.plan.global_step as i64);
                reporter.progress(&Progress {
                    phase: Phase::Train,
                    epoch,
                    epochs: num_epochs,
                    done: batch,
                    total: loop_.plan.steps_per_epoch,
                    mean_loss: sums.loss_sum / sums.batches as f64,
                });
                let every = loop_.plan.config.log_every;
                if every > 0 && batch.is_multiple_of(every) {
                    reporter.step(&StepLog {
                        epoch,
                        step: batch,
                        steps_per_epoch: loop_.plan.steps_per_epoch,
                        global_step: loop_.plan.global_step,
                        loss,
                        mean_loss: since_log.0 / since_log.1.max(1) as f64,
                        lr: last_lr,
                        elapsed_s: loop_.started.elapsed().as_secs_f64(),
                    });
                    since_log = (0.0, 0);
                }
                if interrupter.should_stop() {
                    break;
                }
            }
            sums.seconds += train_start.elapsed().as_secs_f64();
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndSplit(epoch)));

            if loop_.error.is_some() || interrupter.error().is_some() {
                break;
            }
            if interrupter.should_stop() && batch < loop_.plan.steps_per_epoch {
                // A requested stop inside the epoch: save where we are, then leave.
                loop_.stopped_by_request = true;
                let state = loop_.state(epoch - 1, batch, Some(sums), None);
                loop_.checkpoint(&mut checkpointer, &learner, &event_store, state);
                break;
            }

            // ---------------- evaluation ----------------
            let model = learner.model().valid();
            let valid_items = valid_dl.num_items();
            interrupter.fail_on_error(processor.process_valid(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: valid_items,
            }));
            let mut iterator = valid_dl.iter();
            let (mut test_loss_sum, mut correct, mut seen, mut test_batches) =
                (0.0f64, 0i64, 0usize, 0usize);
            let test_total = valid_items.div_ceil(loop_.plan.config.batch_size.max(1));
            while let Some(item) = iterator.next() {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        loop_.error = Some(TrainError::Training(format!("test data loader: {e}")));
                        break;
                    }
                };
                let progress = iterator.progress();
                let n = item.targets.dims()[0];
                let out = InferenceStep::step(&model, item);
                let loss = out.loss.clone().into_scalar::<f64>();
                let predicted = out.output.clone().argmax(1).flatten::<1>(0, 1);
                correct += predicted
                    .equal(out.targets.clone())
                    .int()
                    .sum()
                    .into_scalar::<i64>();
                test_loss_sum += loss * n as f64;
                seen += n;
                test_batches += 1;
                interrupter.fail_on_error(processor.process_valid(LearnerEvent::ProcessedItem(
                    TrainingItem::new(out, progress, Some(test_batches), None),
                )));
                reporter.progress(&Progress {
                    phase: Phase::Test,
                    epoch,
                    epochs: num_epochs,
                    done: test_batches,
                    total: test_total,
                    mean_loss: test_loss_sum / seen.max(1) as f64,
                });
            }
            interrupter.fail_on_error(processor.process_valid(LearnerEvent::EndSplit(epoch)));
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndEpoch(epoch)));
            if loop_.error.is_some() {
                break;
            }
            let summary = EpochSummary {
                epoch,
                epochs: num_epochs,
                train_loss_sum: sums.loss_sum,
                train_loss_mean: sums.loss_sum / sums.batches.max(1) as f64,
                train_batches: sums.batches,
                test_loss: test_loss_sum / seen.max(1) as f64,
                test_accuracy: correct as f64 / seen.max(1) as f64,
                test_images: seen,
                epoch_seconds: prior_seconds + train_start.elapsed().as_secs_f64(),
                train_images_per_sec: sums.images as f64 / sums.seconds.max(1e-9),
                lr: last_lr,
                global_step: loop_.plan.global_step,
            };
            loop_.plan.history.push(summary.clone());
            loop_.tensorboard(TAG_TEST_LOSS, summary.test_loss, epoch as i64);
            loop_.tensorboard(TAG_TEST_ACCURACY, summary.test_accuracy, epoch as i64);
            if let Err(e) = loop_.plan.tensorboard.flush() {
                tracing::warn!(error = %e, "cannot flush the TensorBoard file");
            }
            loop_.write_epoch_files();
            reporter.epoch(&summary);

            let state = loop_.state(epoch, 0, None, Some(&summary));
            loop_.checkpoint(&mut checkpointer, &learner, &event_store, state);
            if loop_.error.is_some() {
                break;
            }
            if interrupter.should_stop() {
                loop_.stopped_by_request = interrupter.error().is_none();
                break;
            }
        }

        let (error, stopped) = (loop_.error.take(), loop_.stopped_by_request);
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        outcome.history = std::mem::take(&mut plan.history);
        outcome.last_checkpoint = plan.last_checkpoint.take();
        outcome.error = error;
        outcome.stopped_by_request = stopped;
        drop(checkpointer);
        (learner.model(), processor)
    }
}

struct Loop<'a> {
    plan: &'a mut Plan,
    reporter: &'a Reporter<'a>,
    num_epochs: usize,
    started: Instant,
    error: Option<TrainError>,
    stopped_by_request: bool,
}

impl Loop<'_> {
    fn tensorboard(&mut self, tag: &str, value: f64, step: i64) {
        if let Err(e) = self.plan.tensorboard.add_scalar(tag, value as f32, step) {
            tracing::warn!(error = %e, "cannot write to the TensorBoard file");
        }
    }

    fn state(
        &self,
        epochs_done: usize,
        batches_into_epoch: usize,
        partial: Option<PartialEpoch>,
        summary: Option<&EpochSummary>,
    ) -> CheckpointState {
        let last = summary.or(self.plan.history.last());
        CheckpointState {
            format: STATE_FORMAT,
            epoch: epochs_done,
            batches_into_epoch,
            global_step: self.plan.global_step,
            loss: match &partial {
                Some(p) if p.batches > 0 => Some(p.loss_sum / p.batches as f64),
                _ => last.map(|s| s.train_loss_mean),
            },
            test_loss: last.map(|s| s.test_loss),
            test_accuracy: if batches_into_epoch == 0 {
                last.map(|s| s.test_accuracy)
            } else {
                None
            },
            loader_epoch: epochs_done as u64,
            partial,
            class_names: self.plan.class_names.clone(),
            config: TrainConfig {
                epochs: self.num_epochs,
                ..self.plan.config.clone()
            },
            history: self.plan.history.clone(),
        }
    }

    fn checkpoint(
        &mut self,
        checkpointer: &mut Option<LearningCheckpointer<Classifier>>,
        learner: &Learner<Classifier>,
        event_store: &burn::train::metric::store::EventStoreClient,
        state: CheckpointState,
    ) {
        let Some(checkpointer) = checkpointer.as_mut() else {
            self.error = Some(TrainError::Training("no checkpointer configured".into()));
            return;
        };
        let (epoch, batches) = (state.epoch, state.batches_into_epoch);
        let key = self.plan.global_step as usize;
        self.plan.store.stage(key, state);
        checkpointer.checkpoint(learner, key, event_store);
        match self.plan.store.wait(key) {
            Ok(path) => {
                let best = self.plan.store.is_best(&path);
                self.plan.last_checkpoint = Some(path.clone());
                self.reporter.checkpoint(&CheckpointSaved {
                    path,
                    epoch,
                    batches_into_epoch: batches,
                    best,
                });
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// `metrics.csv` and the two charts, from the whole history.
    fn write_epoch_files(&mut self) {
        let dir = &self.plan.out_dir;
        let h = &self.plan.history;
        let result = write_metrics_csv(&dir.join("metrics.csv"), h).and_then(|()| {
            let pts = |f: fn(&EpochSummary) -> f64| -> Vec<(f64, f64)> {
                h.iter().map(|e| (e.epoch as f64, f(e))).collect()
            };
            write_line_chart(
                &dir.join("loss.svg"),
                "Loss",
                "epoch",
                "cross-entropy",
                &[
                    Series::new("train (mean)", pts(|e| e.train_loss_mean)),
                    Series::new("test", pts(|e| e.test_loss)),
                ],
            )?;
            write_line_chart(
                &dir.join("accuracy.svg"),
                "Test accuracy",
                "epoch",
                "accuracy (%)",
                &[Series::new("test", pts(|e| 100.0 * e.test_accuracy))],
            )?;
            Ok(())
        });
        if let Err(e) = result {
            self.error = Some(e);
        }
    }
}
